/* Crash safety of `scorekit train`: killed with SIGKILL at moments the test
 * observes (the log or a checkpoint file advancing), its checkpoint is always
 * a complete one and loads, and --resume reaches the same final bytes as a
 * run that never stopped; a run that diverges stops with a message naming the
 * step and keeps its last good checkpoint.
 *
 * Nothing here depends on timing. The interrupted runs are started with a
 * step count they never reach, so every round ends in a kill however slow or
 * loaded the machine; the kill comes right after a change on disk that the
 * test saw, and the only deadline is a generous one for a change that never
 * comes. */
#define _DEFAULT_SOURCE /* mkdtemp, nanosleep */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

static int sh(const char *fmt, const char *a, const char *b) {
  char cmd[2048], c2[2300];
  snprintf(cmd, sizeof cmd, fmt, a, b);
  snprintf(c2, sizeof c2, "cd %s && %s", tmp, cmd);
  int rc = system(c2);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void in_tmp(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmp, name); }

static int exists(const char *name) {
  char path[256];
  struct stat st;
  in_tmp(path, sizeof path, name);
  return stat(path, &st) == 0;
}

#define FLAGS "--objective ncsn --n-data 2000 --hidden 64 --depth 2 --quiet --checkpoint-every 7"
enum { EVERY = 7 };
/* The interrupted runs' --steps: never reached, so only the kill ends them. */
#define NEVER "1000000000"
/* How long a change on disk may take before the test gives up on it. */
static const double DEADLINE_S = 300;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(void) {
  struct timespec ts = {0, 500000}; /* 0.5 ms between looks */
  nanosleep(&ts, NULL);
}

/* The step of the last complete line of DIR/log.csv (0: none or only the
 * header), read from the file's tail. */
static long long log_last_step(const char *dir) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s/log.csv", tmp, dir);
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  char buf[512];
  long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  long from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
  size_t n = size >= 0 && fseek(f, from, SEEK_SET) == 0 ? fread(buf, 1, sizeof buf - 1, f) : 0;
  fclose(f);
  buf[n] = 0;
  char *end = strrchr(buf, '\n'); /* a line is complete at its newline */
  if (!end) return 0;
  *end = 0;
  char *start = strrchr(buf, '\n');
  start = start ? start + 1 : buf;
  char *e;
  long long step = strtoll(start, &e, 10);
  return e != start && *e == ',' ? step : 0;
}

/* Identity of a file's current version: a replaced file differs in at least
 * one of these. All zero when it does not exist. */
typedef struct version {
  long long ino, size, mtime_ns;
} version;

