/* `scorekit inpaint`: fill the missing entries of rows or images given their
 * known ones with a noise-conditional score model (sk_inpaint), by the
 * predictor-corrector sampler or annealed Langevin with sample's flags. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_mpi.h"

/* Rows per chunk of the sampler, as `sample`. */
#define INPAINT_ROWS 512

static const char usage[] =
    "usage: scorekit inpaint --model FILE --input X.npy (--mask MASK.npy | --mask-kind K)\n"
    "                        --out OUT.npy [flags]\n"
    "\n"
    "Samples the missing entries of every row (or image) of X given its known\n"
    "ones: the sampler runs with the known entries put back at their values plus\n"
    "N(0, σ²) noise, σ the level the chain is at, after every step, and at their\n"
    "values exactly at the end (docs/MATH.md). The known entries of OUT are those\n"
    "of X, bit for bit.\n"
    "\n"
    "  --model FILE          a noise-conditional model (ncmlp or unet) from scorekit train\n"
    "  --raw                 use the raw weights instead of their EMA (the default)\n"
    "  --input X.npy         rows (n, d), or images (n, h, w) or (n, c, h, w) of the\n"
    "                        model's shape, in the data's range as sample writes them\n"
    "                        (0..255 for 8-bit pixels); float32/float64/int, finite\n"
    "  --mask MASK.npy       1 where X is known, 0 where it is missing (nothing else):\n"
    "                        X's shape, or one row's or image's shape for every row\n"
    "  --mask-kind K         make the mask instead: half (an image's bottom half, a\n"
    "                        row's second half of coordinates missing), centre (an\n"
    "                        image's centred square of half its side missing),\n"
    "                        random:P (each pixel, or a row's coordinate, missing with\n"
    "                        probability P, drawn from --seed)\n"
    "  --mask-out FILE.npy   write the mask used (X's shape, float32 0/1)\n"
    "  --class Y             with a class-conditional model (train --conditional):\n"
    "                        classifier-free guidance towards class Y\n"
    "  --guidance W          its weight w (default 1; 0 unconditional; > 1 sharpens)\n"
    "  --seed S              (default 0)\n"
    "  --out FILE.npy        X with its missing entries filled, X's shape, float32\n"
    "  --sampler pc|langevin the predictor-corrector sampler (the default) or annealed\n"
    "                        Langevin over the model's σ ladder; without it, the one\n"
    "                        the flags below belong to. A flag of the other is refused.\n"
    "pc, as scorekit sample's (from σ_max to σ_min, the ends of the model's ladder):\n"
    "  --steps N             geometric noise levels (default 1000 for images, 200 for\n"
    "                        points)\n"
    "  --snr R               the corrector's signal-to-noise ratio (default 0.16)\n"
    "  --corrector-steps C   Langevin corrector steps per level (default 1)\n"
    "  --no-denoise          end at σ_min without the final Tweedie step\n"
    "langevin, as scorekit sample's:\n"
    "  --steps-per-level T   steps per noise level (default 100)\n"
    "  --eps E               step size ε (default: NCSNv2's for T and the ladder's ratio)\n"
    "  --denoise             final Tweedie step on the missing entries\n"
    "\n"
    "Under mpirun or srun each rank takes a share of the chunks of rows; rank 0\n"
    "writes what one process would (docs/MPI.md).\n";

typedef struct mask_spec {
  int kind; /* 0 file, 1 half, 2 centre, 3 random */
  double p; /* random: the probability of missing */
} mask_spec;

static int parse_mask_kind(const char *v, mask_spec *m) {
  if (!strcmp(v, "half")) m->kind = 1;
  else if (!strcmp(v, "centre") || !strcmp(v, "center")) m->kind = 2;
  else if (!strncmp(v, "random:", 7)) {
    m->kind = 3;
    return cli_float("--mask-kind random:P", v + 7, 0, 1, &m->p);
  } else {
    cli_fail("--mask-kind: unknown \"%s\" (half, centre, random:P)", v);
    return 0;
  }
  return 1;
}

/* One row's mask (d values) for a generated kind: images (c, h, w) when
 * chw[0] > 0, else d coordinates; random masks draw per row from r. */
