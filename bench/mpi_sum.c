/* The cost of data-parallel training's gradient sum alone: the fixed-order
 * sum of `scorekit train` under MPI (tools/cli/mpi.c: a reduce-scatter by
 * segments summed in rank order, then an all-gather) against MPI_Allreduce,
 * on buffers the size of the models scorekit trains. Built only with MPI;
 * run by bench/mpi.sh as `mpirun -np R mpi_sum N...`. Prints, from rank 0,
 * lines `SUM FLOATS fixed|allreduce MEDIAN_US MIN_US`, and checks that both
 * give the same sum to float rounding and that the fixed one gives every
 * rank the same bits. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_mpi.h"

enum { REPEATS = 41 };

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One size: REPEATS timed sums of each kind after 3 untimed ones. */
static int measure(size_t n, const sk_train_share *share) {
  float *base = malloc(n * sizeof(float)), *buf = malloc(n * sizeof(float)),
        *ref = malloc(n * sizeof(float)), *first = malloc(n * sizeof(float));
  if (!base || !buf || !ref || !first) return 0;
  const int rank = cli_mpi_rank();
  for (size_t i = 0; i < n; i++) base[i] = sinf((float)(i + 1) * (float)(rank + 1)) * 1e-3f;
  double t[2][REPEATS];
  for (int kind = 0; kind < 2; kind++)
    for (int r = -3; r < REPEATS; r++) {
      memcpy(buf, base, n * sizeof(float));
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      if (kind == 0) {
        if (share->reduce(share->ctx, buf, n) != SK_OK) return 0;
      } else {
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      }
      const double dt = MPI_Wtime() - t0;
      if (r >= 0) t[kind][r] = dt;
      if (kind == 0 && r == -3) memcpy(first, buf, n * sizeof(float));
      if (kind == 0 && memcmp(first, buf, n * sizeof(float)) != 0) {
        fprintf(stderr, "mpi_sum: the fixed-order sum changed between calls\n");
        return 0;
      }
      if (kind == 1) memcpy(ref, buf, n * sizeof(float));
    }
  /* Every rank holds rank 0's bits (fixed), and the sums agree. */
  double diff = 0;
  for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs((double)first[i] - (double)ref[i]));
  memcpy(buf, first, n * sizeof(float));
  MPI_Bcast(buf, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
  const int same = memcmp(buf, first, n * sizeof(float)) == 0;
  int all_same = 0;
  MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all_same || diff > 1e-6) {
    fprintf(stderr, "mpi_sum: %zu floats: ranks differ (%d) or the sums differ by %g\n", n,
            !all_same, diff);
    return 0;
  }
  for (int kind = 0; kind < 2 && rank == 0; kind++) {
    qsort(t[kind], REPEATS, sizeof(double), cmp_double);
    printf("SUM %zu %s %.1f %.1f\n", n, kind ? "allreduce" : "fixed", 1e6 * t[kind][REPEATS / 2],
           1e6 * t[kind][0]);
  }
  free(base);
  free(buf);
  free(ref);
  free(first);
  return 1;
}

int main(int argc, char **argv) {
  cli_mpi_init(&argc, &argv);
  sk_train_share sb;
  const sk_train_share *share = NULL;
  if (cli_mpi_size() < 2 || !cli_mpi_share(cli_mpi_size(), &sb, &share) || !share) {
    fprintf(stderr, "usage: mpirun -np R mpi_sum FLOATS... (R >= 2)\n");
    return cli_mpi_end(2);
  }
  for (int i = 1; i < argc; i++) {
    const long long n = atoll(argv[i]);
    if (n < 1 || n > (1LL << 30) || !measure((size_t)n, share)) return cli_mpi_end(1);
  }
  MPI_Finalize(); /* not cli_mpi_end: it reports a training run's sums */
  return 0;
}
