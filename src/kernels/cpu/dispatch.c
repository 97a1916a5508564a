/* The CPU backend: maps a planned node to its kernel. */
#include <pthread.h>

#include "graph/internal.h"
#include "kernels/cpu/kernels.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
void sk__cpu_init(void) { pthread_once(&init_once, sk__kernels_init); }

/* Outer (before axis) and inner (after axis) element counts of a shape. */
static void around_axis(const sk__node *n, int axis, int64_t *outer, int64_t *inner) {
  *outer = *inner = 1;
  for (int i = 0; i < axis; i++) *outer *= n->shape[i];
  for (int i = axis + 1; i < n->ndim; i++) *inner *= n->shape[i];
}

static sk__shape4 s4(const sk__node *n) { return sk__shape4_of(n->ndim, n->shape); }

/* Rows of the output's first dimension, the unit the executor splits an op
 * into; 1 for an op that runs whole on one thread. */
int64_t sk__cpu_units(const sk__node *y, const sk__node *a, const sk__node *b) {
  if (y->ndim == 0 || y->numel == 0) return 1;
  const int64_t rows = y->shape[0];
  switch (y->op) {
  case SK_OP_ADD: case SK_OP_SUB: case SK_OP_MUL: case SK_OP_DIV:
    /* A 1-D output needs the elementwise paths (no broadcast inside a row). */
    if (y->ndim == 1 && !((a->numel == y->numel || a->numel == 1) &&
                          (b->numel == y->numel || b->numel == 1)))
      return 1;
    return rows;
  case SK_OP_EXPAND:
    return y->ndim == 1 ? 1 : rows;
  case SK_OP_CONCAT: case SK_OP_SLICE: case SK_OP_PAD:
    return y->ip[0] == 0 ? 1 : rows;
  case SK_OP_PERMUTE: case SK_OP_GATHER: case SK_OP_SCATTER_ADD:
    return 1;
  case SK_OP_LOGSUMEXP:
    return y->ndim == 1 ? 1 : rows;
  default:
    return rows;
  }
}

/* Whether output row r reads only row r of input `which`: then a producer
 * that split its rows the same way needs no barrier before this op. */
int sk__cpu_row_aligned(const sk__node *y, const sk__node *x, int which) {
  if (x->ndim != y->ndim || x->ndim == 0 || x->shape[0] != y->shape[0]) return 0;
  switch (y->op) {
  case SK_OP_MATMUL: return which == 0 && !y->ip[0];
  case SK_OP_PERMUTE: case SK_OP_GATHER: case SK_OP_SCATTER_ADD: return 0;
  case SK_OP_CONCAT: case SK_OP_SLICE: case SK_OP_PAD: return y->ip[0] != 0;
  default: return 1;
  }
}

/* The elementwise ops: out (so) = op(x0 (sa)), or op(x0 (sa), x1 (sb)),
 * elements [e0, e1). False for any other op. Whole rows (sk__cpu_exec) and
 * fused blocks (sk__cpu_exec_block) both come here. */
static int elementwise(const sk__exec *e, float *out, const float *x0, const float *x1,
                       sk__shape4 so, sk__shape4 sa, sk__shape4 sb, int64_t e0, int64_t e1) {
  const float alpha = e->node->fp[0], beta = e->node->fp[1];
  switch (e->op) {
  case SK_OP_ADD: sk__binary(out, x0, x1, so, sa, sb, SK_BIN_ADD, e0, e1); return 1;
  case SK_OP_SUB: sk__binary(out, x0, x1, so, sa, sb, SK_BIN_SUB, e0, e1); return 1;
  case SK_OP_MUL: sk__binary(out, x0, x1, so, sa, sb, SK_BIN_MUL, e0, e1); return 1;
  case SK_OP_DIV: sk__binary(out, x0, x1, so, sa, sb, SK_BIN_DIV, e0, e1); return 1;
  case SK_OP_NEG: sk__unary(out, x0, SK_UN_NEG, 0, 0, e0, e1); return 1;
  case SK_OP_AFFINE: sk__unary(out, x0, SK_UN_AFFINE, alpha, beta, e0, e1); return 1;
  case SK_OP_EXP: sk__unary(out, x0, SK_UN_EXP, 0, 0, e0, e1); return 1;
  case SK_OP_LOG: sk__unary(out, x0, SK_UN_LOG, 0, 0, e0, e1); return 1;
  case SK_OP_SQRT: sk__unary(out, x0, SK_UN_SQRT, 0, 0, e0, e1); return 1;
  case SK_OP_TANH: sk__unary(out, x0, SK_UN_TANH, 0, 0, e0, e1); return 1;
  case SK_OP_SIGMOID: sk__unary(out, x0, SK_UN_SIGMOID, 0, 0, e0, e1); return 1;
  case SK_OP_SOFTPLUS: sk__unary(out, x0, SK_UN_SOFTPLUS, 0, 0, e0, e1); return 1;
  case SK_OP_STEP: sk__unary(out, x0, SK_UN_STEP, 0, 0, e0, e1); return 1;
  default: return 0;
  }
}

