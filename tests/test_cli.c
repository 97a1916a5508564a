/* The scorekit program end to end: bad input of every kind gets a one-line
 * error naming the file or flag and the problem, a non-zero exit (not a
 * crash) and nothing left behind in the directory;
 * good input trains; a resumed run writes the same model file bit for bit. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scorekit/scorekit.h"
#include "test.h"

static char tmp[64];
static char err[4096];

/* Runs scorekit with `args`; returns the exit code, stderr in err. */
static int run(const char *args) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>%s/err.txt >/dev/null", tmp, SK_CLI_PATH, args, tmp);
  int rc = system(cmd);
  char path[256];
  snprintf(path, sizeof path, "%s/err.txt", tmp);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(err, 1, sizeof err - 1, f) : 0;
  err[n] = 0;
  if (f) fclose(f);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void write_file(const char *name, const void *data, size_t n) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
}

static int exists(const char *name) {
  char path[256];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  return stat(path, &st) == 0;
}

static int lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* A .npy v1.0 file with the given header dict and payload. */
static void write_npy(const char *name, const char *dict, const void *payload, size_t n) {
  unsigned char buf[4096];
  size_t hl = strlen(dict), total = 10 + hl + 1;
  size_t pad = (64 - total % 64) % 64;
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  uint16_t len = (uint16_t)(hl + pad + 1);
  buf[8] = (unsigned char)(len & 0xff);
  buf[9] = (unsigned char)(len >> 8);
  memcpy(buf + 10, dict, hl);
  memset(buf + 10 + hl, ' ', pad);
  buf[10 + hl + pad] = '\n';
  memcpy(buf + total + pad, payload, n);
  write_file(name, buf, total + pad + n);
}

/* Entries of the test directory other than err.txt: a failed command must
 * leave no file or directory behind, wherever it might have put one. */
static int dir_entries(void) {
  DIR *d = opendir(tmp);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "err.txt");
  if (d) closedir(d);
  return n;
}

typedef struct bad_case {
  const char *args;
  /* Each must appear in the one-line message: the file or flag at fault,
   * and the words that name the problem. */
  const char *needles[4];
} bad_case;

