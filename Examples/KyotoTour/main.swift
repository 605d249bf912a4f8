// kyoto-tour: runs the runtime workloads of WORKLOADS.md on a 2-worker Kyoto runtime and shows, for each,
// the time per operation and what every worker did (jobs run, steals, parks, LIFO hits, overflows).
//
//   swift run -c release kyoto-tour            # all workloads
//   swift run -c release kyoto-tour yield_many # one workload

import Kyoto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// MARK: Helpers

func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// A one-shot async value: one `send`, one `receive`.
final class OneShot<T: Sendable>: Sendable {
    private let state = Mutex<(value: T?, waiter: CheckedContinuation<T, Never>?)>((nil, nil))

    func send(_ value: T) {
        let waiter = state.withLock { s -> CheckedContinuation<T, Never>? in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.value = value
            return nil
        }
        waiter?.resume(returning: value)
    }

    func receive() async -> T {
        await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
            let ready = state.withLock { s -> T? in
                if let v = s.value { return v }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}

final class Countdown: Sendable {
    let remaining: Atomic<Int>
    let done = OneShot<Void>()
    init(_ n: Int) { remaining = Atomic(n) }
    func tick() {
        if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done.send(()) }
    }
}

struct Workload {
    let name: String
    let ops: Int
    let what: String
    let run: @Sendable (Runtime) -> Void
}

// MARK: The workloads (sizes from WORKLOADS.md)

let workloads: [Workload] = [
    Workload(name: "spawn_many_local", ops: 10_000, what: "a task spawns 10,000 tasks; the last one signals") { rt in
        rt.blockOn {
            let countdown = Countdown(10_000)
            for _ in 0..<10_000 { spawn { countdown.tick() } }
            await countdown.done.receive()
        }
    },
    Workload(name: "spawn_many_remote_idle", ops: 10_000, what: "a foreign thread spawns 10,000 tasks, awaits all")
    { rt in
        var handles: [JoinHandle<Void>] = []
        handles.reserveCapacity(10_000)
        for _ in 0..<10_000 { handles.append(rt.spawn {}) }
        let all = handles
        rt.blockOn { for h in all { try? await h.value } }
    },
    Workload(name: "yield_many", ops: 200_000, what: "200 tasks each yield 1,000 times") { rt in
        rt.blockOn {
            var handles: [JoinHandle<Void>] = []
            for _ in 0..<200 { handles.append(spawn { for _ in 0..<1000 { await Task.yield() } }) }
            for h in handles { try? await h.value }
        }
    },
    Workload(
        name: "ping_pong", ops: 1_000,
        what: "1,000 concurrent rounds: a task spawns a second; ping, pong; the last round signals"
    ) { rt in
        rt.blockOn {
            let countdown = Countdown(1_000)
            for _ in 0..<1_000 {
                spawn {
                    let ping = OneShot<Int>()
                    let pong = OneShot<Int>()
                    spawn { pong.send(await ping.receive() + 1) }
                    ping.send(1)
                    let v = await pong.receive()
                    precondition(v == 2, "ping_pong: pong carried \(v), expected 2")
                    countdown.tick()
                }
            }
            await countdown.done.receive()
        }
    },
    Workload(name: "chained_spawn", ops: 1_000, what: "a task spawns a task which spawns a task ... 1,000 deep") { rt in
        rt.blockOn {
            let done = OneShot<Void>()
            @Sendable func link(_ n: Int) {
                if n == 0 {
                    done.send(())
                } else {
                    spawn { link(n - 1) }
                }
            }
            spawn { link(1000) }
            await done.receive()
        }
    },
]

// MARK: Main

let selected = CommandLine.arguments.dropFirst().filter { !$0.hasPrefix("-") }
let runtime = Runtime.multiThread(workers: 2)
print("Kyoto tour: \(runtime.workerCount) workers. Each workload: 2 warm-ups, 7 timed runs, median shown.\n")

func delta(_ a: RuntimeMetrics.Worker, _ b: RuntimeMetrics.Worker) -> String {
    "polls \(b.polls - a.polls), steals \(b.steals - a.steals) in \(b.stealOperations - a.stealOperations) ops, "
        + "parks \(b.parks - a.parks), lifo hits \(b.lifoHits - a.lifoHits), overflows \(b.overflows - a.overflows)"
}

for w in workloads where selected.isEmpty || selected.contains(w.name) {
    for _ in 0..<2 { w.run(runtime) }
    let before = runtime.metrics
    var samples: [Double] = []
    for _ in 0..<7 {
        let t0 = nowNanos()
        w.run(runtime)
        samples.append(Double(nowNanos() - t0) / Double(w.ops))
    }
    let after = runtime.metrics
    samples.sort()
    let median = samples[samples.count / 2]
    print("\(w.name): \(w.what)")
    print("  \(String(format2: median)) ns/op (median of 7; min \(String(format2: samples.first!)), "
        + "max \(String(format2: samples.last!)))")
    for i in 0..<after.perWorker.count {
        print("  worker \(i): " + delta(before.perWorker[i], after.perWorker[i]))
    }
    print("  remote schedules \(after.remoteSchedules - before.remoteSchedules), "
        + "budget-forced yields \(after.budgetForcedYields - before.budgetForcedYields)\n")
}
runtime.shutdown(timeout: .seconds(5))

extension String {
    init(format2 value: Double) {
        let scaled = (value * 10).rounded() / 10
        self = "\(scaled)"
    }
}