static void make_row_mask(const mask_spec *ms, const int64_t chw[3], int d, sk_rng *r, float *m,
                          float *u) {
  const int image = chw[0] > 0;
  const int64_t c = image ? chw[0] : 1, h = image ? chw[1] : 1, w = image ? chw[2] : d;
  if (ms->kind == 3) sk_rng_uniform(r, u, (size_t)(h * w));
  for (int64_t k = 0; k < c; k++)
    for (int64_t y = 0; y < h; y++)
      for (int64_t x = 0; x < w; x++) {
        int missing;
        if (ms->kind == 1) missing = image ? y >= h / 2 : x >= w / 2;
        else if (ms->kind == 2)
          missing = y >= h / 4 && y < h / 4 + h / 2 && x >= w / 4 && x < w / 4 + w / 2;
        else missing = u[y * w + x] < ms->p;
        m[(k * h + y) * w + x] = missing ? 0.0f : 1.0f;
      }
}

/* "(2, 28, 28)" */
static void shape_text(char *buf, size_t cap, int ndim, const int64_t *s) {
  int n = snprintf(buf, cap, "(");
  for (int k = 0; k < ndim && n > 0 && (size_t)n < cap; k++)
    n += snprintf(buf + n, cap - (size_t)n, "%s%lld", k ? ", " : "", (long long)s[k]);
  if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, ")");
}

/* Whether X's shape fits the model: (n, d) rows, or (n, h, w) / (n, c, h, w)
 * images of the model's image shape. */
static int input_fits(const sk_tensor *x, int d, const int64_t chw[3]) {
  const int nd = sk_tensor_ndim(x);
  const int64_t *s = sk_tensor_shape(x);
  if (nd == 2) return s[1] == d;
  if (chw[0] < 1) return 0;
  if (nd == 3) return chw[0] == 1 && s[1] == chw[1] && s[2] == chw[2];
  return nd == 4 && s[1] == chw[0] && s[2] == chw[1] && s[3] == chw[2];
}

