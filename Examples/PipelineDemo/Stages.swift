// The stages of pipeline-demo, each an ordinary async function run as a Kyoto task:
// producer -> bounded mpsc -> dispatcher -> worker pool -> broadcast -> subscribers.

import Kyoto

/// The knobs of the demo.
struct PipelineConfig: Sendable {
    /// Items the producer sends.
    var items = 4_000
    /// Capacity of the bounded mpsc between the producer and the dispatcher.
    var queueCapacity = 8
    /// Worker tasks in the pool.
    var workers = 4
    /// Worker `w` spends `(w + 1) * baseCost` on each item (a `Task.sleep` standing in for I/O), so the
    /// workers run at different speeds and the per-worker counts show how the pool balances load.
    var baseCost: Duration = .microseconds(400)
    /// Values the broadcast channel retains. A broadcast sender never waits: a subscriber that falls more
    /// than this many results behind loses results (`.lagged(n)`). Here the subscribers only count, so
    /// they keep up easily; the checker reports any lag it sees.
    var broadcastCapacity = 256
    /// The stats printer prints a line every this many results.
    var reportEvery = 1_000
}

/// What a worker produced for one item.
struct WorkResult: Sendable {
    let item: Int
    let worker: Int
    let value: Int

    /// The "work": the checker recomputes it to verify every result.
    static func compute(_ item: Int) -> Int { item &* item &+ 1 }
}

// MARK: Stage 1: the producer

/// What the producer saw of backpressure.
struct ProducerReport: Sendable {
    /// Items that made it into the channel.
    var sent = 0
    /// Sends for which `trySend` found the channel full, so the producer had to `await send` (wait).
    var hadToWait = 0
    /// Total time spent in those waiting sends.
    var waited: Duration = .zero
    /// Time from the first send to the last.
    var elapsed: Duration = .zero
    /// Most items ever buffered (or reserved) in the channel, seen right after a send.
    var peakBuffered = 0
}

/// Sends `0..<count` into `channel` as fast as it can. Every send first tries `trySend`; when the
/// channel is full (`.full`) the producer counts it and falls back to `send`, which waits for capacity.
func produce(_ count: Int, into channel: Mpsc.Sender<Int>) async -> ProducerReport {
    let clock = ContinuousClock()
    let start = clock.now
    var report = ProducerReport()
    sending: for item in 0..<count {
        do throws(TrySendError<Int>) {
            try channel.trySend(item)
        } catch {
            guard case .full(let item) = error else { break sending }  // .closed: the receiver is gone
            report.hadToWait += 1
            let waitStart = clock.now
            do {
                try await channel.send(item)  // suspends until the dispatcher frees a slot
            } catch {
                break sending  // the receiver is gone (or we were cancelled)
            }
            report.waited += clock.now - waitStart
        }
        report.sent += 1
        report.peakBuffered = max(report.peakBuffered, channel.maxCapacity - channel.capacity)
    }
    report.elapsed = clock.now - start
    // `channel` is the only sender: when this task ends it is released, and the dispatcher's `recv()`
    // returns nil once the buffer is drained.
    return report
}

// MARK: Stage 2: the dispatcher and the worker pool

/// A Kyoto mpsc receiver has a single consumer, so the workers do not share `input`. The dispatcher owns
/// it and hands each item to an idle worker: a worker announces itself on `ready` when it wants work,
/// and gets the item through its own one-slot inbox. Work is pulled, so a fast worker takes more items
/// and the dispatcher (hence the producer) waits when every worker is busy: backpressure end to end.
///
/// Returns the number of items each worker processed.
func runWorkerPool(
    input: Mpsc.Receiver<Int>, workers: Int, baseCost: Duration, results: Broadcast.Sender<WorkResult>
) async throws -> [Int] {
    let (ready, readyQueue) = Mpsc.channel(of: Int.self, capacity: workers)  // at most one "ready" per worker
    var inboxes: [Mpsc.Sender<Int>] = []
    var handles: [JoinHandle<Int>] = []
    for id in 0..<workers {
        let (inbox, mailbox) = Mpsc.channel(of: Int.self, capacity: 1)
        inboxes.append(inbox)
        handles.append(spawn {
            try await work(id: id, cost: baseCost * (id + 1), ready: ready, mailbox: mailbox, results: results)
        })
    }

    while let item = try await input.recv() {
        guard let id = try await readyQueue.recv() else { break }
        try await inboxes[id].send(item)
    }
    // The producer is done and the input drained: dropping the inbox senders ends every worker's loop.
    inboxes.removeAll()

    var counts: [Int] = []
    for handle in handles { counts.append(try await handle.value) }
    return counts
}

/// One worker: asks for an item, processes it, broadcasts the result; returns how many it processed.
func work(
    id: Int, cost: Duration, ready: Mpsc.Sender<Int>, mailbox: Mpsc.Receiver<Int>,
    results: Broadcast.Sender<WorkResult>
) async throws -> Int {
    var processed = 0
    while true {
        do { try await ready.send(id) } catch { break }
        guard let item = try await mailbox.recv() else { break }  // nil: no more work
        try await Task.sleep(for: cost)
        do {
            try results.send(WorkResult(item: item, worker: id, value: WorkResult.compute(item)))
        } catch {
            print("worker \(id): no subscriber left for item \(item)")
        }
        processed += 1
    }
    return processed
}

