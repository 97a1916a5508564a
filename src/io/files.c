/* What every reader and writer of files shares: opening a file to read
 * without waiting on a FIFO or a device, resolving a destination (symbolic
 * links followed, anything but a regular file refused), the registry of
 * temporary files that SIGTERM, SIGINT and SIGHUP remove, and the sweep of
 * temporaries left by processes that are gone. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/internal.h"
#include "scorekit/io.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif
#ifndef NAME_MAX
#define NAME_MAX 255
#endif

/* Links followed before giving up (Linux's own limit). */
#define MAX_LINKS 40

const char *sk__file_kind(unsigned mode) {
  return S_ISDIR(mode)    ? "a directory"
         : S_ISFIFO(mode) ? "a FIFO"
         : S_ISCHR(mode)  ? "a character device"
         : S_ISBLK(mode)  ? "a block device"
         : S_ISSOCK(mode) ? "a socket"
         : S_ISLNK(mode)  ? "a symbolic link"
                          : "not a plain file";
}

/* ---- reading ---- */

sk_status sk__open_read(const char *path, FILE **out, uint64_t *size) {
  *out = NULL;
  /* stat first, so that a device is never opened (opening some has effects),
   * then O_NONBLOCK, so that a FIFO swapped in meanwhile cannot block the
   * open, then fstat of what was opened. */
  struct stat sb;
  if (stat(path, &sb) != 0) return sk__fail(SK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  if (!S_ISREG(sb.st_mode))
    return sk__fail(SK_ERR_IO, "%s: is %s, not a regular file", path, sk__file_kind(sb.st_mode));
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return sk__fail(SK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    int e = errno;
    close(fd);
    return sk__fail(SK_ERR_IO, "%s: %s", path,
                    S_ISREG(sb.st_mode) ? strerror(e) : "not a regular file (changed while opened)");
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    int e = errno;
    close(fd);
    return sk__fail(e == ENOMEM ? SK_ERR_NOMEM : SK_ERR_IO, "%s: cannot open: %s", path, strerror(e));
  }
  if (size) *size = (uint64_t)sb.st_size;
  *out = f;
  return SK_OK;
}

/* ---- destinations ---- */

/* The directory part of `path` (without the final slash; "." when none). */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return sk__strdup(".");
  if (slash == path) return sk__strdup("/");
  size_t n = (size_t)(slash - path);
  char *d = sk__malloc(n + 1);
  if (d) {
    memcpy(d, path, n);
    d[n] = 0;
  }
  return d;
}

/* The suffix a temporary name adds: ".tmp.<pid>.XXXXXX". */
static size_t tmp_suffix_len(void) {
  char buf[48];
  return (size_t)snprintf(buf, sizeof buf, ".tmp.%ld.XXXXXX", (long)getpid());
}

