// localset-demo: non-Sendable state shared by several tasks, pinned to one thread by a LocalSet.
//
//   swift run -c release localset-demo
//
// A `Parser` with a memo cache is an ordinary class: not Sendable, not thread-safe. Inside a LocalSet,
// several local tasks share one instance across their awaits (simulated I/O with Task.sleep, work on the
// runtime's workers with `spawn`, and work on the blocking pool with `spawnBlocking`). The compiler accepts it
// without @unchecked or locks because every local task is isolated to the set, and the set runs every job
// on one thread; the demo prints that thread for every step to show it.

import Kyoto

#if canImport(Glibc)
import Glibc
#endif

/// A tiny "parser" with a cache: deliberately a plain, non-Sendable class.
final class Parser {
    private var cache: [String: Int] = [:]
    private(set) var hits = 0
    private(set) var misses = 0

    func parse(_ text: String) -> Int {
        if let v = cache[text] {
            hits += 1
            return v
        }
        misses += 1
        let v = text.unicodeScalars.reduce(0) { ($0 &* 31 &+ Int($1.value)) & 0xFFFF }
        cache[text] = v
        return v
    }
}

/// The calling thread's identity (its pthread handle as a number).
func threadID() -> UInt {
    UInt(bitPattern: Int(bitPattern: pthread_self()))
}

let runtime = Runtime.multiThread(workers: 2)
let mainThread = threadID()
print("localset-demo: 4 local tasks share one non-Sendable Parser; the blockOn thread is \(mainThread)\n")

let report = runtime.blockOn { () async -> String in
    await LocalSet().runUntil { set in
        let parser = Parser()  // not Sendable: it never leaves this thread
        var seenThreads: Set<UInt> = [threadID()]
        var lines: [String] = []
        var handles: [LocalJoinHandle<Void>] = []
        let documents = ["alpha", "beta", "alpha", "gamma", "beta", "alpha"]
        for worker in 0..<4 {
            handles.append(set.spawnLocal {
                for (step, doc) in documents.enumerated() where (step + worker) % 2 == 0 {
                    // "I/O": a timer.
                    try? await Task.sleep(for: .milliseconds(2))
                    seenThreads.insert(threadID())
                    // CPU work on the runtime's workers (another thread), result brought back here.
                    let weight = (try? await spawn { doc.count * 10 }.value) ?? 0
                    seenThreads.insert(threadID())
                    // Work on the blocking pool (another thread; a blocking read would go here), result
                    // brought back here.
                    let stamp = (try? await spawnBlocking { doc.uppercased() }.value) ?? ""
                    seenThreads.insert(threadID())
                    let value = parser.parse(doc)
                    lines.append("task \(worker) step \(step): \(stamp) -> \(value) (weight \(weight)) on thread \(threadID())")
                }
            })
        }
        for h in handles { try? await h.value }
        for l in lines { print("  " + l) }
        return "parser: \(parser.hits) cache hits, \(parser.misses) misses; local jobs ran on \(seenThreads.count) "
            + "thread(s): \(seenThreads.sorted())"
    }
}
print("\n" + report)
print(report.contains("ran on 1 thread(s): [\(mainThread)]") ? "every local job ran on the blockOn thread" : "UNEXPECTED")
runtime.shutdown(timeout: .seconds(5))
