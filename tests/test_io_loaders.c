/* .npy and CSV loaders and writers: round trips, hand-built files of every
 * dtype, each malformed case, atomic saves, allocation failures, the corpus. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scorekit/io.h"
#include "scorekit/rng.h"
#include "test.h"

/* ---- temporary directory and file helpers ---- */

static char tmp_dir[64];

static void tmp_begin(void) {
  strcpy(tmp_dir, "/tmp/sk_io_XXXXXX");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    exit(1);
  }
}

/* dir/name in one of a few rotating buffers. */
static const char *tmp_path(const char *name) {
  static char bufs[4][256];
  static int k;
  char *b = bufs[k++ % 4];
  snprintf(b, 256, "%s/%.180s", tmp_dir, name);
  return b;
}

/* Names in the temporary directory, sorted, joined with spaces. */
static const char *tmp_listing(void) {
  static char out[1024];
  char names[32][64];
  int n = 0;
  DIR *d = opendir(tmp_dir);
  struct dirent *e;
  while (d && (e = readdir(d)) && n < 32)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      snprintf(names[n++], 64, "%.63s", e->d_name);
  if (d) closedir(d);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      char t[64];
      memcpy(t, names[j], 64);
      memcpy(names[j], names[j - 1], 64);
      memcpy(names[j - 1], t, 64);
    }
  out[0] = 0;
  for (int i = 0; i < n; i++) {
    if (i) strcat(out, " ");
    strcat(out, names[i]);
  }
  return out;
}

