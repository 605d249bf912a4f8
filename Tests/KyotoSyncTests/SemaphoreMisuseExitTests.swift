import KyotoSync
import Testing

/// A semaphore call with a negative count, or one adding too many permits, traps naming that call.
@Suite("Semaphore misuse traps", .enabled(if: exitTestsEnabled, "exit tests are skipped under sanitizers"))
struct SemaphoreMisuseExitTests {
    @Test("addPermits with a negative count traps naming addPermits")
    func addNegative() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            AsyncSemaphore(permits: 1).addPermits(-1)
        }
        #expect(stderrText(result).contains("BUG DETECTED: addPermits(-1): cannot add a negative number of permits"))
    }

    @Test("acquire with a negative count traps naming the negative request")
    func acquireNegative() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = try await AsyncSemaphore(permits: 1).acquire(-1)
        }
        #expect(stderrText(result).contains("BUG DETECTED: acquire(-1): cannot request a negative number of permits"))
    }

    @Test("tryAcquire with a negative count traps naming the negative request")
    func tryAcquireNegative() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = try AsyncSemaphore(permits: 1).tryAcquire(-1)
        }
        #expect(stderrText(result).contains("BUG DETECTED: tryAcquire(-1): cannot request a negative number of permits"))
    }
}

private func stderrText(_ result: ExitTest.Result?) -> String {
    String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}
