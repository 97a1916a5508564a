/* safetensors: save/load round trips, hand-built malformed files (each a
 * clean error naming the path), F64/F16/BF16 conversion, atomic saves,
 * allocation failures, and the corpus in tests/corpus/safetensors. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scorekit/rng.h"
#include "scorekit/safetensors.h"
#include "scorekit/tensor.h"
#include "test.h"

static char tmpdir[64];

/* A fresh empty directory for one test. */
static const char *fresh_dir(void) {
  strcpy(tmpdir, "/tmp/sk_st_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    exit(1);
  }
  return tmpdir;
}

static int count_dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Writes a file: the 8-byte length `hlen_field`, the header text, the data. */
static void write_raw(const char *path, uint64_t hlen_field, const char *header, const void *data,
                      size_t dlen) {
  FILE *f = fopen(path, "wb");
  unsigned char len[8];
  put_u64(len, hlen_field);
  fwrite(len, 1, 8, f);
  fwrite(header, 1, strlen(header), f);
  if (dlen) fwrite(data, 1, dlen, f);
  fclose(f);
}

static void write_file(const char *path, const char *header, const void *data, size_t dlen) {
  write_raw(path, strlen(header), header, data, dlen);
}

static int same_bits(const float *a, const float *b, size_t n) {
  return n == 0 || memcmp(a, b, n * sizeof(float)) == 0;
}

TEST(round_trip) {
  const char *dir = fresh_dir();
  char path[128];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  float a[6], c[24], s = -3.5f;
  sk_rng r = sk_rng_make(9, 1);
  sk_rng_normal(&r, a, 6);
  sk_rng_normal(&r, c, 24);
  a[1] = -0.0f;
  a[2] = 1.4e-45f; /* a subnormal survives unchanged */
  sk_named_tensor t[] = {
      {"layer.0.weight", 2, {2, 3}, a},
      {"scalar", 0, {0}, &s},
      {"empty", 2, {0, 5}, NULL},
      {"w\xc3\xa9ird \"name\"\\", 4, {2, 1, 3, 4}, c},
  };
  const char *meta[] = {
      "format", "pt",
      "config", "{\"sigma_min\": 0.01, \"layers\": [64, 64]}",
      "tricky", "quote \" backslash \\ newline \n tab \t bell \x07 \xe2\x82\xac \xf0\x9f\x98\x80",
      "empty",  "",
  };
  CHECK_OK(sk_safetensors_save(path, t, 4, meta, 4));
  CHECK_EQ_INT(count_dir_entries(dir), 1);

  /* The layout: header length a multiple of 8, '{' first, data at the end. */
  FILE *f = fopen(path, "rb");
  unsigned char head[9];
  CHECK(fread(head, 1, 9, f) == 9);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fclose(f);
  uint64_t hn = 0;
  for (int i = 7; i >= 0; i--) hn = (hn << 8) | head[i];
  CHECK_EQ_INT(hn % 8, 0);
  CHECK_EQ_INT(head[8], '{');
  CHECK_EQ_INT((uint64_t)size, 8 + hn + (6 + 1 + 0 + 24) * 4);

  sk_safetensors *st = NULL;
  CHECK_OK(sk_safetensors_load(path, &st));
  CHECK_EQ_INT(sk_safetensors_count(st), 4);
  for (int i = 0; i < 4; i++) CHECK(strcmp(sk_safetensors_name(st, i), t[i].name) == 0);
  CHECK(sk_safetensors_name(st, 4) == NULL && sk_safetensors_name(st, -1) == NULL);
  for (int i = 0; i < 4; i++) {
    const sk_tensor *x;
    CHECK_OK(sk_safetensors_get(st, t[i].name, &x));
    CHECK_EQ_INT(sk_tensor_ndim(x), t[i].ndim);
    int64_t numel = 1;
    for (int d = 0; d < t[i].ndim; d++) {
      CHECK_EQ_INT(sk_tensor_shape(x)[d], t[i].shape[d]);
      numel *= t[i].shape[d];
    }
    CHECK_EQ_INT(sk_tensor_numel(x), numel);
    CHECK(same_bits(sk_tensor_cdata(x), t[i].data, (size_t)numel));
  }
  CHECK_EQ_INT(sk_safetensors_meta_count(st), 4);
  for (int i = 0; i < 4; i++)
    CHECK(strcmp(sk_safetensors_meta(st, meta[2 * i]), meta[2 * i + 1]) == 0);
  CHECK(strcmp(sk_safetensors_meta_key(st, 0), "config") == 0); /* key order */
  CHECK(sk_safetensors_meta(st, "absent") == NULL);
  const sk_tensor *x = (const sk_tensor *)1;
  CHECK_EQ_INT(sk_safetensors_get(st, "nope", &x), SK_ERR_INVALID);
  CHECK(x == NULL);
  CHECK(strstr(sk_last_error(), "'nope'") && strstr(sk_last_error(), path));
  sk_safetensors_free(st);
  sk_safetensors_free(NULL);

  /* Saving again replaces the file atomically and leaves no temporary. */
  CHECK_OK(sk_safetensors_save(path, t, 1, NULL, 0));
  CHECK_EQ_INT(count_dir_entries(dir), 1);
  CHECK_OK(sk_safetensors_load(path, &st));
  CHECK_EQ_INT(sk_safetensors_count(st), 1);
  CHECK_EQ_INT(sk_safetensors_meta_count(st), 0);
  sk_safetensors_free(st);
  /* No tensors at all is a valid file too. */
  CHECK_OK(sk_safetensors_save(path, NULL, 0, NULL, 0));
  CHECK_OK(sk_safetensors_load(path, &st));
  CHECK_EQ_INT(sk_safetensors_count(st), 0);
  sk_safetensors_free(st);
  remove_dir(dir);
}

