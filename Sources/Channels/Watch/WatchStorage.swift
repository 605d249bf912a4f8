// The storage of a watch channel: `Mutex<WatchStateMachine>` plus the code that performs its
// actions after unlocking. See `WatchStateMachine` for the protocol.

import KyotoExecutor
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

final class WatchStorage<Value: Sendable>: Sendable {
    typealias WaiterContinuation = UnsafeContinuation<Bool, Never>

    /// The channel's state. Its own code takes the lock through `locked`; tests read it directly.
    let state: CheckedMutex<WatchStateMachine<Value>>

    /// The thread running a `sendModify`/`sendIfModified` body under the lock, or 0. Relaxed accesses: a
    /// thread finds its own id here only if it stored it itself (nobody else stores it), and its own store
    /// is visible to it in program order; another thread's id, stale or not, never equals the reader's.
    private let modifyingThread = Atomic<UInt>(0)

    init(initial: Value) {
        self.state = CheckedMutex(WatchStateMachine(initial: initial))
    }


    /// Takes the channel's lock, trapping first if this thread already holds it to run a modify closure:
    /// the lock is not recursive, and the thread would otherwise wait for itself for ever.
    private func locked<R>(_ body: (inout sending WatchStateMachine<Value>) -> sending R) -> sending R {
        // Relaxed: see `modifyingThread`.
        kyotoPrecondition(
            modifyingThread.load(ordering: .relaxed) != kyotoCurrentThreadIdentity(),
            "BUG DETECTED: a watch channel was used inside its own sendModify/sendIfModified closure (which runs "
                + "under the channel's lock), directly or through a deinit or cancellation handler it triggered")
        return state.withLock(body)
    }

    private func wake(_ waiters: [WaiterContinuation]) {
        for waiter in waiters { waiter.resume(returning: true) }
    }

    // MARK: Sender side

    func send(_ value: Value) throws(SendError<Value>) {
        switch locked({ $0.send(value) }) {
        case .wake(let displaced, let waiters):
            wake(waiters)
            // Released here, after unlocking (its deinit may lock this channel again).
            _ = consume displaced
        case .reject(let value): throw .closed(value)
        }
    }

    func sendReplace(_ value: Value) -> Value {
        let (old, waiters) = locked { $0.sendReplace(value) }
        wake(waiters)
        return old
    }

    func sendIfModified(_ body: (inout Value) -> Bool) -> Bool {
        let (modified, waiters) = locked { machine in
            // `body` runs under the lock: mark this thread so that any use of this channel from inside it
            // traps instead of deadlocking (see `locked`). Relaxed: see `modifyingThread`.
            modifyingThread.store(kyotoCurrentThreadIdentity(), ordering: .relaxed)
            defer { modifyingThread.store(0, ordering: .relaxed) }
            return machine.sendIfModified(body)
        }
        wake(waiters)
        return modified
    }

    func dropSender() {
        wake(locked { $0.dropSender() })
    }

    var current: Value { locked { $0.value } }
    var receiverCount: Int { locked { $0.receiverCount } }
    var isSenderAlive: Bool { locked { $0.senderAlive } }

    nonisolated(nonsending) func waitClosed() async throws(CancellationError) {
        let id: UInt64
        switch locked({ $0.waitClosed() }) {
        case .closed:
            await consumeBudget()
            return
        case .suspend(let waiterID):
            id = waiterID
        }
        let closed = await _withCancellableContinuation({ (continuation: WaiterContinuation) in
            let immediate = locked {
                $0.parkClosedWaiter(id: id, continuation: continuation, isCancelled: Task.isCancelled)
            }
            if let immediate { continuation.resume(returning: immediate) }
        }, onCancel: {
            locked { $0.cancelClosedWaiter(id: id) }?.resume(returning: false)
        })
        if !closed { throw CancellationError() }
    }

    // MARK: Receiver side

    func subscribe(seenVersion: UInt64? = nil) -> UInt64 {
        locked { $0.subscribe(seenVersion: seenVersion) }
    }

