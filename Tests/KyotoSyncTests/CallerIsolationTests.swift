// Kyoto primitives run on the caller's isolation: a call that completes at once costs no executor hop, and one that waits
// registers from the caller's executor (CancellableWait.swift).

import Dispatch
import KyotoExecutor
import KyotoSync
import Synchronization
import Testing

@Suite("Caller isolation")
struct CallerIsolationTests {
    @Test("a ready notified() and a barrier of one complete inside an actor without leaving its executor")
    func noHopWhenReady() async throws {
        let actor = CountedActor()
        let notify = Notify()
        notify.notifyOne()  // a stored permit: notified() completes without waiting
        let extraEnqueues = try await actor.run(notify, AsyncBarrier(count: 1))
        // A plain (not nonisolated(nonsending)) async call hops off the actor and back, and so does a
        // continuation resumed inside its own closure: one more enqueue on the actor's executor per call.
        #expect(extraEnqueues == 0)
    }

    @Test("a task that must wait for a lock queues from its caller's executor: in a LocalSet on a multi-thread runtime, the mutex serves callers in call order (also inside unconstrained)",
          arguments: [false, true])
    func waitingLockQueuesOnCallersExecutor(insideUnconstrained: Bool) throws {
        let runtime = Runtime.multiThread(workers: 2)
        let mismatches = runtime.blockOn { () async -> Int in
            await LocalSet().runUntil { set in
                var mismatches = 0
                for _ in 0..<20 {
                    let mutex = AsyncMutex(0)
                    var calls: [Int] = []  // shared by the set's tasks, which all run on its one thread
                    var holders: [Int] = []
                    var handles: [LocalJoinHandle<Void>] = []
                    for t in 0..<5 {
                        handles.append(set.spawnLocal {
                            for _ in 0..<10 {
                                calls.append(t)
                                if insideUnconstrained {
                                    try? await unconstrained {
                                        try await mutex.withLock { _ in
                                            holders.append(t)
                                            await Task.yield()
                                        }
                                    }
                                } else {
                                    try? await mutex.withLock { _ in
                                        holders.append(t)
                                        await Task.yield()
                                    }
                                }
                            }
                        })
                    }
                    for h in handles { _ = await h.result }
                    if calls != holders { mismatches += 1 }
                }
                return mismatches
            }
        }
        // Before, a waiter's registration ran on a worker thread one hop later, and the set's other tasks
        // that locked in between went first (13 of 20 rounds; inside `unconstrained`, whose task-local
        // binding's closure also left the caller's isolation, 13 of 20 with that fixed alone).
        #expect(mismatches == 0, "\(mismatches) of 20 rounds served the lock out of call order")
        runtime.shutdown(timeout: .seconds(5))
    }
}

/// A serial executor that counts the jobs enqueued on it.
private final class CountingSerialExecutor: SerialExecutor, Sendable {
    let enqueued = Atomic<Int>(0)
    private let queue = DispatchQueue(label: "counting-serial-executor")

    func enqueue(_ job: consuming ExecutorJob) {
        // Relaxed: a count read by the same actor's code, which this executor's queue orders after the enqueue.
        enqueued.add(1, ordering: .relaxed)
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
    }
}

/// An actor on a `CountingSerialExecutor`.
private actor CountedActor {
    private let executor = CountingSerialExecutor()

    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Awaits `notify` and `barrier` and returns how many jobs were enqueued on this actor meanwhile.
    func run(_ notify: Notify, _ barrier: AsyncBarrier) async throws -> Int {
        let before = executor.enqueued.load(ordering: .relaxed)
        try await notify.notified()
        _ = try await barrier.wait()
        return executor.enqueued.load(ordering: .relaxed) - before
    }
}
