/* Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) over any score
 * function, and the chunked driver every sampler and likelihood runs on:
 * fixed chunks of rows, each with its own place in the random sequence. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

/* Threads that run chunks at once (each with its own compiled graph). */
#define SK_CHUNK_MAX_THREADS 64

#include "core/internal.h"
#include "score/internal.h"
#include "scorekit/sample.h"

void sk__chunk_progress(sk__chunk *c, int64_t units) {
  if (!c->hooks || !c->hooks->progress) return;
  int64_t done;
#pragma omp atomic capture
  done = *c->done += units;
  /* Thread 0 of the team is the thread that called the sampler. */
  if (omp_get_thread_num() == 0) c->hooks->progress(c->hooks->ctx, done, c->total);
}

void sk__chunk_snapshot_steps(sk__chunk *c, int64_t done, int64_t total) {
  const sk_sample_hooks *h = c->hooks;
  if (c->index != 0 || !h || h->n_snapshots < 2 || !h->snapshots) return;
  const int64_t k1 = h->n_snapshots - 1;
  /* Snapshot k is due after step ⌈k·total/(K−1)⌉. */
  while (c->next_snapshot <= k1 && (int64_t)c->next_snapshot * total <= done * k1) {
    memcpy(h->snapshots + (size_t)c->next_snapshot * (size_t)c->d, c->x ? c->x : c->xin,
           (size_t)c->d * sizeof(float));
    c->next_snapshot++;
  }
}

sk_status sk__check_sigma_range(const char *what, float sigma_max, float sigma_min) {
  if (!(sigma_min > 0) || !(sigma_max > sigma_min) || !isfinite(sigma_max))
    return sk__fail(SK_ERR_INVALID, "%s: need σ_max > σ_min > 0, finite (got %g, %g)", what,
                    sigma_max, sigma_min);
  return SK_OK;
}

sk_status sk__check_run(const char *what, const sk_score_fn *f, const void *cfg, const sk_rng *r,
                        const void *x, int64_t count) {
  const char *null = !f ? "the score function" : !cfg ? "the config" : !r ? "r"
                     : !x && count > 0 ? "x" : NULL;
  return null ? sk__fail(SK_ERR_INVALID, "%s: %s is NULL", what, null) : SK_OK;
}

sk_status sk__check_hooks(const char *what, const sk_sample_hooks *h) {
  if (!h || h->n_snapshots == 0) return SK_OK;
  if (h->n_snapshots < 2)
    return sk__fail(SK_ERR_INVALID, "%s: %d snapshots asked for: 0 (none) or at least 2 (the "
                                    "start and the sample)", what, h->n_snapshots);
  if (!h->snapshots)
    return sk__fail(SK_ERR_INVALID, "%s: %d snapshots asked for, and snapshots is NULL", what,
                    h->n_snapshots);
  return SK_OK;
}

/* ⌈a / b⌉ for a >= 0, b > 0, without overflow. */
static int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

sk_status sk__check_row_range(const char *what, const sk_score_fn *f, int64_t n, int64_t first,
                              int64_t count) {
  if (n < 0) return sk__fail(SK_ERR_INVALID, "%s: n is %lld", what, (long long)n);
  const int d = sk_score_fn_dim(f);
  const int64_t rows = sk_score_fn_rows(f);
  if (n > INT64_MAX / d)
    return sk__fail(SK_ERR_INVALID, "%s: %lld rows of %d values are more than memory holds", what,
                    (long long)n, d);
  /* first + count is formed only once first <= n − count. */
  if (first < 0 || count < 0 || first > n - count || (first % rows && first != n) ||
      ((first + count) % rows && first + count != n))
    return sk__fail(SK_ERR_INVALID, "%s: first %lld and count %lld (of %lld rows) are not whole "
                    "chunks of %lld", what, (long long)first, (long long)count, (long long)n,
                    (long long)rows);
  return SK_OK;
}

