/* The convolutional classifier (SK_MODEL_CONVNET): its tensors under the
 * PyTorch twin's names and its parameter count; its logits and features
 * against a plain double-precision evaluation of the architecture of
 * docs/MATH.md written here; sk_model_features in chunks and on 1, 2 and 3
 * threads (same bits); classifier guidance (∇ₓ log softmax through the
 * convolutions) against finite differences; a training step of the
 * classifier objective; a save → load round trip; config errors; the
 * PyTorch twin of tools/load_model.py on the same file. */
#define _POSIX_C_SOURCE 200809L
#include <unistd.h>

#include "scorekit/scorekit.h"
#include "test.h"

/* A small convnet with every group norm over more than one channel (4
 * groups of 2, 32 of 2, 32 of 3) and a non-square image, so that a swapped
 * axis shows: 13×12 → 11×10 → 5×4 → 2×1. */
static const sk_convnet_config tiny = {{8, 64, 96}, {1, 13, 12}, 3, 8, 1.0f};

static int find(const sk_model *m, const char *name) {
  for (int i = 0; i < sk_model_num_tensors(m); i++)
    if (strcmp(sk_model_tensor_name(m, i), name) == 0) return i;
  return -1;
}

static const float *tensor(sk_model *m, const char *name) {
  const int i = find(m, name);
  return i < 0 ? NULL : sk_model_params(m) + sk_model_tensor_offset(m, i);
}

TEST(default_sizes) {
  sk_model_config cfg = {SK_MODEL_CONVNET, 784, 0, 0, 10, SK_ACT_SILU};
  sk_model *m = sk_model_new(&cfg);
  CHECK(m);
  const sk_convnet_config *c = sk_model_get_convnet(m);
  CHECK(c && c->channels[0] == 32 && c->channels[1] == 64 && c->channels[2] == 128 &&
        c->image[1] == 28 && c->classes == 10 && c->embed == 128 && c->embed_scale == 16.0f);
  CHECK(sk_model_is_classifier(sk_model_get_config(m)));
  CHECK_EQ_INT(sk_model_num_features(m), 128);
  CHECK_EQ_INT(sk_model_num_tensors(m), 20);
  /* Embedding 64 + 128·128 + 128; conv 32·9, 64·32·9, 128·64·9; Dense
   * (C·128 + C) and GroupNorm 2C for C = 32, 64, 128; fc 10·128 + 10. */
  const size_t want = 64 + 128 * 128 + 128 + 9 * (32 + 64 * 32 + 128 * 64) +
                      129 * (32 + 64 + 128) + 2 * (32 + 64 + 128) + 10 * 128 + 10;
  CHECK_EQ_INT(sk_model_num_params(m), want);
  CHECK_EQ_INT(find(m, "embed.0.W"), 0);
  CHECK(!sk_model_tensor_trainable(m, 0));
  const char *names[] = {"embed.1.weight", "embed.1.bias", "conv1.weight", "dense1.dense.weight",
                         "dense1.dense.bias", "gnorm1.weight", "gnorm1.bias", "conv3.weight",
                         "gnorm3.bias", "fc.weight", "fc.bias"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) CHECK(find(m, names[i]) > 0);
  const int64_t *w2 = sk_model_tensor_shape(m, find(m, "conv2.weight"));
  CHECK(w2[0] == 64 && w2[1] == 32 && w2[2] == 3 && w2[3] == 3);
  const int64_t *fc = sk_model_tensor_shape(m, find(m, "fc.weight"));
  CHECK(fc[0] == 10 && fc[1] == 128);
  sk_model_free(m);
}

