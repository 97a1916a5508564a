/* Model files (sk_model_save/load): safetensors with the weights under
 * their PyTorch module names, the EMA weights under "ema.", and the config as
 * JSON in the metadata. It lives in the score layer, above io, because it needs the model
 * (nn) and the objective names (score); io only knows the formats. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "io/internal.h"
#include "io/json.h"
#include "nn/internal.h"
#include "score/internal.h"
#include "scorekit/safetensors.h"
#include "scorekit/train.h"

static const char *const kind_names[SK_MODEL_KIND_COUNT] = {"mlp", "ncmlp", "classifier", "unet",
                                                                    "convnet"};

static const char *kind_name(sk_model_kind k) { return kind_names[k]; }

static sk_model_kind kind_parse(const char *name) {
  for (int k = 0; k < SK_MODEL_KIND_COUNT; k++)
    if (strcmp(name, kind_names[k]) == 0) return (sk_model_kind)k;
  return SK_MODEL_KIND_COUNT;
}

static void json_ints(sk__jbuf *b, const char *key, const int *v, int n) {
  sk__jbuf_puts(b, key);
  for (int i = 0; i < n; i++) {
    sk__jbuf_puts(b, i ? "," : "[");
    sk__jbuf_int(b, v[i]);
  }
  sk__jbuf_puts(b, "]");
}

static sk_status config_json(sk__jbuf *b, const sk_model *m, const sk_model_info *info) {
  const sk_model_config *c = sk_model_get_config(m);
  sk__jbuf_puts(b, "{\"format\":\"scorekit-model\",\"version\":1,\"kind\":");
  sk__jbuf_string(b, kind_name(c->kind), strlen(kind_name(c->kind)));
  sk__jbuf_puts(b, ",\"dim\":");
  sk__jbuf_int(b, c->dim);
  sk__jbuf_puts(b, ",\"hidden\":");
  sk__jbuf_int(b, c->hidden);
  sk__jbuf_puts(b, ",\"depth\":");
  sk__jbuf_int(b, c->depth);
  sk__jbuf_puts(b, ",\"classes\":");
  /* a classifier's outputs, or a conditional model's classes */
  sk__jbuf_int(b, sk_model_is_classifier(c) || sk__cond_model(c) ? c->classes : 0);
  sk__jbuf_puts(b, ",\"activation\":");
  sk__jbuf_string(b, sk_activation_name(c->act), strlen(sk_activation_name(c->act)));
  const sk_unet_config *u = sk_model_get_unet(m);
  if (u) {
    json_ints(b, ",\"channels\":", u->channels, 4);
    json_ints(b, ",\"image\":", u->image, 3);
    sk__jbuf_puts(b, ",\"embed\":");
    sk__jbuf_int(b, u->embed);
    sk__jbuf_puts(b, ",\"embed_scale\":");
    sk__jbuf_float(b, u->embed_scale);
  }
  const sk_convnet_config *cv = sk_model_get_convnet(m);
  if (cv) {
    json_ints(b, ",\"channels\":", cv->channels, 3);
    json_ints(b, ",\"image\":", cv->image, 3);
    sk__jbuf_puts(b, ",\"embed\":");
    sk__jbuf_int(b, cv->embed);
    sk__jbuf_puts(b, ",\"embed_scale\":");
    sk__jbuf_float(b, cv->embed_scale);
  }
  if (info) {
    const char *obj = sk_objective_name(info->objective);
    sk__jbuf_puts(b, ",\"objective\":");
    sk__jbuf_string(b, obj, strlen(obj));
    sk__jbuf_puts(b, ",\"sigma\":");
    sk__jbuf_float(b, info->sigma);
    sk__jbuf_puts(b, ",\"sigmas\":[");
    for (int i = 0; i < info->n_sigmas; i++) {
      if (i) sk__jbuf_puts(b, ",");
      sk__jbuf_float(b, info->sigmas[i]);
    }
    sk__jbuf_puts(b, "],\"steps\":");
    sk__jbuf_int(b, info->steps);
    sk__jbuf_puts(b, ",\"seed\":");
    sk__jbuf_int(b, (int64_t)info->seed);
    sk__jbuf_puts(b, ",\"data\":");
    sk__jbuf_string(b, info->data, strlen(info->data));
    /* Written only for scaled or image data, so that the files of models
     * of rows stay as they were. */
    if (info->data_scale > 0 && info->data_scale != 1) {
      sk__jbuf_puts(b, ",\"data_scale\":");
      sk__jbuf_float(b, info->data_scale);
    }
    if (info->image_shape[0] > 0) {
      sk__jbuf_puts(b, ",\"image_shape\":[");
      for (int i = 0; i < 3; i++) {
        if (i) sk__jbuf_puts(b, ",");
        sk__jbuf_int(b, info->image_shape[i]);
      }
      sk__jbuf_puts(b, "]");
    }
  }
  return sk__jbuf_puts(b, "}");
}

