// Behaviour of the broadcast channel: the Tokio cases (tokio-semantics.md §7.4, T7.13–T7.16).

import KyotoExecutor
import Synchronization
import Testing

@testable import KyotoChannels

@Suite("Broadcast")
struct BroadcastTests {
    @Test("a lagging receiver gets lagged(n) then continues from the oldest retained value (T7.13)")
    func lagThenContinue() async throws {
        let (tx, rx1) = Broadcast.channel(of: String.self, capacity: 2)
        let rx2 = tx.subscribe()
        try tx.send("one")
        try tx.send("two")
        #expect(try await rx1.recv() == "one")
        try tx.send("three")
        await #expect(throws: Broadcast.RecvError.lagged(1)) { _ = try await rx2.recv() }
        #expect(try await rx2.recv() == "two")
        #expect(try await rx1.recv() == "two")
        #expect(try await rx1.recv() == "three")
        #expect(try await rx2.recv() == "three")
    }

    @Test("capacity 3 is rounded up to 4 slots and lag is measured against that (T7.13)")
    func roundedCapacity() async throws {
        let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 3)
        for value in 1...4 { try tx.send(value) }
        #expect(try await rx.recv() == 1)
        try tx.send(5)
        try tx.send(6)
        await #expect(throws: Broadcast.RecvError.lagged(1)) { _ = try await rx.recv() }
        var received: [Int] = []
        for _ in 0..<4 { received.append(try await rx.recv()) }
        #expect(received == [3, 4, 5, 6])
    }

    @Test("send with no receiver fails and the value is not retained for later subscribers (T7.14)")
    func sendWithoutReceivers() async throws {
        let (tx, rx) = Broadcast.channel(of: String.self, capacity: 4)
        _ = consume rx
        #expect(throws: SendError.closed("hello")) { try tx.send("hello") }
        let late = tx.subscribe()
        #expect(try tx.send("world") == 1)
        #expect(try await late.recv() == "world")
        #expect(throws: Broadcast.TryRecvError.empty) { try late.tryRecv() }
    }

    @Test("after the sender is gone receivers drain, lag first, then closed (T7.15)")
    func drainAfterSenderGone() async throws {
        let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 2)
        for value in 1...4 { try tx.send(value) }
        _ = consume tx
        await #expect(throws: Broadcast.RecvError.lagged(2)) { _ = try await rx.recv() }
        #expect(try await rx.recv() == 3)
        #expect(try await rx.recv() == 4)
        await #expect(throws: Broadcast.RecvError.closed) { _ = try await rx.recv() }
        #expect(rx.isClosed)
    }

    @Test("resubscribe starts at the end of the stream, independent of the original (T7.15)")
    func resubscribe() async throws {
        let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 4)
        try tx.send(1)
        let fresh = rx.resubscribe()
        #expect(fresh.isEmpty)
        try tx.send(2)
        #expect(try await fresh.recv() == 2)
        #expect(try await rx.recv() == 1)
        #expect(try await rx.recv() == 2)
        #expect(tx.receiverCount == 2)
    }

    @Test("len counts unread values past the capacity, and the next recv lags (T7.16)")
    func length() async throws {
        let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 3)
        for value in [10, 20, 30, 40] { try tx.send(value) }
        #expect(rx.count == 4)
        #expect(try await rx.recv() == 10)
        try tx.send(50)
        try tx.send(60)
        #expect(rx.count == 5)
        await #expect(throws: Broadcast.RecvError.lagged(1)) { _ = try await rx.recv() }
    }

    @Test("dropping a receiver releases values only it had not read")
    func droppingReceiverReleases() throws {
        let counter = DropCounter()
        let (tx, rx) = Broadcast.channel(of: Tracked.self, capacity: 4)
        try tx.send(Tracked(1, counter))
        #expect(tx.count == 1)
        _ = consume rx
        #expect(counter.value == 1)
        #expect(tx.receiverCount == 0)
        #expect(tx.isEmpty)
    }

    @Test("a parked receiver wakes on send; a cancelled one consumes nothing")
    func parkAndCancel() async throws {
        let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 4)
        let cancelled = Task { () -> Broadcast.RecvError? in
            do throws(Broadcast.RecvError) {
                _ = try await rx.recv()
                return nil
            } catch {
                return error
            }
        }
        await waitUntil("receiver parked") { rx.storage.state.withLock { $0.waiterCount == 1 } }
        cancelled.cancel()
        #expect(await cancelled.value == .cancelled)
        #expect(rx.storage.state.withLock { $0.waiterCount == 0 })
        let receiving = Task { try await rx.recv() }
        await waitUntil("receiver parked") { rx.storage.state.withLock { $0.waiterCount == 1 } }
        try tx.send(42)
        #expect(try await receiving.value == 42)
    }

    @Test("parked receivers are woken in the order they parked, by a send and by the sender's end",
          arguments: [false, true])
    func wakeOrderIsParkOrder(byClose: Bool) throws {
        // A current-thread runtime runs woken tasks in the order they were woken.
        let runtime = Runtime.currentThread()
        let order = runtime.blockOn { () async -> [Int] in
            var sender: Broadcast.Sender<Int>?
            let rx: Broadcast.Receiver<Int>
            do {
                let (tx, receiver) = Broadcast.channel(of: Int.self, capacity: 4)
                sender = tx
                rx = receiver
            }
            let woken = WakeOrder()
            var handles: [JoinHandle<Void>] = []
            for i in 0..<10 {
                let receiver = rx.resubscribe()
                handles.append(spawn {
                    _ = try? await receiver.recv()
                    woken.list.withLock { $0.append(i) }
                })
                await waitUntil("receiver \(i) parked") { rx.storage.state.withLock { $0.waiterCount == i + 1 } }
            }
            if byClose {
                sender = nil  // the last sender: its end wakes every parked receiver
            } else {
                _ = try? sender?.send(1)
            }
            for handle in handles { _ = try? await handle.value }
            withExtendedLifetime(sender) {}
            return woken.list.withLock { $0 }
        }
        // Before, the parked receivers were kept in a dictionary and woken in its order.
        #expect(order == Array(0..<10))
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("the receiver is an AsyncSequence that throws lagged and can be resumed, then ends")
    func asyncSequence() async throws {
        let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 2)
        for value in 1...3 { try tx.send(value) }
        _ = consume tx
        var iterator = rx.makeAsyncIterator()
        await #expect(throws: Broadcast.RecvError.lagged(1)) { _ = try await iterator.next() }
        var received: [Int] = []
        while let value = try await iterator.next() { received.append(value) }
        #expect(received == [2, 3])
    }
}

/// The order in which woken tasks ran.
private final class WakeOrder: Sendable {
    let list = Mutex<[Int]>([])
}
