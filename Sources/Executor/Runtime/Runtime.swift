// Runtime: the public entry point. Thin: it validates the configuration, owns one scheduler flavor and
// forwards Swift's `enqueue` to it. The scheduling logic lives in Scheduler/.

import CKyoto
import Synchronization

/// A Kyoto runtime: a work-stealing scheduler that runs Swift Concurrency jobs.
///
/// A runtime is one `TaskExecutor`. Tasks created with it as executor preference (``spawn(name:priority:_:)``,
/// ``blockOn(_:)``, `Task(executorPreference: runtime)`, `withTaskExecutorPreference(runtime)`) run all
/// their jobs on it, and so do their child tasks, `async let`s, task-group children and default-actor calls.
/// After ``installAsGlobalExecutor()``, plain `Task {}` and `Task.detached {}` run on it too.
///
/// Lifetime: every task that prefers the runtime keeps it alive (Swift retains a task's executor
/// preference), so releasing your last reference does not shut down a runtime whose tasks are still alive,
/// unlike dropping a Tokio `Runtime`: call ``shutdown(timeout:)`` or ``shutdownBackground()``. A runtime
/// released with no task left shuts itself down. A current-thread runtime runs its tasks only while a thread
/// is inside its ``blockOn(_:)`` (or its shutdown): released with tasks still pending, it keeps them (and
/// itself) for ever, never run, their handles never resolved. Shut it down before you let it go.
///
/// ```swift
/// let runtime = Runtime.multiThread(workers: 4)
/// let sum = try runtime.blockOn {
///     let handles = (1...10).map { i in spawn { i * i } }
///     var total = 0
///     for h in handles { total += try await h.value }
///     return total
/// }
/// ```
public final class Runtime: TaskExecutor, Sendable {
    enum Scheduler: Sendable {
        case multiThread(MultiThreadScheduler)
        case currentThread(CurrentThreadScheduler)
    }

    // Layout: `configuration` comes first on purpose. Every task with this runtime as executor preference
    // retains it when created and releases it when it completes, usually on different workers, so the cache
    // line holding the reference count bounces between cores. The large, rarely read configuration keeps
    // the fields `enqueue` and `spawn` read on every call (below) off that line.

    /// The configuration this runtime was built with.
    public let configuration: Configuration
    /// Number of worker threads (1 for the current-thread flavor).
    public var workerCount: Int { shared.workerCount }

    let shared: Shared
    let scheduler: Scheduler
    /// The multi-thread scheduler of `scheduler`, unretained (`scheduler` owns it): `enqueue` runs for every
    /// job, and taking it out of the enum retains and releases it, on a cache line every worker shares.
    private let multiThread: Unmanaged<MultiThreadScheduler>?
    /// `shared.registry`, unretained (`shared` owns it): every spawn and every task's end use it, on
    /// different workers, and a retain/release of it there bounces its reference count between cores.
    private let registryRef: Unmanaged<TaskRegistry>
    let blockingPool: BlockingPool

    /// Builds and starts a runtime. Traps if `configuration` has an invalid value, naming the field.
    public convenience init(_ configuration: Configuration = .init()) {
        self.init(configuration, returnsStolenTasksHome: false)
    }

    /// Builds and starts a runtime whose workers return stolen tasks home from the start (HomeReturns.swift;
    /// installation turns it on later). For tests.
    init(_ configuration: Configuration, returnsStolenTasksHome: Bool) {
        configuration.validate()
        self.configuration = configuration
        let n = configuration.flavor == .multiThread
            ? configuration.workerThreads ?? Platform.availableParallelism() : 1
        let shared = Shared(configuration: configuration, workers: n)
        // Relaxed: written before the worker threads start (thread creation orders it).
        shared.returnsStolenTasksHome.store(returnsStolenTasksHome, ordering: .relaxed)
        self.shared = shared
        registryRef = .passUnretained(shared.registry)
        switch configuration.flavor {
        case .multiThread:
            let s = MultiThreadScheduler(shared: shared, workerCount: n)
            scheduler = .multiThread(s)
            multiThread = .passUnretained(s)
        case .currentThread:
            scheduler = .currentThread(CurrentThreadScheduler(shared: shared))
            multiThread = nil
        }
        blockingPool = BlockingPool(shared: shared)
        shared.executor = asUnownedTaskExecutor()
        shared.runtimeRef = .passUnretained(self)
        if case .multiThread(let s) = scheduler { s.start() }
    }

