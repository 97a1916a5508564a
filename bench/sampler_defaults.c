/* The measurement behind the CLI's default sampler for points
 * (docs/MATH.md, "Default sampler for points"): with the exact score of a
 * built-in mixture and the ladder `scorekit train` would pick for it, each
 * sampler setting's share of samples within 3 std of a mode and its mean true
 * log-density against the data's. Usage: sampler_defaults [mog8|ncsn-toy]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "scorekit/scorekit.h"

enum { N_SAMPLES = 8192, N_DATA = 20000, LEVELS = 10 };

static void quality(const sk_gmm *g, const float *x, int64_t n, double *within3, double *logp) {
  const int k = sk_gmm_components(g), d = sk_gmm_dim(g);
  float stds[64];
  for (int c = 0; c < k && c < 64; c++) stds[c] = sqrtf(sk_gmm_covs(g)[(size_t)c * d * d]);
  sk_mode_stats ms;
  sk_mode_stats_compute(x, n, d, k, sk_gmm_means(g), stds, sk_gmm_weights(g), &ms);
  *within3 = ms.within3;
  float *lp = malloc((size_t)n * sizeof *lp);
  sk_gmm_log_density(g, 0, x, n, lp);
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += lp[i];
  *logp = s / (double)n;
  free(lp);
}

static void start(float *x, float smax) {
  sk_rng r = sk_rng_make(7, 1);
  sk_rng_normal(&r, x, 2 * N_SAMPLES);
  for (int i = 0; i < 2 * N_SAMPLES; i++) x[i] *= smax;
}

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "mog8";
  sk_gmm *g = sk_gmm_builtin(name);
  sk_score_fn *f;
  if (!g || sk_gmm_dim(g) != 2 || sk_score_fn_gmm(g, &f) != SK_OK) {
    fprintf(stderr, "sampler_defaults: %s\n", sk_last_error());
    return 1;
  }
  /* The ladder train picks: sk_dataset_sigma_range on 10,000 draws. */
  sk_tensor *t = sk_tensor_new(2, (int64_t[]){10000, 2});
  sk_rng r = sk_rng_make(99, 1);
  sk_gmm_sample(g, 0, &r, 10000, sk_tensor_data(t), NULL);
  sk_dataset *ds;
  float smax, smin, lad[LEVELS];
  if (sk_dataset_new(t, NULL, &ds) != SK_OK || sk_dataset_sigma_range(ds, &smax, &smin) != SK_OK)
    return fprintf(stderr, "sampler_defaults: %s\n", sk_last_error()), 1;
  sk_dataset_free(ds);
  for (int i = 0; i < LEVELS; i++) lad[i] = smax * powf(smin / smax, i / (float)(LEVELS - 1));
  float *x = malloc(2 * N_DATA * sizeof *x);
  sk_rng rd = sk_rng_make(1234, 3);
  sk_gmm_sample(g, 0, &rd, N_DATA, x, NULL);
  double w, ref, lp;
  quality(g, x, N_DATA, &w, &ref);
  printf("%s: ladder %.4g .. %.4g (%d levels); data: within 3 std %.4f, mean log p %.4f\n", name,
         smax, smin, LEVELS, w, ref);
  const int Ts[] = {50, 100, 200};
  for (int ti = 0; ti < 3; ti++)
    for (int e = 0; e < 3; e++) {
      const int T = Ts[ti];
      const float eps = e == 0 ? sk_langevin_ncsnv2_eps(T, lad[0] / lad[1], smin)
                        : e == 1 ? 0.2f * smin * smin : 2.0f * smin * smin;
      start(x, smax);
      sk_langevin_config lc = {LEVELS, lad, T, eps, 1, NULL};
      sk_rng rs = sk_rng_make(8, 2);
      sk_status st = sk_langevin(f, &lc, &rs, x, N_SAMPLES);
      quality(g, x, N_SAMPLES, &w, &lp);
      printf("langevin T %3d, ε %.3g σ_L² (%s), denoised: %s within 3 std %.4f, gap %+.4f, %d evaluations\n",
             T, eps / (smin * smin), e == 0 ? "NCSNv2" : "fixed", st ? "FAILED" : "", w, lp - ref,
             LEVELS * T + 1);
    }
  const int Ns[] = {50, 100, 200, 500, 1000};
  for (int ni = 0; ni < 5; ni++)
    for (int C = 0; C < 2; C++) {
      start(x, smax);
      sk_pc_config pc = {smax, smin, Ns[ni], C, SK_PC_SNR, 1, NULL};
      sk_rng rs = sk_rng_make(8, 2);
      sk_status st = sk_pc_sample(f, &pc, &rs, x, N_SAMPLES);
      quality(g, x, N_SAMPLES, &w, &lp);
      printf("pc N %4d, C %d: %s within 3 std %.4f, gap %+.4f, %d evaluations\n", Ns[ni], C,
             st ? "FAILED" : "", w, lp - ref, Ns[ni] * (C + 1));
    }
  const double tols[] = {1e-3, SK_ODE_TOL};
  for (int k = 0; k < 2; k++) {
    start(x, smax);
    sk_ode_config oc = {smax, smin, tols[k], tols[k], 1, NULL};
    sk_ode_stats os;
    sk_status st = sk_ode_sample(f, &oc, x, N_SAMPLES, &os);
    quality(g, x, N_SAMPLES, &w, &lp);
    printf("ode tolerances %g: %s within 3 std %.4f, gap %+.4f, %lld evaluations\n", tols[k],
           st ? "FAILED" : "", w, lp - ref, (long long)os.evals);
  }
  free(x);
  sk_score_fn_free(f);
  sk_gmm_free(g);
  return 0;
}
