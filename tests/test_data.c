/* The data layer: Gaussian mixtures against an independent double-precision
 * reference and finite differences, sample statistics, the toy sets, and the
 * data set's batch stream and its save/restore. */
#include <omp.h>

#include "scorekit/data.h"
#include "test.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#define MIN64(a, b) ((a) < (b) ? (a) : (b))

/* ---- An independent reference: explicit inverse and determinant by
 * Gauss-Jordan elimination in double (the library uses Cholesky). ---------- */

typedef struct mix {
  int k, d;
  const float *w, *mu, *cov;
} mix;

/* inv = a⁻¹ and the log-determinant of the d×d matrix a (d <= 8). */
static double ref_inverse(int d, const double *a, double *inv) {
  double m[8][16];
  for (int i = 0; i < d; i++)
    for (int j = 0; j < 2 * d; j++) m[i][j] = j < d ? a[i * d + j] : (j - d == i);
  double logdet = 0;
  for (int c = 0; c < d; c++) {
    int p = c;
    for (int r = c + 1; r < d; r++)
      if (fabs(m[r][c]) > fabs(m[p][c])) p = r;
    for (int j = 0; j < 2 * d; j++) {
      double t = m[c][j];
      m[c][j] = m[p][j];
      m[p][j] = t;
    }
    double piv = m[c][c];
    logdet += log(fabs(piv));
    for (int j = 0; j < 2 * d; j++) m[c][j] /= piv;
    for (int r = 0; r < d; r++) {
      if (r == c) continue;
      double f = m[r][c];
      for (int j = 0; j < 2 * d; j++) m[r][j] -= f * m[c][j];
    }
  }
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) inv[i * d + j] = m[i][d + j];
  return logdet;
}

/* log p_σ(x), the log joints log π_c N_c(x) (k), and the score (d), in double. */
static double ref_eval(const mix *g, double sigma, const double *x, double *lj, double *score) {
  const int k = g->k, d = g->d;
  double wsum = 0, mx = -INFINITY, lje[16], sc[16][8];
  for (int c = 0; c < k; c++) wsum += g->w[c];
  for (int c = 0; c < k; c++) {
    double a[64], inv[64], diff[8];
    for (int i = 0; i < d * d; i++) a[i] = g->cov[c * d * d + i];
    for (int i = 0; i < d; i++) a[i * d + i] += sigma * sigma;
    double logdet = ref_inverse(d, a, inv);
    for (int i = 0; i < d; i++) diff[i] = x[i] - g->mu[c * d + i];
    double quad = 0;
    for (int i = 0; i < d; i++) {
      sc[c][i] = 0;
      for (int j = 0; j < d; j++) {
        quad += diff[i] * inv[i * d + j] * diff[j];
        sc[c][i] -= inv[i * d + j] * diff[j];
      }
    }
    lje[c] = log(g->w[c] / wsum) - 0.5 * logdet - 0.5 * d * log(2 * M_PI) - 0.5 * quad;
    mx = fmax(mx, lje[c]);
  }
  double s = 0;
  for (int c = 0; c < k; c++) s += exp(lje[c] - mx);
  double lp = mx + log(s);
  if (score)
    for (int i = 0; i < d; i++) {
      score[i] = 0;
      for (int c = 0; c < k; c++) score[i] += exp(lje[c] - lp) * sc[c][i];
    }
  if (lj)
    for (int c = 0; c < k; c++) lj[c] = lje[c];
  return lp;
}

/* Three components in 2-D and two in 3-D, all with full covariances. */
static const float w2[3] = {1.0f, 2.0f, 0.5f};
static const float mu2[6] = {0, 0, 2, -1, -1.5f, 2};
static const float cov2[12] = {1, 0.3f, 0.3f, 0.5f, 0.4f, -0.1f, -0.1f, 0.8f, 2, 0.9f, 0.9f, 1};
static const float w3[2] = {0.3f, 0.7f};
static const float mu3[6] = {1, 0, -1, -1, 1, 0.5f};
static const float cov3[18] = {1,    0.2f,  0.1f, 0.2f,  0.7f, -0.15f, 0.1f, -0.15f, 0.5f,
                               0.6f, -0.2f, 0,    -0.2f, 1.2f, 0.3f,   0,    0.3f,   0.9f};

static mix mix_of(int which) {
  mix m = which == 2 ? (mix){3, 2, w2, mu2, cov2} : (mix){2, 3, w3, mu3, cov3};
  return m;
}

static sk_gmm *gmm_of(const mix *m) { return sk_gmm_new(m->k, m->d, m->w, m->mu, m->cov); }

/* n random points (n, d): N(0, 2.5²) around the origin. */
static void random_points(int n, int d, uint64_t seed, float *x) {
  sk_rng r = sk_rng_make(seed, 1);
  sk_rng_normal(&r, x, (size_t)n * d);
  for (int i = 0; i < n * d; i++) x[i] *= 2.5f;
}

static const float sigmas[3] = {0.0f, 0.3f, 2.0f};

TEST(gmm_log_density_matches_reference) {
  for (int which = 2; which <= 3; which++) {
    mix m = mix_of(which);
    sk_gmm *g = gmm_of(&m);
    CHECK(g);
    CHECK_EQ_INT(sk_gmm_components(g), m.k);
    CHECK_EQ_INT(sk_gmm_dim(g), m.d);
    double wsum = 0;
    for (int c = 0; c < m.k; c++) wsum += sk_gmm_weights(g)[c];
    CHECK_NEAR(wsum, 1.0, 1e-6);
    enum { N = 64 };
    float x[N * 3], lp[N];
    random_points(N, m.d, 11 + which, x);
    for (int s = 0; s < 3; s++) {
      CHECK_OK(sk_gmm_log_density(g, sigmas[s], x, N, lp));
      for (int i = 0; i < N; i++) {
        double xd[3];
        for (int j = 0; j < m.d; j++) xd[j] = x[i * m.d + j];
        double ref = ref_eval(&m, sigmas[s], xd, NULL, NULL);
        CHECK_NEAR(lp[i], ref, 1e-5 * (1 + fabs(ref)));
      }
    }
    sk_gmm_free(g);
  }
}

/* The score against central differences (h = 1e-5, in double) of the
 * reference log-density, which the test above ties to the library's. */
