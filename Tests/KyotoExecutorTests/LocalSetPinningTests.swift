// LocalSet: every job of a local task runs on the set's thread, after every kind of await.

import Synchronization
import Testing

@testable import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

/// A default actor, for round trips out of the set and back.
private actor Echo {
    func echo(_ v: Int) -> Int { v }
}

/// Nonisolated: runs on the task's executor (the runtime), off the set.
private func offTheSet(_ v: Int) async -> Int {
    await Task.yield()
    return v
}

/// Where the set under test runs.
enum LocalSetHost: String, CaseIterable, Sendable {
    /// `runUntil` called by a multi-thread runtime's `blockOn` body: the set runs on the blockOn thread.
    case multiThreadBlockOn
    /// `runUntil` called by a current-thread runtime's `blockOn` body: the set runs on the driving thread.
    case currentThreadBlockOn
    /// `runUntil` called by a task spawned on a multi-thread runtime: the set runs on a thread of its own.
    case spawnedTask
}

@Suite("LocalSet pinning")
struct LocalSetPinningTests {
    @Test("every job of a local task stays on the set's thread after timeouts, intervals, clocks, child tasks, task groups, streams, actors, continuations and budget yields",
          arguments: LocalSetHost.allCases)
    func pinnedAfterEveryKindOfAwait(_ host: LocalSetHost) async {
        let r = makeRuntime(host == .currentThreadBlockOn ? .currentThread : .multiThread)
        let work: @Sendable () async throws -> ([String], Int) = {
            try await LocalSet().runUntil { set in
                let log = NonSendableLog()
                let h = set.spawnLocal {
                    log.note("start")
                    _ = try await timeout(after: .seconds(10)) { 1 }
                    log.note("timeout")
                    var ticks = interval(every: .milliseconds(1)).makeAsyncIterator()
                    _ = await ticks.next()
                    _ = await ticks.next()
                    log.note("interval")
                    try await Runtime.current!.clock.sleep(for: .milliseconds(1))
                    log.note("runtime clock")
                    try await Task.sleep(for: .milliseconds(1))
                    log.note("Task.sleep")
                    async let child = offTheSet(3)
                    _ = await child
                    log.note("async let")
                    let sum = await withTaskGroup(of: Int.self) { group in
                        for i in 0..<4 { group.addTask { await offTheSet(i) } }
                        var total = 0
                        for await v in group {
                            log.note("group element")
                            total += v
                        }
                        return total
                    }
                    log.note("group \(sum)")
                    await withTaskCancellationHandler {
                        await Task.yield()
                        log.note("in cancellation handler scope")
                    } onCancel: {}
                    log.note("cancellation handler")
                    let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
                    Task.detached {
                        for i in 0..<3 { continuation.yield(i) }
                        continuation.finish()
                    }
                    for await _ in stream { log.note("stream element") }
                    log.note("stream")
                    _ = await Echo().echo(1)
                    log.note("actor")
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        Task.detached { c.resume() }
                    }
                    log.note("continuation")
                    _ = await offTheSet(1)
                    log.note("nonisolated call")
                    await yieldNow()
                    log.note("yieldNow")
                    for _ in 0..<300 { await consumeBudget() }
                    log.note("budget")
                    _ = try await spawn { 1 }.value
                    _ = try await spawnBlocking { 1 }.value
                    log.note("spawn")
                }
                try await h.value
                let first = log.threads.first
                let offThread = zip(log.entries, log.threads).filter { $0.1 != first }.map { $0.0 }
                return (offThread.isEmpty ? log.entries : offThread.map { "off the set's thread: " + $0 }, Set(log.threads).count)
            }
        }
        let outcome: ([String], Int)?
        switch host {
        case .multiThreadBlockOn, .currentThreadBlockOn:
            outcome = await blockOnThread(r, seconds: 60, "pinning (\(host))") { try await work() }
        case .spawnedTask:
            outcome = await blockOnThread(r, seconds: 60, "pinning (\(host))") { try await spawn { try await work() }.value }
        }
        if let (entries, threadCount) = outcome {
            #expect(threadCount != 1 || entries.last == "spawn", "\(entries)")
            #expect(threadCount == 1, "local jobs ran on \(threadCount) threads: \(entries)")
        }
        #expect(r.shutdown(timeout: .seconds(5)))
    }
}

