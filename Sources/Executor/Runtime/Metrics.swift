// Metrics: counters kept by the scheduler and the snapshot type users read.
//
// Per-worker counters have a single writer (the thread that holds that worker) and any number of readers,
// so the writer updates them with a relaxed load + relaxed store (no read-modify-write, no lock) and
// readers load them relaxed. All counters are monotonic except the gauges (depths, alive tasks).

import Synchronization

/// A single-writer monotonic counter.
struct Counter: ~Copyable {
    private let value = Atomic<UInt64>(0)

    /// Adds `n`. Only the counter's owning thread may call this.
    @inline(__always)
    func add(_ n: UInt64 = 1) {
        // Relaxed: a statistic with one writer; readers need no ordering with other memory.
        value.store(value.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    /// The current value (any thread). Relaxed: see `add`; a reader may see a slightly old count.
    var load: UInt64 { value.load(ordering: .relaxed) }
}

/// The counters of one worker. Written by the thread holding the worker, read by anyone.
final class WorkerStats: Sendable {
    let polls = Counter()
    let steals = Counter()
    let stealOperations = Counter()
    let parks = Counter()
    let unparks = Counter()
    let noops = Counter()
    let overflows = Counter()
    let lifoHits = Counter()
    let localSchedules = Counter()
    let busyNanos = Counter()
}

/// A point-in-time view of a runtime's counters. Counters are monotonic; depths are gauges.
public struct RuntimeMetrics: Sendable, CustomStringConvertible {
    /// Counters of one worker thread.
    public struct Worker: Sendable, Equatable {
        /// Jobs run by this worker.
        public var polls: UInt64
        /// Jobs this worker stole from other workers.
        public var steals: UInt64
        /// Successful steal operations (each moves one or more jobs).
        public var stealOperations: UInt64
        /// Times this worker parked.
        public var parks: UInt64
        /// Times this worker woke from parking.
        public var unparks: UInt64
        /// Wake-ups that found nothing to do (the worker went back to sleep).
        public var noops: UInt64
        /// Times the local queue was full and half of it moved to the inject queue: the older half (the jobs
        /// that have waited longest), with the job being pushed, as Tokio up to 1.51 does (later Tokio versions
        /// move the newer half).
        public var overflows: UInt64
        /// Jobs run straight from the LIFO slot after another job.
        public var lifoHits: UInt64
        /// Jobs scheduled onto this worker's own queue or LIFO slot.
        public var localSchedules: UInt64
        /// Jobs in the local queue right now.
        public var localQueueDepth: Int
        /// Time spent running jobs.
        public var busyDuration: Duration
    }

    /// Number of worker threads (1 for the current-thread flavor).
    public var workers: Int
    /// Tasks spawned with `spawn` or `spawnBlocking` that have not finished. A spawn from a thread that is not
    /// one of the runtime's counts from the moment it starts, so a spawn racing with shutdown may count for a
    /// moment after `shutdown(timeout:)` returned (its body does not run).
    public var aliveTasks: Int
    /// Jobs waiting in the inject (global) queue.
    public var injectQueueDepth: Int
    /// Jobs scheduled from outside the runtime's threads.
    public var remoteSchedules: UInt64
    /// Times the cooperative budget forced a task to yield.
    public var budgetForcedYields: UInt64
    /// Threads of the blocking pool (they start on demand).
    public var blockingThreads: Int
    /// Idle threads of the blocking pool.
    public var idleBlockingThreads: Int
    /// Blocking jobs waiting for a thread.
    public var blockingQueueDepth: Int
    /// Per-worker counters, indexed by worker number.
    public var perWorker: [Worker]

    /// Sum of `polls` over all workers.
    public var totalPolls: UInt64 { perWorker.reduce(0) { $0 + $1.polls } }
    /// Sum of `steals` over all workers.
    public var totalSteals: UInt64 { perWorker.reduce(0) { $0 + $1.steals } }
    /// Sum of `parks` over all workers.
    public var totalParks: UInt64 { perWorker.reduce(0) { $0 + $1.parks } }
    /// Sum of `overflows` over all workers.
    public var totalOverflows: UInt64 { perWorker.reduce(0) { $0 + $1.overflows } }
    /// Sum of `lifoHits` over all workers.
    public var totalLifoHits: UInt64 { perWorker.reduce(0) { $0 + $1.lifoHits } }

    /// A multi-line human-readable summary.
    public var description: String {
        var s = "workers=\(workers) alive=\(aliveTasks) inject=\(injectQueueDepth) remote=\(remoteSchedules) "
        s += "forcedYields=\(budgetForcedYields)\n"
        for (i, w) in perWorker.enumerated() {
            s += "  worker \(i): polls=\(w.polls) steals=\(w.steals)/\(w.stealOperations) parks=\(w.parks) "
            s += "unparks=\(w.unparks) noops=\(w.noops) lifo=\(w.lifoHits) overflows=\(w.overflows) "
            s += "depth=\(w.localQueueDepth)\n"
        }
        return s
    }
}

extension RuntimeMetrics.Worker {
    init(_ stats: WorkerStats, depth: Int) {
        polls = stats.polls.load
        steals = stats.steals.load
        stealOperations = stats.stealOperations.load
        parks = stats.parks.load
        unparks = stats.unparks.load
        noops = stats.noops.load
        overflows = stats.overflows.load
        lifoHits = stats.lifoHits.load
        localSchedules = stats.localSchedules.load
        localQueueDepth = depth
        busyDuration = .nanoseconds(Int64(clamping: stats.busyNanos.load))
    }
}
