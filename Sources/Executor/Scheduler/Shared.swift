// Shared: the state both scheduler flavors have in common, and the per-thread context.
//
// - `Shared` holds the inject queue, the executor identity every job runs on, the shutdown state, the
//   post-shutdown drainer and runtime-wide counters.
// - `ThreadContext` is what a runtime thread keeps in its thread-local slot: which scheduler it serves,
//   the worker it holds (multi-thread) and the cooperative budget of the job it is running.
//
// Shutdown state (monotonic): `closed` (no new spawns run their bodies; set once, never unset) →
// `terminated` (every runtime thread has stopped running jobs; set once, never unset). Jobs that still
// arrive after `terminated` (a task resumed late by something outside the runtime) are never dropped:
// they go to the inject queue and a drainer thread runs them (`ensureDrainer`), one at a time, and stops once
// the queue and the timers are empty. (Installed as the global executor, a terminated runtime still gets every
// plain job of the process, so the drainer can live as long as the process.)

import CKyoto
import Synchronization

/// Cooperative budget per job run (Tokio's constant).
let initialBudget = 128

final class Shared: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `executor` is written once in `Runtime.init` before any thread that
    // reads it is started (thread creation orders it); everything else is immutable or synchronized.

    // MARK: Immutable after init (any thread)
    let configuration: Runtime.Configuration
    /// The number of threads that run this runtime's tasks: the workers of a multi-thread runtime, 1 for a
    /// current-thread runtime.
    let workerCount: Int
    let inject = Inject()
    let registry: TaskRegistry
    let timers = TimerQueue()
    /// The runtime's time: real, or the paused test clock (Time/Clock.swift).
    let time: TimeSource
    /// The single identity every job runs on (see DESIGN.md §2). Set by `Runtime.init`.
    nonisolated(unsafe) var executor: UnownedTaskExecutor!
    /// The runtime, for `Runtime.current`. Not retained: runtime threads must not keep their runtime alive.
    /// Not `weak` either: a weak reference gives the runtime a side table, which sends every retain and
    /// release of it (one per task, through the executor preference) down Swift's slow refcount path.
    /// Safe because jobs that can ask for `Runtime.current` belong to tasks that retain the runtime
    /// (their executor preference) or to the installed global runtime, which is retained forever; the
    /// configuration's thread hooks, which run outside any job, cannot reach it (`ThreadContext.inHook`).
    var runtime: Runtime? { runtimeRef?.takeUnretainedValue() }
    /// `runtime` as stored: set once by `Runtime.init`, before any runtime thread starts.
    nonisolated(unsafe) var runtimeRef: Unmanaged<Runtime>?

    // MARK: Atomics (any thread)
    let closed = Atomic<Bool>(false)
    /// `blockOn` calls in progress (counted by `Runtime.blockOn`, both flavors). Shutdown cancels spawned
    /// tasks but not `blockOn` bodies, so the runtime terminates only once none is left: multi-thread
    /// workers stay (and keep firing timers on time) until then, and a current-thread runtime is marked
    /// terminated by whichever comes last, its shutdown or its last `blockOn` (CurrentThread.swift,
    /// "Shutdown while a blockOn drives"). Sequentially consistent: a store-buffering pair each time (the
    /// leaving `blockOn` decrements this, then reads the shutdown flag, `closed` or the current-thread
    /// scheduler's `terminationPending`; shutdown writes its flag, then the workers' `shouldExit` or the
    /// current-thread shutdown reads this), so at least one side sees the other. Entering is the same pair
    /// the other way round: `blockOn` increments this, then reads `closed` (and traps if set).
    let activeBlockOns = Atomic<Int>(0)
    let terminated = Atomic<Bool>(false)
    private let draining = Atomic<Bool>(false)
    /// Jobs scheduled from outside the runtime's threads (multi-writer: read-modify-write).
    let remoteSchedules = Atomic<UInt64>(0)
    let budgetForcedYields = Atomic<UInt64>(0)
    /// Whether workers hand the tasks other workers enqueued back to them after running them
    /// (HomeReturns.swift). Set when the runtime is installed as the global executor (tests set it too).
    let returnsStolenTasksHome = Atomic<Bool>(false)
    let terminatedEvent = OneShotEvent()
    /// Shutdowns waiting until no spawned task (none in the registry) is alive (`waitForSpawnedTasks`).
    /// Termination alone does not mean that: a current-thread runtime terminates when its last `blockOn`
    /// returns (CurrentThread.swift), and a task spawned from outside after the last worker's exit check is
    /// left to the drainer. The condition is re-checked, not latched: a foreign thread's spawn that read the
    /// runtime open but reserves its slot after the close makes the count rise again (TaskRegistry.swift; a
    /// spawn that reads it closed creates no task, `Runtime._refusedSpawn`).
    private let spawnedTasksWaiters = ParkerSet()

    /// Waits until no spawned task is alive or the monotonic `deadline` passes; returns whether none is.
    func waitForSpawnedTasks(deadline: UInt64) -> Bool {
        let parker = Parker()
        spawnedTasksWaiters.insert(parker)
        defer { spawnedTasksWaiters.remove(parker) }
        while true {
            // The ParkerSet protocol: inserted first, then counted. A finisher decrements under a shard
            // lock before it counts and calls `spawnedTasksMayBeDone`, and this count takes every shard lock.
            if registry.aliveCount == 0 { return true }
            let now = Platform.monotonicNanos()
            if now >= deadline { return false }
            parker.park(timeoutNanos: deadline - now)
        }
    }

    /// A spawned task finished after shutdown began and counted none alive (`Runtime._finishTask`): wakes
    /// `waitForSpawnedTasks`.
    func spawnedTasksMayBeDone() { spawnedTasksWaiters.unparkAll() }

    /// A parker to unpark once the runtime has terminated, besides `terminatedEvent`: the main thread's,
    /// when `runMain` waits for termination while it keeps running MainActor jobs (Runtime+Main.swift). It is
    /// unparked after `terminated` is stored, so a loop that reads `terminated` before parking cannot sleep
    /// through it (an unpark before the park makes the park return at once).
    let terminationWaker = CheckedMutex<Parker?>(nil)

    init(configuration: Runtime.Configuration, workers: Int) {
        self.configuration = configuration
        workerCount = workers
        registry = TaskRegistry(workers: workers)
        time = TimeSource(paused: configuration.startPaused)
    }

    var isClosed: Bool {
        // Sequentially consistent: pairs with the store in `Runtime.beginShutdown`; SeqCst for `blockOn`'s entry
        // check and the workers' `shouldExit` (see `activeBlockOns`). Other callers only need a recent value.
        closed.load(ordering: .sequentiallyConsistent)
    }

    /// Runs one job on the runtime's identity with a fresh budget.
    @inline(__always)
    func run(_ job: JobRef, context: ThreadContext, resetBudget: Bool = true) {
        if resetBudget { kyoto_budget_refill(Int32(initialBudget)) }
        context.runningJob = job
        job.unownedJob.runSynchronously(on: executor)
        context.resumeDeferred()
        context.runningJob = nil
    }

    /// The identity timer jobs run on: the default global executor's. A timer job is the wake-up task that
    /// `Task.sleep` hands to `SchedulingExecutor.enqueue(_:after:...)`. It has no executor preference, so
    /// run on the runtime's identity it would hop to the default executor (Dispatch's cooperative pool)
    /// before resuming the sleeper, and hang when that pool is blocked. Run on the default executor's
    /// identity, it resumes the sleeping task right here, and the sleeper is scheduled on this runtime
    /// through its own preference.
    let timerJobExecutor: UnownedTaskExecutor = globalConcurrentExecutor.asUnownedTaskExecutor()

    /// Fires a due timer on the calling runtime thread: runs a wake-up job inline (see
    /// `timerJobExecutor`), or resumes a `RuntimeClock.sleep`.
    func fireTimer(_ action: TimerAction) {
        switch action {
        case .job(let job): job.unownedJob.runSynchronously(on: timerJobExecutor)
        case .waker(let waker): waker.fire()
        }
    }

    /// Disposes of a timer after termination, when no runtime thread fires timers any more (the drainer
    /// thread calls this). A sleep on this runtime's clock can never reach its deadline: its waker resumes
    /// with `CancellationError`. A `Task.sleep` wake-up job keeps its deadline: it goes to the default
    /// executor Swift had before (`handOffAfterTermination`), which runs it then; the woken task is
    /// scheduled here again and the drainer runs it. Only if no such executor can schedule, or the clock is
    /// paused (its time no longer moves), the job runs now and the sleep returns early. The executor cannot
    /// tell a cancelled sleep's wake-up job from a live one (only the Swift runtime knows), so a job whose
    /// sleep shutdown cancelled is also kept until its deadline, as it would be in this runtime's timer queue
    /// or on Swift's default executor: a small job per cancelled sleep, freed when it fires.
    func disposeAfterTermination(_ action: TimerAction, deadline: UInt64) {
        switch action {
        case .job(let job):
            let now = time.now()
            let remaining = deadline > now ? deadline - now : 0
            if remaining == 0 || time.isPaused || !handOffAfterTermination(job, afterNanos: remaining) {
                job.unownedJob.runSynchronously(on: timerJobExecutor)
            }
        case .waker(let waker):
            waker.cancel(queued: false)
        }
    }

    /// Marks the runtime terminated and makes sure nothing left in the inject queue is stranded.
    func markTerminated() {
        // Sequentially consistent: pairs with the load in `afterRemotePush` (store-buffering: the pusher
        // writes the queue then reads `terminated`; we write `terminated` then read the queue).
        terminated.store(true, ordering: .sequentiallyConsistent)
        // Nobody here fires pending timers any more: the drainer disposes of them (`disposeAfterTermination`;
        // the tasks they belong to were cancelled by shutdown or belong to code outside the runtime's tasks).
        terminatedEvent.set()
        terminationWaker.withLock { $0 }?.unpark()
        // Sequentially consistent (`hasWorkSeqCst`): the load half of the store-buffering pair above; a
        // relaxed read could be ordered before the store.
        if inject.hasWorkSeqCst || timers.nextDeadline != nil { ensureDrainer() }
    }

    /// Called after pushing to the inject queue from outside the runtime's threads.
    @inline(__always)
    func afterRemotePush() {
        // Sequentially consistent: see `markTerminated`.
        if terminated.load(ordering: .sequentiallyConsistent) { ensureDrainer() }
    }

    /// Starts the post-shutdown drainer thread unless one is running.
    func ensureDrainer() {
        // Sequentially consistent: only one drainer at a time, and a store-buffering pair with `drain`'s
        // "clear the flag, then look at the queue" against the pusher's "push (SeqCst length), then try the
        // flag": with both sides SeqCst, either this CAS sees the cleared flag (and starts a drainer) or the
        // drainer's look sees the push.
        guard draining.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged
        else { return }
        let thread = Platform.spawnThread(name: "kyoto-drain", stackSize: configuration.threadStackSize) { [self] in
            drain()
        }
        thread.detach()
    }

    private func drain() {
        // Installed for the jobs, as on every runtime thread: code they run finds its runtime (`Runtime.current`,
        // the free `spawn`, which then returns a refused handle resolving cancelled, instead of trapping as if
        // called outside any runtime), and the cooperative budget and spin policy see the drainer.
        let context = ThreadContext(shared: self, worker: nil, currentThread: nil, role: .drain)
        ThreadContext.with(context) { drainLoop(context) }
    }

    private func drainLoop(_ context: ThreadContext) {
        while true {
            timers.drainAll { disposeAfterTermination($0, deadline: $1) }
            while let job = inject.pop() { run(job, context: context) }
            // Sequentially consistent: see `ensureDrainer`.
            draining.store(false, ordering: .sequentiallyConsistent)
            // Re-check after clearing the flag: a push that saw `draining == true` relied on us.
            if !inject.hasWorkSeqCst && timers.nextDeadline == nil { return }
            // Sequentially consistent: see `ensureDrainer`.
            guard draining.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent)
                .exchanged
            else { return }
        }
    }
}

