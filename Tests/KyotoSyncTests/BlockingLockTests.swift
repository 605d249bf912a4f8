// AsyncMutex.blockingLock (Tokio's `blocking_lock`): synchronous code on a runtime's blocking threads
// sharing one mutex with async tasks.

import KyotoExecutor
import Synchronization
import Testing

@testable import KyotoSync

@Suite("AsyncMutex.blockingLock")
struct BlockingLockTests {
    @Test("spawnBlocking closures and tasks increment one counter: no update is lost")
    func mixedIncrements() async throws {
        let runtime = Runtime.multiThread(workers: 2)
        let counter = AsyncMutex(0)
        let rounds = 500
        var handles: [JoinHandle<Void>] = []
        for _ in 0..<2 {
            handles.append(runtime.spawnBlocking {
                for _ in 0..<rounds {
                    var held = counter.blockingLock()
                    held.value += 1
                }
            })
        }
        for _ in 0..<4 {
            handles.append(runtime.spawn {
                for _ in 0..<rounds {
                    try await counter.withLock { value in
                        value += 1
                    }
                    await Task.yield()
                }
            })
        }
        for h in handles { try await h.value }
        #expect(try await counter.withLock { $0 } == 6 * rounds)
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("blockingLock waits while a task holds the lock, queued like lock(), and gets it on release")
    func waitsForHolder() async throws {
        let runtime = Runtime.multiThread(workers: 2)
        let mutex = AsyncMutex([String]())
        let held = try await mutex.lock()
        let blocked = runtime.spawnBlocking { () -> [String] in
            var guardHeld = mutex.blockingLock()
            guardHeld.value.append("blocking")
            return guardHeld.value
        }
        #expect(await waitUntil { mutex.queuedWaiterCount == 1 }, "blockingLock did not queue behind the holder")
        #expect(!blocked.isFinished)
        var mine = consume held
        mine.value.append("task")
        _ = consume mine  // unlocks: the blocked thread gets the lock next
        #expect(try await blocked.value == ["task", "blocking"])
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("blockingLock inside a task's blockInPlace closure waits for a task that holds the lock")
    func blockingLockInBlockInPlace() throws {
        let runtime = Runtime.multiThread(workers: 2)
        let mutex = AsyncMutex(0)
        let value = try runtime.blockOn { () async throws -> Int in
            let holder = spawn {
                try await mutex.withLock { value in
                    try await Task.sleep(for: .milliseconds(5))
                    value = 1
                }
            }
            #expect(await waitUntil { mutex.semaphore.availablePermits == 0 }, "the holder never took the lock")
            let seen = blockInPlace { () -> Int in
                var held = mutex.blockingLock()
                held.value += 1
                return held.value
            }
            try await holder.value
            return seen
        }
        #expect(value == 2)
        runtime.shutdown(timeout: .seconds(5))
    }
}
