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
  sk_train_share share; /* rows [first_row, first_row + rows) of each batch */
  float *flat;          /* with a reduce: the gradient (np) and the loss, reduced */
  uint64_t fingerprint; /* of the data (data_fingerprint) */
  float label_dropout;  /* a class-conditional model's (0 for others) */
  int has_mismatch;     /* the last resume refused another run's state */
  sk_run_mismatch mismatch;
};

/* A 64-bit fingerprint of the data set: its size, the bytes of its values
 * and its labels, 8 at a time as little-endian words (an FNV-1a step on the
 * word, folded so the high bits reach the low ones), then splitmix64's
 * finaliser. Not cryptographic: it tells a resume that it was handed other
 * data than its run's. About 5 GB/s. */
static uint64_t fold_bytes(uint64_t h, const unsigned char *p, size_t n) {
  const uint64_t prime = 0x100000001b3ULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = 0;
    for (int k = 7; k >= 0; k--) w = w << 8 | p[i + (size_t)k];
    h = (h ^ w) * prime;
    h ^= h >> 32;
  }
  for (; i < n; i++) h = (h ^ p[i]) * prime;
  return h;
}

static uint64_t data_fingerprint(const sk_dataset *ds) {
  const uint64_t n = (uint64_t)sk_dataset_size(ds), d = (uint64_t)sk_dataset_dim(ds);
  const int32_t *labels = sk_dataset_labels(ds);
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV's offset basis */
  const uint64_t head[3] = {n, d, labels != NULL};
  for (int i = 0; i < 3; i++) h = (h ^ head[i]) * 0x100000001b3ULL;
  h = fold_bytes(h, (const unsigned char *)sk_dataset_x(ds), (size_t)(n * d) * sizeof(float));
  if (labels) h = fold_bytes(h, (const unsigned char *)labels, (size_t)n * sizeof(int32_t));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

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

/* The objectives whose σ comes from the config's ladder: a level of it per
 * row (ncsn, classifier), or a draw between its ends (vesde). */
static int is_laddered(sk_objective o) {
  return o == SK_OBJ_NCSN || o == SK_OBJ_CLASSIFIER || o == SK_OBJ_VESDE;
}

float sk__vesde_sigma(float u, float sigma_max, float sigma_min) {
  return (float)((double)sigma_min * pow((double)sigma_max / (double)sigma_min, (double)u));
}

void sk_trainer_free(sk_trainer *t) {
  if (!t) return;
  sk_loss_graph_free(&t->lg);
  sk_adam_free(t->adam);
  sk__free(t->batch);
  sk__free(t->labels);
  sk__free(t->parts);
  sk__free(t->flat);
  sk__free(t);
}

sk_status sk_trainer_new(sk_model *m, sk_dataset *ds, const sk_train_config *cfg, sk_trainer **out) {
  return sk_trainer_new_limited(m, ds, cfg, 0, out);
}

sk_status sk_trainer_new_limited(sk_model *m, sk_dataset *ds, const sk_train_config *cfg,
                                 size_t memory_limit, sk_trainer **out) {
  return sk_trainer_new_share(m, ds, cfg, NULL, memory_limit, out);
}

sk_status sk_trainer_new_share(sk_model *m, sk_dataset *ds, const sk_train_config *cfg,
                               const sk_train_share *share, size_t memory_limit,
                               sk_trainer **out) {
  *out = NULL;
  const sk_model_config *mc = sk_model_get_config(m);
  const sk_objective o = cfg->objective;
  if (o >= SK_OBJ_COUNT) return sk__fail(SK_ERR_INVALID, "train: unknown objective");
  if (sk_dataset_dim(ds) != mc->dim)
    return sk__fail(SK_ERR_SHAPE, "train: data has %d dimensions, the model %d", sk_dataset_dim(ds),
                    mc->dim);
  if (cfg->batch < 1 || cfg->batch > (1 << 20))
    return sk__fail(SK_ERR_INVALID, "train: batch size %d outside 1..1048576", cfg->batch);
  const int laddered = is_laddered(o);
  sk_status st;
  if (laddered) {
    const int least = o == SK_OBJ_VESDE ? 2 : 1;
    if (cfg->n_sigmas < least || cfg->n_sigmas > SK_MAX_LEVELS || !cfg->sigmas)
      return sk__fail(SK_ERR_INVALID, "train: %s needs %d..%d noise levels", sk_objective_name(o),
                      least, SK_MAX_LEVELS);
    for (int i = 0; i < cfg->n_sigmas; i++) {
      if (!(cfg->sigmas[i] > 0) || !isfinite(cfg->sigmas[i]))
        return sk__fail(SK_ERR_INVALID, "train: noise level %d is %g; levels must be positive", i,
                        cfg->sigmas[i]);
      /* Strictly: a model file's ladder decreases (sk_model_save, the loader). */
      if (i > 0 && !(cfg->sigmas[i] < cfg->sigmas[i - 1]))
        return sk__fail(SK_ERR_INVALID, "train: noise level %d (%g) is not below level %d (%g); "
                        "the ladder decreases, largest first", i, cfg->sigmas[i], i - 1,
                        cfg->sigmas[i - 1]);
    }
    /* vesde draws σ between the ladder's ends: they must make a range. */
    if (o == SK_OBJ_VESDE && !(cfg->sigmas[0] > cfg->sigmas[cfg->n_sigmas - 1]))
      return sk__fail(SK_ERR_INVALID, "train: vesde needs σ_max %g above σ_min %g (the ladder's "
                      "first and last levels)", cfg->sigmas[0], cfg->sigmas[cfg->n_sigmas - 1]);
  } else if ((o == SK_OBJ_DSM || mc->kind != SK_MODEL_MLP) && !(cfg->sigma > 0 && isfinite(cfg->sigma))) {
    return sk__fail(SK_ERR_INVALID, "train: σ must be positive, got %g", cfg->sigma);
  }
  st = sk__cond_check(mc, ds);
  if (st != SK_OK) return st;
  const sk_train_share whole = {0, cfg->batch, NULL, NULL};
  if (!share) share = &whole;
  if (share->rows < 1 || share->first_row < 0 || share->first_row > cfg->batch - share->rows)
    return sk__fail(SK_ERR_INVALID,
                    "train: this process's share of the batch, %d rows from row %d, is not a "
                    "non-empty part of the batch of %d", share->rows, share->first_row, cfg->batch);
  if (o == SK_OBJ_CLASSIFIER) {
    if (sk_dataset_classes(ds) < 1 || !sk_dataset_labels(ds))
      return sk__fail(SK_ERR_INVALID, "train: the classifier needs labelled data");
    if (sk_dataset_classes(ds) > mc->classes)
      return sk__fail(SK_ERR_INVALID, "train: data has %d classes, the classifier %d",
                      sk_dataset_classes(ds), mc->classes);
  }
  /* Checked here so that a NULL from sk_adam_new below can only mean memory. */
  st = sk__adam_check(&cfg->adam);
  if (st != SK_OK) return st;
  sk_trainer *t = sk__calloc(1, sizeof *t);
  if (!t) return sk__fail(SK_ERR_NOMEM, "train: out of memory for the trainer");
  t->m = m;
  t->ds = ds;
  t->cfg = *cfg;
  t->share = *share;
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
  st = sk__loss_graph_new(m, o, share->rows, t->cfg.projections, arena_limit, &t->lg, &arena);
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
                  bytes_text(graph, sizeof graph, arena), share->rows);
  }
  if (st != SK_OK) {
    sk__free(t);
    return st;
  }
  t->adam = sk_adam_new(&cfg->adam, np, sk_model_params(m));
  t->batch = sk__malloc((size_t)cfg->batch * (size_t)mc->dim * sizeof(float));
  t->labels = sk__malloc((size_t)cfg->batch * sizeof(int32_t));
  t->parts = sk__malloc((size_t)SK_MAX(1, t->lg.n_grads) * sizeof *t->parts);
  if (share->reduce) t->flat = sk__calloc(np + 1, sizeof(float));
  if (!t->adam)
    st = sk__fail(SK_ERR_NOMEM, "train: out of memory for Adam's moments and EMA (3 × %zu floats)",
                  np);
  else if (!t->batch || !t->labels || !t->parts || (share->reduce && !t->flat))
    st = sk__fail(SK_ERR_NOMEM, "train: out of memory for a batch of %d", cfg->batch);
  if (st != SK_OK) {
    sk_trainer_free(t);
    return st;
  }
  t->r_data = sk_rng_make(cfg->seed, STREAM_DATA);
  t->r_noise = sk_rng_make(cfg->seed, STREAM_NOISE);
  t->r_proj = sk_rng_make(cfg->seed, STREAM_PROJ);
  t->r_level = sk_rng_make(cfg->seed, STREAM_LEVEL);
  t->fingerprint = data_fingerprint(ds);
  t->label_dropout = sk__cond_model(mc) ? 0.1f : 0.0f;
  /* The trainer owns the batch stream from here: a data set another
   * trainer drew from starts over, so that the batches are a fresh run's and
   * the position saved with this trainer's RNG is one its resume reaches. */
  const sk_dataset_pos start = {0, 0, {0, 0, 0}};
  st = sk_dataset_set_pos(ds, start);
  if (st != SK_OK) {
    sk_trainer_free(t);
    return st;
  }
  *out = t;
  return SK_OK;
}

