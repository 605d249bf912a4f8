// kyoto-bench: Kyoto's runtime benchmarks (shared/WORKLOADS.md), against Swift's default executor and
// SwiftNIO, in one run.
//
//   kyoto-bench                 driver: every mode, then the combined table (the global-executor modes run
//                               in child processes of this same binary, since the hook is process-global)
//   kyoto-bench --mode M        one mode only: kyoto-pref | swift-default | kyoto-global | nio (runtime, sync and
//                               channel suites) or kyoto-main | default-main (the main-actor suite)
//   --quick                     1 warm-up, 3 timed iterations (smoke run)
//   --iters N / --warmups N     override the iteration counts (defaults: 2 warm-ups, 15 timed)
//   --only a,b                  only these workloads
//   --suite runtime|sync|channels|main-actor|all   which suites (default all; comma-separated list allowed).
//                               The sync and channel suites run on Kyoto (preference mode) and on Swift's
//                               default executor; the global-executor modes run the runtime suite only; the
//                               main-actor suite runs under runMain and under Swift's default main queue
//   --impl a,b                  sync/channel suites: only these implementations (kyoto, actor-lock,
//                               actor-semaphore, sync-mutex, async-channel, async-stream, continuation)
//   --kyoto-on-default          diagnostic: also run Kyoto's sync/channel primitives on Swift's default executor
//   --json                      (driver) print only the JSON lines, no table
//   --rounds N                  (driver) repeat the whole run N times (each runtime and workload in its own
//                               process, order alternating) and report the median over rounds (default 1)
//   --paired                    (driver) runtime suite only: one child per runtime and workload, all alive at
//                               once, taking turns one iteration each; reports per-iteration ratios (Paired.swift)
//   --serve                     (with --mode) the child side of --paired: one iteration per workload name read
//                               from stdin

import Foundation

@main
struct KyotoBench {
    static func main() {
        var config = RunConfig()
        var mode: Mode? = nil
        var jsonOnly = false
        var rounds = 1
        var paired = false
        var serve = false
        var suites = Set(Suite.allCases)
        var passThrough: [String] = []
        var args = CommandLine.arguments.dropFirst()
        func value(_ flag: String) -> String {
            guard let v = args.popFirst() else { usage("\(flag) needs a value") }
            return v
        }
        while let arg = args.popFirst() {
            switch arg {
            case "--mode":
                let v = value(arg)
                if v == "all" { mode = nil; continue }
                guard let m = Mode(rawValue: v) else { usage("unknown mode \(v)") }
                mode = m
            case "--quick":
                config.warmups = 1
                config.iterations = 3
                passThrough.append(arg)
            case "--iters":
                let v = value(arg)
                guard let n = Int(v), n >= 1 else { usage("bad --iters") }
                config.iterations = n
                passThrough += [arg, v]
            case "--warmups":
                let v = value(arg)
                guard let n = Int(v), n >= 0 else { usage("bad --warmups") }
                config.warmups = n
                passThrough += [arg, v]
            case "--only":
                let v = value(arg)
                let names = Set(v.split(separator: ",").map(String.init))
                for n in names where !allWorkloadNames.contains(n) { usage("unknown workload \(n)") }
                config.only = names
                passThrough += [arg, v]
            case "--suite":
                let v = value(arg)
                if v == "all" {
                    suites = Set(Suite.allCases)
                } else {
                    suites = []
                    for part in v.split(separator: ",") {
                        guard let s = Suite(rawValue: String(part)) else { usage("unknown suite \(part)") }
                        suites.insert(s)
                    }
                }
                passThrough += [arg, v]
            case "--impl":
                let v = value(arg)
                config.impls = Set(v.split(separator: ",").map(String.init))
                passThrough += [arg, v]
            case "--kyoto-on-default":
                config.kyotoOnDefault = true
                passThrough.append(arg)
            case "--json":
                jsonOnly = true
            case "--rounds":
                let v = value(arg)
                guard let n = Int(v), n >= 1 else { usage("bad --rounds") }
                rounds = n
            case "--paired":
                paired = true
            case "--serve":
                serve = true
            case "-h", "--help":
                usage(nil)
            default:
                usage("unknown argument \(arg)")
            }
        }

        allocCounterSelfCheck()
        let emit: (BenchResult) -> Void = { r in
            print(r.jsonLine)
            fflush(nil)
        }
        if serve && (mode == nil || mode == .kyotoMain || mode == .defaultMain) {
            usage("--serve needs --mode kyoto-pref, swift-default, kyoto-global or nio")
        }
        if paired && mode != nil { usage("--paired is a driver option (no --mode)") }
        switch mode {
        case .kyotoPref?: runKyotoPref(config, suites: suites, serve: serve, emit)
        case .swiftDefault?: runSwiftDefault(config, suites: suites, serve: serve, emit)
        case .kyotoGlobal?: runKyotoGlobal(config, suites: suites, serve: serve, emit)
        case .nio?: runNIO(config, suites: suites, serve: serve, emit)
        case .kyotoMain?: runKyotoMain(config, emit)
        case .defaultMain?: runDefaultMain(config)
        case nil where paired: runPairedDriver(config, jsonOnly: jsonOnly)
        case nil: runDriver(config, suites: suites, passThrough: passThrough, jsonOnly: jsonOnly, rounds: rounds)
        }
    }

    static func usage(_ error: String?) -> Never {
        if let error { FileHandle.standardError.write("kyoto-bench: \(error)\n".data(using: .utf8)!) }
        print(
            """
            usage: kyoto-bench [--mode all|kyoto-pref|swift-default|kyoto-global|nio|kyoto-main|default-main] [--quick]
                               [--iters N] [--warmups N] [--only w1,w2] [--suite runtime|sync|channels|main-actor|all] [--impl i1,i2] [--kyoto-on-default] [--json] [--rounds N] [--paired]
            runtime workloads: \(workloadNames.joined(separator: ", "))
            sync workloads: \(syncWorkloadNames.joined(separator: ", "))
            channel workloads: \(channelWorkloadNames.joined(separator: ", "))
            main-actor workloads: \(mainActorWorkloadNames.joined(separator: ", "))
            """)
        exit(error == nil ? 0 : 2)
    }
}
