// The permit policy that distinguishes bounded from unbounded mpsc channels.
//
// A sender takes one permit before it enqueues a message; the receiver returns one permit per
// message it takes out. Bounded channels draw permits from a fair `BatchSemaphore` holding
// `capacity` permits, so the buffer never exceeds the capacity and waiting senders queue FIFO.
// Unbounded channels use a policy whose operations are no-ops and which always grants. Closing
// the policy (when the receiver closes or goes away) fails every waiting and future acquisition.
//
// The channel core is specialised for each policy (it is generic over it), so the unbounded
// policy compiles away entirely. The bounded policy's methods stay out of line: they are the
// boundary to the semaphore module.

import KyotoSync

/// The outcome of taking one permit.
@usableFromInline
enum PermitAcquisition: Equatable, Sendable {
    /// The permit was taken.
    case acquired
    /// No permit is free right now (only from `tryAcquire`).
    case unavailable
    /// The policy was closed: the receiver is gone or closed the channel.
    case closed
    /// The waiting task was cancelled (only from `acquire`).
    case cancelled
}

/// How an mpsc channel limits the number of buffered messages.
@usableFromInline
protocol MpscPermitPolicy: Sendable {
    /// Takes one permit without waiting: `.acquired`, `.unavailable` or `.closed`.
    func tryAcquire() -> PermitAcquisition
    /// Takes one permit, waiting in FIFO order: `.acquired`, `.closed` or `.cancelled`.
    nonisolated(nonsending) func acquire() async -> PermitAcquisition
    /// Returns `count` permits (messages taken out, or a reservation given back).
    func release(_ count: Int)
    /// Fails waiting and future acquisitions.
    func close()
    /// The number of free permits (`Int.max` when unbounded).
    var available: Int { get }
    /// The total number of permits (`Int.max` when unbounded).
    var maximum: Int { get }
}

/// One permit per buffered message, drawn from a fair semaphore.
@usableFromInline
struct BoundedPermits: MpscPermitPolicy {
    let semaphore: BatchSemaphore
    @usableFromInline
    let maximum: Int

    @usableFromInline
    init(capacity: Int) {
        self.semaphore = BatchSemaphore(permits: capacity)
        self.maximum = capacity
    }

    @usableFromInline
    func tryAcquire() -> PermitAcquisition {
        switch semaphore.tryAcquire(1) {
        case .acquired: .acquired
        case .noPermits: .unavailable
        case .closed: .closed
        }
    }

    @usableFromInline
    nonisolated(nonsending) func acquire() async -> PermitAcquisition {
        do {
            try await semaphore.acquire(1)
            return .acquired
        } catch {
            switch error {
            case .closed: return .closed
            case .cancelled: return .cancelled
            }
        }
    }

    @usableFromInline
    func release(_ count: Int) { semaphore.release(count) }

    @usableFromInline
    func close() { semaphore.close() }

    @usableFromInline
    var available: Int { semaphore.availablePermits }
}

/// No limit: every acquisition succeeds at once.
@usableFromInline
struct UnboundedPermits: MpscPermitPolicy {
    @inlinable
    init() {}

    @inlinable
    func tryAcquire() -> PermitAcquisition { .acquired }

    @inlinable
    nonisolated(nonsending) func acquire() async -> PermitAcquisition { .acquired }

    @inlinable
    func release(_ count: Int) {}

    @inlinable
    func close() {}

    @inlinable
    var available: Int { Int.max }

    @inlinable
    var maximum: Int { Int.max }
}
