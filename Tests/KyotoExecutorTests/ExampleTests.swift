// The examples that exercise the runtime end to end, run as the programs users run.

import Testing

@Suite("Examples")
struct ExampleTests {
    @Test("shutdown-demo: stop intake, drain within a timeout, cut off the stuck job, shut down in time")
    func shutdownDemo() throws {
        let run = try #require(runPackageProgram("shutdown-demo"))
        #expect(run.status == 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        #expect(run.stdout.contains("the runtime shut down in time: yes"))
    }
}