TEST(gmm_score_is_gradient_of_log_density) {
  for (int which = 2; which <= 3; which++) {
    mix m = mix_of(which);
    sk_gmm *g = gmm_of(&m);
    CHECK(g);
    enum { N = 48 };
    float x[N * 3], sc[N * 3];
    random_points(N, m.d, 21 + which, x);
    for (int s = 0; s < 3; s++) {
      CHECK_OK(sk_gmm_score(g, sigmas[s], x, N, sc));
      for (int i = 0; i < N; i++) {
        double xd[3], fd[3], norm = 0;
        for (int j = 0; j < m.d; j++) xd[j] = x[i * m.d + j];
        for (int j = 0; j < m.d; j++) {
          const double h = 1e-5, x0 = xd[j];
          xd[j] = x0 + h;
          double up = ref_eval(&m, sigmas[s], xd, NULL, NULL);
          xd[j] = x0 - h;
          double dn = ref_eval(&m, sigmas[s], xd, NULL, NULL);
          xd[j] = x0;
          fd[j] = (up - dn) / (2 * h);
          norm = fmax(norm, fabs(fd[j]));
        }
        for (int j = 0; j < m.d; j++) CHECK_NEAR(sc[i * m.d + j], fd[j], 1e-3 * fmax(norm, 1e-2));
      }
    }
    sk_gmm_free(g);
  }
}

TEST(gmm_posterior_and_classifier_gradient) {
  for (int which = 2; which <= 3; which++) {
    mix m = mix_of(which);
    sk_gmm *g = gmm_of(&m);
    CHECK(g);
    enum { N = 40 };
    float x[N * 3], post[N * 3], grad[N * 3], grad0[N * 3];
    int32_t ys[N];
    random_points(N, m.d, 31 + which, x);
    for (int i = 0; i < N; i++) ys[i] = (int32_t)(i % m.k);
    for (int s = 0; s < 3; s++) {
      CHECK_OK(sk_gmm_posterior(g, sigmas[s], x, N, post));
      CHECK_OK(sk_gmm_log_posterior_grad(g, sigmas[s], x, N, ys, 0, grad));
      CHECK_OK(sk_gmm_log_posterior_grad(g, sigmas[s], x, N, NULL, 1, grad0));
      for (int i = 0; i < N; i++) {
        double xd[3], lj[3], sum = 0;
        for (int j = 0; j < m.d; j++) xd[j] = x[i * m.d + j];
        double lp = ref_eval(&m, sigmas[s], xd, lj, NULL);
        for (int c = 0; c < m.k; c++) {
          sum += post[i * m.k + c];
          CHECK_NEAR(post[i * m.k + c], exp(lj[c] - lp), 1e-6);
        }
        CHECK_NEAR(sum, 1.0, 1e-6);
        /* Central differences of log p(y | x) = log π_y N_y(x) - log p(x). */
        for (int pass = 0; pass < 2; pass++) {
          const int y = pass == 0 ? ys[i] : 1;
          const float *gr = pass == 0 ? grad : grad0;
          double fd[3], norm = 0;
          for (int j = 0; j < m.d; j++) {
            const double h = 1e-5, x0 = xd[j];
            xd[j] = x0 + h;
            double up = ref_eval(&m, sigmas[s], xd, lj, NULL);
            up = lj[y] - up;
            xd[j] = x0 - h;
            double dn = ref_eval(&m, sigmas[s], xd, lj, NULL);
            dn = lj[y] - dn;
            xd[j] = x0;
            fd[j] = (up - dn) / (2 * h);
            norm = fmax(norm, fabs(fd[j]));
          }
          for (int j = 0; j < m.d; j++) CHECK_NEAR(gr[i * m.d + j], fd[j], 1e-3 * fmax(norm, 1e-2));
        }
      }
    }
    sk_gmm_free(g);
  }
}

/* Far from every mode each component's density underflows in double; log-sum-exp
 * must still give the right finite values. */
TEST(gmm_far_from_modes) {
  sk_gmm *mog = sk_gmm_builtin("mog8");
  CHECK(mog);
  const float *mw = sk_gmm_weights(mog);
  mix m8 = {8, 2, mw, sk_gmm_means(mog), sk_gmm_covs(mog)};
  mix m3 = mix_of(3);
  sk_gmm *g3 = gmm_of(&m3);
  CHECK(g3);
  const mix *ms[2] = {&m8, &m3};
  sk_gmm *gs[2] = {mog, g3};
  for (int t = 0; t < 2; t++) {
    const int d = ms[t]->d, k = ms[t]->k;
    float x[4 * 3] = {1e3f, 1e3f, 1e3f, -1e3f, 5e2f, 1e3f, 1e3f, -1e3f, -7e2f, 0, 1e3f, 3e2f};
    float lp[4], sc[4 * 3], post[4 * 8];
    for (int s = 0; s < 3; s++) {
      CHECK_OK(sk_gmm_log_density(gs[t], sigmas[s], x, 4, lp));
      CHECK_OK(sk_gmm_score(gs[t], sigmas[s], x, 4, sc));
      CHECK_OK(sk_gmm_posterior(gs[t], sigmas[s], x, 4, post));
      for (int i = 0; i < 4; i++) {
        double xd[3], ref_sc[3];
        for (int j = 0; j < d; j++) xd[j] = x[i * d + j];
        double ref = ref_eval(ms[t], sigmas[s], xd, NULL, ref_sc);
        CHECK(isfinite(lp[i]) && isfinite(ref));
        CHECK(ref < -1e4);
        CHECK_NEAR(lp[i], ref, 1e-5 * fabs(ref));
        double sum = 0;
        for (int c = 0; c < k; c++) {
          CHECK(isfinite(post[i * k + c]));
          sum += post[i * k + c];
        }
        CHECK_NEAR(sum, 1.0, 1e-6);
        for (int j = 0; j < d; j++) {
          CHECK(isfinite(sc[i * d + j]));
          CHECK_NEAR(sc[i * d + j], ref_sc[j], 1e-4 * fabs(ref_sc[j]) + 1e-3);
        }
      }
    }
  }
  sk_gmm_free(mog);
  sk_gmm_free(g3);
}

