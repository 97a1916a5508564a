/* Execution of a compiled graph: every planned node in order, its rows split
 * over the threads of one parallel region; no allocation. */
#include <omp.h>
#include <stdatomic.h>
#include <string.h>

#include "graph/internal.h"

sk__exec sk__exec_of(const sk_graph *g, sk_node i, int64_t units, const float *packed,
                     float *scratch, int64_t scratch_part) {
  const sk__node *nd = &g->nodes[i];
  sk__exec e = {.op = nd->op, .out = nd->data, .node = nd, .units = units, .packed = packed,
                .scratch = scratch, .scratch_part = scratch_part};
  e.a = &g->nodes[nd->in[0]];
  e.in[0] = e.a->data;
  if (sk__op_arity(nd->op) > 1) {
    e.b = &g->nodes[nd->in[1]];
    e.in[1] = e.b->data;
  }
  if (sk__node_arity(nd) > 2) e.c = &g->nodes[nd->in[2]];
  for (int k = 2; k < sk__node_arity(nd); k++) e.in[k] = g->nodes[nd->in[k]].data;
  return e;
}

sk_status sk__run_halves(sk_graph *g, int s, int end, int t, int nt, int *sense) {
  sk_status st = SK_OK;
  for (int q = s; q < end; q++) {
    const sk__step *step = &g->steps[q];
    const sk__node *nd = &g->nodes[g->exec[q]], *a = &g->nodes[nd->in[0]];
    const int64_t rows = a->shape[0], n = nd->numel;
    const int64_t set = sk__scratch_parts(step->units) * step->scratch_part;
    for (int p = 0; p < 2; p++) {
      /* Half p goes to the threads t ≡ p (mod 2), both to a lone thread;
       * its output rows split over those threads, or whole on the first. */
      if (nt > 1 && t % 2 != p) continue;
      const int peers = nt > 1 ? (nt - p + 1) / 2 : 1, me = nt > 1 ? t / 2 : 0;
      int64_t u0 = 0, u1 = step->units;
      if (step->halves_split)
        sk__split(step->units, me, peers, &u0, &u1);
      else if (me > 0)
        continue;
      if (u0 >= u1) continue;
      int64_t k0, k1;
      sk__split(rows, p, 2, &k0, &k1);
      /* a set of scratch parts a half, one when a lone thread runs both */
      const sk__exec e = sk__exec_of(g, g->exec[q], step->units, NULL,
                                     step->scratch ? step->scratch + (nt > 1 ? p : 0) * set : NULL,
                                     step->scratch_part);
      if (st == SK_OK) /* after a failure, only to the barrier */
        st = g->be->reduce_rows(&e, step->halves + p * n, k0, k1, u0, u1);
    }
  }
  sk__barrier_wait(&g->barrier, nt, sense);
  for (int q = s; q < end; q++) {
    const sk__step *step = &g->steps[q];
    const sk__node *nd = &g->nodes[g->exec[q]];
    const int64_t n = nd->numel;
    int64_t u0, u1;
    sk__split(step->units, t, nt, &u0, &u1);
    const int64_t per = n / SK_MAX(1, step->units);
    g->be->add(nd->data, step->halves, step->halves + n, u0 * per, u1 * per);
  }
  return st;
}

/* Rows [r0, r1) of the fused run that starts at step s (see sk__step):
 * block by block of rows, every op of the run on a block before the next. */
static void run_fused(const sk_graph *g, int s, int64_t r0, int64_t r1,
                      float (*scratch)[SK_FUSE_FLOATS]) {
  const sk__step *first = &g->steps[s];
  const sk__node *y = &g->nodes[g->exec[s]];
  const int64_t block = g->be->fuse_rows(y->numel / y->shape[0]);
  for (int64_t b0 = r0; b0 < r1; b0 += block) {
    const int64_t b1 = SK_MIN(r1, b0 + block);
    for (int q = s; q < first->fuse_end; q++) {
      const sk__step *st = &g->steps[q];
      const sk__exec e = sk__exec_of(g, g->exec[q], first->units, NULL, NULL, 0);
      const float *in[2] = {st->reg_in[0] ? scratch[st->reg_in[0] - 1] : NULL,
                            st->reg_in[1] ? scratch[st->reg_in[1] - 1] : NULL};
      if (st->dsig) { /* 1, 2: three steps, x · y(1 − y); 3: two, y(1 − y) */
        const int kx = st->dsig < 3 ? st->dsig - 1 : -1, last = q + (kx >= 0 ? 2 : 1);
        const sk__step *sc = &g->steps[last];
        const sk__exec ec = sk__exec_of(g, g->exec[last], first->units, NULL, NULL, 0);
        g->be->exec_sigmoid_grad(&e, &ec, kx, sc->reg_out ? scratch[sc->reg_out - 1] : NULL,
                                  in[0],
                                  kx >= 0 && sc->reg_in[kx] ? scratch[sc->reg_in[kx] - 1] : NULL,
                                  b0, b1);
        q = last;
        continue;
      }
      if (st->pair) {
        const sk__step *st2 = &g->steps[q + 1];
        const sk__exec e2 = sk__exec_of(g, g->exec[q + 1], first->units, NULL, NULL, 0);
        g->be->exec_pair(&e, &e2, st->reg_out ? scratch[st->reg_out - 1] : NULL,
                          st2->reg_out ? scratch[st2->reg_out - 1] : NULL, in[0], b0, b1);
        q++;
        continue;
      }
      g->be->exec_block(&e, st->reg_out ? scratch[st->reg_out - 1] : NULL, in, b0, b1);
    }
  }
}

