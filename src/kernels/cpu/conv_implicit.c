/* The forward and weight passes of a 2-D convolution as products that read
 * the input where it lies (implicit GEMM), with no im2col.
 *
 * Each input plane of a sample is cut into its sh·sw phase planes (rows ≡ u
 * mod sh, columns ≡ v mod sw of the zero-padded plane), SH × SW each, in one
 * pass into scratch; a stride-1 convolution without padding reads x itself
 * (one phase, SH × SW = H × W). Output position (q, r) then reads, for
 * kernel tap t = (a, b), element (q + a·dh div sh, r + b·dw div sw) of phase
 * (a·dh mod sh, b·dw mod sw): with the output laid out SW positions a row
 * (the last SW − OW of each row are junk: computed, never stored), the
 * windows of channel c for a run of output rows are one phase plane shifted
 * by a fixed offset per tap, its channels S = SH·SW floats apart. So
 *
 *   forward   out (m × O) = Σ_t A_t (m × C) · W_t (C × O), column-major,
 *             A_t the phase planes shifted by tap t's offset (lda = S, no
 *             copy), W_t tap t's weights packed once per call; one libxsmm
 *             batch-reduce call per block (the sums stay in registers over
 *             all taps and channels), staged, the junk dropped on the copy
 *             into y;
 *   weight    per block of IM_CB output channels and tap t:
 *             dwᵀ_t (IM_CB × C) += dyᵀ (IM_CB × m) · A_t (m × C), dy
 *             transposed into dyᵀ with zeros in the junk columns (they add
 *             nothing), summed over the batch's samples in order.
 *
 * The junk costs (SW − OW)/OW more multiply-adds: 1/12 for the U-Net's 12 ×
 * 12 outputs from 26 × 26, 1/5 for 5 × 5 from 12 × 12, 1/2 for 2 × 2 from 5
 * × 5. Which layers take this path (the junk and the products' shapes
 * decide) is dispatch.c's choice (conv_implicit), measured.
 *
 * Every block of a geometry is the same libxsmm call whatever range a call
 * covers (a forward block is a fixed run of one sample's output rows; the
 * weight's blocks are fixed channel blocks summed over every sample), so 1
 * and N threads give the same bits. Scratch comes from the caller:
 * sk__conv_implicit_scratch. */
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/cpu/transpose16.h"
#endif

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/xsmm.h"

/* Output channels per weight-gradient block: the executor's row block. */
#define IM_CB SK_SPLIT_ROWS
/* Kernel taps served (the offsets live on the stack). */
#define IM_MAX_TAPS 64
/* Product rows (output positions, junk included) per forward block: a
 * plane with more rows than fit is cut into runs of whole output rows. */
#define IM_MAX_COLS 1024

typedef struct im {
  int64_t SH, SW, S; /* a phase plane's rows, columns and floats */
  int64_t phases;    /* phase planes per channel; 0: x read in place */
  int64_t kk;
  int64_t rows; /* output rows per forward block */
  int64_t m;    /* a full forward block's product rows, (rows − 1)·SW + OW */
  int64_t mw;   /* a whole sample's, (OH − 1)·SW + OW */
} im;

static im im_of(const sk__conv *cv) {
  im g;
  g.kk = cv->kh * cv->kw;
  if (cv->sh == 1 && cv->sw == 1 && cv->ph == 0 && cv->pw == 0) {
    g.SH = cv->h, g.SW = cv->w, g.phases = 0;
  } else { /* the rows and columns a valid output reads, per phase */
    g.SH = cv->oh + (cv->kh - 1) * cv->dh / cv->sh;
    g.SW = cv->ow + (cv->kw - 1) * cv->dw / cv->sw;
    g.phases = cv->sh * cv->sw;
  }
  g.S = g.SH * g.SW;
  g.mw = (cv->oh - 1) * g.SW + cv->ow;
  g.rows = SK_MAX(1, SK_MIN(cv->oh, IM_MAX_COLS / g.SW));
  g.m = (g.rows - 1) * g.SW + cv->ow;
  return g;
}

int sk__conv_implicit_ok(const sk__conv *cv) {
  return sk__conv_gemm_ok(cv) && cv->kh * cv->kw <= IM_MAX_TAPS;
}

void sk__conv_implicit_shape(const sk__conv *cv, int64_t *sw, int64_t *m) {
  const im g = im_of(cv);
  *sw = g.SW;
  *m = g.mw;
}

