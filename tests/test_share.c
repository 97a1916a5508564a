/* Data-parallel training without MPI: R trainers, each computing a share of
 * every batch on its own thread, whose reduction sums their buffers in a
 * fixed order, take the steps of one trainer computing the whole batch (to
 * float rounding; the first step's gradient is compared element by
 * element); a trainer whose share is the whole batch, with a reduction that
 * changes nothing, takes them bit for bit; and a resume continues with
 * another number of shares. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <pthread.h>
#include <unistd.h>

#include "scorekit/scorekit.h"
#include "test.h"

static const float ladder[6] = {6.0f, 3.0f, 1.5f, 0.75f, 0.4f, 0.2f};

static sk_dataset *mog8_data(int n) {
  sk_tensor *x = sk_tensor_new(2, (int64_t[]){n, 2});
  sk_tensor *l = sk_tensor_new(1, (int64_t[]){n});
  int32_t *lab = malloc((size_t)n * sizeof *lab);
  sk_rng r = sk_rng_make(2024, 0);
  sk_toy_sample("mog8", &r, n, sk_tensor_data(x), lab);
  for (int i = 0; i < n; i++) sk_tensor_data(l)[i] = (float)lab[i];
  free(lab);
  sk_dataset *ds = NULL;
  sk_dataset_new(x, l, &ds);
  return ds;
}

/* The objectives and what each draws: noise (dsm), projections with two a
 * row (ssm), levels (ncsn), labels (classifier), and a class-conditional
 * ncmlp's label dropout (a draw per row of the whole batch). */
typedef struct objective_case {
  sk_objective obj;
  sk_model_kind kind;
  int projections;
  int classes; /* > 0: a class-conditional score model */
} objective_case;

static const objective_case cases[5] = {{SK_OBJ_DSM, SK_MODEL_MLP, 1, 0},
                                        {SK_OBJ_SSM, SK_MODEL_MLP, 2, 0},
                                        {SK_OBJ_NCSN, SK_MODEL_NCMLP, 1, 0},
                                        {SK_OBJ_CLASSIFIER, SK_MODEL_CLASSIFIER, 1, 0},
                                        {SK_OBJ_NCSN, SK_MODEL_NCMLP, 1, 8}};

static sk_train_config config(const objective_case *c, int batch) {
  sk_train_config tc = {c->obj, batch, c->projections, 0, 0.3f, 6, ladder,
                        sk_adam_config_default(), 11};
  tc.adam.lr = 3e-3f;
  return tc;
}

/* A small U-Net (its Fourier frequencies are a fixed tensor: no gradient)
 * and random 28 × 28 images for it. */
static const sk_unet_config small_unet = {{8, 16, 16, 16}, {1, 28, 28}, 16, 16.0f};

static sk_dataset *images(int n) {
  sk_tensor *x = sk_tensor_new(2, (int64_t[]){n, 28 * 28});
  sk_rng r = sk_rng_make(5, 0);
  sk_rng_uniform(&r, sk_tensor_data(x), (size_t)n * 28 * 28);
  sk_dataset *ds = NULL;
  sk_dataset_new(x, NULL, &ds);
  return ds;
}

static sk_model *new_model(const objective_case *c) {
  if (c->kind == SK_MODEL_UNET) {
    sk_model *u = sk_model_new_unet(&small_unet);
    sk_model_init(u, 4);
    return u;
  }
  sk_model_config mc = {c->kind, 2, 16, 2, c->kind == SK_MODEL_CLASSIFIER ? 8 : c->classes,
                        SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 4);
  return m;
}

/* A reduction that keeps a copy of the buffer of its first call. */
typedef struct recorder {
  int calls;
  float *first;
} recorder;

static sk_status record(void *ctx, float *buf, size_t n) {
  recorder *r = ctx;
  if (r->calls++ == 0 && (r->first = malloc(n * sizeof(float))))
    memcpy(r->first, buf, n * sizeof(float));
  return SK_OK;
}

