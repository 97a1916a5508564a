/* scorekit sampling: the score-function interface samplers call (a trained
 * model, an analytic Gaussian mixture, or a guided combination), and Langevin
 * and annealed Langevin dynamics (docs/MATH.md, toy convention:
 * x ← x + (α/2) s(x, σ) + √α z). */
#ifndef SCOREKIT_SAMPLE_H
#define SCOREKIT_SAMPLE_H

#include "data.h"
#include "nn.h"
#include "rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows a score function evaluates per call, at most. */
#define SK_SCORE_ROWS 2048

typedef struct sk_score_fn sk_score_fn;

/* A trained score model (borrowed; it must outlive the function): a compiled
 * forward graph for up to `rows` rows (1..SK_SCORE_ROWS), run once per call
 * with no allocation. An unconditional model ignores σ. */
SK_API sk_status sk_score_fn_model(sk_model *m, int rows, sk_score_fn **out);
/* The exact score ∇ₓ log p_σ(x) of a Gaussian mixture (borrowed). */
SK_API sk_status sk_score_fn_gmm(const sk_gmm *g, sk_score_fn **out);
/* Classifier guidance: base(x, σ) + w ∇ₓ log p(y | x, σ), with p(y | x, σ) from
 * a trained noise-conditional classifier (SK_MODEL_CLASSIFIER), for as many
 * rows as `base` takes. Borrows both. */
SK_API sk_status sk_score_fn_guided_model(sk_score_fn *base, sk_model *classifier, int y, float w,
                                          sk_score_fn **out);
/* The same with the exact posterior of a Gaussian mixture as the classifier. */
SK_API sk_status sk_score_fn_guided_gmm(sk_score_fn *base, const sk_gmm *g, int y, float w,
                                        sk_score_fn **out);
SK_API void sk_score_fn_free(sk_score_fn *f);
/* The exact score error E_{x ~ p_σ} ‖f(x, σ) − ∇ₓ log p_σ(x)‖² of a score
 * function against a Gaussian mixture, from n draws of p_σ (seed). */
SK_API sk_status sk_score_error(sk_score_fn *f, const sk_gmm *law, float sigma, int64_t n,
                                uint64_t seed, double *error);
/* Share of rows of x (n, d) whose most probable class under a classifier
 * model at noise level σ is their label (n). */
SK_API sk_status sk_classifier_accuracy(sk_model *classifier, const float *x, const int32_t *labels,
                                        int64_t n, float sigma, double *accuracy);
SK_API int sk_score_fn_dim(const sk_score_fn *f);
/* The most rows one call takes (SK_SCORE_ROWS for an analytic law). */
SK_API int sk_score_fn_rows(const sk_score_fn *f);
/* out (n, d) = s(x, σ) for x (n, d), 1 <= n <= sk_score_fn_rows(f). */
SK_API sk_status sk_score_fn_eval(sk_score_fn *f, const float *x, int64_t n, float sigma, float *out);

typedef struct sk_langevin_config {
  int n_sigmas;         /* the ladder, largest first; 1 level = plain Langevin at that σ */
  const float *sigmas;
  int steps_per_level;  /* T */
  float eps;            /* α_i = eps · σ_i² / σ_L² */
  int denoise;          /* final x ← x + σ_L² s(x, σ_L) (NCSNv2) */
} sk_langevin_config;

/* Runs (annealed) Langevin dynamics on the n rows of x (n, d) in place,
 * starting from the values x holds, with the noise of `r` (advanced). Rows go
 * in fixed chunks of sk_score_fn_rows(f), so the bits never depend on the
 * number of threads. SK_ERR_NUMERIC naming the sample if one diverges. */
SK_API sk_status sk_langevin(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r, float *x,
                             int64_t n);
/* Rows [first, first + count) of sk_langevin on n rows, with their bits
 * (each chunk has its own place in r's sequence), for processes that share
 * a run: x holds those rows only, first and first + count are each a multiple of
 * sk_score_fn_rows(f) or n (SK_ERR_INVALID otherwise; count 0 is a
 * no-op). r moves as sk_langevin on all n rows moves it. */
SK_API sk_status sk_langevin_rows(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r,
                                  float *x, int64_t n, int64_t first, int64_t count);

#ifdef __cplusplus
}
#endif
#endif
