/* Two-sample metrics (MMD, energy distance, sliced W2) and mixture mode
 * statistics. Rows run in parallel; each writes its own partial sum and the
 * partials are added in index order, so the result is the same bits for any
 * number of threads. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "scorekit/eval.h"
#include "scorekit/rng.h"

/* Past this the O(n^2) metrics would run for days and the quantile index
 * arithmetic of the sliced distance could overflow. */
#define SAMPLE_MAX ((int64_t)INT32_MAX)
#define MEDIAN_SUBSAMPLE 2000
#define SW_MAX_PROJ 1000000

static sk_status check_sample(const char *fn, const char *name, const float *x, int64_t n,
                              int64_t n_min, int d) {
  if (d < 1) return sk__fail(SK_ERR_INVALID, "%s: d must be >= 1, got %d", fn, d);
  if (n < n_min || n > SAMPLE_MAX)
    return sk__fail(SK_ERR_INVALID, "%s: %s needs between %lld and %lld rows, got %lld", fn, name,
                    (long long)n_min, (long long)SAMPLE_MAX, (long long)n);
  if (!x) return sk__fail(SK_ERR_INVALID, "%s: %s is NULL", fn, name);
  size_t count;
  if (!sk__mul_size((size_t)n, (size_t)d, &count))
    return sk__fail(SK_ERR_INVALID, "%s: %s of %lld x %d overflows", fn, name, (long long)n, d);
  for (size_t i = 0; i < count; i++)
    if (!isfinite(x[i]))
      return sk__fail(SK_ERR_NUMERIC, "%s: %s[%lld][%d] is not finite (%g)", fn, name,
                      (long long)(i / (size_t)d), (int)(i % (size_t)d), (double)x[i]);
  return SK_OK;
}

static double sqdist(const float *a, const float *b, int d) {
  double s = 0;
  for (int k = 0; k < d; k++) {
    double t = (double)a[k] - (double)b[k];
    s += t * t;
  }
  return s;
}

enum pair_fn { PAIR_RBF, PAIR_DIST };

/* sum_i sum_j f(|a_i - b_j|^2) over all pairs, or over i != j when `same`
 * (a == b; computed on j > i and doubled). rows (na) is scratch. f is
 * exp(-gamma s) for PAIR_RBF and sqrt(s) for PAIR_DIST. */
static double pair_sum(const float *a, int64_t na, const float *b, int64_t nb, int d, int same,
                       enum pair_fn fn, double gamma, double *rows) {
#pragma omp parallel for schedule(dynamic, 8) num_threads(sk__num_threads())
  for (int64_t i = 0; i < na; i++) {
    const float *ai = a + i * d;
    double acc = 0;
    for (int64_t j = same ? i + 1 : 0; j < nb; j++) {
      double s = sqdist(ai, b + j * d, d);
      acc += fn == PAIR_RBF ? exp(-gamma * s) : sqrt(s);
    }
    rows[i] = acc;
  }
  double total = 0;
  for (int64_t i = 0; i < na; i++) total += rows[i];
  return same ? 2 * total : total;
}

/* The k-th smallest of a[0..n) (0-based), reordering a: Hoare selection with a
 * median-of-three pivot, deterministic. */
static double select_kth(double *a, size_t n, size_t k) {
  size_t lo = 0, hi = n - 1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    double p0 = a[lo], p1 = a[mid], p2 = a[hi];
    double pivot = p0 < p1 ? (p1 < p2 ? p1 : (p0 < p2 ? p2 : p0))
                           : (p0 < p2 ? p0 : (p1 < p2 ? p2 : p1));
    size_t i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        double t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        if (j == 0) break;
        j--;
      }
    }
    if (k <= j)
      hi = j;
    else if (k >= i)
      lo = i;
    else
      return a[k];
  }
  return a[k];
}

