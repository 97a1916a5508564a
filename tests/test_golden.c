/* Every objective's loss and parameter gradients, the score and the trace of
 * its Jacobian, against float64 reference values, to 1e-5 relative. This
 * exercises the double backward through matmul + softplus end to end.
 *
 * The values live in tests/golden/ (NumPy .npy; meta.json lists them). They
 * come from float64 PyTorch autograd on float32 inputs drawn from a fixed
 * seed; the formulas are those of docs/MATH.md. To remake them (needs NumPy
 * and PyTorch, e.g. Debian's python3-numpy and python3-torch; the test itself
 * needs neither):
 *
 *   /usr/bin/python3 tools/make_golden.py
 *
 * A missing, unreadable or wrongly sized file fails the test, naming it. */
#include "score/internal.h" /* sk__vesde_sigma */
#include "scorekit/io.h"
#include "scorekit/scorekit.h"
#include "test.h"

#define GOLDEN SK_SOURCE_DIR "/tests/golden/"
#define TOL 1e-5
#include "golden.h"

/* Copies the golden weights "<prefix>.<i>.weight|bias" into the model. */
static int load_weights(sk_model *m) {
  for (int i = 0; i < sk_model_num_tensors(m); i++) {
    int64_t numel = 1;
    for (int k = 0; k < sk_model_tensor_ndim(m, i); k++) numel *= sk_model_tensor_shape(m, i)[k];
    sk_tensor *t = load(sk_model_tensor_name(m, i), numel);
    if (!t) return 0;
    memcpy(sk_model_params(m) + sk_model_tensor_offset(m, i), sk_tensor_cdata(t),
           (size_t)numel * sizeof(float));
    sk_tensor_free(t);
  }
  return 1;
}

/* Copies the (8, 2) golden input `name` into graph input `n`. */
static int load_input(sk_graph *g, sk_node n, const char *name) {
  sk_tensor *t = load(name, 16);
  if (t) memcpy(sk_graph_data(g, n), sk_tensor_cdata(t), 16 * sizeof(float));
  sk_tensor_free(t);
  return t != NULL;
}

/* σ of each row: 0.1 for dsm, sigmas[levels[b]] for ncsn, the continuous
 * vesde_sigma[b] for vesde. */
static int load_sigma(sk_graph *g, sk_node n, sk_objective obj) {
  float *s = sk_graph_data(g, n);
  if (obj == SK_OBJ_DSM) {
    for (int b = 0; b < 8; b++) s[b] = 0.1f;
    return 1;
  }
  if (obj == SK_OBJ_VESDE) {
    sk_tensor *v = load("vesde_sigma", 8);
    if (v) memcpy(s, sk_tensor_cdata(v), 8 * sizeof(float));
    sk_tensor_free(v);
    return v != NULL;
  }
  sk_tensor *sig = load("sigmas", 10), *lev = load("levels", 8);
  int ok = sig && lev;
  for (int b = 0; ok && b < 8; b++) {
    float l = sk_tensor_cdata(lev)[b];
    if (!(l >= 0 && l < 10 && l == (int)l)) {
      fprintf(stderr, "  golden file levels.npy: element %d is %g, not a level 0..9\n", b, l);
      ok = 0;
    } else {
      s[b] = sk_tensor_cdata(sig)[(int)l];
    }
  }
  sk_tensor_free(sig);
  sk_tensor_free(lev);
  return ok;
}

static int check_objective(sk_objective obj, const char *tag) {
  const int nc = obj == SK_OBJ_NCSN || obj == SK_OBJ_VESDE;
  sk_model_config cfg = {nc ? SK_MODEL_NCMLP : SK_MODEL_MLP, 2, 16, nc ? 3 : 2, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&cfg);
  sk_loss_graph lg;
  memset(&lg, 0, sizeof lg);
  if (!m || sk_loss_graph_new(m, obj, 8, 1, &lg) != SK_OK) {
    fprintf(stderr, "  setup failed: %s\n", sk_last_error());
    sk_model_free(m);
    return 0;
  }
  int ok = load_weights(m) && load_input(lg.g, lg.x, "x") &&
           (lg.z == SK_NONE || load_input(lg.g, lg.z, "z")) &&
           (lg.v == SK_NONE || load_input(lg.g, lg.v, "v")) &&
           (lg.sigma == SK_NONE || load_sigma(lg.g, lg.sigma, obj));
  if (ok && sk_graph_run(lg.g) != SK_OK) {
    fprintf(stderr, "  run failed: %s\n", sk_last_error());
    ok = 0;
  }
  char name[64];
  snprintf(name, sizeof name, "loss_%s", tag);
  ok = ok && check_node(lg.g, lg.loss, name);
  for (int i = 0; ok && i < sk_model_num_tensors(m); i++) {
    snprintf(name, sizeof name, "grad_%s.%s", tag, sk_model_tensor_name(m, i));
    ok = check_node(lg.g, lg.grads[i], name);
  }
  if (ok && obj == SK_OBJ_ESM) ok = check_node(lg.g, lg.score, "score");
  sk_loss_graph_free(&lg);
  sk_model_free(m);
  return ok;
}

