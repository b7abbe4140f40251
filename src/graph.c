// SPDX-License-Identifier: Apache-2.0
/*
 * Service graph. Everything is allocated once in graph__new(): node and edge
 * pools, their open-addressing indexes (slot numbers, linear probing), and
 * the pairing table (a FIFO ring of waiting halves, in arrival order, with
 * its own index). graph__add() touches a few cache lines and never
 * allocates; the pools only shrink at render time, when idle entries are
 * freed and the node and edge indexes are rebuilt from what is left.
 *
 * Time: the pairing table runs on "arrival" time, the latest exchange end
 * seen (or the render's now), so that a half reported late still gets its
 * full window. Rates are placed by the exchange's own end time into
 * one-second slots, so they are right even when halves wait for pairing.
 */
#include "graph.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "errortype.h"
#include "htable.h"
#include "netaddr.h"
#include "util.h"

#define SLOTS  16 /* per-second slots; more than GRAPH_WINDOW_S so a late end still fits */
#define HALF_S (GRAPH_WINDOW_S / 2)
/* Latency histogram: units of 1024 ns, 4 sub-buckets per power of two (12% wide). */
#define H_SHIFT	      10
#define H_MAX_MSB     35
#define H_BUCKETS     (1 + (H_MAX_MSB + 1) * 4)
#define PEER_MAX      64
#define HOST_MAX      64
#define PENDING_INDEX (GRAPH_MAX_PENDING * 2)
#define NONE	      UINT32_MAX

_Static_assert((PENDING_INDEX & (PENDING_INDEX - 1)) == 0, "pending index: power of two");

struct pid_seen {
	uint32_t pid;
	uint64_t seen;
};

/* A node is a service seen here, or a peer named by its address, on this host or not. */
enum node_kind {
	NODE_SERVICE,
	NODE_PEER_OUTSIDE,
	NODE_PEER_LOCAL,
};

struct gnode {
	bool used;
	uint8_t kind; /* enum node_kind */
	bool pids_truncated;
	uint8_t n_pids;
	uint8_t last_pid; /* index of the pid seen last: the usual hit */
	uint64_t hash;
	uint64_t last_seen;
	char name[GRAPH_NAME_MAX];
	char host[HOST_MAX];
	struct pid_seen pids[GRAPH_MAX_PIDS];
};

struct sec_slot {
	uint64_t sec;
	uint64_t req, resp, n;
	uint64_t srtt_sum;
	uint32_t srtt_n;
	uint32_t failed_conn, failed_ex;
};

struct gedge {
	bool used;
	bool paired; /* at least one exchange had both halves here */
	uint32_t src, dst;
	uint64_t hash;
	uint64_t first_end; /* earliest exchange end accounted */
	uint64_t last_seen; /* arrival time of the latest exchange */
	uint64_t total_n, total_req, total_resp;
	uint64_t total_failed_conn, total_failed_ex;
	uint64_t errors[TCPOTEL_ERR__COUNT]; /* by error.type, since the edge appeared */
	struct sec_slot sec[SLOTS];
	uint64_t h_epoch[2];
	uint32_t hist[2][H_BUCKETS];
};

struct pending {
	uint8_t key[24]; /* trace id + client span id */
	uint8_t role;
	uint8_t error;
	bool done;
	bool peer_local; /* the peer's address is on this host */
	uint32_t node;
	uint32_t srtt_us;
	uint64_t hash;
	uint64_t stamp;
	uint64_t req, resp, dur, end;
	char peer[PEER_MAX];
};

struct graph {
	struct gnode *nodes;
	struct gedge *edges;
	uint32_t *node_idx; /* slot + 1, 0 = empty */
	uint32_t *edge_idx;
	uint32_t max_nodes, max_edges; /* ui.max_nodes, ui.max_edges */
	uint32_t node_mask, edge_mask; /* of the indexes: a power of two, at least twice as large */
	uint32_t n_nodes, n_edges;
	uint32_t node_hint, edge_hint; /* where to look for a free slot */
	struct pending *ring;
	uint32_t *pend_idx; /* ring slot + 1 */
	uint32_t head,
		count; /* ring occupancy, settled halves included until they reach the head */
	uint32_t waiting; /* halves still waiting for their other half */
	uint64_t clock;
	double ratio, scale; /* spans.sampling_ratio, and what a sampled exchange stands for */
	struct graph_addr local_addrs[GRAPH_MAX_LOCAL_ADDRS];
	size_t n_local_addrs;
	struct graph_stats st;
};

