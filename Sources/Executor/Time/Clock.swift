// The runtime's time: real monotonic time, or a paused test clock (Tokio's `start_paused`).
//
// Every timer deadline of a runtime (a `Task.sleep` of one of its tasks, an `interval`, a `timeout`) is a
// point on the runtime's timeline, read through `TimeSource.now()`:
// - normally CLOCK_MONOTONIC, in nanoseconds;
// - with `Configuration.startPaused` (current-thread runtimes only), a virtual time that starts at the
//   runtime's creation and moves only when `Runtime.advance(by:)` adds to it, or when the driver finds
//   nothing to run and jumps it to the earliest pending deadline (*auto-advance*). A program then sleeps
//   through hours of timers in no real time, and two runs fire the same timers at the same virtual
//   instants.
//
// Auto-advance is inhibited while a `spawnBlocking` job of the runtime is queued or running (its result
// is real work the clock must wait for; Tokio does the same). The job's completion delivers its result
// first and then decrements `blockingInFlight` and unparks the driver, so a driver that saw the count
// above zero and parked is woken to look again (see `blockingJobFinished`).
//
// Who writes the paused time: the driver's auto-advance, and `advance(by:)` from a task of the runtime
// (normally on the driver's thread too, but a LocalSet thread of the runtime may call it). Writes are a
// compare-and-exchange maximum, so the time never goes back whoever writes; `advance(by:)` then unparks
// the driver so it fires the timers that became due.
//
// Swift gives an executor no way to withdraw the wake-up of a cancelled `Task.sleep`: it stays in the timer
// queue until its deadline and then does nothing (so does a cancelled `RuntimeClock.sleep`'s waker). Auto-
// advance can therefore also jump to the deadline of a sleep that was cancelled.
//
// Precision: `RuntimeClock.sleep(until:)` (and `interval`, `timeout`, built on it) puts its exact deadline
// on the runtime's timeline. `Task.sleep` reaches the runtime as a delay that Swift computed from the real
// clock, which on a paused clock is short by the real time the call took; the runtime rounds such delays up
// to whole milliseconds there (Runtime.scheduleTimer), so millisecond sleeps stay exact.

import Synchronization

/// The clock behind a runtime's timers (see the file comment).
final class TimeSource: Sendable {
    /// Whether this is a paused test clock. Fixed at creation.
    let isPaused: Bool
    /// The paused clock's current time, in nanoseconds on the CLOCK_MONOTONIC scale. Unused when not
    /// paused. Relaxed: it only grows (a CAS maximum), readers need only some value it had, and nothing else
    /// is published through it (the timers it makes due are in the timer queue, behind its lock).
    private let pausedNanos: Atomic<UInt64>
    /// `spawnBlocking` jobs queued or running (paused clocks only). Sequentially consistent: the driver
    /// reads it after finding its queues empty, and a finishing job decrements it after delivering its
    /// result (which schedules the waiting task): the driver either sees the count at zero or sees the
    /// delivered work; and the unpark after the decrement covers a driver that saw neither change yet.
    private let blockingInFlight = Atomic<Int>(0)

    init(paused: Bool) {
        isPaused = paused
        pausedNanos = Atomic(Platform.monotonicNanos())
    }

    /// The current time of this runtime, in nanoseconds.
    @inline(__always)
    func now() -> UInt64 {
        isPaused ? pausedNanos.load(ordering: .relaxed) : Platform.monotonicNanos()
    }

    /// Moves the paused clock forward to `instant` (never back).
    func advance(to instant: UInt64) {
        var current = pausedNanos.load(ordering: .relaxed)
        while instant > current {
            let (exchanged, original) = pausedNanos.compareExchange(
                expected: current, desired: instant, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// Whether the paused clock may jump ahead now: no blocking job is queued or running.
    var mayAutoAdvance: Bool { blockingInFlight.load(ordering: .sequentiallyConsistent) == 0 }

    func blockingJobStarted() { blockingInFlight.wrappingAdd(1, ordering: .sequentiallyConsistent) }

    func blockingJobFinished() { blockingInFlight.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
}

/// A runtime's clock, for measuring time the way its timers see it: real monotonic time, or the paused
/// test clock of a runtime built with ``Runtime/Configuration/startPaused``.
///
/// Get it from ``Runtime/clock``; it keeps its runtime alive. Under a paused clock, `now` moves only when
/// the runtime's timers make it move, so `clock.now - start` after
/// `try await Task.sleep(for: .milliseconds(10))` is exactly 10 ms. `sleep(until:)` waits on the runtime's
/// own timer queue with the exact deadline, from any task: the sleeper resumes on its own executor when the
/// runtime fires the timer (so a paused runtime's timer fires only while somebody drives that runtime).
public struct RuntimeClock: Clock, Sendable {
    /// A point on a runtime's timeline.
    public struct Instant: InstantProtocol, Sendable, Hashable, CustomStringConvertible {
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
    /// cancelled first. A deadline that has passed returns at once.
    public func sleep(until deadline: Instant, tolerance: Swift.Duration? = nil) async throws {
        if deadline <= now { return }
        let waker = TimerWaker()
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                if waker.arm(continuation) {
                    runtime.scheduleTimer(.waker(waker), deadline: deadline.nanoseconds)
                }
            }
        } onCancel: {
            waker.cancel()
        }
    }
}

/// One `RuntimeClock.sleep` in the timer queue: resumes its continuation exactly once, when the timer fires
/// or when the sleeping task is cancelled, whichever comes first (a cancelled waker stays in the queue
/// until its deadline and then does nothing, like a cancelled `Task.sleep`).
final class TimerWaker: Sendable {
    private enum State {
        case idle
        case armed(UnsafeContinuation<Void, any Error>)
        case done
    }

    private let state = CheckedMutex<State>(.idle)

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
        take()?.resume()
    }

    /// The sleeping task was cancelled: resumes it with `CancellationError` unless the timer fired first.
    func cancel() {
        let continuation = state.withLock { s -> UnsafeContinuation<Void, any Error>? in
            if case .idle = s {
                s = .done  // `arm` will see it and resume with CancellationError.
                return nil
            }
            guard case .armed(let c) = s else { return nil }
            s = .done
            return c
        }
        // Outside the lock.
        continuation?.resume(throwing: CancellationError())
    }

    private func take() -> UnsafeContinuation<Void, any Error>? {
        state.withLock { s -> UnsafeContinuation<Void, any Error>? in
            guard case .armed(let c) = s else { return nil }
            s = .done
            return c
        }
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
        let (target, overflow) = time.now().addingReportingOverflow(UInt64(duration.nanoseconds))
        kyotoPrecondition(
            !overflow && target != .max, "BUG DETECTED: advance(by: \(duration)) moves the paused clock past its range")
        time.advance(to: target)
        // The driver fires due timers before it runs the next job (CurrentThread.swift), so they fire before
        // this task continues; the tasks they wake are queued behind it. The unpark is for a call from a
        // LocalSet thread of the runtime, while the driver may be parked.
        if case .currentThread(let s) = scheduler { s.parker.unpark() }
        await Task.yield()
    }
}
