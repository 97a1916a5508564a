/* Numeric CSV tables: a streaming, bounded reader into an (n, d) float32
 * tensor plus an optional integer label column. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/internal.h"
#include "scorekit/io.h"

#define CSV_MAX_LINE ((size_t)1 << 20)
#define CSV_MAX_COLS 1000000
#define CSV_CHUNK ((size_t)1 << 16)
/* Labels are stored as float32, exact up to 2^24. */
#define CSV_MAX_LABEL 16777216.0

typedef struct csv_reader {
  FILE *f;
  const char *path;
  char *buf; /* CSV_CHUNK bytes of the file */
  size_t bpos, blen;
  bool eof;
  uint64_t total; /* bytes read so far */
  char *line;     /* the current line, '\r\n' stripped, NUL-terminated */
  size_t len, cap;
  long long line_no;
} csv_reader;

/* Reads the next line into r->line; *got is false at the end of the file. */
static sk_status read_line(csv_reader *r, bool *got) {
  r->len = 0;
  *got = false;
  bool any = false;
  for (;;) {
    if (r->bpos == r->blen) {
      if (r->eof) break;
      r->blen = fread(r->buf, 1, CSV_CHUNK, r->f);
      r->bpos = 0;
      r->total += r->blen;
      if (r->blen == 0) {
        if (ferror(r->f))
          return sk__fail(SK_ERR_IO, "%s: read error near line %lld: %s", r->path, r->line_no + 1,
                          strerror(errno));
        r->eof = true;
        break;
      }
    }
    any = true;
    char *start = r->buf + r->bpos;
    size_t avail = r->blen - r->bpos;
    char *nl = memchr(start, '\n', avail);
    size_t take = nl ? (size_t)(nl - start) : avail;
    /* One byte of slack for a '\r' that is stripped below. */
    if (r->len + take > CSV_MAX_LINE + 1)
      return sk__fail(SK_ERR_FORMAT, "%s: line %lld is longer than 1 MiB", r->path, r->line_no + 1);
    if (r->len + take + 1 > r->cap) {
      size_t cap = r->cap ? r->cap : 256;
      while (cap < r->len + take + 1) cap *= 2;
      char *p = sk__realloc(r->line, cap);
      if (!p)
        return sk__fail(SK_ERR_NOMEM, "%s: out of memory at line %lld", r->path, r->line_no + 1);
      r->line = p;
      r->cap = cap;
    }
    memcpy(r->line + r->len, start, take);
    r->len += take;
    r->bpos += take + (nl ? 1 : 0);
    if (nl) break;
  }
  if (!any) return SK_OK;
  *got = true;
  r->line_no++;
  if (r->len > 0 && r->line[r->len - 1] == '\r') r->len--;
  /* A UTF-8 byte-order mark (spreadsheet exports) would otherwise turn a
   * numeric first row into a "header" and silently drop it. */
  if (r->line_no == 1 && r->len >= 3 && memcmp(r->line, "\xEF\xBB\xBF", 3) == 0) {
    memmove(r->line, r->line + 3, r->len - 3);
    r->len -= 3;
  }
  if (r->len > CSV_MAX_LINE)
    return sk__fail(SK_ERR_FORMAT, "%s: line %lld is longer than 1 MiB", r->path, r->line_no);
  char *nul = memchr(r->line, 0, r->len);
  if (nul)
    return sk__fail(SK_ERR_FORMAT, "%s: line %lld, byte %zu: NUL byte (binary file?)", r->path,
                    r->line_no, (size_t)(nul - r->line) + 1);
  r->line[r->len] = 0;
  return SK_OK;
}

/* Fields of one line: delimited by `delim`, or by runs of blanks when delim is 0. */
typedef struct splitter {
  char *s;
  size_t n, pos;
  char delim;
  bool done;
} splitter;

static bool is_blank(char c, char delim) { return (c == ' ' || c == '\t') && c != delim; }

/* The next field as [*f, *f + *len), quotes and surrounding blanks removed
 * (a quoted field's "" stays doubled: such a field is never a number).
 * Returns 1 for a field, 0 at the end, -1 for a malformed quote (*err set). */
