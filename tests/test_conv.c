/* The convolution ops beyond their finite differences (test_graph_grad.c):
 * fast kernels against the naive references, graph values against sums
 * computed here in double, the same bits on 1, 2 and 3 threads with no
 * allocation in sk_graph_run, and the shape errors. */
#include <omp.h>
#include <stdatomic.h>

#include "graph/internal.h"
#include "kernels/cpu/kernels.h"
#include "scorekit/scorekit.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define COUNT_LIBC_MALLOC 0
#else
/* Interpose the C allocator for the whole process (OpenMP too), as
 * test_graph_run.c does. */
#define COUNT_LIBC_MALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static atomic_long libc_allocs;
void *malloc(size_t n) {
  atomic_fetch_add(&libc_allocs, 1);
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  atomic_fetch_add(&libc_allocs, 1);
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  atomic_fetch_add(&libc_allocs, 1);
  return __libc_realloc(p, n);
}
#endif

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static float *randn(sk_rng *r, int64_t n) {
  float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
  sk_rng_normal(r, p, (size_t)n);
  return p;
}

static void absf_all(float *dst, const float *src, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = fabsf(src[i]);
}

/* Worst |fast − ref| / (eps · Σ|terms|) over every shape and kernel, for
 * the report line. */
static double worst_ratio;

/* |got − want| within a few roundings of a float sum whose terms have
 * absolute sum `mag` (the reference is exact to double rounding). */
static int close_to(const float *got, const float *want, const float *mag, int64_t n,
                    int64_t terms) {
  const double eps = 0x1p-24;
  for (int64_t i = 0; i < n; i++) {
    const double err = fabs((double)got[i] - want[i]), scale = eps * (mag[i] + 1e-30);
    if (err / scale > worst_ratio) worst_ratio = err / scale;
    if (!(err <= 4.0 * sqrt((double)terms + 1) * scale + 1e-30)) { /* NaN too */
      fprintf(stderr, "  element %lld: %.9g vs %.9g (|terms| %.3g, %lld terms)\n", (long long)i,
              got[i], want[i], mag[i], (long long)terms);
      return 0;
    }
  }
  return 1;
}

/* Scratch of n floats filled with NaNs and infinities (a kernel may read
 * only what it wrote), followed by 16 guards; scratch_done checks the guards
 * (no write past n) and frees it. */
static float *scratch_new(int64_t n) {
  float *scratch = malloc((size_t)(n + 16) * sizeof *scratch);
  for (int64_t i = 0; i < n; i++) scratch[i] = i % 3 ? NAN : -INFINITY;
  for (int i = 0; i < 16; i++) scratch[n + i] = 7.0f;
  return scratch;
}
static int scratch_done(float *scratch, int64_t n) {
  int ok = 1;
  for (int i = 0; i < 16; i++) ok &= scratch[n + i] == 7.0f;
  free(scratch);
  return ok;
}

/* Rows [r0, r1) of kernel k (0 forward, 1 data, 2 weight) on the direct
 * loops (gemm 0) or the products (gemm 1), in guarded scratch. */
static int run_kernel(int gemm, int k, float *out, const float *x, const float *y, const float *w,
                      const sk__conv *cv, int64_t r0, int64_t r1) {
  if (!gemm) {
    if (k == 0) sk__conv2d_rows(out, x, w, cv, r0, r1);
    if (k == 1) sk__conv2d_data_rows(out, y, w, cv, r0, r1);
    if (k == 2) sk__conv2d_weight_rows(out, x, y, cv, r0, r1);
    return 1;
  }
  const int64_t n = sk__conv_gemm_scratch(cv, k, r1 - r0, r0 % SK_SPLIT_ROWS == 0);
  float *scratch = scratch_new(n);
  const int ok = k == 0   ? sk__conv2d_gemm_rows(out, x, w, cv, r0, r1, scratch)
                 : k == 1 ? sk__conv2d_data_gemm_rows(out, y, w, cv, r0, r1, scratch)
                          : sk__conv2d_weight_gemm_rows(out, x, y, cv, r0, r1, scratch);
  return scratch_done(scratch, n) && ok;
}

/* One geometry's operands (q: n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh,
 * dw), their magnitudes, and the outputs of a check. */
typedef struct conv_case {
  sk__conv cv;
  int64_t nx, ny, nw;
  float *x, *w, *y, *ax, *aw, *ay, *fast, *split, *ref, *mag;
} conv_case;

static void case_make(conv_case *t, const int64_t *q, sk_rng *r) {
  sk__conv cv = {.n = q[0], .c = q[1], .h = q[2], .w = q[3], .o = q[4], .kh = q[5], .kw = q[6],
                 .sh = q[7], .sw = q[8], .ph = q[9], .pw = q[10], .dh = q[11], .dw = q[12]};
  cv.oh = out_size(cv.h, cv.kh, cv.sh, cv.ph, cv.dh);
  cv.ow = out_size(cv.w, cv.kw, cv.sw, cv.pw, cv.dw);
  t->cv = cv;
  t->nx = cv.n * cv.c * cv.h * cv.w, t->ny = cv.n * cv.o * cv.oh * cv.ow;
  t->nw = cv.o * cv.c * cv.kh * cv.kw;
  const int64_t most = SK_MAX(t->nx, SK_MAX(t->ny, t->nw));
  t->x = randn(r, t->nx), t->w = randn(r, t->nw), t->y = randn(r, t->ny);
  t->ax = malloc((size_t)t->nx * sizeof *t->ax), t->aw = malloc((size_t)t->nw * sizeof *t->aw);
  t->ay = malloc((size_t)t->ny * sizeof *t->ay);
  t->fast = malloc((size_t)most * sizeof *t->fast), t->split = malloc((size_t)most * sizeof *t->split);
  t->ref = malloc((size_t)most * sizeof *t->ref), t->mag = malloc((size_t)most * sizeof *t->mag);
  absf_all(t->ax, t->x, t->nx);
  absf_all(t->aw, t->w, t->nw);
  absf_all(t->ay, t->y, t->ny);
}

static void case_free(conv_case *t) {
  free(t->x), free(t->w), free(t->y), free(t->ax), free(t->aw), free(t->ay);
  free(t->fast), free(t->split), free(t->ref), free(t->mag);
}

/* The naive double sums of kernel k (0 forward, 1 data, 2 weight) into ref,
 * and of the operands' magnitudes into mag. */
static void case_ref(conv_case *t, int k) {
  const sk__conv *cv = &t->cv;
  if (k == 0) sk__conv2d_naive(t->ref, t->x, t->w, cv), sk__conv2d_naive(t->mag, t->ax, t->aw, cv);
  if (k == 1)
    sk__conv2d_data_naive(t->ref, t->y, t->w, cv), sk__conv2d_data_naive(t->mag, t->ay, t->aw, cv);
  if (k == 2)
    sk__conv2d_weight_naive(t->ref, t->x, t->y, cv), sk__conv2d_weight_naive(t->mag, t->ax, t->ay, cv);
}

/* Rows [r0, r1) of kernel k computed one way (what `way` means is the
 * runner's). */