/* The largest step count a file may record: 2^53, the integers any JSON
 * reader holds exactly (the training state's bound too). */
#define MAX_STEPS (INT64_C(1) << 53)

/* What config_json writes of `info`, checked against what read_info
 * accepts, so that a file is never written that sk_model_load refuses (nor
 * a ladder read past its end or a name past its field). */
sk_status sk__model_info_check(const char *path, const sk_model *m, const sk_model_info *info) {
  if ((unsigned)info->objective >= SK_OBJ_COUNT)
    return sk__fail(SK_ERR_INVALID, "%s: info.objective %d is not an objective", path,
                    (int)info->objective);
  if (info->n_sigmas < 0 || info->n_sigmas > SK_MAX_LEVELS)
    return sk__fail(SK_ERR_INVALID, "%s: info.n_sigmas %d is outside 0..%d", path, info->n_sigmas,
                    SK_MAX_LEVELS);
  for (int i = 0; i < info->n_sigmas; i++) {
    const float s = info->sigmas[i];
    if (!(s > 0) || !isfinite(s) || (i > 0 && !(s < info->sigmas[i - 1])))
      return sk__fail(SK_ERR_INVALID, "%s: info.sigmas[%d] is %g; the levels must be positive, "
                      "finite and decreasing", path, i, (double)s);
  }
  if (!(info->sigma >= 0) || !isfinite(info->sigma))
    return sk__fail(SK_ERR_INVALID, "%s: info.sigma is %g; expected a finite float >= 0", path,
                    (double)info->sigma);
  if (info->steps < 0 || info->steps > MAX_STEPS)
    return sk__fail(SK_ERR_INVALID, "%s: info.steps %lld is outside 0..2^53", path,
                    (long long)info->steps);
  const char *end = memchr(info->data, '\0', sizeof info->data);
  if (!end)
    return sk__fail(SK_ERR_INVALID, "%s: info.data is not a string ending within its %zu bytes",
                    path, sizeof info->data);
  size_t bad_at = 0;
  if (!sk__json_utf8_valid(info->data, (size_t)(end - info->data), &bad_at))
    return sk__fail(SK_ERR_INVALID, "%s: info.data is not valid UTF-8 (at byte %zu)", path, bad_at);
  if (!(info->data_scale >= 0) || !isfinite(info->data_scale))
    return sk__fail(SK_ERR_INVALID, "%s: info.data_scale is %g; expected a finite float >= 0 "
                    "(0 or 1: not scaled)", path, (double)info->data_scale);
  const int64_t *c = info->image_shape, dim = sk_model_get_config(m)->dim;
  const int rows = c[0] == 0 && c[1] == 0 && c[2] == 0;
  const int image = c[0] >= 1 && c[1] >= 1 && c[2] >= 1 && c[1] <= dim / c[0] &&
                    c[2] <= dim / (c[0] * c[1]) && c[0] * c[1] * c[2] == dim;
  if (!rows && !image)
    return sk__fail(SK_ERR_INVALID, "%s: info.image_shape (%lld, %lld, %lld) is neither zeros "
                    "(rows) nor an image of the model's %lld values", path, (long long)c[0],
                    (long long)c[1], (long long)c[2], (long long)dim);
  return SK_OK;
}