TEST(whole_share_is_the_plain_trainer) {
  for (int k = 0; k < 4; k++) {
    const sk_train_config tc = config(&cases[k], 10);
    sk_dataset *ds[2] = {mog8_data(64), mog8_data(64)};
    sk_model *m[2] = {new_model(&cases[k]), new_model(&cases[k])};
    recorder rec = {0, NULL};
    const sk_train_share whole = {0, 10, record, &rec};
    sk_trainer *t[2];
    CHECK_OK(sk_trainer_new(m[0], ds[0], &tc, &t[0]));
    CHECK_OK(sk_trainer_new_share(m[1], ds[1], &tc, &whole, 0, &t[1]));
    for (int s = 0; s < 15; s++) {
      float l[2], g[2];
      for (int i = 0; i < 2; i++) CHECK_OK(sk_trainer_step(t[i], &l[i], &g[i]));
      CHECK(memcmp(l, l + 1, sizeof *l) == 0 && memcmp(g, g + 1, sizeof *g) == 0);
    }
    const size_t np = sk_model_num_params(m[0]);
    CHECK(memcmp(sk_model_params(m[0]), sk_model_params(m[1]), np * sizeof(float)) == 0);
    CHECK(memcmp(sk_trainer_ema(t[0]), sk_trainer_ema(t[1]), np * sizeof(float)) == 0);
    CHECK_EQ_INT(rec.calls, 15);
    free(rec.first);
    for (int i = 0; i < 2; i++) {
      sk_trainer_free(t[i]);
      sk_model_free(m[i]);
      sk_dataset_free(ds[i]);
    }
  }
}

/* ---- R shares on R threads ---- */

enum { MAX_SHARES = 4 };

/* The reduction of R threads: each leaves its buffer, the last to arrive
 * sums them in share order into every one of them. */
typedef struct group {
  int n;
  pthread_barrier_t arrive, leave;
  float *bufs[MAX_SHARES];
  int calls;
} group;

typedef struct member {
  group *g;
  int rank, steps;
  sk_trainer *t;
  float loss[64];
  sk_status st;
} member;

static sk_status sum_in_order(void *ctx, float *buf, size_t n) {
  member *me = ctx;
  group *g = me->g;
  g->bufs[me->rank] = buf;
  pthread_barrier_wait(&g->arrive);
  if (me->rank == 0) {
    for (size_t i = 0; i < n; i++) {
      float s = g->bufs[0][i];
      for (int r = 1; r < g->n; r++) s += g->bufs[r][i];
      g->bufs[0][i] = s;
    }
    g->calls++;
  }
  pthread_barrier_wait(&g->leave);
  if (me->rank != 0) memcpy(buf, g->bufs[0], n * sizeof(float));
  pthread_barrier_wait(&g->arrive); /* every copy is taken before the next sum */
  return SK_OK;
}

static void *member_run(void *arg) {
  member *me = arg;
  me->st = SK_OK;
  for (int s = 0; s < me->steps && me->st == SK_OK; s++)
    me->st = sk_trainer_step(me->t, &me->loss[s], NULL);
  return NULL;
}

/* Trains `steps` steps of `batch` split into n shares (n = 0: one plain
 * trainer), from the state in `resume` when not NULL, saving into `save`
 * when not NULL. The weights of share 0 go to params (np); *first gets the
 * first step's reduced buffer (the gradient and the loss) when not NULL. */
