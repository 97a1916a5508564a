/* The probability-flow ODE of the variance-exploding SDE (Song et al. 2021):
 * dx/dσ = −σ s(x, σ), solved in t = log σ (dx/dt = −σ² s) by the Dormand-
 * Prince 5(4) pair with scipy's RK45 step-size control, one fixed chunk of
 * rows at a time; for sampling (σ_max → σ_min) and for log-likelihoods by the
 * instantaneous change of variables (σ_min → σ_max). docs/MATH.md. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "score/internal.h"
#include "scorekit/sample.h"

/* A chunk may not take more steps (accepted or rejected) than this. */
#define ODE_MAX_STEPS 100000

/* The right-hand side: dy = f(t, y) for the chunk's whole state. */
typedef sk_status (*ode_rhs)(sk__chunk *c, void *ctx, double t, const double *y, double *dy);

typedef struct ode_problem {
  sk__chunk *c;
  size_t m;            /* state values */
  double rtol, atol;
  ode_rhs rhs;
  void *ctx;
  double *work;        /* 9m: k1..k7, y_new, a stage's input */
  /* chunk 0's snapshots of its first d values (sampling only) */
  int snap;
  double t_start, t_end;
} ode_problem;

/* Dormand & Prince (1980), as in scipy's RK45 and Hairer's DOPRI5. */
static const double DP_C[6] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1};
static const double DP_A[6][5] = {
    {0},
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656}};
static const double DP_B[6] = {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84};
/* b − b̂: the difference of the 5th- and 4th-order solutions, over k1..k7. */
static const double DP_E[7] = {-71.0 / 57600,      0, 71.0 / 16695, -71.0 / 1920,
                               17253.0 / 339200, -22.0 / 525, 1.0 / 40};

/* RMS over the state of v/(atol + rtol·max(|y|, |y2|)). */
static double rms_scaled(const ode_problem *p, const double *v, const double *y, const double *y2) {
  double s = 0;
  for (size_t i = 0; i < p->m; i++) {
    const double a = fabs(y[i]), b = y2 ? fabs(y2[i]) : a;
    const double e = v[i] / (p->atol + p->rtol * (a > b ? a : b));
    s += e * e;
  }
  return sqrt(s / (double)p->m);
}

/* scipy's select_initial_step (Hairer, Nørsett & Wanner, II.4): one extra
 * evaluation; f0 holds f(t0, y0). */
static sk_status initial_step(ode_problem *p, double t0, double dir, double span, const double *y0,
                              const double *f0, double *h) {
  double *y1 = p->work + 7 * p->m, *f1 = p->work + 8 * p->m;
  const double d0 = rms_scaled(p, y0, y0, NULL), d1 = rms_scaled(p, f0, y0, NULL);
  /* d0 and d1 are finite for tolerances in check_ode's range and a finite
   * state; a score that overflowed makes d1 inf and h0 0, the step then
   * starting from the smallest. */
  const double h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : 0.01 * d0 / d1;
  for (size_t i = 0; i < p->m; i++) y1[i] = y0[i] + dir * h0 * f0[i];
  sk_status st = p->rhs(p->c, p->ctx, t0 + dir * h0, y1, f1);
  if (st != SK_OK) return st;
  p->c->stats.evals++;
  for (size_t i = 0; i < p->m; i++) f1[i] -= f0[i];
  const double d2 = rms_scaled(p, f1, y0, NULL) / h0;
  const double dm = d1 > d2 ? d1 : d2;
  const double h1 = dm <= 1e-15 ? fmax(1e-6, h0 * 1e-3) : pow(0.01 / dm, 1.0 / 5);
  *h = fmin(fmin(100 * h0, h1), span);
  return SK_OK;
}

/* Chunk 0's snapshots due in the step from ta to tb (t decreasing), by the
 * cubic Hermite interpolant of its ends and slopes: third-order, enough for
 * a picture, and the steps stay what they would be without snapshots. */
static void ode_snapshots(ode_problem *p, double ta, double tb, const double *ya, const double *yb,
                          const double *fa, const double *fb) {
  sk__chunk *c = p->c;
  const sk_sample_hooks *hk = c->hooks;
  const int k1 = hk->n_snapshots - 1, d = c->d;
  const double h = tb - ta;
  while (c->next_snapshot < k1) { /* the last one is the final sample */
    const double tau = p->t_start + (p->t_end - p->t_start) * c->next_snapshot / k1;
    if (tau < tb) break;
    const double th = (tau - ta) / h;
    float *out = hk->snapshots + (size_t)c->next_snapshot * (size_t)d;
    for (int i = 0; i < d; i++) {
      const double dy = yb[i] - ya[i];
      out[i] = (float)((1 - th) * ya[i] + th * yb[i] +
                       th * (th - 1) * ((1 - 2 * th) * dy + (th - 1) * h * fa[i] + th * h * fb[i]));
    }
    c->next_snapshot++;
  }
}