sk_status sk__dest_resolve(const char *path, char **out) {
  *out = NULL;
  if (!path || !*path) return sk__fail(SK_ERR_INVALID, "output path is empty");
  char *cur = sk__strdup(path);
  if (!cur) return sk__fail(SK_ERR_NOMEM, "%s: out of memory", path);
  for (int hops = 0;; hops++) {
    size_t n = strlen(cur);
    if (n >= PATH_MAX) goto too_long;
    if (cur[n - 1] == '/') {
      sk__free(cur);
      return sk__fail(SK_ERR_IO, "%s: names a directory, not a file", path);
    }
    const char *base = strrchr(cur, '/');
    base = base ? base + 1 : cur;
    if (strlen(base) > NAME_MAX) goto too_long;
    struct stat sb;
    if (lstat(cur, &sb) != 0) {
      int e = errno;
      if (e == ENOENT) break; /* a new file: the directory is checked by whoever creates it */
      sk_status st;
      char *dir = e == ENOTDIR ? dir_of(cur) : NULL;
      if (dir) st = sk__fail(SK_ERR_IO, "%s: cannot write: %s is not a directory", path, dir);
      else if (e == ENAMETOOLONG) st = sk__fail(SK_ERR_IO, "%s: name too long", path);
      else st = sk__fail(SK_ERR_IO, "%s: cannot write: %s", path, strerror(e));
      sk__free(dir);
      sk__free(cur);
      return st;
    }
    if (S_ISREG(sb.st_mode)) break;
    if (!S_ISLNK(sb.st_mode)) {
      const char *kind = sk__file_kind(sb.st_mode);
      sk_status st = strcmp(cur, path) == 0
                         ? sk__fail(SK_ERR_IO, "%s: is %s, not a regular file; it is not replaced",
                                    path, kind)
                         : sk__fail(SK_ERR_IO,
                                    "%s: links to %s, which is %s, not a regular file; it is not "
                                    "replaced",
                                    path, cur, kind);
      sk__free(cur);
      return st;
    }
    if (hops == MAX_LINKS) {
      sk__free(cur);
      return sk__fail(SK_ERR_IO, "%s: more than %d symbolic links to follow (a loop?)", path,
                      MAX_LINKS);
    }
    char target[PATH_MAX];
    ssize_t k = readlink(cur, target, sizeof target);
    if (k < 0 || (size_t)k >= sizeof target) {
      int e = k < 0 ? errno : ENAMETOOLONG;
      sk__free(cur);
      return sk__fail(SK_ERR_IO, "%s: cannot read the symbolic link: %s", path, strerror(e));
    }
    target[k] = 0;
    char *next;
    const char *slash = strrchr(cur, '/');
    if (target[0] == '/' || !slash) {
      next = sk__strdup(target);
    } else { /* relative to the link's own directory */
      size_t dn = (size_t)(slash - cur) + 1;
      next = sk__malloc(dn + (size_t)k + 1);
      if (next) {
        memcpy(next, cur, dn);
        memcpy(next + dn, target, (size_t)k + 1);
      }
    }
    sk__free(cur);
    if (!next) return sk__fail(SK_ERR_NOMEM, "%s: out of memory", path);
    cur = next;
  }
  /* Room for the temporary beside it: its name is cut to fit NAME_MAX, but
   * the whole path must stay under PATH_MAX. */
  {
    const char *slash = strrchr(cur, '/');
    size_t dir_len = slash ? (size_t)(slash - cur) + 1 : 0, base_len = strlen(cur) - dir_len;
    size_t suffix = tmp_suffix_len(), keep = SK_MIN(base_len, (size_t)NAME_MAX - suffix);
    if (dir_len + keep + suffix >= PATH_MAX) goto too_long;
  }
  *out = cur;
  return SK_OK;
too_long:;
  /* The path itself would fill the message: its two ends are enough. */
  size_t n = strlen(cur), pn = strlen(path);
  char shown[160];
  if (pn < sizeof shown)
    memcpy(shown, path, pn + 1);
  else
    snprintf(shown, sizeof shown, "%.70s...%s", path, path + pn - 70);
  sk__free(cur);
  return sk__fail(SK_ERR_IO,
                  "%s: name too long (%zu bytes; a path must stay under %d bytes with the "
                  "%zu-byte suffix of its temporary file, and each name under %d)",
                  shown, n, PATH_MAX, tmp_suffix_len(), NAME_MAX + 1);
}

char *sk__tmp_template(const char *dest) {
  const char *slash = strrchr(dest, '/');
  size_t dir_len = slash ? (size_t)(slash - dest) + 1 : 0, base_len = strlen(dest) - dir_len;
  char suffix[48];
  size_t sn = (size_t)snprintf(suffix, sizeof suffix, ".tmp.%ld.XXXXXX", (long)getpid());
  size_t keep = SK_MIN(base_len, (size_t)NAME_MAX - sn);
  char *t = sk__malloc(dir_len + keep + sn + 1);
  if (!t) return NULL;
  memcpy(t, dest, dir_len + keep);
  memcpy(t + dir_len + keep, suffix, sn + 1);
  return t;
}

/* ---- temporaries removed by a signal ---- */

/* Slots for the temporary files being written. A writer claims a slot
 * (FREE -> BUSY), copies the name and publishes it (LIVE); the handler takes
 * a LIVE slot (LIVE -> DYING) before reading the name, so that the name it
 * reads cannot change under it. More writers at once than slots are not
 * registered: their temporaries are left to the next start's sweep. */
