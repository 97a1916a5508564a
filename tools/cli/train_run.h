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

/* Holds DIR for the rest of this process: DIR/.lock, created if needed (not
 * through a symlink), locked with flock(LOCK_EX | LOCK_NB) and holding this
 * process's pid. The kernel drops the lock when the process ends, however it
 * ends; the file stays. 1 on success; 0 after a one-line message naming the
 * holder's pid (another run) or the error. */
int run_lock(const char *dir);

/* 1 when DIR holds nothing but its lock file; otherwise 0 with the name of
 * one other entry in `first`. */
int run_dir_empty(const char *dir, char *first, size_t cap);

/* 1 when a and b name the same existing directory. */
int run_same_dir(const char *a, const char *b);

/* Removes what an interrupted run of DIR can leave (the atomic writer's
 * temporaries of model.safetensors and state.safetensors, log.csv.trim);
 * only under DIR's lock, when no other run can be writing them. Returns how
 * many it removed. */
int run_remove_stale(const char *dir);

/* The files a run writes into its directory. */
enum { RUN_FILES = 4 };
extern const char *const run_files[RUN_FILES];

/* --overwrite: the replaced run's files that exist, each renamed to
 * NAME.replaced (aside[i] set), so that they come back if the new run fails
 * before its first checkpoint (run_aside_end). 1 on success; 0 after a
 * one-line message (one of them is a directory or special file: nothing
 * moved; a rename failed: whatever was moved moved back). */
int run_set_aside(const char *dir, int aside[RUN_FILES]);

/* Under DIR's lock, before anything reads it: files a replacing run that
 * was killed (SIGKILL, a lost session) left set aside are put back when it
 * saved no state, else removed (it was killed after its first checkpoint).
 * 1, or 0 after a one-line message. */
int run_recover_aside(const char *dir);

/* Ends what run_set_aside began: keep_new, the set-aside files are removed
 * (the new run has a checkpoint); otherwise the new run's file of each
 * name is removed and the old one renamed back. Clears aside. */
void run_aside_end(const char *dir, int aside[RUN_FILES], int keep_new);

/* The one-line message for a resume refused because the state is another
 * run's, naming the flag: "--resume: --lr 0.001 differs from the run's
 * 0.0002". `data` is the --data argument. Returns 1 (the exit code). */
int run_resume_refused(const sk_run_mismatch *mm, const char *data, int sigmas_given);

/* SIGTERM and SIGINT: the first sets a flag that the training loop checks
 * between steps (run_stop_signal); a second one (either) ends the process
 * at once, by that signal. */
void run_catch_signals(void);
/* 0, or the signal that asked the run to stop. */
int run_stop_signal(void);
/* Ends the process by `sig`, with its default action. */
void run_die_by(int sig);

#endif
