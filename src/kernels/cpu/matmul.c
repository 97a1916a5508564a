/* Matrix products: OpenBLAS above a size threshold, an in-house loop below.
 * Both split the output rows into fixed chunks, one single-threaded product a
 * chunk, so the bits never depend on the number of threads. */
#include <cblas.h>

#include "kernels/cpu/kernels.h"

/* Rows of c per task; fixed, never derived from the thread count. */
#define SK_MM_ROWS 32
/* m·n·k below which the in-house loop wins over a BLAS call's overhead. */
#define SK_MM_BLAS_MIN 32768

void sk__kernels_init(void) {
  /* scorekit threads over chunks itself; a threaded BLAS inside would
   * oversubscribe the cores (see DESIGN.md). */
  openblas_set_num_threads(1);
}

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

/* Rows [i0, i1) of c, in-house: row-times-matrix as axpys when b's rows are
 * contiguous (tb = 0), dot products otherwise. */
static void mm_rows_small(float *c, const float *a, const float *b, int64_t m, int64_t n,
                          int64_t k, int ta, int tb, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i++) {
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

static void mm_rows_blas(float *c, const float *a, const float *b, int64_t m, int64_t n, int64_t k,
                         int ta, int tb, int64_t i0, int64_t i1) {
  const float *ai = ta ? a + i0 : a + i0 * k;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (blasint)(i1 - i0), (blasint)n, (blasint)k, 1.0f, ai, (blasint)(ta ? m : k), b,
              (blasint)(tb ? k : n), 0.0f, c + i0 * n, (blasint)n);
}

void sk__matmul(float *c, const float *a, const float *b, int64_t m, int64_t n, int64_t k, int ta,
                int tb) {
  if (k == 0) {
    for (int64_t i = 0; i < m * n; i++) c[i] = 0.0f;
    return;
  }
  const int blas = m * n * k >= SK_MM_BLAS_MIN;
  const int64_t chunks = (m + SK_MM_ROWS - 1) / SK_MM_ROWS;
#pragma omp parallel for schedule(static) if (chunks > 1 && m * n * k >= 4 * SK_MM_BLAS_MIN)
  for (int64_t ch = 0; ch < chunks; ch++) {
    int64_t i0 = ch * SK_MM_ROWS, i1 = SK_MIN(m, i0 + SK_MM_ROWS);
    if (blas)
      mm_rows_blas(c, a, b, m, n, k, ta, tb, i0, i1);
    else
      mm_rows_small(c, a, b, m, n, k, ta, tb, i0, i1);
  }
}
