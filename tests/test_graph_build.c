/* Building graphs from arguments a careless caller gives: shapes whose
 * element count overflows, refusals whose message would overflow, NULL
 * graphs and arrays, a bad eps. Each is an error status or SK_NONE with a
 * one-line message naming the op and what is wrong, recorded on the graph
 * (sticky) and as the thread's last error when the call fails; never a
 * crash, never a signed overflow (the sanitizer build halts on one). */
#include <stdint.h>

#include "scorekit/graph.h"
#include "test.h"

/* n is SK_NONE, the graph's sticky status is st, and the thread's last error,
 * already set by the failing call, holds each of the words given. */
static int refused(sk_graph *g, sk_node n, sk_status st, const char *w1, const char *w2) {
  const char *msg = sk_last_error();
  const int ok = n == SK_NONE && sk_graph_status(g) == st && strstr(msg, w1) &&
                 (!w2 || strstr(msg, w2));
  if (!ok)
    fprintf(stderr, "  node %d, status %s, message: %s\n", n, sk_status_str(sk_graph_status(g)),
            msg);
  sk_graph_free(g);
  sk_set_error(SK_OK, "%s", "");
  return ok;
}

TEST(element_counts_that_overflow_are_shape_errors) {
  sk_graph *g = sk_graph_new();
  CHECK(refused(g, sk_input(g, "x", 2, (int64_t[]){INT64_MAX / 2, 4}), SK_ERR_SHAPE, "input",
                "(4611686018427387903, 4) is too large"));
  g = sk_graph_new();
  CHECK(refused(g, sk_input(g, "x", 4, (int64_t[]){1 << 20, 1 << 20, 1 << 20, 1 << 20}),
                SK_ERR_SHAPE, "input", "(1048576, 1048576, 1048576, 1048576) is too large"));
  g = sk_graph_new();
  CHECK(refused(g, sk_fill(g, 1.0f, 2, (int64_t[]){INT64_MAX, 2}), SK_ERR_SHAPE, "const",
                "(9223372036854775807, 2) is too large"));
  g = sk_graph_new(); /* a 0 elsewhere does not make the other dimensions' product fit */
  CHECK(refused(g, sk_input(g, "x", 3, (int64_t[]){0, INT64_MAX, 2}), SK_ERR_SHAPE, "input",
                "too large"));

  g = sk_graph_new();
  sk_node x = sk_input(g, "x", 2, (int64_t[]){2, 3});
  CHECK(refused(g, sk_reshape(g, x, 2, (int64_t[]){INT64_MAX, 4}), SK_ERR_SHAPE, "reshape",
                "(9223372036854775807, 4) is too large"));
  g = sk_graph_new();
  x = sk_input(g, "x", 2, (int64_t[]){1, 3});
  CHECK(refused(g, sk_expand(g, x, 2, (int64_t[]){INT64_MAX, 3}), SK_ERR_SHAPE, "expand",
                "too large"));
  g = sk_graph_new(); /* each input fits, their concatenation does not */
  x = sk_input(g, "x", 2, (int64_t[]){1 << 30, 1 << 29});
  CHECK(refused(g, sk_concat(g, x, x, 0), SK_ERR_SHAPE, "concat",
                "(2147483648, 536870912) is too large"));

  /* Sizes derived from parameters: a huge stride, a huge factor. */
  g = sk_graph_new();
  x = sk_input(g, "x", 4, (int64_t[]){1, 2, 3, 3});
  sk_node w = sk_input(g, "w", 4, (int64_t[]){2, 2, 3, 3});
  const sk_conv2d_opts huge = {.stride = {INT32_MAX, INT32_MAX}};
  CHECK(refused(g, sk_conv_transpose2d(g, x, w, &huge), SK_ERR_SHAPE, "conv_transpose2d",
                "too large"));
  g = sk_graph_new(); /* (H − 1)·stride alone overflows */
  x = sk_input(g, "x", 4, (int64_t[]){1, 1, 1 << 30, 1});
  w = sk_input(g, "w", 4, (int64_t[]){1, 1, 1, 1});
  CHECK(refused(g, sk_conv_transpose2d(g, x, w, &(sk_conv2d_opts){.stride = {INT32_MAX, 1}}),
                SK_ERR_SHAPE, "conv_transpose2d", "stride (2147483647, 1)"));
  g = sk_graph_new();
  x = sk_input(g, "x", 4, (int64_t[]){1, 1, 1, 1});
  CHECK(refused(g, sk_upsample_nearest2d(g, x, INT32_MAX), SK_ERR_SHAPE, "upsample_nearest2d",
                "factor 2147483647"));
  g = sk_graph_new();
  x = sk_input(g, "x", 4, (int64_t[]){0, 1, 1, 1 << 30});
  CHECK(refused(g, sk_upsample_nearest2d(g, x, INT32_MAX), SK_ERR_SHAPE, "upsample_nearest2d",
                "(0, 1, 1, 1073741824)"));

  /* The largest shapes that fit are still taken. */
  g = sk_graph_new();
  x = sk_input(g, "x", 2, (int64_t[]){INT64_MAX / 8, 1});
  CHECK(x != SK_NONE && sk_node_numel(g, x) == INT64_MAX / 8);
  sk_graph_free(g);

  /* sk_tensor_new has the same bound, and names the shape, not a dimension. */
  sk_tensor *t = sk_tensor_new(2, (int64_t[]){INT64_MAX, 4});
  CHECK(!t && strstr(sk_last_error(), "(9223372036854775807, 4) is too large"));
  CHECK(!sk_tensor_new(2, (int64_t[]){0, INT64_MAX}));
  CHECK(strstr(sk_last_error(), "too large"));
  t = sk_tensor_new(2, (int64_t[]){0, 3});
  CHECK(t && sk_tensor_numel(t) == 0);
  sk_tensor_free(t);
}

