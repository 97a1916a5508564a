/* Every primitive's gradient against central finite differences, contracted
 * with a random cotangent, and every smooth primitive's gradient of gradient
 * against finite differences of its analytic gradient. */
#include "graph/internal.h"
#include "scorekit/scorekit.h"
#include "test.h"

#define MAX_IN 5

typedef struct fd_case {
  const char *name;
  int n_in;
  int ndim[MAX_IN];
  int64_t shape[MAX_IN][SK_MAX_DIMS];
  float lo[MAX_IN], hi[MAX_IN]; /* sampling range of each input */
  const float *fixed[MAX_IN];   /* non-differentiable integer inputs (indices) */
  int second_order;
  sk_node (*build)(sk_graph *g, const sk_node *x);
} fd_case;

static const float idx_gather[4] = {4, 0, 2, 2};
static const float idx_scatter[4] = {1, 1, 0, 3};

static sk_node b_mm00(sk_graph *g, const sk_node *x) { return sk_matmul(g, x[0], x[1], 0, 0); }
static sk_node b_mm01(sk_graph *g, const sk_node *x) { return sk_matmul(g, x[0], x[1], 0, 1); }
static sk_node b_mm10(sk_graph *g, const sk_node *x) { return sk_matmul(g, x[0], x[1], 1, 0); }
static sk_node b_mm11(sk_graph *g, const sk_node *x) { return sk_matmul(g, x[0], x[1], 1, 1); }
static sk_node b_add(sk_graph *g, const sk_node *x) { return sk_add(g, x[0], x[1]); }
static sk_node b_sub(sk_graph *g, const sk_node *x) { return sk_sub(g, x[0], x[1]); }
static sk_node b_mul(sk_graph *g, const sk_node *x) { return sk_mul(g, x[0], x[1]); }
static sk_node b_div(sk_graph *g, const sk_node *x) { return sk_div(g, x[0], x[1]); }
static sk_node b_neg(sk_graph *g, const sk_node *x) { return sk_neg(g, x[0]); }
static sk_node b_affine(sk_graph *g, const sk_node *x) { return sk_affine(g, x[0], -1.5f, 0.25f); }
static sk_node b_exp(sk_graph *g, const sk_node *x) { return sk_exp(g, x[0]); }
static sk_node b_log(sk_graph *g, const sk_node *x) { return sk_log(g, x[0]); }
static sk_node b_sqrt(sk_graph *g, const sk_node *x) { return sk_sqrt(g, x[0]); }
static sk_node b_tanh(sk_graph *g, const sk_node *x) { return sk_tanh(g, x[0]); }
static sk_node b_sin(sk_graph *g, const sk_node *x) { return sk_sin(g, x[0]); }
static sk_node b_cos(sk_graph *g, const sk_node *x) { return sk_cos(g, x[0]); }
static sk_node b_sigmoid(sk_graph *g, const sk_node *x) { return sk_sigmoid(g, x[0]); }
static sk_node b_softplus(sk_graph *g, const sk_node *x) { return sk_softplus(g, x[0]); }
static sk_node b_step(sk_graph *g, const sk_node *x) {
  return sk_mul(g, sk_step(g, x[0]), sk_square(g, x[0]));
}
static sk_node b_sum_to_lead(sk_graph *g, const sk_node *x) {
  return sk_sum_to(g, x[0], 1, (int64_t[]){4});
}
static sk_node b_sum_to_mid(sk_graph *g, const sk_node *x) {
  return sk_sum_to(g, x[0], 3, (int64_t[]){1, 3, 1});
}
static sk_node b_expand(sk_graph *g, const sk_node *x) {
  return sk_expand(g, x[0], 3, (int64_t[]){2, 3, 4});
}
static sk_node b_reshape(sk_graph *g, const sk_node *x) {
  return sk_mul(g, sk_reshape(g, x[0], 2, (int64_t[]){2, 6}), sk_reshape(g, x[0], 2, (int64_t[]){2, 6}));
}
static sk_node b_permute(sk_graph *g, const sk_node *x) { return sk_permute(g, x[0], (int[]){2, 0, 1}); }
static sk_node b_concat0(sk_graph *g, const sk_node *x) { return sk_concat(g, x[0], x[1], 0); }
static sk_node b_concat1(sk_graph *g, const sk_node *x) { return sk_concat(g, x[0], x[1], 1); }
static sk_node b_slice(sk_graph *g, const sk_node *x) { return sk_slice(g, x[0], 1, 1, 2); }
static sk_node b_pad(sk_graph *g, const sk_node *x) { return sk_pad(g, x[0], 0, 1, 2); }
static sk_node b_gather(sk_graph *g, const sk_node *x) { return sk_gather(g, x[0], x[1]); }
static sk_node b_scatter(sk_graph *g, const sk_node *x) { return sk_scatter_add(g, x[0], x[1], 5); }
static sk_node b_lse(sk_graph *g, const sk_node *x) { return sk_logsumexp(g, x[0]); }
static sk_node b_silu(sk_graph *g, const sk_node *x) { return sk_silu(g, x[0]); }
static sk_node b_elu(sk_graph *g, const sk_node *x) { return sk_elu(g, x[0]); }
static sk_node b_log_softmax(sk_graph *g, const sk_node *x) { return sk_log_softmax(g, x[0]); }
static sk_node b_mlp(sk_graph *g, const sk_node *x) {
  return sk_softplus(g, sk_matmul(g, sk_tanh(g, x[0]), x[1], 0, 1));
}

/* Convolutions over strides 1 and 2, padding 0 and 1, dilation 2, odd
 * sizes (5 × 7) that a stride-2 kernel does not cover exactly (so the
 * input's gradient needs output padding), square and non-square kernels,
 * several channels and two samples. */
