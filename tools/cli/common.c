/* Flag parsing that rejects anything that is not exactly a number in range,
 * checking output paths, allocation, and loading a data set by name or file
 * (rows or images). */
#define _XOPEN_SOURCE 700 /* POSIX 2008 and realpath */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_mpi.h"

int cli_fail(const char *fmt, ...) {
  /* One write: under mpirun, other output must not cut the line. */
  char msg[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "scorekit%s: %s\n", cli_mpi_tag(), msg);
  return 1;
}

/* Flags that apply to some samplers only: given with another, refused. */
static const struct {
  const char *flag;
  int samplers;
} only_for[] = {{"--steps-per-level", CLI_LANGEVIN}, {"--eps", CLI_LANGEVIN},
                {"--denoise", CLI_LANGEVIN},         {"--init", CLI_LANGEVIN},
                {"--init-range", CLI_LANGEVIN},      {"--steps", CLI_PC},
                {"--snr", CLI_PC},                   {"--corrector-steps", CLI_PC},
                {"--rtol", CLI_ODE},                 {"--atol", CLI_ODE},
                {"--no-denoise", CLI_PC | CLI_ODE}};

#define CLI_ALL_SAMPLERS (CLI_LANGEVIN | CLI_PC | CLI_ODE)

const char *cli_sampler_name(int s) {
  return s == CLI_LANGEVIN ? "langevin" : s == CLI_PC ? "pc" : "ode";
}

/* The samplers flag f applies to (all for a common flag). */
static int applies_to(const char *f) {
  for (size_t k = 0; k < sizeof only_for / sizeof only_for[0]; k++)
    if (!strcmp(f, only_for[k].flag)) return only_for[k].samplers;
  return CLI_ALL_SAMPLERS;
}

cli_sampler_opts cli_sampler_defaults(void) {
  return (cli_sampler_opts){.steps_per_level = 100, .corrector_steps = SK_PC_CORRECTOR_STEPS,
                            .snr = SK_PC_SNR, .rtol = SK_ODE_TOL, .atol = SK_ODE_TOL};
}

int cli_sampler_switch(const char *f, cli_sampler_opts *o) {
  if (!strcmp(f, "--denoise")) return o->denoise = 1;
  if (!strcmp(f, "--no-denoise")) return o->no_denoise = 1;
  return 0;
}

int cli_sampler_value(const char *f, const char *v, cli_sampler_opts *o) {
  if (!strcmp(f, "--sampler")) return o->sampler = v, 1;
  if (!strcmp(f, "--steps-per-level")) return cli_int(f, v, 1, 1000000, &o->steps_per_level);
  if (!strcmp(f, "--steps")) return o->steps_set = cli_int(f, v, 2, 1000000, &o->steps);
  if (!strcmp(f, "--corrector-steps")) return cli_int(f, v, 0, 1000, &o->corrector_steps);
  if (!strcmp(f, "--eps")) return cli_float(f, v, 1e-12, 1e6, &o->eps);
  if (!strcmp(f, "--snr")) return cli_float(f, v, 1e-6, 100, &o->snr);
  if (!strcmp(f, "--rtol")) return cli_float(f, v, 1e-12, 0.1, &o->rtol);
  if (!strcmp(f, "--atol")) return cli_float(f, v, 1e-12, 1e3, &o->atol);
  return -1;
}

int cli_sampler_choose(int argc, char **argv, const char *sampler, int offered, int fallback) {
  int s = 0;
  if (sampler) {
    for (int k = CLI_LANGEVIN; k <= CLI_ODE; k <<= 1)
      if (offered & k && !strcmp(sampler, cli_sampler_name(k))) s = k;
    if (!s) {
      char names[32] = "";
      for (int k = CLI_LANGEVIN; k <= CLI_ODE; k <<= 1)
        if (offered & k)
          snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                   *names ? ", " : "", cli_sampler_name(k));
      return cli_fail("--sampler: unknown \"%s\" (%s)", sampler, names), 0;
    }
  } else { /* the sampler the flags given belong to */
    int can = offered;
    const char *first = NULL;
    for (int i = 0; i < argc; i++) {
      if (strncmp(argv[i], "--", 2)) continue;
      const int a = applies_to(argv[i]);
      if (!(can & a))
        return cli_fail("%s and %s: flags of different samplers (choose one with --sampler)",
                        first, argv[i]), 0;
      if (a != CLI_ALL_SAMPLERS && !first) first = argv[i];
      can &= a;
    }
    s = can & fallback ? fallback : can & CLI_PC ? CLI_PC : can & CLI_LANGEVIN ? CLI_LANGEVIN
                                                                                : CLI_ODE;
  }
  for (int i = 0; i < argc; i++)
    if (!strncmp(argv[i], "--", 2) && !(applies_to(argv[i]) & s))
      return cli_fail("%s: does not apply to --sampler %s", argv[i], cli_sampler_name(s)), 0;
  return s;
}

