/* Score functions behind one interface: a compiled model graph, an analytic
 * mixture, and classifier guidance on top of either. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "score/internal.h"
#include "scorekit/sample.h"

typedef enum { FN_MODEL, FN_GMM, FN_GUIDED_MODEL, FN_GUIDED_GMM, FN_CUSTOM } fn_kind;

struct sk_score_fn {
  fn_kind kind;
  int dim;
  int rows; /* most rows a call takes */
  const sk_gmm *gmm;
  sk_score_fn *base;
  int owns_base; /* a clone's base is its own */
  sk_model *model; /* the score model, or the classifier of a guided function */
  int y;
  float w;
  /* compiled graph: model score, or the classifier's ∇ₓ log p(y | x, σ) */
  sk_graph *g;
  sk_node x, sigma, out;
  int conditional;
  float *tmp; /* (rows, d): the guidance term */
  const sk__score_ops *ops; /* FN_CUSTOM: its functions and state */
  void *ctx;
  /* divergence (sk_score_fn_divergence), made at its first call:
   * a model's graph of s and vᵀ ∇ₓ(vᵀ s) */
  sk_graph *dg;
  sk_node dx, dsigma, dv, ds, dvjv;
  /* a mixture's (Σ_k + σ² I)⁻¹ (k, d, d), log det and trace at sigma_cached,
   * and one row's scratch (k·d + k + d) */
  double *inv, *logdet, *trinv, *row;
  float sigma_cached;
};

void sk_score_fn_free(sk_score_fn *f) {
  if (!f) return;
  if (f->owns_base) sk_score_fn_free(f->base);
  if (f->ops) f->ops->free(f->ctx);
  sk_graph_free(f->g);
  sk_graph_free(f->dg);
  sk__free(f->tmp);
  sk__free(f->inv);
  sk__free(f);
}

int sk_score_fn_dim(const sk_score_fn *f) { return f->dim; }
int sk_score_fn_rows(const sk_score_fn *f) { return f->rows; }

static sk_status alloc_fn(fn_kind kind, int dim, sk_score_fn **out) {
  sk_score_fn *f = *out = sk__calloc(1, sizeof *f);
  if (!f) return sk__fail(SK_ERR_NOMEM, "score function: out of memory");
  f->kind = kind;
  f->dim = dim;
  f->rows = SK_SCORE_ROWS;
  f->x = f->sigma = f->out = SK_NONE;
  f->dx = f->dsigma = f->dv = f->ds = f->dvjv = SK_NONE;
  return SK_OK;
}

/* The forward graph of model m on f->rows rows; with guidance_y >= 0
 * (a classifier), the gradient of log softmax(logits)_y with respect to x. */
static sk_status compile_model(sk_score_fn *f, sk_model *m, int guidance_y) {
  const sk_model_config *c = sk_model_get_config(m);
  f->g = sk_graph_new();
  if (!f->g) return sk__fail(SK_ERR_NOMEM, "score function: out of memory for its graph");
  sk_graph *g = f->g;
  sk_node p[128];
  sk_status st = sk_model_bind(m, g, NULL, p);
  if (st != SK_OK) return st;
  f->conditional = c->kind != SK_MODEL_MLP;
  f->x = sk_input(g, "x", 2, (int64_t[]){f->rows, c->dim});
  if (f->conditional) f->sigma = sk_input(g, "sigma", 2, (int64_t[]){f->rows, 1});
  sk_node y = sk_model_apply(m, g, p, f->x, f->sigma);
  if (guidance_y >= 0) {
    /* Rows are independent, so the gradient of the sum is each row's own. */
    sk_node logp = sk_slice(g, sk_log_softmax(g, y), 1, guidance_y, 1);
    st = sk_grad(g, sk_sum_all(g, logp), SK_NONE, 1, &f->x, &y);
    if (st != SK_OK) return st;
  }
  f->out = y;
  return sk_graph_compile(g, 1, &f->out);
}