/* Integrates y from t0 to t1 (either direction) with adaptive steps. */
static sk_status dopri5(ode_problem *p, double *y, double t0, double t1) {
  const size_t m = p->m;
  double *k[7], *ynew = p->work + 7 * m, *yin = p->work + 8 * m;
  for (int s = 0; s < 7; s++) k[s] = p->work + (size_t)s * m;
  const double dir = t1 > t0 ? 1 : -1, span = fabs(t1 - t0);
  sk__chunk *c = p->c;
  sk_status st = p->rhs(c, p->ctx, t0, y, k[0]);
  if (st != SK_OK) return st;
  c->stats.evals++;
  double habs, t = t0;
  if ((st = initial_step(p, t0, dir, span, y, k[0], &habs)) != SK_OK) return st;
  int64_t reported = 0, tries = 0;
  while (dir * (t1 - t) > 0) {
    const double min_step = 10 * fabs(nextafter(t, dir * INFINITY) - t);
    if (!(habs >= min_step)) habs = min_step; /* NaN included */
    int rejected = 0;
    for (;;) {
      if (++tries > ODE_MAX_STEPS)
        return sk__fail(SK_ERR_NUMERIC, "ode: more than %d steps in one chunk (σ = %g); "
                                        "loosen rtol/atol", ODE_MAX_STEPS, exp(t));
      if (!(habs >= min_step))
        return sk__fail(SK_ERR_NUMERIC, "ode: the step size underflowed at σ = %g (the score "
                                        "is not finite or not smooth there)", exp(t));
      double tn = t + dir * habs;
      if (dir * (tn - t1) > 0) tn = t1;
      const double h = tn - t;
      habs = fabs(h);
      for (int s = 1; s < 6 && st == SK_OK; s++) {
        for (size_t i = 0; i < m; i++) {
          double a = 0;
          for (int q = 0; q < s; q++) a += DP_A[s][q] * k[q][i];
          yin[i] = y[i] + h * a;
        }
        st = p->rhs(c, p->ctx, t + DP_C[s] * h, yin, k[s]);
      }
      if (st != SK_OK) return st;
      for (size_t i = 0; i < m; i++) {
        double a = 0;
        for (int q = 0; q < 6; q++) a += DP_B[q] * k[q][i];
        ynew[i] = y[i] + h * a;
      }
      if ((st = p->rhs(c, p->ctx, tn, ynew, k[6])) != SK_OK) return st;
      c->stats.evals += 6;
      for (size_t i = 0; i < m; i++) {
        double a = 0;
        for (int q = 0; q < 7; q++) a += DP_E[q] * k[q][i];
        yin[i] = h * a;
      }
      const double err = rms_scaled(p, yin, y, ynew);
      if (err < 1) {
        double factor = err == 0 ? 10 : fmin(10, 0.9 * pow(err, -0.2));
        if (rejected) factor = fmin(1, factor);
        habs *= factor;
        if (p->snap) ode_snapshots(p, t, tn, y, ynew, k[0], k[6]);
        memcpy(y, ynew, m * sizeof(double));
        memcpy(k[0], k[6], m * sizeof(double)); /* first same as last */
        t = tn;
        c->stats.steps++;
        break;
      }
      /* A non-finite error (a score that overflowed) shrinks the step too. */
      habs *= isfinite(err) ? fmax(0.2, 0.9 * pow(err, -0.2)) : 0.2;
      rejected = 1;
      c->stats.rejected++;
    }
    const int64_t now = (int64_t)(1000.0 * fabs(t - t0) / span);
    if (now > reported) sk__chunk_progress(c, now - reported), reported = now;
  }
  if (reported < 1000) sk__chunk_progress(c, 1000 - reported);
  return SK_OK;
}

/* With both tolerances at least 1e-12, a value over atol + rtol·|y| is at
 * most 1e12 times it, and a slope at most σ_max² times a float score, so the
 * scaled norms of a finite state and its slope, and the first step size
 * computed from them, are finite. */
static sk_status check_ode(const char *what, const sk_ode_config *cfg) {
  sk_status st = sk__check_sigma_range(what, cfg->sigma_max, cfg->sigma_min);
  if (st != SK_OK) return st;
  if (!(cfg->rtol >= 1e-12) || !(cfg->atol >= 1e-12) || !(cfg->rtol < 1) || !(cfg->atol < 1e6))
    return sk__fail(SK_ERR_INVALID, "%s: need 1e-12 <= rtol < 1 and 1e-12 <= atol < 1e6 (got %g, "
                    "%g)", what, cfg->rtol, cfg->atol);
  return SK_OK;
}

