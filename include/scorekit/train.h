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
  int n_sigmas;                /* the noise ladder, largest first (ncsn, classifier; for
                                  vesde a geometric ladder between its σ_max and σ_min,
                                  which the samplers walk) */
  float sigmas[SK_MAX_LEVELS];
  float sigma;                 /* dsm's σ, or the level esm/ssm score a noise-conditional model at */
  int64_t steps;               /* training steps taken */
  uint64_t seed;
  char data[256];              /* the training data: a built-in name or a file path */
  float data_scale;            /* the data were divided by this when loaded (255 for 8-bit
                                  images, sk_dataset_scale); 0 or 1: not scaled */
  int64_t image_shape[3];      /* (c, h, w) when the data are images (sk_dataset_image_shape);
                                  zeros for rows */
} sk_model_info;

/* Writes the weights (names of sk_model_tensor_name), and when `ema` is not
 * NULL the EMA weights as "ema.<name>", with the model config and `info` as
 * JSON in the metadata key "scorekit"; atomically. `info` NULL: the config
 * alone. Nothing is written, SK_ERR_INVALID naming the field, for an info
 * sk_model_load would refuse or that cannot be read whole: an unknown
 * objective, n_sigmas outside 0..SK_MAX_LEVELS, a level that is not
 * positive, finite and below the one before, a σ or data_scale that is
 * negative or not finite, steps outside 0..2^53, a data name not ended
 * within its field or not UTF-8, an image_shape neither zeros nor the
 * model's dim; and
 * for a NULL path or model. */
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
  int n_sigmas;      /* ncsn, classifier: the ladder, strictly decreasing; vesde: at least 2
                      * levels, σ drawn log-uniform between the first (σ_max) and the
                      * last (σ_min) */
  const float *sigmas;
  sk_adam_config adam;
  uint64_t seed;
} sk_train_config;

typedef struct sk_trainer sk_trainer;

/* A trainer for model `m` on data `ds` (both borrowed; they must outlive it).
 * Validates the config against the model and data (dimension, classes).
 * The trainer owns the data set's batch stream: once made, it puts the data
 * set back at its start (sk_dataset_set_pos), so that a data set another
 * trainer drew from gives the batches of a fresh run; two trainers must not
 * draw from one data set in turn. */
SK_API sk_status sk_trainer_new(sk_model *m, sk_dataset *ds, const sk_train_config *cfg,
                                sk_trainer **out);
/* sk_trainer_new within `memory_limit` bytes for the model's parameters and
 * the trainer together (0: no limit): it estimates them (weights, EMA and
 * Adam's two moments at 4 bytes a parameter each, and the loss graph's arena,
 * which holds the gradients and a batch's activations) and refuses an
 * estimate over the limit with SK_ERR_NOMEM, a message giving the estimate
 * and its parts, before allocating the arena or the optimiser's state. */
SK_API sk_status sk_trainer_new_limited(sk_model *m, sk_dataset *ds, const sk_train_config *cfg,
                                        size_t memory_limit, sk_trainer **out);
/* Data parallelism: R processes each compute a share of every batch, and
 * their gradients are summed before the optimiser's step. */
typedef struct sk_train_share {
  /* This process computes rows [first_row, first_row + rows) of each batch
   * of cfg->batch (1 <= rows, first_row + rows <= batch). Every random draw
   * (which data rows, noise, projections, levels) is that of the same rows in
   * a run of the whole batch, and the data and RNG positions, hence the saved
   * state, are the whole batch's: a run resumes with any number of processes. */
  int first_row, rows;
  /* Called once a step with what this process computed: n floats, the
   * gradient in the parameters' order (sk_model_num_params floats; a fixed
   * tensor's part is zero), then the loss, each scaled by rows / batch. It
   * must replace them in place by their sum over the processes (the gradient
   * and loss of the whole batch), with the same bits in every process, so
   * that all take the same Adam step and keep the same weights. A status
   * other than SK_OK ends the step with that status, nothing updated. NULL:
   * no sum; the process steps on its own rows' mean. */
  sk_status (*reduce)(void *ctx, float *buf, size_t n);
  void *ctx;
} sk_train_share;

