// Behaviour of the watch channel: the Tokio cases (tokio-semantics.md §7.5, T7.17–T7.21, T8.5).

import Foundation
import KyotoExecutor
import Synchronization
import Testing

@testable import KyotoChannels

@Suite("Watch")
struct WatchTests {
    @Test("parked changed() waiters are woken in the order they parked")
    func wakeOrderIsParkOrder() throws {
        // A current-thread runtime runs woken tasks in the order they were woken.
        let runtime = Runtime.currentThread()
        let order = runtime.blockOn { () async -> [Int] in
            let (tx, rx) = Watch.channel(initial: 0)
            let woken = WatchWakeOrder()
            var handles: [JoinHandle<Void>] = []
            for i in 0..<10 {
                let receiver = rx.clone()
                handles.append(spawn {
                    _ = try? await receiver.changed()
                    woken.list.withLock { $0.append(i) }
                })
                await waitUntil("receiver \(i) parked") { rx.storage.state.withLock { $0.waiterCount == i + 1 } }
            }
            _ = try? tx.send(1)
            for handle in handles { _ = try? await handle.value }
            return woken.list.withLock { $0 }
        }
        // Before, the parked waiters were kept in a dictionary and woken in its order.
        #expect(order == Array(0..<10))
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("changed waits for a new version; send without receivers fails; sendReplace stores (T7.17)")
    func basics() async throws {
        let (tx, rx) = Watch.channel(initial: "a")
        #expect(try rx.hasChanged() == false)
        let waiting = Task { try await rx.changed() }
        await waitUntil("receiver parked") { rx.storage.state.withLock { $0.waiterCount == 1 } }
        try tx.send("b")
        try await waiting.value
        #expect(rx.borrow() == "b")
        _ = consume rx
        #expect(throws: SendError.closed("c")) { try tx.send("c") }
        #expect(tx.borrow() == "b")
        #expect(tx.sendReplace("d") == "b")
        #expect(tx.borrow() == "d")
    }

    @Test("after the sender is gone: hasChanged throws, changed returns once for the unseen value, then throws (T7.18)")
    func closeRules() async throws {
        let (tx, rx) = Watch.channel(initial: "a")
        try tx.send("x")
        _ = consume tx
        #expect(throws: Watch.RecvError.closed) { try rx.hasChanged() }
        try await rx.changed()
        #expect(rx.borrow() == "x")
        await #expect(throws: Watch.RecvError.closed) { try await rx.changed() }
    }

    @Test("markChanged and markUnchanged (T7.19)")
    func marks() async throws {
        let (tx, rx) = Watch.channel(initial: 0)
        rx.markChanged()
        #expect(try rx.hasChanged())
        try await rx.changed()
        rx.markChanged()
        rx.markUnchanged()
        #expect(try rx.hasChanged() == false)
        _ = tx
    }

    @Test("wait(for:) checks the current value first, skips to a match, throws closed when none (T7.20)")
    func waitFor() async throws {
        let (tx, rx) = Watch.channel(initial: 3)
        #expect(try await rx.wait { $0 == 3 } == 3)
        let waiting = Task { try await rx.wait { $0 == 6 } }
        // Parked first, so the sends below exercise the wake-and-recheck path, not the first check.
        await waitUntil("wait(for:) parked") { rx.storage.state.withLock { $0.waiterCount == 1 } }
        for value in 4...6 { try tx.send(value) }
        let matched = await withDeadline(seconds: 10, "wait(for:) woken by the sends") { try? await waiting.value }
        #expect(matched == 6)
        #expect(try rx.hasChanged() == false)
        try tx.send(2)
        _ = consume tx
        await #expect(throws: Watch.RecvError.closed) { _ = try await rx.wait { $0 == 99 } }
    }

    @Test("sendIfModified returning false does not notify but the change is visible (T7.20)")
    func silentModification() throws {
        let (tx, rx) = Watch.channel(initial: [1])
        let modified = tx.sendIfModified { value in
            value.append(2)
            return false
        }
        #expect(!modified)
        #expect(try rx.hasChanged() == false)
        #expect(rx.borrow() == [1, 2])
        tx.sendModify { $0.append(3) }
        #expect(try rx.hasChanged())
        #expect(rx.borrowAndUpdate() == [1, 2, 3])
        #expect(try rx.hasChanged() == false)
    }

    @Test("a cloned receiver inherits the seen version (T7.21)")
    func cloneInheritsSeen() throws {
        let (tx, rx) = Watch.channel(initial: 1)
        try tx.send(2)
        let clone = rx.clone()
        #expect(try clone.hasChanged())
        _ = rx.borrowAndUpdate()
        #expect(try rx.hasChanged() == false)
        #expect(try clone.hasChanged())
        #expect(tx.receiverCount == 2)
    }

    @Test("a cancelled changed() marks nothing seen (T8.5)")
    func cancelledChanged() async throws {
        let (tx, rx) = Watch.channel(initial: 0)
        let waiting = Task { () -> Watch.RecvError? in
            do throws(Watch.RecvError) {
                try await rx.changed()
                return nil
            } catch {
                return error
            }
        }
        await waitUntil("receiver parked") { rx.storage.state.withLock { $0.waiterCount == 1 } }
        waiting.cancel()
        #expect(await waiting.value == .cancelled)
        try tx.send(1)
        #expect(try rx.hasChanged())
        try await rx.changed()
    }

    @Test("sender closed() returns when the last receiver goes away")
    func senderClosed() async throws {
        let (tx, rx) = Watch.channel(initial: 0)
        let other = tx.subscribe()
        let waiting = Task { try await tx.closed() }
        _ = consume rx
        #expect(!tx.isClosed)
        _ = consume other
        try await waiting.value
        #expect(tx.isClosed)
    }

    @Test("changes yields the value of each change and ends when the sender is gone")
    func changesSequence() async throws {
        let (tx, rx) = Watch.channel(initial: 0)
        try tx.send(1)
        _ = consume tx
        var seen: [Int] = []
        for await value in rx.changes { seen.append(value) }
        #expect(seen == [1])
    }

    @Test("send drops the value it displaces after unlocking: that value's deinit may use the channel")
    func sendDropsDisplacedValueOutsideLock() async throws {
        let hook = DeinitHook()
        let runs = DropCounter()
        let (tx, rx) = Watch.channel(initial: CallsOnDeinit(hook))
        hook.action.withLock {
            $0 = {
                runs.increment()
                _ = tx.borrow()
            }
        }
        // On its own thread, so a send that deadlocks on its own lock fails the test instead of hanging it.
        let finished = DispatchSemaphore(value: 0)
        let sendFailed = Mutex(false)
        Thread.detachNewThread {
            do {
                try tx.send(CallsOnDeinit(hook))
            } catch {
                sendFailed.withLock { $0 = true }
            }
            finished.signal()
        }
        guard finished.wait(timeout: .now() + 10) == .success else {
            // The stuck thread holds the channel's lock for good: leak the receiver (its deinit would lock)
            // and touch nothing of the channel any more.
            Issue.record("send deadlocked in the displaced value's deinit")
            _ = Unmanaged.passRetained(rx)
            return
        }
        hook.action.withLock { $0 = nil }
        // A failed send hands its own value back (whose deinit also runs the hook), so check it first.
        #expect(!sendFailed.withLock { $0 }, "send with a live receiver must succeed")
        #expect(runs.value == 1, "the displaced initial value must be released by send, exactly once")
        _ = rx.borrow()
    }
}

/// What a `CallsOnDeinit` runs when it goes away.
private final class DeinitHook: Sendable {
    let action = Mutex<(@Sendable () -> Void)?>(nil)
}

/// A value whose deinit runs its hook's action (user code that may touch the channel holding it).
private final class CallsOnDeinit: Sendable {
    let hook: DeinitHook

    init(_ hook: DeinitHook) { self.hook = hook }

    deinit { hook.action.withLock { $0 }?() }
}

/// The order in which woken tasks ran.
private final class WatchWakeOrder: Sendable {
    let list = Mutex<[Int]>([])
}
