/* The IDX loader: files of every type written here, plain and gzipped, each
 * malformed case with the words of its message, allocation failures (zlib's
 * included), the corpus, and the element types the .npy loader reports. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#include "scorekit/io.h"
#include "test.h"

static char tmp_dir[64];

static void tmp_begin(void) {
  strcpy(tmp_dir, "/tmp/sk_idx_XXXXXX");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    exit(1);
  }
}

static const char *tmp_path(const char *name) {
  static char bufs[4][256];
  static int k;
  char *b = bufs[k++ % 4];
  snprintf(b, 256, "%s/%.180s", tmp_dir, name);
  return b;
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
  if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* One gzip member of n bytes into out (capacity cap); returns its size. */
static size_t gzip_bytes(const void *in, size_t n, unsigned char *out, size_t cap) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) != Z_OK) exit(1);
  z.next_in = (unsigned char *)(uintptr_t)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) exit(1);
  size_t m = z.total_out;
  deflateEnd(&z);
  return m;
}

static void write_gz(const char *path, const void *p, size_t n) {
  size_t cap = n + n / 100 + 64;
  unsigned char *z = malloc(cap);
  write_bytes(path, z, gzip_bytes(p, n, z, cap));
  free(z);
}

/* An IDX image: the magic for `type`, the dimensions, then `data` (already
 * big-endian) of n bytes. Returns the size; out holds 20 + n bytes. */
static size_t idx_image(unsigned char *out, int type, int ndim, const uint32_t *dims,
                        const void *data, size_t n) {
  out[0] = out[1] = 0;
  out[2] = (unsigned char)type;
  out[3] = (unsigned char)ndim;
  for (int i = 0; i < ndim; i++)
    for (int b = 0; b < 4; b++) out[4 + 4 * i + b] = (unsigned char)(dims[i] >> (24 - 8 * b));
  if (n) memcpy(out + 4 + 4 * ndim, data, n);
  return 4 + 4 * (size_t)ndim + n;
}

/* Stores v big-endian in `size` bytes at p. */
static void put_be(unsigned char *p, uint64_t v, int size) {
  for (int b = 0; b < size; b++) p[b] = (unsigned char)(v >> (8 * (size - 1 - b)));
}

/* ---- valid files ---- */

typedef struct typed_case {
  int code, size;
  sk_dtype dtype;
  double values[6]; /* what the file holds, in the type's range */
} typed_case;

static const typed_case typed_cases[] = {
    {0x08, 1, SK_DTYPE_U8, {0, 1, 127, 128, 200, 255}},
    {0x09, 1, SK_DTYPE_I8, {-128, -1, 0, 1, 64, 127}},
    {0x0B, 2, SK_DTYPE_I16, {-32768, -300, 0, 255, 256, 32767}},
    {0x0C, 4, SK_DTYPE_I32, {-16777216, -70000, 0, 65536, 1000001, 16777216}},
    {0x0D, 4, SK_DTYPE_F32, {-1.5, 0, 0.1f, 3.25, 1e-30f, 3e38f}},
    {0x0E, 8, SK_DTYPE_F64, {-2.75, 0, 0.1, 1e-3, 123456.5, -3e38}},
};

/* The big-endian encoding of v as the case's type. */
static void encode(const typed_case *c, double v, unsigned char *p) {
  uint64_t u;
  if (c->dtype == SK_DTYPE_F32) {
    float f = (float)v;
    uint32_t w;
    memcpy(&w, &f, 4);
    u = w;
  } else if (c->dtype == SK_DTYPE_F64) {
    memcpy(&u, &v, 8);
  } else {
    u = (uint64_t)(int64_t)v;
  }
  put_be(p, u, c->size);
}

