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
        try await waiters[1].value
        #expect(log.values == [1] && notify.queuedWaiterCount == 1)
        notify.notifyOne()
        try await waiters[2].value
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
        try await second.value
        #expect(notify.queuedWaiterCount == 1)
        notify.notifyOne()
        try await first.value
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
}