/* Bad arguments to save fail before anything is written. */
TEST(save_errors) {
  const char *dir = fresh_dir();
  char path[128];
  snprintf(path, sizeof path, "%s/x.safetensors", dir);
  float v[4] = {1, 2, 3, 4}, nan_v[2] = {1, NAN}, inf_v[1] = {-INFINITY};
  static const struct {
    int which;
    sk_status want;
    const char *msg;
  } cases[] = {
      {0, SK_ERR_INVALID, "given twice"},
      {1, SK_ERR_INVALID, "empty name"},
      {2, SK_ERR_INVALID, "empty name"},
      {3, SK_ERR_INVALID, "reserved"},
      {4, SK_ERR_INVALID, "rank 5"},
      {5, SK_ERR_INVALID, "dimension 1 is -2"},
      {6, SK_ERR_NUMERIC, "'n': element 1 is NaN"},
      {7, SK_ERR_NUMERIC, "'i': element 0 is infinite"},
      {8, SK_ERR_INVALID, "data is NULL"},
      {9, SK_ERR_INVALID, "not UTF-8"},
      {10, SK_ERR_INVALID, "'k' given twice"},
      {11, SK_ERR_INVALID, "metadata 'bad': not UTF-8"},
      {12, SK_ERR_INVALID, "NULL"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    sk_named_tensor t[2] = {{"a", 1, {4}, v}, {"b", 1, {4}, v}};
    const char *meta[4] = {"k", "v", "k2", "v2"};
    int n = 2, n_meta = 2;
    switch (cases[k].which) {
      case 0: t[1].name = "a"; break;
      case 1: t[1].name = ""; break;
      case 2: t[0].name = NULL; break;
      case 3: t[1].name = "__metadata__"; break;
      case 4: t[1].ndim = 5; break;
      case 5: t[1].ndim = 2, t[1].shape[1] = -2; break;
      case 6: t[1] = (sk_named_tensor){"n", 1, {2}, nan_v}; break;
      case 7: t[1] = (sk_named_tensor){"i", 0, {0}, inf_v}; break;
      case 8: t[1].data = NULL; break;
      case 9: t[1].name = "bad\xff"; break;
      case 10: meta[2] = "k"; break;
      case 11: meta[2] = "bad", meta[3] = "\xc3"; break;
      case 12: meta[3] = NULL; break;
    }
    sk_status s = sk_safetensors_save(path, t, n, meta, n_meta);
    if (s != cases[k].want || !strstr(sk_last_error(), cases[k].msg))
      fprintf(stderr, "case %zu: %s: %s\n", k, sk_status_str(s), sk_last_error());
    CHECK_EQ_INT(s, cases[k].want);
    CHECK(strstr(sk_last_error(), cases[k].msg));
    CHECK(strstr(sk_last_error(), path));
    CHECK_EQ_INT(count_dir_entries(dir), 0);
  }
  /* A missing directory is an i/o error. */
  char bad_path[160];
  snprintf(bad_path, sizeof bad_path, "%s/no/such/dir.safetensors", dir);
  sk_named_tensor one = {"a", 1, {4}, v};
  CHECK_EQ_INT(sk_safetensors_save(bad_path, &one, 1, NULL, 0), SK_ERR_IO);
  CHECK_EQ_INT(count_dir_entries(dir), 0);
  remove_dir(dir);
}

/* Hand-built malformed files: each fails with the expected status and a
 * message naming the file and the problem. */
TEST(malformed_files) {
  const char *dir = fresh_dir();
  char path[128];
  snprintf(path, sizeof path, "%s/bad.safetensors", dir);
  float two[2] = {1, 2}, three[3] = {1, 2, 3}, four[4] = {1, 2, 3, 4};
  uint32_t nan_bits[2] = {0x3F800000u, 0x7FC00000u};
  uint16_t f16_inf[1] = {0x7C00};
  double huge[1] = {1e300};
  const struct {
    const char *header;
    const void *data;
    size_t dlen;
    sk_status want;
    const char *msg;
  } cases[] = {
      {"[]", NULL, 0, SK_ERR_FORMAT, "does not start with '{'"},
      {" {}", NULL, 0, SK_ERR_FORMAT, "does not start with '{'"},
      {"{\"a\":{\"dtype\":\"F32\",}}", NULL, 0, SK_ERR_FORMAT, "header: byte 20:"},
      {"{} x", NULL, 0, SK_ERR_FORMAT, "header: byte 3:"},
      {"{\"a\":5}", NULL, 0, SK_ERR_FORMAT, "'a': entry is not an object"},
      {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", two, 4, SK_ERR_FORMAT,
       "'a': no string \"dtype\""},
      {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", two, 4, SK_ERR_FORMAT,
       "'a': no array \"shape\""},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", two, 4, SK_ERR_FORMAT,
       "\"data_offsets\" is not"},
      {"{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", two, 8,
       SK_ERR_UNSUPPORTED, "dtype \"I64\""},
      {"{\"a\":{\"dtype\":\"F32\\u0000\",\"shape\":[1],\"data_offsets\":[0,4]}}", two, 4,
       SK_ERR_UNSUPPORTED, "not supported"},
      {"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", two, 4,
       SK_ERR_UNSUPPORTED, "not supported"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", two, 4, SK_ERR_FORMAT,
       "shape[0] is not"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", two, 4, SK_ERR_FORMAT,
       "shape[0] is not"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", two, 4,
       SK_ERR_UNSUPPORTED, "rank 5"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,"
       "4]}}",
       two, 4, SK_ERR_FORMAT, "overflows"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", two, 4,
       SK_ERR_FORMAT, "overflows"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", two, 4, SK_ERR_FORMAT,
       "0 <= begin <= end"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", two, 4, SK_ERR_FORMAT,
       "0 <= begin <= end"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", two, 4, SK_ERR_FORMAT,
       "\"data_offsets\" is not"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", two, 8, SK_ERR_FORMAT,
       "hold 8 bytes, but 3 F32 elements need 12"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", two, 4, SK_ERR_FORMAT,
       "past the 4-byte data buffer"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", four, 8, SK_ERR_FORMAT,
       "truncated"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\","
       "\"shape\":[2],\"data_offsets\":[4,12]}}",
       three, 12, SK_ERR_FORMAT, "'b' overlaps tensor 'a'"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\","
       "\"shape\":[1],\"data_offsets\":[8,12]}}",
       three, 12, SK_ERR_FORMAT, "hole of 4 bytes lies before tensor 'b'"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", two, 8, SK_ERR_FORMAT,
       "hole of 4 bytes"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"z\":{\"dtype\":\"F32\","
       "\"shape\":[0],\"data_offsets\":[4,4]}}",
       two, 8, SK_ERR_FORMAT, "'z' overlaps"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", two, 8, SK_ERR_FORMAT,
       "cover 4 bytes but 8 follow"},
      {"{}", two, 8, SK_ERR_FORMAT, "cover 0 bytes but 8 follow"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", nan_bits, 8,
       SK_ERR_NUMERIC, "'a': element 1 is NaN"},
      {"{\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", f16_inf, 2,
       SK_ERR_NUMERIC, "'h': element 0 is +inf"},
      {"{\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", huge, 8, SK_ERR_NUMERIC,
       "'d': element 0 is 1e+300, beyond float32"},
      {"{\"__metadata__\":{\"k\":1}}", NULL, 0, SK_ERR_FORMAT,
       "metadata 'k': value is not a string"},
      {"{\"__metadata__\":[]}", NULL, 0, SK_ERR_FORMAT, "\"__metadata__\" is not an object"},
      {"{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", NULL, 0, SK_ERR_FORMAT, "NUL"},
      {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", two, 4, SK_ERR_FORMAT,
       "empty name"},
      {"{\"a\\u0000\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", two, 4,
       SK_ERR_FORMAT, "NUL"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\","
       "\"shape\":[1],\"data_offsets\":[4,8]}}",
       two, 8, SK_ERR_FORMAT, "duplicate key \"a\""},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\","
       "\"shape\":[1],\"data_offsets\":[0,4]}}",
       two, 8, SK_ERR_FORMAT, "overlaps"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    write_file(path, cases[k].header, cases[k].data, cases[k].dlen);
    sk_safetensors *st = (sk_safetensors *)1;
    sk_status s = sk_safetensors_load(path, &st);
    if (s != cases[k].want || !strstr(sk_last_error(), cases[k].msg))
      fprintf(stderr, "case %zu (%s): %s: %s\n", k, cases[k].header, sk_status_str(s),
              sk_last_error());
    CHECK_EQ_INT(s, cases[k].want);
    CHECK(st == NULL);
    CHECK(strncmp(sk_last_error(), path, strlen(path)) == 0);
    CHECK(strstr(sk_last_error(), cases[k].msg));
  }

  /* Broken length fields. */
  sk_safetensors *st = NULL;
  write_raw(path, (uint64_t)1 << 62, "{}      ", NULL, 0);
  CHECK_EQ_INT(sk_safetensors_load(path, &st), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), path) && strstr(sk_last_error(), "exceeds the 100000000-byte cap"));
  write_raw(path, UINT64_MAX, "{}      ", NULL, 0);
  CHECK_EQ_INT(sk_safetensors_load(path, &st), SK_ERR_FORMAT);
  write_raw(path, 1000, "{}      ", NULL, 0);
  CHECK_EQ_INT(sk_safetensors_load(path, &st), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "header length 1000 exceeds the 8 bytes after it"));
  write_raw(path, 0, "", NULL, 0);
  CHECK_EQ_INT(sk_safetensors_load(path, &st), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "too short"));
  FILE *f = fopen(path, "wb");
  fwrite("\x02\0\0", 1, 3, f);
  fclose(f);
  CHECK_EQ_INT(sk_safetensors_load(path, &st), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "3 bytes is too short for the 8-byte header length"));
  /* Not there, or not a file. */
  char missing[160];
  snprintf(missing, sizeof missing, "%s/missing.safetensors", dir);
  CHECK_EQ_INT(sk_safetensors_load(missing, &st), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), missing));
  CHECK_EQ_INT(sk_safetensors_load(dir, &st), SK_ERR_IO);
  CHECK(st == NULL);
  remove_dir(dir);
}

