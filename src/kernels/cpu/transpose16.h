/* A 16×16 float transpose in AVX-512 registers, shared by the packed
 * products (matmul.c) and the convolutions' weight gradient (conv_gemm.c):
 * pairs of rows interleaved by element, then by pair, then 128-bit lanes
 * twice. Include only where <immintrin.h> is, on x86-64. */
#ifndef SK_KERNELS_CPU_TRANSPOSE16_H
#define SK_KERNELS_CPU_TRANSPOSE16_H

#include <immintrin.h>
#include <stdint.h>

/* The first k lanes of a 16-lane mask (none for k ≤ 0, all from 16). */
static inline __mmask16 sk__first_lanes(int64_t k) {
  return k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k > 0 ? k : 0)) - 1u);
}

/* u[b] = column b of the rows r[0..15]; r is overwritten. */
__attribute__((target("avx512f"), always_inline)) static inline void sk__transpose16_regs(
    __m512 r[16], __m512 u[16]) {
  for (int a = 0; a < 16; a += 2) {
    u[a] = _mm512_unpacklo_ps(r[a], r[a + 1]);
    u[a + 1] = _mm512_unpackhi_ps(r[a], r[a + 1]);
  }
  for (int a = 0; a < 16; a += 4) {
    const __m512d u0 = _mm512_castps_pd(u[a]), u1 = _mm512_castps_pd(u[a + 1]);
    const __m512d u2 = _mm512_castps_pd(u[a + 2]), u3 = _mm512_castps_pd(u[a + 3]);
    r[a] = _mm512_castpd_ps(_mm512_unpacklo_pd(u0, u2));
    r[a + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(u0, u2));
    r[a + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(u1, u3));
    r[a + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(u1, u3));
  }
  /* r[4q + c], lane l: rows 4q..4q+3 of column c + 4l. */
  for (int a = 0; a < 4; a++) {
    const __m512 x0 = _mm512_shuffle_f32x4(r[a], r[a + 4], 0x88);
    const __m512 x1 = _mm512_shuffle_f32x4(r[a], r[a + 4], 0xdd);
    const __m512 y0 = _mm512_shuffle_f32x4(r[a + 8], r[a + 12], 0x88);
    const __m512 y1 = _mm512_shuffle_f32x4(r[a + 8], r[a + 12], 0xdd);
    u[a] = _mm512_shuffle_f32x4(x0, y0, 0x88);
    u[a + 4] = _mm512_shuffle_f32x4(x1, y1, 0x88);
    u[a + 8] = _mm512_shuffle_f32x4(x0, y0, 0xdd);
    u[a + 12] = _mm512_shuffle_f32x4(x1, y1, 0xdd);
  }
}

#endif
