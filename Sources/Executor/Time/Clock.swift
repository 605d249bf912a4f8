// The runtime's time: real monotonic time, or a paused test clock (Tokio's `start_paused`).
//
// Every timer deadline of a runtime (a `Task.sleep` of one of its tasks, an `interval`, a `timeout`) is a
// point on the runtime's timeline, read through `TimeSource.now()`:
// - normally CLOCK_MONOTONIC, in nanoseconds;
// - with `Configuration.startPaused` (current-thread runtimes only), a virtual time that starts at the
//   runtime's creation and moves only when `Runtime.advance(by:)` adds to it, or when the driver finds
//   nothing to run and jumps it to the earliest pending deadline (*auto-advance*). A program then sleeps
//   through hours of timers in no real time, and sleeps on the runtime's clock (`RuntimeClock.sleep`,
//   `interval`, `timeout`) fire at the same virtual instants on every run.
//
// Auto-advance is inhibited while a `spawnBlocking` job of the runtime is queued or running (its result
// is real work the clock must wait for; Tokio does the same). The job delivers its result (scheduling the
// waiting task), then decrements `blockingInFlight` and unparks the driver. The driver checks its queues,
// then reads the count; a job finishing in between is caught by a second look at the queues after the
// count reads zero (CurrentThread.autoAdvance), and a driver that read a non-zero count and parked is
// woken by the unpark. Work the driver cannot see does not inhibit it: a LocalSet running on a thread of
// its own, another runtime, or a thread outside any runtime.
//
// Who writes the paused time: the driver's auto-advance, and `advance(by:)` from a task of the runtime.
// Writes are a compare-and-exchange maximum, so the time never goes back whoever writes; `advance(by:)`
// also unparks the driver so that it fires the timers that became due.
//
// Swift gives an executor no way to withdraw the wake-up of a cancelled `Task.sleep`: it stays in the timer
// queue until its deadline and then does nothing, and auto-advance can jump to it. Cancelled
// `RuntimeClock.sleep`s are skipped and dropped (TimerQueue.swift).
//
// Precision: `RuntimeClock.sleep(until:)` (and `interval` and `timeout`, built on it) puts its exact
// deadline on the runtime's timeline. `Task.sleep` reaches the runtime as a delay that Swift computed from
// the real clock (`ContinuousClock.now + duration`, then that instant minus the real now when the runtime
// receives it), so on a paused clock it is short by the real time that took. The runtime rounds such
// delays up to whole milliseconds (Runtime.scheduleTimer): millisecond sleeps come out exact unless the
// thread was held up for a millisecond or more in between (preemption on a loaded machine, a sanitizer),
// when the sleep ends early by that much. `ContinuousClock.now` itself keeps real time.

import Synchronization

/// The clock behind a runtime's timers (see the file comment).
final class TimeSource: Sendable {
    /// Whether this is a paused test clock. Fixed at creation.
    let isPaused: Bool
    /// The paused clock's current time, in nanoseconds on the CLOCK_MONOTONIC scale. Unused when not
    /// paused. Relaxed: it only grows (a CAS maximum), readers need only some value it had, and nothing else
    /// is published through it (the timers it makes due are in the timer queue, behind its lock).
    private let pausedNanos: Atomic<UInt64>
    /// `spawnBlocking` jobs queued or running (paused clocks only). Sequentially consistent: a finishing
    /// job decrements it after delivering its result (which schedules the waiting task), so a driver that
    /// reads the decremented value and then looks at its queues sees the delivered work (see the file
    /// comment); the unpark after the decrement covers a driver that read the old value and parked.
    private let blockingInFlight = Atomic<Int>(0)

    init(paused: Bool) {
        isPaused = paused
        pausedNanos = Atomic(Platform.monotonicNanos())
    }

    /// The current time of this runtime, in nanoseconds.
    @inline(__always)
    func now() -> UInt64 {
        // Relaxed: see `pausedNanos`.
        isPaused ? pausedNanos.load(ordering: .relaxed) : Platform.monotonicNanos()
    }

