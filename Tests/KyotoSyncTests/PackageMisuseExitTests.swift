@testable import KyotoSync
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Misuse of the package-level semaphore core, which the mpsc channel and the locks build on.
@Suite("BatchSemaphore misuse traps", .enabled(if: exitTestsEnabled, "exit tests are skipped under sanitizers"))
struct PackageMisuseExitTests {
    @Test("releasing more permits than were acquired traps when it exceeds the limit")
    func releaseBeyondLimit() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            BatchSemaphore(permits: 1, limit: 1).release(1)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("BUG DETECTED: released 1 permits while 1 were free, exceeding the limit of 1"))
    }

    @Test("releasing beyond the limit while waiters are queued traps too")
    func releaseBeyondLimitWithWaiters() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)  // a hang instead of the trap ends the child without the message
            let semaphore = BatchSemaphore(permits: 1, limit: 2)
            let waiter = Task { try await semaphore.acquire(2) }
            while semaphore.queuedWaiterCount == 0 { await Task.yield() }
            semaphore.release(2)
            _ = waiter
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("BUG DETECTED: released 2 permits while 1 were free, exceeding the limit of 2"))
    }

    @Test("a negative release traps")
    func negativeRelease() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            BatchSemaphore(permits: 1).release(-1)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("BUG DETECTED: release(-1): cannot release a negative number of permits"))
    }
}
