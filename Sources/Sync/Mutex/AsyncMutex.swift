// AsyncMutex: a fair asynchronous mutex that owns its value.
//
// What it is. A front over a one-permit `BatchSemaphore` plus the protected value. Holding the permit is
// holding the lock; the permit hand-off is FIFO, so lock acquisition order is the order in which callers
// queued. Nothing here has its own lock or state machine: the semaphore is both.
//
// Why the value access is safe. `value` is only touched by the holder of the single permit. Acquiring the
// permit is an acquiring operation and releasing it a releasing one (see BatchSemaphore.swift), so each
// holder sees everything the previous holder wrote. That is the whole justification for the
// `@unchecked Sendable` below, which is conditional on `Value: Sendable` because the value is handed from
// task to task.

import KyotoExecutor
import Synchronization

/// An asynchronous mutual-exclusion lock that owns the value it protects.
///
/// Waiting callers are served in first-come, first-served order. Except where one thread runs every task (a
/// current-thread or one-worker runtime, a LocalSet), a caller that finds the lock held first re-checks it
/// for a few microseconds (the holder is often about to unlock on another worker) and joins the queue only
/// then, so a caller arriving in that window may get the lock first; from the moment a caller queues, nobody
/// overtakes it. A task waiting for the lock that is cancelled throws `CancellationError`, loses its place
/// and leaves the lock untouched. Locking a free mutex succeeds even in a cancelled task, so cleanup code can
/// still lock. The mutex is not re-entrant: locking it again while the same task holds it waits for ever
/// (as Tokio's; it is not detected).
///
/// ```swift
/// let counter = AsyncMutex(0)
/// try await counter.withLock { $0 += 1 }
/// ```
public final class AsyncMutex<Value> {
    @usableFromInline
    let semaphore = BatchSemaphore(permits: 1, limit: 1)
    // Guarded by the semaphore's single permit, which already makes every access exclusive: the dynamic
    // exclusivity check (swift_beginAccess/endAccess on each `withLock`) would only repeat it.
    @usableFromInline
    @exclusivity(unchecked)
    var value: Value

    /// Creates an unlocked mutex protecting `value`.
    public init(_ value: Value) {
        self.value = value
    }

    /// Waits for the lock, runs `body` with exclusive access to the value, and unlocks.
    ///
    /// Runs on the caller's isolation, and so does `body`. The lock is released when `body` returns or
    /// throws. Throws `CancellationError` if the task is cancelled while waiting for the lock, otherwise
    /// rethrows what `body` throws.
    ///
    /// Fast path: when the lock is free and no cooperative yield is due, nothing is awaited before `body`.
    @inlinable
    @inline(__always)
    public nonisolated(nonsending) func withLock<Result, Failure: Error>(
        _ body: nonisolated(nonsending) (inout Value) async throws(Failure) -> Result
    ) async throws -> Result {
        try await acquireLock()
        defer { semaphore.release(1) }
        return try await body(&value)
    }

    /// Waits for the lock, runs the synchronous `body` with exclusive access to the value, and unlocks.
    ///
    /// The overload Swift picks for a closure that does not `await`. Same semantics as the asynchronous
    /// form; with nothing to await after the lock is taken, the compiler emits no executor hop after
    /// `body`, which under a task-executor preference costs a status-record lock per call (measured:
    /// ~90 ns per uncontended `withLock` on Kyoto with the asynchronous form).
    @inlinable
    @inline(__always)
    public nonisolated(nonsending) func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) async throws -> Result {
        try await acquireLock()
        defer { semaphore.release(1) }
        return try body(&value)
    }

    /// Waits for the lock and returns a guard that holds it until the guard goes away.
    ///
    /// Throws `CancellationError` if the task is cancelled while waiting.
    public nonisolated(nonsending) func lock() async throws(CancellationError) -> Guard {
        try await acquireLock()
        return Guard(self)
    }

    /// Takes the lock if it is free and nobody is waiting for it; otherwise returns nil.
    public func tryLock() -> Guard? {
        semaphore.tryAcquire(1) == .acquired ? Guard(self) : nil
    }

    /// Waits for the lock from synchronous code, blocking the calling thread (Tokio's `blocking_lock`), and
    /// returns a guard that holds it until the guard goes away. For a `spawnBlocking` closure, a task's own
    /// `blockInPlace` closure or a thread of your own; traps inside a task otherwise, in a LocalSet and on a
    /// thread that runs a runtime's tasks, where it could block the very task that holds the lock: await
    /// ``lock()`` there. Queues behind the tasks already waiting, as ``lock()`` does. Nothing interrupts the
    /// wait (no cancellation), and, as with ``lock()``, a thread that already holds the lock waits for ever.
    public func blockingLock() -> Guard {
        semaphore.blockingAcquire(1, "AsyncMutex.blockingLock()")
        return Guard(self)
    }

    /// Takes the lock (the semaphore's single permit); nothing is awaited when it is free and no
    /// cooperative yield is due. Every way of locking goes through here.
    @inlinable
    @inline(__always)
    nonisolated(nonsending) func acquireLock() async throws(CancellationError) {
        do {
            try await semaphore.acquire(1)
        } catch {
            // A mutex's semaphore is never closed, so the only failure is cancellation.
            throw CancellationError()
        }
    }

    /// Exclusive access to the value of a locked `AsyncMutex`; unlocks the mutex when it goes away.
    public struct Guard: ~Copyable {
        private let mutex: AsyncMutex

        fileprivate init(_ mutex: AsyncMutex) {
            self.mutex = mutex
        }

        /// The protected value.
        public var value: Value {
            _read { yield mutex.value }
            _modify { yield &mutex.value }
        }

        deinit {
            mutex.semaphore.release(1)
        }
    }

    /// The number of tasks waiting for the lock (for tests and diagnostics).
    package var queuedWaiterCount: Int { semaphore.queuedWaiterCount }
}

// SAFETY: `value` is accessed only by the holder of the semaphore's single permit, and permit hand-over is
// acquire/release ordered; `Value: Sendable` because the value moves between tasks.
extension AsyncMutex: @unchecked Sendable where Value: Sendable {}
