/* Compilation: prune to what the outputs need, merge repeated nodes, fold
 * constants, schedule the ops into phases separated by thread barriers (every
 * op splits its rows over the threads), give every value a buffer by liveness
 * (ggml_gallocr's idea, made safe for threads: see the buffer loop; in lean
 * graphs with barriers placed to save memory), or pack every buffer by offset
 * where that needs less (pack_bufs), and set up the packed right operands and
 * the tiled groups the executor runs (run.c). Views (reshape, stop_grad)
 * share their input's buffer. */
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph/internal.h"

/* Floats are placed at 64-byte boundaries. */
#define SK_ALIGN_FLOATS 16
/* The smallest value before which a lean graph's plan may place a barrier to
 * save memory (1 MiB). */
#define SK_CUT_FLOATS (256 * 1024)

typedef struct slot {
  size_t size; /* floats */
  size_t offset;
  int free;
  int free_phase; /* the phase of the last reader, once free */
  int free_group; /* the group that alone read it row for row, or -1 */
  /* The split of the value it holds or held last: units and floats per
   * unit (per = -1: scratch). Within a phase a slot passes only to a value
   * split the same way (see the buffer loop); across a barrier, a value of
   * that split is still preferred, so that each byte tends to be written by
   * the same thread run after run and stay in that core's cache. */
  int64_t units, per;
} slot;

/* A free slot for a value of `need` floats split into `units` of `per`
 * (per -1: scratch) in phase `phase` and group `group` (see the buffer
 * loop), or -1 for a new one. */
static int take_slot(const slot *slots, int n_slots, int phase, int group, int64_t units,
                     int64_t per, size_t need) {
  int same = -1, fit = -1, big = -1;
  for (int q = 0; q < n_slots; q++) {
    const slot *s = &slots[q];
    if (!s->free) continue;
    const int split = s->units == units && s->per == per && per >= 0;
    if (s->free_phase >= phase && !(split && s->free_group >= 0 && s->free_group == group)) continue;
    if (split && s->size >= need && (same < 0 || s->size < slots[same].size)) same = q;
    if (s->free_phase >= phase) continue; /* not past a barrier: the same split only */
    if (s->size >= need && (fit < 0 || s->size < slots[fit].size)) fit = q;
    if (big < 0 || s->size > slots[big].size) big = q;
  }
  return same >= 0 ? same : fit >= 0 ? fit : big;
}

/* A phase's scratch for the ops split into `units`: its slot, and the
 * floats of each part, the most any of those ops asked for. */
typedef struct scr_use {
  int64_t units;
  int halves; /* its ops run in halves (a set of parts a half) */
  int slot, phase;
  int64_t part, parts; /* parts: the most any op uses */
} scr_use;

/* Floats rounded to 64 bytes, plus 64 bytes × (1 + k mod 17) for the k-th
 * buffer: buffers do not all start at the same offset modulo 4 KiB, where a
 * store to one and a load from another would falsely alias (measured once,
 * per op on one thread: the backward's two sigmoids 34–46 µs → 23–24 µs in a
 * dsm step). */
static size_t padded(size_t floats, int k) {
  return (floats + SK_ALIGN_FLOATS - 1) / SK_ALIGN_FLOATS * SK_ALIGN_FLOATS +
         SK_ALIGN_FLOATS * (size_t)(1 + k % 17);
}

/* A buffer of the arena as pack_bufs places it: a value, a phase's scratch,
 * or one live the whole run (leaves, constants, outputs, packs, halves). */
typedef struct buf {
  size_t size, off; /* floats, padded */
  int birth, death; /* the steps that write it and read it last (-1, INT_MAX: the whole run) */
  int ph_birth, ph_death; /* their phases */
  int64_t units, per;     /* its split, as a slot's */
  int group, rgroup;      /* the group that writes it; the one that alone reads it row for row, or -1 */
} buf;

/* Whether b, at offset off, may not overlap a (placed): both live at once,
 * or the later written in the phase of the earlier's last read, except row
 * r where row r was (the buffer loop's rule). */
static int clash(const buf *a, const buf *b, size_t off) {
  const buf *e = a->birth <= b->birth ? a : b, *l = e == a ? b : a;
  if (e->death >= l->birth) return 1;
  if (e->ph_death < l->ph_birth) return 0;
  return !(e->rgroup >= 0 && e->rgroup == l->group && e->units == l->units && e->per >= 0 &&
           e->per == l->per && a->off == off);
}

#ifndef NDEBUG
/* Whether no two placed bufs that clash overlap. */
static int packed_apart(const buf *bufs, int nb) {
  for (int a = 0; a < nb; a++)
    for (int b = a + 1; b < nb; b++)
      if (bufs[a].off < bufs[b].off + bufs[b].size && bufs[b].off < bufs[a].off + bufs[a].size &&
          clash(&bufs[a], &bufs[b], bufs[b].off))
        return 0;
  return 1;
}
#endif

/* A placed buffer's offset and index, to sort by offset. */
typedef struct placed {
  size_t off;
  int i;
} placed;

static int cmp_placed(const void *x, const void *y) {
  const size_t a = ((const placed *)x)->off, b = ((const placed *)y)->off;
  return a < b ? -1 : a > b;
}

/* Offsets for bufs[0 .. nb): the largest first, each at the lowest offset
 * where it overlaps nothing it clashes with (the greedy-by-size placement
 * of TensorFlow Lite's arena planner): the first gap among the placed
 * buffers it clashes with, sorted by offset, unless the offset of one it
 * may overlap row for row (clash's exception) comes lower and is free of
 * the others. Returns the arena's floats, or 0 when out of memory. */
