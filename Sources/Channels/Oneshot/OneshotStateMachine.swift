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

import KyotoExecutor

/// What a parked oneshot receiver is resumed with.
@usableFromInline
enum OneshotReceiveOutcome<Value: Sendable>: Sendable {
    /// The value, handed over by `send`.
    case value(Value)
    /// The sender went away without sending.
    case closed
    /// The waiting task was cancelled.
    case cancelled
}

@usableFromInline
struct OneshotStateMachine<Value: Sendable> {
    @usableFromInline
    typealias ReceiverContinuation = UnsafeContinuation<OneshotReceiveOutcome<Value>, Never>
    /// Resumed with `true` when the receiver is gone or closed, `false` on cancellation.
    @usableFromInline
    typealias ClosedContinuation = UnsafeContinuation<Bool, Never>

    @usableFromInline
    enum SenderState: Equatable {
        case active
        case sent
        case dropped
    }

    @usableFromInline
    enum ReceiverState: Equatable {
        case open
        case closed
        case dropped
    }

    @usableFromInline
    var senderState = SenderState.active
    @usableFromInline
    var receiverState = ReceiverState.open
    @usableFromInline
    var slot: Value?
    @usableFromInline
    var completed = false
    @usableFromInline
    var parkedReceiver: (id: UInt64, continuation: ReceiverContinuation)?
    /// The id `receive()` handed to an await that has not parked yet (it parks next, under a separate lock
    /// section). With `parkedReceiver`, it makes "the receiver is being awaited" visible for the whole wait,
    /// so a second, overlapping await traps instead of overwriting the first one's parked continuation
    /// (never resumed then) or being told `.closed` after the first one took the value.
    @usableFromInline
    var unparkedReceiveID: UInt64?
    @usableFromInline
    var closedWaiters: [(id: UInt64, continuation: ClosedContinuation)] = []
    @usableFromInline
    var nextID: UInt64 = 0

    @inlinable
    init() {}

    /// Whether a value is stored and not yet received.
    @inlinable
    var hasValue: Bool { slot != nil }

    /// Whether a receiver is parked.
    @inlinable
    var hasParkedReceiver: Bool { parkedReceiver != nil }

    @inlinable
    mutating func makeID() -> UInt64 {
        nextID &+= 1
        return nextID
    }

    // MARK: Sender events

    @usableFromInline
    enum SendAction {
        /// Hand the value to the parked receiver.
        case resumeReceiver(ReceiverContinuation, Value)
        /// The value was stored.
        case none
        /// The receiver is closed or gone: give the value back.
        case reject(Value)
    }

    @inlinable
    mutating func send(_ value: Value) -> SendAction {
        kyotoPrecondition(
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
    @inlinable
    mutating func dropSender() -> ReceiverContinuation? {
        guard senderState == .active else { return nil }
        senderState = .dropped
        guard let parked = parkedReceiver else { return nil }
        parkedReceiver = nil
        completed = true
        return parked.continuation
    }

    @usableFromInline
    enum WaitClosedAction: Equatable {
        case closed
        case suspend(id: UInt64)
    }

    @inlinable
    mutating func waitClosed() -> WaitClosedAction {
        receiverState == .open ? .suspend(id: makeID()) : .closed
    }

    @inlinable
    mutating func parkClosedWaiter(id: UInt64, continuation: ClosedContinuation, isCancelled: Bool) -> Bool? {
        if receiverState != .open { return true }
        if isCancelled { return false }
        closedWaiters.append((id, continuation))
        return nil
    }

    @inlinable
    mutating func cancelClosedWaiter(id: UInt64) -> ClosedContinuation? {
        guard let index = closedWaiters.firstIndex(where: { $0.id == id }) else { return nil }
        return closedWaiters.remove(at: index).continuation
    }

    // MARK: Receiver events

    @usableFromInline
    enum ReceiveAction {
        case value(Value)
        case closed
        case suspend(id: UInt64)
    }

    @inlinable
    mutating func receive() -> ReceiveAction {
        kyotoPrecondition(
            !completed,
            "BUG DETECTED: a Oneshot.Receiver was awaited again after it already produced its result"
        )
        kyotoPrecondition(
            parkedReceiver == nil && unparkedReceiveID == nil,
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
        let id = makeID()
        unparkedReceiveID = id
        return .suspend(id: id)
    }

    @usableFromInline
    enum ParkAction {
        case resume(ReceiverContinuation, OneshotReceiveOutcome<Value>)
        case none
    }

    @inlinable
    mutating func park(id: UInt64, continuation: ReceiverContinuation, isCancelled: Bool) -> ParkAction {
        kyotoPrecondition(
            unparkedReceiveID == id,
            "BUG DETECTED: two tasks are awaiting the same Oneshot.Receiver at once"
        )
        unparkedReceiveID = nil
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

    @inlinable
    mutating func cancelReceive(id: UInt64) -> ReceiverContinuation? {
        guard let parked = parkedReceiver, parked.id == id else { return nil }
        parkedReceiver = nil
        return parked.continuation
    }

    @usableFromInline
    enum TryReceiveAction {
        case value(Value)
        case empty
        case closed
    }

    @inlinable
    mutating func tryReceive() -> TryReceiveAction {
        // A value taken here while a receive waits would leave that receive to report `.closed` for a channel
        // whose value was sent (and taken once, here): one receiver, one receive at a time.
        kyotoPrecondition(
            parkedReceiver == nil && unparkedReceiveID == nil,
            "BUG DETECTED: Oneshot.Receiver.tryRecv() called while a task is awaiting the same receiver"
        )
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

    @usableFromInline
    struct CloseAction {
        /// `Sender.closed()` waiters to resume with `true`.
        @usableFromInline
        var closedWaiters: [ClosedContinuation] = []
        /// A parked receiver to resume with `.closed` (a `close()` from another task).
        @usableFromInline
        var receiver: ReceiverContinuation?
        /// A stored value to release after unlocking (receiver dropped).
        @usableFromInline
        var dropped: Value?

        @inlinable
        init() {}
    }

    /// The receiver called `close()`: later sends fail; a value already sent stays obtainable.
    @inlinable
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
    @inlinable
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