int cli_langevin_eps(cli_sampler_opts *o, int L, float s1, float sL) {
  if (o->eps > 0) return 1;
  /* γ: the ladder's mean ratio (exact for the geometric ladders train makes). */
  o->eps = L > 1 ? sk_langevin_ncsnv2_eps((int)o->steps_per_level,
                                          powf(s1 / sL, 1.0f / (float)(L - 1)), sL)
                 : 1e-3;
  if (!(o->eps > 0)) return cli_fail("%s", sk_last_error()), 0;
  return 1;
}

sk_pc_config cli_pc_config(const cli_sampler_opts *o, int image, float s1, float sL,
                           const sk_sample_hooks *hooks) {
  const long long N = o->steps_set ? o->steps : image ? SK_PC_LEVELS_IMAGES : SK_PC_LEVELS_POINTS;
  return (sk_pc_config){s1, sL, (int)N, (int)o->corrector_steps, (float)o->snr, !o->no_denoise,
                        hooks};
}

/* The value after the first occurrence of flag f. */
static const char *cli_first_value(int argc, char **argv, const char *f) {
  for (int j = 0; j + 1 < argc; j++)
    if (!strcmp(argv[j], f)) return argv[j + 1];
  return "";
}

void *cli_alloc(size_t n) {
  static long long left = -2; /* -2: not read yet; -1: never fail */
  if (left == -2) {
    const char *e = getenv("SCOREKIT_DEBUG_FAIL_ALLOC");
    char *end;
    left = e && *e ? strtoll(e, &end, 10) : -1;
    if (left < -1 || (e && *e && *end)) left = -1;
  }
  if (left == 0) return NULL;
  if (left > 0) left--;
  return malloc(n ? n : 1);
}

/* The position of f in a NULL-terminated list, or -1. */
static int listed(const char *f, const char *const *list) {
  for (int k = 0; list[k]; k++)
    if (!strcmp(f, list[k])) return k;
  return -1;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i, const char *const *valued,
                      const char *const *switches, unsigned long long *seen) {
  const char *f = argv[*i];
  const int k = listed(f, valued);
  if (k < 0) {
    cli_fail("unknown flag %s (see scorekit %s --help)", f, cmd);
    return NULL;
  }
  /* Another of the command's flags where the value should be: the value is
   * missing (not "unknown flag" for the value, or the flag taken as one). */
  if (*i + 1 >= argc || listed(argv[*i + 1], valued) >= 0 || listed(argv[*i + 1], switches) >= 0) {
    cli_fail("%s: missing value (see scorekit %s --help)", f, cmd);
    return NULL;
  }
  /* Given twice, one of the values would be ignored. */
  if (k < 64 && (*seen >> k & 1)) {
    cli_fail("%s: given twice (\"%s\" and \"%s\")", f, cli_first_value(argc, argv, f), argv[*i + 1]);
    return NULL;
  }
  if (k < 64) *seen |= 1ull << k;
  return argv[++*i];
}

int cli_check_out(const char *flag, const char *path) {
  int removed = 0;
  if (sk_output_prepare(path, &removed) != SK_OK) {
    cli_fail("%s %s", flag, sk_last_error());
    return 0;
  }
  if (removed)
    printf("removed %d stale temporary file%s (*.tmp.PID.*, of processes that are gone) beside %s\n",
           removed, removed > 1 ? "s" : "", path);
  return 1;
}

/* A file yet to be written as the writer will reach it: through any
 * symbolic links to it (a dangling one names its target, up to 40), then
 * its directory's real path and its name, so that "x.npy", "./x.npy" and a
 * link to x.npy compare equal; the path as given when its directory cannot
 * be resolved. */
