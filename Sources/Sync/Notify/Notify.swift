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
// `Notified` (from `makeNotified()`) splits that in two, as Tokio's `Notified` future does: its creation
// records the machine's `notifyWaiters` generation (so a later `notifyWaiters` completes it even if it never
// waited), `enable()` queues it without a waker (so a `notifyOne` can pick it), and `wait()` attaches the
// waker to that entry or queues as above. A `Notified` dropped after `enable()` leaves the queue, or passes
// on a notification it was picked for (its deinit).
//
// Race considered: a `notifyOne` (or `notifyLast`) may pick a waiter at the moment its task is cancelled.
// The handler then finds nothing to remove, and the waiter wakes picked, in a cancelled task. It forwards
// the notification the way it was picked (`notifyOne()` or `notifyLast()`: to the next such waiter, or as
// the stored permit) and throws: a notification is never lost to a cancelled task. A wake from
// `notifyWaiters` is not forwarded; it stores nothing.

import KyotoExecutor
import Synchronization

/// Notifies one waiting task, or every waiting task, that something happened.
///
/// `Notify` holds at most one permit. `notifyOne()` wakes the task that has waited longest, or, when no
/// task waits, stores the permit so the next `notified()` returns at once. `notifyWaiters()` wakes every
/// task waiting at that moment and stores nothing.
///
/// To check a condition and then wait for it without missing a `notifyWaiters()` (or a `notifyOne()`) that
/// lands between the check and the wait, register first with ``makeNotified()``:
///
/// ```swift
/// var notified = notify.makeNotified()
/// notified.enable()
/// if isReady() { return }
/// try await notified.wait()
/// ```
public final class Notify: Sendable {
    private typealias Machine = NotifyStateMachine<Waker>
    private typealias Waker = UnsafeContinuation<WakeReason, Never>

    /// Why a suspended waiter was resumed.
    private enum WakeReason: Sendable {
        case notified(Machine.Outcome)
        case cancelled
    }

    // Relaxed everywhere: ids only need to be unique.
    private let nextWaiterID = Atomic<UInt64>(0)
    private let synced = CheckedMutex(Machine())

    /// Creates a `Notify` with no stored permit.
    public init() {}

    /// Waits until notified, or returns at once by consuming a stored permit.
    ///
    /// Throws `CancellationError` if the task is cancelled while waiting; a `notifyOne` that picked this
    /// task at that moment passes on to the next waiter (or is stored).
    public nonisolated(nonsending) func notified() async throws(CancellationError) {
        // Relaxed: see `nextWaiterID`.
        try await wait(nextWaiterID.wrappingAdd(1, ordering: .relaxed).oldValue, since: nil)
    }

    /// Creates a ``Notified``: a notification asked for now and awaited later (Tokio's `notified()` future).
    ///
    /// A `notifyWaiters()` after this call completes it even if it has not started waiting. Call
    /// ``Notified/enable()`` to also let a `notifyOne()` pick it before it waits.
    public func makeNotified() -> Notified {
        // Relaxed: see `nextWaiterID`.
        let id = nextWaiterID.wrappingAdd(1, ordering: .relaxed).oldValue
        return Notified(notify: self, id: id, generation: synced.withLock { $0.generation })
    }

    /// Wakes the longest-waiting task, or stores a permit if none waits (a permit is stored at most once).
    public func notifyOne() {
        resume(synced.withLock { $0.notifyOne() }, picked: .one)
    }

    /// Wakes the most recently waiting task, or stores a permit if none waits.
    public func notifyLast() {
        resume(synced.withLock { $0.notifyLast() }, picked: .last)
    }

    /// Wakes every task waiting now, and completes every ``Notified`` made before this call. Stores no
    /// permit, so later `notified()` calls still wait.
    public func notifyWaiters() {
        for waker in synced.withLock({ $0.notifyWaiters() }) {
            waker.resume(returning: .notified(.notifiedAll))
        }
    }

    /// The number of queued waiters, including enabled ``Notified``s not waiting yet (for tests and
    /// diagnostics).
    package var queuedWaiterCount: Int { synced.withLock { $0.waiters.count } }

    // MARK: Plumbing of `notified()` and `Notified`

    private func resume(_ action: Machine.NotifyAction, picked pick: Machine.Pick) {
        if case .resumeWaiter(let waker) = action { waker.resume(returning: .notified(.picked(pick))) }
    }

