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

static int same_file(const char *a, const char *b) {
  size_t na = 0, nb = 0;
  char *x = slurp(a, &na), *y = slurp(b, &nb);
  int same = x && y && na == nb && memcmp(x, y, na) == 0;
  free(x);
  free(y);
  return same;
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

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(void) {
  struct timespec ts = {0, 500000}; /* 0.5 ms between looks */
  nanosleep(&ts, NULL);
}

/* How long progress may take before the test gives up on it. */
static const double DEADLINE_S = 300;
/* The interrupted runs' --steps: never reached. */
#define NEVER "1000000000"

/* The step of the last complete line of DIR/log.csv (0: none or only the
 * header). */
static long long log_last_step(const char *dir) {
  char name[256];
  snprintf(name, sizeof name, "%s/log.csv", dir);
  size_t n = 0;
  char *buf = slurp(name, &n);
  if (!buf) return 0;
  char *end = strrchr(buf, '\n');
  long long step = 0;
  if (end) {
    *end = 0;
    char *start = strrchr(buf, '\n');
    start = start ? start + 1 : buf;
    char *e;
    step = strtoll(start, &e, 10);
    if (e == start || *e != ',') step = 0;
  }
  free(buf);
  return step;
}

/* Whether DIR/log.csv is a header and then steps 1..last, one whole line
 * each (and, when torn_ok, perhaps part of one more: a run killed with
 * SIGKILL can leave one); prints the first bad line otherwise. */
static int log_in_order_torn(const char *dir, long long last, int torn_ok) {
  char name[256];
  snprintf(name, sizeof name, "%s/log.csv", dir);
  size_t n = 0;
  char *buf = slurp(name, &n);
  if (!buf) return 0;
  long long expect = 0; /* 0: the header */
  int ok = 1;
  for (char *line = buf, *nl; ok && *line; line = nl + 1) {
    nl = strchr(line, '\n');
    if (!nl) {
      if (torn_ok) break;
      fprintf(stderr, "%s: a torn last line \"%s\"\n", name, line);
      ok = 0;
      break;
    }
    *nl = 0;
    if (expect == 0) {
      ok = strncmp(line, "step,", 5) == 0;
    } else {
      char *e;
      ok = strtoll(line, &e, 10) == expect && *e == ',' && strchr(e + 1, ',');
    }
    if (!ok) fprintf(stderr, "%s: \"%s\" where %s belongs\n", name, line, expect ? "a step" : "the header");
    expect++;
  }
  if (ok && expect - 1 != last) {
    fprintf(stderr, "%s: %lld steps, expected %lld\n", name, expect - 1, last);
    ok = 0;
  }
  free(buf);
  return ok;
}

static int log_in_order(const char *dir, long long last) { return log_in_order_torn(dir, last, 0); }

/* Starts `scorekit train ARGS` in the test directory with stderr in
 * ERRNAME; the child dies with the test. */
static pid_t spawn(const char *args, const char *errname) {
  pid_t pid = fork();
  if (pid != 0) return pid;
#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) _exit(126);
#endif
  char path[256], buf[2048];
  in_tmp(path, sizeof path, errname);
  int fe = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), fo = open("/dev/null", O_WRONLY);
  if (chdir(tmp) != 0 || fe < 0 || fo < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(126);
  snprintf(buf, sizeof buf, "%s", args);
  char *argv[64];
  int argc = 0;
  argv[argc++] = (char *)SK_CLI_PATH;
  argv[argc++] = (char *)"train";
  for (char *tok = strtok(buf, " "); tok && argc < 62; tok = strtok(NULL, " ")) argv[argc++] = tok;
  argv[argc] = NULL;
  execv(SK_CLI_PATH, argv);
  _exit(127);
}

/* Waits until DIR's log reaches `step` while `pid` runs: 1, or 0 (with the
 * reason printed) when the run stopped or the deadline passed. */
static int wait_for_log(pid_t pid, const char *dir, long long step, const char *errname) {
  const double t0 = now();
  while (now() - t0 <= DEADLINE_S) {
    if (log_last_step(dir) >= step) return 1;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      size_t n = 0;
      char *e = slurp(errname, &n);
      fprintf(stderr, "the run stopped by itself (status %d) before step %lld: %s\n", status, step,
              e ? e : "");
      free(e);
      return 0;
    }
    nap();
  }
  fprintf(stderr, "waited %.0f s for step %lld of %s\n", DEADLINE_S, step, dir);
  return 0;
}

