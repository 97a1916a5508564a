/* Fuzz target: the IDX loader, plain and gzipped (the input decides which by
 * its first two bytes, as a file would). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_path(".idx");
  sk_tensor *t = NULL;
  sk_dtype dt;
  if (fuzz_write(p, data, size) && sk_idx_load(p, &t, &dt) == SK_OK) sk_tensor_free(t);
  return 0;
}
