/* Hostile paths and files, as an attacker or a careless user would give
 * them: an output that is a device, a FIFO, a symbolic link or a directory;
 * a FIFO where a file is read; a model file whose metadata lies about its
 * size; a signal in the middle of a write; allocations that fail; names near
 * the system's limits; values and flags that used to be taken in silence.
 * Each case expects a one-line message naming the file or flag and the
 * problem, a non-zero exit that is not a crash, and nothing replaced or left
 * behind (docs/RELIABILITY.md lists the guarantees). */
#define _DEFAULT_SOURCE /* mkdtemp, mknod, makedev */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scorekit/scorekit.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static char tmp[64];
static char err[8192], out[8192];

static void read_into(const char *name, char *buf, size_t cap) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
  buf[n] = 0;
  if (f) fclose(f);
}

/* Runs `prefix scorekit args` in the test directory under a time limit
 * (seconds); returns the exit code (137 when killed by the limit), stderr in
 * err and stdout in out. */
static int run_with(const char *prefix, int limit, const char *args) {
  static char cmd[16384];
  snprintf(cmd, sizeof cmd, "cd %s && %s timeout -s KILL %d %s %s 2>err.txt >out.txt", tmp, prefix,
           limit, SK_CLI_PATH, args);
  int rc = system(cmd);
  read_into("err.txt", err, sizeof err);
  /* AddressSanitizer's own note on an allocation it could not make (with
   * allocator_may_return_null=1) is not the program's message. */
  for (char *w; (w = strstr(err, "WARNING: AddressSanitizer failed to allocate"));) {
    char *start = w, *eol = strchr(w, '\n');
    while (start > err && start[-1] != '\n') start--;
    memmove(start, eol ? eol + 1 : w + strlen(w), strlen(eol ? eol + 1 : w + strlen(w)) + 1);
  }
  read_into("out.txt", out, sizeof out);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static int run(const char *args) { return run_with("", 120, args); }

static int lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* A clean refusal: exit 1..127, one line "scorekit: ..." holding every needle. */
static int refused(int rc, const char *what, const char *const *needles) {
  int ok = rc > 0 && rc < 128 && lines(err) == 1 && strncmp(err, "scorekit: ", 10) == 0;
  const char *missing = NULL;
  for (int k = 0; needles[k]; k++)
    if (!strstr(err, needles[k]) && !missing) missing = needles[k];
  if (!ok || missing)
    fprintf(stderr, "case \"%s\": exit %d, %s%s%sstderr: %s\n", what, rc,
            missing ? "message lacks \"" : "", missing ? missing : "", missing ? "\", " : "", err);
  return ok && !missing;
}

#define REFUSED(args, ...)                                                 \
  do {                                                                     \
    static const char *const needles_[] = {__VA_ARGS__, NULL};             \
    CHECK(refused(run(args), args, needles_));                             \
  } while (0)

static const char *at(const char *name) {
  static char path[4][4400];
  static int k;
  k = (k + 1) % 4;
  snprintf(path[k], sizeof path[k], "%s/%s", tmp, name);
  return path[k];
}

static void write_file(const char *name, const void *data, size_t n) {
  FILE *f = fopen(at(name), "wb");
  if (!f) return;
  fwrite(data, 1, n, f);
  fclose(f);
}

static mode_t kind_of(const char *name) {
  struct stat st;
  return lstat(at(name), &st) == 0 ? st.st_mode & S_IFMT : 0;
}

/* A .npy v1.0 header for an (n, d) float32 array, (n,) when d < 0; returns
 * its length. */
static size_t npy_header(unsigned char *buf, long long n, int d) {
  char dict[128];
  int hl = d < 0 ? snprintf(dict, sizeof dict,
                            "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld,), }", n)
                 : snprintf(dict, sizeof dict,
                            "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %d), }", n, d);
  size_t total = 10 + (size_t)hl + 1, pad = (64 - total % 64) % 64;
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  uint16_t len = (uint16_t)((size_t)hl + pad + 1);
  buf[8] = (unsigned char)(len & 0xff);
  buf[9] = (unsigned char)(len >> 8);
  memcpy(buf + 10, dict, (size_t)hl);
  memset(buf + 10 + hl, ' ', pad);
  buf[10 + (size_t)hl + pad] = '\n';
  return total + pad;
}

static void write_npy(const char *name, long long n, int d, const float *v) {
  unsigned char buf[256];
  size_t h = npy_header(buf, n, d);
  FILE *f = fopen(at(name), "wb");
  if (!f) return;
  fwrite(buf, 1, h, f);
  fwrite(v, sizeof *v, (size_t)(n * (d < 0 ? 1 : d)), f);
  fclose(f);
}

/* An (n, d) array of zeros that takes no disk space. */
static void write_sparse_npy(const char *name, long long n, int d) {
  unsigned char buf[256];
  size_t h = npy_header(buf, n, d);
  FILE *f = fopen(at(name), "wb");
  if (!f) return;
  fwrite(buf, 1, h, f);
  fflush(f);
  if (ftruncate(fileno(f), (off_t)h + (off_t)n * d * 4) != 0) perror("ftruncate");
  fclose(f);
}

/* Entries whose name holds ".tmp.": temporaries of the atomic writer. */
static int temporaries(const char *dir) {
  DIR *d = opendir(at(dir));
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
  if (d) closedir(d);
  return n;
}

/* Models shared by the cases, trained once: an unconditional one (dsm),
 * whose score overflows for inputs near FLT_MAX, and a noise-conditional
 * one (ncsn). */
static int have_models;
static void models(void) {
  if (have_models) return;
  have_models = 1;
  if (run("train --objective dsm --steps 3 --n-data 200 --hidden 16 --depth 1 --quiet --out m") != 0 ||
      run("train --objective ncsn --levels 3 --steps 3 --n-data 200 --hidden 8 --depth 1 --quiet --out nc") != 0)
    fprintf(stderr, "training the test models failed: %s\n", err);
  static const float pts[8] = {0, 0, 1, -1, 0.5f, 2, -3, 0.25f};
  write_npy("pts.npy", 4, 2, pts);
}

#define M "m/model.safetensors"
#define NC "nc/model.safetensors"

/* ---- outputs: never replace what is not a regular file ---- */

TEST(out_never_replaces_special_files) {
  models();
  CHECK_EQ_INT(mkfifo(at("fifo.npy"), 0644), 0);
  CHECK_EQ_INT(mkfifo(at("fifo.png"), 0644), 0);
  CHECK_EQ_INT(mkdir(at("adir"), 0755), 0);
  REFUSED("score --model " M " --input pts.npy --out fifo.npy", "fifo.npy", "not a regular file");
  CHECK_EQ_INT(kind_of("fifo.npy"), S_IFIFO);
  REFUSED("sample --model " NC " --n 10 --steps-per-level 2 --out fifo.npy", "fifo.npy",
          "not a regular file");
  CHECK_EQ_INT(kind_of("fifo.npy"), S_IFIFO);
  REFUSED("sample --model " NC " --n 10 --steps-per-level 2 --out s.npy --plot fifo.png", "fifo.png",
          "not a regular file");
  CHECK_EQ_INT(kind_of("fifo.png"), S_IFIFO);
  REFUSED("score --model " M " --input pts.npy --out adir", "adir", "directory");
  CHECK_EQ_INT(kind_of("adir"), S_IFDIR);
  /* A link to a FIFO is the FIFO. */
  CHECK_EQ_INT(symlink("fifo.npy", at("tofifo.npy")), 0);
  REFUSED("score --model " M " --input pts.npy --out tofifo.npy", "tofifo.npy", "not a regular file");
  CHECK_EQ_INT(kind_of("fifo.npy"), S_IFIFO);
  CHECK_EQ_INT(kind_of("tofifo.npy"), S_IFLNK);
  /* A device node (a copy of /dev/null): only root may make one. */
  if (mknod(at("null"), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    REFUSED("sample --model " NC " --n 10 --steps-per-level 2 --out null", "null",
            "not a regular file");
    CHECK_EQ_INT(kind_of("null"), S_IFCHR);
    REFUSED("score --model " M " --input pts.npy --out null", "null", "not a regular file");
    CHECK_EQ_INT(kind_of("null"), S_IFCHR);
    /* The library writers share the check. */
    const int64_t shape[2] = {1, 2};
    const float v[2] = {1, 2};
    CHECK_EQ_INT(sk_npy_save_f32(at("null"), 2, shape, v), SK_ERR_IO);
    CHECK(strstr(sk_last_error(), "not a regular file"));
    CHECK_EQ_INT(kind_of("null"), S_IFCHR);
  } else {
    printf("(not root: no device node made)\n");
  }
  const int64_t shape[2] = {1, 2};
  const float v[2] = {1, 2};
  CHECK_EQ_INT(sk_npy_save_f32(at("fifo.npy"), 2, shape, v), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "fifo.npy") && strstr(sk_last_error(), "not a regular file"));
  CHECK_EQ_INT(kind_of("fifo.npy"), S_IFIFO);
  const sk_named_tensor t = {"w", 2, {1, 2}, v};
  CHECK_EQ_INT(sk_safetensors_save(at("fifo.npy"), &t, 1, NULL, 0), SK_ERR_IO);
  CHECK_EQ_INT(kind_of("fifo.npy"), S_IFIFO);
  CHECK_EQ_INT(temporaries("."), 0);
}

TEST(out_through_a_symlink_writes_its_target) {
  models();
  CHECK_EQ_INT(mkdir(at("real"), 0755), 0);
  write_file("real/target.npy", "old", 3);
  CHECK_EQ_INT(symlink("real/target.npy", at("link.npy")), 0);
  CHECK_EQ_INT(run("score --model " M " --input pts.npy --out link.npy"), 0);
  CHECK_EQ_INT(kind_of("link.npy"), S_IFLNK);
  CHECK_EQ_INT(kind_of("real/target.npy"), S_IFREG);
  sk_tensor *x = NULL;
  CHECK_OK(sk_npy_load(at("real/target.npy"), &x));
  CHECK_EQ_INT(sk_tensor_shape(x)[0], 4);
  sk_tensor_free(x);
  /* A dangling link: its target is created, the link kept. */
  CHECK_EQ_INT(symlink("real/new.npy", at("dangling.npy")), 0);
  CHECK_EQ_INT(run("score --model " M " --input pts.npy --out dangling.npy"), 0);
  CHECK_EQ_INT(kind_of("dangling.npy"), S_IFLNK);
  CHECK_EQ_INT(kind_of("real/new.npy"), S_IFREG);
  /* A relative link in a subdirectory is relative to that directory. */
  CHECK_EQ_INT(symlink("target.npy", at("real/rel.npy")), 0);
  CHECK_EQ_INT(run("score --model " M " --input pts.npy --out real/rel.npy"), 0);
  CHECK_EQ_INT(kind_of("real/rel.npy"), S_IFLNK);
  CHECK_OK(sk_npy_load(at("real/target.npy"), &x));
  sk_tensor_free(x);
  /* A loop of links is an error, not a hang. */
  CHECK_EQ_INT(symlink("loop2.npy", at("loop1.npy")), 0);
  CHECK_EQ_INT(symlink("loop1.npy", at("loop2.npy")), 0);
  REFUSED("score --model " M " --input pts.npy --out loop1.npy", "loop1.npy", "symbolic links");
  CHECK_EQ_INT(temporaries("."), 0);
  CHECK_EQ_INT(temporaries("real"), 0);
}

/* The demo's metrics and guided-sampling JSON go through the same writer
 * (they used to be opened with fopen, which waits forever on a FIFO). */
TEST(demo_outputs_are_checked_first) {
  CHECK_EQ_INT(mkdir(at("demo"), 0755), 0);
  CHECK_EQ_INT(mkfifo(at("demo/metrics.json"), 0644), 0);
  int rc = run_with("", 60,
                    "demo --out demo --steps 20 --classifier-steps 20 --n 100 --steps-per-level 2");
  static const char *const needles[] = {"demo/metrics.json", "not a regular file", NULL};
  CHECK(refused(rc, "demo into a FIFO metrics.json", needles));
  CHECK_EQ_INT(kind_of("demo/metrics.json"), S_IFIFO);
  CHECK_EQ_INT(kind_of("demo/model.safetensors"), 0); /* refused before training */
}

/* ---- loaders: a FIFO is refused, never waited on ---- */

TEST(fifo_inputs_do_not_hang) {
  models();
  static const char *const fifos[] = {"in.csv", "in.npy", "lab.npy", "in.safetensors",
                                      "run/state.safetensors"};
  CHECK_EQ_INT(mkdir(at("run"), 0755), 0);
  for (size_t i = 0; i < sizeof fifos / sizeof *fifos; i++) CHECK_EQ_INT(mkfifo(at(fifos[i]), 0644), 0);
  static const struct {
    const char *args, *file;
  } cases[] = {
      {"train --data in.csv --steps 1 --out o", "in.csv"},
      {"train --data in.npy --steps 1 --out o", "in.npy"},
      {"train --data pts.npy --labels lab.npy --steps 1 --out o", "lab.npy"},
      {"sample --model in.safetensors --out s.npy", "in.safetensors"},
      {"score --model in.safetensors --input pts.npy --out s.npy", "in.safetensors"},
      {"score --model " M " --input in.npy --out s.npy", "in.npy"},
      {"eval --samples in.npy --data mog8", "in.npy"},
      {"eval --samples pts.npy --data in.csv", "in.csv"},
      {"train --objective dsm --hidden 16 --depth 1 --steps 5 --resume run --out run", "run/state.safetensors"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int rc = run_with("", 20, cases[i].args);
    const char *const needles[] = {cases[i].file, "not a regular file", NULL};
    CHECK(refused(rc, cases[i].args, needles));
  }
  for (size_t i = 0; i < sizeof fifos / sizeof *fifos; i++) CHECK_EQ_INT(kind_of(fifos[i]), S_IFIFO);
  /* The library loaders directly. */
  sk_tensor *x = NULL;
  CHECK_EQ_INT(sk_csv_load(at("in.csv"), NULL, &x, NULL), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "in.csv") && strstr(sk_last_error(), "FIFO"));
  CHECK_EQ_INT(sk_npy_load(at("in.npy"), &x), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "FIFO"));
  sk_safetensors *st = NULL;
  CHECK_EQ_INT(sk_safetensors_load(at("in.safetensors"), &st), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "FIFO"));
  CHECK_EQ_INT(sk_csv_load(at("run"), NULL, &x, NULL), SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "directory"));
}

