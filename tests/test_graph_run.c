/* Execution properties: no heap allocation in sk_graph_run, the same bits on
 * 1 and 2 threads for whole training steps, fast kernels against naive ones. */
#include <omp.h>
#include <stdatomic.h>

#include "graph/internal.h"
#include "kernels/cpu/kernels.h"
#include "scorekit/scorekit.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define COUNT_LIBC_MALLOC 0
#else
/* Interpose the C allocator for the whole process (OpenMP and BLAS too). */
#define COUNT_LIBC_MALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
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

static sk_model *make_model(sk_model_kind kind, int hidden, int depth) {
  sk_model_config cfg = {kind, 2, hidden, depth, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&cfg);
  sk_model_init(m, 7);
  return m;
}

static void fill_inputs(sk_loss_graph *lg, sk_rng *r) {
  sk_graph *g = lg->g;
  sk_rng_normal(r, sk_graph_data(g, lg->x), (size_t)sk_node_numel(g, lg->x));
  if (lg->z != SK_NONE) sk_rng_normal(r, sk_graph_data(g, lg->z), (size_t)sk_node_numel(g, lg->z));
  if (lg->v != SK_NONE) sk_rng_normal(r, sk_graph_data(g, lg->v), (size_t)sk_node_numel(g, lg->v));
  if (lg->sigma != SK_NONE) {
    float *s = sk_graph_data(g, lg->sigma);
    for (int i = 0; i < lg->rows; i++) s[i] = 0.05f + 0.1f * (float)(i % 10);
  }
}

TEST(run_does_not_allocate) {
  sk_model *m = make_model(SK_MODEL_MLP, 128, 2);
  sk_loss_graph lg;
  CHECK_OK(sk_loss_graph_new(m, SK_OBJ_SSM_VR, 512, 1, &lg));
  sk_rng r = sk_rng_make(1, 1);
  fill_inputs(&lg, &r);
#if COUNT_LIBC_MALLOC
  CHECK(atomic_load(&libc_allocs) > 0); /* the interposition is live */
#endif
  CHECK_OK(sk_graph_run(lg.g)); /* warm-up: the thread pool starts here */
  uint64_t before = sk_debug_alloc_count();
#if COUNT_LIBC_MALLOC
  long libc_before = atomic_load(&libc_allocs);
#endif
  for (int i = 0; i < 5; i++) CHECK_OK(sk_graph_run(lg.g));
  CHECK_EQ_INT(sk_debug_alloc_count(), before);
#if COUNT_LIBC_MALLOC
  CHECK_EQ_INT(atomic_load(&libc_allocs), libc_before);
#endif
  sk_loss_graph_free(&lg);
  sk_model_free(m);
}

/* Three Adam steps of a loss at a size where every parallel path is taken. */
/* Three training steps: the graph, then Adam on the gathered gradients
 * (fused = 0), or both in one parallel region with Adam on the gradients
 * where the graph left them (fused = 1, sk_adam_step_graph, as the trainer
 * runs; on several threads its parameter stores bypass the cache). Without
 * clipping the two give the same bits. */
static void train3(sk_objective obj, sk_model_kind kind, int threads, int rows, int fused,
                   float *out, size_t n) {
  omp_set_num_threads(threads);
  sk_model *m = make_model(kind, 128, 2);
  sk_loss_graph lg;
  if (sk_loss_graph_new(m, obj, rows, 1, &lg) != SK_OK) return;
  sk_adam_config ac = sk_adam_config_default();
  if (rows % 16) ac.ema_rate = 0; /* both loops of the update */
  sk_adam *a = sk_adam_new(&ac, sk_model_num_params(m), sk_model_params(m));
  float *grads = malloc(n * sizeof *grads);
  sk_rng r = sk_rng_make(3, 0);
  for (int step = 0; step < 3; step++) {
    fill_inputs(&lg, &r);
    if (fused) {
      sk_adam_part parts[16];
      CHECK(lg.n_grads <= 16);
      for (int i = 0; i < lg.n_grads; i++) {
        const int64_t rows_i = sk_model_tensor_shape(m, i)[0];
        parts[i] = (sk_adam_part){sk_graph_data(lg.g, lg.grads[i]), sk_model_tensor_offset(m, i),
                                  (size_t)rows_i,
                                  (size_t)(sk_node_numel(lg.g, lg.grads[i]) / rows_i)};
      }
      CHECK_OK(sk_adam_step_graph(a, lg.g, sk_graph_data(lg.g, lg.loss), sk_model_params(m),
                                  lg.n_grads, parts, NULL));
      continue;
    }
    sk_graph_run(lg.g);
    for (int i = 0; i < lg.n_grads; i++)
      memcpy(grads + sk_model_tensor_offset(m, i), sk_graph_data(lg.g, lg.grads[i]),
             (size_t)sk_node_numel(lg.g, lg.grads[i]) * sizeof(float));
    sk_adam_step(a, sk_model_params(m), grads, NULL);
  }
  memcpy(out, sk_model_params(m), n * sizeof *out);
  free(grads);
  sk_adam_free(a);
  sk_loss_graph_free(&lg);
  sk_model_free(m);
}

static int same_bits(sk_objective obj, sk_model_kind kind) {
  sk_model *m = make_model(kind, 128, 2);
  size_t n = sk_model_num_params(m);
  sk_model_free(m);
  float *p1 = calloc(n, sizeof *p1), *p2 = calloc(n, sizeof *p2);
  int same = 1;
  /* A batch of 1024, and one (1000) that no split divides evenly, on 2 and
   * 3 threads (more threads than cores is allowed). */
  static const int rows[2] = {1024, 1000};
  for (int r = 0; r < 2; r++) {
    train3(obj, kind, 1, rows[r], 0, p1, n);
    for (int t = 1; t <= 3; t++)
      for (int fused = t == 1; fused < 2; fused++) {
        train3(obj, kind, t, rows[r], fused, p2, n);
        same &= memcmp(p1, p2, n * sizeof *p1) == 0;
      }
  }
  int moved = 0;
  for (size_t i = 0; i < n; i++) moved |= p1[i] != 0;
  free(p1);
  free(p2);
  omp_set_num_threads(2);
  return same && moved;
}

TEST(same_bits_on_1_and_2_threads_ncsn) { CHECK(same_bits(SK_OBJ_NCSN, SK_MODEL_NCMLP)); }
TEST(same_bits_on_1_and_2_threads_ssm_vr) { CHECK(same_bits(SK_OBJ_SSM_VR, SK_MODEL_MLP)); }
TEST(same_bits_on_1_and_2_threads_esm) { CHECK(same_bits(SK_OBJ_ESM, SK_MODEL_MLP)); }

/* Every path of the product (JIT and portable; NN, NT packed and not, TN
 * thin and wide, TT) against the naive loop, and split into row ranges the
 * way threads and tiles split it: the same bits as one call. */