/* The step in DIR/state.safetensors (-1 when it does not load). */
static long long state_step(const char *dir) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s/state.safetensors", tmp, dir);
  sk_safetensors *sf = NULL;
  if (sk_safetensors_load(path, &sf) != SK_OK) return -1;
  long long step = -1;
  const char *meta = sk_safetensors_meta(sf, "scorekit_state");
  const char *p = meta ? strstr(meta, "\"step\":\"") : NULL;
  if (p) step = strtoll(p + 8, NULL, 10);
  sk_safetensors_free(sf);
  return step;
}

/* ---- every objective with every model samples, or is refused ---- */

TEST(every_objective_and_model_samples_or_is_refused) {
  static const char *const objs[7] = {"esm", "dsm", "ssm", "ssm-vr", "ncsn", "vesde", "classifier"};
  static const char *const models[3] = {"", "mlp", "ncmlp"};
  /* 1: accepted (and must then sample), 0: refused by train. */
  static const int accepted[7][3] = {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1},
                                     {1, 0, 1}, {1, 0, 1}, {1, 0, 0}};
  CHECK_EQ_INT(run("train --objective ncsn --n-data 200 --hidden 8 --depth 1 --batch-size 16 --steps 2 --quiet --out mx-guide"), 0);
  for (int o = 0; o < 7; o++)
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
      if (o == 6) /* a classifier guides a score model's sampler */
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

/* ---- one run at a time in a directory ---- */

TEST(second_run_into_the_same_directory_is_refused) {
  const char *flags = "--objective dsm --n-data 500 --hidden 16 --depth 1 --quiet";
  char args[512];
  snprintf(args, sizeof args, "%s --steps " NEVER " --out lk", flags);
  const pid_t holder = spawn(args, "lk.err");
  CHECK(holder > 0);
  const int running = wait_for_log(holder, "lk", 1, "lk.err");
  if (!running) kill(holder, SIGKILL);
  CHECK(running);
  char pid[32];
  snprintf(pid, sizeof pid, "pid %d", (int)holder);
  /* A fresh run, a resume and an overwrite: each fails at once, naming the
   * holder, and the holder goes on. */
  const char *second[3] = {"", "--resume lk", "--overwrite"};
  int ok = 1;
  for (int k = 0; k < 3 && ok; k++) {
    snprintf(args, sizeof args, "train %s --steps 5 --out lk %s", flags, second[k]);
    const int rc = run(args);
    const char *needles[4] = {"lk", pid, "another", NULL};
    ok = refused(args, rc, needles);
  }
  int status = 0;
  const int alive = waitpid(holder, &status, WNOHANG) == 0;
  const long long at = log_last_step("lk");
  kill(holder, SIGKILL);
  waitpid(holder, &status, 0);
  CHECK(ok);
  CHECK(alive);
  /* The holder's log was never touched by the others: whole lines, in order
   * (but for the one SIGKILL may have cut). */
  CHECK(log_in_order_torn("lk", log_last_step("lk"), 1));
  CHECK(log_last_step("lk") >= at);
  /* The lock goes with its holder, however it ends. */
  snprintf(args, sizeof args, "train %s --steps 3 --out lk --overwrite", flags);
  CHECK_EQ_INT(run(args), 0);
  CHECK(log_in_order("lk", 3));
}

/* ---- a resume continues only its own run ---- */

