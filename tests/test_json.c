/* The internal JSON reader and writer: values, escapes and UTF-8, numbers,
 * print/parse round trips, the depth and size caps, malformed inputs (each a
 * clean error with its byte offset), and allocation failures. */
#include <stdint.h>

#include "io/json.h"
#include "scorekit/core.h"
#include "test.h"

static sk__json_doc *parse_ok(const char *text) {
  sk__json_doc *d = NULL;
  sk_status s = sk__json_parse("t", text, strlen(text), &d, NULL);
  if (s != SK_OK) fprintf(stderr, "parse of %s failed: %s\n", text, sk_last_error());
  return d;
}

/* Parses, prints compactly, and checks the text printed. */
static int print_is(const char *text, const char *want) {
  sk__json_doc *d = parse_ok(text);
  if (!d) return 0;
  sk__jbuf b;
  sk__jbuf_init(&b);
  sk_status s = sk__json_print(&b, sk__json_root(d));
  int ok = s == SK_OK && b.len == strlen(want) && memcmp(b.data, want, b.len) == 0;
  if (!ok)
    fprintf(stderr, "print of %s gave %s, want %s\n", text, b.data ? b.data : "(null)", want);
  sk__jbuf_free(&b);
  sk__json_doc_free(d);
  return ok;
}

TEST(values_and_accessors) {
  const char *text =
      " {\"n\": null, \"t\": true, \"f\": false, \"i\": -42, \"x\": 2.5e-1,\n"
      "  \"s\": \"hi\", \"a\": [1, [2, 3], {}], \"o\": {\"k\": \"v\"}} ";
  sk__json_doc *d = parse_ok(text);
  CHECK(d);
  const sk__json *r = sk__json_root(d);
  CHECK_EQ_INT(sk__json_type(r), SK__JSON_OBJECT);
  CHECK_EQ_INT(sk__json_len(r), 8);
  CHECK_EQ_INT(sk__json_offset(r), 1);
  CHECK_EQ_INT(sk__json_type(sk__json_get(r, "n")), SK__JSON_NULL);
  CHECK(sk__json_get(r, "n") != NULL);
  CHECK(sk__json_get(r, "missing") == NULL);
  bool bv = false;
  CHECK(sk__json_bool(sk__json_get(r, "t"), &bv) && bv);
  CHECK(sk__json_bool(sk__json_get(r, "f"), &bv) && !bv);
  int64_t iv;
  double dv;
  CHECK(sk__json_int(sk__json_get(r, "i"), &iv));
  CHECK_EQ_INT(iv, -42);
  CHECK(sk__json_number(sk__json_get(r, "x"), &dv));
  CHECK(dv == 0.25);
  CHECK(!sk__json_int(sk__json_get(r, "x"), &iv));
  size_t n;
  CHECK(strcmp(sk__json_string(sk__json_get(r, "s"), &n), "hi") == 0);
  CHECK_EQ_INT(n, 2);
  CHECK(sk__json_string(sk__json_get(r, "i"), NULL) == NULL);
  const sk__json *a = sk__json_get(r, "a");
  CHECK_EQ_INT(sk__json_len(a), 3);
  CHECK(sk__json_int(sk__json_at(sk__json_at(a, 1), 1), &iv) && iv == 3);
  CHECK(sk__json_at(a, 3) == NULL);
  CHECK_EQ_INT(sk__json_type(sk__json_at(a, 2)), SK__JSON_OBJECT);
  CHECK_EQ_INT(sk__json_len(sk__json_at(a, 2)), 0);
  CHECK(strcmp(sk__json_string(sk__json_get(sk__json_get(r, "o"), "k"), NULL), "v") == 0);
  /* Members in text order, with their keys. */
  CHECK(strcmp(sk__json_key(sk__json_at(r, 0), NULL), "n") == 0);
  CHECK(strcmp(sk__json_key(sk__json_at(r, 7), &n), "o") == 0 && n == 1);
  CHECK(sk__json_key(r, NULL) == NULL);
  /* Accessors tolerate NULL and other kinds. */
  CHECK(sk__json_get(NULL, "a") == NULL && sk__json_len(NULL) == 0);
  CHECK(sk__json_get(a, "a") == NULL);
  CHECK(!sk__json_number(sk__json_get(r, "s"), &dv));
  sk__json_doc_free(d);
  sk__json_doc_free(NULL);
}

