/* Atomic file replacement: temporary file, fsync, rename, fsync the directory. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/internal.h"

sk_status sk__afile_open(sk__afile *a, const char *path) {
  memset(a, 0, sizeof *a);
  size_t n = strlen(path);
  a->path = sk__strdup(path);
  a->tmp_path = sk__malloc(n + 16);
  if (!a->path || !a->tmp_path) {
    sk__free(a->path);
    sk__free(a->tmp_path);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory", path);
  }
  memcpy(a->tmp_path, path, n);
  memcpy(a->tmp_path + n, ".tmp.XXXXXX", 12);
  int fd = mkstemp(a->tmp_path);
  if (fd < 0) {
    int e = errno;
    sk__free(a->path);
    sk__free(a->tmp_path);
    return sk__fail(SK_ERR_IO, "%s: cannot create: %s", path, strerror(e));
  }
  fchmod(fd, 0644);
  a->f = fdopen(fd, "wb");
  if (!a->f) {
    close(fd);
    unlink(a->tmp_path);
    sk__free(a->path);
    sk__free(a->tmp_path);
    return sk__fail(SK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  }
  return SK_OK;
}

static void sk_afile_release(sk__afile *a) {
  sk__free(a->path);
  sk__free(a->tmp_path);
  memset(a, 0, sizeof *a);
}

void sk__afile_abort(sk__afile *a) {
  if (a->f) fclose(a->f);
  if (a->tmp_path) unlink(a->tmp_path);
  sk_afile_release(a);
}

sk_status sk__afile_commit(sk__afile *a) {
  int bad = ferror(a->f) || fflush(a->f) != 0 || fsync(fileno(a->f)) != 0;
  int e = errno;
  if (fclose(a->f) != 0 && !bad) {
    bad = 1;
    e = errno;
  }
  a->f = NULL;
  if (bad || rename(a->tmp_path, a->path) != 0) {
    if (!bad) e = errno;
    sk_status st = sk__fail(SK_ERR_IO, "%s: write failed: %s", a->path, strerror(e));
    unlink(a->tmp_path);
    sk_afile_release(a);
    return st;
  }
  /* Make the rename itself durable. */
  char *slash = strrchr(a->path, '/');
  char *dir = slash ? a->path : NULL;
  if (dir) *slash = 0;
  int dfd = open(dir ? (dir[0] ? dir : "/") : ".", O_RDONLY | O_DIRECTORY);
  if (dir) *slash = '/';
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  sk_afile_release(a);
  return SK_OK;
}
