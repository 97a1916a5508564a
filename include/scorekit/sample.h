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

/* ---- class-conditional models and inpainting ---- */

/* Classifier-free guidance (Ho & Salimans 2022) with a class-conditional
 * score model m (an ncmlp or U-Net with classes K > 0, trained with label
 * dropout): s(x, σ, ∅) + w (s(x, σ, y) − s(x, σ, ∅)), computed as
 * (1 − w) s(x, σ, ∅) + w s(x, σ, y), so that w = 0 gives the unconditional
 * score and w = 1 the conditional one bit for bit (one evaluation each, with
 * the bits of sk_score_fn_model for w = 0); w > 1 sharpens. y in 0..K−1, w
 * finite, rows as sk_score_fn_model's; borrows m. (sk_score_fn_model on such
 * a model gives its unconditional score.) */
SK_API sk_status sk_score_fn_cfg(sk_model *m, int rows, int y, float w, sk_score_fn **out);

typedef struct sk_inpaint_config {
  sk_langevin_config langevin; /* the ladder, the corrector's T Langevin steps per level
                                * (0 allowed with the predictor), eps, denoise */
  int predictor;               /* 1: before each level after the first, a reverse-diffusion
                                * step x ← x + (σ²_{i−1} − σ²_i) s(x, σ_{i−1}) + √(σ²_{i−1} − σ²_i) z
                                * (the ladder must then decrease) */
} sk_inpaint_config;

/* Fills the missing entries of the n rows of x (n, d) in place: mask (n, d)
 * holds 1 where x is known and 0 where it is to be sampled (nothing else);
 * the missing entries start from the values x holds. Annealed Langevin over
 * the ladder (docs/MATH.md) in which, at level σ_i, the known entries are
 * reset to x_known + σ_i z (z drawn once per level) after every step, and
 * to x_known exactly at the end. Chunks and noise as sk_langevin: the bits
 * never depend on the number of threads; r is advanced past
 * L·(T + 2) draws of each chunk. SK_ERR_INVALID for a bad config or mask,
 * SK_ERR_NUMERIC for a non-finite input or a diverging sample (named). */
SK_API sk_status sk_inpaint(sk_score_fn *f, const sk_inpaint_config *cfg, sk_rng *r, float *x,
                            const float *mask, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
