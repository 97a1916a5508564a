/* Graph construction: nodes, shape inference with sticky errors, and the
 * composite builders made of primitives. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "graph/internal.h"

static const char *const op_names[] = {
#define X(e, name, arity, smooth) name,
#include "graph/ops.def"
#undef X
};
static const int op_arity[] = {
#define X(e, name, arity, smooth) arity,
#include "graph/ops.def"
#undef X
};
static const int op_smooth[] = {
#define X(e, name, arity, smooth) smooth,
#include "graph/ops.def"
#undef X
};
_Static_assert(sizeof op_names / sizeof op_names[0] == SK_OP_COUNT, "op table");

const char *sk__op_name(sk__op op) { return op < SK_OP_COUNT ? op_names[op] : "?"; }
int sk__op_arity(sk__op op) { return op_arity[op]; }
int sk__op_smooth(sk__op op) { return op_smooth[op]; }

sk_graph *sk_graph_new(void) {
  sk_graph *g = sk__calloc(1, sizeof *g);
  if (!g) sk__fail(SK_ERR_NOMEM, "out of memory for a graph");
  return g;
}

void sk_graph_free(sk_graph *g) {
  if (!g) return;
  for (int i = 0; i < g->n; i++) sk__free(g->nodes[i].name);
  sk__free(g->nodes);
  sk__free(g->arena);
  sk__free(g->exec);
  sk__free(g->steps);
  sk__free(g->packs);
  sk__free(g->outs);
  sk__free(g);
}

sk_status sk_graph_status(const sk_graph *g) { return g->status; }
int sk_graph_num_nodes(const sk_graph *g) { return g->n; }

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t k = (size_t)snprintf(buf, cap, "(");
  for (int i = 0; i < ndim && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, ")");
}

/* Records the first error on the graph and returns SK_NONE. */
static sk_node build_fail(sk_graph *g, sk_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static sk_node build_fail(sk_graph *g, sk_status st, const char *fmt, ...) {
  if (g->status == SK_OK) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->error, sizeof g->error, fmt, ap);
    va_end(ap);
    g->status = st;
  }
  return SK_NONE;
}

static int valid(const sk_graph *g, sk_node n) { return n >= 0 && n < g->n; }

sk_node sk__add_node(sk_graph *g, sk__op op, sk_node a, sk_node b, int ndim, const int64_t *shape) {
  if (g->status != SK_OK) return SK_NONE;
  if (g->compiled) return build_fail(g, SK_ERR_STATE, "%s: graph already compiled", sk__op_name(op));
  if (ndim < 0 || ndim > SK_MAX_DIMS)
    return build_fail(g, SK_ERR_SHAPE, "%s: rank %d outside 0..%d", sk__op_name(op), ndim, SK_MAX_DIMS);
  /* `shape` may point into g->nodes, which the growth below can move. */
  int64_t dims[SK_MAX_DIMS];
  for (int i = 0; i < ndim; i++) dims[i] = shape[i];
  shape = dims;
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || (shape[i] && numel > INT64_MAX / 8 / shape[i]))
      return build_fail(g, SK_ERR_SHAPE, "%s: bad dimension %lld", sk__op_name(op), (long long)shape[i]);
    numel *= shape[i];
  }
  if (g->n == g->cap) {
    int cap = g->cap ? 2 * g->cap : 64;
    sk__node *p = sk__realloc(g->nodes, (size_t)cap * sizeof *p);
    if (!p) return build_fail(g, SK_ERR_NOMEM, "out of memory for graph nodes");
    g->nodes = p;
    g->cap = cap;
  }
  sk__node *nd = &g->nodes[g->n];
  memset(nd, 0, sizeof *nd);
  nd->op = op;
  nd->ndim = ndim;
  for (int i = 0; i < ndim; i++) nd->shape[i] = shape[i];
  nd->numel = numel;
  nd->in[0] = a;
  nd->in[1] = b;
  return g->n++;
}

