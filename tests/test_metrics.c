/* Sample-quality metrics against float64 brute-force references, their
 * behaviour on equal and shifted laws, thread independence and bad inputs. */
#include <omp.h>

#include "scorekit/eval.h"
#include "scorekit/rng.h"
#include "test.h"

static float *gauss(uint64_t seed, int64_t n, int d, float shift) {
  float *x = malloc((size_t)n * d * sizeof *x);
  sk_rng r = sk_rng_make(seed, 0);
  sk_rng_normal(&r, x, (size_t)n * d);
  for (int64_t i = 0; i < n * d; i++) x[i] += (i % d == 0) ? shift : 0;
  return x;
}

static double dist2(const float *a, const float *b, int d) {
  double s = 0;
  for (int k = 0; k < d; k++) s += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
  return s;
}

/* The textbook formula, one plain loop per term. */
static double mmd_ref(const float *x, int n, const float *y, int m, int d, double h) {
  double kxx = 0, kyy = 0, kxy = 0, g = 1 / (2 * h * h);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      if (i != j) kxx += exp(-g * dist2(x + i * d, x + j * d, d));
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++)
      if (i != j) kyy += exp(-g * dist2(y + i * d, y + j * d, d));
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) kxy += exp(-g * dist2(x + i * d, y + j * d, d));
  return kxx / ((double)n * (n - 1)) + kyy / ((double)m * (m - 1)) - 2 * kxy / ((double)n * m);
}

static double energy_ref(const float *x, int n, const float *y, int m, int d) {
  double dxx = 0, dyy = 0, dxy = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      if (i != j) dxx += sqrt(dist2(x + i * d, x + j * d, d));
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++)
      if (i != j) dyy += sqrt(dist2(y + i * d, y + j * d, d));
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) dxy += sqrt(dist2(x + i * d, y + j * d, d));
  return 2 * dxy / ((double)n * m) - dxx / ((double)n * (n - 1)) - dyy / ((double)m * (m - 1));
}

static int cmp_d(const void *a, const void *b) {
  double u = *(const double *)a, v = *(const double *)b;
  return (u > v) - (u < v);
}

/* Median of all pooled pairwise distances, by sorting. */
static double median_ref(const float *x, int n, const float *y, int m, int d) {
  int N = n + m;
  size_t np = (size_t)N * (N - 1) / 2, t = 0;
  double *dd = malloc(np * sizeof *dd);
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) {
      const float *a = i < n ? x + i * d : y + (i - n) * d, *b = j < n ? x + j * d : y + (j - n) * d;
      dd[t++] = sqrt(dist2(a, b, d));
    }
  qsort(dd, np, sizeof *dd, cmp_d);
  double med = np % 2 ? dd[np / 2] : 0.5 * (dd[np / 2 - 1] + dd[np / 2]);
  free(dd);
  return med;
}

TEST(mmd_matches_brute_force) {
  float *x = gauss(1, 50, 3, 0), *y = gauss(2, 40, 3, 0.7f);
  double v, h;
  CHECK_OK(sk_mmd_rbf(x, 50, y, 40, 3, 1.3, &v, &h));
  double want = mmd_ref(x, 50, y, 40, 3, 1.3);
  CHECK_NEAR(v, want, 1e-12 * (1 + fabs(want)));
  CHECK(h == 1.3);
  CHECK_OK(sk_mmd_rbf(x, 50, y, 40, 3, 0.4, &v, NULL));
  want = mmd_ref(x, 50, y, 40, 3, 0.4);
  CHECK_NEAR(v, want, 1e-12 * (1 + fabs(want)));
  free(x);
  free(y);
}

