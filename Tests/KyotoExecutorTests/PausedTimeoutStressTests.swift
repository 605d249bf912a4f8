// Seeded stress: many concurrent timeouts on a paused clock come out as their deadlines say.

import Testing

@testable import KyotoExecutor

@Suite("Paused clock: timeout stress")
struct PausedTimeoutStressTests {
    @Test("hundreds of concurrent timeouts: a body shorter than its deadline returns, a longer one times out")
    func concurrentTimeouts() async {
        let seed = testSeed()
        var c = Runtime.Configuration(flavor: .currentThread)
        c.startPaused = true
        let r = Runtime(c)
        let result = await blockOnThread(r, seconds: 60, "timeout stress") { () async throws -> [String] in
            var rng = SeededRandom(seed: seed)
            let start = r.clock.now
            var handles: [JoinHandle<String>] = []
            for i in 0..<400 {
                let limit = Int64.random(in: 1...50, using: &rng)
                let work = Int64.random(in: 1...50, using: &rng)
                let nested = Bool.random(using: &rng)
                handles.append(spawn { () async throws -> String in
                    do {
                        let v = try await timeout(after: .milliseconds(limit)) { () async throws -> Int in
                            if nested {
                                // An inner timeout that never fires first.
                                return try await timeout(after: .milliseconds(limit + 100)) {
                                    try await r.clock.sleep(for: .milliseconds(work))
                                    return i
                                }
                            }
                            try await r.clock.sleep(for: .milliseconds(work))
                            return i
                        }
                        let at = start.duration(to: r.clock.now)
                        let want = work <= limit
                        return want && v == i && at >= .milliseconds(work) ? "ok" : "#\(i) value at \(at) limit \(limit) work \(work)"
                    } catch let e as TimeoutError {
                        let at = start.duration(to: r.clock.now)
                        let want = work > limit
                        return want && e.duration == .milliseconds(limit) ? "ok" : "#\(i) timeout at \(at) limit \(limit) work \(work)"
                    }
                })
            }
            var out: [String] = []
            for h in handles { out.append(try await h.value) }
            return out
        }
        let bad = (result ?? []).filter { $0 != "ok" }
        #expect(result?.count == 400 && bad.isEmpty, "seed \(seed): \(bad.prefix(10))")
        r.shutdown(timeout: .seconds(5))
    }
}
