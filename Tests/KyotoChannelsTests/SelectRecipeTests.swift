// The README's `select!` recipe (section "Coming from Tokio"), run as written: a receive loop that also
// waits for a stop signal, with the losing branch's result kept.

import KyotoExecutor
import Testing

@testable import KyotoChannels

/// What one round of the recipe's select produced.
private enum Event: Sendable {
    case message(Int?)
    case stop
    case cancelled
}

/// The recipe: waits for whichever comes first, a message (or the end of the stream) or a stop signal, and
/// returns every branch's outcome; a losing branch may have completed before it was cancelled.
private func nextEvents(_ rx: Mpsc.Receiver<Int>, _ stop: Watch.Receiver<Bool>) async -> [Event] {
    await withTaskGroup(of: Event.self) { group in
        group.addTask {
            do throws(Watch.RecvError) {
                try await stop.changed()
                return .stop
            } catch {
                return error == .cancelled ? .cancelled : .stop  // .closed: nobody can send a stop any more
            }
        }
        group.addTask {
            do { return .message(try await rx.recv()) } catch { return .cancelled }
        }
        var events: [Event] = []
        for await event in group {
            events.append(event)
            group.cancelAll()  // the first result wins; the other branch is cancelled...
        }
        return events  // ...but may have finished first: keep what it returned (no message is lost)
    }
}

@Suite("README select recipe")
struct SelectRecipeTests {
    @Test("a receive loop racing a stop signal: every message arrives once, in order, none lost to a losing branch",
          arguments: [Runtime.Configuration.Flavor.multiThread, .currentThread])
    func receiveUntilStopped(_ flavor: Runtime.Configuration.Flavor) async throws {
        let seed = stressSeed()
        let runtime = Runtime(Runtime.Configuration(flavor: flavor))
        let rounds = isThreadSanitizerEnabled ? 40 : 400
        let perRound = 40
        let outcome = await blockOnOwnThread(runtime, seconds: 60, "select recipe (seed \(seed))") {
            () async -> [String] in
            var rng = SplitMix64(seed: seed)
            var failures: [String] = []
            for round in 0..<rounds {
                let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 4)
                let (stopTx, stop) = Watch.channel(initial: false)
                // The stop lands somewhere in the stream, so it races the receives.
                let stopAfter = Int.random(in: 0..<perRound, using: &rng)
                spawn {
                    for i in 0..<perRound {
                        try await tx.send(i)
                        if i == stopAfter { try? stopTx.send(true) }
                    }
                }
                _ = consume tx
                var received: [Int] = []
                var running = true
                while running {
                    for event in await nextEvents(rx, stop) {
                        switch event {
                        case .message(let m?): received.append(m)
                        case .message(nil), .stop: running = false
                        case .cancelled: break
                        }
                    }
                }
                // After the stop, this loop drains the rest of the stream.
                while let m = try? await rx.recv() { received.append(m) }
                if received != Array(0..<perRound) {
                    failures.append("round \(round): \(received)")
                }
            }
            return failures
        }
        runtime.shutdown(timeout: .seconds(5))
        #expect(outcome == [], "seed \(seed)")
    }
}