static void tmp_end(void) {
  DIR *d = opendir(tmp_dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tmp_path(e->d_name));
  if (d) closedir(d);
  rmdir(tmp_dir);
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

static long file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* A .npy image: magic, version major.0, the header length (2 bytes for v1,
 * 4 otherwise), `dict` (padded with spaces and '\n' to 64 bytes when `pad`),
 * then `data`. Returns the size; `out` must hold 256 + n bytes. */
static size_t npy_image(unsigned char *out, int major, const char *dict, bool pad, const void *data,
                        size_t n) {
  size_t lb = major == 1 ? 2 : 4, hl = strlen(dict);
  memcpy(out, "\x93NUMPY", 6);
  out[6] = (unsigned char)major;
  out[7] = 0;
  memcpy(out + 8 + lb, dict, hl);
  if (pad) {
    while ((8 + lb + hl + 1) % 64) out[8 + lb + hl++] = ' ';
    out[8 + lb + hl++] = '\n';
  }
  for (size_t b = 0; b < lb; b++) out[8 + b] = (unsigned char)(hl >> (8 * b));
  if (n) memcpy(out + 8 + lb + hl, data, n);
  return 8 + lb + hl + n;
}

static void write_npy(const char *path, int major, const char *dict, bool pad, const void *data,
                      size_t n) {
  unsigned char *img = malloc(256 + n);
  write_bytes(path, img, npy_image(img, major, dict, pad, data, n));
  free(img);
}

/* The dict numpy writes for (descr, shape). */
static const char *dict_of(const char *descr, const char *shape) {
  static char b[2][200];
  static int k;
  char *s = b[k++ % 2];
  snprintf(s, 200, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
  return s;
}

/* ---- .npy ---- */

TEST(npy_roundtrip_shapes) {
  static const int64_t shapes[][4] = {{0}, {5}, {0}, {3, 4}, {2, 3, 4}, {2, 1, 3, 2}, {7, 0, 2}};
  static const int ranks[] = {0, 1, 1, 2, 3, 4, 3};
  tmp_begin();
  sk_rng r = sk_rng_make(11, 0);
  for (int c = 0; c < 7; c++) {
    sk_tensor *t = sk_tensor_new(ranks[c], shapes[c]);
    CHECK(t);
    sk_rng_normal(&r, sk_tensor_data(t), (size_t)sk_tensor_numel(t));
    const char *p = tmp_path("rt.npy");
    CHECK_OK(sk_npy_save(p, t));
    /* numpy's layout: the data starts on a 64-byte boundary. */
    CHECK_EQ_INT((file_size(p) - 4 * sk_tensor_numel(t)) % 64, 0);
    sk_tensor *u = NULL;
    CHECK_OK(sk_npy_load(p, &u));
    CHECK_EQ_INT(sk_tensor_ndim(u), ranks[c]);
    for (int i = 0; i < ranks[c]; i++) CHECK_EQ_INT(sk_tensor_shape(u)[i], shapes[c][i]);
    CHECK_EQ_INT(sk_tensor_numel(u), sk_tensor_numel(t));
    CHECK(memcmp(sk_tensor_cdata(u), sk_tensor_cdata(t), 4 * (size_t)sk_tensor_numel(t)) == 0);
    sk_tensor_free(t);
    sk_tensor_free(u);
  }
  /* The header text is byte for byte what numpy writes. */
  int64_t s1 = 3;
  float v[3] = {1, 2, 3};
  CHECK_OK(sk_npy_save_f32(tmp_path("h.npy"), 1, &s1, v));
  char img[128];
  FILE *f = fopen(tmp_path("h.npy"), "rb");
  CHECK(f && fread(img, 1, 128, f) == 128);
  fclose(f);
  const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  CHECK(memcmp(img + 10, want, strlen(want)) == 0);
  CHECK_EQ_INT(img[8] + 256 * img[9], 118);
  CHECK(img[127] == '\n');
  CHECK_EQ_INT(file_size(tmp_path("h.npy")), 128 + 12);
  tmp_end();
}

TEST(npy_save_i32_labels) {
  tmp_begin();
  int32_t lab[5] = {0, 7, -3, 16777216, 42};
  CHECK_OK(sk_npy_save_i32(tmp_path("l.npy"), 5, lab));
  sk_tensor *t = NULL;
  CHECK_OK(sk_npy_load(tmp_path("l.npy"), &t));
  CHECK_EQ_INT(sk_tensor_ndim(t), 1);
  CHECK_EQ_INT(sk_tensor_shape(t)[0], 5);
  for (int i = 0; i < 5; i++) CHECK(sk_tensor_cdata(t)[i] == (float)lab[i]);
  sk_tensor_free(t);
  /* An int32 beyond 2^24 saves fine but cannot load exactly. */
  lab[2] = 16777217;
  CHECK_OK(sk_npy_save_i32(tmp_path("l.npy"), 5, lab));
  CHECK_EQ_INT(sk_npy_load(tmp_path("l.npy"), &t), SK_ERR_NUMERIC);
  CHECK(t == NULL);
  CHECK(strstr(sk_last_error(), "index 2"));
  CHECK_OK(sk_npy_save_i32(tmp_path("e.npy"), 0, NULL));
  CHECK_OK(sk_npy_load(tmp_path("e.npy"), &t));
  CHECK_EQ_INT(sk_tensor_numel(t), 0);
  sk_tensor_free(t);
  CHECK_EQ_INT(sk_npy_save_i32(tmp_path("x.npy"), -1, lab), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_npy_save_i32(tmp_path("x.npy"), 2, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_npy_save(tmp_path("x.npy"), NULL), SK_ERR_INVALID);
  int64_t bad = -2;
  CHECK_EQ_INT(sk_npy_save_f32(tmp_path("x.npy"), 1, &bad, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_npy_save_f32(tmp_path("x.npy"), 5, &bad, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_npy_save_f32(tmp_path("x.npy"), 1, NULL, NULL), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "the shape of a rank-1 array is NULL"));
  CHECK(strcmp(tmp_listing(), "e.npy l.npy") == 0);
  tmp_end();
}

typedef struct dtype_case {
  const char *descr;
  int size;
  int n;
  unsigned char bytes[64]; /* little-endian element bytes */
  float want[8];
} dtype_case;

TEST(npy_each_dtype_v1_v2_v3) {
  static const dtype_case cases[] = {
      /* 1.5, -2.25, 0, 3e10 */
      {"<f4",
       4,
       4,
       {0, 0, 0xc0, 0x3f, 0, 0, 0x10, 0xc0, 0, 0, 0, 0, 0x76, 0x84, 0xdf, 0x50},
       {1.5f, -2.25f, 0, 3e10f}},
      /* 0.1, -1e30 */
      {"<f8",
       8,
       2,
       {0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f, 0xea, 0x8c, 0xa0, 0x39, 0x59, 0x3e, 0x29,
        0xc6},
       {0.1f, -1e30f}},
      {"|i1", 1, 3, {0x80, 0x7f, 0}, {-128, 127, 0}},
      {"<i1", 1, 1, {0xff}, {-1}},
      {"<i2", 2, 2, {0x00, 0x80, 0xff, 0x7f}, {-32768, 32767}},
      {"<i4", 4, 3, {0, 0, 0, 0xff, 0, 0, 0, 1, 7, 0, 0, 0}, {-16777216, 16777216, 7}},
      {"<i8",
       8,
       2,
       {0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0},
       {-16777216, 16777216}},
      {"|u1", 1, 2, {0, 255}, {0, 255}},
      {"<u2", 2, 1, {0xff, 0xff}, {65535}},
      {"<u4", 4, 1, {0, 0, 0, 1}, {16777216}},
      {"<u8", 8, 1, {3, 0, 0, 0, 0, 0, 0, 0}, {3}},
      {"|b1", 1, 4, {0, 1, 1, 2}, {0, 1, 1, 1}},
      {"?", 1, 2, {1, 0}, {1, 0}},
  };
  tmp_begin();
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    for (int major = 1; major <= 3; major++) {
      char shape[32];
      snprintf(shape, sizeof shape, "(%d,)", cases[c].n);
      const char *p = tmp_path("d.npy");
      write_npy(p, major, dict_of(cases[c].descr, shape), major != 3, cases[c].bytes,
                (size_t)(cases[c].n * cases[c].size));
      sk_tensor *t = NULL;
      sk_status st = sk_npy_load(p, &t);
      if (st) fprintf(stderr, "%s v%d: %s\n", cases[c].descr, major, sk_last_error());
      CHECK_OK(st);
      CHECK_EQ_INT(sk_tensor_numel(t), cases[c].n);
      for (int i = 0; i < cases[c].n; i++) CHECK(sk_tensor_cdata(t)[i] == cases[c].want[i]);
      sk_tensor_free(t);
    }
  }
  tmp_end();
}

/* The dict is a Python literal: any key order, quotes, spacing, trailing
 * comma or none, an old 'L' suffix, padding of any length or none. */
TEST(npy_header_variants) {
  static const char *dicts[] = {
      "{'shape': (2, 2), 'descr': '<f4', 'fortran_order': False}",
      "{ \"fortran_order\" :False ,\"shape\":(2,2,),\"descr\":\"<f4\" , }",
      "{'descr':'<f4','fortran_order':False,'shape':(2L, 2L)}   \n",
      "{'descr': '<f4',\n 'fortran_order': False,\n 'shape': [2, 2]}\n",
      "\t{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
  };
  float v[4] = {1, -2, 3.5f, 4};
  tmp_begin();
  for (size_t c = 0; c < sizeof dicts / sizeof dicts[0]; c++) {
    for (int pad = 0; pad < 2; pad++) {
      write_npy(tmp_path("v.npy"), 1 + pad, dicts[c], pad, v, sizeof v);
      sk_tensor *t = NULL;
      sk_status st = sk_npy_load(tmp_path("v.npy"), &t);
      if (st) fprintf(stderr, "dict %zu: %s\n", c, sk_last_error());
      CHECK_OK(st);
      CHECK_EQ_INT(sk_tensor_ndim(t), 2);
      CHECK(memcmp(sk_tensor_cdata(t), v, sizeof v) == 0);
      sk_tensor_free(t);
    }
  }
  tmp_end();
}

TEST(npy_values_rejected) {
  tmp_begin();
  const char *p = tmp_path("n.npy");
  sk_tensor *t = NULL;
  float f[5] = {1, 2, 3, NAN, 5};
  write_npy(p, 1, dict_of("<f4", "(5,)"), true, f, sizeof f);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "index 3") && strstr(sk_last_error(), p));
  f[3] = 0;
  f[4] = -INFINITY;
  write_npy(p, 1, dict_of("<f4", "(5,)"), true, f, sizeof f);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "index 4"));
  double d[2] = {1e300, 0};
  write_npy(p, 1, dict_of("<f8", "(2,)"), true, d, sizeof d);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "index 0") && strstr(sk_last_error(), "float32 range"));
  int64_t q[3] = {0, 1, -16777217};
  write_npy(p, 1, dict_of("<i8", "(3,)"), true, q, sizeof q);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "index 2"));
  uint64_t u[2] = {16777217, 0};
  write_npy(p, 1, dict_of("<u8", "(2,)"), true, u, sizeof u);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "index 0"));
  CHECK(t == NULL);
  tmp_end();
}

