// Misuse traps, pinned: each runs in a child process that must exit with a failure.

import Testing

@testable import KyotoChannels

@Suite("Misuse traps", .enabled(if: exitTestsEnabled, "exit tests are skipped under sanitizers"))
struct ExitTests {
    @Test("a bounded mpsc channel with capacity 0 traps")
    func mpscCapacityZero() async {
        await #expect(processExitsWith: .failure) {
            _ = Mpsc.channel(of: Int.self, capacity: 0)
        }
    }

    @Test("a broadcast channel with capacity 0 traps")
    func broadcastCapacityZero() async {
        await #expect(processExitsWith: .failure) {
            _ = Broadcast.channel(of: Int.self, capacity: 0)
        }
    }

    @Test("a second oneshot send traps")
    func oneshotSecondSend() async {
        await #expect(processExitsWith: .failure) {
            let (tx, rx) = Oneshot.channel(of: Int.self)
            try? tx.send(1)
            try? tx.send(2)
            _ = rx
        }
    }

    @Test("awaiting a oneshot receiver again after it produced its value traps")
    func oneshotAwaitAfterCompletion() async {
        await #expect(processExitsWith: .failure) {
            let (tx, rx) = Oneshot.channel(of: Int.self)
            try? tx.send(1)
            _ = try? await rx.value
            _ = try? await rx.value
        }
    }

    @Test("two tasks receiving from one mpsc receiver at once traps")
    func mpscConcurrentReceive() async {
        await #expect(processExitsWith: .failure) {
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            let first = Task { try await rx.recv() }
            while !rx.core.state.withLock({ $0.hasParkedReceiver }) { await Task.yield() }
            _ = try? await rx.recv()
            _ = first
            _ = tx
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Exit tests check trap messages, not concurrency; the sanitizer run skips them
/// (`KYOTO_SKIP_EXIT_TESTS=1`), since a child process that traps under ThreadSanitizer can hang the
/// test runner's exit-test monitor.
let exitTestsEnabled = getenv("KYOTO_SKIP_EXIT_TESTS") == nil
