// Behaviour of the mpsc channels: the Tokio cases (tokio-semantics.md §7.1, §7.2, §8) plus
// cancellation and permit accounting.

import KyotoSync
import Testing

@testable import KyotoChannels

@Suite("Mpsc")
struct MpscTests {
    @Test("trySend fails with full then closed, carrying the value back (T7.1)")
    func trySendFullThenClosed() throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        try tx.trySend(1)
        #expect(throws: TrySendError.full(2)) { try tx.trySend(2) }
        _ = consume rx
        #expect(throws: TrySendError.closed(3)) { try tx.trySend(3) }
        #expect(tx.isClosed)
    }

    @Test("reserve takes capacity, a permit sends, an unused permit gives the slot back (T7.2)")
    func reservePermits() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 2)
        #expect(tx.capacity == 2)
        let first = try await tx.reserve()
        #expect(tx.capacity == 1)
        let second = try await tx.reserve()
        #expect(tx.capacity == 0)
        #expect(throws: TrySendError.full(9)) { try tx.trySend(9) }
        first.send(456)
        #expect(try await rx.recv() == 456)
        #expect(tx.capacity == 1)
        _ = consume second
        #expect(tx.capacity == 2)
        #expect(tx.maxCapacity == 2)
    }

    @Test("recv yields every buffered message then nil once the sender is gone (T7.3)")
    func drainThenEnd() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 4)
        for value in 1...3 { try await tx.send(value) }
        _ = consume tx
        #expect(rx.isClosed)
        #expect(try await rx.recv() == 1)
        #expect(try await rx.recv() == 2)
        #expect(try await rx.recv() == 3)
        #expect(try await rx.recv() == nil)
        #expect(throws: Mpsc.TryRecvError.disconnected) { try rx.tryRecv() }
    }

    @Test("close fails later sends with the value, keeps buffered messages, waits for outstanding permits (T7.4)")
    func closeSemantics() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 4)
        try await tx.send(1)
        try await tx.send(2)
        let permit = try await tx.reserve()
        rx.close()
        #expect(tx.isClosed)
        await #expect(throws: SendError.closed(3)) { try await tx.send(3) }
        await #expect(throws: Mpsc.ReserveError.closed) { _ = try await tx.reserve() }
        #expect(try await rx.recv() == 1)
        #expect(try await rx.recv() == 2)
        #expect(throws: Mpsc.TryRecvError.empty) { try rx.tryRecv() }
        permit.send(4)
        #expect(try await rx.recv() == 4)
        #expect(try await rx.recv() == nil)
        _ = tx
    }

    @Test("a receiver parked after close wakes with nil when the last permit is dropped")
    func parkedReceiverEndsWhenPermitDropped() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        let permit = try await tx.reserve()
        rx.close()
        let receiving = Task { try await rx.recv() }
        await waitUntil("receiver parked") { rx.core.state.withLock { $0.hasParkedReceiver } }
        _ = consume permit
        #expect(try await receiving.value == nil)
        _ = tx
    }

    @Test("recvMany appends up to the limit, 0 for limit 0, 0 after close and drain (T7.5)")
    func recvMany() async throws {
        let (tx, rx) = Mpsc.channel(of: String.self, capacity: 8)
        for value in ["a", "b", "c"] { try await tx.send(value) }
        var buffer = ["x"]
        #expect(try await rx.recvMany(into: &buffer, limit: 2) == 2)
        #expect(buffer == ["x", "a", "b"])
        #expect(try await rx.recvMany(into: &buffer, limit: 0) == 0)
        #expect(try await rx.recv(many: 10) == ["c"])
        rx.close()
        #expect(try await rx.recv(many: 10) == [])
        _ = tx
    }

    @Test("recvMany waits for the first message then takes what else is queued")
    func recvManyWaits() async throws {
        let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
        let receiving = Task { try await rx.recv(many: 5) }
        await waitUntil("receiver parked") { rx.core.state.withLock { $0.hasParkedReceiver } }
        try tx.send(1)
        let received = try await receiving.value
        #expect(received == [1], "exactly one message was sent")
    }

    @Test("waiting senders are served in the order they started waiting (T7.6)")
    func fifoSenders() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        try await tx.send(0)
        var senders: [Task<Void, any Error>] = []
        for value in 1...3 {
            senders.append(Task { try await tx.send(value) })
            await waitUntil("sender \(value) queued for capacity") { tx.core.queuedForCapacity == value }
        }
        var received: [Int] = []
        for index in 0...3 {
            // Bounded: a permit handed to the wrong sender (or lost) fails the test instead of hanging it.
            guard let message = await withDeadline(seconds: 10, "message \(index)", { try? await rx.recv() }) ?? nil else {
                Issue.record("recv \(index) returned no message; received so far: \(received)")
                return
            }
            received.append(message)
        }
        #expect(received == [0, 1, 2, 3])
        for sender in senders { try await sender.value }
    }

    @Test("dropping the receiver releases buffered messages at once and fails senders (T7.8)")
    func dropReceiverReleasesMessages() async throws {
        let counter = DropCounter()
        let (tx, rx) = Mpsc.channel(of: Tracked.self, capacity: 4)
        for id in 0..<3 { try await tx.send(Tracked(id, counter)) }
        #expect(counter.value == 0)
        let waiting = Task { try await tx.closed() }
        _ = consume rx
        #expect(counter.value == 3)
        try await waiting.value
        #expect(tx.isClosed)
        do {
            try await tx.send(Tracked(9, counter))
            Issue.record("send after the receiver was dropped must fail")
        } catch {
            #expect(error.value.id == 9)
        }
    }

    @Test("a sender waiting for capacity fails with its value when the receiver goes away")
    func waitingSenderFailsOnDrop() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        try await tx.send(1)
        let sending = Task { () -> SendError<Int>? in
            do throws(SendError<Int>) {
                try await tx.send(2)
                return nil
            } catch {
                return error
            }
        }
        await waitUntil("sender queued for capacity") { tx.core.queuedForCapacity == 1 }
        _ = consume rx
        let error = await sending.value
        #expect(error == .closed(2))
    }

    @Test("unbounded: 1000 sends never wait; after the receiver is dropped send fails with the value (T7.11)")
    func unbounded() async throws {
        let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
        for value in 0..<1000 { try tx.send(value) }
        #expect(rx.count == 1000)
        var sum = 0
        for _ in 0..<1000 { sum += try await rx.recv()! }
        #expect(sum == 999 * 1000 / 2)
        _ = consume rx
        #expect(throws: SendError.closed(5)) { try tx.send(5) }
    }

    @Test("the receiver is an AsyncSequence that ends when the sender is gone")
    func asyncSequence() async throws {
        let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
        for value in 0..<5 { try tx.send(value) }
        _ = consume tx
        var received: [Int] = []
        for await value in rx { received.append(value) }
        #expect(received == [0, 1, 2, 3, 4])
    }

    @Test("a cancelled recv takes no message: the next recv gets it (T8.1)")
    func cancelledRecvLosesNothing() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 4)
        let receiving = Task { try await rx.recv() }
        await waitUntil("receiver parked") { rx.core.state.withLock { $0.hasParkedReceiver } }
        receiving.cancel()
        await #expect(throws: CancellationError.self) { _ = try await receiving.value }
        #expect(!rx.core.state.withLock { $0.hasParkedReceiver })
        try await tx.send(1)
        #expect(try await rx.recv() == 1)
    }

    @Test("recv in an already-cancelled task still returns a buffered message")
    func cancelledTaskGetsReadyMessage() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 4)
        try await tx.send(1)
        let receiving = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await rx.recv()
        }
        #expect(try await receiving.value == 1)
        let empty = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await rx.recv()
        }
        await #expect(throws: CancellationError.self) { _ = try await empty.value }
    }

    @Test("a cancelled send is not delivered and capacity is unchanged (T8.2)")
    func cancelledSend() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        try await tx.send(1)
        let sending = Task { () -> SendError<Int>? in
            do throws(SendError<Int>) {
                try await tx.send(2)
                return nil
            } catch {
                return error
            }
        }
        await waitUntil("sender queued for capacity") { tx.core.queuedForCapacity == 1 }
        sending.cancel()
        let error = await sending.value
        #expect(error == .cancelled(2))
        #expect(try await rx.recv() == 1)
        #expect(throws: Mpsc.TryRecvError.empty) { try rx.tryRecv() }
        #expect(tx.capacity == 1)
    }

    @Test("a cancelled reserve loses no capacity")
    func cancelledReserve() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        let held = try await tx.reserve()
        let reserving = Task { () -> Mpsc.ReserveError? in
            do throws(Mpsc.ReserveError) {
                let permit = try await tx.reserve()
                _ = consume permit
                return nil
            } catch {
                return error
            }
        }
        await waitUntil("reserver queued for capacity") { tx.core.queuedForCapacity == 1 }
        reserving.cancel()
        let error = await reserving.value
        // The only slot is held, so the queued reserve cannot be granted: nil would mean a second permit.
        #expect(error == .cancelled)
        #expect(tx.core.queuedForCapacity == 0)
        #expect(tx.capacity == 0)
        _ = consume held
        #expect(tx.capacity == 1)
        _ = rx
    }

    @Test("closed() returns when the receiver closes, and throws when cancelled")
    func senderClosed() async throws {
        let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
        let cancelled = Task { try await tx.closed() }
        await waitUntil("closed waiter parked") { tx.core.state.withLock { $0.closedWaiterCount == 1 } }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(tx.core.state.withLock { $0.closedWaiterCount == 0 })
        let waiting = Task { try await tx.closed() }
        await waitUntil("closed waiter parked") { tx.core.state.withLock { $0.closedWaiterCount == 1 } }
        rx.close()
        try await waiting.value
        #expect(tx.isClosed)
    }
}

extension MpscChannel where Permits == BoundedPermits {
    /// The senders and reservers queued in the bounded channel's semaphore, waiting for capacity.
    var queuedForCapacity: Int { permits.semaphore.queuedWaiterCount }
}