/// What a runtime thread knows about itself. Owned by that thread; only that thread touches the vars.
final class ThreadContext {
    /// What the thread is doing for the runtime.
    enum Role {
        /// A multi-thread worker (holds `worker`).
        case worker
        /// The thread inside `blockOn` driving a current-thread runtime.
        case currentThreadDriver
        /// A blocking-pool thread.
        case blocking
        /// A former worker: running a `blockInPlace` closure (its worker moved to another thread), or running
        /// the stop hook after its worker stopped. It holds no worker, so it schedules remotely.
        case formerWorker
        /// The post-shutdown drainer.
        case drain
        /// A thread running a LocalSet's jobs (the `blockOn` thread of a multi-thread runtime).
        case localSet
        /// The process's main thread running the MainActor's jobs under `Runtime.runMain`.
        case mainThread
    }

    unowned(unsafe) let shared: Shared
    /// The worker this thread holds: non-nil exactly while `role == .worker` (nil once handed off by
    /// `blockInPlace`).
    var worker: Worker? {
        get { workerRef?.takeUnretainedValue() }
        set { workerRef = newValue.map { .passUnretained($0) } }
    }
    /// `worker`, unretained: the scheduler's `workers` array owns every worker for as long as any thread can
    /// run it, and a strong reference here costs a retain/release pair on every enqueue. Hot paths use
    /// `withWorker`.
    @exclusivity(unchecked) private var workerRef: Unmanaged<Worker>?
    let currentThread: CurrentThreadScheduler?
    var role: Role
    // The mutable state below is touched only by the thread that owns this context (it is reached through
    // a thread-local), so it needs no lock or atomics, and the stored fields skip Swift's dynamic
    // exclusivity checks (a `swift_beginAccess`/`swift_endAccess` pair on every access otherwise).

