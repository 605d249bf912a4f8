// A growable FIFO ring buffer: the message store of the mpsc channel.
//
// What it is: a power-of-two array of slots addressed by `(head + i) & mask`, owned by a
// `~Copyable` struct so it can live inside a `Mutex` without copy-on-write checks or reference
// counting on the hot path. Appending to a full buffer doubles it (amortised O(1)); popping never
// allocates, so a channel in steady state allocates nothing per message.
//
// Invariants: `capacity` is a power of two and `>= 1`; slots `head ..< head + count` (modulo
// capacity) are initialized, all others are not; `deinit` deinitializes exactly the live slots.
// `takeAll()` moves the live slots into a new owner without running `deinit` on `self`, so callers
// can drop messages after releasing the channel lock (message deinitializers may run user code).

/// A growable FIFO ring buffer with a power-of-two capacity.
@usableFromInline
struct RingBuffer<Element>: ~Copyable {
    @usableFromInline
    var storage: UnsafeMutablePointer<Element>
    @usableFromInline
    var mask: Int
    @usableFromInline
    var head: Int
    /// The number of stored elements.
    @usableFromInline
    var count: Int

    /// Creates an empty buffer able to hold at least `minimumCapacity` elements before growing.
    @inlinable
    init(minimumCapacity: Int) {
        let capacity = Self.roundedCapacity(minimumCapacity)
        self.storage = .allocate(capacity: capacity)
        self.mask = capacity - 1
        self.head = 0
        self.count = 0
    }

    @inlinable
    init(storage: UnsafeMutablePointer<Element>, mask: Int, head: Int, count: Int) {
        self.storage = storage
        self.mask = mask
        self.head = head
        self.count = count
    }

    @inlinable
    deinit {
        var index = head
        for _ in 0..<count {
            // SAFETY: slots head..<head+count (mod capacity) are initialized (type invariant).
            (storage + index).deinitialize(count: 1)
            index = (index + 1) & mask
        }
        storage.deallocate()
    }

    /// The smallest power of two that is `>= max(value, 1)`.
    @inlinable
    static func roundedCapacity(_ value: Int) -> Int {
        var capacity = 1
        while capacity < value { capacity <<= 1 }
        return capacity
    }

    /// Whether the buffer holds no element.
    @inlinable
    var isEmpty: Bool { count == 0 }

    /// The number of slots allocated.
    @inlinable
    var capacity: Int { mask + 1 }

    /// Appends `element` at the back, doubling the storage first if it is full.
    @inlinable
    mutating func append(_ element: consuming Element) {
        if count == capacity { grow() }
        // SAFETY: count < capacity, so this slot is outside the live range and uninitialized.
        (storage + ((head + count) & mask)).initialize(to: element)
        count += 1
    }

    /// Removes and returns the front element, or `nil` when empty.
    @inlinable
    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        // SAFETY: `head` is the first live slot; moving out leaves it uninitialized, and it leaves the
        // live range in the next two lines.
        let element = (storage + head).move()
        head = (head + 1) & mask
        count -= 1
        return element
    }

    /// Moves every element into a new buffer and leaves `self` empty with a one-slot storage.
    @usableFromInline
    mutating func takeAll() -> RingBuffer<Element> {
        let taken = RingBuffer(storage: storage, mask: mask, head: head, count: count)
        storage = .allocate(capacity: 1)
        mask = 0
        head = 0
        count = 0
        return taken
    }

    @inlinable
    mutating func grow() {
        let oldCapacity = capacity
        let newStorage = UnsafeMutablePointer<Element>.allocate(capacity: oldCapacity * 2)
        let firstRun = oldCapacity - head
        let headRun = min(firstRun, count)
        // SAFETY: the live range is head..<head+headRun followed by 0..<count-headRun (wrapped);
        // both runs are moved (not copied) into the new storage in order, then the old storage is
        // freed with no live element left in it.
        newStorage.moveInitialize(from: storage + head, count: headRun)
        if count > headRun {
            (newStorage + headRun).moveInitialize(from: storage, count: count - headRun)
        }
        storage.deallocate()
        storage = newStorage
        mask = oldCapacity * 2 - 1
        head = 0
    }
}

// The buffer owns its elements exclusively (it is `~Copyable`); moving it between threads moves
// the elements, which is safe when they are `Sendable`.
extension RingBuffer: @unchecked Sendable where Element: Sendable {}
