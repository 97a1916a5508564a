/* Graph construction: nodes, shape inference with sticky errors, and the
 * composite builders made of primitives. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "graph/internal.h"

/* Every op's shape rule, declared here and defined below, for the table. */
#define X(e, id, arity, smooth, view, rows, flops)                                          \
  static int shape_##id(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap);
#include "graph/ops.def"
#undef X

/* The op table (graph/ops.def), one row per op. */
typedef int (*shape_rule)(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap);
static const struct op_info {
  const char *name;
  int arity, smooth, view;
  sk__rows rows;
  sk__flops flops;
  shape_rule shape;
} ops[] = {
#define X(e, id, arity, smooth, view, rows, flops)                                          \
  {#id, arity, smooth, view, SK__ROWS_##rows, SK__FLOPS_##flops, shape_##id},
#include "graph/ops.def"
#undef X
};
_Static_assert(sizeof ops / sizeof ops[0] == SK_OP_COUNT, "op table");

const char *sk__op_name(sk__op op) { return (unsigned)op < SK_OP_COUNT ? ops[op].name : "?"; }
int sk__op_arity(sk__op op) { return ops[op].arity; }
int sk__node_arity(const sk__node *n) {
  int k = ops[n->op].arity;
  while (k > 2 && n->in[k - 1] == SK_NONE) k--; /* an absent optional input */
  return k;
}
int sk__op_smooth(sk__op op) { return ops[op].smooth; }
int sk__op_view(sk__op op) { return ops[op].view; }
sk__rows sk__op_rows(sk__op op) { return ops[op].rows; }
sk__flops sk__op_flops_kind(sk__op op) { return ops[op].flops; }

int sk__row_aligned(const sk__node *y, const sk__node *x, int which) {
  if (x->ndim != y->ndim || x->ndim == 0 || x->shape[0] != y->shape[0]) return 0;
  switch (ops[y->op].rows) {
  case SK__ROWS_EACH: return 1;
  case SK__ROWS_IN0: return which == 0 && !y->ip[0];
  case SK__ROWS_AXIS: return y->ip[0] != 0;
  case SK__ROWS_FIRST: return which == 0;
  case SK__ROWS_PAIR: return which <= 1 || (which >= 2 && which == ops[y->op].arity - 1);
  case SK__ROWS_WHOLE: return 0;
  case SK__ROWS_NONE: return 0;
  }
  return 0;
}

/* The output size along one axis of a convolution of an input `in` long:
 * (in + 2·pad − dil·(k − 1) − 1) / stride + 1, rounded down; 0 where the
 * dilated kernel does not fit the padded input. */
static int64_t conv_out(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  const int64_t span = in + 2 * pad - dil * (k - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

/* The multiply-adds of a convolution op: per element of the convolution's
 * output, one per input channel and kernel tap (padding included, as
 * PyTorch's profiler counts them). */
static double conv_macs(const sk__node *y, const sk__node *a) {
  const int32_t *ip = y->ip;
  const double taps = (double)ip[SK__CONV_KERNEL] * (double)ip[SK__CONV_KERNEL + 1];
  switch (y->op) {
  case SK_OP_CONV2D: return (double)y->numel * (double)a->shape[1] * taps;
  case SK_OP_CONV_TRANSPOSE2D: return (double)a->numel * (double)y->shape[1] * taps;
  default: { /* conv2d_weight (O, C, KH, KW) from x (N, C, H, W) */
    const int64_t oh = conv_out(a->shape[2], ip[SK__CONV_KERNEL], ip[SK__CONV_STRIDE],
                                ip[SK__CONV_PAD], ip[SK__CONV_DILATION]);
    const int64_t ow = conv_out(a->shape[3], ip[SK__CONV_KERNEL + 1], ip[SK__CONV_STRIDE + 1],
                                ip[SK__CONV_PAD + 1], ip[SK__CONV_DILATION + 1]);
    return (double)y->numel * (double)a->shape[0] * (double)oh * (double)ow;
  }
  }
}

double sk__op_flops(const sk__node *y, const sk__node *a) {
  switch (ops[y->op].flops) {
  case SK__FLOPS_ELEM: return (double)y->numel;
  case SK__FLOPS_IN: return a ? (double)a->numel : 0.0;
  case SK__FLOPS_MATMUL: /* a multiply and an add per term of each inner product */
    return 2.0 * (double)y->numel * (double)(y->ip[0] ? a->shape[0] : a->shape[1]);
  case SK__FLOPS_CONV: return 2.0 * conv_macs(y, a);
  case SK__FLOPS_NONE: return 0.0;
  }
  return 0.0;
}

/* Whether a shape has no negative dimension and not too many elements
 * (sk__shape_numel); if so its element count into *numel, else why says
 * which. */
static int numel_ok(int ndim, const int64_t *shape, int64_t *numel, char *why, size_t cap) {
  *numel = sk__shape_numel(ndim, shape);
  if (*numel >= 0) return 1;
  char s[128];
  sk__shape_str(s, sizeof s, ndim, shape);
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0) return snprintf(why, cap, "negative dimension in shape %s", s), 0;
  snprintf(why, cap, "shape %s is too large: its nonzero dimensions multiply to 2^60 or more", s);
  return 0;
}

int sk__op_shape(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap) {
  why[0] = 0;
  /* A shape asked for (a leaf's, sum_to's, expand's, reshape's: set before
   * the rule; other ops' are empty here) first, so that the rules see valid
   * shapes; then the one the rule made. */
  int64_t numel;
  if (!numel_ok(y->ndim, y->shape, &numel, why, cap) || !ops[y->op].shape(y, a, b, why, cap) ||
      !numel_ok(y->ndim, y->shape, &numel, why, cap))
    return 0;
  y->numel = numel;
  return 1;
}

sk_graph *sk_graph_new(void) {
  sk_graph *g = sk__calloc(1, sizeof *g);
  if (!g) sk__fail(SK_ERR_NOMEM, "out of memory for a graph");
  return g;
}

void sk_graph_free(sk_graph *g) {
  if (!g) return;
  for (int i = 0; i < g->n; i++) sk__free(g->nodes[i].name);
  sk__free(g->nodes);
  if (g->arena) g->be->free(g->arena);
  sk__free(g->exec);
  sk__free(g->steps);
  sk__free(g->packs);
  sk__free(g->outs);
  sk__free(g);
}

/* A call given no graph: there is nothing to record the error on but the
 * thread's last error. SK_NONE. */
static sk_node no_graph(const char *fn) {
  sk__fail(SK_ERR_INVALID, "%s: NULL graph", fn);
  return SK_NONE;
}

sk_status sk_graph_status(const sk_graph *g) {
  return g ? g->status : sk__fail(SK_ERR_INVALID, "%s: NULL graph", __func__);
}
int sk_graph_num_nodes(const sk_graph *g) { return g ? g->n : (no_graph(__func__), 0); }

/* Records the first error on the graph, also as the thread's last error
 * (the failing builder call's), and returns SK_NONE. */
static sk_node build_fail(sk_graph *g, sk_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static sk_node build_fail(sk_graph *g, sk_status st, const char *fmt, ...) {
  if (g->status == SK_OK) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->error, sizeof g->error, fmt, ap);
    va_end(ap);
    g->status = st;
    sk__fail(st, "%s", g->error);
  }
  return SK_NONE;
}

static int valid(const sk_graph *g, sk_node n) { return n >= 0 && n < g->n; }

/* A node of op on inputs a, b (SK_NONE for none) with y's parameters (ip,
 * fp; for a leaf and for sum_to, expand and reshape, the shape asked for):
 * checked by the op's shape rule, which sets the shape. */
static sk__node proto(sk__op op, sk_node a, sk_node b) {
  sk__node y;
  memset(&y, 0, sizeof y);
  y.op = op;
  y.in[0] = a;
  y.in[1] = b;
  for (int k = 2; k < SK__MAX_IN; k++) y.in[k] = SK_NONE;
  return y;
}

static int shift_ok(const sk__node *X, const sk__node *D, char *why, size_t cap);

/* Checks y's inputs and runs its shape rule; 0 (with the error recorded on
 * the graph) if either fails. */
static int shaped(sk_graph *g, sk__node *y) {
  const char *name = sk__op_name(y->op);
  if (!g) return no_graph(name), 0;
  if (g->status != SK_OK) return 0;
  if (g->compiled) return build_fail(g, SK_ERR_STATE, "%s: graph already compiled", name), 0;
  for (int k = 0; k < sk__node_arity(y); k++)
    if (!valid(g, y->in[k]))
      return build_fail(g, SK_ERR_INVALID, "%s: invalid node %d", name, y->in[k]), 0;
  if (y->ndim < 0 || y->ndim > SK_MAX_DIMS)
    return build_fail(g, SK_ERR_SHAPE, "%s: rank %d outside 0..%d", name, y->ndim, SK_MAX_DIMS), 0;
  const sk__node *a = sk__op_arity(y->op) > 0 ? &g->nodes[y->in[0]] : NULL;
  const sk__node *b = sk__op_arity(y->op) > 1 ? &g->nodes[y->in[1]] : NULL;
  char why[192];
  const int last = sk__op_arity(y->op) - 1; /* an optional shift, where there is one */
  if (!sk__op_shape(y, a, b, why, sizeof why) ||
      (last >= 2 && y->in[last] != SK_NONE && !shift_ok(a, &g->nodes[y->in[last]], why, sizeof why)))
    return build_fail(g, SK_ERR_SHAPE, "%s: %s", name, why), 0;
  return 1;
}

/* Appends y, already shaped. */
static sk_node append(sk_graph *g, const sk__node *y) {
  if (g->n == g->cap) {
    int cap = g->cap ? 2 * g->cap : 64;
    sk__node *p = sk__realloc(g->nodes, (size_t)cap * sizeof *p);
    if (!p) return build_fail(g, SK_ERR_NOMEM, "out of memory for graph nodes");
    g->nodes = p;
    g->cap = cap;
  }
  g->nodes[g->n] = *y;
  return g->n++;
}

static sk_node add(sk_graph *g, sk__node *y) { return shaped(g, y) ? append(g, y) : SK_NONE; }

int sk_node_ndim(const sk_graph *g, sk_node n) {
  if (!g) return no_graph(__func__), 0;
  return valid(g, n) ? g->nodes[n].ndim : 0;
}
const int64_t *sk_node_shape(const sk_graph *g, sk_node n) {
  if (!g) return no_graph(__func__), NULL;
  return valid(g, n) ? g->nodes[n].shape : NULL;
}
int64_t sk_node_numel(const sk_graph *g, sk_node n) {
  if (!g) return no_graph(__func__), 0;
  return valid(g, n) ? g->nodes[n].numel : 0;
}

/* Sets y's shape to (ndim, shape) for the rules that take it as a parameter;
 * a rank out of range is left for shaped() to report. 0, with the error
 * recorded, for no shape of a rank above 0. */
static int ask_shape(sk_graph *g, sk__node *y, int ndim, const int64_t *shape) {
  if (ndim > 0 && !shape)
    return build_fail(g, SK_ERR_INVALID, "%s: NULL shape for rank %d", sk__op_name(y->op), ndim), 0;
  y->ndim = ndim;
  for (int i = 0; i >= 0 && i < ndim && i < SK_MAX_DIMS; i++) y->shape[i] = shape[i];
  return 1;
}

/* ---- leaves ---- */

static sk_node leaf(sk_graph *g, sk__op op, const char *name, int ndim, const int64_t *shape) {
  if (!g) return no_graph(sk__op_name(op));
  sk__node y = proto(op, SK_NONE, SK_NONE);
  if (!ask_shape(g, &y, ndim, shape)) return SK_NONE;
  sk_node n = add(g, &y);
  if (n == SK_NONE || !name) return n;
  g->nodes[n].name = sk__strdup(name);
  if (!g->nodes[n].name) return build_fail(g, SK_ERR_NOMEM, "out of memory for a node name");
  return n;
}

sk_node sk_input(sk_graph *g, const char *name, int ndim, const int64_t *shape) {
  return leaf(g, SK_OP_INPUT, name, ndim, shape);
}

sk_node sk_param(sk_graph *g, const char *name, int ndim, const int64_t *shape, float *data) {
  if (!g) return no_graph("param");
  if (!data) return build_fail(g, SK_ERR_INVALID, "param %s: NULL data", name ? name : "");
  sk_node n = leaf(g, SK_OP_PARAM, name, ndim, shape);
  if (n != SK_NONE) g->nodes[n].data = data;
  return n;
}

sk_node sk_fill(sk_graph *g, float value, int ndim, const int64_t *shape) {
  sk_node n = leaf(g, SK_OP_CONST, NULL, ndim, shape);
  if (n != SK_NONE) g->nodes[n].fp[0] = value;
  return n;
}

sk_node sk_scalar(sk_graph *g, float value) {
  if (!g) return no_graph(__func__);
  return sk_fill(g, value, 0, NULL);
}

/* ---- shape rules (one per op, named in ops.def) ---- */

/* Writes "what: (shape of a) and (shape of b)"-style messages. */
static int why2(char *why, size_t cap, const char *what, const sk__node *a, const sk__node *b) {
  char sa[64], sb[64];
  sk__shape_str(sa, sizeof sa, a->ndim, a->shape);
  sk__shape_str(sb, sizeof sb, b->ndim, b->shape);
  snprintf(why, cap, what, sa, sb);
  return 0;
}

static int why_shapes(char *why, size_t cap, const char *what, const sk__node *a, int ndim,
                      const int64_t *shape) {
  char sa[64], sb[64];
  sk__shape_str(sa, sizeof sa, a->ndim, a->shape);
  sk__shape_str(sb, sizeof sb, ndim, shape);
  snprintf(why, cap, what, sa, sb);
  return 0;
}

/* Leaves have the shape they were given (checked by sk__op_shape). */
static int shape_input(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap) {
  return 1;
}
static int shape_param(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap) {
  return shape_input(y, a, b, why, cap);
}
static int shape_const(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap) {
  return shape_input(y, a, b, why, cap);
}

static int shape_matmul(sk__node *y, const sk__node *A, const sk__node *B, char *why, size_t cap) {
  const int ta = y->ip[0], tb = y->ip[1];
  if (A->ndim != 2 || B->ndim != 2)
    return why2(why, cap, "operands must be 2-D, got %s and %s", A, B);
  const int64_t m = ta ? A->shape[1] : A->shape[0], ka = ta ? A->shape[0] : A->shape[1];
  const int64_t kb = tb ? B->shape[1] : B->shape[0], n = tb ? B->shape[0] : B->shape[1];
  if (ka != kb) {
    char fmt[64];
    snprintf(fmt, sizeof fmt, "inner dimensions differ: %%s%s @ %%s%s", ta ? "^T" : "",
             tb ? "^T" : "");
    return why2(why, cap, fmt, A, B);
  }
  y->ndim = 2;
  y->shape[0] = m;
  y->shape[1] = n;
  return 1;
}

/* numpy broadcasting of two shapes. */
static int shape_binary(sk__node *y, const sk__node *A, const sk__node *B, char *why, size_t cap) {
  const int nd = SK_MAX(A->ndim, B->ndim);
  for (int i = 0; i < nd; i++) {
    const int ia = A->ndim - nd + i, ib = B->ndim - nd + i;
    const int64_t da = ia >= 0 ? A->shape[ia] : 1, db = ib >= 0 ? B->shape[ib] : 1;
    if (da != db && da != 1 && db != 1) return why2(why, cap, "shapes %s and %s do not broadcast", A, B);
    y->shape[i] = da == 1 ? db : da;
  }
  y->ndim = nd;
  return 1;
}
static int shape_add(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap) {
  return shape_binary(y, a, b, why, cap);
}
static int shape_sub(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap) {
  return shape_binary(y, a, b, why, cap);
}
static int shape_mul(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap) {
  return shape_binary(y, a, b, why, cap);
}
static int shape_div(sk__node *y, const sk__node *a, const sk__node *b, char *why, size_t cap) {
  return shape_binary(y, a, b, why, cap);
}

/* The input's shape. */
static int shape_same(sk__node *y, const sk__node *a) {
  y->ndim = a->ndim;
  memcpy(y->shape, a->shape, sizeof y->shape);
  return 1;
}
#define SAME_SHAPE(id)                                                                        \
  static int shape_##id(sk__node *y, const sk__node *a, const sk__node *b, char *why,        \
                        size_t cap) {                                                        \
    return shape_same(y, a);                                                                 \
  }
