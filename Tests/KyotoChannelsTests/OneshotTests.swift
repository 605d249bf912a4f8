// Behaviour of the oneshot channel: the Tokio cases (tokio-semantics.md §7.3, T7.12).

import Testing

@testable import KyotoChannels

@Suite("Oneshot")
struct OneshotTests {
    @Test("a sent value is received by awaiting the receiver")
    func sendThenAwait() async throws {
        let (tx, rx) = Oneshot.channel(of: Int.self)
        try tx.send(1)
        #expect(try await rx.value == 1)
    }

    @Test("a parked receiver gets the value handed over")
    func parkedReceiver() async throws {
        let (tx, rx) = Oneshot.channel(of: String.self)
        let receiving = Task { try await rx.value }
        await waitUntil("receiver parked") { rx.storage.state.withLock { $0.hasParkedReceiver } }
        try tx.send("hello")
        #expect(try await receiving.value == "hello")
    }

    @Test("dropping the sender unsent makes the receiver throw closed, even while it waits")
    func senderDroppedUnsent() async throws {
        let (tx, rx) = Oneshot.channel(of: Int.self)
        let receiving = Task { () -> Oneshot.RecvError? in
            do throws(Oneshot.RecvError) {
                _ = try await rx.value
                return nil
            } catch {
                return error
            }
        }
        await waitUntil("receiver parked") { rx.storage.state.withLock { $0.hasParkedReceiver } }
        _ = consume tx
        #expect(await receiving.value == .closed)
    }

    @Test("after close, send fails with its value; a value sent before close stays obtainable")
    func closeRules() throws {
        let (tx, rx) = Oneshot.channel(of: Int.self)
        rx.close()
        #expect(tx.isClosed)
        #expect(throws: SendError.closed(1)) { try tx.send(1) }

        let (tx2, rx2) = Oneshot.channel(of: Int.self)
        try tx2.send(1)
        rx2.close()
        #expect(try rx2.tryRecv() == 1)
        #expect(throws: Oneshot.TryRecvError.closed) { try rx2.tryRecv() }
    }

    @Test("tryRecv is empty before the send and closed after the value was taken")
    func tryRecv() throws {
        let (tx, rx) = Oneshot.channel(of: Int.self)
        #expect(throws: Oneshot.TryRecvError.empty) { try rx.tryRecv() }
        try tx.send(5)
        #expect(try rx.tryRecv() == 5)
        #expect(throws: Oneshot.TryRecvError.closed) { try rx.tryRecv() }
    }

    @Test("send fails with the value once the receiver is gone; closed() returns")
    func receiverDropped() async throws {
        let (tx, rx) = Oneshot.channel(of: Int.self)
        let waiting = Task { try await tx.closed() }
        _ = consume rx
        try await waiting.value
        #expect(tx.isClosed)
        #expect(throws: SendError.closed(7)) { try tx.send(7) }
    }

    @Test("a value sent but never received is released when the receiver goes away")
    func unreceivedValueReleased() throws {
        let counter = DropCounter()
        let (tx, rx) = Oneshot.channel(of: Tracked.self)
        try tx.send(Tracked(1, counter))
        #expect(counter.value == 0)
        _ = consume rx
        #expect(counter.value == 1)
        _ = tx
    }

    @Test("a cancelled await leaves the receiver usable: the value still arrives")
    func cancelledAwait() async throws {
        let (tx, rx) = Oneshot.channel(of: Int.self)
        let receiving = Task { () -> Oneshot.RecvError? in
            do throws(Oneshot.RecvError) {
                _ = try await rx.value
                return nil
            } catch {
                return error
            }
        }
        await waitUntil("receiver parked") { rx.storage.state.withLock { $0.hasParkedReceiver } }
        receiving.cancel()
        #expect(await receiving.value == .cancelled)
        try tx.send(3)
        #expect(try await rx.value == 3)
    }
}
