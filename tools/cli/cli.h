/* Shared pieces of the scorekit program: strict flag parsing and data loading. */
#ifndef SK_CLI_H
#define SK_CLI_H

#include <stdio.h>

#include "scorekit/scorekit.h"
#include "plot.h" /* the scorekit_plot library */

/* Prints "scorekit: <msg>" to stderr and returns 1 (the exit code). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Creates directory `path` and its missing parents (mkdir -p); 0, or -1 with
 * errno set. *made (NULL: not wanted) is the length of the prefix of path
 * naming the first directory this call created, 0 when it created none (all
 * existed, or another process made them first). */
int cli_mkdirs(const char *path, size_t *made);
/* malloc for the program's own buffers (n = 0 allowed). Every caller checks
 * for NULL: the environment variable SCOREKIT_DEBUG_FAIL_ALLOC=N makes the
 * N-th call (0-based) and all later ones fail, which is how the tests reach
 * each check. */
void *cli_alloc(size_t n);
/* The value of flag argv[*i] (advancing *i), when the flag is one of the
 * NULL-terminated list `valued`; else NULL after the message "unknown flag F"
 * or, when it is the last argument or another flag of the command
 * (`valued` or `switches`) follows, "F: missing value", or, when *seen
 * (zero before the first call; one bit per flag of `valued`) says it was
 * given before, "F: given twice". */
const char *cli_value(const char *cmd, int argc, char **argv, int *i, const char *const *valued,
                      const char *const *switches, unsigned long long *seen);
/* sk_output_prepare on an output flag's path, before any work: 0 after the
 * message "FLAG PATH: problem"; says on stdout how many stale temporaries
 * it removed. */
int cli_check_out(const char *flag, const char *path);
/* 1 when no output of the command names the same file as another of its
 * outputs or inputs (the same inode, or for a file yet to be written the
 * same name in the same directory): paths[0..n_out) are the outputs, the
 * rest of the n inputs; NULL entries are flags not given. Otherwise 0 after
 * "FLAG PATH: the same file as FLAG2". */
int cli_distinct(const char *const *flags, const char *const *paths, int n_out, int n);
/* Parse a whole string as a number in [lo, hi]; 0 and a message on failure. */
int cli_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
int cli_float(const char *flag, const char *s, double lo, double hi, double *out);
/* A comma-separated list of up to cap positive floats, or of integers in
 * [lo, hi]; 0 and a message naming the item at fault on failure. */
int cli_float_list(const char *flag, const char *s, float *out, int cap, int *n);
int cli_int_list(const char *flag, const char *s, int lo, int hi, int *out, int cap, int *n);

/* ---- the samplers' flags, shared by sample and inpaint ---- */

enum { CLI_LANGEVIN = 1, CLI_PC = 2, CLI_ODE = 4 };

typedef struct cli_sampler_opts {
  const char *sampler; /* --sampler NAME, or NULL */
  long long steps_per_level, steps, corrector_steps;
  double eps, snr, rtol, atol;
  int denoise, no_denoise, steps_set;
} cli_sampler_opts;

/* T 100, C, snr and tolerances as SK_PC_* and SK_ODE_TOL; eps 0 and N unset:
 * they depend on the model (cli_langevin_eps, cli_pc_config). */
cli_sampler_opts cli_sampler_defaults(void);
/* Records switch f (--denoise, --no-denoise) and returns 1 when it is one. */
int cli_sampler_switch(const char *f, cli_sampler_opts *o);
/* When f is a sampler flag with a value (--sampler, --steps-per-level, --eps,
 * --steps, --snr, --corrector-steps, --rtol, --atol): parses v into o, 1, or
 * 0 after a message; -1 when f is not one. */
int cli_sampler_value(const char *f, const char *v, cli_sampler_opts *o);
/* The sampler to run, one of `offered` (CLI_* bits): --sampler's, else the
 * one the flags of argv belong to (`fallback` when they fit it); 0 after a
 * message for an unknown name, flags of different samplers, or a flag of
 * another sampler than the one chosen. */
int cli_sampler_choose(int argc, char **argv, const char *sampler, int offered, int fallback);
const char *cli_sampler_name(int s);
/* Annealed Langevin's ε when o->eps is 0: NCSNv2's for T and the ladder's
 * mean ratio σ_1/σ_L over L levels (L > 1), 1e-3 for plain Langevin; 0 after
 * a message when there is none. */
int cli_langevin_eps(cli_sampler_opts *o, int L, float s1, float sL);
/* PC from s1 to sL with o's levels (default SK_PC_LEVELS_IMAGES for images,
 * SK_PC_LEVELS_POINTS for points), corrector, snr and denoising. */
sk_pc_config cli_pc_config(const cli_sampler_opts *o, int image, float s1, float sL,
                           const sk_sample_hooks *hooks);

/* A data set from a built-in 2-D set (n points drawn from seed), the image
 * sets fashion-mnist and fashion-mnist-test (Debian's dataset-fashion-mnist),
 * or a .csv, .npy or IDX file (labels from a CSV column, or a .npy or IDX
 * label file). A file or image set gives its first n rows, or all for n = 0.
 * Arrays of rank 3 and 4 are images (n, h, w) and (n, c, h, w): uint8 pixels
 * are divided by 255, other types kept as they are (sk_dataset_new_images). */
int cli_load_data(const char *spec, long long n, unsigned long long seed, int label_column,
                  const char *labels_path, sk_dataset **out);

/* Progress of a long run on stderr, fed by the library's progress hook
 * (sk_sample_hooks): percent done, elapsed time and an estimate of the rest. */
typedef struct cli_progress {
  const char *what, *unit;
  double t0, last;
  int tty, printed;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *what, const char *unit);
void cli_progress_update(void *ctx, int64_t done, int64_t total);
void cli_progress_end(cli_progress *p);

int cmd_train(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* `scorekit eval` with its report written to `out`. */
int cli_eval_to(FILE *out, int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_likelihood(int argc, char **argv);

int cmd_grid(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_inpaint(int argc, char **argv);

#endif
