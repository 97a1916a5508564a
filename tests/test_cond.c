/* Class-conditional score models and what uses them: the label embedding's
 * gradient against finite differences (ncmlp and U-Net), label dropout (its
 * rate, and training bits that do not depend on the thread count),
 * classifier-free guidance (w = 0 and w = 1 give the unconditional and the
 * conditional score bit for bit), model files, and inpainting: on a 2-D
 * Gaussian mixture with the exact score, the known coordinate is kept bit
 * for bit and the imputed one follows the analytic conditional law. */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "scorekit/scorekit.h"
#include "score/internal.h"
#include "test.h"

static const sk_unet_config small = {{8, 16, 16, 16}, {1, 28, 28}, 16, 16.0f};

static int find(const sk_model *m, const char *name) {
  for (int i = 0; i < sk_model_num_tensors(m); i++)
    if (strcmp(sk_model_tensor_name(m, i), name) == 0) return i;
  return -1;
}

static sk_model *cond_mlp(int classes, uint64_t seed) {
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 16, 2, classes, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  if (m) sk_model_init(m, seed);
  return m;
}

/* Fills a loss graph's inputs: data, noise, levels and labels (row i gets
 * class i mod K, every third row "no label"). */
static void fill_inputs(sk_loss_graph *lg, int d, int K, uint64_t seed) {
  sk_rng r = sk_rng_make(seed, 1);
  const int B = lg->rows;
  sk_rng_normal(&r, sk_graph_data(lg->g, lg->x), (size_t)B * (size_t)d);
  sk_rng_normal(&r, sk_graph_data(lg->g, lg->z), (size_t)B * (size_t)d);
  float *s = sk_graph_data(lg->g, lg->sigma), *oh = sk_graph_data(lg->g, lg->onehot);
  memset(oh, 0, (size_t)B * (size_t)(K + 1) * sizeof(float));
  for (int i = 0; i < B; i++) {
    s[i] = 0.3f + 0.2f * (float)(i % 3);
    oh[i * (K + 1) + (i % 3 == 2 ? K : i % K)] = 1.0f;
  }
}

/* d loss / d label_embed.weight against central differences in float, on
 * entries of rows that the batch uses; the rows it does not use get zero. */
static int check_embed_grad(sk_model *m, int batch, float h, double tol) {
  const int K = sk_model_get_config(m)->classes, d = sk_model_get_config(m)->dim;
  sk_loss_graph lg;
  if (sk_loss_graph_new(m, SK_OBJ_NCSN, batch, 1, &lg) != SK_OK) return 0;
  const int te = find(m, "label_embed.weight");
  const int64_t E = sk_model_tensor_shape(m, te)[1];
  int ok = te == sk_model_num_tensors(m) - 1 && lg.onehot != SK_NONE &&
           sk_model_tensor_shape(m, te)[0] == K + 1;
  fill_inputs(&lg, d, K, 3);
  float *p = sk_model_params(m) + sk_model_tensor_offset(m, te);
  ok = ok && sk_graph_run(lg.g) == SK_OK;
  const float *grad = sk_graph_data(lg.g, lg.grads[te]);
  float *gcopy = malloc((size_t)(K + 1) * (size_t)E * sizeof(float));
  if (!gcopy) ok = 0;
  if (ok) memcpy(gcopy, grad, (size_t)(K + 1) * (size_t)E * sizeof(float));
  /* Rows used by the batch: classes 0..min(K, batch)-1 and "no label". */
  int used[64] = {0};
  for (int i = 0; i < batch; i++) used[i % 3 == 2 ? K : i % K] = 1;
  for (int k = 0; ok && k <= K; k++)
    for (int64_t j = 0; ok && j < E; j += (E > 8 ? E / 5 : 1)) {
      const size_t at = (size_t)k * (size_t)E + (size_t)j;
      if (!used[k]) {
        if (gcopy[at] != 0) {
          fprintf(stderr, "  row %d (unused) has gradient %g\n", k, gcopy[at]);
          ok = 0;
        }
        continue;
      }
      const float v = p[at];
      double lp, lm;
      p[at] = v + h;
      ok = sk_graph_run(lg.g) == SK_OK;
      lp = *sk_graph_data(lg.g, lg.loss);
      p[at] = v - h;
      ok = ok && sk_graph_run(lg.g) == SK_OK;
      lm = *sk_graph_data(lg.g, lg.loss);
      p[at] = v;
      const double fd = (lp - lm) / (2.0 * h), an = gcopy[at];
      if (!(fabs(fd - an) <= tol * (fabs(an) + fabs(fd)) + 1e-4)) {
        fprintf(stderr, "  label_embed[%d, %lld]: analytic %.6g, finite difference %.6g\n", k,
                (long long)j, an, fd);
        ok = 0;
      }
    }
  free(gcopy);
  sk_loss_graph_free(&lg);
  return ok;
}

TEST(label_embedding_gradient_ncmlp) {
  sk_model *m = cond_mlp(4, 7);
  CHECK(m);
  CHECK_EQ_INT(sk_model_get_config(m)->classes, 4);
  CHECK(check_embed_grad(m, 12, 1e-2f, 2e-2));
  sk_model_free(m);
}

TEST(label_embedding_gradient_unet) {
  sk_model *m = sk_model_new_unet_classes(&small, 3);
  CHECK(m);
  sk_model_init(m, 9);
  CHECK_EQ_INT(sk_model_get_config(m)->classes, 3);
  CHECK_EQ_INT(sk_model_tensor_shape(m, find(m, "label_embed.weight"))[1], 16);
  /* A U-Net with classes 0 is the unconditional one, tensor for tensor. */
  sk_model *u = sk_model_new_unet(&small);
  CHECK(u && sk_model_num_tensors(u) + 1 == sk_model_num_tensors(m));
  CHECK_EQ_INT(sk_model_num_params(u) + 4 * 16, sk_model_num_params(m));
  sk_model_free(u);
  CHECK(check_embed_grad(m, 4, 2e-2f, 5e-2));
  sk_model_free(m);
}

