// SPDX-License-Identifier: Apache-2.0
#include "exchange.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cidr.h"
#include "errortype.h"
#include "export.h"
#include "graph.h"
#include "jbuf.h"
#include "log.h"
#include "netaddr.h"
#include "otlp.h"
#include "procinfo.h"
#include "traceid.h"

/* The span names: the same on both ends and low-cardinality (docs/design.md). */
#define SPAN_NAME	  "tcp.exchange"
#define SPAN_NAME_CONNECT "tcp.connect"

struct pending_span {
	struct proc_resource *res; /* a reference */
	struct tcpotel_tuple tuple;
	uint8_t role;
	uint8_t error; /* enum tcpotel_error: an error span */
	bool connect; /* a failed connection attempt (tcp.connect) */
	uint8_t root; /* a SERVER span of an external client: no parent */
	uint32_t srtt_us;
	uint32_t retransmits; /* segments this end retransmitted during the exchange */
	/* A CLIENT span's server, when this agent sees it too: its service.name,
	 * borrowed from the stream, which outlives the span's wait for its flush
	 * (a stream goes only after 10 minutes without change). */
	const char *peer_service;
	uint64_t start_mono_ns, end_mono_ns;
	uint64_t request_bytes, response_bytes;
	struct exchange_ids ids;
};

/* A pending span by its resource, to group spans by resource. */
struct span_ref {
	uintptr_t res;
	uint32_t idx;
};

struct exchanges {
	struct procinfo *pi;
	struct exporter *exp;
	bool spans;
	char trace_state[32];
	struct pending_span *pending;
	struct span_ref *order; /* pending spans grouped by resource */
	size_t n_pending;
	uint64_t oldest_mono_ns; /* end of the first pending exchange */
	struct jbuf body;
	struct graph *graph; /* the live map, fed with every exchange; NULL: off */
	const struct cidr_list *external_clients, *internal_networks;
	struct exchange_stats stats;
};

struct exchanges *exchanges__new(const struct exchanges_opts *opts, struct procinfo *pi,
				 struct exporter *exp)
{
	struct exchanges *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->pi = pi;
	x->exp = exp;
	x->spans = opts->spans;
	x->external_clients = opts->external_clients;
	x->internal_networks = opts->internal_networks;
	traceid_tracestate(traceid_threshold(opts->sampling_ratio), x->trace_state,
			   sizeof(x->trace_state));
	jbuf_init(&x->body);
	if (x->spans) {
		x->pending = calloc(EXCHANGE_MAX_PENDING, sizeof(*x->pending));
		x->order = calloc(EXCHANGE_MAX_PENDING, sizeof(*x->order));
		if (!x->pending || !x->order) {
			free(x->pending);
			free(x->order);
			free(x);
			errno = ENOMEM;
			return NULL;
		}
	}
	return x;
}

static void release_pending(struct exchanges *x)
{
	for (size_t i = 0; i < x->n_pending; i++)
		procinfo__put(x->pi, x->pending[i].res);
	x->n_pending = 0;
}

void exchanges__free(struct exchanges *x)
{
	if (!x)
		return;
	release_pending(x);
	free(x->pending);
	free(x->order);
	jbuf_free(&x->body);
	free(x);
}

/* The client's address and port: local on the client, remote on the server. */
static void client_endpoint(const struct tcpotel_tuple *t, uint8_t role, uint8_t addr[16],
			    uint16_t *port)
{
	bool client = role == TCPOTEL_ROLE_CLIENT;

	traceid_canonical_addr(t->family, client ? t->saddr : t->daddr, addr);
	*port = client ? t->sport : t->dport;
}

/*
 * A server's client that no agent watches (spans.external_clients, or outside
 * spans.internal_networks and off this host): its SERVER span is a root, so
 * that backends draw the caller as a "user" node. On the server the client is
 * the remote end of the tuple.
 */
static bool external_client(const struct exchanges *x, const struct tcpotel_tuple *t)
{
	const uint8_t *client = t->daddr;

	if (x->external_clients && cidr_list_contains(x->external_clients, t->family, client))
		return true;
	if (!x->internal_networks || !x->internal_networks->n ||
	    netaddr_is_loopback(t->family, client) ||
	    !memcmp(client, t->saddr, t->family == AF_INET ? 4 : 16))
		return false;
	return !cidr_list_contains(x->internal_networks, t->family, client);
}

void exchanges__set_graph(struct exchanges *x, struct graph *g)
{
	x->graph = g;
}

