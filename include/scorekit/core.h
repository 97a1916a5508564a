/* scorekit core: status codes, the last-error message, the version, threads
 * and allocation hooks. Every fallible call in scorekit returns an sk_status. */
#ifndef SCOREKIT_CORE_H
#define SCOREKIT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SK_BUILDING)
#define SK_API __attribute__((visibility("default")))
#else
#define SK_API
#endif

/* One list generates the enum and sk_status_str() (libuv's UV_ERRNO_MAP). */
#define SK_STATUS_MAP(X)                                   \
  X(OK, "ok")                                              \
  X(ERR_INVALID, "invalid argument")                       \
  X(ERR_SHAPE, "shape mismatch")                           \
  X(ERR_NOMEM, "out of memory")                            \
  X(ERR_IO, "i/o error")                                   \
  X(ERR_FORMAT, "malformed input")                         \
  X(ERR_UNSUPPORTED, "unsupported")                        \
  X(ERR_NUMERIC, "non-finite value")                       \
  X(ERR_STATE, "invalid state")

typedef enum sk_status {
#define SK__STATUS_ENUM(name, msg) SK_##name,
  SK_STATUS_MAP(SK__STATUS_ENUM)
#undef SK__STATUS_ENUM
  SK_STATUS_COUNT
} sk_status;

/* A static string naming the status code. */
SK_API const char *sk_status_str(sk_status s);

/* The message of the last failure on this thread, with context (file, offset,
 * expected vs got). Valid until the next failing scorekit call on this thread;
 * "" when nothing has failed. */
SK_API const char *sk_last_error(void);

/* Record a failure message for this thread and return `s` (for callers that
 * build on scorekit and want to report through the same channel). */
SK_API sk_status sk_set_error(sk_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The version of the library loaded, "MAJOR.MINOR.PATCH": equal to
 * SK_VERSION_STRING when it is the library these headers came with. */
SK_API const char *sk_version(void);

/* Number of threads scorekit's kernels use (OpenMP). n <= 0 restores the
 * default (OMP_NUM_THREADS or the number of cores). Results are the same bits
 * whatever this is. */
SK_API void sk_set_num_threads(int n);
SK_API int sk_get_num_threads(void);

/* Test hooks on the library's own heap allocations: the number made so far
 * on all threads, and a countdown after which every allocation fails (-1 = never). */
SK_API uint64_t sk_debug_alloc_count(void);
SK_API void sk_debug_fail_alloc_after(int64_t n);

#ifdef __cplusplus
}
#endif
#endif
