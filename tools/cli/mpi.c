/* MPI for `scorekit train`, `sample`, `likelihood` and `inpaint` (see
 * cli_mpi.h): who this process is, the gradient sum of data-parallel
 * training, the gathering of each rank's rows, sums of counts, and an end of
 * the job that never leaves a rank waiting. */
#define _POSIX_C_SOURCE 200809L
#include "cli_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static int rank, size = 1, started;
static char tag[48];

/* The variables MPI launchers set in the processes they start: Open MPI's
 * mpirun, and the PMI and PMIx of MPICH's hydra and of Slurm's srun. */
static int launched_by_mpi(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    if (getenv(vars[i])) return 1;
  return 0;
}

static const char *mpi_error(int code) {
  static char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
    snprintf(text, sizeof text, "error %d", code);
  return text;
}

/* For the paths that return from main without cli_mpi_end (--help, an
 * unknown command): every rank takes the same one, so all finalize. */
static void finalize_at_exit(void) {
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}

void cli_mpi_init(int *argc, char ***argv) {
  if (!launched_by_mpi()) return;
  int provided = 0;
  /* Only the thread that calls scorekit calls MPI. */
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    fprintf(stderr, "scorekit: MPI_Init failed\n");
    exit(1);
  }
  started = 1;
  atexit(finalize_at_exit);
  /* Errors come back to be reported with what was being done. */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) snprintf(tag, sizeof tag, " (rank %d of %d)", rank, size);
  /* One report of the run: rank 0's. Errors (stderr) come from any rank. */
  if (rank > 0 && !freopen("/dev/null", "w", stdout)) fclose(stdout);
}

int cli_mpi_rank(void) { return rank; }
int cli_mpi_size(void) { return size; }
const char *cli_mpi_tag(void) { return tag; }

/* ---- the gradient sum ---- */

/* The sum is a reduce-scatter and an all-gather: rank k sums segment k of
 * the buffer over the ranks, in rank order, and every rank gathers every
 * segment. Each element is summed once, always as ((b0 + b1) + b2) + ..., so
 * every rank gets the same bits, and every run with the same ranks too
 * (MPI_Allreduce's order depends on the implementation and the message
 * size). Each rank sends and receives about 2n floats, as a ring
 * all-reduce does. */
typedef struct reducer {
  size_t n;
  int *counts, *displs; /* segment k: counts[k] floats at displs[k] */
  int *mine_counts, *mine_displs; /* R copies of this rank's segment */
  float *recv;
  double seconds, first, last;
  long long calls;
} reducer;

static reducer red;

static void segment(size_t n, int k, size_t *a, size_t *b) {
  *a = n * (size_t)k / (size_t)size;
  *b = n * (size_t)(k + 1) / (size_t)size;
}

static sk_status reducer_prepare(reducer *r, size_t n) {
  if (r->n == n) return SK_OK;
  if (n > INT_MAX)
    return sk_set_error(SK_ERR_INVALID, "MPI: a gradient of %zu floats is beyond the %d floats "
                        "of one message", n, INT_MAX);
  size_t a, b;
  segment(n, rank, &a, &b);
  free(r->counts);
  free(r->recv);
  r->counts = malloc(4 * (size_t)size * sizeof(int));
  r->recv = malloc(MAX(1, (b - a) * (size_t)size) * sizeof(float));
  if (!r->counts || !r->recv) {
    r->n = 0;
    return sk_set_error(SK_ERR_NOMEM, "MPI: out of memory for the gradient sum");
  }
  r->displs = r->counts + size;
  r->mine_counts = r->displs + size;
  r->mine_displs = r->mine_counts + size;
  for (int k = 0; k < size; k++) {
    size_t ka, kb;
    segment(n, k, &ka, &kb);
    r->counts[k] = (int)(kb - ka);
    r->displs[k] = (int)ka;
    r->mine_counts[k] = (int)(b - a);
    r->mine_displs[k] = k * (int)(b - a);
  }
  r->n = n;
  return SK_OK;
}