/* The mask of an open-addressing index for n entries: at most half full. */
static uint32_t index_mask(uint32_t n)
{
	uint32_t size = 2;

	while (size < 2 * n)
		size <<= 1;
	return size - 1;
}

struct graph *graph__new(const struct graph_opts *opts)
{
	struct graph *g = calloc(1, sizeof(*g));

	if (!g)
		goto fail;
	g->max_nodes = opts && opts->max_nodes ? opts->max_nodes : GRAPH_MAX_NODES;
	g->max_edges = opts && opts->max_edges ? opts->max_edges : GRAPH_MAX_EDGES;
	if (g->max_nodes > GRAPH_MAX_NODES_LIMIT || g->max_edges > GRAPH_MAX_EDGES_LIMIT) {
		free(g);
		errno = EINVAL;
		return NULL;
	}
	g->node_mask = index_mask(g->max_nodes);
	g->edge_mask = index_mask(g->max_edges);
	g->nodes = calloc(g->max_nodes, sizeof(*g->nodes));
	g->edges = calloc(g->max_edges, sizeof(*g->edges));
	g->node_idx = calloc(g->node_mask + 1, sizeof(*g->node_idx));
	g->edge_idx = calloc(g->edge_mask + 1, sizeof(*g->edge_idx));
	g->ring = calloc(GRAPH_MAX_PENDING, sizeof(*g->ring));
	g->pend_idx = calloc(PENDING_INDEX, sizeof(*g->pend_idx));
	if (!g->nodes || !g->edges || !g->node_idx || !g->edge_idx || !g->ring || !g->pend_idx)
		goto fail;
	g->ratio = g->scale = 1;
	return g;
fail:
	graph__free(g);
	errno = ENOMEM;
	return NULL;
}

void graph__set_sampling(struct graph *g, double ratio)
{
	g->ratio = ratio;
	g->scale = ratio > 0 && ratio < 1 ? 1 / ratio : 1;
}

/* A count of sampled exchanges (or their bytes) as an estimate of all of them. */
static uint64_t scaled(const struct graph *g, uint64_t n)
{
	return g->scale == 1 ? n : (uint64_t)((double)n * g->scale + 0.5);
}

void graph__free(struct graph *g)
{
	if (!g)
		return;
	free(g->nodes);
	free(g->edges);
	free(g->node_idx);
	free(g->edge_idx);
	free(g->ring);
	free(g->pend_idx);
	free(g);
}

/* ---- nodes ----------------------------------------------------------------- */

static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Compares like copy_str() stores: a cut name matches its cut copy. */
static bool same_str(const char *stored, size_t size, const char *s)
{
	return !strncmp(stored, s, size - 1);
}

static uint64_t node_hash(const char *name, const char *host, uint8_t kind)
{
	return hash_bytes(name, strnlen(name, GRAPH_NAME_MAX - 1),
			  hash_bytes(host, strnlen(host, HOST_MAX - 1), kind));
}

static void node_index_insert(struct graph *g, uint32_t slot)
{
	uint32_t i = (uint32_t)g->nodes[slot].hash & g->node_mask;

	while (g->node_idx[i])
		i = (i + 1) & g->node_mask;
	g->node_idx[i] = slot + 1;
}

static uint32_t node_get(struct graph *g, const char *name, const char *host, uint8_t kind)
{
	uint64_t h = node_hash(name, host, kind);
	uint32_t i = (uint32_t)h & g->node_mask, slot;
	struct gnode *n;

	for (; g->node_idx[i]; i = (i + 1) & g->node_mask) {
		n = &g->nodes[g->node_idx[i] - 1];
		if (n->hash == h && n->kind == kind && same_str(n->name, sizeof(n->name), name) &&
		    same_str(n->host, sizeof(n->host), host))
			return g->node_idx[i] - 1;
	}
	if (g->n_nodes >= g->max_nodes)
		return NONE;
	for (slot = g->node_hint; g->nodes[slot].used; slot = (slot + 1) % g->max_nodes)
		;
	g->node_hint = (slot + 1) % g->max_nodes;
	n = &g->nodes[slot];
	memset(n, 0, sizeof(*n));
	n->used = true;
	n->kind = kind;
	n->hash = h;
	copy_str(n->name, sizeof(n->name), name);
	copy_str(n->host, sizeof(n->host), host);
	g->n_nodes++;
	g->node_idx[i] = slot + 1;
	return slot;
}

