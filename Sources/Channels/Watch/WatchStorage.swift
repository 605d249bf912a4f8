// The storage of a watch channel: `Mutex<WatchStateMachine>` plus the code that performs its
// actions after unlocking. See `WatchStateMachine` for the protocol.

import KyotoExecutor
import Synchronization

final class WatchStorage<Value: Sendable>: Sendable {
    typealias WaiterContinuation = UnsafeContinuation<Bool, Never>

    let state: CheckedMutex<WatchStateMachine<Value>>

    init(initial: Value) {
        self.state = CheckedMutex(WatchStateMachine(initial: initial))
    }

    private func wake(_ waiters: [WaiterContinuation]) {
        for waiter in waiters { waiter.resume(returning: true) }
    }

    // MARK: Sender side

    func send(_ value: Value) throws(SendError<Value>) {
        switch state.withLock({ $0.send(value) }) {
        case .wake(let displaced, let waiters):
            wake(waiters)
            // Released here, after unlocking (its deinit may lock this channel again).
            _ = consume displaced
        case .reject(let value): throw .closed(value)
        }
    }

    func sendReplace(_ value: Value) -> Value {
        let (old, waiters) = state.withLock { $0.sendReplace(value) }
        wake(waiters)
        return old
    }

    func sendIfModified(_ body: (inout Value) -> Bool) -> Bool {
        let (modified, waiters) = state.withLock { $0.sendIfModified(body) }
        wake(waiters)
        return modified
    }

    func dropSender() {
        wake(state.withLock { $0.dropSender() })
    }

    var current: Value { state.withLock { $0.value } }
    var receiverCount: Int { state.withLock { $0.receiverCount } }
    var isSenderAlive: Bool { state.withLock { $0.senderAlive } }

    nonisolated(nonsending) func waitClosed() async throws(CancellationError) {
        let id: UInt64
        switch state.withLock({ $0.waitClosed() }) {
        case .closed:
            await consumeBudget()
            return
        case .suspend(let waiterID):
            id = waiterID
        }
        let closed = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: WaiterContinuation) in
                let immediate = state.withLock {
                    $0.parkClosedWaiter(id: id, continuation: continuation, isCancelled: Task.isCancelled)
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            state.withLock { $0.cancelClosedWaiter(id: id) }?.resume(returning: false)
        }
        if !closed { throw CancellationError() }
    }

    // MARK: Receiver side

    func subscribe(seenVersion: UInt64? = nil) -> UInt64 {
        state.withLock { $0.subscribe(seenVersion: seenVersion) }
    }

    func unsubscribe(_ receiver: UInt64) {
        wake(state.withLock { $0.unsubscribe(receiver) })
    }

    func seenVersion(of receiver: UInt64) -> UInt64 {
        state.withLock { $0.seenVersion(of: receiver) }
    }

    /// Waits for a version newer than the seen one, marks it seen and returns its value.
    nonisolated(nonsending) func changed(_ receiver: UInt64) async throws(Watch.RecvError) -> Value {
        var suspended = false
        while true {
            let waiter: UInt64
            switch state.withLock({ $0.changed(receiver) }) {
            case .changed(let value):
                if !suspended { await consumeBudget() }
                return value
            case .closed:
                if !suspended { await consumeBudget() }
                throw .closed
            case .suspend(let id):
                waiter = id
            }
            suspended = true
            let woken = await park(waiter: waiter) { machine, continuation, isCancelled in
                machine.park(receiver: receiver, waiter: waiter, continuation: continuation, isCancelled: isCancelled)
            }
            if !woken { throw .cancelled }
        }
    }

    /// Waits until `predicate` holds for the current value; marks that version seen.
    nonisolated(nonsending) func wait(_ receiver: UInt64, for predicate: (Value) -> Bool) async throws(Watch.RecvError) -> Value {
        var suspended = false
        while true {
            let snapshot = state.withLock { $0.snapshot() }
            if predicate(snapshot.value) {
                state.withLock { $0.markSeen(receiver, version: snapshot.version) }
                if !suspended { await consumeBudget() }
                return snapshot.value
            }
            if !snapshot.senderAlive {
                if !suspended { await consumeBudget() }
                throw .closed
            }
            let waiter = state.withLock { $0.makeWaiterID() }
            suspended = true
            let woken = await park(waiter: waiter) { machine, continuation, isCancelled in
                machine.parkUntilNewer(
                    than: snapshot.version,
                    waiter: waiter,
                    continuation: continuation,
                    isCancelled: isCancelled
                )
            }
            if !woken { throw .cancelled }
        }
    }

    private func park(
        waiter: UInt64,
        _ register: (inout WatchStateMachine<Value>, WaiterContinuation, Bool) -> Bool?
    ) async -> Bool {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: WaiterContinuation) in
                let immediate = state.withLock { register(&$0, continuation, Task.isCancelled) }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            state.withLock { $0.cancelWaiter(waiter) }?.resume(returning: false)
        }
    }

    func hasChanged(_ receiver: UInt64) -> Bool? { state.withLock { $0.hasChanged(receiver) } }
    func borrowAndUpdate(_ receiver: UInt64) -> Value { state.withLock { $0.borrowAndUpdate(receiver) } }
    func markChanged(_ receiver: UInt64) { state.withLock { $0.markChanged(receiver) } }
    func markUnchanged(_ receiver: UInt64) { state.withLock { $0.markUnchanged(receiver) } }
}
