/* oneDNN 2.x's convolutions measured as a candidate for scorekit's CPU
 * backend (docs/PERFORMANCE.md, "Convolutions"): not part of the build,
 * since scorekit does not use oneDNN. On the U-Net layers of bench_conv.c
 * at batch 64, one thread, per pass (forward, backward-data,
 * backward-weights):
 *
 *   SPEED  GFLOP/s by CPU time, plain NCHW/OIHW memory or the layouts the
 *          primitive picks (`any`, reorders not counted), the whole batch in
 *          one call or one sample a call (the split scorekit's executor
 *          needs), and the implementation oneDNN chose;
 *   ALLOC  heap allocations inside one dnnl_primitive_execute (libc's
 *          allocator interposed): scorekit's sk_graph_run allocates nothing;
 *   BITS   whether results are reproducible: the same call twice, one
 *          sample a call against the whole batch, the samples split over 2
 *          OpenMP threads against one, and for the weight gradient blocks of
 *          16 output channels (what scorekit's split by channel needs)
 *          against all of them;
 *   FPMATH the default floating-point math mode (strict: no down-conversion).
 *
 * T(tconvK) names the convolution that layer tconvK transposes.
 *
 * Build and run (Debian: apt-get install libdnnl-dev):
 *   gcc -O2 -fopenmp bench/dnnl/conv_dnnl.c -o /tmp/conv_dnnl -ldnnl && /tmp/conv_dnnl
 * oneDNN 3.0 removed this C API (the *_desc_init functions). */
#define _GNU_SOURCE
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../alloc_count.h"

#define CK(x)                                                                   \
  do {                                                                          \
    dnnl_status_t st_ = (x);                                                    \
    if (st_ != dnnl_success) {                                                  \
      fprintf(stderr, "%s:%d: %s -> %d\n", __FILE__, __LINE__, #x, (int)st_);   \
      exit(1);                                                                  \
    }                                                                           \
  } while (0)

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static dnnl_engine_t eng;

/* The convolutions underneath the U-Net's layers: input (N, c, h, h),
 * output (N, o, oh, oh), 3 × 3, stride s, no padding. A convolution layer's
 * passes are this convolution's; a transposed layer runs the transpose of
 * one (its forward is that convolution's bwd-data, its bwd-data that
 * convolution's fwd, its bwd-weight that convolution's bwd-weight). */
typedef struct geo {
  const char *name;
  int c, h, o, oh, s;
} geo;
static const geo geos[] = {
    {"conv1", 1, 28, 32, 26, 1},         {"conv2", 32, 26, 64, 12, 2},
    {"conv3", 64, 12, 128, 5, 2},        {"conv4=T(tconv4)", 128, 5, 256, 2, 2},
    {"T(tconv3)", 64, 12, 256, 5, 2},    {"T(tconv2)", 32, 26, 128, 12, 2},
    {"T(tconv1)", 1, 28, 64, 26, 1},
};
enum { N = 64 };
static const char *const pass_name[3] = {"fwd", "bwd-data", "bwd-weight"};

static void fill(float *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
  }
}

static dnnl_memory_desc_t md(int a, int b, int c, int d, dnnl_format_tag_t tag) {
  dnnl_memory_desc_t m;
  dnnl_dims_t dims = {a, b, c, d};
  CK(dnnl_memory_desc_init_by_tag(&m, 4, dims, dnnl_f32, tag));
  return m;
}

/* A primitive for pass p on n samples and output channels [0, o) of a
 * (diff_dst rows ystride floats apart per sample when > 0), with user
 * scratchpad. */
typedef struct prim {
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t p;
  void *scratch;
  dnnl_memory_t ms;
} prim;

