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
// Paused clock (Time/Clock.swift): due timers are fired before every job (so `advance(by:)`, which moves
// the clock and yields, sees its timers fire before it continues), and when there is nothing to run the
// driver moves the clock to the earliest deadline instead of parking, unless a blocking job is in flight.

import Synchronization

final class CurrentThreadScheduler: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `local` and `tick` are touched only by the thread holding the core
    // (`coreHeld` is the lock, acquired with a CAS and released with a releasing store, which orders the
    // accesses of successive holders). Everything else is immutable, atomic or a Mutex.

    let shared: Shared
    /// The driver's parker: whoever holds the core parks here; remote schedules unpark it.
    let parker = Parker()
    let stats = WorkerStats()

    // MARK: Core (only the thread holding `coreHeld`)
    private var local = JobDeque()
    private var tick: UInt32 = 0

    // MARK: Atomics and locks (any thread)
    private let coreHeld = Atomic<Bool>(false)
    /// Parkers of `blockOn` callers waiting for the core.
    private let waiters = CheckedMutex<[Parker]>([])
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
            local.pushBack(job)
            depth.store(local.count, ordering: .relaxed)
        } else {
            // Once the job is queued, the driver may run its task to completion and the last reference to
            // the runtime may go (see MultiThreadScheduler.scheduleRemote): hold this scheduler until done.
            let keepAlive = Unmanaged.passUnretained(self).retain()
            defer { keepAlive.release() }
            shared.inject.push(job)
            // Relaxed: a statistic.
            shared.remoteSchedules.wrappingAdd(1, ordering: .relaxed)
            parker.unpark()
            shared.afterRemotePush()
        }
    }

    /// Mirror of `local.count` for metrics readers on other threads (relaxed: a gauge).
    private let depth = Atomic<Int>(0)

    /// Jobs in the local queue (a gauge).
    var localDepth: Int { depth.load(ordering: .relaxed) }

    private func popLocal() -> JobRef? {
        guard let job = local.popFront() else { return nil }
        depth.store(local.count, ordering: .relaxed)
        return job
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
            waiters.withLock { $0.append(callerParker) }
            // Re-check after registering: the core may have been released, or our work finished, before
            // we were on the list.
            if isDone() || !coreHeld.load(ordering: .acquiring) {
                waiters.withLock { list in list.removeAll { $0 === callerParker } }
                continue
            }
            callerParker.park()
            waiters.withLock { list in list.removeAll { $0 === callerParker } }
        }
    }

    private func releaseCore() {
        // Releasing: pairs with the acquiring CAS of the next holder.
        coreHeld.store(false, ordering: .releasing)
        let toWake = waiters.withLock { $0 }
        for p in toWake { p.unpark() }
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
                }
                if fireDueTimers() > 0 { continue }
                // LocalSets under this blockOn run on this thread too.
                if let localDriver, localDriver.runPending() > 0 {
                    if isDone() { return }
                    continue
                }
                if ran == 0 {
                    if autoAdvance(localDriver: localDriver) { continue }
                    shared.configuration.onThreadPark?()
                    // The hook is user code: work it scheduled (a spawn lands in `local` without waking
                    // anyone, as this thread is the driver) must run now, not after a wake-up that never comes.
                    if local.count > 0 || !shared.inject.isEmpty {
                        shared.configuration.onThreadUnpark?()
                        continue
                    }
                    stats.parks.add()
                    parker.park(timeoutNanos: timeUntilNextTimer())
                    stats.unparks.add()
                    shared.configuration.onThreadUnpark?()
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
    /// no `blockOn` is in progress). Returns whether everything finished. The deadline is checked before
    /// every job, so a task that ignores cancellation and keeps yielding (or re-arming timers) cannot hold
    /// the caller past it; what is left goes to the inject queue, which the post-termination drainer
    /// thread runs (`shutdownBackground`, with a deadline of 0, runs nothing here).
    func drainForShutdown(deadline: UInt64) -> Bool {
        guard coreHeld.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return false }
        defer { releaseCore() }
        let context = ThreadContext(shared: shared, worker: nil, currentThread: self, role: .currentThreadDriver)
        return ThreadContext.with(context) {
            var finished = true
            while true {
                let now = Platform.monotonicNanos()
                if now >= deadline {
                    finished = false
                    break
                }
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
            return finished
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
