// LocalQueue: each worker's bounded run queue (Tokio's `queue.rs` design, written for Swift atomics).
//
// What it is: a fixed ring of 256 job slots with a single producer (the owning worker) and many
// consumers (the owner popping from the head, other workers stealing half of it).
//
// Moving parts:
// - `tail` (UInt32): the next slot the owner writes. Only the owner stores it.
// - `head` (UInt64) packs two UInt32s: `real` (the next slot a consumer takes) and `steal` (the first slot
//   a stealer is still copying out). Outside a steal, `steal == real`. While a stealer copies slots
//   `[steal, real)` the owner may not overwrite them, so capacity is measured from `steal`.
// - slots are `Atomic<UInt>` holding job addresses; relaxed loads/stores suffice because every slot access
//   is ordered by the acquire/release operations on `head`/`tail` described at each access.
//
// Protocol:
// - push (owner): if `tail - steal < 256`, write slot[tail], then publish with a releasing store of
//   `tail + 1`. If full and no steal is in progress, *overflow*: claim the 128 oldest jobs by CAS-ing
//   `head` from (real, real) to (real+128, real+128), and move them plus the new job to the inject queue as
//   one batch. If full while a steal is in progress, the new job alone goes to the inject queue.
// - pop (owner): CAS `real` forward by one (also moving `steal` if no steal is in progress).
// - steal (thief): only when the thief's own queue is at most half full. CAS `real` forward by
//   ceil(n/2) while leaving `steal` where it was (this reserves the range), copy the range into the
//   thief's queue, then CAS `steal` up to `real` to release it. A victim that already has a steal in
//   progress is skipped.
//
// Races considered: the owner popping while a stealer copies (the owner only moves `real`, never into
// the reserved range, and the finishing CAS retries with the owner's new `real`); two stealers (the second
// sees steal != real and backs off); overflow racing a steal (overflow only claims with a CAS from
// (real, real), which fails while a steal is in progress); index wrap-around (UInt32 arithmetic is
// wrapping everywhere, and the ring size divides 2^32). Packing both heads in one word is what makes
// the reservation ABA-safe: a stealer's CAS fails if either half moved.
//
// Overflow moves the OLDEST half (Tokio <= 1.51 semantics): claiming from the head is the only side a
// CAS can claim safely against concurrent stealers; the kept half are the most recently queued jobs.

import Synchronization

final class LocalQueue: @unchecked Sendable {
    // SAFETY (for @unchecked Sendable): every field is immutable or atomic; methods marked "owner only"
    // must be called only by the worker that owns the queue (enforced by Worker's structure).

    static let capacity: UInt32 = 256
    static let mask: UInt32 = capacity - 1
    /// How many jobs one overflow moves to the inject queue (plus the job being pushed).
    static let overflowBatch: UInt32 = capacity / 2

    // MARK: Atomics (any thread)
    private let head = Atomic<UInt64>(0)
    private let tail = Atomic<UInt32>(0)
    private let slots: UnsafeMutablePointer<Atomic<UInt>>

    init() {
        slots = .allocate(capacity: Int(LocalQueue.capacity))
        for i in 0..<Int(LocalQueue.capacity) { (slots + i).initialize(to: Atomic(0)) }
    }

    deinit {
        slots.deinitialize(count: Int(LocalQueue.capacity))
        slots.deallocate()
    }

    @inline(__always)
    private static func pack(steal: UInt32, real: UInt32) -> UInt64 { UInt64(steal) << 32 | UInt64(real) }

    @inline(__always)
    private static func unpack(_ word: UInt64) -> (steal: UInt32, real: UInt32) {
        (UInt32(truncatingIfNeeded: word >> 32), UInt32(truncatingIfNeeded: word))
    }

    @inline(__always)
    private func slot(_ index: UInt32) -> UnsafeMutablePointer<Atomic<UInt>> {
        slots + Int(index & LocalQueue.mask)
    }

