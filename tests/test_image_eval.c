/* `scorekit eval --classifier` end to end, on a small convnet written by
 * the library and uint8 image files written here: the Fréchet distance it
 * prints against the one computed in this file from sk_model_features (on
 * data whose rows are all one image, so the data sets it draws are known
 * whatever its shuffle), the samples' scale (the data's range, divided by
 * 255 like the data), the class histograms, and the refusals of a shape or
 * scale that does not match; and eval --class --classifier on rows. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scorekit/scorekit.h"
#include "test.h"

static char tmp[64];
static char out[8192], err[4096];

static void slurp(const char *name, char *buf, size_t cap) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
  buf[n] = 0;
  if (f) fclose(f);
}

/* Runs scorekit with `args` in tmp; the exit code, stdout in out, stderr in err. */
static int run(const char *args) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cd %s && %s %s >%s/out.txt 2>%s/err.txt", tmp, SK_CLI_PATH, args, tmp,
           tmp);
  const int rc = system(cmd);
  slurp("out.txt", out, sizeof out);
  slurp("err.txt", err, sizeof err);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static const char *path_of(const char *name) {
  static char p[256];
  snprintf(p, sizeof p, "%s/%s", tmp, name);
  return p;
}

/* A uint8 .npy (n, h, w). */
static void write_u8(const char *name, const uint8_t *px, int n, int h, int w) {
  char dict[128];
  snprintf(dict, sizeof dict, "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, %d, %d), }",
           n, h, w);
  size_t hl = strlen(dict), pad = (64 - (10 + hl + 1) % 64) % 64;
  FILE *f = fopen(path_of(name), "wb");
  const uint16_t len = (uint16_t)(hl + pad + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fputc(len & 0xff, f);
  fputc(len >> 8, f);
  fputs(dict, f);
  for (size_t i = 0; i < pad; i++) fputc(' ', f);
  fputc('\n', f);
  fwrite(px, 1, (size_t)n * h * w, f);
  fclose(f);
}

/* The number after "key": in out. */
static double json_value(const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(out, pat);
  return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* The k numbers of the array after "key":[ in out. */
static int json_array(const char *key, double *v, int k) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":[", key);
  const char *p = strstr(out, pat);
  if (!p) return 0;
  p += strlen(pat);
  for (int j = 0; j < k; j++) {
    char *end;
    v[j] = strtod(p, &end);
    if (end == p) return 0;
    p = end + 1;
  }
  return 1;
}

enum { H = 13, W = 12, D = H * W, K = 3, NS = 30, ND = 70 };
static const sk_convnet_config shape = {{8, 16, 32}, {1, H, W}, K, 8, 1.0f};

/* Data: ND copies of one image (so every data set eval draws is that image
 * n times: floor 0, and the distance to samples is |μ_s − φ|² + tr C_s). */
static void make_data(uint8_t *data) {
  float img[D];
  sk_rng r = sk_rng_make(5, 0);
  sk_rng_uniform(&r, img, D);
  for (int i = 0; i < ND * D; i++) data[i] = (uint8_t)(255 * img[i % D]);
}

/* Samples: NS random images in 0..255 (s) and divided by 255 (s01). */
static void make_samples(float *s, float *s01) {
  float u[NS * D];
  sk_rng r = sk_rng_make(6, 0);
  sk_rng_uniform(&r, u, NS * D);
  for (int i = 0; i < NS * D; i++) {
    const float v = floorf(255 * u[i]);
    if (s) s[i] = v;
    s01[i] = v / 255;
  }
}

static int setup(void) {
  strcpy(tmp, "/tmp/sk_test_image_eval_XXXXXX");
  if (!mkdtemp(tmp)) return 0;
  sk_model *m = sk_model_new_convnet(&shape);
  if (!m) return 0;
  sk_model_init(m, 17);
  /* Logits that vary between the samples, so that their histogram is not
   * all one class: logit k is the centred features' product with those of
   * sample 7k. (A random network gives every noise image the same class.) */
  float s01[NS * D], f[NS * 32];
  make_samples(NULL, s01);
  if (sk_model_features(m, s01, NS, 0.05f, f, NULL) != SK_OK) return 0;
  double mu[32] = {0};
  for (int i = 0; i < NS; i++)
    for (int j = 0; j < 32; j++) mu[j] += f[i * 32 + j] / NS;
  const int nt = sk_model_num_tensors(m);
  float *fw = sk_model_params(m) + sk_model_tensor_offset(m, nt - 2); /* fc.weight */
  float *fb = sk_model_params(m) + sk_model_tensor_offset(m, nt - 1); /* fc.bias */
  for (int k = 0; k < K; k++) {
    double b = 0;
    for (int j = 0; j < 32; j++) {
      fw[k * 32 + j] = (float)(f[7 * k * 32 + j] - mu[j]);
      b -= fw[k * 32 + j] * mu[j];
    }
    fb[k] = (float)b;
  }
  sk_model_info info = {.objective = SK_OBJ_CLASSIFIER, .n_sigmas = 2, .sigmas = {1.0f, 0.05f},
                        .data_scale = 255.0f, .image_shape = {1, H, W}};
  snprintf(info.data, sizeof info.data, "data.npy");
  static uint8_t data[ND * D];
  make_data(data);
  write_u8("data.npy", data, ND, H, W);
  const int ok = sk_model_save(path_of("clf.safetensors"), m, sk_model_params(m), &info) == SK_OK;
  sk_model_free(m);
  return ok;
}

static void cleanup(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmp);
}