int cmd_inpaint(int argc, char **argv) {
  static const char *const valued[] = {
      "--model", "--input", "--mask", "--mask-kind", "--mask-out", "--out", "--class", "--guidance",
      "--seed", "--sampler", "--steps", "--snr", "--corrector-steps", "--steps-per-level", "--eps",
      NULL};
  static const char *const switches[] = {"--raw", "--denoise", "--no-denoise", "--help", "-h",
                                         NULL};
  const char *model_path = NULL, *input = NULL, *mask_path = NULL, *mask_out = NULL, *out = NULL;
  long long seed = 0, cls = -1;
  double guidance = 1;
  int use_ema = 1, guidance_set = 0;
  cli_sampler_opts so = cli_sampler_defaults();
  mask_spec ms = {0, 0};
  unsigned long long seen = 0;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage, stdout);
      return 0;
    }
    if (!strcmp(f, "--raw")) {
      use_ema = 0;
      continue;
    }
    if (cli_sampler_switch(f, &so)) continue;
    const char *v = cli_value("inpaint", argc, argv, &i, valued, switches, &seen);
    if (!v) return 1;
    int ok = cli_sampler_value(f, v, &so);
    if (ok >= 0) {
      if (!ok) return 1;
      continue;
    }
    ok = 1;
    if (!strcmp(f, "--model")) model_path = v;
    else if (!strcmp(f, "--input")) input = v;
    else if (!strcmp(f, "--mask")) mask_path = v;
    else if (!strcmp(f, "--mask-kind")) ok = parse_mask_kind(v, &ms);
    else if (!strcmp(f, "--mask-out")) mask_out = v;
    else if (!strcmp(f, "--out")) out = v;
    else if (!strcmp(f, "--class")) ok = cli_int(f, v, 0, 65535, &cls);
    else if (!strcmp(f, "--guidance")) ok = guidance_set = cli_float(f, v, -1e3, 1e3, &guidance);
    else if (!strcmp(f, "--seed")) ok = cli_int(f, v, 0, INT64_MAX, &seed);
    if (!ok) return 1;
  }
  if (!model_path || !input || !out)
    return cli_fail("--model, --input and --out are required (see scorekit inpaint --help)");
  if (!mask_path == !ms.kind)
    return cli_fail("give one of --mask FILE and --mask-kind K (see scorekit inpaint --help)");
  if (guidance_set && cls < 0) return cli_fail("--guidance: applies with --class only");
  const int sampler = cli_sampler_choose(argc, argv, so.sampler, CLI_PC | CLI_LANGEVIN, CLI_PC);
  if (!sampler) return 1;
  static const char *const flags[5] = {"--out", "--mask-out", "--model", "--input", "--mask"};
  const char *const paths[5] = {out, mask_out, model_path, input, mask_path};
  if (!cli_distinct(flags, paths, 2, 5) || !cli_check_out("--out", out) ||
      (mask_out && !cli_check_out("--mask-out", mask_out)))
    return 1;
  static sk_model_info info;
  sk_model *m = NULL;
  sk_tensor *xt = NULL, *mt = NULL;
  sk_score_fn *fn = NULL;
  float *x = NULL, *mask = NULL, *u = NULL;
  int rc = 1;
  char a[96], b[96];
  if (sk_model_load(model_path, use_ema, &m, &info) != SK_OK || sk_npy_load(input, &xt) != SK_OK ||
      (mask_path && sk_npy_load(mask_path, &mt) != SK_OK)) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  const sk_model_config *mc = sk_model_get_config(m);
  if ((mc->kind != SK_MODEL_NCMLP && mc->kind != SK_MODEL_UNET) || info.n_sigmas < 1) {
    cli_fail("%s: inpainting needs a noise-conditional score model with a σ ladder (ncmlp or unet "
             "trained by ncsn)", model_path);
    goto done;
  }
  if (sampler == CLI_PC && info.n_sigmas < 2) {
    cli_fail("--sampler pc: the model's ladder has one level; it needs σ_max > σ_min");
    goto done;
  }
  if (cls >= 0 && mc->classes < 1) {
    cli_fail("--class: %s is not class-conditional (train --conditional)", model_path);
    goto done;
  }
  if (cls >= mc->classes && cls >= 0) {
    cli_fail("--class %lld: %s is conditional on classes 0..%d", cls, model_path, mc->classes - 1);
    goto done;
  }
  const int d = mc->dim;
  if (!input_fits(xt, d, info.image_shape)) {
    shape_text(a, sizeof a, sk_tensor_ndim(xt), sk_tensor_shape(xt));
    if (info.image_shape[0] > 0)
      cli_fail("%s: shape %s; the model takes rows of %d or images of %lld×%lld×%lld (c×h×w)",
               input, a, d, (long long)info.image_shape[0], (long long)info.image_shape[1],
               (long long)info.image_shape[2]);
    else
      cli_fail("%s: shape %s; the model takes rows (n, %d)", input, a, d);
    goto done;
  }
  const int64_t n = sk_tensor_shape(xt)[0];
  const size_t nd = (size_t)n * (size_t)d;
  if (n < 1) {
    cli_fail("%s: no rows", input);
    goto done;
  }
  if (mt) { /* X's shape, or one row's for every row */
    const int xn = sk_tensor_ndim(xt), mn = sk_tensor_ndim(mt);
    const int64_t *xs = sk_tensor_shape(xt), *mS = sk_tensor_shape(mt);
    int full = mn == xn, row = mn == xn - 1;
    for (int k = 0; k < mn; k++) {
      full = full && mS[k] == xs[k];
      row = row && mS[k] == xs[k + 1];
    }
    if (!full && !row) {
      shape_text(a, sizeof a, mn, mS);
      shape_text(b, sizeof b, xn, xs);
      cli_fail("--mask %s: shape %s is neither X's %s nor one row's", mask_path, a, b);
      goto done;
    }
    const float *mv = sk_tensor_cdata(mt);
    for (int64_t i = 0; i < sk_tensor_numel(mt); i++)
      if (mv[i] != 0 && mv[i] != 1) {
        cli_fail("--mask %s: value %g at element %lld; a mask holds 0 (missing) and 1 (known) "
                 "only", mask_path, (double)mv[i], (long long)i);
        goto done;
      }
  }
  if (ms.kind == 2 && info.image_shape[0] < 1) {
    cli_fail("--mask-kind centre: applies to images; %s takes rows", model_path);
    goto done;
  }
  x = cli_alloc(nd * sizeof *x);
  mask = cli_alloc(nd * sizeof *mask);
  u = cli_alloc((size_t)d * sizeof *u);
  if (!x || !mask || !u) {
    cli_fail("out of memory for %lld rows of %d", (long long)n, d);
    goto done;
  }
  sk_rng mr = sk_rng_make((uint64_t)seed, 0x6d61736b); /* "mask" */
  for (int64_t i = 0; i < n; i++) {
    float *row = mask + (size_t)i * (size_t)d;
    if (mt) memcpy(row, sk_tensor_cdata(mt) + (sk_tensor_numel(mt) == (int64_t)nd ? i * d : 0),
                   (size_t)d * sizeof(float));
    else make_row_mask(&ms, info.image_shape, d, &mr, row, u);
  }
  /* Into the model's scale; the missing entries start from N(0, σ_max²)
   * (σ_max = σ_1, the top of the ladder), whatever X holds there. */
  const float scale = info.data_scale > 0 ? info.data_scale : 1.0f;
  const float *x0 = sk_tensor_cdata(xt);
  sk_rng r = sk_rng_make((uint64_t)seed, 0x696e7074); /* "inpt" */
  sk_rng_normal(&r, x, nd);
  size_t missing = 0;
  for (size_t j = 0; j < nd; j++) {
    if (mask[j] != 0) x[j] = x0[j] / scale;
    else {
      x[j] *= info.sigmas[0];
      missing++;
    }
  }
  const float s1 = info.sigmas[0], sL = info.sigmas[info.n_sigmas - 1];
  if (sampler == CLI_LANGEVIN && !cli_langevin_eps(&so, info.n_sigmas, s1, sL)) goto done;
  const int rows = n < INPAINT_ROWS ? (int)n : INPAINT_ROWS;
  if ((cls >= 0 ? sk_score_fn_cfg(m, rows, (int)cls, (float)guidance, &fn)
                : sk_score_fn_model(m, rows, &fn)) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  if (cls >= 0) printf("classifier-free guidance: class %lld, weight %g\n", cls, guidance);
  cli_progress prog;
  const sk_sample_hooks hooks = {cli_mpi_rank() == 0 ? cli_progress_update : NULL, &prog, 0, NULL};
  const sk_inpaint_config ic = {
      sampler == CLI_PC ? SK_INPAINT_PC : SK_INPAINT_LANGEVIN,
      cli_pc_config(&so, info.image_shape[0] > 0, s1, sL, &hooks),
      {info.n_sigmas, info.sigmas, (int)so.steps_per_level, (float)so.eps, so.denoise, &hooks}};
  printf("inpainting %lld rows, %zu of %zu values missing (%.1f%%): ", (long long)n, missing, nd,
         100.0 * (double)missing / (double)nd);
  if (sampler == CLI_PC)
    printf("predictor-corrector, %d levels σ %.4g → %.4g, %d corrector step%s at snr %g%s\n",
           ic.pc.levels, s1, sL, ic.pc.corrector_steps, ic.pc.corrector_steps == 1 ? "" : "s",
           ic.pc.snr, ic.pc.denoise ? ", denoised" : "");
  else
    printf("annealed Langevin, %d levels × %d steps, ε = %.3g%s\n", info.n_sigmas,
           ic.langevin.steps_per_level, ic.langevin.eps, ic.langevin.denoise ? ", denoised" : "");
  fflush(stdout);
  /* Under MPI each rank takes whole chunks, with their bits; rank 0
   * gathers the rows and writes. */
  int64_t first, count;
  cli_mpi_rows(n, rows, &first, &count);
  cli_progress_start(&prog, cli_sampler_name(sampler), "score evaluations");
  const sk_status st = sk_inpaint_rows(fn, &ic, &r, x + (size_t)first * (size_t)d,
                                       mask + (size_t)first * (size_t)d, n, first, count);
  cli_progress_end(&prog);
  if (st != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  if (!cli_mpi_gather_rows(x, n, d, rows)) goto done;
  if (cli_mpi_rank() > 0) {
    rc = 0;
    goto done;
  }
  /* Back into the data's range; the known entries are X's own values. */
  size_t kept = 0;
  for (size_t j = 0; j < nd; j++) {
    if (mask[j] != 0) {
      x[j] = x0[j];
      kept++;
    } else {
      x[j] *= scale;
    }
  }
  if (sk_npy_save_f32(out, sk_tensor_ndim(xt), sk_tensor_shape(xt), x) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  if (mask_out && sk_npy_save_f32(mask_out, sk_tensor_ndim(xt), sk_tensor_shape(xt), mask) != SK_OK) {
    cli_fail("%s", sk_last_error());
    goto done;
  }
  printf("wrote %s (%zu known values kept as given)%s%s\n", out, kept, mask_out ? "; " : "",
         mask_out ? mask_out : "");
  rc = 0;
done:
  free(x);
  free(mask);
  free(u);
  sk_score_fn_free(fn);
  sk_tensor_free(mt);
  sk_tensor_free(xt);
  sk_model_free(m);
  return rc;
}
