// The sync and channel suites: which (workload, implementation) pairs run on which executor, and their
// Markdown tables (times, ratios against Kyoto, and the acceptance checks of the sync/channel issues).

import KyotoExecutor

/// The benchmark suites selectable with `--suite`.
enum Suite: String, CaseIterable {
    case runtime
    case sync
    case channels
    case mainActor = "main-actor"
}

/// One (workload, implementation) pair. Kyoto's own primitives (`impl == "kyoto"`) run on Kyoto only; the
/// substitutes run on Kyoto and on Swift's default executor.
struct SyncChannelCase: Sendable {
    let suite: Suite
    let workload: String
    let impl: String
    let ops: Int
    let body: @Sendable (Exec) -> Sample

    var kyotoOnly: Bool { impl == Impl.kyoto }
}

/// Implementation labels (the `impl` JSON field).
enum Impl {
    static let kyoto = "kyoto"
    static let actorLock = "actor-lock"
    static let actorSemaphore = "actor-semaphore"
    static let syncMutex = "sync-mutex"
    static let asyncChannel = "async-channel"
    static let asyncStream = "async-stream"
    static let continuation = "continuation"

    static func describe(_ impl: String, workload: String) -> String {
        switch impl {
        case kyoto:
            switch workload {
            case "mutex_contended", "mutex_uncontended", "mutex_held_across_await": "Kyoto AsyncMutex"
            case "semaphore_contended": "Kyoto AsyncSemaphore"
            case "rwlock_read_contended": "Kyoto AsyncRwLock"
            case "mpsc_contention_unbounded": "Kyoto Mpsc.unboundedChannel"
            case "oneshot": "Kyoto Oneshot"
            case "broadcast_fanout": "Kyoto Broadcast"
            case "watch_fanout": "Kyoto Watch"
            default: "Kyoto Mpsc.channel"
            }
        case actorLock: "actor as lock"
        case actorSemaphore: "actor semaphore (continuation FIFO)"
        case syncMutex: "Synchronization.Mutex"
        case asyncChannel: "AsyncChannel (async-algorithms)"
        case asyncStream:
            switch workload {
            case "broadcast_fanout", "watch_fanout": "AsyncStream per receiver"
            case "oneshot": "AsyncStream, one element"
            default: "AsyncStream"
            }
        case continuation: "withUnsafeContinuation + Mutex"
        default: impl
        }
    }
}

