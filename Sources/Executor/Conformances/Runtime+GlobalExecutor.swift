// Installing a runtime as THE global executor of Swift Concurrency.
//
// Swift's runtime calls `swift_task_enqueueGlobal_hook`, if set, for every job that has no executor of its
// own: plain `Task {}` and `Task.detached {}`, default-actor jobs of tasks without an executor
// preference, resumptions after `Task.sleep`. We write that hook (a function pointer exported by
// libswift_Concurrency) with an atomic compare-and-swap from nil, so the first writer wins and a hook
// somebody else installed (SwiftNIO's takeover, say) is never overwritten.
//
// Assumptions (as SwiftNIO's takeover makes them; verified on Swift 6.3.1 Linux, see
// shared/reference/swift-executors.md §2a): the hook's type is
// `(Job *, original) -> void` with the Swift calling convention, which a `@convention(thin)` Swift
// function matches; a thin function value is one code pointer. The winner also becomes Swift's default
// executor (`InstalledExecutorFactory` below). MainActor stays on the main queue, except under
// `Runtime.runMain` (Runtime+Main.swift), which makes the process's main thread its executor.
//
// An installed runtime is retained for the rest of the process (the hook cannot be taken back safely
// while jobs may be in flight).

import CKyoto
import Synchronization

#if compiler(>=6.3)
@_spi(ExperimentalCustomExecutors) import _Concurrency
#endif

#if canImport(Glibc)
import Glibc
#endif

private typealias EnqueueGlobalOriginal = @convention(thin) (UnownedJob) -> Void
private typealias EnqueueGlobalHook = @convention(thin) (UnownedJob, EnqueueGlobalOriginal) -> Void

enum GlobalExecutorInstallation {
    /// Bits of the installed runtime's (retained) address; 0 when none.
    private static let installed = Atomic<UInt>(0)

    @inline(__always)
    static func isInstalled(_ runtime: Runtime) -> Bool {
        // Acquiring: pairs with the releasing CAS in `install`.
        installed.load(ordering: .acquiring) == UInt(bitPattern: Unmanaged.passUnretained(runtime).toOpaque())
    }

    static var installedRuntime: Runtime? {
        // Acquiring: pairs with the releasing CAS in `install`.
        let bits = installed.load(ordering: .acquiring)
        guard let p = UnsafeMutableRawPointer(bitPattern: bits) else { return nil }
        return Unmanaged<Runtime>.fromOpaque(p).takeUnretainedValue()
    }

    /// Installs `runtime` (see `Runtime.installAsGlobalExecutor`). `mainExecutor`, from `runMain`, replaces
    /// the MainActor's executor; nil keeps it.
    static func install(_ runtime: Runtime, mainExecutor: MainThreadExecutor? = nil) -> Bool {
        guard let process = dlopen(nil, RTLD_NOW), let symbol = dlsym(process, "swift_task_enqueueGlobal_hook") else {
            return false
        }
        let retained = Unmanaged.passRetained(runtime).toOpaque()
        // Acquiring-and-releasing: publishes the runtime to the hook (which loads it acquiring).
        // The acquiring half is not needed: nothing is read through the value a failed exchange sees.
        guard
            installed.compareExchange(
                expected: 0, desired: UInt(bitPattern: retained), ordering: .acquiringAndReleasing
            ).exchanged
        else {
            Unmanaged<Runtime>.fromOpaque(retained).release()
            return false
        }
        let hook: EnqueueGlobalHook = { job, original in
            GlobalExecutorInstallation.enqueue(job, original: original)
        }
        let slot = symbol.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
        if kyoto_pointer_cas(slot, nil, unsafeBitCast(hook, to: UnsafeMutableRawPointer.self)) {
            #if compiler(>=6.3)
            InstalledExecutorFactory.install(mainExecutor: mainExecutor)
            #endif
            // Plain tasks are not held by the registry: return stolen ones home (HomeReturns.swift).
            // Relaxed: a performance choice; a worker that reads the old value just frees where it is.
            runtime.shared.returnsStolenTasksHome.store(true, ordering: .relaxed)
            return true
        }
        // Somebody else holds the hook: back out. Releasing (relaxed would do: 0 publishes nothing); read by
        // the acquiring loads in `isInstalled` and `installedRuntime`.
        installed.store(0, ordering: .releasing)
        Unmanaged<Runtime>.fromOpaque(retained).release()
        return false
    }

    private static func enqueue(_ job: UnownedJob, original: EnqueueGlobalOriginal) {
        // Acquiring: pairs with the releasing CAS in `install`, which happens before the hook is stored.
        // Swift reads the hook slot with a plain load, so a thread that was already running when `install`
        // stored it is not ordered after that CAS: on a weakly ordered CPU it could see the hook and still
        // read 0 here. Such a job goes to the executor the hook replaced rather than crashing.
        let bits = installed.load(ordering: .acquiring)
        guard let address = UnsafeMutableRawPointer(bitPattern: bits) else { return original(job) }
        Unmanaged<Runtime>.fromOpaque(address)._withUnsafeGuaranteedRef { $0.schedule(JobRef(job)) }
    }
}

