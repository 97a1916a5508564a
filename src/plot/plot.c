/* Raster plots for 2-D experiments: scatter, score fields, grouped samples and
 * image mosaics, drawn on a float RGB canvas with coverage-based anti-aliasing
 * and written through sk_png_write. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plot.h"
#include "plot/raster.h"

#include "io/internal.h"

#define FIELD_MAX_GRID 256
#define GROUPS_MAX 64

typedef struct canvas {
  int size;
  float *px;                  /* (size, size, 3) in [0, 1] */
  float x0, y0, side;         /* plot square in pixels: [x0, x0 + side) x [y0, y0 + side) */
  sk_plot_bounds b;
} canvas;

static const rgb WHITE = {1, 1, 1};
static const rgb AXIS = {0.72f, 0.72f, 0.74f};
static const rgb REF = {0.42f, 0.56f, 0.80f};
static const rgb SAMPLE = {0.82f, 0.14f, 0.18f};

static void blend(canvas *c, int x, int y, rgb col, float a) {
  blend_px(c->px, c->size, c->size, x, y, col, a);
}

/* The pixel range [lo, hi) of the plot square that a shape spanning
 * [a - r, b + r] along one axis touches. */
static void span(float a, float b, float r, float o, float side, int *lo, int *hi) {
  float l = floorf(fminf(a, b) - r - 1), h = ceilf(fmaxf(a, b) + r + 1);
  *lo = (int)fmaxf(l, o);
  *hi = (int)fminf(h, o + side);
}

static void to_pixel(const canvas *c, float x, float y, float *px, float *py) {
  *px = c->x0 + (x - c->b.xmin) / (c->b.xmax - c->b.xmin) * c->side;
  *py = c->y0 + (c->b.ymax - y) / (c->b.ymax - c->b.ymin) * c->side;
}

/* Disc of radius r (pixels) whose edge is smoothed over one pixel, clipped to the plot. */
static void disc(canvas *c, float cx, float cy, float r, rgb col, float alpha) {
  int xl, xh, yl, yh;
  span(cx, cx, r, c->x0, c->side, &xl, &xh);
  span(cy, cy, r, c->y0, c->side, &yl, &yh);
  for (int y = yl; y < yh; y++)
    for (int x = xl; x < xh; x++) {
      float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
      float cov = clampf(r + 0.5f - sqrtf(dx * dx + dy * dy), 0, 1);
      if (cov > 0) blend(c, x, y, col, cov * alpha);
    }
}

/* Segment of width w with smoothed edges, clipped to the plot. */
static void segment(canvas *c, float ax, float ay, float bx, float by, float w, rgb col, float alpha) {
  int xl, xh, yl, yh;
  span(ax, bx, w, c->x0, c->side, &xl, &xh);
  span(ay, by, w, c->y0, c->side, &yl, &yh);
  float ux = bx - ax, uy = by - ay, len2 = ux * ux + uy * uy;
  for (int y = yl; y < yh; y++)
    for (int x = xl; x < xh; x++) {
      float px = x + 0.5f - ax, py = y + 0.5f - ay;
      float t = len2 > 0 ? clampf((px * ux + py * uy) / len2, 0, 1) : 0;
      float dx = px - t * ux, dy = py - t * uy;
      float cov = clampf(0.5f * w + 0.5f - sqrtf(dx * dx + dy * dy), 0, 1);
      if (cov > 0) blend(c, x, y, col, cov * alpha);
    }
}