/* ---- sampling ---------------------------------------------------------- */

/* xf = y in float; false where a value is not finite there. */
static int to_float(const double *y, size_t nd, float *xf) {
  int finite = 1;
  for (size_t i = 0; i < nd; i++) finite &= isfinite(xf[i] = (float)y[i]);
  return finite;
}

/* A stage whose state is not finite (the start is checked, so a step
 * overshot) has no score: a NaN slope makes the step's error NaN, and the
 * solver retries with a smaller step. */
static sk_status no_slope(double *dy, size_t m) {
  for (size_t i = 0; i < m; i++) dy[i] = NAN;
  return SK_OK;
}

typedef struct flow_ctx {
  float *xf, *sf; /* (rows, d) */
} flow_ctx;

/* dx/dt = −σ² s(x, σ), σ = eᵗ. */
static sk_status flow_rhs(sk__chunk *c, void *ctx, double t, const double *y, double *dy) {
  flow_ctx *fc = ctx;
  const size_t nd = (size_t)c->nr * (size_t)c->d;
  if (!to_float(y, nd, fc->xf)) return no_slope(dy, nd);
  const double sigma = exp(t);
  sk_status st = sk_score_fn_eval(c->f, fc->xf, c->nr, (float)sigma, fc->sf);
  for (size_t i = 0; st == SK_OK && i < nd; i++) dy[i] = -sigma * sigma * fc->sf[i];
  return st;
}

static sk_status ode_sample_chunk(sk__chunk *c) {
  const sk_ode_config *cfg = c->cfg;
  const size_t rd = (size_t)sk_score_fn_rows(c->f) * (size_t)c->d;
  const size_t nd = (size_t)c->nr * (size_t)c->d;
  double *y = c->scratch, *work = y + rd;
  flow_ctx fc = {(float *)(work + 9 * rd), (float *)(work + 9 * rd) + rd};
  const sk_sample_hooks *hk = c->hooks;
  const int snap = c->index == 0 && hk && hk->n_snapshots >= 2 && hk->snapshots;
  ode_problem p = {c, nd, cfg->rtol, cfg->atol, flow_rhs, &fc, work, snap,
                   log((double)cfg->sigma_max), log((double)cfg->sigma_min)};
  for (size_t i = 0; i < nd; i++) y[i] = c->x[i];
  sk_status st = dopri5(&p, y, p.t_start, p.t_end);
  if (st != SK_OK) return st;
  for (size_t i = 0; i < nd; i++) c->x[i] = (float)y[i];
  if (cfg->denoise) { /* Tweedie at σ_min */
    const float s = cfg->sigma_min;
    st = sk_score_fn_eval(c->f, c->x, c->nr, s, fc.sf);
    if (st != SK_OK) return st;
    c->stats.evals++;
    for (size_t i = 0; i < nd; i++) c->x[i] += s * s * fc.sf[i];
  }
  if (snap) memcpy(hk->snapshots + (size_t)(hk->n_snapshots - 1) * c->d, c->x, c->d * sizeof(float));
  for (size_t j = 0; j < nd; j++)
    if (!isfinite(c->x[j]))
      return sk__fail(SK_ERR_NUMERIC, "ode: sample %lld is not finite",
                      (long long)(c->first_row + (int64_t)(j / (size_t)c->d)));
  return SK_OK;
}

sk_status sk_ode_sample(sk_score_fn *f, const sk_ode_config *cfg, float *x, int64_t n,
                        sk_ode_stats *stats) {
  return sk_ode_sample_rows(f, cfg, x, n, 0, n, stats);
}

sk_status sk_ode_sample_rows(sk_score_fn *f, const sk_ode_config *cfg, float *x, int64_t n,
                             int64_t first, int64_t count, sk_ode_stats *stats) {
  sk_rng unused = sk_rng_make(0, 0);
  sk_status st = sk__check_run("ode", f, cfg, &unused, x, count);
  if (st != SK_OK || (st = check_ode("ode", cfg)) != SK_OK ||
      (st = sk__check_hooks("ode", cfg->hooks)) != SK_OK)
    return st;
  if (stats) memset(stats, 0, sizeof *stats);
  const size_t rd = (size_t)sk_score_fn_rows(f) * (size_t)sk_score_fn_dim(f);
  const sk__chunk_plan p = {"ode", ode_sample_chunk, cfg,
                            10 * rd * sizeof(double) + 2 * rd * sizeof(float), 0, 1000, cfg->hooks,
                            NULL};
  return sk__run_chunk_range(f, &p, &unused, x, NULL, NULL, n, first, count, stats);
}

/* ---- likelihood -------------------------------------------------------- */

