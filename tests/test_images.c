/* Image data end to end: image data sets (shape kept, pixels scaled), the
 * scale and shape recorded in model files, the scorekit program on IDX and
 * .npy images (training, samples back in the data's range, bad input), and
 * Debian's Fashion-MNIST as installed by scripts/deps.sh. */
#define _DEFAULT_SOURCE /* mkdtemp, setenv */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "scorekit/scorekit.h"
#include "test.h"

/* Where scripts/deps.sh (Debian's dataset-fashion-mnist) puts the files. */
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static char tmp[64];
static char err[4096];

static void tmp_begin(void) {
  strcpy(tmp, "/tmp/sk_img_XXXXXX");
  if (!mkdtemp(tmp)) {
    perror("mkdtemp");
    exit(1);
  }
}

static void tmp_end(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmp);
}

static const char *at(const char *name) {
  static char bufs[4][256];
  static int k;
  char *b = bufs[k++ % 4];
  snprintf(b, 256, "%s/%s", tmp, name);
  return b;
}

/* Runs scorekit with `args` in the temporary directory (after `env`, which
 * may be ""); returns the exit code, stderr in err. */
static int run_env(const char *env, const char *args) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cd %s && %s %s %s 2>%s/err.txt >/dev/null", tmp, env, SK_CLI_PATH,
           args, tmp);
  int rc = system(cmd);
  FILE *f = fopen(at("err.txt"), "r");
  size_t n = f ? fread(err, 1, sizeof err - 1, f) : 0;
  err[n] = 0;
  if (f) fclose(f);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static int run(const char *args) { return run_env("", args); }

static int exists(const char *name) {
  struct stat st;
  return stat(at(name), &st) == 0;
}

static int lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static void write_file(const char *name, const void *p, size_t n, int gz) {
  if (gz) {
    gzFile f = gzopen(at(name), "wb9");
    if (!f || (n && gzwrite(f, p, (unsigned)n) != (int)n) || gzclose(f) != Z_OK) exit(1);
    return;
  }
  FILE *f = fopen(at(name), "wb");
  if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) exit(1);
}