typedef struct bad_case {
  const char *name;
  int major;
  const char *dict;
  bool pad;
  size_t ndata; /* zero bytes of data */
  sk_status want;
  const char *says;
} bad_case;

TEST(npy_malformed) {
  static const bad_case cases[] = {
      {"fortran", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", true, 8,
       SK_ERR_UNSUPPORTED, "fortran_order"},
      {"big-endian", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", true, 8,
       SK_ERR_UNSUPPORTED, "big-endian"},
      {"big-endian i8", 2, "{'descr': '>i8', 'fortran_order': False, 'shape': (1,), }", true, 8,
       SK_ERR_UNSUPPORTED, "big-endian"},
      {"complex", 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", true, 8,
       SK_ERR_UNSUPPORTED, "dtype"},
      {"half", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }", true, 2,
       SK_ERR_UNSUPPORTED, "dtype"},
      {"unicode", 1, "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", true, 12,
       SK_ERR_UNSUPPORTED, "dtype"},
      {"object", 1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", true, 8,
       SK_ERR_UNSUPPORTED, "dtype"},
      {"no byte order", 1, "{'descr': '|f4', 'fortran_order': False, 'shape': (1,), }", true, 4,
       SK_ERR_UNSUPPORTED, "little-endian"},
      {"structured", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", true,
       4, SK_ERR_UNSUPPORTED, "structured"},
      {"negative", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2), }", true, 0,
       SK_ERR_FORMAT, "negative"},
      {"dim overflow", 1,
       "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", true, 0,
       SK_ERR_FORMAT, "overflow"},
      {"product overflow", 1,
       "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", true, 0,
       SK_ERR_FORMAT, "overflow"},
      {"rank 5", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1), }", true, 4,
       SK_ERR_UNSUPPORTED, "rank"},
      {"truncated data", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", true, 20,
       SK_ERR_FORMAT, "truncated"},
      {"truncated v2", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", true, 15,
       SK_ERR_FORMAT, "truncated"},
      {"trailing", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", true, 9,
       SK_ERR_FORMAT, "trailing"},
      {"scalar trailing", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", true, 8,
       SK_ERR_FORMAT, "trailing"},
      {"missing key", 1, "{'descr': '<f4', 'shape': (2,), }", true, 8, SK_ERR_FORMAT,
       "fortran_order"},
      {"unknown key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", true, 8,
       SK_ERR_FORMAT, "unknown key"},
      {"duplicate key", 1,
       "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", true, 8,
       SK_ERR_FORMAT, "duplicate"},
      {"no brace", 1, "'descr': '<f4', 'fortran_order': False, 'shape': (2,)", true, 8,
       SK_ERR_FORMAT, "unparsable"},
      {"unclosed", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", true, 8,
       SK_ERR_FORMAT, "unparsable"},
      {"bad tuple", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2 2)}", true, 16,
       SK_ERR_FORMAT, "unparsable"},
      {"shape int", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': 2}", true, 8,
       SK_ERR_FORMAT, "unparsable"},
      {"fortran word", 1, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,)}", true, 8,
       SK_ERR_FORMAT, "unparsable"},
      {"string", 1, "{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}", true, 8,
       SK_ERR_FORMAT, "unparsable"},
      {"after dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", true, 8,
       SK_ERR_FORMAT, "unparsable"},
      {"empty header", 1, "", false, 0, SK_ERR_FORMAT, "unparsable"},
  };
  tmp_begin();
  unsigned char zeros[64] = {0};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const char *p = tmp_path("bad.npy");
    write_npy(p, cases[c].major, cases[c].dict, cases[c].pad, zeros, cases[c].ndata);
    sk_tensor *t = (sk_tensor *)zeros;
    sk_status st = sk_npy_load(p, &t);
    if (st != cases[c].want || !strstr(sk_last_error(), cases[c].says) ||
        !strstr(sk_last_error(), p))
      fprintf(stderr, "case '%s': got %s: %s\n", cases[c].name, sk_status_str(st), sk_last_error());
    CHECK_EQ_INT(st, cases[c].want);
    CHECK(strstr(sk_last_error(), cases[c].says));
    CHECK(strstr(sk_last_error(), p));
    CHECK(t == NULL);
  }
  tmp_end();
}