TEST(bad_input_fails_cleanly) {
  write_file("ragged.csv", "1,2\n3,4\n5\n", 10);
  write_file("text.csv", "1,2\n3,abc\n", 10);
  write_file("nan.csv", "1,2\nnan,4\n", 10);
  write_file("empty.csv", "", 0);
  float good[4] = {1, 2, 3, 4};
  write_npy("c8.npy", "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 1), }", good, 16);
  write_npy("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", good, 16);
  write_npy("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", good, 12);
  write_npy("huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 2), }", good, 16);
  write_npy("rank5.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 2, 2), }", good, 16);
  float inf[4] = {1, 2, INFINITY, 4};
  write_npy("inf.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", inf, 16);
  write_file("header.npy", "\x93NUMPY\x01\x00\xff\xff{'descr'", 18);
  write_npy("zero.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2), }", good, 0);
  CHECK_EQ_INT(run("train --data mog8 --steps 2 --hidden 8 --depth 1 --out m0 --quiet"), 0);
  static const bad_case cases[] = {
      {"train --data ragged.csv --out o", {"ragged.csv", "line 3", "expected 2 fields, got 1"}},
      {"train --data text.csv --out o", {"text.csv", "line 2, column 2", "non-numeric", "'abc'"}},
      {"train --data nan.csv --out o", {"nan.csv", "line 2, column 1", "non-finite", "'nan'"}},
      {"train --data empty.csv --out o", {"empty.csv", "empty file"}},
      {"train --data c8.npy --out o", {"c8.npy", "unsupported dtype", "'<c8'"}},
      {"train --data fortran.npy --out o", {"fortran.npy", "fortran_order", "C-order"}},
      {"train --data short.npy --out o", {"short.npy", "data truncated", "needs 16 bytes, 12 follow"}},
      {"train --data huge.npy --out o", {"huge.npy", "data truncated", "799999999992 bytes"}},
      {"train --data rank5.npy --out o", {"rank5.npy", "rank", "more than 4"}},
      {"train --data inf.npy --out o", {"inf.npy", "non-finite", "Inf", "index 2"}},
      {"train --data header.npy --out o", {"header.npy", "header truncated", "has 18"}},
      {"train --data missing.csv --out o", {"missing.csv", "cannot open"}},
      {"train --data nosuchset --out o", {"--data", "unknown data set", "\"nosuchset\""}},
      {"train --steps -5 --out o", {"--steps", "integer in 1..", "\"-5\""}},
      {"train --steps 10x --out o", {"--steps", "integer in 1..", "\"10x\""}},
      {"train --lr abc --out o", {"--lr", "expected a number", "\"abc\""}},
      {"train --lr nan --out o", {"--lr", "expected a number", "\"nan\""}},
      {"train --batch-size 0 --out o", {"--batch-size", "integer in 1..", "\"0\""}},
      {"train --objective foo --out o", {"--objective", "unknown \"foo\""}},
      {"train --activation relu --out o", {"--activation", "unknown \"relu\""}},
      {"train --sigmas 1,2,3 --out o", {"--sigmas", "must decrease"}},
      {"train --sigmas 3,,1 --out o", {"--sigmas", "item 2 of \"3,,1\" is empty"}},
      {"train --sigmas 3,2,1, --out o", {"--sigmas", "item 4 of", "is empty"}},
      {"train --sigmas ,3,1 --out o", {"--sigmas", "item 1 of", "is empty"}},
      {"train --model unet --channels 4,,4,4,4 --out o", {"--channels", "item 2 of", "is empty"}},
      {"train --model unet --channels 0,0,0,0 --out o", {"--channels", "integer in 1..4096", "\"0\""}},
      {"train --model unet --channels -1,2,3,4 --out o", {"--channels", "integer in 1..4096", "\"-1\""}},
      {"train --sigma-min 5 --sigma-max 1 --out o", {"--sigma-min 5", "must be below --sigma-max 1"}},
      {"train --frobnicate 3 --out o", {"unknown flag --frobnicate"}},
      {"train --minutes 0 --out o", {"--minutes", "\"0\""}},
      {"train --minutes -1 --out o", {"--minutes", "\"-1\""}},
      {"train --minutes soon --out o", {"--minutes", "\"soon\""}},
      {"train --out", {"--out", "missing value"}},
      {"train --steps 10", {"--out DIR is required"}},
      {"train --objective classifier --data swissroll --out o", {"classifier", "swissroll", "no labels"}},
      {"train --resume nowhere --steps 5 --out o", {"--resume", "nowhere/state.safetensors", "cannot open"}},
      {"frobnicate", {"unknown command", "\"frobnicate\""}},
      {"help frobnicate", {"unknown command", "\"frobnicate\""}},
      {"help train sample", {"help takes one command"}},
      {"score --model m0/model.safetensors --input zero.npy --out s.npy", {"zero.npy", "no rows"}},
  };
  const int entries = dir_entries();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = run(cases[i].args);
    /* An exit code of 128 and up is a crash reported by the shell. */
    int ok = rc > 0 && rc < 128 && lines(err) == 1 && strncmp(err, "scorekit: ", 10) == 0;
    const char *missing = NULL;
    for (int k = 0; k < 4 && cases[i].needles[k]; k++)
      if (!strstr(err, cases[i].needles[k]) && !missing) missing = cases[i].needles[k];
    const int left = dir_entries() - entries;
    if (!ok || missing || left)
      fprintf(stderr, "case \"%s\": exit %d, %d new entries in the directory, %s%s%sstderr: %s\n",
              cases[i].args, rc, left, missing ? "message lacks \"" : "", missing ? missing : "",
              missing ? "\", " : "", err);
    CHECK(ok);
    CHECK(!missing);
    CHECK_EQ_INT(left, 0);
  }
  CHECK_EQ_INT(run("help score"), 0); /* as score --help */
}

TEST(train_from_csv_with_labels) {
  char csv[8192] = "x,y,label\n";
  for (int i = 0; i < 200; i++) {
    char row[64];
    snprintf(row, sizeof row, "%g,%g,%d\n", (i % 2 ? 2.0 : -2.0) + 0.01 * (i % 7), 0.02 * (i % 5), i % 2);
    strcat(csv, row);
  }
  write_file("two.csv", csv, strlen(csv));
  CHECK_EQ_INT(run("train --data two.csv --label-column 2 --objective dsm --steps 20 --hidden 16 --depth 1 --out csvrun --quiet"), 0);
  CHECK(exists("csvrun/model.safetensors") && exists("csvrun/log.csv"));
  CHECK_EQ_INT(run("train --data two.csv --label-column 2 --objective classifier --steps 20 --hidden 16 --depth 1 --out clf --quiet"), 0);
  CHECK(exists("clf/model.safetensors"));
  /* --out makes missing parents, as the README's `out/demo` needs. */
  CHECK_EQ_INT(run("train --data two.csv --objective dsm --steps 5 --hidden 8 --depth 1 --out deep/er/run --quiet"), 0);
  CHECK(exists("deep/er/run/model.safetensors"));
}

