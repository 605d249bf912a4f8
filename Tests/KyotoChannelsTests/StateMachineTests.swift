// (state, event) -> (action, next state) tables for the channel state machines, run directly on
// the pure machines without threads. Each row applies one event to the state left by the row
// before and checks the action taken and the observable state after it.

import Testing

@testable import KyotoChannels

// MARK: Mpsc

private enum MpscEvent {
    case push(Int)
    case pushReserved(Int)
    case receive
    case tryReceive
    case reserve
    case releaseReservation
    case dropSender
    case closeReceiver
    case dropReceiver
    case waitClosed
}

private func apply(_ event: MpscEvent, to machine: inout MpscStateMachine<Int>) -> String {
    switch event {
    case .push(let value), .pushReserved(let value):
        let reserved: Bool
        if case .pushReserved = event { reserved = true } else { reserved = false }
        switch machine.push(value, reserved: reserved) {
        case .resumeReceiver(_, let element): return "resumeReceiver(\(element))"
        case .none: return "none"
        case .reject(let element): return "reject(\(element))"
        }
    case .receive:
        switch machine.receive() {
        case .element(let element): return "element(\(element))"
        case .closed: return "closed"
        case .suspend: return "suspend"
        }
    case .tryReceive:
        switch machine.tryReceive() {
        case .element(let element): return "element(\(element))"
        case .empty: return "empty"
        case .disconnected: return "disconnected"
        }
    case .reserve:
        return machine.reserve() == .reserved ? "reserved" : "reject"
    case .releaseReservation:
        return machine.releaseReservation() == nil ? "none" : "resumeReceiver"
    case .dropSender:
        return machine.dropSender() == nil ? "none" : "resumeReceiver"
    case .closeReceiver:
        let action = machine.closeReceiver()
        return "close(permits: \(action.closePermits), dropped: \(action.droppedCount))"
    case .dropReceiver:
        let action = machine.dropReceiver()
        return "close(permits: \(action.closePermits), dropped: \(action.droppedCount))"
    case .waitClosed:
        return machine.waitClosed() == .closed ? "closed" : "suspend"
    }
}

private struct MpscRow {
    let event: MpscEvent
    let action: String
    let buffered: Int
    let receiverState: MpscReceiverState
}

private func run(_ rows: [MpscRow], capacity: Int = 2, sourceLocation: SourceLocation = #_sourceLocation) {
    var machine = MpscStateMachine<Int>(initialBufferCapacity: capacity)
    for (index, row) in rows.enumerated() {
        let action = apply(row.event, to: &machine)
        #expect(action == row.action, "row \(index): \(row.event)", sourceLocation: sourceLocation)
        #expect(machine.buffer.count == row.buffered, "row \(index): buffered", sourceLocation: sourceLocation)
        #expect(machine.receiverState == row.receiverState, "row \(index): receiver", sourceLocation: sourceLocation)
    }
}

@Test("mpsc machine: buffers in FIFO order, grows past its initial storage, ends after the last sender")
func mpscMachineFifoAndEnd() {
    run([
        MpscRow(event: .tryReceive, action: "empty", buffered: 0, receiverState: .open),
        MpscRow(event: .push(1), action: "none", buffered: 1, receiverState: .open),
        MpscRow(event: .push(2), action: "none", buffered: 2, receiverState: .open),
        MpscRow(event: .push(3), action: "none", buffered: 3, receiverState: .open),
        MpscRow(event: .receive, action: "element(1)", buffered: 2, receiverState: .open),
        MpscRow(event: .dropSender, action: "none", buffered: 2, receiverState: .open),
        MpscRow(event: .receive, action: "element(2)", buffered: 1, receiverState: .open),
        MpscRow(event: .tryReceive, action: "element(3)", buffered: 0, receiverState: .open),
        MpscRow(event: .receive, action: "closed", buffered: 0, receiverState: .open),
        MpscRow(event: .tryReceive, action: "disconnected", buffered: 0, receiverState: .open),
    ])
}