/* Damage below the dict: magic, version, header length, short files. */
TEST(npy_malformed_prefix) {
  tmp_begin();
  const char *p = tmp_path("pre.npy");
  unsigned char img[512];
  float v[2] = {1, 2};
  size_t n = npy_image(img, 1, dict_of("<f4", "(2,)"), true, v, sizeof v);
  sk_tensor *t = NULL;

  CHECK_EQ_INT(sk_npy_load(tmp_path("missing.npy"), &t), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "missing.npy"));
  CHECK_EQ_INT(sk_npy_load(tmp_dir, &t), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "regular file"));

  write_bytes(p, img, 0);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "magic") && strstr(sk_last_error(), p));
  write_bytes(p, "PK\3\4 this is a zip", 19);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "magic"));
  for (size_t cut = 1; cut < 10; cut++) { /* every prefix too short for the fixed fields */
    write_bytes(p, img, cut);
    CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_FORMAT);
    CHECK(strstr(sk_last_error(), "truncated"));
  }
  write_bytes(p, img, 50); /* inside the dict */
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "header truncated"));
  write_bytes(p, img, 128); /* header whole, no data */
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "truncated"));

  unsigned char bad[512];
  memcpy(bad, img, n);
  bad[6] = 4;
  write_bytes(p, bad, n);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_UNSUPPORTED);
  CHECK(strstr(sk_last_error(), "version 4.0"));
  bad[6] = 1;
  bad[7] = 1;
  write_bytes(p, bad, n);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_UNSUPPORTED);
  CHECK(strstr(sk_last_error(), "version 1.1"));
  bad[6] = 0;
  bad[7] = 0;
  write_bytes(p, bad, n);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_UNSUPPORTED);

  /* v2 with a 4-byte header length that is absurd. */
  size_t m = npy_image(bad, 2, dict_of("<f4", "(2,)"), true, v, sizeof v);
  bad[8] = 0x01, bad[9] = 0x00, bad[10] = 0x01, bad[11] = 0x00; /* 65537 */
  write_bytes(p, bad, m);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "absurd") && strstr(sk_last_error(), "65537"));
  bad[8] = bad[9] = bad[10] = bad[11] = 0xff;
  write_bytes(p, bad, m);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "absurd"));
  /* v1 header length pointing past the end of the file. */
  memcpy(bad, img, n);
  bad[8] = 0x00, bad[9] = 0x10;
  write_bytes(p, bad, n);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "truncated"));
  /* Embedded NUL inside the dict. */
  memcpy(bad, img, n);
  bad[20] = 0;
  write_bytes(p, bad, n);
  CHECK_EQ_INT(sk_npy_load(p, &t), SK_ERR_FORMAT);

  CHECK_EQ_INT(sk_npy_load(p, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_npy_load(NULL, &t), SK_ERR_INVALID);
  CHECK(t == NULL);
  tmp_end();
}

TEST(npy_atomic_save) {
  tmp_begin();
  const char *p = tmp_path("a.npy");
  enum { BIG = 1000 };
  float *big = calloc(BIG, sizeof *big);
  for (int i = 0; i < BIG; i++) big[i] = (float)i;
  int64_t sb = BIG, ss = 2;
  CHECK_OK(sk_npy_save_f32(p, 1, &sb, big));
  CHECK(strcmp(tmp_listing(), "a.npy") == 0);
  long big_size = file_size(p);
  /* A smaller array replaces the file whole: no tail of the old one. */
  float small[2] = {-1, -2};
  CHECK_OK(sk_npy_save_f32(p, 1, &ss, small));
  CHECK(strcmp(tmp_listing(), "a.npy") == 0);
  CHECK_EQ_INT(file_size(p), 128 + 8);
  sk_tensor *t = NULL;
  CHECK_OK(sk_npy_load(p, &t));
  CHECK_EQ_INT(sk_tensor_numel(t), 2);
  CHECK(sk_tensor_cdata(t)[1] == -2);
  sk_tensor_free(t);

  /* Failures leave the old file and nothing else. */
  for (int k = 0; k < 2; k++) {
    sk_set_error(SK_OK, "%s", ""); /* an old message cannot pass for this one */
    sk_debug_fail_alloc_after(k);
    sk_status st = sk_npy_save_f32(p, 1, &sb, big);
    sk_debug_fail_alloc_after(-1);
    CHECK_EQ_INT(st, SK_ERR_NOMEM);
    CHECK(strstr(sk_last_error(), "a.npy"));
    CHECK(strcmp(tmp_listing(), "a.npy") == 0);
    CHECK_EQ_INT(file_size(p), 128 + 8);
  }
  CHECK_EQ_INT(sk_npy_save_f32(tmp_path("no/such/dir.npy"), 1, &ss, small), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "no/such/dir.npy"));
  CHECK(strcmp(tmp_listing(), "a.npy") == 0);
  CHECK_OK(sk_npy_save_f32(p, 1, &sb, big));
  CHECK_EQ_INT(file_size(p), big_size);
  CHECK(strcmp(tmp_listing(), "a.npy") == 0);
  free(big);
  tmp_end();
}

