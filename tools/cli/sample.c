/* `scorekit sample`: draw samples from a trained score model with (annealed)
 * Langevin dynamics; write .npy, and optionally a scatter plot. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Particles per chunk of the sampler. */
#define SAMPLE_ROWS 512

static const char usage[] =
    "usage: scorekit sample --model FILE --out samples.npy [flags]\n"
    "\n"
    "Draws samples with annealed Langevin dynamics over the model's σ ladder\n"
    "(the toy convention of docs/MATH.md: x ← x + (α/2) s(x, σ) + √α z with\n"
    "α_i = ε σ_i²/σ_L²), or plain Langevin (α = ε) with an unconditional model.\n"
    "\n"
    "  --model FILE          a model.safetensors written by scorekit train\n"
    "  --raw                 use the raw weights instead of their EMA (the default)\n"
    "  --n N                 number of samples (default 5000)\n"
    "  --steps-per-level T   Langevin steps per noise level (default 100)\n"
    "  --eps E               step size ε (default 0.2·σ_L² annealed, 1e-3 plain)\n"
    "  --denoise             final Tweedie step x ← x + σ_L² s(x, σ_L)\n"
    "  --init gaussian|uniform\n"
    "                        start from N(0, σ_1² I) (default) or U[-R, R]^d\n"
    "  --init-range R        R for uniform starts (default 8)\n"
    "  --seed S              (default 0)\n"
    "  --classifier FILE     guide with a noise-conditional classifier (scorekit train\n"
    "                        --objective classifier): s(x, σ) + w ∇ₓ log p(y | x, σ)\n"
    "  --class Y             the class to sample: with --classifier, by its guidance;\n"
    "                        alone, with a class-conditional model (train --conditional),\n"
    "                        by classifier-free guidance s(x, σ, ∅) + w (s(x, σ, Y) −\n"
    "                        s(x, σ, ∅)) (without --class such a model samples s(x, σ, ∅));\n"
    "                        all: --n samples of every class, class by class\n"
    "  --guidance W          the guidance weight w (default 1: Bayes' rule, or the\n"
    "                        conditional model; 0 unconditional; > 1 sharpens)\n"
    "  --out FILE.npy        samples (n, d), float32; for a model of images (n, c, h, w),\n"
    "                        multiplied back into the data's range (×255 for uint8\n"
    "                        pixels; values are not clipped)\n"
    "  --plot FILE.png       scatter plot of the samples (2-D data), or the images in a\n"
    "                        grid (one row a class with --class all)\n";

