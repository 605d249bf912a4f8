// Channels on a Kyoto runtime: the cooperative budget, and use from a LocalSet.

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
