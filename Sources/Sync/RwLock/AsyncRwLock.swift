// AsyncRwLock: a fair, write-preferring asynchronous reader-writer lock that owns its value.
//
// What it is. A front over a `BatchSemaphore` with `maxReaders` permits: a read takes one, a write takes
// all of them. Because the semaphore is strictly FIFO and a queued write drains the free permits into
// itself, a waiting writer blocks every reader that arrives after it (Tokio's write preference), and
// `tryRead` fails while a writer waits. Downgrading a write guard returns `maxReaders - 1` permits and
// keeps one, so no writer can slip in between.
//
// Why the value access is safe. Readers share the value only for reading (the read guard has no setter);
// a writer holds every permit, so it is alone. Permit hand-over is acquire/release ordered.

import Synchronization

/// An asynchronous reader-writer lock that owns the value it protects.
///
/// Many readers or one writer hold the lock at a time. Waiters are served in the order they queued, and a
/// waiting writer makes later readers wait behind it, so writers are never starved. Except where one thread
/// runs every task (a current-thread or one-worker runtime, a LocalSet), a reader that finds the lock held
/// first re-checks it for a few microseconds before it queues (writers queue at once, except with
/// `maxReaders: 1`, where a write is a one-permit request and re-checks like a read), so a writer arriving
/// in that window may queue, and be served, first. Re-acquiring a read lock while a writer waits therefore
/// deadlocks. A waiting task that is cancelled throws `CancellationError` and loses its place.
public final class AsyncRwLock<Value> {
    /// The default number of concurrent readers (Tokio's `u32::MAX >> 3`).
    public static var defaultMaxReaders: Int { Int(UInt32.max >> 3) }

    /// The number of readers that may hold the lock at once.
    public let maxReaders: Int
    @usableFromInline
    let semaphore: BatchSemaphore
    // Shared by readers, exclusive to the writer (who holds every permit). The permits already make the
    // accesses exclusive, so the dynamic exclusivity check would only repeat them.
    @usableFromInline
    @exclusivity(unchecked)
    var value: Value

    /// Creates an unlocked lock protecting `value`, admitting up to `maxReaders` concurrent readers.
    ///
    /// `maxReaders` must be at least 1.
    public init(_ value: Value, maxReaders: Int = AsyncRwLock.defaultMaxReaders) {
        if maxReaders < 1 || maxReaders > BatchSemaphore.maxPermits {
            bugDetected("an AsyncRwLock needs between 1 and \(BatchSemaphore.maxPermits) readers, got \(maxReaders)")
        }
        self.maxReaders = maxReaders
        self.semaphore = BatchSemaphore(permits: maxReaders, limit: maxReaders)
        self.value = value
    }

    /// Waits for shared access, runs `body` with the value, and releases the read lock.
    ///
    /// Runs on the caller's isolation, and so does `body`; nothing is awaited before `body` when the lock
    /// is free and no cooperative yield is due.
    ///
    /// Throws `CancellationError` if the task is cancelled while waiting, otherwise rethrows `body`'s error.
    @inlinable
    @inline(__always)
    public nonisolated(nonsending) func withReadLock<Result, Failure: Error>(
        _ body: nonisolated(nonsending) (Value) async throws(Failure) -> Result
    ) async throws -> Result {
        try await acquirePermits(1)
        defer { semaphore.release(1) }
        return try await body(value)
    }

    /// Waits for shared access, runs the synchronous `body` with the value, and releases the read lock.
    ///
    /// The overload Swift picks for a closure that does not `await`; same semantics as the asynchronous
    /// form, without an executor hop after `body` (see `AsyncMutex.withLock`).
    @inlinable
    @inline(__always)
    public nonisolated(nonsending) func withReadLock<Result, Failure: Error>(
        _ body: (Value) throws(Failure) -> Result
    ) async throws -> Result {
        try await acquirePermits(1)
        defer { semaphore.release(1) }
        return try body(value)
    }

    /// Waits for exclusive access, runs `body` with the value, and releases the write lock.
    ///
    /// Runs on the caller's isolation, and so does `body`; nothing is awaited before `body` when the lock
    /// is free and no cooperative yield is due.
    ///
    /// Throws `CancellationError` if the task is cancelled while waiting, otherwise rethrows `body`'s error.
    @inlinable
    @inline(__always)
    public nonisolated(nonsending) func withWriteLock<Result, Failure: Error>(
        _ body: nonisolated(nonsending) (inout Value) async throws(Failure) -> Result
    ) async throws -> Result {
        try await acquirePermits(maxReaders)
        defer { semaphore.release(maxReaders) }
        return try await body(&value)
    }