    /// Waiter `id` (a `Notified` made at `generation`, or, with nil, one made now) waits until notified.
    /// Registered inside the continuation's closure; a notifier or the cancellation handler resumes it after
    /// unlocking.
    fileprivate nonisolated(nonsending) func wait(_ id: UInt64, since generation: UInt64?) async throws(CancellationError) {
        // Already notified (a stored permit, a notification that came first): return without a continuation.
        // A continuation resumed inside its own closure still sends the task back through its executor's
        // queue, which inside an actor is one enqueue more per call. A call that does wait takes the lock a
        // second time, to register: registering needs the continuation, which exists only inside its closure.
        if let outcome = synced.withLock({ $0.takeReady(id: id, since: generation) }) {
            try await finish(.notified(outcome))
            return
        }
        let reason = await _withCancellableContinuation({ (waker: Waker) in
            let action = synced.withLock {
                $0.wait(id: id, since: generation, waker: waker, isCancelled: Task.isCancelled)
            }
            switch action {
            case .suspend: break
            case .ready(let outcome): waker.resume(returning: .notified(outcome))
            case .rejectCancelled: waker.resume(returning: .cancelled)
            }
        }, onCancel: {
            self.synced.withLock { $0.cancel(id) }?.resume(returning: .cancelled)
        })
        try await finish(reason)
    }

    /// After a wait: spends budget for a notification that did not suspend (a consumed permit), or, when
    /// the task was cancelled as a `notifyOne`/`notifyLast` picked it, passes the notification on the same
    /// way and throws.
    private nonisolated(nonsending) func finish(_ reason: WakeReason) async throws(CancellationError) {
        switch reason {
        case .notified(.consumedPermit):
            await consumeBudget()
        case .notified(.picked(let pick)):
            if Task.isCancelled {
                forward(pick)
                throw CancellationError()
            }
        case .notified(.notifiedAll):
            break
        case .cancelled:
            throw CancellationError()
        }
    }

    private func forward(_ pick: Machine.Pick) {
        switch pick {
        case .one: notifyOne()
        case .last: notifyLast()
        }
    }

    fileprivate func enable(_ id: UInt64, since generation: UInt64) -> Bool {
        synced.withLock { $0.enable(id: id, since: generation) } != nil
    }

    fileprivate func dropNotified(_ id: UInt64) {
        if let (action, pick) = synced.withLock({ $0.dropNotified(id) }) { resume(action, picked: pick) }
    }
}

/// A notification asked for now and awaited later: Tokio's `Notified` future, made by
/// ``Notify/makeNotified()``.
///
/// - A ``Notify/notifyWaiters()`` after its creation completes it, whether or not it has started waiting.
/// - ``enable()`` puts it in the waiter queue without waiting, so a ``Notify/notifyOne()`` can pick it (or
///   it takes the stored permit).
/// - ``wait()`` returns once it is notified.
///
/// Dropping it after `enable()` without waiting leaves the queue; a `notifyOne` (or `notifyLast`) that
/// picked it is passed on to the next waiter, or stored as the permit, so no notification is lost. Once
/// `enable()` has returned true the notification is this `Notified`'s own, as in Tokio: dropping it then
/// passes nothing on.
public struct Notified: ~Copyable, Sendable {
    private enum Phase: Equatable, Sendable {
        /// Created: no queue entry.
        case created
        /// In the waiter queue (or picked there) without waiting.
        case enabled
        /// `enable()` found it notified; the notification is its own.
        case notified
        /// `wait()` took over (it removes what it registered).
        case finished
    }

    private let notify: Notify
    private let id: UInt64
    private let generation: UInt64
    private var phase = Phase.created

    fileprivate init(notify: Notify, id: UInt64, generation: UInt64) {
        self.notify = notify
        self.id = id
        self.generation = generation
    }

    /// Joins the waiter queue without waiting, so a `notifyOne()` from now on can pick this notification.
    /// Returns true if it is already notified (a `notifyWaiters()` came after its creation, a `notifyOne()`
    /// picked it, or it took the stored permit): `wait()` then returns at once. Calling it again only
    /// reports the state.
    @discardableResult
    public mutating func enable() -> Bool {
        switch phase {
        case .notified, .finished:
            return true
        case .created, .enabled:
            phase = notify.enable(id, since: generation) ? .notified : .enabled
            return phase == .notified
        }
    }

    /// Waits until notified; returns at once if it already is.
    ///
    /// Throws `CancellationError` if the task is cancelled while waiting; a `notifyOne` that picked it at
    /// that moment passes on to the next waiter (or is stored).
    public consuming nonisolated(nonsending) func wait() async throws(CancellationError) {
        let wasNotified = phase == .notified
        phase = .finished
        if wasNotified {
            await consumeBudget()
            return
        }
        try await notify.wait(id, since: generation)
    }

    deinit {
        if phase == .enabled { notify.dropNotified(id) }
    }
}
