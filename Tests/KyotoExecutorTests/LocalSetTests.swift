// LocalSet: the cases of tokio-semantics.md §4 that apply to Swift.

import Synchronization
import Testing

@testable import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

/// Deliberately not Sendable: local tasks share it without any escape hatch.
final class NonSendableLog {
    var entries: [String] = []
    var threads: [UInt] = []
    func note(_ s: String) {
        entries.append(s)
        threads.append(UInt(bitPattern: Int(bitPattern: pthread_self())))
    }
}

private func thisThread() -> UInt { UInt(bitPattern: Int(bitPattern: pthread_self())) }

/// A flag local tasks read; not Sendable (only the set's thread touches it).
final class LocalFlag {
    var isSet = false
    var respawns = 0
}

/// A local task that spawns its successor and ends, until `flag` is set: the set's queue is never empty.
private func respawnUntil(_ flag: LocalFlag, on set: isolated LocalSet) {
    set.spawnLocal {
        flag.respawns += 1
        if !flag.isSet { respawnUntil(flag, on: set) }
    }
}

extension LocalSet {
    /// Starts a task on the set that the set does not track (an isolated `Task {}`): its jobs share the
    /// set's queue, but `runUntil` neither cancels nor waits for it.
    fileprivate func untracked(_ op: @escaping @Sendable (isolated LocalSet) -> Void) {
        Task { op(self) }
    }
}

@Suite("LocalSet")
struct LocalSetTests {
    @Test("runUntil waits for a task spawned after the last tracked one ended, while the set drains")
    func drainWaitsForLateSpawn() async throws {
        // A set outside any runtime: its tasks' bodies take no hop back from a runtime preference, so the
        // last tracked task L creates U and ends in one job, and U runs between L's end (which resumes the
        // drain) and the drain's resumption E. U spawns X (cancelled up front, tracked) behind E, and B, an
        // untracked job between E and X, holds the set's thread for a bounded time. `end()` used to check
        // for tasks only once, so runUntil returned while X was still queued.
        let late = Recorder<LocalJoinHandle<Int>>()
        let release = TestCounter()
        let finishedAtReturn = try await firstWithin(30) { () async -> Bool in
            await LocalSet().runUntil { set in
                set.spawnLocal {
                    try? await Task.sleep(for: .seconds(3600))  // L: ends when runUntil cancels it
                    set.untracked { s in  // U
                        s.untracked { _ in  // B
                            let deadline = ContinuousClock.now.advanced(by: .milliseconds(500))
                            while release.current == 0 && ContinuousClock.now < deadline {}
                        }
                        late.append(s.spawnLocal { 1 })  // X
                    }
                }
                await Task.yield()
            }
            let finished = late.all.first?.isFinished ?? false
            release.increment()
            return finished
        }
        #expect(finishedAtReturn == true, "runUntil returned before the task spawned while draining ended")
    }

