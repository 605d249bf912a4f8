// AsyncMutex.blockingLock and AsyncRwLock.blockingRead/blockingWrite (Tokio's `blocking_lock`,
// `blocking_read`, `blocking_write`): synchronous code on a runtime's blocking threads sharing one lock with
// async tasks.

import Glibc
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
                    // Hold the lock until the blocked thread queues for it (a fixed hold time was missed
                    // under ThreadSanitizer: the lock came and went before the check below saw it held).
                    let queued = await waitUntil { mutex.queuedWaiterCount == 1 }
                    #expect(queued, "blockingLock did not queue behind the holder")
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

@Suite("AsyncRwLock blocking forms")
struct BlockingRwLockTests {
    @Test("blockingWrite from spawnBlocking closures and write() from tasks: no update is lost; readers see whole updates")
    func mixedWriters() async throws {
        let runtime = Runtime.multiThread(workers: 2)
        // Two fields a writer changes together: a reader that saw them differ saw half an update.
        let lock = AsyncRwLock((a: 0, b: 0))
        let rounds = 300
        let torn = Atomic<Int>(0)
        var handles: [JoinHandle<Void>] = []
        for _ in 0..<2 {
            handles.append(runtime.spawnBlocking {
                for _ in 0..<rounds {
                    var held = lock.blockingWrite()
                    held.value.a += 1
                    held.value.b += 1
                }
            })
            handles.append(runtime.spawnBlocking {
                for _ in 0..<rounds {
                    let held = lock.blockingRead()
                    if held.value.a != held.value.b { torn.add(1, ordering: .relaxed) }
                }
            })
        }
        for _ in 0..<2 {
            handles.append(runtime.spawn {
                for _ in 0..<rounds {
                    try await lock.withWriteLock { value in
                        value.a += 1
                        await Task.yield()
                        value.b += 1
                    }
                }
            })
        }
        for h in handles { try await h.value }
        let final = try await lock.withReadLock { $0 }
        #expect(final.a == 4 * rounds && final.b == 4 * rounds)
        #expect(torn.load(ordering: .relaxed) == 0)
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("blockingRead waits behind a writer (queued like read()); readers then share the lock")
    func readWaitsForWriter() async throws {
        let runtime = Runtime.multiThread(workers: 2)
        let lock = AsyncRwLock(0)
        var writer = try await lock.write()
        let readers = (0..<2).map { _ in
            runtime.spawnBlocking { () -> Int in
                let held = lock.blockingRead()
                return held.value
            }
        }
        #expect(await waitUntil { lock.queuedWaiterCount == 2 }, "blockingRead did not queue behind the writer")
        #expect(!readers[0].isFinished && !readers[1].isFinished)
        writer.value = 7
        _ = consume writer
        for r in readers { #expect(try await r.value == 7) }
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("two blockingRead callers hold the lock at the same time")
    func readersShare() async throws {
        let runtime = Runtime.multiThread(workers: 2)
        let lock = AsyncRwLock(5)
        let holding = Atomic<Int>(0)
        let readers = (0..<2).map { _ in
            runtime.spawnBlocking { () -> Bool in
                let held = lock.blockingRead()
                // Relaxed: a count; the answer only needs both increments to land eventually.
                holding.add(1, ordering: .relaxed)
                // Bounded wait for the other reader, which can only get here while this one holds its guard.
                let deadline = ContinuousClock.now.advanced(by: .seconds(10))
                while holding.load(ordering: .relaxed) < 2 {
                    if ContinuousClock.now > deadline { return false }
                    sched_yield()
                }
                return held.value == 5
            }
        }
        for r in readers { #expect(try await r.value, "a blocking reader did not see the other one inside") }
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("blockingWrite waits for a reader, makes later reads wait, then has the lock alone")
    func writeWaitsForReaders() async throws {
        let runtime = Runtime.multiThread(workers: 2)
        let lock = AsyncRwLock([String]())
        let reader = try await lock.read()
        let blocked = runtime.spawnBlocking { () -> [String] in
            var held = lock.blockingWrite()
            held.value.append("blocking")
            return held.value
        }
        #expect(await waitUntil { lock.queuedWaiterCount == 1 }, "blockingWrite did not queue behind the reader")
        // A read after the queued writer waits too (write preference), so tryRead fails.
        #expect(!lock.admitsRead)
        _ = consume reader
        #expect(try await blocked.value == ["blocking"])
        runtime.shutdown(timeout: .seconds(5))
    }
}

extension AsyncRwLock {
    /// Whether `tryRead()` would admit a reader right now (the guard it takes is released at once).
    fileprivate var admitsRead: Bool {
        guard let held = tryRead() else { return false }
        _ = consume held
        return true
    }
}
