/* Compilation: prune to what the outputs need, keep the build order (already
 * topological: a node is added after its inputs), and give every value a
 * buffer by liveness, reusing one after its last consumer (ggml_gallocr's
 * idea). Views (reshape, stop_grad) share their input's buffer. */
#include <string.h>

#include "graph/internal.h"

/* Floats are placed at 64-byte boundaries. */
#define SK_ALIGN_FLOATS 16

typedef struct slot {
  size_t size;  /* floats */
  size_t offset;
  int free;
} slot;

static int is_view(sk__op op) { return op == SK_OP_RESHAPE || op == SK_OP_STOP_GRAD; }

sk_status sk_graph_compile(sk_graph *g, int n_out, const sk_node *outs) {
  if (g->status != SK_OK) return sk__fail(g->status, "graph build failed: %s", sk__graph_error(g));
  if (g->compiled) return sk__fail(SK_ERR_STATE, "graph already compiled");
  if (n_out <= 0) return sk__fail(SK_ERR_INVALID, "compile: no outputs");
  for (int i = 0; i < n_out; i++)
    if (outs[i] < 0 || outs[i] >= g->n)
      return sk__fail(SK_ERR_INVALID, "compile: invalid output node %d", outs[i]);
  sk__cpu_init();
  const int n = g->n;
  uint8_t *need = sk__calloc((size_t)n, 1);
  int *root = sk__malloc((size_t)n * sizeof *root);    /* node -> node owning its storage */
  int *uses = sk__calloc((size_t)n, sizeof *uses);     /* per storage root: consumers left */
  uint8_t *pinned = sk__calloc((size_t)n, 1);          /* per storage root */
  int *slot_of = sk__malloc((size_t)n * sizeof *slot_of);
  slot *slots = sk__malloc((size_t)n * sizeof *slots);
  g->exec = sk__malloc((size_t)n * sizeof *g->exec);
  g->outs = sk__malloc((size_t)n_out * sizeof *g->outs);
  sk_status st = SK_OK;
  if (!need || !root || !uses || !pinned || !slot_of || !slots || !g->exec || !g->outs) {
    st = sk__fail(SK_ERR_NOMEM, "compile: out of memory");
    goto done;
  }
  memcpy(g->outs, outs, (size_t)n_out * sizeof *outs);
  g->n_outs = n_out;
  for (int i = 0; i < n_out; i++) need[outs[i]] = 1;
  for (int i = n - 1; i >= 0; i--) {
    if (!need[i]) continue;
    for (int k = 0; k < sk__op_arity(g->nodes[i].op); k++) need[g->nodes[i].in[k]] = 1;
  }
  for (int i = 0; i < n; i++) {
    const sk__node *nd = &g->nodes[i];
    root[i] = is_view(nd->op) ? root[nd->in[0]] : i;
    slot_of[i] = -1;
    if (!need[i]) continue;
    if (sk__op_arity(nd->op) == 0) pinned[i] = 1;
    for (int k = 0; k < sk__op_arity(nd->op); k++) uses[root[nd->in[k]]]++;
  }
  for (int i = 0; i < n_out; i++) pinned[root[outs[i]]] = 1;

  /* Walk in order: give each computed value the smallest free slot that fits
   * (or a new one), then release the inputs whose last consumer this was. */
  int n_slots = 0;
  g->n_exec = 0;
  for (int i = 0; i < n; i++) {
    const sk__node *nd = &g->nodes[i];
    if (!need[i] || is_view(nd->op)) continue;
    if (nd->op == SK_OP_PARAM) continue;
    int best = -1;
    if (!pinned[i])
      for (int s = 0; s < n_slots; s++)
        if (slots[s].free && slots[s].size >= (size_t)nd->numel &&
            (best < 0 || slots[s].size < slots[best].size))
          best = s;
    if (best < 0) {
      best = n_slots++;
      slots[best].size = (size_t)nd->numel;
    }
    slots[best].free = 0;
    slot_of[i] = best;
    if (sk__op_arity(nd->op) > 0) g->exec[g->n_exec++] = i;
    for (int k = 0; k < sk__op_arity(nd->op); k++) {
      int r = root[nd->in[k]];
      if (--uses[r] == 0 && !pinned[r] && slot_of[r] >= 0) slots[slot_of[r]].free = 1;
    }
  }
  size_t total = 0;
  for (int s = 0; s < n_slots; s++) {
    slots[s].offset = total;
    size_t sz = (slots[s].size + SK_ALIGN_FLOATS - 1) / SK_ALIGN_FLOATS * SK_ALIGN_FLOATS;
    if (!sk__add_size(total, sz, &total)) {
      st = sk__fail(SK_ERR_NOMEM, "compile: arena too large");
      goto done;
    }
  }
  size_t bytes;
  if (!sk__mul_size(total ? total : 1, sizeof(float), &bytes) ||
      !(g->arena = sk__malloc(bytes + 64))) {
    st = sk__fail(SK_ERR_NOMEM, "compile: out of memory for a %zu-float arena", total);
    goto done;
  }
  g->arena_floats = total;
  float *base = (float *)(((uintptr_t)g->arena + 63) & ~(uintptr_t)63);
  for (int i = 0; i < n; i++) {
    sk__node *nd = &g->nodes[i];
    if (!need[i] || nd->op == SK_OP_PARAM) continue;
    if (nd->op == SK_OP_INPUT && nd->data) continue; /* bound before compile */
    if (is_view(nd->op)) {
      nd->data = g->nodes[nd->in[0]].data; /* earlier, so already placed */
      continue;
    }
    nd->data = base + slots[slot_of[i]].offset;
    if (nd->op == SK_OP_CONST)
      for (int64_t j = 0; j < nd->numel; j++) nd->data[j] = nd->fp[0];
    if (nd->op == SK_OP_INPUT) memset(nd->data, 0, (size_t)nd->numel * sizeof(float));
  }
  g->compiled = 1;
done:
  sk__free(need);
  sk__free(root);
  sk__free(uses);
  sk__free(pinned);
  sk__free(slot_of);
  sk__free(slots);
  if (st != SK_OK) {
    sk__free(g->exec);
    sk__free(g->outs);
    sk__free(g->arena);
    g->exec = NULL;
    g->outs = NULL;
    g->arena = NULL;
  }
  return st;
}

size_t sk_graph_arena_bytes(const sk_graph *g) { return g->arena_floats * sizeof(float); }
