// Budget: Tokio's cooperative budget, and the free functions that find the current runtime.
//
// Each job run starts with 128 units (jobs chained through the LIFO slot share the unit count of the job
// that started the chain). Kyoto's primitives call `consumeBudget()` when they complete without
// suspending; when the units run out, the task yields, so a task whose every channel is ready still lets
// its neighbours run. The count lives in a C thread-local (`kyoto_tls_budget`, 0 on threads that are not
// Kyoto runtime threads), so spending a unit is an inlined decrement with no call and no allocation.
// `unconstrained` opts a scope out through a task-local flag, which is only read when the budget is
// exhausted (the rare path).

import CKyoto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Spends one unit of the cooperative budget; when the budget of the current job run is exhausted, yields
/// so that other tasks can run. Outside a Kyoto runtime thread it does nothing. A job run starts with 128
/// units, as in Tokio: 128 calls go through, after which ``hasBudgetRemaining()`` is false, and the 129th
/// yields (the task then continues in a new job run, with a fresh budget).
///
/// Call it in loops that may find every operation ready (it is what Kyoto's channels and locks do). Inlined:
/// while budget is left it is a thread-local decrement, with nothing awaited.
@inlinable
@inline(__always)
public nonisolated(nonsending) func consumeBudget() async {
    if _budgetTryConsume() { await _yieldToRuntime() }
}

/// Spends one unit of the cooperative budget, exactly as `consumeBudget()` does, but without yielding:
/// returns true when the budget of the current job run is exhausted and the caller must yield
/// (`await _yieldToRuntime()`) before going on. Lets a primitive check the budget synchronously BEFORE it
/// acquires anything (Tokio's `poll_proceed` order), so that it never yields while holding a resource.
///
/// The common case (a unit left) is a thread-local decrement inlined into the caller; an exhausted budget
/// and non-runtime threads (budget 0) take `_budgetSlowPath`.
@inlinable
@inline(__always)
package func _budgetTryConsume() -> Bool {
    if kyoto_budget_take() { return false }
    return _budgetSlowPath()
}

/// What `_budgetProceed` did.
@usableFromInline
package enum _BudgetProceed: Equatable {
    /// A unit was spent in this job run: give it back with `_budgetRefund()` if the operation then waits.
    case charged
    /// Nothing to give back: the budget yielded first (the operation now runs in a new job run), or there is
    /// no budget here (not a runtime thread, or inside `unconstrained`).
    case uncharged
    /// The budget yielded and the task was cancelled meanwhile: end the operation with its cancellation
    /// error, having taken nothing.
    case cancelled
}

/// Spends one unit of the cooperative budget at the start of a receive, before it takes anything (Tokio's
/// `poll_proceed` order); a receive that then has to wait gives the unit back (`_budgetRefund`, Tokio's
/// `RestoreOnPending`), so only receives that complete are charged. When the budget of the current job run
/// is exhausted it yields, and then reports whether the task was cancelled meanwhile: the receive throws its
/// cancellation error and takes nothing (the message stays queued). The forced yield is a suspension, and
/// cancellation ends a suspension: this is what lets a cancelled consumer stop, and a `timeout` (which
/// cancels its body at the deadline) end, a loop whose every receive finds a message (Tokio's budgeted
/// receive returns `Pending` there and the timeout drops it). Only on a Kyoto runtime thread outside
/// `unconstrained`, where there is a budget. Locks, semaphores and sends keep spending their budget without
/// this check, so cleanup code in a cancelled task can still lock and send.
@inlinable
@inline(__always)
package nonisolated(nonsending) func _budgetProceed() async -> _BudgetProceed {
    if kyoto_budget_take() { return .charged }
    guard _budgetSlowPath() else { return .uncharged }
    await _yieldToRuntime()
    return Task.isCancelled ? .cancelled : .uncharged
}

/// Gives back the unit a `.charged` `_budgetProceed()` spent, in the same job run (before suspending).
@inlinable
@inline(__always)
package func _budgetRefund() {
    kyoto_budget_set(kyoto_budget_get() &+ 1)
}