static void check_matmul_paths(int portable) {
  static const int64_t sizes[][3] = {{3, 5, 4},      {17, 33, 9},  {128, 128, 512}, {512, 2, 128},
                                     {70, 130, 65},  {1, 1, 1},    {128, 3, 512},   {300, 7, 1500},
                                     {33, 200, 2050}, {6, 100, 300},  {2, 130, 257},
                                     {100, 6, 300},   {70, 0, 260}};
  sk__matmul_force_portable(portable);
  sk_rng r = sk_rng_make(11, 0);
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    int64_t m = sizes[s][0], n = sizes[s][1], k = sizes[s][2];
    float *a = malloc((size_t)(m * k) * sizeof *a), *b = malloc((size_t)(k * n) * sizeof *b);
    float *bt = malloc((size_t)(k * n) * sizeof *bt);
    float *c1 = malloc((size_t)(m * n) * sizeof *c1), *c2 = malloc((size_t)(m * n) * sizeof *c2);
    float *c3 = malloc((size_t)(m * n) * sizeof *c3);
    sk_rng_normal(&r, a, (size_t)(m * k));
    sk_rng_normal(&r, b, (size_t)(k * n));
    sk__transpose_rows(bt, b, n, k, 0, k, 0); /* b as (n, k): bt (k, n) */
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int packed = 0; packed <= tb; packed++) {
          const float *pk = packed ? bt : NULL;
          sk__matmul_rows(c1, a, b, pk, m, n, k, ta, tb, 0, m);
          sk__matmul_naive(c2, a, b, m, n, k, ta, tb);
          for (int64_t i = 0; i < m * n; i++)
            CHECK_NEAR(c1[i], c2[i], 1e-4 * sqrt((double)k) * (1 + fabs(c2[i])));
          /* Uneven ranges: 1 row, then 7, then the rest. */
          int64_t cut[4] = {0, SK_MIN(1, m), SK_MIN(8, m), m};
          for (int q = 0; q < 3; q++)
            sk__matmul_rows(c3, a, b, pk, m, n, k, ta, tb, cut[q], cut[q + 1]);
          if (memcmp(c1, c3, (size_t)(m * n) * sizeof *c1) != 0) fprintf(stderr, "split differs: %lld %lld %lld ta %d tb %d packed %d portable %d\n", (long long)m, (long long)n, (long long)k, ta, tb, packed, portable);
          CHECK(memcmp(c1, c3, (size_t)(m * n) * sizeof *c1) == 0);
        }
    free(a);
    free(b);
    free(bt);
    free(c1);
    free(c2);
    free(c3);
  }
  sk__matmul_force_portable(0);
}

/* The pack's transpose, plain and streamed (non-temporal stores on AVX-512
 * where rows % 16 == 0 and t is on a line), over column ranges split the way
 * threads split them: every element in place, nothing outside the range
 * written. */
TEST(transpose_rows_streamed_and_plain) {
  sk__kernels_init();
  static const int64_t shapes[][2] = {{128, 128}, {128, 3}, {16, 17}, {48, 130}, {33, 40}, {512, 2}};
  for (size_t q = 0; q < sizeof shapes / sizeof shapes[0]; q++) {
    const int64_t rows = shapes[q][0], cols = shapes[q][1];
    float *s = malloc((size_t)(rows * cols) * sizeof *s);
    float *t = aligned_alloc(64, (size_t)((rows * cols + 15) / 16 * 16) * sizeof *t);
    for (int64_t i = 0; i < rows * cols; i++) s[i] = (float)i;
    for (int stream = 0; stream < 2; stream++)
      for (int unaligned = 0; unaligned < 2; unaligned++) {
        float *d = t + unaligned; /* off the line: the plain path */
        const int64_t n = rows * cols - unaligned;
        for (int64_t i = 0; i < n; i++) d[i] = -1.0f;
        const int64_t cut[4] = {0, SK_MIN(cols, 5), SK_MIN(cols, 37), cols};
        for (int c = 0; c < 3; c++) {
          sk__transpose_rows(d, s, rows, cols - unaligned, SK_MIN(cut[c], cols - unaligned),
                             SK_MIN(cut[c + 1], cols - unaligned), stream);
        }
        int bad = 0;
        for (int64_t j = 0; j < cols - unaligned; j++)
          for (int64_t i = 0; i < rows; i++) bad += d[j * rows + i] != s[i * (cols - unaligned) + j];
        for (int64_t i = (cols - unaligned) * rows; i < n; i++) bad += d[i] != -1.0f;
        if (bad) fprintf(stderr, "transpose %lld x %lld stream %d unaligned %d: %d wrong\n",
                         (long long)rows, (long long)cols, stream, unaligned, bad);
        CHECK(bad == 0);
      }
    free(s);
    free(t);
  }
}

TEST(matmul_jit_matches_naive_and_splits_exactly) {
  sk__kernels_init();
  check_matmul_paths(0);
}
TEST(matmul_portable_matches_naive_and_splits_exactly) {
  sk__kernels_init();
  check_matmul_paths(1);
}

/* The vectorised softplus and sigmoid against double precision over
 * [-87, 100] (below -87.3 e^x is subnormal and flushed to 0): within 4 and 3
 * units in the last place (measured 2.6 and 2.6). */
static double ulps(float got, double want) {
  const float w = (float)want;
  const float step = nextafterf(fabsf(w), INFINITY) - fabsf(w);
  return fabs((double)got - want) / step;
}

