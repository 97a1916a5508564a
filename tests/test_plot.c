/* The PNG writer, checked by an independent decoder in this file (chunk CRCs,
 * zlib, all five filters), and the plots drawn through it. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "plot.h"
#include "scorekit/rng.h"
#include "scorekit/scorekit.h"
#include "test.h"

typedef struct png_image {
  int w, h, ch;
  uint8_t *px;        /* (h, w, ch) */
  int filters[5];     /* how many rows used each filter type */
} png_image;

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Decodes an 8-bit grey/RGB non-interlaced PNG; returns 0 and prints why on
 * any defect (bad signature, CRC, chunk order, zlib stream, filter type). */
static int png_decode(const char *path, png_image *im) {
  memset(im, 0, sizeof *im);
  FILE *f = fopen(path, "rb");
  if (!f) return fprintf(stderr, "cannot open %s\n", path), 0;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc((size_t)len);
  size_t got = fread(buf, 1, (size_t)len, f);
  fclose(f);
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  int ok = 0, seen_end = 0, nchunk = 0;
  uint8_t *idat = NULL;
  size_t idat_len = 0;
  if (got != (size_t)len || len < 8 || memcmp(buf, sig, 8) != 0) {
    fprintf(stderr, "%s: bad signature\n", path);
    goto done;
  }
  for (size_t off = 8; off < (size_t)len; nchunk++) {
    if (off + 12 > (size_t)len) goto truncated;
    uint32_t clen = be32(buf + off);
    if (off + 12 + clen > (size_t)len) goto truncated;
    const uint8_t *type = buf + off + 4, *data = buf + off + 8;
    uint32_t crc = (uint32_t)crc32(crc32(0, type, 4), data, clen);
    if (crc != be32(data + clen)) {
      fprintf(stderr, "%s: CRC mismatch in chunk %.4s\n", path, (const char *)type);
      goto done;
    }
    if (nchunk == 0 && memcmp(type, "IHDR", 4) != 0) {
      fprintf(stderr, "%s: first chunk is not IHDR\n", path);
      goto done;
    }
    if (!memcmp(type, "IHDR", 4)) {
      if (clen != 13 || data[8] != 8 || (data[9] != 0 && data[9] != 2) || data[10] || data[11] || data[12]) {
        fprintf(stderr, "%s: unexpected IHDR\n", path);
        goto done;
      }
      im->w = (int)be32(data);
      im->h = (int)be32(data + 4);
      im->ch = data[9] == 2 ? 3 : 1;
    } else if (!memcmp(type, "IDAT", 4)) {
      idat = realloc(idat, idat_len + clen + 1);
      memcpy(idat + idat_len, data, clen);
      idat_len += clen;
    } else if (!memcmp(type, "IEND", 4)) {
      seen_end = 1;
      if (off + 12 + clen != (size_t)len) fprintf(stderr, "%s: data after IEND\n", path);
      else ok = 1;
      break;
    }
    off += 12 + clen;
  }
  if (!seen_end) {
  truncated:
    fprintf(stderr, "%s: truncated\n", path);
    ok = 0;
    goto done;
  }
  if (!ok) goto done;
  ok = 0;
  size_t stride = (size_t)im->w * im->ch;
  uLongf raw_len = (uLongf)((stride + 1) * im->h);
  uint8_t *raw = malloc(raw_len + 1);
  uLongf out_len = raw_len + 1;
  if (uncompress(raw, &out_len, idat, idat_len) != Z_OK || out_len != raw_len) {
    fprintf(stderr, "%s: zlib stream bad or wrong size (%lu vs %lu)\n", path, (unsigned long)out_len,
            (unsigned long)raw_len);
    free(raw);
    goto done;
  }
  im->px = malloc(stride * im->h);
  for (int y = 0; y < im->h; y++) {
    int ft = raw[(stride + 1) * y];
    if (ft > 4) {
      fprintf(stderr, "%s: row %d has filter type %d\n", path, y, ft);
      free(raw);
      goto done;
    }
    im->filters[ft]++;
    const uint8_t *in = raw + (stride + 1) * y + 1;
    uint8_t *cur = im->px + stride * y, *prev = y ? cur - stride : NULL;
    for (size_t i = 0; i < stride; i++) {
      int a = i >= (size_t)im->ch ? cur[i - im->ch] : 0, b = prev ? prev[i] : 0;
      int c = prev && i >= (size_t)im->ch ? prev[i - im->ch] : 0, pred = 0;
      if (ft == 1) pred = a;
      if (ft == 2) pred = b;
      if (ft == 3) pred = (a + b) / 2;
      if (ft == 4) {
        int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      cur[i] = (uint8_t)(in[i] + pred);
    }
  }
  free(raw);
  ok = 1;
done:
  free(idat);
  free(buf);
  if (!ok) {
    free(im->px);
    im->px = NULL;
  }
  return ok;
}

static char tmpdir[64];

/* Removes the pictures unless SK_KEEP_PLOTS is set (to look at them). */
static void remove_tmpdir(void) {
  if (getenv("SK_KEEP_PLOTS")) {
    printf("pictures kept in %s\n", tmpdir);
    return;
  }
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  char p[512];
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') {
      snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
      unlink(p);
    }
  if (d) closedir(d);
  rmdir(tmpdir);
}

