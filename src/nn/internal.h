/* Private to the nn layer and the layers above it: the checks behind
 * sk_model_new and sk_adam_new, so that a caller told NULL can tell a
 * config it must report from an allocation that failed. */
#ifndef SK_NN_INTERNAL_H
#define SK_NN_INTERNAL_H

#include "scorekit/nn.h"

/* SK_OK when sk_model_new accepts cfg; else SK_ERR_INVALID with the message
 * sk_model_new would set. */
sk_status sk__model_check(const sk_model_config *cfg);
/* The same for sk_model_new_unet's (NULL: the default, which passes). */
sk_status sk__unet_check(const sk_unet_config *u);
/* The same for sk_model_new_convnet's. */
sk_status sk__convnet_check(const sk_convnet_config *c);
/* The same for sk_adam_new's config. */
sk_status sk__adam_check(const sk_adam_config *cfg);
/* sk_model_new (and sk_model_new_unet) in two steps, so that a caller can
 * compare the tensors' names and shapes with a file before the parameters
 * are allocated: the model without its parameter buffer (sk_model_params is
 * NULL; NULL when the config is refused or on no memory, the message set),
 * then the zeroed buffer (sk_model_free frees the model either way). */
sk_model *sk__model_layout(const sk_model_config *cfg);
sk_model *sk__unet_layout(const sk_unet_config *u);
/* The same conditional on `classes` classes (sk_model_new_unet_classes). */
sk_model *sk__unet_layout_classes(const sk_unet_config *u, int classes);
sk_model *sk__convnet_layout(const sk_convnet_config *c);
sk_status sk__model_alloc(sk_model *m);

/* Whether m is a class-conditional score model (label input, sk_model_apply_labels). */
int sk__cond_model(const sk_model_config *m);

#endif
