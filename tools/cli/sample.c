/* `scorekit sample`: draw samples from a trained score model with annealed
 * Langevin dynamics, the predictor-corrector sampler or the probability-flow
 * ODE; write .npy, and optionally a scatter plot and one sample's trajectory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_mpi.h"

/* Particles per chunk of the sampler. */
#define SAMPLE_ROWS 512

static const char usage[] =
    "usage: scorekit sample --model FILE --out samples.npy [flags]\n"
    "\n"
    "Draws samples from a score model (docs/MATH.md has every formula).\n"
    "\n"
    "  --model FILE          a model.safetensors written by scorekit train\n"
    "  --raw                 use the raw weights instead of their EMA (the default)\n"
    "  --sampler langevin|pc|ode\n"
    "                        annealed Langevin dynamics over the model's σ ladder;\n"
    "                        the predictor-corrector sampler of the variance-exploding\n"
    "                        SDE; or its probability-flow ODE (default: the one the\n"
    "                        flags below belong to, else pc; an unconditional model\n"
    "                        has langevin only: plain Langevin at the σ it was\n"
    "                        trained at). A flag of another sampler is refused.\n"
    "  --n N                 number of samples (default 5000)\n"
    "  --seed S              (default 0)\n"
    "  --out FILE.npy        samples (n, d), float32; for a model of images (n, c, h, w),\n"
    "                        multiplied back into the data's range (×255 for uint8\n"
    "                        pixels; values are not clipped)\n"
    "  --plot FILE.png       scatter plot of the samples (2-D data only)\n"
    "  --grid FILE.png       the first 100 samples in a 10 × 10 grid (with --class all\n"
    "                        the first 10 of each class, a row a class; models of\n"
    "                        one-channel images only), grey from 0 to the data's\n"
    "                        scale (255 for uint8 pixels), values beyond clipped\n"
    "  --trajectory FILE.npy the first sample at K evenly spaced points of the run,\n"
    "                        from the start to the end (K, d...), scaled as --out\n"
    "  --snapshots K         K for --trajectory (default 10)\n"
    "\n"
    "langevin (x ← x + (α/2) s(x, σ) + √α z, α_i = ε σ_i²/σ_L²):\n"
    "  --steps-per-level T   steps per noise level (default 100)\n"
    "  --eps E               step size ε (default: NCSNv2's for T and the ladder's\n"
    "                        ratio; 1e-3 for plain Langevin)\n"
    "  --denoise             final Tweedie step x ← x + σ_L² s(x, σ_L)\n"
    "  --init gaussian|uniform\n"
    "                        start from N(0, σ_1² I) (default) or U[-R, R]^d\n"
    "  --init-range R        R for uniform starts (default 8)\n"
    "pc (from N(0, σ_max² I), σ_max and σ_min the ends of the model's ladder):\n"
    "  --steps N             geometric noise levels (default 1000 for images, 200 for\n"
    "                        points)\n"
    "  --snr R               the corrector's signal-to-noise ratio (default 0.16)\n"
    "  --corrector-steps C   Langevin corrector steps per level (default 1)\n"
    "ode (from N(0, σ_max² I), adaptive Dormand-Prince 5(4) in log σ):\n"
    "  --rtol R, --atol A    tolerances (default 1e-5 each)\n"
    "pc and ode:\n"
    "  --no-denoise          end at σ_min without the final Tweedie step\n"
    "                        x ← x + σ_min² s(x, σ_min)\n"
    "guidance (any sampler):\n"
    "  --classifier FILE     guide with a noise-conditional classifier (scorekit train\n"
    "                        --objective classifier): s(x, σ) + w ∇ₓ log p(y | x, σ)\n"
    "  --class Y             the class to sample: with --classifier, by its guidance;\n"
    "                        alone, with a class-conditional model (train --conditional),\n"
    "                        by classifier-free guidance s(x, σ, ∅) + w (s(x, σ, Y) −\n"
    "                        s(x, σ, ∅)) (without --class such a model samples s(x, σ, ∅));\n"
    "                        all: --n samples of every class (the classifier's with\n"
    "                        --classifier), class by class (--grid then shows a row\n"
    "                        a class)\n"
    "  --guidance W          the guidance weight w (default 1: Bayes' rule, or the\n"
    "                        conditional model; 0 unconditional; > 1 sharpens)\n"
    "\n"
    "Under mpirun or srun each rank samples a share of the chunks of 512 particles;\n"
    "rank 0 writes the same files as one process would (docs/MPI.md).\n";

