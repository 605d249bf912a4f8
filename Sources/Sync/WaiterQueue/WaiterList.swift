// WaiterList: the FIFO of suspended waiters shared by every KyotoSync primitive.
//
// What it is. An ordered queue of waiters, each named by a 64-bit id chosen by the caller before it
// suspends. It supports appending at the tail, inspecting and mutating the head in place, popping from
// either end, and removing an arbitrary waiter by id in O(1). That last operation is what cancellation
// needs: a cancelled waiter must leave the queue without disturbing anyone else's position.
//
// Moving parts. Tokio threads an intrusive doubly linked list through the pinned futures themselves.
// Swift tasks cannot lend us their frames, so the list is threaded through a dictionary instead: each node
// stores its payload and the ids of its neighbours, and `head`/`tail` name the ends. Every operation
// touches at most three dictionary entries.
//
// Protocol. The list is a plain value type with no synchronisation of its own. It always lives inside a
// state machine that lives inside a `Mutex`, so every access is already serialised by that lock.
//
// Why correct. The invariants are the usual ones for a doubly linked list: `head == nil` iff
// `tail == nil` iff the dictionary is empty; following `next` from `head` visits every node exactly once
// and ends at `tail`; `prev` mirrors `next`. `_checkInvariants()` verifies them in debug builds that
// define `SYNC_INTERNAL_CHECKS`, and the unit tests exercise every operation against an array model.

import KyotoExecutor

/// A FIFO queue of waiters addressed by id, with O(1) removal of any waiter.
package struct WaiterList<Payload> {
    private struct Node {
        var payload: Payload
        var prev: UInt64?
        var next: UInt64?
    }

    private var nodes: [UInt64: Node] = [:]
    private var headID: UInt64?
    private var tailID: UInt64?

    /// Creates an empty list.
    package init() {}

    /// Number of queued waiters.
    package var count: Int { nodes.count }

    /// Whether no waiter is queued.
    package var isEmpty: Bool { nodes.isEmpty }

    /// Whether a waiter with this id is queued.
    package func contains(_ id: UInt64) -> Bool { nodes[id] != nil }

    /// The ids in queue order, oldest first. Linear; meant for tests and diagnostics.
    package var ids: [UInt64] {
        var result: [UInt64] = []
        result.reserveCapacity(nodes.count)
        var cursor = headID
        while let id = cursor {
            result.append(id)
            cursor = nodes[id]!.next
        }
        return result
    }

    /// The oldest waiter, if any.
    package var first: (id: UInt64, payload: Payload)? {
        guard let id = headID else { return nil }
        return (id, nodes[id]!.payload)
    }

    /// The payload of the waiter with this id, if it is queued.
    package subscript(id: UInt64) -> Payload? {
        nodes[id]?.payload
    }

    /// Appends a waiter at the tail. Appending an id that is already queued is a bug in the caller.
    package mutating func append(_ id: UInt64, _ payload: Payload) {
        kyotoPrecondition(nodes[id] == nil, "BUG DETECTED: waiter id \(id) enqueued twice")
        nodes[id] = Node(payload: payload, prev: tailID, next: nil)
        if let tail = tailID {
            nodes[tail]!.next = id
        } else {
            headID = id
        }
        tailID = id
        _checkInvariants()
    }

    /// Runs `body` on the head's payload in place. Returns nil when the list is empty.
    package mutating func withFirst<R>(_ body: (inout Payload) -> R) -> R? {
        guard let id = headID else { return nil }
        return body(&nodes[id]!.payload)
    }

    /// Replaces the payload of the waiter with this id, which keeps its place. Returns false (and changes
    /// nothing) when it is not queued.
    package mutating func replacePayload(of id: UInt64, with payload: Payload) -> Bool {
        (nodes[id]?.payload = payload) != nil
    }

    /// Removes and returns the oldest waiter.
    package mutating func popFirst() -> (id: UInt64, payload: Payload)? {
        guard let id = headID else { return nil }
        return (id, remove(id)!)
    }

    /// Removes and returns the newest waiter.
    package mutating func popLast() -> (id: UInt64, payload: Payload)? {
        guard let id = tailID else { return nil }
        return (id, remove(id)!)
    }

    /// Removes the waiter with this id and returns its payload, or nil when it is not queued.
    package mutating func remove(_ id: UInt64) -> Payload? {
        guard let node = nodes.removeValue(forKey: id) else { return nil }
        if let prev = node.prev { nodes[prev]!.next = node.next } else { headID = node.next }
        if let next = node.next { nodes[next]!.prev = node.prev } else { tailID = node.prev }
        _checkInvariants()
        return node.payload
    }

    /// Removes every waiter and returns them oldest first.
    package mutating func removeAll() -> [(id: UInt64, payload: Payload)] {
        var result: [(id: UInt64, payload: Payload)] = []
        result.reserveCapacity(nodes.count)
        var cursor = headID
        while let id = cursor {
            let node = nodes[id]!
            result.append((id, node.payload))
            cursor = node.next
        }
        nodes.removeAll()
        headID = nil
        tailID = nil
        return result
    }

    #if SYNC_INTERNAL_CHECKS
    @inline(never)
    private func _checkInvariants() {
        kyotoPrecondition(
            (headID == nil) == (tailID == nil) && (headID == nil) == nodes.isEmpty, "WaiterList: head, tail and nodes disagree")
        var seen = 0
        var previous: UInt64? = nil
        var cursor = headID
        while let id = cursor {
            let node = nodes[id]!
            kyotoPrecondition(node.prev == previous, "WaiterList: broken prev link")
            previous = id
            cursor = node.next
            seen += 1
        }
        kyotoPrecondition(previous == tailID && seen == nodes.count, "WaiterList: tail or count disagrees with the links")
    }
    #else
    @inline(__always)
    private func _checkInvariants() {}
    #endif
}
