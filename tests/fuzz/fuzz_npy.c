/* Fuzz target: the .npy loader. An array loads with a consistent shape of
 * rank 0..SK_MAX_DIMS and finite values. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_path(".npy");
  if (!fuzz_write(p, data, size)) return 0;
  sk_tensor *t = NULL;
  fuzz_clear_error();
  sk_status st = sk_npy_load(p, &t);
  if (fuzz_outcome("sk_npy_load", st, p, 1)) fuzz_check_tensor("the array", t, -1);
  else if (t) fuzz_fail("sk_npy_load failed and left a tensor");
  sk_tensor_free(t);
  return 0;
}
