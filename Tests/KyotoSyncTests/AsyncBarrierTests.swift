@testable import KyotoSync
import Testing

@Suite("AsyncBarrier")
struct AsyncBarrierTests {
    @Test("a barrier of 1, or of 0, releases every caller at once as leader (Tokio T6.28)", arguments: [1, 0])
    func countOne(count: Int) async throws {
        let barrier = AsyncBarrier(count: count)
        #expect(barrier.count == 1)
        #expect(try await barrier.wait())
        #expect(try await barrier.wait())
    }

    @Test("with count 2 the first waits and the second arrival leads (Tokio T6.29)")
    func countTwo() async throws {
        let barrier = AsyncBarrier(count: 2)
        let first = Task { try await barrier.wait() }
        #expect(await waitUntil { barrier.queuedWaiterCount == 1 })
        #expect(try await barrier.wait())
        #expect(try await first.value == false)
    }

    @Test("10 tasks over 50 rounds elect exactly one leader per round (Tokio T6.30)")
    func oneLeaderPerRound() async throws {
        let barrier = AsyncBarrier(count: 10)
        let leaders = AtomicCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    for _ in 0..<50 where try await barrier.wait() {
                        leaders.add()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(leaders.value == 50)
    }

    @Test("a cancelled waiter throws and its arrival no longer counts")
    func cancelWithdrawsArrival() async throws {
        let barrier = AsyncBarrier(count: 2)
        let cancelled = Task { try await barrier.wait() }
        #expect(await waitUntil { barrier.queuedWaiterCount == 1 })
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        let follower = Task { try await barrier.wait() }
        #expect(await waitUntil { barrier.queuedWaiterCount == 1 })
        #expect(try await barrier.wait())
        #expect(try await follower.value == false)
    }
}
