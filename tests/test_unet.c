/* The U-Net score model (SK_MODEL_UNET): its tensors under the PyTorch twin's
 * names, parameter count and forward FLOPs at the tutorial's widths, output
 * shape, config errors, one ncsn training step with the same bits on 1, 2 and
 * 3 threads (the fixed Fourier frequencies untouched), and a save → load round
 * trip that gives the same scores. Its values against PyTorch are in
 * test_golden_images. */
#define _POSIX_C_SOURCE 200809L
#include <unistd.h>

#include "scorekit/scorekit.h"
#include "test.h"

/* Small widths for the tests that run the model (every group norm has more
 * than one channel a group: 4 groups of 4 × 2 and 8 groups of 16). */
static const sk_unet_config small = {{8, 16, 16, 16}, {1, 28, 28}, 16, 16.0f};

static int find(const sk_model *m, const char *name) {
  for (int i = 0; i < sk_model_num_tensors(m); i++)
    if (strcmp(sk_model_tensor_name(m, i), name) == 0) return i;
  return -1;
}

TEST(tutorial_sizes) {
  sk_model_config cfg = {SK_MODEL_UNET, 784, 0, 0, 0, SK_ACT_SILU};
  sk_model *m = sk_model_new(&cfg);
  CHECK(m);
  const sk_unet_config *u = sk_model_get_unet(m);
  CHECK(u && u->channels[0] == 32 && u->channels[3] == 256 && u->image[1] == 28 &&
        u->embed == 256 && u->embed_scale == 16.0f);
  CHECK_EQ_INT(sk_model_get_config(m)->dim, 784);
  CHECK_EQ_INT(sk_model_num_tensors(m), 40);
  /* The tutorial's ScoreNet: 1,115,425 values, 128 of them the fixed
   * frequencies (PyTorch counts them among its parameters too). */
  CHECK_EQ_INT(sk_model_num_params(m), 1115425);
  size_t trained = 0;
  for (int i = 0; i < sk_model_num_tensors(m); i++) {
    size_t n = 1;
    for (int k = 0; k < sk_model_tensor_ndim(m, i); k++) n *= (size_t)sk_model_tensor_shape(m, i)[k];
    if (sk_model_tensor_trainable(m, i)) trained += n;
  }
  CHECK_EQ_INT(trained, 1115425 - 128);
  CHECK_EQ_INT(find(m, "embed.0.W"), 0);
  CHECK(!sk_model_tensor_trainable(m, 0));
  const char *names[] = {"embed.1.weight", "conv1.weight", "dense1.dense.weight", "gnorm1.bias",
                         "conv4.weight", "tconv4.weight", "dense5.dense.bias", "tgnorm4.weight",
                         "tconv3.weight", "tgnorm2.bias", "tconv1.weight", "tconv1.bias"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) CHECK(find(m, names[i]) > 0);
  const int64_t *t3 = sk_model_tensor_shape(m, find(m, "tconv3.weight"));
  CHECK(t3[0] == 256 && t3[1] == 64 && t3[2] == 3 && t3[3] == 3); /* (128+128) → 64 */
  CHECK_EQ_INT(sk_model_tensor_shape(m, find(m, "tconv1.weight"))[0], 64);

  /* One image's forward pass: the convolutions' 2·MACs (26²·32·1 + 12²·64·32
   * + 5²·128·64 + 2²·256·128 for the encoder, the same input sizes times the
   * transposes' widths for the decoder, ·9 taps), plus the Linear layers,
   * group norms, SiLUs and adds. */
  sk_graph *g = sk_graph_new();
  sk_node p[40];
  CHECK_OK(sk_model_bind(m, g, NULL, p));
  sk_node x = sk_input(g, "x", 2, (int64_t[]){1, 784});
  sk_node s = sk_input(g, "sigma", 2, (int64_t[]){1, 1});
  sk_node y = sk_model_apply(m, g, p, x, s);
  CHECK_OK(sk_graph_compile(g, 1, &y));
  const double conv = 2.0 * 9 * (26 * 26 * 32 + 144 * 64 * 32 + 25 * 128 * 64 + 4 * 256 * 128 +
                                 4 * 256 * 128 + 25 * 256 * 64 + 144 * 128 * 32 + 26 * 26 * 64);
  const double linear = 2.0 * (256 * 256 + 256 * (32 + 64 + 128 + 256 + 128 + 64 + 32));
  const double flops = sk_graph_flops(g);
  printf("  forward: %.4g FLOP an image (convolutions %.4g, Linear %.4g)\n", flops, conv, linear);
  CHECK_NEAR(conv, 32871168, 0.5);
  CHECK_NEAR(sk_graph_matmul_flops(g), linear, 0.5);
  CHECK(flops > conv + linear && flops < 1.05 * (conv + linear));
  sk_graph_free(g);
  sk_model_free(m);
}

