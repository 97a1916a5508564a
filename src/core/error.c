/* Status strings and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

static _Thread_local char sk_errbuf[512];

const char *sk_status_str(sk_status s) {
  switch (s) {
#define SK__STATUS_CASE(name, msg) \
  case SK_##name:                  \
    return msg;
    SK_STATUS_MAP(SK__STATUS_CASE)
#undef SK__STATUS_CASE
  default:
    return "unknown status";
  }
}

const char *sk_last_error(void) { return sk_errbuf; }

/* The message is one line whatever it quotes (a key or name read from a
 * file may hold any byte): control characters are written as \n, \r, \t
 * or \xHH. */
sk_status sk_set_error(sk_status s, const char *fmt, ...) {
  char raw[sizeof sk_errbuf];
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
  } else {
    snprintf(raw, sizeof raw, "sk_set_error: NULL format (status: %s)", sk_status_str(s));
  }
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
    const unsigned char c = *p;
    char esc[4] = {'\\', 0, 0, 0};
    size_t n = 1;
    if (c == '\n' || c == '\r' || c == '\t') {
      esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
      n = 2;
    } else if (c < 0x20 || c == 0x7f) {
      esc[1] = 'x';
      esc[2] = hex[c >> 4];
      esc[3] = hex[c & 15];
      n = 4;
    } else {
      esc[0] = (char)c;
    }
    if (o + n >= sizeof sk_errbuf) break;
    memcpy(sk_errbuf + o, esc, n);
    o += n;
  }
  sk_errbuf[o] = 0;
  return s;
}

void sk__shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t k = (size_t)snprintf(buf, cap, "(");
  for (int i = 0; i < ndim && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, ")");
}
