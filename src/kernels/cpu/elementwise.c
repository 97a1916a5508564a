/* Elementwise kernels: broadcasting binary arithmetic and the smooth unary
 * functions in numerically stable forms. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/kernels.h"

sk__shape4 sk__shape4_of(int ndim, const int64_t *shape) {
  sk__shape4 s = {{1, 1, 1, 1}};
  for (int i = 0; i < ndim; i++) s.d[4 - ndim + i] = shape[i];
  return s;
}

static int64_t numel4(sk__shape4 s) { return s.d[0] * s.d[1] * s.d[2] * s.d[3]; }

/* Element strides of `s` seen in the index space of `o`: 0 along broadcast dims. */
static void bstrides(sk__shape4 s, sk__shape4 o, int64_t st[4]) {
  int64_t acc = 1;
  for (int i = 3; i >= 0; i--) {
    st[i] = (s.d[i] == 1 && o.d[i] != 1) ? 0 : acc;
    acc *= s.d[i];
  }
}

static inline float binop(float x, float y, sk__binop op) {
  switch (op) {
  case SK_BIN_ADD: return x + y;
  case SK_BIN_SUB: return x - y;
  case SK_BIN_MUL: return x * y;
  default: return x / y;
  }
}

#define BIN_LOOP(EXPR) \
  for (int64_t i = e0; i < e1; i++) out[i] = EXPR;

/* Compiled for AVX-512, AVX2 and the baseline, chosen at load time. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void binary_run(
    float *restrict out, const float *a, const float *b, sk__shape4 so, sk__shape4 sa,
    sk__shape4 sb, sk__binop op, int64_t e0, int64_t e1) {
  const int64_t n = numel4(so);
  const int64_t na = numel4(sa), nb = numel4(sb);
  if (na == n && nb == n) {
    switch (op) {
    case SK_BIN_ADD: BIN_LOOP(a[i] + b[i]) break;
    case SK_BIN_SUB: BIN_LOOP(a[i] - b[i]) break;
    case SK_BIN_MUL: BIN_LOOP(a[i] * b[i]) break;
    case SK_BIN_DIV: BIN_LOOP(a[i] / b[i]) break;
    }
    return;
  }
  if (na == n && nb == 1) {
    const float y = b[0];
    switch (op) {
    case SK_BIN_ADD: BIN_LOOP(a[i] + y) break;
    case SK_BIN_SUB: BIN_LOOP(a[i] - y) break;
    case SK_BIN_MUL: BIN_LOOP(a[i] * y) break;
    case SK_BIN_DIV: BIN_LOOP(a[i] / y) break;
    }
    return;
  }
  if (nb == n && na == 1) {
    const float x = a[0];
    switch (op) {
    case SK_BIN_ADD: BIN_LOOP(x + b[i]) break;
    case SK_BIN_SUB: BIN_LOOP(x - b[i]) break;
    case SK_BIN_MUL: BIN_LOOP(x * b[i]) break;
    case SK_BIN_DIV: BIN_LOOP(x / b[i]) break;
    }
    return;
  }
  int64_t ta[4], tb[4];
  bstrides(sa, so, ta);
  bstrides(sb, so, tb);
  const int64_t d1 = so.d[1], d2 = so.d[2], d3 = so.d[3];
  if (d3 == 0) return;
  /* 2-D outputs (the common case) need no division per row. */
  const int flat = so.d[0] == 1 && d1 == 1;
  for (int64_t r = e0 / d3; r < e1 / d3; r++) {
    const float *pa, *pb;
    if (flat) {
      pa = a + r * ta[2];
      pb = b + r * tb[2];
    } else {
      int64_t i0 = r / (d1 * d2), i1 = (r / d2) % d1, i2 = r % d2;
      pa = a + i0 * ta[0] + i1 * ta[1] + i2 * ta[2];
      pb = b + i0 * tb[0] + i1 * tb[1] + i2 * tb[2];
    }
    float *restrict po = out + r * d3;
    /* The two common broadcasts get loops the compiler vectorises. */
    if (ta[3] == 1 && tb[3] == 1)
      switch (op) {
      case SK_BIN_ADD: for (int64_t j = 0; j < d3; j++) po[j] = pa[j] + pb[j]; break;
      case SK_BIN_SUB: for (int64_t j = 0; j < d3; j++) po[j] = pa[j] - pb[j]; break;
      case SK_BIN_MUL: for (int64_t j = 0; j < d3; j++) po[j] = pa[j] * pb[j]; break;
      case SK_BIN_DIV: for (int64_t j = 0; j < d3; j++) po[j] = pa[j] / pb[j]; break;
      }
    else if (ta[3] == 1 && tb[3] == 0) {
      const float y = pb[0];
      switch (op) {
      case SK_BIN_ADD: for (int64_t j = 0; j < d3; j++) po[j] = pa[j] + y; break;
      case SK_BIN_SUB: for (int64_t j = 0; j < d3; j++) po[j] = pa[j] - y; break;
      case SK_BIN_MUL: for (int64_t j = 0; j < d3; j++) po[j] = pa[j] * y; break;
      case SK_BIN_DIV: for (int64_t j = 0; j < d3; j++) po[j] = pa[j] / y; break;
      }
    } else
      for (int64_t j = 0; j < d3; j++) po[j] = binop(pa[j * ta[3]], pb[j * tb[3]], op);
  }
}