/* The run's log, the one file written in place: a FIFO, a symbolic link or
 * a directory where DIR/log.csv (or its rewrite, log.csv.trim) should be is
 * refused at once, naming it, and nothing is trained or written; the old
 * code waited on the FIFO for ever, or appended through the link. */
TEST(run_log_that_is_not_a_file_is_refused) {
  const char *flags = "train --objective dsm --hidden 8 --depth 1 --n-data 100 --quiet";
  char args[512];
  snprintf(args, sizeof args, "%s --steps 3 --out lg", flags);
  CHECK_EQ_INT(run(args), 0);
  static char good[4096];
  read_into("lg/log.csv", good, sizeof good);
  CHECK_EQ_INT(lines(good), 4);
  write_file("elsewhere.csv", "mine\n", 5);
  static const struct {
    const char *name, *kind; /* what is put in the run directory */
  } cases[] = {{"lg/log.csv", "FIFO"},         {"lg/log.csv", "symbolic link"},
               {"lg/log.csv", "directory"},    {"lg/log.csv.trim", "FIFO"},
               {"lg/log.csv.trim", "symbolic link"}};
  snprintf(args, sizeof args, "%s --steps 6 --resume lg --out lg", flags);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    write_file("lg/log.csv", good, strlen(good));
    const char *path = at(cases[k].name);
    unlink(path);
    if (!strcmp(cases[k].kind, "FIFO")) CHECK_EQ_INT(mkfifo(path, 0644), 0);
    else if (!strcmp(cases[k].kind, "directory")) CHECK_EQ_INT(mkdir(path, 0755), 0);
    else CHECK_EQ_INT(symlink("../elsewhere.csv", path), 0);
    const int rc = run_with("", 20, args);
    const char *const needles[] = {cases[k].name, cases[k].kind, "not a regular file", NULL};
    CHECK(refused(rc, args, needles));
    CHECK(kind_of(cases[k].name) == (!strcmp(cases[k].kind, "FIFO")        ? S_IFIFO
                                     : !strcmp(cases[k].kind, "directory") ? S_IFDIR
                                                                           : S_IFLNK));
    if (!strcmp(cases[k].kind, "directory")) rmdir(path);
    else unlink(path);
  }
  static char mine[64];
  read_into("elsewhere.csv", mine, sizeof mine);
  CHECK(strcmp(mine, "mine\n") == 0); /* never written through the link */
  /* With a plain log again the run goes on from its checkpoint. */
  write_file("lg/log.csv", good, strlen(good));
  CHECK_EQ_INT(run(args), 0);
  static char after[4096];
  read_into("lg/log.csv", after, sizeof after);
  CHECK_EQ_INT(lines(after), 7);
}