enum { SLOT_FREE, SLOT_BUSY, SLOT_LIVE, SLOT_DYING };
#define SLOTS 16
static struct {
  atomic_int state;
  char path[PATH_MAX];
} temps[SLOTS];

/* Temporaries alive without a slot (all were taken). */
static atomic_int unregistered;
/* Threads between mkstemp and registering its file. The calling thread
 * blocks the signals meanwhile, but a signal sent to the process can land on
 * another thread (an OpenMP worker): its handler waits for this to drop to 0,
 * so that it sees the new file. */
static atomic_int creating;

static const int caught[] = {SIGTERM, SIGINT, SIGHUP};
static _Atomic(volatile sig_atomic_t *) stop_flag;

static void block(sigset_t *old) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < sizeof caught / sizeof *caught; i++) sigaddset(&set, caught[i]);
  pthread_sigmask(SIG_BLOCK, &set, old);
}

static void restore(const sigset_t *old) { pthread_sigmask(SIG_SETMASK, old, NULL); }

static int temp_register(const char *path) {
  if (strlen(path) >= PATH_MAX) return -1;
  for (int i = 0; i < SLOTS; i++) {
    int expect = SLOT_FREE;
    if (atomic_compare_exchange_strong(&temps[i].state, &expect, SLOT_BUSY)) {
      strcpy(temps[i].path, path);
      atomic_store(&temps[i].state, SLOT_LIVE);
      return i;
    }
  }
  return -1;
}

static void temp_unregister(int slot) {
  if (slot < 0) return;
  int expect = SLOT_LIVE;
  /* DYING: the handler owns it, and the process is about to end. */
  atomic_compare_exchange_strong(&temps[slot].state, &expect, SLOT_FREE);
}

int sk__tmp_create(char *tmpl, int *slot) {
  sigset_t old;
  block(&old);
  atomic_fetch_add(&creating, 1);
  int fd = mkstemp(tmpl);
  int e = errno;
  *slot = fd >= 0 ? temp_register(tmpl) : -1;
  if (fd >= 0 && *slot < 0) atomic_fetch_add(&unregistered, 1);
  atomic_fetch_sub(&creating, 1);
  restore(&old);
  errno = e;
  return fd;
}

int sk__tmp_rename(const char *tmp, const char *dest, int slot) {
  sigset_t old;
  block(&old);
  int rc = rename(tmp, dest);
  int e = errno;
  if (rc == 0) {
    if (slot < 0) atomic_fetch_sub(&unregistered, 1);
    temp_unregister(slot);
  }
  restore(&old);
  errno = e;
  return rc;
}

void sk__tmp_remove(const char *tmp, int slot) {
  sigset_t old;
  block(&old);
  unlink(tmp);
  if (slot < 0) atomic_fetch_sub(&unregistered, 1);
  temp_unregister(slot);
  restore(&old);
}

/* Whether this process has a write in progress (registered or not). */
static int writing(void) {
  if (atomic_load(&unregistered) > 0) return 1;
  for (int i = 0; i < SLOTS; i++)
    if (atomic_load(&temps[i].state) != SLOT_FREE) return 1;
  return 0;
}

/* Async-signal-safe: atomics on lock-free ints, nanosleep, unlink,
 * sigaction, raise. */
static void on_signal(int sig) {
  const int saved = errno;
  volatile sig_atomic_t *stop = atomic_load(&stop_flag);
  if (stop && !*stop) { /* the first signal is the caller's to act on */
    *stop = sig;
    errno = saved;
    return;
  }
  /* A file being created on another thread is registered within
   * microseconds; wait for it (at most a second). */
  for (int spin = 0; atomic_load(&creating) > 0 && spin < 100000; spin++) {
    struct timespec ts = {0, 10000};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < SLOTS; i++) {
    int expect = SLOT_LIVE;
    if (atomic_compare_exchange_strong(&temps[i].state, &expect, SLOT_DYING)) unlink(temps[i].path);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
  /* Pending until this handler returns and the mask drops it: then the
   * default action ends the process, so the parent sees the signal. */
  raise(sig);
  errno = saved;
}

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler needs lock-free atomic ints");

sk_status sk_signals_install(volatile sig_atomic_t *stop) {
  atomic_store(&stop_flag, stop);
  for (size_t i = 0; i < sizeof caught / sizeof *caught; i++) {
    struct sigaction old, sa;
    if (sigaction(caught[i], NULL, &old) != 0)
      return sk__fail(SK_ERR_STATE, "signal %d: %s", caught[i], strerror(errno));
    if (old.sa_handler == SIG_IGN) continue; /* nohup, or a background job: stays ignored */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t k = 0; k < sizeof caught / sizeof *caught; k++) sigaddset(&sa.sa_mask, caught[k]);
    sa.sa_flags = SA_RESTART; /* a deferred signal must not fail a write with EINTR */
    if (sigaction(caught[i], &sa, NULL) != 0)
      return sk__fail(SK_ERR_STATE, "signal %d: %s", caught[i], strerror(errno));
  }
  return SK_OK;
}

