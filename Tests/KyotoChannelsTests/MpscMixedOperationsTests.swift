// A bounded mpsc channel driven by every send form (send, send(timeout:), reserve, tryReserve,
// trySend) while the consumer receives with recv / recv(many:) under very short timeouts, then close and
// drain. Checks: every successful send received exactly once, per-producer order, full capacity afterwards.
// Seeded (KYOTO_TEST_SEED), on Runtime.multiThread(workers: 2), bounded by a deadline.

import KyotoExecutor
import Synchronization
import Testing

@testable import KyotoChannels

private func consumeUnderTimeouts(_ rx: Mpsc.Receiver<Int>, seed: UInt64) async -> [Int] {
    var rng = SplitMix64(seed: seed ^ 0xC0FFEE)
    var got: [Int] = []
    var ended = false
    while !ended {
        let micros: Int = Int.random(in: 0...20, using: &rng)
        let many: Bool = Int.random(in: 0..<3, using: &rng) == 0
        do {
            if many {
                let batch: [Int] = try await timeout(after: .microseconds(micros)) { () async throws -> [Int] in
                    try await rx.recv(many: 3)
                }
                if batch.isEmpty { ended = true } else { got.append(contentsOf: batch) }
            } else {
                let one: Int? = try await timeout(after: .microseconds(micros)) { () async throws -> Int? in
                    try await rx.recv()
                }
                if let one { got.append(one) } else { ended = true }
            }
        } catch {
            // TimeoutError or CancellationError: nothing was taken.
        }
    }
    return got
}

private func produceWithEveryForm(_ tx: Mpsc.Sender<Int>, producer p: Int, count: Int, seed: UInt64) async -> [Int] {
    var rng = SplitMix64(seed: seed &+ UInt64(p))
    var ok: [Int] = []
    for i in 0..<count {
        let v: Int = p << 32 | i
        let op: Int = Int.random(in: 0..<5, using: &rng)
        if op == 0 {
            do throws(SendError<Int>) {
                try await tx.send(v)
                ok.append(i)
            } catch {}
        } else if op == 1 {
            let micros: Int = Int.random(in: 0...30, using: &rng)
            do throws(SendTimeoutError<Int>) {
                try await tx.send(v, timeout: .microseconds(micros))
                ok.append(i)
            } catch {
                #expect(error.value == v)
            }
        } else if op == 2 {
            do throws(Mpsc.ReserveError) {
                let permit = try await tx.reserve()
                if Bool.random(using: &rng) { await Task.yield() }
                permit.send(v)
                ok.append(i)
            } catch {}
        } else if op == 3 {
            do throws(Mpsc.TryReserveError) {
                let permit = try tx.tryReserve()
                permit.send(v)
                ok.append(i)
            } catch {
                if Bool.random(using: &rng) {
                    do throws(Mpsc.ReserveError) {
                        let unused = try await tx.reserve()
                        _ = consume unused
                    } catch {}
                }
            }
        } else {
            do throws(TrySendError<Int>) {
                try tx.trySend(v)
                ok.append(i)
            } catch {}
        }
    }
    return ok
}

@Suite("Mpsc mixed operations")
struct MpscMixedOperationsTests {
    @Test("mixed sends and timed-out receives: exactly-once delivery, order, capacity restored")
    func mixed() async throws {
        let seed: UInt64 = stressSeed()
        let runtime = Runtime.multiThread(workers: 2)
        let producers = 4
        let perProducer = isThreadSanitizerEnabled ? 300 : 3_000
        let capacity = 4
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: capacity)
        let result: ([[Int]], [Int])? = await blockOnOwnThread(runtime, seconds: 120, "mixed run, seed \(seed)") {
            () async -> ([[Int]], [Int]) in
            let consumer = spawn { await consumeUnderTimeouts(rx, seed: seed) }
            var sent: [[Int]] = Array(repeating: [], count: producers)
            var handles: [JoinHandle<[Int]>] = []
            for p in 0..<producers {
                handles.append(spawn { await produceWithEveryForm(tx, producer: p, count: perProducer, seed: seed) })
            }
            for p in 0..<producers { sent[p] = (try? await handles[p].value) ?? [] }
            rx.close()
            let received: [Int] = (try? await consumer.value) ?? []
            return (sent, received)
        }
        guard let (sent, received) = result else { return }
        var byProducer: [[Int]] = Array(repeating: [], count: producers)
        for v in received { byProducer[v >> 32].append(v & 0xFFFF_FFFF) }
        for p in 0..<producers {
            #expect(byProducer[p] == sent[p], "producer \(p): received != sent (seed \(seed))")
        }
        #expect(tx.capacity == capacity, "capacity after drain: \(tx.capacity) (seed \(seed))")
        #expect(tx.core.waitingForCapacity.load(ordering: .relaxed) == 0)
        runtime.shutdown(timeout: .seconds(5))
    }
}