void sk__binary(float *out, const float *a, const float *b, sk__shape4 so, sk__shape4 sa,
                sk__shape4 sb, sk__binop op, int64_t e0, int64_t e1) {
  if (e0 < e1) binary_run(out, a, b, so, sa, sb, op, e0, e1);
}

/* e^x for x <= 0 (the only use: e^−|x| inside softplus and sigmoid), written
 * without calls or branches so that the loops around it vectorise: Cody–Waite
 * range reduction x = n ln2 + r and a degree-6 polynomial (Cephes' expf
 * coefficients), scaled by 2^n through the exponent bits; 0 below −87.3
 * (where e^x is subnormal). */
static inline float exp_neg(float x0) {
  /* Ternaries, not fmaxf: they compile to vector selects. A NaN passes the
   * clamp and makes p, so the result, NaN: no separate NaN result, which
   * made GCC evaluate the callers' polynomials twice (softplus 1.5× slower). */
  const float x = x0 < -87.3f ? -87.3f : x0;
  const float n = floorf(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  /* 2^n from the bits of n + 1.5·2^23, whose low bits are the integer n in
   * [-126, 0]: no float-to-int conversion, undefined for a NaN. */
  const float shifted = n + 12582912.0f;
  uint32_t bits;
  memcpy(&bits, &shifted, sizeof bits);
  bits = (bits - 0x4B400000u + 127u) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return x0 < -87.3f ? 0.0f : p * scale;
}

/* log(1 + y) for y in [0, 1] as y·q(y), q a degree-8 polynomial fitted to
 * log1p(y)/y by weighted least squares on Chebyshev nodes (relative error
 * 3.5e-8, under half an ulp, before rounding): no division, and exact
 * relative accuracy as y → 0, where softplus(x) ≈ e^x. */
static inline float log1p_unit(float y) {
  float q = 5.1058258001e-03f;
  q = q * y - 2.8991956391e-02f;
  q = q * y + 7.7380738381e-02f;
  q = q * y - 1.3590600236e-01f;
  q = q * y + 1.9071309583e-01f;
  q = q * y - 2.4833945457e-01f;
  q = q * y + 3.3317934322e-01f;
  q = q * y - 4.9999435690e-01f;
  q = q * y + 9.9999996516e-01f;
  return y * q;
}

/* log(1 + e^x) = max(x, 0) + log1p(e^−|x|): no overflow for any x. */
static inline float softplusf(float x) {
  return (x > 0.0f ? x : 0.0f) + log1p_unit(exp_neg(-fabsf(x)));
}

/* 1 / (1 + e^−x) from e^−|x|, so the exponential never overflows. */
static inline float sigmoidf(float x) {
  const float e = exp_neg(-fabsf(x)), r = 1.0f / (1.0f + e);
  return x >= 0.0f ? r : e * r;
}

#define UN_LOOP(EXPR)                 \
  for (int64_t i = 0; i < n; i++) {   \
    const float x = a[i];             \
    out[i] = EXPR;                    \
  }

/* Compiled for AVX-512, AVX2 and the baseline, chosen at load time by the
 * CPU (gcc's target_clones), whatever the build machine was. The clones give
 * one machine the same bits on every thread; the AVX-512 clone fuses
 * multiply-adds (CMakeLists.txt), so its bits differ from the others. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void unary_run(
    float *restrict out, const float *restrict a, int64_t n, sk__unop op, float alpha,
    float beta) {
  switch (op) {
  case SK_UN_NEG: UN_LOOP(-x) break;
  case SK_UN_AFFINE: UN_LOOP(alpha * x + beta) break;
  case SK_UN_EXP: UN_LOOP(expf(x)) break;
  case SK_UN_LOG: UN_LOOP(logf(x)) break;
  case SK_UN_SQRT: UN_LOOP(sqrtf(x)) break;
  case SK_UN_TANH: UN_LOOP(tanhf(x)) break;
  case SK_UN_SIGMOID: UN_LOOP(sigmoidf(x)) break;
  case SK_UN_SOFTPLUS: UN_LOOP(softplusf(x)) break;
  case SK_UN_STEP: UN_LOOP(x > 0.0f ? 1.0f : 0.0f) break;
  case SK_UN_SIN: UN_LOOP(sinf(x)) break;
  case SK_UN_COS: UN_LOOP(cosf(x)) break;
  }
}

void sk__unary(float *out, const float *a, sk__unop op, float alpha, float beta, int64_t e0,
               int64_t e1) {
  if (e0 < e1) unary_run(out + e0, a + e0, e1 - e0, op, alpha, beta);
}

/* softplus(x) into sp and sigmoid(x) into sg from one e^−|x|: the operations
 * of softplusf and sigmoidf, so the bits of each in a vector body (tested).
 * A softplus layer's backward pass needs sigmoid of the same input; the plan
 * computes it in the forward pass beside the softplus (graph/plan.c). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void softplus_sigmoid_run(
    float *restrict sp, float *restrict sg, const float *restrict a, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float x = a[i], e = exp_neg(-fabsf(x)), r = 1.0f / (1.0f + e);
    sp[i] = (x > 0.0f ? x : 0.0f) + log1p_unit(e);
    sg[i] = x >= 0.0f ? r : e * r;
  }
}

void sk__softplus_sigmoid(float *sp, float *sg, const float *a, int64_t e0, int64_t e1) {
  /* Whole vectors here; the last n mod 16 elements through the two ops' own
   * loops, whose tails (a vectorised epilogue, then scalar code) round as
   * they would for the same range, and need not match this loop's. */
  const int64_t body = e0 < e1 ? (e1 - e0) / 16 * 16 : 0;
  if (body > 0) softplus_sigmoid_run(sp + e0, sg + e0, a + e0, body);
  sk__unary(sp, a, SK_UN_SOFTPLUS, 0, 0, e0 + body, e1);
  sk__unary(sg, a, SK_UN_SIGMOID, 0, 0, e0 + body, e1);
}