TEST(gmm_builtins) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  CHECK(g);
  CHECK_EQ_INT(sk_gmm_components(g), 8);
  for (int c = 0; c < 8; c++) {
    CHECK_NEAR(sk_gmm_weights(g)[c], 0.125, 1e-7);
    CHECK_NEAR(sk_gmm_means(g)[2 * c], 4 * cos(2 * M_PI * c / 8), 1e-6);
    CHECK_NEAR(sk_gmm_means(g)[2 * c + 1], 4 * sin(2 * M_PI * c / 8), 1e-6);
    CHECK_NEAR(sk_gmm_covs(g)[4 * c], 0.25, 0);
    CHECK_NEAR(sk_gmm_covs(g)[4 * c + 1], 0, 0);
  }
  sk_gmm_free(g);
  g = sk_gmm_builtin("ncsn-toy");
  CHECK(g);
  CHECK_NEAR(sk_gmm_weights(g)[0], 0.8, 1e-7);
  CHECK_NEAR(sk_gmm_means(g)[3], -5, 0);
  /* Between the modes the posterior follows the weights: p(0 | 0) = 0.8. */
  float x0[2] = {0, 0}, post[2];
  CHECK_OK(sk_gmm_posterior(g, 0, x0, 1, post));
  CHECK_NEAR(post[0], 0.8, 1e-6);
  sk_gmm_free(g);
  CHECK(sk_gmm_builtin("mog9") == NULL);
  CHECK(strstr(sk_last_error(), "mog9"));
  CHECK(sk_gmm_builtin(NULL) == NULL);
}

TEST(gmm_mog8_sample_moments) {
  enum { N = 80000 };
  sk_gmm *g = sk_gmm_builtin("mog8");
  CHECK(g);
  float *x = malloc(sizeof(float) * N * 2);
  int32_t *lab = malloc(sizeof(int32_t) * N);
  sk_rng r = sk_rng_make(5, 0);
  CHECK_OK(sk_gmm_sample(g, 0, &r, N, x, lab));
  double mean[2] = {0, 0}, cnt[8] = {0}, cm[8][2] = {{0}};
  for (int i = 0; i < N; i++) {
    CHECK(lab[i] >= 0 && lab[i] < 8);
    cnt[lab[i]]++;
    for (int j = 0; j < 2; j++) {
      mean[j] += x[2 * i + j];
      cm[lab[i]][j] += x[2 * i + j];
    }
  }
  /* Per-coordinate variance 16/2 + 0.25 gives a standard error of 0.0102. */
  for (int j = 0; j < 2; j++) CHECK_NEAR(mean[j] / N, 0.0, 4 * sqrt(8.25 / N));
  const double se = sqrt(0.125 * 0.875 / N);
  for (int c = 0; c < 8; c++) {
    CHECK_NEAR(cnt[c] / N, 0.125, 4 * se);
    /* Each label's points sit around its own mean (std 0.5 / √10000). */
    for (int j = 0; j < 2; j++)
      CHECK_NEAR(cm[c][j] / cnt[c], sk_gmm_means(g)[2 * c + j], 4 * 0.5 / sqrt(cnt[c]));
  }
  /* Same position, same bits; labels may be omitted without changing x. */
  float *x2 = malloc(sizeof(float) * N * 2);
  sk_rng r2 = sk_rng_make(5, 0);
  CHECK_OK(sk_gmm_sample(g, 0, &r2, N, x2, NULL));
  CHECK(memcmp(x, x2, sizeof(float) * N * 2) == 0);
  CHECK(r.offset == r2.offset);
  free(x);
  free(x2);
  free(lab);
  sk_gmm_free(g);
}

/* The covariance of p_σ is the mixture's plus σ² I. */
TEST(gmm_perturbed_sample_covariance) {
  enum { N = 200000 };
  mix m = mix_of(3);
  sk_gmm *g = gmm_of(&m);
  CHECK(g);
  double mean[3] = {0}, second[3][3] = {{0}};
  for (int c = 0; c < 2; c++) {
    double wc = m.w[c] / (m.w[0] + m.w[1]);
    for (int i = 0; i < 3; i++) {
      mean[i] += wc * m.mu[c * 3 + i];
      for (int j = 0; j < 3; j++)
        second[i][j] += wc * (m.cov[c * 9 + i * 3 + j] + m.mu[c * 3 + i] * m.mu[c * 3 + j]);
    }
  }
  float *x = malloc(sizeof(float) * N * 3);
  const float sigma = 0.7f;
  sk_rng r = sk_rng_make(77, 3);
  CHECK_OK(sk_gmm_sample(g, sigma, &r, N, x, NULL));
  double sm[3] = {0}, sc[3][3] = {{0}};
  for (int i = 0; i < N; i++)
    for (int a = 0; a < 3; a++) sm[a] += x[i * 3 + a] / N;
  for (int i = 0; i < N; i++)
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 3; b++) sc[a][b] += (x[i * 3 + a] - sm[a]) * (x[i * 3 + b] - sm[b]) / N;
  for (int a = 0; a < 3; a++) {
    CHECK_NEAR(sm[a], mean[a], 0.02);
    for (int b = 0; b < 3; b++) {
      double want = second[a][b] - mean[a] * mean[b] + (a == b ? (double)sigma * sigma : 0);
      /* Standard errors here are below 0.006. */
      CHECK_NEAR(sc[a][b], want, 0.03);
    }
  }
  free(x);
  sk_gmm_free(g);
}

TEST(gmm_same_bits_any_threads) {
  mix m = mix_of(2);
  sk_gmm *g = gmm_of(&m);
  CHECK(g);
  enum { N = 20000 };
  float *x = malloc(sizeof(float) * N * 2), *a = malloc(sizeof(float) * N * 2),
        *b = malloc(sizeof(float) * N * 2);
  random_points(N, 2, 3, x);
  omp_set_num_threads(1);
  CHECK_OK(sk_gmm_score(g, 0.5f, x, N, a));
  omp_set_num_threads(2);
  CHECK_OK(sk_gmm_score(g, 0.5f, x, N, b));
  CHECK(memcmp(a, b, sizeof(float) * N * 2) == 0);
  free(x);
  free(a);
  free(b);
  sk_gmm_free(g);
}

