// The pure state machine of the mpsc channel: everything the channel lock guards.
//
// Moving parts: the message ring buffer; at most one parked receiver (id + continuation); the
// number of live senders and of outstanding reservations (permits handed out by `reserve()` and
// not yet used or dropped); the receiver's lifecycle (`open`, `closed` by `close()`, `dropped`);
// the tasks waiting in `Sender.closed()`; and the id counter. Every method is a transition that
// returns an action; the storage performs it (resumes continuations, drops messages) after the
// lock is released.
//
// Closing rules (Tokio's): the receiver sees the end of the stream (`.closed`) only when the
// buffer is empty, no reservation is outstanding, and either every sender is gone or the receiver
// closed the channel. After `close()` plain sends are rejected but reservations may still send.
// After the receiver is dropped everything is rejected and the buffer is handed back for dropping.
//
// Parking protocol: `receive()` either returns a message, the end, or a fresh waiter id. The
// caller then calls `park(id:continuation:isCancelled:)` from inside `withUnsafeContinuation`, which
// re-checks the buffer (a message may have arrived between the two locks) and the task's
// cancellation flag, read under the lock. Cancellation runs `cancelReceive(id:)` under the same
// lock: it either finds the parked waiter (removes it, returns its continuation to resume with
// `.cancelled`) or finds nothing, in which case either the waiter has not parked yet (and `park`
// will see the cancellation flag, which is set before the handler runs) or a sender already took
// the continuation and handed it a message, which the receiver then returns: delivered, not lost.
// A parked receiver implies an empty buffer, so a sender that finds one hands the message over
// directly instead of buffering it.

import KyotoExecutor

/// What a parked receiver is resumed with.
@usableFromInline
enum MpscReceiveOutcome<Element: Sendable>: Sendable {
    /// A message handed over directly by a sender.
    case element(Element)
    /// The stream ended: the buffer is empty and no message can arrive.
    case closed
    /// The waiting task was cancelled; no message was taken.
    case cancelled
}

/// The lifecycle of the receiving side.
@usableFromInline
enum MpscReceiverState: Equatable {
    /// The receiver exists and accepts messages.
    case open
    /// `close()` was called: buffered messages stay receivable, plain sends fail.
    case closed
    /// The receiver was deinitialized; buffered messages were dropped and every send fails.
    case dropped
}

@usableFromInline
struct MpscStateMachine<Element: Sendable>: ~Copyable {
    @usableFromInline
    typealias ReceiverContinuation = UnsafeContinuation<MpscReceiveOutcome<Element>, Never>
    /// Resumed with `true` when the receiver is gone, `false` when the waiting task was cancelled.
    @usableFromInline
    typealias ClosedContinuation = UnsafeContinuation<Bool, Never>

    @usableFromInline
    var buffer: RingBuffer<Element>
    @usableFromInline
    var parkedReceiver: (id: UInt64, continuation: ReceiverContinuation)?
    /// The id `receive()`/`receiveMany` handed to a receive that has not parked yet (it parks next, under a
    /// separate lock section). With `parkedReceiver`, it makes "a receive is in progress" visible for the
    /// whole wait, so a second, overlapping receive traps instead of overwriting the first one's parked
    /// continuation (which then would never be resumed).
    @usableFromInline
    var unparkedReceiveID: UInt64?
    @usableFromInline
    var senderCount = 1
    @usableFromInline
    var reservations = 0
    @usableFromInline
    var receiverState = MpscReceiverState.open
    @usableFromInline
    var closedWaiters: [(id: UInt64, continuation: ClosedContinuation)] = []
    @usableFromInline
    var nextID: UInt64 = 0

    @inlinable
    init(initialBufferCapacity: Int) {
        self.buffer = RingBuffer(minimumCapacity: initialBufferCapacity)
    }

    /// Whether a receiver is parked (for tests and diagnostics).
    @inlinable
    var hasParkedReceiver: Bool { parkedReceiver != nil }

    /// The number of tasks waiting in `Sender.closed()`.
    @inlinable
    var closedWaiterCount: Int { closedWaiters.count }

    /// No message can arrive any more once the buffer is drained.
    @inlinable
    var isFinished: Bool {
        reservations == 0 && (senderCount == 0 || receiverState != .open)
    }