TEST(conditional_config_errors) {
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 16, 63, 3, SK_ACT_SOFTPLUS};
  CHECK(!sk_model_new(&mc)); /* the label embedding would be a 129th tensor */
  mc.depth = 2;
  mc.classes = -1;
  CHECK(!sk_model_new(&mc));
  CHECK(!sk_model_new_unet_classes(&small, 70000));
  /* An unconditional mlp ignores classes, as before. */
  sk_model_config plain = {SK_MODEL_MLP, 2, 16, 2, 5, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&plain);
  CHECK(m && sk_model_get_config(m)->classes == 0 && find(m, "label_embed.weight") < 0);
  sk_model_free(m);
}

/* Row 4·(s·2^20 + r) of one stream: a dropout rate within 5 standard
 * deviations of p over 10^5 draws, draws that differ between steps, and no
 * dropout at p = 0 or always at p = 1. */
TEST(label_dropout_draws) {
  long drop = 0, same = 0;
  for (int s = 0; s < 100; s++)
    for (int r = 0; r < 1000; r++) {
      const int a = sk__label_dropped(5, s, r, 0.1f);
      drop += a;
      same += a == sk__label_dropped(5, s + 1, r, 0.1f);
      CHECK(!sk__label_dropped(5, s, r, 0.0f) && sk__label_dropped(5, s, r, 1.0f));
    }
  printf("  dropped %ld of 100000 at p = 0.1\n", drop);
  CHECK_NEAR(drop / 1e5, 0.1, 5 * sqrt(0.09 / 1e5));
  /* Independent across steps: P(equal) = 0.81 + 0.01. */
  CHECK_NEAR(same / 1e5, 0.82, 5 * sqrt(0.82 * 0.18 / 1e5));
}

/* Training a conditional model gives the same bits on 1, 2 and 3 threads
 * (labels and their dropout are drawn per step and row), uses the labels
 * (another dropout gives other weights), and refuses data without labels or
 * with more classes, and a resume with another dropout. */
/* 600 mog8 points labelled by component mod 4 (4 classes), or unlabelled. */
static sk_dataset *labelled_data(int with_labels) {
  sk_tensor *x = sk_tensor_new(2, (int64_t[]){600, 2});
  sk_tensor *l = with_labels ? sk_tensor_new(1, (int64_t[]){600}) : NULL;
  int32_t y[600];
  sk_rng r = sk_rng_make(1, 1);
  sk_toy_sample("mog8", &r, 600, sk_tensor_data(x), y);
  for (int i = 0; l && i < 600; i++) sk_tensor_data(l)[i] = (float)(y[i] % 4);
  sk_dataset *ds = NULL;
  sk_dataset_new(x, l, &ds);
  return ds;
}

TEST(conditional_training_same_bits) {
  sk_dataset *ds = labelled_data(1);
  CHECK(ds && sk_dataset_classes(ds) == 4);
  const float ladder[3] = {2.0f, 1.0f, 0.3f};
  sk_train_config tc = {SK_OBJ_NCSN, 77, 1, 0, 0.1f, 3, ladder, sk_adam_config_default(), 4};
  float *w[4];
  for (int run = 0; run < 4; run++) {
    omp_set_num_threads(run < 3 ? run + 1 : 2);
    sk_dataset_free(ds); /* a data set keeps its position: each run starts afresh */
    ds = labelled_data(1);
    sk_model *m = cond_mlp(4, 2);
    sk_trainer *t;
    CHECK_OK(sk_trainer_new(m, ds, &tc, &t));
    CHECK(sk_trainer_label_dropout(t) == 0.1f);
    if (run == 3) CHECK_OK(sk_trainer_set_label_dropout(t, 0.5f));
    for (int s = 0; s < 6; s++) CHECK_OK(sk_trainer_step(t, NULL, NULL));
    CHECK(sk_trainer_set_label_dropout(t, 0.2f) == SK_ERR_STATE);
    if (run == 0) {
      char dir[] = "/tmp/sk_cond_XXXXXX";
      CHECK(mkdtemp(dir));
      sk_model_info info = {.objective = SK_OBJ_NCSN, .n_sigmas = 3};
      memcpy(info.sigmas, ladder, sizeof ladder);
      CHECK_OK(sk_trainer_save(t, dir, &info));
      sk_model *m2 = cond_mlp(4, 2);
      sk_trainer *t2;
      CHECK_OK(sk_trainer_new(m2, ds, &tc, &t2));
      CHECK_OK(sk_trainer_set_label_dropout(t2, 0.3f));
      CHECK(sk_trainer_resume(t2, dir) == SK_ERR_INVALID);
      sk_run_mismatch mm;
      CHECK(sk_trainer_resume_mismatch(t2, &mm) && !strcmp(mm.setting, "label_dropout"));
      CHECK_OK(sk_trainer_set_label_dropout(t2, 0.1f));
      CHECK_OK(sk_trainer_resume(t2, dir));
      sk_trainer_free(t2);
      sk_model_free(m2);
      char path[64];
      snprintf(path, sizeof path, "%s/model.safetensors", dir);
      remove(path);
      snprintf(path, sizeof path, "%s/state.safetensors", dir);
      remove(path);
      remove(dir);
    }
    const size_t np = sk_model_num_params(m);
    w[run] = malloc(np * sizeof(float));
    CHECK(w[run]);
    memcpy(w[run], sk_model_params(m), np * sizeof(float));
    sk_trainer_free(t);
    sk_model_free(m);
  }
  sk_model *m = cond_mlp(4, 2);
  const size_t np = sk_model_num_params(m) * sizeof(float);
  sk_model_free(m);
  CHECK(memcmp(w[0], w[1], np) == 0 && memcmp(w[0], w[2], np) == 0);
  CHECK(memcmp(w[0], w[3], np) != 0);
  for (int i = 0; i < 4; i++) free(w[i]);
  omp_set_num_threads(2);

  /* Unlabelled data, more classes than the model, dropout on a plain model. */
  m = cond_mlp(3, 2);
  sk_trainer *t = NULL;
  CHECK(sk_trainer_new(m, ds, &tc, &t) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "4 classes"));
  sk_model_free(m);
  sk_dataset *plain = labelled_data(0);
  CHECK(plain);
  m = cond_mlp(4, 2);
  CHECK(sk_trainer_new(m, plain, &tc, &t) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "labelled"));
  sk_model_free(m);
  sk_model_config uc = {SK_MODEL_NCMLP, 2, 16, 2, 0, SK_ACT_SOFTPLUS};
  m = sk_model_new(&uc);
  CHECK_OK(sk_trainer_new(m, plain, &tc, &t));
  CHECK(sk_trainer_label_dropout(t) == 0);
  CHECK(sk_trainer_set_label_dropout(t, 0.1f) == SK_ERR_INVALID);
  sk_trainer_free(t);
  sk_model_free(m);
  sk_dataset_free(plain);
  sk_dataset_free(ds);
}