#define OBJECTIVE_TEST(name, obj)                                       \
  TEST(name) {                                                          \
    worst_rel = 0;                                                      \
    int ok_ = check_objective(obj, #name);                              \
    printf("  %s: worst relative error %.3g\n", #name, worst_rel);      \
    CHECK(ok_);                                                         \
  }

OBJECTIVE_TEST(esm, SK_OBJ_ESM)
OBJECTIVE_TEST(dsm, SK_OBJ_DSM)
OBJECTIVE_TEST(ssm, SK_OBJ_SSM)
OBJECTIVE_TEST(ssm_vr, SK_OBJ_SSM_VR)
OBJECTIVE_TEST(ncsn, SK_OBJ_NCSN)
OBJECTIVE_TEST(vesde, SK_OBJ_VESDE)

/* vesde's σ from its uniform draw, σ_min (σ_max/σ_min)^u between the
 * ladder's ends, against the reference's float64 value rounded to float32:
 * at most one float32 step apart, and inside [σ_min, σ_max]. */
TEST(vesde_sigma_from_u) {
  sk_tensor *u = load("vesde_u", 8), *want = load("vesde_sigma", 8), *lad = load("sigmas", 10);
  CHECK(u && want && lad);
  const float smax = sk_tensor_cdata(lad)[0], smin = sk_tensor_cdata(lad)[9];
  for (int b = 0; b < 8; b++) {
    const float got = sk__vesde_sigma(sk_tensor_cdata(u)[b], smax, smin);
    const float w = sk_tensor_cdata(want)[b];
    CHECK(fabsf(got - w) <= 1.2e-7f * w);
    CHECK(got >= smin && got <= smax);
  }
  /* The ends: u = 0 is σ_min, and u just below 1 stays below σ_max. */
  CHECK(sk__vesde_sigma(0.0f, smax, smin) == smin);
  CHECK(sk__vesde_sigma(1.0f - 0x1p-24f, smax, smin) < smax);
  sk_tensor_free(u);
  sk_tensor_free(want);
  sk_tensor_free(lad);
}

/* The trace of ∇ₓs, built as the esm objective builds it, per sample. */
TEST(trace) {
  worst_rel = 0;
  sk_model_config cfg = {SK_MODEL_MLP, 2, 16, 2, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&cfg);
  CHECK(m);
  sk_graph *g = sk_graph_new();
  sk_node p[6];
  int ok = g && load_weights(m) && sk_model_bind(m, g, NULL, p) == SK_OK;
  sk_node x = SK_NONE, tr = SK_NONE;
  if (ok) {
    x = sk_input(g, "x", 2, (int64_t[]){8, 2});
    sk_node s = sk_model_apply(m, g, p, x, SK_NONE), g0, g1;
    ok = sk_grad(g, sk_sum_all(g, sk_slice(g, s, 1, 0, 1)), SK_NONE, 1, &x, &g0) == SK_OK &&
         sk_grad(g, sk_sum_all(g, sk_slice(g, s, 1, 1, 1)), SK_NONE, 1, &x, &g1) == SK_OK;
    if (ok) {
      tr = sk_reshape(g, sk_add(g, sk_slice(g, g0, 1, 0, 1), sk_slice(g, g1, 1, 1, 1)), 1,
                      (int64_t[]){8});
      ok = sk_graph_compile(g, 1, &tr) == SK_OK;
    }
    if (!ok) fprintf(stderr, "  setup failed: %s\n", sk_last_error());
  }
  ok = ok && load_input(g, x, "x");
  if (ok && sk_graph_run(g) != SK_OK) {
    fprintf(stderr, "  run failed: %s\n", sk_last_error());
    ok = 0;
  }
  ok = ok && check_node(g, tr, "trace");
  printf("  trace: worst relative error %.3g\n", worst_rel);
  sk_graph_free(g);
  sk_model_free(m);
  CHECK(ok);
}

TEST_MAIN(TEST_ENTRY(esm), TEST_ENTRY(dsm), TEST_ENTRY(ssm), TEST_ENTRY(ssm_vr), TEST_ENTRY(ncsn),
          TEST_ENTRY(vesde), TEST_ENTRY(vesde_sigma_from_u), TEST_ENTRY(trace))
