/* `scorekit demo` end to end on mog8: all 8 modes covered, every mode weight
 * 0.125 ± 0.03, and an MMD² to fresh data below a threshold set by the MMD²
 * between pairs of fresh data samples of the same size (mean + 6 sd over 12
 * pairs). Release builds only: under the sanitizers the training takes
 * minutes, and the same code paths run in the other tests there. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <stdint.h>
#include <unistd.h>

#include "scorekit/scorekit.h"
#include "test.h"

#define N_SAMPLES 3000

static double json_number(const char *json, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(json, pat);
  return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static double null_threshold(void) {
  enum { PAIRS = 12 };
  double v[PAIRS], mean = 0, var = 0;
  float *a = malloc(N_SAMPLES * 2 * sizeof *a), *b = malloc(N_SAMPLES * 2 * sizeof *b);
  for (int i = 0; i < PAIRS; i++) {
    sk_rng r = sk_rng_make(1000 + (uint64_t)i, 0);
    sk_toy_sample("mog8", &r, N_SAMPLES, a, NULL);
    sk_toy_sample("mog8", &r, N_SAMPLES, b, NULL);
    sk_mmd_rbf(a, N_SAMPLES, b, N_SAMPLES, 2, 0, &v[i], NULL);
    mean += v[i] / PAIRS;
  }
  for (int i = 0; i < PAIRS; i++) var += (v[i] - mean) * (v[i] - mean) / (PAIRS - 1);
  free(a);
  free(b);
  printf("  data vs data MMD² over %d pairs: mean %.3g, sd %.3g\n", PAIRS, mean, sqrt(var));
  return mean + 6 * sqrt(var);
}

TEST(demo_mog8_quality) {
  char dir[] = "/tmp/sk_demo_XXXXXX", cmd[512], path[512];
  CHECK(mkdtemp(dir));
  snprintf(cmd, sizeof cmd, "%s demo --out %s/run --n %d > %s/log.txt 2>&1", SK_CLI_PATH, dir,
           N_SAMPLES, dir);
  int rc = system(cmd);
  snprintf(path, sizeof path, "%s/run/metrics.json", dir);
  FILE *f = fopen(path, "r");
  char json[4096] = {0};
  if (f) {
    size_t got = fread(json, 1, sizeof json - 1, f);
    json[got] = 0;
    fclose(f);
  }
  printf("  %s\n", json);
  CHECK(rc == 0 && f);
  const char *pics[] = {"samples.png", "score-field.png", "samples.npy", "model.safetensors"};
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/run/%s", dir, pics[i]);
    CHECK(access(path, R_OK) == 0);
  }
  double thr = null_threshold(), mmd2 = json_number(json, "mmd2");
  printf("  samples: MMD² %.3g (threshold %.3g), covered %g, max weight error %.4f\n", mmd2, thr,
         json_number(json, "covered"), json_number(json, "max_weight_err"));
  CHECK(json_number(json, "covered") == 8);
  CHECK(json_number(json, "max_weight_err") <= 0.03);
  CHECK(mmd2 <= thr);
  /* Sample quality in the mixture's own terms: the share within 3 std of a
   * mode (a 2-D Gaussian holds 98.9 %) and the mean true log-density within
   * 0.1 nats of the data's (computed here from 100,000 draws of mog8). */
  sk_gmm *law = sk_gmm_builtin("mog8");
  enum { REF = 100000 };
  static float ref[REF * 2], lp[REF];
  sk_rng rr = sk_rng_make(99, 1);
  CHECK(law && sk_gmm_sample(law, 0, &rr, REF, ref, NULL) == SK_OK &&
        sk_gmm_log_density(law, 0, ref, REF, lp) == SK_OK);
  double data_lp = 0;
  for (int i = 0; i < REF; i++) data_lp += lp[i];
  data_lp /= REF;
  sk_gmm_free(law);
  const double within3 = json_number(json, "within3"), logp = json_number(json, "mean_log_density");
  printf("  within 3 std %.4f (>= 0.98), mean log-density %.4f, data %.4f: gap %.3f (<= 0.1)\n",
         within3, logp, data_lp, data_lp - logp);
  CHECK(within3 >= 0.98);
  CHECK(data_lp - logp <= 0.1);
  /* Classifier guidance at w = 1: >= 95% of each class's samples in its own
   * component (the demo's guided.json). */
  snprintf(path, sizeof path, "%s/run/guided.json", dir);
  f = fopen(path, "r");
  CHECK(f);
  size_t got = fread(json, 1, sizeof json - 1, f);
  json[got] = 0;
  fclose(f);
  printf("  guided: %s", json);
  const char *p = strchr(json, '[');
  CHECK(p);
  for (int y = 0; y < 8; y++) {
    char *end;
    double share = strtod(p + 1, &end);
    CHECK(end != p + 1 && share >= 0.95);
    p = end;
  }
  /* w = 0 is the prior: every mode about 1/8. */
  snprintf(cmd, sizeof cmd,
           "%s sample --model %s/run/model.safetensors --classifier %s/run/classifier/model.safetensors"
           " --class 3 --guidance 0 --n 2000 --steps-per-level 50 --out %s/w0.npy > /dev/null && "
           "%s eval --samples %s/w0.npy --data mog8 --json > %s/w0.json",
           SK_CLI_PATH, dir, dir, dir, SK_CLI_PATH, dir, dir);
  CHECK(system(cmd) == 0);
  snprintf(path, sizeof path, "%s/w0.json", dir);
  f = fopen(path, "r");
  CHECK(f);
  got = fread(json, 1, sizeof json - 1, f);
  json[got] = 0;
  fclose(f);
  printf("  w = 0: %s", json);
  CHECK(json_number(json, "covered") == 8 && json_number(json, "max_weight_err") <= 0.03);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
}

int main(int argc, char **argv) {
#if defined(__SANITIZE_ADDRESS__)
  puts("skipped under the sanitizers");
  return 77;
#endif
  static const sk_test_case cases[] = {TEST_ENTRY(demo_mog8_quality)};
  return sk_test_main(argc, argv, cases, 1);
}
