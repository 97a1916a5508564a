/* `scorekit demo`: the whole pipeline on built-in data: train a noise-
 * conditional score network with ncsn, sample with annealed Langevin, report
 * the metrics, draw the samples and the learned score field. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: scorekit demo [--out DIR] [--data NAME] [--steps N] [--classifier-steps N]\n"
    "                     [--n N] [--steps-per-level T] [--seed S]\n"
    "\n"
    "Trains ncsn on a built-in 2-D set (default mog8; 40000 steps of batch 512),\n"
    "draws N samples (default 5000) from the EMA weights with the predictor-\n"
    "corrector sampler (annealed Langevin with T steps a level when\n"
    "--steps-per-level T is given), prints the\n"
    "metrics, and writes DIR/model.safetensors, DIR/samples.npy,\n"
    "DIR/samples.png (samples over data), DIR/score-field.png (the learned score\n"
    "at a middle noise level) and DIR/metrics.json. For a labelled set it then\n"
    "trains a noise-conditional classifier (DIR/classifier/, --classifier-steps,\n"
    "default 3000) and draws 500\n"
    "classifier-guided samples per class (w = 1; annealed Langevin, T = 50\n"
    "unless given): DIR/guided.png and\n"
    "DIR/guided.json. DIR defaults to out/demo.\n"
    "\n"
    "usage: scorekit demo --data fashion-mnist [--out DIR] [--minutes M]\n"
    "                     [--classifier-minutes C] [--n N] [--levels L] [--seed S]\n"
    "\n"
    "Trains the U-Net with vesde on Debian's Fashion-MNIST for M minutes\n"
    "(default 14; batch 64), and a convolutional classifier for C minutes\n"
    "(default 3) for the metrics; draws N images (default 1000) with the\n"
    "predictor-corrector sampler over L levels (default 1000), and writes\n"
    "DIR/samples.npy, DIR/grid.png (the first 100), DIR/trajectory.npy and\n"
    "DIR/trajectory.png (one sample from noise to image), DIR/metrics.json\n"
    "(the Fréchet distance in the classifier's features beside its data-vs-\n"
    "data floor, and the class histogram), then prints the likelihood of N\n"
    "test images in bits/dim. About M + C + 12 minutes on 2 cores.\n";

enum { GRID = 32 }; /* score-field arrows a side */

static int field_plot(const char *dir, sk_dataset *data) {
  char path[4096];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  static sk_model_info info;
  sk_model *m = NULL;
  sk_score_fn *fn = NULL;
  if (sk_model_load(path, 1, &m, &info) != SK_OK || sk_score_fn_model(m, GRID * GRID, &fn) != SK_OK) {
    sk_model_free(m);
    return cli_fail("%s", sk_last_error()), 0;
  }
  float pts[GRID * GRID * 2], vec[GRID * GRID * 2];
  sk_plot_bounds b = sk_plot_auto_bounds(sk_dataset_x(data), sk_dataset_size(data));
  sk_plot_field_points(b, GRID, pts);
  /* The level nearest 0.5: coarse enough to show the basins, fine enough to
   * show the modes. */
  float sigma = info.sigmas[0];
  for (int i = 0; i < info.n_sigmas; i++)
    if (fabsf(logf(info.sigmas[i] / 0.5f)) < fabsf(logf(sigma / 0.5f))) sigma = info.sigmas[i];
  int ok = sk_score_fn_eval(fn, pts, GRID * GRID, sigma, vec) == SK_OK;
  snprintf(path, sizeof path, "%s/score-field.png", dir);
  int64_t shown = sk_dataset_size(data) < 3000 ? sk_dataset_size(data) : 3000;
  ok = ok && sk_plot_field(path, 800, b, GRID, vec, sk_dataset_x(data), shown) == SK_OK;
  if (ok) printf("wrote %s (σ = %.3g)\n", path, sigma);
  else cli_fail("%s", sk_last_error());
  sk_score_fn_free(fn);
  sk_model_free(m);
  return ok;
}