static const sk_conv2d_opts cv_s1p0 = {{1, 1}, {0, 0}, {1, 1}, {0, 0}};
static const sk_conv2d_opts cv_s2p1 = {{2, 2}, {1, 1}, {1, 1}, {0, 0}};
static const sk_conv2d_opts cv_s2p0 = {{2, 2}, {0, 0}, {1, 1}, {0, 0}};
static const sk_conv2d_opts cv_d2p1 = {{1, 1}, {1, 1}, {2, 2}, {0, 0}};
static const sk_conv2d_opts cv_mixed = {{2, 1}, {1, 0}, {1, 2}, {0, 0}};
static const sk_conv2d_opts cv_t_s2p1 = {{2, 2}, {1, 1}, {1, 1}, {1, 1}};
static const sk_conv2d_opts cv_t_s2d2 = {{2, 2}, {0, 1}, {2, 1}, {1, 0}};
static sk_node b_conv_s1p0(sk_graph *g, const sk_node *x) { return sk_conv2d(g, x[0], x[1], &cv_s1p0); }
static sk_node b_conv_s2p1(sk_graph *g, const sk_node *x) { return sk_conv2d(g, x[0], x[1], &cv_s2p1); }
static sk_node b_conv_s2p0(sk_graph *g, const sk_node *x) { return sk_conv2d(g, x[0], x[1], &cv_s2p0); }
static sk_node b_conv_d2p1(sk_graph *g, const sk_node *x) { return sk_conv2d(g, x[0], x[1], &cv_d2p1); }
static sk_node b_conv_mixed(sk_graph *g, const sk_node *x) { return sk_conv2d(g, x[0], x[1], &cv_mixed); }
static sk_node b_convt_s1p0(sk_graph *g, const sk_node *x) {
  return sk_conv_transpose2d(g, x[0], x[1], NULL);
}
static sk_node b_convt_s2p1(sk_graph *g, const sk_node *x) {
  return sk_conv_transpose2d(g, x[0], x[1], &cv_t_s2p1);
}
/* A U-Net decoder's skip: the concatenated channels' gradients are each a
 * convolution of their own (grad_concat), not slices of one. */
static sk_node b_convt_skip(sk_graph *g, const sk_node *x) {
  return sk_conv_transpose2d(g, sk_concat(g, x[0], x[1], 1), x[2], &cv_t_s2p1);
}
static sk_node b_convt_s2d2(sk_graph *g, const sk_node *x) {
  return sk_conv_transpose2d(g, x[0], x[1], &cv_t_s2d2);
}
static sk_node b_convw_s1p0(sk_graph *g, const sk_node *x) {
  return sk_conv2d_weight(g, x[0], x[1], 3, 3, &cv_s1p0);
}
static sk_node b_convw_s2p1(sk_graph *g, const sk_node *x) {
  return sk_conv2d_weight(g, x[0], x[1], 3, 3, &cv_s2p1);
}
static sk_node b_convw_s2p0(sk_graph *g, const sk_node *x) {
  return sk_conv2d_weight(g, x[0], x[1], 2, 2, &cv_s2p0);
}
static sk_node b_convw_d2p1(sk_graph *g, const sk_node *x) {
  return sk_conv2d_weight(g, x[0], x[1], 3, 2, &cv_d2p1);
}
/* A nonlinearity between two convolutions: the second order then sees
 * products of the three ops' gradients, not only bilinear forms. */
static sk_node b_conv_net(sk_graph *g, const sk_node *x) {
  sk_node h = sk_tanh(g, sk_conv2d(g, x[0], x[1], &cv_s2p1));
  return sk_conv_transpose2d(g, h, x[1], &cv_t_s2p1);
}

/* The image composites: group normalisation with and without its scale
 * and shift, nearest upsampling and average pooling. */
static sk_node b_group_norm(sk_graph *g, const sk_node *x) {
  return sk_group_norm(g, x[0], 2, x[1], x[2], 1e-5f);
}
static sk_node b_group_norm_silu(sk_graph *g, const sk_node *x) {
  return sk_group_norm_silu(g, x[0], 2, x[1], x[2], 1e-5f);
}
/* x[3] (or x[2] after u): a shift per sample and channel. */
static sk_node b_group_norm_silu_shift(sk_graph *g, const sk_node *x) {
  return sk_group_norm_silu_shift(g, x[0], x[3], 2, x[1], x[2], 1e-5f);
}
/* The fused gradient ops of x[0], u x[1], γ x[2] and β x[3] (as gb), and
 * the shift x[4] (or x[2] for the sums, which take no gb). */
static sk_node gn_op(sk_graph *g, sk__op op, const sk_node *x, sk_node d) {
  sk_node gb = sk_concat(g, sk_reshape(g, x[2], 2, (int64_t[]){1, 4}),
                         sk_reshape(g, x[3], 2, (int64_t[]){1, 4}), 0);
  return sk__group_norm_op(g, op, x[0], x[1], gb, d, 2, 1e-5f);
}
static sk_node b_gn_silu_d(sk_graph *g, const sk_node *x) {
  return gn_op(g, SK_OP_GROUP_NORM_SILU_D, x, SK_NONE);
}
static sk_node b_gn_silu_d_shift(sk_graph *g, const sk_node *x) {
  return gn_op(g, SK_OP_GROUP_NORM_SILU_D, x, x[4]);
}
static sk_node b_gn_back(sk_graph *g, const sk_node *x) {
  return gn_op(g, SK_OP_GROUP_NORM_BACK, x, SK_NONE);
}
static sk_node b_gn_back_shift(sk_graph *g, const sk_node *x) {
  return gn_op(g, SK_OP_GROUP_NORM_BACK, x, x[4]);
}
static sk_node b_gn_sums(sk_graph *g, const sk_node *x) {
  return sk__group_norm_op(g, SK_OP_GROUP_NORM_SUMS, x[0], x[1], SK_NONE, SK_NONE, 2, 1e-5f);
}
static sk_node b_gn_sums_shift(sk_graph *g, const sk_node *x) {
  return sk__group_norm_op(g, SK_OP_GROUP_NORM_SUMS, x[0], x[1], SK_NONE, x[2], 2, 1e-5f);
}
static sk_node b_group_norm_plain(sk_graph *g, const sk_node *x) {
  return sk_group_norm(g, x[0], 2, SK_NONE, SK_NONE, 1e-3f);
}
static sk_node b_upsample(sk_graph *g, const sk_node *x) {
  return sk_square(g, sk_upsample_nearest2d(g, x[0], 2));
}
static sk_node b_avg_pool(sk_graph *g, const sk_node *x) { return sk_square(g, sk_avg_pool2d(g, x[0], 2)); }

