// TimerQueue: the runtime's pending timers (`Task.sleep` wake-up jobs and `RuntimeClock.sleep` wakers),
// ordered by deadline.
//
// What it is: a binary min-heap of (deadline, sequence, action) behind a CheckedMutex, plus `earliest`, an
// atomic mirror of the smallest deadline so schedulers can ask "is anything due?" without locking.
// A heap rather than Tokio's hierarchical wheel: O(log n) insert and pop with no tick granularity.
//
// Cancellation. A cancelled `Task.sleep` still fires its wake-up job, which the Swift runtime turns into
// a no-op; Swift gives the executor no way to know. A cancelled `RuntimeClock.sleep` marks its waker, and
// the queue drops such wakers lazily: `nextLiveDeadline` (the paused clock's auto-advance) pops them off
// the top so the clock does not jump to a dead deadline, and `insert` rebuilds the heap without them once
// they are more than half of it (at least 64), so a loop of short `timeout`s with long deadlines does not
// grow the heap without bound. The count of cancelled wakers is a hint (a waker cancelled before it was
// inserted is counted too); the rebuild checks every entry.
//
// Who fires timers (see MultiThread.swift and CurrentThread.swift): a worker about to park takes the
// *driver* role if nobody holds it and sleeps only until the earliest deadline; every worker also fires
// due timers during maintenance and before parking. Inserting a timer that becomes the earliest wakes the
// driver (or, if there is none, a parked worker) so its sleep is re-armed.
//
// Why SeqCst on `earliest`: an inserter writes `earliest` then reads the idle state (to wake somebody),
// while a parking worker writes the idle state then reads `earliest` (to decide how long to sleep): a
// store-buffering pair; SeqCst on both sides guarantees one of them sees the other.

import Synchronization

/// What a timer does when it fires.
enum TimerAction: Sendable {
    /// Run a `Task.sleep` wake-up job (Shared.fireTimer).
    case job(JobRef)
    /// Resume a `RuntimeClock.sleep` (Clock.swift).
    case waker(TimerWaker)

    /// Whether firing it would do nothing (a cancelled waker). A wake-up job's sleep may have been
    /// cancelled too, but only the Swift runtime knows.
    var isCancelled: Bool {
        switch self {
        case .job: false
        case .waker(let waker): waker.isCancelled
        }
    }
}

final class TimerQueue: Sendable {
    private struct Entry {
        let deadline: UInt64
        let sequence: UInt64
        let action: TimerAction

        func precedes(_ other: Entry) -> Bool {
            deadline != other.deadline ? deadline < other.deadline : sequence < other.sequence
        }
    }

    private struct Heap: ~Copyable {
        var entries: [Entry] = []
        var nextSequence: UInt64 = 0

        /// Rebuilds the heap from `entries` (Floyd's bottom-up construction).
        mutating func heapify() {
            var start = entries.count / 2 - 1
            while start >= 0 {
                siftDown(from: start)
                start -= 1
            }
        }

        private mutating func siftDown(from index: Int) {
            var i = index
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < entries.count && entries[l].precedes(entries[m]) { m = l }
                if r < entries.count && entries[r].precedes(entries[m]) { m = r }
                if m == i { return }
                entries.swapAt(i, m)
                i = m
            }
        }

