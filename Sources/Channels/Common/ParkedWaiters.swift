// ParkedWaiters: the parked tasks of a broadcast or watch channel, in the order they parked.
//
// A send (or the sender's end) wakes every parked waiter at once; they are handed back in parking order, so
// on a runtime that runs woken tasks in order (a current-thread runtime, a LocalSet) the first to wait is
// the first to run (Tokio keeps its waiters in a list for the same reason; a dictionary woke them in hash
// order). Lives inside the channel's lock. A cancelled waiter leaves by id: a linear search, since
// cancellations are rare and the list is as long as the number of waiting receivers.

/// Parked continuations keyed by waiter id, in parking order.
struct ParkedWaiters<Continuation> {
    private var list: [(id: UInt64, continuation: Continuation)] = []

    var count: Int { list.count }
    var isEmpty: Bool { list.isEmpty }

    /// Parks `continuation` as waiter `id` (ids are unique: each wait takes a fresh one).
    mutating func append(_ id: UInt64, _ continuation: Continuation) {
        list.append((id, continuation))
    }

    /// Removes waiter `id` if it is still parked (its cancellation handler); resume it after unlocking.
    mutating func remove(_ id: UInt64) -> Continuation? {
        guard let k = list.firstIndex(where: { $0.id == id }) else { return nil }
        return list.remove(at: k).continuation
    }

    /// Takes every parked waiter, in parking order; resume them after unlocking.
    mutating func takeAll() -> [Continuation] {
        if list.isEmpty { return [] }
        defer { list.removeAll(keepingCapacity: true) }
        return list.map(\.continuation)
    }
}

extension ParkedWaiters: Sendable where Continuation: Sendable {}