TEST(dtype_conversion) {
  const char *dir = fresh_dir();
  char path[128];
  snprintf(path, sizeof path, "%s/conv.safetensors", dir);
  /* Listed out of offset order; loads in offset order. Trailing spaces pad. */
  const char *header =
      "{\"bf\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[40,48]},"
      "\"h\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[24,40]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]},"
      "\"f\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[48,52]}}    ";
  unsigned char data[52];
  const double dv[3] = {0.1, -2.5, 1e-50};
  const uint16_t hv[8] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x3555, 0x8000, 0x0400};
  const uint16_t bv[4] = {0x3F80, 0x4049, 0xC2F7, 0x0000};
  const float fv = 6.5f;
  for (int i = 0; i < 3; i++) {
    uint64_t b;
    memcpy(&b, &dv[i], 8);
    put_u64(data + 8 * i, b);
  }
  for (int i = 0; i < 8; i++) data[24 + 2 * i] = hv[i] & 0xFF, data[25 + 2 * i] = hv[i] >> 8;
  for (int i = 0; i < 4; i++) data[40 + 2 * i] = bv[i] & 0xFF, data[41 + 2 * i] = bv[i] >> 8;
  uint32_t fb;
  memcpy(&fb, &fv, 4);
  for (int i = 0; i < 4; i++) data[48 + i] = (unsigned char)(fb >> (8 * i));
  write_file(path, header, data, sizeof data);

  sk_safetensors *st;
  CHECK_OK(sk_safetensors_load(path, &st));
  CHECK_EQ_INT(sk_safetensors_count(st), 4);
  const char *order[] = {"d", "h", "bf", "f"};
  for (int i = 0; i < 4; i++) CHECK(strcmp(sk_safetensors_name(st, i), order[i]) == 0);
  const sk_tensor *t;
  CHECK_OK(sk_safetensors_get(st, "d", &t));
  const float *x = sk_tensor_cdata(t);
  CHECK(x[0] == (float)0.1 && x[1] == -2.5f && x[2] == (float)1e-50);
  CHECK_OK(sk_safetensors_get(st, "h", &t));
  x = sk_tensor_cdata(t);
  const float want_h[8] = {1.0f,  -2.0f,   65504.0f, 0x1p-24f, 1023 * 0x1p-24f, 0.333251953125f,
                           -0.0f, 0x1p-14f};
  for (int i = 0; i < 8; i++) CHECK_NEAR(x[i], want_h[i], 0);
  CHECK(signbit(x[6]));
  CHECK_OK(sk_safetensors_get(st, "bf", &t));
  CHECK_EQ_INT(sk_tensor_ndim(t), 2);
  x = sk_tensor_cdata(t);
  CHECK(x[0] == 1.0f && x[1] == 3.140625f && x[2] == -123.5f && x[3] == 0.0f);
  CHECK_OK(sk_safetensors_get(st, "f", &t));
  CHECK_EQ_INT(sk_tensor_ndim(t), 0);
  CHECK_EQ_INT(sk_tensor_numel(t), 1);
  CHECK(sk_tensor_cdata(t)[0] == 6.5f);
  sk_safetensors_free(st);

  /* "__metadata__": null counts as none; unknown entry fields are ignored. */
  write_file(path,
             "{\"__metadata__\":null,\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
             "\"extra\":true}}",
             &fv, 4);
  CHECK_OK(sk_safetensors_load(path, &st));
  CHECK_EQ_INT(sk_safetensors_meta_count(st), 0);
  CHECK_EQ_INT(sk_safetensors_count(st), 1);
  sk_safetensors_free(st);
  remove_dir(dir);
}