/* Samples as float32 (n, 1, H, W) in the data's range. */
TEST(frechet_and_histogram_against_features) {
  static uint8_t data[ND * D];
  float s[NS * D], s01[NS * D];
  make_data(data);
  make_samples(s, s01);
  CHECK_OK(sk_npy_save_f32(path_of("s.npy"), 4, (int64_t[]){NS, 1, H, W}, s));
  CHECK_OK(sk_npy_save_f32(path_of("s01.npy"), 4, (int64_t[]){NS, 1, H, W}, s01));
  /* The expected values, from the library's features. */
  sk_model *m = NULL;
  CHECK_OK(sk_model_load(path_of("clf.safetensors"), 1, &m, NULL));
  const int F = sk_model_num_features(m);
  float fs[NS * 32], ls[NS * K], fd1[32], ld1[K], x1[D];
  for (int i = 0; i < D; i++) x1[i] = (float)data[i] / 255;
  CHECK_OK(sk_model_features(m, s01, NS, 0.05f, fs, ls));
  CHECK_OK(sk_model_features(m, x1, 1, 0.05f, fd1, ld1));
  sk_model_free(m);
  double mu[32] = {0}, want = 0, hist[K] = {0};
  for (int i = 0; i < NS; i++)
    for (int j = 0; j < F; j++) mu[j] += fs[i * F + j] / (double)NS;
  for (int j = 0; j < F; j++) {
    double var = 0;
    for (int i = 0; i < NS; i++) var += (fs[i * F + j] - mu[j]) * (fs[i * F + j] - mu[j]);
    want += (mu[j] - fd1[j]) * (mu[j] - fd1[j]) + var / (NS - 1);
  }
  for (int i = 0; i < NS; i++) {
    int b = 0;
    for (int k = 1; k < K; k++) b = ls[i * K + k] > ls[i * K + b] ? k : b;
    hist[b] += 1.0 / NS;
  }
  int classes_seen = 0;
  for (int k = 0; k < K; k++) classes_seen += hist[k] > 0;
  CHECK(classes_seen >= 2);
  int c1 = 0;
  for (int k = 1; k < K; k++) c1 = ld1[k] > ld1[c1] ? k : c1;

  CHECK_EQ_INT(run("eval --samples s.npy --data data.npy --classifier clf.safetensors --json"), 0);
  printf("  %s", out);
  CHECK_EQ_INT((int)json_value("n"), NS); /* all samples: fewer than half the data */
  const double got = json_value("frechet"), floor = json_value("floor\":{\"frechet");
  printf("  Fréchet distance %.9g, computed here %.9g; floor %.3g\n", got, want, floor);
  CHECK(fabs(got - want) <= 1e-4 * want);
  CHECK(fabs(floor) < 1e-6 * want);
  double h[K], dh[K];
  CHECK(json_array("histogram", h, K) && json_array("data_histogram", dh, K));
  double dev_u = 0, dev_d = 0;
  for (int k = 0; k < K; k++) {
    CHECK_NEAR(h[k], hist[k], 1e-4);
    CHECK_NEAR(dh[k], k == c1, 1e-9);
    dev_u = fmax(dev_u, fabs(hist[k] - 1.0 / K));
    dev_d = fmax(dev_d, fabs(hist[k] - (k == c1)));
  }
  CHECK_NEAR(json_value("max_deviation_uniform"), dev_u, 1e-4);
  CHECK_NEAR(json_value("max_deviation_data"), dev_d, 1e-4);
  CHECK(strstr(out, "data_accuracy") == NULL); /* a .npy without labels */

  /* --n takes the first n samples; the text report says the same. */
  CHECK_EQ_INT(run("eval --samples s.npy --data data.npy --classifier clf.safetensors --n 10"), 0);
  CHECK(strstr(out, "10 samples of s.npy") && strstr(out, "Fréchet distance"));
  /* Samples in [0, 1] instead of the data's range are other images to the
   * classifier: the distance is not the one above. */
  CHECK_EQ_INT(run("eval --samples s01.npy --data data.npy --classifier clf.safetensors --json"), 0);
  CHECK(fabs(json_value("frechet") - want) > 1e-2 * want);
}

