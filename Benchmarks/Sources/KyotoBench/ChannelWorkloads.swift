// The channel workloads of WORKLOADS.md (mpsc, oneshot, broadcast, watch), with Kyoto's channels and with
// the usual Swift substitutes: swift-async-algorithms' `AsyncChannel` (a rendezvous channel: `send` waits
// until the message is taken, so it is the "bounded" substitute), `AsyncStream` (an unbounded or
// drop-when-full buffer: the "unbounded" substitute, and one stream per receiver for fan-out), and the
// continuation + Mutex oneshot of Support.swift. Each function runs one iteration on `exec`, verifies what
// arrived and returns the timed sample.

import AsyncAlgorithms
import KyotoChannels

enum ChannelWorkloads {
    static let mpscSum = triangle(SyncSize.mpscMessages)

    // MARK: mpsc_uncontended_bounded: one task sends 5,000 ints into a bounded(1,000,000) channel, then
    // receives them.

    static func mpscUncontendedKyoto(_ exec: Exec) -> Sample {
        let (sample, sum) = exec.enter {
            let clock = Stopwatch()
            let (tx, rx) = Mpsc.channel(of: Int.self, capacity: SyncSize.mpscLargeCapacity)
            for i in 0..<SyncSize.mpscMessages { try! await tx.send(i) }
            var sum = 0
            var inOrder = true
            for i in 0..<SyncSize.mpscMessages {
                let v = try! await rx.recv()!
                inOrder = inOrder && v == i
                sum += v
            }
            let sample = clock.stop()
            verify(inOrder, "mpsc_uncontended_bounded (kyoto): messages out of order")
            return (sample, sum)
        }
        verify(sum == mpscSum, "mpsc_uncontended_bounded (kyoto): received sum \(sum), expected \(mpscSum)")
        return sample
    }

    /// AsyncChannel has no buffer: one task cannot send 5,000 messages before receiving them, so a second
    /// task sends while the first receives.
    static func mpscUncontendedAsyncChannel(_ exec: Exec) -> Sample {
        let (sample, sum) = exec.enter {
            let clock = Stopwatch()
            let channel = AsyncChannel<Int>()
            let producer = TaskGroupLite(1, on: exec) { _ in
                for i in 0..<SyncSize.mpscMessages { await channel.send(i) }
            }
            var it = channel.makeAsyncIterator()
            var sum = 0
            var inOrder = true
            for i in 0..<SyncSize.mpscMessages {
                let v = await it.next()!
                inOrder = inOrder && v == i
                sum += v
            }
            await producer.wait()
            let sample = clock.stop()
            verify(inOrder, "mpsc_uncontended_bounded (async-channel): messages out of order")
            return (sample, sum)
        }
        verify(sum == mpscSum, "mpsc_uncontended_bounded (async-channel): received sum \(sum), expected \(mpscSum)")
        return sample
    }

    /// AsyncStream buffering up to 1,000,000 (it never fills here, so nothing is dropped): same program as Kyoto's.
    static func mpscUncontendedAsyncStream(_ exec: Exec) -> Sample {
        let (sample, sum) = exec.enter {
            let clock = Stopwatch()
            let (stream, continuation) = AsyncStream.makeStream(
                of: Int.self, bufferingPolicy: .bufferingOldest(SyncSize.mpscLargeCapacity))
            for i in 0..<SyncSize.mpscMessages { yieldOrFail(continuation, i, "mpsc_uncontended_bounded") }
            var it = stream.makeAsyncIterator()
            var sum = 0
            var inOrder = true
            for i in 0..<SyncSize.mpscMessages {
                let v = await it.next()!
                inOrder = inOrder && v == i
                sum += v
            }
            let sample = clock.stop()
            verify(inOrder, "mpsc_uncontended_bounded (async-stream): messages out of order")
            return (sample, sum)
        }
        verify(sum == mpscSum, "mpsc_uncontended_bounded (async-stream): received sum \(sum), expected \(mpscSum)")
        return sample
    }

    // MARK: mpsc_contention_*: 5 producer tasks × 1,000 ints; the starting task receives all 5,000.
    // Producer p sends p*1000 ..< (p+1)*1000 in order; the consumer checks per-producer FIFO and the sum.

