// Test support: bounded waits (no sleeping to synchronize), seeded randomness, thread inspection.

import CKyoto
import Synchronization
import Testing

@testable import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` and fails the test if it does not finish within `seconds`. Returns at the deadline even when
/// `body` ignores cancellation (see `firstWithin`), so a hang fails the test instead of stalling the run.
func withDeadline<T: Sendable>(
    _ seconds: Int = 30, _ what: String = "operation", sourceLocation: SourceLocation = #_sourceLocation,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    guard let value = try await firstWithin(seconds, body) else {
        Issue.record("\(what) did not finish within \(seconds) s", sourceLocation: sourceLocation)
        throw DeadlineExceeded()
    }
    return value
}

/// `body`'s value (or error), or nil if `seconds` pass first. `body` runs in a task of its own, cancelled
/// when the caller is, or at the deadline; one that ignores cancellation is left behind (a waiter on an event
/// that never comes), which a task group could not do: it waits for every child. Its tasks run on Swift's
/// default executor: do not call this where that executor's threads are all blocked (inside a `blockOn`
/// made from a test, which holds one of them).
func firstWithin<T: Sendable>(_ seconds: Int, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
    let race = DeadlineRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T?, any Error>) in
            race.start(c, seconds: seconds, body)
        }
    } onCancel: {
        race.cancelBody()
    }
}

/// The body and the timer of `firstWithin`: the first to finish resumes the caller and cancels the other.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T?, any Error>?
        var finished = false
        var callerCancelled = false
        var body: Task<Void, Never>?
        var timer: Task<Void, Never>?
    }

    private let state = CheckedMutex(State())

    func start(
        _ c: CheckedContinuation<T?, any Error>, seconds: Int, _ body: @escaping @Sendable () async throws -> T
    ) {
        // The continuation is in place before either task can finish.
        state.withLock { $0.continuation = c }
        let work = Task {
            do { self.finish(.success(try await body())) } catch { self.finish(.failure(error)) }
        }
        let timer = Task {
            try? await Task.sleep(for: .seconds(seconds))
            self.finish(.success(nil))
        }
        let (finished, callerCancelled) = state.withLock { s -> (Bool, Bool) in
            s.body = work
            s.timer = timer
            return (s.finished, s.callerCancelled)
        }
        if finished { timer.cancel() }
        if finished || callerCancelled { work.cancel() }
    }

    /// The first outcome resumes the caller; the other task is cancelled (if `start` has stored it yet, else
    /// `start` cancels it).
    private func finish(_ outcome: Result<T?, any Error>) {
        let (continuation, body, timer) = state.withLock { s -> (CheckedContinuation<T?, any Error>?, Task<Void, Never>?, Task<Void, Never>?) in
            if s.finished { return (nil, nil, nil) }
            s.finished = true
            return (s.continuation.take(), s.body, s.timer)
        }
        guard let continuation else { return }
        body?.cancel()
        timer?.cancel()
        continuation.resume(with: outcome)
    }

    func cancelBody() {
        let body = state.withLock { s -> Task<Void, Never>? in
            s.callerCancelled = true
            return s.body
        }
        body?.cancel()
    }
}

struct DeadlineExceeded: Error {}

/// Runs `runtime.blockOn(body)` on a thread of its own and waits up to `seconds` for it to return. Records an
/// issue and returns nil if it does not (the thread is left blocked: the test has failed), so a test whose
/// failure mode is a hang fails at its deadline instead of stalling the whole run.
func blockOnThread<T: Sendable>(
    _ runtime: Runtime, seconds: Int = 60, _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: sending @escaping () async throws -> T
) async -> T? {
    let result = CheckedMutex<Result<T, any Error>?>(nil)
    let returned = Signal()
    let body = UnsafeSendableBox(body)
    let thread = Platform.spawnThread(stackSize: nil) {
        let r = Result { try runtime.blockOn(body.take()) }
        result.withLock { $0 = r }
        returned.fire()
    }
    guard await returned.wait(seconds: seconds) else {
        Issue.record("\(what): blockOn did not return within \(seconds) s", sourceLocation: sourceLocation)
        thread.detach()
        return nil
    }
    thread.join()
    switch result.withLock({ $0.take() }) {
    case .success(let value)?: return value
    case .failure(let error)?:
        Issue.record("\(what): \(error)", sourceLocation: sourceLocation)
        return nil
    case nil: return nil
    }
}

/// Runs the blocking `body` on a thread of its own and waits up to `seconds` for it to return. Returns its
/// value, or nil if it did not return in time (the thread is left blocked: the caller records the failure).
func onThread<T: Sendable>(seconds: Int, _ body: @escaping @Sendable () -> T) async -> T? {
    let returned = Signal()
    let result = CheckedMutex<T?>(nil)
    let thread = Platform.spawnThread(stackSize: nil) {
        let value = body()
        result.withLock { $0 = value }
        returned.fire()
    }
    guard await returned.wait(seconds: seconds) else {
        thread.detach()
        return nil
    }
    thread.join()
    return result.withLock { $0.take() }
}

/// Hands a `sending` closure to the one thread that runs it.
private final class UnsafeSendableBox<T>: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `value` is taken exactly once, by the thread it was handed to.
    private var value: T?
    init(_ value: sending T) { self.value = value }
    func take() -> T { defer { value = nil }; return value! }
}

/// A flag that can be waited for from async code with a deadline, set from anywhere.
final class Signal: Sendable {
    private let state = CheckedMutex<(set: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.set = true
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in waiters { w.resume() }
    }

    var isSet: Bool { state.withLock { $0.set } }

    /// Waits until the flag is set or `seconds` pass, and returns whether it was set (see `firstWithin`).
    func wait(seconds: Int) async -> Bool {
        (try? await firstWithin(seconds) { await self.wait() }) != nil
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.set { return true }
                s.waiters.append(c)
                return false
            }
            if ready { c.resume() }
        }
    }
}

/// Polls `condition` (every millisecond, off the cooperative pool's threads' way) until it holds or
/// `seconds` pass; returns whether it held.
func until(seconds: Int, _ condition: @escaping @Sendable () -> Bool) async -> Bool {
    await onThread(seconds: seconds + 5) {
        let deadline = Platform.monotonicNanos() + UInt64(seconds) * 1_000_000_000
        while !condition() {
            if Platform.monotonicNanos() > deadline { return false }
            usleep(1_000)
        }
        return true
    } ?? false
}

/// `body` on an OS thread of its own, for tests that act on a runtime while that thread is inside it.
struct TestThread: Sendable {
    private let thread: OSThread
    private let returned = Signal()

    init(_ body: @escaping @Sendable () -> Void) {
        let returned = returned
        thread = Platform.spawnThread(stackSize: nil) {
            body()
            returned.fire()
        }
    }

    /// Waits up to `seconds` for `body` to return and joins the thread. If it does not return in time,
    /// records an issue naming `what`, leaves the thread detached (the test has failed) and returns false.
    func joined(within seconds: Int, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) async -> Bool {
        guard await returned.wait(seconds: seconds) else {
            Issue.record("\(what) did not return within \(seconds) s", sourceLocation: sourceLocation)
            thread.detach()
            return false
        }
        thread.join()
        return true
    }
}

/// A thread-safe counter for tests.
final class TestCounter: Sendable {
    let value = Atomic<Int>(0)
    @discardableResult
    func increment() -> Int { value.wrappingAdd(1, ordering: .relaxed).newValue }
    var current: Int { value.load(ordering: .relaxed) }
}

/// A thread-safe list of values for tests.
final class Recorder<T: Sendable>: Sendable {
    private let items = CheckedMutex<[T]>([])
    func append(_ item: T) { items.withLock { $0.append(item) } }
    var all: [T] { items.withLock { $0 } }
}

/// The name of the calling OS thread (from /proc).
func currentThreadName() -> String {
    (readFile("/proc/thread-self/comm") ?? "").filter { $0 != "\n" }
}

/// Names of all threads of this process.
func processThreadNames() -> [String] {
    var names: [String] = []
    guard let dir = opendir("/proc/self/task") else { return [] }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name.hasPrefix(".") { continue }
        if let comm = readFile("/proc/self/task/\(name)/comm") {
            names.append(comm.filter { $0 != "\n" })
        }
    }
    return names
}

/// CPU time (user + system, in clock ticks) of the threads whose name starts with `prefix`.
func cpuTicks(ofThreadsNamed prefix: String) -> Int {
    var total = 0
    guard let dir = opendir("/proc/self/task") else { return 0 }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if tid.hasPrefix(".") { continue }
        guard let comm = readFile("/proc/self/task/\(tid)/comm"), comm.hasPrefix(prefix),
            let stat = readFile("/proc/self/task/\(tid)/stat"),
            let close = stat.lastIndex(of: ")")
        else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the comm: state(0) ppid(1) ... utime is field 14 overall -> index 11 here; stime index 12.
        if fields.count > 12, let u = Int(fields[11]), let s = Int(fields[12]) { total += u + s }
    }
    return total
}

func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return nil }
    return String(decoding: buffer[0..<n], as: UTF8.self)
}

/// The seed for a randomised test: `KYOTO_TEST_SEED` if set (to replay a failure), else a fresh one. Tests
/// print it in every failure message.
func testSeed() -> UInt64 {
    if let text = getenv("KYOTO_TEST_SEED").map({ String(cString: $0) }), let seed = UInt64(text) { return seed }
    return UInt64.random(in: 1...UInt64.max)
}

/// A small deterministic PRNG (SplitMix64) for seeded stress tests.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Scale factor for heavy tests: `KYOTO_STRESS_SCALE` (default 1; CI's sanitizer run lowers the work).
func stressScale() -> Double {
    if let v = getenv("KYOTO_STRESS_SCALE"), let d = Double(String(cString: v)) { return d }
    return 1
}

/// Both flavors, for tests that apply to each.
let bothFlavors: [Runtime.Configuration.Flavor] = [.multiThread, .currentThread]

func makeRuntime(_ flavor: Runtime.Configuration.Flavor, workers: Int = 2) -> Runtime {
    var c = Runtime.Configuration(flavor: flavor)
    if flavor == .multiThread { c.workerThreads = workers }
    return Runtime(c)
}

/// Spins on the calling thread (yielding the CPU each time) while `condition` holds, for at most `seconds`;
/// returns whether it stopped holding in time. For synchronous tests that wait for an event with a bound.
@discardableResult
func spinWhile(seconds: Int, _ condition: () -> Bool) -> Bool {
    let deadline = Platform.monotonicNanos() + UInt64(seconds) * 1_000_000_000
    while condition() {
        if Platform.monotonicNanos() >= deadline { return false }
        sched_yield()
    }
    return true
}
