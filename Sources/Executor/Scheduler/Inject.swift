// Inject: the runtime-wide FIFO queue for jobs scheduled from outside a worker (Tokio's inject queue). The
// blocking bridge (BlockingWait.swift) uses one as its own job queue too.
//
// Jobs are linked through their executor-private storage (see JobRef.swift), so pushing never
// allocates. The list lives inside a `Mutex`; `length` mirrors its length in an atomic so that workers can
// check for work without taking the lock (the common "is there anything?" question on every tick).
// `length` is only a hint: it is updated under the lock, read without it, and a reader that sees 0 while a
// push is in flight is covered by the notification the pusher sends after pushing.

import Synchronization

final class Inject: Sendable {
    private struct Synced: ~Copyable {
        var head: JobRef?
        var tail: JobRef?
        var count: Int = 0
    }

    private let synced = CheckedMutex(Synced())
    // Relaxed hint mirroring `Synced.count`; see the file comment.
    private let length = Atomic<Int>(0)

    /// Approximate number of queued jobs (exact when no push or pop is in flight). Relaxed: see `length`; a
    /// stale count only costs a lock round trip or an empty `pop`.
    var count: Int { length.load(ordering: .relaxed) }

    /// Whether the queue looks empty (a hint; see the file comment).
    var isEmpty: Bool { count == 0 }

    /// Whether the queue holds work, read with SeqCst for the last-searcher re-check (see `pushBatch`).
    var hasWorkSeqCst: Bool { length.load(ordering: .sequentiallyConsistent) > 0 }

    /// Appends one job. Any thread.
    func push(_ job: JobRef) {
        job.next = nil
        pushBatch(first: job, last: job, count: 1)
    }

    /// Appends a chain of `count` jobs already linked from `first` to `last` (whose link is nil).
    func pushBatch(first: JobRef, last: JobRef, count: Int) {
        synced.withLock { s in
            if let tail = s.tail { tail.next = first } else { s.head = first }
            s.tail = last
            s.count += count
            // Sequentially consistent: a pusher then reads the idle state (Idle.workerToNotify) while a
            // last searcher writes the idle state then reads this length (`hasWorkSeqCst`): a
            // store-buffering pair that needs SeqCst on both sides so one of them sees the other.
            length.store(s.count, ordering: .sequentiallyConsistent)
        }
    }

    /// Takes the oldest job. Any thread.
    func pop() -> JobRef? {
        if isEmpty { return nil }
        return synced.withLock { s in
            guard let job = s.head else { return nil }
            s.head = job.next
            if s.head == nil { s.tail = nil }
            s.count -= 1
            // Relaxed: a pop publishes nothing (jobs are read under the lock). Stores happen under the lock, so
            // `hasWorkSeqCst` never reads a value older than the last SeqCst store of `pushBatch`.
            length.store(s.count, ordering: .relaxed)
            return job
        }
    }

    /// Takes up to `limit` jobs at once: returns the first, and hands the rest (oldest first) to `sink`.
    func popBatch(limit: Int, into sink: (JobRef) -> Void) -> JobRef? {
        if isEmpty || limit <= 0 { return nil }
        let (first, chain) = synced.withLock { s -> (JobRef?, JobRef?) in
            guard let first = s.head else { return (nil, nil) }
            var taken = 1
            var last = first
            while taken < limit, let next = last.next {
                last = next
                taken += 1
            }
            s.head = last.next
            if s.head == nil { s.tail = nil }
            s.count -= taken
            // Relaxed: as in `pop`.
            length.store(s.count, ordering: .relaxed)
            last.next = nil
            return (first, first.next)
        }
        var cursor = chain
        while let job = cursor {
            cursor = job.next
            sink(job)
        }
        return first
    }
}
