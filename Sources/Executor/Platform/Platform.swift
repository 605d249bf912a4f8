// Platform: the only file of KyotoExecutor that talks to the OS (threads, futex, CPU counts, clocks).
//
// Everything the scheduler needs from the kernel goes through here, so a Darwin port is a change to
// this file and to the C shim only.

import CKyoto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Thin wrappers over the OS.
enum Platform {
    /// The number of CPUs this process may use: the affinity mask, capped by a cgroup v2 `cpu.max`
    /// quota (or v1 `cfs_quota_us`/`cfs_period_us`) when one is set. Never less than 1.
    static func availableParallelism() -> Int {
        var count = Int(kyoto_affinity_cpu_count())
        if count <= 0 { count = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
        if let quota = cgroupCPUQuota() { count = min(count, quota) }
        return max(1, count)
    }

    /// cgroup CPU limit rounded up to whole CPUs, or nil when unlimited or unreadable.
    private static func cgroupCPUQuota() -> Int? {
        if let text = readSmallFile("/sys/fs/cgroup/cpu.max") { return cpuQuota(cgroupV2: text) }
        if let q = readSmallFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
            let p = readSmallFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        {
            return cpuQuota(cgroupV1Quota: q, period: p)
        }
        return nil
    }

    /// The CPU limit of a cgroup v2 `cpu.max` ("<quota> <period>" or "max <period>"), rounded up to whole
    /// CPUs; nil when unlimited or malformed.
    static func cpuQuota(cgroupV2 text: String) -> Int? {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count >= 2, parts[0] != "max", let quota = Double(parts[0]), let period = Double(parts[1]),
            quota > 0, period > 0
        else { return nil }
        return max(1, Int((quota / period).rounded(.up)))
    }

    /// The CPU limit of cgroup v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us` (a quota of -1: unlimited),
    /// rounded up to whole CPUs; nil when unlimited or malformed.
    static func cpuQuota(cgroupV1Quota q: String, period p: String) -> Int? {
        guard let quota = Double(q.trimmingWhitespace()), let period = Double(p.trimmingWhitespace()),
            quota > 0, period > 0
        else { return nil }
        return max(1, Int((quota / period).rounded(.up)))
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// Monotonic time in nanoseconds.
    @inline(__always)
    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Names the calling thread (Linux keeps 15 bytes).
    static func setThreadName(_ name: String) {
        name.withCString { kyoto_set_thread_name($0) }
    }

    /// The kernel thread id of the calling thread.
    static func currentThreadID() -> Int64 { kyoto_gettid() }

    /// The smallest stack a thread may be given (PTHREAD_STACK_MIN).
    static var minimumThreadStackSize: Int { max(16_384, sysconf(Int32(_SC_THREAD_STACK_MIN))) }

    /// Whether the calling thread is the process's main thread (its thread id is the process id).
    static var isProcessMainThread: Bool { kyoto_gettid() == Int64(getpid()) }

    /// The identity of the current task (0 outside any task): the address of its task object. An address is
    /// reused only after its task was freed, so a stored identity names the task that stored it for as long
    /// as that task lives (callers that keep one longer say how they cope).
    static var currentTaskIdentity: UInt {
        withUnsafeCurrentTask { task in task.map { unsafeBitCast($0, to: UInt.self) } ?? 0 }
    }

    /// Starts a joinable OS thread running `body`. Traps if the OS refuses (out of threads is not
    /// something a runtime can recover from at this point).
    static func spawnThread(name: String? = nil, stackSize: Int?, _ body: @escaping @Sendable () -> Void) -> OSThread {
        // The name is set twice: by the parent (so it is visible as soon as this returns) and by the thread
        // itself before it runs `body` (so code on the thread never sees the parent's name in the gap).
        let named: @Sendable () -> Void
        if let name {
            named = {
                Platform.setThreadName(name)
                body()
            }
        } else {
            named = body
        }
        let box = Unmanaged.passRetained(ThreadBody(named)).toOpaque()
        var handle: UInt64 = 0
        let entry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { arg in
            let body = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
            body.run()
            return nil
        }
        let rc: Int32
        if let name {
            rc = name.withCString { kyoto_thread_create(&handle, UInt64(stackSize ?? 0), $0, entry, box) }
        } else {
            rc = kyoto_thread_create(&handle, UInt64(stackSize ?? 0), nil, entry, box)
        }
        kyotoPrecondition(
            rc == 0,
            "Kyoto could not start an OS thread: pthread_create returned \(rc) (\(String(cString: strerror(rc)))); "
                + "check Runtime.Configuration.threadStackSize and the process's thread and memory limits")
        return OSThread(handle: handle)
    }
}

/// A started OS thread that must be joined or detached exactly once.
struct OSThread: Sendable {
    let handle: UInt64
    func join() { _ = kyoto_thread_join(handle) }
    func detach() { _ = kyoto_thread_detach(handle) }
}

private final class ThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        String(self.filter { !$0.isWhitespace })
    }
}

