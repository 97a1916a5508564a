/* The training loop's step: draw a batch and the objective's randomness from
 * separate counter-based streams, run the loss graph, step Adam; and save or
 * restore everything that makes a resumed run continue bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "io/json.h"
#include "nn/internal.h"
#include "score/internal.h"
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

/* a + b and a × b, at most SIZE_MAX. */
static size_t sat_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }
static size_t sat_mul(size_t a, size_t b) { return b && a > SIZE_MAX / b ? SIZE_MAX : a * b; }

/* Bytes as "1.5 GiB", "12.0 MiB" or "800 KiB". */
static const char *bytes_text(char *buf, size_t cap, size_t bytes) {
  const double b = (double)bytes;
  if (b >= 1024.0 * 1024 * 1024) snprintf(buf, cap, "%.1f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024) snprintf(buf, cap, "%.1f MiB", b / (1024.0 * 1024));
  else snprintf(buf, cap, "%.0f KiB", b / 1024.0);
  return buf;
}

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
  return sk_trainer_new_limited(m, ds, cfg, 0, out);
}

sk_status sk_trainer_new_limited(sk_model *m, sk_dataset *ds, const sk_train_config *cfg,
                                 size_t memory_limit, sk_trainer **out) {
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
  /* Checked here so that a NULL from sk_adam_new below can only mean memory. */
  sk_status st = sk__adam_check(&cfg->adam);
  if (st != SK_OK) return st;
  sk_trainer *t = sk__calloc(1, sizeof *t);
  if (!t) return sk__fail(SK_ERR_NOMEM, "train: out of memory for the trainer");
  t->m = m;
  t->ds = ds;
  t->cfg = *cfg;
  if (laddered) memcpy(t->sigmas, cfg->sigmas, (size_t)cfg->n_sigmas * sizeof(float));
  t->cfg.sigmas = t->sigmas;
  if (t->cfg.projections < 1) t->cfg.projections = 1;
  /* The memory the run takes, against the limit: the weights (the model's,
   * already allocated), the EMA and Adam's two moments, a batch, and the
   * loss graph's arena, whose size is known once it is planned, before it
   * is allocated (so a graph that cannot fit is never touched). */
  size_t np = sk_model_num_params(m);
  const size_t batch_bytes =
      sat_mul((size_t)cfg->batch, sat_add(sat_mul((size_t)mc->dim, sizeof(float)), sizeof(int32_t)));
  const size_t fixed = sat_add(sat_mul(np, 4 * sizeof(float)), batch_bytes);
  size_t arena = 0, arena_limit = 0;
  if (memory_limit) arena_limit = memory_limit > fixed ? memory_limit - fixed : 1;
  st = sk__loss_graph_new(m, o, cfg->batch, t->cfg.projections, arena_limit, &t->lg, &arena);
  if (st == SK_ERR_NOMEM && memory_limit && arena &&
      sat_add(fixed, arena) > memory_limit) {
    char total[32], weights[32], graph[32], limit[32];
    st = sk__fail(SK_ERR_NOMEM,
                  "train: needs about %s, over the limit of %s: %zu parameters × 4 B × 4 "
                  "(weights, EMA, Adam's two moments) = %s, and %s for the loss graph "
                  "(gradients and the activations of a batch of %d)",
                  bytes_text(total, sizeof total, sat_add(fixed, arena)),
                  bytes_text(limit, sizeof limit, memory_limit), np,
                  bytes_text(weights, sizeof weights, sat_mul(np, 4 * sizeof(float))),
                  bytes_text(graph, sizeof graph, arena), cfg->batch);
  }
  if (st != SK_OK) {
    sk__free(t);
    return st;
  }
  t->adam = sk_adam_new(&cfg->adam, np, sk_model_params(m));
  t->batch = sk__malloc((size_t)cfg->batch * (size_t)mc->dim * sizeof(float));
  t->labels = sk__malloc((size_t)cfg->batch * sizeof(int32_t));
  t->parts = sk__malloc((size_t)SK_MAX(1, t->lg.n_grads) * sizeof *t->parts);
  if (!t->adam)
    st = sk__fail(SK_ERR_NOMEM, "train: out of memory for Adam's moments and EMA (3 × %zu floats)",
                  np);
  else if (!t->batch || !t->labels || !t->parts)
    st = sk__fail(SK_ERR_NOMEM, "train: out of memory for a batch of %d", cfg->batch);
  if (st != SK_OK) {
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

/* The counters of the state metadata, in the order they are written. */
enum { N_COUNTERS = 11 };
static const char *const counter_keys[N_COUNTERS] = {
    "step",  "adam_steps", "data",      "noise",          "proj",           "level",
    "epoch", "cursor",     "epoch_rng", "epoch_rng_seed", "epoch_rng_stream"};
/* Those read back into int64_t fields (the rest are RNG offsets and seeds). */
static const unsigned char counter_is_int64[N_COUNTERS] = {1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0};

static void get_counters(const sk_trainer *t, uint64_t v[N_COUNTERS]) {
  const sk_dataset_pos pos = sk_dataset_get_pos(t->ds);
  const uint64_t c[N_COUNTERS] = {
      (uint64_t)t->step,   (uint64_t)sk_adam_steps(t->adam),
      t->r_data.offset,    t->r_noise.offset,
      t->r_proj.offset,    t->r_level.offset,
      (uint64_t)pos.epoch, (uint64_t)pos.cursor,
      pos.rng_at_epoch_start.offset, pos.rng_at_epoch_start.seed,
      pos.rng_at_epoch_start.stream};
  memcpy(v, c, sizeof c);
}

/* The state metadata: {"arch":"...","step":"12",...}, through the same JSON
 * writer as the safetensors header. Counters are decimal strings because a
 * JSON number is a double to most readers and would lose bits past 2^53. */
static sk_status state_json(const sk_trainer *t, sk__jbuf *b) {
  char arch[128], num[32];
  arch_string(t->m, arch, sizeof arch);
  uint64_t v[N_COUNTERS];
  get_counters(t, v);
  sk__jbuf_puts(b, "{\"arch\":");
  sk__jbuf_string(b, arch, strlen(arch));
  for (int i = 0; i < N_COUNTERS; i++) {
    sk__jbuf_puts(b, ",");
    sk__jbuf_string(b, counter_keys[i], strlen(counter_keys[i]));
    sk__jbuf_puts(b, ":");
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)v[i]);
    sk__jbuf_string(b, num, (size_t)n);
  }
  return sk__jbuf_puts(b, "}");
}

