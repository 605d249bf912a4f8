// The public front of the oneshot channel: a single value from one sender to one receiver.
// Thin wrappers over `OneshotStorage`.

import KyotoExecutor

/// Oneshot channels: send exactly one value from one task to another.
public enum Oneshot {
    /// Creates a oneshot channel.
    @inlinable
    public static func channel<Value: Sendable>(
        of valueType: Value.Type = Value.self
    ) -> (Sender<Value>, Receiver<Value>) {
        let storage = OneshotStorage<Value>()
        return (Sender(storage: storage), Receiver(storage: storage))
    }

    /// Why awaiting a oneshot receiver produced no value.
    public enum RecvError: Error, Equatable {
        /// The sender went away without sending (or the receiver closed before a value arrived).
        case closed
        /// The waiting task was cancelled; the receiver can be awaited again.
        case cancelled
    }

    /// Why `tryRecv()` returned no value.
    public enum TryRecvError: Error, Equatable {
        /// No value was sent yet.
        case empty
        /// No value will arrive: the sender is gone, the receiver closed, or the value was taken.
        case closed
    }

    /// The sending half. `send(_:)` may be called once.
    public final class Sender<Value: Sendable>: Sendable {
        @usableFromInline
        let storage: OneshotStorage<Value>

        /// `storage.dropSender()`, as a closure created where the channel was made: a deinit of a generic class
        /// runs unspecialized in this module (generic metadata lookups on every call), while this closure
        /// was specialized for `Value` at the `channel()` call site. It captures only the storage, which
        /// this handle already retains, so it costs no allocation.
        @usableFromInline
        let onDeinit: @Sendable () -> Void

        @inlinable
        init(storage: OneshotStorage<Value>) {
            self.storage = storage
            onDeinit = { storage.dropSender() }
        }

        deinit {
            onDeinit()
        }

        /// Sends the value. Throws `.closed(value)` if the receiver closed the channel or is gone.
        /// Calling it a second time is a bug and traps.
        @inlinable
        public func send(_ value: Value) throws(SendError<Value>) {
            try storage.send(value)
        }

        /// Whether the receiver closed the channel or is gone.
        @inlinable
        public var isClosed: Bool { storage.isClosedForSender }

        /// Returns once the receiver closed the channel or is gone. Throws if the task is cancelled.
        @inlinable
        public nonisolated(nonsending) func closed() async throws(CancellationError) {
            try await storage.waitClosed()
        }
    }

    /// The receiving half. Await `value` once.
    public final class Receiver<Value: Sendable>: Sendable {
        @usableFromInline
        let storage: OneshotStorage<Value>

        /// `storage.dropReceiver()`, as a closure created where the channel was made: a deinit of a generic class
        /// runs unspecialized in this module (generic metadata lookups on every call), while this closure
        /// was specialized for `Value` at the `channel()` call site. It captures only the storage, which
        /// this handle already retains, so it costs no allocation.
        @usableFromInline
        let onDeinit: @Sendable () -> Void

        @inlinable
        init(storage: OneshotStorage<Value>) {
            self.storage = storage
            onDeinit = { storage.dropReceiver() }
        }

        deinit {
            onDeinit()
        }

        /// The sent value, waiting for it. Throws `.closed` if the sender went away without
        /// sending, `.cancelled` if the task was cancelled while waiting (the receiver may then be
        /// awaited again). Awaiting it again after it produced a value or `.closed` is a bug and
        /// traps.
        @inlinable
        public nonisolated(nonsending) var value: Value {
            get async throws(RecvError) {
                try await storage.receive()
            }
        }

        /// Takes the value without waiting. Calling it while a task awaits ``value`` on the same receiver is
        /// a bug and traps.
        @inlinable
        public func tryRecv() throws(TryRecvError) -> Value {
            try storage.tryReceive()
        }

        /// The sent value, from synchronous code: blocks the calling thread until it arrives (Tokio's
        /// `blocking_recv`). Throws `.closed` if the sender went away without sending, the receiver was
        /// closed before a value arrived, or the value was already taken (where awaiting ``value`` again
        /// traps); never `.cancelled`: nothing interrupts the wait. For a `spawnBlocking` closure, a task's
        /// own `blockInPlace` closure or a thread of your own; traps inside a task otherwise, in a LocalSet
        /// and on a thread that runs a runtime's tasks, where it could block the very task that would send:
        /// await ``value`` there.
        public func blockingRecv() throws(RecvError) -> Value {
            _precheckBlocking("Oneshot.Receiver.blockingRecv()")
            do {
                return try storage.tryReceive()
            } catch {
                if error == .closed { throw .closed }
            }
            let storage = self.storage
            return try _blockingWait { () async throws(RecvError) in try await storage.receive() }
        }

        /// Closes the channel: a later `send` fails and gives its value back; a value sent before
        /// stays obtainable.
        @inlinable
        public func close() {
            storage.closeReceiver()
        }
    }
}