int64_t sk__conv_implicit_scratch(const sk__conv *cv, int kind, int64_t rows, int aligned) {
  const im g = im_of(cv);
  const int64_t sub = g.phases * cv->c * g.S;
  if (kind == 0) /* the stage, the packed weight, one sample's phase planes */
    return g.m * cv->o + g.kk * cv->c * cv->o + sub;
  /* Per channel block its sums (taps × C × IM_CB) and dyᵀ; the phase planes. */
  const int64_t blocks =
      rows <= 0 ? 1 : aligned ? (rows + IM_CB - 1) / IM_CB : (rows - 1 + IM_CB - 1) / IM_CB + 1;
  return blocks * IM_CB * (g.kk * cv->c + g.mw) + sub;
}

/* Byte offsets of tap t's windows from a block's first position: phase
 * plane and shift. */
static void tap_offsets(unsigned long long *off, const sk__conv *cv, const im *g) {
  for (int64_t a = 0; a < cv->kh; a++)
    for (int64_t b = 0; b < cv->kw; b++) {
      const int64_t ra = a * cv->dh, rb = b * cv->dw;
      int64_t f;
      if (g->phases)
        f = ((ra % cv->sh) * cv->sw + rb % cv->sw) * cv->c * g->S + ra / cv->sh * g->SW +
            rb / cv->sw;
      else
        f = ra * g->SW + rb;
      off[a * cv->kw + b] = (unsigned long long)f * sizeof(float);
    }
}

/* d[k] = src[v + s·k − p] for k < n, zero where that column is outside
 * [0, w). */
static void phase_row(float *restrict d, const float *restrict src, int64_t n, int64_t v,
                      int64_t s, int64_t p, int64_t w) {
  const int64_t lo = p - v, hi = w - 1 + p - v; /* s·k in [lo, hi] */
  const int64_t k0 = SK_MIN(n, lo <= 0 ? 0 : (lo + s - 1) / s);
  const int64_t k1 = SK_MAX(k0, hi < 0 ? 0 : SK_MIN(n, hi / s + 1));
  for (int64_t k = 0; k < k0; k++) d[k] = 0.0f;
  for (int64_t k = k0; k < k1; k++) d[k] = src[s * k - lo];
  for (int64_t k = k1; k < n; k++) d[k] = 0.0f;
}

#if defined(__x86_64__)
/* Both phase rows of a stride-2 row without padding: d0[k] = src[2k], d1[k]
 * = src[2k + 1] for k < n, zero past the row's w floats. The loads are
 * whole vectors, reading past the row where `room` (the floats readable
 * from src on) allows: masked loads ran this 2× slower. */
__attribute__((target("avx512f"))) static void deinterleave_avx512(float *restrict d0,
                                                                   float *restrict d1,
                                                                   const float *restrict src,
                                                                   int64_t n, int64_t w,
                                                                   int64_t room) {
  const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (int64_t k = 0; k < n; k += 16) {
    const int64_t at = 2 * k;
    const __m512 lo = at + 16 <= room ? _mm512_loadu_ps(src + at)
                                      : _mm512_maskz_loadu_ps(sk__first_lanes(w - at), src + at);
    const __m512 hi = at + 32 <= room ? _mm512_loadu_ps(src + at + 16)
                                      : _mm512_maskz_loadu_ps(sk__first_lanes(w - at - 16), src + at + 16);
    const __mmask16 m = sk__first_lanes(n - k);
    _mm512_mask_storeu_ps(d0 + k, m,
                          _mm512_maskz_permutex2var_ps(sk__first_lanes((w + 1) / 2 - k), lo, ev, hi));
    _mm512_mask_storeu_ps(d1 + k, m, _mm512_maskz_permutex2var_ps(sk__first_lanes(w / 2 - k), lo, od, hi));
  }
}
#endif

/* One sample's phase planes: sub[((u·sw + v)·C + c)·S + i·SW + k] =
 * x[c, u + sh·i − ph, v + sw·k − pw], zero outside x; x read in order (the
 * phase rows of each input row in turn: x comes from memory, and reading
 * it by phase, every other row, was measured 2× slower). */
