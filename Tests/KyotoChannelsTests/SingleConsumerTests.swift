// One receiver, several tasks taking turns: waits that do not overlap never trip the single-consumer check
// (ReceiverWaits.swift), whichever way each wait ends (a value, cancelled, a wait(for:) that parks several
// times). Overlapping waits trap; ExitTests pins those messages.

import KyotoExecutor
import Testing

@testable import KyotoChannels

@Suite("Receivers taken in turns by several tasks")
struct SingleConsumerTests {
    @Test("broadcast: a parked receive cancelled, then one that gets a value, then another: no trap")
    func broadcastTurns() async throws {
        let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 4)
        let parked = { rx.storage.state.withLock { $0.waiterCount } }
        // 1. parks, then is cancelled.
        let cancelled = Task { try await rx.recv() }
        await waitUntil("the first receive parked") { parked() == 1 }
        cancelled.cancel()
        await #expect(throws: Broadcast.RecvError.cancelled) { try await cancelled.value }
        // 2. parks, then gets a value.
        let second = Task { try await rx.recv() }
        await waitUntil("the second receive parked") { parked() == 1 }
        _ = try tx.send(1)
        #expect(try await second.value == 1)
        // 3. parks again from yet another task, then gets a value.
        let third = Task { try await rx.recv() }
        await waitUntil("the third receive parked") { parked() == 1 }
        _ = try tx.send(2)
        #expect(try await third.value == 2)
    }

    @Test("watch: changed() cancelled, wait(for:) parking several times, then changed() again: no trap")
    func watchTurns() async throws {
        let (tx, rx) = Watch.channel(initial: 0)
        let parked = { rx.storage.state.withLock { $0.waiterCount } }
        let cancelled = Task { try await rx.changed() }
        await waitUntil("changed() parked") { parked() == 1 }
        cancelled.cancel()
        await #expect(throws: Watch.RecvError.cancelled) { try await cancelled.value }
        // wait(for:) rejects 1 and 2 (parking after each), accepts 3.
        let waiter = Task { try await rx.wait { $0 >= 3 } }
        for value in 1...3 {
            await waitUntil("wait(for:) parked before \(value)") { parked() == 1 }
            try tx.send(value)
        }
        #expect(try await waiter.value == 3)
        let next = Task { try await rx.changed() }
        await waitUntil("changed() parked again") { parked() == 1 }
        try tx.send(4)
        try await next.value
        #expect(rx.borrow() == 4)
    }
}