int sk_node_ndim(const sk_graph *g, sk_node n) { return valid(g, n) ? g->nodes[n].ndim : 0; }
const int64_t *sk_node_shape(const sk_graph *g, sk_node n) {
  return valid(g, n) ? g->nodes[n].shape : NULL;
}
int64_t sk_node_numel(const sk_graph *g, sk_node n) { return valid(g, n) ? g->nodes[n].numel : 0; }

/* ---- leaves ---- */

static sk_node leaf(sk_graph *g, sk__op op, const char *name, int ndim, const int64_t *shape) {
  sk_node n = sk__add_node(g, op, SK_NONE, SK_NONE, ndim, shape);
  if (n == SK_NONE || !name) return n;
  g->nodes[n].name = sk__strdup(name);
  if (!g->nodes[n].name) return build_fail(g, SK_ERR_NOMEM, "out of memory for a node name");
  return n;
}

sk_node sk_input(sk_graph *g, const char *name, int ndim, const int64_t *shape) {
  return leaf(g, SK_OP_INPUT, name, ndim, shape);
}

sk_node sk_param(sk_graph *g, const char *name, int ndim, const int64_t *shape, float *data) {
  if (!data) return build_fail(g, SK_ERR_INVALID, "param %s: NULL data", name ? name : "");
  sk_node n = leaf(g, SK_OP_PARAM, name, ndim, shape);
  if (n != SK_NONE) g->nodes[n].data = data;
  return n;
}

sk_node sk_fill(sk_graph *g, float value, int ndim, const int64_t *shape) {
  sk_node n = sk__add_node(g, SK_OP_CONST, SK_NONE, SK_NONE, ndim, shape);
  if (n != SK_NONE) g->nodes[n].fp[0] = value;
  return n;
}

sk_node sk_scalar(sk_graph *g, float value) { return sk_fill(g, value, 0, NULL); }

/* ---- shape rules ---- */

#define CHECK_IN(g, x)                                                                 \
  do {                                                                                 \
    if ((g)->status != SK_OK) return SK_NONE;                                          \
    if (!valid(g, x)) return build_fail(g, SK_ERR_INVALID, "%s: invalid node %d", __func__, x); \
  } while (0)

static const sk__node *N(const sk_graph *g, sk_node n) { return &g->nodes[n]; }

sk_node sk_matmul(sk_graph *g, sk_node a, sk_node b, int trans_a, int trans_b) {
  CHECK_IN(g, a);
  CHECK_IN(g, b);
  const sk__node *A = N(g, a), *B = N(g, b);
  char sa[64], sb[64];
  shape_str(sa, sizeof sa, A->ndim, A->shape);
  shape_str(sb, sizeof sb, B->ndim, B->shape);
  if (A->ndim != 2 || B->ndim != 2)
    return build_fail(g, SK_ERR_SHAPE, "matmul: operands must be 2-D, got %s and %s", sa, sb);
  int64_t m = trans_a ? A->shape[1] : A->shape[0], ka = trans_a ? A->shape[0] : A->shape[1];
  int64_t kb = trans_b ? B->shape[1] : B->shape[0], nn = trans_b ? B->shape[0] : B->shape[1];
  if (ka != kb)
    return build_fail(g, SK_ERR_SHAPE, "matmul: inner dimensions differ: %s%s @ %s%s", sa,
                      trans_a ? "^T" : "", sb, trans_b ? "^T" : "");
  int64_t shape[2] = {m, nn};
  sk_node n = sk__add_node(g, SK_OP_MATMUL, a, b, 2, shape);
  if (n != SK_NONE) {
    g->nodes[n].ip[0] = trans_a != 0;
    g->nodes[n].ip[1] = trans_b != 0;
  }
  return n;
}

/* numpy broadcasting of two shapes; 0 on mismatch. */
static int broadcast_shape(const sk__node *A, const sk__node *B, int *ndim, int64_t *shape) {
  int nd = SK_MAX(A->ndim, B->ndim);
  for (int i = 0; i < nd; i++) {
    int ia = A->ndim - nd + i, ib = B->ndim - nd + i;
    int64_t da = ia >= 0 ? A->shape[ia] : 1, db = ib >= 0 ? B->shape[ib] : 1;
    if (da != db && da != 1 && db != 1) return 0;
    shape[i] = da == 1 ? db : da;
  }
  *ndim = nd;
  return 1;
}