static size_t pack_bufs(buf *bufs, int nb) {
  int *order = sk__malloc((size_t)SK_MAX(1, nb) * sizeof *order);
  placed *near = sk__malloc((size_t)SK_MAX(1, nb) * sizeof *near);
  size_t total = 0;
  if (!order || !near) goto done;
  for (int i = 0; i < nb; i++) order[i] = i;
  for (int i = 1; i < nb; i++) { /* insertion sort: by size, larger first, then by birth */
    const int x = order[i];
    int j = i;
    while (j > 0 && (bufs[order[j - 1]].size < bufs[x].size ||
                     (bufs[order[j - 1]].size == bufs[x].size && bufs[order[j - 1]].birth > bufs[x].birth)))
      order[j] = order[j - 1], j--;
    order[j] = x;
  }
  for (int k = 0; k < nb; k++) {
    buf *b = &bufs[order[k]];
    int nn = 0;
    for (int q = 0; q < k; q++)
      if (clash(&bufs[order[q]], b, SIZE_MAX)) near[nn++] = (placed){bufs[order[q]].off, order[q]};
    qsort(near, (size_t)nn, sizeof *near, cmp_placed);
    size_t at = 0;
    for (int q = 0; q < nn && bufs[near[q].i].off < at + b->size; q++)
      at = SK_MAX(at, bufs[near[q].i].off + bufs[near[q].i].size);
    for (int q = 0; q < nn && near[q].off < at; q++) {
      const size_t o = near[q].off;
      if (clash(&bufs[near[q].i], b, o)) continue;
      int ok = 1;
      for (int r = 0; r < nn && ok && near[r].off < o + b->size; r++) {
        const buf *a = &bufs[near[r].i];
        if (a->off + a->size > o) ok = !clash(a, b, o);
      }
      if (ok) {
        at = o;
        break;
      }
    }
    b->off = at;
    total = SK_MAX(total, b->off + b->size);
  }
  SK_ASSERT(total == 0 || packed_apart(bufs, nb));
done:
  sk__free(order);
  sk__free(near);
  return total;
}

/* Whether two nodes compute the same value: the same op on the same inputs
 * with the same parameters and shape. */
static int same_node(const sk__node *x, const sk__node *y) {
  return x->op == y->op && memcmp(x->in, y->in, sizeof x->in) == 0 && x->ndim == y->ndim &&
         memcmp(x->shape, y->shape, sizeof x->shape) == 0 && memcmp(x->ip, y->ip, sizeof x->ip) == 0 &&
         memcmp(x->fp, y->fp, sizeof x->fp) == 0;
}

static uint64_t node_hash(const sk__node *x) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a over the fields same_node compares */
  const uint64_t words[6] = {(uint64_t)x->op, (uint64_t)(uint32_t)x->in[0],
                             (uint64_t)(uint32_t)x->in[1], (uint64_t)x->ndim,
                             (uint64_t)x->shape[0], (uint64_t)(uint32_t)x->ip[0]};
  for (int i = 0; i < 6; i++) h = (h ^ words[i]) * 1099511628211ull;
  return h;
}

/* Common subexpressions: a needed node that repeats an earlier one (after its
 * inputs were themselves merged) becomes an alias of it, and its readers
 * read the earlier one. Gradient graphs repeat much (the same sigmoid of a
 * layer's input in every backward pass through it). Leaves stay distinct. */
static sk_status merge_common(sk_graph *g, const uint8_t *need, int *alias) {
  const int n = g->n;
  int cap = 16;
  while (cap < 2 * n) cap *= 2;
  int *table = sk__malloc((size_t)cap * sizeof *table);
  if (!table) return sk__fail(SK_ERR_NOMEM, "compile: out of memory");
  for (int i = 0; i < cap; i++) table[i] = -1;
  for (int i = 0; i < n; i++) {
    alias[i] = -1;
    sk__node *nd = &g->nodes[i];
    const int arity = sk__node_arity(nd);
    if (!need[i] || arity == 0) continue;
    for (int k = 0; k < arity; k++)
      if (alias[nd->in[k]] >= 0) nd->in[k] = alias[nd->in[k]];
    uint64_t h = node_hash(nd);
    for (int pos = (int)(h & (uint64_t)(cap - 1));; pos = (pos + 1) & (cap - 1)) {
      if (table[pos] < 0) {
        table[pos] = i;
        break;
      }
      if (same_node(&g->nodes[table[pos]], nd)) {
        alias[i] = table[pos];
        break;
      }
    }
  }
  sk__free(table);
  return SK_OK;
}

/* The scratch blocks of fused run [s0, s1) (see sk__step): a value gets one
 * when all its readers are later steps of the run and it is not pinned (an
 * output or a constant), and gives it back after its last reader, never
 * sooner, so no op writes the block it reads. With every block taken, a
 * value goes to its buffer as it would unfused. reads[r] and last[r]: the
 * readers of value r and the step of the last; reg_of: -1 for every value
 * on entry and on return. Returns how many values stay in scratch. */
static int plan_run_regs(sk_graph *g, int s0, int s1, const int *root, const uint8_t *pinned,
                         const int *reads, const int *last, int *reg_of) {
  int held[SK_FUSE_REGS], kept = 0;
  for (int r = 0; r < SK_FUSE_REGS; r++) held[r] = -1;
  for (int s = s0; s < s1; s++) {
    const int i = g->exec[s];
    const sk__node *nd = &g->nodes[i];
    sk__step *step = &g->steps[s];
    const int arity = sk__node_arity(nd);
    for (int k = 0; k < arity; k++) {
      const int r = root[nd->in[k]];
      step->reg_in[k] = (int8_t)(reg_of[r] + 1);
    }
    int inside = 0; /* readers in the rest of the run */
    for (int q = s + 1; q < s1; q++) {
      const sk__node *c = &g->nodes[g->exec[q]];
      for (int k = 0; k < sk__node_arity(c); k++) inside += root[c->in[k]] == i;
    }
    step->reg_out = 0;
    if (!pinned[i] && reads[i] > 0 && inside == reads[i])
      for (int r = 0; r < SK_FUSE_REGS; r++)
        if (held[r] < 0) {
          held[r] = i;
          reg_of[i] = r;
          step->reg_out = (int8_t)(r + 1);
          kept++;
          break;
        }
    for (int k = 0; k < arity; k++) {
      const int r = root[nd->in[k]];
      if (reg_of[r] >= 0 && last[r] == s) held[reg_of[r]] = -1;
    }
  }
  for (int s = s0; s < s1; s++) reg_of[g->exec[s]] = -1;
  return kept;
}