/* The first failure of a run, on any thread: its status stops the others,
 * and its message (sk_last_error is per thread) is kept for the caller. */
static void record_failure(sk_graph *g, atomic_int *failed, sk_status st) {
  int ok = SK_OK;
  if (atomic_compare_exchange_strong(failed, &ok, (int)st)) {
    strncpy(g->run_error, sk_last_error(), sizeof g->run_error - 1);
    g->run_error[sizeof g->run_error - 1] = 0;
  }
}

sk_status sk_graph_run(sk_graph *g) { return sk_graph_run_then(g, NULL, NULL); }

sk_status sk_graph_run_then(sk_graph *g, sk_graph_then_fn fn, void *ctx) {
  if (!g) return sk__fail(SK_ERR_INVALID, "run: NULL graph");
  if (!g->compiled) return sk__fail(SK_ERR_STATE, "run: graph not compiled");
  atomic_int failed = SK_OK;
  atomic_store_explicit(&g->barrier.arrived, 0, memory_order_relaxed);
  atomic_store_explicit(&g->barrier.sense, 0, memory_order_relaxed);
  /* One parallel region for the whole graph; threads meet only at the
   * barriers the plan placed (graph/plan.c). */
#pragma omp parallel num_threads(sk__num_threads()) if (g->parallel && !omp_in_parallel())
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int sense = 0; /* this thread's, for g->barrier */
    /* This thread's scratch blocks for fused runs. */
    _Alignas(64) float scratch[SK_FUSE_REGS][SK_FUSE_FLOATS];
    for (int p = 0; p < g->n_packs; p++) {
      const sk__node *b = &g->nodes[g->packs[p].src];
      int64_t u0, u1;
      sk__split(b->shape[1], t, nt, &u0, &u1);
      g->be->pack_rows(g->packs[p].dst, b->data, b->shape[0], b->shape[1], u0, u1, nt > 1);
    }
    if (g->n_packs) sk__barrier_wait(&g->barrier, nt, &sense);
    for (int s = 0; s < g->n_exec;) {
      const sk__step *first = &g->steps[s];
      const int end = first->group_end;
      if (first->barrier) sk__barrier_wait(&g->barrier, nt, &sense);
      if (first->halves) {
        const sk_status st = sk__run_halves(g, s, end, t, nt, &sense);
        if (st != SK_OK) record_failure(g, &failed, st);
        s = end;
        continue;
      }
      int64_t u0, u1;
      sk__split(first->units, t, nt, &u0, &u1);
      for (int64_t r0 = u0; r0 < u1; r0 += first->tile) {
        const int64_t r1 = SK_MIN(u1, r0 + first->tile);
        for (int q = s; q < end; q++) {
          if (atomic_load_explicit(&failed, memory_order_relaxed) != SK_OK) break;
          if (g->steps[q].fuse_end) {
            run_fused(g, q, r0, r1, scratch);
            q = g->steps[q].fuse_end - 1;
            continue;
          }
          const sk__exec e =
              sk__exec_of(g, g->exec[q], first->units, g->steps[q].packed, g->steps[q].scratch,
                          g->steps[q].scratch_part);
          sk_status st = g->be->exec(&e, r0, r1);
          if (st != SK_OK) record_failure(g, &failed, st);
        }
      }
      s = end;
    }
    if (fn) {
      sk__barrier_wait(&g->barrier, nt, &sense);
      if (atomic_load(&failed) == SK_OK) fn(ctx, t, nt);
    }
  }
  const sk_status st = (sk_status)atomic_load(&failed);
  /* The message was set on the thread that failed, maybe not this one. */
  return st == SK_OK ? SK_OK : sk__fail(st, "%s", g->run_error);
}

float *sk_graph_data(sk_graph *g, sk_node n) {
  if (!g) return sk__fail(SK_ERR_INVALID, "%s: NULL graph", __func__), NULL;
  if (!g->compiled || n < 0 || n >= g->n) return NULL;
  return g->nodes[n].data;
}

sk_status sk_graph_bind(sk_graph *g, sk_node n, float *data) {
  if (!g) return sk__fail(SK_ERR_INVALID, "bind: NULL graph");
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
      if (sk__op_view(v->op) && v->data &&
          v->in[0] >= 0 && g->nodes[v->in[0]].data)
        v->data = g->nodes[v->in[0]].data;
    }
  return SK_OK;
}
