/* The predictor-corrector sampler, the probability-flow ODE and likelihoods
 * against exact Gaussian-mixture scores: log-likelihoods equal the mixture's
 * analytic log-density, samples match the mixture, the divergences match
 * finite differences, and the bits do not depend on the number of threads. */

#include "scorekit/scorekit.h"
#include "test.h"

static const char *const mixtures[] = {"mog8", "ncsn-toy"};

/* The ladder ends the CLI's training picks for data drawn from g
 * (sk_dataset_sigma_range on 10,000 draws). */
static void default_range(const sk_gmm *g, float *smax, float *smin) {
  const int64_t n = 10000;
  sk_tensor *t = sk_tensor_new(2, (int64_t[]){n, sk_gmm_dim(g)});
  sk_rng r = sk_rng_make(99, 1);
  sk_gmm_sample(g, 0, &r, n, sk_tensor_data(t), NULL);
  sk_dataset *ds;
  sk_dataset_new(t, NULL, &ds);
  sk_dataset_sigma_range(ds, smax, smin);
  sk_dataset_free(ds);
}

static float *normal_start(int64_t n, int d, float scale, uint64_t seed) {
  float *x = malloc((size_t)n * d * sizeof *x);
  sk_rng r = sk_rng_make(seed, 7);
  sk_rng_normal(&r, x, (size_t)n * d);
  for (int64_t i = 0; i < n * d; i++) x[i] *= scale;
  return x;
}

/* within-3-std share and mean true log-density of x against mixture g. */
static void quality(const sk_gmm *g, const float *x, int64_t n, double *within3, double *logp) {
  const int k = sk_gmm_components(g), d = sk_gmm_dim(g);
  float stds[16];
  for (int c = 0; c < k; c++) stds[c] = sqrtf(sk_gmm_covs(g)[(size_t)c * d * d]);
  sk_mode_stats ms;
  sk_mode_stats_compute(x, n, d, k, sk_gmm_means(g), stds, sk_gmm_weights(g), &ms);
  *within3 = ms.within3;
  float *lp = malloc((size_t)n * sizeof *lp);
  sk_gmm_log_density(g, 0, x, n, lp);
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += lp[i];
  *logp = s / n;
  free(lp);
}

/* The data's own mean log-density, from n draws. */
static double data_logp(const sk_gmm *g, int64_t n) {
  float *x = malloc((size_t)n * sk_gmm_dim(g) * sizeof *x);
  sk_rng r = sk_rng_make(1234, 3);
  sk_gmm_sample(g, 0, &r, n, x, NULL);
  double w, lp;
  quality(g, x, n, &w, &lp);
  free(x);
  return lp;
}

/* The CLI's default sampler for points (pc at its default levels, corrector
 * steps and snr) and the ODE at its default tolerances, with the exact score:
 * at least 98% of samples within 3 std of a mode and a mean true log-density
 * within 0.1 nats of the data's, on every built-in mixture. */
TEST(pc_and_ode_match_mixtures) {
  for (int m = 0; m < 2; m++) {
    sk_gmm *g = sk_gmm_builtin(mixtures[m]);
    sk_score_fn *f;
    CHECK_OK(sk_score_fn_gmm(g, &f));
    float smax, smin;
    default_range(g, &smax, &smin);
    const int64_t n = 4096;
    const double ref = data_logp(g, 20000);
    for (int kind = 0; kind < 2; kind++) {
      float *x = normal_start(n, 2, smax, 11);
      sk_ode_stats os = {0, 0, 0};
      if (kind == 0) {
        sk_pc_config pc = {smax, smin, SK_PC_LEVELS_POINTS, SK_PC_CORRECTOR_STEPS, SK_PC_SNR, 1,
                           NULL};
        sk_rng r = sk_rng_make(5, 0);
        CHECK_OK(sk_pc_sample(f, &pc, &r, x, n));
      } else {
        sk_ode_config oc = {smax, smin, SK_ODE_TOL, SK_ODE_TOL, 1, NULL};
        CHECK_OK(sk_ode_sample(f, &oc, x, n, &os));
      }
      double w, lp;
      quality(g, x, n, &w, &lp);
      printf("  %s %s (σ %.3g → %.3g): within 3 std %.4f, mean log p %.4f (data %.4f, gap %+.4f)",
             mixtures[m], kind ? "ode" : "pc", smax, smin, w, lp, ref, lp - ref);
      if (kind) printf(", %lld evaluations", (long long)os.evals);
      printf("\n");
      CHECK(w >= 0.98);
      CHECK(fabs(lp - ref) <= 0.1);
      free(x);
    }
    sk_score_fn_free(f);
    sk_gmm_free(g);
  }
}

