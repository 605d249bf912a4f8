// Misuse traps, pinned: each runs in a child process that must exit with a failure and print the
// message naming the mistake.

import KyotoExecutor
import Testing

@testable import KyotoChannels

@Suite("Misuse traps", .enabled(if: exitTestsEnabled, "exit tests are skipped under sanitizers"))
struct ExitTests {
    @Test("a bounded mpsc channel with capacity 0 traps")
    func mpscCapacityZero() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Mpsc.channel(of: Int.self, capacity: 0)
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Mpsc.channel(of:capacity:) requires a capacity of at least 1, got 0"))
    }

    @Test("a bounded mpsc channel with a capacity beyond what its semaphore can count traps, naming the call")
    func mpscCapacityTooLarge() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Mpsc.channel(of: Int.self, capacity: Int.max)
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Mpsc.channel(of:capacity:) capacity \(Int.max) is too large (at most \(Int.max >> 3))"))
    }

    @Test("blockingSend inside a task traps, naming the call")
    func blockingSendInTask() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
            try tx.blockingSend(1)  // would go through (there is room), but blocking calls in tasks are bugs
            _ = rx
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Mpsc.Sender.blockingSend(_:) called inside a task would block the thread that runs it"))
    }

    @Test("blockingRecv on a runtime's worker thread (a thread hook there) traps, naming the call")
    func blockingRecvOnWorker() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            try tx.send(1)
            var config = Runtime.Configuration(flavor: .multiThread)
            config.workerThreads = 1
            config.onThreadStart = { _ = rx.blockingRecv() }
            let runtime = Runtime(config)
            runtime.blockOn {}
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Mpsc.UnboundedReceiver.blockingRecv() called on a thread that runs a Kyoto runtime's tasks"))
    }

    @Test("blockingRecv inside a LocalSet run by a blockOn inside blockInPlace traps (the sender is pinned there)")
    func blockingRecvInLocalSetUnderBlockInPlace() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let runtime = Runtime.multiThread(workers: 2)
            let got = try runtime.blockOn { () async throws -> Int? in
                try await spawn { () -> Int? in
                    blockInPlace {
                        runtime.blockOn {
                            await LocalSet().runUntil { set in
                                let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
                                _ = set.spawnLocal { try await tx.send(7) }
                                return rx.blockingRecv()  // would wait for ever: the sender runs on this thread
                            }
                        }
                    }
                }.value
            }
            _ = got
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Mpsc.Receiver.blockingRecv() called inside a LocalSet would block the thread its tasks are pinned to"))
    }

    @Test("blockingRecv in a task after its blockInPlace closure has returned traps")
    func blockingRecvAfterBlockInPlace() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let runtime = Runtime.multiThread(workers: 2)
            runtime.blockOn {
                let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
                try? tx.send(1)
                _ = blockInPlace { rx.blockingRecv() }  // allowed here
                try? tx.send(2)
                _ = rx.blockingRecv()  // a task again (on a former worker's thread): a bug
            }
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Mpsc.UnboundedReceiver.blockingRecv() called inside a task would block the thread that runs it"))
    }

    @Test("Broadcast blockingRecv inside a task traps, naming the call")
    func broadcastBlockingRecvInTask() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 2)
            _ = try tx.send(1)
            _ = try rx.blockingRecv()
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Broadcast.Receiver.blockingRecv() called inside a task would block the thread that runs it"))
    }

    @Test("Oneshot blockingRecv inside a task traps, naming the call")
    func oneshotBlockingRecvInTask() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let (tx, rx) = Oneshot.channel(of: Int.self)
            try tx.send(1)
            _ = try rx.blockingRecv()
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Oneshot.Receiver.blockingRecv() called inside a task would block the thread that runs it"))
    }

    @Test("a broadcast channel with capacity 0 traps")
    func broadcastCapacityZero() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Broadcast.channel(of: Int.self, capacity: 0)
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Broadcast.channel(of:capacity:) requires a capacity of at least 1, got 0"))
    }

    @Test("a broadcast channel whose capacity cannot be rounded up to a power of two traps")
    func broadcastCapacityTooLarge() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Broadcast.channel(of: Int.self, capacity: Int.max)
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Broadcast.channel(of:capacity:) capacity \(Int.max) is too large"))
    }

    @Test("a second oneshot send traps")
    func oneshotSecondSend() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let (tx, rx) = Oneshot.channel(of: Int.self)
            try? tx.send(1)
            try? tx.send(2)
            _ = rx
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Oneshot.Sender.send(_:) was called a second time; a oneshot channel carries one value"))
    }

    @Test("awaiting a oneshot receiver again after it produced its value traps")
    func oneshotAwaitAfterCompletion() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)  // a hang instead of the trap ends the child without the message
            let (tx, rx) = Oneshot.channel(of: Int.self)
            try? tx.send(1)
            _ = try? await rx.value
            _ = try? await rx.value
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: a Oneshot.Receiver was awaited again after it already produced its result"))
    }

    @Test("tryRecv on a oneshot receiver that a task is awaiting traps")
    func oneshotTryRecvWhileAwaited() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)
            let (tx, rx) = Oneshot.channel(of: Int.self)
            let first = Task { try await rx.value }
            while !rx.storage.state.withLock({ $0.hasParkedReceiver }) { await Task.yield() }
            _ = try? rx.tryRecv()
            _ = first
            _ = tx
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: Oneshot.Receiver.tryRecv() called while a task is awaiting the same receiver"))
    }

    @Test("two tasks awaiting one oneshot receiver at once traps")
    func oneshotConcurrentAwait() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)
            let (tx, rx) = Oneshot.channel(of: Int.self)
            let first = Task { try await rx.value }
            while !rx.storage.state.withLock({ $0.hasParkedReceiver }) { await Task.yield() }
            _ = try? await rx.value
            _ = first
            _ = tx
        }
        #expect(stderrText(result).contains("BUG DETECTED: two tasks are awaiting the same Oneshot.Receiver at once"))
    }

    @Test("two tasks receiving from one mpsc receiver at once traps")
    func mpscConcurrentReceive() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            let first = Task { try await rx.recv() }
            while !rx.core.state.withLock({ $0.hasParkedReceiver }) { await Task.yield() }
            _ = try? await rx.recv()
            _ = first
            _ = tx
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: two tasks are receiving from the same mpsc receiver at once; it has a single consumer"))
    }

    @Test("two tasks receiving from one broadcast receiver at once traps")
    func broadcastConcurrentReceive() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)
            let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 4)
            let first = Task { try await rx.recv() }
            while rx.storage.state.withLock({ $0.waiterCount }) == 0 { await Task.yield() }
            _ = try? await rx.recv()
            _ = first
            _ = tx
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: two tasks are receiving from the same Broadcast.Receiver at once; it has a single consumer"))
    }

    @Test("a second task waiting on one watch receiver with changed() while another is parked in changed() traps")
    func watchConcurrentChanged() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)
            let (tx, rx) = Watch.channel(initial: 0)
            let first = Task { try await rx.changed() }
            while rx.storage.state.withLock({ $0.waiterCount }) == 0 { await Task.yield() }
            _ = try? await rx.changed()
            _ = first
            _ = tx
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: two tasks are waiting on the same Watch.Receiver at once (changed() or wait(for:))"))
    }

    @Test("a second task waiting on one watch receiver with wait(for:) while another is parked in changed() traps")
    func watchConcurrentWaitFor() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)
            let (tx, rx) = Watch.channel(initial: 0)
            let first = Task { try await rx.changed() }
            while rx.storage.state.withLock({ $0.waiterCount }) == 0 { await Task.yield() }
            _ = try? await rx.wait { $0 > 0 }
            _ = first
            _ = tx
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: two tasks are waiting on the same Watch.Receiver at once (changed() or wait(for:))"))
    }

    @Test("recv(many:) while another task is parked in recv traps")
    func mpscConcurrentReceiveMany() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)
            let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 4)
            let first = Task { try await rx.recv() }
            while !rx.core.state.withLock({ $0.hasParkedReceiver }) { await Task.yield() }
            _ = try? await rx.recv(many: 4)
            _ = first
            _ = tx
        }
        #expect(stderrText(result).contains(
            "BUG DETECTED: two tasks are receiving from the same mpsc receiver at once; it has a single consumer"))
    }
}

private func stderrText(_ result: ExitTest.Result?) -> String {
    String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}

#if canImport(Glibc)
import Glibc
#endif

/// Exit tests check trap messages, not concurrency; the sanitizer run skips them
/// (`KYOTO_SKIP_EXIT_TESTS=1`), since a child process that traps under ThreadSanitizer can hang the
/// test runner's exit-test monitor.
let exitTestsEnabled = getenv("KYOTO_SKIP_EXIT_TESTS") == nil
