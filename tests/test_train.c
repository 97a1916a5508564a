/* Training on mog8 lowers the exact score error E‖s_θ − ∇log p_σ‖² for every
 * objective; checkpoints round-trip; a resumed run ends with the same bits
 * as an uninterrupted one. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <dirent.h>
#include <omp.h>
#include <unistd.h>

#include "scorekit/scorekit.h"
#include "test.h"

/* E_{x ~ p_σ} ‖s(x, σ) − ∇ log p_σ(x)‖², with n samples (sk_score_error). */
static double score_error(sk_model *m, const sk_gmm *law, float sigma, int n) {
  sk_score_fn *f = NULL;
  double e = INFINITY;
  if (sk_score_fn_model(m, SK_SCORE_ROWS, &f) != SK_OK ||
      sk_score_error(f, law, sigma, n, 99, &e) != SK_OK)
    fprintf(stderr, "score error: %s\n", sk_last_error());
  sk_score_fn_free(f);
  return e;
}

/* Removes a test's temporary directory and what it holds: 1 on success. */
static int remove_dir(const char *dir) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0;
}

static sk_dataset *mog8_data(int n) {
  sk_tensor *x = sk_tensor_new(2, (int64_t[]){n, 2});
  sk_tensor *l = sk_tensor_new(1, (int64_t[]){n});
  int32_t *lab = malloc((size_t)n * sizeof *lab);
  sk_rng r = sk_rng_make(2024, 0);
  sk_toy_sample("mog8", &r, n, sk_tensor_data(x), lab);
  for (int i = 0; i < n; i++) sk_tensor_data(l)[i] = (float)lab[i];
  free(lab);
  sk_dataset *ds = NULL;
  sk_dataset_new(x, l, &ds);
  return ds;
}

static const float ladder[6] = {6.0f, 3.0f, 1.5f, 0.75f, 0.4f, 0.2f};

typedef struct run_spec {
  sk_objective obj;
  sk_model_kind kind;
  float sigma; /* evaluation level; 0 = the data itself */
  int steps;
  double factor; /* required error reduction */
} run_spec;

/* Trains and returns (initial error) / (final error), over the ladder's
 * levels for ncsn (σ²-weighted, as the objective weighs them). */
static double improvement(const run_spec *rs) {
  sk_gmm *law = sk_gmm_builtin("mog8");
  sk_dataset *ds = mog8_data(4096);
  sk_model_config mc = {rs->kind, 2, 64, 2, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 1);
  sk_train_config tc = {rs->obj, 128, 1, 0, rs->sigma > 0 ? rs->sigma : 0.1f, 6, ladder,
                        sk_adam_config_default(), 7};
  tc.adam.lr = 3e-3f;
  sk_trainer *t = NULL;
  if (sk_trainer_new(m, ds, &tc, &t) != SK_OK) {
    fprintf(stderr, "trainer: %s\n", sk_last_error());
    return 0;
  }
  double before = 0, after = 0;
  /* ncsn and vesde are judged over the ladder (vesde draws σ between its ends). */
  int levels = rs->obj == SK_OBJ_NCSN || rs->obj == SK_OBJ_VESDE ? 6 : 1;
  for (int i = 0; i < levels; i++) {
    float s = levels > 1 ? ladder[i] : rs->sigma;
    before += (levels > 1 ? s * s : 1) * score_error(m, law, s, 2000);
  }
  for (int i = 0; i < rs->steps; i++)
    if (sk_trainer_step(t, NULL, NULL) != SK_OK) {
      fprintf(stderr, "step: %s\n", sk_last_error());
      return 0;
    }
  for (int i = 0; i < levels; i++) {
    float s = levels > 1 ? ladder[i] : rs->sigma;
    after += (levels > 1 ? s * s : 1) * score_error(m, law, s, 2000);
  }
  printf("  %-7s exact score error %.4g -> %.4g (factor %.1f, required %.0f)\n",
         sk_objective_name(rs->obj), before, after, before / after, rs->factor);
  sk_trainer_free(t);
  sk_model_free(m);
  sk_dataset_free(ds);
  sk_gmm_free(law);
  return before / after;
}

#define TRAIN_TEST(name, obj, kind, sigma, steps, factor)                      \
  TEST(name) {                                                                 \
    run_spec rs = {obj, kind, sigma, steps, factor};                           \
    CHECK(improvement(&rs) >= factor);                                         \
  }

/* esm/ssm/ssm-vr see clean data, so they are judged at a mildly smoothed law
 * (σ = 0.2; the clean mog8 score between modes is steep). */
TRAIN_TEST(esm_learns, SK_OBJ_ESM, SK_MODEL_MLP, 0.2f, 2000, 4)
TRAIN_TEST(ssm_learns, SK_OBJ_SSM, SK_MODEL_MLP, 0.2f, 2000, 4)
TRAIN_TEST(ssm_vr_learns, SK_OBJ_SSM_VR, SK_MODEL_MLP, 0.2f, 2000, 4)
TRAIN_TEST(dsm_learns, SK_OBJ_DSM, SK_MODEL_MLP, 0.5f, 2000, 4)
TRAIN_TEST(ncsn_learns, SK_OBJ_NCSN, SK_MODEL_NCMLP, 0, 2000, 4)
TRAIN_TEST(vesde_learns, SK_OBJ_VESDE, SK_MODEL_NCMLP, 0, 2000, 4)

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

/* 30 steps straight vs 12 + save + resume into fresh objects + 18. */
static void resume_same_bits(sk_objective obj) {
  char dir[] = "/tmp/sk_resume_XXXXXX";
  CHECK(mkdtemp(dir));
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 32, 2, 0, SK_ACT_SOFTPLUS};
  sk_train_config tc = {obj, 100, 1, 0, 0.1f, 6, ladder, sk_adam_config_default(), 5};
  sk_model_info info = {.objective = obj, .n_sigmas = 6};
  memcpy(info.sigmas, ladder, sizeof ladder);
  float *straight = NULL;
  size_t np = 0;
  for (int pass = 0; pass < 2; pass++) {
    sk_dataset *ds = mog8_data(1000); /* 1000 / 100: epochs turn over mid-run */
    sk_model *m = sk_model_new(&mc);
    sk_model_init(m, 3);
    sk_trainer *t;
    CHECK_OK(sk_trainer_new(m, ds, &tc, &t));
    int first = pass == 0 ? 30 : 12;
    for (int i = 0; i < first; i++) CHECK_OK(sk_trainer_step(t, NULL, NULL));
    if (pass == 1) {
      CHECK_OK(sk_trainer_save(t, dir, &info));
      CHECK_EQ_INT(count_files(dir), 2); /* no temporary file left */
      sk_trainer_free(t);
      sk_model_free(m);
      sk_dataset_free(ds);
      ds = mog8_data(1000);
      m = sk_model_new(&mc); /* fresh, different weights */
      sk_model_init(m, 4);
      CHECK_OK(sk_trainer_new(m, ds, &tc, &t));
      CHECK_OK(sk_trainer_resume(t, dir));
      CHECK_EQ_INT(sk_trainer_steps(t), 12);
      for (int i = 0; i < 18; i++) CHECK_OK(sk_trainer_step(t, NULL, NULL));
      CHECK(memcmp(straight, sk_model_params(m), np * sizeof(float)) == 0);
    } else {
      np = sk_model_num_params(m);
      straight = malloc(np * sizeof(float));
      memcpy(straight, sk_model_params(m), np * sizeof(float));
    }
    sk_trainer_free(t);
    sk_model_free(m);
    sk_dataset_free(ds);
  }
  free(straight);
  CHECK(remove_dir(dir));
}

