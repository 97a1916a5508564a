/* Throughput of scorekit's three convolution ops on the layer shapes of the
 * score-SDE tutorial's U-Net (MNIST-sized, 3 × 3 kernels, no padding,
 * channels 32, 64, 128, 256) at batch 64: per layer, its forward pass, its
 * gradient with respect to its input (backward-data) and with respect to its
 * weight (backward-weight), each as the op a scorekit gradient graph runs:
 *
 *   layer            forward            backward-data       backward-weight
 *   conv  (x, w)     conv2d(x, w)       conv_transpose2d    conv2d_weight(x, dy)
 *   tconv (x, w)     conv_transpose2d   conv2d(dy, w)       conv2d_weight(dy, x)
 *
 * Each one is a graph of that one op, compiled and run; GFLOP/s count 2 per
 * multiply-add (sk_graph_flops). bench/torch_conv.py is the PyTorch twin
 * (the same shapes, through the ops autograd runs); bench/conv.sh runs both
 * and prints the comparison with the share of the FMA peak. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "scorekit/scorekit.h"

enum { MAX_REPEATS = 101 };

/* One layer: input (batch, cin, h, h), output (batch, cout, oh, oh); a
 * convolution's weight is (cout, cin, 3, 3), a transposed one's (cin, cout,
 * 3, 3). bench/torch_conv.py's LAYERS lists the same. */
typedef struct layer {
  const char *name;
  int transposed;
  int cin, cout, h, oh, stride, outpad;
} layer;

static const layer layers[] = {
    {"conv1", 0, 1, 32, 28, 26, 1, 0},     {"conv2", 0, 32, 64, 26, 12, 2, 0},
    {"conv3", 0, 64, 128, 12, 5, 2, 0},    {"conv4", 0, 128, 256, 5, 2, 2, 0},
    {"tconv4", 1, 256, 128, 2, 5, 2, 0},   {"tconv3", 1, 256, 64, 5, 12, 2, 1},
    {"tconv2", 1, 128, 32, 12, 26, 2, 1},  {"tconv1", 1, 64, 1, 26, 28, 1, 0},
};
enum { N_LAYERS = sizeof layers / sizeof layers[0] };
static const char *const passes[3] = {"fwd", "bwd-data", "bwd-weight"};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void check(sk_status st, const char *what) {
  if (st == SK_OK) return;
  fprintf(stderr, "bench_conv: %s: %s\n", what, sk_last_error());
  exit(1);
}

/* One measured op: a graph of it, its two inputs filled. */
typedef struct case_ {
  sk_graph *g;
  sk_node a, b, out;
} case_;

static void fill_normal(float *p, int64_t n, uint64_t stream) {
  sk_rng r = sk_rng_make(4321, stream);
  sk_rng_normal(&r, p, (size_t)n);
}

static void case_init(case_ *c, const layer *l, int pass, int batch) {
  const int64_t small[4] = {batch, l->cin, l->h, l->h}, big[4] = {batch, l->cout, l->oh, l->oh};
  const int64_t wsh[4] = {l->transposed ? l->cin : l->cout, l->transposed ? l->cout : l->cin, 3, 3};
  sk_conv2d_opts o = {{l->stride, l->stride}, {0, 0}, {1, 1}, {0, 0}};
  /* The output padding of the transpose that maps the layer's output back
   * to its input (conv), or its input to its output (tconv). */
  const int in_side = l->transposed ? l->oh : l->h, out_side = l->transposed ? l->h : l->oh;
  const int outpad = in_side - ((out_side - 1) * l->stride + 3);
  sk_graph *g = c->g = sk_graph_new();
  /* x: the layer's input, dy: its output's gradient. */
  sk_node x = sk_input(g, "x", 4, small), dy = sk_input(g, "dy", 4, big);
  sk_node w = sk_input(g, "w", 4, wsh);
  if (!l->transposed) {
    switch (pass) {
    case 0: c->a = x, c->b = w, c->out = sk_conv2d(g, x, w, &o); break;
    case 1:
      o.output_padding[0] = o.output_padding[1] = outpad;
      c->a = dy, c->b = w, c->out = sk_conv_transpose2d(g, dy, w, &o);
      break;
    default: c->a = x, c->b = dy, c->out = sk_conv2d_weight(g, x, dy, 3, 3, &o); break;
    }
  } else {
    switch (pass) {
    case 0:
      o.output_padding[0] = o.output_padding[1] = outpad;
      c->a = x, c->b = w, c->out = sk_conv_transpose2d(g, x, w, &o);
      break;
    case 1: c->a = dy, c->b = w, c->out = sk_conv2d(g, dy, w, &o); break;
    default: c->a = dy, c->b = x, c->out = sk_conv2d_weight(g, dy, x, 3, 3, &o); break;
    }
  }
  check(sk_graph_status(g), l->name);
  check(sk_graph_compile(g, 1, &c->out), "sk_graph_compile");
  fill_normal(sk_graph_data(g, c->a), sk_node_numel(g, c->a), 1);
  fill_normal(sk_graph_data(g, c->b), sk_node_numel(g, c->b), 2);
}

