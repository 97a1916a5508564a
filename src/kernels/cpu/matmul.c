/* Matrix products. libxsmm's JIT kernels (AVX-512 or AVX2, generated for the
 * exact shape at first use) serve every product whose left operand is not
 * transposed twice; where the JIT is not available (another architecture) a
 * portable loop does. No product goes to BLAS (libxsmm's library needs it
 * linked, for entry points scorekit does not call), so the host program's
 * BLAS threads are left as it set them. Measured on this project's 2-core AMD EPYC
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
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/cpu/transpose16.h"
#endif

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/xsmm.h"

/* Output columns at or below which a·b^T is done as dot products. */
#define SK_MM_THIN 8
/* The longest thin a·b whose b^T is made on the stack (32 KiB). */
#define SK_MM_THIN_K 1024
/* Columns of c per libxsmm call: keeps the first operand's panel (k × 128
 * floats) in L2 for large products. */
#define SK_MM_NB 128
/* k per libxsmm call for long reductions (the batch of a weight gradient):
 * partial sums are added in this fixed order. */
#define SK_MM_KB 256

static int jit_ok;
static atomic_int force_portable;

void sk__kernels_init(void) {
  sk__xsmm_init();
  /* The JIT needs AVX2 at least; below that (or off x86) it returns NULL. */
  jit_ok = sk__xsmm_avx2() && sk__xsmm_smm(16, 16, 16, 16, 16, 16, 0, LIBXSMM_GEMM_FLAG_NONE) != NULL;
}

void sk__matmul_force_portable(int on) { atomic_store(&force_portable, on); }

int sk__jit_available(void) { return jit_ok; }

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

typedef float sk__v16 __attribute__((vector_size(64)));

/* The pairwise sums of 16 vectors at once, in dot()'s order for each
 * (lane l plus lane l + w, for w = 8, 4, 2, 1): every level adds lanes l and
 * l + w of two vectors into one, so 15 vector adds give the 16 sums, v[0]'s
 * in lane 0 to v[15]'s in lane 15. */