/* ---- model files: shapes checked before anything is allocated ---- */

/* A safetensors file whose tensors are `t` (F32) preceded by `junk_floats`
 * zeros named "junk" (a hole in a sparse file, ending in one NaN), with the
 * model config `config` as "scorekit" metadata. */
static int write_model_file(const char *name, const char *config, const sk_named_tensor *t, int n,
                            uint64_t junk_floats) {
  char header[8192];
  int h = snprintf(header, sizeof header, "{\"__metadata__\":{\"scorekit\":\"");
  for (const char *c = config; *c; c++) {
    if (*c == '"') header[h++] = '\\';
    header[h++] = *c;
  }
  h += snprintf(header + h, sizeof header - (size_t)h, "\"}");
  uint64_t off = 0;
  if (junk_floats) {
    h += snprintf(header + h, sizeof header - (size_t)h,
                  ",\"junk\":{\"dtype\":\"F32\",\"shape\":[%llu],\"data_offsets\":[0,%llu]}",
                  (unsigned long long)junk_floats, (unsigned long long)(junk_floats * 4));
    off = junk_floats * 4;
  }
  for (int i = 0; i < n; i++) {
    uint64_t numel = 1;
    h += snprintf(header + h, sizeof header - (size_t)h, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[",
                  t[i].name);
    for (int k = 0; k < t[i].ndim; k++) {
      h += snprintf(header + h, sizeof header - (size_t)h, "%s%lld", k ? "," : "",
                    (long long)t[i].shape[k]);
      numel *= (uint64_t)t[i].shape[k];
    }
    h += snprintf(header + h, sizeof header - (size_t)h, "],\"data_offsets\":[%llu,%llu]}",
                  (unsigned long long)off, (unsigned long long)(off + numel * 4));
    off += numel * 4;
  }
  h += snprintf(header + h, sizeof header - (size_t)h, "}");
  FILE *f = fopen(at(name), "wb");
  if (!f) return 0;
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h >> (8 * i));
  fwrite(len, 1, 8, f);
  fwrite(header, 1, (size_t)h, f);
  if (junk_floats) {
    fflush(f);
    const float nan = NAN;
    if (fseeko(f, (off_t)(8 + h) + (off_t)(junk_floats - 1) * 4, SEEK_SET) != 0) return 0;
    fwrite(&nan, 4, 1, f);
  }
  for (int i = 0; i < n; i++) {
    uint64_t numel = 1;
    for (int k = 0; k < t[i].ndim; k++) numel *= (uint64_t)t[i].shape[k];
    fwrite(t[i].data, 4, (size_t)numel, f);
  }
  return fclose(f) == 0;
}

