// ConsumerFlag: catches two tasks waiting on one broadcast or watch receiver at once.
//
// A receiver has one consumer (Tokio's `recv` and `changed` take `&mut self`, so sharing one is a compile
// error there). Shared here by reference, two waiting tasks would silently split the values (broadcast) or
// one would mark a change seen that the other then misses (watch), so the second wait traps instead, as
// mpsc's and oneshot's receivers do. Like theirs, the check covers waits that park: a receive that finds a
// value at once does not look at the flag, so the hot path pays nothing.
//
// Each receiver owns one flag (an atomic in the receiver object, touched only by the task using it, outside
// the channel's lock: an earlier version kept the waiting receivers in a dictionary under the lock, and the
// longer critical sections cost watch_fanout 17%). A receive sets it when it first parks and clears it when
// it returns, however it ends; setting a flag that is already set means another receive of the same receiver
// is parked or about to park.

import Synchronization

import KyotoExecutor

extension Atomic where Value == Bool {
    /// Marks the receiver whose flag this is as having a parked receive; traps with `misuse` if one already
    /// had. Call once per receive, before its first park, and `endParkedReceive()` when it returns.
    func beginParkedReceive(misuse: @autoclosure () -> String) {
        // Acquiring: pairs with the releasing store in `endParkedReceive`, so a receive that follows another
        // (ordered by the caller's own synchronization) finds the flag cleared.
        let wasSet = exchange(true, ordering: .acquiring)
        kyotoPrecondition(!wasSet, misuse())
    }

    /// Clears the flag `beginParkedReceive` set.
    func endParkedReceive() {
        // Releasing: pairs with the acquiring exchange in `beginParkedReceive`.
        store(false, ordering: .releasing)
    }
}
