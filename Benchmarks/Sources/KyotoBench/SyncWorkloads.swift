// The sync workloads of WORKLOADS.md (mutex, semaphore, rwlock), with Kyoto's primitives and with the usual
// Swift substitutes: an actor whose method is the critical section ("actor-as-lock"), a hand-written actor
// semaphore, and Synchronization.Mutex (a synchronous lock, nothing awaited while it is held). Each function
// runs one iteration on `exec`, verifies the result and returns the timed sample.

import KyotoSync
import Synchronization

enum SyncWorkloads {
    static var lockOps: Int { SyncSize.lockTasks * SyncSize.locksPerTask }

    // MARK: mutex_contended: 5 tasks × 1,000 lock / increment / unlock.

    static func mutexContendedKyoto(_ exec: Exec) -> Sample {
        let (sample, value) = exec.enter {
            let mutex = AsyncMutex(0)
            let clock = Stopwatch()
            let tasks = TaskGroupLite(SyncSize.lockTasks, on: exec) { _ in
                for _ in 0..<SyncSize.locksPerTask { try! await mutex.withLock { $0 += 1 } }
            }
            await tasks.wait()
            let sample = clock.stop()
            return (sample, try! await mutex.withLock { $0 })
        }
        verify(value == lockOps, "mutex_contended (kyoto): counter is \(value), expected \(lockOps)")
        return sample
    }

    static func mutexContendedActor(_ exec: Exec) -> Sample {
        let (sample, value) = exec.enter {
            let lock = LockActor()
            let clock = Stopwatch()
            let tasks = TaskGroupLite(SyncSize.lockTasks, on: exec) { _ in
                for _ in 0..<SyncSize.locksPerTask { await lock.increment() }
            }
            await tasks.wait()
            let sample = clock.stop()
            return (sample, await lock.value)
        }
        verify(value == lockOps, "mutex_contended (actor-lock): counter is \(value), expected \(lockOps)")
        return sample
    }

    static func mutexContendedSyncMutex(_ exec: Exec) -> Sample {
        let (sample, value) = exec.enter {
            let box = SyncMutexBox(0)
            let clock = Stopwatch()
            let tasks = TaskGroupLite(SyncSize.lockTasks, on: exec) { _ in
                for _ in 0..<SyncSize.locksPerTask { box.mutex.withLock { $0 += 1 } }
            }
            await tasks.wait()
            let sample = clock.stop()
            return (sample, box.mutex.withLock { $0 })
        }
        verify(value == lockOps, "mutex_contended (sync-mutex): counter is \(value), expected \(lockOps)")
        return sample
    }

    // MARK: mutex_held_across_await: 2 tasks × 1,000 lock / increment / Task.yield() / unlock.

    /// The lock is held across an `await`, so a contender always finds the holder suspended: what a waiter
    /// loses by re-checking the lock before it queues (Kyoto only: an actor cannot hold its isolation across
    /// an await, and `Synchronization.Mutex` cannot be held across one).
    static func mutexHeldAcrossAwaitKyoto(_ exec: Exec) -> Sample {
        let (sample, value) = exec.enter {
            let mutex = AsyncMutex(0)
            let clock = Stopwatch()
            let tasks = TaskGroupLite(SyncSize.awaitingLockTasks, on: exec) { _ in
                for _ in 0..<SyncSize.locksPerTask {
                    try! await mutex.withLock { value in
                        value += 1
                        await Task.yield()
                    }
                }
            }
            await tasks.wait()
            let sample = clock.stop()
            return (sample, try! await mutex.withLock { $0 })
        }
        verify(
            value == SyncSize.awaitingLockTasks * SyncSize.locksPerTask,
            "mutex_held_across_await (kyoto): counter is \(value)")
        return sample
    }

    // MARK: mutex_uncontended: 1 task × 10,000 lock / increment / unlock.

    static func mutexUncontendedKyoto(_ exec: Exec) -> Sample {
        let (sample, value) = exec.enter {
            let mutex = AsyncMutex(0)
            let clock = Stopwatch()
            for _ in 0..<SyncSize.uncontendedLocks { try! await mutex.withLock { $0 += 1 } }
            let sample = clock.stop()
            return (sample, try! await mutex.withLock { $0 })
        }
        verify(value == SyncSize.uncontendedLocks, "mutex_uncontended (kyoto): counter is \(value)")
        return sample
    }

    static func mutexUncontendedActor(_ exec: Exec) -> Sample {
        let (sample, value) = exec.enter {
            let lock = LockActor()
            let clock = Stopwatch()
            for _ in 0..<SyncSize.uncontendedLocks { await lock.increment() }
            let sample = clock.stop()
            return (sample, await lock.value)
        }
        verify(value == SyncSize.uncontendedLocks, "mutex_uncontended (actor-lock): counter is \(value)")
        return sample
    }

    static func mutexUncontendedSyncMutex(_ exec: Exec) -> Sample {
        let (sample, value) = exec.enter {
            let box = SyncMutexBox(0)
            let clock = Stopwatch()
            for _ in 0..<SyncSize.uncontendedLocks { box.mutex.withLock { $0 += 1 } }
            let sample = clock.stop()
            return (sample, box.mutex.withLock { $0 })
        }
        verify(value == SyncSize.uncontendedLocks, "mutex_uncontended (sync-mutex): counter is \(value)")
        return sample
    }

