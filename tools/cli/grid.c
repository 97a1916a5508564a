/* `scorekit grid`: draw images from a .npy file as a PNG grid, in input
 * order, one row per class (from labels or a classifier), or as a strip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: scorekit grid --in IMAGES.npy --out GRID.png [flags]\n"
    "\n"
    "Draws one-channel images (n, 1, h, w) or (n, h, w), e.g. from scorekit sample,\n"
    "as a grid of grey pictures separated by thin lines.\n"
    "\n"
    "  --in FILE.npy         the images\n"
    "  --out FILE.png        the picture\n"
    "  --cols C              images a row (default 10)\n"
    "  --rows R              rows in input order (default: as many as the first 100\n"
    "                        images need)\n"
    "  --labels FILE.npy     integer classes of the images (n): one row per class,\n"
    "                        class 0 at the top, each its first C images in input order\n"
    "  --classifier FILE     the same with the classes a classifier gives the images\n"
    "                        (argmax at its ladder's smallest σ, EMA weights); the images\n"
    "                        are divided by its data scale first, as scorekit eval does\n"
    "  --strip               all images in one row: a trajectory (K snapshots of one\n"
    "                        sample, K, 1, h, w), left to right\n"
    "  --lo L, --hi H        the values drawn black and white (default 0 and the\n"
    "                        classifier's data scale; without one, 255 when a value\n"
    "                        exceeds 1, else 1); values beyond are clipped\n"
    "  --upscale U           each pixel as a U × U square (default 2)\n";

/* Integer classes in 0..65535 from a labels file of n entries. */
static int load_labels(const char *path, int64_t n, int **out, int *classes) {
  sk_tensor *t = NULL;
  if (sk_npy_load(path, &t) != SK_OK) return !cli_fail("%s", sk_last_error());
  const int64_t m = sk_tensor_numel(t);
  int ok = m == n && sk_tensor_ndim(t) == 1;
  if (!ok) {
    if (sk_tensor_ndim(t) != 1)
      cli_fail("--labels %s: %d dimensions; need one label per image, shape (%lld)", path,
               sk_tensor_ndim(t), (long long)n);
    else
      cli_fail("--labels %s: %lld labels for %lld images", path, (long long)m, (long long)n);
    sk_tensor_free(t);
    return 0;
  }
  int *y = cli_alloc((size_t)n * sizeof *y);
  if (!y) {
    sk_tensor_free(t);
    return !cli_fail("out of memory for %lld labels", (long long)n);
  }
  *classes = 0;
  for (int64_t i = 0; i < n; i++) {
    const float v = sk_tensor_cdata(t)[i];
    if (!(v >= 0 && v <= 65535) || v != floorf(v)) {
      cli_fail("--labels %s: entry %lld is %g, not a class in 0..65535", path, (long long)i, (double)v);
      free(y);
      sk_tensor_free(t);
      return 0;
    }
    y[i] = (int)v;
    if (y[i] + 1 > *classes) *classes = y[i] + 1;
  }
  sk_tensor_free(t);
  *out = y;
  return 1;
}

/* The classes the classifier at path gives the images x (n, dim), divided
 * by its data scale in place; *hi is set to that scale. */
