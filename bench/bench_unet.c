/* Throughput of scorekit on the U-Net score model (the score-SDE tutorial's
 * ScoreNet, 28 × 28 images, channels 32-256): a training step (loss graph of
 * a noise-conditional objective + Adam) at batch 64 and 128, the forward
 * score evaluation a predictor-corrector sampler repeats (batch 1,000), and
 * the evaluation a likelihood computation repeats: the score and one
 * vector-Jacobian product vᵀ∂s/∂x (batch 1,000). bench/torch_unet.py is the
 * PyTorch twin; bench/unet.sh runs both and prints the comparison. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "scorekit/scorekit.h"

enum { MAX_TENSORS = 64, MAX_REPEATS = 101 };

/* The noise ladder: N_LEVELS levels geometric from SIGMA_FIRST to SIGMA_LAST,
 * within [0.5, 2] so that the float32 Fourier features of log σ agree between
 * the twins to 1e-6 (tools/make_golden_images.py says why); the cost of a
 * step does not depend on σ. */
#define N_LEVELS 10
#define SIGMA_FIRST 2.0f
#define SIGMA_LAST 0.5f

typedef enum { W_TRAIN, W_SAMPLE, W_LIK } wkind;

typedef struct workload {
  const char *name;
  wkind kind;
  int batch;
} workload;

/* bench/torch_unet.py's WORKLOADS lists the same names and sizes. */
static const workload workloads[] = {
    {"train-b64", W_TRAIN, 64},
    {"train-b128", W_TRAIN, 128},
    {"sample-b1000", W_SAMPLE, 1000},
    {"lik-b1000", W_LIK, 1000},
};
enum { N_WORKLOADS = sizeof workloads / sizeof workloads[0] };

typedef struct bench {
  const workload *w;
  int batch;
  int chunk;               /* evaluations: rows per graph run (batch = whole chunks) */
  float *x_all, *sigma_all, *v_all, *score_all, *vjp_all; /* evaluations: all rows */
  sk_objective obj;
  sk_model *m;
  sk_adam *adam;
  sk_graph *g;
  sk_loss_graph lg;
  sk_node x, sigma, v, score, vjp, loss;
  int n_tensors, n_parts;
  sk_adam_part parts[MAX_TENSORS];
} bench;

static void die(const char *what) {
  fprintf(stderr, "bench_unet: %s: %s\n", what, sk_last_error());
  exit(1);
}

static void check(sk_status st, const char *what) {
  if (st != SK_OK) die(what);
}

/* --clock cpu: the process's CPU time divided by the threads, which leaves
 * out the waits for a core on a shared machine (bench/conv.sh does the
 * same); what the threads spend waiting for each other still counts. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void) {
  struct timespec ts;
  clock_gettime(bench_clock, &ts);
  const double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
  return bench_clock == CLOCK_MONOTONIC ? t : t / sk_get_num_threads();
}

static void fill_normal(float *dst, size_t n, uint64_t stream) {
  sk_rng r = sk_rng_make(1234, stream);
  sk_rng_normal(&r, dst, n);
}

/* Images in [0, 1], noise N(0, I), a level of the ladder per row: both
 * programs use these numbers (PyTorch through --dump). */
static void fill_inputs(bench *b) {
  const size_t n = (size_t)b->batch, d = (size_t)sk_model_get_config(b->m)->dim;
  const int train = b->w->kind == W_TRAIN;
  sk_rng r = sk_rng_make(1234, 1);
  sk_rng_uniform(&r, train ? sk_graph_data(b->g, b->x) : b->x_all, n * d);
  if (train && b->lg.z != SK_NONE) fill_normal(sk_graph_data(b->g, b->lg.z), n * d, 2);
  if (b->v_all) fill_normal(b->v_all, n * d, 3);
  float *s = train ? sk_graph_data(b->g, b->sigma) : b->sigma_all;
  sk_rng q = sk_rng_make(1234, 4);
  for (size_t i = 0; i < n; i++) {
    const float t = (float)sk_rng_below(&q, N_LEVELS) / (float)(N_LEVELS - 1);
    s[i] = SIGMA_FIRST * powf(SIGMA_LAST / SIGMA_FIRST, t);
  }
}

