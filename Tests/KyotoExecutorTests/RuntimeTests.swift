// Runtime behaviour: the Tokio cases of tokio-semantics.md §1 that apply to Swift.

import Synchronization
import Testing

@testable import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

@Suite("Runtime")
struct RuntimeTests {
    @Test("multi-thread runtime has the configured worker count; current-thread has one")
    func workerCounts() {
        let mt = Runtime.multiThread(workers: 2)
        #expect(mt.workerCount == 2)
        #expect(mt.metrics.workers == 2)
        #expect(mt.metrics.perWorker.count == 2)
        let ct = Runtime.currentThread()
        #expect(ct.workerCount == 1)
        #expect(ct.metrics.workers == 1)
        #expect(mt.shutdown(timeout: .seconds(5)))
        #expect(ct.shutdown(timeout: .seconds(5)))
    }

    @Test("default worker count follows the CPUs available to the process")
    func defaultWorkerCount() throws {
        // Worked out here independently of the runtime: the CPUs this process may run on (its affinity, as
        // the kernel reports it), capped by a cgroup v2 CPU quota if one is set.
        let status = try #require(readFile("/proc/self/status"))
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") })
        var allowed = 0
        for range in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces)
            .split(separator: ",")
        {
            let bounds = range.split(separator: "-").compactMap { Int($0) }
            allowed += bounds.count == 2 ? bounds[1] - bounds[0] + 1 : 1
        }
        var expected = allowed
        if let cpuMax = readFile("/sys/fs/cgroup/cpu.max") {
            let fields = cpuMax.split(whereSeparator: \.isWhitespace)
            if fields.count == 2, let quota = Double(fields[0]), let period = Double(fields[1]) {
                expected = min(expected, max(1, Int((quota / period).rounded(.up))))
            }
        }
        let r = Runtime()
        #expect(r.workerCount == expected, "Cpus_allowed_list: \(line)")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("cgroup CPU quotas round up to whole CPUs; unlimited or malformed ones are ignored")
    func cgroupQuotaParsing() {
        #expect(Platform.cpuQuota(cgroupV2: "max 100000\n") == nil)
        #expect(Platform.cpuQuota(cgroupV2: "200000 100000\n") == 2)
        #expect(Platform.cpuQuota(cgroupV2: "150000 100000") == 2)
        #expect(Platform.cpuQuota(cgroupV2: "50000 100000\n") == 1)
        #expect(Platform.cpuQuota(cgroupV2: "garbage") == nil)
        #expect(Platform.cpuQuota(cgroupV2: "0 100000") == nil)
        #expect(Platform.cpuQuota(cgroupV1Quota: "-1\n", period: "100000\n") == nil)
        #expect(Platform.cpuQuota(cgroupV1Quota: "250000\n", period: "100000\n") == 3)
        #expect(Platform.cpuQuota(cgroupV1Quota: "x", period: "100000") == nil)
    }

    @Test("worker threads are named <threadName>-N", arguments: [0, 1])
    func workerThreadNames(_ index: Int) {
        var c = Runtime.Configuration()
        c.workerThreads = 2
        c.threadName = "kyname\(index)"
        let r = Runtime(c)
        let names = r.blockOn { currentThreadName() }
        #expect(names.hasPrefix("kyname\(index)-"))
        let all = processThreadNames()
        #expect(all.contains("kyname\(index)-0"))
        #expect(all.contains("kyname\(index)-1"))
        r.shutdown(timeout: .seconds(5))
    }