sk_status sk_score_fn_model(sk_model *m, int rows, sk_score_fn **out) {
  *out = NULL;
  const sk_model_config *c = sk_model_get_config(m);
  if (sk_model_is_classifier(c))
    return sk__fail(SK_ERR_INVALID, "score function: a classifier is not a score model");
  if (rows < 1 || rows > SK_SCORE_ROWS)
    return sk__fail(SK_ERR_INVALID, "score function: rows %d outside 1..%d", rows, SK_SCORE_ROWS);
  sk_score_fn *f;
  sk_status st = alloc_fn(FN_MODEL, c->dim, &f);
  if (st != SK_OK) return st;
  f->rows = rows;
  f->model = m;
  st = compile_model(f, m, -1);
  if (st != SK_OK) {
    sk_score_fn_free(f);
    return st;
  }
  *out = f;
  return SK_OK;
}

sk_status sk_score_fn_gmm(const sk_gmm *g, sk_score_fn **out) {
  sk_status st = alloc_fn(FN_GMM, sk_gmm_dim(g), out);
  if (st == SK_OK) (*out)->gmm = g;
  return st;
}

static sk_status guided_common(sk_score_fn *base, int dim, int y, int classes, float w,
                               fn_kind kind, sk_score_fn **out) {
  *out = NULL;
  if (dim != base->dim)
    return sk__fail(SK_ERR_SHAPE, "guidance: the classifier's data have %d dimensions, the score "
                                  "model's %d", dim, base->dim);
  if (y < 0 || y >= classes)
    return sk__fail(SK_ERR_INVALID, "guidance: class %d outside 0..%d", y, classes - 1);
  if (!isfinite(w)) return sk__fail(SK_ERR_INVALID, "guidance: weight %g is not finite", w);
  sk_score_fn *f;
  sk_status st = alloc_fn(kind, dim, &f);
  if (st != SK_OK) return st;
  f->base = base;
  f->rows = base->rows;
  f->y = y;
  f->w = w;
  f->tmp = sk__malloc((size_t)f->rows * (size_t)dim * sizeof(float));
  if (!f->tmp) {
    sk_score_fn_free(f);
    return sk__fail(SK_ERR_NOMEM, "guidance: out of memory");
  }
  *out = f;
  return SK_OK;
}

sk_status sk_score_fn_guided_model(sk_score_fn *base, sk_model *classifier, int y, float w,
                                   sk_score_fn **out) {
  const sk_model_config *c = sk_model_get_config(classifier);
  if (!sk_model_is_classifier(c))
    return sk__fail(SK_ERR_INVALID, "guidance: the model given as classifier is a score model");
  sk_status st = guided_common(base, c->dim, y, c->classes, w, FN_GUIDED_MODEL, out);
  if (st != SK_OK) return st;
  (*out)->model = classifier;
  st = compile_model(*out, classifier, y);
  if (st != SK_OK) {
    sk_score_fn_free(*out);
    *out = NULL;
  }
  return st;
}

sk_status sk_score_fn_guided_gmm(sk_score_fn *base, const sk_gmm *g, int y, float w,
                                 sk_score_fn **out) {
  sk_status st = guided_common(base, sk_gmm_dim(g), y, sk_gmm_components(g), w, FN_GUIDED_GMM, out);
  if (st == SK_OK) (*out)->gmm = g;
  return st;
}

/* ---- score functions defined in other files (classifier-free guidance) ---- */

sk_status sk__score_fn_custom(const sk__score_ops *ops, void *ctx, int dim, int rows,
                              int conditional, sk_score_fn **out) {
  *out = NULL;
  sk_status st = alloc_fn(FN_CUSTOM, dim, out);
  if (st != SK_OK) {
    ops->free(ctx);
    return st;
  }
  (*out)->ops = ops;
  (*out)->ctx = ctx;
  (*out)->rows = rows;
  (*out)->conditional = conditional;
  return SK_OK;
}

void *sk__score_fn_ctx(const sk_score_fn *f) { return f->kind == FN_CUSTOM ? f->ctx : NULL; }

