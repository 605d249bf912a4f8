// NotifyStateMachine: the decisions behind `Notify`, as a pure value.
//
// State: at most one stored permit; a FIFO of waiters (the shared `WaiterList`), each with its waker, or
// with none for a `Notified` that enabled itself (joined the queue) but has not started waiting; the
// number of `notifyWaiters` calls so far (`generation`); and the enabled `Notified`s that a `notifyOne` or
// `notifyLast` picked before they started waiting (`pickedEarly`, with how each was picked). The
// invariant is that a permit is never stored while waiters are queued: `notifyOne` gives it to a waiter
// when there is one.
//
// Events.
//   enable        a `Notified` joins the queue without waiting (Tokio's `enable`): notified already if a
//                 `notifyWaiters` came after its creation, or a `notifyOne` picked it, or a permit was
//                 stored (consumed); otherwise it is queued without a waker.
//   wait          a waiter starts waiting: the same checks as `enable`, then it attaches its waker to its
//                 queue entry (keeping its place), or queues, or is refused when its task is already
//                 cancelled (it must not queue). `notified()` is a `wait` created at that moment.
//   notifyOne     wake the oldest waiter, or store the permit when none waits (several calls store one).
//                 An enabled `Notified` that is not waiting yet is picked all the same (recorded in
//                 `pickedEarly`): it finds the notification when it waits, or passes it on if dropped.
//   notifyLast    the same, but picks the newest waiter.
//   notifyWaiters wake every queued waiter and bump `generation`; store nothing. Every `Notified` created
//                 before the call completes: the queued ones are woken or dropped from the queue here, and
//                 the others see the changed generation when they enable or wait.
//   cancel        remove a queued waiter. A waiter already woken is no longer queued; the storage then
//                 forwards its notification (see Notify.swift), so the machine need not remember it.
//   dropNotified  a `Notified` that enabled itself goes away without waiting: leave the queue, or pass on
//                 the notification a `notifyOne`/`notifyLast` picked it for (the same way it was picked).

/// The permit and waiter queue behind `Notify`.
package struct NotifyStateMachine<Waker> {
    /// Whether a `notifyOne` is stored for the next `notified`.
    package private(set) var hasPermit = false
    /// Queued waiters, oldest first: each one's waker, or nil for an enabled `Notified` not waiting yet.
    package private(set) var waiters = WaiterList<Waker?>()
    /// How many times `notifyWaiters` ran.
    package private(set) var generation: UInt64 = 0
    /// Enabled `Notified`s picked before they waited, by id, with how they were picked.
    package private(set) var pickedEarly: [UInt64: Pick] = [:]

    /// Creates a machine with no permit and no waiters.
    package init() {}

    /// How a waiter was picked: by `notifyOne` (oldest first) or by `notifyLast` (newest first). A waiter
    /// that cannot take its notification passes it on the same way.
    package enum Pick: Equatable, Sendable {
        case one, last
    }

    /// Why a waiter may return.
    package enum Outcome: Equatable, Sendable {
        /// It consumed the stored permit.
        case consumedPermit
        /// A `notifyOne` or `notifyLast` picked it.
        case picked(Pick)
        /// A `notifyWaiters` came after it was created.
        case notifiedAll
    }

    /// The notification an enabled or waiting `Notified` created at `generation` already has, if any
    /// (consumed: a pick is forgotten, the permit is taken), or nil.
    private mutating func pending(id: UInt64, since created: UInt64) -> Outcome? {
        if let pick = pickedEarly.removeValue(forKey: id) { return .picked(pick) }
        if generation != created {
            _ = waiters.remove(id)
            return .notifiedAll
        }
        // A stored permit means nobody is queued (the invariant above), this waiter included.
        if hasPermit {
            hasPermit = false
            return .consumedPermit
        }
        return nil
    }

    /// A `Notified` created at `generation` joins the queue without waiting. Returns its notification if
    /// it already has one (it then leaves the queue), nil once it is queued.
    package mutating func enable(id: UInt64, since created: UInt64) -> Outcome? {
        if let outcome = pending(id: id, since: created) { return outcome }
        if !waiters.contains(id) { waiters.append(id, nil) }
        return nil
    }

    /// A waiter about to wait takes the notification it already has, if any, without registering (the
    /// caller then returns without suspending, and without a continuation's executor hop); nil: call `wait`.
    package mutating func takeReady(id: UInt64, since created: UInt64?) -> Outcome? {
        pending(id: id, since: created ?? generation)
    }

    /// What `wait` decided.
    package enum WaitAction: Equatable {
        /// Already notified: return without waiting.
        case ready(Outcome)
        /// The waker is queued: suspend.
        case suspend
        /// The task is already cancelled and would have to wait: fail, leaving the queue.
        case rejectCancelled
    }

    /// A waiter starts waiting: a `Notified` created at `generation` `created`, or, with nil, one created
    /// now (`notified()`).
    package mutating func wait(id: UInt64, since created: UInt64?, waker: Waker, isCancelled: Bool) -> WaitAction {
        if let outcome = pending(id: id, since: created ?? generation) { return .ready(outcome) }
        if isCancelled {
            _ = waiters.remove(id)
            return .rejectCancelled
        }
        // Enabled earlier: the waker goes into the entry, which keeps the place it took then.
        if !waiters.replacePayload(of: id, with: waker) { waiters.append(id, waker) }
        return .suspend
    }

    /// What `notifyOne`/`notifyLast` decided.
    package enum NotifyAction {
        /// Resume this waiter as the notified one.
        case resumeWaiter(Waker)
        /// The picked waiter is an enabled `Notified` that is not waiting yet: it finds the notification
        /// when it waits (or passes it on if dropped). Nothing to resume.
        case pickedEnabled
        /// Nobody waited: the permit is now stored.
        case storedPermit
    }

    /// Notifies the oldest waiter, or stores the permit.
    package mutating func notifyOne() -> NotifyAction {
        guard let (id, waker) = waiters.popFirst() else {
            hasPermit = true
            return .storedPermit
        }
        return picked(id, waker, .one)
    }

    /// Notifies the newest waiter, or stores the permit.
    package mutating func notifyLast() -> NotifyAction {
        guard let (id, waker) = waiters.popLast() else {
            hasPermit = true
            return .storedPermit
        }
        return picked(id, waker, .last)
    }

    private mutating func picked(_ id: UInt64, _ waker: Waker?, _ pick: Pick) -> NotifyAction {
        guard let waker else {
            pickedEarly[id] = pick
            return .pickedEnabled
        }
        return .resumeWaiter(waker)
    }

    /// Removes every waiter and returns the wakers of those waiting (oldest first); bumps the generation so
    /// every `Notified` created before now completes. The permit is left as it was.
    package mutating func notifyWaiters() -> [Waker] {
        generation &+= 1
        return waiters.removeAll().compactMap(\.payload)
    }

    /// Removes a cancelled waiter; returns its waker, or nil when it is no longer queued.
    package mutating func cancel(_ id: UInt64) -> Waker? {
        waiters.remove(id) ?? nil
    }

    /// An enabled `Notified` goes away without waiting: it leaves the queue, or passes on the notification
    /// it was picked for (to the next waiter picked the same way, or as the stored permit). Returns what
    /// the forwarding decided and how, or nil when there was nothing to forward.
    package mutating func dropNotified(_ id: UInt64) -> (action: NotifyAction, pick: Pick)? {
        _ = waiters.remove(id)
        switch pickedEarly.removeValue(forKey: id) {
        case .one: return (notifyOne(), .one)
        case .last: return (notifyLast(), .last)
        case nil: return nil
        }
    }
}