/* Every allocation failure in a load or a save is a clean SK_ERR_NOMEM that
 * leaves nothing behind (ASan reports leaks). */
TEST(allocation_failures) {
  const char *dir = fresh_dir();
  char path[128], path2[128];
  snprintf(path, sizeof path, "%s/a.safetensors", dir);
  snprintf(path2, sizeof path2, "%s/b.safetensors", dir);
  float a[12], b[5];
  sk_rng r = sk_rng_make(3, 0);
  sk_rng_normal(&r, a, 12);
  sk_rng_normal(&r, b, 5);
  sk_named_tensor t[] = {{"a", 2, {3, 4}, a}, {"b", 1, {5}, b}, {"c", 1, {0}, NULL}};
  const char *meta[] = {"k1", "v1", "k2", "v\n2"};
  CHECK_OK(sk_safetensors_save(path, t, 3, meta, 2));
  int k;
  for (k = 0;; k++) {
    sk_safetensors *st = (sk_safetensors *)1;
    sk_set_error(SK_OK, "%s", ""); /* an old message cannot pass for this one */
    sk_debug_fail_alloc_after(k);
    sk_status s = sk_safetensors_load(path, &st);
    sk_debug_fail_alloc_after(-1);
    if (s == SK_OK) {
      CHECK_EQ_INT(sk_safetensors_count(st), 3);
      CHECK(strcmp(sk_safetensors_meta(st, "k2"), "v\n2") == 0);
      sk_safetensors_free(st);
      break;
    }
    if (s != SK_ERR_NOMEM) fprintf(stderr, "k=%d: %s\n", k, sk_last_error());
    CHECK_EQ_INT(s, SK_ERR_NOMEM);
    CHECK(st == NULL);
    CHECK(strstr(sk_last_error(), path) || strstr(sk_last_error(), "out of memory"));
    CHECK(k < 200);
  }
  CHECK(k >= 10);
  for (k = 0;; k++) {
    sk_set_error(SK_OK, "%s", "");
    sk_debug_fail_alloc_after(k);
    sk_status s = sk_safetensors_save(path2, t, 3, meta, 2);
    sk_debug_fail_alloc_after(-1);
    if (s == SK_OK) break;
    CHECK_EQ_INT(s, SK_ERR_NOMEM);
    CHECK(strstr(sk_last_error(), "out of memory"));
    CHECK_EQ_INT(count_dir_entries(dir), 1); /* only the first file */
    CHECK(k < 200);
  }
  CHECK(k >= 3);
  CHECK_EQ_INT(count_dir_entries(dir), 2);
  remove_dir(dir);
}

