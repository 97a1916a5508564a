/* Adam with bias correction, optional global-norm clipping and an EMA of the
 * weights (the update rule of torch.optim.Adam, no weight decay). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/internal.h"
#include "nn/internal.h"

struct sk_adam {
  sk_adam_config cfg;
  size_t n;
  int64_t t;
  float *m, *v, *ema; /* (n) each */
  /* ema_rate 0: no step writes ema, which is then the parameters that the
   * last step updated (copied into ema by sk_adam_ema). */
  const float *live;
  double *partial;    /* sk_adam_step_parts: Σ g² per block */
  size_t n_partial;
};

sk_adam_config sk_adam_config_default(void) {
  sk_adam_config c = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.999f};
  return c;
}

sk_status sk__adam_check(const sk_adam_config *cfg) {
  if (!(cfg->lr > 0) || !(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) ||
      !(cfg->eps > 0) || !(cfg->clip_norm >= 0) || !(cfg->ema_rate >= 0 && cfg->ema_rate < 1))
    return sk__fail(SK_ERR_INVALID,
                    "adam: lr %g, betas (%g, %g), eps %g, clip %g or ema %g out of range", cfg->lr,
                    cfg->beta1, cfg->beta2, cfg->eps, cfg->clip_norm, cfg->ema_rate);
  return SK_OK;
}

sk_adam *sk_adam_new(const sk_adam_config *cfg, size_t n, const float *params) {
  if (!cfg || !params) {
    sk__fail(SK_ERR_INVALID, "adam: NULL %s", !cfg ? "config" : "params");
    return NULL;
  }
  if (sk__adam_check(cfg) != SK_OK) return NULL;
  sk_adam *a = sk__calloc(1, sizeof *a);
  /* Aligned like the parameters, so the update's vectors fall on lines. */
  if (!a || !(a->m = sk__calloc_lines(n, sizeof(float))) ||
      !(a->v = sk__calloc_lines(n, sizeof(float))) ||
      !(a->ema = sk__calloc_lines(n, sizeof(float)))) {
    sk_adam_free(a);
    sk__fail(SK_ERR_NOMEM, "adam: out of memory");
    return NULL;
  }
  a->cfg = *cfg;
  a->n = n;
  memcpy(a->ema, params, n * sizeof(float));
  return a;
}

void sk_adam_free(sk_adam *a) {
  if (!a) return;
  sk__free(a->m);
  sk__free(a->v);
  sk__free(a->ema);
  sk__free(a->partial);
  sk__free(a);
}

/* Σ g² in 16 interleaved double partial sums, combined pairwise at the end:
 * a fixed order (the same bits on any thread count) that vectorises. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static double sum_sq(
    const float *restrict g, size_t n) {
  double s[16] = {0};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) s[l] += (double)g[i + l] * (double)g[i + l];
  for (int l = 0; i < n; i++, l++) s[l] += (double)g[i] * (double)g[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) s[l] += s[l + w];
  return s[0];
}

typedef struct adam_coef {
  float scale, b1, b2, step, rc2, eps, er;
} adam_coef;

/* The update of elements [0, n), elementwise (so any split gives the same
 * bits), vectorised for the CPU at hand; with the EMA off, one loop without
 * its stream (a branch inside the loop became a blend that still read and
 * wrote ema: ncsn-b128 +2.2–3.4 % without it). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void adam_update(
    float *restrict p, float *restrict m, float *restrict v, float *restrict e,
    const float *restrict grads, size_t n, adam_coef c) {
#define ADAM_LOOP(EMA)                                                     \
  for (size_t i = 0; i < n; i++) {                                         \
    const float g = grads[i] * c.scale;                                    \
    const float mi = c.b1 * m[i] + (1.0f - c.b1) * g;                      \
    const float vi = c.b2 * v[i] + (1.0f - c.b2) * g * g;                  \
    const float pi = p[i] - c.step * mi / (sqrtf(vi) * c.rc2 + c.eps);     \
    m[i] = mi;                                                             \
    v[i] = vi;                                                             \
    p[i] = pi;                                                             \
    EMA;                                                                   \
  }
  if (c.er > 0)
    ADAM_LOOP(e[i] = c.er * e[i] + (1.0f - c.er) * pi)
  else
    ADAM_LOOP((void)e)
#undef ADAM_LOOP
}

#if defined(__x86_64__)
/* adam_update (the same operations in the same order, so the same bits),
 * the parameters stored with non-temporal stores. For a step on
 * several threads: every thread reads every parameter in the next step, and
 * an ordinary store to a line another core has read must first take that
 * core's copy away: on a 2-core Zen 5, 8.6-10 ns a line against 0.6-1.5 ns
 * for a non-temporal store, while the readers load the lines from memory as
 * fast as from the other core's cache (bench/coherence.c). Adam 30-50 µs ->
 * 18 µs per ncsn-b128 step on 2 threads; +6 % for that step (A/B). */
