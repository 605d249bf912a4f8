// The storage of a oneshot channel: a `Mutex<OneshotStateMachine>` and the code that performs the
// machine's actions (resuming continuations) after the lock is released. See
// `OneshotStateMachine` for the protocol and races.

import KyotoExecutor
import Synchronization

@usableFromInline
final class OneshotStorage<Value: Sendable>: Sendable {
    @usableFromInline
    let state = CheckedMutex(OneshotStateMachine<Value>())

    @inlinable
    init() {}

    @inlinable
    func send(_ value: Value) throws(SendError<Value>) {
        switch state.withLock({ $0.send(value) }) {
        case .resumeReceiver(let continuation, let value):
            continuation.resume(returning: .value(value))
        case .none:
            break
        case .reject(let value):
            throw .closed(value)
        }
    }

    @inlinable
    func dropSender() {
        state.withLock { $0.dropSender() }?.resume(returning: .closed)
    }

    @inlinable
    nonisolated(nonsending) func receive() async throws(Oneshot.RecvError) -> Value {
        let id: UInt64
        switch state.withLock({ $0.receive() }) {
        case .value(let value):
            await consumeBudget()
            return value
        case .closed:
            await consumeBudget()
            throw .closed
        case .suspend(let waiterID):
            id = waiterID
        }
        let outcome = await _withCancellableContinuation({ (continuation: OneshotStateMachine<Value>.ReceiverContinuation) in
            let action = state.withLock {
                $0.park(id: id, continuation: continuation, isCancelled: Task.isCancelled)
            }
            switch action {
            case .resume(let continuation, let outcome): continuation.resume(returning: outcome)
            case .none: break
            }
        }, onCancel: {
            state.withLock { $0.cancelReceive(id: id) }?.resume(returning: .cancelled)
        })
        switch outcome {
        case .value(let value): return value
        case .closed: throw .closed
        case .cancelled: throw .cancelled
        }
    }

    @inlinable
    func tryReceive() throws(Oneshot.TryRecvError) -> Value {
        switch state.withLock({ $0.tryReceive() }) {
        case .value(let value): return value
        case .empty: throw .empty
        case .closed: throw .closed
        }
    }

    @inlinable
    func closeReceiver() {
        perform(state.withLock { $0.closeReceiver() })
    }

    @inlinable
    func dropReceiver() {
        perform(state.withLock { $0.dropReceiver() })
    }

    @inlinable
    func perform(_ action: OneshotStateMachine<Value>.CloseAction) {
        action.receiver?.resume(returning: .closed)
        for waiter in action.closedWaiters { waiter.resume(returning: true) }
        // A dropped value is released when `action` goes away, after the lock.
    }

    @inlinable
    nonisolated(nonsending) func waitClosed() async throws(CancellationError) {
        let id: UInt64
        switch state.withLock({ $0.waitClosed() }) {
        case .closed:
            await consumeBudget()
            return
        case .suspend(let waiterID):
            id = waiterID
        }
        let closed = await _withCancellableContinuation({ (continuation: UnsafeContinuation<Bool, Never>) in
            let immediate = state.withLock {
                $0.parkClosedWaiter(id: id, continuation: continuation, isCancelled: Task.isCancelled)
            }
            if let immediate { continuation.resume(returning: immediate) }
        }, onCancel: {
            state.withLock { $0.cancelClosedWaiter(id: id) }?.resume(returning: false)
        })
        if !closed { throw CancellationError() }
    }

    @inlinable
    var isClosedForSender: Bool { state.withLock { $0.receiverState != .open } }
}
