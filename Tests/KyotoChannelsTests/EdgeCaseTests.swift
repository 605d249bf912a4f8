// Edge cases found by review: overlapping receives, re-entering a watch channel from its own modify
// closure, what `wait(for:)` marks seen, a negative receive limit, and the capacity a receiver drop frees.

import Foundation
import Synchronization
import Testing

@testable import KyotoChannels

#if canImport(Glibc)
import Glibc
#endif

@Suite("Channel edge cases")
struct ChannelEdgeCaseTests {
    @Test("wait(for:) marks the values its predicate rejected as seen (Tokio's wait_for)")
    func waitForMarksRejectedSeen() async throws {
        let (tx, rx) = Watch.channel(initial: 0)
        try tx.send(1)
        _ = consume tx
        await #expect(throws: Watch.RecvError.closed) { try await rx.wait(for: { $0 == 5 }) }
        // The predicate saw 1 and rejected it: nothing unseen is left, so changed() reports the end.
        await #expect(throws: Watch.RecvError.closed) { try await rx.changed() }
    }

    @Test("a cancelled wait(for:) leaves the rejected value seen")
    func cancelledWaitForMarksRejectedSeen() async throws {
        let (tx, rx) = Watch.channel(initial: 0)
        try tx.send(1)
        let waiter = Task { try await rx.wait(for: { $0 == 5 }) }
        await waitUntil("wait(for:) parked") { rx.storage.state.withLock { $0.waiterCount == 1 } }
        waiter.cancel()
        await #expect(throws: Watch.RecvError.cancelled) { try await waiter.value }
        #expect(try rx.hasChanged() == false)
        _ = tx
    }

    @Test("dropping the receiver frees the slots of the messages it dropped")
    func receiverDropFreesCapacity() throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 2)
        try tx.trySend(1)
        #expect(tx.capacity == 1)
        _ = consume rx
        #expect(tx.capacity == 2)
        #expect(throws: TrySendError.closed(3)) { try tx.trySend(3) }
    }

    @Test("recvMany after a hand-over takes what is buffered and leaves no receive in progress")
    func recvManyAfterHandOver() async throws {
        let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
        let receiving = Task { try await rx.recv(many: 10) }
        await waitUntil("receiver parked") { rx.core.state.withLock { $0.hasParkedReceiver } }
        try tx.send(1)
        let first = try await receiving.value
        #expect(first == [1])
        // A later receive is not mistaken for a second, overlapping one.
        try tx.send(2)
        try tx.send(3)
        #expect(try await rx.recv(many: 10) == [2, 3])
    }
}

@Suite("Channel edge-case traps", .enabled(if: exitTestsEnabled, "exit tests are skipped under sanitizers"))
struct ChannelEdgeCaseExitTests {
    @Test("a second mpsc receive while the first has not parked yet traps")
    func mpscOverlappingReceive() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            // Task A's receive got an id and is about to park (a separate lock section); task B receives now.
            _ = rx.core.state.withLock { $0.receive() }
            _ = rx.core.state.withLock { $0.receive() }
            _ = tx
        }
        #expect(
            stderrText(result).contains(
                "BUG DETECTED: two tasks are receiving from the same mpsc receiver at once"))
    }

    @Test("a second await of a oneshot receiver while the first has not parked yet traps")
    func oneshotOverlappingAwait() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let (tx, rx) = Oneshot.channel(of: Int.self)
            _ = rx.storage.state.withLock { $0.receive() }
            _ = rx.storage.state.withLock { $0.receive() }
            _ = tx
        }
        #expect(
            stderrText(result).contains(
                "BUG DETECTED: two tasks are awaiting the same Oneshot.Receiver at once"))
    }

    @Test("a negative receive limit traps instead of reporting the end of the stream")
    func negativeLimit() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 4)
            try? tx.trySend(1)
            var buffer: [Int] = []
            _ = try? await rx.recvMany(into: &buffer, limit: -1)
        }
        #expect(
            stderrText(result).contains(
                "BUG DETECTED: an mpsc receive of many messages was given a negative limit (-1)"))
    }

    @Test("using a watch channel inside its own sendModify closure traps instead of deadlocking")
    func watchReentrantModify() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)  // a deadlock instead of the trap ends the child without the message
            let (tx, rx) = Watch.channel(initial: 0)
            tx.sendModify { value in value = tx.borrow() + 1 }
            _ = rx
        }
        #expect(
            stderrText(result).contains(
                "BUG DETECTED: a watch channel was used inside its own sendModify/sendIfModified closure"))
    }

    @Test("a replaced value whose deinit uses the channel traps inside sendIfModified instead of deadlocking")
    func watchReentrantDeinit() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            alarm(20)
            let (tx, rx) = Watch.channel(initial: ReentrantValue(nil))
            _ = tx.sendReplace(ReentrantValue { _ = rx.borrow() })
            // That value is held by the channel alone: replacing it in place runs its deinit under the lock.
            tx.sendIfModified { value in
                value = ReentrantValue(nil)
                return true
            }
        }
        #expect(
            stderrText(result).contains(
                "BUG DETECTED: a watch channel was used inside its own sendModify/sendIfModified closure"))
    }
}

/// A value whose deinit runs `onDeinit` (user code that may touch the channel holding it).
private final class ReentrantValue: Sendable {
    let onDeinit: (@Sendable () -> Void)?
    init(_ onDeinit: (@Sendable () -> Void)?) { self.onDeinit = onDeinit }
    deinit { onDeinit?() }
}

/// The child's standard error, as text.
private func stderrText(_ result: ExitTest.Result?) -> String {
    String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}