TEST(idx_each_type_plain_and_gzipped) {
  tmp_begin();
  for (size_t c = 0; c < sizeof typed_cases / sizeof typed_cases[0]; c++) {
    const typed_case *tc = &typed_cases[c];
    unsigned char data[48], img[80];
    for (int i = 0; i < 6; i++) encode(tc, tc->values[i], data + i * tc->size);
    const uint32_t dims[2] = {2, 3};
    size_t n = idx_image(img, tc->code, 2, dims, data, 6 * (size_t)tc->size);
    for (int gz = 0; gz < 2; gz++) {
      const char *p = tmp_path(gz ? "a.idx.gz" : "a.idx");
      if (gz)
        write_gz(p, img, n);
      else
        write_bytes(p, img, n);
      sk_tensor *t = NULL;
      sk_dtype dt = SK_DTYPE_COUNT;
      CHECK_OK(sk_idx_load(p, &t, &dt));
      CHECK_EQ_INT(dt, tc->dtype);
      CHECK_EQ_INT(sk_tensor_ndim(t), 2);
      CHECK_EQ_INT(sk_tensor_shape(t)[0], 2);
      CHECK_EQ_INT(sk_tensor_shape(t)[1], 3);
      for (int i = 0; i < 6; i++) CHECK_EQ_INT(sk_tensor_cdata(t)[i] == (float)tc->values[i], 1);
      sk_tensor_free(t);
    }
  }
  CHECK_EQ_INT(strcmp(sk_dtype_name(SK_DTYPE_U8), "uint8"), 0);
  CHECK_EQ_INT(strcmp(sk_dtype_name(SK_DTYPE_F64), "float64"), 0);
  CHECK_EQ_INT(strcmp(sk_dtype_name(SK_DTYPE_COUNT), "unknown"), 0);
  tmp_end();
}

TEST(idx_ranks_and_empty_arrays) {
  tmp_begin();
  static const uint32_t shapes[][4] = {{5}, {0, 28, 28}, {3, 1, 2, 2}, {2, 0}};
  static const int ranks[] = {1, 3, 4, 2};
  unsigned char data[64], img[128];
  for (int i = 0; i < 64; i++) data[i] = (unsigned char)(3 * i);
  for (int c = 0; c < 4; c++) {
    size_t numel = 1;
    for (int i = 0; i < ranks[c]; i++) numel *= shapes[c][i];
    size_t n = idx_image(img, 0x08, ranks[c], shapes[c], data, numel);
    for (int gz = 0; gz < 2; gz++) {
      const char *p = tmp_path("r.idx");
      if (gz)
        write_gz(p, img, n); /* the name does not decide: the magic does */
      else
        write_bytes(p, img, n);
      sk_tensor *t = NULL;
      CHECK_OK(sk_idx_load(p, &t, NULL));
      CHECK_EQ_INT(sk_tensor_ndim(t), ranks[c]);
      for (int i = 0; i < ranks[c]; i++) CHECK_EQ_INT(sk_tensor_shape(t)[i], shapes[c][i]);
      for (size_t i = 0; i < numel; i++) CHECK_EQ_INT(sk_tensor_cdata(t)[i], data[i]);
      sk_tensor_free(t);
    }
  }
  tmp_end();
}

/* gzip allows several members back to back (`cat a.gz b.gz`); they are one
 * stream, and a member may end anywhere, even inside the header. */
TEST(idx_gzip_members) {
  tmp_begin();
  unsigned char data[300], img[400], z[1200];
  for (int i = 0; i < 300; i++) data[i] = (unsigned char)(i * 7);
  const uint32_t dims[3] = {3, 10, 10};
  size_t n = idx_image(img, 0x08, 3, dims, data, 300);
  for (size_t cut = 1; cut < n; cut += 37) {
    size_t a = gzip_bytes(img, cut, z, sizeof z);
    size_t b = gzip_bytes(img + cut, n - cut, z + a, sizeof z - a);
    write_bytes(tmp_path("m.gz"), z, a + b);
    sk_tensor *t = NULL;
    CHECK_OK(sk_idx_load(tmp_path("m.gz"), &t, NULL));
    CHECK_EQ_INT(sk_tensor_numel(t), 300);
    for (int i = 0; i < 300; i++) CHECK_EQ_INT(sk_tensor_cdata(t)[i], data[i]);
    sk_tensor_free(t);
  }
  tmp_end();
}

/* ---- malformed files: each a status and the words that name the problem ---- */

typedef struct bad_case {
  const char *what;
  unsigned char bytes[48];
  size_t n;
  sk_status status;
  const char *needle;
} bad_case;

/* A uint8 (2, 2) file: 00 00 08 02 | 00 00 00 02 | 00 00 00 02 | 4 bytes. */
#define GOOD_U8 0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4

