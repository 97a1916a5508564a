/* The registry of kernel backends (backends.def): the one graphs compile for,
 * and a look-up by name. */
#include <string.h>

#include "graph/backend.h"

#define B(id) extern const sk__backend sk__backend_##id;
#include "kernels/backends.def"
#undef B

static const sk__backend *const backends[] = {
#define B(id) &sk__backend_##id,
#include "kernels/backends.def"
#undef B
};

const sk__backend *sk__backend_default(void) { return backends[0]; }

const sk__backend *sk__backend_by_name(const char *name) {
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
    if (name && strcmp(backends[i]->name, name) == 0) return backends[i];
  return NULL;
}