TEST(config_errors) {
  sk_convnet_config c = tiny;
  c.classes = 1;
  CHECK(!sk_model_new_convnet(&c));
  CHECK(strstr(sk_last_error(), "classes"));
  c = tiny;
  c.image[1] = 8;
  CHECK(!sk_model_new_convnet(&c));
  CHECK(strstr(sk_last_error(), "image"));
  c = tiny;
  c.channels[1] = 5000;
  CHECK(!sk_model_new_convnet(&c));
  c = tiny;
  c.embed = 7;
  CHECK(!sk_model_new_convnet(&c));
  sk_model_config cfg = {SK_MODEL_CONVNET, 100, 0, 0, 10, SK_ACT_SILU};
  CHECK(!sk_model_new(&cfg));
  CHECK(strstr(sk_last_error(), "sk_model_new_convnet"));
}

/* The model with its weights drawn, and the group norms' scales and shifts
 * moved off 1 and 0 so that a forward pass that skipped them would show. */
static sk_model *tiny_model(uint64_t seed) {
  sk_model *m = sk_model_new_convnet(&tiny);
  if (!m) return NULL;
  sk_model_init(m, seed);
  sk_rng r = sk_rng_make(seed, 99);
  for (int i = 0; i < sk_model_num_tensors(m); i++) {
    if (strncmp(sk_model_tensor_name(m, i), "gnorm", 5) != 0) continue;
    const int64_t n = sk_model_tensor_shape(m, i)[0];
    float *p = sk_model_params(m) + sk_model_tensor_offset(m, i), u[128];
    sk_rng_uniform(&r, u, (size_t)n);
    for (int64_t j = 0; j < n; j++) p[j] += 0.5f * (2 * u[j] - 1);
  }
  return m;
}

static double silu(double v) { return v / (1 + exp(-v)); }

/* The architecture in double, from the tensors by name: features (F) and
 * logits (K) of one image x at σ. */
static void reference(sk_model *m, const float *x, float sigma, double *feat, double *logits) {
  const sk_convnet_config *c = sk_model_get_convnet(m);
  const int E = c->embed, K = c->classes;
  double e0[64], emb[64];
  const float *W = tensor(m, "embed.0.W"), *w1 = tensor(m, "embed.1.weight"),
              *b1 = tensor(m, "embed.1.bias");
  for (int j = 0; j < E / 2; j++) {
    const double a = 6.283185307179586 * W[j] * log((double)sigma);
    e0[j] = sin(a);
    e0[j + E / 2] = cos(a);
  }
  for (int o = 0; o < E; o++) {
    double s = b1[o];
    for (int i = 0; i < E; i++) s += (double)w1[o * E + i] * e0[i];
    emb[o] = silu(s);
  }
  int C = c->image[0], H = c->image[1], Wd = c->image[2];
  double *h = malloc(sizeof(double) * (size_t)(C * H * Wd));
  for (int i = 0; i < C * H * Wd; i++) h[i] = x[i];
  static const int groups[3] = {4, 32, 32};
  for (int k = 0; k < 3; k++) {
    char name[32];
    const int O = c->channels[k], st = k == 0 ? 1 : 2;
    const int OH = (H - 3) / st + 1, OW = (Wd - 3) / st + 1;
    snprintf(name, sizeof name, "conv%d.weight", k + 1);
    const float *cw = tensor(m, name);
    snprintf(name, sizeof name, "dense%d.dense.weight", k + 1);
    const float *dw = tensor(m, name);
    snprintf(name, sizeof name, "dense%d.dense.bias", k + 1);
    const float *db = tensor(m, name);
    snprintf(name, sizeof name, "gnorm%d.weight", k + 1);
    const float *gw = tensor(m, name);
    snprintf(name, sizeof name, "gnorm%d.bias", k + 1);
    const float *gb = tensor(m, name);
    double *y = malloc(sizeof(double) * (size_t)(O * OH * OW));
    for (int o = 0; o < O; o++) {
      double d = db[o];
      for (int i = 0; i < E; i++) d += (double)dw[o * E + i] * emb[i];
      for (int r = 0; r < OH; r++)
        for (int q = 0; q < OW; q++) {
          double s = d;
          for (int ci = 0; ci < C; ci++)
            for (int u = 0; u < 3; u++)
              for (int v = 0; v < 3; v++)
                s += (double)cw[((o * C + ci) * 3 + u) * 3 + v] *
                     h[(ci * H + r * st + u) * Wd + q * st + v];
          y[(o * OH + r) * OW + q] = s;
        }
    }
    const int G = groups[k], per = O / G, n = per * OH * OW;
    for (int gi = 0; gi < G; gi++) {
      double mean = 0, var = 0;
      double *yg = y + (size_t)gi * (size_t)n;
      for (int i = 0; i < n; i++) mean += yg[i] / n;
      for (int i = 0; i < n; i++) var += (yg[i] - mean) * (yg[i] - mean) / n;
      for (int i = 0; i < n; i++) {
        const int ch = gi * per + i / (OH * OW);
        yg[i] = silu((yg[i] - mean) / sqrt(var + 1e-5) * gw[ch] + gb[ch]);
      }
    }
    free(h);
    h = y;
    C = O, H = OH, Wd = OW;
  }
  const float *fw = tensor(m, "fc.weight"), *fb = tensor(m, "fc.bias");
  for (int o = 0; o < C; o++) {
    double s = 0;
    for (int i = 0; i < H * Wd; i++) s += h[o * H * Wd + i];
    feat[o] = s / (H * Wd);
  }
  for (int k = 0; k < K; k++) {
    double s = fb[k];
    for (int o = 0; o < C; o++) s += (double)fw[k * C + o] * feat[o];
    logits[k] = s;
  }
  free(h);
}

