/* scorekit samplers: Langevin and annealed Langevin dynamics (MATH.md, toy
 * convention: x ← x + (α/2) s(x, σ) + √α z) with a trained score model. */
#ifndef SCOREKIT_SAMPLE_H
#define SCOREKIT_SAMPLE_H

#include "nn.h"
#include "rng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_langevin_config {
  int n_sigmas;         /* annealed: the ladder, largest first; 1 level = plain Langevin */
  const float *sigmas;  /* plain Langevin with an unconditional model: ignored */
  int steps_per_level;  /* T */
  float eps;            /* α_i = eps · σ_i² / σ_L² (plain Langevin: α = eps) */
  int denoise;          /* final x ← x + σ_L² s(x, σ_L) (NCSNv2) */
} sk_langevin_config;

/* Runs (annealed) Langevin dynamics on the n rows of x (n, dim) in place,
 * starting from the values x holds, with the noise of `r` (advanced). Rows
 * are processed in fixed chunks, so the result is the same bits for any
 * number of threads. Works with an unconditional (SK_MODEL_MLP) or a
 * noise-conditional model. Errors: a classifier model, bad config. */
SK_API sk_status sk_langevin(sk_model *m, const sk_langevin_config *cfg, sk_rng *r, float *x,
                             int64_t n);

#ifdef __cplusplus
}
#endif
#endif