static prim make(const geo *g, int n, int o, int pass, int any, long ystride) {
  const dnnl_format_tag_t t = any ? dnnl_format_tag_any : dnnl_nchw;
  dnnl_memory_desc_t x = md(n, g->c, g->h, g->h, t), w = md(o, g->c, 3, 3, any ? t : dnnl_oihw);
  dnnl_memory_desc_t y = md(n, o, g->oh, g->oh, t);
  if (ystride > 0) {
    dnnl_dims_t dims = {n, o, g->oh, g->oh}, strides = {ystride, g->oh * g->oh, g->oh, 1};
    CK(dnnl_memory_desc_init_by_strides(&y, 4, dims, dnnl_f32, strides));
  }
  dnnl_dims_t st = {g->s, g->s}, pl = {0, 0};
  const int r = (g->oh - 1) * g->s + 3 - g->h;
  dnnl_dims_t pr = {r, r};
  dnnl_primitive_attr_t attr;
  CK(dnnl_primitive_attr_create(&attr));
  CK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
  dnnl_convolution_desc_t fd, cd;
  CK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &x,
                                        &w, NULL, &y, st, pl, pr));
  dnnl_primitive_desc_t fpd;
  CK(dnnl_primitive_desc_create(&fpd, &fd, attr, eng, NULL));
  prim q;
  if (pass == 0) {
    q.pd = fpd;
  } else {
    if (pass == 1)
      CK(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &x, &w, &y, st,
                                                  pl, pr));
    else
      CK(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &x, &w, NULL,
                                                     &y, st, pl, pr));
    CK(dnnl_primitive_desc_create(&q.pd, &cd, attr, eng, fpd));
  }
  CK(dnnl_primitive_create(&q.p, q.pd));
  const dnnl_memory_desc_t *sm = dnnl_primitive_desc_query_md(q.pd, dnnl_query_scratchpad_md, 0);
  const size_t sz = dnnl_memory_desc_get_size(sm);
  q.scratch = sz ? aligned_alloc(64, (sz + 63) / 64 * 64) : NULL;
  q.ms = NULL;
  if (sz) CK(dnnl_memory_create(&q.ms, sm, eng, q.scratch));
  return q;
}

static const char *impl(const prim *q) {
  const char *s;
  CK(dnnl_primitive_desc_query(q->pd, dnnl_query_impl_info_str, 0, &s));
  return s;
}

/* The operands of pass p: x (input, or its gradient), y (output, or its
 * gradient), w (weight, or its gradient), as memories over user pointers in
 * the layouts the primitive wants. */
typedef struct args {
  dnnl_memory_t x, y, w;
  dnnl_exec_arg_t a[4];
  int n;
} args;

static args bind(const prim *q, int pass, float *x, float *y, float *w) {
  args r;
  const dnnl_memory_desc_t *xm =
      dnnl_primitive_desc_query_md(q->pd, pass == 1 ? dnnl_query_diff_src_md : dnnl_query_src_md, 0);
  const dnnl_memory_desc_t *ym =
      dnnl_primitive_desc_query_md(q->pd, pass == 0 ? dnnl_query_dst_md : dnnl_query_diff_dst_md, 0);
  const dnnl_memory_desc_t *wm = dnnl_primitive_desc_query_md(
      q->pd, pass == 2 ? dnnl_query_diff_weights_md : dnnl_query_weights_md, 0);
  CK(dnnl_memory_create(&r.x, xm, eng, x));
  CK(dnnl_memory_create(&r.y, ym, eng, y));
  CK(dnnl_memory_create(&r.w, wm, eng, w));
  r.a[0] = (dnnl_exec_arg_t){pass == 1 ? DNNL_ARG_DIFF_SRC : DNNL_ARG_SRC, r.x};
  r.a[1] = (dnnl_exec_arg_t){pass == 0 ? DNNL_ARG_DST : DNNL_ARG_DIFF_DST, r.y};
  r.a[2] = (dnnl_exec_arg_t){pass == 2 ? DNNL_ARG_DIFF_WEIGHTS : DNNL_ARG_WEIGHTS, r.w};
  r.a[3] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, q->ms};
  r.n = q->ms ? 4 : 3;
  return r;
}

