/* scorekit training: a trainer that draws batches, noise, projections and
 * noise levels from counter-based streams, runs a loss graph and steps Adam;
 * and checkpoints in the safetensors format (a PyTorch user loads the weights
 * with safetensors.torch.load_file; names follow nn.Linear, see docs/FORMATS.md). */
#ifndef SCOREKIT_TRAIN_H
#define SCOREKIT_TRAIN_H

#include "data.h"
#include "score.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_MAX_LEVELS 1024

/* What a checkpoint records besides the weights. */
typedef struct sk_model_info {
  sk_objective objective;
  int n_sigmas;                /* the noise ladder, largest first (ncsn, classifier) */
  float sigmas[SK_MAX_LEVELS];
  float sigma;                 /* dsm's σ, or the level esm/ssm score a noise-conditional model at */
  int64_t steps;               /* training steps taken */
  uint64_t seed;
  char data[256];              /* the training data: a built-in name or a file path */
} sk_model_info;

/* Writes the weights (names of sk_model_tensor_name), and when `ema` is not
 * NULL the EMA weights as "ema.<name>", with the model config and `info` as
 * JSON in the metadata key "scorekit"; atomically. */
SK_API sk_status sk_model_save(const char *path, const sk_model *m, const float *ema,
                               const sk_model_info *info);
/* Loads a model written by sk_model_save: its EMA weights when use_ema (an
 * error if the file has none), else the raw ones. `info` may be NULL. Errors
 * name the file and what is missing or inconsistent. The header is checked
 * before anything is allocated for the weights: each tensor the config needs
 * must be there with the config's shape (a config that claims a huge width is
 * refused by its first tensor, not by a failed allocation); then only those
 * tensors are read (other tensors, and the raw weights when use_ema, are
 * never read, nor checked for NaN). */
SK_API sk_status sk_model_load(const char *path, int use_ema, sk_model **out, sk_model_info *info);

typedef struct sk_train_config {
  sk_objective objective;
  int batch;
  int projections;   /* ssm, ssm-vr: M per sample */
  int rademacher;    /* ssm, ssm-vr: ±1 projections instead of Gaussian */
  float sigma;       /* dsm's σ; for esm/ssm/ssm-vr the level a noise-conditional model is trained at */
  int n_sigmas;      /* ncsn, classifier: the ladder, largest first */
  const float *sigmas;
  sk_adam_config adam;
  uint64_t seed;
} sk_train_config;

typedef struct sk_trainer sk_trainer;

/* A trainer for model `m` on data `ds` (both borrowed; they must outlive it).
 * Validates the config against the model and data (dimension, classes). */
SK_API sk_status sk_trainer_new(sk_model *m, sk_dataset *ds, const sk_train_config *cfg,
                                sk_trainer **out);
SK_API void sk_trainer_free(sk_trainer *t);
/* One step: batch, noise, loss, gradients, Adam. *loss (may be NULL) gets the
 * batch loss. SK_ERR_NUMERIC naming the step and the tensor if the loss or a
 * gradient is not finite; the weights are then left as before the step. */
SK_API sk_status sk_trainer_step(sk_trainer *t, float *loss, float *grad_norm);
SK_API int64_t sk_trainer_steps(const sk_trainer *t);
SK_API const float *sk_trainer_ema(sk_trainer *t);
/* Checkpoint: DIR/state.safetensors (weights, EMA, Adam moments, step, RNG
 * and data positions: all a resume needs, in one atomically written file),
 * then DIR/model.safetensors (weights, EMA, config: the export). `info` fills
 * the model file's metadata. */
SK_API sk_status sk_trainer_save(sk_trainer *t, const char *dir, const sk_model_info *info);
/* Restores DIR/state.safetensors into a trainer built with the same config,
 * so that continuing gives the same bits as never stopping. */
SK_API sk_status sk_trainer_resume(sk_trainer *t, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