    /// A multi-thread runtime with `workers` worker threads (nil: one per available CPU).
    public static func multiThread(workers: Int? = nil) -> Runtime {
        var c = Configuration(flavor: .multiThread)
        c.workerThreads = workers
        return Runtime(c)
    }

    /// A current-thread runtime: jobs run only inside ``blockOn(_:)``.
    public static func currentThread() -> Runtime {
        Runtime(Configuration(flavor: .currentThread))
    }

    deinit {
        beginShutdown()
        blockingPool.shutdown()
        if case .multiThread(let s) = scheduler { s.detachThreads() }
        if case .currentThread = scheduler { shared.markTerminated() }
    }

    /// The runtime whose thread is running the caller, or nil outside any Kyoto runtime thread and inside
    /// the configuration's thread hooks (capture the runtime there if a hook needs it).
    public static var current: Runtime? {
        ThreadContext.withCurrent { $0.inHook ? nil : $0.shared.runtime } ?? nil
    }

    // MARK: TaskExecutor

    /// Schedules a job. Called by Swift Concurrency; not meant to be called directly.
    public func enqueue(_ job: consuming ExecutorJob) {
        schedule(JobRef(job))
    }

    @inline(__always)
    func schedule(_ job: JobRef) {
        if let multiThread {
            multiThread._withUnsafeGuaranteedRef { $0.schedule(job) }
        } else if case .currentThread(let s) = scheduler {
            s.schedule(job)
        }
    }

    /// Runs `job` once `nanos` nanoseconds have passed (the `Task.sleep` path). Never runs it inline: this
    /// is called from inside the sleeping task's own job, before it has suspended.
    ///
    /// On a paused clock the delay is rounded up to whole milliseconds. Swift hands the executor an instant
    /// on the real clock, and the delay it computes from it is short by the real time spent between the
    /// caller's `now` and here (microseconds, unless the thread was held up): rounding makes
    /// `Task.sleep(for: .milliseconds(10))` take exactly 10 ms of paused time in the common case (Tokio
    /// rounds the deadline, not the delay, to its 1 ms tick). `RuntimeClock.sleep(until:)` needs no rounding:
    /// its deadline is already on the runtime's timeline.
    func scheduleTimer(_ job: JobRef, afterNanos nanos: Int64) {
        var delay = UInt64(max(0, nanos))
        if shared.time.isPaused {
            let (rounded, overflow) = delay.addingReportingOverflow(999_999)
            delay = overflow ? .max : rounded / 1_000_000 * 1_000_000
        }
        let (sum, overflow) = shared.time.now().addingReportingOverflow(delay)
        scheduleTimer(.job(job), deadline: overflow ? .max : sum)
    }

    /// Fires `action` when the runtime's clock reaches `deadline` (nanoseconds on its timeline).
    func scheduleTimer(_ action: TimerAction, deadline: UInt64) {
        // `.max` means "no timer" to the queue: the farthest deadline is one before it.
        let isEarliest = shared.timers.insert(action, deadline: min(deadline, .max - 1))
        // After termination no runtime thread fires timers: the drainer thread disposes of them (see
        // `Shared.disposeAfterTermination`). Sequentially consistent: the load half of a store-buffering pair
        // with `Shared.markTerminated` (this side stored `earliest` in `TimerQueue.insert`; that side stores
        // `terminated`, then reads `timers.nextDeadline`), so one of the two starts the drainer.
        if shared.terminated.load(ordering: .sequentiallyConsistent) {
            shared.ensureDrainer()
            return
        }
        guard isEarliest else { return }
        // The new timer is the earliest: make sure a sleeping thread re-arms its wake-up.
        switch scheduler {
        case .multiThread(let s): s.timerBecameEarliest()
        case .currentThread(let s): s.parker.unpark()
        }
    }