/* The live map sees every exchange the kernel kept. */
static void feed_graph(struct exchanges *x, const struct exchange_end *end,
		       const struct exchange_ids *ids)
{
	const struct exchange_origin *o = end->origin;

	graph__add(x->graph, &(struct graph_exchange){
				     .service = o->service,
				     .host = o->host,
				     .pid = o->pid,
				     .role = end->role,
				     .trace_id = ids->trace_id,
				     .client_span_id = ids->client_span_id,
				     .peer = o->peer,
				     .family = end->tuple->family,
				     .local_addr = end->tuple->saddr,
				     .peer_addr = end->tuple->daddr,
				     .request_bytes = end->ex->request_bytes,
				     .response_bytes = end->ex->response_bytes,
				     .duration_ns = end->ex->end_ns - end->ex->start_ns,
				     .srtt_us = end->srtt_us,
				     .end_mono_ns = end->ex->end_ns,
				     .error = end->ex->error,
				     .connect = end->connect,
			     });
}

void exchanges__end(struct exchanges *x, const struct exchange_end *end)
{
	const struct tcpotel_exchange *ex = end->ex;
	struct pending_span *p;
	struct exchange_ids ids;
	uint8_t client_addr[16];
	uint16_t client_port;

	/* The kernel sampled it already (spans.sampling_ratio, on these ids). */
	client_endpoint(end->tuple, end->role, client_addr, &client_port);
	traceid_derive_some(client_addr, client_port, ex->request_seq,
			    x->spans && end->role == TCPOTEL_ROLE_SERVER, &ids);
	if (x->graph)
		feed_graph(x, end, &ids);
	if (!x->spans)
		return;
	if (x->n_pending >= EXCHANGE_MAX_PENDING) {
		x->stats.dropped++;
		log_ratelimited(LOG_WARN, 10000, "span buffer full (%d): spans dropped",
				EXCHANGE_MAX_PENDING);
		return;
	}
	if (!x->n_pending)
		x->oldest_mono_ns = ex->end_ns;
	p = &x->pending[x->n_pending++];
	p->res = procinfo__ref(end->origin->res);
	p->tuple = *end->tuple;
	p->role = end->role;
	p->error = end->ex->error;
	p->connect = end->connect;
	p->root = end->role == TCPOTEL_ROLE_SERVER && external_client(x, end->tuple);
	p->peer_service = end->role == TCPOTEL_ROLE_CLIENT ? end->origin->peer_service : NULL;
	p->srtt_us = end->srtt_us;
	p->retransmits = ex->retransmits;
	p->start_mono_ns = ex->start_ns;
	p->end_mono_ns = ex->end_ns;
	p->request_bytes = ex->request_bytes;
	p->response_bytes = ex->response_bytes;
	p->ids = ids;
}

/* Sorts references, not the spans themselves: a reference is 16 bytes, and
 * holds its key, so that comparing two reads no span. */
static int by_resource(const void *a, const void *b)
{
	uintptr_t ra = ((const struct span_ref *)a)->res, rb = ((const struct span_ref *)b)->res;

	return ra < rb ? -1 : ra > rb;
}

