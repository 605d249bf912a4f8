// TaskRegistry: the runtime's table of spawned tasks that have not finished (Tokio's `OwnedTasks`).
//
// Used for four things: `metrics.aliveTasks`, `JoinHandle.isFinished`, shutdown (which must cancel every
// unfinished task), and handing a finished task's last reference back to the worker that spawned it (below).
// Swift tasks are allocated by the Swift runtime, so we cannot link them intrusively. Instead each spawn takes
// a *slot* in one of a few mutex-protected shards and names it by (shard, index, generation). Slots are
// recycled through free lists, so a spawn allocates nothing here (an earlier per-task node allocation
// measurably worsened malloc-arena contention between the spawning and the finishing worker).
//
// A slot's life, each step under its shard's lock (the generation changes only when a slot is reused):
//   free --begin/reserve--> reserved --link--> linked --finish--> free
//                   reserved --finish--> finishedEarly --link--> free
// `finishedEarly` covers a task that ran to completion on another worker before its spawner linked it.
//
// Home shards. A worker spawns into its own *home* shards (a group of 16 / workers shards, one per reserved
// batch in turn, so that the spawner and the finishing workers rarely meet on one lock). A worker reserves
// its slots a batch at a time into a stash it owns (`reserve`, `Worker.takeSlot`), so most spawns take one
// registry lock (`link`) instead of two; a stopping worker gives its unused reservations back. Spawns from
// threads that are not workers use shards round-robin (`begin`).
//
// Finished tasks go home. A slot remembers which worker spawned its task (`homeWorker`). When the task
// finishes on another worker, `finish` frees the slot and returns the task's reference with that worker's
// index; the runtime hands it to that worker's `HomeReturns` (HomeReturns.swift), which releases it on the
// worker that allocated it, with the sleeping-worker handshake and the rule about where user code may run
// (a result's deinit) written down there. Dropped on the finishing thread instead, every free lands in the
// spawner's malloc arena under that arena's lock while the spawner allocates from it: spawn_many_local spent
// about a third of its time in malloc internals and those futexes (2.2 -> 1.25 µs per task when the spawner
// drops them). Swift frees the closure contexts and the task-allocator slab when the task completes, on the
// thread that ran it; only the task object and its result go home.
//
// Races considered:
// - A spawn racing with shutdown. Shutdown sets `closed` (SeqCst), cancels every linked task, and waits until
//   no task is alive (`aliveCount`, which also holds workers back from exiting). The spawner reads `closed`
//   first: a spawn that reads it set creates no task (`Runtime._refusedSpawn`), so a thread spawning in a
//   loop cannot keep shutdown waiting. A spawn that read it clear creates its task, which may run on
//   another thread before its spawner links it; its body starts only if `closed` is still clear then
//   (`Runtime._spawn`). Linking: the spawner links under the shard lock and then reads `closed` (SeqCst).
//   Either shutdown's cancel pass over the shard comes after the link (and cancels the task), or the link's
//   critical section comes after that pass locked the shard, which is after `closed` was stored, so the
//   spawner reads `closed == true` and cancels the task itself. Counting: a slot taken by a thread that is
//   not a worker (`begin`) counts as alive from its reservation, not from its link, so shutdown cannot see
//   no task alive (and report success, with the workers gone) while such a task, created but not yet
//   linked, already runs its body. A worker's spawn needs no such care: the worker links within the job
//   that spawned, and neither exits nor lets shutdown see the runtime terminated before that job ends.
//   Spawns in flight at the close (at most one per spawning thread) may thus add to the count after it;
//   their bodies do not run, and the count falls back as they end.
// - A stale `JoinHandle` asking `isFinished` after its slot was reused: the generation differs, which
//   means finished.
// Cancellation (user code: cancellation handlers) and releases of task references (which may free a task)
// always happen outside the shard locks.

import Synchronization

