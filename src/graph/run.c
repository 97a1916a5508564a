/* Execution of a compiled graph: one backend call per planned node, no
 * allocation. */
#include "graph/internal.h"

sk_status sk_graph_run(sk_graph *g) {
  if (!g->compiled) return sk__fail(SK_ERR_STATE, "run: graph not compiled");
  for (int s = 0; s < g->n_exec; s++) {
    const sk__node *nd = &g->nodes[g->exec[s]];
    sk__exec e = {.op = nd->op, .out = nd->data, .node = nd};
    e.a = &g->nodes[nd->in[0]];
    e.in[0] = e.a->data;
    if (sk__op_arity(nd->op) > 1) {
      e.b = &g->nodes[nd->in[1]];
      e.in[1] = e.b->data;
    }
    sk_status st = sk__cpu_exec(&e);
    if (st != SK_OK) return st;
  }
  return SK_OK;
}

float *sk_graph_data(sk_graph *g, sk_node n) {
  if (!g->compiled || n < 0 || n >= g->n) return NULL;
  return g->nodes[n].data;
}

sk_status sk_graph_bind(sk_graph *g, sk_node n, float *data) {
  if (n < 0 || n >= g->n || !data) return sk__fail(SK_ERR_INVALID, "bind: invalid node or NULL data");
  sk__op op = g->nodes[n].op;
  if (op != SK_OP_INPUT && op != SK_OP_PARAM)
    return sk__fail(SK_ERR_INVALID, "bind: node %d is a %s, not an input or parameter", n,
                    sk__op_name(op));
  g->nodes[n].data = data;
  /* Views share their input's memory: refresh those that lead back here. */
  if (g->compiled)
    for (int i = n + 1; i < g->n; i++) {
      sk__node *v = &g->nodes[i];
      if ((v->op == SK_OP_RESHAPE || v->op == SK_OP_STOP_GRAD) && v->data &&
          v->in[0] >= 0 && g->nodes[v->in[0]].data)
        v->data = g->nodes[v->in[0]].data;
    }
  return SK_OK;
}