/* x · (y · (1 − y)): a sigmoid's derivative, y(1 − y) for y = σ(z), times
 * the gradient x, as the graph spells it (affine(y, −1, 1), y · that, x ·
 * that; graph/grad.c) in one pass, or y · (1 − y) alone for x NULL (where
 * the derivative is read twice). Each op rounds as it does alone:
 * 1 − y is what affine's −1·y + 1 gives fused or not, and no product here
 * is added to anything, so every clone and the tail give the ops' bits. out
 * may be x or y (an op's output may take the buffer of an input that dies
 * there). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void sigmoid_grad_run(
    float *out, const float *x, const float *y, int64_t n) {
  if (!x) {
    for (int64_t i = 0; i < n; i++) out[i] = y[i] * (1.0f - y[i]);
    return;
  }
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * (y[i] * (1.0f - y[i]));
}

void sk__sigmoid_grad_mul(float *out, const float *x, const float *y, int64_t e0, int64_t e1) {
  if (e0 < e1) sigmoid_grad_run(out + e0, x ? x + e0 : NULL, y + e0, e1 - e0);
}

enum { GN_LANES = 32 };

typedef float gn_v16 __attribute__((vector_size(64)));
typedef float gn_v8 __attribute__((vector_size(32)));
typedef float gn_v4 __attribute__((vector_size(16)));

/* The pairwise tree over 32 lanes: lane k plus lane k + 16, then k + 8,
 * k + 4, k + 2, k + 1, in vectors (GCC's vectoriser leaves such a tree
 * scalar, through memory, where it is inlined into a loop). */
