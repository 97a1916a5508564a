/* 2-D convolutions as matrix products on libxsmm's JIT kernels (im2col):
 * with K = C·KH·KW and col (K × columns) the input windows of a block of
 * output positions, one row per (channel, kernel row, kernel column),
 *
 *   forward          y block (O × cols)  = w (O × K) · col
 *   data (input)     dcol (K × cols)     = wᵀ · dy block (O × cols), then
 *                    each row of dcol added back onto the input plane
 *                    (col2im)
 *   data, strided,   per class of input positions (h mod sh, w mod sw):
 *   O ≤ 64           dx class (C × rows) = Σ over the class's taps of
 *                    w tapᵀ (C × O) · dy shifted (O × rows), each element
 *                    then written once (data_classes)
 *   weight           dwᵀ (K × O) += col · dy blockᵀ over every block
 *
 * A block of columns is B whole samples (B·P columns for a plane of P
 * positions, B a power of two up to 16, so that small planes make products
 * wide enough to fill the vectors) or, for a plane of at least CG_MIN_COLS
 * positions, a run of at most CG_MAX_COLS positions of one sample. Every
 * block of a geometry is the same product (libxsmm's column-major M = the
 * block's columns, N = channels, K split into chunks of at most CG_COL_FLOATS
 * floats of col, added in order), and blocks start at fixed samples (a
 * multiple of B) and positions, whatever rows a call covers: a call on a
 * block that its range cuts computes the whole block and keeps its own
 * samples' columns, so every output element is computed the same way on any
 * split (libxsmm's result for a column does not depend on the other columns
 * of its product, but may on the product's shape: see matmul.c). The weight
 * gradient splits by output channel: blocks of CG_CB channels, each one
 * product per block of columns and chunk of K, summed over the batch's
 * blocks in order.
 *
 * Moving the data costs as much as the products unless it is done with
 * care (measured on the U-Net's layers, 1 thread: im2col and col2im took
 * 30-60 % of the time row by row): where a plane's tap table (kernel taps
 * × output positions) is small, windows come through it, made once per
 * call: one float at a time for small planes (4×4 output planes: forward 66
 * → 160 GFLOP/s), 16 at a time by AVX-512 gathers for runs of 64 positions
 * or more (12×12 output planes: forward and weight +18-28 %); other rows as
 * AVX-512 copies and adds of stride 1 or 2; the weight gradient's dy blocks
 * are transposed 16 × 16 in registers (C = 1 layers 30 → 45-65 GFLOP/s).
 * col2im's adds, row by row, cost the data pass 25-45 % of its time on the
 * U-Net's stride-2 layers. At stride 2 across, on whole samples with rows
 * of 4 to 16 output columns (every strided layer of the U-Net but the 2 × 2
 * planes), col2im_rows sums each input row's terms in registers and writes
 * it once: +17-30 % on those layers' data passes. By classes of input
 * positions there are no adds either (dy is copied into zero-padded
 * planes, each dx element written once), but the products take in the
 * terms of dy's zero border and some dropped columns, 10-25 % more, so the
 * classes serve only strided layers of few output channels that
 * col2im_rows does not (on conv2's data pass, 32 ← 64 channels, they gave
 * +17 % over col2im, col2im_rows +30 %; at 128-256 output channels they
 * lost 18-33 % to col2im, 68 % on the 2 × 2 planes; see
 * docs/PERFORMANCE.md).
 *
 * Scratch comes from the caller (the graph plans it, graph/backend.h):
 * sk__conv_gemm_scratch says how much a call needs. */
#include <stdatomic.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/cpu/transpose16.h"
#endif

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/xsmm.h"

/* A block of columns is at least this many (whole samples are added while
 * fewer), and a plane of this many positions or more is cut into runs of at
 * most CG_MAX_COLS. */
#define CG_MIN_COLS 64
#define CG_MAX_COLS 256
#define CG_MAX_B 16 /* divides SK_SPLIT_ROWS: the executor never cuts a block */
/* Floats of col per chunk of K (512 KiB, in L2 beside the weight's panel).
 * Chunks of 64 KiB for the weight gradient, whose every block of 16 output
 * channels has its own part of the scratch, would have cut the U-Net's
 * 256-channel layer's from 5.7 to 2.2 MiB, but cost 8-11 % on the 64- and
 * 128-channel layers' (A/B over 7 rounds). */
#define CG_COL_FLOATS 131072
/* Output channels per product of the weight gradient: the executor's row
 * block, so that its splits never cut one. */
#define CG_CB SK_SPLIT_ROWS /* = 16, the transposes' width */

/* The largest tap table (kernel taps × positions of a plane) kept on the
 * stack for the planes of whole-sample blocks (16 KiB). */
#define CG_TAPS 4096
/* The most output channels of a convolution whose data pass goes by
 * classes of input positions (by_classes). */
#define CG_CLASSES_MAX_O 64
/* Positions per tap row at which the table's gathers use AVX-512's. */
#define CG_GATHER_MIN 64

/* The blocking of a geometry: P positions per sample, K rows of col, B
 * samples per block, cols columns per block (B·P, or a run of positions
 * when B = 1), kc rows of col per chunk; taps: whether blocks are whole
 * samples with a tap table (then kc is whole channels). */
typedef struct cg {
  int64_t P, K, B, cols, kc;
  int taps;
  int thin; /* the weight gradient of a thin K (at most CG_CB) on runs of one sample */
} cg;

static cg cg_of(const sk__conv *cv) {
  cg g;
  const int64_t kk = cv->kh * cv->kw;
  g.P = cv->oh * cv->ow;
  g.K = cv->c * kk;
  g.B = 1;
  while (g.B < CG_MAX_B && g.B < cv->n && g.B * g.P < CG_MIN_COLS) g.B *= 2;
  g.cols = g.B > 1 ? g.B * g.P : SK_MIN(g.P, CG_MAX_COLS);
  g.kc = SK_MAX(16, SK_MIN(g.K, CG_COL_FLOATS / SK_MAX(1, g.cols)));
  g.taps = kk * g.P <= CG_TAPS;
  if (g.taps) g.kc = SK_MAX(kk, g.kc / kk * kk);
  g.thin = g.B == 1 && g.K <= CG_CB;
  return g;
}

/* A geometry's tap table: tab[t·P + p], the offset in the input plane of
 * the element at kernel tap t (row-major over the kernel) for output
 * position p, or -1 in the padding. rows: no padding, and an output row of
 * 4 to 16 positions 1 or 2 apart (sw) in one input row that 16 floats
 * cover: gather_taps copies each output row whole (gather_rows_avx512).
 * Rows of 2 (the U-Net's 2 × 2 planes) went 6-9 % slower that way than
 * float by float (conv4's forward and weight gradient, 3 rounds); they go
 * a window at a time (span). */
typedef struct taps {
  int32_t tab[CG_TAPS];
  int64_t oh, ow, sw;
  int rows;
  /* No padding and P <= 16: the floats a tap's window spans in its plane,
   * and position p's offset from its first (gather_plane_avx512: a window
   * of at most 16 floats is one load and one permute). */
  int span;
  int32_t idx[16];
} taps;

