// Global installation from an async main (the test process's own): MainActor, sleeps.

import Dispatch
import Synchronization
import Testing

@testable import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

@Suite("Global installation from async code", .enabled(if: exitTestsEnabled, "exit tests are skipped under sanitizers"))
struct GlobalInstallMainActorTests {
    @Test("installed from async code: MainActor hops and MainActor sleeps still work; plain sleeps land on Kyoto")
    func mainActorAfterInstall() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) {
            alarm(30)
            let r = Runtime.multiThread(workers: 2)
            guard r.installAsGlobalExecutor() else { exit(2) }
            let onMain = await MainActor.run { () -> Bool in
                MainActor.assertIsolated()
                return true
            }
            guard onMain else { exit(3) }
            let slept = await Task { @MainActor () -> Bool in
                try? await Task.sleep(for: .milliseconds(20))
                MainActor.assertIsolated()
                return true
            }.value
            guard slept else { exit(4) }
            // A plain task's sleep: timer on Kyoto's queue while it waits.
            let t = Task.detached { try? await Task.sleep(for: .milliseconds(200)) }
            let sawTimer = await until(seconds: 10) { r.shared.timers.pendingCount > 0 }
            await t.value
            print("sawTimer \(sawTimer)")
            guard sawTimer else { exit(5) }
            exit(0)
        }
        print(String(decoding: result?.standardOutputContent ?? [], as: UTF8.self))
    }
}
