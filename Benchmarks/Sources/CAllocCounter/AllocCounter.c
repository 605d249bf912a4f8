// Counting allocator: this object file is linked into the kyoto-bench executable, so its malloc, free, ...
// are the definitions every shared library (libswiftCore, libswift_Concurrency, libdispatch, Foundation)
// binds to. Each one counts the call, then forwards to glibc's own implementation (__libc_*), so the heap
// is glibc's and malloc_usable_size & co. keep working.
//
// Counters are sharded: each thread takes a slot (a 64-byte line) the first time it allocates, and adds to
// it with a relaxed atomic add, so two workers allocating at once do not fight over one cache line.
// Readers sum all slots; the total is exact once the counting threads have stopped or synchronised with
// the reader (the benchmarks read it after awaiting the workload's completion).

#include "CAllocCounter.h"

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_memalign(size_t alignment, size_t size);

#define SLOT_COUNT 64

typedef struct {
    _Atomic uint64_t allocs;
    _Atomic uint64_t frees;
    char padding[64 - 2 * sizeof(uint64_t)];
} counter_slot;

static counter_slot slots[SLOT_COUNT] __attribute__((aligned(64)));
static _Atomic unsigned next_slot;
// initial-exec: the executable's TLS block is static, so reading it never calls into the allocator.
static _Thread_local int this_thread_slot __attribute__((tls_model("initial-exec"))) = -1;

static inline counter_slot *current_slot(void) {
    int s = this_thread_slot;
    if (s < 0) {
        s = (int)(atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed) % SLOT_COUNT);
        this_thread_slot = s;
    }
    return &slots[s];
}

static inline void count_alloc(void) {
    atomic_fetch_add_explicit(&current_slot()->allocs, 1, memory_order_relaxed);
}

uint64_t bench_alloc_count(void) {
    uint64_t total = 0;
    for (int i = 0; i < SLOT_COUNT; i++) total += atomic_load_explicit(&slots[i].allocs, memory_order_relaxed);
    return total;
}

uint64_t bench_free_count(void) {
    uint64_t total = 0;
    for (int i = 0; i < SLOT_COUNT; i++) total += atomic_load_explicit(&slots[i].frees, memory_order_relaxed);
    return total;
}

void bench_alloc_probe(void) {
    void *volatile p = malloc(24);
    free(p);
}

void *malloc(size_t size) {
    count_alloc();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_alloc();
    return __libc_calloc(count, size);
}

void *realloc(void *ptr, size_t size) {
    count_alloc();
    return __libc_realloc(ptr, size);
}

void free(void *ptr) {
    if (ptr == NULL) return;
    atomic_fetch_add_explicit(&current_slot()->frees, 1, memory_order_relaxed);
    __libc_free(ptr);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count_alloc();
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_alloc();
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    count_alloc();
    return __libc_memalign(alignment, size);
}
