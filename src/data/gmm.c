/* Gaussian mixtures with exact log-density, score, posterior and classifier
 * gradient, also of the σ-perturbed law Σ_k π_k N(μ_k, Σ_k + σ² I); sampling. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/internal.h"
#include "scorekit/data.h"

/* Caps keep k·d·d and the per-thread scratch far from overflow; a mixture this
 * large would be far too slow to query anyway. */
#define GMM_MAX_K (1 << 16)
#define GMM_MAX_D (1 << 12)

struct sk_gmm {
  int k, d;
  float *weights;  /* (k), normalised */
  float *means;    /* (k, d) */
  float *covs;     /* (k, d, d), symmetrised */
  double *log_w;   /* (k) */
  double *means64; /* (k, d) */
  double *covs64;  /* (k, d, d) */
};

/* The Cholesky factors of Σ_k + σ² I for one query. */
typedef struct gmm_factors {
  double *chol;  /* (k, d, d), lower triangle used */
  double *log_c; /* (k): log π_k - ½ log det - (d/2) log 2π */
} gmm_factors;

/* In-place lower Cholesky factor of the d×d matrix a; false when it is not
 * (numerically) positive definite. */
static bool cholesky(double *a, int d) {
  for (int j = 0; j < d; j++) {
    double s = a[(size_t)j * d + j];
    for (int p = 0; p < j; p++) s -= a[(size_t)j * d + p] * a[(size_t)j * d + p];
    if (!(s > 0) || !isfinite(s)) return false;
    double l = sqrt(s);
    a[(size_t)j * d + j] = l;
    for (int i = j + 1; i < d; i++) {
      double t = a[(size_t)i * d + j];
      for (int p = 0; p < j; p++) t -= a[(size_t)i * d + p] * a[(size_t)j * d + p];
      a[(size_t)i * d + j] = t / l;
    }
    for (int i = 0; i < j; i++) a[(size_t)i * d + j] = 0;
  }
  return true;
}

void sk_gmm_free(sk_gmm *g) {
  if (!g) return;
  sk__free(g->weights);
  sk__free(g->means);
  sk__free(g->covs);
  sk__free(g->log_w);
  sk__free(g->means64);
  sk__free(g->covs64);
  sk__free(g);
}

