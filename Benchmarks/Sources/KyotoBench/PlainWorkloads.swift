// The runtime workloads written with plain Swift Concurrency (`Task {}`, `Task.detached`, actors): they run
// on whatever Swift's global executor is in this process (Swift's default executor, Kyoto installed with
// `installAsGlobalExecutor()`, or SwiftNIO's event loops after its takeover). Same structure and helpers as
// KyotoWorkloads.

enum PlainWorkloads {
    static func spawnManyLocal() -> Sample {
        blockWait {
            let n = Size.spawnManyLocal
            let clock = Stopwatch()
            let remaining = Countdown(n)
            let done = OneShot()
            for _ in 0..<n {
                Task {
                    if remaining.decrement() == 0 { done.send() }
                }
            }
            await done.receive()
            let sample = clock.stop()
            verify(remaining.value == 0, "spawn_many_local: \(remaining.value) tasks did not run")
            return sample
        }
    }

    static func spawnManyRemoteIdle() -> Sample {
        let n = Size.spawnManyRemoteIdle
        let clock = Stopwatch()
        var tasks: [Task<Int, Never>] = []
        tasks.reserveCapacity(n)
        for _ in 0..<n { tasks.append(Task.detached { 1 }) }
        let all = tasks
        let total = blockWait {
            var sum = 0
            for t in all { sum += await t.value }
            return sum
        }
        let sample = clock.stop()
        verify(total == n, "spawn_many_remote_idle: \(total) of \(n) tasks finished")
        return sample
    }

    static func yieldMany() -> Sample {
        let (sample, total) = blockWait {
            let clock = Stopwatch()
            var tasks: [Task<Int, Never>] = []
            tasks.reserveCapacity(Size.yieldTasks)
            for _ in 0..<Size.yieldTasks {
                tasks.append(
                    Task {
                        var yields = 0
                        for _ in 0..<Size.yieldsPerTask {
                            await Task.yield()
                            yields += 1
                        }
                        return yields
                    })
            }
            var total = 0
            for t in tasks { total += await t.value }
            return (clock.stop(), total)
        }
        verify(total == Size.yieldTasks * Size.yieldsPerTask, "yield_many: \(total) yields")
        return sample
    }

    static func pingPong() -> Sample {
        blockWait {
            let rounds = Size.pingPongRounds
            let clock = Stopwatch()
            let remaining = Countdown(rounds)
            let completed = Tally()
            let done = OneShot()
            for _ in 0..<rounds {
                Task {
                    let ping = OneShot()
                    let pong = OneShot()
                    Task {
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

    static func chainedSpawn() -> Sample {
        let (sample, hops) = blockWait {
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
            Task { chain(remaining: remaining - 1, hops: hops + 1, done: done) }
        }
    }

    static func actorPingPong() -> Sample {
        let (sample, last, calls) = blockWait {
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
