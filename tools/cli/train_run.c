/* The run directory of `scorekit train`: its lock, its checks, its signals
 * and the memory a run may take (see train_run.h). */
#define _DEFAULT_SOURCE /* flock, dprintf */
#include "train_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---- memory ---- */

/* The number in `path` (one line), or 0 when absent or "max". */
static double read_number(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  double v = 0;
  if (fscanf(f, "%lf", &v) != 1) v = 0;
  fclose(f);
  return v;
}

size_t run_memory_available(void) {
  double avail = 0;
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char line[256];
    double kb;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) {
        avail = kb * 1024;
        break;
      }
    fclose(f);
  }
  if (avail <= 0) {
    const long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && size > 0) avail = (double)pages * (double)size;
  }
  /* A cgroup v2 limit: "0::/PATH" in /proc/self/cgroup. */
  f = fopen("/proc/self/cgroup", "r");
  if (f) {
    char line[1024];
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "0::", 3) != 0) continue;
      line[strcspn(line, "\n")] = 0;
      char path[1200];
      snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
      const double max = read_number(path);
      snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", line + 3);
      const double current = read_number(path);
      if (max > 0 && max - current < avail) avail = max > current ? max - current : 1;
    }
    fclose(f);
  }
  return avail > 0 ? (size_t)avail : 0;
}

