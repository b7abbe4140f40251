/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ended exchanges (the sampled ones the kernel hands over, and those the
 * sweep ends) -> the live map and synthetic spans: CLIENT on
 * the client's resource, SERVER on the server's, with the ids of traceid.h
 * and consistent sampling. Spans wait at most spans_flush_ms in a bounded
 * buffer, then go out grouped by resource in one OTLP traces body.
 */
#ifndef TCPOTEL_EXCHANGE_H
#define TCPOTEL_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "abi.h"

struct config;
struct exporter;
struct graph;
struct procinfo;
struct proc_resource;
struct stream;

/* Spans leave the agent this long after their exchange ended, at the latest. */
#define EXCHANGE_FLUSH_MS 200
/* Spans held between flushes; past this they are dropped and counted. */
#define EXCHANGE_MAX_PENDING 65536
/* A traces body holds at most this many spans. */
#define EXCHANGE_MAX_BATCH 4096

struct exchange_end {
	const struct tcpotel_tuple *tuple;
	const struct tcpotel_exchange *ex;
	uint8_t role; /* enum tcpotel_role */
	uint8_t flags; /* enum tcpotel_sock_flags (RESET makes an error span) */
	uint32_t srtt_us;
	struct proc_resource *res; /* borrowed */
	struct stream *stream; /* may be NULL (stream limit) */
};

struct exchange_stats {
	uint64_t sampled_out; /* by user space (exchanges it ended); the kernel counts its own */
	uint64_t dropped;
	uint64_t spans;
};

struct exchanges;

struct exchanges *exchanges__new(const struct config *cfg, struct procinfo *pi,
				 struct exporter *exp);
void exchanges__free(struct exchanges *x);
/* Feeds every kept exchange (spans.sampling_ratio) to the live map. */
void exchanges__set_graph(struct exchanges *x, struct graph *g);
/* `mono_to_unix_ns` turns the kernel's CLOCK_MONOTONIC stamps into Unix time. */
void exchanges__end(struct exchanges *x, const struct exchange_end *end, uint64_t mono_to_unix_ns);
/* Sends the pending spans when the oldest has waited EXCHANGE_FLUSH_MS, or always with force. */
void exchanges__flush(struct exchanges *x, uint64_t now_mono_ns, bool force);
void exchanges__stats(const struct exchanges *x, struct exchange_stats *out);

#endif