    /// Waits for exclusive access, runs the synchronous `body` with the value, and releases the write lock.
    ///
    /// The overload Swift picks for a closure that does not `await`; same semantics as the asynchronous
    /// form, without an executor hop after `body` (see `AsyncMutex.withLock`).
    @inlinable
    @inline(__always)
    public nonisolated(nonsending) func withWriteLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) async throws -> Result {
        try await acquirePermits(maxReaders)
        defer { semaphore.release(maxReaders) }
        return try body(&value)
    }

    /// Waits for shared access and returns a guard that holds it until the guard goes away.
    public nonisolated(nonsending) func read() async throws(CancellationError) -> ReadGuard {
        try await acquirePermits(1)
        return ReadGuard(self)
    }

    /// Waits for exclusive access and returns a guard that holds it until the guard goes away.
    public nonisolated(nonsending) func write() async throws(CancellationError) -> WriteGuard {
        try await acquirePermits(maxReaders)
        return WriteGuard(self)
    }

    /// Takes a read lock if one is available without waiting: fails while a writer holds or waits for the lock.
    public func tryRead() -> ReadGuard? {
        semaphore.tryAcquire(1) == .acquired ? ReadGuard(self) : nil
    }

    /// Takes the write lock if no reader or writer holds it and nobody waits.
    public func tryWrite() -> WriteGuard? {
        semaphore.tryAcquire(maxReaders) == .acquired ? WriteGuard(self) : nil
    }

    /// Waits for shared access from synchronous code, blocking the calling thread (Tokio's `blocking_read`),
    /// and returns a guard that holds it until the guard goes away. For a `spawnBlocking` closure, a task's
    /// own `blockInPlace` closure or a thread of your own; traps inside a task otherwise, in a LocalSet and on
    /// a thread that runs a runtime's tasks, where it could block the very task that holds the lock: await
    /// ``read()`` there. Queues as ``read()`` does (behind a waiting writer). Nothing interrupts the wait.
    public func blockingRead() -> ReadGuard {
        semaphore.blockingAcquire(1, "AsyncRwLock.blockingRead()")
        return ReadGuard(self)
    }

    /// Waits for exclusive access from synchronous code, blocking the calling thread (Tokio's
    /// `blocking_write`), and returns a guard that holds it until the guard goes away. Where it may be called
    /// and how it queues: as ``blockingRead()`` and ``write()``. A thread that already holds a read or write
    /// guard of this lock waits for ever.
    public func blockingWrite() -> WriteGuard {
        semaphore.blockingAcquire(maxReaders, "AsyncRwLock.blockingWrite()")
        return WriteGuard(self)
    }

    /// Takes `permits` permits (1 for a read, `maxReaders` for a write); nothing is awaited when they are
    /// free and no cooperative yield is due. Every way of locking goes through here.
    @inlinable
    @inline(__always)
    nonisolated(nonsending) func acquirePermits(_ permits: Int) async throws(CancellationError) {
        do {
            try await semaphore.acquire(permits)
        } catch {
            // The semaphore is never closed, so the only failure is cancellation.
            throw CancellationError()
        }
    }

    /// Shared access to the value of an `AsyncRwLock`; releases the read lock when it goes away.
    public struct ReadGuard: ~Copyable {
        private let lock: AsyncRwLock

        fileprivate init(_ lock: AsyncRwLock) {
            self.lock = lock
        }

        /// The protected value (read-only).
        public var value: Value {
            _read { yield lock.value }
        }

        deinit {
            lock.semaphore.release(1)
        }
    }

    /// Exclusive access to the value of an `AsyncRwLock`; releases the write lock when it goes away.
    public struct WriteGuard: ~Copyable {
        private let lock: AsyncRwLock
        // maxReaders while writing; zero once downgraded (the read guard then owns the last permit).
        private var heldPermits: Int

        fileprivate init(_ lock: AsyncRwLock) {
            self.lock = lock
            self.heldPermits = lock.maxReaders
        }

        /// The protected value.
        public var value: Value {
            _read { yield lock.value }
            _modify { yield &lock.value }
        }

        /// Atomically turns this write lock into a read lock: no writer can acquire the lock in between.
        ///
        /// Waiting readers may proceed afterwards; a waiting writer still waits for this reader.
        public consuming func downgrade() -> ReadGuard {
            let readGuard = ReadGuard(lock)
            lock.semaphore.release(heldPermits - 1)
            heldPermits = 0
            return readGuard
        }

        deinit {
            if heldPermits > 0 { lock.semaphore.release(heldPermits) }
        }
    }

    /// The number of tasks waiting for the lock (for tests and diagnostics).
    package var queuedWaiterCount: Int { semaphore.queuedWaiterCount }
}

// SAFETY: readers only read `value`, the writer holds every permit, and permit hand-over is acquire/release
// ordered; `Value: Sendable` because the value is shared between tasks.
extension AsyncRwLock: @unchecked Sendable where Value: Sendable {}