sk_gmm *sk_gmm_new(int k, int d, const float *weights, const float *means, const float *covs) {
  if (k <= 0 || k > GMM_MAX_K) {
    sk__fail(SK_ERR_INVALID, "gmm: %d components, expected 1..%d", k, GMM_MAX_K);
    return NULL;
  }
  if (d <= 0 || d > GMM_MAX_D) {
    sk__fail(SK_ERR_INVALID, "gmm: dimension %d, expected 1..%d", d, GMM_MAX_D);
    return NULL;
  }
  if (!weights || !means || !covs) {
    sk__fail(SK_ERR_INVALID, "gmm: NULL %s", !weights ? "weights" : !means ? "means" : "covs");
    return NULL;
  }
  double wsum = 0;
  for (int c = 0; c < k; c++) {
    if (!isfinite(weights[c]) || !(weights[c] > 0)) {
      sk__fail(SK_ERR_INVALID, "gmm: weight of component %d is %g, expected finite and > 0", c,
               (double)weights[c]);
      return NULL;
    }
    wsum += weights[c];
  }
  size_t kd = (size_t)k * (size_t)d, kdd = kd * (size_t)d;
  for (size_t i = 0; i < kd; i++) {
    if (!isfinite(means[i])) {
      sk__fail(SK_ERR_NUMERIC, "gmm: mean of component %zu, dimension %zu is %g", i / (size_t)d,
               i % (size_t)d, (double)means[i]);
      return NULL;
    }
  }
  for (int c = 0; c < k; c++) {
    const float *s = covs + (size_t)c * d * d;
    for (int i = 0; i < d; i++) {
      for (int j = 0; j <= i; j++) {
        double a = s[(size_t)i * d + j], b = s[(size_t)j * d + i];
        if (!isfinite(a) || !isfinite(b)) {
          sk__fail(SK_ERR_NUMERIC,
                   "gmm: covariance of component %d has a non-finite entry at (%d, %d)", c, i, j);
          return NULL;
        }
        double scale = sqrt(fabs((double)s[(size_t)i * d + i] * s[(size_t)j * d + j]));
        if (fabs(a - b) > 1e-5 * scale) {
          sk__fail(SK_ERR_INVALID,
                   "gmm: covariance of component %d is not symmetric: (%d, %d) = %g, (%d, %d) = %g",
                   c, i, j, a, j, i, b);
          return NULL;
        }
      }
    }
  }
  sk_gmm *g = sk__calloc(1, sizeof *g);
  if (!g) goto nomem;
  g->k = k;
  g->d = d;
  g->weights = sk__malloc((size_t)k * sizeof(float));
  g->means = sk__malloc(kd * sizeof(float));
  g->covs = sk__malloc(kdd * sizeof(float));
  g->log_w = sk__malloc((size_t)k * sizeof(double));
  g->means64 = sk__malloc(kd * sizeof(double));
  g->covs64 = sk__malloc(kdd * sizeof(double));
  if (!g->weights || !g->means || !g->covs || !g->log_w || !g->means64 || !g->covs64) goto nomem;
  for (int c = 0; c < k; c++) {
    g->weights[c] = (float)(weights[c] / wsum);
    g->log_w[c] = log(weights[c] / wsum);
  }
  for (size_t i = 0; i < kd; i++) {
    g->means[i] = means[i];
    g->means64[i] = means[i];
  }
  for (int c = 0; c < k; c++) {
    const float *s = covs + (size_t)c * d * d;
    double *t = g->covs64 + (size_t)c * d * d;
    for (int i = 0; i < d; i++)
      for (int j = 0; j < d; j++)
        t[(size_t)i * d + j] = 0.5 * ((double)s[(size_t)i * d + j] + (double)s[(size_t)j * d + i]);
    for (size_t i = 0; i < (size_t)d * d; i++) g->covs[(size_t)c * d * d + i] = (float)t[i];
  }
  /* Positive definiteness, on a scratch copy of each covariance. */
  double *tmp = sk__malloc((size_t)d * d * sizeof(double));
  if (!tmp) goto nomem;
  for (int c = 0; c < k; c++) {
    memcpy(tmp, g->covs64 + (size_t)c * d * d, (size_t)d * d * sizeof(double));
    if (!cholesky(tmp, d)) {
      sk__free(tmp);
      sk_gmm_free(g);
      sk__fail(SK_ERR_INVALID, "gmm: covariance of component %d is not positive definite", c);
      return NULL;
    }
  }
  sk__free(tmp);
  return g;
nomem:
  sk_gmm_free(g);
  sk__fail(SK_ERR_NOMEM, "gmm: out of memory for %d components in %d dimensions", k, d);
  return NULL;
}

int sk_gmm_components(const sk_gmm *g) { return g->k; }
int sk_gmm_dim(const sk_gmm *g) { return g->d; }
const float *sk_gmm_weights(const sk_gmm *g) { return g->weights; }
const float *sk_gmm_means(const sk_gmm *g) { return g->means; }
const float *sk_gmm_covs(const sk_gmm *g) { return g->covs; }

static void factors_free(gmm_factors *f) {
  sk__free(f->chol);
  sk__free(f->log_c);
}

