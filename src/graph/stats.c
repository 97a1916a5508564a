/* Counts over a compiled plan, for benchmarks and profiles: what a run of the
 * graph costs, independent of how the kernels do it. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, CLOCK_THREAD_CPUTIME_ID under -std=c11 */
#include <stdio.h>
#include <time.h>

#include "graph/internal.h"

double sk_graph_matmul_flops(const sk_graph *g) {
  if (!g || !g->compiled) return 0.0;
  double flops = 0.0;
  for (int i = 0; i < g->n_exec; i++) {
    const sk__node *n = &g->nodes[g->exec[i]];
    if (n->op == SK_OP_MATMUL) flops += sk__op_flops(n, &g->nodes[n->in[0]]);
  }
  return flops;
}

double sk_graph_flops(const sk_graph *g) {
  if (!g || !g->compiled) return 0.0;
  double flops = 0.0;
  for (int i = 0; i < g->n_exec; i++) {
    const sk__node *n = &g->nodes[g->exec[i]];
    flops += sk__op_flops(n, sk__op_arity(n->op) > 0 ? &g->nodes[n->in[0]] : NULL);
  }
  return flops;
}

int sk_graph_plan_counts(const sk_graph *g, int *steps, int *barriers) {
  if (!g || !g->compiled) return 0;
  int b = g->n_packs > 0;
  /* A group of steps with halves holds one barrier (run.c). */
  for (int i = 0; i < g->n_exec; i++)
    b += g->steps[i].barrier + (g->steps[i].halves && g->steps[i].group_end);
  if (steps) *steps = g->n_exec;
  if (barriers) *barriers = b;
  return 1;
}

/* The calling thread's CPU time: the profile runs every op on this thread,
 * and on a shared machine the wall clock would count the waits for a core
 * against whichever op was running. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

sk_status sk_graph_profile(sk_graph *g, int reps, FILE *out) {
  if (!g) return sk__fail(SK_ERR_INVALID, "profile: NULL graph");
  if (!g->compiled) return sk__fail(SK_ERR_STATE, "profile: graph not compiled");
  if (reps < 1) return sk__fail(SK_ERR_INVALID, "profile: reps must be >= 1");
  if (!out) return sk__fail(SK_ERR_INVALID, "profile: NULL output stream");
  sk_status st = sk_graph_run(g); /* packs b^T and warms the kernels */
  if (st != SK_OK) return st;
  double total = 0.0;
  for (int s = 0; s < g->n_exec; s++) {
    const sk__node *nd = &g->nodes[g->exec[s]];
    const sk__exec e = sk__exec_of(g, g->exec[s], g->steps[s].units, g->steps[s].packed,
                                     g->steps[s].scratch, g->steps[s].scratch_part);
    double t0 = now_s();
    for (int r = 0; r < reps; r++) {
      st = g->steps[s].halves ? sk__run_halves(g, s, s + 1, 0, 1, &(int){0}) : g->be->exec(&e, 0, e.units);
      if (st != SK_OK) return st;
    }
    const double us = 1e6 * (now_s() - t0) / reps;
    total += us;
    fprintf(out, "%4d %-10s %c%c (", s, sk__op_name(nd->op), g->steps[s].barrier ? '|' : ' ',
            g->steps[s].packed ? 'p' : g->steps[s].halves ? 'h' : ' ');
    for (int d = 0; d < nd->ndim; d++) fprintf(out, d ? ",%lld" : "%lld", (long long)nd->shape[d]);
    fprintf(out, ")");
    if (nd->op == SK_OP_MATMUL) fprintf(out, " t%d%d k=%lld", nd->ip[0], nd->ip[1],
                                        (long long)(nd->ip[0] ? e.a->shape[0] : e.a->shape[1]));
    if (sk__op_flops_kind(nd->op) == SK__FLOPS_CONV)
      fprintf(out, " k%dx%d s%d,%d p%d,%d d%d,%d", nd->ip[SK__CONV_KERNEL],
              nd->ip[SK__CONV_KERNEL + 1], nd->ip[SK__CONV_STRIDE], nd->ip[SK__CONV_STRIDE + 1],
              nd->ip[SK__CONV_PAD], nd->ip[SK__CONV_PAD + 1], nd->ip[SK__CONV_DILATION],
              nd->ip[SK__CONV_DILATION + 1]);
    fprintf(out, " %.2f us", us);
    if (g->steps[s].group_end)
      fprintf(out, "  [group of %d: %lld units, tiles of %lld]", g->steps[s].group_end - s,
              (long long)g->steps[s].units, (long long)g->steps[s].tile);
    fprintf(out, "\n");
  }
  fprintf(out, "total %.1f us on one thread\n", total);
  return SK_OK;
}
