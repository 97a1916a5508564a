/* scorekit file formats: NumPy .npy arrays (read and write), numeric CSV
 * tables and IDX arrays (the MNIST family, plain or gzipped; read), loaded
 * into float32 tensors with every size validated first; and the rules every
 * scorekit reader and writer follows. */
#ifndef SCOREKIT_IO_H
#define SCOREKIT_IO_H

#include <signal.h>
#include <stddef.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The element type a file stored before its values were converted to
 * float32 (a caller decides from it, for instance, that 8-bit pixels are
 * divided by 255). */
typedef enum sk_dtype {
  SK_DTYPE_F32,
  SK_DTYPE_F64,
  SK_DTYPE_I8,
  SK_DTYPE_I16,
  SK_DTYPE_I32,
  SK_DTYPE_I64,
  SK_DTYPE_U8,
  SK_DTYPE_U16,
  SK_DTYPE_U32,
  SK_DTYPE_U64,
  SK_DTYPE_BOOL,
  SK_DTYPE_COUNT
} sk_dtype;

/* NumPy's name of the type ("float32", "uint8", "bool", ...), a static
 * string; "unknown" for a value outside the enum. */
SK_API const char *sk_dtype_name(sk_dtype t);

/* Loads the .npy file at `path` (format version 1.0, 2.0 or 3.0) into a new
 * float32 tensor of the file's shape; on success *out owns it (free with
 * sk_tensor_free), on failure *out is NULL and sk_last_error() names the path
 * and the problem.
 *
 * Accepted dtypes, little-endian or byte-order-free: f4, f8, i1, i2, i4, i8,
 * u1, u2, u4, u8, b1 (bool: nonzero -> 1). Values are converted to float32:
 * integers must satisfy |v| <= 2^24 so they stay exact, f8 values must be
 * finite and within float32 range, and NaN/Inf are rejected; those errors are
 * SK_ERR_NUMERIC and name the flat (row-major) index. Rank 0..SK_MAX_DIMS, C
 * order only. The header dict ('descr', 'fortran_order', 'shape' in any order,
 * any whitespace, optional trailing comma) may be padded in any way.
 *
 * Errors: SK_ERR_IO (cannot open or read, not a regular file: a FIFO is
 * refused before any read could wait on it), SK_ERR_FORMAT
 * (bad magic, header length > 65536 or past the end of the file, unparsable
 * header, negative or overflowing shape, data shorter than the shape needs:
 * "truncated", or longer: "trailing bytes"), SK_ERR_UNSUPPORTED (version,
 * big-endian, dtype, fortran_order True, rank > SK_MAX_DIMS), SK_ERR_NUMERIC,
 * SK_ERR_NOMEM, SK_ERR_INVALID (NULL arguments). */
SK_API sk_status sk_npy_load(const char *path, sk_tensor **out);
/* The same, and the file's element type into *dtype unless it is NULL. */
SK_API sk_status sk_npy_load_typed(const char *path, sk_tensor **out, sk_dtype *dtype);

/* Writes `t` to `path` as .npy version 1.0 ('<f4', C order, header padded to
 * 64 bytes), atomically: readers see the old file or the whole new one, and
 * nothing is left behind on failure. Values are written as they are (NaN
 * included, though sk_npy_load rejects it). Errors: SK_ERR_INVALID, SK_ERR_IO,
 * SK_ERR_NOMEM. */
SK_API sk_status sk_npy_save(const char *path, const sk_tensor *t);

/* Same as sk_npy_save from a raw row-major buffer of prod(shape) floats
 * (0 <= ndim <= SK_MAX_DIMS, every shape[i] >= 0; `data` may be NULL only
 * when the product is 0). */
SK_API sk_status sk_npy_save_f32(const char *path, int ndim, const int64_t *shape,
                                 const float *data);

/* Writes n int32 values (e.g. class labels) as a 1-D '<i4' .npy file,
 * atomically. `data` may be NULL only when n == 0. */
SK_API sk_status sk_npy_save_i32(const char *path, int64_t n, const int32_t *data);

/* How sk_csv_load reads a table. */
typedef struct sk_csv_options {
  int header;       /* -1: auto-detect (the first row is a header if its non-empty
                       fields are all text, none a number; "nan" and "inf" count as
                       numbers; a row that mixes numbers and text, such as "1,NA",
                       is data, and its text field an error), 0: no header, 1: the
                       first row is a header */
  int label_column; /* -1: none; else the 0-based column holding an integer class
                       label >= 0 (any column; it is removed from x) */
  char delimiter;   /* 0: auto-detect from the first non-comment line among ',', ';',
                       '\t' (the most frequent outside quotes); whitespace-separated
                       if none occurs. Otherwise that character. */
} sk_csv_options;

/* The defaults: {header -1, label_column -1, delimiter 0}. */
SK_API sk_csv_options sk_csv_options_default(void);

/* Loads a CSV file of numeric columns. On success *x owns an (n, d) float32
 * tensor and, if opt->label_column >= 0, *labels an (n,) float32 tensor of the
 * integer labels (both freed with sk_tensor_free); on failure both are NULL.
 * `opt` NULL means the defaults; `labels` may be NULL only when there is no
 * label column.
 *
 * Blank lines and lines whose first non-blank character is '#' are skipped;
 * CRLF line ends and a leading UTF-8 byte-order mark are accepted; fields
 * may be surrounded by spaces or tabs and may be double-quoted ("1.5", with
 * "" for a quote inside). Numbers are
 * decimal (sign, digits, point, exponent) read with C-locale strtod whatever
 * setlocale says. Labels are integer-valued numbers in 0..2^24.
 *
 * Errors name the path, the 1-based line and 1-based column: SK_ERR_FORMAT for
 * ragged rows ("expected d fields, got k"), a non-numeric or empty field (shown,
 * truncated), a bad label, an unterminated quote, a NUL byte, an empty file or
 * one with no data rows, a line longer than 1 MiB, more than 1e6 columns, a
 * label column past the last column or no feature column left;
 * SK_ERR_NUMERIC for NaN/Inf or values outside float32 range; SK_ERR_UNSUPPORTED
 * for a table too large to index in memory; SK_ERR_IO, SK_ERR_NOMEM,
 * SK_ERR_INVALID (bad options or arguments). */
