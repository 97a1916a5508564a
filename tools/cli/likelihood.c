/* `scorekit likelihood`: log-likelihoods of data under a noise-conditional
 * score model, by the instantaneous change of variables along the
 * probability-flow ODE (docs/MATH.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_mpi.h"

/* Rows per chunk: points, and images (a U-Net's gradient graph is larger). */
#define LIK_ROWS 512
#define LIK_IMAGE_ROWS 64

static const char usage[] =
    "usage: scorekit likelihood --model FILE --data NAME|FILE [flags]\n"
    "\n"
    "log p_σmin(x) of every data point under a noise-conditional score model:\n"
    "the probability-flow ODE carries x from σ_min to σ_max (the ends of the\n"
    "model's ladder) while integrating the divergence of the score, and\n"
    "N(0, σ_max² I) scores the end point. Prints the mean over the points and\n"
    "its standard error, in nats per point, and for 8-bit images in bits per\n"
    "dimension of the dequantised pixels (x + u, u ~ U[0, 1)).\n"
    "\n"
    "  --model FILE      a model.safetensors written by scorekit train (ncmlp or unet)\n"
    "  --raw             use the raw weights instead of their EMA (the default)\n"
    "  --data NAME|FILE  a built-in set or a file, as in train\n"
    "  --n N             points: a built-in set's draws, a file's first N rows\n"
    "                    (default 1000; 0 for a whole file)\n"
    "  --probes K        Hutchinson's trace estimate with K Rademacher probes per point,\n"
    "                    fixed through its solve (the default, K = 1, above 16 dimensions)\n"
    "  --exact           the exact trace: d vector-Jacobian products per evaluation\n"
    "                    (the default up to 16 dimensions)\n"
    "  --rtol R, --atol A  the ODE's tolerances (default 1e-5 each)\n"
    "  --seed S          data draws, probes and dequantisation noise (default 0)\n"
    "  --json            one JSON object instead of text\n"
    "\n"
    "Under mpirun or srun each rank takes a share of the chunks of points; rank 0\n"
    "reports what one process would (docs/MPI.md).\n";

typedef struct lik_opts {
  const char *model, *data;
  long long n, probes, seed;
  double rtol, atol;
  int exact, json, use_ema, probes_set, n_set;
} lik_opts;

static int parse(int argc, char **argv, lik_opts *o) {
  static const char *const valued[] = {"--model", "--data", "--n",    "--probes",
                                       "--rtol",  "--atol", "--seed", NULL};
  static const char *const switches[] = {"--exact", "--json", "--raw", "--help", "-h", NULL};
  unsigned long long seen = 0;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage, stdout);
      return -1;
    }
    if (!strcmp(f, "--exact") || !strcmp(f, "--json") || !strcmp(f, "--raw")) {
      if (f[2] == 'e') o->exact = 1;
      else if (f[2] == 'j') o->json = 1;
      else o->use_ema = 0;
      continue;
    }
    const char *v = cli_value("likelihood", argc, argv, &i, valued, switches, &seen);
    if (!v) return 0;
    int ok;
    if (!strcmp(f, "--model")) o->model = v, ok = 1;
    else if (!strcmp(f, "--data")) o->data = v, ok = 1;
    else if (!strcmp(f, "--n")) ok = o->n_set = cli_int(f, v, 0, 100000000, &o->n);
    else if (!strcmp(f, "--probes")) ok = o->probes_set = cli_int(f, v, 1, 4096, &o->probes);
    else if (!strcmp(f, "--rtol")) ok = cli_float(f, v, 1e-12, 0.1, &o->rtol);
    else if (!strcmp(f, "--atol")) ok = cli_float(f, v, 1e-12, 1e3, &o->atol);
    else if (!strcmp(f, "--seed")) ok = cli_int(f, v, 0, INT64_MAX, &o->seed);
    else return cli_fail("unknown flag %s (see scorekit likelihood --help)", f), 0;
    if (!ok) return 0;
  }
  if (!o->model) return cli_fail("--model FILE is required (see scorekit likelihood --help)"), 0;
  if (!o->data) return cli_fail("--data NAME|FILE is required (see scorekit likelihood --help)"), 0;
  if (o->exact && o->probes_set) return cli_fail("--exact and --probes exclude each other"), 0;
  if (o->n == 0 && sk_toy_classes(o->data) >= 0)
    return cli_fail("--n 0: %s is drawn; give the number of points", o->data), 0;
  return 1;
}

