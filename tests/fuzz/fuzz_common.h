/* Shared shell of the fuzz targets: libFuzzer calls LLVMFuzzerTestOneInput;
 * without libFuzzer, main() replays every file in the directories (or files)
 * named on the command line through the same function, as a CTest test. The
 * loaders take paths, so each input is written to a per-process file first.
 *
 * Each target checks the loaders' contract on every input, not only that
 * nothing crashes: a failure leaves a one-line sk_last_error() message that
 * names the file; a success yields a structurally valid result (shapes that
 * agree with the element count, finite values). Replaying, a file whose name
 * starts with "ok_" must load and one starting with "bad_" must fail. A
 * broken contract aborts under libFuzzer; a replay reports every one and
 * fails, as it does when a directory it is given is missing or empty. */
#ifndef SK_FUZZ_COMMON_H
#define SK_FUZZ_COMMON_H

#define _DEFAULT_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scorekit/scorekit.h"

static char fuzz_file[128]; /* the per-process file, removed at the end of a replay */

static const char *fuzz_path(const char *ext) {
  snprintf(fuzz_file, sizeof fuzz_file, "/tmp/sk_fuzz_%d%s", (int)getpid(), ext);
  return fuzz_file;
}

static int fuzz_write(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  size_t w = size ? fwrite(data, 1, size, f) : 0;
  return fclose(f) == 0 && w == size;
}

/* The input being replayed (for messages), and what its name promises:
 * 1 must load ("ok_..."), -1 must fail ("bad_..."), 0 either. */
static const char *fuzz_input = "(fuzzer input)";
static int fuzz_expect;
static long fuzz_broken; /* broken contracts so far */

__attribute__((format(printf, 1, 2))) static void fuzz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", fuzz_input);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fuzz_broken++;
#ifdef SK_LIBFUZZER
  abort();
#endif
}

/* Call before each loader call, so that a stale message cannot pass for its own. */
static void fuzz_clear_error(void) { sk_set_error(SK_OK, "%s", ""); }

/* The outcome of `call` on the file at `path`: returns whether it succeeded,
 * and checks a failure's message, which names `path` unless path is NULL.
 * `primary`: the call the file's name ("ok_" or "bad_") speaks about. */
static int fuzz_outcome(const char *call, sk_status st, const char *path, int primary) {
  if (st == SK_OK) {
    if (primary && fuzz_expect < 0) fuzz_fail("%s accepted a file that must be rejected", call);
    return 1;
  }
  const char *msg = sk_last_error();
  if (!msg || !*msg)
    fuzz_fail("%s failed (%s) without a message", call, sk_status_str(st));
  else if (strpbrk(msg, "\r\n"))
    fuzz_fail("%s: the message spans lines: \"%s\"", call, msg);
  else if (path && !strstr(msg, path))
    fuzz_fail("%s: the message does not name the file %s: \"%s\"", call, path, msg);
  if (primary && fuzz_expect > 0)
    fuzz_fail("%s rejected a file that must load (%s): %s", call, sk_status_str(st), msg);
  return 0;
}

/* A loaded tensor: rank 0..SK_MAX_DIMS (or exactly `ndim` when >= 0),
 * non-negative dimensions whose product is the element count, data for every
 * element, all finite (every loader rejects NaN and Inf). */
static int fuzz_check_tensor(const char *what, const sk_tensor *t, int ndim) {
  if (!t) {
    fuzz_fail("%s: success without a tensor", what);
    return 0;
  }
  const int nd = sk_tensor_ndim(t);
  if (nd < 0 || nd > SK_MAX_DIMS || (ndim >= 0 && nd != ndim)) {
    fuzz_fail("%s: rank %d (expected %d)", what, nd, ndim);
    return 0;
  }
  const int64_t *shape = sk_tensor_shape(t);
  int64_t prod = 1;
  for (int k = 0; k < nd; k++) {
    if (shape[k] < 0 || (shape[k] > 0 && prod > INT64_MAX / shape[k])) {
      fuzz_fail("%s: dimension %d is %lld", what, k, (long long)shape[k]);
      return 0;
    }
    prod *= shape[k];
  }
  const int64_t n = sk_tensor_numel(t);
  if (n != prod) {
    fuzz_fail("%s: %lld elements for a shape of %lld", what, (long long)n, (long long)prod);
    return 0;
  }
  const float *x = sk_tensor_cdata(t);
  if (n > 0 && !x) {
    fuzz_fail("%s: %lld elements and no data", what, (long long)n);
    return 0;
  }
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i])) {
      fuzz_fail("%s: element %lld is %g", what, (long long)i, x[i]);
      return 0;
    }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef SK_LIBFUZZER
static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: cannot open\n", path);
    fuzz_broken++;
    return 0;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  size_t got = n > 0 && buf ? fread(buf, 1, (size_t)n, f) : 0;
  fclose(f);
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  fuzz_input = path;
  fuzz_expect = strncmp(base, "ok_", 3) == 0 ? 1 : strncmp(base, "bad_", 4) == 0 ? -1 : 0;
  LLVMFuzzerTestOneInput(buf, got);
  free(buf);
  return 1;
}

int main(int argc, char **argv) {
  int files = 0, bad_args = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "%s: not found\n", argv[i]);
      bad_args++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      files += replay_file(argv[i]);
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (!d) {
      fprintf(stderr, "%s: cannot open the directory\n", argv[i]);
      bad_args++;
      continue;
    }
    int here = 0;
    for (struct dirent *e; (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      here += replay_file(path);
    }
    closedir(d);
    if (here == 0) {
      fprintf(stderr, "%s: no inputs in this corpus directory\n", argv[i]);
      bad_args++;
    }
    files += here;
  }
  if (fuzz_file[0]) unlink(fuzz_file);
  printf("replayed %d inputs: %ld broken contracts, %d missing or empty corpora\n", files,
         fuzz_broken, bad_args);
  return files > 0 && fuzz_broken == 0 && bad_args == 0 ? 0 : 1;
}
#endif
#endif