sk_status sk_trainer_save(sk_trainer *t, const char *dir, const sk_model_info *info) {
  char path[4096];
  sk_status st = join(path, sizeof path, dir, "state.safetensors");
  if (st != SK_OK) return st;
  sk__jbuf state;
  sk__jbuf_init(&state);
  st = state_json(t, &state);
  if (st != SK_OK) {
    sk__jbuf_free(&state);
    return st;
  }
  size_t np = sk_model_num_params(t->m);
  /* Everything a resume needs is in this one file, written atomically, so a
   * crash between the two files below can never pair mismatched halves. */
  sk_named_tensor ts[4] = {{"params", 1, {(int64_t)np}, sk_model_params(t->m)},
                           {"ema", 1, {(int64_t)np}, sk_adam_ema(t->adam)},
                           {"adam.m", 1, {(int64_t)np}, sk_adam_m(t->adam)},
                           {"adam.v", 1, {(int64_t)np}, sk_adam_v(t->adam)}};
  const char *meta[2] = {"scorekit_state", state.data};
  st = sk_safetensors_save(path, ts, 4, meta, 1);
  sk__jbuf_free(&state);
  if (st != SK_OK) return st;
  st = join(path, sizeof path, dir, "model.safetensors");
  if (st != SK_OK) return st;
  sk_model_info mi = *info;
  mi.steps = t->step;
  return sk_model_save(path, t->m, sk_adam_ema(t->adam), &mi);
}

/* A counter as written by state_json: 1 to 20 decimal digits, nothing else,
 * within uint64_t (and int64_t when `is_int64`). */
static int parse_counter(const char *s, size_t n, int is_int64, uint64_t *out) {
  if (!s || n < 1 || n > 20) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    const uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  if (is_int64 && v > (uint64_t)INT64_MAX) return 0;
  *out = v;
  return 1;
}

/* Reads the state metadata of `path` into v, after checking it was saved
 * for this architecture. */
static sk_status parse_state(const sk_trainer *t, const char *path, const char *meta,
                             uint64_t v[N_COUNTERS]) {
  char what[4200];
  snprintf(what, sizeof what, "%s: training state", path);
  sk__json_doc *doc = NULL;
  sk_status st = sk__json_parse(what, meta, strlen(meta), &doc, NULL);
  if (st != SK_OK) return st;
  const sk__json *root = sk__json_root(doc);
  size_t n;
  const char *arch = sk__json_string(sk__json_get(root, "arch"), &n);
  char want[128];
  arch_string(t->m, want, sizeof want);
  if (!arch) {
    st = sk__fail(SK_ERR_FORMAT, "%s: \"arch\" is missing or not a string", what);
  } else if (n != strlen(want) || memcmp(arch, want, n) != 0) {
    st = sk__fail(SK_ERR_INVALID, "%s: saved for another architecture (%.64s) than this run's (%s)",
                  path, arch, want);
  }
  for (int i = 0; st == SK_OK && i < N_COUNTERS; i++) {
    const char *s = sk__json_string(sk__json_get(root, counter_keys[i]), &n);
    if (!parse_counter(s, n, counter_is_int64[i], &v[i]))
      st = sk__fail(SK_ERR_FORMAT, "%s: \"%s\" is missing or not a decimal string of a counter",
                    what, counter_keys[i]);
  }
  sk__json_doc_free(doc);
  return st;
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
  uint64_t v[N_COUNTERS];
  int ok = meta && sk_safetensors_get(sf, "params", &tp) == SK_OK &&
           sk_safetensors_get(sf, "ema", &te) == SK_OK &&
           sk_safetensors_get(sf, "adam.m", &tm) == SK_OK &&
           sk_safetensors_get(sf, "adam.v", &tv) == SK_OK;
  if (!ok) {
    sk_safetensors_free(sf);
    return sk__fail(SK_ERR_FORMAT, "%s: not a scorekit training state", path);
  }
  st = parse_state(t, path, meta, v);
  if (st != SK_OK) {
    sk_safetensors_free(sf);
    return st;
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
