/* Image models against float64 reference values, to 1e-5 relative: the U-Net
 * (SK_MODEL_UNET at small widths) under the ncsn objective (denoising score
 * matching, a noise level per row, λ(σ) = σ²) at batch 4, its loss, score and
 * every parameter gradient; and a small convolutional network under sliced
 * score matching, whose parameter gradients are second derivatives through
 * conv2d, its transpose and its weight gradient.
 *
 * The values live in tests/golden/images/ (NumPy .npy; meta.json lists them).
 * They come from float64 PyTorch autograd on float32 inputs drawn from a fixed
 * seed, the U-Net being tools/load_model.py's twin. To remake them (needs NumPy
 * and PyTorch; the test itself needs neither):
 *
 *   /usr/bin/python3 tools/make_golden_images.py
 *
 * A missing, unreadable or wrongly sized file fails the test, naming it. */
#include "scorekit/io.h"
#include "scorekit/scorekit.h"
#include "test.h"

#define GOLDEN SK_SOURCE_DIR "/tests/golden/images/"
#define TOL 1e-5
#define BATCH 4

#include "golden.h"

/* Copies the golden file `name` (numel values) to dst. */
static int load_into(const char *name, float *dst, int64_t numel) {
  sk_tensor *t = load(name, numel);
  if (t) memcpy(dst, sk_tensor_cdata(t), (size_t)numel * sizeof(float));
  sk_tensor_free(t);
  return t != NULL;
}

/* The widths of tools/make_golden_images.py. */
static const sk_unet_config golden_unet = {{12, 24, 24, 24}, {1, 28, 28}, 32, 16.0f};

/* The golden U-Net's weights, from "unet.<name>". */
static int load_unet(sk_model *m) {
  for (int i = 0; i < sk_model_num_tensors(m); i++) {
    int64_t numel = 1;
    for (int k = 0; k < sk_model_tensor_ndim(m, i); k++) numel *= sk_model_tensor_shape(m, i)[k];
    char name[80];
    snprintf(name, sizeof name, "unet.%s", sk_model_tensor_name(m, i));
    if (!load_into(name, sk_model_params(m) + sk_model_tensor_offset(m, i), numel)) return 0;
  }
  return 1;
}

/* σ of each row: sigmas[levels[b]]. */
static int load_sigma(float *s, int levels_n) {
  sk_tensor *sig = load("unet_sigmas", levels_n), *lev = load("unet_levels", BATCH);
  int ok = sig && lev;
  for (int b = 0; ok && b < BATCH; b++) {
    float l = sk_tensor_cdata(lev)[b];
    if (!(l >= 0 && l < levels_n && l == (int)l)) {
      fprintf(stderr, "  golden file unet_levels.npy: element %d is %g, not a level\n", b, l);
      ok = 0;
    } else {
      s[b] = sk_tensor_cdata(sig)[(int)l];
    }
  }
  sk_tensor_free(sig);
  sk_tensor_free(lev);
  return ok;
}

TEST(unet_ncsn) {
  worst_rel = 0;
  sk_model *m = sk_model_new_unet(&golden_unet);
  sk_loss_graph lg;
  memset(&lg, 0, sizeof lg);
  if (!m || sk_loss_graph_new(m, SK_OBJ_NCSN, BATCH, 1, &lg) != SK_OK) {
    fprintf(stderr, "  setup failed: %s\n", sk_last_error());
    sk_model_free(m);
    CHECK(0);
  }
  const int64_t nd = BATCH * 784;
  int ok = load_unet(m) && load_into("unet_x", sk_graph_data(lg.g, lg.x), nd) &&
           load_into("unet_z", sk_graph_data(lg.g, lg.z), nd) &&
           load_sigma(sk_graph_data(lg.g, lg.sigma), 4);
  if (ok && sk_graph_run(lg.g) != SK_OK) {
    fprintf(stderr, "  run failed: %s\n", sk_last_error());
    ok = 0;
  }
  ok = ok && check_node(lg.g, lg.loss, "unet_loss") && check_node(lg.g, lg.score, "unet_score");
  int checked = 0;
  for (int i = 0; ok && i < sk_model_num_tensors(m); i++) {
    char name[80];
    if (!sk_model_tensor_trainable(m, i)) {
      /* The fixed frequencies have no gradient in PyTorch; here it is zero. */
      const float *gz = sk_graph_data(lg.g, lg.grads[i]);
      for (int64_t j = 0; ok && j < sk_node_numel(lg.g, lg.grads[i]); j++) ok = gz && gz[j] == 0;
      if (!ok) fprintf(stderr, "  %s: a fixed tensor with a gradient\n", sk_model_tensor_name(m, i));
      continue;
    }
    snprintf(name, sizeof name, "unet_grad.%s", sk_model_tensor_name(m, i));
    ok = check_node(lg.g, lg.grads[i], name);
    checked++;
  }
  printf("  unet_ncsn: loss, score and %d gradients; worst relative error %.3g\n", checked,
         worst_rel);
  sk_loss_graph_free(&lg);
  sk_model_free(m);
  CHECK(ok);
  CHECK_EQ_INT(checked, 39);
}

