/* Status strings and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>

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

sk_status sk_set_error(sk_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sk_errbuf, sizeof sk_errbuf, fmt, ap);
  va_end(ap);
  return s;
}
