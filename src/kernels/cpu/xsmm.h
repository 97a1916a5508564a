/* scorekit's door to libxsmm (xsmm.c, which compiles it in). */
#ifndef SK_KERNELS_CPU_XSMM_H
#define SK_KERNELS_CPU_XSMM_H

#include <libxsmm.h>

/* libxsmm_init. */
void sk__xsmm_init(void);
/* Whether libxsmm's JIT targets AVX2 or better on this CPU. */
int sk__xsmm_avx2(void);
/* The kernel c (m × n, column-major, ldc) = a (m × k, lda) · b (k × n, ldb)
 * (b transposed with LIBXSMM_GEMM_FLAG_TRANS_B in flags), plus c when beta1;
 * NULL when libxsmm makes none. */
libxsmm_smmfunction sk__xsmm_smm(libxsmm_blasint m, libxsmm_blasint n, libxsmm_blasint k,
                                 libxsmm_blasint lda, libxsmm_blasint ldb, libxsmm_blasint ldc,
                                 int beta1, int flags);
/* The batch-reduce kernel c (m × n, ldc) = Σ_i a_i (m × k, lda) · b_i (k ×
 * n, ldb), plus c when beta1, with a_i = a + a_offs[i] bytes and b_i = b +
 * b_offs[i] bytes for i < *count: every element's sum kept in registers
 * over all the terms. NULL when libxsmm makes none. */
libxsmm_smmfunction_reducebatch_offs sk__xsmm_smm_offs(libxsmm_blasint m, libxsmm_blasint n,
                                                       libxsmm_blasint k, libxsmm_blasint lda,
                                                       libxsmm_blasint ldb, libxsmm_blasint ldc,
                                                       int beta1);
/* out (n × m, ldo) = in (m × n, ldi)ᵀ, column-major: libxsmm_otrans. */
void sk__xsmm_transpose(float *out, const float *in, libxsmm_blasint m, libxsmm_blasint n,
                        libxsmm_blasint ldi, libxsmm_blasint ldo);

#endif
