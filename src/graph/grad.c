/* Symbolic reverse-mode differentiation. Every rule is written with the
 * graph's own builders, so the gradient nodes it appends can be differentiated
 * again (tinygrad's compute_gradient shape: prune, reverse walk, accumulate,
 * unbroadcast once in the engine). */
#include <string.h>

#include "graph/internal.h"

/* The contributions to the adjoints of a node's inputs, given its adjoint dy.
 * A contribution may have the output's (broadcast) shape; the engine sums it
 * down to the input's shape. SK_NONE = no gradient flows to that input. */
typedef void (*grad_rule)(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]);

#define IN0 (g->nodes[y].in[0])
#define IN1 (g->nodes[y].in[1])

static void grad_matmul(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  int ta = g->nodes[y].ip[0], tb = g->nodes[y].ip[1];
  sk_node a = IN0, b = IN1;
  /* C = op(A) op(B): each case's gradients are again matmuls with flags. */
  if (!ta && !tb) {
    dx[0] = sk_matmul(g, dy, b, 0, 1);
    dx[1] = sk_matmul(g, a, dy, 1, 0);
  } else if (!ta && tb) {
    dx[0] = sk_matmul(g, dy, b, 0, 0);
    dx[1] = sk_matmul(g, dy, a, 1, 0);
  } else if (ta && !tb) {
    dx[0] = sk_matmul(g, b, dy, 0, 1);
    dx[1] = sk_matmul(g, a, dy, 0, 0);
  } else {
    dx[0] = sk_matmul(g, b, dy, 1, 1);
    dx[1] = sk_matmul(g, dy, a, 1, 1);
  }
}

static void grad_add(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  (void)g;
  (void)y;
  dx[0] = dx[1] = dy;
}

static void grad_sub(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  (void)y;
  dx[0] = dy;
  dx[1] = sk_neg(g, dy);
}

static void grad_mul(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_mul(g, dy, IN1);
  dx[1] = sk_mul(g, dy, IN0);
}

/* d(a/b)/db = −(a/b)/b. */
static void grad_div(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_div(g, dy, IN1);
  dx[1] = sk_neg(g, sk_mul(g, dy, sk_div(g, y, IN1)));
}

static void grad_neg(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  (void)y;
  dx[0] = sk_neg(g, dy);
}

static void grad_affine(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_affine(g, dy, g->nodes[y].fp[0], 0.0f);
}

static void grad_exp(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) { dx[0] = sk_mul(g, dy, y); }
static void grad_log(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) { dx[0] = sk_div(g, dy, IN0); }

static void grad_sqrt(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_div(g, sk_affine(g, dy, 0.5f, 0.0f), y);
}

/* tanh' = 1 − tanh². */
static void grad_tanh(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_mul(g, dy, sk_affine(g, sk_mul(g, y, y), -1.0f, 1.0f));
}

/* sin' = cos and cos' = −sin: each rule builds the other op, so derivatives of
 * every order stay within the pair. */
static void grad_sin(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_mul(g, dy, sk_cos(g, IN0));
}
static void grad_cos(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_neg(g, sk_mul(g, dy, sk_sin(g, IN0)));
}

/* σ' = σ(1 − σ). */
static void grad_sigmoid(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_mul(g, dy, sk_mul(g, y, sk_affine(g, y, -1.0f, 1.0f)));
}

/* softplus' = σ. */
static void grad_softplus(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_mul(g, dy, sk_sigmoid(g, IN0));
}

static void grad_none(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  (void)g;
  (void)y;
  (void)dy;
  dx[0] = dx[1] = SK_NONE;
}

