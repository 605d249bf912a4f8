// The public front of the watch channel: receivers observe the latest value and are told when it
// changes. Thin wrappers over `WatchStorage`.

import Synchronization

/// Watch channels: a single latest value that many receivers observe.
public enum Watch {
    /// Creates a watch channel holding `initial`; the initial value counts as seen.
    public static func channel<Value: Sendable>(initial: Value) -> (Sender<Value>, Receiver<Value>) {
        let storage = WatchStorage(initial: initial)
        let receiver = Receiver(storage: storage, seenVersion: nil)
        return (Sender(storage: storage), receiver)
    }

    /// Why a watch receiver stopped waiting.
    public enum RecvError: Error, Equatable {
        /// The sender is gone (and, for `changed()`, the latest value was already seen).
        case closed
        /// The waiting task was cancelled; nothing was marked seen.
        case cancelled
    }

    /// The sending half. Share it by reference; the channel closes when it is deinitialized.
    public final class Sender<Value: Sendable>: Sendable {
        let storage: WatchStorage<Value>

        init(storage: WatchStorage<Value>) {
            self.storage = storage
        }

        deinit {
            storage.dropSender()
        }

        /// Stores `value` and notifies the receivers. With no receiver it throws `.closed(value)`
        /// and the value is not stored.
        public func send(_ value: Value) throws(SendError<Value>) {
            try storage.send(value)
        }

        /// Stores `value` even without receivers, notifies them, and returns the previous value.
        @discardableResult
        public func sendReplace(_ value: Value) -> Value {
            storage.sendReplace(value)
        }

        /// Modifies the value in place and notifies the receivers, even without receivers.
        ///
        /// `body` runs while the channel is locked: it must not use this channel (that traps, naming the mistake,
        /// rather than deadlock), nor may the deinit of a value it replaces.
        public func sendModify(_ body: (inout Value) -> Void) {
            _ = storage.sendIfModified { value in
                body(&value)
                return true
            }
        }

        /// Modifies the value in place; notifies the receivers only if `body` returns `true`
        /// (otherwise the change is silent). Returns what `body` returned.
        ///
        /// `body` runs while the channel is locked: it must not use this channel (that traps, naming the mistake,
        /// rather than deadlock), nor may the deinit of a value it replaces.
        @discardableResult
        public func sendIfModified(_ body: (inout Value) -> Bool) -> Bool {
            storage.sendIfModified(body)
        }

        /// A copy of the current value.
        public func borrow() -> Value { storage.current }

        /// Creates a receiver that has seen the current value.
        public func subscribe() -> Receiver<Value> {
            Receiver(storage: storage, seenVersion: nil)
        }

        /// The number of live receivers.
        public var receiverCount: Int { storage.receiverCount }

        /// Whether every receiver is gone.
        public var isClosed: Bool { storage.receiverCount == 0 }

        /// Returns once every receiver is gone. Throws if the task is cancelled.
        public nonisolated(nonsending) func closed() async throws(CancellationError) {
            try await storage.waitClosed()
        }
    }

    /// A receiving half. It remembers the version it has seen, and has one consumer at a time: a
    /// `changed()` or `wait(for:)` that waits while another task already waits on the same receiver traps
    /// (give each task its own receiver with ``clone()`` or ``Sender/subscribe()``).
    public final class Receiver<Value: Sendable>: Sendable {
        let storage: WatchStorage<Value>
        let id: UInt64
        /// Set while a `changed()` or `wait(for:)` of this receiver has parked (ConsumerFlag.swift).
        let parked = Atomic<Bool>(false)

        init(storage: WatchStorage<Value>, seenVersion: UInt64?) {
            self.storage = storage
            self.id = storage.subscribe(seenVersion: seenVersion)
        }

        deinit {
            storage.unsubscribe(id)
        }

        /// Returns once a version newer than the seen one exists, and marks it seen. Throws
        /// `.closed` when the sender is gone and the latest value was seen (an unseen final value
        /// is still reported once), `.cancelled` if the task is cancelled (nothing marked seen): while
        /// it waits, or at a yield of the cooperative budget (about one call in 128 that does not wait).
        public nonisolated(nonsending) func changed() async throws(RecvError) {
            _ = try await storage.changed(id, parked: parked)
        }

        /// Whether a version newer than the seen one exists. Throws `.closed` once the sender is
        /// gone. Marks nothing seen.
        public func hasChanged() throws(RecvError) -> Bool {
            guard let changed = storage.hasChanged(id) else { throw .closed }
            return changed
        }

        /// A copy of the current value; marks nothing seen.
        public func borrow() -> Value { storage.current }

        /// A copy of the current value, marking it seen.
        public func borrowAndUpdate() -> Value { storage.borrowAndUpdate(id) }

        /// Waits until `predicate` holds for the current value (checked first, even if seen) and
        /// returns that value. Every value the predicate was given is marked seen, including the ones it
        /// rejected, so after a cancelled or failed wait ``changed()`` does not report them again.
        /// Intermediate values may be skipped. Throws `.closed` when the sender is gone and the predicate
        /// is false for the last value.
        public nonisolated(nonsending) func wait(for predicate: (Value) -> Bool) async throws(RecvError) -> Value {
            try await storage.wait(id, parked: parked, for: predicate)
        }

        /// Makes the next `changed()` return at once, as if a new version had been sent.
        public func markChanged() { storage.markChanged(id) }

        /// Marks the current value seen.
        public func markUnchanged() { storage.markUnchanged(id) }

        /// Creates an independent receiver that has seen what this one has seen.
        public func clone() -> Receiver<Value> {
            Receiver(storage: storage, seenVersion: storage.seenVersion(of: id))
        }

        /// The values of every later change, as an asynchronous sequence. It yields the value each
        /// time `changed()` would return, and ends when the sender is gone or once the task is cancelled
        /// (see ``Receiver/changed()``). Once an iterator has returned `nil` it keeps returning `nil`.
        public var changes: Changes { Changes(receiver: self) }

        /// An asynchronous sequence of the values of successive changes; see `changes`.
        public struct Changes: AsyncSequence, Sendable {
            let receiver: Receiver<Value>

            /// Returns an iterator over the changes.
            public func makeAsyncIterator() -> Iterator {
                Iterator(receiver: receiver)
            }

            /// Waits for each change in turn.
            public struct Iterator: AsyncIteratorProtocol, Sendable {
                let receiver: Receiver<Value>
                /// Set once `next()` has returned nil: the stream stays ended.
                var finished = false

                /// The value of the next change; `nil` once the sender is gone or the task is cancelled (see
                /// ``Receiver/changed()``: a cancelled task may still get some changes first).
                public mutating func next() async -> Value? {
                    if finished { return nil }
                    guard let value = try? await receiver.storage.changed(receiver.id, parked: receiver.parked) else {
                        finished = true
                        return nil
                    }
                    return value
                }

                /// ``next()`` on the caller's isolation: a `for await` loop in an actor (or on the MainActor,
                /// or in a LocalSet) takes a ready change without an executor hop.
                public mutating func next(isolation actor: isolated (any Actor)?) async -> Value? {
                    if finished { return nil }
                    guard let value = try? await receiver.storage.changed(receiver.id, parked: receiver.parked) else {
                        finished = true
                        return nil
                    }
                    return value
                }
            }
        }
    }
}