TEST(resume_gives_same_bits) { resume_same_bits(SK_OBJ_NCSN); }
/* vesde's continuous σ comes from the level stream, which the state restores. */
TEST(resume_gives_same_bits_vesde) { resume_same_bits(SK_OBJ_VESDE); }

/* vesde's σ of each row comes from the level stream at (step, row), not
 * from a thread: 20 steps on 1 and on 2 threads end with the same bits. */
TEST(vesde_same_bits_on_1_and_2_threads) {
  float *w[2] = {NULL, NULL};
  size_t np = 0;
  for (int k = 0; k < 2; k++) {
    omp_set_num_threads(k + 1);
    sk_dataset *ds = mog8_data(1000);
    sk_model_config mc = {SK_MODEL_NCMLP, 2, 32, 2, 0, SK_ACT_SOFTPLUS};
    sk_model *m = sk_model_new(&mc);
    sk_model_init(m, 3);
    sk_train_config tc = {SK_OBJ_VESDE, 256, 1, 0, 0.1f, 6, ladder, sk_adam_config_default(), 5};
    sk_trainer *t;
    CHECK_OK(sk_trainer_new(m, ds, &tc, &t));
    for (int i = 0; i < 20; i++) CHECK_OK(sk_trainer_step(t, NULL, NULL));
    np = sk_model_num_params(m);
    w[k] = malloc(np * sizeof(float));
    memcpy(w[k], sk_model_params(m), np * sizeof(float));
    sk_trainer_free(t);
    sk_model_free(m);
    sk_dataset_free(ds);
  }
  omp_set_num_threads(2);
  CHECK(memcmp(w[0], w[1], np * sizeof(float)) == 0);
  free(w[0]);
  free(w[1]);
}

/* vesde: a noise-conditional model and a ladder with a range (σ_max above
 * σ_min); a resume checks its ladder and objective like ncsn's. */
TEST(vesde_config_and_resume_checks) {
  char dir[] = "/tmp/sk_vesde_XXXXXX";
  CHECK(mkdtemp(dir));
  sk_dataset *ds = mog8_data(100);
  const sk_model_config nc = {SK_MODEL_NCMLP, 2, 8, 1, 0, SK_ACT_SOFTPLUS};
  sk_model_config mlp = nc;
  mlp.kind = SK_MODEL_MLP;
  sk_model *m = sk_model_new(&mlp), *n = sk_model_new(&nc);
  sk_model_init(m, 3);
  sk_model_init(n, 3);
  sk_train_config tc = {SK_OBJ_VESDE, 10, 1, 0, 0.1f, 6, ladder, sk_adam_config_default(), 5};
  sk_trainer *t = NULL;
  CHECK_EQ_INT(sk_trainer_new(m, ds, &tc, &t), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "vesde needs a noise-conditional model"));
  static const float flat[2] = {1.0f, 1.0f}, up[2] = {0.5f, 2.0f};
  const struct {
    int n;
    const float *s;
  } bad[3] = {{1, ladder}, {2, flat}, {2, up}};
  for (int k = 0; k < 3; k++) {
    sk_train_config b = tc;
    b.n_sigmas = bad[k].n;
    b.sigmas = bad[k].s;
    CHECK_EQ_INT(sk_trainer_new(n, ds, &b, &t), SK_ERR_INVALID);
    CHECK(t == NULL);
  }
  /* ncsn's ladder decreases strictly too, as a model file's must (a level
   * repeated would train, then fail at the save). */
  static const float rising[3] = {0.1f, 0.5f, 1.0f}, repeated[3] = {1.0f, 1.0f, 0.5f};
  sk_train_config nb = tc;
  nb.objective = SK_OBJ_NCSN;
  nb.n_sigmas = 3;
  for (int k = 0; k < 2; k++) {
    nb.sigmas = k ? repeated : rising;
    CHECK_EQ_INT(sk_trainer_new(n, ds, &nb, &t), SK_ERR_INVALID);
    CHECK(t == NULL && strstr(sk_last_error(), "largest first"));
  }
  CHECK_OK(sk_trainer_new(n, ds, &tc, &t));
  for (int i = 0; i < 3; i++) CHECK_OK(sk_trainer_step(t, NULL, NULL));
  sk_model_info info = {.objective = SK_OBJ_VESDE, .n_sigmas = 6};
  memcpy(info.sigmas, ladder, sizeof ladder);
  CHECK_OK(sk_trainer_save(t, dir, &info));
  sk_trainer_free(t);
  /* The model file records the objective and the ladder for the samplers. */
  char path[256];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  sk_model *back = NULL;
  sk_model_info got;
  CHECK_OK(sk_model_load(path, 1, &back, &got));
  CHECK(got.objective == SK_OBJ_VESDE && got.n_sigmas == 6 && got.sigmas[0] == ladder[0] &&
        got.sigmas[5] == ladder[5] && got.steps == 3);
  sk_model_free(back);
  static const float ladder6[6] = {6.0f, 3.0f, 1.5f, 0.75f, 0.4f, 0.3f};
  const struct {
    sk_objective obj;
    const float *s;
    const char *setting, *msg;
  } other[2] = {{SK_OBJ_NCSN, ladder, "objective", "objective ncsn differs from the run's vesde"},
                {SK_OBJ_VESDE, ladder6, "sigmas",
                 "sigmas 6 levels 6 ... 0.3 differs from the run's 6 levels 6 ... 0.2"}};
  for (int k = 0; k < 2; k++) {
    sk_train_config o = tc;
    o.objective = other[k].obj;
    o.sigmas = other[k].s;
    CHECK_OK(sk_trainer_new(n, ds, &o, &t));
    CHECK_EQ_INT(sk_trainer_resume(t, dir), SK_ERR_INVALID);
    sk_run_mismatch mm;
    CHECK(sk_trainer_resume_mismatch(t, &mm) && strcmp(mm.setting, other[k].setting) == 0);
    if (!strstr(sk_last_error(), other[k].msg)) fprintf(stderr, "%s\n", sk_last_error());
    CHECK(strstr(sk_last_error(), other[k].msg));
    CHECK_EQ_INT(sk_trainer_steps(t), 0);
    sk_trainer_free(t);
  }
  CHECK_OK(sk_trainer_new(n, ds, &tc, &t));
  CHECK_OK(sk_trainer_resume(t, dir));
  CHECK_EQ_INT(sk_trainer_steps(t), 3);
  sk_trainer_free(t);
  sk_model_free(m);
  sk_model_free(n);
  sk_dataset_free(ds);
  CHECK(remove_dir(dir));
}