static const bad_case bad_cases[] = {
    {"empty", {0}, 0, SK_ERR_FORMAT, "empty"},
    {"bad magic", {0x50, 0x4b, 3, 4, 0, 0}, 6, SK_ERR_FORMAT, "bad magic"},
    {"bad second byte", {0, 1, 8, 1, 0, 0, 0, 1, 5}, 9, SK_ERR_FORMAT, "bad magic"},
    {"magic cut", {0, 0, 8}, 3, SK_ERR_FORMAT, "truncated in the 4-byte magic"},
    {"type 0x0A", {0, 0, 0x0A, 1, 0, 0, 0, 1, 5}, 9, SK_ERR_FORMAT, "unknown data type code 0x0A"},
    {"type 0x00", {0, 0, 0, 1, 0, 0, 0, 1, 5}, 9, SK_ERR_FORMAT, "unknown data type code 0x00"},
    {"rank 0", {0, 0, 8, 0, 5}, 5, SK_ERR_FORMAT, "rank 0"},
    {"rank 5", {0, 0, 8, 5, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9}, 25,
     SK_ERR_UNSUPPORTED, "rank 5 is more than 4"},
    {"rank 255", {0, 0, 8, 255, 0, 0, 0, 1}, 8, SK_ERR_UNSUPPORTED, "rank 255"},
    {"dims cut", {0, 0, 8, 3, 0, 0, 0, 1, 0, 0}, 10, SK_ERR_FORMAT, "truncated in the dimensions"},
    {"negative dim", {0, 0, 8, 2, 0, 0, 0, 1, 0x80, 0, 0, 0}, 12, SK_ERR_FORMAT,
     "dimension 1 is negative (-2147483648)"},
    {"product overflows", {0, 0, 8, 4, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff,
                           0xff, 0xff, 0x7f, 0xff, 0xff, 0xff},
     20, SK_ERR_FORMAT, "product overflows"},
    {"over the cap", {0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 1}, 12, SK_ERR_UNSUPPORTED,
     "more than the cap of 2^32"},
    {"data truncated", {GOOD_U8}, 15, SK_ERR_FORMAT, "data truncated: the dimensions need 4 bytes"},
    {"no data", {GOOD_U8}, 12, SK_ERR_FORMAT, "data truncated"},
    {"trailing", {GOOD_U8, 0}, 17, SK_ERR_FORMAT, "1 trailing bytes after the 4 bytes of data"},
    {"f32 NaN", {0, 0, 0x0D, 1, 0, 0, 0, 2, 0x3f, 0x80, 0, 0, 0x7f, 0xc0, 0, 0}, 16, SK_ERR_NUMERIC,
     "non-finite value (NaN) at flat index 1"},
    {"f32 -Inf", {0, 0, 0x0D, 1, 0, 0, 0, 1, 0xff, 0x80, 0, 0}, 12, SK_ERR_NUMERIC,
     "non-finite value (Inf) at flat index 0"},
    {"f64 NaN", {0, 0, 0x0E, 1, 0, 0, 0, 1, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}, 16, SK_ERR_NUMERIC,
     "(NaN) at flat index 0"},
    {"f64 1e300", {0, 0, 0x0E, 1, 0, 0, 0, 1, 0x7e, 0x37, 0xe4, 0x3c, 0x88, 0x00, 0x75, 0x9c}, 16,
     SK_ERR_NUMERIC, "outside float32 range"},
    {"i32 2^24+1", {0, 0, 0x0C, 1, 0, 0, 0, 1, 0x01, 0, 0, 1}, 12, SK_ERR_NUMERIC,
     "integer 16777217 at flat index 0 is not exact"},
    {"i32 size", {0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0}, 14, SK_ERR_FORMAT,
     "the dimensions need 8 bytes, 6 follow"},
};

TEST(idx_malformed) {
  tmp_begin();
  for (size_t c = 0; c < sizeof bad_cases / sizeof bad_cases[0]; c++) {
    const bad_case *bc = &bad_cases[c];
    for (int gz = 0; gz < 2; gz++) {
      const char *p = tmp_path(gz ? "bad.idx.gz" : "bad.idx");
      if (gz)
        write_gz(p, bc->bytes, bc->n);
      else
        write_bytes(p, bc->bytes, bc->n);
      sk_tensor *t = (sk_tensor *)1;
      sk_status st = sk_idx_load(p, &t, NULL);
      /* Through gzip the size is only known by reading: "the file holds"
       * becomes "the gzip stream holds", the trailing count is unknown. */
      const char *needle = bc->needle;
      if (gz && !strcmp(bc->what, "data truncated")) needle = "the gzip stream holds 3";
      if (gz && !strcmp(bc->what, "no data")) needle = "the gzip stream holds 0";
      if (gz && !strcmp(bc->what, "i32 size")) needle = "the gzip stream holds 6";
      if (gz && !strcmp(bc->what, "trailing"))
        needle = "trailing bytes after the 4 bytes of data in the gzip stream";
      bool ok = st == bc->status && t == NULL && strstr(sk_last_error(), needle) &&
                strstr(sk_last_error(), p) && !strchr(sk_last_error(), '\n');
      if (!ok) {
        fprintf(stderr, "case \"%s\"%s: %s: %s\n", bc->what, gz ? " (gzip)" : "",
                sk_status_str(st), sk_last_error());
        sk_test_failed_flag = 1;
      }
    }
  }
  CHECK(!sk_test_failed_flag);
  tmp_end();
}