SK_API sk_status sk_csv_load(const char *path, const sk_csv_options *opt, sk_tensor **x,
                             sk_tensor **labels);

/* Loads the IDX file at `path` (LeCun's format of the MNIST family: bytes
 * 0 0 TYPE RANK, RANK big-endian 32-bit dimensions, then the data, big-endian,
 * row-major), gzip-compressed or not (told apart by the gzip magic, not the
 * name; concatenated gzip members are one stream), into a new float32 tensor
 * of the file's shape. On success *out owns it and *dtype (unless NULL) is
 * the stored type; on failure *out is NULL and sk_last_error() names the path
 * and the problem.
 *
 * Types: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
 * 0x0E float64. Values are converted as by sk_npy_load: int32 values must
 * satisfy |v| <= 2^24, float64 values must be within float32 range, and NaN or
 * Inf are rejected (SK_ERR_NUMERIC, naming the flat index). Rank 1..SK_MAX_DIMS;
 * dimensions 0..2^31-1; at most 2^32 elements.
 *
 * The declared size is checked against the data before anything is allocated
 * for it: a plain file must hold exactly the declared bytes, and a gzip file
 * cannot declare more than deflate's greatest ratio (1032:1) allows for its
 * size. Errors: SK_ERR_IO (cannot open or read, not a regular file),
 * SK_ERR_FORMAT (bad magic, unknown type code, rank 0, a negative dimension,
 * dimensions whose product overflows, data shorter than declared:
 * "truncated", or longer: "trailing bytes", bytes after the gzip stream, a
 * corrupt or truncated gzip stream), SK_ERR_UNSUPPORTED (rank > SK_MAX_DIMS,
 * more than 2^32 elements), SK_ERR_NUMERIC, SK_ERR_NOMEM (zlib's own
 * allocations included), SK_ERR_INVALID (NULL arguments). */
SK_API sk_status sk_idx_load(const char *path, sk_tensor **out, sk_dtype *dtype);

/* Files: what every scorekit reader and writer does.
 *
 * Reading (sk_npy_load, sk_csv_load, sk_idx_load, sk_safetensors_load,
 * sk_model_load, sk_trainer_resume): the path must name a regular file, checked before the
 * first read that could block: a FIFO, a device or a directory is refused
 * with SK_ERR_IO, "PATH: is a FIFO, not a regular file".
 *
 * Writing (sk_npy_save*, sk_safetensors_save, sk_model_save, the trainer's
 * checkpoints, sk_file_write, the plots): the destination is resolved
 * first: a symbolic link is followed (a relative one from its own directory,
 * up to 40 links) and the file it names is replaced, the link kept; a
 * destination that exists and is not a regular file (a directory, FIFO,
 * socket or device: /dev/null too) is refused with SK_ERR_IO naming it, and
 * is never replaced. The data goes to a temporary file beside it,
 * NAME.tmp.PID.XXXXXX (NAME cut short when the whole would pass 255 bytes),
 * which is fsynced and renamed over NAME, so that a reader sees the old file
 * or the whole new one; on any failure the temporary is removed. A path that
 * leaves no room for that suffix under PATH_MAX is refused.
 *
 * Writes n bytes to `path` as above. Errors: SK_ERR_IO, SK_ERR_NOMEM,
 * SK_ERR_INVALID (NULL data with n > 0). */
SK_API sk_status sk_file_write(const char *path, const void *data, size_t n);

/* Checks, before any work is spent on it, that a file can be written at
 * `path`: the destination resolves as above (not a directory, FIFO, socket
 * or device; not too long), and its directory exists and may be written.
 * Then removes the stale temporaries of that directory: files named
 * NAME.tmp.PID.XXXXXX, regular, owned by this user, whose PID is not a live
 * process (or is this process's, while it has no write in progress). A live
 * process's temporaries stay, and so do names that do not follow the rule
 * (older versions' NAME.tmp.XXXXXX included). *removed (may be NULL) gets
 * the number removed. The check can only say what is true now: the write
 * itself checks again. Errors: SK_ERR_IO naming the path and the problem
 * ("directory out does not exist", "is a FIFO, not a regular file", "name too
 * long"), SK_ERR_NOMEM, SK_ERR_INVALID. */
SK_API sk_status sk_output_prepare(const char *path, int *removed);

/* Makes SIGTERM, SIGINT and SIGHUP remove the temporary files of the writes
 * in progress (up to 16 at once) and then end the process by the same signal,
 * with its default action, as if it had not been caught (the parent sees
 * it: a shell's 128 + n). A signal ignored when this is called stays ignored
 * (nohup, background jobs). With `stop` non-NULL, the first of these signals
 * only sets *stop to its number (a write in progress goes on): the caller
 * polls *stop, finishes what it must (a checkpoint), then calls
 * sk_signals_install(NULL) and raise(*stop). A second signal while *stop is
 * set acts at once, as with NULL. Call again to switch; the handler is
 * async-signal-safe. scorekit never installs it by itself: a program
 * chooses to (the scorekit command does, at start). Errors: SK_ERR_STATE
 * when sigaction fails. */
SK_API sk_status sk_signals_install(volatile sig_atomic_t *stop);

#ifdef __cplusplus
}
#endif
#endif