static int same_file(const char *a, const char *b) {
  char pa[256], pb[256];
  snprintf(pa, sizeof pa, "%s/%s", tmp, a);
  snprintf(pb, sizeof pb, "%s/%s", tmp, b);
  FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
  int same = fa && fb;
  while (same) {
    int ca = fgetc(fa), cb = fgetc(fb);
    same = ca == cb;
    if (ca == EOF) break;
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

TEST(resume_matches_uninterrupted_run) {
  const char *flags = "train --objective ssm-vr --n-data 500 --steps 40 --hidden 32 --depth 2 --quiet";
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s --out full", flags);
  CHECK_EQ_INT(run(cmd), 0);
  CHECK_EQ_INT(run("train --objective ssm-vr --n-data 500 --steps 15 --hidden 32 --depth 2 --quiet --out part"), 0);
  snprintf(cmd, sizeof cmd, "%s --out part --resume part", flags);
  CHECK_EQ_INT(run(cmd), 0);
  CHECK(same_file("full/model.safetensors", "part/model.safetensors"));
  CHECK(same_file("full/state.safetensors", "part/state.safetensors"));
}

/* The contents of test-directory file `name` (at most cap - 1 bytes). */
static size_t read_file(const char *name, char *buf, size_t cap) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
  buf[n] = 0;
  if (f) fclose(f);
  return n;
}

/* A PNG of width × height: the signature, then an IHDR chunk saying so. */
static int png_of_size(const char *name, uint32_t width, uint32_t height) {
  unsigned char b[64] = {0};
  char path[256];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  FILE *f = fopen(path, "rb");
  const size_t n = f ? fread(b, 1, sizeof b, f) : 0;
  if (f) fclose(f);
  const uint32_t w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
  const uint32_t h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
  return n >= 33 && !memcmp(b, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16) && w == width && h == height;
}

/* Without --quiet, stderr gets a progress line at each tenth of the run (a
 * log, not a terminal), the last at 100%; DIR/loss.png is a PNG. */
TEST(train_progress_and_loss_curve) {
  CHECK_EQ_INT(run("train --n-data 500 --hidden 8 --depth 1 --batch-size 16 --steps 20 --out prog"), 0);
  printf("  stderr:\n%s", err);
  int n = 0;
  for (const char *p = err; *p; n++) {
    long long s = 0, total = 0;
    CHECK(sscanf(p, "step %lld/%lld (", &s, &total) == 2 && total == 20 && s >= 1 && s <= 20);
    CHECK(strstr(p, "steps/s  loss ") && strstr(p, "ETA "));
    const char *nl = strchr(p, '\n');
    if (!nl) break;
    p = nl + 1;
  }
  CHECK(n >= 10); /* more only if a tenth took over 30 s */
  CHECK(strstr(err, "step 20/20 (100%)"));
  CHECK(png_of_size("prog/loss.png", 960, 560));
}

/* --minutes: a tiny budget stops the run at its first step after it (how many
 * steps that is depends on the machine: only "stops, saves a loadable model,
 * reports its steps" is checked), with the model, the state, the log and the
 * curve as at a normal end. */
TEST(train_minutes_stops_and_saves) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cd %s && %s train --n-data 500 --hidden 8 --depth 1 --batch-size 16 "
           "--minutes 0.00001 --steps 1000000 --quiet --out mins > %s/out.txt 2>%s/err.txt",
           tmp, SK_CLI_PATH, tmp, tmp);
  CHECK(system(cmd) == 0);
  char out[4096];
  read_file("out.txt", out, sizeof out);
  printf("  %s", out);
  const char *at = strstr(out, "stopped by --minutes 1e-05: ");
  CHECK(at);
  long long steps = strtoll(at + strlen("stopped by --minutes 1e-05: "), NULL, 10);
  CHECK(steps >= 1 && steps < 1000000);
  char path[256];
  snprintf(path, sizeof path, "%s/mins/model.safetensors", tmp);
  sk_model *m = NULL;
  sk_model_info info;
  CHECK_OK(sk_model_load(path, 1, &m, &info));
  CHECK_EQ_INT(info.steps, steps);
  sk_model_free(m);
  CHECK(exists("mins/state.safetensors") && png_of_size("mins/loss.png", 960, 560));
  static char log[1 << 20];
  read_file("mins/log.csv", log, sizeof log);
  CHECK_EQ_INT(lines(log), steps + 1); /* the header and one line a step */
  /* --resume continues it: --minutes limits one process's run. */
  snprintf(cmd, sizeof cmd, "train --n-data 500 --hidden 8 --depth 1 --batch-size 16 --steps %lld "
           "--quiet --out mins --resume mins", steps + 3);
  CHECK_EQ_INT(run(cmd), 0);
  CHECK_OK(sk_model_load(path, 1, &m, &info));
  CHECK_EQ_INT(info.steps, steps + 3);
  sk_model_free(m);
}

