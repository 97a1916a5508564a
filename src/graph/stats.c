/* Counts over a compiled plan, for benchmarks and profiles: what a run of the
 * graph costs, independent of how the kernels do it. */
#include "graph/internal.h"

double sk_graph_matmul_flops(const sk_graph *g) {
  if (!g || !g->compiled) return 0.0;
  double flops = 0.0;
  for (int i = 0; i < g->n_exec; i++) {
    const sk__node *n = &g->nodes[g->exec[i]];
    if (n->op != SK_OP_MATMUL) continue;
    const sk__node *a = &g->nodes[n->in[0]];
    /* One multiply and one add per term of each inner product. */
    double k = (double)(n->ip[0] ? a->shape[0] : a->shape[1]);
    flops += 2.0 * (double)n->shape[0] * (double)n->shape[1] * k;
  }
  return flops;
}
