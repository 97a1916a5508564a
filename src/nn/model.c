/* Score networks built from graph ops: MLPs (score, noise-conditional,
 * classifier), the score-SDE tutorial's small U-Net and a noise-conditional
 * convolutional classifier for images. Parameters live in one
 * buffer with named views under the PyTorch module names of each model's twin
 * (nn.Linear's W: (out, in); conv weights as nn.Conv2d/ConvTranspose2d). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "graph/internal.h"
#include "nn/internal.h"
#include "scorekit/rng.h"

#define SK_MAX_LAYERS 64
#define SK_MAX_TENSORS (2 * SK_MAX_LAYERS)

/* How sk_model_init fills a tensor. */
typedef enum { INIT_UNIFORM, INIT_ONES, INIT_ZEROS, INIT_NORMAL, INIT_EMBED } init_kind;

typedef struct tensor_view {
  char name[32];
  int ndim;
  int64_t shape[4];
  size_t offset;
  init_kind init;
  int64_t fan_in; /* INIT_UNIFORM: bound 1/√fan_in, PyTorch's default */
  int fixed;      /* not trained (INIT_NORMAL: the U-Net's Fourier frequencies) */
} tensor_view;

struct sk_model {
  sk_model_config cfg;
  sk_unet_config unet; /* SK_MODEL_UNET */
  sk_convnet_config conv; /* SK_MODEL_CONVNET */
  int n_tensors;
  tensor_view t[SK_MAX_TENSORS];
  size_t n_params;
  float *params;
};

static const char *const act_names[SK_ACT_COUNT] = {"softplus", "elu", "silu", "tanh"};

const char *sk_activation_name(sk_activation a) { return a < SK_ACT_COUNT ? act_names[a] : "?"; }

sk_activation sk_activation_parse(const char *name) {
  for (int i = 0; name && i < SK_ACT_COUNT; i++)
    if (strcmp(name, act_names[i]) == 0) return (sk_activation)i;
  return SK_ACT_COUNT;
}

static const char *prefix(sk_model_kind k) {
  return k == SK_MODEL_MLP ? "mlp" : k == SK_MODEL_NCMLP ? "ncmlp" : "clf";
}

/* ---- the U-Net: layout and geometry ---- */

/* The tutorial's encoder widths, image, embedding width and frequency scale
 * (score_sde's 16 for an embedding of log σ). */
static const int unet_channels[4] = {32, 64, 128, 256}, unet_image[3] = {1, 28, 28};
enum { UNET_EMBED = 256 };
#define UNET_SCALE 16.0f
#define UNET_GN_EPS 1e-5f /* nn.GroupNorm's */
#define TWO_PI 6.2831853071795865f

/* Tensor indices: the Fourier frequencies, the embedding's Linear, then per
 * block (conv1..conv4, tconv4..tconv2) its convolution, Dense and GroupNorm,
 * then the last transposed convolution and its bias: the order of the
 * PyTorch twin's state_dict. */
enum { U_FREQ, U_EMBED_W, U_EMBED_B, U_BLOCK0, U_PER_BLOCK = 5, U_BLOCKS = 7,
       U_OUT_W = U_BLOCK0 + U_PER_BLOCK * U_BLOCKS, U_OUT_B };

/* Output channels of block k (encoder 0..3, decoder 4..6). */
static int64_t block_channels(const sk_unet_config *c, int k) {
  return c->channels[k < 4 ? k : 6 - k];
}

