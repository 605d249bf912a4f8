// The pure state machine of the broadcast channel: a fixed ring of slots shared by all receivers.
//
// Moving parts: `slots` (a power-of-two ring; each slot holds a value, the absolute position it
// was written at, and how many receivers alive at that time still have to read it), `tail` (the
// position of the next write), one cursor per receiver (the position it reads next), whether the
// sender is alive, and the parked receivers (by waiter id, in parking order: ParkedWaiters).
//
// Protocol:
// - send: with no receiver the value is refused (and not retained). Otherwise it overwrites slot
//   `tail & mask` (the displaced value is handed back to be released after unlocking), records
//   `remaining = receiver count`, advances `tail`, and wakes every parked receiver.
// - receive(receiver): if the cursor equals `tail` there is nothing new (the end once the sender is
//   gone, else park). If the cursor is older than the oldest retained position
//   (`tail - capacity`) the receiver lagged: it gets `.lagged(n)` and its cursor jumps to the
//   oldest retained value, which its next receive returns. Otherwise it copies the slot's value;
//   the last expected reader clears the slot so the value is released early.
// - unsubscribe: a receiver that goes away counts as having read its unread retained values.
//
// Races considered: parked receivers are only woken (resumed with `true`) and then retry under
// the lock, so a value is never handed to a receiver that was cancelled meanwhile; cancellation
// removes the waiter by id, and `park` re-checks the state and the task's cancellation flag under
// the lock (covers cancellation before registration).
//
// Why correct: a slot's value is non-nil for every position a live receiver can still read —
// a receiver alive at write time is counted in `remaining`; one subscribed later starts at
// `tail`; lagging jumps past overwritten slots only.

import KyotoExecutor

struct BroadcastStateMachine<Element: Sendable> {
    typealias WaiterContinuation = UnsafeContinuation<Bool, Never>

    struct Slot {
        var value: Element?
        var position: UInt64
        var remaining: Int
    }

    private var slots: [Slot]
    private let mask: UInt64
    private(set) var tail: UInt64 = 0
    private var cursors: [UInt64: UInt64] = [:]
    private(set) var senderAlive = true
    /// Parked receivers, in the order they parked (a send wakes them in that order).
    private var waiters = ParkedWaiters<WaiterContinuation>()
    private var nextID: UInt64 = 0

    /// `capacity` must already be a power of two.
    init(capacity: Int) {
        self.slots = Array(repeating: Slot(value: nil, position: 0, remaining: 0), count: capacity)
        self.mask = UInt64(capacity - 1)
    }

    /// The number of slots.
    var capacity: Int { slots.count }

    /// The number of live receivers.
    var receiverCount: Int { cursors.count }

    /// The number of parked receivers.
    var waiterCount: Int { waiters.count }

    /// The oldest position still retained in the ring.
    private var oldest: UInt64 {
        tail >= UInt64(slots.count) ? tail - UInt64(slots.count) : 0
    }

    private mutating func makeID() -> UInt64 {
        nextID &+= 1
        return nextID
    }

    // MARK: Receivers coming and going

    /// Registers a receiver that sees only values sent from now on; returns its id.
    mutating func subscribe() -> UInt64 {
        let id = makeID()
        cursors[id] = tail
        return id
    }

    /// A receiver went away: its unread retained values count as read. Returns the values whose
    /// last reader it was, to release after unlocking.
    mutating func unsubscribe(_ receiver: UInt64) -> [Element] {
        guard let cursor = cursors.removeValue(forKey: receiver) else { return [] }
        var released: [Element] = []
        var position = max(cursor, oldest)
        while position < tail {
            let index = Int(position & mask)
            slots[index].remaining -= 1
            if slots[index].remaining == 0, let value = slots[index].value {
                released.append(value)
                slots[index].value = nil
            }
            position += 1
        }
        return released
    }

    /// The number of values `receiver` has not read yet (may exceed the capacity: it lagged).
    func unread(by receiver: UInt64) -> Int {
        Int(tail - (cursors[receiver] ?? tail))
    }

    /// The number of retained values some receiver has not read yet.
    var queued: Int {
        guard let minimum = cursors.values.min() else { return 0 }
        return Int(tail - max(minimum, oldest))
    }

    // MARK: Sending

    enum SendAction {
        /// Stored: wake these parked receivers; `receivers` were subscribed; release `displaced`.
        case wake([WaiterContinuation], receivers: Int, displaced: Element?)
        /// No receiver: give the value back.
        case reject(Element)
    }

    mutating func send(_ value: Element) -> SendAction {
        guard !cursors.isEmpty else { return .reject(value) }
        let index = Int(tail & mask)
        let displaced = slots[index].value
        slots[index] = Slot(value: value, position: tail, remaining: cursors.count)
        tail += 1
        return .wake(waiters.takeAll(), receivers: cursors.count, displaced: displaced)
    }

    /// The sender went away: wake every parked receiver so it can see the end.
    mutating func dropSender() -> [WaiterContinuation] {
        senderAlive = false
        return waiters.takeAll()
    }

    // MARK: Receiving

    enum ReceiveAction {
        case value(Element)
        case lagged(Int)
        case closed
        /// Nothing new: park with this waiter id.
        case suspend(id: UInt64)
    }

    /// Reads the next value for `receiver`, or hands out a waiter id if there is none yet.
    mutating func receive(_ receiver: UInt64) -> ReceiveAction {
        switch tryReceive(receiver) {
        case .value(let value): .value(value)
        case .lagged(let count): .lagged(count)
        case .closed: .closed
        case .empty: .suspend(id: makeID())
        }
    }

    enum TryReceiveAction {
        case value(Element)
        case lagged(Int)
        case closed
        case empty
    }

    /// Reads the next value for `receiver` without waiting.
    mutating func tryReceive(_ receiver: UInt64) -> TryReceiveAction {
        guard let cursor = cursors[receiver] else { return .closed }
        if cursor == tail { return senderAlive ? .empty : .closed }
        let oldest = oldest
        if cursor < oldest {
            cursors[receiver] = oldest
            return .lagged(Int(oldest - cursor))
        }
        let index = Int(cursor & mask)
        guard let value = slots[index].value, slots[index].position == cursor else {
            fatalError("broadcast slot \(index) lost a value that receiver \(receiver) had not read")
        }
        slots[index].remaining -= 1
        if slots[index].remaining == 0 { slots[index].value = nil }
        cursors[receiver] = cursor + 1
        return .value(value)
    }

    /// Parks a receiver unless something changed since it looked (then resume it to retry).
    mutating func park(
        receiver: UInt64,
        waiter: UInt64,
        continuation: WaiterContinuation,
        isCancelled: Bool
    ) -> Bool? {
        if cursors[receiver] != tail || !senderAlive { return true }
        if isCancelled { return false }
        waiters.append(waiter, continuation)
        return nil
    }

    /// A parked receiver was cancelled; returns its continuation if it is still parked.
    mutating func cancelWaiter(_ waiter: UInt64) -> WaiterContinuation? {
        waiters.remove(waiter)
    }
}
