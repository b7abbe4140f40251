/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ended exchanges -> the live map and synthetic spans: CLIENT on the
 * client's resource, SERVER on the server's, with the ids of traceid.h.
 *
 * Every exchange arrives ended, counted and sampled by the kernel
 * (bpf/track.bpf.h); sockets.c adds who it belongs to (struct
 * exchange_origin, resolved once per stream) and hands it over here. Spans
 * wait at most EXCHANGE_FLUSH_MS in a bounded buffer, then go out grouped by
 * resource in one OTLP traces body; their CLOCK_MONOTONIC stamps become Unix
 * time when that body is written.
 */
#ifndef TCPOTEL_EXCHANGE_H
#define TCPOTEL_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "abi.h"

struct cidr_list;
struct exporter;
struct graph;
struct procinfo;
struct proc_resource;

/* Spans leave the agent this long after their exchange ended, at the latest. */
#define EXCHANGE_FLUSH_MS 200
/* Spans held between flushes; past this they are dropped and counted. */
#define EXCHANGE_MAX_PENDING 65536
/* A traces body holds at most this many spans. */
#define EXCHANGE_MAX_BATCH 4096

struct exchanges_opts {
	bool spans; /* spans.enabled: make spans (off: the live map alone wants exchanges) */
	double sampling_ratio; /* spans.sampling_ratio, for the spans' trace state */
	/* spans.external_clients, spans.internal_networks: whose SERVER spans are
	 * roots (callers no agent watches); NULL: none. */
	const struct cidr_list *external_clients;
	const struct cidr_list *internal_networks;
};

/* Who an exchange belongs to: the same for every exchange of one metric stream. */
struct exchange_origin {
	struct proc_resource *res; /* borrowed; a pending span takes its own reference */
	const char *service; /* service.name */
	const char *host; /* host.name, "" when unknown */
	uint32_t pid;
	/* The other end as the live map names it: a client's server "addr:port",
	 * a server's client "addr". */
	const char *peer;
	/* A client's server when this agent sees that process too: its
	 * service.name (peer.service), or NULL. */
	const char *peer_service;
};

struct exchange_end {
	const struct exchange_origin *origin;
	const struct tcpotel_tuple *tuple;
	const struct tcpotel_exchange *ex; /* CLOCK_MONOTONIC stamps */
	uint8_t role; /* enum tcpotel_role */
	/* A failed connection attempt (a CLIENT span named tcp.connect), not an
	 * exchange: ex holds the attempt (request_seq: the initial sequence
	 * number). Either way ex->error, when set, makes an error span. */
	bool connect;
	uint32_t srtt_us;
};

struct exchange_stats {
	uint64_t dropped;
	uint64_t spans; /* handed to the exporter */
};

struct exchanges;

struct exchanges *exchanges__new(const struct exchanges_opts *opts, struct procinfo *pi,
				 struct exporter *exp);
void exchanges__free(struct exchanges *x);
/* Feeds every exchange to the live map (a sample of them: spans.sampling_ratio). */
void exchanges__set_graph(struct exchanges *x, struct graph *g);
void exchanges__end(struct exchanges *x, const struct exchange_end *end);
/* Sends the pending spans when the oldest has waited EXCHANGE_FLUSH_MS, or always with force. */
void exchanges__flush(struct exchanges *x, uint64_t now_mono_ns, bool force);
void exchanges__stats(const struct exchanges *x, struct exchange_stats *out);

#endif
