// LocalSet: tasks pinned to one OS thread, so they may create and share non-Sendable values.
//
// A LocalSet is an actor whose executor (`LocalExecutor`) runs every job on one thread: the thread inside
// `Runtime.blockOn` when `runUntil` is called under a `blockOn` (of either flavor), or a thread the set
// owns otherwise. Local tasks are tasks isolated to the actor, so Swift's own isolation checking proves
// that their non-Sendable values never leave that thread; no `@unchecked` is needed in user code.
//
// Not every closure a local task runs is isolated to the set: a task group's body, the operation of
// `withTaskCancellationHandler` and any nonisolated async function run on the task's executor preference.
// Swift lets those capture the set's non-Sendable values (they run inside the same task, one piece at a
// time), which is only sound if they run on the set's thread too. So a local task prefers the set's own
// executor as its task executor (`LocalExecutor` is both), and its child tasks (`async let`, group
// children) inherit that: all of a local task's work runs on the set's thread, as all of a Tokio
// `spawn_local` future is polled there. Work meant for the runtime's workers goes through `spawn` or
// `spawnBlocking`. A local task's `Task.sleep` timer goes to the runtime (LocalExecutor.swift).
//
// Shape (the ones that compile and keep every job on the thread, found by experiment on Swift 6.3.1):
// `runUntil` takes a non-`sending` closure with an `isolated LocalSet` parameter; `spawnLocal` takes a
// parameterless `nonisolated(nonsending)` closure, which runs on the caller's isolation (the set) and
// so may capture the caller's non-Sendable values. (A plain `() async` closure would hop to the generic
// executor after its first await.)
//
// Lifetime: a set lives for one `runUntil` call. When the body returns, unfinished local tasks are
// cancelled and the set keeps running until they have unwound (their handles resolve
// `JoinError.cancelled` unless they finish with a value), then `runUntil` returns. Local tasks therefore
// never outlive the set, and no reference cycle between the set and its tasks survives it.

import Synchronization

