/* libc's allocator interposed for the hand-built candidate benchmarks
 * (bench/dnnl, bench/xsmm_dnn): `allocs` counts every malloc, calloc and
 * realloc of the process, so that a benchmark can tell how many a library
 * call makes (scorekit's sk_graph_run makes none). Include it once, in the
 * file that holds main, after <stdatomic.h> and <stddef.h>. */
#ifndef SK_BENCH_ALLOC_COUNT_H
#define SK_BENCH_ALLOC_COUNT_H
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static atomic_long allocs;
void *malloc(size_t n) {
  atomic_fetch_add(&allocs, 1);
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  atomic_fetch_add(&allocs, 1);
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  atomic_fetch_add(&allocs, 1);
  return __libc_realloc(p, n);
}
#endif
