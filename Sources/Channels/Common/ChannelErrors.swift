// Errors shared by every channel kind. Each one carries the unsent value back to the caller, so a
// failed send never loses the value.

import KyotoExecutor

/// The error thrown when a value could not be sent. It carries the value back.
public enum SendError<Value: Sendable>: Error {
    /// The receiving side is gone (dropped or closed), so the value was not sent.
    case closed(Value)
    /// The sending task was cancelled while it waited for capacity; the value was not sent.
    case cancelled(Value)

    /// The value that was not sent.
    public var value: Value {
        switch self {
        case .closed(let value), .cancelled(let value): value
        }
    }
}

extension SendError: Equatable where Value: Equatable {}

/// The error thrown by a send that must not wait. It carries the value back.
public enum TrySendError<Value: Sendable>: Error {
    /// The channel has no free capacity right now.
    case full(Value)
    /// The receiving side is gone (dropped or closed).
    case closed(Value)

    /// The value that was not sent.
    public var value: Value {
        switch self {
        case .full(let value), .closed(let value): value
        }
    }
}

extension TrySendError: Equatable where Value: Equatable {}

/// The error thrown by a send that waits for capacity at most a given time
/// (``Mpsc/Sender/send(_:timeout:)``, Tokio's `SendTimeoutError`). It carries the value back.
public enum SendTimeoutError<Value: Sendable>: Error {
    /// The time passed before the channel had room; the value was not sent.
    case timeout(Value)
    /// The receiving side is gone (dropped or closed), so the value was not sent.
    case closed(Value)
    /// The sending task was cancelled while it waited for capacity; the value was not sent.
    case cancelled(Value)

    /// The value that was not sent.
    public var value: Value {
        switch self {
        case .timeout(let value), .closed(let value), .cancelled(let value): value
        }
    }
}

extension SendTimeoutError: Equatable where Value: Equatable {}

// `timeout` rethrows an error that reports a channel's state (closed, lagged) even when its deadline passed
// meanwhile, since the operation behind it took effect; a `.cancelled` one becomes its `TimeoutError`
// (Timeout.swift, `OutcomeReportingError`).

extension SendError: OutcomeReportingError {
    package var isCancellation: Bool {
        if case .cancelled = self { true } else { false }
    }
}

extension SendTimeoutError: OutcomeReportingError {
    package var isCancellation: Bool {
        if case .cancelled = self { true } else { false }
    }
}

extension Mpsc.ReserveError: OutcomeReportingError {
    package var isCancellation: Bool { self == .cancelled }
}

extension Oneshot.RecvError: OutcomeReportingError {
    package var isCancellation: Bool { self == .cancelled }
}

extension Broadcast.RecvError: OutcomeReportingError {
    package var isCancellation: Bool { self == .cancelled }
}

extension Watch.RecvError: OutcomeReportingError {
    package var isCancellation: Bool { self == .cancelled }
}