/* A uint8 IDX file of the given dimensions and values. */
static void write_idx_u8(const char *name, int ndim, const uint32_t *dims, const uint8_t *v,
                         int gz) {
  size_t numel = 1;
  for (int i = 0; i < ndim; i++) numel *= dims[i];
  unsigned char *b = malloc(4 + 4 * (size_t)ndim + numel);
  b[0] = b[1] = 0;
  b[2] = 0x08;
  b[3] = (unsigned char)ndim;
  for (int i = 0; i < ndim; i++)
    for (int k = 0; k < 4; k++) b[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
  memcpy(b + 4 + 4 * ndim, v, numel);
  write_file(name, b, 4 + 4 * (size_t)ndim + numel, gz);
  free(b);
}

/* A '|u1' .npy file of the given shape (the dict written as numpy does). */
static void write_npy_u8(const char *name, const char *shape, const uint8_t *v, size_t n) {
  char dict[160];
  int hl = snprintf(dict, sizeof dict, "{'descr': '|u1', 'fortran_order': False, 'shape': %s, }",
                    shape);
  while ((10 + hl + 1) % 64) dict[hl++] = ' ';
  dict[hl++] = '\n';
  unsigned char *b = malloc(10 + (size_t)hl + n);
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  b[8] = (unsigned char)hl;
  b[9] = 0;
  memcpy(b + 10, dict, (size_t)hl);
  memcpy(b + 10 + hl, v, n);
  write_file(name, b, 10 + (size_t)hl + n, 0);
  free(b);
}

/* N deterministic 8-bit images of 6x6 and their labels 0..3. */
enum { N = 40, H = 6, W = 6 };
static uint8_t pixels[N * H * W], classes[N];

static void make_images(void) {
  for (int i = 0; i < N * H * W; i++) pixels[i] = (uint8_t)((i * 2654435761u) >> 24);
  for (int i = 0; i < N; i++) classes[i] = (uint8_t)(i % 4);
}

/* ---- the library: image data sets and what model files record ---- */

TEST(dataset_of_images) {
  make_images();
  const int64_t s3[3] = {N, H, W}, s4[4] = {N / 2, 2, H, W};
  for (int rank = 3; rank <= 4; rank++) {
    sk_tensor *x = sk_tensor_new(rank, rank == 3 ? s3 : s4);
    sk_tensor *l = sk_tensor_new(1, (int64_t[]){rank == 3 ? N : N / 2});
    CHECK(x && l);
    for (int i = 0; i < N * H * W; i++) sk_tensor_data(x)[i] = pixels[i];
    for (int i = 0; i < sk_tensor_shape(l)[0]; i++) sk_tensor_data(l)[i] = classes[i];
    sk_dataset *ds = NULL;
    CHECK_OK(sk_dataset_new_images(x, l, 255, &ds));
    int64_t chw[3] = {0, 0, 0};
    CHECK_EQ_INT(sk_dataset_image_shape(ds, chw), 1);
    CHECK_EQ_INT(chw[0], rank == 3 ? 1 : 2);
    CHECK_EQ_INT(chw[1], H);
    CHECK_EQ_INT(chw[2], W);
    CHECK_EQ_INT(sk_dataset_size(ds), rank == 3 ? N : N / 2);
    CHECK_EQ_INT(sk_dataset_dim(ds), chw[0] * H * W);
    CHECK_EQ_INT(sk_dataset_scale(ds) == 255.0f, 1);
    CHECK_EQ_INT(sk_dataset_classes(ds), 4);
    /* Rows are the flattened images in NCHW order, in [0, 1]. */
    for (int i = 0; i < N * H * W; i++)
      CHECK_EQ_INT(sk_dataset_x(ds)[i] == (float)pixels[i] / 255.0f, 1);
    float batch[4 * 2 * H * W];
    int32_t y[4];
    sk_rng r = sk_rng_make(3, 0);
    CHECK_OK(sk_dataset_batch(ds, &r, 4, batch, y));
    for (int j = 0; j < sk_dataset_dim(ds) * 4; j++) CHECK(batch[j] >= 0 && batch[j] <= 1);
    sk_dataset_free(ds);
  }
  /* A set of rows has no image shape and scale 1. */
  sk_dataset *ds = NULL;
  CHECK_OK(sk_dataset_new(sk_tensor_new(2, (int64_t[]){3, 2}), NULL, &ds));
  int64_t chw[3] = {7, 7, 7};
  CHECK_EQ_INT(sk_dataset_image_shape(ds, chw), 0);
  CHECK_EQ_INT(chw[0], 7);
  CHECK_EQ_INT(sk_dataset_scale(ds) == 1.0f, 1);
  sk_dataset_free(ds);
}

TEST(dataset_of_images_rejects) {
  sk_dataset *ds = (sk_dataset *)1;
  CHECK_EQ_INT(sk_dataset_new_images(sk_tensor_new(2, (int64_t[]){4, 4}), NULL, 1, &ds),
               SK_ERR_SHAPE);
  CHECK(ds == NULL && strstr(sk_last_error(), "rank 2"));
  CHECK_EQ_INT(sk_dataset_new_images(sk_tensor_new(3, (int64_t[]){4, 0, 4}), NULL, 1, &ds),
               SK_ERR_SHAPE);
  CHECK(strstr(sk_last_error(), "1 x 0 x 4"));
  CHECK_EQ_INT(sk_dataset_new_images(sk_tensor_new(3, (int64_t[]){0, 4, 4}), NULL, 1, &ds),
               SK_ERR_SHAPE);
  CHECK_EQ_INT(sk_dataset_new_images(sk_tensor_new(3, (int64_t[]){2, 4, 4}), NULL, 0, &ds),
               SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "scale"));
  CHECK_EQ_INT(sk_dataset_new_images(sk_tensor_new(3, (int64_t[]){2, 4, 4}), NULL, NAN, &ds),
               SK_ERR_INVALID);
  sk_tensor *x = sk_tensor_new(4, (int64_t[]){2, 3, 2, 2});
  sk_tensor_data(x)[17] = INFINITY;
  CHECK_EQ_INT(sk_dataset_new_images(x, NULL, 255, &ds), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "x[1, 5]"));
  CHECK_EQ_INT(sk_dataset_new_images(sk_tensor_new(3, (int64_t[]){2, 4, 4}),
                                     sk_tensor_new(1, (int64_t[]){3}), 1, &ds),
               SK_ERR_SHAPE);
  CHECK(strstr(sk_last_error(), "labels"));
  CHECK_EQ_INT(sk_dataset_new_images(NULL, sk_tensor_new(1, (int64_t[]){3}), 1, &ds),
               SK_ERR_INVALID);
  CHECK(ds == NULL);
  /* Every allocation may fail; the tensors are freed either way (ASan). */
  int k;
  for (k = 0; k < 50; k++) {
    sk_tensor *xi = sk_tensor_new(3, (int64_t[]){5, 2, 2});
    sk_tensor *li = sk_tensor_new(1, (int64_t[]){5});
    sk_debug_fail_alloc_after(k);
    sk_status st = sk_dataset_new_images(xi, li, 255, &ds);
    sk_debug_fail_alloc_after(-1);
    if (st == SK_OK) break;
    CHECK_EQ_INT(st, SK_ERR_NOMEM);
  }
  CHECK(k > 0 && k < 50);
  sk_dataset_free(ds);
}

