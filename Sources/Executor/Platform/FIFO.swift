// FIFO: a single-threaded queue with amortised O(1) push and pop (callers keep it inside their lock).

/// A FIFO queue. `pop` moves the element out (the queue keeps no copy of what it handed out, so an element's
/// deinit runs where its taker drops it), and the consumed prefix of the backing array is dropped once it is
/// most of it, so a queue that is never quite emptied does not grow without bound.
struct FIFO<Element> {
    private var items: [Element?] = []
    private var head = 0

    var count: Int { items.count - head }
    var isEmpty: Bool { count == 0 }

    mutating func push(_ element: Element) { items.append(element) }

    mutating func pop() -> Element? {
        guard head < items.count else { return nil }
        let element = items[head].take()
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= items.count {
            // Only nils before `head`: dropping them runs no deinit.
            items.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Elements the backing storage still holds (for tests: exactly `count`, none already handed out).
    var storedCount: Int { items.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
}