static inline float gn_tree(const float *acc) {
  gn_v16 a, b;
  memcpy(&a, acc, sizeof a);
  memcpy(&b, acc + 16, sizeof b);
  a += b;
  const gn_v8 h8 = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
                   __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
  const gn_v4 h4 = __builtin_shufflevector(h8, h8, 0, 1, 2, 3) +
                   __builtin_shufflevector(h8, h8, 4, 5, 6, 7);
  return (h4[0] + h4[2]) + (h4[1] + h4[3]);
}

/* Σ f(i) over [0, n) in 32 lanes: lane k adds the terms k, k + 32, ... in
 * order (the last, partial round adds 0 past n), then a fixed pairwise
 * tree; under 32 terms, in order (the tree would cost more than the
 * terms). The order depends on n only (the same bits whoever computes which
 * sample). TERM is an expression of i. */
#define GN_SUM(n, TERM, result)                                       \
  do {                                                                \
    float acc_[GN_LANES];                                             \
    if ((n) < GN_LANES) {                                             \
      float s_ = 0.0f;                                                \
      for (int64_t i = 0; i < (n); i++) s_ += (TERM);                 \
      (result) = s_;                                                  \
      break;                                                          \
    }                                                                 \
    int64_t i0_ = 0;                                                  \
    for (int l_ = 0; l_ < GN_LANES; l_++) acc_[l_] = 0.0f;            \
    for (; i0_ + GN_LANES <= (n); i0_ += GN_LANES)                    \
      for (int l_ = 0; l_ < GN_LANES; l_++) {                         \
        const int64_t i = i0_ + l_;                                   \
        acc_[l_] += (TERM);                                           \
      }                                                               \
    if (i0_ < (n))                                                    \
      for (int l_ = 0; l_ < GN_LANES; l_++) {                         \
        const int64_t i = i0_ + l_;                                   \
        acc_[l_] += i < (n) ? (TERM) : 0.0f;                          \
      }                                                               \
    (result) = gn_tree(acc_);                                         \
  } while (0)

/* A group's mean and 1 / sd (sd = √(var + eps), biased variance): the mean
 * first, then the squared deviations from it (two passes, as the composite:
 * no cancellation). The group (at most 8 × 676 floats in the U-Net) stays
 * in L1/L2 for the passes after. */
static inline void gn_stats(const float *x, int64_t m, float eps, float *mu, float *r) {
  const float inv_m = 1.0f / (float)m;
  float sum, sq;
  GN_SUM(m, x[i], sum);
  const float mean = sum * inv_m;
  GN_SUM(m, (x[i] - mean) * (x[i] - mean), sq);
  *mu = mean;
  *r = 1.0f / sqrtf(sq * inv_m + eps);
}