typedef int (*conv_runner)(int way, int k, float *out, const float *x, const float *y,
                           const float *w, const sk__conv *cv, int64_t r0, int64_t r1);

/* Kernel k of t by run(way, ...) on all its rows (samples, or output
 * channels for the weight), and cut into ranges at 1, `mid` and 19: every
 * element written (NaNs first), within float rounding of case_ref's sums,
 * and the ranges the same bits as the whole call. */
static int case_check(conv_case *t, int k, int64_t mid, conv_runner run, int way) {
  const sk__conv *cv = &t->cv;
  const int64_t rows = k == 2 ? cv->o : cv->n, n = k == 0 ? t->ny : k == 1 ? t->nx : t->nw;
  const int64_t terms = k == 2 ? cv->n * cv->oh * cv->ow : k == 0 ? cv->c * cv->kh * cv->kw
                                                                  : cv->o * cv->kh * cv->kw;
  const int64_t cut[5] = {0, SK_MIN(1, rows), SK_MIN(mid, rows), SK_MIN(19, rows), rows};
  for (int64_t i = 0; i < n; i++) t->fast[i] = t->split[i] = NAN;
  int ok = 1;
  for (int part = -1; part < 4; part++) {
    const int64_t r0 = part < 0 ? 0 : cut[part], r1 = part < 0 ? rows : cut[part + 1];
    ok &= run(way, k, part < 0 ? t->fast : t->split, t->x, t->y, t->w, cv, r0, r1);
  }
  return ok && close_to(t->fast, t->ref, t->mag, n, terms) &&
         memcmp(t->fast, t->split, (size_t)n * sizeof *t->fast) == 0;
}

/* Every kernel, direct and as products, on many geometries (planes of one
 * chunk of positions and of several, output channels in whole and partial
 * blocks, strides, padding and dilation; for the products, blocks of
 * several samples cut by the splits and short of samples at the end, runs
 * of a large plane's positions, chunks of a long K, weight blocks of 16
 * channels cut by the splits, the weight of a single input channel): within float rounding of the naive double
 * sums, and split into uneven ranges of rows (samples, or output channels
 * for the weight) the same bits as one call. */