/* What only gzip can get wrong: the compressed stream itself. */
TEST(idx_gzip_malformed) {
  tmp_begin();
  const char *p = tmp_path("z.idx.gz");
  unsigned char data[4000], img[4100], z[8200], bad[8200];
  for (int i = 0; i < 4000; i++) data[i] = (unsigned char)((i * 2654435761u) >> 24);
  const uint32_t dims[3] = {5, 20, 40};
  size_t n = idx_image(img, 0x08, 3, dims, data, 4000);
  size_t m = gzip_bytes(img, n, z, sizeof z);
  CHECK(m >= 20 && m + 8 <= sizeof bad);
  sk_tensor *t = NULL;

  /* Cut anywhere: inside the gzip header, the deflate data or the trailer. */
  for (size_t cut = 2; cut < m; cut += (cut < 40 || cut > m - 10) ? 1 : 97) {
    write_bytes(p, z, cut);
    sk_status st = sk_idx_load(p, &t, NULL);
    if (st != SK_ERR_FORMAT || t || !strstr(sk_last_error(), "truncated")) {
      fprintf(stderr, "cut at %zu of %zu: %s: %s\n", cut, m, sk_status_str(st), sk_last_error());
      CHECK(0);
    }
  }
  /* A flipped bit in the CRC-32 of the trailer. */
  memcpy(bad, z, m);
  bad[m - 6] ^= 1;
  write_bytes(p, bad, m);
  CHECK_EQ_INT(sk_idx_load(p, &t, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "corrupt gzip stream") && strstr(sk_last_error(), "check"));
  /* An invalid block type in the deflate data (BTYPE = 11). */
  memcpy(bad, z, m);
  bad[10] |= 6;
  write_bytes(p, bad, m);
  CHECK_EQ_INT(sk_idx_load(p, &t, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "corrupt gzip stream at byte"));
  /* A bad compression method in the gzip header. */
  memcpy(bad, z, m);
  bad[2] = 7;
  write_bytes(p, bad, m);
  CHECK_EQ_INT(sk_idx_load(p, &t, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "corrupt gzip stream"));
  /* Bytes after the last member: garbage, a lone byte, zero padding. */
  static const char *tails[] = {"junk\n", "x", "\0\0\0\0"};
  static const size_t tail_n[] = {5, 1, 4};
  for (int k = 0; k < 3; k++) {
    memcpy(bad, z, m);
    memcpy(bad + m, tails[k], tail_n[k]);
    write_bytes(p, bad, m + tail_n[k]);
    CHECK_EQ_INT(sk_idx_load(p, &t, NULL), SK_ERR_FORMAT);
    CHECK(strstr(sk_last_error(), "trailing bytes after the gzip stream"));
  }
  /* A header declaring more than the file could ever inflate to, refused
   * before any allocation for the data: (65535, 65535) uint8 in 40 bytes. */
  const uint32_t huge[2] = {65535, 65535};
  size_t hn = idx_image(img, 0x08, 2, huge, data, 100);
  write_gz(p, img, hn);
  uint64_t before = sk_debug_alloc_count();
  CHECK_EQ_INT(sk_idx_load(p, &t, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "more than a gzip file of"));
  CHECK(sk_debug_alloc_count() - before < 8); /* the input buffer and zlib's state only */
  CHECK(t == NULL);
  tmp_end();
}

TEST(idx_bad_arguments_and_paths) {
  tmp_begin();
  sk_tensor *t = NULL;
  CHECK_EQ_INT(sk_idx_load(tmp_path("missing.idx"), &t, NULL), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "missing.idx") && strstr(sk_last_error(), "cannot open"));
  CHECK_EQ_INT(sk_idx_load(tmp_dir, &t, NULL), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "not a regular file"));
  CHECK_EQ_INT(sk_idx_load(tmp_dir, NULL, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_idx_load(NULL, &t, NULL), SK_ERR_INVALID);
  CHECK(t == NULL);
  tmp_end();
}

/* Every allocation of a load may fail (the tensor, the input buffer, and
 * inflate's state and window, which zlib takes through the library's
 * allocator); each failure is SK_ERR_NOMEM naming the file, with nothing
 * leaked (ASan checks). */
