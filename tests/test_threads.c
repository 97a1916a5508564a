/* sk_set_num_threads as core.h documents it: one setting for the whole
 * library, made and seen from any thread, leaving the application's own
 * OpenMP setting alone. */
#include <omp.h>
#include <pthread.h>

#include "scorekit/graph.h"
#include "test.h"

static void *get_from_thread(void *out) {
  *(int *)out = sk_get_num_threads();
  return NULL;
}

static void *set_from_thread(void *n) {
  sk_set_num_threads(*(int *)n);
  return NULL;
}

TEST(setting_is_library_wide) {
  const int app = omp_get_max_threads();
  sk_set_num_threads(app + 2);
  CHECK_EQ_INT(sk_get_num_threads(), app + 2);
  int seen = 0;
  pthread_t th;
  CHECK(pthread_create(&th, NULL, get_from_thread, &seen) == 0);
  CHECK(pthread_join(th, NULL) == 0);
  CHECK_EQ_INT(seen, app + 2);
  int n = app + 3;
  CHECK(pthread_create(&th, NULL, set_from_thread, &n) == 0);
  CHECK(pthread_join(th, NULL) == 0);
  CHECK_EQ_INT(sk_get_num_threads(), app + 3);
  sk_set_num_threads(0);
}

TEST(application_setting_untouched) {
  const int app = omp_get_max_threads();
  sk_set_num_threads(app + 2);
  CHECK_EQ_INT(omp_get_max_threads(), app);
  sk_set_num_threads(0);
  CHECK_EQ_INT(omp_get_max_threads(), app);
}

TEST(default_follows_openmp) {
  const int app = omp_get_max_threads();
  sk_set_num_threads(-1);
  CHECK_EQ_INT(sk_get_num_threads(), app);
  omp_set_num_threads(app + 1);
  const int got = sk_get_num_threads();
  omp_set_num_threads(app);
  CHECK_EQ_INT(got, app + 1);
}

static void record_team(void *ctx, int t, int nt) {
  if (t == 0) *(int *)ctx = nt;
}

/* A graph's run starts its team with the library's setting, not the calling
 * thread's OpenMP one. */
TEST(graph_team_follows_setting) {
  static float w[64 * 64];
  sk_graph *g = sk_graph_new();
  sk_node x = sk_input(g, "x", 2, (int64_t[]){256, 64});
  sk_node y = sk_sum_all(g, sk_matmul(g, x, sk_param(g, "w", 2, (int64_t[]){64, 64}, w), 0, 1));
  CHECK_OK(sk_graph_compile(g, 1, &y));
  omp_set_num_threads(2);
  int team = 0;
  for (int n = 1; n <= 2; n++) {
    sk_set_num_threads(n);
    CHECK_OK(sk_graph_run_then(g, record_team, &team));
    CHECK_EQ_INT(team, n);
  }
  sk_set_num_threads(0);
  CHECK_EQ_INT(omp_get_max_threads(), 2);
  sk_graph_free(g);
}

/* sk_set_error, the other per-thread setting of core.h, given no format:
 * a message that says so, and the status back. */
TEST(set_error_without_format) {
  const char *volatile none = NULL; /* past the format check */
  CHECK(sk_set_error(SK_ERR_IO, none, 0) == SK_ERR_IO);
  CHECK(strstr(sk_last_error(), "sk_set_error: NULL format"));
}

TEST_MAIN(TEST_ENTRY(graph_team_follows_setting), TEST_ENTRY(setting_is_library_wide), TEST_ENTRY(application_setting_untouched),
          TEST_ENTRY(default_follows_openmp), TEST_ENTRY(set_error_without_format))
