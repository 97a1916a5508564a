/* Data-parallel `scorekit train`, `sample`, `likelihood` and `inpaint` over
 * MPI (tools/cli/mpi.c, built when CMake finds MPI: SK_WITH_MPI). libscorekit
 * knows nothing of MPI: the trainer takes a share of each batch and a
 * reduction callback (sk_trainer_new_share), the samplers, the likelihood and
 * inpainting a range of chunks (sk_langevin_rows, sk_likelihood_rows, ...).
 * Without MPI, or when the program was not started by an MPI launcher, this
 * is one process of rank 0 and every call below is trivial. */
#ifndef SK_CLI_CLI_MPI_H
#define SK_CLI_CLI_MPI_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "scorekit/scorekit.h"

#ifdef SK_WITH_MPI
/* MPI_Init when an MPI launcher started the program (mpirun, mpiexec, srun
 * with PMI or PMIx); ranks above 0 then print nothing on stdout. */
void cli_mpi_init(int *argc, char ***argv);
int cli_mpi_rank(void);
int cli_mpi_size(void);
/* "" on one process, " (rank K of R)" on several: the tag of error lines. */
const char *cli_mpi_tag(void);
/* The end of the program with exit code rc. On several processes, a
 * failure (rc != 0) ends the whole job at once (MPI_Abort, after the
 * message naming this rank), so that no other rank waits for it forever;
 * success waits for every rank (MPI_Finalize). */
int cli_mpi_end(int rc);
/* This rank's share of a batch of `batch` rows, the gradient summed over
 * the ranks in rank order (the same bits on every rank and in every run);
 * NULL on one process. A batch smaller than the number of ranks is an
 * error (0 after the message). */
int cli_mpi_share(int batch, sk_train_share *share, const sk_train_share **out);
/* The largest v over the ranks (every rank must call it). */
int cli_mpi_max(int v);
/* v[0..n) summed over the ranks, on every rank (every rank must call it). */
void cli_mpi_sum(int64_t *v, int n);
/* sk_trainer_save by rank 0 only; every rank returns once the checkpoint
 * is complete (so none ends the job in the middle of it), with rank 0's
 * failure as its own. */
sk_status cli_mpi_save(sk_trainer *t, const char *dir, const sk_model_info *info);
/* The chunks of n rows (of `chunk` rows each) that this rank samples:
 * rows [*first, *first + *count). */
void cli_mpi_rows(int64_t n, int64_t chunk, int64_t *first, int64_t *count);
/* x (n, d) holds this rank's rows (cli_mpi_rows with the same chunk) in
 * place: rank 0 receives every other rank's into x, the others send theirs.
 * 0 after a message on failure. */
int cli_mpi_gather_rows(float *x, int64_t n, int d, int64_t chunk);
/* The same for one double a row (v (n)). */
int cli_mpi_gather_values(double *v, int64_t n, int64_t chunk);
/* A run of `blocks` blocks of n rows each (--class all: a block a class),
 * each in chunks: the (block, chunk) pairs split over the ranks in order,
 * so that a block of one chunk still spreads the work. This rank's rows of
 * block blk ([*first, *first + *count) in it, count 0 for none), and the
 * gathering of x (blocks·n, d) to rank 0. */
void cli_mpi_block_rows(int64_t blocks, int64_t n, int64_t chunk, int64_t blk, int64_t *first,
                        int64_t *count);
int cli_mpi_gather_blocks(float *x, int64_t blocks, int64_t n, int d, int64_t chunk);
#else
/* Started as one of several processes by a launcher, this build would run
 * the whole job in each of them: refused. */
static inline void cli_mpi_init(int *argc, char ***argv) {
  (void)argc, (void)argv;
  static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
  for (int i = 0; i < 2; i++) {
    const char *v = getenv(sizes[i]);
    if (v && atoi(v) > 1) {
      fprintf(stderr, "scorekit: started as one of %s processes (%s), but built without MPI: "
              "rebuild with MPI (libopenmpi-dev, SK_WITH_MPI) to split a run over them\n", v,
              sizes[i]);
      exit(2);
    }
  }
}
static inline int cli_mpi_rank(void) { return 0; }
static inline int cli_mpi_size(void) { return 1; }
static inline const char *cli_mpi_tag(void) { return ""; }
static inline int cli_mpi_end(int rc) { return rc; }
static inline int cli_mpi_share(int batch, sk_train_share *share, const sk_train_share **out) {
  (void)batch, (void)share;
  *out = NULL;
  return 1;
}
static inline int cli_mpi_max(int v) { return v; }
static inline void cli_mpi_sum(int64_t *v, int n) { (void)v, (void)n; }
static inline sk_status cli_mpi_save(sk_trainer *t, const char *dir, const sk_model_info *info) {
  return sk_trainer_save(t, dir, info);
}
static inline void cli_mpi_rows(int64_t n, int64_t chunk, int64_t *first, int64_t *count) {
  (void)chunk;
  *first = 0;
  *count = n;
}
static inline int cli_mpi_gather_rows(float *x, int64_t n, int d, int64_t chunk) {
  (void)x, (void)n, (void)d, (void)chunk;
  return 1;
}
static inline int cli_mpi_gather_values(double *v, int64_t n, int64_t chunk) {
  (void)v, (void)n, (void)chunk;
  return 1;
}
static inline void cli_mpi_block_rows(int64_t blocks, int64_t n, int64_t chunk, int64_t blk,
                                      int64_t *first, int64_t *count) {
  (void)blocks, (void)chunk, (void)blk;
  *first = 0;
  *count = n;
}
static inline int cli_mpi_gather_blocks(float *x, int64_t blocks, int64_t n, int d,
                                        int64_t chunk) {
  (void)x, (void)blocks, (void)n, (void)d, (void)chunk;
  return 1;
}
#endif

#endif
