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