sk_status sk__score_fn_clone(const sk_score_fn *f, sk_score_fn **out) {
  sk_score_fn *base = NULL;
  sk_status st;
  *out = NULL;
  switch (f->kind) {
  case FN_MODEL:
    return sk_score_fn_model(f->model, f->rows, out);
  case FN_GMM:
    return sk_score_fn_gmm(f->gmm, out);
  case FN_CUSTOM: {
    void *ctx = NULL;
    if ((st = f->ops->clone(f->ctx, &ctx)) != SK_OK) return st;
    return sk__score_fn_custom(f->ops, ctx, f->dim, f->rows, f->conditional, out);
  }
  case FN_GUIDED_MODEL:
  case FN_GUIDED_GMM:
    if ((st = sk__score_fn_clone(f->base, &base)) != SK_OK) return st;
    st = f->kind == FN_GUIDED_MODEL ? sk_score_fn_guided_model(base, f->model, f->y, f->w, out)
                                    : sk_score_fn_guided_gmm(base, f->gmm, f->y, f->w, out);
    if (st != SK_OK) {
      sk_score_fn_free(base);
      return st;
    }
    (*out)->owns_base = 1;
    return SK_OK;
  }
  return sk__fail(SK_ERR_STATE, "score function: unknown kind");
}

/* Runs the compiled graph on n rows (the rest of its rows are padding). */
static sk_status run_graph(sk_score_fn *f, const float *x, int64_t n, float sigma, float *out) {
  const size_t nd = (size_t)n * (size_t)f->dim;
  memcpy(sk_graph_data(f->g, f->x), x, nd * sizeof(float));
  if (f->conditional) {
    float *s = sk_graph_data(f->g, f->sigma);
    for (int64_t i = 0; i < f->rows; i++) s[i] = sigma;
  }
  sk_status st = sk_graph_run(f->g);
  if (st == SK_OK) memcpy(out, sk_graph_data(f->g, f->out), nd * sizeof(float));
  return st;
}

int64_t sk__first_not_finite(const float *x, size_t nd) {
  const size_t block = 4096;
  for (size_t i0 = 0; i0 < nd; i0 += block) {
    const size_t i1 = SK_MIN(nd, i0 + block);
    /* A value is not finite where its exponent bits are all set; or-ed over
     * a block without a branch, the loop vectorises (measured five times as
     * fast as testing each value). */
    uint32_t bad = 0;
    for (size_t i = i0; i < i1; i++) {
      uint32_t b;
      memcpy(&b, x + i, sizeof b);
      bad |= (b & 0x7f800000u) == 0x7f800000u;
    }
    for (size_t i = i0; bad && i < i1; i++)
      if (!isfinite(x[i])) return (int64_t)i;
  }
  return -1;
}

sk_status sk__check_rows_finite(const char *what, const float *x, int64_t n, int d,
                                int64_t first_row) {
  const int64_t i = sk__first_not_finite(x, n > 0 ? (size_t)n * (size_t)d : 0);
  if (i < 0) return SK_OK;
  return sk__fail(SK_ERR_NUMERIC, "%s: x[%lld, %d] is %g", what, (long long)(first_row + i / d),
                  (int)(i % d), (double)x[i]);
}

sk_status sk_score_fn_eval(sk_score_fn *f, const float *x, int64_t n, float sigma, float *out) {
  if (!f || !x || !out)
    return sk__fail(SK_ERR_INVALID, "score function: %s is NULL", !f ? "f" : !x ? "x" : "out");
  if (n < 1 || n > f->rows)
    return sk__fail(SK_ERR_INVALID, "score function: %lld rows outside 1..%d", (long long)n,
                    f->rows);
  if (!(sigma > 0) && f->conditional)
    return sk__fail(SK_ERR_INVALID, "score function: σ must be positive, got %g", sigma);
  sk_status st;
  const size_t nd = (size_t)n * (size_t)f->dim;
  /* A mixture checks its x itself, and a guided score's base does; a
   * network would return NaN for a row that is not finite. One pass over x
   * is nothing beside a network's evaluation. */
  if ((f->kind == FN_MODEL || f->kind == FN_CUSTOM) &&
      (st = sk__check_rows_finite("score function", x, n, f->dim, 0)) != SK_OK)
    return st;
  switch (f->kind) {
  case FN_MODEL:
    return run_graph(f, x, n, sigma, out);
  case FN_GMM:
    return sk_gmm_score(f->gmm, sigma, x, n, out);
  case FN_CUSTOM:
    return f->ops->eval(f->ctx, x, n, sigma, out);
  case FN_GUIDED_MODEL:
  case FN_GUIDED_GMM:
    st = sk_score_fn_eval(f->base, x, n, sigma, out);
    if (st != SK_OK) return st;
    st = f->kind == FN_GUIDED_MODEL ? run_graph(f, x, n, sigma, f->tmp)
                                    : sk_gmm_log_posterior_grad(f->gmm, sigma, x, n, NULL, f->y, f->tmp);
    if (st != SK_OK) return st;
    for (size_t i = 0; i < nd; i++) out[i] += f->w * f->tmp[i];
    return SK_OK;
  }
  return sk__fail(SK_ERR_STATE, "score function: unknown kind");
}