/// A one-thread parking spot built on a futex: Tokio's `Parker`/`Unparker` pair.
///
/// States: `empty` (0), `parked` (1, the owner is in or about to enter futex_wait), `notified` (2, an
/// unpark is pending). `unpark` is idempotent and never blocks; a notification that arrives before
/// `park` makes that `park` return at once (no lost wake-up: the owner only sleeps while the word still
/// reads `parked`, and every `unpark` stores `notified` before calling futex_wake).
final class Parker: @unchecked Sendable {
    // SAFETY: `word` is allocated once, initialised here and freed in deinit; all accesses are atomic
    // (Swift `Atomic` from Swift, raw futex syscalls from C on the same 4 bytes).
    private let word: UnsafeMutablePointer<Atomic<UInt32>>

    private static let empty: UInt32 = 0
    private static let parked: UInt32 = 1
    private static let notified: UInt32 = 2

    init() {
        word = .allocate(capacity: 1)
        word.initialize(to: Atomic(Parker.empty))
    }

    deinit {
        word.deinitialize(count: 1)
        word.deallocate()
    }

    private var rawWord: UnsafeMutablePointer<UInt32> {
        UnsafeMutableRawPointer(word).assumingMemoryBound(to: UInt32.self)
    }

    /// Blocks the calling (owner) thread until `unpark` is called or `timeoutNanos` passes
    /// (nil = no limit). Returns false on time-out.
    @discardableResult
    func park(timeoutNanos: UInt64? = nil) -> Bool {
        // Acquiring: pairs with the releasing exchange in `unpark`, so work published before the
        // unpark is visible once we return.
        if word.pointee.compareExchange(expected: Parker.notified, desired: Parker.empty, ordering: .acquiring)
            .exchanged
        {
            return true
        }
        // Acquiring (relaxed would do on success: only this owner thread writes `empty`); on failure the word
        // reads `notified`, which the exchange below acquires.
        guard
            word.pointee.compareExchange(expected: Parker.empty, desired: Parker.parked, ordering: .acquiring)
                .exchanged
        else {
            // The only other state is `notified`, set between the two exchanges: consume it.
            // Acquiring: pairs with the releasing exchange in `unpark`.
            _ = word.pointee.exchange(Parker.empty, ordering: .acquiring)
            return true
        }
        // Saturating: a timer at the end of time (a deadline near UInt64.max) must not wrap into the past,
        // which made `park` return at once and a time-driving worker spin.
        let deadline = timeoutNanos.map { timeout in
            let (sum, overflow) = Platform.monotonicNanos().addingReportingOverflow(timeout)
            return overflow ? UInt64.max : sum
        }
        while true {
            var remaining: Int64 = -1
            if let deadline {
                let now = Platform.monotonicNanos()
                // Clamped: a wait longer than Int64.max ns is a wait for ever in practice (and a plain
                // conversion traps).
                remaining = now >= deadline ? 0 : Int64(clamping: deadline - now)
            }
            if remaining != 0 {
                _ = kyoto_futex_wait(rawWord, Parker.parked, remaining)
            }
            // Acquiring: pairs with `unpark` (see above).
            if word.pointee.compareExchange(expected: Parker.notified, desired: Parker.empty, ordering: .acquiring)
                .exchanged
            {
                return true
            }
            if let deadline, Platform.monotonicNanos() >= deadline {
                // Leave the parked state; if an unpark raced in, consume it and report a wake-up.
                // Acquiring: pairs with the releasing exchange in `unpark` when this reads `notified`.
                let previous = word.pointee.exchange(Parker.empty, ordering: .acquiring)
                return previous == Parker.notified
            }
            // Spurious wake-up: the word still reads `parked`; wait again.
        }
    }

    /// Wakes the owner if it is parked, or makes its next `park` return at once. Any thread.
    func unpark() {
        // Releasing: publishes everything this thread wrote before (the job it queued) to the owner's
        // acquiring exchange in `park`.
        if word.pointee.exchange(Parker.notified, ordering: .releasing) == Parker.parked {
            _ = kyoto_futex_wake(rawWord, 1)
        }
    }
}

/// Threads waiting for some condition, each on its own `Parker`; whoever changes the condition wakes them
/// all, and each re-checks. The waiting protocol (no lost wake-up): `insert` the parker, THEN check the
/// condition, and park only if it does not hold; a changer makes the condition true, THEN calls
/// `unparkAll`. The lock orders the two: a changer that took it before the insert changed the condition
/// before the waiter's check; one that took it after finds the parker, and an unpark before the park makes
/// the park return at once.
final class ParkerSet: Sendable {
    private let parkers = CheckedMutex<[Parker]>([])

    func insert(_ parker: Parker) { parkers.withLock { $0.append(parker) } }

    func remove(_ parker: Parker) { parkers.withLock { list in list.removeAll { $0 === parker } } }

    /// Unparks every parker in the set (after unlocking).
    func unparkAll() {
        let all = parkers.withLock { $0 }
        for p in all { p.unpark() }
    }
}

/// The calling OS thread's identity (`pthread_self()`), for "is this the thread that ..." checks. `package`:
/// the channels use it too.
@inline(__always)
package func kyotoCurrentThreadIdentity() -> UInt {
    UInt(bitPattern: Int(bitPattern: pthread_self()))
}