static sk_status factors_make(const sk_gmm *g, float sigma, const char *fn, gmm_factors *f) {
  const int k = g->k, d = g->d;
  const size_t dd = (size_t)d * d;
  f->chol = sk__malloc((size_t)k * dd * sizeof(double));
  f->log_c = sk__malloc((size_t)k * sizeof(double));
  if (!f->chol || !f->log_c) {
    factors_free(f);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %d Cholesky factors", fn, k);
  }
  const double s2 = (double)sigma * sigma;
  const double half_log_2pi = 0.91893853320467274178;
  for (int c = 0; c < k; c++) {
    double *l = f->chol + (size_t)c * dd;
    memcpy(l, g->covs64 + (size_t)c * dd, dd * sizeof(double));
    for (int i = 0; i < d; i++) l[(size_t)i * d + i] += s2;
    if (!cholesky(l, d)) {
      factors_free(f);
      return sk__fail(SK_ERR_NUMERIC,
                      "%s: covariance of component %d + sigma^2 I lost positive definiteness", fn,
                      c);
    }
    double log_det_half = 0;
    for (int i = 0; i < d; i++) log_det_half += log(l[(size_t)i * d + i]);
    f->log_c[c] = g->log_w[c] - log_det_half - d * half_log_2pi;
  }
  return SK_OK;
}

static sk_status check_query(const sk_gmm *g, float sigma, const float *x, int64_t n,
                             const void *out, const char *fn) {
  if (!g) return sk__fail(SK_ERR_INVALID, "%s: NULL mixture", fn);
  if (!isfinite(sigma) || sigma < 0)
    return sk__fail(SK_ERR_INVALID, "%s: sigma is %g, expected finite and >= 0", fn, (double)sigma);
  if (n < 0) return sk__fail(SK_ERR_INVALID, "%s: n is %lld, expected >= 0", fn, (long long)n);
  size_t total;
  if ((uint64_t)n > SIZE_MAX || !sk__mul_size((size_t)n, (size_t)g->d * (size_t)g->k, &total) ||
      total > (size_t)INT64_MAX / sizeof(double))
    return sk__fail(SK_ERR_INVALID, "%s: n = %lld is too large", fn, (long long)n);
  if (n > 0 && (!x || !out)) return sk__fail(SK_ERR_INVALID, "%s: NULL %s", fn, !x ? "x" : "out");
  return SK_OK;
}

enum { Q_LOG_DENSITY, Q_SCORE, Q_POSTERIOR, Q_LOG_POSTERIOR_GRAD };

/* One driver for the four queries. Per row: z_c = L_c⁻¹ (x - μ_c), the log joint
 * lj_c = log_c[c] - ½|z_c|², and when a gradient is wanted the component score
 * s_c = -L_c⁻ᵀ z_c = -(Σ_c + σ²I)⁻¹ (x - μ_c); the mixture score is Σ_c w_c s_c
 * with w the posterior, which log-sum-exp keeps finite far from every mode. */
