/* Predictor-corrector sampling of the variance-exploding SDE (Song et al.
 * 2021, "Score-based generative modeling through stochastic differential
 * equations", Algorithm 2 with score_sde's ReverseDiffusionPredictor and
 * LangevinCorrector), one fixed chunk of rows at a time. */
#include <math.h>

#include "core/internal.h"
#include "score/internal.h"
#include "scorekit/sample.h"

/* Level i of N, geometric from σ_max (i = 0) to σ_min (i = N − 1). */
static double pc_sigma(const sk_pc_config *cfg, int i) {
  const double t = (double)i / (double)(cfg->levels - 1);
  return (double)cfg->sigma_max * pow((double)cfg->sigma_min / cfg->sigma_max, t);
}

/* One Langevin corrector step at σ with score_sde's step size: ε = 2 (r ‖z‖ /
 * ‖s‖)², the norms averaged over the chunk's rows, which makes ‖ε s‖ / ‖√(2ε) z‖
 * = r on average. (Per row, the ratio ‖z‖/‖s‖ is unbounded where the score
 * vanishes, at every mode and saddle: in two dimensions such rows jump away
 * and the samples' mean log-density fell from −3.5 to −278 nats on mog8.) */
static sk_status corrector(sk__chunk *c, float sigma, float *score, float *z) {
  const sk_pc_config *cfg = c->cfg;
  const int d = c->d;
  const size_t nd = (size_t)c->nr * (size_t)d;
  sk_status st = sk__chunk_score(c, sigma, score, "pc", "lower the snr");
  sk_rng_normal(&c->rng, z, nd);
  if (st != SK_OK) return st;
  double sn = 0, zn = 0;
  for (int64_t i = 0; i < c->nr; i++) {
    const float *si = score + i * d, *zi = z + i * d;
    double ss = 0, zz = 0;
    for (int j = 0; j < d; j++) ss += (double)si[j] * si[j], zz += (double)zi[j] * zi[j];
    sn += sqrt(ss), zn += sqrt(zz);
  }
  /* A zero score leaves the chunk where it is (no direction to step in). */
  const double r = cfg->snr, eps = sn > 0 ? 2.0 * (r * zn / sn) * (r * zn / sn) : 0.0;
  const float a = (float)eps, b = (float)sqrt(2.0 * eps);
  for (size_t j = 0; j < nd; j++) c->x[j] += a * score[j] + b * z[j];
  return SK_OK;
}

/* The chunk's run; with a mask, the known entries are put back at their
 * values noised to the level the chain is at after every step (σ_i after a
 * corrector step, σ_{i+1} after the predictor, 0 after the last), as
 * score_sde's inpainter. */
static sk_status pc_chunk(sk__chunk *c) {
  const sk_pc_config *cfg = c->cfg;
  const int N = cfg->levels, C = cfg->corrector_steps, d = c->d;
  const size_t nd = (size_t)c->nr * (size_t)d, rd = (size_t)sk_score_fn_rows(c->f) * (size_t)d;
  float *score = c->scratch, *z = score + rd;
  const int64_t total = (int64_t)N * (C + 1);
  sk__known known;
  sk__known_init(&known, c, z + rd, z + 2 * rd, (uint64_t)total);
  sk_status st = SK_OK;
  sk__known_noise(&known, c, (float)pc_sigma(cfg, 0));
  sk__known_apply(&known, c);
  sk__chunk_snapshot_steps(c, 0, total);
  for (int i = 0; i < N && st == SK_OK; i++) {
    const float sig = (float)pc_sigma(cfg, i);
    for (int k = 0; k < C && st == SK_OK; k++) {
      st = corrector(c, sig, score, z);
      sk__known_noise(&known, c, sig);
      sk__known_apply(&known, c);
      sk__chunk_snapshot_steps(c, (int64_t)i * (C + 1) + k + 1, total);
    }
    if (st != SK_OK) break;
    /* Reverse diffusion from σ_i to σ_{i+1} (σ_N = 0): the discretised
     * reverse SDE x ← x + (σ_i² − σ_{i+1}²) s + √(σ_i² − σ_{i+1}²) z. */
    const double s0 = sig, s1 = i + 1 < N ? pc_sigma(cfg, i + 1) : 0.0;
    const double var = s0 * s0 - s1 * s1;
    const float a = (float)var;
    /* The last step's mean is Tweedie's denoiser x + σ_min² s(x, σ_min). */
    const float b = i + 1 == N && cfg->denoise ? 0.0f : (float)sqrt(var);
    st = sk__chunk_score(c, sig, score, "pc", "lower the snr");
    sk_rng_normal(&c->rng, z, nd); /* drawn even when unused: a fixed count per chunk */
    for (size_t j = 0; st == SK_OK && j < nd; j++) c->x[j] += a * score[j] + b * z[j];
    sk__known_noise(&known, c, (float)s1);
    sk__known_apply(&known, c);
    sk__chunk_snapshot_steps(c, (int64_t)(i + 1) * (C + 1), total);
    sk__chunk_progress(c, C + 1);
  }
  c->stats.evals = total;
  return st == SK_OK ? sk__check_diverged("pc", c->x, c->nr, d, c->first_row, "lower the snr") : st;
}

sk_status sk_pc_sample(sk_score_fn *f, const sk_pc_config *cfg, sk_rng *r, float *x, int64_t n) {
  return sk_pc_sample_rows(f, cfg, r, x, n, 0, n);
}

sk_status sk_pc_sample_rows(sk_score_fn *f, const sk_pc_config *cfg, sk_rng *r, float *x,
                            int64_t n, int64_t first, int64_t count) {
  return sk__pc_rows(f, cfg, r, x, NULL, n, first, count);
}

sk_status sk__pc_rows(sk_score_fn *f, const sk_pc_config *cfg, sk_rng *r, float *x,
                      const float *mask, int64_t n, int64_t first, int64_t count) {
  sk_status st = sk__check_run("pc", f, cfg, r, x, count);
  if (st != SK_OK || (st = sk__check_hooks("pc", cfg->hooks)) != SK_OK ||
      (st = sk__check_sigma_range("pc", cfg->sigma_max, cfg->sigma_min)) != SK_OK)
    return st;
  if (cfg->levels < 2 || cfg->levels > 1 << 24)
    return sk__fail(SK_ERR_INVALID, "pc: levels %d outside 2..%d", cfg->levels, 1 << 24);
  if (cfg->corrector_steps < 0 || cfg->corrector_steps > 1000)
    return sk__fail(SK_ERR_INVALID, "pc: corrector steps %d outside 0..1000",
                    cfg->corrector_steps);
  if (!(cfg->snr > 0) || !isfinite(cfg->snr))
    return sk__fail(SK_ERR_INVALID, "pc: snr %g is not positive", cfg->snr);
  const size_t rd = (size_t)sk_score_fn_rows(f) * (size_t)sk_score_fn_dim(f);
  const int64_t per_chunk = (int64_t)cfg->levels * (cfg->corrector_steps + 1);
  /* With a mask: a draw for the known entries before the first step and
   * after every step but the last (as many as the sampler's), and their
   * values. */
  const sk__chunk_plan p = {"pc", pc_chunk, cfg, (mask ? 4 : 2) * rd * sizeof(float),
                            (uint64_t)per_chunk * (mask ? 2 : 1), per_chunk, cfg->hooks, mask};
  return sk__run_chunk_range(f, &p, r, x, NULL, NULL, n, first, count, NULL);
}
