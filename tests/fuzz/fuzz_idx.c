/* Fuzz target: the IDX loader, plain and gzipped (the input decides which by
 * its first two bytes, as a file would). An array loads with rank 1..4, a
 * consistent shape, finite values and a known element type. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_path(".idx");
  if (!fuzz_write(p, data, size)) return 0;
  sk_tensor *t = NULL;
  sk_dtype dt = (sk_dtype)-1;
  fuzz_clear_error();
  sk_status st = sk_idx_load(p, &t, &dt);
  if (fuzz_outcome("sk_idx_load", st, p, 1)) {
    if (fuzz_check_tensor("the array", t, -1) && (sk_tensor_ndim(t) < 1 || sk_tensor_ndim(t) > 4))
      fuzz_fail("sk_idx_load: rank %d outside 1..4", sk_tensor_ndim(t));
    if (!sk_dtype_name(dt) || !*sk_dtype_name(dt)) fuzz_fail("sk_idx_load: no element type");
  } else if (t) {
    fuzz_fail("sk_idx_load failed and left a tensor");
  }
  sk_tensor_free(t);
  return 0;
}