TEST(softplus_and_sigmoid_within_a_few_ulp) {
  enum { N = 400001 };
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *z = malloc(N * sizeof *z);
  for (int i = 0; i < N; i++) x[i] = -87.0f + 187.0f * (float)i / (N - 1);
  sk__unary(y, x, SK_UN_SOFTPLUS, 0, 0, 0, N);
  sk__unary(z, x, SK_UN_SIGMOID, 0, 0, 0, N);
  double worst_sp = 0, worst_sg = 0;
  for (int i = 0; i < N; i++) {
    const double xd = x[i];
    const double sp = xd > 0 ? xd + log1p(exp(-xd)) : log1p(exp(xd)), sg = 1.0 / (1.0 + exp(-xd));
    worst_sp = fmax(worst_sp, ulps(y[i], sp));
    worst_sg = fmax(worst_sg, ulps(z[i], sg));
  }
  CHECK(worst_sp <= 4.0);
  CHECK(worst_sg <= 3.0);
  /* The edges: large |x|, NaN passes through; at the start of a 36-float
   * call (the vector loop) and at its end (the scalar tail). */
  float e[36], o[36];
  for (int i = 0; i < 36; i++) e[i] = 0.25f;
  for (int at = 0; at <= 32; at += 32) {
    e[at] = -1000.0f, e[at + 1] = 1000.0f, e[at + 2] = NAN, e[at + 3] = 0.0f;
    sk__unary(o, e, SK_UN_SOFTPLUS, 0, 0, 0, 36);
    CHECK(o[at] == 0.0f && o[at + 1] == 1000.0f && isnan(o[at + 2]) &&
          fabsf(o[at + 3] - 0.6931472f) < 1e-7f);
    sk__unary(o, e, SK_UN_SIGMOID, 0, 0, 0, 36);
    CHECK(o[at] == 0.0f && o[at + 1] == 1.0f && isnan(o[at + 2]) && o[at + 3] == 0.5f);
  }
  /* The pair kernel (softplus and sigmoid from one exponential) gives the
   * bits of the two ops over the same range: vector body and tail, the
   * edges included. */
  float *p = malloc(N * sizeof *p), *q = malloc(N * sizeof *q);
  for (int i = 0; i < 36; i++) x[N - 36 + i] = e[i];
  x[N - 40] = INFINITY, x[N - 39] = -INFINITY, x[N - 38] = -0.0f, x[N - 37] = 1e-30f;
  /* The whole sweep, its last 40 (the edges), and every tail length 0-15
   * after one to two vectors, from an unaligned start. */
  for (int k = -2; k < 32; k++) {
    const int r0 = k == -2 ? 0 : k == -1 ? N - 40 : 3, r1 = k == -2 ? N : k == -1 ? N : 3 + 16 + k;
    sk__unary(y, x, SK_UN_SOFTPLUS, 0, 0, r0, r1);
    sk__unary(z, x, SK_UN_SIGMOID, 0, 0, r0, r1);
    sk__softplus_sigmoid(p, q, x, r0, r1);
    CHECK(memcmp(p + r0, y + r0, (size_t)(r1 - r0) * sizeof *p) == 0);
    CHECK(memcmp(q + r0, z + r0, (size_t)(r1 - r0) * sizeof *q) == 0);
  }
  free(p);
  free(q);
  free(x);
  free(y);
  free(z);
}

/* The plan may compute sigmoid(x) beside softplus(x) (the backward pass's
 * derivative, scheduled into the forward pass) as one pair in a fused run.
 * Where it does, the pair is those two ops on one input; that the pair gives
 * their bits is checked on the kernel above and on whole training steps in
 * fused_runs_match_unfused, which this makes sure exercise it. */
TEST(softplus_layers_pair_with_their_derivative) {
  sk_model *m = make_model(SK_MODEL_NCMLP, 128, 3);
  sk_loss_graph lg;
  CHECK_OK(sk_loss_graph_new(m, SK_OBJ_NCSN, 512, 1, &lg));
  int pairs = 0;
  for (int s = 0; s < lg.g->n_exec; s++) {
    if (!lg.g->steps[s].pair) continue;
    pairs++;
    const sk__node *sp = &lg.g->nodes[lg.g->exec[s]], *sg = &lg.g->nodes[lg.g->exec[s + 1]];
    CHECK(sp->op == SK_OP_SOFTPLUS && sg->op == SK_OP_SIGMOID && sp->in[0] == sg->in[0]);
  }
  CHECK(pairs > 0);
  sk_loss_graph_free(&lg);
  sk_model_free(m);
}

/* The sigmoid-derivative kernel gives the bits of the ops it stands for,
 * affine(y, −1, 1), y · that, x · that (and the first two alone), over
 * every tail length after one to two vectors from an unaligned start, with
 * edge values, in place too; and where the plan uses it in second-order
 * steps (ssm-vr, esm: whose fused and unfused training fused_runs_match_unfused
 * compares bit for bit), it stands for those ops. */
TEST(sigmoid_derivative_fuses_with_the_ops_bits) {
  enum { N = 4099 };
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *t = malloc(N * sizeof *t);
  float *ref = malloc(N * sizeof *ref), *got = malloc(N * sizeof *got);
  sk_rng r = sk_rng_make(21, 0);
  sk_rng_normal(&r, x, N);
  for (int i = 0; i < N; i++) y[i] = 1.0f / (1.0f + expf(-3.0f * x[(i * 7) % N]));
  y[5] = 0.0f, y[6] = 1.0f, y[7] = NAN, y[8] = 1e-40f, x[9] = INFINITY, y[10] = -0.0f;
  for (int k = -1; k < 32; k++) {
    const int r0 = k < 0 ? 0 : 3, r1 = k < 0 ? N : 3 + 16 + k;
    const sk__shape4 sh = {{1, 1, 1, N}};
    for (int with_x = 0; with_x < 2; with_x++) {
      sk__unary(t, y, SK_UN_AFFINE, -1.0f, 1.0f, r0, r1);
      sk__binary(ref, y, t, sh, sh, sh, SK_BIN_MUL, r0, r1);
      if (with_x) sk__binary(ref, x, ref, sh, sh, sh, SK_BIN_MUL, r0, r1);
      sk__sigmoid_grad_mul(got, with_x ? x : NULL, y, r0, r1);
      CHECK(memcmp(got + r0, ref + r0, (size_t)(r1 - r0) * sizeof *got) == 0);
      memcpy(got, x, N * sizeof *got); /* in place: out is x */
      sk__sigmoid_grad_mul(got, with_x ? got : NULL, y, r0, r1);
      CHECK(memcmp(got + r0, ref + r0, (size_t)(r1 - r0) * sizeof *got) == 0);
    }
  }
  free(x);
  free(y);
  free(t);
  free(ref);
  free(got);
  static const sk_objective objs[2] = {SK_OBJ_SSM_VR, SK_OBJ_ESM};
  for (int o = 0; o < 2; o++) {
    sk_model *m = make_model(SK_MODEL_MLP, 128, 2);
    sk_loss_graph lg;
    CHECK_OK(sk_loss_graph_new(m, objs[o], 512, 1, &lg));
    int n3 = 0, n2 = 0;
    for (int s = 0; s < lg.g->n_exec; s++) {
      const int d = lg.g->steps[s].dsig;
      if (!d) continue;
      CHECK(lg.g->nodes[lg.g->exec[s]].op == SK_OP_AFFINE);
      CHECK(lg.g->nodes[lg.g->exec[s + 1]].op == SK_OP_MUL);
      if (d < 3) CHECK(lg.g->nodes[lg.g->exec[s + 2]].op == SK_OP_MUL);
      n3 += d < 3, n2 += d == 3;
    }
    CHECK(n3 + n2 > 0);
    sk_loss_graph_free(&lg);
    sk_model_free(m);
  }
}

/* Adam from gradients in parts equals Adam from one flat buffer (the same
 * rule, element by element; without clipping the bits agree), on any thread
 * count; a bad gradient changes nothing and names its part. */