static int split_next(splitter *sp, char **f, size_t *len, const char **err) {
  if (sp->done) return 0;
  char d = sp->delim;
  while (sp->pos < sp->n && is_blank(sp->s[sp->pos], d)) sp->pos++;
  if (!d && sp->pos == sp->n) {
    sp->done = true;
    return 0;
  }
  size_t start, end;
  if (sp->pos < sp->n && sp->s[sp->pos] == '"') {
    size_t i = sp->pos + 1;
    for (;;) {
      if (i >= sp->n) {
        *err = "unterminated quote";
        return -1;
      }
      if (sp->s[i] == '"') {
        if (i + 1 < sp->n && sp->s[i + 1] == '"') {
          i += 2;
          continue;
        }
        break;
      }
      i++;
    }
    start = sp->pos + 1;
    end = i;
    sp->pos = i + 1;
    size_t after = sp->pos;
    while (sp->pos < sp->n && is_blank(sp->s[sp->pos], d)) sp->pos++;
    if (sp->pos < sp->n && (d ? sp->s[sp->pos] != d : sp->pos == after)) {
      *err = "text after a closing quote";
      return -1;
    }
    while (start < end && (sp->s[start] == ' ' || sp->s[start] == '\t')) start++;
    while (end > start && (sp->s[end - 1] == ' ' || sp->s[end - 1] == '\t')) end--;
  } else {
    start = sp->pos;
    while (sp->pos < sp->n && (d ? sp->s[sp->pos] != d : !is_blank(sp->s[sp->pos], 0))) sp->pos++;
    end = sp->pos;
    while (end > start && is_blank(sp->s[end - 1], d)) end--;
  }
  if (d) {
    if (sp->pos < sp->n && sp->s[sp->pos] == d)
      sp->pos++;
    else
      sp->done = true;
  }
  *f = sp->s + start;
  *len = end - start;
  return 1;
}

enum { FIELD_NUMBER, FIELD_NONFINITE, FIELD_OTHER };

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool word_is(const char *s, size_t n, const char *w) {
  if (n != strlen(w)) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    if (c != w[i]) return false;
  }
  return true;
}

/* Decimal numbers only: [+-] digits [. digits] [e [+-] digits] (or .digits);
 * strtod's hex floats and nan(...) forms are not numbers here. */
static int classify(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) i++;
  if (word_is(s + i, n - i, "nan") || word_is(s + i, n - i, "inf") ||
      word_is(s + i, n - i, "infinity"))
    return FIELD_NONFINITE;
  size_t digits = 0;
  while (i < n && is_digit(s[i])) i++, digits++;
  if (i < n && s[i] == '.')
    for (i++; i < n && is_digit(s[i]); i++) digits++;
  if (digits == 0) return FIELD_OTHER;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    size_t e = 0;
    while (i < n && is_digit(s[i])) i++, e++;
    if (e == 0) return FIELD_OTHER;
  }
  return i == n ? FIELD_NUMBER : FIELD_OTHER;
}

/* A classified FIELD_NUMBER as a double; the thread's locale is "C" here. */
static double to_double(char *s, size_t n) {
  char saved = s[n];
  s[n] = 0;
  double v = strtod(s, NULL);
  s[n] = saved;
  return v;
}

/* A field for an error message: at most 32 bytes, printable, on one line. */
static const char *shown(char *dst, const char *s, size_t n) {
  size_t k = SK_MIN(n, (size_t)32), j = 0;
  for (size_t i = 0; i < k; i++) dst[j++] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
  if (k < n) dst[j++] = '.', dst[j++] = '.', dst[j++] = '.';
  dst[j] = 0;
  return dst;
}

typedef struct csv_state {
  csv_reader r;
  sk_csv_options opt;
  int ncols, d; /* fields per row; feature columns */
  int64_t rows;
  float *xv, *lv; /* (rows, d) and (rows,) growing buffers */
  size_t xcap, lcap;
} csv_state;

static sk_status grow(csv_state *c, float **p, size_t *cap, size_t need) {
  if (need <= *cap) return SK_OK;
  size_t nc = *cap ? *cap : 1024, bytes;
  while (nc < need)
    if (!sk__mul_size(nc, 2, &nc))
      return sk__fail(SK_ERR_UNSUPPORTED, "%s: line %lld: table too large", c->r.path,
                      c->r.line_no);
  if (!sk__mul_size(nc, sizeof(float), &bytes) || nc > (size_t)INT64_MAX / 8)
    return sk__fail(SK_ERR_UNSUPPORTED, "%s: line %lld: table too large", c->r.path, c->r.line_no);
  float *q = sk__realloc(*p, bytes);
  if (!q) return sk__fail(SK_ERR_NOMEM, "%s: out of memory at line %lld", c->r.path, c->r.line_no);
  *p = q;
  *cap = nc;
  return SK_OK;
}

static sk_status field_error(csv_state *c, int col, const char *what) {
  return sk__fail(SK_ERR_FORMAT, "%s: line %lld, column %d: %s", c->r.path, c->r.line_no, col + 1,
                  what);
}