    @Test("blockOn returns the body's value and rethrows its error", arguments: bothFlavors)
    func blockOnValueAndError(_ flavor: Runtime.Configuration.Flavor) {
        struct Boom: Error, Equatable {}
        let r = makeRuntime(flavor)
        #expect(r.blockOn { 21 * 2 } == 42)
        #expect(throws: Boom.self) {
            try r.blockOn { () async throws(Boom) -> Int in throw Boom() }
        }
        r.shutdown(timeout: .seconds(5))
    }

    @Test("the body of blockOn runs on a runtime thread and Runtime.current is set there", arguments: bothFlavors)
    func blockOnRunsOnRuntime(_ flavor: Runtime.Configuration.Flavor) {
        let r = makeRuntime(flavor)
        let same = r.blockOn { Runtime.current === r }
        #expect(same)
        #expect(Runtime.current == nil)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("spawn never runs the task inline", arguments: bothFlavors)
    func spawnNeverInline(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        let (ranBeforeSpawnReturned, value) = try r.blockOn { () async throws -> (Bool, Int) in
            let flag = Atomic<Bool>(false)
            let box = FlagBox()
            let handle = spawn {
                box.flag.store(true, ordering: .sequentiallyConsistent)
                return 7
            }
            let early = box.flag.load(ordering: .sequentiallyConsistent)
            _ = flag
            return (early, try await handle.value)
        }
        #expect(!ranBeforeSpawnReturned)
        #expect(value == 7)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a task aborted before it starts never runs its body and resolves cancelled", arguments: bothFlavors)
    func abortBeforeStart(_ flavor: Runtime.Configuration.Flavor) {
        let r = makeRuntime(flavor)
        let ran = TestCounter()
        let outcome = r.blockOn { () async -> String in
            // Deterministic on both flavors: a spawn from a worker lands in that worker's LIFO slot, which no
            // other worker can take, and this body does not suspend before abort().
            let handle = spawn { ran.increment() }
            handle.abort()
            do {
                _ = try await handle.value
                return "value"
            } catch let e as JoinError {
                return e == .cancelled ? "cancelled" : "other"
            } catch { return "other" }
        }
        #expect(outcome == "cancelled")
        #expect(ran.current == 0)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("abort before start is deterministic on the current-thread flavor")
    func abortBeforeStartCurrentThread() {
        let r = Runtime.currentThread()
        let ran = TestCounter()
        let handle = r.spawn { ran.increment() }  // queued; nothing drives it yet
        handle.abort()
        let outcome = r.blockOn { () async -> Bool in
            do {
                _ = try await handle.value
                return false
            } catch { return (error as? JoinError) == .cancelled }
        }
        #expect(outcome)
        #expect(ran.current == 0)
        #expect(handle.isFinished)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("aborting a running task resolves cancelled; abort is idempotent; abort after completion keeps the value",
          arguments: bothFlavors)
    func abortRunningAndAfterCompletion(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        try r.blockOn { () async throws in
            let started = Signal()
            let sleeper = spawn { () async throws -> Int in
                started.fire()
                try await Task.sleep(for: .seconds(30))
                return 1
            }
            await started.wait()
            sleeper.abort()
            sleeper.abort()
            await #expect(throws: JoinError.cancelled) { try await sleeper.value }
            await #expect(throws: JoinError.cancelled) { try await sleeper.value }
            #expect(sleeper.isFinished)

            let quick = spawn { 5 }
            #expect(try await quick.value == 5)
            quick.abort()
            #expect(try await quick.value == 5)
        }
        r.shutdown(timeout: .seconds(5))
    }

    @Test("timeout around JoinHandle.value returns at its deadline and leaves the awaited task running",
          arguments: bothFlavors)
    func valueWaitEndsWithTheWaitersCancellation(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        try r.blockOn { () async throws in
            let gate = Signal()
            let slow = spawn { () async -> Int in
                await gate.wait()
                return 7
            }
            // Bounds the failure mode (a `value` that ignores its waiter's cancellation would make `timeout`
            // wait for `slow` for ever): the task is released after 10 s, and the body then returns 7.
            let valve = spawn {
                try await Task.sleep(for: .seconds(10))
                gate.fire()
            }
            // The body waits in `value` (registered as a join waiter) when the deadline cancels it.
            await #expect(throws: TimeoutError.self) {
                try await timeout(after: .milliseconds(20)) { try await slow.value }
            }
            #expect(!slow.isFinished, "the awaited task ended with its waiter")
            valve.abort()
            gate.fire()
            #expect(try await slow.value == 7, "the awaited task was not left running")
        }
        r.shutdown(timeout: .seconds(5))
    }

    @Test("JoinHandle.value in a cancelled task: a finished task's value, else CancellationError; result waits",
          arguments: bothFlavors)
    func valueAndResultInACancelledTask(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        let outcomes = try r.blockOn { () async throws -> [String] in
            let finished = spawn { 1 }
            _ = try await finished.value
            let gate = Signal()
            let pending = spawn { () async -> Int in
                await gate.wait()
                return 2
            }
            let waiter = spawn { () async -> [String] in
                withUnsafeCurrentTask { $0?.cancel() }
                var out: [String] = []
                do { out.append("value \(try await finished.value)") } catch { out.append("\(error)") }
                do { out.append("value \(try await pending.value)") } catch { out.append("\(type(of: error))") }
                // Only `gate.fire()` below can finish `pending`: a success here means `result` waited for it.
                spawn { gate.fire() }
                switch await pending.result {
                case .success(let v): out.append("result \(v)")
                case .failure(let e): out.append("result failed: \(e)")
                }
                return out
            }
            return try await waiter.value
        }
        #expect(outcomes == ["value 1", "CancellationError", "result 2"])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("every JoinHandle.value waiting on one task gets its value when it finishes", arguments: bothFlavors)
    func manyWaitersOneTask(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        let values = try r.blockOn { () async throws -> [Int] in
            let gate = Signal()
            let target = spawn { () async -> Int in
                await gate.wait()
                return 42
            }
            let waiters = (0..<8).map { _ in spawn { try await target.value } }
            await Task.yield()
            gate.fire()
            var values: [Int] = []
            for w in waiters { values.append(try await w.value) }
            return values
        }
        #expect(values == Array(repeating: 42, count: 8))
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a task's own error reaches JoinHandle.value unchanged", arguments: bothFlavors)
    func errorPropagates(_ flavor: Runtime.Configuration.Flavor) {
        struct Custom: Error, Equatable { let code: Int }
        let r = makeRuntime(flavor)
        r.blockOn {
            let h = spawn { () async throws -> Int in throw Custom(code: 9) }
            await #expect(throws: Custom(code: 9)) { try await h.value }
        }
        r.shutdown(timeout: .seconds(5))
    }

    @Test("dropping a JoinHandle detaches the task: it still runs to completion", arguments: bothFlavors)
    func dropDetaches(_ flavor: Runtime.Configuration.Flavor) async throws {
        let r = makeRuntime(flavor)
        let gate = Signal()
        let done = Signal()
        let cancelled = FlagBox()
        // blockOn on a thread of its own (a current-thread runtime runs only while someone is inside
        // blockOn), so that a task that never finishes fails the test at the deadline.
        let finished = await blockOnThread(r, seconds: 30, "the detached task") { () async -> Bool in
            // The handle is dropped at once, while the task still waits on the gate.
            _ = spawn {
                await gate.wait()
                if Task.isCancelled { cancelled.flag.store(true, ordering: .relaxed) }
                done.fire()
            }
            gate.fire()
            await done.wait()
            return true
        }
        #expect(finished == true)
        let wasCancelled = cancelled.flag.load(ordering: .relaxed)
        #expect(!wasCancelled, "dropping the handle cancelled the task")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("yieldNow outside a runtime just returns; shutdownBackground from inside a task does not trap")
    func yieldNowOutsideAndShutdownBackgroundInside() async {
        await yieldNow()
        let r = Runtime.multiThread(workers: 2)
        r.blockOn { r.shutdownBackground() }
        #expect(r.isShutDown)
        // The workers still finish and exit.
        #expect(r.shared.terminatedEvent.wait(timeout: .seconds(10)))
    }

    @Test("current-thread: spawned tasks do not progress outside blockOn")
    func currentThreadNoProgressOutsideBlockOn() throws {
        let r = Runtime.currentThread()
        let flag = FlagBox()
        let handle = r.spawn { flag.flag.store(true, ordering: .sequentiallyConsistent) }
        // Nothing drives the runtime: the task stays queued however long we look.
        for _ in 0..<1000 { sched_yield() }
        let early = flag.flag.load(ordering: .sequentiallyConsistent)
        #expect(!early)
        #expect(r.metrics.injectQueueDepth == 1)
        try r.blockOn { try await handle.value }
        let late = flag.flag.load(ordering: .sequentiallyConsistent)
        #expect(late)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("Runtime.current is nil outside and set on worker threads")
    func runtimeCurrent() {
        #expect(Runtime.current == nil)
        let r = Runtime.multiThread(workers: 2)
        let inside = r.blockOn { () async -> Bool in
            let h = spawn { Runtime.current === r }
            return (try? await h.value) ?? false
        }
        #expect(inside)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("metrics: a spawned task is alive while it runs and not after it is joined", arguments: bothFlavors)
    func aliveTasksMetric(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        let during = try r.blockOn { () async throws -> Int in
            let h = spawn { r.metrics.aliveTasks }
            return try await h.value
        }
        #expect(during == 1)
        #expect(r.metrics.aliveTasks == 0)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("metrics: a spawn from a foreign thread on the current-thread flavor lands in the inject queue")
    func injectDepthMetric() {
        let r = Runtime.currentThread()
        let h = r.spawn { 1 }
        #expect(r.metrics.injectQueueDepth == 1)
        #expect(r.metrics.remoteSchedules == 1)
        #expect((try? r.blockOn { try await h.value }) == 1)
        #expect(r.metrics.injectQueueDepth == 0)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("thread start and stop hooks run on every worker")
    func threadHooks() async throws {
        let starts = TestCounter()
        let stops = TestCounter()
        let parks = TestCounter()
        let parked = Signal()
        var c = Runtime.Configuration()
        c.workerThreads = 2
        c.onThreadStart = { starts.increment() }
        c.onThreadStop = { stops.increment() }
        c.onThreadPark = {
            parks.increment()
            parked.fire()
        }
        let r = Runtime(c)
        r.blockOn { await Task.yield() }
        // An idle worker parks; wait for that instead of assuming it happened before shutdown (on a loaded
        // machine a worker may not have run at all yet).
        try await withDeadline(30, "an idle worker parking") { await parked.wait() }
        #expect(r.shutdown(timeout: .seconds(5)))
        #expect(starts.current == 2)
        #expect(stops.current == 2)
        #expect(parks.current >= 1)
    }

    @Test(
        "a task spawned from the onThreadPark hook runs: the thread does not go to sleep on it (Tokio #8212)",
        arguments: bothFlavors)
    func spawnFromParkHook(_ flavor: Runtime.Configuration.Flavor) async throws {
        let armed = ParkHookArm()
        let ran = Signal()
        var c = Runtime.Configuration(flavor: flavor)
        c.workerThreads = 1
        // The hook reaches the runtime through a weak capture (hooks do not see `Runtime.current`).
        let holder = WeakRuntime()
        c.onThreadPark = { if armed.take() { holder.runtime?.spawn { ran.fire() } } }
        let r = Runtime(c)
        holder.runtime = r
        // blockOn on a thread of its own: if the spawned task is stranded, the body never returns, and the
        // test must still end (at its deadline). The two sleeps park and wake the thread first, so no
        // wake-up left over from starting the body can rescue a stranded task by luck.
        let returned = await blockOnThread(r, seconds: 20, "the task spawned by the park hook") { () async -> Bool in
            try? await Task.sleep(for: .milliseconds(20))
            try? await Task.sleep(for: .milliseconds(20))
            armed.arm()
            // Nothing else runs now: the thread parks, the hook spawns, and only that task fires `ran`.
            await ran.wait()
            return true
        }
        #expect(returned == true)
        guard returned == true else { return }  // the blockOn thread is stuck for good: leave the runtime
        #expect(r.shutdown(timeout: .seconds(5)))
    }

    @Test("thread hooks do not see the runtime: Runtime.current is nil in every hook")
    func hooksDoNotSeeRuntime() throws {
        let seen = Recorder<Bool>()
        var c = Runtime.Configuration()
        c.workerThreads = 1
        c.onThreadStart = { seen.append(Runtime.current == nil) }
        c.onThreadPark = { seen.append(Runtime.current == nil) }
        c.onThreadStop = { seen.append(Runtime.current == nil) }
        let r = Runtime(c)
        let insideTask = r.blockOn { Runtime.current === r }
        #expect(insideTask)
        #expect(r.shutdown(timeout: .seconds(10)))
        #expect(!seen.all.isEmpty && seen.all.allSatisfy { $0 }, "hooks saw the runtime: \(seen.all)")
    }

    @Test("onThreadStart and onThreadStop also run on blocking-pool threads")
    func threadHooksOnBlockingThreads() throws {
        let starts = TestCounter()
        let stops = TestCounter()
        var c = Runtime.Configuration()
        c.workerThreads = 1
        c.onThreadStart = { starts.increment() }
        c.onThreadStop = { stops.increment() }
        let r = Runtime(c)
        let onBlockingThread = try r.blockOn { try await spawnBlocking { currentThreadName() }.value }
        #expect(onBlockingThread.hasPrefix("kyoto-blocking-"))
        #expect(starts.current == 2)  // the worker and the blocking thread
        #expect(r.shutdown(timeout: .seconds(10)))
        #expect(stops.current == 2)
    }

    @Test("globalQueueInterval 1 runs tasks to completion")
    func globalQueueIntervalOne() throws {
        var c = Runtime.Configuration()
        c.workerThreads = 2
        c.globalQueueInterval = 1
        let r = Runtime(c)
        let total = try r.blockOn { () async throws -> Int in
            let set = JoinSet<Int>()
            for i in 0..<10 { set.spawn { i } }
            var sum = 0
            while let v = try await set.next() { sum += v }
            return sum
        }
        #expect(total == 45)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("lifoSlot false still runs everything")
    func lifoDisabled() throws {
        var c = Runtime.Configuration()
        c.workerThreads = 2
        c.lifoSlot = false
        let r = Runtime(c)
        let v = try r.blockOn { () async throws -> Int in
            var hs: [JoinHandle<Int>] = []
            for i in 0..<100 { hs.append(spawn { i }) }
            var s = 0
            for h in hs { s += try await h.value }
            return s
        }
        #expect(v == 4950)
        #expect(r.metrics.totalLifoHits == 0)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("finished tasks are freed soon, also when they finished on another worker than their spawner")
    func finishedTasksFreedAcrossWorkers() {
        // The spawner keeps its worker busy until the other worker has run every task, so each one finishes
        // away from its spawner and the registry returns it to the spawner's worker (TaskRegistry.swift,
        // HomeReturns.swift). More tasks than a worker takes back at once (`homeReturnLimit`), so the overflow
        // path runs too. Every result must be
        // freed once the runtime goes idle, and the handles report finished.
        let r = Runtime.multiThread(workers: 2)
        let n = 3000
        let freed = TestCounter()
        let ran = TestCounter()
        let awayFromSpawner = TestCounter()
        let handles = r.blockOn { () -> [JoinHandle<DeinitProbe>] in
            let spawner = currentThreadName()
            var handles: [JoinHandle<DeinitProbe>] = []
            for _ in 0..<n {
                handles.append(spawn {
                    if currentThreadName() != spawner { awayFromSpawner.increment() }
                    ran.increment()
                    return DeinitProbe { freed.increment() }
                })
            }
            // The last task sits in this worker's LIFO slot, which is not stealable: it runs here afterwards.
            spinWhile(seconds: 20) { ran.current < n - 1 }
            return handles
        }
        spinWhile(seconds: 20) { !handles.allSatisfy({ $0.isFinished }) }
        #expect(ran.current == n)
        #expect(awayFromSpawner.current >= n - 1)
        let allFinished = handles.allSatisfy { $0.isFinished }
        #expect(allFinished)
        #expect(r.metrics.aliveTasks == 0)
        // The handles were the only other references to the results.
        _ = consume handles
        let freeDeadline = Platform.monotonicNanos() + 20_000_000_000
        while freed.current < n && Platform.monotonicNanos() < freeDeadline { sched_yield() }
        #expect(freed.current == n, "finished tasks' results still alive after 20 s")
        r.shutdown(timeout: .seconds(5))
    }

}

@Suite("Stolen tasks go home")
struct HomeReturnsTests {
    /// Runs `n` plain tasks (`Task(executorPreference:)`, not Kyoto's `spawn`: nothing in the registry) from
    /// one task, which keeps its worker busy (awake) until the other worker has run all of them but the one
    /// left in the spawner's LIFO slot (and, with returns on, handed them back). Returns how many task objects
    /// were freed on the spawner's thread (a task's result is freed with its task object), how many were freed
    /// at all, and how many references the spawner's worker accepted in how many deposits. Waits, with a
    /// deadline, until every result has been freed: none may be stranded in a worker's returns once the
    /// runtime idles.
    private func run(returnHome: Bool, n: Int) -> (onSpawner: Int, freed: Int, accepted: Int, batches: Int) {
        var c = Runtime.Configuration()
        c.workerThreads = 2
        let r = Runtime(c, returnsStolenTasksHome: returnHome)
        let freed = TestCounter()
        let onSpawner = TestCounter()
        let ran = TestCounter()
        let returns = r.blockOn {
            let spawner = currentThreadName()
            for _ in 0..<n {
                // The handle is dropped at once: the task's own job holds its last reference.
                Task(executorPreference: r) {
                    _ = ran.increment()
                    return DeinitProbe {
                        if currentThreadName() == spawner { _ = onSpawner.increment() }
                        _ = freed.increment()
                    }
                }
            }
            // The last task sits in this worker's LIFO slot, which is not stealable: it runs here afterwards.
            // Wait until the thief has run the others and, with returns on, handed every one back (a
            // worker drains its returns only between jobs, so they stay pending while this job waits).
            let returns = ThreadContext.withCurrent { $0.withWorker { $0.homeReturns } } ?? nil
            let deadline = Platform.monotonicNanos() + 20_000_000_000
            while Platform.monotonicNanos() < deadline {
                let handedBack = returnHome ? (returns?.pendingCount ?? 0) >= n - 1 : true
                if ran.current >= n - 1 && handedBack { break }
                sched_yield()
            }
            return returns
        }
        spinWhile(seconds: 20) { freed.current < n }
        let result = (onSpawner.current, freed.current, returns?.acceptedCount ?? 0, returns?.acceptedBatches ?? 0)
        r.shutdown(timeout: .seconds(5))
        return result
    }

    @Test("a task another worker ran is freed on the worker that enqueued it, and none is stranded")
    func stolenTasksAreFreedAtHome() {
        // At most as many tasks as a worker's returns hold, so none overflows to the thief.
        let n = HomeReturns.capacity
        let with = run(returnHome: true, n: n)
        let without = run(returnHome: false, n: n)
        print(
            "freed on the spawner's thread: \(with.onSpawner) of \(n) returned home (\(with.accepted) handed back "
                + "in \(with.batches) deposits), \(without.onSpawner) without")
        #expect(with.freed == n, "results still alive 20 s after their tasks finished (stranded returns)")
        #expect(without.freed == n)
        // The spawner's worker stayed awake while the thief ran the tasks, so every one went home; without
        // returns, every stolen task is freed by the thief.
        #expect(with.onSpawner == n)
        #expect(without.onSpawner < n / 2)
        // The thief hands them back in batches (one lock section for several), not one by one.
        #expect(with.accepted >= n - 1 && with.batches < with.accepted)
    }

    @Test("async let and task-group children another worker ran are not handed back (their parent owns them)")
    func childTasksAreNotReturned() {
        // An `async let` child lives in its parent's task allocator with an immortal reference count: holding
        // it past its run would release it after the parent freed its memory. Each round starts two children;
        // the second pushes the first out of this worker's LIFO slot into its queue, and this worker stays busy
        // until the other worker has run the first. Both workers have returns on.
        var c = Runtime.Configuration()
        c.workerThreads = 2
        let r = Runtime(c, returnsStolenTasksHome: true)
        let ranElsewhere = TestCounter()
        let (accepted, parentMovesAway) = r.blockOn { () async -> (Int, Int) in
            let home = currentThreadName()
            let returns = ThreadContext.withCurrent { $0.withWorker { $0.homeReturns } } ?? nil
            // The parent is a standalone task: when a job of it that the home worker enqueued runs on the
            // other worker, it is handed back legitimately. Count those moves (observed after each await).
            var moves = 0
            var onHome = true
            func observe() {
                let nowOnHome = currentThreadName() == home
                if onHome && !nowOnHome { moves += 1 }
                onHome = nowOnHome
            }
            for _ in 0..<50 {
                let first = FlagBox()
                async let a: Int = {
                    if currentThreadName() != home { _ = ranElsewhere.increment() }
                    first.flag.store(true, ordering: .releasing)
                    return 1
                }()
                async let b: Int = 2
                spinWhile(seconds: 10) { !first.flag.load(ordering: .acquiring) }
                // Observe after every suspension point, so that no move of the parent goes uncounted.
                let groupSum = await withTaskGroup(of: Int.self) { group in
                    for i in 0..<4 { group.addTask { i } }
                    var sum = 0
                    while let v = await group.next() {
                        observe()
                        sum += v
                    }
                    return sum
                }
                observe()
                let x = await a
                observe()
                let y = await b
                observe()
                #expect(x + y + groupSum == 9)
            }
            return (returns?.acceptedCount ?? -1, moves)
        }
        r.shutdown(timeout: .seconds(5))
        #expect(ranElsewhere.current > 0, "no async let child ran on the other worker; the test proved nothing")
        // Each stolen child handed back would add one more than the parent's moves can explain.
        #expect(accepted >= 0 && accepted <= parentMovesAway, "children handed back: \(accepted) > \(parentMovesAway)")
    }

    @Test("work a released result's deinit schedules while its worker drains before parking still runs")
    func deinitWorkDuringParkDrainRuns() {
        // Kyoto's spawn: a task the other worker finishes is returned to the spawner's worker, which releases it
        // when it runs out of work, just before it would sleep. The result's deinit starts a task on that
        // worker, into its LIFO slot, which nobody else can take and the last-searcher re-check does not
        // look at. The other worker is kept busy meanwhile: the releasing worker must run the new task
        // instead of going to sleep on it.
        let r = Runtime.multiThread(workers: 2)
        let followUps = TestCounter()
        let spinning = FlagBox()
        let release = FlagBox()
        // Where the spawner ran, where the spawned task ran, and where its result was released.
        let threads = Recorder<String>()
        let spawnerThread = r.blockOn { () -> String in
            // Queue order afterwards: [spawned, spinner], with the empty task in the LIFO slot. The other
            // worker steals from the front: it runs the spawned task (returned to this worker), then spins.
            spawn {
                threads.append("ran on \(currentThreadName())")
                return DeinitProbe {
                    threads.append("released on \(currentThreadName())")
                    Task(executorPreference: r) { _ = followUps.increment() }
                }
            }
            // Plain tasks, not `spawn`: a spawn's stash refill may release returned results (trivial ones) right
            // here, before this worker runs out of work.
            Task(executorPreference: r) {
                spinning.flag.store(true, ordering: .releasing)
                spinWhile(seconds: 20) { !release.flag.load(ordering: .acquiring) }
            }
            Task(executorPreference: r) {}
            spinWhile(seconds: 20) { !spinning.flag.load(ordering: .acquiring) }
            return currentThreadName()
        }
        // This thread's blockOn returned: the spawner's worker runs out of work and releases the returned result.
        spinWhile(seconds: 5) { followUps.current < 1 }
        let beforeRelease = followUps.current
        release.flag.store(true, ordering: .releasing)
        #expect(beforeRelease == 1, "the task started by a released result's deinit waited for another worker")
        // The scenario itself: the task ran on the other worker and its result was released at home.
        let seen = threads.all
        #expect(seen.count == 2 && seen[0] != "ran on \(spawnerThread)", "the scenario did not arise: \(seen)")
        #expect(seen.last == "released on \(spawnerThread)", "the result was not released at home: \(seen)")
        r.shutdown(timeout: .seconds(5))
    }

    /// A reference to a fresh object that counts its own deinit.
    private func probe(_ freed: TestCounter) -> Unmanaged<AnyObject> {
        Unmanaged.passRetained(DeinitProbe { _ = freed.increment() } as AnyObject)
    }

    @Test("a reference handed to an awake home worker waits for its drain")
    func awakeHomeDrains() {
        let returns = HomeReturns()
        let freed = TestCounter()
        returns.deposit(probe(freed))
        returns.deposit(probe(freed))
        #expect(freed.current == 0)
        returns.drainIfPending()
        #expect(freed.current == 2)
    }

    @Test("a reference handed to a sleeping home worker is released by the depositor at once")
    func sleepingHomeIsNotWaitedFor() {
        let returns = HomeReturns()
        let freed = TestCounter()
        returns.deposit(probe(freed))
        // The home worker parks: it drains what is there, then anything handed to it later is released
        // by the depositor (the handshake in HomeReturns.swift).
        returns.homeParks()
        #expect(freed.current == 1)
        returns.deposit(probe(freed))
        #expect(freed.current == 2)
        returns.homeWakes()
        returns.deposit(probe(freed))
        #expect(freed.current == 2)
        returns.drain()
        #expect(freed.current == 3)
    }

    @Test("a batch deposit waits for an awake home worker, is released by the depositor when it sleeps, and is bounded")
    func batchDeposit() {
        let returns = HomeReturns()
        let freed = TestCounter()
        var bits = (0..<3).map { _ in UInt(bitPattern: probe(freed).toOpaque()) }
        returns.deposit(batch: bits, count: 3)
        #expect(freed.current == 0 && returns.pendingCount == 3 && returns.acceptedBatches == 1)
        returns.drainIfPending()
        #expect(freed.current == 3)
        returns.homeParks()
        bits = (0..<2).map { _ in UInt(bitPattern: probe(freed).toOpaque()) }
        returns.deposit(batch: bits, count: 2)
        #expect(freed.current == 5)
        returns.homeWakes()
        // Up to the capacity: the rest is released by the depositor at once.
        for _ in 0..<(HomeReturns.capacity - 1) { returns.deposit(probe(freed)) }
        bits = (0..<3).map { _ in UInt(bitPattern: probe(freed).toOpaque()) }
        returns.deposit(batch: bits, count: 3)
        #expect(freed.current == 7 && returns.pendingCount == HomeReturns.capacity)
        returns.drain()
        #expect(freed.current == HomeReturns.capacity + 7)
    }

    @Test("beyond its capacity, a depositor releases the reference itself")
    func capacityBound() {
        let returns = HomeReturns()
        let freed = TestCounter()
        for _ in 0..<HomeReturns.capacity { returns.deposit(probe(freed)) }
        #expect(freed.current == 0)
        returns.deposit(probe(freed))
        #expect(freed.current == 1)
        returns.drain()
        #expect(freed.current == HomeReturns.capacity + 1)
    }
}

/// Calls `onDeinit` when freed.
final class DeinitProbe: Sendable {
    let onDeinit: @Sendable () -> Void
    init(_ onDeinit: @escaping @Sendable () -> Void) { self.onDeinit = onDeinit }
    deinit { onDeinit() }
}


final class FlagBox: Sendable {
    let flag = Atomic<Bool>(false)
}

/// A weak reference to a runtime, for hooks (a strong capture would keep the runtime alive through its own
/// configuration).
final class WeakRuntime: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): set once before the runtime's threads read it in hooks.
    weak var runtime: Runtime?
}

/// Selects one park of `spawnFromParkHook`.
private final class ParkHookArm: Sendable {
    private let flag = Atomic<Bool>(false)
    // Relaxed: the flag only selects a park; what the test waits for is the spawned task itself.
    func arm() { flag.store(true, ordering: .relaxed) }
    func take() -> Bool { flag.exchange(false, ordering: .relaxed) }
}
