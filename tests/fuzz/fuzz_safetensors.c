/* Fuzz target: the safetensors loader and, on what it accepts, the model
 * loader (the JSON config in the metadata, tensor names and shapes). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_path(".safetensors");
  if (!fuzz_write(p, data, size)) return 0;
  sk_safetensors *st = NULL;
  if (sk_safetensors_load(p, &st) != SK_OK) return 0;
  for (int i = 0; i < sk_safetensors_count(st); i++) {
    const sk_tensor *t;
    if (sk_safetensors_get(st, sk_safetensors_name(st, i), &t) != SK_OK) abort();
  }
  sk_safetensors_free(st);
  sk_model *m = NULL;
  sk_model_info info;
  for (int ema = 0; ema < 2; ema++)
    if (sk_model_load(p, ema, &m, &info) == SK_OK) sk_model_free(m);
  return 0;
}
