/* The run directory of `scorekit train` and what can happen to a run: one
 * run at a time per directory (a lock), what a fresh run may write into,
 * signals that end a run with a checkpoint, the memory a run may take, and
 * a resume refused because the state is another run's. */
#ifndef SK_CLI_TRAIN_RUN_H
#define SK_CLI_TRAIN_RUN_H

#include <stddef.h>

#include "scorekit/scorekit.h"

/* The memory this process can still take, in bytes: MemAvailable from
 * /proc/meminfo (else the free physical pages), less when a cgroup v2
 * memory.max leaves less room. 0 when unknown. */
size_t run_memory_available(void);

/* Whether an MLP of config `mc` can be trained within `avail` bytes (0:
 * unknown, always yes), counted before it is allocated: 4 bytes a parameter
 * for each of the weights, their gradients, Adam's two moments and the EMA,
 * before any activation (the trainer then counts those too). 0 after a
 * one-line message giving the estimate. */
int run_weights_fit(const sk_model_config *mc, size_t avail);

/* "1.5 GiB", "12.0 MiB", "800 KiB". */
const char *run_bytes_text(char *buf, size_t cap, double bytes);

#endif
