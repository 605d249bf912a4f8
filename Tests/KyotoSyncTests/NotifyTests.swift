import KyotoExecutor
@testable import KyotoSync
import Testing

@Suite("Notify")
struct NotifyTests {
    @Test("notifyOne before notified stores a permit consumed at once; a second notified waits (Tokio T6.21)")
    func storedPermit() async throws {
        let notify = Notify()
        notify.notifyOne()
        try await notify.notified()
        let second = Task { try await notify.notified() }
        #expect(await waitUntil { notify.queuedWaiterCount == 1 })
        second.cancel()
        await #expect(throws: CancellationError.self) { try await second.value }
    }

    @Test("three notifyOne calls with no waiter store a single permit (Tokio T6.22)")
    func permitsDoNotAccumulate() async throws {
        let notify = Notify()
        notify.notifyOne()
        notify.notifyOne()
        notify.notifyOne()
        try await notify.notified()
        let next = Task { try await notify.notified() }
        #expect(await waitUntil { notify.queuedWaiterCount == 1 })
        notify.notifyOne()
        try await next.value
    }

    @Test("notifyOne wakes waiters oldest first; cancelling a waiter hands its place on (Tokio T6.23, T8.4)")
    func fifoWakeAndCancel() async throws {
        let notify = Notify()
        let log = Log<Int>()
        var waiters: [Task<Void, any Error>] = []
        for index in 0..<3 {
            waiters.append(Task { try await notify.notified(); log.append(index) })
            #expect(await waitUntil { notify.queuedWaiterCount == index + 1 })
        }
        waiters[0].cancel()
        await #expect(throws: CancellationError.self) { try await waiters[0].value }
        notify.notifyOne()
        _ = try await boundedValue(of: waiters[1], "notifyOne wakes the oldest remaining waiter")
        #expect(log.values == [1] && notify.queuedWaiterCount == 1)
        notify.notifyOne()
        _ = try await boundedValue(of: waiters[2], "notifyOne wakes the last waiter")
        #expect(log.values == [1, 2])
    }

    @Test("notifyLast wakes the newest waiter (Tokio T6.24)")
    func notifyLast() async throws {
        let notify = Notify()
        let first = Task { try await notify.notified() }
        #expect(await waitUntil { notify.queuedWaiterCount == 1 })
        let second = Task { try await notify.notified() }
        #expect(await waitUntil { notify.queuedWaiterCount == 2 })
        notify.notifyLast()
        _ = try await boundedValue(of: second, "notifyLast wakes the newest waiter")
        #expect(notify.queuedWaiterCount == 1)
        notify.notifyOne()
        _ = try await boundedValue(of: first, "notifyOne wakes the remaining waiter")
    }

    @Test("notifyWaiters wakes every current waiter and stores no permit (Tokio T6.25, T6.27)")
    func notifyWaiters() async throws {
        let notify = Notify()
        let waiters = (0..<4).map { _ in Task { try await notify.notified() } }
        #expect(await waitUntil { notify.queuedWaiterCount == 4 })
        notify.notifyWaiters()
        for waiter in waiters { try await waiter.value }
        let later = Task { try await notify.notified() }
        #expect(await waitUntil { notify.queuedWaiterCount == 1 })
        notify.notifyOne()
        try await later.value
        notify.notifyWaiters()  // nobody waits: nothing is stored
        let afterEmptyNotify = Task { try await notify.notified() }
        #expect(await waitUntil { notify.queuedWaiterCount == 1 })
        afterEmptyNotify.cancel()
        await #expect(throws: CancellationError.self) { try await afterEmptyNotify.value }
    }

    @Test("a Notified made before notifyWaiters completes although it never waited; the permit stays stored (Tokio T6.25)")
    func notifiedBeforeNotifyWaiters() async throws {
        let notify = Notify()
        var first = notify.makeNotified()
        notify.notifyWaiters()
        notify.notifyOne()
        let firstEnabled = first.enable()
        #expect(firstEnabled, "notifyWaiters came after its creation")
        try await first.wait()
        #expect(notify.queuedWaiterCount == 0)
        // The notifyOne went to no one: it is the stored permit, which a new notified() takes at once.
        var second = notify.makeNotified()
        let secondEnabled = second.enable()
        #expect(secondEnabled)
        try await second.wait()
    }

    @Test("check-then-wait: a notifyWaiters between the check and the wait is not lost")
    func checkThenWait() async throws {
        let notify = Notify()
        // The waiter registers, checks its condition (not met yet), and only then waits; the notifier runs
        // in that window. Without the registration the notifyWaiters would find nobody and be lost.
        let finished = await finishes(within: .seconds(10)) {
            var notified = notify.makeNotified()
            notified.enable()
            notify.notifyWaiters()
            do {
                try await notified.wait()
            } catch {
                Issue.record("wait threw \(error)")
            }
        }
        #expect(finished)
        #expect(notify.queuedWaiterCount == 0)
    }

