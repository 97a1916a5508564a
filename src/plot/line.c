/* Line plots of one series against another (a training run's loss against
 * its steps): a rectangular canvas with a grid, tick labels on a linear x
 * axis and a linear or logarithmic y axis, an optional faint series under a
 * strong one, anti-aliased segments, written through sk_png_write. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plot.h"
#include "plot/raster.h"

#include "core/internal.h"

static const rgb FAINT = {0.80f, 0.84f, 0.92f};
static const rgb STRONG = {0.82f, 0.14f, 0.18f};

/* The canvas and the plot rectangle [x0, x1) × [y0, y1) in pixels, with the
 * data range it shows (y in log10 units on a log axis). */
typedef struct lcanvas {
  int w, h;
  float *px; /* (h, w, 3) in [0, 1] */
  int x0, x1, y0, y1;
  double xlo, xhi, ylo, yhi;
  int log_y;
  int scale; /* of the font: 2 from 900 pixels wide */
} lcanvas;

static void blend(lcanvas *c, int x, int y, rgb col, float a) { blend_px(c->px, c->w, c->h, x, y, col, a); }

/* A segment of width w with smoothed edges, clipped to the plot rectangle. */
static void segment(lcanvas *c, float ax, float ay, float bx, float by, float w, rgb col) {
  const int xl = SK_MAX(c->x0, (int)floorf(fminf(ax, bx) - w - 1));
  const int xh = SK_MIN(c->x1, (int)ceilf(fmaxf(ax, bx) + w + 1));
  const int yl = SK_MAX(c->y0, (int)floorf(fminf(ay, by) - w - 1));
  const int yh = SK_MIN(c->y1, (int)ceilf(fmaxf(ay, by) + w + 1));
  const float ux = bx - ax, uy = by - ay, len2 = ux * ux + uy * uy;
  for (int y = yl; y < yh; y++)
    for (int x = xl; x < xh; x++) {
      const float px = x + 0.5f - ax, py = y + 0.5f - ay;
      const float t = len2 > 0 ? clampf((px * ux + py * uy) / len2, 0, 1) : 0;
      const float dx = px - t * ux, dy = py - t * uy;
      const float cov = clampf(0.5f * w + 0.5f - sqrtf(dx * dx + dy * dy), 0, 1);
      if (cov > 0) blend(c, x, y, col, cov);
    }
}

/* 5×7 glyphs for tick labels, one byte per row, bit 4 leftmost. */
static const char GLYPH_CHARS[] = "0123456789-.e+";
static const uint8_t GLYPHS[][7] = {
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e},
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e},
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e},
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c},
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c},
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e}, {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00},
};

/* s with its top-left corner at (x, y), each font pixel scale × scale. */
static void text(lcanvas *c, int x, int y, const char *s) {
  const int k1 = c->scale;
  for (; *s; s++, x += 6 * k1) {
    const char *g = strchr(GLYPH_CHARS, *s);
    if (!g) continue;
    for (int r = 0; r < 7; r++)
      for (int k = 0; k < 5; k++)
        if (GLYPHS[g - GLYPH_CHARS][r] & (0x10 >> k))
          for (int u = 0; u < k1 * k1; u++)
            blend(c, x + k * k1 + u % k1, y + r * k1 + u / k1, LABEL, 1);
  }
}

/* A 1-2-5 step giving about `count` ticks over [lo, hi]. */
static double tick_step(double lo, double hi, int count) {
  const double raw = (hi - lo) / count, e = pow(10, floor(log10(raw))), f = raw / e;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * e;
}

static float to_px(const lcanvas *c, double x) {
  return (float)(c->x0 + (x - c->xlo) / (c->xhi - c->xlo) * (c->x1 - c->x0));
}

/* y in axis units (log10 of the value on a log axis). */
static float to_py(const lcanvas *c, double y) {
  return (float)(c->y1 - (y - c->ylo) / (c->yhi - c->ylo) * (c->y1 - c->y0));
}