static sk_status reduce_sum(void *ctx, float *buf, size_t n) {
  reducer *r = ctx;
  sk_status st = reducer_prepare(r, n);
  if (st != SK_OK) return st;
  const double t0 = MPI_Wtime();
  int e = MPI_Alltoallv(buf, r->counts, r->displs, MPI_FLOAT, r->recv, r->mine_counts,
                        r->mine_displs, MPI_FLOAT, MPI_COMM_WORLD);
  if (e != MPI_SUCCESS)
    return sk_set_error(SK_ERR_IO, "MPI: the gradient sum (all-to-all) failed: %s", mpi_error(e));
  const size_t m = (size_t)r->mine_counts[0];
  float *out = buf + r->displs[rank];
  memcpy(out, r->recv, m * sizeof(float));
  for (int k = 1; k < size; k++) {
    const float *in = r->recv + (size_t)k * m;
    for (size_t i = 0; i < m; i++) out[i] += in[i];
  }
  e = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, buf, r->counts, r->displs, MPI_FLOAT,
                     MPI_COMM_WORLD);
  if (e != MPI_SUCCESS)
    return sk_set_error(SK_ERR_IO, "MPI: the gradient sum (all-gather) failed: %s", mpi_error(e));
  const double t1 = MPI_Wtime();
  r->seconds += t1 - t0;
  if (r->calls++ == 0) r->first = t1;
  r->last = t1;
  return SK_OK;
}

int cli_mpi_share(int batch, sk_train_share *share, const sk_train_share **out) {
  *out = NULL;
  if (size == 1) return 1;
  if (batch < size)
    return !cli_fail("--batch-size %d: fewer rows than the %d ranks (each computes a share of "
                     "every batch)", batch, size);
  /* Rows [k·B/R, (k+1)·B/R): shares differ by at most one row. */
  const int a = (int)((long long)batch * rank / size);
  const int b = (int)((long long)batch * (rank + 1) / size);
  *share = (sk_train_share){a, b - a, reduce_sum, &red};
  *out = share;
  return 1;
}

int cli_mpi_max(int v) {
  if (size == 1) return v;
  int all = v;
  const int e = MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (e != MPI_SUCCESS) {
    cli_fail("MPI: an agreement between the ranks failed: %s", mpi_error(e));
    return cli_mpi_end(1);
  }
  return all;
}

void cli_mpi_sum(int64_t *v, int n) {
  if (size == 1) return;
  const int e = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  if (e != MPI_SUCCESS) {
    cli_fail("MPI: a sum over the ranks failed: %s", mpi_error(e));
    cli_mpi_end(1);
  }
}

sk_status cli_mpi_save(sk_trainer *t, const char *dir, const sk_model_info *info) {
  const sk_status st = rank == 0 ? sk_trainer_save(t, dir, info) : SK_OK;
  /* Every rank waits for the checkpoint and learns whether it was written. */
  if (cli_mpi_max(st != SK_OK) && rank != 0)
    return sk_set_error(SK_ERR_IO, "rank 0 could not write the checkpoint in %s", dir);
  return st;
}

/* ---- sampling ---- */

/* A run of `blocks` blocks of n rows (--class all: a block a class), each in
 * chunks of `chunk` rows, C a block: rank k takes the (block, chunk) pairs
 * [⌈k·P/R⌉, ⌈(k+1)·P/R⌉) of P = blocks·C, in order, so that rank 0 always
 * has block 0's chunk 0 (the one a trajectory follows) and every rank a
 * share of the chunks however few each block has. */
static void pairs_of(int k, int64_t blocks, int64_t n, int64_t chunk, int64_t *a, int64_t *b) {
  const int64_t pairs = blocks * ((n + chunk - 1) / chunk);
  *a = (pairs * k + size - 1) / size;
  *b = (pairs * (k + 1) + size - 1) / size;
}

/* Rank k's rows of block `blk`: [*first, *first + *count) in the block, count
 * 0 (at a chunk's start) where it has none of its chunks. */