const char *run_bytes_text(char *buf, size_t cap, double b) {
  if (b >= 1024.0 * 1024 * 1024) snprintf(buf, cap, "%.1f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024) snprintf(buf, cap, "%.1f MiB", b / (1024.0 * 1024));
  else snprintf(buf, cap, "%.0f KiB", b / 1024.0);
  return buf;
}

int run_weights_fit(const sk_model_config *mc, size_t avail) {
  if (!avail || mc->kind > SK_MODEL_CLASSIFIER) return 1;
  const double h = mc->hidden, in = mc->dim + (mc->kind != SK_MODEL_MLP),
               out = mc->kind == SK_MODEL_CLASSIFIER ? mc->classes : mc->dim;
  const double params = in * h + h + (mc->depth - 1) * (h * h + h) + h * out + out;
  const double need = params * 4 * 5;
  if (need <= (double)avail) return 1;
  char a[32], b[32];
  return !cli_fail("--hidden %d --depth %d: %.0f parameters, so the run needs at least %s "
                   "(4 B each for the weights, gradients, Adam's two moments and EMA) before any "
                   "activation; %s of memory is available (--force to try anyway)",
                   mc->hidden, mc->depth, params, run_bytes_text(a, sizeof a, need),
                   run_bytes_text(b, sizeof b, (double)avail));
}


/* ---- the run directory ---- */

#define LOCK_NAME ".lock"

int run_lock(const char *dir) {
  char path[4200];
  if ((size_t)snprintf(path, sizeof path, "%s/" LOCK_NAME, dir) >= sizeof path)
    return !cli_fail("--out %s: path too long", dir);
  const int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return !cli_fail("--out %s: cannot open its lock file %s: %s", dir, path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    if (e != EWOULDBLOCK) {
      close(fd);
      return !cli_fail("--out %s: cannot lock %s: %s", dir, path, strerror(e));
    }
    /* The holder writes its pid right after taking the lock: give it a
     * moment if it has only just started. */
    long pid = 0;
    for (int tries = 0; tries < 100 && pid <= 0; tries++) {
      char buf[32] = {0};
      const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
      pid = n > 0 ? strtol(buf, NULL, 10) : 0;
      if (pid <= 0) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    close(fd);
    if (pid > 0)
      return !cli_fail("--out %s: another train (pid %ld) is running in this directory; "
                       "wait for it to end or choose another --out", dir, pid);
    return !cli_fail("--out %s: another train is running in this directory (%s is locked); "
                     "wait for it to end or choose another --out", dir, path);
  }
  /* Held until the process ends: the descriptor is never closed. */
  if (ftruncate(fd, 0) != 0 || dprintf(fd, "%ld\n", (long)getpid()) < 0) {
    const int e = errno;
    close(fd);
    return !cli_fail("--out %s: cannot write %s: %s", dir, path, strerror(e));
  }
  return 1;
}

int run_dir_empty(const char *dir, char *first, size_t cap) {
  DIR *d = opendir(dir);
  if (!d) return 1;
  int empty = 1;
  for (struct dirent *e; empty && (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, LOCK_NAME)) {
      empty = 0;
      snprintf(first, cap, "%s", e->d_name);
    }
  closedir(d);
  return empty;
}

int run_same_dir(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && S_ISDIR(sa.st_mode) && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

const char *const run_files[RUN_FILES] = {"log.csv", "state.safetensors", "model.safetensors",
                                          "loss.png"};

#define ASIDE ".replaced"

int run_remove_stale(const char *dir) {
  static const char *const prefixes[3] = {"model.safetensors.tmp.", "state.safetensors.tmp.",
                                          "log.csv.trim"};
  DIR *d = opendir(dir);
  if (!d) return 0;
  int removed = 0;
  for (struct dirent *e; (e = readdir(d));) {
    int stale = 0;
    for (int i = 0; i < 3; i++) stale |= !strncmp(e->d_name, prefixes[i], strlen(prefixes[i]));
    char path[4400];
    struct stat st;
    if (!stale || (size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path ||
        lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    removed += unlink(path) == 0;
  }
  closedir(d);
  return removed;
}

/* DIR/NAME and DIR/NAME.replaced; 0 when too long. */
static int aside_paths(const char *dir, const char *name, char *path, char *aside, size_t cap) {
  return (size_t)snprintf(path, cap, "%s/%s", dir, name) < cap &&
         (size_t)snprintf(aside, cap, "%s/%s" ASIDE, dir, name) < cap;
}

int run_set_aside(const char *dir, int aside[RUN_FILES]) {
  char path[4200], moved[4200];
  struct stat st;
  /* Files and links only, all checked before any is moved. */
  for (int i = 0; i < RUN_FILES; i++) {
    aside[i] = 0;
    if (!aside_paths(dir, run_files[i], path, moved, sizeof path))
      return !cli_fail("--out %s: path too long", dir);
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
      return !cli_fail("%s: is not a file of a run (a directory or a special file); remove it",
                       path);
  }
  for (int i = 0; i < RUN_FILES; i++) {
    aside_paths(dir, run_files[i], path, moved, sizeof path);
    if (lstat(path, &st) != 0) continue;
    if (rename(path, moved) != 0) {
      const int e = errno;
      run_aside_end(dir, aside, 0);
      return !cli_fail("%s: cannot set it aside for --overwrite: %s", path, strerror(e));
    }
    aside[i] = 1;
  }
  return 1;
}

int run_recover_aside(const char *dir) {
  char path[4200], moved[4200], state[4200];
  struct stat st;
  int found = 0;
  for (int i = 0; i < RUN_FILES; i++)
    found |= aside_paths(dir, run_files[i], path, moved, sizeof path) && lstat(moved, &st) == 0;
  if (!found) return 1;
  /* With no state, the replacing run saved nothing: the set-aside run is
   * still the directory's. */
  snprintf(state, sizeof state, "%s/state.safetensors", dir);
  const int back = lstat(state, &st) != 0;
  for (int i = 0; i < RUN_FILES; i++) {
    if (!aside_paths(dir, run_files[i], path, moved, sizeof path) || lstat(moved, &st) != 0)
      continue;
    if (back ? rename(moved, path) != 0 : unlink(moved) != 0)
      return !cli_fail("%s: cannot %s: %s", moved, back ? "put it back" : "remove it",
                       strerror(errno));
  }
  if (back)
    printf("put back the run that an interrupted --overwrite had set aside in %s\n", dir);
  return 1;
}

void run_aside_end(const char *dir, int aside[RUN_FILES], int keep_new) {
  for (int i = 0; i < RUN_FILES; i++) {
    char path[4200], moved[4200];
    if (!aside[i] || !aside_paths(dir, run_files[i], path, moved, sizeof path)) continue;
    if (keep_new) unlink(moved);
    else rename(moved, path); /* replaces the new run's file of that name, if any */
    aside[i] = 0;
  }
}

/* ---- a resume of another run ---- */

static int builtin_data(const char *data) {
  for (int i = 0; i < sk_toy_count(); i++)
    if (!strcmp(sk_toy_name(i), data)) return 1;
  return 0;
}

int run_resume_refused(const sk_run_mismatch *mm, const char *data, int sigmas_given) {
  const char *s = mm->setting, *ours = mm->ours, *saved = mm->saved;
  /* Settings that are a flag of their own. */
  static const char *const flags[][2] = {
      {"objective", "--objective"}, {"model", "--model"},     {"hidden", "--hidden"},
      {"depth", "--depth"},         {"activation", "--activation"}, {"seed", "--seed"},
      {"sigma", "--sigma"},         {"batch", "--batch-size"}, {"projections", "--projections"},
      {"rademacher", "--rademacher"}, {"lr", "--lr"},         {"clip", "--clip"},
      {"ema", "--ema"}, {"label_dropout", "--label-dropout"}};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    if (!strcmp(s, flags[i][0]))
      return cli_fail("--resume: %s %s differs from the run's %s", flags[i][1], ours, saved);
  if (!strcmp(s, "rows") && builtin_data(data))
    return cli_fail("--resume: --n-data %s differs from the run's %s", ours, saved);
  if (!strcmp(s, "rows"))
    return cli_fail("--resume: --data %s: %s rows differ from the run's data (%s rows)", data, ours,
                    saved);
  if (!strcmp(s, "dim"))
    return cli_fail("--resume: --data %s: %s dimensions differ from the run's data (%s)", data,
                    ours, saved);
  if (!strcmp(s, "labels") || !strcmp(s, "classes"))
    return cli_fail("--resume: --data %s: its labels (%s classes) differ from the run's data (%s "
                    "classes)",
                    data, ours, saved);
  if (!strcmp(s, "data"))
    return cli_fail("--resume: --data %s: its values differ from the run's data (%s, the run's %s)",
                    data, ours, saved);
  if (!strcmp(s, "sigmas"))
    return cli_fail("--resume: the σ ladder (%s) %s differs from the run's %s",
                    sigmas_given ? "--sigmas" : "--levels, --sigma-max, --sigma-min", ours, saved);
  return cli_fail("--resume: %s %s differs from the run's %s", s, ours, saved);
}

/* ---- signals ---- */

/* Signals seen, counted with a lock-free atomic (async-signal-safe; two
 * threads may take signals at once), and the first one. */
static atomic_int signals_seen;
static volatile sig_atomic_t first_signal;

/* Async-signal-safe throughout: an atomic add, a store, sigaction, raise.
 * Installed with sigaction (SA_RESTART, so a write interrupted by it goes
 * on). Another handler for these signals (the atomic writer removing its
 * live temporary file) should run its own work and then call this one (the
 * sa_handler it replaced), so that the flag and the second-signal exit
 * stay as they are. */
static void on_stop(int sig) {
  if (atomic_fetch_add(&signals_seen, 1) > 0) { /* a second signal: now */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    raise(sig); /* delivered when this handler returns */
    return;
  }
  first_signal = sig;
}

void run_catch_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

int run_stop_signal(void) { return first_signal; }

void run_die_by(int sig) {
  fflush(stdout);
  fflush(stderr);
  signal(sig, SIG_DFL);
  raise(sig);
  _exit(128 + sig); /* not reached */
}
