// The shared core of bounded and unbounded mpsc channels: the storage class.
//
// What it is: one `Mutex<MpscStateMachine>` (ring buffer, parked receiver, counts) plus a permit
// policy (`BoundedPermits` over a fair `BatchSemaphore`, or `UnboundedPermits`). The fronts
// (`Mpsc.Sender`, `Mpsc.UnboundedSender`, the receivers, `Mpsc.Permit`) are thin wrappers.
//
// Protocol:
// - Send: take a permit (`tryAcquire`, else wait in the semaphore's FIFO queue), then `push` under
//   the lock. `push` hands the message straight to a parked receiver, or buffers it. The fast path
//   is one lock round trip on the semaphore and one on the channel; no continuation is created
//   unless somebody must wait, and nothing is allocated per message.
// - Receive: `receive` under the lock pops a message (then its permit is released). If the buffer
//   is empty it hands out a waiter id, and the receiver parks with a single continuation; see
//   `MpscStateMachine` for the parking and cancellation protocol.
// - Close: the receiver's `close()` or deinit flips the receiver state, closes the permit policy
//   (waiting senders fail with their value) and resumes `Sender.closed()` waiters. On deinit the
//   buffered messages are moved out under the lock and released after unlocking.
// - End of stream: the last sender's deinit (or the last outstanding reservation) resumes a
//   parked receiver with `.closed`.
//
// Races considered: a permit acquired while the receiver closes (the push is rejected and the
// permit returned: the value goes back to the caller); a send cancelled while it waits for a
// permit (the semaphore removes the waiter; the value goes back as `.cancelled`; if the permit was
// granted at that moment, the semaphore passes it on to the next waiter and the send still throws
// `.cancelled` with its value: nothing is sent and no capacity is lost); a receive cancelled at the moment a
// message is handed over (the message is returned: delivered exactly once).
//
// Why correct: each message is moved exactly once, either into the buffer or into the parked
// receiver's continuation, under the lock; it leaves the buffer only under the lock. Every
// continuation is removed from the state before it is resumed, so it is resumed exactly once.

import KyotoExecutor
import Synchronization

@usableFromInline
final class MpscChannel<Element: Sendable, Permits: MpscPermitPolicy>: Sendable {
    // MARK: Immutable after init (any thread)
    @usableFromInline
    let permits: Permits

    // MARK: Lock-guarded state
    @usableFromInline
    let state: CheckedMutex<MpscStateMachine<Element>>

    // MARK: Atomics (any thread)
    /// Senders and reservers currently inside `permits.acquire()`: diagnostics and tests only.
    @usableFromInline
    let waitingForCapacity = Atomic<Int>(0)

    @inlinable
    init(permits: Permits, initialBufferCapacity: Int) {
        self.permits = permits
        self.state = CheckedMutex(MpscStateMachine(initialBufferCapacity: initialBufferCapacity))
    }

    // MARK: Sending

    /// Enqueues `value` under the lock and performs the resulting action. Returns the value if the
    /// channel rejected it.
    @inlinable
    func push(_ value: Element, reserved: Bool) -> Element? {
        let action = state.withLock { $0.push(value, reserved: reserved) }
        switch action {
        case .resumeReceiver(let continuation, let element):
            continuation.resume(returning: .element(element))
            return nil
        case .none:
            return nil
        case .reject(let element):
            return element
        }
    }

    /// Takes one permit, waiting for capacity while the channel is full. Returns the outcome (`.acquired`,
    /// `.closed` or `.cancelled`; the waiting `acquire()` never answers `.unavailable`) and whether the caller
    /// had to wait (a caller that did not wait spends cooperative budget afterwards).
    @inlinable
    nonisolated(nonsending) func acquirePermit() async -> (outcome: PermitAcquisition, waited: Bool) {
        switch permits.tryAcquire() {
        case .acquired:
            return (.acquired, false)
        case .closed, .cancelled:
            return (.closed, false)
        case .unavailable:
            // Relaxed: a diagnostic count; it orders nothing and pairs with nothing.
            waitingForCapacity.add(1, ordering: .relaxed)
            let acquisition = await permits.acquire()
            // Relaxed: see the increment above.
            waitingForCapacity.subtract(1, ordering: .relaxed)
            return (acquisition, true)
        }
    }

