/// shutdown-demo: graceful shutdown of a small job service, with Kyoto's timers.
///
/// ```
/// producer ──► Mpsc(capacity 16) per worker ──► 3 workers
/// heartbeat: interval(every: 200 ms) prints progress
/// ```
///
/// The service runs for one second, then shuts down the way a server does:
/// 1. stop intake: the producer stops submitting and drops its senders, so each worker's channel ends
///    once its queued jobs are taken;
/// 2. drain: the workers finish what is queued, within a budget (`timeout(after:)`);
/// 3. cut off: a job that overruns the budget is aborted (its worker is cancelled; cancellation reaches the
///    job's sleep at once), and the jobs still queued behind it are counted as dropped;
/// 4. stop the heartbeat, and shut the runtime down with a deadline (`shutdown(timeout:)`).
///
/// One job in the run is a "stuck" one (it would take 30 s), so step 3 has something to do. The demo checks
/// that every submitted job was either completed, cut off or dropped, exactly once, and exits 1 if not.
///
/// Run it with:
///
/// ```
/// swift run -c release shutdown-demo
/// ```
///
/// It takes about 1.5 s. The counts vary from run to run; the shape of the output does not.

import Kyoto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A unit of work: takes `cost` to process.
struct Job: Sendable {
    let id: Int
    let cost: Duration
}

/// What one worker did.
struct WorkerReport: Sendable {
    var completed: [Int] = []
    /// The job it was in the middle of when it was aborted, if any.
    var cutOff: Int?
}

/// Counters the heartbeat prints (written by the workers and the producer).
final class Progress: Sendable {
    let submitted = Atomic<Int>(0)
    let completed = Atomic<Int>(0)
}

let workers = 3
let runFor = Duration.seconds(1)
let drainBudget = Duration.milliseconds(300)
let stuckJob = 5  // this job would take 30 s

let runtime = Runtime.multiThread(workers: 2)
print("shutdown-demo: \(workers) workers on a \(runtime.workerCount)-thread runtime; run \(runFor), then drain "
    + "with a budget of \(drainBudget); job \(stuckJob) is stuck (30 s)\n")

let outcome = try runtime.blockOn { () async throws -> (submitted: [Int], reports: [WorkerReport], dropped: [Int], drainTook: Duration, drainTimedOut: Bool) in
    let clock = runtime.clock
    let progress = Progress()
    // A channel per worker: a Kyoto mpsc has one receiver.
    var senders: [Mpsc.Sender<Job>] = []
    let set = JoinSet<WorkerReport>()
    var receivers: [Mpsc.Receiver<Job>] = []
    for _ in 0..<workers {
        let (tx, rx) = Mpsc.channel(of: Job.self, capacity: 16)
        senders.append(tx)
        receivers.append(rx)
        set.spawn { () async throws -> WorkerReport in
            var report = WorkerReport()
            for await job in rx {
                do {
                    try await clock.sleep(for: job.cost)
                } catch {
                    report.cutOff = job.id
                    return report
                }
                report.completed.append(job.id)
                progress.completed.add(1, ordering: .relaxed)
            }
            return report
        }
    }

    // The heartbeat: a line every 200 ms until it is cancelled (`skip`: a late tick does not cause a burst).
    let start = clock.now
    let heartbeat = spawn {
        for await tick in interval(every: .milliseconds(200), missedTickBehavior: .skip) {
            print("  [\(start.duration(to: tick).millisecondsText)] submitted \(progress.submitted.load(ordering: .relaxed)), "
                + "completed \(progress.completed.load(ordering: .relaxed))")
        }
    }

    // The producer: a job every 5 ms to the worker with the most free queue space (a stuck worker's queue
    // fills up and is skipped), until `runFor` has passed.
    var submitted: [Int] = []
    var id = 0
    while start.duration(to: clock.now) < runFor {
        let job = Job(id: id, cost: id == stuckJob ? .seconds(30) : .milliseconds(Int64(2 + id % 7)))
        let target = senders.indices.max { senders[$0].capacity < senders[$1].capacity }!
        try await senders[target].send(job)
        submitted.append(id)
        progress.submitted.add(1, ordering: .relaxed)
        id += 1
        try await clock.sleep(for: .milliseconds(5))
    }

    // 1. Stop intake: dropping the senders ends each channel after its queued jobs.
    print("\nstop intake after \(start.duration(to: clock.now).millisecondsText): \(submitted.count) jobs submitted")
    senders.removeAll()

    // 2. Drain within the budget. Reports are collected as workers finish, so the ones that made it are
    //    kept when the budget runs out (the timed-out body is cancelled: `set.next()` stops waiting).
    let drainStart = clock.now
    let collected = Mutex<[WorkerReport]>([])
    var drainTimedOut = false
    do {
        try await timeout(after: drainBudget) {
            while let report = try await set.next() { collected.withLock { $0.append(report) } }
        }
    } catch is TimeoutError {
        // 3. Cut off: abort the workers still running and collect what they report.
        drainTimedOut = true
        set.abortAll()
        while let r = await set.nextResult() {
            if case .success(let report) = r { collected.withLock { $0.append(report) } }
        }
    }
    let drainTook = drainStart.duration(to: clock.now)
    let reports = collected.withLock { $0 }

    // Jobs still queued in a channel whose worker was cut off were never started.
    var dropped: [Int] = []
    for rx in receivers {
        while let job = try? rx.tryRecv() { dropped.append(job.id) }
    }

    // 4. Stop the heartbeat.
    heartbeat.abort()
    _ = try? await heartbeat.value
    return (submitted, reports, dropped, drainTook, drainTimedOut)
}

let shutdownStart = ContinuousClock.now
let shutdownInTime = runtime.shutdown(timeout: .seconds(2))
let shutdownTook = ContinuousClock.now - shutdownStart

let completed = outcome.reports.flatMap(\.completed)
let cutOff = outcome.reports.compactMap(\.cutOff)
let accounted = completed + cutOff + outcome.dropped
print("drain: \(outcome.drainTimedOut ? "budget of \(drainBudget) exceeded after" : "finished in") "
    + "\(outcome.drainTook.millisecondsText); cut off job(s) \(cutOff), dropped \(outcome.dropped.count) queued job(s)")
print("runtime shutdown: \(shutdownInTime ? "finished" : "did NOT finish") in \(shutdownTook.millisecondsText)")
print("\njobs: \(outcome.submitted.count) submitted = \(completed.count) completed + \(cutOff.count) cut off "
    + "+ \(outcome.dropped.count) dropped")

let exactlyOnce = accounted.sorted() == outcome.submitted.sorted()
let ok = exactlyOnce && outcome.drainTimedOut && cutOff.contains(stuckJob) && shutdownInTime
print("every job accounted for exactly once, the stuck job cut off, the runtime shut down in time: "
    + (ok ? "yes" : "NO"))
if !ok { exit(1) }

extension Duration {
    /// "12.3 ms".
    var millisecondsText: String {
        let ms = Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
        return "\((ms * 10).rounded() / 10) ms"
    }
}