let syncChannelCases: [SyncChannelCase] = {
    let S = SyncWorkloads.self
    let C = ChannelWorkloads.self
    let lockOps = SyncWorkloads.lockOps
    let m = SyncSize.mpscMessages
    return [
        .init(suite: .sync, workload: "mutex_contended", impl: Impl.kyoto, ops: lockOps, body: S.mutexContendedKyoto),
        .init(suite: .sync, workload: "mutex_contended", impl: Impl.actorLock, ops: lockOps, body: S.mutexContendedActor),
        .init(suite: .sync, workload: "mutex_contended", impl: Impl.syncMutex, ops: lockOps, body: S.mutexContendedSyncMutex),
        .init(suite: .sync, workload: "mutex_uncontended", impl: Impl.kyoto, ops: SyncSize.uncontendedLocks, body: S.mutexUncontendedKyoto),
        .init(suite: .sync, workload: "mutex_uncontended", impl: Impl.actorLock, ops: SyncSize.uncontendedLocks, body: S.mutexUncontendedActor),
        .init(suite: .sync, workload: "mutex_uncontended", impl: Impl.syncMutex, ops: SyncSize.uncontendedLocks, body: S.mutexUncontendedSyncMutex),
        .init(
            suite: .sync, workload: "mutex_held_across_await", impl: Impl.kyoto,
            ops: SyncSize.awaitingLockTasks * SyncSize.locksPerTask, body: S.mutexHeldAcrossAwaitKyoto),
        .init(suite: .sync, workload: "semaphore_contended", impl: Impl.kyoto, ops: lockOps, body: S.semaphoreKyoto),
        .init(suite: .sync, workload: "semaphore_contended", impl: Impl.actorSemaphore, ops: lockOps, body: S.semaphoreActorSemaphore),
        .init(suite: .sync, workload: "semaphore_contended", impl: Impl.actorLock, ops: lockOps, body: S.semaphoreActorLock),
        .init(suite: .sync, workload: "rwlock_read_contended", impl: Impl.kyoto, ops: lockOps, body: S.rwlockKyoto),
        .init(suite: .sync, workload: "rwlock_read_contended", impl: Impl.actorLock, ops: lockOps, body: S.rwlockActor),
        .init(suite: .sync, workload: "rwlock_read_contended", impl: Impl.syncMutex, ops: lockOps, body: S.rwlockSyncMutex),

        .init(suite: .channels, workload: "mpsc_uncontended_bounded", impl: Impl.kyoto, ops: m, body: C.mpscUncontendedKyoto),
        .init(suite: .channels, workload: "mpsc_uncontended_bounded", impl: Impl.asyncChannel, ops: m, body: C.mpscUncontendedAsyncChannel),
        .init(suite: .channels, workload: "mpsc_uncontended_bounded", impl: Impl.asyncStream, ops: m, body: C.mpscUncontendedAsyncStream),
        .init(suite: .channels, workload: "mpsc_contention_bounded", impl: Impl.kyoto, ops: m,
              body: { C.mpscContentionKyoto($0, capacity: SyncSize.mpscLargeCapacity, workload: "mpsc_contention_bounded") }),
        .init(suite: .channels, workload: "mpsc_contention_bounded", impl: Impl.asyncChannel, ops: m,
              body: { C.mpscContentionAsyncChannel($0, workload: "mpsc_contention_bounded") }),
        .init(suite: .channels, workload: "mpsc_contention_bounded", impl: Impl.asyncStream, ops: m,
              body: { C.mpscContentionAsyncStream($0, policy: .bufferingOldest(SyncSize.mpscLargeCapacity), workload: "mpsc_contention_bounded") }),
        .init(suite: .channels, workload: "mpsc_contention_bounded_full", impl: Impl.kyoto, ops: m,
              body: { C.mpscContentionKyoto($0, capacity: SyncSize.mpscFullCapacity, workload: "mpsc_contention_bounded_full") }),
        .init(suite: .channels, workload: "mpsc_contention_bounded_full", impl: Impl.asyncChannel, ops: m,
              body: { C.mpscContentionAsyncChannel($0, workload: "mpsc_contention_bounded_full") }),
        .init(suite: .channels, workload: "mpsc_contention_unbounded", impl: Impl.kyoto, ops: m, body: C.mpscContentionUnboundedKyoto),
        .init(suite: .channels, workload: "mpsc_contention_unbounded", impl: Impl.asyncStream, ops: m,
              body: { C.mpscContentionAsyncStream($0, policy: .unbounded, workload: "mpsc_contention_unbounded") }),
        .init(suite: .channels, workload: "oneshot", impl: Impl.kyoto, ops: SyncSize.oneshotRounds, body: C.oneshotKyoto),
        .init(suite: .channels, workload: "oneshot", impl: Impl.continuation, ops: SyncSize.oneshotRounds, body: C.oneshotContinuation),
        .init(suite: .channels, workload: "oneshot", impl: Impl.asyncStream, ops: SyncSize.oneshotRounds, body: C.oneshotAsyncStream),
        .init(suite: .channels, workload: "broadcast_fanout", impl: Impl.kyoto, ops: ChannelWorkloads.fanoutDeliveries, body: C.broadcastKyoto),
        .init(suite: .channels, workload: "broadcast_fanout", impl: Impl.asyncStream, ops: ChannelWorkloads.fanoutDeliveries, body: C.broadcastAsyncStream),
        .init(suite: .channels, workload: "watch_fanout", impl: Impl.kyoto, ops: SyncSize.watchSends, body: C.watchKyoto),
        .init(suite: .channels, workload: "watch_fanout", impl: Impl.asyncStream, ops: SyncSize.watchSends, body: C.watchAsyncStream),
    ]
}()

/// Runs the selected sync/channel cases on `exec` (Kyoto's primitives only when `exec` is Kyoto).
func runSyncChannels(
    _ exec: Exec, suites: Set<Suite>, _ config: RunConfig, counters: (() -> SchedulerCounters)?,
    _ emit: (BenchResult) -> Void
) {
    let isKyoto: Bool
    if case .kyoto = exec { isKyoto = true } else { isKyoto = false }
    for c in syncChannelCases where suites.contains(c.suite) && config.includes(c.workload) {
        if let impls = config.impls, !impls.contains(c.impl) { continue }
        if c.kyotoOnly && !isKyoto && !config.kyotoOnDefault { continue }
        emit(
            measure(
                runtime: exec.mode.rawValue, workload: c.workload, ops: c.ops, workers: benchWorkers, config: config,
                counters: counters, impl: c.impl, { c.body(exec) }))
    }
}

// MARK: Tables

func formatNanos(_ ns: Double) -> String {
    if ns >= 10_000 { return "\(fixed(ns / 1000, 1)) µs" }
    if ns >= 1_000 { return "\(fixed(ns / 1000, 2)) µs" }
    if ns >= 100 { return "\(fixed(ns, 0)) ns" }
    return "\(fixed(ns, 1)) ns"
}