    /// Sends `value`, waiting for capacity while the channel is full.
    @inlinable
    nonisolated(nonsending) func send(_ value: Element) async throws(SendError<Element>) {
        let (outcome, waited) = await acquirePermit()
        switch outcome {
        case .acquired, .unavailable: break
        case .closed: throw .closed(value)
        case .cancelled: throw .cancelled(value)
        }
        if let rejected = pushWithPermit(value) { throw .closed(rejected) }
        if !waited { await consumeBudget() }
    }

    /// Sends `value`, waiting at most `duration` for capacity. The wait for a permit runs as `timeout`'s
    /// body (a child task); a permit it takes is a count, so the caller pushes with it once the body returns.
    /// A body that returns holds its permit, and `timeout` then returns normally too, even if the deadline
    /// passed meanwhile. A permit granted just as the body is cancelled (deadline or caller) is released by
    /// the semaphore, which passes it on, and the body throws. Either way no permit is taken without its
    /// value being pushed or the permit given back.
    nonisolated(nonsending) func send(
        _ value: Element, timeout duration: Duration
    ) async throws(SendTimeoutError<Element>) {
        switch permits.tryAcquire() {
        case .acquired:
            if let rejected = pushWithPermit(value) { throw .closed(rejected) }
            await consumeBudget()
            return
        case .closed, .cancelled:
            throw .closed(value)
        case .unavailable:
            break
        }
        do {
            try await KyotoExecutor.timeout(after: duration) { [self] () async throws in
                switch await acquirePermit().outcome {
                case .acquired, .unavailable: return
                case .closed: throw Mpsc.ReserveError.closed
                case .cancelled: throw Mpsc.ReserveError.cancelled
                }
            }
        } catch is TimeoutError {
            throw .timeout(value)
        } catch Mpsc.ReserveError.closed {
            throw .closed(value)
        } catch {
            throw .cancelled(value)
        }
        if let rejected = pushWithPermit(value) { throw .closed(rejected) }
    }

    /// Sends `value` if a permit is free right now.
    @inlinable
    func trySend(_ value: Element) throws(TrySendError<Element>) {
        switch permits.tryAcquire() {
        case .acquired:
            if let rejected = pushWithPermit(value) { throw .closed(rejected) }
        case .unavailable:
            throw .full(value)
        case .closed, .cancelled:
            throw .closed(value)
        }
    }

    /// Takes a permit and records it as an outstanding reservation.
    @inlinable
    nonisolated(nonsending) func reserve() async throws(Mpsc.ReserveError) {
        let (outcome, waited) = await acquirePermit()
        switch outcome {
        case .acquired, .unavailable: break
        case .closed: throw .closed
        case .cancelled: throw .cancelled
        }
        guard recordReservation() else { throw .closed }
        if !waited { await consumeBudget() }
    }

    /// Takes a permit and records it as an outstanding reservation if one is free right now.
    @inlinable
    func tryReserve() throws(Mpsc.TryReserveError) {
        switch permits.tryAcquire() {
        case .acquired:
            break
        case .unavailable:
            throw .full
        case .closed, .cancelled:
            throw .closed
        }
        guard recordReservation() else { throw .closed }
    }

    /// Pushes `value` with the permit the caller took. If the channel rejects it (the receiver is gone), gives
    /// the permit back and returns the value.
    @inlinable
    func pushWithPermit(_ value: Element) -> Element? {
        guard let rejected = push(value, reserved: false) else { return nil }
        permits.release(1)
        return rejected
    }

    /// Records the permit the caller took as an outstanding reservation. False, with the permit given back,
    /// if the receiver is gone.
    @inlinable
    func recordReservation() -> Bool {
        switch state.withLock({ $0.reserve() }) {
        case .reserved:
            return true
        case .reject:
            permits.release(1)
            return false
        }
    }

    /// Sends through an outstanding reservation. A value sent after the receiver was dropped is
    /// released, like any message buffered at that moment.
    @inlinable
    func sendReserved(_ value: Element) {
        if push(value, reserved: true) != nil {
            permits.release(1)
        }
    }

    /// Gives an unused reservation back.
    @inlinable
    func releaseReservation() {
        let receiver = state.withLock { $0.releaseReservation() }
        permits.release(1)
        receiver?.resume(returning: .closed)
    }

    /// A sender handle was deinitialized.
    @inlinable
    func dropSender() {
        let receiver = state.withLock { $0.dropSender() }
        receiver?.resume(returning: .closed)
    }

    /// Waits until the receiver closes the channel or goes away.
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