/* The score graph of the forward workloads, for one chunk of rows: s(x, σ),
 * and for the likelihood also vᵀ∂s/∂x, the gradient of Σ v ⊙ s with respect
 * to x. A sampler or a likelihood computation runs its particles through
 * such a graph chunk by chunk (sk_score_fn_eval, sk_langevin); the chunk's
 * activations stay in cache longer and its memory is the chunk's. */
static void build_eval(bench *b) {
  sk_graph *g = sk_graph_new();
  if (!g) die("sk_graph_new");
  b->g = g;
  sk_node p[MAX_TENSORS];
  check(sk_model_bind(b->m, g, NULL, p), "sk_model_bind");
  const int64_t d = sk_model_get_config(b->m)->dim, n = b->batch;
  b->x = sk_input(g, "x", 2, (int64_t[]){b->chunk, d});
  b->sigma = sk_input(g, "sigma", 2, (int64_t[]){b->chunk, 1});
  b->score = sk_model_apply(b->m, g, p, b->x, b->sigma);
  sk_node outs[2] = {b->score, SK_NONE};
  int n_out = 1;
  b->x_all = malloc((size_t)(n * d) * sizeof(float));
  b->sigma_all = malloc((size_t)n * sizeof(float));
  b->score_all = malloc((size_t)(n * d) * sizeof(float));
  if (!b->x_all || !b->sigma_all || !b->score_all) die("out of memory");
  if (b->w->kind == W_LIK) {
    b->v_all = malloc((size_t)(n * d) * sizeof(float));
    b->vjp_all = malloc((size_t)(n * d) * sizeof(float));
    if (!b->v_all || !b->vjp_all) die("out of memory");
    b->v = sk_input(g, "v", 2, (int64_t[]){b->chunk, d});
    sk_node u = sk_sum_all(g, sk_mul(g, b->v, b->score));
    check(sk_grad(g, u, SK_NONE, 1, &b->x, &b->vjp), "sk_grad");
    outs[n_out++] = b->vjp;
  }
  check(sk_graph_compile(g, n_out, outs), "sk_graph_compile");
}

static void bench_init(bench *b, const workload *w, int batch, int chunk, sk_objective obj) {
  memset(b, 0, sizeof *b);
  b->w = w;
  b->batch = batch > 0 ? batch : w->batch;
  b->chunk = chunk > 0 && chunk < b->batch ? chunk : b->batch;
  if (w->kind != W_TRAIN && b->batch % b->chunk != 0) {
    fprintf(stderr, "bench_unet: --chunk %d does not divide the batch %d\n", b->chunk, b->batch);
    exit(2);
  }
  b->obj = obj;
  b->v = b->vjp = b->loss = SK_NONE;
  b->m = sk_model_new_unet(NULL); /* the tutorial's sizes */
  if (!b->m) die("sk_model_new_unet");
  sk_model_init(b->m, 42);
  b->n_tensors = sk_model_num_tensors(b->m);
  if (b->n_tensors > MAX_TENSORS) die("model has too many tensors");
  if (w->kind != W_TRAIN) {
    build_eval(b);
    fill_inputs(b);
    return;
  }
  check(sk_loss_graph_new(b->m, obj, b->batch, 1, &b->lg), "sk_loss_graph_new");
  b->g = b->lg.g;
  b->x = b->lg.x;
  b->sigma = b->lg.sigma;
  b->loss = b->lg.loss;
  b->score = b->lg.score;
  if (b->sigma == SK_NONE) die("the objective has no noise level input");
  /* No EMA: torch.optim.Adam keeps none, so both sides do the same work. */
  sk_adam_config ac = sk_adam_config_default();
  ac.ema_rate = 0.0f;
  b->adam = sk_adam_new(&ac, sk_model_num_params(b->m), sk_model_params(b->m));
  if (!b->adam) die("sk_adam_new");
  /* As the trainer: Adam updates every trained tensor where the graph left
   * its gradient; the Fourier frequencies are fixed. */
  for (int i = 0; i < b->lg.n_grads; i++) {
    if (!sk_model_tensor_trainable(b->m, i)) continue;
    const int64_t n = sk_node_numel(b->g, b->lg.grads[i]);
    const int64_t rows = sk_model_tensor_shape(b->m, i)[0];
    b->parts[b->n_parts++] = (sk_adam_part){sk_graph_data(b->g, b->lg.grads[i]),
                                            sk_model_tensor_offset(b->m, i), (size_t)rows,
                                            (size_t)(n / rows)};
  }
  fill_inputs(b);
}