#define S2(a, b) {a, b}
#define S3(a, b, c) {a, b, c}
#define S4(a, b, c, d) {a, b, c, d}
static const fd_case cases[] = {
    {"matmul", 2, {2, 2}, {S2(3, 4), S2(4, 5)}, {-1, -1}, {1, 1}, {0}, 1, b_mm00},
    {"matmul_tb", 2, {2, 2}, {S2(3, 4), S2(5, 4)}, {-1, -1}, {1, 1}, {0}, 1, b_mm01},
    {"matmul_ta", 2, {2, 2}, {S2(4, 3), S2(4, 5)}, {-1, -1}, {1, 1}, {0}, 1, b_mm10},
    {"matmul_ta_tb", 2, {2, 2}, {S2(4, 3), S2(5, 4)}, {-1, -1}, {1, 1}, {0}, 1, b_mm11},
    {"add_bcast", 2, {2, 1}, {S2(3, 4), {4}}, {-1, -1}, {1, 1}, {0}, 1, b_add},
    {"sub_bcast", 2, {2, 2}, {S2(3, 1), S2(1, 4)}, {-1, -1}, {1, 1}, {0}, 1, b_sub},
    {"mul_bcast", 2, {3, 2}, {S3(2, 3, 4), S2(3, 1)}, {-1, -1}, {1, 1}, {0}, 1, b_mul},
    {"div_bcast", 2, {2, 0}, {S2(3, 4), {0}}, {-1, 0.5f}, {1, 2}, {0}, 1, b_div},
    {"neg", 1, {2}, {S2(3, 4)}, {-2}, {2}, {0}, 1, b_neg},
    {"affine", 1, {2}, {S2(3, 4)}, {-2}, {2}, {0}, 1, b_affine},
    {"exp", 1, {2}, {S2(3, 4)}, {-2}, {2}, {0}, 1, b_exp},
    {"log", 1, {2}, {S2(3, 4)}, {0.5f}, {3}, {0}, 1, b_log},
    {"sqrt", 1, {2}, {S2(3, 4)}, {0.5f}, {3}, {0}, 1, b_sqrt},
    {"tanh", 1, {2}, {S2(3, 4)}, {-2}, {2}, {0}, 1, b_tanh},
    {"sin", 1, {2}, {S2(3, 4)}, {-4}, {4}, {0}, 1, b_sin},
    {"cos", 1, {2}, {S2(3, 4)}, {-4}, {4}, {0}, 1, b_cos},
    {"sigmoid", 1, {2}, {S2(3, 4)}, {-3}, {3}, {0}, 1, b_sigmoid},
    {"softplus", 1, {2}, {S2(3, 4)}, {-3}, {3}, {0}, 1, b_softplus},
    {"step", 1, {2}, {S2(3, 4)}, {-2}, {2}, {0}, 0, b_step},
    {"sum_to_lead", 1, {2}, {S2(3, 4)}, {-1}, {1}, {0}, 1, b_sum_to_lead},
    {"sum_to_mid", 1, {3}, {S3(2, 3, 4)}, {-1}, {1}, {0}, 1, b_sum_to_mid},
    {"expand", 1, {2}, {S2(3, 1)}, {-1}, {1}, {0}, 1, b_expand},
    {"reshape", 1, {2}, {S2(3, 4)}, {-1}, {1}, {0}, 1, b_reshape},
    {"permute", 1, {3}, {S3(2, 3, 4)}, {-1}, {1}, {0}, 1, b_permute},
    {"concat0", 2, {2, 2}, {S2(2, 3), S2(4, 3)}, {-1, -1}, {1, 1}, {0}, 1, b_concat0},
    {"concat1", 2, {2, 2}, {S2(3, 2), S2(3, 4)}, {-1, -1}, {1, 1}, {0}, 1, b_concat1},
    {"slice", 1, {2}, {S2(3, 4)}, {-1}, {1}, {0}, 1, b_slice},
    {"pad", 1, {2}, {S2(3, 4)}, {-1}, {1}, {0}, 1, b_pad},
    {"gather", 2, {2, 1}, {S2(5, 3), {4}}, {-1, 0}, {1, 0}, {NULL, idx_gather}, 1, b_gather},
    {"scatter_add", 2, {2, 1}, {S2(4, 3), {4}}, {-1, 0}, {1, 0}, {NULL, idx_scatter}, 1, b_scatter},
    {"logsumexp", 1, {2}, {S2(3, 4)}, {-3}, {3}, {0}, 1, b_lse},
    {"silu", 1, {2}, {S2(3, 4)}, {-3}, {3}, {0}, 1, b_silu},
    {"elu", 1, {2}, {S2(3, 4)}, {-2}, {2}, {0}, 0, b_elu},
    {"log_softmax", 1, {2}, {S2(3, 4)}, {-3}, {3}, {0}, 1, b_log_softmax},
    {"conv2d_s1_p0", 2, {4, 4}, {S4(2, 3, 5, 7), S4(4, 3, 3, 3)}, {-1, -1}, {1, 1}, {0}, 1, b_conv_s1p0},
    {"conv2d_s2_p1", 2, {4, 4}, {S4(2, 3, 5, 7), S4(4, 3, 3, 3)}, {-1, -1}, {1, 1}, {0}, 1, b_conv_s2p1},
    {"conv2d_s2_p0_k2", 2, {4, 4}, {S4(2, 2, 5, 7), S4(3, 2, 2, 2)}, {-1, -1}, {1, 1}, {0}, 1, b_conv_s2p0},
    {"conv2d_d2_p1", 2, {4, 4}, {S4(2, 2, 7, 5), S4(3, 2, 3, 3)}, {-1, -1}, {1, 1}, {0}, 1, b_conv_d2p1},
    {"conv2d_mixed", 2, {4, 4}, {S4(2, 2, 6, 7), S4(3, 2, 3, 2)}, {-1, -1}, {1, 1}, {0}, 1, b_conv_mixed},
    {"conv_t_s1_p0_k2", 2, {4, 4}, {S4(2, 3, 4, 5), S4(3, 2, 2, 2)}, {-1, -1}, {1, 1}, {0}, 1, b_convt_s1p0},
    {"conv_t_s2_p1_op1", 2, {4, 4}, {S4(2, 3, 3, 4), S4(3, 2, 3, 3)}, {-1, -1}, {1, 1}, {0}, 1, b_convt_s2p1},
    {"conv_t_skip", 3, {4, 4, 4}, {S4(2, 1, 3, 4), S4(2, 2, 3, 4), S4(3, 2, 3, 3)}, {-1, -1, -1}, {1, 1, 1}, {0}, 1, b_convt_skip},
    {"conv_t_s2_d2_op", 2, {4, 4}, {S4(2, 2, 3, 4), S4(2, 3, 2, 3)}, {-1, -1}, {1, 1}, {0}, 1, b_convt_s2d2},
    {"conv_w_s1_p0", 2, {4, 4}, {S4(2, 3, 5, 7), S4(2, 4, 3, 5)}, {-1, -1}, {1, 1}, {0}, 1, b_convw_s1p0},
    {"conv_w_s2_p1", 2, {4, 4}, {S4(2, 3, 5, 7), S4(2, 4, 3, 4)}, {-1, -1}, {1, 1}, {0}, 1, b_convw_s2p1},
    {"conv_w_s2_p0_k2", 2, {4, 4}, {S4(2, 2, 5, 7), S4(2, 3, 2, 3)}, {-1, -1}, {1, 1}, {0}, 1, b_convw_s2p0},
    {"conv_w_d2_p1", 2, {4, 4}, {S4(2, 2, 7, 5), S4(2, 3, 5, 5)}, {-1, -1}, {1, 1}, {0}, 1, b_convw_d2p1},
    {"conv_net", 2, {4, 4}, {S4(2, 2, 5, 7), S4(3, 2, 3, 3)}, {-1, -0.5f}, {1, 0.5f}, {0}, 1, b_conv_net},
    {"group_norm", 3, {4, 1, 1}, {S4(2, 4, 3, 3), {4}, {4}}, {-2, 0.5f, -1}, {2, 2, 1}, {0}, 1, b_group_norm},
    {"group_norm_silu", 3, {4, 1, 1}, {S4(2, 4, 3, 3), {4}, {4}}, {-2, 0.5f, -1}, {2, 2, 1}, {0}, 1, b_group_norm_silu},
    {"group_norm_silu_d", 4, {4, 4, 1, 1}, {S4(2, 4, 3, 3), S4(2, 4, 3, 3), {4}, {4}}, {-2, -1, 0.5f, -1}, {2, 1, 2, 1}, {0}, 1, b_gn_silu_d},
    {"group_norm_silu_d_3d", 4, {3, 3, 1, 1}, {S3(2, 4, 5), S3(2, 4, 5), {4}, {4}}, {-2, -1, 0.5f, -1}, {2, 1, 2, 1}, {0}, 1, b_gn_silu_d},
    {"group_norm_silu_d_shift", 5, {4, 4, 1, 1, 4}, {S4(2, 4, 3, 3), S4(2, 4, 3, 3), {4}, {4}, S4(2, 4, 1, 1)}, {-2, -1, 0.5f, -1, -2}, {2, 1, 2, 1, 2}, {0}, 1, b_gn_silu_d_shift},
    {"group_norm_back", 4, {4, 4, 1, 1}, {S4(2, 4, 3, 3), S4(2, 4, 3, 3), {4}, {4}}, {-2, -1, 0.5f, -1}, {2, 1, 2, 1}, {0}, 1, b_gn_back},
    {"group_norm_back_3d", 4, {3, 3, 1, 1}, {S3(2, 4, 5), S3(2, 4, 5), {4}, {4}}, {-2, -1, -2, -1}, {2, 1, 2, 1}, {0}, 1, b_gn_back},
    {"group_norm_back_shift", 5, {4, 4, 1, 1, 4}, {S4(2, 4, 3, 3), S4(2, 4, 3, 3), {4}, {4}, S4(2, 4, 1, 1)}, {-2, -1, 0.5f, -1, -2}, {2, 1, 2, 1, 2}, {0}, 1, b_gn_back_shift},
    {"group_norm_back_3d_shift", 5, {3, 3, 1, 1, 3}, {S3(2, 4, 5), S3(2, 4, 5), {4}, {4}, S3(2, 4, 1)}, {-2, -1, -2, -1, -2}, {2, 1, 2, 1, 2}, {0}, 1, b_gn_back_shift},
    {"group_norm_sums", 2, {4, 4}, {S4(2, 4, 3, 3), S4(2, 4, 3, 3)}, {-2, -1}, {2, 1}, {0}, 1, b_gn_sums},
    {"group_norm_sums_2d", 2, {2, 2}, {S2(3, 4), S2(3, 4)}, {-2, -1}, {2, 1}, {0}, 1, b_gn_sums},
    {"group_norm_silu_shift", 4, {4, 1, 1, 4}, {S4(2, 4, 3, 3), {4}, {4}, S4(2, 4, 1, 1)}, {-2, 0.5f, -1, -2}, {2, 2, 1, 2}, {0}, 1, b_group_norm_silu_shift},
    {"group_norm_sums_shift", 3, {4, 4, 4}, {S4(2, 4, 3, 3), S4(2, 4, 3, 3), S4(2, 4, 1, 1)}, {-2, -1, -2}, {2, 1, 2}, {0}, 1, b_gn_sums_shift},
    {"group_norm_sums_2d_shift", 3, {2, 2, 2}, {S2(3, 8), S2(3, 8), S2(3, 8)}, {-2, -1, -2}, {2, 1, 2}, {0}, 1, b_gn_sums_shift},
    {"group_norm_plain", 1, {2}, {S2(3, 8)}, {-2}, {2}, {0}, 1, b_group_norm_plain},
    {"upsample_nearest2d", 1, {4}, {S4(2, 2, 3, 2)}, {-1}, {1}, {0}, 1, b_upsample},
    {"avg_pool2d", 1, {4}, {S4(2, 2, 4, 6)}, {-1}, {1}, {0}, 1, b_avg_pool},
    {"mlp", 2, {2, 2}, {S2(4, 3), S2(5, 3)}, {-1, -1}, {1, 1}, {0}, 1, b_mlp},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static uint8_t op_seen[SK_OP_COUNT];

/* Draws away from 0 for step/elu (kinks) so that ±eps never crosses one. */
static void fill_input(float *p, int64_t n, float lo, float hi, sk_rng *r) {
  sk_rng_uniform(r, p, (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    p[i] = lo + (hi - lo) * p[i];
    if (fabsf(p[i]) < 0.1f) p[i] += p[i] < 0 ? -0.1f : 0.1f;
  }
}

static double run_scalar(sk_graph *g, sk_node s) {
  sk_graph_run(g);
  return sk_graph_data(g, s)[0];
}

/* Central difference of scalar s w.r.t. every element of x, against an. */
static int fd_check(const char *what, sk_graph *g, sk_node s, sk_node x, const float *an) {
  float *p = sk_graph_data(g, x);
  int64_t n = sk_node_numel(g, x);
  const float eps = 1e-2f;
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    float keep = p[i];
    p[i] = keep + eps;
    double up = run_scalar(g, s);
    p[i] = keep - eps;
    double down = run_scalar(g, s);
    p[i] = keep;
    double fd = (up - down) / (2.0 * eps);
    double err = fabs(fd - an[i]) / (1.0 + fabs(an[i]));
    if (err > worst) worst = err;
    if (err > 5e-3) {
      fprintf(stderr, "  %s: element %lld: analytic %.6g vs finite difference %.6g\n", what,
              (long long)i, an[i], fd);
      return 0;
    }
  }
  return 1;
}

static int check_case(const fd_case *c) {
  sk_graph *g = sk_graph_new();
  sk_rng r = sk_rng_make(1234, 0);
  sk_node x[MAX_IN], r2[MAX_IN], g1[MAX_IN], g2[MAX_IN];
  int diff[MAX_IN], nd = 0;
  sk_node wrt[MAX_IN];
  for (int i = 0; i < c->n_in; i++) {
    x[i] = sk_input(g, "x", c->ndim[i], c->shape[i]);
    diff[i] = c->fixed[i] == NULL;
    if (diff[i]) wrt[nd++] = x[i];
  }
  int first = sk_graph_num_nodes(g);
  sk_node y = c->build(g, x);
  for (int i = first; i < sk_graph_num_nodes(g); i++) op_seen[g->nodes[i].op] = 1;
  sk_node cot = sk_input(g, "cot", sk_node_ndim(g, y), sk_node_shape(g, y));
  sk_node L = sk_sum_all(g, sk_mul(g, y, cot));
  if (sk_grad(g, L, SK_NONE, nd, wrt, g1) != SK_OK) {
    fprintf(stderr, "  grad: %s\n", sk_last_error());
    sk_graph_free(g);
    return 0;
  }
  sk_node L2 = SK_NONE, outs[2 + 2 * MAX_IN];
  int n_out = 0;
  outs[n_out++] = L;
  for (int i = 0; i < nd; i++) outs[n_out++] = g1[i];
  if (c->second_order) {
    for (int i = 0; i < nd; i++) {
      r2[i] = sk_input(g, "r2", sk_node_ndim(g, wrt[i]), sk_node_shape(g, wrt[i]));
      sk_node t = sk_sum_all(g, sk_mul(g, g1[i], r2[i]));
      L2 = L2 == SK_NONE ? t : sk_add(g, L2, t);
    }
    if (sk_grad(g, L2, SK_NONE, nd, wrt, g2) != SK_OK) {
      fprintf(stderr, "  grad of grad: %s\n", sk_last_error());
      sk_graph_free(g);
      return 0;
    }
    outs[n_out++] = L2;
    for (int i = 0; i < nd; i++) outs[n_out++] = g2[i];
  }
  if (sk_graph_compile(g, n_out, outs) != SK_OK) {
    fprintf(stderr, "  compile: %s\n", sk_last_error());
    sk_graph_free(g);
    return 0;
  }
  for (int i = 0; i < c->n_in; i++) {
    float *p = sk_graph_data(g, x[i]);
    if (c->fixed[i])
      memcpy(p, c->fixed[i], (size_t)sk_node_numel(g, x[i]) * sizeof(float));
    else
      fill_input(p, sk_node_numel(g, x[i]), c->lo[i], c->hi[i], &r);
  }
  sk_rng_normal(&r, sk_graph_data(g, cot), (size_t)sk_node_numel(g, cot));
  if (c->second_order)
    for (int i = 0; i < nd; i++) sk_rng_normal(&r, sk_graph_data(g, r2[i]), (size_t)sk_node_numel(g, r2[i]));
  sk_graph_run(g);
  /* Copy every analytic value first: the finite differences rerun the graph. */
  float *an[MAX_IN] = {0}, *an2[MAX_IN] = {0};
  for (int i = 0; i < nd; i++) {
    size_t bytes = (size_t)sk_node_numel(g, wrt[i]) * sizeof(float);
    an[i] = malloc(bytes);
    an2[i] = malloc(bytes);
    memcpy(an[i], sk_graph_data(g, g1[i]), bytes);
    if (c->second_order) memcpy(an2[i], sk_graph_data(g, g2[i]), bytes);
  }
  int ok = 1;
  for (int i = 0; i < nd && ok; i++) {
    ok = fd_check("gradient", g, L, wrt[i], an[i]);
    if (ok && c->second_order) ok = fd_check("gradient of gradient", g, L2, wrt[i], an2[i]);
  }
  for (int i = 0; i < nd; i++) {
    free(an[i]);
    free(an2[i]);
  }
  sk_graph_free(g);
  return ok;
}

TEST(finite_differences_every_case) {
  int bad = 0;
  for (int i = 0; i < N_CASES; i++)
    if (!check_case(&cases[i])) {
      fprintf(stderr, "case %s failed\n", cases[i].name);
      bad++;
    }
  CHECK_EQ_INT(bad, 0);
}

/* Every primitive with inputs appears in the table above and has a rule:
 * adding an op without its gradient test fails here. */
TEST(every_op_is_covered) {
  memset(op_seen, 0, sizeof op_seen);
  for (int i = 0; i < N_CASES; i++) check_case(&cases[i]);
  for (int op = 0; op < SK_OP_COUNT; op++) {
    if (!sk__op_has_grad_rule(op)) {
      fprintf(stderr, "op %s has no gradient rule\n", sk__op_name(op));
      CHECK(0);
    }
    if (sk__op_arity(op) == 0 || op == SK_OP_STOP_GRAD) continue;
    if (!op_seen[op]) fprintf(stderr, "op %s has no finite-difference case\n", sk__op_name(op));
    CHECK(op_seen[op]);
  }
}

/* Every row of the op table is whole: a name of its own, a gradient rule, a
 * kernel in every registered backend for an op that runs (views and leaves
 * never do), and row declarations that fit its kind. */
TEST(op_table_is_complete) {
  const sk__backend *be = sk__backend_default();
  CHECK(be != NULL && be->has_kernel && be->exec && be->units && be->alloc && be->free);
  CHECK(sk__backend_by_name(be->name) == be);
  CHECK(sk__backend_by_name("no such backend") == NULL);
  for (int op = 0; op < SK_OP_COUNT; op++) {
    const char *name = sk__op_name(op);
    CHECK(name && strcmp(name, "?") != 0);
    for (int other = 0; other < op; other++) CHECK(strcmp(sk__op_name(other), name) != 0);
    CHECK(sk__op_has_grad_rule(op));
    const int runs = sk__op_arity(op) > 0 && !sk__op_view(op);
    if (runs != be->has_kernel(op)) fprintf(stderr, "op %s: kernel %d, runs %d\n", name, be->has_kernel(op), runs);
    CHECK_EQ_INT(be->has_kernel(op), runs);
    if (sk__op_view(op)) CHECK_EQ_INT(sk__op_arity(op), 1);
    if (!runs) CHECK(sk__op_rows(op) == SK__ROWS_NONE);
  }
  CHECK(!be->has_kernel(SK_OP_COUNT));
}

/* Row alignment is what an op declares, never a shape coincidence: a
 * square transpose, a product with a transposed left operand, a concat
 * along the rows, a gather all have an input whose first dimension is the
 * output's, and none reads row r for row r. */
TEST(row_alignment_is_declared) {
  sk_graph *g = sk_graph_new();
  sk_node a = sk_input(g, "a", 2, (int64_t[]){8, 8}), i = sk_input(g, "i", 1, (int64_t[]){8});
  sk_node h = sk_input(g, "h", 2, (int64_t[]){4, 8});
  sk_node t = sk_transpose(g, a), m = sk_matmul(g, a, a, 1, 0), c = sk_concat(g, h, h, 0);
  sk_node r = sk_gather(g, a, i), e = sk_exp(g, a), mm = sk_matmul(g, a, a, 0, 0);
  sk_node s = sk_sum(g, a, 1, 1), col = sk_concat(g, a, a, 1);
  /* A weight whose first dimension is the batch's, and a weight gradient
   * the shape of the input: neither is read row for row. */
  sk_node xc = sk_input(g, "xc", 4, (int64_t[]){8, 8, 5, 5});
  sk_node wc = sk_input(g, "wc", 4, (int64_t[]){8, 8, 3, 3});
  sk_node cv = sk_conv2d(g, xc, wc, NULL), ct = sk_conv_transpose2d(g, cv, wc, NULL);
  sk_node cw = sk_conv2d_weight(g, ct, cv, 3, 3, NULL);
  CHECK_OK(sk_graph_status(g));
  const sk__node *N = g->nodes;
  CHECK(!sk__row_aligned(&N[t], &N[a], 0));
  CHECK(!sk__row_aligned(&N[m], &N[a], 0) && !sk__row_aligned(&N[m], &N[a], 1));
  CHECK(!sk__row_aligned(&N[c], &N[h], 0));
  CHECK(!sk__row_aligned(&N[r], &N[a], 0));
  CHECK(sk__row_aligned(&N[e], &N[a], 0));
  CHECK(sk__row_aligned(&N[mm], &N[a], 0) && !sk__row_aligned(&N[mm], &N[a], 1));
  CHECK(sk__row_aligned(&N[s], &N[a], 0));
  CHECK(sk__row_aligned(&N[col], &N[a], 0) && sk__row_aligned(&N[col], &N[a], 1));
  CHECK(sk__row_aligned(&N[cv], &N[xc], 0) && !sk__row_aligned(&N[cv], &N[wc], 1));
  CHECK(sk__row_aligned(&N[ct], &N[cv], 0) && !sk__row_aligned(&N[ct], &N[wc], 1));
  CHECK(N[cw].shape[0] == N[ct].shape[0] && N[cw].ndim == N[ct].ndim);
  CHECK(!sk__row_aligned(&N[cw], &N[ct], 0) && !sk__row_aligned(&N[cw], &N[cv], 1));
  sk_graph_free(g);
  /* A group-norm gradient op on two samples of 2-D x: its scale and shift
   * gb (2, C) has their shape, and is read whole; x, u and the shift d row
   * for row. */
  g = sk_graph_new();
  sk_node x2 = sk_input(g, "x", 2, (int64_t[]){2, 4}), u2 = sk_input(g, "u", 2, (int64_t[]){2, 4});
  sk_node gb = sk_input(g, "gb", 2, (int64_t[]){2, 4}), d2 = sk_input(g, "d", 2, (int64_t[]){2, 4});
  for (int k = 0; k < 2; k++) {
    const sk__op op = k ? SK_OP_GROUP_NORM_BACK : SK_OP_GROUP_NORM_SILU_D;
    sk_node y = sk__group_norm_op(g, op, x2, u2, gb, d2, 2, 1e-5f);
    CHECK_OK(sk_graph_status(g));
    if (y == SK_NONE) break;
    const sk__node *N2 = g->nodes;
    CHECK(sk__row_aligned(&N2[y], &N2[x2], 0) && sk__row_aligned(&N2[y], &N2[u2], 1));
    CHECK(!sk__row_aligned(&N2[y], &N2[gb], 2) && sk__row_aligned(&N2[y], &N2[d2], 3));
  }
  sk_graph_free(g);
}

/* The parallel, tiled and fused path differentiates as the small cases do:
 * a two-layer softplus network on 1,000 rows (split over the threads, its
 * elementwise ops in fused runs), first and second order (the gradient of
 * Σ c ⊙ ∂L/∂x, as sliced score matching takes it). The gradients on 3
 * threads, fused, equal those on 1 thread unfused bit for bit, and agree
 * with a central difference along a random direction. */
enum { PR = 1000, PD = 24, PH = 40 };
static float pw1[PD * PH], pw2[PH * PD];

/* L = Σ c ⊙ softplus(softplus(x W1) W2) and G = Σ v ⊙ ∂L/∂x; outputs L, G,
 * ∂L/∂x and ∂G/∂x, for x on `threads` threads with fusion on or off. */
static sk_graph *parallel_net(int threads, int fused, sk_node out[4], sk_node *x, sk_node *c,
                              sk_node *v) {
  sk__graph_fusion(fused);
  sk_set_num_threads(threads);
  sk_graph *g = sk_graph_new();
  *x = sk_input(g, "x", 2, (int64_t[]){PR, PD});
  *c = sk_input(g, "c", 2, (int64_t[]){PR, PD});
  *v = sk_input(g, "v", 2, (int64_t[]){PR, PD});
  sk_node w1 = sk_param(g, "w1", 2, (int64_t[]){PD, PH}, pw1);
  sk_node w2 = sk_param(g, "w2", 2, (int64_t[]){PH, PD}, pw2);
  sk_node y = sk_softplus(g, sk_matmul(g, sk_softplus(g, sk_matmul(g, *x, w1, 0, 0)), w2, 0, 0));
  sk_node L = sk_sum_all(g, sk_mul(g, y, *c)), dx, dgx;
  if (sk_grad(g, L, SK_NONE, 1, x, &dx) != SK_OK) return g;
  sk_node G = sk_sum_all(g, sk_mul(g, dx, *v));
  if (sk_grad(g, G, SK_NONE, 1, x, &dgx) != SK_OK) return g;
  out[0] = L, out[1] = G, out[2] = dx, out[3] = dgx;
  sk_graph_compile(g, 4, out);
  sk__graph_fusion(1);
  return g;
}

TEST(gradients_on_the_parallel_fused_path) {
  sk_rng r = sk_rng_make(17, 0);
  sk_rng_normal(&r, pw1, PD * PH);
  sk_rng_normal(&r, pw2, PH * PD);
  for (int i = 0; i < PD * PH; i++) pw1[i] *= 0.3f, pw2[i] *= 0.3f;
  float *x0 = malloc(PR * PD * sizeof *x0), *cv = malloc(2 * PR * PD * sizeof *cv);
  float *dir = malloc(PR * PD * sizeof *dir), *ref = malloc(2 * PR * PD * sizeof *ref);
  sk_rng_normal(&r, x0, PR * PD);
  sk_rng_normal(&r, cv, 2 * PR * PD);
  sk_rng_normal(&r, dir, PR * PD);
  for (int pass = 0; pass < 2; pass++) { /* 1 thread unfused, then 3 fused */
    sk_node out[4], x, c, v;
    sk_graph *g = parallel_net(pass ? 3 : 1, pass, out, &x, &c, &v);
    CHECK_OK(sk_graph_status(g));
    if (pass) CHECK(g->parallel && g->n_fused > 0); /* the path this test is for */
    memcpy(sk_graph_data(g, x), x0, PR * PD * sizeof *x0);
    memcpy(sk_graph_data(g, c), cv, PR * PD * sizeof *cv);
    memcpy(sk_graph_data(g, v), cv + PR * PD, PR * PD * sizeof *cv);
    CHECK_OK(sk_graph_run(g));
    if (pass == 0) {
      memcpy(ref, sk_graph_data(g, out[2]), PR * PD * sizeof *ref);
      memcpy(ref + PR * PD, sk_graph_data(g, out[3]), PR * PD * sizeof *ref);
    } else {
      CHECK(memcmp(ref, sk_graph_data(g, out[2]), PR * PD * sizeof *ref) == 0);
      CHECK(memcmp(ref + PR * PD, sk_graph_data(g, out[3]), PR * PD * sizeof *ref) == 0);
      /* Directional differences of L and G (sums of 24,000 terms: a step of
       * 1e-2 keeps float32 rounding well under the tolerance). */
      for (int k = 0; k < 2; k++) {
        const float eps = 1e-2f;
        double f[2], want = 0.0;
        for (int sgn = 0; sgn < 2; sgn++) {
          float *xd = sk_graph_data(g, x);
          for (int i = 0; i < PR * PD; i++) xd[i] = x0[i] + (sgn ? -eps : eps) * dir[i];
          CHECK_OK(sk_graph_run(g));
          f[sgn] = sk_graph_data(g, out[k])[0];
        }
        for (int i = 0; i < PR * PD; i++) want += (double)ref[k * PR * PD + i] * dir[i];
        const double fd = (f[0] - f[1]) / (2.0 * eps);
        if (fabs(fd - want) > 1e-2 * fabs(want)) fprintf(stderr, "order %d: fd %g analytic %g\n", k + 1, fd, want);
        CHECK(fabs(fd - want) <= 1e-2 * fabs(want));
      }
    }
    sk_graph_free(g);
  }
  sk_set_num_threads(0);
  free(x0);
  free(cv);
  free(dir);
  free(ref);
}

TEST(skip_gradients_are_convolutions) {
  sk_graph *g = sk_graph_new();
  sk_node a = sk_input(g, "a", 4, (int64_t[]){2, 1, 3, 4}), b = sk_input(g, "b", 4, (int64_t[]){2, 2, 3, 4});
  sk_node w = sk_input(g, "w", 4, (int64_t[]){3, 2, 3, 3}), d[2];
  sk_node y = b_convt_skip(g, (sk_node[]){a, b, w});
  CHECK_OK(sk_grad(g, sk_sum_all(g, sk_mul(g, y, y)), SK_NONE, 2, (sk_node[]){a, b}, d));
  for (int k = 0; k < 2; k++) CHECK(g->nodes[d[k]].op == SK_OP_CONV2D);
  sk_graph_free(g);
}

TEST(stop_grad_blocks_gradient) {
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 1, (int64_t[]){3});
  sk_node y = sk_sum_all(g, sk_mul(g, sk_stop_grad(g, x), x)); /* d/dx = stop(x) */
  sk_node dx;
  CHECK_OK(sk_grad(g, y, SK_NONE, 1, &x, &dx));
  CHECK_OK(sk_graph_compile(g, 1, &dx));
  float *p = sk_graph_data(g, x);
  p[0] = 1, p[1] = -2, p[2] = 3;
  CHECK_OK(sk_graph_run(g));
  for (int i = 0; i < 3; i++) CHECK_NEAR(sk_graph_data(g, dx)[i], p[i], 0);
  sk_graph_free(g);
}

