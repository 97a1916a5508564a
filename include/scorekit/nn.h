/* scorekit networks: score models built from graph ops (MLPs and the
 * score-SDE tutorial's small U-Net), with all parameters in one contiguous
 * buffer of named views under PyTorch's module names, and the Adam optimiser
 * with an EMA of the weights. */
#ifndef SCOREKIT_NN_H
#define SCOREKIT_NN_H

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Smooth activations only: a ReLU net has a zero second derivative almost
 * everywhere, which silently breaks esm and ssm. */
typedef enum sk_activation {
  SK_ACT_SOFTPLUS,
  SK_ACT_ELU,
  SK_ACT_SILU,
  SK_ACT_TANH,
  SK_ACT_COUNT
} sk_activation;

SK_API const char *sk_activation_name(sk_activation a);
/* SK_ACT_COUNT for an unknown name (or NULL). */
SK_API sk_activation sk_activation_parse(const char *name);

typedef enum sk_model_kind {
  SK_MODEL_MLP,    /* s(x) = f(x) */
  SK_MODEL_NCMLP,  /* s(x, σ) = f([x, log σ]) / σ (NCSNv2's parameterisation) */
  SK_MODEL_CLASSIFIER, /* logits(x, σ) = f([x, log σ]), K outputs */
  SK_MODEL_UNET,   /* s(x, σ) = unet(x, log σ) / σ on images (docs/MATH.md) */
  SK_MODEL_CONVNET, /* logits(x, σ) = convnet(x, log σ) on images, K outputs (docs/MATH.md) */
  SK_MODEL_KIND_COUNT
} sk_model_kind;

typedef struct sk_model_config {
  sk_model_kind kind;
  int dim;     /* data dimension d */
  int hidden;  /* width of every hidden layer (MLPs) */
  int depth;   /* number of hidden layers (>= 1) (MLPs) */
  int classes; /* outputs of a classifier; for SK_MODEL_NCMLP and SK_MODEL_UNET the
                * classes the model is conditional on (0..65536, 0: unconditional; a
                * conditional ncmlp has depth <= 62), see sk_model_apply_labels;
                * ignored by SK_MODEL_MLP */
  sk_activation act; /* MLPs; a U-Net uses SiLU (stored as such) */
} sk_model_config;

/* The U-Net's shape, beside its sk_model_config (kind SK_MODEL_UNET, dim
 * C·H·W). Zero fields take the tutorial's values. A row x of the data is an
 * image (C, H, W) in C order. */
typedef struct sk_unet_config {
  int channels[4];   /* encoder widths, default 32, 64, 128, 256 */
  int image[3];      /* C, H, W, default 1, 28, 28; H and W ≡ 4 (mod 8), ≥ 20 */
  int embed;         /* noise-embedding width (even), default 256 */
  float embed_scale; /* std of the fixed Fourier frequencies, default 16 */
} sk_unet_config;

/* The convolutional classifier's shape, beside its sk_model_config (kind
 * SK_MODEL_CONVNET, dim C·H·W, classes K). Zero fields take the defaults,
 * except classes, which is required. A row x is an image (C, H, W). */
typedef struct sk_convnet_config {
  int channels[3];   /* widths of the three convolutions, default 32, 64, 128 */
  int image[3];      /* C, H, W, default 1, 28, 28; H and W ≥ 9 */
  int classes;       /* K, 2..65536 */
  int embed;         /* noise-embedding width (even), default 128 */
  float embed_scale; /* std of the fixed Fourier frequencies, default 16 */
} sk_convnet_config;

typedef struct sk_model sk_model;

/* A model with zero weights (see sk_model_init). NULL + last error on a NULL
 * or bad config (dim, hidden, depth, classes out of range) or allocation failure.
 * Kind SK_MODEL_UNET builds the tutorial's U-Net (dim must be 784 or 0). */
SK_API sk_model *sk_model_new(const sk_model_config *cfg);
/* A U-Net (u NULL: the tutorial's). NULL + last error on channels outside
 * 1..4096, an image the encoder and decoder cannot both fit (see
 * sk_unet_config), an odd embedding width or a scale that is not positive.
 * Its sk_model_config is {SK_MODEL_UNET, C·H·W, 0, 0, 0, SK_ACT_SILU}. */
SK_API sk_model *sk_model_new_unet(const sk_unet_config *u);
/* The same U-Net conditional on `classes` classes (1..65536; 0: the same as
 * sk_model_new_unet), see sk_model_apply_labels; its config's classes field
 * says so. (sk_model_new with kind SK_MODEL_UNET and classes > 0 gives the
 * tutorial's U-Net so conditioned.) */
SK_API sk_model *sk_model_new_unet_classes(const sk_unet_config *u, int classes);
/* A convolutional classifier (docs/MATH.md): NULL + last error on classes
 * outside 2..65536, channels outside 1..4096, an image side below 9 or
 * above 4096, more than 64 channels or 2^20 values, an odd embedding width
 * or a scale that is not positive. Its sk_model_config is
 * {SK_MODEL_CONVNET, C·H·W, 0, 0, K, SK_ACT_SILU}; sk_model_new with that
 * kind builds the default one for its classes (dim must be 784 or 0). */