enum { D = 13 * 12, NROWS = 300 };

static void images(float *x, int64_t n, uint64_t seed) {
  sk_rng r = sk_rng_make(seed, 0);
  sk_rng_uniform(&r, x, (size_t)(n * D));
}

TEST(forward_matches_reference) {
  sk_model *m = tiny_model(5);
  CHECK(m);
  CHECK_EQ_INT(sk_model_get_config(m)->dim, D);
  float x[4 * D], feat[4 * 96], logits[4 * 3];
  images(x, 4, 1);
  const float sigmas[2] = {0.05f, 3.0f};
  double worst = 0;
  for (int s = 0; s < 2; s++) {
    CHECK_OK(sk_model_features(m, x, 4, sigmas[s], feat, logits));
    for (int i = 0; i < 4; i++) {
      double rf[96], rl[3];
      reference(m, x + i * D, sigmas[s], rf, rl);
      for (int j = 0; j < 96; j++) {
        const double e = fabs(feat[i * 96 + j] - rf[j]) / (1e-2 + fabs(rf[j]));
        worst = e > worst ? e : worst;
      }
      for (int k = 0; k < 3; k++) {
        const double e = fabs(logits[i * 3 + k] - rl[k]) / (1e-2 + fabs(rl[k]));
        worst = e > worst ? e : worst;
      }
    }
  }
  printf("  worst relative error against the double reference: %.3g\n", worst);
  CHECK(worst < 1e-4);
  sk_model_free(m);
}

/* sk_model_features in chunks (300 rows: one full chunk and a part) gives
 * each row what it gives alone, and the same bits on 1, 2 and 3 threads. */
