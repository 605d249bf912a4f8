// TaskRegistry: the runtime's list of spawned tasks that have not finished (Tokio's `OwnedTasks`).
//
// Used for three things: `metrics.aliveTasks`, `JoinHandle.isFinished`, and shutdown, which must cancel
// every unfinished task. Swift tasks are created by the Swift runtime, so we cannot link them
// intrusively; each spawn allocates one small `TaskNode` (the task's cancel handle plus list links) and
// links it into one of a few mutex-protected shards (ids are spread round-robin over the shards, so
// concurrent spawns and completions rarely contend). Linking and unlinking are O(1) and hash nothing.
//
// Node states (monotonic): unlinked → linked → finished, or unlinked → finished (a task that finished
// before its spawner linked it: it can run on another worker at once). `finished` is never unset.
//
// Races considered:
// - Finish before link: `finish` marks the node finished while unlinked; the later `link` sees the flag
//   (both under the shard lock) and does not link it.
// - A spawn racing with shutdown: shutdown sets `closed` (SeqCst) and then locks every shard; the spawner
//   links under the shard lock and then reads `closed` (SeqCst). Either shutdown's pass over the shard
//   comes after the link (and cancels the task), or the link's critical section comes after shutdown
//   locked the shard, which is after `closed` was stored, so the spawner reads `closed == true` and
//   cancels the task itself.
// Cancellation (user code: cancellation handlers) always runs outside the shard locks.

import Synchronization

/// A spawned task's handle, type-erased without an existential: a `Task<Success, Failure>` is one
/// reference to the Swift runtime's task object whatever its generic arguments, and `cancel()` does not
/// depend on them. Storing it as `AnyObject` avoids instantiating a generic witness table per spawn
/// (measured: the `any Protocol` form cost several hundred nanoseconds per spawn).
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

/// One spawned task's entry in the registry. Its list fields are guarded by its shard's lock.
@usableFromInline
final class TaskNode: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `task`, `previous`, `next` and `isLinked` are read and written only
    // while holding the lock of shard `shard`; `finished` is atomic; `id` and `shard` are immutable.
    let id: UInt64
    let shard: Int
    var task: ErasedTask?
    var previous: TaskNode?
    var next: TaskNode?
    var isLinked = false
    /// Set once the task's body has ended; never unset.
    let finished = Atomic<Bool>(false)

    init(id: UInt64, shard: Int) {
        self.id = id
        self.shard = shard
    }
}

final class TaskRegistry: Sendable {
    private struct Shard: ~Copyable {
        var head: TaskNode?
    }

    private final class ShardBox: Sendable {
        let state = CheckedMutex(Shard())
    }

    private static let shardCount = 16
    private let shards: [ShardBox] = (0..<TaskRegistry.shardCount).map { _ in ShardBox() }
    private let nextID = Atomic<UInt64>(1)
    private let alive = Atomic<Int>(0)

    /// Number of spawned tasks that have not finished.
    var aliveCount: Int {
        // Relaxed: a gauge.
        alive.load(ordering: .relaxed)
    }

    /// Makes the node for a new task and counts it alive. Call before creating the task.
    func begin() -> TaskNode {
        // Relaxed: ids only need uniqueness, which the atomic RMW gives.
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        // Sequentially consistent: the shutdown path re-reads it after setting `closed` (see `finish`).
        alive.wrappingAdd(1, ordering: .sequentiallyConsistent)
        return TaskNode(id: id, shard: Int(id % UInt64(TaskRegistry.shardCount)))
    }

    /// Links the node of the task created for it. Returns false if the runtime is closed: the caller must
    /// then cancel the task.
    func link(_ node: TaskNode, task: ErasedTask, closed: borrowing Atomic<Bool>) -> Bool {
        shards[node.shard].state.withLock { s in
            // Relaxed: the shard lock orders this with `finish`, which sets the flag under the same lock.
            guard !node.finished.load(ordering: .relaxed) else { return }
            node.task = task
            node.next = s.head
            s.head?.previous = node
            s.head = node
            node.isLinked = true
        }
        // Sequentially consistent: see the file comment.
        return !closed.load(ordering: .sequentiallyConsistent)
    }

    /// Unlinks a finished task. Returns the number of tasks still alive.
    @discardableResult
    func finish(_ node: TaskNode) -> Int {
        shards[node.shard].state.withLock { s in
            // Releasing: publishes the task's completion to `isFinished` readers.
            node.finished.store(true, ordering: .releasing)
            guard node.isLinked else { return }
            if let p = node.previous { p.next = node.next } else { s.head = node.next }
            node.next?.previous = node.previous
            node.previous = nil
            node.next = nil
            node.task = nil
            node.isLinked = false
        }
        // Sequentially consistent: the shutdown path reads it after setting `closed` (store-buffering).
        return alive.wrappingSubtract(1, ordering: .sequentiallyConsistent).newValue
    }

    /// Cancels every linked task (outside the locks).
    func cancelAll() {
        for box in shards {
            let tasks = box.state.withLock { s -> [ErasedTask] in
                var out: [ErasedTask] = []
                var cursor = s.head
                while let node = cursor {
                    if let t = node.task { out.append(t) }
                    cursor = node.next
                }
                return out
            }
            for task in tasks { task.cancel() }
        }
    }
}
