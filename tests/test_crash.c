/* Crash safety of `scorekit train`: killed with SIGKILL at arbitrary moments,
 * its checkpoint always loads and --resume reaches the same final bytes as a
 * run that never stopped; a run that diverges stops with a message naming the
 * step and keeps its last good checkpoint. */
#define _DEFAULT_SOURCE /* mkdtemp, usleep */
#include <time.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scorekit/scorekit.h"
#include "test.h"

static char tmp[64];

static int sh(const char *fmt, const char *a, const char *b) {
  char cmd[2048], c2[2300];
  snprintf(cmd, sizeof cmd, fmt, a, b);
  snprintf(c2, sizeof c2, "cd %s && %s", tmp, cmd);
  int rc = system(c2);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static int exists(const char *name) {
  char path[256];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  return stat(path, &st) == 0;
}

#define FLAGS "--objective ncsn --n-data 2000 --steps 400 --hidden 64 --depth 2 --quiet " \
              "--checkpoint-every 7"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

TEST(sigkill_then_resume_matches) {
  /* Kill delays are fractions of an uninterrupted run's time, so the test
   * makes progress on a slow (sanitizer) build as on a fast one. */
  double t0 = now();
  CHECK_EQ_INT(sh("%s train " FLAGS " --out full > /dev/null", SK_CLI_PATH, ""), 0);
  const double full = now() - t0;
  sk_rng r = sk_rng_make(77, 0);
  int kills = 0;
  for (int round = 0; round < 40; round++) {
    char resume[64] = "";
    if (exists("part/state.safetensors")) snprintf(resume, sizeof resume, "--resume part");
    pid_t pid = fork();
    if (pid == 0) {
      char cmd[1024];
      snprintf(cmd, sizeof cmd, "cd %s && exec %s train " FLAGS " --out part %s > /dev/null 2>&1",
               tmp, SK_CLI_PATH, resume);
      execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
      _exit(127);
    }
    float u;
    sk_rng_uniform(&r, &u, 1);
    usleep((useconds_t)(1e6 * full * (0.1 + 0.3 * u)));
    int killed = kill(pid, SIGKILL) == 0;
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) kills++;
    /* Whatever the moment, what is on disk loads. */
    if (exists("part/model.safetensors")) {
      CHECK_EQ_INT(sh("%s score --model part/model.safetensors --input x.npy --out s.npy", SK_CLI_PATH, ""), 0);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) break; /* finished before the kill */
    (void)killed;
  }
  printf("  killed %d times before the run finished\n", kills);
  CHECK(kills >= 2);
  if (!exists("part/log.csv") || !exists("part/model.safetensors")) CHECK(0);
  /* Finish (a no-op if the last round already did) and compare. */
  CHECK_EQ_INT(sh("%s train " FLAGS " --out part --resume part > /dev/null", SK_CLI_PATH, ""), 0);
  CHECK_EQ_INT(sh("cmp full/model.safetensors part/model.safetensors && cmp full/state.safetensors part/state.safetensors%s%s", "", ""), 0);
  /* The log holds each step once, in order. */
  char path[256];
  snprintf(path, sizeof path, "%s/part/log.csv", tmp);
  FILE *f = fopen(path, "r");
  CHECK(f);
  char line[256];
  long long expect = 1;
  CHECK(fgets(line, sizeof line, f)); /* header */
  while (fgets(line, sizeof line, f)) CHECK_EQ_INT(strtoll(line, NULL, 10), expect++);
  fclose(f);
  CHECK_EQ_INT(expect, 401);
}

TEST(divergence_keeps_last_good_checkpoint) {
  /* One row of 1e19 among ordinary ones: the first batch that holds it
   * overflows the loss. */
  char path[256];
  snprintf(path, sizeof path, "%s/spike.csv", tmp);
  FILE *f = fopen(path, "w");
  for (int i = 0; i < 2000; i++) fprintf(f, "%g,%g\n", i == 1500 ? 1e19 : 0.001 * i, 0.5);
  fclose(f);
  int rc = sh("%s train --data spike.csv --objective dsm --steps 200 --checkpoint-every 1 "
              "--batch-size 64 --hidden 16 --depth 1 --quiet --out div > /dev/null 2> div.err",
              SK_CLI_PATH, "");
  CHECK(rc != 0);
  snprintf(path, sizeof path, "%s/div.err", tmp);
  f = fopen(path, "r");
  char msg[512] = {0};
  CHECK(f && fgets(msg, sizeof msg, f));
  fclose(f);
  printf("  %s", msg);
  CHECK(strstr(msg, "step ") && (strstr(msg, "loss") || strstr(msg, "gradient")));
  CHECK(strstr(msg, "checkpoint"));
  /* The checkpoint is from the step before and is finite. */
  sk_model *m = NULL;
  sk_model_info info;
  snprintf(path, sizeof path, "%s/div/model.safetensors", tmp);
  CHECK_OK(sk_model_load(path, 0, &m, &info));
  long long failed_at = strtoll(strstr(msg, "step ") + 5, NULL, 10);
  CHECK_EQ_INT(info.steps, failed_at - 1);
  sk_model_free(m);
}

int main(int argc, char **argv) {
  snprintf(tmp, sizeof tmp, "/tmp/sk_crash_XXXXXX");
  if (!mkdtemp(tmp)) return 1;
  char path[128];
  snprintf(path, sizeof path, "%s/x.npy", tmp);
  float x[8] = {0, 0, 1, 1, -2, 3, 4, 0};
  if (sk_npy_save_f32(path, 2, (int64_t[]){4, 2}, x) != SK_OK) return 1;
  static const sk_test_case cases[] = {TEST_ENTRY(sigkill_then_resume_matches),
                                       TEST_ENTRY(divergence_keeps_last_good_checkpoint)};
  int rc = sk_test_main(argc, argv, cases, 2);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) return 1;
  return rc;
}
