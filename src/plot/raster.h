/* What the plots (plot.c, line.c) draw with: colours, and the coverage-
 * weighted blend of one pixel of a float RGB canvas. */
#ifndef SK_PLOT_RASTER_H
#define SK_PLOT_RASTER_H

#include <stddef.h>

typedef struct rgb {
  float r, g, b;
} rgb;

static const rgb GRID = {0.915f, 0.915f, 0.925f};
static const rgb FRAME = {0.55f, 0.55f, 0.57f};
static const rgb LABEL = {0.30f, 0.30f, 0.32f};

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Pixel (x, y) of a w × h canvas px (h, w, 3) moved towards col by the
 * coverage a (at most 1); nothing outside the canvas or for a ≤ 0. */
static inline void blend_px(float *px, int w, int h, int x, int y, rgb col, float a) {
  if (x < 0 || y < 0 || x >= w || y >= h || !(a > 0)) return;
  float *p = px + ((size_t)y * (size_t)w + (size_t)x) * 3;
  a = a > 1 ? 1 : a;
  p[0] += (col.r - p[0]) * a;
  p[1] += (col.g - p[1]) * a;
  p[2] += (col.b - p[2]) * a;
}

#endif