sk_status sk_model_save(const char *path, const sk_model *m, const float *ema,
                        const sk_model_info *info) {
  if (!path || !m)
    return sk__fail(SK_ERR_INVALID, "sk_model_save: NULL %s", !path ? "path" : "model");
  if (info) {
    const sk_status bad = sk__model_info_check(path, m, info);
    if (bad != SK_OK) return bad;
  }
  const int nt = sk_model_num_tensors(m);
  sk_named_tensor *t = sk__calloc((size_t)(2 * nt), sizeof *t);
  char(*names)[64] = sk__calloc((size_t)nt, sizeof *names);
  sk__jbuf b;
  sk__jbuf_init(&b);
  sk_status st = (!t || !names) ? sk__fail(SK_ERR_NOMEM, "%s: out of memory", path) : SK_OK;
  if (st == SK_OK) st = config_json(&b, m, info);
  int n = 0;
  const float *params = sk_model_params((sk_model *)m);
  for (int i = 0; st == SK_OK && i < nt; i++) {
    for (int pass = 0; pass < (ema ? 2 : 1); pass++) {
      sk_named_tensor *x = &t[n++];
      if (pass == 0) {
        x->name = sk_model_tensor_name(m, i);
      } else {
        snprintf(names[i], sizeof names[i], "ema.%s", sk_model_tensor_name(m, i));
        x->name = names[i];
      }
      x->ndim = sk_model_tensor_ndim(m, i);
      for (int k = 0; k < x->ndim; k++) x->shape[k] = sk_model_tensor_shape(m, i)[k];
      x->data = (pass ? ema : params) + sk_model_tensor_offset(m, i);
    }
  }
  if (st == SK_OK) {
    const char *meta[2] = {"scorekit", b.data};
    st = sk_safetensors_save(path, t, n, meta, 1);
  }
  sk__jbuf_free(&b);
  sk__free(t);
  sk__free(names);
  return st;
}

static int get_int(const sk__json *root, const char *key, int64_t *out) {
  return sk__json_int(sk__json_get(root, key), out);
}

/* An array of n integers within ±2^20 (the model's own checks come after). */
static int get_ints(const sk__json *root, const char *key, int *out, int n) {
  const sk__json *a = sk__json_get(root, key);
  if (sk__json_len(a) != (size_t)n) return 0;
  for (int i = 0; i < n; i++) {
    int64_t v;
    if (!sk__json_int(sk__json_at(a, (size_t)i), &v) || v < -(1 << 20) || v > 1 << 20) return 0;
    out[i] = (int)v;
  }
  return 1;
}

/* A U-Net's shape: channels, image, embedding width and scale; dim must be
 * C·H·W. */
static sk_status unet_config(const char *path, const sk__json *root, sk_unet_config *u,
                             int *classes) {
  int64_t dim, embed;
  double scale;
  if (!get_int(root, "dim", &dim) || !get_ints(root, "channels", u->channels, 4) ||
      !get_ints(root, "image", u->image, 3) || !get_int(root, "embed", &embed) || embed < 1 ||
      embed > 1 << 20 || !sk__json_number(sk__json_get(root, "embed_scale"), &scale) ||
      !(scale > 0) || !(scale < 1e30))
    return sk__fail(SK_ERR_FORMAT, "%s: U-Net config lacks dim/channels/image/embed/embed_scale "
                                   "or has them out of range", path);
  u->embed = (int)embed;
  u->embed_scale = (float)scale;
  if (sk__unet_check(u) != SK_OK) {
    char why[400]; /* copied: the message buffer is about to be rewritten */
    snprintf(why, sizeof why, "%s", sk_last_error());
    return sk__fail(SK_ERR_FORMAT, "%s: %s", path, why);
  }
  /* Class-conditional when classes > 0. */
  int64_t k = 0;
  if (sk__json_get(root, "classes") && (!get_int(root, "classes", &k) || k < 0 || k > 1 << 16))
    return sk__fail(SK_ERR_FORMAT, "%s: U-Net classes is not an integer in 0..65536", path);
  *classes = (int)k;
  if ((int64_t)u->image[0] * u->image[1] * u->image[2] != dim)
    return sk__fail(SK_ERR_FORMAT, "%s: U-Net image %dx%dx%d does not have dim %lld values", path,
                    u->image[0], u->image[1], u->image[2], (long long)dim);
  return SK_OK;
}