/* Overwrites, in the file at path, the bytes `at` bytes into the first
 * occurrence of `find` with `with` (the same length: the header stays
 * valid). */
static int edit_header(const char *path, const char *find, size_t at, const char *with) {
  FILE *f = fopen(path, "r+b");
  static char text[1 << 16];
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  char *p = NULL;
  for (size_t i = 0; i + strlen(find) <= n && !p; i++)
    if (!memcmp(text + i, find, strlen(find))) p = text + i;
  if (p) memcpy(p + at, with, strlen(with));
  const int ok = p && fseek(f, 0, SEEK_SET) == 0 && fwrite(text, 1, n, f) == n;
  return f && fclose(f) == 0 && ok;
}

TEST(model_file_records_scale_and_image_shape) {
  tmp_begin();
  sk_model_config mc = {SK_MODEL_MLP, 2 * 3 * 4, 8, 1, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  CHECK(m);
  static sk_model_info info, back;
  info.objective = SK_OBJ_DSM;
  info.sigma = 0.1f;
  snprintf(info.data, sizeof info.data, "images.idx.gz");
  info.data_scale = 255;
  info.image_shape[0] = 2, info.image_shape[1] = 3, info.image_shape[2] = 4;
  CHECK_OK(sk_model_save(at("m.safetensors"), m, NULL, &info));
  sk_model *m2 = NULL;
  CHECK_OK(sk_model_load(at("m.safetensors"), 0, &m2, &back));
  CHECK_EQ_INT(back.data_scale == 255.0f, 1);
  CHECK_EQ_INT(back.image_shape[0], 2);
  CHECK_EQ_INT(back.image_shape[1], 3);
  CHECK_EQ_INT(back.image_shape[2], 4);
  sk_model_free(m2);
  /* Rows: neither key is written, and both read back as zero. */
  info.data_scale = 0;
  memset(info.image_shape, 0, sizeof info.image_shape);
  CHECK_OK(sk_model_save(at("m.safetensors"), m, NULL, &info));
  memset(&back, 0xff, sizeof back);
  CHECK_OK(sk_model_load(at("m.safetensors"), 0, &m2, &back));
  CHECK_EQ_INT(back.data_scale == 0.0f, 1);
  CHECK_EQ_INT(back.image_shape[0], 0);
  sk_model_free(m2);
  /* A shape that is not the model's dimension: not written; in a file
   * (edited), refused; likewise a scale that is not positive. */
  info.image_shape[0] = 2, info.image_shape[1] = 3, info.image_shape[2] = 5;
  CHECK_EQ_INT(sk_model_save(at("m.safetensors"), m, NULL, &info), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "info.image_shape"));
  info.image_shape[2] = 4;
  CHECK_OK(sk_model_save(at("m.safetensors"), m, NULL, &info));
  CHECK(edit_header(at("m.safetensors"), "image_shape\\\":[2,3,4]", 19, "5"));
  CHECK_EQ_INT(sk_model_load(at("m.safetensors"), 0, &m2, &back), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "image_shape") && strstr(sk_last_error(), "dim 24"));
  CHECK(m2 == NULL);
  memset(info.image_shape, 0, sizeof info.image_shape);
  info.data_scale = 255;
  CHECK_OK(sk_model_save(at("m.safetensors"), m, NULL, &info));
  CHECK(edit_header(at("m.safetensors"), "data_scale\\\":255", 13, "-25"));
  CHECK_EQ_INT(sk_model_load(at("m.safetensors"), 0, &m2, &back), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "data_scale is not a positive number"));
  sk_model_free(m);
  tmp_end();
}