    /// Remaining cooperative budget of the job being run. Stored in a C thread-local (`kyoto_tls_budget`)
    /// so that `_budgetTryConsume` inlines into callers; valid because a context is only used by its thread.
    var budget: Int {
        get { Int(kyoto_budget_get()) }
        set { kyoto_budget_set(Int32(newValue)) }
    }
    /// The job being run (used to recognise a task re-scheduling itself).
    @exclusivity(unchecked) var runningJob: JobRef?
    /// Whether the thread is running one of the configuration's thread hooks (`runHook`). There the runtime
    /// is not reachable (`Runtime.current` is nil, the free `spawn` traps): a hook can run while the last
    /// reference to the runtime goes away (a worker's stop hook after the runtime was released, a park hook
    /// racing the release), and the runtime, held unretained, could be freed under it; a task spawned there
    /// would even retain the runtime during its deinit. A hook that needs the runtime captures it.
    @exclusivity(unchecked) var inHook = false
    /// Whether the thread is a worker that has stopped for good and is running its stop hook (it still
    /// counts among the runtime's live workers until the hook returns).
    @exclusivity(unchecked) var isStoppingWorker = false
    /// The task that yielded with `_yieldToRuntime()` during the job being run (in the role of Tokio's defer
    /// list). Resumed right after that job returns, by which time it has suspended; it goes to the back of
    /// the queue. One slot: a job that runs several tasks' segments (a default actor's drain) resumes an
    /// earlier deferral when the next one arrives.
    @exclusivity(unchecked) var deferred: UnsafeContinuation<Void, Never>?
    /// True while `resumeDeferred` runs: the enqueue it causes is a yield (back of the queue, no wake-up).
    @exclusivity(unchecked) var isResumingDeferred = false

