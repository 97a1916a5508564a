/* Inpainting and imputation with a score model: the predictor-corrector
 * sampler or annealed Langevin, run with the known entries held at their
 * values noised to the chain's level (pc.c, sample.c), after the checks of
 * the mask and the input. */
#include <math.h>

#include "core/internal.h"
#include "score/internal.h"
#include "scorekit/sample.h"

/* Rows [first, first + n) of a run, which x and mask hold. */
static sk_status check_inputs(const float *x, const float *mask, int64_t first, int64_t n, int d) {
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < d; j++) {
      const float m = mask[i * d + j], v = x[i * d + j];
      if (m != 0 && m != 1)
        return sk__fail(SK_ERR_INVALID, "inpaint: mask row %lld column %d is %g, not 0 or 1",
                        (long long)(first + i), j, m);
      if (!isfinite(v))
        return sk__fail(SK_ERR_NUMERIC, "inpaint: input row %lld column %d is %g",
                        (long long)(first + i), j, v);
    }
  return SK_OK;
}

sk_status sk_inpaint(sk_score_fn *f, const sk_inpaint_config *cfg, sk_rng *r, float *x,
                     const float *mask, int64_t n) {
  return sk_inpaint_rows(f, cfg, r, x, mask, n, 0, n);
}

sk_status sk_inpaint_rows(sk_score_fn *f, const sk_inpaint_config *cfg, sk_rng *r, float *x,
                          const float *mask, int64_t n, int64_t first, int64_t count) {
  sk_status st = sk__check_run("inpaint", f, cfg, r, x, count);
  if (st != SK_OK) return st;
  if (!mask && count > 0) return sk__fail(SK_ERR_INVALID, "inpaint: mask is NULL");
  if (cfg->sampler != SK_INPAINT_PC && cfg->sampler != SK_INPAINT_LANGEVIN)
    return sk__fail(SK_ERR_INVALID, "inpaint: unknown sampler %d (SK_INPAINT_PC or "
                                    "SK_INPAINT_LANGEVIN)", (int)cfg->sampler);
  if ((st = sk__check_row_range("inpaint", f, n, first, count)) != SK_OK) return st;
  if ((st = check_inputs(x, mask, first, count, sk_score_fn_dim(f))) != SK_OK) return st;
  return cfg->sampler == SK_INPAINT_PC
             ? sk__pc_rows(f, &cfg->pc, r, x, mask, n, first, count)
             : sk__langevin_rows(f, &cfg->langevin, r, x, mask, n, first, count);
}