SK_API sk_model *sk_model_new_convnet(const sk_convnet_config *c);
SK_API void sk_model_free(sk_model *m);
SK_API const sk_model_config *sk_model_get_config(const sk_model *m);
/* A U-Net's shape with its defaults filled in; NULL for the other kinds. */
SK_API const sk_unet_config *sk_model_get_unet(const sk_model *m);
/* The same for a convolutional classifier. */
SK_API const sk_convnet_config *sk_model_get_convnet(const sk_model *m);
/* 1 for the kinds whose output is K logits (SK_MODEL_CLASSIFIER,
 * SK_MODEL_CONVNET), trained by the classifier objective; 0 for score models. */
SK_API int sk_model_is_classifier(const sk_model_config *c);
/* PyTorch's default initialisation (nn.Linear, nn.Conv2d, nn.ConvTranspose2d:
 * weights and biases uniform in ±1/√fan_in; nn.GroupNorm: scale 1, shift 0)
 * and a U-Net's or convnet's Fourier frequencies N(0, embed_scale²), drawn from the
 * counter-based RNG for `seed`, one stream per tensor. */
SK_API void sk_model_init(sk_model *m, uint64_t seed);

/* The parameter buffer (sk_model_num_params floats), in tensor order. */
SK_API size_t sk_model_num_params(const sk_model *m);
SK_API float *sk_model_params(sk_model *m);
/* Named tensors: "mlp.{i}.weight" (out, in) and "mlp.{i}.bias" (out); the
 * prefix is "ncmlp" for SK_MODEL_NCMLP and "clf" for a classifier. A
 * U-Net's are the names of its PyTorch twin's state_dict (docs/FORMATS.md):
 * "embed.0.W", "embed.1.weight", "conv1.weight", "dense1.dense.weight",
 * "gnorm1.weight", ..., "tconv1.bias"; a convnet's likewise "embed.0.W",
 * "embed.1.weight", "embed.1.bias", then conv, dense and gnorm 1..3, then
 * "fc.weight" (K, F) and "fc.bias". A class-conditional ncmlp or U-Net
 * (K classes) ends with "label_embed.weight" (K + 1, E), as PyTorch's
 * nn.Embedding (and initialised as it is, N(0, 1)): row k is class k's
 * embedding, row K the "no label" one; E is the hidden width of an ncmlp,
 * the embedding width of a U-Net. */
SK_API int sk_model_num_tensors(const sk_model *m);
/* Tensor i (0 <= i < sk_model_num_tensors): its name, rank, shape, offset
 * and whether it is trained; an i out of range gives NULL or 0 (as
 * sk_safetensors_name does). */
SK_API const char *sk_model_tensor_name(const sk_model *m, int i);
SK_API int sk_model_tensor_ndim(const sk_model *m, int i);
SK_API const int64_t *sk_model_tensor_shape(const sk_model *m, int i);
/* Offset of tensor i in the parameter buffer, in floats. */
SK_API size_t sk_model_tensor_offset(const sk_model *m, int i);
/* 0 for a fixed tensor that training leaves alone (a U-Net's or convnet's Fourier
 * frequencies "embed.0.W", saved with the model like PyTorch's
 * requires_grad=False parameter): the model reads it through a stop-grad,
 * so its gradient in a loss graph is zero and the trainer skips it. */
SK_API int sk_model_tensor_trainable(const sk_model *m, int i);

/* Parameter nodes of `m` in graph `g`, bound to the model's buffer (or to
 * `params` if not NULL: e.g. the EMA copy), one per tensor written to out
 * (sk_model_num_tensors entries). */
SK_API sk_status sk_model_bind(sk_model *m, sk_graph *g, float *params, sk_node *out);
/* The network's output for a batch x (B, dim): the score (B, dim), or the
 * logits (B, classes) for a classifier. sigma (B, 1) is required by the
 * noise-conditional kinds and ignored (pass SK_NONE) by SK_MODEL_MLP. A
 * U-Net reshapes each row to its image (C, H, W) and its output back. */
SK_API sk_node sk_model_apply(sk_model *m, sk_graph *g, const sk_node *params, sk_node x,
                              sk_node sigma);
/* The same with class labels for a class-conditional model (classes K > 0):
 * labels (B, K + 1) holds a one-hot row per sample, column K meaning "no
 * label"; its product with "label_embed.weight" is added to a U-Net's noise
 * embedding (after its SiLU) or to an ncmlp's first hidden pre-activation.
 * labels SK_NONE gives every row "no label", the unconditional score (which
 * is also what sk_model_apply gives). An unconditional model takes SK_NONE:
 * a labels node given to one is a build error recorded on g (SK_ERR_INVALID,
 * reported by sk_graph_compile) and the result is SK_NONE. */
SK_API sk_node sk_model_apply_labels(sk_model *m, sk_graph *g, const sk_node *params, sk_node x,
                                     sk_node sigma, sk_node labels);

