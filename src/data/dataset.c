/* An in-memory data set: rows (or images seen as flattened rows), optional
 * integer labels, and reproducible shuffled mini-batches whose position can be
 * saved and restored. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "scorekit/data.h"

/* Labels travel as floats; above 2^24 they would no longer be exact integers. */
#define DATASET_MAX_LABEL (1 << 24)
#define DATASET_SIGMA_ROWS 1000
/* The largest epoch a position may be set to: 2^53, the bound of the
 * training state's counters; the batches after it can count on far beyond
 * without overflow. */
#define DATASET_MAX_EPOCH (INT64_C(1) << 53)
/* Pairs × dimensions the distance pass may take without pruning: about a
 * second on one core (2.8e8 a second measured, 2-D rows). */
#define DATASET_DIST_BUDGET 4e8

struct sk_dataset {
  sk_tensor *x; /* (n, d), or (n, h, w) / (n, c, h, w) images read as (n, c·h·w); owned */
  int64_t n;
  int d;
  int64_t chw[3]; /* an image's (c, h, w); zeros for rows */
  float scale;    /* the values were divided by this when the set was made */
  int32_t *labels; /* (n) or NULL */
  int classes;     /* 0 without labels */
  uint32_t *perm;  /* (n): the current epoch's order */
  int64_t epoch, cursor;
  sk_rng rng_at_epoch_start;
};

/* Frees what a constructor was handed, once when both are the same tensor. */
static void release(sk_tensor *x, sk_tensor *labels) {
  sk_tensor_free(x);
  if (labels != x) sk_tensor_free(labels);
}

/* Takes x, seen as (n, d) rows, and labels; what both constructors share.
 * `who` names the caller in messages. */
static sk_status make(const char *who, sk_tensor *x, int64_t n, int64_t d, sk_tensor *labels,
                      sk_dataset **out) {
  sk_status st = SK_OK;
  sk_dataset *ds = NULL;
  if (n < 1 || n > (int64_t)UINT32_MAX || d < 1 || d > INT32_MAX) {
    st = sk__fail(SK_ERR_SHAPE, "%s: x has shape (%lld, %lld), expected 1 <= n < 2^32, d >= 1",
                  who, (long long)n, (long long)d);
    goto fail;
  }
  const float *xd = sk_tensor_cdata(x);
  for (int64_t i = 0; i < n * d; i++) {
    if (!isfinite(xd[i])) {
      st = sk__fail(SK_ERR_NUMERIC, "%s: x[%lld, %lld] is %g", who, (long long)(i / d),
                    (long long)(i % d), (double)xd[i]);
      goto fail;
    }
  }
  if (labels) {
    if (sk_tensor_ndim(labels) != 1 || sk_tensor_shape(labels)[0] != n) {
      st = sk__fail(
          SK_ERR_SHAPE, "%s: labels have rank %d, first dimension %lld; expected shape (%lld)", who,
          sk_tensor_ndim(labels),
          sk_tensor_ndim(labels) > 0 ? (long long)sk_tensor_shape(labels)[0] : 0LL, (long long)n);
      goto fail;
    }
    const float *ld = sk_tensor_cdata(labels);
    for (int64_t i = 0; i < n; i++) {
      if (!(ld[i] >= 0 && ld[i] < DATASET_MAX_LABEL) || ld[i] != floorf(ld[i])) {
        st = sk__fail(SK_ERR_INVALID, "%s: label %lld is %g, expected an integer in 0..%d", who,
                      (long long)i, (double)ld[i], DATASET_MAX_LABEL - 1);
        goto fail;
      }
    }
  }
  ds = sk__calloc(1, sizeof *ds);
  if (!ds || !(ds->perm = sk__malloc((size_t)n * sizeof(uint32_t))) ||
      (labels && !(ds->labels = sk__malloc((size_t)n * sizeof(int32_t))))) {
    st = sk__fail(SK_ERR_NOMEM, "%s: out of memory for %lld rows", who, (long long)n);
    goto fail;
  }
  ds->n = n;
  ds->d = (int)d;
  ds->scale = 1;
  if (labels) {
    const float *ld = sk_tensor_cdata(labels);
    int32_t mx = 0;
    for (int64_t i = 0; i < n; i++) {
      ds->labels[i] = (int32_t)ld[i];
      mx = SK_MAX(mx, ds->labels[i]);
    }
    ds->classes = (int)mx + 1;
    sk_tensor_free(labels);
  }
  ds->x = x;
  *out = ds;
  return SK_OK;
fail:
  if (ds) {
    sk__free(ds->perm);
    sk__free(ds->labels);
    sk__free(ds);
  }
  release(x, labels);
  return st;
}