int64_t sk_trainer_steps(const sk_trainer *t) { return t->step; }

sk_status sk_trainer_set_label_dropout(sk_trainer *t, float p) {
  if (t->step > 0)
    return sk__fail(SK_ERR_STATE, "train: label dropout is set before the first step");
  if (!(p >= 0 && p <= 1))
    return sk__fail(SK_ERR_INVALID, "train: label dropout %g is not a probability in [0, 1]", p);
  if (!sk__cond_model(sk_model_get_config(t->m)))
    return sk__fail(SK_ERR_INVALID, "train: label dropout applies to a class-conditional model");
  t->label_dropout = p;
  return SK_OK;
}

float sk_trainer_label_dropout(const sk_trainer *t) { return t->label_dropout; }
const float *sk_trainer_ema(sk_trainer *t) { return sk_adam_ema(t->adam); }

/* Values [skip, skip + n) of a draw of `all` values from r, into out; r
 * moves past all of them, as that draw would have moved it. Value i of a
 * stream is a pure function of its index (block i / 4, lane i % 4), so a
 * share of a batch gets the bits the whole batch's draw gives its rows. */
static void draw_part(sk_rng *r, void (*draw)(sk_rng *, float *, size_t), float *out,
                      size_t skip, size_t n, size_t all) {
  const uint64_t start = (r->offset + 3) / 4 * 4;
  sk_rng q = *r;
  q.offset = start + skip / 4 * 4;
  size_t done = 0;
  if (skip % 4 && n) { /* the share starts inside a block */
    float v[4];
    draw(&q, v, 4);
    done = SK_MIN(4 - skip % 4, n);
    memcpy(out, v + skip % 4, done * sizeof(float));
  }
  if (n > done) draw(&q, out + done, n - done);
  r->offset = start + (all + 3) / 4 * 4;
}