TEST(adam_parts_match_flat) {
  enum { R0 = 300, C0 = 129, R1 = 300, N = R0 * C0 + R1 }; /* above the parallel size */
  float *g = malloc(N * sizeof *g), *p1 = malloc(N * sizeof *p1), *p2 = malloc(N * sizeof *p2);
  sk_rng r = sk_rng_make(5, 0);
  sk_rng_normal(&r, p1, N);
  memcpy(p2, p1, N * sizeof *p1);
  for (int clip = 0; clip < 2; clip++) {
    sk_adam_config ac = sk_adam_config_default();
    ac.clip_norm = clip ? 1.0f : 0.0f;
    sk_adam *a1 = sk_adam_new(&ac, N, p1), *a2 = sk_adam_new(&ac, N, p2);
    for (int step = 0; step < 3; step++) {
      sk_rng_normal(&r, g, N);
      omp_set_num_threads(1 + step % 2);
      const sk_adam_part parts[2] = {{g, 0, R0, C0}, {g + R0 * C0, R0 * C0, R1, 1}};
      float n1 = 0, n2 = 0;
      CHECK_OK(sk_adam_step(a1, p1, g, &n1));
      CHECK_OK(sk_adam_step_parts(a2, p2, 2, parts, &n2));
      CHECK_NEAR(n1, n2, 1e-5 * n1);
      for (int i = 0; i < N; i++) {
        if (clip) CHECK_NEAR(p1[i], p2[i], 1e-6);
        else if (p1[i] != p2[i]) {
          CHECK(p1[i] == p2[i]);
          break;
        }
      }
    }
    /* A NaN: an error naming part 1, element 7, and nothing moves. */
    memcpy(p1, p2, N * sizeof *p1);
    g[R0 * C0 + 7] = NAN;
    const sk_adam_part parts[2] = {{g, 0, R0, C0}, {g + R0 * C0, R0 * C0, R1, 1}};
    CHECK(sk_adam_step_parts(a2, p2, 2, parts, NULL) == SK_ERR_NUMERIC);
    CHECK(strstr(sk_last_error(), "part 1 element 7") != NULL);
    CHECK(memcmp(p1, p2, N * sizeof *p1) == 0);
    g[R0 * C0 + 7] = 3e18f; /* finite, but its square overflows float */
    CHECK(sk_adam_step_parts(a2, p2, 2, parts, NULL) == SK_ERR_NUMERIC);
    CHECK_EQ_INT(sk_adam_steps(a2), 3);
    sk_adam_free(a1);
    sk_adam_free(a2);
  }
  omp_set_num_threads(2);
  free(g);
  free(p1);
  free(p2);
}

/* The EMA: with a rate, ema ← r·ema + (1 − r)·θ after each step; with rate
 * 0 (off) no step writes it and sk_adam_ema gives the weights themselves,
 * through either step function, and a failed step leaves it as it was. */
TEST(adam_ema_on_and_off) {
  enum { N = 40000 };
  float *g = malloc(N * sizeof *g), *p = malloc(N * sizeof *p), *prev = malloc(N * sizeof *prev);
  for (int on = 0; on < 2; on++) {
    sk_rng r = sk_rng_make(6, 0);
    sk_rng_normal(&r, p, N);
    sk_adam_config ac = sk_adam_config_default();
    ac.lr = 0.1f;
    ac.ema_rate = on ? 0.5f : 0.0f;
    sk_adam *a = sk_adam_new(&ac, N, p);
    CHECK(memcmp(sk_adam_ema(a), p, N * sizeof *p) == 0);
    for (int step = 0; step < 3; step++) {
      memcpy(prev, sk_adam_ema(a), N * sizeof *prev);
      sk_rng_normal(&r, g, N);
      const sk_adam_part part = {g, 0, N, 1};
      if (step == 1) CHECK_OK(sk_adam_step(a, p, g, NULL));
      else CHECK_OK(sk_adam_step_parts(a, p, 1, &part, NULL));
      const float *e = sk_adam_ema(a);
      if (!on) {
        CHECK(memcmp(e, p, N * sizeof *p) == 0);
      } else {
        int far = 0;
        for (int i = 0; i < N; i++)
          far |= fabsf(e[i] - (0.5f * prev[i] + 0.5f * p[i])) > 1e-6f * (1.0f + fabsf(p[i]));
        CHECK(!far);
        CHECK(memcmp(e, p, N * sizeof *p) != 0);
      }
    }
    memcpy(prev, sk_adam_ema(a), N * sizeof *prev);
    g[11] = NAN;
    const sk_adam_part part = {g, 0, N, 1};
    CHECK(sk_adam_step_parts(a, p, 1, &part, NULL) == SK_ERR_NUMERIC);
    CHECK(memcmp(sk_adam_ema(a), prev, N * sizeof *prev) == 0);
    sk_adam_free(a);
  }
  free(g);
  free(p);
  free(prev);
}

/* A chain of elementwise ops whose inputs come in every form a fused run
 * reads (full, a row broadcast as either operand, a column, a scalar), with
 * outputs in the middle of the chain (one a softplus: its vector loop and
 * scalar tail may round differently), more values alive at once than there
 * are scratch blocks, and a product reading the end: y3, y5 and z, computed
 * on `threads` threads, fused or not, into out (2·ROWS·W + ROWS·5). W = 37
 * gives blocks of 16 rows in tiles of 208; W = 528 blocks of one row. */
enum { ROWS = 1000, W_MAX = 528 };
static int fused_chain(int fused, int threads, int W, float *out) {
  sk__graph_fusion(fused);
  omp_set_num_threads(threads);
  sk_graph *g = sk_graph_new();
  float bias[W_MAX], wts[W_MAX * 5];
  for (int j = 0; j < W; j++) bias[j] = 0.1f * (float)(j % 7) - 0.3f;
  for (int j = 0; j < W * 5; j++) wts[j] = 0.01f * (float)(j % 13) - 0.05f;
  sk_node x = sk_input(g, "x", 2, (int64_t[]){ROWS, W});
  sk_node col = sk_input(g, "col", 2, (int64_t[]){ROWS, 1});
  sk_node b = sk_param(g, "b", 1, (int64_t[]){W}, bias);
  sk_node wm = sk_param(g, "w", 2, (int64_t[]){W, 5}, wts);
  sk_node y2 = sk_add(g, sk_mul(g, x, x), b);
  sk_node y3 = sk_mul(g, y2, col);
  sk_node y5 = sk_softplus(g, sk_sub(g, y3, sk_scalar(g, 0.5f)));
  sk_node y8 = sk_mul(g, sk_sigmoid(g, sk_div(g, b, sk_affine(g, y5, 2.0f, 1.0f))), y3);
  sk_node v[10], y9 = y8;
  for (int i = 0; i < 10; i++) v[i] = sk_affine(g, y8, 0.1f * (float)(i + 1), (float)i);
  for (int i = 0; i < 10; i++) y9 = sk_add(g, y9, v[i]);
  sk_node z = sk_matmul(g, sk_tanh(g, sk_exp(g, sk_neg(g, sk_mul(g, y9, y9)))), wm, 0, 0);
  sk_node outs[3] = {y3, y5, z};
  /* Fusion is chosen at compile time; the default is restored at once. */
  const int compiled = sk_graph_compile(g, 3, outs) == SK_OK;
  sk__graph_fusion(1);
  if (!compiled) {
    sk_graph_free(g);
    omp_set_num_threads(2);
    return -1;
  }
  sk_rng r = sk_rng_make(5, 0);
  sk_rng_normal(&r, sk_graph_data(g, x), ROWS * W);
  sk_rng_normal(&r, sk_graph_data(g, col), ROWS);
  const int ran = sk_graph_run(g) == SK_OK;
  omp_set_num_threads(2);
  if (!ran) {
    sk_graph_free(g);
    return -1;
  }
  memcpy(out, sk_graph_data(g, y3), (size_t)(ROWS * W) * sizeof *out);
  memcpy(out + ROWS * W, sk_graph_data(g, y5), (size_t)(ROWS * W) * sizeof *out);
  memcpy(out + 2 * ROWS * W, sk_graph_data(g, z), ROWS * 5 * sizeof *out);
  const int kept = g->n_fused;
  sk_graph_free(g);
  return kept;
}

