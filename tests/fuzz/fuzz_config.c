// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the configuration loader: the input is split at the
 * first NUL into a YAML file and a block of "NAME=value" lines given as the
 * environment. Whatever the bytes, config__load must either succeed with a
 * configuration that prints and frees cleanly, or fail with at least one
 * message; never crash, hang or leak (ASan/LSan watch).
 *
 *   make fuzz   (builds this target and fuzz_otlp, runs each for FUZZ_TIME seconds)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENV 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t yaml_len = nul ? (size_t)(nul - data) : size;
	char path[] = "/tmp/tcpotel-fuzz-XXXXXX";
	char *env_block = NULL, *envp[MAX_ENV + 1] = { 0 };
	char *msgs = NULL;
	size_t msgs_len = 0;
	struct config *cfg;
	FILE *err;
	int fd, n = 0;

	fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, yaml_len) != (ssize_t)yaml_len) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	if (nul) {
		size_t env_len = size - yaml_len - 1;

		env_block = malloc(env_len + 1);
		if (env_block) {
			memcpy(env_block, nul + 1, env_len);
			env_block[env_len] = '\0';
			for (char *save = NULL, *line = strtok_r(env_block, "\n", &save);
			     line && n < MAX_ENV; line = strtok_r(NULL, "\n", &save))
				envp[n++] = line;
		}
	}
	err = open_memstream(&msgs, &msgs_len);
	if (!err)
		goto out;
	cfg = config__load(path, envp, NULL, err);
	fflush(err);
	if (cfg) {
		FILE *devnull = fopen("/dev/null", "w");

		if (devnull) {
			config__print(cfg, devnull);
			fclose(devnull);
		}
		config__free(cfg);
	} else if (msgs_len == 0) {
		/* A refused configuration must always say why. */
		abort();
	}
	fclose(err);
out:
	free(msgs);
	free(env_block);
	unlink(path);
	return 0;
}
