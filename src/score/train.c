/* The training loop's step: draw a batch and the objective's randomness from
 * separate counter-based streams, run the loss graph, step Adam; and save or
 * restore everything that makes a resumed run continue bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "scorekit/safetensors.h"
#include "scorekit/train.h"

/* RNG streams, so one use never shifts another's draws. */
enum { STREAM_DATA = 1, STREAM_NOISE, STREAM_PROJ, STREAM_LEVEL };

struct sk_trainer {
  sk_model *m;
  sk_dataset *ds;
  sk_train_config cfg;
  float sigmas[SK_MAX_LEVELS];
  sk_loss_graph lg;
  sk_adam *adam;
  sk_rng r_data, r_noise, r_proj, r_level;
  int64_t step;
  float *batch;   /* (batch, d) */
  int32_t *labels; /* (batch) */
  sk_adam_part *parts; /* (n_grads): where the graph leaves each gradient */
};

void sk_trainer_free(sk_trainer *t) {
  if (!t) return;
  sk_loss_graph_free(&t->lg);
  sk_adam_free(t->adam);
  sk__free(t->batch);
  sk__free(t->labels);
  sk__free(t->parts);
  sk__free(t);
}

sk_status sk_trainer_new(sk_model *m, sk_dataset *ds, const sk_train_config *cfg, sk_trainer **out) {
  *out = NULL;
  const sk_model_config *mc = sk_model_get_config(m);
  const sk_objective o = cfg->objective;
  if (o >= SK_OBJ_COUNT) return sk__fail(SK_ERR_INVALID, "train: unknown objective");
  if (sk_dataset_dim(ds) != mc->dim)
    return sk__fail(SK_ERR_SHAPE, "train: data has %d dimensions, the model %d", sk_dataset_dim(ds),
                    mc->dim);
  if (cfg->batch < 1 || cfg->batch > (1 << 20))
    return sk__fail(SK_ERR_INVALID, "train: batch size %d outside 1..1048576", cfg->batch);
  const int laddered = o == SK_OBJ_NCSN || o == SK_OBJ_CLASSIFIER;
  if (laddered) {
    if (cfg->n_sigmas < 1 || cfg->n_sigmas > SK_MAX_LEVELS || !cfg->sigmas)
      return sk__fail(SK_ERR_INVALID, "train: %s needs 1..%d noise levels", sk_objective_name(o),
                      SK_MAX_LEVELS);
    for (int i = 0; i < cfg->n_sigmas; i++)
      if (!(cfg->sigmas[i] > 0) || !isfinite(cfg->sigmas[i]))
        return sk__fail(SK_ERR_INVALID, "train: noise level %d is %g; levels must be positive", i,
                        cfg->sigmas[i]);
  } else if ((o == SK_OBJ_DSM || mc->kind != SK_MODEL_MLP) && !(cfg->sigma > 0 && isfinite(cfg->sigma))) {
    return sk__fail(SK_ERR_INVALID, "train: σ must be positive, got %g", cfg->sigma);
  }
  if (o == SK_OBJ_CLASSIFIER) {
    if (sk_dataset_classes(ds) < 1 || !sk_dataset_labels(ds))
      return sk__fail(SK_ERR_INVALID, "train: the classifier needs labelled data");
    if (sk_dataset_classes(ds) > mc->classes)
      return sk__fail(SK_ERR_INVALID, "train: data has %d classes, the classifier %d",
                      sk_dataset_classes(ds), mc->classes);
  }
  sk_trainer *t = sk__calloc(1, sizeof *t);
  if (!t) return sk__fail(SK_ERR_NOMEM, "train: out of memory");
  t->m = m;
  t->ds = ds;
  t->cfg = *cfg;
  if (laddered) memcpy(t->sigmas, cfg->sigmas, (size_t)cfg->n_sigmas * sizeof(float));
  t->cfg.sigmas = t->sigmas;
  if (t->cfg.projections < 1) t->cfg.projections = 1;
  sk_status st = sk_loss_graph_new(m, o, cfg->batch, t->cfg.projections, &t->lg);
  if (st != SK_OK) {
    sk__free(t);
    return st;
  }
  size_t np = sk_model_num_params(m);
  t->adam = sk_adam_new(&cfg->adam, np, sk_model_params(m));
  t->batch = sk__malloc((size_t)cfg->batch * (size_t)mc->dim * sizeof(float));
  t->labels = sk__malloc((size_t)cfg->batch * sizeof(int32_t));
  t->parts = sk__malloc((size_t)SK_MAX(1, t->lg.n_grads) * sizeof *t->parts);
  if (!t->adam || !t->batch || !t->labels || !t->parts) {
    st = t->adam ? sk__fail(SK_ERR_NOMEM, "train: out of memory") : SK_ERR_INVALID;
    sk_trainer_free(t);
    return st;
  }
  t->r_data = sk_rng_make(cfg->seed, STREAM_DATA);
  t->r_noise = sk_rng_make(cfg->seed, STREAM_NOISE);
  t->r_proj = sk_rng_make(cfg->seed, STREAM_PROJ);
  t->r_level = sk_rng_make(cfg->seed, STREAM_LEVEL);
  *out = t;
  return SK_OK;
}

