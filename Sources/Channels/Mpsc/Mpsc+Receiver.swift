// The receiving fronts of mpsc channels: thin wrappers over `MpscChannel`.
//
// A receiver has a single consumer: two tasks receiving from it at the same time is a bug and
// traps. Dropping the receiver closes the channel and releases every buffered message at once.
// Receiving is cancel-safe: a cancelled `recv` took no message, so each message is either
// delivered or still buffered.

import KyotoExecutor

/// Extends the namespace with the receiving handles.
extension Mpsc {
    /// The receiving half of a bounded channel.
    public final class Receiver<Element: Sendable>: Sendable, AsyncSequence {
        @usableFromInline
        let core: MpscChannel<Element, BoundedPermits>

        @usableFromInline

        init(core: MpscChannel<Element, BoundedPermits>) {
            self.core = core
        }

        deinit {
            core.dropReceiver()
        }

        /// Receives the next message, waiting for one; `nil` once every sender is gone (or the
        /// channel was closed) and the buffer is drained. Throws only if the task is cancelled, in which
        /// case no message was taken: while it waits, or at a yield of the cooperative budget (about one
        /// receive in 128 in a loop that never waits, on a Kyoto runtime), so a cancelled consumer stops even
        /// while producers keep the channel non-empty. Drain a cancelled task's messages with ``tryRecv()``.
        @inlinable
        public nonisolated(nonsending) func recv() async throws(CancellationError) -> Element? {
            try await core.receive()
        }

        /// Waits for at least one message and returns up to `limit` of them, oldest first. Returns
        /// an empty array only at the end of the stream, or at once if `limit` is 0. Traps if `limit` is negative.
        /// Cancellation as for ``recv()``.
        @inlinable
        public nonisolated(nonsending) func recv(many limit: Int) async throws(CancellationError) -> [Element] {
            var output: [Element] = []
            _ = try await core.receiveMany(into: &output, limit: limit)
            return output
        }

        /// Appends up to `limit` messages to `buffer`, waiting for at least one; returns how many
        /// were appended (0 only at the end of the stream, or at once if `limit` is 0). Traps if `limit` is
        /// negative. Cancellation as for ``recv()``.
        @inlinable
        public nonisolated(nonsending) func recvMany(into buffer: inout [Element], limit: Int) async throws(CancellationError) -> Int {
            try await core.receiveMany(into: &buffer, limit: limit)
        }

        /// Takes the next message without waiting.
        @inlinable
        public func tryRecv() throws(TryRecvError) -> Element {
            try core.tryReceive()
        }

        /// Receives the next message from synchronous code, blocking the calling thread until one arrives
        /// (Tokio's `blocking_recv`); `nil` at the end of the stream, as for ``recv()``. Nothing interrupts
        /// the wait. For a `spawnBlocking` closure, a task's own `blockInPlace` closure or a thread of your
        /// own; traps inside a task otherwise, in a LocalSet and on a thread that runs a runtime's tasks,
        /// where it could block the very task that would send: await ``recv()`` there.
        public func blockingRecv() -> Element? {
            _precheckBlocking("Mpsc.Receiver.blockingRecv()")
            return blockingReceive(core)
        }

        /// Closes the channel: further sends fail (outstanding permits may still send), buffered
        /// messages stay receivable, and `recv` returns `nil` once they are drained.
        @inlinable
        public func close() {
            core.closeReceiver()
        }

        /// Whether the channel refuses new sends: every sender is gone or `close()` was called. Permits
        /// reserved before may still deliver, so the end of the stream is `recv()` returning `nil`.
        @inlinable
        public var isClosed: Bool { core.isClosedForReceiver }

        /// Whether no message is buffered.
        @inlinable
        public var isEmpty: Bool { core.isEmpty }

        /// The number of buffered messages.
        @inlinable
        public var count: Int { core.count }

        /// Returns an iterator that receives messages until the end of the stream, or until the iterating
        /// task is cancelled: it ends when the task is cancelled while waiting, or at the next yield of the
        /// cooperative budget (about one message in 128) while messages are buffered; see ``recv()``. Once
        /// it has returned `nil` it keeps returning `nil`.
        @inlinable
        public func makeAsyncIterator() -> Iterator {
            Iterator(core: core, owner: self)
        }

        /// Receives messages one by one; see `makeAsyncIterator()`.
        public struct Iterator: AsyncIteratorProtocol, Sendable {
            @usableFromInline
            let core: MpscChannel<Element, BoundedPermits>
            @usableFromInline
            let owner: Receiver<Element>
            /// Set once `next()` has returned nil: the stream stays ended (a cancelled task's iterator would
            /// otherwise return buffered messages again after its budget refills).
            @usableFromInline
            var finished = false

            @usableFromInline
            init(core: MpscChannel<Element, BoundedPermits>, owner: Receiver<Element>) {
                self.core = core
                self.owner = owner
            }

            /// Receives the next message, or `nil` at the end of the stream or once the task is cancelled
            /// (see ``Receiver/recv()``: a cancelled task may still get some buffered messages first).
            @inlinable
            public mutating func next() async -> Element? {
                if finished { return nil }
                guard let element = try? await core.receive() else {
                    finished = true
                    return nil
                }
                return element
            }

