// timeout: bound how long a piece of async work may take (Tokio's `time::timeout`).
//
// The body runs as a child task beside a timer child; whichever finishes first decides, and the other is
// cancelled. Structured concurrency means `timeout` returns only after the body's child has finished, so a
// body that ignores cancellation delays the answer (Tokio instead drops the future at the deadline).
//
// Outcomes:
// - the body returns a value: that value, even if the deadline passed meanwhile (a body that needs no
//   suspension therefore always wins, as an immediately ready future does in Tokio, whose timeout polls
//   the future before it checks the deadline);
// - the body throws before the deadline: its error, unchanged;
// - the deadline passes first: the body is cancelled and, if it then throws (for instance
//   `CancellationError`), `timeout` throws `TimeoutError`, unless the error reports an outcome of the
//   body's own that the cancellation did not cause (an `OutcomeReportingError` that is not a cancellation,
//   such as a channel that closed or a broadcast receiver that lagged just as the deadline passed): that
//   error is rethrown, since the operation behind it took effect (the receive consumed the close or the
//   lag) and replacing it would lose it (a oneshot receiver retried after such a `TimeoutError` trapped as
//   awaited again, and a lagged broadcast receive skipped values without reporting them);
// - the calling task is cancelled: both children are cancelled and the body's outcome is returned.
//
// The deadline is taken when `timeout` is called. The timer is a runtime's clock (`RuntimeClock.sleep(until:)`,
// exact on a paused clock too): the runtime running the caller for `timeout(after:)` and `timeout(at:)`, or
// the runtime `Runtime.timeout(at:)` is called on. `timeout(after:)` outside any runtime uses `Task.sleep`.
// If the clock's runtime shuts down first (its sleeps then end with CancellationError), the deadline is
// kept on the real clock instead.

/// Thrown by ``timeout(after:_:)`` and ``timeout(at:_:)`` when the deadline passed before the body finished.
public struct TimeoutError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The time the body was given (zero for a deadline that had already passed).
    public let duration: Duration

    /// A timeout error for a body that was given `duration`.
    public init(duration: Duration) {
        self.duration = duration
    }

    /// "deadline has elapsed", with the duration.
    public var description: String { "deadline has elapsed (timed out after \(duration))" }
}

/// Runs `body` and returns its value, unless `duration` passes first: then `body` is cancelled and, unless
/// it still returns a value, this throws ``TimeoutError``. An error `body` throws before the deadline is
/// rethrown unchanged, and so is an error of a Kyoto channel or semaphore that reports what happened rather
/// than the cancellation (a channel closed, a broadcast receiver lagged) even when the deadline passed
/// meanwhile: the operation took effect, so its outcome is not replaced.
///
/// `body` runs in a child task (on the caller's executor preference, so on the runtime when called from
/// one of its tasks), and `timeout` returns only once it has finished: a body that ignores cancellation
/// delays the answer. On a Kyoto runtime (outside ``unconstrained(_:)``), Kyoto's channel receives (mpsc
/// and broadcast `recv`, watch `changed`) see the cancellation even when messages keep arriving, at their
/// next cooperative-budget yield, so a receive loop ends; locks, semaphores and sends that never
/// have to wait succeed in a cancelled task (so cleanup code can still use them), so a loop made only of
/// those should check `Task.isCancelled`. Called on a Kyoto runtime, the deadline is on that runtime's clock
/// (paused or not). On a paused clock a body that ignores its cancellation can keep `timeout` from ever
/// returning: a loop of `try? await clock.sleep(...)` spins once its sleeps throw at once, the runtime
/// never falls idle, and so its clock never advances to whatever that loop waits for.
///
/// ```swift
/// let reply = try await timeout(after: .seconds(2)) { try await fetch() }
/// ```
public func timeout<T: Sendable>(
    after duration: Duration, _ body: sending @escaping () async throws -> T
) async throws -> T {
    let clock = Runtime.current?.clock
    return try await race(
        body, duration: max(.zero, duration), clock: clock, deadline: clock?.now.advanced(by: duration),
        fallbackDeadline: ContinuousClock.now.advanced(by: duration))
}

/// Runs `body` and returns its value, unless the runtime's clock reaches `deadline` first (Tokio's
/// `timeout_at`): then as ``timeout(after:_:)``. The deadline is an instant of the clock of the runtime
/// running the caller (``Runtime/clock``); traps when called outside a Kyoto runtime.
///
/// ```swift
/// let deadline = runtime.clock.now.advanced(by: .seconds(5))
/// let a = try await timeout(at: deadline) { try await fetchA() }
/// let b = try await timeout(at: deadline) { try await fetchB() }   // both within the same 5 s
/// ```
public func timeout<T: Sendable>(
    at deadline: RuntimeClock.Instant, _ body: sending @escaping () async throws -> T
) async throws -> T {
    try await _currentRuntimeOrTrap("timeout(at:_:)").takeUnretainedValue().timeout(at: deadline, body)
}

