// The pieces of blocking-demo: the blocking function, the three ways to call it, the ticker that measures
// how late the runtime's timers fire, and a census of the threads the runtime starts.

import Kyoto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The knobs of the demo.
enum Demo {
    /// Requests served per scenario; each makes one blocking call.
    static let requests = 5
    /// How long the blocking call holds its thread.
    static let blockingCall: Duration = .milliseconds(200)
    /// Pause between requests (an `await`, so the request task lets others run).
    static let betweenRequests: Duration = .milliseconds(20)
    /// The ticker's period.
    static let tickPeriod: Duration = .milliseconds(5)
    /// Ticker-only time before and after the requests.
    static let settle: Duration = .milliseconds(50)
}

/// A synchronous function that blocks its thread, like a legacy database driver, `fsync`, or a DNS lookup
/// through `getaddrinfo`. Async code must not call it on a runtime worker.
func legacyBlockingLookup(_ key: Int) -> Int {
    usleep(UInt32(Demo.blockingCall.microseconds))
    return key &* 31 &+ 7
}

/// The three ways of calling blocking code from a task.
enum Scenario: CaseIterable, Sendable {
    /// Call it right there, on the worker thread: every other task on that worker waits.
    case direct
    /// Run it on the blocking pool and `await` its handle: the worker stays free.
    case spawnBlocking
    /// Call it in place after handing this worker's queues to a new thread (multi-thread runtime only).
    case blockInPlace

    var label: String {
        switch self {
        case .direct: "A  blocking call on the worker"
        case .spawnBlocking: "B  spawnBlocking { call }"
        case .blockInPlace: "C  blockInPlace { call }"
        }
    }
}

/// Serves `Demo.requests` requests; each makes one blocking call the way `scenario` says, then awaits a
/// short pause. Returns a checksum of the answers (the same in every scenario).
func serveRequests(_ scenario: Scenario) async throws -> Int {
    var checksum = 0
    for key in 0..<Demo.requests {
        let answer: Int
        switch scenario {
        case .direct:
            answer = legacyBlockingLookup(key)  // the mistake this demo is about
        case .spawnBlocking:
            answer = try await spawnBlocking { legacyBlockingLookup(key) }.value
        case .blockInPlace:
            answer = blockInPlace { legacyBlockingLookup(key) }
        }
        checksum &+= answer
        try await Task.sleep(for: Demo.betweenRequests)
    }
    return checksum
}

// MARK: The ticker

/// A flag one task raises and another polls.
final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)

    /// Raises the flag.
    func raise() {
        // Relaxed: the flag carries no other data; the ticker only needs to see it eventually.
        raised.store(true, ordering: .relaxed)
    }

    /// Whether the flag was raised.
    var isRaised: Bool { raised.load(ordering: .relaxed) }
}

/// What the ticker measured.
struct TickReport: Sendable {
    /// Ticks observed.
    var ticks = 0
    /// Longest time between two consecutive ticks (ideally the period).
    var worstGap: Duration = .zero
    /// Sum of all gaps.
    var totalGap: Duration = .zero
    /// Most blocking-pool threads seen at once (sampled at each tick).
    var peakPoolThreads = 0
    /// Most blocking-pool threads seen busy at once (threads minus idle ones).
    var peakPoolBusy = 0

    /// Mean time between ticks.
    var meanGap: Duration { ticks > 0 ? totalGap / ticks : .zero }
}

/// Sleeps `period` over and over until `stop` is raised, timing each wake-up against the previous one.
/// A late tick means the ticker's task could not run: its worker was busy with something else.
func tick(every period: Duration, until stop: StopFlag, runtime: Runtime) async -> TickReport {
    let clock = ContinuousClock()
    var report = TickReport()
    var last = clock.now
    while !stop.isRaised {
        try? await Task.sleep(for: period)
        let now = clock.now
        let gap = now - last
        last = now
        report.ticks += 1
        report.totalGap += gap
        report.worstGap = max(report.worstGap, gap)
        let metrics = runtime.metrics
        report.peakPoolThreads = max(report.peakPoolThreads, metrics.blockingThreads)
        report.peakPoolBusy = max(report.peakPoolBusy, metrics.blockingThreads - metrics.idleBlockingThreads)
    }
    return report
}