/// A set of tasks pinned to one OS thread, whose bodies may create, capture and share non-Sendable values.
///
/// The thread driving a set runs at most 61 of its jobs in a row (as Tokio's `LocalSet` ticks) before it
/// turns to its other work: the runtime's own tasks and timers when it is a current-thread runtime's
/// thread, and the other sets it drives. A task of the set must not block that thread: `blockOn` there
/// traps.
///
/// Start local work with ``spawnLocal(_:)``. A `Task {}` created inside ``runUntil(_:)`` is isolated to the
/// set too, but the set does not track it: `runUntil` neither cancels nor waits for it, and if it resumes
/// after `runUntil` returned it traps (a job queued at the moment `runUntil` ends waits for the set's next
/// `runUntil`).
///
/// ```swift
/// final class Cache { var entries: [String: Int] = [:] }    // not Sendable
///
/// try await LocalSet().runUntil { set in
///     let cache = Cache()
///     let a = set.spawnLocal { cache.entries["a"] = 1 }
///     let b = set.spawnLocal { try await Task.sleep(for: .milliseconds(1)); cache.entries["b"] = 2 }
///     try await a.value
///     try await b.value
///     return cache.entries.count
/// }
/// ```
public actor LocalSet {
    private let executor = LocalExecutor()
    /// Where the set is in its one `runUntil`: not started (or ended), running the body, or winding down
    /// (the body returned; unfinished tasks are cancelled and awaited).
    private enum Phase {
        case idle, running, draining
    }

    private var phase = Phase.idle
    /// Set for the whole of a `runUntil` call, before the set's executor is attached to a driver: a second,
    /// concurrent `runUntil` traps before it could attach the executor to another thread as well.
    private let claimed = Atomic<Bool>(false)
    private var tasks: [UInt64: ErasedTask] = [:]
    private var nextID: UInt64 = 0
    private var drainWaiter: CheckedContinuation<Void, Never>?

    /// A new, idle set. It starts running inside ``runUntil(_:)``.
    public init() {}

    /// The set's executor: every job of the set runs on its single thread.
    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    /// Runs `body` isolated to the set (on its thread) and returns its value. Tasks spawned with
    /// ``spawnLocal(_:)`` run on the same thread. When `body` returns, unfinished local tasks are cancelled
    /// and awaited before this returns. Unlike Tokio, which drops a local task's future wherever it is
    /// suspended, Swift can only cancel a task: a local task awaiting something that ignores cancellation (a
    /// continuation nobody resumes, a loop that never checks) keeps `runUntil` from returning until it ends.
    ///
    /// Called from the body of ``Runtime/blockOn(_:)`` itself, the set runs on the `blockOn` thread (Tokio's
    /// `block_on(local.run_until(...))`); anywhere else (a spawned task, a child task, outside any runtime)
    /// it runs on a thread it starts for the duration of the call.
    public nonisolated func runUntil<T: Sendable>(_ body: (isolated LocalSet) async throws -> T) async rethrows -> T {
        // Acquiring and releasing: pairs with the releasing store below, so a later `runUntil` sees
        // everything the previous one did to the set's state.
        kyotoPrecondition(
            claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged,
            "BUG DETECTED: LocalSet.runUntil called while the set is already running")
        // Releasing: see above. Runs last, after the executor is detached (defers run in reverse order).
        defer { claimed.store(false, ordering: .releasing) }
        let ownedDriver: LocalDriver?
        if let driver = LocalDriver.current {
            ownedDriver = nil
            driver.attach(executor)
            executor.bind(driver)
        } else {
            let driver = LocalDriver.startOwnedThread(shared: ThreadContext.current?.shared)
            ownedDriver = driver
            driver.attach(executor)
            executor.bind(driver)
        }
        // The executor was unbound by `end()`, on the set's thread (see LocalExecutor.swift).
        defer {
            if let ownedDriver {
                ownedDriver.detach(executor)
                ownedDriver.stop()
            } else if let driver = LocalDriver.current {
                driver.detach(executor)
            }
        }
        await start()
        do {
            let value = try await body(self)
            await end()
            return value
        } catch {
            await end()
            throw error
        }
    }

    private func start() {
        phase = .running
    }

    /// Cancels unfinished local tasks and waits until all have ended.
    private func end() async {
        phase = .draining
        for task in tasks.values { task.cancel() }
        // A loop: tasks may be spawned (cancelled up front) while the set drains, even between the moment
        // the last tracked task resumes this waiter and the moment this resumes. The check is repeated
        // inside the continuation's closure: Swift may run that closure as a job of its own, after other
        // jobs of the set (seen on 6.3.1 in optimized builds: the last task ended in between, found no
        // waiter, and the drain waited for good).
        while !tasks.isEmpty {
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                if tasks.isEmpty {
                    waiter.resume()
                } else {
                    drainWaiter = waiter
                }
            }
        }
        phase = .idle
        // Unbound here, on the set's thread and inside its job: once `runUntil` continues elsewhere, that
        // thread pops no further job of the set (one queued now waits for the next `runUntil`, which may
        // bind the set to another thread while this one would still be running it).
        executor.bind(nil)
    }

    /// Starts `body` as a task on the set's thread and returns a handle to its result. The body may
    /// capture the caller's non-Sendable values. All of the task's work runs on the set's thread: its
    /// nonisolated async calls, task-group bodies and child tasks (`async let`, group children) too, so a
    /// CPU-heavy part belongs in ``Runtime/spawn(name:priority:_:)`` or `spawnBlocking` (as in Tokio, where a
    /// `spawn_local` future is polled on the set's thread). Traps unless the set is inside ``runUntil(_:)``.
    /// While the set winds down (after `runUntil`'s body returned, its unfinished tasks are cancelled and
    /// awaited), a task spawned by one of them is cancelled before it starts: its body never runs and its
    /// handle resolves ``JoinError/cancelled``.
    @discardableResult
    public func spawnLocal<T: Sendable>(_ body: nonisolated(nonsending) @escaping () async throws -> T)
        -> LocalJoinHandle<T>
    {
        kyotoPrecondition(
            phase != .idle,
            "BUG DETECTED: spawnLocal called on a LocalSet that is not running; call it inside runUntil")
        let id = nextID
        nextID += 1
        let finished = LocalTaskState()
        // The task prefers the set's own executor as its task executor, so its nonisolated code (a task
        // group's body, a cancellation handler's operation, any nonisolated async function) runs on the set's
        // thread too: those closures may capture the set's non-Sendable values, and Swift accepts that because
        // they run inside the same task. With the runtime as the preference they ran on its workers, beside
        // the set's other tasks (a counter two local tasks shared lost updates).
        let preference = executor
        let task = Task { () async throws -> T in
            defer { self.taskEnded(id, finished) }
            if Task.isCancelled { throw JoinError.cancelled }
            do {
                // The operation closure must stay isolated to the set: capturing the isolated `self` is what
                // makes Swift infer that.
                return try await withTaskExecutorPreference(preference) { () async throws -> T in
                    self.preconditionIsolated()
                    return try await body()
                }
            } catch {
                if Task.isCancelled { throw JoinError.cancelled }
                throw error
            }
        }
        tasks[id] = ErasedTask(task)
        if phase == .draining { task.cancel() }
        return LocalJoinHandle(task: task, state: finished)
    }

    private func taskEnded(_ id: UInt64, _ state: LocalTaskState) {
        tasks[id] = nil
        state.end()
        if tasks.isEmpty, let waiter = drainWaiter {
            drainWaiter = nil
            waiter.resume()
        }
    }

    /// Number of local tasks that have not finished.
    public var pendingTaskCount: Int { tasks.count }
}

