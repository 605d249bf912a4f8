// AsyncSemaphore: the public counting semaphore, a thin front over `BatchSemaphore`.
//
// Permits are `~Copyable` values that return themselves when they go away, so a permit cannot be
// returned twice or forgotten by accident; `forget()` is the explicit way to drop one without returning it.

import KyotoExecutor

/// A fair asynchronous counting semaphore.
///
/// `acquire(n)` waits in first-come, first-served order from the moment it queues, and a large request at the
/// head of the queue is never overtaken by smaller ones. Except where one thread runs every task (a
/// current-thread or one-worker runtime, a LocalSet), an `acquire(1)` that finds no permit first re-checks
/// for a few microseconds before it queues, so a caller arriving in that window may queue first. After
/// `close()`, every waiting and later acquisition fails with `ClosedError` even when permits are free. A
/// waiting task that is cancelled throws `CancellationError` and returns any permits already set aside for
/// it.
public final class AsyncSemaphore: Sendable {
    /// The most permits a semaphore can hold.
    public static var maxPermits: Int { BatchSemaphore.maxPermits }

    /// Thrown by `acquire` and `withPermit` when the semaphore is closed.
    public struct ClosedError: Error, Equatable, Sendable, OutcomeReportingError {
        /// Creates the error.
        public init() {}

        /// Never: a closed semaphore is an outcome, which `timeout` rethrows even after its deadline.
        package var isCancellation: Bool { false }
    }

    /// Why `tryAcquire` failed.
    public enum TryAcquireError: Error, Equatable, Sendable {
        /// Not enough permits are free, or other tasks are already waiting.
        case noPermits
        /// The semaphore is closed.
        case closed
    }

    @usableFromInline
    let core: BatchSemaphore

    /// Creates a semaphore with `permits` free permits (at most `maxPermits`).
    public init(permits: Int) {
        if permits < 0 || permits > BatchSemaphore.maxPermits {
            bugDetected("AsyncSemaphore(permits: \(permits)) is outside 0...\(BatchSemaphore.maxPermits)")
        }
        core = BatchSemaphore(permits: permits)
    }

    /// Waits for `n` permits and returns them as a `Permit`.
    ///
    /// Throws `ClosedError` if the semaphore is or becomes closed and `CancellationError` if the task is
    /// cancelled while waiting. `n` must not exceed `maxPermits`.
    public nonisolated(nonsending) func acquire(_ n: Int = 1) async throws -> Permit {
        try await acquirePermits(n)
        return Permit(core, count: n)
    }

    /// Waits for `n` permits and returns them as an ``OwnedPermit``: an object that can move into another
    /// task, for the concurrency limit Tokio writes with `acquire_owned` (a `Permit` cannot be captured by
    /// `spawn`'s closure). Errors as ``acquire(_:)``.
    ///
    /// ```swift
    /// let limit = AsyncSemaphore(permits: 8)
    /// for job in jobs {
    ///     let permit = try await limit.acquireOwned()   // waits while 8 jobs run
    ///     spawn { [permit] in
    ///         try await handle(job)
    ///         _ = permit                                 // returned once the task has ended
    ///     }
    /// }
    /// ```
    public nonisolated(nonsending) func acquireOwned(_ n: Int = 1) async throws -> OwnedPermit {
        try await acquirePermits(n)
        return OwnedPermit(core, count: n)
    }

    /// Takes `n` permits with the public errors (`ClosedError`, `CancellationError`); nothing is awaited when
    /// they are free and no cooperative yield is due. Every way of acquiring goes through here.
    @inlinable
    @inline(__always)
    nonisolated(nonsending) func acquirePermits(_ n: Int) async throws {
        do {
            try await core.acquire(n)
        } catch .closed {
            throw ClosedError()
        } catch {
            throw CancellationError()
        }
    }

    /// Takes `n` permits if they are free now and nobody is waiting.
    public func tryAcquire(_ n: Int = 1) throws(TryAcquireError) -> Permit {
        switch core.tryAcquire(n) {
        case .acquired: return Permit(core, count: n)
        case .noPermits: throw .noPermits
        case .closed: throw .closed
        }
    }

    /// Waits for `n` permits, runs `body`, and returns the permits.
    ///
    /// Runs on the caller's isolation, and so does `body`. When the permits are free and no cooperative
    /// yield is due, nothing is awaited before `body`.
    @inlinable
    @inline(__always)
    public nonisolated(nonsending) func withPermit<Result, Failure: Error>(
        _ n: Int = 1,
        _ body: nonisolated(nonsending) () async throws(Failure) -> Result
    ) async throws -> Result {
        try await acquirePermits(n)
        defer { core.release(n) }
        return try await body()
    }

    /// Waits for `n` permits, runs the synchronous `body`, and returns the permits.
    ///
    /// The overload Swift picks for a closure that does not `await`; same semantics as the asynchronous
    /// form, without an executor hop after `body` (see `AsyncMutex.withLock`).
    @inlinable
    @inline(__always)
    public nonisolated(nonsending) func withPermit<Result, Failure: Error>(
        _ n: Int = 1,
        _ body: () throws(Failure) -> Result
    ) async throws -> Result {
        try await acquirePermits(n)
        defer { core.release(n) }
        return try body()
    }

    /// Adds `n` permits; waiting tasks are served first. Traps if `n` is negative or the total would exceed
    /// `maxPermits`.
    public func addPermits(_ n: Int) {
        core.release(n, adding: true)
    }

    /// Removes up to `n` free permits permanently and returns how many were removed.
    @discardableResult
    public func forgetPermits(_ n: Int) -> Int {
        if n < 0 { bugDetected("forgetPermits(\(n)): cannot forget a negative number of permits") }
        return core.forget(n)
    }

    /// The number of free permits. Zero while tasks are waiting.
    public var availablePermits: Int { core.availablePermits }

    /// Closes the semaphore: waiting tasks fail with `ClosedError`, as does every later acquisition.
    /// Permits held elsewhere still return when released.
    public func close() { core.close() }

    /// Whether the semaphore has been closed.
    public var isClosed: Bool { core.isClosed }

    /// The number of tasks waiting for permits (for tests and diagnostics).
    package var queuedWaiterCount: Int { core.queuedWaiterCount }

    /// Permits taken from an `AsyncSemaphore`; they return to it when the permit goes away.
    public struct Permit: ~Copyable {
        private let core: BatchSemaphore
        /// The number of permits held.
        public private(set) var count: Int

        fileprivate init(_ core: BatchSemaphore, count: Int) {
            self.core = core
            self.count = count
        }

        /// Drops the permits without returning them: the semaphore permanently loses them.
        public consuming func forget() {
            count = 0
        }

        deinit {
            if count > 0 { core.release(count) }
        }
    }

    /// Permits taken from an `AsyncSemaphore` (``acquireOwned(_:)``) that can be shared and moved between
    /// tasks (Tokio's `OwnedSemaphorePermit`): they return to the semaphore when the last reference to this
    /// object goes away, wherever that happens. A task that captured it releases it when the task has ended
    /// (Swift releases a task's closure then).
    public final class OwnedPermit: Sendable {
        private let core: BatchSemaphore
        /// The number of permits held.
        public let count: Int

        fileprivate init(_ core: BatchSemaphore, count: Int) {
            self.core = core
            self.count = count
        }

        deinit {
            if count > 0 { core.release(count) }
        }
    }
}
