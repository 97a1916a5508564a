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