/* w = 0: the bits of the model's unconditional score; w = 1: those of its
 * score with label y (a graph of its own); w = 3: (1 − w)·uncond + w·cond. */
static int check_cfg(sk_model *m, int rows, int64_t n, float sigma) {
  const int d = sk_model_get_config(m)->dim, K = sk_model_get_config(m)->classes;
  const size_t nd = (size_t)n * (size_t)d;
  float *x = malloc(nd * sizeof(float)), *u = malloc(nd * sizeof(float)),
        *c = malloc(nd * sizeof(float)), *got = malloc(nd * sizeof(float));
  sk_rng r = sk_rng_make(8, 8);
  sk_rng_normal(&r, x, nd);
  sk_score_fn *fu = NULL, *f0 = NULL, *f1 = NULL, *f3 = NULL;
  int ok = x && u && c && got && sk_score_fn_model(m, rows, &fu) == SK_OK &&
           sk_score_fn_cfg(m, rows, K - 1, 0.0f, &f0) == SK_OK &&
           sk_score_fn_cfg(m, rows, K - 1, 1.0f, &f1) == SK_OK &&
           sk_score_fn_cfg(m, rows, K - 1, 3.0f, &f3) == SK_OK;
  ok = ok && sk_score_fn_eval(fu, x, n, sigma, u) == SK_OK &&
       sk_score_fn_eval(f0, x, n, sigma, got) == SK_OK;
  if (ok && memcmp(u, got, nd * sizeof(float)) != 0) {
    fprintf(stderr, "  w = 0 differs from the unconditional score\n");
    ok = 0;
  }
  /* The conditional score through sk_model_apply_labels in a graph built
   * here, of as many rows (a product's bits may depend on its shape). */
  sk_graph *g = sk_graph_new();
  sk_node p[64];
  ok = ok && g && sk_model_bind(m, g, NULL, p) == SK_OK;
  sk_node gx = sk_input(g, "x", 2, (int64_t[]){rows, d});
  sk_node gs = sk_input(g, "s", 2, (int64_t[]){rows, 1});
  sk_node gl = sk_input(g, "l", 2, (int64_t[]){rows, K + 1});
  sk_node out = sk_model_apply_labels(m, g, p, gx, gs, gl);
  ok = ok && sk_graph_compile(g, 1, &out) == SK_OK;
  if (ok) {
    memcpy(sk_graph_data(g, gx), x, nd * sizeof(float));
    float *s = sk_graph_data(g, gs), *l = sk_graph_data(g, gl);
    memset(l, 0, (size_t)rows * (size_t)(K + 1) * sizeof(float));
    for (int64_t i = 0; i < rows; i++) {
      s[i] = sigma;
      l[i * (K + 1) + K - 1] = 1;
    }
    ok = sk_graph_run(g) == SK_OK;
    memcpy(c, sk_graph_data(g, out), nd * sizeof(float));
  }
  ok = ok && sk_score_fn_eval(f1, x, n, sigma, got) == SK_OK;
  if (ok && memcmp(c, got, nd * sizeof(float)) != 0) {
    fprintf(stderr, "  w = 1 differs from the conditional score\n");
    ok = 0;
  }
  ok = ok && sk_score_fn_eval(f3, x, n, sigma, got) == SK_OK;
  double diff = 0, scale = 0;
  for (size_t i = 0; ok && i < nd; i++) {
    const double want = -2.0 * u[i] + 3.0 * c[i];
    if (!(fabs(got[i] - want) <= 1e-5 * (1 + fabs(want)))) {
      fprintf(stderr, "  w = 3: element %zu is %g, want %g\n", i, got[i], want);
      ok = 0;
    }
    diff += fabs((double)c[i] - u[i]);
    scale += fabs((double)u[i]);
  }
  /* The label matters. */
  if (ok && !(diff > 1e-3 * scale)) {
    fprintf(stderr, "  the conditional and unconditional scores agree (%g of %g)\n", diff, scale);
    ok = 0;
  }
  sk_graph_free(g);
  sk_score_fn_free(fu);
  sk_score_fn_free(f0);
  sk_score_fn_free(f1);
  sk_score_fn_free(f3);
  free(x);
  free(u);
  free(c);
  free(got);
  return ok;
}

TEST(classifier_free_guidance_exact_ends) {
  sk_model *m = cond_mlp(5, 11);
  CHECK(check_cfg(m, 64, 50, 0.7f));
  sk_score_fn *f;
  CHECK(sk_score_fn_cfg(m, 64, 5, 1.0f, &f) == SK_ERR_INVALID);
  CHECK(sk_score_fn_cfg(m, 64, 0, NAN, &f) == SK_ERR_INVALID);
  sk_model_free(m);
  sk_model_config uc = {SK_MODEL_NCMLP, 2, 16, 2, 0, SK_ACT_SOFTPLUS};
  m = sk_model_new(&uc);
  CHECK(sk_score_fn_cfg(m, 64, 0, 1.0f, &f) == SK_ERR_INVALID);
  sk_model_free(m);
  m = sk_model_new_unet_classes(&small, 3);
  CHECK(m);
  sk_model_init(m, 12);
  CHECK(check_cfg(m, 4, 3, 0.5f));
  sk_model_free(m);
}

