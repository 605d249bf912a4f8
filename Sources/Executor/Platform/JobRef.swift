// JobRef: a Swift job as a raw pointer, plus the intrusive link kept in the job's private storage.
//
// Swift hands executors `ExecutorJob`s: 8-byte move-only handles to runtime-allocated job objects. Our
// queues store them as raw addresses (`UnownedJob` bit-cast), and the inject queue links jobs through the
// 16 bytes of executor-private storage every job carries, so queueing a job never allocates.
// The hot paths address that storage directly (it follows the heap-object header); the SPI accessor
// (`@_spi(ExperimentalCustomExecutors)`), imported only here, is kept for the test that pins the layout.
// While a job sits in one of our queues we own that storage; the Swift runtime does not touch it until we
// run the job.

#if compiler(>=6.3)
@_spi(ExperimentalCustomExecutors) import _Concurrency
#endif

/// A queued job: the job object's address. Each JobRef is run exactly once.
///
/// `@unchecked Sendable`: a job is handed between threads by the queues; exactly one thread owns it at
/// a time (the queue protocols guarantee it), which is what makes moving it safe.
struct JobRef: @unchecked Sendable, Equatable {
    let raw: UnsafeMutableRawPointer

    @inline(__always)
    init(raw: UnsafeMutableRawPointer) { self.raw = raw }

    /// Takes ownership of a Swift job.
    @inline(__always)
    init(_ job: consuming ExecutorJob) {
        raw = unsafeBitCast(UnownedJob(job), to: UnsafeMutableRawPointer.self)
    }

    /// Takes ownership of a Swift job delivered as an `UnownedJob`.
    @inline(__always)
    init(_ job: UnownedJob) {
        raw = unsafeBitCast(job, to: UnsafeMutableRawPointer.self)
    }

    /// Rebuilds a reference from `bits` (0 is not a job).
    @inline(__always)
    init?(bits: UInt) {
        guard let p = UnsafeMutableRawPointer(bitPattern: bits) else { return nil }
        raw = p
    }

    /// The address as an integer, for atomic slots.
    @inline(__always)
    var bits: UInt { UInt(bitPattern: raw) }

    /// The job, ready to run.
    @inline(__always)
    var unownedJob: UnownedJob { unsafeBitCast(raw, to: UnownedJob.self) }

    /// The intrusive "next" link stored in the first word of the job's executor-private storage.
    @inline(__always)
    var next: JobRef? {
        get { JobRef(bits: loadPrivateWord(0)) }
        nonmutating set { storePrivateWord(0, newValue?.bits ?? 0) }
    }

    // The job's executor-private storage, addressed directly: it follows the heap-object header
    // (`JobLayout.privateDataOffset`), the address `ExecutorJob.withUnsafeExecutorPrivateData` hands out,
    // without that accessor's out-of-line runtime call (three of them per scheduled job were about 2% of an
    // installed-mode `ping_pong` profile). A test pins the two addresses together (`privateDataViaRuntime`).
    // Raw loads and stores: the memory belongs to the runtime's C++ job object, not to a Swift type.

    @inline(__always)
    private func loadPrivateWord(_ index: Int) -> UInt {
        raw.load(fromByteOffset: JobLayout.privateDataOffset + index * MemoryLayout<UInt>.stride, as: UInt.self)
    }

    @inline(__always)
    private func storePrivateWord(_ index: Int, _ value: UInt) {
        raw.storeBytes(
            of: value, toByteOffset: JobLayout.privateDataOffset + index * MemoryLayout<UInt>.stride, as: UInt.self)
    }

    /// The address of the job's executor-private storage as the runtime reports it (for the layout test).
    var privateDataViaRuntime: UnsafeMutableRawPointer {
        ExecutorJob(unownedJob).withUnsafeExecutorPrivateData { UnsafeMutableRawPointer($0.baseAddress!) }
    }

    /// The address `next` and `enqueuedBy` use (for the layout test).
    var privateDataDirect: UnsafeMutableRawPointer { raw + JobLayout.privateDataOffset }

