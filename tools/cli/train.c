/* `scorekit train`: fit a score model (or a noise-conditional classifier)
 * and write DIR/model.safetensors, DIR/state.safetensors and DIR/log.csv. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "train_run.h"

static const char usage[] =
    "usage: scorekit train [flags] --out DIR\n"
    "\n"
    "Trains a score network (or, with --objective classifier, a noise-conditional\n"
    "classifier) and writes DIR/model.safetensors (weights, EMA weights, config),\n"
    "DIR/state.safetensors (optimiser state, for --resume) and DIR/log.csv.\n"
    "\n"
    "data\n"
    "  --data NAME|FILE      built-in: mog8 moons swissroll checkerboard rings pinwheel\n"
    "                        2spirals (default mog8); images: fashion-mnist (60000\n"
    "                        training images, Debian's dataset-fashion-mnist) and\n"
    "                        fashion-mnist-test (10000); or a file: .csv or .npy rows,\n"
    "                        .npy images (n, h, w) or (n, c, h, w), IDX (.idx, .idx.gz)\n"
    "                        rows or images. uint8 pixels are divided by 255 into\n"
    "                        [0, 1] (recorded in the model; sample multiplies back);\n"
    "                        models see each image as one row of c·h·w values\n"
    "  --n-data N            points drawn from a built-in 2-D set (default 20000), or\n"
    "                        the first N rows or images of the others (default all)\n"
    "  --label-column K      CSV column (0-based) holding integer class labels\n"
    "  --labels FILE         labels (.npy or IDX) for a .npy or IDX data file\n"
    "objective\n"
    "  --objective NAME      esm | dsm | ssm | ssm-vr | ncsn | classifier (default ncsn);\n"
    "                        esm takes d backward passes a step (the Jacobian's trace):\n"
    "                        refused above 256 dimensions unless --force\n"
    "  --sigma S             dsm's noise level; the level a noise-conditional model is\n"
    "                        trained at by esm/ssm/ssm-vr (default 0.1)\n"
    "  --levels L            ncsn/classifier: size of the geometric σ ladder (default 10)\n"
    "  --sigma-max S, --sigma-min S\n"
    "                        its ends (default: chosen from the data and printed)\n"
    "  --sigmas S1,S2,...    an explicit ladder, largest first\n"
    "  --projections M       ssm/ssm-vr: projections per sample (default 1)\n"
    "  --rademacher          ssm/ssm-vr: ±1 projections instead of Gaussian\n"
    "model\n"
    "  --model mlp|ncmlp|unet\n"
    "                        unconditional s(x), s(x, σ) = f([x, log σ])/σ, or the\n"
    "                        score-SDE tutorial's U-Net on square one-channel images\n"
    "                        (ncsn only) (default ncmlp for ncsn, which needs a\n"
    "                        noise-conditional model; mlp otherwise; an ncmlp trained\n"
    "                        by esm/dsm/ssm/ssm-vr samples at --sigma)\n"
    "  --channels C1,C2,C3,C4  the U-Net's encoder widths (default 32,64,128,256)\n"
    "  --hidden H            width (default 128)      --depth D   hidden layers (default 3)\n"
    "  --activation A        softplus | elu | silu | tanh (default softplus)\n"
    "  --conditional         class-conditional ncmlp or unet: a learned label embedding\n"
    "                        (a row a class and a \"no label\" row) added to the noise\n"
    "                        embedding (an ncmlp's first layer); needs labelled data;\n"
    "                        sample --class Y --guidance W draws a class\n"
    "  --label-dropout P     with --conditional: a label is replaced by \"no label\"\n"
    "                        with probability P (default 0.1), so that the network also\n"
    "                        learns the unconditional score (classifier-free guidance)\n"
    "optimisation\n"
    "  --steps N             total steps (default 3000)   --batch-size B (default 128)\n"
    "  --lr LR               Adam step size (default 1e-3)\n"
    "  --clip C              clip the gradient norm to C (default off)\n"
    "  --ema R               EMA rate of the weights, saved beside them (default 0.999)\n"
    "  --seed S              (default 0)\n"
    "output\n"
    "  --out DIR             where to write (created if needed); a fresh run refuses a\n"
    "                        non-empty DIR\n"
    "  --resume DIR          continue the run saved in DIR: pass the same flags (a\n"
    "                        different setting or data is refused, naming the flag)\n"
    "  --overwrite           replace the run in a non-empty --out DIR\n"
    "  --force               run what is refused as too costly: esm above 256\n"
    "                        dimensions, an estimate above the available memory\n"
    "  --checkpoint-every K  also save every K steps (default: at the end only)\n"
    "  --quiet               no progress bar\n"
    "\n"
    "One train at a time writes to a DIR (DIR/.lock; another is refused, naming it).\n"
    "SIGTERM or SIGINT ends a run after its current step with a checkpoint, for\n"
    "--resume; a second signal ends it at once.\n";

static int write_log_header(FILE *f) { return fprintf(f, "step,loss,grad_norm,seconds\n") > 0; }

/* After a resume, drop log lines past the checkpoint's step (written after
 * the last checkpoint by a run that then died), so each step appears once. */
