// BlockingPool: threads for blocking work (Tokio's `spawn_blocking` pool).
//
// What it is: a FIFO of blocking jobs and a set of OS threads that run them. The pool grows on demand: a
// job submitted while no thread is idle starts a new thread, up to `maxBlockingThreads`; beyond that jobs
// wait in FIFO order. A thread that finds no work for `blockingKeepAlive` exits.
//
// Moving parts (all inside one CheckedMutex): the job queue, the stack of idle threads (each with its own
// Parker), thread counts, and the shutdown flag. A job is a `BlockingJob`: a closure plus an atomic state
// (pending → running | cancelled), so a job aborted before it starts is skipped and one that has started
// runs to completion.
//
// Protocol:
// - submit: lock; if shut down, cancel the job; else enqueue it; if an idle thread exists, pop it and
//   unpark it after unlocking (it is "notified": it will not time out on this wake-up); else if below the
//   thread limit, count a new thread and start it after unlocking.
// - thread loop: lock; pop a job if any (then unlock and run it); else if shut down, exit; else push itself
//   on the idle stack, unlock, and park with the keep-alive timeout. After waking: lock; if it is no longer
//   on the idle stack, somebody notified it: loop; if it still is and the keep-alive has run out, it timed
//   out: remove itself and exit (if the queue is empty; otherwise loop); if it still is but the keep-alive
//   has not run out, the wake-up was a stale token (see `waitWhileIdle`): park again for the rest.
// - shutdown: lock; set the flag, take the queued jobs (they are cancelled: never run), take the idle
//   threads; unlock; cancel the jobs, unpark the idle threads so they exit. Running jobs finish; the
//   runtime's shutdown waits for `threads == 0` up to its timeout.
//
// Races considered: a notify racing a keep-alive time-out is decided under the lock by whether the thread
// is still on the idle stack; a job submitted concurrently with shutdown is either queued before the flag
// (and cancelled by shutdown) or sees the flag (and is cancelled by submit).

import Synchronization

/// One blocking job. `start()` and `cancel()` race through one atomic: exactly one of them wins.
final class BlockingJob: Sendable {
    private static let pending: UInt8 = 0
    private static let running: UInt8 = 1
    private static let cancelled: UInt8 = 2

    private let state = Atomic<UInt8>(BlockingJob.pending)
    private let body: @Sendable (_ started: Bool) -> Void

    /// `body(true)` runs the work; `body(false)` reports that it was cancelled before it started.
    init(_ body: @escaping @Sendable (_ started: Bool) -> Void) {
        self.body = body
    }

    /// Runs the job on the calling pool thread unless it was cancelled first.
    func run() {
        // Acquiring-and-releasing: decides the race with `cancel` (single RMW). The job's captures were
        // published to this thread by the pool's lock (submit pushed it under the lock this thread popped it
        // under), not by this RMW.
        if state.compareExchange(expected: BlockingJob.pending, desired: BlockingJob.running,
            ordering: .acquiringAndReleasing).exchanged
        {
            body(true)
        }
    }

    /// Cancels the job if it has not started. Returns true if it will never run.
    @discardableResult
    func cancel() -> Bool {
        // Acquiring-and-releasing: see `run`.
        if state.compareExchange(expected: BlockingJob.pending, desired: BlockingJob.cancelled,
            ordering: .acquiringAndReleasing).exchanged
        {
            body(false)
            return true
        }
        return false
    }
}

final class BlockingPool: Sendable {
    private struct Synced: ~Copyable {
        var queue = FIFO<BlockingJob>()
        var idle: [Parker] = []
        /// Threads that take jobs: started, and not yet decided to exit. `submit` starts a thread only while
        /// this is below the limit, so a thread leaves this count in the same critical section in which it
        /// decides to exit (else a job submitted between the decision and the thread's end would find the
        /// pool full and no thread that will ever pop it).
        var threads = 0
        /// Threads that decided to exit and have not finished (their stop hook may still be running).
        var exiting = 0
        var nextThreadNumber = 0
        var isShutdown = false
        /// Wake-ups of idle threads that were still on the idle stack before their keep-alive ran out (for
        /// tests; see `threadLoop`).
        var earlyWakeups = 0

        /// The calling thread decided to exit: it stops counting as one that takes jobs (see `threads`).
        mutating func retire() {
            threads -= 1
            exiting += 1
        }
    }

    private let synced = CheckedMutex(Synced())
    private let maxThreads: Int
    private let keepAliveNanos: UInt64
    private let stackSize: Int?
    /// Shared by the runtime: thread hooks, `Runtime.current` on pool threads. Unowned here (`Shared` does not
    /// own the pool, the runtime does); each pool thread holds its own strong reference for as long as it
    /// runs, since it may outlive the runtime (its job, its keep-alive wait and its stop hook all come after
    /// the runtime may have been released).
    unowned(unsafe) let shared: Shared
    /// Set when the last pool thread exits after shutdown.
    let drained = OneShotEvent()

