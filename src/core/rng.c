/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011) and the draws built on it. Value i of a stream comes from block
 * i / 4, lane i % 4, so any split of the work across threads gives the same bits. */
#include <math.h>
#include <omp.h>

#include "core/internal.h"
#include "scorekit/rng.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void sk_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = (uint32_t)p1;
    c2 = n2;
    c3 = (uint32_t)p0;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

sk_rng sk_rng_make(uint64_t seed, uint64_t stream) {
  sk_rng r = {seed, stream, 0};
  return r;
}

static inline void sk_rng_block(const sk_rng *r, uint64_t block, uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)r->stream,
                     (uint32_t)(r->stream >> 32)};
  uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
  sk_philox4x32(ctr, key, out);
}

/* Box-Muller on the pairs (lane 0, 1) and (lane 2, 3) of a block, in double so
 * the tails are right; u1 in (0, 1] keeps the log finite. */
static inline void sk_rng_normal4(const uint32_t u[4], float out[4]) {
  const double two_pi = 6.283185307179586476925286766559;
  for (int p = 0; p < 4; p += 2) {
    double u1 = ((double)u[p] + 1.0) * (1.0 / 4294967296.0);
    double u2 = (double)u[p + 1] * (1.0 / 4294967296.0);
    double rad = sqrt(-2.0 * log(u1));
    out[p] = (float)(rad * cos(two_pi * u2));
    out[p + 1] = (float)(rad * sin(two_pi * u2));
  }
}

enum { SK_DRAW_UNIFORM, SK_DRAW_NORMAL, SK_DRAW_RADEMACHER };

static void sk_rng_fill(sk_rng *r, float *out, size_t n, int kind, const char *fn) {
  if (!r || (!out && n)) {
    sk__fail(SK_ERR_INVALID, "%s: NULL %s", fn, r ? "output" : "generator");
    return;
  }
  /* Offsets stay multiples of 4 so a block is never split between calls. */
  uint64_t first = (r->offset + 3) / 4;
  int64_t nblocks = (int64_t)((n + 3) / 4);
  const sk_rng rr = *r;
#pragma omp parallel for schedule(static) num_threads(sk__num_threads()) \
    if (nblocks > 4096 && !omp_in_parallel())
  for (int64_t b = 0; b < nblocks; b++) {
    uint32_t u[4];
    float v[4];
    sk_rng_block(&rr, first + (uint64_t)b, u);
    if (kind == SK_DRAW_NORMAL) {
      sk_rng_normal4(u, v);
    } else {
      for (int l = 0; l < 4; l++)
        v[l] = kind == SK_DRAW_UNIFORM ? (float)(u[l] >> 8) * (1.0f / 16777216.0f)
                                       : ((u[l] >> 31) ? 1.0f : -1.0f);
    }
    size_t base = (size_t)b * 4;
    for (int l = 0; l < 4 && base + (size_t)l < n; l++) out[base + (size_t)l] = v[l];
  }
  r->offset = (first + (uint64_t)nblocks) * 4;
}

void sk_rng_uniform(sk_rng *r, float *out, size_t n) {
  sk_rng_fill(r, out, n, SK_DRAW_UNIFORM, __func__);
}
void sk_rng_normal(sk_rng *r, float *out, size_t n) {
  sk_rng_fill(r, out, n, SK_DRAW_NORMAL, __func__);
}
void sk_rng_rademacher(sk_rng *r, float *out, size_t n) {
  sk_rng_fill(r, out, n, SK_DRAW_RADEMACHER, __func__);
}

uint32_t sk_rng_below(sk_rng *r, uint32_t bound) {
  if (!r) {
    sk__fail(SK_ERR_INVALID, "sk_rng_below: NULL generator");
    return 0;
  }
  if (bound <= 1) return 0;
  /* Rejection on the top multiple of bound: unbiased. */
  uint32_t limit = (uint32_t)(UINT64_C(4294967296) - UINT64_C(4294967296) % bound - 1);
  for (;;) {
    uint32_t u[4];
    uint64_t block = (r->offset + 3) / 4;
    sk_rng_block(r, block, u);
    r->offset = (block + 1) * 4;
    for (int l = 0; l < 4; l++)
      if (u[l] <= limit) return u[l] % bound;
  }
}
