// LocalExecutor and LocalDriver: the machinery that pins a LocalSet's jobs to one OS thread.
//
// - `LocalExecutor` is the `SerialExecutor` of a `LocalSet` actor. It never runs jobs itself: it queues
//   them and wakes the `LocalDriver` it is bound to.
// - `LocalDriver` is a thread that runs bound executors' jobs: either the thread inside `Runtime.blockOn`
//   (which drives them while it waits, as Tokio's `run_until`), or a thread the driver owns (a LocalSet
//   used outside any `blockOn`). Exactly one thread runs a given driver's jobs, so every job of a set runs
//   on that one thread: this is what lets local tasks share non-Sendable values, and what `checkIsolated`
//   verifies (a thread-local names the executor whose jobs the thread is running).
//
// Two roles. `LocalExecutor` is also the `TaskExecutor` its set's local tasks prefer (LocalSet.swift: their
// nonisolated code must run on the set's thread too), so the driver runs every job under both identities
// (`runSynchronously(isolatedTo:taskExecutor:)`, as Swift asks of an executor that is both): a local task
// moving between the set's isolation and nonisolated code stays on the thread, re-enqueued here at each
// move. A local task's `Task.sleep` is scheduled on the set's runtime (`SchedulingExecutor` below), whose
// wake-up job then resumes the task here.
//
// Switches back to the set. A task isolated to the set that does not prefer this executor (an untracked
// `Task {}` created inside `runUntil`) sees a task executor it does not prefer while the set runs its job,
// so when it switches to the set's isolation while already on it (entering a function with an `isolated`
// parameter, such as the waiting helpers of CancellableWait.swift), Swift re-enqueues the task on the set
// (before local tasks preferred this executor, they did the same). Queued at the back, the set's other
// tasks would run before it resumes, and a lock or channel would see them first (an AsyncMutex served callers out of call order). `enqueue` recognises that
// re-enqueue (the set's thread, inside one of its jobs, with no task current: Swift clears it before
// re-enqueuing) and puts it in the `continuing` slot, which runs before the queue, so the task carries on at
// once. It keeps the cooperative budget it had (as the runtime's LIFO chain does): with a fresh budget per
// switch, a `for await` loop over a busy channel (each step a switch) was never forced to yield and starved
// the set's other tasks. The slot keeps its place when the 61-job tick ends, as the switch never happened
// for the task; a task that switches forever without spending budget holds the set's thread, as a task that
// never suspends would. Running the set's jobs under the runtime's task-executor identity instead would
// avoid the re-enqueue, but hung the LocalSet suite (in about one run in four), and would be wrong for the
// set's tasks that do not prefer the runtime.
//
// Races considered: a job enqueued while the driver is deciding to park: the enqueuer pushes then unparks
// the driver's parker; the parker's `notified` state makes the next `park` return at once (Parker.swift),
// so the job is never stranded. Binding changes happen only between `runUntil` calls: the set unbinds itself
// in its last job (`LocalSet.end`, on its own thread), before `runUntil`'s caller continues elsewhere, and a
// driver pops a set's jobs only while the set is bound to it. Otherwise the driver could take a job queued
// behind that last one (an untracked set-isolated `Task {}`) and still be running it when the next
// `runUntil` had bound the set to another thread: the set's jobs on two threads at once (the hand-over
// test). Every `runUntil` ends through `end`, whether its body returned or threw.

import CKyoto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs the jobs of the LocalExecutors bound to it on one thread.
final class LocalDriver: Sendable {
    /// The parker of the thread that runs this driver's jobs.
    let parker: Parker
    /// A second parker to wake with `parker`: a current-thread `blockOn` runs its driver's jobs on its own
    /// thread both while it holds the core (sleeping on the core's parker) and while it waits for the core
    /// (sleeping on its own).
    private let alsoWake: Parker?
    /// The runtime whose `Runtime.current` local tasks see (nil for a standalone set outside a runtime).
    let shared: Shared?
    private let executors = CheckedMutex<[LocalExecutor]>([])
    private let stopped = Atomic<Bool>(false)
    /// Set when an owned thread has left its loop (for tests).
    let exited = OneShotEvent()

