/* 2-D convolutions (NCHW): the forward kernel, its transpose (the gradient
 * with respect to the input) and the gradient with respect to the weight,
 * as direct loops with no scratch beyond the stack, and their naive
 * references.
 *
 * Each fast kernel builds one row of the operand it reads (the columns an
 * output row needs at one kernel offset, zero where they fall in the
 * padding) and adds it, times one weight each, to a block of CV_OB output
 * channels' rows kept on the stack: the gathered row is reused CV_OB times
 * and every inner loop is a contiguous multiply-add the compiler
 * vectorises. Every output element is a sum in a fixed order (forward and
 * transpose: input channel, kernel row, kernel column; weight: 16
 * interleaved partial sums over the batch, rows and columns, added pairwise)
 * that does not depend on the samples or channels a call covers, so a
 * thread split leaves the bits unchanged. */
#include <string.h>

#include "kernels/cpu/kernels.h"

/* Output channels that share one gathered row. */
#define CV_OB 8
/* Output columns per pass (a multiple of 16, for the weight's lanes). */
#define CV_CW 256

/* ⌈a / b⌉ for b > 0 and any a. */
static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

/* xs[j] = row[(r0 + j)·s + off] for j in [0, cw), zero where that index
 * falls outside [0, w): the input columns output columns r0.. read at one
 * kernel offset (off = kernel column · dilation − padding). */
static void gather_fwd(float *restrict xs, const float *restrict row, int64_t w, int64_t r0,
                       int64_t cw, int64_t s, int64_t off) {
  const int64_t base = r0 * s + off;
  const int64_t lo = SK_MIN(cw, SK_MAX(0, ceil_div(-base, s)));
  const int64_t hi = SK_MAX(lo, SK_MIN(cw, ceil_div(w - base, s)));
  for (int64_t j = 0; j < lo; j++) xs[j] = 0.0f;
  if (s == 1)
    memcpy(xs + lo, row + base + lo, (size_t)(hi - lo) * sizeof *xs);
  else
    for (int64_t j = lo; j < hi; j++) xs[j] = row[base + j * s];
  for (int64_t j = hi; j < cw; j++) xs[j] = 0.0f;
}

/* ys[j] = row[t / s] for t = c0 + j + off when s divides t and t / s is in
 * [0, ow), else zero: the output columns that input column c0 + j received
 * from at one kernel offset (off = padding − kernel column · dilation). */
static void gather_tr(float *restrict ys, const float *restrict row, int64_t ow, int64_t c0,
                      int64_t cw, int64_t s, int64_t off) {
  if (s == 1) {
    gather_fwd(ys, row, ow, c0, cw, 1, off);
    return;
  }
  for (int64_t j = 0; j < cw; j++) {
    const int64_t t = c0 + j + off;
    ys[j] = t >= 0 && t % s == 0 && t / s < ow ? row[t / s] : 0.0f;
  }
}

/* acc[q][0:cw] += w[q·ws] · xs[0:cw] for q in [0, nb): one gathered row into
 * a block of output channels, each with its own weight. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void axpy_block(
    float *restrict acc, const float *restrict xs, const float *w, int64_t ws, int64_t nb,
    int64_t cw) {
  for (int64_t q = 0; q < nb; q++) {
    const float wq = w[q * ws];
    float *restrict a = acc + q * CV_CW;
    for (int64_t j = 0; j < cw; j++) a[j] += wq * xs[j];
  }
}

void sk__conv2d_rows(float *y, const float *x, const float *wt, const sk__conv *cv, int64_t n0,
                     int64_t n1) {
  const int64_t C = cv->c, O = cv->o, H = cv->h, W = cv->w, OH = cv->oh, OW = cv->ow;
  const int64_t KH = cv->kh, KW = cv->kw, kk = KH * KW;
  _Alignas(64) float acc[CV_OB * CV_CW];
  _Alignas(64) float xs[CV_CW];
  for (int64_t i = n0; i < n1; i++)
    for (int64_t q = 0; q < OH; q++)
      for (int64_t r0 = 0; r0 < OW; r0 += CV_CW) {
        const int64_t cw = SK_MIN(CV_CW, OW - r0);
        for (int64_t p0 = 0; p0 < O; p0 += CV_OB) {
          const int64_t nb = SK_MIN(CV_OB, O - p0);
          for (int64_t p = 0; p < nb; p++) memset(acc + p * CV_CW, 0, (size_t)cw * sizeof *acc);
          for (int64_t c = 0; c < C; c++) {
            const float *xc = x + (i * C + c) * H * W;
            for (int64_t a = 0; a < KH; a++) {
              const int64_t h = q * cv->sh - cv->ph + a * cv->dh;
              if (h < 0 || h >= H) continue; /* the padding: zero terms */
              for (int64_t b = 0; b < KW; b++) {
                gather_fwd(xs, xc + h * W, W, r0, cw, cv->sw, b * cv->dw - cv->pw);
                axpy_block(acc, xs, wt + (p0 * C + c) * kk + a * KW + b, C * kk, nb, cw);
              }
            }
          }
          for (int64_t p = 0; p < nb; p++)
            memcpy(y + (((i * O) + p0 + p) * OH + q) * OW + r0, acc + p * CV_CW,
                   (size_t)cw * sizeof *y);
        }
      }
}