@Test("mpsc machine: close rejects plain sends, keeps buffered messages and lets reservations send")
func mpscMachineClose() {
    run([
        MpscRow(event: .push(1), action: "none", buffered: 1, receiverState: .open),
        MpscRow(event: .reserve, action: "reserved", buffered: 1, receiverState: .open),
        MpscRow(event: .waitClosed, action: "suspend", buffered: 1, receiverState: .open),
        MpscRow(event: .closeReceiver, action: "close(permits: true, dropped: 0)", buffered: 1, receiverState: .closed),
        MpscRow(event: .closeReceiver, action: "close(permits: false, dropped: 0)", buffered: 1, receiverState: .closed),
        MpscRow(event: .waitClosed, action: "closed", buffered: 1, receiverState: .closed),
        MpscRow(event: .push(2), action: "reject(2)", buffered: 1, receiverState: .closed),
        MpscRow(event: .reserve, action: "reject", buffered: 1, receiverState: .closed),
        MpscRow(event: .receive, action: "element(1)", buffered: 0, receiverState: .closed),
        MpscRow(event: .receive, action: "suspend", buffered: 0, receiverState: .closed),
        MpscRow(event: .pushReserved(3), action: "none", buffered: 1, receiverState: .closed),
        MpscRow(event: .receive, action: "element(3)", buffered: 0, receiverState: .closed),
        MpscRow(event: .receive, action: "closed", buffered: 0, receiverState: .closed),
    ])
}

@Test("mpsc machine: an outstanding reservation keeps the stream open after the last sender")
func mpscMachineReservationKeepsOpen() {
    run([
        MpscRow(event: .reserve, action: "reserved", buffered: 0, receiverState: .open),
        MpscRow(event: .dropSender, action: "none", buffered: 0, receiverState: .open),
        MpscRow(event: .tryReceive, action: "empty", buffered: 0, receiverState: .open),
        MpscRow(event: .releaseReservation, action: "none", buffered: 0, receiverState: .open),
        MpscRow(event: .tryReceive, action: "disconnected", buffered: 0, receiverState: .open),
    ])
}

@Test("mpsc machine: dropping the receiver hands back every buffered message and rejects all sends")
func mpscMachineDropReceiver() {
    run([
        MpscRow(event: .push(1), action: "none", buffered: 1, receiverState: .open),
        MpscRow(event: .push(2), action: "none", buffered: 2, receiverState: .open),
        MpscRow(event: .reserve, action: "reserved", buffered: 2, receiverState: .open),
        MpscRow(event: .dropReceiver, action: "close(permits: true, dropped: 2)", buffered: 0, receiverState: .dropped),
        MpscRow(event: .push(3), action: "reject(3)", buffered: 0, receiverState: .dropped),
        MpscRow(event: .pushReserved(4), action: "reject(4)", buffered: 0, receiverState: .dropped),
        MpscRow(event: .waitClosed, action: "closed", buffered: 0, receiverState: .dropped),
    ])
}

@Test("mpsc machine: a parked receiver gets the next message handed over, not buffered")
func mpscMachineHandOver() async {
    var machine = MpscStateMachine<Int>(initialBufferCapacity: 1)
    guard case .suspend(let id) = machine.receive() else {
        Issue.record("expected suspend")
        return
    }
    // Every path below resumes the continuation exactly once, so a wrong action fails the test instead
    // of leaving it suspended.
    var pushAction = "push not reached"
    let outcome = await withUnsafeContinuation { (continuation: MpscStateMachine<Int>.ReceiverContinuation) in
        if case .resume(let immediate, let outcome) = machine.park(id: id, continuation: continuation, isCancelled: false) {
            Issue.record("expected park, got an immediate \(outcome)")
            immediate.resume(returning: outcome)
            return
        }
        let parkedNow = machine.hasParkedReceiver
        #expect(parkedNow)
        if let stale = machine.cancelReceive(id: id &+ 1) {
            Issue.record("a stale id must not remove the waiter")
            stale.resume(returning: .cancelled)
            return
        }
        let action = machine.push(7, reserved: false)
        #expect(machine.buffer.count == 0)
        let parkedAfter = machine.hasParkedReceiver
        #expect(!parkedAfter)
        switch action {
        case .resumeReceiver(let parked, let element):
            pushAction = "resumeReceiver(\(element))"
            parked.resume(returning: .element(element))
        case .none:
            // Buffered instead of handed over: the receiver is still parked; take it back and end it.
            pushAction = "none"
            (machine.cancelReceive(id: id) ?? continuation).resume(returning: .cancelled)
        case .reject(let element):
            pushAction = "reject(\(element))"
            (machine.cancelReceive(id: id) ?? continuation).resume(returning: .cancelled)
        }
    }
    #expect(pushAction == "resumeReceiver(7)")
    if case .element(let value) = outcome {
        #expect(value == 7)
    } else {
        Issue.record("expected element(7), got \(outcome)")
    }
}

