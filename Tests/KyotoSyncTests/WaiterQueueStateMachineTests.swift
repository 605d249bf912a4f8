@testable import KyotoSync
import Testing

@Suite("WaiterList")
struct WaiterListTests {
    @Test("keeps FIFO order and removes any waiter by id, matching an array model", arguments: [1, 2, 3] as [UInt64])
    func matchesArrayModel(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var list = WaiterList<Int>()
        var model: [(UInt64, Int)] = []
        var nextID: UInt64 = 0
        for _ in 0..<5_000 {
            switch Int.random(in: 0..<5, using: &rng) {
            case 0, 1:
                let payload = Int.random(in: 0..<1000, using: &rng)
                list.append(nextID, payload)
                model.append((nextID, payload))
                nextID += 1
            case 2:
                let popped = list.popFirst()
                let expected = model.isEmpty ? nil : model.removeFirst()
                #expect(popped?.id == expected?.0 && popped?.payload == expected?.1, "seed \(seed)")
            case 3:
                let popped = list.popLast()
                let expected = model.popLast()
                #expect(popped?.id == expected?.0 && popped?.payload == expected?.1, "seed \(seed)")
            default:
                guard nextID > 0 else { continue }
                let id = UInt64.random(in: 0..<nextID, using: &rng)
                let index = model.firstIndex { $0.0 == id }
                let removed = list.remove(id)
                #expect(removed == index.map { model[$0].1 }, "seed \(seed)")
                if let index { model.remove(at: index) }
            }
            #expect(list.ids == model.map(\.0), "seed \(seed)")
            #expect(list.count == model.count)
        }
        #expect(list.removeAll().map(\.id) == model.map(\.0))
        #expect(list.isEmpty && list.first == nil)
    }

    @Test("withFirst mutates the head in place")
    func withFirstMutatesHead() {
        var list = WaiterList<Int>()
        #expect(list.withFirst { $0 += 1 } == nil)
        list.append(7, 1)
        list.append(8, 2)
        list.withFirst { $0 += 10 }
        #expect(list[7] == 11 && list[8] == 2)
    }
}

@Suite("PermitWord transitions")
struct PermitWordTests {
    typealias W = PermitWord

    @Test("fast acquire: (word, n) -> (result, next word)")
    func acquiringTable() {
        let table: [(W, Int, TryAcquireResult, W?)] = [
            (W(permits: 5), 3, .acquired, W(permits: 2)),
            (W(permits: 3), 3, .acquired, W(permits: 0)),
            (W(permits: 2), 3, .noPermits, nil),
            (W(permits: 0, queued: true), 1, .noPermits, nil),
            (W(permits: 9, closed: true), 1, .closed, nil),
            (W(permits: 0), 0, .acquired, nil),
            (W(permits: 0, closed: true), 0, .closed, nil),
        ]
        for (word, n, result, next) in table {
            let (actual, actualNext) = word.acquiring(n)
            #expect(actual == result && actualNext == next, "\(word) acquiring \(n)")
        }
    }

    @Test("fast release: (word, n, limit) -> (action, next word)")
    func releasingTable() {
        let table: [(W, Int, Int, W.ReleaseAction, W?)] = [
            (W(permits: 2), 3, 10, .released, W(permits: 5)),
            (W(permits: 2, closed: true), 1, 10, .released, W(permits: 3, closed: true)),
            (W(permits: 0, queued: true), 1, 10, .takeLock, nil),
            (W(permits: 1), 1, 1, .exceedsLimit, nil),
            (W(permits: 0), 1, 1, .released, W(permits: 1)),
        ]
        for (word, n, limit, action, next) in table {
            let (actual, actualNext) = word.releasing(n, limit: limit)
            #expect(actual == action && actualNext == next, "\(word) releasing \(n)")
        }
    }

    @Test("locked acquire: (word, n, cancelled) -> (action, next word)")
    func lockedAcquireTable() {
        let table: [(W, Int, Bool, W.LockedAcquireAction, W?)] = [
            (W(permits: 4), 2, false, .acquired, W(permits: 2)),
            (W(permits: 4), 2, true, .acquired, W(permits: 2)),
            (W(permits: 1), 2, false, .enqueue(assigned: 1), W(permits: 0, queued: true)),
            (W(permits: 1), 2, true, .cancelled, nil),
            (W(permits: 0, queued: true), 1, false, .enqueue(assigned: 0), W(permits: 0, queued: true)),
            (W(permits: 5, closed: true), 1, false, .closed, nil),
        ]
        for (word, n, cancelled, action, next) in table {
            let (actual, actualNext) = word.acquiringLocked(n, isCancelled: cancelled)
            #expect(actual == action && actualNext == next, "\(word) locked acquire \(n)")
        }
    }

