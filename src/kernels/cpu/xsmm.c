/* libxsmm, compiled into scorekit from its header-only form, with a kernel
 * registry sized for what a score network dispatches. Debian's libxsmm.a has
 * the default of 131,072 entries, and libxsmm_init made 11 MB of every
 * process resident (a sixteenth of a U-Net training step's peak); with
 * SK_XSMM_REGISTRY entries, 3 MB. A graph dispatches a few dozen shapes (a
 * U-Net training step at batch 64: 37 products); were the registry full,
 * libxsmm would make no more kernels, and the op asking for one would fail
 * with a named error.
 *
 * The rest of scorekit calls libxsmm through the functions below (and may
 * include <libxsmm.h> for its types and constants): in header-only form
 * libxsmm's functions are static to this file. It is compiled without
 * scorekit's warnings and sanitizers, as libxsmm's own build does. */
#define SK_XSMM_REGISTRY 16384
#define LIBXSMM_CAPACITY_REGISTRY SK_XSMM_REGISTRY
#include <libxsmm_source.h>

#include "kernels/cpu/xsmm.h"

void sk__xsmm_init(void) { libxsmm_init(); }

int sk__xsmm_avx2(void) { return libxsmm_get_target_archid() >= LIBXSMM_X86_AVX2; }

libxsmm_smmfunction sk__xsmm_smm(libxsmm_blasint m, libxsmm_blasint n, libxsmm_blasint k,
                                 libxsmm_blasint lda, libxsmm_blasint ldb, libxsmm_blasint ldc,
                                 int beta1, int flags) {
  const float one = 1.0f, zero = 0.0f;
  return libxsmm_smmdispatch(m, n, k, &lda, &ldb, &ldc, &one, beta1 ? &one : &zero, &flags, NULL);
}

libxsmm_smmfunction_reducebatch_offs sk__xsmm_smm_offs(libxsmm_blasint m, libxsmm_blasint n,
                                                       libxsmm_blasint k, libxsmm_blasint lda,
                                                       libxsmm_blasint ldb, libxsmm_blasint ldc,
                                                       int beta1) {
  const float one = 1.0f, zero = 0.0f;
  const int flags = LIBXSMM_GEMM_FLAG_NONE;
  return libxsmm_smmdispatch_reducebatch_offs(m, n, k, &lda, &ldb, &ldc, &one,
                                              beta1 ? &one : &zero, &flags, NULL);
}

void sk__xsmm_transpose(float *out, const float *in, libxsmm_blasint m, libxsmm_blasint n,
                        libxsmm_blasint ldi, libxsmm_blasint ldo) {
  libxsmm_otrans(out, in, sizeof(float), m, n, ldi, ldo);
}