static const char *tmp_path(const char *name) {
  static char p[128];
  if (!tmpdir[0]) {
    strcpy(tmpdir, "/tmp/sk_test_plot_XXXXXX");
    if (!mkdtemp(tmpdir)) abort();
    atexit(remove_tmpdir);
  }
  snprintf(p, sizeof p, "%s/%s", tmpdir, name);
  return p;
}

/* Names in the temp directory, to spot leftover temporary files. */
static int dir_entries(char names[][256], int max) {
  DIR *d = opendir(tmpdir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.' && n < max) snprintf(names[n++], 256, "%s", e->d_name);
  if (d) closedir(d);
  return n;
}

static int no_temp_files(void) {
  char names[64][256];
  int n = dir_entries(names, 64);
  for (int i = 0; i < n; i++)
    if (strstr(names[i], ".tmp.")) return fprintf(stderr, "leftover %s\n", names[i]), 0;
  return 1;
}

TEST(png_roundtrip_exact) {
  /* Content that favours different filters on different rows: flat, ramps,
   * vertical repeats and noise. */
  enum { W = 37, H = 23 };
  uint8_t rgb[H * W * 3], grey[H * W];
  sk_rng r = sk_rng_make(3, 0);
  float u[W * 3];
  for (int y = 0; y < H; y++) {
    sk_rng_uniform(&r, u, W * 3);
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++) {
        int v = y < 4 ? 200 : y < 9 ? 7 * x + 40 * c : y < 15 ? 3 * y + c : (int)(u[3 * x + c] * 256);
        rgb[(y * W + x) * 3 + c] = (uint8_t)v;
      }
    for (int x = 0; x < W; x++) grey[y * W + x] = (uint8_t)(y % 5 == 0 ? x * x : (x + y) * 11 + (y > 17) * (int)(u[x] * 50));
  }
  png_image im;
  CHECK_OK(sk_png_write(tmp_path("rgb.png"), W, H, 3, rgb));
  CHECK(png_decode(tmp_path("rgb.png"), &im));
  CHECK(im.w == W && im.h == H && im.ch == 3);
  CHECK(memcmp(im.px, rgb, sizeof rgb) == 0);
  int kinds = 0;
  for (int k = 0; k < 5; k++) kinds += im.filters[k] > 0;
  printf("  filters used per row type: %d %d %d %d %d\n", im.filters[0], im.filters[1], im.filters[2],
         im.filters[3], im.filters[4]);
  CHECK(kinds >= 2);
  free(im.px);
  CHECK_OK(sk_png_write(tmp_path("grey.png"), W, H, 1, grey));
  CHECK(png_decode(tmp_path("grey.png"), &im));
  CHECK(im.w == W && im.h == H && im.ch == 1);
  CHECK(memcmp(im.px, grey, sizeof grey) == 0);
  free(im.px);
  /* One pixel, and overwriting an existing file. */
  const uint8_t one[3] = {1, 2, 3};
  CHECK_OK(sk_png_write(tmp_path("grey.png"), 1, 1, 3, one));
  CHECK(png_decode(tmp_path("grey.png"), &im));
  CHECK(im.w == 1 && im.h == 1 && im.ch == 3 && memcmp(im.px, one, 3) == 0);
  free(im.px);
  CHECK(no_temp_files());
}

TEST(png_bad_arguments_and_io) {
  uint8_t px[12] = {0};
  CHECK_EQ_INT(sk_png_write(tmp_path("bad.png"), 0, 2, 3, px), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_png_write(tmp_path("bad.png"), 2, 2, 2, px), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "channels"));
  CHECK_EQ_INT(sk_png_write(tmp_path("bad.png"), 40000, 1, 1, px), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_png_write(tmp_path("bad.png"), 2, 2, 3, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_png_write(NULL, 2, 2, 3, px), SK_ERR_INVALID);
  CHECK(access(tmp_path("bad.png"), F_OK) != 0);
  CHECK_EQ_INT(sk_png_write("/nonexistent-dir-sk/x.png", 2, 2, 3, px), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "/nonexistent-dir-sk/x.png"));
}

/* Each allocation failing in turn gives SK_ERR_NOMEM and no file at all; the
 * old file survives a failed overwrite. */