/* A reduction over 512 rows (a^T·b, done in halves on two threads) whose
 * input a is made whole by one thread (a concat along the rows): the result
 * must be right on 2 and 3 threads, run after run (a reduction that did not
 * wait for its input would read rows still being written). */
TEST(halved_reduction_waits_for_its_inputs) {
  sk_graph *g = sk_graph_new();
  sk_node p = sk_input(g, "p", 2, (int64_t[]){256, 1});
  sk_node q = sk_input(g, "q", 2, (int64_t[]){256, 1});
  sk_node b = sk_input(g, "b", 2, (int64_t[]){512, 3});
  sk_node a = sk_concat(g, sk_exp(g, p), sk_exp(g, q), 0);
  sk_node c = sk_matmul(g, a, b, 1, 0); /* (1, 3) */
  CHECK_OK(sk_graph_compile(g, 1, &c));
  float *pd = sk_graph_data(g, p), *qd = sk_graph_data(g, q), *bd = sk_graph_data(g, b);
  for (int i = 0; i < 256; i++) pd[i] = 0.001f * (float)i, qd[i] = -0.001f * (float)i;
  for (int i = 0; i < 512 * 3; i++) bd[i] = (float)(i % 7) - 3.0f;
  for (int rep = 0; rep < 40; rep++) {
    omp_set_num_threads(2 + rep % 2);
    memset(sk_graph_data(g, c), 0, 3 * sizeof(float));
    CHECK_OK(sk_graph_run(g));
    const float *cd = sk_graph_data(g, c);
    for (int j = 0; j < 3; j++) {
      double want = 0.0;
      for (int i = 0; i < 512; i++)
        want += exp(i < 256 ? 0.001 * i : -0.001 * (i - 256)) * (double)bd[i * 3 + j];
      CHECK_NEAR(cd[j], want, 1e-3 * (1.0 + fabs(want)));
    }
  }
  sk_graph_free(g);
}

/* Fused runs give the bits of the ops run one by one, on any thread count,
 * and keep values in scratch: in this chain and in whole training steps. */
TEST(fused_runs_match_unfused) {
  enum { N = 2 * ROWS * W_MAX + ROWS * 5 };
  float *ref = malloc(N * sizeof *ref), *got = malloc(N * sizeof *got);
  static const int widths[2] = {37, W_MAX};
  for (int wi = 0; wi < 2; wi++) {
    const int w = widths[wi];
    const size_t n = (size_t)(2 * ROWS * w + ROWS * 5);
    CHECK_EQ_INT(fused_chain(0, 1, w, ref), 0);
    for (int t = 1; t <= 3; t++) {
      CHECK(fused_chain(1, t, w, got) > 0); /* the fused path ran */
      for (size_t i = 0; i < n; i++)
        if (memcmp(&ref[i], &got[i], sizeof *ref) != 0) {
          fprintf(stderr, "w %d t %d: first difference at %zu: %g vs %g\n", w, t, i, ref[i], got[i]);
          break;
        }
      CHECK(memcmp(ref, got, n * sizeof *ref) == 0);
    }
  }
  free(ref);
  free(got);
  static const sk_objective objs[3] = {SK_OBJ_NCSN, SK_OBJ_SSM_VR, SK_OBJ_ESM};
  for (int o = 0; o < 3; o++) {
    const sk_model_kind kind = objs[o] == SK_OBJ_NCSN ? SK_MODEL_NCMLP : SK_MODEL_MLP;
    sk_model *m = make_model(kind, 128, 2);
    size_t n = sk_model_num_params(m);
    float *p0 = malloc(n * sizeof *p0); /* train3's starting point */
    memcpy(p0, sk_model_params(m), n * sizeof *p0);
    sk_model_free(m);
    float *p1 = calloc(n, sizeof *p1), *p2 = calloc(n, sizeof *p2);
    sk__graph_fusion(0);
    train3(objs[o], kind, 2, 1000, 1, p1, n);
    sk__graph_fusion(1);
    train3(objs[o], kind, 2, 1000, 1, p2, n);
    CHECK(memcmp(p1, p2, n * sizeof *p1) == 0);
    /* Training ran and moved most parameters, not just filled p1. */
    size_t moved = 0;
    for (size_t i = 0; i < n; i++) moved += p1[i] != p0[i];
    CHECK(moved > n / 2);
    free(p0);
    free(p1);
    free(p2);
  }
  omp_set_num_threads(2);
}

/* sk__barrier: in each round every thread writes its slot, meets the others,
 * and must then see every slot of that round, and no thread may write the
 * next round's before all have looked (2, 3 and 4 threads: on a 2-core
 * machine the last two oversubscribe it). */
TEST(barrier_orders_rounds) {
  enum { ROUNDS = 20000 };
  for (int nt = 2; nt <= 4; nt++) {
    sk__barrier b = {0};
    atomic_int slot[4] = {0}, bad = 0;
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), n = omp_get_num_threads();
      int sense = 0;
      for (int r = 1; r <= ROUNDS; r++) {
        atomic_store_explicit(&slot[t], r, memory_order_relaxed);
        sk__barrier_wait(&b, n, &sense);
        for (int u = 0; u < n; u++)
          if (atomic_load_explicit(&slot[u], memory_order_relaxed) != r) atomic_store(&bad, 1);
        sk__barrier_wait(&b, n, &sense);
      }
    }
    CHECK(atomic_load(&bad) == 0);
  }
}