/* A convnet's shape: channels, image, classes, embedding width and scale;
 * dim must be C·H·W. */
static sk_status convnet_config(const char *path, const sk__json *root, sk_convnet_config *c) {
  int64_t dim, embed, classes;
  double scale;
  if (!get_int(root, "dim", &dim) || !get_ints(root, "channels", c->channels, 3) ||
      !get_ints(root, "image", c->image, 3) || !get_int(root, "classes", &classes) ||
      classes < 2 || classes > 1 << 16 || !get_int(root, "embed", &embed) || embed < 1 ||
      embed > 1 << 20 || !sk__json_number(sk__json_get(root, "embed_scale"), &scale) ||
      !(scale > 0) || !(scale < 1e30))
    return sk__fail(SK_ERR_FORMAT, "%s: convnet config lacks dim/channels/image/classes/embed/"
                                   "embed_scale or has them out of range", path);
  c->classes = (int)classes;
  c->embed = (int)embed;
  c->embed_scale = (float)scale;
  if (sk__convnet_check(c) != SK_OK) {
    char why[400]; /* copied: the message buffer is about to be rewritten */
    snprintf(why, sizeof why, "%s", sk_last_error());
    return sk__fail(SK_ERR_FORMAT, "%s: %s", path, why);
  }
  if ((int64_t)c->image[0] * c->image[1] * c->image[2] != dim)
    return sk__fail(SK_ERR_FORMAT, "%s: convnet image %dx%dx%d does not have dim %lld values",
                    path, c->image[0], c->image[1], c->image[2], (long long)dim);
  return SK_OK;
}

/* "[8, 2]" */
static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
  int n = snprintf(buf, cap, "[");
  for (int k = 0; k < ndim && n > 0 && (size_t)n < cap; k++)
    n += snprintf(buf + n, cap - (size_t)n, "%s%lld", k ? ", " : "", (long long)shape[k]);
  if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "]");
}

/* "dim 2, hidden 64, depth 3", or a U-Net's shape. */
static void config_str(char *buf, size_t cap, const sk_model *m) {
  const sk_unet_config *u = sk_model_get_unet(m);
  const sk_model_config *c = sk_model_get_config(m);
  const sk_convnet_config *cv = sk_model_get_convnet(m);
  if (cv)
    snprintf(buf, cap, "convnet channels %d,%d,%d, image %dx%dx%d, classes %d, embed %d",
             cv->channels[0], cv->channels[1], cv->channels[2], cv->image[0], cv->image[1],
             cv->image[2], cv->classes, cv->embed);
  else if (u)
    snprintf(buf, cap, "U-Net channels %d,%d,%d,%d, image %dx%dx%d, embed %d", u->channels[0],
             u->channels[1], u->channels[2], u->channels[3], u->image[0], u->image[1],
             u->image[2], u->embed);
  else
    snprintf(buf, cap, "dim %d, hidden %d, depth %d", c->dim, c->hidden, c->depth);
}

/* Every tensor the model needs is in the file with the model's shape:
 * checked on the header alone, before the parameters are allocated. */
