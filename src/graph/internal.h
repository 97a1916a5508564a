/* Private graph structures shared by build.c, grad.c, plan.c and run.c, and the
 * interface a kernel backend implements (kernels/cpu today). */
#ifndef SK_GRAPH_INTERNAL_H
#define SK_GRAPH_INTERNAL_H

#include "core/internal.h"
#include "scorekit/graph.h"

typedef enum sk__op {
#define X(e, name, arity, smooth) SK_OP_##e,
#include "graph/ops.def"
#undef X
  SK_OP_COUNT
} sk__op;

typedef struct sk__node {
  sk__op op;
  int ndim;
  int64_t shape[SK_MAX_DIMS];
  int64_t numel;
  sk_node in[2];
  int32_t ip[SK_MAX_DIMS]; /* integer parameters (flags, axes, offsets) */
  float fp[2];             /* float parameters (constants, affine) */
  float *data;             /* leaves: bound memory; after compile: the buffer */
  char *name;              /* inputs and parameters */
} sk__node;

/* How one planned node runs: its rows are split over the threads (units, 1
 * when it runs whole on one thread); a barrier first when it reads a value
 * another thread may still be writing, or writes memory another thread may
 * still be reading. */
typedef struct sk__step {
  int64_t units;
  int barrier;
  float *packed; /* b^T (k, n) for a·b^T, or NULL */
  /* A reduction over the rows of the batch (a weight's gradient a^T·b, a
   * bias's sum over rows) done in two halves of the rows, fixed whatever the
   * thread count, each by the thread that computed those rows, then added:
   * no thread reads another's rows, so none of them has to take cache lines
   * back from another core when it next writes them. Two partial results,
   * or NULL. */
  float *halves;
  /* Consecutive steps of one phase with the same units form a group that
   * runs tile by tile: every op of the group on rows [r, r + tile) before the
   * next tile, so the values passed along stay in cache. Set on a group's
   * first step: the step after the group, and the tile's rows. */
  int group_end;
  int64_t tile;
  /* Consecutive elementwise steps of a group over values of one shape
   * (sk__cpu_blockwise) form a fused run, done block by block of rows (at
   * most SK_FUSE_FLOATS floats): every op of the run on one block before
   * the next. A value read only inside its run lives in one of the thread's
   * SK_FUSE_REGS scratch blocks, which stay in L1 or L2, and never reaches its
   * buffer. Set on a run's first step: the step after the run. Per step:
   * where its output and inputs are, 0 for the buffer, r + 1 for scratch
   * block r. */
  int fuse_end;
  int8_t reg_out, reg_in[2];
  /* Inside a fused run: this step is softplus(x) and the next sigmoid(x)
   * (a softplus layer's derivative, scheduled beside it): both from one
   * e^−|x| (sk__cpu_exec_pair). */
  int8_t pair;
  /* Inside a fused run: this step is affine(y, −1, 1), the next y · that
   * and the one after x · that (a sigmoid's derivative times a gradient,
   * graph/grad.c), the first two read nowhere else: all three in one pass
   * (sk__cpu_exec_sigmoid_grad); 1 + the input of the third that is x. 3:
   * the first two alone (y(1 − y) is read twice, as in esm). */
  int8_t dsig;
} sk__step;

/* 2048 floats (16 rows of 128) against 1024: +0.5-1.2 % on every toy step
 * (ABBA, 6 rounds each), each op called half as often; 4096 no better; the
 * big MLP the same. */
#define SK_FUSE_REGS 8
#define SK_FUSE_FLOATS 2048

/* The rows of a fused run's block for values w floats wide: as many as fit
 * in SK_FUSE_FLOATS, a multiple of 16 floats so that every block starts
 * where a tile's vector loop would be (a kernel's vector body and its scalar
 * tail may round differently); 0 if not even one such block fits. */
static inline int64_t sk__fuse_rows(int64_t w) {
  int64_t g = 16; /* the rows that make a multiple of 16 floats: 16 / gcd(w, 16) */
  while (g > 1 && (w * (g / 2)) % 16 == 0) g /= 2;
  return w > 0 && g * w <= SK_FUSE_FLOATS ? SK_FUSE_FLOATS / (g * w) * g : 0;
}

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
};