TEST(allocation_failures_leave_no_file) {
  float pts[6] = {0, 0, 0.5f, 0.5f, -0.5f, 0.2f};
  sk_plot_bounds b = {-1, 1, -1, 1};
  int k;
  for (k = 0; k < 50; k++) {
    sk_debug_fail_alloc_after(k);
    sk_status st = sk_plot_scatter(tmp_path("oom.png"), 64, b, pts, 3, pts, 3);
    sk_debug_fail_alloc_after(-1);
    if (st == SK_OK) break;
    CHECK_EQ_INT(st, SK_ERR_NOMEM);
    CHECK(access(tmp_path("oom.png"), F_OK) != 0);
    CHECK(no_temp_files());
  }
  CHECK(k > 3 && k < 50);
  struct stat s0, s1;
  CHECK(stat(tmp_path("oom.png"), &s0) == 0);
  sk_debug_fail_alloc_after(1);
  sk_status st = sk_plot_scatter(tmp_path("oom.png"), 128, b, pts, 3, pts, 3);
  sk_debug_fail_alloc_after(-1);
  CHECK_EQ_INT(st, SK_ERR_NOMEM);
  CHECK(stat(tmp_path("oom.png"), &s1) == 0 && s1.st_size == s0.st_size);
  png_image im;
  CHECK(png_decode(tmp_path("oom.png"), &im) && im.w == 64);
  free(im.px);
}

static int is_white(const uint8_t *p) { return p[0] == 255 && p[1] == 255 && p[2] == 255; }

/* Centroid of pixels closer than tol (sum of abs) to colour c; -1 when none. */
static int find_colour(const png_image *im, const uint8_t c[3], int tol, double *cx, double *cy) {
  double sx = 0, sy = 0;
  int n = 0;
  for (int y = 0; y < im->h; y++)
    for (int x = 0; x < im->w; x++) {
      const uint8_t *p = im->px + ((size_t)y * im->w + x) * 3;
      if (abs(p[0] - c[0]) + abs(p[1] - c[1]) + abs(p[2] - c[2]) <= tol) {
        sx += x;
        sy += y;
        n++;
      }
    }
  if (n) {
    *cx = sx / n;
    *cy = sy / n;
  }
  return n;
}

TEST(scatter_places_points) {
  sk_plot_bounds b = {-1, 1, -1, 1};
  const float left[2] = {-0.5f, 0}, upper_right[2] = {0.5f, 0.5f};
  const uint8_t red[3] = {209, 36, 46}; /* the sample colour at full opacity */
  double x0, y0, x1, y1;
  png_image im;
  CHECK_OK(sk_plot_scatter(tmp_path("s0.png"), 200, b, NULL, 0, left, 1));
  CHECK(png_decode(tmp_path("s0.png"), &im) && im.w == 200 && im.h == 200 && im.ch == 3);
  CHECK(is_white(im.px));
  CHECK(find_colour(&im, red, 90, &x0, &y0) > 0);
  free(im.px);
  CHECK_OK(sk_plot_scatter(tmp_path("s1.png"), 200, b, NULL, 0, upper_right, 1));
  CHECK(png_decode(tmp_path("s1.png"), &im));
  CHECK(find_colour(&im, red, 90, &x1, &y1) > 0);
  free(im.px);
  /* Equal axes scale: 1 unit right and 0.5 up is twice as far across as up. */
  CHECK(x1 - x0 > 50 && y0 - y1 > 25);
  CHECK_NEAR((x1 - x0) / (y0 - y1), 2.0, 0.1);
}

static float *mixture8(int n, uint64_t seed) {
  float *p = malloc((size_t)n * 2 * sizeof *p), *z = malloc((size_t)n * 2 * sizeof *z);
  sk_rng r = sk_rng_make(seed, 0);
  sk_rng_normal(&r, z, (size_t)n * 2);
  for (int i = 0; i < n; i++) {
    double a = (i % 8) * 3.14159265358979 / 4;
    p[2 * i] = (float)(4 * cos(a) + 0.3 * z[2 * i]);
    p[2 * i + 1] = (float)(4 * sin(a) + 0.3 * z[2 * i + 1]);
  }
  free(z);
  return p;
}

TEST(scatter_mixture_picture) {
  float *data = mixture8(4000, 1), *samples = mixture8(2000, 2);
  sk_plot_bounds b = sk_plot_auto_bounds(data, 4000);
  CHECK_OK(sk_plot_scatter(tmp_path("mixture.png"), 400, b, data, 4000, samples, 2000));
  png_image im;
  CHECK(png_decode(tmp_path("mixture.png"), &im) && im.w == 400 && im.h == 400);
  int coloured = 0, reddish = 0, bluish = 0;
  for (int i = 0; i < 400 * 400; i++) {
    const uint8_t *p = im.px + 3 * i;
    coloured += !is_white(p) && !(p[0] == p[1] && p[1] == p[2]) && abs(p[0] - p[2]) > 8;
    reddish += p[0] > p[2] + 40;
    bluish += p[2] > p[0] + 40;
  }
  printf("  coloured %d reddish %d bluish %d\n", coloured, reddish, bluish);
  CHECK(coloured > 5000 && reddish > 1000 && bluish > 100);
  /* The centre of the ring is empty. */
  uint8_t *c = im.px + (200 * 400 + 205) * 3;
  CHECK(c[0] > 200 && c[2] > 200);
  free(im.px);
  free(data);
  free(samples);
}

