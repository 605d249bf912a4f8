// The pure state machine of the watch channel: the latest value and its version.
//
// Moving parts: the current value and its version (starting at 1, +1 per notifying send), each
// receiver's seen version (receiver id -> version; 0 means "marked changed"), whether the sender
// is alive, the parked `changed()` waiters (by waiter id, in parking order: ParkedWaiters), and
// the tasks waiting in `Sender.closed()`.
//
// Protocol:
// - Sending stores the value, bumps the version and wakes every parked waiter. `send` refuses the
//   value when there is no receiver; `sendReplace`/`sendModify` always store; `sendIfModified`
//   bumps and wakes only when the closure reports a change (a silent modification otherwise).
// - changed(receiver): if the current version differs from the receiver's seen version, mark it
//   seen and return (with the value, for `changes`); otherwise the end if the sender is gone,
//   else a waiter id to park with. `park` re-checks under the lock and reads the task's
//   cancellation flag there; cancellation removes the waiter; a woken waiter retries. Nothing is
//   marked seen unless the call returns, so `changed()` is cancel-safe.
// - The seen version only moves to the current version, which only grows, so a receiver never
//   observes a version older than one it has seen (only `markChanged()` lowers it, on purpose).
//
// `sendModify`/`sendIfModified` run the caller's closure while the lock is held: the change and the
// version bump must be atomic with respect to readers (as Tokio's RwLock write guard does). That is
// the one place user code runs under a channel lock; the closure must not use this channel.

import KyotoExecutor

struct WatchStateMachine<Value: Sendable> {
    typealias WaiterContinuation = UnsafeContinuation<Bool, Never>

    private(set) var value: Value
    private(set) var version: UInt64 = 1
    private var seen: [UInt64: UInt64] = [:]
    private(set) var senderAlive = true
    /// Parked `changed()` / `wait(for:)` waiters and `Sender.closed()` waiters, each in parking order.
    private var waiters = ParkedWaiters<WaiterContinuation>()
    private var closedWaiters = ParkedWaiters<WaiterContinuation>()
    private var nextID: UInt64 = 0

    init(initial: Value) {
        self.value = initial
    }

    var receiverCount: Int { seen.count }
    var waiterCount: Int { waiters.count }

    private mutating func makeID() -> UInt64 {
        nextID &+= 1
        return nextID
    }

    /// The version `receiver` has seen.
    func seenVersion(of receiver: UInt64) -> UInt64 { seen[receiver] ?? 0 }

    // MARK: Receivers coming and going

    /// Registers a receiver that has seen the current value (or `version`, when cloning).
    mutating func subscribe(seenVersion: UInt64? = nil) -> UInt64 {
        let id = makeID()
        seen[id] = seenVersion ?? version
        return id
    }

    /// A receiver went away; returns the `Sender.closed()` waiters to resume if it was the last.
    mutating func unsubscribe(_ receiver: UInt64) -> [WaiterContinuation] {
        seen.removeValue(forKey: receiver)
        guard seen.isEmpty else { return [] }
        return closedWaiters.takeAll()
    }

    // MARK: Sending

    enum SendAction {
        /// Stored: wake these waiters, and drop the displaced value after unlocking (its deinit may be user
        /// code that uses this channel).
        case wake(displaced: Value, [WaiterContinuation])
        /// No receiver: give the value back.
        case reject(Value)
    }

    mutating func send(_ newValue: Value) -> SendAction {
        guard !seen.isEmpty else { return .reject(newValue) }
        let displaced = value
        value = newValue
        return .wake(displaced: displaced, bump())
    }

    /// Stores `newValue` whether or not anyone listens; returns the old value and the waiters.
    mutating func sendReplace(_ newValue: Value) -> (old: Value, woken: [WaiterContinuation]) {
        let old = value
        value = newValue
        return (old, bump())
    }

    /// Runs `body` on the value in place; bumps the version and wakes waiters if it returns true.
    mutating func sendIfModified(_ body: (inout Value) -> Bool) -> (modified: Bool, woken: [WaiterContinuation]) {
        guard body(&value) else { return (false, []) }
        return (true, bump())
    }

    private mutating func bump() -> [WaiterContinuation] {
        version += 1
        return waiters.takeAll()
    }

    /// The sender went away: wake every waiter so it can see the end.
    mutating func dropSender() -> [WaiterContinuation] {
        senderAlive = false
        return waiters.takeAll()
    }

    // MARK: Receiving

    enum ChangedAction {
        /// A newer version exists; it is now marked seen. Carries the value at that version.
        case changed(Value)
        /// The sender is gone and the current version was seen.
        case closed
        /// Park with this waiter id.
        case suspend(id: UInt64)
    }

    mutating func changed(_ receiver: UInt64) -> ChangedAction {
        if seen[receiver] != version {
            seen[receiver] = version
            return .changed(value)
        }
        return senderAlive ? .suspend(id: makeID()) : .closed
    }

    /// Parks a `changed()` waiter unless there is already something to report (`true`: retry) or
    /// the task is cancelled (`false`).
    mutating func park(receiver: UInt64, waiter: UInt64, continuation: WaiterContinuation, isCancelled: Bool) -> Bool? {
        if seen[receiver] != version || !senderAlive { return true }
        if isCancelled { return false }
        waiters.append(waiter, continuation)
        return nil
    }

    mutating func cancelWaiter(_ waiter: UInt64) -> WaiterContinuation? {
        waiters.remove(waiter)
    }

    /// Whether a version newer than the seen one exists; `nil` when the sender is gone.
    func hasChanged(_ receiver: UInt64) -> Bool? {
        senderAlive ? seen[receiver] != version : nil
    }

    /// The current value, marking it seen.
    mutating func borrowAndUpdate(_ receiver: UInt64) -> Value {
        seen[receiver] = version
        return value
    }

    /// Makes the next `changed()` return at once.
    mutating func markChanged(_ receiver: UInt64) {
        seen[receiver] = 0
    }

    /// Marks the current version seen.
    mutating func markUnchanged(_ receiver: UInt64) {
        seen[receiver] = version
    }

    /// Marks `observed` seen, unless a newer version was marked seen meanwhile.
    mutating func markSeen(_ receiver: UInt64, version observed: UInt64) {
        if let current = seen[receiver], current != 0, current > observed { return }
        seen[receiver] = observed
    }

    /// A snapshot for predicate evaluation outside the lock.
    func snapshot() -> (value: Value, version: UInt64, senderAlive: Bool) {
        (value, version, senderAlive)
    }

    /// Parks a `wait(for:)` waiter until the version moves past `observed` or the sender goes.
    mutating func parkUntilNewer(than observed: UInt64, waiter: UInt64, continuation: WaiterContinuation, isCancelled: Bool) -> Bool? {
        if version != observed || !senderAlive { return true }
        if isCancelled { return false }
        waiters.append(waiter, continuation)
        return nil
    }

    mutating func makeWaiterID() -> UInt64 { makeID() }

    // MARK: Sender.closed()

    enum WaitClosedAction: Equatable {
        case closed
        case suspend(id: UInt64)
    }

    mutating func waitClosed() -> WaitClosedAction {
        seen.isEmpty ? .closed : .suspend(id: makeID())
    }

    mutating func parkClosedWaiter(id: UInt64, continuation: WaiterContinuation, isCancelled: Bool) -> Bool? {
        if seen.isEmpty { return true }
        if isCancelled { return false }
        closedWaiters.append(id, continuation)
        return nil
    }

    mutating func cancelClosedWaiter(id: UInt64) -> WaiterContinuation? {
        closedWaiters.remove(id)
    }
}
