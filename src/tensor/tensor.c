/* Dense float32 tensors: a shape and an owned buffer. */
#include <string.h>

#include "core/internal.h"
#include "scorekit/tensor.h"

struct sk_tensor {
  int ndim;
  int64_t shape[SK_MAX_DIMS];
  int64_t numel;
  float *data;
};

sk_tensor *sk_tensor_new(int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > SK_MAX_DIMS) {
    sk__fail(SK_ERR_INVALID, "tensor rank %d outside 0..%d", ndim, SK_MAX_DIMS);
    return NULL;
  }
  size_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || !sk__mul_size(numel, (size_t)shape[i], &numel)) {
      sk__fail(SK_ERR_INVALID, "tensor dimension %d is %lld", i, (long long)shape[i]);
      return NULL;
    }
  }
  size_t bytes;
  if (!sk__mul_size(numel, sizeof(float), &bytes) || numel > (size_t)INT64_MAX / 8) {
    sk__fail(SK_ERR_INVALID, "tensor of %zu elements is too large", numel);
    return NULL;
  }
  sk_tensor *t = sk__calloc(1, sizeof *t);
  float *data = t ? sk__calloc(numel ? numel : 1, sizeof(float)) : NULL;
  if (!data) {
    sk__free(t);
    sk__fail(SK_ERR_NOMEM, "out of memory for a tensor of %zu floats", numel);
    return NULL;
  }
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
  t->numel = (int64_t)numel;
  t->data = data;
  return t;
}

sk_tensor *sk_tensor_clone(const sk_tensor *t) {
  sk_tensor *c = sk_tensor_new(t->ndim, t->shape);
  if (c) memcpy(c->data, t->data, (size_t)t->numel * sizeof(float));
  return c;
}

void sk_tensor_free(sk_tensor *t) {
  if (!t) return;
  sk__free(t->data);
  sk__free(t);
}

int sk_tensor_ndim(const sk_tensor *t) { return t->ndim; }
const int64_t *sk_tensor_shape(const sk_tensor *t) { return t->shape; }
int64_t sk_tensor_numel(const sk_tensor *t) { return t->numel; }
float *sk_tensor_data(sk_tensor *t) { return t->data; }
const float *sk_tensor_cdata(const sk_tensor *t) { return t->data; }