static void canonical_name(const char *given, char *buf, size_t cap) {
  char path[4096], link[4096], joined[8200];
  snprintf(path, sizeof path, "%s", given);
  for (int hops = 0; hops < 40; hops++) {
    const ssize_t k = readlink(path, link, sizeof link - 1);
    if (k < 0) break;
    link[k] = '\0';
    const char *dir_end = strrchr(path, '/');
    if (link[0] == '/' || !dir_end) snprintf(joined, sizeof joined, "%s", link);
    else snprintf(joined, sizeof joined, "%.*s/%s", (int)(dir_end - path), path, link);
    const size_t len = strlen(joined);
    if (len >= sizeof path) break;
    memcpy(path, joined, len + 1);
  }
  const char *slash = strrchr(path, '/');
  char dir[4096], real[PATH_MAX];
  const char *base = slash ? slash + 1 : path;
  const size_t n = slash ? (size_t)(slash - path) : 0;
  if (slash && n == 0) snprintf(dir, sizeof dir, "/");
  else if (slash && n < sizeof dir) snprintf(dir, sizeof dir, "%.*s", (int)n, path);
  else snprintf(dir, sizeof dir, ".");
  if ((slash && n >= sizeof dir) || !realpath(dir, real)) snprintf(buf, cap, "%s", path);
  else snprintf(buf, cap, "%s/%s", real, base);
}

static int same_file(const char *a, const char *b) {
  struct stat sa, sb;
  const int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
  if (ea || eb) return ea && eb && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  char ca[PATH_MAX + 4096], cb[PATH_MAX + 4096];
  canonical_name(a, ca, sizeof ca);
  canonical_name(b, cb, sizeof cb);
  return !strcmp(ca, cb);
}

int cli_distinct(const char *const *flags, const char *const *paths, int n_out, int n) {
  for (int i = 0; i < n_out; i++)
    for (int j = i + 1; j < n && paths[i]; j++)
      if (paths[j] && same_file(paths[i], paths[j])) {
        const int o = j < n_out ? j : i; /* the later of two outputs, or the output */
        return !cli_fail("%s %s: the same file as %s", flags[o], paths[o], flags[o == i ? j : i]);
      }
  return 1;
}

int cli_mkdirs(const char *path, size_t *made) {
  char buf[4096];
  const size_t n = strlen(path);
  if (made) *made = 0;
  if (n == 0 || n >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, n + 1);
  /* Each parent in turn, then the directory itself (mkdir -p). */
  for (char *p = buf + 1;; p++) {
    if (*p && *p != '/') continue;
    const char c = *p;
    *p = '\0';
    if (mkdir(buf, 0755) == 0) {
      if (made && !*made) *made = (size_t)(p - buf);
    } else if (errno != EEXIST) {
      return -1;
    }
    if (!c) return 0;
    *p = '/';
  }
}

int cli_int(const char *flag, const char *s, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || errno || v < lo || v > hi) {
    cli_fail("%s: expected an integer in %lld..%lld, got \"%s\"", flag, lo, hi, s);
    return 0;
  }
  *out = v;
  return 1;
}

int cli_float(const char *flag, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi) {
    cli_fail("%s: expected a number in [%g, %g], got \"%s\"", flag, lo, hi, s);
    return 0;
  }
  *out = v;
  return 1;
}

/* Copies the list s into buf for list_item; 0 and a message when it is
 * empty or too long. */
static int list_start(const char *flag, const char *s, char *buf, size_t cap) {
  if (!*s || strlen(s) >= cap) {
    cli_fail("%s: %s list", flag, *s ? "too long a" : "empty");
    return 0;
  }
  strcpy(buf, s);
  return 1;
}

/* Item i (0-based) of the list s, cut from its copy at *p, which moves to
 * the next item (NULL after the last). Every comma separates (not strtok,
 * which would skip an empty item and read "3,,1" as two values); NULL and a
 * message for an empty item, or one past `cap`. */
static const char *list_item(const char *flag, const char *s, char **p, int i, int cap) {
  char *item = *p, *comma = strchr(item, ',');
  if (comma) *comma = '\0';
  *p = comma ? comma + 1 : NULL;
  if (!*item) {
    cli_fail("%s: item %d of \"%s\" is empty", flag, i + 1, s);
    return NULL;
  }
  if (i == cap) {
    cli_fail("%s: more than %d values", flag, cap);
    return NULL;
  }
  return item;
}

int cli_float_list(const char *flag, const char *s, float *out, int cap, int *n) {
  char buf[8192];
  *n = 0;
  if (!list_start(flag, s, buf, sizeof buf)) return 0;
  for (char *p = buf; p;) {
    const char *item = list_item(flag, s, &p, *n, cap);
    double v;
    if (!item || !cli_float(flag, item, 1e-6, 1e6, &v)) return 0;
    out[(*n)++] = (float)v;
  }
  return 1;
}

