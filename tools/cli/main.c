/* The scorekit command-line program: subcommand dispatch. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_mpi.h"

static const char usage[] =
    "usage: scorekit COMMAND [flags]\n"
    "\n"
    "Score-based generative modeling: learn ∇ₓ log p(x) of a data set.\n"
    "\n"
    "commands\n"
    "  demo      train, sample, evaluate and draw on built-in data (the quick tour)\n"
    "  train     train a score network or a noise-conditional classifier\n"
    "  sample    draw samples (predictor-corrector, probability-flow ODE, Langevin)\n"
    "  eval      sample-quality metrics against a data set\n"
    "  score     evaluate a trained score model on given points\n"
    "  likelihood  log-likelihoods of data under a score model (probability-flow ODE)\n"
    "  grid      draw images (samples, classes, a trajectory) as a PNG grid\n"
    "  inpaint   fill the missing entries of rows or images given the known ones\n"
    "  help      this text; `scorekit help COMMAND` (or COMMAND --help) documents COMMAND\n";

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  /* Started by mpirun or srun: train, sample, likelihood and inpaint split their work. */
  cli_mpi_init(&argc, &argv);
  /* SIGTERM, SIGINT and SIGHUP remove the temporary file of a write in
   * progress, then end the program as the signal would have. */
  if (sk_signals_install(NULL) != SK_OK) fprintf(stderr, "scorekit: warning: %s\n", sk_last_error());
  /* `scorekit help CMD` is `scorekit CMD --help`, so an unknown CMD fails
   * as it does on its own. */
  char help_flag[] = "--help";
  if (!strcmp(cmd, "help") && argc > 2) {
    if (argc > 3) {
      fprintf(stderr, "scorekit: help takes one command, got %d words\n", argc - 2);
      return 2;
    }
    cmd = argv[1] = argv[2];
    argv[2] = help_flag;
  }
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    fputs(usage, stdout);
    return 0;
  }
  if (!strcmp(cmd, "train")) return cli_mpi_end(cmd_train(argc - 2, argv + 2));
  if (!strcmp(cmd, "sample")) return cli_mpi_end(cmd_sample(argc - 2, argv + 2));
  if (!strcmp(cmd, "likelihood")) return cli_mpi_end(cmd_likelihood(argc - 2, argv + 2));
  if (!strcmp(cmd, "inpaint")) return cli_mpi_end(cmd_inpaint(argc - 2, argv + 2));
  if (cli_mpi_size() > 1)
    return cli_mpi_end(cli_fail("%s runs on one process: only train, sample, likelihood and "
                                "inpaint run on several ranks", cmd));
  if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
  if (!strcmp(cmd, "score")) return cmd_score(argc - 2, argv + 2);

  if (!strcmp(cmd, "grid")) return cmd_grid(argc - 2, argv + 2);
  if (!strcmp(cmd, "demo")) return cmd_demo(argc - 2, argv + 2);
  fprintf(stderr, "scorekit: unknown command \"%s\" (see scorekit --help)\n", cmd);
  return 2;
}
