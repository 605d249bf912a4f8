// TaskRegistry: the runtime's table of spawned tasks that have not finished (Tokio's `OwnedTasks`).
//
// Used for three things: `metrics.aliveTasks`, `JoinHandle.isFinished`, and shutdown, which must cancel
// every unfinished task. Swift tasks are allocated by the Swift runtime, so we cannot link them
// intrusively. Instead each spawn takes a *slot* in one of a few mutex-protected shards (chosen
// round-robin) and names it by (shard, index, generation). Slots are recycled through a free list, so a
// spawn allocates nothing here (an earlier per-task node allocation measurably worsened malloc-arena
// contention between the spawning and the finishing worker).
//
// A slot's life, each step under its shard's lock (the generation changes only when a slot is reused):
//   free --begin--> reserved --link--> linked --finish--> free
//                   reserved --finish--> finishedEarly --link--> free
// `finishedEarly` covers a task that ran to completion on another worker before its spawner linked it.
//
// Races considered:
// - A spawn racing with shutdown: shutdown sets `closed` (SeqCst) and then locks every shard; the spawner
//   links under the shard lock and then reads `closed` (SeqCst). Either shutdown's pass over the shard
//   comes after the link (and cancels the task), or the link's critical section comes after shutdown
//   locked the shard, which is after `closed` was stored, so the spawner reads `closed == true` and
//   cancels the task itself.
// - A stale `JoinHandle` asking `isFinished` after its slot was reused: the generation differs, which
//   means finished.
// Cancellation (user code: cancellation handlers) always runs outside the shard locks.

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
        var task: ErasedTask?
    }

    private struct Shard: ~Copyable {
        var slots: [Slot] = []
        var freeList: [UInt32] = []
        /// Linked tasks in this shard (counted under the shard lock instead of in one shared atomic that
        /// every spawn and completion on every worker would bounce between caches).
        var alive = 0
    }

    private static let shardCount = 16
    private let shards: UnsafeMutablePointer<CheckedMutex<Shard>>
    private let nextID = Atomic<UInt64>(1)

    init() {
        shards = .allocate(capacity: TaskRegistry.shardCount)
        for i in 0..<TaskRegistry.shardCount { (shards + i).initialize(to: CheckedMutex(Shard())) }
    }

    deinit {
        shards.deinitialize(count: TaskRegistry.shardCount)
        shards.deallocate()
    }

    /// Number of spawned tasks that have not finished (sums the shards under their locks).
    var aliveCount: Int {
        var total = 0
        for i in 0..<TaskRegistry.shardCount { total += shards[i].withLock { $0.alive } }
        return total
    }

    /// Reserves a slot for a task about to be created.
    func begin() -> TaskSlot {
        // Relaxed: ids only need uniqueness, which the atomic RMW gives.
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let shard = UInt32(id % UInt64(TaskRegistry.shardCount))
        return shards[Int(shard)].withLock { s -> TaskSlot in
            let index: UInt32
            if let reused = s.freeList.popLast() {
                index = reused
            } else {
                index = UInt32(s.slots.count)
                s.slots.append(Slot())
            }
            s.slots[Int(index)].generation &+= 1
            s.slots[Int(index)].state = .reserved
            return TaskSlot(shard: shard, index: index, generation: s.slots[Int(index)].generation, id: id)
        }
    }

    /// Registers the task created for `slot`. Returns false if the runtime is closed: the caller must then
    /// cancel the task.
    func link(_ slot: TaskSlot, task: ErasedTask, closed: borrowing Atomic<Bool>) -> Bool {
        shards[Int(slot.shard)].withLock { s in
            let i = Int(slot.index)
            precondition(s.slots[i].generation == slot.generation, "BUG DETECTED: task slot reused while reserved")
            switch s.slots[i].state {
            case .reserved:
                s.slots[i].state = .linked
                s.slots[i].task = task
                s.alive += 1
            case .finishedEarly:
                s.slots[i].state = .free
                s.freeList.append(slot.index)
            case .free, .linked:
                preconditionFailure("BUG DETECTED: task slot linked twice")
            }
        }
        // Sequentially consistent: see the file comment.
        return !closed.load(ordering: .sequentiallyConsistent)
    }

    /// Records that the task of `slot` has finished.
    func finish(_ slot: TaskSlot) {
        shards[Int(slot.shard)].withLock { s in
            let i = Int(slot.index)
            switch s.slots[i].state {
            case .linked:
                s.slots[i].state = .free
                s.slots[i].task = nil
                s.alive -= 1
                s.freeList.append(slot.index)
            case .reserved:
                s.slots[i].state = .finishedEarly
            case .free, .finishedEarly:
                preconditionFailure("BUG DETECTED: task slot finished twice")
            }
        }
    }

    /// Whether the task of `slot` has finished.
    func isFinished(_ slot: TaskSlot) -> Bool {
        shards[Int(slot.shard)].withLock { s in
            let entry = s.slots[Int(slot.index)]
            return entry.generation != slot.generation || entry.state == .free || entry.state == .finishedEarly
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