/* eval --class Y --classifier on rows: the share of class Y and the Fréchet
 * distance against the class's rows only. Draws of mog8's class 2 score
 * near the class-2 floor; draws of class 5 score far above it (and a
 * distance taken against all classes' rows would put class 2 far too). */
TEST(class_frechet_against_class_rows) {
  CHECK_EQ_INT(run("train --data mog8 --n-data 4000 --objective classifier --steps 1200 --quiet "
                   "--out mogclf"), 0);
  enum { NT = 24000, NC = 2000 };
  static float x[NT * 2], c2[NC * 2], c5[NC * 2];
  static int32_t y[NT];
  sk_rng r = sk_rng_make(9, 0);
  CHECK_OK(sk_toy_sample("mog8", &r, NT, x, y));
  int n2 = 0, n5 = 0;
  for (int i = 0; i < NT; i++) {
    if (y[i] == 2 && n2 < NC) memcpy(c2 + 2 * n2++, x + 2 * i, 2 * sizeof *x);
    if (y[i] == 5 && n5 < NC) memcpy(c5 + 2 * n5++, x + 2 * i, 2 * sizeof *x);
  }
  CHECK(n2 == NC && n5 == NC);
  CHECK_OK(sk_npy_save_f32(path_of("c2.npy"), 2, (int64_t[]){NC, 2}, c2));
  CHECK_OK(sk_npy_save_f32(path_of("c5.npy"), 2, (int64_t[]){NC, 2}, c5));
  double fd[2], floor[2], share[2];
  for (int k = 0; k < 2; k++) {
    CHECK_EQ_INT(run(k ? "eval --samples c5.npy --data mog8 --class 2 --classifier "
                         "mogclf/model.safetensors --json"
                       : "eval --samples c2.npy --data mog8 --class 2 --classifier "
                         "mogclf/model.safetensors --json"), 0);
    printf("  %s", out);
    fd[k] = json_value("frechet");
    floor[k] = json_value("frechet_floor");
    share[k] = json_value("classifier_share");
    CHECK(json_value("frechet_rows") >= 100); /* half of mog8's ~250 class-2 rows of 2000 */
  }
  CHECK(share[0] > 0.95 && share[1] < 0.05);
  CHECK(floor[0] == floor[1]); /* the same reference rows */
  CHECK(fd[0] < 3 * floor[0] + 1e-3 && fd[1] > 10 * fd[0] && fd[1] > 10 * floor[0]);
  CHECK_EQ_INT(run("eval --samples c2.npy --data mog8 --class 2 --classifier "
                   "mogclf/model.safetensors"), 0);
  CHECK(strstr(out, "Fréchet distance in its features") && strstr(out, "of class 2"));
  /* The same classifier claiming pixels divided by 255: refused, no output. */
  sk_model *m = NULL;
  static sk_model_info info;
  CHECK_OK(sk_model_load(path_of("mogclf/model.safetensors"), 0, &m, &info));
  info.data_scale = 255;
  CHECK_OK(sk_model_save(path_of("clf255.safetensors"), m, sk_model_params(m), &info));
  sk_model_free(m);
  CHECK_EQ_INT(run("eval --samples c2.npy --data mog8 --class 2 --classifier clf255.safetensors"),
               1);
  CHECK(strstr(err, "divided by 255") && strstr(err, "divided by 1") && out[0] == 0);
}