TEST(kernels_match_naive_and_split_exactly) {
  /* n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw */
  static const int64_t geo[][13] = {
      {2, 3, 5, 7, 4, 3, 3, 1, 1, 0, 0, 1, 1},   {2, 3, 5, 7, 4, 3, 3, 2, 2, 1, 1, 1, 1},
      {3, 2, 7, 5, 3, 3, 2, 2, 1, 1, 0, 1, 2},   {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
      {2, 5, 12, 12, 9, 3, 3, 1, 1, 1, 1, 1, 1}, {1, 2, 3, 600, 3, 1, 3, 1, 1, 0, 1, 1, 1},
      {2, 4, 11, 13, 5, 3, 3, 2, 3, 2, 2, 3, 2}, {2, 3, 10, 10, 2, 7, 7, 1, 1, 3, 3, 1, 1},
      {1, 2, 4, 4, 3, 6, 6, 1, 1, 1, 1, 1, 1},   {2, 2, 9, 9, 2, 2, 2, 4, 4, 0, 0, 1, 1},
      {9, 17, 6, 5, 19, 2, 3, 2, 2, 1, 1, 1, 1}, {3, 2, 5, 300, 17, 3, 3, 1, 1, 1, 1, 1, 1},
      {2, 3, 8, 8, 4, 3, 3, 3, 3, 4, 4, 1, 1},   {2, 3, 20, 20, 5, 3, 3, 1, 1, 1, 1, 1, 1},
      {2, 3, 27, 20, 4, 2, 2, 2, 2, 1, 0, 1, 1}, {3, 40, 17, 17, 20, 3, 3, 1, 1, 1, 1, 1, 1},
      {37, 6, 5, 5, 33, 3, 3, 2, 2, 0, 0, 1, 1}, {3, 1, 30, 30, 20, 3, 3, 1, 1, 1, 1, 1, 1},
      /* for the data pass by classes of input positions: a 1 × 1 kernel
       * at stride 2 (classes of no taps); an input row smaller than the
       * stride (empty classes); a last input row no window reaches (12 →
       * 5); odd and even planes of one sample per block, one with classes
       * past CG_MAX_COLS positions; blocks of samples, the batch not a
       * multiple of them; one sample of a one-row plane; strides 2 and 3,
       * across different from down; more output channels than the
       * classes serve by default */
      {5, 4, 8, 7, 6, 1, 1, 2, 2, 0, 0, 1, 1},   {2, 3, 1, 7, 4, 1, 3, 2, 2, 0, 1, 1, 1},
      {3, 4, 12, 12, 6, 3, 3, 2, 2, 0, 0, 1, 1}, {2, 3, 26, 27, 5, 3, 3, 2, 2, 0, 1, 1, 1},
      {2, 2, 41, 40, 3, 3, 3, 2, 2, 1, 1, 1, 1}, {19, 5, 9, 8, 7, 3, 3, 2, 2, 1, 0, 1, 1},
      {3, 2, 10, 11, 3, 4, 5, 2, 3, 1, 2, 1, 1}, {2, 3, 13, 13, 3, 5, 5, 3, 3, 2, 2, 1, 1},
      {17, 4, 6, 6, 70, 3, 3, 2, 2, 0, 0, 1, 1}, {1, 3, 3, 5, 4, 3, 3, 2, 2, 0, 1, 1, 1},
      /* for col2im row by row (stride 2 across, whole samples, rows of at
       * most 32 input columns): 32 columns and 16 output columns, a kernel
       * of 5 with padding 2, stride 3 and dilation 2 down, blocks of 4
       * samples of 5 × 5 output planes, the batch not a multiple of 4 */
      {2, 3, 17, 32, 4, 3, 3, 2, 2, 1, 1, 1, 1}, {2, 2, 16, 29, 3, 5, 5, 2, 2, 2, 2, 1, 1},
      {2, 2, 19, 24, 3, 3, 3, 3, 2, 1, 0, 2, 1}, {7, 3, 9, 10, 5, 3, 3, 2, 2, 1, 1, 1, 1},
  };
  sk__kernels_init();
  sk_rng r = sk_rng_make(5, 0);
  worst_ratio = 0.0;
  int gemm_ran = 0;
  for (size_t s = 0; s < sizeof geo / sizeof geo[0]; s++) {
    conv_case t;
    case_make(&t, geo[s], &r);
    CHECK(t.cv.oh >= 1 && t.cv.ow >= 1);
    for (int k = 0; k < 3; k++) {
      case_ref(&t, k);
      /* The data kernel's products twice: by col2im, and by classes of
       * input positions wherever they apply. */
      for (int way = 0; way < 1 + sk__conv_gemm_ok(&t.cv) * (k == 1 ? 2 : 1); way++) {
        const int gemm = way > 0;
        sk__conv_data_classes(way == 2);
        gemm_ran |= gemm;
        if (!case_check(&t, k, 8, run_kernel, gemm)) {
          fprintf(stderr, "geometry %zu, kernel %d (0 forward, 1 data, 2 weight), %s\n", s, k,
                  !gemm ? "direct" : way == 2 ? "products by classes" : "products");
          CHECK(0);
        }
      }
      sk__conv_data_classes(-1);
    }
    case_free(&t);
  }
  printf("  worst |fast - naive| = %.2f eps x sum of |terms|; products %s\n", worst_ratio,
         gemm_ran ? "checked" : "not available (no JIT)");
}

/* A tiny case through the graph, against the defining sums written here in
 * double: the convolution, its transpose as a scatter of every input term
 * to the outputs it reaches, and the weight gradient. */
enum { TN = 2, TC = 2, TO = 3, TH = 5, TW = 6, TK = 3 };

TEST(values_match_direct_sums) {
  const int s = 2, p = 1;
  const int64_t oh = out_size(TH, TK, s, p, 1), ow = out_size(TW, TK, s, p, 1); /* 3 × 3 */
  const sk_conv2d_opts opts = {{s, s}, {p, p}, {1, 1}, {0, 0}};
  /* The transpose of x2 (N, O, 3, 3): (N, C, 6, 6) with output padding 1. */
  const sk_conv2d_opts topts = {{s, s}, {p, p}, {1, 1}, {1, 1}};
  const int64_t th = (oh - 1) * s - 2 * p + (TK - 1) + 1 + 1, tw = (ow - 1) * s - 2 * p + (TK - 1) + 1 + 1;
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 4, (int64_t[]){TN, TC, TH, TW});
  sk_node w = sk_input(g, "w", 4, (int64_t[]){TO, TC, TK, TK});
  sk_node x2 = sk_input(g, "x2", 4, (int64_t[]){TN, TO, oh, ow});
  sk_node y = sk_conv2d(g, x, w, &opts), t = sk_conv_transpose2d(g, x2, w, &topts);
  sk_node dw = sk_conv2d_weight(g, x, x2, TK, TK, &opts);
  CHECK_OK(sk_graph_status(g));
  CHECK(sk_node_shape(g, y)[2] == oh && sk_node_shape(g, y)[3] == ow);
  CHECK(sk_node_shape(g, t)[2] == th && sk_node_shape(g, t)[3] == tw);
  CHECK_OK(sk_graph_compile(g, 3, (sk_node[]){y, t, dw}));
  sk_rng r = sk_rng_make(9, 0);
  float *X = sk_graph_data(g, x), *W = sk_graph_data(g, w), *X2 = sk_graph_data(g, x2);
  sk_rng_normal(&r, X, TN * TC * TH * TW);
  sk_rng_normal(&r, W, TO * TC * TK * TK);
  sk_rng_normal(&r, X2, (size_t)(TN * TO * oh * ow));
  CHECK_OK(sk_graph_run(g));
  const float *Y = sk_graph_data(g, y), *T = sk_graph_data(g, t), *DW = sk_graph_data(g, dw);
  double want_t[TN][TC][8][8] = {{{{0}}}}, want_w[TO][TC][TK][TK] = {{{{0}}}};
  double worst = 0.0;
  for (int n = 0; n < TN; n++)
    for (int o = 0; o < TO; o++)
      for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++) {
          double sum = 0.0;
          for (int c = 0; c < TC; c++)
            for (int a = 0; a < TK; a++)
              for (int b = 0; b < TK; b++) {
                const int h = i * s - p + a, v = j * s - p + b;
                const double wv = W[((o * TC + c) * TK + a) * TK + b];
                const double x2v = X2[((n * TO + o) * oh + i) * ow + j];
                /* The transpose scatters x2 through w to the positions the
                 * convolution reads, padding included: they are its output,
                 * cropped by the padding. */
                if (h >= 0 && h < th && v >= 0 && v < tw) want_t[n][c][h][v] += wv * x2v;
                if (h < 0 || h >= TH || v < 0 || v >= TW) continue;
                const double xv = X[((n * TC + c) * TH + h) * TW + v];
                sum += wv * xv;
                want_w[o][c][a][b] += x2v * xv;
              }
          const double got = Y[((n * TO + o) * oh + i) * ow + j];
          worst = fmax(worst, fabs(got - sum) / (1 + fabs(sum)));
          CHECK_NEAR(got, sum, 1e-5 * (1 + fabs(sum)));
        }
  for (int n = 0; n < TN; n++)
    for (int c = 0; c < TC; c++)
      for (int h = 0; h < th; h++)
        for (int v = 0; v < tw; v++) {
          const double got = T[((n * TC + c) * th + h) * tw + v], want = want_t[n][c][h][v];
          worst = fmax(worst, fabs(got - want) / (1 + fabs(want)));
          CHECK_NEAR(got, want, 1e-5 * (1 + fabs(want)));
        }
  for (int o = 0; o < TO; o++)
    for (int c = 0; c < TC; c++)
      for (int a = 0; a < TK; a++)
        for (int b = 0; b < TK; b++) {
          const double got = DW[((o * TC + c) * TK + a) * TK + b], want = want_w[o][c][a][b];
          worst = fmax(worst, fabs(got - want) / (1 + fabs(want)));
          CHECK_NEAR(got, want, 1e-5 * (1 + fabs(want)));
        }
  printf("  worst relative error against the double sums %.3g\n", worst);
  sk_graph_free(g);
}

/* A convolutional network at a size that runs split over the threads
 * (batch 64, 8 channels, 12 × 12; 24 channels in the middle so that the
 * weight gradients split too): L = Σ c ⊙ f(x), G = Σ v ⊙ ∂L/∂x and their
 * gradients with respect to x and every weight, first and second order. */
enum { BN = 64, BC = 8, BM = 24, BH = 12 };
static float w1[BC * BC * 9], b1[BC], w2[BM * BC * 9], w3[BM * BC * 9];

typedef struct conv_net {
  sk_graph *g;
  sk_node x, c, v;
  sk_node out[10];
} conv_net;

static int build_conv_net(conv_net *m) {
  static const sk_conv2d_opts same = {{1, 1}, {1, 1}, {1, 1}, {0, 0}};
  static const sk_conv2d_opts down = {{2, 2}, {1, 1}, {1, 1}, {0, 0}};
  static const sk_conv2d_opts up = {{2, 2}, {1, 1}, {1, 1}, {1, 1}};
  sk_graph *g = m->g = sk_graph_new();
  m->x = sk_input(g, "x", 4, (int64_t[]){BN, BC, BH, BH});
  m->c = sk_input(g, "c", 4, (int64_t[]){BN, BC, BH, BH});
  m->v = sk_input(g, "v", 4, (int64_t[]){BN, BC, BH, BH});
  sk_node p1 = sk_param(g, "w1", 4, (int64_t[]){BC, BC, 3, 3}, w1);
  sk_node pb = sk_param(g, "b1", 3, (int64_t[]){BC, 1, 1}, b1);
  sk_node p2 = sk_param(g, "w2", 4, (int64_t[]){BM, BC, 3, 3}, w2);
  sk_node p3 = sk_param(g, "w3", 4, (int64_t[]){BM, BC, 3, 3}, w3);
  sk_node h1 = sk_silu(g, sk_add(g, sk_conv2d(g, m->x, p1, &same), pb));
  sk_node h2 = sk_tanh(g, sk_conv2d(g, h1, p2, &down));          /* (64, 24, 6, 6) */
  sk_node h3 = sk_add(g, sk_conv_transpose2d(g, h2, p3, &up), m->x); /* (64, 8, 12, 12) */
  sk_node L = sk_sum_all(g, sk_mul(g, sk_softplus(g, h3), m->c));
  sk_node wrt[5] = {m->x, p1, pb, p2, p3}, d1[5], d2[3];
  if (sk_grad(g, L, SK_NONE, 5, wrt, d1) != SK_OK) return 0;
  sk_node G = sk_sum_all(g, sk_mul(g, d1[0], m->v));
  if (sk_grad(g, G, SK_NONE, 3, (sk_node[]){m->x, p1, p3}, d2) != SK_OK) return 0;
  const sk_node out[10] = {L, G, d1[0], d1[1], d1[2], d1[3], d1[4], d2[0], d2[1], d2[2]};
  memcpy(m->out, out, sizeof out);
  return sk_graph_compile(g, 10, m->out) == SK_OK;
}

