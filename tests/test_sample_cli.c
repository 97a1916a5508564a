/* scorekit sample --sampler langevin|pc|ode and scorekit likelihood end to
 * end: flags that do not apply to the chosen sampler, bad values and models
 * that cannot serve get a one-line error and leave nothing behind; good runs
 * write samples and trajectories of the right shapes, and likelihoods in
 * nats and, for 8-bit images, bits per dimension. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <dirent.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scorekit/scorekit.h"
#include "test.h"

static char tmp[64];
static char err[4096], out[8192];

/* Runs scorekit with `args` in the test directory: the exit code, stderr in
 * err and stdout in out. */
static int run(const char *args) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>%s/err.txt >%s/out.txt", tmp, SK_CLI_PATH, args, tmp,
           tmp);
  int rc = system(cmd);
  char *bufs[2] = {err, out};
  const char *names[2] = {"err.txt", "out.txt"};
  for (int k = 0; k < 2; k++) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, names[k]);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(bufs[k], 1, (k ? sizeof out : sizeof err) - 1, f) : 0;
    bufs[k][n] = 0;
    if (f) fclose(f);
  }
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static int dir_entries(void) {
  DIR *d = opendir(tmp);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "err.txt") &&
         strcmp(e->d_name, "out.txt");
  if (d) closedir(d);
  return n;
}

static char *path_in(const char *name) {
  static char p[256];
  snprintf(p, sizeof p, "%s/%s", tmp, name);
  return p;
}

/* Models with random weights (as their EMA too): an ncmlp on 2-D points with
 * a 10-level ladder, an unconditional MLP, and a tiny U-Net on 20×20 8-bit
 * images; and data files. */
static int setup(void) {
  strcpy(tmp, "/tmp/sk_sample_cli_XXXXXX");
  if (!mkdtemp(tmp)) return 0;
  sk_model_info info;
  memset(&info, 0, sizeof info);
  info.objective = SK_OBJ_NCSN;
  info.n_sigmas = 10;
  for (int i = 0; i < 10; i++) info.sigmas[i] = 10.0f * powf(0.003f, i / 9.0f);
  strcpy(info.data, "mog8");
  sk_model_config nc = {SK_MODEL_NCMLP, 2, 32, 2, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&nc);
  sk_model_init(m, 1);
  int ok = sk_model_save(path_in("nc.safetensors"), m, sk_model_params(m), &info) == SK_OK;
  sk_model_free(m);
  sk_model_config mc = {SK_MODEL_MLP, 2, 32, 2, 0, SK_ACT_SOFTPLUS};
  m = sk_model_new(&mc);
  sk_model_init(m, 2);
  sk_model_info plain = info;
  plain.objective = SK_OBJ_DSM;
  plain.n_sigmas = 0;
  plain.sigma = 0.1f;
  ok = ok && sk_model_save(path_in("mlp.safetensors"), m, sk_model_params(m), &plain) == SK_OK;
  sk_model_free(m);
  sk_unet_config uc = {{2, 4, 4, 4}, {1, 20, 20}, 8, 16};
  m = sk_model_new_unet(&uc);
  sk_model_init(m, 3);
  sk_model_info img = info;
  img.data_scale = 255;
  img.image_shape[0] = 1, img.image_shape[1] = 20, img.image_shape[2] = 20;
  for (int i = 0; i < 10; i++) img.sigmas[i] = 5.0f * powf(0.01f, i / 9.0f);
  strcpy(img.data, "imgs.npy");
  ok = ok && sk_model_save(path_in("unet.safetensors"), m, sk_model_params(m), &img) == SK_OK;
  sk_model_free(m);
  /* 4 images of 20×20 uint8 pixels, the same as floats, and 3-D rows. */
  sk_tensor *t = sk_tensor_new(3, (int64_t[]){4, 20, 20});
  sk_rng r = sk_rng_make(4, 4);
  sk_rng_uniform(&r, sk_tensor_data(t), 1600);
  for (int i = 0; i < 1600; i++) sk_tensor_data(t)[i] = floorf(256 * sk_tensor_data(t)[i]);
  ok = ok && sk_npy_save_f32(path_in("fimgs.npy"), 3, (int64_t[]){4, 20, 20}, sk_tensor_data(t)) == SK_OK;
  /* uint8: a .npy v1.0 header by hand */
  FILE *f = fopen(path_in("imgs.npy"), "wb");
  char hdr[128];
  const char *dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (4, 20, 20), }";
  int hl = (int)strlen(dict), pad = (64 - (10 + hl + 1) % 64) % 64;
  memcpy(hdr, "\x93NUMPY\x01\x00", 8);
  hdr[8] = (char)(hl + pad + 1), hdr[9] = 0;
  fwrite(hdr, 1, 10, f);
  fwrite(dict, 1, (size_t)hl, f);
  for (int i = 0; i < pad; i++) fputc(' ', f);
  fputc('\n', f);
  for (int i = 0; i < 1600; i++) fputc((int)sk_tensor_data(t)[i], f);
  fclose(f);
  sk_tensor_free(t);
  float rows3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  ok = ok && sk_npy_save_f32(path_in("rows3.npy"), 2, (int64_t[]){3, 3}, rows3) == SK_OK;
  return ok;
}