static void encode_span(struct jbuf *b, const struct pending_span *p, const char *trace_state,
			uint64_t to_unix_ns)
{
	bool client = p->role == TCPOTEL_ROLE_CLIENT;
	char local[NETADDR_STRLEN], remote[NETADDR_STRLEN];
	const char *client_addr = client ? local : remote, *server_addr = client ? remote : local;
	uint16_t client_port = client ? p->tuple.sport : p->tuple.dport;
	uint16_t server_port = client ? p->tuple.dport : p->tuple.sport;
	const char *error = error_type_name(p->error);
	struct otlp_attr a[14];
	struct otlp_span span = {
		.trace_state = trace_state,
		.name = p->connect ? SPAN_NAME_CONNECT : SPAN_NAME,
		.kind = client ? OTLP_SPAN_KIND_CLIENT : OTLP_SPAN_KIND_SERVER,
		.start_unix_nano = p->start_mono_ns + to_unix_ns,
		.end_unix_nano = p->end_mono_ns + to_unix_ns,
		.attrs = a,
		.n_attrs = 12,
		.status = error ? OTLP_STATUS_ERROR : OTLP_STATUS_UNSET,
		.status_message = error,
	};

	netaddr_format(p->tuple.family, p->tuple.saddr, local);
	netaddr_format(p->tuple.family, p->tuple.daddr, remote);
	a[0] = OTLP_ATTR_STR("network.transport", "tcp");
	a[1] = OTLP_ATTR_STR("network.type", netaddr_type(p->tuple.family));
	a[2] = OTLP_ATTR_STR("server.address", server_addr);
	a[3] = OTLP_ATTR_INT("server.port", server_port);
	a[4] = OTLP_ATTR_STR("client.address", client_addr);
	a[5] = OTLP_ATTR_INT("client.port", client_port);
	a[6] = OTLP_ATTR_STR("network.peer.address", remote);
	a[7] = OTLP_ATTR_INT("network.peer.port", p->tuple.dport);
	a[8] = OTLP_ATTR_INT("tcp.request.size", (int64_t)p->request_bytes);
	a[9] = OTLP_ATTR_INT("tcp.response.size", (int64_t)p->response_bytes);
	/* Divided, not multiplied by 1e-6: the double nearest the exact value, which prints short. */
	a[10] = OTLP_ATTR_DOUBLE("tcp.srtt", p->srtt_us / 1e6);
	a[11] = OTLP_ATTR_INT("tcp.retransmits", p->retransmits);
	/* An attempt has the address it dialled and nothing moved. */
	if (p->connect)
		span.n_attrs = 8;
	if (error)
		a[span.n_attrs++] = OTLP_ATTR_STR("error.type", error);
	if (p->peer_service)
		a[span.n_attrs++] = OTLP_ATTR_STR("peer.service", p->peer_service);
	memcpy(span.trace_id, p->ids.trace_id, 16);
	if (client) {
		memcpy(span.span_id, p->ids.client_span_id, 8);
	} else {
		memcpy(span.span_id, p->ids.server_span_id, 8);
		if (!p->root)
			memcpy(span.parent_span_id, p->ids.client_span_id, 8);
	}
	otlp_span(b, &span);
}

/* CLOCK_REALTIME - CLOCK_MONOTONIC now: the kernel's stamps to Unix time. */
static uint64_t mono_to_unix_ns(void)
{
	struct timespec real, mono;

	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	return (uint64_t)(real.tv_sec - mono.tv_sec) * NSEC_PER_SEC + (uint64_t)real.tv_nsec -
	       (uint64_t)mono.tv_nsec;
}

/* One body of spans order[from, to), grouped by resource (they are sorted). */
static void send_batch(struct exchanges *x, size_t from, size_t to)
{
	uint64_t to_unix = mono_to_unix_ns();
	const struct proc_resource *cur = NULL;

	jbuf_reset(&x->body);
	otlp_traces_begin(&x->body);
	for (size_t i = from; i < to; i++) {
		const struct pending_span *p = &x->pending[x->order[i].idx];

		if (p->res != cur) {
			struct otlp_resource res = { p->res->attrs, p->res->n_attrs };

			if (cur)
				otlp_traces_resource_end(&x->body);
			otlp_traces_resource_begin(&x->body, &res);
			cur = p->res;
		}
		encode_span(&x->body, p, x->trace_state, to_unix);
	}
	if (cur)
		otlp_traces_resource_end(&x->body);
	otlp_traces_end(&x->body);
	if (x->body.failed) {
		x->stats.dropped += to - from;
		log_err("out of memory encoding %zu spans: dropped", to - from);
		return;
	}
	/* The exporter takes the buffer; a fresh one is grown for the next batch. */
	exporter__submit(x->exp, SIGNAL_TRACES, x->body.data, x->body.len, (uint32_t)(to - from));
	jbuf_init(&x->body);
	x->stats.spans += to - from;
}

void exchanges__flush(struct exchanges *x, uint64_t now_mono_ns, bool force)
{
	if (!x->n_pending)
		return;
	if (!force && x->n_pending < EXCHANGE_MAX_BATCH &&
	    now_mono_ns - x->oldest_mono_ns < EXCHANGE_FLUSH_MS * NSEC_PER_MSEC)
		return;
	for (size_t i = 0; i < x->n_pending; i++)
		x->order[i] = (struct span_ref){ (uintptr_t)x->pending[i].res, (uint32_t)i };
	qsort(x->order, x->n_pending, sizeof(*x->order), by_resource);
	for (size_t i = 0; i < x->n_pending; i += EXCHANGE_MAX_BATCH)
		send_batch(x, i, MIN(i + EXCHANGE_MAX_BATCH, x->n_pending));
	release_pending(x);
}

void exchanges__stats(const struct exchanges *x, struct exchange_stats *out)
{
	*out = x->stats;
}