TEST(slice_refusal_names_start_and_length) {
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 2, (int64_t[]){2, 3});
  CHECK(refused(g, sk_slice(g, x, 1, INT64_MAX, INT64_MAX), SK_ERR_SHAPE,
                "start 9223372036854775807", "length 9223372036854775807"));
  g = sk_graph_new();
  x = sk_input(g, "x", 2, (int64_t[]){2, 3});
  CHECK(refused(g, sk_slice(g, x, 1, 2, 2), SK_ERR_SHAPE, "slice", "[2, 4) of axis 1"));
}

TEST(group_norm_refuses_a_bad_eps) {
  const float bad[] = {NAN, -1.0f, 0.0f, INFINITY};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    sk_graph *g = sk_graph_new();
    sk_node x = sk_input(g, "x", 4, (int64_t[]){2, 4, 3, 3});
    CHECK(refused(g, sk_group_norm(g, x, 2, SK_NONE, SK_NONE, bad[k]), SK_ERR_SHAPE, "group_norm",
                  "eps"));
  }
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 4, (int64_t[]){2, 4, 3, 3});
  CHECK(sk_group_norm(g, x, 2, SK_NONE, SK_NONE, 1e-30f) != SK_NONE);
  CHECK_OK(sk_graph_status(g));
  sk_graph_free(g);
}

/* The failing builder call sets the thread's last error; later calls on the
 * failed graph leave it, and compile reports the same first error. */
TEST(build_error_is_the_last_error_at_once) {
  sk_set_error(SK_OK, "%s", "");
  sk_graph *g = sk_graph_new();
  sk_node a = sk_input(g, "a", 2, (int64_t[]){3, 4}), b = sk_input(g, "b", 2, (int64_t[]){5, 6});
  CHECK(sk_matmul(g, a, b, 0, 0) == SK_NONE);
  CHECK(strstr(sk_last_error(), "matmul") && strstr(sk_last_error(), "(3, 4)"));
  sk_set_error(SK_OK, "%s", "");
  CHECK(sk_exp(g, a) == SK_NONE);
  CHECK_EQ_INT(strlen(sk_last_error()), 0);
  CHECK(sk_graph_compile(g, 1, &a) == SK_ERR_SHAPE);
  CHECK(strstr(sk_last_error(), "graph build failed: matmul"));
  sk_graph_free(g);
}

static int says(const char *w1, const char *w2) {
  const char *msg = sk_last_error();
  const int ok = strstr(msg, w1) && (!w2 || strstr(msg, w2));
  if (!ok) fprintf(stderr, "  message: %s\n", msg);
  sk_set_error(SK_OK, "%s", "");
  return ok;
}