    @inlinable
    mutating func makeID() -> UInt64 {
        nextID &+= 1
        return nextID
    }

    // MARK: Sending

    @usableFromInline
    enum PushAction {
        /// Hand the message to the parked receiver.
        case resumeReceiver(ReceiverContinuation, Element)
        /// The message was buffered; nothing to do.
        case none
        /// The receiver is gone (or closed, for a plain send): give the value back.
        case reject(Element)
    }

    /// Enqueues `element`; `reserved` says it is sent through a permit from `reserve()`.
    @inlinable
    mutating func push(_ element: Element, reserved: Bool) -> PushAction {
        if reserved { reservations -= 1 }
        switch receiverState {
        case .dropped: return .reject(element)
        case .closed where !reserved: return .reject(element)
        case .open, .closed: break
        }
        if let parked = parkedReceiver {
            parkedReceiver = nil
            return .resumeReceiver(parked.continuation, element)
        }
        buffer.append(element)
        return .none
    }

    @usableFromInline
    enum ReserveAction: Equatable {
        /// The reservation was recorded.
        case reserved
        /// The receiver is gone or closed: give the permit back and fail.
        case reject
    }

    /// Records a reservation after its capacity permit was acquired.
    @inlinable
    mutating func reserve() -> ReserveAction {
        guard receiverState == .open else { return .reject }
        reservations += 1
        return .reserved
    }

    /// A reservation was dropped unused. Returns the parked receiver to resume with `.closed` if
    /// that was the last thing keeping the stream open.
    @inlinable
    mutating func releaseReservation() -> ReceiverContinuation? {
        reservations -= 1
        return takeReceiverIfFinished()
    }

    /// A sender was deinitialized. Returns the parked receiver to resume with `.closed` if that was
    /// the last sender.
    @inlinable
    mutating func dropSender() -> ReceiverContinuation? {
        senderCount -= 1
        return takeReceiverIfFinished()
    }

    @inlinable
    mutating func takeReceiverIfFinished() -> ReceiverContinuation? {
        guard isFinished, let parked = parkedReceiver else { return nil }
        // A parked receiver implies an empty buffer.
        parkedReceiver = nil
        return parked.continuation
    }

    // MARK: Receiving

    @usableFromInline
    enum ReceiveAction {
        /// A buffered message was taken.
        case element(Element)
        /// The stream ended.
        case closed
        /// Nothing to take yet: park with this id.
        case suspend(id: UInt64)
    }

    /// Takes the front message, reports the end, or hands out a waiter id.
    @inlinable
    mutating func receive() -> ReceiveAction {
        if let element = buffer.popFirst() { return .element(element) }
        if isFinished { return .closed }
        kyotoPrecondition(
            parkedReceiver == nil && unparkedReceiveID == nil,
            "BUG DETECTED: two tasks are receiving from the same mpsc receiver at once; it has a single consumer"
        )
        let id = makeID()
        unparkedReceiveID = id
        return .suspend(id: id)
    }

    @usableFromInline
    enum ReceiveManyAction {
        /// `count` messages (at least one) were appended.
        case received(count: Int)
        /// The stream ended.
        case closed
        /// Nothing to take yet: park with this id.
        case suspend(id: UInt64)
    }

    /// Appends up to `limit` buffered messages to `output` and returns how many; never waits or ends the
    /// stream (the rest of a `receiveMany` whose first message was handed over to its parked receiver).
    @inlinable
    mutating func takeBuffered(into output: inout [Element], limit: Int) -> Int {
        var taken = 0
        while taken < limit, let element = buffer.popFirst() {
            output.append(element)
            taken += 1
        }
        return taken
    }

    /// Appends up to `limit` buffered messages to `output`, or reports the end, or hands out an id.
    @inlinable
    mutating func receiveMany(into output: inout [Element], limit: Int) -> ReceiveManyAction {
        let taken = takeBuffered(into: &output, limit: limit)
        if taken > 0 { return .received(count: taken) }
        if isFinished { return .closed }
        kyotoPrecondition(
            parkedReceiver == nil && unparkedReceiveID == nil,
            "BUG DETECTED: two tasks are receiving from the same mpsc receiver at once; it has a single consumer"
        )
        let id = makeID()
        unparkedReceiveID = id
        return .suspend(id: id)
    }

