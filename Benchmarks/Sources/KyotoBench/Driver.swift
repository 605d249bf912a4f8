// Driver mode: runs every runtime on every workload in a child process of its own (this same binary with
// --mode), then prints every JSON line and the tables.

import Foundation

func runDriver(_ config: RunConfig, suites: Set<Suite>, passThrough: [String], jsonOnly: Bool, rounds: Int = 1) {
    let started = monotonicNanos()
    var perRound: [BenchResult] = []
    var roundsResults: [[BenchResult]] = []
    let collect: (BenchResult) -> Void = { r in
        print(r.jsonLine)
        fflush(nil)
        perRound.append(r)
        roundsResults[roundsResults.count - 1].append(r)
    }
    // Every (runtime, workload) pair runs in a process of its own (this binary with `--mode`), so no runtime
    // measures in a process whose threads, malloc arenas or Dispatch pool another runtime has warmed or left
    // behind; and the runs are interleaved by workload, so the runtimes being compared meet the same stretch
    // of a shared machine's load. The order of the runtimes alternates between workloads and rounds.
    var selected: [(Suite, String)] = []
    for (suite, names) in [
        (Suite.runtime, workloadNames), (.sync, syncWorkloadNames), (.channels, channelWorkloadNames),
        (.mainActor, mainActorWorkloadNames),
    ]
    where suites.contains(suite) {
        for name in names where config.includes(name) { selected.append((suite, name)) }
    }
    for round in 0..<rounds {
        roundsResults.append([])
        for (index, (suite, workload)) in selected.enumerated() {
            var modes: [Mode]
            switch suite {
            case .runtime: modes = [.kyotoPref, .swiftDefault, .kyotoGlobal, .nio]
            case .sync, .channels: modes = [.kyotoPref, .swiftDefault]
            case .mainActor: modes = [.kyotoMain, .defaultMain]
            }
            if (round + index) % 2 == 1 { modes.reverse() }
            for mode in modes {
                for r in runChild(mode, passThrough + ["--suite", suite.rawValue, "--only", workload]) { collect(r) }
            }
        }
    }
    let results = medianOverRounds(perRound)
    if rounds > 1 && !jsonOnly {
        print("")
        print("median over \(rounds) rounds:")
        for r in results { print(r.jsonLine) }
    }

    let seconds = Double(monotonicNanos() - started) / 1e9
    if !jsonOnly {
        if results.contains(where: { $0.impl == nil && workloadNames.contains($0.workload) }) {
            print("")
            print(markdownTable(results, config: config))
            print("")
            print(kyotoCountersTable(results))
            if rounds > 1 {
                print("")
                print(pairedRatioTable(roundsResults, config: config))
            }
        }
        for suite in [Suite.sync, .channels] {
            if let table = syncChannelTable(results, suite: suite, config: config) {
                print("")
                print(table)
            }
        }
        if let table = mainActorTable(results, config: config) {
            print("")
            print(table)
        }
        if let table = acceptanceTable(results) {
            print("")
            print(table)
        }
        print("")
        print("total wall time: \(fixed(seconds, 1)) s")
    }
}

/// Runs `kyoto-bench --mode <mode>` and returns the results it printed. Fails the run if the child fails.
func runChild(_ mode: Mode, _ passThrough: [String]) -> [BenchResult] {
    let process = Process()
    let out = Pipe()
    startChild(process, mode, passThrough, stdin: nil, stdout: out)
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    verify(
        process.terminationReason == .exit && process.terminationStatus == 0,
        "child --mode \(mode.rawValue) failed (status \(process.terminationStatus))")
    let text = String(decoding: data, as: UTF8.self)
    var results: [BenchResult] = []
    for line in text.split(separator: "\n") where line.hasPrefix("{") {
        do {
            results.append(try JSONDecoder().decode(BenchResult.self, from: Data(line.utf8)))
        } catch {
            verify(false, "child --mode \(mode.rawValue) printed an unreadable line: \(line)")
        }
    }
    return results
}

/// Starts this binary as `kyoto-bench --mode <mode> <arguments>` in `process`, its stderr shared with ours.
/// Fails the run if it cannot start.
func startChild(_ process: Process, _ mode: Mode, _ arguments: [String], stdin: Pipe?, stdout: Pipe) {
    process.executableURL = URL(fileURLWithPath: selfExecutablePath())
    process.arguments = ["--mode", mode.rawValue] + arguments
    if let stdin { process.standardInput = stdin }
    process.standardOutput = stdout
    process.standardError = FileHandle.standardError
    do {
        try process.run()
    } catch {
        verify(false, "could not start child for mode \(mode.rawValue): \(error)")
    }
}

func selfExecutablePath() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if n > 0 { return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    return CommandLine.arguments[0]
}

/// The runtime-suite result of `runtime` on `workload` among `results`.
func runtimeResult(_ results: [BenchResult], _ runtime: Mode, _ workload: String) -> BenchResult? {
    results.first { $0.runtime == runtime.rawValue && $0.workload == workload && $0.impl == nil }
}