    /// A driver run by a thread that parks on `parker` (the `blockOn` thread), or on `alsoWake` too.
    init(parker: Parker, alsoWake: Parker? = nil, shared: Shared?) {
        self.parker = parker
        self.alsoWake = alsoWake
        self.shared = shared
    }

    /// Drivers of the `blockOn` calls in progress, each keyed by the identity of its body's task.
    ///
    /// Not a `@TaskLocal`: every unstructured task copies the task-locals bound where it is created, which
    /// cost two allocations per `spawn` inside `blockOn` (measured: 5 mallocs per spawn instead of 3).
    /// Keyed by task, a set's `runUntil` finds the driver only when called from the `blockOn` body itself
    /// (Tokio's `block_on(local.run_until(...))`); anywhere else the set runs on a thread of its own. A
    /// registered task unregisters itself before it completes (`Runtime.blockOn`), so a registered identity
    /// (`Platform.currentTaskIdentity`) always names the task that registered it.
    private static let drivers = CheckedMutex<[(task: UInt, driver: LocalDriver)]>([])

    /// Makes `self` the driver that `current` returns in the calling task, until `unregisterForCurrentTask()`.
    func registerForCurrentTask() {
        let task = Platform.currentTaskIdentity
        LocalDriver.drivers.withLock { $0.append((task, self)) }
    }

    /// Undoes `registerForCurrentTask()`; called by the same task.
    func unregisterForCurrentTask() {
        let task = Platform.currentTaskIdentity
        LocalDriver.drivers.withLock { list in list.removeAll { $0.task == task && $0.driver === self } }
    }

    /// The driver of the `blockOn` call whose body is the current task, if any.
    static var current: LocalDriver? {
        let task = Platform.currentTaskIdentity
        if task == 0 { return nil }
        return drivers.withLock { list in list.first { $0.task == task }?.driver }
    }

    func attach(_ executor: LocalExecutor) {
        executors.withLock { $0.append(executor) }
    }

    func detach(_ executor: LocalExecutor) {
        executors.withLock { list in list.removeAll { $0 === executor } }
    }

    /// Wakes the driving thread.
    func wake() {
        parker.unpark()
        alsoWake?.unpark()
    }

    /// Whether any of the driver's sets has queued jobs (a snapshot).
    var hasPendingJobs: Bool { executors.withLock { $0 }.contains { $0.hasPendingJobs } }

    /// Runs the queued jobs of every attached executor, at most `LocalExecutor.maxJobsPerRun` of each.
    /// Driving thread only. Returns how many ran: a caller that gets a positive count comes back after its
    /// own work (a set whose tasks keep waking each other must not hold the thread: the runtime's own jobs
    /// and timers, and the other sets, run in between, as Tokio's LocalSet ticks a bounded batch).
    func runPending() -> Int {
        let list = executors.withLock { $0 }
        if list.isEmpty { return 0 }
        var ran = 0
        let context = shared.map { ThreadContext(shared: $0, worker: nil, currentThread: nil, role: .localSet) }
        let run = {
            for executor in list { ran += executor.runPending(limit: LocalExecutor.maxJobsPerRun, driver: self) }
        }
        // The set's runtime is what its tasks see as `Runtime.current` (and what the free `spawn`, `timeout`
        // and `interval` use), even on a thread that belongs to another runtime (a blocking-pool thread of
        // runtime A calling B.blockOn): keep the thread's own context only when it is this runtime's.
        // Also inside a thread hook (a hook's `blockOn` driving a set): the hook hides the runtime, the set's
        // tasks must not.
        if let context, ThreadContext.current.map({ $0.shared !== context.shared || $0.inHook }) ?? true {
            ThreadContext.with(context, run)
        } else {
            run()
        }
        return ran
    }