TEST(idx_alloc_failures) {
  tmp_begin();
  unsigned char data[600], img[700];
  for (int i = 0; i < 600; i++) data[i] = (unsigned char)i;
  const uint32_t dims[3] = {6, 10, 10};
  size_t n = idx_image(img, 0x08, 3, dims, data, 600);
  for (int gz = 0; gz < 2; gz++) {
    const char *p = tmp_path(gz ? "a.idx.gz" : "a.idx");
    if (gz)
      write_gz(p, img, n);
    else
      write_bytes(p, img, n);
    int k, failures = 0;
    for (k = 0; k < 100; k++) {
      sk_tensor *t = NULL;
      sk_debug_fail_alloc_after(k);
      sk_status st = sk_idx_load(p, &t, NULL);
      sk_debug_fail_alloc_after(-1);
      if (st == SK_OK) {
        for (int i = 0; i < 600; i++) CHECK_EQ_INT(sk_tensor_cdata(t)[i], data[i]);
        sk_tensor_free(t);
        break;
      }
      if (st != SK_ERR_NOMEM || t || !strstr(sk_last_error(), p)) {
        fprintf(stderr, "failing allocation %d%s: %s: %s\n", k, gz ? " (gzip)" : "",
                sk_status_str(st), sk_last_error());
        CHECK(0);
      }
      failures++;
    }
    CHECK(k < 100);
    CHECK(failures >= (gz ? 4 : 2)); /* tensor and data; + input buffer, inflate state, window */
  }
  tmp_end();
}

TEST(npy_reports_its_element_type) {
  tmp_begin();
  static const char *descr[] = {"<f4", "<f8", "|i1", "<i2", "<i4", "<i8",
                                "|u1", "<u2", "<u4", "<u8", "|b1"};
  for (int k = 0; k < SK_DTYPE_COUNT; k++) {
    char dict[128];
    unsigned char img[256] = {0};
    int hl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (2,), }",
                      descr[k]);
    memcpy(img, "\x93NUMPY\x01\x00", 8);
    img[8] = (unsigned char)hl;
    memcpy(img + 10, dict, (size_t)hl);
    int size = descr[k][2] - '0';
    write_bytes(tmp_path("t.npy"), img, 10 + (size_t)hl + 2 * (size_t)size);
    sk_tensor *t = NULL;
    sk_dtype dt = SK_DTYPE_COUNT;
    CHECK_OK(sk_npy_load_typed(tmp_path("t.npy"), &t, &dt));
    CHECK_EQ_INT(dt, k);
    sk_tensor_free(t);
  }
  tmp_end();
}

/* tests/corpus/idx: ok_* files load, bad_* files fail with one line naming
 * the file (the files come from tests/corpus/make_idx_corpus.py). */
TEST(idx_corpus) {
  char dir[512], path[1024];
  snprintf(dir, sizeof dir, "%s/tests/corpus/idx", SK_SOURCE_DIR);
  DIR *d = opendir(dir);
  CHECK(d);
  int n_ok = 0, n_bad = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    bool ok = strncmp(e->d_name, "ok_", 3) == 0, bad = strncmp(e->d_name, "bad_", 4) == 0;
    sk_tensor *x = NULL;
    sk_status st = sk_idx_load(path, &x, NULL);
    bool good = (ok && st == SK_OK && x) || (bad && st != SK_OK && !x &&
                                             strstr(sk_last_error(), path) &&
                                             !strchr(sk_last_error(), '\n'));
    if (!good) {
      fprintf(stderr, "corpus %s: %s: %s\n", e->d_name, sk_status_str(st), sk_last_error());
      sk_test_failed_flag = 1;
    }
    n_ok += ok;
    n_bad += bad;
    sk_tensor_free(x);
  }
  closedir(d);
  CHECK(!sk_test_failed_flag);
  CHECK(n_ok >= 8 && n_bad >= 12);
}

TEST_MAIN(TEST_ENTRY(idx_each_type_plain_and_gzipped), TEST_ENTRY(idx_ranks_and_empty_arrays),
          TEST_ENTRY(idx_gzip_members), TEST_ENTRY(idx_malformed), TEST_ENTRY(idx_gzip_malformed),
          TEST_ENTRY(idx_bad_arguments_and_paths), TEST_ENTRY(idx_alloc_failures),
          TEST_ENTRY(npy_reports_its_element_type), TEST_ENTRY(idx_corpus))