/* ODE log-likelihoods of points against log p_{σ_min} of the mixture: exact
 * trace to 1e-3 nats; Hutchinson's estimates unbiased within 4 standard
 * errors. The prior N(0, σ_max² I) is off by about |x(σ_max)·m|/σ_max² for a
 * mixture of mean m (docs/MATH.md): σ_max = 1e5 makes that ~1e-4 nats here. */
TEST(likelihood_matches_mixture) {
  for (int m = 0; m < 2; m++) {
    sk_gmm *g = sk_gmm_builtin(mixtures[m]);
    sk_score_fn *f;
    CHECK_OK(sk_score_fn_gmm(g, &f));
    const float smin = 0.03f;
    const int64_t n = 600;
    float *x = malloc((size_t)n * 2 * sizeof *x), *want = malloc((size_t)n * sizeof *want);
    double *got = malloc((size_t)n * sizeof *got), *hut = malloc((size_t)n * sizeof *hut);
    sk_rng r = sk_rng_make(3, 3);
    CHECK_OK(sk_gmm_sample(g, smin, &r, n, x, NULL));
    CHECK_OK(sk_gmm_log_density(g, smin, x, n, want));
    sk_likelihood_config lc = {{1e5f, smin, 1e-6, 1e-6, 0, NULL}, 0};
    sk_ode_stats os;
    CHECK_OK(sk_likelihood(f, &lc, &r, x, n, got, &os));
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(got[i] - want[i]));
    lc.probes = 1;
    CHECK_OK(sk_likelihood(f, &lc, &r, x, n, hut, NULL));
    double mean = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) mean += hut[i] - want[i];
    mean /= n;
    for (int64_t i = 0; i < n; i++) sq += (hut[i] - want[i] - mean) * (hut[i] - want[i] - mean);
    const double se = sqrt(sq / (n - 1) / n);
    printf("  %s: exact trace max |error| %.2e nats (%lld evaluations); Hutchinson mean error "
           "%+.4f ± %.4f\n", mixtures[m], worst, (long long)os.evals, mean, se);
    CHECK(worst <= 1e-3);
    CHECK(se > 0 && fabs(mean) <= 4 * se);
    free(x), free(want), free(got), free(hut);
    sk_score_fn_free(f);
    sk_gmm_free(g);
  }
}

/* The divergence against central differences of the score, in double from
 * float scores (h = 1e-2: truncation ~h², rounding ~1e-7/h relative): exact
 * traces, and one probe's vᵀ ∇ₓ(vᵀ s) against the difference along v. */