typedef enum { GN_SILU, GN_SILU_D, GN_BACK, GN_SUMS } gn_kind;

/* Planes under GN_SHORT values (the 2 × 2 and 5 × 5 ones) go a block of
 * whole groups at a time, at most GN_BLOCK values and GN_GROUPS groups
 * (gn_block); longer planes, and groups over GN_BLOCK values, one group at
 * a time, channel by channel (gn_group). */
enum { GN_SHORT = 64, GN_BLOCK = 2048, GN_GROUPS = 64 };

/* BODY for value j of channel ch, for ch < k and j < H, H = hw: the common
 * short planes spelled out with H constant, which GCC vectorises across
 * channels (broadcasting each channel's values over its plane). */
#define GN_CHANNELS(hw, k, BODY)                                       \
  do {                                                                 \
    switch (hw) {                                                      \
    case 1: GN_CHANNELS_H(1, k, BODY) break;                           \
    case 4: GN_CHANNELS_H(4, k, BODY) break;                           \
    case 16: GN_CHANNELS_H(16, k, BODY) break;                         \
    default: GN_CHANNELS_H(hw, k, BODY) break;                         \
    }                                                                  \
  } while (0)
#define GN_CHANNELS_H(HW, k, BODY)                                     \
  {                                                                    \
    const int64_t H = (HW);                                            \
    for (int64_t ch = 0; ch < (k); ch++)                               \
      for (int64_t j = 0; j < H; j++) BODY;                            \
  }

/* silu(a) (GN_SILU) or u · silu'(a) (GN_SILU_D), a = A, over n values. out
 * may be x or u, value for value: no dependence between iterations (ivdep),
 * which GCC would otherwise assume and leave the loop scalar. */
#define GN_ACT(kind, out, u, A, n)                                      \
  do {                                                                  \
    if ((kind) == GN_SILU)                                              \
      _Pragma("GCC ivdep") for (int64_t j = 0; j < (n); j++) {          \
        const float a = (A);                                            \
        (out)[j] = a * sigmoidf(a);                                     \
      }                                                                 \
    else                                                                \
      _Pragma("GCC ivdep") for (int64_t j = 0; j < (n); j++) {          \
        const float a = (A), sg = sigmoidf(a);                          \
        (out)[j] = (u)[j] * (sg * (1.0f + a * (1.0f - sg)));            \
      }                                                                 \
  } while (0)

/* Σ u (x − μ) r into s1[ch] and Σ u into s2[ch] for k channels of hw
 * values, each sum GN_SUM's (under 32 terms in order, so the planes spelled
 * out with their length constant add the same way). */
static inline void gn_channel_sums(float *s1, float *s2, const float *x, const float *u, float mu,
                                   float r, int64_t hw, int64_t k) {
#define GN_CHANNEL_SUMS(HW)                                            \
  {                                                                    \
    const int64_t H = (HW);                                            \
    for (int64_t ch = 0; ch < k; ch++) {                               \
      const float *xc = x + ch * H, *uc = u + ch * H;                  \
      float sux, su;                                                   \
      GN_SUM(H, uc[i] * (xc[i] - mu), sux);                            \
      GN_SUM(H, uc[i], su);                                            \
      s1[ch] = sux * r;                                                \
      s2[ch] = su;                                                     \
    }                                                                  \
  }
  switch (hw) {
  case 1: GN_CHANNEL_SUMS(1) break;
  case 4: GN_CHANNEL_SUMS(4) break;
  case 16: GN_CHANNEL_SUMS(16) break;
  default: GN_CHANNEL_SUMS(hw) break;
  }
#undef GN_CHANNEL_SUMS
}

