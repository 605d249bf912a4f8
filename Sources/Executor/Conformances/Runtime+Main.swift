// `Runtime.runMain`: the synchronous-main entry (Tokio's `#[tokio::main]`). It installs the runtime as the
// global executor and makes the process's main thread the MainActor's executor, so `@MainActor` code runs
// on the real main thread while everything else runs on the workers.
//
// Why a synchronous main: Swift picks the main executor once. `_createExecutors(factory:)` (SPI in 6.3)
// stores the factory's main executor in a plain variable, and an `async main`'s task has already computed
// its hop target by the time any of its code runs; swapping then strands the main task on the old executor
// (verified: the program hangs; shared reference, swift-executors.md §2b). In an `async main`,
// `installAsGlobalExecutor()` keeps the main executor and swaps only the default one.
//
// When the body finishes, runMain shuts the runtime down as leaving `#[tokio::main]` drops Tokio's runtime:
// it cancels the tasks the runtime spawned (`spawn`, `spawnBlocking`; its registry) and waits for them while
// the main thread keeps running MainActor jobs (a task unwinding may need the MainActor). Plain `Task {}` and
// `Task.detached` tasks are not in the registry: nothing cancels them (Swift gives an executor no handle on
// them), and they keep running on the post-shutdown drainer thread. Once runMain returns nothing runs
// MainActor jobs any more.
//
// The loop (`MainThreadExecutor.drive`) runs on the main thread only. Races considered:
// - A job enqueued (from any thread) while the loop decides to park: the enqueuer pushes under the queue
//   lock and then unparks the loop's `Parker`, whose `notified` state makes the next `park` return at once,
//   and the loop looks at the queue again after every park, so no job is stranded.
// - The body's completion is recorded on the main thread (the body is MainActor-isolated); the loop checks
//   its condition after every job.
// - Termination during the shutdown wait: `Shared.markTerminated` stores `terminated` and then unparks the
//   registered `terminationWaker` (this loop's parker); the loop re-checks `terminated` after every wake-up.

import CKyoto
import Synchronization

#if compiler(>=6.3)
@_spi(ExperimentalCustomExecutors) import _Concurrency
#endif

#if canImport(Glibc)
import Glibc
#endif