/* ---- stale temporaries ---- */

/* The pid in a name NAME.tmp.PID.XXXXXX (NAME non-empty, PID decimal without
 * a leading zero, XXXXXX six letters or digits as mkstemp makes them), or 0. */
static long tmp_pid(const char *name) {
  size_t n = strlen(name);
  if (n < 6 + 1 + 1 + 5 + 1) return 0;
  const char *x = name + n - 6;
  for (int i = 0; i < 6; i++)
    if (!((x[i] >= 'a' && x[i] <= 'z') || (x[i] >= 'A' && x[i] <= 'Z') || (x[i] >= '0' && x[i] <= '9')))
      return 0;
  if (x[-1] != '.') return 0;
  const char *end = x - 1, *p = end;
  while (p > name && p[-1] >= '0' && p[-1] <= '9') p--;
  if (p == end || end - p > 10 || *p == '0') return 0;
  if (p - name < 6 || memcmp(p - 5, ".tmp.", 5) != 0) return 0;
  long pid = 0;
  for (const char *q = p; q < end; q++) pid = pid * 10 + (*q - '0');
  return pid > 0 && pid <= INT_MAX ? pid : 0;
}

static sk_status sweep(const char *dir, int *removed) {
  DIR *d = opendir(dir);
  if (!d) return sk__fail(SK_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
  const long self = (long)getpid();
  const uid_t me = geteuid();
  int dfd = dirfd(d);
  for (struct dirent *e; (e = readdir(d));) {
    long pid = tmp_pid(e->d_name);
    if (!pid) continue;
    if (pid == self) {
      /* This process's pid: left by an earlier process that had the same
       * pid, unless this one is writing (then it may be its own). */
      if (writing()) continue;
    } else if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) {
      continue; /* alive (or not ours to probe): kept */
    }
    struct stat sb;
    if (fstatat(dfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode) ||
        sb.st_uid != me)
      continue;
    if (unlinkat(dfd, e->d_name, 0) == 0) ++*removed;
  }
  closedir(d);
  return SK_OK;
}

sk_status sk_output_prepare(const char *path, int *removed) {
  if (removed) *removed = 0;
  if (!path) return sk__fail(SK_ERR_INVALID, "sk_output_prepare: path is NULL");
  char *dest = NULL;
  sk_status st = sk__dest_resolve(path, &dest);
  if (st) return st;
  char *dir = dir_of(dest);
  if (!dir) {
    sk__free(dest);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory", path);
  }
  struct stat sb;
  if (stat(dir, &sb) != 0) {
    int e = errno;
    st = e == ENOENT    ? sk__fail(SK_ERR_IO, "%s: directory %s does not exist", path, dir)
         : e == ENOTDIR ? sk__fail(SK_ERR_IO, "%s: %s is not a directory", path, dir)
                        : sk__fail(SK_ERR_IO, "%s: directory %s: %s", path, dir, strerror(e));
  } else if (!S_ISDIR(sb.st_mode)) {
    st = sk__fail(SK_ERR_IO, "%s: %s is not a directory", path, dir);
  } else if (access(dir, W_OK | X_OK) != 0) {
    st = sk__fail(SK_ERR_IO, "%s: cannot write in %s: %s", path, dir, strerror(errno));
  } else {
    int n = 0;
    st = sweep(dir, &n);
    if (removed) *removed = n;
  }
  sk__free(dir);
  sk__free(dest);
  return st;
}
