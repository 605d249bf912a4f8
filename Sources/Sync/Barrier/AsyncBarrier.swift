// AsyncBarrier: let `count` tasks wait until all of them have arrived, Tokio's `Barrier`.
//
// Moving parts: a `Mutex<BarrierStateMachine>` and an id counter; the same registration and cancellation
// protocol as Notify.swift (id before suspending, `Task.isCancelled` checked under the lock, handler removes
// by id). Followers are resumed after the lock is released.
//
// Cancellation differs from Tokio on purpose: Tokio keeps a dropped waiter's arrival counted; here a
// cancelled waiter withdraws its arrival, so it leaves no trace and a cancelled task cannot release the
// others early. If the barrier tripped at the moment of cancellation, the arrival counted and the waiter
// returns normally (as a follower).

import KyotoExecutor
import Synchronization

/// A reusable barrier that releases tasks in groups of `count`.
///
/// The first `count - 1` tasks to call `wait()` suspend; the `count`-th one is the leader: it returns at
/// once and releases the others. Then the next generation begins.
public final class AsyncBarrier: Sendable {
    private enum WaitOutcome: Sendable {
        case leader, follower, cancelled
    }

    private typealias Waker = UnsafeContinuation<WaitOutcome, Never>

    // Relaxed everywhere: ids only need to be unique.
    private let nextWaiterID = Atomic<UInt64>(0)
    private let synced: CheckedMutex<BarrierStateMachine<Waker>>

    /// The number of tasks that make up a group (1 for a barrier created with a count of 0).
    public let count: Int

    /// Creates a barrier for groups of `count` tasks. A count of 0 behaves like 1 (as Tokio's
    /// `Barrier::new(0)`): every caller is the leader of its own group. A negative count traps.
    public init(count: Int) {
        if count < 0 { bugDetected("AsyncBarrier(count: \(count)): a barrier's count cannot be negative") }
        self.count = max(count, 1)
        synced = CheckedMutex(BarrierStateMachine(count: self.count))
    }

    /// Waits until `count` tasks have called `wait()`; returns true for exactly one of them, the leader.
    ///
    /// Throws `CancellationError` if the task is cancelled while waiting; its arrival is then withdrawn.
    @discardableResult
    public nonisolated(nonsending) func wait() async throws(CancellationError) -> Bool {
        // The last arrival leads without a continuation (one resumed inside its own closure still sends the
        // task back through its executor's queue: inside an actor, one enqueue more per call). An arrival that
        // waits takes the lock again below, to register with its continuation.
        if let followers = synced.withLock({ $0.arriveIfLast() }) {
            for follower in followers { follower.resume(returning: .follower) }
            await consumeBudget()
            return true
        }
        // Relaxed: see `nextWaiterID`.
        let id = nextWaiterID.wrappingAdd(1, ordering: .relaxed).oldValue
        let outcome = await _withCancellableContinuation({ (waker: Waker) in
            let action = synced.withLock { $0.arrive(id: id, waker: waker, isCancelled: Task.isCancelled) }
            switch action {
            case .suspend:
                break
            case .rejectCancelled:
                waker.resume(returning: .cancelled)
            case .resumeFollowersAndLead(let followers):
                for follower in followers { follower.resume(returning: .follower) }
                waker.resume(returning: .leader)
            }
        }, onCancel: {
            self.synced.withLock { $0.cancel(id) }?.resume(returning: .cancelled)
        })
        switch outcome {
        case .leader:
            await consumeBudget()
            return true
        case .follower:
            return false
        case .cancelled:
            throw CancellationError()
        }
    }

    /// The number of tasks waiting in the current generation (for tests and diagnostics).
    package var queuedWaiterCount: Int { synced.withLock { $0.waiters.count } }
}