static int classify(const char *path, float *x, int64_t n, int h, int w, int **out, int *classes,
                    float *hi) {
  sk_model *m = NULL;
  static sk_model_info info;
  if (sk_model_load(path, 1, &m, &info) != SK_OK) return !cli_fail("%s", sk_last_error());
  const sk_model_config *mc = sk_model_get_config(m);
  int ok = 0;
  float *logits = NULL;
  int *y = NULL;
  if (!sk_model_is_classifier(mc) || info.n_sigmas < 1) {
    cli_fail("--classifier %s: %s", path, sk_model_is_classifier(mc) ? "no σ ladder in its metadata"
                                                                     : "is a score model, not a classifier");
    goto done;
  }
  const sk_convnet_config *cv = sk_model_get_convnet(m);
  if (mc->dim != h * w || (cv && (cv->image[0] != 1 || cv->image[1] != h || cv->image[2] != w))) {
    cli_fail("--classifier %s takes %d values an image, the images have 1×%d×%d", path, mc->dim, h, w);
    goto done;
  }
  const float scale = info.data_scale > 0 ? info.data_scale : 1;
  *hi = scale;
  logits = cli_alloc((size_t)n * (size_t)mc->classes * sizeof *logits);
  y = cli_alloc((size_t)n * sizeof *y);
  if (!logits || !y) {
    cli_fail("out of memory for the classes of %lld images", (long long)n);
    goto done;
  }
  for (int64_t i = 0; i < n * h * w; i++) x[i] /= scale;
  if (sk_model_features(m, x, n, info.sigmas[info.n_sigmas - 1], NULL, logits) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  for (int64_t i = 0; i < n; i++) {
    int best = 0;
    for (int k = 1; k < mc->classes; k++)
      if (logits[i * mc->classes + k] > logits[i * mc->classes + best]) best = k;
    y[i] = best;
  }
  for (int64_t i = 0; i < n * h * w; i++) x[i] *= scale; /* back for drawing */
  *classes = mc->classes;
  *out = y;
  y = NULL;
  ok = 1;
done:
  free(logits);
  free(y);
  sk_model_free(m);
  return ok;
}

int cmd_grid(int argc, char **argv) {
  static const char *const valued[] = {"--in", "--out", "--cols", "--rows", "--labels",
                                       "--classifier", "--lo", "--hi", "--upscale", NULL};
  static const char *const switches[] = {"--strip", "--help", "-h", NULL};
  const char *in = NULL, *out = NULL, *labels = NULL, *clf = NULL;
  long long cols = 10, rows = 0, upscale = 2;
  double lo = 0, hi = 0;
  int strip = 0, hi_set = 0, cols_set = 0;
  unsigned long long seen = 0;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage, stdout);
      return 0;
    }
    if (!strcmp(f, "--strip")) {
      strip = 1;
      continue;
    }
    const char *v = cli_value("grid", argc, argv, &i, valued, switches, &seen);
    if (!v) return 1;
    int ok = 1;
    if (!strcmp(f, "--in")) in = v;
    else if (!strcmp(f, "--out")) out = v;
    else if (!strcmp(f, "--labels")) labels = v;
    else if (!strcmp(f, "--classifier")) clf = v;
    else if (!strcmp(f, "--cols")) ok = cols_set = cli_int(f, v, 1, 4096, &cols);
    else if (!strcmp(f, "--rows")) ok = cli_int(f, v, 1, 4096, &rows);
    else if (!strcmp(f, "--upscale")) ok = cli_int(f, v, 1, 32, &upscale);
    else if (!strcmp(f, "--lo")) ok = cli_float(f, v, -1e30, 1e30, &lo);
    else if (!strcmp(f, "--hi")) ok = hi_set = cli_float(f, v, -1e30, 1e30, &hi);
    else return cli_fail("unknown flag %s (see scorekit grid --help)", f);
    if (!ok) return 1;
  }
  if (!in || !out) return cli_fail("--in and --out are required (see scorekit grid --help)");
  if (labels && clf) return cli_fail("--labels and --classifier both give classes: pass one");
  if (strip && (labels || clf || rows || cols_set))
    return cli_fail("--strip draws one row in input order: no --labels, --classifier, --rows or --cols");
  if (rows && (labels || clf)) return cli_fail("--rows: the classes set the rows with --labels or --classifier");
  if (hi_set && !(hi > lo)) return cli_fail("--hi %g must be above --lo %g", hi, lo);
  static const char *const flags[4] = {"--out", "--in", "--labels", "--classifier"};
  const char *const paths[4] = {out, in, labels, clf};
  if (!cli_distinct(flags, paths, 1, 4) || !cli_check_out("--out", out)) return 1;
  sk_tensor *t = NULL;
  if (sk_npy_load(in, &t) != SK_OK) return cli_fail("%s", sk_last_error());
  const int nd = sk_tensor_ndim(t);
  const int64_t *sh = sk_tensor_shape(t);
  if (!((nd == 4 && sh[1] == 1) || nd == 3) || sh[0] < 1 || sh[nd - 1] > 4096 || sh[nd - 2] > 4096) {
    char got[96] = "(";
    for (int k = 0; k < nd; k++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", k ? ", " : "", (long long)sh[k]);
    sk_tensor_free(t);
    return cli_fail("%s: shape %s), need one-channel images (n, 1, h, w) or (n, h, w)", in, got);
  }
  const int64_t n = sh[0];
  const int h = (int)sh[nd - 2], w = (int)sh[nd - 1];
  float *x = sk_tensor_data(t);
  int *cls = NULL, classes = 0, rc = 1;
  int64_t *cells = NULL;
  float top = 1;
  if (labels && !load_labels(labels, n, &cls, &classes)) goto done;
  if (clf && !classify(clf, x, n, h, w, &cls, &classes, &top)) goto done;
  if (!clf)
    for (int64_t i = 0; i < n * h * w; i++)
      if (x[i] > 1) {
        top = 255;
        break;
      }
  sk_image_grid_layout lay = {0, (int)cols, (float)lo, hi_set ? (float)hi : top, (int)upscale, NULL};
  if (!hi_set && !(lay.hi > lay.lo)) {
    cli_fail("--lo %g: not below the default white %g; pass --hi", lo, (double)lay.hi);
    goto done;
  }
  if (strip) {
    if (n > 4096) {
      cli_fail("--strip: %lld images, at most 4096 in one row", (long long)n);
      goto done;
    }
    lay.rows = 1;
    lay.cols = (int)n;
  } else if (cls) {
    lay.rows = classes;
    cells = cli_alloc((size_t)classes * (size_t)cols * sizeof *cells);
    if (!cells) {
      cli_fail("out of memory for %d × %lld cells", classes, cols);
      goto done;
    }
    for (int64_t i = 0; i < classes * cols; i++) cells[i] = -1;
    int64_t *fill = (int64_t *)cli_alloc((size_t)classes * sizeof *fill);
    if (!fill) {
      cli_fail("out of memory for %d classes", classes);
      goto done;
    }
    memset(fill, 0, (size_t)classes * sizeof *fill);
    for (int64_t i = 0; i < n; i++)
      if (fill[cls[i]] < cols) cells[cls[i] * cols + fill[cls[i]]++] = i;
    free(fill);
    lay.cells = cells;
  } else {
    const int64_t shown = rows ? rows * cols : (n < 100 ? n : 100);
    lay.rows = rows ? (int)rows : (int)((shown + cols - 1) / cols);
    if (lay.rows > 4096) lay.rows = 4096;
  }
  if (sk_plot_image_grid(out, x, n, h, w, &lay) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  printf("wrote %s: %d × %d cells of %d×%d images%s\n", out, lay.rows, lay.cols, h, w,
         cls ? ", one row per class" : strip ? ", one strip" : "");
  rc = 0;
done:
  free(cls);
  free(cells);
  sk_tensor_free(t);
  return rc;
}