__attribute__((target("avx512f"))) static void adam_update_stream(
    float *restrict p, float *restrict m, float *restrict v, float *restrict e,
    const float *restrict grads, size_t n, adam_coef c) {
  /* Up to the first 64-byte line of p, and the tail, the plain loop. */
  size_t i = 0;
  while (i < n && ((uintptr_t)(p + i) & 63)) i++;
  adam_update(p, m, v, e, grads, i, c);
  const __m512 scale = _mm512_set1_ps(c.scale), b1 = _mm512_set1_ps(c.b1),
               b2 = _mm512_set1_ps(c.b2), nb1 = _mm512_set1_ps(1.0f - c.b1),
               nb2 = _mm512_set1_ps(1.0f - c.b2), step = _mm512_set1_ps(c.step),
               rc2 = _mm512_set1_ps(c.rc2), eps = _mm512_set1_ps(c.eps),
               er = _mm512_set1_ps(c.er), ner = _mm512_set1_ps(1.0f - c.er);
#define ADAM_16(EMA)                                                                              \
  for (; i + 16 <= n; i += 16) {                                                                  \
    const __m512 g = _mm512_mul_ps(_mm512_loadu_ps(grads + i), scale);                            \
    const __m512 mi =                                                                             \
        _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(nb1, g));          \
    const __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)),                    \
                                    _mm512_mul_ps(_mm512_mul_ps(nb2, g), g));                     \
    const __m512 d = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), rc2), eps);                  \
    const __m512 pi =                                                                             \
        _mm512_sub_ps(_mm512_load_ps(p + i), _mm512_div_ps(_mm512_mul_ps(step, mi), d));          \
    _mm512_storeu_ps(m + i, mi);                                                                  \
    _mm512_storeu_ps(v + i, vi);                                                                  \
    _mm512_stream_ps(p + i, pi);                                                                  \
    EMA;                                                                                          \
  }
  if (c.er > 0)
    ADAM_16(_mm512_storeu_ps(e + i, _mm512_add_ps(_mm512_mul_ps(er, _mm512_loadu_ps(e + i)),
                                                  _mm512_mul_ps(ner, pi))))
  else
    ADAM_16((void)e)
  adam_update(p + i, m + i, v + i, e + i, grads + i, n - i, c);
#undef ADAM_16
  _mm_sfence();
}
#endif

/* Elements per parallel task. */
#define SK_ADAM_CHUNK 16384

/* The step count must stay a count that the next step can increase (a
 * restored one comes from a file). */
static sk_status check_steps(const sk_adam *a) {
  if (a->t < 0 || a->t == INT64_MAX)
    return sk__fail(SK_ERR_INVALID, "adam: step count %lld out of range 0..%lld", (long long)a->t,
                    (long long)INT64_MAX - 1);
  return SK_OK;
}

sk_status sk_adam_step(sk_adam *a, float *params, const float *grads, float *grad_norm) {
  if (!a || !params || !grads)
    return sk__fail(SK_ERR_INVALID, "adam: NULL %s", !a ? "optimiser" : !params ? "params" : "grads");
  sk_status st = check_steps(a);
  if (st != SK_OK) return st;
  const double sq = sum_sq(grads, a->n);
  if (!isfinite(sq)) {
    for (size_t i = 0; i < a->n; i++)
      if (!isfinite(grads[i]))
        return sk__fail(SK_ERR_NUMERIC, "adam: gradient element %zu is %g", i, grads[i]);
    return sk__fail(SK_ERR_NUMERIC, "adam: gradient norm overflows");
  }
  float norm = (float)sqrt(sq);
  if (grad_norm) *grad_norm = norm;
  float scale = 1.0f;
  if (a->cfg.clip_norm > 0 && norm > a->cfg.clip_norm) scale = a->cfg.clip_norm / (norm + 1e-6f);
  a->t++;
  const float b1 = a->cfg.beta1, b2 = a->cfg.beta2;
  const float c1 = 1.0f - powf(b1, (float)a->t), c2 = 1.0f - powf(b2, (float)a->t);
  const adam_coef c = {scale, b1, b2, a->cfg.lr / c1, 1.0f / sqrtf(c2), a->cfg.eps,
                       a->cfg.ema_rate};
  const size_t chunks = (a->n + SK_ADAM_CHUNK - 1) / SK_ADAM_CHUNK;
#pragma omp parallel for schedule(static) num_threads(sk__num_threads()) if (chunks > 4)
  for (size_t ch = 0; ch < chunks; ch++) {
    const size_t i0 = ch * SK_ADAM_CHUNK, len = SK_MIN(SK_ADAM_CHUNK, a->n - i0);
    adam_update(params + i0, a->m + i0, a->v + i0, a->ema + i0, grads + i0, len, c);
  }
  a->live = params;
  return SK_OK;
}

