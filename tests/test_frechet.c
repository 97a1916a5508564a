/* The Fréchet distance (sk_frechet_gaussian, sk_frechet_distance) against
 * values found without it: the closed form for commuting covariances
 * (diagonal, and diagonal in a random rotated basis), the 2 × 2 closed form
 * for covariances that do not commute, NumPy's value on fixed samples, zero
 * for identical samples, invariance under a common rotation and shift,
 * same bits on 1, 2 and 3 threads, and its errors. */
#include "scorekit/scorekit.h"
#include "test.h"

/* A random orthogonal (d, d): Gram-Schmidt on Gaussian columns. */
static void orthogonal(sk_rng *r, int d, double *q) {
  float g[64 * 64];
  sk_rng_normal(r, g, (size_t)(d * d));
  for (int j = 0; j < d; j++) {
    for (int i = 0; i < d; i++) q[i * d + j] = g[i * d + j];
    for (int k = 0; k < j; k++) {
      double dot = 0;
      for (int i = 0; i < d; i++) dot += q[i * d + j] * q[i * d + k];
      for (int i = 0; i < d; i++) q[i * d + j] -= dot * q[i * d + k];
    }
    double n2 = 0;
    for (int i = 0; i < d; i++) n2 += q[i * d + j] * q[i * d + j];
    for (int i = 0; i < d; i++) q[i * d + j] /= sqrt(n2);
  }
}

/* c = q diag(e) qᵀ */
static void rotate_diag(const double *q, const double *e, int d, double *c) {
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      double s = 0;
      for (int k = 0; k < d; k++) s += q[i * d + k] * e[k] * q[j * d + k];
      c[i * d + j] = s;
    }
  for (int i = 0; i < d; i++) /* exactly symmetric, as a covariance is */
    for (int j = i + 1; j < d; j++) c[j * d + i] = c[i * d + j];
}

/* Commuting covariances: |μ1 − μ2|² + Σ (√a_i − √b_i)². In the standard
 * basis and in a rotated one, d = 1, 7 and 40; some eigenvalues 0. */
TEST(commuting_closed_form) {
  sk_rng r = sk_rng_make(1, 0);
  static const int dims[3] = {1, 7, 40};
  double worst = 0;
  for (int t = 0; t < 3; t++) {
    const int d = dims[t];
    double mu1[40], mu2[40], a[40], b[40], want = 0;
    float u[4 * 40];
    sk_rng_uniform(&r, u, (size_t)(4 * d));
    for (int i = 0; i < d; i++) {
      mu1[i] = 4 * u[i] - 2;
      mu2[i] = 4 * u[d + i] - 2;
      a[i] = i == 2 ? 0 : 5 * u[2 * d + i] * u[2 * d + i];
      b[i] = 3 * u[3 * d + i] + 0.01;
      want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(a[i]) - sqrt(b[i])) * (sqrt(a[i]) - sqrt(b[i]));
    }
    static double q[40 * 40], c1[40 * 40], c2[40 * 40];
    for (int rot = 0; rot < 2; rot++) {
      if (rot) orthogonal(&r, d, q);
      else
        for (int i = 0; i < d * d; i++) q[i] = i % (d + 1) == 0;
      rotate_diag(q, a, d, c1);
      rotate_diag(q, b, d, c2);
      double got;
      CHECK_OK(sk_frechet_gaussian(mu1, c1, mu2, c2, d, &got));
      const double e = fabs(got - want) / want;
      worst = e > worst ? e : worst;
      if (e > 1e-8) fprintf(stderr, "  d %d, rotated %d: %.15g vs %.15g\n", d, rot, got, want);
    }
  }
  /* A zero eigenvalue computed as ±1e-16·|c1| has a root of 1e-8·√|c1|:
   * the square root's own conditioning, whatever the algorithm. */
  printf("  worst relative error against the closed form: %.3g\n", worst);
  CHECK(worst < 1e-8);
}

/* For 2 × 2 covariances that do not commute: M = c1^½ c2 c1^½ has trace
 * tr(c1 c2) and determinant det c1 det c2, and a 2 × 2 PSD M has
 * tr M^½ = sqrt(tr M + 2 sqrt(det M)). */