/* Saved and loaded: the config's classes and the embedding come back, and
 * the guided score is the same; a file without the embedding is refused. */
TEST(conditional_model_files) {
  char dir[] = "/tmp/sk_condf_XXXXXX", path[64];
  CHECK(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  for (int kind = 0; kind < 2; kind++) {
    sk_model *m = kind ? sk_model_new_unet_classes(&small, 3) : cond_mlp(5, 3), *back = NULL;
    CHECK(m);
    sk_model_init(m, 4);
    sk_model_info info = {.objective = SK_OBJ_NCSN, .n_sigmas = 1, .sigmas = {1.0f}};
    CHECK_OK(sk_model_save(path, m, NULL, &info));
    CHECK_OK(sk_model_load(path, 0, &back, NULL));
    CHECK_EQ_INT(sk_model_get_config(back)->classes, kind ? 3 : 5);
    CHECK_EQ_INT(sk_model_get_config(back)->kind, kind ? SK_MODEL_UNET : SK_MODEL_NCMLP);
    CHECK(memcmp(sk_model_params(m), sk_model_params(back),
                 sk_model_num_params(m) * sizeof(float)) == 0);
    sk_model_free(back);
    sk_model_free(m);
  }
  /* An ncmlp file that says conditional but lacks the embedding. */
  sk_model_config uc = {SK_MODEL_NCMLP, 2, 16, 2, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&uc), *back = NULL;
  sk_safetensors *sf = NULL;
  CHECK_OK(sk_model_save(path, m, NULL, NULL));
  CHECK_OK(sk_safetensors_load(path, &sf));
  char meta[2048];
  snprintf(meta, sizeof meta, "%s", sk_safetensors_meta(sf, "scorekit"));
  char *at = strstr(meta, "\"classes\":0");
  CHECK(at);
  at[10] = '4';
  const int nt = sk_model_num_tensors(m);
  sk_named_tensor ts[16];
  for (int i = 0; i < nt; i++) {
    const sk_tensor *t;
    CHECK_OK(sk_safetensors_get(sf, sk_model_tensor_name(m, i), &t));
    ts[i] = (sk_named_tensor){sk_model_tensor_name(m, i), sk_tensor_ndim(t), {0},
                              sk_tensor_cdata(t)};
    for (int k = 0; k < sk_tensor_ndim(t); k++) ts[i].shape[k] = sk_tensor_shape(t)[k];
  }
  const char *kv[2] = {"scorekit", meta};
  CHECK_OK(sk_safetensors_save(path, ts, nt, kv, 1));
  CHECK(sk_model_load(path, 0, &back, NULL) == SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "label_embed.weight is missing"));
  sk_safetensors_free(sf);
  sk_model_free(m);
  remove(path);
  remove(dir);
}

/* ---- inpainting on a mixture with the exact score ---- */

/* Two correlated components in 2-D: x2 given x1 is, in component k, normal
 * with mean μ2 + c/a (x1 − μ1) and variance b − c²/a (Σ = [[a, c], [c, b]]),
 * the components weighted by π_k N(x1; μ1, a). */
static const float mix_w[2] = {0.4f, 0.6f}, mix_mu[4] = {-1.5f, -1.0f, 1.5f, 1.5f},
                   mix_cov[8] = {0.5f, 0.35f, 0.35f, 0.6f, 0.6f, -0.3f, -0.3f, 0.4f};

