// MultiThread: the work-stealing scheduler (Tokio's `multi_thread` flavor) and its workers.
//
// Moving parts: N workers, each with a LIFO slot, a 256-slot LocalQueue (stealable) and a Parker; one
// Inject queue; the Idle bookkeeping of searchers and sleepers.
//
// Scheduling a job (`schedule`):
// - on a worker of this runtime: `Worker.scheduleLocal`: into the LIFO slot (the previous occupant goes to
//   the back of the local queue), except a yield (the `Task.yield()` continuation job, or the running job
//   re-scheduling itself), which goes to the back of the local queue so others run first. If the worker now
//   holds more than one runnable job and nobody is searching, a parked worker is woken to steal.
// - anywhere else: push to the inject queue, wake a parked worker if nobody is searching.
//
// The run loop (`Worker.runLoop`), one iteration = one tick:
// 1. every `eventInterval` ticks: maintenance (global-queue-interval tuning, busy-time accounting, releasing
//    the finished tasks returned to this worker, see HomeReturns.swift);
// 2. next job: every `globalQueueInterval` ticks the inject queue first; otherwise LIFO slot, local queue,
//    then a batch from the inject queue (its share: len/N + 1, bounded by free local slots and 128);
// 3. else steal: become a searcher (at most half the workers search), steal half of a random victim's
//    queue, else take from the inject queue;
// 4. else park. The last searcher to park re-checks every queue (see Idle.swift).
// After a job runs, the worker runs the LIFO slot's job right away, at most 3 times in a row and only
// while the cooperative budget lasts; the chain then goes to the back of the queue, so a task that keeps
// waking a partner cannot starve the queue (Tokio's MAX_LIFO_POLLS_PER_TICK). After a job in which a task
// yielded, the worker fires the timers that are due (a yield lets the time driver run, as in Tokio).
//
// Shutdown: `closed` is set, every task in the registry is cancelled and every worker unparked. Workers
// keep running jobs (cancelled tasks must run to unwind) and exit once the runtime is closed, no spawned
// task is alive and they see no work. The last worker out marks the runtime terminated (Shared.swift).

import Synchronization

final class MultiThreadScheduler: Sendable {
    let shared: Shared
    let workers: [Worker]
    let idle: Idle
    private let liveWorkers: Atomic<Int>
    /// Workers that have not exited yet (for tests). Relaxed: a snapshot; nothing is read through it.
    var liveWorkerCount: Int { liveWorkers.load(ordering: .relaxed) }
    /// Index of the worker that sleeps until the next timer deadline (the time driver), or -1.
    let timeDriver = Atomic<Int>(-1)
    private let threads = CheckedMutex<[OSThread]>([])

    init(shared: Shared, workerCount: Int) {
        self.shared = shared
        idle = Idle(workerCount: workerCount)
        liveWorkers = Atomic(workerCount)
        var workers: [Worker] = []
        for i in 0..<workerCount { workers.append(Worker(index: i, shared: shared)) }
        self.workers = workers
        for worker in workers { worker.scheduler = self }
    }

    /// Starts the worker threads. Called once by `Runtime.init`, after `shared.executor` is set.
    func start() {
        let config = shared.configuration
        var started: [OSThread] = []
        for worker in workers {
            let name = "\(config.threadName)-\(worker.index)"
            started.append(
                Platform.spawnThread(name: name, stackSize: config.threadStackSize) { [self] in
                    if worker.run() == .exited { workerExited() }
                })
        }
        threads.withLock { $0 = started }
    }

    /// `blockInPlace` on a worker thread: moves `worker` (its queues, LIFO slot and counters) to a new
    /// thread, so the calling thread can block. The caller's context stops holding the worker at once;
    /// its run loop notices when the current job returns and lets the thread end.
    func handOff(_ worker: Worker, from context: ThreadContext) {
        kyotoPrecondition(context.worker === worker, "BUG DETECTED: handing off a worker this thread does not hold")
        context.worker = nil
        context.role = .formerWorker
        let name = "\(shared.configuration.threadName)-\(worker.index)"
        // Thread creation orders everything this thread wrote to the worker before the new thread reads it.
        let thread = Platform.spawnThread(name: name, stackSize: shared.configuration.threadStackSize) { [self] in
            if worker.run() == .exited { workerExited() }
        }
        thread.detach()
    }

