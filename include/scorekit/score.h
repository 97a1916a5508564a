/* scorekit objectives: the score-matching losses of docs/MATH.md (and the
 * noise-conditional classifier's cross-entropy) as graphs ready to train. */
#ifndef SCOREKIT_SCORE_H
#define SCOREKIT_SCORE_H

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sk_objective {
  SK_OBJ_ESM,        /* ½‖s(x)‖² + tr ∇ₓs(x)  (Hyvärinen 2005) */
  SK_OBJ_DSM,        /* ½‖s(x + σz) + z/σ‖²    (Vincent 2011) */
  SK_OBJ_SSM,        /* vᵀ∇ₓs v + ½(vᵀs)²      (Song et al. 2019) */
  SK_OBJ_SSM_VR,     /* vᵀ∇ₓs v + ½‖s‖² */
  SK_OBJ_NCSN,       /* ½‖σᵢ s(x + σᵢz, σᵢ) + z‖², level i per sample (Song & Ermon 2019) */
  SK_OBJ_CLASSIFIER, /* −log p(y | x + σᵢz, σᵢ) */
  SK_OBJ_VESDE,      /* ½‖σ s(x + σz, σ) + z‖², σ log-uniform on [σ_min, σ_max] per sample
                      * (the variance-exploding SDE's continuous noise, Song et al. 2021) */
  SK_OBJ_COUNT
} sk_objective;

SK_API const char *sk_objective_name(sk_objective o);
/* SK_OBJ_COUNT for an unknown name or NULL ("esm", "dsm", "ssm", "ssm-vr", "ncsn", "classifier",
 * "vesde"). */
SK_API sk_objective sk_objective_parse(const char *name);

/* A loss graph for one batch shape. Rows: N = batch × projections for ssm
 * and ssm-vr (each sample repeated once per projection, so the loss is the
 * mean over samples of the mean over projections), N = batch otherwise.
 * The caller fills the inputs before each sk_graph_run. */
typedef struct sk_loss_graph {
  sk_graph *g;
  sk_node x;      /* (N, d) data */
  sk_node z;      /* (N, d) N(0, I) noise: dsm, ncsn, vesde, classifier; else SK_NONE */
  sk_node v;      /* (N, d) projections: ssm, ssm-vr; else SK_NONE */
  sk_node sigma;  /* (N, 1) noise level of each row: dsm, ncsn, vesde, classifier, and
                   * the level at which a noise-conditional model is scored by
                   * esm/ssm/ssm-vr; SK_NONE for an unconditional model there */
  sk_node onehot; /* (N, K) classifier targets; (N, K + 1) the labels of a class-conditional
                   * score model (sk_model_apply_labels); else SK_NONE */
  sk_node loss;   /* scalar: the batch mean */
  sk_node score;  /* (N, d) the model's output on the (perturbed) input */
  int n_grads;
  sk_node *grads; /* d loss / d tensor i of the model, in tensor order */
  int rows;
} sk_loss_graph;

/* Builds and compiles the loss of `obj` for model `m` at `batch` rows
 * (× `projections` for ssm/ssm-vr, ≥ 1). The model's parameters are bound
 * by pointer: updating them in place needs no rebuild. Errors: an objective
 * the model kind cannot serve (a classifier model for a score objective and
 * vice versa; vesde on a model without a σ input), bad sizes. Free with sk_loss_graph_free. */
SK_API sk_status sk_loss_graph_new(sk_model *m, sk_objective obj, int batch, int projections,
                                   sk_loss_graph *out);
SK_API void sk_loss_graph_free(sk_loss_graph *lg);

#ifdef __cplusplus
}
#endif
#endif