/* --class all */
#define ALL_CLASSES (1LL << 20)

typedef struct sample_opts {
  const char *model, *out, *plot, *grid, *init, *classifier, *trajectory;
  long long n, snapshots, seed, cls;
  double range, guidance;
  int use_ema, range_set, guidance_set, snapshots_set;
  cli_sampler_opts s;
} sample_opts;

/* 0 after a message, 1 when the flags parse; -1 for --help (printed). */
static int parse(int argc, char **argv, sample_opts *o) {
  static const char *const valued[] = {
      "--model", "--out", "--plot", "--grid", "--init", "--classifier", "--class", "--guidance", "--n",
      "--steps-per-level", "--seed", "--eps", "--init-range", "--sampler", "--steps", "--snr",
      "--corrector-steps", "--rtol", "--atol", "--trajectory", "--snapshots", NULL};
  static const char *const switches[] = {"--raw", "--denoise", "--no-denoise", "--help", "-h",
                                         NULL};
  unsigned long long seen = 0;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage, stdout);
      return -1;
    }
    if (!strcmp(f, "--raw")) {
      o->use_ema = 0;
      continue;
    }
    if (cli_sampler_switch(f, &o->s)) continue;
    const char *v = cli_value("sample", argc, argv, &i, valued, switches, &seen);
    if (!v) return 0;
    int ok = cli_sampler_value(f, v, &o->s);
    if (ok >= 0) {
      if (!ok) return 0;
      continue;
    }
    ok = 1;
    if (!strcmp(f, "--model")) o->model = v;
    else if (!strcmp(f, "--out")) o->out = v;
    else if (!strcmp(f, "--plot")) o->plot = v;
    else if (!strcmp(f, "--grid")) o->grid = v;
    else if (!strcmp(f, "--init")) o->init = v;
    else if (!strcmp(f, "--classifier")) o->classifier = v;
    else if (!strcmp(f, "--trajectory")) o->trajectory = v;
    else if (!strcmp(f, "--class") && !strcmp(v, "all")) o->cls = ALL_CLASSES;
    else if (!strcmp(f, "--class")) ok = cli_int(f, v, 0, 65535, &o->cls);
    else if (!strcmp(f, "--guidance")) ok = o->guidance_set = cli_float(f, v, -1e3, 1e3, &o->guidance);
    else if (!strcmp(f, "--n")) ok = cli_int(f, v, 1, 100000000, &o->n);
    else if (!strcmp(f, "--snapshots")) ok = o->snapshots_set = cli_int(f, v, 2, 10000, &o->snapshots);
    else if (!strcmp(f, "--seed")) ok = cli_int(f, v, 0, INT64_MAX, &o->seed);
    else if (!strcmp(f, "--init-range")) ok = o->range_set = cli_float(f, v, 1e-6, 1e6, &o->range);
    else return cli_fail("unknown flag %s (see scorekit sample --help)", f), 0;
    if (!ok) return 0;
  }
  if (!o->model) return cli_fail("--model FILE is required (see scorekit sample --help)"), 0;
  if (!o->out) return cli_fail("--out FILE.npy is required (see scorekit sample --help)"), 0;
  if (o->classifier && o->cls < 0)
    return cli_fail("--classifier needs --class (the class to guide to)"), 0;
  if (strcmp(o->init, "gaussian") && strcmp(o->init, "uniform"))
    return cli_fail("--init: unknown \"%s\" (gaussian, uniform)", o->init), 0;
  /* A flag that would change nothing is a mistake to report, not to ignore. */
  if (o->range_set && strcmp(o->init, "uniform"))
    return cli_fail("--init-range: applies to --init uniform only"), 0;
  if (o->guidance_set && o->cls < 0)
    return cli_fail("--guidance: applies with --class only (and --classifier, or a "
                    "class-conditional model)"), 0;
  if (o->snapshots_set && !o->trajectory)
    return cli_fail("--snapshots: applies with --trajectory only"), 0;
  return 1;
}