// MARK: One scenario

/// Everything one scenario measured.
struct ScenarioResult: Sendable {
    let scenario: Scenario
    let ticks: TickReport
    /// Time the requests took (the blocking work itself is not faster in B or C).
    let requestsTime: Duration
    let checksum: Int
    /// The runtime's metrics right after the requests and the ticker finished.
    let metrics: RuntimeMetrics
    /// Worker threads started (the first one, plus one per `blockInPlace` hand-off).
    let workerThreadsStarted: Int
    /// Blocking-pool threads started.
    let blockingThreadsStarted: Int
    /// Whether the runtime shut down within its timeout.
    let shutDownCleanly: Bool
}

/// Counts the runtime's threads as they start (`Configuration.onThreadStart`), by their name.
final class ThreadCensus: Sendable {
    private let workers = Atomic<Int>(0)
    private let blocking = Atomic<Int>(0)

    /// Called on each new runtime thread. Blocking-pool threads are named `kyoto-blocking-N`.
    func threadStarted() {
        // Relaxed: counters read after the runtime's work is done.
        if currentThreadName().hasPrefix("kyoto-blocking") {
            blocking.wrappingAdd(1, ordering: .relaxed)
        } else {
            workers.wrappingAdd(1, ordering: .relaxed)
        }
    }

    var workerThreads: Int { workers.load(ordering: .relaxed) }
    var blockingThreads: Int { blocking.load(ordering: .relaxed) }
}

/// Runs one scenario on a fresh multi-thread runtime with ONE worker thread, so that anything blocking
/// that worker blocks every task.
func runScenario(_ scenario: Scenario) throws -> ScenarioResult {
    let census = ThreadCensus()
    var configuration = Runtime.Configuration(flavor: .multiThread)
    configuration.workerThreads = 1
    configuration.onThreadStart = { census.threadStarted() }
    let runtime = Runtime(configuration)

    let (ticks, requestsTime, checksum) = try runtime.blockOn {
        let clock = ContinuousClock()
        let stop = StopFlag()
        let ticker = spawn { await tick(every: Demo.tickPeriod, until: stop, runtime: runtime) }
        try await Task.sleep(for: Demo.settle)

        let start = clock.now
        let checksum = try await spawn { try await serveRequests(scenario) }.value
        let requestsTime = clock.now - start

        try await Task.sleep(for: Demo.settle)
        stop.raise()
        return (try await ticker.value, requestsTime, checksum)
    }
    let metrics = runtime.metrics
    let clean = runtime.shutdown(timeout: .seconds(2))
    return ScenarioResult(
        scenario: scenario, ticks: ticks, requestsTime: requestsTime, checksum: checksum, metrics: metrics,
        workerThreadsStarted: census.workerThreads, blockingThreadsStarted: census.blockingThreads,
        shutDownCleanly: clean)
}

/// The calling thread's name, read from `/proc/thread-self/comm` (Glibc does not export
/// `pthread_getname_np` to Swift).
func currentThreadName() -> String {
    guard let file = fopen("/proc/thread-self/comm", "r") else { return "" }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 64)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return "" }
    let bytes = buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }  // stop at NUL or newline
    return String(decoding: bytes, as: UTF8.self)
}

// MARK: Formatting

extension Duration {
    /// Whole microseconds.
    var microseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000 + atto / 1_000_000_000_000
    }

    /// Whole milliseconds, e.g. "200 ms".
    var wholeMillisecondsText: String { "\(microseconds / 1000) ms" }

    /// Milliseconds with one decimal, e.g. "201.3 ms".
    var millisecondsText: String {
        let tenths = (Double(microseconds) / 100).rounded() / 10
        return "\(tenths) ms"
    }
}

/// `value` right-aligned in `width` columns.
func pad(_ value: some CustomStringConvertible, _ width: Int) -> String {
    let s = value.description
    return s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}

/// `value` left-aligned in `width` columns.
func padRight(_ value: some CustomStringConvertible, _ width: Int) -> String {
    let s = value.description
    return s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}