static float *net_inputs(void) {
  float *in = malloc(3 * (size_t)BN * BC * BH * BH * sizeof *in);
  sk_rng r = sk_rng_make(21, 0);
  sk_rng_normal(&r, in, 3 * (size_t)BN * BC * BH * BH);
  sk_rng_normal(&r, w1, sizeof w1 / sizeof *w1);
  sk_rng_normal(&r, b1, BC);
  sk_rng_normal(&r, w2, sizeof w2 / sizeof *w2);
  sk_rng_normal(&r, w3, sizeof w3 / sizeof *w3);
  for (size_t i = 0; i < sizeof w1 / sizeof *w1; i++) w1[i] *= 0.2f;
  for (size_t i = 0; i < sizeof w2 / sizeof *w2; i++) w2[i] *= 0.15f, w3[i] *= 0.15f;
  return in;
}

static void set_inputs(conv_net *m, const float *in) {
  const size_t n = (size_t)BN * BC * BH * BH;
  memcpy(sk_graph_data(m->g, m->x), in, n * sizeof *in);
  memcpy(sk_graph_data(m->g, m->c), in + n, n * sizeof *in);
  memcpy(sk_graph_data(m->g, m->v), in + 2 * n, n * sizeof *in);
}

/* On the products (where the JIT runs: their scratch planned for every
 * convolution) and on the direct loops. */
TEST(same_bits_on_1_2_and_3_threads) {
  float *in = net_inputs();
  sk__kernels_init();
  /* The products with the data pass by col2im (way 0) and by classes of
   * input positions (way 1), then the direct loops (way 2). */
  for (int way = sk__jit_available() ? 0 : 2; way < 3; way++) {
    const int direct = way == 2;
    sk__conv_force_direct(direct);
    sk__conv_data_classes(way == 1);
    float *ref[10] = {0};
    int64_t sizes[10];
    for (int threads = 1; threads <= 3; threads++) {
      sk_set_num_threads(threads);
      conv_net m;
      CHECK(build_conv_net(&m));
      sk_graph *g = m.g;
      /* The path this test is for: parallel, convolutions split by sample,
       * the middle weight gradient by output channel. */
      CHECK(g->parallel);
      int split_conv = 0, split_weight = 0, convs = 0, with_scratch = 0;
      for (int s = 0; s < g->n_exec; s++) {
        const sk__node *nd = &g->nodes[g->exec[s]];
        if (sk__op_flops_kind(nd->op) != SK__FLOPS_CONV) continue;
        convs++;
        with_scratch += g->steps[s].scratch != NULL;
        if (nd->op != SK_OP_CONV2D_WEIGHT && g->steps[s].units == BN) split_conv++;
        if (nd->op == SK_OP_CONV2D_WEIGHT && g->steps[s].units == BM) split_weight++;
      }
      CHECK(split_conv >= 4 && split_weight >= 2);
      CHECK_EQ_INT(with_scratch, direct ? 0 : convs);
      set_inputs(&m, in);
      CHECK_OK(sk_graph_run(g));
      for (int k = 0; k < 10; k++) {
        const float *o = sk_graph_data(g, m.out[k]);
        sizes[k] = sk_node_numel(g, m.out[k]);
        if (threads == 1) {
          ref[k] = malloc((size_t)sizes[k] * sizeof *ref[k]);
          memcpy(ref[k], o, (size_t)sizes[k] * sizeof *o);
          for (int64_t i = 0; i < sizes[k]; i++) CHECK(isfinite(o[i]));
        } else if (memcmp(ref[k], o, (size_t)sizes[k] * sizeof *o) != 0) {
          fprintf(stderr, "output %d differs on %d threads (%s)\n", k, threads,
                  direct ? "direct" : way ? "products, data by classes" : "products");
          CHECK(0);
        }
      }
      sk_graph_free(g);
    }
    for (int k = 0; k < 10; k++) free(ref[k]);
  }
  sk__conv_force_direct(0);
  sk__conv_data_classes(-1);
  free(in);
  sk_set_num_threads(2);
}

TEST(run_does_not_allocate) {
  float *in = net_inputs();
  conv_net m;
  CHECK(build_conv_net(&m));
  set_inputs(&m, in);
  CHECK_OK(sk_graph_run(m.g)); /* warm-up: the thread pool starts here */
  uint64_t before = sk_debug_alloc_count();
#if COUNT_LIBC_MALLOC
  CHECK(atomic_load(&libc_allocs) > 0); /* the interposition is live */
  long libc_before = atomic_load(&libc_allocs);
#endif
  for (int i = 0; i < 3; i++) CHECK_OK(sk_graph_run(m.g));
  CHECK_EQ_INT(sk_debug_alloc_count(), before);
#if COUNT_LIBC_MALLOC
  CHECK_EQ_INT(atomic_load(&libc_allocs), libc_before);
#endif
  sk_graph_free(m.g);
  free(in);
}

/* The image composites against their definitions in double: group
 * normalisation (biased variance, as PyTorch), nearest upsampling and
 * average pooling. */