    /// Starts a thread that drives this driver until `stop()`. For sets used outside `blockOn`.
    static func startOwnedThread(shared: Shared?) -> LocalDriver {
        let driver = LocalDriver(parker: Parker(), shared: shared)
        let thread = Platform.spawnThread(name: "kyoto-local", stackSize: nil) {
            // Acquiring: pairs with the releasing store in `stop`; a load that misses it parks and is woken by
            // the unpark that follows the store.
            while !driver.stopped.load(ordering: .acquiring) {
                if driver.runPending() == 0 { driver.parker.park() }
            }
            driver.exited.set()
        }
        thread.detach()
        return driver
    }

    /// Stops an owned thread after it finishes the jobs it has.
    func stop() {
        // Releasing: pairs with the owned thread's acquiring load.
        stopped.store(true, ordering: .releasing)
        parker.unpark()
    }
}

/// The serial executor of one LocalSet. Its jobs run only on the thread of the driver it is bound to.
final class LocalExecutor: SerialExecutor, TaskExecutor, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): all mutable state is inside `state` (a CheckedMutex) or atomic.

    private struct State: ~Copyable {
        var jobs = JobDeque()
        /// A task that switched back to the set from the set's own thread (see the file comment), with the
        /// budget it had left: it runs before `jobs`, and resumes with that budget instead of a fresh one.
        var continuing: (job: JobRef, budget: Int32)?
        var driver: LocalDriver?

        var isEmpty: Bool { jobs.count == 0 && continuing == nil }
    }

    private let state = CheckedMutex(State())

    init() {}

    /// This executor's identity in the thread-local `kyoto_tls_local_executor`.
    private var identity: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    /// Queues `job` for the bound driver's thread.
    ///
    /// An unbound executor belongs to a set outside ``LocalSet/runUntil(_:)``: no thread will ever run the
    /// job, so the call (an actor call on an idle set, such as `spawnLocal` before `runUntil`) would hang
    /// forever. That is a misuse, and it traps naming it instead.
    ///
    /// A job that the set's own thread enqueues while it runs one of the set's jobs, with no task current, is
    /// that job's task switching to the set's isolation again (Swift clears the current task before it
    /// re-enqueues a task on a switch): it runs next, with the budget it has left, so the task carries on as
    /// it would have without the switch (see the file comment).
    func enqueue(_ job: consuming ExecutorJob) {
        let ref = JobRef(job)
        let continuing = isCurrentThreadRunning && withUnsafeCurrentTask { $0 == nil }
        let budget = continuing ? kyoto_budget_get() : 0
        let driver = state.withLock { s -> LocalDriver? in
            if s.driver != nil {
                if continuing, s.continuing == nil {
                    s.continuing = (ref, budget)
                } else if continuing {
                    // A task switches at most once per job run, and the slot is emptied before the next set
                    // job runs; but a job with no task (an isolated deinit) that creates two set-isolated
                    // tasks looks like two switches. The later one goes right behind the first.
                    s.jobs.pushFront(ref)
                } else {
                    s.jobs.pushBack(ref)
                }
            }
            return s.driver
        }
        guard let driver else {
            fatalError(
                "BUG DETECTED: spawnLocal (or another LocalSet method) called on a LocalSet that is not running; call it inside runUntil "
                    + "(a task isolated to the set but not started with spawnLocal, such as a Task {} created inside runUntil, "
                    + "also lands here when it resumes after runUntil returned: start local tasks with spawnLocal)"
            )
        }
        driver.wake()
    }

    /// Binds the executor to `driver` (nil: unbound; queued jobs wait for the next binding).
    func bind(_ driver: LocalDriver?) {
        let hasJobs = state.withLock { s -> Bool in
            s.driver = driver
            return !s.isEmpty
        }
        if hasJobs { driver?.wake() }
    }

    /// The most jobs of one set a driver runs before it looks at its other work (Tokio's LocalSet runs at
    /// most 61 tasks per tick).
    static let maxJobsPerRun = 61

    /// Runs queued jobs (and any they enqueue), at most `limit` of them, on the calling thread, which drives
    /// `driver`; stops as soon as the executor is no longer bound to `driver` (see the file comment). Returns
    /// how many ran.
    func runPending(limit: Int, driver: LocalDriver) -> Int {
        let previous = kyoto_local_executor_get()
        kyoto_local_executor_set(identity)
        // Marks the thread as running a set's jobs (`blockOn` traps there; locks do not spin there).
        kyoto_local_set_depth_add(1)
        defer {
            kyoto_local_set_depth_add(-1)
            kyoto_local_executor_set(previous)
        }
        // Each job run starts with a full cooperative budget, as on the runtime's own threads (Budget.swift);
        // the thread's budget is put back afterwards, in case this was called inside another job. Threads
        // with no runtime context keep theirs (0: primitives never yield there).
        let hasContext = ThreadContext.current != nil
        let savedBudget = kyoto_budget_get()
        defer { if hasContext { kyoto_budget_set(savedBudget) } }
        var ran = 0
        while ran < limit,
            let (job, budget) = state.withLock({ s -> (JobRef, Int32?)? in
                guard s.driver === driver else { return nil }
                if let continuing = s.continuing {
                    s.continuing = nil
                    return (continuing.job, continuing.budget)
                }
                return s.jobs.popFront().map { ($0, nil) }
            })
        {
            // A continuing task keeps the budget it switched with, as a LIFO chain shares its budget: a task
            // that switches to the set at every step (a `for await` loop calls `next(isolation:)`) would
            // otherwise get a fresh budget at each, never be forced to yield, and hold the set's thread.
            if hasContext {
                if let budget { kyoto_budget_set(budget) } else { kyoto_budget_refill(Int32(initialBudget)) }
            }
            job.unownedJob.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
            ran += 1
        }
        return ran
    }

    /// Whether jobs are queued (a snapshot).
    var hasPendingJobs: Bool { state.withLock { !$0.isEmpty } }

    /// Whether the calling thread is running this executor's jobs right now (a thread-local: exact, and
    /// unaffected by other threads).
    var isCurrentThreadRunning: Bool {
        let running: UnsafeMutableRawPointer? = kyoto_local_executor_get()  // nil on a thread running no set
        return running == identity
    }

    func isIsolatingCurrentContext() -> Bool? {
        isCurrentThreadRunning
    }

    func checkIsolated() {
        kyotoPrecondition(
            isCurrentThreadRunning,
            "BUG DETECTED: code isolated to a LocalSet ran off the set's thread (expected the thread driving it)")
    }
}