/* Filled triangle; coverage from the signed distance to the nearest edge. */
static void triangle(canvas *c, const float p[6], rgb col, float alpha) {
  float area = (p[2] - p[0]) * (p[5] - p[1]) - (p[3] - p[1]) * (p[4] - p[0]);
  if (fabsf(area) < 1e-6f) return;
  float sgn = area > 0 ? 1.0f : -1.0f;
  int xl, xh, yl, yh;
  span(fminf(p[0], fminf(p[2], p[4])), fmaxf(p[0], fmaxf(p[2], p[4])), 1, c->x0, c->side, &xl, &xh);
  span(fminf(p[1], fminf(p[3], p[5])), fmaxf(p[1], fmaxf(p[3], p[5])), 1, c->y0, c->side, &yl, &yh);
  for (int y = yl; y < yh; y++)
    for (int x = xl; x < xh; x++) {
      float qx = x + 0.5f, qy = y + 0.5f, dmin = INFINITY;
      for (int e = 0; e < 3; e++) {
        float ax = p[2 * e], ay = p[2 * e + 1], bx = p[(2 * e + 2) % 6], by = p[(2 * e + 3) % 6];
        float ex = bx - ax, ey = by - ay, len = sqrtf(ex * ex + ey * ey);
        float dist = sgn * (ex * (qy - ay) - ey * (qx - ax)) / len;
        dmin = fminf(dmin, dist);
      }
      float cov = clampf(dmin + 0.5f, 0, 1);
      if (cov > 0) blend(c, x, y, col, cov * alpha);
    }
}

/* 5x7 glyphs for tick labels, one byte per row, bit 4 leftmost. */
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

/* Draws s with its top-left corner at (x, y), each font pixel scale x scale. */
static void text(canvas *c, int x, int y, const char *s, int scale, rgb col) {
  for (; *s; s++, x += 6 * scale) {
    const char *g = strchr(GLYPH_CHARS, *s);
    if (!g) continue;
    const uint8_t *rows = GLYPHS[g - GLYPH_CHARS];
    for (int r = 0; r < 7; r++)
      for (int k = 0; k < 5; k++)
        if (rows[r] & (0x10 >> k))
          for (int u = 0; u < scale; u++)
            for (int v = 0; v < scale; v++) blend(c, x + k * scale + v, y + r * scale + u, col, 1);
  }
}

/* A 1-2-5 step giving about five ticks over [lo, hi]. */
static double tick_step(double lo, double hi) {
  double raw = (hi - lo) / 5, e = pow(10, floor(log10(raw))), f = raw / e;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * e;
}

static void tick_label(double v, double step, char *buf, size_t n) {
  int dec = (int)fmax(0, -floor(log10(step) + 1e-9));
  if (fabs(v) < step * 1e-6) v = 0;
  snprintf(buf, n, "%.*f", dec, v);
  if (strlen(buf) > 7) snprintf(buf, n, "%.1e", v);
}

/* Ticks are k * step for k in [*k0, *k1]; integer k keeps them exact. */
static double ticks(double lo, double hi, int64_t *k0, int64_t *k1) {
  double step = tick_step(lo, hi);
  *k0 = (int64_t)ceil(lo / step - 1e-6);
  *k1 = (int64_t)floor(hi / step + 1e-6);
  return step;
}

static int label_width(double lo, double hi, int scale) {
  int64_t k0, k1;
  double step = ticks(lo, hi, &k0, &k1);
  int widest = 0;
  char buf[32];
  for (int64_t k = k0; k <= k1; k++) {
    tick_label((double)k * step, step, buf, sizeof buf);
    widest = SK_MAX(widest, (int)strlen(buf));
  }
  return widest * 6 * scale;
}