static sk_node binary(sk_graph *g, sk__op op, sk_node a, sk_node b) {
  CHECK_IN(g, a);
  CHECK_IN(g, b);
  int nd;
  int64_t shape[SK_MAX_DIMS];
  if (!broadcast_shape(N(g, a), N(g, b), &nd, shape)) {
    char sa[64], sb[64];
    shape_str(sa, sizeof sa, N(g, a)->ndim, N(g, a)->shape);
    shape_str(sb, sizeof sb, N(g, b)->ndim, N(g, b)->shape);
    return build_fail(g, SK_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", sk__op_name(op), sa, sb);
  }
  return sk__add_node(g, op, a, b, nd, shape);
}

sk_node sk_add(sk_graph *g, sk_node a, sk_node b) { return binary(g, SK_OP_ADD, a, b); }
sk_node sk_sub(sk_graph *g, sk_node a, sk_node b) { return binary(g, SK_OP_SUB, a, b); }
sk_node sk_mul(sk_graph *g, sk_node a, sk_node b) { return binary(g, SK_OP_MUL, a, b); }
sk_node sk_div(sk_graph *g, sk_node a, sk_node b) { return binary(g, SK_OP_DIV, a, b); }

static sk_node unary(sk_graph *g, sk__op op, sk_node a) {
  CHECK_IN(g, a);
  return sk__add_node(g, op, a, SK_NONE, N(g, a)->ndim, N(g, a)->shape);
}

sk_node sk_neg(sk_graph *g, sk_node a) { return unary(g, SK_OP_NEG, a); }
sk_node sk_exp(sk_graph *g, sk_node a) { return unary(g, SK_OP_EXP, a); }
sk_node sk_log(sk_graph *g, sk_node a) { return unary(g, SK_OP_LOG, a); }
sk_node sk_sqrt(sk_graph *g, sk_node a) { return unary(g, SK_OP_SQRT, a); }
sk_node sk_tanh(sk_graph *g, sk_node a) { return unary(g, SK_OP_TANH, a); }
sk_node sk_sigmoid(sk_graph *g, sk_node a) { return unary(g, SK_OP_SIGMOID, a); }
sk_node sk_softplus(sk_graph *g, sk_node a) { return unary(g, SK_OP_SOFTPLUS, a); }
sk_node sk_step(sk_graph *g, sk_node a) { return unary(g, SK_OP_STEP, a); }
sk_node sk_stop_grad(sk_graph *g, sk_node a) { return unary(g, SK_OP_STOP_GRAD, a); }

sk_node sk_affine(sk_graph *g, sk_node a, float alpha, float beta) {
  sk_node n = unary(g, SK_OP_AFFINE, a);
  if (n != SK_NONE) {
    g->nodes[n].fp[0] = alpha;
    g->nodes[n].fp[1] = beta;
  }
  return n;
}

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

sk_node sk_sum_to(sk_graph *g, sk_node a, int ndim, const int64_t *shape) {
  CHECK_IN(g, a);
  const sk__node *A = N(g, a);
  if (!broadcasts_to(ndim, shape, A->ndim, A->shape)) {
    char sa[64], sb[64];
    shape_str(sa, sizeof sa, A->ndim, A->shape);
    shape_str(sb, sizeof sb, ndim, shape);
    return build_fail(g, SK_ERR_SHAPE, "sum_to: %s cannot be summed to %s", sa, sb);
  }
  if (same_shape(ndim, shape, A->ndim, A->shape)) return a;
  return sk__add_node(g, SK_OP_SUM_TO, a, SK_NONE, ndim, shape);
}

sk_node sk_expand(sk_graph *g, sk_node a, int ndim, const int64_t *shape) {
  CHECK_IN(g, a);
  const sk__node *A = N(g, a);
  if (!broadcasts_to(A->ndim, A->shape, ndim, shape)) {
    char sa[64], sb[64];
    shape_str(sa, sizeof sa, A->ndim, A->shape);
    shape_str(sb, sizeof sb, ndim, shape);
    return build_fail(g, SK_ERR_SHAPE, "expand: %s does not broadcast to %s", sa, sb);
  }
  if (same_shape(ndim, shape, A->ndim, A->shape)) return a;
  return sk__add_node(g, SK_OP_EXPAND, a, SK_NONE, ndim, shape);
}

sk_node sk_reshape(sk_graph *g, sk_node a, int ndim, const int64_t *shape) {
  CHECK_IN(g, a);
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) numel *= shape[i] >= 0 ? shape[i] : 0;
  if (ndim < 0 || ndim > SK_MAX_DIMS || numel != N(g, a)->numel) {
    char sa[64], sb[64];
    shape_str(sa, sizeof sa, N(g, a)->ndim, N(g, a)->shape);
    shape_str(sb, sizeof sb, ndim, shape);
    return build_fail(g, SK_ERR_SHAPE, "reshape: %s to %s changes the element count", sa, sb);
  }
  if (same_shape(ndim, shape, N(g, a)->ndim, N(g, a)->shape)) return a;
  return sk__add_node(g, SK_OP_RESHAPE, a, SK_NONE, ndim, shape);
}

