// One function per runtime under test. Each runs every selected workload and returns the results.

import Glibc
import KyotoExecutor
import NIOCore
import NIOPosix

/// The runtimes (modes) kyoto-bench knows. Modes marked `ownProcess` install a process-global hook and so
/// run in a child process of the driver.
enum Mode: String, CaseIterable {
    case kyotoPref = "kyoto-pref"
    case kyotoGlobal = "kyoto-global"
    case swiftDefault = "swift-default"
    case nio = "nio"
    /// The MainActor suite: Kyoto's `runMain`, and Swift's default with the main thread in `dispatchMain()`.
    case kyotoMain = "kyoto-main"
    case defaultMain = "default-main"

    var ownProcess: Bool { self != .kyotoPref && self != .swiftDefault }
}

/// Worker threads of the Kyoto runtimes and of NIO's group: 2, or `KYOTO_BENCH_WORKERS` (a diagnostic, for
/// comparing one worker with two; Swift's default executor always uses one thread per core).
let benchWorkers = getenv("KYOTO_BENCH_WORKERS").flatMap { Int(String(cString: $0)) } ?? 2

/// One runtime-suite workload as a mode runs it: its name, operations per iteration, and one iteration.
typealias RuntimeCase = (name: String, ops: Int, body: @Sendable () -> Sample)

/// The runtime suite on Kyoto in preference mode (work entered with blockOn/spawn).
func kyotoPrefCases(_ runtime: Runtime) -> [RuntimeCase] {
    [
        ("spawn_many_local", Size.spawnManyLocal, { KyotoWorkloads.spawnManyLocal(runtime) }),
        ("spawn_many_remote_idle", Size.spawnManyRemoteIdle, { KyotoWorkloads.spawnManyRemoteIdle(runtime) }),
        ("yield_many", Size.yieldTasks * Size.yieldsPerTask, { KyotoWorkloads.yieldMany(runtime) }),
        ("ping_pong", Size.pingPongRounds, { KyotoWorkloads.pingPong(runtime) }),
        ("chained_spawn", Size.chainDepth, { KyotoWorkloads.chainedSpawn(runtime) }),
        ("actor_ping_pong", Size.actorCalls, { KyotoWorkloads.actorPingPong(runtime) }),
    ]
}

/// The runtime suite in plain Swift Concurrency, on whatever is the global executor.
let plainCases: [RuntimeCase] = [
    ("spawn_many_local", Size.spawnManyLocal, PlainWorkloads.spawnManyLocal),
    ("spawn_many_remote_idle", Size.spawnManyRemoteIdle, PlainWorkloads.spawnManyRemoteIdle),
    ("yield_many", Size.yieldTasks * Size.yieldsPerTask, PlainWorkloads.yieldMany),
    ("ping_pong", Size.pingPongRounds, PlainWorkloads.pingPong),
    ("chained_spawn", Size.chainDepth, PlainWorkloads.chainedSpawn),
    ("actor_ping_pong", Size.actorCalls, PlainWorkloads.actorPingPong),
]

/// Kyoto in preference mode: `Runtime.multiThread(workers: 2)`, work entered with blockOn/spawn.
/// Runs the runtime suite, then Kyoto's sync/channel primitives and the Swift substitutes, on that runtime;
/// or, with `serve`, answers the paired driver's requests (`serveRuntimeSuite`).
func runKyotoPref(_ config: RunConfig, suites: Set<Suite>, serve: Bool, _ emit: (BenchResult) -> Void) {
    let runtime = Runtime.multiThread(workers: benchWorkers)
    let counters = { kyotoCounters(runtime) }
    if serve {
        serveRuntimeSuite(.kyotoPref, kyotoPrefCases(runtime), counters: counters)
    } else {
        runCases(.kyotoPref, kyotoPrefCases(runtime), suites.contains(.runtime) ? config : nil, counters: counters, emit)
        runSyncChannels(.kyoto(runtime), suites: suites, config, counters: counters, emit)
    }
    verify(runtime.shutdown(timeout: .seconds(5)), "kyoto-pref: runtime did not shut down within 5 s")
}

/// Measures each selected case (`config` nil: none) and emits its result.
func runCases(
    _ mode: Mode, _ cases: [RuntimeCase], _ config: RunConfig?, counters: (() -> SchedulerCounters)?,
    _ emit: (BenchResult) -> Void
) {
    guard let config else { return }
    for c in cases where config.includes(c.name) {
        emit(
            measure(
                runtime: mode.rawValue, workload: c.name, ops: c.ops, workers: benchWorkers, config: config,
                counters: counters, c.body))
    }
}

/// Swift's default executor: the runtime suite, then the sync/channel substitutes (or, with `serve`, the
/// paired driver's requests).
func runSwiftDefault(_ config: RunConfig, suites: Set<Suite>, serve: Bool, _ emit: (BenchResult) -> Void) {
    if serve { return serveRuntimeSuite(.swiftDefault, plainCases, counters: nil) }
    runCases(.swiftDefault, plainCases, suites.contains(.runtime) ? config : nil, counters: nil, emit)
    runSyncChannels(.swiftDefault, suites: suites, config, counters: nil, emit)
}

/// Kyoto installed as Swift's global executor. Must be the only global-executor hook in the process.
func runKyotoGlobal(_ config: RunConfig, suites: Set<Suite>, serve: Bool, _ emit: (BenchResult) -> Void) {
    let runtime = Runtime.multiThread(workers: benchWorkers)
    verify(runtime.installAsGlobalExecutor(), "kyoto-global: installAsGlobalExecutor() returned false")
    verify(runtime.isGlobalExecutor, "kyoto-global: runtime does not report being the global executor")
    // Prove the hook took: a plain detached task must run on a Kyoto worker.
    let onKyoto = blockWait { Runtime.current === runtime }
    verify(onKyoto, "kyoto-global: Task.detached did not run on the Kyoto runtime")
    let counters = { kyotoCounters(runtime) }
    if serve { return serveRuntimeSuite(.kyotoGlobal, plainCases, counters: counters) }
    runCases(.kyotoGlobal, plainCases, suites.contains(.runtime) ? config : nil, counters: counters, emit)
}

/// SwiftNIO's MultiThreadedEventLoopGroup (2 loops) installed as Swift's global executor.
func runNIO(_ config: RunConfig, suites: Set<Suite>, serve: Bool, _ emit: (BenchResult) -> Void) {
    NIOSingletons.groupLoopCountSuggestion = benchWorkers
    verify(
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor(),
        "nio: the concurrency takeover returned false")
    // Prove the hook took: a plain detached task must run on one of NIO's event loops.
    let onLoop = blockWait {
        MultiThreadedEventLoopGroup.singleton.makeIterator().contains { $0.inEventLoop }
    }
    verify(onLoop, "nio: Task.detached did not run on an event loop of MultiThreadedEventLoopGroup.singleton")
    if serve { return serveRuntimeSuite(.nio, plainCases, counters: nil) }
    runCases(.nio, plainCases, suites.contains(.runtime) ? config : nil, counters: nil, emit)
}

func kyotoCounters(_ runtime: Runtime) -> SchedulerCounters {
    let m = runtime.metrics
    return SchedulerCounters(parks: m.totalParks, steals: m.totalSteals)
}
