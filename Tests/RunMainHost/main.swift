// RunMainHost: a synchronous main that calls `Runtime.runMain` in the way its first argument names, for
// the test suite (RunMainTests.swift): `runMain` must be called from a synchronous main on the process's
// main thread, which a test process (an async main) cannot offer.
//
// Modes: `value` (prints the body's value), `throws` (prints the rethrown error), `unwind` (a task still
// running when the body returns is cancelled and unwinds through the MainActor), `hops` (workers hop to the
// MainActor many times, racing with the main loop's parking), `stop` (a stop() of the MainActor's loop does
// not cut runMain short), and misuses that must trap naming the mistake: `blockOn`,
// `blockInPlace` and `shutdown` from the MainActor, `twice` (a second runMain, on another runtime),
// `again` (a second runMain on the same, shut-down runtime), `installed` (runMain after
// installAsGlobalExecutor), `reentrant` (running the MainActor's loop inside a MainActor job),
// `afterReturn` (blockOn once runMain has shut the runtime down), and `assumeOffMain` (a worker claiming
// the MainActor with `MainActor.assumeIsolated`, which Swift must refuse).

@_spi(ExperimentalCustomExecutors) import _Concurrency
import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

/// MainActor-isolated flags of the `unwind` mode.
@MainActor
final class Flag: Sendable {
    var beats = 0
    var unwound = false
}

struct HostError: Error, Equatable {
    let code: Int
}

/// Queues a MainActor job that does the same: from the main thread's side, the queue never empties.
@MainActor
func requeueForever() {
    Task { @MainActor in requeueForever() }
}

/// A synchronous function that claims the MainActor (wrongly, when called off the main thread).
func assumeMainActor() {
    MainActor.assumeIsolated { print("assumed the MainActor") }
}

@main
struct RunMainHost {
    static func main() throws {
        let mode = CommandLine.arguments.dropFirst().first ?? "value"
        let runtime = Runtime.multiThread(workers: 2)
        switch mode {
        case "value":
            let v = runtime.runMain { () async -> Int in
                MainActor.assertIsolated()
                return await Task.detached { 6 * 7 }.value
            }
            print("value \(v)")
        case "throws":
            do {
                _ = try runtime.runMain { () async throws(HostError) -> Int in
                    await Task.yield()
                    throw HostError(code: 7)
                }
                print("no error")
            } catch {
                print("error \(error.code)")
            }
        case "blockOn":
            _ = runtime.runMain { runtime.blockOn { 1 } }
        case "blockInPlace":
            _ = runtime.runMain { blockInPlace { 1 } }
        case "shutdown":
            _ = runtime.runMain { runtime.shutdown(timeout: .seconds(1)) }
        case "twice":
            _ = runtime.runMain { 1 }
            _ = Runtime.multiThread(workers: 1).runMain { 2 }
        case "again":
            _ = runtime.runMain { 1 }
            _ = runtime.runMain { 2 }
        case "assumeOffMain":
            runtime.runMain {
                await Task.detached { assumeMainActor() }.value
            }
        case "unwind":
            // A task still running when the body returns: runMain cancels it and waits while it unwinds
            // through the MainActor, without waiting out the timeout.
            let start = ContinuousClock.now
            let unwound = runtime.runMain(shutdownTimeout: .seconds(60)) { () async -> Flag in
                let flag = Flag()
                spawn {
                    while !Task.isCancelled { await MainActor.run { flag.beats += 1 } }
                    await MainActor.run { flag.unwound = true }
                }
                while flag.beats < 3 { await Task.yield() }
                return flag
            }
            let elapsed = ContinuousClock.now - start
            print("unwound \(MainActor.assumeIsolated { unwound.unwound }) within timeout \(elapsed < .seconds(30))")
        case "stubborn":
            // A spawned task that ignores cancellation (so the runtime never terminates) and MainActor work
            // that queues its successor before each job ends (so the MainActor's queue is never empty):
            // runMain must still return after its shutdown timeout.
            let start = ContinuousClock.now
            _ = runtime.runMain(shutdownTimeout: .milliseconds(200)) { () async -> Int in
                let started = Flag()
                spawn {
                    await MainActor.run { started.beats = 1 }
                    while true { await yieldNow() }
                }
                while started.beats == 0 { await Task.yield() }  // started: shutdown cannot skip it
                requeueForever()
                return 1
            }
            print("returned after the timeout \(ContinuousClock.now - start < .seconds(30))")
            exit(0)  // the stubborn task is still running
        case "hops":
            // Enqueues to the main loop from the workers racing with its parking: every hop must arrive.
            let tasks = 8
            let hopsPerTask = Int(CommandLine.arguments.dropFirst(2).first ?? "") ?? 2_000
            let total = runtime.runMain { () async -> Int in
                let counter = Flag()
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<tasks {
                        group.addTask {
                            for _ in 0..<hopsPerTask {
                                await MainActor.run {
                                    MainActor.assertIsolated()
                                    counter.beats += 1
                                }
                            }
                        }
                    }
                }
                return counter.beats
            }
            print("hops \(total) of \(tasks * hopsPerTask)")
        case "stop":
            // stop() does not end runMain's loop early: the body finishes and its value comes back.
            let v = runtime.runMain { () async -> Int in
                MainActor.executor.stop()
                await Task.yield()
                return 5
            }
            print("value \(v)")
        case "reentrant":
            runtime.runMain { try? MainActor.executor.run() }
        case "afterReturn":
            _ = runtime.runMain { 1 }
            _ = runtime.blockOn { 2 }
        case "installed":
            _ = Runtime.multiThread(workers: 1).installAsGlobalExecutor()
            _ = runtime.runMain { 1 }
        default:
            print("unknown mode \(mode)")
            exit(2)
        }
        exit(0)
    }
}