TEST(resume_with_other_settings_is_refused) {
  const char *base = "--objective ncsn --n-data 500 --hidden 16 --depth 1 --batch-size 32 --lr 0.0002 --quiet";
  char args[1024];
  snprintf(args, sizeof args, "train %s --steps 20 --out r", base);
  CHECK_EQ_INT(run(args), 0);
  CHECK_EQ_INT(run("train --objective dsm --data pts.csv --hidden 8 --depth 1 --steps 10 --quiet --out f"), 0);
  const char *files[3] = {"state.safetensors", "model.safetensors", "log.csv"};
  char cmd[512];
  snprintf(cmd, sizeof cmd, "cd %s && mkdir -p keep && cp r/* keep/", tmp);
  CHECK_EQ_INT(system(cmd), 0);
  static const struct {
    const char *flags, *needles[4];
  } cases[] = {
      {"--lr 0.001", {"--resume: ", "--lr 0.001 differs from the run's 0.0002"}},
      {"--seed 1", {"--seed 1 differs from the run's 0"}},
      {"--batch-size 64", {"--batch-size 64 differs from the run's 32"}},
      {"--n-data 400", {"--n-data 400 differs from the run's 500"}},
      {"--n-data 10", {"--n-data 10 differs from the run's 500"}}, /* below the saved cursor */
      {"--objective dsm --model ncmlp", {"--objective dsm differs from the run's ncsn"}},
      {"--levels 8", {"--levels", "8 levels", "the run's 10 levels"}},
      {"--sigma-max 5", {"--sigma-max", "the run's 10 levels"}},
      {"--clip 1", {"--clip 1 differs from the run's 0"}},
      {"--ema 0.99", {"--ema 0.99 differs from the run's 0.999"}},
      {"--hidden 32", {"--hidden 32 differs from the run's 16"}},
      {"--depth 2", {"--depth 2 differs from the run's 1"}},
      {"--activation tanh", {"--activation tanh differs from the run's softplus"}},
      {"--data moons", {"--data moons", "the run's data"}},
  };
  /* The base flags less those a case sets (a flag given twice is refused). */
  static const char *const base_flags[][2] = {{"--objective", "ncsn"}, {"--n-data", "500"},
                                              {"--hidden", "16"},       {"--depth", "1"},
                                              {"--batch-size", "32"},   {"--lr", "0.0002"}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    int n = snprintf(args, sizeof args, "train --quiet");
    for (size_t b = 0; b < sizeof base_flags / sizeof base_flags[0]; b++) {
      char set[32];
      snprintf(set, sizeof set, "%s ", base_flags[b][0]);
      if (!strstr(cases[k].flags, set))
        n += snprintf(args + n, sizeof args - (size_t)n, " %s %s", base_flags[b][0], base_flags[b][1]);
    }
    snprintf(args + n, sizeof args - (size_t)n, " --steps 30 %s --out r --resume r", cases[k].flags);
    const int rc = run(args);
    CHECK(refused(args, rc, cases[k].needles));
    for (int i = 0; i < 3; i++) { /* the run's files are untouched */
      char a[64], b[64];
      snprintf(a, sizeof a, "r/%s", files[i]);
      snprintf(b, sizeof b, "keep/%s", files[i]);
      if (!same_file(a, b)) fprintf(stderr, "\"%s\" changed %s\n", args, a);
      CHECK(same_file(a, b));
    }
  }
  /* Other values in the same data file. */
  snprintf(cmd, sizeof cmd, "cd %s && sed -i '5s/^0\\.5/0.25/' pts.csv", tmp);
  CHECK_EQ_INT(system(cmd), 0);
  const char *fargs = "train --objective dsm --data pts.csv --hidden 8 --depth 1 --steps 20 --quiet --out f --resume f";
  const char *fneedles[4] = {"--data pts.csv", "the run's data", "fingerprint"};
  CHECK(refused(fargs, run(fargs), fneedles));
  /* The same settings continue. */
  snprintf(args, sizeof args, "train %s --steps 30 --out r --resume r", base);
  CHECK_EQ_INT(run(args), 0);
  CHECK(log_in_order("r", 30));
}

/* ---- a fresh run never replaces another run's files ---- */