TEST(features_chunks_and_threads) {
  sk_model *m = tiny_model(6);
  CHECK(m);
  float *x = malloc(sizeof(float) * NROWS * D), *f[3], one[96], lg[3];
  CHECK(x);
  images(x, NROWS, 2);
  int ok = 1;
  for (int t = 0; t < 3; t++) {
    sk_set_num_threads(t + 1);
    f[t] = malloc(sizeof(float) * NROWS * 96);
    ok = ok && f[t] && sk_model_features(m, x, NROWS, 0.2f, f[t], NULL) == SK_OK;
  }
  sk_set_num_threads(0);
  for (int t = 1; ok && t < 3; t++) ok = memcmp(f[0], f[t], sizeof(float) * NROWS * 96) == 0;
  double worst = 0;
  const int rows[3] = {0, 255, 299};
  for (int i = 0; ok && i < 3; i++) {
    ok = sk_model_features(m, x + rows[i] * D, 1, 0.2f, one, lg) == SK_OK;
    for (int j = 0; ok && j < 96; j++) {
      const double e = fabs(one[j] - f[0][rows[i] * 96 + j]);
      worst = e > worst ? e : worst;
    }
  }
  printf("  same bits on 1, 2, 3 threads: %s; one row alone vs in a chunk: %.3g\n",
         ok ? "yes" : "no", worst);
  for (int t = 0; t < 3; t++) free(f[t]);
  /* Bad input: a score model, σ, a value that is not finite. */
  CHECK(ok && worst < 1e-5);
  CHECK_EQ_INT(sk_model_features(m, x, 2, 0.0f, one, NULL), SK_ERR_INVALID);
  x[D + 3] = NAN;
  CHECK_EQ_INT(sk_model_features(m, x, 2, 0.1f, NULL, lg), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "row 1"));
  free(x);
  sk_model_config mc = {SK_MODEL_MLP, D, 4, 1, 0, SK_ACT_SILU};
  sk_model *s = sk_model_new(&mc);
  CHECK(s);
  CHECK_EQ_INT(sk_model_num_features(s), 0);
  CHECK_EQ_INT(sk_model_features(s, one, 1, 0.1f, one, NULL), SK_ERR_INVALID);
  sk_model_free(s);
  sk_model_free(m);
}

/* log p(y | x, σ) from the logits, in double. */
static double log_prob(const float *logits, int K, int y) {
  double mx = logits[0], s = 0;
  for (int k = 1; k < K; k++) mx = logits[k] > mx ? logits[k] : mx;
  for (int k = 0; k < K; k++) s += exp(logits[k] - mx);
  return logits[y] - mx - log(s);
}

/* The guidance term of sk_score_fn_guided_model (the guided score minus the
 * base score, over the weight) against central differences of log p(y|x, σ)
 * along random directions and single pixels. */
TEST(guidance_gradient_finite_differences) {
  sk_model *clf = tiny_model(8);
  sk_model_config mc = {SK_MODEL_MLP, D, 4, 1, 0, SK_ACT_SILU};
  sk_model *base_m = sk_model_new(&mc);
  CHECK(clf && base_m);
  sk_model_init(base_m, 3);
  const float sigma = 0.3f, w = 2.0f;
  const int y = 2;
  float x[2 * D], s0[2 * D], s1[2 * D];
  images(x, 2, 4);
  sk_score_fn *base = NULL, *guided = NULL;
  CHECK_OK(sk_score_fn_model(base_m, 2, &base));
  CHECK_OK(sk_score_fn_guided_model(base, clf, y, w, &guided));
  CHECK_OK(sk_score_fn_eval(base, x, 2, sigma, s0));
  CHECK_OK(sk_score_fn_eval(guided, x, 2, sigma, s1));
  double gnorm = 0;
  for (int i = 0; i < 2 * D; i++) {
    s1[i] = (s1[i] - s0[i]) / w;
    gnorm += (double)s1[i] * s1[i];
  }
  CHECK(gnorm > 1e-6); /* a gradient worth checking */
  sk_rng r = sk_rng_make(12, 0);
  const double h = 1e-2;
  double worst_dir = 0, worst_pix = 0;
  float xp[D], xm[D], lp[3], lm[3], v[D];
  for (int row = 0; row < 2; row++) {
    const float *g = s1 + row * D;
    for (int trial = 0; trial < 4 + 6; trial++) {
      const int dir = trial < 4;
      if (dir) {
        sk_rng_normal(&r, v, D);
        double n2 = 0;
        for (int i = 0; i < D; i++) n2 += (double)v[i] * v[i];
        for (int i = 0; i < D; i++) v[i] = (float)(v[i] / sqrt(n2));
      } else {
        memset(v, 0, sizeof v);
        v[(trial * 37 + row * 11) % D] = 1;
      }
      for (int i = 0; i < D; i++) {
        xp[i] = (float)(x[row * D + i] + h * v[i]);
        xm[i] = (float)(x[row * D + i] - h * v[i]);
      }
      CHECK_OK(sk_model_features(clf, xp, 1, sigma, NULL, lp));
      CHECK_OK(sk_model_features(clf, xm, 1, sigma, NULL, lm));
      const double fd = (log_prob(lp, 3, y) - log_prob(lm, 3, y)) / (2 * h);
      double an = 0;
      for (int i = 0; i < D; i++) an += (double)g[i] * v[i];
      const double e = fabs(fd - an) / (2e-3 + fabs(an));
      if (dir) worst_dir = e > worst_dir ? e : worst_dir;
      else worst_pix = e > worst_pix ? e : worst_pix;
    }
  }
  printf("  |∇ log p| %.3g; worst relative error along directions %.3g, single pixels %.3g\n",
         sqrt(gnorm / 2), worst_dir, worst_pix);
  CHECK(worst_dir < 2e-2 && worst_pix < 5e-2);
  sk_score_fn_free(guided);
  sk_score_fn_free(base);
  sk_model_free(base_m);
  sk_model_free(clf);
}