TEST(field_points_layout) {
  sk_plot_bounds b = {0, 3, 10, 16};
  float p[18];
  sk_plot_field_points(b, 3, p);
  const float want[18] = {0.5f, 11, 1.5f, 11, 2.5f, 11, 0.5f, 13, 1.5f, 13, 2.5f, 13, 0.5f, 15, 1.5f, 15, 2.5f, 15};
  for (int i = 0; i < 18; i++) CHECK_NEAR(p[i], want[i], 1e-6);
}

TEST(field_radial_picture) {
  enum { G = 20 };
  float *data = mixture8(2000, 3);
  sk_plot_bounds b = sk_plot_auto_bounds(data, 2000);
  float pts[G * G * 2], v[G * G * 2];
  sk_plot_field_points(b, G, pts);
  for (int i = 0; i < G * G; i++) {
    v[2 * i] = -pts[2 * i];
    v[2 * i + 1] = -pts[2 * i + 1];
  }
  v[0] = NAN; /* skipped, not fatal */
  CHECK_OK(sk_plot_field(tmp_path("field.png"), 400, b, G, v, data, 2000));
  png_image im;
  CHECK(png_decode(tmp_path("field.png"), &im) && im.w == 400 && im.h == 400);
  /* Long arrows (outer corners) are orange, short ones (centre) blue-violet. */
  const uint8_t orange[3] = {237, 122, 26}, blue[3] = {80, 80, 190};
  double cx, cy;
  int n_orange = find_colour(&im, orange, 60, &cx, &cy), n_blue = find_colour(&im, blue, 90, &cx, &cy);
  printf("  orange pixels %d, blue-violet %d\n", n_orange, n_blue);
  CHECK(n_orange > 300 && n_blue > 20);
  free(im.px);
  float zero[G * G * 2] = {0};
  CHECK_OK(sk_plot_field(tmp_path("zero.png"), 128, b, G, zero, NULL, 0));
  CHECK_EQ_INT(sk_plot_field(tmp_path("bad.png"), 128, b, 1, zero, NULL, 0), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_plot_field(tmp_path("bad.png"), 128, b, G, NULL, NULL, 0), SK_ERR_INVALID);
  free(data);
}

TEST(groups_distinct_colours) {
  float *data = mixture8(1600, 4);
  const float *groups[3] = {data, data + 2 * 800, NULL};
  const int64_t counts[3] = {800, 800, 0};
  sk_plot_bounds b = sk_plot_auto_bounds(data, 1600);
  CHECK_OK(sk_plot_groups(tmp_path("groups.png"), 300, b, NULL, 0, 3, groups, counts));
  png_image im;
  CHECK(png_decode(tmp_path("groups.png"), &im) && im.w == 300);
  const uint8_t blue[3] = {31, 119, 180}, orange[3] = {255, 127, 14};
  double x, y;
  CHECK(find_colour(&im, blue, 60, &x, &y) > 50);
  CHECK(find_colour(&im, orange, 60, &x, &y) > 50);
  free(im.px);
  const int64_t bad_counts[3] = {800, 800, 5}; /* group 2 is NULL */
  CHECK_EQ_INT(sk_plot_groups(tmp_path("bad.png"), 300, b, NULL, 0, 3, groups, bad_counts), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "group 2"));
  CHECK_EQ_INT(sk_plot_groups(tmp_path("bad.png"), 300, b, NULL, 0, 0, groups, counts), SK_ERR_INVALID);
  free(data);
}

TEST(image_grid_pixels) {
  /* Three 2x3 grey images in 2 columns: 2 rows of (2 + 2) + 2 = 10 pixels
   * high, 2 columns of (3 + 2) + 2 = 12 wide. */
  float img[3][6] = {{0, 0.5f, 1, 1.5f, -1, NAN}, {0.2f, 0.2f, 0.2f, 0.2f, 0.2f, 0.2f}, {1, 1, 1, 1, 1, 1}};
  CHECK_OK(sk_image_grid(tmp_path("grid.png"), &img[0][0], 3, 1, 2, 3, 2));
  png_image im;
  CHECK(png_decode(tmp_path("grid.png"), &im));
  CHECK(im.w == 12 && im.h == 10 && im.ch == 1);
  const uint8_t row2[12] = {48, 48, 0, 128, 255, 48, 48, 51, 51, 51, 48, 48};
  const uint8_t row3[12] = {48, 48, 255, 0, 0, 48, 48, 51, 51, 51, 48, 48};
  const uint8_t row6[12] = {48, 48, 255, 255, 255, 48, 48, 48, 48, 48, 48, 48};
  CHECK(memcmp(im.px + 2 * 12, row2, 12) == 0);
  CHECK(memcmp(im.px + 3 * 12, row3, 12) == 0);
  CHECK(memcmp(im.px + 6 * 12, row6, 12) == 0);
  for (int x = 0; x < 12; x++) CHECK(im.px[x] == 48 && im.px[9 * 12 + x] == 48);
  free(im.px);
  /* RGB: channel planes land in the right components. */
  float rgb[3 * 4] = {1, 1, 1, 1, 0, 0, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f};
  CHECK_OK(sk_image_grid(tmp_path("grid3.png"), rgb, 1, 3, 2, 2, 0));
  CHECK(png_decode(tmp_path("grid3.png"), &im) && im.w == 6 && im.h == 6 && im.ch == 3);
  const uint8_t *p = im.px + (2 * 6 + 2) * 3;
  CHECK(p[0] == 255 && p[1] == 0 && p[2] == 128);
  free(im.px);
  CHECK_EQ_INT(sk_image_grid(tmp_path("bad.png"), rgb, 1, 2, 2, 2, 0), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_image_grid(tmp_path("bad.png"), rgb, 0, 3, 2, 2, 0), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_image_grid(tmp_path("bad.png"), rgb, 20000, 1, 2, 2, 1), SK_ERR_INVALID);
  CHECK(no_temp_files());
}