static void bench_free(bench *b) {
  if (b->w->kind == W_TRAIN)
    sk_loss_graph_free(&b->lg);
  else
    sk_graph_free(b->g);
  free(b->x_all);
  free(b->sigma_all);
  free(b->v_all);
  free(b->score_all);
  free(b->vjp_all);
  sk_adam_free(b->adam);
  sk_model_free(b->m);
}

/* One evaluation of all rows, chunk by chunk: the inputs bound in place,
 * the outputs copied out. */
static void eval_all(bench *b) {
  const int64_t d = sk_model_get_config(b->m)->dim;
  for (int64_t r0 = 0; r0 < b->batch; r0 += b->chunk) {
    check(sk_graph_bind(b->g, b->x, b->x_all + r0 * d), "sk_graph_bind");
    check(sk_graph_bind(b->g, b->sigma, b->sigma_all + r0), "sk_graph_bind");
    if (b->v != SK_NONE) check(sk_graph_bind(b->g, b->v, b->v_all + r0 * d), "sk_graph_bind");
    check(sk_graph_run(b->g), "sk_graph_run");
    const size_t bytes = (size_t)(b->chunk * d) * sizeof(float);
    memcpy(b->score_all + r0 * d, sk_graph_data(b->g, b->score), bytes);
    if (b->vjp != SK_NONE) memcpy(b->vjp_all + r0 * d, sk_graph_data(b->g, b->vjp), bytes);
  }
}

static void bench_step(bench *b) {
  if (b->w->kind != W_TRAIN) {
    eval_all(b);
    return;
  }
  check(sk_adam_step_graph(b->adam, b->g, NULL, sk_model_params(b->m), b->n_parts, b->parts, NULL),
        "sk_adam_step_graph");
}

/* The multiply-adds ×2 of the convolutions of one image's forward pass, at
 * the model's widths: per layer, output positions × output channels × input
 * channels × 9 (a transposed convolution counted as the convolution it
 * transposes). first: conv1's share, which a training step does not
 * differentiate with respect to its input (the data). */
static double conv_flops_per_image(const sk_model *m, double *first) {
  const sk_unet_config *u = sk_model_get_unet(m);
  const double c0 = u->channels[0], c1 = u->channels[1], c2 = u->channels[2], c3 = u->channels[3];
  const double ic = u->image[0];
  /* Planes 26², 12², 5², 2² (28 × 28 images; other sizes scale the same way). */
  double s[5];
  s[0] = u->image[1] * (double)u->image[2];
  int64_t h = u->image[1], w = u->image[2];
  h -= 2, w -= 2;
  s[1] = (double)(h * w);
  for (int i = 2; i <= 4; i++) h = (h - 3) / 2 + 1, w = (w - 3) / 2 + 1, s[i] = (double)(h * w);
  *first = 2.0 * 9 * s[1] * c0 * ic;
  const double enc = s[1] * c0 * ic + s[2] * c1 * c0 + s[3] * c2 * c1 + s[4] * c3 * c2;
  /* tconv4 256 → 128 over 2², tconv3 256 → 64 over 5², tconv2 128 → 32 over
   * 12², tconv1 64 → 1 over 26²: the input side's plane. */
  const double dec = s[4] * c3 * c2 + s[3] * 2 * c2 * c1 + s[2] * 2 * c1 * c0 + s[1] * 2 * c0 * ic;
  return 2.0 * 9 * (enc + dec);
}

