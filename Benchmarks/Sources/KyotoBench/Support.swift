// Helpers shared by every runtime's workloads, so all of them pay the same for signalling.

import Dispatch
import Synchronization

/// A single-use channel carrying an `Int`: one `send`, one `receive`. Built from `withUnsafeContinuation`
/// and a Mutex, with no runtime-specific parts, so the same helper is used on every runtime.
///
/// It is deliberately cheap, as Tokio's benchmarks use Tokio's own oneshot: not generic (a generic class's
/// deinit looks its field's metadata up at run time, several percent of a `ping_pong` profile) and no
/// checked continuation (one allocation per wait for the misuse canary). Misuse still traps.
final class OneShot: Sendable {
    private enum State {
        case empty
        case value(Int)
        case waiting(UnsafeContinuation<Int, Never>)
        case done
    }

    private let state = Mutex<State>(.empty)

    init() {}

    func send(_ value: Int = 0) {
        let waiter: UnsafeContinuation<Int, Never>? = state.withLock { s in
            switch s {
            case .empty:
                s = .value(value)
                return nil
            case .waiting(let c):
                s = .done
                return c
            case .value, .done:
                fatalError("kyoto-bench: OneShot sent twice")
            }
        }
        // Resumed outside the lock.
        waiter?.resume(returning: value)
    }

    @discardableResult
    func receive() async -> Int {
        // Fast path: the value is already there, no suspension.
        let ready: Int? = state.withLock { s in
            if case .value(let v) = s {
                s = .done
                return v
            }
            return nil
        }
        if let ready { return ready }
        return await withUnsafeContinuation { (c: UnsafeContinuation<Int, Never>) in
            let now: Int? = state.withLock { s in
                switch s {
                case .empty:
                    s = .waiting(c)
                    return nil
                case .value(let v):
                    s = .done
                    return v
                case .waiting, .done:
                    fatalError("kyoto-bench: OneShot received twice")
                }
            }
            if let now { c.resume(returning: now) }
        }
    }
}

/// A shared countdown; `decrement` returns the new value.
final class Countdown: Sendable {
    private let remaining: Atomic<Int>

    init(_ n: Int) { remaining = Atomic(n) }

    @inline(__always)
    func decrement() -> Int {
        // Acquiring-and-releasing: the task that reaches 0 sees every other task's work.
        remaining.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue
    }

    var value: Int { remaining.load(ordering: .acquiring) }
}

/// A shared tally.
final class Tally: Sendable {
    private let count = Atomic<Int>(0)
    func add(_ n: Int) { count.wrappingAdd(n, ordering: .relaxed) }
    var value: Int { count.load(ordering: .acquiring) }
}

/// Runs `body` as a detached task (on whatever executor is Swift's global one in this process) and blocks the
/// calling thread, which must not be an executor thread, until it returns.
func blockWait<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let box = ResultBox<T>()
    Task.detached {
        box.set(await body())
    }
    return box.wait()
}

/// The result slot of `blockWait`.
private final class ResultBox<T: Sendable>: Sendable {
    private let slot = Mutex<T?>(nil)
    private let ready = DispatchSemaphore(value: 0)

    func set(_ value: T) {
        slot.withLock { $0 = value }
        ready.signal()
    }

    func wait() -> T {
        ready.wait()
        return slot.withLock { $0.take()! }
    }
}

/// The callee of actor_ping_pong.
actor Ponger {
    private(set) var calls = 0

    func hit() -> Int {
        calls += 1
        return calls
    }
}

/// The caller of actor_ping_pong: calls `peer.hit()` `n` times from its own isolation (each call hops).
actor Pinger {
    let peer: Ponger

    init(peer: Ponger) { self.peer = peer }

    func run(_ n: Int) async -> Int {
        var last = 0
        for _ in 0..<n { last = await peer.hit() }
        return last
    }
}

/// Workload sizes, from WORKLOADS.md.
enum Size {
    static let spawnManyLocal = 10_000
    static let spawnManyRemoteIdle = 10_000
    static let yieldTasks = 200
    static let yieldsPerTask = 1_000
    static let pingPongRounds = 1_000
    /// MainActor suite (Kyoto's own, not in WORKLOADS.md): calls per iteration (each costs two thread wake-ups).
    static let mainActorCalls = 10_000
    static let chainDepth = 1_000
    static let actorCalls = 100_000
}

/// The workloads, in report order.
let workloadNames = [
    "spawn_many_local", "spawn_many_remote_idle", "yield_many", "ping_pong", "chained_spawn", "actor_ping_pong",
]
