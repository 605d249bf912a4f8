// Paired mode (`--paired`): the runtimes take turns, one iteration each.
//
// On a shared VM the machine's speed drifts by up to 2× over seconds, so two runtimes measured one after
// the other (even in the same round) can meet different machines, and a ratio of their medians mixes that
// drift in. In paired mode the driver starts one child per runtime for a workload, all alive at once and
// each in a process of its own as before (`--mode M --serve`), and asks them for one iteration at a time in
// turn (the order rotates every turn, and its direction flips after each full rotation). Iteration i of
// every runtime then runs within a few milliseconds of the others, and the ratio default/Kyoto of
// iteration i compares the two on the same stretch of machine. The table reports the median of those
// per-iteration ratios and its quartiles.
//
// Protocol: the driver writes a workload name and a newline on the child's stdin; the child runs one
// untimed iteration, then the timed one, and answers one line, `nanos allocs parks steals` (the Kyoto
// counters' deltas over the timed iteration, 0 elsewhere). End of input ends the child. A child waits in a
// blocking read between its turns, so its workers are parked (or Dispatch's / NIO's threads idle) while the
// others measure; the untimed iteration wakes them and warms the caches again, so the timed one starts as
// it would in a run of back-to-back iterations (without it, every timed iteration began with parked
// threads: Kyoto's parks per `ping_pong` iteration went from about 5 to 33).

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The child's side: answers one iteration per request line until end of input.
func serveRuntimeSuite(_ mode: Mode, _ cases: [RuntimeCase], counters: (() -> SchedulerCounters)?) {
    while let line = readLine() {
        guard let c = cases.first(where: { $0.name == line }) else {
            verify(false, "\(mode.rawValue) --serve: unknown workload \(line)")
            return
        }
        _ = c.body()
        let before = counters?()
        let sample = c.body()
        let after = counters?()
        let parks = (after?.parks ?? 0) &- (before?.parks ?? 0)
        let steals = (after?.steals ?? 0) &- (before?.steals ?? 0)
        print("\(sample.nanos) \(sample.allocs) \(parks) \(steals)")
        fflush(nil)
    }
}

/// A child process in serve mode, driven one iteration at a time.
private final class ServingChild {
    let mode: Mode
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer: [UInt8] = []

    init(_ mode: Mode) {
        self.mode = mode
        startChild(process, mode, ["--serve"], stdin: input, stdout: output)
    }

    /// Runs one iteration of `workload` in the child and returns its sample and counter deltas.
    func iterate(_ workload: String) -> (sample: Sample, parks: UInt64, steals: UInt64) {
        do {
            try input.fileHandleForWriting.write(contentsOf: Data((workload + "\n").utf8))
        } catch {
            verify(false, "child --mode \(mode.rawValue) stopped reading its requests: \(error)")
        }
        let line = readLine()
        let fields = line.split(separator: " ").compactMap { UInt64($0) }
        verify(fields.count == 4, "child --mode \(mode.rawValue) answered \"\(line)\"")
        return (Sample(nanos: fields[0], allocs: fields[1]), fields[2], fields[3])
    }

    /// Ends the child (end of its input) and checks that it exited cleanly.
    func finish() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        verify(
            process.terminationReason == .exit && process.terminationStatus == 0,
            "child --mode \(mode.rawValue) failed (status \(process.terminationStatus))")
    }

    private func readLine() -> String {
        let fd = output.fileHandleForReading.fileDescriptor
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 256)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            verify(n > 0, "child --mode \(mode.rawValue) ended without answering")
            buffer += chunk[..<n]
        }
    }
}

/// One workload measured in paired mode: each runtime's samples, in iteration order.
struct PairedWorkload {
    var workload: String
    var ops: Int
    var samples: [Mode: [Sample]] = [:]
    var parks: [Mode: UInt64] = [:]
    var steals: [Mode: UInt64] = [:]