/* Convolution and product FLOPs of one step of b. */
static double product_flops(const bench *b) {
  double first;
  const double fwd = conv_flops_per_image(b->m, &first) * b->batch;
  const double conv = b->w->kind == W_TRAIN ? 3 * fwd - first * b->batch
                      : b->w->kind == W_LIK ? 2 * fwd
                                            : fwd;
  return conv + sk_graph_matmul_flops(b->g) * (double)(b->batch / b->chunk);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median seconds per step over `repeats` runs of `iters` steps after
 * `warmup` seconds; iters = 0 picks about `secs` seconds per repeat. */
static double bench_time(bench *b, double warmup, int iters, int repeats, double secs, int *used) {
  double t0 = now();
  int n_warm = 0;
  while (now() - t0 < warmup || n_warm < 2) {
    bench_step(b);
    n_warm++;
  }
  if (iters <= 0) {
    double s = now();
    bench_step(b);
    iters = (int)(secs / (now() - s));
    if (iters < 1) iters = 1;
  }
  double runs[MAX_REPEATS];
  for (int r = 0; r < repeats; r++) {
    double s = now();
    for (int i = 0; i < iters; i++) bench_step(b);
    runs[r] = (now() - s) / iters;
  }
  qsort(runs, (size_t)repeats, sizeof *runs, cmp_double);
  *used = iters;
  return runs[repeats / 2];
}

static void save(const char *dir, const char *name, int ndim, const int64_t *shape,
                 const float *data) {
  char path[4096];
  int n = snprintf(path, sizeof path, "%s/%s.npy", dir, name);
  if (n < 0 || (size_t)n >= sizeof path) {
    fprintf(stderr, "bench_unet: path %s/%s too long\n", dir, name);
    exit(1);
  }
  check(sk_npy_save_f32(path, ndim, shape, data), path);
}

/* What the PyTorch twin needs to recompute one step: parameters, inputs,
 * and scorekit's results (loss and every gradient; or the score and the
 * vector-Jacobian product). */
static void bench_dump(bench *b, const char *root) {
  char dir[4096];
  int n = snprintf(dir, sizeof dir, "%s/%s", root, b->w->name);
  if (n < 0 || (size_t)n >= sizeof dir || (mkdir(dir, 0777) != 0 && errno != EEXIST)) {
    fprintf(stderr, "bench_unet: cannot make %s/%s\n", root, b->w->name);
    exit(1);
  }
  const int64_t d = sk_model_get_config(b->m)->dim;
  const int64_t xs[2] = {b->batch, d}, ss[2] = {b->batch, 1};
  for (int i = 0; i < b->n_tensors; i++)
    save(dir, sk_model_tensor_name(b->m, i), sk_model_tensor_ndim(b->m, i),
         sk_model_tensor_shape(b->m, i), sk_model_params(b->m) + sk_model_tensor_offset(b->m, i));
  if (b->w->kind != W_TRAIN) {
    eval_all(b);
    save(dir, "in_x", 2, xs, b->x_all);
    save(dir, "in_sigma", 2, ss, b->sigma_all);
    save(dir, "out_score", 2, xs, b->score_all);
    if (b->v_all) save(dir, "in_v", 2, xs, b->v_all);
    if (b->vjp_all) save(dir, "out_vjp", 2, xs, b->vjp_all);
  } else {
    save(dir, "in_x", 2, xs, sk_graph_data(b->g, b->x));
    save(dir, "in_sigma", 2, ss, sk_graph_data(b->g, b->sigma));
    if (b->lg.z != SK_NONE) save(dir, "in_z", 2, xs, sk_graph_data(b->g, b->lg.z));
    check(sk_graph_run(b->g), "sk_graph_run");
    save(dir, "out_score", 2, xs, sk_graph_data(b->g, b->score));
  }
  if (b->loss != SK_NONE) {
    const int64_t one = 1;
    save(dir, "out_loss", 1, &one, sk_graph_data(b->g, b->loss));
    for (int i = 0; i < b->n_tensors; i++) {
      char name[96];
      snprintf(name, sizeof name, "grad_%s", sk_model_tensor_name(b->m, i));
      save(dir, name, sk_model_tensor_ndim(b->m, i), sk_model_tensor_shape(b->m, i),
           sk_graph_data(b->g, b->lg.grads[i]));
    }
  }
  FILE *f = fopen(strcat(dir, "/objective.txt"), "w");
  if (!f || fprintf(f, "%s\n", b->w->kind == W_TRAIN ? sk_objective_name(b->obj) : "none") < 0 ||
      fclose(f) != 0) {
    fprintf(stderr, "bench_unet: cannot write %s\n", dir);
    exit(1);
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_unet [--only NAME] [--objective OBJ] [--batch N] [--chunk N] [--threads K]\n"
          "                  [--iters N] [--repeats R] [--seconds S] [--warmup SEC]\n"
          "                  [--clock wall|cpu] [--dump DIR] [--profile N]\n"
          "  workloads: train-b64 train-b128 sample-b1000 lik-b1000\n"
          "  --objective: the training workloads' objective (default ncsn; any with a\n"
          "  noise level per row); --batch overrides the workload's batch\n"
          "  --chunk: rows per graph run of the evaluations (default 125, whole 16-row\n"
          "  blocks split evenly over 2 threads; it must\n"
          "  divide the batch)\n"
          "  --threads 0 (default) keeps scorekit's default thread count\n"
          "  --iters 0 (default) picks about --seconds (default 1) per repeat;\n"
          "  --repeats defaults to 5; --clock cpu times by the process's CPU time\n"
          "  over the threads\n"
          "  --dump DIR writes inputs, parameters and one step's results for\n"
          "  torch_unet.py --check instead of timing\n"
          "  --profile N prints the plan, each op timed over N runs on one thread\n"
          "  prints per workload FLOPS NAME F (convolution and product FLOPs a step),\n"
          "  RESULT NAME SECONDS-A-STEP ..., and MAXRSS NAME KiB\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *only = NULL, *dump = NULL;
  int iters = 0, repeats = 5, threads = 0, profile = 0, batch = 0, chunk = 125;
  double warmup = 1.0, secs = 1.0;
  sk_objective obj = SK_OBJ_NCSN;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    if (strcmp(a, "--only") == 0) only = argv[++i];
    else if (strcmp(a, "--objective") == 0) obj = sk_objective_parse(argv[++i]);
    else if (strcmp(a, "--batch") == 0) batch = atoi(argv[++i]);
    else if (strcmp(a, "--chunk") == 0) chunk = atoi(argv[++i]);
    else if (strcmp(a, "--iters") == 0) iters = atoi(argv[++i]);
    else if (strcmp(a, "--repeats") == 0) repeats = atoi(argv[++i]);
    else if (strcmp(a, "--seconds") == 0) secs = atof(argv[++i]);
    else if (strcmp(a, "--warmup") == 0) warmup = atof(argv[++i]);
    else if (strcmp(a, "--dump") == 0) dump = argv[++i];
    else if (strcmp(a, "--threads") == 0) threads = atoi(argv[++i]);
    else if (strcmp(a, "--profile") == 0) profile = atoi(argv[++i]);
    else if (strcmp(a, "--clock") == 0) {
      const char *c = argv[++i];
      if (strcmp(c, "cpu") == 0) bench_clock = CLOCK_PROCESS_CPUTIME_ID;
      else if (strcmp(c, "wall") != 0) usage();
    }
    else usage();
  }
  if (repeats < 1 || repeats > MAX_REPEATS || iters < 0 || threads < 0 || profile < 0 ||
      batch < 0 || chunk < 1 || !(warmup >= 0) || !(secs > 0) || obj == SK_OBJ_COUNT)
    usage();
  if (threads > 0) sk_set_num_threads(threads);
  int found = 0;
  printf("# scorekit threads %d\n", sk_get_num_threads());
  for (int k = 0; k < N_WORKLOADS; k++) {
    const workload *w = &workloads[k];
    if (only && strcmp(only, w->name) != 0) continue;
    found = 1;
    bench b;
    bench_init(&b, w, batch, chunk, obj);
    printf("FLOPS %s %.0f\n", w->name, product_flops(&b));
    int steps = 0, barriers = 0;
    sk_graph_plan_counts(b.g, &steps, &barriers);
    printf("# plan %s: %d ops, %d barriers, arena %.1f MiB\n", w->name, steps, barriers,
           (double)sk_graph_arena_bytes(b.g) / (1 << 20));
    if (profile > 0) {
      check(sk_graph_profile(b.g, profile, stdout), "sk_graph_profile");
    } else if (dump) {
      bench_dump(&b, dump);
      printf("dumped %s\n", w->name);
    } else {
      int used = 0;
      const double sec = bench_time(&b, warmup, iters, repeats, secs, &used);
      printf("RESULT %s %.6f s/step (%.3f steps/s, median of %d x %d)\n", w->name, sec, 1.0 / sec,
             repeats, used);
      struct rusage ru;
      if (getrusage(RUSAGE_SELF, &ru) == 0) printf("MAXRSS %s %ld\n", w->name, ru.ru_maxrss);
    }
    fflush(stdout);
    bench_free(&b);
  }
  if (!found) usage();
  return 0;
}
