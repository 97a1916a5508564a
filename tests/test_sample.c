/* Samplers against analytic scores with known laws: Langevin on a Gaussian
 * reproduces its moments; the NCSN paper's mode-weight experiment (plain
 * Langevin gets 0.8/0.2 wrong, annealed Langevin recovers it); guidance with
 * the exact posterior samples the conditional law. */
#include <omp.h>

#include "scorekit/scorekit.h"
#include "test.h"

static float *draw_start(int64_t n, int uniform, float scale, uint64_t seed) {
  float *x = malloc((size_t)n * 2 * sizeof *x);
  sk_rng r = sk_rng_make(seed, 1);
  if (uniform) {
    sk_rng_uniform(&r, x, (size_t)n * 2);
    for (int64_t i = 0; i < 2 * n; i++) x[i] = scale * (2 * x[i] - 1);
  } else {
    sk_rng_normal(&r, x, (size_t)n * 2);
    for (int64_t i = 0; i < 2 * n; i++) x[i] *= scale;
  }
  return x;
}

/* The discretised chain x' = x + (ε/2)Σ⁻¹(μ − x) + √ε z is stationary at a
 * covariance with eigenvalues λ/(1 − ε/(4λ)) for Σ's eigenvalues λ: a bias
 * of at most ε/(4λ_min) relative. Tolerances: that bias plus 5 standard errors. */