TEST(output_shape) {
  sk_model *m = sk_model_new_unet(&small);
  CHECK(m);
  sk_model_init(m, 3);
  sk_graph *g = sk_graph_new();
  sk_node p[40];
  CHECK_OK(sk_model_bind(m, g, NULL, p));
  sk_node x = sk_input(g, "x", 2, (int64_t[]){3, 784});
  sk_node s = sk_input(g, "sigma", 2, (int64_t[]){3, 1});
  sk_node y = sk_model_apply(m, g, p, x, s);
  CHECK_EQ_INT(sk_node_ndim(g, y), 2);
  CHECK(sk_node_shape(g, y)[0] == 3 && sk_node_shape(g, y)[1] == 784);
  CHECK_OK(sk_graph_compile(g, 1, &y));
  sk_rng r = sk_rng_make(5, 0);
  sk_rng_uniform(&r, sk_graph_data(g, x), 3 * 784);
  float *sg = sk_graph_data(g, s);
  sg[0] = 0.01f, sg[1] = 1.0f, sg[2] = 50.0f;
  CHECK_OK(sk_graph_run(g));
  const float *out = sk_graph_data(g, y);
  double norm[3] = {0};
  for (int i = 0; i < 3 * 784; i++) {
    CHECK(isfinite(out[i]));
    norm[i / 784] += (double)out[i] * out[i];
  }
  /* s = net / σ: the smallest σ gives by far the largest scores. */
  CHECK(norm[0] > 100 * norm[1] && norm[1] > 100 * norm[2]);
  sk_graph_free(g);
  sk_model_free(m);
}

TEST(config_errors) {
  sk_unet_config u = small;
  u.channels[2] = 0;
  CHECK(!sk_model_new_unet(&u));
  CHECK(strstr(sk_last_error(), "channels"));
  u = small;
  u.image[1] = u.image[2] = 27; /* 27 → 25 → 12 → 5 → 2 → 5 → 12 → 26: no skip fits */
  CHECK(!sk_model_new_unet(&u));
  CHECK(strstr(sk_last_error(), "27"));
  u.image[1] = u.image[2] = 12; /* too small for four convolutions */
  CHECK(!sk_model_new_unet(&u));
  u = small;
  u.image[1] = 20, u.image[2] = 36; /* both sides ≡ 4 (mod 8): fine */
  sk_model *m = sk_model_new_unet(&u);
  CHECK(m);
  CHECK_EQ_INT(sk_model_get_config(m)->dim, 720);
  sk_model_free(m);
  u = small;
  u.embed = 15;
  CHECK(!sk_model_new_unet(&u));
  CHECK(strstr(sk_last_error(), "embedding"));
  u = small;
  u.embed_scale = -1;
  CHECK(!sk_model_new_unet(&u));
  sk_model_config cfg = {SK_MODEL_UNET, 100, 0, 0, 0, SK_ACT_SILU};
  CHECK(!sk_model_new(&cfg));
  CHECK(strstr(sk_last_error(), "sk_model_new_unet"));
}

/* A data set of n random 28×28 images in [0, 1]. */
static sk_dataset *images(int64_t n) {
  sk_tensor *t = sk_tensor_new(2, (int64_t[]){n, 784});
  if (!t) return NULL;
  sk_rng r = sk_rng_make(11, 0);
  sk_rng_uniform(&r, sk_tensor_data(t), (size_t)(n * 784));
  sk_dataset *ds = NULL;
  if (sk_dataset_new(t, NULL, &ds) != SK_OK) sk_tensor_free(t);
  return ds;
}

static const float ladder[3] = {2.0f, 0.5f, 0.1f};

/* One ncsn step at batch 8 on `threads` threads: the loss, the updated
 * weights and their EMA written to loss/params/ema (the model's size). */
