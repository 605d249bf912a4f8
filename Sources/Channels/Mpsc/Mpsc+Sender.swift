// The sending fronts of mpsc channels: thin wrappers over `MpscChannel`.
//
// A sender is a final class shared by reference; the channel counts sender objects, not
// references to them. When the last sender object is deinitialized (together with every
// outstanding `Permit`) the receiver sees the end of the stream once it drained the buffer.

import KyotoExecutor

/// Extends the namespace with the sending handles.
extension Mpsc {
    /// The sending half of a bounded channel. Share it by reference between tasks.
    public final class Sender<Element: Sendable>: Sendable {
        @usableFromInline
        let core: MpscChannel<Element, BoundedPermits>

        @usableFromInline

        init(core: MpscChannel<Element, BoundedPermits>) {
            self.core = core
        }

        deinit {
            core.dropSender()
        }

        /// Sends `value`, waiting while the channel is full.
        ///
        /// Waiting senders are served in the order they started waiting. Throws `.closed(value)` if
        /// the receiver closed the channel or is gone, and `.cancelled(value)` if the task was
        /// cancelled while waiting; in both cases the value was not sent. A successful return does
        /// not mean the value will be received (the receiver may be dropped first).
        @inlinable
        public nonisolated(nonsending) func send(_ value: Element) async throws(SendError<Element>) {
            try await core.send(value)
        }

        /// Sends `value`, waiting at most `duration` while the channel is full (Tokio's `send_timeout`).
        ///
        /// When the time passes first this throws `.timeout(value)`: the value comes back, which a
        /// ``send(_:)`` wrapped in `timeout(after:_:)` cannot do (the cancelled send's value goes down with
        /// its error). A free slot is taken at once, without a timer; a wait runs as a child task beside a
        /// timer, on the calling runtime's clock (a paused clock too), or the continuous clock outside a
        /// runtime. Capacity granted just as the deadline passes may be passed on to the next waiting sender
        /// instead (the wait sees its cancellation first): the send then reports `.timeout(value)`; the value
        /// is never lost. Throws `.closed(value)` if the receiver closed the channel or is gone, and
        /// `.cancelled(value)` if the calling task was cancelled while waiting.
        ///
        /// ```swift
        /// do {
        ///     try await tx.send(job, timeout: .milliseconds(50))
        /// } catch .timeout(let job) {
        ///     shed(job)  // the consumer is behind; the job is still ours
        /// }
        /// ```
        public nonisolated(nonsending) func send(
            _ value: Element, timeout duration: Duration
        ) async throws(SendTimeoutError<Element>) {
            try await core.send(value, timeout: duration)
        }

        /// Sends `value` if the channel has free capacity right now; never waits.
        @inlinable
        public func trySend(_ value: Element) throws(TrySendError<Element>) {
            try core.trySend(value)
        }

        /// Sends `value` from synchronous code, blocking the calling thread while the channel is full
        /// (Tokio's `blocking_send`): for a `spawnBlocking` closure, a task's own `blockInPlace` closure or a
        /// thread of your own. Throws `.closed(value)` if the receiver closed the channel or is gone (never
        /// `.cancelled`: nothing interrupts the wait). Traps inside a task otherwise, in a LocalSet and on a
        /// thread that runs a runtime's tasks, where it could block the very task that would make room: await
        /// ``send(_:)`` there.
        public func blockingSend(_ value: Element) throws(SendError<Element>) {
            _precheckBlocking("Mpsc.Sender.blockingSend(_:)")
            let pending: Element
            do {
                try core.trySend(value)
                return
            } catch {
                switch error {
                case .full(let value): pending = value
                case .closed(let value): throw .closed(value)
                }
            }
            let core = self.core
            try _blockingWait { () async throws(SendError<Element>) in try await core.send(pending) }
        }

        /// Waits for one slot of capacity and returns it as a permit.
        ///
        /// Sending through the permit cannot fail and does not wait; dropping it unused gives the
        /// slot back. Cancelling a waiting `reserve()` loses nothing but the place in the queue.
        @inlinable
        public nonisolated(nonsending) func reserve() async throws(ReserveError) -> Permit<Element> {
            try await core.reserve()
            return Permit(core: core)
        }

        /// Takes one slot of capacity as a permit if one is free right now (Tokio's `try_reserve`); never
        /// waits. Throws `.full` when the channel is full (including while other senders wait for room:
        /// they are served first) and `.closed` when the receiver closed the channel or is gone.
        ///
        /// ```swift
        /// guard let permit = try? tx.tryReserve() else { return .busy }  // shed load instead of queueing
        /// permit.send(try await makeResponse())
        /// ```
        @inlinable
        public func tryReserve() throws(TryReserveError) -> Permit<Element> {
            try core.tryReserve()
            return Permit(core: core)
        }

        /// Whether the receiver closed the channel or is gone; sends then fail.
        @inlinable
        public var isClosed: Bool { core.isClosedForSenders }

        /// Returns once the receiver closed the channel or is gone. Throws if the task is cancelled.
        @inlinable
        public nonisolated(nonsending) func closed() async throws(CancellationError) {
            try await core.waitClosed()
        }

        /// The number of free slots: decreased by sends and reservations, increased by receives.
        @inlinable
        public var capacity: Int { core.permits.available }

        /// The capacity the channel was created with.
        @inlinable
        public var maxCapacity: Int { core.permits.maximum }
    }

    /// One reserved slot of a bounded channel's capacity.
    ///
    /// `send(_:)` consumes the permit and enqueues the value without waiting; a permit that goes
    /// away unused returns its slot. While a permit exists the receiver does not see the end of
    /// the stream, even after every sender is gone or the channel was closed.
    public struct Permit<Element: Sendable>: ~Copyable, Sendable {
        @usableFromInline
        let core: MpscChannel<Element, BoundedPermits>
        @usableFromInline
        var used = false

        @usableFromInline

        init(core: MpscChannel<Element, BoundedPermits>) {
            self.core = core
        }

        deinit {
            if !used { core.releaseReservation() }
        }

        /// Enqueues `value` in the reserved slot. If the receiver is already gone, the value is
        /// released, as every buffered message is at that moment.
        @inlinable
        public consuming func send(_ value: Element) {
            core.sendReserved(value)
            used = true
        }
    }

    /// The sending half of an unbounded channel. Share it by reference between tasks.
    public final class UnboundedSender<Element: Sendable>: Sendable {
        @usableFromInline
        let core: MpscChannel<Element, UnboundedPermits>

        @usableFromInline

        init(core: MpscChannel<Element, UnboundedPermits>) {
            self.core = core
        }

        deinit {
            core.dropSender()
        }

        /// Enqueues `value` without waiting. Throws `.closed(value)` if the receiver closed the
        /// channel or is gone.
        @inlinable
        public func send(_ value: Element) throws(SendError<Element>) {
            if let rejected = core.push(value, reserved: false) {
                throw .closed(rejected)
            }
        }

        /// Whether the receiver closed the channel or is gone; sends then fail.
        @inlinable
        public var isClosed: Bool { core.isClosedForSenders }

        /// Returns once the receiver closed the channel or is gone. Throws if the task is cancelled.
        @inlinable
        public nonisolated(nonsending) func closed() async throws(CancellationError) {
            try await core.waitClosed()
        }
    }
}
