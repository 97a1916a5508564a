/* IDX arrays (the MNIST family), plain or gzip-compressed: a hardened reader
 * into float32 tensors, inflating with zlib through the library's allocator. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "io/internal.h"
#include "scorekit/io.h"

/* Integers up to 2^24 in magnitude are exact in float32. */
#define IDX_MAX_EXACT_INT (1LL << 24)
/* 16 GiB of float32: far beyond any IDX data set, and a bound on what one
 * crafted header can make the loader allocate. */
#define IDX_MAX_ELEMENTS ((uint64_t)1 << 32)
/* Deflate's densest code (a 258-byte match in about 2 bits) expands at most
 * 1032:1, so a gzip file of m bytes decompresses to fewer than 1032·m bytes:
 * a header declaring more is rejected before the data are allocated. */
#define IDX_DEFLATE_MAX_RATIO 1032
#define IDX_CHUNK 65536

/* The IDX type codes, their element sizes and the types they stand for. */
typedef struct idx_type {
  unsigned char code;
  int size;
  sk_dtype dtype;
} idx_type;

static const idx_type idx_types[] = {{0x08, 1, SK_DTYPE_U8},  {0x09, 1, SK_DTYPE_I8},
                                     {0x0B, 2, SK_DTYPE_I16}, {0x0C, 4, SK_DTYPE_I32},
                                     {0x0D, 4, SK_DTYPE_F32}, {0x0E, 8, SK_DTYPE_F64}};

/* The file's bytes after decompression, read in order. */
typedef struct idx_src {
  FILE *f;
  const char *path;
  bool gz;
  z_stream zs;
  bool zs_live;      /* inflateInit2 succeeded: inflateEnd is owed */
  unsigned char *in; /* IDX_CHUNK bytes of compressed input */
  bool in_eof;       /* the file has no more bytes to read */
  bool gz_end;       /* the last gzip member ended at the end of the file */
} idx_src;

/* zlib's allocations go through sk__malloc, so that the tests' allocation
 * failures reach inflate's state and window too. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  (void)opaque;
  size_t n;
  return sk__mul_size(items, size, &n) ? sk__malloc(n) : Z_NULL;
}

static void z_free(voidpf opaque, voidpf p) {
  (void)opaque;
  sk__free(p);
}

/* Moves unread input to the front of the buffer and reads more after it. */
static sk_status refill(idx_src *s) {
  if (s->in_eof) return SK_OK;
  if (s->zs.avail_in > 0 && s->zs.next_in != s->in) memmove(s->in, s->zs.next_in, s->zs.avail_in);
  s->zs.next_in = s->in;
  size_t want = IDX_CHUNK - s->zs.avail_in;
  size_t got = fread(s->in + s->zs.avail_in, 1, want, s->f);
  if (got < want) {
    if (ferror(s->f))
      return sk__fail(SK_ERR_IO, "%s: read error: %s", s->path, strerror(errno));
    s->in_eof = true;
  }
  s->zs.avail_in += (uInt)got;
  return SK_OK;
}

/* The file offset of the next compressed byte not yet consumed. */
static unsigned long long consumed_at(const idx_src *s) {
  off_t pos = ftello(s->f);
  return pos < 0 ? 0 : (unsigned long long)pos - s->zs.avail_in;
}

/* After a gzip member: the end of the file, another member, or garbage. */
static sk_status next_member(idx_src *s) {
  if (s->zs.avail_in < 2) {
    sk_status st = refill(s);
    if (st) return st;
  }
  if (s->zs.avail_in == 0) {
    s->gz_end = true;
    return SK_OK;
  }
  if (s->zs.avail_in >= 2 && s->zs.next_in[0] == 0x1f && s->zs.next_in[1] == 0x8b) {
    inflateReset(&s->zs);
    return SK_OK;
  }
  return sk__fail(SK_ERR_FORMAT, "%s: trailing bytes after the gzip stream (at byte %llu)",
                  s->path, consumed_at(s));
}

