/* Inpainting and imputation with a score model: annealed Langevin (the
 * corrector), optionally after a reverse-diffusion step between levels (the
 * predictor), with the known entries reset to their values noised to the
 * current level after every step and exactly to their values at the end
 * (Song & Ermon 2019, section 5; Song et al. 2021, appendix I). Rows go in
 * fixed chunks, each with its own place in the noise sequence, so the bits
 * never depend on the number of threads. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "score/internal.h"
#include "scorekit/sample.h"

#define SK_INPAINT_MAX_THREADS 64

/* Draws of a chunk per level, each of its rows·d values (rounded up to a
 * block of 4): the known entries' noise, the predictor's noise (reserved
 * even when unused, so a chunk's draws sit at fixed places) and T
 * corrector steps. */
static uint64_t draws_per_level(const sk_inpaint_config *cfg) {
  return (uint64_t)cfg->langevin.steps_per_level + 2;
}

/* Where mask m (nd) is 1, x takes the value of y. */
static void reset_known(float *x, const float *y, const float *m, size_t nd) {
  for (size_t j = 0; j < nd; j++)
    if (m[j] != 0) x[j] = y[j];
}

typedef struct chunk_buf {
  float *score, *z, *known, *noisy;
} chunk_buf;

static sk_status inpaint_chunk(sk_score_fn *f, const sk_inpaint_config *cfg, sk_rng *r,
                               float *xc, const float *mc, int64_t nr, int64_t first_row,
                               const chunk_buf *b) {
  const sk_langevin_config *lc = &cfg->langevin;
  const int L = lc->n_sigmas, T = lc->steps_per_level, d = sk_score_fn_dim(f);
  const size_t nd = (size_t)nr * (size_t)d;
  const uint64_t draw = (nd + 3) / 4 * 4, start = r->offset;
  const float sL = lc->sigmas[L - 1];
  memcpy(b->known, xc, nd * sizeof(float));
  sk_status st = SK_OK;
  for (int i = 0; i < L && st == SK_OK; i++) {
    const float sig = lc->sigmas[i];
    r->offset = start + (uint64_t)i * draws_per_level(cfg) * draw;
    sk_rng_normal(r, b->z, nd);
    for (size_t j = 0; j < nd; j++) b->noisy[j] = b->known[j] + sig * b->z[j];
    if (cfg->predictor && i > 0) { /* x ← x + (σ²_{i-1} − σ²_i) s(x, σ_{i-1}) + √(…) z */
      const float prev = lc->sigmas[i - 1], dv = prev * prev - sig * sig, sd = sqrtf(dv);
      st = sk_score_fn_eval(f, xc, nr, prev, b->score);
      sk_rng_normal(r, b->z, nd);
      for (size_t j = 0; st == SK_OK && j < nd; j++) xc[j] += dv * b->score[j] + sd * b->z[j];
    }
    reset_known(xc, b->noisy, mc, nd);
    r->offset = start + ((uint64_t)i * draws_per_level(cfg) + 2) * draw;
    const float alpha = lc->eps * (sig * sig) / (sL * sL), half = 0.5f * alpha, noise = sqrtf(alpha);
    for (int t = 0; t < T && st == SK_OK; t++) {
      st = sk_score_fn_eval(f, xc, nr, sig, b->score);
      sk_rng_normal(r, b->z, nd);
      for (size_t j = 0; j < nd; j++) xc[j] += half * b->score[j] + noise * b->z[j];
      reset_known(xc, b->noisy, mc, nd);
    }
  }
  if (st == SK_OK && lc->denoise) { /* Tweedie on the missing entries */
    st = sk_score_fn_eval(f, xc, nr, sL, b->score);
    for (size_t j = 0; st == SK_OK && j < nd; j++) xc[j] += sL * sL * b->score[j];
  }
  if (st == SK_OK) reset_known(xc, b->known, mc, nd); /* the known values, exactly */
  for (size_t j = 0; st == SK_OK && j < nd; j++)
    if (!isfinite(xc[j]))
      st = sk__fail(SK_ERR_NUMERIC, "inpaint: sample %lld diverged (reduce eps)",
                    (long long)(first_row + (int64_t)(j / (size_t)d)));
  return st;
}

