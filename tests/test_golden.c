/* Every objective's loss and parameter gradients against the float64
 * reference values in shared/ref (see its README), to 1e-5 relative. This
 * exercises the double backward through matmul + softplus end to end. */
#include "scorekit/io.h"
#include "scorekit/scorekit.h"
#include "test.h"

#define REF SK_SHARED_DIR "/ref/"

static sk_tensor *load(const char *name) {
  char path[512];
  snprintf(path, sizeof path, REF "%s.npy", name);
  sk_tensor *t = NULL;
  if (sk_npy_load(path, &t) != SK_OK) fprintf(stderr, "cannot load %s: %s\n", path, sk_last_error());
  return t;
}

/* max |got − want| / max |want| over a tensor (llm.c check_tensor in spirit). */
static int close_rel(const char *what, const float *got, const sk_tensor *want, double tol) {
  const float *w = sk_tensor_cdata(want);
  int64_t n = sk_tensor_numel(want), worst = 0;
  double maxdiff = 0, scale = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - w[i]);
    if (d > maxdiff) maxdiff = d, worst = i;
    if (fabs(w[i]) > scale) scale = fabs(w[i]);
  }
  double rel = maxdiff / (scale > 0 ? scale : 1);
  if (rel > tol) {
    fprintf(stderr, "  %s: relative error %.3g > %.1g (element %lld: %.9g vs %.9g)\n", what, rel,
            tol, (long long)worst, got[worst], w[worst]);
    for (int64_t i = 0; i < n && i < 4; i++) fprintf(stderr, "    [%lld] %.9g vs %.9g\n", (long long)i, got[i], w[i]);
    return 0;
  }
  return 1;
}

/* Copies the reference weights "<prefix>.<i>.weight|bias" into the model. */
static int load_weights(sk_model *m) {
  for (int i = 0; i < sk_model_num_tensors(m); i++) {
    sk_tensor *t = load(sk_model_tensor_name(m, i));
    if (!t) return 0;
    memcpy(sk_model_params(m) + sk_model_tensor_offset(m, i), sk_tensor_cdata(t),
           (size_t)sk_tensor_numel(t) * sizeof(float));
    sk_tensor_free(t);
  }
  return 1;
}

static int check_objective(sk_objective obj, const char *tag) {
  const int nc = obj == SK_OBJ_NCSN;
  sk_model_config cfg = {nc ? SK_MODEL_NCMLP : SK_MODEL_MLP, 2, 16, nc ? 3 : 2, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&cfg);
  sk_loss_graph lg;
  int ok = m && load_weights(m) && sk_loss_graph_new(m, obj, 8, 1, &lg) == SK_OK;
  if (!ok) {
    fprintf(stderr, "  setup failed: %s\n", sk_last_error());
    sk_model_free(m);
    return 0;
  }
  sk_tensor *x = load("x"), *z = load("z"), *v = load("v"), *sig = load("sigmas"),
            *lev = load("levels"), *meta_loss;
  memcpy(sk_graph_data(lg.g, lg.x), sk_tensor_cdata(x), 16 * sizeof(float));
  if (lg.z != SK_NONE) memcpy(sk_graph_data(lg.g, lg.z), sk_tensor_cdata(z), 16 * sizeof(float));
  if (lg.v != SK_NONE) memcpy(sk_graph_data(lg.g, lg.v), sk_tensor_cdata(v), 16 * sizeof(float));
  if (lg.sigma != SK_NONE) {
    float *s = sk_graph_data(lg.g, lg.sigma);
    for (int b = 0; b < 8; b++)
      s[b] = obj == SK_OBJ_DSM ? 0.1f : sk_tensor_cdata(sig)[(int)sk_tensor_cdata(lev)[b]];
  }
  ok = sk_graph_run(lg.g) == SK_OK;
  char name[64];
  snprintf(name, sizeof name, "loss_%s", tag);
  meta_loss = load(name);
  ok = ok && meta_loss && close_rel(name, sk_graph_data(lg.g, lg.loss), meta_loss, 1e-5);
  for (int i = 0; ok && i < sk_model_num_tensors(m); i++) {
    snprintf(name, sizeof name, "grad_%s.%s", tag, sk_model_tensor_name(m, i));
    sk_tensor *gr = load(name);
    ok = gr && close_rel(name, sk_graph_data(lg.g, lg.grads[i]), gr, 1e-5);
    sk_tensor_free(gr);
  }
  if (ok && obj == SK_OBJ_ESM) {
    sk_tensor *score = load("score");
    ok = score && close_rel("score", sk_graph_data(lg.g, lg.score), score, 1e-5);
    sk_tensor_free(score);
  }
  sk_tensor_free(x);
  sk_tensor_free(z);
  sk_tensor_free(v);
  sk_tensor_free(sig);
  sk_tensor_free(lev);
  sk_tensor_free(meta_loss);
  sk_loss_graph_free(&lg);
  sk_model_free(m);
  return ok;
}

TEST(esm) { CHECK(check_objective(SK_OBJ_ESM, "esm")); }
TEST(dsm) { CHECK(check_objective(SK_OBJ_DSM, "dsm")); }
TEST(ssm) { CHECK(check_objective(SK_OBJ_SSM, "ssm")); }
TEST(ssm_vr) { CHECK(check_objective(SK_OBJ_SSM_VR, "ssm_vr")); }
TEST(ncsn) { CHECK(check_objective(SK_OBJ_NCSN, "ncsn")); }

/* The trace of ∇ₓs, built as the esm objective builds it, per sample. */
TEST(trace) {
  sk_model_config cfg = {SK_MODEL_MLP, 2, 16, 2, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&cfg);
  CHECK(load_weights(m));
  sk_graph *g = sk_graph_new();
  sk_node p[6];
  CHECK_OK(sk_model_bind(m, g, NULL, p));
  sk_node x = sk_input(g, "x", 2, (int64_t[]){8, 2});
  sk_node s = sk_model_apply(m, g, p, x, SK_NONE), g0, g1;
  CHECK_OK(sk_grad(g, sk_sum_all(g, sk_slice(g, s, 1, 0, 1)), SK_NONE, 1, &x, &g0));
  CHECK_OK(sk_grad(g, sk_sum_all(g, sk_slice(g, s, 1, 1, 1)), SK_NONE, 1, &x, &g1));
  sk_node tr = sk_reshape(g, sk_add(g, sk_slice(g, g0, 1, 0, 1), sk_slice(g, g1, 1, 1, 1)), 1,
                          (int64_t[]){8});
  CHECK_OK(sk_graph_compile(g, 1, &tr));
  sk_tensor *xt = load("x"), *want = load("trace");
  memcpy(sk_graph_data(g, x), sk_tensor_cdata(xt), 16 * sizeof(float));
  CHECK_OK(sk_graph_run(g));
  int ok = close_rel("trace", sk_graph_data(g, tr), want, 1e-5);
  sk_tensor_free(xt);
  sk_tensor_free(want);
  sk_graph_free(g);
  sk_model_free(m);
  CHECK(ok);
}

TEST_MAIN(TEST_ENTRY(esm), TEST_ENTRY(dsm), TEST_ENTRY(ssm), TEST_ENTRY(ssm_vr), TEST_ENTRY(ncsn),
          TEST_ENTRY(trace))
