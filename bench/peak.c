/* The machine's float32 peak, which bench/run.sh divides the workloads' matmul
 * GFLOP/s by: FMA throughput from registers (no memory traffic, so nothing can
 * be faster) with AVX-512 and with AVX2, on 1 and 2 threads; and OpenBLAS
 * sgemm at 2048³, what a tuned kernel reaches on a large product. run.sh runs
 * it twice, the second time `--only sgemm` with OPENBLAS_CORETYPE=SkylakeX,
 * because the environment may force other kernels (the one of
 * docs/PERFORMANCE.md forces OpenBLAS's Haswell (AVX2) kernels).
 *
 * Prints lines `PEAK WHAT THREADS GFLOP/s`; every number is the best of
 * --repeats, since a peak is a ceiling and any disturbance only lowers it. */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenBLAS's own declarations, written out because the bench targets are not
 * given cblas.h's directory (Debian keeps it under openblas-pthread/); the
 * CBLAS enums are passed as their int values. */
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int n);
char *openblas_get_corename(void);
char *openblas_get_config(void);
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111 };

/* --clock cpu: the FMA loops are timed by the process's CPU time divided by
 * the threads, which leaves out the time a thread waited for a core on a
 * shared machine (bench/conv.sh uses it); the default is the wall clock. */
static int cpu_clock;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Results leave through here so that the compiler cannot drop the loops. */
static volatile float sink;

#define REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define REP16(X) REP12(X) X(12) X(13) X(14) X(15)

/* Independent chains a = a·m + c: an FMA's latency (4 cycles) times the two
 * FMA pipes needs at least 8 in flight. AVX-512 has 32 registers, so 16
 * chains; AVX2 has 16, so 12 (plus m and c) to keep them all in registers. */
enum { CHAINS_512 = 16, CHAINS_256 = 12 };

__attribute__((target("avx512f"))) static void fma_avx512(long iters) {
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
#define DECL(i) __m512 a##i = _mm512_set1_ps((float)(i));
  REP16(DECL)
#undef DECL
  for (long it = 0; it < iters; it++) {
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, m, c);
    REP16(STEP)
#undef STEP
  }
  __m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, a##i);
  REP16(SUM)
#undef SUM
  sink = _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static void fma_avx2(long iters) {
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
#define DECL(i) __m256 a##i = _mm256_set1_ps((float)(i));
  REP12(DECL)
#undef DECL
  for (long it = 0; it < iters; it++) {
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, m, c);
    REP12(STEP)
#undef STEP
  }
  __m256 s = _mm256_setzero_ps();
#define SUM(i) s = _mm256_add_ps(s, a##i);
  REP12(SUM)
#undef SUM
  float out[8];
  _mm256_storeu_ps(out, s);
  sink = out[0] + out[7];
}

/* Seconds for every one of `threads` threads to run kernel(iters). */
static double run_fma(void (*kernel)(long), long iters, int threads) {
  int got = 0;
  double t0 = cpu_clock ? cpu_now() : now();
#pragma omp parallel num_threads(threads)
  {
#pragma omp single nowait
    got = omp_get_num_threads();
    kernel(iters);
  }
  double t = cpu_clock ? (cpu_now() - t0) / threads : now() - t0;
  /* OMP_THREAD_LIMIT or a nested region could give fewer, and the GFLOP/s
   * would then be wrong by that factor. */
  if (got != threads) {
    fprintf(stderr, "peak: asked OpenMP for %d threads, got %d\n", threads, got);
    exit(1);
  }
  return t;
}

static void bench_fma(const char *name, void (*kernel)(long), double flops_per_iter,
                      double seconds, int repeats) {
  /* Size the loop from a short trial so that one repeat takes `seconds`. */
  long iters = 1 << 16;
  double t;
  while ((t = run_fma(kernel, iters, 1)) < 0.02) iters *= 4;
  iters = (long)((double)iters * seconds / t) + 1;
  for (int threads = 1; threads <= 2; threads++) {
    double best = 0;
    for (int r = 0; r < repeats; r++) {
      double s = run_fma(kernel, iters, threads);
      double gf = flops_per_iter * (double)iters * threads / s * 1e-9;
      if (gf > best) best = gf;
    }
    printf("PEAK %s %d %.1f\n", name, threads, best);
    fflush(stdout);
  }
}

