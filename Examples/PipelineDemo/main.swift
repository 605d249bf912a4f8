/// pipeline-demo: a bounded channel pipeline with backpressure, on a Kyoto runtime.
///
/// ```
/// producer ──► Mpsc(capacity 8) ──► dispatcher ──► 4 workers ──► Broadcast ──► stats printer
///                                                                         └──► checker
/// ```
///
/// - The producer can create items far faster than the workers process them. The bounded mpsc makes it
///   slow down: it tries `trySend` first, and every `.full` means it had to `await send` until the
///   dispatcher freed a slot. The demo counts those waits and the time spent in them.
/// - A Kyoto mpsc receiver has one consumer, so a dispatcher task owns it and hands each item to an idle
///   worker (workers pull work through a "ready" channel and a one-slot inbox each). The workers run at
///   different speeds, so the per-worker counts show the load balancing.
/// - Each result is broadcast to two subscribers: a stats printer and a checker that verifies every item
///   arrived exactly once with the right value. The process exits 1 if the check fails.
///
/// Run it with:
///
/// ```
/// swift run -c release pipeline-demo
/// ```
///
/// It takes about a second. The numbers vary from run to run; the shape of the output does not.

import Kyoto

#if canImport(Glibc)
import Glibc
#endif

let config = PipelineConfig()
let runtime = Runtime.multiThread()

print("pipeline-demo: producer -> mpsc(capacity \(config.queueCapacity)) -> dispatcher -> \(config.workers) workers "
    + "-> broadcast -> 2 subscribers")
print("runtime: multi-thread, \(runtime.workerCount) worker threads; \(config.items) items; "
    + "worker w spends (w+1) x \(config.baseCost.millisecondsText) per item\n")

let report = try runtime.blockOn { try await runPipeline(config) }
runtime.shutdown(timeout: .seconds(5))

let producer = report.producer
let percentWaited = producer.sent > 0 ? (100 * producer.hadToWait + producer.sent / 2) / producer.sent : 0
print("\nproducer")
print("  items sent                        \(pad(producer.sent, 8))")
print("  sends that found the channel full \(pad(producer.hadToWait, 8))  (\(percentWaited)% had to wait)")
print("  time waiting for capacity         \(pad(producer.waited.millisecondsText, 11)) "
    + "of \(producer.elapsed.millisecondsText) producing")
print("  most items ever buffered          \(pad(producer.peakBuffered, 8))  (capacity \(config.queueCapacity))")

print("\nworkers (items processed; cost per item)")
for (id, n) in report.perWorker.enumerated() {
    print("  worker \(id)  \(pad(n, 6))   \((config.baseCost * (id + 1)).millisecondsText)")
}
print("  total     \(pad(report.perWorker.reduce(0, +), 6))")

let check = report.check
print("\nsubscribers")
print("  stats printer: \(report.stats.received) results; by worker \(report.stats.perWorker) "
    + (report.stats.perWorker == report.perWorker ? "(matches the workers' own counts)" : "(DIFFERS from the workers' counts)"))
print("  checker:       \(check.received) results, \(check.distinct) distinct items, \(check.duplicates) duplicates, "
    + "\(check.missing) missing, \(check.wrongValues) wrong values, \(check.lagged) lagged")

let ok = check.exactlyOnce && check.received == config.items && report.stats.received == config.items
    && report.perWorker.reduce(0, +) == config.items && producer.sent == config.items
print("\nevery item arrived exactly once at both subscribers: \(ok ? "yes" : "NO")")
print("elapsed: \(report.elapsed.millisecondsText)")
if !ok { exit(1) }