static version file_version(const char *name) {
  char path[256];
  struct stat st;
  version v = {0, 0, 0};
  in_tmp(path, sizeof path, name);
  if (stat(path, &st) == 0)
    v = (version){(long long)st.st_ino, (long long)st.st_size,
                  (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
  return v;
}

static int same_version(version a, version b) {
  return a.ino == b.ino && a.size == b.size && a.mtime_ns == b.mtime_ns;
}

/* Starts `scorekit train FLAGS --steps NEVER --out part`, with --resume part
 * or, before the first checkpoint, --overwrite (a killed run leaves its log),
 * with stderr in part.err; the child dies with the test. */
static pid_t spawn_part(int resume) {
  pid_t pid = fork();
  if (pid != 0) return pid;
#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) _exit(126);
#endif
  char err[256];
  in_tmp(err, sizeof err, "part.err");
  int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644), fo = open("/dev/null", O_WRONLY);
  if (chdir(tmp) != 0 || fe < 0 || fo < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(126);
  char flags[] = FLAGS " --steps " NEVER " --out part --resume part";
  char *argv[32];
  int argc = 0;
  argv[argc++] = (char *)SK_CLI_PATH;
  argv[argc++] = (char *)"train";
  for (char *tok = strtok(flags, " "); tok && argc < 30; tok = strtok(NULL, " ")) argv[argc++] = tok;
  if (!resume) { /* no checkpoint yet: start the run again */
    argc -= 2;
    argv[argc++] = (char *)"--overwrite";
  }
  argv[argc] = NULL;
  execv(SK_CLI_PATH, argv);
  _exit(127);
}

/* The step in DIR/state.safetensors' "scorekit_state" metadata (-1 when it
 * does not load or has none); the JSON may space or quote it either way. */
static long long state_step(const char *dir) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s/state.safetensors", tmp, dir);
  sk_safetensors *sf = NULL;
  if (sk_safetensors_load(path, &sf) != SK_OK) return -1;
  long long step = -1;
  const char *meta = sk_safetensors_meta(sf, "scorekit_state");
  const char *p = meta ? strstr(meta, "\"step\"") : NULL;
  if (p) {
    p += 6;
    while (*p == ' ' || *p == ':' || *p == '"') p++;
    char *e;
    step = strtoll(p, &e, 10);
    if (e == p) step = -1;
  }
  sk_safetensors_free(sf);
  return step;
}

enum { BY_LOG, BY_STATE, BY_MODEL, N_MODES };
static const char *const mode_name[N_MODES] = {"the log at step", "a new state.safetensors",
                                               "a new model.safetensors"};

TEST(sigkill_then_resume_matches) {
  sk_rng r = sk_rng_make(77, 0);
  long long old_state = 0, old_model = 0; /* the checkpoint before each kill */
  int kills = 0;
  enum { ROUNDS = 9 };
  for (int round = 0; round < ROUNDS; round++) {
    /* What this round waits for: the log to pass a step a little ahead of
     * the checkpoint (the log is flushed just before each save, so the kill
     * tends to land inside the save), or a new version of either checkpoint
     * file (the kill lands between the two files or in the steps after). */
    const int mode = round % N_MODES;
    float u;
    sk_rng_uniform(&r, &u, 1);
    const long long log0 = log_last_step("part");
    const long long target = (old_state > log0 ? old_state : log0) + 1 + (long long)(u * 3 * EVERY);
    const version v0 = file_version(mode == BY_STATE ? "part/state.safetensors" : "part/model.safetensors");
    const pid_t pid = spawn_part(exists("part/state.safetensors"));
    CHECK(pid > 0);
    const double t0 = now();
    int status = 0, seen = 0, exited = 0;
    long long at = 0;
    while (!seen && now() - t0 <= DEADLINE_S) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exited = 1; /* it stopped by itself: a failure, reported below */
        break;
      }
      if (mode == BY_LOG) {
        at = log_last_step("part");
        seen = at >= target;
      } else {
        seen = !same_version(v0, file_version(mode == BY_STATE ? "part/state.safetensors"
                                                                : "part/model.safetensors"));
      }
      if (!seen) nap();
    }
    if (!exited) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
    if (!seen) {
      char cmd[128];
      snprintf(cmd, sizeof cmd, "cat %s/part.err >&2", tmp);
      if (system(cmd) != 0) fprintf(stderr, "(no stderr)\n");
      fprintf(stderr, "round %d: waited %.0f s for %s %lld; the run %s (status %d)\n", round,
              now() - t0, mode_name[mode], mode == BY_LOG ? target : 0LL,
              exited ? "stopped by itself" : "never got there", status);
      CHECK(seen);
    }
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    kills++;
    /* Whatever the moment, the checkpoint on disk is a complete one, the one
     * from before the kill or a later one, and the log reaches at least as
     * far (it is flushed before each save). Each save writes the state, then
     * the model file: the model is the one from before this round (when the
     * round saved at most one state, its model unwritten) or one this round
     * saved, the state's or the one before. A resume reads only the state,
     * so across rounds the model may lag further. */
    const long long s_state = state_step("part"), s_log = log_last_step("part");
    long long s_model = -1;
    sk_model *m = NULL;
    sk_model_info info;
    char path[256];
    in_tmp(path, sizeof path, "part/model.safetensors");
    if (exists("part/model.safetensors")) {
      CHECK_OK(sk_model_load(path, 1, &m, &info));
      sk_model_free(m);
      CHECK_OK(sk_model_load(path, 0, &m, &info));
      sk_model_free(m);
      s_model = info.steps;
    }
    if (mode == BY_LOG)
      printf("  round %d: killed on the log at step %lld (waiting for %lld);", round, at, target);
    else
      printf("  round %d: killed on %s;", round, mode_name[mode]);
    printf(" log at %lld, checkpoints at %lld (state), %lld (model)\n", s_log, s_state, s_model);
    if (exists("part/state.safetensors"))
      CHECK(s_state >= 0); /* it loads, and names its step */
    else
      CHECK_EQ_INT(old_state, 0);
    const long long st = s_state < 0 ? 0 : s_state;
    CHECK_EQ_INT(st % EVERY, 0);
    CHECK(st >= old_state);
    CHECK(s_log >= st);
    const long long sm = s_model < 0 ? 0 : s_model; /* 0: none written yet */
    if (sm == old_model)
      CHECK(st - old_state <= EVERY);
    else
      CHECK(sm > old_state && (sm == st || sm == st - EVERY));
    if (s_model >= 0)
      CHECK_EQ_INT(sh("%s score --model part/model.safetensors --input x.npy --out s.npy > /dev/null", SK_CLI_PATH, ""), 0);
    old_state = st;
    old_model = sm;
  }
  printf("  killed %d times\n", kills);
  CHECK(kills >= 2);
  CHECK(exists("part/log.csv") && exists("part/state.safetensors"));
  /* Finish some way past the last kill, and compare with a run of as many
   * steps that never stopped. The step count is not in the files. */
  char steps[32];
  snprintf(steps, sizeof steps, "%lld", old_state + 10 * EVERY + 3);
  CHECK_EQ_INT(sh("%s train " FLAGS " --steps %s --out part --resume part > /dev/null", SK_CLI_PATH, steps), 0);
  CHECK_EQ_INT(sh("%s train " FLAGS " --steps %s --out full > /dev/null", SK_CLI_PATH, steps), 0);
  CHECK_EQ_INT(sh("cmp full/model.safetensors part/model.safetensors && cmp full/state.safetensors part/state.safetensors%s%s", "", ""), 0);
  /* The log holds each step once, in order. */
  char path[256];
  in_tmp(path, sizeof path, "part/log.csv");
  FILE *f = fopen(path, "r");
  CHECK(f);
  char line[256];
  long long expect = 1;
  int ok = fgets(line, sizeof line, f) != NULL; /* header */
  while (ok && fgets(line, sizeof line, f) && (ok = strtoll(line, NULL, 10) == expect)) expect++;
  fclose(f);
  if (!ok) fprintf(stderr, "log.csv: line \"%s\" where step %lld belongs\n", line, expect);
  CHECK(ok);
  CHECK_EQ_INT(expect - 1, strtoll(steps, NULL, 10));
}

