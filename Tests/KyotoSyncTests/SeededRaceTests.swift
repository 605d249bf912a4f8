// Seeded races of the sync primitives against cancellation and concurrent notification, on a 2-worker Kyoto
// runtime: Notify's notifyOne against waiter cancellation and against dropped enabled Notifieds, a
// check-then-wait loop against notifyWaiters/notifyOne, a semaphore release against its waiter's
// cancellation, AsyncOnceCell initializers that throw, yield or are cancelled, and barrier leadership.
// Every round has a deadline; a hang is reported with the seed and round.

import KyotoExecutor
import Synchronization
import Testing

@testable import KyotoSync

/// Seeded races between notifications/grants and cancellation, on a 2-worker Kyoto runtime.
/// Each round is bounded by a deadline; a hang is reported as an issue with the seed and round.
@Suite("Sync primitives: seeded races with cancellation")
struct SeededRaceTests {
    static let deadline = Duration.seconds(20)

    /// notifyOne x N racing the cancellation of some of N queued waiters: with as many notifications as
    /// waiters, every waiter must end (a notification is never lost to a cancelled waiter).
    @Test("Notify: N notifyOne racing cancellation of queued waiters never strands a waiter", arguments: [UInt64(1), 2])
    func notifyOneVsCancel(seed: UInt64) async {
        var rng = SplitMix64(seed: seed)
        for round in 0..<150 {
            let notify = Notify()
            let n = Int.random(in: 2...8, using: &rng)
            let victims = (0..<n).filter { _ in Bool.random(using: &rng) }
            let normal = AtomicCounter()
            var tasks: [Task<Bool, Never>] = []
            for _ in 0..<n {
                tasks.append(Task(executorPreference: stormRuntime) {
                    do { try await notify.notified(); normal.add(); return true } catch { return false }
                })
            }
            #expect(await waitUntil { notify.queuedWaiterCount == n })
            let frozen = tasks
            let canceller = Task(executorPreference: stormRuntime) { for v in victims { frozen[v].cancel() } }
            let notifier = Task(executorPreference: stormRuntime) { for _ in 0..<n { notify.notifyOne() } }
            let ok = await finishes(within: Self.deadline) {
                await canceller.value
                await notifier.value
                for t in frozen { _ = await t.value }
            }
            #expect(ok, "a waiter hung: seed \(seed) round \(round) n \(n) victims \(victims)")
            if !ok { for t in tasks { t.cancel() }; return }
            for (i, t) in tasks.enumerated() where !victims.contains(i) {
                #expect(await t.value, "an uncancelled waiter threw; seed \(seed) round \(round)")
            }
        }
    }

    /// Check-then-wait with a Notified: the setter raises a flag, then notifyWaiters (or notifyOne); the
    /// waiter must never miss it.
    @Test("Notify: check-then-wait with makeNotified/enable never misses notifyWaiters or notifyOne", arguments: [false, true])
    func checkThenWait(useOne: Bool) async {
        for round in 0..<300 {
            let notify = Notify()
            let flag = RaceFlag()
            let waiter = Task(executorPreference: stormRuntime) {
                while true {
                    var notified = notify.makeNotified()
                    notified.enable()
                    if flag.value.load(ordering: .acquiring) { return }
                    try? await notified.wait()
                }
            }
            let setter = Task(executorPreference: stormRuntime) {
                flag.value.store(true, ordering: .releasing)
                if useOne { notify.notifyOne() } else { notify.notifyWaiters() }
            }
            let ok = await finishes(within: Self.deadline) { await setter.value; await waiter.value }
            #expect(ok, "waiter missed the notification, round \(round)")
            if !ok { waiter.cancel(); return }
        }
    }

    /// A semaphore release racing the cancellation of its only waiter: the permit must end up free or held
    /// by the waiter (who then returns it): never lost, never duplicated.
    @Test("AsyncSemaphore: addPermits racing a cancelled acquire conserves the permit")
    func releaseVsCancel() async {
        for round in 0..<300 {
            let sem = AsyncSemaphore(permits: 0)
            let waiter = Task(executorPreference: stormRuntime) { () -> Bool in
                do { let p = try await sem.acquire(); _ = consume p; return true } catch { return false }
            }
            #expect(await waitUntil { sem.queuedWaiterCount == 1 })
            let c = Task(executorPreference: stormRuntime) { waiter.cancel() }
            let r = Task(executorPreference: stormRuntime) { sem.addPermits(1) }
            let ok = await finishes(within: Self.deadline) { await c.value; await r.value; _ = await waiter.value }
            #expect(ok, "round \(round) hung")
            if !ok { return }
            #expect(sem.availablePermits == 1, "permit lost/duplicated in round \(round): \(sem.availablePermits)")
            #expect(sem.queuedWaiterCount == 0)
        }
    }