/// The rare half of `_budgetTryConsume`.
@usableFromInline
@inline(never)
package func _budgetSlowPath() -> Bool {
    // Reached with no unit left (the fast path took every other case), or on a thread that runs no Kyoto
    // job (budget 0, no context).
    guard let context = ThreadContext.current else { return false }
    if Budget.isUnconstrained {
        context.budget = initialBudget
        return false
    }
    context.budget = 0
    // Relaxed: a statistic read by `Runtime.metrics`; nothing is published through it, and a stale count
    // is harmless there.
    context.shared.budgetForcedYields.wrappingAdd(1, ordering: .relaxed)
    return true
}

/// Whether a task on the calling thread that finds a lock held may usefully re-read it for a moment
/// before suspending: false where the holder may well be another task of this same thread, which cannot
/// run, let alone release, while the caller spins: the thread of a current-thread runtime, the one worker
/// of a single-worker runtime, a thread running a LocalSet's jobs, the post-shutdown drainer. True
/// elsewhere, including threads that are not Kyoto's.
@usableFromInline
package func _spinningMayHelp() -> Bool {
    if kyoto_local_set_depth() != 0 { return false }
    guard let context = ThreadContext.current else { return true }
    return context.currentThread == nil && context.role != .drain && context.shared.workerCount > 1
}

/// Whether the current job run still has cooperative budget left (true outside a runtime and inside
/// ``unconstrained(_:)``).
public func hasBudgetRemaining() -> Bool {
    guard let context = ThreadContext.current else { return true }
    return context.budget > 0 || Budget.isUnconstrained
}

/// Runs `body` with the cooperative budget switched off: Kyoto primitives never force it to yield. Only
/// the calling task is unconstrained: tasks started inside `body` (spawned, detached, child tasks) keep their
/// own budget, as with Tokio's `unconstrained`, which covers one future. Unlike Tokio, what `body` spends in
/// the job run it started in is still taken from the surrounding budget (the thread's budget is shared by
/// every task segment the job runs); the budget is never raised back on the way out.
public nonisolated(nonsending) func unconstrained<T, E: Error>(_ body: nonisolated(nonsending) () async throws(E) -> T)
    async throws(E) -> T
{
    // The refills inside (the slow path tops an unconstrained task up) must not hand the surrounding code a
    // fresh budget: when `body` ends in the job run it started in, on the same thread, the budget is put
    // back to what it was on entry, unless it is lower now (other tasks' segments that ran in the same job
    // run, in a LIFO chain or an actor's drain, spent it: that spending stays).
    let entryBudget = kyoto_budget_get()
    let entryRun = kyoto_budget_epoch_get()
    let entryThread = kyotoCurrentThreadIdentity()
    let owner = Budget.Owner(task: Platform.currentTaskIdentity)
    defer {
        // Relaxed: the owner itself reads it in program order. Another task matches `owner.task` only if it
        // was allocated at this task's address, i.e. after this task ended and was freed; this store comes
        // before that free, and the allocator's hand-over of the memory orders it before that task exists.
        owner.active.store(false, ordering: .relaxed)
        if kyoto_budget_epoch_get() == entryRun && kyotoCurrentThreadIdentity() == entryThread {
            kyoto_budget_set(min(entryBudget, kyoto_budget_get()))
        }
    }
    do {
        return try await withUnconstrainedOwner(owner, body)
    } catch {
        throw error as! E
    }
}

/// Runs `body` with `Budget.unconstrainedTask` bound to `owner`, on the caller's isolation: the operation
/// closure captures the isolated parameter, which isolates it to the caller (CancellableWait.swift says why an
/// inline closure would hop to the generic executor, taking an actor's or a LocalSet's code off its thread).
private func withUnconstrainedOwner<T, E: Error>(
    _ owner: Budget.Owner, isolation: isolated (any Actor)? = #isolation,
    _ body: nonisolated(nonsending) () async throws(E) -> T
) async throws -> T {
    try await Budget.$unconstrainedTask.withValue(
        owner,
        operation: {
            _ = isolation  // the capture isolates the closure to the caller
            return try await body()
        },
        isolation: isolation)
}