private func findSC(_ results: [BenchResult], _ workload: String, _ impl: String, _ runtime: Mode) -> BenchResult? {
    results.first { $0.workload == workload && $0.impl == impl && $0.runtime == runtime.rawValue }
}

/// One table per suite: every measured (implementation, executor) of each workload, Kyoto first, with the
/// ratio substitute / Kyoto (> 1: Kyoto is faster).
func syncChannelTable(_ results: [BenchResult], suite: Suite, config: RunConfig) -> String? {
    let names = suite == .sync ? syncWorkloadNames : channelWorkloadNames
    let rows = results.filter { r in r.impl != nil && names.contains(r.workload) }
    if rows.isEmpty { return nil }
    var lines = [
        "\(suite == .sync ? "Sync" : "Channel") workloads: median time per op, allocations per op, \(config.iterations) timed iterations after \(config.warmups) warm-up(s), 2 workers.",
        "Ratio = this row's time / Kyoto's time on the Kyoto runtime (> 1: Kyoto is faster).",
        "",
        "| workload | implementation | executor | time/op | allocs/op | ratio vs Kyoto |",
        "|---|---|---|---:|---:|---:|",
    ]
    for w in names where config.includes(w) {
        let kyoto = findSC(results, w, Impl.kyoto, .kyotoPref)
        var ordered: [BenchResult] = []
        for c in syncChannelCases where c.workload == w {
            for mode in [Mode.kyotoPref, .swiftDefault] {
                if let r = findSC(results, w, c.impl, mode), !ordered.contains(where: { $0.impl == r.impl && $0.runtime == r.runtime }) {
                    ordered.append(r)
                }
            }
        }
        for r in ordered {
            let ratio = kyoto.map { k in k.ns_per_op > 0 ? "\(fixed(r.ns_per_op / k.ns_per_op, 2))×" : "n/a" } ?? "n/a"
            let executor = r.runtime == Mode.kyotoPref.rawValue ? "Kyoto (2 workers)" : "Swift default"
            lines.append(
                "| \(w) | \(Impl.describe(r.impl!, workload: w)) | \(executor) | \(formatNanos(r.ns_per_op)) | \(fixed(r.allocs_per_op, 2)) | \(ratio) |"
            )
        }
    }
    return lines.joined(separator: "\n")
}

/// The acceptance ratios of the sync and channel issues, read off this run.
func acceptanceTable(_ results: [BenchResult]) -> String? {
    struct Check {
        let workload: String
        let impl: String
        let on: Mode
        let target: Double
        let strict: Bool  // true: ratio must be > target; false: >= target
    }
    let checks = [
        Check(workload: "mutex_contended", impl: Impl.actorLock, on: .kyotoPref, target: 2, strict: false),
        Check(workload: "mutex_contended", impl: Impl.actorLock, on: .swiftDefault, target: 1, strict: true),
        Check(workload: "mpsc_uncontended_bounded", impl: Impl.asyncChannel, on: .kyotoPref, target: 8, strict: false),
        Check(workload: "mpsc_uncontended_bounded", impl: Impl.asyncChannel, on: .swiftDefault, target: 8, strict: false),
        Check(workload: "mpsc_contention_bounded", impl: Impl.asyncChannel, on: .kyotoPref, target: 4, strict: false),
        Check(workload: "mpsc_contention_bounded", impl: Impl.asyncChannel, on: .swiftDefault, target: 4, strict: false),
        Check(workload: "mpsc_contention_unbounded", impl: Impl.asyncStream, on: .kyotoPref, target: 4, strict: false),
        Check(workload: "mpsc_contention_unbounded", impl: Impl.asyncStream, on: .swiftDefault, target: 4, strict: false),
    ]
    var lines = [
        "Acceptance ratios (substitute time / Kyoto time; Kyoto's primitive always on the Kyoto runtime):",
        "",
        "| workload | Kyoto | substitute | substitute on | ratio | target | met |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    var any = false
    for c in checks {
        guard let k = findSC(results, c.workload, Impl.kyoto, .kyotoPref),
            let s = findSC(results, c.workload, c.impl, c.on), k.ns_per_op > 0
        else { continue }
        any = true
        let ratio = s.ns_per_op / k.ns_per_op
        let met = c.strict ? ratio > c.target : ratio >= c.target
        let on = c.on == .kyotoPref ? "Kyoto" : "Swift default"
        lines.append(
            "| \(c.workload) | \(formatNanos(k.ns_per_op)) | \(Impl.describe(c.impl, workload: c.workload)) \(formatNanos(s.ns_per_op)) | \(on) | \(fixed(ratio, 2))× | \(c.strict ? ">" : "≥") \(fixed(c.target, 0))× | \(met ? "yes" : "NO") |"
        )
    }
    return any ? lines.joined(separator: "\n") : nil
}