static sk_status check_shapes(const char *path, const sk_safetensors *st, const sk_model *m,
                              int use_ema) {
  for (int i = 0; i < sk_model_num_tensors(m); i++) {
    char name[80];
    snprintf(name, sizeof name, "%s%s", use_ema ? "ema." : "", sk_model_tensor_name(m, i));
    const int64_t *shape = NULL;
    int ndim = sk__safetensors_shape(st, name, &shape);
    if (ndim < 0)
      return sk__fail(SK_ERR_FORMAT, "%s: tensor %s is missing%s", path, name,
                      use_ema ? " (saved without EMA weights?)" : "");
    const int want = sk_model_tensor_ndim(m, i);
    int ok = ndim == want;
    for (int k = 0; ok && k < ndim; k++) ok = shape[k] == sk_model_tensor_shape(m, i)[k];
    if (!ok) {
      char got[128], need[128];
      shape_str(got, sizeof got, ndim, shape);
      shape_str(need, sizeof need, want, sk_model_tensor_shape(m, i));
      char conf[160];
      config_str(conf, sizeof conf, m);
      return sk__fail(SK_ERR_FORMAT, "%s: tensor %s is %s in the file, but the config (%s) needs %s",
                      path, name, got, conf, need);
    }
  }
  return SK_OK;
}

/* A metadata field out of range: names the file, the field and what it holds. */
static sk_status bad_field(const char *path, const char *key, const sk__json *v,
                           const char *expected) {
  char got[64];
  double x;
  size_t n = 0;
  const char *str = sk__json_string(v, &n);
  if (sk__json_number(v, &x)) { /* the shortest text that reads back as x */
    snprintf(got, sizeof got, "%g", x);
    if (strtod(got, NULL) != x) snprintf(got, sizeof got, "%.17g", x);
  }
  else if (str) snprintf(got, sizeof got, "\"%.40s\"%s", str, n > 40 ? "..." : "");
  else {
    static const char *const kinds[] = {"null", "a boolean", "a number", "a string", "an array",
                                        "an object"};
    snprintf(got, sizeof got, "%s", kinds[sk__json_type(v)]);
  }
  return sk__fail(SK_ERR_FORMAT, "%s: metadata field \"%s\" is %s; expected %s", path, key, got,
                  expected);
}

/* What sk_model_info holds, from the metadata, every field checked: a
 * field that is there must be of its type and in its range (a file written
 * by sk_model_save always passes). `dim` is the model's. */