/* Picks the most frequent of ',', ';', '\t' outside quotes (ties in that
 * order); none means whitespace-separated. */
static char detect_delimiter(const char *s, size_t n) {
  static const char cand[3] = {',', ';', '\t'};
  size_t count[3] = {0, 0, 0};
  bool quoted = false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"') quoted = !quoted;
    for (int k = 0; k < 3 && !quoted; k++) count[k] += s[i] == cand[k];
  }
  int best = 0;
  for (int k = 1; k < 3; k++)
    if (count[k] > count[best]) best = k;
  return count[best] ? cand[best] : 0;
}

/* The first content line fixes the column count and whether it is a header. */
static sk_status first_line(csv_state *c, bool *is_header) {
  if (c->opt.delimiter == 0) c->opt.delimiter = detect_delimiter(c->r.line, c->r.len);
  splitter sp = {c->r.line, c->r.len, 0, c->opt.delimiter == ' ' ? 0 : c->opt.delimiter, false};
  char *f;
  size_t len;
  const char *err = NULL;
  int k = 0, rc;
  bool text = false, number = false;
  while ((rc = split_next(&sp, &f, &len, &err)) == 1) {
    if (k == CSV_MAX_COLS)
      return sk__fail(SK_ERR_FORMAT, "%s: line %lld: more than %d columns", c->r.path, c->r.line_no,
                      CSV_MAX_COLS);
    if (len > 0) {
      if (classify(f, len) == FIELD_OTHER) text = true;
      else number = true;
    }
    k++;
  }
  if (rc < 0) return field_error(c, k, err);
  c->ncols = k;
  /* A header is names only. A row that mixes numbers and text ("1,NA") is
   * data with a bad field, reported as such, not a header to drop. */
  *is_header = c->opt.header < 0 ? text && !number : c->opt.header == 1;
  int lab = c->opt.label_column;
  if (lab >= k)
    return sk__fail(SK_ERR_FORMAT, "%s: line %lld: label column %d but rows have %d columns",
                    c->r.path, c->r.line_no, lab, k);
  c->d = k - (lab >= 0);
  if (c->d < 1)
    return sk__fail(SK_ERR_FORMAT, "%s: line %lld: no feature column besides the label", c->r.path,
                    c->r.line_no);
  return SK_OK;
}

static sk_status data_line(csv_state *c) {
  size_t row0, need;
  if (!sk__mul_size((size_t)c->rows, (size_t)c->d, &row0) ||
      !sk__add_size(row0, (size_t)c->d, &need))
    return sk__fail(SK_ERR_UNSUPPORTED, "%s: line %lld: table too large", c->r.path, c->r.line_no);
  sk_status st = grow(c, &c->xv, &c->xcap, need);
  if (!st && c->opt.label_column >= 0) st = grow(c, &c->lv, &c->lcap, (size_t)c->rows + 1);
  if (st) return st;
  splitter sp = {c->r.line, c->r.len, 0, c->opt.delimiter == ' ' ? 0 : c->opt.delimiter, false};
  char *f;
  size_t len;
  const char *err = NULL;
  char buf[40], msg[96];
  int k = 0, rc, col = 0;
  while ((rc = split_next(&sp, &f, &len, &err)) == 1) {
    if (k >= c->ncols) { /* count the rest for the message */
      k++;
      continue;
    }
    int kind = classify(f, len);
    if (k == c->opt.label_column) {
      double v = kind == FIELD_NUMBER ? to_double(f, len) : -1;
      if (!(v >= 0 && v <= CSV_MAX_LABEL && v == floor(v))) {
        snprintf(msg, sizeof msg, "label '%s' is not a non-negative integer (<= 2^24)",
                 shown(buf, f, len));
        return field_error(c, k, msg);
      }
      c->lv[c->rows] = (float)v;
    } else {
      if (kind == FIELD_NONFINITE)
        return sk__fail(SK_ERR_NUMERIC, "%s: line %lld, column %d: non-finite value '%s'",
                        c->r.path, c->r.line_no, k + 1, shown(buf, f, len));
      if (kind != FIELD_NUMBER) {
        if (len == 0) return field_error(c, k, "empty field");
        snprintf(msg, sizeof msg, "non-numeric field '%s'", shown(buf, f, len));
        return field_error(c, k, msg);
      }
      double v = to_double(f, len);
      float x = (float)v;
      if (!isfinite(x))
        return sk__fail(SK_ERR_NUMERIC,
                        "%s: line %lld, column %d: value '%s' is outside float32 range", c->r.path,
                        c->r.line_no, k + 1, shown(buf, f, len));
      c->xv[row0 + (size_t)col++] = x;
    }
    k++;
  }
  if (rc < 0) return field_error(c, k, err);
  if (k != c->ncols)
    return sk__fail(SK_ERR_FORMAT, "%s: line %lld: expected %d fields, got %d", c->r.path,
                    c->r.line_no, c->ncols, k);
  c->rows++;
  return SK_OK;
}