static void check_divergence(sk_score_fn *f, const float *x, int64_t n, float sigma, double tol) {
  const int d = sk_score_fn_dim(f);
  float *s = malloc((size_t)n * d * sizeof *s), *v = malloc((size_t)n * d * sizeof *v);
  float *xp = malloc((size_t)n * d * sizeof *xp), *sp = malloc((size_t)n * d * sizeof *sp),
        *sm = malloc((size_t)n * d * sizeof *sm);
  double *div = malloc((size_t)n * sizeof *div), *fd = calloc((size_t)n, sizeof *fd);
  const float h = 1e-2f;
  CHECK_OK(sk_score_fn_divergence(f, x, n, sigma, 0, NULL, s, div));
  for (int j = 0; j < d; j++) {
    for (int sign = -1; sign <= 1; sign += 2) {
      memcpy(xp, x, (size_t)n * d * sizeof *xp);
      for (int64_t i = 0; i < n; i++) xp[i * d + j] += (float)sign * h;
      CHECK_OK(sk_score_fn_eval(f, xp, n, sigma, sign > 0 ? sp : sm));
    }
    for (int64_t i = 0; i < n; i++) fd[i] += ((double)sp[i * d + j] - sm[i * d + j]) / (2.0 * h);
  }
  for (int64_t i = 0; i < n; i++) CHECK_NEAR(div[i], fd[i], tol * (1 + fabs(fd[i])));
  sk_rng r = sk_rng_make(5, 5);
  sk_rng_rademacher(&r, v, (size_t)n * d);
  CHECK_OK(sk_score_fn_divergence(f, x, n, sigma, 1, v, s, div));
  for (int sign = -1; sign <= 1; sign += 2) {
    for (int64_t i = 0; i < n * d; i++) xp[i] = x[i] + (float)sign * h * v[i];
    CHECK_OK(sk_score_fn_eval(f, xp, n, sigma, sign > 0 ? sp : sm));
  }
  for (int64_t i = 0; i < n; i++) {
    double want = 0;
    for (int j = 0; j < d; j++) want += v[i * d + j] * ((double)sp[i * d + j] - sm[i * d + j]) / (2.0 * h);
    CHECK_NEAR(div[i], want, tol * (1 + fabs(want)));
  }
  /* The score it returns is the score. */
  CHECK_OK(sk_score_fn_eval(f, x, n, sigma, sp));
  for (int64_t i = 0; i < n * d; i++) CHECK_NEAR(s[i], sp[i], 1e-5 * (1 + fabs(sp[i])));
  free(s), free(v), free(xp), free(sp), free(sm), free(div), free(fd);
}

TEST(divergence_matches_finite_differences) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  float *x = normal_start(64, 2, 3, 4);
  check_divergence(f, x, 64, 0.7f, 2e-3);
  free(x);
  sk_score_fn_free(f);
  /* A full-covariance mixture in 3-D: C_k⁻¹ is not diagonal. */
  const float w[2] = {0.3f, 0.7f}, mu[6] = {1, 0, -1, -1, 2, 0},
              cov[18] = {1, 0.5f, 0.2f, 0.5f, 2, 0.3f, 0.2f, 0.3f, 1.5f,
                         0.5f, -0.2f, 0, -0.2f, 0.8f, 0.1f, 0, 0.1f, 0.6f};
  sk_gmm *g3 = sk_gmm_new(2, 3, w, mu, cov);
  CHECK_OK(sk_score_fn_gmm(g3, &f));
  x = normal_start(64, 3, 1.5f, 5);
  check_divergence(f, x, 64, 0.3f, 2e-3);
  free(x);
  sk_score_fn_free(f);
  sk_gmm_free(g3);
  /* A noise-conditional MLP: the compiled graph of vᵀ ∇ₓ(vᵀ s). */
  sk_model_config mc = {SK_MODEL_NCMLP, 3, 32, 2, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 3);
  CHECK_OK(sk_score_fn_model(m, 50, &f));
  x = normal_start(50, 3, 1, 6);
  check_divergence(f, x, 37, 0.5f, 2e-3); /* fewer rows than the graph's */
  free(x);
  sk_score_fn_free(f);
  sk_model_free(m);
  sk_gmm_free(g);
}

/* Same seed, same bits on 1 and 3 threads: PC, ODE and likelihood (with
 * probes), on a model over 3 chunks of uneven size; the generator ends
 * where a sequential run leaves it. */