/* Classifier guidance: per class, n samples of s(x, σ) + ∇ₓ log p(y | x, σ)
 * from the demo's score model and classifier; DIR/guided.png, and for a
 * mixture the share of each class's samples in its own component. */
static int guided(const char *dir, const char *data, sk_dataset *ref, int64_t n, int T,
                  uint64_t seed, FILE *json) {
  char path[4096];
  static sk_model_info info;
  sk_model *m = NULL, *clf = NULL;
  sk_score_fn *base = NULL;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  int ok = sk_model_load(path, 1, &m, &info) == SK_OK && sk_score_fn_model(m, (int)n, &base) == SK_OK;
  snprintf(path, sizeof path, "%s/classifier/model.safetensors", dir);
  ok = ok && sk_model_load(path, 1, &clf, NULL) == SK_OK;
  const int K = ok ? sk_model_get_config(clf)->classes : 0;
  float *x = NULL, *post = NULL;
  const float **groups = NULL;
  int64_t *counts = NULL;
  sk_gmm *law = sk_gmm_builtin(data);
  if (ok) {
    x = cli_alloc((size_t)(n * K * 2) * sizeof *x);
    groups = cli_alloc((size_t)K * sizeof *groups);
    counts = cli_alloc((size_t)K * sizeof *counts);
    if (law) post = cli_alloc((size_t)(n * sk_gmm_components(law)) * sizeof *post);
    if (!x || !groups || !counts || (law && !post)) {
      ok = 0;
      sk_set_error(SK_ERR_NOMEM, "out of memory for %lld guided samples per class",
                   (long long)n);
    }
  }
  const float sL = info.n_sigmas > 0 ? info.sigmas[info.n_sigmas - 1] : 1.0f;
  int listed = 0;
  if (json) fprintf(json, "{\"guidance\":1,\"per_class\":[");
  for (int y = 0; ok && y < K; y++) {
    sk_score_fn *g = NULL;
    float *xy = x + (size_t)y * (size_t)n * 2;
    sk_rng r = sk_rng_make(seed, 0x67756964 + (uint64_t)y); /* "guid" */
    sk_rng_normal(&r, xy, (size_t)n * 2);
    for (int64_t i = 0; i < n * 2; i++) xy[i] *= info.sigmas[0];
    sk_langevin_config lc = {info.n_sigmas, info.sigmas, T, 0.2f * sL * sL, 0, NULL};
    ok = sk_score_fn_guided_model(base, clf, y, 1.0f, &g) == SK_OK &&
         sk_langevin(g, &lc, &r, xy, n) == SK_OK;
    sk_score_fn_free(g);
    groups[y] = xy;
    counts[y] = n;
    if (ok && law && y < sk_gmm_components(law) &&
        sk_gmm_posterior(law, 0, xy, n, post) == SK_OK) {
      const int k = sk_gmm_components(law);
      int64_t own = 0;
      for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < k; j++)
          if (post[i * k + j] > post[i * k + best]) best = j;
        own += best == y;
      }
      printf("  class %d: %.3f of its guided samples in component %d\n", y, (double)own / n, y);
      if (json) fprintf(json, "%s%.6g", listed++ ? "," : "", (double)own / n);
    }
  }
  if (json) fprintf(json, "]}\n");
  snprintf(path, sizeof path, "%s/guided.png", dir);
  ok = ok && sk_plot_groups(path, 800, sk_plot_auto_bounds(sk_dataset_x(ref), sk_dataset_size(ref)),
                            sk_dataset_x(ref), sk_dataset_size(ref), K, groups, counts) == SK_OK;
  if (ok) printf("wrote %s\n", path);
  else cli_fail("%s", sk_last_error());
  sk_gmm_free(law);
  free(post);
  free(x);
  free(groups);
  free(counts);
  sk_score_fn_free(base);
  sk_model_free(clf);
  sk_model_free(m);
  return ok;
}

/* The demo's outputs in DIR: checked (sk_output_prepare) when DIR exists,
 * before the training starts. */
static const char *const outputs[] = {"model.safetensors", "state.safetensors", "samples.npy",
                                      "samples.png", "score-field.png", "metrics.json",
                                      "guided.png", "guided.json", "grid.png",
                                      "trajectory.npy", "trajectory.png", NULL};

