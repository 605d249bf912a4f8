// CheckedMutex: `Synchronization.Mutex` plus ThreadSanitizer annotations.
//
// On Linux, `Mutex` locks with raw futex syscalls, which ThreadSanitizer does not intercept, so every
// access to lock-guarded state looks like a race to it (a two-thread counter under `Mutex.withLock`
// reproduces the report). This wrapper tells TSan about the hand-off: entering the critical section
// "acquires" the guarded value's address and leaving it "releases" it. Outside TSan builds the
// annotations are a call into the C shim that finds no TSan runtime and returns.
//
// Every lock in Kyoto is a CheckedMutex, and the state it guards lives inside it.

import CKyoto
import Synchronization

/// A mutex that owns the state it guards (use `withLock` to reach it), visible to ThreadSanitizer.
package struct CheckedMutex<Value: ~Copyable>: ~Copyable, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `mutex` is Sendable; `token` is an immutable address used only as an
    // identity for the TSan annotations (never dereferenced).
    private let mutex: Mutex<Value>
    /// The address TSan's acquire/release annotations name. A separate allocation, because taking the
    /// address of the guarded value is itself an access that TSan would check before the annotation.
    private let token: UnsafeMutableRawPointer

    /// A mutex guarding `initialValue`.
    package init(_ initialValue: consuming sending Value) {
        mutex = Mutex(initialValue)
        token = .allocate(byteCount: 1, alignment: 1)
    }

    deinit {
        token.deallocate()
    }

    /// Runs `body` with exclusive access to the guarded value.
    @inline(__always)
    package borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        let token = self.token
        return try mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
            kyoto_tsan_acquire(token)
            defer { kyoto_tsan_release(token) }
            return try body(&value)
        }
    }

    /// Tells ThreadSanitizer that the caller was handed work by the last holder of this lock: call it
    /// in a waiter woken through a continuation that a lock holder resumed after unlocking, before the
    /// waiter touches what it was handed. No effect outside ThreadSanitizer builds.
    @inline(__always)
    package borrowing func synchronizeWithLastHolder() {
        kyoto_tsan_acquire(token)
    }
}