static sk_status gmm_query(const sk_gmm *g, float sigma, const float *x, int64_t n, int q,
                           const int32_t *ys, int32_t y0, float *out, const char *fn) {
  sk_status st = check_query(g, sigma, x, n, out, fn);
  if (st != SK_OK) return st;
  const int k = g->k, d = g->d;
  for (int64_t i = 0; i < n * d; i++)
    if (!isfinite(x[i]))
      return sk__fail(SK_ERR_NUMERIC, "%s: x[%lld, %d] is %g", fn, (long long)(i / d), (int)(i % d),
                      (double)x[i]);
  if (q == Q_LOG_POSTERIOR_GRAD) {
    if (!ys && (y0 < 0 || y0 >= k))
      return sk__fail(SK_ERR_INVALID, "%s: class %d outside 0..%d", fn, (int)y0, k - 1);
    for (int64_t i = 0; ys && i < n; i++)
      if (ys[i] < 0 || ys[i] >= k)
        return sk__fail(SK_ERR_INVALID, "%s: class of row %lld is %d, outside 0..%d", fn,
                        (long long)i, (int)ys[i], k - 1);
  }
  if (n == 0) return SK_OK;
  gmm_factors f = {0};
  if ((st = factors_make(g, sigma, fn, &f)) != SK_OK) return st;
  const bool want_grad = q == Q_SCORE || q == Q_LOG_POSTERIOR_GRAD;
  /* Per-thread scratch: lj (k), z (d), and the component scores (k, d). */
  const size_t per = (size_t)k + (size_t)d + (want_grad ? (size_t)k * d : 0);
  const int nt = sk__num_threads();
  double *scratch = sk__malloc((size_t)nt * per * sizeof(double));
  if (!scratch) {
    factors_free(&f);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for scratch", fn);
  }
  const size_t dd = (size_t)d * d;
#pragma omp parallel for schedule(static) num_threads(nt) if ((double)n * k * d * d > 32768.0 && !omp_in_parallel())
  for (int64_t i = 0; i < n; i++) {
    double *lj = scratch + (size_t)omp_get_thread_num() * per;
    double *z = lj + k, *sc = z + d;
    const float *xi = x + (size_t)i * d;
    double m = -INFINITY;
    for (int c = 0; c < k; c++) {
      const double *l = f.chol + (size_t)c * dd, *mu = g->means64 + (size_t)c * d;
      double quad = 0;
      for (int a = 0; a < d; a++) {
        double t = (double)xi[a] - mu[a];
        for (int b = 0; b < a; b++) t -= l[(size_t)a * d + b] * z[b];
        z[a] = t / l[(size_t)a * d + a];
        quad += z[a] * z[a];
      }
      lj[c] = f.log_c[c] - 0.5 * quad;
      if (lj[c] > m) m = lj[c];
      if (want_grad) {
        double *s = sc + (size_t)c * d;
        for (int a = d - 1; a >= 0; a--) {
          double t = z[a];
          for (int b = a + 1; b < d; b++) t -= l[(size_t)b * d + a] * s[b];
          s[a] = t / l[(size_t)a * d + a];
        }
        for (int a = 0; a < d; a++) s[a] = -s[a];
      }
    }
    double sum = 0;
    for (int c = 0; c < k; c++) sum += exp(lj[c] - m);
    const double lse = m + log(sum);
    switch (q) {
      case Q_LOG_DENSITY:
        out[i] = (float)lse;
        break;
      case Q_POSTERIOR:
        for (int c = 0; c < k; c++) out[(size_t)i * k + c] = (float)exp(lj[c] - lse);
        break;
      default: {
        /* z is free now: accumulate the mixture score in it. */
        for (int a = 0; a < d; a++) z[a] = 0;
        for (int c = 0; c < k; c++) {
          double w = exp(lj[c] - lse);
          for (int a = 0; a < d; a++) z[a] += w * sc[(size_t)c * d + a];
        }
        float *o = out + (size_t)i * d;
        if (q == Q_SCORE) {
          for (int a = 0; a < d; a++) o[a] = (float)z[a];
        } else {
          const double *sy = sc + (size_t)(ys ? ys[i] : y0) * d;
          for (int a = 0; a < d; a++) o[a] = (float)(sy[a] - z[a]);
        }
      }
    }
  }
  sk__free(scratch);
  factors_free(&f);
  return SK_OK;
}

sk_status sk_gmm_log_density(const sk_gmm *g, float sigma, const float *x, int64_t n, float *out) {
  return gmm_query(g, sigma, x, n, Q_LOG_DENSITY, NULL, 0, out, "sk_gmm_log_density");
}

sk_status sk_gmm_score(const sk_gmm *g, float sigma, const float *x, int64_t n, float *out) {
  return gmm_query(g, sigma, x, n, Q_SCORE, NULL, 0, out, "sk_gmm_score");
}

sk_status sk_gmm_posterior(const sk_gmm *g, float sigma, const float *x, int64_t n, float *out) {
  return gmm_query(g, sigma, x, n, Q_POSTERIOR, NULL, 0, out, "sk_gmm_posterior");
}

