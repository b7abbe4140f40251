/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cumulative metric store: one stream per (process, role, peer address,
 * service port) — never one per ephemeral port — holding what the README's
 * metric table exports, and the encoder of the whole store into one OTLP
 * metrics body (with the agent's own tcpotel.* health metrics). Streams are
 * objects of this module: stream__verb(). docs/design.md says who feeds it.
 */
#ifndef TCPOTEL_METRICS_H
#define TCPOTEL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"

struct otlp_metrics_emitter;
struct proc_resource;
struct procinfo;

struct stream_key {
	struct proc_resource *res;
	uint8_t role; /* enum tcpotel_role */
	uint8_t family; /* AF_INET / AF_INET6 */
	uint16_t port; /* server.port: the remote port of a client, the local port of a server */
	uint8_t peer[16];
};

struct stream;

/* Why the live map left something out: tcpotel.map.dropped{reason}. */
enum self_map_drop {
	SELF_MAP_NODE_LIMIT, /* "node_limit" */
	SELF_MAP_EDGE_LIMIT, /* "edge_limit" */
	SELF_MAP_DUPLICATE, /* "duplicate": a half replaced by a later one under the same ids */
	SELF_MAP_DROP__COUNT,
};

/* The agent's own health, exported as tcpotel.* metrics. */
struct self_stats {
	uint64_t kernel_counters[TCPOTEL_CNT__MAX];
	uint64_t records_invalid; /* of an unknown type or size: left out */
	uint64_t sockets_tracked;
	uint64_t sockets_retired; /* gone from the kernel's table, their close record lost */
	uint64_t exchanges;
	uint64_t spans_sampled_out;
	uint64_t spans_dropped; /* before the exporter: pending buffer full */
	uint64_t spans_queued; /* handed to the exporter */
	uint64_t sent_items[2], dropped_items[2], rejected_items[2]; /* [metrics, traces] */
	uint64_t sent_batches[2], sent_bytes[2];
	uint64_t export_failures;
	uint64_t export_retries;
	uint64_t queue_depth;
	uint64_t streams;
	uint64_t streams_dropped;
	/* The live map's (graph.h's graph_stats), as tcpotel.map.*: only when it is on. */
	bool map;
	uint64_t map_halves; /* exchange halves given to the map */
	uint64_t map_failed_connections;
	uint64_t map_paired; /* exchanges */
	uint64_t map_unpaired; /* halves */
	uint64_t map_pending; /* halves waiting now */
	uint64_t map_pending_overflow; /* halves settled early: pairing table full */
	uint64_t map_dropped[SELF_MAP_DROP__COUNT]; /* left out, by reason */
	uint64_t map_nodes, map_edges;
};

struct metrics;

struct metrics *metrics__new(struct procinfo *pi, size_t max_streams);
/*
 * metrics.per_process (before the first stream): true, the default, writes
 * one resource per process; false writes one per service instance instead,
 * the process's resource without process.pid and process.command_line, whose
 * streams add up those of every process with the same remaining attributes
 * (and keep counting when one exits). Spans are not concerned.
 */
void metrics__set_per_process(struct metrics *m, bool per_process);
void metrics__free(struct metrics *m);

/*
 * The stream of `key`, created on first use. It takes over the caller's
 * reference to key->res (procinfo__get). NULL when the store is full
 * (counted) or out of memory.
 */
struct stream *metrics__stream(struct metrics *m, const struct stream_key *key);

void stream__add_io(struct stream *s, uint64_t sent, uint64_t received);
void stream__add_opened(struct stream *s, uint64_t n);
void stream__add_active(struct stream *s, int64_t delta);
void stream__add_retransmits(struct stream *s, uint64_t n);
/* srtt samples: per-bucket deltas of the kernel's log2 histogram (microseconds). */
void stream__add_srtt(struct stream *s, const uint32_t delta[TCPOTEL_SRTT_BUCKETS], uint64_t sum_us,
		      uint32_t min_us, uint32_t max_us);
/* Exchanges: per-bucket deltas of a socket's kernel histogram (bpf/tcpotel.h). */
void stream__add_exchanges(struct stream *s, const uint32_t delta[TCPOTEL_EXCHANGE_BUCKETS],
			   uint64_t sum_ns, uint64_t min_ns, uint64_t max_ns);
/* A failed connection attempt: tcp.connection.failed{error.type} (enum tcpotel_error). */
void stream__add_connect_failed(struct stream *s, unsigned err);
/* A failed exchange (the kernel sends each one; it is not in its histogram):
 * tcp.exchange.duration{error.type}. */
void stream__add_failed_exchange(struct stream *s, unsigned err, uint64_t duration_ns);
/* The tcp.exchange.duration bucket of a duration, as the kernel picks it (for tests and
 * the benchmark, which stand in for the kernel). */
unsigned metrics_exchange_bucket(uint64_t duration_ns);
/* Starts fetching s into the cache, every line of it: a sweep updates cold streams. */
void stream__prefetch(const struct stream *s);
/* Counts as a change: the stream is not forgotten as idle for a while. */
void stream__touch(struct stream *s);
/* The peer's service name when the peer is a process this agent sees. */
void stream__set_peer_service(struct stream *s, const char *name);
/* That name, or NULL; it lives as long as the stream. */
const char *stream__peer_service(const struct stream *s);

/*
 * Writes every stream and the self metrics (under the agent's own resource)
 * through `e` as one body (an ExportMetricsServiceRequest with the JSON
 * emitter of otlp.h, the /metrics page with prom.h's), and counts the
 * streams as exported. Writing the same store again with the same time,
 * through another emitter, writes the same points. Returns their number.
 */
size_t metrics__encode(struct metrics *m, struct otlp_metrics_emitter *e, uint64_t now_unix_ns,
		       const struct self_stats *self);
/* Forgets streams with no open connection and no change for idle_ns (after
 * they were exported once more). Returns how many were removed. */
size_t metrics__evict_idle(struct metrics *m, uint64_t now_unix_ns, uint64_t idle_ns);
size_t metrics__streams(const struct metrics *m);
uint64_t metrics__streams_dropped(const struct metrics *m);

/* Explicit bounds (seconds) of the two histograms, for docs and tests. */
extern const double metrics_srtt_bounds[TCPOTEL_SRTT_BUCKETS - 1];
extern const double metrics_exchange_bounds[];
extern const uint64_t metrics_exchange_bounds_ns[];
extern const size_t metrics_n_exchange_bounds;

#endif
