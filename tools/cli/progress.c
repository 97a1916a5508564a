/* Progress of a long sampling or likelihood run on stderr: a line redrawn in
 * place on a terminal, a line every 10 s otherwise (a log), none for runs
 * that end within their first second. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *what, const char *unit) {
  p->what = what;
  p->unit = unit;
  p->t0 = p->last = now_s();
  p->tty = isatty(fileno(stderr));
  p->printed = 0;
}

void cli_progress_update(void *ctx, int64_t done, int64_t total) {
  cli_progress *p = ctx;
  const double t = now_s(), el = t - p->t0;
  if (el < 1 || done >= total || total <= 0 || t - p->last < (p->tty ? 0.25 : 10)) return;
  p->last = t;
  const double frac = (double)done / (double)total, left = frac > 0 ? el * (1 - frac) / frac : 0;
  fprintf(stderr, "%s%s: %5.1f%% (%lld of %lld %s), %.0f s elapsed, about %.0f s left%s",
          p->tty ? "\r" : "", p->what, 100 * frac, (long long)done, (long long)total, p->unit, el,
          left, p->tty ? "\033[K" : "\n");
  fflush(stderr);
  p->printed = 1;
}

void cli_progress_end(cli_progress *p) {
  if (p->printed && p->tty) fprintf(stderr, "\r\033[K");
  fflush(stderr);
}