static void make_taps(taps *tp, const sk__conv *cv) {
  const int64_t P = cv->oh * cv->ow;
  int pad = 0;
  for (int64_t a = 0; a < cv->kh; a++)
    for (int64_t b = 0; b < cv->kw; b++)
      for (int64_t p = 0; p < P; p++) {
        const int64_t q = p / cv->ow, r = p % cv->ow;
        const int64_t h = q * cv->sh - cv->ph + a * cv->dh, w = r * cv->sw - cv->pw + b * cv->dw;
        const int in = h >= 0 && h < cv->h && w >= 0 && w < cv->w;
        tp->tab[(a * cv->kw + b) * P + p] = in ? (int32_t)(h * cv->w + w) : -1;
        pad |= !in;
      }
  tp->oh = cv->oh, tp->ow = cv->ow, tp->sw = cv->sw;
  tp->span = 0;
  if (!pad && P <= 16) {
    for (int64_t p = 0; p < 16; p++) tp->idx[p] = p < P ? tp->tab[p] - tp->tab[0] : 0;
    tp->span = (int)(tp->tab[P - 1] - tp->tab[0] + 1);
  }
  tp->rows = !pad && cv->ow >= 4 && (cv->sw == 1 || cv->sw == 2) && (cv->ow - 1) * cv->sw < 16;
}

/* Rows of col for channels [c0, c1) of one sample xs through the tap table
 * (kk taps, P positions), for positions [p0, p0 + n): row (c − c0)·kk + t
 * at col + that·ld. Zeros where the table says padding. */
static void gather_taps_plain(float *restrict col, int64_t ld, const float *restrict xs,
                              const int32_t *restrict tab, int64_t kk, int64_t P, int64_t plane,
                              int64_t c0, int64_t c1, int64_t p0, int64_t n) {
  for (int64_t c = c0; c < c1; c++) {
    const float *xc = xs + c * plane;
    for (int64_t t = 0; t < kk; t++) {
      float *restrict d = col + ((c - c0) * kk + t) * ld;
      const int32_t *s = tab + t * P + p0;
      for (int64_t p = 0; p < n; p++) d[p] = s[p] >= 0 ? xc[s[p]] : 0.0f;
    }
  }
}

#if defined(__x86_64__)
/* The same, 16 positions a gather (padding lanes masked off, as zeros). */
__attribute__((target("avx512f"))) static void gather_taps_avx512(
    float *restrict col, int64_t ld, const float *restrict xs, const int32_t *restrict tab,
    int64_t kk, int64_t P, int64_t plane, int64_t c0, int64_t c1, int64_t p0, int64_t n) {
  for (int64_t c = c0; c < c1; c++) {
    const float *xc = xs + c * plane;
    for (int64_t t = 0; t < kk; t++) {
      float *restrict d = col + ((c - c0) * kk + t) * ld;
      const int32_t *s = tab + t * P + p0;
      for (int64_t p = 0; p < n; p += 16) {
        const __mmask16 m = n - p >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - p)) - 1u);
        const __m512i idx = _mm512_maskz_loadu_epi32(m, s + p);
        const __mmask16 in = _mm512_mask_cmpge_epi32_mask(m, idx, _mm512_setzero_si512());
        const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), in, idx, xc, 4);
        _mm512_mask_storeu_ps(d + p, m, v);
      }
    }
  }
}
#endif


#if defined(__x86_64__)
/* Whole planes (n = P) by output rows (tp->rows): each a masked load of the
 * input row's span, its every other float compressed out at stride 2, and
 * one store, of 16 floats where the plane's later rows overwrite the rest,
 * else masked to the row. */
__attribute__((target("avx512f"))) static void gather_rows_avx512(
    float *restrict col, int64_t ld, const float *restrict xs, const taps *tp, int64_t kk,
    int64_t P, int64_t plane, int64_t c0, int64_t c1) {
  const int64_t oh = tp->oh, ow = tp->ow;
  const __mmask16 span = (__mmask16)((1u << ((ow - 1) * tp->sw + 1)) - 1u);
  const __mmask16 last = (__mmask16)((1u << ow) - 1u);
  const int odd = tp->sw == 2;
  for (int64_t c = c0; c < c1; c++) {
    const float *xc = xs + c * plane;
    for (int64_t t = 0; t < kk; t++) {
      float *restrict d = col + ((c - c0) * kk + t) * ld;
      const int32_t *s = tp->tab + t * P;
      for (int64_t q = 0; q < oh; q++) {
        __m512 v = _mm512_maskz_loadu_ps(span, xc + s[q * ow]);
        if (odd) v = _mm512_maskz_compress_ps((__mmask16)0x5555, v);
        if (q * ow + 16 <= P) _mm512_storeu_ps(d + q * ow, v);
        else _mm512_mask_storeu_ps(d + q * ow, last, v);
      }
    }
  }
}

/* Whole planes (n = P) a tap window of at most 16 floats at a time
 * (tp->span): one masked load, one permute, one store of the P positions
 * (the U-Net's 2 × 2 planes from 5 × 5: 13 floats). */
__attribute__((target("avx512f"))) static void gather_plane_avx512(
    float *restrict col, int64_t ld, const float *restrict xs, const taps *tp, int64_t kk,
    int64_t P, int64_t plane, int64_t c0, int64_t c1) {
  const __mmask16 span = (__mmask16)((1u << tp->span) - 1u), out = (__mmask16)((1u << P) - 1u);
  const __m512i idx = _mm512_loadu_si512(tp->idx);
  for (int64_t c = c0; c < c1; c++) {
    const float *xc = xs + c * plane;
    for (int64_t t = 0; t < kk; t++) {
      const __m512 v = _mm512_maskz_loadu_ps(span, xc + tp->tab[t * P]);
      _mm512_mask_storeu_ps(col + ((c - c0) * kk + t) * ld, out, _mm512_permutexvar_ps(idx, v));
    }
  }
}
#endif

static void gather_taps(float *restrict col, int64_t ld, const float *restrict xs,
                        const taps *tp, int64_t kk, int64_t P, int64_t plane,
                        int64_t c0, int64_t c1, int64_t p0, int64_t n) {
#if defined(__x86_64__)
  if (sk__has_avx512() && tp->span > 0 && tp->span <= 16 && p0 == 0 && n == P) {
    gather_plane_avx512(col, ld, xs, tp, kk, P, plane, c0, c1);
    return;
  }
  if (sk__has_avx512() && tp->rows && p0 == 0 && n == P) {
    gather_rows_avx512(col, ld, xs, tp, kk, P, plane, c0, c1);
    return;
  }
  if (sk__has_avx512() && n >= CG_GATHER_MIN) {
    gather_taps_avx512(col, ld, xs, tp->tab, kk, P, plane, c0, c1, p0, n);
    return;
  }
#endif
  gather_taps_plain(col, ld, xs, tp->tab, kk, P, plane, c0, c1, p0, n);
}

/* xs += those rows of dcol, back through the table: each input element
 * gains its terms in the order of the channel's rows, then positions. */
static void scatter_taps(float *restrict xs, const float *restrict dcol, int64_t ld,
                         const int32_t *restrict tab, int64_t kk, int64_t P, int64_t plane,
                         int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; c++) {
    float *xc = xs + c * plane;
    for (int64_t t = 0; t < kk; t++) {
      const float *d = dcol + ((c - c0) * kk + t) * ld;
      const int32_t *s = tab + t * P;
      for (int64_t p = 0; p < P; p++)
        if (s[p] >= 0) xc[s[p]] += d[p];
    }
  }
}

static int by_classes(const sk__conv *cv);
static int64_t classes_scratch(const sk__conv *cv);

int sk__conv_gemm_ok(const sk__conv *cv) {
  return sk__jit_available() && cv->n > 0 && cv->c > 0 && cv->o > 0 && cv->oh > 0 && cv->ow > 0;
}

