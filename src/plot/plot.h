/* scorekit pictures: a PNG writer (on zlib) and raster plots of 2-D samples,
 * score fields and image batches, each file written atomically. This is the
 * scorekit_plot library, beside the library proper: pictures are a concern of
 * the command-line program and the tests, which link it; libscorekit neither
 * contains it nor needs zlib. */
#ifndef SCOREKIT_PLOT_H
#define SCOREKIT_PLOT_H

#include "scorekit/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes pixels (height, width, channels) row-major, 8 bits per sample, as a
 * PNG: channels 3 is RGB, 1 is grey. 1 <= width, height <= 32768. The file
 * appears whole or not at all (SK_ERR_IO, SK_ERR_NOMEM leave no file). */
SK_API sk_status sk_png_write(const char *path, int width, int height, int channels,
                              const uint8_t *pixels);

/* A data-space rectangle; y grows upward in every plot. */
typedef struct sk_plot_bounds {
  float xmin, xmax, ymin, ymax;
} sk_plot_bounds;

/* A square rectangle covering the finite points of pts (n, 2) with a 5%
 * margin on each side, centred on their bounding box; [-1, 1]^2 when there
 * are none. */
SK_API sk_plot_bounds sk_plot_auto_bounds(const float *pts, int64_t n);

/* The side of a plot in pixels: its float canvas takes 12 bytes a pixel
 * (200 MB at the largest). */
#define SK_PLOT_MIN_SIZE 64
#define SK_PLOT_MAX_SIZE 4096

/* Scatter plot of size x size pixels (SK_PLOT_MIN_SIZE <= size <=
 * SK_PLOT_MAX_SIZE, else SK_ERR_INVALID) with a white
 * background, light grid and tick labels: `ref` (n_ref, 2), e.g. the data, in
 * light grey-blue under `pts` (n_pts, 2), e.g. samples, in a strong colour.
 * Dots are anti-aliased and alpha-blended with an opacity that falls with the
 * number of points, so density shows. Either set may be NULL with count 0;
 * non-finite points are skipped, points outside b are clipped. Needs
 * xmin < xmax, ymin < ymax, all finite (SK_ERR_INVALID). */
SK_API sk_status sk_plot_scatter(const char *path, int size, sk_plot_bounds b, const float *ref,
                                 int64_t n_ref, const float *pts, int64_t n_pts);

/* Vector field on a grid x grid lattice (2 <= grid <= 256) over b, with
 * `ref` points underneath as in sk_plot_scatter. vectors (grid*grid, 2) are
 * given at the points of sk_plot_field_points (row-major, y from ymin upward,
 * x fastest) and drawn as arrows centred on their point, coloured by
 * magnitude; lengths are log-compressed (small vectors stay visible) and
 * scaled so the longest spans one cell. Non-finite vectors are skipped. */
SK_API sk_status sk_plot_field(const char *path, int size, sk_plot_bounds b, int grid,
                               const float *vectors, const float *ref, int64_t n_ref);

/* Writes the grid*grid lattice points (grid*grid, 2) matching sk_plot_field
 * into pts (caller-owned, grid*grid*2 floats): cell centres,
 * x_i = xmin + (i + 1/2)(xmax - xmin)/grid, row j has y_j likewise.
 * Does nothing when pts is NULL or grid < 1. */
SK_API void sk_plot_field_points(sk_plot_bounds b, int grid, float *pts);

/* Tiles n images (n, c, h, w), NCHW with c 1 (grey) or 3 (RGB), values
 * clamped to [0, 1] (NaN as 0), in `cols` columns (cols <= 0: ceil(sqrt n))
 * separated by a 2-pixel dark border, and writes the mosaic as a PNG. */
SK_API sk_status sk_image_grid(const char *path, const float *images, int n, int c, int h, int w,
                               int cols);

/* Scatter plot of n_groups (1..64) point sets in distinct colours, e.g.
 * guided samples per class, over optional `ref` points as in sk_plot_scatter.
 * groups[g] is (counts[g], 2); a group may be NULL with count 0. */
SK_API sk_status sk_plot_groups(const char *path, int size, sk_plot_bounds b, const float *ref,
                                int64_t n_ref, int n_groups, const float *const *groups,
                                const int64_t *counts);

/* Line plot, width x height pixels (SK_PLOT_LINE_MIN_WIDTH..SK_PLOT_MAX_SIZE
 * wide, SK_PLOT_LINE_MIN_HEIGHT..SK_PLOT_MAX_SIZE high), e.g. a loss curve:
 * y (n) against x (n) as a strong line over `y_faint` (n, may be NULL) as a
 * faint one, on a white background with a light grid and tick labels. The
 * axes' ranges are those of the strong series (the faint one is clipped).
 * log_y: a logarithmic y axis (ticks at powers of ten, and at 2 and 5 times
 * them over less than two decades). A point whose x or y is not finite, or
 * whose y is not positive on a log axis, is skipped and breaks the line.
 * SK_ERR_INVALID (nothing written) for a bad size, NULL arrays, n < 1 or no
 * point that can be drawn (all NaN, or none positive on a log axis). */
#define SK_PLOT_LINE_MIN_WIDTH 160
#define SK_PLOT_LINE_MIN_HEIGHT 96
SK_API sk_status sk_plot_line(const char *path, int width, int height, const float *x,
                              const float *y, const float *y_faint, int64_t n, int log_y);

/* ---- grids of grey images (grid.c) ---- */

/* How sk_plot_image_grid lays images out. */
typedef struct sk_image_grid_layout {
  int rows, cols;       /* cells, 1..4096 each */
  float lo, hi;         /* values map linearly to grey, lo black and hi white,
                           clipped (NaN as lo); finite, lo < hi */
  int upscale;          /* each pixel drawn as an upscale × upscale square, 1..32 */
  const int64_t *cells; /* rows·cols image indices in row-major cell order, -1
                           for an empty cell; NULL: image i in cell i, the cells
                           past n empty */
} sk_image_grid_layout;

/* The separator between cells and around the grid (1 pixel, whatever the
 * upscale) and the fill of an empty cell. */
#define SK_GRID_SEPARATOR 128
#define SK_GRID_EMPTY 64

/* Writes a PNG of one-channel images (n, h, w) in a rows × cols grid: image
 * at cell (r, c) has its pixel (y, x) at rows 1 + r·(h·upscale + 1) +
 * y·upscale ... and columns 1 + c·(w·upscale + 1) + x·upscale ..., of grey
 * round(255 (v − lo)/(hi − lo)) clipped to 0..255. SK_ERR_INVALID for a
 * layout outside its ranges, a cell index outside -1..n-1, or a picture
 * above 32768 pixels a side; the file is written atomically. */
SK_API sk_status sk_plot_image_grid(const char *path, const float *images, int64_t n, int h, int w,
                                    const sk_image_grid_layout *layout);

#ifdef __cplusplus
}
#endif
#endif