/* The tensors of a small mlp (dim 2, hidden 8, depth 1): raw weights
 * poisoned with NaN when `poison_raw`, then "ema." weights. */
static int small_model_tensors(sk_named_tensor *t, float *store, char names[][32], int poison_raw) {
  static const int64_t shapes[4][2] = {{8, 2}, {8, 0}, {2, 8}, {2, 0}};
  static const char *const base[4] = {"mlp.0.weight", "mlp.0.bias", "mlp.1.weight", "mlp.1.bias"};
  int n = 0;
  float *p = store;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < 4; i++) {
      snprintf(names[n], 32, "%s%s", pass ? "ema." : "", base[i]);
      t[n].name = names[n];
      t[n].ndim = shapes[i][1] ? 2 : 1;
      t[n].shape[0] = shapes[i][0];
      t[n].shape[1] = shapes[i][1];
      int64_t numel = shapes[i][0] * (shapes[i][1] ? shapes[i][1] : 1);
      for (int64_t k = 0; k < numel; k++) p[k] = pass == 0 && poison_raw ? NAN : 0.01f * (float)k;
      t[n].data = p;
      p += numel;
      n++;
    }
  return n;
}

TEST(model_shapes_checked_before_allocating) {
  sk_named_tensor t[8];
  float store[256];
  char names[8][32];
  int n = small_model_tensors(t, store, names, 0);
  /* The metadata claims a width whose weights would take a terabyte. */
  const char *liar = "{\"format\":\"scorekit-model\",\"version\":1,\"kind\":\"mlp\",\"dim\":2,"
                     "\"hidden\":65536,\"depth\":62,\"classes\":0,\"activation\":\"softplus\"}";
  CHECK(write_model_file("liar.safetensors", liar, t, n, 0));
  sk_model *m = NULL;
  CHECK_EQ_INT(sk_model_load(at("liar.safetensors"), 1, &m, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "liar.safetensors") && strstr(sk_last_error(), "mlp.0.weight") &&
        strstr(sk_last_error(), "[8, 2] in the file") && strstr(sk_last_error(), "[65536, 2]"));
  CHECK(m == NULL);
  REFUSED("sample --model liar.safetensors --out s.npy", "liar.safetensors", "mlp.0.weight",
          "[65536, 2]");
  /* A tensor the config lacks. */
  const char *deeper = "{\"format\":\"scorekit-model\",\"version\":1,\"kind\":\"mlp\",\"dim\":2,"
                       "\"hidden\":8,\"depth\":2,\"classes\":0,\"activation\":\"softplus\"}";
  CHECK(write_model_file("deeper.safetensors", deeper, t, n, 0));
  CHECK_EQ_INT(sk_model_load(at("deeper.safetensors"), 1, &m, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "ema.mlp.1.weight") && strstr(sk_last_error(), "[8, 8]"));
}

