// main-actor-demo: a synchronous `main` that hands the process to Kyoto with `runMain`.
//
//   swift run -c release main-actor-demo
//
// `runMain` is Tokio's `#[tokio::main]`: the runtime becomes Swift's global executor and the main thread
// becomes the MainActor's executor; when the body returns, the runtime is shut down. A MainActor-isolated `Dashboard` (an ordinary class, not Sendable) is
// updated from the main actor while the work it reports on runs on Kyoto's workers: a task group, a `spawn`,
// a default actor and a `Task.sleep`. Every step prints the thread it ran on and checks it; the process
// exits with status 1 if a check fails (the test suite runs this program and reads its output).

import Kyoto

#if canImport(Glibc)
import Glibc
#endif

/// The calling thread's name, from /proc (the main thread keeps the program's name; workers are
/// `kyoto-worker-N`).
func threadName() -> String {
    guard let file = fopen("/proc/thread-self/comm", "r") else { return "?" }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 32)
    guard fgets(&buffer, 32, file) != nil else { return "?" }
    let bytes = buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

nonisolated(unsafe) var failures = 0
/// Set on the MainActor by the heartbeat task when shutdown cancels it.
@MainActor var heartbeatStopped = false

/// Prints one step and whether its check held.
func report(_ step: String, _ ok: Bool) {
    print("\(ok ? "ok  " : "FAIL") \(step)")
    if !ok { failures += 1 }
}

/// The main thread's pthread handle, taken in `main` before `runMain`.
nonisolated(unsafe) var mainThread = pthread_self()

func onMainThread() -> Bool { pthread_equal(pthread_self(), mainThread) != 0 }
func onWorker() -> Bool { threadName().hasPrefix("kyoto-worker-") }

/// MainActor-isolated state: an ordinary class that only the main thread touches.
@MainActor
final class Dashboard {
    private(set) var lines: [String] = []
    func post(_ line: String) {
        report("dashboard: \(line) (on \(threadName()))", onMainThread())
        lines.append(line)
    }
}

/// A default actor: its methods run on the workers.
actor Tally {
    private var total = 0
    func add(_ n: Int) -> (Int, Bool) {
        total += n
        return (total, onWorker())
    }
}

/// Sums `range` on whatever thread calls it; reports whether that was a worker.
nonisolated func sum(_ range: Range<Int>) async -> (Int, Bool) {
    (range.reduce(0, +), onWorker())
}

@main
struct MainActorDemo {
    static func main() throws {
        mainThread = pthread_self()
        let runtime = Runtime.multiThread(workers: 2)
        let answer = runtime.runMain {
            MainActor.assertIsolated("runMain's body runs on the MainActor")
            report("body on the main thread (\(threadName()))", onMainThread())
            let dashboard = Dashboard()

            // A task group: the children run on the workers, the results come back to the MainActor.
            let total = await withTaskGroup(of: (Int, Bool).self) { group in
                for chunk in 0..<8 {
                    group.addTask { await sum(chunk * 1_000..<(chunk + 1) * 1_000) }
                }
                var total = 0
                var onWorkers = 0
                for await (part, worker) in group {
                    total += part
                    if worker { onWorkers += 1 }
                }
                report("8 task-group children on workers: \(onWorkers)/8", onWorkers == 8)
                return total
            }
            dashboard.post("sum of 0..<8000 = \(total)")

            // Kyoto's spawn and a detached task run on the workers; `Task {}` inherits the MainActor.
            let spawned = try? await spawn { onWorker() }.value
            report("spawn from the MainActor ran on a worker", spawned == true)
            let detached = await Task.detached { onWorker() }.value
            report("Task.detached from the MainActor ran on a worker", detached)
            let inherited = await Task { onMainThread() }.value
            report("Task {} from the MainActor stayed on the main thread", inherited)

            // A default actor.
            let tally = Tally()
            let (_, actorOnWorker) = await tally.add(total)
            report("default actor method ran on a worker", actorOnWorker)

            // A heartbeat that runs until the runtime shuts down; when runMain's body returns, runMain
            // cancels it, and it reports its last beat through the MainActor while runMain waits for it.
            spawn {
                var beats = 0
                while !Task.isCancelled {
                    beats += 1
                    try? await Task.sleep(for: .milliseconds(2))
                }
                await MainActor.run { heartbeatStopped = beats > 0 }
            }

            // Sleeping on the MainActor: the timer is Kyoto's, the wake-up comes back to the main thread.
            try? await Task.sleep(for: .milliseconds(20))
            report("after Task.sleep, back on the main thread (\(threadName()))", onMainThread())
            dashboard.post("done after \(dashboard.lines.count + 1) updates")
            return total == (0..<8_000).reduce(0, +) ? 42 : 0
        }
        report("runMain returned \(answer)", answer == 42)
        report("runMain shut the runtime down", runtime.isShutDown)
        report("the heartbeat task was cancelled and unwound through the MainActor", heartbeatStopped)
        print(failures == 0 ? "main-actor-demo: all checks passed" : "main-actor-demo: \(failures) checks failed")
        exit(failures == 0 ? 0 : 1)
    }
}