static void rows_of(int k, int64_t blocks, int64_t n, int64_t chunk, int64_t blk, int64_t *first,
                    int64_t *count) {
  const int64_t per = (n + chunk - 1) / chunk;
  int64_t a, b;
  pairs_of(k, blocks, n, chunk, &a, &b);
  const int64_t c0 = MIN(per, MAX(0, a - blk * per)), c1 = MIN(per, MAX(0, b - blk * per));
  *first = MIN(n, c0 * chunk);
  *count = c1 > c0 ? MIN(n, c1 * chunk) - *first : 0;
}

/* The row of the whole run where pair p starts (the run's end for P). */
static int64_t pair_row(int64_t p, int64_t n, int64_t chunk) {
  const int64_t per = (n + chunk - 1) / chunk;
  return p / per * n + MIN(n, p % per * chunk);
}

void cli_mpi_rows(int64_t n, int64_t chunk, int64_t *first, int64_t *count) {
  rows_of(rank, 1, n, chunk, 0, first, count);
}

void cli_mpi_block_rows(int64_t blocks, int64_t n, int64_t chunk, int64_t blk, int64_t *first,
                        int64_t *count) {
  rows_of(rank, blocks, n, chunk, blk, first, count);
}

/* Rows of d values of `bytes` each (MPI type `type`) of a run of `blocks`
 * blocks of n rows gathered as cli_mpi_gather_rows says: each rank's pairs
 * are one run of rows of the whole. */
static int gather(void *x, int64_t blocks, int64_t n, int d, int64_t chunk, MPI_Datatype type,
                  size_t bytes) {
  if (size == 1) return 1;
  /* Point to point, rank by rank, in messages of at most 2^30 values. */
  const int64_t piece = INT64_C(1) << 30;
  for (int k = 1; k < size; k++) {
    if (rank != 0 && rank != k) continue;
    int64_t a, b;
    pairs_of(k, blocks, n, chunk, &a, &b);
    const int64_t first = pair_row(a, n, chunk), count = pair_row(b, n, chunk) - first;
    char *at = (char *)x + (size_t)(first * d) * bytes;
    for (int64_t done = 0, all = count * d; done < all; done += piece) {
      const int len = (int)MIN(piece, all - done);
      char *from = at + (size_t)done * bytes;
      const int e = rank == 0 ? MPI_Recv(from, len, type, k, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE)
                              : MPI_Send(from, len, type, 0, 0, MPI_COMM_WORLD);
      if (e != MPI_SUCCESS)
        return !cli_fail("MPI: %s rank %d's rows failed: %s", rank == 0 ? "receiving" : "sending",
                         k, mpi_error(e));
    }
  }
  return 1;
}

int cli_mpi_gather_rows(float *x, int64_t n, int d, int64_t chunk) {
  return gather(x, 1, n, d, chunk, MPI_FLOAT, sizeof *x);
}

int cli_mpi_gather_blocks(float *x, int64_t blocks, int64_t n, int d, int64_t chunk) {
  return gather(x, blocks, n, d, chunk, MPI_FLOAT, sizeof *x);
}

int cli_mpi_gather_values(double *v, int64_t n, int64_t chunk) {
  return gather(v, 1, n, 1, chunk, MPI_DOUBLE, sizeof *v);
}

/* ---- the end ---- */

int cli_mpi_end(int rc) {
  if (!started) return rc;
  if (rc != 0 && size > 1) {
    fprintf(stderr, "scorekit%s: this rank failed; ending the job\n", tag);
    fflush(stderr);
    fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, rc);
  }
  if (rc == 0 && rank == 0 && red.calls > 1) {
    const double step = (red.last - red.first) / (double)(red.calls - 1);
    printf("MPI: %d ranks; the gradient sum (%zu floats) took %.3f ms of each %.3f ms step "
           "(%.1f%%)\n", size, red.n, 1e3 * red.seconds / (double)red.calls, 1e3 * step,
           100 * red.seconds / (double)red.calls / step);
  }
  fflush(stdout);
  MPI_Finalize();
  return rc;
}
