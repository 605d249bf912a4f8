// HomeReturns: finished tasks go home to be freed.
//
// A task object is allocated by the thread that creates the task, and freed by whichever thread drops its
// last reference, usually the worker that ran it to completion. When one worker spawns and the other steals
// (`spawn_many_local`, the spawner of `ping_pong`), every completed task is freed into the spawner's glibc
// malloc arena from the other thread: once that thread's cache is full, each free takes the arena's lock
// while the spawner allocates from the same arena. A `perf` profile of installed-mode `spawn_many_local`
// showed about two thirds of the time in malloc internals and the futexes of that lock.
//
// Two kinds of depositors hand a worker references to release:
// - the registry, for a task spawned with Kyoto's `spawn` on that worker that finished on another one
//   (TaskRegistry.swift, "Finished tasks go home"), in every mode;
// - a worker that ran a plain task's job this worker enqueued (below), in installed mode only.
//
// A worker that runs a task job it did not enqueue itself (it stole it, or took it from the inject queue
// after another worker's queue overflowed) holds an extra reference to the task for the duration of the job
// and then hands it to the enqueuing worker's `HomeReturns` instead of dropping it. The home worker drops
// those references on its own thread, only between jobs (after each job when any are pending, in
// maintenance, before it parks): dropping a finished task may run its result's deinit, which is user code
// and must not run inside some other code's enqueue (a caller resuming a continuation under its own lock
// would deadlock if that deinit took the same lock). The one exception: references the registry marks
// releasable anywhere (the task returned a trivially destructible value, so releasing it runs no user code)
// go to a second lane, which the home worker also empties when it refills its registry slot stash, inside
// a spawn: a spawning loop then recycles its own tasks' memory as it goes. Only standalone tasks are returned
// by the workers: `async let` and task-group children are owned by their parent or group
// (`JobRef.isStandaloneTask`).
//
// Measured on installed-mode `spawn_many_local` (the same binary with and without, alternating, 5 runs of 20
// iterations each): 2.16–2.31 µs → 1.36–1.48 µs per task. Draining inside the spawner's enqueues as well
// (so a spawning loop recycled its memory as it went) gave 0.6–1.0 µs, and was dropped for the deadlock
// above. Later paired A/Bs (Benchmarks/Scripts/pair-ab.py, one binary with returns switched on and off,
// 150 turns): returns make installed `ping_pong` 22% and `spawn_many_local` 43% faster. Draining at every
// local schedule (only safe for trivially destructible results) made `ping_pong` 25% slower (a lock section
// per schedule while the other worker deposits) for 14% on `spawn_many_local`; keeping a returned task
// until the home worker's reference is the last one (so it is freed at home even when it finished
// elsewhere after its first job) changed nothing (1.02×). Neither was kept.
//
// `capacity` is large because a spawning loop in one job gets its returns only when the job ends, and what
// does not fit is freed by the thief, into the spawner's malloc arena while the spawner allocates from it.
// With 8,192, installed `spawn_many_local` (10,000 tasks spawned in one job, of which the other worker runs
// 8,000–9,200 meanwhile) overflowed by about 900 tasks per iteration (counted over 8 iterations); tracing
// its futex calls put about 700 per iteration on glibc's arena lock, taken in turn by the thief's frees and
// the spawner's mallocs. With 16,384 that loop stays clear: paired runs against Swift's default executor
// (`--paired --only spawn_many_local`, 60 turns, alternating) gave 2.04× and 2.08× with 8,192, 2.45× and
// 2.42× with 16,384; peak RSS of the run 46.8 MB against 48.4 MB. A longer loop overflows the same way, later. The cost: up to
// 16,384 finished tasks (about 1.4 KB each, the task object and its allocator's first slab, so about
// 22 MB) per worker held until the home worker's job ends.
//
// A worker does not deposit each reference as its job ends: it holds up to 16 for one home worker and hands
// them over in one lock section (`Worker.returnLater`), before it parks, in maintenance (every
// `eventInterval` ticks) and when it stops, so none waits past a park. A deposit per stolen job wrote the
// home worker's inbox and its pending flag (read by the home worker after every job) from the other core
// each time. Paired A/B of installed `ping_pong` (`pair-ab.py`, 150 turns, batches of 16 against 1): 1.10×
// (quartiles 0.97–1.21); 8, 32 and 64 gave 1.09×, 1.09× and 1.04×; `spawn_many_local` 1.05×. The cost: a
// returned task's result is released only after the thief's next hand-over and the home worker's next
// drain, so a long job on either worker delays that deinit (a long job on the home worker already did).
//
// Workers return plain tasks only when the runtime is installed as the global executor
// (`Shared.returnsStolenTasksHome`): there plain `Task {}`s are the common case. Tasks made by Kyoto's `spawn`
// are returned by the registry; in preference mode, where those are the common case, doing both measured
// 3–10% slower (`spawn_many_local`, `ping_pong`, `yield_many`) with no gain.
//
// Nothing is stranded: the home worker marks itself asleep before its pre-park drain, and a depositor reads
// that mark after appending, both under or after the inbox lock. Either the home worker's drain takes the
// lock after the deposit (and sees it), or its critical section came first, so its "asleep" store happened
// before the depositor took the lock and the depositor sees it and drains itself (those frees then happen on
// the wrong thread, rarely). A worker that stops marks itself asleep for good. At most `limit` references
// (the depositor's bound) wait per worker; beyond that a depositor drops its reference itself.

import Synchronization

