/* 2-D convolutions (NCHW): the forward kernel, its transpose (the gradient
 * with respect to the input) and the gradient with respect to the weight,
 * as direct loops with no scratch beyond the stack, and their naive
 * references.
 *
 * Each fast kernel takes the output plane of a sample in chunks of CV_CW
 * positions (flat, row by row, so that small planes are one chunk). For a
 * chunk and one kernel tap it finds where each position reads (a table of
 * offsets, -1 in the padding), gathers that row of the operand for one
 * channel, and adds it times one weight each to a block of CV_OB output
 * channels kept on the stack: the gathered row serves CV_OB channels and
 * every inner loop is a contiguous multiply-add the compiler vectorises.
 * Every output element is a sum in a fixed order (forward and transpose:
 * kernel row, kernel column, channel; weight: 16 interleaved partial sums
 * over the batch and positions, added pairwise) that does not depend on the
 * samples or channels a call covers, so a thread split leaves the bits
 * unchanged. */
#include <string.h>

#include "kernels/cpu/kernels.h"

/* Output channels that share one gathered row. */
#define CV_OB 8
/* Output positions per chunk (a multiple of 16, for the weight's lanes). */
#define CV_CW 256
/* The largest plane whose offset table the weight kernel keeps whole (a
 * multiple of CV_CW; 8 KiB of stack). */
#define CV_TAPS 1024

/* idx[j]: the offset in the h × w input plane that output position pos0 + j
 * (of the oh × ow plane) reads at kernel tap (a, b), or -1 in the padding.
 * Returns whether any is inside. */
static int taps_fwd(int64_t *restrict idx, const sk__conv *cv, int64_t pos0, int64_t cw,
                    int64_t a, int64_t b) {
  int64_t q = pos0 / cv->ow, r = pos0 % cv->ow;
  int any = 0;
  for (int64_t j = 0; j < cw; j++) {
    const int64_t h = q * cv->sh - cv->ph + a * cv->dh, w = r * cv->sw - cv->pw + b * cv->dw;
    const int in = h >= 0 && h < cv->h && w >= 0 && w < cv->w;
    idx[j] = in ? h * cv->w + w : -1;
    any |= in;
    if (++r == cv->ow) r = 0, q++;
  }
  return any;
}

/* idx[j]: the offset in the oh × ow output plane whose term reached input
 * position pos0 + j (of the h × w plane) through kernel tap (a, b): the q
 * with h = q·sh − ph + a·dh (and the same for the column), or -1 where
 * there is none. Returns whether any is found. */
static int taps_tr(int64_t *restrict idx, const sk__conv *cv, int64_t pos0, int64_t cw, int64_t a,
                   int64_t b) {
  int64_t h = pos0 / cv->w, w = pos0 % cv->w;
  int any = 0;
  for (int64_t j = 0; j < cw; j++) {
    const int64_t tq = h + cv->ph - a * cv->dh, tr = w + cv->pw - b * cv->dw;
    const int in = tq >= 0 && tr >= 0 && tq % cv->sh == 0 && tr % cv->sw == 0 &&
                   tq / cv->sh < cv->oh && tr / cv->sw < cv->ow;
    idx[j] = in ? tq / cv->sh * cv->ow + tr / cv->sw : -1;
    any |= in;
    if (++w == cv->w) w = 0, h++;
  }
  return any;
}

/* xs[j] = plane[idx[j]], zero where idx[j] < 0. */
static void gather(float *restrict xs, const float *restrict plane, const int64_t *restrict idx,
                   int64_t cw) {
  for (int64_t j = 0; j < cw; j++) xs[j] = idx[j] >= 0 ? plane[idx[j]] : 0.0f;
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
  const int64_t C = cv->c, O = cv->o, in_plane = cv->h * cv->w, out_plane = cv->oh * cv->ow;
  const int64_t KH = cv->kh, KW = cv->kw, kk = KH * KW;
  _Alignas(64) float acc[CV_OB * CV_CW];
  _Alignas(64) float xs[CV_CW];
  int64_t idx[CV_CW];
  for (int64_t i = n0; i < n1; i++)
    for (int64_t pos0 = 0; pos0 < out_plane; pos0 += CV_CW) {
      const int64_t cw = SK_MIN(CV_CW, out_plane - pos0);
      for (int64_t p0 = 0; p0 < O; p0 += CV_OB) {
        const int64_t nb = SK_MIN(CV_OB, O - p0);
        for (int64_t p = 0; p < nb; p++) memset(acc + p * CV_CW, 0, (size_t)cw * sizeof *acc);
        for (int64_t a = 0; a < KH; a++)
          for (int64_t b = 0; b < KW; b++) {
            if (!taps_fwd(idx, cv, pos0, cw, a, b)) continue; /* all padding: zero terms */
            for (int64_t c = 0; c < C; c++) {
              gather(xs, x + (i * C + c) * in_plane, idx, cw);
              axpy_block(acc, xs, wt + (p0 * C + c) * kk + a * KW + b, C * kk, nb, cw);
            }
          }
        for (int64_t p = 0; p < nb; p++)
          memcpy(y + (i * O + p0 + p) * out_plane + pos0, acc + p * CV_CW, (size_t)cw * sizeof *y);
      }
    }
}