TEST(divergence_keeps_last_good_checkpoint) {
  /* One row of 1e19 among ordinary ones: the first batch that holds it
   * overflows the loss. */
  char path[256];
  in_tmp(path, sizeof path, "spike.csv");
  FILE *f = fopen(path, "w");
  CHECK(f);
  for (int i = 0; i < 2000; i++) fprintf(f, "%g,%g\n", i == 1500 ? 1e19 : 0.001 * i, 0.5);
  fclose(f);
  int rc = sh("%s train --data spike.csv --objective dsm --steps 200 --checkpoint-every 1 "
              "--batch-size 64 --hidden 16 --depth 1 --quiet --out div > /dev/null 2> div.err",
              SK_CLI_PATH, "");
  CHECK(rc != 0);
  in_tmp(path, sizeof path, "div.err");
  f = fopen(path, "r");
  CHECK(f);
  char msg[512] = {0};
  int got = fgets(msg, sizeof msg, f) != NULL;
  fclose(f);
  CHECK(got);
  printf("  %s", msg);
  CHECK(strstr(msg, "step ") && (strstr(msg, "loss") || strstr(msg, "gradient")));
  CHECK(strstr(msg, "checkpoint"));
  /* The checkpoint is from the step before and is finite. */
  sk_model *m = NULL;
  sk_model_info info;
  in_tmp(path, sizeof path, "div/model.safetensors");
  CHECK_OK(sk_model_load(path, 0, &m, &info));
  const float *w = sk_model_params(m);
  size_t bad = 0, n = sk_model_num_params(m);
  for (size_t i = 0; i < n; i++) bad += !isfinite(w[i]);
  sk_model_free(m);
  CHECK(n > 0);
  CHECK_EQ_INT(bad, 0);
  long long failed_at = strtoll(strstr(msg, "step ") + 5, NULL, 10);
  CHECK(failed_at > 1);
  CHECK_EQ_INT(info.steps, failed_at - 1);
}

int main(int argc, char **argv) {
  snprintf(tmp, sizeof tmp, "/tmp/sk_crash_XXXXXX");
  if (!mkdtemp(tmp)) return 1;
  char path[128];
  in_tmp(path, sizeof path, "x.npy");
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
