/* `scorekit eval`: sample-quality metrics of samples against a data set. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: scorekit eval --samples FILE.npy --data NAME|FILE [--json]\n"
    "       scorekit eval --samples FILE.npy --data NAME|FILE --classifier FILE [--n N] [--json]\n"
    "       scorekit eval --samples FILE.npy --data NAME|FILE --class Y [--classifier FILE]\n"
    "\n"
    "Compares samples with data: MMD² (RBF kernel, median-heuristic bandwidth),\n"
    "energy distance and sliced 2-Wasserstein distance, each beside the same\n"
    "metric between two independent data samples of the same size (its noise\n"
    "floor). For a built-in mixture (mog8) also: the share of samples within\n"
    "3 std of a mode, the mode weights, the modes covered and the mean true\n"
    "log-density.\n"
    "\n"
    "  --samples FILE.npy    (n, d) samples, e.g. from scorekit sample, or images\n"
    "                        (n, c, h, w) in the data's range; images compare as rows,\n"
    "                        both divided by the data's scale (uint8 pixels: 255)\n"
    "  --data NAME|FILE      a built-in set or a file to compare with (as in train)\n"
    "  --seed S              for the reference draws and projections (default 0)\n"
    "  --class Y             the samples are meant to be of class Y (sample --class Y):\n"
    "                        compare them with the data's rows labelled Y only\n"
    "  --classifier FILE     with --class: also the share of samples that this\n"
    "                        noise-conditional classifier (train --objective\n"
    "                        classifier), at the smallest σ of its ladder, assigns to Y\n"
    "                        (its EMA weights), and the Fréchet distance in its features\n"
    "                        between m samples and m rows of class Y beside that between\n"
    "                        two disjoint sets of m rows of class Y (m: the samples, at\n"
    "                        most half the class's rows); without --class, see below\n"
    "  --json                one JSON object instead of text (a value that is not\n"
    "                        finite is null; the floor is left out when the data\n"
    "                        are too few to split: n/a in the text)\n"
    "\n"
    "With --classifier (a model.safetensors of scorekit train --objective classifier,\n"
    "e.g. --model convnet on images), the samples are compared in the classifier's\n"
    "feature space instead, at its ladder's smallest σ (its EMA weights): the\n"
    "Fréchet distance between the penultimate-layer features of N samples and of N\n"
    "data rows, beside the same distance between two disjoint sets of N data rows\n"
    "(what a perfect model would score), and the histogram of the classes the\n"
    "classifier gives the samples (argmax) with its largest deviation from uniform\n"
    "and from the histogram it gives the data. Samples must have the classifier's\n"
    "shape: images (n, c, h, w), or (n, h, w) for one channel, or rows (n, d).\n"
    "  --classifier FILE     the classifier\n"
    "  --raw                 its raw weights instead of their EMA\n"
    "  --n N                 rows compared (default: all samples, at most half the\n"
    "                        data); the first N samples, data rows drawn from --seed\n";

/* A number for JSON, which has no infinities or NaN: null for those. */
static void json_num(FILE *out, const char *before, double v) {
  if (isfinite(v)) fprintf(out, "%s%.6g", before, v);
  else fprintf(out, "%snull", before);
}

typedef struct metrics {
  double mmd2, energy, sw2;
} metrics;

static int compute(const float *x, int64_t n, const float *y, int64_t m, int d, uint64_t seed,
                   metrics *out) {
  /* The metrics cost O(n·m); 5,000 rows a side keeps them to seconds. */
  n = n > 5000 ? 5000 : n;
  m = m > 5000 ? 5000 : m;
  return sk_mmd_rbf(x, n, y, m, d, 0, &out->mmd2, NULL) == SK_OK &&
         sk_energy_distance(x, n, y, m, d, &out->energy) == SK_OK &&
         sk_sliced_wasserstein(x, n, y, m, d, 200, seed, &out->sw2) == SK_OK;
}