int64_t sk_adam_steps(const sk_adam *a) { return a->t; }
float *sk_adam_m(sk_adam *a) { return a->m; }
float *sk_adam_v(sk_adam *a) { return a->v; }
float *sk_adam_ema(sk_adam *a) {
  if (a->cfg.ema_rate == 0 && a->live) memcpy(a->ema, a->live, a->n * sizeof(float));
  return a->ema;
}
void sk_adam_set_steps(sk_adam *a, int64_t t) { a->t = t; }

/* Whether some gradient of the parts is not finite or beyond 1e18 in
 * magnitude (only looked for when Σ g² is not finite or above 1e36). */
static int any_bad(int n_parts, const sk_adam_part *parts, int *part, size_t *elem) {
  for (int p = 0; p < n_parts; p++)
    for (size_t i = 0; i < parts[p].rows * parts[p].cols; i++)
      if (!(fabsf(parts[p].grad[i]) <= 1e18f)) {
        *part = p;
        *elem = i;
        return 1;
      }
  return 0;
}

/* One sk_adam_step_parts: what every thread reads, and what thread 0
 * reports back. */
typedef struct adam_run {
  sk_adam *a;
  float *params;
  int n_parts;
  const sk_adam_part *parts;
  size_t blocks;
  adam_coef c;
  const float *guard; /* skip the step if *guard is not finite (or NULL) */
  sk__barrier barrier;
  double sq;          /* Σ g², from thread 0 */
  int bad, skipped;
} adam_run;

static sk_status adam_prepare(adam_run *r, sk_adam *a, float *params, int n_parts,
                              const sk_adam_part *parts, size_t *total) {
  size_t blocks = 0;
  *total = 0;
  /* A step of no parts would update nothing yet count. */
  if (n_parts < 1)
    return sk__fail(SK_ERR_INVALID, "adam: %d gradient parts; a step needs at least one", n_parts);
  if (!a || !params || !parts)
    return sk__fail(SK_ERR_INVALID, "adam: NULL %s", !a ? "optimiser" : !params ? "params" : "parts");
  sk_status st = check_steps(a);
  if (st != SK_OK) return st;
  for (int p = 0; p < n_parts; p++) {
    const size_t rows = parts[p].rows, n = rows * parts[p].cols;
    if (n && !parts[p].grad)
      return sk__fail(SK_ERR_INVALID, "adam: part %d has %zu values and a NULL gradient", p, n);
    if (parts[p].offset > a->n || n > a->n - parts[p].offset)
      return sk__fail(SK_ERR_INVALID, "adam: part %d (%zu at %zu) is outside the %zu parameters",
                      p, n, parts[p].offset, a->n);
    blocks += (rows + SK_SPLIT_ROWS - 1) / SK_SPLIT_ROWS;
    *total += n;
  }
  if (blocks > a->n_partial) { /* once, on the first step */
    double *pp = sk__realloc(a->partial, blocks * sizeof *pp);
    if (!pp) return sk__fail(SK_ERR_NOMEM, "adam: out of memory");
    a->partial = pp;
    a->n_partial = blocks;
  }
  const float b1 = a->cfg.beta1, b2 = a->cfg.beta2;
  const float c1 = 1.0f - powf(b1, (float)(a->t + 1)), c2 = 1.0f - powf(b2, (float)(a->t + 1));
  *r = (adam_run){.a = a, .params = params, .n_parts = n_parts, .parts = parts, .blocks = blocks,
                  .c = {1.0f, b1, b2, a->cfg.lr / c1, 1.0f / sqrtf(c2), a->cfg.eps,
                        a->cfg.ema_rate}};
  return SK_OK;
}

/* Thread t of nt: block statistics, a barrier, the same total on every
 * thread (summed in block order), then the update of the same rows. */