TEST(print_round_trip) {
  CHECK(print_is(" [ 1 , -0 , 2.5 , 1e2, true,false ,null,\"a\\/b\", {} , [] ] ",
                 "[1,0,2.5,100,true,false,null,\"a/b\",{},[]]"));
  CHECK(print_is("{\"b\":{\"c\":[{\"d\":\"e\"}]},\"a\":-9223372036854775808}",
                 "{\"b\":{\"c\":[{\"d\":\"e\"}]},\"a\":-9223372036854775808}"));
  CHECK(print_is("0.1", "0.10000000000000001"));
  CHECK(print_is("\"tab\\there\\u0001\\u001F\\\"q\\\\\"", "\"tab\\there\\u0001\\u001f\\\"q\\\\\""));
  /* Printing then parsing gives the same tree, hence the same text. */
  const char *text =
      "{\"k\\u00e9y\":[1.5,-3e-7,\"\\ud83d\\ude00\\n\",{\"x\":[[[]]]}],\"z\":12345678901}";
  sk__json_doc *d = parse_ok(text);
  CHECK(d);
  sk__jbuf b1, b2;
  sk__jbuf_init(&b1);
  sk__jbuf_init(&b2);
  CHECK_OK(sk__json_print(&b1, sk__json_root(d)));
  sk__json_doc *d2 = parse_ok(b1.data);
  CHECK(d2);
  CHECK_OK(sk__json_print(&b2, sk__json_root(d2)));
  CHECK(strcmp(b1.data, b2.data) == 0);
  CHECK(
      strcmp(b1.data,
             "{\"k\xc3\xa9y\":[1.5,-2.9999999999999999e-07,\"\xf0\x9f\x98\x80\\n\",{\"x\":[[[]]]}],"
             "\"z\":12345678901}") == 0);
  sk__jbuf_free(&b1);
  sk__jbuf_free(&b2);
  sk__json_doc_free(d);
  sk__json_doc_free(d2);
}

TEST(escapes_and_unicode) {
  const char *text =
      "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\", \"\\uD83D\\uDE00\", \"a\\u0000b\","
      " \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", \"\\uFFFF\\u0080\"]";
  sk__json_doc *d = parse_ok(text);
  CHECK(d);
  const sk__json *r = sk__json_root(d);
  size_t n;
  const char *s = sk__json_string(sk__json_at(r, 0), &n);
  CHECK(n == 8 && memcmp(s, "\"\\/\b\f\n\r\t", 8) == 0);
  s = sk__json_string(sk__json_at(r, 1), &n);
  CHECK(n == 5 && memcmp(s, "\xc3\xa9\xe2\x82\xac", 5) == 0);
  s = sk__json_string(sk__json_at(r, 2), &n);
  CHECK(n == 4 && memcmp(s, "\xf0\x9f\x98\x80", 4) == 0);
  s = sk__json_string(sk__json_at(r, 3), &n);
  CHECK(n == 3 && memcmp(s, "a\0b", 4) == 0);
  s = sk__json_string(sk__json_at(r, 4), &n);
  CHECK(n == 9 && memcmp(s, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9) == 0);
  s = sk__json_string(sk__json_at(r, 5), &n);
  CHECK(n == 5 && memcmp(s, "\xef\xbf\xbf\xc2\x80", 5) == 0);
  sk__json_doc_free(d);
  /* The NUL travels through print and parse, and a key holding one is not
   * found under its C-string prefix. */
  CHECK(print_is("\"a\\u0000b\"", "\"a\\u0000b\""));
  d = parse_ok("{\"a\\u0000b\": 1, \"a\": 2}");
  CHECK(d);
  int64_t v;
  CHECK(sk__json_int(sk__json_get(sk__json_root(d), "a"), &v) && v == 2);
  CHECK(sk__json_key(sk__json_at(sk__json_root(d), 0), &n) && n == 3);
  sk__json_doc_free(d);
}

