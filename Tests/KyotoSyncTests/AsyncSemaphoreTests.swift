@testable import KyotoSync
import Testing

@Suite("AsyncSemaphore")
struct AsyncSemaphoreTests {
    @Test("a permit returns its permits when it goes away")
    func permitReturns() async throws {
        let semaphore = AsyncSemaphore(permits: 3)
        do {
            let permit = try await semaphore.acquire(2)
            #expect(permit.count == 2 && semaphore.availablePermits == 1)
            _ = consume permit
        }
        #expect(semaphore.availablePermits == 3)
        #expect(try await semaphore.withPermit(3) { semaphore.availablePermits } == 0)
        #expect(semaphore.availablePermits == 3)
    }

    @Test("a forgotten permit is never returned (Tokio T6.18)")
    func forgetPermit() throws {
        let semaphore = AsyncSemaphore(permits: 10)
        try semaphore.tryAcquire(5).forget()
        #expect(semaphore.availablePermits == 5)
        #expect(semaphore.forgetPermits(7) == 5 && semaphore.availablePermits == 0)
    }

    @Test("tryAcquire reports noPermits and closed")
    func tryAcquireErrors() throws {
        let semaphore = AsyncSemaphore(permits: 1)
        let permit = try semaphore.tryAcquire()
        #expect(throws: AsyncSemaphore.TryAcquireError.noPermits) { try semaphore.tryAcquire().forget() }
        semaphore.close()
        #expect(throws: AsyncSemaphore.TryAcquireError.closed) { try semaphore.tryAcquire().forget() }
        _ = consume permit
        #expect(semaphore.availablePermits == 1 && semaphore.isClosed)
    }

    @Test("close fails waiting and later acquisitions with ClosedError; addPermits still counts")
    func closeFailsWaiters() async throws {
        let semaphore = AsyncSemaphore(permits: 0)
        let waiter = Task { try await semaphore.acquire().forget() }
        #expect(await waitUntil { semaphore.queuedWaiterCount == 1 })
        semaphore.close()
        await #expect(throws: AsyncSemaphore.ClosedError()) { try await waiter.value }
        semaphore.addPermits(2)
        #expect(semaphore.availablePermits == 2)
        await #expect(throws: AsyncSemaphore.ClosedError()) { try await semaphore.withPermit { () } }
    }

    @Test("a cancelled waiter throws CancellationError and the permits it waited for stay put")
    func cancelledWaiter() async throws {
        let semaphore = AsyncSemaphore(permits: 1)
        let waiter = Task { try await semaphore.acquire(2).forget() }
        #expect(await waitUntil { semaphore.queuedWaiterCount == 1 })
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(semaphore.availablePermits == 1)
    }

    @Test("addPermits wakes a waiting acquire")
    func addPermitsWakes() async throws {
        let semaphore = AsyncSemaphore(permits: 0)
        let waiter = Task { try await semaphore.acquire(3).count }
        #expect(await waitUntil { semaphore.queuedWaiterCount == 1 })
        semaphore.addPermits(3)
        #expect(try await waiter.value == 3)
        #expect(semaphore.availablePermits == 3)
    }

    @Test("maxPermits is accepted")
    func maxPermits() {
        #expect(AsyncSemaphore(permits: AsyncSemaphore.maxPermits).availablePermits == AsyncSemaphore.maxPermits)
    }
}