/* Whether node i is a reduction over its batch done in halves (see sk__step),
 * as the backend decides: 0 no, 1 each half whole on a thread, 2 each half's
 * rows split over its threads (halves_split). */
static int in_halves(const sk_graph *g, int i) {
  const sk__node *nd = &g->nodes[i];
  if (!g->be->halves || sk__op_arity(nd->op) == 0) return 0;
  return g->be->halves(nd, &g->nodes[nd->in[0]],
                       sk__op_arity(nd->op) > 1 ? &g->nodes[nd->in[1]] : NULL);
}
static int halves_split(const sk_graph *g, int i) { return in_halves(g, i) == 2; }

static atomic_int fusion_on = 1;
void sk__graph_fusion(int on) { atomic_store(&fusion_on, on); }
static atomic_int packing_on = 1;
void sk__graph_packing(int on) { atomic_store(&packing_on, on); }
static _Atomic int64_t cut_floats = SK_CUT_FLOATS;
void sk__graph_cut_floats(int64_t floats) {
  atomic_store(&cut_floats, floats > 0 ? floats : SK_CUT_FLOATS);
}

static int blockwise_step(const sk_graph *g, const int64_t *units, int s) {
  const int i = g->exec[s];
  const sk__node *nd = &g->nodes[i];
  return g->be->blockwise && g->be->fuse_rows && units[i] > 1 && units[i] == nd->shape[0] &&
         g->be->blockwise(nd, &g->nodes[nd->in[0]],
                          sk__op_arity(nd->op) > 1 ? &g->nodes[nd->in[1]] : NULL);
}

/* Whether steps p, p + 1 (, p + 2) of a fused run that ends at step end are
 * affine(y, −1, 1), y · that (, x · that), each value but the last held in
 * scratch and read only by the next step, y and x full-size (see
 * sk__step.dsig): 1 + the input of the third that is x, 3 for the first two
 * alone, 0 for neither. */
static int sigmoid_grad_at(const sk_graph *g, int p, int end, const int *root, const int *reads) {
  const int ia = g->exec[p], ib = g->exec[p + 1];
  const sk__node *a = &g->nodes[ia], *b = &g->nodes[ib];
  if (a->op != SK_OP_AFFINE || a->fp[0] != -1.0f || a->fp[1] != 1.0f || b->op != SK_OP_MUL ||
      !g->steps[p].reg_out || reads[ia] != 1 || g->nodes[a->in[0]].numel != b->numel)
    return 0;
  const int y = root[a->in[0]];
  if (!((root[b->in[0]] == y && root[b->in[1]] == ia) ||
        (root[b->in[1]] == y && root[b->in[0]] == ia)))
    return 0;
  if (p + 2 < end && g->steps[p + 1].reg_out && reads[ib] == 1) {
    const sk__node *c = &g->nodes[g->exec[p + 2]];
    const int kx = c->op != SK_OP_MUL ? -1 : root[c->in[0]] == ib ? 1 : root[c->in[1]] == ib ? 0 : -1;
    /* (y(1 − y))² is not this; x full-size, not broadcast. */
    if (kx >= 0 && root[c->in[kx]] != ib && g->nodes[c->in[kx]].numel == c->numel) return 1 + kx;
  }
  return 3;
}

/* Fused runs (see sk__step): in every group, the maximal runs of blockwise
 * steps over values of one shape that keep a value in scratch. Returns how
 * many values the runs keep there. */
static int plan_fusion(sk_graph *g, const int *root, const uint8_t *pinned, const int64_t *units,
                       int *reads, int *last, int *reg_of) {
  for (int i = 0; i < g->n; i++) reads[i] = 0, last[i] = -1, reg_of[i] = -1;
  for (int s = 0; s < g->n_exec; s++) {
    const sk__node *nd = &g->nodes[g->exec[s]];
    for (int k = 0; k < sk__node_arity(nd); k++) {
      const int r = root[nd->in[k]];
      reads[r]++;
      last[r] = s;
    }
  }
  int kept = 0;
  for (int s = 0; s < g->n_exec;) {
    const int end = g->steps[s].group_end;
    for (int q = s; q < end;) {
      const sk__node *first = &g->nodes[g->exec[q]];
      int e = q;
      while (e < end && blockwise_step(g, units, e) &&
             memcmp(g->nodes[g->exec[e]].shape, first->shape, sizeof first->shape) == 0)
        e++;
      if (e - q >= 2) {
        const int k = plan_run_regs(g, q, e, root, pinned, reads, last, reg_of);
        g->steps[q].fuse_end = k > 0 ? e : 0;
        kept += k;
        for (int p = q; k > 0 && p + 1 < e; p++) {
          const sk__node *a = &g->nodes[g->exec[p]], *b = &g->nodes[g->exec[p + 1]];
          if (g->be->exec_pair && a->op == SK_OP_SOFTPLUS && b->op == SK_OP_SIGMOID &&
              root[a->in[0]] == root[b->in[0]]) {
            g->steps[p].pair = 1;
            p++;
          } else if (g->be->exec_sigmoid_grad &&
                     (g->steps[p].dsig = (int8_t)sigmoid_grad_at(g, p, e, root, reads))) {
            p += g->steps[p].dsig < 3 ? 2 : 1;
          }
        }
      }
      q = SK_MAX(e, q + 1);
    }
    s = end;
  }
  return kept;
}

/* Groups (see sk__step): consecutive steps of one phase with as many
 * units. A value read only row for row, and only within one group, may hand
 * its slot to a later value of the same group (agroup: that group, else -1):
 * each thread has read its rows of a tile before it writes that tile's rows
 * of the next. */