TEST(unused_tensors_are_not_read) {
  sk_named_tensor t[8];
  float store[256];
  char names[8][32];
  int n = small_model_tensors(t, store, names, 1);
  const char *cfg = "{\"format\":\"scorekit-model\",\"version\":1,\"kind\":\"mlp\",\"dim\":2,"
                    "\"hidden\":8,\"depth\":1,\"classes\":0,\"activation\":\"softplus\"}";
  /* 1 GiB of an unused tensor (a hole ending in a NaN) before the weights,
   * whose raw half holds NaN: loading the EMA half reads neither. */
  CHECK(write_model_file("sparse.safetensors", cfg, t, n, 1ull << 28));
  sk_model *m = NULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK_OK(sk_model_load(at("sparse.safetensors"), 1, &m, NULL));
  clock_gettime(CLOCK_MONOTONIC, &t1);
  CHECK(sk_model_params(m)[1] == 0.01f);
  sk_model_free(m);
  printf("loaded past a 1 GiB unused tensor in %.3f s\n",
         (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
  /* The raw weights are read when asked for, and checked. */
  CHECK_EQ_INT(sk_model_load(at("sparse.safetensors"), 0, &m, NULL), SK_ERR_NUMERIC);
  CHECK(strstr(sk_last_error(), "'mlp.0.weight'") && strstr(sk_last_error(), "NaN"));
  CHECK_EQ_INT(run("score --model sparse.safetensors --ema --input pts.npy --out sp.npy"), 0);
}

/* ---- signals: a write killed by SIGTERM or SIGINT leaves no temporary ---- */

/* Starts `scorekit score` on `rows` rows into sig/s.npy, sends `sig` as soon
 * as its temporary file appears, and returns how the process ended:
 * -1 when it finished before the temporary was seen. */
static int kill_during_write(int sig, long long rows, int *status) {
  write_sparse_npy("sig/in.npy", rows, 2);
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(tmp) != 0) _exit(126);
    signal(SIGINT, SIG_DFL); /* a child of system() may inherit it ignored */
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    execl(SK_CLI_PATH, SK_CLI_PATH, "score", "--model", "tiny/model.safetensors", "--input",
          "sig/in.npy", "--out", "sig/s.npy", (char *)NULL);
    _exit(127);
  }
  int seen = 0;
  for (int i = 0; i < 600000 && !seen; i++) {
    if (temporaries("sig") > 0) {
      seen = 1;
      kill(pid, sig);
      break;
    }
    if (waitpid(pid, status, WNOHANG) == pid) return -1;
    usleep(100);
  }
  if (!seen) kill(pid, SIGKILL);
  waitpid(pid, status, 0);
  return seen;
}

TEST(signals_remove_the_live_temporary) {
  models();
  CHECK_EQ_INT(run("train --objective dsm --steps 2 --n-data 100 --hidden 4 --depth 1 --quiet --out tiny"), 0);
  CHECK_EQ_INT(mkdir(at("sig"), 0755), 0);
  static const int sigs[2] = {SIGTERM, SIGINT};
  for (int s = 0; s < 2; s++) {
    long long rows = 1 << 20;
    int status = 0, got = -1;
    for (int tries = 0; tries < 6 && got < 0; tries++, rows *= 2) {
      unlink(at("sig/s.npy"));
      got = kill_during_write(sigs[s], rows, &status);
    }
    CHECK(got == 1);
    /* Died of the signal itself (the shell's 128 + n), after removing its
     * temporary; the destination was never made. */
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == sigs[s]);
    CHECK_EQ_INT(temporaries("sig"), 0);
    CHECK_EQ_INT(kind_of("sig/s.npy"), 0);
  }
}

/* Temporaries of a process that is gone, named by the writer's rule
 * NAME.tmp.PID.XXXXXX, are removed when a command starts writing there;
 * those of a live process, and names that do not follow the rule, stay. */
TEST(stale_temporaries_are_removed_at_start) {
  models();
  CHECK_EQ_INT(mkdir(at("stale"), 0755), 0);
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, NULL, 0);
  char name[128];
  snprintf(name, sizeof name, "stale/s.npy.tmp.%d.aB3dE9", (int)dead);
  write_file(name, "partial", 7);
  char name2[128];
  snprintf(name2, sizeof name2, "stale/model.safetensors.tmp.%d.Zz9Yy8", (int)dead);
  write_file(name2, "partial", 7);
  char live[128];
  snprintf(live, sizeof live, "stale/s.npy.tmp.%d.abcdef", (int)getpid());
  write_file(live, "mine", 4);
  write_file("stale/notes.tmp.1.txt", "user", 4);
  write_file("stale/s.npy.tmp.QwErTy", "old", 3);
  CHECK_EQ_INT(run("score --model " M " --input pts.npy --out stale/s.npy"), 0);
  CHECK_EQ_INT(kind_of(name), 0);
  CHECK_EQ_INT(kind_of(name2), 0);
  CHECK_EQ_INT(kind_of(live), S_IFREG);
  CHECK_EQ_INT(kind_of("stale/notes.tmp.1.txt"), S_IFREG);
  CHECK_EQ_INT(kind_of("stale/s.npy.tmp.QwErTy"), S_IFREG);
  CHECK(strstr(out, "removed 2 stale temporary files"));
  CHECK_EQ_INT(kind_of("stale/s.npy"), S_IFREG);
}

/* ---- output paths checked before any work ---- */