TEST(unconnected_input_gets_zero_gradient) {
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 1, (int64_t[]){3}), z = sk_input(g, "z", 2, (int64_t[]){2, 2});
  sk_node y = sk_sum_all(g, sk_exp(g, x)), d[2];
  CHECK_OK(sk_grad(g, y, SK_NONE, 2, (sk_node[]){x, z}, d));
  CHECK_OK(sk_graph_compile(g, 1, &d[1]));
  CHECK_OK(sk_graph_run(g));
  for (int i = 0; i < 4; i++) CHECK(sk_graph_data(g, d[1])[i] == 0.0f);
  sk_graph_free(g);
}

TEST(shape_errors_are_sticky_and_named) {
  sk_graph *g = sk_graph_new();
  sk_node a = sk_input(g, "a", 2, (int64_t[]){3, 4}), b = sk_input(g, "b", 2, (int64_t[]){5, 6});
  sk_node c = sk_matmul(g, a, b, 0, 0);
  CHECK(c == SK_NONE);
  CHECK(sk_exp(g, c) == SK_NONE);
  CHECK(sk_graph_status(g) == SK_ERR_SHAPE);
  CHECK(sk_graph_compile(g, 1, &a) == SK_ERR_SHAPE);
  CHECK(strstr(sk_last_error(), "matmul") && strstr(sk_last_error(), "(3, 4)") &&
        strstr(sk_last_error(), "(5, 6)"));
  sk_graph_free(g);
  g = sk_graph_new();
  a = sk_input(g, "a", 2, (int64_t[]){3, 4});
  b = sk_input(g, "b", 1, (int64_t[]){3});
  CHECK(sk_add(g, a, b) == SK_NONE);
  CHECK(strstr(sk_graph_compile(g, 1, &a) == SK_ERR_SHAPE ? sk_last_error() : "", "broadcast"));
  sk_graph_free(g);
}

