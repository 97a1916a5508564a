/* libxsmm 1.17's DNN convolutions (libxsmm_dnn_convolution.h: direct
 * kernels on a blocked channel layout) measured as a candidate for
 * scorekit's CPU backend (docs/PERFORMANCE.md, "Convolutions"): not part of
 * the build, since scorekit compiles libxsmm's header-only form for its
 * products and does not use this API. On the U-Net layers of bench_conv.c at
 * batch 64, one thread, per pass (forward, backward-data, backward-weight),
 * in libxsmm's own layouts (conversions from NCHW not counted):
 *
 *   CHECK  the forward from NCHW data (copied in) against the defining sums
 *          in double: the largest absolute error;
 *   SPEED  GFLOP/s by the wall clock, best of 20 calls;
 *   ALLOC  heap allocations inside one libxsmm_dnn_execute_st (libc's
 *          allocator interposed), with the caller's scratch bound;
 *   SCRATCH the scratch the layer asks for;
 *   CONVERT milliseconds to copy x from NCHW into the layer's layout and y
 *          back (libxsmm_dnn_copyin_tensor, _copyout_tensor), best of 5,
 *          against the forward's own; and the same by the loops below
 *          (blocks of 16 channels transposed, checked against libxsmm's).
 *
 * T(tconvK) names the convolution that layer tconvK transposes.
 *
 * Build and run (Debian: apt-get install libxsmm-dev; the static libraries):
 *   gcc -O2 -fopenmp bench/xsmm_dnn/conv_xsmm_dnn.c -o /tmp/conv_xsmm_dnn \
 *     /usr/lib/libxsmmext.a /usr/lib/libxsmm.a /usr/lib/libxsmmnoblas.a -lm -ldl -lpthread
 *   /tmp/conv_xsmm_dnn */
#define _GNU_SOURCE
#include <libxsmm.h>
#include <libxsmm_dnn.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../alloc_count.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* NCHW (n, c, hw) to libxsmm's blocked [n][c / bc][hw][bc] (back: from
 * the blocked layout to NCHW): each block of bc channels of a sample
 * transposed, 16 positions at a time. */
static void convert(float *restrict out, const float *restrict in, int n, int c, int hw, int bc,
                    int back) {
  for (int i = 0; i < n; i++)
    for (int cb = 0; cb < c / bc; cb++) {
      const size_t at = ((size_t)i * c + (size_t)cb * bc) * hw;
      for (int p0 = 0; p0 < hw; p0 += 16)
        for (int k = 0; k < bc; k++)
          for (int p = p0; p < p0 + 16 && p < hw; p++) {
            const size_t plain = at + (size_t)k * hw + p, blocked = at + (size_t)p * bc + k;
            out[back ? plain : blocked] = in[back ? blocked : plain];
          }
    }
}

/* The channel block of a blocked activation (its innermost dimension). */
static int channel_block(libxsmm_dnn_layer *h, libxsmm_dnn_tensor_type type) {
  libxsmm_dnn_err_t st;
  libxsmm_dnn_tensor_datalayout *l = libxsmm_dnn_create_tensor_datalayout(h, type, &st);
  const int bc = l->num_dims == 5 ? (int)l->dim_size[0] : 0;
  libxsmm_dnn_destroy_tensor_datalayout(l);
  return bc;
}

typedef struct layer {
  const char *name;
  int c, h, k, s; /* c → k channels, h × h input, 3 × 3 kernel, stride s */
} layer;
static const layer layers[] = {
    {"conv1", 1, 28, 32, 1},      {"conv2", 32, 26, 64, 2},     {"conv3", 64, 12, 128, 2},
    {"conv4", 128, 5, 256, 2},    {"T(tconv3)", 64, 12, 256, 2}, {"T(tconv2)", 32, 26, 128, 2},
    {"T(tconv1)", 1, 28, 64, 1},
};

