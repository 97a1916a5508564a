/* Elementwise kernels: broadcasting binary arithmetic and the smooth unary
 * functions in numerically stable forms. */
#include <math.h>

#include "kernels/cpu/kernels.h"

/* Below this many elements a parallel region costs more than it saves. */
#define SK_PAR_MIN 16384

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

#define BIN_LOOP(EXPR)                                                     \
  _Pragma("omp parallel for schedule(static) if (n >= SK_PAR_MIN)")        \
  for (int64_t i = 0; i < n; i++) out[i] = EXPR;

void sk__binary(float *out, const float *a, const float *b, sk__shape4 so, sk__shape4 sa,
                sk__shape4 sb, sk__binop op) {
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
    BIN_LOOP(binop(a[i], y, op))
    return;
  }
  if (nb == n && na == 1) {
    const float x = a[0];
    BIN_LOOP(binop(x, b[i], op))
    return;
  }
  int64_t ta[4], tb[4];
  bstrides(sa, so, ta);
  bstrides(sb, so, tb);
  const int64_t d1 = so.d[1], d2 = so.d[2], d3 = so.d[3];
  const int64_t outer = so.d[0] * d1 * d2;
#pragma omp parallel for schedule(static) if (n >= SK_PAR_MIN)
  for (int64_t r = 0; r < outer; r++) {
    int64_t i0 = r / (d1 * d2), i1 = (r / d2) % d1, i2 = r % d2;
    const float *pa = a + i0 * ta[0] + i1 * ta[1] + i2 * ta[2];
    const float *pb = b + i0 * tb[0] + i1 * tb[1] + i2 * tb[2];
    float *po = out + r * d3;
    for (int64_t j = 0; j < d3; j++) po[j] = binop(pa[j * ta[3]], pb[j * tb[3]], op);
  }
}

/* log(1 + e^x) = max(x, 0) + log1p(e^−|x|): no overflow for large |x|. */
static inline float softplusf(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

/* 1 / (1 + e^−x), evaluated on the side where the exponential cannot overflow. */
static inline float sigmoidf(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

#define UN_LOOP(EXPR)                                                  \
  _Pragma("omp parallel for schedule(static) if (n >= SK_PAR_MIN)")    \
  for (int64_t i = 0; i < n; i++) {                                    \
    const float x = a[i];                                              \
    out[i] = EXPR;                                                     \
  }

void sk__unary(float *out, const float *a, int64_t n, sk__unop op, float alpha, float beta) {
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
  }
}
