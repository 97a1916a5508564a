/* Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) over a
 * compiled forward graph of the score model, one chunk of rows at a time. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "scorekit/sample.h"

/* Rows per graph run: fixed so the noise each row sees never depends on n. */
#define SK_SAMPLE_CHUNK 2048

sk_status sk_langevin(sk_model *m, const sk_langevin_config *cfg, sk_rng *r, float *x, int64_t n) {
  const sk_model_config *mc = sk_model_get_config(m);
  if (mc->kind == SK_MODEL_CLASSIFIER)
    return sk__fail(SK_ERR_INVALID, "langevin: a classifier is not a score model");
  const int cond = mc->kind == SK_MODEL_NCMLP;
  if (cfg->steps_per_level < 1 || !(cfg->eps > 0) || !isfinite(cfg->eps))
    return sk__fail(SK_ERR_INVALID, "langevin: need steps >= 1 and eps > 0 (got %d, %g)",
                    cfg->steps_per_level, cfg->eps);
  const int L = cfg->n_sigmas;
  if (cond && (L < 1 || !cfg->sigmas))
    return sk__fail(SK_ERR_INVALID, "langevin: a noise-conditional model needs a σ ladder");
  for (int i = 0; cond && i < L; i++)
    if (!(cfg->sigmas[i] > 0)) return sk__fail(SK_ERR_INVALID, "langevin: σ_%d is not positive", i + 1);
  if (n <= 0) return SK_OK;
  const int d = mc->dim;
  const int64_t rows = n < SK_SAMPLE_CHUNK ? n : SK_SAMPLE_CHUNK;
  sk_graph *g = sk_graph_new();
  if (!g) return SK_ERR_NOMEM;
  sk_node p[128];
  sk_status st = sk_model_bind(m, g, NULL, p);
  sk_node xin = sk_input(g, "x", 2, (int64_t[]){rows, d});
  sk_node sin = cond ? sk_input(g, "sigma", 2, (int64_t[]){rows, 1}) : SK_NONE;
  sk_node s = sk_model_apply(m, g, p, xin, sin);
  if (st == SK_OK) st = sk_graph_compile(g, 1, &s);
  float *z = sk__malloc((size_t)rows * (size_t)d * sizeof(float));
  if (st == SK_OK && !z) st = sk__fail(SK_ERR_NOMEM, "langevin: out of memory");
  const int levels = cond ? L : 1;
  const float sigma_last = cond ? cfg->sigmas[L - 1] : 1.0f;
  for (int64_t c0 = 0; st == SK_OK && c0 < n; c0 += rows) {
    const int64_t nr = SK_MIN(rows, n - c0);
    float *xc = sk_graph_data(g, xin), *score = sk_graph_data(g, s);
    memset(xc, 0, (size_t)rows * (size_t)d * sizeof(float));
    memcpy(xc, x + c0 * d, (size_t)(nr * d) * sizeof(float));
    for (int i = 0; i < levels && st == SK_OK; i++) {
      const float sig = cond ? cfg->sigmas[i] : 1.0f;
      const float alpha = cond ? cfg->eps * (sig * sig) / (sigma_last * sigma_last) : cfg->eps;
      const float half = 0.5f * alpha, noise = sqrtf(alpha);
      if (cond)
        for (int64_t j = 0; j < rows; j++) sk_graph_data(g, sin)[j] = sig;
      for (int t = 0; t < cfg->steps_per_level && st == SK_OK; t++) {
        st = sk_graph_run(g);
        sk_rng_normal(r, z, (size_t)(nr * d));
        for (int64_t j = 0; j < nr * d; j++) xc[j] += half * score[j] + noise * z[j];
      }
    }
    if (st == SK_OK && cfg->denoise) { /* Tweedie: E[x | x̃] = x̃ + σ² ∇log p_σ(x̃) */
      st = sk_graph_run(g);
      for (int64_t j = 0; j < nr * d; j++) xc[j] += sigma_last * sigma_last * score[j];
    }
    for (int64_t j = 0; st == SK_OK && j < nr * d; j++)
      if (!isfinite(xc[j]))
        st = sk__fail(SK_ERR_NUMERIC, "langevin: sample %lld diverged (reduce --eps)",
                      (long long)(c0 + j / d));
    if (st == SK_OK) memcpy(x + c0 * d, xc, (size_t)(nr * d) * sizeof(float));
  }
  sk__free(z);
  sk_graph_free(g);
  return st;
}