TEST(outputs_checked_before_computing) {
  models();
  write_file("afile", "x", 1);
  /* The output is checked first: before the model or input is even read. */
  REFUSED("sample --model missing.safetensors --out nodir/x.npy", "nodir/x.npy", "nodir",
          "does not exist");
  REFUSED("score --model missing.safetensors --input missing.npy --out nodir/s.npy", "nodir/s.npy",
          "does not exist");
  REFUSED("score --model " M " --input missing.npy --out afile/s.npy", "afile/s.npy", "not a directory");
  /* (Sampling this would take hours.) */
  static const char *const plot_needles[] = {"nodir/p.png", "does not exist", NULL};
  const char *slow = "sample --model " NC " --n 1000000 --steps-per-level 1000000 --out ok.npy --plot nodir/p.png";
  CHECK(refused(run_with("", 30, slow), slow, plot_needles));
  CHECK_EQ_INT(kind_of("ok.npy"), 0);
  /* A name longer than the system allows (255 bytes) is refused at once... */
  char args[8192], name[300];
  memset(name, 'a', 260);
  strcpy(name + 260, ".npy");
  snprintf(args, sizeof args, "score --model " M " --input missing.npy --out %s", name);
  REFUSED(args, "too long");
  /* ... and one just under it works: the temporary's name is shortened. */
  memset(name, 'b', 251);
  strcpy(name + 251, ".npy");
  snprintf(args, sizeof args, "score --model " M " --input pts.npy --out %s", name);
  CHECK_EQ_INT(run(args), 0);
  CHECK_EQ_INT(kind_of(name), S_IFREG);
  CHECK_EQ_INT(temporaries("."), 0);
  /* A path near PATH_MAX (4096): 16 directories of 250 bytes, then a name
   * that leaves no room for the temporary's suffix. */
  char rel[4400] = "";
  size_t len = 0;
  for (int i = 0; i < 16; i++) {
    rel[len++] = i ? '/' : 'p';
    memset(rel + len, 'd', 249);
    len += 249;
    rel[len] = 0;
    CHECK_EQ_INT(mkdir(at(rel), 0755), 0);
  }
  rel[len++] = '/';
  while (len < 4085) rel[len++] = 'f';
  rel[len] = 0;
  snprintf(args, sizeof args, "score --model " M " --input missing.npy --out %s", rel);
  REFUSED(args, "too long");
}

/* No output names the same file as an input or another output (where one
 * would silently replace the other, a model or data set included), however
 * the paths are spelled; and when a later output fails, the ones written
 * before it are whole (each written atomically, each reported), the failed
 * one absent. */
TEST(outputs_never_name_an_input_or_each_other) {
  models();
  REFUSED("sample --model " NC " --n 5 --steps-per-level 2 --out s1.npy --plot s1.npy",
          "--plot s1.npy", "the same file as --out");
  REFUSED("sample --model " NC " --n 5 --steps-per-level 2 --out ./s1.npy --trajectory s1.npy",
          "--trajectory s1.npy", "the same file as --out");
  CHECK_EQ_INT(kind_of("s1.npy"), 0);
  REFUSED("sample --model " NC " --n 5 --steps-per-level 2 --out ./" NC, "./" NC, "the same file as --model");
  REFUSED("score --model " M " --input pts.npy --out ./pts.npy", "--out ./pts.npy",
          "the same file as --input");
  REFUSED("score --model " M " --input pts.npy --out " M, "the same file as --model");
  REFUSED("inpaint --model " NC " --input pts.npy --mask-kind half --out f.npy --mask-out f.npy",
          "--mask-out f.npy", "the same file as --out");
  REFUSED("grid --in pts.npy --out pts.npy", "--out pts.npy", "the same file as --in");
  /* A dangling link is the file it names, as the writer follows it. */
  CHECK_EQ_INT(symlink("tgt.npy", at("to-tgt.npy")), 0);
  REFUSED("sample --model " NC " --n 5 --steps-per-level 2 --out to-tgt.npy --plot tgt.npy",
          "--plot tgt.npy", "the same file as --out");
  CHECK_EQ_INT(kind_of("tgt.npy"), 0);
  /* The inputs are as they were. */
  CHECK_EQ_INT(run("score --model " M " --input pts.npy --out sc.npy"), 0);
  CHECK_EQ_INT(run("sample --model " NC " --n 5 --steps-per-level 2 --out s2.npy"), 0);
  /* A write that fails after the first output: at 2 KiB a file (ulimit -f
   * 4), the samples fit and the plot does not. */
  const char *big = "sample --model " NC " --n 50 --steps-per-level 2 --out o.npy --plot p.png";
  static const char *const fsz[] = {"p.png", "write failed", NULL};
  CHECK(refused(run_with("trap '' XFSZ; ulimit -f 4;", 120, big), big, fsz));
  CHECK(strstr(out, "wrote o.npy") != NULL);
  CHECK_EQ_INT(kind_of("p.png"), 0);
  CHECK_EQ_INT(temporaries("."), 0);
  CHECK_EQ_INT(run("score --model " NC " --input o.npy --out so.npy"), 0); /* o.npy whole */
  CHECK_EQ_INT(run(big), 0);
  CHECK_EQ_INT(kind_of("p.png"), S_IFREG);
}

/* ---- allocations ---- */

/* SCOREKIT_DEBUG_FAIL_ALLOC=N makes the program's own allocations fail
 * from the N-th on: each must be a one-line message and exit 1. */
static int fail_each_allocation(const char *args, int limit) {
  int n = 0;
  for (; n < 40; n++) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "SCOREKIT_DEBUG_FAIL_ALLOC=%d", n);
    int rc = run_with(prefix, limit, args);
    if (rc == 0) break;
    static const char *const needles[] = {"out of memory", NULL};
    if (!refused(rc, args, needles)) return -1;
  }
  return n;
}

TEST(every_cli_allocation_is_checked) {
  models();
  /* score's output buffer; eval's mixture statistics; sample's particles. */
  int k = fail_each_allocation("score --model " M " --input pts.npy --out a.npy", 60);
  printf("score: %d allocations\n", k);
  CHECK(k >= 1);
  k = fail_each_allocation("eval --samples pts.npy --data mog8", 60);
  printf("eval: %d allocations\n", k);
  CHECK(k >= 2);
  k = fail_each_allocation("sample --model " NC " --n 50 --steps-per-level 2 --out b.npy", 60);
  printf("sample: %d allocations\n", k);
  CHECK(k >= 1);
  if (!SANITIZED) {
    k = fail_each_allocation(
        "demo --out dm --steps 10 --classifier-steps 10 --n 40 --steps-per-level 1", 300);
    printf("demo: %d allocations\n", k);
    CHECK(k >= 4);
  }
}

