// ParkedWaiters: continuations parked on one condition, by waiter id, in the order they parked.
//
// Used where every parked waiter is woken at once: a task's end (FinishWaiters: `JoinHandle.value`,
// `LocalJoinHandle.value`) and a broadcast or watch channel's send or sender's end. Waiters are handed back
// in parking order, so on a runtime that runs woken tasks in order (a current-thread runtime, a LocalSet)
// the first to wait is the first to run, as with Tokio's waiter lists (a dictionary woke them in hash
// order). Lives inside its owner's lock; continuations are resumed after unlocking. A cancelled waiter
// leaves by id: a linear search, since cancellations are rare and the list is as long as the number of
// waiters. Ids are unique per owner (each wait takes a fresh one).

/// Parked continuations keyed by waiter id, in parking order. Lives inside its owner's lock.
@frozen
package struct ParkedWaiters<Continuation> {
    @usableFromInline
    var list: [(id: UInt64, continuation: Continuation)] = []

    @inlinable
    package init() {}

    @inlinable
    package var count: Int { list.count }

    @inlinable
    package var isEmpty: Bool { list.isEmpty }

    /// Parks `continuation` as waiter `id`.
    @inlinable
    package mutating func append(_ id: UInt64, _ continuation: Continuation) {
        list.append((id, continuation))
    }

    /// Removes waiter `id` if it is still parked (its cancellation handler); resume it after unlocking.
    @inlinable
    package mutating func remove(_ id: UInt64) -> Continuation? {
        guard let k = list.firstIndex(where: { $0.id == id }) else { return nil }
        return list.remove(at: k).continuation
    }

    /// Takes every parked waiter, in parking order; resume them after unlocking. Writes nothing when there
    /// is none (the common case for a task's end).
    @inlinable
    package mutating func takeAll() -> [Continuation] {
        if list.isEmpty { return [] }
        defer { list.removeAll(keepingCapacity: true) }
        return list.map(\.continuation)
    }
}

extension ParkedWaiters: Sendable where Continuation: Sendable {}
