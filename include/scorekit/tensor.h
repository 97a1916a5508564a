/* scorekit tensors: dense float32 arrays in numpy dimension order (shape[0]
 * outermost, row-major), as in .npy, safetensors and PyTorch. */
#ifndef SCOREKIT_TENSOR_H
#define SCOREKIT_TENSOR_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_MAX_DIMS 4

typedef struct sk_tensor sk_tensor;

/* A new zero-filled tensor of the given shape (0 <= ndim <= SK_MAX_DIMS, every
 * dimension >= 0). Returns NULL with sk_last_error() set on failure. Free with
 * sk_tensor_free. */
SK_API sk_tensor *sk_tensor_new(int ndim, const int64_t *shape);
/* A copy of `t` (NULL on failure). */
SK_API sk_tensor *sk_tensor_clone(const sk_tensor *t);
SK_API void sk_tensor_free(sk_tensor *t);

/* The accessors below on a NULL tensor return 0 or NULL, with
 * sk_last_error() set. */
SK_API int sk_tensor_ndim(const sk_tensor *t);
/* Borrowed; valid while `t` lives. */
SK_API const int64_t *sk_tensor_shape(const sk_tensor *t);
SK_API int64_t sk_tensor_numel(const sk_tensor *t);
/* Borrowed; numel floats, valid while `t` lives. */
SK_API float *sk_tensor_data(sk_tensor *t);
SK_API const float *sk_tensor_cdata(const sk_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
