// The MainActor suite: `@MainActor` code under `Runtime.runMain` (the main thread runs Kyoto's MainActor loop,
// the workers run everything else) against Swift's default setup (a synchronous main parked in
// `dispatchMain()`: MainActor jobs go through Dispatch's main queue, everything else to its pool). Programs
// built with MainActor as their default isolation spend their time in exactly these hops.
//
// Each mode runs in a process of its own (both take over the process's main thread and main executor).

import Dispatch
import Foundation
import KyotoExecutor

/// MainActor-isolated state that the `main_actor_calls` workload hops onto.
@MainActor
final class MainActorCounter {
    private(set) var calls = 0

    func hit() -> Int {
        calls += 1
        return calls
    }
}

/// A nonisolated async step: awaited from the MainActor, it runs off the main actor (the opaque call keeps
/// the optimizer from dropping the hop) and the caller hops back.
@inline(never)
nonisolated func offloadedStep(_ x: Int) async -> Int {
    opaqueIdentity(x) &+ 1
}

@inline(never)
nonisolated func opaqueIdentity(_ x: Int) -> Int { x }

enum MainActorWorkloads {
    /// main_actor_calls: a task off the main actor calls a `@MainActor` method `Size.mainActorCalls` (10,000) times
    /// (each call hops onto the main actor and back). op = one call.
    @MainActor
    static func calls(_ counter: MainActorCounter) async -> Sample {
        let n = Size.mainActorCalls
        let start = counter.calls
        let (sample, last) = await Task.detached { () async -> (Sample, Int) in
            let clock = Stopwatch()
            var last = 0
            for _ in 0..<n { last = await counter.hit() }
            return (clock.stop(), last)
        }.value
        verify(last == start + n, "main_actor_calls: \(last - start) of \(n) calls")
        return sample
    }

    /// main_actor_offload: MainActor code awaits a nonisolated async function `Size.mainActorCalls` (10,000) times
    /// (each call hops off the main actor and back). op = one call.
    @MainActor
    static func offload() async -> Sample {
        let n = Size.mainActorCalls
        let clock = Stopwatch()
        var x = 0
        for _ in 0..<n { x = await offloadedStep(x) }
        let sample = clock.stop()
        verify(x == n, "main_actor_offload: \(x) of \(n) calls")
        return sample
    }
}

/// Runs the MainActor suite's workloads (on the MainActor, in whichever setup this process made).
@MainActor
func runMainActorCases(_ mode: Mode, _ config: RunConfig) async -> [BenchResult] {
    let counter = MainActorCounter()
    let cases: [(String, Int, @MainActor () async -> Sample)] = [
        ("main_actor_calls", Size.mainActorCalls, { await MainActorWorkloads.calls(counter) }),
        ("main_actor_offload", Size.mainActorCalls, { await MainActorWorkloads.offload() }),
    ]
    var results: [BenchResult] = []
    for (name, ops, body) in cases where config.includes(name) {
        var samples: [Sample] = []
        for _ in 0..<config.warmups { _ = await body() }
        for _ in 0..<config.iterations { samples.append(await body()) }
        results.append(
            summarize(runtime: mode.rawValue, workload: name, ops: ops, workers: benchWorkers, samples: samples))
    }
    return results
}

/// Kyoto's `runMain`: the main thread is the MainActor's executor, 2 workers run the rest.
func runKyotoMain(_ config: RunConfig, _ emit: (BenchResult) -> Void) {
    let runtime = Runtime.multiThread(workers: benchWorkers)
    let results = runtime.runMain { await runMainActorCases(.kyotoMain, config) }
    results.forEach(emit)
}

/// Swift's default: a synchronous main parked in `dispatchMain()`; the workloads run in a MainActor task.
func runDefaultMain(_ config: RunConfig) -> Never {
    Task { @MainActor in
        for r in await runMainActorCases(.defaultMain, config) { print(r.jsonLine) }
        fflush(nil)
        exit(0)
    }
    dispatchMain()
}

/// The MainActor suite's table: runMain against Swift's default, same-run medians.
func mainActorTable(_ results: [BenchResult], config: RunConfig) -> String? {
    let rows = mainActorWorkloadNames.filter { config.includes($0) }.compactMap { w -> String? in
        let kyoto = results.first { $0.runtime == Mode.kyotoMain.rawValue && $0.workload == w }
        let def = results.first { $0.runtime == Mode.defaultMain.rawValue && $0.workload == w }
        guard let kyoto, let def, kyoto.ns_per_op > 0 else { return nil }
        return "| \(w) | \(formatNanos(kyoto.ns_per_op)) | \(formatNanos(def.ns_per_op)) | \(fixed(def.ns_per_op / kyoto.ns_per_op, 2))× |"
    }
    if rows.isEmpty { return nil }
    return ([
        "MainActor suite: Kyoto's runMain (MainActor on the main thread) against Swift's default (dispatchMain).",
        "",
        "| workload | kyoto runMain | default | ratio default/kyoto |",
        "|---|---:|---:|---:|",
    ] + rows).joined(separator: "\n")
}

let mainActorWorkloadNames = ["main_actor_calls", "main_actor_offload"]
