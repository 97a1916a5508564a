/* Strict JSON reader (recursive descent into an arena-allocated tree) and the
 * escaping writer buffer; see json.h for the contracts. */
#include "io/json.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

struct sk__json {
  sk__json_kind kind;
  bool boolean;
  bool is_int;     /* number written without fraction/exponent, fits int64 */
  size_t offset;   /* of the value's first byte in the text */
  const char *key; /* member name when the parent is an object */
  size_t key_len;
  size_t key_offset; /* of the member name's opening quote */
  double number;
  int64_t integer; /* valid when is_int */
  const char *str; /* STRING: decoded UTF-8 + NUL */
  size_t str_len;
  size_t n;          /* ARRAY/OBJECT: number of children */
  sk__json **items;  /* (n) children in text order */
  sk__json **sorted; /* OBJECT: (n) members sorted by key, for lookup */
  sk__json *next;    /* sibling link, used while the parent is parsed */
};

/* The document's memory: a list of chunks that are bump-allocated and freed
 * together, so a parse makes few allocations however many values it holds. */
typedef struct arena_chunk {
  struct arena_chunk *next;
  size_t cap, used;
  _Alignas(16) unsigned char data[];
} arena_chunk;

struct sk__json_doc {
  arena_chunk *chunks; /* head is the one being filled */
  sk__json *root;
};

enum { CHUNK_BYTES = 64 * 1024, MAX_NUMBER_CHARS = 511 };

static void *arena_alloc(sk__json_doc *d, size_t n) {
  n = (n + 15) & ~(size_t)15;
  arena_chunk *c = d->chunks;
  if (c && c->cap - c->used >= n) {
    void *p = c->data + c->used;
    c->used += n;
    return p;
  }
  size_t cap = n > CHUNK_BYTES / 4 ? n : CHUNK_BYTES;
  arena_chunk *nc = sk__malloc(sizeof *nc + cap);
  if (!nc) return NULL;
  nc->cap = cap;
  nc->used = n;
  if (cap != n || !c) {
    nc->next = c;
    d->chunks = nc;
  } else {
    /* A big block gets its own chunk behind the head, which keeps filling. */
    nc->next = c->next;
    c->next = nc;
  }
  return nc->data;
}

void sk__json_doc_free(sk__json_doc *doc) {
  if (!doc) return;
  arena_chunk *c = doc->chunks;
  while (c) {
    arena_chunk *next = c->next;
    sk__free(c);
    c = next;
  }
  sk__free(doc);
}

const sk__json *sk__json_root(const sk__json_doc *doc) { return doc ? doc->root : NULL; }

/* ---- UTF-8 ---- */

/* Length of the well-formed UTF-8 sequence at s (n bytes available), storing
 * its code point; 0 for an invalid, overlong, surrogate or > U+10FFFF one. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned char c = s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t len;
  uint32_t v, min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, v = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, v = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

bool sk__json_utf8_valid(const char *s, size_t n, size_t *bad_at) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t k = utf8_decode(u + i, n - i, &cp);
    if (!k) {
      if (bad_at) *bad_at = i;
      return false;
    }
    i += k;
  }
  return true;
}

static size_t utf8_encode(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* ---- parser ---- */

typedef struct parser {
  const char *what;
  const unsigned char *s;
  size_t len, pos;
  size_t nodes;
  size_t *err_offset;
  sk__json_doc *doc;
} parser;

__attribute__((format(printf, 3, 4))) static sk_status perr(parser *ps, size_t off, const char *fmt,
                                                            ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ps->err_offset) *ps->err_offset = off;
  return sk__fail(SK_ERR_FORMAT, "%s: byte %zu: %s", ps->what, off, msg);
}

static sk_status oom(parser *ps) {
  return sk__fail(SK_ERR_NOMEM, "%s: out of memory parsing %zu bytes of JSON", ps->what, ps->len);
}

/* A short printable rendering of the byte at off, for messages. */
static void describe_byte(const parser *ps, size_t off, char out[8]) {
  unsigned char c = ps->s[off];
  if (c >= 0x20 && c < 0x7F)
    snprintf(out, 8, "'%c'", c);
  else
    snprintf(out, 8, "0x%02X", c);
}