TEST(two_by_two_closed_form) {
  sk_rng r = sk_rng_make(2, 0);
  double worst = 0;
  for (int t = 0; t < 20; t++) {
    float u[8];
    sk_rng_uniform(&r, u, 8);
    /* c = L Lᵀ with L lower triangular. */
    const double l1[3] = {0.2 + 2 * u[0], 4 * u[1] - 2, 0.1 + u[2]};
    const double l2[3] = {0.1 + u[3], 6 * u[4] - 3, 0.3 + 2 * u[5]};
    const double c1[4] = {l1[0] * l1[0], l1[0] * l1[1], l1[0] * l1[1], l1[1] * l1[1] + l1[2] * l1[2]};
    const double c2[4] = {l2[0] * l2[0], l2[0] * l2[1], l2[0] * l2[1], l2[1] * l2[1] + l2[2] * l2[2]};
    const double mu1[2] = {u[6], 0}, mu2[2] = {0, u[7]};
    const double tr12 = c1[0] * c2[0] + 2 * c1[1] * c2[1] + c1[3] * c2[3];
    const double det = (l1[0] * l1[2]) * (l1[0] * l1[2]) * (l2[0] * l2[2]) * (l2[0] * l2[2]);
    const double want = mu1[0] * mu1[0] + mu2[1] * mu2[1] + c1[0] + c1[3] + c2[0] + c2[3] -
                        2 * sqrt(tr12 + 2 * sqrt(det));
    double got;
    CHECK_OK(sk_frechet_gaussian(mu1, c1, mu2, c2, 2, &got));
    /* Relative to the terms' size: the distance is their difference. */
    const double e = fabs(got - want) / (c1[0] + c1[3] + c2[0] + c2[3]);
    worst = e > worst ? e : worst;
  }
  printf("  worst error against the 2 x 2 closed form, relative to tr c1 + tr c2: %.3g\n", worst);
  CHECK(worst < 1e-13);
}

/* Fixed samples whose value NumPy gives (float32 data, np.cov, and the
 * trace of the root as Σ sqrt(eigenvalues of c1 c2) by a general
 * eigensolver, LAPACK's geev, not the symmetric route used here):
 *
 *   i = np.arange(40)[:, None]; k = np.arange(5)[None, :]
 *   x = np.float32(np.sin(0.37*i + 1.1*k + 0.05*i*k) + 0.3*k*np.cos(0.21*i))
 *   i = np.arange(33)[:, None]
 *   y = np.float32(np.cos(0.29*i + 0.7*k)*(1 + 0.1*k) + 0.2*np.sin(0.13*i*k) + 0.5)
 *   c1, c2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
 *   fd = ((x.mean(0) - y.mean(0))**2).sum() + np.trace(c1) + np.trace(c2)
 *        - 2*np.sqrt(np.linalg.eigvals(c1 @ c2).real.clip(0)).sum()
 */
static void numpy_samples(float *x, float *y) {
  for (int i = 0; i < 40; i++)
    for (int k = 0; k < 5; k++)
      x[i * 5 + k] = (float)(sin(0.37 * i + 1.1 * k + 0.05 * i * k) + 0.3 * k * cos(0.21 * i));
  for (int i = 0; i < 33; i++)
    for (int k = 0; k < 5; k++)
      y[i * 5 + k] = (float)(cos(0.29 * i + 0.7 * k) * (1 + 0.1 * k) + 0.2 * sin(0.13 * i * k) + 0.5);
}

TEST(numpy_reference) {
  float x[40 * 5], y[33 * 5];
  numpy_samples(x, y);
  double got, back;
  CHECK_OK(sk_frechet_distance(x, 40, y, 33, 5, &got));
  CHECK_OK(sk_frechet_distance(y, 33, x, 40, 5, &back));
  printf("  %.15g (NumPy 3.1078270411728974), swapped %.15g\n", got, back);
  CHECK_NEAR(got, 3.1078270411728974, 1e-9);
  CHECK_NEAR(back, got, 1e-10);
}

