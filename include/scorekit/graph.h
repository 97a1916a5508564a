/* scorekit graphs: a static float32 computation graph with symbolic
 * reverse-mode differentiation. sk_grad appends gradient nodes built from the
 * same primitive ops, so the gradient of a gradient is another sk_grad call
 * (exact and sliced score matching differentiate through tr(∇ₓs) and
 * vᵀ∇ₓ(vᵀs) this way).
 *
 * Building uses sticky errors: the first shape error is recorded on the graph
 * (and set as sk_last_error() by the call that fails), later builder calls
 * return SK_NONE, and sk_graph_compile reports the error with the op and the
 * shapes. A value may have fewer than 2^60 elements (the product of its
 * nonzero dimensions), as a tensor. A NULL graph is refused like a bad
 * node: SK_NONE, SK_ERR_INVALID, 0 or NULL, with sk_last_error() set. */
#ifndef SCOREKIT_GRAPH_H
#define SCOREKIT_GRAPH_H

#include <stdio.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_graph sk_graph;
/* A node of a graph: an index, valid for the graph that made it. */
typedef int32_t sk_node;
#define SK_NONE ((sk_node)-1)

/* A new empty graph (NULL + last error on allocation failure). */
SK_API sk_graph *sk_graph_new(void);
SK_API void sk_graph_free(sk_graph *g);
/* The first build error recorded on `g`, or SK_OK. */
SK_API sk_status sk_graph_status(const sk_graph *g);
SK_API int sk_graph_num_nodes(const sk_graph *g);

/* ---- leaves ---- */
/* A data input of the given shape. After compilation its buffer is
 * sk_graph_data(g, node) (fill it before sk_graph_run), or point it at caller
 * memory with sk_graph_bind. */
SK_API sk_node sk_input(sk_graph *g, const char *name, int ndim, const int64_t *shape);
/* A parameter living in caller memory (`data`, numel floats) that must stay
 * valid while the graph runs; rebind with sk_graph_bind. */
SK_API sk_node sk_param(sk_graph *g, const char *name, int ndim, const int64_t *shape, float *data);
/* A constant filled with `value`. */
SK_API sk_node sk_fill(sk_graph *g, float value, int ndim, const int64_t *shape);
SK_API sk_node sk_scalar(sk_graph *g, float value);

/* ---- primitives ---- */
/* op(a) @ op(b) for 2-D a, b; op transposes when the flag is set. */
SK_API sk_node sk_matmul(sk_graph *g, sk_node a, sk_node b, int trans_a, int trans_b);
/* Elementwise with numpy broadcasting. */
SK_API sk_node sk_add(sk_graph *g, sk_node a, sk_node b);
SK_API sk_node sk_sub(sk_graph *g, sk_node a, sk_node b);
SK_API sk_node sk_mul(sk_graph *g, sk_node a, sk_node b);
SK_API sk_node sk_div(sk_graph *g, sk_node a, sk_node b);
SK_API sk_node sk_neg(sk_graph *g, sk_node a);
/* alpha * a + beta. */
SK_API sk_node sk_affine(sk_graph *g, sk_node a, float alpha, float beta);
SK_API sk_node sk_exp(sk_graph *g, sk_node a);
SK_API sk_node sk_log(sk_graph *g, sk_node a);
SK_API sk_node sk_sqrt(sk_graph *g, sk_node a);
SK_API sk_node sk_tanh(sk_graph *g, sk_node a);
SK_API sk_node sk_sin(sk_graph *g, sk_node a);
SK_API sk_node sk_cos(sk_graph *g, sk_node a);
SK_API sk_node sk_sigmoid(sk_graph *g, sk_node a);
/* log(1 + e^a), stable for any a. */
SK_API sk_node sk_softplus(sk_graph *g, sk_node a);
/* 1 where a > 0, else 0; its gradient is zero. */
SK_API sk_node sk_step(sk_graph *g, sk_node a);
/* Sum `a` down to `shape`, which `a`'s shape broadcasts from (numpy rules). */
SK_API sk_node sk_sum_to(sk_graph *g, sk_node a, int ndim, const int64_t *shape);
/* Broadcast `a` up to `shape`. */
SK_API sk_node sk_expand(sk_graph *g, sk_node a, int ndim, const int64_t *shape);
SK_API sk_node sk_reshape(sk_graph *g, sk_node a, int ndim, const int64_t *shape);
/* Reorder axes: output axis i is input axis perm[i]. */
SK_API sk_node sk_permute(sk_graph *g, sk_node a, const int *perm);
SK_API sk_node sk_concat(sk_graph *g, sk_node a, sk_node b, int axis);
SK_API sk_node sk_slice(sk_graph *g, sk_node a, int axis, int64_t start, int64_t len);
SK_API sk_node sk_pad(sk_graph *g, sk_node a, int axis, int64_t before, int64_t after);
/* Rows of `a` (axis 0) at the integer values of `idx` (1-D, stored as floats). */
SK_API sk_node sk_gather(sk_graph *g, sk_node a, sk_node idx);
/* out (rows, ...) = 0; out[idx[i]] += a[i]. */
SK_API sk_node sk_scatter_add(sk_graph *g, sk_node a, sk_node idx, int64_t rows);
/* log Σ exp over the last axis, which is kept with size 1. */
SK_API sk_node sk_logsumexp(sk_graph *g, sk_node a);
SK_API sk_node sk_stop_grad(sk_graph *g, sk_node a);

