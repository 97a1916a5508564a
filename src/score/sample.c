/* Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) over any score
 * function, one fixed chunk of rows at a time. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

/* Threads that sample chunks at once (each with its own compiled graph). */
#define SK_LANGEVIN_MAX_THREADS 64

#include "core/internal.h"
#include "score/internal.h"
#include "scorekit/sample.h"


/* Langevin on one chunk of nr rows, with its own noise. */
static sk_status langevin_chunk(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r,
                                float *xc, int64_t nr, int64_t first_row, float *score, float *z) {
  const int L = cfg->n_sigmas, d = sk_score_fn_dim(f);
  const size_t nd = (size_t)nr * (size_t)d;
  const float sL = cfg->sigmas[L - 1];
  sk_status st = SK_OK;
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
                    (long long)(first_row + (int64_t)(j / (size_t)d)));
  return st;
}

sk_status sk_langevin(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r, float *x, int64_t n) {
  return sk_langevin_rows(f, cfg, r, x, n, 0, n);
}

sk_status sk_langevin_rows(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r, float *x,
                           int64_t n, int64_t first, int64_t count) {
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
  const int64_t rows = sk_score_fn_rows(f), n_chunks = (n + rows - 1) / rows;
  if (first < 0 || count < 0 || first > n - count || (first % rows && first != n) ||
      ((first + count) % rows && first + count != n))
    return sk__fail(SK_ERR_INVALID,
                    "langevin: rows [%lld, %lld) of %lld are not whole chunks of %lld",
                    (long long)first, (long long)(first + count), (long long)n, (long long)rows);
  /* This call's chunks: [c0, c1) of the whole run's. */
  const int64_t c0 = (first + rows - 1) / rows, c1 = (first + count + rows - 1) / rows;
  /* Chunk c draws its noise from its own place in r's sequence: where it
   * would start if the chunks ran one after another (each draw of a full
   * chunk takes whole blocks of 4). So chunks run on any threads, in any
   * order, with the bits of a sequential run. */
  const uint64_t start = (r->offset + 3) / 4 * 4;
  const uint64_t per_draw = ((uint64_t)rows * (uint64_t)d + 3) / 4 * 4;
  const uint64_t per_chunk = per_draw * (uint64_t)L * (uint64_t)cfg->steps_per_level;
  int nt = sk__num_threads();
  if (nt > c1 - c0) nt = (int)SK_MAX(1, c1 - c0);
  if (nt > SK_LANGEVIN_MAX_THREADS) nt = SK_LANGEVIN_MAX_THREADS;
  /* Each thread evaluates scores through its own copy (a compiled graph is
   * one arena) and its own buffers. */
  sk_score_fn *fns[SK_LANGEVIN_MAX_THREADS] = {f};
  float *buf[SK_LANGEVIN_MAX_THREADS] = {NULL};
  sk_status st = SK_OK;
  for (int t = 0; t < nt && st == SK_OK; t++) {
    if (t > 0) st = sk__score_fn_clone(f, &fns[t]);
    if (st == SK_OK && !(buf[t] = sk__malloc(2 * (size_t)rows * (size_t)d * sizeof(float))))
      st = sk__fail(SK_ERR_NOMEM, "langevin: out of memory");
  }
  if (st == SK_OK) {
    int64_t failed_chunk = n_chunks;
    sk_status failed = SK_OK;
    char msg[512] = "";
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int64_t c = c0; c < c1; c++) {
      const int t = omp_get_thread_num();
      sk_rng rc = *r;
      rc.offset = start + (uint64_t)c * per_chunk;
      const int64_t nr = SK_MIN(rows, n - c * rows);
      float *score = buf[t], *z = buf[t] + (size_t)rows * (size_t)d;
      sk_status sc =
          langevin_chunk(fns[t], cfg, &rc, x + (c - c0) * rows * d, nr, c * rows, score, z);
      if (sc != SK_OK) {
#pragma omp critical(sk_langevin_error)
        if (c < failed_chunk) { /* the first failing chunk's message, whatever the thread */
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
  /* r moves past every chunk's noise, as a sequential run leaves it. */
  if (st == SK_OK) {
    const uint64_t last = (uint64_t)(n - (n_chunks - 1) * rows) * (uint64_t)d;
    r->offset = start + (uint64_t)(n_chunks - 1) * per_chunk +
                (last + 3) / 4 * 4 * (uint64_t)L * (uint64_t)cfg->steps_per_level;
  }
  return st;
}