/* The rows of ref labelled y, copied in order into *rows (*n of them). */
static int class_reference(const char *data, const sk_dataset *ref, int y, float **rows,
                           int64_t *n) {
  const int32_t *labels = sk_dataset_labels(ref);
  const int d = sk_dataset_dim(ref);
  if (!labels) return cli_fail("--class: %s has no labels", data) == 0;
  if (y >= sk_dataset_classes(ref))
    return cli_fail("--class %d: %s has classes 0..%d", y, data, sk_dataset_classes(ref) - 1) == 0;
  int64_t k = 0;
  for (int64_t i = 0; i < sk_dataset_size(ref); i++) k += labels[i] == y;
  if (k < 2) return cli_fail("--class %d: %s has %lld rows of it", y, data, (long long)k) == 0;
  *rows = cli_alloc((size_t)k * (size_t)d * sizeof **rows);
  if (!*rows) return cli_fail("out of memory for %lld rows of class %d", (long long)k, y) == 0;
  k = 0;
  for (int64_t i = 0; i < sk_dataset_size(ref); i++)
    if (labels[i] == y)
      memcpy(*rows + (size_t)(k++) * (size_t)d, sk_dataset_x(ref) + (size_t)i * (size_t)d,
             (size_t)d * sizeof(float));
  *n = k;
  return 1;
}

/* perm[0..count): count distinct rows of nr, a partial shuffle by seed
 * (perm holds nr entries). */