/* The same with the system's limit on memory: score's output buffer, as
 * large as its input, is the allocation that fails. (Not under
 * AddressSanitizer, which reserves terabytes of address space.) */
TEST(score_out_of_memory_is_a_message) {
  if (SANITIZED) {
    printf("skipped under the sanitizers\n");
    return;
  }
  models();
  write_sparse_npy("half_gib.npy", 64ll << 20, 2);
  int rc = run_with("ulimit -v 1000000;", 120, "score --model " M " --input half_gib.npy --out big.npy");
  static const char *const needles[] = {"out of memory", NULL};
  CHECK(refused(rc, "score under ulimit -v", needles));
  CHECK_EQ_INT(kind_of("big.npy"), 0);
  unlink(at("half_gib.npy"));
}

/* An allocation far beyond any machine is a message in every build, the
 * sanitizers' included (scripts/test.sh sets allocator_may_return_null=1). */
TEST(huge_allocation_is_a_message) {
  sk_model_config c = {SK_MODEL_MLP, 4096, 1, 1, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&c);
  CHECK(m != NULL);
  CHECK_OK(sk_model_save(at("wide.safetensors"), m, sk_model_params(m), NULL));
  sk_model_free(m);
  REFUSED("sample --model wide.safetensors --n 100000000 --out w.npy", "out of memory");
}

/* ---- values and messages ---- */

TEST(score_refuses_non_finite_output) {
  models();
  static const float big[4] = {3.4e38f, 3.4e38f, 0.5f, 0.5f};
  write_npy("big.npy", 2, 2, big);
  REFUSED("score --model " M " --input big.npy --out inf.npy", "row 0", "not finite");
  CHECK_EQ_INT(kind_of("inf.npy"), 0);
}

TEST(eval_prints_valid_json_and_no_false_floor) {
  float far[200];
  for (int i = 0; i < 200; i++) far[i] = 1e19f;
  write_npy("far.npy", 100, 2, far);
  CHECK_EQ_INT(run("eval --samples far.npy --data mog8 --json"), 0);
  CHECK(!strstr(out, "inf") && !strstr(out, "nan"));
  CHECK(strstr(out, "\"mean_log_density\":null"));
  /* Three rows of data: too few for a floor (two halves of >= 2 rows). */
  static const float three[6] = {0, 1, 2, 3, 4, 5};
  write_npy("three.npy", 3, 2, three);
  float s[100];
  for (int i = 0; i < 100; i++) s[i] = (float)(i % 7);
  write_npy("s50.npy", 50, 2, s);
  CHECK_EQ_INT(run("eval --samples s50.npy --data three.npy"), 0);
  CHECK(strstr(out, "n/a"));
  const char *row = strstr(out, "energy distance");
  CHECK(row != NULL);
  const char *eol = strchr(row, '\n');
  CHECK(eol && eol - row > 4 && memcmp(eol - 3, "n/a", 3) == 0);
  CHECK_EQ_INT(run("eval --samples s50.npy --data three.npy --json"), 0);
  CHECK(!strstr(out, "floor"));
}

TEST(csv_first_row_mixing_numbers_and_text_is_an_error) {
  write_file("na.csv", "1,NA\n2,3\n4,5\n", 13);
  sk_tensor *x = NULL;
  CHECK_EQ_INT(sk_csv_load(at("na.csv"), NULL, &x, NULL), SK_ERR_FORMAT);
  CHECK(strstr(sk_last_error(), "line 1, column 2") && strstr(sk_last_error(), "'NA'"));
  CHECK(x == NULL);
  REFUSED("train --data na.csv --steps 1 --out o", "na.csv", "line 1, column 2", "'NA'");
  /* A row of names is still a header. */
  write_file("named.csv", "x,y\n2,3\n4,5\n", 12);
  CHECK_OK(sk_csv_load(at("named.csv"), NULL, &x, NULL));
  CHECK_EQ_INT(sk_tensor_shape(x)[0], 2);
  sk_tensor_free(x);
}

TEST(messages_name_the_right_problem) {
  models();
  REFUSED("score --model " M " --bogus", "unknown flag --bogus");
  REFUSED("sample --model " NC " --out s.npy --frob", "unknown flag --frob");
  REFUSED("eval --samples pts.npy --data mog8 --frob", "unknown flag --frob");
  REFUSED("demo --frob", "unknown flag --frob");
  /* A flag where a value should be: the value is missing. */
  REFUSED("score --model --input pts.npy --out s.npy", "--model", "missing value");
  REFUSED("sample --model " NC " --out", "--out", "missing value");
  /* A flag given twice would have one of its values ignored. */
  REFUSED("score --model " M " --input pts.npy --out t1.npy --out t2.npy", "--out", "given twice",
          "\"t1.npy\" and \"t2.npy\"");
  CHECK_EQ_INT(kind_of("t1.npy") | kind_of("t2.npy"), 0);
  /* Labels that are not integers: the message names the labels' file. */
  static const float half[4] = {0.5f, 1, 2, 0};
  write_npy("halves.npy", 4, -1, half);
  REFUSED("train --data pts.npy --labels halves.npy --steps 1 --out o", "halves.npy", "label 0 is 0.5");
  /* train's flags go through the same parser as the other commands'. */
  REFUSED("train --steps 5 --bogus 3 --out o", "unknown flag --bogus");
  REFUSED("train --steps 5 --out", "--out", "missing value");
  REFUSED("train --steps --out o", "--steps", "missing value");
  REFUSED("train --lr --rademacher --out o", "--lr", "missing value");
  REFUSED("train --steps 5 --steps 6 --out o", "--steps", "given twice", "\"5\" and \"6\"");
  REFUSED("train --out o --steps 1 --out p", "--out", "given twice", "\"o\" and \"p\"");
  CHECK_EQ_INT(kind_of("o") | kind_of("p"), 0);
}