int64_t sk__conv_gemm_scratch(const sk__conv *cv, int kind, int64_t rows, int aligned) {
  if (kind == 1 && by_classes(cv)) return classes_scratch(cv);
  const cg g = cg_of(cv);
  if (kind != 2) /* col (a chunk of K) and, for whole samples, the block's y or dy */
    return SK_MIN(g.kc, g.K) * g.cols + (g.B > 1 ? cv->o * g.cols : 0);
  /* A range of `rows` channels touches this many blocks (one more if it may
   * start inside one): each its sums (K × CG_CB) and, unless thin, its dy
   * block transposed (cols × CG_CB); then one chunk of col (thin: col and
   * col transposed). */
  const int64_t blocks =
      rows <= 0 ? 1 : aligned ? (rows + CG_CB - 1) / CG_CB : (rows - 1 + CG_CB - 1) / CG_CB + 1;
  if (g.thin) return blocks * CG_CB * g.K + (g.K + CG_CB) * g.cols;
  return blocks * CG_CB * (g.K + g.cols) + SK_MIN(g.kc, g.K) * g.cols;
}

/* c (m × n, column-major, ldc) = a (m × k, lda) · op(b) (k × n), plus c when
 * acc: op(b) is b (k × n, ldb) or, with tb, bᵀ for b (n × k, ldb). One
 * libxsmm call per CG_MAX_COLS rows of c; false if no kernel could be made. */
static int gemm(float *c, const float *a, const float *b, int64_t m, int64_t n, int64_t k,
                int64_t lda, int64_t ldb, int64_t ldc, int acc, int tb) {
  const int flags = tb ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
  for (int64_t m0 = 0; m0 < m; m0 += CG_MAX_COLS) {
    const libxsmm_blasint mb = (libxsmm_blasint)SK_MIN(CG_MAX_COLS, m - m0);
    libxsmm_smmfunction f = sk__xsmm_smm(mb, (libxsmm_blasint)n, (libxsmm_blasint)k,
                                         (libxsmm_blasint)lda, (libxsmm_blasint)ldb,
                                         (libxsmm_blasint)ldc, acc, flags);
    if (!f) return 0;
    f(a + m0, b, c + m0);
  }
  return 1;
}

/* The first r of an output row whose column r·s − p + off is ≥ 0, and the
 * end of those whose column is < w. */
static void valid_cols(int64_t ow, int64_t s, int64_t p, int64_t off, int64_t w, int64_t *r0,
                       int64_t *r1) {
  const int64_t lo = p - off; /* r·s ≥ lo */
  *r0 = lo <= 0 ? 0 : (lo + s - 1) / s;
  const int64_t hi = w - 1 + p - off; /* r·s ≤ hi */
  *r1 = hi < 0 ? 0 : SK_MIN(ow, hi / s + 1);
  if (*r1 < *r0) *r1 = *r0;
}

/* ---- row copies: dst[r] = src[r·s], dst[r·s] += src[r] (r < n), and
 * 16-channel transposes; AVX-512 where the CPU has it (masked loads never
 * touch what lies past a row), plain loops otherwise ---- */

static void copy_row_plain(float *restrict dst, const float *restrict src, int64_t n, int64_t s) {
  for (int64_t r = 0; r < n; r++) dst[r] = src[r * s];
}

static void add_row_plain(float *restrict dst, const float *restrict src, int64_t n, int64_t s) {
  for (int64_t r = 0; r < n; r++) dst[r * s] += src[r];
}

static void put_row_plain(float *restrict dst, const float *restrict src, int64_t n, int64_t s) {
  for (int64_t r = 0; r < n; r++) dst[r * s] = src[r];
}

/* dst[2r] = a[r] (r < n − n / 2), dst[2r + 1] = b[r] (r < n / 2): n
 * elements, interleaved. */
static void put_pair_plain(float *restrict dst, const float *restrict a, const float *restrict b,
                           int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = i % 2 ? b[i / 2] : a[i / 2];
}

/* d[p·16 + o] = src[o·ld + p] for o < rows (≤ 16), p < n. */
static void transpose16_plain(float *restrict d, const float *restrict src, int64_t ld,
                              int64_t rows, int64_t n) {
  for (int64_t o = 0; o < rows; o++)
    for (int64_t p = 0; p < n; p++) d[p * 16 + o] = src[o * ld + p];
}

#if defined(__x86_64__)

__attribute__((target("avx512f"))) static void copy_row_avx512(float *restrict dst,
                                                               const float *restrict src,
                                                               int64_t n, int64_t s) {
  if (s == 1) {
    for (int64_t r = 0; r < n; r += 16) {
      const __mmask16 m = sk__first_lanes(n - r);
      _mm512_mask_storeu_ps(dst + r, m, _mm512_maskz_loadu_ps(m, src + r));
    }
  } else if (s == 2) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    for (int64_t r = 0; r < n; r += 16) {
      const int64_t k = 2 * (n - r) - 1; /* src elements this chunk reads, up to the last */
      const __m512 lo = _mm512_maskz_loadu_ps(sk__first_lanes(k), src + 2 * r);
      const __m512 hi = _mm512_maskz_loadu_ps(sk__first_lanes(k - 16), src + 2 * r + 16);
      _mm512_mask_storeu_ps(dst + r, sk__first_lanes(n - r), _mm512_permutex2var_ps(lo, even, hi));
    }
  } else {
    copy_row_plain(dst, src, n, s);
  }
}

__attribute__((target("avx512f"))) static void add_row_avx512(float *restrict dst,
                                                              const float *restrict src, int64_t n,
                                                              int64_t s) {
  if (s == 1) {
    for (int64_t r = 0; r < n; r += 16) {
      const __mmask16 m = sk__first_lanes(n - r);
      const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + r), _mm512_maskz_loadu_ps(m, src + r));
      _mm512_mask_storeu_ps(dst + r, m, v);
    }
  } else if (s == 2) {
    const __m512i lo_i = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i hi_i = _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
    for (int64_t r = 0; r < n; r += 16) {
      const int64_t k = 2 * (n - r) - 1; /* dst elements this chunk touches, up to the last */
      const __mmask16 mlo = sk__first_lanes(k) & 0x5555, mhi = sk__first_lanes(k - 16) & 0x5555;
      const __m512 v = _mm512_maskz_loadu_ps(sk__first_lanes(n - r), src + r);
      float *d = dst + 2 * r;
      const __m512 dlo = _mm512_maskz_loadu_ps(mlo, d), dhi = _mm512_maskz_loadu_ps(mhi, d + 16);
      _mm512_mask_storeu_ps(d, mlo, _mm512_add_ps(dlo, _mm512_permutexvar_ps(lo_i, v)));
      _mm512_mask_storeu_ps(d + 16, mhi, _mm512_add_ps(dhi, _mm512_permutexvar_ps(hi_i, v)));
    }
  } else {
    add_row_plain(dst, src, n, s);
  }
}

/* dst[r·s] = src[r]: for s = 2 the odd lanes are masked off, so what lies
 * between the elements stays as it was. */