TEST(gmm_invalid_inputs) {
  const float w[2] = {1, 1}, mu[4] = {0, 0, 1, 1};
  const float spd[8] = {1, 0, 0, 1, 1, 0.5f, 0.5f, 1};
  const float not_pd[8] = {1, 0, 0, 1, 1, 2, 2, 1}; /* eigenvalues 3, -1 */
  const float asym[8] = {1, 0, 0, 1, 1, 0.5f, 0.2f, 1};
  const float zero[8] = {1, 0, 0, 1, 0, 0, 0, 0};
  sk_gmm *g = sk_gmm_new(2, 2, w, mu, not_pd);
  CHECK(g == NULL);
  CHECK(strstr(sk_last_error(), "component 1"));
  CHECK(sk_gmm_new(2, 2, w, mu, zero) == NULL);
  CHECK(strstr(sk_last_error(), "component 1"));
  CHECK(sk_gmm_new(2, 2, w, mu, asym) == NULL);
  CHECK(strstr(sk_last_error(), "symmetric"));
  CHECK(sk_gmm_new(0, 2, w, mu, spd) == NULL);
  CHECK(sk_gmm_new(-3, 2, w, mu, spd) == NULL);
  CHECK(sk_gmm_new(2, 0, w, mu, spd) == NULL);
  const float wneg[2] = {1, -0.5f}, wzero[2] = {0, 1}, wnan[2] = {NAN, 1};
  CHECK(sk_gmm_new(2, 2, wneg, mu, spd) == NULL);
  CHECK(strstr(sk_last_error(), "weight of component 1"));
  CHECK(sk_gmm_new(2, 2, wzero, mu, spd) == NULL);
  CHECK(sk_gmm_new(2, 2, wnan, mu, spd) == NULL);
  const float munan[4] = {0, 0, INFINITY, 1};
  CHECK(sk_gmm_new(2, 2, w, munan, spd) == NULL);
  CHECK(sk_gmm_new(2, 2, NULL, mu, spd) == NULL);

  g = sk_gmm_new(2, 2, w, mu, spd);
  CHECK(g);
  float x[4] = {0, 1, NAN, 0}, out[4];
  int32_t ys[2] = {0, 2};
  CHECK(sk_gmm_log_density(g, -1.0f, x, 1, out) == SK_ERR_INVALID);
  CHECK(sk_gmm_score(g, NAN, x, 1, out) == SK_ERR_INVALID);
  CHECK(sk_gmm_score(g, 0, x, -1, out) == SK_ERR_INVALID);
  CHECK(sk_gmm_score(g, 0, x, 1, NULL) == SK_ERR_INVALID);
  CHECK(sk_gmm_score(g, 0, x, 2, out) == SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "x[1, 0]"));
  CHECK(sk_gmm_log_posterior_grad(g, 0, x, 1, NULL, 2, out) == SK_ERR_INVALID);
  x[2] = 1;
  CHECK(sk_gmm_log_posterior_grad(g, 0, x, 2, ys, 0, out) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "row 1"));
  CHECK(sk_gmm_sample(g, 0, NULL, 1, out, NULL) == SK_ERR_INVALID);
  CHECK_OK(sk_gmm_log_density(g, 0, NULL, 0, NULL));
  sk_gmm_free(g);
  sk_gmm_free(NULL);
}

/* Every allocation of sk_gmm_new and of a query fails in turn, until the call
 * succeeds: each failure is SK_ERR_NOMEM with a message of its own (the
 * message is cleared before each call), nothing leaked (the sanitizer build
 * checks that), and the call that succeeds gives the same values as one
 * that never failed. */
TEST(gmm_allocation_failures) {
  mix m = mix_of(3);
  sk_gmm *g = NULL;
  int64_t n;
  for (n = 0; n < 64 && !g; n++) {
    sk_set_error(SK_OK, "%s", "");
    sk_debug_fail_alloc_after(n);
    g = gmm_of(&m);
    sk_debug_fail_alloc_after(-1);
    if (!g) CHECK(strstr(sk_last_error(), "out of memory"));
  }
  CHECK(g);
  CHECK(n > 1); /* at least the first allocation failed */
  const float x[6] = {0.3f, -1, 2, 0.5f, -0.7f, 1.1f};
  float want[6], out[6], draw[6], draw_want[6];
  const sk_rng r0 = sk_rng_make(1, 1);
  sk_rng r = r0;
  CHECK_OK(sk_gmm_score(g, 0.1f, x, 2, want));
  CHECK_OK(sk_gmm_sample(g, 0.1f, &r, 2, draw_want, NULL));
  for (int q = 0; q < 2; q++) {
    const char *fn = q == 0 ? "sk_gmm_score" : "sk_gmm_sample";
    sk_status st = SK_ERR_NOMEM;
    for (n = 0; n < 64 && st != SK_OK; n++) {
      sk_set_error(SK_OK, "%s", "");
      r = r0;
      sk_debug_fail_alloc_after(n);
      st = q == 0 ? sk_gmm_score(g, 0.1f, x, 2, out) : sk_gmm_sample(g, 0.1f, &r, 2, draw, NULL);
      sk_debug_fail_alloc_after(-1);
      if (st != SK_OK) {
        CHECK_EQ_INT(st, SK_ERR_NOMEM);
        CHECK(strstr(sk_last_error(), fn) && strstr(sk_last_error(), "out of memory"));
      }
    }
    CHECK_OK(st);
    CHECK(n > 1);
  }
  CHECK(memcmp(out, want, sizeof want) == 0);
  CHECK(memcmp(draw, draw_want, sizeof draw_want) == 0);
  sk_gmm_free(g);
}

/* ---- Toy sets ------------------------------------------------------------- */

typedef struct toy_draw {
  float *x;
  int32_t *lab;
} toy_draw;

static toy_draw toy_get(const char *name, int n, uint64_t seed) {
  toy_draw t = {malloc(sizeof(float) * 2 * n), malloc(sizeof(int32_t) * n)};
  sk_rng r = sk_rng_make(seed, 9);
  if (sk_toy_sample(name, &r, n, t.x, t.lab) != SK_OK) {
    free(t.x);
    free(t.lab);
    t.x = NULL;
    t.lab = NULL;
  }
  return t;
}

static void toy_release(toy_draw t) {
  free(t.x);
  free(t.lab);
}