static sk_status check_inputs(const sk_inpaint_config *cfg, const float *x, const float *mask,
                              int64_t n, int d) {
  const sk_langevin_config *lc = &cfg->langevin;
  const int L = lc->n_sigmas;
  if (lc->steps_per_level < 0 || lc->steps_per_level > 1 << 24 || !(lc->eps > 0) ||
      !isfinite(lc->eps) || (lc->steps_per_level == 0 && !cfg->predictor))
    return sk__fail(SK_ERR_INVALID, "inpaint: need steps >= 1 (or 0 with the predictor) and "
                                    "eps > 0 (got %d, %g)", lc->steps_per_level, lc->eps);
  if (L < 1 || L > 1 << 20 || !lc->sigmas)
    return sk__fail(SK_ERR_INVALID, "inpaint: need a σ ladder of at least one level");
  for (int i = 0; i < L; i++) {
    if (!(lc->sigmas[i] > 0) || !isfinite(lc->sigmas[i]))
      return sk__fail(SK_ERR_INVALID, "inpaint: σ_%d = %g is not positive", i + 1, lc->sigmas[i]);
    if (cfg->predictor && i > 0 && !(lc->sigmas[i] < lc->sigmas[i - 1]))
      return sk__fail(SK_ERR_INVALID, "inpaint: the predictor needs a decreasing ladder "
                                      "(σ_%d = %g, σ_%d = %g)", i, lc->sigmas[i - 1], i + 1,
                      lc->sigmas[i]);
  }
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < d; j++) {
      const float m = mask[i * d + j], v = x[i * d + j];
      if (m != 0 && m != 1)
        return sk__fail(SK_ERR_INVALID, "inpaint: mask row %lld column %d is %g, not 0 or 1",
                        (long long)i, j, m);
      if (!isfinite(v))
        return sk__fail(SK_ERR_NUMERIC, "inpaint: input row %lld column %d is %g", (long long)i,
                        j, v);
    }
  return SK_OK;
}

sk_status sk_inpaint(sk_score_fn *f, const sk_inpaint_config *cfg, sk_rng *r, float *x,
                     const float *mask, int64_t n) {
  const int d = sk_score_fn_dim(f);
  if (n < 0) return sk__fail(SK_ERR_INVALID, "inpaint: n is %lld", (long long)n);
  sk_status st = check_inputs(cfg, x, mask, n, d);
  if (st != SK_OK || n == 0) return st;
  const int64_t rows = sk_score_fn_rows(f), n_chunks = (n + rows - 1) / rows;
  const uint64_t L = (uint64_t)cfg->langevin.n_sigmas;
  /* Chunk c's noise starts where it would if chunks ran one after another. */
  const uint64_t start = (r->offset + 3) / 4 * 4;
  const uint64_t per_draw = ((uint64_t)rows * (uint64_t)d + 3) / 4 * 4;
  const uint64_t per_chunk = per_draw * L * draws_per_level(cfg);
  int nt = sk__num_threads();
  if (nt > n_chunks) nt = (int)n_chunks;
  if (nt > SK_INPAINT_MAX_THREADS) nt = SK_INPAINT_MAX_THREADS;
  sk_score_fn *fns[SK_INPAINT_MAX_THREADS] = {f};
  float *buf[SK_INPAINT_MAX_THREADS] = {NULL};
  const size_t rd = (size_t)rows * (size_t)d;
  for (int t = 0; t < nt && st == SK_OK; t++) {
    if (t > 0) st = sk__score_fn_clone(f, &fns[t]);
    if (st == SK_OK && !(buf[t] = sk__malloc(4 * rd * sizeof(float))))
      st = sk__fail(SK_ERR_NOMEM, "inpaint: out of memory");
  }
  if (st == SK_OK) {
    int64_t failed_chunk = n_chunks;
    sk_status failed = SK_OK;
    char msg[512] = "";
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int64_t c = 0; c < n_chunks; c++) {
      const int t = omp_get_thread_num();
      sk_rng rc = *r;
      rc.offset = start + (uint64_t)c * per_chunk;
      const int64_t nr = SK_MIN(rows, n - c * rows);
      const chunk_buf b = {buf[t], buf[t] + rd, buf[t] + 2 * rd, buf[t] + 3 * rd};
      sk_status sc = inpaint_chunk(fns[t], cfg, &rc, x + c * rows * d, mask + c * rows * d, nr,
                                   c * rows, &b);
      if (sc != SK_OK) {
#pragma omp critical(sk_inpaint_error)
        if (c < failed_chunk) {
          failed_chunk = c;
          failed = sc;
          snprintf(msg, sizeof msg, "%s", sk_last_error());
        }
      }
    }
    if (failed != SK_OK) st = sk__fail(failed, "%s", msg);
  }
  for (int t = 0; t < nt; t++) {
    if (t > 0) sk_score_fn_free(fns[t]);
    sk__free(buf[t]);
  }
  if (st == SK_OK) {
    const uint64_t last = (uint64_t)(n - (n_chunks - 1) * rows) * (uint64_t)d;
    r->offset = start + (uint64_t)(n_chunks - 1) * per_chunk +
                (last + 3) / 4 * 4 * L * draws_per_level(cfg);
  }
  return st;
}
