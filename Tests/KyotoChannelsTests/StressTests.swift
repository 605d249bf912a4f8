// Seeded, time-bounded concurrency tests: message conservation through a bounded mpsc channel
// under random cancellation, exact lag counts in a broadcast fan-out, and watch monotonicity.
// Set KYOTO_TEST_SEED to replay a run; sizes shrink under ThreadSanitizer.

import Synchronization
import Testing

@testable import KyotoChannels

@Suite("Stress")
struct StressTests {
    @Test("8 producers through bounded(16) with random cancellation: every sent message arrives once, in order")
    func conservationUnderCancellation() async throws {
        let seed = stressSeed()
        let producers = 8
        let perProducer = isThreadSanitizerEnabled ? 10_000 : 100_000
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 16)
        // received[p] = the sequence numbers received from producer p, in arrival order.
        let outcome = await withDeadline(seconds: 120, "conservation run (seed \(seed))") {
            () -> (sent: [[Bool]], received: [[Int]]) in
            async let consumed: [[Int]] = {
                var received = Array(repeating: [Int](), count: producers)
                for index in received.indices { received[index].reserveCapacity(perProducer) }
                while let message = try? await rx.recv() {
                    received[message >> 32].append(message & 0xFFFF_FFFF)
                }
                return received
            }()
            let sent = await withTaskGroup(of: (Int, [Bool]).self) { group in
                for producer in 0..<producers {
                    group.addTask {
                        var rng = SplitMix64(seed: seed &+ UInt64(producer))
                        var sent = Array(repeating: false, count: perProducer)
                        var next = 0
                        // A cancelled producer (the deadline passed) stops starting chunks.
                        while next < perProducer && !Task.isCancelled {
                            let start = next
                            let end = min(perProducer, start + Int.random(in: 1...2_000, using: &rng))
                            let chunk = Task { () -> (delivered: [Int], failed: Int?) in
                                var delivered: [Int] = []
                                for sequence in start..<end {
                                    do throws(SendError<Int>) {
                                        try await tx.send(producer << 32 | sequence)
                                        delivered.append(sequence)
                                    } catch {
                                        #expect(
                                            error == .cancelled(producer << 32 | sequence),
                                            "producer \(producer) sequence \(sequence); seed \(seed)"
                                        )
                                        return (delivered, sequence)
                                    }
                                }
                                return (delivered, nil)
                            }
                            if Bool.random(using: &rng) {
                                for _ in 0..<Int.random(in: 0..<64, using: &rng) { await Task.yield() }
                                chunk.cancel()
                            }
                            // The chunk is an unstructured task: cancel it with this producer (on the
                            // deadline), or a chunk blocked in send would outlive the test.
                            let (delivered, failed) = await withTaskCancellationHandler {
                                await chunk.value
                            } onCancel: {
                                chunk.cancel()
                            }
                            for sequence in delivered { sent[sequence] = true }
                            // A failed sequence number is skipped: it was not sent.
                            next = failed.map { $0 + 1 } ?? end
                        }
                        return (producer, sent)
                    }
                }
                var sent = Array(repeating: [Bool](), count: producers)
                for await (producer, flags) in group { sent[producer] = flags }
                return sent
            }
            rx.close()
            return (sent, await consumed)
        }
        _ = tx
        guard let outcome else {
            Issue.record("conservation run did not finish; seed \(seed)")
            return
        }
        let cancelledSends = outcome.sent.reduce(0) { total, flags in total + flags.lazy.filter { !$0 }.count }
        #expect(cancelledSends > 0, "no send was cancelled while waiting; seed \(seed)")
        for producer in 0..<producers {
            let received = outcome.received[producer]
            var inOrder = true
            for index in received.indices.dropFirst() where received[index] <= received[index - 1] {
                inOrder = false
                break
            }
            #expect(inOrder, "producer \(producer) messages out of order or duplicated; seed \(seed)")
            let expected = outcome.sent[producer].indices.filter { outcome.sent[producer][$0] }
            #expect(received == expected, "producer \(producer): received != sent; seed \(seed)")
        }
    }

    @Test("broadcast fan-out: 9 fast receivers never lag, the slow one gets exactly lagged(total - capacity)")
    func broadcastSlowReceiverLag() async throws {
        let capacity = 16
        let total = 1_000
        let fastCount = 9
        let (tx, first) = Broadcast.channel(of: Int.self, capacity: capacity)
        var fast = [first]
        for _ in 1..<fastCount { fast.append(tx.subscribe()) }
        let slow = tx.subscribe()
        let (ackTx, ackRx) = Mpsc.unboundedChannel(of: Int.self)
        let fastReceivers = fast
        let lagCounts = await withDeadline(seconds: 60, "broadcast fan-out") { () -> [Int] in
            await withTaskGroup(of: Int.self) { group in
                for receiver in fastReceivers {
                    group.addTask {
                        var lags = 0
                        var expected = 0
                        while expected < total {
                            do throws(Broadcast.RecvError) {
                                let value = try await receiver.recv()
                                if value != expected { return -1 }
                                expected += 1
                                try? ackTx.send(value)
                            } catch {
                                guard case .lagged = error else { return -2 }
                                lags += 1
                            }
                        }
                        return lags
                    }
                }
                // The sender: send value i only after every fast receiver acknowledged i - 1.
                for value in 0..<total {
                    _ = try? tx.send(value)
                    for _ in 0..<fastCount { _ = try? await ackRx.recv() }
                }
                return await group.reduce(into: [Int]()) { $0.append($1) }
            }
        }
        #expect(lagCounts == Array(repeating: 0, count: fastCount))
        _ = consume tx
        await #expect(throws: Broadcast.RecvError.lagged(total - capacity)) { _ = try await slow.recv() }
        for value in (total - capacity)..<total { #expect(try await slow.recv() == value) }
        await #expect(throws: Broadcast.RecvError.closed) { _ = try await slow.recv() }
    }

    @Test("broadcast: the slow receiver's exact sequence is lagged, the retained tail, then closed")
    func broadcastSlowReceiverSequence() async throws {
        let capacity = 16
        let total = 1_000
        let (tx, slow) = Broadcast.channel(of: Int.self, capacity: capacity)
        var fast: [Broadcast.Receiver<Int>] = []
        for _ in 0..<9 { fast.append(tx.subscribe()) }
        for value in 0..<total {
            try tx.send(value)
            for receiver in fast { #expect(try receiver.tryRecv() == value) }
        }
        _ = consume tx
        await #expect(throws: Broadcast.RecvError.lagged(total - capacity)) { _ = try await slow.recv() }
        for value in (total - capacity)..<total { #expect(try await slow.recv() == value) }
        await #expect(throws: Broadcast.RecvError.closed) { _ = try await slow.recv() }
        for receiver in fast {
            await #expect(throws: Broadcast.RecvError.closed) { _ = try await receiver.recv() }
        }
    }

    @Test("watch: a receiver never observes a version older than one it has seen")
    func watchMonotonic() async throws {
        let updates = isThreadSanitizerEnabled ? 5_000 : 50_000
        let (tx, rx) = Watch.channel(initial: 0)
        var receivers = [rx]
        for _ in 0..<3 { receivers.append(tx.subscribe()) }
        let all = receivers
        let violations = await withDeadline(seconds: 60, "watch monotonic") { () -> Int in
            await withTaskGroup(of: Int.self) { group in
                for receiver in all {
                    group.addTask {
                        var last = 0
                        var violations = 0
                        while last < updates {
                            do {
                                try await receiver.changed()
                            } catch {
                                violations += 1
                                break
                            }
                            let seen = receiver.borrowAndUpdate()
                            let peek = receiver.borrow()
                            if seen < last || peek < seen { violations += 1 }
                            last = seen
                        }
                        if receiver.borrow() != updates { violations += 1 }
                        return violations
                    }
                }
                group.addTask {
                    for value in 1...updates { tx.sendReplace(value) }
                    return 0
                }
                return await group.reduce(0, +)
            }
        }
        #expect(violations == 0)
        _ = tx
    }
}
