/* Fuzz target: the safetensors loader and, on what it accepts, the model
 * loader (the JSON config in the metadata, tensor names and shapes). A file
 * loads with distinct, non-empty names, each tensor structurally valid and
 * finite, and its metadata readable by key; a model loads with a config in
 * range, tensors that tile its parameter buffer, finite weights and a noise
 * ladder of positive numbers. */
#include "fuzz_common.h"

static void check_file(const sk_safetensors *st) {
  const int n = sk_safetensors_count(st);
  if (n < 0) fuzz_fail("%d tensors", n);
  for (int i = 0; i < n; i++) {
    const char *name = sk_safetensors_name(st, i);
    if (!name || !*name) {
      fuzz_fail("tensor %d has no name", i);
      return;
    }
    for (int j = 0; j < i; j++)
      if (!strcmp(name, sk_safetensors_name(st, j))) fuzz_fail("tensors %d and %d are both \"%s\"", j, i, name);
    const sk_tensor *t = NULL;
    fuzz_clear_error();
    if (sk_safetensors_get(st, name, &t) != SK_OK) {
      fuzz_fail("tensor \"%s\" is listed but not found: %s", name, sk_last_error());
      return;
    }
    fuzz_check_tensor(name, t, -1);
  }
  if (sk_safetensors_name(st, n) != NULL) fuzz_fail("a name past the last tensor");
  for (int i = 0; i < sk_safetensors_meta_count(st); i++) {
    const char *key = sk_safetensors_meta_key(st, i);
    if (!key || !sk_safetensors_meta(st, key)) fuzz_fail("metadata pair %d cannot be read back", i);
  }
}

static void check_model(const char *what, sk_model *m, const sk_model_info *info) {
  const sk_model_config *c = sk_model_get_config(m);
  if (!c || (unsigned)c->kind >= SK_MODEL_KIND_COUNT || (unsigned)c->act >= SK_ACT_COUNT ||
      c->dim < 1 || c->hidden < 1 || c->depth < 1) {
    fuzz_fail("%s: a config out of range", what);
    return;
  }
  const size_t np = sk_model_num_params(m);
  size_t at = 0;
  for (int i = 0; i < sk_model_num_tensors(m); i++) {
    int64_t numel = 1;
    for (int k = 0; k < sk_model_tensor_ndim(m, i); k++) numel *= sk_model_tensor_shape(m, i)[k];
    if (sk_model_tensor_offset(m, i) != at)
      fuzz_fail("%s: tensor %d starts at %zu, not %zu", what, i, sk_model_tensor_offset(m, i), at);
    at += (size_t)numel;
  }
  if (np == 0 || at != np) fuzz_fail("%s: tensors of %zu floats in a buffer of %zu", what, at, np);
  const float *w = sk_model_params(m);
  for (size_t i = 0; i < np; i++)
    if (!isfinite(w[i])) {
      fuzz_fail("%s: weight %zu is %g", what, i, w[i]);
      break;
    }
  if (info->n_sigmas < 0 || info->n_sigmas > SK_MAX_LEVELS) fuzz_fail("%s: %d noise levels", what, info->n_sigmas);
  for (int i = 0; i < info->n_sigmas && i < SK_MAX_LEVELS; i++)
    if (!(info->sigmas[i] > 0) || !isfinite(info->sigmas[i])) {
      fuzz_fail("%s: sigmas[%d] is %g", what, i, info->sigmas[i]);
      break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = fuzz_path(".safetensors");
  if (!fuzz_write(p, data, size)) return 0;
  sk_safetensors *st = NULL;
  fuzz_clear_error();
  sk_status s = sk_safetensors_load(p, &st);
  if (!fuzz_outcome("sk_safetensors_load", s, p, 1)) {
    if (st) fuzz_fail("sk_safetensors_load failed and left a file object");
    return 0;
  }
  check_file(st);
  sk_safetensors_free(st);
  for (int ema = 0; ema < 2; ema++) {
    sk_model *m = NULL;
    sk_model_info info;
    const char *what = ema ? "sk_model_load (EMA weights)" : "sk_model_load";
    fuzz_clear_error();
    s = sk_model_load(p, ema, &m, &info);
    if (fuzz_outcome(what, s, p, 0)) {
      if (m) check_model(what, m, &info);
      else fuzz_fail("%s succeeded without a model", what);
    } else if (m) {
      fuzz_fail("%s failed and left a model", what);
    }
    sk_model_free(m);
  }
  return 0;
}
