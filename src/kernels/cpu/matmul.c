/* Matrix products. libxsmm's JIT kernels (AVX-512 or AVX2, generated for the
 * exact shape at first use) serve every product whose left operand is not
 * transposed twice; where the JIT is not available (another architecture) a
 * portable loop or OpenBLAS does. Measured on this project's 2-core AMD EPYC
 * (docs/PERFORMANCE.md): libxsmm 180–210 GFLOP/s on the 128-wide products of
 * the toy models, OpenBLAS's (environment-forced) Haswell kernel about 100.
 *
 * The row-major product c = a·b is the column-major product c^T = b^T·a^T,
 * which is how it is handed to libxsmm (M = n, N = rows of c, K = k):
 *   a·b     (NN): b as the first operand, a as the second, no flags;
 *   a^T·b   (TN): the second operand transposed (libxsmm's TRANS_B);
 *   a·b^T   (NT): libxsmm has no TRANS_A, so b^T is packed first (the
 *                 executor does it once per run for a parameter), or, for a
 *                 thin or computed b, dot products.
 * Rows of c are independent and each element's k-sum runs in the same order
 * whatever rows a call covers (checked by test_graph_run), which is what makes
 * the thread split invisible in the bits. */
#include <cblas.h>
#include <libxsmm.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels/cpu/kernels.h"

/* m·n·k above which the portable path calls OpenBLAS. */
#define SK_MM_BLAS_MIN 32768
/* Output columns at or below which a·b^T is done as dot products. */
#define SK_MM_THIN 8
/* Columns of c per libxsmm call: keeps the first operand's panel (k × 128
 * floats) in L2 for large products. */
#define SK_MM_NB 128
/* k per libxsmm call for long reductions (the batch of a weight gradient):
 * partial sums are added in this fixed order. */
#define SK_MM_KB 1024

static int jit_ok;
static atomic_int force_portable;

void sk__kernels_init(void) {
  /* scorekit threads over rows itself; a threaded BLAS inside would
   * oversubscribe the cores (see DESIGN.md). */
  openblas_set_num_threads(1);
  libxsmm_init();
  /* The JIT needs AVX2 at least; below that (or off x86) it returns NULL. */
  float one = 1.0f, zero = 0.0f;
  libxsmm_blasint ld = 16;
  jit_ok = libxsmm_get_target_archid() >= LIBXSMM_X86_AVX2 &&
           libxsmm_smmdispatch(16, 16, 16, &ld, &ld, &ld, &one, &zero, NULL, NULL) != NULL;
}

void sk__matmul_force_portable(int on) { atomic_store(&force_portable, on); }

#define A_AT(i, kk) (ta ? a[(kk) * m + (i)] : a[(i) * k + (kk)])
#define B_AT(kk, j) (tb ? b[(j) * k + (kk)] : b[(kk) * n + (j)])

void sk__matmul_naive(float *c, const float *a, const float *b, int64_t m, int64_t n, int64_t k,
                      int ta, int tb) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      float s = 0.0f;
      for (int64_t kk = 0; kk < k; kk++) s += A_AT(i, kk) * B_AT(kk, j);
      c[i * n + j] = s;
    }
}

/* Σ x[i]·y[i] in 16 interleaved partial sums, added pairwise at the end: a
 * fixed order the compiler vectorises (no reassociation is needed). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static float dot(
    const float *restrict x, const float *restrict y, int64_t k) {
  float s[16] = {0};
  int64_t kk = 0;
  for (; kk + 16 <= k; kk += 16)
    for (int l = 0; l < 16; l++) s[l] += x[kk + l] * y[kk + l];
  for (int l = 0; kk < k; kk++, l++) s[l] += x[kk] * y[kk];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) s[l] += s[l + w];
  return s[0];
}

/* c = a·b^T by dot products of rows: thin outputs, and b^T not packed. */
static void mm_dot_rows(float *c, const float *a, const float *b, int64_t n, int64_t k,
                        int64_t r0, int64_t r1) {
  for (int64_t i = r0; i < r1; i++)
    for (int64_t j = 0; j < n; j++) c[i * n + j] = dot(a + i * k, b + j * k, k);
}

/* The portable path: row-times-matrix as axpys when b's rows are contiguous
 * (tb = 0), dot products otherwise; OpenBLAS for large products. */
