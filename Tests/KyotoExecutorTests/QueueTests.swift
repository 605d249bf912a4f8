// The scheduler's queues on their own (tokio-semantics.md T1.15-T1.16): overflow of a full local queue
// into the inject queue, steal-half, and the inject queue's FIFO order. The jobs are fake: zeroed blocks the
// size of a job header, which is all the queues touch (the address, and the link in the executor-private
// words); none is ever run.

import Testing

@testable import KyotoExecutor

/// `count` fake jobs, freed when the value goes away.
private final class FakeJobs {
    private let memory: UnsafeMutableRawPointer
    private static let stride = 64  // a job header: object header, 2 private words, flags, ...
    let jobs: [JobRef]

    init(_ count: Int) {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: FakeJobs.stride * count, alignment: 16)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: FakeJobs.stride * count)
        self.memory = memory
        jobs = (0..<count).map { JobRef(raw: memory + $0 * FakeJobs.stride) }
    }

    deinit { memory.deallocate() }

    func index(of job: JobRef) -> Int { (job.raw - memory) / FakeJobs.stride }
}

@Suite("Queues")
struct QueueTests {
    @Test("FIFO: order kept, nothing handed out is still stored, never quite emptied stays bounded")
    func fifoOrderAndStorage() {
        var q = FIFO<Int>()
        var next = 0
        var expected = 0
        // Two in, one out, 1,000 times: the queue is never emptied.
        for _ in 0..<1000 {
            q.push(next); next += 1
            q.push(next); next += 1
            #expect(q.pop() == expected)
            expected += 1
            #expect(q.storedCount == q.count)
        }
        #expect(q.count == 1000)
        while let v = q.pop() {
            #expect(v == expected)
            expected += 1
        }
        #expect(expected == 2000 && q.isEmpty && q.storedCount == 0)
    }

    @Test("256 jobs fit; the 257th overflows once: the oldest 128 plus the new job go to the inject queue")
    func overflowMovesOldestHalfAndNewJob() {
        let fake = FakeJobs(257)
        let queue = LocalQueue()
        let inject = Inject()
        for job in fake.jobs.prefix(256) { #expect(!queue.pushBackOrOverflow(job, inject: inject)) }
        #expect(queue.count == 256)
        #expect(inject.count == 0)
        #expect(queue.pushBackOrOverflow(fake.jobs[256], inject: inject))
        #expect(inject.count == 129)
        #expect(queue.count == 128)
        // Inject: jobs 0...127 (oldest first), then the job that overflowed.
        var injected: [Int] = []
        while let job = inject.pop() { injected.append(fake.index(of: job)) }
        #expect(injected == Array(0..<128) + [256])
        // Local: the newest half, 128...255, in order.
        var kept: [Int] = []
        while let job = queue.pop() { kept.append(fake.index(of: job)) }
        #expect(kept == Array(128..<256))
    }

    @Test("a thief takes half (rounded up) of a victim's queue, oldest first, and returns one to run")
    func stealTakesHalf() {
        let fake = FakeJobs(5)
        let victim = LocalQueue()
        let thief = LocalQueue()
        let inject = Inject()
        for job in fake.jobs.prefix(4) { victim.pushBackOrOverflow(job, inject: inject) }
        var stolen = 0
        let run = victim.stealInto(thief, stolen: &stolen)
        #expect(stolen == 2)
        #expect(victim.count == 2)
        // The thief runs the last job it took and keeps the rest in its queue.
        #expect(run.map(fake.index) == 1)
        #expect(thief.pop().map(fake.index) == 0)
        #expect(thief.pop() == nil)
        // The victim keeps its newest jobs.
        #expect(victim.pop().map(fake.index) == 2)
        #expect(victim.pop().map(fake.index) == 3)
        // Five jobs: ceil(5 / 2) = 3.
        let odd = FakeJobs(5)
        let victim2 = LocalQueue()
        for job in odd.jobs { victim2.pushBackOrOverflow(job, inject: inject) }
        _ = victim2.stealInto(LocalQueue(), stolen: &stolen)
        #expect(stolen == 3)
        #expect(victim2.count == 2)
    }

    @Test("a thief whose own queue is more than half full does not steal")
    func noStealWhenOwnQueueHalfFull() {
        let fake = FakeJobs(140)
        let victim = LocalQueue()
        let thief = LocalQueue()
        let inject = Inject()
        for job in fake.jobs.prefix(10) { victim.pushBackOrOverflow(job, inject: inject) }
        for job in fake.jobs.dropFirst(10).prefix(129) { thief.pushBackOrOverflow(job, inject: inject) }
        var stolen = 0
        #expect(victim.stealInto(thief, stolen: &stolen) == nil)
        #expect(stolen == 0)
        #expect(victim.count == 10)
        // At exactly half full it may steal.
        _ = thief.pop()
        #expect(victim.stealInto(thief, stolen: &stolen) != nil)
        #expect(stolen == 5)
    }

    @Test("the inject queue is FIFO across single and batch pushes, and popBatch takes the oldest first")
    func injectFIFO() {
        let fake = FakeJobs(6)
        let inject = Inject()
        inject.push(fake.jobs[0])
        // A batch chain 1 -> 2 -> 3.
        fake.jobs[1].next = fake.jobs[2]
        fake.jobs[2].next = fake.jobs[3]
        fake.jobs[3].next = nil
        inject.pushBatch(first: fake.jobs[1], last: fake.jobs[3], count: 3)
        inject.push(fake.jobs[4])
        inject.push(fake.jobs[5])
        #expect(inject.count == 6)
        var rest: [Int] = []
        let first = inject.popBatch(limit: 3) { rest.append(fake.index(of: $0)) }
        #expect(first.map(fake.index) == 0)
        #expect(rest == [1, 2])
        var tail: [Int] = []
        while let job = inject.pop() { tail.append(fake.index(of: job)) }
        #expect(tail == [3, 4, 5])
        #expect(inject.isEmpty)
    }
}
