/* Private helpers shared by every layer: allocation with failure injection,
 * error reporting, and overflow-checked size arithmetic. */
#ifndef SK_CORE_INTERNAL_H
#define SK_CORE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scorekit/core.h"

/* Library allocations go through these so that tests can count them and make
 * them fail. Same contracts as malloc/calloc/realloc/free. */
void *sk__malloc(size_t n);
void *sk__calloc(size_t count, size_t size);
void *sk__calloc_lines(size_t count, size_t size); /* zeroed, 64-byte aligned */
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

/* The most elements a tensor or a graph's value may have (just under 2^60),
 * so that its size in bytes, or in doubles, fits in an int64_t. */
#define SK__MAX_NUMEL (INT64_MAX / 8)

/* The element count of a shape; -1 if a dimension is negative or the
 * product of the nonzero ones exceeds SK__MAX_NUMEL. Bounding the nonzero
 * dimensions' product, not the count, keeps every product of some of them
 * (an op's rows, a plane, a dimension times a factor) in range whatever
 * other dimension is 0. */
static inline int64_t sk__shape_numel(int ndim, const int64_t *shape) {
  int64_t nonzero = 1;
  int empty = 0;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return -1;
    if (shape[i] == 0) {
      empty = 1;
      continue;
    }
    if (nonzero > SK__MAX_NUMEL / shape[i]) return -1;
    nonzero *= shape[i];
  }
  return empty ? 0 : nonzero;
}

/* "(d0, d1, ...)" into buf, cut to cap bytes. */
void sk__shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

#ifdef NDEBUG
#define SK_ASSERT(c) ((void)0)
#else
#include <assert.h>
#define SK_ASSERT(c) assert(c)
#endif

/* The team size for scorekit's next parallel region on this thread: the
 * library's setting (sk_set_num_threads), else OpenMP's. Every parallel
 * region in scorekit names it in a num_threads clause. */
int sk__num_threads(void);

/* A barrier for the threads of one parallel region, cheaper than OpenMP's
 * (see core/threads.c). Zero it before the region; every thread keeps its
 * own sense, 0 at the start, and all nt threads must call each wait. */
typedef struct sk__barrier {
  char before[64]; /* the two words on lines of their own, however the */
  atomic_int arrived; /* struct around it is aligned */
  char apart[60];
  atomic_int sense;
  char after[60];
} sk__barrier;
void sk__barrier_wait(sk__barrier *b, int nt, int *sense);

#define SK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SK_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Threads split an op's rows at multiples of this (the matrix product
 * computes rows in absolute blocks of 16, kernels/cpu/matmul.c). */
#define SK_SPLIT_ROWS 16

/* Rows [u0, u1) of `units` for thread t of nt: contiguous runs of whole
 * SK_SPLIT_ROWS blocks, a function of (units, t, nt) only, so that every op
 * (and the optimiser, nn/adam.c) with as many rows splits them the same way
 * and each row stays with one thread. A single row goes to thread 0. */
static inline void sk__split(int64_t units, int t, int nt, int64_t *u0, int64_t *u1) {
  const int64_t blocks = (units + SK_SPLIT_ROWS - 1) / SK_SPLIT_ROWS;
  *u0 = SK_MIN(units, SK_SPLIT_ROWS * ((blocks * t + nt - 1) / nt));
  *u1 = SK_MIN(units, SK_SPLIT_ROWS * ((blocks * (t + 1) + nt - 1) / nt));
}

#endif
