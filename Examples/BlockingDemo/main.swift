/// blocking-demo: why `spawnBlocking` and `blockInPlace` exist, measured on a real Kyoto runtime.
///
/// A ticker task sleeps 5 ms in a loop and records how late each tick is. Next to it, a request task makes
/// five blocking calls (`usleep` 200 ms each, standing in for a synchronous driver or file call) with a
/// short `await` between them. Each scenario runs on its own multi-thread runtime with ONE worker thread:
///
/// - A: the request task calls the blocking function directly. The worker thread is stuck inside `usleep`,
///   so no other task on it runs: the ticker's worst gap is ~200 ms instead of 5 ms.
/// - B: the same call inside `spawnBlocking { }`, which runs it on the blocking pool (`kyoto-blocking-N`
///   threads) while the task awaits its handle: the worker stays free and the ticker stays on time.
/// - C: the same call inside `blockInPlace { }`: the worker's queues move to a new thread and the call
///   blocks the old one, so again the ticker stays on time (multi-thread runtimes only).
///
/// The table shows the worst and mean tick gap per scenario, how long the requests took (the blocking
/// work is not faster in B or C; it just stops stalling everyone else), the blocking pool's metrics from
/// `runtime.metrics` and the runtime threads each scenario started.
///
/// Run it with:
///
/// ```
/// swift run -c release blocking-demo
/// ```
///
/// It takes about four seconds. The numbers vary from run to run; the shape of the output does not.

import Kyoto

#if canImport(Glibc)
import Glibc
#endif

print("blocking-demo: a 5 ms ticker next to \(Demo.requests) requests that each make a blocking "
    + "\(Demo.blockingCall.wholeMillisecondsText) call")
print("each scenario: a fresh multi-thread runtime with 1 worker thread\n")

var results: [ScenarioResult] = []
for scenario in Scenario.allCases {
    results.append(try runScenario(scenario))
}

let labelWidth = 32
let gapsHeader = padRight("scenario", labelWidth) + pad("ticks", 6) + pad("worst gap", 12) + pad("mean gap", 11)
    + pad("requests took", 15)
print(gapsHeader)
print(String(repeating: "-", count: gapsHeader.count))
for r in results {
    print(
        padRight(r.scenario.label, labelWidth) + pad(r.ticks.ticks, 6) + pad(r.ticks.worstGap.millisecondsText, 12)
            + pad(r.ticks.meanGap.millisecondsText, 11) + pad(r.requestsTime.millisecondsText, 15))
}

print("")
let poolHeader = padRight("blocking pool and threads", labelWidth) + pad("busy (peak)", 13) + pad("threads", 9)
    + pad("idle", 6) + pad("queued", 8) + pad("| started: workers", 19) + pad("pool", 6)
print(poolHeader)
print(String(repeating: "-", count: poolHeader.count))
for r in results {
    let m = r.metrics
    print(
        padRight(r.scenario.label, labelWidth) + pad(r.ticks.peakPoolBusy, 13) + pad(m.blockingThreads, 9)
            + pad(m.idleBlockingThreads, 6) + pad(m.blockingQueueDepth, 8) + pad("|", 2)
            + pad(r.workerThreadsStarted, 17) + pad(r.blockingThreadsStarted, 6))
}

print("""

    ticks: 5 ms ticks the ticker saw; worst/mean gap: time between consecutive ticks (ideal: 5 ms).
    requests took: ~\(Demo.requests) x (\(Demo.blockingCall.wholeMillisecondsText) + \(Demo.betweenRequests.wholeMillisecondsText)) \
    in every scenario: offloading does not make the blocking call faster,
    it stops it stalling the worker.
    busy (peak): most pool threads running a job at once, sampled at each tick. threads/idle/queued:
    runtime.metrics (blockingThreads, idleBlockingThreads, blockingQueueDepth) after the run; an idle pool
    thread stays for blockingKeepAlive (10 s), so B's 5 calls reused one thread.
    started: threads the runtime started (Configuration.onThreadStart). blockInPlace starts a new worker
    thread at each hand-off; the old one finishes the blocking call, then exits.

    """)

let direct = results[0].ticks.worstGap
let worstOffloaded = max(results[1].ticks.worstGap, results[2].ticks.worstGap)
let sameAnswers = Set(results.map(\.checksum)).count == 1
print("worst gap blocking on the worker: \(direct.millisecondsText); "
    + "with spawnBlocking/blockInPlace at most \(worstOffloaded.millisecondsText)")
if !sameAnswers { print("the scenarios computed different answers: \(results.map(\.checksum))") }
if results.contains(where: { !$0.shutDownCleanly }) { print("a runtime did not shut down within its timeout") }