static void unbind(args *r) {
  dnnl_memory_destroy(r->x);
  dnnl_memory_destroy(r->y);
  dnnl_memory_destroy(r->w);
}

static void run(const prim *q, dnnl_stream_t s, const args *r) {
  CK(dnnl_primitive_execute(q->p, s, r->n, r->a));
  CK(dnnl_stream_wait(s));
}

static void destroy(prim *q) {
  if (q->ms) dnnl_memory_destroy(q->ms);
  free(q->scratch);
  dnnl_primitive_destroy(q->p);
}

int main(void) {
  omp_set_num_threads(1); /* primitives made for one thread, as a graph's ops run */
  CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
  dnnl_stream_t strm;
  CK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
  dnnl_fpmath_mode_t fm;
  CK(dnnl_get_default_fpmath_mode(&fm));
  const dnnl_version_t *v = dnnl_version();
  printf("# oneDNN %d.%d.%d, CPU runtime %s\n", v->major, v->minor, v->patch,
         v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
  printf("FPMATH default %s\n", fm == dnnl_fpmath_mode_strict ? "strict" : "not strict");
  for (size_t gi = 0; gi < sizeof geos / sizeof *geos; gi++) {
    const geo *g = &geos[gi];
    const size_t xs = (size_t)g->c * g->h * g->h, ys = (size_t)g->o * g->oh * g->oh;
    const size_t nw = (size_t)g->o * g->c * 9, most = (N * xs > N * ys ? N * xs : N * ys) + nw;
    float *x = malloc(N * xs * 4), *y = malloc(N * ys * 4), *w = malloc(nw * 4);
    float *o1 = malloc(most * 4), *o2 = malloc(most * 4), *o3 = malloc(most * 4);
    float *big = aligned_alloc(64, 3 * most * 4 + 4096);
    fill(x, N * xs, 1), fill(y, N * ys, 2), fill(w, nw, 3);
    const double flops = 2.0 * N * ys * g->c * 9;
    for (int pass = 0; pass < 3; pass++) {
      /* The pass's inputs and where its output goes, plain layouts. */
      float *px = pass == 1 ? NULL : x, *py = pass == 0 ? NULL : y, *pw = pass == 2 ? NULL : w;
      const size_t nout = pass == 0 ? N * ys : pass == 1 ? N * xs : nw;
      for (int any = 0; any < 2; any++)
        for (int per = 0; per < 2; per++) { /* whole batch, or one sample a call */
          prim q = make(g, per ? 1 : N, g->o, pass, any, 0);
          /* `any`: memory in the primitive's layouts, contents irrelevant for speed. */
          float *bx = any ? big : (px ? px : o1), *by = any ? big + most : (py ? py : o1);
          float *bw = any ? big + 2 * most : (pw ? pw : o1);
          args r = bind(&q, pass, bx, by, bw);
          const int calls = per ? N : 1;
          double best = 1e30;
          long a0 = 0, a1 = 0;
          for (int rep = 0; rep < 4; rep++) {
            const double t0 = cpu_now();
            if (rep == 3) a0 = atomic_load(&allocs);
            for (int i = 0; i < calls; i++) {
              if (per && !any) {
                CK(dnnl_memory_set_data_handle(r.x, (px ? px : o1) + i * xs));
                CK(dnnl_memory_set_data_handle(r.y, (py ? py : o1) + i * ys));
              }
              run(&q, strm, &r);
            }
            if (rep == 3) a1 = atomic_load(&allocs);
            const double t = cpu_now() - t0;
            if (rep > 0 && t < best) best = t;
          }
          printf("SPEED %-15s %-10s %-5s %-10s %6.1f GFLOP/s  %s\n", g->name, pass_name[pass],
                 any ? "any" : "plain", per ? "per-sample" : "batch", flops / best * 1e-9,
                 impl(&q));
          if (!any && !per)
            printf("ALLOC %-15s %-10s %.1f allocations per execute\n", g->name, pass_name[pass],
                   (double)(a1 - a0) / calls);
          unbind(&r);
          destroy(&q);
        }
      /* Bits, plain layouts. Whole batch twice. */
      prim q = make(g, N, g->o, pass, 0, 0);
      args r = bind(&q, pass, px ? px : o1, py ? py : o1, pw ? pw : o1);
      run(&q, strm, &r);
      memcpy(o2, o1, nout * 4);
      memset(o1, 0, nout * 4);
      run(&q, strm, &r);
      const int again = memcmp(o1, o2, nout * 4) == 0;
      unbind(&r);
      destroy(&q);
      int per_same = -1, omp_same = -1, chan_same = -1;
      if (pass < 2) {
        /* One sample a call, then samples split over 2 OpenMP threads. */
        prim s1 = make(g, 1, g->o, pass, 0, 0);
        for (int i = 0; i < N; i++) {
          args ri = bind(&s1, pass, pass == 1 ? o3 + i * xs : x + i * xs,
                         pass == 0 ? o3 + i * ys : y + i * ys, w);
          run(&s1, strm, &ri);
          unbind(&ri);
        }
        per_same = memcmp(o3, o2, nout * 4) == 0;
        memset(o1, 0, nout * 4);
        /* Each thread its own stream and scratchpad; the primitive shared. */
#pragma omp parallel num_threads(2)
        {
          dnnl_stream_t ts;
          CK(dnnl_stream_create(&ts, eng, dnnl_stream_default_flags));
          const dnnl_memory_desc_t *sm =
              dnnl_primitive_desc_query_md(s1.pd, dnnl_query_scratchpad_md, 0);
          const size_t sz = dnnl_memory_desc_get_size(sm);
          void *sp = sz ? aligned_alloc(64, (sz + 63) / 64 * 64) : NULL;
          dnnl_memory_t msp = NULL;
          if (sz) CK(dnnl_memory_create(&msp, sm, eng, sp));
          const int t = omp_get_thread_num(), nt = omp_get_num_threads();
          for (int i = t * N / nt; i < (t + 1) * N / nt; i++) {
            args ri = bind(&s1, pass, pass == 1 ? o1 + i * xs : x + i * xs,
                           pass == 0 ? o1 + i * ys : y + i * ys, w);
            ri.a[3] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, msp};
            CK(dnnl_primitive_execute(s1.p, ts, ri.n, ri.a));
            CK(dnnl_stream_wait(ts));
            unbind(&ri);
          }
          if (msp) dnnl_memory_destroy(msp);
          free(sp);
          dnnl_stream_destroy(ts);
        }
        omp_same = memcmp(o1, o3, nout * 4) == 0;
        destroy(&s1);
      } else if (g->o % 16 == 0) {
        /* Blocks of 16 output channels: dy a strided view, dw's rows. */
        for (int c0 = 0; c0 < g->o; c0 += 16) {
          prim b = make(g, N, 16, pass, 0, (long)ys);
          args rb = bind(&b, pass, x, y + (size_t)c0 * g->oh * g->oh, o3 + (size_t)c0 * g->c * 9);
          run(&b, strm, &rb);
          unbind(&rb);
          destroy(&b);
        }
        chan_same = memcmp(o3, o2, nout * 4) == 0;
      }
      printf("BITS  %-15s %-10s same call twice: %s", g->name, pass_name[pass],
             again ? "same" : "DIFFER");
      if (per_same >= 0)
        printf("; per sample vs batch: %s; 2 threads vs 1: %s", per_same ? "same" : "DIFFER",
               omp_same ? "same" : "DIFFER");
      if (chan_same >= 0) printf("; 16-channel blocks vs all: %s", chan_same ? "same" : "DIFFER");
      printf("\n");
      fflush(stdout);
    }
    free(x), free(y), free(w), free(o1), free(o2), free(o3), free(big);
  }
  dnnl_stream_destroy(strm);
  dnnl_engine_destroy(eng);
  return 0;
}
