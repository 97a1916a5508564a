/* Class-conditional score models: the trainer's label checks and label
 * dropout, and classifier-free guidance (Ho & Salimans 2022) as a score
 * function, so that every sampler uses it unchanged. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "score/internal.h"
#include "scorekit/sample.h"

sk_status sk__cond_check(const sk_model_config *m, const sk_dataset *ds) {
  if (!sk__cond_model(m)) return SK_OK;
  if (!sk_dataset_labels(ds) || sk_dataset_classes(ds) < 1)
    return sk__fail(SK_ERR_INVALID, "train: a class-conditional model needs labelled data");
  if (sk_dataset_classes(ds) > m->classes)
    return sk__fail(SK_ERR_INVALID, "train: data has %d classes, the conditional model %d",
                    sk_dataset_classes(ds), m->classes);
  return SK_OK;
}

int sk__label_dropped(uint64_t seed, int64_t step, int64_t row, float p) {
  if (!(p > 0)) return 0;
  sk_rng r = sk_rng_make(seed, SK__STREAM_LABEL);
  r.offset = 4 * ((uint64_t)step * (UINT64_C(1) << 20) + (uint64_t)row);
  float u;
  sk_rng_uniform(&r, &u, 1);
  return u < p;
}

/* ---- classifier-free guidance ---- */

typedef struct cfg_fn {
  sk_model *m;
  int rows, dim, K, y;
  float w;
  sk_graph *g;
  sk_node x, sigma, labels, out;
  float *tmp; /* (rows, d): the unconditional score when both are needed */
} cfg_fn;

static void cfg_free(void *ctx) {
  cfg_fn *c = ctx;
  if (!c) return;
  sk_graph_free(c->g);
  sk__free(c->tmp);
  sk__free(c);
}

/* The model's forward graph with its labels as an input. */
static sk_status cfg_compile(cfg_fn *c) {
  c->g = sk_graph_new();
  if (!c->g) return sk__fail(SK_ERR_NOMEM, "guidance: out of memory for its graph");
  sk_node p[128];
  if (sk_model_num_tensors(c->m) > 128) return sk__fail(SK_ERR_INVALID, "guidance: model too deep");
  sk_status st = sk_model_bind(c->m, c->g, NULL, p);
  if (st != SK_OK) return st;
  c->x = sk_input(c->g, "x", 2, (int64_t[]){c->rows, c->dim});
  c->sigma = sk_input(c->g, "sigma", 2, (int64_t[]){c->rows, 1});
  c->labels = sk_input(c->g, "label", 2, (int64_t[]){c->rows, c->K + 1});
  c->out = sk_model_apply_labels(c->m, c->g, p, c->x, c->sigma, c->labels);
  return sk_graph_compile(c->g, 1, &c->out);
}

static sk_status cfg_make(sk_model *m, int rows, int y, float w, cfg_fn **out) {
  *out = NULL;
  cfg_fn *c = sk__calloc(1, sizeof *c);
  if (!c) return sk__fail(SK_ERR_NOMEM, "guidance: out of memory");
  c->m = m;
  c->rows = rows;
  c->dim = sk_model_get_config(m)->dim;
  c->K = sk_model_get_config(m)->classes;
  c->y = y;
  c->w = w;
  c->tmp = sk__malloc((size_t)rows * (size_t)c->dim * sizeof(float));
  sk_status st = c->tmp ? cfg_compile(c) : sk__fail(SK_ERR_NOMEM, "guidance: out of memory");
  if (st != SK_OK) {
    cfg_free(c);
    return st;
  }
  *out = c;
  return SK_OK;
}

/* out (n, d) = the model's score with every row labelled `label` (K: none). */
static sk_status cfg_run(cfg_fn *c, const float *x, int64_t n, float sigma, int label, float *out) {
  const size_t nd = (size_t)n * (size_t)c->dim;
  memcpy(sk_graph_data(c->g, c->x), x, nd * sizeof(float));
  float *s = sk_graph_data(c->g, c->sigma), *oh = sk_graph_data(c->g, c->labels);
  memset(oh, 0, (size_t)c->rows * (size_t)(c->K + 1) * sizeof(float));
  for (int64_t i = 0; i < c->rows; i++) {
    s[i] = sigma;
    oh[i * (c->K + 1) + label] = 1.0f;
  }
  sk_status st = sk_graph_run(c->g);
  if (st == SK_OK) memcpy(out, sk_graph_data(c->g, c->out), nd * sizeof(float));
  return st;
}

/* (1 − w) s(x, σ, ∅) + w s(x, σ, y): with w = 0 or 1 one evaluation, whose
 * bits are returned as they are. */
static sk_status cfg_eval(void *ctx, const float *x, int64_t n, float sigma, float *out) {
  cfg_fn *c = ctx;
  if (c->w == 0) return cfg_run(c, x, n, sigma, c->K, out);
  if (c->w == 1) return cfg_run(c, x, n, sigma, c->y, out);
  sk_status st = cfg_run(c, x, n, sigma, c->K, c->tmp);
  if (st == SK_OK) st = cfg_run(c, x, n, sigma, c->y, out);
  if (st != SK_OK) return st;
  const float a = 1.0f - c->w, b = c->w;
  const size_t nd = (size_t)n * (size_t)c->dim;
  for (size_t i = 0; i < nd; i++) out[i] = a * c->tmp[i] + b * out[i];
  return SK_OK;
}

static sk_status cfg_clone(const void *ctx, void **out) {
  const cfg_fn *c = ctx;
  cfg_fn *d = NULL;
  sk_status st = cfg_make(c->m, c->rows, c->y, c->w, &d);
  *out = d;
  return st;
}

static const sk__score_ops cfg_ops = {cfg_eval, cfg_clone, cfg_free};

sk_status sk_score_fn_cfg(sk_model *m, int rows, int y, float w, sk_score_fn **out) {
  *out = NULL;
  const sk_model_config *mc = sk_model_get_config(m);
  if (!sk__cond_model(mc))
    return sk__fail(SK_ERR_INVALID, "guidance: classifier-free guidance needs a class-conditional "
                                    "score model (trained with its labels)");
  if (rows < 1 || rows > SK_SCORE_ROWS)
    return sk__fail(SK_ERR_INVALID, "guidance: rows %d outside 1..%d", rows, SK_SCORE_ROWS);
  if (y < 0 || y >= mc->classes)
    return sk__fail(SK_ERR_INVALID, "guidance: class %d outside 0..%d", y, mc->classes - 1);
  if (!isfinite(w)) return sk__fail(SK_ERR_INVALID, "guidance: weight %g is not finite", w);
  cfg_fn *c;
  sk_status st = cfg_make(m, rows, y, w, &c);
  if (st != SK_OK) return st;
  return sk__score_fn_custom(&cfg_ops, c, mc->dim, rows, 1, out);
}