sk_status sk_dataset_new(sk_tensor *x, sk_tensor *labels, sk_dataset **out) {
  const char *who = "sk_dataset_new";
  if (out) *out = NULL;
  sk_status st;
  if (!out || !x) {
    st = sk__fail(SK_ERR_INVALID, "%s: NULL %s", who, !out ? "out" : "x");
  } else if (labels == x) {
    st = sk__fail(SK_ERR_INVALID, "%s: labels are the tensor x itself", who);
  } else if (sk_tensor_ndim(x) != 2) {
    st = sk__fail(SK_ERR_SHAPE, "%s: x has rank %d, expected 2 (n, d)", who, sk_tensor_ndim(x));
  } else {
    return make(who, x, sk_tensor_shape(x)[0], sk_tensor_shape(x)[1], labels, out);
  }
  release(x, labels);
  return st;
}

sk_status sk_dataset_new_images(sk_tensor *x, sk_tensor *labels, float scale, sk_dataset **out) {
  const char *who = "sk_dataset_new_images";
  if (out) *out = NULL;
  sk_status st;
  const int rank = x ? sk_tensor_ndim(x) : 0;
  const int64_t *s = x ? sk_tensor_shape(x) : NULL;
  int64_t chw[3] = {1, 0, 0}, d = 0;
  if (rank == 3 || rank == 4) {
    for (int i = 0; i < rank - 1; i++) chw[3 - (rank - 1) + i] = s[1 + i];
    if (chw[0] >= 1 && chw[1] >= 1 && chw[2] >= 1 && chw[0] <= INT32_MAX &&
        chw[1] <= INT32_MAX / chw[0] && chw[2] <= INT32_MAX / (chw[0] * chw[1]))
      d = chw[0] * chw[1] * chw[2];
  }
  if (!out || !x) {
    st = sk__fail(SK_ERR_INVALID, "%s: NULL %s", who, !out ? "out" : "x");
  } else if (labels == x) {
    st = sk__fail(SK_ERR_INVALID, "%s: labels are the tensor x itself", who);
  } else if (rank != 3 && rank != 4) {
    st = sk__fail(SK_ERR_SHAPE, "%s: x has rank %d, expected 3 (n, h, w) or 4 (n, c, h, w)", who,
                  rank);
  } else if (d == 0) {
    st = sk__fail(SK_ERR_SHAPE,
                  "%s: images of %lld x %lld x %lld values (expected c, h, w >= 1 and at most "
                  "2^31 - 1 values)",
                  who, (long long)chw[0], (long long)chw[1], (long long)chw[2]);
  } else if (!(scale > 0) || !isfinite(scale)) {
    st = sk__fail(SK_ERR_INVALID, "%s: scale %g is not a positive number", who, (double)scale);
  } else {
    if (scale != 1) {
      float *xd = sk_tensor_data(x);
      for (int64_t i = 0; i < sk_tensor_numel(x); i++) xd[i] /= scale;
    }
    st = make(who, x, s[0], d, labels, out);
    if (st == SK_OK) {
      memcpy((*out)->chw, chw, sizeof chw);
      (*out)->scale = scale;
    }
    return st;
  }
  release(x, labels);
  return st;
}

void sk_dataset_free(sk_dataset *ds) {
  if (!ds) return;
  sk_tensor_free(ds->x);
  sk__free(ds->labels);
  sk__free(ds->perm);
  sk__free(ds);
}

int64_t sk_dataset_size(const sk_dataset *ds) { return ds->n; }
int sk_dataset_dim(const sk_dataset *ds) { return ds->d; }
int sk_dataset_classes(const sk_dataset *ds) { return ds->classes; }
const float *sk_dataset_x(const sk_dataset *ds) { return sk_tensor_cdata(ds->x); }
const int32_t *sk_dataset_labels(const sk_dataset *ds) { return ds->labels; }
float sk_dataset_scale(const sk_dataset *ds) { return ds->scale; }

int sk_dataset_image_shape(const sk_dataset *ds, int64_t chw[3]) {
  if (ds->chw[0] == 0) return 0;
  if (chw) memcpy(chw, ds->chw, sizeof ds->chw);
  return 1;
}