const char *sk__op_name(sk__op op);
int sk__op_arity(sk__op op);
int sk__op_smooth(sk__op op);
/* Whether the op table has a gradient rule for op (grad.c). */
int sk__op_has_grad_rule(int op);

/* Appends a node with inputs and shape; records the first error. */
sk_node sk__add_node(sk_graph *g, sk__op op, sk_node a, sk_node b, int ndim, const int64_t *shape);

/* Fused runs on (the default) or off for graphs compiled from now on: tests
 * compare the two bit for bit. */
void sk__graph_fusion(int on);

/* The first build error's message. */
const char *sk__graph_error(const sk_graph *g);

/* The work of one op, as the backend sees it: output, inputs and shapes. */
typedef struct sk__exec {
  sk__op op;
  float *out;
  const float *in[2];
  const sk__node *node, *a, *b; /* shapes and parameters */
  int64_t units;                /* how many row units the op was split into */
  const float *packed;          /* b^T for a·b^T, or NULL */
} sk__exec;

/* The work of node i as the backend sees it, split into `units` rows. */
sk__exec sk__exec_of(const sk_graph *g, sk_node i, int64_t units, const float *packed);

/* The CPU backend (kernels/cpu/dispatch.c). */
void sk__cpu_init(void);
/* Output rows [r0, r1) of e's units. */
sk_status sk__cpu_exec(const sk__exec *e, int64_t r0, int64_t r1);
/* The number of units y is split into: rows of its first dimension, or 1. */
int64_t sk__cpu_units(const sk__node *y, const sk__node *a, const sk__node *b);
/* Whether y's row r reads only row r of its input `which` (x). */
int sk__cpu_row_aligned(const sk__node *y, const sk__node *x, int which);
/* Runs steps [s, end) (with halves, see sk__step) as thread t of nt: every
 * half, a barrier (g->barrier, with the thread's sense), every sum. Every
 * thread must enter it. */
sk_status sk__run_halves(sk_graph *g, int s, int end, int t, int nt, int *sense);
/* e's value over rows [k0, k1) of the rows it reduces (a weight gradient
 * a^T·b, a row sum), into out. */
void sk__cpu_reduce_rows(const sk__exec *e, float *out, int64_t k0, int64_t k1);
/* out[i] = x[i] + y[i] for i in [e0, e1). */
void sk__cpu_add(float *out, const float *x, const float *y, int64_t e0, int64_t e1);
/* Whether y can run block by block of its rows in a fused run: an
 * elementwise op on a (rows, w) value, sk__fuse_rows(w) > 0, whose inputs are
 * the same size, scalars, rows (w) or columns (rows, 1). */
int sk__cpu_blockwise(const sk__node *y, const sk__node *a, const sk__node *b);
/* Rows [r0, r1) of a blockwise op: into out (a scratch block) or, when out
 * is NULL, its buffer; from in[k] (a scratch block holding those rows) or,
 * when in[k] is NULL, the input's buffer. */
void sk__cpu_exec_block(const sk__exec *e, float *out, const float *const in[2], int64_t r0,
                        int64_t r1);
/* Rows [r0, r1) of sp = softplus(x) and sg = sigmoid(x), one fused run's
 * pair of steps over the same input (see sk__step's pair): into out_sp,
 * out_sg (scratch blocks) or, when NULL, the steps' buffers; from in (a
 * scratch block) or, when NULL, x's buffer. The bits of the two ops. */
void sk__cpu_exec_pair(const sk__exec *sp, const sk__exec *sg, float *out_sp, float *out_sg,
                       const float *in, int64_t r0, int64_t r1);
/* Rows [r0, r1) of a fused run's sigmoid derivative (see sk__step's dsig):
 * a is the affine step, c the last step, whose input kx is x (kx < 0: no x);
 * out, y and x are scratch blocks or, when NULL, the buffers. */
void sk__cpu_exec_sigmoid_grad(const sk__exec *a, const sk__exec *c, int kx, float *out,
                               const float *y, const float *x, int64_t r0, int64_t r1);
/* Rows [r0, r1) of bt (k, n) = b^T for b (n, k); shared 1: other threads
 * read bt (stored past the cache, see sk__transpose_rows). */
void sk__cpu_pack(float *bt, const float *b, int64_t n, int64_t k, int64_t r0, int64_t r1,
                  int shared);

#endif