/* Runs eval (JSON) or guided sampling into memory, then writes the text to
 * `path` as every scorekit file is written (atomically, never through a
 * FIFO or over a device). */
static int json_eval(const char *path, int argc, char **argv) {
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  if (!m) return cli_fail("%s: out of memory", path);
  int rc = cli_eval_to(m, argc, argv);
  if (fclose(m) != 0 && rc == 0) rc = cli_fail("%s: out of memory", path);
  if (rc == 0 && sk_file_write(path, buf, len) != SK_OK) rc = cli_fail("%s", sk_last_error());
  free(buf);
  return rc;
}

/* The image demo: U-Net (vesde) and convnet classifier trained on a
 * wall-clock budget, PC samples, grid, trajectory, metrics, likelihood. */
static int image_demo(const char *dir, const char *data, double minutes, double clf_minutes,
                      long long n, long long levels, long long seed) {
  char min_s[32], cmin_s[32], n_s[32], lv_s[32], seed_s[32], cdir[4200], model[4200],
      clf[4300], samples[4200], grid[4200], traj[4200], strip[4200], json[4200];
  if (strlen(dir) > 4000) return cli_fail("--out: the path is too long");
  snprintf(min_s, sizeof min_s, "%g", minutes);
  snprintf(cmin_s, sizeof cmin_s, "%g", clf_minutes);
  snprintf(n_s, sizeof n_s, "%lld", n);
  snprintf(lv_s, sizeof lv_s, "%lld", levels);
  snprintf(seed_s, sizeof seed_s, "%lld", seed);
  snprintf(cdir, sizeof cdir, "%s/classifier", dir);
  snprintf(model, sizeof model, "%s/model.safetensors", dir);
  snprintf(clf, sizeof clf, "%s/model.safetensors", cdir);
  snprintf(samples, sizeof samples, "%s/samples.npy", dir);
  snprintf(grid, sizeof grid, "%s/grid.png", dir);
  snprintf(traj, sizeof traj, "%s/trajectory.npy", dir);
  snprintf(strip, sizeof strip, "%s/trajectory.png", dir);
  snprintf(json, sizeof json, "%s/metrics.json", dir);
  const int quiet = !isatty(2); /* progress on a terminal only, as for points */
  char *train[] = {"--data", (char *)data, "--model", "unet", "--objective", "vesde",
                   "--minutes", min_s, "--batch-size", "64", "--lr", "2e-3", "--seed", seed_s,
                   "--out", (char *)dir, "--overwrite", "--quiet"};
  if (cmd_train((int)(sizeof train / sizeof *train) - !quiet, train) != 0) return 1;
  char *ctrain[] = {"--data", (char *)data, "--objective", "classifier", "--model", "convnet",
                    "--minutes", cmin_s, "--batch-size", "128", "--lr", "2e-3", "--seed", seed_s,
                    "--out", cdir, "--overwrite", "--quiet"};
  if (cmd_train((int)(sizeof ctrain / sizeof *ctrain) - !quiet, ctrain) != 0) return 1;
  char *sample[] = {"--model", model, "--n", n_s, "--sampler", "pc", "--steps", lv_s,
                    "--seed", seed_s, "--out", samples, "--grid", grid, "--trajectory", traj,
                    "--snapshots", "10"};
  if (cmd_sample((int)(sizeof sample / sizeof *sample), sample) != 0) return 1;
  char *gridc[] = {"--in", traj, "--out", strip, "--strip"};
  if (cmd_grid((int)(sizeof gridc / sizeof *gridc), gridc) != 0) return 1;
  const char *test = !strcmp(data, "fashion-mnist") ? "fashion-mnist-test" : data;
  char *eval[] = {"--samples", samples, "--data", (char *)test, "--classifier", clf,
                  "--seed", seed_s};
  if (cmd_eval((int)(sizeof eval / sizeof *eval), eval) != 0) return 1;
  char *evalj[] = {"--samples", samples, "--data", (char *)test, "--classifier", clf,
                   "--seed", seed_s, "--json"};
  if (json_eval(json, (int)(sizeof evalj / sizeof *evalj), evalj) != 0) return 1;
  printf("wrote %s\n", json);
  char *lik[] = {"--model", model, "--data", (char *)test, "--n", n_s, "--seed", seed_s};
  if (cmd_likelihood((int)(sizeof lik / sizeof *lik), lik) != 0) return 1;
  printf("done: the pictures are %s and %s\n", grid, strip);
  return 0;
}