    @Test("queue drained, close and forget rewrite the word")
    func lockedRewrites() {
        #expect(W(permits: 0, queued: true).queueEmptied(returning: 3) == W(permits: 3))
        #expect(W(permits: 0, queued: true).closing(returning: 2) == W(permits: 2, closed: true))
        #expect(W(permits: 4).closing(returning: 0) == W(permits: 4, closed: true))
        #expect(W(permits: 4).forgetting(10) == (4, W(permits: 0)))
        #expect(W(permits: 4).forgetting(1) == (1, W(permits: 3)))
        #expect(W(permits: 0, queued: true).forgetting(1) == (0, nil))
    }
}

@Suite("BatchSemaphoreStateMachine")
struct BatchSemaphoreStateMachineTests {
    typealias Machine = BatchSemaphoreStateMachine<String>

    @Test("release assigns to the head first; a large head is not overtaken (Tokio T6.14)")
    func releaseServesHeadFirst() {
        var machine = Machine()
        // new(5), acquire(1) leaves 4; acquire_many(5) drains the 4 and waits; acquire_many(3) waits.
        machine.enqueue(id: 1, requested: 5, assigned: 4, waker: "five")
        machine.enqueue(id: 2, requested: 3, assigned: 0, waker: "three")
        let table: [(release: Int, wake: [String], leftover: Int?, heldByQueue: Int, queued: [UInt64])] = [
            (1, ["five"], nil, 0, [2]),
            (1, [], nil, 1, [2]),
            (2, ["three"], 0, 0, []),
        ]
        for row in table {
            let action = machine.release(row.release)
            #expect(action.wake.all == row.wake && action.leftover == row.leftover)
            #expect(machine.heldByQueue == row.heldByQueue && machine.waiters.ids == row.queued)
        }
    }

    @Test("one release can satisfy several waiters and return the rest")
    func releaseWakesManyAndReturnsLeftover() {
        var machine = Machine()
        machine.enqueue(id: 1, requested: 2, assigned: 0, waker: "a")
        machine.enqueue(id: 2, requested: 1, assigned: 0, waker: "b")
        let action = machine.release(5)
        #expect(action.wake.all == ["a", "b"] && action.leftover == 2 && machine.waiters.isEmpty)
    }

    @Test("cancelling the head passes its assigned permits to the next waiter")
    func cancelHeadPassesPermitsOn() {
        var machine = Machine()
        machine.enqueue(id: 1, requested: 8, assigned: 3, waker: "big")
        machine.enqueue(id: 2, requested: 2, assigned: 0, waker: "small")
        guard case .resumeCancelled(let waker, let release) = machine.cancel(1) else {
            Issue.record("expected the head to be cancelled")
            return
        }
        #expect(waker == "big" && release.wake.all == ["small"] && release.leftover == 1)
        #expect(machine.waiters.isEmpty)
    }

    @Test("cancelling the last waiter returns its permits to the word; unknown ids do nothing")
    func cancelLastReturnsPermits() {
        var machine = Machine()
        machine.enqueue(id: 1, requested: 8, assigned: 6, waker: "w")
        guard case .none = machine.cancel(99) else {
            Issue.record("an unknown waiter must be ignored")
            return
        }
        guard case .resumeCancelled("w", let release) = machine.cancel(1) else {
            Issue.record("expected the waiter to be cancelled")
            return
        }
        #expect(release.wake.all.isEmpty && release.leftover == 6)
    }

    @Test("cancelling a waiter behind the head leaves the head's permits alone")
    func cancelMiddle() {
        var machine = Machine()
        machine.enqueue(id: 1, requested: 3, assigned: 1, waker: "a")
        machine.enqueue(id: 2, requested: 1, assigned: 0, waker: "b")
        machine.enqueue(id: 3, requested: 1, assigned: 0, waker: "c")
        guard case .resumeCancelled("b", let release) = machine.cancel(2) else {
            Issue.record("expected b to be cancelled")
            return
        }
        #expect(release.wake.all.isEmpty && release.leftover == nil)
        #expect(machine.waiters.ids == [1, 3] && machine.heldByQueue == 1)
    }