/// A spawned task's handle, type-erased without an existential: a `Task<Success, Failure>` is one
/// reference to the Swift runtime's task object whatever its generic arguments, and `cancel()` does not
/// depend on them. Storing it as `AnyObject` avoids instantiating a generic witness table per spawn
/// (measured: the `any Protocol` form cost about 0.3 µs per spawn).
@usableFromInline
struct ErasedTask: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the wrapped object is a Swift task, which is thread-safe.
    @usableFromInline
    let object: AnyObject

    @inlinable
    init<Success, Failure>(_ task: Task<Success, Failure>) {
        object = unsafeBitCast(task, to: AnyObject.self)
    }

    func cancel() {
        unsafeBitCast(object, to: Task<Void, Never>.self).cancel()
    }
}

/// Names one registry slot: which shard, which index, which use of that index.
@usableFromInline
struct TaskSlot: Sendable, Hashable {
    @usableFromInline let shard: UInt32
    @usableFromInline let index: UInt32
    @usableFromInline let generation: UInt32
    /// The task id shown to users (unique among live tasks of the runtime).
    @usableFromInline let id: UInt64
}

@usableFromInline
final class TaskRegistry: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `shards` is an immutable pointer to mutexes; all state is inside them.

    private enum SlotState: UInt8 {
        case free, reserved, linked, finishedEarly
    }

    private struct Slot {
        var generation: UInt32 = 0
        var state: SlotState = .free
        /// The worker that reserved the slot (its task goes back to it when it finishes elsewhere), or -1
        /// for a slot reserved by a thread that is not a worker.
        var homeWorker: Int32 = -1
        /// Whether the task's result type is trivially destructible (set at link; see `FinishedTask`).
        var trivialResult = false
        var task: ErasedTask?
        /// `JoinHandle.value` calls waiting for this task to finish (`waitForFinish`); taken by `finish`.
        var joinWaiters = FinishWaiters()
    }

    private struct Shard: ~Copyable {
        var slots: [Slot] = []
        var freeList: [UInt32] = []
        /// Live tasks in this shard: linked ones, and those of slots reserved by threads that are not workers
        /// (see "A spawn racing with shutdown" in the file comment). Counted under the shard lock instead of
        /// in one shared atomic that every spawn and completion on every worker would bounce between caches.
        var alive = 0

        /// Takes a free slot (else a new one) for a new task and marks it reserved. Returns its index and
        /// generation.
        mutating func reserveSlot(homeWorker: Int32) -> (index: UInt32, generation: UInt32) {
            let index: UInt32
            if let reused = freeList.popLast() {
                index = reused
            } else {
                index = UInt32(slots.count)
                slots.append(Slot())
            }
            slots[Int(index)].generation &+= 1
            slots[Int(index)].state = .reserved
            slots[Int(index)].homeWorker = homeWorker
            return (index, slots[Int(index)].generation)
        }
    }

    /// Shards: worker `i` spawns into the shards of group `i % groups`; other threads use all of them
    /// round-robin.
    static let shardCount = 16
    /// Number of shard groups (one per worker, at most `shardCount`) and shards in each.
    private let groups: Int
    private let shardsPerGroup: Int
    private let shards: UnsafeMutablePointer<CheckedMutex<Shard>>
    private let nextID = Atomic<UInt64>(1)
    /// Source of `JoinWaiter` ids. Relaxed wherever used: an id only needs to be unique, which the RMW gives.
    private let nextWaiterID = Atomic<UInt64>(0)

    init(workers: Int) {
        groups = max(1, min(workers, TaskRegistry.shardCount))
        shardsPerGroup = TaskRegistry.shardCount / groups
        shards = .allocate(capacity: TaskRegistry.shardCount)
        for i in 0..<TaskRegistry.shardCount { (shards + i).initialize(to: CheckedMutex(Shard())) }
    }

    deinit {
        shards.deinitialize(count: TaskRegistry.shardCount)
        shards.deallocate()
    }

    /// The home shard group of worker `workerIndex`.
    func homeGroup(ofWorker workerIndex: Int) -> Int { workerIndex % groups }

    /// Number of spawned tasks that have not finished (sums the shards under their locks).
    var aliveCount: Int {
        var total = 0
        for i in 0..<TaskRegistry.shardCount { total += shards[i].withLock { $0.alive } }
        return total
    }

    /// Reserves a slot for a task about to be created by a thread that is not one of the runtime's workers
    /// (workers reserve in batches, `reserve`). Such slots use all shards round-robin and have no home.
    func begin() -> TaskSlot {
        // Relaxed: ids only need uniqueness, which the atomic RMW gives.
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let shard = Int(id % UInt64(TaskRegistry.shardCount))
        return shards[shard].withLock { s in
            let (index, generation) = s.reserveSlot(homeWorker: -1)
            // Counted from now on, not from `link` (see the file comment).
            s.alive += 1
            return TaskSlot(shard: UInt32(shard), index: index, generation: generation, id: id)
        }
    }

    /// Reserves `count` slots at once in one shard of `homeWorker`'s group (one lock for the batch) and writes
    /// them to `into`. A worker keeps them in its slot stash, so most of its spawns reserve a slot without
    /// taking a lock.
    func reserve(homeWorker: Int, count: Int, into slots: UnsafeMutablePointer<TaskSlot>) {
        // Relaxed: ids only need uniqueness, which the atomic RMW gives.
        let firstID = nextID.wrappingAdd(UInt64(count), ordering: .relaxed).oldValue
        let group = homeGroup(ofWorker: homeWorker)
        let shard = group * shardsPerGroup + Int(firstID / UInt64(count) % UInt64(shardsPerGroup))
        shards[shard].withLock { s in
            for n in 0..<count {
                let (index, generation) = s.reserveSlot(homeWorker: Int32(homeWorker))
                let id = firstID &+ UInt64(n)
                (slots + n).initialize(
                    to: TaskSlot(shard: UInt32(shard), index: index, generation: generation, id: id))
            }
        }
    }

    /// A name with a fresh id and no entry, for the handle of a spawn refused after shutdown began (which
    /// creates no task): the handle uses only its id.
    func unlinkedSlot() -> TaskSlot {
        // Relaxed: ids only need uniqueness, which the atomic RMW gives.
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        return TaskSlot(shard: 0, index: 0, generation: 0, id: id)
    }

    /// Gives back reserved slots that will not be used (a worker's stash when it stops).
    func unreserve(_ slots: UnsafeBufferPointer<TaskSlot>) {
        for slot in slots {
            shards[Int(slot.shard)].withLock { s in
                let i = Int(slot.index)
                kyotoPrecondition(
                    s.slots[i].generation == slot.generation && s.slots[i].state == .reserved,
                    "BUG DETECTED: returning a task slot that is not reserved")
                s.slots[i].state = .free
                s.freeList.append(slot.index)
            }
        }
    }

    /// Registers the task created for `slot`. Returns false if the runtime is closed: the caller must then
    /// cancel the task.
    func link(_ slot: TaskSlot, task: ErasedTask, trivialResult: Bool, closed: borrowing Atomic<Bool>) -> Bool {
        shards[Int(slot.shard)].withLock { s in
            let i = Int(slot.index)
            kyotoPrecondition(s.slots[i].generation == slot.generation, "BUG DETECTED: task slot reused while reserved")
            switch s.slots[i].state {
            case .reserved:
                s.slots[i].state = .linked
                s.slots[i].task = task
                s.slots[i].trivialResult = trivialResult
                // A slot without a home (`begin`) was counted when reserved.
                if s.slots[i].homeWorker >= 0 { s.alive += 1 }
            case .finishedEarly:
                s.slots[i].state = .free
                s.freeList.append(slot.index)
            case .free, .linked:
                fatalError("BUG DETECTED: task slot linked twice")
            }
        }
        // Sequentially consistent: see the file comment.
        return !closed.load(ordering: .sequentiallyConsistent)
    }

    /// The most finished tasks the registry returns to one worker at a time (HomeReturns' `limit`); beyond
    /// it the finishing worker releases them: 256 per shard of the worker's group (the bound the registry
    /// kept when it held them in its slots).
    var homeReturnLimit: Int { 256 * shardsPerGroup }

    /// A finished task's reference that should be released on the worker that spawned it.
    struct FinishedTask {
        /// The registry's reference to the task (usually its last).
        let task: ErasedTask
        /// The worker that spawned it.
        let homeWorker: Int
        /// Whether releasing it runs no user code: its result type is trivially destructible and it finished
        /// with a value (an error's deinit is user code too). Only such releases may happen inside somebody
        /// else's spawn (HomeReturns.swift).
        let releasableAnywhere: Bool
    }

    /// Records that the task of `slot` has finished, on worker `finisherWorker` (nil: not a worker, or
    /// shutdown began). Returns the task's reference when it should go back to the worker that spawned it
    /// (it finished on another worker); otherwise releases it here.
    func finish(_ slot: TaskSlot, finisherWorker: Int?, succeeded: Bool) -> FinishedTask? {
        var goesHome: FinishedTask? = nil
        var waiters: [UnsafeContinuation<Bool, Never>] = []
        let released = shards[Int(slot.shard)].withLock { s -> ErasedTask? in
            let i = Int(slot.index)
            waiters = s.slots[i].joinWaiters.takeAll()
            switch s.slots[i].state {
            case .linked:
                s.alive -= 1
                s.slots[i].state = .free
                s.freeList.append(slot.index)
                let task = s.slots[i].task.take()
                let home = Int(s.slots[i].homeWorker)
                if let task, let finisherWorker, home >= 0, home != finisherWorker {
                    goesHome = FinishedTask(
                        task: task, homeWorker: home, releasableAnywhere: s.slots[i].trivialResult && succeeded)
                    return nil
                }
                return task
            case .reserved:
                s.slots[i].state = .finishedEarly
                // A slot without a home (`begin`) was counted when reserved.
                if s.slots[i].homeWorker < 0 { s.alive -= 1 }
                return nil
            case .free, .finishedEarly:
                fatalError("BUG DETECTED: task slot finished twice")
            }
        }
        // Outside the lock: this may be the task's last reference; and the waiting `value` calls.
        _ = consume released
        for waiter in waiters { waiter.resume(returning: true) }
        return goesHome
    }

    /// Waits until the task of `slot` has finished (its body has returned): true then; false if the waiting
    /// task is cancelled first (the task itself is left alone). For `JoinHandle.value`, which then awaits the
    /// Swift task's value: `finish` runs in the task's last job, just before the task completes, so that
    /// await may still suspend for a moment. The protocol (no waiter missed, each resumed once, outside the
    /// shard lock) is `FinishWaiters`'; a reused slot (new generation) means finished.
    @usableFromInline
    nonisolated(nonsending) func waitForFinish(_ slot: TaskSlot) async -> Bool {
        let id = nextWaiterID.wrappingAdd(1, ordering: .relaxed).oldValue
        let i = Int(slot.index)
        return await FinishWaiters.wait(
            id: id,
            register: { continuation in
                shards[Int(slot.shard)].withLock { s -> Bool? in
                    let state = s.slots[i].state
                    if s.slots[i].generation != slot.generation || state != .reserved && state != .linked {
                        return true
                    }
                    if Task.isCancelled { return false }
                    s.slots[i].joinWaiters.append(id, continuation)
                    return nil
                }
            },
            unregister: { self.shards[Int(slot.shard)].withLock { $0.slots[i].joinWaiters.remove(id) } })
    }

    /// Whether the task of `slot` has finished.
    @usableFromInline
    func isFinished(_ slot: TaskSlot) -> Bool {
        shards[Int(slot.shard)].withLock { s in
            let entry = s.slots[Int(slot.index)]
            return entry.generation != slot.generation || entry.state != .reserved && entry.state != .linked
        }
    }

    /// Cancels every linked task (outside the locks).
    func cancelAll() {
        for i in 0..<TaskRegistry.shardCount {
            let tasks = shards[i].withLock { s -> [ErasedTask] in
                s.slots.compactMap { $0.state == .linked ? $0.task : nil }
            }
            for task in tasks { task.cancel() }
        }
    }
}
