/* Private to the score layer (score_fn.c, sample.c, objectives.c, train.c). */
#ifndef SK_SCORE_INTERNAL_H
#define SK_SCORE_INTERNAL_H

#include "nn/internal.h" /* sk__cond_model */
#include "scorekit/sample.h"
#include "scorekit/score.h"
#include "scorekit/train.h"

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
 * out (n, d) for x (n, d) at σ (n within the function's rows, σ and x's
 * finiteness checked);
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

/* SK_OK when model m can be trained on ds: a class-conditional model needs
 * labels and no more classes than its own. */
sk_status sk__cond_check(const sk_model_config *m, const sk_dataset *ds);
/* Whether row r of step s (0-based) trains without its label: a uniform
 * draw of the stream (seed, SK__STREAM_LABEL) at index 4·(s·2^20 + r), below p. */
int sk__label_dropped(uint64_t seed, int64_t step, int64_t row, float p);
#define SK__STREAM_LABEL 0x6c61626cULL /* "labl" */
/* vesde's noise level for a uniform draw u in [0, 1): σ_min (σ_max/σ_min)^u,
 * log-uniform on [σ_min, σ_max), computed in double and rounded once. */
float sk__vesde_sigma(float u, float sigma_max, float sigma_min);

/* Chunked runs (sample.c): the samplers and likelihoods split the rows into
 * fixed chunks of sk_score_fn_rows(f) rows that threads take in any order,
 * each with its own clone of the score function, its own scratch and its own
 * place in the random sequence, so the bits never depend on the threads. */
typedef struct sk__chunk {
  sk_score_fn *f;        /* this thread's copy */
  float *x;              /* the chunk's rows (nr, d), updated in place; NULL for a read-only run */
  const float *xin;      /* the same rows, read-only */
  const float *mask;     /* the chunk's rows of the plan's mask, or NULL */
  double *out;           /* the plan's per-row output (nr), or NULL */
  int64_t nr, first_row, index;
  int d;
  sk_rng rng;            /* at the chunk's own noise */
  void *scratch;         /* plan->scratch_bytes of this thread's */
  const void *cfg;
  const sk_sample_hooks *hooks;
  int64_t *done, total;  /* shared progress */
  int next_snapshot;     /* chunk 0 only records snapshots */
  sk_ode_stats stats;
} sk__chunk;

typedef struct sk__chunk_plan {
  const char *what;          /* for messages: "langevin", "pc", ... */
  sk_status (*fn)(sk__chunk *c);
  const void *cfg;
  size_t scratch_bytes;      /* per thread */
  uint64_t draws;            /* random draws of nr·d values each chunk takes */
  int64_t units;             /* progress units per chunk */
  const sk_sample_hooks *hooks;
  const float *mask;         /* (n, d), 1 where x is known (inpainting), or NULL */
} sk__chunk_plan;

/* Runs p->fn on the chunks of rows [first, first + count) of an n-row run
 * (whole chunks, or up to n; [0, n) for all of it) of x (in place) or xin
 * (read-only, x NULL), with per-row outputs out when not NULL, with the bits
 * those rows get in the whole run: x, xin and out hold those rows alone. r
 * advances past every chunk's draws of the whole run; the chunks' stats are
 * added into *stats when not NULL. */
sk_status sk__run_chunk_range(sk_score_fn *f, const sk__chunk_plan *p, sk_rng *r, float *x,
                              const float *xin, double *out, int64_t n, int64_t first,
                              int64_t count, sk_ode_stats *stats);
/* Reports `units` more done (progress hook; called by any thread, forwarded
 * from the calling one). */
void sk__chunk_progress(sk__chunk *c, int64_t units);
/* For a run of `total` evenly spaced steps of which `done` are done: records
 * chunk 0's row 0 into the snapshots now due. */
void sk__chunk_snapshot_steps(sk__chunk *c, int64_t done, int64_t total);
/* The known entries of an inpainting chunk (c->mask 1): the sampler puts
 * them back at their values noised to the chain's current level after every
 * step. Their noise comes after the sampler's own `own_draws` draws of the
 * chunk, so a sampler's bits do not change with a mask (all 0 or none). */
typedef struct sk__known {
  const float *mask;   /* NULL: nothing known, every call below a no-op */
  float *values;       /* x's entries at the start (nr·d) */
  float *noisy;        /* values + σ z (nr·d) */
  sk_rng rng;
} sk__known;
/* k for chunk c, with two buffers of nr·d floats from its scratch. */
void sk__known_init(sk__known *k, sk__chunk *c, float *values, float *noisy, uint64_t own_draws);
/* noisy ← values + σ z with a fresh z (one draw); σ = 0: the values exactly,
 * no draw. */
void sk__known_noise(sk__known *k, const sk__chunk *c, float sigma);
/* x ← noisy where the mask is 1. */
void sk__known_apply(const sk__known *k, sk__chunk *c);
/* The run of sk_pc_sample_rows and sk_langevin_rows with the known entries
 * of x (mask (n, d) 1, this call's rows) held (inpainting); mask NULL: the
 * samplers. */
sk_status sk__pc_rows(sk_score_fn *f, const sk_pc_config *cfg, sk_rng *r, float *x,
                      const float *mask, int64_t n, int64_t first, int64_t count);
sk_status sk__langevin_rows(sk_score_fn *f, const sk_langevin_config *cfg, sk_rng *r, float *x,
                            const float *mask, int64_t n, int64_t first, int64_t count);
/* The sampler's common checks of a σ range. */
sk_status sk__check_sigma_range(const char *what, float sigma_max, float sigma_min);
/* A sampler's pointers: f, cfg and r not NULL, nor x where count > 0 rows
 * are to be read. */
sk_status sk__check_run(const char *what, const sk_score_fn *f, const void *cfg, const sk_rng *r,
                        const void *x, int64_t count);
/* Hooks that ask for snapshots hold them: n_snapshots 0, or >= 2 with a
 * buffer. */
sk_status sk__check_hooks(const char *what, const sk_sample_hooks *h);
/* Rows [first, first + count) of an n-row run are whole chunks of
 * sk_score_fn_rows(f) (or end at n), and n rows of f's dimension can be
 * indexed; the message gives the numbers as passed. */
sk_status sk__check_row_range(const char *what, const sk_score_fn *f, int64_t n, int64_t first,
                              int64_t count);
/* The index of the first of x's nd values that is not finite, or -1. */
int64_t sk__first_not_finite(const float *x, size_t nd);
/* SK_ERR_NUMERIC "what: x[i, j] is v" for the first value of the n rows
 * of x (n, d) that is not finite, i counted from first_row. */
sk_status sk__check_rows_finite(const char *what, const float *x, int64_t n, int d,
                                int64_t first_row);
/* "what: sample i diverged (hint)" for the first row of x (nr, d) that is
 * not finite, i counted from first_row. */
sk_status sk__check_diverged(const char *what, const float *x, int64_t nr, int d,
                             int64_t first_row, const char *hint);
/* A sampler's score of the chunk's state at σ; a state the score refuses as
 * not finite is reported as the sampler's divergence (what, hint). */
sk_status sk__chunk_score(sk__chunk *c, float sigma, float *score, const char *what,
                          const char *hint);

/* SK_OK when sk_model_save would write `info` for m to path; else
 * SK_ERR_INVALID naming the field (model_file.c), so that the trainer
 * refuses a bad info before it writes its state. */
sk_status sk__model_info_check(const char *path, const sk_model *m, const sk_model_info *info);

#endif