/* One group of one sample: cg channels of hw values from x (and u); gam and
 * bet the group's scales and shifts; out as the kind says (GN_SUMS: Σ u x̂
 * of each channel at out[ch], Σ u at out[c + ch]). out may be x or u: each
 * value is read before its own is written, and each sum before any. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void gn_group(
    gn_kind kind, float *out, const float *x, const float *u, const float *gam, const float *bet,
    int64_t c, int64_t cg, int64_t hw, float eps) {
  const int64_t m = cg * hw;
  float mu, r;
  gn_stats(x, m, eps, &mu, &r);
  if (kind == GN_SUMS) {
    gn_channel_sums(out, out + c, x, u, mu, r, hw, cg);
    return;
  }
  if (kind == GN_BACK) {
    /* (g − mean g − x̂ mean(g x̂)) r, g = γ u: Σ g and Σ g (x − μ) as the
     * channels' sums times γ, added in order. */
    float su = 0.0f, sux = 0.0f;
    for (int64_t ch = 0; ch < cg; ch++) {
      const float *xc = x + ch * hw, *uc = u + ch * hw;
      float a, b;
      GN_SUM(hw, uc[i], a);
      GN_SUM(hw, uc[i] * (xc[i] - mu), b);
      su += gam[ch] * a;
      sux += gam[ch] * b;
    }
    const float inv_m = 1.0f / (float)m, m1 = su * inv_m, m2 = sux * r * inv_m;
    for (int64_t ch = 0; ch < cg; ch++) {
      const float *xc = x + ch * hw, *uc = u + ch * hw, gc = gam[ch];
      float *oc = out + ch * hw;
      _Pragma("GCC ivdep") for (int64_t j = 0; j < hw; j++)
        oc[j] = (gc * uc[j] - m1 - (xc[j] - mu) * r * m2) * r;
    }
    return;
  }
  for (int64_t ch = 0; ch < cg; ch++) {
    const float s = gam[ch] * r, t = bet[ch] - mu * s, *xc = x + ch * hw;
    const float *uc = u ? u + ch * hw : NULL;
    float *oc = out + ch * hw;
    GN_ACT(kind, oc, uc, xc[j] * s + t, hw);
  }
}

/* ng consecutive groups of one sample (ng · cg · hw <= GN_BLOCK, ng <=
 * GN_GROUPS), the arguments as gn_group's with d the groups' shifts (or
 * NULL): each pass over all the groups before the next, so that the groups'
 * chains of sums, square root and division overlap, and the values as one
 * run, so that no loop ends in a scalar tail every channel. The sums of each
 * group are gn_stats' and gn_group's, but for GN_BACK's, over γ u value by
 * value. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void gn_block(
    gn_kind kind, float *out, const float *x, const float *u, const float *gam, const float *bet,
    const float *d, int64_t c, int64_t cg, int64_t hw, int64_t ng, float eps) {
  const int64_t m = cg * hw, k = ng * cg, nv = ng * m;
  const float inv_m = 1.0f / (float)m;
  float xs[GN_BLOCK], buf[GN_BLOCK], s_ch[GN_BLOCK], t_ch[GN_BLOCK];
  float mu[GN_GROUPS], r[GN_GROUPS], m1[GN_GROUPS], m2[GN_GROUPS];
  if (d) { /* the bits of the broadcast add */
    GN_CHANNELS(hw, k, xs[ch * H + j] = x[ch * H + j] + d[ch]);
    x = xs;
  }
  for (int64_t g = 0; g < ng; g++) {
    const float *xg = x + g * m;
    GN_SUM(m, xg[i], mu[g]);
  }
  for (int64_t g = 0; g < ng; g++) mu[g] *= inv_m;
  for (int64_t g = 0; g < ng; g++) {
    const float *xg = x + g * m, mg = mu[g];
    GN_SUM(m, (xg[i] - mg) * (xg[i] - mg), r[g]);
  }
  /* in vectors across the groups */
  for (int64_t g = 0; g < ng; g++) r[g] = 1.0f / sqrtf(r[g] * inv_m + eps);
  if (kind == GN_SUMS) {
    for (int64_t g = 0; g < ng; g++)
      gn_channel_sums(out + g * cg, out + c + g * cg, x + g * m, u + g * m, mu[g], r[g], hw, cg);
    return;
  }
  if (kind == GN_BACK) { /* as gn_group's, with g = γ u in buf */
    GN_CHANNELS(hw, k, buf[ch * H + j] = u[ch * H + j] * gam[ch]);
    for (int64_t g = 0; g < ng; g++) {
      const float *xg = x + g * m, *bg = buf + g * m, mg = mu[g];
      float su, sux;
      GN_SUM(m, bg[i], su);
      GN_SUM(m, bg[i] * (xg[i] - mg), sux);
      m1[g] = su * inv_m;
      m2[g] = sux * r[g] * inv_m;
    }
    for (int64_t g = 0; g < ng; g++) {
      const float *xg = x + g * m, *bg = buf + g * m;
      const float mg = mu[g], rg = r[g], a = m1[g], b = m2[g];
      float *og = out + g * m;
      _Pragma("GCC ivdep") for (int64_t j = 0; j < m; j++)
        og[j] = (bg[j] - a - (xg[j] - mg) * rg * b) * rg;
    }
    return;
  }
  for (int64_t g = 0; g < ng; g++)
    for (int64_t ch = g * cg; ch < (g + 1) * cg; ch++) {
      s_ch[ch] = gam[ch] * r[g];
      t_ch[ch] = bet[ch] - mu[g] * s_ch[ch];
    }
  GN_CHANNELS(hw, k, buf[ch * H + j] = x[ch * H + j] * s_ch[ch] + t_ch[ch]);
  GN_ACT(kind, out, u, buf[j], nv);
}