/* tests/corpus/safetensors: every ok_* file loads, every bad_* file fails with
 * a message naming it. */
TEST(corpus) {
  const char *dir = SK_SOURCE_DIR "/tests/corpus/safetensors";
  DIR *d = opendir(dir);
  CHECK(d);
  int n_ok = 0, n_bad = 0, failed = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *name = e->d_name;
    size_t len = strlen(name);
    if (len < 12 || strcmp(name + len - 12, ".safetensors") != 0) continue;
    bool ok = strncmp(name, "ok_", 3) == 0, bad = strncmp(name, "bad_", 4) == 0;
    if (!ok && !bad) continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sk_safetensors *st = NULL;
    sk_status s = sk_safetensors_load(path, &st);
    if (ok && s != SK_OK) {
      fprintf(stderr, "%s should load: %s\n", name, sk_last_error());
      failed++;
    }
    if (bad && (s == SK_OK || !strstr(sk_last_error(), name) || st != NULL)) {
      fprintf(stderr, "%s should fail naming the file: %s: %s\n", name, sk_status_str(s),
              s ? sk_last_error() : "");
      failed++;
    }
    if (ok && s == SK_OK) {
      /* Every tensor listed can be fetched. */
      for (int i = 0; i < sk_safetensors_count(st); i++) {
        const sk_tensor *t;
        if (sk_safetensors_get(st, sk_safetensors_name(st, i), &t) != SK_OK) failed++;
      }
    }
    sk_safetensors_free(st);
    n_ok += ok;
    n_bad += bad;
  }
  closedir(d);
  CHECK_EQ_INT(failed, 0);
  CHECK(n_ok >= 4);
  CHECK(n_bad >= 10);

  /* Spot checks of values the generator wrote. */
  sk_safetensors *st;
  const sk_tensor *t;
  CHECK_OK(
      sk_safetensors_load(SK_SOURCE_DIR "/tests/corpus/safetensors/ok_f32_basic.safetensors", &st));
  CHECK(strcmp(sk_safetensors_meta(st, "note"),
               "quote \" backslash \\ newline \n \xc3\xa9\xe2\x82\xac") == 0);
  CHECK_OK(sk_safetensors_get(st, "b", &t));
  CHECK(sk_tensor_cdata(t)[2] == 1e-3f);
  sk_safetensors_free(st);
  CHECK_OK(sk_safetensors_load(
      SK_SOURCE_DIR "/tests/corpus/safetensors/ok_mixed_dtypes.safetensors", &st));
  CHECK_OK(sk_safetensors_get(st, "h", &t));
  CHECK(sk_tensor_cdata(t)[0] == 1.0f && sk_tensor_cdata(t)[1] == -2.0f &&
        sk_tensor_cdata(t)[2] == 0x1p-24f);
  CHECK_OK(sk_safetensors_get(st, "bf", &t));
  CHECK(sk_tensor_cdata(t)[0] == 1.0f && sk_tensor_cdata(t)[1] == 3.140625f);
  sk_safetensors_free(st);
  CHECK_OK(sk_safetensors_load(
      SK_SOURCE_DIR "/tests/corpus/safetensors/ok_offset_order.safetensors", &st));
  CHECK(strcmp(sk_safetensors_name(st, 0), "first") == 0);
  sk_safetensors_free(st);
}

TEST_MAIN(TEST_ENTRY(round_trip), TEST_ENTRY(save_errors), TEST_ENTRY(malformed_files),
          TEST_ENTRY(dtype_conversion), TEST_ENTRY(allocation_failures), TEST_ENTRY(corpus))