TEST(inapplicable_flags_are_errors) {
  models();
  REFUSED("score --model " M " --input pts.npy --out s.npy --sigma 0.5", "--sigma", "unconditional");
  REFUSED("sample --model " NC " --out s.npy --init-range 3", "--init-range", "--init uniform");
  REFUSED("sample --model " NC " --out s.npy --guidance 2", "--guidance", "--classifier");
  REFUSED("demo --data fashion-mnist --steps 5 --out dm", "--steps", "2-D sets only");
  REFUSED("demo --levels 5 --out dm", "--levels", "--data fashion-mnist only");
  REFUSED("demo --data moons.csv --out dm", "--data", "neither a built-in 2-D set nor fashion-mnist");
  REFUSED("train --data pts.npy --label-column 1 --steps 1 --out o", "--label-column", ".csv");
  REFUSED("train --data mog8 --labels pts.npy --steps 1 --out o", "--labels", ".npy");
  /* Every train flag that only some objectives or models read. */
  static const struct {
    const char *args, *flag, *applies;
  } train[] = {
      {"--objective dsm --projections 4", "--projections", "ssm and ssm-vr only"},
      {"--objective ncsn --projections 4", "--projections", "ssm and ssm-vr only"},
      {"--objective esm --rademacher", "--rademacher", "ssm and ssm-vr only"},
      {"--objective ncsn --sigma 0.5", "--sigma", "dsm, and esm, ssm and ssm-vr with --model ncmlp, only"},
      {"--objective vesde --sigma 0.5", "--sigma", "the σ ladder is --levels"},
      {"--objective classifier --sigma 0.5", "--sigma", "only"},
      {"--objective ssm --sigma 0.5", "--sigma", "an mlp has no σ input"},
      {"--objective dsm --levels 5", "--levels", "ncsn, vesde and classifier only"},
      {"--objective esm --sigma-max 5", "--sigma-max", "ncsn, vesde and classifier only"},
      {"--objective ssm-vr --sigma-min 0.1", "--sigma-min", "ncsn, vesde and classifier only"},
      {"--objective dsm --sigmas 2,1", "--sigmas", "ncsn, vesde and classifier only"},
      {"--sigmas 2,1 --levels 5", "--levels", "does not apply with --sigmas"},
      {"--objective vesde --sigmas 2,1 --sigma-max 3", "--sigma-max", "does not apply with --sigmas"},
      {"--data img.npy --model unet --hidden 16", "--hidden", "the MLP models only"},
      {"--data img.npy --model unet --objective vesde --activation tanh", "--activation", "MLP models only"},
      {"--model ncmlp --channels 4,4,4,4", "--channels", "--model unet or convnet only"},
  };
  static const float img[2 * 16] = {0};
  write_npy("img.npy", 2, 16, img);
  for (size_t k = 0; k < sizeof train / sizeof train[0]; k++) {
    char args[512];
    snprintf(args, sizeof args, "train %s --steps 1 --quiet --out o", train[k].args);
    const char *needles[] = {train[k].flag, "applies to", train[k].applies, NULL};
    if (strstr(train[k].applies, "does not")) needles[1] = train[k].applies;
    CHECK(refused(run(args), args, needles));
  }
  /* And where they apply, they are taken. */
  CHECK_EQ_INT(run("train --objective ssm --projections 2 --rademacher --n-data 100 --hidden 8 "
                   "--depth 1 --steps 1 --quiet --out ok1"), 0);
  CHECK_EQ_INT(run("train --objective ssm --model ncmlp --sigma 0.3 --n-data 100 --hidden 8 "
                   "--depth 1 --steps 1 --quiet --out ok2"), 0);
  CHECK_EQ_INT(run("train --objective vesde --levels 4 --sigma-max 3 --n-data 100 --hidden 8 "
                   "--depth 1 --steps 1 --quiet --out ok3"), 0);
  CHECK_EQ_INT(kind_of("o"), 0);
}

int main(int argc, char **argv) {
  snprintf(tmp, sizeof tmp, "/tmp/sk_hostile_XXXXXX");
  if (!mkdtemp(tmp)) return 1;
  static const sk_test_case cases[] = {
      TEST_ENTRY(out_never_replaces_special_files),
      TEST_ENTRY(out_through_a_symlink_writes_its_target),
      TEST_ENTRY(demo_outputs_are_checked_first),
      TEST_ENTRY(fifo_inputs_do_not_hang),
      TEST_ENTRY(run_log_that_is_not_a_file_is_refused),
      TEST_ENTRY(model_shapes_checked_before_allocating),
      TEST_ENTRY(unused_tensors_are_not_read),
      TEST_ENTRY(signals_remove_the_live_temporary),
      TEST_ENTRY(stale_temporaries_are_removed_at_start),
      TEST_ENTRY(outputs_checked_before_computing),
      TEST_ENTRY(outputs_never_name_an_input_or_each_other),
      TEST_ENTRY(every_cli_allocation_is_checked),
      TEST_ENTRY(score_out_of_memory_is_a_message),
      TEST_ENTRY(huge_allocation_is_a_message),
      TEST_ENTRY(score_refuses_non_finite_output),
      TEST_ENTRY(eval_prints_valid_json_and_no_false_floor),
      TEST_ENTRY(csv_first_row_mixing_numbers_and_text_is_an_error),
      TEST_ENTRY(messages_name_the_right_problem),
      TEST_ENTRY(inapplicable_flags_are_errors),
  };
  int rc = sk_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) return 1;
  return rc;
}