#if compiler(>=6.3)
extension Runtime {
    /// Runs `body` as the program's main task, Tokio's `#[tokio::main]` for a synchronous `main`: installs
    /// this runtime as Swift's global executor (as ``installAsGlobalExecutor()`` does), makes the calling
    /// thread (the process's main thread) the `MainActor`'s executor, and runs `body` on the main actor.
    /// When `body` finishes, shuts the runtime down, as leaving `#[tokio::main]` drops Tokio's runtime:
    /// cancels the tasks started with ``spawn(name:priority:_:)`` (and `spawnBlocking`) and waits up to
    /// `shutdownTimeout` for them to unwind, running the MainActor jobs they need meanwhile. Then returns
    /// `body`'s value (or rethrows its error). Plain `Task {}` and `Task.detached` tasks still running are not
    /// cancelled (the runtime has no handle on them): they go on running, one job at a time, on the
    /// post-shutdown drainer thread, and a MainActor hop of theirs never runs once `runMain` has returned.
    /// Keep the work that must finish, or be cancelled, with `body`: a task group or `spawn`.
    ///
    /// ```swift
    /// @main struct Server {
    ///     static func main() throws {
    ///         try Runtime.multiThread().runMain { try await serve() }   // @MainActor: runs on this thread
    ///     }
    /// }
    /// ```
    ///
    /// While `body` runs, `@MainActor` code runs on the main thread (`MainActor.assertIsolated()` holds
    /// there), and plain tasks, task groups, default actors and ``spawn(name:priority:_:)`` run on the
    /// workers. `Runtime.current` is this runtime on the main thread too; calls that would block the MainActor
    /// on the runtime (``blockOn(_:)``, ``shutdown(timeout:)``, ``blockInPlace(_:)``) trap there. Once
    /// `runMain` returns, nothing runs MainActor jobs any more: return from `main`. The main thread runs
    /// Kyoto's loop, not Dispatch's, so `DispatchQueue.main` is not drained: use the MainActor.
    ///
    /// Call it first thing in a synchronous `main`, before anything creates a task: Swift picks its main
    /// executor once, and a MainActor task created earlier waits on Dispatch's main queue forever. Traps,
    /// naming the mistake, when called from async code (in an `async main`, use
    /// ``installAsGlobalExecutor()``), on a current-thread runtime, on a runtime that has been shut down, when
    /// a global executor is already installed (by another runtime, a library, an earlier `runMain` or
    /// ``installAsGlobalExecutor()``), or off the main thread.
    public func runMain<T: Sendable, E: Error>(
        shutdownTimeout: Duration = .seconds(10), _ body: sending @escaping @MainActor () async throws(E) -> T
    ) throws(E) -> T {
        kyotoPrecondition(
            withUnsafeCurrentTask { $0 == nil },
            "BUG DETECTED: runMain called from async code; call it first thing in a synchronous main "
                + "(in an async main, use installAsGlobalExecutor instead)")
        guard case .multiThread = scheduler else {
            fatalError(
                "BUG DETECTED: runMain needs a multi-thread runtime: the main thread runs the MainActor, so it "
                    + "cannot also drive a current-thread runtime")
        }
        kyotoPrecondition(
            !shared.isClosed, "BUG DETECTED: runMain called on a Kyoto runtime that has been shut down")
        let installedMessage =
            "BUG DETECTED: runMain called while a global executor is already installed (by another runtime, a "
            + "library, an earlier runMain or installAsGlobalExecutor); call runMain once, first thing in main"
        kyotoPrecondition(GlobalExecutorInstallation.installedRuntime == nil, installedMessage)
        kyotoPrecondition(
            Platform.isProcessMainThread,
            "BUG DETECTED: runMain called off the process's main thread; call it first thing in a synchronous main")
        let mainExecutor = MainThreadExecutor(shared: shared)
        kyotoPrecondition(GlobalExecutorInstallation.install(self, mainExecutor: mainExecutor), installedMessage)

        let completion = MainCompletion<T, E>()
        Task { @MainActor in
            let result: Result<T, E>
            do throws(E) {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            completion.complete(result)
        }
        mainExecutor.drive(until: { completion.isDone })
        let result = completion.take()

        // Shut down while still serving the MainActor: the tasks being cancelled may need it to unwind. The
        // waker is registered before shutdown begins, so the termination cannot come before it.
        shared.terminationWaker.withLock { $0 = mainExecutor.parker }
        _ = shutdown(timeout: shutdownTimeout) { deadline in
            // Sequentially consistent: pairs with the store in `Shared.markTerminated`.
            mainExecutor.drive(until: { shared.terminated.load(ordering: .sequentiallyConsistent) }, deadline: deadline)
        }
        return try result.get()
    }
}

/// The result of `runMain`'s body. Written and read on the main thread only (the body is MainActor-isolated
/// and the loop runs there); the mutex makes that cheap to rely on.
private final class MainCompletion<T: Sendable, E: Error>: Sendable {
    private let result = CheckedMutex<Result<T, E>?>(nil)

    func complete(_ value: Result<T, E>) { result.withLock { $0 = value } }
    var isDone: Bool { result.withLock { $0 != nil } }
    func take() -> Result<T, E> { result.withLock { $0.take()! } }
}

/// The MainActor's executor under `runMain`: a FIFO of jobs that the process's main thread runs.
final class MainThreadExecutor: MainExecutor, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `jobs` lives in a CheckedMutex, `running` and `stopRequested` are
    // atomic, `parker` is thread-safe and `context` is used only by the main thread (inside `drive`).
    private let jobs = CheckedMutex(JobDeque())
    /// The main thread parks here when it has no job; enqueues, `stop()` and termination unpark it.
    let parker = Parker()
    /// Whether a loop is running (main thread only writes it).
    private let running = Atomic<Bool>(false)
    private let stopRequested = Atomic<Bool>(false)
    private let context: ThreadContext

