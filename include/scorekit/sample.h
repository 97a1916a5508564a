/* scorekit sampling: the score-function interface samplers call (a trained
 * model, an analytic Gaussian mixture, or a guided combination); annealed
 * Langevin dynamics (docs/MATH.md, toy convention: x ← x + (α/2) s(x, σ) + √α z),
 * the predictor-corrector sampler and the probability-flow ODE of the
 * variance-exploding SDE, and log-likelihoods along that ODE. */
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
 * model at noise level σ is their label (n). SK_ERR_INVALID for n < 1, σ not
 * positive and finite, a label outside 0..K−1 (named by its row) or a NULL
 * pointer; SK_ERR_NUMERIC naming a value of x that is not finite. */
SK_API sk_status sk_classifier_accuracy(sk_model *classifier, const float *x, const int32_t *labels,
                                        int64_t n, float sigma, double *accuracy);
SK_API int sk_score_fn_dim(const sk_score_fn *f);
/* The most rows one call takes (SK_SCORE_ROWS for an analytic law). */
SK_API int sk_score_fn_rows(const sk_score_fn *f);
/* out (n, d) = s(x, σ) for x (n, d), 1 <= n <= sk_score_fn_rows(f).
 * SK_ERR_NUMERIC naming the first value of x that is not finite ("x[i, j]"),
 * whatever computes the score. */
SK_API sk_status sk_score_fn_eval(sk_score_fn *f, const float *x, int64_t n, float sigma, float *out);
/* The divergence ∇ₓ·s(x, σ) of a model or mixture score (not a guided one):
 * score (n, d) = s(x, σ) and div (n) per row, either exact (v NULL: the trace
 * of the Jacobian; d vector-Jacobian products for a model, the analytic
 * Laplacian of log p_σ for a mixture) or Hutchinson's estimate with k probes
 * v (k, n, d): div = (1/k) Σ_j v_jᵀ ∇ₓ(v_jᵀ s) (docs/MATH.md). A model compiles
 * the graph of vᵀ ∇ₓ(vᵀ s) at its first call. x as sk_score_fn_eval's. */
SK_API sk_status sk_score_fn_divergence(sk_score_fn *f, const float *x, int64_t n, float sigma,
                                        int k, const float *v, float *score, double *div);

/* Hooks of a long run, all optional (zero: none).
 * progress(ctx, done, total): called from the calling thread as work is done
 * (units: score evaluations for Langevin and PC, thousandths of each chunk's
 * log σ range for the ODE and likelihoods), and once at the end with done ==
 * total.
 * snapshots (n_snapshots K >= 2, K × d floats): row 0 of the first chunk at K
 * evenly spaced points of the run, the first its start and the last the
 * returned sample (Langevin and PC: evenly spaced in score evaluations; the
 * ODE: in log σ, interpolated between the solver's steps). K = 0: none; the
 * samplers refuse (SK_ERR_INVALID) K < 0, K = 1, and K >= 2 with snapshots
 * NULL. */
typedef struct sk_sample_hooks {
  void (*progress)(void *ctx, int64_t done, int64_t total);
  void *ctx;
  int n_snapshots;
  float *snapshots;
} sk_sample_hooks;

typedef struct sk_langevin_config {
  int n_sigmas;         /* the ladder, largest first (never increasing; SK_ERR_INVALID
                         * otherwise); 1 level = plain Langevin at that σ */
  const float *sigmas;
  int steps_per_level;  /* T */
  float eps;            /* α_i = eps · σ_i² / σ_L² */
  int denoise;          /* final x ← x + σ_L² s(x, σ_L) (NCSNv2) */
  const sk_sample_hooks *hooks; /* NULL: none */
} sk_langevin_config;

/* The step size ε of NCSNv2 (Song & Ermon 2020, technique 4) for T steps a
 * level on a geometric ladder with ratio γ = σ_i/σ_{i+1} > 1 ending at σ_L, in
 * the toy convention: the ε that brings the ratio of the chain's standard
 * deviation after T steps to σ_i closest to 1 (docs/MATH.md). 0 with the
 * last error set for bad arguments. */
SK_API float sk_langevin_ncsnv2_eps(int steps_per_level, float gamma, float sigma_L);