static void plan_groups(const sk_graph *g, const int *phase_of, const int64_t *units,
                        const int *root, int *group_of, int *agroup) {
  for (int s = 0, gid = -1; s < g->n_exec; s++) {
    const int i = g->exec[s], prev = s ? g->exec[s - 1] : -1;
    if (s == 0 || phase_of[i] != phase_of[prev] || units[i] != units[prev]) gid++;
    group_of[i] = gid;
  }
  for (int i = 0; i < g->n; i++) agroup[i] = -2; /* -2: no reader yet; -1: not group-local */
  for (int s = 0; s < g->n_exec; s++) {
    const int c = g->exec[s];
    const sk__node *nd = &g->nodes[c];
    for (int k = 0; k < sk__node_arity(nd); k++) {
      const int x = nd->in[k], r = root[x];
      const int aligned = units[c] > 1 && units[r] == units[c] && phase_of[r] == phase_of[c] &&
                          sk__row_aligned(nd, &g->nodes[x], k) &&
                          g->nodes[x].shape[0] == g->nodes[r].shape[0];
      agroup[r] = aligned && (agroup[r] == -2 || agroup[r] == group_of[c]) ? group_of[c] : -1;
    }
  }
}

/* Whether `parts` parts of `part` floats each (a backend's scratch, sized
 * from the shapes of several values) stay within SK__MAX_NUMEL. */
static int scratch_fits(int64_t parts, int64_t part) { return parts <= SK__MAX_NUMEL / part; }
static sk_status scratch_too_large(const sk__node *nd) {
  return sk__fail(SK_ERR_NOMEM, "compile: the scratch of a %s op is too large", sk__op_name(nd->op));
}