    /// AsyncOnceCell: many callers, throwing and cancelled initializers. Exactly one initializer succeeds when
    /// any caller got a value, all values agree, nobody hangs, and an uncancelled caller never sees
    /// CancellationError.
    @Test("AsyncOnceCell: throwing and cancelled initializers, exactly-once, no hang", arguments: [UInt64(7), 8])
    func onceCellStorm(seed: UInt64) async {
        struct Boom: Error {}
        var rng = SplitMix64(seed: seed)
        for round in 0..<150 {
            let cell = AsyncOnceCell<Int>()
            let successes = AtomicCounter()
            let m = Int.random(in: 2...8, using: &rng)
            let plans = (0..<m).map { _ in (throwIt: Int.random(in: 0..<3, using: &rng) == 0,
                                            yields: Int.random(in: 0...2, using: &rng),
                                            cancel: Int.random(in: 0..<4, using: &rng) == 0) }
            var tasks: [Task<Int?, any Error>] = []
            for (i, plan) in plans.enumerated() {
                tasks.append(Task(executorPreference: stormRuntime) {
                    try await cell.getOrInit { () async throws -> Int in
                        for _ in 0..<plan.yields { await Task.yield() }
                        if plan.throwIt { throw Boom() }
                        successes.add()
                        return i + 100
                    }
                })
            }
            for (i, plan) in plans.enumerated() where plan.cancel { tasks[i].cancel() }
            let frozen = tasks
            let ok = await finishes(within: Self.deadline) { for t in frozen { _ = await t.result } }
            #expect(ok, "a caller hung; seed \(seed) round \(round)")
            if !ok { return }
            var values = Set<Int>()
            for (i, t) in tasks.enumerated() {
                switch await t.result {
                case .success(let v): values.insert(v!)
                case .failure(let e):
                    if e is CancellationError && !plans[i].cancel {
                        Issue.record("uncancelled caller got CancellationError; seed \(seed) round \(round)")
                    }
                }
            }
            #expect(values.count <= 1, "callers saw different values; seed \(seed) round \(round)")
            #expect(successes.value <= 1, "\(successes.value) initializers succeeded; seed \(seed) round \(round)")
            if let v = values.first { #expect(cell.get() == v) }
        }
    }

    /// AsyncBarrier on Kyoto: k tasks x R rounds; exactly one leader per generation, nobody hangs.
    @Test("AsyncBarrier: k tasks x R rounds on Kyoto elect one leader per generation")
    func barrierRounds() async {
        let k = 4, rounds = 300
        let barrier = AsyncBarrier(count: k)
        let leaders = AtomicCounter()
        var tasks: [Task<Void, any Error>] = []
        for _ in 0..<k {
            tasks.append(Task(executorPreference: stormRuntime) {
                for _ in 0..<rounds { if try await barrier.wait() { leaders.add() } }
            })
        }
        let frozen = tasks
        let ok = await finishes(within: Self.deadline) { for t in frozen { _ = await t.result } }
        #expect(ok)
        #expect(leaders.value == rounds)
    }

    /// Enabled Notifieds that are dropped without waiting, racing notifyOne: a pick must be forwarded, so
    /// with as many notifyOne calls as queue entries every plain waiter wakes.
    @Test("Notify: dropping enabled Notifieds racing notifyOne forwards every pick", arguments: [UInt64(3), 4])
    func dropEnabledVsNotifyOne(seed: UInt64) async {
        var rng = SplitMix64(seed: seed)
        for round in 0..<150 {
            let notify = Notify()
            let plain = Int.random(in: 1...4, using: &rng)
            let enabled = Int.random(in: 1...4, using: &rng)
            let gate = AsyncSemaphore(permits: 0)
            var droppers: [Task<Void, Never>] = []
            for _ in 0..<enabled {
                droppers.append(Task(executorPreference: stormRuntime) {
                    var n = notify.makeNotified()
                    n.enable()
                    // Hold the enabled Notified until released, then drop it without waiting.
                    let p = try? await gate.acquire()
                    _ = consume p
                    _ = consume n
                })
            }
            #expect(await waitUntil { notify.queuedWaiterCount == enabled })
            var waiters: [Task<Void, any Error>] = []
            for _ in 0..<plain {
                waiters.append(Task(executorPreference: stormRuntime) { try await notify.notified() })
            }
            #expect(await waitUntil { notify.queuedWaiterCount == enabled + plain })
            let total = enabled + plain
            let notifier = Task(executorPreference: stormRuntime) { for _ in 0..<total { notify.notifyOne() } }
            gate.addPermits(enabled)
            let frozenW = waiters, frozenD = droppers
            let ok = await finishes(within: Self.deadline) {
                await notifier.value
                for d in frozenD { await d.value }
                for w in frozenW { _ = await w.result }
            }
            #expect(ok, "a plain waiter hung; seed \(seed) round \(round) plain \(plain) enabled \(enabled)")
            if !ok { for w in waiters { w.cancel() }; return }
        }
    }
}

/// A flag raised by the setter of `checkThenWait`.
private final class RaceFlag: Sendable { let value = Atomic<Bool>(false) }
