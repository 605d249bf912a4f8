// Time: the paused test clock, advance(by:), auto-advance, interval and timeout (tokio-semantics §5).

import Synchronization
import Testing

@testable import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

/// A current-thread runtime with a paused clock.
private func pausedRuntime() -> Runtime {
    var c = Runtime.Configuration(flavor: .currentThread)
    c.startPaused = true
    return Runtime(c)
}

/// Lets the tasks woken so far run: yields several times, so the caller stays runnable throughout and the
/// paused clock does not auto-advance meanwhile.
private func settle() async {
    for _ in 0..<10 { await Task.yield() }
}

private func ms(_ n: Int64) -> Duration { .milliseconds(n) }

/// Collects an interval's ticks, as durations since `start`, on a task of its own.
private final class Ticker: Sendable {
    let ticks = Recorder<Duration>()
    private let task = CheckedMutex<Task<Void, Never>?>(nil)

    init(_ interval: Interval, start: RuntimeClock.Instant) {
        let ticks = self.ticks
        task.withLock {
            $0 = Task(executorPreference: Runtime.current!) {
                for await tick in interval { ticks.append(start.duration(to: tick)) }
            }
        }
    }

    func stop() { task.withLock { $0?.cancel() } }
}

@Suite("Paused clock")
struct PausedClockTests {
    @Test("T5.1: sleeping d on a paused clock takes exactly d of its time and no real time", arguments: [1, 10, 60] as [Int64])
    func exactSleep(_ d: Int64) async {
        let r = pausedRuntime()
        let result = await blockOnThread(r, seconds: 30, "paused sleep") { () async throws -> ([Duration], Duration) in
            // Real time is measured on the driver's own thread (the test's cooperative pool may be busy).
            let real = ContinuousClock.now
            var out: [Duration] = []
            for scale in [1, 1000, 3_600_000] as [Int64] {  // d ms, d s, d hours
                let start = r.clock.now
                try await r.clock.sleep(for: .milliseconds(d * scale))
                out.append(start.duration(to: r.clock.now))
            }
            return (out, ContinuousClock.now - real)
        }
        #expect(result?.0 == [ms(d), ms(d * 1000), ms(d * 3_600_000)])
        #expect((result?.1 ?? .seconds(60)) < .seconds(10), "a paused clock sleeps hours in no real time")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("Task.sleep on a paused clock takes d of its time, rounded to whole milliseconds", arguments: [1, 10, 60] as [Int64])
    func taskSleepOnPausedClock(_ d: Int64) async {
        let r = pausedRuntime()
        let result = await blockOnThread(r, seconds: 30, "paused Task.sleep") { () async throws -> ([Duration], Duration) in
            let real = ContinuousClock.now
            var out: [Duration] = []
            for scale in [1, 3_600_000] as [Int64] {
                let start = r.clock.now
                try await Task.sleep(for: .milliseconds(d * scale))
                out.append(start.duration(to: r.clock.now))
            }
            return (out, ContinuousClock.now - real)
        }
        // Exact unless the thread was held up between the call and the runtime receiving it (then early by
        // that much): bounded here by the real time the sleeps took.
        let slack = result?.1 ?? .seconds(60)
        #expect(slack < .seconds(10), "a paused clock sleeps hours in no real time")
        for (got, want) in zip(result?.0 ?? [], [ms(d), ms(d * 3_600_000)]) {
            #expect(got <= want && got >= want - slack, "slept \(got) of paused time for \(want)")
        }
        r.shutdown(timeout: .seconds(5))
    }

    @Test("T5.2: advance(by:) wakes a sleeper exactly when its deadline is reached, not before")
    func advanceWakesAtDeadline() async {
        let r = pausedRuntime()
        let outcome = await blockOnThread(r, seconds: 30, "advance") { () async throws -> [Bool] in
            var seen: [Bool] = []
            // One advance of 250 us is not enough; 1500 us more is.
            let woke = Signal()
            let sleeper = spawn {
                try await r.clock.sleep(for: .milliseconds(1))
                woke.fire()
            }
            await settle()
            await r.advance(by: .microseconds(250))
            await settle()
            seen.append(woke.isSet)
            await r.advance(by: .microseconds(1500))
            await settle()
            seen.append(woke.isSet)
            try await sleeper.value
            // Four advances of 250 us: ready only after the fourth.
            let woke2 = Signal()
            let sleeper2 = spawn {
                try await r.clock.sleep(for: .milliseconds(1))
                woke2.fire()
            }
            await settle()
            for _ in 0..<4 {
                await r.advance(by: .microseconds(250))
                await settle()
                seen.append(woke2.isSet)
            }
            try await sleeper2.value
            return seen
        }
        #expect(outcome == [false, true, false, false, false, true])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("advance(by:) moves the clock by exactly the duration, sub-millisecond parts included")
    func advanceIsExact() async {
        let r = pausedRuntime()
        let elapsed = await blockOnThread(r, seconds: 30, "advance exact") { () async -> Duration in
            let start = r.clock.now
            await r.advance(by: .microseconds(51_592))
            return start.duration(to: r.clock.now)
        }
        #expect(elapsed == .microseconds(51_592))
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a paused clock does not move while tasks run and no timer is due")
    func clockStandsStill() async {
        let r = pausedRuntime()
        let moved = await blockOnThread(r, seconds: 30, "still") { () async -> Duration in
            let start = r.clock.now
            for _ in 0..<1000 { await Task.yield() }
            usleep(2000)
            return start.duration(to: r.clock.now)
        }
        #expect(moved == .zero)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("T5.3: very long sleeps complete through auto-advance")
    func hugeSleeps() async {
        let r = pausedRuntime()
        let elapsed = await blockOnThread(r, seconds: 30, "huge sleeps") { () async throws -> [Duration] in
            var out: [Duration] = []
            for d in [Duration.seconds(5 * 365 * 86_400), .seconds(Int64.max / 4)] {
                let start = r.clock.now
                try await r.clock.sleep(for: d)
                out.append(start.duration(to: r.clock.now))
            }
            // Through Swift's own sleep too (no overflow on the way).
            let start = r.clock.now
            try await Task.sleep(for: .seconds(Int64.max / 4))
            out.append(start.duration(to: r.clock.now))
            return out
        }
        #expect(elapsed?.first == .seconds(5 * 365 * 86_400))
        #expect((elapsed?[1] ?? .zero) > .seconds(100 * 365 * 86_400), "the far deadline was reached, not skipped")
        #expect((elapsed?.last ?? .zero) > .seconds(100 * 365 * 86_400), "the far deadline was reached, not skipped")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("T5.4: a zero sleep completes with no time passing")
    func zeroSleep() async {
        let r = pausedRuntime()
        let elapsed = await blockOnThread(r, seconds: 30, "zero sleep") { () async throws -> Duration in
            let start = r.clock.now
            try await Task.sleep(for: .zero)
            try await r.clock.sleep(until: start)
            return start.duration(to: r.clock.now)
        }
        #expect(elapsed == .zero)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("timers fire in deadline order, each at its own instant")
    func deadlineOrder() async {
        let r = pausedRuntime()
        let order = await blockOnThread(r, seconds: 30, "order") { () async throws -> [String] in
            let log = Recorder<String>()
            let start = r.clock.now
            var handles: [JoinHandle<Void>] = []
            for (name, d) in [("c", 30), ("a", 10), ("b", 20), ("a2", 10)] as [(String, Int64)] {
                handles.append(spawn {
                    try await r.clock.sleep(until: start.advanced(by: .milliseconds(d)))
                    log.append("\(name)@\(start.duration(to: r.clock.now))")
                })
            }
            for h in handles { try await h.value }
            return log.all
        }
        #expect(order == ["a@0.01 seconds", "a2@0.01 seconds", "b@0.02 seconds", "c@0.03 seconds"])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("T5.11: the same program on two paused runtimes sees the same instants (sleeps on the runtime's clock)")
    func deterministic() async {
        func program() async -> [Duration]? {
            let r = pausedRuntime()
            defer { r.shutdown(timeout: .seconds(5)) }
            return await blockOnThread(r, seconds: 30, "deterministic") { () async throws -> [Duration] in
                let log = Recorder<Duration>()
                let start = r.clock.now
                var seed = SeededRandom(seed: 42)
                var handles: [JoinHandle<Void>] = []
                for _ in 0..<50 {
                    let steps = (0..<3).map { _ in Int64.random(in: 0...5000, using: &seed) }
                    handles.append(spawn {
                        for step in steps {
                            try await r.clock.sleep(until: r.clock.now.advanced(by: .microseconds(step)))
                            log.append(start.duration(to: r.clock.now))
                        }
                    })
                }
                for h in handles { try await h.value }
                return log.all
            }
        }
        let first = await program()
        let second = await program()
        #expect(first != nil && first == second)
        #expect(first?.count == 150)
    }

    @Test("auto-advance waits for a spawnBlocking job in flight, and its completion wakes the runtime")
    func blockingInhibitsAutoAdvance() async {
        let r = pausedRuntime()
        let real = ContinuousClock.now
        let result = await blockOnThread(r, seconds: 30, "blocking") { () async throws -> (Bool, Duration) in
            let done = Signal()
            let start = r.clock.now
            let job = spawnBlocking {
                usleep(50_000)
                done.fire()
            }
            // Without the inhibition the clock would jump 10 s at once, before the job finished.
            try await r.clock.sleep(for: .seconds(10))
            let finishedFirst = done.isSet
            try await job.value
            return (finishedFirst, start.duration(to: r.clock.now))
        }
        #expect(result?.0 == true, "the sleep ended before the blocking job finished")
        #expect(result?.1 == .seconds(10))
        #expect(ContinuousClock.now - real >= .milliseconds(50))
        r.shutdown(timeout: .seconds(5))
    }

    @Test("T1.7: a JoinSet of tasks with decreasing sleeps yields them in completion order on a paused clock")
    func joinSetCompletionOrder() async {
        let r = pausedRuntime()
        let result = await blockOnThread(r, seconds: 30, "T1.7") { () async throws -> ([Int], Duration) in
            let start = r.clock.now
            let set = JoinSet<Int>()
            for i in 0..<10 {
                set.spawn {
                    try await r.clock.sleep(for: .seconds(Int64(10 - i)))
                    return i
                }
            }
            var order: [Int] = []
            while let i = try await set.next() { order.append(i) }
            return (order, start.duration(to: r.clock.now))
        }
        #expect(result?.0 == Array((0..<10).reversed()))
        #expect(result?.1 == .seconds(10))
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a paused runtime's clock and advance(by:) are per runtime")
    func perRuntime() async {
        let a = pausedRuntime()
        let b = pausedRuntime()
        let startB = b.clock.now
        let moved = await blockOnThread(a, seconds: 30, "per runtime") { () async -> Duration in
            await a.advance(by: .seconds(100))
            return startB.duration(to: b.clock.now)
        }
        #expect(moved == .zero)
        a.shutdown(timeout: .seconds(5))
        b.shutdown(timeout: .seconds(5))
    }

    @Test("a task of another runtime sleeping on a paused clock wakes when that clock reaches the deadline")
    func sleepOnOtherRuntimesClock() async {
        let paused = pausedRuntime()
        let other = makeRuntime(.multiThread)
        let clock = paused.clock
        let start = clock.now
        let woke = Signal()
        let sleeper = other.spawn {
            try await clock.sleep(until: start.advanced(by: .seconds(5)))
            woke.fire()
        }
        let seen = await blockOnThread(paused, seconds: 30, "drive paused") { () async -> [Bool] in
            var seen: [Bool] = []
            await paused.advance(by: .seconds(4))
            seen.append(woke.isSet)
            await paused.advance(by: .seconds(1))
            seen.append(await woke.wait(seconds: 10))
            return seen
        }
        #expect(seen == [false, true])
        _ = try? await sleeper.value
        other.shutdown(timeout: .seconds(5))
        paused.shutdown(timeout: .seconds(5))
    }

    @Test("a RuntimeClock.sleep cancelled while it waits, or before it starts, throws CancellationError at once",
          arguments: bothFlavors)
    func cancelledClockSleep(_ flavor: Runtime.Configuration.Flavor) async {
        let r = makeRuntime(flavor)
        let outcome = await blockOnThread(r, seconds: 30, "cancel sleep") { () async -> [String] in
            let caught = Recorder<String>()
            let started = Signal()
            let h = spawn { () async -> Void in
                started.fire()
                do {
                    try await r.clock.sleep(until: r.clock.now.advanced(by: .seconds(3600)))
                    caught.append("slept")
                } catch {
                    caught.append("\(type(of: error))")
                }
            }
            await started.wait()
            await settle()
            h.abort()
            _ = try? await h.value
            // Already cancelled when it starts: the waker never arms.
            let pre = spawn { () async -> Void in
                withUnsafeCurrentTask { $0?.cancel() }
                do {
                    try await r.clock.sleep(until: r.clock.now.advanced(by: .seconds(3600)))
                    caught.append("slept")
                } catch {
                    caught.append("\(type(of: error))")
                }
            }
            _ = try? await pre.value
            return caught.all
        }
        #expect(outcome == ["CancellationError", "CancellationError"])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a finished spawnBlocking job's waiter runs before the paused clock jumps")
    func blockingResultBeforeJump() async {
        let r = pausedRuntime()
        let iterations = max(100, Int(2000 * stressScale()))
        let jumps = await blockOnThread(r, seconds: 120, "blocking race") { () async throws -> Int in
            // A timer an hour away is pending throughout.
            let far = spawn { try await r.clock.sleep(for: .seconds(3600)) }
            var jumps = 0
            for _ in 0..<iterations {
                let before = r.clock.now
                try await spawnBlocking { () -> Void in }.value
                if r.clock.now != before { jumps += 1 }
            }
            far.abort()
            return jumps
        }
        #expect(jumps == 0, "the clock jumped in \(jumps ?? -1) of \(iterations) iterations")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("shutdown(timeout:) of a paused runtime returns at its deadline even while timers keep re-arming")
    func shutdownBoundedWithTickingTimers() async {
        let r = pausedRuntime()
        _ = await blockOnThread(r, seconds: 30, "start") { () async -> Void in
            // Not spawned through Kyoto, so shutdown does not cancel it: it ticks forever.
            Task(executorPreference: r) {
                for await _ in r.interval(every: .milliseconds(1)) {}
            }
            // And a spawned task that ignores cancellation.
            spawn { await Signal().wait() }
            await settle()
        }
        let finished = await onThread(seconds: 20) { r.shutdown(timeout: .milliseconds(300)) }
        #expect(finished == false, "shutdown(timeout: 300 ms) returned \(String(describing: finished)) (nil: not within 20 s)")
    }

    @Test("once its runtime has shut down, a clock's sleeps throw CancellationError and its intervals end")
    func clockAfterShutdown() async throws {
        let r = makeRuntime(.multiThread)
        let clock = r.clock
        r.shutdown(timeout: .seconds(5))
        let outcome = try await firstWithin(20) { () async -> (String, Int) in
            var sleep = "slept"
            do {
                try await clock.sleep(for: .seconds(3600))
            } catch {
                sleep = "\(type(of: error))"
            }
            var ticks = 0
            for await _ in r.interval(every: .milliseconds(1)) {
                ticks += 1
                if ticks > 100 { break }
            }
            return (sleep, ticks)
        }
        #expect(outcome?.0 == "CancellationError")
        #expect(outcome?.1 == 1, "only the immediate first tick")
    }

    @Test("catch-up ticks spend the cooperative budget")
    func burstSpendsBudget() async {
        let r = pausedRuntime()
        let forced = await blockOnThread(r, seconds: 30, "burst budget") { () async -> UInt64 in
            let before = r.metrics.budgetForcedYields
            var it = r.interval(every: .milliseconds(1)).makeAsyncIterator()
            _ = await it.next()
            await r.advance(by: .seconds(2))
            for _ in 0..<1000 { _ = await it.next() }  // all due already: a burst of 1,000
            return r.metrics.budgetForcedYields - before
        }
        #expect((forced ?? 0) >= 5, "1,000 ready ticks yielded \(forced ?? 0) times")
        r.shutdown(timeout: .seconds(5))
    }

    @Test(".delay schedules from the time a due tick is delivered, after its budget yield")
    func delayReadsTimeAfterBudgetYield() async {
        let r = pausedRuntime()
        let next = await blockOnThread(r, seconds: 30, "delay after yield") { () async -> Duration in
            let start = r.clock.now
            var it = r.interval(every: .milliseconds(100), missedTickBehavior: .delay).makeAsyncIterator()
            _ = await it.next()
            await r.advance(by: .milliseconds(150))
            // Runs while the ticker yields for its budget: time moves on during the tick's delivery.
            spawn { await r.advance(by: .milliseconds(40)) }
            while !_budgetTryConsume() {}  // spend the budget, so the due tick's own budget step yields
            _ = await it.next()
            return start.duration(to: it.nextTick)
        }
        // Delivered at +190 ms: the next tick is due one period later (Tokio); +250 ms used the time read
        // before the yield.
        #expect(next == .milliseconds(290))
        r.shutdown(timeout: .seconds(5))
    }

    @Test("shutdown of a paused runtime with sleeping tasks completes")
    func shutdownWithSleepers() async {
        let r = pausedRuntime()
        let started = Signal()
        _ = await blockOnThread(r, seconds: 30, "spawn sleepers") { () async -> Void in
            for _ in 0..<10 {
                spawn {
                    started.fire()
                    try await Task.sleep(for: .seconds(3600))
                }
            }
            await settle()
        }
        #expect(started.isSet)
        #expect(r.shutdown(timeout: .seconds(10)))
    }
}

@Suite("Interval")
struct IntervalTests {
    /// Runs Tokio's interval script (tokio-semantics T5.5–T5.7) for `behavior` and returns the ticks seen
    /// after each step, in milliseconds since the start.
    private func script(_ behavior: MissedTickBehavior) async -> [[Int64]]? {
        let r = pausedRuntime()
        defer { r.shutdown(timeout: .seconds(5)) }
        return await blockOnThread(r, seconds: 30, "interval \(behavior)") { () async -> [[Int64]] in
            let start = r.clock.now
            let ticker = Ticker(interval(startingAt: start, every: .milliseconds(300), missedTickBehavior: behavior), start: start)
            var seen: [[Int64]] = []
            func record() async {
                await settle()
                seen.append(ticker.ticks.all.map { $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000 })
            }
            await record()
            await r.advance(by: .milliseconds(1))
            let steps: [Int64] =
                switch behavior {
                case .burst: [100, 200, 650, 200, 100, 250]
                case .delay: [100, 200, 650, 100, 201, 300, 300]
                case .skip: [100, 200, 650, 250, 300, 300]
                }
            for step in steps {
                await r.advance(by: .milliseconds(step))
                await record()
            }
            ticker.stop()
            return seen
        }
    }

    @Test("T5.5: burst catches up with back-to-back ticks at their scheduled instants")
    func burst() async {
        let seen = await script(.burst)
        #expect(seen == [
            [0], [0], [0, 300], [0, 300, 600, 900], [0, 300, 600, 900], [0, 300, 600, 900, 1200],
            [0, 300, 600, 900, 1200, 1500],
        ])
    }

    @Test("T5.6: delay restarts the schedule one period after a late tick")
    func delay() async {
        let seen = await script(.delay)
        #expect(seen == [
            [0], [0], [0, 300], [0, 300, 600], [0, 300, 600], [0, 300, 600, 1251], [0, 300, 600, 1251, 1551],
            [0, 300, 600, 1251, 1551, 1851],
        ])
    }

    @Test("T5.7: skip drops missed ticks and keeps the original schedule")
    func skip() async {
        let seen = await script(.skip)
        #expect(seen == [
            [0], [0], [0, 300], [0, 300, 600], [0, 300, 600, 1200], [0, 300, 600, 1200, 1500],
            [0, 300, 600, 1200, 1500, 1800],
        ])
    }

    @Test("T5.8: the first tick is immediate; a later start delays it; ticks are scheduled instants")
    func firstTick() async {
        let r = pausedRuntime()
        let result = await blockOnThread(r, seconds: 30, "first tick") { () async -> [Duration] in
            let start = r.clock.now
            var out: [Duration] = []
            var it = interval(every: .milliseconds(10)).makeAsyncIterator()
            out.append(start.duration(to: await it.next()!))
            out.append(start.duration(to: r.clock.now))  // no time passed
            var late = interval(startingAt: start.advanced(by: .milliseconds(50)), every: .milliseconds(10))
                .makeAsyncIterator()
            out.append(start.duration(to: await late.next()!))
            out.append(start.duration(to: await late.next()!))
            return out
        }
        #expect(result == [.zero, .zero, .milliseconds(50), .milliseconds(60)])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("reset, resetImmediately, reset(after:) and reset(at:) move the next tick as in Tokio")
    func resets() async {
        let r = pausedRuntime()
        let result = await blockOnThread(r, seconds: 30, "resets") { () async -> [Duration] in
            let start = r.clock.now
            var out: [Duration] = []
            var it = r.interval(every: .milliseconds(300)).makeAsyncIterator()
            out.append(start.duration(to: await it.next()!))  // 0
            await r.advance(by: .milliseconds(100))
            it.reset()  // one period from now: 400
            out.append(start.duration(to: it.nextTick))
            out.append(start.duration(to: await it.next()!))  // 400, by auto-advance
            it.resetImmediately()  // now
            out.append(start.duration(to: await it.next()!))  // 400 again, no wait
            it.reset(after: .milliseconds(50))
            out.append(start.duration(to: await it.next()!))  // 450
            it.reset(at: start.advanced(by: .seconds(2)))
            out.append(start.duration(to: await it.next()!))  // 2000
            out.append(start.duration(to: await it.next()!))  // 2300: the period continues from there
            it.missedTickBehavior = .delay
            await r.advance(by: .milliseconds(1000))  // now 3300: the 2600 tick is late
            out.append(start.duration(to: await it.next()!))  // 2600
            out.append(start.duration(to: it.nextTick))  // delay: now + period = 3600
            return out
        }
        #expect(result == [
            .zero, .milliseconds(400), .milliseconds(400), .milliseconds(400), .milliseconds(450), .seconds(2),
            .milliseconds(2300), .milliseconds(2600), .milliseconds(3600),
        ])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("ticks on the real clock of either flavor follow the schedule; cancelling the task ends iteration",
          arguments: bothFlavors)
    func realClock(_ flavor: Runtime.Configuration.Flavor) async {
        let r = makeRuntime(flavor)
        let result = await blockOnThread(r, seconds: 30, "real interval") { () async throws -> ([Duration], Bool) in
            let real = ContinuousClock.now
            var ticks: [RuntimeClock.Instant] = []
            for await tick in interval(every: .milliseconds(10)) {
                ticks.append(tick)
                if ticks.count == 4 { break }
            }
            let tookLongEnough = ContinuousClock.now - real >= .milliseconds(30)
            // A cancelled task's iteration ends.
            let ended = spawn { () async -> Int in
                var n = 0
                withUnsafeCurrentTask { $0?.cancel() }
                for await _ in interval(every: .milliseconds(1)) { n += 1 }
                return n
            }
            #expect(try await ended.value == 0)
            return (ticks.map { ticks[0].duration(to: $0) }, tookLongEnough)
        }
        #expect(result?.0 == [.zero, .milliseconds(10), .milliseconds(20), .milliseconds(30)])
        #expect(result?.1 == true)
        r.shutdown(timeout: .seconds(5))
    }
}

private struct BodyError: Error, Equatable {}

@Suite("Time driver")
struct TimeDriverTests {
    @Test("a worker that wins the time-driver election sleeps until the deadline read after winning")
    func deadlineReadAfterElection() {
        // The interleaving of the bug: a timer that becomes the earliest is inserted between the parking
        // worker's first look at the timers and its election (the insert saw no driver, so nobody re-arms
        // the new driver's sleep). The election closure plays that insert.
        var earliest: UInt64? = 3_600_000_000_000
        var isDriver = false
        let timeout = Worker.driverTimeout(
            isDriver: &isDriver,
            nextDeadline: { earliest },
            elect: {
                earliest = 1_000_000
                return true
            },
            now: { 0 })
        #expect(isDriver)
        #expect(timeout == 1_000_000, "slept until the stale deadline")
    }

    @Test("no timers: no election, no timeout; lost election: no timeout; past deadline: zero")
    func otherCases() {
        var isDriver = false
        var elections = 0
        #expect(Worker.driverTimeout(isDriver: &isDriver, nextDeadline: { nil }, elect: { elections += 1; return true }, now: { 0 }) == nil)
        #expect(elections == 0 && !isDriver)
        #expect(Worker.driverTimeout(isDriver: &isDriver, nextDeadline: { 5 }, elect: { false }, now: { 0 }) == nil)
        #expect(!isDriver)
        #expect(Worker.driverTimeout(isDriver: &isDriver, nextDeadline: { 5 }, elect: { true }, now: { 9 }) == 0)
        #expect(isDriver)
        // Already the driver: no second election; the timeout follows the current earliest deadline.
        #expect(Worker.driverTimeout(isDriver: &isDriver, nextDeadline: { 20 }, elect: { Issue.record("re-elected"); return false }, now: { 9 }) == 11)
        #expect(Worker.driverTimeout(isDriver: &isDriver, nextDeadline: { nil }, elect: { false }, now: { 9 }) == nil)
    }
}

@Suite("timeout")
struct TimeoutTests {
    @Test("T5.9: a ready body wins even with a past deadline; a pending one times out at its deadline")
    func readyAndPending() async {
        let r = pausedRuntime()
        let result = await blockOnThread(r, seconds: 30, "timeout") { () async throws -> [String] in
            var out: [String] = []
            out.append("\(try await timeout(after: .seconds(-1)) { 7 })")
            let start = r.clock.now
            do {
                _ = try await timeout(after: .zero) { try await Task.sleep(for: .seconds(3600)) }
                out.append("no error")
            } catch let e as TimeoutError {
                out.append("timeout \(e.duration) at \(start.duration(to: r.clock.now))")
            }
            let start2 = r.clock.now
            do {
                _ = try await timeout(after: .milliseconds(300)) { try await Task.sleep(for: .seconds(3600)) }
                out.append("no error")
            } catch let e as TimeoutError {
                out.append("timeout \(e.duration) at \(start2.duration(to: r.clock.now))")
            }
            return out
        }
        #expect(result == ["7", "timeout 0.0 seconds at 0.0 seconds", "timeout 0.3 seconds at 0.3 seconds"])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("T5.9: timeout(at:) with a past deadline lets a ready body win; two calls share one deadline")
    func timeoutAt() async {
        let r = pausedRuntime()
        let other = makeRuntime(.multiThread)
        let result = await blockOnThread(r, seconds: 30, "timeout at") { () async throws -> [String] in
            var out: [String] = []
            let start = r.clock.now
            out.append("\(try await timeout(at: start.advanced(by: .seconds(-1))) { 7 })")
            // Two steps against one deadline 300 ms away: the first takes 200 ms, the second times out
            // 100 ms later, at the deadline.
            let deadline = start.advanced(by: .milliseconds(300))
            try await timeout(at: deadline) { try await r.clock.sleep(for: .milliseconds(200)) }
            out.append("first done at \(start.duration(to: r.clock.now))")
            do {
                try await timeout(at: deadline) { try await r.clock.sleep(for: .seconds(3600)) }
                out.append("no error")
            } catch let e as TimeoutError {
                out.append("timeout \(e.duration) at \(start.duration(to: r.clock.now))")
            }
            // From another runtime's task, on this runtime's clock: the ready body wins a past deadline, and a
            // suspended body times out when this (paused) runtime's clock reaches the deadline.
            let outside = other.spawn { () async throws -> [String] in
                var seen = ["\(try await r.timeout(at: r.clock.now.advanced(by: .seconds(-1))) { 8 })"]
                do {
                    try await r.timeout(at: r.clock.now.advanced(by: .seconds(10))) {
                        try await Task.sleep(for: .seconds(3600))
                    }
                    seen.append("no error")
                } catch {
                    seen.append("\(type(of: error))")
                }
                return seen
            }
            // This runtime idles (so its clock auto-advances) until the other runtime's task is done.
            out += try await outside.value
            return out
        }
        #expect(result == ["7", "first done at 0.2 seconds", "timeout 0.1 seconds at 0.3 seconds", "8", "TimeoutError"])
        other.shutdown(timeout: .seconds(5))
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a past deadline lets a body that throws at once report its own error (Tokio polls the body first)",
          arguments: bothFlavors)
    func pastDeadlineKeepsBodyError(_ flavor: Runtime.Configuration.Flavor) async {
        struct BodyError: Error {}
        let r = makeRuntime(flavor, workers: 1)
        let outcome = await blockOnThread(r, seconds: 30, "past deadline") { () async -> String in
            do {
                _ = try await timeout(at: r.clock.now) { () async throws -> Int in throw BodyError() }
                return "value"
            } catch is BodyError {
                return "body error"
            } catch {
                return "\(type(of: error))"
            }
        }
        #expect(outcome == "body error")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("T5.9: timeout stays pending until the clock reaches its deadline")
    func pendingUntilAdvance() async {
        let r = pausedRuntime()
        let result = await blockOnThread(r, seconds: 30, "timeout advance") { () async throws -> [Bool] in
            let finished = Signal()
            let h = spawn { () async throws -> Bool in
                defer { finished.fire() }
                do {
                    _ = try await timeout(after: .milliseconds(300)) { try await Task.sleep(for: .seconds(3600)) }
                    return false
                } catch is TimeoutError {
                    return true
                }
            }
            var seen: [Bool] = []
            await settle()
            await r.advance(by: .milliseconds(299))
            await settle()
            seen.append(finished.isSet)
            await r.advance(by: .milliseconds(2))
            await settle()
            seen.append(finished.isSet)
            seen.append(try await h.value)
            return seen
        }
        #expect(result == [false, true, true])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a value or an error from the body before the deadline comes back unchanged", arguments: bothFlavors)
    func bodyOutcome(_ flavor: Runtime.Configuration.Flavor) async {
        let r = makeRuntime(flavor)
        let result = await blockOnThread(r, seconds: 30, "outcome") { () async throws -> [String] in
            var out: [String] = []
            out.append(try await timeout(after: .seconds(30)) {
                try await Task.sleep(for: .milliseconds(1))
                return "value"
            })
            do {
                _ = try await timeout(after: .seconds(30)) { () async throws -> Int in throw BodyError() }
            } catch let e as BodyError {
                out.append("\(e)")
            }
            return out
        }
        #expect(result == ["value", "BodyError()"])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("on the real clock a pending body times out near its deadline", arguments: bothFlavors)
    func realDeadline(_ flavor: Runtime.Configuration.Flavor) async {
        let r = makeRuntime(flavor)
        let result = await blockOnThread(r, seconds: 30, "real timeout") { () async -> (Bool, Duration) in
            let real = ContinuousClock.now
            do {
                _ = try await timeout(after: .milliseconds(20)) { try await Task.sleep(for: .seconds(3600)) }
                return (false, ContinuousClock.now - real)
            } catch {
                return (error is TimeoutError, ContinuousClock.now - real)
            }
        }
        #expect(result?.0 == true)
        #expect((result?.1 ?? .zero) >= .milliseconds(20))
        #expect((result?.1 ?? .seconds(60)) < .seconds(20))
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a body that ignores cancellation and returns a value after the deadline returns that value")
    func lateValue() async {
        let r = pausedRuntime()
        let result = await blockOnThread(r, seconds: 30, "late value") { () async throws -> Int in
            try await timeout(after: .milliseconds(10)) {
                // Ignores cancellation: a real-time wait the paused clock cannot skip.
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    afterRealDelay(milliseconds: 20) { c.resume() }
                }
                return 42
            }
        }
        #expect(result == 42)
        r.shutdown(timeout: .seconds(5))
    }

    @Test("cancelling the caller cancels the body, whose outcome is returned", arguments: bothFlavors)
    func callerCancelled(_ flavor: Runtime.Configuration.Flavor) async {
        let r = makeRuntime(flavor)
        let result = await blockOnThread(r, seconds: 30, "caller cancelled") { () async -> [String] in
            let caught = Recorder<String>()
            let started = Signal()
            let h = spawn { () async -> Void in
                do {
                    let v = try await timeout(after: .seconds(3600)) { () async throws -> String in
                        started.fire()
                        try await Task.sleep(for: .seconds(3600))
                        return "slept"
                    }
                    caught.append(v)
                } catch {
                    caught.append("\(type(of: error))")
                }
                // A body that finishes with a value despite the cancellation: its value comes back.
                let v = try? await timeout(after: .seconds(3600)) { () async -> String in
                    try? await Task.sleep(for: .seconds(3600))
                    return "value after cancel"
                }
                caught.append(v ?? "nil")
            }
            await started.wait()
            await settle()
            h.abort()
            _ = try? await h.value
            return caught.all
        }
        #expect(result == ["CancellationError", "value after cancel"])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a ready body wins against a past deadline on the multi-thread flavor too")
    func readyBodyMultiThread() async {
        let r = makeRuntime(.multiThread)
        let values = await blockOnThread(r, seconds: 60, "ready body") { () async throws -> Set<Int> in
            var seen = Set<Int>()
            for i in 0..<200 { seen.insert(try await timeout(after: .seconds(-1)) { i } - i) }
            return seen
        }
        #expect(values == [0])
        r.shutdown(timeout: .seconds(5))
    }

    @Test("Runtime.timeout(at:) keeps its deadline on the real clock when the clock's runtime shuts down first")
    func clockRuntimeShutsDown() async {
        let r = makeRuntime(.multiThread)
        let other = makeRuntime(.multiThread)
        let deadline = r.clock.now.advanced(by: .milliseconds(300))
        let h = other.spawn { () async -> String in
            do {
                try await r.timeout(at: deadline) { try await Task.sleep(for: .seconds(3600)) }
                return "no error"
            } catch {
                return "\(type(of: error))"
            }
        }
        r.shutdown(timeout: .seconds(5))
        let outcome = try? await firstWithin(20) { try await h.value }
        #expect(outcome == "TimeoutError")
        other.shutdown(timeout: .seconds(5))
    }

    @Test("a body that throws its own error after the deadline gives TimeoutError")
    func lateError() async {
        let r = pausedRuntime()
        let result = await blockOnThread(r, seconds: 30, "late error") { () async -> String in
            do {
                _ = try await timeout(after: .milliseconds(10)) { () async throws -> Int in
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        afterRealDelay(milliseconds: 20) { c.resume() }
                    }
                    throw BodyError()
                }
                return "value"
            } catch {
                return "\(type(of: error))"
            }
        }
        #expect(result == "TimeoutError")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("finished timeouts do not grow a runtime's timer queue without bound", arguments: bothFlavors)
    func finishedTimeoutsAreDropped(_ flavor: Runtime.Configuration.Flavor) async {
        let r = makeRuntime(flavor)
        let n = max(1000, Int(10_000 * stressScale()))
        _ = await blockOnThread(r, seconds: 60, "timer queue") { () async throws -> Void in
            for i in 0..<n { _ = try await timeout(after: .seconds(3600)) { i } }
        }
        // Cancelled wakers are dropped once they are more than half the queue (and at least 64).
        #expect(r.shared.timers.pendingCount < 200, "\(r.shared.timers.pendingCount) timers left after \(n) timeouts")
        r.shutdown(timeout: .seconds(5))
    }

    @Test("a timeout whose body finished leaves nothing that moves a paused clock or grows the timer queue")
    func finishedTimeoutsLeaveNoTimers() async {
        let r = pausedRuntime()
        let moved = await blockOnThread(r, seconds: 30, "stale timers") { () async throws -> Duration in
            let start = r.clock.now
            for i in 0..<1000 { _ = try await timeout(after: .seconds(3600)) { i } }
            // Idle until a plain thread fires: a stale deadline would make the clock jump meanwhile.
            let fired = Signal()
            afterRealDelay(milliseconds: 20) { fired.fire() }
            await fired.wait()
            return start.duration(to: r.clock.now)
        }
        #expect(moved == .zero)
        #expect(r.shared.timers.pendingCount < 200, "\(r.shared.timers.pendingCount) timers left")
        r.shutdown(timeout: .seconds(5))
    }
}

/// Runs `then` on a new OS thread after sleeping `milliseconds` of real time.
private func afterRealDelay(milliseconds: UInt32, _ then: @escaping @Sendable () -> Void) {
    Platform.spawnThread(stackSize: nil) {
        usleep(milliseconds * 1000)
        then()
    }.detach()
}
