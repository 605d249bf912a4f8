// NotifyStateMachine: the decisions behind `Notify`, as a pure value.
//
// State: at most one stored permit, and a FIFO of waiters (the shared `WaiterList`). The invariant is that
// a permit is never stored while waiters are queued: `notifyOne` gives it to a waiter when there is one.
//
// Events.
//   notified      consume the stored permit (return at once), or queue the waiter, or refuse a task that
//                 is already cancelled (it must not queue).
//   notifyOne     wake the oldest waiter, or store the permit when none waits (several calls store one).
//   notifyLast    the same, but wakes the newest waiter.
//   notifyWaiters wake every queued waiter; store nothing.
//   cancel        remove a queued waiter. A waiter already woken is no longer queued; the storage then
//                 forwards its notification (see Notify.swift), so the machine need not remember it.

/// The permit and waiter queue behind `Notify`.
package struct NotifyStateMachine<Waker> {
    /// Whether a `notifyOne` is stored for the next `notified`.
    package private(set) var hasPermit = false
    /// Queued waiters, oldest first.
    package private(set) var waiters = WaiterList<Waker>()

    /// Creates a machine with no permit and no waiters.
    package init() {}

    /// What `notified` decided.
    package enum NotifiedAction: Equatable {
        /// The stored permit was consumed: return without waiting.
        case consumedPermit
        /// The waiter was queued: suspend.
        case suspend
        /// The task is already cancelled and would have to wait: fail without queueing.
        case rejectCancelled
    }

    /// A task asks to be notified.
    package mutating func notified(id: UInt64, waker: Waker, isCancelled: Bool) -> NotifiedAction {
        if hasPermit {
            hasPermit = false
            return .consumedPermit
        }
        if isCancelled { return .rejectCancelled }
        waiters.append(id, waker)
        return .suspend
    }

    /// What `notifyOne`/`notifyLast` decided.
    package enum NotifyAction {
        /// Resume this waiter as the notified one.
        case resumeWaiter(Waker)
        /// Nobody waited: the permit is now stored.
        case storedPermit
    }

    /// Notifies the oldest waiter, or stores the permit.
    package mutating func notifyOne() -> NotifyAction {
        guard let (_, waker) = waiters.popFirst() else {
            hasPermit = true
            return .storedPermit
        }
        return .resumeWaiter(waker)
    }

    /// Notifies the newest waiter, or stores the permit.
    package mutating func notifyLast() -> NotifyAction {
        guard let (_, waker) = waiters.popLast() else {
            hasPermit = true
            return .storedPermit
        }
        return .resumeWaiter(waker)
    }

    /// Removes and returns every waiter (oldest first); the permit is left as it was.
    package mutating func notifyWaiters() -> [Waker] {
        waiters.removeAll().map(\.payload)
    }

    /// Removes a cancelled waiter; returns its waker, or nil when it is no longer queued.
    package mutating func cancel(_ id: UInt64) -> Waker? {
        waiters.remove(id)
    }
}
