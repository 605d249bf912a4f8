// Runtime.Configuration: every knob of a runtime, validated once at `Runtime.init`.

extension Runtime {
    /// How a ``Runtime`` is built. Start from `Configuration()` and change the fields you need.
    ///
    /// Invalid values (workers outside 1...``maxWorkerThreads``, zero intervals, zero blocking threads, a stack
    /// size below the platform's minimum, a negative keep-alive, `startPaused` without `.currentThread`) trap at
    /// `Runtime.init` with a message naming the field.
    public struct Configuration: Sendable {
        /// The scheduler flavor.
        public enum Flavor: Sendable, Equatable {
            /// A pool of worker threads with per-worker queues and work stealing (Tokio's `multi_thread`).
            case multiThread
            /// No worker threads: jobs run only on the thread inside ``Runtime/blockOn(_:)``
            /// (Tokio's `current_thread`).
            case currentThread
        }

        /// Which scheduler runs the jobs. Default `.multiThread`.
        public var flavor: Flavor
        /// Number of worker threads for `.multiThread`, from 1 to ``maxWorkerThreads``; nil means the CPUs
        /// available to this process (affinity mask and cgroup quota). Ignored by `.currentThread`.
        public var workerThreads: Int?
        /// Worker threads are named `<threadName>-N` (Linux keeps the first 15 bytes). Default
        /// `"kyoto-worker"`.
        public var threadName: String
        /// Stack size of runtime threads in bytes, at least the platform's minimum (PTHREAD_STACK_MIN); nil
        /// means the platform default.
        public var threadStackSize: Int?
        /// Upper bound of the blocking pool's threads. Default 512; must be greater than 0.
        public var maxBlockingThreads: Int
        /// How long an idle blocking thread waits for work before exiting. Default 10 seconds.
        public var blockingKeepAlive: Duration
        /// Every `globalQueueInterval` ticks a worker looks at the inject queue before its own queue, so
        /// remotely scheduled work is not starved. nil: 31 for `.currentThread`; self-tuning (starting
        /// at 61) for `.multiThread`. Must be greater than 0.
        public var globalQueueInterval: Int?
        /// Every `eventInterval` ticks (jobs) a worker runs maintenance: it fires due timers, accounts busy
        /// time, releases the finished tasks other workers returned and (multi-thread, with
        /// `globalQueueInterval` nil) retunes the global-queue interval; the current-thread driver fires timers
        /// and runs LocalSets after each round of at most this many jobs. Default 61; must be greater than 0.
        public var eventInterval: Int
        /// Whether a job scheduled from a worker goes to that worker's LIFO slot (run next) rather than
        /// the back of its queue. Default true.
        public var lifoSlot: Bool
        /// Called on each runtime thread when it starts, before it runs any job.
        ///
        /// In the four thread hooks the runtime is not reachable: `Runtime.current` is nil and the free
        /// `spawn`/`spawnBlocking` trap, since a hook may run while the runtime is being released. A hook
        /// that needs the runtime captures it, weakly (a strong capture keeps the runtime alive for ever,
        /// through its own configuration).
        public var onThreadStart: (@Sendable () -> Void)?
        /// Called on each runtime thread right before it exits.
        public var onThreadStop: (@Sendable () -> Void)?
        /// Called on a worker right before it parks for lack of work.
        public var onThreadPark: (@Sendable () -> Void)?
        /// Called on a worker right after it wakes from parking.
        public var onThreadUnpark: (@Sendable () -> Void)?
        /// Start with a paused test clock (Tokio's `start_paused`; current-thread flavor only). The runtime's
        /// time (``Runtime/clock``, and the deadlines of its tasks' `Task.sleep`,
        /// ``interval(every:missedTickBehavior:)`` and ``timeout(after:_:)``) then stands still until
        /// ``Runtime/advance(by:)`` moves it, or until the driver has nothing to run and no `spawnBlocking`
        /// job is in flight, when it jumps to the next timer's deadline. Tests of timing logic run instantly,
        /// and sleeps on ``Runtime/clock`` fire at the same instants on every run.
        ///
        /// Limits: the driver cannot see work elsewhere (a LocalSet on a thread of its own, another runtime,
        /// a plain thread), so the clock may jump while it runs. A cancelled `Task.sleep` still counts as a
        /// pending timer until its deadline (Swift does not tell the executor about the cancellation, and
        /// keeps about 1.5 KB per such sleep until then), so a jump may go to it; a cancelled sleep on
        /// ``Runtime/clock`` is skipped. `Task.sleep` delays are rounded up to whole
        /// milliseconds and can end early by the time the thread was held up between the call and the
        /// runtime receiving it (Swift measures them on the real clock); sleeps on ``Runtime/clock`` are
        /// exact. `ContinuousClock.now` keeps real time. Default false.
        public var startPaused: Bool

        /// A configuration with every field at its default.
        public init(flavor: Flavor = .multiThread) {
            self.flavor = flavor
            workerThreads = nil
            threadName = "kyoto-worker"
            threadStackSize = nil
            maxBlockingThreads = 512
            blockingKeepAlive = .seconds(10)
            globalQueueInterval = nil
            eventInterval = 61
            lifoSlot = true
            onThreadStart = nil
            onThreadStop = nil
            onThreadPark = nil
            onThreadUnpark = nil
            startPaused = false
        }

        /// The most worker threads a runtime can have (the scheduler's idle state counts them in 16 bits).
        public static let maxWorkerThreads = 65_535

        /// Traps with a message naming the first invalid field.
        func validate() {
            if let n = workerThreads {
                kyotoPrecondition(n > 0, "Runtime.Configuration.workerThreads must be greater than 0 (got \(n))")
                kyotoPrecondition(
                    n <= Configuration.maxWorkerThreads,
                    "Runtime.Configuration.workerThreads must be at most \(Configuration.maxWorkerThreads) (got \(n))")
            }
            if let n = globalQueueInterval {
                kyotoPrecondition(n > 0, "Runtime.Configuration.globalQueueInterval must be greater than 0 (got \(n))")
                kyotoPrecondition(
                    n <= Int(UInt32.max),
                    "Runtime.Configuration.globalQueueInterval must be at most \(UInt32.max) (got \(n))")
            }
            kyotoPrecondition(eventInterval > 0, "Runtime.Configuration.eventInterval must be greater than 0 (got \(eventInterval))")
            kyotoPrecondition(
                eventInterval <= Int(UInt32.max),
                "Runtime.Configuration.eventInterval must be at most \(UInt32.max) (got \(eventInterval))")
            kyotoPrecondition(
                maxBlockingThreads > 0,
                "Runtime.Configuration.maxBlockingThreads must be greater than 0 (got \(maxBlockingThreads))")
            if let n = threadStackSize {
                kyotoPrecondition(n > 0, "Runtime.Configuration.threadStackSize must be greater than 0 (got \(n))")
                // Below the minimum, pthreads refuses the size and the thread would silently get the default.
                let minimum = Platform.minimumThreadStackSize
                kyotoPrecondition(
                    n >= minimum,
                    "Runtime.Configuration.threadStackSize must be at least \(minimum) bytes, the platform's "
                        + "minimum thread stack (got \(n))")
            }
            kyotoPrecondition(
                blockingKeepAlive >= .zero,
                "Runtime.Configuration.blockingKeepAlive must not be negative (got \(blockingKeepAlive))")
            kyotoPrecondition(
                !startPaused || flavor == .currentThread,
                "Runtime.Configuration.startPaused requires the currentThread flavor (a paused clock needs the "
                    + "single driver thread to decide when to move it)")
        }
    }
}
