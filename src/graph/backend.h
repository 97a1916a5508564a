/* The interface between the graph and a kernel backend: the op table's facts,
 * the node a kernel reads, and the table of functions a backend provides
 * (capabilities, buffers, planning answers, execution). A backend is a folder
 * under src/kernels/ that includes this header, never graph/internal.h, and
 * one line in kernels/backends.def. docs/DESIGN.md says what each entry must
 * do. */
#ifndef SK_GRAPH_BACKEND_H
#define SK_GRAPH_BACKEND_H

#include "core/internal.h"
#include "scorekit/graph.h"

typedef enum sk__op {
#define X(e, id, arity, smooth, view, rows, flops) SK_OP_##e,
#include "graph/ops.def"
#undef X
  SK_OP_COUNT
} sk__op;

/* Which input rows output row r reads (ops.def's rows column). */
typedef enum sk__rows {
  SK__ROWS_NONE, SK__ROWS_EACH, SK__ROWS_IN0, SK__ROWS_AXIS, SK__ROWS_FIRST, SK__ROWS_PAIR,
  SK__ROWS_WHOLE
} sk__rows;
typedef enum sk__flops {
  SK__FLOPS_NONE, SK__FLOPS_ELEM, SK__FLOPS_IN, SK__FLOPS_MATMUL, SK__FLOPS_CONV
} sk__flops;

/* Integer parameters per node: a 2-D convolution's kernel, stride, padding,
 * dilation and output padding (2 each) and its groups fit, with room. */
#define SK__IPARAMS 16

/* The most inputs an op takes (ops.def's arity). An op's last input may be
 * optional (SK_NONE: the group-norm ops' shift); sk__node_arity counts the
 * inputs a node has. */
#define SK__MAX_IN 4

/* Where the three convolution ops (conv2d, conv_transpose2d, conv2d_weight)
 * keep their parameters in ip: pairs (height, width) from these indices,
 * then the groups. The transpose's output padding is rows and columns added
 * at the end of its output; the others keep it 0. */
enum {
  SK__CONV_STRIDE = 0,
  SK__CONV_PAD = 2,
  SK__CONV_DILATION = 4,
  SK__CONV_OUTPAD = 6,
  SK__CONV_KERNEL = 8,
  SK__CONV_GROUPS = 10 /* 1: every output channel reads every input channel */
};

typedef struct sk__node {
  sk__op op;
  int ndim;
  int64_t shape[SK_MAX_DIMS];
  int64_t numel;
  sk_node in[SK__MAX_IN];
  int32_t ip[SK__IPARAMS]; /* integer parameters (flags, axes, offsets, windows) */
  float fp[2];             /* float parameters (constants, affine) */
  float *data;             /* leaves: bound memory; after compile: the buffer */
  char *name;              /* inputs and parameters */
} sk__node;

const char *sk__op_name(sk__op op);
int sk__op_arity(sk__op op);
int sk__node_arity(const sk__node *n);
int sk__op_smooth(sk__op op);
int sk__op_view(sk__op op);
sk__rows sk__op_rows(sk__op op);
sk__flops sk__op_flops_kind(sk__op op);
/* Whether y's row r reads only row r of its input `which` (x), as the op
 * declares (ops.def); 0 for an op whose rows are never split. */
int sk__row_aligned(const sk__node *y, const sk__node *x, int which);
/* Floating-point operations of one evaluation of y, from the op's flops
 * column (a: its first input, or NULL for a leaf). */
double sk__op_flops(const sk__node *y, const sk__node *a);

/* The work of one op as a backend sees it: output, inputs and shapes. */
typedef struct sk__exec {
  sk__op op;
  float *out;
  const float *in[SK__MAX_IN];      /* NULL for an absent optional input */
  const sk__node *node, *a, *b, *c; /* shapes and parameters; NULL where absent */
  int64_t units;                    /* how many row units the op was split into */
  const float *packed;              /* b^T for a·b^T, or NULL */
  float *scratch;                   /* the backend's scratch for this op, or NULL: */
  int64_t scratch_part;             /* its part k at scratch + k·scratch_part */
} sk__exec;

/* The graph's executor gives every thread SK_FUSE_REGS scratch blocks of
 * SK_FUSE_FLOATS floats for fused runs (see graph/internal.h, sk__step). */
#define SK_FUSE_REGS 8
#define SK_FUSE_FLOATS 2048

/* A backend. The graph layer prunes, merges repeated nodes, folds constants,
 * orders the ops into phases and plans buffers by liveness; it asks the
 * backend how each op may be split and fused, and calls it to run them.
 * Entries marked optional may be NULL: the planner then does without the
 * corresponding optimisation. */