    /// Receives 5,000 messages with `next`, checking per-producer order, and returns their sum.
    private static func consume(_ what: String, _ next: () async -> Int) async -> Int {
        var expected = [Int](unsafeUninitializedCapacity: SyncSize.mpscProducers) { buf, n in
            for p in 0..<SyncSize.mpscProducers { buf[p] = p * SyncSize.mpscPerProducer }
            n = SyncSize.mpscProducers
        }
        var sum = 0
        for _ in 0..<SyncSize.mpscMessages {
            let v = await next()
            let p = v / SyncSize.mpscPerProducer
            verify(p >= 0 && p < SyncSize.mpscProducers && expected[p] == v, "\(what): message \(v) out of order")
            expected[p] += 1
            sum += v
        }
        return sum
    }

    static func mpscContentionKyoto(_ exec: Exec, capacity: Int, workload: String) -> Sample {
        let (sample, sum) = exec.enter {
            let clock = Stopwatch()
            let (tx, rx) = Mpsc.channel(of: Int.self, capacity: capacity)
            let producers = TaskGroupLite(SyncSize.mpscProducers, on: exec) { p in
                let base = p * SyncSize.mpscPerProducer
                for i in 0..<SyncSize.mpscPerProducer { try! await tx.send(base + i) }
            }
            let sum = await consume("\(workload) (kyoto)") { try! await rx.recv()! }
            await producers.wait()
            return (clock.stop(), sum)
        }
        verify(sum == mpscSum, "\(workload) (kyoto): received sum \(sum), expected \(mpscSum)")
        return sample
    }

    static func mpscContentionUnboundedKyoto(_ exec: Exec) -> Sample {
        let workload = "mpsc_contention_unbounded"
        let (sample, sum) = exec.enter {
            let clock = Stopwatch()
            let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
            let producers = TaskGroupLite(SyncSize.mpscProducers, on: exec) { p in
                let base = p * SyncSize.mpscPerProducer
                for i in 0..<SyncSize.mpscPerProducer { try! tx.send(base + i) }
            }
            let sum = await consume("\(workload) (kyoto)") { try! await rx.recv()! }
            await producers.wait()
            return (clock.stop(), sum)
        }
        verify(sum == mpscSum, "\(workload) (kyoto): received sum \(sum), expected \(mpscSum)")
        return sample
    }

    /// The same program over AsyncChannel (capacity 0: every send waits for the consumer), for both the
    /// bounded(1,000,000) and the bounded(100) rows.
    static func mpscContentionAsyncChannel(_ exec: Exec, workload: String) -> Sample {
        let (sample, sum) = exec.enter {
            let clock = Stopwatch()
            let channel = AsyncChannel<Int>()
            let producers = TaskGroupLite(SyncSize.mpscProducers, on: exec) { p in
                let base = p * SyncSize.mpscPerProducer
                for i in 0..<SyncSize.mpscPerProducer { await channel.send(base + i) }
            }
            var it = channel.makeAsyncIterator()
            let sum = await consume("\(workload) (async-channel)") { await it.next()! }
            await producers.wait()
            return (clock.stop(), sum)
        }
        verify(sum == mpscSum, "\(workload) (async-channel): received sum \(sum), expected \(mpscSum)")
        return sample
    }