/* P(X2 <= x2 | X1 = x1), in double. */
static double cond_cdf(double x1, double x2) {
  double wsum = 0, cdf = 0;
  for (int k = 0; k < 2; k++) {
    const double a = mix_cov[4 * k], c = mix_cov[4 * k + 1], b = mix_cov[4 * k + 3];
    const double z1 = (x1 - mix_mu[2 * k]) / sqrt(a);
    const double w = mix_w[k] * exp(-0.5 * z1 * z1) / sqrt(a);
    const double m = mix_mu[2 * k + 1] + c / a * (x1 - mix_mu[2 * k]), v = b - c * c / a;
    wsum += w;
    cdf += w * 0.5 * erfc(-(x2 - m) / sqrt(2 * v));
  }
  return cdf / wsum;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Kolmogorov–Smirnov distance of the PIT values F(x2 | x1) from U(0, 1). */
static double pit_ks(const float *x, int64_t n) {
  double *u = malloc((size_t)n * sizeof *u), D = 0;
  if (!u) return 1;
  for (int64_t i = 0; i < n; i++) u[i] = cond_cdf(x[2 * i], x[2 * i + 1]);
  qsort(u, (size_t)n, sizeof *u, cmp_double);
  for (int64_t i = 0; i < n; i++)
    D = fmax(D, fmax((double)(i + 1) / (double)n - u[i], u[i] - (double)i / (double)n));
  free(u);
  return D;
}

enum { IMP_N = 2000 };

/* Rows of the mixture with x2 replaced by a start drawn from N(0, σ_1²);
 * `truth` keeps the rows as drawn. */
static void imputation_rows(float *x, float *truth, float *mask, const sk_gmm *g, float s1,
                            uint64_t seed) {
  sk_rng r = sk_rng_make(seed, 2);
  sk_gmm_sample(g, 0, &r, IMP_N, truth, NULL);
  float start[IMP_N];
  sk_rng_normal(&r, start, IMP_N);
  for (int i = 0; i < IMP_N; i++) {
    x[2 * i] = truth[2 * i];
    x[2 * i + 1] = s1 * start[i];
    mask[2 * i] = 1;
    mask[2 * i + 1] = 0;
  }
}

/* The two samplers on the mixture: PC at the points' default levels, and
 * annealed Langevin on a 10-level ladder. */
static sk_inpaint_config imputation_config(sk_inpaint_sampler sampler, const float *ladder) {
  const sk_inpaint_config ic = {sampler,
                                {ladder[0], ladder[9], SK_PC_LEVELS_POINTS, SK_PC_CORRECTOR_STEPS,
                                 SK_PC_SNR, 1, NULL},
                                {10, ladder, 100, 1e-4f, 1, NULL}};
  return ic;
}

TEST(inpainting_gaussian_mixture) {
  sk_gmm *g = sk_gmm_new(2, 2, mix_w, mix_mu, mix_cov);
  CHECK(g);
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  float ladder[10];
  for (int i = 0; i < 10; i++) ladder[i] = 4.0f * powf(0.01f / 4.0f, (float)i / 9.0f);
  static float x[2 * IMP_N], truth[2 * IMP_N], mask[2 * IMP_N], fresh[2 * IMP_N];
  sk_rng fr = sk_rng_make(99, 3);
  CHECK_OK(sk_gmm_sample(g, 0, &fr, IMP_N, fresh, NULL));
  double floor_e;
  static const char *const names[] = {"pc", "langevin"};
  for (int s = 0; s < 2; s++) {
    const sk_inpaint_config ic = imputation_config(s ? SK_INPAINT_LANGEVIN : SK_INPAINT_PC, ladder);
    imputation_rows(x, truth, mask, g, ladder[0], 5 + (uint64_t)s);
    CHECK_OK(sk_energy_distance(truth, IMP_N, fresh, IMP_N, 2, &floor_e));
    sk_rng r = sk_rng_make(7, 0);
    CHECK_OK(sk_inpaint(f, &ic, &r, x, mask, IMP_N));
    int kept = 1;
    for (int i = 0; i < IMP_N; i++) kept &= memcmp(&x[2 * i], &truth[2 * i], sizeof(float)) == 0;
    CHECK(kept);
    double e;
    CHECK_OK(sk_energy_distance(x, IMP_N, fresh, IMP_N, 2, &e));
    const double D = pit_ks(x, IMP_N), D_truth = pit_ks(truth, IMP_N);
    printf("  %s: KS of F(x2 | x1) from U(0,1) %.4f (the true x2: %.4f); energy distance to "
           "fresh draws %.5f (the true rows: %.5f)\n", names[s], D, D_truth, e, floor_e);
    /* 1.63/√n is the 1 % point of the KS law. */
    CHECK(D < 1.63 / sqrt((double)IMP_N));
    CHECK(e < floor_e + 0.01);
  }
  /* A sampler that ignores the mask (then puts the known values back) draws
   * x2 from its marginal, unrelated to x1: both checks fail. An all-zero
   * mask is that sampler: the plain one, bit for bit. */
  static float none[2 * IMP_N], plain[2 * IMP_N];
  for (int s = 0; s < 2; s++) {
    const sk_inpaint_config ic = imputation_config(s ? SK_INPAINT_LANGEVIN : SK_INPAINT_PC, ladder);
    imputation_rows(x, truth, mask, g, ladder[0], 6);
    memcpy(plain, x, sizeof plain);
    CHECK_OK(sk_energy_distance(truth, IMP_N, fresh, IMP_N, 2, &floor_e));
    sk_rng r = sk_rng_make(7, 0), rp = r;
    CHECK_OK(sk_inpaint(f, &ic, &r, x, none, IMP_N));
    CHECK_OK(s ? sk_langevin(f, &ic.langevin, &rp, plain, IMP_N)
               : sk_pc_sample(f, &ic.pc, &rp, plain, IMP_N));
    CHECK(memcmp(x, plain, sizeof plain) == 0);
    for (int i = 0; i < IMP_N; i++) x[2 * i] = truth[2 * i];
    double e;
    CHECK_OK(sk_energy_distance(x, IMP_N, fresh, IMP_N, 2, &e));
    const double D = pit_ks(x, IMP_N);
    printf("  %s ignoring the mask: KS %.4f, energy distance %.5f\n", names[s], D, e);
    CHECK(D > 3 * 1.63 / sqrt((double)IMP_N));
    CHECK(e > floor_e + 0.05);
  }
  /* Bad masks, inputs and configs. */
  sk_inpaint_config ic = imputation_config(SK_INPAINT_PC, ladder);
  sk_rng r = sk_rng_make(7, 0);
  mask[3] = 0.5f;
  CHECK(sk_inpaint(f, &ic, &r, x, mask, IMP_N) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "row 1 column 1"));
  mask[3] = 0;
  x[0] = NAN;
  CHECK(sk_inpaint(f, &ic, &r, x, mask, IMP_N) == SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "row 0 column 0"));
  x[0] = 0;
  ic.pc.levels = 1;
  CHECK(sk_inpaint(f, &ic, &r, x, mask, IMP_N) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "pc: levels 1"));
  ic.sampler = SK_INPAINT_LANGEVIN;
  ic.langevin.steps_per_level = 0;
  CHECK(sk_inpaint(f, &ic, &r, x, mask, IMP_N) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "langevin: need steps >= 1"));
  ic.sampler = (sk_inpaint_sampler)7;
  CHECK(sk_inpaint(f, &ic, &r, x, mask, IMP_N) == SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "unknown sampler 7"));
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

/* The last progress report: (done, total). */
static void last_progress(void *ctx, int64_t done, int64_t total) {
  int64_t *p = ctx;
  p[0] = done;
  p[1] = total;
}

/* With a model (chunks of 64 rows on up to 3 threads), each sampler: the
 * same bits on 1, 2 and 3 threads, the known entries untouched, r left past
 * the draws each chunk takes (PC 2 N (C + 1), Langevin L (T + 1)), and
 * progress reported in score evaluations as sampling does. */