/* ---- the program ---- */

/* The model's recorded scale and image shape after a scorekit train. */
static int model_info(const char *dir, sk_model_info *info, int *dim) {
  char path[300];
  snprintf(path, sizeof path, "%s/model.safetensors", at(dir));
  sk_model *m = NULL;
  if (sk_model_load(path, 1, &m, info) != SK_OK) return 0;
  *dim = sk_model_get_config(m)->dim;
  sk_model_free(m);
  return 1;
}

TEST(cli_trains_on_idx_and_npy_images) {
  tmp_begin();
  make_images();
  const uint32_t dims[3] = {N, H, W}, ldims[1] = {N};
  write_idx_u8("img.idx.gz", 3, dims, pixels, 1);
  write_idx_u8("lab.idx", 1, ldims, classes, 0);
  write_npy_u8("img.npy", "(40, 6, 6)", pixels, sizeof pixels);
  CHECK_OK(sk_npy_save_f32(at("nchw.npy"), 4, (int64_t[]){N / 2, 2, H, W},
                           (float[N * H * W]){0.5f, 0.25f}));
  static sk_model_info info;
  int dim = 0;

  CHECK_EQ_INT(run("train --data img.idx.gz --labels lab.idx --objective dsm --steps 5 "
                   "--hidden 16 --depth 1 --batch-size 8 --quiet --out a"),
               0);
  CHECK(model_info("a", &info, &dim));
  CHECK_EQ_INT(dim, H * W);
  CHECK_EQ_INT(info.data_scale == 255.0f, 1);
  CHECK_EQ_INT(info.image_shape[0], 1);
  CHECK_EQ_INT(info.image_shape[1], H);
  CHECK_EQ_INT(info.image_shape[2], W);

  /* The noise-conditional default (ncsn) and a classifier, on --n-data 30. */
  CHECK_EQ_INT(run("train --data img.npy --labels lab.idx --n-data 30 --steps 5 --hidden 16 "
                   "--depth 1 --batch-size 8 --quiet --out b"),
               0);
  CHECK(model_info("b", &info, &dim));
  CHECK_EQ_INT(info.data_scale == 255.0f, 1);
  CHECK_EQ_INT(run("train --data img.idx.gz --labels lab.idx --objective classifier --steps 5 "
                   "--hidden 16 --depth 1 --batch-size 8 --quiet --out c"),
               0);

  /* float32 (n, c, h, w): the values as they are, two channels. */
  CHECK_EQ_INT(run("train --data nchw.npy --objective dsm --steps 5 --hidden 16 --depth 1 "
                   "--batch-size 8 --quiet --out d"),
               0);
  CHECK(model_info("d", &info, &dim));
  CHECK_EQ_INT(dim, 2 * H * W);
  CHECK_EQ_INT(info.data_scale == 0.0f, 1); /* not written: not scaled */
  CHECK_EQ_INT(info.image_shape[0], 2);

  /* Samples come back as images in the data's range: started from N(0, 1)
   * and moved little, multiplied by 255 their spread is about 255. */
  CHECK_EQ_INT(run("sample --model a/model.safetensors --n 50 --steps-per-level 2 --out s.npy"), 0);
  sk_tensor *s = NULL;
  CHECK_OK(sk_npy_load(at("s.npy"), &s));
  CHECK_EQ_INT(sk_tensor_ndim(s), 4);
  CHECK_EQ_INT(sk_tensor_shape(s)[0], 50);
  CHECK_EQ_INT(sk_tensor_shape(s)[1], 1);
  CHECK_EQ_INT(sk_tensor_shape(s)[2], H);
  CHECK_EQ_INT(sk_tensor_shape(s)[3], W);
  double ss = 0;
  for (int64_t i = 0; i < sk_tensor_numel(s); i++)
    ss += sk_tensor_cdata(s)[i] * sk_tensor_cdata(s)[i];
  double rms = sqrt(ss / (double)sk_tensor_numel(s));
  CHECK(rms > 150 && rms < 400);
  sk_tensor_free(s);
  /* eval takes them as they are written, against the same images. */
  CHECK_EQ_INT(run("eval --samples s.npy --data img.idx.gz"), 0);
  CHECK_EQ_INT(run("sample --model d/model.safetensors --n 10 --steps-per-level 2 --out t.npy"), 0);
  CHECK_OK(sk_npy_load(at("t.npy"), &s));
  CHECK_EQ_INT(sk_tensor_ndim(s), 4);
  CHECK_EQ_INT(sk_tensor_shape(s)[1], 2);
  sk_tensor_free(s);
  tmp_end();
}