__attribute__((target("avx512f"))) static void put_row_avx512(float *restrict dst,
                                                              const float *restrict src, int64_t n,
                                                              int64_t s) {
  if (s == 1) {
    copy_row_avx512(dst, src, n, 1);
  } else if (s == 2) {
    const __m512i lo_i = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i hi_i = _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
    for (int64_t r = 0; r < n; r += 16) {
      const int64_t k = 2 * (n - r) - 1; /* dst elements this chunk touches, up to the last */
      const __m512 v = _mm512_maskz_loadu_ps(sk__first_lanes(n - r), src + r);
      float *d = dst + 2 * r;
      _mm512_mask_storeu_ps(d, sk__first_lanes(k) & 0x5555, _mm512_permutexvar_ps(lo_i, v));
      _mm512_mask_storeu_ps(d + 16, sk__first_lanes(k - 16) & 0x5555, _mm512_permutexvar_ps(hi_i, v));
    }
  } else {
    put_row_plain(dst, src, n, s);
  }
}

__attribute__((target("avx512f"))) static void put_pair_avx512(float *restrict dst,
                                                               const float *restrict a,
                                                               const float *restrict b, int64_t n) {
  const __m512i lo_i = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi_i =
      _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  const int64_t na = n - n / 2, nb = n / 2;
  for (int64_t r = 0; r < na; r += 16) {
    const __m512 va = _mm512_maskz_loadu_ps(sk__first_lanes(na - r), a + r);
    const __m512 vb = _mm512_maskz_loadu_ps(sk__first_lanes(nb - r), b + r);
    float *d = dst + 2 * r;
    _mm512_mask_storeu_ps(d, sk__first_lanes(n - 2 * r), _mm512_permutex2var_ps(va, lo_i, vb));
    _mm512_mask_storeu_ps(d + 16, sk__first_lanes(n - 2 * r - 16),
                          _mm512_permutex2var_ps(va, hi_i, vb));
  }
}

/* 16 × 16 in registers (as matmul.c's transpose16_stream), rows past
 * `rows` and columns past n as zeros that are not stored. */
__attribute__((target("avx512f"))) static void transpose16_avx512(float *restrict d,
                                                                  const float *restrict src,
                                                                  int64_t ld, int64_t rows,
                                                                  int64_t n) {
  for (int64_t p0 = 0; p0 < n; p0 += 16) {
    const __mmask16 m = sk__first_lanes(n - p0);
    __m512 r[16], u[16];
    for (int a = 0; a < 16; a++)
      r[a] = a < rows ? _mm512_maskz_loadu_ps(m, src + a * ld + p0) : _mm512_setzero_ps();
    sk__transpose16_regs(r, u);
    for (int b = 0; b < 16 && p0 + b < n; b++) _mm512_storeu_ps(d + (p0 + b) * 16, u[b]);
  }
}
#endif

int sk__has_avx512(void) {
#if defined(__x86_64__)
  static atomic_int known; /* 0 unknown, 1 no, 2 yes */
  int k = atomic_load_explicit(&known, memory_order_relaxed);
  if (!k) {
    __builtin_cpu_init();
    k = __builtin_cpu_supports("avx512f") ? 2 : 1;
    atomic_store_explicit(&known, k, memory_order_relaxed);
  }
  return k == 2;
#else
  return 0;
#endif
}

static void copy_row(float *restrict dst, const float *restrict src, int64_t n, int64_t s) {
#if defined(__x86_64__)
  if (sk__has_avx512()) {
    copy_row_avx512(dst, src, n, s);
    return;
  }
#endif
  copy_row_plain(dst, src, n, s);
}

static void put_row(float *restrict dst, const float *restrict src, int64_t n, int64_t s) {
#if defined(__x86_64__)
  if (sk__has_avx512()) {
    put_row_avx512(dst, src, n, s);
    return;
  }
#endif
  put_row_plain(dst, src, n, s);
}

static void put_pair(float *restrict dst, const float *restrict a, const float *restrict b,
                     int64_t n) {
#if defined(__x86_64__)
  if (sk__has_avx512()) {
    put_pair_avx512(dst, a, b, n);
    return;
  }
#endif
  put_pair_plain(dst, a, b, n);
}

static void transpose16(float *restrict d, const float *restrict src, int64_t ld, int64_t rows,
                        int64_t n) {
#if defined(__x86_64__)
  if (sk__has_avx512()) {
    transpose16_avx512(d, src, ld, rows, n);
    return;
  }
#endif
  transpose16_plain(d, src, ld, rows, n);
}

/* Rows [k0, k1) of col for output positions [p0, p1) of one sample xs (C, H,
 * W): row k − k0 at col + (k − k0)·ld, position p at column p − p0. */
static void im2col(float *restrict col, int64_t ld, const float *restrict xs, const sk__conv *cv,
                   int64_t k0, int64_t k1, int64_t p0, int64_t p1) {
  const int64_t kk = cv->kh * cv->kw;
  for (int64_t k = k0; k < k1; k++) {
    const int64_t c = k / kk, a = k % kk / cv->kw, b = k % cv->kw, off = b * cv->dw - cv->pw;
    const float *xc = xs + c * cv->h * cv->w;
    float *row = col + (k - k0) * ld; /* position p at row[p - p0] */
    int64_t r_lo, r_hi;
    valid_cols(cv->ow, cv->sw, cv->pw, b * cv->dw, cv->w, &r_lo, &r_hi);
    for (int64_t q = p0 / cv->ow; q * cv->ow < p1; q++) {
      const int64_t base = q * cv->ow - p0, s0 = SK_MAX(-base, 0), s1 = SK_MIN(p1 - p0 - base, cv->ow);
      const int64_t h = q * cv->sh - cv->ph + a * cv->dh;
      if (h < 0 || h >= cv->h) {
        memset(&row[base + s0], 0, (size_t)(s1 - s0) * sizeof *row);
        continue;
      }
      const int64_t v0 = SK_MAX(s0, SK_MIN(r_lo, s1)), v1 = SK_MAX(v0, SK_MIN(r_hi, s1));
      const int64_t src = h * cv->w + off; /* column r at src + r·sw */
      if (v0 > s0) memset(&row[base + s0], 0, (size_t)(v0 - s0) * sizeof *row);
      if (v1 > v0) copy_row(&row[base + v0], &xc[src + v0 * cv->sw], v1 - v0, cv->sw);
      if (s1 > v1) memset(&row[base + v1], 0, (size_t)(s1 - v1) * sizeof *row);
    }
  }
}

/* xs (C, H, W) += rows [k0, k1) of dcol (as im2col lays them out) for
 * output positions [p0, p1): each input element gains its terms in the order
 * of k, then of the position. With the row adds inlined (an AVX-512 clone
 * below): a row is 12-26 floats on the U-Net's planes, so a call per row
 * cost as much as the adds. */
