// BatchSemaphore: the one fair FIFO waiter core of KyotoSync.
//
// What it is. A counting semaphore whose `acquire(n)` takes `n` permits at once, in strict FIFO order, and
// which can be closed. `AsyncMutex` (1 permit), `AsyncRwLock` (a read is 1 permit, a write is all of
// them), `AsyncSemaphore`, `AsyncOnceCell` and the bounded mpsc channel are thin fronts over it. It is a
// Swift rendering of Tokio's `sync/batch_semaphore.rs`.
//
// Moving parts.
//   word    Atomic<Int>: free permits, QUEUED and CLOSED bits (layout and transitions: PermitWord.swift).
//   synced  CheckedMutex<BatchSemaphoreStateMachine>: the FIFO of waiters and the head's partially assigned permits.
//   nextWaiterID  Atomic<UInt64>: ids handed out before a waiter suspends.
//
// Protocol.
//   Fast acquire  - first spend one unit of cooperative budget (yield now if it is exhausted, while
//                   holding nothing: Tokio's poll_proceed order), then CAS the word: succeed when not
//                   CLOSED, not QUEUED and enough permits. No lock, no allocation, no await. While the
//                   permits are held and nobody is queued, a single-permit request re-reads the word a
//                   bounded number of times, a few dozen CPU pauses apart, before queueing (avoids
//                   starting a convoy when the holder is running elsewhere; see `spinThenAcquire` for the
//                   measured spacing; about 2 µs in all). Multi-permit requests (writers) queue at once,
//                   and nobody spins on a thread whose runtime has no other thread to run the holder
//                   (`spins`). A waiter in an actor or on the MainActor still spins, though its holder may
//                   be a task of that same actor, which cannot run meanwhile: the bound keeps that cheap.
//   Slow acquire  - take an id; inside `withTaskCancellationHandler` and `withUnsafeContinuation`, lock,
//                   retry the word (`acquiringLocked`); if the caller must wait, drain the free permits
//                   into it, set QUEUED and append it to the queue; unlock. Queue position is fixed here.
//   Fast release  - CAS the permits into the word when QUEUED is clear.
//   Slow release  - QUEUED was set: lock, hand the permits to the queue head-first (`release`), clear
//                   QUEUED and return leftovers to the word if the queue drained, unlock, then resume the
//                   satisfied waiters.
//   Cancel        - the cancellation handler locks and removes the waiter by id; its assigned permits go
//                   through the slow-release path; it is resumed with `.cancelled` after unlocking.
//   Close         - lock, set CLOSED, wake every waiter with `.closed`, return their assigned permits.
//
// Races considered.
//   * Cancellation before registration. Swift sets the task's cancelled flag before running cancellation
//     handlers. The handler takes the lock; registration checks `Task.isCancelled` under the same lock. If
//     the handler ran first it found no waiter, and registration then sees the flag and does not queue. If
//     registration ran first, the handler finds and removes the waiter. No tombstones are needed.
//   * Grant racing cancellation. A release may satisfy a waiter just before its handler runs; the handler
//     then finds nothing. The waiter wakes with `.acquired`, sees `Task.isCancelled`, releases its permits
//     (they pass to the next waiter) and throws `.cancelled`: a permit handed to a waiter at the moment it
//     was cancelled goes to the next one.
//   * Fast release racing a new waiter. The waiter sets QUEUED with a CAS while holding the lock. A fast
//     release CAS either lands before it (its permits are drained into the waiter) or fails and retries,
//     sees QUEUED and goes through the lock. Permits cannot be stranded in the word while someone waits.
//   * Queue draining racing a fast acquirer. While QUEUED is set the fast path writes nothing; the lock
//     holder clears QUEUED and returns leftovers in one CAS, after which fast acquirers may take them.
//
// Why correct. Permit conservation and FIFO fairness are argued in BatchSemaphoreStateMachine.swift; this
// file adds that every transition of the word is a CAS from a snapshot through a pure PermitWord function,
// and that the QUEUED invariant (set iff the queue is non-empty, permits zero while set) is only changed
// by lock holders. Continuations are always resumed after the lock is released.

import CKyoto
import KyotoExecutor
import Synchronization