int cmd_demo(int argc, char **argv) {
  static const char *const valued[] = {"--out", "--data", "--steps", "--classifier-steps", "--n",
                                       "--steps-per-level", "--seed", "--minutes",
                                       "--classifier-minutes", "--levels", NULL};
  static const char *const switches[] = {"--help", "-h", NULL};
  const char *dir = "out/demo", *data = "mog8";
  long long steps = 40000, clf_steps = 3000, n = 5000, seed = 0, T = 0; /* T 0: pc */
  double minutes = 14, clf_minutes = 3;
  long long levels = 1000;
  int n_given = 0;
  const char *point_flag = NULL, *image_flag = NULL; /* one of each kind given, if any */
  unsigned long long seen = 0;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage, stdout);
      return 0;
    }
    const char *v = cli_value("demo", argc, argv, &i, valued, switches, &seen);
    if (!v) return 1;
    int ok = 1;
    if (!strcmp(f, "--out")) dir = v;
    else if (!strcmp(f, "--data")) data = v;
    else if (!strcmp(f, "--minutes")) ok = cli_float(f, v, 1e-3, 1e6, &minutes), image_flag = f;
    else if (!strcmp(f, "--classifier-minutes"))
      ok = cli_float(f, v, 1e-3, 1e6, &clf_minutes), image_flag = f;
    else if (!strcmp(f, "--levels")) ok = cli_int(f, v, 2, 1000000, &levels), image_flag = f;
    else if (!strcmp(f, "--steps")) ok = cli_int(f, v, 1, 100000000, &steps), point_flag = f;
    else if (!strcmp(f, "--classifier-steps"))
      ok = cli_int(f, v, 1, 100000000, &clf_steps), point_flag = f;
    else if (!strcmp(f, "--n")) ok = n_given = cli_int(f, v, 2, 10000000, &n);
    else if (!strcmp(f, "--steps-per-level")) ok = cli_int(f, v, 1, 1000000, &T), point_flag = f;
    else if (!strcmp(f, "--seed")) ok = cli_int(f, v, 0, INT64_MAX, &seed);
    else return cli_fail("unknown flag %s (see scorekit demo --help)", f);
    if (!ok) return 1;
  }
  const int images = !strcmp(data, "fashion-mnist");
  if (!images && sk_toy_classes(data) < 0)
    return cli_fail("--data: \"%s\" is neither a built-in 2-D set nor fashion-mnist", data);
  if (images && point_flag) return cli_fail("%s: applies to the 2-D sets only", point_flag);
  if (!images && image_flag) return cli_fail("%s: applies to --data fashion-mnist only", image_flag);
  if (images && !n_given) n = 1000;
  struct stat dst;
  if (stat(dir, &dst) == 0)
    for (int i = 0; outputs[i]; i++) {
      char p[4096];
      snprintf(p, sizeof p, "%s/%s", dir, outputs[i]);
      if (!cli_check_out("--out", p)) return 1;
    }
  if (images) return image_demo(dir, data, minutes, clf_minutes, n, levels, seed);
  char T_s[32], steps_s[32], clf_steps_s[32], n_s[32], seed_s[32], model[4096], samples[4096], png[4096], json[4096];
  snprintf(steps_s, sizeof steps_s, "%lld", steps);
  snprintf(n_s, sizeof n_s, "%lld", n);
  snprintf(clf_steps_s, sizeof clf_steps_s, "%lld", clf_steps);
  snprintf(T_s, sizeof T_s, "%lld", T);
  snprintf(seed_s, sizeof seed_s, "%lld", seed);
  snprintf(model, sizeof model, "%s/model.safetensors", dir);
  snprintf(samples, sizeof samples, "%s/samples.npy", dir);
  snprintf(png, sizeof png, "%s/samples.png", dir);
  snprintf(json, sizeof json, "%s/metrics.json", dir);
  /* The same code paths as the subcommands, with the demo's defaults; a
   * demo run replaces the one before it in DIR. */
  /* Training progress on a terminal only, as the demo always showed it: in
   * a log its lines would only come between the demo's own. */
  const int progress = isatty(2);
  char *train[] = {"--data", (char *)data, "--objective", "ncsn", "--steps", steps_s,
                   "--batch-size", "512", "--lr", "2e-3", "--seed", seed_s, "--out", (char *)dir,
                   "--overwrite", "--quiet"};
  if (cmd_train((int)(sizeof train / sizeof *train) - progress, train) != 0) return 1;
  char *sample[] = {"--model", model, "--n", n_s, "--seed", seed_s, "--out", samples,
                    T ? "--steps-per-level" : "--sampler", T ? T_s : "pc"};
  if (cmd_sample((int)(sizeof sample / sizeof *sample), sample) != 0) return 1;
  sk_dataset *ref = NULL;
  if (!cli_load_data(data, n, (unsigned long long)seed + 1, -1, NULL, &ref)) return 1;
  sk_tensor *s = NULL;
  int ok = sk_npy_load(samples, &s) == SK_OK;
  ok = ok && sk_plot_scatter(png, 800, sk_plot_auto_bounds(sk_dataset_x(ref), sk_dataset_size(ref)),
                             sk_dataset_x(ref), sk_dataset_size(ref), sk_tensor_cdata(s),
                             sk_tensor_shape(s)[0]) == SK_OK;
  sk_tensor_free(s);
  if (!ok) {
    sk_dataset_free(ref);
    return cli_fail("%s", sk_last_error());
  }
  printf("wrote %s\n", png);
  ok = field_plot(dir, ref);
  sk_dataset_free(ref);
  if (!ok) return 1;
  char *eval[] = {"--samples", samples, "--data", (char *)data, "--seed", seed_s};
  if (cmd_eval((int)(sizeof eval / sizeof *eval), eval) != 0) return 1;
  /* The same metrics as JSON, for scripts. */
  char *evalj[] = {"--samples", samples, "--data", (char *)data, "--seed", seed_s, "--json"};
  if (json_eval(json, (int)(sizeof evalj / sizeof *evalj), evalj) != 0) return 1;
  printf("wrote %s\n", json);
  if (sk_toy_classes(data) > 1) { /* classifier guidance, one colour a class */
    char cdir[4096], gjson[4096];
    snprintf(cdir, sizeof cdir, "%s/classifier", dir);
    snprintf(gjson, sizeof gjson, "%s/guided.json", dir);
    char *ctrain[] = {"--data", (char *)data, "--objective", "classifier", "--steps", clf_steps_s,
                      "--batch-size", "256", "--lr", "2e-3", "--seed", seed_s, "--out", cdir,
                      "--overwrite", "--quiet"};
    if (cmd_train((int)(sizeof ctrain / sizeof *ctrain) - progress, ctrain) != 0) return 1;
    if (!cli_load_data(data, n, (unsigned long long)seed + 1, -1, NULL, &ref)) return 1;
    char *buf = NULL;
    size_t len = 0;
    FILE *gj = open_memstream(&buf, &len);
    int ok2 = gj && guided(dir, data, ref, n < 500 ? n : 500, T ? (int)T : 50, (uint64_t)seed, gj);
    if (!gj || (fclose(gj) != 0 && ok2)) {
      cli_fail("%s: out of memory", gjson);
      ok2 = 0;
    }
    if (ok2 && sk_file_write(gjson, buf, len) != SK_OK) {
      cli_fail("%s", sk_last_error());
      ok2 = 0;
    }
    free(buf);
    sk_dataset_free(ref);
    if (!ok2) return 1;
    printf("wrote %s\n", gjson);
  }
  printf("done: the pictures are %s/samples.png, %s/score-field.png and %s/guided.png\n", dir, dir,
         dir);
  return 0;
}
