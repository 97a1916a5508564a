/* Throughput of scorekit on the foundation workloads: one forward + backward
 * of a 3 × 128 softplus MLP at batch 512, and one training step (loss graph +
 * Adam) of each score-matching objective, at the small size (2-3 × 128,
 * batch 512 or 128) and at a big one (4 × 512, batch 4096) where the matrix
 * products dominate. bench/torch_mlp.py is the PyTorch twin; bench/run.sh runs
 * both and prints the comparison. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "scorekit/scorekit.h"

enum { DIM = 2, MAX_TENSORS = 16, MAX_REPEATS = 101 };

/* The ncsn ladder: σ_i geometric from SIGMA_FIRST down to SIGMA_LAST. */
#define N_LEVELS 10
#define SIGMA_FIRST 1.0f
#define SIGMA_LAST 0.01f
#define DSM_SIGMA 0.1f

typedef struct workload {
  const char *name;
  sk_model_kind kind;
  int depth;       /* hidden layers */
  int hidden;      /* their width */
  int batch;
  int train;       /* 0: forward + backward of mean(s²); 1: loss graph + Adam */
  sk_objective obj;
} workload;

/* bench/torch_mlp.py's WORKLOADS lists the same names and sizes. */
static const workload workloads[] = {
    {"mlp-fwd-bwd", SK_MODEL_MLP, 3, 128, 512, 0, SK_OBJ_COUNT},
    {"dsm", SK_MODEL_MLP, 2, 128, 512, 1, SK_OBJ_DSM},
    {"ssm", SK_MODEL_MLP, 2, 128, 512, 1, SK_OBJ_SSM},
    {"ssm-vr", SK_MODEL_MLP, 2, 128, 512, 1, SK_OBJ_SSM_VR},
    {"esm", SK_MODEL_MLP, 2, 128, 512, 1, SK_OBJ_ESM},
    {"ncsn", SK_MODEL_NCMLP, 3, 128, 512, 1, SK_OBJ_NCSN},
    {"ncsn-b128", SK_MODEL_NCMLP, 3, 128, 128, 1, SK_OBJ_NCSN},
    {"big-ncsn", SK_MODEL_NCMLP, 4, 512, 4096, 1, SK_OBJ_NCSN},
    {"big-ssm-vr", SK_MODEL_MLP, 4, 512, 4096, 1, SK_OBJ_SSM_VR},
};
enum { N_WORKLOADS = sizeof workloads / sizeof workloads[0] };

/* One benchmark instance: a compiled graph over a model, its inputs filled. */
typedef struct bench {
  const workload *w;
  sk_model *m;
  sk_adam *adam;
  float *grads;           /* flat, in tensor order, for sk_adam_step */
  sk_graph *g;            /* the graph that runs (lg.g when training) */
  sk_loss_graph lg;       /* training workloads */
  sk_node x;               /* the data input */
  sk_node loss;
  int n_tensors;
  sk_node grad_nodes[MAX_TENSORS];
} bench;

static void die(const char *what) {
  fprintf(stderr, "bench_mlp: %s: %s\n", what, sk_last_error());
  exit(1);
}