static sk_status inflate_some(idx_src *s, unsigned char *buf, size_t n, size_t *got) {
  s->zs.next_out = buf;
  s->zs.avail_out = (uInt)n;
  while (s->zs.avail_out > 0 && !s->gz_end) {
    if (s->zs.avail_in == 0) {
      sk_status st = refill(s);
      if (st) return st;
    }
    int rc = inflate(&s->zs, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      sk_status st = next_member(s);
      if (st) return st;
    } else if ((rc == Z_OK || rc == Z_BUF_ERROR) && s->zs.avail_in == 0 && s->in_eof &&
               s->zs.avail_out > 0) {
      /* Room for output, all input consumed, and the member has not ended. */
      return sk__fail(SK_ERR_FORMAT,
                      "%s: truncated gzip stream (the file ends inside the compressed data)",
                      s->path);
    } else if (rc == Z_BUF_ERROR) {
      continue; /* no input left in the buffer: the loop refills it */
    } else if (rc == Z_MEM_ERROR) {
      return sk__fail(SK_ERR_NOMEM, "%s: out of memory for gzip decompression", s->path);
    } else if (rc != Z_OK) {
      return sk__fail(SK_ERR_FORMAT, "%s: corrupt gzip stream at byte %llu: %s", s->path,
                      consumed_at(s), s->zs.msg ? s->zs.msg : "invalid data");
    }
  }
  *got = n - s->zs.avail_out;
  return SK_OK;
}

/* Up to n bytes of the (decompressed) file; *got < n only at its end. */
static sk_status src_read(idx_src *s, void *buf, size_t n, size_t *got) {
  if (s->gz) return inflate_some(s, buf, n, got);
  *got = fread(buf, 1, n, s->f);
  if (*got < n && ferror(s->f))
    return sk__fail(SK_ERR_IO, "%s: read error: %s", s->path, strerror(errno));
  return SK_OK;
}

static uint64_t load_be(const unsigned char *b, int size) {
  uint64_t v = 0;
  for (int i = 0; i < size; i++) v = (v << 8) | b[i];
  return v;
}

/* Decodes k elements of type t from b into out, checking each survives the
 * conversion to float32; `first` is the flat index of the first. */
static sk_status convert(const char *path, const idx_type *t, const unsigned char *b, size_t k,
                         uint64_t first, float *out) {
  for (size_t j = 0; j < k; j++) {
    const unsigned char *e = b + j * (size_t)t->size;
    uint64_t u = load_be(e, t->size);
    unsigned long long at = (unsigned long long)(first + j);
    switch (t->dtype) {
      case SK_DTYPE_U8:
        out[j] = (float)u;
        break;
      case SK_DTYPE_I8:
        out[j] = (float)(int8_t)(uint8_t)u;
        break;
      case SK_DTYPE_I16:
        out[j] = (float)(int16_t)(uint16_t)u;
        break;
      case SK_DTYPE_I32: {
        int32_t v = (int32_t)(uint32_t)u;
        if (v < -IDX_MAX_EXACT_INT || v > IDX_MAX_EXACT_INT)
          return sk__fail(SK_ERR_NUMERIC,
                          "%s: integer %ld at flat index %llu is not exact in float32 (|v| > 2^24)",
                          path, (long)v, at);
        out[j] = (float)v;
        break;
      }
      default: {
        double v;
        float f;
        if (t->dtype == SK_DTYPE_F32) {
          uint32_t u32 = (uint32_t)u;
          memcpy(&f, &u32, 4);
          v = f;
        } else {
          memcpy(&v, &u, 8);
          f = (float)v;
        }
        if (!isfinite(v))
          return sk__fail(SK_ERR_NUMERIC, "%s: non-finite value (%s) at flat index %llu", path,
                          isnan(v) ? "NaN" : "Inf", at);
        if (!isfinite(f))
          return sk__fail(SK_ERR_NUMERIC,
                          "%s: value %g at flat index %llu is outside float32 range", path, v, at);
        out[j] = f;
      }
    }
  }
  return SK_OK;
}

