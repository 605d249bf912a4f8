// The run queues under real concurrency: two owner threads push in bursts (overflowing into a shared inject
// queue), pop, steal half of each other's queue, and take from the inject queue singly and in batches. Every
// job must come out exactly once. Fake jobs (zeroed 64-byte blocks) are never run; only their addresses move.
// Seeded (KYOTO_TEST_SEED replays a run); sized down with KYOTO_STRESS_SCALE.

import Synchronization
import Testing

@testable import KyotoExecutor

/// Zeroed memory standing in for jobs: the queues only store addresses and write the intrusive link.
private final class FakeJobs: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the block is written only by the queues, through the job handed to them,
    // and each job is owned by one thread at a time (what the test checks).
    private let memory: UnsafeMutableRawPointer
    private static let stride = 64

    init(count: Int) {
        memory = UnsafeMutableRawPointer.allocate(byteCount: FakeJobs.stride * count, alignment: 16)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: FakeJobs.stride * count)
    }

    deinit { memory.deallocate() }

    func job(_ index: Int) -> JobRef { JobRef(raw: memory + index * FakeJobs.stride) }
    func index(of job: JobRef) -> Int { (job.raw - memory) / FakeJobs.stride }
}

/// One owner thread's record of the jobs it took, read by the test after joining the thread.
private final class TakenList: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): written by its owner thread only, read after that thread was joined.
    var indices: [Int] = []
}

@Suite("Run queues under concurrency")
struct QueueRaceTests {
    @Test("two owners push, overflow, pop and steal from each other: every job is taken exactly once")
    func exactlyOnceUnderSteals() {
        let seed = testSeed()
        let perOwner = max(2_000, Int(200_000 * stressScale()))
        let total = 2 * perOwner
        let jobs = FakeJobs(count: total)
        let queues = [LocalQueue(), LocalQueue()]
        let inject = Inject()
        let taken = Atomic<Int>(0)
        let lists = [TakenList(), TakenList()]
        let deadline = Platform.monotonicNanos() + 30_000_000_000
        let threads = (0..<2).map { owner in
            Platform.spawnThread(stackSize: nil) {
                var rng = SeededRandom(seed: seed &+ UInt64(owner))
                let mine = queues[owner]
                let other = queues[1 - owner]
                var next = 0
                var got: [Int] = []
                got.reserveCapacity(total)
                func record(_ job: JobRef) {
                    got.append(jobs.index(of: job))
                    // Relaxed: a progress count for the loop condition; the lists are read after the joins.
                    taken.add(1, ordering: .relaxed)
                }
                while taken.load(ordering: .relaxed) < total && Platform.monotonicNanos() < deadline {
                    // Bursts of up to 300 overflow the 256-slot ring into the inject queue.
                    let burst = Int.random(in: 1...300, using: &rng)
                    for _ in 0..<burst where next < perOwner {
                        mine.pushBackOrOverflow(jobs.job(owner * perOwner + next), inject: inject)
                        next += 1
                    }
                    for _ in 0..<Int.random(in: 0..<200, using: &rng) {
                        guard let job = mine.pop() else { break }
                        record(job)
                    }
                    var stolen = 0
                    if Bool.random(using: &rng), let job = other.stealInto(mine, stolen: &stolen) { record(job) }
                    if Int.random(in: 0..<4, using: &rng) == 0, let job = inject.pop() { record(job) }
                    if Int.random(in: 0..<8, using: &rng) == 0 {
                        if let job = inject.popBatch(limit: 16, into: { mine.pushBackOrOverflow($0, inject: inject) }) {
                            record(job)
                        }
                    }
                    if next == perOwner {
                        while let job = mine.pop() { record(job) }
                        while let job = inject.pop() { record(job) }
                    }
                }
                lists[owner].indices = got
            }
        }
        for thread in threads { thread.join() }
        var seen = [UInt8](repeating: 0, count: total)
        var duplicates = 0
        for list in lists {
            for index in list.indices {
                if seen[index] != 0 { duplicates += 1 }
                seen[index] &+= 1
            }
        }
        let missing = seen.lazy.filter { $0 == 0 }.count
        #expect(duplicates == 0 && missing == 0, "seed \(seed): \(duplicates) taken twice, \(missing) never taken")
    }
}