typedef struct lik_ctx {
  float *xf, *sf, *v; /* (rows, d), (rows, d), (K, rows, d) */
  double *div;        /* (rows) */
  int k;
} lik_ctx;

/* The state is x (nr, d) then δ (nr): dx/dt = −σ² s, dδ/dt = σ² ∇ₓ·s. */
static sk_status lik_rhs(sk__chunk *c, void *ctx, double t, const double *y, double *dy) {
  lik_ctx *lc = ctx;
  const size_t nd = (size_t)c->nr * (size_t)c->d;
  if (!to_float(y, nd, lc->xf)) return no_slope(dy, nd + (size_t)c->nr);
  const double sigma = exp(t), s2 = sigma * sigma;
  sk_status st = sk_score_fn_divergence(c->f, lc->xf, c->nr, (float)sigma, lc->k,
                                        lc->k ? lc->v : NULL, lc->sf, lc->div);
  if (st != SK_OK) return st;
  for (size_t i = 0; i < nd; i++) dy[i] = -s2 * lc->sf[i];
  for (int64_t r = 0; r < c->nr; r++) dy[nd + r] = s2 * lc->div[r];
  return SK_OK;
}

static sk_status lik_chunk(sk__chunk *c) {
  const sk_likelihood_config *cfg = c->cfg;
  const int d = c->d, K = cfg->probes;
  const size_t rows = (size_t)sk_score_fn_rows(c->f), rm = rows * (size_t)(d + 1);
  const size_t nd = (size_t)c->nr * (size_t)d, m = nd + (size_t)c->nr;
  double *y = c->scratch, *work = y + rm, *div = work + 9 * rm;
  float *xf = (float *)(div + rows), *sf = xf + rows * d, *v = sf + rows * d;
  lik_ctx lc = {xf, sf, v, div, K};
  for (int j = 0; j < K; j++) sk_rng_rademacher(&c->rng, v + (size_t)j * nd, nd);
  ode_problem p = {c, m, cfg->ode.rtol, cfg->ode.atol, lik_rhs, &lc, work, 0, 0, 0};
  for (size_t i = 0; i < nd; i++) y[i] = c->xin[i];
  for (size_t i = nd; i < m; i++) y[i] = 0;
  const double smax = cfg->ode.sigma_max;
  sk_status st = dopri5(&p, y, log((double)cfg->ode.sigma_min), log(smax));
  if (st != SK_OK) return st;
  /* log p_{σ_min}(x) = log N(x(σ_max); 0, σ_max² I) − δ(σ_max). */
  const double norm = -0.5 * d * log(2 * 3.14159265358979323846 * smax * smax);
  for (int64_t r = 0; r < c->nr; r++) {
    double q = 0;
    for (int j = 0; j < d; j++) q += y[r * d + j] * y[r * d + j];
    c->out[r] = norm - 0.5 * q / (smax * smax) - y[nd + r];
    if (!isfinite(c->out[r]))
      return sk__fail(SK_ERR_NUMERIC, "likelihood: row %lld is not finite",
                      (long long)(c->first_row + r));
  }
  return SK_OK;
}

sk_status sk_likelihood(sk_score_fn *f, const sk_likelihood_config *cfg, sk_rng *r,
                        const float *x, int64_t n, double *logp, sk_ode_stats *stats) {
  return sk_likelihood_rows(f, cfg, r, x, n, 0, n, logp, stats);
}

sk_status sk_likelihood_rows(sk_score_fn *f, const sk_likelihood_config *cfg, sk_rng *r,
                             const float *x, int64_t n, int64_t first, int64_t count, double *logp,
                             sk_ode_stats *stats) {
  sk_status st = sk__check_run("likelihood", f, cfg, r, x, count);
  if (st != SK_OK) return st;
  if (!logp && count > 0) return sk__fail(SK_ERR_INVALID, "likelihood: logp is NULL");
  if ((st = check_ode("likelihood", &cfg->ode)) != SK_OK) return st;
  if (cfg->probes < 0 || cfg->probes > 4096)
    return sk__fail(SK_ERR_INVALID, "likelihood: %d probes outside 0..4096 (0: exact trace)",
                    cfg->probes);
  if (stats) memset(stats, 0, sizeof *stats);
  const size_t rows = (size_t)sk_score_fn_rows(f), d = (size_t)sk_score_fn_dim(f);
  const size_t rm = rows * (d + 1);
  const size_t bytes = (10 * rm + rows) * sizeof(double) + (2 + (size_t)cfg->probes) * rows * d * sizeof(float);
  const sk__chunk_plan p = {"likelihood", lik_chunk, cfg, bytes, (uint64_t)cfg->probes, 1000,
                            cfg->ode.hooks, NULL};
  return sk__run_chunk_range(f, &p, r, NULL, x, logp, n, first, count, stats);
}