#define SHUF(x, y, ...) __builtin_shufflevector(x, y, __VA_ARGS__)
__attribute__((always_inline)) static inline void sum16x16(const sk__v16 v[16], sk__v16 *out) {
  sk__v16 h1[8], h2[4], h3[2];
  for (int p = 0; p < 8; p++)
    h1[p] = SHUF(v[2 * p], v[2 * p + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
            SHUF(v[2 * p], v[2 * p + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  for (int p = 0; p < 4; p++)
    h2[p] = SHUF(h1[2 * p], h1[2 * p + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
            SHUF(h1[2 * p], h1[2 * p + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  for (int p = 0; p < 2; p++)
    h3[p] = SHUF(h2[2 * p], h2[2 * p + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
            SHUF(h2[2 * p], h2[2 * p + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  *out = SHUF(h3[0], h3[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
         SHUF(h3[0], h3[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

/* c = a·b^T by dot products of rows: thin outputs, and b^T not packed.
 * Blocks of 8 rows × 2 columns share their loads and keep 16 sums apart (so
 * the adds' latency is hidden), each in dot()'s order (16 interleaved
 * partial sums, then added pairwise by sum16x16), so every element has the
 * bits of dot(), which does the rows and columns left over. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void mm_dot_rows(
    float *restrict c, const float *restrict a, const float *restrict b, int64_t n, int64_t k,
    int64_t r0, int64_t r1) {
  const int64_t kb = k / 16 * 16;
  int64_t i = r0;
  /* 8 rows × 2 columns: 16 independent sums, reduced together. */
  for (; i + 8 <= r1 && n >= 2; i += 8) {
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
      const float *b0 = b + j * k, *b1 = b0 + k;
      sk__v16 s[16] = {{0}};
      for (int64_t kk = 0; kk < kb; kk += 16) {
        sk__v16 y0, y1;
        memcpy(&y0, b0 + kk, sizeof y0);
        memcpy(&y1, b1 + kk, sizeof y1);
        for (int q = 0; q < 8; q++) {
          sk__v16 x;
          memcpy(&x, a + (i + q) * k + kk, sizeof x);
          s[2 * q] += x * y0;
          s[2 * q + 1] += x * y1;
        }
      }
      for (int q = 0; q < 8; q++) {
        const float *ai = a + (i + q) * k;
        for (int64_t kk = kb, l = 0; kk < k; kk++, l++) {
          s[2 * q][l] += ai[kk] * b0[kk];
          s[2 * q + 1][l] += ai[kk] * b1[kk];
        }
      }
      sk__v16 r;
      sum16x16(s, &r);
      if (n == 2) {
        memcpy(c + i * 2, &r, sizeof r);
      } else {
        for (int q = 0; q < 8; q++) {
          c[(i + q) * n + j] = r[2 * q];
          c[(i + q) * n + j + 1] = r[2 * q + 1];
        }
      }
    }
    for (; j < n; j++)
      for (int q = 0; q < 8; q++) c[(i + q) * n + j] = dot(a + (i + q) * k, b + j * k, k);
  }
  for (; i < r1; i++)
    for (int64_t j = 0; j < n; j++) c[i * n + j] = dot(a + i * k, b + j * k, k);
}

/* The portable path (no JIT, or both operands transposed): row-times-matrix
 * as axpys when b's rows are contiguous (tb = 0), dot products otherwise.
 * Not OpenBLAS: its result for a row depends on how many rows a call has
 * (its edge kernels differ), which would make the bits depend on the thread
 * split. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void mm_rows_portable(
    float *restrict c, const float *a, const float *b, int64_t m, int64_t n, int64_t k, int ta,
    int tb, int64_t r0, int64_t r1) {
  for (int64_t i = r0; i < r1; i++) {
    float *restrict ci = c + i * n;
    if (!tb) {
      for (int64_t j = 0; j < n; j++) ci[j] = 0.0f;
      for (int64_t kk = 0; kk < k; kk++) {
        const float aik = A_AT(i, kk);
        const float *restrict bk = b + kk * n;
        for (int64_t j = 0; j < n; j++) ci[j] += aik * bk[j];
      }
    } else if (!ta) {
      for (int64_t j = 0; j < n; j++) ci[j] = dot(a + i * k, b + j * k, k);
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

/* libxsmm's kernels do not give a row of c the same bits whatever the rows
 * of the call: the generator blocks rows (its N) by the count it is given.
 * Measured on libxsmm 1.17 (tests/test_graph_run.c checks it on the machine
 * at hand): a call whose rows start at a multiple of SK_MM_RB and number a
 * multiple of SK_MM_RB gives each row the bits of a 16-row call, for every
 * column-block width M ≤ 128 except 65–80 (split into 64 + the rest). So
 * the body of a range is one call, the last rows of c (m mod 16) another,
 * and a block that a range cuts (a caller's own split; the executor splits
 * at multiples of 16) is computed whole into scratch and its rows copied. */
#define SK_MM_RB 16

static libxsmm_smmfunction xsmm(libxsmm_blasint mm, libxsmm_blasint nn, libxsmm_blasint kk,
                                libxsmm_blasint lda, libxsmm_blasint ldb, libxsmm_blasint ldc,
                                int beta1, int flags) {
  return sk__xsmm_smm(mm, nn, kk, lda, ldb, ldc, beta1, flags);
}

/* A column block's width: SK_MM_NB, or what is left, never 65–80. */
static int64_t col_block(int64_t left) {
  const int64_t nb = SK_MIN(SK_MM_NB, left);
  return nb > 64 && nb <= 80 ? 64 : nb;
}

/* c rows [r0, r1) = op(a)·bk with bk (k, n) row-major, through libxsmm: column
 * blocks (col_block), k blocks of SK_MM_KB (partial sums added in that fixed
 * order), rows as above. False if no kernel could be generated. */
static int mm_rows_xsmm(float *c, const float *a, const float *bk, int64_t m, int64_t n,
                        int64_t k, int ta, int64_t r0, int64_t r1) {
  float scratch[2][SK_MM_RB * SK_MM_NB];
  const int flags = ta ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
  const libxsmm_blasint ldb = (libxsmm_blasint)(ta ? m : k);
  /* Up to 4 pieces: a cut head block, the aligned body, c's last block, a
   * cut tail block. Each: first row, rows, and whether it goes to scratch. */
  int64_t p_i0[4], p_rows[4];
  int p_scr[4], np = 0;
  const int64_t mb = m / SK_MM_RB * SK_MM_RB; /* rows in whole blocks */
  int64_t i = r0;
  if (i % SK_MM_RB && i < mb) { /* head cut: its block, whole, into scratch */
    const int64_t i0 = i / SK_MM_RB * SK_MM_RB;
    p_i0[np] = i0, p_rows[np] = SK_MM_RB, p_scr[np++] = 1;
    i = i0 + SK_MM_RB;
  }
  if (i < r1 && i < mb) {
    const int64_t end = SK_MIN(mb, r1 / SK_MM_RB * SK_MM_RB);
    if (end > i) {
      p_i0[np] = i, p_rows[np] = end - i, p_scr[np++] = 0;
      i = end;
    }
    if (i < r1 && i < mb) { /* tail cut */
      p_i0[np] = i, p_rows[np] = SK_MM_RB, p_scr[np++] = 1;
      i += SK_MM_RB;
    }
  }
  if (i < r1) /* c's last, short block: whole when the range reaches it */
    p_i0[np] = mb, p_rows[np] = m - mb, p_scr[np++] = r0 > mb;
  for (int p = 0, used = 0; p < np; p++) {
    const int64_t i0 = p_i0[p];
    const libxsmm_blasint rows = (libxsmm_blasint)p_rows[p];
    const float *ap = ta ? a + i0 : a + i0 * k;
    if (!p_scr[p]) { /* k blocks outermost: each panel of b is used for all rows */
      for (int64_t k0 = 0; k0 < k; k0 += SK_MM_KB) {
        const libxsmm_blasint kb = (libxsmm_blasint)SK_MIN(SK_MM_KB, k - k0);
        for (int64_t j0 = 0, nb; j0 < n; j0 += nb) {
          nb = col_block(n - j0);
          libxsmm_smmfunction f = xsmm((libxsmm_blasint)nb, rows, kb, (libxsmm_blasint)n, ldb,
                                       (libxsmm_blasint)n, k0 > 0, flags);
          if (!f) return 0;
          f(bk + k0 * n + j0, ta ? ap + k0 * m : ap + k0, c + i0 * n + j0);
        }
      }
      continue;
    }
    float *dst = scratch[used++ & 1]; /* a cut block, a column block at a time */
    for (int64_t j0 = 0, nb; j0 < n; j0 += nb) {
      nb = col_block(n - j0);
      for (int64_t k0 = 0; k0 < k; k0 += SK_MM_KB) {
        const libxsmm_blasint kb = (libxsmm_blasint)SK_MIN(SK_MM_KB, k - k0);
        libxsmm_smmfunction f = xsmm((libxsmm_blasint)nb, rows, kb, (libxsmm_blasint)n, ldb,
                                     (libxsmm_blasint)nb, k0 > 0, flags);
        if (!f) return 0;
        f(bk + k0 * n + j0, ta ? ap + k0 * m : ap + k0, dst);
      }
      for (int64_t r = SK_MAX(i0, r0); r < SK_MIN(i0 + rows, r1); r++)
        memcpy(c + r * n + j0, dst + (r - i0) * nb, (size_t)nb * sizeof(float));
    }
  }
  return 1;
}

/* One block of mm_tn_small: 16·CV columns from j0 for a p known at compile
 * time, so that the p × CV sums stay in registers. */
#define TN_SMALL_BLOCK(P, CV)                                               \
  do {                                                                      \
    sk__v16 acc[P][CV];                                                     \
    for (int i = 0; i < (P); i++)                                           \
      for (int cc = 0; cc < (CV); cc++) acc[i][cc] = (sk__v16){0};          \
    for (int64_t kk = 0; kk < k; kk++) {                                    \
      const float *yk = y + kk * ys + j0, *xk = x + kk * xs;                \
      for (int cc = 0; cc < (CV); cc++) {                                   \
        sk__v16 yv;                                                         \
        memcpy(&yv, yk + 16 * cc, sizeof yv);                               \
        for (int i = 0; i < (P); i++) acc[i][cc] += xk[i] * yv;             \
      }                                                                     \
    }                                                                       \
    for (int i = 0; i < (P); i++)                                           \
      for (int cc = 0; cc < (CV); cc++) {                                   \
        const sk__v16 v = acc[i][cc];                                       \
        float *di0 = d + i * di + (j0 + 16 * cc) * dj;                      \
        if (dj == 1)                                                        \
          memcpy(di0, &v, sizeof v);                                        \
        else                                                                \
          for (int l = 0; l < 16; l++) di0[l * dj] = v[l];                  \
      }                                                                     \
  } while (0)

/* x^T·y for a thin x (k, p), p ≤ SK_MM_THIN, with rows of stride xs, and y
 * (k, ·) with rows of stride ys, over y's columns [q0, q1): element (i, j)
 * goes to d[i·di + j·dj]. Each sum runs over k in order, in registers for
 * blocks of 64 (p ≤ 4) or 32 columns, one at a time for the rest, so any
 * split of the columns gives the same bits. The thin products of a weight
 * gradient (an input or output layer): libxsmm vectorises along an output's
 * columns, too few on one side or the other. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void mm_tn_small(
    float *restrict d, int64_t di, int64_t dj, const float *restrict x, int64_t xs, int64_t p,
    const float *restrict y, int64_t ys, int64_t k, int64_t q0, int64_t q1) {
  int64_t j0 = q0;
  const int64_t step = p <= 4 ? 64 : 32;
  for (; j0 + step <= q1; j0 += step) switch (p) {
    case 1: TN_SMALL_BLOCK(1, 4); break;
    case 2: TN_SMALL_BLOCK(2, 4); break;
    case 3: TN_SMALL_BLOCK(3, 4); break;
    case 4: TN_SMALL_BLOCK(4, 4); break;
    case 5: TN_SMALL_BLOCK(5, 2); break;
    case 6: TN_SMALL_BLOCK(6, 2); break;
    case 7: TN_SMALL_BLOCK(7, 2); break;
    default: TN_SMALL_BLOCK(8, 2); break;
    }
  /* The last columns one at a time, in the same order. */
  for (; j0 < q1; j0++)
    for (int64_t i = 0; i < p; i++) {
      float acc = 0.0f;
      for (int64_t kk = 0; kk < k; kk++) acc += x[kk * xs + i] * y[kk * ys + j0];
      d[i * di + j0 * dj] = acc;
    }
}

void sk__matmul_rows(float *c, const float *a, const float *b, const float *bt, int64_t m,
                     int64_t n, int64_t k, int ta, int tb, int64_t r0, int64_t r1) {
  if (r0 >= r1 || n == 0) return; /* n = 0: c has no elements */
  if (k == 0) {
    memset(c + r0 * n, 0, (size_t)((r1 - r0) * n) * sizeof(float));
    return;
  }
  const int jit = jit_ok && !atomic_load_explicit(&force_portable, memory_order_relaxed);
  if (!ta && tb && (n <= SK_MM_THIN || (!bt && jit))) {
    mm_dot_rows(c, a, b, n, k, r0, r1);
    return;
  }
  if (!ta && !tb && n <= SK_MM_THIN && k <= SK_MM_THIN_K) {
    /* A thin b (k, n) as b^T on the stack: the dot products above. */
    float bt_local[SK_MM_THIN * SK_MM_THIN_K];
    for (int64_t j = 0; j < n; j++)
      for (int64_t kk = 0; kk < k; kk++) bt_local[j * k + kk] = b[kk * n + j];
    mm_dot_rows(c, a, bt_local, n, k, r0, r1);
    return;
  }
  if (ta && !tb && m <= SK_MM_THIN) { /* c rows [r0, r1) = a[:, r0:r1]^T·b */
    mm_tn_small(c + r0 * n, n, 1, a + r0, m, r1 - r0, b, n, k, 0, n);
    return;
  }
  if (ta && !tb && n <= SK_MM_THIN) { /* c^T columns [r0, r1) = b^T·a[:, r0:r1] */
    mm_tn_small(c, 1, n, b, n, n, a, m, k, r0, r1);
    return;
  }
  if (jit && !(ta && tb) && mm_rows_xsmm(c, a, tb ? bt : b, m, n, k, ta, r0, r1)) return;
  mm_rows_portable(c, a, b, m, n, k, ta, tb, r0, r1);
}

void sk__matmul(float *c, const float *a, const float *b, int64_t m, int64_t n, int64_t k, int ta,
                int tb) {
  sk__matmul_rows(c, a, b, NULL, m, n, k, ta, tb, 0, m);
}

#if defined(__x86_64__)
/* Columns [j0, j0 + 16) of rows [i0, i0 + 16) of s, transposed in registers
 * (pairs of rows interleaved by element, then by pair, then 128-bit lanes
 * twice) and stored past the cache as 16 whole lines of t. */
__attribute__((target("avx512f"))) static void transpose16_stream(float *t, const float *s,
                                                                  int64_t rows, int64_t cols,
                                                                  int64_t i0, int64_t j0) {
  __m512 r[16], u[16];
  for (int a = 0; a < 16; a++) r[a] = _mm512_loadu_ps(s + (i0 + a) * cols + j0);
  sk__transpose16_regs(r, u);
  for (int b = 0; b < 16; b++) _mm512_stream_ps(t + (j0 + b) * rows + i0, u[b]);
}

/* sk__transpose_rows with non-temporal stores: 16 × 16 blocks, the columns
 * left over by plain stores. Needs rows % 16 == 0 and t on a line, so that
 * every block row is a whole line of t. */
__attribute__((target("avx512f"))) static void transpose_stream(float *t, const float *s,
                                                                int64_t rows, int64_t cols,
                                                                int64_t r0, int64_t r1) {
  int64_t j0 = r0;
  for (; j0 + 16 <= r1; j0 += 16)
    for (int64_t i0 = 0; i0 < rows; i0 += 16) transpose16_stream(t, s, rows, cols, i0, j0);
  for (int64_t j = j0; j < r1; j++)
    for (int64_t i = 0; i < rows; i++) t[j * rows + i] = s[i * cols + j];
  _mm_sfence(); /* before the barrier that publishes t */
}
#endif

void sk__transpose_rows(float *t, const float *s, int64_t rows, int64_t cols, int64_t r0,
                        int64_t r1, int stream) {
  if (r0 >= r1 || rows == 0) return;
#if defined(__x86_64__)
  /* A pack that other threads read: the lines they read last time cost
   * this core about 9 ns each to write again, a non-temporal store about 1
   * (bench/coherence); ncsn at batch 128 on 2 threads +3.8 % (A/B). */
  if (stream && rows % 16 == 0 && ((uintptr_t)t & 63) == 0 && __builtin_cpu_supports("avx512f")) {
    transpose_stream(t, s, rows, cols, r0, r1);
    return;
  }
#else
  (void)stream;
#endif
  /* libxsmm's transpose (column-major terms: s's columns [r0, r1) are an
   * (r1 - r0) × rows matrix with leading dimension cols). */
  if (jit_ok) {
    sk__xsmm_transpose(t + r0 * rows, s + r0, (libxsmm_blasint)(r1 - r0), (libxsmm_blasint)rows,
                       (libxsmm_blasint)cols, (libxsmm_blasint)rows);
    return;
  }
  /* 16 × 16 tiles: both sides touch whole cache lines. */
  for (int64_t j0 = r0; j0 < r1; j0 += 16)
    for (int64_t i0 = 0; i0 < rows; i0 += 16) {
      const int64_t j1 = SK_MIN(r1, j0 + 16), i1 = SK_MIN(rows, i0 + 16);
      for (int64_t j = j0; j < j1; j++)
        for (int64_t i = i0; i < i1; i++) t[j * rows + i] = s[i * cols + j];
    }
}
