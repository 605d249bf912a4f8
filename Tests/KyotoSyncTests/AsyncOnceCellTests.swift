@testable import KyotoSync
import Testing

@Suite("AsyncOnceCell")
struct AsyncOnceCellTests {
    struct InitFailed: Error {}

    @Test("concurrent getOrInit callers run one initializer and share its value (Tokio T6.31)")
    func oneInitializer() async throws {
        let cell = AsyncOnceCell<Int>()
        let runs = AtomicCounter()
        let values = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<20 {
                group.addTask {
                    try await cell.getOrInit {
                        runs.add()
                        await Task.yield()
                        return index
                    }
                }
            }
            return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
        #expect(values.count == 1 && runs.value == 1)
        #expect(cell.get() == values.first && cell.isInitialized)
    }

    @Test("after a throwing initializer the waiting caller runs its own (Tokio T6.32, T6.35)")
    func failedInitializerIsRetried() async throws {
        let cell = AsyncOnceCell<String>()
        let failing = AsyncSemaphore(permits: 0)
        let first = Task {
            try await cell.getOrInit { () async throws -> String in
                try await failing.acquire().forget()
                throw InitFailed()
            }
        }
        #expect(await waitUntil { failing.queuedWaiterCount == 1 })
        let second = Task { try await cell.getOrInit { "second" } }
        // Queued behind the running initializer, so its failure hands the turn to a waiting caller.
        #expect(await waitUntil { cell.queuedWaiterCount == 1 })
        failing.addPermits(1)
        await #expect(throws: InitFailed.self) { try await first.value }
        #expect(try await boundedValue(of: second, "the waiting caller runs its initializer") == "second")
        #expect(cell.get() == "second")
    }

    @Test("cancelling the initializing task lets the waiting caller initialise (Tokio T6.33)")
    func cancelledInitializerIsRetried() async throws {
        let cell = AsyncOnceCell<Int>()
        let never = AsyncSemaphore(permits: 0)
        let first = Task { try await cell.getOrInit { try await never.acquire().count } }
        #expect(await waitUntil { never.queuedWaiterCount == 1 })
        let second = Task { try await cell.getOrInit { 2 } }
        #expect(await waitUntil { cell.queuedWaiterCount == 1 })
        first.cancel()
        await #expect(throws: CancellationError.self) { try await first.value }
        #expect(try await boundedValue(of: second, "the waiting caller runs its initializer") == 2)
        #expect(cell.get() == 2)
    }

    @Test("set fails while initializing and when already set (Tokio T6.34)")
    func setErrors() async throws {
        let cell = AsyncOnceCell<Int>()
        let release = AsyncSemaphore(permits: 0)
        let initializing = Task { try await cell.getOrInit { try await release.acquire().count } }
        #expect(await waitUntil { release.queuedWaiterCount == 1 })
        #expect {
            try cell.set(5)
        } throws: { error in
            if case AsyncOnceCell<Int>.SetError.initializing(5) = error { return true }
            return false
        }
        release.addPermits(1)
        #expect(try await initializing.value == 1)
        #expect {
            try cell.set(6)
        } throws: { error in
            if case AsyncOnceCell<Int>.SetError.alreadyInitialized(6) = error { return true }
            return false
        }
        #expect(try await cell.getOrInit { 99 } == 1)
    }

    @Test("set on an empty cell initialises it; a cell created with a value is initialised")
    func setAndInitialValue() async throws {
        let cell = AsyncOnceCell<Int>()
        #expect(cell.get() == nil)
        try cell.set(3)
        #expect(try await cell.getOrInit { 4 } == 3)
        let ready = AsyncOnceCell(8)
        #expect(ready.get() == 8 && ready.isInitialized)
        #expect(try await ready.getOrInit { 9 } == 8)
    }

    @Test("a caller waiting for another initializer throws CancellationError when cancelled")
    func waitingCallerCancelled() async throws {
        let cell = AsyncOnceCell<Int>()
        let release = AsyncSemaphore(permits: 0)
        let initializing = Task { try await cell.getOrInit { try await release.acquire().count } }
        #expect(await waitUntil { release.queuedWaiterCount == 1 })
        let waiting = Task { try await cell.getOrInit { 7 } }
        // Cancelled while queued, not before it started waiting (which would fail at once without queueing).
        #expect(await waitUntil { cell.queuedWaiterCount == 1 })
        waiting.cancel()
        await #expect(throws: CancellationError.self) {
            _ = try await boundedValue(of: waiting, "the cancelled waiter leaves the queue")
        }
        #expect(cell.queuedWaiterCount == 0)
        release.addPermits(1)
        #expect(try await initializing.value == 1)
    }
}