    @Test("an enabled Notified takes a stored permit: enable() returns true (Tokio T6.26)")
    func enableTakesStoredPermit() async throws {
        let notify = Notify()
        var notified = notify.makeNotified()
        notify.notifyOne()
        let notifiedEnabled = notified.enable()
        #expect(notifiedEnabled)
        try await notified.wait()
        var next = notify.makeNotified()
        let nextEnabled = next.enable()
        #expect(!nextEnabled, "the permit was consumed")
        #expect(notify.queuedWaiterCount == 1)
    }

    @Test("notifyOne picks an enabled Notified in its queue place, before it waits")
    func notifyOnePicksEnabled() async throws {
        let notify = Notify()
        var first = notify.makeNotified()
        let firstEnabled = first.enable()
        #expect(!firstEnabled)
        let second = Task { try await notify.notified() }
        #expect(await waitUntil { notify.queuedWaiterCount == 2 })
        notify.notifyOne()
        #expect(notify.queuedWaiterCount == 1, "the enabled Notified was the oldest")
        let firstPicked = first.enable()
        #expect(firstPicked)
        try await first.wait()
        notify.notifyOne()
        try await second.value
    }

    @Test("a Notified that waits after enable() keeps the place it took")
    func waitKeepsEnabledPlace() async throws {
        let notify = Notify()
        let log = Log<String>()
        let early = Task {
            var notified = notify.makeNotified()
            notified.enable()
            log.append("enabled")
            try await notified.wait()
            log.append("early")
        }
        #expect(await waitUntil { log.values == ["enabled"] })
        let late = Task { try await notify.notified(); log.append("late") }
        #expect(await waitUntil { notify.queuedWaiterCount == 2 })
        notify.notifyOne()
        try await early.value
        #expect(log.values == ["enabled", "early"])
        notify.notifyOne()
        try await late.value
    }

    @Test("dropping an enabled Notified that notifyOne picked passes the notification to the next waiter")
    func droppedPickedNotifiedForwards() async throws {
        let notify = Notify()
        var first = notify.makeNotified()
        first.enable()
        let second = Task { try await notify.notified() }
        #expect(await waitUntil { notify.queuedWaiterCount == 2 })
        notify.notifyOne()
        _ = consume first
        try await second.value
        #expect(notify.queuedWaiterCount == 0)
        // A dropped enabled Notified that was not picked just leaves the queue.
        var unpicked = notify.makeNotified()
        unpicked.enable()
        #expect(notify.queuedWaiterCount == 1)
        _ = consume unpicked
        #expect(notify.queuedWaiterCount == 0)
    }

    @Test("dropping an enabled Notified that notifyLast picked passes it on to the newest remaining waiter")
    func droppedNotifyLastForwardsToNewest() async throws {
        let notify = Notify()
        let log = Log<Int>()
        var waiters: [Task<Void, any Error>] = []
        for index in 0..<2 {
            waiters.append(Task { try await notify.notified(); log.append(index) })
            #expect(await waitUntil { notify.queuedWaiterCount == index + 1 })
        }
        var newest = notify.makeNotified()
        newest.enable()
        notify.notifyLast()
        _ = consume newest
        #expect(await waitUntil { !log.values.isEmpty })
        #expect(log.values == [1] && notify.queuedWaiterCount == 1, "forwarded to the newest remaining waiter")
        notify.notifyWaiters()
        for waiter in waiters { try await waiter.value }
    }

    @Test("a waiter picked by notifyLast and cancelled before it runs passes it on to the newest remaining waiter")
    func cancelledNotifyLastForwardsToNewest() throws {
        // On a current-thread runtime a resumed task runs only when the body suspends, so the cancellation
        // deterministically lands between the pick and the waiter's wake-up.
        let runtime = Runtime.currentThread()
        let woken = try runtime.blockOn { () async throws -> [Int] in
            let notify = Notify()
            let log = Log<Int>()
            var waiters: [JoinHandle<Void>] = []
            for index in 0..<3 {
                waiters.append(spawn { try await notify.notified(); log.append(index) })
                #expect(await waitUntil { notify.queuedWaiterCount == index + 1 })
            }
            notify.notifyLast()
            waiters[2].abort()
            await #expect(throws: JoinError.self) { try await waiters[2].value }
            // Bounded: a notification forwarded to the wrong waiter must fail the test, not hang it.
            #expect(await waitUntil { !log.values.isEmpty })
            let firstWoken = log.values
            notify.notifyWaiters()
            for waiter in waiters[0..<2] { try await waiter.value }
            return firstWoken
        }
        #expect(woken == [1], "the forwarded notification went to the newest remaining waiter")
        runtime.shutdown(timeout: .seconds(5))
    }
}
