// interval: ticks at a fixed period (Tokio's `time::interval`), as an AsyncSequence.
//
// A tick is due at `start + k × period`. The sequence yields the *scheduled* instant of each tick, not the
// instant the task woke. The first tick is due at `start` (now, for `interval(every:)`), so it completes
// at once. A tick counts as missed when the task asks for it more than 5 ms after it was due (Tokio's
// threshold); the next due instant then depends on `MissedTickBehavior`.
//
// Waiting uses `RuntimeClock.sleep(until:)`: the exact scheduled instant on the runtime's timer queue, so
// a paused clock drives the ticks.

/// What an ``Interval`` does when ticks were missed (the task asked for a tick more than 5 ms after it was
/// due), as in Tokio.
public enum MissedTickBehavior: Sendable, Equatable {
    /// Catch up: the missed ticks complete back to back, each with its original scheduled instant, until the
    /// schedule is current again. The default.
    case burst
    /// Restart the schedule: the next tick is due one period after the late one completed.
    case delay
    /// Skip the missed ticks: the next tick is due at the next instant of the original schedule
    /// (`start + k × period`) after now.
    case skip
}

/// A sequence of ticks every `period`, starting now: the first tick completes at once. Each element is the
/// tick's scheduled instant on the runtime's clock. Iteration ends (`next()` returns nil) when the task is
/// cancelled, or once the clock's runtime has shut down.
///
/// Must be called on a thread of a Kyoto runtime (it traps otherwise), whose clock the ticks follow,
/// paused or not; elsewhere use ``Runtime/interval(every:missedTickBehavior:)``. Traps when `period` is
/// shorter than a nanosecond.
///
/// ```swift
/// for await tick in interval(every: .seconds(1)) {
///     await report(at: tick)
/// }
/// ```
public func interval(every period: Duration, missedTickBehavior: MissedTickBehavior = .burst) -> Interval {
    _currentRuntimeOrTrap("interval(every:missedTickBehavior:)").takeUnretainedValue()
        .interval(every: period, missedTickBehavior: missedTickBehavior)
}

/// A sequence of ticks every `period`, the first due at `start` (Tokio's `interval_at`), on the clock of the
/// runtime running the caller. See ``interval(every:missedTickBehavior:)``.
public func interval(
    startingAt start: RuntimeClock.Instant, every period: Duration, missedTickBehavior: MissedTickBehavior = .burst
) -> Interval {
    _currentRuntimeOrTrap("interval(startingAt:every:missedTickBehavior:)").takeUnretainedValue()
        .interval(startingAt: start, every: period, missedTickBehavior: missedTickBehavior)
}

extension Runtime {
    /// A sequence of ticks every `period` on this runtime's clock, starting now: the first tick completes
    /// at once. See the free ``interval(every:missedTickBehavior:)``. Usable from any thread.
    public func interval(every period: Duration, missedTickBehavior: MissedTickBehavior = .burst) -> Interval {
        Interval(start: clock.now, period: period, behavior: missedTickBehavior, clock: clock)
    }

    /// A sequence of ticks every `period` on this runtime's clock, the first due at `start`. Usable from any
    /// thread.
    public func interval(
        startingAt start: RuntimeClock.Instant, every period: Duration, missedTickBehavior: MissedTickBehavior = .burst
    ) -> Interval {
        Interval(start: start, period: period, behavior: missedTickBehavior, clock: clock)
    }
}

/// Ticks at a fixed period on a runtime's clock; made by ``interval(every:missedTickBehavior:)``.
///
/// Each iterator keeps its own schedule, starting at the interval's start.
public struct Interval: AsyncSequence, Sendable {
    /// A tick's scheduled instant.
    public typealias Element = RuntimeClock.Instant
    /// Iteration does not throw: it ends when the task is cancelled or the clock's runtime shuts down.
    public typealias Failure = Never

