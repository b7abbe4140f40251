/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What this host allows, found by trying rather than by version numbers:
 * the privileges the agent needs, and which capture back-ends can load and
 * attach here (as libbpf-tools' fentry_can_attach() does).
 */
#ifndef TCPOTEL_PROBE_H
#define TCPOTEL_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/*
 * 0 when the process may load and attach BPF programs (root, or CAP_BPF +
 * CAP_PERFMON + CAP_NET_ADMIN, or CAP_SYS_ADMIN). Otherwise -EPERM with a
 * sentence naming exactly what is missing in `why`.
 */
int probe_privileges(char *why, size_t size);

/*
 * 0 when `backend` (not BACKEND_AUTO) can load and attach here; otherwise a
 * negative errno and the reason in `why` (e.g. "fexit program refused at load
 * (EPERM): this kernel has no BPF trampolines").
 */
int probe_backend(enum capture_backend backend, char *why, size_t size);

/*
 * Resolves BACKEND_AUTO: probes every back-end, logs each result, and picks
 * the first that works in the order tracepoint, fentry, kprobe. A forced
 * back-end is probed alone. Returns 0 and sets *chosen, or a negative errno
 * with the reason in `why`.
 */
int probe_choose_backend(enum capture_backend wanted, enum capture_backend *chosen, char *why,
			 size_t size);

#endif
