// Mpsc.Sender.send(_:timeout:) (Tokio's send_timeout): the value comes back on a timeout, a close or a
// cancellation; capacity that arrives in time is used; no permit is lost when the deadline and the capacity
// arrive together. And Mpsc.Sender.tryReserve (Tokio's try_reserve).

import KyotoExecutor
import Synchronization
import Testing

@testable import KyotoChannels

/// A current-thread runtime whose clock starts paused (it jumps to the next timer when the runtime is idle).
private func pausedRuntime() -> Runtime {
    var c = Runtime.Configuration(flavor: .currentThread)
    c.startPaused = true
    return Runtime(c)
}

@Suite("Mpsc send with a timeout")
struct SendTimeoutTests {
    @Test("a full channel: .timeout gives the value back after exactly the duration; no capacity is lost")
    func timesOutWithValue() throws {
        let runtime = pausedRuntime()
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        let (outcome, waited) = runtime.blockOn { () async -> (SendTimeoutError<Int>?, Duration) in
            try? tx.trySend(1)
            let start = runtime.clock.now
            do throws(SendTimeoutError<Int>) {
                try await tx.send(2, timeout: .milliseconds(100))
                return (nil, start.duration(to: runtime.clock.now))
            } catch {
                return (error, start.duration(to: runtime.clock.now))
            }
        }
        #expect(outcome == .timeout(2))
        #expect(waited == .milliseconds(100))
        #expect(try rx.tryRecv() == 1)
        #expect(throws: Mpsc.TryRecvError.empty) { try rx.tryRecv() }
        #expect(tx.capacity == 1)
        #expect(tx.core.waitingForCapacity.load(ordering: .relaxed) == 0)
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("capacity that frees up before the deadline is used, and the send returns then")
    func capacityInTime() throws {
        let runtime = pausedRuntime()
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        let waited = runtime.blockOn { () async -> Duration? in
            try? tx.trySend(1)
            let start = runtime.clock.now
            let drainer = spawn {
                try? await runtime.clock.sleep(for: .milliseconds(10))
                return try? rx.tryRecv()
            }
            do throws(SendTimeoutError<Int>) {
                try await tx.send(2, timeout: .milliseconds(100))
            } catch {
                Issue.record("send failed: \(error)")
                return nil
            }
            let elapsed = start.duration(to: runtime.clock.now)
            #expect((try? await drainer.value) == .some(.some(1)))
            return elapsed
        }
        #expect(waited == .milliseconds(10))
        #expect(try rx.tryRecv() == 2)
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("free capacity is taken at once, even with a zero timeout; a full channel times out at once")
    func zeroTimeout() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        try await tx.send(1, timeout: .zero)
        await #expect(throws: SendTimeoutError.timeout(2)) { try await tx.send(2, timeout: .zero) }
        #expect(try rx.tryRecv() == 1)
        #expect(tx.capacity == 1)
    }

    @Test("the receiver closes while the send waits: .closed with the value")
    func closedWhileWaiting() throws {
        let runtime = pausedRuntime()
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        let outcome = runtime.blockOn { () async -> SendTimeoutError<Int>? in
            try? tx.trySend(1)
            spawn {
                try? await runtime.clock.sleep(for: .milliseconds(10))
                rx.close()
            }
            do throws(SendTimeoutError<Int>) {
                try await tx.send(2, timeout: .seconds(3600))
                return nil
            } catch {
                return error
            }
        }
        #expect(outcome == .closed(2))
        // A closed channel answers at once, without a timer.
        _ = runtime.blockOn {
            await #expect(throws: SendTimeoutError.closed(3)) { try await tx.send(3, timeout: .seconds(3600)) }
        }
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("the sending task is cancelled while it waits: .cancelled with the value, not .timeout")
    func cancelledWhileWaiting() async throws {
        // Outside any runtime: the deadline is a Task.sleep on the continuous clock.
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        try tx.trySend(1)
        let sender = Task { () async -> SendTimeoutError<Int>? in
            do throws(SendTimeoutError<Int>) {
                try await tx.send(2, timeout: .seconds(3600))
                return nil
            } catch {
                return error
            }
        }
        await waitUntil("the send waits for capacity") { tx.core.waitingForCapacity.load(ordering: .relaxed) == 1 }
        sender.cancel()
        let outcome = await withDeadline(seconds: 30, "the cancelled send returns") { await sender.value }
        #expect(outcome == .some(.cancelled(2)))
        #expect(try rx.tryRecv() == 1)
        #expect(throws: Mpsc.TryRecvError.empty) { try rx.tryRecv() }
        #expect(tx.capacity == 1)
    }

    @Test("deadlines racing capacity: every value is received exactly once or given back, none lost, no permit lost",
          arguments: [Runtime.Configuration.Flavor.multiThread, .currentThread])
    func deadlineRacesCapacity(_ flavor: Runtime.Configuration.Flavor) async throws {
        // Whether any deadline passes depends on the machine's timing (a consumer that always keeps up
        // leaves no send waiting): a round without one is run again with the next seed, up to 3 rounds.
        let firstSeed = stressSeed()
        for round in 0..<3 {
            let timeouts = await deadlineRaceRound(flavor, seed: firstSeed &+ UInt64(round))
            if timeouts != 0 { return }
        }
        if !isThreadSanitizerEnabled {
            Issue.record("no deadline passed in 3 rounds; the race was not exercised; first seed \(firstSeed)")
        }
    }

    /// One round of `deadlineRacesCapacity`; returns how many sends timed out (nil: the round failed).
    private func deadlineRaceRound(_ flavor: Runtime.Configuration.Flavor, seed: UInt64) async -> Int? {
        let producers = 3
        let perProducer = isThreadSanitizerEnabled ? 150 : 2_000
        let capacity = 2
        let runtime = Runtime(Runtime.Configuration(flavor: flavor))
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: capacity)
        let outcome = await blockOnOwnThread(runtime, seconds: 120, "send-timeout race (seed \(seed))") {
            () async -> (sent: [[Int]], returned: [[Int]], received: [[Int]]) in
            let consumer = spawn { () async -> [[Int]] in
                var rng = SplitMix64(seed: seed)
                var received = Array(repeating: [Int](), count: producers)
                while let message = try? await rx.recv(), message >= 0 {
                    received[message >> 32].append(message & 0xFFFF_FFFF)
                    // Now and then let the buffer fill, so sends wait and some deadlines pass.
                    if Int.random(in: 0..<16, using: &rng) == 0 { await yieldNow() }
                }
                return received
            }
            var handles: [JoinHandle<(sent: [Int], returned: [Int])>] = []
            for producer in 0..<producers {
                handles.append(spawn {
                    var rng = SplitMix64(seed: seed &+ UInt64(producer + 1))
                    var sent: [Int] = []
                    var returned: [Int] = []
                    for sequence in 0..<perProducer {
                        let timeout = Duration.microseconds(Int64.random(in: 0...20, using: &rng))
                        do throws(SendTimeoutError<Int>) {
                            try await tx.send(producer << 32 | sequence, timeout: timeout)
                            sent.append(sequence)
                        } catch {
                            guard case .timeout(let value) = error, value == producer << 32 | sequence else {
                                Issue.record("producer \(producer) sequence \(sequence): \(error); seed \(seed)")
                                continue
                            }
                            returned.append(sequence)
                        }
                    }
                    return (sent, returned)
                })
            }
            var sent: [[Int]] = []
            var returned: [[Int]] = []
            for handle in handles {
                guard let r = try? await handle.value else { return ([], [], []) }
                sent.append(r.sent)
                returned.append(r.returned)
            }
            try? await tx.send(-1)
            return (sent, returned, (try? await consumer.value) ?? [])
        }
        runtime.shutdown(timeout: .seconds(10))
        guard let outcome, outcome.received.count == producers else {
            Issue.record("the race did not finish; seed \(seed)")
            return nil
        }
        for producer in 0..<producers {
            #expect(outcome.received[producer] == outcome.sent[producer],
                    "producer \(producer): received != sent (in order); seed \(seed)")
            #expect(outcome.sent[producer].count + outcome.returned[producer].count == perProducer,
                    "producer \(producer): a value neither sent nor given back; seed \(seed)")
        }
        #expect(tx.capacity == capacity, "a permit was lost; seed \(seed)")
        #expect(tx.core.waitingForCapacity.load(ordering: .relaxed) == 0)
        return outcome.returned.reduce(0) { $0 + $1.count }
    }
}

