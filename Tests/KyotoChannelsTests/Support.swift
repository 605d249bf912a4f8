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
func withDeadline<T: Sendable>(
    seconds: Double,
    _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: @escaping @Sendable () async -> T
) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await body() }
        group.addTask {
            try? await Task.sleep(for: .seconds(seconds))
            return nil
        }
        let first = await group.next()!
        if first == nil {
            Issue.record("deadline of \(seconds) s exceeded: \(what)", sourceLocation: sourceLocation)
        }
        group.cancelAll()
        return first ?? nil
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