static sk_status read_info(const char *path, const sk__json *root, int dim, sk_model_info *info) {
  memset(info, 0, sizeof *info);
  const sk__json *v;
  size_t n = 0;
  int64_t k;
  double x;
  if ((v = sk__json_get(root, "format")) &&
      (!sk__json_string(v, &n) || strcmp(sk__json_string(v, NULL), "scorekit-model") != 0))
    return bad_field(path, "format", v, "\"scorekit-model\"");
  if ((v = sk__json_get(root, "version")) && (!sk__json_int(v, &k) || k != 1))
    return bad_field(path, "version", v, "1 (a newer scorekit may write others)");
  info->objective = SK_OBJ_COUNT;
  if ((v = sk__json_get(root, "objective"))) {
    const char *obj = sk__json_string(v, &n);
    info->objective = obj && strlen(obj) == n ? sk_objective_parse(obj) : SK_OBJ_COUNT;
    if (info->objective == SK_OBJ_COUNT)
      return bad_field(path, "objective", v, "an objective's name (esm, dsm, ssm, ssm-vr, ncsn, "
                       "vesde, classifier)");
  }
  if ((v = sk__json_get(root, "sigma"))) {
    if (!sk__json_number(v, &x) || !(x >= 0) || !isfinite((float)x))
      return bad_field(path, "sigma", v, "a float >= 0");
    info->sigma = (float)x;
  }
  if ((v = sk__json_get(root, "sigmas"))) {
    if (sk__json_type(v) != SK__JSON_ARRAY || sk__json_len(v) > SK_MAX_LEVELS)
      return bad_field(path, "sigmas", v, "an array of at most 1024 noise levels");
    const size_t ns = sk__json_len(v);
    for (size_t i = 0; i < ns; i++) {
      if (!sk__json_number(sk__json_at(v, i), &x) || !(x > 0) || !isfinite((float)x) ||
          !((float)x > 0))
        return sk__fail(SK_ERR_FORMAT, "%s: sigmas[%zu] is not a positive number", path, i);
      info->sigmas[i] = (float)x;
      /* The samplers walk the ladder from its largest level down. */
      if (i > 0 && !(info->sigmas[i] < info->sigmas[i - 1]))
        return sk__fail(SK_ERR_FORMAT, "%s: sigmas[%zu] %g is not below sigmas[%zu] %g: the ladder "
                        "must decrease", path, i, (double)info->sigmas[i], i - 1,
                        (double)info->sigmas[i - 1]);
    }
    info->n_sigmas = (int)ns;
  }
  if ((v = sk__json_get(root, "steps"))) {
    if (!sk__json_int(v, &k) || k < 0 || k > MAX_STEPS)
      return bad_field(path, "steps", v, "an integer in 0..2^53");
    info->steps = k;
  }
  if ((v = sk__json_get(root, "seed"))) {
    /* Any 64-bit seed, written as its int64 bit pattern. */
    if (!sk__json_int(v, &k)) return bad_field(path, "seed", v, "a 64-bit integer");
    info->seed = (uint64_t)k;
  }
  if ((v = sk__json_get(root, "data"))) {
    const char *data = sk__json_string(v, &n);
    if (!data || n != strlen(data) || n >= sizeof info->data)
      return bad_field(path, "data", v, "a string of at most 255 bytes");
    memcpy(info->data, data, n + 1);
  }
  /* Samples are multiplied by the scale and shaped as images: both must be
   * sane, and the shape must be the model's dimension. */
  if ((v = sk__json_get(root, "data_scale"))) {
    if (!sk__json_number(v, &x) || !((float)x > 0) || !isfinite((float)x))
      return sk__fail(SK_ERR_FORMAT, "%s: data_scale is not a positive number", path);
    info->data_scale = (float)x;
  }
  const sk__json *shape = sk__json_get(root, "image_shape");
  if (shape) {
    int64_t prod = 1;
    int ok = sk__json_len(shape) == 3;
    for (size_t i = 0; ok && i < 3; i++) {
      ok = sk__json_int(sk__json_at(shape, i), &info->image_shape[i]) &&
           info->image_shape[i] >= 1 && info->image_shape[i] <= dim;
      if (ok) prod *= info->image_shape[i];
      ok = ok && prod <= dim;
    }
    if (!ok || prod != dim) {
      memset(info->image_shape, 0, sizeof info->image_shape);
      return sk__fail(SK_ERR_FORMAT,
                      "%s: image_shape is not three positive integers whose product is dim %d",
                      path, dim);
    }
  }
  return SK_OK;
}

