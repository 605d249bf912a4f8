@testable import KyotoSync
import Testing

@Suite("AsyncMutex")
struct AsyncMutexTests {
    @Test("a second lock waits until the guard is dropped (Tokio T6.1)")
    func secondLockWaitsForGuard() async throws {
        let mutex = AsyncMutex(0)
        var held = try await mutex.lock()
        let waiter = Task { try await mutex.withLock { $0 += 1 } }
        #expect(await waitUntil { mutex.queuedWaiterCount == 1 })
        held.value = 10
        _ = consume held
        _ = try await boundedValue(of: waiter, "dropping the guard hands the lock to the waiter")
        #expect(try await mutex.withLock { $0 } == 11)
    }

    @Test("tryLock fails while locked and succeeds after unlock (Tokio T6.2)")
    func tryLock() async throws {
        let mutex = AsyncMutex("a")
        do {
            let held = try await mutex.lock()
            let tryLockRefused = isNil(mutex.tryLock())
            #expect(tryLockRefused)
            _ = consume held
        }
        guard var again = mutex.tryLock() else {
            Issue.record("tryLock must succeed after unlock")
            return
        }
        again.value += "b"
        _ = consume again
        #expect(try await mutex.withLock { $0 } == "ab")
    }

    @Test("tryLock fails while the lock is being handed to a queued waiter")
    func tryLockDuringHandOff() async throws {
        let mutex = AsyncMutex(0)
        let held = try await mutex.lock()
        let gate = AsyncSemaphore(permits: 0)
        let waiter = Task { try await mutex.withLock { _ in try await gate.acquire().forget() } }
        #expect(await waitUntil { mutex.queuedWaiterCount == 1 })
        _ = consume held
        let tryLockRefused = isNil(mutex.tryLock())
        #expect(tryLockRefused)
        gate.addPermits(1)
        try await waiter.value
        let tryLockGranted = !isNil(mutex.tryLock())
        #expect(tryLockGranted)
    }

    @Test("5 tasks x 10 locked increments with a yield inside give exactly 50 (Tokio T6.3)")
    func exclusiveIncrements() async throws {
        let mutex = AsyncMutex(())
        let counter = UnsyncCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<5 {
                group.addTask {
                    for _ in 0..<10 {
                        try await mutex.withLock { _ in
                            let seen = counter.value
                            await Task.yield()
                            counter.value = seen + 1
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(counter.value == 50)
    }

    @Test("a cancelled waiter throws CancellationError and the mutex stays usable (Tokio T6.4)")
    func cancelledWaiter() async throws {
        let mutex = AsyncMutex(0)
        let held = try await mutex.lock()
        let waiter = Task { try await mutex.lock().value }
        #expect(await waitUntil { mutex.queuedWaiterCount == 1 })
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(mutex.queuedWaiterCount == 0)
        _ = consume held
        #expect(try await mutex.withLock { $0 + 1 } == 1)
    }

    @Test("an error thrown inside withLock unlocks and is rethrown unchanged (Tokio T6.5)")
    func errorUnlocks() async throws {
        struct Boom: Error, Equatable {}
        let mutex = AsyncMutex(0)
        await #expect(throws: Boom()) { try await mutex.withLock { _ throws(Boom) in throw Boom() } }
        let tryLockGranted = !isNil(mutex.tryLock())
        #expect(tryLockGranted)
    }

    @Test("withLock runs on the caller's actor and may touch its state")
    func runsOnCallerActor() async throws {
        actor Account {
            var audit: [Int] = []
            let balance = AsyncMutex(100)
            func withdraw(_ amount: Int) async throws {
                try await balance.withLock { value in
                    value -= amount
                    audit.append(value)
                }
            }
        }
        let account = Account()
        try await account.withdraw(30)
        try await account.withdraw(20)
        #expect(await account.audit == [70, 50])
    }
}
