/* NumPy .npy files: a hardened reader (versions 1-3, integer/float/bool dtypes
 * converted to float32) and atomic writers for '<f4' and '<i4'. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/internal.h"
#include "scorekit/io.h"

/* numpy itself caps headers far below this; anything larger is corrupt. */
#define NPY_MAX_HEADER 65536
/* Integers up to 2^24 in magnitude are exact in float32. */
#define NPY_MAX_EXACT_INT (1LL << 24)

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

typedef struct npy_header {
  char kind; /* 'f', 'i', 'u' or 'b' */
  int size;  /* bytes per element */
  bool fortran;
  int ndim;
  int64_t shape[SK_MAX_DIMS];
} npy_header;

/* A cursor over the header's dict literal; offsets in messages are file offsets. */
typedef struct npy_parser {
  const char *path;
  const char *s;
  size_t n, pos, base;
} npy_parser;

static sk_status parse_fail(const npy_parser *p, const char *what) {
  return sk__fail(SK_ERR_FORMAT, "%s: unparsable header at byte %zu: %s", p->path, p->base + p->pos,
                  what);
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void skip_ws(npy_parser *p) {
  while (p->pos < p->n && is_space(p->s[p->pos])) p->pos++;
}

static bool peek(npy_parser *p, char c) {
  skip_ws(p);
  return p->pos < p->n && p->s[p->pos] == c;
}

static bool accept(npy_parser *p, char c) {
  if (!peek(p, c)) return false;
  p->pos++;
  return true;
}

/* A Python string literal without escapes: '...' or "...". */
static sk_status parse_string(npy_parser *p, const char **str, size_t *len) {
  skip_ws(p);
  if (p->pos >= p->n || (p->s[p->pos] != '\'' && p->s[p->pos] != '"'))
    return parse_fail(p, "expected a quoted string");
  char q = p->s[p->pos++];
  size_t start = p->pos;
  while (p->pos < p->n && p->s[p->pos] != q) {
    if (p->s[p->pos] == '\\' || p->s[p->pos] == '\n' || p->s[p->pos] == '\0')
      return parse_fail(p, "unsupported character in a string");
    p->pos++;
  }
  if (p->pos >= p->n) return parse_fail(p, "unterminated string");
  *str = p->s + start;
  *len = p->pos - start;
  p->pos++;
  return SK_OK;
}

static bool accept_word(npy_parser *p, const char *w) {
  skip_ws(p);
  size_t k = strlen(w);
  if (p->n - p->pos < k || memcmp(p->s + p->pos, w, k) != 0) return false;
  char next = p->pos + k < p->n ? p->s[p->pos + k] : ' ';
  if ((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
      (next >= '0' && next <= '9') || next == '_')
    return false;
  p->pos += k;
  return true;
}

/* 'descr': '<f4' and friends; structured (list) descrs are unsupported. */
static sk_status parse_descr(npy_parser *p, npy_header *h) {
  if (peek(p, '['))
    return sk__fail(SK_ERR_UNSUPPORTED, "%s: structured dtype (descr is a list) is not supported",
                    p->path);
  const char *d;
  size_t len;
  sk_status st = parse_string(p, &d, &len);
  if (st) return st;
  char shown[24];
  snprintf(shown, sizeof shown, "%.*s", (int)SK_MIN(len, 16), d);
  char order = 0;
  size_t i = 0;
  if (len > 0 && d[0] && strchr("<>|=", d[0])) order = d[i++];
  char kind = 0;
  int size = 0;
  if (len - i == 1 && d[i] == '?') {
    kind = 'b';
    size = 1;
  } else if (len - i == 2 && d[i] && strchr("fiub", d[i]) && d[i + 1] >= '1' && d[i + 1] <= '8') {
    kind = d[i];
    size = d[i + 1] - '0';
  }
  bool ok = (kind == 'f' && (size == 4 || size == 8)) ||
            ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
            (kind == 'b' && size == 1);
  if (!ok)
    return sk__fail(SK_ERR_UNSUPPORTED,
                    "%s: unsupported dtype '%s' (expected f4, f8, i1-i8, u1-u8 or b1)", p->path,
                    shown);
  if (size > 1 && order == '>')
    return sk__fail(SK_ERR_UNSUPPORTED, "%s: big-endian dtype '%s' is not supported", p->path,
                    shown);
  if (size > 1 && order != '<')
    return sk__fail(SK_ERR_UNSUPPORTED, "%s: dtype '%s' does not say it is little-endian", p->path,
                    shown);
  h->kind = kind;
  h->size = size;
  return SK_OK;
}

/* A non-negative Python int literal (an old 'L' suffix allowed). */
static sk_status parse_dim(npy_parser *p, int64_t *out) {
  skip_ws(p);
  bool neg = false;
  if (p->pos < p->n && (p->s[p->pos] == '-' || p->s[p->pos] == '+')) neg = p->s[p->pos++] == '-';
  if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9')
    return parse_fail(p, "expected an integer in 'shape'");
  uint64_t v = 0;
  bool overflow = false;
  while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
    unsigned dgt = (unsigned)(p->s[p->pos++] - '0');
    if (v > ((uint64_t)INT64_MAX - dgt) / 10)
      overflow = true;
    else
      v = v * 10 + dgt;
  }
  if (p->pos < p->n && (p->s[p->pos] == 'L' || p->s[p->pos] == 'l')) p->pos++;
  if (overflow)
    return sk__fail(SK_ERR_FORMAT, "%s: shape dimension overflows int64 (byte %zu)", p->path,
                    p->base + p->pos);
  if (neg && v != 0)
    return sk__fail(SK_ERR_FORMAT, "%s: negative shape dimension -%llu", p->path,
                    (unsigned long long)v);
  *out = (int64_t)v;
  return SK_OK;
}

/* (d0, d1, ...) with an optional trailing comma; a list is accepted too. */
static sk_status parse_shape(npy_parser *p, npy_header *h) {
  char close;
  if (accept(p, '('))
    close = ')';
  else if (accept(p, '['))
    close = ']';
  else
    return parse_fail(p, "'shape' is not a tuple");
  h->ndim = 0;
  while (!accept(p, close)) {
    if (h->ndim == SK_MAX_DIMS)
      return sk__fail(SK_ERR_UNSUPPORTED, "%s: array rank is more than %d", p->path, SK_MAX_DIMS);
    sk_status st = parse_dim(p, &h->shape[h->ndim++]);
    if (st) return st;
    if (!accept(p, ',') && !peek(p, close)) return parse_fail(p, "expected ',' in 'shape'");
  }
  return SK_OK;
}

static sk_status parse_header(npy_parser *p, npy_header *h) {
  bool seen[3] = {false, false, false};
  static const char *const keys[3] = {"descr", "fortran_order", "shape"};
  if (!accept(p, '{')) return parse_fail(p, "expected '{'");
  while (!accept(p, '}')) {
    const char *k;
    size_t klen;
    sk_status st = parse_string(p, &k, &klen);
    if (st) return st;
    int which = -1;
    for (int i = 0; i < 3; i++)
      if (klen == strlen(keys[i]) && memcmp(k, keys[i], klen) == 0) which = i;
    if (which < 0) return parse_fail(p, "unknown key (expected 'descr', 'fortran_order', 'shape')");
    if (seen[which]) return parse_fail(p, "duplicate key");
    seen[which] = true;
    if (!accept(p, ':')) return parse_fail(p, "expected ':'");
    if (which == 0) {
      st = parse_descr(p, h);
    } else if (which == 1) {
      if (accept_word(p, "True"))
        h->fortran = true;
      else if (accept_word(p, "False"))
        h->fortran = false;
      else
        st = parse_fail(p, "'fortran_order' is not True or False");
    } else {
      st = parse_shape(p, h);
    }
    if (st) return st;
    if (!accept(p, ',') && !peek(p, '}')) return parse_fail(p, "expected ',' or '}'");
  }
  skip_ws(p);
  if (p->pos != p->n) return parse_fail(p, "unexpected text after the dict");
  for (int i = 0; i < 3; i++)
    if (!seen[i])
      return sk__fail(SK_ERR_FORMAT, "%s: unparsable header: key '%s' is missing", p->path,
                      keys[i]);
  if (h->fortran)
    return sk__fail(SK_ERR_UNSUPPORTED,
                    "%s: fortran_order is True; only C-order arrays are supported", p->path);
  return SK_OK;
}

static uint64_t load_le(const unsigned char *b, int size) {
  uint64_t v = 0;
  for (int i = size - 1; i >= 0; i--) v = (v << 8) | b[i];
  return v;
}

/* Decodes one element to float32, checking it survives the conversion. */
static sk_status convert(const char *path, const npy_header *h, const unsigned char *b,
                         int64_t index, float *out) {
  uint64_t u = load_le(b, h->size);
  if (h->kind == 'f') {
    double v;
    float f;
    if (h->size == 4) {
      uint32_t u32 = (uint32_t)u;
      memcpy(&f, &u32, 4);
      v = f;
    } else {
      memcpy(&v, &u, 8);
      f = (float)v;
    }
    if (!isfinite(v))
      return sk__fail(SK_ERR_NUMERIC, "%s: non-finite value (%s) at flat index %lld", path,
                      isnan(v) ? "NaN" : "Inf", (long long)index);
    if (!isfinite(f))
      return sk__fail(SK_ERR_NUMERIC, "%s: value %g at flat index %lld is outside float32 range",
                      path, v, (long long)index);
    *out = f;
  } else if (h->kind == 'b') {
    *out = u != 0;
  } else {
    int64_t v;
    if (h->kind == 'i') {
      if (h->size < 8 && (u >> (8 * h->size - 1)) & 1) u |= ~0ULL << (8 * h->size);
      memcpy(&v, &u, 8);
      if (v < -NPY_MAX_EXACT_INT || v > NPY_MAX_EXACT_INT)
        return sk__fail(SK_ERR_NUMERIC,
                        "%s: integer %lld at flat index %lld is not exact in float32 (|v| > 2^24)",
                        path, (long long)v, (long long)index);
    } else {
      if (u > (uint64_t)NPY_MAX_EXACT_INT)
        return sk__fail(SK_ERR_NUMERIC,
                        "%s: integer %llu at flat index %lld is not exact in float32 (v > 2^24)",
                        path, (unsigned long long)u, (long long)index);
      v = (int64_t)u;
    }
    *out = (float)v;
  }
  return SK_OK;
}

/* Reads exactly `n` bytes; a short read is "truncated" unless the stream failed. */
static sk_status read_exact(FILE *f, const char *path, void *buf, size_t n, const char *what) {
  if (fread(buf, 1, n, f) == n) return SK_OK;
  if (ferror(f))
    return sk__fail(SK_ERR_IO, "%s: read error in the %s: %s", path, what, strerror(errno));
  return sk__fail(SK_ERR_FORMAT, "%s: %s truncated (file changed while reading?)", path, what);
}

static sk_dtype dtype_of(const npy_header *h) {
  static const sk_dtype ints[2][4] = {{SK_DTYPE_I8, SK_DTYPE_I16, SK_DTYPE_I32, SK_DTYPE_I64},
                                      {SK_DTYPE_U8, SK_DTYPE_U16, SK_DTYPE_U32, SK_DTYPE_U64}};
  const int log2size = h->size == 1 ? 0 : h->size == 2 ? 1 : h->size == 4 ? 2 : 3;
  if (h->kind == 'f') return h->size == 4 ? SK_DTYPE_F32 : SK_DTYPE_F64;
  if (h->kind == 'b') return SK_DTYPE_BOOL;
  return ints[h->kind == 'u'][log2size];
}

const char *sk_dtype_name(sk_dtype t) {
  static const char *const names[SK_DTYPE_COUNT] = {
      "float32", "float64", "int8", "int16", "int32", "int64",
      "uint8",   "uint16",  "uint32", "uint64", "bool"};
  return (unsigned)t < SK_DTYPE_COUNT ? names[t] : "unknown";
}

static sk_status load_open_file(FILE *f, const char *path, sk_tensor **out, sk_dtype *dtype) {
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0)
    return sk__fail(SK_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  if (!S_ISREG(sb.st_mode)) return sk__fail(SK_ERR_IO, "%s: not a regular file", path);
  uint64_t fsize = (uint64_t)sb.st_size;

  unsigned char pre[12];
  size_t got = fread(pre, 1, SK_MIN(fsize, (uint64_t)sizeof pre), f);
  if (ferror(f)) return sk__fail(SK_ERR_IO, "%s: read error: %s", path, strerror(errno));
  if (memcmp(pre, npy_magic, SK_MIN(got, sizeof npy_magic)) != 0 || got == 0)
    return sk__fail(SK_ERR_FORMAT, "%s: bad magic (not a .npy file)", path);
  if (got < 8) return sk__fail(SK_ERR_FORMAT, "%s: truncated before the version bytes", path);
  int major = pre[6], minor = pre[7];
  if (!((major == 1 || major == 2 || major == 3) && minor == 0))
    return sk__fail(SK_ERR_UNSUPPORTED,
                    "%s: unsupported .npy version %d.%d (expected 1.0, 2.0, 3.0)", path, major,
                    minor);
  size_t lenbytes = major == 1 ? 2 : 4;
  if (got < 8 + lenbytes)
    return sk__fail(SK_ERR_FORMAT, "%s: truncated in the header length field", path);
  uint64_t hlen = load_le(pre + 8, (int)lenbytes);
  if (hlen > NPY_MAX_HEADER)
    return sk__fail(SK_ERR_FORMAT, "%s: header length %llu is absurd (more than %d bytes)", path,
                    (unsigned long long)hlen, NPY_MAX_HEADER);
  uint64_t data_off = 8 + lenbytes + hlen;
  if (data_off > fsize)
    return sk__fail(SK_ERR_FORMAT, "%s: header truncated: it needs %llu bytes, the file has %llu",
                    path, (unsigned long long)data_off, (unsigned long long)fsize);
  if (fseek(f, (long)(8 + lenbytes), SEEK_SET) != 0)
    return sk__fail(SK_ERR_IO, "%s: seek failed: %s", path, strerror(errno));

  char *text = sk__malloc((size_t)hlen + 1);
  if (!text) return sk__fail(SK_ERR_NOMEM, "%s: out of memory for the header", path);
  sk_status st = read_exact(f, path, text, (size_t)hlen, "header");
  npy_header h;
  memset(&h, 0, sizeof h);
  if (!st) {
    text[hlen] = 0;
    npy_parser p = {path, text, (size_t)hlen, 0, 8 + lenbytes};
    st = parse_header(&p, &h);
  }
  sk__free(text);
  if (st) return st;

  /* Validate the whole size before allocating anything for the data. */
  uint64_t numel = 1;
  for (int i = 0; i < h.ndim; i++)
    if (__builtin_mul_overflow(numel, (uint64_t)h.shape[i], &numel) ||
        numel > (uint64_t)INT64_MAX / 8)
      return sk__fail(SK_ERR_FORMAT, "%s: shape overflows (element count too large)", path);
  uint64_t need = numel * (uint64_t)h.size, have = fsize - data_off;
  if (need > have)
    return sk__fail(SK_ERR_FORMAT,
                    "%s: data truncated: the shape needs %llu bytes, %llu follow the header", path,
                    (unsigned long long)need, (unsigned long long)have);
  if (need < have)
    return sk__fail(SK_ERR_FORMAT, "%s: %llu trailing bytes after the %llu bytes of data", path,
                    (unsigned long long)(have - need), (unsigned long long)need);
  size_t bytes;
  if (!sk__mul_size((size_t)numel, sizeof(float), &bytes))
    return sk__fail(SK_ERR_FORMAT, "%s: array too large for memory", path);

  sk_tensor *t = sk_tensor_new(h.ndim, h.shape);
  if (!t)
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %llu floats", path,
                    (unsigned long long)numel);
  float *dst = sk_tensor_data(t);
  unsigned char buf[8192];
  size_t per = sizeof buf / (size_t)h.size;
  for (uint64_t i = 0; i < numel && !st;) {
    size_t k = (size_t)SK_MIN((uint64_t)per, numel - i);
    st = read_exact(f, path, buf, k * (size_t)h.size, "data");
    for (size_t j = 0; j < k && !st; j++)
      st = convert(path, &h, buf + j * (size_t)h.size, (int64_t)(i + j), &dst[i + j]);
    i += k;
  }
  if (!st && fgetc(f) != EOF)
    st = sk__fail(SK_ERR_FORMAT, "%s: trailing bytes after the data (file changed while reading?)",
                  path);
  if (st) {
    sk_tensor_free(t);
    return st;
  }
  *out = t;
  if (dtype) *dtype = dtype_of(&h);
  return SK_OK;
}