/* Mean and standard error of v (n). */
static void mean_se(const double *v, int64_t n, double *mean, double *se) {
  double s = 0, q = 0;
  for (int64_t i = 0; i < n; i++) s += v[i];
  *mean = s / (double)n;
  for (int64_t i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
  *se = n > 1 ? sqrt(q / (double)(n - 1) / (double)n) : NAN;
}

static void json_num(const char *before, double v) {
  if (isfinite(v)) printf("%s%.10g", before, v);
  else printf("%snull", before);
}

int cmd_likelihood(int argc, char **argv) {
  lik_opts o = {.n = 1000, .probes = 1, .rtol = SK_ODE_TOL, .atol = SK_ODE_TOL, .use_ema = 1};
  const int parsed = parse(argc, argv, &o);
  if (parsed <= 0) return parsed < 0 ? 0 : 1;
  sk_model *m = NULL;
  sk_dataset *ds = NULL;
  sk_score_fn *fn = NULL;
  float *x = NULL;
  double *logp = NULL, *bpd = NULL;
  int rc = 1;
  static sk_model_info info;
  if (sk_model_load(o.model, o.use_ema, &m, &info) != SK_OK) return cli_fail("%s", sk_last_error());
  const sk_model_config *mc = sk_model_get_config(m);
  if (mc->kind == SK_MODEL_CLASSIFIER || mc->kind == SK_MODEL_MLP) {
    cli_fail("%s: a %s; likelihoods need a noise-conditional score model (ncmlp, unet)", o.model,
             mc->kind == SK_MODEL_MLP ? "unconditional score model" : "classifier");
    goto done;
  }
  if (info.n_sigmas < 2) {
    cli_fail("%s: the model's ladder has %d level%s; likelihoods need σ_max > σ_min", o.model,
             info.n_sigmas, info.n_sigmas == 1 ? "" : "s");
    goto done;
  }
  /* A built-in 2-D set draws --n points; a file or image set gives all its
   * rows, of which the first --n are used (all for --n 0). */
  const int drawn = sk_toy_classes(o.data) >= 0;
  if (!cli_load_data(o.data, drawn ? o.n : 0, (unsigned long long)o.seed, -1, NULL, &ds)) goto done;
  const int d = sk_dataset_dim(ds);
  int64_t n = sk_dataset_size(ds);
  if (!drawn && o.n_set && o.n > n) {
    cli_fail("--n %lld: %s has only %lld rows", o.n, o.data, (long long)n);
    goto done;
  }
  if (!drawn && o.n > 0 && o.n < n) n = o.n;
  if (d != mc->dim) {
    cli_fail("--data %s: %d dimensions, the model's %d", o.data, d, mc->dim);
    goto done;
  }
  /* The model saw data divided by its scale; these data must be on it too. */
  const float mscale = info.data_scale > 0 ? info.data_scale : 1, dscale = sk_dataset_scale(ds);
  if (fabsf(mscale - dscale) > 1e-6f * mscale) {
    cli_fail("--data %s: divided by %g when loaded, the model's data by %g", o.data,
             (double)dscale, (double)mscale);
    goto done;
  }
  const int image = sk_dataset_image_shape(ds, NULL);
  const int pixels = image && dscale == 255; /* 8-bit: dequantise */
  const int probes = o.exact || (!o.probes_set && d <= 16) ? 0 : (int)o.probes;
  x = cli_alloc((size_t)n * (size_t)d * sizeof *x);
  logp = cli_alloc((size_t)n * sizeof *logp);
  bpd = cli_alloc((size_t)n * sizeof *bpd);
  if (!x || !logp || !bpd) {
    cli_fail("out of memory for %lld points", (long long)n);
    goto done;
  }
  memcpy(x, sk_dataset_x(ds), (size_t)n * (size_t)d * sizeof *x);
  sk_rng r = sk_rng_make((uint64_t)o.seed, 0x6c696b65); /* "like" */
  if (pixels) { /* x = (pixel + u)/255, u ~ U[0, 1) per pixel */
    float *u = cli_alloc((size_t)d * sizeof *u);
    if (!u) {
      cli_fail("out of memory");
      goto done;
    }
    for (int64_t i = 0; i < n; i++) {
      sk_rng_uniform(&r, u, (size_t)d);
      for (int j = 0; j < d; j++) x[i * d + j] += u[j] / dscale;
    }
    free(u);
  }
  const int64_t cap = image ? LIK_IMAGE_ROWS : LIK_ROWS;
  const int rows = (int)(n < cap ? n : cap);
  if (sk_score_fn_model(m, rows, &fn) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  const float smax = info.sigmas[0], smin = info.sigmas[info.n_sigmas - 1];
  if (!o.json) {
    printf("likelihood: %lld points of %s, σ %.4g → %.4g, ", (long long)n, o.data, smax, smin);
    if (probes) printf("Hutchinson's trace with %d Rademacher probe%s", probes, probes > 1 ? "s" : "");
    else printf("exact trace (%d vector-Jacobian products an evaluation)", d);
    printf(", rtol %g, atol %g%s\n", o.rtol, o.atol, pixels ? ", dequantised pixels" : "");
    fflush(stdout);
  }
  cli_progress prog;
  const sk_sample_hooks hooks = {cli_mpi_rank() == 0 ? cli_progress_update : NULL, &prog, 0, NULL};
  sk_likelihood_config lc = {{smax, smin, o.rtol, o.atol, 0, &hooks}, probes};
  sk_ode_stats os = {0, 0, 0};
  /* Under MPI each rank takes whole chunks, with their bits; rank 0
   * gathers the log-likelihoods and reports. */
  int64_t first, count;
  cli_mpi_rows(n, rows, &first, &count);
  cli_progress_start(&prog, "likelihood", "thousandths of the σ range");
  sk_status st = sk_likelihood_rows(fn, &lc, &r, x + first * d, n, first, count, logp + first, &os);
  cli_progress_end(&prog);
  if (st != SK_OK) { /* at once: the job ends here (cli_mpi_end) */
    cli_fail("%s", sk_last_error());
    goto done;
  }
  int64_t sums[3] = {os.evals, os.steps, os.rejected};
  cli_mpi_sum(sums, 3); /* every rank's, after all of them are done */
  os.evals = sums[0], os.steps = sums[1], os.rejected = sums[2];
  if (!cli_mpi_gather_values(logp, n, rows)) goto done;
  if (cli_mpi_rank() > 0) {
    rc = 0;
    goto done;
  }
  /* Bits per dimension of the pixels' density: log p(pixel + u) = log p(x)
   * − d log 255 (docs/MATH.md). */
  for (int64_t i = 0; i < n; i++)
    bpd[i] = -logp[i] / (d * log(2.0)) + (pixels ? log2((double)dscale) : 0.0);
  double mean, se, bmean, bse;
  mean_se(logp, n, &mean, &se);
  mean_se(bpd, n, &bmean, &bse);
  if (o.json) {
    printf("{\"n\":%lld,\"dim\":%d", (long long)n, d);
    json_num(",\"sigma_max\":", smax);
    json_num(",\"sigma_min\":", smin);
    printf(",\"trace\":\"%s\",\"probes\":%d", probes ? "hutchinson" : "exact", probes);
    json_num(",\"mean_log_likelihood\":", mean);
    json_num(",\"stderr\":", se);
    if (pixels) {
      json_num(",\"bits_per_dim\":", bmean);
      json_num(",\"bits_per_dim_stderr\":", bse);
    }
    printf(",\"evaluations\":%lld}\n", (long long)os.evals);
  } else {
    printf("log p: %.4f nats per point, standard error %.4f (%.4f nats per dimension)\n", mean, se,
           mean / d);
    if (pixels) printf("bits/dim: %.4f, standard error %.4f\n", bmean, bse);
    printf("%lld evaluations, %lld steps, %lld rejected\n", (long long)os.evals,
           (long long)os.steps, (long long)os.rejected);
  }
  rc = 0;
done:
  free(x);
  free(logp);
  free(bpd);
  sk_score_fn_free(fn);
  sk_dataset_free(ds);
  sk_model_free(m);
  return rc;
}