@Test("mpsc machine: parking after cancellation resumes at once with cancelled and leaves no waiter")
func mpscMachineParkCancelled() async {
    var machine = MpscStateMachine<Int>(initialBufferCapacity: 1)
    guard case .suspend(let id) = machine.receive() else {
        Issue.record("expected suspend")
        return
    }
    var parked = false
    var stillParked = false
    let outcome = await withUnsafeContinuation { (continuation: MpscStateMachine<Int>.ReceiverContinuation) in
        switch machine.park(id: id, continuation: continuation, isCancelled: true) {
        case .resume(let continuation, let outcome):
            stillParked = machine.hasParkedReceiver
            continuation.resume(returning: outcome)
        case .none:
            // Parked despite the cancellation: take the waiter back so the test fails instead of hanging.
            parked = true
            stillParked = machine.hasParkedReceiver
            (machine.cancelReceive(id: id) ?? continuation).resume(returning: .cancelled)
        }
    }
    #expect(!parked, "park must not park a cancelled receiver")
    #expect(!stillParked)
    if case .cancelled = outcome {} else { Issue.record("expected cancelled, got \(outcome)") }
}

// MARK: Oneshot

@Test("oneshot machine: send, receive, and the closed rules as a table")
func oneshotMachineTable() {
    typealias M = OneshotStateMachine<Int>
    func describe(_ action: M.SendAction) -> String {
        switch action {
        case .resumeReceiver: "resumeReceiver"
        case .none: "none"
        case .reject(let value): "reject(\(value))"
        }
    }
    func describe(_ action: M.TryReceiveAction) -> String {
        switch action {
        case .value(let value): "value(\(value))"
        case .empty: "empty"
        case .closed: "closed"
        }
    }
    // Given a fresh channel: empty, then sent, then taken.
    var machine = M()
    #expect(describe(machine.tryReceive()) == "empty")
    #expect(describe(machine.send(1)) == "none")
    #expect(machine.hasValue)
    #expect(describe(machine.tryReceive()) == "value(1)")
    #expect(describe(machine.tryReceive()) == "closed")
    #expect(machine.completed)

    // Closed before sending: the send is rejected with its value.
    var closedFirst = M()
    _ = closedFirst.closeReceiver()
    #expect(describe(closedFirst.send(2)) == "reject(2)")
    #expect(closedFirst.waitClosed() == .closed)

    // Sent, then closed: the value stays obtainable.
    var sentThenClosed = M()
    #expect(describe(sentThenClosed.send(3)) == "none")
    _ = sentThenClosed.closeReceiver()
    #expect(describe(sentThenClosed.tryReceive()) == "value(3)")

    // Sender dropped unsent: closed.
    var dropped = M()
    #expect(dropped.dropSender() == nil)
    #expect(dropped.senderState == .dropped)
    if case .closed = dropped.receive() {} else { Issue.record("expected closed after sender drop") }

    // Receiver dropped with a stored value: it is handed back for release.
    var receiverGone = M()
    _ = receiverGone.send(4)
    let action = receiverGone.dropReceiver()
    #expect(action.dropped == 4)
    #expect(!receiverGone.hasValue)
    #expect(receiverGone.waitClosed() == .closed)
}