static void split_sample(float *restrict sub, const float *restrict xs, int64_t room,
                         const sk__conv *cv, const im *g, int avx512) {
  const int64_t C = cv->c, H = cv->h, W = cv->w, sh = cv->sh, sw = cv->sw;
  const int pairs = avx512 && sw == 2 && cv->pw == 0;
  for (int64_t c = 0; c < C; c++)
    for (int64_t i = 0; i < g->SH; i++)
      for (int64_t u = 0; u < sh; u++) {
        const int64_t h = u + sh * i - cv->ph, at = c * g->S + i * g->SW;
#if defined(__x86_64__)
        if (pairs && h >= 0 && h < H) {
          const int64_t row = (c * H + h) * W;
          deinterleave_avx512(sub + (u * sw * C) * g->S + at, sub + ((u * sw + 1) * C) * g->S + at,
                              xs + row, g->SW, W, room - row);
          continue;
        }
#endif
        for (int64_t v = 0; v < sw; v++) {
          float *d = sub + ((u * sw + v) * C) * g->S + at;
          if (h < 0 || h >= H)
            memset(d, 0, (size_t)g->SW * sizeof *d);
          else
            phase_row(d, xs + (c * H + h) * W, g->SW, v, sw, cv->pw, W);
        }
      }
}

int sk__conv2d_implicit_rows(float *y, const float *x, const float *w, const sk__conv *cv,
                             int64_t n0, int64_t n1, float *scratch) {
  if (n0 >= n1) return 1;
  const im g = im_of(cv);
  const int64_t C = cv->c, O = cv->o, kk = g.kk, P = cv->oh * cv->ow, xs = C * cv->h * cv->w;
  float *stage = scratch, *wp = stage + g.m * O, *sub = wp + kk * C * O;
  /* W_t (C × O, column-major): wp[t·C·O + o·C + c] = w[o, c, t]. */
  for (int64_t o = 0; o < O; o++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t t = 0; t < kk; t++) wp[(t * O + o) * C + c] = w[(o * C + c) * kk + t];
  unsigned long long aoff[IM_MAX_TAPS], boff[IM_MAX_TAPS];
  const unsigned long long count = (unsigned long long)kk;
  tap_offsets(aoff, cv, &g);
  for (int64_t t = 0; t < kk; t++) boff[t] = (unsigned long long)(t * C * O) * sizeof(float);
  /* Full blocks, and the last (shorter) one of a plane cut into runs. */
  const int64_t last_rows = cv->oh - (cv->oh - 1) / g.rows * g.rows;
  const libxsmm_smmfunction_reducebatch_offs full =
      sk__xsmm_smm_offs((libxsmm_blasint)g.m, (libxsmm_blasint)O, (libxsmm_blasint)C,
                        (libxsmm_blasint)g.S, (libxsmm_blasint)C, (libxsmm_blasint)g.m, 0);
  const libxsmm_smmfunction_reducebatch_offs last =
      last_rows == g.rows ? full
                          : sk__xsmm_smm_offs((libxsmm_blasint)((last_rows - 1) * g.SW + cv->ow),
                                              (libxsmm_blasint)O, (libxsmm_blasint)C,
                                              (libxsmm_blasint)g.S, (libxsmm_blasint)C,
                                              (libxsmm_blasint)g.m, 0);
  if (!full || !last) return 0;
  const int avx512 = sk__has_avx512();
  for (int64_t j = n0; j < n1; j++) {
    const float *plane = x + j * xs;
    if (g.phases) {
      split_sample(sub, plane, (cv->n - j) * xs, cv, &g, avx512);
      plane = sub;
    }
    for (int64_t q0 = 0; q0 < cv->oh; q0 += g.rows) {
      const int64_t R = SK_MIN(g.rows, cv->oh - q0);
      (R == g.rows ? full : last)(plane + q0 * g.SW, wp, stage, &count, aoff, boff);
      float *yj = y + j * O * P + q0 * cv->ow;
      for (int64_t o = 0; o < O; o++)
        for (int64_t q = 0; q < R; q++)
          memcpy(yj + o * P + q * cv->ow, stage + o * g.m + q * g.SW, (size_t)cv->ow * sizeof *y);
    }
  }
  return 1;
}

/* dyT[map(p)·IM_CB + o] = src[o·P + p] for o < rows (zeros for rows up to
 * IM_CB), p in [p0, P), map(p) = (p div ow)·sw + p mod ow: a block of dy
 * transposed onto the junk-padded positions. */
