// spawnBlocking and blockInPlace: running blocking code without stalling the workers.

import CKyoto
import Synchronization

/// The result slot of one blocking job, awaited by the task that `spawnBlocking` returns a handle to.
final class BlockingCall<T: Sendable>: Sendable {
    private struct State: ~Copyable {
        var result: Result<T, any Error>?
        var waiter: UnsafeContinuation<T, any Error>?
        /// The job, once submitted; `cancelRequested` if the task was cancelled before that.
        var job: BlockingJob?
        var cancelRequested = false
    }

    private let state = CheckedMutex(State())

    /// Delivers the job's outcome (exactly once) and resumes the waiter, if any, after unlocking. Drops the
    /// job (it captures this call: a cycle until it is done).
    func deliver(_ result: sending Result<T, any Error>) {
        let (waiter, job) = state.withLock { s -> (UnsafeContinuation<T, any Error>?, BlockingJob?) in
            let job = s.job.take()
            if let w = s.waiter {
                s.waiter = nil
                return (w, job)
            }
            s.result = result
            return (nil, job)
        }
        _ = job  // released here, after unlocking
        waiter?.resume(with: result)
    }

    /// Records the job about to be submitted. Returns false if the task was cancelled before: the caller
    /// cancels the job instead of submitting it.
    func attach(_ job: BlockingJob) -> Bool {
        state.withLock { s in
            if s.cancelRequested { return false }
            s.job = job
            return true
        }
    }

    /// The task was cancelled: cancels the job if it has not started (it then never runs and delivers
    /// `JoinError.cancelled`), or makes `attach` refuse it if it has not been submitted yet.
    func cancelJob() {
        let job = state.withLock { s -> BlockingJob? in
            if s.job == nil { s.cancelRequested = true }
            return s.job
        }
        job?.cancel()
    }

    /// The job's outcome, suspending until it is delivered.
    nonisolated(nonsending) func value() async throws -> T {
        try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<T, any Error>) in
            let ready = state.withLock { s -> Result<T, any Error>? in
                if let r = s.result {
                    s.result = nil
                    return r
                }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }
}

/// The closure of one blocking job, taken out when the job runs it.
final class BlockingWork<T: Sendable>: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `body` is written by `init` on the submitting thread and then read and
    // cleared only by `run`, which its `BlockingJob` calls at most once (the job's run/cancel CAS), on the
    // pool thread that popped the job; the pool's lock published the job, and so this object, to it.
    private var body: (@Sendable () throws -> T)?

    init(_ body: @escaping @Sendable () throws -> T) {
        self.body = body
    }

    /// Runs the closure and releases it (with what it captured) before returning its outcome. At most once.
    func run() -> Result<T, any Error> {
        guard let body = body.take() else { return .failure(JoinError.cancelled) }
        return Result { try body() }
    }
}

extension Runtime {
    /// Runs the blocking closure `body` on the runtime's blocking pool (threads named `kyoto-blocking-N`,
    /// which Linux shows as `kyoto-blocking-` since it keeps 15 bytes of a thread's name; started on demand
    /// up to `maxBlockingThreads`, FIFO beyond that) and returns a handle to its result.
    ///
    /// A job aborted before it starts never runs (its handle resolves to ``JoinError/cancelled``); a job
    /// that has started cannot be interrupted and its handle still returns its value. The closure's error
    /// reaches ``JoinHandle/value`` unchanged. Once shutdown has begun, `body` never runs: the handle is
    /// already finished and resolves to ``JoinError/cancelled``.
    @discardableResult
    public func spawnBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> JoinHandle<T> {
        // After shutdown began: a cancelled handle, nothing submitted, nothing counted (as `spawn`).
        if _isClosed { return _refusedSpawn() }
        let call = BlockingCall<T>()
        // The task first, then the job: the job checks the task's cancellation when it starts, so a handle
        // aborted before the wrapper task first runs (its cancellation handler is not installed yet), or a
        // task that shutdown cancelled, never runs `body`.
        let slot = _beginTask()
        let task = Task<T, any Error>(executorPreference: _taskPreference) { [unowned(unsafe) self] in
            var succeeded = false
            defer { _finishTask(slot, succeeded: succeeded) }
            // Aborting the handle cancels this task, which cancels the job if it has not started yet.
            let value = try await withTaskCancellationHandler {
                try await call.value()
            } onCancel: {
                call.cancelJob()
            }
            succeeded = true
            return value
        }
        _linkTask(slot, ErasedTask(task), trivialResult: _isPOD(T.self))
        // A paused clock must not jump ahead while the job is in flight (Time/Clock.swift): count it, and
        // after its result is delivered, uncount it and wake the driver to look at the clock again.
        let pausedClock: (time: TimeSource, driver: Parker)? =
            if shared.time.isPaused, case .currentThread(let s) = scheduler { (shared.time, s.parker) } else { nil }
        pausedClock?.time.blockingJobStarted()
        // The closure is released before the outcome is delivered, so what it captured is gone when the
        // handle resolves (as with `spawn`, whose closure Swift releases before the task completes). A job
        // cancelled before it ran keeps its closure until the job itself is dropped (by the pool, or by the
        // wrapper task's cancellation handler): releasing it here would run its captures' deinits on the
        // thread that called `abort()`.
        let work = BlockingWork(body)
        let job = BlockingJob { started in
            if started && !task.isCancelled {
                call.deliver(work.run())
            } else {
                call.deliver(.failure(JoinError.cancelled))
            }
            if let pausedClock {
                pausedClock.time.blockingJobFinished()
                pausedClock.driver.unpark()
            }
        }
        if call.attach(job) {
            blockingPool.submit(job)
        } else {
            job.cancel()
        }
        return JoinHandle(task: task, slot: slot, registry: _registry)
    }
}

