// SPDX-License-Identifier: Apache-2.0
#include "kernel.h"

#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "probe.h"

static const enum capture_backend order[] = { BACKEND_TRACEPOINT, BACKEND_FENTRY, BACKEND_KPROBE };

static enum capture_backend backend_named(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		if (strcmp(name, config_backend_name(order[i])) == 0)
			return order[i];
	return BACKEND_AUTO;
}

bool kernel_expects(enum capture_backend backend)
{
	const char *list = getenv("TCPOTEL_EXPECT_BACKENDS");
	const char *name = config_backend_name(backend);
	char why[256];

	if (list && *list) {
		size_t n = strlen(name);

		for (const char *p = list; (p = strstr(p, name)); p += n)
			if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
				return true;
		return false;
	}
	return probe_backend(backend, why, sizeof(why)) == 0;
}

enum capture_backend kernel_expected_auto(void)
{
	const char *name = getenv("TCPOTEL_EXPECT_AUTO");

	if (name && *name)
		return backend_named(name);
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		if (kernel_expects(order[i]))
			return order[i];
	return BACKEND_AUTO;
}

enum capture_backend kernel_test_backend(void)
{
	const char *name = getenv("TCPOTEL_TEST_BACKEND");

	if (name && *name)
		return backend_named(name);
	return kernel_expected_auto();
}

struct capture *kernel_attach_test_backend(uint64_t idle_timeout_ns)
{
	return kernel_attach_test_backend_sized(idle_timeout_ns, 4096);
}

struct capture *kernel_attach_test_backend_sized(uint64_t idle_timeout_ns, uint32_t max_sockets)
{
	struct capture_opts opts = {
		.backend = kernel_test_backend(),
		.max_sockets = max_sockets,
		.exchange_records = true,
		.idle_timeout_ns = idle_timeout_ns,
	};

	if (opts.backend == BACKEND_AUTO)
		return NULL;
	return probe_capture(&opts, NULL, 0);
}
