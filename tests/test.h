/* A small test harness (libuv's test/task.h in spirit): assertion macros that
 * print file, line, both expressions and their values; a table of cases per
 * file; `test_x` runs them all, `test_x NAME` runs one. Ends with the line
 * "N passed, N failed". */
#ifndef SK_TEST_H
#define SK_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sk_test_failed_flag;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      sk_test_failed_flag = 1;                                             \
      return;                                                              \
    }                                                                      \
  } while (0)

#define CHECK_OK(expr)                                                         \
  do {                                                                         \
    sk_status st_ = (expr);                                                    \
    if (st_ != SK_OK) {                                                        \
      fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #expr, \
              sk_status_str(st_), sk_last_error());                            \
      sk_test_failed_flag = 1;                                                 \
      return;                                                                  \
    }                                                                          \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                         \
  do {                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                            \
    if (a_ != b_) {                                                                \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld vs %lld\n", __FILE__, __LINE__, \
              #a, #b, a_, b_);                                                     \
      sk_test_failed_flag = 1;                                                     \
      return;                                                                      \
    }                                                                              \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                       \
  do {                                                                              \
    double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                  \
    if (!(fabs(a_ - b_) <= t_)) {                                                   \
      fprintf(stderr, "%s:%d: |%s - %s| <= %s failed: %.9g vs %.9g (diff %.3g)\n",  \
              __FILE__, __LINE__, #a, #b, #tol, a_, b_, fabs(a_ - b_));             \
      sk_test_failed_flag = 1;                                                      \
      return;                                                                       \
    }                                                                               \
  } while (0)

typedef struct sk_test_case {
  const char *name;
  void (*fn)(void);
} sk_test_case;

#define TEST(name) static void test_##name(void)
#define TEST_ENTRY(name) {#name, test_##name}

static inline int sk_test_main(int argc, char **argv, const sk_test_case *cases, int n) {
  int passed = 0, failed = 0;
  if (argc > 1 && strcmp(argv[1], "--list") == 0) {
    for (int i = 0; i < n; i++) printf("%s\n", cases[i].name);
    return 0;
  }
  for (int i = 0; i < n; i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
    sk_test_failed_flag = 0;
    cases[i].fn();
    if (sk_test_failed_flag) {
      failed++;
      printf("FAIL %s\n", cases[i].name);
    } else {
      passed++;
      printf("ok   %s\n", cases[i].name);
    }
    fflush(stdout);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed || passed == 0 ? 1 : 0;
}

#define TEST_MAIN(...)                                                  \
  int main(int argc, char **argv) {                                     \
    static const sk_test_case cases_[] = {__VA_ARGS__};                 \
    return sk_test_main(argc, argv, cases_, (int)(sizeof cases_ / sizeof cases_[0])); \
  }

#endif
