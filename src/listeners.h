/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listening TCP ports that existed before the agent started, in every
 * network namespace, read from /proc/PID/net/tcp{,6} of one process per
 * namespace. They class connections first seen mid-stream: a connection
 * whose local port listens is a server's.
 */
#ifndef TCPOTEL_LISTENERS_H
#define TCPOTEL_LISTENERS_H

#include <stddef.h>
#include <stdint.h>

struct listener {
	uint32_t netns;
	uint16_t port;
};

/* Fills up to `max`; returns how many were found, or a negative errno. */
int listeners_scan(const char *proc_root, struct listener *out, size_t max);

#endif
