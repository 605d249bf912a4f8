// BatchSemaphoreStateMachine: the locked half of the batch semaphore.
//
// What it is. The FIFO of waiters that could not take their permits from the atomic word, together with
// the rule for handing permits to them. It is pure: it stores opaque wakers and returns what to wake; the
// storage (`BatchSemaphore`) resumes them after unlocking. It is generic over the waker so the tests can
// drive it with plain tokens.
//
// Moving parts. Each waiter records how many permits it still `needs` and how many are already
// `assigned` to it. Only the head waiter ever holds assigned permits: permits flow to the head until it is
// satisfied, then to the next one (Tokio's partial assignment). `heldByQueue` is therefore the head's
// `assigned`.
//
// Protocol (each step runs with the mutex held).
//   enqueue  - a waiter joins at the tail, possibly already owning permits drained from the word (only
//              when it is the first waiter, since the word's permits are zero while anyone is queued).
//   release  - permits go to the head until it is satisfied; satisfied waiters leave the queue and are
//              returned for waking; when the queue drains, the rest is returned as `leftover` and the
//              storage clears QUEUED and adds it back to the word.
//   cancel   - the waiter leaves the queue; the permits assigned to it are released as above, so they
//              reach the next waiter. A waiter that is no longer queued (already woken) is left alone.
//   close    - every waiter leaves the queue to be woken with `closed`; their assigned permits are
//              returned so the count stays conserved.
//
// Why fair. A waiter is only woken when its whole request is assigned, and permits are assigned strictly
// in queue order, so a large request at the head is never overtaken: later waiters get nothing until it
// is satisfied, and the word's permit field stays zero, so the fast path cannot barge either.
//
// Why conserving. Every permit is in exactly one place: the word, some waiter's `assigned`, or a holder.
// `release` moves permits from a holder to the queue or the word; `cancel` and `close` move a waiter's
// `assigned` back through the same path. No operation creates or drops a permit.

import KyotoExecutor

/// The waiter queue and permit-assignment rule behind `BatchSemaphore`.
package struct BatchSemaphoreStateMachine<Waker> {
    /// One queued acquisition.
    package struct Waiter {
        /// Permits still missing before this waiter can be woken.
        package var needs: Int
        /// Permits already handed to this waiter (non-zero only at the head).
        package var assigned: Int
        /// How to wake the waiting task.
        package var waker: Waker
    }

    /// Wakers to resume after the lock is released. Holds one waker without allocating.
    package struct WakeList {
        /// The first waker added, stored inline.
        package private(set) var first: Waker?
        /// Any further wakers.
        package private(set) var rest: [Waker] = []

        /// An empty list.
        package init() {}

        /// Adds a waker.
        package mutating func append(_ waker: Waker) {
            if first == nil { first = waker } else { rest.append(waker) }
        }

        /// Every waker, in the order they were added.
        package var all: [Waker] { first.map { [$0] + rest } ?? [] }

        /// Calls `body` on every waker, in the order they were added.
        package func forEach(_ body: (Waker) -> Void) {
            if let first { body(first) }
            rest.forEach(body)
        }
    }

    /// The result of giving permits to the queue.
    package struct ReleaseAction {
        /// Waiters whose request is now complete; wake them with success.
        package var wake: WakeList
        /// When the queue drained: the permits to put back into the word (and QUEUED must be cleared).
        /// Nil while waiters remain.
        package var leftover: Int?
    }

    /// What `cancel(_:)` decided.
    package enum CancelAction {
        /// The waiter is not queued (already woken or never queued): nothing to do.
        case none
        /// Resume `waker` with cancellation, then apply `release` (its permits passed on).
        case resumeCancelled(Waker, release: ReleaseAction)
    }

    /// What `close()` decided.
    package struct CloseAction {
        /// Waiters to wake with `closed`.
        package var wake: WakeList
        /// Permits that were assigned to those waiters and go back to the word.
        package var returned: Int
    }

    /// Queued acquisitions, oldest first.
    package private(set) var waiters = WaiterList<Waiter>()

    /// Creates a machine with an empty queue.
    package init() {}

    /// Permits currently assigned to queued waiters.
    package var heldByQueue: Int { waiters.first?.payload.assigned ?? 0 }

    /// Queues a waiter that needs `requested` permits and already owns `assigned` of them.
    package mutating func enqueue(id: UInt64, requested: Int, assigned: Int, waker: Waker) {
        kyotoPrecondition(assigned < requested && (assigned == 0 || waiters.isEmpty),
                     "BUG DETECTED: only a first waiter may join with permits (\(assigned) of \(requested))")
        waiters.append(id, Waiter(needs: requested - assigned, assigned: assigned, waker: waker))
    }

    /// Gives `permits` to the queue, head first. Call only while waiters are queued.
    package mutating func release(_ permits: Int) -> ReleaseAction {
        var remaining = permits
        var wake = WakeList()
        while remaining > 0, let satisfied = waiters.withFirst({ waiter in
            let given = Swift.min(remaining, waiter.needs)
            waiter.needs -= given
            waiter.assigned += given
            remaining -= given
            return waiter.needs == 0
        }) {
            guard satisfied else { break }
            wake.append(waiters.popFirst()!.payload.waker)
        }
        return ReleaseAction(wake: wake, leftover: waiters.isEmpty ? remaining : nil)
    }

    /// Removes a cancelled waiter and passes on the permits assigned to it.
    package mutating func cancel(_ id: UInt64) -> CancelAction {
        guard let waiter = waiters.remove(id) else { return .none }
        if waiters.isEmpty {
            return .resumeCancelled(waiter.waker, release: ReleaseAction(wake: WakeList(), leftover: waiter.assigned))
        }
        return .resumeCancelled(waiter.waker, release: release(waiter.assigned))
    }

    /// Empties the queue for `close()`.
    package mutating func close() -> CloseAction {
        var wake = WakeList()
        var returned = 0
        for (_, waiter) in waiters.removeAll() {
            returned += waiter.assigned
            wake.append(waiter.waker)
        }
        return CloseAction(wake: wake, returned: returned)
    }
}