// MARK: Broadcast

@Test("broadcast machine: lag is measured against the rounded capacity, then reading resumes at the oldest")
func broadcastMachineLag() {
    var machine = BroadcastStateMachine<Int>(capacity: 4)
    func describe(_ action: BroadcastStateMachine<Int>.TryReceiveAction) -> String {
        switch action {
        case .value(let value): "value(\(value))"
        case .lagged(let count): "lagged(\(count))"
        case .closed: "closed"
        case .empty: "empty"
        }
    }
    // No receiver: refused.
    if case .reject(let value) = machine.send(0) { #expect(value == 0) } else { Issue.record("expected reject") }
    let receiver = machine.subscribe()
    #expect(describe(machine.tryReceive(receiver)) == "empty")
    for value in 1...4 {
        if case .wake(_, let receivers, _) = machine.send(value) {
            #expect(receivers == 1)
        } else {
            Issue.record("send \(value) with one receiver must store and wake")
        }
    }
    #expect(describe(machine.tryReceive(receiver)) == "value(1)")
    _ = machine.send(5)
    #expect(machine.unread(by: receiver) == 4)
    _ = machine.send(6)
    #expect(machine.unread(by: receiver) == 5)
    let rows: [String] = ["lagged(1)", "value(3)", "value(4)", "value(5)", "value(6)", "empty"]
    for expected in rows {
        #expect(describe(machine.tryReceive(receiver)) == expected)
    }
    _ = machine.dropSender()
    #expect(describe(machine.tryReceive(receiver)) == "closed")
}

@Test("broadcast machine: a value is released once every receiver alive at send time read it or left")
func broadcastMachineRelease() {
    var machine = BroadcastStateMachine<Int>(capacity: 2)
    let first = machine.subscribe()
    let second = machine.subscribe()
    _ = machine.send(10)
    let late = machine.subscribe()
    #expect(machine.queued == 1)
    #expect(machine.unread(by: late) == 0)
    _ = machine.tryReceive(first)
    #expect(machine.queued == 1)
    let released = machine.unsubscribe(second)
    #expect(released == [10])
    #expect(machine.queued == 0)
    #expect(machine.receiverCount == 2)
}

// MARK: Watch

@Test("watch machine: versions, seen tracking and the closing rule as a table")
func watchMachineTable() {
    typealias M = WatchStateMachine<String>
    func describe(_ action: M.ChangedAction) -> String {
        switch action {
        case .changed(let value): "changed(\(value))"
        case .closed: "closed"
        case .suspend: "suspend"
        }
    }
    var machine = M(initial: "a")
    if case .reject(let value) = machine.send("x") { #expect(value == "x") } else { Issue.record("expected reject") }
    #expect(machine.value == "a")
    let receiver = machine.subscribe()
    #expect(describe(machine.changed(receiver)) == "suspend")
    #expect(machine.hasChanged(receiver) == false)
    _ = machine.send("b")
    #expect(machine.version == 2)
    #expect(machine.hasChanged(receiver) == true)
    #expect(describe(machine.changed(receiver)) == "changed(b)")
    #expect(describe(machine.changed(receiver)) == "suspend")
    let silent = machine.sendIfModified { value in
        value = "silent"
        return false
    }
    #expect(!silent.modified)
    #expect(machine.version == 2)
    #expect(machine.value == "silent")
    machine.markChanged(receiver)
    #expect(machine.hasChanged(receiver) == true)
    machine.markUnchanged(receiver)
    #expect(machine.hasChanged(receiver) == false)
    _ = machine.sendReplace("c")
    _ = machine.dropSender()
    #expect(machine.hasChanged(receiver) == nil)
    #expect(describe(machine.changed(receiver)) == "changed(c)")
    #expect(describe(machine.changed(receiver)) == "closed")
}
