/* `scorekit score`: evaluate a trained score model on given points. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: scorekit score --model FILE --input X.npy --out S.npy [--sigma S] [--ema]\n"
    "\n"
    "Writes s(x, σ), the model's estimate of ∇ₓ log p_σ(x), for every row of X.\n"
    "A score that is not finite (x far outside the data) is an error: nothing\n"
    "is written.\n"
    "  --sigma S   the noise level for a noise-conditional model (default: the\n"
    "              smallest of its ladder); an unconditional model has none\n"
    "  --ema       use the EMA weights\n";

int cmd_score(int argc, char **argv) {
  static const char *const valued[] = {"--model", "--input", "--out", "--sigma", NULL};
  static const char *const switches[] = {"--ema", "--help", "-h", NULL};
  const char *model_path = NULL, *input = NULL, *out = NULL;
  double sigma = 0;
  int use_ema = 0;
  unsigned long long seen = 0;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage, stdout);
      return 0;
    }
    if (!strcmp(f, "--ema")) {
      use_ema = 1;
      continue;
    }
    const char *v = cli_value("score", argc, argv, &i, valued, switches, &seen);
    if (!v) return 1;
    if (!strcmp(f, "--model")) model_path = v;
    else if (!strcmp(f, "--input")) input = v;
    else if (!strcmp(f, "--out")) out = v;
    else if (!strcmp(f, "--sigma")) {
      if (!cli_float(f, v, 1e-6, 1e6, &sigma)) return 1;
    } else return cli_fail("unknown flag %s (see scorekit score --help)", f);
  }
  if (!model_path || !input || !out)
    return cli_fail("--model, --input and --out are required (see scorekit score --help)");
  /* Where the result goes is checked before anything is computed. */
  static const char *const flags[3] = {"--out", "--model", "--input"};
  const char *const paths[3] = {out, model_path, input};
  if (!cli_distinct(flags, paths, 1, 3) || !cli_check_out("--out", out)) return 1;
  static sk_model_info info;
  sk_model *m = NULL;
  sk_tensor *x = NULL;
  sk_score_fn *fn = NULL;
  float *s = NULL;
  int rc = 1;
  if (sk_model_load(model_path, use_ema, &m, &info) != SK_OK || sk_npy_load(input, &x) != SK_OK ||
      sk_score_fn_model(m, SK_SCORE_ROWS, &fn) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  const int d = sk_model_get_config(m)->dim;
  if (sk_tensor_ndim(x) != 2 || sk_tensor_shape(x)[1] != d) {
    cli_fail("%s: expected (n, %d) points for this model", input, d);
    goto done;
  }
  const sk_model_kind kind = sk_model_get_config(m)->kind;
  if (sigma != 0 && kind != SK_MODEL_NCMLP && kind != SK_MODEL_UNET) {
    cli_fail("--sigma: %s is unconditional (%s): s(x) has no noise level to choose", model_path,
             kind == SK_MODEL_MLP ? "mlp" : "a classifier");
    goto done;
  }
  if (sigma == 0) sigma = info.n_sigmas ? info.sigmas[info.n_sigmas - 1] : info.sigma;
  const int64_t n = sk_tensor_shape(x)[0];
  if (n < 1) { /* as train, eval and inpaint: an empty input is a mistake, not a result */
    cli_fail("%s: no rows", input);
    goto done;
  }
  s = cli_alloc((size_t)n * (size_t)d * sizeof *s);
  if (!s) {
    cli_fail("out of memory for the scores of %lld points of %d dimensions", (long long)n, d);
    goto done;
  }
  for (int64_t r = 0; r < n; r += SK_SCORE_ROWS) {
    int64_t nr = n - r < SK_SCORE_ROWS ? n - r : SK_SCORE_ROWS;
    if (sk_score_fn_eval(fn, sk_tensor_cdata(x) + r * d, nr, (float)sigma, s + r * d) != SK_OK) {
      cli_fail("%s", sk_last_error());
      goto done;
    }
  }
  /* A non-finite score is no estimate (and sk_npy_load would refuse the file). */
  for (int64_t i = 0; i < n * d; i++)
    if (!isfinite(s[i])) {
      cli_fail("%s: the score at row %lld, column %lld of %s is not finite (%s; x = %g there): "
               "nothing written",
               model_path, (long long)(i / d), (long long)(i % d), input,
               isnan(s[i]) ? "NaN" : "infinite", (double)sk_tensor_cdata(x)[i]);
      goto done;
    }
  if (sk_npy_save_f32(out, 2, (int64_t[]){n, d}, s) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  rc = 0;
done:
  free(s);
  sk_score_fn_free(fn);
  sk_tensor_free(x);
  sk_model_free(m);
  return rc;
}
