/* Private graph structures shared by build.c, grad.c, plan.c and run.c. A
 * backend sees only graph/backend.h. */
#ifndef SK_GRAPH_INTERNAL_H
#define SK_GRAPH_INTERNAL_H

#include "graph/backend.h"

/* How one planned node runs: its rows are split over the threads (units, 1
 * when it runs whole on one thread); a barrier first when it reads a value
 * another thread may still be writing, or writes memory another thread may
 * still be reading. */
typedef struct sk__step {
  int64_t units;
  int barrier;
  float *packed; /* b^T (k, n) for a·b^T, or NULL */
  /* The backend's scratch for this op, or NULL: part k (for rows from
   * k·SK_SPLIT_ROWS on) at scratch + k·scratch_part, scratch_part at least
   * the op's scratch_floats (graph/backend.h). */
  float *scratch;
  int64_t scratch_part;
  /* A reduction over the rows of the batch (a weight's gradient a^T·b, a
   * bias's sum over rows, a convolution's weight gradient over its samples)
   * done in two halves of the rows, fixed whatever the thread count, then
   * added: half p by the threads t ≡ p (mod 2), which on 2 threads computed
   * those rows, so that no thread reads another's rows and none of them
   * has to take cache lines back from another core when it next writes
   * them. Two partial results, or NULL. halves_split: a half's output rows
   * split over its threads (backend.h, halves 2), else whole on the first.
   * With scratch, a set of parts a half (plan.c). */
  float *halves;
  int halves_split;
  /* Consecutive steps of one phase with the same units form a group that
   * runs tile by tile: every op of the group on rows [r, r + tile) before the
   * next tile, so the values passed along stay in cache. Set on a group's
   * first step: the step after the group, and the tile's rows. */
  int group_end;
  int64_t tile;
  /* Consecutive elementwise steps of a group over values of one shape
   * (the backend's blockwise) form a fused run, done block by block of rows (at
   * most SK_FUSE_FLOATS floats): every op of the run on one block before
   * the next. A value read only inside its run lives in one of the thread's
   * SK_FUSE_REGS scratch blocks, which stay in L1 or L2, and never reaches its
   * buffer. Set on a run's first step: the step after the run. Per step:
   * where its output and inputs are, 0 for the buffer, r + 1 for scratch
   * block r. */
  int fuse_end;
  int8_t reg_out, reg_in[SK__MAX_IN];
  /* Inside a fused run: this step is softplus(x) and the next sigmoid(x)
   * (a softplus layer's derivative, scheduled beside it): both from one
   * e^−|x| (the backend's exec_pair). */
  int8_t pair;
  /* Inside a fused run: this step is affine(y, −1, 1), the next y · that
   * and the one after x · that (a sigmoid's derivative times a gradient,
   * graph/grad.c), the first two read nowhere else: all three in one pass
   * (the backend's exec_sigmoid_grad); 1 + the input of the third that is x. 3:
   * the first two alone (y(1 − y) is read twice, as in esm). */
  int8_t dsig;
} sk__step;

typedef struct sk__pack {
  sk_node src; /* the leaf b (n, k); its data pointer is read at run time */
  float *dst;  /* b^T (k, n) in the arena */
} sk__pack;

struct sk_graph {
  sk__node *nodes;
  int n, cap;
  sk_status status;
  char error[256];
  /* compiled plan */
  int compiled;
  float *arena;
  size_t arena_floats;
  size_t arena_limit; /* bytes the arena may take; 0: no limit (sk_graph_set_arena_limit) */
  int lean;           /* barriers to save memory (sk_graph_set_lean) */
  sk_node *exec;   /* nodes to run, in order */
  int n_exec;
  sk__step *steps; /* per exec entry: how it runs (run.c) */
  sk__pack *packs; /* b^T of a·b^T products with a leaf b, made at the start */
  int n_packs;
  int n_fused;     /* values fused runs keep in scratch (see sk__step) */
  int parallel;    /* enough work to start the thread pool for */
  sk__barrier barrier; /* where the threads of a run meet */
  sk_node *outs;
  int n_outs;
  const sk__backend *be; /* chosen at compile */
  /* The message of a run's first failure, on whichever thread, handed to
   * the caller's thread after the parallel region (sk_last_error is per
   * thread). */
  char run_error[256];
};

/* Whether the op table has a gradient rule for op (grad.c). */
int sk__op_has_grad_rule(int op);
/* Whether op's shape rule accepts (a, b) with y's parameters; if so y's ndim,
 * shape and numel are set, else why says what is wrong (build.c). */
int sk__op_shape(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap);

/* Appends a node with inputs and shape; records the first error. */
sk_node sk__add_node(sk_graph *g, sk__op op, sk_node a, sk_node b, int ndim, const int64_t *shape);

/* A node of one of the group-norm ops (GROUP_NORM_SILU and its gradient's
 * ops, ops.def) over x + shift (shift SK_NONE: x) with its groups and eps;
 * b and c its inputs 1 and 2 (c SK_NONE for the ops of three inputs). */
sk_node sk__group_norm_op(sk_graph *g, sk__op op, sk_node x, sk_node b, sk_node c, sk_node shift,
                          int groups, float eps);

/* Fused runs on (the default) or off for graphs compiled from now on: tests
 * compare the two bit for bit. */
void sk__graph_fusion(int on);

/* Buffers packed by offset where that needs less than slots (on, the
 * default) or always in slots, for graphs compiled from now on: tests check
 * that the packing wins and changes no bit. */
void sk__graph_packing(int on);

/* Values of at least this many floats may start a phase to reuse memory in
 * lean graphs (sk_graph_set_lean; 0: the default, SK_CUT_FLOATS) compiled
 * from now on: tests force the barriers on small graphs and compare the bits. */
void sk__graph_cut_floats(int64_t floats);

/* The first build error's message. */
const char *sk__graph_error(const sk_graph *g);

/* The work of node i as the backend sees it, split into `units` rows. */
sk__exec sk__exec_of(const sk_graph *g, sk_node i, int64_t units, const float *packed,
                     float *scratch, int64_t scratch_part);

/* Scratch parts of an op split into `units`: one per block of
 * SK_SPLIT_ROWS rows, one for an op that runs whole (backend.h). A step
 * run in halves has a set of them a half. */
static inline int64_t sk__scratch_parts(int64_t units) {
  return units <= 1 ? 1 : (units + SK_SPLIT_ROWS - 1) / SK_SPLIT_ROWS;
}

/* Runs steps [s, end) (with halves, see sk__step) as thread t of nt: every
 * half, a barrier (g->barrier, with the thread's sense), every sum. Every
 * thread must enter it. The first failure, or SK_OK. */
sk_status sk__run_halves(sk_graph *g, int s, int end, int t, int nt, int *sense);

#endif