TEST(image_composites_match_definitions) {
  enum { N = 2, C = 6, H = 4, W = 6, G = 3, F = 2 };
  const float eps = 1e-5f;
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 4, (int64_t[]){N, C, H, W});
  sk_node ga = sk_input(g, "gamma", 1, (int64_t[]){C}), be = sk_input(g, "beta", 1, (int64_t[]){C});
  sk_node gn = sk_group_norm(g, x, G, ga, be, eps);
  sk_node up = sk_upsample_nearest2d(g, x, F), pool = sk_avg_pool2d(g, x, F);
  CHECK_OK(sk_graph_status(g));
  CHECK(sk_node_shape(g, up)[2] == F * H && sk_node_shape(g, up)[3] == F * W);
  CHECK(sk_node_shape(g, pool)[2] == H / F && sk_node_shape(g, pool)[3] == W / F);
  CHECK_OK(sk_graph_compile(g, 3, (sk_node[]){gn, up, pool}));
  sk_rng r = sk_rng_make(4, 0);
  float *X = sk_graph_data(g, x), *GA = sk_graph_data(g, ga), *BE = sk_graph_data(g, be);
  sk_rng_normal(&r, X, N * C * H * W);
  for (int i = 0; i < N * C * H * W; i++) X[i] = 3.0f * X[i] + 1.0f;
  sk_rng_normal(&r, GA, C);
  sk_rng_normal(&r, BE, C);
  CHECK_OK(sk_graph_run(g));
  const float *GN = sk_graph_data(g, gn), *UP = sk_graph_data(g, up), *PO = sk_graph_data(g, pool);
  const int per = C / G * H * W;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < G; k++) {
      const float *xg = X + (n * C + k * (C / G)) * H * W;
      double mean = 0.0, var = 0.0;
      for (int i = 0; i < per; i++) mean += xg[i];
      mean /= per;
      for (int i = 0; i < per; i++) var += (xg[i] - mean) * (xg[i] - mean);
      var /= per;
      for (int i = 0; i < per; i++) {
        const int c = k * (C / G) + i / (H * W);
        const double want = (xg[i] - mean) / sqrt(var + eps) * GA[c] + BE[c];
        CHECK_NEAR(GN[(n * C + k * (C / G)) * H * W + i], want, 1e-5 * (1 + fabs(want)));
      }
    }
  for (int nc = 0; nc < N * C; nc++)
    for (int h = 0; h < F * H; h++)
      for (int w = 0; w < F * W; w++)
        CHECK(UP[(nc * F * H + h) * F * W + w] == X[(nc * H + h / F) * W + w / F]);
  for (int nc = 0; nc < N * C; nc++)
    for (int h = 0; h < H / F; h++)
      for (int w = 0; w < W / F; w++) {
        double want = 0.0;
        for (int a = 0; a < F; a++)
          for (int b = 0; b < F; b++) want += X[(nc * H + h * F + a) * W + w * F + b];
        want /= F * F;
        CHECK_NEAR(PO[(nc * (H / F) + h) * (W / F) + w], want, 1e-6 * (1 + fabs(want)));
      }
  sk_graph_free(g);

  g = sk_graph_new(); /* channels not a multiple of the groups; gamma of the wrong size */
  x = sk_input(g, "x", 4, (int64_t[]){N, C, H, W});
  CHECK(sk_group_norm(g, x, 4, SK_NONE, SK_NONE, eps) == SK_NONE);
  CHECK(sk_graph_status(g) == SK_ERR_SHAPE);
  sk_graph_free(g);
  g = sk_graph_new();
  x = sk_input(g, "x", 4, (int64_t[]){N, C, H, W});
  ga = sk_input(g, "gamma", 1, (int64_t[]){C + 1});
  CHECK(sk_group_norm(g, x, G, ga, SK_NONE, eps) == SK_NONE);
  CHECK(sk_graph_compile(g, 1, &x) == SK_ERR_SHAPE);
  CHECK(strstr(sk_last_error(), "group_norm") && strstr(sk_last_error(), "(7)"));
  sk_graph_free(g);
}

/* silu(group_norm(x + d)) with the shift d (N, C, 1, 1) fused is the add
 * followed by the unshifted op, bit for bit: the value and its gradients
 * with respect to x, d, gamma and beta; the gradient of Σ v ⊙ ∂L/∂x with
 * respect to x and d to 1e-5. Each the same bits on 1, 2 and 3 threads (40 samples: split), on planes
 * of both of the kernel's paths (10 × 10, and the short 5 × 5 and 2 × 2,
 * whose length the kernel spells out), with no allocation in sk_graph_run. */
enum { SN = 40, SC = 16, SG = 4, S_OUTS = 14 };
static sk_graph *shift_graph(int64_t side, sk_node in[6], sk_node out[S_OUTS]) {
  sk_graph *g = sk_graph_new();
  const int64_t xs[4] = {SN, SC, side, side}, ds[4] = {SN, SC, 1, 1}, cs[1] = {SC};
  sk_node x = in[0] = sk_input(g, "x", 4, xs), d = in[1] = sk_input(g, "d", 4, ds);
  sk_node ga = in[2] = sk_input(g, "gamma", 1, cs), be = in[3] = sk_input(g, "beta", 1, cs);
  sk_node c = in[4] = sk_input(g, "c", 4, xs), v = in[5] = sk_input(g, "v", 4, xs);
  for (int fused = 0; fused < 2; fused++) {
    sk_node y = fused ? sk_group_norm_silu_shift(g, x, d, SG, ga, be, 1e-5f)
                      : sk_group_norm_silu(g, sk_add(g, x, d), SG, ga, be, 1e-5f);
    sk_node L = sk_sum_all(g, sk_mul(g, y, c)), d1[4], d2[2];
    if (sk_grad(g, L, SK_NONE, 4, (sk_node[]){x, d, ga, be}, d1) != SK_OK) break;
    sk_node G = sk_sum_all(g, sk_mul(g, d1[0], v));
    if (sk_grad(g, G, SK_NONE, 2, (sk_node[]){x, d}, d2) != SK_OK) break;
    const sk_node o[7] = {y, d1[0], d1[1], d1[2], d1[3], d2[0], d2[1]};
    memcpy(out + 7 * fused, o, sizeof o);
  }
  if (sk_graph_compile(g, S_OUTS, out) != SK_OK) {
    sk_graph_free(g);
    return NULL;
  }
  return g;
}

TEST(group_norm_silu_shift_is_the_add_fused) {
  for (int64_t side = 10; side >= 2; side = side == 10 ? 5 : side - 3) {
    float *ref[S_OUTS] = {0};
    for (int threads = 1; threads <= 3; threads++) {
      sk_set_num_threads(threads);
      sk_node in[6], out[S_OUTS];
      sk_graph *g = shift_graph(side, in, out);
      CHECK(g != NULL);
      if (!g) break;
      /* The fused ops with a shift (their last input), split by sample,
       * each with scratch. */
      int shifted = 0;
      for (int s = 0; s < g->n_exec; s++) {
        const sk__node *nd = &g->nodes[g->exec[s]];
        const int last = sk__op_arity(nd->op) - 1;
        if (last < 2 || nd->in[last] == SK_NONE) continue;
        shifted++;
        CHECK(g->steps[s].units == SN && g->steps[s].scratch != NULL);
      }
      CHECK(shifted >= 4);
      sk_rng r = sk_rng_make(77, 0);
      for (int k = 0; k < 6; k++) {
        float *p = sk_graph_data(g, in[k]);
        const size_t n = (size_t)sk_node_numel(g, in[k]);
        sk_rng_normal(&r, p, n);
        for (size_t i = 0; k == 0 && i < n; i++) p[i] = 2.0f * p[i] + 0.5f;
      }
      CHECK_OK(sk_graph_run(g)); /* the thread pool starts */
      uint64_t before = sk_debug_alloc_count();
#if COUNT_LIBC_MALLOC
      long libc_before = atomic_load(&libc_allocs);
#endif
      CHECK_OK(sk_graph_run(g));
      CHECK_EQ_INT(sk_debug_alloc_count(), before);
#if COUNT_LIBC_MALLOC
      CHECK_EQ_INT(atomic_load(&libc_allocs), libc_before);
#endif
      for (int k = 0; k < 7; k++) {
        const size_t bytes = (size_t)sk_node_numel(g, out[k]) * sizeof(float);
        const float *unfused = sk_graph_data(g, out[k]), *fused = sk_graph_data(g, out[7 + k]);
        /* The second order sums d's terms in another order: close, not
         * the same bits. */
        double worst = 0.0;
        for (size_t i = 0; i < bytes / sizeof(float); i++)
          worst = fmax(worst, fabs((double)fused[i] - unfused[i]) / (1.0 + fabs(unfused[i])));
        if (k < 5 ? memcmp(unfused, fused, bytes) != 0 : worst > 1e-5) {
          fprintf(stderr, "side %lld, output %d: fused differs from the add on %d threads (%.3g)\n",
                  (long long)side, k, threads, worst);
          CHECK(0);
        }
        if (threads == 1) {
          ref[k] = malloc(bytes);
          memcpy(ref[k], fused, bytes);
          for (size_t i = 0; i < bytes / sizeof(float); i++) CHECK(isfinite(fused[i]));
        } else if (memcmp(ref[k], fused, bytes) != 0) {
          fprintf(stderr, "side %lld, output %d differs on %d threads\n", (long long)side, k,
                  threads);
          CHECK(0);
        }
      }
      sk_graph_free(g);
    }
    for (int k = 0; k < S_OUTS; k++) free(ref[k]);
  }
  sk_set_num_threads(2);
}