TEST(toy_names_and_classes) {
  CHECK_EQ_INT(sk_toy_count(), 7);
  const char *want[7] = {"mog8",  "moons",    "swissroll", "checkerboard",
                         "rings", "pinwheel", "2spirals"};
  const int classes[7] = {8, 2, 0, 0, 4, 5, 2};
  for (int i = 0; i < 7; i++) {
    CHECK(strcmp(sk_toy_name(i), want[i]) == 0);
    CHECK_EQ_INT(sk_toy_classes(want[i]), classes[i]);
  }
  CHECK(sk_toy_name(7) == NULL && sk_toy_name(-1) == NULL);
  CHECK_EQ_INT(sk_toy_classes("spiral"), -1);
  CHECK(strstr(sk_last_error(), "spiral"));
  float x[2];
  sk_rng r = sk_rng_make(1, 1);
  CHECK(sk_toy_sample("nope", &r, 1, x, NULL) == SK_ERR_INVALID);
  CHECK(sk_toy_sample("moons", &r, -1, x, NULL) == SK_ERR_INVALID);
  CHECK(sk_toy_sample("moons", NULL, 1, x, NULL) == SK_ERR_INVALID);
}

/* Finite, labels in range, the same bits from the same position (drawn at once
 * or with labels omitted), different bits from another seed. */
TEST(toy_all_finite_labelled_deterministic) {
  enum { N = 3001 };
  for (int s = 0; s < sk_toy_count(); s++) {
    const char *name = sk_toy_name(s);
    const int k = sk_toy_classes(name);
    toy_draw a = toy_get(name, N, 1), b = toy_get(name, N, 1), c = toy_get(name, N, 2);
    CHECK(a.x && b.x && c.x);
    for (int i = 0; i < 2 * N; i++) CHECK(isfinite(a.x[i]) && fabsf(a.x[i]) < 10);
    for (int i = 0; i < N; i++) CHECK(k == 0 ? a.lab[i] == -1 : (a.lab[i] >= 0 && a.lab[i] < k));
    CHECK(memcmp(a.x, b.x, sizeof(float) * 2 * N) == 0);
    CHECK(memcmp(a.lab, b.lab, sizeof(int32_t) * N) == 0);
    CHECK(memcmp(a.x, c.x, sizeof(float) * 2 * N) != 0);
    float *x3 = malloc(sizeof(float) * 2 * N);
    sk_rng r = sk_rng_make(1, 9);
    CHECK_OK(sk_toy_sample(name, &r, N, x3, NULL));
    CHECK(memcmp(a.x, x3, sizeof(float) * 2 * N) == 0);
    free(x3);
    toy_release(a);
    toy_release(b);
    toy_release(c);
  }
}

/* The fraction of each of k classes among n draws, within 4 standard errors. */
static int classes_balanced(const int32_t *lab, int n, int k) {
  double cnt[8] = {0};
  for (int i = 0; i < n; i++) cnt[lab[i]]++;
  const double p = 1.0 / k, se = sqrt(p * (1 - p) / n);
  for (int c = 0; c < k; c++)
    if (fabs(cnt[c] / n - p) > 4 * se) return 0;
  return 1;
}

enum { TOY_N = 40000 };

TEST(toy_rings) {
  toy_draw t = toy_get("rings", TOY_N, 3);
  CHECK(t.x);
  CHECK(classes_balanced(t.lab, TOY_N, 4));
  double rad[4] = {0}, cnt[4] = {0};
  for (int i = 0; i < TOY_N; i++) {
    rad[t.lab[i]] += hypot(t.x[2 * i], t.x[2 * i + 1]);
    cnt[t.lab[i]]++;
  }
  for (int c = 0; c < 4; c++) CHECK_NEAR(rad[c] / cnt[c], 3.0 * (4 - c) / 4, 0.01);
  toy_release(t);
}

TEST(toy_moons) {
  toy_draw t = toy_get("moons", TOY_N, 4);
  CHECK(t.x);
  CHECK(classes_balanced(t.lab, TOY_N, 2));
  double m[2][2] = {{0}}, cnt[2] = {0};
  for (int i = 0; i < TOY_N; i++) {
    /* a in [-1, 2], b in [-0.5, 1], noise below 0.5 (5 std). */
    CHECK(t.x[2 * i] > -4 && t.x[2 * i] < 4 && t.x[2 * i + 1] > -2.2f && t.x[2 * i + 1] < 2.8f);
    cnt[t.lab[i]]++;
    for (int j = 0; j < 2; j++) m[t.lab[i]][j] += t.x[2 * i + j];
  }
  /* E cos t = 0 and E sin t = 2/π on [0, π]; then ×2 + (-1, -0.2). */
  CHECK_NEAR(m[0][0] / cnt[0], -1.0, 0.04);
  CHECK_NEAR(m[0][1] / cnt[0], 4 / M_PI - 0.2, 0.04);
  CHECK_NEAR(m[1][0] / cnt[1], 1.0, 0.04);
  CHECK_NEAR(m[1][1] / cnt[1], 2 * (0.5 - 2 / M_PI) - 0.2, 0.04);
  toy_release(t);
}

TEST(toy_swissroll) {
  toy_draw t = toy_get("swissroll", TOY_N, 5);
  CHECK(t.x);
  /* |(t cos t, t sin t)| = t in [1.5π, 4.5π]; with unit noise, ÷5 the radius
   * averages about 3π/5. */
  double rad = 0;
  for (int i = 0; i < TOY_N; i++) {
    double r = hypot(t.x[2 * i], t.x[2 * i + 1]);
    CHECK(r < 4.5 * M_PI / 5 + 1.2);
    rad += r;
  }
  CHECK_NEAR(rad / TOY_N, 3 * M_PI / 5, 0.05);
  toy_release(t);
}

TEST(toy_checkerboard) {
  toy_draw t = toy_get("checkerboard", TOY_N, 6);
  CHECK(t.x);
  int cells[4][4] = {{0}};
  for (int i = 0; i < TOY_N; i++) {
    const float a = t.x[2 * i], b = t.x[2 * i + 1];
    CHECK(a >= -4 && a < 4 && b >= -4 && b < 4);
    const int ca = (int)floorf(a / 2) + 2, cb = (int)floorf(b / 2) + 2;
    /* Only the cells of one colour are filled. */
    CHECK((ca + cb) % 2 == 0);
    cells[ca][cb]++;
  }
  /* 8 filled cells, equally likely: 5000 each, standard error about 66. */
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++)
      if ((a + b) % 2 == 0) CHECK_NEAR(cells[a][b], TOY_N / 8.0, 300);
  toy_release(t);
}