    /// Number of queued jobs (approximate when read by another thread).
    var count: Int {
        // Relaxed: no memory is read through the count. Other threads use it for metrics and for the last
        // searcher's re-check before it parks (`MultiThreadScheduler.notifyIfWorkPending`, ordered by the
        // fences there and in `Idle.notifyShouldWakeUp`). Read by another thread, the two loads may see the
        // queue at different moments: `tail` older than `head` (the difference wraps) or, with the reader
        // preempted between them, a `tail` more than `capacity` past `head`. Such a reading is clamped to
        // `capacity` rather than to 0: the re-check must not take a queue that may hold jobs for an empty one
        // (its owner is awake and would run them, but another worker would stay parked meanwhile); the cost
        // of the other mistake is one needless wake-up. The owner's own reads are exact.
        let (_, real) = LocalQueue.unpack(head.load(ordering: .relaxed))
        let t = tail.load(ordering: .relaxed)
        let n = t &- real
        return n > LocalQueue.capacity ? Int(LocalQueue.capacity) : Int(n)
    }

    /// Free slots, as seen by the owner. Owner only.
    var remainingSlots: Int {
        // Acquiring: pairs with the releasing CASes of stealers finishing, so freed slots are really free.
        let (steal, _) = LocalQueue.unpack(head.load(ordering: .acquiring))
        let t = tail.load(ordering: .relaxed)  // we are the only writer of `tail`
        return Int(LocalQueue.capacity &- (t &- steal))
    }

    /// Whether the queue holds no job. Any thread (approximate for others).
    var isEmpty: Bool { count == 0 }

    /// Appends a job, moving half the queue to `inject` when full. Returns true if it overflowed.
    /// Owner only.
    @discardableResult
    func pushBackOrOverflow(_ job: JobRef, inject: Inject) -> Bool {
        let t = tail.load(ordering: .relaxed)  // owner is the only writer of `tail`
        while true {
            // Acquiring: pairs with stealers' releasing CAS on `head`, so slots they finished copying out
            // may be reused.
            let word = head.load(ordering: .acquiring)
            let (steal, real) = LocalQueue.unpack(word)
            if t &- steal < LocalQueue.capacity {
                // Relaxed: published by the releasing store of `tail` below.
                slot(t).pointee.store(job.bits, ordering: .relaxed)
                // Releasing: publishes the slot write above. Pairs with the acquiring load of `tail` in
                // `stealInto2` (and is trivially ordered for the owner's own `pop`).
                tail.store(t &+ 1, ordering: .releasing)
                return false
            }
            if steal != real {
                // A stealer is copying slots out right now; it will free room soon. Send this one job to
                // the inject queue rather than wait.
                inject.push(job)
                return false
            }
            if pushOverflow(job, real: real, tail: t, inject: inject) { return true }
            // A stealer claimed jobs between our load and CAS: there is room now; retry.
        }
    }

    /// Claims the oldest half and moves it, plus `job`, to the inject queue in one batch.
    private func pushOverflow(_ job: JobRef, real: UInt32, tail t: UInt32, inject: Inject) -> Bool {
        kyotoPrecondition(t &- real == LocalQueue.capacity, "BUG DETECTED: local queue overflow while not full")
        let expected = LocalQueue.pack(steal: real, real: real)
        let newReal = real &+ LocalQueue.overflowBatch
        // Acquiring-and-releasing: the acquire orders our slot reads below after the claim; the release
        // makes the claim visible to stealers before the slots are rewritten by later pushes.
        guard
            head.compareExchange(
                expected: expected, desired: LocalQueue.pack(steal: newReal, real: newReal),
                ordering: .acquiringAndReleasing
            ).exchanged
        else { return false }
        // Link the claimed jobs (oldest first) and the new job into one chain. Relaxed slot loads: the owner
        // wrote these slots itself, and the claim keeps thieves from reserving them.
        let first = JobRef(bits: slot(real).pointee.load(ordering: .relaxed))!
        var last = first
        for i in 1..<LocalQueue.overflowBatch {
            let next = JobRef(bits: slot(real &+ i).pointee.load(ordering: .relaxed))!
            last.next = next
            last = next
        }
        last.next = job
        job.next = nil
        inject.pushBatch(first: first, last: job, count: Int(LocalQueue.overflowBatch) + 1)
        return true
    }

