/* Atomic file replacement: temporary file, fsync, rename, fsync the directory. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/internal.h"
#include "scorekit/io.h"

sk_status sk__afile_open(sk__afile *a, const char *path) {
  memset(a, 0, sizeof *a);
  a->slot = -1;
  if (!path) return sk__fail(SK_ERR_INVALID, "output path is NULL");
  sk_status st = sk__dest_resolve(path, &a->path);
  if (st) return st;
  a->tmp_path = sk__tmp_template(a->path);
  if (!a->tmp_path) {
    sk__free(a->path);
    a->path = NULL;
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory", path);
  }
  int fd = sk__tmp_create(a->tmp_path, &a->slot);
  if (fd < 0) {
    int e = errno;
    sk__free(a->path);
    sk__free(a->tmp_path);
    memset(a, 0, sizeof *a);
    return sk__fail(SK_ERR_IO, "%s: cannot create: %s", path, strerror(e));
  }
  fchmod(fd, 0644);
  a->f = fdopen(fd, "wb");
  if (!a->f) {
    int e = errno;
    close(fd);
    sk__tmp_remove(a->tmp_path, a->slot);
    sk__free(a->path);
    sk__free(a->tmp_path);
    memset(a, 0, sizeof *a);
    return sk__fail(SK_ERR_IO, "%s: cannot open: %s", path, strerror(e));
  }
  return SK_OK;
}

static void sk_afile_release(sk__afile *a) {
  sk__free(a->path);
  sk__free(a->tmp_path);
  memset(a, 0, sizeof *a);
  a->slot = -1;
}

void sk__afile_abort(sk__afile *a) {
  if (a->f) fclose(a->f);
  if (a->tmp_path) sk__tmp_remove(a->tmp_path, a->slot);
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
  if (bad || sk__tmp_rename(a->tmp_path, a->path, a->slot) != 0) {
    if (!bad) e = errno;
    sk_status st = sk__fail(SK_ERR_IO, "%s: write failed: %s", a->path, strerror(e));
    sk__tmp_remove(a->tmp_path, a->slot);
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

sk_status sk_file_write(const char *path, const void *data, size_t n) {
  if (n > 0 && !data) return sk__fail(SK_ERR_INVALID, "%s: data is NULL", path ? path : "sk_file_write");
  sk__afile a;
  sk_status st = sk__afile_open(&a, path);
  if (st) return st;
  if (n > 0 && fwrite(data, 1, n, a.f) != n) {
    int e = errno;
    sk__afile_abort(&a);
    return sk__fail(SK_ERR_IO, "%s: write failed: %s", path, strerror(e));
  }
  return sk__afile_commit(&a);
}