/* Zero for the same sample; unchanged when both samples are rotated and
 * shifted alike (d = 12, rank-deficient y: 8 rows). */
TEST(identical_and_rotation_invariance) {
  enum { N = 300, M = 8, Dm = 12 };
  static float x[N * Dm], y[M * Dm], xr[N * Dm], yr[M * Dm];
  sk_rng r = sk_rng_make(3, 0);
  sk_rng_normal(&r, x, N * Dm);
  sk_rng_normal(&r, y, M * Dm);
  for (int i = 0; i < N * Dm; i++) x[i] = x[i] * (1 + (float)(i % Dm)) + 0.5f; /* anisotropic */
  double same, got, rot, q[Dm * Dm], shift[Dm];
  CHECK_OK(sk_frechet_distance(x, N, x, N, Dm, &same));
  CHECK_OK(sk_frechet_distance(x, N, y, M, Dm, &got));
  orthogonal(&r, Dm, q);
  for (int k = 0; k < Dm; k++) shift[k] = 3.0 - k;
  for (int s = 0; s < 2; s++) {
    const float *a = s ? y : x;
    float *b = s ? yr : xr;
    for (int i = 0; i < (s ? M : N); i++)
      for (int j = 0; j < Dm; j++) {
        double v = shift[j];
        for (int k = 0; k < Dm; k++) v += q[j * Dm + k] * a[i * Dm + k];
        b[i * Dm + j] = (float)v;
      }
  }
  CHECK_OK(sk_frechet_distance(xr, N, yr, M, Dm, &rot));
  printf("  same sample %.3g; distance %.9g, rotated and shifted %.9g\n", same, got, rot);
  CHECK(fabs(same) < 1e-9 * 100);
  CHECK(got > 1);
  /* The rotated samples were rounded to float: a relative change of ~1e-7. */
  CHECK_NEAR(rot, got, 1e-5 * got);
}

TEST(same_bits_on_1_2_3_threads) {
  enum { N = 500, Dm = 32 };
  static float x[N * Dm], y[N * Dm];
  sk_rng r = sk_rng_make(4, 0);
  sk_rng_normal(&r, x, N * Dm);
  sk_rng_uniform(&r, y, N * Dm);
  double v[3];
  for (int t = 0; t < 3; t++) {
    sk_set_num_threads(t + 1);
    CHECK_OK(sk_frechet_distance(x, N, y, N, Dm, &v[t]));
  }
  sk_set_num_threads(0);
  CHECK(memcmp(&v[0], &v[1], sizeof v[0]) == 0 && memcmp(&v[0], &v[2], sizeof v[0]) == 0);
}

TEST(errors) {
  float x[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  double out, c[4] = {1, 0.5, 0.4, 1}, mu[2] = {0, 0};
  CHECK_EQ_INT(sk_frechet_distance(x, 1, x, 5, 2, &out), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_frechet_distance(x, 5, x, 5, 0, &out), SK_ERR_INVALID);
  x[3] = NAN;
  CHECK_EQ_INT(sk_frechet_distance(x, 5, x, 5, 2, &out), SK_ERR_NUMERIC);
  CHECK_EQ_INT(sk_frechet_gaussian(mu, c, mu, c, 2, &out), SK_ERR_INVALID); /* not symmetric */
  CHECK(strstr(sk_last_error(), "symmetric"));
  c[2] = 0.5;
  mu[1] = INFINITY;
  CHECK_EQ_INT(sk_frechet_gaussian(mu, c, mu, c, 2, &out), SK_ERR_NUMERIC);
  CHECK_EQ_INT(sk_frechet_gaussian(mu, c, mu, c, SK_FRECHET_MAX_DIM + 1, &out), SK_ERR_INVALID);
}

/* A covariance that is clearly not positive semi-definite is refused and
 * named: negative diagonal entries (−I), or a negative eigenvalue with a
 * positive diagonal; a singular one is fine: tr of rank-1 [[1, 1], [1, 1]]
 * against I gives 2 + 2 − 2 √2. */
TEST(covariance_not_psd_is_refused) {
  double mu[2] = {0, 0}, id[4] = {1, 0, 0, 1}, neg[4] = {-1, 0, 0, -1};
  double indef[4] = {1, 2, 2, 1}, rank1[4] = {1, 1, 1, 1}, out = 0;
  const double *bad[2] = {neg, indef};
  for (int i = 0; i < 2; i++) {
    CHECK_EQ_INT(sk_frechet_gaussian(mu, bad[i], mu, id, 2, &out), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "covariance 1 is not positive semi-definite"));
    CHECK_EQ_INT(sk_frechet_gaussian(mu, id, mu, bad[i], 2, &out), SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "covariance 2 is not positive semi-definite"));
  }
  CHECK_OK(sk_frechet_gaussian(mu, rank1, mu, id, 2, &out));
  CHECK_NEAR(out, 4 - 2 * sqrt(2.0), 1e-12);
  CHECK_OK(sk_frechet_gaussian(mu, id, mu, rank1, 2, &out));
  CHECK_NEAR(out, 4 - 2 * sqrt(2.0), 1e-12);
}