    /// The per-iteration ratios default/`mode`, ascending.
    func ratios(_ mode: Mode) -> [Double] {
        guard let def = samples[.swiftDefault], let other = samples[mode] else { return [] }
        return zip(def, other).compactMap { d, k in k.nanos > 0 ? Double(d.nanos) / Double(k.nanos) : nil }.sorted()
    }

    func result(_ mode: Mode) -> BenchResult? {
        guard let s = samples[mode], !s.isEmpty else { return nil }
        var r = summarize(runtime: mode.rawValue, workload: workload, ops: ops, workers: benchWorkers, samples: s)
        if mode == .kyotoPref || mode == .kyotoGlobal {
            r.parks = Double(parks[mode] ?? 0) / Double(s.count)
            r.steals = Double(steals[mode] ?? 0) / Double(s.count)
        }
        return r
    }
}

/// The driver's side: every selected runtime workload, its runtimes taking turns.
func runPairedDriver(_ config: RunConfig, jsonOnly: Bool) {
    // A child that died makes the next request a write to a closed pipe: report it (below) instead of
    // being killed by SIGPIPE.
    signal(SIGPIPE, SIG_IGN)
    let started = monotonicNanos()
    let modes: [Mode] = [.kyotoPref, .swiftDefault, .kyotoGlobal, .nio]
    let ops = Dictionary(uniqueKeysWithValues: plainCases.map { ($0.name, $0.ops) })
    var measured: [PairedWorkload] = []
    for workload in workloadNames where config.includes(workload) {
        let children = modes.map { ServingChild($0) }
        for _ in 0..<config.warmups {
            for child in children { _ = child.iterate(workload) }
        }
        var pw = PairedWorkload(workload: workload, ops: ops[workload]!)
        for i in 0..<config.iterations {
            // Rotate who goes first, and alternate the direction, so no runtime always follows the same one.
            var order = Array(children[(i % children.count)...] + children[..<(i % children.count)])
            if (i / children.count) % 2 == 1 { order.reverse() }
            for child in order {
                let (sample, parks, steals) = child.iterate(workload)
                pw.samples[child.mode, default: []].append(sample)
                pw.parks[child.mode, default: 0] += parks
                pw.steals[child.mode, default: 0] += steals
            }
        }
        for child in children { child.finish() }
        for mode in modes {
            if let r = pw.result(mode) {
                print(r.jsonLine)
                fflush(nil)
            }
        }
        measured.append(pw)
    }
    if jsonOnly { return }
    let results = measured.flatMap { pw in modes.compactMap { pw.result($0) } }
    print("")
    print(markdownTable(results, config: config))
    print("")
    print(kyotoCountersTable(results))
    print("")
    print(pairedIterationTable(measured, config: config))
    print("")
    print("total wall time: \(fixed(Double(monotonicNanos() - started) / 1e9, 1)) s")
}

/// Per-iteration ratios default/Kyoto: median and quartiles, next to the runtime-core targets.
private func pairedIterationTable(_ measured: [PairedWorkload], config: RunConfig) -> String {
    func describe(_ r: [Double]) -> String {
        guard !r.isEmpty else { return "n/a" }
        let q1 = r[r.count / 4], q3 = r[min(r.count - 1, (3 * r.count) / 4)]
        return "\(fixed(medianOfSorted(r), 2))× (\(fixed(q1, 2))–\(fixed(q3, 2)))"
    }
    var lines = [
        "Paired ratios default/Kyoto over \(config.iterations) turns (each runtime one iteration per turn, in its own"
            + " process): median (quartiles).",
        "",
        "| workload | default/kyoto-pref | default/kyoto-global | default/nio | target |",
        "|---|---:|---:|---:|---|",
    ]
    for pw in measured {
        lines.append(
            "| \(pw.workload) | \(describe(pw.ratios(.kyotoPref))) | \(describe(pw.ratios(.kyotoGlobal)))"
                + " | \(describe(pw.ratios(.nio))) | \(runtimeTargets[pw.workload] ?? "-") |")
    }
    return lines.joined(separator: "\n")
}
