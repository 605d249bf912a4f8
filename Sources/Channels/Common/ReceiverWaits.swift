// ReceiverWaits: catches two tasks waiting on one broadcast or watch receiver at once.
//
// A receiver has one consumer (Tokio's `recv` and `changed` take `&mut self`, so sharing one is a compile
// error there). Shared here by reference, two waiting tasks would silently split the values (broadcast) or
// one would mark a change seen that the other then misses (watch), so the second wait traps instead, as
// mpsc's and oneshot's receivers do. Like theirs, the check sees only waits that park: a receive that finds
// a value at once does not register.
//
// Protocol (under the channel's lock): a receive that is about to park calls `begin` with its new waiter id
// and the id it parked with before (nil on its first park); one that ends (a value, an error, cancelled)
// after having parked calls `end` with its last id. Another receive's id on the receiver at `begin` means two
// receives overlap.

import KyotoExecutor

struct ReceiverWaits {
    /// The waiter id of the wait in progress on each receiver that has one.
    private var current: [UInt64: UInt64] = [:]

    /// Records that `receiver`'s receive parks with waiter `id` (`previous`: its id when it parked before).
    /// Traps if another receive is waiting on `receiver`.
    mutating func begin(_ receiver: UInt64, id: UInt64, previous: UInt64?, misuse: @autoclosure () -> String) {
        if let other = current[receiver] { kyotoPrecondition(other == previous, misuse()) }
        current[receiver] = id
    }

    /// Records that the receive that last parked with `previous` (nil: it never parked) has ended.
    mutating func end(_ receiver: UInt64, previous: UInt64?) {
        guard let previous, current[receiver] == previous else { return }
        current[receiver] = nil
    }
}