static void node_touch_pid(struct gnode *n, uint32_t pid, uint64_t now)
{
	uint8_t oldest = 0;

	if (n->n_pids && n->pids[n->last_pid].pid == pid) {
		n->pids[n->last_pid].seen = now;
		return;
	}
	for (uint8_t i = 0; i < n->n_pids; i++) {
		if (n->pids[i].pid == pid) {
			n->pids[i].seen = now;
			n->last_pid = i;
			return;
		}
		if (n->pids[i].seen < n->pids[oldest].seen)
			oldest = i;
	}
	if (n->n_pids < GRAPH_MAX_PIDS) {
		oldest = n->n_pids++;
	} else {
		n->pids_truncated = true;
	}
	n->pids[oldest].pid = pid;
	n->pids[oldest].seen = now;
	n->last_pid = oldest;
}

/* ---- edges ----------------------------------------------------------------- */

static uint64_t edge_hash(uint32_t src, uint32_t dst)
{
	return hash_u64(((uint64_t)src << 32) | dst);
}

static void edge_index_insert(struct graph *g, uint32_t slot)
{
	uint32_t i = (uint32_t)g->edges[slot].hash & g->edge_mask;

	while (g->edge_idx[i])
		i = (i + 1) & g->edge_mask;
	g->edge_idx[i] = slot + 1;
}

static struct gedge *edge_get(struct graph *g, uint32_t src, uint32_t dst)
{
	uint64_t h = edge_hash(src, dst);
	uint32_t i = (uint32_t)h & g->edge_mask, slot;
	struct gedge *e;

	for (; g->edge_idx[i]; i = (i + 1) & g->edge_mask) {
		e = &g->edges[g->edge_idx[i] - 1];
		if (e->src == src && e->dst == dst)
			return e;
	}
	if (g->n_edges >= g->max_edges)
		return NULL;
	for (slot = g->edge_hint; g->edges[slot].used; slot = (slot + 1) % g->max_edges)
		;
	g->edge_hint = (slot + 1) % g->max_edges;
	e = &g->edges[slot];
	memset(e, 0, sizeof(*e));
	e->used = true;
	e->src = src;
	e->dst = dst;
	e->hash = h;
	e->first_end = UINT64_MAX;
	g->n_edges++;
	g->edge_idx[i] = slot + 1;
	return e;
}

static unsigned hist_bucket(uint64_t duration_ns)
{
	uint64_t v = duration_ns >> H_SHIFT;
	unsigned msb, sub;

	if (!v)
		return 0;
	msb = 63 - (unsigned)__builtin_clzll(v);
	if (msb > H_MAX_MSB)
		return H_BUCKETS - 1;
	sub = (unsigned)(((v - (1ULL << msb)) << 2) >> msb);
	return 1 + msb * 4 + sub;
}

/* The middle of bucket b, in nanoseconds. */
static double hist_value_ns(unsigned b)
{
	unsigned msb, sub;
	double lower;

	if (!b)
		return (double)(1 << H_SHIFT) / 2;
	msb = (b - 1) / 4;
	sub = (b - 1) % 4;
	lower = (double)(1ULL << msb);
	return lower * (1 + (sub + 0.5) / 4) * (1 << H_SHIFT);
}