/* Median heuristic bandwidth on an evenly spaced subsample of the pooled points. */
static sk_status median_bandwidth(const float *x, int64_t n, const float *y, int64_t m, int d,
                                  double *h) {
  int64_t N = n + m, S = SK_MIN(N, (int64_t)MEDIAN_SUBSAMPLE);
  size_t npairs = (size_t)(S * (S - 1) / 2);
  double *dist = sk__malloc(npairs * sizeof *dist);
  const float **pt = sk__malloc((size_t)S * sizeof *pt);
  if (!dist || !pt) {
    sk__free(dist);
    sk__free(pt);
    return sk__fail(SK_ERR_NOMEM, "sk_mmd_rbf: out of memory for %zu pairwise distances", npairs);
  }
  for (int64_t s = 0; s < S; s++) {
    int64_t p = s * N / S;
    pt[s] = p < n ? x + p * d : y + (p - n) * d;
  }
#pragma omp parallel for schedule(dynamic, 8) num_threads(sk__num_threads())
  for (int64_t i = 0; i < S; i++) {
    size_t off = (size_t)(i * (2 * S - i - 1) / 2);
    for (int64_t j = i + 1; j < S; j++) dist[off + (size_t)(j - i - 1)] = sqrt(sqdist(pt[i], pt[j], d));
  }
  double med;
  size_t k = npairs / 2;
  med = select_kth(dist, npairs, k);
  if (npairs % 2 == 0) {
    /* The lower middle is the largest element left of k after selection. */
    double lower = dist[0];
    for (size_t i = 1; i < k; i++) lower = dist[i] > lower ? dist[i] : lower;
    med = 0.5 * (med + lower);
  }
  if (med <= 0) {
    double sum = 0;
    for (size_t i = 0; i < npairs; i++) sum += dist[i];
    med = sum > 0 ? sum / (double)npairs : 1.0;
  }
  sk__free(dist);
  sk__free(pt);
  *h = med;
  return SK_OK;
}

sk_status sk_mmd_rbf(const float *x, int64_t n, const float *y, int64_t m, int d, double h,
                     double *mmd2, double *h_used) {
  sk_status st;
  if ((st = check_sample("sk_mmd_rbf", "x", x, n, 2, d)) ||
      (st = check_sample("sk_mmd_rbf", "y", y, m, 2, d)))
    return st;
  if (!mmd2) return sk__fail(SK_ERR_INVALID, "sk_mmd_rbf: mmd2 is NULL");
  if (isnan(h) || isinf(h)) return sk__fail(SK_ERR_INVALID, "sk_mmd_rbf: bandwidth %g is not finite", h);
  if (h <= 0 && (st = median_bandwidth(x, n, y, m, d, &h))) return st;
  double *rows = sk__malloc((size_t)SK_MAX(n, m) * sizeof *rows);
  if (!rows) return sk__fail(SK_ERR_NOMEM, "sk_mmd_rbf: out of memory for %lld row sums", (long long)SK_MAX(n, m));
  double gamma = 1.0 / (2 * h * h);
  double kxx = pair_sum(x, n, x, n, d, 1, PAIR_RBF, gamma, rows);
  double kyy = pair_sum(y, m, y, m, d, 1, PAIR_RBF, gamma, rows);
  double kxy = pair_sum(x, n, y, m, d, 0, PAIR_RBF, gamma, rows);
  sk__free(rows);
  double dn = (double)n, dm = (double)m;
  *mmd2 = kxx / (dn * (dn - 1)) + kyy / (dm * (dm - 1)) - 2 * kxy / (dn * dm);
  if (h_used) *h_used = h;
  return SK_OK;
}