/* `text` with the first `from` replaced by `to`, in buf. */
static const char *replaced(char *buf, size_t cap, const char *text, const char *from,
                            const char *to) {
  const char *at = strstr(text, from);
  if (!at) return text;
  snprintf(buf, cap, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
  return buf;
}

/* The state's metadata is read through the JSON parser: malformed text,
 * duplicate keys, deep nesting, wrong types and out-of-range counters are
 * one-line errors naming the file, and nothing is restored. */
TEST(resume_rejects_bad_state) {
  char dir[] = "/tmp/sk_state_XXXXXX";
  CHECK(mkdtemp(dir));
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 8, 1, 0, SK_ACT_SOFTPLUS};
  sk_train_config tc = {SK_OBJ_NCSN, 10, 1, 0, 0.1f, 6, ladder, sk_adam_config_default(), 5};
  sk_model_info info = {.objective = SK_OBJ_NCSN, .n_sigmas = 6};
  memcpy(info.sigmas, ladder, sizeof ladder);
  sk_dataset *ds = mog8_data(100);
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 3);
  sk_trainer *t;
  CHECK_OK(sk_trainer_new(m, ds, &tc, &t));
  for (int i = 0; i < 3; i++) CHECK_OK(sk_trainer_step(t, NULL, NULL));
  CHECK_OK(sk_trainer_save(t, dir, &info));
  char path[256];
  snprintf(path, sizeof path, "%s/state.safetensors", dir);
  sk_safetensors *sf;
  CHECK_OK(sk_safetensors_load(path, &sf));
  char good[1024];
  snprintf(good, sizeof good, "%s", sk_safetensors_meta(sf, "scorekit_state"));
  sk_safetensors_free(sf);
  const char *head = "{\"arch\":\"1/2/8/1/0/softplus\",\"step\":\"3\",\"adam_steps\":\"3\",";
  CHECK(strncmp(good, head, strlen(head)) == 0);
  char deep[128] = "{\"x\":", b1[1100]; /* 66 levels before the real text */
  for (int i = 0; i < 65; i++) strcat(deep, "[");
  strcat(deep, "{\"arch\"");
  const size_t np = sk_model_num_params(m);
  float *zeros = calloc(np, sizeof *zeros);
  const struct {
    const char *from, *to; /* applied to the good text */
    sk_status want;
    const char *msg;
  } cases[] = {
      {"\"}", "\"", SK_ERR_FORMAT, "training state: byte "},
      {"\"step\":\"3\"", "\"step\":\"3\",\"step\":\"4\"", SK_ERR_FORMAT, "duplicate key"},
      {"\"step\":\"3\"", "\"step\":3", SK_ERR_FORMAT, "\"step\" is missing or not a decimal"},
      {"\"cursor\":\"30\",", "", SK_ERR_FORMAT, "\"cursor\" is missing"},
      {"\"level\":\"", "\"level\":\"3 ", SK_ERR_FORMAT, "\"level\" is missing"},
      {"\"proj\":\"0\"", "\"proj\":\"18446744073709551616\"", SK_ERR_FORMAT, "\"proj\""},
      {"\"epoch\":\"0\"", "\"epoch\":\"9223372036854775808\"", SK_ERR_FORMAT, "\"epoch\""},
      {"\"data\":\"", "\"data\":\"-", SK_ERR_FORMAT, "\"data\""},
      {"1/2/8/1/0/softplus", "1/2/9/1/0/softplus", SK_ERR_INVALID, "hidden 8 differs from the run's 9"},
      {"{\"arch\"", deep, SK_ERR_FORMAT, "nesting deeper than 64"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const char *meta[2] = {"scorekit_state",
                           replaced(b1, sizeof b1, good, cases[k].from, cases[k].to)};
    CHECK(meta[1] == b1);
    sk_named_tensor ts[4] = {{"params", 1, {(int64_t)np}, zeros},
                             {"ema", 1, {(int64_t)np}, zeros},
                             {"adam.m", 1, {(int64_t)np}, zeros},
                             {"adam.v", 1, {(int64_t)np}, zeros}};
    CHECK_OK(sk_safetensors_save(path, ts, 4, meta, 1));
    sk_status s = sk_trainer_resume(t, dir);
    if (s != cases[k].want || !strstr(sk_last_error(), cases[k].msg))
      fprintf(stderr, "case %zu: %s: %s\n", k, sk_status_str(s), sk_last_error());
    CHECK_EQ_INT(s, cases[k].want);
    CHECK(strstr(sk_last_error(), cases[k].msg));
    CHECK(strstr(sk_last_error(), path));
    CHECK(!strchr(sk_last_error(), '\n'));
    CHECK_EQ_INT(sk_trainer_steps(t), 3);
    CHECK(memcmp(sk_model_params(m), zeros, np * sizeof(float)) != 0); /* nothing restored */
  }
  free(zeros);
  sk_trainer_free(t);
  sk_model_free(m);
  sk_dataset_free(ds);
  CHECK(remove_dir(dir));
}

/* A state is checked field by field before anything is restored: the
 * counters' ranges and relations (a step count at INT64_MAX would overflow
 * Adam's), the run's settings (types and ranges), the tensors' shapes and
 * values. Each crafted state is refused naming the file and the field, and
 * the trainer goes on as before. */