typedef struct sk__backend {
  const char *name;
  /* Once, before the first graph is compiled with this backend. */
  void (*init)(void);

  /* Capabilities. */
  int (*has_kernel)(sk__op op); /* exec runs op */
  int host_memory;              /* buffers are host memory (sk_graph_data) */

  /* Buffers: a compiled graph's arena, zeroed, on a 64-byte boundary. */
  float *(*alloc)(size_t floats);
  void (*free)(float *p);

  /* Planning. units: how many row units y is split into across threads (1:
   * whole on one thread; never more than 1 for an op whose rows are NONE).
   * tile_rows: the rows of a group's tile for values `width` floats per row.
   * Optional: blockwise (y can run block by block of its rows in a fused run,
   * see sk__step), fuse_rows (a fused block's rows for values w wide, 0 if
   * none fits in SK_FUSE_FLOATS), halves (y reduces over the rows of its
   * input a in two fixed halves, see sk__step: 1, each half on one thread;
   * 2, each half's output rows split over the threads that share it), pack
   * (the b^T of a·b^T with a leaf b is packed once per run). */
  int64_t (*units)(const sk__node *y, const sk__node *a, const sk__node *b);
  int64_t (*tile_rows)(int64_t width);
  int (*blockwise)(const sk__node *y, const sk__node *a, const sk__node *b);
  int64_t (*fuse_rows)(int64_t w);
  int (*halves)(const sk__node *y, const sk__node *a, const sk__node *b);
  int (*pack)(const sk__node *y, const sk__node *b);
  /* Optional: floats of scratch op y needs while it runs (0: none), per
   * part: a part for each block of SK_SPLIT_ROWS rows of its units (one for
   * all rows when it runs whole). The planner gives it e->scratch, part k at
   * e->scratch + k·e->scratch_part (scratch_part at least this much); a call
   * on rows [r0, r1) may use the parts of the blocks it covers, from part
   * r0 / SK_SPLIT_ROWS on, and nothing else. Ops split into as many units
   * share the memory (a thread's rows, and so its parts, are the same for
   * all of them; ops run in halves share theirs among themselves, with a
   * set of parts a half), so a call must not expect its scratch to outlive
   * it. Planned at compile, so that a run allocates nothing. */
  int64_t (*scratch_floats)(const sk__node *y, const sk__node *a, const sk__node *b);

  /* Execution, on the calling thread. exec: output rows [r0, r1) of e's
   * units. exec_block: rows [r0, r1) of a blockwise op, into out (a scratch
   * block) or, when out is NULL, its buffer; from in[k] (a scratch block
   * holding those rows) or, when NULL, the input's buffer. reduce_rows: e's
   * value over input rows [k0, k1) into out (halves), output rows [u0, u1)
   * of its units (all of them unless halves said 2), with e->scratch that
   * half's parts (scratch_floats' for a call on input rows [k0, k1)). add:
   * out = x + y over [e0, e1) (halves). pack_rows: rows [r0, r1) of bt
   * (k, n) = b^T for b (n, k); shared: other threads read bt. */
  sk_status (*exec)(const sk__exec *e, int64_t r0, int64_t r1);
  void (*exec_block)(const sk__exec *e, float *out, const float *const in[2], int64_t r0,
                     int64_t r1);
  sk_status (*reduce_rows)(const sk__exec *e, float *out, int64_t k0, int64_t k1, int64_t u0,
                           int64_t u1);
  void (*add)(float *out, const float *x, const float *y, int64_t e0, int64_t e1);
  void (*pack_rows)(float *bt, const float *b, int64_t n, int64_t k, int64_t r0, int64_t r1,
                    int shared);
  /* Optional fused patterns inside a fused run (see sk__step): rows [r0, r1)
   * of sp = softplus(x) and sg = sigmoid(x) from one input, and of
   * x · (y · (1 − y)) (kx < 0: y · (1 − y)) from a, the affine step, and c,
   * the last step. Outputs and inputs are scratch blocks or, when NULL, the
   * buffers. Each must give the bits of the ops it replaces. */
  void (*exec_pair)(const sk__exec *sp, const sk__exec *sg, float *out_sp, float *out_sg,
                    const float *in, int64_t r0, int64_t r1);
  void (*exec_sigmoid_grad)(const sk__exec *a, const sk__exec *c, int kx, float *out,
                            const float *y, const float *x, int64_t r0, int64_t r1);
} sk__backend;

/* The registered backends (kernels/backends.def), and the one graphs use. */
const sk__backend *sk__backend_default(void);
const sk__backend *sk__backend_by_name(const char *name);

#endif