TEST(same_bits_any_threads) {
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 64, 2, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 8);
  const int64_t n = 301; /* chunks of 128: 128 + 128 + 45 */
  float *x[2];
  double *lp[2];
  uint64_t off[2][2];
  for (int t = 0; t < 2; t++) {
    sk_set_num_threads(t ? 3 : 1);
    sk_score_fn *f;
    CHECK_OK(sk_score_fn_model(m, 128, &f));
    x[t] = normal_start(2 * n, 2, 3, 9);
    sk_pc_config pc = {3, 0.05f, 20, 2, 0.16f, 1, NULL};
    sk_rng r = sk_rng_make(1, 2);
    r.offset = 6;
    CHECK_OK(sk_pc_sample(f, &pc, &r, x[t], n));
    off[t][0] = r.offset;
    sk_ode_config oc = {3, 0.05f, 1e-4, 1e-4, 1, NULL};
    CHECK_OK(sk_ode_sample(f, &oc, x[t] + 2 * n, n, NULL));
    lp[t] = malloc((size_t)n * sizeof *lp[t]);
    sk_likelihood_config lc = {{3, 0.05f, 1e-4, 1e-4, 0, NULL}, 2};
    CHECK_OK(sk_likelihood(f, &lc, &r, x[t], n, lp[t], NULL));
    off[t][1] = r.offset;
    sk_score_fn_free(f);
  }
  sk_set_num_threads(0);
  CHECK(memcmp(x[0], x[1], (size_t)n * 4 * sizeof(float)) == 0);
  CHECK(memcmp(lp[0], lp[1], (size_t)n * sizeof(double)) == 0);
  CHECK(off[0][0] == off[1][0] && off[0][1] == off[1][1]);
  /* 8, then 20 levels × 3 draws of 256, 256 and 90 → 92 values; then 2 probes each. */
  CHECK_EQ_INT(off[0][0], 8 + 60 * (256 + 256 + 92));
  CHECK_EQ_INT(off[0][1], off[0][0] + 2 * (256 + 256 + 92));
  for (int t = 0; t < 2; t++) free(x[t]), free(lp[t]);
  sk_model_free(m);
}

static int64_t last_done, last_total, calls, backwards;
static void on_progress(void *ctx, int64_t done, int64_t total) {
  (void)ctx;
  backwards += done < last_done;
  last_done = done, last_total = total, calls++;
}

/* Snapshots: the first is the start, the last the sample, and the ODE's
 * middle ones are where the ODE alone reaches at their σ; progress rises
 * to done == total. */
TEST(snapshots_and_progress) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  const int64_t n = 3000;
  const int K = 5;
  float snaps[10], start[2];
  sk_sample_hooks hk = {on_progress, NULL, K, snaps};
  float *x = normal_start(n, 2, 10, 12);
  memcpy(start, x, sizeof start);
  sk_pc_config pc = {10, 0.03f, 50, 1, 0.16f, 1, &hk};
  sk_rng r = sk_rng_make(1, 1);
  last_done = calls = backwards = 0;
  CHECK_OK(sk_pc_sample(f, &pc, &r, x, n));
  CHECK(calls >= 1 && backwards == 0 && last_done == last_total && last_total == 2 * 100);
  CHECK(snaps[0] == start[0] && snaps[1] == start[1]);
  CHECK(snaps[8] == x[0] && snaps[9] == x[1]);
  free(x);
  x = normal_start(n, 2, 10, 12);
  sk_ode_config oc = {10, 0.03f, 1e-6, 1e-6, 1, &hk};
  last_done = calls = backwards = 0;
  CHECK_OK(sk_ode_sample(f, &oc, x, n, NULL));
  CHECK(calls >= 1 && backwards == 0 && last_done == last_total && last_total == 2 * 1000);
  CHECK(snaps[0] == start[0] && snaps[1] == start[1]);
  CHECK(snaps[8] == x[0] && snaps[9] == x[1]);
  for (int k = 1; k < K - 1; k++) {
    float y[2] = {start[0], start[1]};
    const float sk = 10.0f * powf(0.03f / 10.0f, (float)k / (K - 1));
    sk_ode_config alone = {10, sk, 1e-6, 1e-6, 0, NULL};
    CHECK_OK(sk_ode_sample(f, &alone, y, 1, NULL));
    printf("  snapshot %d at σ %.4g: (%.5f, %.5f), the ODE alone (%.5f, %.5f)\n", k, sk,
           snaps[2 * k], snaps[2 * k + 1], y[0], y[1]);
    CHECK_NEAR(snaps[2 * k], y[0], 2e-3 * (1 + fabs(y[0])));
    CHECK_NEAR(snaps[2 * k + 1], y[1], 2e-3 * (1 + fabs(y[1])));
  }
  free(x);
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

