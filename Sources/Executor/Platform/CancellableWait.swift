// CancellableWait: `withTaskCancellationHandler` around `withUnsafeContinuation`, run on the caller's isolation.
//
// Every waiting path of Kyoto's primitives registers a continuation under a lock and removes it from a
// cancellation handler. Written inline in a `nonisolated(nonsending)` function, the operation closure handed
// to `withTaskCancellationHandler` is a plain nonisolated closure: Swift hops to the generic executor (the
// task's preferred executor) to run it. Called from an actor or a LocalSet, the waiter then registered from
// another thread, one executor hop later, and hopped back when resumed: two extra enqueues per wait, and
// tasks of the same actor or set that ran in between could queue first (a LocalSet's AsyncMutex was not
// first-come, first-served on a multi-thread runtime). These helpers take the caller's isolation as an
// `isolated` parameter and capture it in the operation closure, which makes the closure isolated to it: the
// registration runs on the caller's executor, as the fast paths do. Entering a helper is a switch to the
// caller's own isolation, which Swift can still turn into a re-enqueue on it when the task prefers a task
// executor that the running job does not carry (a default actor under a preference, a LocalSet): the task
// then registers when the actor or set next runs it, after jobs queued before; a LocalSet runs that
// re-enqueue first (LocalExecutor.swift), so in a set waiters queue in call order.

/// Suspends the calling task on a continuation that `register` receives (and usually stores under a lock),
/// with `onCancel` as the task's cancellation handler for the duration, all on the caller's isolation.
@inlinable
package func _withCancellableContinuation<T: Sendable>(
    isolation: isolated (any Actor)? = #isolation,
    _ register: (UnsafeContinuation<T, Never>) -> Void,
    onCancel: @Sendable () -> Void
) async -> T {
    await withTaskCancellationHandler(
        operation: {
            _ = isolation  // the capture isolates the closure to the caller
            return await withUnsafeContinuation(isolation: isolation, register)
        },
        onCancel: onCancel,
        isolation: isolation)
}

/// `_withCancellableContinuation` for a throwing continuation.
@inlinable
package func _withCancellableThrowingContinuation<T: Sendable>(
    isolation: isolated (any Actor)? = #isolation,
    _ register: (UnsafeContinuation<T, any Error>) -> Void,
    onCancel: @Sendable () -> Void
) async throws -> T {
    try await withTaskCancellationHandler(
        operation: {
            _ = isolation  // the capture isolates the closure to the caller
            return try await withUnsafeThrowingContinuation(isolation: isolation, register)
        },
        onCancel: onCancel,
        isolation: isolation)
}
