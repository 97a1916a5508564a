/* Fuzz target: the CSV loader, without and with a label column. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_path(".csv");
  if (!fuzz_write(p, data, size)) return 0;
  sk_csv_options opt = sk_csv_options_default();
  sk_tensor *x = NULL, *y = NULL;
  if (sk_csv_load(p, &opt, &x, NULL) == SK_OK) sk_tensor_free(x);
  opt.label_column = 0;
  x = NULL;
  if (sk_csv_load(p, &opt, &x, &y) == SK_OK) {
    sk_tensor_free(x);
    sk_tensor_free(y);
  }
  return 0;
}