    // MARK: semaphore_contended: 2 permits, 5 tasks × 1,000 acquire / release. The critical section records
    // how many holders are inside at once; more than 2 fails verification.

    static func semaphoreKyoto(_ exec: Exec) -> Sample {
        let (sample, gauge) = exec.enter {
            let semaphore = AsyncSemaphore(permits: SyncSize.semaphorePermits)
            let gauge = Gauge(limit: SyncSize.semaphorePermits)
            let clock = Stopwatch()
            let tasks = TaskGroupLite(SyncSize.lockTasks, on: exec) { _ in
                for _ in 0..<SyncSize.locksPerTask { try! await semaphore.withPermit { gauge.enterAndLeave() } }
            }
            await tasks.wait()
            let sample = clock.stop()
            verify(
                semaphore.availablePermits == SyncSize.semaphorePermits,
                "semaphore_contended (kyoto): \(semaphore.availablePermits) permits free at the end")
            return (sample, gauge)
        }
        verifySemaphore(gauge, "kyoto")
        return sample
    }

    static func semaphoreActorSemaphore(_ exec: Exec) -> Sample {
        let (sample, gauge) = exec.enter {
            let semaphore = ActorSemaphore(permits: SyncSize.semaphorePermits)
            let gauge = Gauge(limit: SyncSize.semaphorePermits)
            let clock = Stopwatch()
            let tasks = TaskGroupLite(SyncSize.lockTasks, on: exec) { _ in
                for _ in 0..<SyncSize.locksPerTask {
                    await semaphore.acquire()
                    gauge.enterAndLeave()
                    await semaphore.release()
                }
            }
            await tasks.wait()
            return (clock.stop(), gauge)
        }
        verifySemaphore(gauge, "actor-semaphore")
        return sample
    }

    /// The critical section runs inside an actor method: a one-permit semaphore, the actor-as-lock idiom.
    static func semaphoreActorLock(_ exec: Exec) -> Sample {
        let (sample, gauge) = exec.enter {
            let lock = LockActor()
            let gauge = Gauge(limit: SyncSize.semaphorePermits)
            let clock = Stopwatch()
            let tasks = TaskGroupLite(SyncSize.lockTasks, on: exec) { _ in
                for _ in 0..<SyncSize.locksPerTask { await lock.enter(gauge) }
            }
            await tasks.wait()
            return (clock.stop(), gauge)
        }
        verifySemaphore(gauge, "actor-lock")
        return sample
    }

    private static func verifySemaphore(_ gauge: Gauge, _ impl: String) {
        verify(
            gauge.entryCount == lockOps,
            "semaphore_contended (\(impl)): \(gauge.entryCount) acquisitions, expected \(lockOps)")
        verify(
            gauge.violationCount == 0,
            "semaphore_contended (\(impl)): more than \(gauge.limit) holders at once, \(gauge.violationCount) times")
    }

    // MARK: rwlock_read_contended: 5 tasks × 1,000 read locks; each read adds the protected value to a sum.

    static let rwValue = 7

    static func rwlockKyoto(_ exec: Exec) -> Sample {
        let (sample, sums) = exec.enter {
            let lock = AsyncRwLock(rwValue)
            let sums = OrderCheck()
            let clock = Stopwatch()
            let tasks = TaskGroupLite(SyncSize.lockTasks, on: exec) { _ in
                var sum = 0
                for _ in 0..<SyncSize.locksPerTask { sum += try! await lock.withReadLock { $0 } }
                sums.record(count: SyncSize.locksPerTask, sum: sum, inOrder: true)
            }
            await tasks.wait()
            return (clock.stop(), sums)
        }
        verifyReads(sums, "kyoto")
        return sample
    }

    static func rwlockActor(_ exec: Exec) -> Sample {
        let (sample, sums) = exec.enter {
            let lock = LockActor()
            for _ in 0..<rwValue { await lock.increment() }
            let sums = OrderCheck()
            let clock = Stopwatch()
            let tasks = TaskGroupLite(SyncSize.lockTasks, on: exec) { _ in
                var sum = 0
                for _ in 0..<SyncSize.locksPerTask { sum += await lock.read() }
                sums.record(count: SyncSize.locksPerTask, sum: sum, inOrder: true)
            }
            await tasks.wait()
            return (clock.stop(), sums)
        }
        verifyReads(sums, "actor-lock")
        return sample
    }

    static func rwlockSyncMutex(_ exec: Exec) -> Sample {
        let (sample, sums) = exec.enter {
            let box = SyncMutexBox(rwValue)
            let sums = OrderCheck()
            let clock = Stopwatch()
            let tasks = TaskGroupLite(SyncSize.lockTasks, on: exec) { _ in
                var sum = 0
                for _ in 0..<SyncSize.locksPerTask { sum += box.mutex.withLock { $0 } }
                sums.record(count: SyncSize.locksPerTask, sum: sum, inOrder: true)
            }
            await tasks.wait()
            return (clock.stop(), sums)
        }
        verifyReads(sums, "sync-mutex")
        return sample
    }

    private static func verifyReads(_ sums: OrderCheck, _ impl: String) {
        verify(
            sums.totalCount == lockOps && sums.totalSum == lockOps * rwValue,
            "rwlock_read_contended (\(impl)): \(sums.totalCount) reads summing to \(sums.totalSum), expected \(lockOps) reads of \(rwValue)"
        )
    }
}
