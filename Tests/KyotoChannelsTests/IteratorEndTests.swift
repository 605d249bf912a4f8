// A receiver's iterator that has returned nil stays ended (AsyncIteratorProtocol's contract, and what
// `AsyncStream` does): before, a cancelled task's iterator returned nil at a budget yield and then, with a
// fresh budget, more messages.

import KyotoExecutor
import Testing

@testable import KyotoChannels

@Suite("Receiver iterators end for good")
struct IteratorEndTests {
    /// Runs `body` in a task of a multi-thread runtime that is cancelled before the body starts.
    private func inCancelledTask(_ body: @escaping @Sendable () async -> String) -> String {
        let runtime = Runtime.multiThread(workers: 2)
        defer { runtime.shutdown(timeout: .seconds(5)) }
        return runtime.blockOn { () async -> String in
            let result = await spawn { () async -> String in
                withUnsafeCurrentTask { $0?.cancel() }
                return await body()
            }.result
            return (try? result.get()) ?? "the task failed: \(result)"

        }
    }

    @Test("mpsc (bounded and unbounded): after nil in a cancelled task, next() stays nil with messages buffered")
    func mpscStaysEnded() throws {
        for bounded in [true, false] {
            let outcome = inCancelledTask {
                var taken = 0
                var again: Int?
                if bounded {
                    let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 1_000)
                    for i in 0..<1_000 { try? tx.trySend(i) }
                    var it = rx.makeAsyncIterator()
                    while await it.next() != nil { taken += 1 }
                    again = await it.next()
                } else {
                    let (tx, rx) = Mpsc.unboundedChannel(of: Int.self)
                    for i in 0..<1_000 { try? tx.send(i) }
                    var it = rx.makeAsyncIterator()
                    while await it.next() != nil { taken += 1 }
                    again = await it.next()
                }
                return "took \(taken) (< 1000: \(taken < 1_000)), then \(String(describing: again))"
            }
            #expect(outcome.hasSuffix("(< 1000: true), then nil"), "bounded \(bounded): \(outcome)")
        }
    }

    @Test("broadcast: after nil in a cancelled task, next() stays nil with values unread")
    func broadcastStaysEnded() throws {
        let outcome = inCancelledTask {
            let (tx, rx) = Broadcast.channel(of: Int.self, capacity: 1_024)
            for i in 0..<1_000 { _ = try? tx.send(i) }
            var it = rx.makeAsyncIterator()
            var taken = 0
            while (try? await it.next()) ?? nil != nil { taken += 1 }
            let again = try? await it.next()
            return "took \(taken) (< 1000: \(taken < 1_000)), then \(String(describing: again))"
        }
        #expect(outcome.hasSuffix("(< 1000: true), then nil"), "\(outcome)")
    }

    @Test("watch changes: after nil in a cancelled task, next() stays nil with a change pending")
    func watchStaysEnded() throws {
        let outcome = inCancelledTask {
            let (tx, rx) = Watch.channel(initial: 0)
            var it = rx.changes.makeAsyncIterator()
            var taken = 0
            while true {
                tx.sendReplace(taken + 1)
                guard await it.next() != nil else { break }
                taken += 1
                if taken == 10_000 { break }
            }
            tx.sendReplace(-1)
            let again = await it.next()
            return "took \(taken) (< 10000: \(taken < 10_000)), then \(String(describing: again))"
        }
        #expect(outcome.hasSuffix("(< 10000: true), then nil"), "\(outcome)")
    }
}
