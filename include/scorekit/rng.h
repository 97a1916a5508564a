/* scorekit random numbers: Philox4x32-10, counter based. The value drawn for
 * (seed, stream, index) is a pure function of those three numbers, so results
 * never depend on the number of threads or on the order of draws. */
#ifndef SCOREKIT_RNG_H
#define SCOREKIT_RNG_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The raw generator: 4 x 32 random bits for a 128-bit counter and 64-bit key. */
SK_API void sk_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* A position in a random stream: `seed` selects the key, `stream` separates
 * independent uses (data shuffling, noise, projections, ...), `offset` is the
 * index of the next value. Plain data; copy it to save or restore a position. */
typedef struct sk_rng {
  uint64_t seed;
  uint64_t stream;
  uint64_t offset;
} sk_rng;

SK_API sk_rng sk_rng_make(uint64_t seed, uint64_t stream);

/* Fill out[0..n) with values number offset..offset+n-1 of the stream and
 * advance the offset by n (rounded up to a multiple of 4: one Philox block
 * gives 4 values). Uniform on [0, 1) with 24 random bits; standard normal by
 * Box-Muller on pairs; Rademacher +-1. */
SK_API void sk_rng_uniform(sk_rng *r, float *out, size_t n);
SK_API void sk_rng_normal(sk_rng *r, float *out, size_t n);
SK_API void sk_rng_rademacher(sk_rng *r, float *out, size_t n);
/* A uniform 32-bit integer below `bound` (bound > 0), unbiased; advances by 4. */
SK_API uint32_t sk_rng_below(sk_rng *r, uint32_t bound);

#ifdef __cplusplus
}
#endif
#endif
