// Notify and AsyncBarrier run on the caller's isolation: a call that completes at once costs no executor hop.

import Dispatch
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
