/* Private to the score layer (score_fn.c, sample.c). */
#ifndef SK_SCORE_INTERNAL_H
#define SK_SCORE_INTERNAL_H

#include "scorekit/sample.h"

/* A new score function like f, with its own compiled graphs (a graph is one
 * arena, so threads that evaluate at once each need their own). */
sk_status sk__score_fn_clone(const sk_score_fn *f, sk_score_fn **out);

#endif