/* Fisher-Yates (Durstenfeld) over the identity, drawing from r. */
static void shuffle(uint32_t *perm, int64_t n, sk_rng *r) {
  for (int64_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
  for (int64_t i = n - 1; i > 0; i--) {
    const uint32_t j = sk_rng_below(r, (uint32_t)(i + 1));
    const uint32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

sk_status sk_dataset_batch(sk_dataset *ds, sk_rng *r, int64_t b, float *x, int32_t *labels) {
  if (!ds || !r)
    return sk__fail(SK_ERR_INVALID, "sk_dataset_batch: NULL %s", !ds ? "dataset" : "rng");
  if (b < 0 || (uint64_t)b > SIZE_MAX / sizeof(float) / (size_t)ds->d)
    return sk__fail(SK_ERR_INVALID, "sk_dataset_batch: batch size %lld", (long long)b);
  if (b > 0 && !x) return sk__fail(SK_ERR_INVALID, "sk_dataset_batch: NULL x");
  const float *xd = sk_tensor_cdata(ds->x);
  const size_t row = (size_t)ds->d * sizeof(float);
  for (int64_t i = 0; i < b; i++) {
    if (ds->cursor == ds->n) {
      ds->epoch++;
      ds->cursor = 0;
    }
    if (ds->cursor == 0) {
      ds->rng_at_epoch_start = *r;
      shuffle(ds->perm, ds->n, r);
    }
    const uint32_t src = ds->perm[ds->cursor++];
    memcpy(x + (size_t)i * ds->d, xd + (size_t)src * ds->d, row);
    if (labels) labels[i] = ds->labels ? ds->labels[src] : -1;
  }
  return SK_OK;
}

sk_dataset_pos sk_dataset_get_pos(const sk_dataset *ds) {
  sk_dataset_pos p = {ds->epoch, ds->cursor, ds->rng_at_epoch_start};
  return p;
}

sk_status sk_dataset_set_pos(sk_dataset *ds, sk_dataset_pos pos) {
  if (!ds) return sk__fail(SK_ERR_INVALID, "sk_dataset_set_pos: NULL dataset");
  if (pos.epoch < 0 || pos.epoch > DATASET_MAX_EPOCH || pos.cursor < 0 || pos.cursor > ds->n)
    return sk__fail(SK_ERR_INVALID,
                    "sk_dataset_set_pos: epoch %lld, cursor %lld; expected epoch in 0..2^53, "
                    "cursor in 0..%lld",
                    (long long)pos.epoch, (long long)pos.cursor, (long long)ds->n);
  ds->epoch = pos.epoch;
  ds->cursor = pos.cursor;
  ds->rng_at_epoch_start = pos.rng_at_epoch_start;
  /* Mid-epoch the rest of the order is needed: redraw it from a copy, so the
   * caller's own rng is left where the caller restored it. */
  if (pos.cursor > 0) {
    sk_rng r = pos.rng_at_epoch_start;
    shuffle(ds->perm, ds->n, &r);
  }
  return SK_OK;
}

sk_status sk_dataset_stats(const sk_dataset *ds, float *mean, float *std) {
  if (!ds || !mean || !std)
    return sk__fail(SK_ERR_INVALID, "sk_dataset_stats: NULL %s",
                    !ds     ? "dataset"
                    : !mean ? "mean"
                            : "std");
  const float *xd = sk_tensor_cdata(ds->x);
  const int64_t n = ds->n;
  const int d = ds->d;
  /* Two passes per dimension in double: no cancellation in the variance. */
#pragma omp parallel for schedule(static) num_threads(sk__num_threads()) if ((double)n * d > 1e6)
  for (int j = 0; j < d; j++) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < n; i++) m += xd[(size_t)i * d + j];
    m /= (double)n;
    for (int64_t i = 0; i < n; i++) {
      const double t = xd[(size_t)i * d + j] - m;
      v += t * t;
    }
    mean[j] = (float)m;
    std[j] = (float)sqrt(v / (double)n);
  }
  return SK_OK;
}

/* A row of the distance pass: its index and its distance from the centroid. */
typedef struct dist_row {
  double r;
  int64_t i;
} dist_row;

/* Farthest from the centroid first; ties by index, so the order is total. */
static int by_radius(const void *pa, const void *pb) {
  const dist_row *a = pa, *b = pb;
  if (a->r != b->r) return a->r > b->r ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}

static double row_dist2(const float *xa, const float *xb, int d) {
  double s = 0;
  for (int j = 0; j < d; j++) {
    const double t = (double)xa[j] - xb[j];
    s += t * t;
  }
  return s;
}

sk_status sk_dataset_max_distance(const sk_dataset *ds, double *dist, int64_t *rows) {
  if (!ds || !dist) return sk__fail(SK_ERR_INVALID, "sk_dataset_max_distance: NULL argument");
  const int64_t n = ds->n;
  const int d = ds->d;
  if (n < 2)
    return sk__fail(SK_ERR_INVALID, "sk_dataset_max_distance: %lld row, need at least 2",
                    (long long)n);
  /* All rows when every pair fits the budget; else the most evenly spaced
   * rows whose pairs do (at least DATASET_SIGMA_ROWS). */
  int64_t m = n;
  if ((double)n * (double)(n - 1) / 2 * d > DATASET_DIST_BUDGET) {
    m = (int64_t)floor(sqrt(2 * DATASET_DIST_BUDGET / d));
    m = SK_MAX(SK_MIN(m, n), SK_MIN(n, (int64_t)DATASET_SIGMA_ROWS));
  }
  const float *xd = sk_tensor_cdata(ds->x);
  dist_row *order = sk__malloc((size_t)m * sizeof *order);
  double *c = sk__calloc((size_t)d, sizeof *c);
  if (!order || !c) {
    sk__free(order);
    sk__free(c);
    return sk__fail(SK_ERR_NOMEM, "sk_dataset_max_distance: out of memory");
  }
  for (int64_t k = 0; k < m; k++) {
    const float *x = xd + (size_t)(k * n / m) * d;
    for (int j = 0; j < d; j++) c[j] += x[j];
  }
  for (int j = 0; j < d; j++) c[j] /= (double)m;
  for (int64_t k = 0; k < m; k++) {
    const float *x = xd + (size_t)(k * n / m) * d;
    double s = 0;
    for (int j = 0; j < d; j++) s += ((double)x[j] - c[j]) * ((double)x[j] - c[j]);
    order[k] = (dist_row){sqrt(s), k * n / m};
  }
  sk__free(c);
  qsort(order, (size_t)m, sizeof *order, by_radius);
  /* ‖a − b‖ ≤ r_a + r_b (the triangle through the centroid): with the rows
   * by decreasing radius, a pair whose radii sum to less than the largest
   * distance found cannot beat it, nor can any later pair of that row. The
   * pruning changes only the work: the maximum is exact over the m rows, and
   * the same whatever the number of threads (each prunes against its own
   * maximum). The slack covers the radii's rounding. */
  double best = 0;
#pragma omp parallel for schedule(dynamic, 8) reduction(max : best) num_threads(sk__num_threads()) \
    if ((double)m * m * d > 1e6)
  for (int64_t a = 0; a < m; a++) {
    const double ra = order[a].r * (1 + 1e-9);
    if (4 * ra * ra < best) continue;
    const float *xa = xd + (size_t)order[a].i * d;
    for (int64_t b = a + 1; b < m; b++) {
      const double bound = ra + order[b].r * (1 + 1e-9);
      if (bound * bound < best) break;
      const double s = row_dist2(xa, xd + (size_t)order[b].i * d, d);
      if (s > best) best = s;
    }
  }
  sk__free(order);
  *dist = sqrt(best);
  if (rows) *rows = m;
  return SK_OK;
}

sk_status sk_dataset_sigma_range(const sk_dataset *ds, float *sigma_max, float *sigma_min) {
  if (!ds || !sigma_max || !sigma_min)
    return sk__fail(SK_ERR_INVALID, "sk_dataset_sigma_range: NULL argument");
  const int64_t n = ds->n;
  const int d = ds->d;
  if (n < 2)
    return sk__fail(SK_ERR_INVALID, "sk_dataset_sigma_range: %lld row, need at least 2",
                    (long long)n);
  double far = 0;
  sk_status st = sk_dataset_max_distance(ds, &far, NULL);
  if (st != SK_OK) return st;
  float *mean = sk__malloc((size_t)d * 2 * sizeof(float));
  if (!mean) return sk__fail(SK_ERR_NOMEM, "sk_dataset_sigma_range: out of memory");
  float *std = mean + d;
  sk_dataset_stats(ds, mean, std);
  double spread = 0;
  for (int j = 0; j < d; j++) spread += std[j];
  spread /= d;
  sk__free(mean);
  const double smax = far, smin = 0.01 * spread;
  if (!(smax > 0) || !((float)smin > 0) || !isfinite((float)smax))
    return sk__fail(SK_ERR_NUMERIC,
                    "sk_dataset_sigma_range: degenerate data (largest distance %g, mean std %g)",
                    smax, spread);
  *sigma_max = (float)smax;
  *sigma_min = (float)smin;
  return SK_OK;
}
