/* Shared shell of the fuzz targets: libFuzzer calls LLVMFuzzerTestOneInput;
 * without libFuzzer, main() replays every file in the directories (or files)
 * named on the command line through the same function, as a CTest test. The
 * loaders take paths, so each input is written to a per-process file first. */
#ifndef SK_FUZZ_COMMON_H
#define SK_FUZZ_COMMON_H

#define _DEFAULT_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scorekit/scorekit.h"

static const char *fuzz_path(const char *ext) {
  static char path[128];
  snprintf(path, sizeof path, "/tmp/sk_fuzz_%d%s", (int)getpid(), ext);
  return path;
}

static int fuzz_write(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  size_t w = size ? fwrite(data, 1, size, f) : 0;
  return fclose(f) == 0 && w == size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef SK_LIBFUZZER
static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  size_t got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
  fclose(f);
  LLVMFuzzerTestOneInput(buf, got);
  free(buf);
  return 1;
}

int main(int argc, char **argv) {
  int files = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "%s: not found\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      files += replay_file(argv[i]);
      continue;
    }
    DIR *d = opendir(argv[i]);
    for (struct dirent *e; d && (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      files += replay_file(path);
    }
    if (d) closedir(d);
  }
  unlink(fuzz_path(""));
  printf("replayed %d inputs without a crash\n", files);
  return files > 0 ? 0 : 1;
}
#endif
#endif