/* ---- a classifier's features ---- */
/* Width F of a classifier's penultimate layer, the input of its last Linear
 * (an MLP classifier's last hidden layer: hidden; a convnet's pooled
 * features: channels[2]); 0 for score models. */
SK_API int sk_model_num_features(const sk_model *m);
/* The penultimate layer's node (B, F) for x (B, dim) and sigma (B, 1): what
 * sk_model_apply feeds its last Linear. A score model (F = 0) has none: a
 * build error recorded on g (SK_ERR_INVALID) and SK_NONE. */
SK_API sk_node sk_model_apply_features(sk_model *m, sk_graph *g, const sk_node *params, sk_node x,
                                       sk_node sigma);
/* Runs classifier m (its own weights) on n rows x (n, dim), all at noise
 * level sigma > 0: features (n, F) and logits (n, K), either may be NULL.
 * Rows go through in chunks of a fixed size, so the result is the same bits
 * whatever the number of threads. SK_ERR_INVALID for a score model, n < 1
 * or a sigma that is not positive and finite; SK_ERR_NUMERIC for a value of
 * x that is not finite (naming row and column). */
SK_API sk_status sk_model_features(sk_model *m, const float *x, int64_t n, float sigma,
                                   float *features, float *logits);

/* ---- Adam (Kingma & Ba 2015) with an EMA of the weights ---- */
typedef struct sk_adam_config {
  float lr, beta1, beta2, eps;
  float clip_norm; /* clip the global gradient norm to this; 0 = off */
  float ema_rate;  /* ema ← rate·ema + (1 − rate)·θ after each step; 0 = off */
} sk_adam_config;

/* β1 0.9, β2 0.999, ε 1e-8, lr 1e-3, no clipping, EMA 0.999. */
SK_API sk_adam_config sk_adam_config_default(void);

typedef struct sk_adam sk_adam;
/* Optimiser state (moments, EMA) for n parameters; the EMA starts at `params`.
 * NULL + last error for a NULL cfg or params, settings out of range, or no
 * memory. */
SK_API sk_adam *sk_adam_new(const sk_adam_config *cfg, size_t n, const float *params);
SK_API void sk_adam_free(sk_adam *a);
/* One update of params (n) from grads (n). Returns the gradient's global norm
 * before clipping in *grad_norm (may be NULL). SK_ERR_NUMERIC if a gradient
 * is not finite (nothing is changed then); SK_ERR_INVALID for a NULL
 * argument other than grad_norm. */
SK_API sk_status sk_adam_step(sk_adam *a, float *params, const float *grads, float *grad_norm);
/* The gradient of one tensor, where a graph left it: rows × cols floats
 * for params[offset ...]. */
typedef struct sk_adam_part {
  const float *grad;
  size_t offset, rows, cols;
} sk_adam_part;
/* The same update with the gradients in parts (one per tensor), read where
 * the graph wrote them: no gather into one buffer, and each part is split
 * over the threads by rows exactly as the graph split the op that wrote it,
 * so every core updates what it computed. SK_ERR_NUMERIC if a gradient is
 * not finite or beyond 1e18 in magnitude (its square would overflow float),
 * naming the part and element; nothing is changed then. The norm is summed in
 * 16-row blocks, so its bits differ from sk_adam_step's (not between thread
 * counts). SK_ERR_INVALID, no step counted, for n_parts < 1, a NULL argument
 * other than grad_norm, or a part outside the parameters or with a NULL
 * gradient. */
SK_API sk_status sk_adam_step_parts(sk_adam *a, float *params, int n_parts,
                                    const sk_adam_part *parts, float *grad_norm);
/* sk_graph_run(g), then sk_adam_step_parts on the gradients it left (parts
 * point into g), in one parallel region: each thread goes from the graph's
 * last op straight to the update of the rows it computed. If guard is not
 * NULL (a value of g, such as its loss) and *guard is not finite after the
 * run, nothing is updated and the result is SK_ERR_NUMERIC. The errors of
 * sk_adam_step_parts' arguments come before the graph runs. */
SK_API sk_status sk_adam_step_graph(sk_adam *a, sk_graph *g, const float *guard, float *params,
                                    int n_parts, const sk_adam_part *parts, float *grad_norm);
SK_API int64_t sk_adam_steps(const sk_adam *a);
/* First and second moments and the EMA weights (n floats each), for
 * checkpoints; writable so that a resumed run can restore them. With
 * ema_rate 0 the EMA is the weights themselves: no step writes it, and
 * sk_adam_ema first copies in the parameters that the last step updated
 * (that memory must still be live then). */
SK_API float *sk_adam_m(sk_adam *a);
SK_API float *sk_adam_v(sk_adam *a);
SK_API float *sk_adam_ema(sk_adam *a);
/* The step count, for a resumed run. A step taken with a count outside
 * 0..INT64_MAX-1 (one the next step could not increase) fails with
 * SK_ERR_INVALID and changes nothing. */
SK_API void sk_adam_set_steps(sk_adam *a, int64_t t);

#ifdef __cplusplus
}
#endif
#endif
