// The blocking bridge: the `blocking…` forms of Kyoto's primitives (Tokio's `blocking_send`,
// `blocking_recv`, `blocking_lock`) block the calling thread until an async operation completes, so that
// synchronous code (a `spawnBlocking` closure, a plain thread, a `blockInPlace` closure) can use a channel or
// a lock that async tasks use.
//
// How: the callers first try the non-blocking form (`trySend`, `tryRecv`, `tryLock`), so an operation that
// need not wait costs no more than that. Otherwise the operation runs as a task whose executor preference is
// a one-off executor (`BridgeExecutor`) driven by the calling thread itself: the thread runs the task's jobs
// as they are enqueued and parks on a futex in between, until the task has stored its result. So the wait
// depends on no other thread being free: not Swift's cooperative pool (which the blocking code may be
// starving), not a current-thread runtime's `blockOn` (which may be the very thread waiting for this one).
// A resumption (the receiver making room, say) enqueues the task's next job from whatever thread resumes it;
// the blocked thread wakes and runs it.
//
// Misuse: blocking a thread that runs tasks (a runtime's worker or current-thread driver, the main thread
// under `runMain`, a thread running a LocalSet's jobs), or blocking inside a task anywhere, stalls the tasks
// that thread would run, possibly the one the operation waits for. It traps, naming the call, as Tokio
// panics ("Cannot block the current thread from within a runtime"). A task's own `blockInPlace` closure may
// block (on a worker, the worker was handed to another thread first): `blockInPlace` marks the thread with
// the calling task's identity for the closure's duration (`kyoto_tls_block_in_place_task`), so the mark
// covers neither the task after the closure nor other tasks the closure runs. The bridge task's jobs then
// run nested inside the calling task's job, which Swift's runtime supports: it saves and restores the
// thread's current task around each job.

import CKyoto

/// Traps unless the calling thread may block: not a thread that runs a runtime's tasks or a LocalSet's jobs,
/// and, inside a task, only in that task's own `blockInPlace` closure. `api` names the call in the message
/// (`"Mpsc.Sender.blockingSend(_:)"`).
package func _precheckBlocking(_ api: String) {
    kyotoPrecondition(
        !(ThreadContext.current?.runsScheduler ?? false),
        "BUG DETECTED: \(api) called on a thread that runs a Kyoto runtime's tasks would block them (possibly "
            + "the one it waits for); await the async form instead")
    // Any thread running a LocalSet's jobs, whatever its role (a blockOn under blockInPlace, say): the set's
    // other tasks, maybe the one this waits for, run only on this thread.
    kyotoPrecondition(
        kyoto_local_set_depth() == 0,
        "BUG DETECTED: \(api) called inside a LocalSet would block the thread its tasks are pinned to; await "
            + "the async form instead")
    let task = Platform.currentTaskIdentity
    kyotoPrecondition(
        task == 0 || UInt(kyoto_block_in_place_task_get()) == task,
        "BUG DETECTED: \(api) called inside a task would block the thread that runs it; await the async form "
            + "instead, or call it from spawnBlocking, a blockInPlace closure or a thread of your own")
}

/// Runs `operation` as a task driven by the calling thread (see the file comment) and returns its result,
/// or throws its error, once it has finished. The caller has already passed `_precheckBlocking`.
package func _blockingWait<T: Sendable, E: Error>(
    _ operation: @escaping @Sendable () async throws(E) -> T
) throws(E) -> T {
    let bridge = BridgeExecutor()
    // Filled by the task's last job. Every job of the task runs on this thread, inside `drive` (the closure
    // is nonisolated, so after `operation` it continues on its preferred executor, the bridge, even if
    // `operation` hopped elsewhere): when `drive` sees the slot filled, the task's last job has returned. The
    // lock is for the compiler's sake (the closure is `@Sendable`); it is never contended.
    let slot = CheckedMutex<Result<T, E>?>(nil)
    Task(executorPreference: bridge) {
        let result: Result<T, E>
        do throws(E) {
            result = .success(try await operation())
        } catch {
            result = .failure(error)
        }
        slot.withLock { $0 = result }
    }
    bridge.drive { slot.withLock { $0 != nil } }
    return try slot.withLock { $0.take()! }.get()
}

/// The task executor of one blocking wait: jobs are queued by any thread and run by the waiting thread.
private final class BridgeExecutor: TaskExecutor, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `jobs` is an `Inject` (the runtime's lock-guarded intrusive job FIFO: no
    // allocation per job, any thread may push or pop); `parker` is a Parker (any thread may unpark, only the
    // driving thread parks).
    private let jobs = Inject()
    private let parker = Parker()

    func enqueue(_ job: consuming ExecutorJob) {
        // Lifetime: the caller (Swift's runtime, often resuming a continuation on another thread) holds no
        // reference to this executor. Once the job is pushed, the driving thread may be between jobs rather
        // than parked: it takes the job without waiting for the unpark, runs it to the task's end (which drops
        // the task's reference to its preferred executor) and returns from `_blockingWait` (which drops the
        // last one) before this thread reaches `unpark`, which would then touch freed memory. So this call
        // holds a reference from before the push to after the unpark. Taking it before the push is safe: until
        // this job is queued the task cannot finish, so `_blockingWait` is still waiting and `bridge` alive.
        let keepAlive = Unmanaged.passRetained(self)
        defer { keepAlive.release() }
        jobs.push(JobRef(job))
        // After the push: an unpark that finds the driver about to park makes that park return at once (and
        // covers a driver whose `pop` read the queue's length hint before the push landed).
        parker.unpark()
    }

    /// Runs the queued jobs on the calling thread until `isDone` holds, parking while there are none.
    func drive(until isDone: () -> Bool) {
        let identity = asUnownedTaskExecutor()
        // The cooperative budget is for sharing a thread with other tasks; this thread runs the one task, so
        // its primitives never yield here (a runtime's blocking thread never refills its budget, which would
        // run out and force a yield at every budgeted operation). The thread's own budget is put back.
        let savedBudget = kyoto_budget_get()
        defer { kyoto_budget_set(savedBudget) }
        while true {
            var ran = false
            while let job = jobs.pop() {
                kyoto_budget_set(Int32.max)
                job.unownedJob.runSynchronously(on: identity)
                ran = true
            }
            if isDone() { return }
            // A job queued after the last `pop` unparked the parker first: this park returns at once.
            if !ran { parker.park() }
        }
    }
}
