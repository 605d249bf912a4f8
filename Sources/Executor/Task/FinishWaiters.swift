// FinishWaiters: the `value` calls waiting for one task to finish, for the task registry's slots and
// LocalSet's tasks (one shape, two owners: each keeps a FinishWaiters inside the lock that guards its
// "finished" state).
//
// Protocol. A waiter takes an id, then, inside `_withCancellableContinuation` (CancellableWait.swift: the
// cancellation handler and continuation, on the caller's isolation), locks the owner, checks the finished
// state and appends itself only if the task has not finished and its own task is not cancelled. The finishing side marks the state finished and takes every waiter under the
// same lock, so a waiter either sees "finished" or is taken: none is missed. A cancellation handler that runs
// before registration finds nothing, and registration then sees the cancelled flag (Swift sets it before it
// runs handlers) under the lock. Each waiter leaves the list once, taken by the finisher or removed by its
// own handler (by id), and is resumed after the lock is released: true for "finished", false for
// "cancelled first".

/// The continuations waiting for one task's end (a `ParkedWaiters` list); lives inside the owner's lock.
/// `takeAll` as the task is marked finished (resume with true), `remove` from a waiter's cancellation
/// handler (resume with false).
typealias FinishWaiters = ParkedWaiters<UnsafeContinuation<Bool, Never>>

extension ParkedWaiters where Continuation == UnsafeContinuation<Bool, Never> {
    /// Waits by the protocol above. `register` runs under the owner's lock: it returns true if the task has
    /// finished, false if the waiting task is cancelled, and otherwise appends the continuation and returns
    /// nil. `unregister` removes the waiter `id` under the owner's lock. Returns true once the task has
    /// finished, false if the waiting task was cancelled first.
    static nonisolated(nonsending) func wait(
        id: UInt64,
        register: (Continuation) -> Bool?,
        unregister: @Sendable () -> Continuation?
    ) async -> Bool {
        await _withCancellableContinuation({ (continuation: Continuation) in
            if let immediate = register(continuation) { continuation.resume(returning: immediate) }
        }, onCancel: {
            unregister()?.resume(returning: false)
        })
    }
}