SAME_SHAPE(neg)
SAME_SHAPE(affine)
SAME_SHAPE(exp)
SAME_SHAPE(log)
SAME_SHAPE(sqrt)
SAME_SHAPE(tanh)
SAME_SHAPE(sin)
SAME_SHAPE(cos)
SAME_SHAPE(sigmoid)
SAME_SHAPE(softplus)
SAME_SHAPE(step)
SAME_SHAPE(stop_grad)
#undef SAME_SHAPE

/* Can `from` broadcast to `to` (numpy rules)? */
static int broadcasts_to(int nf, const int64_t *from, int nt, const int64_t *to) {
  if (nf > nt) return 0;
  for (int i = 0; i < nf; i++) {
    int64_t f = from[i], t = to[nt - nf + i];
    if (f != t && f != 1) return 0;
  }
  return 1;
}

static int same_shape(int na, const int64_t *a, int nb, const int64_t *b) {
  if (na != nb) return 0;
  for (int i = 0; i < na; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/* The shape asked for (y's) must broadcast to the input's. */
static int shape_sum_to(sk__node *y, const sk__node *A, const sk__node *b, char *why, size_t cap) {
  if (broadcasts_to(y->ndim, y->shape, A->ndim, A->shape)) return 1;
  return why_shapes(why, cap, "%s cannot be summed to %s", A, y->ndim, y->shape);
}

/* The input's shape must broadcast to the one asked for. */
static int shape_expand(sk__node *y, const sk__node *A, const sk__node *b, char *why, size_t cap) {
  if (broadcasts_to(A->ndim, A->shape, y->ndim, y->shape)) return 1;
  return why_shapes(why, cap, "%s does not broadcast to %s", A, y->ndim, y->shape);
}

static int shape_reshape(sk__node *y, const sk__node *A, const sk__node *b, char *why, size_t cap) {
  if (sk__shape_numel(y->ndim, y->shape) == A->numel) return 1;
  return why_shapes(why, cap, "%s to %s changes the element count", A, y->ndim, y->shape);
}

static int shape_permute(sk__node *y, const sk__node *A, const sk__node *b, char *why, size_t cap) {
  int seen[SK_MAX_DIMS] = {0};
  for (int i = 0; i < A->ndim; i++) {
    const int p = y->ip[i];
    if (p < 0 || p >= A->ndim || seen[p]++) {
      snprintf(why, cap, "axes are not a permutation of 0..%d", A->ndim - 1);
      return 0;
    }
    y->shape[i] = A->shape[p];
  }
  y->ndim = A->ndim;
  return 1;
}

static int shape_concat(sk__node *y, const sk__node *A, const sk__node *B, char *why, size_t cap) {
  const int axis = y->ip[0];
  int ok = A->ndim == B->ndim && axis >= 0 && axis < A->ndim;
  for (int i = 0; ok && i < A->ndim; i++) ok = i == axis || A->shape[i] == B->shape[i];
  if (!ok) {
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%%s and %%s along axis %d", axis);
    return why2(why, cap, fmt, A, B);
  }
  shape_same(y, A);
  y->shape[axis] += B->shape[axis];
  return 1;
}

static int shape_slice(sk__node *y, const sk__node *A, const sk__node *b, char *why, size_t cap) {
  /* ip: axis, start; the length is asked for as the axis's size in ip[2]. */
  const int axis = y->ip[0];
  const int64_t start = y->ip[1], len = y->ip[2];
  if (axis < 0 || axis >= A->ndim || start < 0 || len < 0 || start + len > A->shape[axis]) {
    snprintf(why, cap, "[%lld, %lld) of axis %d out of range", (long long)start,
             (long long)(start + len), axis);
    return 0;
  }
  shape_same(y, A);
  y->shape[axis] = len;
  return 1;
}

static int shape_pad(sk__node *y, const sk__node *A, const sk__node *b, char *why, size_t cap) {
  /* ip: axis, zeros before, zeros after. */
  const int axis = y->ip[0];
  if (axis < 0 || axis >= A->ndim || y->ip[1] < 0 || y->ip[2] < 0) {
    snprintf(why, cap, "bad axis %d or widths", axis);
    return 0;
  }
  shape_same(y, A);
  y->shape[axis] += (int64_t)y->ip[1] + y->ip[2];
  return 1;
}

static int shape_gather(sk__node *y, const sk__node *A, const sk__node *I, char *why, size_t cap) {
  if (A->ndim < 1 || I->ndim != 1) {
    snprintf(why, cap, "need a rank >= 1 source and a 1-D index");
    return 0;
  }
  shape_same(y, A);
  y->shape[0] = I->shape[0];
  return 1;
}

/* The output's rows are asked for in ip[0]. */
static int shape_scatter_add(sk__node *y, const sk__node *A, const sk__node *I, char *why,
                             size_t cap) {
  if (A->ndim < 1 || I->ndim != 1 || I->shape[0] != A->shape[0] || y->ip[0] < 0) {
    snprintf(why, cap, "need a 1-D index with one entry per row");
    return 0;
  }
  shape_same(y, A);
  y->shape[0] = y->ip[0];
  return 1;
}

static int shape_logsumexp(sk__node *y, const sk__node *A, const sk__node *b, char *why, size_t cap) {
  if (A->ndim < 1 || A->shape[A->ndim - 1] < 1) {
    snprintf(why, cap, "need a non-empty last axis");
    return 0;
  }
  shape_same(y, A);
  y->shape[A->ndim - 1] = 1;
  return 1;
}

/* The convolutions. conv2d: x (N, C, H, W) ⋆ w (O, C, KH, KW) → (N, O, OH,
 * OW), OH = (H + 2·pad − dil·(KH − 1) − 1) / stride + 1 rounded down.
 * conv_transpose2d: its transpose in x, x (N, O, OH, OW) with w (O, C, KH,
 * KW) → (N, C, H, W), H = (OH − 1)·stride − 2·pad + dil·(KH − 1) + outpad
 * + 1: with 0 <= outpad < stride the convolution of an H-row input has OH
 * rows again, so that each op's gradient (graph/grad.c) has the shape of
 * its input; outpad picks which of the stride's H (all give OH) it is.
 * conv2d_weight: its transpose in w, x (N, C, H, W) and dy (N, O, OH, OW),
 * dy the convolution's output size, → (O, C, KH, KW). */

/* ip's parameters: positive stride, dilation and kernel, no negative
 * padding, output padding below the stride (0 but for the transpose) and
 * one group. */
static int conv_params_ok(const sk__node *y, int transpose, char *why, size_t cap) {
  const int32_t *ip = y->ip;
  static const struct { int at, min; const char *what; } rule[] = {
      {SK__CONV_STRIDE, 1, "stride (%d, %d) must be positive"},
      {SK__CONV_DILATION, 1, "dilation (%d, %d) must be positive"},
      {SK__CONV_PAD, 0, "padding (%d, %d) must not be negative"},
      {SK__CONV_KERNEL, 1, "kernel %dx%d must not be empty"}};
  for (size_t k = 0; k < sizeof rule / sizeof rule[0]; k++)
    if (ip[rule[k].at] < rule[k].min || ip[rule[k].at + 1] < rule[k].min) {
      snprintf(why, cap, rule[k].what, ip[rule[k].at], ip[rule[k].at + 1]);
      return 0;
    }
  for (int d = 0; d < 2; d++) {
    const int op = ip[SK__CONV_OUTPAD + d];
    if (!transpose && op != 0) {
      snprintf(why, cap, "output padding (%d, %d) applies to the transpose only",
               ip[SK__CONV_OUTPAD], ip[SK__CONV_OUTPAD + 1]);
      return 0;
    }
    if (op < 0 || op >= ip[SK__CONV_STRIDE + d]) {
      snprintf(why, cap, "output padding (%d, %d) must be in [0, stride (%d, %d))",
               ip[SK__CONV_OUTPAD], ip[SK__CONV_OUTPAD + 1], ip[SK__CONV_STRIDE],
               ip[SK__CONV_STRIDE + 1]);
      return 0;
    }
  }
  if (ip[SK__CONV_GROUPS] != 1) {
    snprintf(why, cap, "%d groups: only 1 is supported", ip[SK__CONV_GROUPS]);
    return 0;
  }
  return 1;
}

/* Adds the operands' shapes to a message about the parameters. */
static int and_shapes(char *why, size_t cap, const sk__node *A, const char *bname,
                      const sk__node *B) {
  char sa[64], sb[64];
  const size_t k = strlen(why);
  sk__shape_str(sa, sizeof sa, A->ndim, A->shape);
  sk__shape_str(sb, sizeof sb, B->ndim, B->shape);
  if (k < cap) snprintf(why + k, cap - k, " (input %s, %s %s)", sa, bname, sb);
  return 0;
}

/* The dilated kernel fits x's (N, C, H, W) padded rows and columns. */
static int conv_fits(const sk__node *y, const sk__node *X, char *why, size_t cap) {
  const int32_t *ip = y->ip;
  for (int d = 0; d < 2; d++) {
    const int64_t span = (int64_t)ip[SK__CONV_DILATION + d] * (ip[SK__CONV_KERNEL + d] - 1) + 1;
    if (span > X->shape[2 + d] + 2 * (int64_t)ip[SK__CONV_PAD + d]) {
      char sx[64];
      sk__shape_str(sx, sizeof sx, X->ndim, X->shape);
      snprintf(why, cap, "kernel %dx%d (dilation %d, %d) is larger than input %s padded by (%d, %d)",
               ip[SK__CONV_KERNEL], ip[SK__CONV_KERNEL + 1], ip[SK__CONV_DILATION],
               ip[SK__CONV_DILATION + 1], sx, ip[SK__CONV_PAD], ip[SK__CONV_PAD + 1]);
      return 0;
    }
  }
  return 1;
}

/* The convolution's output size for x's rows (d = 0) or columns (d = 1). */
static int64_t conv_out_of(const sk__node *y, const sk__node *X, int d) {
  const int32_t *ip = y->ip;
  return conv_out(X->shape[2 + d], ip[SK__CONV_KERNEL + d], ip[SK__CONV_STRIDE + d],
                  ip[SK__CONV_PAD + d], ip[SK__CONV_DILATION + d]);
}

/* The kernel size of weight w (.., .., KH, KW) into ip. */
static int conv_kernel_from(sk__node *y, const sk__node *Wt, char *why, size_t cap) {
  if (Wt->shape[2] > INT32_MAX || Wt->shape[3] > INT32_MAX) {
    snprintf(why, cap, "kernel %lldx%lld too large", (long long)Wt->shape[2],
             (long long)Wt->shape[3]);
    return 0;
  }
  y->ip[SK__CONV_KERNEL] = (int32_t)Wt->shape[2];
  y->ip[SK__CONV_KERNEL + 1] = (int32_t)Wt->shape[3];
  return 1;
}

static int shape_conv2d(sk__node *y, const sk__node *X, const sk__node *Wt, char *why, size_t cap) {
  if (X->ndim != 4 || Wt->ndim != 4)
    return why2(why, cap, "input %s and weight %s must be 4-D: (N, C, H, W) and (O, C, KH, KW)",
                X, Wt);
  if (!conv_kernel_from(y, Wt, why, cap) || !conv_params_ok(y, 0, why, cap))
    return and_shapes(why, cap, X, "weight", Wt);
  if (X->shape[1] != Wt->shape[1])
    return why2(why, cap, "input %s and weight %s differ in input channels (dimension 1)", X, Wt);
  if (!conv_fits(y, X, why, cap)) return 0;
  y->ndim = 4;
  y->shape[0] = X->shape[0];
  y->shape[1] = Wt->shape[0];
  y->shape[2] = conv_out_of(y, X, 0);
  y->shape[3] = conv_out_of(y, X, 1);
  return 1;
}

static int shape_conv_transpose2d(sk__node *y, const sk__node *X, const sk__node *Wt, char *why,
                                  size_t cap) {
  if (X->ndim != 4 || Wt->ndim != 4)
    return why2(why, cap, "input %s and weight %s must be 4-D: (N, O, H, W) and (O, C, KH, KW)",
                X, Wt);
  if (!conv_kernel_from(y, Wt, why, cap) || !conv_params_ok(y, 1, why, cap))
    return and_shapes(why, cap, X, "weight", Wt);
  if (X->shape[1] != Wt->shape[0])
    return why2(why, cap, "input %s's channels are not weight %s's dimension 0", X, Wt);
  if (X->shape[2] < 1 || X->shape[3] < 1)
    return why2(why, cap, "input %s has no rows or no columns (weight %s)", X, Wt);
  const int32_t *ip = y->ip;
  int64_t out[2];
  for (int d = 0; d < 2; d++) {
    /* (H − 1)·stride within SK__MAX_NUMEL leaves the sum far from overflow
     * (each other term is below 2^62); sk__op_shape then bounds the shape. */
    if (X->shape[2 + d] - 1 > SK__MAX_NUMEL / ip[SK__CONV_STRIDE + d]) {
      char sx[64];
      sk__shape_str(sx, sizeof sx, X->ndim, X->shape);
      snprintf(why, cap, "input %s with stride (%d, %d): the output is too large", sx,
               ip[SK__CONV_STRIDE], ip[SK__CONV_STRIDE + 1]);
      return 0;
    }
    out[d] = (X->shape[2 + d] - 1) * ip[SK__CONV_STRIDE + d] - 2 * (int64_t)ip[SK__CONV_PAD + d] +
             (int64_t)ip[SK__CONV_DILATION + d] * (ip[SK__CONV_KERNEL + d] - 1) +
             ip[SK__CONV_OUTPAD + d] + 1;
  }
  if (out[0] < 1 || out[1] < 1) {
    char sx[64], sw[64];
    sk__shape_str(sx, sizeof sx, X->ndim, X->shape);
    sk__shape_str(sw, sizeof sw, Wt->ndim, Wt->shape);
    snprintf(why, cap, "input %s and weight %s give a %lldx%lld output: padding (%d, %d) too large",
             sx, sw, (long long)out[0], (long long)out[1], ip[SK__CONV_PAD], ip[SK__CONV_PAD + 1]);
    return 0;
  }
  y->ndim = 4;
  y->shape[0] = X->shape[0];
  y->shape[1] = Wt->shape[1];
  y->shape[2] = out[0];
  y->shape[3] = out[1];
  return 1;
}

/* The kernel size is asked for in ip. */
static int shape_conv2d_weight(sk__node *y, const sk__node *X, const sk__node *G, char *why,
                               size_t cap) {
  if (X->ndim != 4 || G->ndim != 4)
    return why2(why, cap, "input %s and output gradient %s must be 4-D", X, G);
  if (!conv_params_ok(y, 0, why, cap)) return and_shapes(why, cap, X, "output gradient", G);
  if (X->shape[0] != G->shape[0])
    return why2(why, cap, "input %s and output gradient %s differ in batch size", X, G);
  if (!conv_fits(y, X, why, cap)) return 0;
  const int64_t oh = conv_out_of(y, X, 0), ow = conv_out_of(y, X, 1);
  if (G->shape[2] != oh || G->shape[3] != ow) {
    char fmt[96];
    snprintf(fmt, sizeof fmt, "output gradient %%s is not the %lldx%lld output of input %%s",
             (long long)oh, (long long)ow);
    return why2(why, cap, fmt, G, X);
  }
  y->ndim = 4;
  y->shape[0] = G->shape[1];
  y->shape[1] = X->shape[1];
  y->shape[2] = y->ip[SK__CONV_KERNEL];
  y->shape[3] = y->ip[SK__CONV_KERNEL + 1];
  return 1;
}

/* x (N, C, ...) with C a multiple of the groups ip[0] and gb (2, C): the
 * scale and shift of each channel. */
static int gn_params_ok(const sk__node *y, const sk__node *X, char *why, size_t cap);

static int gn_eps_ok(float eps, char *why, size_t cap) {
  if (eps > 0 && isfinite(eps)) return 1;
  snprintf(why, cap, "eps %g: need a positive finite number", eps);
  return 0;
}

static int gn_scale_ok(const sk__node *X, const sk__node *B, char *why, size_t cap) {
  if (B->ndim != 2 || B->shape[0] != 2 || B->shape[1] != X->shape[1])
    return why2(why, cap, "scale and shift %s for input %s: need (2, C)", B, X);
  return 1;
}

static int shape_group_norm_silu(sk__node *y, const sk__node *X, const sk__node *B, char *why,
                                 size_t cap) {
  if (!gn_params_ok(y, X, why, cap) || !gn_scale_ok(X, B, why, cap)) return 0;
  shape_same(y, X);
  return 1;
}

static int gn_params_ok(const sk__node *y, const sk__node *X, char *why, size_t cap) {
  const int groups = y->ip[0];
  if (X->ndim < 2 || X->numel == 0 || groups < 1 || X->shape[1] % groups != 0) {
    char fmt[96];
    snprintf(fmt, sizeof fmt, "input %%s: need (N, C, ...) with C a multiple of %d groups", groups);
    return why_shapes(why, cap, fmt, X, X->ndim, X->shape);
  }
  return gn_eps_ok(y->fp[0], why, cap);
}

/* x and u of one shape (gb, the third input of group_norm_back and
 * group_norm_silu_d, checked by sk__group_norm_op). */
static int shape_group_norm_back(sk__node *y, const sk__node *X, const sk__node *U, char *why,
                                 size_t cap) {
  if (!gn_params_ok(y, X, why, cap)) return 0;
  if (!same_shape(X->ndim, X->shape, U->ndim, U->shape))
    return why2(why, cap, "input %s and its gradient %s differ in shape", X, U);
  shape_same(y, X);
  return 1;
}

static int shape_group_norm_silu_d(sk__node *y, const sk__node *X, const sk__node *U, char *why,
                                   size_t cap) {
  return shape_group_norm_back(y, X, U, why, cap);
}

/* (N, 2, C, 1, ...): the rank of x, so that row r of the output reads row r
 * of each input (rows EACH). */
static int shape_group_norm_sums(sk__node *y, const sk__node *X, const sk__node *U, char *why,
                                 size_t cap) {
  if (!shape_group_norm_back(y, X, U, why, cap)) return 0;
  y->shape[1] = 2;
  y->shape[2] = X->shape[1];
  for (int i = 3; i < X->ndim; i++) y->shape[i] = 1;
  if (X->ndim == 2) { /* (N, C): no room for the pair; (N, 2C) holds it */
    y->shape[1] = 2 * X->shape[1];
  }
  return 1;
}

/* The optional last input of an op of more than two (the group-norm ops')
 * is a shift of input 0 per sample and channel: (N, C, 1, ...) for x
 * (N, C, ...). */
static int shift_ok(const sk__node *X, const sk__node *D, char *why, size_t cap) {
  int ok = D->ndim == X->ndim && X->ndim >= 2 && D->shape[0] == X->shape[0] &&
           D->shape[1] == X->shape[1];
  for (int i = 2; ok && i < D->ndim; i++) ok = D->shape[i] == 1;
  return ok ? 1 : why2(why, cap, "shift %s for input %s: need (N, C, 1, ...)", D, X);
}

/* ---- primitive builders ---- */

static const sk__node *N(const sk_graph *g, sk_node n) { return &g->nodes[n]; }

sk_node sk_matmul(sk_graph *g, sk_node a, sk_node b, int trans_a, int trans_b) {
  sk__node y = proto(SK_OP_MATMUL, a, b);
  y.ip[0] = trans_a != 0;
  y.ip[1] = trans_b != 0;
  return add(g, &y);
}

static sk_node binary(sk_graph *g, sk__op op, sk_node a, sk_node b) {
  sk__node y = proto(op, a, b);
  return add(g, &y);
}

sk_node sk_add(sk_graph *g, sk_node a, sk_node b) { return binary(g, SK_OP_ADD, a, b); }
sk_node sk_sub(sk_graph *g, sk_node a, sk_node b) { return binary(g, SK_OP_SUB, a, b); }
sk_node sk_mul(sk_graph *g, sk_node a, sk_node b) { return binary(g, SK_OP_MUL, a, b); }
sk_node sk_div(sk_graph *g, sk_node a, sk_node b) { return binary(g, SK_OP_DIV, a, b); }

static sk_node unary(sk_graph *g, sk__op op, sk_node a) { return binary(g, op, a, SK_NONE); }

sk_node sk_neg(sk_graph *g, sk_node a) { return unary(g, SK_OP_NEG, a); }
sk_node sk_exp(sk_graph *g, sk_node a) { return unary(g, SK_OP_EXP, a); }
sk_node sk_log(sk_graph *g, sk_node a) { return unary(g, SK_OP_LOG, a); }
sk_node sk_sqrt(sk_graph *g, sk_node a) { return unary(g, SK_OP_SQRT, a); }
sk_node sk_tanh(sk_graph *g, sk_node a) { return unary(g, SK_OP_TANH, a); }
sk_node sk_sin(sk_graph *g, sk_node a) { return unary(g, SK_OP_SIN, a); }
sk_node sk_cos(sk_graph *g, sk_node a) { return unary(g, SK_OP_COS, a); }
sk_node sk_sigmoid(sk_graph *g, sk_node a) { return unary(g, SK_OP_SIGMOID, a); }
sk_node sk_softplus(sk_graph *g, sk_node a) { return unary(g, SK_OP_SOFTPLUS, a); }
sk_node sk_step(sk_graph *g, sk_node a) { return unary(g, SK_OP_STEP, a); }
sk_node sk_stop_grad(sk_graph *g, sk_node a) { return unary(g, SK_OP_STOP_GRAD, a); }

sk_node sk_affine(sk_graph *g, sk_node a, float alpha, float beta) {
  sk__node y = proto(SK_OP_AFFINE, a, SK_NONE);
  y.fp[0] = alpha;
  y.fp[1] = beta;
  return add(g, &y);
}

/* sum_to, expand and reshape to a shape equal to the input's are the input. */
static sk_node to_shape(sk_graph *g, sk__op op, sk_node a, int ndim, const int64_t *shape) {
  if (!g) return no_graph(sk__op_name(op));
  sk__node y = proto(op, a, SK_NONE);
  if (!ask_shape(g, &y, ndim, shape) || !shaped(g, &y)) return SK_NONE;
  if (same_shape(y.ndim, y.shape, N(g, a)->ndim, N(g, a)->shape)) return a;
  return append(g, &y);
}

sk_node sk_sum_to(sk_graph *g, sk_node a, int ndim, const int64_t *shape) {
  return to_shape(g, SK_OP_SUM_TO, a, ndim, shape);
}
sk_node sk_expand(sk_graph *g, sk_node a, int ndim, const int64_t *shape) {
  return to_shape(g, SK_OP_EXPAND, a, ndim, shape);
}
sk_node sk_reshape(sk_graph *g, sk_node a, int ndim, const int64_t *shape) {
  return to_shape(g, SK_OP_RESHAPE, a, ndim, shape);
}

sk_node sk_permute(sk_graph *g, sk_node a, const int *perm) {
  if (!g) return no_graph("permute");
  if (g->status != SK_OK) return SK_NONE;
  if (!valid(g, a)) return build_fail(g, SK_ERR_INVALID, "permute: invalid node %d", a);
  if (!perm) return build_fail(g, SK_ERR_INVALID, "permute: NULL axes");
  sk__node y = proto(SK_OP_PERMUTE, a, SK_NONE);
  int identity = 1;
  for (int i = 0; i < N(g, a)->ndim; i++) {
    y.ip[i] = perm[i];
    identity &= perm[i] == i;
  }
  if (!shaped(g, &y)) return SK_NONE;
  return identity ? a : append(g, &y);
}

static int norm_axis(int axis, int ndim) { return axis < 0 ? axis + ndim : axis; }

sk_node sk_concat(sk_graph *g, sk_node a, sk_node b, int axis) {
  if (!g) return no_graph("concat");
  if (g->status != SK_OK) return SK_NONE;
  if (!valid(g, a)) return build_fail(g, SK_ERR_INVALID, "concat: invalid node %d", a);
  sk__node y = proto(SK_OP_CONCAT, a, b);
  y.ip[0] = norm_axis(axis, N(g, a)->ndim);
  return add(g, &y);
}

sk_node sk_slice(sk_graph *g, sk_node a, int axis, int64_t start, int64_t len) {
  if (!g) return no_graph("slice");
  if (g->status != SK_OK) return SK_NONE;
  if (!valid(g, a)) return build_fail(g, SK_ERR_INVALID, "slice: invalid node %d", a);
  if (start < 0 || len < 0 || start > INT32_MAX || len > INT32_MAX)
    return build_fail(g, SK_ERR_SHAPE, "slice: start %lld, length %lld of axis %d out of range",
                      (long long)start, (long long)len, axis);
  sk__node y = proto(SK_OP_SLICE, a, SK_NONE);
  y.ip[0] = norm_axis(axis, N(g, a)->ndim);
  y.ip[1] = (int32_t)start;
  y.ip[2] = (int32_t)len;
  if (!shaped(g, &y)) return SK_NONE;
  return start == 0 && len == N(g, a)->shape[y.ip[0]] ? a : append(g, &y);
}

sk_node sk_pad(sk_graph *g, sk_node a, int axis, int64_t before, int64_t after) {
  if (!g) return no_graph("pad");
  if (g->status != SK_OK) return SK_NONE;
  if (!valid(g, a)) return build_fail(g, SK_ERR_INVALID, "pad: invalid node %d", a);
  if (before < 0 || after < 0 || before > INT32_MAX || after > INT32_MAX)
    return build_fail(g, SK_ERR_SHAPE, "pad: bad axis %d or widths", axis);
  sk__node y = proto(SK_OP_PAD, a, SK_NONE);
  y.ip[0] = norm_axis(axis, N(g, a)->ndim);
  y.ip[1] = (int32_t)before;
  y.ip[2] = (int32_t)after;
  if (!shaped(g, &y)) return SK_NONE;
  return before == 0 && after == 0 ? a : append(g, &y);
}

sk_node sk_gather(sk_graph *g, sk_node a, sk_node idx) { return binary(g, SK_OP_GATHER, a, idx); }

sk_node sk_scatter_add(sk_graph *g, sk_node a, sk_node idx, int64_t rows) {
  if (!g) return no_graph("scatter_add");
  if (g->status != SK_OK) return SK_NONE;
  if (rows < 0 || rows > INT32_MAX)
    return build_fail(g, SK_ERR_SHAPE, "scatter_add: need a 1-D index with one entry per row");
  sk__node y = proto(SK_OP_SCATTER_ADD, a, idx);
  y.ip[0] = (int32_t)rows;
  return add(g, &y);
}

sk_node sk_logsumexp(sk_graph *g, sk_node a) { return unary(g, SK_OP_LOGSUMEXP, a); }

/* opts' parameters in y's ip (NULL: stride 1, no padding, no dilation; a
 * zero stride or dilation means 1); the shape rules check them. */
static void conv_opts_to(sk__node *y, const sk_conv2d_opts *o) {
  for (int d = 0; d < 2; d++) {
    y->ip[SK__CONV_STRIDE + d] = o && o->stride[d] ? o->stride[d] : 1;
    y->ip[SK__CONV_PAD + d] = o ? o->padding[d] : 0;
    y->ip[SK__CONV_DILATION + d] = o && o->dilation[d] ? o->dilation[d] : 1;
    y->ip[SK__CONV_OUTPAD + d] = o ? o->output_padding[d] : 0;
  }
  y->ip[SK__CONV_GROUPS] = 1;
}

sk_node sk_conv2d(sk_graph *g, sk_node x, sk_node w, const sk_conv2d_opts *opts) {
  sk__node y = proto(SK_OP_CONV2D, x, w);
  conv_opts_to(&y, opts);
  return add(g, &y);
}

sk_node sk_conv_transpose2d(sk_graph *g, sk_node x, sk_node w, const sk_conv2d_opts *opts) {
  sk__node y = proto(SK_OP_CONV_TRANSPOSE2D, x, w);
  conv_opts_to(&y, opts);
  return add(g, &y);
}

sk_node sk_conv2d_weight(sk_graph *g, sk_node x, sk_node dy, int kh, int kw,
                         const sk_conv2d_opts *opts) {
  sk__node y = proto(SK_OP_CONV2D_WEIGHT, x, dy);
  conv_opts_to(&y, opts);
  y.ip[SK__CONV_KERNEL] = kh;
  y.ip[SK__CONV_KERNEL + 1] = kw;
  return add(g, &y);
}

/* ---- composites ---- */

#define CHECK_IN(g, x)                                                                 \
  do {                                                                                 \
    if (!(g)) return no_graph(__func__);                                               \
    if ((g)->status != SK_OK) return SK_NONE;                                          \
    if (!valid(g, x)) return build_fail(g, SK_ERR_INVALID, "%s: invalid node %d", __func__, x); \
  } while (0)

sk_node sk_square(sk_graph *g, sk_node a) {
  if (!g) return no_graph(__func__);
  return sk_mul(g, a, a);
}

sk_node sk_sum(sk_graph *g, sk_node a, int axis, int keepdim) {
  CHECK_IN(g, a);
  const sk__node *A = N(g, a);
  int nd = A->ndim;
  axis = norm_axis(axis, nd);
  if (axis < 0 || axis >= nd) return build_fail(g, SK_ERR_SHAPE, "sum: axis %d out of range", axis);
  int64_t kept[SK_MAX_DIMS], dropped[SK_MAX_DIMS];
  for (int i = 0, j = 0; i < nd; i++) {
    kept[i] = i == axis ? 1 : A->shape[i];
    if (i != axis) dropped[j++] = A->shape[i];
  }
  sk_node s = sk_sum_to(g, a, nd, kept);
  return keepdim ? s : sk_reshape(g, s, nd - 1, dropped);
}

sk_node sk_sum_all(sk_graph *g, sk_node a) {
  CHECK_IN(g, a);
  return sk_sum_to(g, a, 0, NULL);
}

sk_node sk_mean_all(sk_graph *g, sk_node a) {
  CHECK_IN(g, a);
  int64_t n = N(g, a)->numel;
  return sk_affine(g, sk_sum_all(g, a), n ? 1.0f / (float)n : 0.0f, 0.0f);
}

sk_node sk_transpose(sk_graph *g, sk_node a) {
  CHECK_IN(g, a);
  if (N(g, a)->ndim != 2) return build_fail(g, SK_ERR_SHAPE, "transpose: need a 2-D operand");
  static const int perm[2] = {1, 0};
  return sk_permute(g, a, perm);
}

/* x·σ(x) (Ramachandran et al. 2017). */
sk_node sk_silu(sk_graph *g, sk_node a) {
  if (!g) return no_graph(__func__);
  return sk_mul(g, a, sk_sigmoid(g, a));
}

/* x for x > 0, e^x − 1 otherwise, written as x·h + exp(x·(1−h)) − 1 with h =
 * step(x) so that its derivatives of every order come from the primitives. */
sk_node sk_elu(sk_graph *g, sk_node a) {
  if (!g) return no_graph(__func__);
  sk_node h = sk_step(g, a);
  sk_node pos = sk_mul(g, a, h);
  sk_node neg = sk_mul(g, a, sk_affine(g, h, -1.0f, 1.0f));
  return sk_add(g, pos, sk_affine(g, sk_exp(g, neg), 1.0f, -1.0f));
}

sk_node sk_log_softmax(sk_graph *g, sk_node a) {
  if (!g) return no_graph(__func__);
  return sk_sub(g, a, sk_logsumexp(g, a));
}

/* ---- composites for image models ---- */

/* Group normalisation (Wu and He 2018): x (N, C, ...) as (N, G, C/G · the
 * rest), each group standardised with its mean and biased variance, then
 * per channel times gamma (C) plus beta (C) where given. Every step is a
 * smooth primitive, so its gradients of every order are too. */
sk_node sk_group_norm(sk_graph *g, sk_node x, int groups, sk_node gamma, sk_node beta, float eps) {
  CHECK_IN(g, x);
  const sk__node *X = N(g, x);
  if (X->ndim < 2 || groups < 1 || X->shape[1] % groups != 0 || X->numel == 0) {
    char sx[64];
    sk__shape_str(sx, sizeof sx, X->ndim, X->shape);
    return build_fail(g, SK_ERR_SHAPE,
                      "group_norm: input %s: need (N, C, ...) with C a multiple of %d groups, "
                      "not empty", sx, groups);
  }
  char why[64];
  if (!gn_eps_ok(eps, why, sizeof why)) return build_fail(g, SK_ERR_SHAPE, "group_norm: %s", why);
  const int nd = X->ndim;
  int64_t shape[SK_MAX_DIMS], per_channel[SK_MAX_DIMS];
  memcpy(shape, X->shape, sizeof shape);
  const int64_t n = shape[0], c = shape[1], m = X->numel / (n * groups);
  const int64_t grouped[3] = {n, groups, m}, stat[3] = {n, groups, 1};
  for (int k = 0; k < 2; k++) {
    const sk_node p = k ? beta : gamma;
    if (p == SK_NONE) continue;
    if (!valid(g, p)) return build_fail(g, SK_ERR_INVALID, "group_norm: invalid node %d", p);
    if (N(g, p)->ndim != 1 || N(g, p)->shape[0] != c) {
      char sx[64], sp[64];
      sk__shape_str(sx, sizeof sx, nd, shape);
      sk__shape_str(sp, sizeof sp, N(g, p)->ndim, N(g, p)->shape);
      return build_fail(g, SK_ERR_SHAPE, "group_norm: %s %s for input %s: need (%lld)",
                        k ? "beta" : "gamma", sp, sx, (long long)c);
    }
  }
  const float inv_m = 1.0f / (float)m;
  sk_node xg = sk_reshape(g, x, 3, grouped);
  sk_node mean = sk_affine(g, sk_sum_to(g, xg, 3, stat), inv_m, 0.0f);
  sk_node xc = sk_sub(g, xg, mean);
  sk_node var_eps = sk_affine(g, sk_sum_to(g, sk_mul(g, xc, xc), 3, stat), inv_m, eps);
  sk_node y = sk_reshape(g, sk_div(g, xc, sk_sqrt(g, var_eps)), nd, shape);
  /* gamma and beta (C) as (C, 1, ...): they broadcast over the rest. */
  per_channel[0] = c;
  for (int i = 1; i < nd - 1; i++) per_channel[i] = 1;
  if (gamma != SK_NONE) y = sk_mul(g, y, sk_reshape(g, gamma, nd - 1, per_channel));
  if (beta != SK_NONE) y = sk_add(g, y, sk_reshape(g, beta, nd - 1, per_channel));
  return y;
}

sk_node sk_group_norm_silu_shift(sk_graph *g, sk_node x, sk_node shift, int groups, sk_node gamma,
                                 sk_node beta, float eps) {
  CHECK_IN(g, x);
  for (int k = 0; k < 2; k++) {
    const sk_node p = k ? beta : gamma;
    if (!valid(g, p)) return build_fail(g, SK_ERR_INVALID, "group_norm_silu: invalid %s node %d",
                                        k ? "beta" : "gamma", p);
    if (N(g, p)->ndim != 1) {
      char sp[64];
      sk__shape_str(sp, sizeof sp, N(g, p)->ndim, N(g, p)->shape);
      return build_fail(g, SK_ERR_SHAPE, "group_norm_silu: %s %s: need (C)", k ? "beta" : "gamma", sp);
    }
  }
  const int64_t row[2] = {1, N(g, gamma)->shape[0]}, rowb[2] = {1, N(g, beta)->shape[0]};
  sk_node gb = sk_concat(g, sk_reshape(g, gamma, 2, row), sk_reshape(g, beta, 2, rowb), 0);
  return sk__group_norm_op(g, SK_OP_GROUP_NORM_SILU, x, gb, SK_NONE, shift, groups, eps);
}

sk_node sk_group_norm_silu(sk_graph *g, sk_node x, int groups, sk_node gamma, sk_node beta,
                           float eps) {
  if (!g) return no_graph(__func__);
  return sk_group_norm_silu_shift(g, x, SK_NONE, groups, gamma, beta, eps);
}

sk_node sk__group_norm_op(sk_graph *g, sk__op op, sk_node x, sk_node b, sk_node c, sk_node shift,
                          int groups, float eps) {
  if (g->status != SK_OK) return SK_NONE;
  const int four = sk__op_arity(op) == 4;
  if (!valid(g, x) || !valid(g, b) || (four && !valid(g, c)) ||
      (shift != SK_NONE && !valid(g, shift)))
    return build_fail(g, SK_ERR_INVALID, "%s: invalid node", sk__op_name(op));
  char why[192];
  if (four && !gn_scale_ok(N(g, x), N(g, c), why, sizeof why))
    return build_fail(g, SK_ERR_SHAPE, "%s: %s", sk__op_name(op), why);
  sk__node y = proto(op, x, b);
  if (four) y.in[2] = c;
  y.in[four ? 3 : 2] = shift;
  y.ip[0] = groups;
  y.fp[0] = eps;
  return add(g, &y);
}

/* Each pixel of x (N, C, H, W) repeated into a factor × factor block, with
 * the ranks the graph allows: the rows' copies side by side, then the
 * widened rows copied below each other. */
sk_node sk_upsample_nearest2d(sk_graph *g, sk_node x, int factor) {
  CHECK_IN(g, x);
  const sk__node *X = N(g, x);
  if (X->ndim != 4 || factor < 1) {
    char sx[64];
    sk__shape_str(sx, sizeof sx, X->ndim, X->shape);
    return build_fail(g, SK_ERR_SHAPE, "upsample_nearest2d: input %s, factor %d: need 4-D and >= 1",
                      sx, factor);
  }
  const int64_t n = X->shape[0], c = X->shape[1], h = X->shape[2], w = X->shape[3], f = factor;
  /* Within the bound on the output's nonzero dimensions, no size below
   * (a product of some of them) overflows. */
  if (sk__shape_numel(6, (int64_t[]){n, c, h, f, w, f}) < 0) {
    char sx[64];
    sk__shape_str(sx, sizeof sx, X->ndim, X->shape);
    return build_fail(g, SK_ERR_SHAPE,
                      "upsample_nearest2d: input %s, factor %d: the output is too large (its "
                      "nonzero dimensions multiply to 2^60 or more)",
                      sx, factor);
  }
  sk_node r = sk_reshape(g, x, 3, (int64_t[]){n * c * h, w, 1});
  r = sk_reshape(g, sk_expand(g, r, 3, (int64_t[]){n * c * h, w, f}), 3,
                 (int64_t[]){n * c * h, 1, w * f});
  r = sk_expand(g, r, 3, (int64_t[]){n * c * h, f, w * f});
  return sk_reshape(g, r, 4, (int64_t[]){n, c, h * f, w * f});
}

/* The mean of each factor × factor block of x (N, C, H, W), H and W
 * multiples of factor: the rows' blocks summed, then the columns'. */
sk_node sk_avg_pool2d(sk_graph *g, sk_node x, int factor) {
  CHECK_IN(g, x);
  const sk__node *X = N(g, x);
  if (X->ndim != 4 || factor < 1 || X->shape[2] % factor || X->shape[3] % factor) {
    char sx[64];
    sk__shape_str(sx, sizeof sx, X->ndim, X->shape);
    return build_fail(g, SK_ERR_SHAPE,
                      "avg_pool2d: input %s, factor %d: need 4-D with rows and columns multiples of it",
                      sx, factor);
  }
  const int64_t n = X->shape[0], c = X->shape[1], h = X->shape[2], w = X->shape[3], f = factor;
  sk_node r = sk_reshape(g, x, 3, (int64_t[]){n * c * (h / f), f, w});
  r = sk_sum_to(g, r, 3, (int64_t[]){n * c * (h / f), 1, w});
  r = sk_reshape(g, r, 2, (int64_t[]){n * c * (h / f) * (w / f), f});
  r = sk_sum_to(g, r, 2, (int64_t[]){n * c * (h / f) * (w / f), 1});
  return sk_affine(g, sk_reshape(g, r, 4, (int64_t[]){n, c, h / f, w / f}),
                   1.0f / (float)(f * f), 0.0f);
}

const char *sk__graph_error(const sk_graph *g) { return g->error; }