TEST(median_heuristic_matches_brute_force) {
  /* Odd (53+40 = 93 points: 4278 pairs, even) and even-free counts, with ties
   * from points rounded to a coarse grid to stress the selection. */
  int sizes[2][2] = {{53, 40}, {30, 31}};
  for (int c = 0; c < 2; c++) {
    int n = sizes[c][0], m = sizes[c][1];
    float *x = gauss(3 + c, n, 2, 0), *y = gauss(5 + c, m, 2, 1);
    for (int i = 0; i < 2 * m; i++) y[i] = roundf(y[i] * 2) / 2;
    double v, h;
    CHECK_OK(sk_mmd_rbf(x, n, y, m, 2, 0, &v, &h));
    double hm = median_ref(x, n, y, m, 2);
    CHECK_NEAR(h, hm, 1e-12 * hm);
    CHECK_NEAR(v, mmd_ref(x, n, y, m, 2, hm), 1e-12);
    free(x);
    free(y);
  }
  /* Over 2000 pooled points the median comes from a subsample: close to the full one. */
  float *x = gauss(7, 1300, 2, 0), *y = gauss(8, 1200, 2, 0.5f);
  double v, h;
  CHECK_OK(sk_mmd_rbf(x, 1300, y, 1200, 2, -1, &v, &h));
  double hm = median_ref(x, 1300, y, 1200, 2);
  CHECK_NEAR(h, hm, 0.03 * hm);
  free(x);
  free(y);
  /* All points equal: the bandwidth falls back to 1 and MMD is exactly 0. */
  float same[8] = {2, 2, 2, 2, 2, 2, 2, 2};
  CHECK_OK(sk_mmd_rbf(same, 2, same + 4, 2, 2, 0, &v, &h));
  CHECK(h == 1.0);
  CHECK_NEAR(v, 0, 1e-15);
}

TEST(energy_matches_brute_force) {
  float *x = gauss(11, 50, 4, 0), *y = gauss(12, 47, 4, 0.5f);
  double v;
  CHECK_OK(sk_energy_distance(x, 50, y, 47, 4, &v));
  double want = energy_ref(x, 50, y, 47, 4);
  CHECK_NEAR(v, want, 1e-12 * (1 + fabs(want)));
  free(x);
  free(y);
}

/* Equal laws give values at the noise level (O(1/n)); a one-unit shift stands
 * far above it. Observed at n = 400 over these 5 seed pairs: |MMD^2| <= 1.3e-3,
 * |energy| <= 5e-3; shifted: MMD^2 0.115, energy 0.43, SW 0.70 (0.09 unshifted,
 * the finite-sample floor). */
TEST(equal_vs_shifted_laws) {
  enum { N = 400 };
  double m_same_max = 0, e_same_max = 0;
  for (int s = 0; s < 5; s++) {
    float *x = gauss(100 + 2 * s, N, 2, 0), *y = gauss(101 + 2 * s, N, 2, 0);
    double mm, e;
    CHECK_OK(sk_mmd_rbf(x, N, y, N, 2, 0, &mm, NULL));
    CHECK_OK(sk_energy_distance(x, N, y, N, 2, &e));
    m_same_max = fmax(m_same_max, fabs(mm));
    e_same_max = fmax(e_same_max, fabs(e));
    free(x);
    free(y);
  }
  float *x = gauss(200, N, 2, 0), *y = gauss(201, N, 2, 1.0f);
  double mm, e, sw, sw_same;
  CHECK_OK(sk_mmd_rbf(x, N, y, N, 2, 0, &mm, NULL));
  CHECK_OK(sk_energy_distance(x, N, y, N, 2, &e));
  CHECK_OK(sk_sliced_wasserstein(x, N, y, N, 2, 200, 9, &sw));
  float *z = gauss(202, N, 2, 0);
  CHECK_OK(sk_sliced_wasserstein(x, N, z, N, 2, 200, 9, &sw_same));
  printf("  same-law max |MMD^2| %.2e |energy| %.2e; shifted MMD^2 %.3f energy %.3f SW %.3f (same %.3f)\n",
         m_same_max, e_same_max, mm, e, sw, sw_same);
  CHECK(m_same_max < 0.005);
  CHECK(e_same_max < 0.02);
  CHECK(mm > 10 * m_same_max && mm > 0.03);
  CHECK(e > 10 * e_same_max && e > 0.15);
  /* A shift of 1 along e1 projects to theta_1; E theta_1^2 = 1/2 in 2-D. */
  CHECK_NEAR(sw, sqrt(0.5), 0.12);
  CHECK(sw_same < 0.15);
  free(x);
  free(y);
  free(z);
}