TEST(gather_rejects_bad_index_at_run) {
  sk_graph *g = sk_graph_new();
  sk_node a = sk_input(g, "a", 2, (int64_t[]){3, 2}), i = sk_input(g, "i", 1, (int64_t[]){2});
  sk_node y = sk_gather(g, a, i);
  CHECK_OK(sk_graph_compile(g, 1, &y));
  sk_graph_data(g, i)[0] = 1;
  sk_graph_data(g, i)[1] = 3;
  CHECK(sk_graph_run(g) == SK_ERR_INVALID);
  sk_graph_data(g, i)[1] = 0.5f;
  CHECK(sk_graph_run(g) == SK_ERR_INVALID);
  sk_graph_data(g, i)[1] = 2;
  CHECK_OK(sk_graph_run(g));
  sk_graph_free(g);
}

TEST_MAIN(TEST_ENTRY(finite_differences_every_case), TEST_ENTRY(every_op_is_covered),
          TEST_ENTRY(op_table_is_complete), TEST_ENTRY(row_alignment_is_declared),
          TEST_ENTRY(gradients_on_the_parallel_fused_path),
          TEST_ENTRY(skip_gradients_are_convolutions), TEST_ENTRY(stop_grad_blocks_gradient), TEST_ENTRY(unconnected_input_gets_zero_gradient),
          TEST_ENTRY(shape_errors_are_sticky_and_named), TEST_ENTRY(gather_rejects_bad_index_at_run))
