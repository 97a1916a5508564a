/* Adam with bias correction, optional global-norm clipping and an EMA of the
 * weights (the update rule of torch.optim.Adam, no weight decay). */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "scorekit/nn.h"

struct sk_adam {
  sk_adam_config cfg;
  size_t n;
  int64_t t;
  float *m, *v, *ema; /* (n) each */
};

sk_adam_config sk_adam_config_default(void) {
  sk_adam_config c = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.999f};
  return c;
}

sk_adam *sk_adam_new(const sk_adam_config *cfg, size_t n, const float *params) {
  if (!(cfg->lr > 0) || !(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) ||
      !(cfg->eps > 0) || !(cfg->clip_norm >= 0) || !(cfg->ema_rate >= 0 && cfg->ema_rate < 1)) {
    sk__fail(SK_ERR_INVALID, "adam: lr %g, betas (%g, %g), eps %g, clip %g or ema %g out of range",
             cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->clip_norm, cfg->ema_rate);
    return NULL;
  }
  sk_adam *a = sk__calloc(1, sizeof *a);
  if (!a || !(a->m = sk__calloc(n, sizeof(float))) || !(a->v = sk__calloc(n, sizeof(float))) ||
      !(a->ema = sk__malloc(n * sizeof(float)))) {
    sk_adam_free(a);
    sk__fail(SK_ERR_NOMEM, "adam: out of memory");
    return NULL;
  }
  a->cfg = *cfg;
  a->n = n;
  memcpy(a->ema, params, n * sizeof(float));
  return a;
}

void sk_adam_free(sk_adam *a) {
  if (!a) return;
  sk__free(a->m);
  sk__free(a->v);
  sk__free(a->ema);
  sk__free(a);
}

sk_status sk_adam_step(sk_adam *a, float *params, const float *grads, float *grad_norm) {
  double sq = 0.0; /* sequential: the same bits on any thread count */
  for (size_t i = 0; i < a->n; i++) sq += (double)grads[i] * grads[i];
  if (!isfinite(sq)) {
    for (size_t i = 0; i < a->n; i++)
      if (!isfinite(grads[i]))
        return sk__fail(SK_ERR_NUMERIC, "adam: gradient element %zu is %g", i, grads[i]);
    return sk__fail(SK_ERR_NUMERIC, "adam: gradient norm overflows");
  }
  float norm = (float)sqrt(sq);
  if (grad_norm) *grad_norm = norm;
  float scale = 1.0f;
  if (a->cfg.clip_norm > 0 && norm > a->cfg.clip_norm) scale = a->cfg.clip_norm / (norm + 1e-6f);
  a->t++;
  const float b1 = a->cfg.beta1, b2 = a->cfg.beta2;
  const float c1 = 1.0f - powf(b1, (float)a->t), c2 = 1.0f - powf(b2, (float)a->t);
  const float step = a->cfg.lr / c1, rc2 = 1.0f / sqrtf(c2), eps = a->cfg.eps;
  const float er = a->cfg.ema_rate;
  float *restrict p = params, *restrict m = a->m, *restrict v = a->v, *restrict e = a->ema;
  for (size_t i = 0; i < a->n; i++) {
    float g = grads[i] * scale;
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    p[i] -= step * m[i] / (sqrtf(v[i]) * rc2 + eps);
    e[i] = er > 0 ? er * e[i] + (1.0f - er) * p[i] : p[i];
  }
  return SK_OK;
}

int64_t sk_adam_steps(const sk_adam *a) { return a->t; }
float *sk_adam_m(sk_adam *a) { return a->m; }
float *sk_adam_v(sk_adam *a) { return a->v; }
float *sk_adam_ema(sk_adam *a) { return a->ema; }
void sk_adam_set_steps(sk_adam *a, int64_t t) { a->t = t; }