sk_status sk__run_chunk_range(sk_score_fn *f, const sk__chunk_plan *p, sk_rng *r, float *x,
                              const float *xin, double *out, int64_t n, int64_t first,
                              int64_t count, sk_ode_stats *stats) {
  sk_status st = sk__check_row_range(p->what, f, n, first, count);
  if (st != SK_OK) return st;
  const int d = sk_score_fn_dim(f);
  const int64_t rows = sk_score_fn_rows(f), n_chunks = ceil_div(n, rows);
  /* A start that is not finite is the caller's, named by its row in the run. */
  if ((st = sk__check_rows_finite(p->what, x ? x : xin, count, d, first)) != SK_OK) return st;
  if (n == 0) return SK_OK;
  /* This call's chunks: [c0, c1) of the whole run's; x, xin and out hold
   * their rows only. */
  const int64_t c0 = ceil_div(first, rows), c1 = ceil_div(first + count, rows);
  /* Chunk c draws its noise from its own place in r's sequence: where it
   * would start if the chunks ran one after another (each draw of a full
   * chunk takes whole blocks of 4). So chunks run on any threads, in any
   * order, with the bits of a sequential run. */
  const uint64_t start = (r->offset + 3) / 4 * 4;
  const uint64_t per_draw = ((uint64_t)rows * (uint64_t)d + 3) / 4 * 4;
  const uint64_t per_chunk = per_draw * p->draws;
  int nt = sk__num_threads();
  if (nt > c1 - c0) nt = (int)SK_MAX(1, c1 - c0);
  if (nt > SK_CHUNK_MAX_THREADS) nt = SK_CHUNK_MAX_THREADS;
  /* Each thread evaluates scores through its own copy (a compiled graph is
   * one arena) and its own buffers. */
  sk_score_fn *fns[SK_CHUNK_MAX_THREADS] = {f};
  void *buf[SK_CHUNK_MAX_THREADS] = {NULL};
  for (int t = 0; t < nt && st == SK_OK; t++) {
    if (t > 0) st = sk__score_fn_clone(f, &fns[t]);
    if (st == SK_OK && !(buf[t] = sk__malloc(p->scratch_bytes ? p->scratch_bytes : 1)))
      st = sk__fail(SK_ERR_NOMEM, "%s: out of memory", p->what);
  }
  int64_t done = 0;
  const int64_t total = p->units * (c1 - c0);
  sk_ode_stats sum = {0, 0, 0};
  if (st == SK_OK) {
    int64_t failed_chunk = c1;
    sk_status failed = SK_OK;
    char msg[512] = "";
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int64_t c = c0; c < c1; c++) {
      const int t = omp_get_thread_num();
      const int64_t r0 = c * rows, l0 = r0 - c0 * rows; /* in the run, in this call's rows */
      sk__chunk ck = {.f = fns[t], .x = x ? x + l0 * d : NULL, .xin = (x ? x : xin) + l0 * d,
                      .mask = p->mask ? p->mask + l0 * d : NULL,
                      .out = out ? out + l0 : NULL, .nr = SK_MIN(rows, n - r0), .first_row = r0,
                      .index = c, .d = d, .rng = *r, .scratch = buf[t], .cfg = p->cfg,
                      .hooks = p->hooks, .done = &done, .total = total};
      ck.rng.offset = start + (uint64_t)c * per_chunk;
      sk_status sc = p->fn(&ck);
#pragma omp critical(sk_chunk_result)
      {
        sum.evals += ck.stats.evals;
        sum.steps += ck.stats.steps;
        sum.rejected += ck.stats.rejected;
        if (sc != SK_OK && c < failed_chunk) { /* the first failing chunk's message */
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
    /* r moves past every chunk's noise, as a sequential run leaves it. */
    const uint64_t last = (uint64_t)(n - (n_chunks - 1) * rows) * (uint64_t)d;
    r->offset = start + (uint64_t)(n_chunks - 1) * per_chunk + (last + 3) / 4 * 4 * p->draws;
    if (p->hooks && p->hooks->progress) p->hooks->progress(p->hooks->ctx, total, total);
    if (stats) {
      stats->evals += sum.evals;
      stats->steps += sum.steps;
      stats->rejected += sum.rejected;
    }
  }
  return st;
}

sk_status sk__check_diverged(const char *what, const float *x, int64_t nr, int d,
                            int64_t first_row, const char *hint) {
  const int64_t j = sk__first_not_finite(x, (size_t)nr * (size_t)d);
  if (j < 0) return SK_OK;
  return sk__fail(SK_ERR_NUMERIC, "%s: sample %lld diverged (%s)", what,
                  (long long)(first_row + j / d), hint);
}

sk_status sk__chunk_score(sk__chunk *c, float sigma, float *score, const char *what,
                          const char *hint) {
  const sk_status st = sk_score_fn_eval(c->f, c->x, c->nr, sigma, score);
  /* The start was finite, so a state the score refuses has diverged. */
  if (st == SK_ERR_NUMERIC) {
    const sk_status div = sk__check_diverged(what, c->x, c->nr, c->d, c->first_row, hint);
    if (div != SK_OK) return div;
  }
  return st;
}

void sk__known_init(sk__known *k, sk__chunk *c, float *values, float *noisy, uint64_t own_draws) {
  const size_t nd = (size_t)c->nr * (size_t)c->d;
  *k = (sk__known){c->mask, values, noisy, c->rng};
  if (!c->mask) return;
  /* Past the chunk's own draws, each of nd values in whole blocks of 4. */
  k->rng.offset += own_draws * ((nd + 3) / 4 * 4);
  memcpy(values, c->x, nd * sizeof(float));
}

void sk__known_noise(sk__known *k, const sk__chunk *c, float sigma) {
  if (!k->mask) return;
  const size_t nd = (size_t)c->nr * (size_t)c->d;
  if (sigma == 0) {
    memcpy(k->noisy, k->values, nd * sizeof(float));
    return;
  }
  sk_rng_normal(&k->rng, k->noisy, nd);
  for (size_t j = 0; j < nd; j++) k->noisy[j] = k->values[j] + sigma * k->noisy[j];
}

void sk__known_apply(const sk__known *k, sk__chunk *c) {
  if (!k->mask) return;
  const size_t nd = (size_t)c->nr * (size_t)c->d;
  for (size_t j = 0; j < nd; j++)
    if (k->mask[j] != 0) c->x[j] = k->noisy[j];
}

/* Langevin on one chunk, with its own noise; with a mask, the known entries
 * follow their values noised to σ_i (one draw a level, as Song & Ermon 2019,
 * section 5) and end at their values exactly. */
static sk_status langevin_chunk(sk__chunk *c) {
  const sk_langevin_config *cfg = c->cfg;
  const int L = cfg->n_sigmas, T = cfg->steps_per_level, d = c->d;
  const size_t nd = (size_t)c->nr * (size_t)d, rd = (size_t)sk_score_fn_rows(c->f) * (size_t)d;
  float *xc = c->x, *score = c->scratch, *z = score + rd;
  const float sL = cfg->sigmas[L - 1];
  const int64_t total = (int64_t)L * T + (cfg->denoise != 0);
  sk__known known;
  sk__known_init(&known, c, z + rd, z + 2 * rd, (uint64_t)L * (uint64_t)T);
  sk_status st = SK_OK;
  sk__chunk_snapshot_steps(c, 0, total);
  for (int i = 0; i < L && st == SK_OK; i++) {
    const float sig = cfg->sigmas[i];
    const float alpha = cfg->eps * (sig * sig) / (sL * sL);
    const float half = 0.5f * alpha, noise = sqrtf(alpha);
    sk__known_noise(&known, c, sig);
    sk__known_apply(&known, c);
    for (int t = 0; t < T && st == SK_OK; t++) {
      st = sk__chunk_score(c, sig, score, "langevin", "reduce eps");
      sk_rng_normal(&c->rng, z, nd);
      for (size_t j = 0; j < nd; j++) xc[j] += half * score[j] + noise * z[j];
      sk__known_apply(&known, c);
      sk__chunk_snapshot_steps(c, (int64_t)i * T + t + 1, total);
    }
    sk__chunk_progress(c, T);
  }
  if (st == SK_OK && cfg->denoise) { /* Tweedie: E[x | x̃] = x̃ + σ² ∇log p_σ(x̃) */
    st = sk__chunk_score(c, sL, score, "langevin", "reduce eps");
    for (size_t j = 0; st == SK_OK && j < nd; j++) xc[j] += sL * sL * score[j];
  }
  if (st == SK_OK) { /* the known values, exactly */
    sk__known_noise(&known, c, 0);
    sk__known_apply(&known, c);
  }
  if (st == SK_OK && cfg->denoise) {
    sk__chunk_snapshot_steps(c, total, total);
    sk__chunk_progress(c, 1);
  }
  c->stats.evals = total;
  if (st != SK_OK) return st;
  return sk__check_diverged("langevin", xc, c->nr, d, c->first_row, "reduce eps");
}

sk_status sk_langevin(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r, float *x, int64_t n) {
  return sk_langevin_rows(f, cfg, r, x, n, 0, n);
}

sk_status sk_langevin_rows(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r, float *x,
                           int64_t n, int64_t first, int64_t count) {
  return sk__langevin_rows(f, cfg, r, x, NULL, n, first, count);
}

sk_status sk__langevin_rows(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r, float *x,
                            const float *mask, int64_t n, int64_t first, int64_t count) {
  sk_status st = sk__check_run("langevin", f, cfg, r, x, count);
  if (st != SK_OK || (st = sk__check_hooks("langevin", cfg->hooks)) != SK_OK) return st;
  const int L = cfg->n_sigmas;
  if (cfg->steps_per_level < 1 || !(cfg->eps > 0) || !isfinite(cfg->eps))
    return sk__fail(SK_ERR_INVALID, "langevin: need steps >= 1 and eps > 0 (got %d, %g)",
                    cfg->steps_per_level, cfg->eps);
  if (L < 1 || L > 1 << 20 || !cfg->sigmas)
    return sk__fail(SK_ERR_INVALID, "langevin: need a σ ladder of at least one level");
  for (int i = 0; i < L; i++)
    if (!(cfg->sigmas[i] > 0) || !isfinite(cfg->sigmas[i]))
      return sk__fail(SK_ERR_INVALID, "langevin: σ_%d = %g is not positive", i + 1, cfg->sigmas[i]);
  for (int i = 1; i < L; i++)
    if (cfg->sigmas[i] > cfg->sigmas[i - 1])
      return sk__fail(SK_ERR_INVALID, "langevin: the σ ladder goes largest first, but σ_%d = %g "
                      "follows σ_%d = %g", i + 1, cfg->sigmas[i], i, cfg->sigmas[i - 1]);
  const size_t rd = (size_t)sk_score_fn_rows(f) * (size_t)sk_score_fn_dim(f);
  /* With a mask: one draw a level for the known entries, and their values. */
  const uint64_t own = (uint64_t)L * (uint64_t)cfg->steps_per_level;
  const sk__chunk_plan p = {"langevin", langevin_chunk, cfg, (mask ? 4 : 2) * rd * sizeof(float),
                            own + (mask ? (uint64_t)L : 0),
                            (int64_t)L * cfg->steps_per_level + (cfg->denoise != 0), cfg->hooks,
                            mask};
  return sk__run_chunk_range(f, &p, r, x, NULL, NULL, n, first, count, NULL);
}

/* NCSNv2's ratio (Song & Ermon 2020, eq. 5) in the toy convention, where
 * a = ε/(2σ_L²) is their ε/σ_L²: after T steps from variance γ²σ_i², the
 * chain on N(0, σ_i²) has variance σ_i² times this. */
static double ncsnv2_ratio(double a, int T, double gamma) {
  const double stat = 2.0 / (2.0 - a);
  return pow(1.0 - a, 2.0 * T) * (gamma * gamma - stat) + stat;
}

float sk_langevin_ncsnv2_eps(int steps_per_level, float gamma, float sigma_L) {
  if (steps_per_level < 1 || !(gamma > 1) || !isfinite(gamma) || !(sigma_L > 0) ||
      !isfinite(sigma_L)) {
    sk__fail(SK_ERR_INVALID, "langevin: NCSNv2 step size needs T >= 1, γ > 1 and σ_L > 0 "
                             "(got %d, %g, %g)", steps_per_level, gamma, sigma_L);
    return 0;
  }
  /* The ratio is above 1 for every a in (0, 1) (the stationary variance
   * 2/(2 − a) exceeds 1), falling from γ² while the start is forgotten, then
   * rising with the discretisation's bias: its minimum is the closest to 1.
   * It is unimodal in log a, so a golden-section search finds it. */
  double lo = log(1e-12), hi = log(1.0 - 1e-9);
  const double phi = 0.5 * (sqrt(5.0) - 1.0);
  double m1 = hi - phi * (hi - lo), m2 = lo + phi * (hi - lo);
  double f1 = ncsnv2_ratio(exp(m1), steps_per_level, gamma);
  double f2 = ncsnv2_ratio(exp(m2), steps_per_level, gamma);
  for (int it = 0; it < 200; it++) {
    if (f1 <= f2) {
      hi = m2, m2 = m1, f2 = f1;
      m1 = hi - phi * (hi - lo);
      f1 = ncsnv2_ratio(exp(m1), steps_per_level, gamma);
    } else {
      lo = m1, m1 = m2, f1 = f2;
      m2 = lo + phi * (hi - lo);
      f2 = ncsnv2_ratio(exp(m2), steps_per_level, gamma);
    }
  }
  const double a = exp(0.5 * (lo + hi));
  return (float)(2.0 * a * (double)sigma_L * (double)sigma_L);
}
