// LocalSet: a set's jobs never run on two threads at once, across consecutive runUntil calls.

import Synchronization
import Testing

@testable import KyotoExecutor

#if canImport(Glibc)
import Glibc
#endif

extension LocalSet {
    /// A task isolated to the set that the set does not track (an isolated `Task {}`).
    fileprivate func untrackedJob(_ op: @escaping @Sendable (isolated LocalSet) -> Void) {
        Task { op(self) }
    }
}

@Suite("LocalSet hand-over between runUntil calls")
struct LocalSetHandOverTests {
    @Test("a set job queued behind runUntil's end never runs alongside the next runUntil on another thread")
    func noOverlapWithNextRunUntil() async throws {
        // A standalone set (no runtime: no hops through a task executor). L (tracked) is cancelled when the
        // body returns; it then starts U and ends, which resumes the drain (E, queued behind U). U queues B
        // behind E. E finds no task left and end() returns; runUntil's code continues on another thread
        // while the set's thread D1 takes its next job, B, unless runUntil has unbound the set first. The
        // next runUntil runs on a new thread D2; its body is isolated to the set and must not find B still
        // running on D1. Repeated: which thread gets there first is a race.
        let attempts = 8
        for attempt in 0..<attempts {
            let set = LocalSet()
            let bInside = TestCounter()
            let release = TestCounter()
            let outcome = try await firstWithin(30) { () async -> String in
                await set.runUntil { s in
                    s.spawnLocal {
                        try? await Task.sleep(for: .seconds(3600))  // L
                        s.untrackedJob { s in  // U
                            s.untrackedJob { _ in  // B
                                bInside.increment()
                                let deadline = Platform.monotonicNanos() + 300_000_000
                                while release.current == 0 && Platform.monotonicNanos() < deadline {}
                                bInside.value.wrappingSubtract(1, ordering: .relaxed)
                            }
                        }
                    }
                    await Task.yield()
                }
                return await set.runUntil { _ in
                    // Isolated to the set: no other job of the set may be running now.
                    let overlapping = bInside.current
                    release.increment()
                    return overlapping == 0 ? "ok" : "a job of the set was still running on the previous thread"
                }
            }
            release.increment()
            #expect(outcome == "ok", "attempt \(attempt)")
            if outcome != "ok" { break }
        }
    }
}
