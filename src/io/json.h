/* A small strict JSON (RFC 8259) reader into a read-only tree, and a writer
 * buffer: the one JSON path of the library, for the safetensors header and the
 * model configs and training state kept in its metadata.
 *
 * Kept rather than Debian's libjansson 2.14, after measuring it: jansson also
 * rejects every malformed text of tests/test_json.c and reports positions, but
 * its allocator hook (json_set_alloc_funcs) is process-wide, so a library using
 * it can neither bound what a hostile header expands to (a 100 MB safetensors
 * header of "[]," took 4.4 GB under jansson; the value cap below refuses it at
 * 0.5 GB) nor make its allocations fail in tests without changing the host
 * program's jansson. Its writer also prints 3.0f as "3.0" where existing
 * model files hold "3". */
#ifndef SK_IO_JSON_H
#define SK_IO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scorekit/core.h"

/* Caps that bound the memory a hostile text can make the parser use. */
#define SK__JSON_MAX_DEPTH 64                /* nested arrays/objects */
#define SK__JSON_MAX_TEXT ((size_t)1 << 30)  /* bytes of input */
#define SK__JSON_MAX_NODES ((size_t)1 << 22) /* values in one document */

typedef enum sk__json_kind {
  SK__JSON_NULL,
  SK__JSON_BOOL,
  SK__JSON_NUMBER,
  SK__JSON_STRING,
  SK__JSON_ARRAY,
  SK__JSON_OBJECT,
} sk__json_kind;

typedef struct sk__json sk__json;         /* one value, owned by its document */
typedef struct sk__json_doc sk__json_doc; /* a parsed text: an arena of values */

/* Parses `len` bytes of UTF-8 JSON text: one value with optional whitespace
 * around it. Strings must be valid UTF-8; escapes (\uXXXX with surrogate pairs
 * included) are decoded to UTF-8, \u0000 to a NUL byte counted in the string's
 * length. Duplicate keys in an object, lone surrogates, numbers outside the
 * double range, depth over SK__JSON_MAX_DEPTH and inputs over the size caps are
 * errors. On success *out owns the tree (free with sk__json_doc_free). On
 * failure *out is NULL and the status is SK_ERR_FORMAT with the message
 * "<what>: byte <offset>: <problem>" (offset from the start of `text`, also
 * stored in *err_offset when that is not NULL), or SK_ERR_NOMEM. `what` names
 * the source in messages (a path, "header"); NULL reads as "json". */
sk_status sk__json_parse(const char *what, const char *text, size_t len, sk__json_doc **out,
                         size_t *err_offset);
void sk__json_doc_free(sk__json_doc *doc);
/* The top-level value; valid until sk__json_doc_free. */
const sk__json *sk__json_root(const sk__json_doc *doc);

/* Accessors. Each accepts NULL and values of any kind, answering NULL / 0 /
 * false where the value is not of the kind asked for, so chains such as
 * sk__json_get(sk__json_get(root, "a"), "b") need one check at the end. */
sk__json_kind sk__json_type(const sk__json *v); /* SK__JSON_NULL for a NULL v */
size_t sk__json_offset(const sk__json *v);      /* byte offset of v in the text */
/* Number of elements of an array or members of an object; 0 otherwise. */
size_t sk__json_len(const sk__json *v);
/* Element i of an array, or member i of an object in text order. */
const sk__json *sk__json_at(const sk__json *v, size_t i);
/* The member of object v named `key` (a C string), by binary search. */
const sk__json *sk__json_get(const sk__json *v, const char *key);
/* The name under which v sits in its parent object, NUL-terminated, with its
 * byte length in *len when len is not NULL; NULL when v is not a member. */
const char *sk__json_key(const sk__json *v, size_t *len);
/* The string, NUL-terminated, with its byte length (which counts any NUL
 * bytes from \u0000) in *len when len is not NULL. */
const char *sk__json_string(const sk__json *v, size_t *len);
bool sk__json_number(const sk__json *v, double *out);
/* True only for a number written as an integer (no fraction or exponent)
 * that fits in int64_t. */
bool sk__json_int(const sk__json *v, int64_t *out);
bool sk__json_bool(const sk__json *v, bool *out);

/* True when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF); otherwise false with the offset of the first
 * bad byte in *bad_at when that is not NULL. */
bool sk__json_utf8_valid(const char *s, size_t n, size_t *bad_at);

/* A growable output buffer, NUL-terminated after every append. Errors are
 * sticky: after the first failure every append does nothing and returns the
 * same status, so a writer can check once at the end. */
typedef struct sk__jbuf {
  char *data; /* len bytes + NUL; owned, free with sk__jbuf_free */
  size_t len, cap;
  sk_status status; /* SK_OK or the first failure (its message was set then) */
} sk__jbuf;

void sk__jbuf_init(sk__jbuf *b);
void sk__jbuf_free(sk__jbuf *b);
/* Appends n bytes as they are. */
sk_status sk__jbuf_raw(sk__jbuf *b, const char *s, size_t n);
sk_status sk__jbuf_puts(sk__jbuf *b, const char *s);
/* Appends s (n bytes of UTF-8) as a quoted JSON string: '"' and '\\' and
 * control characters escaped. Invalid UTF-8 fails with SK_ERR_INVALID. */
sk_status sk__jbuf_string(sk__jbuf *b, const char *s, size_t n);
/* Numbers with enough digits to read back to the same value ("%.9g" for
 * float, "%.17g" for double) and a '.' whatever the C locale. Non-finite values have
 * no JSON form and fail with SK_ERR_NUMERIC. */
sk_status sk__jbuf_float(sk__jbuf *b, float x);
sk_status sk__jbuf_double(sk__jbuf *b, double x);
sk_status sk__jbuf_int(sk__jbuf *b, int64_t x);
/* Appends v as compact JSON text (integers as integers, other numbers with
 * "%.17g", object members in text order). */
sk_status sk__json_print(sk__jbuf *b, const sk__json *v);

#endif
