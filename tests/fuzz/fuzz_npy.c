/* Fuzz target: the .npy loader. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_path(".npy");
  sk_tensor *t = NULL;
  if (fuzz_write(p, data, size) && sk_npy_load(p, &t) == SK_OK) sk_tensor_free(t);
  return 0;
}
