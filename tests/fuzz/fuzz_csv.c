/* Fuzz target: the CSV loader, without and with a label column. A table
 * loads as (n, d) with n, d >= 1, finite values, and labels (n,) of integers
 * in 0..2^24. */
#include "fuzz_common.h"

static void check_table(const sk_tensor *x, const sk_tensor *y) {
  if (!fuzz_check_tensor("x", x, 2)) return;
  const int64_t n = sk_tensor_shape(x)[0], d = sk_tensor_shape(x)[1];
  if (n < 1 || d < 1) fuzz_fail("x is %lld x %lld: a table has a row and a column", (long long)n, (long long)d);
  if (!y || !fuzz_check_tensor("labels", y, 1)) return;
  if (sk_tensor_shape(y)[0] != n)
    fuzz_fail("%lld labels for %lld rows", (long long)sk_tensor_shape(y)[0], (long long)n);
  const float *l = sk_tensor_cdata(y);
  for (int64_t i = 0; i < sk_tensor_numel(y); i++)
    if (!(l[i] >= 0 && l[i] <= 16777216.0f && l[i] == floorf(l[i]))) {
      fuzz_fail("label %lld is %g, not an integer in 0..2^24", (long long)i, l[i]);
      return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_path(".csv");
  if (!fuzz_write(p, data, size)) return 0;
  sk_csv_options opt = sk_csv_options_default();
  sk_tensor *x = NULL, *y = NULL;
  fuzz_clear_error();
  sk_status st = sk_csv_load(p, &opt, &x, NULL);
  if (fuzz_outcome("sk_csv_load", st, p, 1)) check_table(x, NULL);
  else if (x) fuzz_fail("sk_csv_load failed and left a tensor");
  sk_tensor_free(x);
  opt.label_column = 0;
  x = NULL;
  fuzz_clear_error();
  st = sk_csv_load(p, &opt, &x, &y);
  if (fuzz_outcome("sk_csv_load (label column 0)", st, p, 0)) {
    if (!y) fuzz_fail("sk_csv_load (label column 0) succeeded without labels");
    check_table(x, y);
  } else if (x || y) {
    fuzz_fail("sk_csv_load (label column 0) failed and left a tensor");
  }
  sk_tensor_free(x);
  sk_tensor_free(y);
  return 0;
}
