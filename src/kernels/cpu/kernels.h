/* The CPU kernels: one function per op family, outputs first, then inputs,
 * then sizes. Every fast path has a naive reference beside it that a test
 * compares against.
 *
 * Kernels run on a range of output rows [r0, r1) (rows along the output's
 * first dimension) and never start threads themselves: the executor
 * (graph/run.c) splits each op's rows over the threads of one parallel
 * region. Every output element is computed the same way whatever range it
 * falls in, so 1 and N threads give the same bits. */
#ifndef SK_KERNELS_CPU_H
#define SK_KERNELS_CPU_H

#include <stdint.h>

#include "core/internal.h"

void sk__kernels_init(void);

/* c (m, n) = op(a) (m, k) @ op(b) (k, n); a is (k, m) when ta, b is (n, k)
 * when tb. Rows [r0, r1) of c. `bt`, when not NULL, is b^T already packed as
 * (k, n) (for tb = 1): the fast path for a constant right operand. */
void sk__matmul_rows(float *c, const float *a, const float *b, const float *bt, int64_t m,
                     int64_t n, int64_t k, int ta, int tb, int64_t r0, int64_t r1);
/* All rows, on the calling thread (tests and callers outside a graph). */
void sk__matmul(float *c, const float *a, const float *b, int64_t m, int64_t n, int64_t k, int ta,
                int tb);
void sk__matmul_naive(float *c, const float *a, const float *b, int64_t m, int64_t n, int64_t k,
                      int ta, int tb);
/* Tests: 1 makes sk__matmul_rows skip the JIT kernels and use its portable
 * loops, so both paths are checked on a machine that has the JIT. */
void sk__matmul_force_portable(int on);
/* Whether libxsmm's JIT kernels run on this machine (x86 with AVX2 or more). */
int sk__jit_available(void);
/* Rows [r0, r1) of t (cols, rows) = s^T for s (rows, cols): t's rows are s's
 * columns. stream 1: stored past the cache where the CPU can (AVX-512, rows
 * a multiple of 16, t on a 64-byte line), for a t that other threads read. */
void sk__transpose_rows(float *t, const float *s, int64_t rows, int64_t cols, int64_t r0,
                        int64_t r1, int stream);

/* A 2-D convolution (NCHW, cross-correlation as in PyTorch) as its three
 * kernels see it: input x (n, c, h, w), weight (o, c, kh, kw), output y
 * (n, o, oh, ow) with
 *   y[i, p, q, r] = Σ_{c, a, b} w[p, c, a, b] · x[i, c, q·sh − ph + a·dh, r·sw − pw + b·dw]
 * (x zero outside its h × w). The transposed convolution is the data kernel
 * of the convolution it transposes (graph/build.c, conv ops). */
typedef struct sk__conv {
  int64_t n, c, h, w, o, oh, ow, kh, kw;
  int64_t sh, sw, ph, pw, dh, dw;
} sk__conv;
/* y = conv(x, w), samples [n0, n1) of y. */
void sk__conv2d_rows(float *y, const float *x, const float *w, const sk__conv *cv, int64_t n0,
                     int64_t n1);
/* x = conv^T(y, w): the gradient with respect to the input for the output
 * gradient y; samples [n0, n1) of x. */
void sk__conv2d_data_rows(float *x, const float *y, const float *w, const sk__conv *cv,
                          int64_t n0, int64_t n1);
/* w = Σ over samples and output positions of y ⊗ the input window: the
 * gradient with respect to the weight for the output gradient y; output
 * channels [o0, o1) of w. */
void sk__conv2d_weight_rows(float *w, const float *x, const float *y, const sk__conv *cv,
                            int64_t o0, int64_t o1);
/* The same three as matrix products on libxsmm's JIT kernels (conv_gemm.c):
 * the input windows of a block of output positions (im2col) times the
 * weight. scratch holds sk__conv_gemm_scratch(cv, kind, r1 − r0, 0) floats
 * (kind 0 forward, 1 data, 2 weight) that no other thread uses meanwhile.
 * Every element is computed the same way whatever range a call covers.
 * False if libxsmm could not make a kernel (nothing is then promised of the
 * output). */