typedef struct bad_case {
  const char *args;
  const char *needles[3];
} bad_case;

TEST(bad_flags_refused) {
  static const bad_case cases[] = {
      {"sample --model nc.safetensors --out s.npy --sampler foo", {"--sampler", "unknown \"foo\""}},
      {"sample --model nc.safetensors --out s.npy --sampler pc --eps 0.1",
       {"--eps", "does not apply to --sampler pc"}},
      {"sample --model nc.safetensors --out s.npy --steps-per-level 10 --snr 0.1",
       {"--steps-per-level and --snr", "flags of different samplers"}},
      {"sample --model nc.safetensors --out s.npy --rtol 1e-3 --no-denoise --corrector-steps 2",
       {"--rtol and --corrector-steps", "flags of different samplers"}},
      {"sample --model nc.safetensors --out s.npy --sampler ode --snr 0.2",
       {"--snr", "does not apply to --sampler ode"}},
      {"sample --model nc.safetensors --out s.npy --sampler ode --steps 100",
       {"--steps", "does not apply to --sampler ode"}},
      {"sample --model nc.safetensors --out s.npy --sampler langevin --rtol 1e-3",
       {"--rtol", "does not apply to --sampler langevin"}},
      {"sample --model nc.safetensors --out s.npy --sampler langevin --no-denoise",
       {"--no-denoise", "does not apply to --sampler langevin"}},
      {"sample --model nc.safetensors --out s.npy --sampler pc --denoise",
       {"--denoise", "does not apply to --sampler pc"}},
      {"sample --model nc.safetensors --out s.npy --sampler pc --init uniform",
       {"--init", "does not apply to --sampler pc"}},
      {"sample --model nc.safetensors --out s.npy --sampler pc --corrector-steps -1",
       {"--corrector-steps", "\"-1\""}},
      {"sample --model nc.safetensors --out s.npy --steps 1", {"--steps", "\"1\""}},
      {"sample --model nc.safetensors --out s.npy --snr 0", {"--snr", "\"0\""}},
      {"sample --model nc.safetensors --out s.npy --sampler ode --rtol nan", {"--rtol", "\"nan\""}},
      {"sample --model nc.safetensors --out s.npy --sampler ode --atol -1", {"--atol", "\"-1\""}},
      {"sample --model nc.safetensors --out s.npy --snapshots 5",
       {"--snapshots", "applies with --trajectory only"}},
      {"sample --model nc.safetensors --out s.npy --trajectory t.npy --snapshots 1",
       {"--snapshots", "\"1\""}},
      {"sample --model nc.safetensors --out s.npy --trajectory t.npy --trajectory u.npy",
       {"--trajectory", "given twice"}},
      {"sample --model mlp.safetensors --out s.npy --sampler pc",
       {"--sampler pc", "needs a noise-conditional model"}},
      {"sample --model mlp.safetensors --out s.npy --sampler ode",
       {"--sampler ode", "needs a noise-conditional model"}},
      {"likelihood --model nc.safetensors --data mog8 --exact --probes 2",
       {"--exact and --probes", "exclude each other"}},
      {"likelihood --model nc.safetensors --data mog8 --probes 0", {"--probes", "\"0\""}},
      {"likelihood --model nc.safetensors --data mog8 --rtol 2", {"--rtol", "\"2\""}},
      {"likelihood --model nc.safetensors", {"--data NAME|FILE is required"}},
      {"likelihood --data mog8", {"--model FILE is required"}},
      {"likelihood --model mlp.safetensors --data mog8",
       {"mlp.safetensors", "noise-conditional score model"}},
      {"likelihood --model nc.safetensors --data rows3.npy",
       {"rows3.npy", "3 dimensions, the model's 2"}},
      {"likelihood --model unet.safetensors --data fimgs.npy",
       {"fimgs.npy", "divided by 1 when loaded", "255"}},
      {"likelihood --model nc.safetensors --data mog8 --frob 1", {"unknown flag --frob"}},
      {"likelihood --model unet.safetensors --data imgs.npy --n 5",
       {"--n 5", "imgs.npy has only 4 rows"}},
      {"likelihood --model nc.safetensors --data mog8 --n 0", {"--n 0", "mog8 is drawn"}},
  };
  const int entries = dir_entries();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const int rc = run(cases[i].args);
    int nl = 0;
    for (const char *s = err; *s; s++) nl += *s == '\n';
    const int ok = rc > 0 && rc < 128 && nl == 1 && strncmp(err, "scorekit: ", 10) == 0;
    const char *missing = NULL;
    for (int k = 0; k < 3 && cases[i].needles[k]; k++)
      if (!strstr(err, cases[i].needles[k]) && !missing) missing = cases[i].needles[k];
    const int left = dir_entries() - entries;
    if (!ok || missing || left)
      fprintf(stderr, "case \"%s\": exit %d, %d new entries, %s%s stderr: %s\n", cases[i].args, rc,
              left, missing ? "message lacks " : "", missing ? missing : "", err);
    CHECK(ok && !missing && left == 0);
  }
}