            /// ``next()`` on the caller's isolation: a `for await` loop in an actor (or on the MainActor, or
            /// in a LocalSet) receives a ready message without an executor hop.
            @inlinable
            public mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
                if finished { return nil }
                guard let element = try? await core.receive() else {
                    finished = true
                    return nil
                }
                return element
            }
        }
    }

    /// The receiving half of an unbounded channel.
    public final class UnboundedReceiver<Element: Sendable>: Sendable, AsyncSequence {
        @usableFromInline
        let core: MpscChannel<Element, UnboundedPermits>

        @usableFromInline

        init(core: MpscChannel<Element, UnboundedPermits>) {
            self.core = core
        }

        deinit {
            core.dropReceiver()
        }

        /// Receives the next message, waiting for one; `nil` once every sender is gone (or the
        /// channel was closed) and the buffer is drained. Throws only if the task is cancelled, in which
        /// case no message was taken: while it waits, or at a yield of the cooperative budget (about one
        /// receive in 128 in a loop that never waits, on a Kyoto runtime), so a cancelled consumer stops even
        /// while producers keep the channel non-empty. Drain a cancelled task's messages with ``tryRecv()``.
        @inlinable
        public nonisolated(nonsending) func recv() async throws(CancellationError) -> Element? {
            try await core.receive()
        }

        /// Waits for at least one message and returns up to `limit` of them, oldest first. Returns
        /// an empty array only at the end of the stream, or at once if `limit` is 0. Traps if `limit` is negative.
        /// Cancellation as for ``recv()``.
        @inlinable
        public nonisolated(nonsending) func recv(many limit: Int) async throws(CancellationError) -> [Element] {
            var output: [Element] = []
            _ = try await core.receiveMany(into: &output, limit: limit)
            return output
        }

        /// Appends up to `limit` messages to `buffer`, waiting for at least one; returns how many
        /// were appended (0 only at the end of the stream, or at once if `limit` is 0). Traps if `limit` is
        /// negative. Cancellation as for ``recv()``.
        @inlinable
        public nonisolated(nonsending) func recvMany(into buffer: inout [Element], limit: Int) async throws(CancellationError) -> Int {
            try await core.receiveMany(into: &buffer, limit: limit)
        }

        /// Takes the next message without waiting.
        @inlinable
        public func tryRecv() throws(TryRecvError) -> Element {
            try core.tryReceive()
        }

        /// Receives the next message from synchronous code, blocking the calling thread until one arrives
        /// (Tokio's `blocking_recv`); `nil` at the end of the stream, as for ``recv()``. Nothing interrupts
        /// the wait. For a `spawnBlocking` closure, a task's own `blockInPlace` closure or a thread of your
        /// own; traps inside a task otherwise, in a LocalSet and on a thread that runs a runtime's tasks,
        /// where it could block the very task that would send: await ``recv()`` there.
        public func blockingRecv() -> Element? {
            _precheckBlocking("Mpsc.UnboundedReceiver.blockingRecv()")
            return blockingReceive(core)
        }

        /// Closes the channel: further sends fail, buffered messages stay receivable, and `recv`
        /// returns `nil` once they are drained.
        @inlinable
        public func close() {
            core.closeReceiver()
        }

        /// Whether the channel refuses new sends: every sender is gone or `close()` was called. Permits
        /// reserved before may still deliver, so the end of the stream is `recv()` returning `nil`.
        @inlinable
        public var isClosed: Bool { core.isClosedForReceiver }

        /// Whether no message is buffered.
        @inlinable
        public var isEmpty: Bool { core.isEmpty }

        /// The number of buffered messages.
        @inlinable
        public var count: Int { core.count }

        /// Returns an iterator that receives messages until the end of the stream, or until the iterating
        /// task is cancelled: it ends when the task is cancelled while waiting, or at the next yield of the
        /// cooperative budget (about one message in 128) while messages are buffered; see ``recv()``. Once
        /// it has returned `nil` it keeps returning `nil`.
        @inlinable
        public func makeAsyncIterator() -> Iterator {
            Iterator(core: core, owner: self)
        }

        /// Receives messages one by one; see `makeAsyncIterator()`.
        public struct Iterator: AsyncIteratorProtocol, Sendable {
            @usableFromInline
            let core: MpscChannel<Element, UnboundedPermits>
            @usableFromInline
            let owner: UnboundedReceiver<Element>
            /// Set once `next()` has returned nil: the stream stays ended (a cancelled task's iterator would
            /// otherwise return buffered messages again after its budget refills).
            @usableFromInline
            var finished = false

            @usableFromInline
            init(core: MpscChannel<Element, UnboundedPermits>, owner: UnboundedReceiver<Element>) {
                self.core = core
                self.owner = owner
            }

            /// Receives the next message, or `nil` at the end of the stream or once the task is cancelled
            /// (see ``Receiver/recv()``: a cancelled task may still get some buffered messages first).
            @inlinable
            public mutating func next() async -> Element? {
                if finished { return nil }
                guard let element = try? await core.receive() else {
                    finished = true
                    return nil
                }
                return element
            }

            /// ``next()`` on the caller's isolation: a `for await` loop in an actor (or on the MainActor, or
            /// in a LocalSet) receives a ready message without an executor hop.
            @inlinable
            public mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
                if finished { return nil }
                guard let element = try? await core.receive() else {
                    finished = true
                    return nil
                }
                return element
            }
        }
    }
}

/// `blockingRecv` of both receivers: the next message without waiting if there is one (or the end of the
/// stream), else a receive on the blocking bridge.
private func blockingReceive<Element: Sendable, Permits: MpscPermitPolicy>(
    _ core: MpscChannel<Element, Permits>
) -> Element? {
    do {
        return try core.tryReceive()
    } catch {
        if error == .disconnected { return nil }
    }
    // The bridge's task is never cancelled, so the receive ends with a message or the end of the stream.
    return _blockingWait { try? await core.receive() }
}