/* sk_plot_image_grid: every pixel of a small grid against the layout
 * plot.h documents (positions, upscale, value map, separators, empty
 * cells), written independently here from the images. */
TEST(plot_image_grid_pixels) {
  enum { N = 5, H = 3, W = 2, U = 2, R = 2, C = 3 };
  float img[N * H * W];
  for (int i = 0; i < N * H * W; i++) img[i] = -10.0f + 3.7f * (float)i; /* some clipped */
  img[4] = NAN;
  const int64_t cells[R * C] = {4, -1, 0, 2, 2, 1};
  const sk_image_grid_layout lay = {R, C, -5.0f, 60.0f, U, cells};
  CHECK_OK(sk_plot_image_grid(tmp_path("igrid.png"), img, N, H, W, &lay));
  png_image im;
  CHECK(png_decode(tmp_path("igrid.png"), &im));
  const int GH = R * (H * U + 1) + 1, GW = C * (W * U + 1) + 1;
  CHECK(im.w == GW && im.h == GH && im.ch == 1);
  int bad = 0;
  for (int y = 0; y < GH; y++)
    for (int x = 0; x < GW; x++) {
      int want = SK_GRID_SEPARATOR;
      const int r = (y - 1) / (H * U + 1), c = (x - 1) / (W * U + 1);
      const int yy = (y - 1) % (H * U + 1), xx = (x - 1) % (W * U + 1);
      if (y > 0 && x > 0 && yy < H * U && xx < W * U) {
        const int64_t i = cells[r * C + c];
        if (i < 0) want = SK_GRID_EMPTY;
        else {
          const double v = img[i * H * W + (yy / U) * W + xx / U];
          const double t = (v - -5.0) / 65.0 * 255;
          want = !(t > 0) ? 0 : t >= 255 ? 255 : (int)floor(t + 0.5);
        }
      }
      bad += abs(im.px[y * GW + x] - want) > (want > 0 && want < 255); /* rounding ties */
    }
  free(im.px);
  CHECK_EQ_INT(bad, 0);
  /* Without cells: image i in cell i, the rest empty; one row strip. */
  const sk_image_grid_layout strip = {1, 7, 0.0f, 1.0f, 1, NULL};
  CHECK_OK(sk_plot_image_grid(tmp_path("strip.png"), img, N, H, W, &strip));
  CHECK(png_decode(tmp_path("strip.png"), &im));
  CHECK(im.w == 7 * (W + 1) + 1 && im.h == H + 2);
  CHECK(im.px[1 * im.w + 1] == 0 &&                 /* image 0's -10: clipped to black */
        im.px[1 * im.w + 1 + 4 * (W + 1)] == 255 &&   /* image 4's 78.8: to white */
        im.px[1 * im.w + 1 + 5 * (W + 1)] == SK_GRID_EMPTY &&
        im.px[0 * im.w + 1] == SK_GRID_SEPARATOR);
  free(im.px);
  /* Bad layouts: nothing written. */
  sk_image_grid_layout b = lay;
  b.lo = 70.0f;
  CHECK_EQ_INT(sk_plot_image_grid(tmp_path("bad.png"), img, N, H, W, &b), SK_ERR_INVALID);
  b = lay;
  b.upscale = 0;
  CHECK_EQ_INT(sk_plot_image_grid(tmp_path("bad.png"), img, N, H, W, &b), SK_ERR_INVALID);
  const int64_t far[R * C] = {0, 1, 2, 3, 4, 5};
  b = lay;
  b.cells = far;
  CHECK_EQ_INT(sk_plot_image_grid(tmp_path("bad.png"), img, N, H, W, &b), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "cell 5"));
  b = lay;
  b.upscale = 32;
  b.rows = 4096;
  b.cells = NULL; /* the cells array holds rows·cols entries */
  CHECK_EQ_INT(sk_plot_image_grid(tmp_path("bad.png"), img, N, H, W, &b), SK_ERR_INVALID);
  CHECK(access(tmp_path("bad.png"), F_OK) != 0);
  CHECK(no_temp_files());
}