/* The shape in a .npy file's header, as text: "(10, 2)". */
static int npy_shape(const char *name, char *shape, size_t cap) {
  FILE *f = fopen(path_in(name), "rb");
  if (!f) return 0;
  char h[256] = {0};
  size_t n = fread(h, 1, sizeof h - 1, f);
  fclose(f);
  h[n] = 0;
  const char *s = strstr(h + 10, "'shape': ");
  if (!s) return 0;
  s += 9;
  const char *e = strchr(s, ')');
  if (!e || (size_t)(e - s + 2) > cap) return 0;
  memcpy(shape, s, (size_t)(e - s + 1));
  shape[e - s + 1] = 0;
  return 1;
}

TEST(samplers_write_samples_and_trajectories) {
  static const char *const runs[][3] = {
      {"--sampler pc --steps 20", "(10, 2)", "predictor-corrector"},
      {"--sampler ode --rtol 1e-3 --atol 1e-3", "(10, 2)", "score evaluations"},
      {"--sampler langevin --steps-per-level 5", "(10, 2)", "NCSNv2"},
      {"--sampler pc --steps 10 --snapshots 4 --no-denoise", "(4, 2)", "predictor-corrector"},
      /* Without --sampler, the flags given choose it. */
      {"--steps-per-level 3", "(10, 2)", "annealed Langevin"},
      {"--atol 1e-3", "(10, 2)", "probability-flow ODE"},
      {"--no-denoise --steps 5", "(10, 2)", "predictor-corrector"},
  };
  char args[512], shape[64];
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    snprintf(args, sizeof args,
             "sample --model nc.safetensors --n 300 --out s%zu.npy --trajectory t%zu.npy %s", i, i,
             runs[i][0]);
    const int rc = run(args);
    if (rc) fprintf(stderr, "%s: %s", args, err);
    CHECK_EQ_INT(rc, 0);
    CHECK(strstr(out, runs[i][2]) != NULL);
    char name[32];
    snprintf(name, sizeof name, "s%zu.npy", i);
    CHECK(npy_shape(name, shape, sizeof shape) && !strcmp(shape, "(300, 2)"));
    snprintf(name, sizeof name, "t%zu.npy", i);
    CHECK(npy_shape(name, shape, sizeof shape) && !strcmp(shape, runs[i][1]));
  }
  /* Images come back as (n, c, h, w), and so do their trajectories. */
  CHECK_EQ_INT(run("sample --model unet.safetensors --n 3 --steps 4 --out img.npy "
                   "--trajectory imgt.npy --snapshots 3"), 0);
  CHECK(npy_shape("img.npy", shape, sizeof shape) && !strcmp(shape, "(3, 1, 20, 20)"));
  CHECK(npy_shape("imgt.npy", shape, sizeof shape) && !strcmp(shape, "(3, 1, 20, 20)"));
}

