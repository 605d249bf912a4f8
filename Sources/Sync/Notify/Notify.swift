// Notify: wake one task or all waiting tasks, Tokio's `Notify`.
//
// Moving parts: a `Mutex<NotifyStateMachine>` (permit + FIFO of waiters) and an id counter. Waiters are
// resumed after the lock is released.
//
// Protocol of `notified()`. Take an id; inside a cancellation handler and an unsafe continuation, lock and
// ask the machine: consume the stored permit, queue, or refuse (already cancelled). The cancellation
// handler locks and removes the waiter by id, so it works whether it runs before registration (then
// registration sees `Task.isCancelled`, which Swift sets before running handlers) or after.
//
// Race considered: a `notifyOne` may pick a waiter at the moment its task is cancelled. The handler then
// finds nothing to remove, and the waiter wakes with `.notifiedOne` in a cancelled task. It forwards the
// notification with `notifyOne()` (to the next waiter, or as the stored permit) and throws: a notification
// is never lost to a cancelled task. A wake from `notifyWaiters` is not forwarded; it stores nothing.

import KyotoExecutor
import Synchronization

/// Notifies one waiting task, or every waiting task, that something happened.
///
/// `Notify` holds at most one permit. `notifyOne()` wakes the task that has waited longest, or, when no
/// task waits, stores the permit so the next `notified()` returns at once. `notifyWaiters()` wakes every
/// task waiting at that moment and stores nothing.
public final class Notify: Sendable {
    private enum WaitOutcome: Sendable {
        case consumedPermit, notifiedOne, notifiedAll, cancelled
    }

    private typealias Waker = UnsafeContinuation<WaitOutcome, Never>

    // Relaxed everywhere: ids only need to be unique.
    private let nextWaiterID = Atomic<UInt64>(0)
    private let synced = CheckedMutex(NotifyStateMachine<Waker>())

    /// Creates a `Notify` with no stored permit.
    public init() {}

    /// Waits until notified, or returns at once by consuming a stored permit.
    ///
    /// Throws `CancellationError` if the task is cancelled while waiting; a `notifyOne` that picked this
    /// task at that moment passes on to the next waiter (or is stored).
    public func notified() async throws(CancellationError) {
        let id = nextWaiterID.wrappingAdd(1, ordering: .relaxed).oldValue
        let outcome = await withTaskCancellationHandler {
            await withUnsafeContinuation { (waker: Waker) in
                let action = synced.withLock { $0.notified(id: id, waker: waker, isCancelled: Task.isCancelled) }
                switch action {
                case .suspend: break
                case .consumedPermit: waker.resume(returning: .consumedPermit)
                case .rejectCancelled: waker.resume(returning: .cancelled)
                }
            }
        } onCancel: {
            self.synced.withLock { $0.cancel(id) }?.resume(returning: .cancelled)
        }
        switch outcome {
        case .consumedPermit:
            await consumeBudget()
        case .notifiedOne:
            if Task.isCancelled {
                notifyOne()
                throw CancellationError()
            }
        case .notifiedAll:
            break
        case .cancelled:
            throw CancellationError()
        }
    }

    /// Wakes the longest-waiting task, or stores a permit if none waits (a permit is stored at most once).
    public func notifyOne() {
        if case .resumeWaiter(let waker) = synced.withLock({ $0.notifyOne() }) {
            waker.resume(returning: .notifiedOne)
        }
    }

    /// Wakes the most recently waiting task, or stores a permit if none waits.
    public func notifyLast() {
        if case .resumeWaiter(let waker) = synced.withLock({ $0.notifyLast() }) {
            waker.resume(returning: .notifiedOne)
        }
    }

    /// Wakes every task waiting now. Stores no permit, so later `notified()` calls still wait.
    public func notifyWaiters() {
        for waker in synced.withLock({ $0.notifyWaiters() }) {
            waker.resume(returning: .notifiedAll)
        }
    }

    /// The number of waiting tasks (for tests and diagnostics).
    package var queuedWaiterCount: Int { synced.withLock { $0.waiters.count } }
}
