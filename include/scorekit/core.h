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
 * expected vs got), on one line: control characters it quotes are written as
 * \n, \r, \t or \xHH. Valid until the next failing scorekit call on this
 * thread; "" when nothing has failed. */
SK_API const char *sk_last_error(void);

/* Record a failure message for this thread and return `s` (for callers that
 * build on scorekit and want to report through the same channel). */
SK_API sk_status sk_set_error(sk_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The version of the library loaded, "MAJOR.MINOR.PATCH": equal to
 * SK_VERSION_STRING when it is the library these headers came with. */
SK_API const char *sk_version(void);

/* Threads.
 *
 * scorekit parallelises its own work with OpenMP: each call that has enough
 * work starts one team of threads, which ends before the call returns.
 * sk_set_num_threads(n) sets the size of those teams for the whole library,
 * from any thread, from the next team started on (a call already running
 * keeps its team). n <= 0 (the default) leaves the size to OpenMP, as seen
 * by the thread that calls scorekit: OMP_NUM_THREADS, the application's
 * omp_set_num_threads(), or the number of cores. scorekit never changes the
 * application's OpenMP settings. Results are the same bits whatever the
 * number of threads. sk_get_num_threads() is the size the calling thread's
 * next team would have.
 *
 * What may be shared between threads:
 * - Functions that take no object (sk_status_str, sk_version, the random
 *   number functions on distinct sk_rng values, sk_gmm_builtin, the file
 *   loaders and writers on distinct paths, ...) may be called from any
 *   number of threads at once.
 * - sk_last_error() and sk_set_error() are per thread: a failure is read
 *   on the thread whose call failed.
 * - sk_set_num_threads, sk_get_num_threads and the allocation hooks below
 *   may be called from any thread at any time.
 * - An object (sk_graph, sk_model, sk_trainer, sk_dataset, sk_score_fn,
 *   sk_loss_graph, sk_tensor, sk_safetensors, sk_gmm, an sk_rng) may be used
 *   by one thread at a time; distinct objects may be used from distinct
 *   threads at once. Functions that take the object as a const pointer only
 *   read it, and may run at once on several threads while no thread changes
 *   it. In particular a compiled graph must not be run from two threads at
 *   once: a run writes the graph's own buffers; compile one graph per thread.
 * - Objects that refer to others count as one object with them: a score
 *   function and a loss graph use their model, a trainer its model and
 *   dataset, a graph the memory given to sk_param and sk_graph_bind. Do not
 *   train a model on one thread while another samples with it.
 * - A callback given to sk_graph_run_then is called on every thread of the
 *   run's team at once, with that thread's number.
 *
 * Each call from each application thread may start its own team: k threads
 * calling scorekit at once use up to k * sk_get_num_threads() threads, so
 * an application that runs scorekit on several threads of its own usually
 * wants sk_set_num_threads(1). Called from inside an OpenMP parallel region
 * of the application, a graph runs on the calling thread alone. */
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
