// CurrentThread: the single-threaded scheduler (Tokio's `current_thread` flavor).
//
// Jobs run only on a thread that is inside `Runtime.blockOn`; that thread holds the *core* (the right to
// drive) while it is there. Jobs scheduled from the driving thread go to the core's local FIFO; from any
// other thread they go to the inject queue and unpark the driver. Spawned tasks do not progress while no
// thread is inside `blockOn`; they resume at the next `blockOn`.
//
// Several threads may call `blockOn` at once: one holds the core and drives everybody's jobs; the others
// sleep on their own parker until either their result is ready or the core is released, and then take
// the core over (Tokio's behaviour).
//
// Driver loop: up to `eventInterval` jobs per round, taking the inject queue first every
// `globalQueueInterval` (31) ticks, local first otherwise; park when both queues are empty.
//
// After a job in which a task yielded, due timers fire before the next job (a yield lets the time driver
// run, as in Tokio).
//
// Paused clock (Time/Clock.swift): due timers are fired before every job (so `advance(by:)`, which moves
// the clock and yields, sees its timers fire before it continues), and when there is nothing to run the
// driver moves the clock to the earliest deadline instead of parking, unless a blocking job is in flight.

import Synchronization

final class CurrentThreadScheduler: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `local`, `tick` and `yieldedSinceTimerCheck` are touched only by the
    // thread holding the core (`coreHeld` is the lock, acquired with a CAS and released with a releasing
    // store, which orders the accesses of successive holders). Everything else is immutable, atomic or a
    // Mutex.

    let shared: Shared
    /// The driver's parker: whoever holds the core parks here; remote schedules unpark it.
    let parker = Parker()
    let stats = WorkerStats()

    // MARK: Core (only the thread holding `coreHeld`)
    private var local = JobDeque()
    private var tick: UInt32 = 0
    /// A task yielded during the job being run: due timers fire before the next job. Core holder only.
    private var yieldedSinceTimerCheck = false

    // MARK: Atomics and locks (any thread)
    private let coreHeld = Atomic<Bool>(false)
    /// Parkers of `blockOn` callers waiting for the core.
    private let waiters = ParkerSet()
    private let globalQueueInterval: UInt32
    private let eventInterval: Int

    init(shared: Shared) {
        self.shared = shared
        globalQueueInterval = UInt32(shared.configuration.globalQueueInterval ?? 31)
        eventInterval = shared.configuration.eventInterval
    }

    /// Schedules a job from any thread.
    @inline(__always)
    func schedule(_ job: JobRef) {
        if let context = ThreadContext.current, context.currentThread === self {
            stats.localSchedules.add()
            if job == context.runningJob || job.isYieldContinuation { yieldedSinceTimerCheck = true }
            local.pushBack(job)
            // Relaxed: see `depth`.
            depth.store(local.count, ordering: .relaxed)
        } else {
            // Once the job is queued, the driver may run its task to completion and the last reference to
            // the runtime may go (see MultiThreadScheduler.scheduleRemote): hold this scheduler until done.
            let keepAlive = Unmanaged.passUnretained(self).retain()
            defer { keepAlive.release() }
            shared.inject.push(job)
            // Relaxed: a statistic read by `Runtime.metrics`; nothing is published through it.
            shared.remoteSchedules.wrappingAdd(1, ordering: .relaxed)
            parker.unpark()
            shared.afterRemotePush()
        }
    }

    /// Mirror of `local.count` for metrics readers on other threads (relaxed: a gauge).
    private let depth = Atomic<Int>(0)

    /// Jobs in the local queue (a gauge). Relaxed: see `depth`.
    var localDepth: Int { depth.load(ordering: .relaxed) }

    private func popLocal() -> JobRef? {
        guard let job = local.popFront() else { return nil }
        // Relaxed: see `depth`.
        depth.store(local.count, ordering: .relaxed)
        return job
    }

    // MARK: Shutdown while a blockOn drives
    //
    // After termination the runtime's leftover jobs run on the drainer thread (Shared.swift), so the runtime
    // may only be marked terminated once no `blockOn` drives it any more: otherwise the drainer and the
    // driving thread would run jobs at the same time. A shutdown that finds a `blockOn` in progress
    // (`Shared.activeBlockOns`) leaves it driving (its tasks are cancelled; its own body, and its timers,
    // carry on) and records the termination as pending; whichever of the two sees the other last (the
    // shutdown, or the last `blockOn` to return) marks the runtime terminated (the SeqCst pairing is
    // described at `Shared.activeBlockOns`). `terminationClaimed` makes the marking happen once.

    /// Set by shutdown before it looks at `Shared.activeBlockOns`.
    private let terminationPending = Atomic<Bool>(false)
    private let terminationClaimed = Atomic<Bool>(false)

    /// Shutdown's part (after tasks were cancelled): drives the remaining work until `deadline` if the core
    /// is free and the runtime not yet terminated, and marks the runtime terminated once no `blockOn` is in
    /// progress. With `wait`, returns whether, by the deadline, the runtime has terminated AND every spawned
    /// task has finished: a `blockOn` that returns (and so terminates the runtime) while spawned tasks still
    /// unwind leaves them to the drainer thread, and a second shutdown after one that timed out finds them
    /// there; both wait for them rather than report success. Without `wait`, returns false.
    func shutdown(deadline: UInt64, wait: Bool) -> Bool {
        // Sequentially consistent (this store and the load below): the shutdown side of the store-buffering
        // pair with `Runtime.blockOn`'s decrement and `lastBlockOnReturned`'s load (see `Shared.activeBlockOns`).
        terminationPending.store(true, ordering: .sequentiallyConsistent)
        drainForShutdown(deadline: deadline)
        if shared.activeBlockOns.load(ordering: .sequentiallyConsistent) == 0 { finishTermination() }
        guard wait else { return false }
        return shared.terminatedEvent.wait(timeout: Runtime.timeLeft(until: deadline))
            && shared.waitForSpawnedTasks(deadline: deadline)
    }

    /// The last `blockOn` in progress returned (`Runtime.blockOn`): finishes a shutdown that left the
    /// termination to it.
    func lastBlockOnReturned() {
        // Sequentially consistent: see `Shared.activeBlockOns`.
        if terminationPending.load(ordering: .sequentiallyConsistent) { finishTermination() }
    }

    /// Marks the runtime terminated, once, moving what is left in the local queue to the inject queue for
    /// the drainer. Only with the core in hand: if somebody holds it, that is a `blockOn` (counted in
    /// `Shared.activeBlockOns`, whose return comes here again) or shutdown's own drain (which comes here
    /// after it).
    private func finishTermination() {
        // Sequentially consistent (acquiring would order us after the previous holder): when this fails
        // because shutdown's drain holds the core, it must precede that drain's `releaseCore` (also sequentially
        // consistent) in the single total order, so the `activeBlockOns` load shutdown makes after the drain
        // sees the decrement our blockOn made before coming here, and shutdown finishes the termination itself.
        guard coreHeld.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged
        else { return }
        // Acquiring-and-releasing: exactly one caller marks the runtime terminated.
        let claimed = terminationClaimed.compareExchange(
            expected: false, desired: true, ordering: .acquiringAndReleasing
        ).exchanged
        if claimed {
            while let job = popLocal() { shared.inject.push(job) }
        }
        releaseCore()
        if claimed { shared.markTerminated() }
    }

    /// Drives the scheduler on the calling thread until `isDone()` returns true.
    /// `callerParker` is unparked by whoever completes the caller's work.
    func drive(callerParker: Parker, localDriver: LocalDriver? = nil, until isDone: () -> Bool) {
        while !isDone() {
            // Acquiring-and-releasing: taking the core orders us after the previous holder's accesses.
            if coreHeld.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged {
                runWithCore(localDriver: localDriver, until: isDone)
                releaseCore()
                return
            }
            waiters.insert(callerParker)
            // Re-check after registering: the core may have been released, or our work finished, before
            // we were on the list. Acquiring: pairs with the releasing store in `releaseCore`; the ParkerSet
            // lock (`insert` here, `unparkAll` there) is what rules out a missed release.
            if isDone() || !coreHeld.load(ordering: .acquiring) {
                waiters.remove(callerParker)
                continue
            }
            // LocalSets under this blockOn run on this thread, core or not (Tokio: a `block_on` waiting for
            // the core still polls its own future): the core holder runs only its own blockOn's sets, so
            // one started here would otherwise wait for the core, and deadlock if the holder waits on it.
            // Their jobs wake `callerParker` (the driver's `alsoWake`), so none is missed before the park.
            if let localDriver, localDriver.runPending() > 0 {
                waiters.remove(callerParker)
                continue
            }
            callerParker.park()
            waiters.remove(callerParker)
        }
    }

    private func releaseCore() {
        // Releasing would pair with the acquiring CAS of the next holder; sequentially consistent for the
        // failed CAS in `finishTermination` (see there).
        coreHeld.store(false, ordering: .sequentiallyConsistent)
        waiters.unparkAll()
    }

    private func runWithCore(localDriver: LocalDriver?, until isDone: () -> Bool) {
        let context = ThreadContext(shared: shared, worker: nil, currentThread: self, role: .currentThreadDriver)
        ThreadContext.with(context) {
            while !isDone() {
                var ran = 0
                while ran < eventInterval {
                    if paused { _ = fireDueTimers() }
                    tick &+= 1
                    let job: JobRef?
                    if tick % globalQueueInterval == 0 {
                        job = shared.inject.pop() ?? popLocal()
                    } else {
                        job = popLocal() ?? shared.inject.pop()
                    }
                    guard let job else { break }
                    stats.polls.add()
                    shared.run(job, context: context)
                    ran += 1
                    if isDone() { return }
                    // A yield lets the timers run (see MultiThread.swift): a task yielding in a loop for a
                    // timer's effect sees it at its next turn, not at the end of the round. (A paused clock
                    // fires due timers before every job already.)
                    if yieldedSinceTimerCheck {
                        yieldedSinceTimerCheck = false
                        if !paused && shared.timers.nextDeadline != nil { _ = fireDueTimers() }
                    }
                }
                let fired = fireDueTimers()
                // LocalSets under this blockOn run on this thread too, after every round, whatever else
                // is ready: skipping them when timers fired would starve them as long as some timer is due
                // at the end of each round (a task sleeping in a loop while another keeps the queue busy).
                if let localDriver, localDriver.runPending() > 0 {
                    if isDone() { return }
                    continue
                }
                if fired > 0 { continue }
                if ran == 0 {
                    if autoAdvance(localDriver: localDriver) { continue }
                    ThreadContext.runHook(shared.configuration.onThreadPark)
                    // The hook is user code: work it scheduled (a spawn lands in `local` without waking
                    // anyone, as this thread is the driver) must run now, not after a wake-up that never comes.
                    if local.count > 0 || !shared.inject.isEmpty {
                        ThreadContext.runHook(shared.configuration.onThreadUnpark)
                        continue
                    }
                    stats.parks.add()
                    parker.park(timeoutNanos: timeUntilNextTimer())
                    stats.unparks.add()
                    ThreadContext.runHook(shared.configuration.onThreadUnpark)
                }
            }
        }
    }

    /// Whether the runtime's clock is paused (fixed at creation).
    private var paused: Bool { shared.time.isPaused }

    /// Runs due timers' wake-up jobs here; the tasks they resume are scheduled locally. Core holder only.
    private func fireDueTimers() -> Int {
        shared.timers.fireDue(now: shared.time.now()) { shared.fireTimer($0) }
    }

    /// Paused clock with nothing to run: moves the clock to the earliest pending deadline so that timer
    /// fires next. Returns false (the caller parks) when the clock is not paused, no live timer is pending,
    /// or a blocking job is in flight (its completion unparks the driver). Returns true without moving the
    /// clock if work arrived meanwhile. Core holder only.
    private func autoAdvance(localDriver: LocalDriver?) -> Bool {
        guard paused, shared.time.mayAutoAdvance else { return false }
        // The caller found the queues empty *before* reading the blocking count. A blocking job that
        // finished in between delivered its result (scheduling its waiter: inject, or a LocalSet's queue)
        // and then decremented the count: having read the decrement (sequentially consistent), look
        // again, so that the woken task runs before the clock jumps.
        if local.count > 0 || !shared.inject.isEmpty || (localDriver?.hasPendingJobs ?? false) { return true }
        guard let deadline = shared.timers.nextLiveDeadline() else { return false }
        shared.time.advance(to: deadline)
        return true
    }

    /// Nanoseconds until the earliest timer, or nil when none is pending. Nil on a paused clock: its time
    /// does not pass while the driver sleeps.
    private func timeUntilNextTimer() -> UInt64? {
        guard !paused, let deadline = shared.timers.nextDeadline else { return nil }
        let now = Platform.monotonicNanos()
        return deadline > now ? deadline - now : 0
    }

    /// Runs queued jobs until the runtime has no alive task or `deadline` passes (used by shutdown when
    /// the core is free). Does nothing when the core is held (a `blockOn` drives; see
    /// `shutdown(deadline:wait:)`) or the runtime has already terminated; whether the work finished is for
    /// the caller to wait for. The deadline is checked before every job, so a task that ignores cancellation
    /// and keeps yielding (or re-arming timers) cannot hold the caller past it; what is left goes to the
    /// inject queue, which the post-termination drainer thread runs (`shutdownBackground`, with a deadline of
    /// 0, runs nothing here).
    func drainForShutdown(deadline: UInt64) {
        // Acquiring-and-releasing: taking the core, as in `drive`; pairs with the releasing store in `releaseCore`.
        guard coreHeld.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        defer { releaseCore() }
        // Once terminated, the drainer thread runs what is left: driving here as well would run the runtime's
        // jobs on two threads at once, and park jobs in the local queue that nobody drives any more. The
        // core (taken above, and by `finishTermination` before it claims) orders this read.
        if terminationClaimed.load(ordering: .relaxed) { return }
        let context = ThreadContext(shared: shared, worker: nil, currentThread: self, role: .currentThreadDriver)
        ThreadContext.with(context) {
            while true {
                let now = Platform.monotonicNanos()
                if now >= deadline { break }
                if let job = popLocal() ?? shared.inject.pop() {
                    shared.run(job, context: context)
                    continue
                }
                if fireDueTimers() > 0 { continue }
                if shared.registry.aliveCount == 0 { break }
                if autoAdvance(localDriver: nil) { continue }
                parker.park(timeoutNanos: min(deadline - now, timeUntilNextTimer() ?? .max))
            }
            // Anything left locally goes to the inject queue, which the drainer empties after termination.
            while let job = popLocal() { shared.inject.push(job) }
        }
    }
}

/// A growable FIFO ring of jobs for single-threaded use.
struct JobDeque {
    private var buffer: [JobRef?] = Array(repeating: nil, count: 64)
    private var head = 0
    private(set) var count = 0

    mutating func pushBack(_ job: JobRef) {
        if count == buffer.count { grow() }
        buffer[(head + count) & (buffer.count - 1)] = job
        count += 1
    }

    mutating func pushFront(_ job: JobRef) {
        if count == buffer.count { grow() }
        head = (head - 1) & (buffer.count - 1)
        buffer[head] = job
        count += 1
    }

    mutating func popFront() -> JobRef? {
        guard count > 0 else { return nil }
        let job = buffer[head]
        buffer[head] = nil
        head = (head + 1) & (buffer.count - 1)
        count -= 1
        return job
    }

    private mutating func grow() {
        var next: [JobRef?] = Array(repeating: nil, count: buffer.count * 2)
        for i in 0..<count { next[i] = buffer[(head + i) & (buffer.count - 1)] }
        buffer = next
        head = 0
    }
}