/* Every allocation a load makes may fail; each failure must come back as a
 * clean SK_ERR_NOMEM (ASan's leak checker sees anything left behind). */
TEST(npy_alloc_failures) {
  tmp_begin();
  int64_t s[2] = {3, 5};
  float v[15];
  for (int i = 0; i < 15; i++) v[i] = (float)i / 3;
  CHECK_OK(sk_npy_save_f32(tmp_path("a.npy"), 2, s, v));
  int k, failures = 0;
  for (k = 0; k < 100; k++) {
    sk_tensor *t = NULL;
    sk_set_error(SK_OK, "%s", ""); /* an old message cannot pass for this one */
    sk_debug_fail_alloc_after(k);
    sk_status st = sk_npy_load(tmp_path("a.npy"), &t);
    sk_debug_fail_alloc_after(-1);
    if (st == SK_OK) {
      CHECK(memcmp(sk_tensor_cdata(t), v, sizeof v) == 0);
      sk_tensor_free(t);
      break;
    }
    CHECK_EQ_INT(st, SK_ERR_NOMEM);
    CHECK(t == NULL);
    CHECK(strstr(sk_last_error(), "a.npy"));
    failures++;
  }
  CHECK(k < 100);
  CHECK(failures >= 2); /* the header text and the tensor at least */
  tmp_end();
}

/* ---- CSV ---- */

/* Loads `text` from a temporary file with the given options. */
static sk_status csv_text(const char *text, int header, int label, char delim, sk_tensor **x,
                          sk_tensor **y) {
  write_text(tmp_path("t.csv"), text);
  sk_csv_options o = sk_csv_options_default();
  o.header = header;
  o.label_column = label;
  o.delimiter = delim;
  return sk_csv_load(tmp_path("t.csv"), &o, x, y);
}

static bool tensor_is(const sk_tensor *t, int64_t rows, int64_t cols, const float *want) {
  if (!t || sk_tensor_ndim(t) != 2 || sk_tensor_shape(t)[0] != rows ||
      sk_tensor_shape(t)[1] != cols)
    return false;
  for (int64_t i = 0; i < rows * cols; i++)
    if (sk_tensor_cdata(t)[i] != want[i]) return false;
  return true;
}

TEST(csv_defaults_and_header) {
  tmp_begin();
  sk_csv_options o = sk_csv_options_default();
  CHECK_EQ_INT(o.header, -1);
  CHECK_EQ_INT(o.label_column, -1);
  CHECK_EQ_INT(o.delimiter, 0);
  sk_tensor *x = NULL;
  static const float a[6] = {1, 2, 3, 4.5f, -0.5f, 6e3f};
  CHECK_OK(csv_text("x,y,z\n1,2,3\n4.5,-5e-1,6E3\n", -1, -1, 0, &x, NULL));
  CHECK(tensor_is(x, 2, 3, a));
  sk_tensor_free(x);
  CHECK_OK(csv_text("1,2,3\n4.5,-5e-1,6E3", -1, -1, 0, &x, NULL)); /* no final newline */
  CHECK(tensor_is(x, 2, 3, a));
  sk_tensor_free(x);
  /* Forced header on a numeric first row drops it. */
  CHECK_OK(csv_text("9,9,9\n1,2,3\n4.5,-5e-1,6E3\n", 1, -1, 0, &x, NULL));
  CHECK(tensor_is(x, 2, 3, a));
  sk_tensor_free(x);
  /* No header: a text first row is an error naming the field. */
  CHECK_EQ_INT(csv_text("x,y,z\n1,2,3\n", 0, -1, 0, &x, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "line 1, column 1") && strstr(sk_last_error(), "'x'"));
  /* "nan" in the first row is a value, not a header name. */
  CHECK_EQ_INT(csv_text("1,nan\n1,2\n", -1, -1, 0, &x, NULL), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "line 1, column 2"));
  /* A header is names only; .5, 5., +1 are numbers. */
  static const float b[3] = {0.5f, 5, 1};
  CHECK_OK(csv_text("a,,c\n.5,5.,+1\n", -1, -1, 0, &x, NULL));
  CHECK(tensor_is(x, 1, 3, b));
  sk_tensor_free(x);
  /* A first row of numbers and text is data with a bad field, not a header
   * to drop in silence. */
  CHECK_EQ_INT(csv_text("a,1,2\n.5,5.,+1\n", -1, -1, 0, &x, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "line 1, column 1") && strstr(sk_last_error(), "'a'"));
  CHECK_EQ_INT(csv_text("1,NA\n2,3\n", -1, -1, 0, &x, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "line 1, column 2") && strstr(sk_last_error(), "'NA'"));
  tmp_end();
}

