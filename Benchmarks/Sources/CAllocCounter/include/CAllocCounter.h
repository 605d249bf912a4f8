#ifndef KYOTO_BENCH_ALLOC_COUNTER_H
#define KYOTO_BENCH_ALLOC_COUNTER_H

#include <stdint.h>

/// Calls to malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign made so far, by every thread.
uint64_t bench_alloc_count(void);
/// Calls to free with a non-null pointer made so far, by every thread.
uint64_t bench_free_count(void);
/// Allocates and frees one block through the interposed malloc (used by the self-check).
void bench_alloc_probe(void);

#endif