sk_status sk_model_load(const char *path, int use_ema, sk_model **out, sk_model_info *info) {
  *out = NULL;
  sk_safetensors *st = NULL;
  /* The header only: the tensors are read once their shapes are checked,
   * and only those the model needs. */
  sk_status s = sk__safetensors_open(path, &st);
  if (s != SK_OK) return s;
  const char *meta = sk_safetensors_meta(st, "scorekit");
  sk__json_doc *doc = NULL;
  size_t off;
  if (!meta) {
    sk_safetensors_free(st);
    return sk__fail(SK_ERR_FORMAT, "%s: not a scorekit model (no \"scorekit\" metadata)", path);
  }
  char what[300];
  snprintf(what, sizeof what, "%s: metadata", path);
  s = sk__json_parse(what, meta, strlen(meta), &doc, &off);
  if (s != SK_OK) {
    sk_safetensors_free(st);
    return s;
  }
  const sk__json *root = sk__json_root(doc);
  int64_t dim, hidden, depth, classes = 0;
  size_t klen = 0, alen = 0;
  const char *kind = sk__json_string(sk__json_get(root, "kind"), &klen);
  const char *act = sk__json_string(sk__json_get(root, "activation"), &alen);
  sk_model_config cfg = {0};
  sk_unet_config unet;
  memset(&unet, 0, sizeof unet);
  sk_convnet_config conv;
  memset(&conv, 0, sizeof conv);
  sk_model *m = NULL;
  if (kind && kind_parse(kind) == SK_MODEL_UNET) {
    int unet_classes = 0;
    if ((s = unet_config(path, root, &unet, &unet_classes)) != SK_OK) goto done;
    cfg.dim = unet.image[0] * unet.image[1] * unet.image[2]; /* image_shape is checked against it */
    m = sk__unet_layout_classes(&unet, unet_classes);
  } else if (kind && kind_parse(kind) == SK_MODEL_CONVNET) {
    if ((s = convnet_config(path, root, &conv)) != SK_OK) goto done;
    m = sk__convnet_layout(&conv);
  } else {
    if (!kind || !act || !get_int(root, "dim", &dim) || !get_int(root, "hidden", &hidden) ||
        !get_int(root, "depth", &depth) || dim < 1 || dim > 1 << 20 || hidden < 1 ||
        hidden > 1 << 16 || depth < 1 || depth > 62) {
      s = sk__fail(SK_ERR_FORMAT, "%s: model config lacks kind/activation/dim/hidden/depth or has "
                                  "them out of range", path);
      goto done;
    }
    const sk__json *cv = sk__json_get(root, "classes");
    /* A classifier has classes, a class-conditional ncmlp may, an mlp not. */
    const int clf = kind_parse(kind) == SK_MODEL_CLASSIFIER;
    const int nc = kind_parse(kind) == SK_MODEL_NCMLP;
    if (cv && (!sk__json_int(cv, &classes) || classes < 0 || classes > 1 << 16 ||
               (clf && (classes < 1 || classes >= 1 << 16)) || (!clf && !nc && classes > 0))) {
      s = bad_field(path, "classes", cv,
                    clf  ? "the classifier's number of classes, 1..65535"
                    : nc ? "0, or a conditional ncmlp's number of classes, 1..65536"
                         : "0 (only a classifier or a conditional model has classes)");
      goto done;
    }
    cfg.kind = kind_parse(kind);
    cfg.act = sk_activation_parse(act);
    cfg.dim = (int)dim;
    cfg.hidden = (int)hidden;
    cfg.depth = (int)depth;
    cfg.classes = (int)classes;
    if (cfg.kind == SK_MODEL_KIND_COUNT || cfg.act == SK_ACT_COUNT) {
      s = sk__fail(SK_ERR_FORMAT, "%s: unknown model kind \"%s\" or activation \"%s\"", path,
                   kind, act);
      goto done;
    }
    /* A config sk_model_new refuses is the file's fault; after this check a
     * NULL from it can only mean memory. */
    if (sk__model_check(&cfg) != SK_OK) {
      char why[400]; /* copied: the message buffer is about to be rewritten */
      snprintf(why, sizeof why, "%s", sk_last_error());
      s = sk__fail(SK_ERR_FORMAT, "%s: %s", path, why);
      goto done;
    }
    m = sk__model_layout(&cfg);
  }
  if (!m) {
    s = sk__fail(SK_ERR_NOMEM, "%s: out of memory for the model", path);
    goto done;
  }
  cfg = *sk_model_get_config(m); /* a U-Net's or convnet's, for the checks below */
  if ((s = check_shapes(path, st, m, use_ema)) != SK_OK) {
    sk_model_free(m);
    goto done;
  }
  if (sk__model_alloc(m) != SK_OK) {
    s = sk__fail(SK_ERR_NOMEM, "%s: out of memory for the model's %zu parameters", path,
                 sk_model_num_params(m));
    sk_model_free(m);
    goto done;
  }
  for (int i = 0; i < sk_model_num_tensors(m); i++) {
    char name[80];
    snprintf(name, sizeof name, "%s%s", use_ema ? "ema." : "", sk_model_tensor_name(m, i));
    s = sk__safetensors_read(st, name, sk_model_params(m) + sk_model_tensor_offset(m, i));
    if (s != SK_OK) {
      sk_model_free(m);
      goto done;
    }
  }
  if (info && (s = read_info(path, root, sk_model_get_config(m)->dim, info)) != SK_OK) {
    sk_model_free(m);
    goto done;
  }
  *out = m;
done:
  sk__json_doc_free(doc);
  sk_safetensors_free(st);
  return s;
}