sk_status sk_graph_compile(sk_graph *g, int n_out, const sk_node *outs) {
  if (!g) return sk__fail(SK_ERR_INVALID, "compile: NULL graph");
  if (g->status != SK_OK) return sk__fail(g->status, "graph build failed: %s", sk__graph_error(g));
  if (g->compiled) return sk__fail(SK_ERR_STATE, "graph already compiled");
  if (n_out <= 0) return sk__fail(SK_ERR_INVALID, "compile: no outputs");
  if (!outs) return sk__fail(SK_ERR_INVALID, "compile: NULL outputs (n_out %d)", n_out);
  for (int i = 0; i < n_out; i++)
    if (outs[i] < 0 || outs[i] >= g->n)
      return sk__fail(SK_ERR_INVALID, "compile: invalid output node %d", outs[i]);
  g->be = sk__backend_default();
  g->be->init();
  const int n = g->n;
  uint8_t *need = sk__calloc((size_t)n, 1);
  int *root = sk__malloc((size_t)n * sizeof *root);    /* node -> node owning its storage */
  int *uses = sk__calloc((size_t)n, sizeof *uses);     /* per storage root: consumers left */
  uint8_t *pinned = sk__calloc((size_t)n, 1);          /* per storage root */
  uint8_t *fixed = sk__calloc((size_t)n, 1);           /* constants, folded or not */
  int *alias = sk__malloc((size_t)n * sizeof *alias);  /* the earlier twin it merged into */
  int *slot_of = sk__malloc((size_t)n * sizeof *slot_of);
  slot *slots = sk__malloc((size_t)(4 * n) * sizeof *slots); /* values, packs, halves, scratch */
  int *cand = sk__malloc((size_t)n * sizeof *cand);
  int *phase_of = sk__malloc((size_t)n * sizeof *phase_of);
  int64_t *units = sk__calloc((size_t)n, sizeof *units);
  int *pack_of = sk__malloc((size_t)n * sizeof *pack_of);
  int *halves_slot = sk__malloc((size_t)n * sizeof *halves_slot);
  int *scratch_slot = sk__malloc((size_t)n * sizeof *scratch_slot);
  int *scr_of = sk__malloc((size_t)n * sizeof *scr_of);
  scr_use *scr = sk__malloc((size_t)n * sizeof *scr);
  int *group_of = sk__malloc((size_t)n * sizeof *group_of);
  int *agroup = sk__malloc((size_t)n * sizeof *agroup);
  int *pack_src = sk__malloc((size_t)n * sizeof *pack_src);
  int *pack_slot = sk__malloc((size_t)n * sizeof *pack_slot);
  int *last_read = sk__malloc((size_t)n * sizeof *last_read);
  int *reg_of = sk__malloc((size_t)n * sizeof *reg_of);
  int *step_of = sk__malloc((size_t)n * sizeof *step_of);
  int *buf_of = sk__malloc((size_t)n * sizeof *buf_of);
  buf *bufs = sk__malloc((size_t)(4 * n) * sizeof *bufs); /* as slots */
  size_t *val_off = sk__malloc((size_t)n * sizeof *val_off);
  size_t *scr_off = sk__malloc((size_t)n * sizeof *scr_off);
  size_t *pack_off = sk__malloc((size_t)n * sizeof *pack_off);
  size_t *halves_off = sk__malloc((size_t)n * sizeof *halves_off);
  g->exec = sk__malloc((size_t)n * sizeof *g->exec);
  g->steps = sk__calloc((size_t)n, sizeof *g->steps);
  g->packs = sk__calloc((size_t)n, sizeof *g->packs);
  g->outs = sk__malloc((size_t)n_out * sizeof *g->outs);
  sk_status st = SK_OK;
  if (!need || !root || !uses || !pinned || !fixed || !alias || !slot_of || !slots || !cand || !phase_of || !units ||
      !pack_of || !halves_slot || !scratch_slot || !scr_of || !scr || !group_of || !agroup || !pack_src || !pack_slot || !last_read ||
      !reg_of || !step_of || !buf_of || !bufs || !val_off || !scr_off || !pack_off || !halves_off || !g->exec || !g->steps || !g->packs || !g->outs) {
    st = sk__fail(SK_ERR_NOMEM, "compile: out of memory");
    goto done;
  }
  memcpy(g->outs, outs, (size_t)n_out * sizeof *outs);
  g->n_outs = n_out;
  for (int i = 0; i < n_out; i++) need[outs[i]] = 1;
  for (int i = n - 1; i >= 0; i--) {
    if (!need[i]) continue;
    for (int k = 0; k < sk__node_arity(&g->nodes[i]); k++) need[g->nodes[i].in[k]] = 1;
  }
  if ((st = merge_common(g, need, alias)) != SK_OK) goto done;
  for (int i = 0; i < n; i++) {
    const sk__node *nd = &g->nodes[i];
    root[i] = alias[i] >= 0 ? root[alias[i]] : sk__op_view(nd->op) ? root[nd->in[0]] : i;
    slot_of[i] = -1;
    if (!need[i] || alias[i] >= 0) continue;
    if (sk__op_arity(nd->op) == 0) pinned[i] = 1;
    /* A view is no reader: the readers of the view read its root. */
    if (!sk__op_view(nd->op))
      for (int k = 0; k < sk__node_arity(nd); k++) uses[root[nd->in[k]]]++;
    /* Constant folding: an op of constants only is computed once, here. */
    int all_const = sk__op_arity(nd->op) > 0 && !sk__op_view(nd->op);
    for (int k = 0; k < sk__node_arity(nd); k++) all_const &= fixed[root[nd->in[k]]];
    fixed[i] = nd->op == SK_OP_CONST || all_const;
    if (fixed[i]) pinned[i] = 1;
  }
  for (int i = 0; i < n_out; i++) pinned[root[outs[i]]] = 1;

  /* Schedule: phases separated by barriers, as few as the dependencies
   * allow. Each op splits its output rows over the threads; an op joins the
   * current phase when every value it reads from this phase was written row
   * for row by the same split (so by the same thread). Among the ready ops
   * that fit, after a reduction done in halves another one joins (so that
   * they share a barrier, see run.c), else one split like the op before it
   * (so that groups grow, see sk__step), else the earliest built; when none
   * fits, a new phase starts with the earliest ready op. Right after
   * softplus(x), sigmoid(x) goes first if it fits: the backward pass's
   * derivative, computed with the softplus from one e^−|x| (sk__step's
   * pair), and x need not be kept until the backward pass. */
  int n_cand = 0;
  for (int i = 0; i < n; i++) {
    const sk__node *nd = &g->nodes[i];
    if (need[i] && alias[i] < 0 && !sk__op_view(nd->op) && sk__op_arity(nd->op) > 0 && !fixed[i])
      cand[n_cand++] = i;
  }
  for (int i = 0; i < n; i++) phase_of[i] = -1;
  for (int i = 0; i < n; i++) {
    const sk__node *nd = &g->nodes[i];
    if (need[i] && alias[i] < 0 && sk__op_arity(nd->op) > 0 && !sk__op_view(nd->op))
      units[i] = sk__op_rows(nd->op) == SK__ROWS_NONE
                     ? 1
                     : g->be->units(nd, &g->nodes[nd->in[0]],
                                    sk__op_arity(nd->op) > 1 ? &g->nodes[nd->in[1]] : NULL);
  }
  int phase = 0, left = n_cand;
  int64_t last_units = -1;
  int last_half = 0, last_softplus = -1; /* the input of a softplus just picked */
  g->n_exec = 0;
  while (left > 0) {
    int pick = -1, pick_ready = -1, pick_same = -1, pick_half = -1, pick_pair = -1;
    for (int c = 0; c < n_cand && pick_half < 0 && pick_pair < 0; c++) {
      const int i = cand[c];
      if (i < 0) continue;
      const sk__node *nd = &g->nodes[i];
      int ready = 1, fits = 1;
      for (int k = 0; k < sk__node_arity(nd); k++) {
        const int x = nd->in[k], r = root[x];
        const int leaf = sk__op_arity(g->nodes[r].op) == 0 || fixed[r];
        if (!leaf && phase_of[r] < 0) ready = 0;
        else if (!leaf && phase_of[r] == phase) {
          const sk__node *xn = &g->nodes[x], *rn = &g->nodes[r];
          /* A reduction in halves reads every row on two threads, however
           * its output is split: it never shares a phase with its inputs. */
          const int same_split = units[r] == units[i] && !in_halves(g, i) &&
                                 (units[i] == 1 || (sk__row_aligned(nd, xn, k) &&
                                                    xn->shape[0] == rn->shape[0]));
          fits &= same_split;
        }
      }
      if (!ready) continue;
      if (pick_ready < 0) pick_ready = c;
      if (fits && pick < 0) pick = c;
      if (fits && units[i] == last_units && pick_same < 0) pick_same = c;
      if (fits && last_half && in_halves(g, i)) pick_half = c;
      if (fits && nd->op == SK_OP_SIGMOID && root[nd->in[0]] == last_softplus) pick_pair = c;
    }
    if (pick_same >= 0) pick = pick_same;
    if (pick_half >= 0) pick = pick_half;
    if (pick_pair >= 0) pick = pick_pair;
    if (pick < 0) { /* nothing fits: a barrier, then the earliest ready op */
      pick = pick_ready;
      phase++;
    }
    const int i = cand[pick];
    cand[pick] = -1;
    phase_of[i] = phase;
    last_units = units[i];
    last_half = in_halves(g, i);
    last_softplus = g->nodes[i].op == SK_OP_SOFTPLUS ? root[g->nodes[i].in[0]] : -1;
    g->exec[g->n_exec++] = i;
    left--;
  }

  plan_groups(g, phase_of, units, root, group_of, agroup);

  /* Buffers, in the scheduled order. A slot becomes free after its value's
   * last reader. Within the phase it passes only to a later value of the
   * group that read it row for row, split the same way (row r of the new
   * value where row r of the old one was: each thread has read its rows of
   * a tile before it writes that tile's rows of the next, and no thread
   * writes rows another may still read). Past the barrier that ends every
   * read of it, it goes to any value: one split as it was if one fits, else
   * the smallest that fits, else the largest free slot, grown (offsets come
   * at the end). */
  int n_slots = 0;
  for (int i = 0; i < n; i++) { /* leaves and folded constants */
    const sk__node *nd = &g->nodes[i];
    if (!need[i] || alias[i] >= 0 || sk__op_view(nd->op) || nd->op == SK_OP_PARAM) continue;
    if (sk__op_arity(nd->op) > 0 && !fixed[i]) continue;
    slots[n_slots] = (slot){(size_t)nd->numel, 0, 0, 0, -1, 0, 0};
    slot_of[i] = n_slots++;
  }
  /* Scratch: in each phase, one slot per split (units) shared by every op
   * split that way, each part as large as the largest op's (scr_use): a
   * thread's rows, so its parts, are the same in all of them, and no
   * barrier is needed between them. Ops run in halves have slots of their
   * own, with a set of parts a half: a half's threads split its rows
   * among themselves, not as the other ops do. */
  int n_scr = 0, scr0 = 0; /* the entries of this phase: scr[scr0 .. n_scr) */
  const int64_t cut = atomic_load(&cut_floats);
  for (int s = 0; s < g->n_exec; s++) {
    const int i = g->exec[s];
    const sk__node *nd = &g->nodes[i];
    /* A barrier instead of new memory: where a large value finds no free
     * slot that fits it (one of its split freed in this phase, or any freed
     * before it), while values dead in this phase left at least as much, a
     * new phase starts here and their memory becomes anyone's. */
    if (s > 0 && phase_of[i] == phase_of[g->exec[s - 1]] && g->lean && !pinned[i] && nd->numel >= cut) {
      const int64_t per0 = nd->numel / SK_MAX(1, units[i]);
      const int q = take_slot(slots, n_slots, phase_of[i], group_of[i], units[i], per0, (size_t)nd->numel);
      size_t dead = 0;
      for (int k = 0; k < n_slots; k++)
        if (slots[k].free && slots[k].free_phase == phase_of[i]) dead += slots[k].size;
      if ((q < 0 || slots[q].size < (size_t)nd->numel) && dead >= (size_t)nd->numel) {
        for (int t = s; t < g->n_exec; t++) phase_of[g->exec[t]]++;
        plan_groups(g, phase_of, units, root, group_of, agroup);
      }
    }
    if (s > 0 && phase_of[i] != phase_of[g->exec[s - 1]]) { /* the last phase's scratch is free */
      for (int k = scr0; k < n_scr; k++) {
        slot *sl = &slots[scr[k].slot];
        sl->free = 1, sl->free_phase = scr[k].phase, sl->free_group = -1;
      }
      scr0 = n_scr;
    }
    const int64_t per = nd->numel / SK_MAX(1, units[i]);
    int best = pinned[i] ? -1 : take_slot(slots, n_slots, phase_of[i], group_of[i], units[i], per, (size_t)nd->numel);
    if (best < 0) slots[best = n_slots++].size = 0;
    slots[best] = (slot){SK_MAX(slots[best].size, (size_t)nd->numel), 0, 0, 0, -1, units[i], per};
    slot_of[i] = best;
    /* The backend's scratch for this op: its split's slot in this phase. */
    scratch_slot[s] = -1;
    const int64_t sf = g->be->scratch_floats
                           ? g->be->scratch_floats(nd, &g->nodes[nd->in[0]],
                                                   sk__op_arity(nd->op) > 1 ? &g->nodes[nd->in[1]] : NULL)
                           : 0;
    if (sf > 0) {
      const int halves = in_halves(g, i) != 0;
      const int64_t parts = sk__scratch_parts(units[i]) * (halves ? 2 : 1);
      int k = scr0;
      while (k < n_scr && (scr[k].units != units[i] || scr[k].halves != halves)) k++;
      if (!scratch_fits(SK_MAX(parts, k < n_scr ? scr[k].parts : 0),
                        SK_MAX(sf, k < n_scr ? scr[k].part : 0))) {
        st = scratch_too_large(nd);
        goto done;
      }
      if (k == n_scr) {
        int q = take_slot(slots, n_slots, phase_of[i], -1, units[i], -1, (size_t)(parts * sf));
        if (q < 0) slots[q = n_slots++].size = 0;
        slots[q] = (slot){slots[q].size, 0, 0, 0, -1, units[i], -1};
        scr[n_scr++] = (scr_use){units[i], halves, q, phase_of[i], 0, 0};
      }
      scr[k].part = SK_MAX(scr[k].part, sf);
      scr[k].parts = SK_MAX(scr[k].parts, parts);
      slots[scr[k].slot].size =
          SK_MAX(slots[scr[k].slot].size, (size_t)(scr[k].parts * scr[k].part));
      scratch_slot[s] = scr[k].slot;
      scr_of[s] = k;
    }
    for (int k = 0; k < sk__node_arity(nd); k++) {
      int r = root[nd->in[k]];
      if (--uses[r] == 0 && !pinned[r] && slot_of[r] >= 0) {
        slots[slot_of[r]].free = 1;
        slots[slot_of[r]].free_phase = phase_of[i];
        slots[slot_of[r]].free_group = agroup[r] >= 0 ? agroup[r] : -1;
      }
    }
  }
  /* a·b^T with a leaf b (a parameter, mostly): b^T is packed once per run,
   * before the first phase, into a slot of its own per distinct b. */
  int n_packs = 0;
  for (int s = 0; s < g->n_exec; s++) {
    const sk__node *nd = &g->nodes[g->exec[s]];
    const sk__node *b = nd->op == SK_OP_MATMUL ? &g->nodes[nd->in[1]] : NULL;
    pack_of[s] = -1;
    if (!b || !g->be->pack || !g->be->pack(nd, b) ||
        sk__op_arity(g->nodes[root[nd->in[1]]].op) != 0)
      continue;
    int p = 0;
    while (p < n_packs && pack_src[p] != nd->in[1]) p++;
    if (p == n_packs) {
      pack_src[n_packs++] = nd->in[1];
      slots[n_slots] = (slot){(size_t)b->numel, 0, 0, 0, -1, 0, 0};
      pack_slot[p] = n_slots++;
    }
    pack_of[s] = p;
  }
  /* Reductions over the batch's rows done in halves (see in_halves). */
  for (int s = 0; s < g->n_exec; s++) {
    const sk__node *nd = &g->nodes[g->exec[s]];
    halves_slot[s] = -1;
    if (in_halves(g, g->exec[s])) {
      slots[n_slots] = (slot){(size_t)(2 * nd->numel), 0, 0, 0, -1, 0, 0};
      halves_slot[s] = n_slots++;
    }
  }
  /* Offsets: the slots one after another, or each buffer packed on its own
   * (pack_bufs) where that needs less: across a barrier a buffer may take
   * part of a dead one, or parts of several, where a slot passes only whole. */
  size_t total = 0;
  for (int s = 0; s < n_slots; s++) {
    slots[s].offset = total;
    if (!sk__add_size(total, padded(slots[s].size, s), &total)) {
      st = sk__fail(SK_ERR_NOMEM, "compile: arena too large");
      goto done;
    }
  }
  for (int i = 0; i < n; i++) val_off[i] = slot_of[i] >= 0 ? slots[slot_of[i]].offset : 0;
  for (int k = 0; k < n_scr; k++) scr_off[k] = slots[scr[k].slot].offset;
  for (int p = 0; p < n_packs; p++) pack_off[p] = slots[pack_slot[p]].offset;
  for (int s = 0; s < g->n_exec; s++) halves_off[s] = halves_slot[s] >= 0 ? slots[halves_slot[s]].offset : 0;
  {
    int nb = 0;
    const buf whole = {0, 0, -1, INT_MAX, -1, INT_MAX, 0, -1, -1, -1};
    for (int s = 0; s < g->n_exec; s++) step_of[g->exec[s]] = s;
    for (int i = 0; i < n; i++) last_read[i] = -1;
    for (int s = 0; s < g->n_exec; s++) {
      const sk__node *nd = &g->nodes[g->exec[s]];
      for (int k = 0; k < sk__node_arity(nd); k++) last_read[root[nd->in[k]]] = s;
    }
    for (int i = 0; i < n; i++) {
      if (slot_of[i] < 0) continue;
      bufs[nb] = whole;
      bufs[nb].size = (size_t)g->nodes[i].numel;
      if (!pinned[i]) {
        const int b = step_of[i], d = SK_MAX(b, last_read[i]);
        bufs[nb] = (buf){(size_t)g->nodes[i].numel, 0, b, d, phase_of[i], phase_of[g->exec[d]],
                         units[i], g->nodes[i].numel / SK_MAX(1, units[i]), group_of[i],
                         agroup[i] >= 0 ? agroup[i] : -1};
      }
      buf_of[i] = nb++;
    }
    const int b_scr = nb;
    for (int k = 0; k < n_scr; k++) { /* a phase's scratch: the whole phase */
      int b = 0, d = g->n_exec - 1;
      while (phase_of[g->exec[b]] != scr[k].phase) b++;
      while (phase_of[g->exec[d]] != scr[k].phase) d--;
      bufs[nb++] = (buf){(size_t)(scr[k].parts * scr[k].part), 0, b, d, scr[k].phase,
                         scr[k].phase, scr[k].units, -1, -1, -1};
    }
    const int b_packs = nb;
    for (int p = 0; p < n_packs; p++) {
      bufs[nb] = whole;
      bufs[nb++].size = (size_t)g->nodes[pack_src[p]].numel;
    }
    const int b_halves = nb;
    for (int s = 0; s < g->n_exec; s++)
      if (halves_slot[s] >= 0) {
        bufs[nb] = whole;
        bufs[nb++].size = slots[halves_slot[s]].size;
      }
    for (int q = 0; q < nb; q++) bufs[q].size = padded(bufs[q].size, q);
    const size_t packed = atomic_load(&packing_on) ? pack_bufs(bufs, nb) : 0;
    if (packed > 0 && packed < total) {
      total = packed;
      for (int i = 0; i < n; i++) val_off[i] = slot_of[i] >= 0 ? bufs[buf_of[i]].off : 0;
      for (int k = 0; k < n_scr; k++) scr_off[k] = bufs[b_scr + k].off;
      for (int p = 0; p < n_packs; p++) pack_off[p] = bufs[b_packs + p].off;
      for (int s = 0, q = b_halves; s < g->n_exec; s++)
        if (halves_slot[s] >= 0) halves_off[s] = bufs[q++].off;
    }
  }
  g->arena_floats = total; /* also when refused below: the size it would take */
  if (g->arena_limit && total > g->arena_limit / sizeof(float)) {
    st = sk__fail(SK_ERR_NOMEM, "compile: the arena needs %zu bytes, over the limit of %zu",
                  sk_graph_arena_bytes(g), g->arena_limit);
    goto done;
  }
  if (!(g->arena = g->be->alloc(total))) {
    st = sk__fail(SK_ERR_NOMEM, "compile: out of memory for a %zu-float arena", total);
    goto done;
  }
  g->arena_floats = total;
  float *base = g->arena; /* zeroed, on a cache line: so is every slot */
  for (int i = 0; i < n; i++) {
    sk__node *nd = &g->nodes[i];
    if (!need[i] || nd->op == SK_OP_PARAM) continue;
    if (nd->op == SK_OP_INPUT && nd->data) continue; /* bound before compile */
    if (alias[i] >= 0 || sk__op_view(nd->op)) { /* earlier, so already placed */
      nd->data = g->nodes[alias[i] >= 0 ? alias[i] : nd->in[0]].data;
      continue;
    }
    nd->data = base + val_off[i];
    if (nd->op == SK_OP_CONST)
      for (int64_t j = 0; j < nd->numel; j++) nd->data[j] = nd->fp[0];
  }
  for (int i = 0; i < n; i++) { /* the folded constants, in build order */
    const sk__node *nd = &g->nodes[i];
    if (!need[i] || alias[i] >= 0 || !fixed[i] || sk__op_arity(nd->op) == 0) continue;
    const int64_t sf = g->be->scratch_floats
                           ? g->be->scratch_floats(nd, &g->nodes[nd->in[0]],
                                                   sk__op_arity(nd->op) > 1 ? &g->nodes[nd->in[1]] : NULL)
                           : 0;
    const int64_t parts = sk__scratch_parts(units[i]);
    if (sf > 0 && !scratch_fits(parts, sf)) {
      st = scratch_too_large(nd);
      goto done;
    }
    float *scratch = sf > 0 ? g->be->alloc((size_t)(parts * sf)) : NULL;
    if (sf > 0 && !scratch) {
      st = sk__fail(SK_ERR_NOMEM, "compile: out of memory for a constant's scratch");
      goto done;
    }
    const sk__exec e = sk__exec_of(g, i, units[i], NULL, scratch, sf);
    st = g->be->exec(&e, 0, units[i]);
    if (scratch) g->be->free(scratch);
    if (st != SK_OK) goto done;
  }
  double work = 0.0;
  for (int s = 0; s < g->n_exec; s++) {
    const sk__node *nd = &g->nodes[g->exec[s]];
    sk__step *step = &g->steps[s];
    step->units = units[g->exec[s]];
    step->barrier = s > 0 && phase_of[g->exec[s]] != phase_of[g->exec[s - 1]];
    step->packed = pack_of[s] >= 0 ? base + pack_off[pack_of[s]] : NULL;
    step->halves = halves_slot[s] >= 0 ? base + halves_off[s] : NULL;
    step->halves_split = step->halves && halves_split(g, g->exec[s]);
    step->scratch = scratch_slot[s] >= 0 ? base + scr_off[scr_of[s]] : NULL;
    step->scratch_part = scratch_slot[s] >= 0 ? scr[scr_of[s]].part : 0;
    work += (double)nd->numel;
    /* Products and convolutions: a sixteenth per multiply-add. */
    const sk__flops fk = sk__op_flops_kind(nd->op);
    if (fk == SK__FLOPS_MATMUL || fk == SK__FLOPS_CONV)
      work += sk__op_flops(nd, &g->nodes[nd->in[0]]) / 32.0;
  }
  /* Groups and their tiles (see sk__step). */
  for (int s = 0; s < g->n_exec;) {
    int e = s + 1;
    int64_t width = g->nodes[g->exec[s]].numel / SK_MAX(1, units[g->exec[s]]);
    /* Steps with halves group with each other only: every half of the
     * group, one barrier, every sum (run.c), so none may read another's
     * result. */
    if (g->steps[s].halves)
      while (e < g->n_exec && !g->steps[e].barrier && g->steps[e].halves) {
        const sk__node *nd = &g->nodes[g->exec[e]];
        int reads_group = 0;
        for (int k = 0; k < sk__node_arity(nd); k++)
          for (int q = s; q < e; q++) reads_group |= root[nd->in[k]] == g->exec[q];
        if (reads_group) break;
        e++;
      }
    while (e < g->n_exec && !g->steps[e].barrier && units[g->exec[e]] == units[g->exec[s]] &&
           !g->steps[s].halves && !g->steps[e].halves) {
      width = SK_MAX(width, g->nodes[g->exec[e]].numel / SK_MAX(1, units[g->exec[e]]));
      e++;
    }
    g->steps[s].group_end = e;
    g->steps[s].tile = g->be->tile_rows(width);
    /* An op that reads its inputs whole for any rows (a weight gradient)
     * would only read them again tile after tile: its group runs untiled. */
    for (int q = s; q < e; q++)
      if (sk__op_rows(g->nodes[g->exec[q]].op) == SK__ROWS_WHOLE)
        g->steps[s].tile = SK_MAX(1, units[g->exec[s]]);
    for (int q = s + 1; q < e; q++) g->steps[q].group_end = 0;
    s = e;
  }
  /* cand (free since the schedule) counts each value's readers. */
  g->n_fused =
      atomic_load(&fusion_on) ? plan_fusion(g, root, pinned, units, cand, last_read, reg_of) : 0;
  g->n_packs = n_packs;
  for (int p = 0; p < n_packs; p++)
    g->packs[p] = (sk__pack){pack_src[p], base + pack_off[p]};
  /* Below this much work a parallel region costs more than it saves. */
  g->parallel = work >= 65536.0;
  g->compiled = 1;
done:
  sk__free(need);
  sk__free(root);
  sk__free(uses);
  sk__free(pinned);
  sk__free(fixed);
  sk__free(alias);
  sk__free(slot_of);
  sk__free(slots);
  sk__free(cand);
  sk__free(phase_of);
  sk__free(units);
  sk__free(pack_of);
  sk__free(halves_slot);
  sk__free(scratch_slot);
  sk__free(scr_of);
  sk__free(scr);
  sk__free(group_of);
  sk__free(agroup);
  sk__free(pack_src);
  sk__free(pack_slot);
  sk__free(last_read);
  sk__free(reg_of);
  sk__free(step_of);
  sk__free(buf_of);
  sk__free(bufs);
  sk__free(val_off);
  sk__free(scr_off);
  sk__free(pack_off);
  sk__free(halves_off);
  if (st != SK_OK) {
    sk__free(g->exec);
    sk__free(g->steps);
    sk__free(g->packs);
    sk__free(g->outs);
    if (g->arena) g->be->free(g->arena);
    g->exec = NULL;
    g->steps = NULL;
    g->packs = NULL;
    g->outs = NULL;
    g->arena = NULL;
  }
  return st;
}

size_t sk_graph_arena_bytes(const sk_graph *g) {
  if (!g) return sk__fail(SK_ERR_INVALID, "%s: NULL graph", __func__), 0;
  return g->arena_floats > SIZE_MAX / sizeof(float) ? SIZE_MAX : g->arena_floats * sizeof(float);
}
void sk_graph_set_arena_limit(sk_graph *g, size_t bytes) {
  if (!g) {
    sk__fail(SK_ERR_INVALID, "%s: NULL graph", __func__);
    return;
  }
  g->arena_limit = bytes;
}
void sk_graph_set_lean(sk_graph *g, int on) {
  if (!g) {
    sk__fail(SK_ERR_INVALID, "%s: NULL graph", __func__);
    return;
  }
  g->lean = on != 0;
}