/* NCSNv2's published step size for CIFAR-10 (T = 5, 232 levels from 50 to
 * 0.01: ε = 6.2e-6 in their convention x ← x + α s + √(2α) z, twice that in
 * ours), and the ratio it minimises checked on a grid. */
TEST(ncsnv2_step_size) {
  const float gamma = powf(50.0f / 0.01f, 1.0f / 231.0f);
  const float eps = sk_langevin_ncsnv2_eps(5, gamma, 0.01f);
  printf("  CIFAR-10 setting: ε = %.4g (NCSNv2's convention %.4g; the paper 6.2e-6)\n", eps,
         eps / 2);
  CHECK_NEAR(eps / 2, 6.2e-6, 0.05e-6);
  for (int T = 1; T <= 1000; T *= 10) {
    const double g = 1.9, a0 = sk_langevin_ncsnv2_eps(T, (float)g, 1.0f) / 2.0;
    double best = 1e300, at = 0;
    for (int i = 1; i < 100000; i++) {
      const double a = i / 100000.0, st = 2 / (2 - a);
      const double v = pow(1 - a, 2.0 * T) * (g * g - st) + st;
      if (v < best) best = v, at = a;
    }
    CHECK_NEAR(a0, at, 2e-5 + 1e-3 * at);
  }
  CHECK(sk_langevin_ncsnv2_eps(0, 2, 1) == 0);
  CHECK(sk_langevin_ncsnv2_eps(5, 1, 1) == 0);
  CHECK(sk_langevin_ncsnv2_eps(5, 2, -1) == 0);
}

TEST(bad_configs_fail) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *f, *guided;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  float x[4] = {0, 0, 1, 1};
  double lp[2];
  sk_rng r = sk_rng_make(0, 0);
  const sk_pc_config pcs[] = {{1, 1, 10, 1, 0.16f, 1, NULL},     {1, 0, 10, 1, 0.16f, 1, NULL},
                              {NAN, 0.1f, 10, 1, 0.16f, 1, NULL}, {1, 0.1f, 1, 1, 0.16f, 1, NULL},
                              {1, 0.1f, 10, -1, 0.16f, 1, NULL}, {1, 0.1f, 10, 1, 0, 1, NULL},
                              {1, 0.1f, 10, 1, INFINITY, 1, NULL}};
  for (size_t i = 0; i < sizeof pcs / sizeof pcs[0]; i++)
    CHECK(sk_pc_sample(f, &pcs[i], &r, x, 2) == SK_ERR_INVALID);
  const sk_ode_config odes[] = {{0.1f, 1, 1e-5, 1e-5, 0, NULL}, {1, 0.1f, 0, 1e-5, 0, NULL},
                                {1, 0.1f, 1e-5, -1, 0, NULL},   {1, 0.1f, NAN, 1e-5, 0, NULL},
                                {1, 0.1f, 2, 1e-5, 0, NULL}};
  for (size_t i = 0; i < sizeof odes / sizeof odes[0]; i++) {
    CHECK(sk_ode_sample(f, &odes[i], x, 2, NULL) == SK_ERR_INVALID);
    sk_likelihood_config lc = {odes[i], 0};
    CHECK(sk_likelihood(f, &lc, &r, x, 2, lp, NULL) == SK_ERR_INVALID);
  }
  sk_likelihood_config lc = {{1, 0.1f, 1e-5, 1e-5, 0, NULL}, -1};
  CHECK(sk_likelihood(f, &lc, &r, x, 2, lp, NULL) == SK_ERR_INVALID);
  /* Guided scores have no divergence; σ must be positive. */
  CHECK_OK(sk_score_fn_guided_gmm(f, g, 1, 1, &guided));
  lc.probes = 0;
  CHECK(sk_likelihood(guided, &lc, &r, x, 2, lp, NULL) == SK_ERR_INVALID);
  double div[2];
  float s[4];
  CHECK(sk_score_fn_divergence(f, x, 2, 0, 0, NULL, s, div) == SK_ERR_INVALID);
  CHECK(sk_score_fn_divergence(f, x, 0, 1, 0, NULL, s, div) == SK_ERR_INVALID);
  /* A diverging point is named. */
  float far[4] = {0, 0, NAN, 0};
  CHECK(sk_likelihood(f, &(sk_likelihood_config){{1, 0.1f, 1e-5, 1e-5, 0, NULL}, 0}, &r, far, 2,
                      lp, NULL) != SK_OK);
  sk_score_fn_free(guided);
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