void sk__conv2d_data_rows(float *x, const float *y, const float *wt, const sk__conv *cv,
                          int64_t n0, int64_t n1) {
  const int64_t C = cv->c, O = cv->o, in_plane = cv->h * cv->w, out_plane = cv->oh * cv->ow;
  const int64_t KH = cv->kh, KW = cv->kw, kk = KH * KW;
  _Alignas(64) float acc[CV_OB * CV_CW];
  _Alignas(64) float ys[CV_CW];
  int64_t idx[CV_CW];
  for (int64_t i = n0; i < n1; i++)
    for (int64_t pos0 = 0; pos0 < in_plane; pos0 += CV_CW) {
      const int64_t cw = SK_MIN(CV_CW, in_plane - pos0);
      for (int64_t k0 = 0; k0 < C; k0 += CV_OB) {
        const int64_t nb = SK_MIN(CV_OB, C - k0);
        for (int64_t k = 0; k < nb; k++) memset(acc + k * CV_CW, 0, (size_t)cw * sizeof *acc);
        for (int64_t a = 0; a < KH; a++)
          for (int64_t b = 0; b < KW; b++) {
            if (!taps_tr(idx, cv, pos0, cw, a, b)) continue;
            for (int64_t p = 0; p < O; p++) {
              gather(ys, y + (i * O + p) * out_plane, idx, cw);
              axpy_block(acc, ys, wt + (p * C + k0) * kk + a * KW + b, kk, nb, cw);
            }
          }
        for (int64_t k = 0; k < nb; k++)
          memcpy(x + (i * C + k0 + k) * in_plane + pos0, acc + k * CV_CW, (size_t)cw * sizeof *x);
      }
    }
}

/* s[q][l] += y_q[j] · xs[j] for positions j ≡ l (mod 16), q in [0, nb): the
 * weight gradient's lanes for a block of output channels, whose planes of y
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
  const int64_t N = cv->n, C = cv->c, O = cv->o, in_plane = cv->h * cv->w;
  const int64_t out_plane = cv->oh * cv->ow, KH = cv->kh, KW = cv->kw, kk = KH * KW;
  /* A plane of up to CV_TAPS positions keeps each tap's whole table, made
   * once for every channel and sample; a larger one makes it per chunk. */
  const int whole = out_plane <= CV_TAPS;
  _Alignas(64) float s[CV_OB][16];
  _Alignas(64) float xs[CV_CW];
  int64_t idx[CV_TAPS];
  for (int64_t p0 = o0; p0 < o1; p0 += CV_OB) {
    const int64_t nb = SK_MIN(CV_OB, o1 - p0);
    for (int64_t a = 0; a < KH; a++)
      for (int64_t b = 0; b < KW; b++) {
        const int any = whole ? taps_fwd(idx, cv, 0, out_plane, a, b) : 1;
        for (int64_t c = 0; c < C; c++) {
          memset(s, 0, sizeof s);
          for (int64_t i = 0; any && i < N; i++)
            for (int64_t pos0 = 0; pos0 < out_plane; pos0 += CV_CW) {
              const int64_t cw = SK_MIN(CV_CW, out_plane - pos0);
              const int64_t *t = whole ? idx + pos0 : idx;
              if (!whole && !taps_fwd(idx, cv, pos0, cw, a, b)) continue;
              gather(xs, x + (i * C + c) * in_plane, t, cw);
              dot_lanes_block(s, y + (i * O + p0) * out_plane + pos0, out_plane, xs, nb, cw);
            }
          for (int64_t p = 0; p < nb; p++) {
            for (int w = 8; w >= 1; w /= 2)
              for (int l = 0; l < w; l++) s[p][l] += s[p][l + w];
            wt[((p0 + p) * C + c) * kk + a * KW + b] = s[p][0];
          }
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