    /// The worker whose queue the job was last pushed into (its index + 1), or 0 when it came from outside
    /// the workers (the inject queue's remote path). Kept in the second word of the job's executor-private
    /// storage (the first is `next`): a remote schedule clears it, a worker writes it while workers return
    /// stolen tasks home, always before the job enters a queue, and the thread that runs the job reads it;
    /// the queue's hand-off orders the two, as it does for the job itself. See `Worker.runJob` and
    /// HomeReturns.swift.
    @inline(__always)
    var enqueuedBy: UInt {
        get { loadPrivateWord(1) }
        nonmutating set { storePrivateWord(1, newValue) }
    }

    /// Whether the job is a task (its job object is the task object itself).
    @inline(__always)
    var isTask: Bool {
        kindByte == JobKindRaw.task
    }

    /// The job's raw flags word (the runtime's `JobFlags`: kind in bits 0-7, priority in 8-15, task flags
    /// above). It follows the heap-object header (two words) and the executor-private storage (two words);
    /// a test pins the offset by comparing the kind byte with `ExecutorJob.kind`.
    @inline(__always)
    var rawFlags: UInt32 {
        UnsafeRawPointer(raw).load(fromByteOffset: JobLayout.flagsOffset, as: UInt32.self)
    }

    /// Whether the job is a task that nobody else owns: not a child task. `async let` children live in their
    /// parent's task allocator with an immortal reference count (a retain does not keep them alive: their
    /// memory goes when the parent leaves the `async let` scope), and task-group children belong to their
    /// group. Only such standalone tasks may be held past their run (see HomeReturns.swift).
    @inline(__always)
    var isStandaloneTask: Bool {
        isTask && rawFlags & JobLayout.childTaskFlag == 0
    }

    /// Whether this job is the continuation job `Task.yield()` enqueues. Swift 6.3 implements a yield
    /// as "enqueue a nullary continuation job that resumes the task", so the scheduler recognises a
    /// yield by this job kind and sends it to the back of the queue instead of the LIFO slot.
    @inline(__always)
    var isYieldContinuation: Bool {
        kindByte == JobKindRaw.nullaryContinuation
    }

    /// The job kind, read from the low byte of the flags word (what `ExecutorJob.kind` returns, without its
    /// out-of-line runtime call; the job-kind test pins the two to the same value).
    @inline(__always)
    private var kindByte: UInt8 { UInt8(truncatingIfNeeded: rawFlags) }

    /// The raw job kind as the runtime reports it (for tests and diagnostics).
    var kindRawValue: UInt8 { ExecutorJob(unownedJob).kind.rawValue }
}

/// Where the Swift runtime's job header keeps its flags (include/swift/ABI/Task.h: `HeapObject`, then
/// `SchedulerPrivate[2]`, then `JobFlags Flags`), and the flag bits Kyoto reads (MetadataValues.h `JobFlags`).
enum JobLayout {
    /// The executor-private storage (`SchedulerPrivate[2]`) follows the two-word heap-object header.
    static let privateDataOffset = 2 * MemoryLayout<UInt>.stride
    static let flagsOffset = 4 * MemoryLayout<UInt>.stride
    /// `Task_IsChildTask`: set for `async let` children (which also set `Task_IsAsyncLetTask`, bit 28) and
    /// task-group children (`Task_IsGroupChildTask`, bit 26).
    static let childTaskFlag: UInt32 = 1 << 24
    static let asyncLetTaskFlag: UInt32 = 1 << 28
    static let groupChildTaskFlag: UInt32 = 1 << 26
}

/// Raw values of the Swift runtime's `JobKind` (include/swift/ABI/MetadataValues.h): `Task` is 0,
/// reserved kinds start at 192 (`DefaultActorInline`, `DefaultActorSeparate`, `DefaultActorOverride`,
/// `NullaryContinuation`, `IsolatedDeinit`). Pinned by a test that yields and checks the kind seen.
enum JobKindRaw {
    static let task: UInt8 = 0
    static let nullaryContinuation: UInt8 = 195
}