static void check(sk_status st, const char *what) {
  if (st != SK_OK) die(what);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill_normal(float *dst, size_t n, uint64_t stream) {
  sk_rng r = sk_rng_make(1234, stream);
  sk_rng_normal(&r, dst, n);
}

/* The inputs of both programs come from here (and reach PyTorch through
 * --dump), so a check run compares the same numbers. */
static void fill_inputs(bench *b) {
  sk_graph *g = b->g;
  fill_normal(sk_graph_data(g, b->x), (size_t)b->w->batch * DIM, 1);
  if (!b->w->train) return;
  sk_loss_graph *lg = &b->lg;
  if (lg->z != SK_NONE) fill_normal(sk_graph_data(g, lg->z), (size_t)lg->rows * DIM, 2);
  if (lg->v != SK_NONE) fill_normal(sk_graph_data(g, lg->v), (size_t)lg->rows * DIM, 3);
  if (lg->sigma != SK_NONE) {
    float *s = sk_graph_data(g, lg->sigma);
    sk_rng r = sk_rng_make(1234, 4);
    for (int i = 0; i < lg->rows; i++) {
      if (b->w->obj == SK_OBJ_NCSN) {
        float t = (float)sk_rng_below(&r, N_LEVELS) / (float)(N_LEVELS - 1);
        s[i] = SIGMA_FIRST * powf(SIGMA_LAST / SIGMA_FIRST, t);
      } else {
        s[i] = DSM_SIGMA;
      }
    }
  }
}

static void bench_init(bench *b, const workload *w) {
  memset(b, 0, sizeof *b);
  b->w = w;
  sk_model_config cfg = {w->kind, DIM, w->hidden, w->depth, 0, SK_ACT_SOFTPLUS};
  b->m = sk_model_new(&cfg);
  if (!b->m) die("sk_model_new");
  sk_model_init(b->m, 42);
  b->n_tensors = sk_model_num_tensors(b->m);
  if (b->n_tensors > MAX_TENSORS) die("model has too many tensors");
  if (w->train) {
    check(sk_loss_graph_new(b->m, w->obj, w->batch, 1, &b->lg), "sk_loss_graph_new");
    b->g = b->lg.g;
    b->x = b->lg.x;
    b->loss = b->lg.loss;
    memcpy(b->grad_nodes, b->lg.grads, (size_t)b->n_tensors * sizeof(sk_node));
    /* No EMA: torch.optim.Adam keeps none, so both sides do the same work. */
    sk_adam_config ac = sk_adam_config_default();
    ac.ema_rate = 0.0f;
    b->adam = sk_adam_new(&ac, sk_model_num_params(b->m), sk_model_params(b->m));
    if (!b->adam) die("sk_adam_new");
  } else {
    sk_graph *g = sk_graph_new();
    if (!g) die("sk_graph_new");
    b->g = g;
    sk_node p[MAX_TENSORS];
    check(sk_model_bind(b->m, g, NULL, p), "sk_model_bind");
    b->x = sk_input(g, "x", 2, (int64_t[]){w->batch, DIM});
    sk_node s = sk_model_apply(b->m, g, p, b->x, SK_NONE);
    b->loss = sk_mean_all(g, sk_square(g, s));
    check(sk_grad(g, b->loss, SK_NONE, b->n_tensors, p, b->grad_nodes), "sk_grad");
    sk_node outs[1 + MAX_TENSORS];
    outs[0] = b->loss;
    memcpy(outs + 1, b->grad_nodes, (size_t)b->n_tensors * sizeof(sk_node));
    check(sk_graph_compile(g, 1 + b->n_tensors, outs), "sk_graph_compile");
  }
  b->grads = malloc(sk_model_num_params(b->m) * sizeof(float));
  if (!b->grads) die("out of memory");
  fill_inputs(b);
}

static void bench_free(bench *b) {
  if (b->w->train)
    sk_loss_graph_free(&b->lg);
  else
    sk_graph_free(b->g);
  sk_adam_free(b->adam);
  sk_model_free(b->m);
  free(b->grads);
}

/* Gathers the per-tensor gradient outputs into the flat buffer. */
static void gather_grads(bench *b) {
  for (int i = 0; i < b->n_tensors; i++) {
    size_t off = sk_model_tensor_offset(b->m, i);
    size_t n = (size_t)sk_node_numel(b->g, b->grad_nodes[i]);
    memcpy(b->grads + off, sk_graph_data(b->g, b->grad_nodes[i]), n * sizeof(float));
  }
}

/* One timed step: the graph, and for training Adam on the gradients where
 * the graph left them, in the graph's parallel region, as the trainer does
 * (sk_adam_step_graph). */
static void bench_step(bench *b) {
  if (!b->w->train) {
    check(sk_graph_run(b->g), "sk_graph_run");
    return;
  }
  sk_adam_part parts[MAX_TENSORS];
  for (int i = 0; i < b->n_tensors; i++) {
    const int64_t *sh = sk_model_tensor_shape(b->m, i);
    const int64_t n = sk_node_numel(b->g, b->grad_nodes[i]);
    parts[i] = (sk_adam_part){sk_graph_data(b->g, b->grad_nodes[i]),
                              sk_model_tensor_offset(b->m, i), (size_t)sh[0], (size_t)(n / sh[0])};
  }
  check(sk_adam_step_graph(b->adam, b->g, NULL, sk_model_params(b->m), b->n_tensors, parts, NULL),
        "sk_adam_step_graph");
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median seconds per step over `repeats` runs of `iters` steps after
 * `warmup` seconds of warm-up; iters = 0 picks about 0.25 s per repeat from
 * the speed at the end of the warm-up. */
static double bench_time(bench *b, double warmup, int iters, int repeats, int *iters_used) {
  double t0 = now();
  int n_warm = 0;
  while (now() - t0 < warmup || n_warm < 3) {
    bench_step(b);
    n_warm++;
  }
  if (iters <= 0) {
    double s = now();
    for (int i = 0; i < 5; i++) bench_step(b);
    iters = (int)(0.25 / ((now() - s) / 5));
    if (iters < 3) iters = 3;
  }
  double runs[MAX_REPEATS];
  for (int r = 0; r < repeats; r++) {
    double s = now();
    for (int i = 0; i < iters; i++) bench_step(b);
    runs[r] = (now() - s) / iters;
  }
  qsort(runs, (size_t)repeats, sizeof *runs, cmp_double);
  *iters_used = iters;
  return runs[repeats / 2];
}

/* dir/name into path, or exit if it does not fit. */
static void join(char *path, size_t size, const char *dir, const char *name) {
  int n = snprintf(path, size, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= size) {
    fprintf(stderr, "bench_mlp: path %s/%s too long\n", dir, name);
    exit(1);
  }
}

static void save(const char *dir, const char *name, int ndim, const int64_t *shape,
                 const float *data) {
  char path[4096], file[64];
  snprintf(file, sizeof file, "%.50s.npy", name);
  join(path, sizeof path, dir, file);
  check(sk_npy_save_f32(path, ndim, shape, data), path);
}

/* Writes what the PyTorch twin needs to recompute the step exactly: the
 * parameters and inputs, and scorekit's loss, gradients and post-Adam
 * parameters after one step. */
static void bench_dump(bench *b, const char *root) {
  char dir[4096];
  join(dir, sizeof dir, root, b->w->name);
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "bench_mlp: mkdir %s: %s\n", dir, strerror(errno));
    exit(1);
  }
  int64_t np = (int64_t)sk_model_num_params(b->m);
  save(dir, "params", 1, &np, sk_model_params(b->m));
  int64_t xs[2] = {b->w->batch, DIM}, ss[2] = {b->w->batch, 1};
  save(dir, "x", 2, xs, sk_graph_data(b->g, b->x));
  if (b->w->train) {
    sk_loss_graph *lg = &b->lg;
    if (lg->z != SK_NONE) save(dir, "z", 2, xs, sk_graph_data(b->g, lg->z));
    if (lg->v != SK_NONE) save(dir, "v", 2, xs, sk_graph_data(b->g, lg->v));
    if (lg->sigma != SK_NONE) save(dir, "sigma", 2, ss, sk_graph_data(b->g, lg->sigma));
  }
  check(sk_graph_run(b->g), "sk_graph_run");
  gather_grads(b);
  int64_t one = 1;
  save(dir, "loss", 1, &one, sk_graph_data(b->g, b->loss));
  save(dir, "grads", 1, &np, b->grads);
  if (b->w->train) {
    check(sk_adam_step(b->adam, sk_model_params(b->m), b->grads, NULL), "sk_adam_step");
    save(dir, "params_after", 1, &np, sk_model_params(b->m));
  }
  char path[4096];
  join(path, sizeof path, dir, "tensors.txt");
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "bench_mlp: %s: %s\n", path, strerror(errno));
    exit(1);
  }
  for (int i = 0; i < b->n_tensors; i++) {
    const int64_t *sh = sk_model_tensor_shape(b->m, i);
    int nd = sk_model_tensor_ndim(b->m, i);
    fprintf(f, "%s %zu %lld %lld\n", sk_model_tensor_name(b->m, i),
            sk_model_tensor_offset(b->m, i), (long long)sh[0], nd > 1 ? (long long)sh[1] : 0LL);
  }
  if (fclose(f) != 0) {
    fprintf(stderr, "bench_mlp: %s: write failed\n", path);
    exit(1);
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_mlp [--only NAME] [--threads K] [--iters N] [--repeats R] [--warmup SEC]\n"
          "                 [--dump DIR] [--profile N]\n"
          "  workloads: mlp-fwd-bwd dsm ssm ssm-vr esm ncsn ncsn-b128 big-ncsn big-ssm-vr\n"
          "  --threads 0 (default) keeps scorekit's default thread count\n"
          "  --iters 0 (default) picks about 0.25 s per repeat; --repeats defaults to 7\n"
          "  --dump DIR writes inputs, parameters and one step's results for\n"
          "  torch_mlp.py --check instead of timing\n"
          "  --profile N prints the plan, each op timed over N runs on one thread\n"
          "  prints per workload FLOPS NAME F (matmul FLOPs per step), RESULT NAME\n"
          "  STEPS/s ..., and MAXRSS NAME KiB (this process's peak resident set)\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *only = NULL, *dump = NULL;
  int iters = 0, repeats = 7, threads = 0, profile = 0;
  double warmup = 0.5;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    if (strcmp(a, "--only") == 0) only = argv[++i];
    else if (strcmp(a, "--iters") == 0) iters = atoi(argv[++i]);
    else if (strcmp(a, "--repeats") == 0) repeats = atoi(argv[++i]);
    else if (strcmp(a, "--warmup") == 0) warmup = atof(argv[++i]);
    else if (strcmp(a, "--dump") == 0) dump = argv[++i];
    else if (strcmp(a, "--threads") == 0) threads = atoi(argv[++i]);
    else if (strcmp(a, "--profile") == 0) profile = atoi(argv[++i]);
    else usage();
  }
  if (repeats < 1 || repeats > MAX_REPEATS || iters < 0 || threads < 0 || profile < 0 ||
      !(warmup >= 0))
    usage();
  if (threads > 0) sk_set_num_threads(threads);
  int found = 0;
  printf("# scorekit threads %d\n", sk_get_num_threads());
  for (int k = 0; k < N_WORKLOADS; k++) {
    const workload *w = &workloads[k];
    if (only && strcmp(only, w->name) != 0) continue;
    found = 1;
    bench b;
    bench_init(&b, w);
    /* The training step adds only Adam, which has no product, to the graph. */
    printf("FLOPS %s %.0f\n", w->name, sk_graph_matmul_flops(b.g));
    int steps = 0, barriers = 0;
    sk_graph_plan_counts(b.g, &steps, &barriers);
    printf("# plan %s: %d ops, %d barriers\n", w->name, steps, barriers);
    if (profile > 0) {
      check(sk_graph_profile(b.g, profile, stdout), "sk_graph_profile");
    } else if (dump) {
      bench_dump(&b, dump);
      printf("dumped %s (%zu parameters)\n", w->name, sk_model_num_params(b.m));
    } else {
      int used = 0;
      double sec = bench_time(&b, warmup, iters, repeats, &used);
      printf("RESULT %s %.2f steps/s (%.1f us/step, median of %d x %d)\n", w->name, 1.0 / sec,
             1e6 * sec, repeats, used);
      /* The peak of the whole process so far, so it means one workload only
       * when run.sh runs one per process (--only). */
      struct rusage ru;
      if (getrusage(RUSAGE_SELF, &ru) == 0) printf("MAXRSS %s %ld\n", w->name, ru.ru_maxrss);
    }
    fflush(stdout);
    bench_free(&b);
  }
  if (!found) usage();
  return 0;
}