int cli_int_list(const char *flag, const char *s, int lo, int hi, int *out, int cap, int *n) {
  char buf[8192];
  *n = 0;
  if (!list_start(flag, s, buf, sizeof buf)) return 0;
  for (char *p = buf; p;) {
    const char *item = list_item(flag, s, &p, *n, cap);
    long long v;
    if (!item || !cli_int(flag, item, lo, hi, &v)) return 0;
    out[(*n)++] = (int)v;
  }
  return 1;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* IDX files by the names they go by: x.idx, x.idx.gz, and the MNIST
 * family's train-images-idx3-ubyte(.gz). */
static int is_idx_name(const char *s) {
  return ends_with(s, ".idx") || ends_with(s, ".idx.gz") || ends_with(s, "-ubyte") ||
         ends_with(s, "-ubyte.gz");
}

/* Debian's dataset-fashion-mnist installs the four files here;
 * SCOREKIT_FASHION_MNIST names another directory holding them. */
#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* dir/base.gz or dir/base, whichever exists, into path; 0 when neither. */
static int find_file(const char *dir, const char *base, char *path, size_t cap) {
  struct stat st;
  snprintf(path, cap, "%s/%s.gz", dir, base);
  if (stat(path, &st) == 0) return 1;
  snprintf(path, cap, "%s/%s", dir, base);
  return stat(path, &st) == 0;
}

/* The image and label files of a named image set; 0 with a message when the
 * name is one but its files are missing, -1 when it is not such a name. */
static int image_set_files(const char *spec, char *images, char *labels, size_t cap) {
  const char *split = !strcmp(spec, "fashion-mnist")        ? "train"
                      : !strcmp(spec, "fashion-mnist-test") ? "t10k"
                                                            : NULL;
  if (!split) return -1;
  const char *dir = getenv("SCOREKIT_FASHION_MNIST");
  if (!dir || !*dir) dir = FASHION_MNIST_DIR;
  char base[64];
  snprintf(base, sizeof base, "%s-images-idx3-ubyte", split);
  int ok = find_file(dir, base, images, cap);
  if (ok) {
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", split);
    ok = find_file(dir, base, labels, cap);
  }
  if (!ok)
    cli_fail("%s: no %s(.gz) in %s (install Debian's dataset-fashion-mnist, or set "
             "SCOREKIT_FASHION_MNIST to a directory holding the MNIST-format files)",
             spec, base, dir);
  return ok;
}

/* Replaces *t by its first n rows (n <= its first dimension). */
static int keep_first(sk_tensor **t, int64_t n) {
  int64_t shape[SK_MAX_DIMS];
  const int nd = sk_tensor_ndim(*t);
  memcpy(shape, sk_tensor_shape(*t), (size_t)nd * sizeof shape[0]);
  if (shape[0] == n) return 1;
  const size_t row = (size_t)(sk_tensor_numel(*t) / shape[0]);
  shape[0] = n;
  sk_tensor *u = sk_tensor_new(nd, shape);
  if (!u) return 0;
  memcpy(sk_tensor_data(u), sk_tensor_cdata(*t), (size_t)n * row * sizeof(float));
  sk_tensor_free(*t);
  *t = u;
  return 1;
}

static sk_status load_labels(const char *path, sk_tensor **out) {
  if (ends_with(path, ".npy")) return sk_npy_load(path, out);
  if (is_idx_name(path)) return sk_idx_load(path, out, NULL);
  return sk_set_error(SK_ERR_UNSUPPORTED,
                      "%s: labels come in a .npy or an IDX file (.idx, .idx.gz)", path);
}

int cli_load_data(const char *spec, long long n, unsigned long long seed, int label_column,
                  const char *labels_path, sk_dataset **out) {
  sk_tensor *x = NULL, *labels = NULL;
  sk_dtype dtype = SK_DTYPE_F32;
  sk_status st;
  char image_path[4096], label_path[4096];
  const char *file = spec; /* what the rows came from, for messages */
  int classes = sk_toy_classes(spec), named = 0;
  /* Label flags that do not apply to this data would be ignored. */
  if (label_column >= 0 && !ends_with(spec, ".csv"))
    return cli_fail("--label-column: applies to a .csv data file, not \"%s\"", spec), 0;
  if (labels_path && (classes >= 0 || ends_with(spec, ".csv")))
    return cli_fail("--labels: applies to a .npy or IDX data file, not \"%s\"%s", spec,
                    ends_with(spec, ".csv") ? " (a CSV file's labels are a column: --label-column)" : ""),
           0;
  if (classes >= 0) {
    x = sk_tensor_new(2, (int64_t[]){n, 2});
    int32_t *lab = cli_alloc((size_t)n * sizeof *lab);
    if (!x || !lab) {
      free(lab);
      sk_tensor_free(x);
      return cli_fail("out of memory for %lld points", n), 0;
    }
    sk_rng r = sk_rng_make(seed, 0x64617461); /* "data" */
    st = sk_toy_sample(spec, &r, n, sk_tensor_data(x), lab);
    if (st == SK_OK && classes > 0) {
      labels = sk_tensor_new(1, (int64_t[]){n});
      if (labels)
        for (long long i = 0; i < n; i++) sk_tensor_data(labels)[i] = (float)lab[i];
    }
    free(lab);
    n = 0; /* drawn to size */
  } else if ((named = image_set_files(spec, image_path, label_path, sizeof image_path)) >= 0) {
    if (!named) return 0;
    if (labels_path) return cli_fail("--labels: %s comes with its own labels", spec), 0;
    file = image_path;
    labels_path = label_path;
    st = sk_idx_load(image_path, &x, &dtype);
  } else if (ends_with(spec, ".csv")) {
    sk_csv_options opt = sk_csv_options_default();
    opt.label_column = label_column;
    st = sk_csv_load(spec, &opt, &x, label_column >= 0 ? &labels : NULL);
  } else if (ends_with(spec, ".npy")) {
    st = sk_npy_load_typed(spec, &x, &dtype);
  } else if (is_idx_name(spec)) {
    st = sk_idx_load(spec, &x, &dtype);
  } else {
    fputs("scorekit: --data: unknown data set or file type \"", stderr);
    fputs(spec, stderr);
    fputs("\"; built-in sets:", stderr);
    for (int i = 0; i < sk_toy_count(); i++) fprintf(stderr, " %s", sk_toy_name(i));
    fputs(" fashion-mnist fashion-mnist-test; files: .csv, .npy, .idx[.gz]\n", stderr);
    return 0;
  }
  if (st != SK_OK) {
    sk_tensor_free(x);
    sk_tensor_free(labels);
    cli_fail("%s", sk_last_error());
    return 0;
  }
  const int rank = sk_tensor_ndim(x), images = rank == 3 || rank == 4;
  const long long rows = rank > 0 ? (long long)sk_tensor_shape(x)[0] : 0;
  if (rank != 2 && !images) {
    sk_tensor_free(x);
    return cli_fail("%s: expected rows (n, d) or images (n, h, w) or (n, c, h, w), got rank %d",
                    file, rank), 0;
  }
  if (classes < 0 && !ends_with(spec, ".csv") && labels_path) {
    st = load_labels(labels_path, &labels);
    if (st != SK_OK) {
      sk_tensor_free(x);
      return cli_fail("%s", sk_last_error()), 0;
    }
    if (sk_tensor_ndim(labels) != 1 || sk_tensor_shape(labels)[0] != rows) {
      int lrank = sk_tensor_ndim(labels);
      long long nl = lrank > 0 ? (long long)sk_tensor_shape(labels)[0] : 0;
      sk_tensor_free(x);
      sk_tensor_free(labels);
      if (lrank != 1)
        return cli_fail("%s: expected a 1-D array of labels, got rank %d", labels_path, lrank), 0;
      return cli_fail("%s: %lld labels, but %s has %lld %s", labels_path, nl, file, rows,
                      images ? "images" : "rows"), 0;
    }
  }
  /* --n-data N on a file: its first N rows. */
  if (n > 0 && n > rows) {
    sk_tensor_free(x);
    sk_tensor_free(labels);
    return cli_fail("--n-data %lld: %s has only %lld %s", n, file, rows,
                    images ? "images" : "rows"), 0;
  }
  if (n > 0 && (!keep_first(&x, n) || (labels && !keep_first(&labels, n)))) {
    sk_tensor_free(x);
    sk_tensor_free(labels);
    return cli_fail("out of memory for %lld rows", n), 0;
  }
  /* 8-bit pixels become [0, 1]; other types are taken as they are. */
  st = images ? sk_dataset_new_images(x, labels, dtype == SK_DTYPE_U8 ? 255.0f : 1.0f, out)
              : sk_dataset_new(x, labels, out); /* both take x and labels */
  if (st != SK_OK) {
    /* Name the file at fault: the labels' own file when they are. */
    const char *msg = sk_last_error();
    if (!strncmp(msg, "sk_dataset_new: ", 16)) msg += 16;
    else if (!strncmp(msg, "sk_dataset_new_images: ", 23)) msg += 23;
    cli_fail("%s: %s", labels_path && strstr(msg, "label") ? labels_path : file, msg);
    return 0;
  }
  return 1;
}
