@testable import KyotoSync
import Testing

@Suite("AsyncRwLock")
struct AsyncRwLockTests {
    @Test("two readers hold the lock together (Tokio T6.7)")
    func readersShare() async throws {
        let lock = AsyncRwLock(5)
        let first = try await lock.read()
        let second = try await lock.read()
        #expect(first.value + second.value == 10)
        let tryWriteRefused = isNil(lock.tryWrite())
        #expect(tryWriteRefused)
    }

    @Test("a waiting writer blocks new readers and tryRead; dropping it lets them in (Tokio T6.8)")
    func waitingWriterBlocksReaders() async throws {
        let lock = AsyncRwLock(0)
        let reader = try await lock.read()
        let writer = Task { try await lock.withWriteLock { $0 += 1 } }
        #expect(await waitUntil { lock.queuedWaiterCount == 1 })
        let tryReadRefused = isNil(lock.tryRead())
        #expect(tryReadRefused)
        let lateReader = Task { try await lock.withReadLock { $0 } }
        #expect(await waitUntil { lock.queuedWaiterCount == 2 })

        writer.cancel()
        await #expect(throws: CancellationError.self) { try await writer.value }
        #expect(try await lateReader.value == 0)
        let tryReadGranted = !isNil(lock.tryRead())
        #expect(tryReadGranted)
        _ = consume reader
    }

    @Test("with maxReaders 4 the fifth reader waits until one leaves (Tokio T6.9)")
    func maxReaders() async throws {
        let lock = AsyncRwLock("v", maxReaders: 4)
        var guards: [Task<Void, any Error>] = []
        let release = AsyncSemaphore(permits: 0)
        for _ in 0..<4 {
            guards.append(Task { try await lock.withReadLock { _ in try await release.acquire().forget() } })
        }
        #expect(await waitUntil { release.queuedWaiterCount == 4 })
        let tryReadRefused = isNil(lock.tryRead())
        #expect(tryReadRefused)
        let fifth = Task { try await lock.withReadLock { $0 } }
        #expect(await waitUntil { lock.queuedWaiterCount == 1 })
        release.addPermits(1)
        #expect(try await fifth.value == "v")
        release.addPermits(3)
        for task in guards { try await task.value }
    }

    @Test("tryWrite fails with a live reader, tryRead fails with a live writer (Tokio T6.11)")
    func tryVariants() async throws {
        let lock = AsyncRwLock(1)
        do {
            guard let reader = lock.tryRead() else {
                Issue.record("tryRead must succeed on a free lock")
                return
            }
            let tryWriteRefused = isNil(lock.tryWrite())
            #expect(tryWriteRefused)
            _ = consume reader
        }
        guard var writer = lock.tryWrite() else {
            Issue.record("tryWrite must succeed once the reader left")
            return
        }
        let tryReadRefused = isNil(lock.tryRead())
        #expect(tryReadRefused)
        writer.value = 2
        _ = consume writer
        guard let reader = lock.tryRead() else {
            Issue.record("tryRead must succeed once the writer left")
            return
        }
        #expect(reader.value == 2)
    }

    @Test("writers are served in queue order")
    func writersInOrder() async throws {
        let lock = AsyncRwLock([Int]())
        let held = try await lock.write()
        var writers: [Task<Void, any Error>] = []
        for index in 0..<4 {
            writers.append(Task { try await lock.withWriteLock { $0.append(index) } })
            #expect(await waitUntil { lock.queuedWaiterCount == index + 1 })
        }
        _ = consume held
        for writer in writers { try await writer.value }
        #expect(try await lock.withReadLock { $0 } == [0, 1, 2, 3])
    }

    @Test("downgrade keeps the old value visible and a waiting writer waits for the reader (Tokio T6.12)")
    func downgrade() async throws {
        let lock = AsyncRwLock(1)
        var writeGuard = try await lock.write()
        writeGuard.value = 2
        let writer = Task { try await lock.withWriteLock { $0 = 3 } }
        #expect(await waitUntil { lock.queuedWaiterCount == 1 })
        let readGuard = writeGuard.downgrade()
        #expect(readGuard.value == 2)
        let tryReadRefused = isNil(lock.tryRead())
        #expect(lock.queuedWaiterCount == 1 && tryReadRefused)
        _ = consume readGuard
        try await writer.value
        #expect(try await lock.withReadLock { $0 } == 3)
    }

    @Test("downgrade lets queued readers in")
    func downgradeAdmitsReaders() async throws {
        let lock = AsyncRwLock(7)
        let writeGuard = try await lock.write()
        let reader = Task { try await lock.withReadLock { $0 } }
        #expect(await waitUntil { lock.queuedWaiterCount == 1 })
        let readGuard = writeGuard.downgrade()
        #expect(try await reader.value == 7)
        _ = consume readGuard
        let tryWriteGranted = !isNil(lock.tryWrite())
        #expect(tryWriteGranted)
    }
}
