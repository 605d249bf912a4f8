// The blocking forms of the channels (Tokio's `blocking_send` / `blocking_recv`): synchronous code on a
// plain thread, in a `spawnBlocking` closure or in a `blockInPlace` closure exchanging messages with tasks.

import Foundation
import KyotoExecutor
import Synchronization
import Testing

@testable import KyotoChannels

@Suite("Blocking forms of the channels")
struct ChannelBlockingTests {
    @Test("blockingSend from a plain thread into a full bounded channel: a task receives every value, in order")
    func blockingSendFromThread() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        let n = 2_000
        let producer = PlainThread { () -> Bool in
            for i in 0..<n { try! tx.blockingSend(i) }
            return true
        }
        let received = await withDeadline(seconds: 60, "receiving from a blocking producer") {
            var got: [Int] = []
            while got.count < n, let v = try? await rx.recv() { got.append(v) }
            return got
        }
        #expect(received == Array(0..<n))
        #expect(await producer.result(seconds: 30, "the blocking producer") == true)
    }

    @Test("blockingSend throws .closed with the value once the receiver is gone, also while it waits for room")
    func blockingSendClosed() async throws {
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        try tx.trySend(1)
        // The channel is full: this send waits until the receiver goes away.
        let waiting = PlainThread { blockingSendOutcome(tx, 2) }
        await waitUntil("the blocking send queues for room") { tx.core.permits.semaphore.queuedWaiterCount == 1 }
        rx.close()
        #expect(await waiting.result(seconds: 30, "the blocked send") == "\(SendError<Int>.closed(2))")
        let later = PlainThread { blockingSendOutcome(tx, 3) }
        #expect(await later.result(seconds: 30, "a send after the close") == "\(SendError<Int>.closed(3))")
    }

    @Test("blockingRecv on a plain thread receives what tasks send, then nil at the end of the stream",
          arguments: [false, true])
    func blockingRecvOnThread(bounded: Bool) async throws {
        let n = 2_000
        let consumer: PlainThread<[Int]>
        let runtime = Runtime.multiThread(workers: 2)
        if bounded {
            let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 4)
            consumer = PlainThread {
                var got: [Int] = []
                while let v = rx.blockingRecv() { got.append(v) }
                return got
            }
            let producer = runtime.spawn { for i in 0..<n { try await tx.send(i) } }
            try await producer.value
        } else {
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            consumer = PlainThread {
                var got: [Int] = []
                while let v = rx.blockingRecv() { got.append(v) }
                return got
            }
            let producer = runtime.spawn {
                for i in 0..<n {
                    try tx.send(i)
                    if i % 16 == 0 { await Task.yield() }
                }
            }
            try await producer.value
        }
        // The producer's task has ended and released the last sender: the consumer sees the end.
        #expect(await consumer.result(seconds: 60, "the blocking consumer") == Array(0..<n))
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("a spawnBlocking closure and an async task talk through one channel each way")
    func spawnBlockingRoundTrip() async throws {
        let runtime = Runtime.multiThread(workers: 2)
        let (requests, requestsRx) = Mpsc.channel(of: Int.self, capacity: 2)
        let (replies, repliesRx) = Mpsc.channel(of: Int.self, capacity: 2)
        // The blocking side: doubles every request until the stop sign (-1).
        let server = runtime.spawnBlocking { () -> Int in
            var served = 0
            while let x = requestsRx.blockingRecv(), x >= 0 {
                try! replies.blockingSend(2 * x)
                served += 1
            }
            return served
        }
        let sum = try await runtime.spawn { () async throws -> Int in
            var sum = 0
            for i in 0..<500 {
                try await requests.send(i)
                sum += try await repliesRx.recv() ?? 0
            }
            try await requests.send(-1)
            return sum
        }.value
        #expect(sum == 2 * (499 * 500 / 2))
        #expect(try await server.value == 500)
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("blockingRecv inside blockInPlace waits for a task that sends after a timer")
    func blockingRecvInBlockInPlace() throws {
        let runtime = Runtime.multiThread(workers: 2)
        let got = try runtime.blockOn { () async throws -> Int? in
            let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
            let sender = spawn {
                try await Task.sleep(for: .milliseconds(5))
                try await tx.send(42)
            }
            let value = blockInPlace { rx.blockingRecv() }
            try await sender.value
            return value
        }
        #expect(got == 42)
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("blockInPlace in a task on Swift's default executor may block too (its body simply runs there)")
    func blockingRecvInBlockInPlaceOffRuntime() async throws {
        let runtime = Runtime.multiThread(workers: 2)
        let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1)
        let sender = runtime.spawn {
            try await Task.sleep(for: .milliseconds(5))
            try await tx.send(9)
        }
        let got = await Task.detached { blockInPlace { rx.blockingRecv() } }.value
        try await sender.value
        #expect(got == 9)
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("Oneshot.blockingRecv: a value sent later by a task; .closed when the sender goes away unsent")
    func oneshotBlockingRecv() async throws {
        let runtime = Runtime.multiThread(workers: 2)
        let (tx, rx) = Oneshot.channel(of: String.self)
        let waiter = PlainThread { () -> String in
            do {
                return try rx.blockingRecv()
            } catch {
                return "\(error)"
            }
        }
        try await runtime.spawn {
            try await Task.sleep(for: .milliseconds(5))
            try tx.send("hello")
        }.value
        #expect(await waiter.result(seconds: 30, "the blocked oneshot receive") == "hello")
        // Taken: a second blocking receive reports .closed at once; so does one whose sender is gone.
        let unsent: Oneshot.Receiver<Int> = Oneshot.channel(of: Int.self).1
        let again = PlainThread { () -> [String] in
            var out: [String] = []
            do { _ = try rx.blockingRecv() } catch { out.append("\(error)") }
            do { _ = try unsent.blockingRecv() } catch { out.append("\(error)") }
            return out
        }
        #expect(await again.result(seconds: 30, "receives that cannot wait") == ["closed", "closed"])

        // The sender goes away while the receiver waits (or just before: either way, .closed).
        let rx2: Oneshot.Receiver<Int>
        do {
            let (tx2, receiver) = Oneshot.channel(of: Int.self)
            rx2 = receiver
            let closedWaiter = PlainThread { () -> String in
                do {
                    return "value \(try rx2.blockingRecv())"
                } catch {
                    return "\(error)"
                }
            }
            try await runtime.spawn { [tx2] in
                try await Task.sleep(for: .milliseconds(5))
                _ = tx2
            }.value
            _ = consume tx2
            #expect(await closedWaiter.result(seconds: 30, "the receive whose sender went away") == "\(Oneshot.RecvError.closed)")
        }
        runtime.shutdown(timeout: .seconds(5))
    }

    @Test("Broadcast.blockingRecv on a plain thread: every value in order, .lagged after an overrun, .closed at the end")
    func broadcastBlockingRecv() async throws {
        let runtime = Runtime.multiThread(workers: 2)
        let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 4)
        let (gateTx, gateRx) = Mpsc.unboundedChannel(of: Int.self)
        let (burstSentTx, burstSentRx) = Mpsc.unboundedChannel(of: Int.self)
        let reader = PlainThread { () -> [String] in
            var seen: [String] = []
            // Round 1: values sent one at a time while this thread waits for each.
            for _ in 0..<3 {
                do { seen.append("\(try rx.blockingRecv())") } catch { seen.append("\(error)") }
            }
            try? gateTx.send(0)  // the writer may overrun us now
            _ = burstSentRx.blockingRecv()  // it has
            // Round 2: 10 values were sent into a capacity of 4 while nobody read.
            while true {
                do throws(Broadcast.RecvError) {
                    seen.append("\(try rx.blockingRecv())")
                } catch {
                    seen.append("\(error)")
                    if error == .closed { break }
                }
            }
            return seen
        }
        try await runtime.spawn {
            for i in 0..<3 {
                try await Task.sleep(for: .milliseconds(2))
                _ = try tx.send(i)
            }
            _ = try await gateRx.recv()
            for i in 10..<20 { _ = try tx.send(i) }
            try burstSentTx.send(0)
        }.value
        _ = consume tx
        let seen = await reader.result(seconds: 30, "the blocking broadcast reader")
        #expect(seen == ["0", "1", "2", "lagged(6)", "16", "17", "18", "19", "closed"])
        runtime.shutdown(timeout: .seconds(5))
    }
}

/// What `tx.blockingSend(value)` did: "sent", or the error it threw.
private func blockingSendOutcome(_ tx: Mpsc.Sender<Int>, _ value: Int) -> String {
    do {
        try tx.blockingSend(value)
        return "sent"
    } catch {
        return "\(error)"
    }
}