/* Reads and checks the magic and the dimensions, then the data. */
static sk_status load_src(idx_src *s, uint64_t fsize, sk_tensor **out, sk_dtype *dtype) {
  const char *path = s->path;
  unsigned char head[4 + 4 * SK_MAX_DIMS];
  size_t got;
  sk_status st = src_read(s, head, 4, &got);
  if (st) return st;
  if (got == 0) return sk__fail(SK_ERR_FORMAT, "%s: empty (no IDX header)", path);
  if (head[0] != 0 || (got > 1 && head[1] != 0))
    return sk__fail(SK_ERR_FORMAT,
                    "%s: bad magic %02x %02x (an IDX file starts with two zero bytes)", path,
                    head[0], got > 1 ? head[1] : 0);
  if (got < 4) return sk__fail(SK_ERR_FORMAT, "%s: truncated in the 4-byte magic", path);
  const idx_type *t = NULL;
  for (size_t i = 0; i < sizeof idx_types / sizeof idx_types[0]; i++)
    if (idx_types[i].code == head[2]) t = &idx_types[i];
  if (!t)
    return sk__fail(SK_ERR_FORMAT,
                    "%s: unknown data type code 0x%02X (expected 0x08, 0x09, 0x0B, 0x0C, 0x0D "
                    "or 0x0E)",
                    path, head[2]);
  const int ndim = head[3];
  if (ndim == 0)
    return sk__fail(SK_ERR_FORMAT, "%s: rank 0 (an IDX array needs at least one dimension)", path);
  if (ndim > SK_MAX_DIMS)
    return sk__fail(SK_ERR_UNSUPPORTED, "%s: rank %d is more than %d", path, ndim, SK_MAX_DIMS);
  st = src_read(s, head + 4, 4 * (size_t)ndim, &got);
  if (st) return st;
  if (got < 4 * (size_t)ndim)
    return sk__fail(SK_ERR_FORMAT, "%s: truncated in the dimensions (%d declared, %zu bytes of %d)",
                    path, ndim, got, 4 * ndim);

  /* The whole size is validated before anything is allocated for the data. */
  int64_t shape[SK_MAX_DIMS];
  uint64_t numel = 1;
  bool overflow = false;
  for (int i = 0; i < ndim; i++) {
    uint32_t d = (uint32_t)load_be(head + 4 + 4 * i, 4);
    if (d > INT32_MAX)
      return sk__fail(SK_ERR_FORMAT, "%s: dimension %d is negative (%ld)", path, i,
                      (long)(int32_t)d);
    shape[i] = d;
    overflow = overflow || __builtin_mul_overflow(numel, (uint64_t)d, &numel);
  }
  if (overflow)
    return sk__fail(SK_ERR_FORMAT, "%s: the dimensions' product overflows 64 bits", path);
  if (numel > IDX_MAX_ELEMENTS)
    return sk__fail(SK_ERR_UNSUPPORTED, "%s: %llu elements is more than the cap of 2^32", path,
                    (unsigned long long)numel);
  const uint64_t need = numel * (uint64_t)t->size, header = 4 + 4 * (uint64_t)ndim;
  if (!s->gz) {
    const uint64_t have = fsize > header ? fsize - header : 0;
    if (need > have)
      return sk__fail(SK_ERR_FORMAT,
                      "%s: data truncated: the dimensions need %llu bytes, %llu follow the header",
                      path, (unsigned long long)need, (unsigned long long)have);
    if (need < have)
      return sk__fail(SK_ERR_FORMAT, "%s: %llu trailing bytes after the %llu bytes of data", path,
                      (unsigned long long)(have - need), (unsigned long long)need);
  } else if (fsize < UINT64_MAX / IDX_DEFLATE_MAX_RATIO &&
             need + header > fsize * IDX_DEFLATE_MAX_RATIO) {
    return sk__fail(SK_ERR_FORMAT,
                    "%s: data truncated: the dimensions need %llu bytes, more than a gzip file "
                    "of %llu bytes can hold",
                    path, (unsigned long long)need, (unsigned long long)fsize);
  }

  sk_tensor *x = sk_tensor_new(ndim, shape);
  if (!x)
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %llu floats", path,
                    (unsigned long long)numel);
  float *dst = sk_tensor_data(x);
  unsigned char buf[8192];
  const size_t per = sizeof buf / (size_t)t->size;
  for (uint64_t i = 0; i < numel && !st;) {
    const size_t k = (size_t)SK_MIN((uint64_t)per, numel - i);
    st = src_read(s, buf, k * (size_t)t->size, &got);
    if (!st && got < k * (size_t)t->size)
      st = sk__fail(SK_ERR_FORMAT, "%s: data truncated: the dimensions need %llu bytes, the %s "
                    "holds %llu",
                    path, (unsigned long long)need, s->gz ? "gzip stream" : "file",
                    (unsigned long long)(i * (uint64_t)t->size + got));
    if (!st) st = convert(path, t, buf, k, i, dst + i);
    i += k;
  }
  /* One byte more must not exist; for gzip this also reads to the end of
   * the stream, so its checksum and length are verified. */
  if (!st) {
    st = src_read(s, buf, 1, &got);
    if (!st && got > 0)
      st = sk__fail(SK_ERR_FORMAT, "%s: trailing bytes after the %llu bytes of data%s", path,
                    (unsigned long long)need, s->gz ? " in the gzip stream" : "");
  }
  if (st) {
    sk_tensor_free(x);
    return st;
  }
  *out = x;
  if (dtype) *dtype = t->dtype;
  return SK_OK;
}

