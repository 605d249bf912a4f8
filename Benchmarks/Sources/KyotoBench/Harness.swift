// Measurement: a stopwatch that also reads the allocation counter, the iteration loop, and the result record.

import CAllocCounter
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in nanoseconds.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// What one timed iteration measured.
struct Sample: Sendable {
    var nanos: UInt64
    var allocs: UInt64
}

/// Starts timing (and allocation counting) at init; `stop()` ends it. Put exactly the workload between the two.
struct Stopwatch: Sendable {
    private let allocs0: UInt64
    private let start: UInt64

    init() {
        allocs0 = bench_alloc_count()
        start = monotonicNanos()
    }

    func stop() -> Sample {
        let end = monotonicNanos()
        let allocs1 = bench_alloc_count()
        return Sample(nanos: end &- start, allocs: allocs1 &- allocs0)
    }
}

/// Fails the whole run, loudly, when a workload computed the wrong thing.
func verify(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        let text = "kyoto-bench: VERIFICATION FAILED: \(message())\n"
        FileHandle.standardError.write(text.data(using: .utf8)!)
        exit(1)
    }
}

/// How many iterations to run.
struct RunConfig: Sendable {
    var warmups = 2
    var iterations = 15
    /// Only these workloads (nil: all).
    var only: Set<String>? = nil
    /// Sync/channel suites: only these implementations (`--impl kyoto,actor-lock`; nil: all).
    var impls: Set<String>? = nil
    /// Diagnostic (`--kyoto-on-default`): also run Kyoto's sync/channel primitives on Swift's default executor
    /// (tasks without an executor preference).
    var kyotoOnDefault = false

    func includes(_ workload: String) -> Bool { only?.contains(workload) ?? true }
}

/// Kyoto scheduler counters, summed over workers.
struct SchedulerCounters: Sendable {
    var parks: UInt64
    var steals: UInt64
}

/// One (runtime, workload) result: the WORKLOADS.md fields plus extras.
struct BenchResult: Codable, Sendable {
    var runtime: String
    var workload: String
    var ns_per_op: Double
    var ops: Int
    var iters: Int
    var workers: Int
    var allocs_per_op: Double
    var min_ns_per_op: Double
    var max_ns_per_op: Double
    /// Kyoto only: worker parks per timed iteration (metrics delta / iterations).
    var parks: Double?
    /// Kyoto only: jobs stolen per timed iteration.
    var steals: Double?
    /// Sync/channel workloads only: which implementation ran (`kyoto` for Kyoto's own primitive, otherwise
    /// the Swift substitute, e.g. `actor-lock`, `async-channel`); `runtime` names the executor it ran on.
    var impl: String? = nil

    /// One JSON line, fields in WORKLOADS.md order first.
    var jsonLine: String {
        var s = "{\"runtime\":\"\(runtime)\",\"workload\":\"\(workload)\""
        s += ",\"ns_per_op\":\(fixed(ns_per_op, 1)),\"ops\":\(ops),\"iters\":\(iters),\"workers\":\(workers)"
        s += ",\"allocs_per_op\":\(fixed(allocs_per_op, 3))"
        s += ",\"min_ns_per_op\":\(fixed(min_ns_per_op, 1)),\"max_ns_per_op\":\(fixed(max_ns_per_op, 1))"
        if let parks { s += ",\"parks\":\(fixed(parks, 1))" }
        if let steals { s += ",\"steals\":\(fixed(steals, 1))" }
        if let impl { s += ",\"impl\":\"\(impl)\"" }
        return s + "}"
    }
}

func fixed(_ x: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", x)
}

/// Runs `iteration` `warmups` times untimed, then `iterations` times, and reduces the samples: median
/// ns/op, allocations per op over all timed iterations, and (when `counters` is given) scheduler
/// counter deltas per iteration.
func measure(
    runtime: String, workload: String, ops: Int, workers: Int, config: RunConfig,
    counters: (() -> SchedulerCounters)? = nil, impl: String? = nil,
    _ iteration: () -> Sample
) -> BenchResult {
    for _ in 0..<config.warmups { _ = iteration() }
    let before = counters?()
    var samples: [Sample] = []
    samples.reserveCapacity(config.iterations)
    for _ in 0..<config.iterations { samples.append(iteration()) }
    let after = counters?()
    var result = summarize(runtime: runtime, workload: workload, ops: ops, workers: workers, samples: samples, impl: impl)
    if let before, let after {
        let n = Double(samples.count)
        result.parks = Double(after.parks &- before.parks) / n
        result.steals = Double(after.steals &- before.steals) / n
    }
    return result
}

/// Reduces timed samples: median ns/op, its range, and allocations per op over all of them.
func summarize(
    runtime: String, workload: String, ops: Int, workers: Int, samples: [Sample], impl: String? = nil
) -> BenchResult {
    let perOp = samples.map { Double($0.nanos) / Double(ops) }.sorted()
    let n = perOp.count
    let allocs = samples.reduce(0) { $0 + $1.allocs }
    return BenchResult(
        runtime: runtime, workload: workload, ns_per_op: medianOfSorted(perOp), ops: ops, iters: n,
        workers: workers, allocs_per_op: Double(allocs) / Double(ops * n), min_ns_per_op: perOp.first!,
        max_ns_per_op: perOp.last!, parks: nil, steals: nil, impl: impl)
}

/// Checks that the interposed allocator really sees Swift's allocations: a fresh Array buffer must count.
func allocCounterSelfCheck() {
    _ = makeArray(count: 1_000)  // first use instantiates metadata; measure the second
    let before = bench_alloc_count()
    let array = makeArray(count: 1_000)
    let after = bench_alloc_count()
    verify(array.count == 1_000, "array size")
    let counted = after &- before
    verify(
        counted >= 1,
        "allocation counter saw \(counted) allocations for a 1000-element Array: malloc interposition is not working")
    let frees0 = bench_free_count()
    bench_alloc_probe()
    verify(bench_free_count() &- frees0 == 1, "free counter did not count the probe")
    FileHandle.standardError.write(
        "kyoto-bench: allocation counter OK (\(counted) malloc call(s) for one [Int] of 1000 elements)\n".data(
            using: .utf8)!)
}

@inline(never)
func makeArray(count: Int) -> [Int] {
    [Int](repeating: 7, count: count)
}

/// The median of a non-empty, ascending array (the mean of the two middle values for an even count).
func medianOfSorted(_ values: [Double]) -> Double {
    let n = values.count
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2
}