sk_status sk_energy_distance(const float *x, int64_t n, const float *y, int64_t m, int d,
                             double *out) {
  sk_status st;
  if ((st = check_sample("sk_energy_distance", "x", x, n, 2, d)) ||
      (st = check_sample("sk_energy_distance", "y", y, m, 2, d)))
    return st;
  if (!out) return sk__fail(SK_ERR_INVALID, "sk_energy_distance: out is NULL");
  double *rows = sk__malloc((size_t)SK_MAX(n, m) * sizeof *rows);
  if (!rows)
    return sk__fail(SK_ERR_NOMEM, "sk_energy_distance: out of memory for %lld row sums",
                    (long long)SK_MAX(n, m));
  double dxx = pair_sum(x, n, x, n, d, 1, PAIR_DIST, 0, rows);
  double dyy = pair_sum(y, m, y, m, d, 1, PAIR_DIST, 0, rows);
  double dxy = pair_sum(x, n, y, m, d, 0, PAIR_DIST, 0, rows);
  sk__free(rows);
  double dn = (double)n, dm = (double)m;
  *out = 2 * dxy / (dn * dm) - dxx / (dn * (dn - 1)) - dyy / (dm * (dm - 1));
  return SK_OK;
}

static int cmp_double(const void *a, const void *b) {
  double u = *(const double *)a, v = *(const double *)b;
  return (u > v) - (u < v);
}

static void project_sorted(const float *x, int64_t n, int d, const double *dir, double *out) {
  for (int64_t i = 0; i < n; i++) {
    double s = 0;
    for (int k = 0; k < d; k++) s += (double)x[i * d + k] * dir[k];
    out[i] = s;
  }
  qsort(out, (size_t)n, sizeof *out, cmp_double);
}

sk_status sk_sliced_wasserstein(const float *x, int64_t n, const float *y, int64_t m, int d,
                                int n_proj, uint64_t seed, double *out) {
  sk_status st;
  if ((st = check_sample("sk_sliced_wasserstein", "x", x, n, 2, d)) ||
      (st = check_sample("sk_sliced_wasserstein", "y", y, m, 2, d)))
    return st;
  if (!out) return sk__fail(SK_ERR_INVALID, "sk_sliced_wasserstein: out is NULL");
  if (n_proj < 1 || n_proj > SW_MAX_PROJ)
    return sk__fail(SK_ERR_INVALID, "sk_sliced_wasserstein: n_proj must be in 1..%d, got %d",
                    SW_MAX_PROJ, n_proj);
  int nt = sk__num_threads();
  size_t ndir, nscratch, bytes_dir, bytes_scratch;
  if (!sk__mul_size((size_t)n_proj, (size_t)d, &ndir) ||
      !sk__mul_size((size_t)(n + m), (size_t)nt, &nscratch) ||
      !sk__mul_size(ndir, sizeof(double), &bytes_dir) ||
      !sk__mul_size(nscratch, sizeof(double), &bytes_scratch))
    return sk__fail(SK_ERR_INVALID, "sk_sliced_wasserstein: %d projections of dimension %d overflow",
                    n_proj, d);
  float *normal = sk__malloc(ndir * sizeof *normal);
  double *dirs = sk__malloc(bytes_dir);
  double *scratch = sk__malloc(bytes_scratch);
  double *w2 = sk__malloc((size_t)n_proj * sizeof *w2);
  if (!normal || !dirs || !scratch || !w2) {
    sk__free(normal);
    sk__free(dirs);
    sk__free(scratch);
    sk__free(w2);
    return sk__fail(SK_ERR_NOMEM, "sk_sliced_wasserstein: out of memory (%d projections, %lld points)",
                    n_proj, (long long)(n + m));
  }
  sk_rng r = sk_rng_make(seed, SK_EVAL_SLICED_STREAM);
  sk_rng_normal(&r, normal, ndir);
  for (int p = 0; p < n_proj; p++) {
    double norm2 = 0;
    for (int k = 0; k < d; k++) norm2 += (double)normal[(size_t)p * d + k] * normal[(size_t)p * d + k];
    double inv = norm2 > 0 ? 1 / sqrt(norm2) : 0;
    for (int k = 0; k < d; k++) dirs[(size_t)p * d + k] = norm2 > 0 ? normal[(size_t)p * d + k] * inv : (k == 0);
  }
  sk__free(normal);
  int64_t N = SK_MAX(n, m);
#pragma omp parallel num_threads(nt)
  {
    double *px = scratch + (size_t)omp_get_thread_num() * (size_t)(n + m), *py = px + n;
#pragma omp for schedule(dynamic, 1)
    for (int p = 0; p < n_proj; p++) {
      project_sorted(x, n, d, dirs + (size_t)p * d, px);
      project_sorted(y, m, d, dirs + (size_t)p * d, py);
      /* Quantile level (k + 1/2)/N falls in order-statistic floor((2k + 1) n / 2N). */
      double s = 0;
      for (int64_t k = 0; k < N; k++) {
        double t = px[(2 * k + 1) * n / (2 * N)] - py[(2 * k + 1) * m / (2 * N)];
        s += t * t;
      }
      w2[p] = s / (double)N;
    }
  }
  double total = 0;
  for (int p = 0; p < n_proj; p++) total += w2[p];
  *out = sqrt(total / n_proj);
  sk__free(dirs);
  sk__free(scratch);
  sk__free(w2);
  return SK_OK;
}

