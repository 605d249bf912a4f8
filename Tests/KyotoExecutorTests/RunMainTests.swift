// runMain, the synchronous-main entry. It needs a synchronous `main` on the process's main thread, which a
// test process (an async main) cannot offer, so most of these tests run programs of this package
// (`main-actor-demo`, `RunMainHost`), built next to the test binary, and read what they print.

import Foundation
import Testing

@testable import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

/// What a finished program printed.
struct ProgramRun {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs the package executable `name` (built in the test binary's directory) with `arguments` and waits up
/// to `timeout` for it to exit. Records an issue (and returns nil) if it is missing or does not exit in time.
func runPackageProgram(_ name: String, _ arguments: [String] = [], timeout: Duration = .seconds(120))
    -> ProgramRun?
{
    let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    let executable = directory.appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        Issue.record("\(executable.path) is missing: build the package's executables (swift build) first")
        return nil
    }
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["SWIFT_BACKTRACE"] = "enable=no"  // a trap's backtrace is slow and not what we read
    process.environment = environment
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let exited = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in exited.signal() }
    do {
        try process.run()
    } catch {
        Issue.record("could not start \(name): \(error)")
        return nil
    }
    // The programs print a few lines, far less than a pipe holds, so reading after exit cannot block them.
    let seconds = Double(timeout.components.seconds)
    guard exited.wait(timeout: .now() + seconds) == .success else {
        process.terminate()
        Issue.record("\(name) \(arguments) did not exit within \(timeout)")
        return nil
    }
    let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return ProgramRun(status: process.terminationStatus, stdout: stdout, stderr: stderr)
}

@Suite("runMain: the synchronous-main entry")
struct RunMainTests {
    @Test("main-actor-demo: MainActor code on the main thread, everything else on the workers")
    func demoPassesItsChecks() throws {
        let run = try #require(runPackageProgram("main-actor-demo"))
        #expect(run.status == 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        #expect(run.stdout.contains("main-actor-demo: all checks passed"))
        #expect(!run.stdout.contains("FAIL"))
        // The checks the demo makes (each line starts with "ok" only if it held).
        for step in [
            "ok   body on the main thread", "ok   8 task-group children on workers: 8/8",
            "ok   spawn from the MainActor ran on a worker", "ok   Task.detached from the MainActor ran on a worker",
            "ok   Task {} from the MainActor stayed on the main thread", "ok   default actor method ran on a worker",
            "ok   after Task.sleep, back on the main thread", "ok   runMain returned 42",
            "ok   runMain shut the runtime down",
            "ok   the heartbeat task was cancelled and unwound through the MainActor",
        ] {
            #expect(run.stdout.contains(step), "missing: \(step)")
        }
    }

    @Test("runMain returns the body's value")
    func returnsValue() throws {
        let run = try #require(runPackageProgram("RunMainHost", ["value"]))
        #expect(run.status == 0, "stderr:\n\(run.stderr)")
        #expect(run.stdout.contains("value 42"))
    }

    @Test("runMain rethrows the body's typed error")
    func rethrowsError() throws {
        let run = try #require(runPackageProgram("RunMainHost", ["throws"]))
        #expect(run.status == 0, "stderr:\n\(run.stderr)")
        #expect(run.stdout.contains("error 7"))
    }

    @Test("when the body returns, runMain cancels the tasks left and serves the MainActor while they unwind")
    func shutsDownServingMainActor() throws {
        let run = try #require(runPackageProgram("RunMainHost", ["unwind"]))
        #expect(run.status == 0, "stderr:\n\(run.stderr)")
        // Without the MainActor served during shutdown the task cannot unwind: runMain would wait out its
        // 60-second timeout and the flag would stay false.
        #expect(run.stdout.contains("unwound true within timeout true"), "stdout:\n\(run.stdout)")
    }

    @Test("runMain returns after its shutdown timeout even while MainActor work keeps re-queuing itself")
    func shutdownTimeoutHoldsUnderMainActorLoad() throws {
        let run = try #require(runPackageProgram("RunMainHost", ["stubborn"], timeout: .seconds(60)))
        #expect(run.status == 0, "stderr:\n\(run.stderr)")
        #expect(run.stdout.contains("returned after the timeout true"), "stdout:\n\(run.stdout)")
    }