/* One exchange (or, with `connect`, one failed connection attempt) on an edge. */
static void edge_account(struct graph *g, uint32_t src, uint32_t dst, uint64_t req, uint64_t resp,
			 uint64_t dur, uint32_t srtt_us, uint64_t end, bool paired, uint8_t error,
			 bool connect)
{
	struct gedge *e = edge_get(g, src, dst);
	uint64_t sec = end / NSEC_PER_SEC, epoch = sec / HALF_S;
	struct sec_slot *s;
	unsigned hs;

	if (!e) {
		g->st.edges_dropped++;
		return;
	}
	e->paired |= paired;
	e->last_seen = g->clock;
	if (end < e->first_end)
		e->first_end = end;
	if (error && error < TCPOTEL_ERR__COUNT)
		e->errors[error]++;
	if (connect) {
		e->total_failed_conn++;
	} else {
		e->total_n++;
		e->total_req += req;
		e->total_resp += resp;
		e->total_failed_ex += error != 0;
	}
	s = &e->sec[sec % SLOTS];
	if (s->sec != sec) {
		if (s->sec < sec) {
			memset(s, 0, sizeof(*s));
			s->sec = sec;
		} else {
			s = NULL; /* older than the slots reach: counted in totals only */
		}
	}
	if (s && connect) {
		s->failed_conn++;
		return;
	}
	if (connect)
		return;
	if (s) {
		s->req += req;
		s->resp += resp;
		s->n++;
		s->failed_ex += error != 0;
		if (srtt_us) {
			s->srtt_sum += srtt_us;
			s->srtt_n++;
		}
	}
	hs = epoch & 1;
	if (e->h_epoch[hs] != epoch) {
		if (e->h_epoch[hs] > epoch)
			return;
		memset(e->hist[hs], 0, sizeof(e->hist[hs]));
		e->h_epoch[hs] = epoch;
	}
	e->hist[hs][hist_bucket(dur)]++;
}

/* ---- pairing --------------------------------------------------------------- */

static uint32_t pend_find(const struct graph *g, const uint8_t *key, uint64_t h, uint32_t *pos)
{
	uint32_t i = (uint32_t)h & (PENDING_INDEX - 1);

	for (; g->pend_idx[i]; i = (i + 1) & (PENDING_INDEX - 1)) {
		const struct pending *p = &g->ring[g->pend_idx[i] - 1];

		if (p->hash == h && !memcmp(p->key, key, sizeof(p->key))) {
			*pos = i;
			return g->pend_idx[i] - 1;
		}
	}
	return NONE;
}