TEST(null_graph_is_refused) {
  const int64_t s2[2] = {2, 3};
  sk_set_error(SK_OK, "%s", "");
  CHECK(sk_graph_status(NULL) == SK_ERR_INVALID && says("sk_graph_status", "NULL graph"));
  CHECK(sk_graph_num_nodes(NULL) == 0 && says("sk_graph_num_nodes", "NULL graph"));
  CHECK(sk_input(NULL, "x", 2, s2) == SK_NONE && says("input", "NULL graph"));
  CHECK(sk_param(NULL, "w", 2, s2, (float[6]){0}) == SK_NONE && says("param", "NULL graph"));
  CHECK(sk_fill(NULL, 1.0f, 2, s2) == SK_NONE && says("NULL graph", NULL));
  CHECK(sk_scalar(NULL, 1.0f) == SK_NONE && says("sk_scalar", "NULL graph"));
  CHECK(sk_add(NULL, 0, 0) == SK_NONE && says("add", "NULL graph"));
  CHECK(sk_matmul(NULL, 0, 0, 0, 0) == SK_NONE && says("matmul", "NULL graph"));
  CHECK(sk_affine(NULL, 0, 1, 0) == SK_NONE && says("affine", "NULL graph"));
  CHECK(sk_exp(NULL, 0) == SK_NONE && says("exp", "NULL graph"));
  CHECK(sk_reshape(NULL, 0, 2, s2) == SK_NONE && says("reshape", "NULL graph"));
  CHECK(sk_sum_to(NULL, 0, 2, s2) == SK_NONE && says("sum_to", "NULL graph"));
  CHECK(sk_expand(NULL, 0, 2, s2) == SK_NONE && says("expand", "NULL graph"));
  CHECK(sk_permute(NULL, 0, (int[]){1, 0}) == SK_NONE && says("permute", "NULL graph"));
  CHECK(sk_concat(NULL, 0, 0, 0) == SK_NONE && says("concat", "NULL graph"));
  CHECK(sk_slice(NULL, 0, 0, 0, 1) == SK_NONE && says("slice", "NULL graph"));
  CHECK(sk_pad(NULL, 0, 0, 1, 1) == SK_NONE && says("pad", "NULL graph"));
  CHECK(sk_gather(NULL, 0, 1) == SK_NONE && says("gather", "NULL graph"));
  CHECK(sk_scatter_add(NULL, 0, 1, 2) == SK_NONE && says("scatter_add", "NULL graph"));
  CHECK(sk_conv2d(NULL, 0, 1, NULL) == SK_NONE && says("conv2d", "NULL graph"));
  CHECK(sk_square(NULL, 0) == SK_NONE && says("sk_square", "NULL graph"));
  CHECK(sk_sum(NULL, 0, 0, 0) == SK_NONE && says("sk_sum", "NULL graph"));
  CHECK(sk_mean_all(NULL, 0) == SK_NONE && says("sk_mean_all", "NULL graph"));
  CHECK(sk_transpose(NULL, 0) == SK_NONE && says("sk_transpose", "NULL graph"));
  CHECK(sk_silu(NULL, 0) == SK_NONE && says("sk_silu", "NULL graph"));
  CHECK(sk_elu(NULL, 0) == SK_NONE && says("sk_elu", "NULL graph"));
  CHECK(sk_log_softmax(NULL, 0) == SK_NONE && says("sk_log_softmax", "NULL graph"));
  CHECK(sk_group_norm(NULL, 0, 1, SK_NONE, SK_NONE, 1e-5f) == SK_NONE &&
        says("sk_group_norm", "NULL graph"));
  CHECK(sk_group_norm_silu(NULL, 0, 1, 1, 2, 1e-5f) == SK_NONE &&
        says("sk_group_norm_silu", "NULL graph"));
  CHECK(sk_upsample_nearest2d(NULL, 0, 2) == SK_NONE && says("sk_upsample_nearest2d", "NULL graph"));
  CHECK(sk_avg_pool2d(NULL, 0, 2) == SK_NONE && says("sk_avg_pool2d", "NULL graph"));
  CHECK(sk_node_ndim(NULL, 0) == 0 && says("sk_node_ndim", "NULL graph"));
  CHECK(sk_node_shape(NULL, 0) == NULL && says("sk_node_shape", "NULL graph"));
  CHECK(sk_node_numel(NULL, 0) == 0 && says("sk_node_numel", "NULL graph"));
  sk_node d;
  CHECK(sk_grad(NULL, 0, SK_NONE, 1, &d, &d) == SK_ERR_INVALID && says("sk_grad", "NULL graph"));
  CHECK(sk_graph_compile(NULL, 1, &d) == SK_ERR_INVALID && says("compile", "NULL graph"));
  CHECK(sk_graph_run(NULL) == SK_ERR_INVALID && says("run", "NULL graph"));
  CHECK(sk_graph_data(NULL, 0) == NULL && says("sk_graph_data", "NULL graph"));
  CHECK(sk_graph_bind(NULL, 0, (float[1]){0}) == SK_ERR_INVALID && says("bind", "NULL graph"));
  CHECK(sk_graph_arena_bytes(NULL) == 0 && says("sk_graph_arena_bytes", "NULL graph"));
  sk_graph_set_arena_limit(NULL, 1);
  CHECK(says("sk_graph_set_arena_limit", "NULL graph"));
  sk_graph_set_lean(NULL, 1);
  CHECK(says("sk_graph_set_lean", "NULL graph"));
  CHECK(sk_graph_profile(NULL, 1, stderr) == SK_ERR_INVALID && says("profile", "NULL graph"));
}

