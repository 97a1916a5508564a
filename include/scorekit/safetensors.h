/* scorekit safetensors: named float32 tensors and string metadata in the
 * safetensors format (https://github.com/huggingface/safetensors), readable
 * by PyTorch, NumPy and the Hugging Face tools. */
#ifndef SCOREKIT_SAFETENSORS_H
#define SCOREKIT_SAFETENSORS_H

#include "core.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One tensor to save: a borrowed name and borrowed row-major float32 data of
 * shape[0] x ... x shape[ndim-1] elements (ndim 0 is a scalar). */
typedef struct sk_named_tensor {
  const char *name;
  int ndim;
  int64_t shape[SK_MAX_DIMS];
  const float *data;
} sk_named_tensor;

/* Writes the n tensors to `path` as "F32" in the given order, and string
 * metadata given as n_meta key/value pairs (meta[2i] is a key, meta[2i+1] its
 * value; meta may be NULL when n_meta is 0) under "__metadata__". Names, keys
 * and values must be UTF-8. The file replaces `path` atomically (temporary
 * file, fsync, rename): on any failure no file and no temporary is left; a
 * symbolic link is followed and a destination that is not a regular file
 * refused (see "Files" in io.h).
 * Errors: SK_ERR_INVALID for an empty, duplicate or "__metadata__" name, a
 * duplicate metadata key, a rank outside 0..SK_MAX_DIMS, a negative dimension
 * or NULL data for a non-empty tensor; SK_ERR_NUMERIC naming the tensor for a
 * NaN or infinite element (the loader rejects them); SK_ERR_IO; SK_ERR_NOMEM.
 * Nothing is written on any error. */
SK_API sk_status sk_safetensors_save(const char *path, const sk_named_tensor *t, int n,
                                     const char *const *meta, int n_meta);

typedef struct sk_safetensors sk_safetensors;

/* Loads and validates the whole file at `path`: the header length (at most
 * 100 MB and at most the file size - 8), the JSON header (an object starting
 * with '{', trailing spaces allowed), every entry's dtype ("F32", "F64",
 * "F16" or "BF16", converted to float32), shape (rank <= SK_MAX_DIMS,
 * non-negative integers) and data_offsets (inside the buffer, byte size =
 * elements x dtype size), offsets that tile the buffer without overlap, hole
 * or trailing bytes, and string-only "__metadata__". Any NaN or infinite value
 * (also an F64 too large for float32) is rejected, naming the tensor.
 * On success *out owns everything (free with sk_safetensors_free); on failure
 * *out is NULL and the message names the path and the problem.
 * Errors: SK_ERR_IO (cannot open or read; not a regular file, a FIFO refused
 * before any read could wait on it), SK_ERR_FORMAT (malformed),
 * SK_ERR_UNSUPPORTED (another dtype such as I64), SK_ERR_NUMERIC, SK_ERR_NOMEM. */
SK_API sk_status sk_safetensors_load(const char *path, sk_safetensors **out);
/* Frees st and every tensor and string borrowed from it; NULL is a no-op. */
SK_API void sk_safetensors_free(sk_safetensors *st);

/* Number of tensors. */
SK_API int sk_safetensors_count(const sk_safetensors *st);
/* Name of tensor i (0 <= i < count) in file order, that is by data offset;
 * NULL when i is out of range. Borrowed until sk_safetensors_free. */
SK_API const char *sk_safetensors_name(const sk_safetensors *st, int i);
/* The tensor called `name` in *out, borrowed until sk_safetensors_free.
 * SK_ERR_INVALID naming the tensor and the file when there is none. */
SK_API sk_status sk_safetensors_get(const sk_safetensors *st, const char *name,
                                    const sk_tensor **out);
/* The metadata value stored under `key`, or NULL when there is none.
 * Borrowed until sk_safetensors_free. */
SK_API const char *sk_safetensors_meta(const sk_safetensors *st, const char *key);
/* Number of metadata pairs, and pair i in key order (NULL when out of range);
 * borrowed until sk_safetensors_free. */
SK_API int sk_safetensors_meta_count(const sk_safetensors *st);
SK_API const char *sk_safetensors_meta_key(const sk_safetensors *st, int i);

#ifdef __cplusplus
}
#endif
#endif