    @Test("no lost wake-up: 8 x 10,000 hops from the workers to the MainActor all arrive (main loop parking races)")
    func hopsToMainActorAllArrive() throws {
        // Fewer under the sanitizer, which is about ten times slower.
        let hops = Int(10_000 * stressScale())
        let run = try #require(runPackageProgram("RunMainHost", ["hops", "\(max(hops, 100))"]))
        #expect(run.status == 0, "stderr:\n\(run.stderr)")
        let expected = 8 * max(hops, 100)
        #expect(run.stdout.contains("hops \(expected) of \(expected)"), "stdout:\n\(run.stdout)")
    }

    @Test("stop() on the MainActor's loop does not cut runMain short")
    func stopDoesNotEndRunMain() throws {
        let run = try #require(runPackageProgram("RunMainHost", ["stop"]))
        #expect(run.status == 0, "stderr:\n\(run.stderr)")
        #expect(run.stdout.contains("value 5"))
    }

    @Test(
        "misuse under runMain traps naming the mistake",
        .enabled(if: exitTestsEnabled, "trap tests are skipped under sanitizers"),
        arguments: [
            ("blockOn", "blockOn called on the main thread while it runs the MainActor under runMain"),
            ("blockInPlace", "blockInPlace called on the main thread, which runs the MainActor under runMain"),
            ("shutdown", "shutdown(timeout:) called on the main thread while it runs the MainActor under runMain"),
            ("twice", "runMain called while a global executor is already installed"),
            ("again", "runMain called on a Kyoto runtime that has been shut down"),
            ("installed", "runMain called while a global executor is already installed"),
            ("reentrant", "the MainActor's run loop was started from inside a MainActor job"),
            ("afterReturn", "blockOn called on a Kyoto runtime that has been shut down"),
        ])
    func misuseTraps(mode: String, message: String) throws {
        let run = try #require(runPackageProgram("RunMainHost", [mode]))
        #expect(run.status != 0)
        #expect(run.stderr.contains("BUG DETECTED: \(message)"), "stderr:\n\(run.stderr)")
    }

    @Test(
        "MainActor.assumeIsolated on a worker traps: the main executor does not claim other threads",
        .enabled(if: exitTestsEnabled, "trap tests are skipped under sanitizers"))
    func assumeIsolatedOffMainTraps() throws {
        let run = try #require(runPackageProgram("RunMainHost", ["assumeOffMain"]))
        #expect(run.status != 0)
        #expect(!run.stdout.contains("assumed the MainActor"))
        #expect(run.stderr.contains("Incorrect actor executor assumption"), "stderr:\n\(run.stderr)")
    }
}

private func errorText(_ result: ExitTest.Result?) -> String {
    String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}

/// Starts a plain thread (no task, not the main thread) running `body` and waits for it.
private func onPlainThread(_ body: @escaping @Sendable () -> Void) {
    let thread = Platform.spawnThread(stackSize: nil, body)
    thread.join()
}

@Suite("runMain misuse traps", .enabled(if: exitTestsEnabled, "exit tests are skipped under sanitizers"))
struct RunMainMisuseTests {
    @Test("runMain from async code traps")
    func fromAsyncCode() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Runtime.multiThread(workers: 1).runMain { 1 }
        }
        #expect(errorText(result).contains("BUG DETECTED: runMain called from async code; call it first thing in a synchronous main"))
    }

    @Test("runMain on a current-thread runtime traps")
    func currentThreadRuntime() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            onPlainThread { _ = Runtime.currentThread().runMain { 1 } }
        }
        #expect(errorText(result).contains("BUG DETECTED: runMain needs a multi-thread runtime"))
    }

    @Test("runMain off the main thread traps")
    func offMainThread() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            onPlainThread { _ = Runtime.multiThread(workers: 1).runMain { 1 } }
        }
        #expect(errorText(result).contains("BUG DETECTED: runMain called off the process's main thread"))
    }
}