sk_node sk_permute(sk_graph *g, sk_node a, const int *perm) {
  CHECK_IN(g, a);
  const sk__node *A = N(g, a);
  int seen[SK_MAX_DIMS] = {0}, identity = 1;
  int64_t shape[SK_MAX_DIMS];
  for (int i = 0; i < A->ndim; i++) {
    if (perm[i] < 0 || perm[i] >= A->ndim || seen[perm[i]]++)
      return build_fail(g, SK_ERR_SHAPE, "permute: axes are not a permutation of 0..%d", A->ndim - 1);
    shape[i] = A->shape[perm[i]];
    identity &= perm[i] == i;
  }
  if (identity) return a;
  const int nd = A->ndim; /* A dangles once a node is added */
  sk_node n = sk__add_node(g, SK_OP_PERMUTE, a, SK_NONE, nd, shape);
  if (n != SK_NONE)
    for (int i = 0; i < nd; i++) g->nodes[n].ip[i] = perm[i];
  return n;
}

static int norm_axis(int axis, int ndim) { return axis < 0 ? axis + ndim : axis; }

sk_node sk_concat(sk_graph *g, sk_node a, sk_node b, int axis) {
  CHECK_IN(g, a);
  CHECK_IN(g, b);
  const sk__node *A = N(g, a), *B = N(g, b);
  axis = norm_axis(axis, A->ndim);
  int ok = A->ndim == B->ndim && axis >= 0 && axis < A->ndim;
  for (int i = 0; ok && i < A->ndim; i++) ok = i == axis || A->shape[i] == B->shape[i];
  if (!ok) {
    char sa[64], sb[64];
    shape_str(sa, sizeof sa, A->ndim, A->shape);
    shape_str(sb, sizeof sb, B->ndim, B->shape);
    return build_fail(g, SK_ERR_SHAPE, "concat: %s and %s along axis %d", sa, sb, axis);
  }
  int64_t shape[SK_MAX_DIMS];
  memcpy(shape, A->shape, sizeof shape);
  shape[axis] += B->shape[axis];
  sk_node n = sk__add_node(g, SK_OP_CONCAT, a, b, A->ndim, shape);
  if (n != SK_NONE) g->nodes[n].ip[0] = axis;
  return n;
}

sk_node sk_slice(sk_graph *g, sk_node a, int axis, int64_t start, int64_t len) {
  CHECK_IN(g, a);
  const sk__node *A = N(g, a);
  axis = norm_axis(axis, A->ndim);
  if (axis < 0 || axis >= A->ndim || start < 0 || len < 0 || start + len > A->shape[axis] ||
      start > INT32_MAX)
    return build_fail(g, SK_ERR_SHAPE, "slice: [%lld, %lld) of axis %d out of range",
                      (long long)start, (long long)(start + len), axis);
  if (start == 0 && len == A->shape[axis]) return a;
  int64_t shape[SK_MAX_DIMS];
  memcpy(shape, A->shape, sizeof shape);
  shape[axis] = len;
  sk_node n = sk__add_node(g, SK_OP_SLICE, a, SK_NONE, A->ndim, shape);
  if (n != SK_NONE) {
    g->nodes[n].ip[0] = axis;
    g->nodes[n].ip[1] = (int32_t)start;
  }
  return n;
}