/* Runs (annealed) Langevin dynamics on the n rows of x (n, d) in place,
 * starting from the values x holds, with the noise of `r` (advanced). Rows go
 * in fixed chunks of sk_score_fn_rows(f), so the bits never depend on the
 * number of threads. SK_ERR_NUMERIC naming the sample if one diverges, or
 * the value of the start that is not finite ("x[i, j]"); SK_ERR_INVALID for
 * a bad config or a NULL f, cfg, r or x (x may be NULL with no rows). The
 * other samplers and the likelihood check their arguments the same way. */
SK_API sk_status sk_langevin(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r, float *x,
                             int64_t n);
/* Rows [first, first + count) of sk_langevin on n rows, with their bits
 * (each chunk has its own place in r's sequence), for processes that share
 * a run: x holds those rows only, first and first + count are each a multiple of
 * sk_score_fn_rows(f) or n (SK_ERR_INVALID otherwise; count 0 is a
 * no-op). r moves as sk_langevin on all n rows moves it. */
SK_API sk_status sk_langevin_rows(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r,
                                  float *x, int64_t n, int64_t first, int64_t count);

/* Predictor-corrector sampling of the variance-exploding SDE (Song et al.
 * 2021): N geometric levels from sigma_max to sigma_min; at each, C Langevin
 * corrector steps at signal-to-noise ratio snr, then a reverse-diffusion
 * predictor step to the next level (to σ = 0 after the last: with denoise,
 * its mean x + σ_min² s(x, σ_min), without, plus noise). docs/MATH.md. */
/* The CLI's defaults, measured with exact mixture scores (docs/MATH.md):
 * levels for points (rows) and for images, corrector steps and snr. */
#define SK_PC_LEVELS_POINTS 200
#define SK_PC_LEVELS_IMAGES 1000
#define SK_PC_CORRECTOR_STEPS 1
#define SK_PC_SNR 0.16f
/* The ODE's default tolerances (rtol and atol). */
#define SK_ODE_TOL 1e-5

typedef struct sk_pc_config {
  float sigma_max, sigma_min; /* sigma_max > sigma_min > 0 */
  int levels;                 /* N >= 2 */
  int corrector_steps;        /* C >= 0 */
  float snr;                  /* r > 0 */
  int denoise;
  const sk_sample_hooks *hooks;
} sk_pc_config;

/* Runs the sampler on the n rows of x (n, d) in place, from the values x
 * holds (normally N(0, sigma_max² I)), with the noise of r (advanced by
 * N·(C + 1) draws of each chunk). Chunks as sk_langevin: the same bits for
 * any number of threads. */
SK_API sk_status sk_pc_sample(sk_score_fn *f, const sk_pc_config *cfg, sk_rng *r, float *x,
                              int64_t n);
/* Rows [first, first + count) of sk_pc_sample on n rows, with their bits, as
 * sk_langevin_rows (x holds those rows only; whole chunks). */
SK_API sk_status sk_pc_sample_rows(sk_score_fn *f, const sk_pc_config *cfg, sk_rng *r, float *x,
                                   int64_t n, int64_t first, int64_t count);

/* The probability-flow ODE dx/dσ = −σ s(x, σ), solved in t = log σ by
 * Dormand-Prince 5(4) with adaptive steps (docs/MATH.md). */
typedef struct sk_ode_config {
  float sigma_max, sigma_min; /* sigma_max > sigma_min > 0 */
  double rtol, atol;          /* 1e-12 <= rtol < 1, 1e-12 <= atol < 1e6: where the solver's
                               * step sizes stay finite */
  int denoise;                /* sampling: a final x ← x + σ_min² s(x, σ_min) */
  const sk_sample_hooks *hooks;
} sk_ode_config;

/* What a solve cost, summed over chunks. */
typedef struct sk_ode_stats {
  int64_t evals;    /* score (or score and divergence) evaluations */
  int64_t steps;    /* accepted steps */
  int64_t rejected; /* rejected steps */
} sk_ode_stats;

/* Integrates the n rows of x (n, d) in place from sigma_max down to
 * sigma_min (x normally N(0, sigma_max² I) at the start). Each chunk of
 * sk_score_fn_rows(f) rows has its own adaptive steps (error norm: the RMS
 * over the chunk's values), so the result does not depend on the number of
 * threads. stats may be NULL. */
SK_API sk_status sk_ode_sample(sk_score_fn *f, const sk_ode_config *cfg, float *x, int64_t n,
                               sk_ode_stats *stats);