// MARK: Stage 3: the subscribers

/// What the stats printer saw.
struct StatsReport: Sendable {
    var received = 0
    var perWorker: [Int]
}

/// Subscriber 1: prints a progress line every `every` results, with throughput and the split by worker.
func printStats(_ results: Broadcast.Receiver<WorkResult>, expected: Int, workers: Int, every: Int) async
    -> StatsReport
{
    let clock = ContinuousClock()
    let start = clock.now
    var report = StatsReport(perWorker: Array(repeating: 0, count: workers))
    while true {
        let result: WorkResult
        do throws(Broadcast.RecvError) {
            result = try await results.recv()
        } catch {
            // .closed: every worker is done and everything was read; .cancelled: the task was cancelled.
            guard case .lagged(let missed) = error else { break }
            print("[stats] lagged: missed \(missed) results")
            continue
        }
        report.received += 1
        if result.worker < workers { report.perWorker[result.worker] += 1 }
        if report.received % every == 0 {
            let seconds = (clock.now - start).seconds
            let rate = seconds > 0 ? Int(Double(report.received) / seconds) : 0
            let split = report.perWorker.map { pad($0, 4) }.joined(separator: " ")
            print("[stats] \(pad(report.received, 5)) / \(expected) results  \(pad(rate, 6)) items/s  by worker: \(split)")
        }
    }
    return report
}

/// What the checker found.
struct CheckReport: Sendable {
    var received = 0
    var distinct = 0
    var duplicates = 0
    var missing = 0
    var outOfRange = 0
    var wrongValues = 0
    var lagged = 0

    /// Every item arrived exactly once, with the right value.
    var exactlyOnce: Bool {
        distinct == received && duplicates == 0 && missing == 0 && outOfRange == 0 && wrongValues == 0
            && lagged == 0
    }
}

/// Subscriber 2: checks that every item in `0..<expected` arrives exactly once with the right value.
func check(_ results: Broadcast.Receiver<WorkResult>, expected: Int) async -> CheckReport {
    var seen = [Int](repeating: 0, count: expected)
    var report = CheckReport()
    while true {
        let result: WorkResult
        do throws(Broadcast.RecvError) {
            result = try await results.recv()
        } catch {
            guard case .lagged(let missed) = error else { break }
            report.lagged += missed
            continue
        }
        report.received += 1
        guard (0..<expected).contains(result.item) else {
            report.outOfRange += 1
            continue
        }
        seen[result.item] += 1
        if result.value != WorkResult.compute(result.item) { report.wrongValues += 1 }
    }
    for n in seen {
        if n == 0 { report.missing += 1 } else { report.distinct += 1 }
        if n > 1 { report.duplicates += n - 1 }
    }
    return report
}

// MARK: The whole pipeline

/// Everything the run measured.
struct PipelineReport: Sendable {
    var producer: ProducerReport
    var perWorker: [Int]
    var stats: StatsReport
    var check: CheckReport
    var elapsed: Duration
}

/// Builds the pipeline, runs it to the end and collects every stage's report.
func runPipeline(_ config: PipelineConfig) async throws -> PipelineReport {
    let clock = ContinuousClock()
    let start = clock.now

    // Stage 3 first, so both subscribers listen before the first result is sent.
    let (results, statsFeed) = Broadcast.channel(of: WorkResult.self, capacity: config.broadcastCapacity)
    let checkerFeed = results.subscribe()
    let stats = spawn {
        await printStats(statsFeed, expected: config.items, workers: config.workers, every: config.reportEvery)
    }
    let checker = spawn { await check(checkerFeed, expected: config.items) }

    // Stages 1 and 2.
    let (items, input) = Mpsc.channel(of: Int.self, capacity: config.queueCapacity)
    let producer = spawn { [items] in await produce(config.items, into: items) }
    let pool = spawn { [results] in
        try await runWorkerPool(input: input, workers: config.workers, baseCost: config.baseCost, results: results)
    }
    // Tokio's `drop(tx)`: keep no sender here, or the channels would never end. The mpsc now ends when
    // the producer task finishes, the broadcast when the last worker does.
    _ = consume items
    _ = consume results

    let producerReport = try await producer.value
    let perWorker = try await pool.value
    let statsReport = try await stats.value
    let checkReport = try await checker.value
    return PipelineReport(
        producer: producerReport, perWorker: perWorker, stats: statsReport, check: checkReport,
        elapsed: clock.now - start)
}

// MARK: Formatting

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    /// The duration in milliseconds with one decimal, e.g. "712.4 ms".
    var millisecondsText: String {
        let tenths = (seconds * 10_000).rounded() / 10
        return "\(tenths) ms"
    }
}

/// `value` right-aligned in `width` columns.
func pad(_ value: some CustomStringConvertible, _ width: Int) -> String {
    let s = value.description
    return s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}
