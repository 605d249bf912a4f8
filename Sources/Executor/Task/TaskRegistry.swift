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
//                                                       --finish--> held --reuse or drainHeld--> free
//                   reserved --finish--> finishedEarly --link--> free
// `finishedEarly` covers a task that ran to completion on another worker before its spawner linked it.
//
// Home shards and held tasks. A worker spawns into its own *home* shards (a group of 16 / workers shards,
// one per reserved batch in turn, so that the spawner and the finishing workers rarely meet on one lock).
// A worker reserves its slots a batch at a time into a stash it owns (`reserve`, `Worker.takeSlot`), so most
// spawns take one registry lock (`link`) instead of two; a stopping worker gives its unused reservations
// back. Spawns from threads that are not workers use shards round-robin (`begin`) and never hold.
//
// When a worker's task finishes on another worker, the slot keeps its reference to the task (`held`)
// instead of dropping it there: the spawning worker drops it when it reuses the slot (held slots are
// reserved first) or drains its group in maintenance or before it parks. The task object is then freed by
// the thread that allocated it, where glibc's thread cache takes it back and hands it to the next spawn.
// Dropped on the finishing thread instead, every free lands in the spawner's malloc arena under that arena's
// lock while the spawner allocates from it: spawn_many_local spent about a third of its time in malloc
// internals and those futexes (2.2 -> 1.25 µs per task when the spawner drops them). Not everything moves:
// Swift frees the closure contexts and the task-allocator slab when the task completes, on the thread that
// ran it. Only the finished task object and its result are held, at most `heldCap` per shard. A bit per
// shard (`heldShards`) lets a drain skip shards that hold nothing.
//
// Releasing a held task may run user code: its result's deinit, or its error's. A spawn reuses (and
// releases) only held slots whose task returned a value of a trivially destructible type (`heldList`):
// running a deinit inside somebody's `spawn`, possibly under a lock of theirs that the deinit also takes,
// would deadlock. The others (`heldForDrainList`) wait for a drain, which runs between jobs.
//
// Who drains, and why nothing is stranded. A parked home worker must not leave tasks held for it forever, so:
// - a home worker about to park first counts itself parked (`awakeHomeWorkers`), then drains its group;
// - a worker that holds a task sets its shard's bit, then reads the group's awake count; if no home worker
//   is awake, it drains the group itself (those frees then happen on the wrong thread, rarely).
// This is a store-buffering pattern (each side writes one location, then reads the other), so all four
// accesses are sequentially consistent: in their single order either the parker's bit read sees the holder's
// bit (and its drain, which takes the shard lock after the holder released it, sees the append), or the
// holder's count read sees the parker counted as parked. An awake home worker stuck in one long job drains
// nothing meanwhile; `heldCap` bounds what waits for it. An exiting worker counts as parked for good.
//
// Races considered:
// - A spawn racing with shutdown: shutdown sets `closed` (SeqCst) and then locks every shard; the spawner
//   links under the shard lock and then reads `closed` (SeqCst). Either shutdown's pass over the shard
//   comes after the link (and cancels the task), or the link's critical section comes after shutdown
//   locked the shard, which is after `closed` was stored, so the spawner reads `closed == true` and
//   cancels the task itself.
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
        case free, reserved, linked, held, finishedEarly
    }

    private struct Slot {
        var generation: UInt32 = 0
        var state: SlotState = .free
        /// Whether a finish on another thread keeps `task` for the home worker to release.
        var holdsOnFinish = false
        /// Whether releasing the finished task runs no user code: its result type is trivially destructible
        /// (set at link) and it finished with a value, not an error (set at finish). Only such tasks may be
        /// released inside a spawn (`reserveSlot`); the others wait for a drain between jobs.
        var trivialResult = false
        var task: ErasedTask?
    }

    private struct Shard: ~Copyable {
        var slots: [Slot] = []
        var freeList: [UInt32] = []
        /// Finished slots that still hold their task reference (state `held`) and whose release runs no
        /// user code: a spawn may reuse them (and release the task) on the spot.
        var heldList: [UInt32] = []
        /// Held slots whose release may run user code (a result's or an error's deinit): only drains, which
        /// run between jobs, release them.
        var heldForDrainList: [UInt32] = []
        /// Linked tasks in this shard (counted under the shard lock instead of in one shared atomic that
        /// every spawn and completion on every worker would bounce between caches).
        var alive = 0

        /// Takes a slot for a new task and marks it reserved: a held slot first (only a worker's own
        /// shards have any), then a free one, else a new one. Returns its index, its generation and the
        /// finished task a reused held slot still referenced (to be released outside the lock).
        mutating func reserveSlot(
            holdsOnFinish: Bool
        ) -> (index: UInt32, generation: UInt32, finished: ErasedTask?) {
            let index: UInt32
            var finished: ErasedTask? = nil
            if let reused = heldList.popLast() {
                index = reused
                finished = slots[Int(index)].task.take()
            } else if let reused = freeList.popLast() {
                index = reused
            } else {
                index = UInt32(slots.count)
                slots.append(Slot())
            }
            slots[Int(index)].generation &+= 1
            slots[Int(index)].state = .reserved
            slots[Int(index)].holdsOnFinish = holdsOnFinish
            return (index, slots[Int(index)].generation, finished)
        }
    }

    /// Shards: worker `i` spawns into the shards of group `i % groups`; other threads use all of them
    /// round-robin.
    static let shardCount = 16  // at most 32: `heldShards` has a bit per shard
    /// Number of shard groups (one per worker, at most `shardCount`) and shards in each.
    private let groups: Int
    private let shardsPerGroup: Int
    /// The most finished tasks one shard holds for its worker; beyond it the finishing thread releases.
    private static let heldCap = 256
    private let shards: UnsafeMutablePointer<CheckedMutex<Shard>>
    private let nextID = Atomic<UInt64>(1)
    /// One bit per shard that may hold finished tasks (see `drainHeld(shard:)`): lets a drain skip the others.
    private let heldShards = Atomic<UInt32>(0)
    /// Per group, how many of its home workers are not parked (see "Who drains" in the file comment).
    private let awakeHomeWorkers: UnsafeMutablePointer<Atomic<Int>>

    init(workers: Int) {
        groups = max(1, min(workers, TaskRegistry.shardCount))
        shardsPerGroup = TaskRegistry.shardCount / groups
        shards = .allocate(capacity: TaskRegistry.shardCount)
        for i in 0..<TaskRegistry.shardCount { (shards + i).initialize(to: CheckedMutex(Shard())) }
        awakeHomeWorkers = .allocate(capacity: groups)
        for g in 0..<groups {
            // Workers g, g + groups, g + 2 * groups, ... share group g.
            let members = workers > g ? (workers - g + groups - 1) / groups : 0
            (awakeHomeWorkers + g).initialize(to: Atomic(members))
        }
    }

    deinit {
        awakeHomeWorkers.deinitialize(count: groups)
        awakeHomeWorkers.deallocate()
        shards.deinitialize(count: TaskRegistry.shardCount)
        shards.deallocate()
    }

    /// The home shard group of worker `workerIndex`.
    func homeGroup(ofWorker workerIndex: Int) -> Int { workerIndex % groups }

    /// The home group whose worker spawned into `slot`'s shard, if it is a worker's shard.
    func group(of slot: TaskSlot) -> Int { Int(slot.shard) / shardsPerGroup }

    /// Number of spawned tasks that have not finished (sums the shards under their locks).
    var aliveCount: Int {
        var total = 0
        for i in 0..<TaskRegistry.shardCount { total += shards[i].withLock { $0.alive } }
        return total
    }

    /// Reserves a slot for a task about to be created by a thread that is not one of the runtime's workers
    /// (workers reserve in batches, `reserve`). Such slots use all shards round-robin and never hold.
    func begin() -> TaskSlot {
        // Relaxed: ids only need uniqueness, which the atomic RMW gives.
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let shard = Int(id % UInt64(TaskRegistry.shardCount))
        let (slot, finished) = shards[shard].withLock { s -> (TaskSlot, ErasedTask?) in
            let (index, generation, finished) = s.reserveSlot(holdsOnFinish: false)
            return (TaskSlot(shard: UInt32(shard), index: index, generation: generation, id: id), finished)
        }
        // Outside the lock: a reused held slot's finished task may go here.
        _ = consume finished
        return slot
    }

    /// Reserves `count` slots at once in one shard of `homeGroup` (one lock for the batch) and writes them
    /// to `into`. A worker keeps them in its slot stash, so most of its spawns reserve a slot without taking
    /// a lock. Held slots are reused first: their finished tasks are released here, on the home worker.
    func reserve(homeGroup: Int, count: Int, into slots: UnsafeMutablePointer<TaskSlot>) {
        // Relaxed: ids only need uniqueness, which the atomic RMW gives.
        let firstID = nextID.wrappingAdd(UInt64(count), ordering: .relaxed).oldValue
        let shard = homeGroup * shardsPerGroup + Int(firstID / UInt64(count) % UInt64(shardsPerGroup))
        withUnsafeTemporaryAllocation(of: ErasedTask.self, capacity: count) { finished in
            let released = shards[shard].withLock { s -> Int in
                var released = 0
                for n in 0..<count {
                    let (index, generation, task) = s.reserveSlot(holdsOnFinish: true)
                    if let task {
                        (finished.baseAddress! + released).initialize(to: task)
                        released += 1
                    }
                    let id = firstID &+ UInt64(n)
                    (slots + n).initialize(
                        to: TaskSlot(shard: UInt32(shard), index: index, generation: generation, id: id))
                }
                return released
            }
            // Outside the lock: these may be the finished tasks' last references.
            finished.baseAddress!.deinitialize(count: released)
        }
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
                s.alive += 1
            case .finishedEarly:
                s.slots[i].state = .free
                s.freeList.append(slot.index)
            case .free, .linked, .held:
                fatalError("BUG DETECTED: task slot linked twice")
            }
        }
        // Sequentially consistent: see the file comment.
        return !closed.load(ordering: .sequentiallyConsistent)
    }

    /// Records that the task of `slot` has finished. `finisherGroup` is the home group of the worker that
    /// finished it, or nil when the finisher must not hold the task for its spawner (not a worker, or
    /// shutdown began). A task finished by a worker of another group is held (see the file comment).
    func finish(_ slot: TaskSlot, finisherGroup: Int?, succeeded: Bool) {
        let group = group(of: slot)
        let mayHold = finisherGroup != nil && finisherGroup != group
        var held = false
        let released = shards[Int(slot.shard)].withLock { s -> ErasedTask? in
            let i = Int(slot.index)
            switch s.slots[i].state {
            case .linked:
                s.alive -= 1
                if s.slots[i].holdsOnFinish && mayHold
                    && s.heldList.count + s.heldForDrainList.count < TaskRegistry.heldCap
                {
                    s.slots[i].state = .held
                    if s.slots[i].trivialResult && succeeded {
                        s.heldList.append(slot.index)
                    } else {
                        s.heldForDrainList.append(slot.index)
                    }
                    held = true
                    return nil
                }
                s.slots[i].state = .free
                s.freeList.append(slot.index)
                return s.slots[i].task.take()
            case .reserved:
                s.slots[i].state = .finishedEarly
                return nil
            case .free, .held, .finishedEarly:
                fatalError("BUG DETECTED: task slot finished twice")
            }
        }
        if held {
            // Sequentially consistent, both: the store-buffering handshake with a parking home worker (see
            // "Who drains" in the file comment). If every home worker of the group is parked, drain it here.
            heldShards.bitwiseOr(UInt32(1) << slot.shard, ordering: .sequentiallyConsistent)
            if awakeHomeWorkers[group].load(ordering: .sequentiallyConsistent) == 0 { drainHeld(group: group) }
        }
        // Outside the lock: this may be the task's last reference.
        _ = consume released
    }

    /// Releases every finished task held in the shards of group `group` (called by its home worker).
    func drainHeld(group: Int) {
        for shard in group * shardsPerGroup..<(group + 1) * shardsPerGroup { drainHeld(shard: shard) }
    }

    /// A home worker of `group` is about to sleep, or stops for good: counts it as parked, then drains the
    /// group (in that order: see "Who drains" in the file comment).
    func homeWorkerParks(group: Int) {
        // Sequentially consistent: the handshake with `finish`.
        awakeHomeWorkers[group].subtract(1, ordering: .sequentiallyConsistent)
        drainHeld(group: group)
    }

    /// A home worker of `group` woke up.
    func homeWorkerWakes(group: Int) {
        // Sequentially consistent: the handshake with `finish`.
        awakeHomeWorkers[group].add(1, ordering: .sequentiallyConsistent)
    }

    private func drainHeld(shard: Int) {
        // Skip shards that held nothing since their last drain (locking every shard on every park showed up
        // in spawn_many_remote_idle). The bit is cleared before the drain and set after each hold's append,
        // so a hold this drain misses leaves its bit set for the next one. Sequentially consistent: the
        // handshake with `finish` (file comment).
        let bit = UInt32(1) << UInt32(shard)
        if heldShards.load(ordering: .sequentiallyConsistent) & bit == 0 { return }
        heldShards.bitwiseAnd(~bit, ordering: .sequentiallyConsistent)
        // In batches through a stack buffer: the releases must happen outside the lock (a task's result may
        // have a deinit that spawns), and a heap array per drain would be an allocation per maintenance.
        let batch = 32
        withUnsafeTemporaryAllocation(of: ErasedTask.self, capacity: batch) { buffer in
            while true {
                let taken = shards[shard].withLock { s -> Int in
                    var n = 0
                    while n < batch, let index = s.heldList.popLast() ?? s.heldForDrainList.popLast() {
                        let i = Int(index)
                        if let task = s.slots[i].task.take() {
                            (buffer.baseAddress! + n).initialize(to: task)
                            n += 1
                        }
                        s.slots[i].state = .free
                        s.freeList.append(index)
                    }
                    return n
                }
                if taken == 0 { return }
                // Outside the lock: these are usually the tasks' last references.
                buffer.baseAddress!.deinitialize(count: taken)
                if taken < batch { return }
            }
        }
    }

    /// Whether the task of `slot` has finished.
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