/* The conv net of tools/make_golden_images.py: 8×8 images, conv 3×3 (1→4,
 * stride 1, padding 1) + bias, softplus, conv 3×3 (4→4, stride 2, padding 1)
 * + bias, SiLU, transposed conv 3×3 (4→1, stride 2, padding 1, output
 * padding 1) + bias. */
enum { C1W, C1B, C2W, C2B, TW, TB, N_CONV };
static const char *const conv_names[N_CONV] = {"conv1.weight", "conv1.bias", "conv2.weight",
                                               "conv2.bias",   "tconv.weight", "tconv.bias"};
static const int64_t conv_shapes[N_CONV][4] = {{4, 1, 3, 3}, {4}, {4, 4, 3, 3}, {4}, {4, 1, 3, 3}, {1}};

static sk_node conv_net(sk_graph *g, const sk_node *p, sk_node x) {
  const sk_conv2d_opts o1 = {{1, 1}, {1, 1}, {1, 1}, {0, 0}};
  const sk_conv2d_opts o2 = {{2, 2}, {1, 1}, {1, 1}, {0, 0}};
  const sk_conv2d_opts ot = {{2, 2}, {1, 1}, {1, 1}, {1, 1}};
  sk_node h = sk_reshape(g, x, 4, (int64_t[]){BATCH, 1, 8, 8});
  h = sk_add(g, sk_conv2d(g, h, p[C1W], &o1), sk_reshape(g, p[C1B], 3, (int64_t[]){4, 1, 1}));
  h = sk_softplus(g, h);
  h = sk_add(g, sk_conv2d(g, h, p[C2W], &o2), sk_reshape(g, p[C2B], 3, (int64_t[]){4, 1, 1}));
  h = sk_silu(g, h);
  h = sk_add(g, sk_conv_transpose2d(g, h, p[TW], &ot),
             sk_reshape(g, p[TB], 3, (int64_t[]){1, 1, 1}));
  return sk_reshape(g, h, 2, (int64_t[]){BATCH, 64});
}

TEST(conv_ssm) {
  worst_rel = 0;
  float *w[N_CONV] = {0};
  sk_node p[N_CONV], grads[N_CONV];
  sk_graph *g = sk_graph_new();
  int ok = g != NULL;
  for (int i = 0; ok && i < N_CONV; i++) {
    const int nd = conv_shapes[i][1] ? 4 : 1;
    int64_t n = 1;
    for (int k = 0; k < nd; k++) n *= conv_shapes[i][k];
    char name[64];
    snprintf(name, sizeof name, "conv.%s", conv_names[i]);
    w[i] = malloc((size_t)n * sizeof(float));
    ok = w[i] && load_into(name, w[i], n);
    if (ok) p[i] = sk_param(g, conv_names[i], nd, conv_shapes[i], w[i]);
  }
  sk_node x = SK_NONE, v = SK_NONE, loss = SK_NONE;
  if (ok) {
    /* vᵀ∇ₓ(vᵀs) + ½(vᵀs)², mean over rows, as the ssm objective builds it. */
    x = sk_input(g, "x", 2, (int64_t[]){BATCH, 64});
    v = sk_input(g, "v", 2, (int64_t[]){BATCH, 64});
    sk_node u = sk_sum(g, sk_mul(g, v, conv_net(g, p, x)), 1, 1), gx;
    ok = sk_grad(g, sk_sum_all(g, u), SK_NONE, 1, &x, &gx) == SK_OK;
    if (ok) {
      sk_node vjv = sk_sum(g, sk_mul(g, v, gx), 1, 1);
      loss = sk_mean_all(g, sk_add(g, vjv, sk_affine(g, sk_square(g, u), 0.5f, 0.0f)));
      ok = sk_grad(g, loss, SK_NONE, N_CONV, p, grads) == SK_OK;
    }
    sk_node outs[1 + N_CONV] = {loss};
    memcpy(outs + 1, grads, sizeof grads);
    ok = ok && sk_graph_compile(g, 1 + N_CONV, outs) == SK_OK;
    if (!ok) fprintf(stderr, "  setup failed: %s\n", sk_last_error());
  }
  ok = ok && load_into("conv_x", sk_graph_data(g, x), BATCH * 64) &&
       load_into("conv_v", sk_graph_data(g, v), BATCH * 64);
  if (ok && sk_graph_run(g) != SK_OK) {
    fprintf(stderr, "  run failed: %s\n", sk_last_error());
    ok = 0;
  }
  ok = ok && check_node(g, loss, "conv_loss");
  for (int i = 0; ok && i < N_CONV; i++) {
    char name[64];
    snprintf(name, sizeof name, "conv_grad.%s", conv_names[i]);
    ok = check_node(g, grads[i], name);
  }
  printf("  conv_ssm: loss and %d gradients; worst relative error %.3g\n", N_CONV, worst_rel);
  sk_graph_free(g);
  for (int i = 0; i < N_CONV; i++) free(w[i]);
  CHECK(ok);
}

TEST_MAIN(TEST_ENTRY(unet_ncsn), TEST_ENTRY(conv_ssm))