final class HomeReturns: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the pending references live inside `pending`'s lock; the flags are
    // atomics.

    /// Retained task objects (as address bits) waiting for the home worker to release them: `refs` only
    /// between jobs, `anywhere` also inside a spawn (see the file comment); and how many were ever accepted,
    /// in how many deposits (for tests).
    private struct Pending {
        var refs: [UInt] = []
        var anywhere: [UInt] = []
        var accepted = 0
        var batches = 0
        var count: Int { refs.count + anywhere.count }
    }

    private let pending = CheckedMutex<Pending>(Pending())
    /// Whether `pending` may be non-empty: a hint for the home worker's hot path, never for correctness.
    private let hasPending = Atomic<Bool>(false)
    /// Whether the home worker is awake (it will drain again without being told).
    private let homeAwake = Atomic<Bool>(true)
    /// The most references that wait for one worker (the workers' bound; the registry passes its own).
    static let capacity = 16_384

    init() {
        pending.withLock { $0.refs.reserveCapacity(HomeReturns.capacity) }
    }

    deinit {
        // Every deposit after the home worker stopped was drained by its depositor; this only runs when a
        // runtime is torn down, after its workers stopped, and finds nothing in practice.
        drain()
    }

    /// Hands a retained task reference to the home worker. Consumes the reference. `releasableAnywhere`: its
    /// release runs no user code (see the file comment). At most `limit` references wait; beyond that the
    /// caller's thread releases it. If the home worker sleeps, the caller drains every lane itself, user code
    /// included, so callers deposit only where no other code's frames are on the stack: a worker between
    /// jobs (`Worker.runJob`), or a spawned task's own epilogue after its body (`Runtime._finishTask`).
    func deposit(_ task: Unmanaged<AnyObject>, releasableAnywhere: Bool = false, limit: Int = HomeReturns.capacity) {
        let bits = UInt(bitPattern: task.toOpaque())
        let accepted = pending.withLock { p -> Bool in
            if p.count >= limit { return false }
            if releasableAnywhere { p.anywhere.append(bits) } else { p.refs.append(bits) }
            p.accepted += 1
            p.batches += 1
            return true
        }
        guard accepted else {
            task.release()
            return
        }
        afterDeposit()
    }

    /// Hands `count` retained task references (address bits) to the home worker in one lock section, like
    /// `count` calls of `deposit` with the default lane and limit. Consumes the references; the buffer is
    /// left for the caller to reuse.
    func deposit(batch: UnsafePointer<UInt>, count: Int) {
        let accepted = pending.withLock { p -> Int in
            let n = min(count, max(0, HomeReturns.capacity - p.count))
            p.refs.append(contentsOf: UnsafeBufferPointer(start: batch, count: n))
            p.accepted += n
            if n > 0 { p.batches += 1 }
            return n
        }
        for i in accepted..<count { HomeReturns.release(bits: batch[i]) }
        if accepted > 0 { afterDeposit() }
    }

    private func afterDeposit() {
        // Relaxed: a hint (see `hasPending`).
        hasPending.store(true, ordering: .relaxed)
        // Acquiring: pairs with the releasing store in `homeParks`. The lock taken above already orders it
        // after a parking home worker's drain (see the file comment); the acquire states the pairing.
        if !homeAwake.load(ordering: .acquiring) { drain() }
    }

    /// Releases a retained task reference stored as address bits.
    @inline(__always)
    static func release(bits: UInt) {
        Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).release()
    }

    /// How many references wait (for tests).
    var pendingCount: Int { pending.withLock { $0.count } }

    /// How many references were ever handed to this worker and accepted (for tests).
    var acceptedCount: Int { pending.withLock { $0.accepted } }

    /// How many lock sections accepted them (for tests: a batch counts once).
    var acceptedBatches: Int { pending.withLock { $0.batches } }

    /// Releases the pending references if there may be any (home worker's hot path).
    @inline(__always)
    func drainIfPending() {
        // Relaxed: a hint; a missed deposit waits for the next drain point.
        if hasPending.load(ordering: .relaxed) { drain() }
    }

    /// Releases every pending reference (between jobs only: see the file comment).
    func drain() {
        // Relaxed: a hint; cleared before taking the references, so a deposit that lands meanwhile sets it
        // again.
        hasPending.store(false, ordering: .relaxed)
        release(includingUserCode: true)
    }

    /// Releases the references whose release runs no user code (the home worker, inside a spawn).
    func drainReleasableAnywhere() {
        // Relaxed: a hint; left as is, since `refs` may still hold references for the next drain.
        if hasPending.load(ordering: .relaxed) { release(includingUserCode: false) }
    }

    /// Releases `anywhere` (and `refs` too if `includingUserCode`), outside the lock, in batches through a
    /// stack buffer (no heap allocation per drain).
    private func release(includingUserCode: Bool) {
        let batch = 32
        withUnsafeTemporaryAllocation(of: UInt.self, capacity: batch) { buffer in
            while true {
                let taken = pending.withLock { p -> Int in
                    var n = 0
                    while n < batch, let bits = p.anywhere.popLast() ?? (includingUserCode ? p.refs.popLast() : nil) {
                        buffer[n] = bits
                        n += 1
                    }
                    return n
                }
                for i in 0..<taken { HomeReturns.release(bits: buffer[i]) }
                if taken < batch { return }
            }
        }
    }

    /// The home worker is about to sleep, or stops for good: marks it asleep, then drains (in that order:
    /// see the file comment).
    func homeParks() {
        // Releasing: pairs with the acquiring load in `afterDeposit`.
        homeAwake.store(false, ordering: .releasing)
        drain()
    }

    /// The home worker woke up.
    func homeWakes() {
        // Releasing: pairs with the acquiring load in `afterDeposit` (a depositor that sees the worker awake
        // leaves the reference to it).
        homeAwake.store(true, ordering: .releasing)
    }
}