func markdownTable(_ results: [BenchResult], config: RunConfig) -> String {
    func find(_ runtime: Mode, _ workload: String) -> BenchResult? { runtimeResult(results, runtime, workload) }
    func cell(_ r: BenchResult?) -> String {
        guard let r else { return "n/a" }
        return "\(formatNanos(r.ns_per_op)) (\(fixed(r.allocs_per_op, 2)) allocs)"
    }
    func ratio(_ a: BenchResult?, _ b: BenchResult?) -> String {
        guard let a, let b, b.ns_per_op > 0 else { return "n/a" }
        return "\(fixed(a.ns_per_op / b.ns_per_op, 2))×"
    }
    var lines = [
        "Median time per op (allocations per op), \(config.iterations) timed iterations after \(config.warmups) warm-up(s), 2 workers.",
        "Ratios > 1 mean Kyoto is faster than Swift's default executor.",
        "",
        "| workload | kyoto (pref) | kyoto (global) | default | nio | ratio default/kyoto-pref | ratio default/kyoto-global |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w in workloadNames where config.includes(w) {
        let pref = find(.kyotoPref, w), global = find(.kyotoGlobal, w)
        let def = find(.swiftDefault, w), nio = find(.nio, w)
        lines.append(
            "| \(w) | \(cell(pref)) | \(cell(global)) | \(cell(def)) | \(cell(nio)) | \(ratio(def, pref)) | \(ratio(def, global)) |"
        )
    }
    return lines.joined(separator: "\n")
}

func kyotoCountersTable(_ results: [BenchResult]) -> String {
    var lines = [
        "Kyoto scheduler counters per timed iteration (metrics deltas, summed over workers):",
        "",
        "| workload | pref parks | pref steals | global parks | global steals |",
        "|---|---:|---:|---:|---:|",
    ]
    for w in workloadNames {
        let pref = runtimeResult(results, .kyotoPref, w)
        let global = runtimeResult(results, .kyotoGlobal, w)
        if pref == nil && global == nil { continue }
        func f(_ x: Double?) -> String { x.map { fixed($0, 1) } ?? "n/a" }
        lines.append("| \(w) | \(f(pref?.parks)) | \(f(pref?.steals)) | \(f(global?.parks)) | \(f(global?.steals)) |")
    }
    return lines.joined(separator: "\n")
}

/// The runtime-core acceptance targets (default/Kyoto ratios) of the runtime workloads.
let runtimeTargets: [String: String] = [
    "spawn_many_local": "≥ 2×", "ping_pong": "≥ 2×", "yield_many": "≥ 2×",
    "chained_spawn": "> 1×", "spawn_many_remote_idle": "> 1×",
    "actor_ping_pong": "global ≥ 0.83× (within 1.2×)",
]

/// Same-round ratios for the runtime workloads: in each round a workload's runtimes run back to back, so the
/// ratio of two of them taken within one round shares that stretch of the machine's load, which a ratio of
/// medians taken over different rounds does not. Shows the median and the range of the per-round ratios next
/// to the runtime-core targets.
func pairedRatioTable(_ rounds: [[BenchResult]], config: RunConfig) -> String {
    func ratios(_ workload: String, _ mode: Mode) -> [Double] {
        rounds.compactMap { round -> Double? in
            guard let def = runtimeResult(round, .swiftDefault, workload), let kyoto = runtimeResult(round, mode, workload),
                kyoto.ns_per_op > 0
            else { return nil }
            return def.ns_per_op / kyoto.ns_per_op
        }.sorted()
    }
    func describe(_ r: [Double]) -> String {
        guard let lo = r.first, let hi = r.last else { return "n/a" }
        return "\(fixed(medianOfSorted(r), 2))× (\(fixed(lo, 2))–\(fixed(hi, 2)))"
    }
    var lines = [
        "Same-round ratios default/Kyoto over \(rounds.count) rounds: median (lowest–highest round).",
        "",
        "| workload | default/kyoto-pref | default/kyoto-global | target |",
        "|---|---:|---:|---|",
    ]
    for w in workloadNames where config.includes(w) {
        lines.append(
            "| \(w) | \(describe(ratios(w, .kyotoPref))) | \(describe(ratios(w, .kyotoGlobal))) | \(runtimeTargets[w] ?? "-") |")
    }
    return lines.joined(separator: "\n")
}

/// Combines the results of several rounds: per (runtime, workload, implementation), the median of the
/// rounds' medians, the extreme iterations, and the mean allocation and scheduler counts.
func medianOverRounds(_ results: [BenchResult]) -> [BenchResult] {
    var order: [String] = []
    var groups: [String: [BenchResult]] = [:]
    for r in results {
        let key = "\(r.runtime)|\(r.workload)|\(r.impl ?? "")"
        if groups[key] == nil { order.append(key) }
        groups[key, default: []].append(r)
    }
    return order.map { key in
        let group = groups[key]!
        var combined = group[0]
        combined.ns_per_op = medianOfSorted(group.map(\.ns_per_op).sorted())
        combined.min_ns_per_op = group.map(\.min_ns_per_op).min()!
        combined.max_ns_per_op = group.map(\.max_ns_per_op).max()!
        combined.iters = group.map(\.iters).reduce(0, +)
        combined.allocs_per_op = group.map(\.allocs_per_op).reduce(0, +) / Double(group.count)
        if group.allSatisfy({ $0.parks != nil }) {
            combined.parks = group.compactMap(\.parks).reduce(0, +) / Double(group.count)
        }
        if group.allSatisfy({ $0.steals != nil }) {
            combined.steals = group.compactMap(\.steals).reduce(0, +) / Double(group.count)
        }
        return combined
    }
}
