/* Private helpers shared by every layer: allocation with failure injection,
 * error reporting, and overflow-checked size arithmetic. */
#ifndef SK_CORE_INTERNAL_H
#define SK_CORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scorekit/core.h"

/* Library allocations go through these so that tests can count them and make
 * them fail. Same contracts as malloc/calloc/realloc/free. */
void *sk__malloc(size_t n);
void *sk__calloc(size_t count, size_t size);
void *sk__realloc(void *p, size_t n);
void sk__free(void *p);
char *sk__strdup(const char *s);

/* sk_set_error under the internal name. */
#define sk__fail sk_set_error

/* a * b into *out; false on overflow. */
static inline bool sk__mul_size(size_t a, size_t b, size_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
static inline bool sk__add_size(size_t a, size_t b, size_t *out) {
  return !__builtin_add_overflow(a, b, out);
}

#ifdef NDEBUG
#define SK_ASSERT(c) ((void)0)
#else
#include <assert.h>
#define SK_ASSERT(c) assert(c)
#endif

#define SK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SK_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