/* White canvas with the plot square placed to leave room for tick labels. */
static sk_status canvas_init(canvas *c, const char *path, int size, sk_plot_bounds b) {
  memset(c, 0, sizeof *c);
  if (!path) return sk__fail(SK_ERR_INVALID, "plot: path is NULL");
  if (size < SK_PLOT_MIN_SIZE || size > SK_PLOT_MAX_SIZE)
    return sk__fail(SK_ERR_INVALID, "%s: plot size must be in %d..%d, got %d", path, SK_PLOT_MIN_SIZE,
                    SK_PLOT_MAX_SIZE, size);
  if (!isfinite(b.xmin) || !isfinite(b.xmax) || !isfinite(b.ymin) || !isfinite(b.ymax) ||
      !(b.xmin < b.xmax) || !(b.ymin < b.ymax))
    return sk__fail(SK_ERR_INVALID, "%s: bad plot bounds x [%g, %g], y [%g, %g]", path,
                    (double)b.xmin, (double)b.xmax, (double)b.ymin, (double)b.ymax);
  c->px = sk__malloc((size_t)size * (size_t)size * 3 * sizeof *c->px);
  if (!c->px) return sk__fail(SK_ERR_NOMEM, "%s: out of memory for a %d x %d canvas", path, size, size);
  c->size = size;
  c->b = b;
  for (size_t i = 0; i < (size_t)size * (size_t)size; i++) {
    c->px[3 * i] = WHITE.r;
    c->px[3 * i + 1] = WHITE.g;
    c->px[3 * i + 2] = WHITE.b;
  }
  int scale = size >= 900 ? 2 : 1, pad = 6 * scale;
  int margin = SK_MAX(label_width(b.ymin, b.ymax, scale), 7 * scale) + 2 * pad;
  int right = SK_MAX(pad, label_width(b.xmin, b.xmax, scale) / 2 + scale);
  c->x0 = (float)margin;
  c->y0 = (float)right;
  c->side = (float)(size - margin - right);
  return SK_OK;
}

/* Grid lines at the ticks, the axes through 0 and the labels. */
static void canvas_grid(canvas *c) {
  int scale = c->size >= 900 ? 2 : 1;
  int x0 = (int)c->x0, y0 = (int)c->y0, x1 = x0 + (int)c->side, y1 = y0 + (int)c->side;
  char buf[32];
  for (int axis = 0; axis < 2; axis++) {
    double lo = axis ? c->b.ymin : c->b.xmin, hi = axis ? c->b.ymax : c->b.xmax;
    int64_t k0, k1;
    double step = ticks(lo, hi, &k0, &k1);
    for (int64_t k = k0; k <= k1; k++) {
      double t = (double)k * step;
      float px, py;
      to_pixel(c, (float)t, (float)t, &px, &py);
      int is_zero = k == 0;
      rgb col = is_zero ? AXIS : GRID;
      int p = axis ? (int)floorf(py) : (int)floorf(px);
      p = axis ? SK_MIN(SK_MAX(p, y0), y1 - 1) : SK_MIN(SK_MAX(p, x0), x1 - 1);
      for (int q = axis ? x0 : y0; q < (axis ? x1 : y1); q++)
        blend(c, axis ? q : p, axis ? p : q, col, 1);
      tick_label(t, step, buf, sizeof buf);
      int tw = (int)strlen(buf) * 6 * scale - scale;
      if (axis)
        text(c, x0 - 6 * scale - tw, p - 3 * scale, buf, scale, LABEL);
      else
        text(c, p - tw / 2, y1 + 5 * scale, buf, scale, LABEL);
    }
  }
}

/* The frame goes on last so that dots do not blur it. */
static void canvas_border(canvas *c) {
  int x0 = (int)c->x0, y0 = (int)c->y0, x1 = x0 + (int)c->side, y1 = y0 + (int)c->side;
  for (int q = x0; q < x1; q++) {
    blend(c, q, y0, FRAME, 1);
    blend(c, q, y1 - 1, FRAME, 1);
  }
  for (int q = y0; q < y1; q++) {
    blend(c, x0, q, FRAME, 1);
    blend(c, x1 - 1, q, FRAME, 1);
  }
}

static sk_status canvas_write(canvas *c, const char *path) {
  canvas_border(c);
  size_t n = (size_t)c->size * (size_t)c->size * 3;
  uint8_t *out = sk__malloc(n);
  if (!out) {
    sk__free(c->px);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %zu pixel bytes", path, n);
  }
  for (size_t i = 0; i < n; i++) out[i] = (uint8_t)lrintf(clampf(c->px[i], 0, 1) * 255);
  sk__free(c->px);
  c->px = NULL;
  sk_status st = sk_png_write(path, c->size, c->size, 3, out);
  sk__free(out);
  return st;
}

/* Dot radius and opacity for n points: a lone point is a solid dot; many
 * points get fainter so that overlapping dots build up a density. */
