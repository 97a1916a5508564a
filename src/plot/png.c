/* A minimal PNG encoder (8-bit grey or RGB, no interlace) on zlib, written
 * atomically. Each row gets the filter with the smallest sum of absolute
 * residuals, the heuristic the PNG specification recommends (section 12.8). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "plot.h"

#include "io/internal.h"

#define PNG_MAX_SIDE 32768
/* Filtered image bytes; larger pictures are not what this writer is for. */
#define PNG_MAX_RAW ((size_t)1 << 30)

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static int write_chunk(FILE *f, const char type[4], const uint8_t *data, size_t len) {
  uint8_t head[8];
  put_be32(head, (uint32_t)len);
  memcpy(head + 4, type, 4);
  uLong crc = crc32(0L, (const Bytef *)type, 4);
  /* crc32 takes a uInt length, so feed large chunks in pieces. */
  for (size_t off = 0; off < len;) {
    size_t part = SK_MIN(len - off, (size_t)1 << 30);
    crc = crc32(crc, data + off, (uInt)part);
    off += part;
  }
  uint8_t tail[4];
  put_be32(tail, (uint32_t)crc);
  return fwrite(head, 1, 8, f) == 8 && (len == 0 || fwrite(data, 1, len, f) == len) &&
         fwrite(tail, 1, 4, f) == 4;
}

static int paeth(int a, int b, int c) {
  int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/* Filters row `cur` (prev is the row above, NULL for the first) into out[0]
 * (the filter type) and out[1..stride]. */
static void filter_row(const uint8_t *cur, const uint8_t *prev, size_t stride, int bpp,
                       uint8_t *out, uint8_t *trial) {
  uint64_t best_cost = UINT64_MAX;
  for (int ft = 0; ft <= 4; ft++) {
    uint64_t cost = 0;
    for (size_t i = 0; i < stride; i++) {
      int a = i >= (size_t)bpp ? cur[i - bpp] : 0;
      int b = prev ? prev[i] : 0;
      int c = prev && i >= (size_t)bpp ? prev[i - bpp] : 0;
      int pred = ft == 0 ? 0 : ft == 1 ? a : ft == 2 ? b : ft == 3 ? (a + b) / 2 : paeth(a, b, c);
      uint8_t r = (uint8_t)(cur[i] - pred);
      trial[i] = r;
      cost += r < 128 ? r : 256 - r;
    }
    if (cost < best_cost) {
      best_cost = cost;
      out[0] = (uint8_t)ft;
      memcpy(out + 1, trial, stride);
    }
  }
}

sk_status sk_png_write(const char *path, int width, int height, int channels,
                       const uint8_t *pixels) {
  if (!path) return sk__fail(SK_ERR_INVALID, "sk_png_write: path is NULL");
  if (width < 1 || height < 1 || width > PNG_MAX_SIDE || height > PNG_MAX_SIDE)
    return sk__fail(SK_ERR_INVALID, "%s: image size %d x %d outside 1..%d", path, width, height,
                    PNG_MAX_SIDE);
  if (channels != 1 && channels != 3)
    return sk__fail(SK_ERR_INVALID, "%s: channels must be 1 or 3, got %d", path, channels);
  if (!pixels) return sk__fail(SK_ERR_INVALID, "%s: pixels is NULL", path);
  size_t stride = (size_t)width * (size_t)channels, raw_len;
  if (!sk__mul_size(stride + 1, (size_t)height, &raw_len) || raw_len > PNG_MAX_RAW)
    return sk__fail(SK_ERR_INVALID, "%s: image of %d x %d x %d is too large", path, width, height,
                    channels);
  uLong zcap = compressBound((uLong)raw_len);
  uint8_t *raw = sk__malloc(raw_len);
  uint8_t *trial = sk__malloc(stride);
  uint8_t *z = sk__malloc((size_t)zcap);
  if (!raw || !trial || !z) {
    sk__free(raw);
    sk__free(trial);
    sk__free(z);
    return sk__fail(SK_ERR_NOMEM, "%s: out of memory encoding %d x %d image", path, width, height);
  }
  for (int y = 0; y < height; y++)
    filter_row(pixels + (size_t)y * stride, y ? pixels + (size_t)(y - 1) * stride : NULL, stride,
               channels, raw + (size_t)y * (stride + 1), trial);
  sk__free(trial);
  uLongf zlen = zcap;
  int zst = compress2(z, &zlen, raw, (uLong)raw_len, 6);
  sk__free(raw);
  if (zst != Z_OK) {
    sk__free(z);
    return zst == Z_MEM_ERROR ? sk__fail(SK_ERR_NOMEM, "%s: zlib out of memory", path)
                              : sk__fail(SK_ERR_IO, "%s: zlib compress failed (%d)", path, zst);
  }
  uint8_t ihdr[13];
  put_be32(ihdr, (uint32_t)width);
  put_be32(ihdr + 4, (uint32_t)height);
  ihdr[8] = 8;                          /* bits per sample */
  ihdr[9] = channels == 3 ? 2 : 0;      /* colour type: truecolour or greyscale */
  ihdr[10] = ihdr[11] = ihdr[12] = 0;   /* deflate, adaptive filtering, no interlace */
  static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  sk__afile af;
  sk_status st = sk__afile_open(&af, path);
  if (st) {
    sk__free(z);
    return st;
  }
  int ok = fwrite(signature, 1, 8, af.f) == 8 && write_chunk(af.f, "IHDR", ihdr, 13) &&
           write_chunk(af.f, "IDAT", z, (size_t)zlen) && write_chunk(af.f, "IEND", NULL, 0);
  sk__free(z);
  if (!ok) {
    sk__afile_abort(&af);
    return sk__fail(SK_ERR_IO, "%s: write failed", path);
  }
  return sk__afile_commit(&af);
}