extension Runtime {
    /// Makes this runtime Swift Concurrency's global executor for the rest of the process: plain
    /// `Task {}`, `Task.detached {}`, `async let`, task-group children and default actors of tasks without
    /// an executor preference all run on it. Returns false if a global-executor hook is already installed
    /// (by another runtime or library); the first installer wins.
    ///
    /// The runtime also becomes Swift's default executor (`globalConcurrentExecutor`), so `Task.yield`
    /// and `Task.sleep` of plain tasks are served by it too (timers fire on Kyoto's timer queue).
    /// Once installed, ``spawn(name:priority:_:)`` and ``blockOn(_:)`` create tasks without an executor
    /// preference, so Swift keeps its direct actor switching. `MainActor` is not moved: to run it on the
    /// main thread under Kyoto, start the program with ``runMain(_:)`` from a synchronous `main` instead.
    ///
    /// Call it at start-up, before other threads run Swift Concurrency work: Swift stores its default
    /// executor in a plain variable, so replacing it while another thread reads it is a data race.
    ///
    /// Traps on a runtime that has been shut down, and on a current-thread runtime when called from async
    /// code: only a ``blockOn(_:)`` drives a current-thread runtime, so from inside a task the first hop to
    /// the global executor would wait for ever. Install a current-thread runtime from a synchronous `main`,
    /// then enter it with `blockOn`.
    @discardableResult
    public func installAsGlobalExecutor() -> Bool {
        kyotoPrecondition(
            !shared.isClosed,
            "BUG DETECTED: installAsGlobalExecutor called on a Kyoto runtime that has been shut down")
        if case .currentThread = scheduler {
            kyotoPrecondition(
                withUnsafeCurrentTask { $0 == nil },
                "BUG DETECTED: installAsGlobalExecutor called from async code on a current-thread runtime, which "
                    + "only a blockOn drives; install it from a synchronous main, then enter it with blockOn")
        }
        return GlobalExecutorInstallation.install(self)
    }

    /// Whether this runtime is installed as the global executor.
    public var isGlobalExecutor: Bool { GlobalExecutorInstallation.isInstalled(self) }
}

#if compiler(>=6.3)
/// Makes the installed runtime Swift's *default executor* too (`Task.defaultExecutor`,
/// `globalConcurrentExecutor`), keeping the main executor as it was (`installAsGlobalExecutor`) or making
/// it the main-thread loop of `runMain` (Runtime+Main.swift).
///
/// Why: with the hook alone, Swift's default executor stays Dispatch's, and tasks without an executor
/// preference keep treating it as theirs. Measured on Swift 6.3.1, per round of "start a plain task that
/// calls a nonisolated async function and yields once, await it": 9 jobs through the runtime (8
/// `swift_task_enqueue` calls) with the hook alone, 4 jobs (3 calls) with the runtime as default executor:
/// the hops in and out of nonisolated code and the yield's wake-up each cost an extra enqueue
/// (`chained_spawn`: 2 enqueues per spawn instead of 1; `yield_many`: 3 per yield instead of 1). Code that
/// asks Swift for the current executor (`Task.yield`, `Task.sleep`) also gets the runtime, so timers run
/// on Kyoto's timer queue. The global-installation tests pin both effects.
///
/// Swift's `_createExecutors(factory:)` (SPI in 6.3) stores the factory's two executors in plain static
/// variables, which is why ``Runtime/installAsGlobalExecutor()`` must be called before other concurrent
/// work reads them (its documentation says so). The main executor is read first and stored back unchanged,
/// except under `runMain`, which stores the main thread's loop instead.
private enum InstalledExecutorFactory: ExecutorFactory {
    // Written once, by the thread that won the hook's compare-and-swap, before `_createExecutors` reads it.
    nonisolated(unsafe) private static var main: (any MainExecutor)?

    static var mainExecutor: any MainExecutor { main! }
    /// The installed runtime (published by the compare-and-swap in `GlobalExecutorInstallation.install`).
    static var defaultExecutor: any TaskExecutor { GlobalExecutorInstallation.installedRuntime! }

    /// Called by the installer after it won the hook, so `installedRuntime` is set.
    static func install(mainExecutor: MainThreadExecutor?) {
        main = mainExecutor ?? MainActor.executor
        GlobalExecutorInstallation.savePreviousDefault(Task.defaultExecutor)
        _createExecutors(factory: InstalledExecutorFactory.self)
    }
}
#endif

extension GlobalExecutorInstallation {
    /// Bits of the (retained) default executor Swift had before the installed runtime replaced it; 0 when
    /// none was saved. The runtime hands it the sleeps on clocks it cannot measure itself (see
    /// Runtime+SchedulingExecutor.swift): handing them to `globalConcurrentExecutor`, which is the runtime
    /// itself once installed, would recurse.
    private static let previousDefault = Atomic<UInt>(0)

    static func savePreviousDefault(_ executor: any TaskExecutor) {
        let retained = Unmanaged.passRetained(executor as AnyObject).toOpaque()
        // Releasing: pairs with the acquiring load in `previousDefaultExecutor`.
        previousDefault.store(UInt(bitPattern: retained), ordering: .releasing)
    }

    /// The default executor from before the installation, if a runtime was installed.
    static var previousDefaultExecutor: AnyObject? {
        // Acquiring: pairs with the releasing store in `savePreviousDefault`.
        let bits = previousDefault.load(ordering: .acquiring)
        guard let p = UnsafeRawPointer(bitPattern: bits) else { return nil }
        return Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue()
    }
}