    init(shared: Shared) {
        self.shared = shared
        let config = shared.configuration
        maxThreads = config.maxBlockingThreads
        keepAliveNanos = UInt64(max(0, config.blockingKeepAlive.nanoseconds))
        stackSize = config.threadStackSize
    }

    /// Queues `job`; starts or wakes a thread for it.
    func submit(_ job: BlockingJob) {
        enum Action { case none, wake(Parker), start(Int), cancel }
        let action = synced.withLock { s -> Action in
            if s.isShutdown { return .cancel }
            s.queue.push(job)
            if let parker = s.idle.popLast() { return .wake(parker) }
            if s.threads < maxThreads {
                s.threads += 1
                s.nextThreadNumber += 1
                return .start(s.nextThreadNumber - 1)
            }
            return .none
        }
        switch action {
        case .none: break
        case .wake(let parker): parker.unpark()
        case .start(let number): startThread(number: number)
        case .cancel: job.cancel()
        }
    }

    private func startThread(number: Int) {
        // Strong: see `shared`.
        let shared = self.shared
        let thread = Platform.spawnThread(name: "kyoto-blocking-\(number)", stackSize: stackSize) { [self, shared] in
            let context = ThreadContext(shared: shared, worker: nil, currentThread: nil, role: .blocking)
            ThreadContext.with(context) {
                ThreadContext.runHook(shared.configuration.onThreadStart)
                threadLoop()
                ThreadContext.runHook(shared.configuration.onThreadStop)
            }
            threadExited()
        }
        thread.detach()
    }

    private func threadLoop() {
        let parker = Parker()
        while true {
            enum Next { case run(BlockingJob), exit, wait }
            let next = synced.withLock { s -> Next in
                if let job = s.queue.pop() { return .run(job) }
                if s.isShutdown {
                    s.retire()
                    return .exit
                }
                s.idle.append(parker)
                return .wait
            }
            switch next {
            case .run(let job):
                job.run()
                continue
            case .exit:
                return
            case .wait:
                if waitWhileIdle(parker) { return }
            }
        }
    }

    /// Parks an idle thread (on the idle stack) until it is popped or its keep-alive runs out. Returns true
    /// if the thread must exit (it has left the thread count), false if it should look for work again.
    ///
    /// A wake-up that finds the thread still on the idle stack before the keep-alive has run out is not a
    /// time-out: a notify that lost the race with an earlier time-out (it popped the thread after the thread
    /// had woken, and unparked it after the thread had gone on to run the job) leaves a token behind, which
    /// ends the next park at once. Such a wake-up waits on for what is left of the keep-alive.
    private func waitWhileIdle(_ parker: Parker) -> Bool {
        let idleSince = Platform.monotonicNanos()
        while true {
            let waited = Platform.monotonicNanos() &- idleSince
            parker.park(timeoutNanos: waited >= keepAliveNanos ? 0 : keepAliveNanos - waited)
            enum Woke { case popped, early, timedOut(exit: Bool) }
            let woke = synced.withLock { s -> Woke in
                guard let i = s.idle.firstIndex(where: { $0 === parker }) else { return .popped }
                if Platform.monotonicNanos() &- idleSince < keepAliveNanos {
                    s.earlyWakeups += 1
                    return .early
                }
                // Timed out (nobody popped us): leave unless work arrived meanwhile.
                s.idle.remove(at: i)
                if s.queue.isEmpty || s.isShutdown {
                    s.retire()
                    return .timedOut(exit: true)
                }
                return .timedOut(exit: false)
            }
            switch woke {
            case .popped: return false
            case .early: continue
            case .timedOut(let exit): return exit
            }
        }
    }

    /// Wakes every idle thread without taking it off the idle stack, as a stale unpark would (for tests).
    func wakeIdleThreadsForTesting() {
        let idle = synced.withLock { $0.idle }
        for p in idle { p.unpark() }
    }

    /// How many early wake-ups idle threads have had (for tests).
    var earlyWakeups: Int { synced.withLock { $0.earlyWakeups } }

    private func threadExited() {
        let last = synced.withLock { s -> Bool in
            s.exiting -= 1
            return s.isShutdown && s.threads == 0 && s.exiting == 0
        }
        if last { drained.set() }
    }

    /// Stops accepting work, cancels queued jobs and lets idle threads exit. Running jobs finish.
    func shutdown() {
        let (jobs, idle, none) = synced.withLock { s -> ([BlockingJob], [Parker], Bool) in
            s.isShutdown = true
            var jobs: [BlockingJob] = []
            while let j = s.queue.pop() { jobs.append(j) }
            let idle = s.idle
            s.idle = []
            return (jobs, idle, s.threads == 0 && s.exiting == 0)
        }
        for j in jobs { j.cancel() }
        for p in idle { p.unpark() }
        if none { drained.set() }
    }

    /// (threads alive, idle threads, queued jobs), for metrics. A thread that is exiting still counts as
    /// alive until it has finished.
    var counts: (threads: Int, idle: Int, queued: Int) {
        synced.withLock { ($0.threads + $0.exiting, $0.idle.count, $0.queue.count) }
    }
}