    @Test("close wakes every waiter and returns their assigned permits")
    func closeWakesAll() {
        var machine = Machine()
        machine.enqueue(id: 1, requested: 2, assigned: 1, waker: "a")
        machine.enqueue(id: 2, requested: 1, assigned: 0, waker: "b")
        let action = machine.close()
        #expect(action.wake.all == ["a", "b"] && action.returned == 1 && machine.waiters.isEmpty)
    }
}

extension NotifyStateMachine {
    /// `notified()`'s event: a waiter created now starts waiting.
    fileprivate mutating func notified(id: UInt64, waker: Waker, isCancelled: Bool) -> WaitAction {
        wait(id: id, since: nil, waker: waker, isCancelled: isCancelled)
    }
}

@Suite("NotifyStateMachine")
struct NotifyStateMachineTests {
    typealias Machine = NotifyStateMachine<String>

    @Test("notifyOne stores one permit when nobody waits; notified consumes it")
    func permitIsStoredOnce() {
        var machine = Machine()
        for _ in 0..<3 {
            guard case .storedPermit = machine.notifyOne() else {
                Issue.record("expected the permit to be stored")
                return
            }
        }
        #expect(machine.notified(id: 1, waker: "a", isCancelled: false) == .ready(.consumedPermit))
        #expect(machine.notified(id: 2, waker: "b", isCancelled: false) == .suspend)
        #expect(!machine.hasPermit && machine.waiters.ids == [2])
    }

    @Test("notifyOne wakes the oldest, notifyLast the newest, and neither stores a permit")
    func wakeOrder() {
        var machine = Machine()
        for (id, name) in [(1, "a"), (2, "b"), (3, "c")] as [(UInt64, String)] {
            #expect(machine.notified(id: id, waker: name, isCancelled: false) == .suspend)
        }
        guard case .resumeWaiter("a") = machine.notifyOne(), case .resumeWaiter("c") = machine.notifyLast() else {
            Issue.record("wrong waiter woken")
            return
        }
        #expect(!machine.hasPermit && machine.waiters.ids == [2])
    }

    @Test("notifyWaiters wakes all current waiters and stores nothing")
    func notifyWaitersStoresNothing() {
        var machine = Machine()
        #expect(machine.notifyWaiters().isEmpty && !machine.hasPermit)
        _ = machine.notified(id: 1, waker: "a", isCancelled: false)
        _ = machine.notified(id: 2, waker: "b", isCancelled: false)
        #expect(machine.notifyWaiters() == ["a", "b"] && !machine.hasPermit && machine.waiters.isEmpty)
    }

    @Test("a cancelled task does not queue; cancel removes a queued waiter")
    func cancellation() {
        var machine = Machine()
        #expect(machine.notified(id: 1, waker: "a", isCancelled: true) == .rejectCancelled)
        #expect(machine.waiters.isEmpty)
        _ = machine.notified(id: 2, waker: "b", isCancelled: false)
        #expect(machine.cancel(2) == "b" && machine.cancel(2) == nil && machine.waiters.isEmpty)
    }

    @Test("enable queues without a waker; wait keeps that place; notifyOne picks it early and wait finds it")
    func enableThenWait() {
        var machine = Machine()
        let created = machine.generation
        #expect(machine.enable(id: 1, since: created) == nil)
        #expect(machine.notified(id: 2, waker: "b", isCancelled: false) == .suspend)
        #expect(machine.wait(id: 1, since: created, waker: "a", isCancelled: false) == .suspend)
        #expect(machine.waiters.ids == [1, 2], "waiting kept the place taken by enable")
        guard case .resumeWaiter("a") = machine.notifyOne() else {
            Issue.record("the enabled-then-waiting entry is the oldest")
            return
        }
        #expect(machine.enable(id: 3, since: created) == nil)
        guard case .resumeWaiter("b") = machine.notifyOne(), case .pickedEnabled = machine.notifyLast() else {
            Issue.record("expected b to be woken, then 3 picked before it waits")
            return
        }
        #expect(machine.pickedEarly == [3: .last] && machine.waiters.isEmpty && !machine.hasPermit)
        #expect(machine.wait(id: 3, since: created, waker: "c", isCancelled: false) == .ready(.picked(.last)))
        #expect(machine.pickedEarly.isEmpty)
    }