/// Per-task completion flag of a local task, and the `LocalJoinHandle.value` calls waiting for it (the
/// protocol is `FinishWaiters`').
final class LocalTaskState: Sendable {
    /// Whether the task's body has returned. Stored before `end` takes the waiters' lock, and read by a
    /// registering waiter under that lock, which orders the two; also read without the lock
    /// (`LocalJoinHandle.isFinished`).
    let finished = Atomic<Bool>(false)
    private let waiters = CheckedMutex((nextID: UInt64(0), list: FinishWaiters()))

    /// The task's body has returned: wakes every waiting `value`.
    func end() {
        // Releasing: pairs with the acquiring load in `LocalJoinHandle.isFinished`.
        finished.store(true, ordering: .releasing)
        for waiter in waiters.withLock({ $0.list.takeAll() }) { waiter.resume(returning: true) }
    }

    /// Waits for `end`: true then, false if the waiting task is cancelled first.
    nonisolated(nonsending) func waitForEnd() async -> Bool {
        let id = waiters.withLock { w -> UInt64 in
            w.nextID += 1
            return w.nextID
        }
        return await FinishWaiters.wait(
            id: id,
            register: { continuation in
                waiters.withLock { w -> Bool? in
                    // Relaxed: the lock orders it after `end`'s store when `end` has taken the lock first.
                    if finished.load(ordering: .relaxed) { return true }
                    if Task.isCancelled { return false }
                    w.list.append(id, continuation)
                    return nil
                }
            },
            unregister: { self.waiters.withLock { $0.list.remove(id) } })
    }
}

/// A handle to a local task's result (``LocalSet/spawnLocal(_:)``). Dropping it detaches the task, which
/// still ends with its set.
public struct LocalJoinHandle<T: Sendable>: Sendable {
    let task: Task<T, any Error>
    let state: LocalTaskState

    /// The task's value; throws its own error unchanged or ``JoinError/cancelled`` when it was aborted (or
    /// its set ended) and did not finish with a value. May be awaited more than once. As
    /// ``JoinHandle/value``, the wait ends with `CancellationError` if the waiting task is cancelled before
    /// the local task ends (which keeps running); ``result`` waits through that.
    public nonisolated(nonsending) var value: T {
        get async throws {
            if !isFinished {
                guard await state.waitForEnd() else { throw CancellationError() }
            }
            return try await task.value
        }
    }

    /// The task's outcome, waiting for it to end even if the waiting task is cancelled: `.success` with
    /// its value, or `.failure` with its own error or ``JoinError/cancelled``.
    public nonisolated(nonsending) var result: Result<T, any Error> {
        get async {
            do {
                return .success(try await task.value)
            } catch {
                return .failure(error)
            }
        }
    }

    /// Asks the task to stop; a task that has not started never runs its body. Idempotent.
    public func abort() { task.cancel() }

    /// Whether the task has ended: its body has returned (the values its closure captured may still be
    /// being released, as for ``JoinHandle/isFinished``).
    public var isFinished: Bool {
        // Acquiring: pairs with the releasing store when the task ends (`LocalSet.taskEnded`).
        state.finished.load(ordering: .acquiring)
    }
}
