/* host/cli.h - option parsing shared by the sdrt subcommands. */
#ifndef SDRT_HOST_CLI_H
#define SDRT_HOST_CLI_H

#include <stdio.h>

#include "host.h"

/* Consumes the host options (--config, --set, --model-root, --output-root,
 * --plugin-path) at argv[*i]; returns 1 if it took one, 0 if argv[*i] is not
 * a host option, -1 on a missing value (message printed). */
int cli_take_host_option(host_cli_overrides *ov, int argc, char **argv, int *i);
void cli_overrides_free(host_cli_overrides *ov);
/* The real stdout (fd 1 points at stderr once main has run). */
FILE *cli_stdout(void);

#endif