/* Writes rows (k, d) of model space as data: ×scale, images (k, c, h, w). */
static int save_rows(const char *path, float *x, int64_t k, int d, const sk_model_info *info) {
  const float scale = info->data_scale > 0 ? info->data_scale : 1.0f;
  const size_t nd = (size_t)k * (size_t)d;
  if (scale != 1)
    for (size_t i = 0; i < nd; i++) x[i] *= scale;
  const int64_t *chw = info->image_shape;
  const int image = chw[0] > 0;
  int64_t shape[4] = {k, image ? chw[0] : d, chw[1], chw[2]};
  if (sk_npy_save_f32(path, image ? 4 : 2, shape, x) != SK_OK) return cli_fail("%s", sk_last_error()), 0;
  return 1;
}

int cmd_sample(int argc, char **argv) {
  sample_opts o = {.init = "gaussian", .n = 5000, .snapshots = 10, .cls = -1, .range = 8,
                   .guidance = 1, .use_ema = 1, .s = cli_sampler_defaults()};
  const int parsed = parse(argc, argv, &o);
  if (parsed <= 0) return parsed < 0 ? 0 : 1;
  /* Where the results go is checked before anything is computed. */
  static const char *const flags[6] = {"--out", "--plot", "--trajectory", "--grid", "--model",
                                        "--classifier"};
  const char *const paths[6] = {o.out, o.plot, o.trajectory, o.grid, o.model, o.classifier};
  if (cli_mpi_rank() == 0 &&
      (!cli_distinct(flags, paths, 4, 6) || !cli_check_out("--out", o.out) ||
       (o.plot && !cli_check_out("--plot", o.plot)) ||
       (o.trajectory && !cli_check_out("--trajectory", o.trajectory)) ||
       (o.grid && !cli_check_out("--grid", o.grid))))
    return 1;
  sk_model *m = NULL, *clf = NULL;
  sk_score_fn *fn = NULL, *guided = NULL;
  static sk_model_info info;
  if (sk_model_load(o.model, o.use_ema, &m, &info) != SK_OK) return cli_fail("%s", sk_last_error());
  const sk_model_config *mc = sk_model_get_config(m);
  int rc = 1;
  float *x = NULL, *snaps = NULL;
  int64_t *cells = NULL;
  if (sk_model_is_classifier(mc)) {
    cli_fail("%s: is a classifier, not a score model", o.model);
    goto done;
  }
  if (o.plot && mc->dim != 2) {
    cli_fail("--plot: the data have %d dimensions; plots are 2-D", mc->dim);
    goto done;
  }
  if (o.grid && info.image_shape[0] != 1) {
    cli_fail("--grid: %s", info.image_shape[0] ? "draws one-channel images only"
                                                : "the model's data are rows, not images");
    goto done;
  }
  const int cond = mc->kind != SK_MODEL_MLP; /* ncmlp or unet: a classifier was refused above */
  if (cond && info.n_sigmas < 1) {
    cli_fail("%s: a noise-conditional model without a σ ladder in its metadata", o.model);
    goto done;
  }
  /* --class alone: classifier-free guidance, which needs a class-conditional
   * model (a classifier was refused above: classes here are a condition). */
  const int cfg_guided = o.cls >= 0 && !o.classifier;
  if (cfg_guided && mc->classes < 1) {
    cli_fail("--class: %s is not class-conditional (train --conditional); give a --classifier "
             "to guide it", o.model);
    goto done;
  }
  /* The classifier comes first: with --class all its classes are drawn. */
  if (o.classifier) {
    if (sk_model_load(o.classifier, o.use_ema, &clf, NULL) != SK_OK) {
      cli_fail("%s", sk_last_error());
      goto done;
    }
    if (!sk_model_is_classifier(sk_model_get_config(clf))) {
      cli_fail("--classifier %s: is a score model, not a classifier", o.classifier);
      goto done;
    }
  }
  const int every = o.cls == ALL_CLASSES;
  const int K = !every ? 1 : clf ? sk_model_get_config(clf)->classes : mc->classes;
  if (cfg_guided && !every && o.cls >= mc->classes) {
    cli_fail("--class %lld: %s is conditional on classes 0..%d", o.cls, o.model, mc->classes - 1);
    goto done;
  }
  /* --class all: --n samples of each class, class after class. */
  const long long per_class = o.n;
  if (every && o.n > 100000000 / K) {
    cli_fail("--class all: %d classes × --n %lld samples is over 10^8", K, o.n);
    goto done;
  }
  o.n *= K;
  const int image = info.image_shape[0] > 0;
  const int sampler = cli_sampler_choose(argc, argv, o.s.sampler, CLI_LANGEVIN | CLI_PC | CLI_ODE,
                                         cond ? CLI_PC : CLI_LANGEVIN);
  if (!sampler) goto done;
  if (sampler != CLI_LANGEVIN && !cond) {
    cli_fail("--sampler %s: needs a noise-conditional model (%s is unconditional)",
             cli_sampler_name(sampler), o.model);
    goto done;
  }
  if (sampler != CLI_LANGEVIN && info.n_sigmas < 2) {
    cli_fail("--sampler %s: the model's ladder has one level; it needs σ_max > σ_min",
             cli_sampler_name(sampler));
    goto done;
  }
  /* An unconditional model is sampled (and a classifier guiding it is
   * evaluated) at the σ it was trained at, 1 if none. */
  const float level = info.sigma > 0 ? info.sigma : 1.0f;
  const float s1 = cond ? info.sigmas[0] : 1.0f, sL = cond ? info.sigmas[info.n_sigmas - 1] : 1.0f;
  const int L = cond ? info.n_sigmas : 1;
  const int eps_given = o.s.eps > 0;
  if (sampler == CLI_LANGEVIN && !cli_langevin_eps(&o.s, L, s1, sL)) goto done;
  x = cli_alloc((size_t)o.n * (size_t)mc->dim * sizeof *x);
  if (o.trajectory) snaps = cli_alloc((size_t)o.snapshots * (size_t)mc->dim * sizeof *snaps);
  if (!x || (o.trajectory && !snaps)) {
    cli_fail("out of memory for %lld samples", o.n);
    goto done;
  }
  sk_rng r = sk_rng_make((uint64_t)o.seed, 0x73616d70); /* "samp" */
  size_t nd = (size_t)o.n * (size_t)mc->dim;
  if (!strcmp(o.init, "uniform")) {
    sk_rng_uniform(&r, x, nd);
    for (size_t i = 0; i < nd; i++) x[i] = (float)o.range * (2 * x[i] - 1);
  } else {
    sk_rng_normal(&r, x, nd);
    for (size_t i = 0; i < nd; i++) x[i] *= s1;
  }
  /* Chunks of 512 particles: enough rows for full-speed products, and
   * enough chunks to keep every core busy (the samplers run chunks in
   * parallel; the chunking, not the thread count, fixes the bits). */
  const int rows = per_class < SAMPLE_ROWS ? (int)per_class : SAMPLE_ROWS;
  if ((cfg_guided ? sk_score_fn_cfg(m, rows, every ? 0 : (int)o.cls, (float)o.guidance, &fn)
                  : sk_score_fn_model(m, rows, &fn)) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  if (cfg_guided && every)
    printf("classifier-free guidance: classes 0..%d, %lld samples each, weight %g\n", K - 1,
           per_class, o.guidance);
  else if (cfg_guided)
    printf("classifier-free guidance: class %lld, weight %g\n", o.cls, o.guidance);
  if (clf) {
    if (sk_score_fn_guided_model(fn, clf, every ? 0 : (int)o.cls, (float)o.guidance, &guided) !=
        SK_OK) {
      cli_fail("%s: %s", o.classifier, sk_last_error());
      goto done;
    }
    if (every)
      printf("classifier guidance: classes 0..%d, %lld samples each, weight %g\n", K - 1,
             per_class, o.guidance);
    else
      printf("classifier guidance: class %lld, weight %g\n", o.cls, o.guidance);
  }
  cli_progress prog;
  sk_sample_hooks hooks = {cli_mpi_rank() == 0 ? cli_progress_update : NULL, &prog,
                           o.trajectory ? (int)o.snapshots : 0, snaps};
  sk_score_fn *f = guided ? guided : fn;
  sk_status st = SK_OK;
  sk_langevin_config lc = {L, cond ? info.sigmas : &level, (int)o.s.steps_per_level,
                           (float)o.s.eps, o.s.denoise, &hooks};
  sk_pc_config pc = cli_pc_config(&o.s, image, s1, sL, &hooks);
  sk_ode_config oc = {s1, sL, o.s.rtol, o.s.atol, !o.s.no_denoise, &hooks};
  sk_ode_stats os = {0};
  int64_t chunks = 0;
  if (sampler == CLI_LANGEVIN)
    printf("%s Langevin: %lld samples, %d level%s × %lld steps, ε = %.3g (toy convention%s)\n",
           cond ? "annealed" : "plain", o.n, L, L > 1 ? "s" : "", o.s.steps_per_level, o.s.eps,
           eps_given || L < 2 ? "" : "; NCSNv2's for T and the ladder");
  else if (sampler == CLI_PC)
    printf("predictor-corrector: %lld samples, %lld levels σ %.4g → %.4g, %lld corrector step%s "
           "at snr %g%s\n", o.n, (long long)pc.levels, s1, sL, o.s.corrector_steps,
           o.s.corrector_steps == 1 ? "" : "s", o.s.snr, o.s.no_denoise ? "" : ", denoised");
  else
    printf("probability-flow ODE: %lld samples, σ %.4g → %.4g, rtol %g, atol %g%s\n", o.n, s1, sL,
           o.s.rtol, o.s.atol, o.s.no_denoise ? "" : ", denoised");
  fflush(stdout);
  /* One run, or with --class all one a class, each from where the last left
   * r; the trajectory is the first run's (class 0's). */
  for (int k = 0; k < K && st == SK_OK; k++) {
    if (k > 0 && clf) { /* the same score, guided to class k */
      sk_score_fn_free(guided);
      guided = NULL;
      if ((st = sk_score_fn_guided_model(fn, clf, k, (float)o.guidance, &guided)) != SK_OK) break;
      f = guided;
    } else if (k > 0) {
      sk_score_fn_free(fn);
      fn = NULL;
      if ((st = sk_score_fn_cfg(m, rows, k, (float)o.guidance, &fn)) != SK_OK) break;
      f = fn;
    }
    if (k > 0) {
      hooks.n_snapshots = 0;
      hooks.snapshots = NULL;
    }
    /* Under MPI each rank samples whole chunks, with their bits (x + first·d
     * holds its rows); rank 0 gathers them and writes. */
    int64_t first, count;
    cli_mpi_block_rows(K, per_class, sk_score_fn_rows(f), k, &first, &count);
    float *xr = x + ((size_t)k * (size_t)per_class + (size_t)first) * (size_t)mc->dim;
    if (sampler == CLI_LANGEVIN) {
      cli_progress_start(&prog, "langevin", "score evaluations");
      st = sk_langevin_rows(f, &lc, &r, xr, per_class, first, count);
    } else if (sampler == CLI_PC) {
      cli_progress_start(&prog, "pc", "score evaluations");
      st = sk_pc_sample_rows(f, &pc, &r, xr, per_class, first, count);
    } else {
      sk_ode_stats ks;
      cli_progress_start(&prog, "ode", "thousandths of the σ range");
      st = sk_ode_sample_rows(f, &oc, xr, per_class, first, count, &ks);
      if (st == SK_OK) {
        os.evals += ks.evals;
        os.steps += ks.steps;
        os.rejected += ks.rejected;
        /* This rank's chunks (all of them without MPI). */
        chunks += (count + sk_score_fn_rows(f) - 1) / sk_score_fn_rows(f);
      }
    }
    cli_progress_end(&prog);
  }
  if (st != SK_OK) { /* at once: the job ends here (cli_mpi_end) */
    cli_fail("%s", sk_last_error());
    goto done;
  }
  if (sampler == CLI_ODE) { /* every rank's chunks (all of them without MPI) */
    int64_t sums[4] = {os.evals, os.steps, os.rejected, chunks};
    cli_mpi_sum(sums, 4);
    os.evals = sums[0], os.steps = sums[1], os.rejected = sums[2], chunks = sums[3];
  }
  if (sampler == CLI_ODE)
    printf("ODE solved: %lld score evaluations of %lld chunk%s (%.1f per chunk), %lld steps, "
           "%lld rejected\n", (long long)os.evals, (long long)chunks, chunks > 1 ? "s" : "",
           (double)os.evals / (double)chunks, (long long)os.steps, (long long)os.rejected);
  /* Rank 0 gathers every class's rows, split over the ranks as sampled. */
  if (!cli_mpi_gather_blocks(x, K, per_class, mc->dim, rows)) goto done;
  /* Back into the data's range and shape: the model saw pixels divided by
   * data_scale, flattened. */
  if (cli_mpi_rank() > 0) {
    rc = 0;
    goto done;
  }
  if (!save_rows(o.out, x, o.n, mc->dim, &info)) goto done;
  const int64_t *chw = info.image_shape;
  if (image)
    printf("wrote %s: %lld images of %lld×%lld×%lld (c×h×w), multiplied by %g\n", o.out, o.n,
           (long long)chw[0], (long long)chw[1], (long long)chw[2],
           (double)(info.data_scale > 0 ? info.data_scale : 1));
  else
    printf("wrote %s\n", o.out);
  if (o.trajectory) {
    if (!save_rows(o.trajectory, snaps, o.snapshots, mc->dim, &info)) goto done;
    printf("wrote %s: sample 0 at %lld points of the run\n", o.trajectory, o.snapshots);
  }
  if (o.plot) {
    sk_plot_bounds b = sk_plot_auto_bounds(x, o.n);
    if (sk_plot_scatter(o.plot, 800, b, NULL, 0, x, o.n) != SK_OK) {
      cli_fail("%s", sk_last_error());
      goto done;
    }
    printf("wrote %s\n", o.plot);
  }
  if (o.grid) { /* x is in the data's range since save_rows */
    const int64_t shown = o.n < 100 ? o.n : 100;
    const float scale = info.data_scale > 0 ? info.data_scale : 1.0f;
    sk_image_grid_layout lay = {(int)((shown + 9) / 10), 10, 0.0f, scale, 2, NULL};
    /* --class all: a row a class, its first (up to) 10 samples. */
    const int cols = per_class < 10 ? (int)per_class : 10;
    if (every && !(cells = cli_alloc((size_t)K * (size_t)cols * sizeof *cells))) {
      cli_fail("out of memory for a grid of %d classes", K);
      goto done;
    }
    for (int k = 0; every && k < K; k++)
      for (int j = 0; j < cols; j++) cells[k * cols + j] = k * per_class + j;
    if (every) lay.rows = K, lay.cols = cols, lay.cells = cells;
    if (sk_plot_image_grid(o.grid, x, every ? o.n : shown, (int)chw[1], (int)chw[2], &lay) !=
        SK_OK) {
      cli_fail("%s", sk_last_error());
      goto done;
    }
    printf("wrote %s\n", o.grid);
  }
  rc = 0;
done:
  free(x);
  free(snaps);
  free(cells);
  sk_score_fn_free(guided);
  sk_score_fn_free(fn);
  sk_model_free(clf);
  sk_model_free(m);
  return rc;
}