static void dot_style(const canvas *c, int64_t n, float *r, float *alpha) {
  float base = fmaxf(1.0f, c->size / 420.0f);
  *r = n <= 500 ? 1.8f * base : n <= 5000 ? 1.35f * base : base;
  float a = 24.0f / sqrtf((float)(n > 0 ? n : 1));
  *alpha = clampf(a, 0.08f, 0.85f);
}

static void points(canvas *c, const float *p, int64_t n, rgb col, float alpha_scale) {
  float r, alpha;
  dot_style(c, n, &r, &alpha);
  for (int64_t i = 0; i < n; i++) {
    float x = p[2 * i], y = p[2 * i + 1];
    if (!isfinite(x) || !isfinite(y)) continue;
    float px, py;
    to_pixel(c, x, y, &px, &py);
    disc(c, px, py, r, col, alpha * alpha_scale);
  }
}

static sk_status check_points(const char *path, const char *name, const float *p, int64_t n) {
  if (n < 0 || (n > 0 && !p))
    return sk__fail(SK_ERR_INVALID, "%s: %s has %lld points but is %s", path, name, (long long)n,
                    p ? "given" : "NULL");
  if (n > ((int64_t)1 << 40)) return sk__fail(SK_ERR_INVALID, "%s: %lld %s points is too many", path, (long long)n, name);
  return SK_OK;
}

sk_status sk_plot_scatter(const char *path, int size, sk_plot_bounds b, const float *ref,
                          int64_t n_ref, const float *pts, int64_t n_pts) {
  sk_status st;
  const char *where = path ? path : "sk_plot_scatter";
  if ((st = check_points(where, "ref", ref, n_ref)) || (st = check_points(where, "pts", pts, n_pts)))
    return st;
  canvas c;
  if ((st = canvas_init(&c, path, size, b))) return st;
  canvas_grid(&c);
  points(&c, ref, n_ref, REF, 0.9f);
  points(&c, pts, n_pts, SAMPLE, 1.0f);
  return canvas_write(&c, path);
}

void sk_plot_field_points(sk_plot_bounds b, int grid, float *pts) {
  if (!pts || grid < 1) return;
  for (int j = 0; j < grid; j++)
    for (int i = 0; i < grid; i++) {
      pts[2 * ((size_t)j * grid + i)] = b.xmin + (i + 0.5f) * (b.xmax - b.xmin) / grid;
      pts[2 * ((size_t)j * grid + i) + 1] = b.ymin + (j + 0.5f) * (b.ymax - b.ymin) / grid;
    }
}

/* Magnitude colours from calm blue through violet and red to orange; the
 * light end of viridis-like maps would vanish on white. */
static rgb magnitude_colour(float t) {
  static const rgb stops[] = {{0.23f, 0.36f, 0.78f}, {0.47f, 0.26f, 0.72f}, {0.80f, 0.20f, 0.38f},
                              {0.93f, 0.48f, 0.10f}};
  t = clampf(t, 0, 1) * 3;
  int k = (int)fminf(t, 2.0f);
  float f = t - k;
  rgb a = stops[k], z = stops[k + 1];
  return (rgb){a.r + (z.r - a.r) * f, a.g + (z.g - a.g) * f, a.b + (z.b - a.b) * f};
}

