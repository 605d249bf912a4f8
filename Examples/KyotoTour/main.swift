import Kyoto
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

func now() -> UInt64 { var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts); return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) }

let r = Runtime.multiThread(workers: Int(CommandLine.arguments.dropFirst().first ?? "2")!)
// yield_many
for _ in 0..<3 {
let t0 = now()
r.blockOn {
    var hs: [JoinHandle<Void>] = []
    for _ in 0..<200 { hs.append(spawn { for _ in 0..<1000 { await Task.yield() } }) }
    for h in hs { try! await h.value }
}
let t1 = now()
print("kyoto yield_many ns/op", Double(t1 - t0) / 200_000)
}
for _ in 0..<3 {
let t0 = now()
await withTaskGroup(of: Void.self) { g in
    for _ in 0..<200 { g.addTask { for _ in 0..<1000 { await Task.yield() } } }
}
let t1 = now()
print("default yield_many ns/op", Double(t1 - t0) / 200_000)
}
// spawn_many_local
for _ in 0..<3 {
let t0 = now()
r.blockOn {
    let counter = Ctr()
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
        let box = Box(c)
        spawn {
            for _ in 0..<10_000 { spawn { if counter.v.subtract(1, ordering: .relaxed).newValue == 0 { box.c.resume() } } }
        }
    }
}
let t1 = now()
print("kyoto spawn_many_local ns/op", Double(t1 - t0) / 10_000)
}
final class Box: @unchecked Sendable { let c: CheckedContinuation<Void, Never>; init(_ c: CheckedContinuation<Void, Never>) { self.c = c } }
print(r.metrics)
for _ in 0..<3 {
let t0 = now()
let spawnT = r.blockOn { () -> UInt64 in
    let counter = Ctr()
    let a = now()
    var hs: [JoinHandle<Void>] = []
    hs.reserveCapacity(10000)
    for _ in 0..<10_000 { hs.append(spawn { _ = counter.v.subtract(1, ordering: .relaxed) }) }
    let b = now()
    for h in hs { try! await h.value }
    return b - a
}
let t1 = now()
print("kyoto spawn+await ns/op", Double(t1 - t0) / 10_000, "spawn part", Double(spawnT)/10_000)
}
for _ in 0..<3 {
let t0 = now()
let spawnT = r.blockOn { () -> UInt64 in
    let a = now()
    var hs: [Task<Void, Never>] = []
    for _ in 0..<10_000 { hs.append(Task(executorPreference: r) { }) }
    let b = now()
    for h in hs { await h.value }
    return b - a
}
let t1 = now()
print("raw Task pref spawn+await ns/op", Double(t1 - t0) / 10_000, "spawn part", Double(spawnT)/10_000)
}
final class Ctr: Sendable { let v = Atomic<Int>(10_000) }