static void run_shares(const objective_case *c, int batch, int n, int steps, const char *resume,
                       const char *save, float *params, float *loss, float **first) {
  const sk_train_config tc = config(c, batch);
  const int R = n ? n : 1;
  group g = {.n = R};
  pthread_barrier_init(&g.arrive, NULL, (unsigned)R);
  pthread_barrier_init(&g.leave, NULL, (unsigned)R);
  member mem[MAX_SHARES];
  sk_dataset *ds[MAX_SHARES];
  sk_model *m[MAX_SHARES];
  recorder rec = {0, NULL};
  for (int r = 0; r < R; r++) {
    ds[r] = c->kind == SK_MODEL_UNET ? images(24) : mog8_data(64);
    m[r] = new_model(c);
    mem[r] = (member){.g = &g, .rank = r, .steps = steps};
    /* Uneven shares: rows [r·batch/R, (r+1)·batch/R). */
    const int a = r * batch / R, b = (r + 1) * batch / R;
    const sk_train_share share = n ? (sk_train_share){a, b - a, sum_in_order, &mem[r]}
                                   : (sk_train_share){0, batch, record, &rec};
    CHECK_OK(sk_trainer_new_share(m[r], ds[r], &tc, &share, 0, &mem[r].t));
    if (resume) CHECK_OK(sk_trainer_resume(mem[r].t, resume));
  }
  pthread_t th[MAX_SHARES];
  if (n && first) { /* one step alone, to keep its reduced buffer */
    for (int r = 0; r < R; r++) mem[r].steps = 1;
    const size_t np = sk_model_num_params(m[0]);
    /* Share 0 sums into its own buffer, which Adam then only reads. */
    for (int r = 0; r < R; r++) CHECK(pthread_create(&th[r], NULL, member_run, &mem[r]) == 0);
    for (int r = 0; r < R; r++) pthread_join(th[r], NULL);
    *first = malloc((np + 1) * sizeof(float));
    memcpy(*first, g.bufs[0], (np + 1) * sizeof(float));
    loss[0] = mem[0].loss[0];
    for (int r = 0; r < R; r++) mem[r].steps = steps - 1;
  } else {
    for (int r = 0; r < R; r++) mem[r].steps = steps;
  }
  for (int r = 0; r < R; r++) CHECK(pthread_create(&th[r], NULL, member_run, &mem[r]) == 0);
  for (int r = 0; r < R; r++) pthread_join(th[r], NULL);
  for (int r = 0; r < R; r++) CHECK_OK(mem[r].st);
  const int done = n && first ? 1 : 0;
  for (int s = 0; s < mem[0].steps; s++) loss[done + s] = mem[0].loss[s];
  const size_t np = sk_model_num_params(m[0]);
  memcpy(params, sk_model_params(m[0]), np * sizeof(float));
  /* Every share holds the same weights, bit for bit. */
  for (int r = 1; r < R; r++)
    CHECK(memcmp(sk_model_params(m[r]), params, np * sizeof(float)) == 0);
  if (!n && first) *first = rec.first;
  else free(rec.first);
  if (save) {
    sk_model_info info = {.objective = c->obj, .n_sigmas = 6};
    memcpy(info.sigmas, ladder, sizeof ladder);
    CHECK_OK(sk_trainer_save(mem[0].t, save, &info));
  }
  for (int r = 0; r < R; r++) {
    sk_trainer_free(mem[r].t);
    sk_model_free(m[r]);
    sk_dataset_free(ds[r]);
  }
  pthread_barrier_destroy(&g.arrive);
  pthread_barrier_destroy(&g.leave);
}

