/* Score networks and classifiers as MLPs built from graph ops; parameters in
 * one buffer with named views in PyTorch's nn.Linear layout (W: (out, in)). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "nn/internal.h"
#include "scorekit/rng.h"

#define SK_MAX_LAYERS 64

typedef struct tensor_view {
  char name[32];
  int ndim;
  int64_t shape[2];
  size_t offset;
} tensor_view;

struct sk_model {
  sk_model_config cfg;
  int n_tensors;
  tensor_view t[2 * SK_MAX_LAYERS];
  size_t n_params;
  float *params;
};

static const char *const act_names[SK_ACT_COUNT] = {"softplus", "elu", "silu", "tanh"};

const char *sk_activation_name(sk_activation a) { return a < SK_ACT_COUNT ? act_names[a] : "?"; }

sk_activation sk_activation_parse(const char *name) {
  for (int i = 0; i < SK_ACT_COUNT; i++)
    if (strcmp(name, act_names[i]) == 0) return (sk_activation)i;
  return SK_ACT_COUNT;
}

static const char *prefix(sk_model_kind k) {
  return k == SK_MODEL_MLP ? "mlp" : k == SK_MODEL_NCMLP ? "ncmlp" : "clf";
}

sk_status sk__model_check(const sk_model_config *cfg) {
  if (cfg->kind >= SK_MODEL_KIND_COUNT || cfg->act >= SK_ACT_COUNT)
    return sk__fail(SK_ERR_INVALID, "model: unknown kind or activation");
  if (cfg->dim < 1 || cfg->dim > 1 << 20 || cfg->hidden < 1 || cfg->hidden > 1 << 16 ||
      cfg->depth < 1 || cfg->depth > SK_MAX_LAYERS - 1 ||
      (cfg->kind == SK_MODEL_CLASSIFIER && (cfg->classes < 2 || cfg->classes > 1 << 16)))
    return sk__fail(SK_ERR_INVALID,
                    "model: dim %d, hidden %d, depth %d, classes %d out of range (dim 1..2^20, "
                    "hidden 1..65536, depth 1..%d, classes 2..65536)",
                    cfg->dim, cfg->hidden, cfg->depth, cfg->classes, SK_MAX_LAYERS - 1);
  return SK_OK;
}

sk_model *sk__model_layout(const sk_model_config *cfg) {
  if (sk__model_check(cfg) != SK_OK) return NULL;
  sk_model *m = sk__calloc(1, sizeof *m);
  if (!m) {
    sk__fail(SK_ERR_NOMEM, "model: out of memory");
    return NULL;
  }
  m->cfg = *cfg;
  if (cfg->kind != SK_MODEL_CLASSIFIER) m->cfg.classes = 0; /* configs compare equal */
  const int in0 = cfg->dim + (cfg->kind == SK_MODEL_MLP ? 0 : 1);
  const int out = cfg->kind == SK_MODEL_CLASSIFIER ? cfg->classes : cfg->dim;
  size_t off = 0;
  for (int l = 0; l <= cfg->depth; l++) {
    int64_t fan_in = l == 0 ? in0 : cfg->hidden, fan_out = l == cfg->depth ? out : cfg->hidden;
    tensor_view *w = &m->t[m->n_tensors++], *b = &m->t[m->n_tensors++];
    snprintf(w->name, sizeof w->name, "%s.%d.weight", prefix(cfg->kind), l);
    snprintf(b->name, sizeof b->name, "%s.%d.bias", prefix(cfg->kind), l);
    w->ndim = 2;
    w->shape[0] = fan_out;
    w->shape[1] = fan_in;
    w->offset = off;
    off += (size_t)(fan_out * fan_in);
    b->ndim = 1;
    b->shape[0] = fan_out;
    b->offset = off;
    off += (size_t)fan_out;
  }
  m->n_params = off;
  return m;
}