sk_status sk_mode_stats_compute(const float *x, int64_t n, int d, int k, const float *means,
                                const float *stds, const float *weights, sk_mode_stats *out) {
  static const char *fn = "sk_mode_stats_compute";
  sk_status st;
  if ((st = check_sample(fn, "x", x, n, 1, d))) return st;
  if (k < 1 || k > SK_MAX_MODES)
    return sk__fail(SK_ERR_INVALID, "%s: k must be in 1..%d, got %d", fn, SK_MAX_MODES, k);
  if ((st = check_sample(fn, "means", means, k, 1, d))) return st;
  if (!stds || !weights || !out)
    return sk__fail(SK_ERR_INVALID, "%s: %s is NULL", fn, !stds ? "stds" : !weights ? "weights" : "out");
  double wsum = 0;
  for (int j = 0; j < k; j++) {
    if (!(stds[j] > 0) || isinf(stds[j]))
      return sk__fail(SK_ERR_INVALID, "%s: stds[%d] must be finite and > 0, got %g", fn, j, (double)stds[j]);
    if (!(weights[j] >= 0) || isinf(weights[j]))
      return sk__fail(SK_ERR_INVALID, "%s: weights[%d] must be finite and >= 0, got %g", fn, j,
                      (double)weights[j]);
    wsum += weights[j];
  }
  if (!(wsum > 0)) return sk__fail(SK_ERR_INVALID, "%s: weights sum to 0", fn);
  int *assign = sk__malloc((size_t)n * sizeof *assign);
  if (!assign) return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %lld assignments", fn, (long long)n);
#pragma omp parallel for schedule(static) num_threads(sk__num_threads())
  for (int64_t i = 0; i < n; i++) {
    int best = 0;
    double best_d = INFINITY;
    for (int j = 0; j < k; j++) {
      double s = sqdist(x + i * d, means + (size_t)j * d, d) / ((double)stds[j] * stds[j]);
      if (s < best_d) {
        best_d = s;
        best = j;
      }
    }
    assign[i] = best_d <= 9.0 ? best : -1;
  }
  int64_t count[SK_MAX_MODES] = {0}, n_within = 0;
  for (int64_t i = 0; i < n; i++)
    if (assign[i] >= 0) {
      count[assign[i]]++;
      n_within++;
    }
  sk__free(assign);
  memset(out, 0, sizeof *out);
  out->k = k;
  out->within3 = (double)n_within / (double)n;
  for (int j = 0; j < k; j++) {
    double target = weights[j] / wsum;
    out->weight[j] = n_within ? (double)count[j] / (double)n_within : 0.0;
    double err = fabs(out->weight[j] - target);
    if (err > out->max_weight_err) out->max_weight_err = err;
    double need = SK_MAX(1.0, 0.25 * target * (double)n_within);
    if ((double)count[j] >= need) out->covered++;
  }
  return SK_OK;
}

