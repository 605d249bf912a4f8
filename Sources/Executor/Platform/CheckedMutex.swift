// CheckedMutex: the one lock type of Kyoto. It owns the state it guards (reach it with `withLock`).
//
// Why not `Synchronization.Mutex`: on Linux it costs about 70 ns per uncontended lock/unlock on this
// machine (measured 78 ns vs 7 ns for a pthread mutex in the same loop), and ThreadSanitizer cannot see
// its hand-offs (it locks with raw futex syscalls), so every access to guarded state looks like a race.
// A pthread mutex is both faster and intercepted by ThreadSanitizer.
//
// Layout: one allocation holding the `pthread_mutex_t` followed by the guarded value, so the mutex has
// the stable address pthreads require and the value lives inside the lock's storage, not beside it.

import CKyoto

#if canImport(Glibc)
import Glibc
#endif

/// A mutex that owns the state it guards. Non-recursive; never hold it across an `await`.
///
/// `package` and `@usableFromInline`: the channels' inlinable hot paths (specialised in the caller's
/// module for the element type) take it; it is not public API.
@usableFromInline
package struct CheckedMutex<Value: ~Copyable>: ~Copyable, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the value is reached only through `withLock`, which holds the mutex;
    // `storage` itself is immutable. Values are handed in and out as `sending`, as with `Mutex`.
    @usableFromInline
    let storage: UnsafeMutableRawPointer

    @inlinable
    static var valueOffset: Int {
        let size = MemoryLayout<pthread_mutex_t>.stride
        let align = max(MemoryLayout<Value>.alignment, 1)
        return (size + align - 1) / align * align
    }

    @inlinable
    var mutex: UnsafeMutablePointer<pthread_mutex_t> {
        storage.assumingMemoryBound(to: pthread_mutex_t.self)
    }

    @inlinable
    var value: UnsafeMutablePointer<Value> {
        (storage + Self.valueOffset).assumingMemoryBound(to: Value.self)
    }

    /// A mutex guarding `initialValue`.
    @inlinable
    package init(_ initialValue: consuming sending Value) {
        let alignment = max(MemoryLayout<pthread_mutex_t>.alignment, MemoryLayout<Value>.alignment)
        storage = .allocate(byteCount: Self.valueOffset + max(MemoryLayout<Value>.size, 1), alignment: alignment)
        let m = storage.bindMemory(to: pthread_mutex_t.self, capacity: 1)
        m.initialize(to: pthread_mutex_t())
        pthread_mutex_init(m, nil)
        (storage + Self.valueOffset).bindMemory(to: Value.self, capacity: 1).initialize(to: initialValue)
    }

    @inlinable
    deinit {
        value.deinitialize(count: 1)
        pthread_mutex_destroy(mutex)
        storage.deallocate()
    }

    /// Runs `body` with exclusive access to the guarded value.
    @inlinable
    package borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }

    /// Tells ThreadSanitizer that the caller was handed work by the last holder of this lock: call it
    /// in a waiter woken through a continuation that a lock holder resumed after unlocking, before the
    /// waiter touches what it was handed. No effect outside ThreadSanitizer builds.
    @inlinable
    package borrowing func synchronizeWithLastHolder() {
        kyoto_tsan_acquire(UnsafeMutableRawPointer(mutex))
    }
}