static sk_status load_file(idx_src *s, sk_tensor **out, sk_dtype *dtype) {
  struct stat sb;
  if (fstat(fileno(s->f), &sb) != 0)
    return sk__fail(SK_ERR_IO, "%s: cannot stat: %s", s->path, strerror(errno));
  if (!S_ISREG(sb.st_mode)) return sk__fail(SK_ERR_IO, "%s: not a regular file", s->path);
  const uint64_t fsize = (uint64_t)sb.st_size;
  unsigned char magic[2] = {0, 0};
  size_t got = fread(magic, 1, 2, s->f);
  if (ferror(s->f)) return sk__fail(SK_ERR_IO, "%s: read error: %s", s->path, strerror(errno));
  s->gz = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (fseek(s->f, 0, SEEK_SET) != 0)
    return sk__fail(SK_ERR_IO, "%s: seek failed: %s", s->path, strerror(errno));
  if (s->gz) {
    s->in = sk__malloc(IDX_CHUNK);
    if (!s->in) return sk__fail(SK_ERR_NOMEM, "%s: out of memory", s->path);
    s->zs.zalloc = z_alloc;
    s->zs.zfree = z_free;
    s->zs.opaque = Z_NULL;
    s->zs.next_in = s->in;
    s->zs.avail_in = 0;
    /* 16 + MAX_WBITS: a gzip wrapper, whose CRC-32 and length are checked. */
    int rc = inflateInit2(&s->zs, 16 + MAX_WBITS);
    if (rc != Z_OK)
      return sk__fail(rc == Z_MEM_ERROR ? SK_ERR_NOMEM : SK_ERR_IO,
                      "%s: cannot start gzip decompression: %s", s->path,
                      rc == Z_MEM_ERROR ? "out of memory" : zError(rc));
    s->zs_live = true;
  }
  return load_src(s, fsize, out, dtype);
}

sk_status sk_idx_load(const char *path, sk_tensor **out, sk_dtype *dtype) {
  if (!out) return sk__fail(SK_ERR_INVALID, "sk_idx_load: out is NULL");
  *out = NULL;
  if (!path) return sk__fail(SK_ERR_INVALID, "sk_idx_load: path is NULL");
  idx_src s;
  memset(&s, 0, sizeof s);
  s.path = path;
  sk_status st = sk__open_read(path, &s.f, NULL); /* a FIFO or device: refused, never read */
  if (st) return st;
  st = load_file(&s, out, dtype);
  if (s.zs_live) inflateEnd(&s.zs);
  sk__free(s.in);
  fclose(s.f);
  return st;
}