enum Budget {
    /// The `unconstrained` call a task runs inside, if any: the calling task's identity, and whether the call
    /// is still running. A task-local, so tasks started inside copy it; they are not the owner, so they stay
    /// constrained. `active` covers a task allocated later at the owner's address, after the owner ended:
    /// the copy it inherited (from a task started inside) then reads false.
    final class Owner: Sendable {
        let task: UInt
        let active = Atomic<Bool>(true)
        init(task: UInt) { self.task = task }
    }

    @TaskLocal static var unconstrainedTask: Owner? = nil

    /// Whether the current task runs inside its own `unconstrained` (rare paths only: a task-local lookup).
    static var isUnconstrained: Bool {
        guard let owner = unconstrainedTask else { return false }
        // Relaxed: see `unconstrained`.
        return owner.active.load(ordering: .relaxed) && owner.task == Platform.currentTaskIdentity
    }

}

/// Yields to the runtime: the current task goes to the back of its worker's queue and other ready tasks
/// run first; timers that are due fire before the next task runs. Unlike Tokio, which holds a yielded task
/// back until its worker has run out of other tasks, Kyoto queues it behind the tasks queued so far.
public nonisolated(nonsending) func yieldNow() async {
    await _yieldToRuntime()
}

/// `Task.yield()`, cheaper on a multi-thread worker: the task suspends on a continuation that the worker
/// resumes as soon as the current job returns, which puts the task at the back of the worker's queue (in
/// the role of Tokio's defer list, without its holding back: see `yieldNow`). `Task.yield()` instead
/// enqueues a separate continuation job, and under an executor preference each of its three enqueues and
/// switches takes the task's status-record lock (measured: 450-850 ns per `Task.yield()` on a worker).
/// Elsewhere (current-thread driver, LocalSet or blocking threads, outside a runtime) it is `Task.yield()`.
@usableFromInline
package nonisolated(nonsending) func _yieldToRuntime() async {
    guard let context = ThreadContext.current, context.role == .worker, context.runningJob != nil else {
        await Task.yield()
        return
    }
    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
        // One executor job can run segments of several tasks (a default actor drains its queue inside one
        // job), so another task may have deferred earlier in this job. That task has suspended (we are
        // running after it), so resuming it now is safe; it still lands behind the queued work.
        context.resumeDeferred()
        context.deferred = continuation
    }
}

/// The runtime running the caller, unretained (a retain of the runtime would bounce its reference count,
/// which every worker touches, on every spawn). Valid while the calling job runs: the runtime outlives its
/// threads' jobs (see `Shared.runtime`). Traps outside a runtime thread, naming `function`.
@usableFromInline
func _currentRuntimeOrTrap(_ function: StaticString) -> Unmanaged<Runtime> {
    let runtime = ThreadContext.withCurrent { context -> Unmanaged<Runtime>? in
        if context.inHook {
            fatalError(
                "BUG DETECTED: \(function) called from a thread hook (onThreadStart/Stop/Park/Unpark), where the "
                    + "runtime may be being released; capture the runtime in the hook (weakly, so that it does not "
                    + "keep itself alive) and call runtime.\(function)")
        }
        return context.shared.runtimeRef
    }
    guard let runtime = runtime ?? nil else {
        fatalError("BUG DETECTED: \(function) called outside a Kyoto runtime; call it from a task running on a Runtime, or use runtime.\(function)")
    }
    return runtime
}

/// Spawns `body` on the runtime running the caller. Traps when called outside a Kyoto runtime thread.
@inlinable
@discardableResult
public func spawn<T: Sendable>(
    name: String? = nil, priority: TaskPriority? = nil, _ body: sending @escaping () async throws -> T
) -> JoinHandle<T> {
    Runtime._spawn(on: _currentRuntimeOrTrap("spawn"), name: name, priority: priority, body)
}
