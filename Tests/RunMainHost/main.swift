// run-main-host: a synchronous main that calls `Runtime.runMain` in the way its first argument names, for
// the test suite (RunMainTests.swift): `runMain` must be called from a synchronous main on the process's
// main thread, which a test process (an async main) cannot offer.
//
// Modes: `value` (prints the body's value), `throws` (prints the rethrown error), and misuses that must trap
// naming the mistake: `blockOn`, `blockInPlace` and `shutdown` from the MainActor, `twice` (a second
// runMain), `installed` (runMain after installAsGlobalExecutor), and `assumeOffMain` (a worker claiming the
// MainActor with `MainActor.assumeIsolated`, which Swift must refuse).

import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

struct HostError: Error, Equatable {
    let code: Int
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
            _ = runtime.runMain { 2 }
        case "assumeOffMain":
            runtime.runMain {
                await Task.detached { assumeMainActor() }.value
            }
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
