// The storage of a broadcast channel: `Mutex<BroadcastStateMachine>` plus the code that performs
// its actions after unlocking. See `BroadcastStateMachine` for the protocol.

import KyotoExecutor
import Synchronization

final class BroadcastStorage<Element: Sendable>: Sendable {
    let state: CheckedMutex<BroadcastStateMachine<Element>>

    init(capacity: Int) {
        self.state = CheckedMutex(BroadcastStateMachine(capacity: capacity))
    }

    func send(_ value: Element) throws(SendError<Element>) -> Int {
        switch state.withLock({ $0.send(value) }) {
        case .wake(let waiters, let receivers, _):
            for waiter in waiters { waiter.resume(returning: true) }
            return receivers
        case .reject(let value):
            throw .closed(value)
        }
    }

    func dropSender() {
        let waiters = state.withLock { $0.dropSender() }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    func subscribe() -> UInt64 {
        state.withLock { $0.subscribe() }
    }

    func unsubscribe(_ receiver: UInt64) {
        let released = state.withLock { $0.unsubscribe(receiver) }
        _ = consume released
    }

    /// `parked` is the receiver's flag (ConsumerFlag.swift): set while this receive has parked.
    nonisolated(nonsending) func receive(
        _ receiver: UInt64, parked: borrowing Atomic<Bool>
    ) async throws(Broadcast.RecvError) -> Element {
        // Budget first, holding nothing; given back if the call waits (see `_budgetProceed`).
        var budget = await _budgetProceed()
        if budget == .cancelled { throw .cancelled }
        var hasParked = false
        defer { if hasParked { parked.endParkedReceive() } }
        while true {
            let waiter: UInt64
            switch state.withLock({ $0.receive(receiver) }) {
            case .value(let value):
                return value
            case .lagged(let count):
                throw .lagged(count)
            case .closed:
                throw .closed
            case .suspend(let id):
                if budget == .charged { _budgetRefund() }
                budget = .uncharged
                waiter = id
                if !hasParked {
                    parked.beginParkedReceive(
                        misuse: "BUG DETECTED: two tasks are receiving from the same Broadcast.Receiver at once; it "
                            + "has a single consumer (give each task its own receiver: resubscribe() or "
                            + "Sender.subscribe())")
                    hasParked = true
                }
            }
            let woken = await _withCancellableContinuation({ (continuation: UnsafeContinuation<Bool, Never>) in
                let immediate = state.withLock {
                    $0.park(
                        receiver: receiver,
                        waiter: waiter,
                        continuation: continuation,
                        isCancelled: Task.isCancelled
                    )
                }
                if let immediate { continuation.resume(returning: immediate) }
            }, onCancel: {
                state.withLock { $0.cancelWaiter(waiter) }?.resume(returning: false)
            })
            if !woken { throw .cancelled }
        }
    }

    func tryReceive(_ receiver: UInt64) throws(Broadcast.TryRecvError) -> Element {
        switch state.withLock({ $0.tryReceive(receiver) }) {
        case .value(let value): return value
        case .lagged(let count): throw .lagged(count)
        case .closed: throw .closed
        case .empty: throw .empty
        }
    }

    var receiverCount: Int { state.withLock { $0.receiverCount } }
    var queued: Int { state.withLock { $0.queued } }
    func unread(by receiver: UInt64) -> Int { state.withLock { $0.unread(by: receiver) } }
    var isSenderAlive: Bool { state.withLock { $0.senderAlive } }
}