static double max_rel_diff(const float *a, const float *b, size_t n) {
  double scale = 0, diff = 0;
  for (size_t i = 0; i < n; i++) {
    scale = fmax(scale, fabs((double)a[i]));
    diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

static double max_abs(const float *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
  return m;
}

/* max_rel_diff of two models' weights over the tensors that have a
 * gradient: a tensor whose gradient is zero in exact arithmetic (a U-Net's
 * Dense layers before a group norm of one channel a group) gets rounding
 * noise instead, which Adam scales up to steps of ±lr whatever its size, in
 * one process as in several; such a tensor (gradient below 1e-6 of the
 * largest in the first step, `grad`) does not change the model's output. */
static double weights_diff(const objective_case *c, const float *a, const float *b,
                           const float *grad) {
  sk_model *m = new_model(c);
  const size_t np = sk_model_num_params(m);
  const double gmax = max_abs(grad, np);
  double scale = 0, diff = 0;
  int skipped = 0;
  for (int i = 0; i < sk_model_num_tensors(m); i++) {
    size_t off = sk_model_tensor_offset(m, i), len = 1;
    for (int j = 0; j < sk_model_tensor_ndim(m, i); j++)
      len *= (size_t)sk_model_tensor_shape(m, i)[j];
    if (max_abs(grad + off, len) <= 1e-6 * gmax) {
      skipped++;
      continue;
    }
    scale = fmax(scale, max_abs(a + off, len));
    for (size_t k = off; k < off + len; k++) diff = fmax(diff, fabs((double)a[k] - (double)b[k]));
  }
  if (skipped) printf("    (%d tensors without a gradient left out)\n", skipped);
  sk_model_free(m);
  return diff / scale;
}

/* Each of `list` (n of them), `steps` steps of a batch of 10 in 2 and 3
 * shares against the whole batch. */
static void shares_against_whole(const objective_case *list, int n, int steps) {
  enum { MAX_STEPS = 40, BATCH = 10 };
  for (int k = 0; k < n; k++) {
    const objective_case *c = &list[k];
    sk_model *m = new_model(c);
    const size_t np = sk_model_num_params(m);
    sk_model_free(m);
    float *whole = malloc(np * sizeof(float)), *split = malloc(np * sizeof(float));
    float lw[MAX_STEPS], ls[MAX_STEPS], *gw = NULL, *gs = NULL;
    run_shares(c, BATCH, 0, steps, NULL, NULL, whole, lw, &gw);
    for (int r = 2; r <= 3; r++) {
      run_shares(c, BATCH, r, steps, NULL, NULL, split, ls, &gs);
      /* The first step: the same rows and draws, summed in another order. */
      const double g1 = max_rel_diff(gw, gs, np + 1);
      /* Against the largest |loss|: ssm's loss crosses zero. */
      const double lmax = max_rel_diff(lw, ls, (size_t)steps);
      const double w = weights_diff(c, whole, split, gw);
      printf("  %-10s %s, %d shares: first gradient %.2g, losses %.2g, weights after %d steps "
             "%.2g (relative)\n", sk_objective_name(c->obj),
             c->kind == SK_MODEL_UNET ? "unet" : c->classes ? "conditional mlp" : "mlp", r, g1, lmax, steps, w);
      CHECK(g1 < 1e-5);
      CHECK(lmax < 1e-5);
      CHECK(w < 1e-5);
      /* The same shares again: the same bits. */
      float *again = malloc(np * sizeof(float)), la[MAX_STEPS];
      run_shares(c, BATCH, r, steps, NULL, NULL, again, la, NULL);
      CHECK(memcmp(again, split, np * sizeof(float)) == 0);
      free(again);
      free(gs);
      gs = NULL;
    }
    free(gw);
    free(whole);
    free(split);
  }
}

TEST(shares_take_the_whole_batch_steps) { shares_against_whole(cases, 5, 40); }

/* A U-Net: convolutions, group norms, and a fixed tensor left out of Adam
 * (its part of the summed buffer is zero). */
TEST(unet_shares_take_the_whole_batch_steps) {
  static const objective_case unet = {SK_OBJ_NCSN, SK_MODEL_UNET, 1, 0};
  shares_against_whole(&unet, 1, 4);
}

/* 20 whole-batch steps against 8 steps in 3 shares, saved, then 12 more
 * resumed by one trainer, and 8 by one then 12 resumed in 2 shares. */
TEST(resume_with_another_number_of_shares) {
  const objective_case *c = &cases[2]; /* ncsn */
  sk_model *m = new_model(c);
  const size_t np = sk_model_num_params(m);
  sk_model_free(m);
  float *whole = malloc(np * sizeof(float)), *p = malloc(np * sizeof(float)), l[20];
  run_shares(c, 12, 0, 20, NULL, NULL, whole, l, NULL);
  for (int order = 0; order < 2; order++) {
    char dir[] = "/tmp/sk_share_XXXXXX";
    CHECK(mkdtemp(dir));
    run_shares(c, 12, order ? 0 : 3, 8, NULL, dir, p, l, NULL);
    run_shares(c, 12, order ? 2 : 0, 12, dir, NULL, p, l, NULL);
    const double w = max_rel_diff(whole, p, np);
    printf("  resumed %s: weights after 20 steps %.2g from the whole batch's (relative)\n",
           order ? "1 -> 2 shares" : "3 shares -> 1", w);
    CHECK(w < 1e-5);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
  }
  free(whole);
  free(p);
}

static sk_status refuse(void *ctx, float *buf, size_t n) {
  return sk_set_error(SK_ERR_IO, "reduce: a peer is gone");
}

TEST(bad_shares_are_refused) {
  const sk_train_config tc = config(&cases[0], 10);
  sk_dataset *ds = mog8_data(64);
  sk_model *m = new_model(&cases[0]);
  sk_trainer *t = NULL;
  static const sk_train_share bad[4] = {{0, 0, NULL, NULL}, {-1, 3, NULL, NULL},
                                        {8, 3, NULL, NULL}, {0, 11, NULL, NULL}};
  for (int i = 0; i < 4; i++) {
    CHECK(sk_trainer_new_share(m, ds, &tc, &bad[i], 0, &t) == SK_ERR_INVALID && !t);
    CHECK(strstr(sk_last_error(), "share of the batch"));
  }
  /* A reduction that fails ends the step with its status; nothing moves. */
  const size_t np = sk_model_num_params(m);
  float *before = malloc(np * sizeof(float));
  memcpy(before, sk_model_params(m), np * sizeof(float));
  const sk_train_share share = {2, 5, refuse, NULL};
  CHECK_OK(sk_trainer_new_share(m, ds, &tc, &share, 0, &t));
  CHECK(sk_trainer_step(t, NULL, NULL) == SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "peer is gone"));
  CHECK(memcmp(before, sk_model_params(m), np * sizeof(float)) == 0);
  CHECK(sk_trainer_steps(t) == 0);
  free(before);
  sk_trainer_free(t);
  sk_model_free(m);
  sk_dataset_free(ds);
}

/* Langevin on rows [first, first + count) of n: the bits of those rows of
 * one run on all n, and r where that run leaves it; other ranges refused. */
TEST(langevin_rows_are_those_of_the_whole_run) {
  const objective_case *c = &cases[2];
  sk_model *m = new_model(c);
  sk_score_fn *f = NULL;
  CHECK_OK(sk_score_fn_model(m, 16, &f));
  enum { N = 50 }; /* chunks of 16: 16, 16, 16, 2 */
  const sk_langevin_config lc = {3, ladder, 4, 0.01f, 1, NULL};
  float whole[N * 2], part[N * 2];
  sk_rng r0 = sk_rng_make(8, 1);
  sk_rng_normal(&r0, whole, N * 2);
  memcpy(part, whole, sizeof whole);
  sk_rng rw = r0;
  CHECK_OK(sk_langevin(f, &lc, &rw, whole, N));
  static const int64_t ranges[4][2] = {{0, 16}, {16, 32}, {48, 2}, {50, 0}};
  for (int i = 0; i < 4; i++) {
    sk_rng rp = r0;
    const int64_t a = ranges[i][0], n = ranges[i][1];
    CHECK_OK(sk_langevin_rows(f, &lc, &rp, part + a * 2, N, a, n));
    CHECK(rp.offset == rw.offset);
  }
  CHECK(memcmp(whole, part, sizeof whole) == 0);
  static const int64_t bad[4][2] = {{8, 8}, {0, 20}, {-16, 16}, {48, 4}};
  for (int i = 0; i < 4; i++) {
    sk_rng rp = r0;
    CHECK(sk_langevin_rows(f, &lc, &rp, part, N, bad[i][0], bad[i][1]) == SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "not whole chunks of 16"));
  }
  sk_score_fn_free(f);
  sk_model_free(m);
}

