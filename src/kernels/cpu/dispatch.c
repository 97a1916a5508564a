/* The CPU backend: its entry in the backend table (graph/backend.h), the
 * kernel of every op, and its answers to the planner: how ops split over
 * threads, which run block by block in fused runs, which reductions run in
 * halves, which products pack their right operand, and the tiles. */
#include <pthread.h>
#include <stdatomic.h>

#include "graph/backend.h"
#include "kernels/cpu/kernels.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void cpu_init(void) { pthread_once(&init_once, sk__kernels_init); }

/* Outer (before axis) and inner (after axis) element counts of a shape. */
static void around_axis(const sk__node *n, int axis, int64_t *outer, int64_t *inner) {
  *outer = *inner = 1;
  for (int i = 0; i < axis; i++) *outer *= n->shape[i];
  for (int i = axis + 1; i < n->ndim; i++) *inner *= n->shape[i];
}

static sk__shape4 s4(const sk__node *n) { return sk__shape4_of(n->ndim, n->shape); }

/* Rows of the output's first dimension, the unit the executor splits an op
 * into; 1 for an op that runs whole on one thread (the graph never asks for
 * an op whose rows are NONE). */
static int64_t cpu_units(const sk__node *y, const sk__node *a, const sk__node *b) {
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

/* The elementwise ops' kernels: binary (sk__binop + 1) or unary (sk__unop + 1). */
static const struct { int8_t bin, un; } ew[SK_OP_COUNT] = {
    [SK_OP_ADD] = {SK_BIN_ADD + 1, 0},         [SK_OP_SUB] = {SK_BIN_SUB + 1, 0},
    [SK_OP_MUL] = {SK_BIN_MUL + 1, 0},         [SK_OP_DIV] = {SK_BIN_DIV + 1, 0},
    [SK_OP_NEG] = {0, SK_UN_NEG + 1},          [SK_OP_AFFINE] = {0, SK_UN_AFFINE + 1},
    [SK_OP_EXP] = {0, SK_UN_EXP + 1},          [SK_OP_LOG] = {0, SK_UN_LOG + 1},
    [SK_OP_SQRT] = {0, SK_UN_SQRT + 1},        [SK_OP_TANH] = {0, SK_UN_TANH + 1},
    [SK_OP_SIGMOID] = {0, SK_UN_SIGMOID + 1},  [SK_OP_SOFTPLUS] = {0, SK_UN_SOFTPLUS + 1},
    [SK_OP_STEP] = {0, SK_UN_STEP + 1},        [SK_OP_SIN] = {0, SK_UN_SIN + 1},
    [SK_OP_COS] = {0, SK_UN_COS + 1},
};

/* An elementwise op: out (so) = op(x0 (sa)), or op(x0 (sa), x1 (sb)),
 * elements [e0, e1). Whole rows (cpu_elementwise) and fused blocks
 * (cpu_exec_block) both come here. */
static void elementwise(const sk__exec *e, float *out, const float *x0, const float *x1,
                        sk__shape4 so, sk__shape4 sa, sk__shape4 sb, int64_t e0, int64_t e1) {
  if (ew[e->op].bin)
    sk__binary(out, x0, x1, so, sa, sb, (sk__binop)(ew[e->op].bin - 1), e0, e1);
  else
    sk__unary(out, x0, (sk__unop)(ew[e->op].un - 1), e->node->fp[0], e->node->fp[1], e0, e1);
}

/* The element range of output rows [r0, r1); all of it for a 1-unit op. */
static void elem_range(const sk__exec *e, int64_t r0, int64_t r1, int64_t *e0, int64_t *e1) {
  const int64_t per = e->units ? e->node->numel / e->units : 0;
  *e0 = r0 * per;
  *e1 = r1 * per;
}

/* ---- one kernel per op (ops.def), output rows [r0, r1) of e's units ---- */

typedef sk_status (*cpu_kernel)(const sk__exec *e, int64_t r0, int64_t r1);

/* Leaves and views never run: they hold memory, or share their input's. */
static sk_status cpu_none(const sk__exec *e, int64_t r0, int64_t r1) {
  return sk__fail(SK_ERR_UNSUPPORTED, "no CPU kernel runs op %s", sk__op_name(e->op));
}
#define cpu_input cpu_none
#define cpu_param cpu_none
#define cpu_const cpu_none
#define cpu_reshape cpu_none
#define cpu_stop_grad cpu_none

static sk_status cpu_elementwise(const sk__exec *e, int64_t r0, int64_t r1) {
  const sk__node *y = e->node, *a = e->a, *b = e->b;
  int64_t e0, e1;
  elem_range(e, r0, r1, &e0, &e1);
  elementwise(e, e->out, e->in[0], e->in[1], s4(y), s4(a), b ? s4(b) : s4(a), e0, e1);
  return SK_OK;
}
#define cpu_add cpu_elementwise
#define cpu_sub cpu_elementwise
#define cpu_mul cpu_elementwise
#define cpu_div cpu_elementwise
#define cpu_neg cpu_elementwise
#define cpu_affine cpu_elementwise
#define cpu_exp cpu_elementwise
#define cpu_log cpu_elementwise
#define cpu_sqrt cpu_elementwise
#define cpu_tanh cpu_elementwise
#define cpu_sin cpu_elementwise
#define cpu_cos cpu_elementwise
#define cpu_sigmoid cpu_elementwise
#define cpu_softplus cpu_elementwise
#define cpu_step cpu_elementwise

static sk_status cpu_matmul(const sk__exec *e, int64_t r0, int64_t r1) {
  const sk__node *y = e->node, *a = e->a;
  const int ta = y->ip[0], tb = y->ip[1];
  const int64_t k = ta ? a->shape[0] : a->shape[1];
  sk__matmul_rows(e->out, e->in[0], e->in[1], e->packed, y->shape[0], y->shape[1], k, ta, tb, r0,
                  r1);
  return SK_OK;
}

static sk_status cpu_sum_to(const sk__exec *e, int64_t r0, int64_t r1) {
  int64_t e0, e1;
  elem_range(e, r0, r1, &e0, &e1);
  sk__sum_to(e->out, e->in[0], s4(e->node), s4(e->a), e0, e1);
  return SK_OK;
}

/* Floats of one group of a group-norm op's input x (input 0). */
static int64_t gn_group_floats(const sk__node *y, const sk__node *x) {
  return x->numel / (x->shape[0] * y->ip[0]);
}

/* kind: sk__group_norm's; the geometry from x (input 0), the inputs as
 * ops.def lays them out: (x, gb, d), (x, u, gb, d) or (x, u, d), the shift d
 * last and optional. With a shift, the group of x + d goes to the scratch
 * part of the block of SK_SPLIT_ROWS samples the range starts in (see
 * cpu_scratch_floats). */
static sk_status group_norm_kernel(const sk__exec *e, int kind, int64_t r0, int64_t r1) {
  const sk__node *y = e->node, *x = e->a;
  const int64_t c = x->shape[1], hw = x->numel / (x->shape[0] * c);
  const float *d = e->in[sk__op_arity(e->op) - 1];
  const float *u = kind == 0 ? NULL : e->in[1];
  const float *gb = kind == 0 ? e->in[1] : kind == 3 ? NULL : e->in[2];
  float *xs = NULL;
  if (d) {
    if (!e->scratch)
      return sk__fail(SK_ERR_STATE, "%s: no scratch planned for its shifted input",
                      sk__op_name(e->op));
    SK_ASSERT(r0 % SK_SPLIT_ROWS == 0);
    xs = e->scratch + r0 / SK_SPLIT_ROWS * e->scratch_part;
  }
  sk__group_norm(kind, e->out, e->in[0], u, gb, d, xs, c, hw, y->ip[0], y->fp[0], r0, r1);
  return SK_OK;
}
static sk_status cpu_group_norm_silu(const sk__exec *e, int64_t r0, int64_t r1) {
  return group_norm_kernel(e, 0, r0, r1);
}
static sk_status cpu_group_norm_silu_d(const sk__exec *e, int64_t r0, int64_t r1) {
  return group_norm_kernel(e, 1, r0, r1);
}
static sk_status cpu_group_norm_back(const sk__exec *e, int64_t r0, int64_t r1) {
  return group_norm_kernel(e, 2, r0, r1);
}
static sk_status cpu_group_norm_sums(const sk__exec *e, int64_t r0, int64_t r1) {
  return group_norm_kernel(e, 3, r0, r1);
}

static sk_status cpu_expand(const sk__exec *e, int64_t r0, int64_t r1) {
  int64_t e0, e1;
  elem_range(e, r0, r1, &e0, &e1);
  sk__expand(e->out, e->in[0], s4(e->node), s4(e->a), e0, e1);
  return SK_OK;
}

static sk_status cpu_permute(const sk__exec *e, int64_t r0, int64_t r1) {
  const sk__node *y = e->node, *a = e->a;
  if (a->ndim == 2) { /* the common case: a blocked transpose */
    sk__transpose_rows(e->out, e->in[0], a->shape[0], a->shape[1], 0, a->shape[1], 0);
    return SK_OK;
  }
  /* Pad the permutation to 4-D: leading axes stay in place. */
  int p[4], off = 4 - a->ndim;
  for (int i = 0; i < 4; i++) p[i] = i < off ? i : y->ip[i - off] + off;
  sk__permute(e->out, e->in[0], s4(a), p);
  return SK_OK;
}

/* The outer blocks (before the op's axis ip[0]) of output rows [r0, r1):
 * rows of dim 0 are blocks of `outer` when the axis is not 0. */
static void outer_range(const sk__exec *e, int64_t r0, int64_t r1, int64_t *outer, int64_t *inner,
                        int64_t *o0, int64_t *o1) {
  around_axis(e->node, e->node->ip[0], outer, inner);
  *o0 = e->units == 1 ? 0 : r0 * (*outer / e->units);
  *o1 = e->units == 1 ? *outer : r1 * (*outer / e->units);
}

static sk_status cpu_concat(const sk__exec *e, int64_t r0, int64_t r1) {
  const int axis = e->node->ip[0];
  int64_t outer, inner, o0, o1;
  outer_range(e, r0, r1, &outer, &inner, &o0, &o1);
  sk__concat(e->out, e->in[0], e->in[1], e->a->shape[axis], e->b->shape[axis], inner, o0, o1);
  return SK_OK;
}

static sk_status cpu_slice(const sk__exec *e, int64_t r0, int64_t r1) {
  const sk__node *y = e->node;
  const int axis = y->ip[0];
  int64_t outer, inner, o0, o1;
  outer_range(e, r0, r1, &outer, &inner, &o0, &o1);
  sk__slice(e->out, e->in[0], e->a->shape[axis], y->ip[1], y->shape[axis], inner, o0, o1);
  return SK_OK;
}

static sk_status cpu_pad(const sk__exec *e, int64_t r0, int64_t r1) {
  const sk__node *y = e->node;
  const int axis = y->ip[0];
  int64_t outer, inner, o0, o1;
  outer_range(e, r0, r1, &outer, &inner, &o0, &o1);
  sk__pad(e->out, e->in[0], e->a->shape[axis], y->ip[1], y->shape[axis], inner, o0, o1);
  return SK_OK;
}

static sk_status cpu_gather(const sk__exec *e, int64_t r0, int64_t r1) {
  const sk__node *a = e->a;
  const int64_t row = a->shape[0] ? a->numel / a->shape[0] : 0;
  if (!sk__gather(e->out, e->in[0], e->in[1], e->node->shape[0], a->shape[0], row))
    return sk__fail(SK_ERR_INVALID, "gather: an index is not an integer in [0, %lld)",
                    (long long)a->shape[0]);
  return SK_OK;
}

static sk_status cpu_scatter_add(const sk__exec *e, int64_t r0, int64_t r1) {
  const sk__node *a = e->a, *y = e->node;
  const int64_t row = a->shape[0] ? a->numel / a->shape[0] : 0;
  if (!sk__scatter_add(e->out, e->in[0], e->in[1], a->shape[0], y->shape[0], row))
    return sk__fail(SK_ERR_INVALID, "scatter_add: an index is not an integer in [0, %lld)",
                    (long long)y->shape[0]);
  return SK_OK;
}

static sk_status cpu_logsumexp(const sk__exec *e, int64_t r0, int64_t r1) {
  const sk__node *a = e->a;
  const int64_t cols = a->shape[a->ndim - 1];
  if (e->units == 1) {
    sk__logsumexp(e->out, e->in[0], cols, 0, cols ? a->numel / cols : 0);
  } else {
    int64_t e0, e1;
    elem_range(e, r0, r1, &e0, &e1);
    sk__logsumexp(e->out, e->in[0], cols, e0, e1);
  }
  return SK_OK;
}

/* The convolution op y computes or transposes (kernels.h, sk__conv), from
 * its inputs a and b: x is the convolution's input and out its output,
 * whichever of them are the op's operands. */
static sk__conv conv_of(const sk__node *y, const sk__node *a, const sk__node *b) {
  const sk__node *x, *out;
  switch (y->op) {
  case SK_OP_CONV2D: x = a, out = y; break;
  case SK_OP_CONV_TRANSPOSE2D: x = y, out = a; break;
  default: x = a, out = b; break; /* conv2d_weight */
  }
  const int32_t *ip = y->ip;
  return (sk__conv){.n = x->shape[0], .c = x->shape[1], .h = x->shape[2], .w = x->shape[3],
                    .o = out->shape[1], .oh = out->shape[2], .ow = out->shape[3],
                    .kh = ip[SK__CONV_KERNEL], .kw = ip[SK__CONV_KERNEL + 1],
                    .sh = ip[SK__CONV_STRIDE], .sw = ip[SK__CONV_STRIDE + 1],
                    .ph = ip[SK__CONV_PAD], .pw = ip[SK__CONV_PAD + 1],
                    .dh = ip[SK__CONV_DILATION], .dw = ip[SK__CONV_DILATION + 1]};
}

/* The three convolution kernels: 0 forward (conv2d), 1 data
 * (conv_transpose2d), 2 weight (conv2d_weight). */
static int conv_kind(sk__op op) {
  return op == SK_OP_CONV2D ? 0 : op == SK_OP_CONV_TRANSPOSE2D ? 1 : 2;
}

static atomic_int conv_direct;
void sk__conv_force_direct(int on) { atomic_store(&conv_direct, on); }

/* Which kernel computes a convolution (kind as conv_kind): the products on
 * libxsmm's JIT kernels (conv_gemm.c) wherever they run: on every layer of
 * the score-SDE U-Net, forward and both backwards, they are 3.9-82× faster
 * than the direct loops on one thread, on small networks 1.1-10×
 * (docs/PERFORMANCE.md, "Convolutions"). The direct loops (conv.c) serve
 * machines without the JIT and the weight gradient of a single output
 * channel, a reduction too thin for a product (1 → 1 channel, 3 × 3 at 28 ×
 * 28, batch 64: direct 2.7-4.4 GFLOP/s, products 2.3-3.6, 5 runs). The
 * choice depends on the geometry alone, so every thread makes the same one. */
static int conv_uses_gemm(const sk__conv *cv, int kind) {
  if (atomic_load_explicit(&conv_direct, memory_order_relaxed) || !sk__conv_gemm_ok(cv)) return 0;
  return !(kind == 2 && cv->o == 1);
}

/* Whether a forward or weight pass that runs as products reads its input in
 * place (conv_implicit.c) rather than through im2col (conv_gemm.c): where
 * each tap's product has some depth (C ≥ 16 input channels), a sample's
 * product rows are at least 64 and the junk columns add at most 1/8 to the
 * work. On the U-Net's layers (1 thread, A/B, docs/PERFORMANCE.md
 * "Convolutions") that is the 12 × 12 outputs from 26 × 26, conv2's
 * forward and weight and tconv2's backward-data and weight: 1.06-1.21×, the
 * im2col's AVX-512 gathers gone; stride-1 layers of 32-64 channels measured
 * 1.1-1.9× (kernels called directly). The others lost: one input channel
 * (conv1, tconv1: products of depth 1 a tap) 0.36-0.97×, 5 × 5 outputs (29
 * product rows a sample, 1/5 junk) 0.85-0.92×, 2 × 2 (5 rows) 0.22-0.48×.
 * The choice depends on the geometry alone, so every thread makes the same. */
static int conv_implicit(const sk__conv *cv, int kind) {
  if (kind == 1 || !sk__conv_implicit_ok(cv)) return 0;
  int64_t sw, m;
  sk__conv_implicit_shape(cv, &sw, &m);
  return cv->c >= 16 && m >= 64 && 8 * (sw - cv->ow) <= cv->ow;
}

/* Scratch for the products: each block of SK_SPLIT_ROWS rows (the
 * executor's split, so a thread's range is whole blocks) has its own part,
 * which a call whose range starts there uses (a range of m blocks needs no
 * more than m parts, sk__conv_gemm_scratch); one part, for all rows, for an
 * op that runs whole. */
static int64_t conv_part(const sk__conv *cv, int kind, int64_t units, int64_t rows) {
  const int64_t r = units == 1 ? rows : SK_SPLIT_ROWS;
  return conv_implicit(cv, kind) ? sk__conv_implicit_scratch(cv, kind, r, 1)
                                 : sk__conv_gemm_scratch(cv, kind, r, 1);
}

static int64_t cpu_units(const sk__node *y, const sk__node *a, const sk__node *b);
static int cpu_halves(const sk__node *y, const sk__node *a, const sk__node *b);

static int64_t cpu_scratch_floats(const sk__node *y, const sk__node *a, const sk__node *b) {
  /* The shift d is a group-norm op's last input, when present. */
  const int shifted_gn = (y->op == SK_OP_GROUP_NORM_SILU || y->op == SK_OP_GROUP_NORM_SILU_D ||
                          y->op == SK_OP_GROUP_NORM_BACK || y->op == SK_OP_GROUP_NORM_SUMS) &&
                         y->in[sk__op_arity(y->op) - 1] != SK_NONE;
  if (shifted_gn) /* a group of x + d per block of samples (group_norm_kernel) */
    return gn_group_floats(y, a);
  if (sk__op_flops_kind(y->op) != SK__FLOPS_CONV) return 0;
  sk__conv cv = conv_of(y, a, b);
  const int kind = conv_kind(y->op);
  if (!conv_uses_gemm(&cv, kind)) return 0;
  const int64_t units = cpu_units(y, a, b), n = cv.n;
  int64_t most = conv_part(&cv, kind, units, y->shape[0]); /* whole, as when folded (plan.c) */
  const int halves = cpu_halves(y, a, b);
  for (int p = 0; p < 2 && halves; p++) { /* each half of a batch run in halves */
    int64_t k0, k1;
    sk__split(n, p, 2, &k0, &k1);
    cv.n = k1 - k0;
    most = SK_MAX(most, conv_part(&cv, kind, units, y->shape[0]));
  }
  return most;
}

/* Convolution kind `kind` of geometry cv into out from a and b (the op's
 * operands, or a weight gradient's samples of them), rows [r0, r1) of its
 * output, with the scratch parts e->scratch holds. */
static sk_status conv_run(const sk__exec *e, int kind, const sk__conv *cv, float *out,
                          const float *a, const float *b, int64_t r0, int64_t r1) {
  if (!conv_uses_gemm(cv, kind)) {
    if (kind == 0) sk__conv2d_rows(out, a, b, cv, r0, r1);
    if (kind == 1) sk__conv2d_data_rows(out, a, b, cv, r0, r1);
    if (kind == 2) sk__conv2d_weight_rows(out, a, b, cv, r0, r1);
    return SK_OK;
  }
  if (!e->scratch)
    return sk__fail(SK_ERR_STATE, "%s: no scratch planned for its products", sk__op_name(e->op));
  SK_ASSERT(r0 % SK_SPLIT_ROWS == 0);
  float *scratch = e->scratch + r0 / SK_SPLIT_ROWS * e->scratch_part;
  int ok;
  if (conv_implicit(cv, kind))
    ok = kind == 0 ? sk__conv2d_implicit_rows(out, a, b, cv, r0, r1, scratch)
                   : sk__conv2d_weight_implicit_rows(out, a, b, cv, r0, r1, scratch);
  else
    ok = kind == 0   ? sk__conv2d_gemm_rows(out, a, b, cv, r0, r1, scratch)
         : kind == 1 ? sk__conv2d_data_gemm_rows(out, a, b, cv, r0, r1, scratch)
                     : sk__conv2d_weight_gemm_rows(out, a, b, cv, r0, r1, scratch);
  if (!ok) return sk__fail(SK_ERR_UNSUPPORTED, "%s: libxsmm made no kernel", sk__op_name(e->op));
  return SK_OK;
}

/* Units are the output's rows: samples for the convolution and its
 * transpose, output channels for the weight gradient; all of them when the
 * op runs whole (one unit). A weight gradient that cpu_halves takes runs
 * through cpu_reduce_rows instead, but for a folded constant's. */
static sk_status cpu_conv(const sk__exec *e, int64_t r0, int64_t r1) {
  const sk__conv cv = conv_of(e->node, e->a, e->b);
  if (e->units == 1) r0 = 0, r1 = e->node->shape[0];
  return conv_run(e, conv_kind(e->op), &cv, e->out, e->in[0], e->in[1], r0, r1);
}
#define cpu_conv2d cpu_conv
#define cpu_conv_transpose2d cpu_conv
#define cpu_conv2d_weight cpu_conv

/* One kernel per row of ops.def: a row without cpu_<id> does not compile. */
static const cpu_kernel kernels[SK_OP_COUNT] = {
#define X(e, id, arity, smooth, view, rows, flops) [SK_OP_##e] = cpu_##id,
#include "graph/ops.def"
#undef X
};

static int cpu_has_kernel(sk__op op) {
  return (unsigned)op < SK_OP_COUNT && kernels[op] && kernels[op] != cpu_none;
}

static sk_status cpu_exec(const sk__exec *e, int64_t r0, int64_t r1) {
  return kernels[e->op](e, r0, r1);
}

static void cpu_exec_pair(const sk__exec *sp, const sk__exec *sg, float *out_sp, float *out_sg,
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
static void cpu_exec_sigmoid_grad(const sk__exec *a, const sk__exec *c, int kx, float *out,
                               const float *y, const float *x, int64_t r0, int64_t r1) {
  const sk__node *z = c->node;
  const int64_t w = z->numel / z->shape[0], n = (r1 - r0) * w;
  if (kx >= 0 && !x) x = c->in[kx] + r0 * w;
  sk__sigmoid_grad_mul(out ? out : c->out + r0 * w, x, y ? y : a->in[0] + r0 * w, 0, n);
}

/* b^T for a·b^T products whose b is a leaf: packed once per run. */
static void cpu_pack_rows(float *bt, const float *b, int64_t n, int64_t k, int64_t r0, int64_t r1,
                  int shared) {
  sk__transpose_rows(bt, b, n, k, r0, r1, shared);
}

static sk_status cpu_reduce_rows(const sk__exec *e, float *out, int64_t k0, int64_t k1,
                                 int64_t u0, int64_t u1) {
  const sk__node *y = e->node;
  if (e->op == SK_OP_CONV2D_WEIGHT) { /* output channels [u0, u1) over samples [k0, k1) */
    sk__conv cv = conv_of(y, e->a, e->b);
    const float *x = e->in[0] + k0 * cv.c * cv.h * cv.w, *dy = e->in[1] + k0 * cv.o * cv.oh * cv.ow;
    cv.n = k1 - k0;
    return conv_run(e, 2, &cv, out, x, dy, u0, u1);
  }
  if (e->op == SK_OP_MATMUL) { /* out (m, n) = a[k0:k1]^T · b[k0:k1] */
    const int64_t m = y->shape[0], n = y->shape[1];
    sk__matmul_rows(out, e->in[0] + k0 * m, e->in[1] + k0 * n, NULL, m, n, k1 - k0, 1, 0, 0, m);
  } else { /* a row sum: out (n) = Σ rows [k0, k1) of a (rows, n) */
    sk__sum_rows(out, e->in[0], y->numel, k0, k1);
  }
  return SK_OK;
}

static void cpu_add_halves(float *out, const float *x, const float *y, int64_t e0, int64_t e1) {
  sk__add_halves(out, x, y, e0, e1);
}

/* How a blockwise op (see cpu_blockwise) reads an input of y (rows, w). */
typedef enum { IN_FULL, IN_SCALAR, IN_ROW, IN_COL, IN_NONE } in_kind;

static in_kind input_kind(const sk__node *y, const sk__node *x) {
  const int64_t rows = y->shape[0], w = y->numel / rows;
  if (x->numel == y->numel) return IN_FULL; /* elementwise, whatever its shape */
  if (x->numel == 1) return IN_SCALAR;
  if (x->numel == w && (x->ndim == 1 || (x->ndim == 2 && x->shape[0] == 1))) return IN_ROW;
  if (x->ndim == 2 && x->shape[0] == rows && x->shape[1] == 1) return IN_COL;
  return IN_NONE;
}

/* Fused blocks of 2048 floats (16 rows of 128) against 1024: +0.5-1.2 % on
 * every toy step (ABBA, 6 rounds each), each op called half as often; 4096
 * no better; the big MLP the same. The rows of a fused run's block for values
 * w floats wide: as many as fit in SK_FUSE_FLOATS, a multiple of 16 floats so
 * that every block starts where a tile's vector loop would be (a kernel's
 * vector body and its scalar tail may round differently); 0 if not even one
 * such block fits. */
static int64_t cpu_fuse_rows(int64_t w) {
  int64_t g = 16; /* the rows that make a multiple of 16 floats: 16 / gcd(w, 16) */
  while (g > 1 && (w * (g / 2)) % 16 == 0) g /= 2;
  return w > 0 && g * w <= SK_FUSE_FLOATS ? SK_FUSE_FLOATS / (g * w) * g : 0;
}

/* An elementwise op on a (rows, w) value whose inputs are the same size,
 * scalars, rows (w) or columns (rows, 1). */
static int cpu_blockwise(const sk__node *y, const sk__node *a, const sk__node *b) {
  if (!ew[y->op].bin && !ew[y->op].un) return 0;
  if (ew[y->op].bin && input_kind(y, b) == IN_NONE) return 0;
  return y->ndim == 2 && y->shape[0] > 1 && cpu_fuse_rows(y->numel / y->shape[0]) > 0 &&
         input_kind(y, a) != IN_NONE;
}

/* Rows a reduction needs before it is done in halves; samples (two halves
 * of at least 16: threads split samples in blocks of SK_SPLIT_ROWS), and
 * output positions over the batch, a convolution's weight gradient needs. */
#define SK_HALVES_MIN_ROWS 256
#define SK_HALVES_MIN_SAMPLES 32
#define SK_HALVES_MIN_POSITIONS 1024

/* A weight gradient a^T·b or a bias's row sum, thin ones too (a thread that
 * reads another's rows of a wide activation, even for a 2-column result,
 * makes that thread's next writes to those lines slow: measured 6.7 µs →
 * 20 µs for a bias add of 512 × 128), once the batch is long enough: each
 * half on one thread (1). A convolution's weight gradient over a batch of
 * images, its output channels split over the threads of each half (2): split
 * by channel alone, every thread gathers every sample's input windows again
 * and reads both operands whole. Not where the sums are short against the
 * weight (the U-Net's 2 × 2 planes at batch 64, 256 positions: the two
 * partial weights written and added cost more than the halves save, 1 thread
 * 10-25 % slower, 2 threads no faster, 2 rounds; docs/PERFORMANCE.md,
 * "Convolutions"). */
static int cpu_halves(const sk__node *y, const sk__node *a, const sk__node *b) {
  if (y->op == SK_OP_CONV2D_WEIGHT) {
    const sk__conv cv = conv_of(y, a, b);
    return cv.n >= SK_HALVES_MIN_SAMPLES && cv.n * cv.oh * cv.ow >= SK_HALVES_MIN_POSITIONS ? 2
                                                                                           : 0;
  }
  const int tn = y->op == SK_OP_MATMUL && y->ip[0] && !y->ip[1];
  const int rowsum = y->op == SK_OP_SUM_TO && a->ndim == 2 && y->numel == a->shape[1];
  return (tn || rowsum) && a->shape[0] >= SK_HALVES_MIN_ROWS;
}

/* a·b^T with fewer output columns than this is done as dot products
 * (matmul.c), so b^T is not packed. */
#define SK_PACK_MIN_COLS 8

static int cpu_pack(const sk__node *y, const sk__node *b) {
  return y->op == SK_OP_MATMUL && !y->ip[0] && y->ip[1] && y->shape[1] > SK_PACK_MIN_COLS;
}

/* A tile's rows: about this many floats of the widest value in its group
 * (32 KiB), so that the values a group passes along stay in L2, but never
 * fewer than SK_TILE_MIN_ROWS, below which the products lose speed (measured
 * on the 4 × 512 model: 64 rows 15 steps/s, 16 rows 12.5). */
#define SK_TILE_FLOATS 8192
#define SK_TILE_MIN_ROWS 64

/* Rows wider than a tile (images: a U-Net's sample is 21,632 floats after
 * its first convolution) go 16 samples a tile, so that the ops of a group
 * pass a tile along in L2 rather than 64 samples (5.5 MiB a value) through
 * memory. */
#define SK_TILE_WIDE_ROWS 16

static int64_t cpu_tile_rows(int64_t width) {
  if (width > SK_TILE_FLOATS) return SK_TILE_WIDE_ROWS;
  return SK_MAX(SK_TILE_MIN_ROWS, SK_TILE_FLOATS / SK_MAX(1, width)) / SK_SPLIT_ROWS *
         SK_SPLIT_ROWS;
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

static void cpu_exec_block(const sk__exec *e, float *out, const float *const in[2], int64_t r0,
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
  elementwise(e, o, x0, x1, so, sa, sb, 0, n); /* cpu_blockwise admits no other op */
}

static float *cpu_alloc(size_t floats) { return sk__calloc_lines(floats ? floats : 1, sizeof(float)); }
static void cpu_free(float *p) { sk__free(p); }

const sk__backend sk__backend_cpu = {
    .name = "cpu",
    .init = cpu_init,
    .has_kernel = cpu_has_kernel,
    .host_memory = 1,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .units = cpu_units,
    .tile_rows = cpu_tile_rows,
    .blockwise = cpu_blockwise,
    .fuse_rows = cpu_fuse_rows,
    .halves = cpu_halves,
    .pack = cpu_pack,
    .scratch_floats = cpu_scratch_floats,
    .exec = cpu_exec,
    .exec_block = cpu_exec_block,
    .reduce_rows = cpu_reduce_rows,
    .add = cpu_add_halves,
    .pack_rows = cpu_pack_rows,
    .exec_pair = cpu_exec_pair,
    .exec_sigmoid_grad = cpu_exec_sigmoid_grad,
};