/* sk_adam_step_graph: nothing moves when the guard (the loss) is not
 * finite, on 1 or 2 threads; otherwise the step counts. */
TEST(adam_step_graph_guard) {
  sk_model *m = make_model(SK_MODEL_MLP, 64, 2);
  sk_loss_graph lg;
  CHECK_OK(sk_loss_graph_new(m, SK_OBJ_DSM, 256, 1, &lg));
  sk_adam_config ac = sk_adam_config_default();
  const size_t n = sk_model_num_params(m);
  sk_adam *a = sk_adam_new(&ac, n, sk_model_params(m));
  float *before = malloc(n * sizeof *before);
  memcpy(before, sk_model_params(m), n * sizeof *before);
  sk_adam_part parts[16];
  CHECK(lg.n_grads <= 16);
  for (int i = 0; i < lg.n_grads; i++) {
    const int64_t rows = sk_model_tensor_shape(m, i)[0];
    parts[i] = (sk_adam_part){sk_graph_data(lg.g, lg.grads[i]), sk_model_tensor_offset(m, i),
                              (size_t)rows, (size_t)(sk_node_numel(lg.g, lg.grads[i]) / rows)};
  }
  sk_rng r = sk_rng_make(8, 0);
  fill_inputs(&lg, &r);
  const float bad = NAN;
  for (int t = 1; t <= 2; t++) {
    omp_set_num_threads(t);
    CHECK(sk_adam_step_graph(a, lg.g, &bad, sk_model_params(m), lg.n_grads, parts, NULL) ==
          SK_ERR_NUMERIC);
    CHECK(strstr(sk_last_error(), "loss is nan") != NULL);
    CHECK(memcmp(before, sk_model_params(m), n * sizeof *before) == 0);
    CHECK_EQ_INT(sk_adam_steps(a), 0);
  }
  float norm = 0;
  CHECK_OK(sk_adam_step_graph(a, lg.g, sk_graph_data(lg.g, lg.loss), sk_model_params(m),
                              lg.n_grads, parts, &norm));
  CHECK(norm > 0);
  CHECK_EQ_INT(sk_adam_steps(a), 1);
  CHECK(memcmp(before, sk_model_params(m), n * sizeof *before) != 0);
  omp_set_num_threads(2);
  free(before);
  sk_adam_free(a);
  sk_loss_graph_free(&lg);
  sk_model_free(m);
}

/* Ops split into as many units share one scratch slot in a phase, each part
 * as large as the largest op's (graph/plan.c): a convolution chain whose three
 * ops need different scratch gives the same bits through the shared slot as
 * op by op in graphs of their own, on 1, 2 and 3 threads. */
enum { SC_N = 48 };
static const sk_conv2d_opts sc_s1 = {{1, 1}, {0, 0}, {1, 1}, {0, 0}};
static const sk_conv2d_opts sc_s2 = {{2, 2}, {0, 0}, {1, 1}, {0, 0}};

/* One op of the chain alone: kind 0 conv stride 1, 1 conv stride 2, 2 its
 * transpose; the output into out. */
static void sc_single(int kind, const float *in, const int64_t *in_shape, float *w,
                      const int64_t *w_shape, float *out) {
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 4, in_shape), wn = sk_param(g, "w", 4, w_shape, w);
  sk_node y = kind == 0   ? sk_conv2d(g, x, wn, &sc_s1)
              : kind == 1 ? sk_conv2d(g, x, wn, &sc_s2)
                          : sk_conv_transpose2d(g, x, wn, &sc_s2);
  CHECK_OK(sk_graph_compile(g, 1, &y));
  memcpy(sk_graph_data(g, x), in, (size_t)sk_node_numel(g, x) * sizeof *in);
  CHECK_OK(sk_graph_run(g));
  memcpy(out, sk_graph_data(g, y), (size_t)sk_node_numel(g, y) * sizeof *out);
  sk_graph_free(g);
}

TEST(scratch_shared_by_ops_split_alike) {
  sk__kernels_init();
  if (!sk__jit_available()) return; /* the direct loops use no scratch */
  const int64_t xs[4] = {SC_N, 3, 14, 14}, w1s[4] = {8, 3, 3, 3}, w2s[4] = {16, 8, 3, 3};
  const int64_t y1s[4] = {SC_N, 8, 12, 12}, y2s[4] = {SC_N, 16, 5, 5};
  float *x = malloc(SC_N * 3 * 14 * 14 * sizeof *x), w1[8 * 3 * 9], w2[16 * 8 * 9];
  float *y1 = malloc(SC_N * 8 * 144 * sizeof *y1), *y2 = malloc(SC_N * 16 * 25 * sizeof *y2);
  float *ref = malloc(SC_N * 8 * 121 * sizeof *ref);
  sk_rng r = sk_rng_make(5, 0);
  sk_rng_normal(&r, x, SC_N * 3 * 14 * 14);
  sk_rng_normal(&r, w1, 8 * 3 * 9);
  sk_rng_normal(&r, w2, 16 * 8 * 9);
  sc_single(0, x, xs, w1, w1s, y1);
  sc_single(1, y1, y1s, w2, w2s, y2);
  sc_single(2, y2, y2s, w2, w2s, ref);
  for (int threads = 1; threads <= 3; threads++) {
    sk_set_num_threads(threads);
    sk_graph *g = sk_graph_new();
    sk_node xn = sk_input(g, "x", 4, xs), a = sk_param(g, "w1", 4, w1s, w1),
            b = sk_param(g, "w2", 4, w2s, w2);
    sk_node y = sk_conv_transpose2d(g, sk_conv2d(g, sk_conv2d(g, xn, a, &sc_s1), b, &sc_s2), b, &sc_s2);
    CHECK_OK(sk_graph_compile(g, 1, &y));
    int convs = 0;
    float *shared = NULL;
    int64_t most = 0, part = 0;
    for (int s = 0; s < g->n_exec; s++) {
      const sk__node *nd = &g->nodes[g->exec[s]];
      if (sk__op_flops_kind(nd->op) != SK__FLOPS_CONV) continue;
      convs++;
      CHECK(g->steps[s].scratch != NULL);
      CHECK(!g->steps[s].barrier);
      if (!shared) shared = g->steps[s].scratch, part = g->steps[s].scratch_part;
      CHECK(g->steps[s].scratch == shared && g->steps[s].scratch_part == part);
      const int64_t own = g->be->scratch_floats(nd, &g->nodes[nd->in[0]], &g->nodes[nd->in[1]]);
      CHECK(own > 0 && own <= part);
      most = own > most ? own : most;
    }
    CHECK_EQ_INT(convs, 3);
    CHECK_EQ_INT(part, most);
    memcpy(sk_graph_data(g, xn), x, sizeof(float) * SC_N * 3 * 14 * 14);
    CHECK_OK(sk_graph_run(g));
    CHECK(memcmp(sk_graph_data(g, y), ref, sizeof(float) * SC_N * 8 * 121) == 0);
    sk_graph_free(g);
  }
  sk_set_num_threads(2);
  free(x);
  free(y1);
  free(y2);
  free(ref);
}