TEST(resume_validates_every_field) {
  char dir[] = "/tmp/sk_fields_XXXXXX";
  CHECK(mkdtemp(dir));
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 8, 1, 0, SK_ACT_SOFTPLUS};
  sk_train_config tc = {SK_OBJ_NCSN, 10, 1, 0, 0.1f, 6, ladder, sk_adam_config_default(), 5};
  sk_model_info info = {.objective = SK_OBJ_NCSN, .n_sigmas = 6};
  memcpy(info.sigmas, ladder, sizeof ladder);
  sk_dataset *ds = mog8_data(100);
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 3);
  sk_trainer *t;
  CHECK_OK(sk_trainer_new(m, ds, &tc, &t));
  for (int i = 0; i < 3; i++) CHECK_OK(sk_trainer_step(t, NULL, NULL));
  CHECK_OK(sk_trainer_save(t, dir, &info));
  char path[256];
  snprintf(path, sizeof path, "%s/state.safetensors", dir);
  sk_safetensors *sf;
  CHECK_OK(sk_safetensors_load(path, &sf));
  char good[2048], b1[2200];
  snprintf(good, sizeof good, "%s", sk_safetensors_meta(sf, "scorekit_state"));
  sk_safetensors_free(sf);
  /* The data stream's position, one block (4 values) past it and short of
   * it, and the message naming each. */
  const char *data_at = strstr(good, "\"data\":\"");
  CHECK(data_at);
  const unsigned long long data = strtoull(data_at + strlen("\"data\":\""), NULL, 10);
  CHECK(data >= 4);
  char data_good[48], data_to[3][48], data_msg[3][64];
  const unsigned long long data_bad[3] = {data + 4, data - 4, UINT64_MAX};
  snprintf(data_good, sizeof data_good, "\"data\":\"%llu\"", data);
  for (int i = 0; i < 3; i++) {
    snprintf(data_to[i], sizeof data_to[i], "\"data\":\"%llu\"", data_bad[i]);
    snprintf(data_msg[i], sizeof data_msg[i], "\"data\" is %llu; drawing epoch 0's order",
             data_bad[i]);
  }
  const size_t np = sk_model_num_params(m);
  float *ones = malloc(np * sizeof *ones), *neg = malloc(np * sizeof *neg);
  for (size_t i = 0; i < np; i++) ones[i] = 1, neg[i] = i == 5 ? -1.0f : 1.0f;
  enum { GOOD, NEG_V, RANK2 }; /* the tensors written with each case */
  const struct {
    const char *from, *to;
    int tensors;
    const char *msg;
  } cases[] = {
      /* counters */
      {"\"adam_steps\":\"3\"", "\"adam_steps\":\"9223372036854775807\"", GOOD, "\"adam_steps\""},
      {"\"step\":\"3\",\"adam_steps\":\"3\"",
       "\"step\":\"9223372036854775807\",\"adam_steps\":\"9223372036854775807\"", GOOD, "\"step\""},
      {"\"step\":\"3\",\"adam_steps\":\"3\"",
       "\"step\":\"9007199254740993\",\"adam_steps\":\"9007199254740993\"", GOOD, "2^53"},
      {"\"step\":\"3\"", "\"step\":\"-1\"", GOOD, "\"step\""},
      {"\"step\":\"3\"", "\"step\":\"4\"", GOOD, "\"adam_steps\" 3 differs from \"step\" 4"},
      {"\"cursor\":\"30\"", "\"cursor\":\"101\"", GOOD, "\"cursor\" 101 is beyond the data's 100 rows"},
      {"\"epoch\":\"0\"", "\"epoch\":\"9007199254740993\"", GOOD, "\"epoch\""},
      {"\"epoch\":\"0\",\"cursor\":\"30\"", "\"epoch\":\"1\",\"cursor\":\"0\"", GOOD, "\"cursor\" is 0"},
      {"\"epoch_rng_seed\":\"5\"", "\"epoch_rng_seed\":\"6\"", GOOD, "\"epoch_rng\""},
      {"\"epoch_rng_stream\":\"1\"", "\"epoch_rng_stream\":\"2\"", GOOD, "\"epoch_rng\""},
      {"\"epoch_rng\":\"0\"", "\"epoch_rng\":\"4\"", GOOD, "\"epoch_rng\" (offset 4"},
      {"\"epoch\":\"0\"", "\"epoch\":\"1\"", GOOD, "not where epoch 1 of 100 rows starts"},
      {data_good, data_to[0], GOOD, data_msg[0]},
      {data_good, data_to[1], GOOD, data_msg[1]},
      {data_good, data_to[2], GOOD, data_msg[2]},
      {"\"cursor\":\"30\"", "\"cursor\":\"0\"", GOOD, "before the first epoch's order is drawn"},
      /* the run's settings */
      {"\"run\":", "\"nur\":", GOOD, "no \"run\""},
      {"\"batch\":10", "\"batch\":0", GOOD, "\"run.batch\""},
      {"\"batch\":10", "\"batch\":\"10\"", GOOD, "\"run.batch\""},
      {"\"batch\":10", "\"batch\":10.5", GOOD, "\"run.batch\""},
      {"\"projections\":1", "\"projections\":-1", GOOD, "\"run.projections\""},
      {"\"rademacher\":false", "\"rademacher\":0", GOOD, "\"run.rademacher\""},
      {"\"seed\":\"5\"", "\"seed\":\"-5\"", GOOD, "\"run.seed\""},
      {"\"objective\":\"ncsn\"", "\"objective\":\"nscn\"", GOOD, "\"run.objective\""},
      {"\"sigmas\":[6,", "\"sigmas\":[-6,", GOOD, "\"run.sigmas\"[0]"},
      {"\"sigmas\":[6,", "\"sigmas\":[1e39,", GOOD, "\"run.sigmas\"[0]"},
      {"\"sigma\":0", "\"sigma\":-1", GOOD, "\"run.sigma\""},
      {"\"lr\":", "\"lr\":-", GOOD, "\"run.lr\""},
      {"\"beta2\":", "\"beta2\":1", GOOD, "\"run.beta2\""},
      {"\"ema\":", "\"ema\":\"", GOOD, "byte"},
      {"\"rows\":100", "\"rows\":0", GOOD, "\"run.rows\""},
      {"\"labels\":8", "\"labels\":-8", GOOD, "\"run.labels\""},
      {"\"fingerprint\":\"", "\"fingerprint\":\"g", GOOD, "\"run.fingerprint\""},
      /* tensors */
      {"\"step\"", "\"step\"", NEG_V, "\"adam.v\" element 5 is -1"},
      {"\"step\"", "\"step\"", RANK2, "\"params\" has"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const char *meta[2] = {"scorekit_state",
                           replaced(b1, sizeof b1, good, cases[k].from, cases[k].to)};
    if (meta[1] != b1) fprintf(stderr, "case %zu: no \"%s\" in %s\n", k, cases[k].from, good);
    CHECK(meta[1] == b1);
    const int rank2 = cases[k].tensors == RANK2;
    sk_named_tensor ts[4] = {{"params", 1 + rank2, {rank2 ? 1 : (int64_t)np, (int64_t)np}, ones},
                             {"ema", 1, {(int64_t)np}, ones},
                             {"adam.m", 1, {(int64_t)np}, ones},
                             {"adam.v", 1, {(int64_t)np}, cases[k].tensors == NEG_V ? neg : ones}};
    CHECK_OK(sk_safetensors_save(path, ts, 4, meta, 1));
    sk_status s = sk_trainer_resume(t, dir);
    if (s == SK_OK || !strstr(sk_last_error(), cases[k].msg))
      fprintf(stderr, "case %zu (%s): %s: %s\n", k, cases[k].to, sk_status_str(s),
              s == SK_OK ? "accepted" : sk_last_error());
    CHECK(s == SK_ERR_FORMAT || s == SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), cases[k].msg));
    CHECK(strstr(sk_last_error(), path));
    CHECK(!strchr(sk_last_error(), '\n'));
    CHECK_EQ_INT(sk_trainer_steps(t), 3);
    CHECK(sk_model_params(m)[0] != 1.0f); /* nothing restored */
  }
  CHECK_OK(sk_trainer_step(t, NULL, NULL)); /* the trainer goes on */
  CHECK_EQ_INT(sk_trainer_steps(t), 4);
  free(ones);
  free(neg);
  sk_trainer_free(t);
  sk_model_free(m);
  sk_dataset_free(ds);
  CHECK(remove_dir(dir));
}

/* A resume continues only the run that saved the state: a trainer that
 * differs in any setting that shapes the run is refused, naming it, and
 * nothing is restored. */
TEST(resume_refuses_another_run) {
  char dir[] = "/tmp/sk_other_XXXXXX";
  CHECK(mkdtemp(dir));
  sk_model_info info = {.objective = SK_OBJ_NCSN, .n_sigmas = 6};
  memcpy(info.sigmas, ladder, sizeof ladder);
  const sk_model_config mc0 = {SK_MODEL_NCMLP, 2, 8, 1, 0, SK_ACT_SOFTPLUS};
  const sk_train_config tc0 = {SK_OBJ_NCSN, 10, 1, 0, 0.1f, 6, ladder, sk_adam_config_default(), 5};
  static const float ladder5[5] = {6.0f, 3.0f, 1.5f, 0.75f, 0.4f};
  static const float ladder6[6] = {6.0f, 3.0f, 1.5f, 0.7f, 0.4f, 0.2f};
  enum { SAME, LR, BATCH, SEED, ROWS, VALUES, LADDER, LEVEL, CLIP, EMA, BETA1, HIDDEN, ACT, OBJ, N_CASES };
  static const struct {
    const char *setting, *msg;
  } want[N_CASES] = {
      {NULL, NULL},
      {"lr", "lr 0.0002 differs from the run's 0.001"},
      {"batch", "batch 20 differs from the run's 10"},
      {"seed", "seed 6 differs from the run's 5"},
      {"rows", "rows 120 differs from the run's 100"},
      {"data", "data fingerprint "},
      {"sigmas", "sigmas 5 levels 6 ... 0.4 differs from the run's 6 levels 6 ... 0.2"},
      {"sigmas", "sigmas (level 4) 0.699999988 differs from the run's 0.75"},
      {"clip", "clip 1 differs from the run's 0"},
      {"ema", "ema 0.99 differs from the run's 0.999"},
      {"beta1", "beta1 0.8 differs from the run's 0.9"},
      {"hidden", "hidden 16 differs from the run's 8"},
      {"activation", "activation tanh differs from the run's softplus"},
      {"objective", "objective dsm differs from the run's ncsn"},
  };
  for (int k = -1; k < N_CASES; k++) { /* -1: the run that saves */
    sk_model_config mc = mc0;
    sk_train_config tc = tc0;
    int rows = 100;
    if (k == LR) tc.adam.lr = 2e-4f;
    if (k == BATCH) tc.batch = 20;
    if (k == SEED) tc.seed = 6;
    if (k == ROWS) rows = 120;
    if (k == LADDER) tc.n_sigmas = 5, tc.sigmas = ladder5;
    if (k == LEVEL) tc.sigmas = ladder6;
    if (k == CLIP) tc.adam.clip_norm = 1;
    if (k == EMA) tc.adam.ema_rate = 0.99f;
    if (k == BETA1) tc.adam.beta1 = 0.8f;
    if (k == HIDDEN) mc.hidden = 16;
    if (k == ACT) mc.act = SK_ACT_TANH;
    if (k == OBJ) tc.objective = SK_OBJ_DSM;
    sk_dataset *ds = mog8_data(rows);
    if (k == VALUES) ((float *)sk_dataset_x(ds))[7] += 1e-3f;
    sk_model *m = sk_model_new(&mc);
    sk_model_init(m, 3);
    sk_trainer *t;
    CHECK_OK(sk_trainer_new(m, ds, &tc, &t));
    if (k < 0) {
      for (int i = 0; i < 3; i++) CHECK_OK(sk_trainer_step(t, NULL, NULL));
      CHECK_OK(sk_trainer_save(t, dir, &info));
    } else {
      sk_status s = sk_trainer_resume(t, dir);
      sk_run_mismatch mm;
      const int refused = sk_trainer_resume_mismatch(t, &mm);
      if (k == SAME) {
        CHECK_OK(s);
        CHECK_EQ_INT(refused, 0);
        CHECK_EQ_INT(sk_trainer_steps(t), 3);
      } else {
        if (s != SK_ERR_INVALID || !strstr(sk_last_error(), want[k].msg))
          fprintf(stderr, "case %d: %s: %s\n", k, sk_status_str(s), sk_last_error());
        CHECK_EQ_INT(s, SK_ERR_INVALID);
        CHECK(strstr(sk_last_error(), want[k].msg));
        CHECK(strstr(sk_last_error(), dir));
        CHECK_EQ_INT(refused, 1);
        CHECK(strcmp(mm.setting, want[k].setting) == 0);
        CHECK_EQ_INT(sk_trainer_steps(t), 0); /* nothing restored */
      }
    }
    sk_trainer_free(t);
    sk_model_free(m);
    sk_dataset_free(ds);
  }
  CHECK(remove_dir(dir));
}