static void bench_sgemm(int n, int repeats) {
  size_t nn = (size_t)n * (size_t)n;
  float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
  if (!a || !b || !c) {
    fprintf(stderr, "peak: out of memory for sgemm at n = %d\n", n);
    exit(1);
  }
  for (size_t i = 0; i < nn; i++) {
    a[i] = (float)(i % 7) * 0.25f - 0.75f;
    b[i] = (float)(i % 5) * 0.5f - 1.0f;
  }
  const char *env = getenv("OPENBLAS_CORETYPE");
  printf("# %s; kernels: %s (OPENBLAS_CORETYPE=%s)\n", openblas_get_config(),
         openblas_get_corename(), env ? env : "<unset>");
  double flops = 2.0 * (double)n * (double)n * (double)n;
  for (int threads = 1; threads <= 2; threads++) {
    openblas_set_num_threads(threads);
    double best = 0;
    for (int r = 0; r <= repeats; r++) { /* r = 0 warms up (thread pool, pages) */
      double t0 = now();
      cblas_sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, n, n, n, 1.0f, a, n, b, n,
                  0.0f, c, n);
      double gf = flops / (now() - t0) * 1e-9;
      if (r > 0 && gf > best) best = gf;
    }
    printf("PEAK sgemm%d-%s %d %.1f\n", n, openblas_get_corename(), threads, best);
    fflush(stdout);
  }
  sink = c[nn / 2];
  free(a);
  free(b);
  free(c);
}

static void usage(void) {
  fprintf(stderr,
          "usage: peak [--only fma|sgemm] [--seconds S] [--repeats R] [--gemm-n N]\n"
          "            [--clock wall|cpu]\n"
          "  FMA loops of about S seconds (default 0.5) per repeat, R repeats (default 5),\n"
          "  on 1 and 2 threads; OpenBLAS sgemm N×N×N (default 2048) on 1 and 2 threads.\n"
          "  Prints PEAK WHAT THREADS GFLOP/s, the best of the repeats. --clock cpu times\n"
          "  the FMA loops by CPU time per thread instead of the wall clock.\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *only = NULL;
  double seconds = 0.5;
  int repeats = 5, gemm_n = 2048;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    if (strcmp(a, "--only") == 0) only = argv[++i];
    else if (strcmp(a, "--seconds") == 0) seconds = atof(argv[++i]);
    else if (strcmp(a, "--repeats") == 0) repeats = atoi(argv[++i]);
    else if (strcmp(a, "--gemm-n") == 0) gemm_n = atoi(argv[++i]);
    else if (strcmp(a, "--clock") == 0) {
      const char *c = argv[++i];
      if (strcmp(c, "cpu") != 0 && strcmp(c, "wall") != 0) usage();
      cpu_clock = strcmp(c, "cpu") == 0;
    }
    else usage();
  }
  if (!(seconds > 0) || repeats < 1 || gemm_n < 1 || gemm_n > 16384) usage();
  if (only && strcmp(only, "fma") != 0 && strcmp(only, "sgemm") != 0) usage();
  if (!only || strcmp(only, "fma") == 0) {
    printf("# FMA from registers, float32: %d zmm / %d ymm chains per thread, best of %d"
           " × ~%.2g s (%s)\n",
           CHAINS_512, CHAINS_256, repeats, seconds, cpu_clock ? "CPU time" : "wall clock");
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
      bench_fma("fma-avx512", fma_avx512, CHAINS_512 * 16 * 2.0, seconds, repeats);
    else
      printf("# fma-avx512: skipped, this CPU has no AVX-512F\n");
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      bench_fma("fma-avx2", fma_avx2, CHAINS_256 * 8 * 2.0, seconds, repeats);
    else
      printf("# fma-avx2: skipped, this CPU has no AVX2 + FMA\n");
  }
  if (!only || strcmp(only, "sgemm") == 0) bench_sgemm(gemm_n, repeats);
  return 0;
}