/* A U-Net trained from the command line samples from the command line (its
 * model file records the image shape, which the loader checks against the
 * U-Net's own size), under ncsn and vesde. */
TEST(unet_trains_and_samples_from_the_cli) {
  enum { N = 8, SIDE = 28 };
  static float img[N * SIDE * SIDE];
  sk_rng r = sk_rng_make(4, 0);
  sk_rng_uniform(&r, img, N * SIDE * SIDE);
  char path[256];
  snprintf(path, sizeof path, "%s/img.npy", tmp);
  CHECK_OK(sk_npy_save_f32(path, 3, (int64_t[]){N, SIDE, SIDE}, img));
  static const char *const objs[2] = {"ncsn", "vesde"};
  for (int k = 0; k < 2; k++) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "train --data img.npy --model unet --channels 4,4,4,4 --objective %s "
             "--levels 3 --steps 2 --batch-size 2 --quiet --out u-%s", objs[k], objs[k]);
    CHECK_EQ_INT(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "sample --model u-%s/model.safetensors --n 2 --steps-per-level 1 "
             "--out u-%s/s.npy", objs[k], objs[k]);
    const int rc = run(cmd);
    if (rc != 0) fprintf(stderr, "%s: %s", cmd, err);
    CHECK_EQ_INT(rc, 0);
    snprintf(path, sizeof path, "%s/u-%s/s.npy", tmp, objs[k]);
    sk_tensor *s = NULL;
    CHECK_OK(sk_npy_load(path, &s));
    CHECK(sk_tensor_numel(s) == 2 * SIDE * SIDE);
    sk_tensor_free(s);
  }
}

/* The EMA weights are saved beside the raw ones and sample draws from them
 * unless --raw: sampling the file equals sampling a copy whose raw weights
 * are its EMA ones, and differs from sampling it with --raw. */
TEST(sample_uses_the_ema_weights_by_default) {
  CHECK_EQ_INT(run("train --n-data 500 --hidden 16 --depth 1 --steps 50 --quiet --out ema"), 0);
  char path[256], copy[256];
  snprintf(path, sizeof path, "%s/ema/model.safetensors", tmp);
  snprintf(copy, sizeof copy, "%s/ema-only.safetensors", tmp);
  sk_model *raw = NULL, *avg = NULL;
  static sk_model_info info;
  CHECK_OK(sk_model_load(path, 0, &raw, NULL));
  CHECK_OK(sk_model_load(path, 1, &avg, &info));
  const size_t np = sk_model_num_params(avg);
  CHECK(memcmp(sk_model_params(raw), sk_model_params(avg), np * sizeof(float)) != 0);
  CHECK_OK(sk_model_save(copy, avg, sk_model_params(avg), &info));
  sk_model_free(raw);
  sk_model_free(avg);
  const char *common = "--n 64 --steps-per-level 3 --seed 2";
  char cmd[512];
  snprintf(cmd, sizeof cmd, "sample --model ema/model.safetensors %s --out s-default.npy", common);
  CHECK_EQ_INT(run(cmd), 0);
  snprintf(cmd, sizeof cmd, "sample --model ema-only.safetensors --raw %s --out s-copy.npy", common);
  CHECK_EQ_INT(run(cmd), 0);
  snprintf(cmd, sizeof cmd, "sample --model ema/model.safetensors --raw %s --out s-raw.npy", common);
  CHECK_EQ_INT(run(cmd), 0);
  CHECK(same_file("s-default.npy", "s-copy.npy"));
  CHECK(!same_file("s-default.npy", "s-raw.npy"));
}

int main(int argc, char **argv) {
  snprintf(tmp, sizeof tmp, "/tmp/sk_cli_XXXXXX");
  if (!mkdtemp(tmp)) return 1;
  static const sk_test_case cases[] = {TEST_ENTRY(bad_input_fails_cleanly),
                                       TEST_ENTRY(train_from_csv_with_labels),
                                       TEST_ENTRY(resume_matches_uninterrupted_run),
                                       TEST_ENTRY(train_progress_and_loss_curve),
                                       TEST_ENTRY(train_minutes_stops_and_saves),
                                       TEST_ENTRY(unet_trains_and_samples_from_the_cli),
                                       TEST_ENTRY(sample_uses_the_ema_weights_by_default)};
  int rc = sk_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) return 1;
  return rc;
}