TEST(csv_label_column) {
  tmp_begin();
  sk_tensor *x = NULL, *y = NULL;
  static const float fx[4] = {1.5f, 3, -1, 0.25f};
  static const float fy[2] = {2, 0};
  CHECK_OK(csv_text("f1,label,f2\n1.5,2,3\n-1,0,0.25\n", -1, 1, 0, &x, &y));
  CHECK(tensor_is(x, 2, 2, fx));
  CHECK_EQ_INT(sk_tensor_ndim(y), 1);
  CHECK_EQ_INT(sk_tensor_shape(y)[0], 2);
  CHECK(sk_tensor_cdata(y)[0] == 2 && sk_tensor_cdata(y)[1] == 0);
  sk_tensor_free(x);
  sk_tensor_free(y);
  CHECK_OK(csv_text("2,1.5,3\n0.0,-1,0.25\n", -1, 0, 0, &x, &y)); /* first column, "0.0" ok */
  CHECK(tensor_is(x, 2, 2, fx));
  CHECK(memcmp(sk_tensor_cdata(y), fy, sizeof fy) == 0);
  sk_tensor_free(x);
  sk_tensor_free(y);
  CHECK_OK(csv_text("1.5 3 2\n-1 0.25 0\n", -1, 2, 0, &x, &y)); /* last column */
  CHECK(tensor_is(x, 2, 2, fx));
  CHECK(memcmp(sk_tensor_cdata(y), fy, sizeof fy) == 0);
  sk_tensor_free(x);
  sk_tensor_free(y);
  static const char *bad[] = {"1,-1\n",  "1,1.5\n", "1,abc\n",     "1,1e30\n",
                              "1,nan\n", "1,\n",    "1,16777217\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_EQ_INT(csv_text(bad[i], 0, 1, 0, &x, &y), SK_ERR_FORMAT);
    CHECK(strstr(sk_last_error(), "line 1, column 2") && strstr(sk_last_error(), "label"));
    CHECK(x == NULL && y == NULL);
  }
  CHECK_EQ_INT(csv_text("1,2\n", 0, 2, 0, &x, &y), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "label column 2"));
  CHECK_EQ_INT(csv_text("1\n", 0, 0, 0, &x, &y), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "no feature column"));
  CHECK_EQ_INT(csv_text("1,2\n", 0, 1, 0, &x, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(csv_text("1,2\n", 0, -2, 0, &x, &y), SK_ERR_INVALID);
  CHECK_EQ_INT(csv_text("1,2\n", 2, -1, 0, &x, &y), SK_ERR_INVALID);
  CHECK_EQ_INT(csv_text("1,2\n", 0, -1, '.', &x, &y), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_csv_load(tmp_path("t.csv"), NULL, NULL, NULL), SK_ERR_INVALID);
  tmp_end();
}

TEST(csv_delimiters) {
  tmp_begin();
  sk_tensor *x = NULL;
  static const float a[4] = {1, 2.5f, 3, 4};
  static const char *texts[] = {
      "1;2.5\n3;4\n",      "1\t2.5\n3\t4\n",          "  1   2.5\n3 4  \n", "1 \t 2.5\n3\t 4\n",
      "a;b\n1;2.5\n3;4\n", "\"x,y\";b\n1;2.5\n3;4\n", "1, 2.5\n3 ,4\n",     "1 ,\t2.5\n3,4\n",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    sk_status st = csv_text(texts[i], -1, -1, 0, &x, NULL);
    if (st) fprintf(stderr, "text %zu: %s\n", i, sk_last_error());
    CHECK_OK(st);
    CHECK(tensor_is(x, 2, 2, a));
    sk_tensor_free(x);
  }
  /* Explicit delimiters: ';' though commas occur, '|', ' ' for whitespace. */
  CHECK_OK(csv_text("\"1\";2.5\n3;4\n", 0, -1, ';', &x, NULL));
  CHECK(tensor_is(x, 2, 2, a));
  sk_tensor_free(x);
  CHECK_OK(csv_text("1|2.5\n3|4\n", 0, -1, '|', &x, NULL));
  CHECK(tensor_is(x, 2, 2, a));
  sk_tensor_free(x);
  CHECK_OK(csv_text("1  2.5\n3 4\n", 0, -1, ' ', &x, NULL));
  CHECK(tensor_is(x, 2, 2, a));
  sk_tensor_free(x);
  /* A tab-separated file with an empty field is ragged-free but not numeric. */
  CHECK_EQ_INT(csv_text("1\t\t2\n", 0, -1, '\t', &x, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "column 2: empty field"));
  tmp_end();
}

TEST(csv_crlf_comments_quotes) {
  tmp_begin();
  sk_tensor *x = NULL;
  static const float a[6] = {1.5f, 2, -3, 4, 5, 6};
  CHECK_OK(
      csv_text("# made by hand\r\n\r\n   \r\nx,\"y\"\r\n \"1.5\" , 2 \r\n  # middle\r\n"
               "\" -3 \",4\r\n\r\n5,\"6\"\r\n",
               -1, -1, 0, &x, NULL));
  CHECK(tensor_is(x, 3, 2, a));
  sk_tensor_free(x);
  /* A UTF-8 byte-order mark does not make the first numeric row a header. */
  CHECK_OK(
      csv_text("\xEF\xBB\xBF"
               "1.5,2\n-3,4\n5,6\n",
               -1, -1, 0, &x, NULL));
  CHECK(tensor_is(x, 3, 2, a));
  sk_tensor_free(x);
  /* "" inside quotes: a header name may contain quotes and delimiters. */
  CHECK_OK(csv_text("\"a \"\"b\"\", c\",d\n1.5,2\n-3,4\n5,6\n", -1, -1, 0, &x, NULL));
  CHECK(tensor_is(x, 3, 2, a));
  sk_tensor_free(x);
  /* Locale: strtod must read '.' whatever LC_NUMERIC says (checked where a
   * comma-decimal locale is installed; the C-locale result is checked always). */
  static const char *locs[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
  for (size_t i = 0; i < 4; i++)
    if (setlocale(LC_NUMERIC, locs[i])) break;
  CHECK_OK(csv_text("0.1;1e-3\n", 0, -1, 0, &x, NULL));
  setlocale(LC_NUMERIC, "C");
  CHECK(sk_tensor_cdata(x)[0] == 0.1f && sk_tensor_cdata(x)[1] == 1e-3f);
  sk_tensor_free(x);
  tmp_end();
}

typedef struct csv_bad {
  const char *text;
  sk_status want;
  const char *says;
} csv_bad;

TEST(csv_malformed) {
  static const csv_bad cases[] = {
      {"1,2,3\n4,5,6\n7,8\n", SK_ERR_FORMAT, "line 3: expected 3 fields, got 2"},
      {"1,2\n3,4,5,6\n", SK_ERR_FORMAT, "line 2: expected 2 fields, got 4"},
      {"x,y\n1,2\n\n# c\n3,abc\n", SK_ERR_FORMAT, "line 5, column 2: non-numeric field 'abc'"},
      {"1,2\n3,0x10\n", SK_ERR_FORMAT, "non-numeric field '0x10'"},
      {"1,2\n3,1.2.3\n", SK_ERR_FORMAT, "non-numeric field '1.2.3'"},
      {"1,2\n3,1e\n", SK_ERR_FORMAT, "non-numeric field '1e'"},
      {"1,2\n3,-\n", SK_ERR_FORMAT, "non-numeric field '-'"},
      {"1,2\n3,abcdefghijabcdefghijabcdefghijabcdefghij\n", SK_ERR_FORMAT,
       "'abcdefghijabcdefghijabcdefghijab...'"},
      {"1,2\n3,NaN\n", SK_ERR_NUMERIC, "line 2, column 2: non-finite"},
      {"1,2\n3,inf\n", SK_ERR_NUMERIC, "non-finite value 'inf'"},
      {"1,2\n-Infinity,3\n", SK_ERR_NUMERIC, "line 2, column 1"},
      {"1,2\n\"nan\",3\n", SK_ERR_NUMERIC, "non-finite"},
      {"1,2\n1e39,3\n", SK_ERR_NUMERIC, "float32 range"},
      {"1,2\n1e400,3\n", SK_ERR_NUMERIC, "float32 range"},
      {"", SK_ERR_FORMAT, "empty file"},
      {"\n\n# only comments\n  \n", SK_ERR_FORMAT, "no data rows"},
      {"x,y\n# nothing else\n", SK_ERR_FORMAT, "no data rows"},
      {"1,\"2\n3,4\n", SK_ERR_FORMAT, "line 1, column 2: unterminated quote"},
      {"1,\"2\"x\n", SK_ERR_FORMAT, "text after a closing quote"},
      {"1 \"2\"3\n", SK_ERR_FORMAT, "text after a closing quote"},
      {"1,,3\n", SK_ERR_FORMAT, "line 1, column 2: empty field"},
      {"1,2,\n", SK_ERR_FORMAT, "line 1, column 3: empty field"},
      {"1,2\n3,\"\"\n", SK_ERR_FORMAT, "column 2: empty field"},
  };
  tmp_begin();
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    sk_tensor *x = NULL;
    sk_status st = csv_text(cases[c].text, -1, -1, 0, &x, NULL);
    if (st != cases[c].want || !strstr(sk_last_error(), cases[c].says))
      fprintf(stderr, "case %zu: got %s: %s\n", c, sk_status_str(st), sk_last_error());
    CHECK_EQ_INT(st, cases[c].want);
    CHECK(strstr(sk_last_error(), cases[c].says));
    CHECK(strstr(sk_last_error(), tmp_path("t.csv")));
    CHECK(x == NULL);
  }
  sk_tensor *x = NULL;
  CHECK_EQ_INT(sk_csv_load(tmp_path("absent.csv"), NULL, &x, NULL), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "absent.csv"));
  /* A NUL byte. */
  write_bytes(tmp_path("t.csv"), "1,2\n3,\0\n", 8);
  CHECK_EQ_INT(sk_csv_load(tmp_path("t.csv"), NULL, &x, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "line 2") && strstr(sk_last_error(), "NUL"));
  /* Line 2 of 1 MiB + 1 bytes (with and without a final CRLF) is too long;
   * exactly 1 MiB (plus CRLF or LF) is read, and its 2^20 digits overflow. */
  size_t mib = (size_t)1 << 20;
  char *s = malloc(mib + 16);
  for (int variant = 0; variant < 4; variant++) {
    size_t l2 = variant < 2 ? mib + 1 : mib;
    s[0] = '7', s[1] = '\n';
    memset(s + 2, '1', l2);
    s[2 + l2] = 0;
    if (variant == 1 || variant == 2) strcat(s, "\r\n");
    if (variant == 3) strcat(s, "\n");
    write_text(tmp_path("t.csv"), s);
    sk_status st = sk_csv_load(tmp_path("t.csv"), NULL, &x, NULL);
    if (variant < 2) {
      CHECK_EQ_INT(st, SK_ERR_FORMAT);
      CHECK(strstr(sk_last_error(), "line 2 is longer than 1 MiB"));
    } else {
      CHECK_EQ_INT(st, SK_ERR_NUMERIC);
      CHECK(strstr(sk_last_error(), "line 2, column 1"));
    }
  }
  /* More than 1e6 columns (empty fields fit within 1 MiB). */
  memset(s, ',', 1000000);
  s[1000000] = 0;
  write_text(tmp_path("t.csv"), s);
  CHECK_EQ_INT(sk_csv_load(tmp_path("t.csv"), NULL, &x, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "line 1: more than 1000000 columns"));
  free(s);
  tmp_end();
}

