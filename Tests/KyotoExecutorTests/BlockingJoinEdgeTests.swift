// Edge cases of spawnBlocking, blockInPlace, join handles and shutdown: ordering of a task's end against
// its handle, and seeded races between aborts, hand-offs and shutdown.

import Synchronization
import Testing

@testable import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

/// A closure whose only capture is a probe with a slow deinit: the deinit waits until `returned` is set (or
/// `graceMillis` pass), then sets `released`. A handle that resolves only after the closure's captures are
/// gone (as `JoinHandle.value` promises) always finds `released` set; one that resolves earlier finds it
/// clear, since nobody sets `returned` before the handle has resolved.
private func slowReleasingBody(
    returned: FlagBox, released: FlagBox, graceMillis: UInt64 = 500
) -> @Sendable () -> Int {
    let probe = DeinitProbe {
        let deadline = Platform.monotonicNanos() + graceMillis * 1_000_000
        while !returned.flag.load(ordering: .acquiring) && Platform.monotonicNanos() < deadline { sched_yield() }
        released.flag.store(true, ordering: .releasing)
    }
    return { withExtendedLifetime(probe) { 1 } }
}

/// Spawns a task whose body's only capture is `slowReleasingBody`'s closure (no other reference is left
/// once this returns).
private func spawnWithSlowRelease(_ r: Runtime, returned: FlagBox, released: FlagBox) -> JoinHandle<Int> {
    let body = slowReleasingBody(returned: returned, released: released)
    return r.spawn { body() }
}

@Suite("Blocking and join edge cases")
struct BlockingJoinEdgeTests {
    /// Starts a task through `start` and reports whether its closure's captures were gone when its handle's
    /// `value` returned.
    private func capturesReleasedBeforeValue(
        _ flavor: Runtime.Configuration.Flavor,
        _ start: @escaping @Sendable (Runtime, FlagBox, FlagBox) -> JoinHandle<Int>
    ) async -> Bool {
        let r = makeRuntime(flavor)
        let returned = FlagBox()
        let released = FlagBox()
        // On a thread of its own: a blockOn here would hold one of the test runner's few threads meanwhile.
        let releasedFirst = await blockOnThread(r, "captures released") { () async throws -> Bool in
            _ = try await start(r, returned, released).value
            let seen = released.flag.load(ordering: .acquiring)
            returned.flag.store(true, ordering: .releasing)
            return seen
        }
        #expect(r.shutdown(timeout: .seconds(5)))
        return releasedFirst ?? false
    }

    @Test("spawnBlocking: the closure's captures are released before JoinHandle.value returns", arguments: bothFlavors)
    func blockingCapturesReleasedBeforeValue(_ flavor: Runtime.Configuration.Flavor) async {
        let releasedFirst = await capturesReleasedBeforeValue(flavor) { r, returned, released in
            r.spawnBlocking(slowReleasingBody(returned: returned, released: released))
        }
        #expect(releasedFirst, "JoinHandle.value returned while the blocking closure's captures were still alive")
    }

    @Test("spawn: the body's captures are released before JoinHandle.value returns", arguments: bothFlavors)
    func spawnCapturesReleasedBeforeValue(_ flavor: Runtime.Configuration.Flavor) async {
        let releasedFirst = await capturesReleasedBeforeValue(flavor) { r, returned, released in
            spawnWithSlowRelease(r, returned: returned, released: released)
        }
        #expect(releasedFirst, "JoinHandle.value returned while the task body's captures were still alive")
    }

