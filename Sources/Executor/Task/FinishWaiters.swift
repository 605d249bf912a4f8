// FinishWaiters: the `value` calls waiting for one task to finish, for the task registry's slots and
// LocalSet's tasks (one shape, two owners: each keeps a FinishWaiters inside the lock that guards its
// "finished" state).
//
// Protocol. A waiter takes an id, then, inside `withTaskCancellationHandler` and `withUnsafeContinuation`,
// locks the owner (on the caller's isolation: CancellableWait.swift), checks the finished state and appends itself only if the task has not finished and its
// own task is not cancelled. The finishing side marks the state finished and takes every waiter under the
// same lock, so a waiter either sees "finished" or is taken: none is missed. A cancellation handler that runs
// before registration finds nothing, and registration then sees the cancelled flag (Swift sets it before it
// runs handlers) under the lock. Each waiter leaves the list once, taken by the finisher or removed by its
// own handler (by id), and is resumed after the lock is released: true for "finished", false for
// "cancelled first".

/// The continuations waiting for one task's end; lives inside the owner's lock.
struct FinishWaiters {
    typealias Continuation = UnsafeContinuation<Bool, Never>

    private var list: [(id: UInt64, continuation: Continuation)] = []

    /// Registers a waiter (under the owner's lock, after checking the task has not finished).
    mutating func append(_ id: UInt64, _ continuation: Continuation) {
        list.append((id, continuation))
    }

    /// Takes every waiter (under the owner's lock, as the task is marked finished); resume them with true
    /// after unlocking. Does not write when there is none (the common case, on every task's end).
    mutating func takeAll() -> [Continuation] {
        if list.isEmpty { return [] }
        defer { list = [] }
        return list.map(\.continuation)
    }

    /// Removes the waiter `id` if it is still registered (its cancellation handler, under the owner's lock);
    /// resume it with false after unlocking.
    mutating func remove(_ id: UInt64) -> Continuation? {
        guard let k = list.firstIndex(where: { $0.id == id }) else { return nil }
        return list.remove(at: k).continuation
    }

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