TEST(refusals) {
  float s[4 * D] = {0};
  CHECK_OK(sk_npy_save_f32(path_of("wide.npy"), 4, (int64_t[]){4, 1, W, H}, s));
  CHECK_EQ_INT(run("eval --samples wide.npy --data data.npy --classifier clf.safetensors"), 1);
  CHECK(strstr(err, "samples of shape (4, 1, 12, 13)") && strstr(err, "takes images (n, 1, 13, 12)"));
  CHECK(out[0] == 0);
  CHECK_OK(sk_npy_save_f32(path_of("rows.npy"), 2, (int64_t[]){4, D}, s));
  CHECK_EQ_INT(run("eval --samples rows.npy --data data.npy --classifier clf.safetensors"), 1);
  CHECK(strstr(err, "takes images"));
  /* Data of float32 are kept as they are (scale 1): not what the
   * classifier was trained on (pixels divided by 255). */
  static float fdata[8 * D];
  CHECK_OK(sk_npy_save_f32(path_of("fdata.npy"), 3, (int64_t[]){8, H, W}, fdata));
  CHECK_OK(sk_npy_save_f32(path_of("s4.npy"), 4, (int64_t[]){4, 1, H, W}, s));
  CHECK_EQ_INT(run("eval --samples s4.npy --data fdata.npy --classifier clf.safetensors"), 1);
  CHECK(strstr(err, "divided by 255") && strstr(err, "divided by 1"));
  CHECK_EQ_INT(run("eval --samples s4.npy --data data.npy --classifier clf.safetensors --n 50"), 1);
  CHECK(strstr(err, "--n 50"));
  CHECK_EQ_INT(run("eval --samples s4.npy --data data.npy --n 2"), 1);
  CHECK(strstr(err, "--n: applies with --classifier only"));
  CHECK_EQ_INT(run("eval --samples s4.npy --data data.npy --classifier s4.npy"), 1);
  CHECK(err[0] && strchr(err, '\n') == err + strlen(err) - 1); /* one line */
}

int main(int argc, char **argv) {
  if (!setup()) {
    fprintf(stderr, "setup failed: %s\n", sk_last_error());
    return 1;
  }
  static const sk_test_case cases[] = {TEST_ENTRY(frechet_and_histogram_against_features),
                                       TEST_ENTRY(class_frechet_against_class_rows),
                                       TEST_ENTRY(refusals)};
  const int rc = sk_test_main(argc, argv, cases, 3);
  cleanup();
  return rc;
}
