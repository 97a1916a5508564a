/* Private io helpers: crash-safe file replacement. */
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
} sk__afile;

/* Opens a temporary file beside `path` for writing. */
sk_status sk__afile_open(sk__afile *a, const char *path);
/* Flushes, fsyncs, closes and renames onto the final name (then fsyncs the
 * directory). On failure the temporary file is removed and nothing is renamed. */
sk_status sk__afile_commit(sk__afile *a);
/* Closes and removes the temporary file; the final name is untouched. */
void sk__afile_abort(sk__afile *a);

#endif
