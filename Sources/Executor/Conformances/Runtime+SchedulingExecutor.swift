// Runtime as a `SchedulingExecutor` (SPI in Swift 6.3): `Task.sleep` on a Kyoto task lands on Kyoto's own
// timer queue instead of Dispatch's timer thread.
//
// Swift's `Task.sleep` asks the task's executor (preference or current) whether it is a
// `SchedulingExecutor` and, if so, hands it the wake-up job with a delay. Without this conformance the
// timer runs on Dispatch, which also makes sleeping tasks depend on Dispatch's threads being free.
// Clocks whose `Duration` is Swift's `Duration` (ContinuousClock, SuspendingClock) are measured on
// CLOCK_MONOTONIC; any other clock is handed to the default global executor's scheduling, whose wake-up
// job then resumes the task on Kyoto as usual.

#if compiler(>=6.3)
@_spi(ExperimentalCustomExecutors) @_spi(ExperimentalScheduling) import _Concurrency

@_spi(ExperimentalScheduling)
extension Runtime: SchedulingExecutor {
    /// Schedules `job` to run after `delay` on `clock`. Called by Swift Concurrency (`Task.sleep`).
    public func enqueue<C: Clock>(
        _ job: consuming ExecutorJob, after delay: C.Duration, tolerance: C.Duration?, clock: C
    ) {
        if let d = delay as? Duration {
            scheduleTimer(JobRef(job), afterNanos: d.nanoseconds)
            return
        }
        if let fallback = GlobalExecutorInstallation.fallbackScheduler(otherThan: shared.runtimeRef) {
            fallback.enqueue(job, after: delay, tolerance: tolerance, clock: clock)
        } else {
            // No way to measure this clock: run the wake-up now rather than lose it.
            schedule(JobRef(job))
        }
    }
}

extension GlobalExecutorInstallation {
    /// Swift's default executor as it was before any runtime was installed, if it can schedule delayed
    /// jobs and is not `runtime` (whose scheduling would come straight back to it). Once a runtime is
    /// installed, `globalConcurrentExecutor` is that runtime: the default from before the installation is
    /// used instead. `runtime` is compared by address only: a terminated runtime's drainer may outlive the
    /// runtime object, which must not be touched then.
    static func fallbackScheduler(otherThan runtime: Unmanaged<Runtime>?) -> (any SchedulingExecutor)? {
        let candidate = previousDefaultExecutor ?? (globalConcurrentExecutor as AnyObject)
        guard let fallback = candidate as? any SchedulingExecutor,
            Unmanaged.passUnretained(fallback as AnyObject).toOpaque() != runtime?.toOpaque()
        else { return nil }
        return fallback
    }
}

extension Shared {
    /// Hands a `Task.sleep` wake-up job of a terminated runtime to `fallbackScheduler`, to run after
    /// `nanos` nanoseconds. Returns false (and keeps the job) when there is none, or it is this runtime.
    func handOffAfterTermination(_ job: JobRef, afterNanos nanos: UInt64) -> Bool {
        guard let fallback = GlobalExecutorInstallation.fallbackScheduler(otherThan: runtimeRef) else {
            return false
        }
        fallback.enqueue(
            ExecutorJob(job.unownedJob), after: .nanoseconds(Int64(clamping: nanos)), tolerance: nil,
            clock: ContinuousClock())
        return true
    }
}
#else
extension Shared {
    /// Without the scheduling SPI there is no executor to hand a delayed job to.
    func handOffAfterTermination(_ job: JobRef, afterNanos nanos: UInt64) -> Bool { false }
}
#endif