/* Fills the loss graph's inputs for one step: the share's rows of the
 * batch. The whole batch's rows and levels are drawn (a few floats a row;
 * the data and level streams advance row by row), the noise and
 * projections of the share only. */
static sk_status fill(sk_trainer *t) {
  sk_loss_graph *lg = &t->lg;
  sk_graph *g = lg->g;
  const int d = sk_dataset_dim(t->ds), B = t->cfg.batch, R = t->share.rows, M = lg->rows / R;
  const size_t first = (size_t)t->share.first_row * (size_t)M; /* the share's first graph row */
  sk_status st = sk_dataset_batch(t->ds, &t->r_data, B, t->batch, t->labels);
  if (st != SK_OK) return st;
  const float *xb = t->batch + (size_t)t->share.first_row * (size_t)d;
  const int32_t *yb = t->labels + t->share.first_row;
  float *x = sk_graph_data(g, lg->x);
  for (int b = 0; b < R; b++)
    for (int k = 0; k < M; k++)
      memcpy(x + ((size_t)b * M + k) * d, xb + (size_t)b * d, (size_t)d * sizeof(float));
  const size_t nd = (size_t)lg->rows * (size_t)d, all = (size_t)B * (size_t)M * (size_t)d;
  if (lg->z != SK_NONE)
    draw_part(&t->r_noise, sk_rng_normal, sk_graph_data(g, lg->z), first * (size_t)d, nd, all);
  if (lg->v != SK_NONE)
    draw_part(&t->r_proj, t->cfg.rademacher ? sk_rng_rademacher : sk_rng_normal,
              sk_graph_data(g, lg->v), first * (size_t)d, nd, all);
  if (lg->sigma != SK_NONE) {
    float *s = sk_graph_data(g, lg->sigma);
    const sk_objective o = t->cfg.objective;
    if (o == SK_OBJ_VESDE) {
      /* Row i of step k takes the level stream's draw k·rows + i (rows of
       * the whole batch), whatever the threads and processes: log-uniform
       * between the ladder's ends. */
      const float smax = t->sigmas[0], smin = t->sigmas[t->cfg.n_sigmas - 1];
      draw_part(&t->r_level, sk_rng_uniform, s, first, (size_t)lg->rows, (size_t)B * (size_t)M);
      for (int i = 0; i < lg->rows; i++) s[i] = sk__vesde_sigma(s[i], smax, smin);
    } else {
      const int laddered = is_laddered(o);
      /* A level takes one draw, or more after a rejection: row by row. */
      for (size_t i = 0; laddered && i < (size_t)B * (size_t)M; i++) {
        const float level = t->sigmas[sk_rng_below(&t->r_level, (uint32_t)t->cfg.n_sigmas)];
        if (i >= first && i < first + (size_t)lg->rows) s[i - first] = level;
      }
      for (int i = 0; !laddered && i < lg->rows; i++) s[i] = t->cfg.sigma;
    }
  }
  if (lg->onehot != SK_NONE) {
    const sk_model_config *mc = sk_model_get_config(t->m);
    /* A classifier's targets, or a conditional model's labels (K + 1
     * columns, the last "no label"; each row's label dropped with
     * probability label_dropout, by a draw fixed by the step and the row). */
    const int cond = sk__cond_model(mc), K = mc->classes + cond;
    float *oh = sk_graph_data(g, lg->onehot);
    memset(oh, 0, (size_t)lg->rows * (size_t)K * sizeof(float));
    for (int i = 0; i < lg->rows; i++) {
      /* The draw is indexed by the row of the whole batch, so that a share
       * drops the labels the whole batch would. */
      const int b = i / M, row = t->share.first_row + b;
      const int drop = cond && sk__label_dropped(t->cfg.seed, t->step, row, t->label_dropout);
      oh[(size_t)i * K + (drop ? K - 1 : yb[b])] = 1.0f;
    }
  }
  return SK_OK;
}

/* With a share: this process's gradient and loss, scaled by rows / batch,
 * into one buffer in the parameters' order; the reduction sums them over the
 * processes; then the parts and the loss point into the sums. */