    /// Moves the paused clock forward to `instant` (never back).
    func advance(to instant: UInt64) {
        // Relaxed (the load and the CAS): see `pausedNanos`. Whoever must see the new time is told by an
        // unpark (`Runtime.advance(by:)`) or is this thread (the driver's auto-advance).
        var current = pausedNanos.load(ordering: .relaxed)
        while instant > current {
            let (exchanged, original) = pausedNanos.compareExchange(
                expected: current, desired: instant, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// Whether the paused clock may jump ahead now: no blocking job is queued or running. Sequentially
    /// consistent: see `blockingInFlight`; reads the decrement in `blockingJobFinished`, after which
    /// `CurrentThreadScheduler.autoAdvance` looks at its queues again.
    var mayAutoAdvance: Bool { blockingInFlight.load(ordering: .sequentiallyConsistent) == 0 }

    // Sequentially consistent: see `blockingInFlight`; read by `mayAutoAdvance`.
    func blockingJobStarted() { blockingInFlight.wrappingAdd(1, ordering: .sequentiallyConsistent) }

    // Sequentially consistent: see `blockingInFlight`; pairs with the load in `mayAutoAdvance`.
    func blockingJobFinished() { blockingInFlight.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
}

/// A runtime's clock, for measuring time the way its timers see it: real monotonic time, or the paused
/// test clock of a runtime built with ``Runtime/Configuration/startPaused``.
///
/// Get it from ``Runtime/clock``; it keeps its runtime alive. Under a paused clock, `now` moves only by
/// ``Runtime/advance(by:)`` and by auto-advance to the next timer, so after
/// `try await clock.sleep(for: .milliseconds(10))` (or `Task.sleep(for:clock:)` with this clock),
/// `clock.now - start` is exactly 10 ms. `Task.sleep` on the runtime is rounded up to whole milliseconds on
/// a paused clock and can end early if the thread is held up (see ``Runtime/Configuration/startPaused``);
/// `ContinuousClock` and `SuspendingClock` keep real time.
///
/// `sleep(until:)` waits on the runtime's own timer queue with the exact deadline, from any task: the
/// sleeper resumes on its own executor when the runtime fires the timer (so a paused runtime's timer
/// fires only while somebody drives that runtime). Once the runtime has shut down, its clock's sleeps
/// throw `CancellationError`.
public struct RuntimeClock: Clock, Sendable {
    /// A point on a runtime's timeline.
    public struct Instant: InstantProtocol, Sendable, Hashable, CustomStringConvertible {
        /// Instants are measured in Swift's `Duration`.
        public typealias Duration = Swift.Duration

        /// Nanoseconds on the CLOCK_MONOTONIC scale (the paused clock starts at the runtime's creation).
        let nanoseconds: UInt64

        init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

        /// This instant moved by `duration` (clamped to the representable range).
        public func advanced(by duration: Swift.Duration) -> Instant {
            let delta = duration.nanoseconds
            if delta >= 0 {
                let (sum, overflow) = nanoseconds.addingReportingOverflow(UInt64(delta))
                return Instant(nanoseconds: overflow ? .max : sum)
            }
            let magnitude = delta == .min ? UInt64(Int64.max) + 1 : UInt64(-delta)
            return Instant(nanoseconds: nanoseconds > magnitude ? nanoseconds - magnitude : 0)
        }

        /// The duration from this instant to `other` (negative if `other` is earlier).
        public func duration(to other: Instant) -> Swift.Duration {
            if other.nanoseconds >= nanoseconds {
                return .nanoseconds(Int64(clamping: other.nanoseconds - nanoseconds))
            }
            return .nanoseconds(-Int64(clamping: nanoseconds - other.nanoseconds))
        }

        /// Whether `lhs` comes before `rhs`.
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

        /// The instant as nanoseconds on the monotonic scale.
        public var description: String { "RuntimeClock.Instant(\(nanoseconds) ns)" }
    }

    let runtime: Runtime
    var time: TimeSource { runtime.shared.time }

    /// The runtime's current time.
    public var now: Instant { Instant(nanoseconds: time.now()) }

    /// Timers have nanosecond resolution (they are kept in a heap, not a wheel with ticks).
    public var minimumResolution: Swift.Duration { .nanoseconds(1) }

    /// Suspends until the runtime's clock reaches `deadline`. Throws `CancellationError` if the task is
    /// cancelled first, or once the runtime has shut down. A deadline that has passed returns at once
    /// (spending one unit of the cooperative budget). `tolerance` is ignored: timers fire at their deadline.
    public func sleep(until deadline: Instant, tolerance: Swift.Duration? = nil) async throws {
        if deadline <= now {
            // Completes without suspending: spend budget (Tokio budgets sleeps too).
            await consumeBudget()
            return
        }
        let waker = TimerWaker(queue: runtime.shared.timers)
        try await _withCancellableThrowingContinuation({ (continuation: UnsafeContinuation<Void, any Error>) in
            if waker.arm(continuation) {
                runtime.scheduleTimer(.waker(waker), deadline: deadline.nanoseconds)
            }
        }, onCancel: {
            waker.cancel()
        })
    }
}

/// One `RuntimeClock.sleep` in the timer queue: resumes its continuation exactly once, when the timer fires
/// or when the sleeping task is cancelled, whichever comes first. A cancelled waker left in the queue does
/// nothing when its deadline comes; the queue drops it lazily (TimerQueue.swift).
final class TimerWaker: Sendable {
    private enum State {
        case idle
        case armed(UnsafeContinuation<Void, any Error>)
        case done
    }

    private let state = CheckedMutex<State>(.idle)
    /// Set when the sleep was cancelled (before firing). Relaxed: read by the queue only to skip or drop
    /// the entry, which is safe either way (firing a cancelled waker does nothing).
    private let cancelled = Atomic<Bool>(false)
    /// The queue it goes into, told when it is cancelled.
    private let queue: TimerQueue

    init(queue: TimerQueue) {
        self.queue = queue
    }

    /// Whether the sleep was cancelled: firing it would do nothing. Relaxed: see `cancelled`.
    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    /// Stores the continuation. Returns false (after resuming it with `CancellationError`) if the sleep was
    /// cancelled before it armed: then it must not be scheduled.
    func arm(_ continuation: UnsafeContinuation<Void, any Error>) -> Bool {
        let armed = state.withLock { s -> Bool in
            guard case .idle = s else { return false }
            s = .armed(continuation)
            return true
        }
        if !armed { continuation.resume(throwing: CancellationError()) }
        return armed
    }

    /// The timer fired: resumes the sleeper unless it was cancelled.
    func fire() {
        let continuation = state.withLock { s -> UnsafeContinuation<Void, any Error>? in
            guard case .armed(let c) = s else { return nil }
            s = .done
            return c
        }
        // Outside the lock.
        continuation?.resume()
    }

    /// The sleeping task was cancelled (or the runtime terminated: `queued` false, the waker already left
    /// the queue): resumes it with `CancellationError` unless the timer fired first.
    func cancel(queued: Bool = true) {
        let (continuation, wasPending) = state.withLock { s -> (UnsafeContinuation<Void, any Error>?, Bool) in
            switch s {
            case .idle:
                s = .done  // `arm` will see it and resume with CancellationError.
                return (nil, true)
            case .armed(let c):
                s = .done
                return (c, true)
            case .done:
                return (nil, false)
            }
        }
        if wasPending {
            // Relaxed: see `cancelled`.
            cancelled.store(true, ordering: .relaxed)
            if queued { queue.noteCancelled() }
        }
        // Outside the lock.
        continuation?.resume(throwing: CancellationError())
    }
}

extension Runtime {
    /// This runtime's clock: how its timers measure time (real, or paused when the runtime was built with
    /// ``Configuration/startPaused``).
    public var clock: RuntimeClock { RuntimeClock(runtime: self) }

    /// Moves this runtime's paused clock forward by exactly `duration`, fires every timer that is due at the
    /// new time, and yields once (Tokio's `time::advance`). The tasks those timers wake are scheduled but
    /// have not necessarily run when this returns.
    ///
    /// Traps unless the runtime was built with ``Configuration/startPaused``, when called from outside this
    /// runtime's tasks, and when `duration` is negative or moves the clock past its range.
    public func advance(by duration: Duration) async {
        let time = shared.time
        kyotoPrecondition(
            time.isPaused,
            "BUG DETECTED: advance(by:) called on a Kyoto runtime whose clock is not paused; build it with "
                + "Runtime.Configuration.startPaused = true")
        kyotoPrecondition(
            ThreadContext.current?.shared === shared,
            "BUG DETECTED: advance(by:) called from outside its Kyoto runtime; call it from one of its tasks")
        kyotoPrecondition(duration >= .zero, "BUG DETECTED: advance(by:) called with a negative duration (\(duration))")
        // `nanoseconds` saturates at Int64.max; a longer duration is past the range too.
        let nanos = duration.nanoseconds
        let (target, overflow) = time.now().addingReportingOverflow(UInt64(nanos))
        kyotoPrecondition(
            nanos < .max && !overflow && target != .max,
            "BUG DETECTED: advance(by: \(duration)) moves the paused clock past its range")
        time.advance(to: target)
        // The driver fires due timers before it runs the next job (CurrentThread.swift), so they fire before
        // this task continues; the tasks they wake are queued behind it. The unpark is for a call from a
        // LocalSet's thread (a local task's nonisolated code runs there), while the driver may be parked.
        // Two threads advancing at once may lose one of the two advances (each reads `now`, then stores
        // its target); a test drives its paused clock from one task at a time.
        if case .currentThread(let s) = scheduler { s.parker.unpark() }
        await Task.yield()
    }
}
