/* `scorekit train`: fit a score model (or a noise-conditional classifier)
 * and write DIR/model.safetensors, DIR/state.safetensors, DIR/log.csv and
 * DIR/loss.png. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_mpi.h"
#include "train_run.h"

static const char usage[] =
    "usage: scorekit train [flags] --out DIR\n"
    "\n"
    "Trains a score network (or, with --objective classifier, a noise-conditional\n"
    "classifier) and writes DIR/model.safetensors (weights, EMA weights, config),\n"
    "DIR/state.safetensors (optimiser state, for --resume), DIR/log.csv and\n"
    "DIR/loss.png (the loss against the step, smoothed).\n"
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
    "  --objective NAME      esm | dsm | ssm | ssm-vr | ncsn | vesde | classifier\n"
    "                        (default ncsn); vesde draws each sample's σ log-uniform\n"
    "                        between --sigma-min and --sigma-max (continuous noise, as\n"
    "                        the score-SDE models) and records the --levels ladder for\n"
    "                        the samplers; esm takes d backward passes a step (the\n"
    "                        Jacobian's trace): refused above 256 dimensions unless --force\n"
    "  --sigma S             dsm's noise level; the level a noise-conditional model is\n"
    "                        trained at by esm/ssm/ssm-vr (default 0.1)\n"
    "  --levels L            ncsn/vesde/classifier: size of the geometric σ ladder\n"
    "                        (default 10; at least 2 for vesde)\n"
    "  --sigma-max S, --sigma-min S\n"
    "                        its ends (default: σ_max the largest distance between two\n"
    "                        rows of the data, exact up to 20000 2-D rows, else over\n"
    "                        evenly spaced rows; σ_min 0.01 × the mean std; printed)\n"
    "  --sigmas S1,S2,...    an explicit ladder, largest first\n"
    "  --projections M       ssm/ssm-vr: projections per sample (default 1)\n"
    "  --rademacher          ssm/ssm-vr: ±1 projections instead of Gaussian\n"
    "model\n"
    "  --model mlp|ncmlp|unet|convnet\n"
    "                        unconditional s(x), s(x, σ) = f([x, log σ])/σ, or the\n"
    "                        score-SDE tutorial's U-Net on square one-channel images\n"
    "                        (ncsn, vesde) (default ncmlp for ncsn and vesde, which need\n"
    "                        a noise-conditional model; mlp otherwise; an ncmlp trained\n"
    "                        by esm/dsm/ssm/ssm-vr samples at --sigma); with\n"
    "                        --objective classifier: an MLP on [x, log σ] without\n"
    "                        --model, or convnet, a convolutional classifier of images\n"
    "  --channels C1,C2,C3,C4  the U-Net's encoder widths (default 32,64,128,256), or\n"
    "                        C1,C2,C3 the convnet's (default 32,64,128)\n"
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
    "  --steps N             total steps (default 3000; with --minutes, the most, and\n"
    "                        without --steps no limit)\n"
    "  --minutes M           stop at the first step after M minutes of training, saving\n"
    "                        as at the end and saying how many steps were done\n"
    "  --batch-size B        (default 128)\n"
    "  --lr LR               Adam step size (default 1e-3)\n"
    "  --clip C              clip the gradient norm to C (default off)\n"
    "  --ema R               EMA rate of the weights, saved beside them; sample uses\n"
    "                        them (default 0.999, the U-Net too: see docs/MATH.md)\n"
    "  --seed S              (default 0)\n"
    "output\n"
    "  --out DIR             where to write (created if needed); a fresh run refuses a\n"
    "                        non-empty DIR\n"
    "  --resume DIR          continue the run saved in DIR, with --out DIR (or --out NEW:\n"
    "                        into a new directory); pass the same flags (a different\n"
    "                        setting or data is refused, naming the flag)\n"
    "  --overwrite           replace the run in a non-empty --out DIR (its files are\n"
    "                        kept aside until this run's first checkpoint)\n"
    "  --force               run what is refused as too costly: esm above 256\n"
    "                        dimensions, an estimate above the available memory\n"
    "  --checkpoint-every K  also save every K steps (default: at the end only)\n"
    "  --quiet               no progress on stderr (otherwise steps done, steps/s, the\n"
    "                        loss's running mean and the time left: one line rewritten\n"
    "                        on a terminal, else a line each tenth of the run or 30 s)\n"
    "\n"
    "One train at a time writes to a DIR (DIR/.lock; another is refused, naming it).\n"
    "SIGTERM or SIGINT ends a run after its current step with a checkpoint, for\n"
    "--resume; a second signal ends it at once. Under mpirun or srun each rank\n"
    "computes a share of every batch and rank 0 writes DIR (docs/MPI.md).\n";

static int write_log_header(FILE *f) { return fprintf(f, "step,loss,grad_norm,seconds\n") > 0; }

/* A run that failed or was stopped before its first checkpoint leaves the
 * directory as it found it, so that the same command can run again:
 * claimed (the directory was empty, or its run set aside: every run file in
 * it is this run's), those files removed and a replaced run's put back
 * (--overwrite); made (cli_mkdirs': the directories this run created, as
 * the length of the first one's path; 0 for none) removed with the lock. */