    @usableFromInline
    enum ParkAction {
        /// Resume the continuation at once with this outcome.
        case resume(ReceiverContinuation, MpscReceiveOutcome<Element>)
        /// The receiver is parked; a sender, the last drop, or cancellation will resume it.
        case none
    }

    /// Parks the receiver that got `id` from `receive()`, unless it can complete right away.
    @inlinable
    mutating func park(id: UInt64, continuation: ReceiverContinuation, isCancelled: Bool) -> ParkAction {
        kyotoPrecondition(
            unparkedReceiveID == id,
            "BUG DETECTED: two tasks are receiving from the same mpsc receiver at once; it has a single consumer"
        )
        unparkedReceiveID = nil
        if let element = buffer.popFirst() { return .resume(continuation, .element(element)) }
        if isFinished { return .resume(continuation, .closed) }
        if isCancelled { return .resume(continuation, .cancelled) }
        parkedReceiver = (id, continuation)
        return .none
    }

    /// The task of waiter `id` was cancelled. Returns its continuation if it is still parked.
    @inlinable
    mutating func cancelReceive(id: UInt64) -> ReceiverContinuation? {
        guard let parked = parkedReceiver, parked.id == id else { return nil }
        parkedReceiver = nil
        return parked.continuation
    }

    @usableFromInline
    enum TryReceiveAction {
        case element(Element)
        case empty
        case disconnected
    }

    /// Takes the front message without waiting.
    @inlinable
    mutating func tryReceive() -> TryReceiveAction {
        if let element = buffer.popFirst() { return .element(element) }
        return isFinished ? .disconnected : .empty
    }

    // MARK: Closing

    @usableFromInline
    struct CloseAction: ~Copyable {
        /// The `Sender.closed()` waiters to resume with `true`.
        @usableFromInline
        var closedWaiters: [ClosedContinuation] = []
        /// A parked receiver to resume with `.closed` (a concurrent `close()` from another task).
        @usableFromInline
        var receiver: ReceiverContinuation?
        /// Buffered messages to drop after unlocking (only when the receiver was dropped).
        @usableFromInline
        var dropped: RingBuffer<Element>?
        /// Whether the permit policy must be closed (first transition out of `.open`).
        @usableFromInline
        var closePermits = false

        @inlinable
        init() {}

        /// The number of messages handed back for dropping.
        var droppedCount: Int {
            switch dropped {
            case .some(let buffer): buffer.count
            case .none: 0
            }
        }
    }

    /// The receiver called `close()`.
    @usableFromInline
    mutating func closeReceiver() -> CloseAction {
        var action = CloseAction()
        guard receiverState == .open else { return action }
        receiverState = .closed
        action.closePermits = true
        action.closedWaiters = closedWaiters.map(\.continuation)
        closedWaiters = []
        action.receiver = takeReceiverIfFinished()
        return action
    }

    /// The receiver was deinitialized: everything buffered is handed back for dropping.
    @usableFromInline
    mutating func dropReceiver() -> CloseAction {
        var action = CloseAction()
        action.closePermits = receiverState == .open
        receiverState = .dropped
        action.closedWaiters = closedWaiters.map(\.continuation)
        closedWaiters = []
        action.dropped = buffer.takeAll()
        return action
    }

    @usableFromInline
    enum WaitClosedAction: Equatable {
        case closed
        case suspend(id: UInt64)
    }

    /// `Sender.closed()` starts: done at once if the receiver is gone, else a waiter id.
    @inlinable
    mutating func waitClosed() -> WaitClosedAction {
        receiverState == .open ? .suspend(id: makeID()) : .closed
    }

    /// Parks a `Sender.closed()` waiter; returns the value to resume it with at once, if any.
    @inlinable
    mutating func parkClosedWaiter(id: UInt64, continuation: ClosedContinuation, isCancelled: Bool) -> Bool? {
        if receiverState != .open { return true }
        if isCancelled { return false }
        closedWaiters.append((id, continuation))
        return nil
    }

    /// A `Sender.closed()` waiter was cancelled; returns its continuation if still parked.
    @inlinable
    mutating func cancelClosedWaiter(id: UInt64) -> ClosedContinuation? {
        guard let index = closedWaiters.firstIndex(where: { $0.id == id }) else { return nil }
        return closedWaiters.remove(at: index).continuation
    }
}
