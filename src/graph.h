/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The live service graph behind the agent's own map: nodes are services
 * (processes grouped by service name and host) and peers: on this host
 * (a loopback address, the connection's own address or one of the host's
 * addresses, whose process the agent does not see: its own UI listener, a
 * namespace left out by capture.netns) or outside it,
 * edges are client service -> server service with rates over the last
 * GRAPH_WINDOW_S seconds (bytes each way, exchanges, failed connections and
 * failed exchanges, and the error rate they make), p50/p99 exchange latency,
 * srtt, and the errors by error.type.
 *
 * Both halves of an exchange seen on this host (client and server here) are
 * paired the way the Collector's servicegraph connector pairs spans: the
 * client half under (trace id, client span id), the server half under (trace
 * id, parent span id = client span id), waiting at most GRAPH_PAIR_WINDOW_NS
 * in a bounded table. A half left alone is an edge to or from a peer node
 * named by the peer's address ("addr:port" on the client side, "addr" on the
 * server side).
 *
 * One thread only (the drain thread): graph__add() is O(1) and does not
 * allocate; graph__render_json() every few seconds also forgets what has
 * been idle for GRAPH_IDLE_NS.
 */
#ifndef TCPOTEL_GRAPH_H
#define TCPOTEL_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jbuf.h"

#define GRAPH_WINDOW_S	     10
#define GRAPH_PAIR_WINDOW_NS (2ULL * 1000000000ULL)
#define GRAPH_IDLE_NS	     (300ULL * 1000000000ULL)
/* The bounds of the map (ui.max_nodes, ui.max_edges) by default, and at most. */
#define GRAPH_MAX_NODES	      2048
#define GRAPH_MAX_EDGES	      8192
#define GRAPH_MAX_NODES_LIMIT 65536
#define GRAPH_MAX_EDGES_LIMIT 65536
#define GRAPH_MAX_PENDING     65536
/* Longest service name or peer kept (bytes); longer ones are cut. */
#define GRAPH_NAME_MAX 128
/* Distinct pids remembered per service. */
#define GRAPH_MAX_PIDS 32

enum graph_role {
	GRAPH_ROLE_CLIENT = 1,
	GRAPH_ROLE_SERVER = 2,
};

struct graph_exchange {
	const char *service;
	const char *host;
	uint32_t pid;
	uint8_t role; /* enum graph_role */
	const uint8_t *trace_id; /* 16 bytes */
	const uint8_t *client_span_id; /* 8 bytes: the client span (the server span's parent) */
	/* The remote end: for a client the server's "addr:port", for a server the client's "addr". */
	const char *peer;
	/* The connection's addresses (4 bytes for AF_INET, 16 for AF_INET6), which
	 * tell a peer on this host from one outside it; peer_addr NULL: outside. */
	int family;
	const uint8_t *local_addr, *peer_addr;
	uint64_t request_bytes, response_bytes, duration_ns;
	uint32_t srtt_us;
	uint64_t end_mono_ns; /* CLOCK_MONOTONIC */
	uint8_t error; /* enum tcpotel_error: a failed exchange or attempt (error.type) */
	/* A failed connection attempt of a client (not an exchange): an edge to
	 * the server it dialled, counted in its failed connections, never paired. */
	bool connect;
};

/* /api/graph's "stats", and the agent's tcpotel.map.* metrics (agent.c). */
struct graph_stats {
	uint64_t exchanges; /* halves given to graph__add */
	uint64_t failed_connections; /* failed attempts given to graph__add */
	uint64_t paired; /* exchanges with both halves on this host */
	uint64_t unpaired; /* halves that became edges to or from a peer */
	uint64_t pending; /* halves waiting for their other half now */
	uint64_t pending_overflow; /* halves pushed out of a full pairing table early */
	uint64_t duplicates; /* a half whose key was already waiting (replaced) */
	uint64_t nodes, edges;
	uint64_t nodes_dropped, edges_dropped; /* exchanges not shown: limits reached */
};

struct graph;

struct graph_opts {
	uint32_t max_nodes; /* services and peers held at once; 0: GRAPH_MAX_NODES */
	uint32_t max_edges; /* edges held at once; 0: GRAPH_MAX_EDGES */
};

/* opts NULL: the default bounds. NULL with errno ENOMEM, or EINVAL past the *_LIMITs. */
struct graph *graph__new(const struct graph_opts *opts);
void graph__free(struct graph *g);
/* One half of an exchange that sampling kept (spans.sampling_ratio), as spans are. */
void graph__add(struct graph *g, const struct graph_exchange *x);
/* An address of this host (GRAPH_MAX_LOCAL_ADDRS at most are kept). */
#define GRAPH_MAX_LOCAL_ADDRS 64
struct graph_addr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* 4 bytes used for AF_INET */
};

/* The host's own addresses: a peer at one of them is on this host. Replaces the last set. */
void graph__set_local_addrs(struct graph *g, const struct graph_addr *addrs, size_t n);
/* Exchanges reach the map sampled (spans.sampling_ratio): rates and totals
 * are scaled back up by 1/ratio, estimates of every exchange. */
void graph__set_sampling(struct graph *g, double ratio);
/*
 * Writes the map as JSON (see docs/ui.md): {"window_s", "nodes": [...],
 * "edges": [...], "stats": {...}}. Pairs left alone for the pairing window
 * are settled first. Returns 0 or -ENOMEM.
 */
int graph__render_json(struct graph *g, struct jbuf *out, uint64_t now_mono_ns);
void graph__stats(const struct graph *g, struct graph_stats *out);

#endif