/* silu(group_norm(x (+ d))) and its gradients as the fused ops give them
 * against the composite ops, on short planes whose groups the kernel takes
 * a block of groups at a time: 32 groups of 3 channels of 7 × 7, in blocks
 * of 13, 13 and 6. */
TEST(group_norm_silu_short_planes_match_composite) {
  enum { N = 3, C = 96, H = 7, G = 32 };
  for (int shifted = 0; shifted < 2; shifted++) {
    sk_graph *g = sk_graph_new();
    const int64_t xs[4] = {N, C, H, H};
    sk_node x = sk_input(g, "x", 4, xs), c = sk_input(g, "c", 4, xs);
    sk_node d = sk_input(g, "d", 4, (int64_t[]){N, C, 1, 1});
    sk_node ga = sk_input(g, "gamma", 1, (int64_t[]){C}), be = sk_input(g, "beta", 1, (int64_t[]){C});
    sk_node out[10];
    for (int fused = 0; fused < 2; fused++) {
      sk_node y = fused ? sk_group_norm_silu_shift(g, x, shifted ? d : SK_NONE, G, ga, be, 1e-5f)
                        : sk_silu(g, sk_group_norm(g, shifted ? sk_add(g, x, d) : x, G, ga, be, 1e-5f));
      sk_node dx[4];
      CHECK_OK(sk_grad(g, sk_sum_all(g, sk_mul(g, y, c)), SK_NONE, 4, (sk_node[]){x, ga, be, d}, dx));
      out[5 * fused] = y;
      memcpy(out + 5 * fused + 1, dx, sizeof dx);
    }
    CHECK_OK(sk_graph_compile(g, 10, out));
    sk_rng r = sk_rng_make(5, 0);
    const sk_node ins[5] = {x, c, d, ga, be};
    for (int k = 0; k < 5; k++) /* d, unread unshifted, has no buffer then */
      if (k != 2 || shifted)
        sk_rng_normal(&r, sk_graph_data(g, ins[k]), (size_t)sk_node_numel(g, ins[k]));
    CHECK_OK(sk_graph_run(g));
    for (int k = 0; k < 5; k++) {
      const float *want = sk_graph_data(g, out[k]), *got = sk_graph_data(g, out[5 + k]);
      double worst = 0.0;
      for (int64_t i = 0; i < sk_node_numel(g, out[k]); i++)
        worst = fmax(worst, fabs((double)got[i] - want[i]) / (1.0 + fabs(want[i])));
      if (worst > 2e-5) {
        fprintf(stderr, "shift %d, output %d: fused %.3g from the composite\n", shifted, k, worst);
        CHECK(0);
      }
    }
    sk_graph_free(g);
  }
}

/* A shift that is not one value per sample and channel is a named shape
 * error. */
TEST(group_norm_silu_shift_checks_its_shape) {
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 4, (int64_t[]){2, 4, 3, 3});
  sk_node ga = sk_input(g, "gamma", 1, (int64_t[]){4}), be = sk_input(g, "beta", 1, (int64_t[]){4});
  sk_node d = sk_input(g, "d", 4, (int64_t[]){2, 4, 3, 1});
  CHECK(sk_group_norm_silu_shift(g, x, d, 2, ga, be, 1e-5f) == SK_NONE);
  CHECK(sk_graph_status(g) == SK_ERR_SHAPE);
  CHECK(strstr(sk__graph_error(g), "group_norm_silu") && strstr(sk__graph_error(g), "(2, 4, 3, 1)"));
  sk_graph_free(g);
  g = sk_graph_new();
  x = sk_input(g, "x", 4, (int64_t[]){2, 4, 3, 3});
  ga = sk_input(g, "gamma", 1, (int64_t[]){4}), be = sk_input(g, "beta", 1, (int64_t[]){4});
  d = sk_input(g, "d", 4, (int64_t[]){1, 4, 1, 1});
  CHECK(sk_group_norm_silu_shift(g, x, d, 2, ga, be, 1e-5f) == SK_NONE);
  CHECK(sk_graph_status(g) == SK_ERR_SHAPE);
  sk_graph_free(g);
}

/* sk_graph_flops counts 2 per multiply-add of each of the three ops. */
TEST(flops_count_multiply_adds) {
  static const sk_conv2d_opts o = {{2, 1}, {1, 0}, {1, 1}, {0, 0}};
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 4, (int64_t[]){2, 3, 7, 6});
  sk_node w = sk_input(g, "w", 4, (int64_t[]){4, 3, 3, 2});
  sk_node y = sk_conv2d(g, x, w, &o); /* (2, 4, 4, 5) */
  sk_node t = sk_conv_transpose2d(g, y, w, &(sk_conv2d_opts){{2, 1}, {1, 0}, {1, 1}, {0, 0}});
  sk_node dw = sk_conv2d_weight(g, x, y, 3, 2, &o);
  CHECK_OK(sk_graph_status(g));
  CHECK(sk_node_shape(g, y)[2] == 4 && sk_node_shape(g, y)[3] == 5);
  CHECK(sk_node_shape(g, t)[2] == 7 && sk_node_shape(g, t)[3] == 6);
  CHECK_OK(sk_graph_compile(g, 3, (sk_node[]){y, t, dw}));
  const double macs = 2.0 * 4 * 4 * 5 * 3 * 3 * 2; /* per op: N·O·OH·OW·C·KH·KW */
  CHECK_NEAR(sk_graph_flops(g), 3 * 2 * macs, 0);
  sk_graph_free(g);
}