void sk__conv2d_data_rows(float *x, const float *y, const float *wt, const sk__conv *cv,
                          int64_t n0, int64_t n1) {
  const int64_t C = cv->c, O = cv->o, H = cv->h, W = cv->w, OH = cv->oh, OW = cv->ow;
  const int64_t KH = cv->kh, KW = cv->kw, kk = KH * KW;
  _Alignas(64) float acc[CV_OB * CV_CW];
  _Alignas(64) float ys[CV_CW];
  for (int64_t i = n0; i < n1; i++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t c0 = 0; c0 < W; c0 += CV_CW) {
        const int64_t cw = SK_MIN(CV_CW, W - c0);
        for (int64_t k0 = 0; k0 < C; k0 += CV_OB) {
          const int64_t nb = SK_MIN(CV_OB, C - k0);
          for (int64_t k = 0; k < nb; k++) memset(acc + k * CV_CW, 0, (size_t)cw * sizeof *acc);
          for (int64_t p = 0; p < O; p++) {
            const float *yp = y + (i * O + p) * OH * OW;
            for (int64_t a = 0; a < KH; a++) {
              const int64_t t = h + cv->ph - a * cv->dh; /* = q·sh for the output row q */
              if (t < 0 || t % cv->sh || t / cv->sh >= OH) continue;
              const float *row = yp + t / cv->sh * OW;
              for (int64_t b = 0; b < KW; b++) {
                gather_tr(ys, row, OW, c0, cw, cv->sw, cv->pw - b * cv->dw);
                axpy_block(acc, ys, wt + (p * C + k0) * kk + a * KW + b, kk, nb, cw);
              }
            }
          }
          for (int64_t k = 0; k < nb; k++)
            memcpy(x + (((i * C) + k0 + k) * H + h) * W + c0, acc + k * CV_CW,
                   (size_t)cw * sizeof *x);
        }
      }
}

/* s[q][l] += y_q[j] · xs[j] for columns j ≡ l (mod 16), q in [0, nb): the
 * weight gradient's lanes for a block of output channels, whose rows of y
 * are ys apart. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void dot_lanes_block(
    float (*restrict s)[16], const float *y, int64_t ys, const float *restrict xs, int64_t nb,
    int64_t cw) {
  const int64_t body = cw / 16 * 16;
  for (int64_t q = 0; q < nb; q++) {
    const float *restrict yq = y + q * ys;
    float *restrict sq = s[q];
    for (int64_t j = 0; j < body; j += 16)
      for (int l = 0; l < 16; l++) sq[l] += yq[j + l] * xs[j + l];
    for (int64_t j = body; j < cw; j++) sq[j - body] += yq[j] * xs[j];
  }
}

void sk__conv2d_weight_rows(float *wt, const float *x, const float *y, const sk__conv *cv,
                            int64_t o0, int64_t o1) {
  const int64_t N = cv->n, C = cv->c, O = cv->o, H = cv->h, W = cv->w, OH = cv->oh, OW = cv->ow;
  const int64_t KH = cv->kh, KW = cv->kw, kk = KH * KW;
  _Alignas(64) float s[CV_OB][16];
  _Alignas(64) float xs[CV_CW];
  for (int64_t p0 = o0; p0 < o1; p0 += CV_OB) {
    const int64_t nb = SK_MIN(CV_OB, o1 - p0);
    for (int64_t c = 0; c < C; c++)
      for (int64_t a = 0; a < KH; a++)
        for (int64_t b = 0; b < KW; b++) {
          memset(s, 0, sizeof s);
          for (int64_t i = 0; i < N; i++) {
            const float *xc = x + (i * C + c) * H * W;
            const float *yi = y + (i * O + p0) * OH * OW;
            for (int64_t q = 0; q < OH; q++) {
              const int64_t h = q * cv->sh - cv->ph + a * cv->dh;
              if (h < 0 || h >= H) continue;
              for (int64_t r0 = 0; r0 < OW; r0 += CV_CW) {
                const int64_t cw = SK_MIN(CV_CW, OW - r0);
                gather_fwd(xs, xc + h * W, W, r0, cw, cv->sw, b * cv->dw - cv->pw);
                dot_lanes_block(s, yi + q * OW + r0, OH * OW, xs, nb, cw);
              }
            }
          }
          for (int64_t p = 0; p < nb; p++) {
            for (int w = 8; w >= 1; w /= 2)
              for (int l = 0; l < w; l++) s[p][l] += s[p][l + w];
            wt[((p0 + p) * C + c) * kk + a * KW + b] = s[p][0];
          }
        }
  }
}

/* ---- the references: the defining sums, term by term, in double ---- */