    @Test("notifyWaiters completes every Notified created before it, queued or not, and stores nothing")
    func generation() {
        var machine = Machine()
        let before = machine.generation
        #expect(machine.enable(id: 1, since: before) == nil)
        #expect(machine.notifyWaiters().isEmpty, "an enabled entry has no waker to resume")
        #expect(machine.waiters.isEmpty && !machine.hasPermit)
        #expect(machine.enable(id: 1, since: before) == .notifiedAll)
        #expect(machine.wait(id: 2, since: before, waker: "b", isCancelled: false) == .ready(.notifiedAll))
        let after = machine.generation
        #expect(machine.wait(id: 3, since: after, waker: "c", isCancelled: false) == .suspend)
    }

    @Test("enable and wait take a stored permit; a cancelled wait leaves the queue")
    func permitAndCancel() {
        var machine = Machine()
        _ = machine.notifyOne()
        #expect(machine.enable(id: 1, since: machine.generation) == .consumedPermit && !machine.hasPermit)
        #expect(machine.enable(id: 2, since: machine.generation) == nil)
        #expect(machine.wait(id: 2, since: machine.generation, waker: "b", isCancelled: true) == .rejectCancelled)
        #expect(machine.waiters.isEmpty)
    }

    @Test("dropping an enabled Notified leaves the queue, or forwards its pick the same way")
    func dropNotified() {
        var machine = Machine()
        let created = machine.generation
        #expect(machine.enable(id: 1, since: created) == nil)
        #expect(machine.dropNotified(1) == nil && machine.waiters.isEmpty)
        #expect(machine.notified(id: 2, waker: "b", isCancelled: false) == .suspend)
        #expect(machine.notified(id: 3, waker: "c", isCancelled: false) == .suspend)
        #expect(machine.enable(id: 4, since: created) == nil)
        guard case .pickedEnabled = machine.notifyLast(),
            case (.resumeWaiter("c"), .last)? = machine.dropNotified(4)
        else {
            Issue.record("a dropped notifyLast pick goes to the newest remaining waiter")
            return
        }
        #expect(machine.enable(id: 5, since: created) == nil)
        guard case .resumeWaiter("b") = machine.notifyOne(), case .pickedEnabled = machine.notifyOne(),
            case (.storedPermit, .one)? = machine.dropNotified(5)
        else {
            Issue.record("a dropped notifyOne pick with nobody left becomes the permit")
            return
        }
        #expect(machine.hasPermit && machine.pickedEarly.isEmpty)
    }
}

@Suite("BarrierStateMachine")
struct BarrierStateMachineTests {
    typealias Machine = BarrierStateMachine<String>

    @Test("the count-th arrival leads and releases the others; generations repeat")
    func leaderElection() {
        var machine = Machine(count: 3)
        for generation in 0..<2 {
            guard case .suspend = machine.arrive(id: 1, waker: "a", isCancelled: false),
                case .suspend = machine.arrive(id: 2, waker: "b", isCancelled: false),
                case .resumeFollowersAndLead(let followers) = machine.arrive(id: 3, waker: "c", isCancelled: false)
            else {
                Issue.record("wrong arrival decisions in generation \(generation)")
                return
            }
            #expect(followers == ["a", "b"] && machine.waiters.isEmpty)
            #expect(machine.generation == UInt64(generation + 1))
        }
    }

    @Test("count 1: every arrival leads at once")
    func countOne() {
        var machine = Machine(count: 1)
        guard case .resumeFollowersAndLead(let followers) = machine.arrive(id: 1, waker: "a", isCancelled: true) else {
            Issue.record("a single-party barrier must lead immediately")
            return
        }
        #expect(followers.isEmpty)
    }

    @Test("a cancelled arrival is withdrawn and not counted")
    func cancelledArrivalIsWithdrawn() {
        var machine = Machine(count: 2)
        guard case .rejectCancelled = machine.arrive(id: 1, waker: "a", isCancelled: true),
            case .suspend = machine.arrive(id: 2, waker: "b", isCancelled: false)
        else {
            Issue.record("wrong arrival decisions")
            return
        }
        #expect(machine.cancel(2) == "b" && machine.waiters.isEmpty)
        guard case .suspend = machine.arrive(id: 3, waker: "c", isCancelled: false) else {
            Issue.record("the withdrawn arrival must not count")
            return
        }
    }
}