/* Runs the scorekit program; its exit code (output to /dev/null). */
static int run_cli(const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", SK_CLI_PATH, args);
  const int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* The grey of image i's pixel (y, x) in a grid written with upscale u and
 * cells of h × w, at cell (r, c). */
static int grid_px(const png_image *im, int h, int w, int u, int r, int c, int y, int x) {
  return im->px[(1 + r * (h * u + 1) + y * u) * im->w + 1 + c * (w * u + 1) + x * u];
}

/* `scorekit grid`: one row per class from --labels, in input order within
 * a class; --strip; values above 1 drawn from 0..255. */
TEST(grid_command) {
  enum { N = 7, H = 4, W = 3 };
  float img[N * H * W], lab[N] = {2, 0, 2, 1, 2, 2, 0};
  for (int i = 0; i < N * H * W; i++) img[i] = (float)((i * 37) % 256);
  char in[160], labels[160], out[160], args[800];
  snprintf(in, sizeof in, "%s", tmp_path("imgs.npy"));
  snprintf(labels, sizeof labels, "%s", tmp_path("labels.npy"));
  snprintf(out, sizeof out, "%s", tmp_path("g.png"));
  CHECK_OK(sk_npy_save_f32(in, 4, (int64_t[]){N, 1, H, W}, img));
  CHECK_OK(sk_npy_save_f32(labels, 1, (int64_t[]){N}, lab));
  snprintf(args, sizeof args, "grid --in %s --labels %s --out %s --cols 3 --upscale 2", in, labels, out);
  CHECK_EQ_INT(run_cli(args), 0);
  png_image im;
  CHECK(png_decode(out, &im));
  CHECK(im.w == 3 * (W * 2 + 1) + 1 && im.h == 3 * (H * 2 + 1) + 1);
  /* Class 0: images 1, 6, empty; class 1: 3; class 2: 0, 2, 4 (5 left out). */
  const int cells[3][3] = {{1, 6, -1}, {3, -1, -1}, {0, 2, 4}};
  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 3; c++)
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
          const int i = cells[r][c];
          const int want = i < 0 ? SK_GRID_EMPTY : (int)img[(i * H + y) * W + x];
          CHECK_EQ_INT(grid_px(&im, H, W, 2, r, c, y, x), want);
        }
  free(im.px);
  snprintf(args, sizeof args, "grid --in %s --out %s --strip --upscale 1", in, out);
  CHECK_EQ_INT(run_cli(args), 0);
  CHECK(png_decode(out, &im));
  CHECK(im.w == N * (W + 1) + 1 && im.h == H + 2);
  for (int i = 0; i < N; i++) CHECK_EQ_INT(grid_px(&im, H, W, 1, 0, i, 3, 2), (int)img[(i * H + 3) * W + 2]);
  free(im.px);
  /* Bad input: labels of another length, a strip with classes; no file. */
  unlink(out);
  CHECK_OK(sk_npy_save_f32(labels, 1, (int64_t[]){N - 1}, lab));
  snprintf(args, sizeof args, "grid --in %s --labels %s --out %s", in, labels, out);
  CHECK_EQ_INT(run_cli(args), 1);
  snprintf(args, sizeof args, "grid --in %s --labels %s --out %s --strip", in, labels, out);
  CHECK_EQ_INT(run_cli(args), 1);
  CHECK(access(out, F_OK) != 0);
  CHECK(no_temp_files());
}

/* `scorekit sample --grid` on a (small, untrained) U-Net of 28×28 images:
 * the first 100 samples in 10 columns, upscale 2, grey 0..255 from the
 * samples as written to the .npy; refused for a model of points. */
TEST(sample_grid) {
  const sk_unet_config small = {{8, 16, 16, 16}, {1, 28, 28}, 16, 16.0f};
  sk_model *m = sk_model_new_unet(&small);
  CHECK(m);
  sk_model_init(m, 3);
  sk_model_info info = {.objective = SK_OBJ_NCSN, .n_sigmas = 2, .sigmas = {1.0f, 0.1f},
                        .data_scale = 255.0f, .image_shape = {1, 28, 28}};
  char model[160], samples[160], grid[160], args[800];
  snprintf(model, sizeof model, "%s", tmp_path("unet.safetensors"));
  snprintf(samples, sizeof samples, "%s", tmp_path("s.npy"));
  snprintf(grid, sizeof grid, "%s", tmp_path("sgrid.png"));
  sk_status st = sk_model_save(model, m, sk_model_params(m), &info);
  sk_model_free(m);
  CHECK_OK(st);
  snprintf(args, sizeof args, "sample --model %s --n 13 --steps-per-level 2 --out %s --grid %s",
           model, samples, grid);
  CHECK_EQ_INT(run_cli(args), 0);
  sk_tensor *s = NULL;
  CHECK_OK(sk_npy_load(samples, &s));
  png_image im;
  CHECK(png_decode(grid, &im));
  CHECK(im.w == 10 * 57 + 1 && im.h == 2 * 57 + 1);
  int bad = 0;
  for (int i = 0; i < 13; i++)
    for (int y = 0; y < 28; y += 3)
      for (int x = 0; x < 28; x += 5) {
        const float v = sk_tensor_cdata(s)[(i * 28 + y) * 28 + x];
        const int want = !(v > 0) ? 0 : v >= 255 ? 255 : (int)floorf(v + 0.5f);
        bad += abs(grid_px(&im, 28, 28, 2, i / 10, i % 10, y, x) - want) > 1;
      }
  CHECK_EQ_INT(grid_px(&im, 28, 28, 2, 1, 3, 0, 0), SK_GRID_EMPTY); /* past sample 13 */
  free(im.px);
  sk_tensor_free(s);
  CHECK_EQ_INT(bad, 0);
  /* A model of points has no images to draw. */
  sk_model_config pc = {SK_MODEL_NCMLP, 2, 8, 1, 0, SK_ACT_SILU};
  m = sk_model_new(&pc);
  CHECK(m);
  sk_model_info pinfo = {.objective = SK_OBJ_NCSN, .n_sigmas = 2, .sigmas = {1.0f, 0.1f}};
  st = sk_model_save(model, m, sk_model_params(m), &pinfo);
  sk_model_free(m);
  CHECK_OK(st);
  unlink(grid);
  CHECK_EQ_INT(run_cli(args), 1);
  CHECK(access(grid, F_OK) != 0);
}

