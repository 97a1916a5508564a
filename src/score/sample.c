/* Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) over any score
 * function, one fixed chunk of rows at a time. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "scorekit/sample.h"

sk_status sk_langevin(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r, float *x, int64_t n) {
  const int L = cfg->n_sigmas;
  if (cfg->steps_per_level < 1 || !(cfg->eps > 0) || !isfinite(cfg->eps))
    return sk__fail(SK_ERR_INVALID, "langevin: need steps >= 1 and eps > 0 (got %d, %g)",
                    cfg->steps_per_level, cfg->eps);
  if (L < 1 || L > 1 << 20 || !cfg->sigmas)
    return sk__fail(SK_ERR_INVALID, "langevin: need a σ ladder of at least one level");
  for (int i = 0; i < L; i++)
    if (!(cfg->sigmas[i] > 0) || !isfinite(cfg->sigmas[i]))
      return sk__fail(SK_ERR_INVALID, "langevin: σ_%d = %g is not positive", i + 1, cfg->sigmas[i]);
  if (n <= 0) return SK_OK;
  const int d = sk_score_fn_dim(f);
  const int64_t rows = sk_score_fn_rows(f);
  const size_t chunk = (size_t)rows * (size_t)d;
  float *score = sk__malloc(chunk * sizeof(float)), *z = sk__malloc(chunk * sizeof(float));
  sk_status st = score && z ? SK_OK : sk__fail(SK_ERR_NOMEM, "langevin: out of memory");
  const float sL = cfg->sigmas[L - 1];
  for (int64_t c0 = 0; st == SK_OK && c0 < n; c0 += rows) {
    const int64_t nr = SK_MIN(rows, n - c0);
    const size_t nd = (size_t)nr * (size_t)d;
    float *xc = x + c0 * d;
    for (int i = 0; i < L && st == SK_OK; i++) {
      const float sig = cfg->sigmas[i];
      const float alpha = cfg->eps * (sig * sig) / (sL * sL);
      const float half = 0.5f * alpha, noise = sqrtf(alpha);
      for (int t = 0; t < cfg->steps_per_level && st == SK_OK; t++) {
        st = sk_score_fn_eval(f, xc, nr, sig, score);
        sk_rng_normal(r, z, nd);
        for (size_t j = 0; j < nd; j++) xc[j] += half * score[j] + noise * z[j];
      }
    }
    if (st == SK_OK && cfg->denoise) { /* Tweedie: E[x | x̃] = x̃ + σ² ∇log p_σ(x̃) */
      st = sk_score_fn_eval(f, xc, nr, sL, score);
      for (size_t j = 0; st == SK_OK && j < nd; j++) xc[j] += sL * sL * score[j];
    }
    for (size_t j = 0; st == SK_OK && j < nd; j++)
      if (!isfinite(xc[j]))
        st = sk__fail(SK_ERR_NUMERIC, "langevin: sample %lld diverged (reduce eps)",
                      (long long)(c0 + (int64_t)(j / (size_t)d)));
  }
  sk__free(score);
  sk__free(z);
  return st;
}