static void hline_label(lcanvas *c, double axis_y, double value) {
  const int p = (int)floorf(to_py(c, axis_y));
  if (p < c->y0 || p >= c->y1) return;
  for (int q = c->x0; q < c->x1; q++) blend(c, q, p, GRID, 1);
  char buf[32];
  snprintf(buf, sizeof buf, "%.3g", value);
  text(c, c->x0 - 6 * c->scale * (1 + (int)strlen(buf)), p - 3 * c->scale, buf);
}

/* Grid lines and labels: x at a 1-2-5 step; y at a 1-2-5 step, or on a log
 * axis at the powers of ten (and at 2 and 5 times them when the range spans
 * less than two decades), or, over less than that gives three of, at a 1-2-5
 * step of the values themselves. */
static void grid(lcanvas *c) {
  const double xs = tick_step(c->xlo, c->xhi, 6);
  char buf[32];
  for (double k = ceil(c->xlo / xs - 1e-9); k * xs <= c->xhi * (1 + 1e-12); k++) {
    const int p = (int)floorf(to_px(c, k * xs));
    if (p < c->x0 || p >= c->x1) continue;
    for (int q = c->y0; q < c->y1; q++) blend(c, p, q, GRID, 1);
    snprintf(buf, sizeof buf, "%.6g", k * xs);
    text(c, p - 3 * c->scale * (int)strlen(buf), c->y1 + 6 * c->scale, buf);
  }
  if (!c->log_y) {
    const double ys = tick_step(c->ylo, c->yhi, 5);
    for (double k = ceil(c->ylo / ys - 1e-9); k * ys <= c->yhi + ys * 1e-9; k++)
      hline_label(c, k * ys, fabs(k) < 1e-9 ? 0 : k * ys);
    return;
  }
  const int fine = c->yhi - c->ylo < 2;
  int count = 0;
  for (int pass = 0; pass < 2; pass++)
    for (double e = floor(c->ylo); e <= ceil(c->yhi); e++)
      for (int m = 1; m <= 5; m += fine ? (m == 1 ? 1 : 3) : 9) {
        const double v = m * pow(10, e), a = log10(v);
        if (a < c->ylo || a > c->yhi) continue;
        if (pass) hline_label(c, a, v);
        else count++;
      }
  if (count >= 3) return; /* drawn by the second pass */
  const double lo = pow(10, c->ylo), hi = pow(10, c->yhi), ys = tick_step(lo, hi, 5);
  for (double k = ceil(lo / ys - 1e-9); k * ys <= hi * (1 + 1e-12); k++)
    if (k > 0) hline_label(c, log10(k * ys), k * ys);
}

static void frame(lcanvas *c) {
  for (int q = c->x0; q < c->x1; q++) {
    blend(c, q, c->y0, FRAME, 1);
    blend(c, q, c->y1 - 1, FRAME, 1);
  }
  for (int q = c->y0; q < c->y1; q++) {
    blend(c, c->x0, q, FRAME, 1);
    blend(c, c->x1 - 1, q, FRAME, 1);
  }
}

/* Whether point i can be drawn, and its value on the axis. */
static int drawable(const float *x, const float *y, int64_t i, int log_y, double *ay) {
  if (!isfinite(x[i]) || !isfinite(y[i]) || (log_y && !(y[i] > 0))) return 0;
  *ay = log_y ? log10((double)y[i]) : (double)y[i];
  return 1;
}

/* The series as connected segments; a point that cannot be drawn breaks it. */
static void series(lcanvas *c, const float *x, const float *y, int64_t n, float w, rgb col) {
  int have = 0;
  float px = 0, py = 0;
  for (int64_t i = 0; i < n; i++) {
    double ay;
    if (!drawable(x, y, i, c->log_y, &ay)) {
      have = 0;
      continue;
    }
    const float qx = to_px(c, x[i]), qy = to_py(c, ay);
    if (have) segment(c, px, py, qx, qy, w, col);
    else segment(c, qx, qy, qx, qy, w, col); /* a lone point is a dot */
    px = qx, py = qy, have = 1;
  }
}