TEST(fresh_run_into_a_run_directory_is_refused) {
  const char *args = "train --objective dsm --n-data 200 --hidden 8 --depth 1 --steps 5 --quiet --out ne";
  CHECK_EQ_INT(run(args), 0);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "cd %s && mkdir -p ne-keep && cp ne/* ne-keep/", tmp);
  CHECK_EQ_INT(system(cmd), 0);
  const char *needles[4] = {"--out ne", "not empty", "--resume", "--overwrite"};
  CHECK(refused(args, run(args), needles));
  CHECK(same_file("ne/log.csv", "ne-keep/log.csv"));
  CHECK(same_file("ne/model.safetensors", "ne-keep/model.safetensors"));
  CHECK(same_file("ne/state.safetensors", "ne-keep/state.safetensors"));
  /* Any file at all: it is not a run directory of its own. */
  snprintf(cmd, sizeof cmd, "cd %s && mkdir -p notes && echo keep > notes/todo.txt", tmp);
  CHECK_EQ_INT(system(cmd), 0);
  const char *a2 = "train --objective dsm --n-data 200 --hidden 8 --depth 1 --steps 5 --quiet --out notes";
  const char *n2[4] = {"--out notes", "not empty", "todo.txt"};
  CHECK(refused(a2, run(a2), n2));
  /* A resume from one directory into another that holds a run. */
  const char *a3 = "train --objective dsm --n-data 200 --hidden 8 --depth 1 --steps 8 --quiet --out notes --resume ne";
  CHECK(refused(a3, run(a3), n2));
  /* An empty directory is a fresh run's. */
  snprintf(cmd, sizeof cmd, "mkdir %s/empty", tmp);
  CHECK_EQ_INT(system(cmd), 0);
  CHECK_EQ_INT(run("train --objective dsm --n-data 200 --hidden 8 --depth 1 --steps 4 --quiet --out empty"), 0);
  CHECK(log_in_order("empty", 4));
  /* --overwrite replaces the run. */
  CHECK_EQ_INT(run("train --objective dsm --n-data 200 --hidden 8 --depth 1 --steps 3 --quiet --out ne --overwrite"), 0);
  CHECK(log_in_order("ne", 3));
  CHECK_EQ_INT(state_step("ne"), 3);
  CHECK_EQ_INT(run("train --help"), 0);
  size_t n = 0;
  char *help = slurp("out.txt", &n);
  CHECK(help && strstr(help, "--overwrite"));
  free(help);
}

/* Whether DIR holds the run files of KEEP (a copy made before), byte for
 * byte, and none of them set aside. */
static int run_is_back(const char *dir, const char *keep) {
  static const char *const files[4] = {"log.csv", "model.safetensors", "state.safetensors", "loss.png"};
  int ok = 1;
  for (int i = 0; i < 4; i++) {
    char a[64], b[64], c[64];
    snprintf(a, sizeof a, "%s/%s", dir, files[i]);
    snprintf(b, sizeof b, "%s/%s", keep, files[i]);
    snprintf(c, sizeof c, "%s/%s.replaced", dir, files[i]);
    if (!same_file(a, b) || exists(c)) {
      fprintf(stderr, "%s: not as in %s, or %s left\n", a, b, c);
      ok = 0;
    }
  }
  return ok;
}

/* A run that fails before its first checkpoint (here its loss diverges at
 * step 1: data 10^12 apart) leaves the directory as it found it: one it
 * created is gone (with the parents it created), an empty one stays empty,
 * and a run it was to replace (--overwrite) is back, file for file, even
 * after a replacing run was killed; so the same command can run again. */