sk_status sk_npy_load_typed(const char *path, sk_tensor **out, sk_dtype *dtype) {
  if (!out) return sk__fail(SK_ERR_INVALID, "sk_npy_load: out is NULL");
  *out = NULL;
  if (!path) return sk__fail(SK_ERR_INVALID, "sk_npy_load: path is NULL");
  FILE *f = NULL;
  sk_status st = sk__open_read(path, &f, NULL);
  if (st) return st;
  st = load_open_file(f, path, out, dtype);
  fclose(f);
  return st;
}

sk_status sk_npy_load(const char *path, sk_tensor **out) {
  return sk_npy_load_typed(path, out, NULL);
}

/* Writes a v1.0 file of 4-byte little-endian words taken from `data` (the
 * bits of floats or int32s, described by `descr`). */
static sk_status save_words(const char *path, const char *descr, int ndim, const int64_t *shape,
                            const void *data) {
  if (!path) return sk__fail(SK_ERR_INVALID, "sk_npy_save: path is NULL");
  if (ndim < 0 || ndim > SK_MAX_DIMS)
    return sk__fail(SK_ERR_INVALID, "%s: cannot save an array of rank %d", path, ndim);
  if (ndim > 0 && !shape)
    return sk__fail(SK_ERR_INVALID, "%s: the shape of a rank-%d array is NULL", path, ndim);
  size_t numel = 1;
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0 || !sk__mul_size(numel, (size_t)shape[i], &numel) ||
        numel > (size_t)INT64_MAX / 8)
      return sk__fail(SK_ERR_INVALID, "%s: bad shape: dimension %d is %lld", path, i,
                      (long long)shape[i]);
  if (numel > 0 && !data) return sk__fail(SK_ERR_INVALID, "%s: data is NULL", path);

  /* numpy's own layout: the dict repr with keys sorted, a trailing ", }",
   * then spaces and '\n' so that the data starts on a 64-byte boundary.
   * The longest header (4 dims of 19 digits) is under 192 bytes. */
  char hdr[256];
  int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int i = 0; i < ndim; i++)
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s%lld", i ? ", " : "", (long long)shape[i]);
  n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s), }", ndim == 1 ? "," : "");
  while ((10 + n + 1) % 64 != 0) hdr[n++] = ' ';
  hdr[n++] = '\n';
  unsigned char pre[10];
  memcpy(pre, npy_magic, 6);
  pre[6] = 1;
  pre[7] = 0;
  pre[8] = (unsigned char)(n & 0xff);
  pre[9] = (unsigned char)(n >> 8);

  sk__afile a;
  sk_status st = sk__afile_open(&a, path);
  if (st) return st;
  bool ok = fwrite(pre, 1, 10, a.f) == 10 && fwrite(hdr, 1, (size_t)n, a.f) == (size_t)n;
  const unsigned char *src = data;
  unsigned char buf[8192];
  for (size_t i = 0; i < numel && ok;) {
    size_t k = SK_MIN(sizeof buf / 4, numel - i);
    for (size_t j = 0; j < k; j++) {
      uint32_t w;
      memcpy(&w, src + (i + j) * 4, 4);
      for (int b = 0; b < 4; b++) buf[j * 4 + (size_t)b] = (unsigned char)(w >> (8 * b));
    }
    ok = fwrite(buf, 4, k, a.f) == k;
    i += k;
  }
  if (!ok) {
    int e = errno;
    sk__afile_abort(&a);
    return sk__fail(SK_ERR_IO, "%s: write failed: %s", path, strerror(e));
  }
  return sk__afile_commit(&a);
}

sk_status sk_npy_save_f32(const char *path, int ndim, const int64_t *shape, const float *data) {
  return save_words(path, "<f4", ndim, shape, data);
}

sk_status sk_npy_save(const char *path, const sk_tensor *t) {
  if (!t) return sk__fail(SK_ERR_INVALID, "%s: tensor is NULL", path ? path : "sk_npy_save");
  return save_words(path, "<f4", sk_tensor_ndim(t), sk_tensor_shape(t), sk_tensor_cdata(t));
}

sk_status sk_npy_save_i32(const char *path, int64_t n, const int32_t *data) {
  if (n < 0)
    return sk__fail(SK_ERR_INVALID, "%s: negative length %lld", path ? path : "sk_npy_save_i32",
                    (long long)n);
  return save_words(path, "<i4", 1, &n, data);
}