static void run_undo(const char *out, int claimed, size_t made, int aside[RUN_FILES]) {
  char path[4200];
  for (int i = 0; claimed && i < RUN_FILES; i++)
    if ((size_t)snprintf(path, sizeof path, "%s/%s", out, run_files[i]) < sizeof path) unlink(path);
  run_aside_end(out, aside, 0);
  if (!made || (size_t)snprintf(path, sizeof path, "%s/.lock", out) >= sizeof path) return;
  unlink(path);
  /* The directory, then each parent it created: rmdir fails, harmlessly,
   * on one that holds anything else. */
  snprintf(path, sizeof path, "%s", out);
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') path[--n] = '\0';
  while (n >= made && rmdir(path) == 0) {
    while (n > 0 && path[n - 1] != '/') n--; /* to its parent */
    while (n > 0 && path[n - 1] == '/') n--;
    if (n < made) break;
    path[n] = '\0';
  }
}

/* A file of the run directory opened as a stream without following a
 * symbolic link and without waiting on a FIFO (the checks of the library's
 * readers, src/io/files.c): lstat first, so that a device or a FIFO is never
 * opened; then O_NOFOLLOW | O_NONBLOCK, so that one swapped in meanwhile
 * cannot block the open; then fstat of what was opened. `flags` are open's
 * (O_RDONLY, or O_WRONLY with O_CREAT and O_APPEND or O_TRUNC). NULL after a
 * one-line message naming the file and what it is. */
static FILE *open_run_file(const char *path, int flags) {
  struct stat sb;
  if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
    cli_fail("%s: is %s, not a regular file; remove it (the run writes its own)", path,
             S_ISLNK(sb.st_mode)    ? "a symbolic link"
             : S_ISFIFO(sb.st_mode) ? "a FIFO"
             : S_ISDIR(sb.st_mode)  ? "a directory"
                                    : "a special file");
    return NULL;
  }
  const int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
  if (fd < 0) {
    cli_fail("%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    cli_fail("%s: not a regular file (changed while it was opened)", path);
    return NULL;
  }
  const int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  FILE *f = fdopen(fd, (flags & O_ACCMODE) == O_RDONLY ? "r" : "a");
  if (!f) {
    cli_fail("%s: cannot open: %s", path, strerror(errno));
    close(fd);
  }
  return f;
}

/* After a resume, drop log lines past the checkpoint's step (written after
 * the last checkpoint by a run that then died), so each step appears once. */
