/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Command line: getopt_long into struct cli_opts. Parsing never exits: main
 * prints usage or the version, and exits 2 when cli_parse fails.
 */
#ifndef TCPOTEL_CLI_H
#define TCPOTEL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

#define CLI_EXIT_USAGE 2

/* Where the configuration is looked for when --config is not given. */
#define CLI_ETC_CONFIG "/etc/tcpotel/tcpotel.yaml"

struct cli_opts {
	const char *config_path; /* --config FILE; NULL: not given */
	bool check_config; /* --check-config: load, print, exit */
	bool version; /* --version */
	bool help; /* --help */
	struct config_overrides ov; /* --endpoint, --log-level, --backend, --ui-listen, --stdout */
};

/*
 * Parses argv into opts (pointers borrow argv). Returns 0, or -EINVAL after
 * writing what is wrong and a hint to `err`; main then exits CLI_EXIT_USAGE.
 */
int cli_parse(struct cli_opts *opts, int argc, char **argv, FILE *err);
/* Usage text: every flag and the environment variables read. */
const char *cli_usage(void);
/*
 * The configuration file to load: --config if given, else the first that
 * exists of etc_path, <dir of exe>/../config/tcpotel.yaml and
 * <dir of exe>/config/tcpotel.yaml. NULL: none, use the built-in defaults.
 * The result is in buf (or is opts->config_path).
 */
const char *cli_find_config(const struct cli_opts *opts, const char *etc_path, const char *exe,
			    char *buf, size_t size);
/* cli_find_config with CLI_ETC_CONFIG and /proc/self/exe; logs where it found it. */
const char *cli_config_path(const struct cli_opts *opts, char *buf, size_t size);

#endif
