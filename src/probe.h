/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What this host allows, found by trying rather than by version numbers:
 * the privileges the agent needs, what the kernel must have, and the capture
 * back-end, chosen by loading and attaching its very programs.
 */
#ifndef TCPOTEL_PROBE_H
#define TCPOTEL_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/*
 * 0 when the process may load and attach BPF programs (root, or CAP_BPF +
 * CAP_PERFMON, or CAP_SYS_ADMIN). Otherwise -EPERM with a
 * sentence naming exactly what is missing in `why`.
 */
int probe_privileges(char *why, size_t size);

/*
 * 0 when the kernel has what every back-end needs: BTF and the BPF ring buffer
 * (5.8). Otherwise a negative errno and a sentence naming what is missing.
 */
int probe_kernel(char *why, size_t size);

/*
 * Checks with stand-in programs whether `backend` (not BACKEND_AUTO) can load
 * and attach here: 0, or a negative errno and the reason in `why` (e.g.
 * "fexit program refused at load (EPERM): this kernel has no BPF trampolines").
 * It explains a failure; it does not decide (probe_capture() does).
 */
int probe_backend(enum capture_backend backend, char *why, size_t size);

struct capture;
struct capture_opts;

/*
 * The capture, loaded and attached, of the back-end capture.backend names:
 * the one forced, or with BACKEND_AUTO the first in `order` (NULL: tracepoint,
 * fentry, kprobe) whose very programs load and attach here. Logs the choice,
 * and why each back-end tried before it could not be used. NULL + errno (the
 * reason logged) when none can.
 */
struct capture *probe_capture(const struct capture_opts *opts, const enum capture_backend *order,
			      size_t n_order);

#endif