static void draw_rows(uint64_t seed, int64_t nr, int64_t count, uint32_t *perm) {
  sk_rng pr = sk_rng_make(seed, 0x64617461); /* "data" */
  for (int64_t i = 0; i < nr; i++) perm[i] = (uint32_t)i;
  for (int64_t i = 0; i < count; i++) {
    const int64_t j = i + sk_rng_below(&pr, (uint32_t)(nr - i));
    const uint32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

/* What a classifier says of n samples x (n, d), already in the model's scale,
 * meant to be of class y, at the smallest σ of its ladder: the share it
 * assigns to y, and the Fréchet distance between the features of the first
 * m samples and m rows of class y (*fd) beside the same distance between two
 * disjoint sets of m rows of class y (*floor), m = min(n, nr / 2) of the nr
 * class rows (*m; 0 and no distances when nr < 4), drawn by seed. The
 * classifier must have seen its data divided by `scale`, as x and rows are. */
static int classifier_class_eval(const char *path, const float *x, int64_t n, int d, int y,
                                 const float *rows, int64_t nr, float scale, uint64_t seed,
                                 double *share, double *fd, double *floor, int64_t *m) {
  static sk_model_info info;
  sk_model *clf = NULL;
  int32_t *labels = NULL;
  uint32_t *perm = NULL;
  float *pick = NULL, *feat = NULL;
  int ok = 0;
  *m = nr >= 4 ? (n < nr / 2 ? n : nr / 2) : 0;
  if (sk_model_load(path, 1, &clf, &info) != SK_OK) {
    cli_fail("%s", sk_last_error());
  } else if (!sk_model_is_classifier(sk_model_get_config(clf)) || info.n_sigmas < 1) {
    cli_fail("--classifier %s: not a noise-conditional classifier", path);
  } else if (sk_model_get_config(clf)->dim != d || y >= sk_model_get_config(clf)->classes) {
    cli_fail("--classifier %s: takes %d dimensions and classes 0..%d; the samples have %d, "
             "--class is %d", path, sk_model_get_config(clf)->dim,
             sk_model_get_config(clf)->classes - 1, d, y);
  } else if ((info.data_scale > 0 ? info.data_scale : 1) != scale) {
    cli_fail("%s: the classifier was trained on values divided by %g, the data are divided by %g",
             path, (double)(info.data_scale > 0 ? info.data_scale : 1), (double)scale);
  } else {
    const int64_t mm = *m;
    const int F = sk_model_num_features(clf);
    labels = cli_alloc((size_t)n * sizeof *labels);
    perm = cli_alloc((size_t)nr * sizeof *perm);
    pick = cli_alloc((size_t)(2 * mm) * (size_t)d * sizeof *pick + 1);
    feat = cli_alloc((size_t)(3 * mm) * (size_t)F * sizeof *feat + 1);
    if (!labels || !perm || !pick || !feat) {
      cli_fail("out of memory for the features of %lld rows", (long long)(n + 2 * mm));
      goto done;
    }
    const float sigma = info.sigmas[info.n_sigmas - 1];
    for (int64_t i = 0; i < n; i++) labels[i] = y;
    if (sk_classifier_accuracy(clf, x, labels, n, sigma, share) != SK_OK) {
      cli_fail("%s", sk_last_error());
      goto done;
    }
    ok = 1;
    if (mm < 2) goto done;
    draw_rows(seed, nr, 2 * mm, perm);
    for (int64_t i = 0; i < 2 * mm; i++)
      memcpy(pick + (size_t)i * d, rows + (size_t)perm[i] * d, (size_t)d * sizeof *pick);
    ok = sk_model_features(clf, x, mm, sigma, feat, NULL) == SK_OK &&
         sk_model_features(clf, pick, 2 * mm, sigma, feat + (size_t)mm * F, NULL) == SK_OK &&
         sk_frechet_distance(feat, mm, feat + (size_t)mm * F, mm, F, fd) == SK_OK &&
         sk_frechet_distance(feat + (size_t)2 * mm * F, mm, feat + (size_t)mm * F, mm, F,
                             floor) == SK_OK;
    if (!ok) cli_fail("%s", sk_last_error());
  }
done:
  free(labels);
  free(perm);
  free(pick);
  free(feat);
  sk_model_free(clf);
  return ok;
}

int cmd_eval(int argc, char **argv) { return cli_eval_to(stdout, argc, argv); }

/* The class (argmax of the logits) of each of n rows; ties to the lower. */
static void classes_of(const float *logits, int64_t n, int k, int *cls) {
  for (int64_t i = 0; i < n; i++) {
    int best = 0;
    for (int j = 1; j < k; j++)
      if (logits[i * k + j] > logits[i * k + best]) best = j;
    cls[i] = best;
  }
}

/* Samples shaped as the classifier's input: (n, c, h, w), (n, h, w) with one
 * channel, or rows (n, d) for a classifier of rows. */
static int shape_matches(const sk_tensor *s, const sk_model *clf, const int64_t chw[3]) {
  const int nd = sk_tensor_ndim(s);
  const int64_t *sh = sk_tensor_shape(s);
  if (!chw[0]) return nd == 2 && sh[1] == sk_model_get_config(clf)->dim;
  if (nd == 4) return sh[1] == chw[0] && sh[2] == chw[1] && sh[3] == chw[2];
  return nd == 3 && chw[0] == 1 && sh[1] == chw[1] && sh[2] == chw[2];
}

/* "(n, 1, 28, 28)" */
static void shape_text(char *buf, size_t cap, const sk_tensor *s) {
  int len = snprintf(buf, cap, "(");
  for (int k = 0; k < sk_tensor_ndim(s) && len > 0 && (size_t)len < cap; k++)
    len += snprintf(buf + len, cap - (size_t)len, "%s%lld", k ? ", " : "",
                    (long long)sk_tensor_shape(s)[k]);
  if (len > 0 && (size_t)len < cap) snprintf(buf + len, cap - (size_t)len, ")");
}

typedef struct feature_report {
  int64_t n;
  int k;
  float sigma;
  double fd, floor, accuracy; /* accuracy < 0: the data have no labels */
  double *hist, *data_hist;   /* (k) shares */
  double dev_uniform, dev_data;
} feature_report;

static void print_features(FILE *out, const feature_report *r, const char *samples,
                           const char *data, const char *clf, int json) {
  if (json) {
    fprintf(out, "{\"n\":%lld,\"sigma\":", (long long)r->n);
    json_num(out, "", r->sigma);
    json_num(out, ",\"frechet\":", r->fd);
    json_num(out, ",\"floor\":{\"frechet\":", r->floor);
    fprintf(out, "},\"classes\":%d,\"histogram\":[", r->k);
    for (int j = 0; j < r->k; j++) json_num(out, j ? "," : "", r->hist[j]);
    fprintf(out, "],\"data_histogram\":[");
    for (int j = 0; j < r->k; j++) json_num(out, j ? "," : "", r->data_hist[j]);
    fprintf(out, "]");
    json_num(out, ",\"max_deviation_uniform\":", r->dev_uniform);
    json_num(out, ",\"max_deviation_data\":", r->dev_data);
    if (r->accuracy >= 0) json_num(out, ",\"data_accuracy\":", r->accuracy);
    fprintf(out, "}\n");
    return;
  }
  fprintf(out, "%lld samples of %s against %lld rows of %s, in the features of %s at σ = %.4g\n",
          (long long)r->n, samples, (long long)r->n, data, clf, (double)r->sigma);
  fprintf(out, "  %-22s %12s %14s\n", "metric", "samples", "data vs data");
  fprintf(out, "  %-22s %12.4g %14.4g\n", "Fréchet distance", r->fd, r->floor);
  fprintf(out, "  classes given to the samples (data):");
  for (int j = 0; j < r->k; j++) fprintf(out, " %.3f (%.3f)", r->hist[j], r->data_hist[j]);
  fprintf(out, "\n  largest deviation from uniform %.3f, from the data's histogram %.3f\n",
          r->dev_uniform, r->dev_data);
  if (r->accuracy >= 0)
    fprintf(out, "  classifier accuracy on the %lld data rows: %.4f\n", (long long)(2 * r->n),
            r->accuracy);
}

/* eval --classifier: the samples s (in the data's range) against data. */
static int eval_features(FILE *out, sk_tensor *s, const char *samples, const char *data,
                         const char *clf_path, int use_ema, long long n_flag, uint64_t seed,
                         int json) {
  sk_model *clf = NULL;
  static sk_model_info info;
  sk_dataset *ref = NULL;
  float *feat = NULL, *logits = NULL, *rows = NULL;
  int *cls = NULL, rc = 1;
  uint32_t *perm = NULL;
  feature_report r = {0};
  if (sk_model_load(clf_path, use_ema, &clf, &info) != SK_OK)
    return cli_fail("%s", sk_last_error());
  const sk_model_config *mc = sk_model_get_config(clf);
  if (!sk_model_is_classifier(mc)) {
    cli_fail("--classifier %s: is a score model, not a classifier", clf_path);
    goto done;
  }
  if (info.n_sigmas < 1) {
    cli_fail("--classifier %s: no σ ladder in its metadata", clf_path);
    goto done;
  }
  const sk_convnet_config *cv = sk_model_get_convnet(clf);
  int64_t chw[3] = {info.image_shape[0], info.image_shape[1], info.image_shape[2]};
  if (cv) chw[0] = cv->image[0], chw[1] = cv->image[1], chw[2] = cv->image[2];
  if (!shape_matches(s, clf, chw)) {
    char got[128];
    shape_text(got, sizeof got, s);
    if (chw[0])
      cli_fail("%s: samples of shape %s, but %s takes images (n, %lld, %lld, %lld)", samples,
               got, clf_path, (long long)chw[0], (long long)chw[1], (long long)chw[2]);
    else
      cli_fail("%s: samples of shape %s, but %s takes rows (n, %d)", samples, got, clf_path,
               mc->dim);
    goto done;
  }
  /* A built-in 2-D set is drawn: twice the rows compared; files and image
   * sets are read whole. */
  const int64_t ns = sk_tensor_shape(s)[0];
  const long long draws = sk_toy_classes(data) >= 0 ? 2 * (n_flag ? n_flag : ns) : 0;
  if (!cli_load_data(data, draws, seed + 1, -1, NULL, &ref)) goto done;
  const int d = mc->dim, k = mc->classes;
  if (sk_dataset_dim(ref) != d) {
    cli_fail("%s has %d values a row, the classifier %s takes %d", data, sk_dataset_dim(ref),
             clf_path, d);
    goto done;
  }
  /* The classifier saw its data divided by its data_scale, the data set is
   * divided by its own scale: they must agree, and the samples (in the
   * data's range) are divided by it too. */
  const float scale = sk_dataset_scale(ref), cscale = info.data_scale > 0 ? info.data_scale : 1;
  if (scale != cscale) {
    cli_fail("%s: the classifier was trained on values divided by %g, %s is divided by %g",
             clf_path, (double)cscale, data, (double)scale);
    goto done;
  }
  const int64_t nr = sk_dataset_size(ref);
  if (nr < 4) {
    cli_fail("%s: %lld rows, too few for two disjoint sets of at least 2", data, (long long)nr);
    goto done;
  }
  int64_t n = n_flag ? n_flag : ns < nr / 2 ? ns : nr / 2;
  if (n > ns || 2 * n > nr) {
    cli_fail("--n %lld: needs %lld samples (%s has %lld) and twice as many data rows (%s has %lld)",
             (long long)n, (long long)n, samples, (long long)ns, data, (long long)nr);
    goto done;
  }
  const float sigma = info.sigmas[info.n_sigmas - 1];
  const int F = sk_model_num_features(clf);
  feat = cli_alloc((size_t)(3 * n) * (size_t)F * sizeof *feat);
  logits = cli_alloc((size_t)(3 * n) * (size_t)k * sizeof *logits);
  rows = cli_alloc((size_t)(2 * n) * (size_t)d * sizeof *rows);
  cls = cli_alloc((size_t)(3 * n) * sizeof *cls);
  perm = cli_alloc((size_t)nr * sizeof *perm);
  r.hist = cli_alloc((size_t)(2 * k) * sizeof *r.hist);
  if (!feat || !logits || !rows || !cls || !perm || !r.hist) {
    cli_fail("out of memory for the features of %lld rows", (long long)(3 * n));
    goto done;
  }
  /* Two disjoint sets of n data rows: the first 2n of a shuffle by seed. */
  draw_rows(seed, nr, 2 * n, perm);
  for (int64_t i = 0; i < 2 * n; i++)
    memcpy(rows + (size_t)i * d, sk_dataset_x(ref) + (size_t)perm[i] * d, (size_t)d * sizeof *rows);
  float *x = sk_tensor_data(s);
  if (scale != 1)
    for (int64_t i = 0; i < n * d; i++) x[i] /= scale;
  /* Rows 0..n: the samples; n..2n and 2n..3n: the two data sets. */
  if (sk_model_features(clf, x, n, sigma, feat, logits) != SK_OK) {
    cli_fail("%s: %s", samples, sk_last_error());
    goto done;
  }
  if (sk_model_features(clf, rows, 2 * n, sigma, feat + (size_t)n * F, logits + (size_t)n * k) !=
          SK_OK ||
      sk_frechet_distance(feat, n, feat + (size_t)n * F, n, F, &r.fd) != SK_OK ||
      sk_frechet_distance(feat + (size_t)2 * n * F, n, feat + (size_t)n * F, n, F, &r.floor) !=
          SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  classes_of(logits, 3 * n, k, cls);
  r.n = n, r.k = k, r.sigma = sigma, r.data_hist = r.hist + k, r.accuracy = -1;
  for (int j = 0; j < 2 * k; j++) r.hist[j] = 0;
  for (int64_t i = 0; i < n; i++) {
    r.hist[cls[i]] += 1.0 / (double)n;
    r.data_hist[cls[n + i]] += 1.0 / (double)n;
  }
  for (int j = 0; j < k; j++) {
    r.dev_uniform = fmax(r.dev_uniform, fabs(r.hist[j] - 1.0 / k));
    r.dev_data = fmax(r.dev_data, fabs(r.hist[j] - r.data_hist[j]));
  }
  const int32_t *labels = sk_dataset_labels(ref);
  if (labels) {
    int64_t right = 0;
    for (int64_t i = 0; i < 2 * n; i++) right += cls[n + i] == labels[perm[i]];
    r.accuracy = (double)right / (double)(2 * n);
  }
  print_features(out, &r, samples, data, clf_path, json);
  rc = 0;
done:
  free(feat);
  free(logits);
  free(rows);
  free(cls);
  free(perm);
  free(r.hist);
  sk_dataset_free(ref);
  sk_model_free(clf);
  return rc;
}

int cli_eval_to(FILE *out, int argc, char **argv) {
  static const char *const valued[] = {"--samples", "--data", "--seed", "--class",
                                       "--classifier", "--n", NULL};
  static const char *const switches[] = {"--json", "--raw", "--help", "-h", NULL};
  const char *samples = NULL, *data = NULL, *clf = NULL;
  long long seed = 0, n_flag = 0, cls = -1;
  int json = 0, raw = 0;
  unsigned long long seen = 0;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage, out);
      return 0;
    }
    if (!strcmp(f, "--json")) {
      json = 1;
      continue;
    }
    if (!strcmp(f, "--raw")) {
      raw = 1;
      continue;
    }
    const char *v = cli_value("eval", argc, argv, &i, valued, switches, &seen);
    if (!v) return 1;
    if (!strcmp(f, "--samples")) samples = v;
    else if (!strcmp(f, "--data")) data = v;
    else if (!strcmp(f, "--classifier")) clf = v;
    else if (!strcmp(f, "--n")) {
      if (!cli_int(f, v, 2, INT32_MAX, &n_flag)) return 1;
    }
    else if (!strcmp(f, "--seed")) {
      if (!cli_int(f, v, 0, INT64_MAX, &seed)) return 1;
    } else if (!strcmp(f, "--class")) {
      if (!cli_int(f, v, 0, 65535, &cls)) return 1;
    } else return cli_fail("unknown flag %s (see scorekit eval --help)", f);
  }
  if (!samples || !data) return cli_fail("--samples and --data are required (see scorekit eval --help)");
  if ((n_flag || raw) && !clf)
    return cli_fail("%s: applies with --classifier only", n_flag ? "--n" : "--raw");
  if ((n_flag || raw) && cls >= 0)
    return cli_fail("%s: applies to --classifier's Fréchet distance, not with --class",
                    n_flag ? "--n" : "--raw");
  sk_tensor *s = NULL;
  if (sk_npy_load(samples, &s) != SK_OK) return cli_fail("%s", sk_last_error());
  if (sk_tensor_ndim(s) < 2 || sk_tensor_shape(s)[0] < 2 || sk_tensor_numel(s) == 0 ||
      sk_tensor_numel(s) / sk_tensor_shape(s)[0] > INT32_MAX) {
    sk_tensor_free(s);
    return cli_fail("%s: expected (n >= 2, d) samples or n >= 2 images", samples);
  }
  /* With --class, the classifier gives the share of samples of that class
   * beside the class's metrics below; without, the Fréchet distance. */
  if (clf && cls < 0) {
    const int frc = eval_features(out, s, samples, data, clf, !raw, n_flag, (uint64_t)seed, json);
    sk_tensor_free(s);
    return frc;
  }
  /* Images compare as rows of c·h·w values. */
  const int64_t n = sk_tensor_shape(s)[0];
  const int d = (int)(sk_tensor_numel(s) / n);
  int rc = 1;
  sk_dataset *ref = NULL, *ref2 = NULL;
  float *class_rows = NULL;
  double share = -1;
  sk_gmm *law = sk_gmm_builtin(data);
  const int toy = sk_toy_classes(data) >= 0;
  /* Reference: fresh draws of a built-in set; rows of a file otherwise. */
  if (!cli_load_data(data, toy ? n : 0, (unsigned long long)seed + 1, -1, NULL, &ref)) goto done;
  if (toy && !cli_load_data(data, n, (unsigned long long)seed + 2, -1, NULL, &ref2)) goto done;
  if (sk_dataset_dim(ref) != d) {
    cli_fail("%s has %d dimensions, %s %d", samples, d, data, sk_dataset_dim(ref));
    goto done;
  }
  /* Samples come in the data's range (scorekit sample multiplies back); the
   * data set holds the data divided by its scale, so the samples are too. */
  const float scale = sk_dataset_scale(ref);
  if (scale != 1)
    for (int64_t i = 0; i < sk_tensor_numel(s); i++) sk_tensor_data(s)[i] /= scale;
  int64_t nr = sk_dataset_size(ref);
  const float *ref_x = sk_dataset_x(ref);
  if (cls >= 0 && !class_reference(data, ref, (int)cls, &class_rows, &nr)) goto done;
  if (class_rows) ref_x = class_rows;
  double cfd = 0, cfloor = 0;
  int64_t cm = 0;
  if (clf && !classifier_class_eval(clf, sk_tensor_cdata(s), n, d, (int)cls, ref_x, nr, scale,
                                    (uint64_t)seed, &share, &cfd, &cfloor, &cm))
    goto done;
  metrics got, floor = {0, 0, 0};
  int have_floor = 0;
  if (!compute(sk_tensor_cdata(s), n, ref_x, nr, d, (uint64_t)seed, &got)) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  if (toy && !class_rows) {
    have_floor = compute(sk_dataset_x(ref2), n, sk_dataset_x(ref), nr, d, (uint64_t)seed, &floor);
  } else if (nr >= 4) { /* the reference's two halves */
    have_floor = compute(ref_x, nr / 2, ref_x + (nr / 2) * d, nr - nr / 2, d, (uint64_t)seed, &floor);
  }
  sk_mode_stats ms = {0};
  double logp = 0;
  int mixture = law && sk_gmm_dim(law) == d && !class_rows;
  if (mixture) {
    int k = sk_gmm_components(law);
    float *stds = cli_alloc((size_t)k * sizeof *stds), *lp = cli_alloc((size_t)n * sizeof *lp);
    if (!stds || !lp) {
      free(stds);
      free(lp);
      cli_fail("out of memory for the log-densities of %lld samples", (long long)n);
      goto done;
    }
    for (int j = 0; j < k; j++) stds[j] = sqrtf(sk_gmm_covs(law)[(size_t)j * d * d]);
    int ok = sk_mode_stats_compute(sk_tensor_cdata(s), n, d, k, sk_gmm_means(law), stds,
                                   sk_gmm_weights(law), &ms) == SK_OK &&
             sk_gmm_log_density(law, 0, sk_tensor_cdata(s), n, lp) == SK_OK;
    for (int64_t i = 0; ok && i < n; i++) logp += lp[i] / (double)n;
    free(stds);
    free(lp);
    if (!ok) {
      cli_fail("%s", sk_last_error());
      goto done;
    }
  }
  if (json) {
    fprintf(out, "{\"n\":%lld", (long long)n);
    if (cls >= 0) fprintf(out, ",\"class\":%lld,\"class_rows\":%lld", cls, (long long)nr);
    if (share >= 0) json_num(out, ",\"classifier_share\":", share);
    if (cm >= 2) {
      fprintf(out, ",\"frechet_rows\":%lld", (long long)cm);
      json_num(out, ",\"frechet\":", cfd);
      json_num(out, ",\"frechet_floor\":", cfloor);
    }
    json_num(out, ",\"mmd2\":", got.mmd2);
    json_num(out, ",\"energy\":", got.energy);
    json_num(out, ",\"sliced_w2\":", got.sw2);
    if (have_floor) {
      json_num(out, ",\"floor\":{\"mmd2\":", floor.mmd2);
      json_num(out, ",\"energy\":", floor.energy);
      json_num(out, ",\"sliced_w2\":", floor.sw2);
      fprintf(out, "}");
    }
    if (mixture) {
      json_num(out, ",\"within3\":", ms.within3);
      fprintf(out, ",\"covered\":%d", ms.covered);
      json_num(out, ",\"max_weight_err\":", ms.max_weight_err);
      json_num(out, ",\"mean_log_density\":", logp);
      fprintf(out, ",\"weights\":[");
      for (int j = 0; j < ms.k; j++) json_num(out, j ? "," : "", ms.weight[j]);
      fprintf(out, "]");
    }
    fprintf(out, "}\n");
  } else {
    /* The floor column: n/a where it was not computed, never a made-up 0. */
    char fl[3][32];
    const double fv[3] = {floor.mmd2, floor.energy, floor.sw2};
    for (int j = 0; j < 3; j++) {
      if (have_floor) snprintf(fl[j], sizeof fl[j], "%.4g", fv[j]);
      else snprintf(fl[j], sizeof fl[j], "n/a");
    }
    if (cls >= 0)
      fprintf(out, "%lld samples of %s against the %lld rows of class %lld of %s\n", (long long)n,
              samples, (long long)nr, cls, data);
    else
      fprintf(out, "%lld samples of %s against %s\n", (long long)n, samples, data);
    if (share >= 0)
      fprintf(out, "  %s assigns %.4f of the samples to class %lld\n", clf, share, cls);
    if (cm >= 2)
      fprintf(out, "  Fréchet distance in its features, %lld samples against %lld rows of class "
                   "%lld: %.4g (two sets of those rows: %.4g)\n", (long long)cm, (long long)cm,
              cls, cfd, cfloor);
    fprintf(out, "  %-22s %12s %14s\n", "metric", "samples", "data vs data");
    fprintf(out, "  %-22s %12.4g %14s\n", "MMD² (RBF, median h)", got.mmd2, fl[0]);
    fprintf(out, "  %-22s %12.4g %14s\n", "energy distance", got.energy, fl[1]);
    fprintf(out, "  %-22s %12.4g %14s\n", "sliced W2", got.sw2, fl[2]);
    if (!have_floor && !toy)
      fprintf(out, "  (no data-vs-data floor: %s has fewer than 4 rows to split)\n", data);
    if (mixture) {
      fprintf(out, "  within 3 std of a mode: %.3f; modes covered: %d of %d; max mode-weight error %.3f\n",
             ms.within3, ms.covered, ms.k, ms.max_weight_err);
      fprintf(out, "  mode weights:");
      for (int j = 0; j < ms.k; j++) fprintf(out, " %.3f", ms.weight[j]);
      fprintf(out, "\n  mean true log-density: %.4f\n", logp);
    }
  }
  rc = 0;
done:
  free(class_rows);
  sk_gmm_free(law);
  sk_dataset_free(ref);
  sk_dataset_free(ref2);
  sk_tensor_free(s);
  return rc;
}