/* The graph of s(x, σ) and vᵀ ∇ₓ(vᵀ s) per row (rows are independent, so
 * the gradient of the sum over rows is each row's own). */
static sk_status compile_divergence(sk_score_fn *f) {
  sk_graph *g = f->dg = sk_graph_new();
  if (!g) return sk__fail(SK_ERR_NOMEM, "divergence: out of memory for its graph");
  sk_node p[128];
  sk_status st = sk_model_bind(f->model, g, NULL, p);
  if (st != SK_OK) return st;
  const int64_t xd[2] = {f->rows, f->dim};
  f->dx = sk_input(g, "x", 2, xd);
  f->dv = sk_input(g, "v", 2, xd);
  if (f->conditional) f->dsigma = sk_input(g, "sigma", 2, (int64_t[]){f->rows, 1});
  f->ds = sk_model_apply(f->model, g, p, f->dx, f->dsigma);
  sk_node u = sk_sum(g, sk_mul(g, f->dv, f->ds), 1, 1), gv;
  if (sk_graph_status(g) != SK_OK) return sk_graph_compile(g, 1, &f->ds); /* the build error */
  st = sk_grad(g, sk_sum_all(g, u), SK_NONE, 1, &f->dx, &gv);
  if (st != SK_OK) return st;
  f->dvjv = sk_sum(g, sk_mul(g, f->dv, gv), 1, 1);
  sk_node outs[2] = {f->ds, f->dvjv};
  return sk_graph_compile(g, 2, outs);
}

/* A model's divergence: with probes, one run each; exact, vᵀ ∇ₓ(vᵀ s) with
 * v = e_j is ∂s_j/∂x_j, so the n·d pairs (row i, dimension j) are packed into
 * the graph's rows, row i repeated (ceil(n·d/rows) runs, at most d). */
static sk_status model_divergence(sk_score_fn *f, const float *x, int64_t n, float sigma, int k,
                                  const float *v, float *score, double *div) {
  sk_status st = SK_OK;
  if (!f->dg && (st = compile_divergence(f)) != SK_OK) {
    sk_graph_free(f->dg);
    f->dg = NULL;
    return st;
  }
  const int d = f->dim;
  const size_t nd = (size_t)n * (size_t)d;
  float *xb = sk_graph_data(f->dg, f->dx), *vb = sk_graph_data(f->dg, f->dv);
  const float *vjv = sk_graph_data(f->dg, f->dvjv), *sb = sk_graph_data(f->dg, f->ds);
  if (f->conditional) {
    float *s = sk_graph_data(f->dg, f->dsigma);
    for (int64_t i = 0; i < f->rows; i++) s[i] = sigma;
  }
  for (int64_t i = 0; i < n; i++) div[i] = 0;
  if (v) {
    memcpy(xb, x, nd * sizeof(float));
    for (int j = 0; j < k && st == SK_OK; j++) {
      memcpy(vb, v + (size_t)j * nd, nd * sizeof(float));
      if ((st = sk_graph_run(f->dg)) != SK_OK) break;
      if (j == 0) memcpy(score, sb, nd * sizeof(float));
      for (int64_t i = 0; i < n; i++) div[i] += vjv[i] / k;
    }
    return st;
  }
  const int64_t pairs = n * d, rows = f->rows;
  for (int64_t q0 = 0; q0 < pairs && st == SK_OK; q0 += rows) {
    const int64_t m = SK_MIN(rows, pairs - q0);
    memset(vb, 0, (size_t)rows * (size_t)d * sizeof(float));
    for (int64_t r = 0; r < m; r++) {
      const int64_t i = (q0 + r) / d, j = (q0 + r) % d;
      memcpy(xb + r * d, x + i * d, (size_t)d * sizeof(float));
      vb[r * d + j] = 1;
    }
    if ((st = sk_graph_run(f->dg)) != SK_OK) break;
    for (int64_t r = 0; r < m; r++) {
      const int64_t i = (q0 + r) / d, j = (q0 + r) % d;
      div[i] += vjv[r];
      if (j == 0) memcpy(score + i * d, sb + r * d, (size_t)d * sizeof(float));
    }
  }
  return st;
}