TEST(numbers) {
  static const struct {
    const char *text;
    int is_int;
    int64_t i;
    double x;
  } cases[] = {
      {"0", 1, 0, 0.0},
      {"-0", 1, 0, -0.0},
      {"9223372036854775807", 1, INT64_MAX, 9223372036854775807.0},
      {"-9223372036854775808", 1, INT64_MIN, -9223372036854775808.0},
      {"9223372036854775808", 0, 0, 9223372036854775808.0},
      {"18446744073709551616", 0, 0, 18446744073709551616.0},
      {"1.0", 0, 0, 1.0},
      {"1e3", 0, 0, 1000.0},
      {"-1.5E+2", 0, 0, -150.0},
      {"2.5e-3", 0, 0, 0.0025},
      {"1.7976931348623157e308", 0, 0, 1.7976931348623157e308},
      {"4.9e-324", 0, 0, 4.9e-324},
      {"1e-400", 0, 0, 0.0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    sk__json_doc *d = parse_ok(cases[k].text);
    CHECK(d);
    int64_t i;
    double x;
    const sk__json *r = sk__json_root(d);
    CHECK_EQ_INT(sk__json_int(r, &i), cases[k].is_int);
    if (cases[k].is_int) CHECK_EQ_INT(i, cases[k].i);
    CHECK(sk__json_number(r, &x));
    CHECK(x == cases[k].x);
    sk__json_doc_free(d);
  }
}

/* Each malformed text fails with SK_ERR_FORMAT at the given byte offset, with
 * the offset and the source name in the message. */
TEST(malformed_inputs) {
  static const struct {
    const char *text;
    size_t off;
  } cases[] = {
      {"", 0},
      {"   ", 3},
      {"{", 1},
      {"[", 1},
      {"[1,]", 3},
      {"[1 2]", 3},
      {"[1,2", 4},
      {"{\"a\":1,}", 7},
      {"{\"a\" 1}", 5},
      {"{\"a\":}", 5},
      {"{a:1}", 1},
      {"{\"a\":1 \"b\":2}", 7},
      {"{\"a\":1,\"b\":2,\"a\":3}", 13},
      {"\"abc", 0},
      {"\"abc\\\"", 0},
      {"tru", 0},
      {"nul", 0},
      {"True", 0},
      {"NaN", 0},
      {"Infinity", 0},
      {"[1]x", 3},
      {"{} {}", 3},
      {"01", 0},
      {"-", 0},
      {"[-]", 1},
      {"+1", 0},
      {".5", 0},
      {"1.", 2},
      {"1.e3", 2},
      {"1e", 2},
      {"1e+", 3},
      {"1e999", 0},
      {"-1e999", 0},
      {"\"\\x\"", 1},
      {"\"\\u12\"", 1},
      {"\"\\u12G4\"", 1},
      {"\"\\uD800\"", 1},
      {"\"\\uDC00\"", 1},
      {"\"\\uD800\\u0041\"", 1},
      {"\"\\uD800\\n\"", 1},
      {"\"a\x01\"", 2},
      {"\"a\nb\"", 2},
      {"\"\xc3\"", 1},
      {"\"\xc3(\"", 1},
      {"\"\xc0\xaf\"", 1},
      {"\"\xe0\x80\xaf\"", 1},
      {"\"\xed\xa0\x80\"", 1},
      {"\"\xf4\x90\x80\x80\"", 1},
      {"\"\xff\"", 1},
      {"[\"ok\", \"\x80\"]", 8},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    sk__json_doc *d = (sk__json_doc *)1;
    size_t off = (size_t)-1;
    sk_status s = sk__json_parse("src.json", cases[k].text, strlen(cases[k].text), &d, &off);
    if (s != SK_ERR_FORMAT || off != cases[k].off)
      fprintf(stderr, "case %zu (%s): status %s, offset %zu (want %zu): %s\n", k, cases[k].text,
              sk_status_str(s), off, cases[k].off, sk_last_error());
    CHECK_EQ_INT(s, SK_ERR_FORMAT);
    CHECK(d == NULL);
    CHECK_EQ_INT(off, cases[k].off);
    char want[64];
    snprintf(want, sizeof want, "src.json: byte %zu: ", cases[k].off);
    CHECK(strncmp(sk_last_error(), want, strlen(want)) == 0);
  }
  /* The length given is honoured: bytes after it are not read. */
  sk__json_doc *d;
  CHECK_EQ_INT(sk__json_parse(NULL, "[1]garbage", 3, &d, NULL), SK_OK);
  sk__json_doc_free(d);
  CHECK_EQ_INT(sk__json_parse(NULL, "[1]", 2, &d, NULL), SK_ERR_FORMAT);
  CHECK(strncmp(sk_last_error(), "json: byte 2:", 13) == 0);
}

TEST(depth_cap) {
  char buf[2 * (SK__JSON_MAX_DEPTH + 1) + 1];
  for (int depth = SK__JSON_MAX_DEPTH; depth <= SK__JSON_MAX_DEPTH + 1; depth++) {
    int k = 0;
    for (int i = 0; i < depth; i++) buf[k++] = '[';
    for (int i = 0; i < depth; i++) buf[k++] = ']';
    buf[k] = 0;
    sk__json_doc *d = NULL;
    size_t off = 0;
    sk_status s = sk__json_parse("deep", buf, (size_t)k, &d, &off);
    if (depth <= SK__JSON_MAX_DEPTH) {
      CHECK_OK(s);
      sk__json_doc_free(d);
    } else {
      CHECK_EQ_INT(s, SK_ERR_FORMAT);
      CHECK_EQ_INT(off, SK__JSON_MAX_DEPTH);
      CHECK(strstr(sk_last_error(), "nesting deeper than 64"));
    }
  }
  /* Objects count the same as arrays. */
  char obj[8 * (SK__JSON_MAX_DEPTH + 1) + 8];
  int k = 0;
  for (int i = 0; i <= SK__JSON_MAX_DEPTH; i++) k += sprintf(obj + k, "{\"a\":");
  k += sprintf(obj + k, "1");
  for (int i = 0; i <= SK__JSON_MAX_DEPTH; i++) obj[k++] = '}';
  sk__json_doc *d = NULL;
  CHECK_EQ_INT(sk__json_parse("deep", obj, (size_t)k, &d, NULL), SK_ERR_FORMAT);
}

TEST(large_object_lookup) {
  enum { N = 3000 };
  sk__jbuf b;
  sk__jbuf_init(&b);
  sk__jbuf_raw(&b, "{", 1);
  for (int i = 0; i < N; i++) {
    char key[32];
    int n = snprintf(key, sizeof key, "key%d", (i * 7919) % N);
    if (i) sk__jbuf_raw(&b, ",", 1);
    sk__jbuf_string(&b, key, (size_t)n);
    sk__jbuf_raw(&b, ":", 1);
    sk__jbuf_int(&b, (i * 7919) % N);
  }
  CHECK_OK(sk__jbuf_raw(&b, "}", 1));
  sk__json_doc *d = parse_ok(b.data);
  sk__jbuf_free(&b);
  CHECK(d);
  const sk__json *r = sk__json_root(d);
  CHECK_EQ_INT(sk__json_len(r), N);
  for (int i = 0; i < N; i++) {
    char key[32];
    snprintf(key, sizeof key, "key%d", i);
    int64_t v = -1;
    CHECK(sk__json_int(sk__json_get(r, key), &v));
    CHECK_EQ_INT(v, i);
  }
  CHECK(sk__json_get(r, "key") == NULL && sk__json_get(r, "key30000") == NULL);
  sk__json_doc_free(d);
}

TEST(writer) {
  sk__jbuf b;
  sk__jbuf_init(&b);
  const char raw[] = "q\"b\\n\n\x01\x1f\x7f\xc3\xa9";
  CHECK_OK(sk__jbuf_string(&b, raw, sizeof raw - 1));
  CHECK(strcmp(b.data, "\"q\\\"b\\\\n\\n\\u0001\\u001f\x7f\xc3\xa9\"") == 0);
  sk__jbuf_free(&b);

  sk__jbuf_init(&b);
  sk__jbuf_float(&b, 0.1f);
  sk__jbuf_raw(&b, " ", 1);
  sk__jbuf_double(&b, 1.0 / 3.0);
  sk__jbuf_raw(&b, " ", 1);
  sk__jbuf_int(&b, INT64_MIN);
  sk__jbuf_raw(&b, " ", 1);
  sk__jbuf_float(&b, 3.0f);
  CHECK_OK(sk__jbuf_puts(&b, " ok"));
  CHECK(strcmp(b.data, "0.100000001 0.33333333333333331 -9223372036854775808 3 ok") == 0);
  sk__jbuf_free(&b);

  /* Float and double text reads back to the same value. */
  const float fs[] = {1e-38f, 3.4028235e38f, -1.17549435e-38f, 16777217.0f, 0.3f, 1.4e-45f};
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
    sk__jbuf_init(&b);
    CHECK_OK(sk__jbuf_float(&b, fs[i]));
    CHECK((float)strtod(b.data, NULL) == fs[i]);
    sk__jbuf_free(&b);
  }

  /* Errors are sticky and leave nothing half written. */
  sk__jbuf_init(&b);
  sk__jbuf_puts(&b, "[");
  CHECK_EQ_INT(sk__jbuf_string(&b, "a\xc3", 2), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "invalid UTF-8 at byte 1"));
  CHECK_EQ_INT(sk__jbuf_puts(&b, "x"), SK_ERR_INVALID);
  CHECK(strcmp(b.data, "[") == 0);
  sk__jbuf_free(&b);
  sk__jbuf_init(&b);
  CHECK_EQ_INT(sk__jbuf_float(&b, NAN), SK_ERR_NUMERIC);
  sk__jbuf_free(&b);
  sk__jbuf_init(&b);
  CHECK_EQ_INT(sk__jbuf_double(&b, -INFINITY), SK_ERR_NUMERIC);
  CHECK(b.len == 0);
  sk__jbuf_free(&b);

  size_t bad = 0;
  CHECK(sk__json_utf8_valid("", 0, &bad));
  CHECK(!sk__json_utf8_valid("ab\xe2\x82", 4, &bad) && bad == 2);
}

