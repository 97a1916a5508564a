/* scorekit data: Gaussian mixtures with exact density and score (also after
 * Gaussian perturbation), the built-in 2-D toy distributions, and an in-memory
 * data set of rows or images with reproducible shuffled mini-batches. */
#ifndef SCOREKIT_DATA_H
#define SCOREKIT_DATA_H

#include "core.h"
#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Gaussian mixtures ----------------------------------------------------
 * p(x) = Σ_k π_k N(x; μ_k, Σ_k). Every query takes a σ >= 0 and answers for the
 * perturbed law p_σ = p * N(0, σ² I) = Σ_k π_k N(μ_k, Σ_k + σ² I) (σ = 0 is the
 * mixture itself), which is what a noise-conditional score model learns at level
 * σ. Queries are computed in double with log-sum-exp over components, so points
 * far from every mode (|x| ~ 1e3) still get finite, correct values; they run
 * over rows in parallel and give the same bits for any number of threads. */
typedef struct sk_gmm sk_gmm;

/* A mixture of k components in d dimensions. weights (k) must be finite and
 * positive (they are normalised to sum to 1), means (k, d) finite, covs (k, d, d)
 * symmetric (to 1e-5 relative; the average of the two triangles is kept) and
 * positive definite (checked by Cholesky; the error names the component). The
 * inputs are copied. Returns NULL with sk_last_error() set on failure
 * (SK_ERR_INVALID, SK_ERR_NUMERIC or SK_ERR_NOMEM). Free with sk_gmm_free. */
SK_API sk_gmm *sk_gmm_new(int k, int d, const float *weights, const float *means,
                          const float *covs);
SK_API void sk_gmm_free(sk_gmm *g);

SK_API int sk_gmm_components(const sk_gmm *g);
SK_API int sk_gmm_dim(const sk_gmm *g);
/* Borrowed, valid while g lives: the normalised weights (k), means (k, d) and
 * covariances (k, d, d). */
SK_API const float *sk_gmm_weights(const sk_gmm *g);
SK_API const float *sk_gmm_means(const sk_gmm *g);
SK_API const float *sk_gmm_covs(const sk_gmm *g);

/* For x (n, d) and the law p_σ: out (n) = log p_σ(x). sigma must be finite and
 * >= 0 (SK_ERR_INVALID); a non-finite x gives SK_ERR_NUMERIC naming the row;
 * n = 0 is a no-op. The same rules hold for the three queries below. */
SK_API sk_status sk_gmm_log_density(const sk_gmm *g, float sigma, const float *x, int64_t n,
                                    float *out);
/* out (n, d) = ∇_x log p_σ(x). */
SK_API sk_status sk_gmm_score(const sk_gmm *g, float sigma, const float *x, int64_t n, float *out);
/* out (n, k) = p_σ(component k | x); each row sums to 1. */
SK_API sk_status sk_gmm_posterior(const sk_gmm *g, float sigma, const float *x, int64_t n,
                                  float *out);
/* out (n, d) = ∇_x log p_σ(y | x), the analytic classifier gradient used by
 * guidance: the score of component y minus the mixture score. The class of row
 * i is ys[i], or y0 for every row when ys is NULL; a class outside 0..k-1 gives
 * SK_ERR_INVALID naming the row. */
SK_API sk_status sk_gmm_log_posterior_grad(const sk_gmm *g, float sigma, const float *x, int64_t n,
                                           const int32_t *ys, int32_t y0, float *out);
/* n draws from p_σ into x (n, d), and their component indices into labels (n)
 * unless labels is NULL. Draws n·d normals from r, then n uniforms (component
 * choice), so the result is a pure function of r's position; r is advanced. */
SK_API sk_status sk_gmm_sample(const sk_gmm *g, float sigma, sk_rng *r, int64_t n, float *x,
                               int32_t *labels);

/* A built-in mixture by name (free with sk_gmm_free); NULL with sk_last_error()
 * set for an unknown name.
 *   "mog8":     8 equal-weight Gaussians with means on the circle of radius 4 at
 *               angles 2πk/8 (k = 0..7, the first at (4, 0)), isotropic std 0.5.
 *   "ncsn-toy": 0.8 N((5,5), I) + 0.2 N((-5,-5), I), the mode-weight experiment
 *               of Song & Ermon 2019 (NCSN), section 3.2. */
