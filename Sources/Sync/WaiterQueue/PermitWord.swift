// PermitWord: the lock-free half of the batch semaphore, as pure transitions.
//
// What it is. The semaphore keeps its free permits in one atomic `Int` so that uncontended acquire and
// release are a single compare-and-exchange with no lock and no allocation. This file defines the layout
// of that word and the decisions taken on it, as pure functions `(snapshot) -> (action, next snapshot?)`
// that `BatchSemaphore` runs inside compare-and-exchange loops (Tokio's `fetch_update_action` shape).
// Keeping them pure lets the tests check them as (state, event) -> (action, next state) tables.
//
// Layout.
//   bit 0      CLOSED  set by `close()`; never unset once set.
//   bit 1      QUEUED  set iff the waiter queue (behind the mutex) is non-empty. Only a thread holding the
//                      mutex sets or clears it.
//   bits 2...  the number of free permits.
//
// The invariant that makes the split safe: while QUEUED is set the permit field is zero. Every free permit
// then belongs to the queue (it is assigned to the head waiter), so a fast-path acquirer that sees QUEUED
// must not take anything (no barging past a queued `acquire(n)`) and a fast-path releaser that sees QUEUED
// must take the lock and hand its permits to the queue. While QUEUED is set no thread without the lock
// writes the word, so lock holders may treat it as stable.

/// A snapshot of the semaphore's atomic permit word.
package struct PermitWord: Equatable, Sendable, CustomStringConvertible {
    /// The raw bits, as stored in the atomic.
    package var raw: Int

    static let closedBit = 1
    static let queuedBit = 2
    static let permitShift = 2

    /// Wraps raw bits loaded from the atomic.
    package init(raw: Int) { self.raw = raw }

    /// Builds a word from its fields.
    package init(permits: Int, queued: Bool = false, closed: Bool = false) {
        raw = permits << Self.permitShift | (queued ? Self.queuedBit : 0) | (closed ? Self.closedBit : 0)
    }

    /// Whether `close()` has run.
    package var isClosed: Bool { raw & Self.closedBit != 0 }
    /// Whether waiters are queued (and therefore own every free permit).
    package var isQueued: Bool { raw & Self.queuedBit != 0 }
    /// Free permits not yet assigned to any waiter.
    package var permits: Int { raw >> Self.permitShift }

    /// A readable rendering of the three fields.
    package var description: String { "PermitWord(permits: \(permits), queued: \(isQueued), closed: \(isClosed))" }

    // MARK: Fast-path transitions (no lock held)

    /// Decides an acquisition of `n` permits without queueing.
    ///
    /// Returns `.acquired` with the word to publish, `.acquired` with nil for `n == 0`, or a failure with nil.
    package func acquiring(_ n: Int) -> (TryAcquireResult, PermitWord?) {
        if isClosed { return (.closed, nil) }
        if n == 0 { return (.acquired, nil) }
        if isQueued || permits < n { return (.noPermits, nil) }
        return (.acquired, PermitWord(raw: raw - n << Self.permitShift))
    }

    /// What a fast-path release decided.
    package enum ReleaseAction: Equatable, Sendable {
        /// The permits were added to the word; publish the returned word.
        case released
        /// Waiters are queued: take the lock and hand the permits to them.
        case takeLock
        /// The release would hold more free permits than the semaphore's limit.
        case exceedsLimit
    }

    /// Decides a release of `n` permits on the lock-free path.
    package func releasing(_ n: Int, limit: Int) -> (ReleaseAction, PermitWord?) {
        if isQueued { return (.takeLock, nil) }
        if n > limit - permits { return (.exceedsLimit, nil) }
        return (.released, PermitWord(raw: raw + n << Self.permitShift))
    }

    // MARK: Locked transitions (the waiter mutex is held)

    /// What an acquisition decided once it holds the waiter lock.
    package enum LockedAcquireAction: Equatable, Sendable {
        /// Enough permits and nobody queued: take them.
        case acquired
        /// The semaphore is closed.
        case closed
        /// The task was cancelled before it could queue; nothing was taken.
        case cancelled
        /// Queue the waiter; it already owns `assigned` permits drained from the word.
        case enqueue(assigned: Int)
    }

    /// Decides an acquisition of `n` permits with the lock held, possibly queueing the caller.
    ///
    /// An immediate acquisition wins over cancellation: a task that does not have to wait is not
    /// refused. A task that would have to wait and is already cancelled does not queue.
    package func acquiringLocked(_ n: Int, isCancelled: Bool) -> (LockedAcquireAction, PermitWord?) {
        if isClosed { return (.closed, nil) }
        if !isQueued && permits >= n { return (.acquired, PermitWord(raw: raw - n << Self.permitShift)) }
        if isCancelled { return (.cancelled, nil) }
        // Drain every free permit into the new waiter and mark the queue non-empty. When QUEUED was already
        // set the permit field is zero, so this only rewrites the same value.
        return (.enqueue(assigned: permits), PermitWord(permits: 0, queued: true, closed: false))
    }

    /// The word after the queue drained and `leftover` permits went back to the counter.
    package func queueEmptied(returning leftover: Int) -> PermitWord {
        PermitWord(permits: permits + leftover, queued: false, closed: isClosed)
    }

    /// The word after `close()`, with `returned` permits given back by the woken waiters.
    package func closing(returning returned: Int) -> PermitWord {
        PermitWord(permits: permits + returned, queued: false, closed: true)
    }

    /// Decides how many of `n` requested permits `forget` removes: at most the free ones.
    package func forgetting(_ n: Int) -> (Int, PermitWord?) {
        let removed = Swift.min(n, permits)
        if removed == 0 { return (0, nil) }
        return (removed, PermitWord(raw: raw - removed << Self.permitShift))
    }
}