/* y = x + c moves each projection by c.theta and keeps its order, so the
 * squared distance is the mean of (c.theta)^2 over the documented directions. */
TEST(sliced_exact_shift) {
  enum { N = 64, D = 3, P = 50 };
  float *x = gauss(21, N, D, 0), y[N * D];
  const float c[D] = {0.75f, -1.5f, 2.0f};
  for (int i = 0; i < N * D; i++) y[i] = x[i] + c[i % D];
  double sw;
  CHECK_OK(sk_sliced_wasserstein(x, N, y, N, D, P, 77, &sw));
  float th[P * D];
  sk_rng r = sk_rng_make(77, SK_EVAL_SLICED_STREAM);
  sk_rng_normal(&r, th, P * D);
  double want = 0;
  for (int p = 0; p < P; p++) {
    double nn = 0, dot = 0;
    for (int k = 0; k < D; k++) {
      nn += (double)th[p * D + k] * th[p * D + k];
      dot += (double)c[k] * th[p * D + k];
    }
    want += dot * dot / nn;
  }
  CHECK_NEAR(sw * sw, want / P, 1e-5);
  free(x);
}

/* In 1-D the direction is +-1 and the distance is the W2 of the quantile
 * functions on the (k + 1/2)/max(n, m) grid. n = 50, m = 80 make no grid
 * level fall on a step, so the sign of the direction cannot matter. */
TEST(sliced_1d_unequal_sizes) {
  enum { NX = 50, NY = 80 };
  float *x = gauss(31, NX, 1, 0), *y = gauss(32, NY, 1, 0.3f);
  for (int i = 0; i < NY; i++) y[i] *= 1.7f;
  double sw;
  CHECK_OK(sk_sliced_wasserstein(x, NX, y, NY, 1, 3, 5, &sw));
  double xs[NX], ys[NY], s = 0;
  for (int i = 0; i < NX; i++) xs[i] = x[i];
  for (int i = 0; i < NY; i++) ys[i] = y[i];
  qsort(xs, NX, sizeof(double), cmp_d);
  qsort(ys, NY, sizeof(double), cmp_d);
  for (int k = 0; k < NY; k++) {
    double u = (k + 0.5) / NY, t = xs[(int)floor(u * NX)] - ys[(int)floor(u * NY)];
    s += t * t;
  }
  CHECK_NEAR(sw, sqrt(s / NY), 1e-12);
  free(x);
  free(y);
}

