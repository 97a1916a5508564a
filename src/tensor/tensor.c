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
  if (ndim > 0 && !shape) {
    sk__fail(SK_ERR_INVALID, "sk_tensor_new: NULL shape for rank %d", ndim);
    return NULL;
  }
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0) {
      sk__fail(SK_ERR_INVALID, "tensor dimension %d is %lld", i, (long long)shape[i]);
      return NULL;
    }
  const int64_t count = sk__shape_numel(ndim, shape);
  if (count < 0) {
    char s[128];
    sk__shape_str(s, sizeof s, ndim, shape);
    sk__fail(SK_ERR_INVALID,
             "tensor of shape %s is too large: its nonzero dimensions multiply to 2^60 or more", s);
    return NULL;
  }
  const size_t numel = (size_t)count;
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

/* A query on a NULL tensor: the error, and the caller returns 0 or NULL. */
static int no_tensor(const char *fn) {
  sk__fail(SK_ERR_INVALID, "%s: NULL tensor", fn);
  return 0;
}

sk_tensor *sk_tensor_clone(const sk_tensor *t) {
  if (!t) return no_tensor(__func__), NULL;
  sk_tensor *c = sk_tensor_new(t->ndim, t->shape);
  if (c) memcpy(c->data, t->data, (size_t)t->numel * sizeof(float));
  return c;
}

void sk_tensor_free(sk_tensor *t) {
  if (!t) return;
  sk__free(t->data);
  sk__free(t);
}

int sk_tensor_ndim(const sk_tensor *t) { return t ? t->ndim : no_tensor(__func__); }
const int64_t *sk_tensor_shape(const sk_tensor *t) {
  return t ? t->shape : (no_tensor(__func__), NULL);
}
int64_t sk_tensor_numel(const sk_tensor *t) { return t ? t->numel : no_tensor(__func__); }
float *sk_tensor_data(sk_tensor *t) { return t ? t->data : (no_tensor(__func__), NULL); }
const float *sk_tensor_cdata(const sk_tensor *t) {
  return t ? t->data : (no_tensor(__func__), NULL);
}