/* (Σ_k + σ² I)⁻¹, its log determinant and trace for every component, in
 * double by Cholesky. */
static sk_status gmm_factor(sk_score_fn *f, float sigma) {
  const int K = sk_gmm_components(f->gmm), d = f->dim;
  if (!f->inv) {
    const size_t m = (size_t)K * d * d + 2 * (size_t)K + (size_t)K * d + K + d + (size_t)d * d;
    if (!(f->inv = sk__malloc(m * sizeof(double))))
      return sk__fail(SK_ERR_NOMEM, "divergence: out of memory");
    f->logdet = f->inv + (size_t)K * d * d;
    f->trinv = f->logdet + K;
    f->row = f->trinv + K;
    f->sigma_cached = -1;
  }
  if (sigma == f->sigma_cached) return SK_OK;
  double *l = f->row + (size_t)K * d + K + d; /* (d, d) Cholesky factor */
  for (int c = 0; c < K; c++) {
    const float *cov = sk_gmm_covs(f->gmm) + (size_t)c * d * d;
    double *inv = f->inv + (size_t)c * d * d, ld = 0;
    for (int i = 0; i < d; i++)
      for (int j = 0; j <= i; j++) {
        double a = (double)cov[i * d + j] + (i == j ? (double)sigma * sigma : 0.0);
        for (int q = 0; q < j; q++) a -= l[i * d + q] * l[j * d + q];
        if (i == j) {
          if (!(a > 0)) return sk__fail(SK_ERR_NUMERIC, "divergence: component %d is singular", c);
          l[i * d + i] = sqrt(a);
          ld += 2 * log(l[i * d + i]);
        } else
          l[i * d + j] = a / l[j * d + j];
      }
    /* Column e_j of the inverse: solve L Lᵀ y = e_j. */
    for (int j = 0; j < d; j++) {
      double *y = inv + (size_t)j * d;
      for (int i = 0; i < d; i++) {
        double a = i == j;
        for (int q = 0; q < i; q++) a -= l[i * d + q] * y[q];
        y[i] = a / l[i * d + i];
      }
      for (int i = d - 1; i >= 0; i--) {
        double a = y[i];
        for (int q = i + 1; q < d; q++) a -= l[q * d + i] * y[q];
        y[i] = a / l[i * d + i];
      }
    }
    f->logdet[c] = ld;
    f->trinv[c] = 0;
    for (int i = 0; i < d; i++) f->trinv[c] += inv[i * d + i];
  }
  f->sigma_cached = sigma;
  return SK_OK;
}

/* A mixture's score and divergence, in double: with posteriors w_k and
 * component scores s_k = −C_k⁻¹(x − μ_k), the Jacobian of s = Σ w_k s_k is
 * Σ w_k (s_k s_kᵀ − C_k⁻¹) − s sᵀ (docs/MATH.md). */