    func unsubscribe(_ receiver: UInt64) {
        wake(locked { $0.unsubscribe(receiver) })
    }

    func seenVersion(of receiver: UInt64) -> UInt64 {
        locked { $0.seenVersion(of: receiver) }
    }

    /// Waits for a version newer than the seen one, marks it seen and returns its value.
    /// `parked` is the receiver's flag (ConsumerFlag.swift): set while this call has parked.
    nonisolated(nonsending) func changed(
        _ receiver: UInt64, parked: borrowing Atomic<Bool>
    ) async throws(Watch.RecvError) -> Value {
        // Budget first, holding nothing; given back if the call waits (see `_budgetProceed`).
        var budget = await _budgetProceed()
        if budget == .cancelled { throw .cancelled }
        var hasParked = false
        defer { if hasParked { parked.endParkedReceive() } }
        while true {
            let waiter: UInt64
            switch locked({ $0.changed(receiver) }) {
            case .changed(let value):
                return value
            case .closed:
                throw .closed
            case .suspend(let id):
                if budget == .charged { _budgetRefund() }
                budget = .uncharged
                waiter = id
                if !hasParked {
                    parked.beginParkedReceive(misuse: Self.sharedReceiverMisuse)
                    hasParked = true
                }
            }
            let woken = await park(waiter: waiter) { machine, continuation, isCancelled in
                machine.park(receiver: receiver, waiter: waiter, continuation: continuation, isCancelled: isCancelled)
            }
            if !woken { throw .cancelled }
        }
    }

    /// Waits until `predicate` holds for the current value; marks every version it checked seen.
    nonisolated(nonsending) func wait(
        _ receiver: UInt64, parked: borrowing Atomic<Bool>, for predicate: (Value) -> Bool
    ) async throws(Watch.RecvError) -> Value {
        var suspended = false
        defer { if suspended { parked.endParkedReceive() } }
        while true {
            let snapshot = locked { $0.snapshot() }
            let holds = predicate(snapshot.value)
            // Every value the predicate saw is marked seen, whatever it answered (as Tokio's `wait_for`): after
            // a cancelled or closed wait, `changed()` does not report a value the predicate already rejected.
            locked { $0.markSeen(receiver, version: snapshot.version) }
            if holds {
                if !suspended { await consumeBudget() }
                return snapshot.value
            }
            if !snapshot.senderAlive {
                if !suspended { await consumeBudget() }
                throw .closed
            }
            let waiter = locked { $0.makeWaiterID() }
            if !suspended { parked.beginParkedReceive(misuse: Self.sharedReceiverMisuse) }
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

    /// The trap of a second task waiting on one receiver (ConsumerFlag.swift).
    static var sharedReceiverMisuse: String {
        "BUG DETECTED: two tasks are waiting on the same Watch.Receiver at once (changed() or wait(for:)); it has a "
            + "single consumer (give each task its own receiver: clone() or Sender.subscribe())"
    }

    /// Parks until woken or cancelled, on the caller's executor (no hop before the registration).
    private nonisolated(nonsending) func park(
        waiter: UInt64,
        _ register: (inout WatchStateMachine<Value>, WaiterContinuation, Bool) -> Bool?
    ) async -> Bool {
        await _withCancellableContinuation({ (continuation: WaiterContinuation) in
            let immediate = locked { register(&$0, continuation, Task.isCancelled) }
            if let immediate { continuation.resume(returning: immediate) }
        }, onCancel: {
            locked { $0.cancelWaiter(waiter) }?.resume(returning: false)
        })
    }

    func hasChanged(_ receiver: UInt64) -> Bool? { locked { $0.hasChanged(receiver) } }
    func borrowAndUpdate(_ receiver: UInt64) -> Value { locked { $0.borrowAndUpdate(receiver) } }
    func markChanged(_ receiver: UInt64) { locked { $0.markChanged(receiver) } }
    func markUnchanged(_ receiver: UInt64) { locked { $0.markUnchanged(receiver) } }
}