TEST(csv_alloc_failures) {
  tmp_begin();
  /* Enough rows that the value buffers grow more than once. */
  char *text = malloc(1 << 16), *w = text;
  w += sprintf(w, "# rows\na,label,b\n");
  for (int i = 0; i < 1500; i++) w += sprintf(w, "%d.5,%d,%d\n", i, i % 3, -i);
  write_text(tmp_path("a.csv"), text);
  free(text);
  sk_csv_options o = sk_csv_options_default();
  o.label_column = 1;
  int k, failures = 0;
  for (k = 0; k < 200; k++) {
    sk_tensor *x = NULL, *y = NULL;
    sk_set_error(SK_OK, "%s", ""); /* an old message cannot pass for this one */
    sk_debug_fail_alloc_after(k);
    sk_status st = sk_csv_load(tmp_path("a.csv"), &o, &x, &y);
    sk_debug_fail_alloc_after(-1);
    if (st == SK_OK) {
      CHECK_EQ_INT(sk_tensor_shape(x)[0], 1500);
      CHECK_EQ_INT(sk_tensor_shape(x)[1], 2);
      CHECK(sk_tensor_cdata(x)[2 * 1499] == 1499.5f && sk_tensor_cdata(y)[1499] == 1499 % 3);
      sk_tensor_free(x);
      sk_tensor_free(y);
      break;
    }
    CHECK_EQ_INT(st, SK_ERR_NOMEM);
    CHECK(x == NULL && y == NULL);
    CHECK(strstr(sk_last_error(), "a.csv"));
    failures++;
  }
  CHECK(k < 200);
  CHECK(failures >= 6); /* read buffer, line, x and label buffers (grown), two tensors */
  tmp_end();
}

