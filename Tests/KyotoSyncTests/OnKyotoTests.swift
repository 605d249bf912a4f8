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

    @Test("inside blockInPlace, blockOn on the same runtime locks an AsyncMutex past a budget and yields (T3.10)",
          arguments: [1, 2])
    func mutexInBlockOnInsideBlockInPlace(workers: Int) async throws {
        // Tokio's `mutex_in_block_in_place` and `yield_now_in_block_in_place`. A competitor spawned just before
        // the hand-off (in the worker's LIFO slot) takes the lock in a loop as well, so some of the blockOn
        // body's locks wait. With one worker both can only run on the thread that took the worker over.
        // 129 rounds each: past one cooperative budget (128).
        let runtime = Runtime.multiThread(workers: workers)
        defer { runtime.shutdown(timeout: .seconds(5)) }
        let mutex = AsyncMutex(0)
        let rounds = 129
        let task = Task { () async throws -> Int in
            try await runtime.spawn { () async throws -> Int in
                let competitor = spawn {
                    for _ in 0..<rounds {
                        try await mutex.withLock { $0 += 1 }
                        await yieldNow()
                    }
                }
                let seenByBody = try blockInPlace { () throws -> Int in
                    try runtime.blockOn { () async throws -> Int in
                        var seen = 0
                        for _ in 0..<rounds {
                            await yieldNow()
                            // Both ways of locking: a guard (unlocked at the end of the `do`) and `withLock`.
                            // The guard only reads: writing through `Guard.value` (its `_modify`) while other
                            // threads call the mutex's methods trips a ThreadSanitizer false positive (Swift's
                            // access instrumentation marks the mutex object's header as written).
                            do {
                                let held = try await mutex.lock()
                                seen = max(seen, held.value)
                            }
                            try await mutex.withLock { $0 += 1 }
                        }
                        return try await mutex.withLock { max(seen, $0) }
                    }
                }
                try await competitor.value
                return seenByBody
            }.value
        }
        guard let seenByBody = try await boundedValue(of: task, within: .seconds(30), "blockOn inside blockInPlace")
        else { return }
        #expect(seenByBody >= rounds && seenByBody <= 2 * rounds)
        #expect(try await mutex.withLock { $0 } == 2 * rounds)
    }
}

final class TickBox: Sendable {
    let ticks = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
}

/// The most tasks inside a section at once.
private final class Gauge: Sendable {
    private let inside = Atomic<Int>(0)
    private let peak = Atomic<Int>(0)
    // Relaxed: a gauge; `maximum` is read after every task was joined.
    func enter() { _ = peak.max(inside.wrappingAdd(1, ordering: .relaxed).newValue, ordering: .relaxed) }
    func leave() { inside.wrappingSubtract(1, ordering: .relaxed) }
    var maximum: Int { peak.load(ordering: .relaxed) }
}

@Suite("AsyncSemaphore.OwnedPermit")
struct OwnedPermitTests {
    @Test("owned permits acquired by the spawner limit the spawned tasks; each returns when its task ends",
          arguments: [Runtime.Configuration.Flavor.multiThread, .currentThread])
    func limitsSpawnedTasks(_ flavor: Runtime.Configuration.Flavor) throws {
        // Tokio's `acquire_owned` pattern: the loop waits while `limit` tasks hold permits.
        let runtime = Runtime(Runtime.Configuration(flavor: flavor))
        defer { runtime.shutdown(timeout: .seconds(5)) }
        let limit = 2
        let gauge = Gauge()
        let (completed, available) = try runtime.blockOn { () async throws -> (Int, Int) in
            let semaphore = AsyncSemaphore(permits: limit)
            let done = JoinSet<Void>()
            for _ in 0..<40 {
                let permit = try await semaphore.acquireOwned()
                done.spawn { [permit] in
                    gauge.enter()
                    for _ in 0..<3 { await Task.yield() }
                    gauge.leave()
                    _ = permit
                }
            }
            var completed = 0
            while let result = await done.nextResult() {
                if case .success = result { completed += 1 }
            }
            // A task's closure (and the permit it captured) is released just after the task ends.
            var spins = 0
            while semaphore.availablePermits < limit && spins < 100_000 {
                await Task.yield()
                spins += 1
            }
            return (completed, semaphore.availablePermits)
        }
        #expect(gauge.maximum <= limit && gauge.maximum >= 1, "up to \(gauge.maximum) tasks held permits at once")
        #expect(completed == 40)
        #expect(available == limit)
    }

    @Test("an owned permit returns its permits when the last reference goes; a cancelled acquireOwned takes none")
    func returnsAndCancels() async throws {
        let semaphore = AsyncSemaphore(permits: 3)
        do {
            var permit: AsyncSemaphore.OwnedPermit? = try await semaphore.acquireOwned(2)
            let copy = permit
            #expect(permit?.count == 2 && semaphore.availablePermits == 1)
            permit = nil
            #expect(semaphore.availablePermits == 1, "released while another reference was alive")
            withExtendedLifetime(copy) {}
        }
        #expect(semaphore.availablePermits == 3)
        let held = try await semaphore.acquireOwned(2)
        let waiter = Task { _ = try await semaphore.acquireOwned(2) }
        #expect(await waitUntil { semaphore.queuedWaiterCount == 1 })
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(semaphore.availablePermits == 1)
        withExtendedLifetime(held) {}
    }
}
