/* What it costs one core to touch cache lines that the other core touched
 * last: the price of sharing data between the threads of a training step
 * (docs/PERFORMANCE.md, "What two threads cost"). Two threads, A and B; per
 * round A writes a buffer, B does something with it, then A writes it again
 * and that second write is timed:
 *
 *   local     B does nothing: A's lines stay in A's cache.
 *   read      B reads the buffer (a weight read by both threads, or a
 *             partial sum read by the thread that adds it up): A's copies
 *             become shared, and A's write must invalidate B's first.
 *   write     B writes the buffer: A's write takes the lines back from B.
 *   nt        as read, but A writes with non-temporal stores (both writes):
 *             the lines go to memory, no copy has to be taken away first,
 *             and B reads them from memory (how nn/adam.c stores the
 *             parameters on several threads).
 *
 * and B's own read of A's lines is timed too (remote read). Prints one line
 * per pattern and size: nanoseconds per 64-byte line, median of the rounds.
 * Usage: coherence [--rounds N] (default 2000). */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile float sink;

static void fill(float *b, size_t n, float v) {
  for (size_t i = 0; i < n; i++) b[i] = v;
}

static float sum(const float *b, size_t n) {
  float s[16] = {0};
  for (size_t i = 0; i < n; i += 16)
    for (int l = 0; l < 16; l++) s[l] += b[i + l];
  float t = 0;
  for (int l = 0; l < 16; l++) t += s[l];
  return t;
}

/* fill with non-temporal stores where the CPU has AVX-512 (else fill). */
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void fill_nt512(float *b, size_t n, float v) {
  const __m512 x = _mm512_set1_ps(v);
  for (size_t i = 0; i < n; i += 16) _mm512_stream_ps(b + i, x);
  _mm_sfence();
}
#endif
static void fill_nt(float *b, size_t n, float v) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) {
    fill_nt512(b, n, v);
    return;
  }
#endif
  fill(b, n, v);
}

static int cmp(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

enum { LOCAL, READ, WRITE, NT };

/* Median ns per line of A's second write (and of B's read, for READ). */
static void measure(int pattern, size_t bytes, int rounds, double *a_ns, double *b_ns) {
  const size_t n = bytes / sizeof(float), lines = bytes / 64;
  float *buf = aligned_alloc(64, bytes);
  double *ta = malloc((size_t)rounds * sizeof *ta), *tb = malloc((size_t)rounds * sizeof *tb);
  if (!buf || !ta || !tb) {
    fprintf(stderr, "coherence: out of memory\n");
    exit(1);
  }
  fill(buf, n, 0.0f);
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    for (int r = 0; r < rounds; r++) {
      if (t == 0) (pattern == NT ? fill_nt : fill)(buf, n, (float)r);
#pragma omp barrier
      if (t == 1) {
        const double t0 = now();
        if (pattern == READ || pattern == NT) sink = sum(buf, n);
        if (pattern == WRITE) fill(buf, n, (float)-r);
        tb[r] = (now() - t0) / (double)lines;
      }
#pragma omp barrier
      if (t == 0) {
        const double t0 = now();
        (pattern == NT ? fill_nt : fill)(buf, n, (float)(r + 1));
        ta[r] = (now() - t0) / (double)lines;
      }
#pragma omp barrier
    }
  }
  qsort(ta, (size_t)rounds, sizeof *ta, cmp);
  qsort(tb, (size_t)rounds, sizeof *tb, cmp);
  *a_ns = ta[rounds / 2];
  *b_ns = tb[rounds / 2];
  free(buf);
  free(ta);
  free(tb);
}

int main(int argc, char **argv) {
  int rounds = 2000;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: coherence [--rounds N]\n");
      return 2;
    }
  }
  if (rounds < 1 || rounds > 1000000) {
    fprintf(stderr, "coherence: --rounds must be 1..1000000\n");
    return 2;
  }
  static const char *what[4] = {"local (B does nothing)", "after B read the lines",
                                "after B wrote the lines", "non-temporal, after B read"};
  static const size_t sizes[2] = {32 << 10, 256 << 10};
  printf("# ns per 64-byte line, median of %d rounds, 2 threads\n", rounds);
  for (int s = 0; s < 2; s++)
    for (int p = LOCAL; p <= NT; p++) {
      double a, b;
      measure(p, sizes[s], rounds, &a, &b);
      printf("COHERENCE %3zu KiB  A rewrites, %-27s %6.2f", sizes[s] >> 10, what[p], a);
      if (p == READ || p == NT) printf("   (B's read of A's lines %.2f)", b);
      printf("\n");
    }
  return 0;
}