SK_API sk_gmm *sk_gmm_builtin(const char *name);

/* ---- 2-D toy distributions -------------------------------------------------
 * The FFJORD family (Grathwohl et al. 2019, toy_data.py). Where FFJORD lays
 * points on an even grid and shuffles (moons, rings, pinwheel's classes), the
 * grid position and the class are drawn i.i.d. here, so every draw of any n
 * comes from the same law and no O(n) scratch is needed.
 *   "mog8"         sk_gmm_builtin("mog8"); label = component (8 classes).
 *   "moons"        sklearn make_moons, noise 0.1, then ×2 + (-1, -0.2); label =
 *                  moon (0 = upper, 1 = lower).
 *   "swissroll"    sklearn make_swiss_roll, noise 1.0, keep (x, z), ÷5; no labels.
 *   "checkerboard" x1 ~ U[-2, 2), x2 ~ U[0, 1) - 2·Bern(½) + (⌊x1⌋ mod 2), ×2;
 *                  no labels.
 *   "rings"        4 concentric circles of radii 1, .75, .5, .25, ×3, then
 *                  + N(0, .08²); label = ring (0 = outermost).
 *   "pinwheel"     5 arms, radial std .3, tangential std .1, rate .25, ×2;
 *                  label = arm.
 *   "2spirals"     t = √U·540°, ±(-t cos t + U·.5, t sin t + U·.5) ÷ 3
 *                  + N(0, .1²); label = spiral (0 = +, 1 = -). */
SK_API int sk_toy_count(void);
/* The name of toy set i (0 <= i < sk_toy_count()), a static string; NULL when
 * i is out of range. */
SK_API const char *sk_toy_name(int i);
/* The number of classes (>= 1) of a toy set, 0 when it has no labels, -1 with
 * sk_last_error() set for an unknown name. */
SK_API int sk_toy_classes(const char *name);
/* n draws of toy set `name` into x (n, 2), and their labels into labels (n)
 * unless it is NULL (-1 for a set without labels). Deterministic: the result is
 * a pure function of r's position; r is advanced. */
SK_API sk_status sk_toy_sample(const char *name, sk_rng *r, int64_t n, float *x, int32_t *labels);

/* ---- In-memory data sets ---------------------------------------------------- */
typedef struct sk_dataset sk_dataset;

/* A data set of n rows of d floats. Takes ownership of x (n, d), rank 2, n >= 1,
 * d >= 1, n < 2^32, every value finite, and of labels, a float tensor of shape
 * (n) holding integers in 0..2^24 (or NULL for none); the number of classes is
 * the largest label + 1; labels must be another tensor than x (SK_ERR_INVALID
 * when they are x itself). Ownership passes in every case: on failure both
 * tensors are freed (once, when they are the same) and *out is NULL
 * (SK_ERR_SHAPE, SK_ERR_NUMERIC, SK_ERR_INVALID, SK_ERR_NOMEM). Free with
 * sk_dataset_free. */
SK_API sk_status sk_dataset_new(sk_tensor *x, sk_tensor *labels, sk_dataset **out);

/* A data set of n images: x of shape (n, h, w) (one channel) or (n, c, h, w)
 * (NCHW), every value divided by `scale` (finite, > 0: 255 maps 8-bit pixels
 * to [0, 1], 1 keeps the values) and then finite. The rows are the flattened
 * images: sk_dataset_dim is c·h·w (at most 2^31 - 1), sk_dataset_x and batches
 * hold (n, c·h·w) in NCHW order, which is what an MLP reads; a model that
 * needs the layout asks sk_dataset_image_shape. Labels, n and ownership as in
 * sk_dataset_new (x is divided in place before the checks). */
SK_API sk_status sk_dataset_new_images(sk_tensor *x, sk_tensor *labels, float scale,
                                       sk_dataset **out);
SK_API void sk_dataset_free(sk_dataset *ds);