    init(shared: Shared) {
        context = ThreadContext(shared: shared, worker: nil, currentThread: nil, role: .mainThread)
    }

    /// Queues `job` for the main thread. Any thread.
    func enqueue(_ job: consuming ExecutorJob) {
        let ref = JobRef(job)
        jobs.withLock { $0.pushBack(ref) }
        parker.unpark()
    }

    /// Runs MainActor jobs on the calling thread, which must be the process's main thread, until `stop()`.
    func run() throws {
        drive(until: { false }, stoppable: true)
    }

    /// Runs MainActor jobs on the main thread until `condition` holds or `stop()` is called.
    func runUntil(_ condition: () -> Bool) throws {
        drive(until: condition, stoppable: true)
    }

    /// Makes a running `run()` or `runUntil(_:)` return after the job it is running; with no loop running,
    /// does nothing. The loop of `runMain` cannot be stopped: it ends when its body does.
    func stop() {
        // Relaxed: a loop starting concurrently may miss this stop, which is as if it came first.
        guard running.load(ordering: .relaxed) else { return }
        // Relaxed: the flag carries no data; the unpark below wakes the loop to read it.
        stopRequested.store(true, ordering: .relaxed)
        parker.unpark()
    }

    /// Runs MainActor jobs on the main thread until `condition` holds (checked after every job and every
    /// wake-up), the monotonic `deadline` (nanoseconds) passes, or, if `stoppable`, `stop()` is called.
    /// Returns whether `condition` held.
    @discardableResult
    func drive(until condition: () -> Bool, deadline: UInt64? = nil, stoppable: Bool = false) -> Bool {
        kyotoPrecondition(
            Platform.isProcessMainThread,
            "BUG DETECTED: the MainActor's run loop was started off the process's main thread")
        // Relaxed: only the main thread writes `running`.
        kyotoPrecondition(
            !running.exchange(true, ordering: .relaxed),
            "BUG DETECTED: the MainActor's run loop was started from inside a MainActor job")
        // Relaxed: drops a stop aimed at an earlier loop; the flag carries no data, only the request itself
        // (a `stop()` racing with this start may be dropped too, as `stop()` documents).
        stopRequested.store(false, ordering: .relaxed)
        // Relaxed: only the main thread writes `running`; `stop` tolerates a stale value (see there).
        defer { running.store(false, ordering: .relaxed) }
        return ThreadContext.with(context) { () -> Bool in
            while true {
                if condition() { return true }
                // Relaxed: see `stop`.
                if stoppable && stopRequested.exchange(false, ordering: .relaxed) { return false }
                // With a deadline (shutdown), checked before every job too: MainActor work that keeps
                // re-queuing itself would otherwise hold the loop past it for ever.
                if let deadline, Platform.monotonicNanos() >= deadline { return condition() }
                if let job = jobs.withLock({ $0.popFront() }) {
                    kyoto_budget_refill(Int32(initialBudget))
                    job.unownedJob.runSynchronously(on: asUnownedSerialExecutor())
                    continue
                }
                if let deadline {
                    let now = Platform.monotonicNanos()
                    if now >= deadline { return condition() }
                    _ = parker.park(timeoutNanos: deadline - now)
                } else {
                    _ = parker.park()
                }
            }
        }
    }

    func isIsolatingCurrentContext() -> Bool? {
        Platform.isProcessMainThread
    }

    func checkIsolated() {
        kyotoPrecondition(
            Platform.isProcessMainThread,
            "BUG DETECTED: MainActor-isolated code ran off the process's main thread")
    }
}
#endif