static int gcd(int a, int b) {
  while (b) {
    const int t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* The tutorial's group counts, 4 after the first convolution and 32 after the
 * others, scaled with the channels: gcd(count, C) groups, which is the count
 * itself whenever it divides C (as with the default widths). A group of one
 * channel (the tutorial's tgnorm2, 32 groups of 32 channels) subtracts that
 * channel's own mean, which cancels the Dense shift added before it: that
 * Dense's gradient is zero, in PyTorch too. */
static int block_groups(const sk_unet_config *c, int k) {
  return gcd(k == 0 ? 4 : 32, (int)block_channels(c, k));
}

/* Sizes along one image axis: s[0] the input, s[1..4] after conv1..conv4
 * (3×3, no padding; strides 1, 2, 2, 2). The decoder's transposed
 * convolutions must give back s[3], s[2], s[1], s[0] exactly for the skips to
 * concatenate: 2·s[4] + 1 = s[3], 2·s[3] + 2 = s[2] (output padding 1),
 * 2·s[2] + 2 = s[1], s[1] + 2 = s[0]; that holds for n ≡ 4 (mod 8), n ≥ 20
 * (28 → 26 → 12 → 5 → 2). */
static int unet_axis_ok(int64_t n, int64_t s[5]) {
  s[0] = n;
  s[1] = n - 2;
  for (int i = 2; i <= 4; i++) s[i] = s[i - 1] >= 3 ? (s[i - 1] - 3) / 2 + 1 : 0;
  return s[1] >= 3 && s[2] >= 3 && s[3] >= 3 && s[4] >= 1 && 2 * s[4] + 1 == s[3] &&
         2 * s[3] + 2 == s[2] && 2 * s[2] + 2 == s[1];
}

/* Zero fields of a U-Net config take the tutorial's values. */
static sk_unet_config unet_defaults(const sk_unet_config *u) {
  sk_unet_config c;
  memset(&c, 0, sizeof c);
  if (u) c = *u;
  if (!c.channels[0] && !c.channels[1] && !c.channels[2] && !c.channels[3])
    memcpy(c.channels, unet_channels, sizeof c.channels);
  if (!c.image[0] && !c.image[1] && !c.image[2]) memcpy(c.image, unet_image, sizeof c.image);
  if (!c.embed) c.embed = UNET_EMBED;
  if (c.embed_scale == 0) c.embed_scale = UNET_SCALE;
  return c;
}

sk_status sk__unet_check(const sk_unet_config *u) {
  const sk_unet_config c = unet_defaults(u);
  for (int k = 0; k < 4; k++)
    if (c.channels[k] < 1 || c.channels[k] > 4096)
      return sk__fail(SK_ERR_INVALID, "model: U-Net channels %d,%d,%d,%d out of range (1..4096)",
                      c.channels[0], c.channels[1], c.channels[2], c.channels[3]);
  int64_t s[5];
  if (c.image[0] < 1 || c.image[0] > 64 || c.image[1] > 4096 || c.image[2] > 4096 ||
      !unet_axis_ok(c.image[1], s) || !unet_axis_ok(c.image[2], s) ||
      (int64_t)c.image[0] * c.image[1] * c.image[2] > 1 << 20)
    return sk__fail(SK_ERR_INVALID,
                    "model: U-Net image %dx%dx%d: need 1..64 channels, sides of at least 20 "
                    "that are 4 more than a multiple of 8 (as 28 → 26 → 12 → 5 → 2) and at "
                    "most 2^20 values", c.image[0], c.image[1], c.image[2]);
  if (c.embed < 2 || c.embed > 65536 || c.embed % 2 != 0 || !(c.embed_scale > 0) ||
      !isfinite(c.embed_scale))
    return sk__fail(SK_ERR_INVALID,
                    "model: U-Net embedding width %d (even, 2..65536) or scale %g (positive) "
                    "out of range", c.embed, c.embed_scale);
  return SK_OK;
}

/* ---- the convolutional classifier: layout and geometry ---- */

static const int conv_channels[3] = {32, 64, 128};
enum { CONV_EMBED = 128, CONV_MIN_SIDE = 9 };

/* Tensor indices, the order of the PyTorch twin's state_dict: the Fourier
 * frequencies and the embedding's Linear, then per block (conv1..conv3) its
 * convolution, Dense and GroupNorm, then the last Linear. */
enum { C_FREQ, C_EMBED_W, C_EMBED_B, C_BLOCK0, C_PER_BLOCK = 5, C_BLOCKS = 3,
       C_FC_W = C_BLOCK0 + C_PER_BLOCK * C_BLOCKS, C_FC_B };

/* Zero fields take the defaults (classes has none). */
static sk_convnet_config convnet_defaults(const sk_convnet_config *u) {
  sk_convnet_config c;
  memset(&c, 0, sizeof c);
  if (u) c = *u;
  if (!c.channels[0] && !c.channels[1] && !c.channels[2])
    memcpy(c.channels, conv_channels, sizeof c.channels);
  if (!c.image[0] && !c.image[1] && !c.image[2]) memcpy(c.image, unet_image, sizeof c.image);
  if (!c.embed) c.embed = CONV_EMBED;
  if (c.embed_scale == 0) c.embed_scale = UNET_SCALE;
  return c;
}

/* Sizes along one image axis after the 3×3 convolutions without padding,
 * strides 1, 2, 2: n − 2, then ⌊(s − 3)/2⌋ + 1 twice (28 → 26 → 12 → 5). A
 * side of at least 9 leaves every convolution an input of at least 3. */
static int64_t convnet_side(int64_t n, int k) {
  int64_t s = n - 2;
  for (int i = 1; i <= k; i++) s = (s - 3) / 2 + 1;
  return s;
}

/* 4 groups after the first convolution, 32 after the others, as in the
 * U-Net: gcd(count, C) groups, the count itself when it divides C. */
static int convnet_groups(const sk_convnet_config *c, int k) {
  return gcd(k == 0 ? 4 : 32, c->channels[k]);
}

sk_status sk__convnet_check(const sk_convnet_config *u) {
  const sk_convnet_config c = convnet_defaults(u);
  if (c.classes < 2 || c.classes > 1 << 16)
    return sk__fail(SK_ERR_INVALID, "model: convnet classes %d out of range (2..65536)", c.classes);
  for (int k = 0; k < 3; k++)
    if (c.channels[k] < 1 || c.channels[k] > 4096)
      return sk__fail(SK_ERR_INVALID, "model: convnet channels %d,%d,%d out of range (1..4096)",
                      c.channels[0], c.channels[1], c.channels[2]);
  if (c.image[0] < 1 || c.image[0] > 64 || c.image[1] < CONV_MIN_SIDE || c.image[1] > 4096 ||
      c.image[2] < CONV_MIN_SIDE || c.image[2] > 4096 ||
      (int64_t)c.image[0] * c.image[1] * c.image[2] > 1 << 20)
    return sk__fail(SK_ERR_INVALID,
                    "model: convnet image %dx%dx%d: need 1..64 channels, sides of %d..4096 and "
                    "at most 2^20 values", c.image[0], c.image[1], c.image[2], CONV_MIN_SIDE);
  if (c.embed < 2 || c.embed > 65536 || c.embed % 2 != 0 || !(c.embed_scale > 0) ||
      !isfinite(c.embed_scale))
    return sk__fail(SK_ERR_INVALID,
                    "model: convnet embedding width %d (even, 2..65536) or scale %g (positive) "
                    "out of range", c.embed, c.embed_scale);
  return SK_OK;
}

sk_status sk__model_check(const sk_model_config *cfg) {
  if (!cfg) return sk__fail(SK_ERR_INVALID, "model: NULL config");
  if (cfg->kind >= SK_MODEL_KIND_COUNT || cfg->act >= SK_ACT_COUNT)
    return sk__fail(SK_ERR_INVALID, "model: unknown kind or activation");
  if (cfg->kind == SK_MODEL_UNET) {
    if (cfg->dim != 0 && cfg->dim != unet_image[0] * unet_image[1] * unet_image[2])
      return sk__fail(SK_ERR_INVALID, "model: the default U-Net takes %dx%dx%d images (dim %d), "
                                      "not dim %d (see sk_model_new_unet)",
                      unet_image[0], unet_image[1], unet_image[2],
                      unet_image[0] * unet_image[1] * unet_image[2], cfg->dim);
    if (cfg->classes < 0 || cfg->classes > 1 << 16)
      return sk__fail(SK_ERR_INVALID, "model: U-Net classes %d out of range (0..65536)",
                      cfg->classes);
    return SK_OK;
  }
  if (cfg->kind == SK_MODEL_CONVNET) {
    const int d = unet_image[0] * unet_image[1] * unet_image[2];
    if (cfg->dim != 0 && cfg->dim != d)
      return sk__fail(SK_ERR_INVALID, "model: the default convnet takes %dx%dx%d images (dim %d), "
                                      "not dim %d (see sk_model_new_convnet)",
                      unet_image[0], unet_image[1], unet_image[2], d, cfg->dim);
    return sk__convnet_check(&(sk_convnet_config){.classes = cfg->classes});
  }
  if (cfg->dim < 1 || cfg->dim > 1 << 20 || cfg->hidden < 1 || cfg->hidden > 1 << 16 ||
      cfg->depth < 1 || cfg->depth > SK_MAX_LAYERS - 1 ||
      (cfg->kind == SK_MODEL_CLASSIFIER && (cfg->classes < 2 || cfg->classes > 1 << 16)))
    return sk__fail(SK_ERR_INVALID,
                    "model: dim %d, hidden %d, depth %d, classes %d out of range (dim 1..2^20, "
                    "hidden 1..65536, depth 1..%d, classes 2..65536)",
                    cfg->dim, cfg->hidden, cfg->depth, cfg->classes, SK_MAX_LAYERS - 1);
  /* A class-conditional ncmlp: its label embedding is one more tensor. */
  if (cfg->kind == SK_MODEL_NCMLP &&
      (cfg->classes < 0 || cfg->classes > 1 << 16 || (cfg->classes > 0 && cfg->depth > 62)))
    return sk__fail(SK_ERR_INVALID, "model: ncmlp classes %d (0..65536) or depth %d (at most 62 "
                                    "when conditional) out of range", cfg->classes, cfg->depth);
  return SK_OK;
}

/* Appends a tensor view at *off (its name from fmt and k). */
static tensor_view *add_tensor(sk_model *m, size_t *off, const char *fmt, int k, int ndim,
                               const int64_t *shape, init_kind init, int64_t fan_in) {
  tensor_view *v = &m->t[m->n_tensors++];
  snprintf(v->name, sizeof v->name, fmt, k);
  v->ndim = ndim;
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= v->shape[i] = shape[i];
  v->offset = *off;
  v->init = init;
  v->fan_in = fan_in;
  *off += (size_t)n;
  return v;
}

static void mlp_layout(sk_model *m, size_t *off) {
  const sk_model_config *c = &m->cfg;
  const int in0 = c->dim + (c->kind == SK_MODEL_MLP ? 0 : 1);
  const int out = c->kind == SK_MODEL_CLASSIFIER ? c->classes : c->dim;
  char wname[32], bname[32];
  snprintf(wname, sizeof wname, "%s.%%d.weight", prefix(c->kind));
  snprintf(bname, sizeof bname, "%s.%%d.bias", prefix(c->kind));
  for (int l = 0; l <= c->depth; l++) {
    const int64_t fan_in = l == 0 ? in0 : c->hidden, fan_out = l == c->depth ? out : c->hidden;
    add_tensor(m, off, wname, l, 2, (int64_t[]){fan_out, fan_in}, INIT_UNIFORM, fan_in);
    add_tensor(m, off, bname, l, 1, (int64_t[]){fan_out}, INIT_UNIFORM, fan_in);
  }
}

/* The tutorial's module names: conv1..conv4 and tconv4..tconv1, dense1..dense7
 * (nn.Linear inside a Dense), gnorm1..gnorm4 and tgnorm4..tgnorm2. */
static void unet_layout(sk_model *m, size_t *off) {
  const sk_unet_config *c = &m->unet;
  const int64_t E = c->embed, ic = c->image[0];
  add_tensor(m, off, "embed.0.W", 0, 1, (int64_t[]){E / 2}, INIT_NORMAL, 0)->fixed = 1;
  add_tensor(m, off, "embed.1.weight", 0, 2, (int64_t[]){E, E}, INIT_UNIFORM, E);
  add_tensor(m, off, "embed.1.bias", 0, 1, (int64_t[]){E}, INIT_UNIFORM, E);
  for (int k = 0; k < U_BLOCKS; k++) {
    const int enc = k < 4, num = enc ? k + 1 : 8 - k;
    const int64_t out = block_channels(c, k);
    /* Conv2d weights are (out, in, 3, 3); ConvTranspose2d's (in, out, 3, 3),
     * the decoder's inputs being the previous output and the skip. Either
     * way PyTorch's fan_in is shape[1]·9. */
    const int64_t prev = k == 0 ? ic : block_channels(c, k - 1);
    const int64_t in = k >= 5 ? 2 * prev : prev; /* tconv3, tconv2: with the skip */
    const int64_t w[4] = {enc ? out : in, enc ? in : out, 3, 3};
    add_tensor(m, off, enc ? "conv%d.weight" : "tconv%d.weight", num, 4, w, INIT_UNIFORM, w[1] * 9);
    add_tensor(m, off, "dense%d.dense.weight", k + 1, 2, (int64_t[]){out, E}, INIT_UNIFORM, E);
    add_tensor(m, off, "dense%d.dense.bias", k + 1, 1, (int64_t[]){out}, INIT_UNIFORM, E);
    add_tensor(m, off, enc ? "gnorm%d.weight" : "tgnorm%d.weight", num, 1, &out, INIT_ONES, 0);
    add_tensor(m, off, enc ? "gnorm%d.bias" : "tgnorm%d.bias", num, 1, &out, INIT_ZEROS, 0);
  }
  add_tensor(m, off, "tconv1.weight", 0, 4, (int64_t[]){2 * c->channels[0], ic, 3, 3},
             INIT_UNIFORM, ic * 9);
  add_tensor(m, off, "tconv1.bias", 0, 1, &ic, INIT_UNIFORM, ic * 9);
}

/* The convnet's module names: embed, conv1..conv3 (nn.Conv2d without bias),
 * dense1..dense3 (nn.Linear inside a Dense), gnorm1..gnorm3, fc. */
static void convnet_layout(sk_model *m, size_t *off) {
  const sk_convnet_config *c = &m->conv;
  const int64_t E = c->embed, K = c->classes, F = c->channels[2];
  add_tensor(m, off, "embed.0.W", 0, 1, (int64_t[]){E / 2}, INIT_NORMAL, 0)->fixed = 1;
  add_tensor(m, off, "embed.1.weight", 0, 2, (int64_t[]){E, E}, INIT_UNIFORM, E);
  add_tensor(m, off, "embed.1.bias", 0, 1, (int64_t[]){E}, INIT_UNIFORM, E);
  for (int k = 0; k < C_BLOCKS; k++) {
    const int64_t in = k == 0 ? c->image[0] : c->channels[k - 1], out = c->channels[k];
    add_tensor(m, off, "conv%d.weight", k + 1, 4, (int64_t[]){out, in, 3, 3}, INIT_UNIFORM, in * 9);
    add_tensor(m, off, "dense%d.dense.weight", k + 1, 2, (int64_t[]){out, E}, INIT_UNIFORM, E);
    add_tensor(m, off, "dense%d.dense.bias", k + 1, 1, (int64_t[]){out}, INIT_UNIFORM, E);
    add_tensor(m, off, "gnorm%d.weight", k + 1, 1, &out, INIT_ONES, 0);
    add_tensor(m, off, "gnorm%d.bias", k + 1, 1, &out, INIT_ZEROS, 0);
  }
  add_tensor(m, off, "fc.weight", 0, 2, (int64_t[]){K, F}, INIT_UNIFORM, F);
  add_tensor(m, off, "fc.bias", 0, 1, &K, INIT_UNIFORM, F);
}

/* The layout of a model of config cfg (checked) and, for a U-Net, shape u
 * (checked): its tensors, without the parameter buffer. */
static sk_model *model_layout(const sk_model_config *cfg, const sk_unet_config *u,
                              const sk_convnet_config *cv) {
  sk_model *m = sk__calloc(1, sizeof *m);
  if (!m) {
    sk__fail(SK_ERR_NOMEM, "model: out of memory");
    return NULL;
  }
  m->cfg = *cfg;
  size_t off = 0;
  if (cfg->kind == SK_MODEL_UNET) {
    m->unet = unet_defaults(u);
    const int *im = m->unet.image;
    /* Configs that build the same model compare equal. */
    m->cfg = (sk_model_config){SK_MODEL_UNET, im[0] * im[1] * im[2], 0, 0, cfg->classes,
                               SK_ACT_SILU};
    unet_layout(m, &off);
  } else if (cfg->kind == SK_MODEL_CONVNET) {
    m->conv = convnet_defaults(cv);
    const int *im = m->conv.image;
    m->cfg = (sk_model_config){SK_MODEL_CONVNET, im[0] * im[1] * im[2], 0, 0, m->conv.classes,
                               SK_ACT_SILU};
    convnet_layout(m, &off);
  } else {
    if (cfg->kind == SK_MODEL_MLP) m->cfg.classes = 0;
    mlp_layout(m, &off);
  }
  /* A class-conditional score model: the label embedding, last, so that the
   * other tensors keep their indices and their initial values. */
  if ((cfg->kind == SK_MODEL_NCMLP || cfg->kind == SK_MODEL_UNET) && m->cfg.classes > 0) {
    const int64_t E = cfg->kind == SK_MODEL_UNET ? m->unet.embed : cfg->hidden;
    add_tensor(m, &off, "label_embed.weight", 0, 2, (int64_t[]){m->cfg.classes + 1, E},
               INIT_EMBED, 0);
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

sk_model *sk__model_layout(const sk_model_config *cfg) {
  if (sk__model_check(cfg) != SK_OK) return NULL;
  const sk_convnet_config cv = {.classes = cfg->classes};
  return model_layout(cfg, NULL, &cv);
}

sk_model *sk__unet_layout(const sk_unet_config *u) { return sk__unet_layout_classes(u, 0); }

sk_model *sk__unet_layout_classes(const sk_unet_config *u, int classes) {
  const sk_model_config cfg = {SK_MODEL_UNET, 0, 0, 0, classes, SK_ACT_SILU};
  return sk__unet_check(u) == SK_OK && sk__model_check(&cfg) == SK_OK
             ? model_layout(&cfg, u, NULL)
             : NULL;
}

sk_model *sk__convnet_layout(const sk_convnet_config *c) {
  const sk_model_config cfg = {SK_MODEL_CONVNET, 0, 0, 0, 0, SK_ACT_SILU};
  return sk__convnet_check(c) == SK_OK ? model_layout(&cfg, NULL, c) : NULL;
}

/* The parameters for a layout; frees it when they cannot be had. */
static sk_model *with_params(sk_model *m) {
  if (m && sk__model_alloc(m) != SK_OK) {
    sk__free(m);
    return NULL;
  }
  return m;
}

sk_model *sk_model_new(const sk_model_config *cfg) { return with_params(sk__model_layout(cfg)); }

sk_model *sk_model_new_unet(const sk_unet_config *u) { return with_params(sk__unet_layout(u)); }

sk_model *sk_model_new_unet_classes(const sk_unet_config *u, int classes) {
  return with_params(sk__unet_layout_classes(u, classes));
}

sk_model *sk_model_new_convnet(const sk_convnet_config *c) {
  return with_params(sk__convnet_layout(c));
}

void sk_model_free(sk_model *m) {
  if (!m) return;
  sk__free(m->params);
  sk__free(m);
}

const sk_model_config *sk_model_get_config(const sk_model *m) { return &m->cfg; }
const sk_unet_config *sk_model_get_unet(const sk_model *m) {
  return m->cfg.kind == SK_MODEL_UNET ? &m->unet : NULL;
}
const sk_convnet_config *sk_model_get_convnet(const sk_model *m) {
  return m->cfg.kind == SK_MODEL_CONVNET ? &m->conv : NULL;
}
int sk_model_is_classifier(const sk_model_config *c) {
  return c->kind == SK_MODEL_CLASSIFIER || c->kind == SK_MODEL_CONVNET;
}
size_t sk_model_num_params(const sk_model *m) { return m->n_params; }
float *sk_model_params(sk_model *m) { return m->params; }
int sk_model_num_tensors(const sk_model *m) { return m->n_tensors; }
/* Tensor i of m, or NULL when there is none (as sk_safetensors_name). */
static const tensor_view *tensor_at(const sk_model *m, int i) {
  return m && i >= 0 && i < m->n_tensors ? &m->t[i] : NULL;
}
const char *sk_model_tensor_name(const sk_model *m, int i) {
  const tensor_view *v = tensor_at(m, i);
  return v ? v->name : NULL;
}
int sk_model_tensor_ndim(const sk_model *m, int i) {
  const tensor_view *v = tensor_at(m, i);
  return v ? v->ndim : 0;
}
const int64_t *sk_model_tensor_shape(const sk_model *m, int i) {
  const tensor_view *v = tensor_at(m, i);
  return v ? v->shape : NULL;
}
size_t sk_model_tensor_offset(const sk_model *m, int i) {
  const tensor_view *v = tensor_at(m, i);
  return v ? v->offset : 0;
}
int sk_model_tensor_trainable(const sk_model *m, int i) {
  const tensor_view *v = tensor_at(m, i);
  return v ? !v->fixed : 0;
}

void sk_model_init(sk_model *m, uint64_t seed) {
  /* Tensor i draws from stream i, so one tensor's values do not depend on
   * the size of another. */
  for (int i = 0; i < m->n_tensors; i++) {
    const tensor_view *v = &m->t[i];
    size_t n = 1;
    for (int k = 0; k < v->ndim; k++) n *= (size_t)v->shape[k];
    sk_rng r = sk_rng_make(seed, (uint64_t)i);
    float *p = m->params + v->offset;
    switch (v->init) {
    case INIT_UNIFORM: {
      const float bound = 1.0f / sqrtf((float)v->fan_in);
      sk_rng_uniform(&r, p, n);
      for (size_t j = 0; j < n; j++) p[j] = bound * (2.0f * p[j] - 1.0f);
      break;
    }
    case INIT_NORMAL: {
      const float scale =
          m->cfg.kind == SK_MODEL_CONVNET ? m->conv.embed_scale : m->unet.embed_scale;
      sk_rng_normal(&r, p, n);
      for (size_t j = 0; j < n; j++) p[j] *= scale;
      break;
    }
    case INIT_EMBED: /* nn.Embedding's N(0, 1) */
      sk_rng_normal(&r, p, n);
      break;
    case INIT_ONES:
      for (size_t j = 0; j < n; j++) p[j] = 1.0f;
      break;
    case INIT_ZEROS:
      memset(p, 0, n * sizeof *p);
      break;
    }
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

/* h Wᵀ + b, as nn.Linear. */
static sk_node linear(sk_graph *g, sk_node h, sk_node w, sk_node b) {
  return sk_add(g, sk_matmul(g, h, w, 0, 1), b);
}

/* After a convolution: + Dense(embedding) per channel, GroupNorm, SiLU. */
static sk_node unet_block(sk_model *m, sk_graph *g, const sk_node *p, int k, sk_node h,
                          sk_node emb, int64_t batch) {
  const sk_node *q = p + U_BLOCK0 + U_PER_BLOCK * k;
  const int64_t c = block_channels(&m->unet, k);
  sk_node d = sk_reshape(g, linear(g, emb, q[1], q[2]), 4, (int64_t[]){batch, c, 1, 1});
  /* silu(group_norm(h + d)) as one op: the activation is read twice from
   * cache instead of thirteen times from memory, and h + d never reaches
   * memory. */
  return sk_group_norm_silu_shift(g, h, d, block_groups(&m->unet, k), q[3], q[4], UNET_GN_EPS);
}

/* A class-conditional model's label term, added to h (B, E): labels (B, K + 1)
 * times the embedding table, or with no labels the "no label" row K for
 * every row. */
int sk__cond_model(const sk_model_config *c) {
  return (c->kind == SK_MODEL_NCMLP || c->kind == SK_MODEL_UNET) && c->classes > 0;
}

static sk_node add_label(sk_model *m, sk_graph *g, const sk_node *p, sk_node h, sk_node labels) {
  if (!sk__cond_model(&m->cfg)) return h;
  const int K = m->cfg.classes;
  const sk_node table = p[m->n_tensors - 1];
  if (labels != SK_NONE) return sk_add(g, h, sk_matmul(g, labels, table, 0, 0));
  const int64_t E = m->t[m->n_tensors - 1].shape[1];
  return sk_add(g, h, sk_reshape(g, sk_slice(g, table, 0, K, 1), 1, &E));
}

static sk_node unet_apply(sk_model *m, sk_graph *g, const sk_node *p, sk_node x, sk_node sigma,
                          sk_node labels) {
  const sk_unet_config *c = &m->unet;
  /* A bad x makes the reshape below record the build error with its shape. */
  const int64_t batch = sk_node_ndim(g, x) == 2 ? sk_node_shape(g, x)[0] : -1;
  const int64_t half = c->embed / 2;
  /* Gaussian Fourier features of log σ: [sin 2πWℓ, cos 2πWℓ], W fixed. */
  sk_node w = sk_reshape(g, sk_stop_grad(g, p[U_FREQ]), 2, (int64_t[]){1, half});
  sk_node arg = sk_affine(g, sk_mul(g, sk_log(g, sigma), w), TWO_PI, 0.0f);
  sk_node emb = sk_concat(g, sk_sin(g, arg), sk_cos(g, arg), 1);
  emb = add_label(m, g, p, sk_silu(g, linear(g, emb, p[U_EMBED_W], p[U_EMBED_B])), labels);
  const sk_conv2d_opts s1 = {{1, 1}, {0, 0}, {1, 1}, {0, 0}};
  const sk_conv2d_opts s2 = {{2, 2}, {0, 0}, {1, 1}, {0, 0}};
  const sk_conv2d_opts s2p = {{2, 2}, {0, 0}, {1, 1}, {1, 1}};
  const sk_node *q = p + U_BLOCK0;
  sk_node img = sk_reshape(g, x, 4, (int64_t[]){batch, c->image[0], c->image[1], c->image[2]});
  sk_node h1 = unet_block(m, g, p, 0, sk_conv2d(g, img, q[0], &s1), emb, batch);
  sk_node h2 = unet_block(m, g, p, 1, sk_conv2d(g, h1, q[5], &s2), emb, batch);
  sk_node h3 = unet_block(m, g, p, 2, sk_conv2d(g, h2, q[10], &s2), emb, batch);
  sk_node h4 = unet_block(m, g, p, 3, sk_conv2d(g, h3, q[15], &s2), emb, batch);
  /* The decoder takes each encoder output at its size as a skip. */
  sk_node h = unet_block(m, g, p, 4, sk_conv_transpose2d(g, h4, q[20], &s2), emb, batch);
  h = unet_block(m, g, p, 5, sk_conv_transpose2d(g, sk_concat(g, h, h3, 1), q[25], &s2p), emb,
                 batch);
  h = unet_block(m, g, p, 6, sk_conv_transpose2d(g, sk_concat(g, h, h2, 1), q[30], &s2p), emb,
                 batch);
  h = sk_conv_transpose2d(g, sk_concat(g, h, h1, 1), p[U_OUT_W], &s1);
  h = sk_add(g, h, sk_reshape(g, p[U_OUT_B], 3, (int64_t[]){c->image[0], 1, 1}));
  return sk_div(g, sk_reshape(g, h, 2, (int64_t[]){batch, m->cfg.dim}), sigma);
}

/* Gaussian Fourier features of log σ, [sin 2πWℓ, cos 2πWℓ] with W fixed,
 * through Linear and SiLU: (B, E). */
static sk_node fourier_embed(sk_graph *g, const sk_node *p, sk_node sigma, int64_t half) {
  sk_node w = sk_reshape(g, sk_stop_grad(g, p[0]), 2, (int64_t[]){1, half});
  sk_node arg = sk_affine(g, sk_mul(g, sk_log(g, sigma), w), TWO_PI, 0.0f);
  sk_node emb = sk_concat(g, sk_sin(g, arg), sk_cos(g, arg), 1);
  return sk_silu(g, linear(g, emb, p[1], p[2]));
}

/* The convnet's pooled features (B, channels[2]): three blocks of 3×3
 * convolution, + Dense(embedding) per channel, GroupNorm, SiLU, then the
 * mean over positions. */
static sk_node convnet_features(sk_model *m, sk_graph *g, const sk_node *p, sk_node x,
                                sk_node sigma) {
  const sk_convnet_config *c = &m->conv;
  const int64_t batch = sk_node_ndim(g, x) == 2 ? sk_node_shape(g, x)[0] : -1;
  sk_node emb = fourier_embed(g, p + C_FREQ, sigma, c->embed / 2);
  sk_node h = sk_reshape(g, x, 4, (int64_t[]){batch, c->image[0], c->image[1], c->image[2]});
  for (int k = 0; k < C_BLOCKS; k++) {
    const sk_node *q = p + C_BLOCK0 + C_PER_BLOCK * k;
    const int s = k == 0 ? 1 : 2;
    const sk_conv2d_opts o = {{s, s}, {0, 0}, {1, 1}, {0, 0}};
    sk_node d = sk_reshape(g, linear(g, emb, q[1], q[2]), 4,
                           (int64_t[]){batch, c->channels[k], 1, 1});
    h = sk_group_norm_silu_shift(g, sk_conv2d(g, h, q[0], &o), d, convnet_groups(c, k), q[3],
                                 q[4], UNET_GN_EPS);
  }
  const int64_t hw = convnet_side(c->image[1], 2) * convnet_side(c->image[2], 2);
  h = sk_sum(g, sk_reshape(g, h, 3, (int64_t[]){batch, c->channels[2], hw}), 2, 0);
  return sk_affine(g, h, 1.0f / (float)hw, 0.0f);
}

/* An MLP's last hidden layer (B, hidden), the input of its last Linear. */
static sk_node mlp_hidden(sk_model *m, sk_graph *g, const sk_node *params, sk_node x,
                          sk_node sigma, sk_node labels) {
  const sk_model_config *c = &m->cfg;
  sk_node h = x;
  if (c->kind != SK_MODEL_MLP) h = sk_concat(g, x, sk_log(g, sigma), 1);
  for (int l = 0; l < c->depth; l++) {
    h = linear(g, h, params[2 * l], params[2 * l + 1]);
    /* A conditional ncmlp adds its label embedding to the first layer. */
    if (l == 0) h = add_label(m, g, params, h, labels);
    h = activate(g, h, c->act);
  }
  return h;
}

/* A model-level build error, recorded on the graph as its builders record
 * theirs (the first one sticks; sk_graph_compile reports it). */
/* A build error on g, sticky like the graph's own, and the thread's last
 * error at once (as a failing builder call sets it). */
static sk_node apply_fail(sk_graph *g, const char *msg) {
  if (g && g->status == SK_OK) {
    snprintf(g->error, sizeof g->error, "%s", msg);
    g->status = SK_ERR_INVALID;
  }
  sk__fail(SK_ERR_INVALID, "%s", msg);
  return SK_NONE;
}

sk_node sk_model_apply(sk_model *m, sk_graph *g, const sk_node *params, sk_node x, sk_node sigma) {
  return sk_model_apply_labels(m, g, params, x, sigma, SK_NONE);
}

sk_node sk_model_apply_labels(sk_model *m, sk_graph *g, const sk_node *params, sk_node x,
                              sk_node sigma, sk_node labels) {
  const sk_model_config *c = &m->cfg;
  /* Only a class-conditional model has an embedding to read labels with. */
  if (labels != SK_NONE && !sk__cond_model(c))
    return apply_fail(g, "model: labels given to a model that is not class-conditional "
                         "(pass SK_NONE)");
  if (c->kind == SK_MODEL_UNET) return unet_apply(m, g, params, x, sigma, labels);
  if (c->kind == SK_MODEL_CONVNET)
    return linear(g, convnet_features(m, g, params, x, sigma), params[C_FC_W], params[C_FC_B]);
  sk_node h = mlp_hidden(m, g, params, x, sigma, labels);
  h = linear(g, h, params[2 * c->depth], params[2 * c->depth + 1]);
  if (c->kind == SK_MODEL_NCMLP) h = sk_div(g, h, sigma);
  return h;
}

int sk_model_num_features(const sk_model *m) {
  if (m->cfg.kind == SK_MODEL_CONVNET) return m->conv.channels[2];
  return m->cfg.kind == SK_MODEL_CLASSIFIER ? m->cfg.hidden : 0;
}

sk_node sk_model_apply_features(sk_model *m, sk_graph *g, const sk_node *params, sk_node x,
                                sk_node sigma) {
  if (sk_model_num_features(m) == 0)
    return apply_fail(g, "features: the model is a score model, not a classifier");
  if (m->cfg.kind == SK_MODEL_CONVNET) return convnet_features(m, g, params, x, sigma);
  return mlp_hidden(m, g, params, x, sigma, SK_NONE);
}

/* Rows a features graph takes at a time: a fixed chunk, so that the bits
 * do not depend on the thread count. */
enum { FEATURE_ROWS = 256 };

sk_status sk_model_features(sk_model *m, const float *x, int64_t n, float sigma, float *features,
                            float *logits) {
  const sk_model_config *c = &m->cfg;
  if (!sk_model_is_classifier(c))
    return sk__fail(SK_ERR_INVALID, "features: the model is a score model, not a classifier");
  if (n < 1 || !x)
    return sk__fail(SK_ERR_INVALID, "features: need at least one row, got %lld", (long long)n);
  if (!(sigma > 0) || !isfinite(sigma))
    return sk__fail(SK_ERR_INVALID, "features: σ must be positive and finite, got %g", sigma);
  const size_t d = (size_t)c->dim;
  for (size_t i = 0; i < (size_t)n * d; i++)
    if (!isfinite(x[i]))
      return sk__fail(SK_ERR_NUMERIC, "features: row %zu, column %zu is not finite (%g)", i / d,
                      i % d, (double)x[i]);
  const int64_t rows = SK_MIN(n, (int64_t)FEATURE_ROWS);
  const int F = sk_model_num_features(m), K = c->classes;
  sk_graph *g = sk_graph_new();
  if (!g) return sk__fail(SK_ERR_NOMEM, "features: out of memory for the graph");
  sk_node p[SK_MAX_TENSORS];
  sk_status st = sk_model_bind(m, g, NULL, p);
  sk_node xin = sk_input(g, "x", 2, (int64_t[]){rows, c->dim});
  sk_node sg = sk_input(g, "sigma", 2, (int64_t[]){rows, 1});
  sk_node outs[2];
  outs[0] = sk_model_apply_features(m, g, p, xin, sg);
  outs[1] = c->kind == SK_MODEL_CONVNET ? linear(g, outs[0], p[C_FC_W], p[C_FC_B])
                                        : linear(g, outs[0], p[2 * c->depth], p[2 * c->depth + 1]);
  if (st == SK_OK) st = sk_graph_compile(g, 2, outs);
  if (st == SK_OK) {
    float *s = sk_graph_data(g, sg);
    for (int64_t i = 0; i < rows; i++) s[i] = sigma;
  }
  for (int64_t r = 0; st == SK_OK && r < n; r += rows) {
    const int64_t nr = SK_MIN(rows, n - r);
    float *in = sk_graph_data(g, xin);
    memcpy(in, x + (size_t)r * d, (size_t)nr * d * sizeof *in);
    /* The last chunk's spare rows: zeros rather than the previous chunk's. */
    memset(in + (size_t)nr * d, 0, (size_t)(rows - nr) * d * sizeof *in);
    st = sk_graph_run(g);
    if (st != SK_OK) break;
    if (features)
      memcpy(features + (size_t)r * F, sk_graph_data(g, outs[0]), (size_t)(nr * F) * sizeof(float));
    if (logits)
      memcpy(logits + (size_t)r * K, sk_graph_data(g, outs[1]), (size_t)(nr * K) * sizeof(float));
  }
  sk_graph_free(g);
  return st;
}