/* A convolution's weight gradient over a batch of images runs in two fixed
 * halves of its samples, each half's output channels split over the threads
 * that share it (dispatch.c, cpu_halves): the same bits on 1 to 4 threads
 * (3: one half on two threads, the other on one), on the products (through
 * im2col, in place, and the thin kernel of one input channel) and on the
 * direct loops, and the defining sums to float accuracy. Halves of 32 and 5
 * samples (37), 16 and 16 (32, the least), 32 and 8 at stride 2. */
typedef struct hw_case {
  int64_t n, c, h, o, k, s; /* x (n, c, h, h), kernel k × k, stride s */
} hw_case;
static const hw_case hw_cases[4] = {
    {37, 8, 12, 37, 3, 1}, {32, 16, 26, 32, 3, 1}, {40, 8, 13, 40, 3, 2}, {32, 1, 26, 32, 3, 1}};

static int64_t hw_out(const hw_case *c) { return (c->h - c->k) / c->s + 1; }

/* The weight gradient of case c from x and dy, into out; 0 if it failed or
 * did not run in halves. With `conv`, a convolution of x by a weight of
 * c->o output channels comes first in the same phase, split as the weight
 * gradient (c->n samples, c->o channels: as many units), its output into
 * conv_out: the halves' scratch must not be its scratch. */
static int halves_weight(const hw_case *c, int threads, int direct, const float *x,
                         const float *dy, float *out, int conv, float *conv_out) {
  const int64_t oh = hw_out(c), xs[4] = {c->n, c->c, c->h, c->h}, ys[4] = {c->n, c->o, oh, oh};
  const int64_t ws[4] = {c->o, c->c, c->k, c->k};
  const sk_conv2d_opts op = {{(int)c->s, (int)c->s}, {0, 0}, {1, 1}, {0, 0}};
  sk_set_num_threads(threads);
  sk__conv_force_direct(direct);
  sk_graph *g = sk_graph_new();
  sk_node xn = sk_input(g, "x", 4, xs), dyn = sk_input(g, "dy", 4, ys);
  sk_node outs[2] = {sk_conv2d_weight(g, xn, dyn, (int)c->k, (int)c->k, &op), SK_NONE};
  if (conv) outs[1] = sk_conv2d(g, sk_input(g, "x2", 4, xs), sk_input(g, "w", 4, ws), &op);
  int ok = sk_graph_compile(g, conv ? 2 : 1, conv ? (sk_node[]){outs[1], outs[0]} : outs) == SK_OK;
  int split = 0, apart = 1, phase = 0, wphase = -1, cphase = -2;
  const float *wscr = NULL, *cscr = NULL;
  size_t wlen = 0, clen = 0;
  for (int s = 0; ok && s < g->n_exec; s++) {
    const sk__step *st = &g->steps[s];
    const size_t len = (size_t)(sk__scratch_parts(st->units) * (st->halves ? 2 : 1) * st->scratch_part);
    phase += st->barrier;
    if (g->nodes[g->exec[s]].op == SK_OP_CONV2D_WEIGHT)
      split = st->halves_split, wscr = st->scratch, wlen = len, wphase = phase;
    else if (g->nodes[g->exec[s]].op == SK_OP_CONV2D)
      cscr = st->scratch, clen = len, cphase = phase;
  }
  if (conv) /* one phase, neither scratch in the other's */
    apart = wphase == cphase && wscr && cscr && (wscr + wlen <= cscr || cscr + clen <= wscr);
  if (ok) {
    memcpy(sk_graph_data(g, xn), x, (size_t)(c->n * c->c * c->h * c->h) * sizeof *x);
    memcpy(sk_graph_data(g, dyn), dy, (size_t)(c->n * c->o * oh * oh) * sizeof *dy);
    if (conv) {
      memcpy(sk_graph_data(g, g->nodes[outs[1]].in[0]), x, (size_t)(c->n * c->c * c->h * c->h) * sizeof *x);
      memcpy(sk_graph_data(g, g->nodes[outs[1]].in[1]), dy, (size_t)(c->o * c->c * c->k * c->k) * sizeof *dy);
    }
    ok = sk_graph_run(g) == SK_OK;
  }
  if (ok) memcpy(out, sk_graph_data(g, outs[0]), (size_t)(c->o * c->c * c->k * c->k) * sizeof *out);
  if (ok && conv) memcpy(conv_out, sk_graph_data(g, outs[1]), (size_t)(c->n * c->o * oh * oh) * sizeof *out);
  if (!ok) fprintf(stderr, "  halves_weight: %s\n", sk_last_error());
  sk_graph_free(g);
  sk__conv_force_direct(0);
  sk_set_num_threads(2);
  return ok && split && apart;
}

TEST(conv_weight_gradient_in_halves) {
  for (int k = 0; k < 4; k++) {
    const hw_case *c = &hw_cases[k];
    const int64_t oh = hw_out(c), nx = c->n * c->c * c->h * c->h, ny = c->n * c->o * oh * oh;
    const int64_t nw = c->o * c->c * c->k * c->k;
    float *x = malloc((size_t)nx * sizeof *x), *dy = malloc((size_t)ny * sizeof *dy);
    float *want = malloc((size_t)nw * sizeof *want), *ref = malloc((size_t)nw * sizeof *ref);
    float *got = malloc((size_t)nw * sizeof *got);
    float *y0 = malloc((size_t)ny * sizeof *y0), *y1 = malloc((size_t)ny * sizeof *y1);
    sk_rng r = sk_rng_make(17 + (uint64_t)k, 0);
    sk_rng_normal(&r, x, (size_t)nx);
    sk_rng_normal(&r, dy, (size_t)ny);
    const sk__conv cv = {c->n, c->c, c->h, c->h, c->o, oh, oh, c->k, c->k, c->s, c->s, 0, 0, 1, 1};
    sk__conv2d_weight_naive(want, x, dy, &cv);
    for (int direct = 0; direct <= 1; direct++) {
      CHECK(halves_weight(c, 1, direct, x, dy, ref, 0, NULL));
      /* float sums of n·oh·oh products of normal deviates */
      for (int64_t i = 0; i < nw; i++) CHECK_NEAR(ref[i], want[i], 1e-6 * (double)(c->n * oh * oh));
      for (int threads = 2; threads <= 4; threads++) {
        CHECK(halves_weight(c, threads, direct, x, dy, got, 0, NULL));
        CHECK(memcmp(ref, got, (size_t)nw * sizeof *ref) == 0);
      }
    }
    /* With a convolution of as many units before it in its phase (scratch
     * only on the products). */
    sk__kernels_init();
    CHECK(!sk__jit_available() || halves_weight(c, 1, 0, x, dy, ref, 1, y0));
    for (int threads = 2; threads <= 4 && sk__jit_available(); threads++) {
      CHECK(halves_weight(c, threads, 0, x, dy, got, 1, y1));
      CHECK(memcmp(ref, got, (size_t)nw * sizeof *ref) == 0);
      CHECK(memcmp(y0, y1, (size_t)ny * sizeof *y0) == 0);
    }
    free(x), free(dy), free(want), free(ref), free(got), free(y0), free(y1);
  }
}