/* sk_trainer_new_limited refuses what would not fit before allocating it:
 * the message gives the estimate and its parts. */
TEST(memory_limit_refuses_before_allocating) {
  sk_model_config mc = {SK_MODEL_MLP, 2, 512, 3, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 1);
  sk_dataset *ds = mog8_data(100);
  sk_train_config tc = {SK_OBJ_DSM, 64, 1, 0, 0.1f, 0, NULL, sk_adam_config_default(), 5};
  const size_t np = sk_model_num_params(m);
  char params[32];
  snprintf(params, sizeof params, "%zu parameters", np);
  sk_trainer *t = NULL;
  /* Under the weights and moments alone (16 B a parameter), and above them
   * but under the graph's arena (which holds a copy of each gradient). */
  const size_t limits[2] = {np * 8, np * 16 + 4096};
  for (int k = 0; k < 2; k++) {
    const uint64_t before = sk_debug_alloc_count();
    sk_status s = sk_trainer_new_limited(m, ds, &tc, limits[k], &t);
    const uint64_t allocations = sk_debug_alloc_count() - before;
    if (s != SK_ERR_NOMEM) fprintf(stderr, "limit %zu: %s: %s\n", limits[k], sk_status_str(s), sk_last_error());
    CHECK_EQ_INT(s, SK_ERR_NOMEM);
    CHECK(t == NULL);
    printf("  %s\n", sk_last_error());
    CHECK(strstr(sk_last_error(), "train: needs about "));
    CHECK(strstr(sk_last_error(), "over the limit of "));
    CHECK(strstr(sk_last_error(), params));
    CHECK(strstr(sk_last_error(), "for the loss graph"));
    /* The graph was built and planned, its arena and Adam's state never
     * allocated: the arena would be one allocation, the moments three. */
    sk_trainer *u = NULL;
    const uint64_t b2 = sk_debug_alloc_count();
    CHECK_OK(sk_trainer_new(m, ds, &tc, &u));
    const uint64_t full = sk_debug_alloc_count() - b2;
    sk_trainer_free(u);
    CHECK(allocations + 4 <= full);
  }
  CHECK_OK(sk_trainer_new_limited(m, ds, &tc, (size_t)1 << 30, &t));
  CHECK_OK(sk_trainer_step(t, NULL, NULL));
  sk_trainer_free(t);
  sk_dataset_free(ds);
  sk_model_free(m);
}

/* Adam's step count at the end of its range fails the step instead of
 * overflowing (UBSan would abort). */
TEST(adam_step_count_at_its_limit) {
  float p[4] = {1, 2, 3, 4}, g[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  sk_adam_config c = sk_adam_config_default();
  sk_adam *a = sk_adam_new(&c, 4, p);
  CHECK(a);
  for (int k = 0; k < 2; k++) {
    sk_adam_set_steps(a, k == 0 ? INT64_MAX : -1);
    sk_status s = sk_adam_step(a, p, g, NULL);
    if (s == SK_OK) sk_adam_free(a);
    CHECK_EQ_INT(s, SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), "step count"));
    sk_adam_part part = {g, 0, 4, 1};
    s = sk_adam_step_parts(a, p, 1, &part, NULL);
    if (s == SK_OK) sk_adam_free(a);
    CHECK_EQ_INT(s, SK_ERR_INVALID);
  }
  CHECK(p[0] == 1 && p[3] == 4); /* nothing changed */
  sk_adam_free(a);
}

/* Runs `call` with the k-th allocation failing, for k = 0, 1, ... until it
 * succeeds: each failure must be SK_ERR_NOMEM with a message saying what ran
 * out (ASan reports any leak). Returns the number of failures seen. */
#define EVERY_ALLOCATION_FAILS(call, cleanup)                                       \
  do {                                                                              \
    int k_ = 0;                                                                     \
    for (;; k_++) {                                                                 \
      sk_set_error(SK_OK, "%s", "");                                                \
      sk_debug_fail_alloc_after(k_);                                                \
      sk_status s_ = (call);                                                        \
      sk_debug_fail_alloc_after(-1);                                                \
      if (s_ == SK_OK) break;                                                       \
      if (s_ != SK_ERR_NOMEM || !strstr(sk_last_error(), "out of memory"))          \
        fprintf(stderr, "%s, allocation %d: %s: %s\n", #call, k_, sk_status_str(s_), \
                sk_last_error());                                                   \
      CHECK_EQ_INT(s_, SK_ERR_NOMEM);                                               \
      CHECK(strstr(sk_last_error(), "out of memory"));                              \
      CHECK(k_ < 10000);                                                            \
    }                                                                               \
    cleanup;                                                                        \
    CHECK(k_ >= 1);                                                                 \
  } while (0)

TEST(allocation_failures_are_nomem) {
  char dir[] = "/tmp/sk_nomem_XXXXXX";
  CHECK(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 8, 2, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 1);
  sk_dataset *ds = mog8_data(100);
  sk_model_info info = {.objective = SK_OBJ_NCSN, .n_sigmas = 6};
  memcpy(info.sigmas, ladder, sizeof ladder);
  for (int o = 0; o < 3; o++) {
    const sk_objective obj[3] = {SK_OBJ_NCSN, SK_OBJ_ESM, SK_OBJ_SSM_VR};
    sk_train_config tc = {obj[o], 16, 2, 0, 0.1f, 6, ladder, sk_adam_config_default(), 5};
    sk_trainer *t = NULL;
    EVERY_ALLOCATION_FAILS(sk_trainer_new(m, ds, &tc, &t), sk_trainer_free(t));
  }
  sk_score_fn *f = NULL, *g = NULL;
  EVERY_ALLOCATION_FAILS(sk_score_fn_model(m, 64, &f), (void)0);
  sk_gmm *law = sk_gmm_builtin("mog8");
  EVERY_ALLOCATION_FAILS(sk_score_fn_gmm(law, &g), sk_score_fn_free(g));
  sk_score_fn_free(f);
  CHECK_OK(sk_model_save(path, m, sk_model_params(m), &info));
  sk_model *back = NULL;
  EVERY_ALLOCATION_FAILS(sk_model_load(path, 1, &back, NULL), sk_model_free(back));
  sk_gmm_free(law);
  sk_dataset_free(ds);
  sk_model_free(m);
  CHECK(remove_dir(dir));
}