int sk__conv2d_gemm_rows(float *y, const float *x, const float *w, const sk__conv *cv, int64_t n0,
                         int64_t n1, float *scratch);
int sk__conv2d_data_gemm_rows(float *x, const float *y, const float *w, const sk__conv *cv,
                              int64_t n0, int64_t n1, float *scratch);
int sk__conv2d_weight_gemm_rows(float *w, const float *x, const float *y, const sk__conv *cv,
                                int64_t o0, int64_t o1, float *scratch);
/* Floats of scratch a call of `kind` over any range of at most `rows` rows
 * needs (aligned: ranges that start at a multiple of SK_SPLIT_ROWS, which
 * may need less; m times the figure for SK_SPLIT_ROWS rows covers such a
 * range of m blocks); whether the products can run at all (the JIT, a
 * non-empty geometry). */
int64_t sk__conv_gemm_scratch(const sk__conv *cv, int kind, int64_t rows, int aligned);
int sk__conv_gemm_ok(const sk__conv *cv);
/* Whether the CPU runs AVX-512 (checked once). */
int sk__has_avx512(void);
/* The forward and weight passes as products that read the input in place
 * (implicit GEMM, conv_implicit.c): the same contract as the three above,
 * scratch sk__conv_implicit_scratch(cv, kind, r1 − r0, 0) floats (kind 0
 * forward, 2 weight); they run where sk__conv_implicit_ok says (the JIT, a
 * kernel of at most 64 taps), any stride, padding and dilation. */
int sk__conv2d_implicit_rows(float *y, const float *x, const float *w, const sk__conv *cv,
                             int64_t n0, int64_t n1, float *scratch);
int sk__conv2d_weight_implicit_rows(float *w, const float *x, const float *y, const sk__conv *cv,
                                    int64_t o0, int64_t o1, float *scratch);
int64_t sk__conv_implicit_scratch(const sk__conv *cv, int kind, int64_t rows, int aligned);
int sk__conv_implicit_ok(const sk__conv *cv);
/* Their layout: positions per output row, junk included (sw ≥ ow), and
 * product rows per sample, (oh − 1)·sw + ow. */
void sk__conv_implicit_shape(const sk__conv *cv, int64_t *sw, int64_t *m);
/* Tests: 1 makes graphs compiled from now on run their convolutions on the
 * direct loops (conv.c) instead of the products, so both are checked. */
void sk__conv_force_direct(int on);
/* Tests: the data pass of the products (conv_gemm.c) by classes of input
 * positions wherever they apply (1), never (0), or as measured best (-1,
 * the default); graphs plan their scratch by it, so set it before
 * compiling. */
void sk__conv_data_classes(int mode);
/* The references: the defining sums, every term, in double. */
void sk__conv2d_naive(float *y, const float *x, const float *w, const sk__conv *cv);
void sk__conv2d_data_naive(float *x, const float *y, const float *w, const sk__conv *cv);
void sk__conv2d_weight_naive(float *w, const float *x, const float *y, const sk__conv *cv);

/* Shapes padded to 4-D (leading 1s), as the broadcasting kernels use them. */
typedef struct sk__shape4 {
  int64_t d[4];
} sk__shape4;
sk__shape4 sk__shape4_of(int ndim, const int64_t *shape);

typedef enum { SK_BIN_ADD, SK_BIN_SUB, SK_BIN_MUL, SK_BIN_DIV } sk__binop;
/* out (so) = a (sa) op b (sb) with numpy broadcasting; output elements
 * [e0, e1), which must be whole rows of so's last dimension unless a and b
 * each have so's element count or one element. */
void sk__binary(float *out, const float *a, const float *b, sk__shape4 so, sk__shape4 sa,
                sk__shape4 sb, sk__binop op, int64_t e0, int64_t e1);

typedef enum {
  SK_UN_NEG, SK_UN_AFFINE, SK_UN_EXP, SK_UN_LOG, SK_UN_SQRT, SK_UN_TANH, SK_UN_SIGMOID,
  SK_UN_SOFTPLUS, SK_UN_STEP, SK_UN_SIN, SK_UN_COS
} sk__unop;
/* out[i] = f(a[i]) for i in [e0, e1); alpha and beta for affine. */
void sk__unary(float *out, const float *a, sk__unop op, float alpha, float beta, int64_t e0,
               int64_t e1);

