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
// function matches; a thin function value is one code pointer. Timers keep running on Dispatch, whose
// timer thread then enqueues the wake-up through this hook; MainActor stays on the main queue.
//
// An installed runtime is retained for the rest of the process (the hook cannot be taken back safely
// while jobs may be in flight).

import CKyoto
import Synchronization

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

    static func install(_ runtime: Runtime) -> Bool {
        guard let process = dlopen(nil, RTLD_NOW), let symbol = dlsym(process, "swift_task_enqueueGlobal_hook") else {
            return false
        }
        let retained = Unmanaged.passRetained(runtime).toOpaque()
        // Acquiring-and-releasing: publishes the runtime to the hook (which loads it acquiring).
        guard
            installed.compareExchange(
                expected: 0, desired: UInt(bitPattern: retained), ordering: .acquiringAndReleasing
            ).exchanged
        else {
            Unmanaged<Runtime>.fromOpaque(retained).release()
            return false
        }
        let hook: EnqueueGlobalHook = { job, _ in
            GlobalExecutorInstallation.enqueue(job)
        }
        let slot = symbol.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
        if kyoto_pointer_cas(slot, nil, unsafeBitCast(hook, to: UnsafeMutableRawPointer.self)) {
            return true
        }
        // Somebody else holds the hook: back out.
        installed.store(0, ordering: .releasing)
        Unmanaged<Runtime>.fromOpaque(retained).release()
        return false
    }

    private static func enqueue(_ job: UnownedJob) {
        // Acquiring: pairs with the releasing CAS in `install`.
        let bits = installed.load(ordering: .acquiring)
        let runtime = Unmanaged<Runtime>.fromOpaque(UnsafeMutableRawPointer(bitPattern: bits)!)
        runtime._withUnsafeGuaranteedRef { $0.schedule(JobRef(job)) }
    }
}

extension Runtime {
    /// Makes this runtime Swift Concurrency's global executor for the rest of the process: plain
    /// `Task {}`, `Task.detached {}`, `async let`, task-group children and default actors of tasks without
    /// an executor preference all run on it. Returns false if a global-executor hook is already installed
    /// (by another runtime or library); the first installer wins.
    ///
    /// Once installed, ``spawn(name:priority:_:)`` and ``blockOn(_:)`` create tasks without an executor
    /// preference, so Swift keeps its direct actor switching. `Task.sleep` timers still fire on
    /// Dispatch's timer thread and resume on this runtime; `MainActor` is not moved.
    @discardableResult
    public func installAsGlobalExecutor() -> Bool {
        GlobalExecutorInstallation.install(self)
    }

    /// Whether this runtime is installed as the global executor.
    public var isGlobalExecutor: Bool { GlobalExecutorInstallation.isInstalled(self) }
}