/* A tiny U-Net (20×20, random weights): its likelihood runs and is finite,
 * and Hutchinson's estimates over 24 copies of an image agree with the exact
 * trace within 4 standard errors. */
TEST(unet_likelihood_traces_agree) {
  sk_unet_config uc = {{2, 4, 4, 4}, {1, 20, 20}, 8, 16};
  sk_model *m = sk_model_new_unet(&uc);
  CHECK(m != NULL);
  sk_model_init(m, 21);
  const int d = 400, copies = 24;
  float *x = malloc((size_t)copies * d * sizeof *x);
  sk_rng r = sk_rng_make(2, 2);
  sk_rng_uniform(&r, x, (size_t)d);
  for (int i = 1; i < copies; i++) memcpy(x + (size_t)i * d, x, (size_t)d * sizeof *x);
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_model(m, copies, &f));
  double exact, hut[24];
  sk_likelihood_config lc = {{5, 0.05f, 1e-3, 1e-3, 0, NULL}, 0};
  sk_ode_stats os;
  CHECK_OK(sk_likelihood(f, &lc, &r, x, 1, &exact, &os));
  lc.probes = 1;
  CHECK_OK(sk_likelihood(f, &lc, &r, x, copies, hut, NULL));
  double mean = 0, sq = 0;
  for (int i = 0; i < copies; i++) mean += hut[i] / copies;
  for (int i = 0; i < copies; i++) sq += (hut[i] - mean) * (hut[i] - mean);
  const double se = sqrt(sq / (copies - 1) / copies);
  printf("  U-Net 20×20: exact %.3f nats (%lld evaluations), Hutchinson %.3f ± %.3f\n", exact,
         (long long)os.evals, mean, se);
  CHECK(isfinite(exact) && se > 0);
  CHECK(fabs(mean - exact) <= 4 * se);
  free(x);
  sk_score_fn_free(f);
  sk_model_free(m);
}

/* Hooks that ask for snapshots they cannot hold are refused by every
 * sampler: one snapshot, a negative count, or no buffer. Zero is none. */
TEST(snapshot_hooks_without_room_are_refused) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  float x[4] = {0}, mask[4] = {1, 0, 1, 0}, snaps[8];
  sk_rng r = sk_rng_make(1, 1);
  const float ladder[2] = {1, 0.1f};
  sk_sample_hooks hk = {NULL, NULL, 0, NULL};
  sk_langevin_config lc = {2, ladder, 2, 1e-3f, 0, &hk};
  sk_pc_config pc = {1, 0.1f, 3, 1, 0.16f, 0, &hk};
  sk_ode_config oc = {1, 0.1f, 1e-3, 1e-3, 0, &hk};
  sk_inpaint_config ic;
  memset(&ic, 0, sizeof ic);
  ic.pc = pc;
  const sk_sample_hooks bad[3] = {{NULL, NULL, 1, snaps}, {NULL, NULL, -3, snaps},
                                  {NULL, NULL, 3, NULL}};
  for (int i = 0; i < 3; i++) {
    hk = bad[i];
    for (int k = 0; k < 4; k++) {
      const sk_status st = k == 0   ? sk_langevin(f, &lc, &r, x, 2)
                           : k == 1 ? sk_pc_sample(f, &pc, &r, x, 2)
                           : k == 2 ? sk_ode_sample(f, &oc, x, 2, NULL)
                                    : sk_inpaint(f, &ic, &r, x, mask, 2);
      CHECK_EQ_INT(st, SK_ERR_INVALID);
      CHECK(strstr(sk_last_error(), "snapshots"));
    }
  }
  hk = (sk_sample_hooks){NULL, NULL, 0, snaps};
  CHECK_OK(sk_langevin(f, &lc, &r, x, 2));
  hk.snapshots = NULL;
  CHECK_OK(sk_ode_sample(f, &oc, x, 2, NULL));
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

