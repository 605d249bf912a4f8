// The public entry points of the multi-producer, single-consumer channel.
//
// `Mpsc.channel(of:capacity:)` and `Mpsc.unboundedChannel(of:)` build the same core,
// `MpscChannel<Element, Permits>`, and differ only in the permit policy: the bounded channel takes
// one permit of a fair `BatchSemaphore` per message (so `send` waits while the buffer is full and
// waiting senders are served in request order), the unbounded one takes none. See
// `MpscChannel.swift` for the protocol and `docs/design/0002-channels.md` for the rationale.

import KyotoExecutor
import KyotoSync

/// Multi-producer, single-consumer channels: many senders, one receiver, FIFO delivery.
///
/// The receiver sees the end of the stream (`recv()` returns nil) once every sender object is gone. A
/// closure that captures a sender does not move it, as Rust's `async move` does: the variable it came from
/// still holds it, so end that binding's lifetime once the sender is handed off, or the receive loop waits
/// for ever after the last message:
///
/// ```swift
/// let (tx, rx) = Mpsc.channel(of: Int.self, capacity: 8)
/// spawn { for i in 0..<100 { try await tx.send(i) } }
/// _ = consume tx                     // the task's capture is now the only sender
/// while let i = try await rx.recv() { use(i) }
/// ```
///
/// (A top-level variable of `main.swift` is a global and cannot be consumed: create the channel inside a
/// function.)
public enum Mpsc {
    /// Creates a bounded channel that buffers at most `capacity` messages.
    ///
    /// `send` suspends while the buffer is full; waiting senders are served in the order they
    /// started waiting. `capacity` must be at least 1 and at most `Int.max >> 3` (the permits the
    /// channel's semaphore can count).
    public static func channel<Element: Sendable>(
        of elementType: Element.Type = Element.self,
        capacity: Int
    ) -> (Sender<Element>, Receiver<Element>) {
        kyotoPrecondition(
            capacity > 0,
            "BUG DETECTED: Mpsc.channel(of:capacity:) requires a capacity of at least 1, got \(capacity)"
        )
        kyotoPrecondition(
            capacity <= BatchSemaphore.maxPermits,
            "BUG DETECTED: Mpsc.channel(of:capacity:) capacity \(capacity) is too large (at most \(BatchSemaphore.maxPermits))"
        )
        let core = MpscChannel<Element, BoundedPermits>(
            permits: BoundedPermits(capacity: capacity),
            initialBufferCapacity: min(capacity, 32)
        )
        return (Sender(core: core), Receiver(core: core))
    }

    /// Creates an unbounded channel: `send` never waits and only fails once the receiver is gone.
    public static func unboundedChannel<Element: Sendable>(
        of elementType: Element.Type = Element.self
    ) -> (UnboundedSender<Element>, UnboundedReceiver<Element>) {
        let core = MpscChannel<Element, UnboundedPermits>(permits: UnboundedPermits(), initialBufferCapacity: 32)
        return (UnboundedSender(core: core), UnboundedReceiver(core: core))
    }

    /// Why `tryRecv()` returned no message.
    public enum TryRecvError: Error, Equatable {
        /// No message is buffered, but senders (or outstanding permits) may still send one.
        case empty
        /// No message is buffered and none can arrive: every sender is gone or the receiver closed.
        case disconnected
    }

    /// Why `reserve()` returned no permit.
    public enum ReserveError: Error, Equatable {
        /// The receiver is gone or closed the channel.
        case closed
        /// The reserving task was cancelled while it waited for capacity.
        case cancelled
    }

    /// Why `tryReserve()` returned no permit.
    public enum TryReserveError: Error, Equatable {
        /// The channel has no free capacity right now.
        case full
        /// The receiver is gone or closed the channel.
        case closed
    }
}
