/* The built-in 2-D toy distributions of the FFJORD family (Grathwohl et al.
 * 2019, toy_data.py), drawn deterministically from a counter-based rng. */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "scorekit/data.h"

#define PI 3.14159265358979323846

/* Rows are drawn in chunks with stack buffers, every draw a multiple of 4 values
 * except possibly the last chunk's, so no scratch allocation is needed. */
enum { CHUNK = 256 };

/* Fills rows [0, m) of x (m, 2) and labels (m, never NULL) from r. */
typedef void (*toy_chunk_fn)(sk_rng *r, int m, float *x, int32_t *labels);

static int pick(float u, int classes) {
  int c = (int)(u * (float)classes);
  return c < classes ? c : classes - 1;
}

static void moons_chunk(sk_rng *r, int m, float *x, int32_t *labels) {
  float ul[CHUNK], ut[CHUNK], e[2 * CHUNK];
  sk_rng_uniform(r, ul, (size_t)m);
  sk_rng_uniform(r, ut, (size_t)m);
  sk_rng_normal(r, e, 2 * (size_t)m);
  for (int i = 0; i < m; i++) {
    /* sklearn make_moons: the upper moon is (cos t, sin t), the lower one
     * (1 - cos t, 1 - sin t - 0.5), t in [0, π]. */
    const int lab = ul[i] < 0.5f ? 0 : 1;
    const double t = PI * ut[i];
    double a = lab == 0 ? cos(t) : 1.0 - cos(t);
    double b = lab == 0 ? sin(t) : 0.5 - sin(t);
    a += 0.1 * e[2 * i];
    b += 0.1 * e[2 * i + 1];
    x[2 * i] = (float)(2.0 * a - 1.0);
    x[2 * i + 1] = (float)(2.0 * b - 0.2);
    labels[i] = lab;
  }
}

static void swissroll_chunk(sk_rng *r, int m, float *x, int32_t *labels) {
  float ut[CHUNK], e[2 * CHUNK];
  sk_rng_uniform(r, ut, (size_t)m);
  sk_rng_normal(r, e, 2 * (size_t)m);
  for (int i = 0; i < m; i++) {
    /* sklearn make_swiss_roll: t = 1.5π(1 + 2U), (t cos t, 21U, t sin t) plus
     * noise; the height is dropped, so its draw is skipped. */
    const double t = 1.5 * PI * (1.0 + 2.0 * ut[i]);
    x[2 * i] = (float)((t * cos(t) + e[2 * i]) / 5.0);
    x[2 * i + 1] = (float)((t * sin(t) + e[2 * i + 1]) / 5.0);
    labels[i] = -1;
  }
}

static void checkerboard_chunk(sk_rng *r, int m, float *x, int32_t *labels) {
  float u1[CHUNK], u2[CHUNK], u3[CHUNK];
  sk_rng_uniform(r, u1, (size_t)m);
  sk_rng_uniform(r, u2, (size_t)m);
  sk_rng_uniform(r, u3, (size_t)m);
  for (int i = 0; i < m; i++) {
    const double x1 = 4.0 * u1[i] - 2.0;
    /* Python's floor(x1) % 2 is 0 or 1 also for negative x1. */
    double parity = fmod(floor(x1), 2.0);
    if (parity < 0) parity += 2.0;
    const double x2 = u2[i] - (u3[i] < 0.5f ? 0.0 : 2.0) + parity;
    x[2 * i] = (float)(2.0 * x1);
    x[2 * i + 1] = (float)(2.0 * x2);
    labels[i] = -1;
  }
}

static void rings_chunk(sk_rng *r, int m, float *x, int32_t *labels) {
  float ur[CHUNK], ua[CHUNK], e[2 * CHUNK];
  sk_rng_uniform(r, ur, (size_t)m);
  sk_rng_uniform(r, ua, (size_t)m);
  sk_rng_normal(r, e, 2 * (size_t)m);
  for (int i = 0; i < m; i++) {
    const int ring = pick(ur[i], 4);
    const double rad = 3.0 * (4 - ring) / 4.0, a = 2.0 * PI * ua[i];
    x[2 * i] = (float)(rad * cos(a) + 0.08 * e[2 * i]);
    x[2 * i + 1] = (float)(rad * sin(a) + 0.08 * e[2 * i + 1]);
    labels[i] = ring;
  }
}