int64_t sk_trainer_steps(const sk_trainer *t) { return t->step; }
const float *sk_trainer_ema(sk_trainer *t) { return sk_adam_ema(t->adam); }

/* Fills the loss graph's inputs for one step. */
static sk_status fill(sk_trainer *t) {
  sk_loss_graph *lg = &t->lg;
  sk_graph *g = lg->g;
  const int d = sk_dataset_dim(t->ds), B = t->cfg.batch, M = lg->rows / B;
  sk_status st = sk_dataset_batch(t->ds, &t->r_data, B, t->batch, t->labels);
  if (st != SK_OK) return st;
  float *x = sk_graph_data(g, lg->x);
  for (int b = 0; b < B; b++)
    for (int k = 0; k < M; k++) memcpy(x + ((size_t)b * M + k) * d, t->batch + (size_t)b * d, (size_t)d * sizeof(float));
  const size_t nd = (size_t)lg->rows * (size_t)d;
  if (lg->z != SK_NONE) sk_rng_normal(&t->r_noise, sk_graph_data(g, lg->z), nd);
  if (lg->v != SK_NONE) {
    if (t->cfg.rademacher)
      sk_rng_rademacher(&t->r_proj, sk_graph_data(g, lg->v), nd);
    else
      sk_rng_normal(&t->r_proj, sk_graph_data(g, lg->v), nd);
  }
  if (lg->sigma != SK_NONE) {
    float *s = sk_graph_data(g, lg->sigma);
    const int laddered = t->cfg.objective == SK_OBJ_NCSN || t->cfg.objective == SK_OBJ_CLASSIFIER;
    for (int i = 0; i < lg->rows; i++)
      s[i] = laddered ? t->sigmas[sk_rng_below(&t->r_level, (uint32_t)t->cfg.n_sigmas)] : t->cfg.sigma;
  }
  if (lg->onehot != SK_NONE) {
    const int K = sk_model_get_config(t->m)->classes;
    float *oh = sk_graph_data(g, lg->onehot);
    memset(oh, 0, (size_t)lg->rows * (size_t)K * sizeof(float));
    for (int i = 0; i < lg->rows; i++) oh[(size_t)i * K + t->labels[i]] = 1.0f;
  }
  return SK_OK;
}