/* A bad geometry is a sticky shape error that names the op and the shapes. */
static int fails_with(sk_graph *g, sk_node n, const char *op, const char *s1, const char *s2) {
  if (n != SK_NONE || sk_graph_status(g) != SK_ERR_SHAPE) return 0;
  sk_node later = sk_exp(g, n);
  if (later != SK_NONE) return 0;
  sk_node in = 0;
  if (sk_graph_compile(g, 1, &in) != SK_ERR_SHAPE) return 0;
  const char *msg = sk_last_error();
  const int ok = strstr(msg, op) && strstr(msg, s1) && (!s2 || strstr(msg, s2));
  if (!ok) fprintf(stderr, "  message: %s\n", msg);
  return ok;
}

TEST(bad_geometry_is_a_named_shape_error) {
  const int64_t xs[4] = {2, 3, 5, 7}, ws[4] = {4, 2, 3, 3}, ok_w[4] = {4, 3, 3, 3};
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 4, xs), w = sk_input(g, "w", 4, ws);
  CHECK(fails_with(g, sk_conv2d(g, x, w, NULL), "conv2d", "(2, 3, 5, 7)", "(4, 2, 3, 3)"));
  sk_graph_free(g);

  g = sk_graph_new(); /* 3 × 3 dilated by 3 spans 7 rows; 5 rows padded by 0 */
  x = sk_input(g, "x", 4, xs), w = sk_input(g, "w", 4, ok_w);
  CHECK(fails_with(g, sk_conv2d(g, x, w, &(sk_conv2d_opts){.dilation = {3, 1}}), "conv2d",
                   "(2, 3, 5, 7)", "larger"));
  sk_graph_free(g);

  g = sk_graph_new();
  x = sk_input(g, "x", 4, (int64_t[]){2, 3, 2, 2}), w = sk_input(g, "w", 4, ok_w);
  CHECK(fails_with(g, sk_conv2d(g, x, w, NULL), "conv2d", "(2, 3, 2, 2)", "larger"));
  sk_graph_free(g);

  g = sk_graph_new();
  x = sk_input(g, "x", 4, xs), w = sk_input(g, "w", 4, ok_w);
  CHECK(fails_with(g, sk_conv2d(g, x, w, &(sk_conv2d_opts){.stride = {-1, 1}}), "conv2d",
                   "stride (-1, 1)", "(2, 3, 5, 7)"));
  sk_graph_free(g);

  g = sk_graph_new();
  x = sk_input(g, "x", 4, xs), w = sk_input(g, "w", 4, ok_w);
  CHECK(fails_with(g, sk_conv2d(g, x, w, &(sk_conv2d_opts){.padding = {0, -2}}), "conv2d",
                   "padding (0, -2)", "(4, 3, 3, 3)"));
  sk_graph_free(g);

  g = sk_graph_new(); /* a transpose's weight is (in channels, out channels, ...) */
  x = sk_input(g, "x", 4, (int64_t[]){2, 3, 4, 4}), w = sk_input(g, "w", 4, ws);
  CHECK(fails_with(g, sk_conv_transpose2d(g, x, w, NULL), "conv_transpose2d", "(2, 3, 4, 4)",
                   "(4, 2, 3, 3)"));
  sk_graph_free(g);

  g = sk_graph_new();
  x = sk_input(g, "x", 4, (int64_t[]){2, 4, 4, 4}), w = sk_input(g, "w", 4, ws);
  CHECK(fails_with(g, sk_conv_transpose2d(g, x, w, &(sk_conv2d_opts){.stride = {2, 2}, .output_padding = {2, 0}}),
                   "conv_transpose2d", "output padding (2, 0)", "(2, 4, 4, 4)"));
  sk_graph_free(g);

  g = sk_graph_new(); /* output padding is the transpose's alone */
  x = sk_input(g, "x", 4, xs), w = sk_input(g, "w", 4, ok_w);
  CHECK(fails_with(g, sk_conv2d(g, x, w, &(sk_conv2d_opts){.stride = {2, 2}, .output_padding = {1, 1}}),
                   "conv2d", "output padding", "(2, 3, 5, 7)"));
  sk_graph_free(g);

  g = sk_graph_new(); /* an output gradient of the wrong size */
  x = sk_input(g, "x", 4, xs);
  sk_node dy = sk_input(g, "dy", 4, (int64_t[]){2, 4, 3, 4});
  CHECK(fails_with(g, sk_conv2d_weight(g, x, dy, 3, 3, NULL), "conv2d_weight", "(2, 4, 3, 4)",
                   "(2, 3, 5, 7)"));
  sk_graph_free(g);

  g = sk_graph_new();
  x = sk_input(g, "x", 3, (int64_t[]){3, 5, 7}), w = sk_input(g, "w", 4, ok_w);
  CHECK(fails_with(g, sk_conv2d(g, x, w, NULL), "conv2d", "(3, 5, 7)", "4-D"));
  sk_graph_free(g);
}

/* The implicit products (conv_implicit.c: forward and weight reading the
 * input in place through phase planes) on every stride, padding and
 * dilation they take, odd and even planes, batches and channel counts off
 * the blocks: within float rounding of the naive double sums, each range
 * of rows (samples, or output channels for the weight) the bits of the
 * whole call, scratch filled with NaNs and infinities first and checked
 * for writes past its size. */
static int run_implicit(int way, int k, float *out, const float *x, const float *y,
                        const float *w, const sk__conv *cv, int64_t r0, int64_t r1) {
  (void)way;
  const int64_t n = sk__conv_implicit_scratch(cv, k, r1 - r0, r0 % SK_SPLIT_ROWS == 0);
  float *scratch = scratch_new(n);
  const int ok = k == 0 ? sk__conv2d_implicit_rows(out, x, w, cv, r0, r1, scratch)
                        : sk__conv2d_weight_implicit_rows(out, x, y, cv, r0, r1, scratch);
  return scratch_done(scratch, n) && ok;
}

TEST(implicit_products_match_naive_and_split_exactly) {
  /* n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw */
  static const int64_t geo[][13] = {
      {3, 1, 28, 28, 32, 3, 3, 1, 1, 0, 0, 1, 1},  {5, 3, 26, 26, 17, 3, 3, 2, 2, 0, 0, 1, 1},
      {3, 5, 12, 12, 20, 3, 3, 2, 2, 0, 0, 1, 1},  {2, 7, 5, 5, 33, 3, 3, 2, 2, 0, 0, 1, 1},
      {2, 3, 11, 13, 5, 3, 3, 2, 3, 2, 2, 3, 2},   {2, 3, 9, 8, 4, 3, 3, 3, 3, 1, 1, 1, 1},
      {2, 3, 10, 10, 2, 7, 7, 1, 1, 3, 3, 1, 1},   {3, 2, 7, 5, 3, 3, 2, 2, 1, 1, 0, 1, 2},
      {2, 17, 13, 12, 19, 3, 3, 2, 2, 1, 1, 1, 1}, {2, 3, 9, 9, 4, 3, 3, 1, 1, 0, 0, 2, 2},
      {1, 2, 3, 600, 3, 1, 3, 1, 1, 0, 1, 1, 1},   {2, 2, 40, 40, 3, 3, 3, 1, 1, 1, 1, 1, 1},
      {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},     {37, 6, 5, 5, 33, 3, 3, 2, 2, 0, 0, 1, 1},
  };
  sk__kernels_init();
  sk_rng r = sk_rng_make(6, 0);
  int ran = 0;
  for (size_t s = 0; s < sizeof geo / sizeof geo[0]; s++) {
    conv_case t;
    case_make(&t, geo[s], &r);
    CHECK(t.cv.oh >= 1 && t.cv.ow >= 1);
    if (sk__conv_implicit_ok(&t.cv)) {
      ran++;
      for (int k = 0; k < 3; k += 2) {
        case_ref(&t, k);
        if (!case_check(&t, k, 16, run_implicit, 0)) {
          fprintf(stderr, "geometry %zu, %s\n", s, k == 0 ? "forward" : "weight");
          CHECK(0);
        }
      }
    }
    case_free(&t);
  }
  CHECK(ran == 0 || ran == (int)(sizeof geo / sizeof geo[0]));
  printf("  implicit products %s\n", ran ? "checked" : "not available (no JIT)");
}

