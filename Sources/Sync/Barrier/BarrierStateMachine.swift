// BarrierStateMachine: the decisions behind `AsyncBarrier`, as a pure value.
//
// State: the party size `count`, the waiters of the current generation (the shared `WaiterList`) and a
// generation number. The invariant is `waiters.count < count` between events.
//
// Events.
//   arrive  - when the caller completes the party, every queued waiter is released as a follower, the
//             generation advances and the caller leads. Otherwise a cancelled caller is refused without
//             being counted, and any other caller is queued.
//   cancel  - a queued waiter withdraws its arrival (it leaves no trace). A waiter that is no longer queued
//             was released by a leader; the barrier has tripped and the waiter returns normally.

import KyotoExecutor

/// The arrivals and generations behind `AsyncBarrier`.
package struct BarrierStateMachine<Waker> {
    /// How many arrivals release a generation.
    package let count: Int
    /// Completed generations.
    package private(set) var generation: UInt64 = 0
    /// Waiters of the current generation, in arrival order.
    package private(set) var waiters = WaiterList<Waker>()

    /// Creates a machine for parties of `count` (at least 1).
    package init(count: Int) {
        kyotoPrecondition(count >= 1, "BUG DETECTED: a barrier state machine needs a count of at least 1")
        self.count = count
    }

    /// What `arrive` decided.
    package enum ArriveAction {
        /// The caller completed the party: resume these followers, and the caller leads.
        case resumeFollowersAndLead([Waker])
        /// The caller was queued: suspend.
        case suspend
        /// The caller is cancelled and would have to wait: fail without counting its arrival.
        case rejectCancelled
    }

    /// A task arrives at the barrier.
    package mutating func arrive(id: UInt64, waker: Waker, isCancelled: Bool) -> ArriveAction {
        if waiters.count + 1 == count {
            generation &+= 1
            return .resumeFollowersAndLead(waiters.removeAll().map(\.payload))
        }
        if isCancelled { return .rejectCancelled }
        waiters.append(id, waker)
        return .suspend
    }

    /// A task arrives and completes the party: returns the followers to resume (the caller leads), or nil if
    /// the caller would have to wait (nothing changed; call `arrive`).
    package mutating func arriveIfLast() -> [Waker]? {
        guard waiters.count + 1 == count else { return nil }
        generation &+= 1
        return waiters.removeAll().map(\.payload)
    }

    /// Withdraws a cancelled waiter; returns its waker, or nil when it was already released.
    package mutating func cancel(_ id: UInt64) -> Waker? {
        waiters.remove(id)
    }
}
