// The pure state machine of the oneshot channel: one value, sent at most once, received once.
//
// Moving parts: the sender's lifecycle (`active`, `sent`, `dropped`), the value slot, whether the
// receiver already completed (got the value or the end), the receiver's lifecycle (`open`,
// `closed` by `close()`, `dropped`), the parked receiver (id + continuation), and the tasks
// waiting in `Sender.closed()`.
//
// Protocol: `send` either hands the value to the parked receiver, stores it, or (receiver closed
// or gone) gives it back. A second `send` is a bug and traps. The receiver's `receive` takes a
// stored value, reports the end (sender gone, value already taken, or the receiver closed with
// nothing stored), or gets a waiter id and parks; parking re-checks the state and the task's
// cancellation flag under the lock (see `MpscStateMachine` for why that covers cancellation before
// and after registration). Awaiting a receiver that already completed is a bug and traps, as in
// Tokio. `close()` keeps a value that was already sent obtainable. Dropping the receiver hands
// the stored value back to the storage so it is released after unlocking.

/// What a parked oneshot receiver is resumed with.
enum OneshotReceiveOutcome<Value: Sendable>: Sendable {
    /// The value, handed over by `send`.
    case value(Value)
    /// The sender went away without sending.
    case closed
    /// The waiting task was cancelled.
    case cancelled
}

struct OneshotStateMachine<Value: Sendable> {
    typealias ReceiverContinuation = UnsafeContinuation<OneshotReceiveOutcome<Value>, Never>
    /// Resumed with `true` when the receiver is gone or closed, `false` on cancellation.
    typealias ClosedContinuation = UnsafeContinuation<Bool, Never>

    enum SenderState: Equatable {
        case active
        case sent
        case dropped
    }

    enum ReceiverState: Equatable {
        case open
        case closed
        case dropped
    }

    private(set) var senderState = SenderState.active
    private(set) var receiverState = ReceiverState.open
    private var slot: Value?
    private(set) var completed = false
    private var parkedReceiver: (id: UInt64, continuation: ReceiverContinuation)?
    private var closedWaiters: [(id: UInt64, continuation: ClosedContinuation)] = []
    private var nextID: UInt64 = 0

    init() {}

    /// Whether a value is stored and not yet received.
    var hasValue: Bool { slot != nil }

    /// Whether a receiver is parked.
    var hasParkedReceiver: Bool { parkedReceiver != nil }

    private mutating func makeID() -> UInt64 {
        nextID &+= 1
        return nextID
    }

    // MARK: Sender events

    enum SendAction {
        /// Hand the value to the parked receiver.
        case resumeReceiver(ReceiverContinuation, Value)
        /// The value was stored.
        case none
        /// The receiver is closed or gone: give the value back.
        case reject(Value)
    }

    mutating func send(_ value: Value) -> SendAction {
        precondition(
            senderState == .active,
            "BUG DETECTED: Oneshot.Sender.send(_:) was called a second time; a oneshot channel carries one value"
        )
        senderState = .sent
        guard receiverState == .open else { return .reject(value) }
        if let parked = parkedReceiver {
            parkedReceiver = nil
            completed = true
            return .resumeReceiver(parked.continuation, value)
        }
        slot = value
        return .none
    }

    /// The sender was deinitialized. Returns the parked receiver to resume with `.closed` if the
    /// value was never sent.
    mutating func dropSender() -> ReceiverContinuation? {
        guard senderState == .active else { return nil }
        senderState = .dropped
        guard let parked = parkedReceiver else { return nil }
        parkedReceiver = nil
        completed = true
        return parked.continuation
    }

    enum WaitClosedAction: Equatable {
        case closed
        case suspend(id: UInt64)
    }

    mutating func waitClosed() -> WaitClosedAction {
        receiverState == .open ? .suspend(id: makeID()) : .closed
    }

    mutating func parkClosedWaiter(id: UInt64, continuation: ClosedContinuation, isCancelled: Bool) -> Bool? {
        if receiverState != .open { return true }
        if isCancelled { return false }
        closedWaiters.append((id, continuation))
        return nil
    }

    mutating func cancelClosedWaiter(id: UInt64) -> ClosedContinuation? {
        guard let index = closedWaiters.firstIndex(where: { $0.id == id }) else { return nil }
        return closedWaiters.remove(at: index).continuation
    }

    // MARK: Receiver events

    enum ReceiveAction {
        case value(Value)
        case closed
        case suspend(id: UInt64)
    }

    mutating func receive() -> ReceiveAction {
        precondition(
            !completed,
            "BUG DETECTED: a Oneshot.Receiver was awaited again after it already produced its result"
        )
        precondition(
            parkedReceiver == nil,
            "BUG DETECTED: two tasks are awaiting the same Oneshot.Receiver at once"
        )
        if let value = slot {
            slot = nil
            completed = true
            return .value(value)
        }
        if senderState != .active || receiverState != .open {
            completed = true
            return .closed
        }
        return .suspend(id: makeID())
    }

    enum ParkAction {
        case resume(ReceiverContinuation, OneshotReceiveOutcome<Value>)
        case none
    }

    mutating func park(id: UInt64, continuation: ReceiverContinuation, isCancelled: Bool) -> ParkAction {
        if let value = slot {
            slot = nil
            completed = true
            return .resume(continuation, .value(value))
        }
        if senderState != .active || receiverState != .open {
            completed = true
            return .resume(continuation, .closed)
        }
        if isCancelled { return .resume(continuation, .cancelled) }
        parkedReceiver = (id, continuation)
        return .none
    }

    mutating func cancelReceive(id: UInt64) -> ReceiverContinuation? {
        guard let parked = parkedReceiver, parked.id == id else { return nil }
        parkedReceiver = nil
        return parked.continuation
    }

    enum TryReceiveAction {
        case value(Value)
        case empty
        case closed
    }

    mutating func tryReceive() -> TryReceiveAction {
        if let value = slot {
            slot = nil
            completed = true
            return .value(value)
        }
        if completed || senderState != .active || receiverState != .open {
            completed = true
            return .closed
        }
        return .empty
    }

    struct CloseAction {
        /// `Sender.closed()` waiters to resume with `true`.
        var closedWaiters: [ClosedContinuation] = []
        /// A parked receiver to resume with `.closed` (a `close()` from another task).
        var receiver: ReceiverContinuation?
        /// A stored value to release after unlocking (receiver dropped).
        var dropped: Value?
    }

    /// The receiver called `close()`: later sends fail; a value already sent stays obtainable.
    mutating func closeReceiver() -> CloseAction {
        var action = CloseAction()
        guard receiverState == .open else { return action }
        receiverState = .closed
        action.closedWaiters = closedWaiters.map(\.continuation)
        closedWaiters = []
        if slot == nil, let parked = parkedReceiver {
            parkedReceiver = nil
            completed = true
            action.receiver = parked.continuation
        }
        return action
    }

    /// The receiver was deinitialized.
    mutating func dropReceiver() -> CloseAction {
        var action = CloseAction()
        receiverState = .dropped
        action.closedWaiters = closedWaiters.map(\.continuation)
        closedWaiters = []
        action.dropped = slot
        slot = nil
        return action
    }
}
