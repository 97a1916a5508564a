/* The scorekit command-line program. */
#include <stdio.h>
#include <string.h>

#include "scorekit/scorekit.h"

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0) {
    printf("usage: scorekit COMMAND [flags]\n");
    return argc < 2 ? 2 : 0;
  }
  return 0;
}
