/* scorekit: score-based generative modeling in C.
 *
 * A worked example: the gradient of f(x) = sum(softplus(x W^T)) and of its
 * gradient's norm, both from one graph.
 *
 *   sk_graph *g = sk_graph_new();
 *   sk_node x = sk_input(g, "x", 2, (int64_t[]){512, 2});
 *   sk_node w = sk_param(g, "w", 2, (int64_t[]){128, 2}, w_data);
 *   sk_node f = sk_sum_all(g, sk_softplus(g, sk_matmul(g, x, w, 0, 1)));
 *   sk_node dx;  sk_grad(g, f, SK_NONE, 1, &x, &dx);          // ∇ₓ f
 *   sk_node h = sk_sum_all(g, sk_square(g, dx)), dw;
 *   sk_grad(g, h, SK_NONE, 1, &w, &dw);                        // ∇_w ‖∇ₓ f‖²
 *   sk_graph_compile(g, 2, (sk_node[]){dx, dw});
 *   memcpy(sk_graph_data(g, x), batch, sizeof batch);
 *   sk_graph_run(g);                 // no allocation; read sk_graph_data(g, dw)
 *   sk_graph_free(g);
 */
#ifndef SCOREKIT_H
#define SCOREKIT_H
#include "core.h"
#include "data.h"
#include "eval.h"
#include "graph.h"
#include "io.h"
#include "nn.h"
#include "rng.h"
#include "safetensors.h"
#include "sample.h"
#include "score.h"
#include "tensor.h"
#include "train.h"
#include "version.h"
#endif
