// Test helpers: bounded waiting on conditions, a seeded random generator, and sanitizer detection.

import KyotoExecutor
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Waits (yielding, never sleeping) until `condition` holds; records an issue after `seconds`.
func waitUntil(
    _ what: String,
    seconds: Double = 10,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () -> Bool
) async {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline {
            Issue.record("timed out waiting for: \(what)", sourceLocation: sourceLocation)
            return
        }
        await Task.yield()
    }
}

/// Runs `body`, cancelling it and recording an issue if it does not finish within `seconds`.
///
/// The body runs in its own unstructured task, raced against a timer: on the deadline this returns nil
/// at once (after cancelling the body's task) even if the body ignores the cancellation, so a hung body
/// fails the test instead of hanging it. A body that does not finish is left behind, suspended.
func withDeadline<T: Sendable>(
    seconds: Double,
    _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: @escaping @Sendable () async -> T
) async -> T? {
    let race = DeadlineRace<T>()
    let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
        race.start(continuation, seconds: seconds, body)
    }
    if outcome == nil {
        Issue.record("deadline of \(seconds) s exceeded: \(what)", sourceLocation: sourceLocation)
    }
    return outcome
}

/// First-one-wins between a body and a timer: whichever finishes first resumes the continuation (once)
/// and cancels the other.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T?, Never>?
        var body: Task<Void, Never>?
        var timer: Task<Void, Never>?
    }

    private let state = CheckedMutex(State())

    func start(_ continuation: CheckedContinuation<T?, Never>, seconds: Double, _ body: @escaping @Sendable () async -> T) {
        // Both tasks are created under the lock, so `finish` (which takes it) always sees them.
        state.withLock { state in
            state.continuation = continuation
            state.timer = Task {
                try? await Task.sleep(for: .seconds(seconds))
                self.finish(nil)
            }
            state.body = Task {
                let value = await body()
                self.finish(value)
            }
        }
    }

    /// `value` is the body's result, or nil when the timer fired first.
    private func finish(_ value: T?) {
        let (continuation, other) = state.withLock { state in
            defer { state.continuation = nil }
            return (state.continuation, value == nil ? state.body : state.timer)
        }
        guard let continuation else { return }
        other?.cancel()
        continuation.resume(returning: value)
    }
}

/// SplitMix64: a small, seedable generator so stress runs can be replayed.
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

/// The seed for a stress test: `KYOTO_TEST_SEED` if set, else a fresh random one.
func stressSeed() -> UInt64 {
    if let text = ProcessInfo.processInfo.environment["KYOTO_TEST_SEED"], let seed = UInt64(text) {
        return seed
    }
    return UInt64.random(in: 0...UInt64.max)
}

/// Whether this process runs under ThreadSanitizer (stress sizes are reduced then).
let isThreadSanitizerEnabled: Bool = {
    #if canImport(Glibc)
    return dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil
    #else
    return false
    #endif
}()

/// A thread-safe counter for values whose deinitialization tests observe.
final class DropCounter: Sendable {
    private let count = CheckedMutex(0)

    var value: Int { count.withLock { $0 } }

    func increment() { count.withLock { $0 += 1 } }
}

/// A message that counts its own deinitialization.
final class Tracked: Sendable {
    let id: Int
    let counter: DropCounter

    init(_ id: Int, _ counter: DropCounter) {
        self.id = id
        self.counter = counter
    }

    deinit { counter.increment() }
}

/// Runs `body` on a new plain thread (not one of Swift's or Kyoto's); `result(seconds:)` awaits it without
/// blocking the awaiting task's thread.
final class PlainThread<T: Sendable>: Sendable {
    private let state = Mutex<(result: T?, waiter: CheckedContinuation<T, Never>?)>((nil, nil))

    init(_ body: @escaping @Sendable () -> T) {
        Thread.detachNewThread { [self] in
            let value = body()
            let waiter = state.withLock { s -> CheckedContinuation<T, Never>? in
                s.result = value
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: value)
        }
    }

    /// The thread's result; nil (and an issue recorded) if it has not finished within `seconds`.
    func result(seconds: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) async -> T? {
        await withDeadline(seconds: seconds, what, sourceLocation: sourceLocation) {
            await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
                let ready = self.state.withLock { s -> T? in
                    if s.result == nil { s.waiter = c }
                    return s.result
                }
                if let ready { c.resume(returning: ready) }
            }
        }
    }
}

/// `runtime.blockOn(body)` on a thread of its own, so the set it drives runs there. Returns nil (and records an
/// issue) if it does not return within `seconds`; the thread is then left blocked (the test has failed).
func blockOnOwnThread<T: Sendable>(
    _ runtime: Runtime, seconds: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: @escaping @Sendable () async -> T
) async -> T? {
    await PlainThread { runtime.blockOn(body) }.result(seconds: seconds, what, sourceLocation: sourceLocation)
}