int cmd_sample(int argc, char **argv) {
  static const char *const valued[] = {"--model", "--out", "--plot", "--init", "--classifier",
                                       "--class", "--guidance", "--n", "--steps-per-level",
                                       "--seed", "--eps", "--init-range", NULL};
  static const char *const switches[] = {"--raw", "--denoise", "--help", "-h", NULL};
  int range_set = 0, guidance_set = 0;
  const char *model_path = NULL, *out = NULL, *plot = NULL, *init = "gaussian", *clf_path = NULL;
  long long n = 5000, steps = 100, seed = 0, cls = -1;
  const long long all_classes = 1 << 20; /* --class all */
  double eps = 0, range = 8, guidance = 1;
  int use_ema = 1, denoise = 0;
  unsigned long long seen = 0;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage, stdout);
      return 0;
    }
    if (!strcmp(f, "--raw")) {
      use_ema = 0;
      continue;
    }
    if (!strcmp(f, "--denoise")) {
      denoise = 1;
      continue;
    }
    const char *v = cli_value("sample", argc, argv, &i, valued, switches, &seen);
    if (!v) return 1;
    int ok = 1;
    if (!strcmp(f, "--model")) model_path = v;
    else if (!strcmp(f, "--out")) out = v;
    else if (!strcmp(f, "--plot")) plot = v;
    else if (!strcmp(f, "--init")) init = v;
    else if (!strcmp(f, "--classifier")) clf_path = v;
    else if (!strcmp(f, "--class") && !strcmp(v, "all")) cls = all_classes;
    else if (!strcmp(f, "--class")) ok = cli_int(f, v, 0, 65535, &cls);
    else if (!strcmp(f, "--guidance")) ok = guidance_set = cli_float(f, v, -1e3, 1e3, &guidance);
    else if (!strcmp(f, "--n")) ok = cli_int(f, v, 1, 100000000, &n);
    else if (!strcmp(f, "--steps-per-level")) ok = cli_int(f, v, 1, 1000000, &steps);
    else if (!strcmp(f, "--seed")) ok = cli_int(f, v, 0, INT64_MAX, &seed);
    else if (!strcmp(f, "--eps")) ok = cli_float(f, v, 1e-12, 1e6, &eps);
    else if (!strcmp(f, "--init-range")) ok = range_set = cli_float(f, v, 1e-6, 1e6, &range);
    else return cli_fail("unknown flag %s (see scorekit sample --help)", f);
    if (!ok) return 1;
  }
  if (!model_path) return cli_fail("--model FILE is required (see scorekit sample --help)");
  if (!out) return cli_fail("--out FILE.npy is required (see scorekit sample --help)");
  if (clf_path && cls < 0) return cli_fail("--classifier needs --class (the class to guide to)");
  if (clf_path && cls == all_classes)
    return cli_fail("--class all: draws every class of a class-conditional model, without "
                    "--classifier");
  if (strcmp(init, "gaussian") && strcmp(init, "uniform"))
    return cli_fail("--init: unknown \"%s\" (gaussian, uniform)", init);
  /* A flag that would change nothing is a mistake to report, not to ignore. */
  if (range_set && strcmp(init, "uniform"))
    return cli_fail("--init-range: applies to --init uniform only");
  if (guidance_set && cls < 0)
    return cli_fail("--guidance: applies with --class only (and --classifier, or a "
                    "class-conditional model)");
  /* Where the results go is checked before anything is computed. */
  if (!cli_check_out("--out", out) || (plot && !cli_check_out("--plot", plot))) return 1;
  sk_model *m = NULL, *clf = NULL;
  sk_score_fn *fn = NULL, *guided = NULL;
  static sk_model_info info;
  if (sk_model_load(model_path, use_ema, &m, &info) != SK_OK) return cli_fail("%s", sk_last_error());
  const sk_model_config *mc = sk_model_get_config(m);
  int rc = 1;
  float *x = NULL;
  if (mc->kind == SK_MODEL_CLASSIFIER) {
    cli_fail("%s: is a classifier, not a score model", model_path);
    goto done;
  }
  const int64_t *chw = info.image_shape;
  const int image = chw[0] > 0, grid = plot && image;
  if (plot && mc->dim != 2 && !(image && (chw[0] == 1 || chw[0] == 3))) {
    cli_fail("--plot: the data have %d dimensions; plots are 2-D, or images of 1 or 3 channels",
             mc->dim);
    goto done;
  }
  /* --class alone: classifier-free guidance, which needs a class-conditional model. */
  const int cfg_guided = cls >= 0 && !clf_path;
  if (cfg_guided && mc->classes < 1) {
    cli_fail("--class: %s is not class-conditional (train --conditional); give a --classifier "
             "to guide it", model_path);
    goto done;
  }
  const int every = cls == all_classes, K = every ? mc->classes : 1;
  if (cfg_guided && cls >= mc->classes && !every) {
    cli_fail("--class %lld: %s is conditional on classes 0..%d", cls, model_path, mc->classes - 1);
    goto done;
  }
  const int cond = mc->kind != SK_MODEL_MLP; /* ncmlp or unet: a classifier was refused above */
  if (cond && info.n_sigmas < 1) {
    cli_fail("%s: a noise-conditional model without a σ ladder in its metadata", model_path);
    goto done;
  }
  /* An unconditional model is sampled (and a classifier guiding it is
   * evaluated) at the σ it was trained at, 1 if none. */
  const float level = info.sigma > 0 ? info.sigma : 1.0f;
  const float s1 = cond ? info.sigmas[0] : 1.0f, sL = cond ? info.sigmas[info.n_sigmas - 1] : 1.0f;
  if (eps == 0) eps = cond ? 0.2 * sL * sL : 1e-3;
  const long long per_class = n;
  if (every && n > 100000000 / K) {
    cli_fail("--class all: %d classes × --n %lld samples is over 10^8", K, n);
    goto done;
  }
  n *= K;
  x = cli_alloc((size_t)n * (size_t)mc->dim * sizeof *x);
  if (!x) {
    cli_fail("out of memory for %lld samples", n);
    goto done;
  }
  sk_rng r = sk_rng_make((uint64_t)seed, 0x73616d70); /* "samp" */
  size_t nd = (size_t)n * (size_t)mc->dim;
  if (!strcmp(init, "uniform")) {
    sk_rng_uniform(&r, x, nd);
    for (size_t i = 0; i < nd; i++) x[i] = (float)range * (2 * x[i] - 1);
  } else {
    sk_rng_normal(&r, x, nd);
    for (size_t i = 0; i < nd; i++) x[i] *= s1;
  }
  sk_langevin_config lc = {cond ? info.n_sigmas : 1, info.sigmas, (int)steps, (float)eps, denoise};
  if (!cond) lc.sigmas = &level;
  /* Chunks of 512 particles: enough rows for full-speed products, and
   * enough chunks to keep every core busy (sk_langevin samples chunks in
   * parallel; the chunking, not the thread count, fixes the bits). */
  const int rows = per_class < SAMPLE_ROWS ? (int)per_class : SAMPLE_ROWS;
  if ((cfg_guided ? sk_score_fn_cfg(m, rows, every ? 0 : (int)cls, (float)guidance, &fn)
                  : sk_score_fn_model(m, rows, &fn)) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  if (cfg_guided && every)
    printf("classifier-free guidance: classes 0..%d, %lld samples each, weight %g\n", K - 1,
           per_class, guidance);
  else if (cfg_guided)
    printf("classifier-free guidance: class %lld, weight %g\n", cls, guidance);
  if (clf_path) {
    if (sk_model_load(clf_path, use_ema, &clf, NULL) != SK_OK) {
      cli_fail("%s", sk_last_error());
      goto done;
    }
    if (sk_score_fn_guided_model(fn, clf, (int)cls, (float)guidance, &guided) != SK_OK) {
      cli_fail("%s: %s", clf_path, sk_last_error());
      goto done;
    }
    printf("classifier guidance: class %lld, weight %g\n", cls, guidance);
  }
  printf("%s Langevin: %lld samples, %d level%s × %lld steps, ε = %.3g (toy convention)\n",
         cond ? "annealed" : "plain", n, lc.n_sigmas, lc.n_sigmas > 1 ? "s" : "", steps, eps);
  fflush(stdout);
  /* --class all: one class after another, each from where the last left r. */
  for (int k = 0; k < K; k++) {
    if (every && k > 0) {
      sk_score_fn_free(fn);
      fn = NULL;
      if (sk_score_fn_cfg(m, rows, k, (float)guidance, &fn) != SK_OK) {
        cli_fail("%s", sk_last_error());
        goto done;
      }
    }
    if (sk_langevin(guided ? guided : fn, &lc, &r, x + (size_t)k * (size_t)per_class * mc->dim,
                    per_class) != SK_OK) {
      cli_fail("%s", sk_last_error());
      goto done;
    }
  }
  /* The grid shows the model's values, [0, 1] for scaled pixels. */
  if (grid && sk_image_grid(plot, x, (int)n, (int)chw[0], (int)chw[1], (int)chw[2],
                            every ? (int)per_class : 0) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  /* Back into the data's range and shape: the model saw pixels divided by
   * data_scale, flattened. */
  const float scale = info.data_scale > 0 ? info.data_scale : 1.0f;
  if (scale != 1)
    for (size_t i = 0; i < nd; i++) x[i] *= scale;
  int64_t shape[4] = {n, image ? chw[0] : mc->dim, chw[1], chw[2]};
  if (sk_npy_save_f32(out, image ? 4 : 2, shape, x) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  if (image)
    printf("wrote %s: %lld images of %lld×%lld×%lld (c×h×w), multiplied by %g\n", out, n,
           (long long)chw[0], (long long)chw[1], (long long)chw[2], (double)scale);
  else
    printf("wrote %s\n", out);
  if (grid) printf("wrote %s\n", plot);
  if (plot && !grid) {
    sk_plot_bounds b = sk_plot_auto_bounds(x, n);
    if (sk_plot_scatter(plot, 800, b, NULL, 0, x, n) != SK_OK) {
      cli_fail("%s", sk_last_error());
      goto done;
    }
    printf("wrote %s\n", plot);
  }
  rc = 0;
done:
  free(x);
  sk_score_fn_free(guided);
  sk_score_fn_free(fn);
  sk_model_free(clf);
  sk_model_free(m);
  return rc;
}
