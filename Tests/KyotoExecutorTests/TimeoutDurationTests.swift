// TimeoutError.duration for deadlines that had already passed.

import Testing

@testable import KyotoExecutor

@Suite("timeout: the duration a TimeoutError reports")
struct TimeoutDurationTests {
    @Test("a negative duration is a deadline that had already passed: the error reports zero, as documented",
          arguments: bothFlavors)
    func negativeDurationReportsZero(_ flavor: Runtime.Configuration.Flavor) async {
        let r = makeRuntime(flavor, workers: 1)
        let reported = await blockOnThread(r, seconds: 30, "negative timeout") { () async -> Duration? in
            do {
                _ = try await timeout(after: .seconds(-1)) { try await Task.sleep(for: .seconds(3600)) }
                return nil
            } catch let e as TimeoutError {
                return e.duration
            } catch {
                return nil
            }
        }
        // "The time the body was given (zero for a deadline that had already passed)", as
        // `Runtime.timeout(at:)` reports for a past deadline.
        #expect(reported == .zero, "TimeoutError.duration was \(String(describing: reported))")
        r.shutdown(timeout: .seconds(5))
    }
}