sk_node sk_pad(sk_graph *g, sk_node a, int axis, int64_t before, int64_t after) {
  CHECK_IN(g, a);
  const sk__node *A = N(g, a);
  axis = norm_axis(axis, A->ndim);
  if (axis < 0 || axis >= A->ndim || before < 0 || after < 0 || before > INT32_MAX)
    return build_fail(g, SK_ERR_SHAPE, "pad: bad axis %d or widths", axis);
  if (before == 0 && after == 0) return a;
  int64_t shape[SK_MAX_DIMS];
  memcpy(shape, A->shape, sizeof shape);
  shape[axis] += before + after;
  sk_node n = sk__add_node(g, SK_OP_PAD, a, SK_NONE, A->ndim, shape);
  if (n != SK_NONE) {
    g->nodes[n].ip[0] = axis;
    g->nodes[n].ip[1] = (int32_t)before;
  }
  return n;
}

sk_node sk_gather(sk_graph *g, sk_node a, sk_node idx) {
  CHECK_IN(g, a);
  CHECK_IN(g, idx);
  const sk__node *A = N(g, a), *I = N(g, idx);
  if (A->ndim < 1 || I->ndim != 1)
    return build_fail(g, SK_ERR_SHAPE, "gather: need a rank >= 1 source and a 1-D index");
  int64_t shape[SK_MAX_DIMS];
  memcpy(shape, A->shape, sizeof shape);
  shape[0] = I->shape[0];
  return sk__add_node(g, SK_OP_GATHER, a, idx, A->ndim, shape);
}

sk_node sk_scatter_add(sk_graph *g, sk_node a, sk_node idx, int64_t rows) {
  CHECK_IN(g, a);
  CHECK_IN(g, idx);
  const sk__node *A = N(g, a), *I = N(g, idx);
  if (A->ndim < 1 || I->ndim != 1 || I->shape[0] != A->shape[0] || rows < 0)
    return build_fail(g, SK_ERR_SHAPE, "scatter_add: need a 1-D index with one entry per row");
  int64_t shape[SK_MAX_DIMS];
  memcpy(shape, A->shape, sizeof shape);
  shape[0] = rows;
  return sk__add_node(g, SK_OP_SCATTER_ADD, a, idx, A->ndim, shape);
}

sk_node sk_logsumexp(sk_graph *g, sk_node a) {
  CHECK_IN(g, a);
  const sk__node *A = N(g, a);
  if (A->ndim < 1 || A->shape[A->ndim - 1] < 1)
    return build_fail(g, SK_ERR_SHAPE, "logsumexp: need a non-empty last axis");
  int64_t shape[SK_MAX_DIMS];
  memcpy(shape, A->shape, sizeof shape);
  shape[A->ndim - 1] = 1;
  return sk__add_node(g, SK_OP_LOGSUMEXP, a, SK_NONE, A->ndim, shape);
}

/* ---- composites ---- */

sk_node sk_square(sk_graph *g, sk_node a) { return sk_mul(g, a, a); }

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
sk_node sk_silu(sk_graph *g, sk_node a) { return sk_mul(g, a, sk_sigmoid(g, a)); }

/* x for x > 0, e^x − 1 otherwise, written as x·h + exp(x·(1−h)) − 1 with h =
 * step(x) so that its derivatives of every order come from the primitives. */
sk_node sk_elu(sk_graph *g, sk_node a) {
  sk_node h = sk_step(g, a);
  sk_node pos = sk_mul(g, a, h);
  sk_node neg = sk_mul(g, a, sk_affine(g, h, -1.0f, 1.0f));
  return sk_add(g, pos, sk_affine(g, sk_exp(g, neg), 1.0f, -1.0f));
}

sk_node sk_log_softmax(sk_graph *g, sk_node a) { return sk_sub(g, a, sk_logsumexp(g, a)); }

const char *sk__graph_error(const sk_graph *g) { return g->error; }
