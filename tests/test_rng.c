/* Philox known answers and the statistics and thread-independence of draws. */
#include <omp.h>

#include "scorekit/rng.h"
#include "test.h"

/* Known-answer vectors of Random123's kat_vectors for philox4x32 with 10 rounds. */
TEST(philox_known_answers) {
  static const uint32_t kat[3][10] = {
      {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
       0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
       0x94fdcceb, 0x5001e420, 0x24126ea1},
  };
  for (int i = 0; i < 3; i++) {
    uint32_t out[4];
    sk_philox4x32(&kat[i][0], &kat[i][4], out);
    for (int l = 0; l < 4; l++) CHECK_EQ_INT(out[l], kat[i][6 + l]);
  }
}

TEST(normal_moments) {
  enum { N = 1 << 20 };
  float *x = malloc(N * sizeof *x);
  sk_rng r = sk_rng_make(42, 7);
  sk_rng_normal(&r, x, N);
  double m = 0, m2 = 0, m4 = 0;
  for (int i = 0; i < N; i++) m += x[i];
  m /= N;
  for (int i = 0; i < N; i++) {
    double d = x[i] - m;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m2 /= N;
  m4 /= N;
  free(x);
  /* Standard errors at N = 2^20: mean 0.001, variance 0.0014, kurtosis 0.0048. */
  CHECK_NEAR(m, 0.0, 0.005);
  CHECK_NEAR(m2, 1.0, 0.007);
  CHECK_NEAR(m4 / (m2 * m2), 3.0, 0.03);
}

TEST(uniform_and_rademacher) {
  enum { N = 1 << 20 };
  float *x = malloc(N * sizeof *x);
  sk_rng r = sk_rng_make(1, 2);
  sk_rng_uniform(&r, x, N);
  double m = 0, lo = 1, hi = 0;
  for (int i = 0; i < N; i++) {
    m += x[i];
    lo = fmin(lo, x[i]);
    hi = fmax(hi, x[i]);
  }
  CHECK(lo >= 0 && hi < 1);
  CHECK_NEAR(m / N, 0.5, 0.002);
  sk_rng_rademacher(&r, x, N);
  double s = 0;
  for (int i = 0; i < N; i++) {
    CHECK(x[i] == 1.0f || x[i] == -1.0f);
    s += x[i];
  }
  CHECK_NEAR(s / N, 0.0, 0.005);
  free(x);
}

/* The same position gives the same values whether drawn at once, in pieces, or
 * with any number of threads. */
TEST(same_bits_any_threads_any_split) {
  enum { N = 100003 };
  float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
  omp_set_num_threads(1);
  sk_rng r1 = sk_rng_make(9, 3);
  sk_rng_normal(&r1, a, N);
  omp_set_num_threads(2);
  sk_rng r2 = sk_rng_make(9, 3);
  sk_rng_normal(&r2, b, 40000);
  sk_rng_normal(&r2, b + 40000, N - 40000);
  CHECK(memcmp(a, b, N * sizeof *a) == 0);
  CHECK(r1.offset == r2.offset);
  free(a);
  free(b);
}

TEST(below_is_uniform) {
  sk_rng r = sk_rng_make(5, 0);
  int count[7] = {0};
  for (int i = 0; i < 70000; i++) count[sk_rng_below(&r, 7)]++;
  for (int k = 0; k < 7; k++) CHECK_NEAR(count[k], 10000, 400);
}

/* A NULL generator, or a NULL output for some values, draws nothing and
 * names the function and the argument. */
TEST(null_generator_or_output_is_refused) {
  sk_rng r = sk_rng_make(1, 2);
  float out[4] = {7, 7, 7, 7};
  void (*const draw[3])(sk_rng *, float *, size_t) = {sk_rng_uniform, sk_rng_normal,
                                                      sk_rng_rademacher};
  const char *name[3] = {"sk_rng_uniform", "sk_rng_normal", "sk_rng_rademacher"};
  for (int k = 0; k < 3; k++) {
    sk_set_error(SK_OK, "%s", "");
    draw[k](NULL, out, 4);
    CHECK(strstr(sk_last_error(), name[k]) && strstr(sk_last_error(), "NULL generator"));
    sk_set_error(SK_OK, "%s", "");
    draw[k](&r, NULL, 4);
    CHECK(strstr(sk_last_error(), name[k]) && strstr(sk_last_error(), "NULL output"));
    CHECK(r.offset == 0 && out[0] == 7);
    draw[k](&r, NULL, 0); /* nothing asked, nothing written */
  }
  sk_set_error(SK_OK, "%s", "");
  CHECK(sk_rng_below(NULL, 5) == 0 && strstr(sk_last_error(), "sk_rng_below: NULL generator"));
}

TEST_MAIN(TEST_ENTRY(philox_known_answers), TEST_ENTRY(normal_moments),
          TEST_ENTRY(uniform_and_rademacher), TEST_ENTRY(same_bits_any_threads_any_split),
          TEST_ENTRY(below_is_uniform), TEST_ENTRY(null_generator_or_output_is_refused))
