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

/* vesde's noise level for a uniform draw u in [0, 1): σ_min (σ_max/σ_min)^u,
 * log-uniform on [σ_min, σ_max), computed in double and rounded once. */
float sk__vesde_sigma(float u, float sigma_max, float sigma_min);

#endif
