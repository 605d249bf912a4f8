// The public front of the broadcast channel: every receiver sees every value sent after it
// subscribed. Thin wrappers over `BroadcastStorage`.

import KyotoExecutor
import Synchronization

/// Broadcast channels: one sender, many receivers, each receiving every value.
public enum Broadcast {
    /// Creates a broadcast channel retaining up to `capacity` values, rounded up to a power of
    /// two; a receiver more than that many values behind lags. `capacity` must be at least 1.
    public static func channel<Element: Sendable>(
        of elementType: Element.Type = Element.self,
        capacity: Int
    ) -> (Sender<Element>, Receiver<Element>) {
        kyotoPrecondition(
            capacity > 0,
            "BUG DETECTED: Broadcast.channel(of:capacity:) requires a capacity of at least 1, got \(capacity)"
        )
        kyotoPrecondition(
            capacity <= Int.max >> 1,
            "BUG DETECTED: Broadcast.channel(of:capacity:) capacity \(capacity) is too large"
        )
        let storage = BroadcastStorage<Element>(capacity: RingBuffer<Element>.roundedCapacity(capacity))
        let receiver = Receiver(storage: storage)
        return (Sender(storage: storage), receiver)
    }

    /// Why a broadcast receive produced no value.
    public enum RecvError: Error, Equatable {
        /// The receiver fell behind and missed this many values; the next receive returns the
        /// oldest value still retained.
        case lagged(Int)
        /// The sender is gone and every retained value was received.
        case closed
        /// The waiting task was cancelled; nothing was consumed.
        case cancelled
    }

    /// Why `tryRecv()` produced no value.
    public enum TryRecvError: Error, Equatable {
        /// Nothing new yet.
        case empty
        /// The receiver missed this many values; the next receive returns the oldest retained one.
        case lagged(Int)
        /// The sender is gone and every retained value was received.
        case closed
    }

    /// The sending half. Share it by reference; the channel closes when it is deinitialized.
    public final class Sender<Element: Sendable>: Sendable {
        let storage: BroadcastStorage<Element>

        init(storage: BroadcastStorage<Element>) {
            self.storage = storage
        }

        deinit {
            storage.dropSender()
        }

        /// Sends `value` to every current receiver and returns how many there are. With no
        /// receiver it throws `.closed(value)` and the value is not retained.
        @discardableResult
        public func send(_ value: Element) throws(SendError<Element>) -> Int {
            try storage.send(value)
        }

        /// Creates a receiver that sees every value sent from now on.
        public func subscribe() -> Receiver<Element> {
            Receiver(storage: storage)
        }

        /// The number of live receivers.
        public var receiverCount: Int { storage.receiverCount }

        /// The number of retained values that some receiver has not read yet.
        public var count: Int { storage.queued }

        /// Whether every retained value was read by every receiver.
        public var isEmpty: Bool { storage.queued == 0 }
    }

    /// A receiving half. Each receiver has its own position in the stream, and one consumer at a time: a
    /// `recv` that waits while another task already waits on the same receiver traps (give each task its
    /// own receiver with ``resubscribe()`` or ``Sender/subscribe()``).
    public final class Receiver<Element: Sendable>: Sendable, AsyncSequence {
        let storage: BroadcastStorage<Element>
        let id: UInt64
        /// Set while a receive of this receiver has parked (ConsumerFlag.swift).
        let parked = Atomic<Bool>(false)

        init(storage: BroadcastStorage<Element>) {
            self.storage = storage
            self.id = storage.subscribe()
        }

        deinit {
            storage.unsubscribe(id)
        }

        /// Receives the next value, waiting for one. Throws `.lagged(n)` once after missing `n`
        /// values, `.closed` when the sender is gone and everything was read, `.cancelled` if the
        /// task is cancelled (nothing consumed): while waiting, or at a yield of the cooperative budget
        /// (about one receive in 128 in a loop that never waits), so a cancelled reader stops even while
        /// values keep coming. ``tryRecv()`` reads what is left without that check.
        public nonisolated(nonsending) func recv() async throws(RecvError) -> Element {
            try await storage.receive(id, parked: parked)
        }

        /// Receives the next value without waiting.
        public func tryRecv() throws(TryRecvError) -> Element {
            try storage.tryReceive(id)
        }

        /// Receives the next value from synchronous code, blocking the calling thread until one arrives
        /// (Tokio's `blocking_recv`). Throws `.lagged(n)` and `.closed` as ``recv()`` does, never
        /// `.cancelled`: nothing interrupts the wait. For a `spawnBlocking` closure, a task's own
        /// `blockInPlace` closure or a thread of your own; traps inside a task otherwise, in a LocalSet and
        /// on a thread that runs a runtime's tasks, where it could block the very task that would send: await
        /// ``recv()`` there.
        public func blockingRecv() throws(RecvError) -> Element {
            _precheckBlocking("Broadcast.Receiver.blockingRecv()")
            do {
                return try storage.tryReceive(id)
            } catch {
                switch error {
                case .empty: break
                case .lagged(let n): throw .lagged(n)
                case .closed: throw .closed
                }
            }
            return try _blockingWait { [self] () async throws(RecvError) in try await recv() }
        }

        /// Creates a new receiver positioned at the end of the stream (independent of this one).
        public func resubscribe() -> Receiver<Element> {
            Receiver(storage: storage)
        }

        /// The number of values this receiver has not read yet; above the capacity it will lag.
        public var count: Int { storage.unread(by: id) }

        /// Whether this receiver has read everything sent so far.
        public var isEmpty: Bool { storage.unread(by: id) == 0 }

        /// Whether the sender is gone.
        public var isClosed: Bool { !storage.isSenderAlive }

        /// Returns an iterator over the values. It throws `.lagged(n)` when values were missed and
        /// can be called again afterwards; it ends at `.closed`, and once the task is cancelled (see
        /// ``recv()``: a cancelled task may still get some values already available first). Once it has
        /// returned `nil` it keeps returning `nil`.
        public func makeAsyncIterator() -> Iterator {
            Iterator(receiver: self)
        }

        /// Receives values one by one; see `makeAsyncIterator()`.
        public struct Iterator: AsyncIteratorProtocol, Sendable {
            let receiver: Receiver<Element>
            /// Set once `next()` has returned nil: the stream stays ended.
            var finished = false

            /// The next value; `nil` at the end or once the task is cancelled (see ``Receiver/recv()``);
            /// throws `.lagged(n)`.
            public mutating func next() async throws(RecvError) -> Element? {
                if finished { return nil }
                let value = try await Iterator.receiveNext(receiver)
                if value == nil { finished = true }
                return value
            }

            /// ``next()`` on the caller's isolation: a `for await` loop in an actor (or on the MainActor, or
            /// in a LocalSet) receives a ready value without an executor hop.
            public mutating func next(isolation actor: isolated (any Actor)?) async throws(RecvError) -> Element? {
                if finished { return nil }
                let value = try await Iterator.receiveNext(receiver)
                if value == nil { finished = true }
                return value
            }

            private static nonisolated(nonsending) func receiveNext(_ receiver: Receiver<Element>) async throws(RecvError)
                -> Element?
            {
                do {
                    return try await receiver.recv()
                } catch {
                    switch error {
                    case .closed, .cancelled: return nil
                    case .lagged: throw error
                    }
                }
            }
        }
    }
}
