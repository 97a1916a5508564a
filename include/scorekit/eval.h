/* scorekit sample-quality metrics: two-sample distances (MMD, energy, sliced
 * Wasserstein, Fréchet) and mode statistics for Gaussian-mixture targets. All are
 * computed in double and give the same bits whatever the number of threads. */
#ifndef SCOREKIT_EVAL_H
#define SCOREKIT_EVAL_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Unbiased estimate of MMD^2 between samples x (n, d) and y (m, d), row-major,
 * with the RBF kernel k(a, b) = exp(-|a - b|^2 / (2 h^2)):
 *   1/(n(n-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
 *   - 2/(nm) sum_{i,j} k(x_i, y_j).
 * The estimate can be slightly negative when the laws are equal.
 * h <= 0 selects the median heuristic: h = median of the pairwise distances of
 * the pooled sample, taken on an evenly spaced subsample of at most 2000 pooled
 * points (if that median is 0, the mean distance; if all points coincide, 1).
 * The bandwidth used is stored in *h_used unless it is NULL.
 * Needs n, m >= 2, d >= 1 and finite inputs (SK_ERR_INVALID / SK_ERR_NUMERIC).
 * Cost O((n + m)^2 d). */
SK_API sk_status sk_mmd_rbf(const float *x, int64_t n, const float *y, int64_t m, int d,
                            double h, double *mmd2, double *h_used);

/* Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between x (n, d) and
 * y (m, d), with U-statistics (i != j) for the within-sample terms. Same
 * argument rules as sk_mmd_rbf. */
SK_API sk_status sk_energy_distance(const float *x, int64_t n, const float *y, int64_t m, int d,
                                    double *out);

/* Sliced 2-Wasserstein distance between x (n, d) and y (m, d): the square root
 * of the mean, over n_proj random unit directions drawn from `seed` (sk_rng),
 * of the squared W2 distance between the 1-D projections. Both projections
 * are sorted and their empirical quantile functions compared at the
 * max(n, m) levels (k + 1/2) / max(n, m); for n == m that is the exact W2^2.
 * Needs n, m >= 2, d >= 1, 1 <= n_proj <= 1e6 and finite inputs. */
/* The directions are the normalised rows of sk_rng_normal on
 * sk_rng_make(seed, SK_EVAL_SLICED_STREAM), n_proj * d values in one call. */
#define SK_EVAL_SLICED_STREAM 0x534c494345ull /* "SLICE" */
SK_API sk_status sk_sliced_wasserstein(const float *x, int64_t n, const float *y, int64_t m, int d,
                                       int n_proj, uint64_t seed, double *out);

/* Fréchet distance between Gaussians N(mu1, c1) and N(mu2, c2) in d
 * dimensions (means (d), covariances (d, d) row-major, symmetric positive
 * semi-definite), in double:
 *   |mu1 - mu2|^2 + tr c1 + tr c2 - 2 tr (c1^{1/2} c2 c1^{1/2})^{1/2}.
 * The square roots come from symmetric eigendecompositions (cyclic Jacobi,
 * in double), negative eigenvalues of rounding size taken as 0. The result
 * can be slightly negative (rounding) when the laws are equal. Needs
 * 1 <= d <= SK_FRECHET_MAX_DIM and finite inputs (SK_ERR_INVALID /
 * SK_ERR_NUMERIC); SK_ERR_INVALID for a covariance that is not symmetric or
 * clearly not positive semi-definite: a diagonal entry of c1 or c2, an
 * eigenvalue of c1 or of c1^{1/2} c2 c1^{1/2}, below −10⁻³ times the largest
 * in magnitude (negative values above that are rounding, taken as 0). */
#define SK_FRECHET_MAX_DIM 4096
SK_API sk_status sk_frechet_gaussian(const double *mu1, const double *c1, const double *mu2,
                                     const double *c2, int d, double *out);

/* The Fréchet distance between samples x (n, d) and y (m, d): that of the
 * Gaussians with their means and unbiased covariances (divided by n - 1),
 * as FID computes it on network features. Needs n, m >= 2 and finite
 * inputs. Same bits whatever the number of threads. */
SK_API sk_status sk_frechet_distance(const float *x, int64_t n, const float *y, int64_t m, int d,
                                     double *out);

#define SK_MAX_MODES 64

/* How a sample covers the modes of a Gaussian mixture. */
typedef struct sk_mode_stats {
  int k;                         /* number of modes */
  double weight[SK_MAX_MODES];   /* (k) share of the within-3-std samples nearest each mode */
  double within3;                /* share of all samples within 3 std of their nearest mode */
  double max_weight_err;         /* max_j |weight[j] - target weight[j]| */
  int covered;                   /* modes holding >= max(1, 0.25 w_j n_within) samples */
} sk_mode_stats;

/* Mode statistics of samples x (n, d) against a k-mode isotropic mixture with
 * means (k, d), standard deviations stds (k, all > 0) and weights (k, >= 0,
 * normalised here to sum to 1). Each sample goes to the mode with the
 * smallest |x - mean_j| / std_j (ties to the lower index) and is "within"
 * when that distance is <= 3. Needs n >= 1, d >= 1, 1 <= k <= SK_MAX_MODES,
 * finite inputs. When no sample is within, all weights are 0. */
SK_API sk_status sk_mode_stats_compute(const float *x, int64_t n, int d, int k, const float *means,
                                       const float *stds, const float *weights,
                                       sk_mode_stats *out);

#ifdef __cplusplus
}
#endif
#endif
