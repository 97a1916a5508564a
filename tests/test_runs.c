/* Training runs as a careless user or a scheduler meets them: a second run
 * into the same directory, a resume with other settings, a fresh run into a
 * directory that holds one, SIGTERM or SIGINT in the middle, every objective
 * with every model, exact score matching on wide data, and settings that
 * cannot fit in memory. Each is refused up front with a one-line message
 * naming the flag or the holder, or, for a signal, ends with a checkpoint
 * that a resume continues to the same bits as a run that never stopped.
 *
 * Nothing here depends on timing: a run is signalled or raced only after the
 * test has seen its log advance, and runs that are to be interrupted are
 * given a step count they never reach; the only deadline is a generous one
 * for progress that never comes. */
#define _DEFAULT_SOURCE /* mkdtemp, nanosleep */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "scorekit/scorekit.h"
#include "test.h"

static char tmp[64];
static char err[8192];

/* Runs `scorekit ARGS` in the test directory; the exit code (128 and up: a
 * crash or a signal), stderr in err. */
static int run(const char *args) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>%s/err.txt >%s/out.txt", tmp, SK_CLI_PATH, args, tmp,
           tmp);
  int rc = system(cmd);
  char path[256];
  snprintf(path, sizeof path, "%s/err.txt", tmp);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(err, 1, sizeof err - 1, f) : 0;
  err[n] = 0;
  if (f) fclose(f);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void in_tmp(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmp, name); }

static int exists(const char *name) {
  char path[256];
  struct stat st;
  in_tmp(path, sizeof path, name);
  return stat(path, &st) == 0;
}

static int lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* The whole file, malloc'd (NULL if it cannot be read); its size in *n. */
static char *slurp(const char *name, size_t *n) {
  char path[256];
  in_tmp(path, sizeof path, name);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  if (size >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size + 1))) {
    *n = fread(buf, 1, (size_t)size, f);
    buf[*n] = 0;
  }
  fclose(f);
  return buf;
}

/* A one-line error message starting "scorekit: " that holds every needle
 * (up to 4); otherwise prints what is wrong and returns 0. */
static int refused(const char *args, int rc, const char *const *needles) {
  int ok = rc > 0 && rc < 128 && lines(err) == 1 && strncmp(err, "scorekit: ", 10) == 0;
  const char *missing = NULL;
  for (int k = 0; k < 4 && needles[k]; k++)
    if (!strstr(err, needles[k]) && !missing) missing = needles[k];
  if (!ok || missing)
    fprintf(stderr, "\"%s\": exit %d, %s%s%sstderr: %s\n", args, rc, missing ? "message lacks \"" : "",
            missing ? missing : "", missing ? "\", " : "", err);
  return ok && !missing;
}

/* ---- every objective with every model samples, or is refused ---- */

TEST(every_objective_and_model_samples_or_is_refused) {
  static const char *const objs[6] = {"esm", "dsm", "ssm", "ssm-vr", "ncsn", "classifier"};
  static const char *const models[3] = {"", "mlp", "ncmlp"};
  /* 1: accepted (and must then sample), 0: refused by train. */
  static const int accepted[6][3] = {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 0, 1}, {1, 0, 0}};
  CHECK_EQ_INT(run("train --objective ncsn --n-data 200 --hidden 8 --depth 1 --batch-size 16 --steps 2 --quiet --out mx-guide"), 0);
  for (int o = 0; o < 6; o++)
    for (int k = 0; k < 3; k++) {
      char args[512], dir[64];
      snprintf(dir, sizeof dir, "mx-%s-%s", objs[o], models[k][0] ? models[k] : "default");
      snprintf(args, sizeof args,
               "train --objective %s %s%s --n-data 200 --hidden 8 --depth 1 --batch-size 16 "
               "--steps 2 --quiet --out %s",
               objs[o], models[k][0] ? "--model " : "", models[k], dir);
      const int rc = run(args);
      printf("  %-40s %s", args + 6, rc == 0 ? "trains\n" : err);
      if (!accepted[o][k]) {
        const char *needles[4] = {"--objective", objs[o], "--model", models[k]};
        CHECK(refused(args, rc, needles));
        CHECK(!exists(dir));
        continue;
      }
      if (rc != 0) fprintf(stderr, "\"%s\": exit %d: %s", args, rc, err);
      CHECK_EQ_INT(rc, 0);
      if (o == 5) /* a classifier guides a score model's sampler */
        snprintf(args, sizeof args,
                 "sample --model mx-guide/model.safetensors --classifier %s/model.safetensors "
                 "--class 1 --n 16 --steps-per-level 2 --out %s/s.npy", dir, dir);
      else
        snprintf(args, sizeof args, "sample --model %s/model.safetensors --n 16 --steps-per-level 2 --out %s/s.npy",
                 dir, dir);
      const int src = run(args);
      if (src != 0) fprintf(stderr, "\"%s\": exit %d: %s", args, src, err);
      CHECK_EQ_INT(src, 0);
    }
}

