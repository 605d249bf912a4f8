// JoinSet: a collection of spawned tasks whose results are taken in completion order (Tokio's JoinSet).
//
// Each task's body is wrapped so that, when it ends, its result is appended to the set's `completed`
// FIFO and a waiting `next()` is resumed. State lives in one Mutex; the waiter is resumed after unlocking.
// Only one `next()` may wait at a time (a JoinSet has one consumer, as in Tokio, where join_next takes
// `&mut self`); a second concurrent waiter traps with a message.
//
// Cancellation (Tokio's join_next is cancel-safe): a waiting `next()` whose task is cancelled stops
// waiting at once and takes no result. The waiter is removed under the lock by whichever comes first, the
// cancellation handler or a finishing task, so it is resumed exactly once; each wait has its own token, so
// a handler only ever removes its own wait. A task cancelled before it registers sees the cancelled flag
// under the same lock (the flag is set before the handler runs). `nextResult()` and `shutdown()` wait
// through cancellation, as a task group's `next()` does (shutdown's members are aborted, so that wait
// ends).

import Synchronization

/// A set of tasks spawned on a runtime, awaited in the order they complete. Deinitialising the set aborts
/// every task still in it.
///
/// A set has one consumer, as in Tokio (whose `join_next` takes `&mut self`): ``next()``, ``nextResult()``
/// and ``shutdown()`` wait for results, and only one of them may wait at a time; a second concurrent wait
/// traps naming the mistake. To stop a set that another task drains, call ``abortAll()``: the draining task
/// then collects the aborted members as ``JoinError/cancelled``.
public final class JoinSet<T: Sendable>: Sendable {
    private struct State: ~Copyable {
        /// The members not finished yet, keyed by a number of the set's own: task ids are unique only
        /// within one runtime, and a set without a runtime of its own may spawn on several.
        var running: [UInt64: JoinHandle<T>] = [:]
        var nextKey: UInt64 = 0
        /// Results not yet joined, in completion order. A FIFO keeps no copy of a result it handed out (its
        /// deinit could otherwise run later, under the lock) and does not grow without bound while the set
        /// never quite catches up with its tasks.
        var completed = FIFO<Result<T, any Error>>()
        var waiter: (token: UInt64, continuation: UnsafeContinuation<Wait, Never>)?
        var unjoined = 0

        /// Takes the next finished result, or reports an empty set; nil when a `next()` would have to wait.
        mutating func takeReady() -> Wait? {
            if let result = completed.pop() {
                unjoined -= 1
                return .result(result)
            }
            return unjoined == 0 ? .empty : nil
        }
    }

    /// How a wait for the next result ended.
    private enum Wait {
        case result(Result<T, any Error>)
        case empty
        case cancelled
    }

    private let state = CheckedMutex(State())
    /// Source of wait tokens. Relaxed: a token only needs to be unique, which the RMW gives.
    private let tokens = Atomic<UInt64>(0)
    private let runtime: Runtime?

    /// An empty set spawning on `runtime`; with nil (the default), each `spawn`/`spawnBlocking` uses the
    /// runtime running the caller of that `spawn` (and traps outside a runtime).
    public init(runtime: Runtime? = nil) {
        self.runtime = runtime
    }

    deinit {
        abortAll()
    }

    private func resolveRuntime() -> Runtime {
        guard let r = runtime ?? Runtime.current else {
            fatalError("BUG DETECTED: JoinSet.spawn called outside a Kyoto runtime and the set has no runtime")
        }
        return r
    }

    /// Spawns `body` into the set and returns its handle (which may be ignored).
    @discardableResult
    public func spawn(
        name: String? = nil, priority: TaskPriority? = nil, _ body: sending @escaping () async throws -> T
    ) -> JoinHandle<T> {
        state.withLock { $0.unjoined += 1 }
        return track(resolveRuntime().spawn(name: name, priority: priority, body))
    }