/* Samples that vary in orthogonal subspaces (a random rotation of the
 * first d/2 and the last d/2 coordinates): c1^1/2 c2 c1^1/2 is 0 but for
 * rounding, of either sign, which the PSD check must not take for a
 * negative eigenvalue; the distance is then tr c1 + tr c2. */
TEST(disjoint_supports_are_not_refused) {
  enum { N = 500 };
  static const int dims[2] = {20, 64};
  for (int t = 0; t < 2; t++) {
    const int d = dims[t], h = d / 2;
    sk_rng r = sk_rng_make(3 + (uint64_t)t, 1);
    double *q = malloc(sizeof *q * (size_t)d * (size_t)d);
    float *g = malloc(sizeof *g * (size_t)d * (size_t)d), *z = malloc(sizeof *z * N * (size_t)d);
    float *x = calloc((size_t)N * (size_t)d, sizeof *x), *y = calloc((size_t)N * (size_t)d, sizeof *y);
    if (!q || !g || !z || !x || !y) {
      CHECK(0);
      break;
    }
    sk_rng_normal(&r, g, (size_t)d * (size_t)d);
    for (int i = 0; i < d * d; i++) q[i] = g[i];
    for (int i = 0; i < d; i++) { /* Gram-Schmidt on the rows */
      for (int k = 0; k < i; k++) {
        double p = 0;
        for (int j = 0; j < d; j++) p += q[i * d + j] * q[k * d + j];
        for (int j = 0; j < d; j++) q[i * d + j] -= p * q[k * d + j];
      }
      double nrm = 0;
      for (int j = 0; j < d; j++) nrm += q[i * d + j] * q[i * d + j];
      for (int j = 0; j < d; j++) q[i * d + j] /= sqrt(nrm);
    }
    sk_rng_normal(&r, z, (size_t)N * (size_t)d);
    for (int i = 0; i < N; i++)
      for (int j = 0; j < d; j++) {
        double a = 0, b = 0;
        for (int k = 0; k < d; k++) *(k < h ? &a : &b) += q[j * d + k] * z[i * d + k];
        x[i * d + j] = (float)a;
        y[i * d + j] = (float)b;
      }
    double out = -1;
    CHECK_OK(sk_frechet_distance(x, N, y, N, d, &out));
    CHECK(out > 0.8 * d && out < 1.2 * d); /* tr c1 + tr c2, each about d/2 */
    free(q), free(g), free(z), free(x), free(y);
  }
}

TEST_MAIN(TEST_ENTRY(commuting_closed_form), TEST_ENTRY(two_by_two_closed_form),
          TEST_ENTRY(numpy_reference), TEST_ENTRY(identical_and_rotation_invariance),
          TEST_ENTRY(same_bits_on_1_2_3_threads), TEST_ENTRY(errors),
          TEST_ENTRY(covariance_not_psd_is_refused), TEST_ENTRY(disjoint_supports_are_not_refused))