static void transpose_block_plain(float *restrict dyt, const float *restrict src, int64_t P,
                                  int64_t p0, int64_t rows, int64_t ow, int64_t sw) {
  for (int64_t p = p0; p < P; p++) {
    float *d = dyt + (p / ow * sw + p % ow) * IM_CB;
    for (int64_t o = 0; o < IM_CB; o++) d[o] = o < rows ? src[o * P + p] : 0.0f;
  }
}

#if defined(__x86_64__)
/* The same, whole runs of 16 positions in registers (plain loads: masked
 * ones measured slow on this path), the rest as above; returns where the
 * rest starts. */
__attribute__((target("avx512f"))) static int64_t transpose_block_avx512(
    float *restrict dyt, const float *restrict src, int64_t P, int64_t rows, int64_t ow,
    int64_t sw) {
  int64_t p0 = 0;
  for (; p0 + 16 <= P; p0 += 16) {
    __m512 r[16], u[16];
    for (int a = 0; a < 16; a++)
      r[a] = a < rows ? _mm512_loadu_ps(src + a * P + p0) : _mm512_setzero_ps();
    sk__transpose16_regs(r, u);
    for (int b = 0; b < 16; b++) {
      const int64_t p = p0 + b;
      _mm512_storeu_ps(dyt + (p / ow * sw + p % ow) * IM_CB, u[b]);
    }
  }
  return p0;
}
#endif

int sk__conv2d_weight_implicit_rows(float *w, const float *x, const float *y, const sk__conv *cv,
                                    int64_t o0, int64_t o1, float *scratch) {
  if (o0 >= o1) return 1;
  const im g = im_of(cv);
  const int64_t C = cv->c, O = cv->o, kk = g.kk, P = cv->oh * cv->ow, xs = C * cv->h * cv->w;
  const int64_t b0 = o0 / IM_CB, nblk = (o1 + IM_CB - 1) / IM_CB - b0;
  /* Per channel block: its sums, dwᵀ_t (IM_CB × C, column-major) per tap,
   * and its dyᵀ (IM_CB × mw); then one sample's phase planes. */
  float *acc = scratch, *dyt = acc + nblk * kk * C * IM_CB, *sub = dyt + nblk * IM_CB * g.mw;
  unsigned long long off[IM_MAX_TAPS];
  tap_offsets(off, cv, &g);
  const libxsmm_smmfunction f =
      sk__xsmm_smm(IM_CB, (libxsmm_blasint)C, (libxsmm_blasint)g.mw, IM_CB, (libxsmm_blasint)g.S,
                   IM_CB, 1, LIBXSMM_GEMM_FLAG_NONE);
  if (!f) return 0;
  memset(acc, 0, (size_t)(nblk * kk * C * IM_CB) * sizeof *acc);
  /* The junk columns of every dyᵀ: zero once, never written after. */
  for (int64_t q = 0; q < nblk; q++)
    for (int64_t r = 0; r + 1 < cv->oh; r++)
      memset(dyt + q * IM_CB * g.mw + (r * g.SW + cv->ow) * IM_CB, 0,
             (size_t)((g.SW - cv->ow) * IM_CB) * sizeof *dyt);
  const int avx512 = sk__has_avx512();
  for (int64_t j = 0; j < cv->n; j++) {
    const float *plane = x + j * xs;
    if (g.phases) {
      split_sample(sub, plane, (cv->n - j) * xs, cv, &g, avx512);
      plane = sub;
    }
    for (int64_t q = 0; q < nblk; q++) {
      const int64_t c0 = (b0 + q) * IM_CB, rows = SK_MIN(IM_CB, O - c0);
      float *d = dyt + q * IM_CB * g.mw;
      const float *src = y + (j * O + c0) * P;
      int64_t p0 = 0;
#if defined(__x86_64__)
      if (avx512) p0 = transpose_block_avx512(d, src, P, rows, cv->ow, g.SW);
#endif
      transpose_block_plain(d, src, P, p0, rows, cv->ow, g.SW);
      for (int64_t t = 0; t < kk; t++)
        f(d, (const float *)((const char *)plane + off[t]), acc + (q * kk + t) * C * IM_CB);
    }
  }
  for (int64_t o = o0; o < o1; o++) {
    const float *a = acc + (o / IM_CB - b0) * kk * C * IM_CB + o % IM_CB;
    for (int64_t c = 0; c < C; c++)
      for (int64_t t = 0; t < kk; t++) w[(o * C + c) * kk + t] = a[(t * C + c) * IM_CB];
  }
  return 1;
}