/* A few classifier steps on two separable classes of images lower the loss;
 * the fixed frequencies stay put. */
TEST(classifier_objective_trains) {
  sk_convnet_config c = tiny;
  c.classes = 2;
  sk_model *m = sk_model_new_convnet(&c);
  CHECK(m);
  sk_model_init(m, 4);
  enum { N = 64 };
  sk_tensor *t = sk_tensor_new(2, (int64_t[]){N, D}), *labels = sk_tensor_new(1, (int64_t[]){N});
  CHECK(t && labels);
  images(sk_tensor_data(t), N, 5);
  for (int i = 0; i < N; i++) {
    sk_tensor_data(labels)[i] = (float)(i % 2); /* class 1: a bright top half */
    for (int j = 0; i % 2 && j < D / 2; j++) sk_tensor_data(t)[i * D + j] += 1.0f;
  }
  sk_dataset *ds = NULL;
  CHECK_OK(sk_dataset_new(t, labels, &ds));
  const float ladder[2] = {0.5f, 0.05f};
  sk_train_config tc = {SK_OBJ_CLASSIFIER, 16, 1, 0, 0.1f, 2, ladder, sk_adam_config_default(), 3};
  sk_trainer *tr = NULL;
  CHECK_OK(sk_trainer_new(m, ds, &tc, &tr));
  const float w0 = sk_model_params(m)[0];
  float first = 0, loss = 0, last = 0;
  for (int s = 0; s < 60; s++) {
    CHECK_OK(sk_trainer_step(tr, &loss, NULL));
    if (s < 10) first += loss / 10;
    if (s >= 50) last += loss / 10;
  }
  printf("  classifier loss: first ten steps %.4f, last ten %.4f\n", first, last);
  CHECK(last < 0.5f * first);
  CHECK(sk_model_params(m)[0] == w0);
  sk_trainer_free(tr);
  sk_dataset_free(ds);
  sk_model_free(m);
}