static sk_status reduce_step(sk_trainer *t, int n_parts, sk_adam_part *parts, const float **lp) {
  const size_t np = sk_model_num_params(t->m);
  const float scale = (float)t->share.rows / (float)t->cfg.batch;
  float *flat = t->flat;
  memset(flat, 0, np * sizeof(float));
  for (int i = 0; i < n_parts; i++) {
    const size_t n = parts[i].rows * parts[i].cols;
    float *dst = flat + parts[i].offset;
    for (size_t j = 0; j < n; j++) dst[j] = scale * parts[i].grad[j];
  }
  flat[np] = scale * **lp;
  sk_status st = t->share.reduce(t->share.ctx, flat, np + 1);
  if (st != SK_OK) return st;
  for (int i = 0; i < n_parts; i++) parts[i].grad = flat + parts[i].offset;
  *lp = flat + np;
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
  int n_parts = 0, tensor[128];
  for (int i = 0; i < t->lg.n_grads && n_parts < 128; i++) {
    /* A fixed tensor (a U-Net's Fourier frequencies) is not trained: Adam
     * leaves its weights and its EMA as they are. */
    if (!sk_model_tensor_trainable(t->m, i)) continue;
    const int64_t n = sk_node_numel(g, t->lg.grads[i]);
    const int64_t rows = sk_model_tensor_shape(t->m, i)[0];
    tensor[n_parts] = i;
    parts[n_parts++] = (sk_adam_part){sk_graph_data(g, t->lg.grads[i]),
                                      sk_model_tensor_offset(t->m, i), (size_t)rows,
                                      (size_t)(rows ? n / rows : 0)};
  }
  const float *lp = sk_graph_data(g, t->lg.loss);
  if (t->share.reduce) {
    st = sk_graph_run(g);
    if (st == SK_OK) st = reduce_step(t, n_parts, parts, &lp);
    if (st == SK_OK) /* the parts now point into the reduced gradient */
      st = isfinite(*lp) ? sk_adam_step_parts(t->adam, sk_model_params(t->m), n_parts, parts,
                                              grad_norm)
                         : SK_ERR_NUMERIC;
  } else {
    st = sk_adam_step_graph(t->adam, g, lp, sk_model_params(t->m), n_parts, parts, grad_norm);
  }
  if (st != SK_OK && st != SK_ERR_NUMERIC) return st;
  const float l = lp[0];
  if (loss) *loss = l;
  if (!isfinite(l))
    return sk__fail(SK_ERR_NUMERIC, "step %lld: the loss is %g", (long long)t->step + 1, l);
  if (st == SK_ERR_NUMERIC) /* name the tensor and element */
    for (int i = 0; i < n_parts; i++)
      for (size_t j = 0; j < parts[i].rows * parts[i].cols; j++)
        if (!(fabsf(parts[i].grad[j]) <= 1e18f))
          return sk__fail(SK_ERR_NUMERIC, "step %lld: the gradient of %s is %g at element %zu",
                          (long long)t->step + 1, sk_model_tensor_name(t->m, tensor[i]),
                          parts[i].grad[j], j);
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
  int n = snprintf(buf, cap, "%d/%d/%d/%d/%d/%s", (int)c->kind, c->dim, c->hidden, c->depth,
                   c->classes, sk_activation_name(c->act));
  const sk_unet_config *u = sk_model_get_unet(m);
  if (u && n > 0 && (size_t)n < cap)
    snprintf(buf + n, cap - (size_t)n, "/%d,%d,%d,%d/%dx%dx%d/%d/%.9g", u->channels[0],
             u->channels[1], u->channels[2], u->channels[3], u->image[0], u->image[1],
             u->image[2], u->embed, (double)u->embed_scale);
  const sk_convnet_config *v = sk_model_get_convnet(m);
  if (v && n > 0 && (size_t)n < cap)
    snprintf(buf + n, cap - (size_t)n, "/%d,%d,%d/%dx%dx%d/%d/%.9g", v->channels[0],
             v->channels[1], v->channels[2], v->image[0], v->image[1], v->image[2], v->embed,
             (double)v->embed_scale);
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

/* The largest step or epoch count a state may hold: 2^53, the integers any
 * JSON reader holds exactly, and more steps than any run takes. */
#define MAX_COUNT (UINT64_C(1) << 53)

/* Whether the trainer's σ shapes its run: dsm's noise, or the level a
 * noise-conditional model is trained at by a single-level objective. */
static int uses_sigma(const sk_trainer *t) {
  const sk_objective o = t->cfg.objective;
  return o == SK_OBJ_DSM || (!is_laddered(o) && sk_model_get_config(t->m)->kind != SK_MODEL_MLP);
}

static int uses_projections(sk_objective o) { return o == SK_OBJ_SSM || o == SK_OBJ_SSM_VR; }

/* The optimiser's settings in the state's "run", in this order. */
enum { N_ADAM = 6 };
static const char *const adam_keys[N_ADAM] = {"lr", "beta1", "beta2", "eps", "clip", "ema"};

static void adam_values(const sk_adam_config *a, float v[N_ADAM]) {
  const float c[N_ADAM] = {a->lr, a->beta1, a->beta2, a->eps, a->clip_norm, a->ema_rate};
  memcpy(v, c, sizeof c);
}

/* The state metadata: {"arch":"...","step":"12",...,"run":{...}}, through
 * the same JSON writer as the safetensors header. Counters are decimal
 * strings because a JSON number is a double to most readers and would lose
 * bits past 2^53 (so is the seed). "run" holds what defines the run, which a
 * resume must match: the objective and its settings, the batch size, the
 * seed, the optimiser's settings and the data's size and fingerprint. */
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
  const sk_train_config *c = &t->cfg;
  const char *obj = sk_objective_name(c->objective);
  sk__jbuf_puts(b, ",\"run\":{\"objective\":");
  sk__jbuf_string(b, obj, strlen(obj));
  sk__jbuf_puts(b, ",\"sigmas\":[");
  const int ns = is_laddered(c->objective) ? c->n_sigmas : 0;
  for (int i = 0; i < ns; i++) {
    if (i) sk__jbuf_puts(b, ",");
    sk__jbuf_float(b, t->sigmas[i]);
  }
  sk__jbuf_puts(b, "],\"sigma\":");
  sk__jbuf_float(b, uses_sigma(t) ? c->sigma : 0.0f);
  sk__jbuf_puts(b, ",\"batch\":");
  sk__jbuf_int(b, c->batch);
  sk__jbuf_puts(b, ",\"projections\":");
  sk__jbuf_int(b, c->projections);
  sk__jbuf_puts(b, c->rademacher ? ",\"rademacher\":true" : ",\"rademacher\":false");
  int n = snprintf(num, sizeof num, "%llu", (unsigned long long)c->seed);
  sk__jbuf_puts(b, ",\"seed\":");
  sk__jbuf_string(b, num, (size_t)n);
  float av[N_ADAM];
  adam_values(&c->adam, av);
  for (int i = 0; i < N_ADAM; i++) {
    sk__jbuf_puts(b, ",");
    sk__jbuf_string(b, adam_keys[i], strlen(adam_keys[i]));
    sk__jbuf_puts(b, ":");
    sk__jbuf_float(b, av[i]);
  }
  sk__jbuf_puts(b, ",\"rows\":");
  sk__jbuf_int(b, sk_dataset_size(t->ds));
  sk__jbuf_puts(b, ",\"dim\":");
  sk__jbuf_int(b, sk_dataset_dim(t->ds));
  sk__jbuf_puts(b, ",\"labels\":");
  sk__jbuf_int(b, sk_dataset_labels(t->ds) ? sk_dataset_classes(t->ds) : 0);
  n = snprintf(num, sizeof num, "%016llx", (unsigned long long)t->fingerprint);
  sk__jbuf_puts(b, ",\"fingerprint\":");
  sk__jbuf_string(b, num, (size_t)n);
  /* Only a class-conditional run has one (states of other runs stay as they were). */
  if (sk__cond_model(sk_model_get_config(t->m))) {
    sk__jbuf_puts(b, ",\"label_dropout\":");
    sk__jbuf_float(b, t->label_dropout);
  }
  return sk__jbuf_puts(b, "}}");
}