#if compiler(>=6.3)
@_spi(ExperimentalCustomExecutors) @_spi(ExperimentalScheduling) import _Concurrency

@_spi(ExperimentalScheduling)
extension LocalExecutor: SchedulingExecutor {
    /// A local task's `Task.sleep`: the timer goes to the set's runtime (its paused clock included), or to
    /// Swift's default executor for a set outside any runtime; the wake-up job it runs there resumes the
    /// task here, as the task prefers this executor.
    ///
    /// The runtime is alive for the call: a local task sleeps only while its set is inside `runUntil`, whose
    /// caller is that runtime's `blockOn` or one of its tasks (the driver's `shared` names the runtime of the
    /// thread that started the set), and the runtime's timer queue keeps the job from then on.
    func enqueue<C: Clock>(_ job: consuming ExecutorJob, after delay: C.Duration, tolerance: C.Duration?, clock: C) {
        let runtime = state.withLock { $0.driver?.shared?.runtime }
        if let runtime {
            runtime.enqueue(job, after: delay, tolerance: tolerance, clock: clock)
        } else if let fallback = GlobalExecutorInstallation.fallbackScheduler(otherThan: nil) {
            fallback.enqueue(job, after: delay, tolerance: tolerance, clock: clock)
        } else {
            // No way to measure this clock: queue the wake-up now rather than lose it (as `Runtime` does).
            enqueue(job)
        }
    }
}
#endif