static sk_status gmm_divergence(sk_score_fn *f, const float *x, int64_t n, float sigma, int k,
                                const float *v, float *score, double *div) {
  sk_status st = gmm_factor(f, sigma);
  if (st != SK_OK) return st;
  const int K = sk_gmm_components(f->gmm), d = f->dim;
  const float *mu = sk_gmm_means(f->gmm), *pi = sk_gmm_weights(f->gmm);
  double *sk = f->row, *lw = sk + (size_t)K * d, *s = lw + K;
  const size_t nd = (size_t)n * (size_t)d;
  for (int64_t r = 0; r < n; r++) {
    const float *xr = x + r * d;
    double top = -INFINITY;
    for (int c = 0; c < K; c++) {
      const double *inv = f->inv + (size_t)c * d * d;
      double *sc = sk + (size_t)c * d, q = 0;
      for (int i = 0; i < d; i++) {
        double a = 0;
        for (int j = 0; j < d; j++) a += inv[i * d + j] * ((double)xr[j] - mu[c * d + j]);
        sc[i] = -a;
        q += a * ((double)xr[i] - mu[c * d + i]);
      }
      lw[c] = log((double)pi[c]) - 0.5 * q - 0.5 * f->logdet[c];
      if (lw[c] > top) top = lw[c];
    }
    double z = 0;
    for (int c = 0; c < K; c++) z += (lw[c] = exp(lw[c] - top));
    for (int i = 0; i < d; i++) s[i] = 0;
    for (int c = 0; c < K; c++) {
      lw[c] /= z;
      for (int i = 0; i < d; i++) s[i] += lw[c] * sk[(size_t)c * d + i];
    }
    for (int i = 0; i < d; i++) score[r * d + i] = (float)s[i];
    double acc = 0;
    const int probes = v ? k : 1;
    for (int p = 0; p < probes; p++) {
      const float *vr = v ? v + (size_t)p * nd + (size_t)r * d : NULL;
      double t = 0, vs = 0;
      for (int c = 0; c < K; c++) {
        const double *sc = sk + (size_t)c * d, *inv = f->inv + (size_t)c * d * d;
        double a, b = 0;
        if (vr) { /* vᵀ(s_k s_kᵀ − C_k⁻¹)v */
          a = 0;
          for (int i = 0; i < d; i++) {
            a += vr[i] * sc[i];
            double ci = 0;
            for (int j = 0; j < d; j++) ci += inv[i * d + j] * vr[j];
            b += vr[i] * ci;
          }
          a *= a;
        } else { /* tr(s_k s_kᵀ − C_k⁻¹) */
          a = 0;
          for (int i = 0; i < d; i++) a += sc[i] * sc[i];
          b = f->trinv[c];
        }
        t += lw[c] * (a - b);
      }
      for (int i = 0; i < d; i++) vs += (vr ? vr[i] : 1.0) * s[i] * (vr ? 1.0 : s[i]);
      acc += t - (vr ? vs * vs : vs);
    }
    div[r] = acc / probes;
    if (!isfinite(div[r]))
      return sk__fail(SK_ERR_NUMERIC, "divergence: row %lld is not finite", (long long)r);
  }
  return SK_OK;
}

sk_status sk_score_fn_divergence(sk_score_fn *f, const float *x, int64_t n, float sigma, int k,
                                 const float *v, float *score, double *div) {
  if (!f || !x || !score || !div)
    return sk__fail(SK_ERR_INVALID, "divergence: %s is NULL",
                    !f ? "f" : !x ? "x" : !score ? "score" : "div");
  if (n < 1 || n > f->rows)
    return sk__fail(SK_ERR_INVALID, "divergence: %lld rows outside 1..%d", (long long)n, f->rows);
  if (!(sigma > 0) || !isfinite(sigma))
    return sk__fail(SK_ERR_INVALID, "divergence: σ must be positive, got %g", sigma);
  if (v && (k < 1 || k > 4096))
    return sk__fail(SK_ERR_INVALID, "divergence: %d probes outside 1..4096", k);
  const sk_status st = sk__check_rows_finite("divergence", x, n, f->dim, 0);
  if (st != SK_OK) return st;
  switch (f->kind) {
  case FN_MODEL:
    return model_divergence(f, x, n, sigma, k, v, score, div);
  case FN_GMM:
    return gmm_divergence(f, x, n, sigma, k, v, score, div);
  default:
    return sk__fail(SK_ERR_INVALID, "divergence: not available for a guided score");
  }
}