/* ---- exact score matching states its cost ---- */

TEST(exact_score_matching_on_wide_data_is_refused) {
  enum { ROWS = 8, COLS = 300 };
  float *x = malloc(ROWS * COLS * sizeof *x);
  for (int i = 0; i < ROWS * COLS; i++) x[i] = (float)((i * 37) % 101) / 50.0f;
  char path[256];
  in_tmp(path, sizeof path, "wide.npy");
  CHECK_OK(sk_npy_save_f32(path, 2, (int64_t[]){ROWS, COLS}, x));
  free(x);
  const char *args = "train --data wide.npy --objective esm --hidden 4 --depth 1 --batch-size 4 --steps 1 --quiet --out wide";
  const char *needles[4] = {"--objective esm", "300", "backward passes", "--force"};
  CHECK(refused(args, run(args), needles));
  CHECK(!exists("wide"));
  /* Other objectives are not refused, nor esm with --force. */
  CHECK_EQ_INT(run("train --data wide.npy --objective ssm --hidden 4 --depth 1 --batch-size 4 --steps 1 --quiet --out wide-ssm"), 0);
  CHECK_EQ_INT(run("train --data wide.npy --objective esm --hidden 4 --depth 1 --batch-size 4 --steps 1 --quiet --force --out wide"), 0);
  CHECK(exists("wide/model.safetensors"));
  CHECK_EQ_INT(run("train --help"), 0);
  size_t n = 0;
  char *help = slurp("out.txt", &n);
  CHECK(help && strstr(help, "backward passes") && strstr(help, "--force"));
  free(help);
}

/* ---- a run that cannot fit in memory is refused before allocating ---- */

/* MemAvailable from /proc/meminfo, in bytes (0: unknown). */
static double mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  double kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024;
}

TEST(runs_that_cannot_fit_in_memory_are_refused) {
  const double avail = mem_available();
  if (avail <= 0) {
    printf("  no MemAvailable in /proc/meminfo: nothing to check\n");
    return;
  }
  /* Weights whose every block fits (a hidden-to-hidden matrix takes about a
   * quarter of the available memory) but whose five copies (weights,
   * gradients, Adam's moments, EMA) take more than twice of it. */
  long long hidden = (long long)sqrt(avail / 16);
  if (hidden > 65536) hidden = 65536;
  long long depth = 1 + (long long)ceil(2 * avail / (20.0 * (double)hidden * (double)hidden));
  if (depth < 3) depth = 3;
  char args[512];
  snprintf(args, sizeof args,
           "train --objective dsm --n-data 200 --hidden %lld --depth %lld --steps 1 --quiet --out mem",
           hidden, depth);
  const char *needles[4] = {"needs ", "GiB", "available", "--force"};
  CHECK(refused(args, run(args), needles));
  printf("  %s", err);
  CHECK(!exists("mem"));
  /* Small weights, but a batch whose activations alone exceed the memory. */
  const long long batch = 1 << 20;
  const long long wide = (long long)ceil(avail / (4.0 * (double)batch)) + 1;
  if (wide > 65536) {
    printf("  over 256 GiB available: no batch's activations exceed it\n");
    return;
  }
  snprintf(args, sizeof args,
           "train --objective dsm --n-data 200 --hidden %lld --depth 1 --batch-size %lld --steps 1 "
           "--quiet --out mem", wide, batch);
  const char *n2[4] = {"needs about", "loss graph", "available", "--force"};
  CHECK(refused(args, run(args), n2));
  printf("  %s", err);
  CHECK(!exists("mem"));
}

int main(int argc, char **argv) {
  snprintf(tmp, sizeof tmp, "/tmp/sk_runs_XXXXXX");
  if (!mkdtemp(tmp)) return 1;
  char path[128];
  in_tmp(path, sizeof path, "pts.csv");
  FILE *f = fopen(path, "w");
  if (!f) return 1;
  for (int i = 0; i < 300; i++) fprintf(f, "%g,%g\n", 0.5 + 0.01 * (i % 17), -0.2 + 0.03 * (i % 11));
  fclose(f);
  static const sk_test_case cases[] = {
      TEST_ENTRY(every_objective_and_model_samples_or_is_refused),
      TEST_ENTRY(exact_score_matching_on_wide_data_is_refused),
      TEST_ENTRY(runs_that_cannot_fit_in_memory_are_refused)};
  int rc = sk_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) return 1;
  return rc;
}
