/* Private io helpers: crash-safe file replacement, opening files to read,
 * and the temporaries that a signal removes. */
#ifndef SK_IO_INTERNAL_H
#define SK_IO_INTERNAL_H

#include <stdio.h>

#include "core/internal.h"

/* An output file written to a temporary name beside `path` and renamed over
 * it only on commit, so readers see the old file or the whole new one, never
 * a part. */
typedef struct sk__afile {
  FILE *f;         /* write here between open and commit */
  char *path;      /* final name */
  char *tmp_path;  /* temporary name in the same directory */
  int slot;        /* in the registry of temporaries a signal removes; -1 if none */
} sk__afile;

/* Opens a temporary file for writing beside the file `path` resolves to
 * (sk__dest_resolve: a symbolic link is followed and its target replaced; a
 * destination that is not a regular file is refused). */
sk_status sk__afile_open(sk__afile *a, const char *path);
/* Flushes, fsyncs, closes and renames onto the final name (then fsyncs the
 * directory). On failure the temporary file is removed and nothing is renamed. */
sk_status sk__afile_commit(sk__afile *a);
/* Closes and removes the temporary file; the final name is untouched. */
void sk__afile_abort(sk__afile *a);

/* Opens `path` to read, refusing anything but a regular file before any
 * read can block (a FIFO, a device, a directory), with the message
 * "PATH: is a FIFO, not a regular file"; *size gets its size (size may be
 * NULL). */
sk_status sk__open_read(const char *path, FILE **out, uint64_t *size);
/* "a FIFO", "a directory", ... for a file type from stat. */
const char *sk__file_kind(unsigned mode);

/* The file that writing `path` replaces, in *out (free with sk__free):
 * symbolic links followed (relative ones from their own directory, up to
 * 40); refused when it exists and is not a regular file, and when the path
 * is too long to leave room for the temporary's name. */
sk_status sk__dest_resolve(const char *path, char **out);
/* "DIR/NAME.tmp.PID.XXXXXX" for mkstemp, NAME cut so that the last part
 * fits NAME_MAX; NULL when out of memory. */
char *sk__tmp_template(const char *dest);

/* A safetensors file checked as sk_safetensors_load checks it (header,
 * entries, offsets, metadata), whose tensors are read one at a time, on
 * demand: a caller compares shapes before it allocates and reads only the
 * tensors it needs. The file stays open until sk_safetensors_free;
 * sk_safetensors_get refuses its tensors. sk__safetensors_shape: the rank of
 * tensor `name` and its shape in *shape, or -1 when there is none.
 * sk__safetensors_read: converts the tensor to float32 into dst (room for all
 * its elements), rejecting NaN and infinities as the loader does. */
typedef struct sk_safetensors sk_safetensors;
sk_status sk__safetensors_open(const char *path, sk_safetensors **out);
int sk__safetensors_shape(const sk_safetensors *st, const char *name, const int64_t **shape);
sk_status sk__safetensors_read(sk_safetensors *st, const char *name, float *dst);

/* Temporary files, registered while they live so that the handlers of
 * sk_signals_install remove them (16 at once; more are not registered and
 * are left to the sweep of sk_output_prepare). Each call runs with SIGTERM,
 * SIGINT and SIGHUP blocked, so that no signal falls between creating a file
 * and registering it, or between renaming it and unregistering it.
 * sk__tmp_create: mkstemp on `tmpl`, the slot in *slot (-1 if none); the fd or
 * -1 with errno. sk__tmp_rename: renames tmp onto dest and ends the
 * registration; -1 with errno (still registered) on failure. sk__tmp_remove:
 * unlinks tmp and ends the registration. */
int sk__tmp_create(char *tmpl, int *slot);
int sk__tmp_rename(const char *tmp, const char *dest, int slot);
void sk__tmp_remove(const char *tmp, int slot);

#endif