/* A non-finite start is named by its row in the run (here in the second
 * chunk), for a model's score and a mixture's, by the ODE, the likelihood
 * and the samplers: not blamed on σ. */
TEST(non_finite_start_is_named) {
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 16, 1, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 1);
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *fs[2];
  CHECK_OK(sk_score_fn_model(m, 2, &fs[0]));
  CHECK_OK(sk_score_fn_gmm(g, &fs[1]));
  const float ladder[2] = {1, 0.1f};
  const sk_langevin_config lc = {2, ladder, 2, 1e-3f, 0, NULL};
  const sk_pc_config pc = {1, 0.1f, 3, 1, 0.16f, 0, NULL};
  const sk_ode_config oc = {1, 0.1f, 1e-3, 1e-3, 0, NULL};
  const sk_likelihood_config lk = {oc, 0};
  sk_rng r = sk_rng_make(1, 1);
  double lp[4];
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < 4; k++) {
      float x[8] = {0, 1, 1, 0, -1, 2, 3, -1};
      x[7] = k % 2 ? INFINITY : NAN;
      const sk_status st = k == 0   ? sk_ode_sample(fs[i], &oc, x, 4, NULL)
                           : k == 1 ? sk_likelihood(fs[i], &lk, &r, x, 4, lp, NULL)
                           : k == 2 ? sk_langevin(fs[i], &lc, &r, x, 4)
                                    : sk_pc_sample(fs[i], &pc, &r, x, 4);
      CHECK_EQ_INT(st, SK_ERR_NUMERIC);
      CHECK(strstr(sk_last_error(), "x[3, 1]") && !strstr(sk_last_error(), "σ"));
    }
  sk_score_fn_free(fs[1]);
  sk_score_fn_free(fs[0]);
  sk_gmm_free(g);
  sk_model_free(m);
}

/* Tolerances where the solver's step sizes stay finite, 1e-12 <= rtol < 1
 * and 1e-12 <= atol < 1e6; below them (1e-300, whose scaled norms overflow
 * to inf/inf) refused as tolerances. */
TEST(tolerances_outside_their_range_are_refused) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  float x[4] = {0.5f, 1, -1, 2};
  double lp[2];
  sk_rng r = sk_rng_make(1, 1);
  const double tols[3][2] = {{1e-300, 1e-300}, {1e-13, 1e-3}, {1e-3, 1e-13}};
  for (int i = 0; i < 3; i++) {
    const sk_ode_config oc = {1, 0.01f, tols[i][0], tols[i][1], 0, NULL};
    CHECK_EQ_INT(sk_ode_sample(f, &oc, x, 2, NULL), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "rtol"));
    const sk_likelihood_config lk = {oc, 0};
    CHECK_EQ_INT(sk_likelihood(f, &lk, &r, x, 2, lp, NULL), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "rtol"));
  }
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

TEST_MAIN(TEST_ENTRY(pc_and_ode_match_mixtures), TEST_ENTRY(likelihood_matches_mixture),
          TEST_ENTRY(divergence_matches_finite_differences), TEST_ENTRY(same_bits_any_threads),
          TEST_ENTRY(snapshots_and_progress), TEST_ENTRY(ncsnv2_step_size),
          TEST_ENTRY(bad_configs_fail), TEST_ENTRY(unet_likelihood_traces_agree),
          TEST_ENTRY(snapshot_hooks_without_room_are_refused), TEST_ENTRY(non_finite_start_is_named),
          TEST_ENTRY(tolerances_outside_their_range_are_refused))