TEST(inpainting_same_bits_any_threads) {
  sk_model *m = cond_mlp(3, 21);
  const int64_t n = 150; /* 64 + 64 + 22 */
  const float ladder[3] = {2.0f, 1.0f, 0.5f};
  float *x[3], *mask = malloc((size_t)n * 2 * sizeof(float)), *x0 = malloc((size_t)n * 2 * sizeof(float));
  CHECK(mask && x0);
  sk_rng r0 = sk_rng_make(3, 3);
  sk_rng_normal(&r0, x0, (size_t)n * 2);
  for (int64_t i = 0; i < n; i++) {
    mask[2 * i] = (float)(i % 2);
    mask[2 * i + 1] = (float)(1 - i % 2);
  }
  for (int s = 0; s < 2; s++) {
    uint64_t offset[3];
    for (int t = 0; t < 3; t++) {
      omp_set_num_threads(t + 1);
      sk_score_fn *f;
      CHECK_OK(sk_score_fn_cfg(m, 64, 1, 2.0f, &f));
      x[t] = malloc((size_t)n * 2 * sizeof(float));
      CHECK(x[t]);
      memcpy(x[t], x0, (size_t)n * 2 * sizeof(float));
      int64_t progress[2] = {0, 0};
      const sk_sample_hooks hooks = {last_progress, progress, 0, NULL};
      const sk_inpaint_config ic = {s ? SK_INPAINT_LANGEVIN : SK_INPAINT_PC,
                                    {2.0f, 0.5f, 5, 2, 0.16f, 1, &hooks},
                                    {3, ladder, 4, 0.05f, 1, &hooks}};
      sk_rng r = sk_rng_make(12, 0);
      r.offset = 5;
      CHECK_OK(sk_inpaint(f, &ic, &r, x[t], mask, n));
      offset[t] = r.offset;
      /* 3 chunks of 5·(2 + 1) or 3·4 + 1 evaluations. */
      CHECK(progress[0] == progress[1] && progress[1] == 3 * (s ? 13 : 15));
      sk_score_fn_free(f);
    }
    for (int t = 1; t < 3; t++) {
      CHECK(memcmp(x[0], x[t], (size_t)n * 2 * sizeof(float)) == 0);
      CHECK(offset[t] == offset[0]);
    }
    int kept = 1, moved = 0;
    for (int64_t i = 0; i < 2 * n; i++) {
      if (mask[i] == 1) kept &= x[0][i] == x0[i];
      else moved += x[0][i] != x0[i];
    }
    CHECK(kept && moved == n);
    /* 8, then per chunk 2·5·(2 + 1) (PC) or 3·(4 + 1) (Langevin) draws of
     * 128 (or 44) values. */
    CHECK(offset[0] == 8 + (s ? 15ull : 30ull) * (128 + 128 + 44));
    for (int t = 0; t < 3; t++) free(x[t]);
  }
  free(mask);
  free(x0);
  omp_set_num_threads(2);
  sk_model_free(m);
}

/* ---- the program ---- */

static char cli_dir[64], cli_err[4096];