/* The likelihood (Hutchinson's trace, its probes from r) on rows [first,
 * first + count) of n: the bits of those rows of one run on all n, r where
 * that run leaves it, and the parts' evaluations adding up to the run's. */
TEST(likelihood_rows_are_those_of_the_whole_run) {
  const objective_case *c = &cases[2];
  sk_model *m = new_model(c);
  sk_score_fn *f = NULL;
  CHECK_OK(sk_score_fn_model(m, 16, &f));
  enum { N = 50 }; /* chunks of 16: 16, 16, 16, 2 */
  const sk_likelihood_config lc = {{ladder[0], ladder[2], 1e-3, 1e-3, 0, NULL}, 2};
  float x[N * 2];
  double whole[N], part[N];
  sk_rng r0 = sk_rng_make(9, 1);
  sk_rng_normal(&r0, x, N * 2);
  sk_rng rw = r0;
  sk_ode_stats sw, sp, sum = {0, 0, 0};
  CHECK_OK(sk_likelihood(f, &lc, &rw, x, N, whole, &sw));
  static const int64_t ranges[4][2] = {{0, 16}, {16, 32}, {48, 2}, {50, 0}};
  for (int i = 0; i < 4; i++) {
    sk_rng rp = r0;
    const int64_t a = ranges[i][0], n = ranges[i][1];
    CHECK_OK(sk_likelihood_rows(f, &lc, &rp, x + a * 2, N, a, n, part + a, &sp));
    CHECK(rp.offset == rw.offset);
    sum.evals += sp.evals, sum.steps += sp.steps, sum.rejected += sp.rejected;
  }
  CHECK(memcmp(whole, part, sizeof whole) == 0);
  CHECK(sum.evals == sw.evals && sum.steps == sw.steps && sum.rejected == sw.rejected);
  sk_rng rp = r0;
  CHECK(sk_likelihood_rows(f, &lc, &rp, x, N, 8, 8, part, NULL) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "not whole chunks of 16"));
  sk_score_fn_free(f);
  sk_model_free(m);
}

/* Inpainting (Langevin, half of each row known) on rows [first, first +
 * count) of n: the bits of those rows of one run on all n, and r where that
 * run leaves it; a row out of range refused, a bad mask named by its row in
 * the run. */