/// Why a waiting `acquire` failed.
@usableFromInline
package enum AcquireError: Error, Equatable {
    /// The semaphore was closed before the permits were granted.
    case closed
    /// The waiting task was cancelled.
    case cancelled
}

/// The result of a non-waiting acquisition.
package enum TryAcquireResult: Equatable, Sendable {
    /// The permits were taken.
    case acquired
    /// Not enough free permits, or waiters are queued ahead of the caller.
    case noPermits
    /// The semaphore is closed.
    case closed
}

/// A fair FIFO counting semaphore with batch acquisition, closing and cancellation.
@usableFromInline
package final class BatchSemaphore: Sendable {
    /// How a suspended waiter is resumed.
    package enum WaitOutcome: Sendable {
        /// The permits were free when the waiter took the lock; it never suspended.
        case acquiredImmediately
        /// The permits were handed over by a release.
        case acquired
        /// The semaphore was closed.
        case closed
        /// The waiter was cancelled (before or while queued).
        case cancelled
    }

    /// The continuation a suspended waiter is resumed through.
    package typealias Waker = UnsafeContinuation<WaitOutcome, Never>

    /// The most permits any semaphore may hold (leaves room for the two flag bits and overflow checks).
    package static let maxPermits = Int.max >> 3

    // MARK: Immutable after init (any thread)

    /// The most free permits this semaphore may hold; releasing beyond it is a bug.
    package let permitLimit: Int

    // MARK: Atomics (any thread)

    /// Free permits plus the QUEUED and CLOSED bits; see `PermitWord`.
    private let word: Atomic<Int>

    /// Source of waiter ids. Relaxed everywhere: ids need to be unique, not ordered.
    private let nextWaiterID = Atomic<UInt64>(0)

    // MARK: Guarded by the mutex

    private let synced = CheckedMutex(BatchSemaphoreStateMachine<Waker>())

    /// Creates a semaphore with `permits` free permits and the default limit of `maxPermits`.
    package convenience init(permits: Int) {
        self.init(permits: permits, limit: Self.maxPermits)
    }

    /// Creates a semaphore with `permits` free permits that never holds more than `limit` free permits.
    package init(permits: Int, limit: Int) {
        if limit < 1 || limit > Self.maxPermits {
            bugDetected("a semaphore limit must be between 1 and \(Self.maxPermits), got \(limit)")
        }
        if permits < 0 || permits > limit {
            bugDetected("a semaphore cannot start with \(permits) permits (allowed: 0...\(limit))")
        }
        permitLimit = limit
        word = Atomic(PermitWord(permits: permits).raw)
    }

    // MARK: Acquire

    /// What the synchronous first half of an acquisition (`beginAcquire`) decided.
    @usableFromInline
    package enum FastAcquire: Equatable, Sendable {
        /// The permits were taken and the budget did not ask for a yield: the caller holds them, no await.
        case acquired
        /// The cooperative budget is exhausted: yield first, then acquire (nothing was taken).
        case yieldFirst
        /// The permits are not free (or waiters are queued): wait in FIFO order.
        case wait
        /// The semaphore is closed.
        case closed
    }

    /// Takes `n` permits, suspending in FIFO order until they are all granted.
    ///
    /// Throws `.closed` if the semaphore is or becomes closed first, `.cancelled` if the task is cancelled
    /// while it would have to wait. An acquisition that does not need to wait succeeds even in a
    /// cancelled task. Cancelling a waiter returns any permits already assigned to it.
    ///
    /// Budget order (Tokio's `poll_proceed` first): one unit of cooperative budget is spent BEFORE the
    /// permits are taken, and a forced yield happens while the caller holds nothing. Yielding after the
    /// acquisition would suspend a task that holds the permits; waiters would queue behind it and the FIFO
    /// hand-off would keep that queue alive.
    ///
    /// Inlined into the fronts (`AsyncMutex`, `AsyncRwLock`, `AsyncSemaphore`), so that their fast path has
    /// no await at all: only the slow branch suspends.
    @inlinable
    @inline(__always)
    package nonisolated(nonsending) func acquire(_ n: Int) async throws(AcquireError) {
        let fast = beginAcquire(n)
        if fast != .acquired { try await finishAcquire(n, fast) }
    }

    /// The synchronous half of `acquire`: spends one budget unit, then tries to take `n` permits without
    /// suspending (briefly spinning while the permits are held by a running task and nobody is queued).
    /// When it returns anything but `.acquired`, the caller must `await finishAcquire(n, result)`.
    @usableFromInline
    package func beginAcquire(_ n: Int) -> FastAcquire {
        checkRequest(n, "acquire")
        if _budgetTryConsume() { return .yieldFirst }
        switch tryAcquireSpinning(n) {
        case .acquired: return .acquired
        case .closed: return .closed
        case .noPermits: return .wait
        }
    }

    /// The asynchronous half of `acquire`, after `beginAcquire(n)` returned `fast` (not `.acquired`).
    @usableFromInline
    package nonisolated(nonsending) func finishAcquire(_ n: Int, _ fast: FastAcquire) async throws(AcquireError) {
        switch fast {
        case .acquired:
            return
        case .closed:
            throw .closed
        case .wait:
            try await acquireSlow(n)
        case .yieldFirst:
            // The budget was spent; the permits are taken after the yield, with a fresh budget.
            await _yieldToRuntime()
            switch tryAcquireSpinning(n) {
            case .acquired: return
            case .closed: throw .closed
            case .noPermits: try await acquireSlow(n)
            }
        }
    }

    /// Takes `n` permits from synchronous code, blocking the calling thread while they are not free (the
    /// blocking forms of the locks: `AsyncMutex.blockingLock`, `AsyncRwLock.blockingRead/blockingWrite`).
    /// Queues as `acquire` does. Traps where blocking is not allowed (`_precheckBlocking`, `api` names the
    /// public call) and on a closed semaphore (the locks never close theirs).
    package func blockingAcquire(_ n: Int, _ api: String) {
        _precheckBlocking(api)
        if tryAcquire(n) == .acquired { return }
        // The bridge's task is never cancelled, so the acquire fails only on a closed semaphore.
        let acquired = _blockingWait { (try? await self.acquire(n)) != nil }
        kyotoPrecondition(acquired, "BUG DETECTED: \(api) failed to take the lock")
    }

    /// Takes `n` permits if they are free right now and nobody is queued.
    package func tryAcquire(_ n: Int) -> TryAcquireResult {
        checkRequest(n, "tryAcquire")
        return tryAcquireFast(n)
    }

    @inline(__always)
    private func checkRequest(_ n: Int, _ operation: StaticString) {
        if n < 0 || n > permitLimit { impossibleRequest(n, operation) }
    }

    /// The cold half of `checkRequest`, kept out of line so the check inlines into the fast path.
    @inline(never)
    private func impossibleRequest(_ n: Int, _ operation: StaticString) -> Never {
        if n < 0 { bugDetected("\(operation)(\(n)): cannot request a negative number of permits") }
        bugDetected("\(operation)(\(n)) can never succeed: this semaphore holds at most \(permitLimit) permits")
    }

    @inline(__always)
    private func tryAcquireFast(_ n: Int) -> TryAcquireResult {
        // Relaxed: this load only seeds the CAS loop; the successful exchange does the synchronising. The
        // `.closed` answer (and `n == 0`) returns after this load alone: it publishes nothing, and a caller
        // that then reads state written before `close()` under a lock (AsyncOnceCell's value) is ordered by
        // coherence: had its lock come first in the lock's order, this load would happen before the store of
        // CLOSED it read from, which cannot be.
        var current = PermitWord(raw: word.load(ordering: .relaxed))
        while true {
            let (result, next) = current.acquiring(n)
            guard let next else { return result }
            // Acquiring on success: the permits taken were published by a releasing CAS or store on this
            // word (fast or slow release, queue drain); this makes the previous holder's writes visible.
            let (exchanged, original) = word.weakCompareExchange(
                expected: current.raw, desired: next.raw, successOrdering: .acquiring, failureOrdering: .relaxed)
            if exchanged { return .acquired }
            current = PermitWord(raw: original)
        }
    }

    /// How many times an acquirer re-reads the word while the permits are held and nobody is queued,
    /// before it queues: after ~100 ns and after ~1.8 µs. A holder running a short critical section on
    /// another thread usually releases within this window, and queueing would start a convoy (every later
    /// acquirer must queue behind the FIFO, each hand-off costs a suspension and a wake-up). A holder that
    /// is suspended (a lock held across an `await`, the main use of an async lock) or that waits for the
    /// spinner's own executor (an actor, the MainActor) cannot release meanwhile, so every round is lost
    /// there: with 20 rounds (~35 µs), two tasks alternating `withLock { await Task.yield() }` took 29–30 µs
    /// per lock on 2 workers (a usage review found it); with 2 rounds, 2–3 µs, as a non-spinning
    /// `acquire(2)` does. The sync suite's contended workloads moved by 1–4% (medians of 5 alternating
    /// runs: `mutex_contended` 42.5 against 44.1 ns, `rwlock_read_contended` 42.4 against 43.3 ns).
    private static let spinRounds = 2

    /// CPU pauses between two reads of the word while spinning (27 ns each measured on the benchmark VM).
    private static let spinPauses = 64

    /// `tryAcquireFast`, retried for a short while when the permits are missing but nobody is queued
    /// (only where `spins` allows it).
    ///
    /// While QUEUED is set the word is never taken from (no barging past queued waiters), so spinning stops
    /// as soon as anyone queues. Queue order (the FIFO) is fixed when a caller queues, after its spin: a
    /// caller that arrives while another one spins may take the permit first. That window is bounded
    /// (`spinRounds`) and open only to single-permit requests, so a writer (all of `AsyncRwLock`'s
    /// permits) or a large `acquire(n)` queues at once and blocks later fast acquirers from that moment on:
    /// writer preference and "a large head request is not overtaken" hold from the call.
    @inline(__always)
    private func tryAcquireSpinning(_ n: Int) -> TryAcquireResult {
        let first = tryAcquireFast(n)
        if first != .noPermits || !Self.spins(request: n, spinningMayHelp: _spinningMayHelp()) { return first }
        return spinThenAcquire(n)
    }

    /// Whether an acquisition of `n` permits that found them held re-reads the word before queueing: only
    /// single-permit requests (see `tryAcquireSpinning`), and only where the holder may be running on another
    /// thread (`_spinningMayHelp()`, asked only for single-permit requests: elsewhere spinning would only
    /// delay the suspension that lets the holder run).
    package static func spins(request n: Int, spinningMayHelp: @autoclosure () -> Bool) -> Bool {
        n == 1 && spinningMayHelp()
    }

    /// Polls the word once after 4 CPU pauses (a holder on another core that is about to release is caught
    /// within ~100 ns), then every `spinPauses` pauses. Each read pulls the holder's cache line away from
    /// it, so the holder's next lock or unlock stalls on a cross-core transfer; reads must be rare.
    /// Measured on 2 workers (`mutex_contended`, 4 runs each): 1,000 tight loads 20-90 ns per op (bimodal,
    /// with occasional convoys); exponential back-off from 1 to 64 pauses 24-42 ns; a constant 64 pauses
    /// 19.5-26 ns (32: 21-23 ns; 128: 22-34 ns); 4 then 64: 13-20 ns.
    @inline(never)
    private func spinThenAcquire(_ n: Int) -> TryAcquireResult {
        for round in 0..<Self.spinRounds {
            for _ in 0..<(round == 0 ? 4 : Self.spinPauses) { kyoto_spin_hint() }
            // Relaxed: a peek; the CAS in `tryAcquireFast` does the synchronising. A `.closed` answer from this
            // peek alone publishes nothing and is ordered by coherence, as in `tryAcquireFast`.
            let current = PermitWord(raw: word.load(ordering: .relaxed))
            if current.isClosed { return .closed }
            if current.isQueued { return .noPermits }
            if current.permits >= n {
                let result = tryAcquireFast(n)
                if result != .noPermits { return result }
            }
        }
        return .noPermits
    }

    private nonisolated(nonsending) func acquireSlow(_ n: Int) async throws(AcquireError) {
        // Relaxed: uniqueness is all an id needs.
        let id = nextWaiterID.wrappingAdd(1, ordering: .relaxed).oldValue
        let outcome = await _withCancellableContinuation({ (waker: Waker) in
            if let immediate = register(id: id, requested: n, waker: waker) {
                waker.resume(returning: immediate)
            }
        }, onCancel: {
            self.cancel(waiter: id)
        })
        switch outcome {
        case .acquiredImmediately:
            // The budget unit was spent in `beginAcquire`, before anything was taken.
            break
        case .acquired:
            // The permits were assigned under `synced` by a releaser that resumed us after unlocking.
            synced.synchronizeWithLastHolder()
            if Task.isCancelled {
                // Granted at the moment the task was cancelled: pass the permits on and report the cancel.
                release(n)
                throw .cancelled
            }
        case .closed:
            throw .closed
        case .cancelled:
            throw .cancelled
        }
    }

    /// Locks, retries the word and queues the waiter if it must wait. Returns how to resume it right away,
    /// or nil when it was queued.
    private func register(id: UInt64, requested n: Int, waker: Waker) -> WaitOutcome? {
        synced.withLock { machine in
            let isCancelled = Task.isCancelled
            // Relaxed: seeds the CAS loop below.
            var current = PermitWord(raw: word.load(ordering: .relaxed))
            while true {
                let (action, next) = current.acquiringLocked(n, isCancelled: isCancelled)
                switch action {
                case .closed: return .closed
                case .cancelled: return .cancelled
                case .acquired, .enqueue:
                    // Acquiring on success: the permits taken (or drained into the waiter) were published by
                    // releasing writes to this word. Pairs with the releasing CAS in `release` and the
                    // releasing updates in `updateLocked`.
                    let (exchanged, original) = word.weakCompareExchange(
                        expected: current.raw, desired: next!.raw, successOrdering: .acquiring,
                        failureOrdering: .relaxed)
                    guard exchanged else {
                        current = PermitWord(raw: original)
                        continue
                    }
                    if case .enqueue(let assigned) = action {
                        machine.enqueue(id: id, requested: n, assigned: assigned, waker: waker)
                        return nil
                    }
                    return .acquiredImmediately
                }
            }
        }
    }

    // MARK: Release

    /// Returns `n` permits. Queued waiters are served first, oldest first; only leftovers become free.
    ///
    /// Returning more permits than the semaphore's limit allows is a bug and traps. `adding`: the call is a
    /// public `addPermits(n)` (new permits, not returned ones), which the trap messages then name.
    @usableFromInline
    package func release(_ n: Int, adding: Bool = false) {
        if n < 0 {
            bugDetected(
                adding
                    ? "addPermits(\(n)): cannot add a negative number of permits"
                    : "release(\(n)): cannot release a negative number of permits")
        }
        if n == 0 { return }
        // Relaxed: seeds the CAS loop below.
        var current = PermitWord(raw: word.load(ordering: .relaxed))
        while true {
            let (action, next) = current.releasing(n, limit: permitLimit)
            switch action {
            case .exceedsLimit:
                bugDetected(overLimitMessage(n, free: current.permits, adding: adding))
            case .takeLock:
                releaseSlow(n, adding: adding)
                return
            case .released:
                // Releasing: publishes the caller's writes made while holding the permits.
                // Pairs with: the acquiring CAS in `tryAcquireFast` and `register`.
                let (exchanged, original) = word.weakCompareExchange(
                    expected: current.raw, desired: next!.raw, successOrdering: .releasing,
                    failureOrdering: .relaxed)
                if exchanged { return }
                current = PermitWord(raw: original)
            }
        }
    }

    private func overLimitMessage(_ n: Int, free: Int, adding: Bool) -> String {
        if adding {
            return "addPermits(\(n)) with \(free) permits free (or set aside for waiters) would exceed the "
                + "semaphore's limit of \(permitLimit) permits"
        }
        return "released \(n) permits while \(free) were free, exceeding the limit of \(permitLimit): "
            + "permits were released more often than they were acquired"
    }

    private func releaseSlow(_ n: Int, adding: Bool) {
        let wake: BatchSemaphoreStateMachine<Waker>.WakeList? = synced.withLock { machine in
            // Relaxed: seeds the CAS loop; the lock orders us after every queue change.
            var current = PermitWord(raw: word.load(ordering: .relaxed))
            while !current.isQueued {
                // The queue drained between the fast attempt and taking the lock: plain release.
                let (action, next) = current.releasing(n, limit: permitLimit)
                if action == .exceedsLimit { bugDetected(overLimitMessage(n, free: current.permits, adding: adding)) }
                // Releasing: as in `release`. Pairs with the acquiring CAS in `tryAcquireFast`/`register`.
                let (exchanged, original) = word.weakCompareExchange(
                    expected: current.raw, desired: next!.raw, successOrdering: .releasing,
                    failureOrdering: .relaxed)
                if exchanged { return nil }
                current = PermitWord(raw: original)
            }
            if n > permitLimit - machine.heldByQueue {
                bugDetected(overLimitMessage(n, free: machine.heldByQueue, adding: adding))
            }
            let action = machine.release(n)
            if let leftover = action.leftover { updateLocked { $0.queueEmptied(returning: leftover) } }
            return action.wake
        }
        wake?.forEach { $0.resume(returning: .acquired) }
    }

    /// Rewrites the word while holding the lock (QUEUED or CLOSED changes).
    ///
    /// A CAS loop rather than a store: when QUEUED is clear, fast-path threads may change the permits.
    private func updateLocked(_ transition: (PermitWord) -> PermitWord) {
        // Relaxed: seeds the CAS loop.
        var current = PermitWord(raw: word.load(ordering: .relaxed))
        while true {
            // Releasing: permits returned here (leftovers, cancelled or closed waiters' permits) become
            // free; a fast acquirer that takes them must see the writes of whoever released them.
            // Pairs with: the acquiring CAS in `tryAcquireFast` and `register`.
            let (exchanged, original) = word.weakCompareExchange(
                expected: current.raw, desired: transition(current).raw, successOrdering: .releasing,
                failureOrdering: .relaxed)
            if exchanged { return }
            current = PermitWord(raw: original)
        }
    }

    // MARK: Cancellation and closing

    private func cancel(waiter id: UInt64) {
        let action = synced.withLock { machine in
            let action = machine.cancel(id)
            if case .resumeCancelled(_, let release) = action, let leftover = release.leftover {
                updateLocked { $0.queueEmptied(returning: leftover) }
            }
            return action
        }
        switch action {
        case .none:
            break
        case .resumeCancelled(let waker, let release):
            release.wake.forEach { $0.resume(returning: .acquired) }
            waker.resume(returning: .cancelled)
        }
    }

    /// Closes the semaphore: every queued waiter fails with `.closed`, and so does every later acquisition,
    /// even when permits are free. Releases still return permits. Idempotent.
    package func close() {
        let action = synced.withLock { machine in
            let action = machine.close()
            updateLocked { $0.closing(returning: action.returned) }
            return action
        }
        action.wake.forEach { $0.resume(returning: .closed) }
    }

    /// Removes up to `n` free permits for good and returns how many were removed.
    package func forget(_ n: Int) -> Int {
        if n < 0 { bugDetected("forget(\(n)): cannot forget a negative number of permits") }
        // Relaxed: seeds the CAS loop.
        var current = PermitWord(raw: word.load(ordering: .relaxed))
        while true {
            let (removed, next) = current.forgetting(n)
            guard let next else { return removed }
            // Relaxed: no data is handed over; the permits simply cease to exist. The RMW keeps the
            // release sequence of earlier releases intact for later acquirers.
            let (exchanged, original) = word.weakCompareExchange(
                expected: current.raw, desired: next.raw, successOrdering: .relaxed, failureOrdering: .relaxed)
            if exchanged { return removed }
            current = PermitWord(raw: original)
        }
    }

    // MARK: Observation

    /// Free permits not assigned to any waiter. Zero while waiters are queued.
    package var availablePermits: Int {
        // Relaxed: a snapshot for reporting; it publishes or consumes nothing.
        PermitWord(raw: word.load(ordering: .relaxed)).permits
    }

    /// Whether `close()` has run.
    package var isClosed: Bool {
        // Relaxed: a snapshot; CLOSED is never unset once set.
        PermitWord(raw: word.load(ordering: .relaxed)).isClosed
    }

    /// The number of queued waiters (takes the lock; for tests and diagnostics).
    package var queuedWaiterCount: Int {
        synced.withLock { $0.waiters.count }
    }
}
