/* Data-movement and reduction kernels: sum_to/expand (each other's
 * transpose), permute, concat/slice/pad, gather/scatter-add, log-sum-exp. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/kernels.h"

static void strides4(sk__shape4 s, int64_t st[4]) {
  st[3] = 1;
  for (int i = 2; i >= 0; i--) st[i] = st[i + 1] * s.d[i + 1];
}

enum { SUM_LANES = 32 };

/* The sum of a contiguous run: lane k adds the elements k, k + 32, ... in
 * increasing order (the vector loop needs no reassociation, so it is
 * vectorised without -ffast-math), the tail goes to the first lanes, then
 * the lanes are added as a fixed pairwise tree. The order depends on n only:
 * the same bits wherever the run sits and whoever sums it. A scalar chain
 * (one add in flight at a time) took 0.54 ns an element on the U-Net's
 * group norms; this is memory-bound. */
static inline float sum_run(const float *restrict p, int64_t n) {
  if (n < SUM_LANES) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += p[i];
    return s;
  }
  float acc[SUM_LANES];
  for (int k = 0; k < SUM_LANES; k++) acc[k] = p[k];
  int64_t i = SUM_LANES;
  for (; i + SUM_LANES <= n; i += SUM_LANES)
    for (int k = 0; k < SUM_LANES; k++) acc[k] += p[i + k];
  for (int k = 0; i + k < n; k++) acc[k] += p[i + k];
  for (int w = SUM_LANES / 2; w > 0; w /= 2)
    for (int k = 0; k < w; k++) acc[k] += acc[k + w];
  return acc[0];
}

/* Each output element adds its inputs in an order fixed by the shapes
 * (runs of contiguous inputs by sum_run, runs in increasing input order),
 * whatever range of outputs a call covers: the same bits for any thread
 * count. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void sum_to_run(
    float *restrict out, const float *restrict a, sk__shape4 so, sk__shape4 sa, int64_t e0,
    int64_t e1) {
  int64_t os[4], as[4];
  strides4(so, os);
  strides4(sa, as);
  const int64_t no = so.d[0] * so.d[1] * so.d[2] * so.d[3];
  const int64_t na = sa.d[0] * sa.d[1] * sa.d[2] * sa.d[3];
  /* Leading dims reduced, trailing ones kept (bias gradients): rows of a
   * added to the output range, vectorised along it. */
  int lead = 0;
  while (lead < 4 && so.d[lead] == 1) lead++;
  int trailing_kept = lead < 4;
  for (int i = lead; i < 4; i++) trailing_kept &= so.d[i] == sa.d[i];
  if (trailing_kept) {
    const int64_t rows = na / no;
    float *restrict o = out;
    for (int64_t j = e0; j < e1; j++) o[j] = 0.0f;
    for (int64_t r = 0; r < rows; r++) {
      const float *restrict ar = a + r * no;
      for (int64_t j = e0; j < e1; j++) o[j] += ar[j];
    }
    return;
  }
  /* Leading dims kept, trailing ones reduced (row sums): each output adds a
   * contiguous run. */
  int trail = 4;
  while (trail > 0 && so.d[trail - 1] == 1) trail--;
  int leading_kept = 1;
  for (int i = 0; i < trail; i++) leading_kept &= so.d[i] == sa.d[i];
  if (leading_kept) {
    const int64_t run = na / no;
    for (int64_t j = e0; j < e1; j++) out[j] = sum_run(a + j * run, run);
    return;
  }
  /* Anything else: each output walks the input positions that map to it. */
  int64_t rd[4], rs[4]; /* reduced dims' extents and input strides */
  for (int i = 0; i < 4; i++) {
    const int reduced = so.d[i] == 1 && sa.d[i] != 1;
    rd[i] = reduced ? sa.d[i] : 1;
    rs[i] = reduced ? as[i] : 0;
  }
  /* The innermost reduced dims that are contiguous in a form one run
   * (a group norm's scale gradient: (N, C, H, W) to (C, 1, 1), runs of
   * H·W); the outer reduced positions add the runs' sums in order. */
  int64_t run = 1;
  int inner = 4;
  while (inner > 0 && rs[inner - 1] == run * (rd[inner - 1] > 1) && rd[inner - 1] > 1)
    run *= rd[--inner];
  if (inner < 4) {
    for (int i = inner; i < 4; i++) rd[i] = 1;
    rd[3] = run;
  }
  for (int64_t j = e0; j < e1; j++) {
    int64_t base = 0, rem = j;
    for (int i = 0; i < 4; i++) {
      const int64_t idx = rem / os[i];
      rem %= os[i];
      base += so.d[i] == 1 ? 0 : idx * as[i];
    }
    float s = 0.0f;
    if (inner < 4) {
      for (int64_t i0 = 0; i0 < (inner > 0 ? rd[0] : 1); i0++)
        for (int64_t i1 = 0; i1 < (inner > 1 ? rd[1] : 1); i1++)
          for (int64_t i2 = 0; i2 < (inner > 2 ? rd[2] : 1); i2++)
            s += sum_run(a + base + i0 * rs[0] + i1 * rs[1] + i2 * rs[2], run);
    } else {
      for (int64_t i0 = 0; i0 < rd[0]; i0++)
        for (int64_t i1 = 0; i1 < rd[1]; i1++)
          for (int64_t i2 = 0; i2 < rd[2]; i2++)
            for (int64_t i3 = 0; i3 < rd[3]; i3++)
              s += a[base + i0 * rs[0] + i1 * rs[1] + i2 * rs[2] + i3 * rs[3]];
    }
    out[j] = s;
  }
}

