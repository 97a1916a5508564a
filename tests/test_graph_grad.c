/* Every primitive's gradient against central finite differences, contracted
 * with a random cotangent, and every smooth primitive's gradient of gradient
 * against finite differences of its analytic gradient. */
#include "graph/internal.h"
#include "scorekit/scorekit.h"
#include "test.h"

#define MAX_IN 2

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

#define S2(a, b) {a, b}
#define S3(a, b, c) {a, b, c}
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
          TEST_ENTRY(stop_grad_blocks_gradient), TEST_ENTRY(unconnected_input_gets_zero_gradient),
          TEST_ENTRY(shape_errors_are_sticky_and_named), TEST_ENTRY(gather_rejects_bad_index_at_run))
