// Shared pieces of the sync and channel workloads: the executor a workload runs on, the task fan-out
// helper, the Swift substitutes that are not in a library (actor-as-lock, an actor semaphore, a
// Synchronization.Mutex box) and the workload sizes.

import KyotoExecutor
import Synchronization

/// Where a sync/channel workload runs. Kyoto's own primitives run on `.kyoto` only; the Swift substitutes
/// run on both, so each can be compared with Kyoto on the same executor.
enum Exec: Sendable {
    /// `Runtime.multiThread(workers: 2)` in preference mode: entered with `blockOn`, tasks started with
    /// `runtime.spawn` (they carry the runtime as executor preference).
    case kyoto(Runtime)
    /// Swift's default executor: entered with a detached task, tasks started with `Task {}`.
    case swiftDefault

    var mode: Mode {
        switch self {
        case .kyoto: .kyotoPref
        case .swiftDefault: .swiftDefault
        }
    }

    /// Runs `body` as a task on this executor and blocks the calling (non-executor) thread until it returns.
    func enter<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        switch self {
        case .kyoto(let runtime): runtime.blockOn(body)
        case .swiftDefault: blockWait(body)
        }
    }

    /// Starts a task on this executor. Every implementation of a workload starts its tasks through here, so
    /// they all pay the same for spawning.
    @inline(__always)
    func start(_ body: @escaping @Sendable () async -> Void) {
        switch self {
        case .kyoto(let runtime): runtime.spawn { await body() }
        case .swiftDefault: Task { await body() }
        }
    }
}

/// A set of started tasks the starter can wait for (an atomic countdown and a oneshot, as in the runtime
/// workloads).
struct TaskGroupLite: Sendable {
    private let done: OneShot

    /// Starts `n` tasks running `body(i)` for i in 0..<n.
    init(_ n: Int, on exec: Exec, _ body: @escaping @Sendable (Int) async -> Void) {
        let remaining = Countdown(n)
        let done = OneShot()
        self.done = done
        for i in 0..<n {
            exec.start {
                await body(i)
                if remaining.decrement() == 0 { done.send() }
            }
        }
    }

    /// Returns once every task finished.
    func wait() async { await done.receive() }
}

/// Actor-as-lock: the critical section is an actor method.
actor LockActor {
    private(set) var value = 0

    func increment() { value += 1 }

    func read() -> Int { value }

    /// The semaphore workload's critical section, run under the actor's exclusion.
    func enter(_ gauge: Gauge) { gauge.enterAndLeave() }
}

/// The usual hand-written async counting semaphore: an actor with a permit count and a FIFO of
/// continuations. `release` hands its permit straight to the oldest waiter.
actor ActorSemaphore {
    private var permits: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var head = 0

    init(permits: Int) { self.permits = permits }

    func acquire() async {
        if permits > 0 {
            permits -= 1
            return
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            waiters.append(c)
        }
    }

    func release() {
        if head < waiters.count {
            let c = waiters[head]
            head += 1
            if head == waiters.count {
                waiters.removeAll(keepingCapacity: true)
                head = 0
            }
            c.resume()
        } else {
            permits += 1
        }
    }
}

/// Synchronization.Mutex protecting an Int (a synchronous lock: no await inside the critical section).
final class SyncMutexBox: Sendable {
    let mutex: Mutex<Int>
    init(_ value: Int) { mutex = Mutex(value) }
}

/// Checks a semaphore's bound: how many holders are inside at once, and whether the bound was ever exceeded.
final class Gauge: Sendable {
    private let inside = Atomic<Int>(0)
    private let violations = Atomic<Int>(0)
    private let entries = Atomic<Int>(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    @inline(__always)
    func enterAndLeave() {
        let now = inside.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue
        if now > limit { violations.wrappingAdd(1, ordering: .relaxed) }
        entries.wrappingAdd(1, ordering: .relaxed)
        inside.wrappingSubtract(1, ordering: .acquiringAndReleasing)
    }

    var violationCount: Int { violations.load(ordering: .acquiring) }
    var entryCount: Int { entries.load(ordering: .acquiring) }
}

/// Records, per task, whether a stream of values arrived in order and what arrived (for fan-out checks).
final class OrderCheck: Sendable {
    private let errors = Atomic<Int>(0)
    private let total = Atomic<Int>(0)
    private let sum = Atomic<Int>(0)

    func record(count: Int, sum s: Int, inOrder: Bool) {
        total.wrappingAdd(count, ordering: .relaxed)
        sum.wrappingAdd(s, ordering: .relaxed)
        if !inOrder { errors.wrappingAdd(1, ordering: .relaxed) }
    }

    var errorCount: Int { errors.load(ordering: .acquiring) }
    var totalCount: Int { total.load(ordering: .acquiring) }
    var totalSum: Int { sum.load(ordering: .acquiring) }
}

/// Sync/channel workload sizes, from WORKLOADS.md ("Sync / channel workloads").
enum SyncSize {
    static let mpscMessages = 5_000
    static let mpscProducers = 5
    static let mpscPerProducer = 1_000
    static let mpscLargeCapacity = 1_000_000
    static let mpscFullCapacity = 100
    static let oneshotRounds = 10_000
    static let lockTasks = 5
    /// Tasks of `mutex_held_across_await` (not a workload of the brief: a guard for the lock's waiting path).
    static let awaitingLockTasks = 2
    static let locksPerTask = 1_000
    static let uncontendedLocks = 10_000
    static let semaphorePermits = 2
    static let fanoutReceivers = 10
    static let broadcastCapacity = 1_024
    static let broadcastMessages = 1_000
    static let watchSends = 1_000
}

/// Sum of 0..<n.
@inline(__always)
func triangle(_ n: Int) -> Int { n * (n - 1) / 2 }

let syncWorkloadNames = [
    "mutex_contended", "mutex_uncontended", "semaphore_contended", "rwlock_read_contended",
    "mutex_held_across_await",
]

let channelWorkloadNames = [
    "mpsc_uncontended_bounded", "mpsc_contention_bounded", "mpsc_contention_bounded_full",
    "mpsc_contention_unbounded", "oneshot", "broadcast_fanout", "watch_fanout",
]

/// Every workload name `--only` accepts.
let allWorkloadNames = workloadNames + syncWorkloadNames + channelWorkloadNames + mainActorWorkloadNames
