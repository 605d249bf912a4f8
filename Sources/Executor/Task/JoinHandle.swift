// JoinHandle: the handle `spawn` returns (Tokio's `JoinHandle`).

/// Why awaiting a task's result failed for a reason other than the task's own error.
public enum JoinError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The task was aborted (or its runtime shut down) and did not finish with a value.
    case cancelled

    /// A short description.
    public var description: String {
        switch self {
        case .cancelled: return "task was cancelled"
        }
    }
}

/// A handle to a spawned task's result. Dropping it detaches the task (it keeps running).
public struct JoinHandle<T: Sendable>: Sendable {
    /// A task's identity, unique within its runtime (a spawn refused after shutdown began gets one too,
    /// naming no task).
    public struct ID: Hashable, Sendable, CustomStringConvertible {
        /// The raw number.
        public let rawValue: UInt64
        /// The raw number, as text.
        public var description: String { "\(rawValue)" }
    }

    /// The spawned task; nil for a spawn refused because its runtime had begun shutting down
    /// (`Runtime._refusedSpawn`): such a handle is finished and resolves to ``JoinError/cancelled``.
    @usableFromInline
    let task: Task<T, any Error>?
    @usableFromInline
    let slot: TaskSlot
    @usableFromInline
    let registry: TaskRegistry

    @usableFromInline
    init(task: Task<T, any Error>?, slot: TaskSlot, registry: TaskRegistry) {
        self.task = task
        self.slot = slot
        self.registry = registry
    }

    /// The task's identity.
    public var id: ID { ID(rawValue: slot.id) }

    /// The task's value. Throws the task's own error unchanged, or ``JoinError/cancelled`` when the task
    /// was aborted and did not finish with a value. May be awaited any number of times. Spends one unit of
    /// the cooperative budget (as Tokio's `JoinHandle`), so a loop over finished handles still yields.
    ///
    /// The wait ends if the *waiting* task is cancelled before the awaited one finishes: it then throws
    /// `CancellationError` and leaves the awaited task running (as dropping a Tokio `JoinHandle` detaches
    /// it), so `timeout(after: d) { try await handle.value }` returns at `d`. Call ``abort()`` as well to
    /// stop the task, and use ``result`` where a cancelled task must still wait for it (cleanup).
    @inlinable
    public nonisolated(nonsending) var value: T {
        get async throws {
            await consumeBudget()
            guard let task else { throw JoinError.cancelled }
            if !registry.isFinished(slot) {
                guard await registry.waitForFinish(slot) else { throw CancellationError() }
            }
            return try await task.value
        }
    }

    /// The task's outcome, waiting for it to finish even if the waiting task is cancelled (as a Swift
    /// `Task`'s `result` does, and ``JoinSet/nextResult()``): `.success` with its value, or `.failure` with
    /// its own error or ``JoinError/cancelled``. For code that must know the task has ended, such as cleanup
    /// after ``abort()`` in a task that is itself being cancelled. Spends one unit of the cooperative budget.
    ///
    /// ```swift
    /// worker.abort()
    /// _ = await worker.result   // returns once the worker has unwound, cancelled or not
    /// ```
    @inlinable
    public nonisolated(nonsending) var result: Result<T, any Error> {
        get async {
            await consumeBudget()
            do {
                guard let task else { throw JoinError.cancelled }
                return .success(try await task.value)
            } catch {
                return .failure(error)
            }
        }
    }

    /// Asks the task to stop: a task that has not started never runs its body; a running task is
    /// cancelled (Swift cooperative cancellation) and its handle resolves to ``JoinError/cancelled`` unless
    /// it still finishes with a value. Idempotent.
    @inlinable
    public func abort() {
        task?.cancel()
    }

    /// Whether the task has finished (with a value, an error, or cancelled): its body has returned. Swift
    /// releases what the body's closure captured right after that, so the deinits of captured values may
    /// still be running when this turns true (Tokio drops the future first); ``result`` (or ``value``, in a
    /// task that is not cancelled) is the way to wait for the task's end.
    public var isFinished: Bool { task == nil || registry.isFinished(slot) }
}
