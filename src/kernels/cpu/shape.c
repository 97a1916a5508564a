/* Data-movement and reduction kernels: sum_to/expand (each other's
 * transpose), permute, concat/slice/pad, gather/scatter-add, log-sum-exp. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/kernels.h"

static void strides4(sk__shape4 s, int64_t st[4]) {
  st[3] = 1;
  for (int i = 2; i >= 0; i--) st[i] = st[i + 1] * s.d[i + 1];
}

/* Each output element accumulates its inputs in increasing input order, on
 * one thread: the same bits for any thread count. Threads split the output's
 * kept dimensions only. */
void sk__sum_to(float *out, const float *a, sk__shape4 so, sk__shape4 sa) {
  int64_t os[4], as[4];
  strides4(so, os);
  strides4(sa, as);
  int64_t no = so.d[0] * so.d[1] * so.d[2] * so.d[3];
  for (int64_t i = 0; i < no; i++) out[i] = 0.0f;
  /* Reduced dims step the output by 0. */
  int64_t ostep[4];
  for (int i = 0; i < 4; i++) ostep[i] = so.d[i] == 1 ? 0 : os[i];
  /* Common case: leading dims reduced, trailing row kept (bias gradients). */
  int lead = 0;
  while (lead < 4 && so.d[lead] == 1) lead++;
  int trailing_kept = 1;
  for (int i = lead; i < 4; i++) trailing_kept &= so.d[i] == sa.d[i];
  if (trailing_kept && lead < 4) {
    const int64_t rows = sa.d[0] * sa.d[1] * sa.d[2] * sa.d[3] / no;
#pragma omp parallel for schedule(static) if (no >= 64 && rows * no >= 65536)
    for (int64_t j0 = 0; j0 < no; j0 += 64) {
      int64_t j1 = SK_MIN(no, j0 + 64);
      for (int64_t r = 0; r < rows; r++) {
        const float *ar = a + r * no;
        for (int64_t j = j0; j < j1; j++) out[j] += ar[j];
      }
    }
    return;
  }
  for (int64_t i0 = 0; i0 < sa.d[0]; i0++)
    for (int64_t i1 = 0; i1 < sa.d[1]; i1++)
      for (int64_t i2 = 0; i2 < sa.d[2]; i2++) {
        const float *pa = a + i0 * as[0] + i1 * as[1] + i2 * as[2];
        float *po = out + i0 * ostep[0] + i1 * ostep[1] + i2 * ostep[2];
        if (ostep[3] == 0) {
          float s = po[0];
          for (int64_t j = 0; j < sa.d[3]; j++) s += pa[j];
          po[0] = s;
        } else {
          for (int64_t j = 0; j < sa.d[3]; j++) po[j] += pa[j];
        }
      }
}

void sk__expand(float *out, const float *a, sk__shape4 so, sk__shape4 sa) {
  int64_t as[4], st[4];
  strides4(sa, as);
  for (int i = 0; i < 4; i++) st[i] = sa.d[i] == 1 ? 0 : as[i];
  const int64_t outer = so.d[0] * so.d[1] * so.d[2], d3 = so.d[3];
#pragma omp parallel for schedule(static) if (outer * d3 >= 16384)
  for (int64_t r = 0; r < outer; r++) {
    int64_t i0 = r / (so.d[1] * so.d[2]), i1 = (r / so.d[2]) % so.d[1], i2 = r % so.d[2];
    const float *pa = a + i0 * st[0] + i1 * st[1] + i2 * st[2];
    float *po = out + r * d3;
    if (st[3] == 0)
      for (int64_t j = 0; j < d3; j++) po[j] = pa[0];
    else
      memcpy(po, pa, (size_t)d3 * sizeof(float));
  }
}

void sk__permute(float *out, const float *a, sk__shape4 sa, const int perm[4]) {
  int64_t as[4], st[4], od[4];
  strides4(sa, as);
  for (int i = 0; i < 4; i++) {
    st[i] = as[perm[i]];
    od[i] = sa.d[perm[i]];
  }
  int64_t o = 0;
  for (int64_t i0 = 0; i0 < od[0]; i0++)
    for (int64_t i1 = 0; i1 < od[1]; i1++)
      for (int64_t i2 = 0; i2 < od[2]; i2++)
        for (int64_t i3 = 0; i3 < od[3]; i3++)
          out[o++] = a[i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3]];
}

void sk__concat(float *out, const float *a, const float *b, int64_t outer, int64_t la, int64_t lb,
                int64_t inner) {
  for (int64_t r = 0; r < outer; r++) {
    memcpy(out, a + r * la * inner, (size_t)(la * inner) * sizeof(float));
    out += la * inner;
    memcpy(out, b + r * lb * inner, (size_t)(lb * inner) * sizeof(float));
    out += lb * inner;
  }
}

void sk__slice(float *out, const float *a, int64_t outer, int64_t la, int64_t start, int64_t len,
               int64_t inner) {
  for (int64_t r = 0; r < outer; r++)
    memcpy(out + r * len * inner, a + (r * la + start) * inner, (size_t)(len * inner) * sizeof(float));
}

void sk__pad(float *out, const float *a, int64_t outer, int64_t la, int64_t before, int64_t lo,
             int64_t inner) {
  memset(out, 0, (size_t)(outer * lo * inner) * sizeof(float));
  for (int64_t r = 0; r < outer; r++)
    memcpy(out + (r * lo + before) * inner, a + r * la * inner, (size_t)(la * inner) * sizeof(float));
}

static int index_ok(float v, int64_t rows, int64_t *out) {
  if (!(v >= 0.0f) || v >= (float)rows || v != floorf(v)) return 0;
  *out = (int64_t)v;
  return 1;
}

int sk__gather(float *out, const float *a, const float *idx, int64_t n, int64_t rows, int64_t row) {
  for (int64_t i = 0; i < n; i++) {
    int64_t r;
    if (!index_ok(idx[i], rows, &r)) return 0;
    memcpy(out + i * row, a + r * row, (size_t)row * sizeof(float));
  }
  return 1;
}

int sk__scatter_add(float *out, const float *a, const float *idx, int64_t n, int64_t rows,
                    int64_t row) {
  memset(out, 0, (size_t)(rows * row) * sizeof(float));
  for (int64_t i = 0; i < n; i++) {
    int64_t r;
    if (!index_ok(idx[i], rows, &r)) return 0;
    for (int64_t j = 0; j < row; j++) out[r * row + j] += a[i * row + j];
  }
  return 1;
}

void sk__logsumexp(float *out, const float *a, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols >= 16384)
  for (int64_t r = 0; r < rows; r++) {
    const float *ar = a + r * cols;
    float m = ar[0];
    for (int64_t j = 1; j < cols; j++) m = fmaxf(m, ar[j]);
    if (isinf(m)) {
      out[r] = m;
      continue;
    }
    float s = 0.0f;
    for (int64_t j = 0; j < cols; j++) s += expf(ar[j] - m);
    out[r] = m + logf(s);
  }
}