static void adam_body(void *ctx, int t, int nt) {
  adam_run *r = ctx;
  sk_adam *a = r->a;
  const sk_adam_part *parts = r->parts;
  if (r->guard && !isfinite(*r->guard)) { /* every thread sees the same value */
    if (t == 0) r->skipped = 1;
    return;
  }
  double *psq = a->partial;
  size_t base = 0;
  for (int p = 0; p < r->n_parts; p++) {
    const size_t cols = parts[p].cols;
    int64_t u0, u1;
    sk__split((int64_t)parts[p].rows, t, nt, &u0, &u1);
    for (int64_t i = u0; i < u1; i += SK_SPLIT_ROWS) {
      const size_t q = base + (size_t)i / SK_SPLIT_ROWS;
      psq[q] = sum_sq(parts[p].grad + (size_t)i * cols, (size_t)SK_MIN(SK_SPLIT_ROWS, u1 - i) * cols);
    }
    base += (parts[p].rows + SK_SPLIT_ROWS - 1) / SK_SPLIT_ROWS;
  }
  int sense = 0;
  sk__barrier_wait(&r->barrier, nt, &sense);
  double s = 0.0;
  for (size_t q = 0; q < r->blocks; q++) s += psq[q];
  /* Σ g² ≤ 1e36 bounds every |g| by 1e18; above, look (a rare path). */
  int b = !isfinite(s);
  if (!b && s > 1e36) b = any_bad(r->n_parts, parts, &(int){0}, &(size_t){0});
  if (t == 0) r->sq = s, r->bad = b;
  if (b) return;
  adam_coef c = r->c;
  const float norm = (float)sqrt(s);
  if (a->cfg.clip_norm > 0 && norm > a->cfg.clip_norm) c.scale = a->cfg.clip_norm / (norm + 1e-6f);
  for (int p = 0; p < r->n_parts; p++) {
    const size_t cols = parts[p].cols, off = parts[p].offset;
    int64_t u0, u1;
    sk__split((int64_t)parts[p].rows, t, nt, &u0, &u1);
    if (u0 >= u1) continue;
    const size_t i0 = off + (size_t)u0 * cols, len = (size_t)(u1 - u0) * cols;
    const float *g = parts[p].grad + (size_t)u0 * cols;
#if defined(__x86_64__)
    /* On several threads every thread reads every parameter in the next
     * step: stored past this core's cache (see adam_update_stream). */
    if (nt > 1 && __builtin_cpu_supports("avx512f")) {
      adam_update_stream(r->params + i0, a->m + i0, a->v + i0, a->ema + i0, g, len, c);
      continue;
    }
#endif
    adam_update(r->params + i0, a->m + i0, a->v + i0, a->ema + i0, g, len, c);
  }
}

static sk_status adam_finish(adam_run *r, float *grad_norm) {
  sk_adam *a = r->a;
  if (r->skipped) return sk__fail(SK_ERR_NUMERIC, "adam: the loss is %g", *r->guard);
  if (r->bad) {
    int bad_part = 0;
    size_t bad_elem = 0;
    if (any_bad(r->n_parts, r->parts, &bad_part, &bad_elem))
      return sk__fail(SK_ERR_NUMERIC, "adam: gradient part %d element %zu is %g", bad_part,
                      bad_elem, r->parts[bad_part].grad[bad_elem]);
    return sk__fail(SK_ERR_NUMERIC, "adam: gradient norm overflows");
  }
  if (grad_norm) *grad_norm = (float)sqrt(r->sq);
  a->live = r->params;
  a->t++;
  return SK_OK;
}

sk_status sk_adam_step_parts(sk_adam *a, float *params, int n_parts, const sk_adam_part *parts,
                             float *grad_norm) {
  adam_run r;
  size_t total;
  sk_status st = adam_prepare(&r, a, params, n_parts, parts, &total);
  if (st != SK_OK) return st;
#pragma omp parallel num_threads(sk__num_threads()) if (total >= 16384)
  adam_body(&r, omp_get_thread_num(), omp_get_num_threads());
  return adam_finish(&r, grad_norm);
}

sk_status sk_adam_step_graph(sk_adam *a, sk_graph *g, const float *guard, float *params,
                             int n_parts, const sk_adam_part *parts, float *grad_norm) {
  adam_run r;
  size_t total;
  sk_status st = adam_prepare(&r, a, params, n_parts, parts, &total);
  if (st != SK_OK) return st;
  r.guard = guard;
  st = sk_graph_run_then(g, adam_body, &r);
  if (st != SK_OK) return st;
  return adam_finish(&r, grad_norm);
}