/* Every allocation failure during a parse or a write is a clean SK_ERR_NOMEM
 * (ASan reports any leak). */
TEST(allocation_failures) {
  sk__jbuf src;
  sk__jbuf_init(&src);
  sk__jbuf_puts(&src, "[");
  for (int i = 0; i < 2000; i++) {
    if (i) sk__jbuf_puts(&src, ",");
    sk__jbuf_puts(&src, "{\"name\":\"a long enough string value\",\"v\":[1,2.5,null]}");
  }
  sk__jbuf_puts(&src, ",\"");
  for (int i = 0; i < 30000; i++) sk__jbuf_puts(&src, "x");
  CHECK_OK(sk__jbuf_puts(&src, "\"]"));
  int k;
  for (k = 0;; k++) {
    sk__json_doc *d = (sk__json_doc *)1;
    sk_debug_fail_alloc_after(k);
    sk_status s = sk__json_parse("big", src.data, src.len, &d, NULL);
    sk_debug_fail_alloc_after(-1);
    if (s == SK_OK) {
      CHECK_EQ_INT(sk__json_len(sk__json_root(d)), 2001);
      sk__json_doc_free(d);
      break;
    }
    CHECK_EQ_INT(s, SK_ERR_NOMEM);
    CHECK(d == NULL);
    CHECK(k < 1000);
  }
  CHECK(k >= 3); /* the document, and several arena chunks */
  for (k = 0;; k++) {
    sk__jbuf b;
    sk__jbuf_init(&b);
    sk__jbuf_puts(&b, "{");
    sk_debug_fail_alloc_after(k);
    for (int i = 0; i < 200; i++) sk__jbuf_string(&b, "abcdefghij", 10);
    sk_status s = sk__jbuf_puts(&b, "}");
    sk_debug_fail_alloc_after(-1);
    sk__jbuf_free(&b);
    if (s == SK_OK) break;
    CHECK_EQ_INT(s, SK_ERR_NOMEM);
    CHECK(k < 100);
  }
  CHECK(k >= 3);
  sk__jbuf_free(&src);
}

TEST_MAIN(TEST_ENTRY(values_and_accessors), TEST_ENTRY(print_round_trip),
          TEST_ENTRY(escapes_and_unicode), TEST_ENTRY(numbers), TEST_ENTRY(malformed_inputs),
          TEST_ENTRY(depth_cap), TEST_ENTRY(large_object_lookup), TEST_ENTRY(writer),
          TEST_ENTRY(allocation_failures))