/* ---- convolutions (NCHW) ---- */
/* A 2-D convolution's geometry, as PyTorch's conv2d and conv_transpose2d
 * take it: [0] along the height, [1] along the width. Zero-initialised (or
 * a NULL pointer) it is stride 1, no padding, no dilation: a zero stride or
 * dilation means 1. */
typedef struct sk_conv2d_opts {
  int stride[2];
  int padding[2]; /* zeros on both sides */
  int dilation[2];
  /* sk_conv_transpose2d only, in [0, stride): rows and columns added at the
   * end of the output, to reach an input size a strided convolution rounds
   * down (the sizes H with the same convolution output differ by up to
   * stride − 1). */
  int output_padding[2];
} sk_conv2d_opts;
/* The cross-correlation of x (N, C, H, W) with w (O, C, KH, KW), zero
 * padded: (N, O, OH, OW) with OH = (H + 2·padding − dilation·(KH − 1) − 1) /
 * stride + 1 rounded down (the same along the width). No bias: add one of
 * shape (O, 1, 1). Its gradients are sk_conv_transpose2d (for x) and
 * sk_conv2d_weight (for w), whose own gradients are again these three. */
SK_API sk_node sk_conv2d(sk_graph *g, sk_node x, sk_node w, const sk_conv2d_opts *opts);
/* The transposed convolution (PyTorch's conv_transpose2d, ConvTranspose2d's
 * forward; sk_conv2d's gradient with respect to its input) of x (N, O, H,
 * W) with w (O, C, KH, KW): (N, C, OH, OW), OH = (H − 1)·stride −
 * 2·padding + dilation·(KH − 1) + output_padding + 1. */
SK_API sk_node sk_conv_transpose2d(sk_graph *g, sk_node x, sk_node w, const sk_conv2d_opts *opts);
/* sk_conv2d's gradient with respect to its weight: for x (N, C, H, W) and
 * an output gradient dy (N, O, OH, OW) of the convolution's output size,
 * the (O, C, kh, kw) sums over the batch and positions of dy times the
 * input under each kernel tap. */
SK_API sk_node sk_conv2d_weight(sk_graph *g, sk_node x, sk_node dy, int kh, int kw,
                                const sk_conv2d_opts *opts);

/* ---- composites ---- */
SK_API sk_node sk_square(sk_graph *g, sk_node a);
/* Sum over one axis (negative counts from the end). */
SK_API sk_node sk_sum(sk_graph *g, sk_node a, int axis, int keepdim);
/* Sum / mean of all elements, rank 0. */
SK_API sk_node sk_sum_all(sk_graph *g, sk_node a);
SK_API sk_node sk_mean_all(sk_graph *g, sk_node a);
SK_API sk_node sk_transpose(sk_graph *g, sk_node a);
SK_API sk_node sk_silu(sk_graph *g, sk_node a);
SK_API sk_node sk_elu(sk_graph *g, sk_node a);
/* log softmax over the last axis. */
SK_API sk_node sk_log_softmax(sk_graph *g, sk_node a);

/* Group normalisation (PyTorch's group_norm): x (N, C, ...) split into
 * `groups` groups of C / groups channels, each standardised per sample over
 * its channels and positions (mean, biased variance plus eps), then times
 * gamma (C) plus beta (C) per channel; either may be SK_NONE. A composite of
 * smooth primitives: differentiable to any order. */
SK_API sk_node sk_group_norm(sk_graph *g, sk_node x, int groups, sk_node gamma, sk_node beta,
                             float eps);
/* silu(sk_group_norm(x, groups, gamma, beta, eps)), both required, as one op
 * (the bits differ from the composite's in the last places): one sample's
 * group at a time while it is in cache. Differentiable to any order. */
SK_API sk_node sk_group_norm_silu(sk_graph *g, sk_node x, int groups, sk_node gamma, sk_node beta,
                                  float eps);
/* sk_group_norm_silu of x + shift, shift (N, C, 1, ...) per sample and
 * channel (SK_NONE: none), without x + shift in memory: the bits of
 * sk_group_norm_silu(sk_add(x, shift), ...). */
SK_API sk_node sk_group_norm_silu_shift(sk_graph *g, sk_node x, sk_node shift, int groups,
                                        sk_node gamma, sk_node beta, float eps);
/* x (N, C, H, W) → (N, C, factor·H, factor·W), each pixel repeated (nearest). */
SK_API sk_node sk_upsample_nearest2d(sk_graph *g, sk_node x, int factor);
/* x (N, C, H, W) → (N, C, H / factor, W / factor), the mean of each factor ×
 * factor block; H and W must be multiples of factor. */
SK_API sk_node sk_avg_pool2d(sk_graph *g, sk_node x, int factor);