TEST(toy_pinwheel) {
  toy_draw t = toy_get("pinwheel", TOY_N, 7);
  CHECK(t.x);
  CHECK(classes_balanced(t.lab, TOY_N, 5));
  double m[5][2] = {{0}}, cnt[5] = {0}, rad = 0;
  for (int i = 0; i < TOY_N; i++) {
    cnt[t.lab[i]]++;
    for (int j = 0; j < 2; j++) m[t.lab[i]][j] += t.x[2 * i + j];
    rad += hypot(t.x[2 * i], t.x[2 * i + 1]);
  }
  /* Radius 2·|f|, f = (N(1, .3²), N(0, .1²)): E|f| ≈ 1 + E f1² / 2 = 1.005. */
  CHECK_NEAR(rad / TOY_N, 2.01, 0.02);
  /* The arms are copies turned by 72° (clockwise, as FFJORD's rotation). */
  for (int c = 0; c < 5; c++) {
    const int n = (c + 1) % 5;
    double a0 = atan2(m[c][1], m[c][0]), a1 = atan2(m[n][1], m[n][0]);
    double diff = remainder(a1 - a0, 2 * M_PI);
    CHECK_NEAR(diff, -2 * M_PI / 5, 0.05);
  }
  toy_release(t);
}

TEST(toy_2spirals) {
  toy_draw t = toy_get("2spirals", TOY_N, 8);
  CHECK(t.x);
  CHECK(classes_balanced(t.lab, TOY_N, 2));
  double m[2][2] = {{0}}, cnt[2] = {0};
  for (int i = 0; i < TOY_N; i++) {
    CHECK(hypot(t.x[2 * i], t.x[2 * i + 1]) < 3 * M_PI / 3 + 0.4 + 0.6);
    cnt[t.lab[i]]++;
    for (int j = 0; j < 2; j++) m[t.lab[i]][j] += t.x[2 * i + j];
  }
  /* The second spiral is the first turned by 180°. */
  for (int j = 0; j < 2; j++) CHECK_NEAR(m[0][j] / cnt[0], -m[1][j] / cnt[1], 0.05);
  toy_release(t);
}

/* ---- Data sets ------------------------------------------------------------ */

/* n rows (i, i mod 7) with labels i mod 3, so each row names its index. */
static sk_dataset *indexed_dataset(int64_t n) {
  int64_t xs[2] = {n, 2}, ls[1] = {n};
  sk_tensor *x = sk_tensor_new(2, xs), *l = sk_tensor_new(1, ls);
  if (!x || !l) return NULL;
  for (int64_t i = 0; i < n; i++) {
    sk_tensor_data(x)[2 * i] = (float)i;
    sk_tensor_data(x)[2 * i + 1] = (float)(i % 7);
    sk_tensor_data(l)[i] = (float)(i % 3);
  }
  sk_dataset *ds = NULL;
  return sk_dataset_new(x, l, &ds) == SK_OK ? ds : NULL;
}

TEST(dataset_accessors) {
  sk_dataset *ds = indexed_dataset(10);
  CHECK(ds);
  CHECK_EQ_INT(sk_dataset_size(ds), 10);
  CHECK_EQ_INT(sk_dataset_dim(ds), 2);
  CHECK_EQ_INT(sk_dataset_classes(ds), 3);
  CHECK_NEAR(sk_dataset_x(ds)[18], 9, 0);
  CHECK_EQ_INT(sk_dataset_labels(ds)[5], 2);
  float mean[2], std[2];
  CHECK_OK(sk_dataset_stats(ds, mean, std));
  CHECK_NEAR(mean[0], 4.5, 1e-6);
  CHECK_NEAR(std[0], sqrt(8.25), 1e-6);
  sk_dataset_free(ds);
  sk_dataset_free(NULL);
}

TEST(dataset_every_row_once_per_epoch) {
  enum { N = 1000, B = 64, EPOCHS = 3 };
  sk_dataset *ds = indexed_dataset(N);
  CHECK(ds);
  float *x = malloc(sizeof(float) * 2 * N * EPOCHS);
  int32_t *lab = malloc(sizeof(int32_t) * N * EPOCHS);
  sk_rng r = sk_rng_make(12, 4);
  int64_t done = 0;
  while (done < (int64_t)N * EPOCHS) {
    int64_t b = MIN64((int64_t)B, (int64_t)N * EPOCHS - done);
    CHECK_OK(sk_dataset_batch(ds, &r, b, x + 2 * done, lab + done));
    done += b;
  }
  sk_dataset_pos p = sk_dataset_get_pos(ds);
  CHECK_EQ_INT(p.epoch, EPOCHS - 1);
  CHECK_EQ_INT(p.cursor, N);
  int in_order = 0, same_as_prev = 0;
  for (int e = 0; e < EPOCHS; e++) {
    static int seen[N];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
      const int64_t row = (int64_t)e * N + i;
      const int idx = (int)x[2 * row];
      CHECK(idx >= 0 && idx < N);
      CHECK_EQ_INT(x[2 * row + 1], idx % 7);
      CHECK_EQ_INT(lab[row], idx % 3);
      seen[idx]++;
      in_order += idx == i;
      if (e > 0) same_as_prev += x[2 * row] == x[2 * (row - N)];
    }
    for (int i = 0; i < N; i++) CHECK_EQ_INT(seen[i], 1);
  }
  /* Shuffled, and freshly each epoch. */
  CHECK(in_order < 20);
  CHECK(same_as_prev < 20);
  free(x);
  free(lab);
  sk_dataset_free(ds);
}

/* Save (pos, rng) at several points, including before the first batch and at
 * an epoch's end; a fresh data set restored there continues with the same rows. */
