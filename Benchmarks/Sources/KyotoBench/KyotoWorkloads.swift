// The runtime workloads on Kyoto in preference mode: work enters through `blockOn` / `runtime.spawn`, and
// inside the runtime tasks are spawned with Kyoto's free `spawn` (so they carry the runtime as executor
// preference). Each function runs one iteration, verifies its result and returns the timed sample.

import KyotoExecutor

enum KyotoWorkloads {
    static func spawnManyLocal(_ runtime: Runtime) -> Sample {
        runtime.blockOn {
            let n = Size.spawnManyLocal
            let clock = Stopwatch()
            let remaining = Countdown(n)
            let done = OneShot()
            for _ in 0..<n {
                spawn {
                    if remaining.decrement() == 0 { done.send() }
                }
            }
            await done.receive()
            let sample = clock.stop()
            verify(remaining.value == 0, "spawn_many_local: \(remaining.value) tasks did not run")
            return sample
        }
    }

    static func spawnManyRemoteIdle(_ runtime: Runtime) -> Sample {
        let n = Size.spawnManyRemoteIdle
        let clock = Stopwatch()
        var handles: [JoinHandle<Int>] = []
        handles.reserveCapacity(n)
        for _ in 0..<n { handles.append(runtime.spawn { 1 }) }
        let all = handles
        let total = try! runtime.blockOn {
            var sum = 0
            for h in all { sum += try await h.value }
            return sum
        }
        let sample = clock.stop()
        verify(total == n, "spawn_many_remote_idle: \(total) of \(n) tasks finished")
        return sample
    }

    static func yieldMany(_ runtime: Runtime) -> Sample {
        let (sample, total) = try! runtime.blockOn {
            let clock = Stopwatch()
            var handles: [JoinHandle<Int>] = []
            handles.reserveCapacity(Size.yieldTasks)
            for _ in 0..<Size.yieldTasks {
                handles.append(
                    spawn {
                        var yields = 0
                        for _ in 0..<Size.yieldsPerTask {
                            await Task.yield()
                            yields += 1
                        }
                        return yields
                    })
            }
            var total = 0
            for h in handles { total += try await h.value }
            return (clock.stop(), total)
        }
        verify(total == Size.yieldTasks * Size.yieldsPerTask, "yield_many: \(total) yields")
        return sample
    }

    static func pingPong(_ runtime: Runtime) -> Sample {
        runtime.blockOn {
            let rounds = Size.pingPongRounds
            let clock = Stopwatch()
            let remaining = Countdown(rounds)
            let completed = Tally()
            let done = OneShot()
            for _ in 0..<rounds {
                spawn {
                    let ping = OneShot()
                    let pong = OneShot()
                    spawn {
                        let v = await ping.receive()
                        pong.send(v + 1)
                    }
                    ping.send(1)
                    if await pong.receive() == 2 { completed.add(1) }
                    if remaining.decrement() == 0 { done.send() }
                }
            }
            await done.receive()
            let sample = clock.stop()
            verify(completed.value == rounds, "ping_pong: \(completed.value) of \(rounds) rounds completed")
            return sample
        }
    }

    static func chainedSpawn(_ runtime: Runtime) -> Sample {
        let (sample, hops) = runtime.blockOn {
            let clock = Stopwatch()
            let done = OneShot()
            chain(remaining: Size.chainDepth, hops: 0, done: done)
            let hops = await done.receive()
            return (clock.stop(), hops)
        }
        verify(hops == Size.chainDepth, "chained_spawn: chain ended after \(hops) spawns")
        return sample
    }

    private static func chain(remaining: Int, hops: Int, done: OneShot) {
        if remaining == 0 {
            done.send(hops)
        } else {
            spawn { chain(remaining: remaining - 1, hops: hops + 1, done: done) }
        }
    }

    static func actorPingPong(_ runtime: Runtime) -> Sample {
        let (sample, last, calls) = runtime.blockOn {
            let ponger = Ponger()
            let pinger = Pinger(peer: ponger)
            let clock = Stopwatch()
            let last = await pinger.run(Size.actorCalls)
            let sample = clock.stop()
            return (sample, last, await ponger.calls)
        }
        verify(last == Size.actorCalls && calls == Size.actorCalls, "actor_ping_pong: \(calls) calls")
        return sample
    }
}