sk_status sk_classifier_accuracy(sk_model *classifier, const float *x, const int32_t *labels,
                                 int64_t n, float sigma, double *accuracy) {
  if (!classifier || !x || !labels || !accuracy)
    return sk__fail(SK_ERR_INVALID, "accuracy: %s is NULL",
                    !classifier ? "the classifier" : !x ? "x" : !labels ? "labels" : "accuracy");
  const sk_model_config *c = sk_model_get_config(classifier);
  if (!sk_model_is_classifier(c)) return sk__fail(SK_ERR_INVALID, "accuracy: not a classifier");
  if (n < 1 || n > INT64_MAX / c->dim)
    return sk__fail(SK_ERR_INVALID, "accuracy: n is %lld", (long long)n);
  if (!(sigma > 0) || !isfinite(sigma))
    return sk__fail(SK_ERR_INVALID, "accuracy: σ must be positive and finite, got %g", sigma);
  for (int64_t i = 0; i < n; i++)
    if (labels[i] < 0 || labels[i] >= c->classes)
      return sk__fail(SK_ERR_INVALID, "accuracy: label of row %lld is %d, outside 0..%d",
                      (long long)i, (int)labels[i], c->classes - 1);
  sk_status st = sk__check_rows_finite("accuracy", x, n, c->dim, 0);
  if (st != SK_OK) return st;
  sk_score_fn f = {.kind = FN_MODEL, .dim = c->dim, .rows = SK_SCORE_ROWS, .x = SK_NONE,
                   .sigma = SK_NONE, .out = SK_NONE};
  st = compile_model(&f, classifier, -1);
  int64_t right = 0;
  for (int64_t r = 0; st == SK_OK && r < n; r += SK_SCORE_ROWS) {
    int64_t nr = SK_MIN((int64_t)SK_SCORE_ROWS, n - r);
    memcpy(sk_graph_data(f.g, f.x), x + r * c->dim, (size_t)(nr * c->dim) * sizeof(float));
    float *s = sk_graph_data(f.g, f.sigma);
    for (int64_t i = 0; i < SK_SCORE_ROWS; i++) s[i] = sigma;
    st = sk_graph_run(f.g);
    const float *logits = sk_graph_data(f.g, f.out);
    for (int64_t i = 0; st == SK_OK && i < nr; i++) {
      int best = 0;
      for (int k = 1; k < c->classes; k++)
        if (logits[i * c->classes + k] > logits[i * c->classes + best]) best = k;
      right += best == labels[r + i];
    }
  }
  sk_graph_free(f.g);
  if (st == SK_OK) *accuracy = (double)right / (double)n;
  return st;
}

sk_status sk_score_error(sk_score_fn *f, const sk_gmm *law, float sigma, int64_t n, uint64_t seed,
                         double *error) {
  const int d = f->dim;
  if (sk_gmm_dim(law) != d)
    return sk__fail(SK_ERR_SHAPE, "score error: the law has %d dimensions, the score %d",
                    sk_gmm_dim(law), d);
  if (n < 1) return sk__fail(SK_ERR_INVALID, "score error: n is %lld", (long long)n);
  const size_t chunk = (size_t)f->rows * (size_t)d;
  float *x = sk__malloc(chunk * sizeof(float)), *got = sk__malloc(chunk * sizeof(float)),
        *want = sk__malloc(chunk * sizeof(float));
  sk_status st = x && got && want ? SK_OK : sk__fail(SK_ERR_NOMEM, "score error: out of memory");
  sk_rng r = sk_rng_make(seed, 0x65727272); /* "errr" */
  double sum = 0;
  for (int64_t r0 = 0; st == SK_OK && r0 < n; r0 += f->rows) {
    const int64_t nr = SK_MIN((int64_t)f->rows, n - r0);
    st = sk_gmm_sample(law, sigma, &r, nr, x, NULL);
    if (st == SK_OK) st = sk_score_fn_eval(f, x, nr, sigma, got);
    if (st == SK_OK) st = sk_gmm_score(law, sigma, x, nr, want);
    for (int64_t i = 0; st == SK_OK && i < nr * d; i++)
      sum += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
  }
  if (st == SK_OK) *error = sum / (double)n;
  sk__free(x);
  sk__free(got);
  sk__free(want);
  return st;
}