TEST(model_file_round_trip) {
  char dir[] = "/tmp/sk_model_XXXXXX";
  CHECK(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  sk_model_config mc = {SK_MODEL_CLASSIFIER, 3, 8, 3, 5, SK_ACT_SILU};
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 9);
  sk_model_info info = {.objective = SK_OBJ_CLASSIFIER, .n_sigmas = 2, .sigmas = {2, 0.5f},
                        .steps = 77, .seed = 123456789012345ULL, .data = "x \"quoted\".csv"};
  float *ema = malloc(sk_model_num_params(m) * sizeof *ema);
  for (size_t i = 0; i < sk_model_num_params(m); i++) ema[i] = (float)i;
  CHECK_OK(sk_model_save(path, m, ema, &info));
  sk_model *a, *b;
  sk_model_info got;
  CHECK_OK(sk_model_load(path, 0, &a, &got));
  CHECK_OK(sk_model_load(path, 1, &b, NULL));
  CHECK(memcmp(sk_model_get_config(a), &mc, sizeof mc) == 0);
  CHECK(memcmp(sk_model_params(a), sk_model_params(m), sk_model_num_params(m) * 4) == 0);
  CHECK(memcmp(sk_model_params(b), ema, sk_model_num_params(m) * 4) == 0);
  CHECK(got.objective == SK_OBJ_CLASSIFIER && got.n_sigmas == 2 && got.sigmas[1] == 0.5f);
  CHECK(got.steps == 77 && got.seed == 123456789012345ULL && strcmp(got.data, info.data) == 0);
  CHECK(strcmp(sk_model_tensor_name(a, 0), "clf.0.weight") == 0);
  sk_model_free(a);
  sk_model_free(b);
  CHECK_OK(sk_model_save(path, m, NULL, &info));
  CHECK(sk_model_load(path, 1, &a, NULL) == SK_ERR_FORMAT); /* no EMA saved */
  CHECK(strstr(sk_last_error(), "ema.clf.0.weight"));
  free(ema);
  sk_model_free(m);
  CHECK(remove_dir(dir));
}

/* Writes model m (its weights also as the EMA) with `meta` as its metadata. */
static sk_status save_with_meta(const char *path, sk_model *m, const char *meta) {
  sk_named_tensor ts[2 * 16];
  char names[16][64];
  const int nt = sk_model_num_tensors(m);
  for (int i = 0; i < nt && i < 16; i++)
    for (int pass = 0; pass < 2; pass++) {
      sk_named_tensor *x = &ts[2 * i + pass];
      snprintf(names[i], sizeof names[i], "ema.%s", sk_model_tensor_name(m, i));
      x->name = pass ? names[i] : sk_model_tensor_name(m, i);
      x->ndim = sk_model_tensor_ndim(m, i);
      for (int k = 0; k < x->ndim; k++) x->shape[k] = sk_model_tensor_shape(m, i)[k];
      x->data = sk_model_params(m) + sk_model_tensor_offset(m, i);
    }
  const char *kv[2] = {"scorekit", meta};
  return sk_safetensors_save(path, ts, 2 * nt, kv, 1);
}

/* A model file's metadata is checked field by field when it is read: each
 * value out of its type or range (a file edited by hand, or by another
 * program) is refused, naming the file and the field, and no model is
 * returned. */