SK_API int64_t sk_dataset_size(const sk_dataset *ds);
SK_API int sk_dataset_dim(const sk_dataset *ds);
/* 0 when the data set has no labels. */
SK_API int sk_dataset_classes(const sk_dataset *ds);
/* Borrowed, valid while ds lives: the rows (n, d) and labels (n), or NULL when
 * there are none. */
SK_API const float *sk_dataset_x(const sk_dataset *ds);
SK_API const int32_t *sk_dataset_labels(const sk_dataset *ds);
/* For a set of images, 1 and their (c, h, w) in chw (unless chw is NULL);
 * 0 for a set of rows. */
SK_API int sk_dataset_image_shape(const sk_dataset *ds, int64_t chw[3]);
/* What the values were divided by when the set was made (1 for rows), so
 * that generated samples can be multiplied back into the data's range. */
SK_API float sk_dataset_scale(const sk_dataset *ds);

/* The next b rows into x (b, d) and their labels into labels (b) unless it is
 * NULL (-1 each when the set has none). Rows are drawn without replacement:
 * each epoch visits every row once in the order of a Fisher-Yates permutation
 * drawn from r when that epoch starts (r is only read and advanced then); a
 * batch may span epochs and b may exceed n. b = 0 is a no-op. */
SK_API sk_status sk_dataset_batch(sk_dataset *ds, sk_rng *r, int64_t b, float *x, int32_t *labels);

/* Where the batch stream stands: `epoch` (0-based) is the current epoch,
 * `cursor` (0..n) how many of its rows were handed out (0: its permutation is
 * not drawn yet), `rng_at_epoch_start` the position r had when the epoch's
 * permutation was drawn. Save it with the caller's rng; after set_pos and the
 * same rng, sk_dataset_batch continues with exactly the same rows. */
typedef struct sk_dataset_pos {
  int64_t epoch, cursor;
  sk_rng rng_at_epoch_start;
} sk_dataset_pos;

SK_API sk_dataset_pos sk_dataset_get_pos(const sk_dataset *ds);
/* Restores a position (redrawing that epoch's permutation from a copy of
 * pos.rng_at_epoch_start). SK_ERR_INVALID when epoch is not in 0..2^53 (the
 * training state's bound) or cursor is not in 0..n; the position is
 * unchanged then. */
SK_API sk_status sk_dataset_set_pos(sk_dataset *ds, sk_dataset_pos pos);

/* Per-dimension mean (d) and population standard deviation (d), in double. */
SK_API sk_status sk_dataset_stats(const sk_dataset *ds, float *mean, float *std);

/* The largest Euclidean distance between two rows, in *dist, computed in
 * double; *rows (may be NULL) gets how many rows it compared. Exact over all
 * n rows when the n(n−1)/2 pairs × d values are at most 4e8 (every 2-D set of
 * up to 20,000 points; about a second on one core, less as the pass skips
 * pairs that cannot be the farthest); otherwise over m evenly spaced rows (row
 * ⌊i·n/m⌋ for i < m), m the most whose pairs fit that budget but at least
 * 1000 (about 1000 for 784-value images: an exact pass over 60,000 of them
 * would take about an hour here). Deterministic, and the same whatever the
 * number of threads. SK_ERR_INVALID for n < 2. */
SK_API sk_status sk_dataset_max_distance(const sk_dataset *ds, double *dist, int64_t *rows);

/* Default ends of a σ ladder (Song & Ermon 2020, "Improved techniques for
 * training score-based generative models", technique 1: σ_1 about the largest
 * pairwise distance of the data, so the largest noise level connects all of
 * it). sigma_max = sk_dataset_max_distance; sigma_min = 0.01 × the mean over
 * dimensions of the per-dimension standard deviation, i.e. noise well below
 * the data's own scale. SK_ERR_INVALID for n < 2; SK_ERR_NUMERIC when the rows
 * all coincide or the spread is 0. */
SK_API sk_status sk_dataset_sigma_range(const sk_dataset *ds, float *sigma_max, float *sigma_min);

#ifdef __cplusplus
}
#endif
#endif