TEST(mode_stats_exact_weights) {
  const float means[8] = {0, 0, 10, 0, 0, 10, 10, 10};
  const float stds[4] = {1, 1, 1, 1}, w[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  const int per[4] = {10, 20, 30, 40};
  float x[105 * 2];
  int t = 0;
  for (int j = 0; j < 4; j++)
    for (int i = 0; i < per[j]; i++, t++) {
      x[2 * t] = means[2 * j];
      x[2 * t + 1] = means[2 * j + 1];
    }
  for (int i = 0; i < 5; i++, t++) x[2 * t] = x[2 * t + 1] = 5; /* 5 std from every mode */
  sk_mode_stats st;
  CHECK_OK(sk_mode_stats_compute(x, 105, 2, 4, means, stds, w, &st));
  CHECK_EQ_INT(st.k, 4);
  CHECK_NEAR(st.within3, 100.0 / 105, 1e-15);
  for (int j = 0; j < 4; j++) CHECK_NEAR(st.weight[j], per[j] / 100.0, 1e-15);
  CHECK_NEAR(st.max_weight_err, 0, 1e-7);
  CHECK_EQ_INT(st.covered, 4);
  /* Unnormalised target weights mean the same. */
  const float w10[4] = {1, 2, 3, 4};
  CHECK_OK(sk_mode_stats_compute(x, 105, 2, 4, means, stds, w10, &st));
  CHECK_NEAR(st.max_weight_err, 0, 1e-15);
  /* The first 62 rows leave mode 3 (target 0.4) with 2 samples, under
   * 0.25 * 0.4 * 62 = 6.2: not covered, and the largest weight error. */
  CHECK_OK(sk_mode_stats_compute(x, 62, 2, 4, means, stds, w, &st));
  CHECK_EQ_INT(st.covered, 3);
  CHECK_NEAR(st.weight[3], 2.0 / 62, 1e-15);
  CHECK_NEAR(st.max_weight_err, 0.4 - 2.0 / 62, 1e-7);
  /* No sample within 3 std: nothing covered, weights 0, error = the largest target. */
  CHECK_OK(sk_mode_stats_compute(x + 2 * 100, 5, 2, 4, means, stds, w, &st));
  CHECK_NEAR(st.within3, 0, 0);
  CHECK_EQ_INT(st.covered, 0);
  CHECK_NEAR(st.max_weight_err, 0.4, 1e-7);
}

/* Nearness is measured in units of each mode's std: a point 3 units from a
 * wide mode (std 2) and 2 units from a narrow one (std 0.5) goes to the wide one. */
TEST(mode_stats_std_normalised) {
  const float means[4] = {0, 0, 5, 0}, stds[2] = {2, 0.5f}, w[2] = {0.5f, 0.5f};
  const float x[2] = {3, 0};
  sk_mode_stats st;
  CHECK_OK(sk_mode_stats_compute(x, 1, 2, 2, means, stds, w, &st));
  CHECK_NEAR(st.weight[0], 1, 0);
  CHECK_NEAR(st.within3, 1, 0);
  /* 6.5 std from the wide mode (x = 13) is outside. */
  const float far[2] = {13, 0};
  CHECK_OK(sk_mode_stats_compute(far, 1, 2, 2, means, stds, w, &st));
  CHECK_NEAR(st.within3, 0, 0);
}

TEST(same_bits_any_threads) {
  enum { N = 301, M = 257, D = 3 };
  float *x = gauss(41, N, D, 0), *y = gauss(42, M, D, 0.2f);
  const float means[6] = {0, 0, 0, 1, 1, 1}, stds[2] = {1, 0.5f}, w[2] = {0.6f, 0.4f};
  double r[2][5];
  sk_mode_stats ms[2];
  for (int t = 0; t < 2; t++) {
    omp_set_num_threads(t + 1);
    CHECK_OK(sk_mmd_rbf(x, N, y, M, D, 0, &r[t][0], &r[t][1]));
    CHECK_OK(sk_energy_distance(x, N, y, M, D, &r[t][2]));
    CHECK_OK(sk_sliced_wasserstein(x, N, y, M, D, 37, 3, &r[t][3]));
    CHECK_OK(sk_mmd_rbf(x, N, y, M, D, 0.8, &r[t][4], NULL));
    memset(&ms[t], 0, sizeof ms[t]);
    CHECK_OK(sk_mode_stats_compute(x, N, D, 2, means, stds, w, &ms[t]));
  }
  omp_set_num_threads(2);
  CHECK(memcmp(r[0], r[1], sizeof r[0]) == 0);
  CHECK(memcmp(&ms[0], &ms[1], sizeof ms[0]) == 0);
  free(x);
  free(y);
}

TEST(bad_inputs_fail_cleanly) {
  float x[8] = {0, 1, 2, 3, 4, 5, 6, 7}, y[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  double v = 123;
  CHECK_EQ_INT(sk_mmd_rbf(x, 1, y, 4, 2, 1, &v, NULL), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "sk_mmd_rbf") && strstr(sk_last_error(), "got 1"));
  CHECK_EQ_INT(sk_mmd_rbf(x, 4, y, 4, 0, 1, &v, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_mmd_rbf(NULL, 4, y, 4, 2, 1, &v, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_mmd_rbf(x, 4, y, 4, 2, NAN, &v, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_mmd_rbf(x, 4, y, 4, 2, 1, NULL, NULL), SK_ERR_INVALID);
  y[5] = NAN;
  CHECK_EQ_INT(sk_mmd_rbf(x, 4, y, 4, 2, 1, &v, NULL), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "y[2][1]"));
  CHECK_EQ_INT(sk_energy_distance(x, 4, y, 4, 2, &v), SK_ERR_NUMERIC);
  CHECK_EQ_INT(sk_sliced_wasserstein(x, 4, y, 4, 2, 10, 1, &v), SK_ERR_NUMERIC);
  y[5] = 6;
  CHECK_EQ_INT(sk_energy_distance(x, 4, y, -3, 2, &v), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_sliced_wasserstein(x, 4, y, 4, 2, 0, 1, &v), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "n_proj"));
  CHECK(v == 123);
  const float means[4] = {0, 0, 1, 1}, stds[2] = {1, 1}, w[2] = {1, 1};
  const float bad_std[2] = {1, 0}, bad_w[2] = {-1, 1}, zero_w[2] = {0, 0};
  sk_mode_stats st;
  CHECK_EQ_INT(sk_mode_stats_compute(x, 4, 2, 0, means, stds, w, &st), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_mode_stats_compute(x, 4, 2, SK_MAX_MODES + 1, means, stds, w, &st), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_mode_stats_compute(x, 4, 2, 2, means, bad_std, w, &st), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "stds[1]"));
  CHECK_EQ_INT(sk_mode_stats_compute(x, 4, 2, 2, means, stds, bad_w, &st), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_mode_stats_compute(x, 4, 2, 2, means, stds, zero_w, &st), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_mode_stats_compute(x, 0, 2, 2, means, stds, w, &st), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_mode_stats_compute(x, 4, 2, 2, NULL, stds, w, &st), SK_ERR_INVALID);
}

/* Every allocation failure is reported, and the next call works. */
TEST(allocation_failures) {
  float *x = gauss(51, 20, 2, 0), *y = gauss(52, 20, 2, 0);
  double v;
  sk_mode_stats st;
  const float means[2] = {0, 0}, stds[1] = {1}, w[1] = {1};
  /* Each failure names the function; the message is cleared before each
   * call so that an old one cannot pass for it. */
  for (int k = 0; k < 4; k++) {
    sk_set_error(SK_OK, "%s", "");
    sk_debug_fail_alloc_after(k);
    sk_status s = sk_sliced_wasserstein(x, 20, y, 20, 2, 5, 1, &v);
    sk_debug_fail_alloc_after(-1);
    CHECK_EQ_INT(s, SK_ERR_NOMEM);
    CHECK(strstr(sk_last_error(), "sk_sliced_wasserstein"));
  }
  static const char *const fn[4] = {"sk_mmd_rbf", "sk_energy_distance", "sk_mode_stats_compute",
                                    "sk_mmd_rbf"};
  for (int c = 0; c < 4; c++) {
    sk_set_error(SK_OK, "%s", "");
    sk_debug_fail_alloc_after(c == 3 ? 2 : 0); /* case 3: the row sums after the median */
    sk_status s = c == 0 || c == 3 ? sk_mmd_rbf(x, 20, y, 20, 2, 0, &v, NULL)
                  : c == 1         ? sk_energy_distance(x, 20, y, 20, 2, &v)
                                   : sk_mode_stats_compute(x, 20, 2, 1, means, stds, w, &st);
    sk_debug_fail_alloc_after(-1);
    CHECK_EQ_INT(s, SK_ERR_NOMEM);
    CHECK(strstr(sk_last_error(), fn[c]));
  }
  CHECK_OK(sk_mmd_rbf(x, 20, y, 20, 2, 0, &v, NULL));
  free(x);
  free(y);
}

TEST_MAIN(TEST_ENTRY(mmd_matches_brute_force), TEST_ENTRY(median_heuristic_matches_brute_force),
          TEST_ENTRY(energy_matches_brute_force), TEST_ENTRY(equal_vs_shifted_laws),
          TEST_ENTRY(sliced_exact_shift), TEST_ENTRY(sliced_1d_unequal_sizes),
          TEST_ENTRY(mode_stats_exact_weights), TEST_ENTRY(mode_stats_std_normalised),
          TEST_ENTRY(same_bits_any_threads), TEST_ENTRY(bad_inputs_fail_cleanly),
          TEST_ENTRY(allocation_failures))