void sk__sum_to(float *out, const float *a, sk__shape4 so, sk__shape4 sa, int64_t e0, int64_t e1) {
  if (e0 < e1) sum_to_run(out, a, so, sa, e0, e1);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void sk__sum_rows(
    float *restrict out, const float *restrict a, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t j = 0; j < n; j++) out[j] = 0.0f;
  for (int64_t r = r0; r < r1; r++)
    for (int64_t j = 0; j < n; j++) out[j] += a[r * n + j];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void sk__add_halves(
    float *restrict out, const float *restrict x, const float *restrict y, int64_t e0, int64_t e1) {
  for (int64_t i = e0; i < e1; i++) out[i] = x[i] + y[i];
}

void sk__expand(float *out, const float *a, sk__shape4 so, sk__shape4 sa, int64_t e0, int64_t e1) {
  int64_t as[4], st[4];
  strides4(sa, as);
  for (int i = 0; i < 4; i++) st[i] = sa.d[i] == 1 ? 0 : as[i];
  const int64_t d3 = so.d[3];
  if (d3 == 0) return;
  /* 2-D outputs (the common case) need no division per row. */
  const int flat = so.d[0] == 1 && so.d[1] == 1;
  for (int64_t r = e0 / d3; r < e1 / d3; r++) {
    const float *pa;
    if (flat) {
      pa = a + r * st[2];
    } else {
      int64_t i0 = r / (so.d[1] * so.d[2]), i1 = (r / so.d[2]) % so.d[1], i2 = r % so.d[2];
      pa = a + i0 * st[0] + i1 * st[1] + i2 * st[2];
    }
    float *po = out + r * d3;
    if (st[3] == 0)
      for (int64_t j = 0; j < d3; j++) po[j] = pa[0];
    else if (d3 <= 8)
      for (int64_t j = 0; j < d3; j++) po[j] = pa[j];
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

void sk__concat(float *out, const float *a, const float *b, int64_t la, int64_t lb, int64_t inner,
                int64_t o0, int64_t o1) {
  const int64_t lo = la + lb;
  for (int64_t r = o0; r < o1; r++) {
    float *po = out + r * lo * inner;
    memcpy(po, a + r * la * inner, (size_t)(la * inner) * sizeof(float));
    memcpy(po + la * inner, b + r * lb * inner, (size_t)(lb * inner) * sizeof(float));
  }
}

void sk__slice(float *out, const float *a, int64_t la, int64_t start, int64_t len, int64_t inner,
               int64_t o0, int64_t o1) {
  for (int64_t r = o0; r < o1; r++)
    memcpy(out + r * len * inner, a + (r * la + start) * inner, (size_t)(len * inner) * sizeof(float));
}

void sk__pad(float *out, const float *a, int64_t la, int64_t before, int64_t lo, int64_t inner,
             int64_t o0, int64_t o1) {
  for (int64_t r = o0; r < o1; r++) {
    float *po = out + r * lo * inner;
    memset(po, 0, (size_t)(before * inner) * sizeof(float));
    memcpy(po + before * inner, a + r * la * inner, (size_t)(la * inner) * sizeof(float));
    memset(po + (before + la) * inner, 0, (size_t)((lo - before - la) * inner) * sizeof(float));
  }
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

void sk__logsumexp(float *out, const float *a, int64_t cols, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
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
