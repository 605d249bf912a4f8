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
package struct CheckedMutex<Value: ~Copyable>: ~Copyable, Sendable {
    private let mutex: Mutex<Value>

    /// A mutex guarding `initialValue`.
    package init(_ initialValue: consuming sending Value) {
        mutex = Mutex(initialValue)
    }

    /// Runs `body` with exclusive access to the guarded value.
    @inline(__always)
    package borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        try mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
            withUnsafeMutablePointer(to: &value) { kyoto_tsan_acquire(UnsafeMutableRawPointer($0)) }
            defer { withUnsafeMutablePointer(to: &value) { kyoto_tsan_release(UnsafeMutableRawPointer($0)) } }
            return try body(&value)
        }
    }
}