    init(shared: Shared, worker: Worker?, currentThread: CurrentThreadScheduler?, role: Role) {
        self.shared = shared
        workerRef = worker.map { .passUnretained($0) }
        self.currentThread = currentThread
        self.role = role
    }

    /// Runs `body` with the worker this thread holds, without retaining it; nil if it holds none.
    @inline(__always)
    func withWorker<R>(_ body: (Worker) -> R) -> R? {
        workerRef?._withUnsafeGuaranteedRef(body)
    }

    /// Whether blocking this thread on the runtime would stall it: a worker, a current-thread driver, or the
    /// main thread running the MainActor under `runMain` (work it waits for may need the MainActor).
    var runsScheduler: Bool { role == .worker || role == .currentThreadDriver || role == .mainThread }

    /// Resumes the task deferred during the job that just returned, if any. The resumption enqueues the task
    /// on this thread, which `Worker.scheduleLocal` sees through `isResumingDeferred` and treats as a yield.
    @inline(__always)
    func resumeDeferred() {
        guard let continuation = deferred else { return }
        deferred = nil
        isResumingDeferred = true
        continuation.resume()
        isResumingDeferred = false
    }

    /// The calling thread's context, if it is a runtime thread.
    @inline(__always)
    static var current: ThreadContext? {
        guard let p = kyoto_tls_context_get() else { return nil }
        return Unmanaged<ThreadContext>.fromOpaque(p).takeUnretainedValue()
    }