    private func workerExited() {
        // Acquiring-and-releasing: the last worker out observes every other worker's exit.
        if liveWorkers.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            shared.markTerminated()
        }
    }

    /// Detaches the worker threads (they exit by themselves once the runtime has shut down).
    func detachThreads() {
        let all = threads.withLock { t -> [OSThread] in
            let copy = t
            t = []
            return copy
        }
        for t in all { t.detach() }
    }

    /// Schedules a job from any thread. The caller need not hold a reference to the scheduler (`Runtime`
    /// reaches it unretained): on one of its workers the worker thread keeps it alive, and the remote path
    /// holds its own reference (see `scheduleRemote`).
    @inline(__always)
    func schedule(_ job: JobRef) {
        let local = ThreadContext.withCurrent { context -> Bool in
            guard context.shared === shared else { return false }
            return context.withWorker { worker in
                worker.scheduleLocal(job, context: context)
                return true
            } ?? false
        }
        if local != true { scheduleRemote(job) }
    }

    func scheduleRemote(_ job: JobRef) {
        // Once the job is in the inject queue a worker may run its task to completion, and the task's
        // executor preference may have been the last reference to the runtime: the runtime, this scheduler
        // and `shared` could be freed before the wake-up below. Hold the scheduler (which holds `shared`)
        // until we are done. (Seen as a crash in `afterRemotePush` on a LocalSet thread resuming a task
        // whose runtime was released right after the task finished.)
        let keepAlive = Unmanaged.passUnretained(self).retain()
        defer { keepAlive.release() }
        // Unconditionally (a store is cheaper than reading whether returns are on): not a worker's job.
        job.enqueuedBy = 0
        shared.inject.push(job)
        // Relaxed: a statistic read by `Runtime.metrics`; nothing is published through it.
        shared.remoteSchedules.wrappingAdd(1, ordering: .relaxed)
        notifyParked()
        shared.afterRemotePush()
    }

    /// Wakes one parked worker if nobody is searching.
    func notifyParked() {
        if let index = idle.workerToNotify() {
            workers[index].parker.unpark()
        }
    }

    /// Wakes a worker if any queue holds work (the last searcher's re-check before it sleeps).
    func notifyIfWorkPending() {
        // Orders this worker's SeqCst update of the idle state (`transitionToParked`) before the relaxed reads
        // of the local queues' lengths below; pairs with the fence in `Idle.notifyShouldWakeUp`, so either
        // the notifier sees this worker parked or this re-check sees the notifier's push.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        for worker in workers where !worker.queue.isEmpty {
            notifyParked()
            return
        }
        if shared.inject.hasWorkSeqCst { notifyParked() }
    }

    /// A new earliest timer exists: wake the time driver so it re-arms its sleep, or, if no worker is
    /// driving time, a parked worker (which becomes the driver when it parks again).
    func timerBecameEarliest() {
        // Sequentially consistent: pairs with the driver election in `Worker.park` (see TimerQueue.swift).
        let driver = timeDriver.load(ordering: .sequentiallyConsistent)
        if driver >= 0 {
            workers[driver].parker.unpark()
        } else {
            notifyParked()
        }
    }

    /// Unparks every worker (shutdown).
    func wakeAll() {
        for worker in workers { worker.parker.unpark() }
    }

    var metricsSnapshot: [RuntimeMetrics.Worker] {
        workers.map { RuntimeMetrics.Worker($0.stats, depth: $0.queue.count) }
    }
}