TEST(model_file_refuses_out_of_range_metadata) {
  char dir[] = "/tmp/sk_meta_XXXXXX";
  CHECK(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  sk_dataset *ds = mog8_data(100);
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 8, 1, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 3);
  sk_train_config tc = {SK_OBJ_NCSN, 10, 1, 0, 0.1f, 6, ladder, sk_adam_config_default(), 5};
  sk_model_info info = {.objective = SK_OBJ_NCSN, .n_sigmas = 6, .seed = 5, .data = "mog8"};
  memcpy(info.sigmas, ladder, sizeof ladder);
  sk_trainer *t;
  CHECK_OK(sk_trainer_new(m, ds, &tc, &t));
  for (int i = 0; i < 12; i++) CHECK_OK(sk_trainer_step(t, NULL, NULL));
  CHECK_OK(sk_trainer_save(t, dir, &info));
  sk_trainer_free(t);
  sk_safetensors *sf;
  CHECK_OK(sk_safetensors_load(path, &sf));
  char good[2048], b1[2200];
  snprintf(good, sizeof good, "%s", sk_safetensors_meta(sf, "scorekit"));
  sk_safetensors_free(sf);
  printf("  %s\n", good);
  static const struct {
    const char *from, *to, *field, *msg;
  } cases[] = {
      {"\"steps\":12", "\"steps\":-1", "\"steps\" is -1", "0..2^53"},
      {"\"steps\":12", "\"steps\":9007199254740993", "\"steps\" is 9007199254740992", "0..2^53"},
      {"\"steps\":12", "\"steps\":1.5", "\"steps\" is 1.5", "an integer"},
      {"\"steps\":12", "\"steps\":\"12\"", "\"steps\" is \"12\"", "an integer"},
      {"\"sigma\":0", "\"sigma\":-0.5", "\"sigma\" is -0.5", ">= 0"},
      {"\"sigma\":0", "\"sigma\":1e39", "\"sigma\" is 1e+39", ">= 0"},
      {"\"sigmas\":[6,", "\"sigmas\":[-6,", "sigmas[0]", "positive"},
      {"\"sigmas\":[6,", "\"sigmas\":[0.1,", "sigmas[1] 3 is not below sigmas[0] 0.1", "decrease"},
      {"\"sigmas\":[", "\"sigmas\":{\"a\":1},\"x\":[", "\"sigmas\" is an object", "array"},
      {"\"objective\":\"ncsn\"", "\"objective\":\"nscn\"", "\"objective\" is \"nscn\"", "vesde"},
      {"\"objective\":\"ncsn\"", "\"objective\":3", "\"objective\" is 3", "name"},
      {"\"version\":1", "\"version\":2", "\"version\" is 2", "newer"},
      {"\"format\":\"scorekit-model\"", "\"format\":\"other\"", "\"format\" is \"other\"", "scorekit-model"},
      {"\"classes\":0", "\"classes\":-3", "\"classes\" is -3", "conditional ncmlp's number"},
      {"\"classes\":0", "\"classes\":65537", "\"classes\" is 65537", "1..65536"},
      {"\"kind\":\"ncmlp\",\"dim\":2,\"hidden\":8,\"depth\":1,\"classes\":0",
       "\"kind\":\"mlp\",\"dim\":2,\"hidden\":8,\"depth\":1,\"classes\":4", "\"classes\" is 4",
       "only a classifier or a conditional model"},
      {"\"seed\":5", "\"seed\":\"5\"", "\"seed\" is \"5\"", "64-bit integer"},
      {"\"data\":\"mog8\"", "\"data\":7", "\"data\" is 7", "string"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const char *meta = replaced(b1, sizeof b1, good, cases[k].from, cases[k].to);
    if (meta != b1) fprintf(stderr, "case %zu: no %s in %s\n", k, cases[k].from, good);
    CHECK(meta == b1);
    CHECK_OK(save_with_meta(path, m, meta));
    sk_model *back = (sk_model *)1;
    sk_model_info got;
    const sk_status st = sk_model_load(path, 1, &back, &got);
    if (st != SK_ERR_FORMAT || !strstr(sk_last_error(), cases[k].field) ||
        !strstr(sk_last_error(), cases[k].msg))
      fprintf(stderr, "case %zu (%s): %s: %s\n", k, cases[k].to, sk_status_str(st),
              st == SK_OK ? "accepted" : sk_last_error());
    CHECK_EQ_INT(st, SK_ERR_FORMAT);
    CHECK(back == NULL);
    CHECK(strstr(sk_last_error(), path) && strstr(sk_last_error(), cases[k].field) &&
          strstr(sk_last_error(), cases[k].msg));
    CHECK(!strchr(sk_last_error(), '\n'));
  }
  /* The file as written loads, with every field. */
  CHECK_OK(save_with_meta(path, m, good));
  sk_model *back = NULL;
  sk_model_info got;
  CHECK_OK(sk_model_load(path, 1, &back, &got));
  CHECK(got.steps == 12 && got.seed == 5 && got.n_sigmas == 6 && got.objective == SK_OBJ_NCSN &&
        strcmp(got.data, "mog8") == 0);
  sk_model_free(back);
  sk_model_free(m);
  sk_dataset_free(ds);
  CHECK(remove_dir(dir));
}

/* sk_model_save checks every field of info it writes before writing
 * anything: a ladder read past its array, an unterminated name or a value
 * sk_model_load refuses is SK_ERR_INVALID naming the field, on one line, and
 * no file appears. */
TEST(model_save_refuses_bad_info) {
  char dir[] = "/tmp/sk_info_XXXXXX";
  CHECK(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 8, 1, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  CHECK(m);
  const sk_model_info good = {.objective = SK_OBJ_NCSN, .n_sigmas = 3, .sigmas = {2, 1, 0.5f},
                              .sigma = 0.1f, .steps = 4, .data = "mog8"};
  enum { N_CASES = 13 };
  static const char *const field[N_CASES] = {
      "info.objective", "info.objective", "info.n_sigmas", "info.n_sigmas",
      "info.sigmas[1]", "info.sigmas[2]", "info.sigma",    "info.steps",
      "info.data",      "info.data_scale", "info.image_shape", "info.image_shape",
      "info.data"};
  for (int k = 0; k < N_CASES; k++) {
    sk_model_info info = good;
    switch (k) {
    case 0: info.objective = (sk_objective)77; break;
    case 1: info.objective = (sk_objective)-1; break;
    case 2: info.n_sigmas = -5; break;
    case 3: info.n_sigmas = SK_MAX_LEVELS + 1; break;
    case 4: info.sigmas[1] = 3; break; /* not below the level before */
    case 5: info.sigmas[2] = NAN; break;
    case 6: info.sigma = -1; break;
    case 7: info.steps = -1; break;
    case 8: memset(info.data, 'a', sizeof info.data); break; /* no terminator */
    case 9: info.data_scale = INFINITY; break;
    case 10: info.image_shape[0] = 1, info.image_shape[1] = 3, info.image_shape[2] = 1; break;
    case 11: info.image_shape[1] = 2; break; /* a shape that is not all zeros */
    default: strcpy(info.data, "a\xff.csv"); break; /* not UTF-8: JSON cannot hold it */
    }
    const sk_status st = sk_model_save(path, m, NULL, &info);
    if (st != SK_ERR_INVALID || !strstr(sk_last_error(), field[k]))
      fprintf(stderr, "case %d: %s: %s\n", k, sk_status_str(st), sk_last_error());
    CHECK_EQ_INT(st, SK_ERR_INVALID);
    CHECK(strstr(sk_last_error(), field[k]) && !strchr(sk_last_error(), '\n'));
    CHECK(access(path, F_OK) != 0); /* nothing written */
  }
  CHECK_EQ_INT(sk_model_save(path, NULL, NULL, &good), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "NULL model"));
  CHECK_EQ_INT(sk_model_save(NULL, m, NULL, &good), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "NULL path"));
  CHECK(access(path, F_OK) != 0);
  /* The limits themselves are fine: a full ladder, 2^53 steps, an image. */
  sk_model_info edge = good;
  edge.n_sigmas = SK_MAX_LEVELS;
  for (int i = 0; i < SK_MAX_LEVELS; i++) edge.sigmas[i] = 2000.0f - (float)i;
  edge.steps = INT64_C(1) << 53;
  edge.image_shape[0] = 1, edge.image_shape[1] = 1, edge.image_shape[2] = 2;
  CHECK_OK(sk_model_save(path, m, NULL, &edge));
  sk_model *back = NULL;
  sk_model_info got;
  CHECK_OK(sk_model_load(path, 0, &back, &got));
  CHECK(got.n_sigmas == SK_MAX_LEVELS && got.steps == edge.steps && got.image_shape[2] == 2);
  sk_model_free(back);
  sk_model_free(m);
  CHECK(remove_dir(dir));
}

/* sk_trainer_save with a NULL info writes the model file with the config
 * alone (as sk_model_save does) and a state that resumes; a NULL directory
 * is refused by name; a bad info is refused before the state is written. */
TEST(trainer_save_null_info_and_dir) {
  char dir[] = "/tmp/sk_tsave_XXXXXX";
  CHECK(mkdtemp(dir));
  sk_dataset *ds = mog8_data(100);
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 8, 1, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  sk_model_init(m, 3);
  sk_train_config tc = {SK_OBJ_NCSN, 10, 1, 0, 0.1f, 6, ladder, sk_adam_config_default(), 5};
  sk_trainer *t = NULL;
  CHECK_OK(sk_trainer_new(m, ds, &tc, &t));
  CHECK_OK(sk_trainer_step(t, NULL, NULL));
  sk_model_info bad = {.objective = SK_OBJ_NCSN, .n_sigmas = -5};
  CHECK_EQ_INT(sk_trainer_save(t, dir, &bad), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "info.n_sigmas"));
  char path[256];
  snprintf(path, sizeof path, "%s/state.safetensors", dir);
  CHECK(access(path, F_OK) != 0); /* refused before the state */
  CHECK_EQ_INT(sk_trainer_save(t, NULL, &bad), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "NULL directory") && !strstr(sk_last_error(), "(null)"));
  CHECK_EQ_INT(sk_trainer_resume(t, NULL), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "NULL directory") && !strstr(sk_last_error(), "(null)"));
  CHECK_OK(sk_trainer_save(t, dir, NULL));
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  sk_model *back = NULL;
  sk_model_info got;
  CHECK_OK(sk_model_load(path, 1, &back, &got));
  CHECK(got.objective == SK_OBJ_COUNT && got.n_sigmas == 0 && got.steps == 0); /* no info */
  CHECK(memcmp(sk_model_params(back), sk_trainer_ema(t), sk_model_num_params(m) * 4) == 0);
  sk_model_free(back);
  sk_model *m2 = sk_model_new(&mc);
  sk_trainer *t2 = NULL;
  CHECK_OK(sk_trainer_new(m2, ds, &tc, &t2));
  CHECK_OK(sk_trainer_resume(t2, dir));
  CHECK_EQ_INT(sk_trainer_steps(t2), 1);
  sk_trainer_free(t2);
  sk_model_free(m2);
  sk_trainer_free(t);
  sk_model_free(m);
  sk_dataset_free(ds);
  CHECK(remove_dir(dir));
}

/* A trainer owns the data stream from its creation: on a data set an
 * earlier trainer drew from (mid-epoch), a second trainer takes the steps of
 * a fresh run on fresh data, bit for bit, and its checkpoint resumes. */
