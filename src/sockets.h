/* SPDX-License-Identifier: Apache-2.0 */
/*
 * User space's view of the kernel socket table. Each sweep reads the whole
 * BPF map in batches and adds what changed since the last sweep (bytes,
 * retransmits, srtt samples, finished exchanges, opens) to the socket's
 * metric stream; close records bring a socket's final numbers; sampled
 * exchange records are routed here first so that each finds its stream and
 * is reported exactly once. The sweep ends exchanges that went silent for
 * spans.idle_timeout: it counts them ahead of the kernel (which counts them
 * only at the socket's next call or close) and takes them back out of the
 * kernel's numbers when those include them.
 */
#ifndef TCPOTEL_SOCKETS_H
#define TCPOTEL_SOCKETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"

struct exchanges;
struct metrics;
struct procinfo;

struct sockets_opts {
	int map_fd; /* the BPF socket table */
	uint64_t idle_timeout_ns; /* spans.idle_timeout */
	bool records; /* exchanges are reported (spans or the live map) */
};

struct sockets;

struct sockets *sockets__new(const struct sockets_opts *opts, struct metrics *m,
			     struct procinfo *pi, struct exchanges *x);
void sockets__free(struct sockets *ss);

/* Reads the BPF table; `now_mono_ns` is CLOCK_MONOTONIC, as the kernel's stamps. */
int sockets__sweep(struct sockets *ss, uint64_t now_mono_ns, uint64_t mono_to_unix_ns);
void sockets__on_close(struct sockets *ss, const struct tcpotel_close_record *r,
		       uint64_t mono_to_unix_ns);
void sockets__on_exchange(struct sockets *ss, const struct tcpotel_exchange_record *r,
			  uint64_t mono_to_unix_ns);
size_t sockets__tracked(const struct sockets *ss);
/* Sockets whose close record never came (lost) and were retired by the sweep. */
uint64_t sockets__retired(const struct sockets *ss);
/* Exchanges counted so far (tcp.exchange.duration over every stream). */
uint64_t sockets__exchanges(const struct sockets *ss);

#endif