/// One worker of the multi-thread scheduler.
final class Worker: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the "owner thread only" vars are touched only by the thread running
    // `run()` (reached through its ThreadContext); the rest is immutable, atomic or self-synchronized.

    /// At most this many jobs run back to back from the LIFO slot (Tokio's MAX_LIFO_POLLS_PER_TICK:
    /// "picked out of thin air" there too; 3 keeps ping-pong pairs fast without starving the queue).
    static let maxLifoPollsPerTick = 3

    /// Keeps the fields below off the cache line of the object header: thieves and notifiers on other
    /// workers retain and release workers (`workers[i]`), and the reference count would otherwise share a
    /// line with the queue pointer and owner state read on every scheduling step.
    private let headerPadding: (Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0)

    // MARK: Immutable after init (any thread)
    let index: Int
    let shared: Shared
    let queue = LocalQueue()
    let parker = Parker()
    /// References to tasks this worker enqueued that other workers ran (see HomeReturns.swift).
    let homeReturns = HomeReturns()
    let stats = WorkerStats()
    /// Set once right after init, before the thread starts. Unretained: the scheduler owns its workers.
    var scheduler: MultiThreadScheduler {
        get { schedulerRef.takeUnretainedValue() }
        set { schedulerRef = .passUnretained(newValue) }
    }
    nonisolated(unsafe) private var schedulerRef: Unmanaged<MultiThreadScheduler>!
    /// `shared.inject`, unretained (`shared` owns it).
    private let injectRef: Unmanaged<Inject>

    // The scheduler and the inject queue are shared by every worker: a retain/release of either on the
    // scheduling path bounces its reference count between cores. The hot paths reach them through these
    // guaranteed (unretained) references instead.
    @inline(__always)
    private func withScheduler<R>(_ body: (MultiThreadScheduler) -> R) -> R {
        schedulerRef._withUnsafeGuaranteedRef(body)
    }

    @inline(__always)
    private func withInject<R>(_ body: (Inject) -> R) -> R {
        injectRef._withUnsafeGuaranteedRef(body)
    }

    // MARK: Owner thread only
    /// Registry slots reserved in advance for this worker's spawns (`takeSlot`), `slotStashCount` of them.
    private let slotStash = UnsafeMutablePointer<TaskSlot>.allocate(capacity: Worker.slotStashCapacity)
    private var slotStashCount = 0
    private static let slotStashCapacity = 16
    private var lifo: JobRef?
    private var isSearching = false
    /// Whether this worker, still on the sleeper list, is firing timers as the time driver inside `park`:
    /// the jobs those timers schedule here must not make it notify, since the notify could pick this very
    /// worker (the newest sleeper). It notifies once it has left the list instead (Tokio does the same).
    private var firingTimersInPark = false
    /// A yield queued work here during the running job: check for a parked worker to wake once the job has
    /// returned (see `scheduleLocal`).
    private var notifyAfterJob = false
    /// Task references this worker holds for another worker (`outgoingHome`, an index) until it hands them
    /// over in one deposit (`flushReturns`), `outgoingCount` of them: one lock section and one write of the
    /// home worker's pending flag per batch instead of per stolen job (HomeReturns.swift).
    private let outgoing = UnsafeMutablePointer<UInt>.allocate(capacity: Worker.returnBatch)
    private var outgoingCount = 0
    private var outgoingHome = 0
    private static let returnBatch = 16
    /// `shared.returnsStolenTasksHome`, refreshed when the worker starts, after it parks and in maintenance
    /// (read on every job, so it is kept in this worker's own state rather than loaded from the shared
    /// object).
    private var returnsStolenTasksHome = false
    /// A task yielded (back of the queue) during the last job run: the run loop fires due timers before the
    /// next job. Owner thread only.
    private var yieldedSinceTimerCheck = false
    private var tick: UInt32 = 0
    private var rng: UInt32
    private var globalQueueInterval: UInt32
    private let eventInterval: UInt32
    private let tunesInterval: Bool
    private let lifoEnabled: Bool
    private var pollTimeEWMA: Double
    private var busyStart: UInt64 = 0
    private var pollsAtLastTune: UInt64 = 0
    private var busyAtLastTune: UInt64 = 0

    /// Target time between inject-queue checks when self-tuning (Tokio: 200 µs).
    private static let tuningTargetNanos = 200_000.0
    private static let ewmaAlpha = 0.1

    init(index: Int, shared: Shared) {
        self.index = index
        self.shared = shared
        injectRef = .passUnretained(shared.inject)
        let config = shared.configuration
        rng = UInt32(truncatingIfNeeded: 0x9E37_79B9 &* UInt32(index + 1)) | 1
        eventInterval = UInt32(config.eventInterval)
        tunesInterval = config.globalQueueInterval == nil
        globalQueueInterval = UInt32(config.globalQueueInterval ?? 61)
        pollTimeEWMA = Worker.tuningTargetNanos / 61
        lifoEnabled = config.lifoSlot
    }

    deinit {
        slotStash.deinitialize(count: slotStashCount)
        slotStash.deallocate()
        // The run loop hands every held reference over before it parks or exits; none is left here.
        for i in 0..<outgoingCount { HomeReturns.release(bits: outgoing[i]) }
        outgoing.deallocate()
    }

    // MARK: Spawning from this worker's own thread

    /// A reserved registry slot for a task this worker spawns: from the stash, refilled a batch at a time
    /// (one registry lock per batch instead of one per spawn). Each refill also releases the finished tasks
    /// returned to this worker whose release runs no user code, so a spawning loop recycles their memory
    /// as it goes (HomeReturns.swift). Owner thread only.
    @inline(__always)
    func takeSlot() -> TaskSlot {
        if slotStashCount == 0 {
            homeReturns.drainReleasableAnywhere()
            shared.registry.reserve(homeWorker: index, count: Worker.slotStashCapacity, into: slotStash)
            slotStashCount = Worker.slotStashCapacity
        }
        slotStashCount -= 1
        return (slotStash + slotStashCount).move()
    }

    /// Returns the stashed slots to the registry (the worker stops). Owner thread only.
    private func returnStashedSlots() {
        shared.registry.unreserve(UnsafeBufferPointer(start: slotStash, count: slotStashCount))
        slotStash.deinitialize(count: slotStashCount)
        slotStashCount = 0
    }

    // MARK: Scheduling from this worker's own thread

    /// Schedules `job` from this worker's thread. Owner thread only.
    @inline(__always)
    func scheduleLocal(_ job: JobRef, context: ThreadContext) {
        stats.localSchedules.add()
        if returnsStolenTasksHome { job.enqueuedBy = UInt(index + 1) }
        if job == context.runningJob || job.isYieldContinuation || context.isResumingDeferred {
            // A yield: the back of the queue. Tokio's `schedule_local` notifies here as everywhere; here the
            // notify check runs only when the queue holds other work than the yielder (`notifyIfOthersQueued`).
            // Without it, tasks queued behind a long job here waited for it while another worker slept
            // (nothing else would wake that worker).
            //
            // And only once the running job has returned (`runJob`): `Task.yield()` enqueues its continuation
            // job BEFORE the task has finished suspending, and a worker woken now could run that job at once;
            // the task's await then finds itself already resumed and carries on right here, so the yield
            // let nothing run (seen: a task yielding behind one in the LIFO slot resumed before it).
            pushBack(job)
            notifyAfterJob = true
            yieldedSinceTimerCheck = true
            return
        }
        if !lifoEnabled {
            // No LIFO slot: the back of the queue, where another worker can steal it, so wake a parked one
            // if nobody is searching (without this, tasks spawned here waited for this worker even while
            // another one slept).
            pushBack(job)
            if !isSearching && !firingTimersInPark { withScheduler { $0.notifyParked() } }
            return
        }
        if let previous = lifo {
            lifo = job
            pushBack(previous)
        } else {
            lifo = job
            return
        }
        notifyIfOthersQueued()
    }

    /// Tokio's `should_notify_others`: more than one job waits here (the LIFO slot and the queue) and this
    /// worker is not searching (a searcher's own search wakes the next one), so another worker could take
    /// some. False while the time driver fires timers inside `park` (see `firingTimersInPark`). Owner thread.
    @inline(__always)
    private var shouldNotifyOthers: Bool {
        !isSearching && !firingTimersInPark && queue.count + (lifo == nil ? 0 : 1) > 1
    }

    /// Wakes a parked worker if this worker holds more than one job and is not searching (Tokio's
    /// `notify_parked_local` behind `should_notify_others`): after a LIFO push displaced a job, after a yield's
    /// job returned, at the LIFO chain's cut, after a park and in maintenance.
    ///
    /// The full check, fence included (`Idle.notifyShouldWakeUp`), on every path. The yield and chain-cut
    /// paths used to take a relaxed look at the idle state first, to spare the fence; but a relaxed load after
    /// the queue push can miss the last searcher's park while that searcher's re-check misses the push (store
    /// buffering: each side needs its fence), and the work then waited here for this worker's next job,
    /// however long, with the other worker asleep.
    /// Paired A/Bs (`pair-ab.py`, 100 turns, relaxed pre-check against none) measured no cost: `yield_many`
    /// 1.03× installed and 1.05× in preference mode (the 5–8% seen when the pre-check came in did not
    /// reproduce), `ping_pong` 0.99×.
    @inline(__always)
    private func notifyIfOthersQueued() {
        guard shouldNotifyOthers else { return }
        withScheduler { $0.notifyParked() }
    }

    @inline(__always)
    private func pushBack(_ job: JobRef) {
        if withInject({ queue.pushBackOrOverflow(job, inject: $0) }) {
            stats.overflows.add()
            // Not while firing timers inside park (the notify could pick this worker); the end of park checks.
            if !firingTimersInPark { withScheduler { $0.notifyParked() } }
        }
    }

    // MARK: The run loop

    /// How a worker's run on a thread ended.
    enum RunOutcome {
        /// The runtime shut down and the worker stopped.
        case exited
        /// `blockInPlace` moved the worker to another thread; this thread no longer holds it.
        case handedOff
    }

    /// Runs the worker on the calling thread until shutdown or hand-off.
    func run() -> RunOutcome {
        let context = ThreadContext(shared: shared, worker: self, currentThread: nil, role: .worker)
        return ThreadContext.with(context) {
            ThreadContext.runHook(shared.configuration.onThreadStart)
            busyStart = Platform.monotonicNanos()
            refreshReturnsStolenTasksHome()
            let outcome = runLoop(context)
            if outcome == .exited {
                // The worker has stopped: work the stop hook schedules must not land in its queues, which
                // nobody runs any more. As a former worker, the thread schedules remotely (the inject queue,
                // which the other workers or, after termination, the drainer run).
                context.worker = nil
                context.role = .formerWorker
                context.isStoppingWorker = true
            }
            ThreadContext.runHook(shared.configuration.onThreadStop)
            return outcome
        }
    }

    private func runLoop(_ context: ThreadContext) -> RunOutcome {
        while true {
            tick &+= 1
            if tick % eventInterval == 0 { maintenance() }
            if let job = nextJob() ?? stealWork() {
                // After a job that called `blockInPlace`, this thread no longer holds the worker: it must
                // not touch the worker's state again (another thread owns it now).
                if !runJob(job, context: context) { return .handedOff }
                // A yield lets the timers run (Tokio defers a yielded task until the worker has polled its
                // driver): a task that yields in a loop waiting for a timer's effect sees it at its next
                // turn, not up to `eventInterval` jobs later. Costs a load when no timer is pending.
                if yieldedSinceTimerCheck {
                    yieldedSinceTimerCheck = false
                    _ = fireDueTimers()
                }
                // Between jobs (no caller's frames on the stack, so no caller's locks held): release what
                // other workers returned (HomeReturns.swift). Their results' deinits are user code.
                if returnsStolenTasksHome { homeReturns.drainIfPending() }
                continue
            }
            if shouldExit() {
                // A searcher that exits must leave the searching count: notifiers wake nobody while it is
                // above zero, so a stale one would strand every later remote schedule (the other worker
                // parks as a non-searcher, trusting the searcher to find the work).
                if isSearching {
                    isSearching = false
                    if scheduler.idle.transitionFromSearching() { scheduler.notifyParked() }
                }
                returnStashedSlots()
                flushReturns()
                // Asleep for good: depositors release what they return to this worker from now on.
                homeReturns.homeParks()
                // That drain released finished tasks, whose results' deinits may have scheduled work here.
                if hasLocalWork {
                    homeReturns.homeWakes()
                    continue
                }
                // Wake the others to look again: one may have parked because its own exit check saw a job in
                // the inject queue (a plain task resumed from outside after shutdown) that this worker then
                // ran. Nothing else wakes it: that job's task is not a spawned one, so its end wakes nobody.
                withScheduler { $0.wakeAll() }
                return .exited
            }
            park()
        }
    }

    /// How long a parking worker sleeps: nil (until woken) unless it is, or now becomes, the time driver
    /// (`elect`, tried only while timers are pending), in which case it sleeps until the earliest deadline.
    ///
    /// The deadline is read AFTER a successful election. A timer inserted between an earlier read and the
    /// election found no driver (`timerBecameEarliest` reads `timeDriver` after storing `earliest`) and
    /// notified a parked worker, possibly this one's neighbour that parks again without a timeout as a
    /// non-driver, or nobody when another worker was searching; a deadline read before the election would
    /// then put the new driver to sleep until the previous earliest timer. In the SeqCst order the
    /// inserter's store of `earliest`, its load of `timeDriver` (seeing no driver), the election and this
    /// read follow one another, so this read sees the new deadline.
    static func driverTimeout(
        isDriver: inout Bool, nextDeadline: () -> UInt64?, elect: () -> Bool, now: () -> UInt64
    ) -> UInt64? {
        if !isDriver {
            guard nextDeadline() != nil else { return nil }
            isDriver = elect()
        }
        guard isDriver, let deadline = nextDeadline() else { return nil }
        let current = now()
        return deadline > current ? deadline - current : 0
    }

    /// Whether this worker's LIFO slot or local queue holds a job. Owner thread only.
    private var hasLocalWork: Bool { lifo != nil || !queue.isEmpty }

    private func shouldExit() -> Bool {
        // Sequentially consistent: see `Shared.activeBlockOns`.
        shared.isClosed && shared.registry.aliveCount == 0 && lifo == nil && queue.isEmpty
            && shared.inject.isEmpty && shared.activeBlockOns.load(ordering: .sequentiallyConsistent) == 0
    }

    /// Runs `job` and then the LIFO chain. Returns false if a job handed the worker off (`blockInPlace`).
    private func runJob(_ job: JobRef, context: ThreadContext) -> Bool {
        if isSearching {
            isSearching = false
            // The last searcher found work: wake another worker, more may be waiting (chain wake-up).
            withScheduler { scheduler in
                if scheduler.idle.transitionFromSearching() { scheduler.notifyParked() }
            }
        }
        stats.polls.add()
        // A task job another worker enqueued goes home afterwards (HomeReturns.swift): hold a reference for
        // the run, then hand it to that worker. Jobs of the LIFO chain below were scheduled by this worker.
        // Workers write `enqueuedBy` only while returns are on (a remote schedule always clears it), so a job
        // a worker queued before they were turned on may carry a stale value, or another executor's bytes:
        // the range check keeps that harmless.
        let home = returnsStolenTasksHome ? Int(bitPattern: job.enqueuedBy) : 0
        let returnsHome = home > 0 && home != index + 1 && job.isStandaloneTask
            && home <= withScheduler { $0.workers.count }
        let task = Unmanaged<AnyObject>.fromOpaque(job.raw)
        if returnsHome { _ = task.retain() }
        shared.run(job, context: context, resetBudget: true)
        // Ownership first: after a `blockInPlace` hand-off another thread owns the flag.
        if context.worker === self && notifyAfterJob {
            notifyAfterJob = false
            notifyIfOthersQueued()
        }
        if returnsHome {
            if context.worker === self {
                returnLater(task, home: home - 1)
            } else {
                // `blockInPlace` handed this worker (and its held references) to another thread.
                withScheduler { $0.workers[home - 1].homeReturns.deposit(task) }
            }
        }
        if context.worker !== self { return false }
        var lifoPolls = 0
        while let next = lifo {
            lifo = nil
            if lifoPolls >= Worker.maxLifoPollsPerTick || context.budget <= 0 {
                pushBack(next)
                notifyIfOthersQueued()
                return true
            }
            lifoPolls += 1
            stats.lifoHits.add()
            stats.polls.add()
            // LIFO-chained jobs share the budget of the job that started the chain (Tokio's rule).
            shared.run(next, context: context, resetBudget: false)
            if context.worker !== self { return false }
            if notifyAfterJob {
                notifyAfterJob = false
                notifyIfOthersQueued()
            }
        }
        return true
    }

    /// Holds `task`'s reference for worker `home` until the batch is full. Owner thread only.
    @inline(__always)
    private func returnLater(_ task: Unmanaged<AnyObject>, home: Int) {
        if outgoingCount > 0 && outgoingHome != home { flushReturns() }
        outgoingHome = home
        outgoing[outgoingCount] = UInt(bitPattern: task.toOpaque())
        outgoingCount += 1
        if outgoingCount == Worker.returnBatch { flushReturns() }
    }

    /// Hands the held references to their home worker: when the batch is full, in maintenance (every
    /// `eventInterval` ticks), before this worker parks and when it stops, so none waits past a park. A long
    /// job run meanwhile delays the hand-over, and so the release of those tasks' results (see the file
    /// comment of HomeReturns.swift). Owner thread only, between jobs.
    private func flushReturns() {
        guard outgoingCount > 0 else { return }
        let count = outgoingCount
        outgoingCount = 0
        withScheduler { $0.workers[outgoingHome].homeReturns.deposit(batch: outgoing, count: count) }
    }

    private func nextJob() -> JobRef? {
        if tick % globalQueueInterval == 0 {
            if let job = withInject({ $0.pop() }) { return job }
            return nextLocal()
        }
        if let job = nextLocal() { return job }
        return withInject { inject -> JobRef? in
            if inject.isEmpty { return nil }
            let cap = min(queue.remainingSlots, Int(LocalQueue.capacity / 2))
            let share = inject.count / withScheduler { $0.workers.count } + 1
            let n = max(1, min(share, cap))
            return inject.popBatch(limit: n) { pushBack($0) }
        }
    }

    @inline(__always)
    private func nextLocal() -> JobRef? {
        if let job = lifo {
            lifo = nil
            return job
        }
        return queue.pop()
    }

    private func stealWork() -> JobRef? {
        if !isSearching {
            isSearching = scheduler.idle.transitionToSearching()
            if !isSearching { return nil }
        }
        let workers = scheduler.workers
        let n = workers.count
        let start = Int(nextRandom() % UInt32(n))
        for i in 0..<n {
            let victim = (start + i) % n
            if victim == index { continue }
            var stolen = 0
            if let job = workers[victim].queue.stealInto(queue, stolen: &stolen) {
                stats.steals.add(UInt64(stolen))
                stats.stealOperations.add()
                return job
            }
        }
        return shared.inject.pop()
    }

    private func refreshReturnsStolenTasksHome() {
        // Relaxed: a performance choice; a worker that reads the old value frees tasks where it is.
        returnsStolenTasksHome = shared.returnsStolenTasksHome.load(ordering: .relaxed)
    }

    private func nextRandom() -> UInt32 {
        // xorshift32: cheap victim selection; quality is irrelevant here.
        rng ^= rng << 13
        rng ^= rng >> 17
        rng ^= rng << 5
        return rng
    }

    private func park() {
        // Fire due timers first: if any fired, there is work and no reason to sleep.
        if fireDueTimers() > 0 { return }
        flushReturns()
        // Marks this worker asleep for depositors, then releases the finished tasks returned to it (see the
        // handshake in HomeReturns.swift).
        homeReturns.homeParks()
        defer { homeReturns.homeWakes() }
        accountBusyTime()
        ThreadContext.runHook(shared.configuration.onThreadPark)
        // User code just ran on this thread: the drain released finished tasks (their results' deinits) and
        // the park hook ran. Either may have scheduled work here, possibly into the LIFO slot, which nobody
        // else can take (Tokio #8212): run it instead of sleeping.
        if hasLocalWork {
            ThreadContext.runHook(shared.configuration.onThreadUnpark)
            busyStart = Platform.monotonicNanos()
            return
        }
        let wasSearching = isSearching
        isSearching = false
        let isLastSearcher = scheduler.idle.transitionToParked(index, isSearching: wasSearching)
        if isLastSearcher { scheduler.notifyIfWorkPending() }
        stats.parks.add()
        var isDriver = false
        while true {
            // Become the time driver if timers are pending and nobody drives; the driver sleeps only until
            // the earliest deadline. Sequentially consistent: see TimerQueue.swift and `driverTimeout`.
            let timeout = Worker.driverTimeout(
                isDriver: &isDriver,
                nextDeadline: { shared.timers.nextDeadline },
                elect: {
                    scheduler.timeDriver.compareExchange(
                        expected: -1, desired: index, ordering: .sequentiallyConsistent
                    ).exchanged
                },
                now: { Platform.monotonicNanos() })
            parker.park(timeoutNanos: timeout)
            stats.unparks.add()
            firingTimersInPark = true
            let fired = isDriver ? fireDueTimers() : 0
            firingTimersInPark = false
            if fired > 0 {
                // We made work: leave the sleeper list unless a notifier already took us off it (then it
                // counted us as searching).
                isSearching = !scheduler.idle.unparkWorker(index)
                break
            }
            if shared.isClosed {
                // Shutdown woke us: take ourselves off the sleeper list (unless a notifier already did,
                // in which case we were counted as searching).
                isSearching = !scheduler.idle.unparkWorker(index)
                break
            }
            if !scheduler.idle.isParked(index) {
                // A notifier chose us and counted us as searching.
                isSearching = true
                break
            }
            stats.noops.add()
        }
        if isDriver {
            // Sequentially consistent: see TimerQueue.swift. Timers that remain are driven by the next
            // worker to park (Tokio hands its driver on the same way). A worker that parked meanwhile lost
            // the election to this one and sleeps without a timeout, and a timer inserted meanwhile woke
            // this (already awake) driver: wake a parked worker so that it takes the role over, rather than
            // leave the timers to this worker's next park, after however long a job it runs now. When a
            // notifier woke this worker, it counts as a searcher and this notify wakes nobody; the hand-over
            // then comes from the chain wake when this worker finds its job (`runJob`: the last searcher to
            // find work wakes a parked worker, which becomes the driver as it parks again) or, if it finds
            // none, from its own next park.
            scheduler.timeDriver.store(-1, ordering: .sequentiallyConsistent)
            if shared.timers.nextDeadline != nil { scheduler.notifyParked() }
        }
        // Off the sleeper list with more work than one job here (timers this driver fired, say): wake a
        // partner for the rest (Tokio's `should_notify_others` after a park).
        notifyIfOthersQueued()
        ThreadContext.runHook(shared.configuration.onThreadUnpark)
        refreshReturnsStolenTasksHome()
        busyStart = Platform.monotonicNanos()
    }

    /// Runs due timers' wake-up jobs here (they resume their sleeping tasks, which this worker then
    /// schedules locally). Owner thread only. Returns how many fired.
    private func fireDueTimers() -> Int {
        guard let deadline = shared.timers.nextDeadline else { return 0 }
        let now = Platform.monotonicNanos()
        if deadline > now { return 0 }
        return shared.timers.fireDue(now: now) { shared.fireTimer($0) }
    }

    private func accountBusyTime() {
        let now = Platform.monotonicNanos()
        if now > busyStart { stats.busyNanos.add(now - busyStart) }
        busyStart = now
    }

    /// Every `eventInterval` ticks: busy-time accounting, releasing the finished tasks returned to this
    /// worker and global-queue-interval tuning.
    private func maintenance() {
        accountBusyTime()
        flushReturns()
        homeReturns.drain()
        refreshReturnsStolenTasksHome()
        _ = fireDueTimers()
        // Tokio's fallback: more than one job here and nobody searching, so wake a parked worker to take some.
        notifyIfOthersQueued()
        guard tunesInterval else { return }
        let polls = stats.polls.load
        let busy = stats.busyNanos.load
        let newPolls = polls &- pollsAtLastTune
        let newBusy = busy &- busyAtLastTune
        pollsAtLastTune = polls
        busyAtLastTune = busy
        guard newPolls > 0 else { return }
        // Tokio's self-tuning: an EWMA of the mean poll time, weighted by how many polls the sample covers,
        // and an interval that makes the inject queue be checked about every 200 µs.
        let mean = Double(newBusy) / Double(newPolls)
        let alpha = 1 - pow(1 - Worker.ewmaAlpha, Double(min(newPolls, 1000)))
        pollTimeEWMA = alpha * mean + (1 - alpha) * pollTimeEWMA
        let target = Worker.tuningTargetNanos / max(pollTimeEWMA, 1)
        let interval = UInt32(min(127, max(2, target)))
        if interval > globalQueueInterval + 2 || interval + 2 < globalQueueInterval {
            globalQueueInterval = interval
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
