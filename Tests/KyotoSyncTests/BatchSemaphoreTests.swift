@testable import KyotoSync
import Testing

@Suite("BatchSemaphore")
struct BatchSemaphoreTests {
    @Test("waiters are granted in FIFO order")
    func fifoOrder() async {
        let semaphore = BatchSemaphore(permits: 0)
        let log = Log<Int>()
        var tasks: [Task<Void, any Error>] = []
        for index in 0..<5 {
            tasks.append(Task { try await semaphore.acquire(1); log.append(index) })
            #expect(await waitUntil { semaphore.queuedWaiterCount == index + 1 })
        }
        for index in 0..<5 {
            semaphore.release(1)
            #expect(await waitUntil { log.count == index + 1 })
        }
        #expect(log.values == [0, 1, 2, 3, 4])
        #expect(semaphore.availablePermits == 0 && semaphore.queuedWaiterCount == 0)
    }

    @Test("a large acquire at the head is not overtaken by smaller ones (Tokio T6.14)")
    func largeAcquireNotOvertaken() async throws {
        let semaphore = BatchSemaphore(permits: 5)
        try await semaphore.acquire(1)
        #expect(semaphore.availablePermits == 4)
        let log = Log<String>()
        let five = Task { try await semaphore.acquire(5); log.append("five") }
        #expect(await waitUntil { semaphore.queuedWaiterCount == 1 })
        #expect(semaphore.availablePermits == 0)
        let three = Task { try await semaphore.acquire(3); log.append("three") }
        #expect(await waitUntil { semaphore.queuedWaiterCount == 2 })
        #expect(semaphore.tryAcquire(1) == .noPermits)

        semaphore.release(1)
        _ = try await boundedValue(of: five, "the head request of 5 is granted")
        #expect(semaphore.queuedWaiterCount == 1)
        semaphore.release(1)
        #expect(semaphore.availablePermits == 0 && semaphore.queuedWaiterCount == 1 && log.values == ["five"])
        semaphore.release(2)
        _ = try await boundedValue(of: three, "the request of 3 is granted")
        #expect(log.values == ["five", "three"] && semaphore.availablePermits == 0)
    }

    @Test("cancelling a pending acquire returns its partially assigned permits (Tokio T6.15)")
    func cancelReturnsPermits() async throws {
        let semaphore = BatchSemaphore(permits: 10)
        #expect(semaphore.tryAcquire(4) == .acquired)
        let waiter = Task { try await semaphore.acquire(8) }
        #expect(await waitUntil { semaphore.queuedWaiterCount == 1 })
        #expect(semaphore.availablePermits == 0)
        waiter.cancel()
        await #expect(throws: AcquireError.cancelled) { try await waiter.value }
        #expect(semaphore.availablePermits == 6 && semaphore.queuedWaiterCount == 0)
        #expect(semaphore.tryAcquire(6) == .acquired)
    }

    @Test("added permits go to the queued waiter, never to a barging tryAcquire (Tokio T6.16)")
    func noBarging() async throws {
        let semaphore = BatchSemaphore(permits: 0)
        let waiter = Task { try await semaphore.acquire(2) }
        #expect(await waitUntil { semaphore.queuedWaiterCount == 1 })
        semaphore.release(1)
        #expect(semaphore.availablePermits == 0 && semaphore.tryAcquire(1) == .noPermits)
        semaphore.release(1)
        try await waiter.value
        #expect(semaphore.availablePermits == 0)
    }

    @Test("close wakes waiters with .closed and refuses later acquisitions even with free permits (Tokio T6.17)")
    func closeSemantics() async throws {
        let semaphore = BatchSemaphore(permits: 1)
        let waiters = (0..<3).map { _ in Task { try await semaphore.acquire(2) } }
        #expect(await waitUntil { semaphore.queuedWaiterCount == 3 })
        semaphore.close()
        for waiter in waiters {
            await #expect(throws: AcquireError.closed) { try await waiter.value }
        }
        #expect(semaphore.isClosed && semaphore.availablePermits == 1)
        #expect(semaphore.tryAcquire(1) == .closed)
        await #expect(throws: AcquireError.closed) { try await semaphore.acquire(1) }
        semaphore.release(1)
        #expect(semaphore.availablePermits == 2)
    }

    @Test("cancelling the middle of three waiters keeps the order of the others (Tokio T8.3)")
    func cancelMiddleKeepsOrder() async throws {
        let semaphore = BatchSemaphore(permits: 0)
        let log = Log<Int>()
        var tasks: [Task<Void, any Error>] = []
        for index in 0..<3 {
            tasks.append(Task { try await semaphore.acquire(1); log.append(index) })
            #expect(await waitUntil { semaphore.queuedWaiterCount == index + 1 })
        }
        tasks[1].cancel()
        await #expect(throws: AcquireError.cancelled) { try await tasks[1].value }
        semaphore.release(1)
        _ = try await boundedValue(of: tasks[0], "the first waiter is granted")
        semaphore.release(1)
        _ = try await boundedValue(of: tasks[2], "the third waiter is granted after the middle one left")
        #expect(log.values == [0, 2] && semaphore.availablePermits == 0)
    }

    @Test("a cancelled task that must wait fails at once without queueing; one that need not wait succeeds")
    func cancelledTaskBehaviour() async throws {
        let semaphore = BatchSemaphore(permits: 1)
        let task = Task {
            while !Task.isCancelled { await Task.yield() }  // runs on only after the test cancelled it
            try await semaphore.acquire(1)  // free: succeeds although cancelled
            try await semaphore.acquire(1)  // would wait: refused without queueing
        }
        task.cancel()
        await #expect(throws: AcquireError.cancelled) { try await task.value }
        #expect(semaphore.queuedWaiterCount == 0 && semaphore.availablePermits == 0)
    }

    @Test("acquire(0) succeeds at once; forget removes only free permits")
    func zeroAndForget() async throws {
        let semaphore = BatchSemaphore(permits: 3)
        try await semaphore.acquire(0)
        #expect(semaphore.forget(2) == 2 && semaphore.availablePermits == 1)
        #expect(semaphore.forget(5) == 1 && semaphore.availablePermits == 0)
    }
}