TEST(failed_run_leaves_the_directory_as_it_was) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "cd %s && printf '0,0\\n1,1\\n2,0\\n1e12,1\\n' > far.csv", tmp);
  CHECK_EQ_INT(system(cmd), 0);
  const char *fail = "train --data far.csv --hidden 8 --depth 1 --steps 5 --quiet --out fa";
  const char *needles[4] = {"training stopped", "step 1", "no checkpoint"};
  for (int k = 0; k < 2; k++) { /* the second time as the first */
    CHECK(refused(fail, run(fail), needles));
    CHECK(!exists("fa"));
  }
  snprintf(cmd, sizeof cmd, "mkdir %s/fa-empty", tmp);
  CHECK_EQ_INT(system(cmd), 0);
  const char *f2 = "train --data far.csv --hidden 8 --depth 1 --steps 5 --quiet --out fa-empty";
  CHECK(refused(f2, run(f2), needles));
  CHECK(exists("fa-empty") && !exists("fa-empty/log.csv"));
  CHECK(refused(f2, run(f2), needles));
  /* --overwrite of a run with a run that fails. */
  CHECK_EQ_INT(run("train --objective dsm --n-data 200 --hidden 8 --depth 1 --steps 5 --quiet --out ow"), 0);
  snprintf(cmd, sizeof cmd, "cd %s && mkdir -p ow-keep && cp ow/* ow-keep/", tmp);
  CHECK_EQ_INT(system(cmd), 0);
  const char *f3 = "train --data far.csv --hidden 8 --depth 1 --steps 5 --quiet --out ow --overwrite";
  CHECK(refused(f3, run(f3), needles));
  CHECK(run_is_back("ow", "ow-keep"));
  /* A replacing run killed where nothing can catch it (SIGKILL) leaves the
   * old run set aside; the next run in the directory puts it back, and a
   * failing replacement after that still gives it back. */
  const pid_t pid = spawn("--objective dsm --n-data 200 --hidden 8 --depth 1 --steps " NEVER
                          " --quiet --out ow --overwrite", "kill.err");
  /* (The old log already passes step 2: first wait for it to be set aside.) */
  for (const double t0 = now(); pid > 0 && !exists("ow/log.csv.replaced") && now() - t0 <= DEADLINE_S &&
                                waitpid(pid, NULL, WNOHANG) == 0;)
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  CHECK(pid > 0 && wait_for_log(pid, "ow", 2, "kill.err"));
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  CHECK(exists("ow/model.safetensors.replaced") && !exists("ow/model.safetensors"));
  CHECK(refused(f3, run(f3), needles));
  CHECK(run_is_back("ow", "ow-keep"));
  /* A run that succeeds replaces it, and nothing of the old one stays. */
  CHECK_EQ_INT(run("train --objective dsm --n-data 200 --hidden 8 --depth 1 --steps 3 --quiet --out ow --overwrite"), 0);
  CHECK_EQ_INT(state_step("ow"), 3);
  CHECK(log_in_order("ow", 3));
  CHECK(!exists("ow/model.safetensors.replaced") && !exists("ow/loss.png.replaced"));
  /* Directories it made for a nested --out go too, not the ones that were
   * there. */
  const char *f4 = "train --data far.csv --hidden 8 --depth 1 --steps 5 --quiet --out ow/new/deeper";
  CHECK(refused(f4, run(f4), needles));
  CHECK(exists("ow") && !exists("ow/new"));
  /* A directory where the old run's loss.png was: refused by name before
   * anything is moved. */
  snprintf(cmd, sizeof cmd, "cd %s && rm ow/loss.png && mkdir ow/loss.png", tmp);
  CHECK_EQ_INT(system(cmd), 0);
  const char *f5 = "train --objective dsm --n-data 200 --hidden 8 --depth 1 --steps 3 --quiet --out ow --overwrite";
  const char *n5[4] = {"ow/loss.png", "not a file of a run"};
  CHECK(refused(f5, run(f5), n5));
  CHECK(exists("ow/model.safetensors") && !exists("ow/model.safetensors.replaced"));
}

/* ---- SIGTERM and SIGINT save a checkpoint ---- */

/* Starts a run that only a signal ends (resuming DIR when it has a state),
 * sends `sig` once the log passes `at`, and checks how it ended: killed by
 * that signal after a message, with a checkpoint at its last logged step.
 * Returns that step (0 on failure, reported). */