    /// The executor preference new tasks get: none when this runtime is installed as the global
    /// executor (so Swift keeps its direct actor switching), this runtime otherwise.
    var taskPreference: (any TaskExecutor)? {
        GlobalExecutorInstallation.isInstalled(self) ? nil : self
    }

    // MARK: Running and spawning

    /// Runs `body` on the runtime and blocks the calling thread until it returns, then returns its value
    /// (or rethrows its error).
    ///
    /// On the current-thread flavor the calling thread drives the runtime while it waits. Traps when called
    /// from a runtime thread (that would block a worker on itself) or from a LocalSet's task (that would
    /// block the thread driving the set): use `await` there instead. Traps on a runtime that has been shut
    /// down.
    public func blockOn<T: Sendable, E: Error>(_ body: sending @escaping () async throws(E) -> T) throws(E) -> T {
        kyotoPrecondition(
            !(ThreadContext.current?.runsScheduler ?? false),
            ThreadContext.current?.role == .mainThread
                ? "BUG DETECTED: blockOn called on the main thread while it runs the MainActor under runMain; "
                    + "await the work instead"
                : "BUG DETECTED: blockOn called from inside a Kyoto runtime thread; await the work instead")
        // A LocalSet's task blocking the thread that drives the set: the set's other tasks (and, under a
        // blockOn, that blockOn's own completion) could never run again. Any thread running a set's jobs,
        // whatever its role (a standalone set's own thread has none).
        kyotoPrecondition(
            kyoto_local_set_depth() == 0,
            "BUG DETECTED: blockOn called from a LocalSet's task, which would block the thread driving the set; "
                + "await the work instead")
        // Counted BEFORE the shutdown check, and both sequentially consistent (the entering half of the pairing
        // at `Shared.activeBlockOns`): a shutdown that stores `closed` after this check read it false then
        // sees this call in progress and leaves the runtime running for it. Checked first, a shutdown could
        // complete (terminate, hand leftovers to the drainer) between the check and the count, and this call
        // would then drive a terminated runtime alongside the drainer and could wait forever.
        shared.activeBlockOns.add(1, ordering: .sequentiallyConsistent)
        kyotoPrecondition(
            !shared.isClosed, "BUG DETECTED: blockOn called on a Kyoto runtime that has been shut down")
        let completion = BlockOnCompletion<T, E>()
        // LocalSets started under this call run their jobs on this thread while it waits (`runUntil`).
        let localDriver: LocalDriver
        switch scheduler {
        case .multiThread: localDriver = LocalDriver(parker: completion.parker, shared: shared)
        case .currentThread(let s):
            localDriver = LocalDriver(parker: s.parker, alsoWake: completion.parker, shared: shared)
        }
        Task(executorPreference: taskPreference) {
            localDriver.registerForCurrentTask()
            let result: Result<T, E>
            do throws(E) {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            localDriver.unregisterForCurrentTask()
            completion.complete(result)
        }
        switch scheduler {
        case .multiThread:
            while !completion.isDone {
                if localDriver.runPending() == 0 { completion.parker.park() }
            }
        case .currentThread(let s):
            s.drive(callerParker: completion.parker, localDriver: localDriver) { completion.isDone }
        }
        // Sequentially consistent: see `Shared.activeBlockOns`. The last blockOn after shutdown began lets
        // the workers exit, or marks a current-thread runtime terminated.
        if shared.activeBlockOns.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 {
            switch scheduler {
            case .multiThread: if shared.closed.load(ordering: .sequentiallyConsistent) { wakeAll() }
            case .currentThread(let s): s.lastBlockOnReturned()
            }
        }
        return try completion.take().get()
    }

    /// Starts `body` as a new task on this runtime and returns a handle to its result. The task starts
    /// running on a worker, never inline. Dropping the handle detaches the task. `name` and `priority` are
    /// the Swift task's (visible to `Task.currentPriority` and tools); like Tokio, the scheduler itself
    /// ignores priority: every job waits its turn in the same queues. Once shutdown has begun, `body` never
    /// runs: the handle is already finished and resolves to ``JoinError/cancelled``, and `body` (with what it
    /// captured) is released inside this call, on the calling thread, as Tokio drops the future.
    @inlinable
    @discardableResult
    public func spawn<T: Sendable>(
        name: String? = nil, priority: TaskPriority? = nil, _ body: sending @escaping () async throws -> T
    ) -> JoinHandle<T> {
        Runtime._spawn(on: .passUnretained(self), name: name, priority: priority, body)
    }

    /// `spawn` on an unretained runtime (the free `spawn` finds the caller's runtime without retaining it).
    ///
    /// Inlinable so the generic task creation is specialized at the call site; the bookkeeping is in the
    /// non-generic `_beginTask`/`_linkTask`/`_finishTask`. The runtime is reached through guaranteed
    /// references and captured unretained: the task's executor preference (or the global installation)
    /// keeps it alive while the task runs, and a retain/release of it per spawn lands on a cache line that
    /// every worker shares (the preference itself is released by whichever worker completes the task).
    @inlinable
    static func _spawn<T: Sendable>(
        on runtime: Unmanaged<Runtime>, name: String?, priority: TaskPriority?,
        _ body: sending @escaping () async throws -> T
    ) -> JoinHandle<T> {
        // After shutdown began, no task that could run `body` is created (see `_refusedSpawn`).
        if runtime._withUnsafeGuaranteedRef({ $0._isClosed }) {
            return runtime._withUnsafeGuaranteedRef { $0._refusedSpawn() }
        }
        let slot = runtime._withUnsafeGuaranteedRef { $0._beginTask() }
        let task = Task<T, any Error>(
            name: name, executorPreference: runtime._withUnsafeGuaranteedRef { $0._taskPreference },
            priority: priority
        ) {
            var succeeded = false
            defer { runtime._withUnsafeGuaranteedRef { $0._finishTask(slot, succeeded: succeeded) } }
            // A task aborted before it first runs never runs its body; neither does one that starts after
            // shutdown began (its registration may not have been seen by shutdown's cancel pass yet).
            if Task.isCancelled || runtime._withUnsafeGuaranteedRef({ $0._isClosed }) { throw JoinError.cancelled }
            do {
                let value = try await body()
                succeeded = true
                return value
            } catch {
                if Task.isCancelled { throw JoinError.cancelled }
                throw error
            }
        }
        return runtime._withUnsafeGuaranteedRef { runtime in
            runtime._linkTask(slot, ErasedTask(task), trivialResult: _isPOD(T.self))
            return JoinHandle(task: task, slot: slot, registry: runtime._registry)
        }
    }

    /// The handle of a spawn made after shutdown began: finished, resolving to ``JoinError/cancelled``; no
    /// task is created, so the body never runs (Tokio's spawn on a shut-down runtime). Creating a task that
    /// only throws would still leave it counted among the live ones until somebody ran it: a thread spawning
    /// in a loop during `shutdown(timeout:)` then kept that count above zero until the deadline. A spawn that
    /// read the runtime open still creates and counts its task, which may have started its body by the time
    /// it is linked (TaskRegistry.swift); each spawning thread has at most one such spawn in flight at the
    /// close, so the count reaches zero.
    @usableFromInline
    func _refusedSpawn<T: Sendable>() -> JoinHandle<T> {
        let registry = shared.registry
        return JoinHandle(task: nil, slot: registry.unlinkedSlot(), registry: registry)
    }

    /// Reserves a registry slot for a new task.
    @usableFromInline
    func _beginTask() -> TaskSlot {
        // A worker of this runtime takes a slot from its stash; other threads reserve one in the registry.
        let stashed = ThreadContext.withCurrent { context -> TaskSlot? in
            guard context.shared === shared else { return nil }
            return context.withWorker { $0.takeSlot() }
        } ?? nil
        if let stashed { return stashed }
        return registryRef._withUnsafeGuaranteedRef { $0.begin() }
    }

    /// Registers the task created for `slot`; cancels it if the runtime is already shutting down.
    @usableFromInline
    func _linkTask(_ slot: TaskSlot, _ task: ErasedTask, trivialResult: Bool) {
        let open = registryRef._withUnsafeGuaranteedRef {
            $0.link(slot, task: task, trivialResult: trivialResult, closed: shared.closed)
        }
        if !open { task.cancel() }
    }

    /// The registry, for join handles.
    @usableFromInline
    var _registry: TaskRegistry { shared.registry }

    /// Called by a spawned task's body when it ends.
    @usableFromInline
    func _finishTask(_ slot: TaskSlot, succeeded: Bool) {
        // Only a worker of this runtime sends the task back to the worker that spawned it (the point is to
        // keep frees off the workers' malloc arenas), and not once shutdown began.
        let finisherWorker = shared.isClosed
            ? nil
            : ThreadContext.withCurrent { context in
                context.shared === shared ? context.withWorker { $0.index } : nil
            } ?? nil
        registryRef._withUnsafeGuaranteedRef { registry in
            guard let goesHome = registry.finish(slot, finisherWorker: finisherWorker, succeeded: succeeded),
                let multiThread
            else { return }
            let task = Unmanaged.passRetained(goesHome.task.object)
            multiThread._withUnsafeGuaranteedRef {
                $0.workers[goesHome.homeWorker].homeReturns.deposit(
                    task, releasableAnywhere: goesHome.releasableAnywhere, limit: registry.homeReturnLimit)
            }
        }
        // After shutdown began, the last task to finish wakes the workers so they can exit. The registry
        // lock `finish` took orders this read after `beginShutdown`'s store for every task it cancelled.
        if shared.isClosed && shared.registry.aliveCount == 0 {
            shared.spawnedTasksMayBeDone()
            wakeAll()
        }
    }

    /// Whether shutdown has begun.
    @usableFromInline
    var _isClosed: Bool { shared.isClosed }

    /// The executor preference new tasks get (see `taskPreference`).
    @usableFromInline
    var _taskPreference: (any TaskExecutor)? { taskPreference }

    private func wakeAll() {
        switch scheduler {
        case .multiThread(let s): s.wakeAll()
        case .currentThread(let s): s.parker.unpark()
        }
    }

    // MARK: Shutdown

    private func beginShutdown() {
        // Sequentially consistent: pairs with the load in `TaskRegistry.link` (see TaskRegistry.swift), and is
        // the store half of `blockOn`'s entry pairing (increment, then read `closed`; see `Shared.activeBlockOns`).
        shared.closed.store(true, ordering: .sequentiallyConsistent)
        shared.registry.cancelAll()
        wakeAll()
    }

    /// Shuts the runtime down: cancels every spawned task and waits up to `timeout` for the runtime's
    /// threads to finish the jobs that unwind them. Returns true if everything finished in time; otherwise
    /// the remaining work finishes in the background. Spawns made afterwards run nothing: their handles
    /// resolve to ``JoinError/cancelled``. A ``blockOn(_:)`` in progress on another thread is not cancelled:
    /// the runtime keeps running its body (its sleeps end on time) and terminates once it has returned.
    /// Traps where it would wait for itself: on a runtime thread, in this runtime's `spawnBlocking` closure
    /// or a blocking thread's hook, in a task this runtime's drainer runs after shutdown, in a LocalSet's
    /// task under this runtime's `blockOn`, in a stopping worker's `onThreadStop` hook. Use
    /// ``shutdownBackground()`` there. (From a `blockInPlace` closure it waits for the calling task if that
    /// task was started with `spawn`: until its timeout.)
    ///
    /// Work that still reaches a terminated runtime (tasks that prefer it but were not spawned by it, or
    /// every plain task while it is installed as the global executor) runs on a drainer thread, which stops
    /// when nothing is left to run; a `Task.sleep` there keeps its deadline (Swift's previous default
    /// executor times it), and a sleep on this runtime's ``clock`` throws `CancellationError`. The drainer
    /// is one thread: after an installed runtime shuts down, all the process's plain concurrency (task
    /// groups, `async let`, default actors) runs there one job at a time, for as long as it keeps coming.
    /// Shut an installed runtime down at the end of the program, not to get rid of it mid-way.
    @discardableResult
    public func shutdown(timeout: Duration) -> Bool {
        kyotoPrecondition(
            !(ThreadContext.current?.runsScheduler ?? false),
            ThreadContext.current?.role == .mainThread
                ? "BUG DETECTED: shutdown(timeout:) called on the main thread while it runs the MainActor under "
                    + "runMain; return from runMain's body (runMain then shuts the runtime down) or use "
                    + "shutdownBackground()"
                : ThreadContext.current?.shared === shared
                    ? "BUG DETECTED: shutdown(timeout:) called from a Kyoto runtime thread would wait for itself; "
                        + "use shutdownBackground()"
                    : "BUG DETECTED: shutdown(timeout:) called from a thread of another Kyoto runtime would block "
                        + "that runtime's thread until this one has shut down; use shutdownBackground(), or shut "
                        + "down from outside the runtimes")
        kyotoPrecondition(
            !(ThreadContext.current.map { $0.role == .blocking && $0.shared === shared } ?? false),
            ThreadContext.current?.inHook == true
                ? "BUG DETECTED: shutdown(timeout:) called from a thread hook (onThreadStart/onThreadStop) of this "
                    + "runtime's blocking thread would wait for that thread; use shutdownBackground()"
                : "BUG DETECTED: shutdown(timeout:) called from this runtime's spawnBlocking closure would wait for "
                    + "itself (the closure's task is one of those it waits for); use shutdownBackground()")
        kyotoPrecondition(
            !(ThreadContext.current.map { $0.isStoppingWorker && $0.shared === shared } ?? false),
            "BUG DETECTED: shutdown(timeout:) called from a stopping worker's onThreadStop hook would wait for "
                + "that worker, which stops only once the hook has returned; use shutdownBackground()")
        kyotoPrecondition(
            !(ThreadContext.current.map { $0.role == .drain && $0.shared === shared } ?? false),
            "BUG DETECTED: shutdown(timeout:) called from a task finishing after this runtime shut down (on its "
                + "drainer thread) would wait for itself and stall the drainer; use shutdownBackground()")
        // A LocalSet's task under one of this runtime's `blockOn`s (the thread's context is this runtime's):
        // the set, and so that `blockOn`, cannot finish while the call blocks their thread, and shutdown
        // waits for the `blockOn`.
        kyotoPrecondition(
            kyoto_local_set_depth() == 0 || ThreadContext.current?.shared !== shared,
            "BUG DETECTED: shutdown(timeout:) called from a LocalSet's task of this runtime (under its blockOn, "
                + "or on the set's own thread) would wait for itself; use shutdownBackground()")
        return shutdown(timeout: timeout) { [shared] deadline in
            // Terminated, and no spawned task left: one spawned from outside after the last worker's exit
            // check is cancelled but still alive until the drainer has run it.
            shared.terminatedEvent.wait(timeout: Runtime.timeLeft(until: deadline))
                && shared.waitForSpawnedTasks(deadline: deadline)
        }
    }

    /// The shutdown sequence of ``shutdown(timeout:)`` and `runMain`: cancels, then waits until the monotonic
    /// deadline `timeout` from now for the threads to finish. `waitForWorkers` waits for a multi-thread
    /// runtime's workers to terminate until the deadline it is given (runMain keeps running MainActor jobs
    /// meanwhile) and returns whether they did.
    func shutdown(timeout: Duration, waitForWorkers: (_ deadline: UInt64) -> Bool) -> Bool {
        let deadline = Platform.monotonicNanos() &+ UInt64(max(0, timeout.nanoseconds))
        beginShutdown()
        blockingPool.shutdown()
        let tasksDone: Bool
        switch scheduler {
        case .multiThread(let s):
            tasksDone = waitForWorkers(deadline)
            s.detachThreads()
        case .currentThread(let s):
            tasksDone = s.shutdown(deadline: deadline, wait: true)
        }
        // Running blocking jobs cannot be interrupted: wait for them with what is left of the timeout.
        let blockingDone = blockingPool.drained.wait(timeout: Runtime.timeLeft(until: deadline))
        return tasksDone && blockingDone
    }

    /// The time from now until the monotonic `deadline` (zero once it has passed).
    static func timeLeft(until deadline: UInt64) -> Duration {
        let now = Platform.monotonicNanos()
        return now >= deadline ? .zero : .nanoseconds(Int64(deadline - now))
    }

    /// Starts shutting down (as ``shutdown(timeout:)``) without waiting. Allowed on runtime threads.
    public func shutdownBackground() {
        beginShutdown()
        blockingPool.shutdown()
        switch scheduler {
        case .multiThread(let s): s.detachThreads()
        case .currentThread(let s):
            _ = s.shutdown(deadline: 0, wait: false)
        }
    }

    /// Whether ``shutdown(timeout:)`` or ``shutdownBackground()`` has been called.
    public var isShutDown: Bool { shared.isClosed }

    // MARK: Metrics

    /// A snapshot of the runtime's counters.
    public var metrics: RuntimeMetrics {
        let perWorker: [RuntimeMetrics.Worker]
        switch scheduler {
        case .multiThread(let s): perWorker = s.metricsSnapshot
        case .currentThread(let s): perWorker = [RuntimeMetrics.Worker(s.stats, depth: s.localDepth)]
        }
        let blocking = blockingPool.counts
        return RuntimeMetrics(
            workers: workerCount,
            aliveTasks: shared.registry.aliveCount,
            injectQueueDepth: shared.inject.count,
            // Relaxed (both): statistics; nothing is read through them and a snapshot may be slightly old.
            remoteSchedules: shared.remoteSchedules.load(ordering: .relaxed),
            budgetForcedYields: shared.budgetForcedYields.load(ordering: .relaxed),
            blockingThreads: blocking.threads,
            idleBlockingThreads: blocking.idle,
            blockingQueueDepth: blocking.queued,
            perWorker: perWorker)
    }
}

/// The result slot of one `blockOn` call.
final class BlockOnCompletion<T: Sendable, E: Error>: Sendable {
    let parker = Parker()
    private let result = CheckedMutex<Result<T, E>?>(nil)
    private let done = Atomic<Bool>(false)

    var isDone: Bool {
        // Acquiring: pairs with the releasing store in `complete`, so `take` sees the result.
        done.load(ordering: .acquiring)
    }

    func complete(_ value: sending Result<T, E>) {
        result.withLock { $0 = value }
        // Releasing: publishes the result to `isDone` readers.
        done.store(true, ordering: .releasing)
        parker.unpark()
    }

    func take() -> Result<T, E> {
        result.withLock { slot in
            guard let value = slot else { fatalError("BUG DETECTED: blockOn result read before it was set") }
            slot = nil
            return value
        }
    }
}