    /// Runs the blocking closure `body` on the runtime's blocking pool as a member of the set.
    @discardableResult
    public func spawnBlocking(_ body: @escaping @Sendable () throws -> T) -> JoinHandle<T> {
        state.withLock { $0.unjoined += 1 }
        return track(resolveRuntime().spawnBlocking(body))
    }

    private func track(_ handle: JoinHandle<T>) -> JoinHandle<T> {
        let id = state.withLock { s -> UInt64 in
            s.nextKey += 1
            s.running[s.nextKey] = handle
            return s.nextKey
        }
        // A spawn refused after shutdown began has no task: its result is there at once.
        guard let task = handle.task else {
            finished(id, .failure(JoinError.cancelled))
            return handle
        }
        // A watcher task awaits the handle and files the result in completion order.
        resolveRuntime().spawnDetachedWatcher { [weak self] in
            let result: Result<T, any Error>
            // The task's value directly: `JoinHandle.value` would spend budget on this internal wait.
            do { result = .success(try await task.value) } catch { result = .failure(error) }
            self?.finished(id, result)
        }
        return handle
    }

    private func finished(_ id: UInt64, _ result: sending Result<T, any Error>) {
        let waiter = state.withLock { s -> UnsafeContinuation<Wait, Never>? in
            // A member `detachAll()` removed is no longer the set's: its result is dropped (after the lock).
            guard s.running.removeValue(forKey: id) != nil else { return nil }
            if let w = s.waiter {
                s.waiter = nil
                s.unjoined -= 1
                return w.continuation
            }
            s.completed.push(result)
            return nil
        }
        waiter?.resume(returning: .result(result))
    }

    /// Waits for the next result (see the file comment on cancellation). A `cancellable` wait ends with
    /// `.cancelled` when the waiting task is cancelled.
    private nonisolated(nonsending) func waitNext(cancellable: Bool) async -> Wait {
        // One unit of the cooperative budget per call, spent before anything is taken (Tokio's `join_next`
        // takes part in coop the same way): draining many finished results still yields.
        await consumeBudget()
        // A result already waiting (or nothing left to join) is returned without a continuation: one resumed
        // inside its own closure still sends the task back through its executor's queue (an extra job run).
        if let ready = state.withLock({ $0.takeReady() }) { return ready }
        // Relaxed: see `tokens`.
        let token = tokens.wrappingAdd(1, ordering: .relaxed).newValue
        return await _withCancellableContinuation({ (c: UnsafeContinuation<Wait, Never>) in
            let immediate = state.withLock { s -> Wait? in
                if let ready = s.takeReady() { return ready }
                kyotoPrecondition(s.waiter == nil, "BUG DETECTED: JoinSet.next() awaited by two tasks at once")
                if cancellable && Task.isCancelled { return .cancelled }
                s.waiter = (token, c)
                return nil
            }
            if let immediate { c.resume(returning: immediate) }
        }, onCancel: {
            guard cancellable else { return }
            let waiter = state.withLock { s -> UnsafeContinuation<Wait, Never>? in
                guard let w = s.waiter, w.token == token else { return nil }
                s.waiter = nil
                return w.continuation
            }
            // Outside the lock.
            waiter?.resume(returning: .cancelled)
        })
    }

    /// The next result in completion order; nil when the set is empty. The task's own error, or
    /// ``JoinError/cancelled``, is returned as the failure. Waits even if the waiting task is cancelled
    /// (as a task group's `next()` does); ``next()`` stops waiting instead. Spends one unit of the cooperative
    /// budget. Traps if another task is already waiting on the set (see ``JoinSet``).
    public nonisolated(nonsending) func nextResult() async -> Result<T, any Error>? {
        switch await waitNext(cancellable: false) {
        case .result(let r): return r
        case .empty, .cancelled: return nil
        }
    }