@Suite("Mpsc tryReserve")
struct TryReserveTests {
    @Test("tryReserve takes free capacity as a permit, fails with .full, then .closed; no capacity is lost")
    func fullThenClosed() throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        let permit = try tx.tryReserve()
        #expect(tx.capacity == 0)
        #expect(throws: Mpsc.TryReserveError.full) { _ = try tx.tryReserve() }
        permit.send(5)
        #expect(try rx.tryRecv() == 5)
        #expect(tx.capacity == 1)
        // An unused permit gives its slot back.
        let unused = try tx.tryReserve()
        _ = consume unused
        #expect(tx.capacity == 1)
        rx.close()
        #expect(throws: Mpsc.TryReserveError.closed) { _ = try tx.tryReserve() }
        #expect(tx.capacity == 1)
    }

    @Test("a slot freed while a sender waits goes to that sender: tryReserve does not jump the queue")
    func doesNotOvertakeWaiters() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        try tx.trySend(1)
        let waiting = Task { try await tx.send(2) }
        await waitUntil("the sender waits for capacity") { tx.core.waitingForCapacity.load(ordering: .relaxed) == 1 }
        #expect(try rx.tryRecv() == 1)
        #expect(throws: Mpsc.TryReserveError.full) { _ = try tx.tryReserve() }
        try await waiting.value
        #expect(try rx.tryRecv() == 2)
        // The slot is free again once the waiting sender's message is taken.
        let again = try tx.tryReserve()
        _ = consume again
        #expect(tx.capacity == 1)
    }

    @Test("a permit keeps the stream open after the last sender is gone, until it is used")
    func permitKeepsStreamOpen() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 2)
        let permit = try tx.tryReserve()
        _ = consume tx
        #expect(throws: Mpsc.TryRecvError.empty) { try rx.tryRecv() }
        permit.send(9)
        #expect(try await rx.recv() == 9)
        #expect(try await rx.recv() == nil)
    }
}