sk_status sk_plot_line(const char *path, int width, int height, const float *x, const float *y,
                       const float *y_faint, int64_t n, int log_y) {
  const char *where = path ? path : "sk_plot_line";
  if (!path || !x || !y)
    return sk__fail(SK_ERR_INVALID, "%s: NULL %s", where, !path ? "path" : !x ? "x" : "y");
  if (width < SK_PLOT_LINE_MIN_WIDTH || width > SK_PLOT_MAX_SIZE ||
      height < SK_PLOT_LINE_MIN_HEIGHT || height > SK_PLOT_MAX_SIZE)
    return sk__fail(SK_ERR_INVALID, "%s: plot size %d x %d outside %d..%d x %d..%d", path, width,
                    height, SK_PLOT_LINE_MIN_WIDTH, SK_PLOT_MAX_SIZE, SK_PLOT_LINE_MIN_HEIGHT,
                    SK_PLOT_MAX_SIZE);
  if (n < 1 || n > ((int64_t)1 << 40))
    return sk__fail(SK_ERR_INVALID, "%s: %lld points to draw", path, (long long)n);
  /* The ranges come from the strong series alone: the faint one is drawn
   * under it, clipped (a noisy start would otherwise flatten the curve). */
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  int64_t count = 0;
  for (int64_t i = 0; i < n; i++) {
    double ay;
    if (!drawable(x, y, i, log_y, &ay)) continue;
    count++;
    xlo = fmin(xlo, x[i]), xhi = fmax(xhi, x[i]);
    ylo = fmin(ylo, ay), yhi = fmax(yhi, ay);
  }
  if (count == 0)
    return sk__fail(SK_ERR_INVALID, "%s: none of the %lld points has a finite x and a finite%s y",
                    path, (long long)n, log_y ? ", positive" : "");
  /* A flat or single-point range still gets a height and a width. */
  if (!(xhi > xlo)) xlo -= 0.5, xhi += 0.5;
  if (!(yhi > ylo)) {
    const double pad = log_y ? 0.5 : fmax(0.5 * fabs(ylo), 0.5);
    ylo -= pad, yhi += pad;
  }
  const double ypad = 0.04 * (yhi - ylo);
  lcanvas c = {width, height, NULL, 0, 0, 0, 0, xlo, xhi, ylo - ypad, yhi + ypad, log_y != 0,
               width >= 900 ? 2 : 1};
  c.px = sk__malloc((size_t)width * (size_t)height * 3 * sizeof *c.px);
  if (!c.px)
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for a %d x %d canvas", path, width, height);
  for (size_t i = 0; i < (size_t)width * (size_t)height * 3; i++) c.px[i] = 1.0f;
  /* Room for the widest y label ("%.3g": 9 characters) and the x labels. */
  c.x0 = (9 + 2) * 6 * c.scale;
  c.x1 = width - 24 * c.scale;
  c.y0 = 12 * c.scale;
  c.y1 = height - 20 * c.scale;
  grid(&c);
  if (y_faint) series(&c, x, y_faint, n, 1.0f, FAINT);
  series(&c, x, y, n, 2.0f, STRONG);
  frame(&c);
  const size_t bytes = (size_t)width * (size_t)height * 3;
  uint8_t *out = sk__malloc(bytes);
  if (!out) {
    sk__free(c.px);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %zu pixel bytes", path, bytes);
  }
  for (size_t i = 0; i < bytes; i++) out[i] = (uint8_t)lrintf(clampf(c.px[i], 0, 1) * 255);
  sk__free(c.px);
  const sk_status st = sk_png_write(path, width, height, 3, out);
  sk__free(out);
  return st;
}