/* A number after `key` in the JSON printed. */
static double json_value(const char *key) {
  const char *s = strstr(out, key);
  return s ? strtod(s + strlen(key), NULL) : NAN;
}

TEST(likelihood_reports) {
  CHECK_EQ_INT(run("likelihood --model nc.safetensors --data mog8 --n 200 --json"), 0);
  const double lp = json_value("\"mean_log_likelihood\":"), se = json_value("\"stderr\":");
  printf("  ncmlp on mog8: %.4f ± %.4f nats (%s)\n", lp, se, strstr(out, "exact") ? "exact" : "?");
  CHECK(isfinite(lp) && se > 0 && strstr(out, "\"trace\":\"exact\"") != NULL);
  CHECK(strstr(out, "bits_per_dim") == NULL);
  /* The same with a probe: the same path, another trace estimate. */
  CHECK_EQ_INT(run("likelihood --model nc.safetensors --data mog8 --n 200 --probes 3 --json"), 0);
  CHECK(strstr(out, "\"trace\":\"hutchinson\",\"probes\":3") != NULL);
  CHECK(fabs(json_value("\"mean_log_likelihood\":") - lp) < 0.5);
  /* 8-bit images: dequantised, bits per dimension = −log p/(D ln 2) + log₂ 255. */
  CHECK_EQ_INT(run("likelihood --model unet.safetensors --data imgs.npy --json --rtol 1e-3 --atol 1e-3"), 0);
  const double ilp = json_value("\"mean_log_likelihood\":"), bpd = json_value("\"bits_per_dim\":");
  printf("  U-Net on 4 random images: %.2f nats, %.4f bits/dim\n", ilp, bpd);
  CHECK(isfinite(ilp) && isfinite(bpd));
  CHECK_NEAR(bpd, -ilp / (400 * log(2.0)) + log2(255.0), 1e-6 * (1 + fabs(bpd)));
  /* The text form names the trace and prints the standard error. */
  CHECK_EQ_INT(run("likelihood --model nc.safetensors --data mog8 --n 100"), 0);
  CHECK(strstr(out, "exact trace") && strstr(out, "standard error"));
}

int main(int argc, char **argv) {
  if (!setup()) {
    fprintf(stderr, "cannot set up %s\n", tmp);
    return 1;
  }
  static const sk_test_case cases[] = {TEST_ENTRY(bad_flags_refused),
                                       TEST_ENTRY(samplers_write_samples_and_trajectories),
                                       TEST_ENTRY(likelihood_reports)};
  const int rc = sk_test_main(argc, argv, cases, 3);
  if (getenv("SK_KEEP_TMP")) return rc;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
  return rc;
}