    /// Runs a configuration hook (`onThreadStart` and the others) on the calling thread with the runtime
    /// hidden (see `inHook`).
    static func runHook(_ hook: (@Sendable () -> Void)?) {
        guard let hook else { return }
        guard let context = ThreadContext.current else { return hook() }
        let outer = context.inHook
        context.inHook = true
        defer { context.inHook = outer }
        hook()
    }

    /// Runs `body` with the calling thread's context, without retaining it (the hot scheduling and spawning
    /// paths: a retain/release pair there is measurable). Returns nil on threads that have no context.
    @inline(__always)
    static func withCurrent<R>(_ body: (ThreadContext) -> R) -> R? {
        guard let p = kyoto_tls_context_get() else { return nil }
        // The context outlives every job its thread runs (`with` keeps it alive), so a guaranteed
        // reference for the duration of `body` is sound.
        return Unmanaged<ThreadContext>.fromOpaque(p)._withUnsafeGuaranteedRef(body)
    }

    /// Installs `context` as the calling thread's context for the duration of `body`.
    /// The budget starts full and is restored with the previous context afterwards.
    static func with<R>(_ context: ThreadContext, _ body: () throws -> R) rethrows -> R {
        let previous = kyoto_tls_context_get()
        let previousBudget = kyoto_budget_get()
        kyoto_tls_context_set(Unmanaged.passUnretained(context).toOpaque())
        kyoto_budget_refill(Int32(initialBudget))
        defer {
            kyoto_tls_context_set(previous)
            kyoto_budget_set(previousBudget)
        }
        return try withExtendedLifetime(context) { try body() }
    }
}

/// A flag that is set once and can be waited for, with a deadline. Any thread.
final class OneShotEvent: @unchecked Sendable {
    // SAFETY: `word` is only accessed atomically (Swift atomics and futex syscalls).
    private let word: UnsafeMutablePointer<Atomic<UInt32>>

    init() {
        word = .allocate(capacity: 1)
        word.initialize(to: Atomic(0))
    }

    deinit {
        word.deinitialize(count: 1)
        word.deallocate()
    }

    var isSet: Bool {
        // Acquiring: pairs with the releasing store in `set`.
        word.pointee.load(ordering: .acquiring) == 1
    }

    func set() {
        // Releasing: publishes what the setter wrote before (results, state) to waiters.
        word.pointee.store(1, ordering: .releasing)
        _ = kyoto_futex_wake(UnsafeMutableRawPointer(word).assumingMemoryBound(to: UInt32.self), Int32.max)
    }

    /// Waits until set or until `timeout` passes (nil = forever). Returns whether it is set.
    @discardableResult
    func wait(timeout: Duration? = nil) -> Bool {
        let deadline = timeout.map { Platform.monotonicNanos() &+ UInt64(max(0, $0.nanoseconds)) }
        while !isSet {
            var remaining: Int64 = -1
            if let deadline {
                let now = Platform.monotonicNanos()
                if now >= deadline { return isSet }
                remaining = Int64(deadline - now)
            }
            _ = kyoto_futex_wait(UnsafeMutableRawPointer(word).assumingMemoryBound(to: UInt32.self), 0, remaining)
        }
        return true
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, overflowAgain) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflowAgain { return seconds < 0 ? .min : .max }
        return total
    }
}
