// The primitives on a Kyoto runtime: the cooperative budget makes a loop of ready acquisitions yield.

import KyotoExecutor
import Synchronization
import Testing

@testable import KyotoSync

@Suite("Primitives on Kyoto")
struct OnKyotoTests {
    @Test("a loop of uncontended locks still lets a neighbour task run (budget)")
    func uncontendedLockLoopYields() throws {
        let runtime = Runtime.multiThread(workers: 1)
        let box = TickBox()
        let advanced = try runtime.blockOn { () async throws -> Int in
            let ticker = spawn {
                while !box.stop.load(ordering: .relaxed) {
                    box.ticks.wrappingAdd(1, ordering: .relaxed)
                    await Task.yield()
                }
            }
            await Task.yield()
            let mutex = AsyncMutex(0)
            let before = box.ticks.load(ordering: .relaxed)
            for _ in 0..<1024 { try await mutex.withLock { $0 += 1 } }
            let after = box.ticks.load(ordering: .relaxed)
            box.stop.store(true, ordering: .relaxed)
            try await ticker.value
            return after - before
        }
        #expect(advanced >= 4, "the ticker advanced \(advanced) times during 1024 uncontended locks")
        #expect(runtime.metrics.budgetForcedYields >= 4)
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("a contended acquire spins only where the holder can run elsewhere, and only for one permit")
    func spinPolicy() throws {
        // Writers and large requests queue at once (writer preference and head-of-line order hold from the
        // call); a task on a current-thread or one-worker runtime does not spin, since the holder is another
        // task of that runtime and cannot release while the caller spins.
        #expect(BatchSemaphore.spins(request: 1, spinningMayHelp: true))
        #expect(!BatchSemaphore.spins(request: 2, spinningMayHelp: true))
        #expect(!BatchSemaphore.spins(request: 1, spinningMayHelp: false))
        #expect(_spinningMayHelp(), "a thread that is not Kyoto's cannot tell where the holder runs")
        let single = Runtime.currentThread()
        #expect(try single.blockOn { () async throws -> Bool in _spinningMayHelp() } == false)
        single.shutdown(timeout: .seconds(5))
        let inLocalSet = Runtime.multiThread(workers: 2)
        #expect(try inLocalSet.blockOn { () async throws -> Bool in await LocalSet().runUntil { _ in _spinningMayHelp() } } == false,
            "a LocalSet's thread: the holder may be another task of the set")
        inLocalSet.shutdown(timeout: .seconds(5))
        for (workers, expected) in [(1, false), (2, true)] {
            let runtime = Runtime.multiThread(workers: workers)
            let onWorker = try runtime.blockOn { () async throws -> Bool in try await spawn { _spinningMayHelp() }.value }
            #expect(onWorker == expected, "\(workers) worker(s)")
            runtime.shutdown(timeout: .seconds(5))
        }
    }

    @Test("mutual exclusion holds for tasks on a 2-worker runtime")
    func mutualExclusionOnKyoto() throws {
        let runtime = Runtime.multiThread(workers: 2)
        let total = try runtime.blockOn { () async throws -> Int in
            let mutex = AsyncMutex(0)
            var handles: [JoinHandle<Void>] = []
            for _ in 0..<8 {
                handles.append(spawn { for _ in 0..<1000 { try await mutex.withLock { $0 += 1 } } })
            }
            for h in handles { try await h.value }
            return try await mutex.withLock { $0 }
        }
        #expect(total == 8000)
        runtime.shutdown(timeout: .seconds(5))
    }
}

final class TickBox: Sendable {
    let ticks = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
}