/* This process's CPU time: on a shared machine a 1-thread run's CPU time
 * leaves out the time it waited for a core. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median seconds per run over `repeats` repeats of about `seconds` each,
 * after `warmup` seconds of warm-up, by the wall clock and (*cpu) by the
 * process's CPU time. */
static double time_case(const case_ *c, double warmup, double seconds, int repeats,
                        double *cpu) {
  double t0 = now();
  int n_warm = 0;
  while (now() - t0 < warmup || n_warm < 2) {
    check(sk_graph_run(c->g), "sk_graph_run");
    n_warm++;
  }
  const double per = (now() - t0) / n_warm;
  const int iters = per > 0 ? (int)(seconds / per) + 1 : 1;
  double runs[MAX_REPEATS], cpus[MAX_REPEATS];
  for (int r = 0; r < repeats; r++) {
    double s = now(), sc = cpu_now();
    for (int i = 0; i < iters; i++) check(sk_graph_run(c->g), "sk_graph_run");
    runs[r] = (now() - s) / iters;
    cpus[r] = (cpu_now() - sc) / iters;
  }
  qsort(runs, (size_t)repeats, sizeof *runs, cmp_double);
  qsort(cpus, (size_t)repeats, sizeof *cpus, cmp_double);
  *cpu = cpus[repeats / 2];
  return runs[repeats / 2];
}

static void save(const char *dir, const char *layer_name, const char *pass, const char *what,
                 const sk_graph *g, sk_node n) {
  char path[4096];
  int len = snprintf(path, sizeof path, "%s/%s-%s-%s.npy", dir, layer_name, pass, what);
  if (len < 0 || (size_t)len >= sizeof path) {
    fprintf(stderr, "bench_conv: path under %s too long\n", dir);
    exit(1);
  }
  check(sk_npy_save_f32(path, sk_node_ndim(g, n), sk_node_shape(g, n),
                        sk_graph_data((sk_graph *)g, n)),
        path);
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_conv [--only LAYER] [--pass fwd|bwd-data|bwd-weight] [--threads K]\n"
          "                  [--batch N] [--repeats R] [--seconds S] [--warmup SEC] [--dump DIR]\n"
          "  layers: conv1 conv2 conv3 conv4 tconv4 tconv3 tconv2 tconv1\n"
          "  --threads 0 keeps scorekit's default (OpenMP's, one per core); default 1\n"
          "  --batch defaults to 64; --repeats 7 of about --seconds 0.1 after --warmup 0.2\n"
          "  --dump DIR writes each case's inputs and output (LAYER-PASS-{a,b,out}.npy)\n"
          "  for torch_conv.py --check instead of timing\n"
          "  prints per case RESULT LAYER PASS GFLOP/s MS MFLOP CPU-GFLOP/s: by the wall\n"
          "  clock, and by the process's CPU time (all threads' seconds)\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *only = NULL, *only_pass = NULL, *dump = NULL;
  int repeats = 7, threads = 1, batch = 64;
  double warmup = 0.2, seconds = 0.1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    if (strcmp(a, "--only") == 0) only = argv[++i];
    else if (strcmp(a, "--pass") == 0) only_pass = argv[++i];
    else if (strcmp(a, "--threads") == 0) threads = atoi(argv[++i]);
    else if (strcmp(a, "--batch") == 0) batch = atoi(argv[++i]);
    else if (strcmp(a, "--repeats") == 0) repeats = atoi(argv[++i]);
    else if (strcmp(a, "--seconds") == 0) seconds = atof(argv[++i]);
    else if (strcmp(a, "--warmup") == 0) warmup = atof(argv[++i]);
    else if (strcmp(a, "--dump") == 0) dump = argv[++i];
    else usage();
  }
  if (repeats < 1 || repeats > MAX_REPEATS || threads < 0 || batch < 1 || !(warmup >= 0) ||
      !(seconds > 0))
    usage();
  if (threads > 0) sk_set_num_threads(threads);
  if (dump && mkdir(dump, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "bench_conv: mkdir %s: %s\n", dump, strerror(errno));
    return 1;
  }
  printf("# scorekit %s threads %d batch %d\n", sk_version(), sk_get_num_threads(), batch);
  int found = 0;
  for (int k = 0; k < N_LAYERS; k++) {
    const layer *l = &layers[k];
    if (only && strcmp(only, l->name) != 0) continue;
    for (int p = 0; p < 3; p++) {
      if (only_pass && strcmp(only_pass, passes[p]) != 0) continue;
      found = 1;
      case_ c;
      case_init(&c, l, p, batch);
      const double flops = sk_graph_flops(c.g);
      if (dump) {
        check(sk_graph_run(c.g), "sk_graph_run");
        save(dump, l->name, passes[p], "a", c.g, c.a);
        save(dump, l->name, passes[p], "b", c.g, c.b);
        save(dump, l->name, passes[p], "out", c.g, c.out);
      } else {
        double cpu;
        const double sec = time_case(&c, warmup, seconds, repeats, &cpu);
        printf("RESULT %s %s %.2f %.4f %.2f %.2f\n", l->name, passes[p], flops / sec * 1e-9,
               sec * 1e3, flops * 1e-6, flops / cpu * 1e-9);
        fflush(stdout);
      }
      sk_graph_free(c.g);
    }
  }
  if (!found) usage();
  return 0;
}