TEST(langevin_gaussian_moments) {
  const float mu[2] = {1, -2}, cov[4] = {2, 0.6f, 0.6f, 0.5f}, w = 1;
  sk_gmm *g = sk_gmm_new(1, 2, &w, mu, cov);
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  const int64_t n = 8192;
  float *x = draw_start(n, 0, 1, 3);
  const float tiny = 1e-6f; /* plain Langevin: one level, α = ε */
  sk_langevin_config lc = {1, &tiny, 2500, 0.01f, 0, NULL};
  sk_rng r = sk_rng_make(4, 2);
  CHECK_OK(sk_langevin(f, &lc, &r, x, n));
  double m[2] = {0}, c[3] = {0};
  for (int64_t i = 0; i < n; i++) m[0] += x[2 * i], m[1] += x[2 * i + 1];
  m[0] /= n, m[1] /= n;
  for (int64_t i = 0; i < n; i++) {
    double a = x[2 * i] - m[0], b = x[2 * i + 1] - m[1];
    c[0] += a * a, c[1] += a * b, c[2] += b * b;
  }
  for (int k = 0; k < 3; k++) c[k] /= n - 1;
  const double lmin = 0.289, bias = 0.01 / (4 * lmin) / (1 - 0.01 / (4 * lmin));
  printf("  mean (%.4f, %.4f) cov (%.4f, %.4f, %.4f); exact (1, -2) (2, 0.6, 0.5)\n", m[0], m[1],
         c[0], c[1], c[2]);
  CHECK_NEAR(m[0], 1, 5 * sqrt(2.0 / n));
  CHECK_NEAR(m[1], -2, 5 * sqrt(0.5 / n));
  CHECK_NEAR(c[0], 2, bias * 2.21 + 5 * sqrt(2 * 4.0 / n));
  CHECK_NEAR(c[1], 0.6, bias * 2.21 + 5 * sqrt((2 * 0.5 + 0.36) / n));
  CHECK_NEAR(c[2], 0.5, bias * 2.21 + 5 * sqrt(2 * 0.25 / n));
  free(x);
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

static double share_near_first_mode(const float *x, int64_t n) {
  int64_t k = 0;
  for (int64_t i = 0; i < n; i++) k += x[2 * i] + x[2 * i + 1] > 0;
  return (double)k / n;
}

/* Song & Ermon 2019, Fig. 3: 0.8 N((5,5), I) + 0.2 N((−5,−5), I) from U[−8, 8]². */
TEST(ncsn_mode_weights) {
  sk_gmm *g = sk_gmm_builtin("ncsn-toy");
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  const int64_t n = 4096;
  float *x = draw_start(n, 1, 8, 5);
  const float tiny = 1e-6f;
  sk_langevin_config plain = {1, &tiny, 1000, 0.1f, 0, NULL};
  sk_rng r = sk_rng_make(6, 2);
  CHECK_OK(sk_langevin(f, &plain, &r, x, n));
  double w_plain = share_near_first_mode(x, n);
  free(x);
  float ladder[10];
  for (int i = 0; i < 10; i++) ladder[i] = 20.0f * powf(1.0f / 20.0f, i / 9.0f);
  x = draw_start(n, 1, 8, 5);
  sk_langevin_config annealed = {10, ladder, 100, 0.1f, 0, NULL};
  CHECK_OK(sk_langevin(f, &annealed, &r, x, n));
  double w_annealed = share_near_first_mode(x, n);
  printf("  weight of the (5,5) mode: plain Langevin %.3f, annealed %.3f (true 0.8)\n", w_plain,
         w_annealed);
  CHECK(fabs(w_plain - 0.8) > 0.15); /* stuck where the chains started: about 1/2 */
  CHECK_NEAR(w_annealed, 0.8, 0.03);
  free(x);
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

static void mog8_stats(const sk_gmm *g, const float *x, int64_t n, sk_mode_stats *st) {
  float stds[8], w[8];
  for (int k = 0; k < 8; k++) stds[k] = 0.5f, w[k] = 0.125f;
  sk_mode_stats_compute(x, n, 2, 8, sk_gmm_means(g), stds, w, st);
}

TEST(annealed_langevin_mog8_analytic) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  const int64_t n = 4096;
  float ladder[10];
  for (int i = 0; i < 10; i++) ladder[i] = 10.0f * powf(0.05f / 10.0f, i / 9.0f);
  float *x = draw_start(n, 0, 10, 7);
  sk_langevin_config lc = {10, ladder, 100, 0.2f * 0.05f * 0.05f, 1, NULL};
  sk_rng r = sk_rng_make(8, 2);
  CHECK_OK(sk_langevin(f, &lc, &r, x, n));
  sk_mode_stats st;
  mog8_stats(g, x, n, &st);
  printf("  mog8 analytic: within 3 std %.3f, covered %d, max weight error %.3f\n", st.within3,
         st.covered, st.max_weight_err);
  CHECK(st.covered == 8 && st.max_weight_err <= 0.03 && st.within3 >= 0.97);
  free(x);
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

/* With the exact posterior as classifier and w = 1, guided annealed Langevin
 * samples p(x | y): nearly all samples at the requested mode. */
TEST(guidance_with_exact_posterior) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *base;
  CHECK_OK(sk_score_fn_gmm(g, &base));
  float ladder[10];
  for (int i = 0; i < 10; i++) ladder[i] = 10.0f * powf(0.05f / 10.0f, i / 9.0f);
  const int64_t n = 1000;
  for (int y = 0; y < 8; y++) {
    sk_score_fn *f;
    CHECK_OK(sk_score_fn_guided_gmm(base, g, y, 1.0f, &f));
    float *x = draw_start(n, 0, 10, 9 + (uint64_t)y);
    sk_langevin_config lc = {10, ladder, 100, 0.2f * 0.05f * 0.05f, 1, NULL};
    sk_rng r = sk_rng_make(10, (uint64_t)y);
    CHECK_OK(sk_langevin(f, &lc, &r, x, n));
    const float *mu = sk_gmm_means(g) + 2 * y;
    int64_t near = 0;
    for (int64_t i = 0; i < n; i++) {
      double dx = x[2 * i] - mu[0], dy = x[2 * i + 1] - mu[1];
      near += sqrt(dx * dx + dy * dy) <= 3 * 0.5;
    }
    printf("  class %d: %.3f within 3 std of its mode\n", y, (double)near / n);
    CHECK((double)near / n >= 0.97);
    free(x);
    sk_score_fn_free(f);
  }
  sk_score_fn_free(base);
  sk_gmm_free(g);
}

/* The exact score error: zero for the law's own score, the squared distance
 * of the means for a shifted Gaussian (score −(x − μ) against −(x − μ')). */
TEST(score_error_known_values) {
  const float mu[2] = {0, 0}, mu2[2] = {3, 4}, cov[4] = {1, 0, 0, 1}, w = 1;
  sk_gmm *a = sk_gmm_new(1, 2, &w, mu, cov), *b = sk_gmm_new(1, 2, &w, mu2, cov);
  sk_score_fn *fa, *fb;
  CHECK_OK(sk_score_fn_gmm(a, &fa));
  CHECK_OK(sk_score_fn_gmm(b, &fb));
  double e;
  CHECK_OK(sk_score_error(fa, a, 0.5f, 3000, 1, &e));
  CHECK_NEAR(e, 0, 1e-12);
  /* At σ the covariance is (1 + σ²) I: the scores differ by (μ' − μ)/(1 + σ²). */
  CHECK_OK(sk_score_error(fb, a, 0.5f, 3000, 1, &e));
  CHECK_NEAR(e, 25.0 / (1.25 * 1.25), 1e-3);
  sk_score_fn_free(fa);
  sk_score_fn_free(fb);
  sk_gmm_free(a);
  sk_gmm_free(b);
}

/* A model's annealed Langevin run gives the same bits on 1, 2 and 3 threads
 * (chunks run in parallel, each with its own graph and its own place in the
 * noise sequence), with guidance too, and leaves the generator where a
 * sequential run would: past L·T draws of each chunk, rounded to blocks of 4. */
TEST(model_sampling_same_bits_any_threads) {
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 128, 3, 0, SK_ACT_SOFTPLUS};
  sk_model_config cc = {SK_MODEL_CLASSIFIER, 2, 64, 2, 4, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc), *clf = sk_model_new(&cc);
  sk_model_init(m, 5);
  sk_model_init(clf, 6);
  const float ladder[3] = {2.0f, 1.0f, 0.5f};
  const int64_t n = 1301; /* chunks of 512: 512 + 512 + 277 */
  const int steps = 20;
  for (int guided = 0; guided < 2; guided++) {
    float *x[3];
    uint64_t offset[3];
    for (int t = 0; t < 3; t++) {
      omp_set_num_threads(t + 1);
      sk_score_fn *f, *g = NULL;
      CHECK_OK(sk_score_fn_model(m, 512, &f));
      if (guided) CHECK_OK(sk_score_fn_guided_model(f, clf, 1, 0.5f, &g));
      x[t] = draw_start(n, 0, 2, 11);
      sk_langevin_config lc = {3, ladder, steps, 0.05f, 1, NULL};
      sk_rng r = sk_rng_make(12, 0);
      r.offset = 5; /* not a multiple of 4: the first draw rounds it up */
      CHECK_OK(sk_langevin(g ? g : f, &lc, &r, x[t], n));
      offset[t] = r.offset;
      sk_score_fn_free(g);
      sk_score_fn_free(f);
    }
    for (int t = 1; t < 3; t++) {
      CHECK(memcmp(x[0], x[t], (size_t)n * 2 * sizeof(float)) == 0);
      CHECK(offset[t] == offset[0]);
    }
    /* 8, then per chunk 3 levels × 20 steps of 512·2 (or 277·2 = 554 → 556). */
    CHECK(offset[0] == 8 + 60ull * (1024 + 1024 + 556));
    for (int t = 0; t < 3; t++) free(x[t]);
  }
  omp_set_num_threads(2);
  sk_model_free(m);
  sk_model_free(clf);
}