static void pinwheel_chunk(sk_rng *r, int m, float *x, int32_t *labels) {
  float uc[CHUNK], e[2 * CHUNK];
  sk_rng_uniform(r, uc, (size_t)m);
  sk_rng_normal(r, e, 2 * (size_t)m);
  for (int i = 0; i < m; i++) {
    const int arm = pick(uc[i], 5);
    const double f0 = 1.0 + 0.3 * e[2 * i], f1 = 0.1 * e[2 * i + 1];
    const double a = 2.0 * PI * arm / 5.0 + 0.25 * exp(f0);
    /* FFJORD's einsum("ti,tij->tj", f, [[cos, -sin], [sin, cos]]). */
    x[2 * i] = (float)(2.0 * (f0 * cos(a) + f1 * sin(a)));
    x[2 * i + 1] = (float)(2.0 * (-f0 * sin(a) + f1 * cos(a)));
    labels[i] = arm;
  }
}

static void spirals_chunk(sk_rng *r, int m, float *x, int32_t *labels) {
  float ul[CHUNK], un[CHUNK], ux[CHUNK], uy[CHUNK], e[2 * CHUNK];
  sk_rng_uniform(r, ul, (size_t)m);
  sk_rng_uniform(r, un, (size_t)m);
  sk_rng_uniform(r, ux, (size_t)m);
  sk_rng_uniform(r, uy, (size_t)m);
  sk_rng_normal(r, e, 2 * (size_t)m);
  for (int i = 0; i < m; i++) {
    const int lab = ul[i] < 0.5f ? 0 : 1;
    const double t = sqrt((double)un[i]) * 540.0 * (2.0 * PI) / 360.0;
    const double dx = -cos(t) * t + 0.5 * ux[i], dy = sin(t) * t + 0.5 * uy[i];
    const double sgn = lab == 0 ? 1.0 : -1.0;
    x[2 * i] = (float)(sgn * dx / 3.0 + 0.1 * e[2 * i]);
    x[2 * i + 1] = (float)(sgn * dy / 3.0 + 0.1 * e[2 * i + 1]);
    labels[i] = lab;
  }
}

typedef struct toy_set {
  const char *name;
  int classes;
  toy_chunk_fn chunk; /* NULL: drawn from the mixture of the same name */
} toy_set;

static const toy_set toys[] = {
    {"mog8", 8, NULL},
    {"moons", 2, moons_chunk},
    {"swissroll", 0, swissroll_chunk},
    {"checkerboard", 0, checkerboard_chunk},
    {"rings", 4, rings_chunk},
    {"pinwheel", 5, pinwheel_chunk},
    {"2spirals", 2, spirals_chunk},
};

static const toy_set *toy_find(const char *name) {
  for (size_t i = 0; name && i < sizeof toys / sizeof toys[0]; i++)
    if (strcmp(toys[i].name, name) == 0) return &toys[i];
  sk__fail(SK_ERR_INVALID,
           "unknown toy data set '%s' (known: mog8, moons, swissroll, checkerboard, rings, "
           "pinwheel, 2spirals)",
           name ? name : "(null)");
  return NULL;
}

int sk_toy_count(void) { return (int)(sizeof toys / sizeof toys[0]); }

const char *sk_toy_name(int i) { return i >= 0 && i < sk_toy_count() ? toys[i].name : NULL; }

int sk_toy_classes(const char *name) {
  const toy_set *t = toy_find(name);
  return t ? t->classes : -1;
}

sk_status sk_toy_sample(const char *name, sk_rng *r, int64_t n, float *x, int32_t *labels) {
  const toy_set *t = toy_find(name);
  if (!t) return SK_ERR_INVALID;
  if (!r) return sk__fail(SK_ERR_INVALID, "sk_toy_sample: NULL rng");
  if (n < 0 || (uint64_t)n > SIZE_MAX / (2 * sizeof(float)))
    return sk__fail(SK_ERR_INVALID, "sk_toy_sample: n is %lld", (long long)n);
  if (n > 0 && !x) return sk__fail(SK_ERR_INVALID, "sk_toy_sample: NULL x");
  if (n == 0) return SK_OK;
  if (!t->chunk) {
    sk_gmm *g = sk_gmm_builtin(t->name);
    if (!g) return SK_ERR_NOMEM; /* the only way a built-in fails; message already set */
    sk_status st = sk_gmm_sample(g, 0.0f, r, n, x, labels);
    sk_gmm_free(g);
    return st;
  }
  int32_t lab[CHUNK];
  for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
    const int m = (int)SK_MIN((int64_t)CHUNK, n - i0);
    t->chunk(r, m, x + 2 * i0, lab);
    if (labels) memcpy(labels + i0, lab, (size_t)m * sizeof *lab);
  }
  return SK_OK;
}