static int one_step(int threads, float *loss, float *params, float *ema) {
  sk_set_num_threads(threads);
  sk_model *m = sk_model_new_unet(&small);
  sk_dataset *ds = images(32);
  sk_trainer *t = NULL;
  int ok = m && ds;
  if (ok) {
    sk_model_init(m, 7);
    sk_train_config tc = {SK_OBJ_NCSN, 8, 1, 0, 0.1f, 3, ladder, sk_adam_config_default(), 9};
    ok = sk_trainer_new(m, ds, &tc, &t) == SK_OK && sk_trainer_step(t, loss, NULL) == SK_OK;
  }
  if (!ok) fprintf(stderr, "  %d threads: %s\n", threads, sk_last_error());
  if (ok) {
    memcpy(params, sk_model_params(m), sk_model_num_params(m) * sizeof(float));
    memcpy(ema, sk_trainer_ema(t), sk_model_num_params(m) * sizeof(float));
  }
  sk_trainer_free(t);
  sk_model_free(m);
  sk_dataset_free(ds);
  sk_set_num_threads(0);
  return ok;
}

TEST(train_step_same_bits_on_1_2_3_threads) {
  sk_model *m = sk_model_new_unet(&small);
  CHECK(m);
  sk_model_init(m, 7);
  const size_t n = sk_model_num_params(m);
  const int w = find(m, "embed.0.W");
  const size_t w_off = sk_model_tensor_offset(m, w), w_n = (size_t)sk_model_tensor_shape(m, w)[0];
  float *init = malloc(n * sizeof(float)), *p[3], *e[3], loss[3];
  CHECK(init);
  memcpy(init, sk_model_params(m), n * sizeof(float));
  sk_model_free(m);
  int ok = 1;
  for (int k = 0; k < 3; k++) {
    p[k] = malloc(n * sizeof(float));
    e[k] = malloc(n * sizeof(float));
    ok = ok && p[k] && e[k] && one_step(k + 1, &loss[k], p[k], e[k]);
  }
  for (int k = 1; ok && k < 3; k++)
    ok = memcmp(&loss[0], &loss[k], sizeof(float)) == 0 && memcmp(p[0], p[k], n * sizeof(float)) == 0 &&
         memcmp(e[0], e[k], n * sizeof(float)) == 0;
  printf("  loss %.9g on 1, 2 and 3 threads: %s\n", loss[0], ok ? "same bits" : "differ");
  /* The step moved the weights but not the fixed frequencies or their EMA. */
  int moved = 0;
  for (size_t i = 0; ok && i < n; i++) moved += p[0][i] != init[i];
  const int fixed = ok && memcmp(p[0] + w_off, init + w_off, w_n * sizeof(float)) == 0 &&
                    memcmp(e[0] + w_off, init + w_off, w_n * sizeof(float)) == 0;
  for (int k = 0; k < 3; k++) free(p[k]), free(e[k]);
  free(init);
  CHECK(ok);
  CHECK(moved > (int)(n / 2));
  CHECK(fixed);
}

/* s(x, σ) of `m` at σ for the n rows of x, through the score-function
 * interface the samplers use. */
static int scores(sk_model *m, const float *x, int n, float sigma, float *out) {
  sk_score_fn *f = NULL;
  int ok = sk_score_fn_model(m, n, &f) == SK_OK && sk_score_fn_eval(f, x, n, sigma, out) == SK_OK;
  if (!ok) fprintf(stderr, "  scores: %s\n", sk_last_error());
  sk_score_fn_free(f);
  return ok;
}

TEST(save_load_same_scores) {
  sk_model *m = sk_model_new_unet(&small), *back = NULL, *back_ema = NULL;
  CHECK(m);
  sk_model_init(m, 21);
  const size_t n = sk_model_num_params(m);
  float *ema = malloc(n * sizeof(float));
  CHECK(ema);
  for (size_t i = 0; i < n; i++) ema[i] = 0.5f * sk_model_params(m)[i];
  char path[] = "/tmp/sk_test_unet_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  sk_model_info info = {.objective = SK_OBJ_NCSN, .n_sigmas = 3, .sigma = 0.1f, .steps = 5};
  memcpy(info.sigmas, ladder, sizeof ladder);
  snprintf(info.data, sizeof info.data, "test images");
  sk_model_info got;
  sk_status st = sk_model_save(path, m, ema, &info);
  if (st == SK_OK) st = sk_model_load(path, 0, &back, &got);
  if (st == SK_OK) st = sk_model_load(path, 1, &back_ema, NULL);
  unlink(path);
  if (st != SK_OK) fprintf(stderr, "  %s\n", sk_last_error());
  int ok = st == SK_OK;
  ok = ok && memcmp(sk_model_get_config(back), sk_model_get_config(m), sizeof(sk_model_config)) == 0 &&
       memcmp(sk_model_get_unet(back), sk_model_get_unet(m), sizeof(sk_unet_config)) == 0 &&
       sk_model_num_params(back) == n && got.n_sigmas == 3 && got.sigmas[2] == ladder[2] &&
       memcmp(sk_model_params(back), sk_model_params(m), n * sizeof(float)) == 0 &&
       memcmp(sk_model_params(back_ema), ema, n * sizeof(float)) == 0;
  float x[2 * 784], s0[2 * 784], s1[2 * 784];
  sk_rng r = sk_rng_make(2, 0);
  sk_rng_uniform(&r, x, 2 * 784);
  ok = ok && scores(m, x, 2, 0.5f, s0) && scores(back, x, 2, 0.5f, s1) &&
       memcmp(s0, s1, sizeof s0) == 0;
  free(ema);
  sk_model_free(m);
  sk_model_free(back);
  sk_model_free(back_ema);
  CHECK(ok);
}