    /// The time between ticks.
    public let period: Duration
    /// What happens after missed ticks.
    public let missedTickBehavior: MissedTickBehavior
    let start: RuntimeClock.Instant
    let clock: RuntimeClock

    init(start: RuntimeClock.Instant, period: Duration, behavior: MissedTickBehavior, clock: RuntimeClock) {
        kyotoPrecondition(
            period >= .nanoseconds(1), "BUG DETECTED: interval period must be at least 1 nanosecond (got \(period))")
        self.start = start
        self.period = period
        self.missedTickBehavior = behavior
        self.clock = clock
    }

    /// An iterator starting at the interval's start.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(next: start, period: period, behavior: missedTickBehavior, clock: clock)
    }

    /// Produces the ticks of an ``Interval``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        /// A tick's scheduled instant.
        public typealias Element = RuntimeClock.Instant
        /// Iteration does not throw: it ends when the task is cancelled or the clock's runtime shuts down.
        public typealias Failure = Never

        /// The scheduled instant of the next tick.
        var next: RuntimeClock.Instant
        let period: Duration
        /// What happens after missed ticks; may be changed between ticks.
        public var missedTickBehavior: MissedTickBehavior
        let clock: RuntimeClock

        init(next: RuntimeClock.Instant, period: Duration, behavior: MissedTickBehavior, clock: RuntimeClock) {
            self.next = next
            self.period = period
            self.missedTickBehavior = behavior
            self.clock = clock
        }

        /// The scheduled instant of the next tick.
        public var nextTick: RuntimeClock.Instant { next }

        /// Restarts the schedule: the next tick is due one period from now (whatever the missed-tick
        /// behavior).
        public mutating func reset() { next = clock.now.advanced(by: period) }

        /// Restarts the schedule: the next tick is due now.
        public mutating func resetImmediately() { next = clock.now }

        /// Restarts the schedule: the next tick is due `delay` from now.
        public mutating func reset(after delay: Duration) { next = clock.now.advanced(by: delay) }

        /// Restarts the schedule: the next tick is due at `instant`.
        public mutating func reset(at instant: RuntimeClock.Instant) { next = instant }

        /// Tokio's threshold: a tick completed more than this after it was due counts as missed.
        static let missedThreshold = Duration.milliseconds(5)

        /// Waits for the next tick and returns its scheduled instant; nil once the task is cancelled.
        public mutating func next(isolation actor: isolated (any Actor)?) async -> RuntimeClock.Instant? {
            await tick()
        }

        /// Waits for the next tick and returns its scheduled instant; nil once the task is cancelled.
        public mutating func next() async -> RuntimeClock.Instant? {
            await tick()
        }

        private nonisolated(nonsending) mutating func tick() async -> RuntimeClock.Instant? {
            if Task.isCancelled { return nil }
            let scheduled = next
            var now = clock.now
            if now < scheduled {
                do {
                    try await clock.sleep(until: scheduled)
                } catch {
                    return nil
                }
                now = clock.now
            } else {
                // A tick that is already due completes without suspending: spend budget, so a burst of
                // catch-up ticks still lets other tasks run (Tokio budgets ticks too). The budget may
                // yield: read the time again after it, as Tokio reads it after the budgeted poll, so
                // `.delay` and `.skip` schedule from the moment the tick is delivered.
                await consumeBudget()
                now = clock.now
            }
            let period = self.period
            if now <= scheduled.advanced(by: Self.missedThreshold) {
                next = scheduled.advanced(by: period)
            } else {
                switch missedTickBehavior {
                case .burst:
                    next = scheduled.advanced(by: period)
                case .delay:
                    next = now.advanced(by: period)
                case .skip:
                    // The next instant of the original schedule after now.
                    let periodNanos = UInt64(period.nanoseconds)
                    let late = (now.nanoseconds - scheduled.nanoseconds) % periodNanos
                    next = now.advanced(by: period).advanced(by: .nanoseconds(-Int64(late)))
                }
            }
            return scheduled
        }
    }
}
