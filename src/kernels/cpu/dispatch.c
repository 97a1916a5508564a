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

sk_status sk__cpu_exec(const sk__exec *e) {
  const sk__node *y = e->node, *a = e->a, *b = e->b;
  float *out = e->out;
  const float *x0 = e->in[0], *x1 = e->in[1];
  switch (e->op) {
  case SK_OP_MATMUL: {
    int ta = y->ip[0], tb = y->ip[1];
    int64_t k = ta ? a->shape[0] : a->shape[1];
    sk__matmul(out, x0, x1, y->shape[0], y->shape[1], k, ta, tb);
    break;
  }
  case SK_OP_ADD: sk__binary(out, x0, x1, s4(y), s4(a), s4(b), SK_BIN_ADD); break;
  case SK_OP_SUB: sk__binary(out, x0, x1, s4(y), s4(a), s4(b), SK_BIN_SUB); break;
  case SK_OP_MUL: sk__binary(out, x0, x1, s4(y), s4(a), s4(b), SK_BIN_MUL); break;
  case SK_OP_DIV: sk__binary(out, x0, x1, s4(y), s4(a), s4(b), SK_BIN_DIV); break;
  case SK_OP_NEG: sk__unary(out, x0, y->numel, SK_UN_NEG, 0, 0); break;
  case SK_OP_AFFINE: sk__unary(out, x0, y->numel, SK_UN_AFFINE, y->fp[0], y->fp[1]); break;
  case SK_OP_EXP: sk__unary(out, x0, y->numel, SK_UN_EXP, 0, 0); break;
  case SK_OP_LOG: sk__unary(out, x0, y->numel, SK_UN_LOG, 0, 0); break;
  case SK_OP_SQRT: sk__unary(out, x0, y->numel, SK_UN_SQRT, 0, 0); break;
  case SK_OP_TANH: sk__unary(out, x0, y->numel, SK_UN_TANH, 0, 0); break;
  case SK_OP_SIGMOID: sk__unary(out, x0, y->numel, SK_UN_SIGMOID, 0, 0); break;
  case SK_OP_SOFTPLUS: sk__unary(out, x0, y->numel, SK_UN_SOFTPLUS, 0, 0); break;
  case SK_OP_STEP: sk__unary(out, x0, y->numel, SK_UN_STEP, 0, 0); break;
  case SK_OP_SUM_TO: sk__sum_to(out, x0, s4(y), s4(a)); break;
  case SK_OP_EXPAND: sk__expand(out, x0, s4(y), s4(a)); break;
  case SK_OP_PERMUTE: {
    /* Pad the permutation to 4-D: leading axes stay in place. */
    int p[4], off = 4 - a->ndim;
    for (int i = 0; i < 4; i++) p[i] = i < off ? i : y->ip[i - off] + off;
    sk__permute(out, x0, s4(a), p);
    break;
  }
  case SK_OP_CONCAT: {
    int64_t outer, inner, axis = y->ip[0];
    around_axis(y, (int)axis, &outer, &inner);
    sk__concat(out, x0, x1, outer, a->shape[axis], b->shape[axis], inner);
    break;
  }
  case SK_OP_SLICE: {
    int64_t outer, inner, axis = y->ip[0];
    around_axis(y, (int)axis, &outer, &inner);
    sk__slice(out, x0, outer, a->shape[axis], y->ip[1], y->shape[axis], inner);
    break;
  }
  case SK_OP_PAD: {
    int64_t outer, inner, axis = y->ip[0];
    around_axis(y, (int)axis, &outer, &inner);
    sk__pad(out, x0, outer, a->shape[axis], y->ip[1], y->shape[axis], inner);
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
    sk__logsumexp(out, x0, cols ? a->numel / cols : 0, cols);
    break;
  }
  default:
    return sk__fail(SK_ERR_UNSUPPORTED, "no CPU kernel for op %s", sk__op_name(e->op));
  }
  return SK_OK;
}