/* sp = softplus(a) and sg = sigmoid(a), elements [e0, e1), with the bits
 * of SK_UN_SOFTPLUS and SK_UN_SIGMOID over the same range; sp, sg and a do
 * not overlap. */
void sk__softplus_sigmoid(float *sp, float *sg, const float *a, int64_t e0, int64_t e1);
/* out = x · (y · (1 − y)) over [e0, e1), with the bits of the three ops
 * affine(y, −1, 1), y · that, x · that; x NULL: y · (1 − y), the first two. */
void sk__sigmoid_grad_mul(float *out, const float *x, const float *y, int64_t e0, int64_t e1);
/* The group-norm ops (ops.def) for samples [n0, n1) of x (N, c, hw), each
 * sample's group alone, in an order that depends on the shapes only; gb
 * (2, c) each channel's scale γ and shift β, u of x's shape:
 *   0 silu(group_norm(x)), u NULL
 *   1 u · silu'(γ x̂ + β)
 *   2 (g − mean g − x̂ mean(g x̂)) / sd, g = γ u
 *   3 out (N, 2, c): Σ u x̂ and Σ u per channel, gb NULL
 * d (N, c), or NULL: the ops of x + d, d added per channel into xs (one
 * group's c / groups × hw floats) group by group, with the bits of x + d
 * computed first. out may be x or u. */
void sk__group_norm(int kind, float *out, const float *x, const float *u, const float *gb,
                    const float *d, float *xs, int64_t c, int64_t hw, int groups, float eps,
                    int64_t n0, int64_t n1);
/* out (so) = a (sa) summed over the dimensions where so is 1 and sa is not;
 * output elements [e0, e1), each added in an order fixed by the shapes. */
void sk__sum_to(float *out, const float *a, sk__shape4 so, sk__shape4 sa, int64_t e0, int64_t e1);
/* out (n) = Σ of rows [r0, r1) of a (rows, n), in row order. */
void sk__sum_rows(float *out, const float *a, int64_t n, int64_t r0, int64_t r1);
/* out[i] = x[i] + y[i] for i in [e0, e1). */
void sk__add_halves(float *out, const float *x, const float *y, int64_t e0, int64_t e1);
/* out (so) = a (sa) broadcast; output elements [e0, e1), whole rows of so's
 * last dimension. */
void sk__expand(float *out, const float *a, sk__shape4 so, sk__shape4 sa, int64_t e0, int64_t e1);
/* out = a with axes reordered: out axis i is a's axis perm[i] (perm of 4). */
void sk__permute(float *out, const float *a, sk__shape4 sa, const int perm[4]);
/* Along one axis, with `outer` blocks before it and `inner` floats after it:
 * out = [a, b] (concat), out = a[start : start + len] (slice), out = [0, a, 0]
 * (pad); outer blocks [o0, o1). */
void sk__concat(float *out, const float *a, const float *b, int64_t la, int64_t lb, int64_t inner,
                int64_t o0, int64_t o1);
void sk__slice(float *out, const float *a, int64_t la, int64_t start, int64_t len, int64_t inner,
               int64_t o0, int64_t o1);
void sk__pad(float *out, const float *a, int64_t la, int64_t before, int64_t lo, int64_t inner,
             int64_t o0, int64_t o1);
/* out (n, row) = a[idx[i]]; false if an index is not an integer in [0, rows). */
int sk__gather(float *out, const float *a, const float *idx, int64_t n, int64_t rows, int64_t row);
/* out (rows, row) = 0; out[idx[i]] += a[i]. */
int sk__scatter_add(float *out, const float *a, const float *idx, int64_t n, int64_t rows,
                    int64_t row);
/* out[r] = log Σ_j exp(a[r, j]) over cols, for rows [r0, r1). */
void sk__logsumexp(float *out, const float *a, int64_t cols, int64_t r0, int64_t r1);

#endif
