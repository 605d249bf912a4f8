import KyotoSync
import Testing

/// Each misuse traps with a message naming the mistake; these tests pin the message.
@Suite("Misuse traps", .enabled(if: exitTestsEnabled, "exit tests are skipped under sanitizers"))
struct MisuseExitTests {
    @Test("AsyncMutex.blockingLock inside a task traps, naming the call")
    func blockingLockInTask() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let mutex = AsyncMutex(0)
            let held = mutex.blockingLock()  // the lock is free, but blocking calls in tasks are bugs
            _ = consume held
        }
        #expect(stderr(result).contains(
            "BUG DETECTED: AsyncMutex.blockingLock() called inside a task would block the thread that runs it"))
    }

    @Test("AsyncRwLock.blockingRead inside a task traps, naming the call")
    func blockingReadInTask() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let lock = AsyncRwLock(0)
            _ = lock.blockingRead()  // the lock is free, but blocking calls in tasks are bugs
        }
        #expect(stderr(result).contains(
            "BUG DETECTED: AsyncRwLock.blockingRead() called inside a task would block the thread that runs it"))
    }

    @Test("AsyncRwLock.blockingWrite inside a task traps, naming the call")
    func blockingWriteInTask() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let lock = AsyncRwLock(0)
            _ = lock.blockingWrite()
        }
        #expect(stderr(result).contains(
            "BUG DETECTED: AsyncRwLock.blockingWrite() called inside a task would block the thread that runs it"))
    }

    @Test("a barrier with a negative count traps")
    func barrierNegativeCount() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = AsyncBarrier(count: -1)
        }
        #expect(stderr(result).contains("BUG DETECTED: AsyncBarrier(count: -1): a barrier's count cannot be negative"))
    }

    @Test("acquiring more than maxPermits traps")
    func acquireBeyondMax() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let semaphore = AsyncSemaphore(permits: 1)
            _ = try await semaphore.acquire(AsyncSemaphore.maxPermits + 1)
        }
        #expect(stderr(result).contains(
            "BUG DETECTED: acquire(\(AsyncSemaphore.maxPermits + 1)) can never succeed: "
                + "this semaphore holds at most \(AsyncSemaphore.maxPermits) permits"))
    }

    @Test("acquiring a negative number of permits traps")
    func acquireNegative() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let semaphore = AsyncSemaphore(permits: 1)
            _ = try await semaphore.acquire(-1)
        }
        #expect(stderr(result).contains("BUG DETECTED: acquire(-1): cannot request a negative number of permits"))
    }

    @Test("tryAcquire of more than maxPermits traps")
    func tryAcquireBeyondMax() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let semaphore = AsyncSemaphore(permits: 1)
            _ = try? semaphore.tryAcquire(AsyncSemaphore.maxPermits + 1)
        }
        #expect(stderr(result).contains(
            "BUG DETECTED: tryAcquire(\(AsyncSemaphore.maxPermits + 1)) can never succeed: "
                + "this semaphore holds at most \(AsyncSemaphore.maxPermits) permits"))
    }

    @Test("tryAcquire of a negative number of permits traps")
    func tryAcquireNegative() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = try AsyncSemaphore(permits: 1).tryAcquire(-1)
        }
        #expect(stderr(result).contains("BUG DETECTED: tryAcquire(-1): cannot request a negative number of permits"))
    }

    @Test("forgetting a negative number of permits traps")
    func forgetNegative() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            AsyncSemaphore(permits: 1).forgetPermits(-1)
        }
        #expect(stderr(result).contains("BUG DETECTED: forgetPermits(-1): cannot forget a negative number of permits"))
    }

    @Test("adding a negative number of permits traps")
    func addPermitsNegative() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            AsyncSemaphore(permits: 1).addPermits(-1)
        }
        #expect(stderr(result).contains("BUG DETECTED: addPermits(-1): cannot add a negative number of permits"))
    }

    @Test("adding permits beyond maxPermits traps")
    func addPermitsOverflow() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            AsyncSemaphore(permits: 1).addPermits(AsyncSemaphore.maxPermits)
        }
        #expect(stderr(result).contains(
            "BUG DETECTED: addPermits(\(AsyncSemaphore.maxPermits)) with 1 permits free (or set aside for waiters) "
                + "would exceed the semaphore's limit of \(AsyncSemaphore.maxPermits) permits"))
    }

    @Test("a negative initial permit count traps")
    func negativePermits() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = AsyncSemaphore(permits: -1)
        }
        #expect(stderr(result).contains("BUG DETECTED: AsyncSemaphore(permits: -1) is outside"))
    }

    @Test("AsyncSemaphore(permits: maxPermits) is fine; one more traps (Tokio T6.19)")
    func permitsAboveMaximum() async {
        #expect(AsyncSemaphore(permits: AsyncSemaphore.maxPermits).availablePermits == AsyncSemaphore.maxPermits)
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = AsyncSemaphore(permits: AsyncSemaphore.maxPermits + 1)
        }
        #expect(stderr(result).contains(
            "BUG DETECTED: AsyncSemaphore(permits: \(AsyncSemaphore.maxPermits + 1)) is outside 0...\(AsyncSemaphore.maxPermits)"))
    }

    @Test("an AsyncRwLock with more readers than a semaphore can count traps")
    func rwLockTooManyReaders() async {
        _ = AsyncRwLock(0, maxReaders: AsyncSemaphore.maxPermits)
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = AsyncRwLock(0, maxReaders: AsyncSemaphore.maxPermits + 1)
        }
        #expect(stderr(result).contains(
            "BUG DETECTED: an AsyncRwLock needs between 1 and \(AsyncSemaphore.maxPermits) readers, got \(AsyncSemaphore.maxPermits + 1)"))
    }

    @Test("an AsyncRwLock with 0 readers traps")
    func rwLockZeroReaders() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = AsyncRwLock(0, maxReaders: 0)
        }
        #expect(stderr(result).contains("BUG DETECTED: an AsyncRwLock needs between 1 and"))
    }
}

private func stderr(_ result: ExitTest.Result?) -> String {
    String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}

#if canImport(Glibc)
import Glibc
#endif

/// Exit tests check trap messages, not concurrency; the sanitizer run skips them
/// (`KYOTO_SKIP_EXIT_TESTS=1`), since a child process that traps under ThreadSanitizer can hang the
/// test runner's exit-test monitor.
let exitTestsEnabled = getenv("KYOTO_SKIP_EXIT_TESTS") == nil