sk_status sk__cpu_exec(const sk__exec *e, int64_t r0, int64_t r1) {
  const sk__node *y = e->node, *a = e->a, *b = e->b;
  float *out = e->out;
  const float *x0 = e->in[0], *x1 = e->in[1];
  /* The element range of rows [r0, r1); all of it for a 1-unit op. */
  const int64_t units = e->units, per = units ? y->numel / units : 0;
  const int64_t e0 = r0 * per, e1 = r1 * per;
  if (elementwise(e, out, x0, x1, s4(y), s4(a), b ? s4(b) : s4(a), e0, e1)) return SK_OK;
  switch (e->op) {
  case SK_OP_MATMUL: {
    int ta = y->ip[0], tb = y->ip[1];
    int64_t k = ta ? a->shape[0] : a->shape[1];
    sk__matmul_rows(out, x0, x1, e->packed, y->shape[0], y->shape[1], k, ta, tb, r0, r1);
    break;
  }
  case SK_OP_SUM_TO: sk__sum_to(out, x0, s4(y), s4(a), e0, e1); break;
  case SK_OP_EXPAND: sk__expand(out, x0, s4(y), s4(a), e0, e1); break;
  case SK_OP_PERMUTE: {
    if (a->ndim == 2) { /* the common case: a blocked transpose */
      sk__transpose_rows(out, x0, a->shape[0], a->shape[1], 0, a->shape[1], 0);
      break;
    }
    /* Pad the permutation to 4-D: leading axes stay in place. */
    int p[4], off = 4 - a->ndim;
    for (int i = 0; i < 4; i++) p[i] = i < off ? i : y->ip[i - off] + off;
    sk__permute(out, x0, s4(a), p);
    break;
  }
  case SK_OP_CONCAT: {
    int64_t outer, inner, axis = y->ip[0];
    around_axis(y, (int)axis, &outer, &inner);
    /* Rows of dim 0 are blocks of `outer` when axis > 0. */
    const int64_t o0 = units == 1 ? 0 : r0 * (outer / units), o1 = units == 1 ? outer : r1 * (outer / units);
    sk__concat(out, x0, x1, a->shape[axis], b->shape[axis], inner, o0, o1);
    break;
  }
  case SK_OP_SLICE: {
    int64_t outer, inner, axis = y->ip[0];
    around_axis(y, (int)axis, &outer, &inner);
    const int64_t o0 = units == 1 ? 0 : r0 * (outer / units), o1 = units == 1 ? outer : r1 * (outer / units);
    sk__slice(out, x0, a->shape[axis], y->ip[1], y->shape[axis], inner, o0, o1);
    break;
  }
  case SK_OP_PAD: {
    int64_t outer, inner, axis = y->ip[0];
    around_axis(y, (int)axis, &outer, &inner);
    const int64_t o0 = units == 1 ? 0 : r0 * (outer / units), o1 = units == 1 ? outer : r1 * (outer / units);
    sk__pad(out, x0, a->shape[axis], y->ip[1], y->shape[axis], inner, o0, o1);
    break;
  }
  case SK_OP_GATHER: {
    int64_t row = a->shape[0] ? a->numel / a->shape[0] : 0;
    if (!sk__gather(out, x0, x1, y->shape[0], a->shape[0], row))
      return sk__fail(SK_ERR_INVALID, "gather: an index is not an integer in [0, %lld)",
                      (long long)a->shape[0]);
    break;
  }
  case SK_OP_SCATTER_ADD: {
    int64_t row = a->shape[0] ? a->numel / a->shape[0] : 0;
    if (!sk__scatter_add(out, x0, x1, a->shape[0], y->shape[0], row))
      return sk__fail(SK_ERR_INVALID, "scatter_add: an index is not an integer in [0, %lld)",
                      (long long)y->shape[0]);
    break;
  }
  case SK_OP_LOGSUMEXP: {
    int64_t cols = a->shape[a->ndim - 1];
    if (units == 1) sk__logsumexp(out, x0, cols, 0, cols ? a->numel / cols : 0);
    else sk__logsumexp(out, x0, cols, e0, e1);
    break;
  }
  default:
    return sk__fail(SK_ERR_UNSUPPORTED, "no CPU kernel for op %s", sk__op_name(e->op));
  }
  return SK_OK;
}

void sk__cpu_exec_pair(const sk__exec *sp, const sk__exec *sg, float *out_sp, float *out_sg,
                       const float *in, int64_t r0, int64_t r1) {
  const sk__node *y = sp->node;
  const int64_t w = y->numel / y->shape[0];
  const float *x = in ? in : sp->in[0] + r0 * w;
  sk__softplus_sigmoid(out_sp ? out_sp : sp->out + r0 * w, out_sg ? out_sg : sg->out + r0 * w, x,
                       0, (r1 - r0) * w);
}

/* Rows [r0, r1) of c = x · (y · (1 − y)), or of c = y · (1 − y) for kx < 0
 * (see sk__step.dsig): a is the affine that reads y, c's input kx is x; out,
 * y and x are scratch blocks, or NULL for their buffers. */