    @Test("unconstrained in a local task runs its body on the set's thread", arguments: bothFlavors)
    func unconstrainedStaysOnTheSetsThread(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        let sameThread = try r.blockOn { () async throws -> Bool in
            try await LocalSet().runUntil { set in
                try await set.spawnLocal { () async -> Bool in
                    let outside = pthread_self()
                    // Before, the task-local binding's closure hopped to the runtime's workers.
                    return await unconstrained { pthread_equal(pthread_self(), outside) != 0 }
                }.value
            }
        }
        #expect(sameThread)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a local handle's value stops waiting when its waiter is cancelled; result waits; the task runs on",
          arguments: bothFlavors)
    func localValueWaitEndsWithTheWaitersCancellation(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        let outcomes = try r.blockOn { () async throws -> [String] in
            try await LocalSet().runUntil { set in
                let gate = Signal()
                let slow = set.spawnLocal { () async -> Int in
                    await gate.wait()
                    return 7
                }
                // Bounds the failure mode (a wait that ignores its waiter's cancellation): released after 10 s.
                let valve = set.spawnLocal {
                    try await Task.sleep(for: .seconds(10))
                    gate.fire()
                }
                var out: [String] = []
                let waiter = set.spawnLocal { () async -> String in
                    do { return "value \(try await slow.value)" } catch { return "\(type(of: error))" }
                }
                await Task.yield()
                waiter.abort()
                out.append(try await waiter.value)
                out.append(slow.isFinished ? "slow finished" : "slow running")
                let cleanup = set.spawnLocal { () async -> String in
                    withUnsafeCurrentTask { $0?.cancel() }
                    set.spawnLocal { gate.fire() }
                    switch await slow.result {
                    case .success(let v): return "result \(v)"
                    case .failure(let e): return "result failed: \(e)"
                    }
                }
                out.append(try await cleanup.value)
                valve.abort()
                return out
            }
        }
        #expect(outcomes == ["CancellationError", "slow running", "result 7"])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a set whose tasks keep spawning successors does not starve the runtime driving it", arguments: bothFlavors)
    func busySetLetsRuntimeRun(_ flavor: Runtime.Configuration.Flavor) async {
        // The set's queue never empties (each local task spawns the next); the driver used to run it until
        // it did, so on a current-thread runtime the core's own jobs (the spawned task below) never ran again.
        let r = makeRuntime(flavor)
        let value = await blockOnThread(r, seconds: 20, "busy LocalSet") { () async throws -> Int in
            try await LocalSet().runUntil { set in
                let flag = LocalFlag()
                respawnUntil(flag, on: set)
                let v = try await spawn { 7 }.value
                flag.isSet = true
                return v
            }
        }
        #expect(value == 7)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("current-thread: a set under blockOn runs while timers fire at the end of every round")
    func setRunsWhileTimersKeepFiring() async {
        // A sleeps 50 µs in a loop; B keeps the queue busy (100 µs of work, then a yield), so every round of
        // the driver ends with A's timer due. The driver used to go straight back to the queue when a timer
        // fired, so the set (and runUntil's body) waited until A and B gave up.
        let r = makeRuntime(.currentThread)
        let limitNanos: UInt64 = 4_000_000_000
        let outcome = await blockOnThread(r, seconds: 30, "set starved by timers") { () async -> (UInt64, Bool) in
            let stop = FlagBox()
            let start = Platform.monotonicNanos()
            let a = spawn {
                while !stop.flag.load(ordering: .acquiring) && Platform.monotonicNanos() - start < limitNanos {
                    try? await Task.sleep(for: .microseconds(50))
                }
            }
            let b = spawn {
                while !stop.flag.load(ordering: .acquiring) && Platform.monotonicNanos() - start < limitNanos {
                    let until = Platform.monotonicNanos() + 100_000
                    while Platform.monotonicNanos() < until {}
                    await Task.yield()
                }
            }
            // Let A and B get going before the set starts.
            try? await Task.sleep(for: .milliseconds(2))
            let ranAt = await LocalSet().runUntil { _ in Platform.monotonicNanos() - start }
            let beforeLimit = !stop.flag.load(ordering: .acquiring) && Platform.monotonicNanos() - start < limitNanos
            stop.flag.store(true, ordering: .releasing)
            _ = try? await a.value
            _ = try? await b.value
            return (ranAt, beforeLimit)
        }
        if let (ranAt, beforeLimit) = outcome {
            #expect(beforeLimit, "the set ran only after the busy tasks gave up (\(ranAt / 1_000_000) ms)")
        }
        r.shutdown(timeout: .seconds(5))
    }

    @Test("every job of a set under blockOn starts with a full cooperative budget", arguments: bothFlavors)
    func setJobsGetFreshBudget(_ flavor: Runtime.Configuration.Flavor) async {
        // The set's jobs ran with whatever budget the thread had: 0 on a multi-thread blockOn thread (so every
        // consumeBudget() yielded), or what the last runtime job left on a current-thread driver.
        let r = makeRuntime(flavor)
        let forced = await blockOnThread(r, seconds: 30, "fresh budget") { () async -> UInt64 in
            await LocalSet().runUntil { _ in
                let before = r.metrics.budgetForcedYields
                for _ in 0..<3 {
                    for _ in 0..<100 { await consumeBudget() }
                    await Task.yield()
                }
                return r.metrics.budgetForcedYields - before
            }
        }
        #expect(forced == 0, "consumeBudget() forced \(forced ?? 0) yields in jobs that spent 100 units each")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a task spawned while the set winds down is cancelled before it starts; runUntil returns")
    func spawnWhileDraining() async {
        let r = makeRuntime(.currentThread)
        let outcome = await blockOnThread(r, seconds: 20, "spawn while draining") { () async -> String in
            let ran = TestCounter()
            let late = Recorder<LocalJoinHandle<Int>>()
            _ = await LocalSet().runUntil { set in
                set.spawnLocal {
                    // Cancelled when the body returns; it then asks for one more task.
                    try? await Task.sleep(for: .seconds(3600))
                    late.append(set.spawnLocal { ran.increment(); return 1 })
                }
                await Task.yield()
                return 0
            }
            guard let handle = late.all.first else { return "no late task" }
            do {
                _ = try await handle.value
                return "late task returned"
            } catch {
                return "\(error) ran=\(ran.current) finished=\(handle.isFinished)"
            }
        }
        #expect(outcome == "\(JoinError.cancelled) ran=0 finished=true")
        r.shutdown(timeout: .seconds(5))
    }
    @Test("current-thread: a LocalSet under a blockOn that waits for the core runs while another blockOn holds it")
    func localSetUnderWaitingBlockOn() async {
        // Thread A's blockOn holds the core and waits for a signal that only B's LocalSet sends. B's blockOn
        // waits for the core; the core holder used to run only its own blockOn's sets, so B's set never ran
        // and the two blocked each other.
        let r = makeRuntime(.currentThread)
        let gate = Signal()
        let aStarted = Signal()
        let a = TestThread {
            _ = r.blockOn { () async -> Int in
                aStarted.fire()
                await gate.wait()
                return 1
            }
        }
        #expect(await aStarted.wait(seconds: 10))
        let b = await blockOnThread(r, seconds: 10, "blockOn B, whose LocalSet opens A's gate") { () async -> Int in
            await LocalSet().runUntil { _ in
                gate.fire()
                return 2
            }
        }
        #expect(b == 2)
        gate.fire()
        guard await a.joined(within: 10, "blockOn A") else { return }
        #expect(r.shutdown(timeout: .seconds(5)))
    }

    @Test("under blockOn every job of every local task runs on the blockOn thread, after every kind of await",
          arguments: bothFlavors)
    func pinnedToBlockOnThread(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        let caller = thisThread()
        let (threads, entries) = try r.blockOn { () async throws -> ([UInt], [String]) in
            try await LocalSet().runUntil { set in
                let log = NonSendableLog()
                let mailbox = Mailbox()
                let a = set.spawnLocal {
                    log.note("a0")
                    await Task.yield()
                    log.note("a1")
                    try await Task.sleep(for: .milliseconds(2))
                    log.note("a2")
                    let v = try await spawn { 21 * 2 }.value  // work on the runtime's workers
                    log.note("a3 \(v)")
                    let b = try await spawnBlocking { 7 }.value  // work on the blocking pool
                    log.note("a4 \(b)")
                    mailbox.put(1)
                }
                let b = set.spawnLocal {
                    log.note("b0")
                    let got = await mailbox.take()  // resumed by another local task
                    log.note("b1 \(got)")
                }
                try await a.value
                try await b.value
                log.note("body")
                return (log.threads, log.entries)
            }
        }
        #expect(entries.count == 8)
        #expect(entries.contains("a3 42") && entries.contains("a4 7") && entries.contains("b1 1"))
        #expect(Set(threads).count == 1, "local jobs ran on \(Set(threads).count) threads")
        #expect(threads.first == caller)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("inside a task spawned under blockOn the set runs on a thread of its own, not the blockOn thread",
          arguments: bothFlavors)
    func spawnedTaskGetsOwnThread(_ flavor: Runtime.Configuration.Flavor) throws {
        let r = makeRuntime(flavor)
        let caller = thisThread()
        let threads = try r.blockOn { () async throws -> [UInt] in
            // Only the blockOn body itself drives sets on the blockOn thread: a spawned task may outlive the
            // body, and the blockOn thread stops driving when the body returns.
            try await spawn {
                try await LocalSet().runUntil { set in
                    let log = NonSendableLog()
                    let h = set.spawnLocal {
                        log.note("x")
                        try await Task.sleep(for: .milliseconds(1))
                        log.note("y")
                    }
                    try await h.value
                    return log.threads
                }
            }.value
        }
        #expect(threads.count == 2)
        #expect(Set(threads).count == 1)
        #expect(threads.first != caller)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("standalone (outside blockOn) the set runs every job on one thread it owns")
    func standaloneOwnThread() async throws {
        let (threads, count) = try await LocalSet().runUntil { set in
            let log = NonSendableLog()
            var handles: [LocalJoinHandle<Void>] = []
            for i in 0..<10 {
                handles.append(set.spawnLocal {
                    log.note("t\(i)")
                    await Task.yield()
                    try await Task.sleep(for: .milliseconds(1))
                    log.note("t\(i)'")
                })
            }
            for h in handles { try await h.value }
            return (log.threads, log.entries.count)
        }
        #expect(count == 20)
        #expect(Set(threads).count == 1)
        #expect(threads.first != thisThread())
    }

    @Test("ending the set cancels unfinished local tasks: their handles resolve cancelled", arguments: bothFlavors)
    func endingCancels(_ flavor: Runtime.Configuration.Flavor) async throws {
        let r = makeRuntime(flavor)
        let handles = r.blockOn { () async -> [LocalJoinHandle<Int>] in
            await LocalSet().runUntil { set in
                var hs: [LocalJoinHandle<Int>] = []
                for _ in 0..<4 {
                    hs.append(set.spawnLocal { () async throws -> Int in
                        try await Task.sleep(for: .seconds(3600))
                        return 1
                    })
                }
                return hs
            }
        }
        for h in handles {
            #expect(h.isFinished)
            await #expect(throws: JoinError.cancelled) { try await h.value }
        }
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a local task waiting for ever is cancelled when the set ends, and the value it holds is freed",
          arguments: bothFlavors, EndlessWait.allCases)
    func endlessTaskReleasesItsValue(_ flavor: Runtime.Configuration.Flavor, _ wait: EndlessWait) async {
        // Tokio T4.5. Kyoto's set lives for one runUntil: when the body returns it cancels the task (whose wait
        // never ends otherwise: a one-hour sleep, or a continuation only its cancellation resumes) and awaits
        // it, so the non-Sendable value the task captured is freed by the time runUntil returns.
        let r = makeRuntime(flavor)
        let freed = Signal()
        let outcome = await blockOnThread(r, seconds: 30, "runUntil with an endless local task (\(wait))") {
            () async -> (freedAtReturn: Bool, finished: Bool, result: String) in
            let started = Mailbox()
            let handle = await LocalSet().runUntil { set in
                let resource = LocalResource(freed)
                let h = set.spawnLocal { () async throws -> Int in
                    started.put(1)
                    switch wait {
                    case .sleep: try await Task.sleep(for: .seconds(3600))
                    case .cancellableContinuation:
                        await CancellableForever().wait()
                        try Task.checkCancellation()
                    }
                    return resource.id
                }
                _ = await started.take()  // the task holds `resource` and is suspended in its wait
                return h
            }
            let freedAtReturn = freed.isSet
            let result: String
            switch await handle.result {
            case .success(let v): result = "value \(v)"
            case .failure(let e): result = "\(e)"
            }
            return (freedAtReturn, handle.isFinished, result)
        }
        #expect(outcome?.freedAtReturn == true, "the value the cancelled local task held was not freed by runUntil")
        #expect(outcome?.finished == true)
        #expect(outcome?.result == "\(JoinError.cancelled)")
        #expect(r.shutdown(timeout: .seconds(5)))
    }

    @Test("128 local tasks, each awaiting a nested local task's value, all complete with the right values",
          arguments: bothFlavors)
    func nestedSpawnLocal(_ flavor: Runtime.Configuration.Flavor) async {
        // Tokio T4.7. Half the inner tasks yield before returning, so their outer task suspends in `value`; the
        // other half may already have finished when their outer task first awaits.
        let r = makeRuntime(flavor)
        let count = 128
        let outcome = await blockOnThread(r, seconds: 30, "\(count) nested local tasks") {
            () async throws -> (values: [Int], pending: Int) in
            try await LocalSet().runUntil { set in
                var outer: [LocalJoinHandle<Int>] = []
                for i in 0..<count {
                    outer.append(set.spawnLocal { () async throws -> Int in
                        let inner = set.spawnLocal { () async -> Int in
                            if i % 2 == 0 { await Task.yield() }
                            return i * i
                        }
                        return try await inner.value + 1
                    })
                }
                var values: [Int] = []
                for h in outer { values.append(try await h.value) }
                return (values, set.pendingTaskCount)
            }
        }
        #expect(outcome?.values == (0..<count).map { $0 * $0 + 1 })
        #expect(outcome?.pending == 0)
        #expect(r.shutdown(timeout: .seconds(5)))
    }

    @Test("abort before start never runs the body; abort is reflected in the handle")
    func abortLocal() throws {
        let r = Runtime.currentThread()
        let ran = try r.blockOn { () async throws -> Bool in
            await LocalSet().runUntil { set in
                let log = NonSendableLog()
                let h = set.spawnLocal { log.note("ran") }
                h.abort()
                await #expect(throws: JoinError.cancelled) { try await h.value }
                return !log.entries.isEmpty
            }
        }
        #expect(!ran)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("local tasks see the set's runtime as current, even on another runtime's blocking thread")
    func currentRuntimeOnForeignThread() throws {
        let a = Runtime.multiThread(workers: 1)
        let b = Runtime.multiThread(workers: 1)
        let sawB = try a.blockOn { () async throws -> Bool in
            try await spawnBlocking { () -> Bool in
                // A blocking-pool thread of `a` drives `b`'s blockOn, and with it the set.
                b.blockOn { () async -> Bool in
                    await LocalSet().runUntil { set in
                        let h = set.spawnLocal { Runtime.current === b }
                        return (try? await h.value) ?? false
                    }
                }
            }.value
        }
        #expect(sawB)
        #expect(b.shutdown(timeout: .seconds(5)))
        #expect(a.shutdown(timeout: .seconds(5)))
    }

    @Test("a driver stops running a set's jobs once the set is bound to another driver")
    func oldDriverLeavesReboundJobsAlone() async {
        // What `runUntil`'s end and the next `runUntil` do, on other threads, while the old driver thread is
        // still inside its loop: the set's later jobs belong to the new driver only.
        let x = LocalExecutor()
        let d1 = LocalDriver.startOwnedThread(shared: nil)
        d1.attach(x)
        x.bind(d1)
        let d2 = LocalDriver(parker: Parker(), shared: nil)  // driven below, by this test
        let notes = TestCounter()
        let probe = RebindProbe(x, notes)
        await probe.rebind(from: d1, to: d2)  // runs on d1's thread; queues `note` before it returns
        d1.stop()
        #expect(d1.exited.wait(timeout: .seconds(10)))
        #expect(notes.current == 0, "the old driver ran a job of the set bound to the new one")
        #expect(x.hasPendingJobs)
        _ = d2.runPending()  // the new driver runs it
        #expect(notes.current == 1)
    }

    @Test("assumeIsolated works on the set's thread (checkIsolated / isIsolatingCurrentContext)")
    func assumeIsolatedWorks() throws {
        let r = Runtime.multiThread(workers: 2)
        let count = try r.blockOn { () async throws -> Int in
            try await LocalSet().runUntil { set in
                let h = set.spawnLocal { () -> Int in
                    // A second local task, queued behind this one: both are unfinished when the helper looks.
                    let queued = set.spawnLocal {}
                    // A synchronous, nonisolated helper asserting the set's isolation at run time.
                    let pending = peekPending(set)
                    try? await queued.value
                    return pending
                }
                return try await h.value
            }
        }
        #expect(count == 2)
        r.shutdown(timeout: .seconds(5))
    }
}

/// A value a local task holds; not Sendable. Fires `freed` when it is deinitialized.
final class LocalResource {
    let id = 1
    private let freed: Signal
    init(_ freed: Signal) { self.freed = freed }
    deinit { freed.fire() }
}

/// How a local task waits for ever (until it is cancelled).
enum EndlessWait: CaseIterable, Sendable {
    /// A one-hour `Task.sleep`: a timer on the runtime (or Swift's clock outside one).
    case sleep
    /// A continuation that only the task's cancellation resumes: no timer involved.
    case cancellableContinuation
}

/// A wait that ends only when the waiting task is cancelled.
final class CancellableForever: Sendable {
    private let state = CheckedMutex<(cancelled: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let cancelled = state.withLock { s -> Bool in
                    if s.cancelled { return true }
                    s.waiter = c
                    return false
                }
                if cancelled { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.cancelled = true
                return s.waiter.take()
            }
            waiter?.resume()
        }
    }
}

/// Nonisolated and synchronous: it can only reach the set's state by asserting isolation.
private func peekPending(_ set: LocalSet) -> Int {
    set.assumeIsolated { $0.pendingTaskCount }
}

/// An actor on a bare LocalExecutor, to drive the executor's binding by hand.
private actor RebindProbe {
    private let executor: LocalExecutor
    private let notes: TestCounter

    init(_ executor: LocalExecutor, _ notes: TestCounter) {
        self.executor = executor
        self.notes = notes
    }

    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    func note() { _ = notes.increment() }

    /// Moves the executor from `d1` (whose thread runs this job) to `d2`, then queues a job of its own.
    func rebind(from d1: LocalDriver, to d2: LocalDriver) {
        executor.bind(nil)
        d1.detach(executor)
        d2.attach(executor)
        executor.bind(d2)
        Task { self.note() }  // isolated to this actor: its first job is queued on the executor at once
    }
}