static inline __attribute__((always_inline)) void col2im_with(
    void (*add)(float *restrict, const float *restrict, int64_t, int64_t), float *restrict xs,
    const float *restrict dcol, int64_t ld, const sk__conv *cv, int64_t k0, int64_t k1,
    int64_t p0, int64_t p1) {
  const int64_t kk = cv->kh * cv->kw;
  for (int64_t k = k0; k < k1; k++) {
    const int64_t c = k / kk, a = k % kk / cv->kw, b = k % cv->kw, off = b * cv->dw - cv->pw;
    float *xc = xs + c * cv->h * cv->w;
    const float *row = dcol + (k - k0) * ld; /* position p at row[p - p0] */
    int64_t r_lo, r_hi;
    valid_cols(cv->ow, cv->sw, cv->pw, b * cv->dw, cv->w, &r_lo, &r_hi);
    for (int64_t q = p0 / cv->ow; q * cv->ow < p1; q++) {
      const int64_t h = q * cv->sh - cv->ph + a * cv->dh;
      if (h < 0 || h >= cv->h) continue;
      const int64_t base = q * cv->ow - p0, s0 = SK_MAX(-base, 0), s1 = SK_MIN(p1 - p0 - base, cv->ow);
      const int64_t v0 = SK_MAX(s0, r_lo), v1 = SK_MIN(s1, r_hi), dst = h * cv->w + off;
      if (v1 > v0) add(&xc[dst + v0 * cv->sw], &row[base + v0], v1 - v0, cv->sw);
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void col2im_avx512(float *restrict xs,
                                                             const float *restrict dcol, int64_t ld,
                                                             const sk__conv *cv, int64_t k0,
                                                             int64_t k1, int64_t p0, int64_t p1) {
  col2im_with(add_row_avx512, xs, dcol, ld, cv, k0, k1, p0, p1);
}
#endif

#if defined(__x86_64__)
/* Whether col2im_rows serves a geometry's data pass: blocks of whole
 * samples in one chunk of K, stride 2 across at dilation 1, rows of 4 to 16
 * output and at most 32 input columns. On the U-Net's strided layers, 1
 * thread, GFLOP/s against col2im (through the tap table for the 5 × 5
 * planes): 12 → 26 (tconv2's forward) 124 → 156, 5 → 12 (conv3's input
 * gradient, tconv3's forward) 92 → 118 and 118 → 138; 2 → 5 lost (134 →
 * 123), so rows of 2 or 3 go through the table. */
static int col2im_rows_ok(const sk__conv *cv, const cg *g) {
  return sk__has_avx512() && (g->B > 1 || g->cols == g->P) && g->kc >= g->K && cv->sw == 2 &&
         cv->dw == 1 && cv->ow >= 4 && cv->ow <= 16 && cv->w <= 32 && cv->kw <= 64;
}

/* xs (C, H, W) = a whole sample's dcol (rows as im2col lays them out, ld
 * apart), row by row: input row h of channel c sums, in registers, the
 * terms of every kernel row a whose output row reaches it and every kernel
 * column b (in that order), even and odd columns apart, and is written
 * once. Each element gains its terms in the order of k (col2im's order for
 * a single block). */
__attribute__((target("avx512f"))) static void col2im_rows(float *restrict xs,
                                                           const float *restrict dcol, int64_t ld,
                                                           const sk__conv *cv) {
  const int64_t kk = cv->kh * cv->kw, H = cv->h, W = cv->w, OW = cv->ow;
  const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  /* Column b adds row r of its dcol row to input column 2r − pw + b: to
   * lane m of parity π = (b − pw) mod 2 (column 2m + π) from r = m − sh_b. */
  __mmask16 mask[64];
  int64_t shift[64], par[64];
  for (int64_t b = 0; b < cv->kw && b < 64; b++) {
    const int64_t t = b - cv->pw, pi = ((t % 2) + 2) % 2, sb = (t - pi) / 2;
    par[b] = pi, shift[b] = sb;
    __mmask16 m = 0;
    for (int64_t l = 0; l < 16; l++)
      if (l - sb >= 0 && l - sb < OW && 2 * l + pi < W) m |= (__mmask16)(1u << l);
    mask[b] = m;
  }
  for (int64_t c = 0; c < cv->c; c++)
    for (int64_t h = 0; h < H; h++) {
      __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int64_t a = 0; a < cv->kh; a++) {
        const int64_t u = h + cv->ph - a * cv->dh;
        if (u < 0 || u % cv->sh || u / cv->sh >= cv->oh) continue;
        const float *row = dcol + (c * kk + a * cv->kw) * ld + u / cv->sh * OW;
        for (int64_t b = 0; b < cv->kw; b++)
          acc[par[b]] = _mm512_add_ps(acc[par[b]],
                                      _mm512_maskz_loadu_ps(mask[b], row + b * ld - shift[b]));
      }
      float *xr = xs + (c * H + h) * W;
      _mm512_mask_storeu_ps(xr, sk__first_lanes(W), _mm512_permutex2var_ps(acc[0], lo, acc[1]));
      _mm512_mask_storeu_ps(xr + 16, sk__first_lanes(W - 16), _mm512_permutex2var_ps(acc[0], hi, acc[1]));
    }
}
#endif

static void col2im(float *restrict xs, const float *restrict dcol, int64_t ld, const sk__conv *cv,
                   int64_t k0, int64_t k1, int64_t p0, int64_t p1) {
#if defined(__x86_64__)
  if (sk__has_avx512()) {
    col2im_avx512(xs, dcol, ld, cv, k0, k1, p0, p1);
    return;
  }
#endif
  col2im_with(add_row_plain, xs, dcol, ld, cv, k0, k1, p0, p1);
}

/* The blocks of columns of a geometry: block t covers samples [i0, i0 + nb)
 * of the batch (whole planes when g->B > 1) or positions [p0, p1) of sample
 * i0 (g->B = 1). */
typedef struct blk {
  int64_t i0, p0, p1;
} blk;

/* Blocks whose samples meet [n0, n1), in order: the first and the count. */
static int64_t first_block(const cg *g, int64_t n0) {
  return g->B > 1 ? n0 / g->B : n0 * ((g->P + g->cols - 1) / g->cols);
}
static int64_t blocks_per_sample(const cg *g) { return (g->P + g->cols - 1) / g->cols; }

static blk block_at(const cg *g, int64_t t) {
  if (g->B > 1) return (blk){t * g->B, 0, g->P};
  const int64_t per = blocks_per_sample(g), i = t / per, p0 = t % per * g->cols;
  return (blk){i, p0, SK_MIN(g->P, p0 + g->cols)};
}

int sk__conv2d_gemm_rows(float *y, const float *x, const float *w, const sk__conv *cv, int64_t n0,
                         int64_t n1, float *scratch) {
  if (n0 >= n1) return 1;
  const cg g = cg_of(cv);
  const int64_t O = cv->o, P = g.P, K = g.K, xs = cv->c * cv->h * cv->w, ys = O * P;
  float *col = scratch, *stage = scratch + SK_MIN(g.kc, K) * g.cols;
  taps tab;
  const int64_t kk = cv->kh * cv->kw, plane = cv->h * cv->w;
  if (g.taps) make_taps(&tab, cv);
  const int64_t t1 = g.B > 1 ? (n1 + g.B - 1) / g.B : n1 * blocks_per_sample(&g);
  for (int64_t t = first_block(&g, n0); t < t1; t++) {
    const blk bk = block_at(&g, t);
    const int64_t j0 = SK_MAX(n0, bk.i0) - bk.i0, j1 = SK_MIN(n1, bk.i0 + g.B) - bk.i0;
    const int64_t cols = bk.p1 - bk.p0;
    /* The product's rows are this block's columns: y's own row (ldc = P)
     * for a run of one sample's positions, else the stage (O × B·P). */
    float *out = g.B > 1 ? stage : y + bk.i0 * ys + bk.p0;
    const int64_t ldo = g.B > 1 ? g.cols : P;
    for (int64_t k0 = 0; k0 < K; k0 += g.kc) {
      const int64_t k1 = SK_MIN(K, k0 + g.kc);
      for (int64_t j = j0; j < j1; j++)
        if (g.taps)
          gather_taps(col + j * P, g.cols, x + (bk.i0 + j) * xs, &tab, kk, P, plane, k0 / kk,
                      k1 / kk, bk.p0, cols);
        else
          im2col(col + j * P, g.cols, x + (bk.i0 + j) * xs, cv, k0, k1, bk.p0, bk.p1);
      /* Column-major: out (cols × O) = col (cols × kc) · wᵀ chunk (kc × O). */
      if (!gemm(out, col, w + k0, g.B > 1 ? g.cols : cols, O, k1 - k0, g.cols, K, ldo, k0 > 0, 0))
        return 0;
    }
    if (g.B > 1)
      for (int64_t j = j0; j < j1; j++)
        for (int64_t o = 0; o < O; o++)
          memcpy(y + (bk.i0 + j) * ys + o * P, stage + o * g.cols + j * P, (size_t)P * sizeof *y);
  }
  return 1;
}

/* The data pass as one product and col2im: dcol (cols × K) = dy (cols ×
 * O) · w, each row of dcol added back onto its input plane. */
static int data_col2im(float *x, const float *y, const float *w, const sk__conv *cv, int64_t n0,
                       int64_t n1, float *scratch) {
  const cg g = cg_of(cv);
  const int64_t O = cv->o, P = g.P, K = g.K, xs = cv->c * cv->h * cv->w, ys = O * P;
  float *dcol = scratch, *stage = scratch + SK_MIN(g.kc, K) * g.cols;
  taps tab;
  const int64_t kk = cv->kh * cv->kw, plane = cv->h * cv->w;
  if (g.taps && g.B > 1) make_taps(&tab, cv);
  const int64_t t1 = g.B > 1 ? (n1 + g.B - 1) / g.B : n1 * blocks_per_sample(&g);
#if defined(__x86_64__)
  const int rows = col2im_rows_ok(cv, &g); /* each element written once */
#else
  const int rows = 0;
#endif
  if (!rows)
    for (int64_t i = n0; i < n1; i++) memset(x + i * xs, 0, (size_t)xs * sizeof *x);
  for (int64_t t = first_block(&g, n0); t < t1; t++) {
    const blk bk = block_at(&g, t);
    const int64_t j0 = SK_MAX(n0, bk.i0) - bk.i0, j1 = SK_MIN(n1, bk.i0 + g.B) - bk.i0;
    const int64_t cols = bk.p1 - bk.p0;
    const float *dy = y + bk.i0 * ys + bk.p0;
    int64_t ld = P;
    if (g.B > 1) { /* the block's dy as (O × B·P) */
      for (int64_t j = j0; j < j1; j++)
        for (int64_t o = 0; o < O; o++)
          memcpy(stage + o * g.cols + j * P, y + (bk.i0 + j) * ys + o * P, (size_t)P * sizeof *y);
      dy = stage, ld = g.cols;
    }
    for (int64_t k0 = 0; k0 < K; k0 += g.kc) {
      const int64_t k1 = SK_MIN(K, k0 + g.kc);
      /* Column-major: dcol (cols × kc) = dy (cols × O) · w chunk (O × kc),
       * w (O × K) row-major being that chunk transposed (TRANS_B). */
      if (!gemm(dcol, dy, w + k0, g.B > 1 ? g.cols : cols, k1 - k0, O, ld, K, g.cols, 0, 1))
        return 0;
      for (int64_t j = j0; j < j1; j++)
#if defined(__x86_64__)
        if (rows)
          col2im_rows(x + (bk.i0 + j) * xs, dcol + j * P, g.cols, cv);
        else
#endif
        if (g.taps && g.B > 1)
          scatter_taps(x + (bk.i0 + j) * xs, dcol + j * P, g.cols, tab.tab, kk, P, plane, k0 / kk,
                       k1 / kk);
        else
          col2im(x + (bk.i0 + j) * xs, dcol + j * P, g.cols, cv, k0, k1, bk.p0, bk.p1);
    }
  }
  return 1;
}

/* The data pass by classes of input positions (sub-pixel). At stride
 * (sh, sw) and dilation 1 the input rows h ≡ ρ (mod sh) gain terms only
 * from the kernel rows a = α + sh·m, α = (ρ + ph) mod sh, m < M, each from
 * dy row (h − ρ)/sh + δ − m, δ = ⌊(ρ + ph)/sh⌋; the same across. So a
 * class is a stride-1 correlation of dy with its taps, and a tap's terms,
 * over the class's plane, are dy shifted by (δ − m) rows and columns times
 * that tap's O × C slice of w: with dy in planes padded by zeros to hp ×
 * wp, the shift is an offset into them, and position (i, j) of the class
 * is row i·wp + j of a product whose other rows (j ≥ the class's width,
 * and the padding between samples) are computed and dropped. Per block of
 * B whole samples and class,
 *
 *   stage (rows × C) = Σ over the class's taps, in order,
 *                      dy padded, from the tap's offset (rows × O) · w tap (O × C)
 *
 * and each element of the class is then written once into dx at stride
 * (sh, sw). A class of no taps (a kernel shorter than the stride) is
 * zeros; no element of dx is added to. Blocks start at multiples of B
 * whatever samples a call covers, and each class makes the same products
 * in every block, so any split gives the same bits. */
typedef struct dcls {
  int64_t rh, rw; /* the class: input positions ≡ (rh, rw) */
  int64_t ah, aw; /* its first kernel row and column */
  int64_t mh, mw; /* its taps down and across (0: none) */
  int64_t yh, yw; /* δ: dy's row for input row rh + sh·i and tap m is i + yh − m */
  int64_t nh, nw; /* its plane (0: the input is smaller than the stride) */
} dcls;

static dcls class_of(const sk__conv *cv, int64_t rh, int64_t rw) {
  dcls k = {.rh = rh, .rw = rw};
  k.ah = (rh + cv->ph) % cv->sh, k.aw = (rw + cv->pw) % cv->sw;
  k.mh = k.ah < cv->kh ? (cv->kh - 1 - k.ah) / cv->sh + 1 : 0;
  k.mw = k.aw < cv->kw ? (cv->kw - 1 - k.aw) / cv->sw + 1 : 0;
  k.yh = (rh + cv->ph) / cv->sh, k.yw = (rw + cv->pw) / cv->sw;
  k.nh = rh < cv->h ? (cv->h - rh + cv->sh - 1) / cv->sh : 0;
  k.nw = rw < cv->w ? (cv->w - rw + cv->sw - 1) / cv->sw : 0;
  return k;
}

static int class_has_taps(const dcls *k) {
  return k->nh > 0 && k->nw > 0 && k->mh > 0 && k->mw > 0;
}

/* The layout of a data pass by classes: dy's planes padded by pt rows
 * above and pl columns left to hp × wp (enough for every class's shifts),
 * B samples per block. */
typedef struct dpad {
  int64_t pt, pl, hp, wp, B;
} dpad;

static dpad dpad_of(const sk__conv *cv) {
  int64_t pt = 0, pb = 0, pl = 0, pr = 0;
  for (int64_t rh = 0; rh < cv->sh; rh++)
    for (int64_t rw = 0; rw < cv->sw; rw++) {
      const dcls k = class_of(cv, rh, rw);
      if (!class_has_taps(&k)) continue;
      /* dy rows yh − (mh − 1) … nh − 1 + yh, and the same across */
      pt = SK_MAX(pt, k.mh - 1 - k.yh), pb = SK_MAX(pb, k.nh - 1 + k.yh - (cv->oh - 1));
      pl = SK_MAX(pl, k.mw - 1 - k.yw), pr = SK_MAX(pr, k.nw - 1 + k.yw - (cv->ow - 1));
    }
  dpad d = {pt, pl, pt + cv->oh + pb, pl + cv->ow + pr, 1};
  while (d.B < CG_MAX_B && d.B < cv->n && d.B * d.hp * d.wp < CG_MIN_COLS) d.B *= 2;
  return d;
}

/* Which data pass serves a geometry: -1 the rule below, 0 col2im, 1 the
 * classes wherever they apply (sk__conv_data_classes, for the tests). */
static atomic_int data_mode = -1;

void sk__conv_data_classes(int mode) { atomic_store(&data_mode, mode); }

/* Whether the data pass goes by classes: where they apply (dilation 1, a
 * block's padded dy and stages within CG_COL_FLOATS), for a stride over 1
 * and at most CG_CLASSES_MAX_O output channels. Both ways do the same
 * products' work, the classes some more (the terms of dy's zero border,
 * the columns dropped: 10-25 % on the U-Net's layers), but col2im's adds
 * cost per input element what its product costs per output channel: with
 * few output channels the adds weigh the most. At stride 1 (one class of
 * every tap) the U-Net's one-channel layers would make products one
 * column wide (conv1's and tconv1's 100 GFLOP/s to 30). */
static int by_classes(const sk__conv *cv) {
  const int mode = atomic_load(&data_mode);
  if (mode == 0 || cv->dh != 1 || cv->dw != 1) return 0;
#if defined(__x86_64__)
  /* col2im row by row, where it serves, beats the classes (conv2's data
   * pass: 120 against 91 GFLOP/s, 1 thread); on wider planes, which it does
   * not serve, the classes beat col2im (32 ← 64 channels at stride 2, 64 ×
   * 64 and 40 × 40 inputs: 142 and 117 GFLOP/s against 125 and 104,
   * kernels called directly, median of 3). */
  const cg g = cg_of(cv);
  if (mode != 1 && col2im_rows_ok(cv, &g)) return 0;
#endif
  const dpad d = dpad_of(cv);
  if ((cv->o + 2 * cv->c) * d.B * d.hp * d.wp > CG_COL_FLOATS) return 0;
  return mode == 1 || ((cv->sh > 1 || cv->sw > 1) && cv->o <= CG_CLASSES_MAX_O);
}

/* w by tap, each (O × C): wt[t, o, c] = w[o, c, t]; dy padded, O × B planes;
 * the stage, C × B planes, two at stride 2 across (a row's two classes). */
static int64_t classes_scratch(const sk__conv *cv) {
  const dpad d = dpad_of(cv);
  const int64_t stages = cv->sw == 2 ? 2 : 1;
  return cv->kh * cv->kw * cv->c * cv->o + (cv->o + stages * cv->c) * d.B * d.hp * d.wp;
}

/* Zeros in rows [0, m0) and [m1, rows) of each of the n columns of s (ld). */
static void zero_rows(float *s, int64_t ld, int64_t n, int64_t m0, int64_t m1, int64_t rows) {
  for (int64_t c = 0; c < n; c++) {
    memset(s + c * ld, 0, (size_t)m0 * sizeof *s);
    if (rows > m1) memset(s + c * ld + m1, 0, (size_t)(rows - m1) * sizeof *s);
  }
}

/* A class's products for a block: stage (rows × C, column-major, ld
 * B·hp·wp) = Σ over its taps of dy padded, shifted (rows × O) · w tap. */
static int class_products(float *stage, const float *pad, const float *wt, const sk__conv *cv,
                          const dpad *d, const dcls *k) {
  const int64_t C = cv->c, O = cv->o, sp = d->hp * d->wp, ld = d->B * sp;
  /* Rows up to the last sample's last position: every row reads within
   * its own sample's padded plane. */
  const int64_t rows = (d->B - 1) * sp + (k->nh - 1) * d->wp + k->nw;
  /* One sample a block: each tap's product only over the class's rows
   * whose dy row lies inside dy (the others would add zeros); the first
   * such product sets its rows, and the rows it leaves out are zeroed for
   * the others to add to. */
  const int trim = d->B == 1;
  int first = 1;
  for (int64_t a = 0; a < k->mh; a++)
    for (int64_t b = 0; b < k->mw; b++) {
      const int64_t tap = (k->ah + cv->sh * a) * cv->kw + k->aw + cv->sw * b;
      const int64_t off = (k->yh - a + d->pt) * d->wp + k->yw - b + d->pl;
      int64_t m0 = 0, m1 = rows;
      if (trim) { /* dy row i + yh − a within [0, oh) */
        const int64_t q0 = SK_MAX(0, a - k->yh), q1 = SK_MIN(k->nh, cv->oh + a - k->yh);
        if (q1 <= q0) continue;
        m0 = q0 * d->wp, m1 = (q1 - 1) * d->wp + k->nw;
        if (first) zero_rows(stage, ld, C, m0, m1, rows);
      }
      /* Column-major: stage (rows × C) (+)= dy shifted (rows × O) · w
       * tap (O × C), the tap's (C × O) transposed (TRANS_B). */
      if (!gemm(stage + m0, pad + off + m0, wt + tap * O * C, m1 - m0, C, O, ld, C, ld, !first, 1))
        return 0;
      first = 0;
    }
  if (first) zero_rows(stage, ld, C, 0, 0, rows);
  return 1;
}

static int data_classes(float *x, const float *y, const float *w, const sk__conv *cv, int64_t n0,
                        int64_t n1, float *scratch) {
  const dpad d = dpad_of(cv);
  const int64_t C = cv->c, O = cv->o, kk = cv->kh * cv->kw, plane = cv->h * cv->w;
  const int64_t xs = C * plane, P = cv->oh * cv->ow, ys = O * P, sp = d.hp * d.wp, ld = d.B * sp;
  float *wt = scratch, *pad = wt + kk * C * O, *stage = pad + O * ld;
  for (int64_t o = 0; o < O; o++)
    for (int64_t t = 0; t < kk; t++)
      for (int64_t c = 0; c < C; c++) wt[(t * O + o) * C + c] = w[(o * C + c) * kk + t];
  /* The padding stays zero: blocks write only the planes' insides. */
  memset(pad, 0, (size_t)(O * ld) * sizeof *pad);
  for (int64_t rh = 0; rh < cv->sh; rh++)
    for (int64_t rw = 0; rw < cv->sw; rw++) {
      const dcls k = class_of(cv, rh, rw);
      if (class_has_taps(&k)) continue;
      for (int64_t i = n0; i < n1; i++)
        for (int64_t c = 0; c < C; c++)
          for (int64_t q = 0; q < k.nh; q++)
            for (int64_t r = 0; r < k.nw; r++)
              x[i * xs + c * plane + (rh + q * cv->sh) * cv->w + rw + r * cv->sw] = 0.0f;
    }
  for (int64_t t = n0 / d.B; t * d.B < n1; t++) {
    const int64_t i0 = t * d.B, j0 = SK_MAX(n0, i0) - i0, j1 = SK_MIN(n1, i0 + d.B) - i0;
    for (int64_t j = j0; j < j1; j++)
      for (int64_t o = 0; o < O; o++) {
        const float *src = y + (i0 + j) * ys + o * P;
        float *dst = pad + o * ld + j * sp + d.pt * d.wp + d.pl;
        for (int64_t q = 0; q < cv->oh; q++)
          copy_row(dst + q * d.wp, src + q * cv->ow, cv->ow, 1);
      }
    for (int64_t rh = 0; rh < cv->sh; rh++) {
      /* At stride 2 across, a row's two classes are put together,
       * interleaved, each from its own stage. */
      const dcls k0 = class_of(cv, rh, 0), k1 = class_of(cv, rh, cv->sw > 1);
      const int pair = cv->sw == 2 && class_has_taps(&k0) && class_has_taps(&k1);
      for (int64_t rw = 0; rw < cv->sw; rw++) {
        const dcls k = class_of(cv, rh, rw);
        if (!class_has_taps(&k)) continue;
        float *st = stage + (pair ? rw * C * ld : 0);
        if (!class_products(st, pad, wt, cv, &d, &k)) return 0;
        if (!pair)
          for (int64_t j = j0; j < j1; j++)
            for (int64_t c = 0; c < C; c++)
              for (int64_t q = 0; q < k.nh; q++)
                put_row(x + (i0 + j) * xs + c * plane + (rh + q * cv->sh) * cv->w + rw,
                        st + c * ld + j * sp + q * d.wp, k.nw, cv->sw);
      }
      if (pair)
        for (int64_t j = j0; j < j1; j++)
          for (int64_t c = 0; c < C; c++)
            for (int64_t q = 0; q < k0.nh; q++) {
              const int64_t at = c * ld + j * sp + q * d.wp;
              put_pair(x + (i0 + j) * xs + c * plane + (rh + q * cv->sh) * cv->w, stage + at,
                       stage + C * ld + at, cv->w);
            }
    }
  }
  return 1;
}

int sk__conv2d_data_gemm_rows(float *x, const float *y, const float *w, const sk__conv *cv,
                              int64_t n0, int64_t n1, float *scratch) {
  if (n0 >= n1) return 1;
  return by_classes(cv) ? data_classes(x, y, w, cv, n0, n1, scratch)
                        : data_col2im(x, y, w, cv, n0, n1, scratch);
}

/* The weight gradient when K is at most CG_CB (a single input channel) and
 * blocks are runs of one sample's positions: dy's rows are long and K short,
 * so col is transposed instead of dy (9 rows against 16 per block of
 * channels) and the products make dw's rows directly: per block of
 * channels, dw block (K × mb, column-major) += colᵀ (K × cols) · dy block
 * (cols × mb), summed over the blocks in order. */
static int weight_thin(float *w, const float *x, const float *y, const sk__conv *cv, const cg *g,
                       int64_t o0, int64_t o1, float *scratch) {
  const int64_t O = cv->o, P = g->P, K = g->K, xs = cv->c * cv->h * cv->w, ys = O * P;
  const int64_t b0 = o0 / CG_CB, b1 = (o1 + CG_CB - 1) / CG_CB, nblk = b1 - b0;
  float *acc = scratch, *col = acc + nblk * CG_CB * K, *colt = col + K * g->cols;
  taps tab;
  const int64_t kk = cv->kh * cv->kw;
  if (g->taps) make_taps(&tab, cv);
  const int64_t nt = cv->n * blocks_per_sample(g);
  for (int64_t t = 0; t < nt; t++) {
    const blk bk = block_at(g, t);
    const int64_t cols = bk.p1 - bk.p0;
    if (g->taps)
      gather_taps(col, g->cols, x + bk.i0 * xs, &tab, kk, P, cv->h * cv->w, 0, cv->c, bk.p0, cols);
    else
      im2col(col, g->cols, x + bk.i0 * xs, cv, 0, K, bk.p0, bk.p1);
    transpose16(colt, col, g->cols, K, cols);
    for (int64_t q = 0; q < nblk; q++) {
      const int64_t c0 = (b0 + q) * CG_CB, mb = SK_MIN(CG_CB, O - c0);
      if (!gemm(acc + q * CG_CB * K, colt, y + bk.i0 * ys + c0 * P + bk.p0, K, mb, cols, CG_CB,
                P, K, t > 0, 0))
        return 0;
    }
  }
  for (int64_t o = o0; o < o1; o++)
    memcpy(w + o * K, acc + (o / CG_CB - b0) * CG_CB * K + o % CG_CB * K, (size_t)K * sizeof *w);
  return 1;
}

int sk__conv2d_weight_gemm_rows(float *w, const float *x, const float *y, const sk__conv *cv,
                                int64_t o0, int64_t o1, float *scratch) {
  if (o0 >= o1) return 1;
  const cg g = cg_of(cv);
  if (g.thin) return weight_thin(w, x, y, cv, &g, o0, o1, scratch);
  const int64_t O = cv->o, P = g.P, K = g.K, xs = cv->c * cv->h * cv->w, ys = O * P;
  const int64_t b0 = o0 / CG_CB, b1 = (o1 + CG_CB - 1) / CG_CB, nblk = b1 - b0;
  /* Per channel block: its sums dwᵀ (K × CG_CB, column-major CG_CB × K)
   * and its dy block transposed (cols × CG_CB); then a chunk of col. */
  float *acc = scratch, *dyt = acc + nblk * CG_CB * K, *col = dyt + nblk * CG_CB * g.cols;
  taps tab;
  const int64_t kk = cv->kh * cv->kw, plane = cv->h * cv->w;
  if (g.taps) make_taps(&tab, cv);
  const int64_t nt = g.B > 1 ? (cv->n + g.B - 1) / g.B : cv->n * blocks_per_sample(&g);
  for (int64_t t = 0; t < nt; t++) {
    const blk bk = block_at(&g, t);
    const int64_t nb = SK_MIN(g.B, cv->n - bk.i0), cols = bk.p1 - bk.p0;
    /* A last block short of samples: zeros in their columns (stale floats
     * there could be infinite, and 0·∞ is not 0). */
    const int64_t pad = g.B > 1 && nb < g.B ? (g.B - nb) * P : 0;
    for (int64_t q = 0; q < nblk; q++) {
      const int64_t c0 = (b0 + q) * CG_CB, mb = SK_MIN(CG_CB, O - c0);
      float *d = dyt + q * CG_CB * g.cols;
      for (int64_t j = 0; j < nb; j++)
        transpose16(d + j * P * CG_CB, y + (bk.i0 + j) * ys + c0 * P + bk.p0, P, mb, cols);
      if (pad) memset(d + nb * P * CG_CB, 0, (size_t)(pad * CG_CB) * sizeof *d);
    }
    for (int64_t k0 = 0; k0 < K; k0 += g.kc) {
      const int64_t k1 = SK_MIN(K, k0 + g.kc);
      for (int64_t j = 0; j < nb; j++)
        if (g.taps)
          gather_taps(col + j * P, g.cols, x + (bk.i0 + j) * xs, &tab, kk, P, plane, k0 / kk,
                      k1 / kk, bk.p0, cols);
        else
          im2col(col + j * P, g.cols, x + (bk.i0 + j) * xs, cv, k0, k1, bk.p0, bk.p1);
      if (pad)
        for (int64_t k = 0; k < k1 - k0; k++)
          memset(col + k * g.cols + nb * P, 0, (size_t)pad * sizeof *col);
      for (int64_t q = 0; q < nblk; q++) {
        const int64_t mb = SK_MIN(CG_CB, O - (b0 + q) * CG_CB);
        /* Column-major: dwᵀ block (mb × kc) += dyᵀ (mb × cols) · col chunk
         * (cols × kc), col's rows being its columns. */
        if (!gemm(acc + q * CG_CB * K + k0 * CG_CB, dyt + q * CG_CB * g.cols, col, mb, k1 - k0,
                  g.B > 1 ? g.cols : cols, CG_CB, g.cols, CG_CB, t > 0, 0))
          return 0;
      }
    }
  }
  for (int64_t o = o0; o < o1; o++) {
    const float *a = acc + (o / CG_CB - b0) * CG_CB * K + o % CG_CB;
    for (int64_t k = 0; k < K; k++) w[o * K + k] = a[k * CG_CB];
  }
  return 1;
}
