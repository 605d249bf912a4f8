// Channels on a Kyoto runtime: the cooperative budget, and use from a LocalSet.

import Foundation
import KyotoExecutor
import Synchronization
import Testing

@testable import KyotoChannels

final class ChannelTicks: Sendable {
    let ticks = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
}

@Suite("Channels on Kyoto")
struct ChannelsOnKyotoTests {
    @Test("a loop of always-ready recv calls still lets a neighbour task run (budget)")
    func readyRecvLoopYields() throws {
        let runtime = Runtime.multiThread(workers: 1)
        let box = ChannelTicks()
        let advanced = try runtime.blockOn { () async throws -> Int in
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            for i in 0..<1024 { try tx.send(i) }
            let ticker = spawn {
                while !box.stop.load(ordering: .relaxed) {
                    box.ticks.wrappingAdd(1, ordering: .relaxed)
                    await Task.yield()
                }
            }
            await Task.yield()
            let before = box.ticks.load(ordering: .relaxed)
            var sum = 0
            for _ in 0..<1024 { sum += try await rx.recv() ?? 0 }
            let after = box.ticks.load(ordering: .relaxed)
            #expect(sum == 1023 * 1024 / 2)
            box.stop.store(true, ordering: .relaxed)
            try await ticker.value
            return after - before
        }
        #expect(advanced >= 4, "the ticker advanced \(advanced) times during 1024 ready receives")
        #expect(runtime.metrics.budgetForcedYields >= 4)
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("inside unconstrained, 1000 ready receives never yield (Tokio T2.2)")
    func unconstrainedReceivesNeverYield() throws {
        let runtime = Runtime.multiThread(workers: 1)
        let before = runtime.metrics.budgetForcedYields
        let sum = try runtime.blockOn { () async throws -> Int in
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            for i in 0..<1000 { try tx.send(i) }
            return try await unconstrained { () async throws -> Int in
                var sum = 0
                for _ in 0..<1000 { sum += try await rx.recv() ?? 0 }
                return sum
            }
        }
        #expect(sum == 999 * 1000 / 2)
        #expect(runtime.metrics.budgetForcedYields == before, "a receive inside unconstrained yielded")
        // The same loop outside `unconstrained` is forced to yield (about once per 128 receives).
        try runtime.blockOn {
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            for i in 0..<1000 { try tx.send(i) }
            for _ in 0..<1000 { _ = try await rx.recv() }
        }
        #expect(runtime.metrics.budgetForcedYields >= before + 7)
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("timeout ends a loop of receives that always find a message (Tokio T2.6)",
          arguments: [Runtime.Configuration.Flavor.multiThread, .currentThread])
    func timeoutEndsReadyReceiveLoop(_ flavor: Runtime.Configuration.Flavor) throws {
        let runtime = Runtime(Runtime.Configuration(flavor: flavor))
        // The body puts back every message it takes, so the channel never runs dry; the cap only bounds the
        // failure mode (a body that never sees the cancellation returns after `cap` receives).
        let cap = 5_000_000
        let outcome = try runtime.blockOn { () async throws -> String in
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            for i in 0..<100 { try tx.send(i) }
            do {
                let n = try await timeout(after: .milliseconds(1)) { () async throws -> Int in
                    var n = 0
                    while n < cap, let v = try await rx.recv() {
                        try tx.send(v)
                        n += 1
                    }
                    return n
                }
                return "returned after \(n) receives"
            } catch is TimeoutError {
                return "timed out"
            }
        }
        #expect(outcome == "timed out")
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("a cancelled consumer stops at a budget yield and leaves the remaining messages queued",
          arguments: [Runtime.Configuration.Flavor.multiThread, .currentThread])
    func cancelledConsumerStopsAtBudgetYield(_ flavor: Runtime.Configuration.Flavor) throws {
        let runtime = Runtime(Runtime.Configuration(flavor: flavor))
        let total = 1_000
        let (received, error, left, drained) = try runtime.blockOn { () async throws -> (Int, Bool, Int, Int) in
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            for i in 0..<total { try tx.send(i) }
            let consumer = spawn { () async -> (Int, Bool) in
                withUnsafeCurrentTask { $0?.cancel() }
                var received = 0
                do {
                    while try await rx.recv() != nil { received += 1 }
                    return (received, false)
                } catch {
                    return (received, true)
                }
            }
            let (received, error) = try await consumer.value
            let left = rx.count
            var drained = 0
            while (try? rx.tryRecv()) != nil { drained += 1 }
            withExtendedLifetime(tx) {}
            return (received, error, left, drained)
        }
        #expect(error, "recv never threw CancellationError in the cancelled task")
        #expect(received < 128 + 1, "a cancelled task received \(received) messages before stopping")
        #expect(received + left == total && drained == left, "a message was lost: \(received) + \(left) of \(total)")
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("a cancelled broadcast reader and a cancelled watch receiver stop at a budget yield, taking nothing")
    func cancelledBroadcastAndWatchStop() throws {
        let runtime = Runtime.multiThread(workers: 2)
        try runtime.blockOn { () async throws -> Void in
            let (btx, brx) = Broadcast.channel(of: Int.self, capacity: 1_024)
            for i in 0..<1_000 { _ = try btx.send(i) }
            let reader = spawn { () async -> (Int, Broadcast.RecvError?) in
                withUnsafeCurrentTask { $0?.cancel() }
                var n = 0
                do {
                    while true {
                        _ = try await brx.recv()
                        n += 1
                    }
                } catch {
                    return (n, error as? Broadcast.RecvError)
                }
            }
            let (read, error) = try await reader.value
            #expect(error == .cancelled && read < 129, "read \(read), then \(String(describing: error))")
            #expect(brx.count == 1_000 - read, "a value was consumed by the cancelled receive")

            let (wtx, wrx) = Watch.channel(initial: 0)
            let watcher = spawn { () async -> (Int, Watch.RecvError?) in
                withUnsafeCurrentTask { $0?.cancel() }
                var seen = 0
                do {
                    for i in 1...1_000 {
                        try wtx.send(i)
                        try await wrx.changed()
                        seen += 1
                    }
                    return (seen, nil)
                } catch {
                    return (seen, error as? Watch.RecvError)
                }
            }
            let (seen, watchError) = try await watcher.value
            #expect(watchError == .cancelled && seen < 129, "saw \(seen), then \(String(describing: watchError))")
            #expect(try wrx.hasChanged(), "the cancelled changed() marked the latest value seen")
        }
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("a local task's for-await loop over an always-ready channel lets the set's other tasks run (budget)",
          arguments: [Runtime.Configuration.Flavor.multiThread, .currentThread])
    func localForAwaitLoopYields(_ flavor: Runtime.Configuration.Flavor) throws {
        let runtime = flavor == .multiThread ? Runtime.multiThread(workers: 2) : Runtime.currentThread()
        let total = 20_000
        let (seenByNeighbour, consumed) = runtime.blockOn { () async -> (Int, Int) in
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            for i in 0..<total { try? tx.send(i) }
            return await LocalSet().runUntil { set in
                var consumed = 0  // shared by the set's tasks, which all run on its one thread
                var seenByNeighbour = -1
                let consumer = set.spawnLocal {
                    // Each step enters `next(isolation:)`, a switch to the set that Swift re-enqueues there.
                    for await _ in rx {
                        consumed += 1
                        if consumed == total { break }
                    }
                }
                let neighbour = set.spawnLocal {
                    await Task.yield()
                    seenByNeighbour = consumed
                }
                _ = await neighbour.result
                _ = await consumer.result
                return (seenByNeighbour, consumed)
            }
        }
        #expect(consumed == total)
        // The budget forces a yield every 128 receives: the neighbour runs within the first few hundred.
        #expect(seenByNeighbour >= 0 && seenByNeighbour < 1_000,
                "the neighbour ran after \(seenByNeighbour) of \(total) receives")
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("runUntil ends a local task looping on recv() while its sender lives: it returns, the handle is cancelled",
          arguments: [Runtime.Configuration.Flavor.multiThread, .currentThread])
    func localRecvLoopEndsWithTheSet(_ flavor: Runtime.Configuration.Flavor) async {
        // Tokio T4.6. The consumer is woken by a runtime task (on a worker thread in the multi-thread flavor, so
        // from another thread) five times, acknowledges each message, and is then suspended in `recv()` with its
        // sender still alive. The body then returns: runUntil must cancel the consumer, wait for it and return,
        // and the receiver it held must be released (which closes the channel for the sender).
        let runtime = flavor == .multiThread ? Runtime.multiThread(workers: 2) : Runtime.currentThread()
        let outcome = await blockOnOwnThread(runtime, seconds: 20, "runUntil with a local recv loop") {
            () async -> (acked: [Int], result: String, closedForSender: Bool) in
            let (tx, consumer, acked) = await LocalSet().runUntil { set in
                let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
                let (ackTx, ackRx) = Mpsc.unboundedChannel(of: Int.self)
                let consumer = set.spawnLocal {
                    while let v = try await rx.recv() { try? ackTx.send(v) }
                }
                let producer = spawn {
                    for i in 0..<5 {
                        try tx.send(i)
                        await Task.yield()
                    }
                }
                _ = try? await producer.value
                var acked: [Int] = []
                for _ in 0..<5 {
                    if let v = try? await ackRx.recv() { acked.append(v) }
                }
                return (tx, consumer, acked)
            }
            let result: String
            switch await consumer.result {
            case .success: result = "returned"
            case .failure(let e): result = "\(e)"
            }
            // The receiver went with the consumer's closure; `tx` is still alive here.
            let deadline = ContinuousClock.now.advanced(by: .seconds(10))
            while !tx.isClosed && ContinuousClock.now < deadline { await Task.yield() }
            return (acked, result, tx.isClosed)
        }
        #expect(outcome?.acked == [0, 1, 2, 3, 4])
        #expect(outcome?.result == "\(JoinError.cancelled)")
        #expect(outcome?.closedForSender == true, "the cancelled consumer's receiver was never released")
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("local tasks exchange messages over an mpsc channel and resume on the set's thread")
    func channelsInsideLocalSet() throws {
        let runtime = Runtime.multiThread(workers: 2)
        let (received, sameThread) = try runtime.blockOn { () async throws -> ([Int], Bool) in
            try await LocalSet().runUntil { set in
                let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 2)
                var seen: [Int] = []  // shared by the two local tasks below; not Sendable-protected
                var threads = Set<UInt>()
                let consumer = set.spawnLocal {
                    while let v = try await rx.recv() {
                        threads.insert(UInt(bitPattern: Int(bitPattern: pthread_self())))
                        seen.append(v)
                    }
                }
                let producer = set.spawnLocal {
                    for i in 0..<20 { try await tx.send(i) }
                }
                try await producer.value
                _ = consume tx
                try await consumer.value
                return (seen, threads.count == 1)
            }
        }
        #expect(received == Array(0..<20))
        #expect(sameThread)
        runtime.shutdown(timeout: .seconds(5))
    }
}

#if canImport(Glibc)
import Glibc
#endif
