/* SPDX-License-Identifier: Apache-2.0 */
/*
 * User space's view of the kernel socket table (docs/design.md, "The sweep").
 *
 * Each sweep reads only the sockets that changed since the last one, and
 * those whose exchange may have gone silent, through a sockets_source (the
 * kernel's collect program; plain records in the unit tests), and adds what
 * changed to each socket's metric stream. Close records bring a socket's
 * final numbers. Exchange records, which the kernel ended, counted and
 * sampled, get who they belong to (struct exchange_origin, resolved once
 * per stream) and go on to exchange.c. User space never ends or counts an
 * exchange itself: it only asks the kernel about silent ones when they are
 * due.
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

/* Where the sweep reads sockets from (capture.h: capture__sweep_begin/collect). */
struct sockets_source {
	void *ctx;
	/* A new sweep: a socket's next change queues it again. */
	void (*begin)(void *ctx);
	/*
	 * Snapshots of the sockets at keys[0..n) (0 < n <= TCPOTEL_COLLECT_BATCH),
	 * or, with n == 0, of sockets queued as changed, then of lost closes, at
	 * most TCPOTEL_COLLECT_BATCH; exchanges gone silent are ended first.
	 * Returns how many (*out, valid until the next call) or -errno; with
	 * n == 0, fewer than TCPOTEL_COLLECT_BATCH means nothing more is queued.
	 */
	int (*collect)(void *ctx, const uint64_t *keys, size_t n,
		       const struct tcpotel_snapshot **out);
};

struct sockets_opts {
	struct sockets_source source;
	/* spans.idle_timeout: a socket whose response has been silent this long
	 * is read again, and the kernel ends the exchange; likewise a request
	 * that waited spans.response_timeout for its first response byte. */
	uint64_t idle_timeout_ns;
	uint64_t response_timeout_ns;
};

struct sockets;

/* x may be NULL: exchange records are then dropped. */
struct sockets *sockets__new(const struct sockets_opts *opts, struct metrics *m,
			     struct procinfo *pi, struct exchanges *x);
void sockets__free(struct sockets *ss);

/* `now_mono_ns` is CLOCK_MONOTONIC, as the kernel's stamps. */
int sockets__sweep(struct sockets *ss, uint64_t now_mono_ns);
void sockets__on_close(struct sockets *ss, const struct tcpotel_close_record *r);
/* An exchange the kernel ended: a kept one goes to spans and the live map; a
 * failed one (always sent) is counted in tcp.exchange.duration here. */
void sockets__on_exchange(struct sockets *ss, const struct tcpotel_exchange_record *r);
/* A connection attempt that failed: tcp.connection.failed, and a span and the
 * live map when sampling keeps it. */
void sockets__on_connect_failed(struct sockets *ss, const struct tcpotel_exchange_record *r);
size_t sockets__tracked(const struct sockets *ss);
/* Sockets whose close record was lost (ring buffer full), forgotten by the sweep. */
uint64_t sockets__retired(const struct sockets *ss);
/* Exchanges counted so far (tcp.exchange.duration over every stream). */
uint64_t sockets__exchanges(const struct sockets *ss);

#endif