static void grad_sum_to(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  const sk__node *x = &g->nodes[IN0];
  int64_t shape[SK_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  dx[0] = sk_expand(g, dy, x->ndim, shape);
}

static void grad_expand(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  const sk__node *x = &g->nodes[IN0];
  int64_t shape[SK_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  dx[0] = sk_sum_to(g, dy, x->ndim, shape);
}

static void grad_reshape(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  const sk__node *x = &g->nodes[IN0];
  int64_t shape[SK_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  dx[0] = sk_reshape(g, dy, x->ndim, shape);
}

static void grad_permute(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  int inv[SK_MAX_DIMS];
  for (int i = 0; i < g->nodes[y].ndim; i++) inv[g->nodes[y].ip[i]] = i;
  dx[0] = sk_permute(g, dy, inv);
}

static sk_conv2d_opts conv_opts_of(const sk__node *n);

static void grad_concat(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  int axis = g->nodes[y].ip[0];
  int64_t la = g->nodes[IN0].shape[axis], lb = g->nodes[IN1].shape[axis];
  const sk__node *d = &g->nodes[dy];
  if (axis == 1 && d->op == SK_OP_CONV2D && d->ip[SK__CONV_GROUPS] == 1) {
    /* Channels of a convolution's output (a U-Net's skip concatenation, the
     * data pass of the layer that read it): each part its own convolution,
     * with its output channels of the weight, never the whole and two
     * copies. */
    const sk_conv2d_opts o = conv_opts_of(d);
    const sk_node x = d->in[0], w = d->in[1];
    dx[0] = sk_conv2d(g, x, sk_slice(g, w, 0, 0, la), &o);
    dx[1] = sk_conv2d(g, x, sk_slice(g, w, 0, la, lb), &o);
    return;
  }
  dx[0] = sk_slice(g, dy, axis, 0, la);
  dx[1] = sk_slice(g, dy, axis, la, lb);
}

static void grad_slice(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  int axis = g->nodes[y].ip[0];
  int64_t start = g->nodes[y].ip[1], len = g->nodes[y].shape[axis];
  int64_t total = g->nodes[IN0].shape[axis];
  dx[0] = sk_pad(g, dy, axis, start, total - start - len);
}

static void grad_pad(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  int axis = g->nodes[y].ip[0];
  dx[0] = sk_slice(g, dy, axis, g->nodes[y].ip[1], g->nodes[IN0].shape[axis]);
}

static void grad_gather(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_scatter_add(g, dy, IN1, g->nodes[IN0].shape[0]);
  dx[1] = SK_NONE;
}

static void grad_scatter_add(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_gather(g, dy, IN1);
  dx[1] = SK_NONE;
}

/* ∂ lse / ∂x = softmax(x) = exp(x − lse). */
static void grad_logsumexp(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  dx[0] = sk_mul(g, dy, sk_exp(g, sk_sub(g, IN0, y)));
}

/* ---- silu(group_norm(x)) and its gradient's fused ops ----
 *
 * y = silu(a), a = γ x̂ + β per channel, x̂ = (x − μ) / sd over each sample's
 * group (sd = √(var + eps), biased variance), γ and β the rows of gb:
 *   ga  = dy · silu'(a)                       group_norm_silu_d
 *   dγ  = Σ ga x̂,  dβ = Σ ga                  group_norm_sums, then sum_to
 *   dx  = (gx̂ − mean gx̂ − x̂ mean(gx̂ x̂)) / sd,  gx̂ = ga γ   group_norm_back
 * Each fused op's own gradient is the gradient of its definition written in
 * composite ops (the twins below, sk_grad on them), so that a gradient of
 * any order is a graph of ops. */

typedef struct gn_geom {
  int nd, groups;
  float eps, inv_m;
  int64_t shape[SK_MAX_DIMS], chan[SK_MAX_DIMS], grouped[3], stat[3], c;
} gn_geom;

static gn_geom gn_geom_of(const sk_graph *g, sk_node y, sk_node x) {
  const sk__node *n = &g->nodes[y], *X = &g->nodes[x];
  gn_geom q;
  memset(&q, 0, sizeof q);
  q.nd = X->ndim;
  q.groups = n->ip[0];
  q.eps = n->fp[0];
  memcpy(q.shape, X->shape, sizeof q.shape);
  q.c = X->shape[1];
  const int64_t m = X->numel / (X->shape[0] * q.groups);
  q.inv_m = 1.0f / (float)m;
  q.grouped[0] = q.stat[0] = X->shape[0];
  q.grouped[1] = q.stat[1] = q.groups;
  q.grouped[2] = m;
  q.stat[2] = 1;
  q.chan[0] = q.c; /* (C, 1, ...): broadcasts over the positions */
  for (int i = 1; i < q.nd - 1; i++) q.chan[i] = 1;
  return q;
}

/* x̂ grouped (N, G, M) and sd (N, G, 1), as sk_group_norm computes them. */
static sk_node gn_xhat(sk_graph *g, const gn_geom *q, sk_node x, sk_node *sd) {
  sk_node xg = sk_reshape(g, x, 3, q->grouped);
  sk_node xc = sk_sub(g, xg, sk_affine(g, sk_sum_to(g, xg, 3, q->stat), q->inv_m, 0.0f));
  *sd = sk_sqrt(g, sk_affine(g, sk_sum_to(g, sk_mul(g, xc, xc), 3, q->stat), q->inv_m, q->eps));
  return sk_div(g, xc, *sd);
}

/* Row k of gb (2, C) as (C, 1, ...). */
static sk_node gn_row(sk_graph *g, const gn_geom *q, sk_node gb, int k) {
  return sk_reshape(g, sk_slice(g, gb, 0, k, 1), q->nd - 1, q->chan);
}

/* The inputs of a group-norm op as ops.def lays them out: x, u (SK_NONE
 * for group_norm_silu), gb (SK_NONE for group_norm_sums) and the shift d
 * (SK_NONE where absent). */
typedef struct gn_ins {
  sk_node x, u, gb, d;
} gn_ins;

static gn_ins gn_ins_of(sk__op op, const sk_node in[SK__MAX_IN]) {
  gn_ins r = {in[0], SK_NONE, SK_NONE, SK_NONE};
  if (op == SK_OP_GROUP_NORM_SILU) r.gb = in[1];
  else r.u = in[1];
  if (sk__op_arity(op) == 4) r.gb = in[2];
  r.d = in[sk__op_arity(op) - 1];
  return r;
}

/* x + d, the group-norm ops' input (d SK_NONE: x). */
static sk_node gn_in(sk_graph *g, sk_node x, sk_node d) { return d == SK_NONE ? x : sk_add(g, x, d); }

/* group_norm_silu_d in composite ops: u s (1 + a (1 − s)), s = σ(a). */
static sk_node twin_silu_d(sk_graph *g, const gn_geom *q, const gn_ins *in) {
  sk_node sd, xh = sk_reshape(g, gn_xhat(g, q, gn_in(g, in->x, in->d), &sd), q->nd, q->shape);
  sk_node a = sk_add(g, sk_mul(g, xh, gn_row(g, q, in->gb, 0)), gn_row(g, q, in->gb, 1));
  sk_node s = sk_sigmoid(g, a);
  sk_node ds = sk_mul(g, s, sk_affine(g, sk_mul(g, a, sk_affine(g, s, -1.0f, 1.0f)), 1.0f, 1.0f));
  return sk_mul(g, in->u, ds);
}

/* group_norm_back in composite ops. */
static sk_node twin_back(sk_graph *g, const gn_geom *q, const gn_ins *in) {
  sk_node sd, xhg = gn_xhat(g, q, gn_in(g, in->x, in->d), &sd);
  sk_node ug = sk_reshape(g, sk_mul(g, in->u, gn_row(g, q, in->gb, 0)), 3, q->grouped);
  sk_node m1 = sk_affine(g, sk_sum_to(g, ug, 3, q->stat), q->inv_m, 0.0f);
  sk_node m2 = sk_affine(g, sk_sum_to(g, sk_mul(g, ug, xhg), 3, q->stat), q->inv_m, 0.0f);
  sk_node r = sk_div(g, sk_sub(g, sk_sub(g, ug, m1), sk_mul(g, xhg, m2)), sd);
  return sk_reshape(g, r, q->nd, q->shape);
}

/* group_norm_sums in composite ops: [Σ u x̂, Σ u] per sample and channel. */
static sk_node twin_sums(sk_graph *g, const gn_geom *q, const gn_ins *in) {
  sk_node sd, xh = sk_reshape(g, gn_xhat(g, q, gn_in(g, in->x, in->d), &sd), q->nd, q->shape);
  const sk_node u = in->u;
  int64_t per[SK_MAX_DIMS], one[SK_MAX_DIMS];
  per[0] = one[0] = q->shape[0];
  per[1] = q->c;
  one[1] = 1;
  one[2] = q->c;
  for (int i = 2; i < q->nd; i++) per[i] = 1;
  for (int i = 3; i < q->nd; i++) one[i] = 1;
  const int nd1 = q->nd == 2 ? 2 : q->nd; /* (N, C) inputs: (N, 2C) */
  if (q->nd == 2) one[1] = q->c;
  sk_node a = sk_reshape(g, sk_sum_to(g, sk_mul(g, u, xh), q->nd, per), nd1, one);
  sk_node b = sk_reshape(g, sk_sum_to(g, u, q->nd, per), nd1, one);
  return sk_concat(g, a, b, 1);
}

/* With a shift d, ∂/∂d is ∂/∂x summed over each sample's and channel's
 * positions: dx itself, which the caller sums to d's shape (sk_grad). */
static void grad_group_norm_silu(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  const sk_node x = IN0, gb = IN1, d = g->nodes[y].in[2];
  const gn_geom q = gn_geom_of(g, y, x);
  sk_node ga = sk__group_norm_op(g, SK_OP_GROUP_NORM_SILU_D, x, dy, gb, d, q.groups, q.eps);
  dx[0] = sk__group_norm_op(g, SK_OP_GROUP_NORM_BACK, x, ga, gb, d, q.groups, q.eps);
  if (d != SK_NONE) dx[2] = dx[0];
  sk_node sums = sk__group_norm_op(g, SK_OP_GROUP_NORM_SUMS, x, ga, SK_NONE, d, q.groups, q.eps);
  if (g->status != SK_OK) return;
  int64_t tot[SK_MAX_DIMS];
  memcpy(tot, g->nodes[sums].shape, sizeof tot);
  tot[0] = 1;
  dx[1] = sk_reshape(g, sk_sum_to(g, sums, g->nodes[sums].ndim, tot), 2, (int64_t[]){2, q.c});
}

/* The gradient of a fused op as that of its twin's graph: the same value of
 * the same inputs, built from composite ops. */
static void grad_by_twin(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN],
                         sk_node (*twin)(sk_graph *, const gn_geom *, const gn_ins *)) {
  const gn_geom q = gn_geom_of(g, y, IN0);
  /* The twin reads fresh views of the inputs (flattened and back: no
   * kernel runs), so that the inner sk_grad stops at them: an input that
   * itself depends on the other (u on x in a gradient) would otherwise
   * pass its adjoint on upstream here, and again in the caller's engine. */
  const int n_in = sk__node_arity(&g->nodes[y]);
  sk_node in[SK__MAX_IN];
  for (int k = 0; k < SK__MAX_IN; k++) in[k] = SK_NONE;
  for (int k = 0; k < n_in; k++) {
    const sk_node v = g->nodes[y].in[k];
    int64_t shape[SK_MAX_DIMS];
    const int nd = g->nodes[v].ndim;
    memcpy(shape, g->nodes[v].shape, sizeof shape);
    const int64_t flat[2] = {1, g->nodes[v].numel};
    in[k] = sk_reshape(g, sk_reshape(g, v, nd == 1 ? 2 : 1, nd == 1 ? flat : flat + 1), nd, shape);
  }
  const gn_ins ins = gn_ins_of(g->nodes[y].op, in);
  sk_node t = twin(g, &q, &ins);
  if (t == SK_NONE || sk_grad(g, t, dy, n_in, in, dx) != SK_OK)
    for (int k = 0; k < SK__MAX_IN; k++) dx[k] = SK_NONE;
}

static void grad_group_norm_silu_d(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  grad_by_twin(g, y, dy, dx, twin_silu_d);
}
static void grad_group_norm_back(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  grad_by_twin(g, y, dy, dx, twin_back);
}
static void grad_group_norm_sums(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  grad_by_twin(g, y, dy, dx, twin_sums);
}

/* The convolutions. With A_w the convolution x ↦ conv2d(x, w) (stride s,
 * padding p, dilation d along each axis), conv_transpose2d(·, w) is A_wᵀ and
 * conv2d_weight(x, ·) is the transpose of w ↦ conv2d(x, w); all three are
 * bilinear, so each one's gradients are the other two with the same s, p, d
 * and kernel:
 *   y = conv2d(x, w), x (N, C, H, W):
 *     dx = conv_transpose2d(dy, w), output padding H − ((OH − 1)·s − 2p +
 *          d·(KH − 1) + 1) (the rows the strided convolution rounded away;
 *          in [0, s)), the same along the width
 *     dw = conv2d_weight(x, dy)
 *   y = conv_transpose2d(x, w) (= A_wᵀ x; y plays the convolution's input):
 *     dx = conv2d(dy, w)                 (output padding dropped)
 *     dw = conv2d_weight(dy, x)          (roles swapped: dy is the
 *          convolution's input, x its output's gradient)
 *   z = conv2d_weight(x, gy) (= ∂⟨gy, conv2d(x, w)⟩/∂w):
 *     dx  = conv_transpose2d(gy, dz), output padding as for conv2d's dx
 *     dgy = conv2d(x, dz) */
static sk_conv2d_opts conv_opts_of(const sk__node *n) {
  sk_conv2d_opts o;
  memset(&o, 0, sizeof o);
  for (int d = 0; d < 2; d++) {
    o.stride[d] = n->ip[SK__CONV_STRIDE + d];
    o.padding[d] = n->ip[SK__CONV_PAD + d];
    o.dilation[d] = n->ip[SK__CONV_DILATION + d];
  }
  return o;
}

/* The output padding that makes conv_transpose2d of the convolution n's
 * output (rows oh, cols ow) as large as its input x. */
static void conv_outpad(sk_conv2d_opts *o, const sk__node *n, const sk__node *x, int64_t oh,
                        int64_t ow) {
  const int64_t out[2] = {oh, ow};
  for (int d = 0; d < 2; d++) {
    const int64_t k = n->ip[SK__CONV_KERNEL + d];
    o->output_padding[d] = (int)(x->shape[2 + d] - ((out[d] - 1) * o->stride[d] - 2 * o->padding[d] +
                                                    o->dilation[d] * (k - 1) + 1));
  }
}

static void grad_conv2d(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  const sk__node *n = &g->nodes[y];
  sk_conv2d_opts o = conv_opts_of(n);
  dx[1] = sk_conv2d_weight(g, IN0, dy, n->ip[SK__CONV_KERNEL], n->ip[SK__CONV_KERNEL + 1], &o);
  n = &g->nodes[y]; /* the builder may have moved the nodes */
  conv_outpad(&o, n, &g->nodes[IN0], n->shape[2], n->shape[3]);
  dx[0] = sk_conv_transpose2d(g, dy, IN1, &o);
}

static void grad_conv_transpose2d(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  const sk__node *n = &g->nodes[y];
  const sk_conv2d_opts o = conv_opts_of(n);
  const int kh = n->ip[SK__CONV_KERNEL], kw = n->ip[SK__CONV_KERNEL + 1];
  dx[0] = sk_conv2d(g, dy, IN1, &o);
  dx[1] = sk_conv2d_weight(g, dy, IN0, kh, kw, &o);
}

static void grad_conv2d_weight(sk_graph *g, sk_node y, sk_node dy, sk_node dx[SK__MAX_IN]) {
  const sk__node *n = &g->nodes[y];
  sk_conv2d_opts o = conv_opts_of(n);
  const sk__node *gy = &g->nodes[IN1];
  conv_outpad(&o, n, &g->nodes[IN0], gy->shape[2], gy->shape[3]);
  dx[0] = sk_conv_transpose2d(g, IN1, dy, &o);
  o.output_padding[0] = o.output_padding[1] = 0;
  dx[1] = sk_conv2d(g, IN0, dy, &o);
}

/* Leaves, stop_grad and step pass no gradient on. */
#define grad_input grad_none
#define grad_param grad_none
#define grad_const grad_none
#define grad_step grad_none
#define grad_stop_grad grad_none

/* One rule per row of ops.def: a row without grad_<id> does not compile. */
static const grad_rule rules[SK_OP_COUNT] = {
#define X(e, id, arity, smooth, view, rows, flops) [SK_OP_##e] = grad_##id,
#include "graph/ops.def"
#undef X
};

int sk__op_has_grad_rule(int op) { return op >= 0 && op < SK_OP_COUNT && rules[op] != NULL; }

sk_status sk_grad(sk_graph *g, sk_node y, sk_node dy, int n, const sk_node *wrt, sk_node *grads) {
  if (!g) return sk__fail(SK_ERR_INVALID, "sk_grad: NULL graph");
  if (g->status != SK_OK) return sk__fail(g->status, "sk_grad: graph has an error: %s", g->error);
  if (y < 0 || y >= g->n || n < 0) return sk__fail(SK_ERR_INVALID, "sk_grad: invalid output node");
  if (n > 0 && (!wrt || !grads))
    return sk__fail(SK_ERR_INVALID, "sk_grad: NULL %s (n %d)", wrt ? "grads" : "wrt", n);
  for (int i = 0; i < n; i++)
    if (wrt[i] < 0 || wrt[i] >= g->n)
      return sk__fail(SK_ERR_INVALID, "sk_grad: invalid node %d in wrt[%d]", wrt[i], i);
  const int count = y + 1; /* nodes after y cannot feed it */
  uint8_t *dep = sk__calloc((size_t)count, 1);  /* depends on some wrt */
  uint8_t *need = sk__calloc((size_t)count, 1); /* y depends on it */
  sk_node *adj = sk__malloc((size_t)count * sizeof *adj);
  if (!dep || !need || !adj) {
    sk__free(dep);
    sk__free(need);
    sk__free(adj);
    return sk__fail(SK_ERR_NOMEM, "sk_grad: out of memory");
  }
  for (int i = 0; i < n; i++)
    if (wrt[i] < count) dep[wrt[i]] = 1;
  for (int i = 0; i < count; i++) {
    const sk__node *nd = &g->nodes[i];
    if (nd->op == SK_OP_STOP_GRAD) continue;
    for (int k = 0; k < sk__node_arity(nd); k++)
      if (dep[nd->in[k]]) dep[i] = 1;
  }
  need[y] = 1;
  for (int i = count - 1; i >= 0; i--) {
    adj[i] = SK_NONE;
    if (!need[i]) continue;
    for (int k = 0; k < sk__node_arity(&g->nodes[i]); k++) need[g->nodes[i].in[k]] = 1;
  }
  if (dy == SK_NONE) {
    if (g->nodes[y].numel != 1) {
      sk__free(dep);
      sk__free(need);
      sk__free(adj);
      return sk__fail(SK_ERR_SHAPE, "sk_grad: output has %lld elements; give a cotangent",
                      (long long)g->nodes[y].numel);
    }
    int64_t shape[SK_MAX_DIMS];
    memcpy(shape, g->nodes[y].shape, sizeof shape);
    dy = sk_fill(g, 1.0f, g->nodes[y].ndim, shape);
  } else if (dy < 0 || dy >= g->n || g->nodes[dy].numel != g->nodes[y].numel ||
             g->nodes[dy].ndim != g->nodes[y].ndim) {
    sk__free(dep);
    sk__free(need);
    sk__free(adj);
    return sk__fail(SK_ERR_SHAPE, "sk_grad: the cotangent's shape differs from the output's");
  }
  adj[y] = dy;
  for (int i = count - 1; i >= 0 && g->status == SK_OK; i--) {
    if (adj[i] == SK_NONE || !dep[i]) continue;
    const sk__op op = g->nodes[i].op;
    if (sk__op_arity(op) == 0) continue;
    sk_node dx[SK__MAX_IN];
    for (int k = 0; k < SK__MAX_IN; k++) dx[k] = SK_NONE;
    rules[op](g, i, adj[i], dx);
    for (int k = 0; k < sk__node_arity(&g->nodes[i]); k++) {
      sk_node x = g->nodes[i].in[k];
      if (dx[k] == SK_NONE || !dep[x] || g->status != SK_OK) continue;
      /* Unbroadcast once, here, for every rule. */
      int64_t shape[SK_MAX_DIMS];
      memcpy(shape, g->nodes[x].shape, sizeof shape);
      sk_node c = sk_sum_to(g, dx[k], g->nodes[x].ndim, shape);
      adj[x] = adj[x] == SK_NONE ? c : sk_add(g, adj[x], c);
    }
  }
  for (int i = 0; i < n && g->status == SK_OK; i++) {
    sk_node w = wrt[i];
    if (w < count && adj[w] != SK_NONE) {
      grads[i] = adj[w];
    } else {
      int64_t shape[SK_MAX_DIMS];
      memcpy(shape, g->nodes[w].shape, sizeof shape);
      grads[i] = sk_fill(g, 0.0f, g->nodes[w].ndim, shape);
    }
  }
  sk__free(dep);
  sk__free(need);
  sk__free(adj);
  if (g->status != SK_OK) return sk__fail(g->status, "sk_grad: %s", g->error);
  return SK_OK;
}