/* Rows [first, first + count) of sk_ode_sample on n rows, with their bits, as
 * sk_langevin_rows; stats count those rows' chunks. */
SK_API sk_status sk_ode_sample_rows(sk_score_fn *f, const sk_ode_config *cfg, float *x, int64_t n,
                                    int64_t first, int64_t count, sk_ode_stats *stats);

typedef struct sk_likelihood_config {
  sk_ode_config ode; /* denoise and snapshots are not used */
  int probes;        /* K >= 1 Rademacher probes per row for Hutchinson's trace
                        estimate, fixed through each solve; 0: the exact trace */
} sk_likelihood_config;

/* logp (n) = log p_{σ_min}(x_i) for the rows of x (n, d), by the
 * instantaneous change of variables along the probability-flow ODE from
 * sigma_min to sigma_max with the prior N(0, sigma_max² I) there
 * (docs/MATH.md). The probes come from r (advanced by K draws of each
 * chunk). The same bits for any number of threads. stats may be NULL. */
SK_API sk_status sk_likelihood(sk_score_fn *f, const sk_likelihood_config *cfg, sk_rng *r,
                               const float *x, int64_t n, double *logp, sk_ode_stats *stats);
/* Rows [first, first + count) of sk_likelihood on n rows (whole chunks of
 * sk_score_fn_rows(f), or up to n; count 0 allowed), with the bits they get
 * there: x and logp hold those rows only, r advances (on success) as the
 * whole run leaves it, and errors name rows by their place in the run.
 * stats count those rows' chunks. For a share of the work per process;
 * SK_ERR_INVALID for a range that is not whole chunks. */
SK_API sk_status sk_likelihood_rows(sk_score_fn *f, const sk_likelihood_config *cfg, sk_rng *r,
                                    const float *x, int64_t n, int64_t first, int64_t count,
                                    double *logp, sk_ode_stats *stats);

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

/* The samplers inpainting runs. */
typedef enum sk_inpaint_sampler {
  SK_INPAINT_PC = 0,      /* predictor-corrector (cfg.pc) */
  SK_INPAINT_LANGEVIN = 1 /* annealed Langevin (cfg.langevin) */
} sk_inpaint_sampler;

typedef struct sk_inpaint_config {
  sk_inpaint_sampler sampler;
  sk_pc_config pc;             /* as sk_pc_sample's, hooks included */
  sk_langevin_config langevin; /* as sk_langevin's, hooks included */
} sk_inpaint_config;

/* Fills the missing entries of the n rows of x (n, d) in place: mask (n, d)
 * holds 1 where x is known and 0 where it is to be sampled (nothing else);
 * the missing entries start from the values x holds (normally N(0, σ_max² I)).
 * The sampler runs as sk_pc_sample or sk_langevin, with the known entries put
 * back at x_known + σ z (z fresh) at the level σ the chain is at: for PC
 * before the first step and after every corrector and predictor step; for
 * Langevin at each level's start and after every step, z drawn once a level;
 * at the end, x_known exactly (docs/MATH.md). The known entries' noise comes
 * after the sampler's own in each chunk: with an all-zero mask the result is
 * the sampler's, bit for bit. r advances by twice the sampler's draws of each
 * chunk (PC) or by L more (Langevin). Chunks as the samplers': the bits never
 * depend on the number of threads. SK_ERR_INVALID for a bad config or mask,
 * SK_ERR_NUMERIC for a non-finite input or a diverging sample (named). */
SK_API sk_status sk_inpaint(sk_score_fn *f, const sk_inpaint_config *cfg, sk_rng *r, float *x,
                            const float *mask, int64_t n);
/* Rows [first, first + count) of sk_inpaint on n rows (whole chunks of
 * sk_score_fn_rows(f), or up to n; count 0 allowed), with the bits they get
 * there: x and mask hold those rows only, r advances (on success) as the
 * whole run leaves it, and errors name rows by their place in the run. For a
 * share of the work per process; SK_ERR_INVALID for a range that is not
 * whole chunks. */
SK_API sk_status sk_inpaint_rows(sk_score_fn *f, const sk_inpaint_config *cfg, sk_rng *r, float *x,
                                 const float *mask, int64_t n, int64_t first, int64_t count);

#ifdef __cplusplus
}
#endif
#endif