/* xs = x + d over one group of cg channels of hw values, d one per channel:
 * the bits of the broadcast add. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void gn_shift(
    float *restrict xs, const float *x, const float *d, int64_t cg, int64_t hw) {
  for (int64_t ch = 0; ch < cg; ch++) {
    const float dc = d[ch];
    const float *xc = x + ch * hw;
    float *sc = xs + ch * hw;
    for (int64_t j = 0; j < hw; j++) sc[j] = xc[j] + dc;
  }
}

void sk__group_norm(int kind, float *out, const float *x, const float *u, const float *gb,
                    const float *d, float *xs, int64_t c, int64_t hw, int groups, float eps,
                    int64_t n0, int64_t n1) {
  const int64_t cg = c / groups, m = cg * hw;
  /* groups per block on short planes; 0: one group at a time */
  int64_t per = hw < GN_SHORT && m <= GN_BLOCK ? GN_BLOCK / m : 0;
  if (per > GN_GROUPS) per = GN_GROUPS;
  for (int64_t n = n0; n < n1; n++)
    for (int64_t g = 0; g < groups; g += per ? per : 1) {
      const int64_t off = (n * c + g * cg) * hw;
      const float *xg = x + off, *dg = d ? d + n * c + g * cg : NULL;
      const float *ug = u ? u + off : NULL, *gam = gb ? gb + g * cg : NULL;
      const float *bet = gb ? gb + c + g * cg : NULL;
      float *og = kind == GN_SUMS ? out + n * 2 * c + g * cg : out + off;
      if (per) {
        const int64_t ng = groups - g < per ? groups - g : per;
        gn_block((gn_kind)kind, og, xg, ug, gam, bet, dg, c, cg, hw, ng, eps);
        continue;
      }
      if (d) { /* the group of x + d, in cache for the passes below */
        gn_shift(xs, xg, dg, cg, hw);
        xg = xs;
      }
      gn_group((gn_kind)kind, og, xg, ug, gam, bet, c, cg, hw, eps);
    }
}

/* The scalar references the fast paths are tested against. */
float sk__softplus_ref(float x);
float sk__sigmoid_ref(float x);
float sk__softplus_ref(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }
float sk__sigmoid_ref(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}