sk_status sk_trainer_step(sk_trainer *t, float *loss, float *grad_norm) {
  sk_status st = fill(t);
  if (st != SK_OK) return st;
  sk_graph *g = t->lg.g;
  /* The gradients where the graph will leave them: no gather, and each
   * thread updates the rows it computed, in the graph's own parallel region
   * (sk_adam_step_graph); nothing is updated if the loss is not finite. */
  sk_adam_part *parts = t->parts;
  for (int i = 0; i < t->lg.n_grads; i++) {
    const int64_t n = sk_node_numel(g, t->lg.grads[i]);
    const int64_t rows = sk_model_tensor_shape(t->m, i)[0];
    parts[i] = (sk_adam_part){sk_graph_data(g, t->lg.grads[i]), sk_model_tensor_offset(t->m, i),
                              (size_t)rows, (size_t)(rows ? n / rows : 0)};
  }
  const float *lp = sk_graph_data(g, t->lg.loss);
  st = sk_adam_step_graph(t->adam, g, lp, sk_model_params(t->m), t->lg.n_grads, parts, grad_norm);
  if (st != SK_OK && st != SK_ERR_NUMERIC) return st;
  const float l = lp[0];
  if (loss) *loss = l;
  if (!isfinite(l))
    return sk__fail(SK_ERR_NUMERIC, "step %lld: the loss is %g", (long long)t->step + 1, l);
  if (st == SK_ERR_NUMERIC) /* name the tensor and element */
    for (int i = 0; i < t->lg.n_grads; i++)
      for (size_t j = 0; j < parts[i].rows * parts[i].cols; j++)
        if (!(fabsf(parts[i].grad[j]) <= 1e18f))
          return sk__fail(SK_ERR_NUMERIC, "step %lld: the gradient of %s is %g at element %zu",
                          (long long)t->step + 1, sk_model_tensor_name(t->m, i), parts[i].grad[j],
                          j);
  if (st != SK_OK) return st;
  t->step++;
  return SK_OK;
}

/* ---- checkpoints ---- */

static sk_status join(char *buf, size_t cap, const char *dir, const char *file) {
  if ((size_t)snprintf(buf, cap, "%s/%s", dir, file) >= cap)
    return sk__fail(SK_ERR_INVALID, "%s: path too long", dir);
  return SK_OK;
}

/* The architecture as one string, so a resume into another model fails. */
static void arch_string(const sk_model *m, char *buf, size_t cap) {
  const sk_model_config *c = sk_model_get_config(m);
  snprintf(buf, cap, "%d/%d/%d/%d/%d/%s", (int)c->kind, c->dim, c->hidden, c->depth, c->classes,
           sk_activation_name(c->act));
}

sk_status sk_trainer_save(sk_trainer *t, const char *dir, const sk_model_info *info) {
  char path[4096];
  sk_status st = join(path, sizeof path, dir, "state.safetensors");
  if (st != SK_OK) return st;
  /* Positions as decimal strings: JSON numbers are doubles and lose bits. */
  sk_dataset_pos pos = sk_dataset_get_pos(t->ds);
  char arch[128], state[768];
  arch_string(t->m, arch, sizeof arch);
  snprintf(state, sizeof state,
           "{\"arch\":\"%s\",\"step\":\"%lld\",\"adam_steps\":\"%lld\",\"data\":\"%llu\",\"noise\":\"%llu\","
           "\"proj\":\"%llu\",\"level\":\"%llu\",\"epoch\":\"%lld\",\"cursor\":\"%lld\","
           "\"epoch_rng\":\"%llu\",\"epoch_rng_seed\":\"%llu\",\"epoch_rng_stream\":\"%llu\"}",
           arch, (long long)t->step, (long long)sk_adam_steps(t->adam),
           (unsigned long long)t->r_data.offset, (unsigned long long)t->r_noise.offset,
           (unsigned long long)t->r_proj.offset, (unsigned long long)t->r_level.offset,
           (long long)pos.epoch, (long long)pos.cursor,
           (unsigned long long)pos.rng_at_epoch_start.offset,
           (unsigned long long)pos.rng_at_epoch_start.seed,
           (unsigned long long)pos.rng_at_epoch_start.stream);
  size_t np = sk_model_num_params(t->m);
  /* Everything a resume needs is in this one file, written atomically, so a
   * crash between the two files below can never pair mismatched halves. */
  sk_named_tensor ts[4] = {{"params", 1, {(int64_t)np}, sk_model_params(t->m)},
                           {"ema", 1, {(int64_t)np}, sk_adam_ema(t->adam)},
                           {"adam.m", 1, {(int64_t)np}, sk_adam_m(t->adam)},
                           {"adam.v", 1, {(int64_t)np}, sk_adam_v(t->adam)}};
  const char *meta[2] = {"scorekit_state", state};
  st = sk_safetensors_save(path, ts, 4, meta, 1);
  if (st != SK_OK) return st;
  st = join(path, sizeof path, dir, "model.safetensors");
  if (st != SK_OK) return st;
  sk_model_info mi = *info;
  mi.steps = t->step;
  return sk_model_save(path, t->m, sk_adam_ema(t->adam), &mi);
}