/* Misuse of the model API: a tensor index out of range gives NULL or 0 (as
 * sk_safetensors_name); labels for a model that is not class-conditional
 * and features of a score model are build errors on the graph, not ignored;
 * a NULL config is refused. */
TEST(model_api_misuse) {
  sk_model *m = sk_model_new_unet(&small);
  CHECK(m);
  const int n = sk_model_num_tensors(m), bad[4] = {-1, n, 127, INT32_MIN};
  for (int k = 0; k < 4; k++) {
    CHECK(sk_model_tensor_name(m, bad[k]) == NULL);
    CHECK(sk_model_tensor_shape(m, bad[k]) == NULL);
    CHECK_EQ_INT(sk_model_tensor_ndim(m, bad[k]), 0);
    CHECK_EQ_INT(sk_model_tensor_offset(m, bad[k]), 0);
    CHECK_EQ_INT(sk_model_tensor_trainable(m, bad[k]), 0);
  }
  CHECK(sk_model_tensor_name(m, n - 1) != NULL && sk_model_tensor_ndim(m, n - 1) > 0);

  sk_model_config score = {SK_MODEL_NCMLP, 784, 8, 1, 0, SK_ACT_SOFTPLUS};
  sk_model *ncmlp = sk_model_new(&score);
  CHECK(ncmlp);
  CHECK_EQ_INT(sk_model_num_features(ncmlp), 0);
  sk_model *models[2] = {m, ncmlp};
  for (int k = 0; k < 2; k++) {
    sk_graph *g = sk_graph_new();
    sk_node p[64];
    CHECK_OK(sk_model_bind(models[k], g, NULL, p));
    sk_node x = sk_input(g, "x", 2, (int64_t[]){4, 784});
    sk_node s = sk_input(g, "sigma", 2, (int64_t[]){4, 1});
    sk_node l = sk_input(g, "label", 2, (int64_t[]){4, 77});
    sk_set_error(SK_OK, "clean");
    CHECK(sk_model_apply_labels(models[k], g, p, x, s, l) == SK_NONE);
    CHECK_EQ_INT(sk_graph_status(g), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "not class-conditional")); /* at once, as the graph's builders */
    sk_node y = sk_model_apply(models[k], g, p, x, s);
    CHECK_EQ_INT(sk_graph_compile(g, 1, &y), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "not class-conditional"));
    sk_graph_free(g);
    g = sk_graph_new();
    CHECK_OK(sk_model_bind(models[k], g, NULL, p));
    x = sk_input(g, "x", 2, (int64_t[]){4, 784});
    s = sk_input(g, "sigma", 2, (int64_t[]){4, 1});
    CHECK(sk_model_apply_features(models[k], g, p, x, s) == SK_NONE);
    CHECK_EQ_INT(sk_graph_status(g), SK_ERR_INVALID);
    CHECK_EQ_INT(sk_graph_compile(g, 1, &x), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "score model, not a classifier"));
    sk_graph_free(g);
  }
  sk_model_free(ncmlp);
  sk_model_free(m);
  CHECK(!sk_model_new(NULL));
  CHECK(strstr(sk_last_error(), "NULL config"));
}

TEST_MAIN(TEST_ENTRY(tutorial_sizes), TEST_ENTRY(output_shape), TEST_ENTRY(config_errors),
          TEST_ENTRY(train_step_same_bits_on_1_2_3_threads), TEST_ENTRY(save_load_same_scores),
          TEST_ENTRY(model_api_misuse))