/* Linear probing delete: shift back the entries that would no longer be found. */
static void pend_index_remove_at(struct graph *g, uint32_t i)
{
	const uint32_t mask = PENDING_INDEX - 1;
	uint32_t j = i;

	for (;;) {
		uint32_t k;

		g->pend_idx[i] = 0;
		for (;;) {
			j = (j + 1) & mask;
			if (!g->pend_idx[j])
				return;
			k = (uint32_t)g->ring[g->pend_idx[j] - 1].hash & mask;
			/* Stays when its home k lies cyclically in (i, j]. */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		g->pend_idx[i] = g->pend_idx[j];
		i = j;
	}
}

static void pend_index_remove(struct graph *g, uint32_t slot)
{
	uint32_t i = (uint32_t)g->ring[slot].hash & (PENDING_INDEX - 1);

	for (; g->pend_idx[i]; i = (i + 1) & (PENDING_INDEX - 1)) {
		if (g->pend_idx[i] == slot + 1) {
			pend_index_remove_at(g, i);
			return;
		}
	}
}

/*
 * A half that found no other half: an edge to (client) or from (server) its
 * peer. A peer on this host is named with the host of the service that saw
 * it (a process this agent does not see, such as its own UI listener).
 */
static void settle_unpaired(struct graph *g, const struct pending *p)
{
	const char *name = p->peer[0] ? p->peer : "unknown";
	uint32_t peer = p->peer_local ? node_get(g, name, g->nodes[p->node].host, NODE_PEER_LOCAL) :
					node_get(g, name, "", NODE_PEER_OUTSIDE);

	g->st.unpaired++;
	if (peer == NONE) {
		g->st.nodes_dropped++;
		return;
	}
	g->nodes[peer].last_seen = g->clock;
	if (p->role == GRAPH_ROLE_CLIENT)
		edge_account(g, p->node, peer, p->req, p->resp, p->dur, p->srtt_us, p->end, false,
			     p->error, false);
	else
		edge_account(g, peer, p->node, p->req, p->resp, p->dur, p->srtt_us, p->end, false,
			     p->error, false);
}

static void pop_head(struct graph *g, bool overflow)
{
	struct pending *p = &g->ring[g->head];

	if (!p->done) {
		pend_index_remove(g, g->head);
		if (overflow)
			g->st.pending_overflow++;
		settle_unpaired(g, p);
		p->done = true;
		g->waiting--;
	}
	g->head = (g->head + 1) % GRAPH_MAX_PENDING;
	g->count--;
}

static void expire_pending(struct graph *g)
{
	while (g->count) {
		const struct pending *p = &g->ring[g->head];

		if (!p->done && p->stamp + GRAPH_PAIR_WINDOW_NS > g->clock)
			break;
		pop_head(g, false);
	}
}

/* ---- addresses of this host -------------------------------------------------- */

void graph__set_local_addrs(struct graph *g, const struct graph_addr *addrs, size_t n)
{
	g->n_local_addrs = MIN(n, (size_t)GRAPH_MAX_LOCAL_ADDRS);
	memcpy(g->local_addrs, addrs, g->n_local_addrs * sizeof(*addrs));
}

static size_t addr_len(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

/* Loopback, the connection's own address, or one of the host's. */
static bool addr_on_host(const struct graph *g, int family, const uint8_t *addr,
			 const uint8_t *local)
{
	size_t len = addr_len(family);

	if (netaddr_is_loopback(family, addr) || (local && !memcmp(addr, local, len)))
		return true;
	for (size_t i = 0; i < g->n_local_addrs; i++)
		if (g->local_addrs[i].family == family &&
		    !memcmp(g->local_addrs[i].addr, addr, len))
			return true;
	return false;
}

/*
 * A failed connection attempt: never paired (the server's side has no
 * socket), an edge from the client to the server it dialled, named by its
 * address (a peer node, outside this host or on it).
 */
static void add_failed_connection(struct graph *g, uint32_t node, const struct graph_exchange *x)
{
	const char *name = x->peer && *x->peer ? x->peer : "unknown";
	bool local = x->peer_addr && addr_on_host(g, x->family, x->peer_addr, x->local_addr);
	uint32_t peer = local ? node_get(g, name, g->nodes[node].host, NODE_PEER_LOCAL) :
				node_get(g, name, "", NODE_PEER_OUTSIDE);

	if (peer == NONE) {
		g->st.nodes_dropped++;
		return;
	}
	g->nodes[peer].last_seen = g->clock;
	edge_account(g, node, peer, 0, 0, x->duration_ns, 0, x->end_mono_ns, false, x->error, true);
}

void graph__add(struct graph *g, const struct graph_exchange *x)
{
	const char *service = x->service && *x->service ? x->service : "unknown";
	uint32_t node, slot, pos;
	struct pending *p;
	uint8_t key[24];
	uint64_t h;

	memcpy(key, x->trace_id, 16);
	memcpy(key + 16, x->client_span_id, 8);
	h = hash_bytes(key, sizeof(key), 0);
	/* The index is large and its slot random: fetched while the node is found. */
	__builtin_prefetch(&g->pend_idx[(uint32_t)h & (PENDING_INDEX - 1)]);
	if (x->connect)
		g->st.failed_connections++;
	else
		g->st.exchanges++;
	if (x->end_mono_ns > g->clock)
		g->clock = x->end_mono_ns;
	expire_pending(g);
	node = node_get(g, service, x->host ? x->host : "", NODE_SERVICE);
	if (node == NONE) {
		g->st.nodes_dropped++;
		return;
	}
	g->nodes[node].last_seen = g->clock;
	node_touch_pid(&g->nodes[node], x->pid, g->clock);
	if (x->connect) {
		add_failed_connection(g, node, x);
		return;
	}

	slot = pend_find(g, key, h, &pos);
	if (slot != NONE) {
		p = &g->ring[slot];
		pend_index_remove_at(g, pos);
		p->done = true;
		g->waiting--;
		if (p->role != x->role) {
			/* Failed if either end saw it fail. */
			uint8_t error = x->error ? x->error : p->error;

			g->st.paired++;
			if (x->role == GRAPH_ROLE_CLIENT)
				edge_account(g, node, p->node, x->request_bytes, x->response_bytes,
					     x->duration_ns, x->srtt_us, x->end_mono_ns, true,
					     error, false);
			else
				edge_account(g, p->node, node, p->req, p->resp, p->dur, p->srtt_us,
					     p->end, true, error, false);
			return;
		}
		g->st.duplicates++; /* the later half replaces the earlier, as servicegraph does */
	}
	if (g->count == GRAPH_MAX_PENDING)
		pop_head(g, true);
	slot = (g->head + g->count) % GRAPH_MAX_PENDING;
	g->count++;
	g->waiting++;
	p = &g->ring[slot];
	memcpy(p->key, key, sizeof(key));
	p->hash = h;
	p->role = x->role;
	p->error = x->error;
	p->done = false;
	p->node = node;
	p->stamp = g->clock;
	p->req = x->request_bytes;
	p->resp = x->response_bytes;
	p->dur = x->duration_ns;
	p->end = x->end_mono_ns;
	p->srtt_us = x->srtt_us;
	p->peer_local = x->peer_addr && addr_on_host(g, x->family, x->peer_addr, x->local_addr);
	copy_str(p->peer, sizeof(p->peer), x->peer ? x->peer : "");
	h = h & (PENDING_INDEX - 1);
	while (g->pend_idx[h])
		h = (h + 1) & (PENDING_INDEX - 1);
	g->pend_idx[h] = slot + 1;
}

/* ---- render ---------------------------------------------------------------- */

/* Frees what has been idle too long and rebuilds the node and edge indexes. */
static void forget_idle(struct graph *g, uint64_t now)
{
	static const uint64_t idle = GRAPH_IDLE_NS;
	bool *linked = calloc(g->max_nodes, sizeof(*linked));
	bool changed = false;

	for (uint32_t i = 0; i < g->max_edges; i++) {
		struct gedge *e = &g->edges[i];

		if (!e->used)
			continue;
		if (e->last_seen + idle <= now) {
			e->used = false;
			g->n_edges--;
			changed = true;
			continue;
		}
		if (linked) {
			linked[e->src] = true;
			linked[e->dst] = true;
		}
	}
	/* Nodes only go with all their edges; without memory to tell, none goes. */
	for (uint32_t i = 0; linked && i < g->max_nodes; i++) {
		struct gnode *n = &g->nodes[i];

		if (n->used && !linked[i] && n->last_seen + idle <= now) {
			n->used = false;
			g->n_nodes--;
			changed = true;
		}
	}
	free(linked);
	if (!changed)
		return;
	memset(g->node_idx, 0, (g->node_mask + 1) * sizeof(*g->node_idx));
	memset(g->edge_idx, 0, (g->edge_mask + 1) * sizeof(*g->edge_idx));
	for (uint32_t i = 0; i < g->max_nodes; i++)
		if (g->nodes[i].used)
			node_index_insert(g, i);
	for (uint32_t i = 0; i < g->max_edges; i++)
		if (g->edges[i].used)
			edge_index_insert(g, i);
}

static void put_key(struct jbuf *b, const char *key)
{
	jbuf_putc(b, '"');
	jbuf_puts(b, key);
	jbuf_puts(b, "\":");
}

static void put_node_id(struct jbuf *b, const struct gnode *n)
{
	char id[GRAPH_NAME_MAX + HOST_MAX + 8];

	if (n->kind == NODE_PEER_OUTSIDE)
		snprintf(id, sizeof(id), "peer:%s", n->name);
	else if (n->kind == NODE_PEER_LOCAL)
		snprintf(id, sizeof(id), "local:%s@%s", n->name, n->host);
	else
		snprintf(id, sizeof(id), "svc:%s@%s", n->name, n->host);
	jbuf_json_string(b, id, sizeof(id));
}

static const char *const kind_names[] = {
	[NODE_SERVICE] = "service",
	[NODE_PEER_OUTSIDE] = "peer",
	[NODE_PEER_LOCAL] = "local_peer",
};

static void put_ms_or_null(struct jbuf *b, const char *key, bool have, double ms)
{
	jbuf_putc(b, ',');
	put_key(b, key);
	if (have)
		jbuf_double(b, ms);
	else
		jbuf_puts(b, "null");
}

static double quantile_ms(const uint32_t *h0, const uint32_t *h1, uint64_t n, double q)
{
	uint64_t rank = (uint64_t)(q * (double)n + 0.999999), cum = 0;

	if (!rank)
		rank = 1;
	for (unsigned b = 0; b < H_BUCKETS; b++) {
		cum += (uint64_t)h0[b] + h1[b];
		if (cum >= rank)
			return hist_value_ns(b) / 1e6;
	}
	return hist_value_ns(H_BUCKETS - 1) / 1e6;
}

static void render_edge(struct graph *g, struct jbuf *b, const struct gedge *e, uint64_t now)
{
	static const uint32_t zero[H_BUCKETS];
	const struct gnode *src = &g->nodes[e->src], *dst = &g->nodes[e->dst];
	uint64_t now_sec = now / NSEC_PER_SEC, epoch = now_sec / HALF_S;
	uint64_t req = 0, resp = 0, n = 0, srtt_sum = 0, srtt_n = 0, hn = 0, fc = 0, fx = 0;
	uint64_t window_start = (now_sec + 1 - GRAPH_WINDOW_S) * NSEC_PER_SEC;
	const uint32_t *h[2];
	double span;

	for (unsigned i = 0; i < SLOTS; i++) {
		const struct sec_slot *s = &e->sec[i];

		if (s->sec + GRAPH_WINDOW_S <= now_sec || s->sec > now_sec)
			continue;
		req += s->req;
		resp += s->resp;
		n += s->n;
		fc += s->failed_conn;
		fx += s->failed_ex;
		srtt_sum += s->srtt_sum;
		srtt_n += s->srtt_n;
	}
	/* The window is the last GRAPH_WINDOW_S seconds, or less for an edge younger than that. */
	if (e->first_end > window_start && e->first_end != UINT64_MAX)
		window_start = e->first_end;
	span = now > window_start ? (double)(now - window_start) / 1e9 : 0;
	if (span < 1)
		span = 1;
	for (unsigned k = 0; k < 2; k++) {
		bool recent = e->h_epoch[k] + 1 >= epoch && e->h_epoch[k] <= epoch;

		h[k] = recent ? e->hist[k] : zero;
		if (recent)
			for (unsigned i = 0; i < H_BUCKETS; i++)
				hn += e->hist[k][i];
	}

	jbuf_puts(b, "{\"source\":");
	put_node_id(b, src);
	jbuf_puts(b, ",\"target\":");
	put_node_id(b, dst);
	jbuf_puts(b, ",\"client\":");
	jbuf_json_string(b, src->name, sizeof(src->name));
	jbuf_puts(b, ",\"server\":");
	jbuf_json_string(b, dst->name, sizeof(dst->name));
	if (src->kind != NODE_SERVICE || dst->kind != NODE_SERVICE) {
		jbuf_puts(b, ",\"peer\":");
		jbuf_json_string(b, src->kind != NODE_SERVICE ? src->name : dst->name,
				 GRAPH_NAME_MAX);
	}
	jbuf_puts(b, e->paired ? ",\"paired\":true" : ",\"paired\":false");
	jbuf_puts(b, ",\"request_bytes_per_s\":");
	jbuf_double(b, (double)req * g->scale / span);
	jbuf_puts(b, ",\"response_bytes_per_s\":");
	jbuf_double(b, (double)resp * g->scale / span);
	jbuf_puts(b, ",\"exchanges_per_s\":");
	jbuf_double(b, (double)n * g->scale / span);
	jbuf_puts(b, ",\"failed_connections_per_s\":");
	jbuf_double(b, (double)fc * g->scale / span);
	jbuf_puts(b, ",\"failed_exchanges_per_s\":");
	jbuf_double(b, (double)fx * g->scale / span);
	/* Of the attempts to reach the server in the window: exchanges, and
	 * connections that never got to one. */
	jbuf_puts(b, ",\"error_rate\":");
	jbuf_double(b, n + fc ? (double)(fc + fx) / (double)(n + fc) : 0);
	put_ms_or_null(b, "p50_ms", hn, hn ? quantile_ms(h[0], h[1], hn, 0.5) : 0);
	put_ms_or_null(b, "p99_ms", hn, hn ? quantile_ms(h[0], h[1], hn, 0.99) : 0);
	put_ms_or_null(b, "srtt_ms", srtt_n, srtt_n ? (double)srtt_sum / (double)srtt_n / 1e3 : 0);
	jbuf_puts(b, ",\"exchanges\":");
	jbuf_u64(b, scaled(g, e->total_n));
	jbuf_puts(b, ",\"request_bytes\":");
	jbuf_u64(b, scaled(g, e->total_req));
	jbuf_puts(b, ",\"response_bytes\":");
	jbuf_u64(b, scaled(g, e->total_resp));
	jbuf_puts(b, ",\"failed_connections\":");
	jbuf_u64(b, scaled(g, e->total_failed_conn));
	jbuf_puts(b, ",\"failed_exchanges\":");
	jbuf_u64(b, scaled(g, e->total_failed_ex));
	jbuf_puts(b, ",\"errors\":{");
	for (unsigned k = 1, first = 1; k < TCPOTEL_ERR__COUNT; k++) {
		if (!e->errors[k])
			continue;
		if (!first)
			jbuf_putc(b, ',');
		first = 0;
		put_key(b, error_type_name(k));
		jbuf_u64(b, scaled(g, e->errors[k]));
	}
	jbuf_putc(b, '}');
	jbuf_puts(b, ",\"idle_s\":");
	jbuf_u64(b, now > e->last_seen ? (now - e->last_seen) / NSEC_PER_SEC : 0);
	jbuf_putc(b, '}');
}

static unsigned live_pids(const struct gnode *n, uint64_t now)
{
	unsigned c = 0;

	for (unsigned i = 0; i < n->n_pids; i++)
		if (n->pids[i].seen + GRAPH_IDLE_NS > now)
			c++;
	return c;
}

int graph__render_json(struct graph *g, struct jbuf *out, uint64_t now_mono_ns)
{
	bool first = true;

	if (now_mono_ns > g->clock)
		g->clock = now_mono_ns;
	expire_pending(g);
	forget_idle(g, g->clock);

	jbuf_puts(out, "{\"window_s\":");
	jbuf_u64(out, GRAPH_WINDOW_S);
	jbuf_puts(out, ",\"sampling_ratio\":");
	jbuf_double(out, g->ratio);
	jbuf_puts(out, ",\"nodes\":[");
	for (uint32_t i = 0; i < g->max_nodes; i++) {
		const struct gnode *n = &g->nodes[i];

		if (!n->used)
			continue;
		if (!first)
			jbuf_putc(out, ',');
		first = false;
		jbuf_puts(out, "{\"id\":");
		put_node_id(out, n);
		jbuf_puts(out, ",\"name\":");
		jbuf_json_string(out, n->name, sizeof(n->name));
		jbuf_puts(out, ",\"host\":");
		jbuf_json_string(out, n->host, sizeof(n->host));
		jbuf_puts(out, ",\"pids\":");
		jbuf_u64(out, live_pids(n, g->clock));
		if (n->pids_truncated)
			jbuf_puts(out, ",\"pids_truncated\":true");
		jbuf_puts(out, ",\"kind\":\"");
		jbuf_puts(out, kind_names[n->kind]);
		/* Outside this host: never a loopback or local address. */
		jbuf_puts(out, n->kind == NODE_PEER_OUTSIDE ? "\",\"external\":true}" :
							      "\",\"external\":false}");
	}
	jbuf_puts(out, "],\"edges\":[");
	first = true;
	for (uint32_t i = 0; i < g->max_edges; i++) {
		if (!g->edges[i].used)
			continue;
		if (!first)
			jbuf_putc(out, ',');
		first = false;
		render_edge(g, out, &g->edges[i], g->clock);
	}
	jbuf_puts(out, "],\"stats\":{\"exchanges\":");
	jbuf_u64(out, g->st.exchanges);
	jbuf_puts(out, ",\"failed_connections\":");
	jbuf_u64(out, g->st.failed_connections);
	jbuf_puts(out, ",\"paired\":");
	jbuf_u64(out, g->st.paired);
	jbuf_puts(out, ",\"unpaired\":");
	jbuf_u64(out, g->st.unpaired);
	jbuf_puts(out, ",\"pending\":");
	jbuf_u64(out, g->waiting);
	jbuf_puts(out, ",\"pending_overflow\":");
	jbuf_u64(out, g->st.pending_overflow);
	jbuf_puts(out, ",\"duplicates\":");
	jbuf_u64(out, g->st.duplicates);
	jbuf_puts(out, ",\"nodes_dropped\":");
	jbuf_u64(out, g->st.nodes_dropped);
	jbuf_puts(out, ",\"edges_dropped\":");
	jbuf_u64(out, g->st.edges_dropped);
	jbuf_puts(out, "}}");
	return out->failed ? -ENOMEM : 0;
}

void graph__stats(const struct graph *g, struct graph_stats *out)
{
	*out = g->st;
	out->pending = g->waiting;
	out->nodes = g->n_nodes;
	out->edges = g->n_edges;
}