/* fashion-mnist by name, from SCOREKIT_FASHION_MNIST: gzipped or plain files. */
TEST(cli_finds_fashion_mnist_by_name) {
  tmp_begin();
  make_images();
  CHECK(mkdir(at("fm"), 0755) == 0);
  const uint32_t dims[3] = {N, H, W}, ldims[1] = {N}, tdims[3] = {10, H, W}, tl[1] = {10};
  write_idx_u8("fm/train-images-idx3-ubyte.gz", 3, dims, pixels, 1);
  write_idx_u8("fm/train-labels-idx1-ubyte", 1, ldims, classes, 0);
  write_idx_u8("fm/t10k-images-idx3-ubyte", 3, tdims, pixels, 0);
  write_idx_u8("fm/t10k-labels-idx1-ubyte.gz", 1, tl, classes, 1);
  char env[300];
  snprintf(env, sizeof env, "SCOREKIT_FASHION_MNIST=%s", at("fm"));
  CHECK_EQ_INT(run_env(env, "train --data fashion-mnist --objective classifier --steps 3 "
                            "--hidden 8 --depth 1 --batch-size 8 --quiet --out a"),
               0);
  static sk_model_info info;
  int dim = 0;
  CHECK(model_info("a", &info, &dim));
  CHECK_EQ_INT(dim, H * W);
  CHECK_EQ_INT(strcmp(info.data, "fashion-mnist"), 0);
  CHECK_EQ_INT(run_env(env, "train --data fashion-mnist-test --objective dsm --steps 3 "
                            "--hidden 8 --depth 1 --batch-size 8 --quiet --out b"),
               0);
  tmp_end();
}

typedef struct bad_case {
  const char *args;
  const char *needle; /* must appear in the one-line message */
} bad_case;