static void mm_rows_portable(float *c, const float *a, const float *b, int64_t m, int64_t n,
                             int64_t k, int ta, int tb, int64_t r0, int64_t r1) {
  if ((r1 - r0) * n * k >= SK_MM_BLAS_MIN) {
    const float *ai = ta ? a + r0 : a + r0 * k;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)(r1 - r0), (blasint)n, (blasint)k, 1.0f, ai, (blasint)(ta ? m : k), b,
                (blasint)(tb ? k : n), 0.0f, c + r0 * n, (blasint)n);
    return;
  }
  for (int64_t i = r0; i < r1; i++) {
    float *restrict ci = c + i * n;
    if (!tb) {
      for (int64_t j = 0; j < n; j++) ci[j] = 0.0f;
      for (int64_t kk = 0; kk < k; kk++) {
        const float aik = A_AT(i, kk);
        const float *restrict bk = b + kk * n;
        for (int64_t j = 0; j < n; j++) ci[j] += aik * bk[j];
      }
    } else {
      for (int64_t j = 0; j < n; j++) {
        const float *restrict bj = b + j * k;
        float s = 0.0f;
        for (int64_t kk = 0; kk < k; kk++) s += A_AT(i, kk) * bj[kk];
        ci[j] = s;
      }
    }
  }
}

/* c rows [r0, r1) = op(a)·bk with bk (k, n) row-major, through libxsmm, in
 * blocks of SK_MM_NB columns and SK_MM_KB of k. False if no kernel could be
 * generated (the caller falls back). */
static int mm_rows_xsmm(float *c, const float *a, const float *bk, int64_t m, int64_t n,
                        int64_t k, int ta, int64_t r0, int64_t r1) {
  const float one = 1.0f, zero = 0.0f;
  const int flags = ta ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
  const libxsmm_blasint lda = (libxsmm_blasint)n, ldb = (libxsmm_blasint)(ta ? m : k),
                        ldc = (libxsmm_blasint)n, rows = (libxsmm_blasint)(r1 - r0);
  for (int64_t j0 = 0; j0 < n; j0 += SK_MM_NB) {
    const libxsmm_blasint nb = (libxsmm_blasint)SK_MIN(SK_MM_NB, n - j0);
    for (int64_t k0 = 0; k0 < k; k0 += SK_MM_KB) {
      const libxsmm_blasint kb = (libxsmm_blasint)SK_MIN(SK_MM_KB, k - k0);
      libxsmm_smmfunction f =
          libxsmm_smmdispatch(nb, rows, kb, &lda, &ldb, &ldc, &one, k0 ? &one : &zero, &flags, NULL);
      if (!f) return 0;
      const float *ak = ta ? a + k0 * m + r0 : a + r0 * k + k0;
      f(bk + k0 * n + j0, ak, c + r0 * n + j0);
    }
  }
  return 1;
}

void sk__matmul_rows(float *c, const float *a, const float *b, const float *bt, int64_t m,
                     int64_t n, int64_t k, int ta, int tb, int64_t r0, int64_t r1) {
  if (r0 >= r1) return;
  if (k == 0) {
    memset(c + r0 * n, 0, (size_t)((r1 - r0) * n) * sizeof(float));
    return;
  }
  const int jit = jit_ok && !atomic_load_explicit(&force_portable, memory_order_relaxed);
  if (!ta && tb && (n <= SK_MM_THIN || (!bt && jit))) {
    mm_dot_rows(c, a, b, n, k, r0, r1);
    return;
  }
  if (jit && !(ta && tb) && mm_rows_xsmm(c, a, tb ? bt : b, m, n, k, ta, r0, r1)) return;
  mm_rows_portable(c, a, b, m, n, k, ta, tb, r0, r1);
}

void sk__matmul(float *c, const float *a, const float *b, int64_t m, int64_t n, int64_t k, int ta,
                int tb) {
  sk__matmul_rows(c, a, b, NULL, m, n, k, ta, tb, 0, m);
}

void sk__transpose_rows(float *t, const float *s, int64_t rows, int64_t cols, int64_t r0,
                        int64_t r1) {
  /* 16 × 16 tiles: both sides touch whole cache lines. */
  for (int64_t j0 = r0; j0 < r1; j0 += 16)
    for (int64_t i0 = 0; i0 < rows; i0 += 16) {
      const int64_t j1 = SK_MIN(r1, j0 + 16), i1 = SK_MIN(rows, i0 + 16);
      for (int64_t j = j0; j < j1; j++)
        for (int64_t i = i0; i < i1; i++) t[j * rows + i] = s[i * cols + j];
    }
}
