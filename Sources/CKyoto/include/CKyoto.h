// CKyoto: the few platform calls Glibc does not expose to Swift (futex, gettid, thread names,
// CPU affinity) and the thread-local slot the scheduler uses to find "the worker I am running on".
// Everything here is a thin wrapper; the policy lives in Swift.
#ifndef CKYOTO_H
#define CKYOTO_H

#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The cooperative budget of the job the calling thread runs (Kyoto's `ThreadContext.budget`): units left.
/// 0 on threads that are not Kyoto runtime threads. A thread-local so the budget fast path inlines into
/// every caller (no call, no lookup of the thread's context): see `_budgetTryConsume` in Budget.swift.
extern __attribute__((tls_model("initial-exec"))) _Thread_local int32_t kyoto_tls_budget;

/// Spends one unit if any is left; false means "take the slow path" (none left, or not a runtime thread).
/// As Tokio's `poll_proceed`: a fresh budget of 128 lets 128 operations through, the 129th yields.
static inline bool kyoto_budget_take(void) {
    int32_t units = kyoto_tls_budget;
    if (units > 0) {
        kyoto_tls_budget = units - 1;
        return true;
    }
    return false;
}

/// Reads the calling thread's budget.
static inline int32_t kyoto_budget_get(void) { return kyoto_tls_budget; }

/// Writes the calling thread's budget.
static inline void kyoto_budget_set(int32_t units) { kyoto_tls_budget = units; }

/// Counts the job runs that started with a fresh budget on the calling thread (`kyoto_budget_refill`), so
/// that `unconstrained` can tell whether it is still in the job run it started in.
extern __attribute__((tls_model("initial-exec"))) _Thread_local uint64_t kyoto_tls_budget_epoch;

/// Starts a job run's budget: sets it to `units` and counts a new run.
static inline void kyoto_budget_refill(int32_t units) {
    kyoto_tls_budget = units;
    kyoto_tls_budget_epoch += 1;
}

/// The calling thread's job-run count (see `kyoto_tls_budget_epoch`).
static inline uint64_t kyoto_budget_epoch_get(void) { return kyoto_tls_budget_epoch; }

/// How many LocalSet job loops the calling thread is inside (`LocalExecutor.runPending`): non-zero while it
/// runs a LocalSet's jobs, whatever else the thread is (a blockOn thread, a current-thread driver, a
/// blocking-pool thread, a set's own thread outside any runtime).
extern __attribute__((tls_model("initial-exec"))) _Thread_local int32_t kyoto_tls_local_set_depth;

/// Reads the calling thread's LocalSet depth.
static inline int32_t kyoto_local_set_depth(void) { return kyoto_tls_local_set_depth; }

/// Adds `delta` to the calling thread's LocalSet depth.
static inline void kyoto_local_set_depth_add(int32_t delta) { kyoto_tls_local_set_depth += delta; }

/// The task whose `blockInPlace` closure the calling thread is running right now (its identity: the task
/// object's address), or 0. Set around the closure and restored after it, so it names the innermost call.
/// The blocking forms of the primitives may block there, and only there, inside a task.
extern __attribute__((tls_model("initial-exec"))) _Thread_local uintptr_t kyoto_tls_block_in_place_task;

/// Reads the calling thread's `blockInPlace` task (see `kyoto_tls_block_in_place_task`).
static inline uintptr_t kyoto_block_in_place_task_get(void) { return kyoto_tls_block_in_place_task; }

/// Writes the calling thread's `blockInPlace` task.
static inline void kyoto_block_in_place_task_set(uintptr_t task) { kyoto_tls_block_in_place_task = task; }

/// The LocalSet executor whose jobs the calling thread is running right now (`LocalExecutor.runPending`),
/// or NULL. Per thread, so a driver thread never overwrites another thread's answer.
extern __attribute__((tls_model("initial-exec"))) _Thread_local void *kyoto_tls_local_executor;

/// Reads the calling thread's running LocalSet executor.
static inline void *kyoto_local_executor_get(void) { return kyoto_tls_local_executor; }

/// Writes the calling thread's running LocalSet executor.
static inline void kyoto_local_executor_set(void *executor) { kyoto_tls_local_executor = executor; }

/// A spin-wait hint to the CPU (x86 `pause`, arm64 `yield`): a waiting core backs off from the cache
/// line it polls and yields pipeline resources to its hyper-thread sibling.
static inline void kyoto_spin_hint(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Blocks while `*addr == expected`, for at most `timeout_ns` nanoseconds (negative = no limit).
/// Returns 0 when woken or when the value differed, 1 on time-out, -1 on another error.
int kyoto_futex_wait(uint32_t *addr, uint32_t expected, int64_t timeout_ns);

/// Wakes at most `count` threads blocked in `kyoto_futex_wait` on `addr`. Returns how many were woken.
int kyoto_futex_wake(uint32_t *addr, int32_t count);

/// The kernel thread id of the calling thread.
int64_t kyoto_gettid(void);

/// Names the calling thread (at most 15 bytes are kept by Linux).
void kyoto_set_thread_name(const char *name);

/// Number of CPUs in the calling thread's affinity mask (0 if unknown).
int32_t kyoto_affinity_cpu_count(void);

/// The calling thread's scheduler context slot (NULL when it is not a runtime thread).
void *kyoto_tls_context_get(void);
/// Sets the calling thread's scheduler context slot.
void kyoto_tls_context_set(void *context);

/// Creates a joinable thread running `body(arg)` with the given stack size (0 = default), named `name`
/// (may be NULL) before this call returns. Returns 0 on success, an errno value otherwise.
int kyoto_thread_create(uint64_t *out_thread, uint64_t stack_size, const char *name, void *(*body)(void *),
                        void *arg);

/// Joins a thread made by `kyoto_thread_create`.
int kyoto_thread_join(uint64_t thread);

/// Detaches a thread made by `kyoto_thread_create`.
int kyoto_thread_detach(uint64_t thread);

/// Atomically replaces `*slot` with `desired` if it holds `expected` (sequentially consistent).
/// Used once, to install the global-executor hook. Returns true on success.
bool kyoto_pointer_cas(void **slot, void *expected, void *desired);

/// Atomically loads `*slot` (acquire).
void *kyoto_pointer_load(void **slot);

/// Process CPU time (user + system) in nanoseconds.
int64_t kyoto_process_cpu_ns(void);

/// Tells ThreadSanitizer (when it is loaded) that the calling thread acquires / releases the
/// synchronization object at `addr`. No-ops otherwise. Needed because `Synchronization.Mutex` on Linux
/// locks with raw futex syscalls, which ThreadSanitizer cannot see.
void kyoto_tsan_acquire(void *addr);
void kyoto_tsan_release(void *addr);

#ifdef __cplusplus
}
#endif
#endif
