// Errors shared by every channel kind. Each one carries the unsent value back to the caller, so a
// failed send never loses the value.

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