static sk_status load_lines(csv_state *c) {
  bool started = false, got;
  for (;;) {
    sk_status st = read_line(&c->r, &got);
    if (st) return st;
    if (!got) break;
    size_t i = 0;
    while (i < c->r.len && (c->r.line[i] == ' ' || c->r.line[i] == '\t')) i++;
    if (i == c->r.len || c->r.line[i] == '#') continue;
    if (!started) {
      started = true;
      bool header = false;
      st = first_line(c, &header);
      if (st) return st;
      if (header) continue;
    }
    st = data_line(c);
    if (st) return st;
  }
  if (c->r.total == 0) return sk__fail(SK_ERR_FORMAT, "%s: empty file", c->r.path);
  if (c->rows == 0)
    return sk__fail(SK_ERR_FORMAT, "%s: no data rows (%lld lines of comments, blanks or header)",
                    c->r.path, c->r.line_no);
  return SK_OK;
}

sk_csv_options sk_csv_options_default(void) {
  sk_csv_options o = {-1, -1, 0};
  return o;
}

static sk_status check_options(const char *path, const sk_csv_options *o, sk_tensor **labels) {
  if (o->header < -1 || o->header > 1)
    return sk__fail(SK_ERR_INVALID, "%s: header option %d is not -1, 0 or 1", path, o->header);
  if (o->label_column < -1 || o->label_column >= CSV_MAX_COLS)
    return sk__fail(SK_ERR_INVALID, "%s: label_column %d is out of range", path, o->label_column);
  if (o->label_column >= 0 && !labels)
    return sk__fail(SK_ERR_INVALID, "%s: label_column is set but labels is NULL", path);
  char d = o->delimiter;
  if (d && (d == '"' || d == '#' || d == '\n' || d == '\r' || d == '.' || d == '+' || d == '-' ||
            d == 'e' || d == 'E' || is_digit(d)))
    return sk__fail(SK_ERR_INVALID, "%s: delimiter '%c' cannot separate numbers", path, d);
  return SK_OK;
}

sk_status sk_csv_load(const char *path, const sk_csv_options *opt, sk_tensor **x,
                      sk_tensor **labels) {
  if (!x) return sk__fail(SK_ERR_INVALID, "sk_csv_load: x is NULL");
  *x = NULL;
  if (labels) *labels = NULL;
  if (!path) return sk__fail(SK_ERR_INVALID, "sk_csv_load: path is NULL");
  csv_state c;
  memset(&c, 0, sizeof c);
  c.opt = opt ? *opt : sk_csv_options_default();
  sk_status st = check_options(path, &c.opt, labels);
  if (st) return st;

  /* strtod follows LC_NUMERIC; switch this thread to "C" so that a program
   * that called setlocale still reads "1.5" as one and a half. */
  locale_t cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  if (!cloc) return sk__fail(SK_ERR_NOMEM, "%s: cannot create the C locale", path);
  locale_t old = uselocale(cloc);

  c.r.path = path;
  st = sk__open_read(path, &c.r.f, NULL);
  if (st) goto done;
  c.r.buf = sk__malloc(CSV_CHUNK);
  if (!c.r.buf) {
    st = sk__fail(SK_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  st = load_lines(&c);
  if (st) goto done;

  int64_t xs[2] = {c.rows, c.d};
  *x = sk_tensor_new(2, xs);
  if (c.opt.label_column >= 0 && *x) *labels = sk_tensor_new(1, &c.rows);
  if (!*x || (c.opt.label_column >= 0 && !*labels)) {
    sk_tensor_free(*x);
    *x = NULL;
    st = sk__fail(SK_ERR_NOMEM, "%s: out of memory for a %lld x %d table", path, (long long)c.rows,
                  c.d);
    goto done;
  }
  memcpy(sk_tensor_data(*x), c.xv, (size_t)c.rows * (size_t)c.d * sizeof(float));
  if (c.opt.label_column >= 0)
    memcpy(sk_tensor_data(*labels), c.lv, (size_t)c.rows * sizeof(float));

done:
  if (c.r.f) fclose(c.r.f);
  sk__free(c.r.buf);
  sk__free(c.r.line);
  sk__free(c.xv);
  sk__free(c.lv);
  uselocale(old);
  freelocale(cloc);
  return st;
}