TEST(auto_bounds) {
  const float p[8] = {0, 0, 4, 1, 2, -1, NAN, 100};
  sk_plot_bounds b = sk_plot_auto_bounds(p, 4);
  /* x spans [0, 4], y [-1, 1]: square of side 4 * 1.1 centred on (2, 0). */
  CHECK_NEAR(b.xmin, -0.2, 1e-6);
  CHECK_NEAR(b.xmax, 4.2, 1e-6);
  CHECK_NEAR(b.ymin, -2.2, 1e-6);
  CHECK_NEAR(b.ymax, 2.2, 1e-6);
  b = sk_plot_auto_bounds(NULL, 0);
  CHECK(b.xmin == -1 && b.xmax == 1 && b.ymin == -1 && b.ymax == 1);
  b = sk_plot_auto_bounds(p, 1); /* a single point still gives a usable box */
  CHECK(b.xmin < 0 && b.xmax > 0 && b.ymin < 0 && b.ymax > 0);
}

TEST(plot_bad_arguments) {
  const float p[2] = {0, 0};
  sk_plot_bounds ok = {-1, 1, -1, 1}, flipped = {1, -1, -1, 1}, nan = {-1, 1, NAN, 1};
  CHECK_EQ_INT(sk_plot_scatter(tmp_path("bad.png"), 16, ok, p, 1, NULL, 0), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "size"));
  /* The limits plot.h documents are the ones enforced. */
  CHECK_EQ_INT(sk_plot_scatter(tmp_path("bad.png"), SK_PLOT_MAX_SIZE + 1, ok, p, 1, NULL, 0),
               SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "in 64..4096, got 4097"));
  CHECK_EQ_INT(sk_plot_scatter(tmp_path("bad.png"), 100, flipped, p, 1, NULL, 0), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_plot_scatter(tmp_path("bad.png"), 100, nan, p, 1, NULL, 0), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_plot_scatter(tmp_path("bad.png"), 100, ok, NULL, 5, NULL, 0), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_plot_scatter(NULL, 100, ok, p, 1, NULL, 0), SK_ERR_INVALID);
  CHECK(access(tmp_path("bad.png"), F_OK) != 0);
  CHECK_EQ_INT(sk_plot_scatter("/nonexistent-dir-sk/s.png", 100, ok, p, 1, NULL, 0), SK_ERR_IO);
}

/* The strong line's pixels (red) of each column: their mean row, or -1. */
static void red_rows(const png_image *im, double *row) {
  for (int x = 0; x < im->w; x++) {
    double sum = 0;
    int n = 0;
    for (int y = 0; y < im->h; y++) {
      const uint8_t *p = im->px + ((size_t)y * im->w + x) * 3;
      if (p[0] > 150 && p[1] < 100 && p[2] < 100) sum += y, n++;
    }
    row[x] = n ? sum / n : -1;
  }
}

/* The largest distance of the red rows from their least-squares line over
 * the columns that have one, and how many do (in *n). */
static double line_residual(const double *row, int w, int *n) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int k = 0;
  for (int x = 0; x < w; x++)
    if (row[x] >= 0) sx += x, sy += row[x], sxx += (double)x * x, sxy += x * row[x], k++;
  *n = k;
  if (k < 2) return INFINITY;
  const double b = (k * sxy - sx * sy) / (k * sxx - sx * sx), a = (sy - b * sx) / k;
  double worst = 0;
  for (int x = 0; x < w; x++)
    if (row[x] >= 0) worst = fmax(worst, fabs(row[x] - (a + b * x)));
  return worst;
}

/* y = 10^(-x/100) over x = 1..200 is a straight falling line on a log axis
 * (two decades) and a curve on a linear one; a NaN breaks the line. */
