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
// The loop (`MainThreadExecutor.runUntil`) runs on the main thread only. Races considered: a job enqueued
// (from any thread) while the loop decides to park: the enqueuer pushes under the queue lock and then
// unparks the loop's `Parker`, whose `notified` state makes the next `park` return at once, and the loop
// looks at the queue again after every park, so no job is stranded. The body's completion is recorded on
// the main thread (the body is MainActor-isolated), after which the loop, which checks the condition after
// every job, returns.

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
    /// thread (the process's main thread) the `MainActor`'s executor, runs `body` on the main actor and
    /// returns its value (or rethrows its error) once it finishes.
    ///
    /// ```swift
    /// @main struct Server {
    ///     static func main() throws {
    ///         let runtime = Runtime.multiThread()
    ///         try runtime.runMain { try await serve() }   // @MainActor: runs on this thread
    ///         runtime.shutdown(timeout: .seconds(5))
    ///     }
    /// }
    /// ```
    ///
    /// While `body` runs, `@MainActor` code runs on the main thread (`MainActor.assertIsolated()` holds
    /// there), and plain tasks, task groups, default actors and ``spawn(name:priority:_:)`` run on the
    /// workers. `Runtime.current` is this runtime on the main thread too; blocking calls that would stall the
    /// MainActor (``blockOn(_:)``, ``shutdown(timeout:)``, ``blockInPlace(_:)``) trap there. When `body`
    /// returns, so does `runMain`: MainActor jobs enqueued afterwards wait, since nobody runs them.
    ///
    /// Call it first thing in a synchronous `main`, before any task is created: Swift picks its main
    /// executor once. Traps, naming the mistake, when called from async code (an `async main`: use
    /// ``installAsGlobalExecutor()`` there), on a current-thread runtime, when a global executor is already
    /// installed (by another runtime, a library, or an earlier `runMain`), or off the main thread.
    public func runMain<T: Sendable, E: Error>(_ body: sending @escaping @MainActor () async throws(E) -> T) throws(E) -> T {
        kyotoPrecondition(
            withUnsafeCurrentTask { $0 == nil },
            "BUG DETECTED: runMain called from async code; call it first thing in a synchronous main "
                + "(in an async main, use installAsGlobalExecutor instead)")
        var isMultiThread: Bool {
            if case .multiThread = scheduler { return true }
            return false
        }
        kyotoPrecondition(
            isMultiThread,
            "BUG DETECTED: runMain needs a multi-thread runtime: the main thread runs the MainActor, so it cannot "
                + "also drive a current-thread runtime")
        kyotoPrecondition(
            !shared.isClosed, "BUG DETECTED: runMain called on a Kyoto runtime that has been shut down")
        kyotoPrecondition(
            GlobalExecutorInstallation.installedRuntime == nil,
            "BUG DETECTED: runMain called while a global executor is already installed (another runtime, a "
                + "library, or an earlier runMain); call it once, first thing in main")
        kyotoPrecondition(
            Platform.isProcessMainThread,
            "BUG DETECTED: runMain called off the process's main thread; call it first thing in a synchronous main")
        let mainExecutor = MainThreadExecutor(shared: shared)
        kyotoPrecondition(
            GlobalExecutorInstallation.install(self, mainExecutor: mainExecutor),
            "BUG DETECTED: runMain called while a global executor is already installed (another runtime, a "
                + "library, or an earlier runMain); call it once, first thing in main")
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
        mainExecutor.runUntil { completion.isDone }
        return try completion.take().get()
    }
}

/// The result of `runMain`'s body. Written and read on the main thread only (the body is MainActor-isolated
/// and the loop runs there); the mutex makes that cheap to rely on.
private final class MainCompletion<T: Sendable, E: Error>: Sendable {
    private let result = Mutex<Result<T, E>?>(nil)

    func complete(_ value: Result<T, E>) { result.withLock { $0 = value } }
    var isDone: Bool { result.withLock { $0 != nil } }
    func take() -> Result<T, E> { result.withLock { $0.take()! } }
}

/// The MainActor's executor under `runMain`: a FIFO of jobs that the process's main thread runs.
final class MainThreadExecutor: MainExecutor, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `jobs` lives in a CheckedMutex, `stopRequested` is atomic, `parker` is
    // thread-safe and `context` is used only by the main thread (inside `runUntil`).
    private let jobs = CheckedMutex(JobDeque())
    private let parker = Parker()
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
        runUntil { false }
    }

    /// Runs MainActor jobs on the main thread until `condition` holds (checked after every job and every
    /// wake-up) or `stop()` is called.
    func runUntil(_ condition: () -> Bool) {
        kyotoPrecondition(
            Platform.isProcessMainThread,
            "BUG DETECTED: the MainActor's run loop was started off the process's main thread")
        ThreadContext.with(context) {
            while !condition() {
                if let job = jobs.withLock({ $0.popFront() }) {
                    context.budget = initialBudget
                    job.unownedJob.runSynchronously(on: asUnownedSerialExecutor())
                    continue
                }
                // Acquiring: pairs with the releasing store in `stop`.
                if stopRequested.exchange(false, ordering: .acquiring) { return }
                parker.park()
            }
        }
    }

    /// Makes a running `run()` or `runUntil(_:)` return after the job it is running.
    func stop() {
        // Releasing: pairs with the acquiring exchange in `runUntil`.
        stopRequested.store(true, ordering: .releasing)
        parker.unpark()
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