TEST(bad_configs_fail) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *f, *h;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  float x[4] = {0}, s = 1;
  sk_rng r = sk_rng_make(0, 0);
  sk_langevin_config bad = {1, &s, 0, 0.1f, 0, NULL};
  CHECK(sk_langevin(f, &bad, &r, x, 2) == SK_ERR_INVALID);
  bad.steps_per_level = 1;
  bad.eps = -1;
  CHECK(sk_langevin(f, &bad, &r, x, 2) == SK_ERR_INVALID);
  CHECK(sk_score_fn_guided_gmm(f, g, 8, 1, &h) == SK_ERR_INVALID);
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

/* sk_classifier_accuracy gives a share of the rows, and refuses what it
 * cannot count: n < 1, σ not positive and finite, a label outside 0..K−1
 * (named by its row), a non-finite row (named), NULL pointers. */
TEST(classifier_accuracy_checks_its_arguments) {
  sk_model_config cc = {SK_MODEL_CLASSIFIER, 2, 16, 1, 3, SK_ACT_SOFTPLUS};
  sk_model *clf = sk_model_new(&cc);
  sk_model_init(clf, 1);
  float x[8] = {0, 1, 1, 0, -1, 2, 3, -1};
  int32_t labels[4] = {0, 1, 2, 0};
  double acc = -1;
  CHECK_OK(sk_classifier_accuracy(clf, x, labels, 4, 1, &acc));
  CHECK(acc >= 0 && acc <= 1 && acc * 4 == floor(acc * 4));
  CHECK_EQ_INT(sk_classifier_accuracy(clf, x, labels, 0, 1, &acc), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_classifier_accuracy(clf, x, labels, -5, 1, &acc), SK_ERR_INVALID);
  const float sigmas[4] = {NAN, -1, 0, INFINITY};
  for (int i = 0; i < 4; i++)
    CHECK_EQ_INT(sk_classifier_accuracy(clf, x, labels, 4, sigmas[i], &acc), SK_ERR_INVALID);
  const int32_t wrong[2] = {3, -1};
  for (int i = 0; i < 2; i++) {
    labels[2] = wrong[i];
    CHECK_EQ_INT(sk_classifier_accuracy(clf, x, labels, 4, 1, &acc), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "label of row 2"));
  }
  labels[2] = 2;
  x[3] = NAN;
  CHECK_EQ_INT(sk_classifier_accuracy(clf, x, labels, 4, 1, &acc), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "x[1, 1]"));
  x[3] = 0;
  CHECK_EQ_INT(sk_classifier_accuracy(NULL, x, labels, 4, 1, &acc), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_classifier_accuracy(clf, NULL, labels, 4, 1, &acc), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_classifier_accuracy(clf, x, NULL, 4, 1, &acc), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_classifier_accuracy(clf, x, labels, 4, 1, NULL), SK_ERR_INVALID);
  sk_model_free(clf);
}

