// Idle: who is searching for work and who is parked (Tokio's `idle.rs`, in Swift).
//
// Moving parts: one atomic word `state` packing `searching` (low 16 bits: workers currently looking for
// work to steal) and `unparked` (the rest: workers not parked); plus, under a mutex, the stack of parked
// worker indices.
//
// Protocol:
// - A scheduler that queued work calls `workerToNotify()`. It wakes somebody only if NOBODY is searching
//   (a searcher will find the work) and somebody is parked. The chosen worker is counted as unparked AND
//   searching before it even runs, so concurrent notifiers do not wake a second one for the same work.
// - A worker may start searching only while fewer than half the workers search (`transitionToSearching`),
//   which bounds the contention of thieves on each other's queues.
// - A searcher that found work leaves the searching state; if it was the LAST searcher it must wake
//   another worker (Tokio's chain wake-up), since more work may be waiting behind what it found.
// - A worker about to park records itself in the sleeper stack; if it was the last searcher, it re-scans
//   every queue afterwards and wakes a worker if any work is found (the last-searcher re-check): work
//   queued while it was deciding to park was pushed by somebody who saw `searching > 0` and therefore did
//   not notify anyone.
//
// Why sequentially consistent: the notifier's "push work; load state" and the parker's "store state;
// re-scan queues" form a store-buffering pattern (each side writes one location then reads the other).
// Acquire/release does not forbid both sides reading the old values, which would lose the wake-up; SeqCst
// on both the state updates and the loads gives a single order in which one side sees the other. Where one
// side's access is not itself SeqCst (a local queue's push is a releasing store of its tail; the re-check
// reads local queue lengths relaxed), a SeqCst fence stands between its write and its read.

import Synchronization

final class Idle: Sendable {
    private static let unparkShift: UInt64 = 16
    private static let searchMask: UInt64 = (1 << unparkShift) - 1
    private static let unparkOne: UInt64 = 1 << unparkShift

    let workerCount: Int
    private let state: Atomic<UInt64>
    private let sleepers: CheckedMutex<[Int]>

    init(workerCount: Int) {
        kyotoPrecondition(workerCount < (1 << 16), "BUG DETECTED: too many workers for the idle state word")
        self.workerCount = workerCount
        state = Atomic(UInt64(workerCount) << Idle.unparkShift)
        sleepers = CheckedMutex([])
        sleepers.withLock { $0.reserveCapacity(workerCount) }
    }

    private static func searching(_ s: UInt64) -> Int { Int(s & searchMask) }
    private static func unparked(_ s: UInt64) -> Int { Int(s >> unparkShift) }

    /// Number of workers searching right now (approximate). Relaxed: a snapshot for tests and diagnostics;
    /// no decision that needs the store-buffering guarantee is taken on it.
    var searchingCount: Int { Idle.searching(state.load(ordering: .relaxed)) }

    private func notifyShouldWakeUp() -> Bool {
        // The notifier's push may have been a releasing store (a local queue's tail), which a SeqCst load
        // alone may be reordered before: the fence keeps "push, then read state" in that order (Tokio reads
        // the state with a SeqCst read-modify-write here for the same reason). Pairs with the fence in the
        // last-searcher re-check (`MultiThreadScheduler.notifyIfWorkPending`).
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        // Sequentially consistent: see the file comment (pairs with the SeqCst updates below; against the
        // last-searcher re-check, whose loads of queue lengths are relaxed, the two fences do the pairing).
        let s = state.load(ordering: .sequentiallyConsistent)
        return Idle.searching(s) == 0 && Idle.unparked(s) < workerCount
    }

    /// Picks a parked worker to wake, marking it unparked and searching; nil if nobody should be woken.
    func workerToNotify() -> Int? {
        guard notifyShouldWakeUp() else { return nil }
        return sleepers.withLock { sleepers -> Int? in
            // Check again, now that the lock is held.
            guard notifyShouldWakeUp(), let index = sleepers.popLast() else { return nil }
            // Sequentially consistent: see the file comment.
            state.add(Idle.unparkOne | 1, ordering: .sequentiallyConsistent)
            return index
        }
    }

    /// Records that `index` parks. Returns true if it was the last searcher (it must then re-check all
    /// queues for work).
    func transitionToParked(_ index: Int, isSearching: Bool) -> Bool {
        sleepers.withLock { sleepers -> Bool in
            let delta = Idle.unparkOne | (isSearching ? 1 : 0)
            // Sequentially consistent: see the file comment.
            let previous = state.subtract(delta, ordering: .sequentiallyConsistent).oldValue
            sleepers.append(index)
            return isSearching && Idle.searching(previous) == 1
        }
    }

    /// Tries to become a searcher; refused when half the workers already search.
    func transitionToSearching() -> Bool {
        // Sequentially consistent: see the file comment.
        let s = state.load(ordering: .sequentiallyConsistent)
        if 2 * Idle.searching(s) >= workerCount { return false }
        // Racy by design (as Tokio): two workers may both pass the check; the bound is a soft one.
        state.add(1, ordering: .sequentiallyConsistent)
        return true
    }

    /// Leaves the searching state. Returns true if this was the last searcher.
    func transitionFromSearching() -> Bool {
        // Sequentially consistent: see the file comment.
        let previous = state.subtract(1, ordering: .sequentiallyConsistent).oldValue
        return Idle.searching(previous) == 1
    }

    /// Removes `index` from the sleepers if it is there (woken for another reason, e.g. shutdown or a
    /// job in its own queue). Returns true if it was parked.
    @discardableResult
    func unparkWorker(_ index: Int) -> Bool {
        sleepers.withLock { sleepers -> Bool in
            guard let position = sleepers.firstIndex(of: index) else { return false }
            sleepers.remove(at: position)
            // Sequentially consistent: see the file comment.
            state.add(Idle.unparkOne, ordering: .sequentiallyConsistent)
            return true
        }
    }

    /// Whether `index` is still recorded as parked (i.e. nobody chose to wake it).
    func isParked(_ index: Int) -> Bool {
        sleepers.withLock { $0.contains(index) }
    }
}