/* ---- differentiation ---- */
/* Appends to `g` the nodes of the vector-Jacobian product of `y` with the
 * cotangent `dy` (same shape as y; SK_NONE means y has one element and dy = 1)
 * with respect to each wrt[i], written to grads[i] (a zero constant where y
 * does not depend on wrt[i]). The result is differentiable again. */
SK_API sk_status sk_grad(sk_graph *g, sk_node y, sk_node dy, int n, const sk_node *wrt,
                         sk_node *grads);

/* ---- shapes ---- */
SK_API int sk_node_ndim(const sk_graph *g, sk_node n);
/* Borrowed, valid while `g` lives. */
SK_API const int64_t *sk_node_shape(const sk_graph *g, sk_node n);
SK_API int64_t sk_node_numel(const sk_graph *g, sk_node n);

/* ---- compile and run ---- */
/* Plans execution of the nodes the outputs need: prunes the rest, orders
 * them, and assigns buffers by liveness (reusing a buffer after its last
 * consumer) in one arena; inputs, parameters, constants and outputs are
 * pinned. Call once, after building. */
SK_API sk_status sk_graph_compile(sk_graph *g, int n_out, const sk_node *outs);
/* Runs the plan, on the OpenMP threads (the same bits on any number).
 * Performs no heap allocation; each thread uses about 100 KiB of its stack
 * (scratch blocks of fused element-wise runs, thin products' operands). */
SK_API sk_status sk_graph_run(sk_graph *g);
/* Work for the threads that ran a graph, right after it: called as
 * fn(ctx, t, nt) on each thread t of the nt, like a kernel over its share.
 * fn may meet the others with `#pragma omp barrier` (every thread calls it,
 * so every one must reach each barrier). */
typedef void (*sk_graph_then_fn)(void *ctx, int t, int nt);
/* sk_graph_run, then fn on the same threads in the same parallel region,
 * after a barrier (every value of the graph is complete, in host memory): no
 * second start of the threads, and each finds the rows it computed still in
 * its cache. fn is not called if the run fails. */
SK_API sk_status sk_graph_run_then(sk_graph *g, sk_graph_then_fn fn, void *ctx);
/* The buffer of node n (numel floats, host memory), valid until
 * sk_graph_free. NULL before compilation, for an invalid node, and for a node
 * the outputs do not need (compilation pruned it), unless it is a parameter
 * or an input bound to caller memory. Inputs, outputs,
 * parameters and constants keep their buffers to themselves; an intermediate
 * value's buffer is reused by later values of the run, so after sk_graph_run
 * it need not hold that value: ask for what you read as an output. */
SK_API float *sk_graph_data(sk_graph *g, sk_node n);
/* Points an input or parameter at caller memory of its numel floats. */
SK_API sk_status sk_graph_bind(sk_graph *g, sk_node n, float *data);
/* Bytes of the compiled arena (intermediates, inputs, constants). After a
 * compile refused by the limit below: the bytes it would have taken. */
SK_API size_t sk_graph_arena_bytes(const sk_graph *g);
/* Before compiling: the arena may take at most `bytes` (0, the default: no
 * limit). A plan that needs more fails to compile with SK_ERR_NOMEM naming
 * both sizes, before anything of that size is allocated, so a caller can
 * refuse a graph that would not fit in memory instead of touching it. */
SK_API void sk_graph_set_arena_limit(sk_graph *g, size_t bytes);
/* Before compiling: a lean plan (on = 1) places a barrier where a value of
 * 1 MiB or more finds no free memory that fits it (memory freed in its own
 * phase passes only to values split as the freed one was) while values dead
 * in that phase left at least as much, so that it takes theirs. That saves most
 * in a backward pass (the activations kept for it leave little else free),
 * at the cost of splitting tiled groups of ops, which keep a few rows of a
 * chain of values in cache (4 % more time a forward pass of the U-Net, none
 * measurable in its training step). Training's loss graphs are lean; the
 * default (0) places barriers only where the ops' rows demand them. */
SK_API void sk_graph_set_lean(sk_graph *g, int on);
/* The matmul FLOPs (2·m·n·k each) of one sk_graph_run; 0 before compilation. */
SK_API double sk_graph_matmul_flops(const sk_graph *g);
/* The floating-point operations of one sk_graph_run, every op counted by its
 * row of the op table (products 2·m·n·k, elementwise ops one per output,
 * reductions one per input); 0 before compilation. */
SK_API double sk_graph_flops(const sk_graph *g);
/* The ops one sk_graph_run executes and the thread barriers between them;
 * 0 before compilation, 1 after. */
SK_API int sk_graph_plan_counts(const sk_graph *g, int *steps, int *barriers);
/* Runs each planned op `reps` times on the calling thread and prints one
 * line per op (name, shape, microseconds) to `out`: where a run's time goes.
 * Each op runs alone over all its rows, not tiled or fused as in
 * sk_graph_run, so its data is in cache and the times are a lower bound. */
SK_API sk_status sk_graph_profile(sk_graph *g, int reps, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
