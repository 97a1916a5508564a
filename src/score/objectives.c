/* The objectives of docs/MATH.md as graphs: per-sample loss summed over the data
 * dimensions, batch loss the mean over rows. The second-order ones (esm, ssm,
 * ssm-vr) take ∇ₓ through sk_grad and are differentiated again for training. */
#include <string.h>

#include "core/internal.h"
#include "score/internal.h"
#include "scorekit/score.h"

static const char *const obj_names[SK_OBJ_COUNT] = {"esm", "dsm", "ssm", "ssm-vr", "ncsn",
                                                    "classifier", "vesde"};

const char *sk_objective_name(sk_objective o) { return o < SK_OBJ_COUNT ? obj_names[o] : "?"; }

sk_objective sk_objective_parse(const char *name) {
  for (int i = 0; name && i < SK_OBJ_COUNT; i++)
    if (strcmp(name, obj_names[i]) == 0) return (sk_objective)i;
  return SK_OBJ_COUNT;
}

/* ½ Σ_j a_j² per row: (N, 1). */
static sk_node half_sq_rows(sk_graph *g, sk_node a) {
  return sk_affine(g, sk_sum(g, sk_square(g, a), 1, 1), 0.5f, 0.0f);
}

/* tr ∇ₓ s(x) per row, one backward pass per output dimension (N, 1). */
static sk_node trace_rows(sk_graph *g, sk_node s, sk_node x, int d) {
  sk_node tr = SK_NONE;
  for (int j = 0; j < d; j++) {
    sk_node gj;
    if (sk_grad(g, sk_sum_all(g, sk_slice(g, s, 1, j, 1)), SK_NONE, 1, &x, &gj) != SK_OK)
      return SK_NONE;
    sk_node t = sk_slice(g, gj, 1, j, 1);
    tr = tr == SK_NONE ? t : sk_add(g, tr, t);
  }
  return tr;
}

static sk_status build(sk_model *m, sk_objective obj, int rows, sk_loss_graph *lg) {
  const sk_model_config *c = sk_model_get_config(m);
  sk_graph *g = lg->g;
  const int d = c->dim;
  const int conditional = c->kind != SK_MODEL_MLP;
  int64_t xd[2] = {rows, d}, sd[2] = {rows, 1};
  sk_node params[128];
  sk_status st = sk_model_bind(m, g, NULL, params);
  if (st != SK_OK) return st;
  lg->x = sk_input(g, "x", 2, xd);
  const int noisy = obj == SK_OBJ_DSM || obj == SK_OBJ_NCSN || obj == SK_OBJ_VESDE ||
                    obj == SK_OBJ_CLASSIFIER;
  if (noisy) lg->z = sk_input(g, "z", 2, xd);
  if (noisy || conditional) lg->sigma = sk_input(g, "sigma", 2, sd);
  sk_node in = noisy ? sk_add(g, lg->x, sk_mul(g, lg->sigma, lg->z)) : lg->x;
  /* A class-conditional score model reads each row's label, one-hot over
   * K + 1 columns (column K: no label); the trainer fills it. */
  if (sk__cond_model(c))
    lg->onehot = sk_input(g, "label", 2, (int64_t[]){rows, c->classes + 1});
  sk_node out = sk_model_apply_labels(m, g, params, in, lg->sigma, lg->onehot);
  lg->score = out;
  sk_node per_row;
  switch (obj) {
  case SK_OBJ_ESM:
    per_row = sk_add(g, half_sq_rows(g, out), trace_rows(g, out, lg->x, d));
    break;
  case SK_OBJ_DSM: /* target ∇ log q_σ(x̃|x) = −z/σ */
    per_row = half_sq_rows(g, sk_add(g, out, sk_div(g, lg->z, lg->sigma)));
    break;
  case SK_OBJ_NCSN:  /* λ(σ) = σ²: ½‖σ s + z‖² */
  case SK_OBJ_VESDE: /* the same loss; only the draw of σ differs (the trainer's) */
    per_row = half_sq_rows(g, sk_add(g, sk_mul(g, lg->sigma, out), lg->z));
    break;
  case SK_OBJ_SSM:
  case SK_OBJ_SSM_VR: {
    lg->v = sk_input(g, "v", 2, xd);
    sk_node u = sk_sum(g, sk_mul(g, lg->v, out), 1, 1); /* vᵀs, (N, 1) */
    sk_node gv;                                         /* ∇ₓ(vᵀs), rows independent */
    st = sk_grad(g, sk_sum_all(g, u), SK_NONE, 1, &lg->x, &gv);
    if (st != SK_OK) return st;
    sk_node vjv = sk_sum(g, sk_mul(g, lg->v, gv), 1, 1);
    sk_node second = obj == SK_OBJ_SSM ? sk_affine(g, sk_square(g, u), 0.5f, 0.0f)
                                       : half_sq_rows(g, out);
    per_row = sk_add(g, vjv, second);
    break;
  }
  default: { /* classifier: −Σ_k onehot_k log softmax_k */
    int64_t od[2] = {rows, c->classes};
    lg->onehot = sk_input(g, "onehot", 2, od);
    per_row = sk_neg(g, sk_sum(g, sk_mul(g, lg->onehot, sk_log_softmax(g, out)), 1, 1));
    break;
  }
  }
  lg->loss = sk_mean_all(g, per_row);
  lg->n_grads = sk_model_num_tensors(m);
  lg->grads = sk__malloc((size_t)lg->n_grads * sizeof *lg->grads);
  if (!lg->grads) return sk__fail(SK_ERR_NOMEM, "loss: out of memory");
  if (sk_graph_status(g) != SK_OK)
    return sk_graph_compile(g, 1, &lg->loss); /* reports the build error */
  st = sk_grad(g, lg->loss, SK_NONE, lg->n_grads, params, lg->grads);
  if (st != SK_OK) return st;
  sk_node outs[130];
  int n = 0;
  outs[n++] = lg->loss;
  outs[n++] = lg->score;
  for (int i = 0; i < lg->n_grads; i++) outs[n++] = lg->grads[i];
  return sk_graph_compile(g, n, outs);
}