TEST(dataset_set_pos_reproduces) {
  enum { N = 100, B = 17, STEPS = 40 };
  const int save_after[4] = {0, 3, 10, 13};
  for (int s = 0; s < 4; s++) {
    sk_dataset *a = indexed_dataset(N), *b = indexed_dataset(N);
    CHECK(a && b);
    sk_rng ra = sk_rng_make(3, 4);
    float xa[B * 2], xb[B * 2];
    int32_t la[B], lb[B];
    /* Batches of 10 reach exactly the end of the epoch after 10 of them. */
    for (int i = 0; i < save_after[s]; i++)
      CHECK_OK(sk_dataset_batch(a, &ra, save_after[s] == 10 ? 10 : B, xa, la));
    sk_dataset_pos p = sk_dataset_get_pos(a);
    if (save_after[s] == 10) CHECK_EQ_INT(p.cursor, N);
    sk_rng rb = ra;
    CHECK_OK(sk_dataset_set_pos(b, p));
    for (int i = 0; i < STEPS; i++) {
      CHECK_OK(sk_dataset_batch(a, &ra, B, xa, la));
      CHECK_OK(sk_dataset_batch(b, &rb, B, xb, lb));
      CHECK(memcmp(xa, xb, sizeof xa) == 0);
      CHECK(memcmp(la, lb, sizeof la) == 0);
    }
    CHECK(ra.offset == rb.offset);
    sk_dataset_free(a);
    sk_dataset_free(b);
  }
  sk_dataset *ds = indexed_dataset(N);
  CHECK(ds);
  sk_dataset_pos bad = {0, N + 1, sk_rng_make(0, 0)};
  CHECK(sk_dataset_set_pos(ds, bad) == SK_ERR_INVALID);
  bad.cursor = 0;
  bad.epoch = -1;
  CHECK(sk_dataset_set_pos(ds, bad) == SK_ERR_INVALID);
  /* An epoch the batches could not count on from: refused, nothing moved. */
  bad.epoch = INT64_MAX;
  CHECK(sk_dataset_set_pos(ds, bad) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "0..2^53"));
  bad.epoch = (INT64_C(1) << 53) + 1;
  CHECK(sk_dataset_set_pos(ds, bad) == SK_ERR_INVALID);
  CHECK_EQ_INT(sk_dataset_get_pos(ds).epoch, 0);
  bad.epoch = INT64_C(1) << 53;
  CHECK_OK(sk_dataset_set_pos(ds, bad));
  sk_dataset_free(ds);
}

TEST(dataset_batch_larger_than_data_and_unlabelled) {
  int64_t xs[2] = {5, 1};
  sk_tensor *x = sk_tensor_new(2, xs);
  CHECK(x);
  for (int i = 0; i < 5; i++) sk_tensor_data(x)[i] = (float)i;
  sk_dataset *ds = NULL;
  CHECK_OK(sk_dataset_new(x, NULL, &ds));
  CHECK_EQ_INT(sk_dataset_classes(ds), 0);
  CHECK(sk_dataset_labels(ds) == NULL);
  float out[12];
  int32_t lab[12];
  sk_rng r = sk_rng_make(8, 8);
  CHECK_OK(sk_dataset_batch(ds, &r, 12, out, lab));
  int seen[5] = {0};
  for (int i = 0; i < 10; i++) seen[(int)out[i]]++;
  for (int i = 0; i < 5; i++) CHECK_EQ_INT(seen[i], 2);
  for (int i = 0; i < 12; i++) CHECK_EQ_INT(lab[i], -1);
  CHECK_EQ_INT(sk_dataset_get_pos(ds).epoch, 2);
  CHECK_EQ_INT(sk_dataset_get_pos(ds).cursor, 2);
  CHECK_OK(sk_dataset_batch(ds, &r, 0, NULL, NULL));
  CHECK(sk_dataset_batch(ds, &r, -1, out, NULL) == SK_ERR_INVALID);
  CHECK(sk_dataset_batch(ds, &r, 1, NULL, NULL) == SK_ERR_INVALID);
  sk_dataset_free(ds);
}

TEST(dataset_sigma_range_mog8) {
  enum { N = 5000 };
  int64_t xs[2] = {N, 2};
  sk_tensor *x = sk_tensor_new(2, xs);
  CHECK(x);
  sk_rng r = sk_rng_make(2, 2);
  CHECK_OK(sk_toy_sample("mog8", &r, N, sk_tensor_data(x), NULL));
  sk_dataset *ds = NULL;
  CHECK_OK(sk_dataset_new(x, NULL, &ds));
  float smax, smin, smax2, smin2;
  CHECK_OK(sk_dataset_sigma_range(ds, &smax, &smin));
  CHECK(smax > 8 && smax < 12);
  /* Per-dimension std of mog8 is √8.25. */
  CHECK_NEAR(smin, 0.01 * sqrt(8.25), 0.002);
  omp_set_num_threads(1);
  CHECK_OK(sk_dataset_sigma_range(ds, &smax2, &smin2));
  omp_set_num_threads(2);
  CHECK(smax == smax2 && smin == smin2);
  sk_dataset_free(ds);

  /* Degenerate data: one row, or all rows equal. */
  int64_t one[2] = {1, 2}, same[2] = {4, 2};
  CHECK_OK(sk_dataset_new(sk_tensor_new(2, one), NULL, &ds));
  CHECK(sk_dataset_sigma_range(ds, &smax, &smin) == SK_ERR_INVALID);
  sk_dataset_free(ds);
  CHECK_OK(sk_dataset_new(sk_tensor_new(2, same), NULL, &ds));
  CHECK(sk_dataset_sigma_range(ds, &smax, &smin) == SK_ERR_NUMERIC);
  sk_dataset_free(ds);
}

/* Brute force: every pair, in double. */
static double brute_max_distance(const float *x, int64_t n, int d) {
  double best = 0;
  for (int64_t a = 0; a < n; a++)
    for (int64_t b = a + 1; b < n; b++) {
      double s = 0;
      for (int j = 0; j < d; j++) {
        const double t = (double)x[a * d + j] - x[b * d + j];
        s += t * t;
      }
      if (s > best) best = s;
    }
  return sqrt(best);
}

/* The largest pairwise distance is exact over all rows of a small set (the
 * pruned pass against every pair), the same on 1 and 2 threads, and over
 * about 1000 evenly spaced rows for a set too large for the budget. */
