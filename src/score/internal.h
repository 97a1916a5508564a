/* Private to the score layer (score_fn.c, sample.c, objectives.c, train.c). */
#ifndef SK_SCORE_INTERNAL_H
#define SK_SCORE_INTERNAL_H

#include "scorekit/sample.h"
#include "scorekit/score.h"

/* A new score function like f, with its own compiled graphs (a graph is one
 * arena, so threads that evaluate at once each need their own). */
sk_status sk__score_fn_clone(const sk_score_fn *f, sk_score_fn **out);

/* sk_loss_graph_new with the compiled arena limited to `arena_limit` bytes
 * (0: no limit; see sk_graph_set_arena_limit). *arena_bytes (when not NULL)
 * gets the arena's size, also when the limit refused it (0 when the build
 * failed before planning). */
sk_status sk__loss_graph_new(sk_model *m, sk_objective obj, int batch, int projections,
                             size_t arena_limit, sk_loss_graph *out, size_t *arena_bytes);

/* ---- class-conditional models (cond.c, cfg.c, inpaint.c) ---- */

/* A score function whose evaluation lives in another file: eval computes
 * out (n, d) for x (n, d) at σ (n within the function's rows, σ checked);
 * clone makes an independent copy of the state (own graphs and buffers);
 * free releases it. */
typedef struct sk__score_ops {
  sk_status (*eval)(void *ctx, const float *x, int64_t n, float sigma, float *out);
  sk_status (*clone)(const void *ctx, void **out);
  void (*free)(void *ctx);
} sk__score_ops;
/* Wraps ctx (owned from here on: freed by ops->free, also on failure) as a
 * score function of `dim` dimensions taking up to `rows` rows; conditional:
 * σ must be positive. */
sk_status sk__score_fn_custom(const sk__score_ops *ops, void *ctx, int dim, int rows,
                              int conditional, sk_score_fn **out);
/* The state of a function made by sk__score_fn_custom, else NULL. */
void *sk__score_fn_ctx(const sk_score_fn *f);

/* Whether m is a class-conditional score model (label input, sk_model_apply_labels). */
int sk__cond_model(const sk_model_config *m);
/* SK_OK when model m can be trained on ds: a class-conditional model needs
 * labels and no more classes than its own. */
sk_status sk__cond_check(const sk_model_config *m, const sk_dataset *ds);
/* Whether row r of step s (0-based) trains without its label: a uniform
 * draw of the stream (seed, SK__STREAM_LABEL) at index 4·(s·2^20 + r), below p. */
int sk__label_dropped(uint64_t seed, int64_t step, int64_t row, float p);
#define SK__STREAM_LABEL 0x6c61626cULL /* "labl" */

#endif
