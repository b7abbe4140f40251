/* SPDX-License-Identifier: Apache-2.0 */
/*
 * User space's view of the kernel socket table. Each sweep reads the whole
 * BPF map in batches and adds what changed since the last sweep (bytes,
 * retransmits, srtt samples, opens) to the socket's metric stream; close
 * records bring a socket's final numbers; exchanges are routed here first so
 * that each finds its stream and is reported exactly once (the sweep reports
 * exchanges that went silent for spans.idle_timeout).
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
	int map_fd;                /* the BPF socket table */
	uint64_t idle_timeout_ns;  /* spans.idle_timeout */
	bool spans;
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

#endif