static void skip_ws(parser *ps) {
  while (ps->pos < ps->len) {
    unsigned char c = ps->s[ps->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    ps->pos++;
  }
}

static sk_status new_node(parser *ps, sk__json_kind kind, size_t off, sk__json **out) {
  if (ps->nodes >= SK__JSON_MAX_NODES)
    return perr(ps, off, "more than %zu values", (size_t)SK__JSON_MAX_NODES);
  sk__json *v = arena_alloc(ps->doc, sizeof *v);
  if (!v) return oom(ps);
  memset(v, 0, sizeof *v);
  v->kind = kind;
  v->offset = off;
  ps->nodes++;
  *out = v;
  return SK_OK;
}

static int hex4(const unsigned char *s, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (uint32_t)(c - 'A' + 10);
    else
      return 0;
  }
  *out = v;
  return 1;
}

/* Parses the string whose opening quote is at ps->pos into arena memory. */
static sk_status parse_string(parser *ps, const char **out, size_t *out_len) {
  size_t open = ps->pos, start = open + 1, end = start;
  while (end < ps->len && ps->s[end] != '"') end += ps->s[end] == '\\' ? 2 : 1;
  if (end >= ps->len) return perr(ps, open, "unterminated string");
  /* Decoding never lengthens: an escape is at least as long as its UTF-8. */
  char *dst = arena_alloc(ps->doc, end - start + 1);
  if (!dst) return oom(ps);
  size_t k = 0, j = start;
  while (j < end) {
    unsigned char c = ps->s[j];
    if (c < 0x20) return perr(ps, j, "control character 0x%02X in string", c);
    if (c >= 0x80) {
      uint32_t cp;
      size_t n = utf8_decode(ps->s + j, end - j, &cp);
      if (!n) return perr(ps, j, "invalid UTF-8 in string");
      memcpy(dst + k, ps->s + j, n);
      k += n;
      j += n;
      continue;
    }
    if (c != '\\') {
      dst[k++] = (char)c;
      j++;
      continue;
    }
    unsigned char e = ps->s[j + 1];
    char simple = 0;
    switch (e) {
      case '"': simple = '"'; break;
      case '\\': simple = '\\'; break;
      case '/': simple = '/'; break;
      case 'b': simple = '\b'; break;
      case 'f': simple = '\f'; break;
      case 'n': simple = '\n'; break;
      case 'r': simple = '\r'; break;
      case 't': simple = '\t'; break;
      case 'u': break;
      default: {
        char d[8];
        describe_byte(ps, j + 1, d);
        return perr(ps, j, "invalid escape \\ followed by %s", d);
      }
    }
    if (simple) {
      dst[k++] = simple;
      j += 2;
      continue;
    }
    uint32_t cp;
    if (end - j < 6 || !hex4(ps->s + j + 2, &cp))
      return perr(ps, j, "\\u must be followed by 4 hex digits");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
      return perr(ps, j, "unpaired low surrogate \\u%04X", (unsigned)cp);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      uint32_t lo;
      if (end - j < 12 || ps->s[j + 6] != '\\' || ps->s[j + 7] != 'u' ||
          !hex4(ps->s + j + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
        return perr(ps, j, "high surrogate \\u%04X not followed by a low one", (unsigned)cp);
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      j += 6;
    }
    k += utf8_encode(cp, dst + k);
    j += 6;
  }
  dst[k] = 0;
  *out = dst;
  *out_len = k;
  ps->pos = end + 1;
  return SK_OK;
}

static sk_status parse_number(parser *ps, sk__json *v) {
  const unsigned char *s = ps->s;
  size_t i = ps->pos, start = i;
  bool neg = false, integral = true;
  if (s[i] == '-') {
    neg = true;
    i++;
  }
  if (i >= ps->len || s[i] < '0' || s[i] > '9')
    return perr(ps, start, "'-' not followed by a digit");
  uint64_t mag = 0;
  bool fits = true;
  if (s[i] == '0') {
    i++;
    if (i < ps->len && s[i] >= '0' && s[i] <= '9')
      return perr(ps, start, "number with a leading zero");
  } else {
    while (i < ps->len && s[i] >= '0' && s[i] <= '9') {
      uint64_t dgt = (uint64_t)(s[i] - '0');
      if (mag > (UINT64_MAX - dgt) / 10)
        fits = false;
      else
        mag = mag * 10 + dgt;
      i++;
    }
  }
  if (i < ps->len && s[i] == '.') {
    integral = false;
    i++;
    if (i >= ps->len || s[i] < '0' || s[i] > '9') return perr(ps, i, "expected a digit after '.'");
    while (i < ps->len && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < ps->len && (s[i] == 'e' || s[i] == 'E')) {
    integral = false;
    i++;
    if (i < ps->len && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= ps->len || s[i] < '0' || s[i] > '9')
      return perr(ps, i, "expected a digit in the exponent");
    while (i < ps->len && s[i] >= '0' && s[i] <= '9') i++;
  }
  size_t n = i - start;
  if (n > MAX_NUMBER_CHARS)
    return perr(ps, start, "number longer than %d characters", MAX_NUMBER_CHARS);
  /* strtod reads the locale's decimal point, so put that in place of '.'. */
  char buf[MAX_NUMBER_CHARS + 8];
  const char *dp = localeconv()->decimal_point;
  if (!dp || !dp[0] || strlen(dp) > 4) dp = ".";
  size_t dpn = strlen(dp), k = 0;
  for (size_t j = start; j < i; j++) {
    if (s[j] == '.') {
      memcpy(buf + k, dp, dpn);
      k += dpn;
    } else {
      buf[k++] = (char)s[j];
    }
  }
  buf[k] = 0;
  errno = 0;
  char *endp;
  double x = strtod(buf, &endp);
  if (endp != buf + k) return perr(ps, start, "malformed number");
  if (isinf(x)) return perr(ps, start, "number %.40s out of the double range", buf);
  v->number = x;
  if (integral && fits) {
    if (!neg && mag <= (uint64_t)INT64_MAX) {
      v->is_int = true;
      v->integer = (int64_t)mag;
    } else if (neg && mag <= (uint64_t)INT64_MAX + 1) {
      v->is_int = true;
      v->integer = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    }
  }
  ps->pos = i;
  return SK_OK;
}

static int key_cmp(const char *a, size_t an, const char *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  if (c) return c;
  return an < bn ? -1 : an > bn;
}

static int member_cmp(const void *pa, const void *pb) {
  const sk__json *a = *(sk__json *const *)pa, *b = *(sk__json *const *)pb;
  int c = key_cmp(a->key, a->key_len, b->key, b->key_len);
  if (c) return c;
  return a->key_offset < b->key_offset ? -1 : a->key_offset > b->key_offset;
}

/* Moves the sibling list of a finished container into arrays. */
static sk_status finish_container(parser *ps, sk__json *v, sk__json *first) {
  if (v->n == 0) return SK_OK;
  size_t bytes;
  if (!sk__mul_size(v->n, sizeof(sk__json *), &bytes)) return oom(ps);
  v->items = arena_alloc(ps->doc, bytes);
  if (!v->items) return oom(ps);
  size_t i = 0;
  for (sk__json *c = first; c; c = c->next) v->items[i++] = c;
  if (v->kind != SK__JSON_OBJECT) return SK_OK;
  v->sorted = arena_alloc(ps->doc, bytes);
  if (!v->sorted) return oom(ps);
  memcpy(v->sorted, v->items, bytes);
  qsort(v->sorted, v->n, sizeof(sk__json *), member_cmp);
  for (i = 1; i < v->n; i++) {
    const sk__json *a = v->sorted[i - 1], *b = v->sorted[i];
    if (key_cmp(a->key, a->key_len, b->key, b->key_len) == 0)
      /* b is the later one in the text: member_cmp breaks ties by offset. */
      return perr(ps, b->key_offset, "duplicate key \"%.40s\" in the object at byte %zu", b->key,
                  v->offset);
  }
  return SK_OK;
}

static sk_status parse_value(parser *ps, int depth, sk__json **out);

static sk_status parse_container(parser *ps, int depth, sk__json *v) {
  bool is_obj = v->kind == SK__JSON_OBJECT;
  char close = is_obj ? '}' : ']';
  if (depth > SK__JSON_MAX_DEPTH)
    return perr(ps, v->offset, "nesting deeper than %d", SK__JSON_MAX_DEPTH);
  ps->pos++;
  skip_ws(ps);
  sk__json *first = NULL, *last = NULL;
  if (ps->pos < ps->len && ps->s[ps->pos] == (unsigned char)close) {
    ps->pos++;
    return SK_OK;
  }
  for (;;) {
    const char *key = NULL;
    size_t key_len = 0, key_offset = 0;
    if (is_obj) {
      skip_ws(ps);
      if (ps->pos >= ps->len) return perr(ps, ps->pos, "unexpected end of input in an object");
      if (ps->s[ps->pos] != '"') {
        char d[8];
        describe_byte(ps, ps->pos, d);
        return perr(ps, ps->pos, "expected a string key, got %s", d);
      }
      key_offset = ps->pos;
      sk_status st = parse_string(ps, &key, &key_len);
      if (st) return st;
      skip_ws(ps);
      if (ps->pos >= ps->len || ps->s[ps->pos] != ':')
        return perr(ps, ps->pos, "expected ':' after the key \"%.40s\"", key);
      ps->pos++;
    }
    sk__json *child;
    sk_status st = parse_value(ps, depth, &child);
    if (st) return st;
    child->key = key;
    child->key_len = key_len;
    child->key_offset = key_offset;
    if (last)
      last->next = child;
    else
      first = child;
    last = child;
    v->n++;
    skip_ws(ps);
    if (ps->pos >= ps->len)
      return perr(ps, ps->pos, "unexpected end of input in an %s", is_obj ? "object" : "array");
    unsigned char c = ps->s[ps->pos];
    if (c == ',') {
      ps->pos++;
      continue;
    }
    if (c == (unsigned char)close) {
      ps->pos++;
      break;
    }
    char d[8];
    describe_byte(ps, ps->pos, d);
    return perr(ps, ps->pos, "expected ',' or '%c', got %s", close, d);
  }
  return finish_container(ps, v, first);
}

/* Parses the value at ps->pos (after whitespace); `depth` counts the
 * containers around it. */
static sk_status parse_value(parser *ps, int depth, sk__json **out) {
  skip_ws(ps);
  if (ps->pos >= ps->len) return perr(ps, ps->pos, "unexpected end of input, expected a value");
  size_t off = ps->pos;
  unsigned char c = ps->s[off];
  sk__json *v;
  sk_status st;
  switch (c) {
    case '{':
    case '[':
      if ((st = new_node(ps, c == '{' ? SK__JSON_OBJECT : SK__JSON_ARRAY, off, &v))) return st;
      if ((st = parse_container(ps, depth + 1, v))) return st;
      break;
    case '"':
      if ((st = new_node(ps, SK__JSON_STRING, off, &v))) return st;
      if ((st = parse_string(ps, &v->str, &v->str_len))) return st;
      break;
    case 't':
    case 'f':
    case 'n': {
      const char *word = c == 't' ? "true" : c == 'f' ? "false" : "null";
      size_t wn = strlen(word);
      if (ps->len - off < wn || memcmp(ps->s + off, word, wn) != 0)
        return perr(ps, off, "invalid literal (expected %s)", word);
      if ((st = new_node(ps, c == 'n' ? SK__JSON_NULL : SK__JSON_BOOL, off, &v))) return st;
      v->boolean = c == 't';
      ps->pos += wn;
      break;
    }
    default:
      if (c == '-' || (c >= '0' && c <= '9')) {
        if ((st = new_node(ps, SK__JSON_NUMBER, off, &v))) return st;
        if ((st = parse_number(ps, v))) return st;
        break;
      }
      char d[8];
      describe_byte(ps, off, d);
      return perr(ps, off, "unexpected %s, expected a value", d);
  }
  *out = v;
  return SK_OK;
}

sk_status sk__json_parse(const char *what, const char *text, size_t len, sk__json_doc **out,
                         size_t *err_offset) {
  *out = NULL;
  if (!what) what = "json";
  if (len > SK__JSON_MAX_TEXT)
    return sk__fail(SK_ERR_FORMAT, "%s: JSON text of %zu bytes exceeds the %zu-byte cap", what, len,
                    (size_t)SK__JSON_MAX_TEXT);
  sk__json_doc *doc = sk__calloc(1, sizeof *doc);
  if (!doc) return sk__fail(SK_ERR_NOMEM, "%s: out of memory parsing JSON", what);
  parser ps = {what, (const unsigned char *)text, len, 0, 0, err_offset, doc};
  sk__json *root;
  sk_status st = parse_value(&ps, 0, &root);
  if (st == SK_OK) {
    skip_ws(&ps);
    if (ps.pos < len) {
      char d[8];
      describe_byte(&ps, ps.pos, d);
      st = perr(&ps, ps.pos, "unexpected %s after the value", d);
    }
  }
  if (st) {
    sk__json_doc_free(doc);
    return st;
  }
  doc->root = root;
  *out = doc;
  return SK_OK;
}

/* ---- accessors ---- */

sk__json_kind sk__json_type(const sk__json *v) { return v ? v->kind : SK__JSON_NULL; }
size_t sk__json_offset(const sk__json *v) { return v ? v->offset : 0; }

size_t sk__json_len(const sk__json *v) {
  return v && (v->kind == SK__JSON_ARRAY || v->kind == SK__JSON_OBJECT) ? v->n : 0;
}

const sk__json *sk__json_at(const sk__json *v, size_t i) {
  return i < sk__json_len(v) ? v->items[i] : NULL;
}

const sk__json *sk__json_get(const sk__json *v, const char *key) {
  if (!v || v->kind != SK__JSON_OBJECT || !key) return NULL;
  size_t kn = strlen(key), lo = 0, hi = v->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const sk__json *m = v->sorted[mid];
    int c = key_cmp(m->key, m->key_len, key, kn);
    if (c == 0) return m;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

const char *sk__json_key(const sk__json *v, size_t *len) {
  if (!v || !v->key) return NULL;
  if (len) *len = v->key_len;
  return v->key;
}

const char *sk__json_string(const sk__json *v, size_t *len) {
  if (!v || v->kind != SK__JSON_STRING) return NULL;
  if (len) *len = v->str_len;
  return v->str;
}

bool sk__json_number(const sk__json *v, double *out) {
  if (!v || v->kind != SK__JSON_NUMBER) return false;
  *out = v->number;
  return true;
}

bool sk__json_int(const sk__json *v, int64_t *out) {
  if (!v || v->kind != SK__JSON_NUMBER || !v->is_int) return false;
  *out = v->integer;
  return true;
}

bool sk__json_bool(const sk__json *v, bool *out) {
  if (!v || v->kind != SK__JSON_BOOL) return false;
  *out = v->boolean;
  return true;
}

/* ---- writer ---- */

void sk__jbuf_init(sk__jbuf *b) { memset(b, 0, sizeof *b); }

void sk__jbuf_free(sk__jbuf *b) {
  sk__free(b->data);
  memset(b, 0, sizeof *b);
}

static bool jbuf_reserve(sk__jbuf *b, size_t n) {
  size_t need;
  if (!sk__add_size(b->len, n, &need) || !sk__add_size(need, 1, &need)) {
    b->status = sk__fail(SK_ERR_NOMEM, "JSON text longer than memory allows");
    return false;
  }
  if (need <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) {
    if (!sk__mul_size(cap, 2, &cap)) {
      cap = need;
      break;
    }
  }
  char *p = sk__realloc(b->data, cap);
  if (!p) {
    b->status = sk__fail(SK_ERR_NOMEM, "out of memory for a %zu-byte JSON text", need);
    return false;
  }
  b->data = p;
  b->cap = cap;
  return true;
}

sk_status sk__jbuf_raw(sk__jbuf *b, const char *s, size_t n) {
  if (b->status) return b->status;
  if (!jbuf_reserve(b, n)) return b->status;
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = 0;
  return SK_OK;
}

sk_status sk__jbuf_puts(sk__jbuf *b, const char *s) { return sk__jbuf_raw(b, s, strlen(s)); }

sk_status sk__jbuf_string(sk__jbuf *b, const char *s, size_t n) {
  if (b->status) return b->status;
  const unsigned char *u = (const unsigned char *)s;
  size_t bad;
  /* Validate first so that a failure leaves no half-written string. */
  if (!sk__json_utf8_valid(s, n, &bad)) {
    b->status =
        sk__fail(SK_ERR_INVALID, "string to write as JSON has invalid UTF-8 at byte %zu", bad);
    return b->status;
  }
  sk__jbuf_raw(b, "\"", 1);
  size_t run = 0; /* start of the pending run of bytes that need no escape */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = u[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    sk__jbuf_raw(b, s + run, i - run);
    run = i + 1;
    char esc[8];
    switch (c) {
      case '"': sk__jbuf_raw(b, "\\\"", 2); break;
      case '\\': sk__jbuf_raw(b, "\\\\", 2); break;
      case '\b': sk__jbuf_raw(b, "\\b", 2); break;
      case '\f': sk__jbuf_raw(b, "\\f", 2); break;
      case '\n': sk__jbuf_raw(b, "\\n", 2); break;
      case '\r': sk__jbuf_raw(b, "\\r", 2); break;
      case '\t': sk__jbuf_raw(b, "\\t", 2); break;
      default: snprintf(esc, sizeof esc, "\\u%04x", c); sk__jbuf_raw(b, esc, 6);
    }
  }
  sk__jbuf_raw(b, s + run, n - run);
  return sk__jbuf_raw(b, "\"", 1);
}

/* Appends a number printed by printf, with the locale's decimal point
 * replaced by '.'. */
static sk_status jbuf_real(sk__jbuf *b, double x, int digits) {
  if (b->status) return b->status;
  if (!isfinite(x)) {
    b->status = sk__fail(SK_ERR_NUMERIC, "cannot write %g as JSON: not a finite number", x);
    return b->status;
  }
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%.*g", digits, x);
  const char *dp = localeconv()->decimal_point;
  if (dp && dp[0] && strcmp(dp, ".") != 0) {
    char *at = strstr(buf, dp);
    if (at) {
      size_t dpn = strlen(dp);
      *at = '.';
      memmove(at + 1, at + dpn, strlen(at + dpn) + 1);
      n -= (int)dpn - 1;
    }
  }
  return sk__jbuf_raw(b, buf, (size_t)n);
}

sk_status sk__jbuf_float(sk__jbuf *b, float x) { return jbuf_real(b, x, 9); }
sk_status sk__jbuf_double(sk__jbuf *b, double x) { return jbuf_real(b, x, 17); }

sk_status sk__jbuf_int(sk__jbuf *b, int64_t x) {
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%" PRId64, x);
  return sk__jbuf_raw(b, buf, (size_t)n);
}

static sk_status print_value(sk__jbuf *b, const sk__json *v) {
  switch (v->kind) {
    case SK__JSON_NULL: return sk__jbuf_raw(b, "null", 4);
    case SK__JSON_BOOL:
      return v->boolean ? sk__jbuf_raw(b, "true", 4) : sk__jbuf_raw(b, "false", 5);
    case SK__JSON_NUMBER:
      return v->is_int ? sk__jbuf_int(b, v->integer) : sk__jbuf_double(b, v->number);
    case SK__JSON_STRING: return sk__jbuf_string(b, v->str, v->str_len);
    case SK__JSON_ARRAY:
    case SK__JSON_OBJECT: {
      bool obj = v->kind == SK__JSON_OBJECT;
      sk__jbuf_raw(b, obj ? "{" : "[", 1);
      for (size_t i = 0; i < v->n; i++) {
        if (i) sk__jbuf_raw(b, ",", 1);
        if (obj) {
          sk__jbuf_string(b, v->items[i]->key, v->items[i]->key_len);
          sk__jbuf_raw(b, ":", 1);
        }
        print_value(b, v->items[i]); /* depth is bounded by the parser's cap */
      }
      return sk__jbuf_raw(b, obj ? "}" : "]", 1);
    }
  }
  return b->status;
}

sk_status sk__json_print(sk__jbuf *b, const sk__json *v) {
  if (!v) return sk__jbuf_raw(b, "null", 4);
  return print_value(b, v);
}