sk_status sk_plot_field(const char *path, int size, sk_plot_bounds b, int grid,
                        const float *vectors, const float *ref, int64_t n_ref) {
  sk_status st;
  const char *where = path ? path : "sk_plot_field";
  if ((st = check_points(where, "ref", ref, n_ref))) return st;
  if (grid < 2 || grid > FIELD_MAX_GRID)
    return sk__fail(SK_ERR_INVALID, "%s: field grid must be in 2..%d, got %d", where, FIELD_MAX_GRID, grid);
  if (!vectors) return sk__fail(SK_ERR_INVALID, "%s: vectors is NULL", where);
  canvas c;
  if ((st = canvas_init(&c, path, size, b))) return st;
  canvas_grid(&c);
  points(&c, ref, n_ref, REF, 0.55f);
  int64_t nv = (int64_t)grid * grid;
  double vmax = 0;
  for (int64_t i = 0; i < nv; i++) {
    double m = hypot(vectors[2 * i], vectors[2 * i + 1]);
    if (isfinite(m) && m > vmax) vmax = m;
  }
  float cell = c.side / grid, width = fmaxf(1.1f, size / 420.0f);
  /* log1p(|v|/s) with s = vmax/10: a vector 10x shorter than the longest still
   * gets ~30% of the length instead of 10%. */
  double s = vmax / 10, denom = log1p(vmax / (s > 0 ? s : 1));
  float *grid_pts = sk__malloc((size_t)nv * 2 * sizeof *grid_pts);
  if (!grid_pts) {
    sk__free(c.px);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %lld grid points", where, (long long)nv);
  }
  sk_plot_field_points(b, grid, grid_pts);
  for (int64_t i = 0; i < nv; i++) {
    double vx = vectors[2 * i], vy = vectors[2 * i + 1], m = hypot(vx, vy);
    if (!isfinite(m)) continue;
    float cx, cy;
    to_pixel(&c, grid_pts[2 * i], grid_pts[2 * i + 1], &cx, &cy);
    float t = vmax > 0 ? (float)(log1p(m / s) / denom) : 0;
    rgb col = magnitude_colour(t);
    float len = 0.9f * cell * t;
    if (len < 2.5f) {
      disc(&c, cx, cy, 0.5f * width + 0.3f, col, 0.9f);
      continue;
    }
    /* Direction on screen: scale by pixels per unit on each axis, y down. */
    double dx = vx / (b.xmax - b.xmin), dy = -vy / (b.ymax - b.ymin), dn = hypot(dx, dy);
    float ux = (float)(dx / dn), uy = (float)(dy / dn);
    float tx = cx - 0.5f * len * ux, ty = cy - 0.5f * len * uy;
    float hx = cx + 0.5f * len * ux, hy = cy + 0.5f * len * uy;
    float head = fminf(0.4f * len, fmaxf(3.5f, 0.3f * cell)), half = 0.45f * head + 0.5f * width;
    float bx = hx - head * ux, by = hy - head * uy;
    segment(&c, tx, ty, bx + 0.5f * ux, by + 0.5f * uy, width, col, 0.95f);
    float tri[6] = {hx, hy, bx - half * uy, by + half * ux, bx + half * uy, by - half * ux};
    triangle(&c, tri, col, 0.95f);
  }
  sk__free(grid_pts);
  return canvas_write(&c, path);
}

