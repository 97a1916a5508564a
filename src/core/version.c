/* The library's own version, for callers that check at run time that the
 * library they loaded is the one whose headers they compiled against. */
#include "core/internal.h"

const char *sk_version(void) { return SK_VERSION_STRING; }