void sk__conv2d_naive(float *y, const float *x, const float *wt, const sk__conv *cv) {
  for (int64_t i = 0; i < cv->n; i++)
    for (int64_t p = 0; p < cv->o; p++)
      for (int64_t q = 0; q < cv->oh; q++)
        for (int64_t r = 0; r < cv->ow; r++) {
          double sum = 0.0;
          for (int64_t c = 0; c < cv->c; c++)
            for (int64_t a = 0; a < cv->kh; a++)
              for (int64_t b = 0; b < cv->kw; b++) {
                const int64_t h = q * cv->sh - cv->ph + a * cv->dh;
                const int64_t w = r * cv->sw - cv->pw + b * cv->dw;
                if (h < 0 || h >= cv->h || w < 0 || w >= cv->w) continue;
                sum += (double)wt[((p * cv->c + c) * cv->kh + a) * cv->kw + b] *
                       x[((i * cv->c + c) * cv->h + h) * cv->w + w];
              }
          y[((i * cv->o + p) * cv->oh + q) * cv->ow + r] = (float)sum;
        }
}

/* The transpose element by element: each input position sums the output
 * terms that read it, found by solving h = q·sh − ph + a·dh for q (and the
 * same for the columns) at every kernel offset. */
void sk__conv2d_data_naive(float *x, const float *y, const float *wt, const sk__conv *cv) {
  for (int64_t i = 0; i < cv->n; i++)
    for (int64_t c = 0; c < cv->c; c++)
      for (int64_t h = 0; h < cv->h; h++)
        for (int64_t w = 0; w < cv->w; w++) {
          double sum = 0.0;
          for (int64_t p = 0; p < cv->o; p++)
            for (int64_t a = 0; a < cv->kh; a++)
              for (int64_t b = 0; b < cv->kw; b++) {
                const int64_t tq = h + cv->ph - a * cv->dh, tr = w + cv->pw - b * cv->dw;
                if (tq < 0 || tr < 0 || tq % cv->sh || tr % cv->sw) continue;
                const int64_t q = tq / cv->sh, r = tr / cv->sw;
                if (q >= cv->oh || r >= cv->ow) continue;
                sum += (double)wt[((p * cv->c + c) * cv->kh + a) * cv->kw + b] *
                       y[((i * cv->o + p) * cv->oh + q) * cv->ow + r];
              }
          x[((i * cv->c + c) * cv->h + h) * cv->w + w] = (float)sum;
        }
}

void sk__conv2d_weight_naive(float *wt, const float *x, const float *y, const sk__conv *cv) {
  for (int64_t p = 0; p < cv->o; p++)
    for (int64_t c = 0; c < cv->c; c++)
      for (int64_t a = 0; a < cv->kh; a++)
        for (int64_t b = 0; b < cv->kw; b++) {
          double sum = 0.0;
          for (int64_t i = 0; i < cv->n; i++)
            for (int64_t q = 0; q < cv->oh; q++)
              for (int64_t r = 0; r < cv->ow; r++) {
                const int64_t h = q * cv->sh - cv->ph + a * cv->dh;
                const int64_t w = r * cv->sw - cv->pw + b * cv->dw;
                if (h < 0 || h >= cv->h || w < 0 || w >= cv->w) continue;
                sum += (double)y[((i * cv->o + p) * cv->oh + q) * cv->ow + r] *
                       x[((i * cv->c + c) * cv->h + h) * cv->w + w];
              }
          wt[((p * cv->c + c) * cv->kh + a) * cv->kw + b] = (float)sum;
        }
}