    @Test("seeded: aborts racing blocking jobs on a small pool with a short keep-alive; value iff the body ran")
    func abortRacesBlockingJobs() async {
        let seed = testSeed()
        var c = Runtime.Configuration()
        c.workerThreads = 2
        c.maxBlockingThreads = 2
        c.blockingKeepAlive = .milliseconds(1)
        let r = Runtime(c)
        let mismatches = await blockOnThread(r, seconds: 60, "abort race (seed \(seed))") { () async -> [String] in
            var rng = SeededRandom(seed: seed)
            var problems: [String] = []
            let end = Platform.monotonicNanos() + 2_000_000_000
            var round = 0
            while Platform.monotonicNanos() < end && problems.isEmpty {
                round += 1
                let n = 16
                let ran = (0..<n).map { _ in FlagBox() }
                var handles: [JoinHandle<Int>] = []
                let spins = (0..<n).map { _ in Int.random(in: 0...200, using: &rng) }
                for i in 0..<n {
                    let flag = ran[i]
                    let spin = spins[i]
                    handles.append(r.spawnBlocking { () -> Int in
                        flag.flag.store(true, ordering: .releasing)
                        var x = 0
                        for k in 0..<spin { x &+= k }
                        return i + (x & 0)
                    })
                    if Int.random(in: 0..<4, using: &rng) == 0 { handles[i].abort() }
                }
                for i in 0..<n where Int.random(in: 0..<3, using: &rng) == 0 {
                    if Bool.random(using: &rng) { await Task.yield() }
                    handles[i].abort()
                }
                for i in 0..<n {
                    let outcome = await handles[i].result
                    let didRun = ran[i].flag.load(ordering: .acquiring)
                    switch outcome {
                    case .success(let v):
                        if v != i || !didRun { problems.append("round \(round) job \(i): value \(v), ran \(didRun)") }
                    case .failure(let e):
                        if (e as? JoinError) != .cancelled || didRun {
                            problems.append("round \(round) job \(i): error \(e), ran \(didRun)")
                        }
                    }
                }
            }
            return problems
        }
        #expect(mismatches == [], "seed \(seed)")
        #expect(r.shutdown(timeout: .seconds(5)), "seed \(seed)")
        #expect(r.metrics.blockingThreads == 0, "seed \(seed)")
        #expect(r.metrics.aliveTasks == 0, "seed \(seed)")
    }

    @Test("seeded: many tasks hand their worker off with blockInPlace, spawn and yield; all finish, workers exit")
    func blockInPlaceStorm() async {
        let seed = testSeed()
        let r = makeRuntime(.multiThread, workers: 2)
        let total = await blockOnThread(r, seconds: 60, "blockInPlace storm (seed \(seed))") { () async throws -> Int in
            var rng = SeededRandom(seed: seed)
            var handles: [JoinHandle<Int>] = []
            for i in 0..<300 {
                let mode = Int.random(in: 0..<4, using: &rng)
                let spin = Int.random(in: 0...2_000, using: &rng)
                handles.append(spawn { () async throws -> Int in
                    var inner: JoinHandle<Int>? = nil
                    if mode != 0 {
                        inner = blockInPlace { () -> JoinHandle<Int>? in
                            var x = 0
                            for k in 0..<spin { x &+= k }
                            _ = x
                            return mode == 2 ? Runtime.current?.spawn { i } : nil
                        }
                    }
                    await yieldNow()
                    if mode == 3 { await Task.yield() }
                    let child = try await spawn { i }.value
                    let fromInner = try await inner?.value ?? child
                    return child + fromInner - i
                })
            }
            var sum = 0
            for h in handles { sum += try await h.value }
            return sum
        }
        #expect(total == (0..<300).reduce(0, +), "seed \(seed)")
        #expect(r.shutdown(timeout: .seconds(5)), "seed \(seed)")
        guard case .multiThread(let s) = r.scheduler else { return }
        #expect(await until(seconds: 10) { s.liveWorkerCount == 0 }, "seed \(seed)")
    }

    @Test("shutdown with a JoinSet of blocking jobs (one running, the rest queued): every member is joined")
    func shutdownDrainsBlockingJoinSet() async {
        var c = Runtime.Configuration()
        c.workerThreads = 2
        c.maxBlockingThreads = 1
        let r = Runtime(c)
        let gate = ThreadGate()
        let started = Signal()
        let ranQueued = TestCounter()
        let set = JoinSet<Int>(runtime: r)
        set.spawnBlocking {
            started.fire()
            return gate.wait(seconds: 120) ? 1 : -1
        }
        #expect(await started.wait(seconds: 60))
        for i in 0..<8 { set.spawnBlocking { ranQueued.increment(); return 10 + i } }
        // The running job holds the only pool thread: shutdown cancels the queued ones and times out on it.
        let first = await onThread(seconds: 60) { r.shutdown(timeout: .milliseconds(100)) }
        #expect(first == false)
        gate.release()
        let outcomes = try? await withDeadline(60, "draining the set") { () async -> [String] in
            var seen: [String] = []
            while let result = await set.nextResult() {
                switch result {
                case .success(let v): seen.append("\(v)")
                case .failure(let e): seen.append("\(e)")
                }
            }
            return seen
        }
        #expect(outcomes?.sorted() == (["1"] + Array(repeating: "\(JoinError.cancelled)", count: 8)).sorted())
        #expect(ranQueued.current == 0)
        let second = await onThread(seconds: 60) { r.shutdown(timeout: .seconds(5)) }
        #expect(second == true)
        #expect(r.metrics.blockingThreads == 0)
    }

