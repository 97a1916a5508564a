/* What the golden-value tests share: loading a golden .npy file (a missing,
 * unreadable or wrongly sized one fails, naming it) and comparing a value with
 * it by max |got − want| / max |want|. The includer defines GOLDEN (the
 * folder, ending in '/') and TOL. */
#ifndef SK_TESTS_GOLDEN_H
#define SK_TESTS_GOLDEN_H

#include <math.h>

#include "scorekit/io.h"
#include "scorekit/scorekit.h"
#include "test.h"

/* The worst relative error seen by the running case. */
static double worst_rel;

/* Loads GOLDEN "<name>.npy" and checks it holds `numel` values. NULL, with a
 * message naming the file, if it cannot. */
static sk_tensor *load(const char *name, int64_t numel) {
  char path[512];
  snprintf(path, sizeof path, GOLDEN "%s.npy", name);
  sk_tensor *t = NULL;
  if (sk_npy_load(path, &t) != SK_OK) {
    fprintf(stderr, "  cannot load golden file %s: %s\n", path, sk_last_error());
    return NULL;
  }
  if (sk_tensor_numel(t) != numel) {
    fprintf(stderr, "  golden file %s holds %lld values, expected %lld\n", path,
            (long long)sk_tensor_numel(t), (long long)numel);
    sk_tensor_free(t);
    return NULL;
  }
  return t;
}

/* max |got − want| / max |want| over a tensor (llm.c check_tensor in spirit). */
static int close_rel(const char *what, const float *got, const sk_tensor *want, double tol) {
  const float *w = sk_tensor_cdata(want);
  int64_t n = sk_tensor_numel(want), worst = 0;
  double maxdiff = 0, scale = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - w[i]);
    if (!(d <= maxdiff)) maxdiff = d, worst = i; /* a NaN is the worst */
    if (fabs(w[i]) > scale) scale = fabs(w[i]);
  }
  double rel = maxdiff / (scale > 0 ? scale : 1);
  if (!(rel <= worst_rel)) worst_rel = rel;
  if (!(rel <= tol)) {
    fprintf(stderr, "  %s: relative error %.3g > %.1g (element %lld: %.9g vs %.9g)\n", what, rel,
            tol, (long long)worst, got[worst], w[worst]);
    for (int64_t i = 0; i < n && i < 4; i++) fprintf(stderr, "    [%lld] %.9g vs %.9g\n", (long long)i, got[i], w[i]);
    return 0;
  }
  return 1;
}

/* Loads `name` and compares graph node `n` with it. */
static int check_node(sk_graph *g, sk_node n, const char *name) {
  const float *got = sk_graph_data(g, n);
  if (!got) {
    fprintf(stderr, "  %s: the graph holds no value for it\n", name);
    return 0;
  }
  sk_tensor *want = load(name, sk_node_numel(g, n));
  int ok = want && close_rel(name, got, want, TOL);
  sk_tensor_free(want);
  return ok;
}

#endif
