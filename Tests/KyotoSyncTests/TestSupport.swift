import KyotoExecutor
import Synchronization
import Testing

/// A small, fast, seedable generator (SplitMix64), so stress workloads can be replayed from their seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// An append-only log shared between tasks.
final class Log<Element: Sendable>: Sendable {
    private let entries = CheckedMutex<[Element]>([])

    func append(_ element: Element) { entries.withLock { $0.append(element) } }
    var values: [Element] { entries.withLock { $0 } }
    var count: Int { entries.withLock { $0.count } }
}

/// Waits (yielding, never sleeping) until `condition` holds or `timeout` passes. Returns whether it held.
func waitUntil(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        await Task.yield()
    }
    return true
}

/// Runs `body` in a new task and reports whether it finished within `timeout`.
///
/// A body that hangs is left suspended (the test then fails) instead of hanging the test run.
func finishes(within timeout: Duration, _ body: @escaping @Sendable () async -> Void) async -> Bool {
    let race = Race()
    return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
        race.start(continuation, timeout: timeout, body)
    }
}

/// Awaits `task`'s value, or records an issue and returns nil if it does not finish within `timeout`: a
/// wake-up that goes to the wrong waiter, or is lost, then fails the test instead of hanging it. Rethrows the
/// task's error.
func boundedValue<Success: Sendable>(
    of task: Task<Success, any Error>,
    within timeout: Duration = .seconds(10),
    _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws -> Success? {
    guard await finishes(within: timeout, { _ = await task.result }) else {
        Issue.record("timed out waiting for: \(what)", sourceLocation: sourceLocation)
        return nil
    }
    return try await task.value
}

/// First-one-wins between a body and a timer.
private final class Race: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Bool, Never>?
        var timer: Task<Void, Never>?
    }

    private let state = CheckedMutex(State())

    func start(_ continuation: CheckedContinuation<Bool, Never>, timeout: Duration,
               _ body: @escaping @Sendable () async -> Void) {
        state.withLock { $0.continuation = continuation }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.finish(false)
        }
        state.withLock { $0.timer = timer }
        Task {
            await body()
            self.finish(true)
        }
    }

    private func finish(_ finished: Bool) {
        let (continuation, timer) = state.withLock { state in
            defer { state.continuation = nil }
            return (state.continuation, state.timer)
        }
        if finished { timer?.cancel() }
        continuation?.resume(returning: finished)
    }
}

/// A counter with no synchronisation of its own. Only ever touched inside a lock under test, so a lost
/// update reveals a mutual-exclusion failure (and TSan reports a race).
final class UnsyncCounter: @unchecked Sendable {
    var value = 0
}

/// Whether an optional noncopyable value (a lock guard or permit) is absent; a present one is dropped.
func isNil<Value: ~Copyable>(_ value: consuming Value?) -> Bool {
    switch consume value {
    case .none: return true
    case .some: return false
    }
}

/// A shareable atomic counter.
final class AtomicCounter: Sendable {
    private let storage = Atomic<Int>(0)

    // Relaxed: the tests read the total only after joining every task that added to it.
    func add(_ n: Int = 1) { storage.add(n, ordering: .relaxed) }
    var value: Int { storage.load(ordering: .relaxed) }
}