TEST(dataset_max_distance_exact_and_subsampled) {
  const struct {
    const char *toy;
    int64_t n;
    int d;
  } sets[4] = {{"mog8", 20000, 2}, {"rings", 3000, 2}, {NULL, 400, 50}, {NULL, 3000, 784}};
  for (int k = 0; k < 4; k++) {
    const int64_t n = sets[k].n;
    const int d = sets[k].d;
    sk_tensor *x = sk_tensor_new(2, (int64_t[]){n, d});
    CHECK(x);
    sk_rng r = sk_rng_make(7, (uint64_t)k);
    if (sets[k].toy) CHECK_OK(sk_toy_sample(sets[k].toy, &r, n, sk_tensor_data(x), NULL));
    else sk_rng_uniform(&r, sk_tensor_data(x), (size_t)(n * d));
    sk_dataset *ds = NULL;
    CHECK_OK(sk_dataset_new(x, NULL, &ds));
    double got = 0, got1 = 0;
    int64_t rows = 0, rows1 = 0;
    CHECK_OK(sk_dataset_max_distance(ds, &got, &rows));
    omp_set_num_threads(1);
    CHECK_OK(sk_dataset_max_distance(ds, &got1, &rows1));
    omp_set_num_threads(2);
    CHECK(got == got1 && rows == rows1);
    const float *xd = sk_dataset_x(ds);
    if (k < 3) {
      CHECK_EQ_INT(rows, n);
      CHECK(got == brute_max_distance(xd, n, d));
    } else {
      /* 3000 rows of 784: √(2 · 4e8 / 784) = 1010 evenly spaced rows. */
      CHECK_EQ_INT(rows, 1010);
      float *sub = malloc((size_t)rows * d * sizeof *sub);
      for (int64_t i = 0; i < rows; i++)
        memcpy(sub + i * d, xd + (i * n / rows) * d, (size_t)d * sizeof *sub);
      CHECK(got == brute_max_distance(sub, rows, d));
      free(sub);
    }
    printf("  %s %lld×%d: largest distance %.6g over %lld rows\n", sets[k].toy ? sets[k].toy : "uniform",
           (long long)n, d, got, (long long)rows);
    sk_dataset_free(ds);
  }
}

/* Bad inputs fail cleanly; ownership passes anyway (the sanitizer build sees
 * no leak). */
TEST(dataset_invalid_inputs) {
  int64_t s1[1] = {4}, s2[2] = {4, 2}, s3[1] = {3};
  sk_dataset *ds = (sk_dataset *)1;
  CHECK(sk_dataset_new(sk_tensor_new(1, s1), NULL, &ds) == SK_ERR_SHAPE);
  CHECK(ds == NULL);
  CHECK(sk_dataset_new(NULL, sk_tensor_new(1, s1), &ds) == SK_ERR_INVALID);
  sk_tensor *x = sk_tensor_new(2, s2);
  sk_tensor_data(x)[5] = NAN;
  CHECK(sk_dataset_new(x, NULL, &ds) == SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "x[2, 1]"));
  CHECK(sk_dataset_new(sk_tensor_new(2, s2), sk_tensor_new(1, s3), &ds) == SK_ERR_SHAPE);
  const float bad_labels[3] = {-1.0f, 1.5f, NAN};
  for (int i = 0; i < 3; i++) {
    sk_tensor *l = sk_tensor_new(1, s1);
    sk_tensor_data(l)[2] = bad_labels[i];
    CHECK(sk_dataset_new(sk_tensor_new(2, s2), l, &ds) == SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "label 2"));
  }
  int64_t empty[2] = {0, 2};
  CHECK(sk_dataset_new(sk_tensor_new(2, empty), NULL, &ds) == SK_ERR_SHAPE);
  /* One tensor as both x and labels: refused, and freed once (the
   * sanitiser build catches a second free). */
  x = sk_tensor_new(2, s2);
  CHECK(sk_dataset_new(x, x, &ds) == SK_ERR_INVALID && !ds);
  CHECK(strstr(sk_last_error(), "labels are the tensor x itself"));
  int64_t img[3] = {2, 3, 3};
  x = sk_tensor_new(3, img);
  CHECK(sk_dataset_new_images(x, x, 1.0f, &ds) == SK_ERR_INVALID && !ds);
  CHECK(strstr(sk_last_error(), "labels are the tensor x itself"));
  x = sk_tensor_new(1, s1); /* refused for its rank as well */
  CHECK(sk_dataset_new(x, x, &ds) == SK_ERR_INVALID && !ds);
}

TEST(dataset_allocation_failures) {
  int64_t s2[2] = {6, 3}, s1[1] = {6};
  sk_dataset *ds = NULL;
  int64_t n;
  for (n = 0; n < 16 && !ds; n++) {
    sk_tensor *x = sk_tensor_new(2, s2), *l = sk_tensor_new(1, s1);
    CHECK(x && l);
    sk_set_error(SK_OK, "%s", "");
    sk_debug_fail_alloc_after(n);
    sk_status st = sk_dataset_new(x, l, &ds);
    sk_debug_fail_alloc_after(-1);
    if (st != SK_OK) {
      CHECK_EQ_INT(st, SK_ERR_NOMEM);
      CHECK(ds == NULL);
      CHECK(strstr(sk_last_error(), "sk_dataset_new") && strstr(sk_last_error(), "out of memory"));
    }
  }
  CHECK(ds);
  CHECK(n > 1); /* at least the first allocation failed */
  CHECK_EQ_INT(sk_dataset_classes(ds), 1);
  sk_dataset_free(ds);
}

TEST_MAIN(TEST_ENTRY(gmm_log_density_matches_reference),
          TEST_ENTRY(gmm_score_is_gradient_of_log_density),
          TEST_ENTRY(gmm_posterior_and_classifier_gradient), TEST_ENTRY(gmm_far_from_modes),
          TEST_ENTRY(gmm_builtins), TEST_ENTRY(gmm_mog8_sample_moments),
          TEST_ENTRY(gmm_perturbed_sample_covariance), TEST_ENTRY(gmm_same_bits_any_threads),
          TEST_ENTRY(gmm_invalid_inputs), TEST_ENTRY(gmm_allocation_failures),
          TEST_ENTRY(toy_names_and_classes), TEST_ENTRY(toy_all_finite_labelled_deterministic),
          TEST_ENTRY(toy_rings), TEST_ENTRY(toy_moons), TEST_ENTRY(toy_swissroll),
          TEST_ENTRY(toy_checkerboard), TEST_ENTRY(toy_pinwheel), TEST_ENTRY(toy_2spirals),
          TEST_ENTRY(dataset_accessors), TEST_ENTRY(dataset_every_row_once_per_epoch),
          TEST_ENTRY(dataset_set_pos_reproduces),
          TEST_ENTRY(dataset_batch_larger_than_data_and_unlabelled),
          TEST_ENTRY(dataset_sigma_range_mog8),
          TEST_ENTRY(dataset_max_distance_exact_and_subsampled), TEST_ENTRY(dataset_invalid_inputs),
          TEST_ENTRY(dataset_allocation_failures))