extension Runtime {
    /// Runs `body` and returns its value, unless this runtime's clock reaches `deadline` first: then as
    /// ``timeout(after:_:)``. Usable from any task; `body` runs as the caller's child task.
    ///
    /// The timer fires when this runtime fires it: a current-thread runtime only while a thread is in its
    /// ``blockOn(_:)``, and a paused clock may auto-advance to the deadline at once, since it cannot see a
    /// body running elsewhere. If this runtime shuts down first, the deadline is kept on the real clock.
    public func timeout<T: Sendable>(
        at deadline: RuntimeClock.Instant, _ body: sending @escaping () async throws -> T
    ) async throws -> T {
        let clock = self.clock
        let duration = max(.zero, clock.now.duration(to: deadline))
        return try await race(
            body, duration: duration, clock: clock, deadline: deadline,
            fallbackDeadline: ContinuousClock.now.advanced(by: duration))
    }
}

/// The race of `timeout`: `deadline` on `clock` when there is one, else `fallbackDeadline` on the
/// continuous clock.
private func race<T: Sendable>(
    _ body: sending @escaping () async throws -> T, duration: Duration, clock: RuntimeClock?,
    deadline: RuntimeClock.Instant?, fallbackDeadline: ContinuousClock.Instant
) async throws -> T {
    // The body reaches its child through a lock: it was received `sending`, and the group's closure could
    // not hand a captured non-Sendable value on.
    let transfer = Transfer(body)
    return try await withThrowingTaskGroup(of: TimeoutRace<T>.self) { group in
        group.addTask {
            guard let body = transfer.take() else { fatalError("BUG DETECTED: timeout body taken twice") }
            return .finished(try await body())
        }
        group.addTask {
            // A deadline that has already passed: let the body run first (Tokio polls the future before the
            // timer), so a body that finishes at once, with a value or an error, wins. On a worker this
            // child, added last, would otherwise run first and turn the body's own error into a timeout.
            let alreadyPassed = clock.map { clock in deadline.map { clock.now >= $0 } ?? false }
                ?? (ContinuousClock.now >= fallbackDeadline)
            if alreadyPassed { await Task.yield() }
            if let clock, let deadline {
                do {
                    try await clock.sleep(until: deadline)
                    return .deadline
                } catch where !Task.isCancelled {
                    // The clock's runtime shut down (its sleeps end with CancellationError): keep the
                    // deadline on the real clock below.
                } catch {
                    // Cancelled: the body finished first, or the caller was cancelled.
                    return .timerCancelled
                }
            }
            do {
                try await Task.sleep(until: fallbackDeadline, clock: .continuous)
                return .deadline
            } catch {
                return .timerCancelled
            }
        }
        var deadlinePassed = false
        while true {
            let outcome: TimeoutRace<T>?
            do {
                outcome = try await group.next()
            } catch {
                // The body threw. After the deadline, an error that only reports the cancellation becomes
                // the timeout; one that reports the body's own outcome is kept (see the file comment).
                if deadlinePassed {
                    if let outcome = error as? any OutcomeReportingError, !outcome.isCancellation { throw error }
                    throw TimeoutError(duration: duration)
                }
                group.cancelAll()
                throw error
            }
            switch outcome {
            case .finished(let value):
                group.cancelAll()
                return value
            case .deadline:
                deadlinePassed = true
                group.cancelAll()
            case .timerCancelled:
                // The caller was cancelled (both children are): wait for the body's outcome.
                continue
            case nil:
                // Unreachable: the body's child always reports before the group runs dry.
                throw TimeoutError(duration: duration)
            }
        }
    }
}

/// An error of Kyoto's own that can report what happened to an operation (a channel closed, a receiver
/// lagged, a semaphore closed) as well as its cancellation. `timeout` rethrows one that is not a
/// cancellation even after its deadline passed, since the operation that threw it took effect.
package protocol OutcomeReportingError: Error {
    /// Whether this error only says that the waiting task was cancelled.
    var isCancellation: Bool { get }
}

/// Hands a `sending` value to exactly one taker, on any thread.
final class Transfer<Value>: Sendable {
    private let slot: CheckedMutex<Value?>

    init(_ value: sending Value) {
        slot = CheckedMutex(value)
    }

    /// The value, the first time; nil afterwards.
    func take() -> sending Value? {
        slot.withLock { value in
            let taken = value.take()
            return taken
        }
    }
}

/// What a child of ``timeout(after:_:)`` reports.
enum TimeoutRace<T: Sendable>: Sendable {
    case finished(T)
    case deadline
    case timerCancelled
}