static int trim_log(const char *path, long long last_step) {
  FILE *in = fopen(path, "r");
  if (!in) return 1;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.trim", path);
  FILE *out = fopen(tmp, "w");
  if (!out) {
    fclose(in);
    return 0;
  }
  char line[512];
  int header = 1;
  while (fgets(line, sizeof line, in)) {
    char *end;
    long long step = strtoll(line, &end, 10);
    size_t len = strlen(line);
    int whole = len > 0 && line[len - 1] == '\n'; /* a kill can cut the last line */
    if (header || (whole && end != line && *end == ',' && step <= last_step)) fputs(line, out);
    header = 0;
  }
  fclose(in);
  if (fclose(out) != 0 || rename(tmp, path) != 0) return 0;
  return 1;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress(long long step, long long total, float loss, double t0, double t_first,
                     long long first) {
  double el = now() - t0, rate = (step - first) / fmax(now() - t_first, 1e-9);
  double eta = rate > 0 ? (double)(total - step) / rate : 0;
  int width = 30, done = (int)((double)width * (double)step / (double)total);
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
  bar[width] = 0;
  fprintf(stderr, "\r[%s] %lld/%lld  loss %.4g  %.0f steps/s  %.0fs  ETA %.0fs   ", bar, step,
          total, loss, rate, el, eta);
}

int cmd_train(int argc, char **argv) {
  const char *data = "mog8", *out = NULL, *resume = NULL, *labels_path = NULL;
  const char *obj_name = "ncsn", *model_name = NULL, *act_name = "softplus", *sigmas_arg = NULL;
  const char *channels_arg = NULL;
  long long n_data = 0, label_column = -1, levels = 10, projections = 1, hidden = 128,
            depth = 3, steps = 3000, batch = 128, seed = 0, every = 0;
  double sigma = 0.1, sigma_max = 0, sigma_min = 0, lr = 1e-3, clip = 0, ema = 0.999;
  int rademacher = 0, quiet = 0, overwrite = 0, force = 0;
  int conditional = 0;       /* --conditional */
  double label_dropout = -1; /* --label-dropout; -1: not given */
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage, stdout);
      return 0;
    }
    if (!strcmp(f, "--rademacher")) {
      rademacher = 1;
      continue;
    }
    if (!strcmp(f, "--quiet")) {
      quiet = 1;
      continue;
    }
    if (!strcmp(f, "--overwrite")) {
      overwrite = 1;
      continue;
    }
    if (!strcmp(f, "--force")) {
      force = 1;
      continue;
    }
    if (!strcmp(f, "--conditional")) {
      conditional = 1;
      continue;
    }
    if (i + 1 >= argc) return cli_fail("%s: missing value (see scorekit train --help)", f);
    const char *v = argv[++i];
    int ok = 1;
    if (!strcmp(f, "--data")) data = v;
    else if (!strcmp(f, "--out")) out = v;
    else if (!strcmp(f, "--resume")) resume = v;
    else if (!strcmp(f, "--labels")) labels_path = v;
    else if (!strcmp(f, "--objective")) obj_name = v;
    else if (!strcmp(f, "--model")) model_name = v;
    else if (!strcmp(f, "--activation")) act_name = v;
    else if (!strcmp(f, "--sigmas")) sigmas_arg = v;
    else if (!strcmp(f, "--channels")) channels_arg = v;
    else if (!strcmp(f, "--n-data")) ok = cli_int(f, v, 2, 100000000, &n_data);
    else if (!strcmp(f, "--label-column")) ok = cli_int(f, v, 0, 1000000, &label_column);
    else if (!strcmp(f, "--levels")) ok = cli_int(f, v, 1, SK_MAX_LEVELS, &levels);
    else if (!strcmp(f, "--projections")) ok = cli_int(f, v, 1, 1024, &projections);
    else if (!strcmp(f, "--hidden")) ok = cli_int(f, v, 1, 65536, &hidden);
    else if (!strcmp(f, "--depth")) ok = cli_int(f, v, 1, 62, &depth);
    else if (!strcmp(f, "--steps")) ok = cli_int(f, v, 1, 1000000000, &steps);
    else if (!strcmp(f, "--batch-size")) ok = cli_int(f, v, 1, 1 << 20, &batch);
    else if (!strcmp(f, "--seed")) ok = cli_int(f, v, 0, INT64_MAX, &seed);
    else if (!strcmp(f, "--checkpoint-every")) ok = cli_int(f, v, 1, 1000000000, &every);
    else if (!strcmp(f, "--sigma")) ok = cli_float(f, v, 1e-6, 1e6, &sigma);
    else if (!strcmp(f, "--sigma-max")) ok = cli_float(f, v, 1e-6, 1e6, &sigma_max);
    else if (!strcmp(f, "--sigma-min")) ok = cli_float(f, v, 1e-6, 1e6, &sigma_min);
    else if (!strcmp(f, "--lr")) ok = cli_float(f, v, 1e-12, 10, &lr);
    else if (!strcmp(f, "--clip")) ok = cli_float(f, v, 0, 1e12, &clip);
    else if (!strcmp(f, "--ema")) ok = cli_float(f, v, 0, 0.999999, &ema);
    else if (!strcmp(f, "--label-dropout")) ok = cli_float(f, v, 0, 1, &label_dropout);
    else return cli_fail("unknown flag %s (see scorekit train --help)", f);
    if (!ok) return 1;
  }
  if (!out) return cli_fail("--out DIR is required (see scorekit train --help)");
  sk_objective obj = sk_objective_parse(obj_name);
  if (obj == SK_OBJ_COUNT)
    return cli_fail("--objective: unknown \"%s\" (esm, dsm, ssm, ssm-vr, ncsn, classifier)", obj_name);
  sk_activation act = sk_activation_parse(act_name);
  if (act == SK_ACT_COUNT)
    return cli_fail("--activation: unknown \"%s\" (softplus, elu, silu, tanh)", act_name);
  sk_model_kind kind = obj == SK_OBJ_CLASSIFIER ? SK_MODEL_CLASSIFIER
                       : obj == SK_OBJ_NCSN     ? SK_MODEL_NCMLP
                                                : SK_MODEL_MLP;
  if (model_name) {
    if (obj == SK_OBJ_CLASSIFIER)
      return cli_fail("--model %s does not apply to --objective classifier (it trains a classifier)",
                      model_name);
    if (!strcmp(model_name, "mlp")) kind = SK_MODEL_MLP;
    else if (!strcmp(model_name, "ncmlp")) kind = SK_MODEL_NCMLP;
    else if (!strcmp(model_name, "unet")) kind = SK_MODEL_UNET;
    else return cli_fail("--model: unknown \"%s\" (mlp, ncmlp, unet)", model_name);
  }
  /* The samplers walk a U-Net down its σ ladder, which only ncsn trains. */
  if (kind == SK_MODEL_UNET && obj != SK_OBJ_NCSN)
    return cli_fail("--model unet trains with --objective ncsn only (it is sampled along a σ ladder)");
  int channels[4] = {0};
  if (channels_arg) {
    float cf[4];
    int nc = 0;
    if (kind != SK_MODEL_UNET) return cli_fail("--channels applies to --model unet only");
    if (!cli_float_list("--channels", channels_arg, cf, 4, &nc)) return 1;
    for (int i = 0; i < 4; i++) {
      if (nc != 4 || !(cf[i] >= 1 && cf[i] <= 4096) || cf[i] != (float)(int)cf[i])
        return cli_fail("--channels: need four whole numbers in 1..4096, got \"%s\"", channels_arg);
      channels[i] = (int)cf[i];
    }
  }
  /* An mlp has no σ input: its sampler could not walk the ladder. */
  if (obj == SK_OBJ_NCSN && kind == SK_MODEL_MLP)
    return cli_fail("--objective ncsn needs a noise-conditional model: --model mlp has no σ input "
                    "for its ladder (use --model ncmlp, the default)");
  /* Class-conditional: a score model with a noise input, fed labels. */
  if (label_dropout >= 0 && !conditional)
    return cli_fail("--label-dropout applies with --conditional only");
  if (conditional && kind != SK_MODEL_NCMLP && kind != SK_MODEL_UNET)
    return cli_fail("--conditional: needs --model ncmlp or unet (a noise-conditional score "
                    "model), not %s", kind == SK_MODEL_CLASSIFIER ? "a classifier" : "mlp");
  if (sigma_max && sigma_min && sigma_min >= sigma_max)
    return cli_fail("--sigma-min %g must be below --sigma-max %g", sigma_min, sigma_max);

  sk_dataset *ds = NULL;
  if (!n_data && sk_toy_classes(data) >= 0) n_data = 20000;
  if (!cli_load_data(data, n_data, (unsigned long long)seed, (int)label_column, labels_path, &ds))
    return 1;
  int classes = sk_dataset_classes(ds);
  /* Exact score matching differentiates the score once per dimension. */
  const int dim = sk_dataset_dim(ds);
  if (obj == SK_OBJ_ESM && dim > 256 && !force) {
    sk_dataset_free(ds);
    return cli_fail("--objective esm on %d-dimensional data: exact score matching takes %d backward "
                    "passes a step (one per dimension, for the Jacobian's trace) in a graph that "
                    "grows with them; refused above 256 dimensions: use ssm or dsm, or --force",
                    dim, dim);
  }
  if (obj == SK_OBJ_ESM && dim > 256)
    printf("esm: %d backward passes a step (one per dimension)\n", dim);
  if (obj == SK_OBJ_CLASSIFIER && classes < 2) {
    sk_dataset_free(ds);
    return cli_fail("--objective classifier: %s has no labels (or only one class)", data);
  }
  if (conditional && classes < 2) {
    sk_dataset_free(ds);
    return cli_fail("--conditional: %s has no labels (or only one class)", data);
  }
  sk_model_info info = {.objective = obj, .sigma = (float)sigma, .seed = (uint64_t)seed};
  snprintf(info.data, sizeof info.data, "%s", data);
  if (sk_dataset_image_shape(ds, info.image_shape)) {
    info.data_scale = sk_dataset_scale(ds);
    char how[64] = "values as stored";
    if (info.data_scale != 1) snprintf(how, sizeof how, "pixels divided by %g", info.data_scale);
    printf("images: %lld of %lld×%lld×%lld (c×h×w), %s, seen as rows of %d\n",
           (long long)sk_dataset_size(ds), (long long)info.image_shape[0],
           (long long)info.image_shape[1], (long long)info.image_shape[2], how, sk_dataset_dim(ds));
  }
  const int laddered = obj == SK_OBJ_NCSN || obj == SK_OBJ_CLASSIFIER;
  if (laddered) {
    if (sigmas_arg) {
      if (!cli_float_list("--sigmas", sigmas_arg, info.sigmas, SK_MAX_LEVELS, &info.n_sigmas)) {
        sk_dataset_free(ds);
        return 1;
      }
      for (int i = 1; i < info.n_sigmas; i++)
        if (info.sigmas[i] >= info.sigmas[i - 1]) {
          sk_dataset_free(ds);
          return cli_fail("--sigmas: the ladder must decrease, largest first");
        }
    } else {
      float smax = 0, smin = 0;
      if (!sigma_max || !sigma_min) {
        if (sk_dataset_sigma_range(ds, &smax, &smin) != SK_OK) {
          sk_dataset_free(ds);
          return cli_fail("%s: cannot choose a σ ladder: %s", data, sk_last_error());
        }
      }
      if (sigma_max) smax = (float)sigma_max;
      if (sigma_min) smin = (float)sigma_min;
      if (smin >= smax) {
        sk_dataset_free(ds);
        return cli_fail("σ ladder: σ_min %g is not below σ_max %g", smin, smax);
      }
      info.n_sigmas = (int)levels;
      for (int i = 0; i < levels; i++)
        info.sigmas[i] = levels == 1 ? smax
                                     : (float)(smax * pow(smin / smax, (double)i / (double)(levels - 1)));
    }
    printf("σ ladder: %d levels, %.4g ... %.4g (geometric, largest first)\n", info.n_sigmas,
            info.sigmas[0], info.sigmas[info.n_sigmas - 1]);
  }
  /* A noise-conditional model trained at one level samples at that level. */
  if (!laddered && kind == SK_MODEL_NCMLP) {
    info.n_sigmas = 1;
    info.sigmas[0] = (float)sigma;
  }
  sk_model_config mc = {kind, sk_dataset_dim(ds), (int)hidden, (int)depth,
                        obj == SK_OBJ_CLASSIFIER || conditional ? classes : 0, act};
  const size_t avail = force ? 0 : run_memory_available();
  if (kind != SK_MODEL_UNET && !run_weights_fit(&mc, avail)) {
    sk_dataset_free(ds);
    return 1;
  }
  sk_model *m = NULL;
  if (kind == SK_MODEL_UNET) {
    /* Rows are square one-channel images; the model checks the side. */
    const int side = (int)lround(sqrt((double)mc.dim));
    if (side * side != mc.dim) {
      sk_dataset_free(ds);
      return cli_fail("--model unet: %s has %d values a row, not a square image", data, mc.dim);
    }
    sk_unet_config uc = {{0}, {1, side, side}, 0, 0};
    memcpy(uc.channels, channels, sizeof channels);
    m = sk_model_new_unet_classes(&uc, conditional ? classes : 0);
  } else {
    m = sk_model_new(&mc);
  }
  if (!m) {
    sk_dataset_free(ds);
    return cli_fail("%s", sk_last_error());
  }
  sk_model_init(m, (uint64_t)seed);
  sk_train_config tc = {obj, (int)batch, (int)projections, rademacher, (float)sigma, info.n_sigmas,
                        info.sigmas, sk_adam_config_default(), (uint64_t)seed};
  tc.adam.lr = (float)lr;
  tc.adam.clip_norm = (float)clip;
  tc.adam.ema_rate = (float)ema;
  sk_trainer *t = NULL;
  int rc = 1;
  FILE *log = NULL;
  sk_status ts = sk_trainer_new_limited(m, ds, &tc, avail, &t);
  if (ts != SK_OK) {
    if (ts == SK_ERR_NOMEM && avail)
      cli_fail("%s (the limit is the memory available now; --force to try anyway)", sk_last_error());
    else
      cli_fail("%s", sk_last_error());
    goto done;
  }
  /* An existing directory is locked before its state is read, so that the
   * state cannot change under this run; a new one once created, below. */
  if (conditional && label_dropout >= 0 &&
      sk_trainer_set_label_dropout(t, (float)label_dropout) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  struct stat out_st;
  const int out_existed = stat(out, &out_st) == 0;
  if (out_existed && !run_lock(out)) goto done;
  if (resume && sk_trainer_resume(t, resume) != SK_OK) {
    sk_run_mismatch mm;
    if (sk_trainer_resume_mismatch(t, &mm)) run_resume_refused(&mm, data, sigmas_arg != NULL);
    else cli_fail("--resume: %s", sk_last_error());
    goto done;
  }
  if (sk_trainer_steps(t) > steps) {
    cli_fail("--resume: the checkpoint is at step %lld, past --steps %lld",
             (long long)sk_trainer_steps(t), steps);
    goto done;
  }
  /* Everything is validated: only now touch the output directory. */
  if (!out_existed && cli_mkdirs(out) != 0) {
    cli_fail("%s: cannot create: %s", out, strerror(errno));
    goto done;
  }
  if (!out_existed && !run_lock(out)) goto done;
  /* Only this run writes here now: a run directory continues its own run
   * (--resume from it) or is replaced on request (--overwrite). */
  const int continues = resume && run_same_dir(resume, out);
  char entry[256];
  if (continues && overwrite) {
    cli_fail("--overwrite would replace the run that --resume %s continues", resume);
    goto done;
  }
  if (!continues && !overwrite && !run_dir_empty(out, entry, sizeof entry)) {
    cli_fail("--out %s: not empty (it holds %s): pass --resume %s to continue its run, or "
             "--overwrite to replace it", out, entry, out);
    goto done;
  }
  static const char *const run_files[3] = {"log.csv", "state.safetensors", "model.safetensors"};
  for (int i = 0; overwrite && i < 3; i++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", out, run_files[i]);
    if (unlink(path) != 0 && errno != ENOENT) {
      cli_fail("%s: cannot remove: %s", path, strerror(errno));
      goto done;
    }
  }
  const int stale = run_remove_stale(out);
  if (stale) printf("removed %d temporary file%s left by an interrupted run\n", stale, stale > 1 ? "s" : "");
  /* A checkpoint of this run is in `out`: the resumed one, then each save. */
  int checkpointed = continues;
  char log_path[4096];
  snprintf(log_path, sizeof log_path, "%s/log.csv", out);
  int fresh = sk_trainer_steps(t) == 0 || access(log_path, F_OK) != 0;
  if (!fresh && !trim_log(log_path, (long long)sk_trainer_steps(t))) {
    cli_fail("%s: cannot rewrite: %s", log_path, strerror(errno));
    goto done;
  }
  log = fopen(log_path, fresh ? "w" : "a");
  if (!log || (fresh && !write_log_header(log))) {
    cli_fail("%s: cannot write: %s", log_path, strerror(errno));
    goto done;
  }
  const int bar = !quiet && isatty(2);
  const long long first = sk_trainer_steps(t);
  const sk_unet_config *uc = sk_model_get_unet(m);
  char arch[160];
  if (uc)
    snprintf(arch, sizeof arch, "unet %d,%d,%d,%d", uc->channels[0], uc->channels[1],
             uc->channels[2], uc->channels[3]);
  else
    snprintf(arch, sizeof arch, "%s %d×%d %s",
             kind == SK_MODEL_MLP ? "mlp" : kind == SK_MODEL_NCMLP ? "ncmlp" : "classifier",
             (int)depth, (int)hidden, act_name);
  if (conditional) {
    const size_t len = strlen(arch);
    snprintf(arch + len, sizeof arch - len, ", conditional on %d classes, label dropout %g", classes,
             (double)sk_trainer_label_dropout(t));
  }
  printf("training %s (%s, %zu parameters) on %s: steps %lld..%lld, batch %lld\n", obj_name, arch,
         sk_model_num_params(m), data, first + 1, steps, batch);
  fflush(stdout);
  double t0 = now(), t_first = t0;
  float loss = 0, gnorm = 0;
  long long saved_at = continues ? first : -1;
  /* From here a signal stops the run between two steps, with a checkpoint. */
  run_catch_signals();
  for (long long s = first + 1; s <= steps && !run_stop_signal(); s++) {
    if (sk_trainer_step(t, &loss, &gnorm) != SK_OK) {
      if (bar) fputc('\n', stderr);
      if (checkpointed)
        cli_fail("training stopped: %s; the last checkpoint in %s is kept", sk_last_error(), out);
      else
        cli_fail("training stopped: %s; no checkpoint of this run was saved", sk_last_error());
      goto done;
    }
    fprintf(log, "%lld,%.9g,%.9g,%.3f\n", s, loss, gnorm, now() - t0);
    if ((every && s % every == 0 && s != steps)) {
      /* The log first: it must reach at least as far as any checkpoint. */
      if (fflush(log) != 0) {
        cli_fail("%s: write failed", log_path);
        goto done;
      }
      if (sk_trainer_save(t, out, &info) != SK_OK) {
        cli_fail("%s", sk_last_error());
        goto done;
      }
      checkpointed = 1;
      saved_at = s;
    }
    if (bar && (s == steps || s % 25 == 0)) progress(s, steps, loss, t0, t_first, first);
  }
  if (bar) fputc('\n', stderr);
  const int sig = run_stop_signal();
  if (sig) {
    /* Stopped between steps: the log, then the checkpoint, then end by the
     * signal (what a shell or scheduler expects of a program it signalled). */
    const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    const long long at = (long long)sk_trainer_steps(t);
    if (at != saved_at && at > 0) {
      if (fflush(log) != 0 || sk_trainer_save(t, out, &info) != SK_OK) {
        cli_fail("interrupted by %s at step %lld, and the checkpoint failed: %s", name, at,
                 sk_last_error());
        goto done;
      }
      cli_fail("interrupted by %s: saved a checkpoint at step %lld in %s; continue with --resume %s",
               name, at, out, out);
    } else if (at > 0) {
      cli_fail("interrupted by %s: the checkpoint at step %lld in %s is kept; continue with "
               "--resume %s", name, at, out, out);
    } else {
      cli_fail("interrupted by %s before the first step: nothing saved", name);
    }
    fclose(log);
    run_die_by(sig);
  }
  if (fflush(log) != 0 || sk_trainer_save(t, out, &info) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  printf("final loss %.5g after %lld steps in %.1fs; wrote %s/model.safetensors\n", loss,
          steps, now() - t0, out);
  if (obj == SK_OBJ_CLASSIFIER && sk_toy_classes(data) > 0) {
    /* Fresh draws the classifier never saw, clean (the ladder's smallest σ). */
    enum { HELD_OUT = 5000 };
    float *hx = malloc(HELD_OUT * 2 * sizeof *hx);
    int32_t *hy = malloc(HELD_OUT * sizeof *hy);
    sk_rng hr = sk_rng_make((uint64_t)seed + 1, 0x686f6c64); /* "hold" */
    double acc = 0;
    if (hx && hy && sk_toy_sample(data, &hr, HELD_OUT, hx, hy) == SK_OK &&
        sk_classifier_accuracy(m, hx, hy, HELD_OUT, info.sigmas[info.n_sigmas - 1], &acc) == SK_OK)
      printf("classifier accuracy on %d clean held-out points: %.4f\n", HELD_OUT, acc);
    free(hx);
    free(hy);
  }
  rc = 0;
done:
  if (log && fclose(log) != 0 && rc == 0) rc = cli_fail("%s/log.csv: write failed", out);
  sk_trainer_free(t);
  sk_model_free(m);
  sk_dataset_free(ds);
  return rc;
}
