// AsyncOnceCell: a value initialised at most once, by the first caller whose initializer succeeds.
//
// Moving parts (Tokio's design): the value in a `Mutex<Value?>`, and a one-permit `BatchSemaphore` that
// serialises initialisation attempts in FIFO order.
//
// Protocol.
//   getOrInit - read the value; if absent, acquire the permit (waiting in line behind the running
//               initializer). Holding the permit, run the initializer. On success: store the value, then
//               close the semaphore, which wakes every waiter with `.closed`; they read the stored value.
//               The permit is never returned, so nobody can start another attempt. On failure (the
//               initializer throws, including a `CancellationError` because its task was cancelled):
//               release the permit, so the next waiter runs its own initializer.
//   set       - `tryAcquire` the permit: `.closed` means initialised, `.noPermits` means an initializer is
//               running or the permit is on its way to the next waiter (handed over after a failed attempt,
//               or held for a moment by a waiter granted it as it was cancelled, until it gives it back);
//               otherwise store the value and close, exactly like a successful initializer.
//
// Why correct. The value is written only by the holder of the permit, and the semaphore is closed only
// after the write, so a task that sees `.closed` (or holds no permit but finds a value) sees the final
// value. Every holder either stores a value and closes, or releases; so an initializer is always running
// or the next waiter gets the permit, and no waiter hangs.

import KyotoExecutor
import Synchronization

/// A cell that is initialised at most once, asynchronously, by the first caller that succeeds.
///
/// Concurrent `getOrInit` callers run one initializer at a time, in the order they queued; the others wait
/// and receive the same value. If an initializer throws (for instance because its task was cancelled), the
/// next waiting caller runs its own. Except where one thread runs every task (a current-thread or one-worker
/// runtime, a LocalSet), a caller that finds an initializer running first re-checks for a few microseconds
/// before it queues, so a caller arriving in that window may go first; from the moment a caller queues,
/// nobody overtakes it. An initializer that calls `getOrInit` on the same cell waits for itself for ever
/// (not detected).
public final class AsyncOnceCell<Value: Sendable>: Sendable {
    /// Why `set` failed; carries the rejected value back.
    public enum SetError: Error {
        /// The cell already holds a value.
        case alreadyInitialized(Value)
        /// An initializer is running right now, or about to: a waiting `getOrInit` caller is taking over from
        /// one that threw or was cancelled. The cell may still end up empty; `set` can be retried.
        case initializing(Value)
    }

    private let storage = CheckedMutex<Value?>(nil)
    private let initPermit = BatchSemaphore(permits: 1, limit: 1)

    /// Creates an empty cell.
    public init() {}

    /// Creates a cell that already holds `value`.
    public init(_ value: Value) {
        storage.withLock { $0 = value }
        _ = initPermit.tryAcquire(1)
        initPermit.close()
    }

    /// The value, or nil if the cell is not initialised yet.
    public func get() -> Value? {
        storage.withLock { $0 }
    }

    /// Whether the cell holds a value.
    public var isInitialized: Bool { self.get() != nil }

    /// The number of `getOrInit` callers queued behind a running initializer (takes a lock; for tests and
    /// diagnostics).
    package var queuedWaiterCount: Int { initPermit.queuedWaiterCount }

    /// Stores `value` if the cell is empty and no initializer is running.
    public func set(_ value: Value) throws(SetError) {
        switch initPermit.tryAcquire(1) {
        case .closed:
            throw .alreadyInitialized(value)
        case .noPermits:
            throw .initializing(value)
        case .acquired:
            publish(value)
        }
    }

    /// Returns the value, running `initializer` first if the cell is empty and it is this caller's turn.
    ///
    /// Throws what the initializer throws (the cell stays empty and the next caller tries), or
    /// `CancellationError` if the task is cancelled while waiting for another caller's initializer.
    /// An initializer that returns a value even though its task was cancelled still initialises the cell.
    public func getOrInit<Failure: Error>(
        isolation: isolated (any Actor)? = #isolation,
        _ initializer: nonisolated(nonsending) () async throws(Failure) -> Value
    ) async throws -> Value {
        if let value = get() {
            await consumeBudget()
            return value
        }
        do {
            try await initPermit.acquire(1)
        } catch .closed {
            // Closed only after the value was stored.
            return get()!
        } catch {
            throw CancellationError()
        }
        let value: Value
        do {
            value = try await initializer()
        } catch {
            initPermit.release(1)
            throw error
        }
        publish(value)
        return value
    }

    /// Stores the value and closes the semaphore; the caller holds the permit, which is never returned.
    private func publish(_ value: Value) {
        storage.withLock { $0 = value }
        initPermit.close()
    }
}