static long long interrupt(const char *flags, const char *dir, int sig, long long at) {
  char args[1024];
  snprintf(args, sizeof args, "%s --steps " NEVER " --out %s%s%s", flags, dir,
           state_step(dir) >= 0 ? " --resume " : "", state_step(dir) >= 0 ? dir : "");
  const pid_t pid = spawn(args, "sig.err");
  if (pid <= 0 || !wait_for_log(pid, dir, at, "sig.err")) {
    if (pid > 0) kill(pid, SIGKILL);
    return 0;
  }
  kill(pid, sig);
  int status = 0;
  waitpid(pid, &status, 0);
  size_t n = 0;
  char *msg = slurp("sig.err", &n);
  const long long logged = log_last_step(dir), saved = state_step(dir);
  char step[64];
  snprintf(step, sizeof step, "step %lld", saved);
  const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
  const int ok = WIFSIGNALED(status) && WTERMSIG(status) == sig && msg && lines(msg) == 1 &&
                 strstr(msg, name) && strstr(msg, "saved") && strstr(msg, step) &&
                 strstr(msg, "--resume") && saved == logged && saved >= at;
  printf("  %s after step %lld: %s", name, at, msg ? msg : "(no message)\n");
  if (!ok)
    fprintf(stderr, "%s: status %d (signal %d), log at %lld, state at %lld, stderr: %s\n", name,
            status, WIFSIGNALED(status) ? WTERMSIG(status) : 0, logged, saved, msg ? msg : "");
  free(msg);
  return ok ? saved : 0;
}

TEST(sigterm_and_sigint_save_a_checkpoint_that_resumes_to_the_same_bits) {
  const char *flags = "--objective ncsn --n-data 1000 --hidden 32 --depth 2 --quiet";
  const long long first = interrupt(flags, "sig", SIGTERM, 5);
  CHECK(first >= 5);
  /* The checkpoint is whole: the model loads, at the state's step. */
  char path[256];
  in_tmp(path, sizeof path, "sig/model.safetensors");
  sk_model *m = NULL;
  sk_model_info info;
  CHECK_OK(sk_model_load(path, 1, &m, &info));
  sk_model_free(m);
  CHECK_EQ_INT(info.steps, first);
  const long long second = interrupt(flags, "sig", SIGINT, first + 3);
  CHECK(second >= first + 3);
  /* Finish, and compare with a run that never stopped. */
  char args[1024];
  const long long total = second + 17;
  snprintf(args, sizeof args, "train %s --steps %lld --out sig --resume sig", flags, total);
  CHECK_EQ_INT(run(args), 0);
  snprintf(args, sizeof args, "train %s --steps %lld --out straight", flags, total);
  CHECK_EQ_INT(run(args), 0);
  CHECK(same_file("sig/model.safetensors", "straight/model.safetensors"));
  CHECK(same_file("sig/state.safetensors", "straight/state.safetensors"));
  CHECK(log_in_order("sig", total));
}

/* A second signal does not wait for the checkpoint: both arrive while the
 * run is stopped, so the second is there before the first can be acted on. */
TEST(second_signal_exits_at_once) {
  const pid_t pid = spawn("--objective dsm --n-data 500 --hidden 16 --depth 1 --quiet --steps " NEVER
                          " --out twice", "twice.err");
  CHECK(pid > 0);
  const int running = wait_for_log(pid, "twice", 2, "twice.err");
  if (!running) kill(pid, SIGKILL);
  CHECK(running);
  kill(pid, SIGSTOP);
  kill(pid, SIGINT);
  kill(pid, SIGTERM);
  kill(pid, SIGCONT);
  int status = 0;
  waitpid(pid, &status, 0);
  size_t n = 0;
  char *msg = slurp("twice.err", &n);
  const int saved = msg && strstr(msg, "saved");
  if (!WIFSIGNALED(status) || saved)
    fprintf(stderr, "status %d, stderr: %s\n", status, msg ? msg : "");
  free(msg);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM);
  CHECK(!saved);
  CHECK(!exists("twice/state.safetensors"));
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
      TEST_ENTRY(runs_that_cannot_fit_in_memory_are_refused),
      TEST_ENTRY(second_run_into_the_same_directory_is_refused),
      TEST_ENTRY(resume_with_other_settings_is_refused),
      TEST_ENTRY(fresh_run_into_a_run_directory_is_refused),
      TEST_ENTRY(failed_run_leaves_the_directory_as_it_was),
      TEST_ENTRY(sigterm_and_sigint_save_a_checkpoint_that_resumes_to_the_same_bits),
      TEST_ENTRY(second_signal_exits_at_once)};
  int rc = sk_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) return 1;
  return rc;
}
