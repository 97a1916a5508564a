/* Counted allocation with failure injection (libuv's test-loop-oom idea). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static atomic_uint_fast64_t sk_alloc_count;
static atomic_int_fast64_t sk_alloc_fail_after = -1;

uint64_t sk_debug_alloc_count(void) { return atomic_load(&sk_alloc_count); }
void sk_debug_fail_alloc_after(int64_t n) { atomic_store(&sk_alloc_fail_after, n); }

static bool sk_alloc_should_fail(void) {
  atomic_fetch_add(&sk_alloc_count, 1);
  int_fast64_t left = atomic_load(&sk_alloc_fail_after);
  if (left < 0) return false;
  if (left == 0) return true;
  atomic_fetch_sub(&sk_alloc_fail_after, 1);
  return false;
}

void *sk__malloc(size_t n) {
  if (sk_alloc_should_fail()) return NULL;
  return malloc(n ? n : 1);
}

void *sk__calloc(size_t count, size_t size) {
  if (sk_alloc_should_fail()) return NULL;
  if (count == 0 || size == 0) count = size = 1;
  return calloc(count, size);
}

/* Zeroed, at a 64-byte boundary (a cache line: no vector load of an aligned
 * row straddles two lines). Freed by sk__free. */
void *sk__calloc_lines(size_t count, size_t size) {
  if (sk_alloc_should_fail()) return NULL;
  if (count == 0 || size == 0) count = size = 1;
  if (count > SIZE_MAX / size || count * size > SIZE_MAX - 63) return NULL;
  const size_t n = (count * size + 63) / 64 * 64;
  void *p = aligned_alloc(64, n);
  if (p) memset(p, 0, n);
  return p;
}

void *sk__realloc(void *p, size_t n) {
  if (sk_alloc_should_fail()) return NULL;
  return realloc(p, n ? n : 1);
}

void sk__free(void *p) { free(p); }

char *sk__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = sk__malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}
