/* safetensors reading and writing: an 8-byte little-endian header length, a
 * JSON header, then the tensors' bytes. Every header number is checked before
 * it is used, and the whole file is validated before it is accepted. */
#define _POSIX_C_SOURCE 200809L
#include "scorekit/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/internal.h"
#include "io/json.h"

/* The reference implementation's cap: no real header comes close. */
#define MAX_HEADER_BYTES 100000000ull

struct name_index {
  const char *name;
  int i;
};

struct sk_safetensors {
  char *path;
  int n;
  char **names;               /* (n) in file order, into name_block */
  sk_tensor **tensors;        /* (n) in file order */
  struct name_index *by_name; /* (n) sorted by name, for lookup */
  char *name_block;
  int n_meta;
  char **meta; /* (2 n_meta) key, value, ... sorted by key, into meta_block */
  char *meta_block;
  /* Opened by sk__safetensors_open: tensors are read on demand. */
  FILE *f;
  struct entry *entries; /* (n) in file order, names into name_block */
  uint64_t data_start;   /* file offset of the data buffer */
};

typedef enum dtype { DT_F32, DT_F64, DT_F16, DT_BF16 } dtype;
static const struct {
  const char *name;
  size_t size;
} dtypes[] = {{"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}};

/* One header entry while it is checked. */
typedef struct entry {
  const char *name;
  size_t index; /* position in the header, to order ties */
  dtype dt;
  int ndim;
  int64_t shape[SK_MAX_DIMS];
  uint64_t numel;
  uint64_t begin, end; /* bytes from the start of the buffer */
} entry;

/* ---- byte order ---- */

static uint64_t load_u64_le(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static void store_u64_le(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
  if (exp == 0) {
    /* Zero or subnormal: man x 2^-24, exact in float. */
    float f = (float)man * 0x1p-24f;
    return sign ? -f : f;
  }
  if (exp == 31)
    bits = sign | 0x7F800000u | (man << 13);
  else
    bits = sign | ((exp + 112) << 23) | (man << 13);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* Converts `count` little-endian elements at src to floats at dst. Returns
 * the index of the first element that is not finite in float32, or count. */
static size_t convert(dtype dt, const unsigned char *src, float *dst, size_t count) {
  size_t bad = count;
  for (size_t i = 0; i < count; i++) {
    float f;
    const unsigned char *p = src + i * dtypes[dt].size;
    if (dt == DT_F32) {
      uint32_t b =
          (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
      memcpy(&f, &b, 4);
    } else if (dt == DT_F64) {
      uint64_t b = load_u64_le(p);
      double d;
      memcpy(&d, &b, 8);
      f = (float)d;
    } else {
      uint16_t b = (uint16_t)(p[0] | p[1] << 8);
      if (dt == DT_F16) {
        f = half_to_float(b);
      } else {
        uint32_t w = (uint32_t)b << 16;
        memcpy(&f, &w, 4);
      }
    }
    if (!isfinite(f) && bad == count) bad = i;
    dst[i] = f;
  }
  return bad;
}

/* ---- loading ---- */

void sk_safetensors_free(sk_safetensors *st) {
  if (!st) return;
  if (st->tensors)
    for (int i = 0; i < st->n; i++) sk_tensor_free(st->tensors[i]);
  sk__free(st->tensors);
  sk__free(st->names);
  sk__free(st->by_name);
  sk__free(st->name_block);
  sk__free(st->meta);
  sk__free(st->meta_block);
  sk__free(st->path);
  sk__free(st->entries);
  if (st->f) fclose(st->f);
  sk__free(st);
}

static int entry_cmp(const void *pa, const void *pb) {
  const entry *a = pa, *b = pb;
  if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
  if (a->end != b->end) return a->end < b->end ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

static int by_name_cmp(const void *pa, const void *pb) {
  return strcmp(((const struct name_index *)pa)->name, ((const struct name_index *)pb)->name);
}

static int meta_cmp(const void *pa, const void *pb) {
  return strcmp(((char *const *)pa)[0], ((char *const *)pb)[0]);
}

/* A string from the header that will be handed out as a C string: it must
 * not hold a NUL byte from \u0000. */
static bool c_string_ok(const char *s, size_t n) { return memchr(s, 0, n) == NULL; }

/* Checks one tensor entry of the header into *e. */
static sk_status check_entry(const char *path, const sk__json *v, uint64_t buf_bytes, entry *e) {
  size_t name_len;
  const char *name = sk__json_key(v, &name_len);
  e->name = name;
  if (name_len == 0) return sk__fail(SK_ERR_FORMAT, "%s: a tensor has an empty name", path);
  if (!c_string_ok(name, name_len))
    return sk__fail(SK_ERR_FORMAT, "%s: tensor '%s': name holds a NUL character", path, name);
  if (sk__json_type(v) != SK__JSON_OBJECT)
    return sk__fail(SK_ERR_FORMAT, "%s: tensor '%s': entry is not an object", path, name);

  size_t dt_len;
  const char *dt = sk__json_string(sk__json_get(v, "dtype"), &dt_len);
  if (!dt) return sk__fail(SK_ERR_FORMAT, "%s: tensor '%s': no string \"dtype\"", path, name);
  size_t k = 0;
  while (k < sizeof dtypes / sizeof dtypes[0] &&
         (strlen(dtypes[k].name) != dt_len || memcmp(dt, dtypes[k].name, dt_len) != 0))
    k++;
  if (k == sizeof dtypes / sizeof dtypes[0])
    return sk__fail(SK_ERR_UNSUPPORTED,
                    "%s: tensor '%s': dtype \"%.16s\" is not supported (F32, F64, F16, BF16)", path,
                    name, dt);
  e->dt = (dtype)k;

  const sk__json *shape = sk__json_get(v, "shape");
  if (sk__json_type(shape) != SK__JSON_ARRAY)
    return sk__fail(SK_ERR_FORMAT, "%s: tensor '%s': no array \"shape\"", path, name);
  if (sk__json_len(shape) > SK_MAX_DIMS)
    return sk__fail(SK_ERR_UNSUPPORTED, "%s: tensor '%s': rank %zu exceeds %d", path, name,
                    sk__json_len(shape), SK_MAX_DIMS);
  e->ndim = (int)sk__json_len(shape);
  uint64_t numel = 1;
  for (int i = 0; i < e->ndim; i++) {
    int64_t d;
    if (!sk__json_int(sk__json_at(shape, (size_t)i), &d) || d < 0)
      return sk__fail(SK_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                      path, name, i);
    e->shape[i] = d;
    if (__builtin_mul_overflow(numel, (uint64_t)d, &numel))
      return sk__fail(SK_ERR_FORMAT, "%s: tensor '%s': element count overflows", path, name);
  }
  e->numel = numel;

  const sk__json *off = sk__json_get(v, "data_offsets");
  int64_t b, en;
  if (sk__json_len(off) != 2 || sk__json_type(off) != SK__JSON_ARRAY ||
      !sk__json_int(sk__json_at(off, 0), &b) || !sk__json_int(sk__json_at(off, 1), &en) || b < 0 ||
      en < b)
    return sk__fail(SK_ERR_FORMAT,
                    "%s: tensor '%s': \"data_offsets\" is not [begin, end] with 0 <= begin <= end",
                    path, name);
  e->begin = (uint64_t)b;
  e->end = (uint64_t)en;
  uint64_t bytes;
  if (__builtin_mul_overflow(numel, (uint64_t)dtypes[k].size, &bytes))
    return sk__fail(SK_ERR_FORMAT, "%s: tensor '%s': byte size overflows", path, name);
  if (bytes != e->end - e->begin)
    return sk__fail(SK_ERR_FORMAT,
                    "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                    " bytes, but %" PRIu64 " %s elements need %" PRIu64,
                    path, name, e->begin, e->end, e->end - e->begin, numel, dt, bytes);
  if (e->end > buf_bytes)
    return sk__fail(SK_ERR_FORMAT,
                    "%s: tensor '%s': data_offsets end %" PRIu64 " is past the %" PRIu64
                    "-byte data buffer (truncated file?)",
                    path, name, e->end, buf_bytes);
  return SK_OK;
}

/* Copies the string-only "__metadata__" object into st, sorted by key. */
static sk_status load_meta(const char *path, const sk__json *m, sk_safetensors *st) {
  if (!m || sk__json_type(m) == SK__JSON_NULL) return SK_OK;
  if (sk__json_type(m) != SK__JSON_OBJECT)
    return sk__fail(SK_ERR_FORMAT, "%s: \"__metadata__\" is not an object", path);
  size_t n = sk__json_len(m), total = 0;
  for (size_t i = 0; i < n; i++) {
    const sk__json *v = sk__json_at(m, i);
    size_t kn, vn;
    const char *key = sk__json_key(v, &kn), *val = sk__json_string(v, &vn);
    if (!val) return sk__fail(SK_ERR_FORMAT, "%s: metadata '%s': value is not a string", path, key);
    if (!c_string_ok(key, kn) || !c_string_ok(val, vn))
      return sk__fail(SK_ERR_FORMAT, "%s: metadata '%s': holds a NUL character", path, key);
    total += kn + vn + 2; /* bounded by the header size */
  }
  if (n == 0) return SK_OK;
  st->meta = sk__calloc(2 * n, sizeof(char *));
  st->meta_block = sk__malloc(total);
  if (!st->meta || !st->meta_block)
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for metadata", path);
  char *p = st->meta_block;
  for (size_t i = 0; i < n; i++) {
    const sk__json *v = sk__json_at(m, i);
    size_t kn, vn;
    const char *key = sk__json_key(v, &kn), *val = sk__json_string(v, &vn);
    st->meta[2 * i] = memcpy(p, key, kn + 1);
    p += kn + 1;
    st->meta[2 * i + 1] = memcpy(p, val, vn + 1);
    p += vn + 1;
  }
  st->n_meta = (int)n;
  qsort(st->meta, n, 2 * sizeof(char *), meta_cmp);
  return SK_OK;
}

/* Reads e's bytes from f (positioned at them) into dst, converting to float32. */
static sk_status read_tensor(const char *path, FILE *f, const entry *e, float *dst) {
  unsigned char buf[16384];
  size_t esize = dtypes[e->dt].size, per = sizeof buf / esize, done = 0;
  while (done < e->numel) {
    size_t count = (size_t)SK_MIN((uint64_t)per, e->numel - done);
    if (fread(buf, esize, count, f) != count)
      return sk__fail(SK_ERR_IO, "%s: tensor '%s': %s", path, e->name,
                      ferror(f) ? strerror(errno) : "unexpected end of file (changed while read?)");
    size_t bad = convert(e->dt, buf, dst + done, count);
    if (bad < count) {
      float x = dst[done + bad];
      if (e->dt == DT_F64) {
        double d;
        uint64_t b = load_u64_le(buf + bad * 8);
        memcpy(&d, &b, 8);
        if (isfinite(d))
          return sk__fail(SK_ERR_NUMERIC, "%s: tensor '%s': element %zu is %g, beyond float32",
                          path, e->name, done + bad, d);
      }
      return sk__fail(SK_ERR_NUMERIC, "%s: tensor '%s': element %zu is %s", path, e->name,
                      done + bad,
                      isnan(x) ? "NaN"
                      : x > 0  ? "+inf"
                               : "-inf");
    }
    done += count;
  }
  return SK_OK;
}

/* The part of loading after the file is open; every failure leaves cleanup
 * to the caller. `lazy`: check the header only, and keep the entries in st
 * for sk__safetensors_read. */
static sk_status load_file(const char *path, FILE *f, sk_safetensors *st, char **header,
                           sk__json_doc **doc, entry **entries, bool lazy) {
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0)
    return sk__fail(SK_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  if (!S_ISREG(sb.st_mode)) return sk__fail(SK_ERR_IO, "%s: not a regular file", path);
  uint64_t size = (uint64_t)sb.st_size;
  unsigned char lenbuf[8];
  if (size < 8)
    return sk__fail(SK_ERR_FORMAT,
                    "%s: %" PRIu64 " bytes is too short for the 8-byte header length", path, size);
  if (fread(lenbuf, 1, 8, f) != 8)
    return sk__fail(SK_ERR_IO, "%s: cannot read the header length", path);
  uint64_t hn = load_u64_le(lenbuf);
  if (hn > MAX_HEADER_BYTES)
    return sk__fail(SK_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the %llu-byte cap", path,
                    hn, MAX_HEADER_BYTES);
  if (hn > size - 8)
    return sk__fail(SK_ERR_FORMAT,
                    "%s: header length %" PRIu64 " exceeds the %" PRIu64 " bytes after it", path,
                    hn, size - 8);
  if (hn < 2)
    return sk__fail(SK_ERR_FORMAT, "%s: header length %" PRIu64 " is too short", path, hn);
  *header = sk__malloc((size_t)hn);
  if (!*header)
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for a %" PRIu64 "-byte header", path, hn);
  if (fread(*header, 1, (size_t)hn, f) != hn)
    return sk__fail(SK_ERR_IO, "%s: cannot read the %" PRIu64 "-byte header", path, hn);
  if ((*header)[0] != '{')
    return sk__fail(SK_ERR_FORMAT, "%s: header does not start with '{'", path);
  char what[512];
  snprintf(what, sizeof what, "%s: header", path);
  sk_status s = sk__json_parse(what, *header, (size_t)hn, doc, NULL);
  if (s) return s;
  const sk__json *root = sk__json_root(*doc);
  if (sk__json_type(root) != SK__JSON_OBJECT)
    return sk__fail(SK_ERR_FORMAT, "%s: header is not a JSON object", path);

  uint64_t buf_bytes = size - 8 - hn;
  const sk__json *meta = sk__json_get(root, "__metadata__");
  size_t n_all = sk__json_len(root), n = n_all - (meta != NULL), names_total = 0;
  if (n > 0) {
    *entries = sk__calloc(n, sizeof(entry));
    if (!*entries) return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %zu entries", path, n);
  }
  entry *es = *entries;
  for (size_t i = 0, k = 0; i < n_all; i++) {
    const sk__json *v = sk__json_at(root, i);
    if (v == meta) continue;
    es[k].index = k;
    if ((s = check_entry(path, v, buf_bytes, &es[k]))) return s;
    names_total += strlen(es[k].name) + 1;
    k++;
  }
  if (n) qsort(es, n, sizeof *es, entry_cmp);
  uint64_t at = 0;
  for (size_t i = 0; i < n; i++) {
    if (es[i].begin < at)
      return sk__fail(SK_ERR_FORMAT, "%s: tensor '%s' overlaps tensor '%s'", path, es[i].name,
                      es[i - 1].name);
    if (es[i].begin > at)
      return sk__fail(SK_ERR_FORMAT,
                      "%s: a hole of %" PRIu64
                      " bytes lies before tensor '%s' (offsets must tile the buffer)",
                      path, es[i].begin - at, es[i].name);
    at = es[i].end;
  }
  if (at != buf_bytes)
    return sk__fail(SK_ERR_FORMAT,
                    "%s: the tensors cover %" PRIu64 " bytes but %" PRIu64
                    " follow the header (trailing bytes)",
                    path, at, buf_bytes);

  if ((s = load_meta(path, meta, st))) return s;
  if (n > (size_t)INT32_MAX) return sk__fail(SK_ERR_FORMAT, "%s: too many tensors", path);
  if (n > 0) {
    st->names = sk__calloc(n, sizeof(char *));
    st->tensors = sk__calloc(n, sizeof(sk_tensor *));
    st->by_name = sk__calloc(n, sizeof *st->by_name);
    st->name_block = sk__malloc(names_total);
    if (!st->names || !st->tensors || !st->by_name || !st->name_block)
      return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %zu tensors", path, n);
  }
  st->n = (int)n;
  char *p = st->name_block;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(es[i].name) + 1;
    st->names[i] = memcpy(p, es[i].name, len);
    p += len;
    st->by_name[i].name = st->names[i];
    st->by_name[i].i = (int)i;
    es[i].name = st->names[i];
  }
  if (n) qsort(st->by_name, n, sizeof *st->by_name, by_name_cmp);
  /* The JSON tree is no longer needed: free it before the data arrives. */
  sk__json_doc_free(*doc);
  *doc = NULL;
  sk__free(*header);
  *header = NULL;
  if (lazy) {
    st->entries = *entries; /* names now point into st->name_block */
    *entries = NULL;
    st->data_start = 8 + hn;
    return SK_OK;
  }

  for (size_t i = 0; i < n; i++) {
    st->tensors[i] = sk_tensor_new(es[i].ndim, es[i].shape);
    if (!st->tensors[i])
      return sk__fail(SK_ERR_NOMEM, "%s: tensor '%s': out of memory for %" PRIu64 " floats", path,
                      es[i].name, es[i].numel);
    if ((s = read_tensor(path, f, &es[i], sk_tensor_data(st->tensors[i])))) return s;
  }
  return SK_OK;
}

static sk_status open_file(const char *path, sk_safetensors **out, bool lazy) {
  if (!out) return sk__fail(SK_ERR_INVALID, "sk_safetensors_load: out is NULL");
  *out = NULL;
  if (!path) return sk__fail(SK_ERR_INVALID, "sk_safetensors_load: path is NULL");
  sk_safetensors *st = sk__calloc(1, sizeof *st);
  if (st) st->path = sk__strdup(path);
  if (!st || !st->path) {
    sk_safetensors_free(st);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory", path);
  }
  FILE *f = NULL;
  sk_status s0 = sk__open_read(path, &f, NULL);
  if (s0) {
    sk_safetensors_free(st);
    return s0;
  }
  char *header = NULL;
  sk__json_doc *doc = NULL;
  entry *entries = NULL;
  sk_status s = load_file(path, f, st, &header, &doc, &entries, lazy);
  if (lazy && !s)
    st->f = f;
  else
    fclose(f);
  sk__free(header);
  sk__json_doc_free(doc);
  sk__free(entries);
  if (s) {
    sk_safetensors_free(st);
    return s;
  }
  *out = st;
  return SK_OK;
}

sk_status sk_safetensors_load(const char *path, sk_safetensors **out) {
  return open_file(path, out, false);
}

sk_status sk__safetensors_open(const char *path, sk_safetensors **out) {
  return open_file(path, out, true);
}

/* The index of tensor `name` in file order, or -1. */
static int find(const sk_safetensors *st, const char *name) {
  int lo = 0, hi = st->n;
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(st->by_name[mid].name, name);
    if (c == 0) return st->by_name[mid].i;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

int sk__safetensors_shape(const sk_safetensors *st, const char *name, const int64_t **shape) {
  int i = find(st, name);
  if (i < 0 || !st->entries) return -1;
  *shape = st->entries[i].shape;
  return st->entries[i].ndim;
}

sk_status sk__safetensors_read(sk_safetensors *st, const char *name, float *dst) {
  int i = find(st, name);
  if (i < 0 || !st->f)
    return sk__fail(SK_ERR_INVALID, "%s: no tensor named '%s' to read", st->path, name);
  const entry *e = &st->entries[i];
  uint64_t at = st->data_start + e->begin;
  if (at > (uint64_t)INT64_MAX || fseeko(st->f, (off_t)at, SEEK_SET) != 0)
    return sk__fail(SK_ERR_IO, "%s: tensor '%s': cannot seek: %s", st->path, name, strerror(errno));
  return read_tensor(st->path, st->f, e, dst);
}

int sk_safetensors_count(const sk_safetensors *st) { return st ? st->n : 0; }

const char *sk_safetensors_name(const sk_safetensors *st, int i) {
  return st && i >= 0 && i < st->n ? st->names[i] : NULL;
}

sk_status sk_safetensors_get(const sk_safetensors *st, const char *name, const sk_tensor **out) {
  if (out) *out = NULL;
  if (!st || !name || !out) return sk__fail(SK_ERR_INVALID, "sk_safetensors_get: NULL argument");
  int i = find(st, name);
  if (i < 0) return sk__fail(SK_ERR_INVALID, "%s: no tensor named '%s'", st->path, name);
  if (!st->tensors[i])
    return sk__fail(SK_ERR_INVALID, "%s: tensor '%s' is read on demand (sk__safetensors_read)",
                    st->path, name);
  *out = st->tensors[i];
  return SK_OK;
}

const char *sk_safetensors_meta(const sk_safetensors *st, const char *key) {
  if (!st || !key) return NULL;
  int lo = 0, hi = st->n_meta;
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(st->meta[2 * mid], key);
    if (c == 0) return st->meta[2 * mid + 1];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

int sk_safetensors_meta_count(const sk_safetensors *st) { return st ? st->n_meta : 0; }

const char *sk_safetensors_meta_key(const sk_safetensors *st, int i) {
  return st && i >= 0 && i < st->n_meta ? st->meta[2 * i] : NULL;
}

/* ---- saving ---- */

static int cstr_cmp(const void *pa, const void *pb) {
  return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

/* Checks the arguments of a save; *bytes gets the size of the data buffer. */
static sk_status check_save(const char *path, const sk_named_tensor *t, int n,
                            const char *const *meta, int n_meta, uint64_t *bytes) {
  if (n < 0 || n_meta < 0 || (n > 0 && !t) || (n_meta > 0 && !meta))
    return sk__fail(SK_ERR_INVALID, "%s: bad tensor or metadata list (n %d, n_meta %d)", path, n,
                    n_meta);
  size_t bad;
  uint64_t total = 0;
  for (int i = 0; i < n; i++) {
    const sk_named_tensor *x = &t[i];
    if (!x->name || !x->name[0])
      return sk__fail(SK_ERR_INVALID, "%s: tensor %d has an empty name", path, i);
    if (strcmp(x->name, "__metadata__") == 0)
      return sk__fail(SK_ERR_INVALID, "%s: tensor %d: the name __metadata__ is reserved", path, i);
    if (!sk__json_utf8_valid(x->name, strlen(x->name), &bad))
      return sk__fail(SK_ERR_INVALID, "%s: tensor %d: name is not UTF-8 (byte %zu)", path, i, bad);
    if (x->ndim < 0 || x->ndim > SK_MAX_DIMS)
      return sk__fail(SK_ERR_INVALID, "%s: tensor '%s': rank %d outside 0..%d", path, x->name,
                      x->ndim, SK_MAX_DIMS);
    uint64_t numel = 1, nb;
    for (int d = 0; d < x->ndim; d++) {
      if (x->shape[d] < 0)
        return sk__fail(SK_ERR_INVALID, "%s: tensor '%s': dimension %d is %" PRId64, path, x->name,
                        d, x->shape[d]);
      if (__builtin_mul_overflow(numel, (uint64_t)x->shape[d], &numel))
        return sk__fail(SK_ERR_INVALID, "%s: tensor '%s': element count overflows", path, x->name);
    }
    if (__builtin_mul_overflow(numel, (uint64_t)4, &nb) ||
        __builtin_add_overflow(total, nb, &total) || total > (uint64_t)INT64_MAX ||
        numel > SIZE_MAX)
      return sk__fail(SK_ERR_INVALID, "%s: tensor '%s': too large", path, x->name);
    if (numel > 0 && !x->data)
      return sk__fail(SK_ERR_INVALID, "%s: tensor '%s': data is NULL", path, x->name);
    for (uint64_t k = 0; k < numel; k++)
      if (!isfinite(x->data[k]))
        return sk__fail(SK_ERR_NUMERIC, "%s: tensor '%s': element %" PRIu64 " is %s", path, x->name,
                        k, isnan(x->data[k]) ? "NaN" : "infinite");
  }
  for (int i = 0; i < n_meta; i++) {
    const char *k = meta[2 * i], *v = meta[2 * i + 1];
    if (!k || !v) return sk__fail(SK_ERR_INVALID, "%s: metadata pair %d has a NULL", path, i);
    if (!sk__json_utf8_valid(k, strlen(k), &bad) || !sk__json_utf8_valid(v, strlen(v), &bad))
      return sk__fail(SK_ERR_INVALID, "%s: metadata '%s': not UTF-8", path, k);
    for (int j = 0; j < i; j++)
      if (strcmp(meta[2 * j], k) == 0)
        return sk__fail(SK_ERR_INVALID, "%s: metadata key '%s' given twice", path, k);
  }
  if (n > 1) {
    const char **names = sk__malloc((size_t)n * sizeof *names);
    if (!names) return sk__fail(SK_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) names[i] = t[i].name;
    qsort(names, (size_t)n, sizeof *names, cstr_cmp);
    for (int i = 1; i < n; i++) {
      if (strcmp(names[i - 1], names[i]) == 0) {
        sk_status s = sk__fail(SK_ERR_INVALID, "%s: tensor name '%s' given twice", path, names[i]);
        sk__free(names);
        return s;
      }
    }
    sk__free(names);
  }
  *bytes = total;
  return SK_OK;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes so that the
 * data starts 8-byte aligned in the file. */
static sk_status build_header(sk__jbuf *b, const sk_named_tensor *t, int n, const char *const *meta,
                              int n_meta) {
  sk__jbuf_raw(b, "{", 1);
  if (n_meta > 0) {
    sk__jbuf_puts(b, "\"__metadata__\":{");
    for (int i = 0; i < n_meta; i++) {
      if (i) sk__jbuf_raw(b, ",", 1);
      sk__jbuf_string(b, meta[2 * i], strlen(meta[2 * i]));
      sk__jbuf_raw(b, ":", 1);
      sk__jbuf_string(b, meta[2 * i + 1], strlen(meta[2 * i + 1]));
    }
    sk__jbuf_raw(b, "}", 1);
  }
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    if (i || n_meta > 0) sk__jbuf_raw(b, ",", 1);
    sk__jbuf_string(b, t[i].name, strlen(t[i].name));
    sk__jbuf_puts(b, ":{\"dtype\":\"F32\",\"shape\":[");
    int64_t numel = 1;
    for (int d = 0; d < t[i].ndim; d++) {
      if (d) sk__jbuf_raw(b, ",", 1);
      sk__jbuf_int(b, t[i].shape[d]);
      numel *= t[i].shape[d]; /* checked in check_save */
    }
    sk__jbuf_puts(b, "],\"data_offsets\":[");
    sk__jbuf_int(b, at);
    sk__jbuf_raw(b, ",", 1);
    at += numel * 4;
    sk__jbuf_int(b, at);
    sk__jbuf_puts(b, "]}");
  }
  sk__jbuf_raw(b, "}", 1);
  while (b->status == SK_OK && b->len % 8 != 0) sk__jbuf_raw(b, " ", 1);
  return b->status;
}

static sk_status write_all(sk__afile *a, const sk__jbuf *h, const sk_named_tensor *t, int n) {
  unsigned char lenbuf[8], buf[16384];
  store_u64_le(lenbuf, (uint64_t)h->len);
  if (fwrite(lenbuf, 1, 8, a->f) != 8 || fwrite(h->data, 1, h->len, a->f) != h->len)
    return SK_ERR_IO;
  for (int i = 0; i < n; i++) {
    size_t numel = 1;
    for (int d = 0; d < t[i].ndim; d++) numel *= (size_t)t[i].shape[d];
    for (size_t done = 0; done < numel;) {
      size_t count = SK_MIN(numel - done, sizeof buf / 4);
      for (size_t k = 0; k < count; k++) {
        uint32_t w;
        memcpy(&w, &t[i].data[done + k], 4);
        for (int j = 0; j < 4; j++) buf[4 * k + (size_t)j] = (unsigned char)(w >> (8 * j));
      }
      if (fwrite(buf, 4, count, a->f) != count) return SK_ERR_IO;
      done += count;
    }
  }
  return SK_OK;
}

sk_status sk_safetensors_save(const char *path, const sk_named_tensor *t, int n,
                              const char *const *meta, int n_meta) {
  if (!path) return sk__fail(SK_ERR_INVALID, "sk_safetensors_save: path is NULL");
  uint64_t bytes;
  sk_status s = check_save(path, t, n, meta, n_meta, &bytes);
  if (s) return s;
  sk__jbuf h;
  sk__jbuf_init(&h);
  if ((s = build_header(&h, t, n, meta, n_meta))) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", sk_last_error());
    sk__jbuf_free(&h);
    return sk__fail(s, "%s: %s", path, msg);
  }
  sk__afile a;
  if ((s = sk__afile_open(&a, path))) {
    sk__jbuf_free(&h);
    return s;
  }
  if (write_all(&a, &h, t, n) != SK_OK) {
    int e = errno;
    sk__afile_abort(&a);
    sk__jbuf_free(&h);
    return sk__fail(SK_ERR_IO, "%s: write failed: %s", path, strerror(e));
  }
  sk__jbuf_free(&h);
  return sk__afile_commit(&a);
}