sk_status sk_trainer_save(sk_trainer *t, const char *dir, const sk_model_info *info) {
  if (!t || !dir)
    return sk__fail(SK_ERR_INVALID, "sk_trainer_save: NULL %s", !t ? "trainer" : "directory");
  char path[4096], model_path[4096];
  sk_status st = join(model_path, sizeof model_path, dir, "model.safetensors");
  if (st == SK_OK) st = join(path, sizeof path, dir, "state.safetensors");
  if (st != SK_OK) return st;
  sk_model_info mi;
  if (info) { /* checked before the state is written: all or nothing */
    mi = *info;
    mi.steps = t->step;
    st = sk__model_info_check(model_path, t->m, &mi);
    if (st != SK_OK) return st;
  }
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
  return sk_model_save(model_path, t->m, sk_adam_ema(t->adam), info ? &mi : NULL);
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

/* The saved run ("run" of the state), read and range-checked. */
typedef struct saved_run {
  sk_objective objective;
  int n_sigmas;
  float sigmas[SK_MAX_LEVELS];
  float sigma;
  int64_t batch, projections, rows, dim, labels;
  bool rademacher;
  uint64_t seed, fingerprint;
  float adam[N_ADAM];
  float label_dropout; /* 0 when absent (a run of an unconditional model) */
} saved_run;

/* A number of "run" that is finite as a float and within [lo, hi]. */
static int run_float(const sk__json *run, const char *key, double lo, double hi, float *out) {
  double v;
  if (!sk__json_number(sk__json_get(run, key), &v) || !(v >= lo && v <= hi)) return 0;
  const float f = (float)v;
  if (!isfinite(f)) return 0;
  *out = f;
  return 1;
}

static int run_int(const sk__json *run, const char *key, int64_t lo, int64_t hi, int64_t *out) {
  int64_t v;
  if (!sk__json_int(sk__json_get(run, key), &v) || v < lo || v > hi) return 0;
  *out = v;
  return 1;
}

static sk_status bad_run_field(const char *what, const char *key, const char *expected) {
  return sk__fail(SK_ERR_FORMAT, "%s: \"run.%s\" is missing or not %s", what, key, expected);
}

static sk_status parse_run(const sk__json *run, const char *what, saved_run *r) {
  size_t n;
  const char *obj = sk__json_string(sk__json_get(run, "objective"), &n);
  r->objective = obj && strlen(obj) == n ? sk_objective_parse(obj) : SK_OBJ_COUNT;
  if (r->objective == SK_OBJ_COUNT) return bad_run_field(what, "objective", "an objective's name");
  const sk__json *sig = sk__json_get(run, "sigmas");
  if (sk__json_type(sig) != SK__JSON_ARRAY || sk__json_len(sig) > SK_MAX_LEVELS)
    return bad_run_field(what, "sigmas", "an array of at most 1024 noise levels");
  r->n_sigmas = (int)sk__json_len(sig);
  for (int i = 0; i < r->n_sigmas; i++) {
    double v;
    if (!sk__json_number(sk__json_at(sig, (size_t)i), &v) || !(v > 0) || !isfinite((float)v) ||
        !((float)v > 0))
      return sk__fail(SK_ERR_FORMAT, "%s: \"run.sigmas\"[%d] is not a positive float", what, i);
    r->sigmas[i] = (float)v;
  }
  if (!run_float(run, "sigma", 0, 1e30, &r->sigma))
    return bad_run_field(what, "sigma", "a float >= 0");
  if (!run_int(run, "batch", 1, 1 << 20, &r->batch))
    return bad_run_field(what, "batch", "an integer in 1..1048576");
  if (!run_int(run, "projections", 1, 1 << 24, &r->projections))
    return bad_run_field(what, "projections", "an integer in 1..16777216");
  if (!sk__json_bool(sk__json_get(run, "rademacher"), &r->rademacher))
    return bad_run_field(what, "rademacher", "true or false");
  const char *seed = sk__json_string(sk__json_get(run, "seed"), &n);
  if (!parse_counter(seed, n, 0, &r->seed))
    return bad_run_field(what, "seed", "a decimal string of a 64-bit seed");
  static const double lo[N_ADAM] = {1e-30, 0, 0, 1e-30, 0, 0}, hi[N_ADAM] = {1e30, 1, 1, 1e30, 1e30, 1};
  for (int i = 0; i < N_ADAM; i++)
    if (!run_float(run, adam_keys[i], lo[i], hi[i], &r->adam[i]))
      return bad_run_field(what, adam_keys[i], "a number in range");
  sk_adam_config ac = {r->adam[0], r->adam[1], r->adam[2], r->adam[3], r->adam[4], r->adam[5]};
  if (sk__adam_check(&ac) != SK_OK)
    return sk__fail(SK_ERR_FORMAT, "%s: \"run\" holds optimiser settings out of range: %s", what,
                    sk_last_error());
  if (!run_int(run, "rows", 1, INT64_C(0xffffffff), &r->rows))
    return bad_run_field(what, "rows", "an integer in 1..2^32-1");
  if (!run_int(run, "dim", 1, 1 << 30, &r->dim))
    return bad_run_field(what, "dim", "a positive integer");
  if (!run_int(run, "labels", 0, (1 << 24) + 1, &r->labels))
    return bad_run_field(what, "labels", "a number of classes");
  const char *fp = sk__json_string(sk__json_get(run, "fingerprint"), &n);
  int hex = fp && n == 16;
  for (size_t i = 0; hex && i < n; i++)
    hex = (fp[i] >= '0' && fp[i] <= '9') || (fp[i] >= 'a' && fp[i] <= 'f');
  if (!hex) return bad_run_field(what, "fingerprint", "16 hexadecimal digits");
  r->fingerprint = strtoull(fp, NULL, 16);
  r->label_dropout = 0;
  if (sk__json_get(run, "label_dropout") && !run_float(run, "label_dropout", 0, 1, &r->label_dropout))
    return bad_run_field(what, "label_dropout", "a probability");
  return SK_OK;
}

/* Records that the state is another run's and fails naming the setting. */
static sk_status differs(sk_trainer *t, const char *path, const char *setting, const char *ours,
                         const char *saved) {
  t->has_mismatch = 1;
  snprintf(t->mismatch.setting, sizeof t->mismatch.setting, "%s", setting);
  snprintf(t->mismatch.ours, sizeof t->mismatch.ours, "%s", ours);
  snprintf(t->mismatch.saved, sizeof t->mismatch.saved, "%s", saved);
  return sk__fail(SK_ERR_INVALID, "%s: %s %s differs from the run's %s", path, setting, ours,
                  saved);
}

/* Two floats that differ, as text that tells them apart. */
static sk_status float_differs(sk_trainer *t, const char *path, const char *setting, float ours,
                               float saved) {
  char a[48], b[48];
  snprintf(a, sizeof a, "%g", (double)ours);
  snprintf(b, sizeof b, "%g", (double)saved);
  if (!strcmp(a, b)) {
    snprintf(a, sizeof a, "%.9g", (double)ours);
    snprintf(b, sizeof b, "%.9g", (double)saved);
  }
  return differs(t, path, setting, a, b);
}

static sk_status int_differs(sk_trainer *t, const char *path, const char *setting,
                             long long ours, long long saved) {
  char a[32], b[32];
  snprintf(a, sizeof a, "%lld", ours);
  snprintf(b, sizeof b, "%lld", saved);
  return differs(t, path, setting, a, b);
}

static void ladder_text(char *buf, size_t cap, int n, const float *s) {
  if (n == 0) snprintf(buf, cap, "(none)");
  else if (n == 1) snprintf(buf, cap, "1 level %g", (double)s[0]);
  else snprintf(buf, cap, "%d levels %g ... %g", n, (double)s[0], (double)s[n - 1]);
}

/* The architecture strings differ: name the first part that does (kind,
 * dim, hidden, depth, classes, activation; "arch" for anything after). */
static sk_status arch_differs(sk_trainer *t, const char *path, const char *ours,
                              const char *saved) {
  static const char *const names[6] = {"model", "dim", "hidden", "depth", "classes", "activation"};
  static const char *const kinds[SK_MODEL_KIND_COUNT] = {
      [SK_MODEL_MLP] = "mlp", [SK_MODEL_NCMLP] = "ncmlp", [SK_MODEL_CLASSIFIER] = "classifier",
      [SK_MODEL_UNET] = "unet", [SK_MODEL_CONVNET] = "convnet"};
  const char *a = ours, *b = saved;
  for (int part = 0; part < 6; part++) {
    const size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
    if (la != lb || memcmp(a, b, la) != 0) {
      char x[96], y[96];
      snprintf(x, sizeof x, "%.*s", (int)SK_MIN(la, 90), a);
      snprintf(y, sizeof y, "%.*s", (int)SK_MIN(lb, 90), b);
      for (int k = 0; part == 0 && k < SK_MODEL_KIND_COUNT; k++) {
        char num[4];
        snprintf(num, sizeof num, "%d", k);
        if (!strcmp(x, num)) snprintf(x, sizeof x, "%s", kinds[k]);
        if (!strcmp(y, num)) snprintf(y, sizeof y, "%s", kinds[k]);
      }
      return differs(t, path, names[part], x, y);
    }
    if (!a[la] || !b[lb]) break;
    a += la + 1;
    b += lb + 1;
  }
  return differs(t, path, "arch", ours, saved);
}

/* The saved run against this trainer, in the order of the header's list. */
static sk_status same_run(sk_trainer *t, const char *path, const char *arch,
                          const saved_run *r) {
  const sk_train_config *c = &t->cfg;
  char want[128], x[96], y[96];
  if (r->objective != c->objective)
    return differs(t, path, "objective", sk_objective_name(c->objective),
                   sk_objective_name(r->objective));
  arch_string(t->m, want, sizeof want);
  if (strcmp(arch, want) != 0) return arch_differs(t, path, want, arch);
  if (r->seed != c->seed) {
    snprintf(x, sizeof x, "%llu", (unsigned long long)c->seed);
    snprintf(y, sizeof y, "%llu", (unsigned long long)r->seed);
    return differs(t, path, "seed", x, y);
  }
  if (r->rows != sk_dataset_size(t->ds))
    return int_differs(t, path, "rows", sk_dataset_size(t->ds), r->rows);
  const int labels = sk_dataset_labels(t->ds) ? sk_dataset_classes(t->ds) : 0;
  if (r->labels != labels || r->dim != sk_dataset_dim(t->ds))
    return int_differs(t, path, "labels", labels, r->labels);
  if (r->fingerprint != t->fingerprint) {
    snprintf(x, sizeof x, "fingerprint %016llx", (unsigned long long)t->fingerprint);
    snprintf(y, sizeof y, "%016llx", (unsigned long long)r->fingerprint);
    return differs(t, path, "data", x, y);
  }
  if (is_laddered(c->objective)) {
    int same = r->n_sigmas == c->n_sigmas;
    for (int i = 0; same && i < r->n_sigmas; i++) same = r->sigmas[i] == t->sigmas[i];
    if (!same) {
      ladder_text(x, sizeof x, c->n_sigmas, t->sigmas);
      ladder_text(y, sizeof y, r->n_sigmas, r->sigmas);
      if (!strcmp(x, y)) /* the same ends: name the first level that differs */
        for (int i = 0; i < r->n_sigmas; i++)
          if (r->sigmas[i] != t->sigmas[i]) {
            snprintf(x, sizeof x, "(level %d) %.9g", i + 1, (double)t->sigmas[i]);
            snprintf(y, sizeof y, "%.9g", (double)r->sigmas[i]);
            break;
          }
      return differs(t, path, "sigmas", x, y);
    }
  }
  if (uses_sigma(t) && r->sigma != c->sigma) return float_differs(t, path, "sigma", c->sigma, r->sigma);
  if (r->batch != c->batch) return int_differs(t, path, "batch", c->batch, r->batch);
  if (uses_projections(c->objective)) {
    if (r->projections != c->projections)
      return int_differs(t, path, "projections", c->projections, r->projections);
    if (r->rademacher != (c->rademacher != 0))
      return differs(t, path, "rademacher", c->rademacher ? "on" : "off",
                     r->rademacher ? "on" : "off");
  }
  float av[N_ADAM];
  adam_values(&c->adam, av);
  for (int i = 0; i < N_ADAM; i++)
    if (av[i] != r->adam[i]) return float_differs(t, path, adam_keys[i], av[i], r->adam[i]);
  if (r->label_dropout != t->label_dropout)
    return float_differs(t, path, "label_dropout", t->label_dropout, r->label_dropout);
  return SK_OK;
}

/* Where drawing one epoch's order of n rows from the data stream at `from`
 * leaves it: sk_dataset_batch's Fisher-Yates takes sk_rng_below(i + 1) for
 * i = n - 1 down to 1, and nothing else draws from that stream. */
static uint64_t order_drawn(sk_rng from, int64_t n) {
  for (int64_t i = n - 1; i > 0; i--) (void)sk_rng_below(&from, (uint32_t)(i + 1));
  return from.offset;
}

/* Reads the state metadata of `path` into v, after checking every field and
 * that it was saved by this trainer's run. */
static sk_status parse_state(sk_trainer *t, const char *path, const char *meta,
                             uint64_t v[N_COUNTERS]) {
  char what[4200];
  snprintf(what, sizeof what, "%s: training state", path);
  sk__json_doc *doc = NULL;
  sk_status st = sk__json_parse(what, meta, strlen(meta), &doc, NULL);
  if (st != SK_OK) return st;
  const sk__json *root = sk__json_root(doc);
  size_t n;
  const char *arch = sk__json_string(sk__json_get(root, "arch"), &n);
  const sk__json *run = sk__json_get(root, "run");
  saved_run *r = sk__malloc(sizeof *r);
  if (!r) {
    st = sk__fail(SK_ERR_NOMEM, "%s: out of memory", what);
  } else if (!arch || n != strlen(arch) || n > 127) {
    st = sk__fail(SK_ERR_FORMAT, "%s: \"arch\" is missing or not a string", what);
  } else if (!run) {
    st = sk__fail(SK_ERR_FORMAT,
                  "%s: no \"run\": saved without the settings of its run (by an older scorekit), "
                  "so a resume cannot check that it continues the same run; start it again",
                  what);
  } else if (sk__json_type(run) != SK__JSON_OBJECT) {
    st = sk__fail(SK_ERR_FORMAT, "%s: \"run\" is not an object", what);
  } else {
    st = parse_run(run, what, r);
  }
  for (int i = 0; st == SK_OK && i < N_COUNTERS; i++) {
    const char *s = sk__json_string(sk__json_get(root, counter_keys[i]), &n);
    if (!parse_counter(s, n, counter_is_int64[i], &v[i]))
      st = sk__fail(SK_ERR_FORMAT, "%s: \"%s\" is missing or not a decimal string of a counter",
                    what, counter_keys[i]);
  }
  if (st == SK_OK) st = same_run(t, path, arch, r);
  /* The counters' ranges and relations: every state a trainer writes has
   * them, and a step from one that lacks them could overflow a count. */
  const uint64_t step = v[0], adam_steps = v[1], data = v[2], epoch = v[6], cursor = v[7],
                 erng = v[8], erng_seed = v[9], erng_stream = v[10];
  if (st != SK_OK) {
  } else if (step > MAX_COUNT) {
    st = sk__fail(SK_ERR_FORMAT, "%s: \"step\" %llu is beyond 2^53", what, (unsigned long long)step);
  } else if (adam_steps != step) {
    st = sk__fail(SK_ERR_FORMAT, "%s: \"adam_steps\" %llu differs from \"step\" %llu", what,
                  (unsigned long long)adam_steps, (unsigned long long)step);
  } else if (epoch > MAX_COUNT) {
    st = sk__fail(SK_ERR_FORMAT, "%s: \"epoch\" %llu is beyond 2^53", what,
                  (unsigned long long)epoch);
  } else if (cursor > (uint64_t)r->rows) {
    st = sk__fail(SK_ERR_FORMAT, "%s: \"cursor\" %llu is beyond the data's %lld rows", what,
                  (unsigned long long)cursor, (long long)r->rows);
  } else if (epoch > 0 && cursor == 0) {
    st = sk__fail(SK_ERR_FORMAT, "%s: \"cursor\" is 0 in epoch %llu (only the first epoch starts "
                  "at 0)", what, (unsigned long long)epoch);
  } else if (cursor == 0 && data != 0) {
    /* The data stream moves only when an epoch's order is drawn, which the
     * first epoch's first row does. */
    st = sk__fail(SK_ERR_FORMAT, "%s: \"data\" is %llu before the first epoch's order is drawn "
                  "(epoch 0, cursor 0), where it is 0", what, (unsigned long long)data);
  } else if (cursor > 0 && (erng_seed != t->cfg.seed || erng_stream != STREAM_DATA ||
                            erng % 4 != 0 || (epoch == 0 && erng != 0) ||
                            (r->rows > 1 && erng / 4 / (uint64_t)(r->rows - 1) < epoch))) {
    /* The stream starts at 0 and draws in blocks of 4 values, at least
     * n - 1 blocks for each epoch's order of n rows. */
    st = sk__fail(SK_ERR_FORMAT, "%s: \"epoch_rng\" (offset %llu, seed %llu, stream %llu) is not "
                  "where epoch %llu of %lld rows starts in the run's data stream (seed %llu, "
                  "stream %d)", what, (unsigned long long)erng, (unsigned long long)erng_seed,
                  (unsigned long long)erng_stream, (unsigned long long)epoch, (long long)r->rows,
                  (unsigned long long)t->cfg.seed, (int)STREAM_DATA);
  } else if (cursor > 0) {
    const sk_rng from = {erng_seed, erng_stream, erng};
    const uint64_t drawn = order_drawn(from, r->rows);
    if (data != drawn)
      st = sk__fail(SK_ERR_FORMAT, "%s: \"data\" is %llu; drawing epoch %llu's order from "
                    "\"epoch_rng\" %llu leaves the data stream at %llu", what,
                    (unsigned long long)data, (unsigned long long)epoch, (unsigned long long)erng,
                    (unsigned long long)drawn);
  }
  sk__free(r);
  sk__json_doc_free(doc);
  return st;
}

int sk_trainer_resume_mismatch(const sk_trainer *t, sk_run_mismatch *out) {
  if (!t || !t->has_mismatch) return 0;
  if (out) *out = t->mismatch;
  return 1;
}

/* A state tensor: rank 1, np elements. */
static sk_status check_tensor(const char *path, const char *name, const sk_tensor *x, size_t np) {
  if (sk_tensor_ndim(x) != 1 || sk_tensor_numel(x) != (int64_t)np)
    return sk__fail(SK_ERR_INVALID,
                    "%s: \"%s\" has %lld elements in %d dimensions; this model has %zu "
                    "parameters (a flat tensor)",
                    path, name, (long long)sk_tensor_numel(x), sk_tensor_ndim(x), np);
  return SK_OK;
}

sk_status sk_trainer_resume(sk_trainer *t, const char *dir) {
  if (!t || !dir)
    return sk__fail(SK_ERR_INVALID, "sk_trainer_resume: NULL %s", !t ? "trainer" : "directory");
  char path[4096];
  t->has_mismatch = 0;
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
  if (st == SK_OK) st = check_tensor(path, "params", tp, np);
  if (st == SK_OK) st = check_tensor(path, "ema", te, np);
  if (st == SK_OK) st = check_tensor(path, "adam.m", tm, np);
  if (st == SK_OK) st = check_tensor(path, "adam.v", tv, np);
  const float *sv = st == SK_OK ? sk_tensor_cdata(tv) : NULL;
  for (size_t i = 0; sv && i < np; i++)
    if (!(sv[i] >= 0)) {
      st = sk__fail(SK_ERR_FORMAT, "%s: \"adam.v\" element %zu is %g; a second moment is never "
                    "negative", path, i, (double)sv[i]);
      break;
    }
  /* The data position first: the one restore that could fail (it cannot
   * after the checks above), so that a failure restores nothing. */
  if (st == SK_OK) {
    sk_dataset_pos pos = {(int64_t)v[6], (int64_t)v[7], {v[9], v[10], v[8]}};
    st = sk_dataset_set_pos(t->ds, pos);
  }
  if (st != SK_OK) {
    sk_safetensors_free(sf);
    return st;
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
  sk_safetensors_free(sf);
  return SK_OK;
}
