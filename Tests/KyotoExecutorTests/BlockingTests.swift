// spawnBlocking and blockInPlace: the cases of tokio-semantics.md §3 that apply to Swift.

import Synchronization
import Testing

@testable import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

/// A gate blocking OS threads (not tasks) until opened, with a deadline so a bug cannot hang the suite.
final class ThreadGate: Sendable {
    private let open = Atomic<Bool>(false)
    func release() { open.store(true, ordering: .releasing) }
    /// Blocks the calling thread until released or `seconds` pass; returns whether it was released.
    @discardableResult
    func wait(seconds: Double = 10) -> Bool {
        let deadline = Platform.monotonicNanos() + UInt64(seconds * 1e9)
        while !open.load(ordering: .acquiring) {
            if Platform.monotonicNanos() > deadline { return false }
            usleep(200)
        }
        return true
    }
}

@Suite("Blocking pool")
struct BlockingPoolTests {
    @Test("spawnBlocking returns the closure's value, runs on a kyoto-blocking thread with Runtime.current set",
          arguments: bothFlavors)
    func valueAndThread(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        let (v, name, current) = try r.blockOn { () async throws -> (Int, String, Bool) in
            let h = spawnBlocking { (6 * 7, currentThreadName(), Runtime.current === r) }
            return try await h.value
        }
        #expect(v == 42)
        #expect(name.hasPrefix("kyoto-blocking-"))
        #expect(current)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a blocking-pool thread keeps the runtime's shared state alive until it has exited")
    func poolThreadOutlivesRuntime() {
        // The pool thread outlives the runtime: after its job it waits, and after shutdown it runs the stop
        // hook. Everything it reads there (the hooks) lives in `Shared`, which must still be alive.
        final class WeakShared: @unchecked Sendable { weak var value: Shared? }
        let weak = WeakShared()
        let inStopHook = FlagBox()
        let release = FlagBox()
        var c = Runtime.Configuration()
        c.flavor = .currentThread
        c.onThreadStop = {
            guard currentThreadName().hasPrefix("kyoto-blocking-") else { return }
            inStopHook.flag.store(true, ordering: .releasing)
            spinWhile(seconds: 10) { !release.flag.load(ordering: .acquiring) }
        }
        do {
            let r = Runtime(c)
            let v = r.blockOn { () async -> Int in (try? await spawnBlocking { 7 }.value) ?? 0 }
            #expect(v == 7)
            weak.value = r.shared
            // Released here: the runtime's deinit shuts the pool down, and the idle pool thread exits.
        }
        let entered = spinWhile(seconds: 10) { !inStopHook.flag.load(ordering: .acquiring) }
        #expect(entered, "the pool thread never ran its stop hook")
        #expect(weak.value != nil, "the runtime's shared state was freed while a pool thread still used it")
        release.flag.store(true, ordering: .releasing)
        let freed = spinWhile(seconds: 10) { weak.value != nil }
        #expect(freed, "the runtime's shared state was never freed")
    }

    @Test("a blocking job aborted before its wrapper task first ran never runs, even once a thread takes it")
    func abortBeforeWrapperRuns() {
        // Current-thread: the wrapper task cannot run while this job keeps the driver busy, so its
        // cancellation handler (which used to be the only way the abort reached the queued job) is not
        // installed when the single pool thread takes the job.
        var c = Runtime.Configuration()
        c.flavor = .currentThread
        c.maxBlockingThreads = 1
        let r = Runtime(c)
        let ran = FlagBox()
        let gate = FlagBox()
        let outcome = r.blockOn { () async -> String in
            let first = spawnBlocking {
                spinWhile(seconds: 10) { !gate.flag.load(ordering: .acquiring) }
            }
            let second = spawnBlocking { ran.flag.store(true, ordering: .releasing) }
            second.abort()
            gate.flag.store(true, ordering: .releasing)
            // Without awaiting: the pool thread finishes the first job, takes the second, and goes idle.
            let limit = Platform.monotonicNanos() + 10_000_000_000
            while (r.metrics.idleBlockingThreads < 1 || r.metrics.blockingQueueDepth > 0)
                && Platform.monotonicNanos() < limit
            {
                sched_yield()
            }
            _ = try? await first.value
            do {
                try await second.value
                return "value"
            } catch {
                return "\(error)"
            }
        }
        let didRun = ran.flag.load(ordering: .acquiring)
        #expect(!didRun, "the aborted job's closure ran")
        #expect(outcome == "\(JoinError.cancelled)")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a detached blocking job's result is freed once the job is done")
    func detachedResultFreed() {
        let freed = TestCounter()
        let r = Runtime.multiThread(workers: 2)
        r.blockOn {
            for _ in 0..<10 { _ = spawnBlocking { DeinitProbe { _ = freed.increment() } } }
        }
        spinWhile(seconds: 10) { freed.current < 10 }
        #expect(freed.current == 10, "\(freed.current) of 10 results freed")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("an idle pool thread woken early (a stale unpark) stays for the rest of its keep-alive")
    func earlyWakeupKeepsThread() {
        // A notify that loses the race with a time-out leaves a token in the thread's parker, which ends its
        // next idle park at once; the thread used to take that for a time-out and exit.
        var c = Runtime.Configuration()
        c.workerThreads = 1
        c.blockingKeepAlive = .seconds(30)
        let r = Runtime(c)
        let v = r.blockOn { () async -> Int in (try? await spawnBlocking { 3 }.value) ?? 0 }
        #expect(v == 3)
        spinWhile(seconds: 10) { r.metrics.idleBlockingThreads < 1 }
        #expect(r.metrics.idleBlockingThreads == 1)
        r.blockingPool.wakeIdleThreadsForTesting()
        spinWhile(seconds: 10) { r.blockingPool.earlyWakeups < 1 && r.metrics.blockingThreads > 0 }
        #expect(r.metrics.blockingThreads == 1, "the idle thread exited on an early wake-up")
        #expect(r.metrics.idleBlockingThreads == 1)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a thrown error reaches JoinHandle.value unchanged")
    func errorUnchanged() {
        struct Failure: Error, Equatable { let code: Int }
        let r = Runtime.multiThread(workers: 2)
        r.blockOn {
            let h = spawnBlocking { () throws -> Int in throw Failure(code: 3) }
            await #expect(throws: Failure(code: 3)) { try await h.value }
        }
        r.shutdown(timeout: .seconds(5))
    }

    @Test("the pool grows: 16 blocking jobs all run at once (each waits until all 16 have started)")
    func poolGrows() throws {
        let r = Runtime.multiThread(workers: 2)
        let started = TestCounter()
        let sawAll = try r.blockOn { () async throws -> [Bool] in
            var hs: [JoinHandle<Bool>] = []
            for _ in 0..<16 {
                hs.append(spawnBlocking { () -> Bool in
                    _ = started.increment()
                    // Only possible if 16 pool threads run these jobs at the same time.
                    return spinWhile(seconds: 20) { started.current < 16 }
                })
            }
            var results: [Bool] = []
            for h in hs { results.append(try await h.value) }
            return results
        }
        #expect(sawAll == Array(repeating: true, count: 16), "started: \(started.current)")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("with maxBlockingThreads = n at most n jobs run at once and queued jobs are taken in FIFO order",
          arguments: [1, 2])
    func boundedAndFIFO(threads: Int) throws {
        var c = Runtime.Configuration()
        c.workerThreads = 2
        c.maxBlockingThreads = threads
        let r = Runtime(c)
        let order = Recorder<Int>()
        let box = PeakBox()
        try r.blockOn {
            var hs: [JoinHandle<Void>] = []
            for i in 0..<12 {
                hs.append(spawnBlocking {
                    order.append(i)
                    let now = box.running.wrappingAdd(1, ordering: .relaxed).newValue
                    var p = box.peak.load(ordering: .relaxed)
                    while now > p {
                        let (ok, cur) = box.peak.compareExchange(expected: p, desired: now, ordering: .relaxed)
                        if ok { break }
                        p = cur
                    }
                    usleep(5_000)
                    box.running.wrappingSubtract(1, ordering: .relaxed)
                })
            }
            #expect(r.metrics.blockingThreads <= threads)
            for h in hs { try await h.value }
        }
        #expect(box.peak.load(ordering: .relaxed) <= threads)
        // Every job ran once. With one thread, the order jobs record their start is the order the pool
        // took them, which must be submission order. With two, both threads record concurrently, so the
        // recorded order says nothing exact about the pool's queue (a thread may be descheduled between
        // taking a job and recording it): only the bound on concurrent jobs is checked.
        let started = order.all
        #expect(started.sorted() == Array(0..<12))
        if threads == 1 { #expect(started == Array(0..<12)) }
        r.shutdown(timeout: .seconds(5))
    }

    @Test("idle blocking threads exit after the keep-alive")
    func keepAlive() throws {
        var c = Runtime.Configuration()
        c.workerThreads = 1
        c.blockingKeepAlive = .milliseconds(50)
        let r = Runtime(c)
        // Read inside the jobs: once they are done, a loaded machine may let the 50 ms run out before the
        // test looks.
        let seenWhileRunning = try r.blockOn { () async throws -> [Int] in
            var hs: [JoinHandle<Int>] = []
            for _ in 0..<4 { hs.append(spawnBlocking { r.metrics.blockingThreads }) }
            var seen: [Int] = []
            for h in hs { seen.append(try await h.value) }
            return seen
        }
        #expect(seenWhileRunning.allSatisfy { $0 >= 1 }, "blocking threads seen by the jobs: \(seenWhileRunning)")
        // Wait (bounded) for the threads to time out.
        let deadline = Platform.monotonicNanos() + 5_000_000_000
        while r.metrics.blockingThreads > 0 && Platform.monotonicNanos() < deadline { usleep(5_000) }
        #expect(r.metrics.blockingThreads == 0)
        #expect(r.metrics.idleBlockingThreads == 0)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a job submitted while the only blocking thread is on its way out after the keep-alive still runs")
    func jobSubmittedWhileTheLastThreadExits() async throws {
        // The pool thread decides to leave (keep-alive over, queue empty) and then runs its stop hook; the
        // hook holds it there until a second job has been submitted. The pool must not count the leaving
        // thread as one that will take that job (it did: the job stayed queued with no thread, for good).
        let leaving = Signal()
        let release = ThreadGate()
        var c = Runtime.Configuration()
        c.workerThreads = 1
        c.maxBlockingThreads = 1
        c.blockingKeepAlive = .milliseconds(10)
        c.onThreadStop = {
            guard currentThreadName().hasPrefix("kyoto-blocking") else { return }
            leaving.fire()
            release.wait(seconds: 10)
        }
        let r = Runtime(c)
        #expect(try r.blockOn { try await spawnBlocking { 1 }.value } == 1)
        #expect(await leaving.wait(seconds: 10), "the idle blocking thread did not leave after its keep-alive")
        let second = r.spawnBlocking { 2 }
        let value = await blockOnThread(r, seconds: 10, "the job submitted while the thread was leaving") {
            try await second.value
        }
        #expect(value == 2)
        release.release()
        #expect(r.shutdown(timeout: .seconds(5)))
    }

    @Test("a job aborted before it starts never runs; one aborted while running still returns its value")
    func abortSemantics() throws {
        var c = Runtime.Configuration()
        c.workerThreads = 2
        c.maxBlockingThreads = 1
        let r = Runtime(c)
        let gate = ThreadGate()
        let started = Signal()
        let ranSecond = TestCounter()
        try r.blockOn { () async throws in
            let first = spawnBlocking { () -> Int in
                started.fire()
                gate.wait()
                return 1
            }
            await started.wait()
            // The only thread is busy: the second job is queued, then aborted before it can start.
            let second = spawnBlocking { () -> Int in
                ranSecond.increment()
                return 2
            }
            #expect(r.metrics.blockingQueueDepth == 1)
            second.abort()
            await #expect(throws: JoinError.cancelled) { try await second.value }
            first.abort()  // already running: cannot be interrupted
            gate.release()
            #expect(try await first.value == 1)
        }
        #expect(ranSecond.current == 0)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a blocking call inside spawnBlocking does not hold up a ticking task on the workers")
    func blockingDoesNotStallWorkers() throws {
        let r = Runtime.multiThread(workers: 1)
        let gate = ThreadGate()
        let (ticks, blockerReleased) = try r.blockOn { () async throws -> (Int, Bool) in
            // Blocks until the ticker below has ticked 20 times: on the runtime's only worker it would block
            // the ticker itself, and wait out its 20 s bound.
            let blocker = spawnBlocking { gate.wait(seconds: 20) }
            var ticks = 0
            for _ in 0..<20 {
                try await Task.sleep(for: .milliseconds(1))
                ticks += 1
            }
            gate.release()
            return (ticks, try await blocker.value)
        }
        #expect(ticks == 20)
        #expect(blockerReleased, "the ticker could only tick after the blocking call gave up")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("shutdown waits for a running blocking job up to the timeout; shutdownBackground does not wait")
    func shutdownWaitsForRunningJobs() throws {
        let r = Runtime.multiThread(workers: 1)
        let gate = ThreadGate()
        let started = Signal()
        r.blockOn {
            _ = spawnBlocking {
                started.fire()
                gate.wait()
            }
            await started.wait()
        }
        let t0 = Platform.monotonicNanos()
        let finished = r.shutdown(timeout: .milliseconds(100))
        let waitedMs = Double(Platform.monotonicNanos() - t0) / 1e6
        #expect(!finished)
        #expect(waitedMs >= 90 && waitedMs < 2_000, "waited \(waitedMs) ms")
        gate.release()

        let r2 = Runtime.multiThread(workers: 1)
        let gate2 = ThreadGate()
        let started2 = Signal()
        let jobDone = FlagBox()
        r2.blockOn {
            _ = spawnBlocking {
                started2.fire()
                gate2.wait(seconds: 20)
                jobDone.flag.store(true, ordering: .releasing)
            }
            await started2.wait()
        }
        r2.shutdownBackground()
        // The call came back while the job was still blocked: its gate opens only now.
        let doneBeforeRelease = jobDone.flag.load(ordering: .acquiring)
        #expect(!doneBeforeRelease)
        gate2.release()
    }

    @Test("JoinSet.spawnBlocking results come back through next()")
    func joinSetBlocking() throws {
        let r = Runtime.multiThread(workers: 2)
        let sum = try r.blockOn { () async throws -> Int in
            let set = JoinSet<Int>()
            for i in 1...10 { set.spawnBlocking { i } }
            var s = 0
            while let v = try await set.next() { s += v }
            return s
        }
        #expect(sum == 55)
        r.shutdown(timeout: .seconds(5))
    }
}

@Suite("blockInPlace")
struct BlockInPlaceTests {
    @Test("while one worker blocks in place, 1,000 other tasks complete and its queued work is not stranded")
    func othersKeepRunning() throws {
        let r = Runtime.multiThread(workers: 2)
        let done = try r.blockOn { () async throws -> Int in
            let gate = ThreadGate()
            let entered = Signal()
            let blocker = spawn { () -> Bool in
                // Queue work on this worker first: it must move with the worker, not be stranded.
                var local: [JoinHandle<Int>] = []
                for i in 0..<50 { local.append(spawn { i }) }
                let released = blockInPlace { () -> Bool in
                    entered.fire()
                    return gate.wait()
                }
                var s = 0
                for h in local { s += (try? await h.value) ?? 0 }
                return released && s == 1225
            }
            await entered.wait()
            var hs: [JoinHandle<Int>] = []
            for i in 0..<1000 { hs.append(spawn { i }) }
            var total = 0
            for h in hs { total += try await h.value }
            gate.release()
            #expect(try await blocker.value)
            return total
        }
        #expect(done == 499_500)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("blockInPlace outside a runtime just runs the closure")
    func outsideRuntime() {
        #expect(blockInPlace { 5 } == 5)
    }

    @Test("blockInPlace on a worker between jobs (a park hook) runs in place: the worker is not handed off")
    func betweenJobsRunsInPlace() throws {
        // A hand-off here would give the worker to a new thread while this thread's run loop, which called
        // the hook, goes on using it. Worker threads hold their worker (role `.worker`) afterwards.
        let calls = TestCounter()
        let handedOff = TestCounter()
        var c = Runtime.Configuration()
        c.workerThreads = 1
        c.onThreadPark = {
            guard calls.increment() <= 3 else { return }
            let ran = blockInPlace { true }
            let role = ThreadContext.current?.role
            if !ran || role != .worker || ThreadContext.current?.worker == nil { _ = handedOff.increment() }
        }
        let r = Runtime(c)
        // After each round the worker runs out of work and parks, which runs the hook; the next round checks
        // that the worker still runs work.
        for round in 0..<4 {
            let sum = r.blockOn { () async -> Int in
                var hs: [JoinHandle<Int>] = []
                for i in 0..<10 { hs.append(spawn { i + round }) }
                var total = 0
                for h in hs { total += (try? await h.value) ?? 0 }
                return total
            }
            #expect(sum == 45 + 10 * round)
            if round < 3 {
                let target = round + 1
                spinWhile(seconds: 10) { calls.current < target }
                #expect(calls.current >= target, "the worker did not park within 10 s")
            }
        }
        #expect(handedOff.current == 0, "blockInPlace in a park hook handed the worker off")
        #expect(r.shutdown(timeout: .seconds(5)))
    }

    @Test("timers keep firing while workers sit in blockInPlace: a value sent after a sleep reaches the waiters",
          arguments: [1, 2])
    func timerFiresWhileWorkersBlockInPlace(blockers: Int) async {
        // Tokio T3.7, on 2 workers. Each blocker waits inside blockInPlace (on a futex, 10 s bound) for a value
        // that a sender task sets after a 5 ms `Task.sleep`. The sender is spawned by the last blocker just
        // before it blocks (so it sits in that worker's LIFO slot, which only the hand-off moves) and sleeps
        // only once every blocker is inside: with 2 blockers both workers are blocked in place, so the sleep's
        // timer and the sender can only run on the threads that took the workers over.
        let r = makeRuntime(.multiThread, workers: 2)
        let latch = ThreadLatch()
        let entered = TestCounter()
        let allEntered = Signal()
        let values = await blockOnThread(r, seconds: 30, "\(blockers) blocker(s) waiting for a timer") {
            () async throws -> [Int?] in
            var waiters: [JoinHandle<Int?>] = []
            for i in 0..<blockers {
                waiters.append(spawn { () -> Int? in
                    if i == blockers - 1 {
                        spawn {
                            await allEntered.wait()
                            try await Task.sleep(for: .milliseconds(5))
                            latch.set(42)
                        }
                    }
                    return blockInPlace { () -> Int? in
                        if entered.increment() == blockers { allEntered.fire() }
                        return latch.wait(seconds: 10)
                    }
                })
            }
            var out: [Int?] = []
            for w in waiters { out.append(try await w.value) }
            return out
        }
        #expect(values == Array(repeating: 42, count: blockers),
                "a blocker timed out: the sender's timer did not fire while \(blockers) worker(s) blocked in place")
        #expect(r.shutdown(timeout: .seconds(5)))
    }

    @Test("inside blockInPlace, blockOn on the same runtime runs yieldNow, Task.yield and spawned tasks past a budget",
          arguments: [1, 2])
    func blockOnInsideBlockInPlace(workers: Int) async {
        // Tokio T3.10 (`yield_now_in_block_in_place`), with the executor's own awaits (the AsyncMutex variant is
        // in KyotoSyncTests, which can import KyotoSync). With one worker the blockOn body can only run on the
        // thread that took the worker over. 129 rounds: past one cooperative budget (128).
        let r = makeRuntime(.multiThread, workers: workers)
        let rounds = initialBudget + 1
        let sum = await blockOnThread(r, seconds: 30, "blockOn inside blockInPlace (\(workers) worker(s))") {
            () async throws -> Int in
            try await spawn { () throws -> Int in
                try blockInPlace { () throws -> Int in
                    try r.blockOn { () async throws -> Int in
                        var total = 0
                        for i in 0..<rounds {
                            await yieldNow()
                            await Task.yield()
                            total += try await spawn { i }.value
                        }
                        return total
                    }
                }
            }.value
        }
        #expect(sum == rounds * (rounds - 1) / 2)
        #expect(r.shutdown(timeout: .seconds(5)))
    }

    @Test("a nested blockInPlace runs its closure in place on the same former worker; the runtime keeps running")
    func nestedBlockInPlace() async {
        // Documented: outside a worker's job (here: on a former worker, whose worker the outer call already
        // handed off) `body` simply runs. With one worker, a task spawned inside the inner closure can only
        // run if the outer call handed the worker to another thread and the inner one left it there.
        struct Seen: Sendable {
            var sameThread = false
            var outerRole: ThreadContext.Role?
            var innerRole: ThreadContext.Role?
            var innerValue = 0
            var spawned: Int?
        }
        let r = makeRuntime(.multiThread, workers: 1)
        let seen = await blockOnThread(r, seconds: 30, "nested blockInPlace") { () async throws -> Seen in
            try await spawn { () -> Seen in
                blockInPlace { () -> Seen in
                    var seen = Seen()
                    let outer = pthread_self()
                    seen.outerRole = ThreadContext.current?.role
                    seen.innerValue = blockInPlace { () -> Int in
                        seen.sameThread = pthread_equal(outer, pthread_self()) != 0
                        seen.innerRole = ThreadContext.current?.role
                        let latch = ThreadLatch()
                        r.spawn { latch.set(7) }
                        seen.spawned = latch.wait(seconds: 10)
                        return 5
                    }
                    return seen
                }
            }.value
        }
        #expect(seen?.sameThread == true)
        #expect(seen?.outerRole == .formerWorker)
        #expect(seen?.innerRole == .formerWorker)
        #expect(seen?.innerValue == 5)
        #expect(seen?.spawned == 7, "a task spawned inside the nested blockInPlace did not run within 10 s")
        #expect(r.shutdown(timeout: .seconds(5)))
    }

    @Test("blockInPlace inside a blockOn inside blockInPlace: 50 rounds on a one-worker runtime")
    func nestedBlockInPlaceWithBlockOnBetween() async {
        // Tokio's `test_nested_block_in_place_with_block_on_between`. The inner blockInPlace runs in a job of the
        // inner blockOn's task, on whichever thread holds the runtime's only worker: it hands the worker off a
        // second time, and the outer closure's blockOn must still see its body finish.
        let r = makeRuntime(.multiThread, workers: 1)
        let rounds = 50
        let values = await blockOnThread(r, seconds: 60, "nested blockInPlace with blockOn between") {
            () async throws -> [Int] in
            var values: [Int] = []
            for i in 0..<rounds {
                values.append(try await spawn { () -> Int in
                    blockInPlace { () -> Int in
                        r.blockOn { () async -> Int in
                            let v = blockInPlace { i }
                            await yieldNow()
                            return v
                        }
                    }
                }.value)
            }
            return values
        }
        #expect(values == Array(0..<rounds))
        #expect(r.shutdown(timeout: .seconds(5)))
    }
}

/// A value set once and waited for by blocked OS threads, with a deadline (a futex wait on a
/// `OneShotEvent`, no polling).
final class ThreadLatch: Sendable {
    private let value = CheckedMutex<Int?>(nil)
    private let event = OneShotEvent()

    func set(_ v: Int) {
        value.withLock { $0 = v }
        event.set()
    }

    /// Blocks the calling thread until `set` or until `seconds` pass; returns the value, or nil on time-out.
    func wait(seconds: Int) -> Int? {
        guard event.wait(timeout: .seconds(seconds)) else { return nil }
        return value.withLock { $0 }
    }
}

final class PeakBox: Sendable {
    let running = Atomic<Int>(0)
    let peak = Atomic<Int>(0)
}