sk_status sk_loss_graph_new(sk_model *m, sk_objective obj, int batch, int projections,
                            sk_loss_graph *out) {
  return sk__loss_graph_new(m, obj, batch, projections, 0, out, NULL);
}

sk_status sk__loss_graph_new(sk_model *m, sk_objective obj, int batch, int projections,
                             size_t arena_limit, sk_loss_graph *out, size_t *arena_bytes) {
  if (arena_bytes) *arena_bytes = 0;
  if (!out) return sk__fail(SK_ERR_INVALID, "loss: NULL output");
  memset(out, 0, sizeof *out);
  if (arena_bytes) *arena_bytes = 0;
  out->x = out->z = out->v = out->sigma = out->onehot = SK_NONE;
  if (!m) return sk__fail(SK_ERR_INVALID, "loss: NULL model");
  const sk_model_config *c = sk_model_get_config(m);
  if (obj >= SK_OBJ_COUNT) return sk__fail(SK_ERR_INVALID, "loss: unknown objective");
  if ((obj == SK_OBJ_CLASSIFIER) != sk_model_is_classifier(c))
    return sk__fail(SK_ERR_INVALID, "loss: objective %s cannot train a %s model",
                    sk_objective_name(obj), sk_model_is_classifier(c) ? "classifier" : "score");
  /* Its σ is drawn from a continuum: a model without a σ input could not
   * tell the levels apart, and no sampler could walk them. */
  if (obj == SK_OBJ_VESDE && c->kind == SK_MODEL_MLP)
    return sk__fail(SK_ERR_INVALID, "loss: objective vesde needs a noise-conditional model (ncmlp "
                    "or unet); an mlp has no σ input");
  if (sk_model_num_tensors(m) > 128) return sk__fail(SK_ERR_INVALID, "loss: model too deep");
  int proj = (obj == SK_OBJ_SSM || obj == SK_OBJ_SSM_VR) ? projections : 1;
  if (batch < 1 || proj < 1 || (int64_t)batch * proj > (1 << 24))
    return sk__fail(SK_ERR_INVALID, "loss: batch %d × projections %d out of range", batch,
                    projections);
  out->rows = batch * proj;
  out->g = sk_graph_new();
  if (!out->g) return sk__fail(SK_ERR_NOMEM, "loss: out of memory for the graph");
  sk_graph_set_arena_limit(out->g, arena_limit);
  sk_graph_set_lean(out->g, 1);
  sk_status st = build(m, obj, out->rows, out);
  if (arena_bytes) *arena_bytes = sk_graph_arena_bytes(out->g);
  if (st != SK_OK) sk_loss_graph_free(out);
  return st;
}

void sk_loss_graph_free(sk_loss_graph *lg) {
  sk_graph_free(lg->g);
  sk__free(lg->grads);
  memset(lg, 0, sizeof *lg);
}