    /// Whether the receiver closed the channel or went away.
    @inlinable
    var isClosedForSenders: Bool { state.withLock { $0.receiverState != .open } }

    // MARK: Receiving

    /// Receives the next message, or `nil` at the end of the stream.
    @inlinable
    nonisolated(nonsending) func receive() async throws(CancellationError) -> Element? {
        // Budget first, holding nothing; given back if the receive waits (see `_budgetProceed`).
        let budget = await _budgetProceed()
        if budget == .cancelled { throw CancellationError() }
        let id: UInt64
        switch state.withLock({ $0.receive() }) {
        case .element(let element):
            permits.release(1)
            return element
        case .closed:
            return nil
        case .suspend(let waiterID):
            if budget == .charged { _budgetRefund() }
            id = waiterID
        }
        switch await parkReceiver(id: id) {
        case .element(let element):
            permits.release(1)
            return element
        case .closed:
            return nil
        case .cancelled:
            throw CancellationError()
        }
    }

    /// Appends up to `limit` messages to `output`, waiting for at least one; returns how many were
    /// appended (0 only at the end of the stream or when `limit` is 0).
    @inlinable
    nonisolated(nonsending) func receiveMany(into output: inout [Element], limit: Int) async throws(CancellationError) -> Int {
        // A negative limit would otherwise return 0, which callers read as the end of the stream.
        kyotoPrecondition(limit >= 0, "BUG DETECTED: an mpsc receive of many messages was given a negative limit (\(limit))")
        guard limit > 0 else { return 0 }
        // Budget first, holding nothing; given back if the receive waits (see `_budgetProceed`).
        let budget = await _budgetProceed()
        if budget == .cancelled { throw CancellationError() }
        let id: UInt64
        switch state.withLock({ $0.receiveMany(into: &output, limit: limit) }) {
        case .received(let count):
            permits.release(count)
            return count
        case .closed:
            return 0
        case .suspend(let waiterID):
            if budget == .charged { _budgetRefund() }
            id = waiterID
        }
        switch await parkReceiver(id: id) {
        case .element(let element):
            output.append(element)
            var count = 1
            if limit > 1 { count += state.withLock { $0.takeBuffered(into: &output, limit: limit - 1) } }
            permits.release(count)
            return count
        case .closed:
            return 0
        case .cancelled:
            throw CancellationError()
        }
    }

    @inlinable
    nonisolated(nonsending) func parkReceiver(id: UInt64) async -> MpscReceiveOutcome<Element> {
        await _withCancellableContinuation({ (continuation: UnsafeContinuation<MpscReceiveOutcome<Element>, Never>) in
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
    }

    /// Takes the next message without waiting.
    @inlinable
    func tryReceive() throws(Mpsc.TryRecvError) -> Element {
        switch state.withLock({ $0.tryReceive() }) {
        case .element(let element):
            permits.release(1)
            return element
        case .empty:
            throw .empty
        case .disconnected:
            throw .disconnected
        }
    }

    /// The receiver called `close()`.
    @usableFromInline
    func closeReceiver() {
        let action = state.withLock { $0.closeReceiver() }
        finishClose(action)
    }

    /// The receiver was deinitialized.
    @usableFromInline
    func dropReceiver() {
        let action = state.withLock { $0.dropReceiver() }
        let dropped = action.droppedCount
        finishClose(action)
        // The dropped messages' slots are free again (as Tokio's receiver drop adds a permit per message), so
        // `Sender.capacity` reads the full capacity, not the capacity minus what was buffered at the drop.
        permits.release(dropped)
    }

    @usableFromInline
    func finishClose(_ action: consuming MpscStateMachine<Element>.CloseAction) {
        if action.closePermits { permits.close() }
        action.receiver?.resume(returning: .closed)
        for waiter in action.closedWaiters { waiter.resume(returning: true) }
        // Buffered messages (if any) are released here, after the lock, when `action` ends.
    }

    /// Whether no message is buffered.
    @inlinable
    var isEmpty: Bool { state.withLock { $0.buffer.isEmpty } }

    /// The number of buffered messages.
    @inlinable
    var count: Int { state.withLock { $0.buffer.count } }

    /// Whether no further message can be sent: every sender is gone or the receiver closed.
    @inlinable
    var isClosedForReceiver: Bool {
        state.withLock { $0.senderCount == 0 || $0.receiverState != .open }
    }
}