/* tab10's first ten, then hues spaced by the golden angle. */
static rgb group_colour(int g) {
  static const uint8_t tab[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                     {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                                     {188, 189, 34},  {23, 190, 207}};
  if (g < 10) return (rgb){tab[g][0] / 255.0f, tab[g][1] / 255.0f, tab[g][2] / 255.0f};
  float h = fmodf(g * 0.618034f, 1.0f) * 6, f = h - floorf(h), v = 0.8f, s = 0.75f;
  float p = v * (1 - s), q = v * (1 - s * f), u = v * (1 - s * (1 - f));
  switch ((int)h % 6) {
    case 0: return (rgb){v, u, p};
    case 1: return (rgb){q, v, p};
    case 2: return (rgb){p, v, u};
    case 3: return (rgb){p, q, v};
    case 4: return (rgb){u, p, v};
    default: return (rgb){v, p, q};
  }
}

sk_status sk_plot_groups(const char *path, int size, sk_plot_bounds b, const float *ref,
                         int64_t n_ref, int n_groups, const float *const *groups,
                         const int64_t *counts) {
  sk_status st;
  const char *where = path ? path : "sk_plot_groups";
  if ((st = check_points(where, "ref", ref, n_ref))) return st;
  if (n_groups < 1 || n_groups > GROUPS_MAX)
    return sk__fail(SK_ERR_INVALID, "%s: n_groups must be in 1..%d, got %d", where, GROUPS_MAX, n_groups);
  if (!groups || !counts) return sk__fail(SK_ERR_INVALID, "%s: %s is NULL", where, groups ? "counts" : "groups");
  char name[32];
  for (int g = 0; g < n_groups; g++) {
    snprintf(name, sizeof name, "group %d", g);
    if ((st = check_points(where, name, groups[g], counts[g]))) return st;
  }
  canvas c;
  if ((st = canvas_init(&c, path, size, b))) return st;
  canvas_grid(&c);
  points(&c, ref, n_ref, REF, 0.6f);
  for (int g = 0; g < n_groups; g++) points(&c, groups[g], counts[g], group_colour(g), 1.0f);
  return canvas_write(&c, path);
}

sk_status sk_image_grid(const char *path, const float *images, int n, int c, int h, int w, int cols) {
  const char *where = path ? path : "sk_image_grid";
  if (!path) return sk__fail(SK_ERR_INVALID, "sk_image_grid: path is NULL");
  if (n < 1 || (c != 1 && c != 3) || h < 1 || w < 1)
    return sk__fail(SK_ERR_INVALID, "%s: need n >= 1, c in {1, 3}, h, w >= 1; got n %d c %d h %d w %d",
                    where, n, c, h, w);
  if (!images) return sk__fail(SK_ERR_INVALID, "%s: images is NULL", where);
  if (cols <= 0) cols = (int)ceil(sqrt((double)n));
  if (cols > n) cols = n;
  int rows = (n + cols - 1) / cols;
  const int border = 2;
  int64_t W = (int64_t)cols * (w + border) + border, H = (int64_t)rows * (h + border) + border;
  if (W > 32768 || H > 32768)
    return sk__fail(SK_ERR_INVALID, "%s: a %d x %d grid of %d x %d images is %lld x %lld pixels, over 32768",
                    where, rows, cols, h, w, (long long)H, (long long)W);
  size_t bytes = (size_t)W * (size_t)H * (size_t)c;
  uint8_t *out = sk__malloc(bytes);
  if (!out) return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %zu pixel bytes", where, bytes);
  memset(out, 48, bytes);
  size_t plane = (size_t)h * (size_t)w;
  for (int i = 0; i < n; i++) {
    const float *img = images + (size_t)i * c * plane;
    size_t ox = (size_t)(i % cols) * (size_t)(w + border) + border;
    size_t oy = (size_t)(i / cols) * (size_t)(h + border) + border;
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        for (int ch = 0; ch < c; ch++) {
          float v = img[(size_t)ch * plane + (size_t)y * w + x];
          v = v > 0 ? (v < 1 ? v : 1) : 0; /* NaN lands on 0 */
          out[((oy + y) * (size_t)W + ox + x) * c + ch] = (uint8_t)lrintf(v * 255);
        }
  }
  sk_status st = sk_png_write(path, (int)W, (int)H, c, out);
  sk__free(out);
  return st;
}

sk_plot_bounds sk_plot_auto_bounds(const float *pts, int64_t n) {
  float xl = INFINITY, xh = -INFINITY, yl = INFINITY, yh = -INFINITY;
  for (int64_t i = 0; pts && i < n; i++) {
    float x = pts[2 * i], y = pts[2 * i + 1];
    if (!isfinite(x) || !isfinite(y)) continue;
    xl = fminf(xl, x);
    xh = fmaxf(xh, x);
    yl = fminf(yl, y);
    yh = fmaxf(yh, y);
  }
  if (!(xl <= xh)) return (sk_plot_bounds){-1, 1, -1, 1};
  double cx = 0.5 * ((double)xl + xh), cy = 0.5 * ((double)yl + yh);
  double half = 0.5 * fmax((double)xh - xl, (double)yh - yl) * 1.1;
  if (!(half > 0)) half = fmax(1e-3, 0.05 * fmax(fabs(cx), fabs(cy)));
  return (sk_plot_bounds){(float)(cx - half), (float)(cx + half), (float)(cy - half), (float)(cy + half)};
}