/// Deliberately not Sendable: two local tasks share it.
final class LocalTally {
    var count = 0
}

extension LocalSetPinningTests {
    @Test("a non-Sendable value shared by two local tasks is never touched from two threads at once (task-group body)")
    func sharedValueInTaskGroupBody() async {
        let r = makeRuntime(.multiThread)
        let n = max(10_000, Int(2_000_000 * stressScale()))
        let outcome = await blockOnThread(r, seconds: 60, "shared tally") { () async throws -> Int in
            try await LocalSet().runUntil { set in
                let tally = LocalTally()
                let ready = TestCounter()
                let a = set.spawnLocal {
                    await withTaskGroup(of: Void.self) { _ in
                        ready.increment()
                        spinWhile(seconds: 2) { ready.current < 2 }
                        for _ in 0..<n { tally.count += 1 }
                    }
                }
                let b = set.spawnLocal {
                    ready.increment()
                    spinWhile(seconds: 2) { ready.current < 2 }
                    for _ in 0..<n { tally.count += 1 }
                }
                try await a.value
                try await b.value
                return tally.count
            }
        }
        #expect(outcome == 2 * n, "lost \(2 * n - (outcome ?? 0)) increments")
        #expect(r.shutdown(timeout: .seconds(5)))
    }
}

extension LocalSetPinningTests {
    @Test("a runtime task calling into a running set (it prefers the runtime, the set's jobs run under the set's identities) gets its answer and returns to the runtime",
          arguments: [Runtime.Configuration.Flavor.multiThread, .currentThread])
    func runtimeTaskCallsIntoSet(_ flavor: Runtime.Configuration.Flavor) async {
        let r = makeRuntime(flavor)
        let outcome = await blockOnThread(r, seconds: 60, "runtime task into set") { () async throws -> [Int] in
            try await LocalSet().runUntil { set in
                let release = set.spawnLocal { try await Task.sleep(for: .milliseconds(50)) }
                var answers: [Int] = []
                for _ in 0..<50 {
                    // A task of the runtime (executor preference: the runtime) hops onto the set and back.
                    let seen = try await spawn { () async -> Int in
                        let n = await set.pendingTaskCount
                        await Task.yield()
                        return n + (Runtime.current == nil ? 1000 : 0)
                    }.value
                    answers.append(seen)
                }
                try await release.value
                return answers
            }
        }
        #expect(outcome?.count == 50 && outcome?.allSatisfy { $0 <= 1 } == true, "\(String(describing: outcome))")
        #expect(r.shutdown(timeout: .seconds(5)))
    }
}

extension LocalSetPinningTests {
    @Test("a local task's Task.sleep lands on the runtime's paused clock: it auto-advances, and the task resumes on the set's thread")
    func localSleepOnPausedClock() async {
        var c = Runtime.Configuration(flavor: .currentThread)
        c.startPaused = true
        let r = Runtime(c)
        let outcome = await blockOnThread(r, seconds: 30, "paused local sleep") { () async throws -> (Duration, Bool) in
            try await LocalSet().runUntil { set in
                let start = r.clock.now
                let thread = kyotoCurrentThreadIdentity()
                let h = set.spawnLocal { () async throws -> Bool in
                    try await Task.sleep(for: .seconds(3600))
                    return kyotoCurrentThreadIdentity() == thread
                }
                let sameThread = try await h.value
                return (start.duration(to: r.clock.now), sameThread)
            }
        }
        // About an hour on the paused clock, reached by auto-advance (a timer on Swift's default executor
        // would take an hour of real time, past this test's deadline). Swift hands the executor the delay
        // left at the moment it enqueues the sleep, a little under the hour (3,599.999 s seen).
        #expect(outcome.map { $0.0 >= Duration.seconds(3599) && $0.1 } == true, "\(String(describing: outcome))")
        r.shutdown(timeout: .seconds(5))
    }
}