/* ---- corpus: ok_* files load, bad_* files fail cleanly (later seeds fuzzers) ---- */

static void check_corpus(const char *sub, bool npy, int *n_ok, int *n_bad) {
  char dir[512], path[1024];
  snprintf(dir, sizeof dir, "%s/tests/corpus/%s", SK_SOURCE_DIR, sub);
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "cannot open %s\n", dir);
    sk_test_failed_flag = 1;
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    bool ok = strncmp(e->d_name, "ok_", 3) == 0, bad = strncmp(e->d_name, "bad_", 4) == 0;
    sk_tensor *x = NULL;
    sk_status st = npy ? sk_npy_load(path, &x) : sk_csv_load(path, NULL, &x, NULL);
    bool good =
        (ok && st == SK_OK && x) || (bad && st != SK_OK && !x && strstr(sk_last_error(), path) &&
                                     !strchr(sk_last_error(), '\n'));
    if (!good) {
      fprintf(stderr, "corpus %s: %s: %s\n", e->d_name, sk_status_str(st), sk_last_error());
      sk_test_failed_flag = 1;
    }
    *n_ok += ok;
    *n_bad += bad;
    sk_tensor_free(x);
  }
  closedir(d);
}

TEST(corpus_replay) {
  int ok = 0, bad = 0;
  check_corpus("npy", true, &ok, &bad);
  CHECK(!sk_test_failed_flag);
  CHECK(ok >= 8 && bad >= 10);
  ok = bad = 0;
  check_corpus("csv", false, &ok, &bad);
  CHECK(!sk_test_failed_flag);
  CHECK(ok >= 8 && bad >= 10);
}

TEST_MAIN(TEST_ENTRY(npy_roundtrip_shapes), TEST_ENTRY(npy_save_i32_labels),
          TEST_ENTRY(npy_each_dtype_v1_v2_v3), TEST_ENTRY(npy_header_variants),
          TEST_ENTRY(npy_values_rejected), TEST_ENTRY(npy_malformed),
          TEST_ENTRY(npy_malformed_prefix), TEST_ENTRY(npy_atomic_save),
          TEST_ENTRY(npy_alloc_failures), TEST_ENTRY(csv_defaults_and_header),
          TEST_ENTRY(csv_label_column), TEST_ENTRY(csv_delimiters),
          TEST_ENTRY(csv_crlf_comments_quotes), TEST_ENTRY(csv_malformed),
          TEST_ENTRY(csv_alloc_failures), TEST_ENTRY(corpus_replay))