sk_status sk_gmm_log_posterior_grad(const sk_gmm *g, float sigma, const float *x, int64_t n,
                                    const int32_t *ys, int32_t y0, float *out) {
  return gmm_query(g, sigma, x, n, Q_LOG_POSTERIOR_GRAD, ys, y0, out, "sk_gmm_log_posterior_grad");
}

sk_status sk_gmm_sample(const sk_gmm *g, float sigma, sk_rng *r, int64_t n, float *x,
                        int32_t *labels) {
  const char *fn = "sk_gmm_sample";
  sk_status st = check_query(g, sigma, x, n, x, fn);
  if (st != SK_OK) return st;
  if (!r) return sk__fail(SK_ERR_INVALID, "%s: NULL rng", fn);
  if (n == 0) return SK_OK;
  const int k = g->k, d = g->d;
  const size_t dd = (size_t)d * d;
  gmm_factors f = {0};
  if ((st = factors_make(g, sigma, fn, &f)) != SK_OK) return st;
  double *cum = sk__malloc((size_t)k * sizeof(double));
  if (!cum) {
    factors_free(&f);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory", fn);
  }
  double acc = 0;
  for (int c = 0; c < k; c++) cum[c] = (acc += g->weights[c]);
  /* Normals first, straight into x; then the component uniforms in chunks of a
   * multiple of 4, which draws the same values as one call would. */
  sk_rng_normal(r, x, (size_t)n * d);
  enum { CHUNK = 1024 };
  float u[CHUNK];
  for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
    const int m = (int)SK_MIN((int64_t)CHUNK, n - i0);
    sk_rng_uniform(r, u, (size_t)m);
    for (int j = 0; j < m; j++) {
      const int64_t i = i0 + j;
      /* Scaled by the total so rounding of the cumulative sum never leaves a gap. */
      const double t = (double)u[j] * acc;
      int c = 0;
      while (c < k - 1 && t >= cum[c]) c++;
      if (labels) labels[i] = c;
      /* x_i = μ_c + L_c ε in place: row a of L ε reads ε_0..ε_a only, so going
       * from the last row up never reads an overwritten entry. */
      const double *l = f.chol + (size_t)c * dd, *mu = g->means64 + (size_t)c * d;
      float *xi = x + (size_t)i * d;
      for (int a = d - 1; a >= 0; a--) {
        double v = mu[a];
        for (int b = 0; b <= a; b++) v += l[(size_t)a * d + b] * xi[b];
        xi[a] = (float)v;
      }
    }
  }
  sk__free(cum);
  factors_free(&f);
  return SK_OK;
}

sk_gmm *sk_gmm_builtin(const char *name) {
  if (name && strcmp(name, "mog8") == 0) {
    float w[8], mu[16], cov[32];
    for (int c = 0; c < 8; c++) {
      const double a = 2.0 * 3.14159265358979323846 * c / 8.0;
      w[c] = 1.0f;
      mu[2 * c] = (float)(4.0 * cos(a));
      mu[2 * c + 1] = (float)(4.0 * sin(a));
      cov[4 * c + 0] = 0.25f;
      cov[4 * c + 1] = 0.0f;
      cov[4 * c + 2] = 0.0f;
      cov[4 * c + 3] = 0.25f;
    }
    return sk_gmm_new(8, 2, w, mu, cov);
  }
  if (name && strcmp(name, "ncsn-toy") == 0) {
    static const float w[2] = {0.8f, 0.2f}, mu[4] = {5, 5, -5, -5},
                       cov[8] = {1, 0, 0, 1, 1, 0, 0, 1};
    return sk_gmm_new(2, 2, w, mu, cov);
  }
  sk__fail(SK_ERR_INVALID, "sk_gmm_builtin: unknown mixture '%s' (known: mog8, ncsn-toy)",
           name ? name : "(null)");
  return NULL;
}