/// Runs the blocking closure `body` on the blocking pool of the runtime running the caller. Traps
/// outside a Kyoto runtime thread. See ``Runtime/spawnBlocking(_:)``.
@discardableResult
public func spawnBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> JoinHandle<T> {
    _currentRuntimeOrTrap("spawnBlocking").takeUnretainedValue().spawnBlocking(body)
}

/// Runs the blocking closure `body` on the current worker thread after handing the worker's queued work
/// to a new thread, so other tasks keep running while `body` blocks (Tokio's `block_in_place`).
///
/// After `body` returns, the calling task continues on this thread until it next suspends; the thread
/// then stops being a worker. Outside a runtime thread (or on a blocking-pool thread) `body` simply runs, and
/// so it does on a worker thread outside a job (in a thread hook such as `onThreadPark`, or in the deinit of
/// a task's result that the worker releases between jobs): there the worker is not handed off and stays
/// blocked while `body` runs.
/// Traps on a current-thread runtime, whose only thread cannot be handed off, inside a LocalSet, and on the
/// main thread under `runMain`.
public func blockInPlace<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
    // Any thread running a set's jobs, whatever its role: under a blockOn called from a blocking closure
    // or from a blockInPlace closure, or a standalone set's own thread, the role does not say so.
    kyotoPrecondition(
        kyoto_local_set_depth() == 0,
        "BUG DETECTED: blockInPlace called inside a LocalSet, whose tasks are pinned to this thread; "
            + "use spawnBlocking instead")
    if let context = ThreadContext.current {
        switch context.role {
        case .currentThreadDriver:
            fatalError(
                "BUG DETECTED: blockInPlace called on a current-thread Kyoto runtime, whose only thread "
                    + "cannot be handed off; use spawnBlocking instead")
        case .worker:
            // Only from inside a job: every caller of `Shared.run` on a worker checks, when the job returns,
            // whether the thread still holds the worker. Between jobs (a thread hook, or a result's deinit run
            // when the worker releases returned tasks) the worker's own loop is on this stack and would keep
            // using the worker after the new thread took it, so `body` runs in place there.
            if let worker = context.worker, context.runningJob != nil {
                worker.scheduler.handOff(worker, from: context)
            }
        case .localSet:
            fatalError(
                "BUG DETECTED: blockInPlace called inside a LocalSet, whose tasks are pinned to this thread; "
                    + "use spawnBlocking instead")
        case .mainThread:
            fatalError(
                "BUG DETECTED: blockInPlace called on the main thread, which runs the MainActor under runMain; "
                    + "use spawnBlocking instead")
        case .blocking, .formerWorker, .drain:
            break
        }
    }
    // Marks the closure as a place where the calling task may block (the `blocking…` forms check it); the
    // mark names this task, so tasks the closure runs (a LocalSet's, under a blockOn) are not covered.
    let outer = kyoto_block_in_place_task_get()
    kyoto_block_in_place_task_set(Platform.currentTaskIdentity)
    defer { kyoto_block_in_place_task_set(outer) }
    return try body()
}