TEST(inpaint_rows_are_those_of_the_whole_run) {
  const objective_case *c = &cases[2];
  sk_model *m = new_model(c);
  sk_score_fn *f = NULL;
  CHECK_OK(sk_score_fn_model(m, 16, &f));
  enum { N = 50 }; /* chunks of 16: 16, 16, 16, 2 */
  sk_inpaint_config ic;
  memset(&ic, 0, sizeof ic);
  ic.sampler = SK_INPAINT_LANGEVIN;
  ic.langevin = (sk_langevin_config){3, ladder, 4, 0.01f, 1, NULL};
  float whole[N * 2], part[N * 2], mask[N * 2];
  sk_rng r0 = sk_rng_make(10, 1);
  sk_rng_normal(&r0, whole, N * 2);
  for (int i = 0; i < N * 2; i++) mask[i] = (float)(i % 2);
  memcpy(part, whole, sizeof whole);
  sk_rng rw = r0;
  CHECK_OK(sk_inpaint(f, &ic, &rw, whole, mask, N));
  static const int64_t ranges[3][2] = {{0, 32}, {32, 16}, {48, 2}};
  for (int i = 0; i < 3; i++) {
    sk_rng rp = r0;
    const int64_t a = ranges[i][0], n = ranges[i][1];
    CHECK_OK(sk_inpaint_rows(f, &ic, &rp, part + a * 2, mask + a * 2, N, a, n));
    CHECK(rp.offset == rw.offset);
  }
  CHECK(memcmp(whole, part, sizeof whole) == 0);
  sk_rng rp = r0;
  CHECK(sk_inpaint_rows(f, &ic, &rp, part, mask, N, 40, 16) == SK_ERR_INVALID);
  CHECK(sk_inpaint_rows(f, &ic, &rp, part, mask, N, 8, 16) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "not whole chunks of 16"));
  mask[33 * 2] = 0.5f;
  CHECK(sk_inpaint_rows(f, &ic, &rp, part + 32 * 2, mask + 32 * 2, N, 32, 16) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "mask row 33 column 0"));
  sk_score_fn_free(f);
  sk_model_free(m);
}

/* A range of rows near INT64_MAX is refused by every _rows function, the
 * message giving the numbers as passed (first + count would overflow), and
 * so is a run of more rows than memory can index. */
TEST(huge_row_ranges_are_refused) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *f = NULL;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  const sk_langevin_config lc = {3, ladder, 4, 0.01f, 1, NULL};
  const sk_pc_config pc = {6, 0.2f, 10, 1, 0.16f, 1, NULL};
  const sk_ode_config oc = {6, 0.2f, 1e-3, 1e-3, 0, NULL};
  const sk_likelihood_config lk = {oc, 0};
  sk_inpaint_config ic;
  memset(&ic, 0, sizeof ic);
  ic.pc = pc;
  float x[8] = {0}, mask[8] = {0};
  double lp[4];
  sk_rng r = sk_rng_make(1, 1);
  const int64_t big = INT64_MAX;
  for (int k = 0; k < 5; k++) {
    const sk_status st =
        k == 0   ? sk_langevin_rows(f, &lc, &r, x, 4, big, big)
        : k == 1 ? sk_pc_sample_rows(f, &pc, &r, x, 4, big, big)
        : k == 2 ? sk_ode_sample_rows(f, &oc, x, 4, big, big, NULL)
        : k == 3 ? sk_likelihood_rows(f, &lk, &r, x, 4, big, big, lp, NULL)
                 : sk_inpaint_rows(f, &ic, &r, x, mask, 4, big, big);
    CHECK_EQ_INT(st, SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "9223372036854775807") && !strchr(sk_last_error(), '-'));
  }
  CHECK_EQ_INT(sk_langevin_rows(f, &lc, &r, x, big, big - 4, 4), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_langevin_rows(f, &lc, &r, x, big, big, 0), SK_ERR_INVALID);
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

TEST_MAIN(TEST_ENTRY(whole_share_is_the_plain_trainer),
          TEST_ENTRY(langevin_rows_are_those_of_the_whole_run),
          TEST_ENTRY(likelihood_rows_are_those_of_the_whole_run),
          TEST_ENTRY(inpaint_rows_are_those_of_the_whole_run),
          TEST_ENTRY(shares_take_the_whole_batch_steps),
          TEST_ENTRY(unet_shares_take_the_whole_batch_steps),
          TEST_ENTRY(resume_with_another_number_of_shares), TEST_ENTRY(bad_shares_are_refused),
          TEST_ENTRY(huge_row_ranges_are_refused))