static int trim_log(const char *path, long long last_step) {
  FILE *in = open_run_file(path, O_RDONLY);
  if (!in) return 0;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.trim", path);
  FILE *out = open_run_file(tmp, O_WRONLY | O_CREAT | O_TRUNC);
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
  if (fclose(out) != 0 || rename(tmp, path) != 0)
    return !cli_fail("%s: cannot rewrite: %s", path, strerror(errno));
  return 1;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- progress on stderr ---- */

/* A run's progress: steps done of the total, steps/s, the loss's running
 * mean and the time left. On a terminal, one line rewritten in place (at
 * most 10 times a second); otherwise a line at each tenth of the run (of its
 * steps, or of its --minutes) or after 30 s without one, so a log stays
 * readable. */
typedef struct progress {
  int on, tty;
  long long first, total; /* steps first+1..total; total < 0: no step limit */
  double budget_s;        /* --minutes in seconds, 0 without */
  double t0, last;        /* the loop's start; the last line */
  int tenth;              /* tenths of the run reported */
  double mean, weight;    /* the loss's running mean (decay 0.99, bias-corrected) */
  int drawn;              /* a terminal line is on screen, unfinished */
} progress;

static void span_text(char *buf, size_t cap, double s) {
  if (s < 60) snprintf(buf, cap, "%.0fs", s);
  else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
  else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* The share of the run done at step s, elapsed el: of its steps, or of its
 * time budget, whichever is further. */
static double progress_done(const progress *p, long long s, double el) {
  double f = 0;
  if (p->total > p->first) f = (double)(s - p->first) / (double)(p->total - p->first);
  if (p->budget_s > 0) f = fmax(f, el / p->budget_s);
  return fmin(f, 1);
}

static void progress_line(progress *p, long long s, double t) {
  const double el = t - p->t0, rate = (double)(s - p->first) / fmax(el, 1e-9);
  double left = p->total >= 0 && rate > 0 ? (double)(p->total - s) / rate : INFINITY;
  if (p->budget_s > 0) left = fmin(left, fmax(p->budget_s - el, 0));
  char of[64], els[32], eta[32];
  if (p->total >= 0) snprintf(of, sizeof of, "/%lld", p->total);
  else snprintf(of, sizeof of, " of %.3g min", p->budget_s / 60);
  span_text(els, sizeof els, el);
  span_text(eta, sizeof eta, left);
  fprintf(stderr, "%sstep %lld%s (%.0f%%)  %.1f steps/s  loss %.5g  %s  ETA %s%s",
          p->tty ? "\r" : "", s, of, 100 * progress_done(p, s, el), rate, p->mean / p->weight, els,
          eta, p->tty ? "\033[K" : "\n"); /* on a terminal, clear the rest of the old line */
  p->drawn = p->tty;
  p->last = t;
}

static void progress_step(progress *p, long long s, float loss) {
  p->mean = 0.99 * p->mean + 0.01 * loss;
  p->weight = 0.99 * p->weight + 0.01;
  if (!p->on) return;
  const double t = now();
  if (p->tty) {
    if (t - p->last >= 0.1) progress_line(p, s, t);
    return;
  }
  const int tenth = (int)floor(10 * progress_done(p, s, t - p->t0));
  if (tenth > p->tenth || t - p->last >= 30) {
    if (tenth > p->tenth) p->tenth = tenth;
    progress_line(p, s, t);
  }
}

/* The last line at step s (when the run got that far), ended. */
static void progress_end(progress *p, long long s) {
  if (!p->on) return;
  if (s > p->first && (p->tty || p->tenth < 10)) progress_line(p, s, now());
  if (p->drawn) fputc('\n', stderr);
  p->drawn = 0;
}

/* Ends an unfinished terminal line before a message. */
static void progress_break(progress *p) {
  if (p->drawn) fputc('\n', stderr);
  p->drawn = 0;
}

/* ---- the loss curve ---- */

/* DIR/loss.png from DIR/log.csv (every step the run has logged, resumes
 * included): the loss smoothed by an exponential moving average over about
 * a fortieth of the run (bias-corrected, so its start is not pulled to 0)
 * as the line, the raw loss faint beneath it; a log y axis unless the loss
 * takes values <= 0 (esm and ssm can). 1, or 0 after a message. */
static int write_loss_plot(const char *dir, const char *log_path) {
  FILE *f = open_run_file(log_path, O_RDONLY);
  if (!f) return 0;
  size_t cap = 0;
  char line[512];
  while (fgets(line, sizeof line, f)) cap++;
  rewind(f);
  float *x = cap ? cli_alloc(cap * 3 * sizeof *x) : NULL;
  if (!x) {
    fclose(f);
    return cap ? !cli_fail("%s/loss.png: out of memory for %zu log lines", dir, cap)
               : !cli_fail("%s: empty", log_path);
  }
  float *raw = x + cap, *smooth = x + 2 * cap;
  size_t n = 0;
  while (n < cap && fgets(line, sizeof line, f)) {
    char *end, *end2;
    const double step = strtod(line, &end);
    if (end == line || *end != ',') continue; /* the header */
    const double loss = strtod(end + 1, &end2);
    if (end2 == end + 1) continue;
    x[n] = (float)step;
    raw[n++] = (float)loss;
  }
  fclose(f);
  const double decay = 1 - 1 / fmax(1, (double)n / 40);
  double m = 0, w = 0;
  int positive = n > 0;
  for (size_t i = 0; i < n; i++) {
    m = decay * m + (1 - decay) * raw[i];
    w = decay * w + (1 - decay);
    smooth[i] = (float)(m / w);
    positive = positive && smooth[i] > 0;
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/loss.png", dir);
  const sk_status st = sk_plot_line(path, 960, 560, x, smooth, raw, (int64_t)n, positive);
  free(x);
  if (st != SK_OK) return !cli_fail("%s", sk_last_error());
  printf("wrote %s (the loss against the step, %s)\n", path,
         positive ? "log y axis" : "linear y axis: the loss goes to 0 or below");
  return 1;
}

/* Whether `flag` of the list `valued` was given (its bit in `seen`, which
 * cli_value keeps). */
static int given(const char *const *valued, unsigned long long seen, const char *flag) {
  for (int k = 0; valued[k] && k < 64; k++)
    if (!strcmp(valued[k], flag)) return (int)(seen >> k & 1);
  return 0;
}

int cmd_train(int argc, char **argv) {
  const char *data = "mog8", *out = NULL, *resume = NULL, *labels_path = NULL;
  const char *obj_name = "ncsn", *model_name = NULL, *act_name = "softplus", *sigmas_arg = NULL;
  const char *channels_arg = NULL;
  long long n_data = 0, label_column = -1, levels = 10, projections = 1, hidden = 128,
            depth = 3, steps = 3000, batch = 128, seed = 0, every = 0;
  double sigma = 0.1, sigma_max = 0, sigma_min = 0, lr = 1e-3, clip = 0, ema = 0.999, minutes = 0;
  int rademacher = 0, quiet = 0, overwrite = 0, force = 0, steps_given = 0;
  int conditional = 0;       /* --conditional */
  double label_dropout = -1; /* --label-dropout; -1: not given */
  static const char *const valued[] = {
      "--data",       "--out",       "--resume",  "--labels",     "--objective",
      "--model",      "--activation", "--sigmas", "--channels",   "--n-data",
      "--label-column", "--levels",  "--projections", "--hidden", "--depth",
      "--steps",      "--minutes",   "--batch-size", "--seed",    "--checkpoint-every",
      "--sigma",      "--sigma-max", "--sigma-min", "--lr",       "--clip",
      "--ema",        "--label-dropout", NULL};
  static const char *const switches[] = {"--rademacher", "--quiet", "--overwrite", "--force",
                                         "--conditional", "--help", "-h", NULL};
  unsigned long long seen = 0;
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
    const char *v = cli_value("train", argc, argv, &i, valued, switches, &seen);
    if (!v) return 1;
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
    else if (!strcmp(f, "--steps")) ok = steps_given = cli_int(f, v, 1, 1000000000, &steps);
    else if (!strcmp(f, "--minutes")) ok = cli_float(f, v, 1e-6, 1e7, &minutes);
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
    if (!ok) return 1;
  }
  if (!out) return cli_fail("--out DIR is required (see scorekit train --help)");
  if (!*out) return cli_fail("--out: the path is empty");
  /* --minutes alone: the clock is the only limit. */
  if (minutes > 0 && !steps_given) steps = INT64_MAX;
  sk_objective obj = sk_objective_parse(obj_name);
  if (obj == SK_OBJ_COUNT)
    return cli_fail("--objective: unknown \"%s\" (esm, dsm, ssm, ssm-vr, ncsn, vesde, classifier)",
                    obj_name);
  sk_activation act = sk_activation_parse(act_name);
  if (act == SK_ACT_COUNT)
    return cli_fail("--activation: unknown \"%s\" (softplus, elu, silu, tanh)", act_name);
  sk_model_kind kind = obj == SK_OBJ_CLASSIFIER ? SK_MODEL_CLASSIFIER
                       : obj == SK_OBJ_NCSN || obj == SK_OBJ_VESDE ? SK_MODEL_NCMLP
                                                : SK_MODEL_MLP;
  if (model_name && obj == SK_OBJ_CLASSIFIER) {
    if (!strcmp(model_name, "convnet")) kind = SK_MODEL_CONVNET;
    else
      return cli_fail("--model %s does not apply to --objective classifier (it trains an MLP "
                      "classifier, or with --model convnet a convolutional one)", model_name);
  } else if (model_name) {
    if (!strcmp(model_name, "convnet"))
      return cli_fail("--model convnet is a classifier: it trains with --objective classifier");
    if (!strcmp(model_name, "mlp")) kind = SK_MODEL_MLP;
    else if (!strcmp(model_name, "ncmlp")) kind = SK_MODEL_NCMLP;
    else if (!strcmp(model_name, "unet")) kind = SK_MODEL_UNET;
    else return cli_fail("--model: unknown \"%s\" (mlp, ncmlp, unet; convnet with --objective classifier)",
                         model_name);
  }
  /* The samplers walk a U-Net down its σ ladder, which ncsn and vesde train. */
  if (kind == SK_MODEL_UNET && obj != SK_OBJ_NCSN && obj != SK_OBJ_VESDE)
    return cli_fail("--model unet trains with --objective ncsn or vesde only (it is sampled along "
                    "a σ ladder)");
  int channels[4] = {0};
  if (channels_arg) {
    int nc = 0;
    if (kind != SK_MODEL_UNET && kind != SK_MODEL_CONVNET)
      return cli_fail("--channels applies to --model unet or convnet only");
    const int want = kind == SK_MODEL_UNET ? 4 : 3;
    if (!cli_int_list("--channels", channels_arg, 1, 4096, channels, want, &nc)) return 1;
    if (nc != want)
      return cli_fail("--channels: need %s whole numbers in 1..4096, got \"%s\"",
                      want == 4 ? "four" : "three", channels_arg);
  }
  /* A flag that would change nothing is a mistake to report, not to ignore. */
  const int takes_projections = obj == SK_OBJ_SSM || obj == SK_OBJ_SSM_VR;
  const int takes_ladder = obj == SK_OBJ_NCSN || obj == SK_OBJ_VESDE || obj == SK_OBJ_CLASSIFIER;
  const int takes_sigma = obj == SK_OBJ_DSM || (!takes_ladder && kind == SK_MODEL_NCMLP);
  if (!takes_projections && given(valued, seen, "--projections"))
    return cli_fail("--projections: applies to --objective ssm and ssm-vr only");
  if (!takes_projections && rademacher)
    return cli_fail("--rademacher: applies to --objective ssm and ssm-vr only");
  if (!takes_sigma && given(valued, seen, "--sigma"))
    return cli_fail("--sigma: applies to --objective dsm, and esm, ssm and ssm-vr with --model "
                    "ncmlp, only (%s)", takes_ladder ? "the σ ladder is --levels, --sigma-max, "
                    "--sigma-min or --sigmas" : "an mlp has no σ input");
  static const char *const ladder_flags[4] = {"--levels", "--sigma-max", "--sigma-min", "--sigmas"};
  for (int k = 0; k < 4; k++) {
    if (!takes_ladder && given(valued, seen, ladder_flags[k]))
      return cli_fail("%s: applies to --objective ncsn, vesde and classifier only (their σ ladder)",
                      ladder_flags[k]);
    if (k < 3 && sigmas_arg && given(valued, seen, ladder_flags[k]))
      return cli_fail("%s: does not apply with --sigmas (it gives the whole ladder)",
                      ladder_flags[k]);
  }
  static const char *const mlp_flags[3] = {"--hidden", "--depth", "--activation"};
  for (int k = 0; k < 3; k++)
    if (kind == SK_MODEL_UNET && given(valued, seen, mlp_flags[k]))
      return cli_fail("%s: applies to the MLP models only (mlp, ncmlp, classifier; the U-Net's "
                      "widths are --channels)", mlp_flags[k]);
  /* An mlp has no σ input: its sampler could not walk the ladder. */
  if ((obj == SK_OBJ_NCSN || obj == SK_OBJ_VESDE) && kind == SK_MODEL_MLP)
    return cli_fail("--objective %s needs a noise-conditional model: --model mlp has no σ input "
                    "for its noise levels (use --model ncmlp, the default)", obj_name);
  if (obj == SK_OBJ_VESDE && levels < 2)
    return cli_fail("--levels %lld: vesde needs at least 2 (its ladder spans σ_max to σ_min)",
                    levels);
  /* Class-conditional: a score model with a noise input, fed labels. */
  if (label_dropout >= 0 && !conditional)
    return cli_fail("--label-dropout applies with --conditional only");
  if (conditional && kind != SK_MODEL_NCMLP && kind != SK_MODEL_UNET)
    return cli_fail("--conditional: needs --model ncmlp or unet (a noise-conditional score "
                    "model), not %s",
                    kind == SK_MODEL_CLASSIFIER || kind == SK_MODEL_CONVNET ? "a classifier"
                                                                            : "mlp");
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
  const int laddered = obj == SK_OBJ_NCSN || obj == SK_OBJ_CLASSIFIER || obj == SK_OBJ_VESDE;
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
      if (!sigma_max) { /* say where the default comes from, and over which rows */
        double far = 0;
        int64_t rows = 0;
        const long long n = (long long)sk_dataset_size(ds);
        if (sk_dataset_max_distance(ds, &far, &rows) == SK_OK && rows == n)
          printf("σ_max %.4g: the largest distance between two of the %lld rows (exact)\n", far, n);
        else if (rows > 0)
          printf("σ_max %.4g: the largest distance between two of %lld evenly spaced rows of the "
                 "%lld\n", far, (long long)rows, n);
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
    if (obj == SK_OBJ_VESDE && info.n_sigmas < 2) {
      sk_dataset_free(ds);
      return cli_fail("--sigmas: vesde needs at least 2 levels (its σ range is first to last)");
    }
    printf("σ ladder: %d levels, %.4g ... %.4g (geometric, largest first)\n", info.n_sigmas,
            info.sigmas[0], info.sigmas[info.n_sigmas - 1]);
    if (obj == SK_OBJ_VESDE)
      printf("vesde: σ drawn log-uniform on [%.4g, %.4g] for each sample\n",
             info.sigmas[info.n_sigmas - 1], info.sigmas[0]);
  }
  /* A noise-conditional model trained at one level samples at that level. */
  if (!laddered && kind == SK_MODEL_NCMLP) {
    info.n_sigmas = 1;
    info.sigmas[0] = (float)sigma;
  }
  sk_model_config mc = {kind, sk_dataset_dim(ds), (int)hidden, (int)depth,
                        obj == SK_OBJ_CLASSIFIER || conditional ? classes : 0, act};
  const size_t avail = force ? 0 : run_memory_available();
  if (kind != SK_MODEL_UNET && kind != SK_MODEL_CONVNET && !run_weights_fit(&mc, avail)) {
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
  } else if (kind == SK_MODEL_CONVNET) {
    if (!info.image_shape[0]) {
      sk_dataset_free(ds);
      return cli_fail("--model convnet: %s is not a set of images (rows have no c×h×w shape)", data);
    }
    sk_convnet_config cc = {{channels[0], channels[1], channels[2]},
                            {(int)info.image_shape[0], (int)info.image_shape[1],
                             (int)info.image_shape[2]}, classes, 0, 0};
    m = sk_model_new_convnet(&cc);
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
  /* What a run that fails before its first checkpoint takes back (run_undo):
   * the directory it made, the log it began, the replaced run it set aside. */
  int claimed = 0, checkpointed = 0, aside[RUN_FILES] = {0};
  size_t made = 0;
  char log_path[4096] = "";
  /* Under MPI each rank computes a share of every batch; rank 0 alone
   * writes the run directory (the others log to /dev/null). */
  const int writer = cli_mpi_rank() == 0;
  sk_train_share share_buf;
  const sk_train_share *share = NULL;
  if (!cli_mpi_share((int)batch, &share_buf, &share)) goto done;
  sk_status ts = sk_trainer_new_share(m, ds, &tc, share, avail, &t);
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
  if (writer && out_existed && (!run_lock(out) || !run_recover_aside(out))) goto done;
  if (resume && sk_trainer_resume(t, resume) != SK_OK) {
    sk_run_mismatch mm;
    if (sk_trainer_resume_mismatch(t, &mm)) run_resume_refused(&mm, data, sigmas_arg != NULL);
    else cli_fail("--resume: %s", sk_last_error());
    goto done;
  }
  if (sk_trainer_steps(t) > steps && steps_given) {
    cli_fail("--resume: the checkpoint is at step %lld, past --steps %lld",
             (long long)sk_trainer_steps(t), steps);
    goto done;
  }
  /* Everything is validated: only now touch the output directory (once
   * every rank is ready: one that failed has ended the job by now). */
  cli_mpi_max(0);
  size_t made_now = 0;
  if (writer && !out_existed && cli_mkdirs(out, &made_now) != 0) {
    cli_fail("%s: cannot create: %s", out, strerror(errno));
    goto done;
  }
  if (writer && !out_existed && !run_lock(out)) goto done;
  made = made_now; /* only once its lock is this run's */
  /* Only this run writes here now: a run directory continues its own run
   * (--resume from it) or is replaced on request (--overwrite). */
  const int continues = resume && run_same_dir(resume, out);
  char entry[256];
  if (continues && overwrite) {
    cli_fail("--overwrite would replace the run that --resume %s continues", resume);
    goto done;
  }
  if (writer && !continues && !overwrite && !run_dir_empty(out, entry, sizeof entry)) {
    cli_fail("--out %s: not empty (it holds %s): pass --resume %s to continue its run, or "
             "--overwrite to replace it", out, entry, out);
    goto done;
  }
  const int stale = writer ? run_remove_stale(out) : 0;
  if (stale) printf("removed %d temporary file%s left by an interrupted run\n", stale, stale > 1 ? "s" : "");
  /* The replaced run's files stay, set aside, until this run's first
   * checkpoint replaces them. */
  if (writer && overwrite && !run_set_aside(out, aside)) goto done;
  claimed = writer && !continues;
  /* A checkpoint of this run is in `out`: the resumed one, then each save. */
  checkpointed = continues;
  snprintf(log_path, sizeof log_path, "%s/log.csv", out);
  int fresh = sk_trainer_steps(t) == 0 || access(log_path, F_OK) != 0;
  if (writer && !fresh && !trim_log(log_path, (long long)sk_trainer_steps(t))) goto done;
  log = writer ? open_run_file(log_path, O_WRONLY | O_CREAT | (fresh ? O_TRUNC : O_APPEND))
               : fopen("/dev/null", "a"); /* only rank 0 writes the run */
  if (!log) goto done;
  if (fresh && !write_log_header(log)) {
    cli_fail("%s: cannot write: %s", log_path, strerror(errno));
    goto done;
  }
  const long long first = sk_trainer_steps(t);
  const sk_unet_config *uc = sk_model_get_unet(m);
  const sk_convnet_config *cvc = sk_model_get_convnet(m);
  char arch[160];
  if (uc)
    snprintf(arch, sizeof arch, "unet %d,%d,%d,%d", uc->channels[0], uc->channels[1],
             uc->channels[2], uc->channels[3]);
  else if (cvc)
    snprintf(arch, sizeof arch, "convnet %d,%d,%d", cvc->channels[0], cvc->channels[1],
             cvc->channels[2]);
  else
    snprintf(arch, sizeof arch, "%s %d×%d %s",
             kind == SK_MODEL_MLP ? "mlp" : kind == SK_MODEL_NCMLP ? "ncmlp" : "classifier",
             (int)depth, (int)hidden, act_name);
  if (conditional) {
    const size_t len = strlen(arch);
    snprintf(arch + len, sizeof arch - len, ", conditional on %d classes, label dropout %g", classes,
             (double)sk_trainer_label_dropout(t));
  }
  char until[96];
  if (minutes > 0 && !steps_given) snprintf(until, sizeof until, ".. for %g minutes", minutes);
  else if (minutes > 0) snprintf(until, sizeof until, "..%lld or for %g minutes", steps, minutes);
  else snprintf(until, sizeof until, "..%lld", steps);
  printf("training %s (%s, %zu parameters) on %s: steps %lld%s, batch %lld\n", obj_name, arch,
         sk_model_num_params(m), data, first + 1, until, batch);
  fflush(stdout);
  const double t0 = now();
  progress pr = {!quiet && writer, isatty(2), first, steps_given || minutes == 0 ? steps : -1,
                 minutes * 60, t0, t0, 0, 0, 0, 0};
  int out_of_time = 0;
  float loss = 0, gnorm = 0;
  long long saved_at = continues ? first : -1;
  /* From here a signal stops the run between two steps, with a checkpoint. */
  run_catch_signals();
  int stop = 0; /* every rank stops after the same step */
  for (long long s = first + 1; s <= steps && !(stop = cli_mpi_max(run_stop_signal())) && !out_of_time; s++) {
    if (sk_trainer_step(t, &loss, &gnorm) != SK_OK) {
      progress_break(&pr);
      if (checkpointed)
        cli_fail("training stopped: %s; the last checkpoint in %s is kept", sk_last_error(), out);
      else
        cli_fail("training stopped: %s; no checkpoint of this run was saved", sk_last_error());
      goto done;
    }
    fprintf(log, "%lld,%.9g,%.9g,%.3f\n", s, loss, gnorm, now() - t0);
    /* The first step after the time is up ends the run, as its last step would. */
    out_of_time = minutes > 0 && cli_mpi_max(now() - t0 >= minutes * 60); /* the same on every rank */
    if (every && s % every == 0 && s != steps && !out_of_time) {
      /* The log first: it must reach at least as far as any checkpoint. */
      if (fflush(log) != 0) {
        cli_fail("%s: write failed", log_path);
        goto done;
      }
      if (cli_mpi_save(t, out, &info) != SK_OK) {
        cli_fail("%s", sk_last_error());
        goto done;
      }
      checkpointed = 1;
      run_aside_end(out, aside, 1);
      saved_at = s;
    }
    progress_step(&pr, s, loss);
  }
  progress_end(&pr, (long long)sk_trainer_steps(t));
  const int sig = stop ? stop : run_stop_signal();
  if (sig) {
    /* Stopped between steps: the log, then the checkpoint, then end by the
     * signal (what a shell or scheduler expects of a program it signalled). */
    const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    const long long at = (long long)sk_trainer_steps(t);
    if (at != saved_at && at > 0) {
      if (fflush(log) != 0 || cli_mpi_save(t, out, &info) != SK_OK) {
        cli_fail("interrupted by %s at step %lld, and the checkpoint failed: %s", name, at,
                 sk_last_error());
        goto done;
      }
      checkpointed = 1;
      run_aside_end(out, aside, 1);
      cli_fail("interrupted by %s: saved a checkpoint at step %lld in %s; continue with --resume %s "
               "--out %s", name, at, out, out, out);
    } else if (at > 0) {
      cli_fail("interrupted by %s: the checkpoint at step %lld in %s is kept; continue with "
               "--resume %s --out %s", name, at, out, out, out);
    } else {
      cli_fail("interrupted by %s before the first step: nothing saved", name);
    }
    fclose(log);
    log = NULL;
    if (!checkpointed) run_undo(out, claimed, made, aside);
    run_die_by(sig);
  }
  if (fflush(log) != 0 || cli_mpi_save(t, out, &info) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  checkpointed = 1;
  run_aside_end(out, aside, 1);
  const long long done_steps = (long long)sk_trainer_steps(t);
  if (out_of_time)
    printf("stopped by --minutes %g: %lld steps done in %.1fs (steps %lld..%lld)\n", minutes,
           done_steps - first, now() - t0, first + 1, done_steps);
  printf("final loss %.5g after %lld steps in %.1fs; wrote %s/model.safetensors\n", loss,
         done_steps, now() - t0, out);
  if (!write_loss_plot(out, log_path)) goto done;
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
  if (rc != 0 && !checkpointed) run_undo(out, claimed, made, aside);
  sk_trainer_free(t);
  sk_model_free(m);
  sk_dataset_free(ds);
  return rc;
}