/* sk_trainer_new_limited for a process that computes `share` of each batch
 * (NULL: the whole batch, no reduction). The loss graph is built for
 * share->rows rows; with rows = batch and a reduce that leaves its buffer
 * as it is, the steps are those of sk_trainer_new, bit for bit. */
SK_API sk_status sk_trainer_new_share(sk_model *m, sk_dataset *ds, const sk_train_config *cfg,
                                      const sk_train_share *share, size_t memory_limit,
                                      sk_trainer **out);
SK_API void sk_trainer_free(sk_trainer *t);
/* One step: batch, noise, loss, gradients, (the share's reduction,) Adam.
 * *loss (may be NULL) gets the batch loss (the whole batch's, with a
 * share). SK_ERR_NUMERIC naming the step and the tensor if the loss or a
 * gradient is not finite; the weights are then left as before the step. */
SK_API sk_status sk_trainer_step(sk_trainer *t, float *loss, float *grad_norm);
/* A class-conditional model (classes K > 0) is fed each row's label, which
 * is replaced by "no label" with probability p, so that one network learns
 * the conditional and the unconditional score (classifier-free guidance,
 * sk_score_fn_cfg); 0.1 unless set. The draw for row r of step s is a pure
 * function of (seed, s, r). Set it before the first step (and before a
 * resume, which checks it against the saved run's): SK_ERR_STATE after,
 * SK_ERR_INVALID for p outside [0, 1] or an unconditional model. */
SK_API sk_status sk_trainer_set_label_dropout(sk_trainer *t, float p);
SK_API float sk_trainer_label_dropout(const sk_trainer *t);
SK_API int64_t sk_trainer_steps(const sk_trainer *t);
SK_API const float *sk_trainer_ema(sk_trainer *t);
/* Checkpoint: DIR/state.safetensors (weights, EMA, Adam moments, step, RNG
 * and data positions: all a resume needs, in one atomically written file),
 * then DIR/model.safetensors (weights, EMA, config: the export). `info` fills
 * the model file's metadata (its steps replaced by the trainer's); NULL: the
 * model file holds the config alone, as sk_model_save with a NULL info. An
 * info sk_model_save would refuse is refused before either file is written;
 * SK_ERR_INVALID for a NULL t or dir. */
SK_API sk_status sk_trainer_save(sk_trainer *t, const char *dir, const sk_model_info *info);
/* Restores DIR/state.safetensors into a trainer built with the same config
 * (SK_ERR_INVALID for a NULL t or dir),
 * so that continuing gives the same bits as never stopping. The state records
 * what defines its run and the resume refuses (SK_ERR_INVALID, nothing
 * restored) a trainer that differs in any of it: the objective, the model, the
 * seed, the data (rows, classes and a 64-bit fingerprint of the values and
 * labels), the σ ladder (ncsn, classifier, vesde) or σ (dsm, or a noise-conditional
 * model trained at one level), the batch size, the projections (ssm, ssm-vr)
 * the optimiser's settings (lr, betas, eps, clip, EMA rate) and a class-
 * conditional model's label dropout. Every field
 * of the state is checked (types, ranges, the counters' relations, tensor
 * shapes and values) before anything is restored: SK_ERR_FORMAT naming the
 * file and the field. A state without the run's settings (written before
 * they were recorded) is refused, as it cannot be checked. */
SK_API sk_status sk_trainer_resume(sk_trainer *t, const char *dir);

/* When the last sk_trainer_resume of `t` refused a state saved by another
 * run: the first setting that differs (checked in the order of the list
 * above): "objective", "model" (the kind), "dim", "hidden", "depth",
 * "classes", "activation", "arch" (anything else of the architecture),
 * "seed", "rows", "labels" (the data's number of classes), "data" (its
 * fingerprint), "sigmas", "sigma", "batch", "projections", "rademacher",
 * "lr", "beta1", "beta2", "eps", "clip", "ema", "label_dropout" (a class-
 * conditional model's); with this trainer's and the
 * saved run's values as text. */
typedef struct sk_run_mismatch {
  char setting[16];
  char ours[128], saved[128];
} sk_run_mismatch;
/* 1 and *out filled after such a refusal, else 0. */
SK_API int sk_trainer_resume_mismatch(const sk_trainer *t, sk_run_mismatch *out);

#ifdef __cplusplus
}
#endif
#endif