/* ---- Fréchet distance ---- */

/* Eigendecomposition of the symmetric a (d, d), destroyed: eigenvalues in
 * w (d), eigenvectors in the columns of v (d, d). Cyclic Jacobi (Golub & Van
 * Loan, algorithms 8.5.1-8.5.3): each rotation zeroes one off-diagonal pair;
 * sweeps continue until the off-diagonal mass is at rounding level. Slow
 * for large d (O(d^3) a sweep) but accurate to working precision in every
 * eigenvalue, small ones included, which is what a square root needs. */
static void jacobi_eig(double *a, int d, double *w, double *v) {
  const size_t n = (size_t)d;
  for (size_t i = 0; i < n * n; i++) v[i] = 0;
  for (size_t i = 0; i < n; i++) v[i * n + i] = 1;
  double total = 0;
  for (size_t i = 0; i < n * n; i++) total += a[i] * a[i];
  for (int sweep = 0; sweep < 100; sweep++) {
    double off = 0;
    for (size_t p = 0; p < n; p++)
      for (size_t q = p + 1; q < n; q++) off += 2 * a[p * n + q] * a[p * n + q];
    if (!(off > 1e-30 * total)) break;
    for (size_t p = 0; p + 1 < n; p++)
      for (size_t q = p + 1; q < n; q++) {
        const double apq = a[p * n + q];
        if (apq == 0) continue;
        const double tau = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const double t = (tau >= 0 ? 1 : -1) / (fabs(tau) + sqrt(1 + tau * tau));
        const double c = 1 / sqrt(1 + t * t), s = t * c;
        for (size_t k = 0; k < n; k++) { /* A J */
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (size_t k = 0; k < n; k++) { /* Jᵀ (A J) */
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (size_t k = 0; k < n; k++) { /* V J */
          const double vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  for (size_t i = 0; i < n; i++) w[i] = a[i * n + i];
}

/* out = V diag(f) Vᵀ (d, d). */
static void from_eig(const double *v, const double *f, int d, double *out) {
  const size_t n = (size_t)d;
  for (size_t i = 0; i < n; i++)
    for (size_t j = i; j < n; j++) {
      double s = 0;
      for (size_t k = 0; k < n; k++) s += v[i * n + k] * f[k] * v[j * n + k];
      out[i * n + j] = out[j * n + i] = s;
    }
}

/* c = a b for (d, d) matrices. */
static void matmul_d(const double *a, const double *b, int d, double *c) {
  const size_t n = (size_t)d;
  for (size_t i = 0; i < n; i++) {
    double *ci = c + i * n;
    for (size_t j = 0; j < n; j++) ci[j] = 0;
    for (size_t k = 0; k < n; k++) {
      const double aik = a[i * n + k];
      for (size_t j = 0; j < n; j++) ci[j] += aik * b[k * n + j];
    }
  }
}

/* A covariance whose diagonal entries or eigenvalues go below −PSD_ROUNDING
 * times the largest in magnitude is not positive semi-definite; smaller
 * negative values are rounding (of a covariance computed in float, say),
 * taken as 0. */
#define PSD_ROUNDING 1e-3

static sk_status check_moments(const char *name, const double *mu, const double *c, int d) {
  static const char *fn = "sk_frechet_gaussian";
  if (!mu || !c) return sk__fail(SK_ERR_INVALID, "%s: %s is NULL", fn, name);
  const size_t n = (size_t)d;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(mu[i]))
      return sk__fail(SK_ERR_NUMERIC, "%s: mean %s[%zu] is not finite", fn, name, i);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      const double a = c[i * n + j], b = c[j * n + i];
      if (!isfinite(a))
        return sk__fail(SK_ERR_NUMERIC, "%s: covariance %s[%zu][%zu] is not finite", fn, name, i, j);
      if (fabs(a - b) > 1e-9 * (fabs(a) + fabs(b)) + 1e-300)
        return sk__fail(SK_ERR_INVALID, "%s: covariance %s is not symmetric at [%zu][%zu] (%g vs %g)",
                        fn, name, i, j, a, b);
    }
  double top = 0;
  for (size_t i = 0; i < n; i++) top = fmax(top, fabs(c[i * n + i]));
  for (size_t i = 0; i < n; i++)
    if (c[i * n + i] < -PSD_ROUNDING * top)
      return sk__fail(SK_ERR_INVALID, "%s: covariance %s is not positive semi-definite: [%zu][%zu] "
                      "is %g", fn, name, i, i, c[i * n + i]);
  return SK_OK;
}

/* The eigenvalues w (d) of a matrix that is PSD when covariance `name` is:
 * SK_ERR_INVALID for one below −PSD_ROUNDING × scale, a bound on the
 * matrix's norm that does not come from w itself (a matrix whose true
 * eigenvalues are all 0 has only rounding for its largest). */
static sk_status check_psd(const char *name, const char *of, const double *w, int d, double scale) {
  double top = 0, low = 0;
  for (int i = 0; i < d; i++) top = fmax(top, fabs(w[i])), low = fmin(low, w[i]);
  if (low < -PSD_ROUNDING * scale)
    return sk__fail(SK_ERR_INVALID, "sk_frechet_gaussian: covariance %s is not positive "
                    "semi-definite: %s has eigenvalue %g, its largest magnitude %g", name, of,
                    low, top);
  return SK_OK;
}

sk_status sk_frechet_gaussian(const double *mu1, const double *c1, const double *mu2,
                              const double *c2, int d, double *out) {
  if (d < 1 || d > SK_FRECHET_MAX_DIM)
    return sk__fail(SK_ERR_INVALID, "sk_frechet_gaussian: d must be in 1..%d, got %d",
                    SK_FRECHET_MAX_DIM, d);
  if (!out) return sk__fail(SK_ERR_INVALID, "sk_frechet_gaussian: out is NULL");
  sk_status st;
  if ((st = check_moments("1", mu1, c1, d)) || (st = check_moments("2", mu2, c2, d))) return st;
  const size_t n = (size_t)d, nn = n * n;
  double *a = sk__malloc(nn * sizeof *a), *v = sk__malloc(nn * sizeof *v),
         *s = sk__malloc(nn * sizeof *s), *t = sk__malloc(nn * sizeof *t),
         *w = sk__malloc(n * sizeof *w);
  if (!a || !v || !s || !t || !w) {
    sk__free(a), sk__free(v), sk__free(s), sk__free(t), sk__free(w);
    return sk__fail(SK_ERR_NOMEM, "sk_frechet_gaussian: out of memory for %d x %d matrices", d, d);
  }
  /* S = c1^{1/2}: eigenvalues below zero are rounding (c1 is PSD). */
  memcpy(a, c1, nn * sizeof *a);
  jacobi_eig(a, d, w, v);
  double top1 = 0, norm2 = 0; /* c1's largest eigenvalue; c2's largest absolute row sum */
  for (size_t i = 0; i < n; i++) top1 = fmax(top1, fabs(w[i]));
  for (size_t i = 0; i < n; i++) {
    double row = 0;
    for (size_t j = 0; j < n; j++) row += fabs(c2[i * n + j]);
    norm2 = fmax(norm2, row);
  }
  st = check_psd("1", "it", w, d, top1);
  if (st == SK_OK) {
    for (size_t i = 0; i < n; i++) w[i] = w[i] > 0 ? sqrt(w[i]) : 0;
    from_eig(v, w, d, s);
    /* M = S c2 S, symmetric PSD (as c2 is); tr M^{1/2} = Σ sqrt(eigenvalues). */
    matmul_d(s, c2, d, t);
    matmul_d(t, s, d, a);
    for (size_t i = 0; i < n; i++)
      for (size_t j = i + 1; j < n; j++)
        a[i * n + j] = a[j * n + i] = 0.5 * (a[i * n + j] + a[j * n + i]);
    jacobi_eig(a, d, w, v);
    st = check_psd("2", "c1^1/2 c2 c1^1/2", w, d, top1 * norm2); /* ‖M‖ ≤ ‖c1‖ ‖c2‖ */
  }
  double tr_sqrt = 0, tr1 = 0, tr2 = 0, dm = 0;
  for (size_t i = 0; st == SK_OK && i < n; i++) {
    tr_sqrt += w[i] > 0 ? sqrt(w[i]) : 0;
    tr1 += c1[i * n + i];
    tr2 += c2[i * n + i];
    dm += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
  }
  sk__free(a), sk__free(v), sk__free(s), sk__free(t), sk__free(w);
  if (st == SK_OK) *out = dm + tr1 + tr2 - 2 * tr_sqrt;
  return st;
}

/* Mean (d) and unbiased covariance (d, d) of x (n, d) in double; xt is
 * scratch (d, n): the centred columns, contiguous for the products. */
static void moments(const float *x, int64_t n, int d, double *mu, double *cov, double *xt) {
  const size_t nd = (size_t)d;
  for (size_t k = 0; k < nd; k++) mu[k] = 0;
  for (int64_t i = 0; i < n; i++)
    for (size_t k = 0; k < nd; k++) mu[k] += x[(size_t)i * nd + k];
  for (size_t k = 0; k < nd; k++) mu[k] /= (double)n;
  for (int64_t i = 0; i < n; i++)
    for (size_t k = 0; k < nd; k++) xt[k * (size_t)n + (size_t)i] = x[(size_t)i * nd + k] - mu[k];
  /* Each entry is one sum in sample order, whatever thread computes it. */
#pragma omp parallel for schedule(dynamic, 1) num_threads(sk__num_threads())
  for (int j = 0; j < d; j++) {
    const double *a = xt + (size_t)j * (size_t)n;
    for (int k = j; k < d; k++) {
      const double *b = xt + (size_t)k * (size_t)n;
      double s = 0;
      for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
      cov[(size_t)j * nd + (size_t)k] = cov[(size_t)k * nd + (size_t)j] = s / (double)(n - 1);
    }
  }
}

sk_status sk_frechet_distance(const float *x, int64_t n, const float *y, int64_t m, int d,
                              double *out) {
  static const char *fn = "sk_frechet_distance";
  sk_status st;
  if ((st = check_sample(fn, "x", x, n, 2, d)) || (st = check_sample(fn, "y", y, m, 2, d)))
    return st;
  if (d > SK_FRECHET_MAX_DIM)
    return sk__fail(SK_ERR_INVALID, "%s: d must be at most %d, got %d", fn, SK_FRECHET_MAX_DIM, d);
  if (!out) return sk__fail(SK_ERR_INVALID, "%s: out is NULL", fn);
  const size_t nd = (size_t)d;
  double *mu = sk__malloc(2 * nd * sizeof *mu), *cov = sk__malloc(2 * nd * nd * sizeof *cov);
  double *xt = sk__malloc((size_t)SK_MAX(n, m) * nd * sizeof *xt);
  if (!mu || !cov || !xt) {
    sk__free(mu), sk__free(cov), sk__free(xt);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %lld x %d values", fn,
                    (long long)SK_MAX(n, m), d);
  }
  moments(x, n, d, mu, cov, xt);
  moments(y, m, d, mu + nd, cov + nd * nd, xt);
  sk__free(xt);
  st = sk_frechet_gaussian(mu, cov, mu + nd, cov + nd * nd, d, out);
  sk__free(mu), sk__free(cov);
  return st;
}