    /// The next value in completion order; nil when the set is empty. Rethrows the task's error (or
    /// ``JoinError/cancelled``). Throws `CancellationError` if the waiting task is cancelled: the wait
    /// stops at once and no result is taken (the set is unchanged), so it can be raced against a timeout.
    /// Spends one unit of the cooperative budget. Traps if another task is already waiting on the set (see
    /// ``JoinSet``).
    public nonisolated(nonsending) func next() async throws -> T? {
        switch await waitNext(cancellable: true) {
        case .result(let r): return try r.get()
        case .empty: return nil
        case .cancelled: throw CancellationError()
        }
    }

    /// A result that is already there, in completion order, without waiting: nil when no member has
    /// finished unjoined (or the set is empty). The task's own error, or ``JoinError/cancelled``, is the
    /// failure. Tokio's `try_join_next`: for a loop that does other work and reaps finished tasks as it goes.
    ///
    /// ```swift
    /// while let conn = try await listener.accept() {
    ///     while let finished = connections.tryNextResult() { log(finished) }   // keep the set small
    ///     connections.spawn { try await serve(conn) }
    /// }
    /// ```
    public func tryNextResult() -> Result<T, any Error>? {
        state.withLock { s -> Result<T, any Error>? in
            guard let result = s.completed.pop() else { return nil }
            s.unjoined -= 1
            return result
        }
    }

    /// The value of a member that has already finished, in completion order, without waiting: nil when none
    /// has finished unjoined (or the set is empty). Rethrows the task's error (or ``JoinError/cancelled``).
    /// See ``tryNextResult()``.
    public func tryNext() throws -> T? {
        try tryNextResult()?.get()
    }

    /// Removes every task from the set without aborting it (Tokio's `detach_all`): running members keep
    /// running on their own, as if their handles had been dropped, and the set's deinit no longer aborts
    /// them. Results that finished and were not joined are dropped. The set is empty afterwards (a
    /// `spawn` racing with this call from another task may still add its task), and a waiting ``next()``
    /// returns nil.
    public func detachAll() {
        let (dropped, waiter) = state.withLock { s -> (FIFO<Result<T, any Error>>, UnsafeContinuation<Wait, Never>?) in
            // A `spawn` in flight has counted itself in `unjoined` but is not in `running` yet: it stays.
            s.unjoined -= s.running.count + s.completed.count
            s.running.removeAll()
            var dropped = FIFO<Result<T, any Error>>()
            swap(&dropped, &s.completed)
            guard s.unjoined == 0, let w = s.waiter else { return (dropped, nil) }
            s.waiter = nil
            return (dropped, w.continuation)
        }
        // Outside the lock: the dropped results' deinits, and the waiter.
        _ = consume dropped
        waiter?.resume(returning: .empty)
    }

    /// Results finished and not yet joined (for tests).
    var bufferedCount: Int { state.withLock { $0.completed.count } }

    /// Results the set still holds, joined or not (for tests: it must hold no joined one).
    var heldResultCount: Int { state.withLock { $0.completed.storedCount } }

    /// Whether a `next()` is waiting (for tests).
    var hasWaiter: Bool { state.withLock { $0.waiter != nil } }

    /// Aborts every task in the set; they stay in it until joined.
    public func abortAll() {
        let handles = state.withLock { Array($0.running.values) }
        for h in handles { h.abort() }
    }

    /// Aborts every task and waits for all of them to end (even if the waiting task is cancelled); the set
    /// is empty afterwards. It waits through ``nextResult()``, so it traps if another task is waiting on the
    /// set; to stop a set that another task drains, call ``abortAll()`` instead.
    public nonisolated(nonsending) func shutdown() async {
        abortAll()
        while await nextResult() != nil {}
    }

    /// Number of tasks not yet joined (finished-but-unjoined ones included).
    public var count: Int { state.withLock { $0.unjoined } }

    /// Whether no task remains to be joined.
    public var isEmpty: Bool { count == 0 }
}

extension Runtime {
    /// Spawns an internal helper task that is not counted as a user task.
    func spawnDetachedWatcher(_ body: sending @escaping () async -> Void) {
        Task(executorPreference: taskPreference, operation: body)
    }
}