/* A small U-Net's training graph (two levels, a skip concatenation): the
 * loss and the weights' gradients, into out (sk__graph_cut_floats set by the
 * caller); the barriers and the arena's bytes of the plan. */
enum { CUT_N = 48, CUT_W = 8 * 4 * 9 + 16 * 8 * 9 + 16 * 8 * 9 + 16 * 4 * 9 };
static int cut_run(int threads, float *out, int *barriers, size_t *arena) {
  static const int64_t xs[4] = {CUT_N, 4, 12, 12}, s1[4] = {8, 4, 3, 3}, s2[4] = {16, 8, 3, 3},
                       s3[4] = {16, 8, 3, 3}, s4[4] = {16, 4, 3, 3};
  static const sk_conv2d_opts up = {{2, 2}, {0, 0}, {1, 1}, {1, 1}};
  float w[CUT_W];
  sk_rng r = sk_rng_make(11, 0);
  sk_rng_normal(&r, w, CUT_W);
  for (int i = 0; i < CUT_W; i++) w[i] *= 0.3f;
  sk_set_num_threads(threads);
  sk_graph *g = sk_graph_new();
  sk_graph_set_lean(g, 1);
  sk_node x = sk_input(g, "x", 4, xs);
  sk_node p[4] = {sk_param(g, "w1", 4, s1, w), sk_param(g, "w2", 4, s2, w + 8 * 4 * 9),
                  sk_param(g, "w3", 4, s3, w + 8 * 4 * 9 + 16 * 8 * 9),
                  sk_param(g, "w4", 4, s4, w + 8 * 4 * 9 + 2 * 16 * 8 * 9)};
  sk_node h = sk_silu(g, sk_conv2d(g, x, p[0], &sc_s1));          /* (N, 8, 10, 10) */
  sk_node d = sk_silu(g, sk_conv2d(g, h, p[1], &sc_s2));          /* (N, 16, 4, 4) */
  sk_node u = sk_silu(g, sk_conv_transpose2d(g, d, p[2], &up));   /* (N, 8, 10, 10) */
  sk_node y = sk_conv_transpose2d(g, sk_concat(g, u, h, 1), p[3], &sc_s1); /* (N, 4, 12, 12) */
  sk_node outs[5];
  outs[0] = sk_sum_all(g, sk_mul(g, sk_sub(g, y, x), sk_sub(g, y, x)));
  int ok = sk_grad(g, outs[0], SK_NONE, 4, p, outs + 1) == SK_OK && sk_graph_compile(g, 5, outs) == SK_OK;
  if (ok) {
    sk_rng_normal(&r, sk_graph_data(g, x), CUT_N * 4 * 144);
    ok = sk_graph_run(g) == SK_OK;
  }
  if (ok) {
    *barriers = 0;
    for (int s = 0; s < g->n_exec; s++) *barriers += g->steps[s].barrier;
    *arena = sk_graph_arena_bytes(g);
    memcpy(out, sk_graph_data(g, outs[0]), sizeof(float));
    for (int k = 1, at = 1; k < 5; k++) {
      memcpy(out + at, sk_graph_data(g, outs[k]), (size_t)sk_node_numel(g, outs[k]) * sizeof(float));
      at += (int)sk_node_numel(g, outs[k]);
    }
  }
  if (!ok) fprintf(stderr, "  cut_run: %s\n", sk_last_error());
  sk_graph_free(g);
  sk_set_num_threads(2);
  return ok;
}

/* Barriers placed to reuse memory (plan.c, sk__graph_cut_floats) and the
 * buffers packed by offset (sk__graph_packing) each shrink the arena and
 * change no bit, on 1, 2 or 3 threads. */
TEST(memory_barriers_keep_the_bits) {
  float ref[1 + CUT_W], got[1 + CUT_W];
  int b0 = 0, b1 = 0, b2 = 0;
  size_t a0 = 0, a1 = 0, a2 = 0;
  sk__graph_packing(0);
  sk__graph_cut_floats(INT64_MAX);
  CHECK(cut_run(1, ref, &b0, &a0)); /* slots, no barrier placed */
  CHECK(isfinite(ref[0]) && ref[0] > 0);
  sk__graph_cut_floats(1);
  for (int pack = 0; pack <= 1; pack++) {
    sk__graph_packing(pack);
    for (int threads = 1; threads <= 3; threads++) {
      CHECK(cut_run(threads, got, pack ? &b2 : &b1, pack ? &a2 : &a1));
      CHECK(memcmp(ref, got, sizeof ref) == 0);
    }
  }
  sk__graph_cut_floats(0);
  printf("  barriers %d -> %d, arena %zu -> %zu bytes, packed %zu\n", b0, b1, a0, a1, a2);
  CHECK(b1 > b0 && b2 == b1);
  CHECK(a1 < a0);
  CHECK(a2 < a1);
}

TEST_MAIN(TEST_ENTRY(run_does_not_allocate), TEST_ENTRY(memory_barriers_keep_the_bits), TEST_ENTRY(same_bits_on_1_and_2_threads_ncsn),
          TEST_ENTRY(same_bits_on_1_and_2_threads_ssm_vr),
          TEST_ENTRY(same_bits_on_1_and_2_threads_esm),
          TEST_ENTRY(transpose_rows_streamed_and_plain),
          TEST_ENTRY(matmul_jit_matches_naive_and_splits_exactly),
          TEST_ENTRY(matmul_portable_matches_naive_and_splits_exactly),
          TEST_ENTRY(softplus_and_sigmoid_within_a_few_ulp), TEST_ENTRY(adam_parts_match_flat),
          TEST_ENTRY(adam_ema_on_and_off),
          TEST_ENTRY(fused_runs_match_unfused),
          TEST_ENTRY(halved_reduction_waits_for_its_inputs), TEST_ENTRY(adam_step_graph_guard),
          TEST_ENTRY(barrier_orders_rounds),
          TEST_ENTRY(softplus_layers_pair_with_their_derivative),
          TEST_ENTRY(sigmoid_derivative_fuses_with_the_ops_bits),
          TEST_ENTRY(scratch_shared_by_ops_split_alike),
          TEST_ENTRY(conv_weight_gradient_in_halves))