TEST(second_trainer_on_used_data_is_a_fresh_run) {
  char dir[] = "/tmp/sk_again_XXXXXX";
  CHECK(mkdtemp(dir));
  enum { STEPS = 5 };
  sk_dataset *used = mog8_data(100), *fresh = mog8_data(100);
  sk_model_config mc = {SK_MODEL_NCMLP, 2, 8, 1, 0, SK_ACT_SOFTPLUS};
  sk_train_config tc = {SK_OBJ_NCSN, 30, 1, 0, 0.1f, 6, ladder, sk_adam_config_default(), 5};
  sk_model *ma = sk_model_new(&mc), *mb = sk_model_new(&mc), *mc2 = sk_model_new(&mc);
  sk_trainer *a = NULL, *b = NULL, *c = NULL;
  sk_model_init(ma, 1);
  CHECK_OK(sk_trainer_new(ma, used, &tc, &a));
  for (int i = 0; i < 7; i++) CHECK_OK(sk_trainer_step(a, NULL, NULL)); /* 210 rows: mid-epoch */
  sk_trainer_free(a);
  sk_model_init(mb, 2);
  sk_model_init(mc2, 2);
  CHECK_OK(sk_trainer_new(mb, used, &tc, &b));
  CHECK_OK(sk_trainer_new(mc2, fresh, &tc, &c));
  for (int i = 0; i < STEPS; i++) {
    float lb, lc;
    CHECK_OK(sk_trainer_step(b, &lb, NULL));
    CHECK_OK(sk_trainer_step(c, &lc, NULL));
    CHECK(memcmp(&lb, &lc, sizeof lb) == 0);
  }
  CHECK(memcmp(sk_model_params(mb), sk_model_params(mc2), sk_model_num_params(mb) * 4) == 0);
  sk_model_info info = {.objective = SK_OBJ_NCSN, .n_sigmas = 6, .seed = 5, .data = "mog8"};
  memcpy(info.sigmas, ladder, sizeof ladder);
  CHECK_OK(sk_trainer_save(b, dir, &info));
  /* Resumed on the same data set (another trainer again), it continues as
   * the run that never stopped. */
  sk_model *md = sk_model_new(&mc);
  sk_trainer *d = NULL;
  CHECK_OK(sk_trainer_new(md, fresh, &tc, &d)); /* c's data: set back to the start */
  const sk_status rs = sk_trainer_resume(d, dir);
  if (rs != SK_OK) fprintf(stderr, "resume: %s\n", sk_last_error());
  CHECK_OK(rs);
  for (int i = 0; i < STEPS; i++) {
    float lb, ld;
    CHECK_OK(sk_trainer_step(b, &lb, NULL));
    CHECK_OK(sk_trainer_step(d, &ld, NULL));
    CHECK(memcmp(&lb, &ld, sizeof lb) == 0);
  }
  CHECK(memcmp(sk_model_params(mb), sk_model_params(md), sk_model_num_params(mb) * 4) == 0);
  sk_trainer_free(b);
  sk_trainer_free(c);
  sk_trainer_free(d);
  sk_model_free(ma);
  sk_model_free(mb);
  sk_model_free(mc2);
  sk_model_free(md);
  sk_dataset_free(used);
  sk_dataset_free(fresh);
  CHECK(remove_dir(dir));
}

/* Adam refuses a step with no parts or NULL arrays without counting it, and
 * NULL arguments to sk_adam_new and sk_adam_step. */
TEST(adam_refuses_empty_and_null_arguments) {
  float p[4] = {1, 2, 3, 4}, g[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  sk_adam_config c = sk_adam_config_default();
  CHECK(!sk_adam_new(NULL, 4, p));
  CHECK(strstr(sk_last_error(), "NULL config"));
  CHECK(!sk_adam_new(&c, 3, NULL));
  CHECK(strstr(sk_last_error(), "NULL params"));
  sk_adam *a = sk_adam_new(&c, 4, p);
  CHECK(a);
  const sk_adam_part part = {g, 0, 4, 1};
  CHECK_EQ_INT(sk_adam_step_parts(a, p, -1, NULL, NULL), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "-1 gradient parts"));
  CHECK_EQ_INT(sk_adam_step_parts(a, p, 0, &part, NULL), SK_ERR_INVALID);
  CHECK_EQ_INT(sk_adam_step_parts(a, p, 1, NULL, NULL), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "NULL parts"));
  CHECK_EQ_INT(sk_adam_step_parts(a, NULL, 1, &part, NULL), SK_ERR_INVALID);
  const sk_adam_part no_grad = {NULL, 0, 4, 1};
  CHECK_EQ_INT(sk_adam_step_parts(a, p, 1, &no_grad, NULL), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "NULL gradient"));
  CHECK_EQ_INT(sk_adam_step(a, NULL, g, NULL), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "NULL params"));
  CHECK_EQ_INT(sk_adam_step(a, p, NULL, NULL), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "NULL grads"));
  CHECK_EQ_INT(sk_adam_steps(a), 0); /* none counted */
  CHECK(p[0] == 1 && p[3] == 4);
  CHECK_OK(sk_adam_step_parts(a, p, 1, &part, NULL));
  CHECK_EQ_INT(sk_adam_steps(a), 1);
  sk_adam_free(a);
}

/* The name parsers and the loss graph refuse NULL instead of reading it. */
TEST(parsers_and_loss_graph_refuse_null) {
  CHECK_EQ_INT(sk_activation_parse(NULL), SK_ACT_COUNT);
  CHECK_EQ_INT(sk_objective_parse(NULL), SK_OBJ_COUNT);
  sk_loss_graph lg;
  CHECK_EQ_INT(sk_loss_graph_new(NULL, SK_OBJ_DSM, 8, 1, &lg), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "NULL model"));
  const sk_model_config mc = {SK_MODEL_MLP, 2, 8, 1, 0, SK_ACT_SOFTPLUS};
  sk_model *m = sk_model_new(&mc);
  CHECK(m != NULL);
  CHECK_EQ_INT(sk_loss_graph_new(m, SK_OBJ_DSM, 8, 1, NULL), SK_ERR_INVALID);
  CHECK(strstr(sk_last_error(), "NULL output"));
  sk_model_free(m);
}

TEST_MAIN(TEST_ENTRY(esm_learns), TEST_ENTRY(ssm_learns), TEST_ENTRY(ssm_vr_learns),
          TEST_ENTRY(dsm_learns), TEST_ENTRY(ncsn_learns), TEST_ENTRY(vesde_learns),
          TEST_ENTRY(resume_gives_same_bits), TEST_ENTRY(resume_gives_same_bits_vesde),
          TEST_ENTRY(vesde_config_and_resume_checks), TEST_ENTRY(vesde_same_bits_on_1_and_2_threads),
          TEST_ENTRY(resume_rejects_bad_state), TEST_ENTRY(resume_validates_every_field),
          TEST_ENTRY(resume_refuses_another_run), TEST_ENTRY(memory_limit_refuses_before_allocating),
          TEST_ENTRY(adam_step_count_at_its_limit), TEST_ENTRY(allocation_failures_are_nomem),
          TEST_ENTRY(model_file_round_trip), TEST_ENTRY(model_file_refuses_out_of_range_metadata),
          TEST_ENTRY(model_save_refuses_bad_info), TEST_ENTRY(trainer_save_null_info_and_dir),
          TEST_ENTRY(second_trainer_on_used_data_is_a_fresh_run),
          TEST_ENTRY(adam_refuses_empty_and_null_arguments),
          TEST_ENTRY(parsers_and_loss_graph_refuse_null))