    /// Takes the oldest job. Owner only.
    func pop() -> JobRef? {
        // Acquiring: pairs with stealers' releasing CASes.
        var word = head.load(ordering: .acquiring)
        while true {
            let (steal, real) = LocalQueue.unpack(word)
            let t = tail.load(ordering: .relaxed)  // owner is the only writer of `tail`
            if real == t { return nil }
            let nextReal = real &+ 1
            let next =
                steal == real
                ? LocalQueue.pack(steal: nextReal, real: nextReal) : LocalQueue.pack(steal: steal, real: nextReal)
            // Acquiring-and-releasing: claims slot `real` against concurrent stealers.
            let (exchanged, original) = head.compareExchange(
                expected: word, desired: next, ordering: .acquiringAndReleasing)
            if exchanged {
                // Relaxed: the owner wrote this slot itself; the claim above keeps thieves off it.
                return JobRef(bits: slot(real).pointee.load(ordering: .relaxed))
            }
            word = original
        }
    }

    /// Steals about half of this queue's jobs into `destination` (the calling thief's own queue) and
    /// returns one of them to run now. Returns nil if nothing was stolen. `stolen` receives how many jobs
    /// were taken (including the returned one). Called by the owner of `destination`.
    func stealInto(_ destination: LocalQueue, stolen: inout Int) -> JobRef? {
        stolen = 0
        let dstTail = destination.tail.load(ordering: .relaxed)  // we own `destination`
        // Acquiring: pairs with releasing CASes of thieves stealing from `destination`.
        let (dstSteal, _) = LocalQueue.unpack(destination.head.load(ordering: .acquiring))
        if dstTail &- dstSteal > LocalQueue.capacity / 2 {
            // Our own queue is more than half full: do not steal (Tokio's rule).
            return nil
        }
        var n = stealInto2(destination, dstTail: dstTail)
        if n == 0 { return nil }
        stolen = Int(n)
        n -= 1
        // Relaxed: written by this thread in `stealInto2`.
        let job = JobRef(bits: destination.slot(dstTail &+ n).pointee.load(ordering: .relaxed))
        if n > 0 {
            // Releasing: publishes the copied slots to thieves of `destination` and to its owner (us).
            destination.tail.store(dstTail &+ n, ordering: .releasing)
        }
        return job
    }

    private func stealInto2(_ destination: LocalQueue, dstTail: UInt32) -> UInt32 {
        // Acquiring: pairs with the owner's releasing CASes in `pop`/overflow and other thieves.
        var word = head.load(ordering: .acquiring)
        var claimed: UInt64
        var n: UInt32
        while true {
            let (steal, real) = LocalQueue.unpack(word)
            if steal != real { return 0 }  // another thief is active
            // Acquiring: pairs with the owner's releasing store of `tail` in `pushBackOrOverflow`, so the
            // slots below `srcTail` hold the jobs written before it.
            let srcTail = tail.load(ordering: .acquiring)
            n = srcTail &- real
            n -= n / 2
            if n == 0 { return 0 }
            claimed = LocalQueue.pack(steal: steal, real: real &+ n)
            // Acquiring-and-releasing: reserves [steal, real + n) against the owner and other thieves.
            let (exchanged, original) = head.compareExchange(
                expected: word, desired: claimed, ordering: .acquiringAndReleasing)
            if exchanged { break }
            word = original
        }
        let (first, _) = LocalQueue.unpack(claimed)
        // Relaxed: the source slots were published by the owner's releasing store of `tail`, acquired above,
        // and the reservation keeps the owner from rewriting them; the destination slots are this thread's,
        // published by the releasing store of `destination.tail` in `stealInto`.
        for i in 0..<n {
            let value = slot(first &+ i).pointee.load(ordering: .relaxed)
            destination.slot(dstTail &+ i).pointee.store(value, ordering: .relaxed)
        }
        // Release the reservation: move `steal` up to the current `real` (the owner may have popped
        // meanwhile, so retry with what we observe).
        var current = claimed
        while true {
            let (_, real) = LocalQueue.unpack(current)
            // Acquiring-and-releasing: releasing publishes that our copies are done (the owner may reuse
            // those slots after observing this); acquiring orders against the owner's pops.
            let (exchanged, original) = head.compareExchange(
                expected: current, desired: LocalQueue.pack(steal: real, real: real),
                ordering: .acquiringAndReleasing)
            if exchanged { return n }
            current = original
        }
    }
}