TEST(save_load_same_logits) {
  sk_model *m = tiny_model(21), *back = NULL;
  CHECK(m);
  char path[] = "/tmp/sk_test_convnet_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  sk_model_info info = {.objective = SK_OBJ_CLASSIFIER, .n_sigmas = 2, .sigmas = {1.0f, 0.1f},
                        .image_shape = {1, 13, 12}};
  snprintf(info.data, sizeof info.data, "test images");
  sk_model_info got;
  sk_status st = sk_model_save(path, m, sk_model_params(m), &info);
  if (st == SK_OK) st = sk_model_load(path, 1, &back, &got);
  unlink(path);
  if (st != SK_OK) fprintf(stderr, "  %s\n", sk_last_error());
  CHECK(st == SK_OK);
  CHECK(memcmp(sk_model_get_config(back), sk_model_get_config(m), sizeof(sk_model_config)) == 0);
  CHECK(memcmp(sk_model_get_convnet(back), sk_model_get_convnet(m), sizeof(sk_convnet_config)) == 0);
  CHECK(got.image_shape[1] == 13 && got.n_sigmas == 2);
  float x[2 * D], a[6], b[6];
  images(x, 2, 9);
  CHECK_OK(sk_model_features(m, x, 2, 0.1f, NULL, a));
  CHECK_OK(sk_model_features(back, x, 2, 0.1f, NULL, b));
  CHECK(memcmp(a, b, sizeof a) == 0);
  sk_model_free(back);
  sk_model_free(m);
}

/* The PyTorch twin in tools/load_model.py (convnet_class, loaded from the
 * file by its state_dict names) gives the logits of sk_model_features to
 * 1e-5 (the EMA weights, which differ from the raw ones; one run, as
 * importing PyTorch takes seconds); skipped without PyTorch. */
TEST(pytorch_twin) {
  if (system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
    printf("  no PyTorch for /usr/bin/python3: skipped\n");
    return;
  }
  sk_model *m = tiny_model(31);
  CHECK(m);
  const size_t np = sk_model_num_params(m);
  float *ema = malloc(np * sizeof(float));
  CHECK(ema);
  for (size_t i = 0; i < np; i++) ema[i] = 0.9f * sk_model_params(m)[i];
  char dir[] = "/tmp/sk_test_convnet_twin_XXXXXX", path[128], cmd[1024];
  CHECK(mkdtemp(dir));
  sk_model_info info = {.objective = SK_OBJ_CLASSIFIER, .n_sigmas = 2, .sigmas = {1.0f, 0.1f},
                        .image_shape = {1, 13, 12}};
  snprintf(info.data, sizeof info.data, "test images");
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  sk_status st = sk_model_save(path, m, ema, &info);
  float x[5 * D], lg[5 * 3];
  images(x, 5, 13);
  snprintf(path, sizeof path, "%s/x.npy", dir);
  if (st == SK_OK) st = sk_npy_save_f32(path, 2, (int64_t[]){5, D}, x);
  int fails = 0;
  memcpy(sk_model_params(m), ema, np * sizeof(float));
  if (st == SK_OK) st = sk_model_features(m, x, 5, 0.07f, NULL, lg);
  snprintf(path, sizeof path, "%s/want.npy", dir);
  if (st == SK_OK) st = sk_npy_save_f32(path, 2, (int64_t[]){5, 3}, lg);
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 %s/tools/load_model.py %s/m.safetensors --x %s/x.npy --sigma 0.07 "
           "--expect %s/want.npy --backend torch --ema >%s/out.txt 2>&1; rc=$?; "
           "sed 's/^/  /' %s/out.txt; exit $rc",
           SK_SOURCE_DIR, dir, dir, dir, dir, dir);
  if (st == SK_OK) fails = system(cmd) != 0;
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "  cannot remove %s\n", dir);
  free(ema);
  sk_model_free(m);
  CHECK_OK(st);
  CHECK_EQ_INT(fails, 0);
}

TEST_MAIN(TEST_ENTRY(default_sizes), TEST_ENTRY(config_errors), TEST_ENTRY(forward_matches_reference),
          TEST_ENTRY(features_chunks_and_threads), TEST_ENTRY(guidance_gradient_finite_differences),
          TEST_ENTRY(classifier_objective_trains), TEST_ENTRY(save_load_same_logits),
          TEST_ENTRY(pytorch_twin))