TEST(null_arrays_are_refused) {
  sk_graph *g = sk_graph_new();
  CHECK(refused(g, sk_input(g, "x", 2, NULL), SK_ERR_INVALID, "input", "NULL shape for rank 2"));
  g = sk_graph_new();
  CHECK(refused(g, sk_fill(g, 1.0f, 1, NULL), SK_ERR_INVALID, "const", "NULL shape"));
  g = sk_graph_new();
  CHECK(refused(g, sk_reshape(g, sk_input(g, "x", 2, (int64_t[]){2, 3}), 2, NULL), SK_ERR_INVALID,
                "reshape", "NULL shape"));
  g = sk_graph_new();
  CHECK(refused(g, sk_sum_to(g, sk_input(g, "x", 2, (int64_t[]){2, 3}), 1, NULL), SK_ERR_INVALID,
                "sum_to", "NULL shape"));
  g = sk_graph_new();
  CHECK(refused(g, sk_expand(g, sk_input(g, "x", 2, (int64_t[]){2, 3}), 2, NULL), SK_ERR_INVALID,
                "expand", "NULL shape"));
  g = sk_graph_new();
  CHECK(refused(g, sk_permute(g, sk_input(g, "x", 2, (int64_t[]){2, 3}), NULL), SK_ERR_INVALID,
                "permute", "NULL axes"));

  g = sk_graph_new(); /* rank 0 needs no shape */
  sk_node s = sk_input(g, "s", 0, NULL), x = sk_input(g, "x", 2, (int64_t[]){2, 3});
  CHECK(s != SK_NONE && sk_sum_to(g, x, 0, NULL) != SK_NONE);
  sk_node y = sk_sum_all(g, sk_mul(g, x, s)), d[2];
  CHECK(sk_grad(g, y, SK_NONE, 2, NULL, d) == SK_ERR_INVALID && says("sk_grad", "NULL wrt"));
  CHECK(sk_grad(g, y, SK_NONE, 2, (sk_node[]){x, s}, NULL) == SK_ERR_INVALID &&
        says("sk_grad", "NULL grads"));
  CHECK_OK(sk_grad(g, y, SK_NONE, 0, NULL, NULL));
  CHECK(sk_graph_compile(g, 1, NULL) == SK_ERR_INVALID && says("compile", "NULL outputs"));
  CHECK_OK(sk_graph_status(g));
  CHECK_OK(sk_graph_compile(g, 1, &y));
  CHECK(sk_graph_profile(g, 1, NULL) == SK_ERR_INVALID && says("profile", "NULL output"));
  sk_graph_free(g);

  CHECK(sk_tensor_new(2, NULL) == NULL && says("sk_tensor_new", "NULL shape"));
  sk_tensor *t = sk_tensor_new(0, NULL);
  CHECK(t && sk_tensor_numel(t) == 1);
  sk_tensor_free(t);
  CHECK(sk_tensor_clone(NULL) == NULL && says("sk_tensor_clone", "NULL tensor"));
  CHECK(sk_tensor_ndim(NULL) == 0 && says("sk_tensor_ndim", "NULL tensor"));
  CHECK(sk_tensor_shape(NULL) == NULL && says("sk_tensor_shape", "NULL tensor"));
  CHECK(sk_tensor_numel(NULL) == 0 && says("sk_tensor_numel", "NULL tensor"));
  CHECK(sk_tensor_data(NULL) == NULL && says("sk_tensor_data", "NULL tensor"));
  CHECK(sk_tensor_cdata(NULL) == NULL && says("sk_tensor_cdata", "NULL tensor"));
}

TEST_MAIN(TEST_ENTRY(element_counts_that_overflow_are_shape_errors),
          TEST_ENTRY(slice_refusal_names_start_and_length), TEST_ENTRY(group_norm_refuses_a_bad_eps),
          TEST_ENTRY(build_error_is_the_last_error_at_once), TEST_ENTRY(null_graph_is_refused),
          TEST_ENTRY(null_arrays_are_refused))