static int field_u64(const char *json, const char *key, unsigned long long *out) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = strstr(json, pat);
  if (!p) return 0;
  p += strlen(pat);
  char *end;
  *out = strtoull(p, &end, 10);
  return end != p && *end == '"';
}

sk_status sk_trainer_resume(sk_trainer *t, const char *dir) {
  char path[4096];
  sk_status st = join(path, sizeof path, dir, "state.safetensors");
  if (st != SK_OK) return st;
  const size_t np = sk_model_num_params(t->m);
  sk_safetensors *sf = NULL;
  st = sk_safetensors_load(path, &sf);
  if (st != SK_OK) return st;
  const sk_tensor *tp = NULL, *te = NULL, *tm = NULL, *tv = NULL;
  const char *meta = sk_safetensors_meta(sf, "scorekit_state");
  unsigned long long v[11];
  static const char *const keys[11] = {"step", "adam_steps", "data", "noise", "proj", "level",
                                       "epoch", "cursor", "epoch_rng", "epoch_rng_seed",
                                       "epoch_rng_stream"};
  int ok = meta && sk_safetensors_get(sf, "params", &tp) == SK_OK &&
           sk_safetensors_get(sf, "ema", &te) == SK_OK &&
           sk_safetensors_get(sf, "adam.m", &tm) == SK_OK &&
           sk_safetensors_get(sf, "adam.v", &tv) == SK_OK;
  for (int i = 0; ok && i < 11; i++) ok = field_u64(meta, keys[i], &v[i]);
  if (!ok) {
    sk_safetensors_free(sf);
    return sk__fail(SK_ERR_FORMAT, "%s: not a scorekit training state", path);
  }
  char arch[128], want[160];
  arch_string(t->m, arch, sizeof arch);
  snprintf(want, sizeof want, "\"arch\":\"%s\"", arch);
  if (!strstr(meta, want)) {
    sk_safetensors_free(sf);
    return sk__fail(SK_ERR_INVALID, "%s: saved for another architecture than this run's", path);
  }
  if (sk_tensor_numel(tp) != (int64_t)np || sk_tensor_numel(te) != (int64_t)np ||
      sk_tensor_numel(tm) != (int64_t)np || sk_tensor_numel(tv) != (int64_t)np) {
    sk_safetensors_free(sf);
    return sk__fail(SK_ERR_INVALID, "%s: saved for a model of %lld parameters, this one has %zu",
                    path, (long long)sk_tensor_numel(tp), np);
  }
  memcpy(sk_model_params(t->m), sk_tensor_cdata(tp), np * sizeof(float));
  memcpy(sk_adam_ema(t->adam), sk_tensor_cdata(te), np * sizeof(float));
  memcpy(sk_adam_m(t->adam), sk_tensor_cdata(tm), np * sizeof(float));
  memcpy(sk_adam_v(t->adam), sk_tensor_cdata(tv), np * sizeof(float));
  t->step = (int64_t)v[0];
  sk_adam_set_steps(t->adam, (int64_t)v[1]);
  t->r_data.offset = v[2];
  t->r_noise.offset = v[3];
  t->r_proj.offset = v[4];
  t->r_level.offset = v[5];
  sk_dataset_pos pos = {(int64_t)v[6], (int64_t)v[7], {v[9], v[10], v[8]}};
  st = sk_dataset_set_pos(t->ds, pos);
  sk_safetensors_free(sf);
  return st;
}