/* Runs `scorekit ARGS` in cli_dir; its exit code, stderr in cli_err. */
static int cli(const char *fmt, ...) {
  char args[2048], cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>err.txt >out.txt", cli_dir, SK_CLI_PATH, args);
  const int rc = system(cmd);
  snprintf(cmd, sizeof cmd, "%s/err.txt", cli_dir);
  FILE *f = fopen(cmd, "r");
  const size_t n = f ? fread(cli_err, 1, sizeof cli_err - 1, f) : 0;
  cli_err[n] = 0;
  if (f) fclose(f);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static int cli_exists(const char *name) {
  char path[256];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", cli_dir, name);
  return stat(path, &st) == 0;
}

static sk_tensor *cli_npy(const char *name) {
  char path[256];
  sk_tensor *t = NULL;
  snprintf(path, sizeof path, "%s/%s", cli_dir, name);
  return sk_npy_load(path, &t) == SK_OK ? t : NULL;
}

/* Share of mog8 samples within 3 std (1.5) of mode k, at 4 (cos, sin)(2πk/8). */
static double mode_share(const sk_tensor *t, int k) {
  const float *x = sk_tensor_cdata(t);
  const int64_t n = sk_tensor_shape(t)[0];
  const double mx = 4 * cos(0.25 * 3.14159265358979 * k), my = 4 * sin(0.25 * 3.14159265358979 * k);
  int64_t in = 0;
  for (int64_t i = 0; i < n; i++) in += hypot(x[2 * i] - mx, x[2 * i + 1] - my) < 1.5;
  return (double)in / (double)n;
}

/* Samples of --class all (8 blocks of `per` rows of mog8, class order): the
 * mean share of each block in its own mode (*own) and in the opposite one
 * (*opposite). 0 when the file is not (8·per, 2). */
static int class_blocks(const char *name, int64_t per, double *own, double *opposite) {
  sk_tensor *all = cli_npy(name);
  const int ok = all && sk_tensor_ndim(all) == 2 && sk_tensor_shape(all)[0] == 8 * per &&
                 sk_tensor_shape(all)[1] == 2;
  *own = *opposite = 0;
  for (int k = 0; ok && k < 8; k++) {
    sk_tensor *blk = sk_tensor_new(2, (int64_t[]){per, 2});
    if (!blk) break;
    memcpy(sk_tensor_data(blk), sk_tensor_cdata(all) + 2 * per * k, 2 * per * sizeof(float));
    *own += mode_share(blk, k) / 8;
    *opposite += mode_share(blk, (k + 4) % 8) / 8;
    sk_tensor_free(blk);
  }
  sk_tensor_free(all);
  return ok;
}

/* train --conditional, sample --class with classifier-free guidance, eval
 * --class --classifier, inpaint; and every misuse refused with a message
 * naming it and nothing written. */
TEST(cli_conditional_end_to_end) {
  snprintf(cli_dir, sizeof cli_dir, "/tmp/sk_condcli_XXXXXX");
  CHECK(mkdtemp(cli_dir));
  const char *toy = "--data mog8 --n-data 4000 --quiet";
  CHECK_EQ_INT(cli("train %s --conditional --label-dropout 0.2 --steps 1000 --out run", toy), 0);
  CHECK_EQ_INT(cli("train %s --objective classifier --steps 600 --out clf",
                   toy), 0);
  /* Guided to class 2: w = 0 is the prior (1/8 a mode), w = 3 the class. A
   * model this brief leaves many samples between the modes, so the check is
   * relative: guidance that ignored the label would leave the shares alike. */
  double shares[2];
  for (int w = 0; w <= 3; w += 3) {
    CHECK_EQ_INT(cli("sample --model run/model.safetensors --class 2 --guidance %d --n 300 "
                     "--steps-per-level 20 --out s%d.npy", w, w), 0);
    sk_tensor *t = cli_npy(w ? "s3.npy" : "s0.npy");
    CHECK(t);
    const double share = mode_share(t, 2);
    printf("  w = %d: %.3f of the samples in mode 2\n", w, share);
    shares[w / 3] = share;
    sk_tensor_free(t);
  }
  CHECK(shares[1] > 0.15 && shares[1] > 4 * shares[0]);
  /* The same guidance through the predictor-corrector sampler and the
   * probability-flow ODE. */
  static const char *const samplers[] = {"pc --steps 100", "ode"};
  for (int k = 0; k < 2; k++) {
    CHECK_EQ_INT(cli("sample --model run/model.safetensors --class 2 --guidance 3 --n 300 "
                     "--sampler %s --out q%d.npy", samplers[k], k), 0);
    sk_tensor *t = cli_npy(k ? "q1.npy" : "q0.npy");
    CHECK(t);
    const double share = mode_share(t, 2);
    printf("  --sampler %s, w = 3: %.3f of the samples in mode 2\n", samplers[k], share);
    CHECK(share > 0.15 && share > 4 * shares[0]);
    sk_tensor_free(t);
  }
  /* --class all: --n rows of each class in class order, each block of its
   * own mode far more than of the opposite one. */
  CHECK_EQ_INT(cli("sample --model run/model.safetensors --class all --guidance 3 --n 100 "
                   "--sampler pc --steps 100 --out all.npy"), 0);
  double own, opposite;
  CHECK(class_blocks("all.npy", 100, &own, &opposite));
  printf("  --class all: %.3f of each class's samples in its own mode, %.3f in the opposite\n",
         own, opposite);
  CHECK(own > 0.15 && own > 4 * opposite);
  /* --class all with a classifier: its guidance, class after class, of the
   * same model's unconditional score. */
  CHECK_EQ_INT(cli("sample --model run/model.safetensors --classifier clf/model.safetensors "
                   "--class all --guidance 3 --n 100 --sampler pc --steps 100 --out gall.npy"), 0);
  CHECK(class_blocks("gall.npy", 100, &own, &opposite));
  printf("  --classifier --class all: %.3f of each class's samples in its own mode, %.3f in the "
         "opposite\n", own, opposite);
  /* Weaker than the conditional model (the unconditional score saw a fifth
   * of the labels dropped), but well above the prior's share of a mode. */
  CHECK(own > 2.5 * shares[0] && own > 4 * opposite);
  /* The classifier's view of the same samples. */
  char path[256];
  double clf_share[2];
  for (int w = 0; w <= 3; w += 3) {
    CHECK_EQ_INT(cli("eval --samples s%d.npy --data mog8 --class 2 --classifier "
                     "clf/model.safetensors --json", w), 0);
    snprintf(path, sizeof path, "%s/out.txt", cli_dir);
    FILE *f = fopen(path, "r");
    char json[2048] = "";
    CHECK(f && fgets(json, sizeof json, f));
    fclose(f);
    const char *at = strstr(json, "\"classifier_share\":");
    CHECK(at);
    clf_share[w / 3] = atof(at + 19);
  }
  printf("  the classifier assigns %.3f (w = 0) and %.3f (w = 3) of them to class 2\n",
         clf_share[0], clf_share[1]);
  CHECK(clf_share[1] > 0.5 && clf_share[1] > 2 * clf_share[0]);
  /* Inpainting rows, by PC (the default) and annealed Langevin: the first
   * coordinate kept bit for bit, the second drawn. */
  static const char *const inpainters[] = {"--steps 100", "--sampler langevin --steps-per-level 20"};
  for (int k = 0; k < 2; k++) {
    CHECK_EQ_INT(cli("inpaint --model run/model.safetensors --input s0.npy --mask-kind half %s "
                     "--out i.npy --mask-out m.npy", inpainters[k]), 0);
    sk_tensor *in = cli_npy("s0.npy"), *got = cli_npy("i.npy"), *mask = cli_npy("m.npy");
    CHECK(in && got && mask && sk_tensor_numel(got) == 600);
    int kept = 1, changed = 0;
    for (int i = 0; i < 300; i++) {
      kept &= memcmp(sk_tensor_cdata(in) + 2 * i, sk_tensor_cdata(got) + 2 * i, 4) == 0;
      changed += sk_tensor_cdata(in)[2 * i + 1] != sk_tensor_cdata(got)[2 * i + 1];
      kept &= sk_tensor_cdata(mask)[2 * i] == 1 && sk_tensor_cdata(mask)[2 * i + 1] == 0;
    }
    CHECK(kept && changed == 300);
    sk_tensor_free(in);
    sk_tensor_free(got);
    sk_tensor_free(mask);
  }
  /* Non-finite inputs and masks are refused (below). */
  float rows[4] = {0.5f, 1.0f, NAN, -1.0f}, nan_mask[2] = {NAN, 1};
  snprintf(path, sizeof path, "%s/nan_rows.npy", cli_dir);
  CHECK_OK(sk_npy_save_f32(path, 2, (int64_t[]){2, 2}, rows));
  snprintf(path, sizeof path, "%s/nan_mask.npy", cli_dir);
  CHECK_OK(sk_npy_save_f32(path, 1, (int64_t[]){2}, nan_mask));

  /* Misuse. */
  static const struct {
    const char *args, *words;
  } bad[] = {
      {"train --data mog8 --conditional --model mlp --objective dsm --out x", "needs --model ncmlp or unet"},
      {"train --data mog8 --label-dropout 0.3 --out x", "applies with --conditional only"},
      {"train --data mog8 --conditional --label-dropout 1.5 --out x", "--label-dropout"},
      {"train --data swissroll --conditional --out x", "has no labels"},
      {"sample --model run/model.safetensors --class 8 --out x.npy", "classes 0..7"},
      {"sample --model clf/model.safetensors --class 1 --out x.npy", "classifier"},
      {"sample --model run/model.safetensors --guidance 2 --out x.npy", "applies with --class only"},
      {"inpaint --model run/model.safetensors --input s0.npy --out x.npy", "one of --mask"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask m.npy --mask-kind half --out x.npy",
       "one of --mask"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask-kind centre --out x.npy",
       "applies to images"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask-kind random:2 --out x.npy",
       "random:P"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask s0.npy --out x.npy",
       "a mask holds 0 (missing) and 1 (known) only"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask mrow.npy --out x.npy",
       "neither X's (300, 2) nor one row's"},
      {"inpaint --model clf/model.safetensors --input s0.npy --mask-kind half --out x.npy",
       "noise-conditional score model"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask-kind half --class 9 --out x.npy",
       "classes 0..7"},
      {"inpaint --model run/model.safetensors --input nan_rows.npy --mask-kind half --out x.npy",
       "nan_rows.npy: non-finite value (NaN) at flat index 2"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask nan_mask.npy --out x.npy",
       "nan_mask.npy: non-finite value (NaN) at flat index 0"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask-kind half --sampler ode "
       "--out x.npy", "--sampler: unknown \"ode\" (langevin, pc)"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask-kind half --steps 10 --eps 0.1 "
       "--out x.npy", "--steps and --eps: flags of different samplers"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask-kind half --sampler langevin "
       "--snr 0.2 --out x.npy", "--snr: does not apply to --sampler langevin"},
      {"inpaint --model run/model.safetensors --input s0.npy --mask-kind half --steps 1 --out x.npy",
       "--steps: expected an integer in 2..1000000"},
      {"eval --samples s3.npy --data swissroll --class 1", "has no labels"},
      {"eval --samples s3.npy --data mog8 --class 2 --classifier clf/model.safetensors --n 10",
       "not with --class"},
      {"sample --model run/model.safetensors --class all --classifier run/model.safetensors "
       "--out x.npy", "is a score model, not a classifier"},
      {"sample --model run/model.safetensors --class 2 --sampler ode --steps-per-level 3 "
       "--out x.npy", "does not apply to --sampler ode"},
  };
  /* A mask of three values a row, for a model of two. */
  const float m3[3] = {1, 0, 1};
  snprintf(path, sizeof path, "%s/mrow.npy", cli_dir);
  CHECK_OK(sk_npy_save_f32(path, 1, (int64_t[]){3}, m3));
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const int rc = cli("%s", bad[i].args);
    if (rc == 0 || !strstr(cli_err, bad[i].words) || strchr(cli_err, '\n') != cli_err + strlen(cli_err) - 1) {
      fprintf(stderr, "  %s: exit %d, stderr \"%s\" (wanted \"%s\")\n", bad[i].args, rc, cli_err,
              bad[i].words);
      CHECK(0);
    }
    CHECK(!cli_exists("x.npy") && !cli_exists("x"));
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", cli_dir);
  CHECK(system(cmd) == 0);
}

/* NULL where a sampler needs a pointer is refused and named: inpainting's
 * mask, and the score function, config, random generator, x or logp of
 * every sampler. With no rows, x may be NULL. */
TEST(samplers_refuse_null_arguments) {
  sk_gmm *g = sk_gmm_builtin("mog8");
  sk_score_fn *f;
  CHECK_OK(sk_score_fn_gmm(g, &f));
  float x[4] = {0}, mask[4] = {1, 0, 1, 0};
  double lp[2];
  sk_rng r = sk_rng_make(1, 1);
  const float ladder[2] = {1, 0.1f};
  const sk_langevin_config lc = {2, ladder, 2, 1e-3f, 0, NULL};
  const sk_pc_config pc = {1, 0.1f, 3, 1, 0.16f, 0, NULL};
  const sk_ode_config oc = {1, 0.1f, 1e-3, 1e-3, 0, NULL};
  const sk_likelihood_config lk = {oc, 0};
  sk_inpaint_config ic;
  memset(&ic, 0, sizeof ic);
  ic.pc = pc;
  CHECK_EQ_INT(sk_inpaint(f, &ic, &r, x, NULL, 2), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "mask is NULL"));
  for (int k = 0; k < 4; k++) {
    sk_score_fn *ff = k == 0 ? NULL : f;
    sk_rng *rr = k == 1 ? NULL : &r;
    float *xx = k == 2 ? NULL : x;
    const int nocfg = k == 3;
    CHECK_EQ_INT(sk_inpaint(ff, nocfg ? NULL : &ic, rr, xx, mask, 2), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "is NULL"));
    CHECK_EQ_INT(sk_langevin(ff, nocfg ? NULL : &lc, rr, xx, 2), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "is NULL"));
    CHECK_EQ_INT(sk_pc_sample(ff, nocfg ? NULL : &pc, rr, xx, 2), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "is NULL"));
    CHECK_EQ_INT(sk_likelihood(ff, nocfg ? NULL : &lk, rr, xx, 2, lp, NULL), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "is NULL"));
    if (k == 1) continue; /* the ODE draws nothing */
    CHECK_EQ_INT(sk_ode_sample(ff, nocfg ? NULL : &oc, xx, 2, NULL), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "is NULL"));
  }
  CHECK_EQ_INT(sk_likelihood(f, &lk, &r, x, 2, NULL, NULL), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "logp is NULL"));
  CHECK_OK(sk_langevin(f, &lc, &r, NULL, 0));
  CHECK_OK(sk_inpaint(f, &ic, &r, NULL, NULL, 0));
  sk_score_fn_free(f);
  sk_gmm_free(g);
}

TEST_MAIN(TEST_ENTRY(label_embedding_gradient_ncmlp), TEST_ENTRY(label_embedding_gradient_unet),
          TEST_ENTRY(conditional_config_errors), TEST_ENTRY(label_dropout_draws),
          TEST_ENTRY(conditional_training_same_bits), TEST_ENTRY(classifier_free_guidance_exact_ends),
          TEST_ENTRY(conditional_model_files), TEST_ENTRY(inpainting_gaussian_mixture),
          TEST_ENTRY(inpainting_same_bits_any_threads), TEST_ENTRY(cli_conditional_end_to_end),
          TEST_ENTRY(samplers_refuse_null_arguments))