/* A model's score, its divergence, classifier guidance and classifier-free
 * guidance refuse a non-finite row, named, as a mixture's score does. */
TEST(model_scores_refuse_non_finite_rows) {
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 16, 1, 0, SK_ACT_SOFTPLUS};
  sk_model_config cc = {SK_MODEL_CLASSIFIER, 2, 16, 1, 3, SK_ACT_SOFTPLUS};
  sk_model_config kc = {SK_MODEL_NCMLP, 2, 16, 1, 3, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc), *clf = sk_model_new(&cc), *cond = sk_model_new(&kc);
  sk_model_init(m, 1);
  sk_model_init(clf, 2);
  sk_model_init(cond, 3);
  sk_score_fn *fs[3];
  CHECK_OK(sk_score_fn_model(m, 4, &fs[0]));
  CHECK_OK(sk_score_fn_guided_model(fs[0], clf, 1, 0.5f, &fs[1]));
  CHECK_OK(sk_score_fn_cfg(cond, 4, 1, 2.0f, &fs[2]));
  float x[8] = {0, 1, 1, 0, -1, 2, 3, -1}, out[8];
  double div[4];
  for (int bad = 0; bad < 2; bad++) {
    x[5] = bad ? INFINITY : NAN;
    for (int i = 0; i < 3; i++) {
      CHECK_EQ_INT(sk_score_fn_eval(fs[i], x, 4, 1, out), SK_ERR_NUMERIC);
      CHECK(strstr(sk_last_error(), "x[2, 1]"));
    }
    CHECK_EQ_INT(sk_score_fn_divergence(fs[0], x, 4, 1, 0, NULL, out, div), SK_ERR_NUMERIC);
    CHECK(strstr(sk_last_error(), "x[2, 1]"));
  }
  x[5] = 2;
  for (int i = 0; i < 3; i++) {
    CHECK_OK(sk_score_fn_eval(fs[i], x, 4, 1, out));
    for (int j = 0; j < 8; j++) CHECK(isfinite(out[j]));
  }
  CHECK_OK(sk_score_fn_divergence(fs[0], x, 4, 1, 0, NULL, out, div));
  for (int i = 2; i >= 0; i--) sk_score_fn_free(fs[i]);
  sk_model_free(cond);
  sk_model_free(clf);
  sk_model_free(m);
}

/* A Langevin ladder goes largest first: an increasing one is refused, for
 * sampling and for inpainting; equal levels are allowed. */
TEST(langevin_ladder_largest_first) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  const float up[3] = {1, 0.1f, 0.5f}, flat[2] = {1, 1};
  float x[8] = {0}, mask[8] = {1, 0, 1, 0, 1, 0, 1, 0};
  sk_rng r = sk_rng_make(1, 1);
  sk_langevin_config lc = {3, up, 2, 1e-3f, 0, NULL};
  CHECK_EQ_INT(sk_langevin(f, &lc, &r, x, 4), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "largest first"));
  sk_inpaint_config ic;
  memset(&ic, 0, sizeof ic);
  ic.sampler = SK_INPAINT_LANGEVIN;
  ic.langevin = lc;
  CHECK_EQ_INT(sk_inpaint(f, &ic, &r, x, mask, 4), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "largest first"));
  lc.n_sigmas = 2;
  lc.sigmas = flat;
  CHECK_OK(sk_langevin(f, &lc, &r, x, 4));
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

TEST_MAIN(TEST_ENTRY(langevin_gaussian_moments), TEST_ENTRY(ncsn_mode_weights),
          TEST_ENTRY(annealed_langevin_mog8_analytic), TEST_ENTRY(guidance_with_exact_posterior),
          TEST_ENTRY(score_error_known_values), TEST_ENTRY(model_sampling_same_bits_any_threads),
          TEST_ENTRY(bad_configs_fail), TEST_ENTRY(classifier_accuracy_checks_its_arguments),
          TEST_ENTRY(model_scores_refuse_non_finite_rows), TEST_ENTRY(langevin_ladder_largest_first))
