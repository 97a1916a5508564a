/* The thread count of scorekit's OpenMP pool. */
#include <omp.h>

#include "core/internal.h"

static int sk_default_threads = 0;

void sk_set_num_threads(int n) {
  if (sk_default_threads == 0) sk_default_threads = omp_get_max_threads();
  omp_set_num_threads(n > 0 ? n : sk_default_threads);
}

int sk_get_num_threads(void) { return omp_get_max_threads(); }