        mutating func push(_ e: Entry) {
            entries.append(e)
            var i = entries.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                if !entries[i].precedes(entries[parent]) { break }
                entries.swapAt(i, parent)
                i = parent
            }
        }

        mutating func popMin() -> Entry? {
            guard !entries.isEmpty else { return nil }
            let top = entries[0]
            let last = entries.removeLast()
            if !entries.isEmpty {
                entries[0] = last
                siftDown(from: 0)
            }
            return top
        }

        var minDeadline: UInt64 { entries.first?.deadline ?? .max }
    }

    private let heap = CheckedMutex(Heap())
    /// Smallest pending deadline (monotonic ns), or `UInt64.max`. SeqCst: see the file comment.
    private let earliest = Atomic<UInt64>(.max)
    /// Wakers cancelled since the last rebuild (a hint; see the file comment). Relaxed: a heuristic.
    private let cancelledWakers = Atomic<Int>(0)

    /// A waker in (or on its way into) the queue was cancelled.
    func noteCancelled() {
        // Relaxed: see `cancelledWakers`.
        cancelledWakers.wrappingAdd(1, ordering: .relaxed)
    }

    /// The earliest pending deadline, or nil if no timer is pending.
    var nextDeadline: UInt64? {
        // Sequentially consistent: the load half of the store-buffering pairs with `insert`'s store (readers:
        // `Worker.driverTimeout` after the election, `Shared.markTerminated`, `Shared.drainLoop`).
        let d = earliest.load(ordering: .sequentiallyConsistent)
        return d == .max ? nil : d
    }

    /// Adds a timer. Returns true if it is now the earliest (the caller must make sure somebody re-arms
    /// its sleep).
    func insert(_ action: TimerAction, deadline: UInt64) -> Bool {
        heap.withLock { h -> Bool in
            // Relaxed (the load and the subtraction): see `cancelledWakers`; both run under the heap lock.
            let cancelled = cancelledWakers.load(ordering: .relaxed)
            if cancelled >= 64 && cancelled * 2 > h.entries.count {
                cancelledWakers.wrappingSubtract(cancelled, ordering: .relaxed)
                h.entries.removeAll { $0.action.isCancelled }
                h.heapify()
            }
            let before = h.minDeadline
            h.push(Entry(deadline: deadline, sequence: h.nextSequence, action: action))
            h.nextSequence &+= 1
            // Sequentially consistent: the store half of the store-buffering pairs in the file comment (the
            // caller then reads `timeDriver` in `timerBecameEarliest` and `terminated` in `Runtime.scheduleTimer`).
            earliest.store(h.minDeadline, ordering: .sequentiallyConsistent)
            return deadline < before
        }
    }

    /// The earliest deadline of a timer that will do something when it fires (cancelled wakers at the top
    /// are dropped first), or nil.
    func nextLiveDeadline() -> UInt64? {
        heap.withLock { h -> UInt64? in
            while let top = h.entries.first, top.action.isCancelled { _ = h.popMin() }
            // Sequentially consistent: see `earliest` (only `insert`'s store is in a store-buffering pair).
            earliest.store(h.minDeadline, ordering: .sequentiallyConsistent)
            return h.entries.isEmpty ? nil : h.minDeadline
        }
    }

    /// Number of pending timers, cancelled wakers included.
    var pendingCount: Int { heap.withLock { $0.entries.count } }

    /// Removes every timer due at `now` and hands its action to `fire` (outside the lock), earliest first.
    /// Returns how many fired.
    @discardableResult
    func fireDue(now: UInt64, _ fire: (TimerAction) -> Void) -> Int {
        // Cheap check first: nothing is due. Sequentially consistent: see `earliest`; not part of a pair (a stale
        // value only delays firing to the next check).
        if earliest.load(ordering: .sequentiallyConsistent) > now { return 0 }
        let due = heap.withLock { h -> [TimerAction] in
            var out: [TimerAction] = []
            while h.minDeadline <= now, let e = h.popMin() { out.append(e.action) }
            // Sequentially consistent: see `earliest` (only `insert`'s store is in a store-buffering pair).
            earliest.store(h.minDeadline, ordering: .sequentiallyConsistent)
            return out
        }
        for job in due { fire(job) }
        return due.count
    }

    /// Takes every pending timer (shutdown: the jobs must still run so their tasks can finish).
    func drainAll(_ fire: (TimerAction, _ deadline: UInt64) -> Void) {
        let all = heap.withLock { h -> [(TimerAction, UInt64)] in
            var out: [(TimerAction, UInt64)] = []
            while let e = h.popMin() { out.append((e.action, e.deadline)) }
            // Sequentially consistent: see `earliest` (only `insert`'s store is in a store-buffering pair).
            earliest.store(.max, ordering: .sequentiallyConsistent)
            return out
        }
        for (action, deadline) in all { fire(action, deadline) }
    }
}
