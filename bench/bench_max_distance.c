/* The default σ_max of a run on Fashion-MNIST (docs/MATH.md, "The noise
 * ladder"): the time and value of sk_dataset_max_distance on the 60,000
 * training images (an evenly spaced subsample: all of them are over its
 * budget), against an exact pass over every pair with the same pruning, run
 * here on one thread. Needs Debian's dataset-fashion-mnist (exit 77 without).
 *
 *   OMP_NUM_THREADS=1 build/bench_max_distance */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "scorekit/scorekit.h"

#define IMAGES "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct row {
  double r;
  long i;
} row;

static int by_radius(const void *pa, const void *pb) {
  const row *a = pa, *b = pb;
  if (a->r != b->r) return a->r > b->r ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}

/* Every pair of the n rows, skipping those whose radii about the centroid
 * cannot beat the largest distance found (the library's pruning), serially.
 * *pairs gets how many distances it computed. */
static double exact(const float *x, long n, int d, long *pairs) {
  double *c = calloc((size_t)d, sizeof *c);
  row *o = malloc((size_t)n * sizeof *o);
  for (long k = 0; k < n; k++)
    for (int j = 0; j < d; j++) c[j] += x[k * d + j] / (double)n;
  for (long k = 0; k < n; k++) {
    double s = 0;
    for (int j = 0; j < d; j++) s += (x[k * d + j] - c[j]) * (x[k * d + j] - c[j]);
    o[k] = (row){sqrt(s), k};
  }
  qsort(o, (size_t)n, sizeof *o, by_radius);
  double best = 0;
  *pairs = 0;
  for (long a = 0; a < n; a++) {
    const double ra = o[a].r * (1 + 1e-9);
    if (4 * ra * ra < best) break;
    for (long b = a + 1; b < n; b++) {
      const double bound = ra + o[b].r * (1 + 1e-9);
      if (bound * bound < best) break;
      double s = 0;
      for (int j = 0; j < d; j++) {
        const double t = (double)x[o[a].i * d + j] - x[o[b].i * d + j];
        s += t * t;
      }
      ++*pairs;
      if (s > best) best = s;
    }
  }
  free(c);
  free(o);
  return sqrt(best);
}

int main(void) {
  sk_tensor *x = NULL;
  sk_dataset *ds = NULL;
  if (sk_idx_load(IMAGES, &x, NULL) != SK_OK) {
    fprintf(stderr, "skipped: %s\n", sk_last_error());
    return 77;
  }
  if (sk_dataset_new_images(x, NULL, 255.0f, &ds) != SK_OK) {
    fprintf(stderr, "%s\n", sk_last_error());
    return 1;
  }
  const long n = (long)sk_dataset_size(ds);
  const int d = sk_dataset_dim(ds);
  double far = 0;
  int64_t rows = 0;
  double t0 = now();
  if (sk_dataset_max_distance(ds, &far, &rows) != SK_OK) {
    fprintf(stderr, "%s\n", sk_last_error());
    return 1;
  }
  printf("sk_dataset_max_distance: %.4f over %lld of the %ld rows of %d values in %.3f s\n", far,
         (long long)rows, n, d, now() - t0);
  long pairs = 0;
  t0 = now();
  const double all = exact(sk_dataset_x(ds), n, d, &pairs);
  printf("exact over all %ld rows (one thread): %.4f, %ld of the %.3g pairs computed, in %.2f s\n",
         n, all, pairs, (double)n * (double)(n - 1) / 2, now() - t0);
  sk_dataset_free(ds);
  return 0;
}