sk_status sk__model_alloc(sk_model *m) {
  m->params = sk__calloc_lines(m->n_params, sizeof(float));
  if (!m->params)
    return sk__fail(SK_ERR_NOMEM, "model: out of memory for %zu parameters", m->n_params);
  return SK_OK;
}

sk_model *sk_model_new(const sk_model_config *cfg) {
  sk_model *m = sk__model_layout(cfg);
  if (m && sk__model_alloc(m) != SK_OK) {
    sk__free(m);
    return NULL;
  }
  return m;
}

void sk_model_free(sk_model *m) {
  if (!m) return;
  sk__free(m->params);
  sk__free(m);
}

const sk_model_config *sk_model_get_config(const sk_model *m) { return &m->cfg; }
size_t sk_model_num_params(const sk_model *m) { return m->n_params; }
float *sk_model_params(sk_model *m) { return m->params; }
int sk_model_num_tensors(const sk_model *m) { return m->n_tensors; }
const char *sk_model_tensor_name(const sk_model *m, int i) { return m->t[i].name; }
int sk_model_tensor_ndim(const sk_model *m, int i) { return m->t[i].ndim; }
const int64_t *sk_model_tensor_shape(const sk_model *m, int i) { return m->t[i].shape; }
size_t sk_model_tensor_offset(const sk_model *m, int i) { return m->t[i].offset; }

void sk_model_init(sk_model *m, uint64_t seed) {
  /* Layer l's weight and bias use streams 2l and 2l+1, so one layer's draws
   * do not depend on the size of another. */
  for (int i = 0; i < m->n_tensors; i++) {
    const tensor_view *v = &m->t[i];
    const tensor_view *w = (i % 2 == 0) ? v : &m->t[i - 1];
    float bound = 1.0f / sqrtf((float)w->shape[1]);
    size_t n = (size_t)(v->ndim == 2 ? v->shape[0] * v->shape[1] : v->shape[0]);
    sk_rng r = sk_rng_make(seed, (uint64_t)i);
    float *p = m->params + v->offset;
    sk_rng_uniform(&r, p, n);
    for (size_t j = 0; j < n; j++) p[j] = bound * (2.0f * p[j] - 1.0f);
  }
}

sk_status sk_model_bind(sk_model *m, sk_graph *g, float *params, sk_node *out) {
  float *base = params ? params : m->params;
  for (int i = 0; i < m->n_tensors; i++) {
    out[i] = sk_param(g, m->t[i].name, m->t[i].ndim, m->t[i].shape, base + m->t[i].offset);
    if (out[i] == SK_NONE) { /* the graph keeps its own words for sk_graph_compile */
      const sk_status st = sk_graph_status(g);
      return sk__fail(st, "model: %s binding %s to the graph",
                      st == SK_ERR_NOMEM ? "out of memory" : "failed", m->t[i].name);
    }
  }
  return SK_OK;
}

static sk_node activate(sk_graph *g, sk_node h, sk_activation a) {
  switch (a) {
  case SK_ACT_SOFTPLUS: return sk_softplus(g, h);
  case SK_ACT_ELU: return sk_elu(g, h);
  case SK_ACT_SILU: return sk_silu(g, h);
  default: return sk_tanh(g, h);
  }
}

sk_node sk_model_apply(sk_model *m, sk_graph *g, const sk_node *params, sk_node x, sk_node sigma) {
  const sk_model_config *c = &m->cfg;
  sk_node h = x;
  if (c->kind != SK_MODEL_MLP) h = sk_concat(g, x, sk_log(g, sigma), 1);
  for (int l = 0; l <= c->depth; l++) {
    /* h Wᵀ + b, as nn.Linear. */
    h = sk_add(g, sk_matmul(g, h, params[2 * l], 0, 1), params[2 * l + 1]);
    if (l < c->depth) h = activate(g, h, c->act);
  }
  if (c->kind == SK_MODEL_NCMLP) h = sk_div(g, h, sigma);
  return h;
}
