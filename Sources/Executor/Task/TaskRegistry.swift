// TaskRegistry: the runtime's list of spawned tasks that have not finished (Tokio's `OwnedTasks`).
//
// Used for three things: `metrics.aliveTasks`, `JoinHandle.isFinished`, and shutdown, which must cancel
// every unfinished task. Swift tasks are created by the Swift runtime, so we cannot link them
// intrusively; instead each task is stored, by id, in one of a few mutex-protected shards (ids are spread
// round-robin over the shards, so concurrent spawns rarely contend).
//
// Races considered:
// - A task may finish before its spawner registers it (it can run on another worker immediately). Its
//   `remove` then finds nothing and leaves a tombstone (`finishedEarly`); the later `insert` consumes the
//   tombstone instead of registering a finished task.
// - A spawn racing with shutdown: shutdown sets `closed` (SeqCst) and then locks every shard; the spawner
//   inserts under the shard lock and then reads `closed` (SeqCst). Either shutdown's pass over the shard
//   comes after the insert (and cancels the task), or the insert's critical section comes after shutdown
//   locked the shard, which is after `closed` was stored, so the spawner reads `closed == true` and
//   cancels the task itself.
// Cancellation (user code: cancellation handlers) always runs outside the shard locks.

import Synchronization

/// Anything shutdown can cancel.
protocol CancellableTask: Sendable {
    func cancel()
}

extension Task: CancellableTask {}

final class TaskRegistry: Sendable {
    private struct Shard: ~Copyable {
        var tasks: [UInt64: any CancellableTask] = [:]
        var finishedEarly: Set<UInt64> = []
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

    /// Reserves an id and counts a new task alive. Call before creating the task.
    func begin() -> UInt64 {
        // Relaxed: ids only need uniqueness, which the atomic RMW gives.
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        // Relaxed: a gauge; the shutdown path re-reads it after its own synchronization.
        alive.wrappingAdd(1, ordering: .sequentiallyConsistent)
        return id
    }

    private func shard(_ id: UInt64) -> ShardBox { shards[Int(id % UInt64(TaskRegistry.shardCount))] }

    /// Registers the task created for `id`. Returns false if the runtime is closed: the caller must then
    /// cancel the task.
    func insert(_ id: UInt64, _ task: any CancellableTask, closed: borrowing Atomic<Bool>) -> Bool {
        shard(id).state.withLock { s in
            if s.finishedEarly.remove(id) == nil { s.tasks[id] = task }
        }
        // Sequentially consistent: see the file comment.
        return !closed.load(ordering: .sequentiallyConsistent)
    }

    /// Unregisters a finished task. Returns the number of tasks still alive.
    @discardableResult
    func finish(_ id: UInt64) -> Int {
        shard(id).state.withLock { s in
            if s.tasks.removeValue(forKey: id) == nil { s.finishedEarly.insert(id) }
        }
        // Sequentially consistent: the shutdown path reads it after setting `closed` (store-buffering).
        return alive.wrappingSubtract(1, ordering: .sequentiallyConsistent).newValue
    }

    /// Whether the task `id` is still registered (not finished).
    func isAlive(_ id: UInt64) -> Bool {
        shard(id).state.withLock { $0.tasks[id] != nil }
    }

    /// Cancels every registered task (outside the locks).
    func cancelAll() {
        for box in shards {
            let tasks = box.state.withLock { Array($0.tasks.values) }
            for task in tasks { task.cancel() }
        }
    }
}