/* One layer at batch n: a line per pass, or why it could not run. */
static void run(const layer *L, int n) {
  libxsmm_dnn_conv_desc d = {0};
  d.N = n, d.C = L->c, d.H = L->h, d.W = L->h, d.K = L->k, d.R = 3, d.S = 3, d.u = L->s,
  d.v = L->s, d.threads = 1;
  d.datatype_in = d.datatype_out = LIBXSMM_DNN_DATATYPE_F32;
  d.buffer_format = d.filter_format = LIBXSMM_DNN_TENSOR_FORMAT_LIBXSMM;
  d.algo = LIBXSMM_DNN_CONV_ALGO_DIRECT;
  d.options = LIBXSMM_DNN_CONV_OPTION_OVERWRITE;
  d.fuse_ops = LIBXSMM_DNN_CONV_FUSE_NONE;
  libxsmm_dnn_err_t st;
  libxsmm_dnn_layer *h = libxsmm_dnn_create_conv_layer(d, &st);
  if (st != LIBXSMM_DNN_SUCCESS && st != LIBXSMM_DNN_WARN_FALLBACK) {
    printf("%-10s no layer: %s\n", L->name, libxsmm_dnn_get_error(st));
    return;
  }
  const int oh = (L->h - 3) / L->s + 1;
  const size_t ni = (size_t)n * L->c * L->h * L->h, no = (size_t)n * L->k * oh * oh,
               nw = (size_t)L->k * L->c * 9;
  const libxsmm_dnn_tensor_type types[6] = {LIBXSMM_DNN_REGULAR_INPUT,  LIBXSMM_DNN_GRADIENT_INPUT,
                                            LIBXSMM_DNN_REGULAR_OUTPUT, LIBXSMM_DNN_GRADIENT_OUTPUT,
                                            LIBXSMM_DNN_REGULAR_FILTER, LIBXSMM_DNN_GRADIENT_FILTER};
  float *buf[6];
  libxsmm_dnn_tensor *t[6];
  for (int k = 0; k < 6; k++) {
    libxsmm_dnn_tensor_datalayout *l = libxsmm_dnn_create_tensor_datalayout(h, types[k], &st);
    const size_t floats = libxsmm_dnn_get_tensor_elements(l, &st);
    buf[k] = libxsmm_aligned_malloc(floats * sizeof(float), 64);
    for (size_t i = 0; i < floats; i++) buf[k][i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    t[k] = libxsmm_dnn_link_tensor(l, buf[k], &st);
    libxsmm_dnn_bind_tensor(h, t[k], types[k]);
    libxsmm_dnn_destroy_tensor_datalayout(l);
  }
  const size_t scratch = libxsmm_dnn_get_scratch_size(h, LIBXSMM_DNN_COMPUTE_KIND_ALL, &st);
  void *scr = libxsmm_aligned_malloc(scratch + 64, 64);
  libxsmm_dnn_bind_scratch(h, LIBXSMM_DNN_COMPUTE_KIND_ALL, scr);
  /* The forward from NCHW data against the sums in double. */
  float *x = malloc(ni * sizeof *x), *w = malloc(nw * sizeof *w), *y = malloc(no * sizeof *y);
  for (size_t i = 0; i < ni; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  for (size_t i = 0; i < nw; i++) w[i] = (float)((i * 40503u) % 1000) / 500.0f - 1.0f;
  libxsmm_dnn_copyin_tensor(t[0], x, LIBXSMM_DNN_TENSOR_FORMAT_NCHW);
  libxsmm_dnn_copyin_tensor(t[4], w, LIBXSMM_DNN_TENSOR_FORMAT_KCRS);
  libxsmm_dnn_execute_st(h, LIBXSMM_DNN_COMPUTE_KIND_FWD, 0, 0);
  libxsmm_dnn_copyout_tensor(t[2], y, LIBXSMM_DNN_TENSOR_FORMAT_NCHW);
  double worst = 0.0;
  for (int i = 0; i < n; i++)
    for (int o = 0; o < L->k; o++)
      for (int p = 0; p < oh; p++)
        for (int q = 0; q < oh; q++) {
          double a = 0.0;
          for (int c = 0; c < L->c; c++)
            for (int r = 0; r < 3; r++)
              for (int s = 0; s < 3; s++)
                a += (double)x[(((size_t)i * L->c + c) * L->h + p * L->s + r) * L->h + q * L->s + s] *
                     w[((o * L->c + c) * 3 + r) * 3 + s];
          worst = fmax(worst, fabs(a - y[(((size_t)i * L->k + o) * oh + p) * oh + q]));
        }
  double conv_in = 1e30, conv_out = 1e30;
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    libxsmm_dnn_copyin_tensor(t[0], x, LIBXSMM_DNN_TENSOR_FORMAT_NCHW);
    conv_in = fmin(conv_in, now() - t0);
    t0 = now();
    libxsmm_dnn_copyout_tensor(t[2], y, LIBXSMM_DNN_TENSOR_FORMAT_NCHW);
    conv_out = fmin(conv_out, now() - t0);
  }
  /* The loops above, where the blocks are whole: checked, then timed. */
  const int bi = channel_block(h, LIBXSMM_DNN_REGULAR_INPUT), bo = channel_block(h, LIBXSMM_DNN_REGULAR_OUTPUT);
  double fast_in = -1.0, fast_out = -1.0;
  int same = 0;
  if (bi > 0 && bo > 0 && L->c % bi == 0 && L->k % bo == 0) {
    float *xb = malloc(ni * sizeof *xb), *yb = malloc(no * sizeof *yb);
    convert(xb, x, n, L->c, L->h * L->h, bi, 0);
    convert(yb, buf[2], n, L->k, oh * oh, bo, 1);
    same = memcmp(xb, buf[0], ni * sizeof *xb) == 0 && memcmp(yb, y, no * sizeof *yb) == 0;
    fast_in = fast_out = 1e30;
    for (int r = 0; r < 5; r++) {
      double t0 = now();
      convert(xb, x, n, L->c, L->h * L->h, bi, 0);
      fast_in = fmin(fast_in, now() - t0);
      t0 = now();
      convert(yb, buf[2], n, L->k, oh * oh, bo, 1);
      fast_out = fmin(fast_out, now() - t0);
    }
    free(xb), free(yb);
  }
  const double flops = 2.0 * n * L->k * oh * oh * L->c * 9;
  static const char *names[3] = {"fwd", "bwd-data", "bwd-weight"};
  static const libxsmm_dnn_compute_kind kinds[3] = {
      LIBXSMM_DNN_COMPUTE_KIND_FWD, LIBXSMM_DNN_COMPUTE_KIND_BWD, LIBXSMM_DNN_COMPUTE_KIND_UPD};
  for (int k = 0; k < 3; k++) {
    double best = 1e30;
    long a0 = atomic_load(&allocs);
    libxsmm_dnn_execute_st(h, kinds[k], 0, 0);
    const long per_call = atomic_load(&allocs) - a0;
    for (int r = 0; r < 20; r++) {
      const double t0 = now();
      libxsmm_dnn_execute_st(h, kinds[k], 0, 0);
      best = fmin(best, now() - t0);
    }
    printf("%-10s %-10s SPEED %6.1f GFLOP/s  ALLOC %ld  SCRATCH %.1f MiB%s", L->name, names[k],
           flops / best * 1e-9, per_call, (double)scratch / 1048576.0, k == 0 ? "" : "\n");
    if (k == 0)
      printf("  CHECK %.2g  CONVERT x %.3f ms, y %.3f ms; loops %.3f, %.3f%s (the forward %.3f ms)\n",
             worst, conv_in * 1e3, conv_out * 1e3, fast_in * 1e3, fast_out * 1e3,
             same ? "" : " (differ!)", best * 1e3);
  }
  free(x), free(w), free(y);
  libxsmm_dnn_release_scratch(h, LIBXSMM_DNN_COMPUTE_KIND_ALL);
  libxsmm_free(scr);
  for (int k = 0; k < 6; k++) {
    libxsmm_dnn_release_tensor(h, types[k]);
    libxsmm_dnn_destroy_tensor(t[k]);
    libxsmm_free(buf[k]);
  }
  libxsmm_dnn_destroy_conv_layer(h);
}

int main(void) {
  libxsmm_init();
  for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) run(&layers[i], 64);
  libxsmm_finalize();
  return 0;
}