TEST(cli_bad_image_input_fails_cleanly) {
  tmp_begin();
  make_images();
  const uint32_t dims[3] = {N, H, W}, ldims[1] = {N}, short_l[1] = {N - 1}, two[2] = {N, 1};
  write_idx_u8("img.idx", 3, dims, pixels, 0);
  write_idx_u8("lab.idx", 1, ldims, classes, 0);
  write_idx_u8("short.idx", 1, short_l, classes, 0);
  write_idx_u8("lab2d.idx", 2, two, classes, 0);
  write_idx_u8("vec.idx", 1, ldims, classes, 0);
  write_file("magic.idx", "PK\3\4 zip, not IDX", 18, 0);
  /* A gzip file cut short, and an IDX file whose data stop early. */
  write_idx_u8("whole.idx.gz", 3, dims, pixels, 1);
  FILE *f = fopen(at("whole.idx.gz"), "rb");
  unsigned char buf[4096];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  write_file("cut.idx.gz", buf, n - 9, 0);
  unsigned char head[16 + 100];
  memcpy(head, "\0\0\x08\x03\0\0\0\x28\0\0\0\x06\0\0\0\x06", 16);
  memcpy(head + 16, pixels, 100);
  write_file("trunc.idx", head, sizeof head, 0);
  write_file("nonfinite.idx", "\0\0\x0d\x03\0\0\0\x01\0\0\0\x01\0\0\0\x01\x7f\xc0\0\0", 20, 0);
  static const bad_case cases[] = {
      {"train --data missing.idx --out o", "missing.idx: cannot open"},
      {"train --data missing-images-idx3-ubyte.gz --out o", "cannot open"},
      {"train --data magic.idx --out o", "magic.idx: bad magic"},
      {"train --data cut.idx.gz --out o", "cut.idx.gz: truncated gzip stream"},
      {"train --data trunc.idx --out o", "trunc.idx: data truncated"},
      {"train --data nonfinite.idx --out o", "non-finite value (NaN)"},
      {"train --data vec.idx --out o", "vec.idx: expected rows (n, d) or images"},
      {"train --data img.idx --labels short.idx --out o",
       "short.idx: 39 labels, but img.idx has 40 images"},
      {"train --data img.idx --labels lab2d.idx --out o",
       "lab2d.idx: expected a 1-D array of labels"},
      {"train --data img.idx --labels missing.idx --out o", "missing.idx: cannot open"},
      {"train --data img.idx --labels lab.csv --out o", "lab.csv: labels come in a .npy or an IDX"},
      {"train --data img.idx --labels img.idx --out o", "expected a 1-D array of labels"},
      {"train --data img.idx --n-data 41 --out o", "--n-data 41: img.idx has only 40 images"},
      {"train --data fashion-mnist --labels lab.idx --out o", "comes with its own labels"},
      {"train --data img.bmp --out o", ".idx[.gz]"},
      {"eval --samples img.idx --data img.idx", "img.idx"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = run(cases[i].args);
    int ok = rc != 0 && lines(err) == 1 && strstr(err, cases[i].needle) && !exists("o");
    if (!ok) {
      fprintf(stderr, "case \"%s\": exit %d, output dir %s, stderr: %s\n", cases[i].args, rc,
              exists("o") ? "created" : "absent", err);
      sk_test_failed_flag = 1;
    }
  }
  /* A missing data set names the package and the variable. */
  CHECK(run_env("SCOREKIT_FASHION_MNIST=/nonexistent", "train --data fashion-mnist --out o") != 0);
  CHECK(lines(err) == 1 && strstr(err, "dataset-fashion-mnist") &&
        strstr(err, "SCOREKIT_FASHION_MNIST") && strstr(err, "/nonexistent") && !exists("o"));
  /* A sample run that fails writes no samples. */
  CHECK(run("sample --model nowhere/model.safetensors --out s.npy") != 0 && !exists("s.npy"));
  tmp_end();
}

/* ---- Debian's dataset-fashion-mnist (scripts/deps.sh and .ci/run install it) ---- */

static void check_split(const char *split, int64_t n, float first_pixel_sum) {
  char ip[256], lp[256];
  snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", FASHION_DIR, split);
  snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", FASHION_DIR, split);
  sk_tensor *x = NULL, *y = NULL;
  sk_dtype dt = SK_DTYPE_COUNT;
  CHECK_OK(sk_idx_load(ip, &x, &dt));
  CHECK_EQ_INT(dt, SK_DTYPE_U8);
  CHECK_EQ_INT(sk_tensor_ndim(x), 3);
  CHECK_EQ_INT(sk_tensor_shape(x)[0], n);
  CHECK_EQ_INT(sk_tensor_shape(x)[1], 28);
  CHECK_EQ_INT(sk_tensor_shape(x)[2], 28);
  float lo = 255, hi = 0, sum0 = 0;
  for (int64_t i = 0; i < sk_tensor_numel(x); i++) {
    float v = sk_tensor_cdata(x)[i];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    if (i < 784) sum0 += v;
  }
  CHECK_EQ_INT(lo, 0);
  CHECK_EQ_INT(hi, 255);
  CHECK_EQ_INT(sum0, first_pixel_sum);
  CHECK_OK(sk_idx_load(lp, &y, &dt));
  CHECK_EQ_INT(sk_tensor_ndim(y), 1);
  CHECK_EQ_INT(sk_tensor_shape(y)[0], n);
  /* The first item of both splits is an ankle boot (class 9); the classes
   * are balanced, n / 10 each. */
  CHECK_EQ_INT(sk_tensor_cdata(y)[0], 9);
  int64_t count[10] = {0};
  for (int64_t i = 0; i < n; i++) {
    float v = sk_tensor_cdata(y)[i];
    CHECK(v >= 0 && v <= 9 && v == floorf(v));
    count[(int)v]++;
  }
  for (int k = 0; k < 10; k++) CHECK_EQ_INT(count[k], n / 10);
  sk_tensor_free(x);
  sk_tensor_free(y);
}

TEST(fashion_mnist_installed) {
  DIR *d = opendir(FASHION_DIR);
  if (!d) {
    fprintf(stderr, "%s is missing: install Debian's dataset-fashion-mnist (scripts/deps.sh)\n",
            FASHION_DIR);
    CHECK(0);
  }
  closedir(d);
  check_split("train", 60000, 76247);
  check_split("t10k", 10000, 33456);
}

/* What the issue asks of the program: an MLP on flattened Fashion-MNIST. */
TEST(fashion_mnist_trains) {
  tmp_begin();
  CHECK_EQ_INT(run("train --data fashion-mnist --objective dsm --n-data 2000 --steps 20 "
                   "--hidden 32 --depth 2 --quiet --out fm"),
               0);
  static sk_model_info info;
  int dim = 0;
  CHECK(model_info("fm", &info, &dim));
  CHECK_EQ_INT(dim, 784);
  CHECK_EQ_INT(info.steps, 20);
  CHECK_EQ_INT(info.data_scale == 255.0f, 1);
  CHECK_EQ_INT(info.image_shape[0], 1);
  CHECK_EQ_INT(info.image_shape[1], 28);
  CHECK_EQ_INT(info.image_shape[2], 28);
  CHECK_EQ_INT(run("sample --model fm/model.safetensors --n 4 --steps-per-level 2 --out s.npy"), 0);
  sk_tensor *s = NULL;
  CHECK_OK(sk_npy_load(at("s.npy"), &s));
  CHECK_EQ_INT(sk_tensor_numel(s), 4 * 784);
  CHECK_EQ_INT(sk_tensor_shape(s)[2], 28);
  sk_tensor_free(s);
  tmp_end();
}

TEST_MAIN(TEST_ENTRY(dataset_of_images), TEST_ENTRY(dataset_of_images_rejects),
          TEST_ENTRY(model_file_records_scale_and_image_shape),
          TEST_ENTRY(cli_trains_on_idx_and_npy_images), TEST_ENTRY(cli_finds_fashion_mnist_by_name),
          TEST_ENTRY(cli_bad_image_input_fails_cleanly), TEST_ENTRY(fashion_mnist_installed),
          TEST_ENTRY(fashion_mnist_trains))
