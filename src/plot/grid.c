/* Grids of grey images (samples, classes, trajectories) as PNG: each value
 * mapped from [lo, hi] to 0..255, each pixel an upscale × upscale square,
 * cells separated by one-pixel lines. */
#include <math.h>
#include <string.h>

#include "plot.h"

#include "core/internal.h"

#define GRID_MAX_CELLS 4096
#define GRID_MAX_UPSCALE 32
#define GRID_MAX_SIDE 32768

static uint8_t grey(float v, float lo, float hi) {
  const float t = (v - lo) / (hi - lo) * 255.0f;
  if (!(t > 0)) return 0; /* NaN lands on black, as lo does */
  return t >= 255.0f ? 255 : (uint8_t)lrintf(t);
}

static sk_status check_layout(const char *where, int64_t n, int h, int w,
                              const sk_image_grid_layout *g) {
  if (!g) return sk__fail(SK_ERR_INVALID, "%s: layout is NULL", where);
  if (n < 0 || h < 1 || w < 1)
    return sk__fail(SK_ERR_INVALID, "%s: need n >= 0 and h, w >= 1; got n %lld, h %d, w %d", where,
                    (long long)n, h, w);
  if (g->rows < 1 || g->rows > GRID_MAX_CELLS || g->cols < 1 || g->cols > GRID_MAX_CELLS)
    return sk__fail(SK_ERR_INVALID, "%s: %d x %d cells, need 1..%d each", where, g->rows, g->cols,
                    GRID_MAX_CELLS);
  if (g->upscale < 1 || g->upscale > GRID_MAX_UPSCALE)
    return sk__fail(SK_ERR_INVALID, "%s: upscale %d outside 1..%d", where, g->upscale,
                    GRID_MAX_UPSCALE);
  if (!isfinite(g->lo) || !isfinite(g->hi) || !(g->lo < g->hi))
    return sk__fail(SK_ERR_INVALID, "%s: value range [%g, %g] is not finite and increasing", where,
                    (double)g->lo, (double)g->hi);
  const int64_t cells = (int64_t)g->rows * g->cols;
  for (int64_t i = 0; g->cells && i < cells; i++)
    if (g->cells[i] < -1 || g->cells[i] >= n)
      return sk__fail(SK_ERR_INVALID, "%s: cell %lld holds image %lld, outside -1..%lld", where,
                      (long long)i, (long long)g->cells[i], (long long)n - 1);
  return SK_OK;
}

sk_status sk_plot_image_grid(const char *path, const float *images, int64_t n, int h, int w,
                             const sk_image_grid_layout *g) {
  if (!path) return sk__fail(SK_ERR_INVALID, "sk_plot_image_grid: path is NULL");
  sk_status st = check_layout(path, n, h, w, g);
  if (st != SK_OK) return st;
  if (n > 0 && !images) return sk__fail(SK_ERR_INVALID, "%s: images is NULL", path);
  const int64_t ch = (int64_t)h * g->upscale, cw = (int64_t)w * g->upscale;
  const int64_t H = g->rows * (ch + 1) + 1, W = g->cols * (cw + 1) + 1;
  if (H > GRID_MAX_SIDE || W > GRID_MAX_SIDE)
    return sk__fail(SK_ERR_INVALID,
                    "%s: %d x %d cells of %d x %d pixels (upscale %d) make %lld x %lld, over %d",
                    path, g->rows, g->cols, h, w, g->upscale, (long long)H, (long long)W,
                    GRID_MAX_SIDE);
  uint8_t *px = sk__malloc((size_t)(H * W));
  if (!px) return sk__fail(SK_ERR_NOMEM, "%s: out of memory for %lld pixels", path, (long long)(H * W));
  memset(px, SK_GRID_SEPARATOR, (size_t)(H * W));
  const size_t plane = (size_t)h * (size_t)w;
  for (int r = 0; r < g->rows; r++)
    for (int c = 0; c < g->cols; c++) {
      const int64_t cell = (int64_t)r * g->cols + c;
      const int64_t i = g->cells ? g->cells[cell] : cell < n ? cell : -1;
      const int64_t y0 = 1 + r * (ch + 1), x0 = 1 + c * (cw + 1);
      for (int64_t y = 0; y < ch; y++) {
        uint8_t *row = px + (size_t)((y0 + y) * W + x0);
        if (i < 0) {
          memset(row, SK_GRID_EMPTY, (size_t)cw);
          continue;
        }
        const float *src = images + (size_t)i * plane + (size_t)(y / g->upscale) * (size_t)w;
        for (int64_t x = 0; x < cw; x++) row[x] = grey(src[x / g->upscale], g->lo, g->hi);
      }
    }
  st = sk_png_write(path, (int)W, (int)H, 1, px);
  sk__free(px);
  return st;
}
