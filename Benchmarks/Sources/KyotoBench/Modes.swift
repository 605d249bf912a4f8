// One function per runtime under test. Each runs every selected workload and returns the results.

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

let benchWorkers = 2

/// Kyoto in preference mode: `Runtime.multiThread(workers: 2)`, work entered with blockOn/spawn.
/// Runs the runtime suite, then Kyoto's sync/channel primitives and the Swift substitutes, on that runtime.
func runKyotoPref(_ config: RunConfig, suites: Set<Suite>, _ emit: (BenchResult) -> Void) {
    let runtime = Runtime.multiThread(workers: benchWorkers)
    let counters = { kyotoCounters(runtime) }
    let cases: [(String, Int, () -> Sample)] = [
        ("spawn_many_local", Size.spawnManyLocal, { KyotoWorkloads.spawnManyLocal(runtime) }),
        ("spawn_many_remote_idle", Size.spawnManyRemoteIdle, { KyotoWorkloads.spawnManyRemoteIdle(runtime) }),
        ("yield_many", Size.yieldTasks * Size.yieldsPerTask, { KyotoWorkloads.yieldMany(runtime) }),
        ("ping_pong", Size.pingPongRounds, { KyotoWorkloads.pingPong(runtime) }),
        ("chained_spawn", Size.chainDepth, { KyotoWorkloads.chainedSpawn(runtime) }),
        ("actor_ping_pong", Size.actorCalls, { KyotoWorkloads.actorPingPong(runtime) }),
    ]
    for (name, ops, body) in cases where suites.contains(.runtime) && config.includes(name) {
        emit(
            measure(
                runtime: Mode.kyotoPref.rawValue, workload: name, ops: ops, workers: benchWorkers, config: config,
                counters: counters, body))
    }
    runSyncChannels(.kyoto(runtime), suites: suites, config, counters: counters, emit)
    verify(runtime.shutdown(timeout: .seconds(5)), "kyoto-pref: runtime did not shut down within 5 s")
}

/// Swift's default executor: the runtime suite, then the sync/channel substitutes.
func runSwiftDefault(_ config: RunConfig, suites: Set<Suite>, _ emit: (BenchResult) -> Void) {
    if suites.contains(.runtime) { runPlain(.swiftDefault, config, counters: nil, emit) }
    runSyncChannels(.swiftDefault, suites: suites, config, counters: nil, emit)
}

/// The plain-Swift workloads on whatever is the global executor now.
func runPlain(
    _ mode: Mode, _ config: RunConfig, counters: (() -> SchedulerCounters)?, _ emit: (BenchResult) -> Void
) {
    let cases: [(String, Int, () -> Sample)] = [
        ("spawn_many_local", Size.spawnManyLocal, PlainWorkloads.spawnManyLocal),
        ("spawn_many_remote_idle", Size.spawnManyRemoteIdle, PlainWorkloads.spawnManyRemoteIdle),
        ("yield_many", Size.yieldTasks * Size.yieldsPerTask, PlainWorkloads.yieldMany),
        ("ping_pong", Size.pingPongRounds, PlainWorkloads.pingPong),
        ("chained_spawn", Size.chainDepth, PlainWorkloads.chainedSpawn),
        ("actor_ping_pong", Size.actorCalls, PlainWorkloads.actorPingPong),
    ]
    for (name, ops, body) in cases where config.includes(name) {
        emit(
            measure(
                runtime: mode.rawValue, workload: name, ops: ops, workers: benchWorkers, config: config,
                counters: counters, body))
    }
}

/// Kyoto installed as Swift's global executor. Must be the only global-executor hook in the process.
func runKyotoGlobal(_ config: RunConfig, suites: Set<Suite>, _ emit: (BenchResult) -> Void) {
    let runtime = Runtime.multiThread(workers: benchWorkers)
    verify(runtime.installAsGlobalExecutor(), "kyoto-global: installAsGlobalExecutor() returned false")
    verify(runtime.isGlobalExecutor, "kyoto-global: runtime does not report being the global executor")
    // Prove the hook took: a plain detached task must run on a Kyoto worker.
    let onKyoto = blockWait { Runtime.current === runtime }
    verify(onKyoto, "kyoto-global: Task.detached did not run on the Kyoto runtime")
    if suites.contains(.runtime) { runPlain(.kyotoGlobal, config, counters: { kyotoCounters(runtime) }, emit) }
}

/// SwiftNIO's MultiThreadedEventLoopGroup (2 loops) installed as Swift's global executor.
func runNIO(_ config: RunConfig, suites: Set<Suite>, _ emit: (BenchResult) -> Void) {
    NIOSingletons.groupLoopCountSuggestion = benchWorkers
    verify(
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor(),
        "nio: the concurrency takeover returned false")
    // Prove the hook took: a plain detached task must run on one of NIO's event loops.
    let onLoop = blockWait {
        MultiThreadedEventLoopGroup.singleton.makeIterator().contains { $0.inEventLoop }
    }
    verify(onLoop, "nio: Task.detached did not run on an event loop of MultiThreadedEventLoopGroup.singleton")
    if suites.contains(.runtime) { runPlain(.nio, config, counters: nil, emit) }
}

func kyotoCounters(_ runtime: Runtime) -> SchedulerCounters {
    let m = runtime.metrics
    return SchedulerCounters(parks: m.totalParks, steals: m.totalSteals)
}