/* A strided convolution whose forward and weight gradient take the implicit
 * products in a graph (16 input channels, 12 × 12 outputs from 26 × 26: 1/12
 * junk), batch 37 and 20 output channels (blocks cut short): the forward,
 * the input and weight gradients within float rounding of the naive sums,
 * the same bits on 1, 2 and 3 threads, and no allocation in sk_graph_run. */
enum { IN = 37, IC = 16, IO = 20, IH = 26, IOH = 12 };

TEST(implicit_products_in_a_graph_same_bits_on_1_2_and_3_threads) {
  static const sk_conv2d_opts down = {{2, 2}, {0, 0}, {1, 1}, {0, 0}};
  const sk__conv cv = {.n = IN, .c = IC, .h = IH, .w = IH, .o = IO, .oh = IOH, .ow = IOH,
                       .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 0, .pw = 0, .dh = 1, .dw = 1};
  sk__kernels_init();
  if (!sk__conv_implicit_ok(&cv)) {
    printf("  implicit products not available (no JIT)\n");
    return;
  }
  const int64_t nx = (int64_t)IN * IC * IH * IH, nw = (int64_t)IO * IC * 9;
  const int64_t ny = (int64_t)IN * IO * IOH * IOH;
  sk_rng r = sk_rng_make(8, 0);
  float *x = randn(&r, nx), *w = randn(&r, nw), *c = randn(&r, ny);
  float *ref = malloc((size_t)SK_MAX(ny, nw) * sizeof *ref);
  float *mag = malloc((size_t)SK_MAX(ny, nw) * sizeof *mag);
  float *ax = malloc((size_t)nx * sizeof *ax), *aw = malloc((size_t)nw * sizeof *aw);
  float *ac = malloc((size_t)ny * sizeof *ac);
  absf_all(ax, x, nx), absf_all(aw, w, nw), absf_all(ac, c, ny);
  float *first[3] = {0};
  for (int threads = 1; threads <= 3; threads++) {
    sk_set_num_threads(threads);
    sk_graph *g = sk_graph_new();
    sk_node xi = sk_input(g, "x", 4, (int64_t[]){IN, IC, IH, IH});
    sk_node ci = sk_input(g, "c", 4, (int64_t[]){IN, IO, IOH, IOH});
    sk_node wp = sk_param(g, "w", 4, (int64_t[]){IO, IC, 3, 3}, w);
    sk_node y = sk_conv2d(g, xi, wp, &down);
    sk_node L = sk_sum_all(g, sk_mul(g, y, ci)), d[2];
    CHECK_OK(sk_grad(g, L, SK_NONE, 2, (sk_node[]){xi, wp}, d));
    sk_node out[3] = {y, d[0], d[1]};
    CHECK_OK(sk_graph_compile(g, 3, out));
    /* The forward and the weight gradient on the implicit products: their
     * scratch is what those ask for. */
    int implicit = 0;
    for (int s = 0; s < g->n_exec; s++) {
      const sk__node *nd = &g->nodes[g->exec[s]];
      const int k = nd->op == SK_OP_CONV2D ? 0 : nd->op == SK_OP_CONV2D_WEIGHT ? 2 : -1;
      if (k < 0) continue;
      const int64_t units = g->steps[s].units;
      const int64_t rows = units == 1 ? nd->shape[0] : SK_SPLIT_ROWS;
      implicit += g->steps[s].scratch &&
                  g->steps[s].scratch_part >= sk__conv_implicit_scratch(&cv, k, rows, 1);
    }
    CHECK_EQ_INT(implicit, 2);
    memcpy(sk_graph_data(g, xi), x, (size_t)nx * sizeof *x);
    memcpy(sk_graph_data(g, ci), c, (size_t)ny * sizeof *c);
    CHECK_OK(sk_graph_run(g));
    const uint64_t before = sk_debug_alloc_count();
#if COUNT_LIBC_MALLOC
    const long libc_before = atomic_load(&libc_allocs);
#endif
    CHECK_OK(sk_graph_run(g));
    CHECK_EQ_INT(sk_debug_alloc_count(), before);
#if COUNT_LIBC_MALLOC
    CHECK_EQ_INT(atomic_load(&libc_allocs), libc_before);
#endif
    for (int k = 0; k < 3; k++) {
      const int64_t n = sk_node_numel(g, out[k]);
      const float *o = sk_graph_data(g, out[k]);
      if (threads == 1) {
        first[k] = malloc((size_t)n * sizeof *o);
        memcpy(first[k], o, (size_t)n * sizeof *o);
      } else if (memcmp(first[k], o, (size_t)n * sizeof *o) != 0) {
        fprintf(stderr, "output %d differs on %d threads\n", k, threads);
        CHECK(0);
      }
    }
    sk_graph_free(g);
  }
  sk__conv2d_naive(ref, x, w, &cv), sk__conv2d_naive(mag, ax, aw, &cv);
  CHECK(close_to(first[0], ref, mag, ny, IC * 9));
  sk__conv2d_weight_naive(ref, x, c, &cv), sk__conv2d_weight_naive(mag, ax, ac, &cv);
  CHECK(close_to(first[2], ref, mag, nw, IN * IOH * IOH));
  for (int k = 0; k < 3; k++) free(first[k]);
  free(x), free(w), free(c), free(ref), free(mag), free(ax), free(aw), free(ac);
  sk_set_num_threads(2);
}

TEST_MAIN(TEST_ENTRY(kernels_match_naive_and_split_exactly), TEST_ENTRY(values_match_direct_sums),
          TEST_ENTRY(same_bits_on_1_2_and_3_threads), TEST_ENTRY(run_does_not_allocate),
          TEST_ENTRY(image_composites_match_definitions),
          TEST_ENTRY(group_norm_silu_shift_is_the_add_fused),
          TEST_ENTRY(group_norm_silu_short_planes_match_composite),
          TEST_ENTRY(group_norm_silu_shift_checks_its_shape),
          TEST_ENTRY(flops_count_multiply_adds), TEST_ENTRY(bad_geometry_is_a_named_shape_error),
          TEST_ENTRY(implicit_products_match_naive_and_split_exactly),
          TEST_ENTRY(implicit_products_in_a_graph_same_bits_on_1_2_and_3_threads))