    @Test("shutdown while a spawned task blocks in place: false at the deadline, then true once it returns")
    func shutdownWaitsForBlockInPlace() async {
        let r = makeRuntime(.multiThread, workers: 2)
        let gate = ThreadGate()
        let entered = Signal()
        let h = r.spawn { () -> Bool in
            blockInPlace {
                entered.fire()
                return gate.wait(seconds: 120)
            }
        }
        #expect(await entered.wait(seconds: 60))
        let first = await onThread(seconds: 60) { r.shutdown(timeout: .milliseconds(100)) }
        #expect(first == false, "shutdown reported success while a spawned task was still blocking in place")
        gate.release()
        let second = await onThread(seconds: 60) { r.shutdown(timeout: .seconds(5)) }
        #expect(second == true)
        // The task was cancelled by shutdown but finished with a value after it had started.
        let outcome: Result<Bool, any Error>?? = try? await firstWithin(60) { await h.result }
        if let o = outcome, let result = o {
            #expect((try? result.get()) == true)
        } else {
            Issue.record("the handle of the task that blocked in place did not resolve")
        }
    }
}

/// Runs a runtime whose `onThreadStop` hook, on the first stopping thread whose name starts with
/// `threadPrefix`, calls `shutdown(timeout:)` (the call traps in the tests below), after `drive` has made such
/// a thread stop; waits up to 10 s for the hook. For exit-test bodies.
private func shutdownFromStopHook(
    threadPrefix: String, configure: (inout Runtime.Configuration) -> Void, drive: (Runtime) -> Void
) {
    final class Box: @unchecked Sendable {
        // SAFETY (@unchecked Sendable): `runtime` is written before the runtime can stop a thread and then
        // only by the one hook that takes it; `returned` is atomic.
        var runtime: Runtime?
        let returned = Atomic<Bool>(false)
    }
    let box = Box()
    var c = Runtime.Configuration()
    c.workerThreads = 1
    configure(&c)
    c.onThreadStop = {
        guard currentThreadName().hasPrefix(threadPrefix), let r = box.runtime else { return }
        box.runtime = nil
        // The stopping thread is one of those the call waits for: it could only time out.
        _ = r.shutdown(timeout: .seconds(2))
        box.returned.store(true, ordering: .releasing)
    }
    let r = Runtime(c)
    box.runtime = r
    drive(r)
    spinWhile(seconds: 10) { !box.returned.load(ordering: .acquiring) }
}

@Suite("Shutdown misuse traps", .enabled(if: exitTestsEnabled, "exit tests are skipped under sanitizers"))
struct ShutdownMisuseEdgeTests {
    @Test("shutdown(timeout:) from a stopping worker's onThreadStop hook traps instead of waiting for itself")
    func shutdownFromWorkerStopHook() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            shutdownFromStopHook(threadPrefix: "kyoto-worker", configure: { _ in }) { r in
                r.blockOn { await Task.yield() }
                r.shutdownBackground()
            }
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("BUG DETECTED: shutdown(timeout:) called from a stopping worker's onThreadStop hook"), "stderr: \(text)")
    }

    @Test("shutdown(timeout:) from a blocking thread's onThreadStop hook traps naming the hook, not a spawnBlocking closure")
    func shutdownFromBlockingThreadStopHook() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            // The blocking thread's keep-alive ends at once and its stop hook runs.
            shutdownFromStopHook(threadPrefix: "kyoto-blocking", configure: { $0.blockingKeepAlive = .milliseconds(1) }) { r in
                _ = try? r.blockOn { try await spawnBlocking { 1 }.value }
            }
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(
            text.contains("BUG DETECTED: shutdown(timeout:) called from a thread hook (onThreadStart/onThreadStop) "
                + "of this runtime's blocking thread"), "stderr: \(text)")
    }
}