    /// The same program over one AsyncStream shared by the producers (its continuation is Sendable).
    /// `policy` is `.unbounded`, or `.bufferingOldest(1_000_000)` for the bounded row (never full, so no drop).
    static func mpscContentionAsyncStream(
        _ exec: Exec, policy: AsyncStream<Int>.Continuation.BufferingPolicy, workload: String
    ) -> Sample {
        let (sample, sum) = exec.enter {
            let clock = Stopwatch()
            let (stream, continuation) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: policy)
            let producers = TaskGroupLite(SyncSize.mpscProducers, on: exec) { p in
                let base = p * SyncSize.mpscPerProducer
                for i in 0..<SyncSize.mpscPerProducer { yieldOrFail(continuation, base + i, workload) }
            }
            var it = stream.makeAsyncIterator()
            let sum = await consume("\(workload) (async-stream)") { await it.next()! }
            await producers.wait()
            return (clock.stop(), sum)
        }
        verify(sum == mpscSum, "\(workload) (async-stream): received sum \(sum), expected \(mpscSum)")
        return sample
    }

    @inline(__always)
    private static func yieldOrFail(_ c: AsyncStream<Int>.Continuation, _ v: Int, _ workload: String) {
        guard case .enqueued = c.yield(v) else {
            verify(false, "\(workload) (async-stream): yield of \(v) was not enqueued")
            return
        }
    }

    // MARK: oneshot: 10,000 times: create a oneshot, send from a started task, await in the starter.

    static let oneshotSum = triangle(SyncSize.oneshotRounds)

    static func oneshotKyoto(_ exec: Exec) -> Sample {
        let (sample, sum) = exec.enter {
            let clock = Stopwatch()
            var sum = 0
            for i in 0..<SyncSize.oneshotRounds {
                let (tx, rx) = Oneshot.channel(of: Int.self)
                exec.start { try! tx.send(i) }
                sum += try! await rx.value
            }
            return (clock.stop(), sum)
        }
        verify(sum == oneshotSum, "oneshot (kyoto): received sum \(sum), expected \(oneshotSum)")
        return sample
    }

    static func oneshotContinuation(_ exec: Exec) -> Sample {
        let (sample, sum) = exec.enter {
            let clock = Stopwatch()
            var sum = 0
            for i in 0..<SyncSize.oneshotRounds {
                let channel = OneShot()
                exec.start { channel.send(i) }
                sum += await channel.receive()
            }
            return (clock.stop(), sum)
        }
        verify(sum == oneshotSum, "oneshot (continuation): received sum \(sum), expected \(oneshotSum)")
        return sample
    }

    static func oneshotAsyncStream(_ exec: Exec) -> Sample {
        let (sample, sum) = exec.enter {
            let clock = Stopwatch()
            var sum = 0
            for i in 0..<SyncSize.oneshotRounds {
                let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
                exec.start {
                    continuation.yield(i)
                    continuation.finish()
                }
                var it = stream.makeAsyncIterator()
                sum += await it.next()!
            }
            return (clock.stop(), sum)
        }
        verify(sum == oneshotSum, "oneshot (async-stream): received sum \(sum), expected \(oneshotSum)")
        return sample
    }

    // MARK: broadcast_fanout: 1 sender, 10 receiver tasks, capacity 1,024, 1,000 messages; done when every
    // receiver got all of them, in order. op = one delivery (10,000).

    static var fanoutDeliveries: Int { SyncSize.fanoutReceivers * SyncSize.broadcastMessages }

    static func broadcastKyoto(_ exec: Exec) -> Sample {
        let (sample, check) = exec.enter {
            let clock = Stopwatch()
            let (tx, rx0) = Broadcast.channel(of: Int.self, capacity: SyncSize.broadcastCapacity)
            var receivers = [rx0]
            for _ in 1..<SyncSize.fanoutReceivers { receivers.append(tx.subscribe()) }
            let all = receivers
            let check = OrderCheck()
            let tasks = TaskGroupLite(SyncSize.fanoutReceivers, on: exec) { r in
                let rx = all[r]
                var sum = 0
                var inOrder = true
                for i in 0..<SyncSize.broadcastMessages {
                    let v: Int
                    do {
                        v = try await rx.recv()
                    } catch {
                        verify(false, "broadcast_fanout (kyoto): receiver \(r) got \(error) at message \(i)")
                        return
                    }
                    inOrder = inOrder && v == i
                    sum += v
                }
                check.record(count: SyncSize.broadcastMessages, sum: sum, inOrder: inOrder)
            }
            for i in 0..<SyncSize.broadcastMessages {
                let n = try! tx.send(i)
                if n != SyncSize.fanoutReceivers { verify(false, "broadcast_fanout (kyoto): sent to \(n) receivers") }
            }
            await tasks.wait()
            return (clock.stop(), check)
        }
        verifyFanout(check, "kyoto")
        return sample
    }

    /// One AsyncStream per receiver (buffering up to 1,024, never reached); the sender yields each message
    /// to every stream.
    static func broadcastAsyncStream(_ exec: Exec) -> Sample {
        let (sample, check) = exec.enter {
            let clock = Stopwatch()
            var streams: [AsyncStream<Int>] = []
            var continuations: [AsyncStream<Int>.Continuation] = []
            for _ in 0..<SyncSize.fanoutReceivers {
                let (s, c) = AsyncStream.makeStream(
                    of: Int.self, bufferingPolicy: .bufferingOldest(SyncSize.broadcastCapacity))
                streams.append(s)
                continuations.append(c)
            }
            let all = streams
            let check = OrderCheck()
            let tasks = TaskGroupLite(SyncSize.fanoutReceivers, on: exec) { r in
                var it = all[r].makeAsyncIterator()
                var sum = 0
                var inOrder = true
                for i in 0..<SyncSize.broadcastMessages {
                    let v = await it.next()!
                    inOrder = inOrder && v == i
                    sum += v
                }
                check.record(count: SyncSize.broadcastMessages, sum: sum, inOrder: inOrder)
            }
            for i in 0..<SyncSize.broadcastMessages {
                for c in continuations { yieldOrFail(c, i, "broadcast_fanout") }
            }
            await tasks.wait()
            return (clock.stop(), check)
        }
        verifyFanout(check, "async-stream")
        return sample
    }

    private static func verifyFanout(_ check: OrderCheck, _ impl: String) {
        let expectedSum = SyncSize.fanoutReceivers * triangle(SyncSize.broadcastMessages)
        verify(
            check.errorCount == 0 && check.totalCount == fanoutDeliveries && check.totalSum == expectedSum,
            "broadcast_fanout (\(impl)): \(check.totalCount) deliveries (sum \(check.totalSum), \(check.errorCount) out of order), expected \(fanoutDeliveries) (sum \(expectedSum))"
        )
    }

    // MARK: watch_fanout: 1 sender stores 1..1,000 without waiting; 10 receiver tasks wait for changes until
    // they see 1,000. op = one send. Receivers must see non-decreasing values ending at the final one.

    static func watchKyoto(_ exec: Exec) -> Sample {
        let (sample, check) = exec.enter {
            let clock = Stopwatch()
            let (tx, rx0) = Watch.channel(initial: 0)
            var receivers = [rx0]
            for _ in 1..<SyncSize.fanoutReceivers { receivers.append(tx.subscribe()) }
            let all = receivers
            let check = OrderCheck()
            let tasks = TaskGroupLite(SyncSize.fanoutReceivers, on: exec) { r in
                let rx = all[r]
                var last = 0
                var seen = 0
                var inOrder = true
                while last != SyncSize.watchSends {
                    do {
                        try await rx.changed()
                    } catch {
                        verify(false, "watch_fanout (kyoto): receiver \(r) got \(error) after seeing \(last)")
                    }
                    let v = rx.borrowAndUpdate()
                    inOrder = inOrder && v >= last
                    last = v
                    seen += 1
                }
                check.record(count: seen, sum: last, inOrder: inOrder)
            }
            for i in 1...SyncSize.watchSends { try! tx.send(i) }
            await tasks.wait()
            let sample = clock.stop()
            withExtendedLifetime(tx) {}
            return (sample, check)
        }
        verifyWatch(check, "kyoto")
        return sample
    }

    /// One AsyncStream per receiver keeping only the newest value (a watch's semantics); the sender yields
    /// each value to every stream.
    static func watchAsyncStream(_ exec: Exec) -> Sample {
        let (sample, check) = exec.enter {
            let clock = Stopwatch()
            var streams: [AsyncStream<Int>] = []
            var continuations: [AsyncStream<Int>.Continuation] = []
            for _ in 0..<SyncSize.fanoutReceivers {
                let (s, c) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .bufferingNewest(1))
                streams.append(s)
                continuations.append(c)
            }
            let all = streams
            let check = OrderCheck()
            let tasks = TaskGroupLite(SyncSize.fanoutReceivers, on: exec) { r in
                var it = all[r].makeAsyncIterator()
                var last = 0
                var seen = 0
                var inOrder = true
                while last != SyncSize.watchSends {
                    let v = await it.next()!
                    inOrder = inOrder && v >= last
                    last = v
                    seen += 1
                }
                check.record(count: seen, sum: last, inOrder: inOrder)
            }
            for i in 1...SyncSize.watchSends {
                for c in continuations { c.yield(i) }
            }
            await tasks.wait()
            return (clock.stop(), check)
        }
        verifyWatch(check, "async-stream")
        return sample
    }

    private static func verifyWatch(_ check: OrderCheck, _ impl: String) {
        // `sum` records each receiver's final value; `count` how many changes it observed (1...1,000).
        verify(
            check.errorCount == 0 && check.totalSum == SyncSize.fanoutReceivers * SyncSize.watchSends
                && check.totalCount >= SyncSize.fanoutReceivers
                && check.totalCount <= SyncSize.fanoutReceivers * SyncSize.watchSends,
            "watch_fanout (\(impl)): final values sum to \(check.totalSum), \(check.totalCount) changes seen, \(check.errorCount) receivers saw values go backwards"
        )
    }
}