void sk__cpu_exec_sigmoid_grad(const sk__exec *a, const sk__exec *c, int kx, float *out,
                               const float *y, const float *x, int64_t r0, int64_t r1) {
  const sk__node *z = c->node;
  const int64_t w = z->numel / z->shape[0], n = (r1 - r0) * w;
  if (kx >= 0 && !x) x = c->in[kx] + r0 * w;
  sk__sigmoid_grad_mul(out ? out : c->out + r0 * w, x, y ? y : a->in[0] + r0 * w, 0, n);
}

/* b^T for a·b^T products whose b is a leaf: packed once per run. */
void sk__cpu_pack(float *bt, const float *b, int64_t n, int64_t k, int64_t r0, int64_t r1,
                  int shared) {
  sk__transpose_rows(bt, b, n, k, r0, r1, shared);
}

void sk__cpu_reduce_rows(const sk__exec *e, float *out, int64_t k0, int64_t k1) {
  const sk__node *y = e->node;
  if (e->op == SK_OP_MATMUL) { /* out (m, n) = a[k0:k1]^T · b[k0:k1] */
    const int64_t m = y->shape[0], n = y->shape[1];
    sk__matmul_rows(out, e->in[0] + k0 * m, e->in[1] + k0 * n, NULL, m, n, k1 - k0, 1, 0, 0, m);
  } else { /* a row sum: out (n) = Σ rows [k0, k1) of a (rows, n) */
    sk__sum_rows(out, e->in[0], y->numel, k0, k1);
  }
}

void sk__cpu_add(float *out, const float *x, const float *y, int64_t e0, int64_t e1) {
  sk__add_halves(out, x, y, e0, e1);
}

/* How a blockwise op (see sk__cpu_blockwise) reads an input of y (rows, w). */
typedef enum { IN_FULL, IN_SCALAR, IN_ROW, IN_COL, IN_NONE } in_kind;

static in_kind input_kind(const sk__node *y, const sk__node *x) {
  const int64_t rows = y->shape[0], w = y->numel / rows;
  if (x->numel == y->numel) return IN_FULL; /* elementwise, whatever its shape */
  if (x->numel == 1) return IN_SCALAR;
  if (x->numel == w && (x->ndim == 1 || (x->ndim == 2 && x->shape[0] == 1))) return IN_ROW;
  if (x->ndim == 2 && x->shape[0] == rows && x->shape[1] == 1) return IN_COL;
  return IN_NONE;
}

int sk__cpu_blockwise(const sk__node *y, const sk__node *a, const sk__node *b) {
  switch (y->op) {
  case SK_OP_ADD: case SK_OP_SUB: case SK_OP_MUL: case SK_OP_DIV:
    if (input_kind(y, b) == IN_NONE) return 0;
    break;
  case SK_OP_NEG: case SK_OP_AFFINE: case SK_OP_EXP: case SK_OP_LOG: case SK_OP_SQRT:
  case SK_OP_TANH: case SK_OP_SIGMOID: case SK_OP_SOFTPLUS: case SK_OP_STEP:
    break;
  default:
    return 0;
  }
  return y->ndim == 2 && y->shape[0] > 1 && sk__fuse_rows(y->numel / y->shape[0]) > 0 &&
         input_kind(y, a) != IN_NONE;
}

/* The 4-D shape of rows [r0, r1) of input x of y, and where they start. */
static const float *block_input(const sk__node *y, const sk__node *x, const float *data,
                                int64_t r0, int64_t r1, sk__shape4 *s) {
  const int64_t w = y->numel / y->shape[0];
  switch (input_kind(y, x)) {
  case IN_FULL: *s = (sk__shape4){{1, 1, r1 - r0, w}}; return data + r0 * w;
  case IN_ROW: *s = (sk__shape4){{1, 1, 1, w}}; return data;
  case IN_COL: *s = (sk__shape4){{1, 1, r1 - r0, 1}}; return data + r0;
  default: *s = (sk__shape4){{1, 1, 1, 1}}; return data;
  }
}

void sk__cpu_exec_block(const sk__exec *e, float *out, const float *const in[2], int64_t r0,
                        int64_t r1) {
  const sk__node *y = e->node;
  const int64_t w = y->numel / y->shape[0], n = (r1 - r0) * w;
  const sk__shape4 so = {{1, 1, r1 - r0, w}}, full = so;
  sk__shape4 sa, sb;
  const float *x0 = in[0] ? (sa = full, in[0]) : block_input(y, e->a, e->in[0], r0, r1, &sa);
  float *o = out ? out : e->out + r0 * w;
  const float *x1 = NULL;
  sb = sa;
  if (sk__op_arity(e->op) > 1)
    x1 = in[1] ? (sb = full, in[1]) : block_input(y, e->b, e->in[1], r0, r1, &sb);
  elementwise(e, o, x0, x1, so, sa, sb, 0, n); /* sk__cpu_blockwise admits no other op */
}
