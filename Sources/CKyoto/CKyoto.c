#include "CKyoto.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <dlfcn.h>

int kyoto_futex_wait(uint32_t *addr, uint32_t expected, int64_t timeout_ns) {
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    long rc = syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
    if (rc == 0) return 0;
    if (errno == EAGAIN || errno == EINTR) return 0;
    if (errno == ETIMEDOUT) return 1;
    return -1;
}

int kyoto_futex_wake(uint32_t *addr, int32_t count) {
    long rc = syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
    return rc < 0 ? 0 : (int)rc;
}

int64_t kyoto_gettid(void) { return (int64_t)syscall(SYS_gettid); }

void kyoto_set_thread_name(const char *name) {
    char buf[16];
    int i = 0;
    for (; i < 15 && name[i] != 0; i++) buf[i] = name[i];
    buf[i] = 0;
    pthread_setname_np(pthread_self(), buf);
}

int32_t kyoto_affinity_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
    return (int32_t)CPU_COUNT(&set);
}

static __attribute__((tls_model("initial-exec"))) _Thread_local void *kyoto_tls_context;

__attribute__((tls_model("initial-exec"))) _Thread_local int32_t kyoto_tls_budget = 0;
__attribute__((tls_model("initial-exec"))) _Thread_local int32_t kyoto_tls_local_set_depth = 0;
__attribute__((tls_model("initial-exec"))) _Thread_local void *kyoto_tls_local_executor = 0;
__attribute__((tls_model("initial-exec"))) _Thread_local uint64_t kyoto_tls_budget_epoch = 0;
__attribute__((tls_model("initial-exec"))) _Thread_local uintptr_t kyoto_tls_block_in_place_task = 0;

void *kyoto_tls_context_get(void) { return kyoto_tls_context; }
void kyoto_tls_context_set(void *context) { kyoto_tls_context = context; }

int kyoto_thread_create(uint64_t *out_thread, uint64_t stack_size, const char *name, void *(*body)(void *),
                        void *arg) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (stack_size > 0) pthread_attr_setstacksize(&attr, (size_t)stack_size);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, body, arg);
    pthread_attr_destroy(&attr);
    if (rc == 0) {
        *out_thread = (uint64_t)thread;
        if (name != NULL) {
            char buf[16];
            int i = 0;
            for (; i < 15 && name[i] != 0; i++) buf[i] = name[i];
            buf[i] = 0;
            pthread_setname_np(thread, buf);
        }
    }
    return rc;
}

int kyoto_thread_join(uint64_t thread) { return pthread_join((pthread_t)thread, NULL); }
int kyoto_thread_detach(uint64_t thread) { return pthread_detach((pthread_t)thread); }

bool kyoto_pointer_cas(void **slot, void *expected, void *desired) {
    // Sequentially consistent (release would do): orders the store of `installed` (Runtime+GlobalExecutor.swift)
    // before the hook. The Swift runtime reads the slot with a plain load, which pairs with nothing: a thread
    // sees `installed` through some other ordering (installation at start-up), and the hook copes if it does
    // not (`GlobalExecutorInstallation.enqueue`).
    return __atomic_compare_exchange_n(slot, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

// Acquiring: pairs with a releasing write of `*slot` such as `kyoto_pointer_cas`. No caller at present.
void *kyoto_pointer_load(void **slot) { return __atomic_load_n(slot, __ATOMIC_ACQUIRE); }

int64_t kyoto_process_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// ThreadSanitizer annotations, resolved once at run time: present only when the TSan runtime is loaded.
typedef void (*kyoto_tsan_fn)(void *);
static kyoto_tsan_fn kyoto_tsan_acquire_fn;
static kyoto_tsan_fn kyoto_tsan_release_fn;
static int kyoto_tsan_state;  // 0 = unresolved, 1 = resolved

static void kyoto_tsan_resolve(void) {
    // Acquiring: pairs with the releasing store of the state below (by whichever thread resolved first), so
    // the relaxed loads of the two function pointers in kyoto_tsan_acquire/release see what it stored.
    if (__atomic_load_n(&kyoto_tsan_state, __ATOMIC_ACQUIRE)) return;
    kyoto_tsan_fn a = (kyoto_tsan_fn)dlsym(RTLD_DEFAULT, "__tsan_acquire");
    kyoto_tsan_fn r = (kyoto_tsan_fn)dlsym(RTLD_DEFAULT, "__tsan_release");
    // Relaxed: published by the releasing store of the state below; threads resolving at once store the
    // same values.
    __atomic_store_n(&kyoto_tsan_acquire_fn, a, __ATOMIC_RELAXED);
    __atomic_store_n(&kyoto_tsan_release_fn, r, __ATOMIC_RELAXED);
    // Releasing: pairs with the acquiring load at the top of this function.
    __atomic_store_n(&kyoto_tsan_state, 1, __ATOMIC_RELEASE);
}

void kyoto_tsan_acquire(void *addr) {
    kyoto_tsan_resolve();
    // Relaxed: ordered after the stores by the acquiring load in kyoto_tsan_resolve (or stored by this thread).
    kyoto_tsan_fn f = __atomic_load_n(&kyoto_tsan_acquire_fn, __ATOMIC_RELAXED);
    if (f) f(addr);
}

void kyoto_tsan_release(void *addr) {
    kyoto_tsan_resolve();
    // Relaxed: as in kyoto_tsan_acquire.
    kyoto_tsan_fn f = __atomic_load_n(&kyoto_tsan_release_fn, __ATOMIC_RELAXED);
    if (f) f(addr);
}