TEST(line_plot_log_axis) {
  enum { N = 200, W = 640, H = 400 };
  float x[N], y[N], noisy[N];
  for (int i = 0; i < N; i++) {
    x[i] = (float)(i + 1);
    y[i] = powf(10.0f, -x[i] / 100.0f);
    noisy[i] = y[i] * (i % 2 ? 1.5f : 0.7f);
  }
  png_image im;
  double row[W];
  int n = 0;
  CHECK_OK(sk_plot_line(tmp_path("line.png"), W, H, x, y, noisy, N, 1));
  CHECK(png_decode(tmp_path("line.png"), &im));
  CHECK(im.w == W && im.h == H && im.ch == 3);
  red_rows(&im, row);
  const double straight = line_residual(row, W, &n);
  printf("  log axis: %d columns with the line, worst distance from a straight line %.2f px\n", n, straight);
  CHECK(n > W / 2);
  CHECK(straight < 2.0);
  const int with_line = n;
  int first = 0, last = W - 1;
  while (row[first] < 0) first++;
  while (row[last] < 0) last--;
  CHECK(row[last] - row[first] > H / 2); /* it falls across the plot */
  free(im.px);
  CHECK_OK(sk_plot_line(tmp_path("lin.png"), W, H, x, y, NULL, N, 0));
  CHECK(png_decode(tmp_path("lin.png"), &im));
  red_rows(&im, row);
  const double curved = line_residual(row, W, &n);
  printf("  linear axis: worst distance from a straight line %.2f px\n", curved);
  CHECK(curved > 20);
  free(im.px);
  /* A NaN in the middle: a hole in the line, at the columns around it. */
  const int whole = with_line;
  y[100] = NAN;
  CHECK_OK(sk_plot_line(tmp_path("gap.png"), W, H, x, y, NULL, N, 1));
  CHECK(png_decode(tmp_path("gap.png"), &im));
  red_rows(&im, row);
  line_residual(row, W, &n);
  CHECK(n <= whole - 2);
  free(im.px);
}

/* Nothing to draw is refused, and nothing is written: no points, only NaN,
 * only values <= 0 on a log axis; and bad sizes and NULL arrays. */
TEST(line_plot_refuses_nothing_to_draw) {
  const float x[3] = {1, 2, 3}, nan3[3] = {NAN, NAN, NAN}, neg[3] = {-1, 0, -2}, ok[3] = {1, 2, 3};
  const char *path = tmp_path("refused.png");
  CHECK_EQ_INT(sk_plot_line(path, 400, 300, x, ok, NULL, 0, 1), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "0 points"));
  CHECK_EQ_INT(sk_plot_line(path, 400, 300, x, nan3, NULL, 3, 0), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "none of the 3 points"));
  CHECK_EQ_INT(sk_plot_line(path, 400, 300, nan3, ok, NULL, 3, 0), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_plot_line(path, 400, 300, x, neg, NULL, 3, 1), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "positive"));
  CHECK_EQ_INT(sk_plot_line(path, SK_PLOT_LINE_MIN_WIDTH - 1, 300, x, ok, NULL, 3, 1), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_plot_line(path, 400, SK_PLOT_MAX_SIZE + 1, x, ok, NULL, 3, 1), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_plot_line(path, 400, 300, NULL, ok, NULL, 3, 1), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_plot_line(path, 400, 300, x, NULL, NULL, 3, 1), SK_ERR_INVALID);
  CHECK(access(path, F_OK) != 0);
  /* The same values on a linear axis are drawn; one point is a dot. */
  CHECK_OK(sk_plot_line(path, 400, 300, x, neg, NULL, 3, 0));
  CHECK_OK(sk_plot_line(path, SK_PLOT_LINE_MIN_WIDTH, SK_PLOT_LINE_MIN_HEIGHT, x, ok, NULL, 1, 1));
  png_image im;
  CHECK(png_decode(path, &im));
  CHECK(im.w == SK_PLOT_LINE_MIN_WIDTH && im.h == SK_PLOT_LINE_MIN_HEIGHT);
  free(im.px);
}

TEST_MAIN(TEST_ENTRY(png_roundtrip_exact), TEST_ENTRY(png_bad_arguments_and_io),
          TEST_ENTRY(allocation_failures_leave_no_file), TEST_ENTRY(scatter_places_points),
          TEST_ENTRY(scatter_mixture_picture), TEST_ENTRY(field_points_layout),
          TEST_ENTRY(field_radial_picture), TEST_ENTRY(groups_distinct_colours),
          TEST_ENTRY(image_grid_pixels), TEST_ENTRY(plot_image_grid_pixels),
          TEST_ENTRY(grid_command), TEST_ENTRY(sample_grid), TEST_ENTRY(auto_bounds),
          TEST_ENTRY(plot_bad_arguments), TEST_ENTRY(line_plot_log_axis),
          TEST_ENTRY(line_plot_refuses_nothing_to_draw))
