// SPDX-License-Identifier: Apache-2.0
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "errortype.h"
#include "htable.h"
#include "log.h"
#include "netaddr.h"
#include "otlp.h"
#include "procinfo.h"

#define EXCHANGE_BUCKETS TCPOTEL_EXCHANGE_BUCKETS

const double metrics_srtt_bounds[TCPOTEL_SRTT_BUCKETS - 1] = {
	1e-6,	       2e-6,	    4e-6,	 8e-6,	       16e-6,	     32e-6,
	64e-6,	       128e-6,	    256e-6,	 512e-6,       1024e-6,	     2048e-6,
	4096e-6,       8192e-6,	    16384e-6,	 32768e-6,     65536e-6,     131072e-6,
	262144e-6,     524288e-6,   1048576e-6,	 2097152e-6,   4194304e-6,   8388608e-6,
	16777216e-6,   33554432e-6, 67108864e-6, 134217728e-6, 268435456e-6, 536870912e-6,
	1073741824e-6,
};

const double metrics_exchange_bounds[EXCHANGE_BUCKETS - 1] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1,	0.25,	 0.5,	 1,	2.5,	5,     10,   30,    60,
};
const size_t metrics_n_exchange_bounds = EXCHANGE_BUCKETS - 1;
/* The same bounds as the kernel counts with (bpf/tcpotel.h); test_metrics checks they agree. */
const uint64_t metrics_exchange_bounds_ns[EXCHANGE_BUCKETS - 1] = TCPOTEL_EXCHANGE_BOUNDS_NS;

struct histogram {
	uint64_t count;
	double sum;
	double min, max;
};

struct group;

/* tcp.exchange.duration of a stream's failed exchanges, one series per error.type. */
struct failed_exchanges {
	struct histogram hist[TCPOTEL_ERR__COUNT];
	uint64_t counts[TCPOTEL_ERR__COUNT][EXCHANGE_BUCKETS];
};

struct stream {
	struct hnode node;
	struct stream_key key;
	struct group *group;
	/* metrics.per_process false: the service instance's stream that every
	 * change is also added to (NULL for such a stream itself), and for that
	 * one, how many process streams feed it. */
	struct stream *agg;
	unsigned feeders;
	struct stream *prev, *next; /* in the group */
	char peer[NETADDR_STRLEN];
	char *peer_service;
	uint64_t start_unix_ns;
	uint64_t changed_unix_ns;
	bool exported_since_change;
	uint64_t sent, received, opened, retransmits;
	int64_t active;
	struct histogram srtt;
	uint64_t srtt_counts[TCPOTEL_SRTT_BUCKETS];
	struct histogram exchange;
	uint64_t exchange_counts[EXCHANGE_BUCKETS];
	/* tcp.connection.failed by error.type (enum tcpotel_error). */
	uint64_t connect_failed[TCPOTEL_ERR__COUNT];
	bool any_connect_failed;
	struct failed_exchanges *failed; /* NULL until one fails */
};

/* The streams of one resource, so that the body is written resource by resource. */
struct group {
	struct hnode node;
	struct hnode inode; /* a service instance's group: in metrics.instances */
	bool instance;
	uint64_t attrs_hash;
	struct proc_resource *res;
	struct stream *head;
	size_t n;
};

struct metrics {
	struct procinfo *pi;
	struct htable streams;
	struct htable groups;
	struct htable instances; /* groups of service instances, by their attributes */
	bool per_process;
	size_t max_streams;
	uint64_t dropped;
	uint64_t start_unix_ns;
};

struct metrics *metrics__new(struct procinfo *pi, size_t max_streams)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->pi = pi;
	m->max_streams = max_streams;
	m->per_process = true;
	if (htable_init(&m->streams, 1024) || htable_init(&m->groups, 256) ||
	    htable_init(&m->instances, 64)) {
		metrics__free(m);
		errno = ENOMEM;
		return NULL;
	}
	return m;
}

static void stream_free(struct metrics *m, struct stream *s)
{
	struct group *g = s->group;

	htable_remove(&m->streams, &s->node);
	if (s->prev)
		s->prev->next = s->next;
	else
		g->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->agg)
		s->agg->feeders--;
	procinfo__put(m->pi, s->key.res);
	free(s->peer_service);
	free(s->failed);
	free(s);
	if (--g->n == 0) {
		htable_remove(&m->groups, &g->node);
		if (g->instance)
			htable_remove(&m->instances, &g->inode);
		free(g);
	}
}

void metrics__set_per_process(struct metrics *m, bool per_process)
{
	m->per_process = per_process;
}

void metrics__free(struct metrics *m)
{
	struct hnode *n, *tmp;
	size_t i;

	if (!m)
		return;
	if (m->streams.buckets) {
		/* In any order: no stream may count on the instance stream it feeds. */
		htable_for_each_safe(&m->streams, i, n, tmp)
			container_of(n, struct stream, node)->agg = NULL;
		htable_for_each_safe(&m->streams, i, n, tmp)
			stream_free(m, container_of(n, struct stream, node));
	}
	htable_free(&m->streams);
	htable_free(&m->groups);
	htable_free(&m->instances);
	free(m);
}

static uint64_t key_hash(const struct stream_key *k)
{
	return hash_bytes(k, sizeof(*k), 0);
}

static struct group *group_get(struct metrics *m, struct proc_resource *res)
{
	uint64_t h = hash_u64((uint64_t)(uintptr_t)res);
	struct hnode *n;
	struct group *g;

	for (n = htable_first(&m->groups, h); n; n = htable_next_same(n, h)) {
		g = container_of(n, struct group, node);
		if (g->res == res)
			return g;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->res = res;
	htable_insert(&m->groups, &g->node, h);
	return g;
}

static uint64_t attrs_hash(const struct proc_resource *res)
{
	uint64_t h = 0;

	for (size_t i = 0; i < res->n_attrs; i++) {
		const struct otlp_attr *a = &res->attrs[i];

		h = hash_bytes(a->key, strlen(a->key), h);
		h = a->type == OTLP_STRING ? hash_bytes(a->s, strlen(a->s), h) :
					     hash_bytes(&a->i, sizeof(a->i), h);
	}
	return h;
}

/*
 * The service instance of process resource `res`: its attributes without
 * process.pid and process.command_line, one resource (and group) for every
 * process that has the same. A new reference, or NULL.
 */
static struct proc_resource *instance_of(struct metrics *m, const struct proc_resource *res)
{
	struct proc_resource *inst = procinfo__without_process(m->pi, res);
	uint64_t h;

	if (!inst)
		return NULL;
	h = attrs_hash(inst);
	for (struct hnode *n = htable_first(&m->instances, h); n; n = htable_next_same(n, h)) {
		struct group *g = container_of(n, struct group, inode);

		if (g->attrs_hash == h && procinfo_same_attrs(g->res, inst)) {
			procinfo__put(m->pi, inst);
			return procinfo__ref(g->res);
		}
	}
	return inst;
}

/* Takes over the reference to key->res. */
static struct stream *stream_get(struct metrics *m, const struct stream_key *key, bool instance)
{
	struct stream_key k;
	struct stream *s;
	struct group *g;
	struct hnode *n;
	uint64_t h;

	/* The key is hashed as bytes: copy it so that padding is zero. */
	memset(&k, 0, sizeof(k));
	k.res = key->res;
	k.role = key->role;
	k.family = key->family;
	k.port = key->port;
	memcpy(k.peer, key->peer, key->family == AF_INET ? 4 : 16);
	h = key_hash(&k);
	for (n = htable_first(&m->streams, h); n; n = htable_next_same(n, h)) {
		s = container_of(n, struct stream, node);
		if (memcmp(&s->key, &k, sizeof(k)) == 0) {
			procinfo__put(m->pi, key->res);
			return s;
		}
	}
	if (m->streams.count >= m->max_streams) {
		m->dropped++;
		log_ratelimited(LOG_WARN, 60000,
				"metric stream limit (%zu) reached: new streams are not recorded",
				m->max_streams);
		procinfo__put(m->pi, key->res);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	g = s ? group_get(m, key->res) : NULL;
	if (!g) {
		free(s);
		procinfo__put(m->pi, key->res);
		return NULL;
	}
	if (instance && !g->instance) {
		g->instance = true;
		g->attrs_hash = attrs_hash(key->res);
		htable_insert(&m->instances, &g->inode, g->attrs_hash);
	}
	s->key = k;
	s->group = g;
	s->next = g->head;
	if (g->head)
		g->head->prev = s;
	g->head = s;
	g->n++;
	netaddr_format(k.family, k.peer, s->peer);
	htable_insert(&m->streams, &s->node, h);
	return s;
}

struct stream *metrics__stream(struct metrics *m, const struct stream_key *key)
{
	struct stream_key ik = *key;
	struct stream *s = stream_get(m, key, false);

	if (!s || m->per_process || s->agg)
		return s;
	/* A new process stream: it feeds its service instance's. */
	ik.res = instance_of(m, key->res);
	if (!ik.res)
		return s;
	s->agg = stream_get(m, &ik, true);
	if (s->agg)
		s->agg->feeders++;
	return s;
}

static void touch(struct stream *s)
{
	s->exported_since_change = false;
}

/* Every change goes to the stream and to the service instance's it feeds. */
#define for_stream_and_instance(s) for (; (s); (s) = (s)->agg)

void stream__prefetch(const struct stream *s)
{
	for (size_t off = 0; off < sizeof(*s); off += 64)
		__builtin_prefetch((const char *)s + off, 1);
}

void stream__touch(struct stream *s)
{
	for_stream_and_instance(s)
		touch(s);
}

void stream__add_io(struct stream *s, uint64_t sent, uint64_t received)
{
	if (!sent && !received)
		return;
	for_stream_and_instance(s) {
		s->sent += sent;
		s->received += received;
		touch(s);
	}
}

void stream__add_opened(struct stream *s, uint64_t n)
{
	for_stream_and_instance(s) {
		s->opened += n;
		touch(s);
	}
}

void stream__add_active(struct stream *s, int64_t delta)
{
	for_stream_and_instance(s) {
		s->active += delta;
		touch(s);
	}
}

void stream__add_retransmits(struct stream *s, uint64_t n)
{
	if (!n)
		return;
	for_stream_and_instance(s) {
		s->retransmits += n;
		touch(s);
	}
}

static void hist_minmax(struct histogram *h, double v_min, double v_max)
{
	if (h->count == 0 || v_min < h->min)
		h->min = v_min;
	if (h->count == 0 || v_max > h->max)
		h->max = v_max;
}

/*
 * Adds per-bucket deltas of a kernel histogram. The count comes from the
 * buckets, so that bucketCounts always sum to it. min, max and sum are in
 * seconds. Returns whether anything was added.
 */
static bool hist_add(struct histogram *h, uint64_t *counts, const uint32_t *delta, int n_buckets,
		     double sum, double min, double max)
{
	uint64_t total = 0;

	/* A delta holds a few buckets: only theirs are written (and brought into the cache). */
	for (int i = 0; i < n_buckets; i++) {
		if (!delta[i])
			continue;
		counts[i] += delta[i];
		total += delta[i];
	}
	if (!total)
		return false;
	hist_minmax(h, min, max);
	h->count += total;
	h->sum += sum;
	return true;
}

void stream__add_srtt(struct stream *s, const uint32_t delta[TCPOTEL_SRTT_BUCKETS], uint64_t sum_us,
		      uint32_t min_us, uint32_t max_us)
{
	for_stream_and_instance(s) {
		if (hist_add(&s->srtt, s->srtt_counts, delta, TCPOTEL_SRTT_BUCKETS, sum_us * 1e-6,
			     min_us * 1e-6, max_us * 1e-6))
			touch(s);
	}
}

unsigned metrics_exchange_bucket(uint64_t duration_ns)
{
	unsigned k = 0;

	while (k < EXCHANGE_BUCKETS - 1 && duration_ns > metrics_exchange_bounds_ns[k])
		k++;
	return k;
}

void stream__add_exchanges(struct stream *s, const uint32_t delta[TCPOTEL_EXCHANGE_BUCKETS],
			   uint64_t sum_ns, uint64_t min_ns, uint64_t max_ns)
{
	for_stream_and_instance(s) {
		if (hist_add(&s->exchange, s->exchange_counts, delta, EXCHANGE_BUCKETS,
			     sum_ns * 1e-9, min_ns * 1e-9, max_ns * 1e-9))
			touch(s);
	}
}

void stream__add_connect_failed(struct stream *s, unsigned err)
{
	if (err >= TCPOTEL_ERR__COUNT)
		return;
	for_stream_and_instance(s) {
		s->connect_failed[err]++;
		s->any_connect_failed = true;
		touch(s);
	}
}

void stream__add_failed_exchange(struct stream *s, unsigned err, uint64_t duration_ns)
{
	unsigned b = metrics_exchange_bucket(duration_ns);
	double d = duration_ns * 1e-9;

	if (!err || err >= TCPOTEL_ERR__COUNT)
		return;
	for_stream_and_instance(s) {
		struct histogram *h;

		if (!s->failed) {
			s->failed = calloc(1, sizeof(*s->failed));
			if (!s->failed) {
				log_ratelimited(LOG_WARN, 60000,
						"out of memory: a failed exchange is not counted");
				continue;
			}
		}
		h = &s->failed->hist[err];
		hist_minmax(h, d, d);
		h->count++;
		h->sum += d;
		s->failed->counts[err][b]++;
		touch(s);
	}
}

const char *stream__peer_service(const struct stream *s)
{
	return s->peer_service;
}

void stream__set_peer_service(struct stream *s, const char *name)
{
	if (!name)
		return;
	for_stream_and_instance(s) {
		if (!s->peer_service)
			s->peer_service = strdup(name);
	}
}

size_t metrics__streams(const struct metrics *m)
{
	return m->streams.count;
}

uint64_t metrics__streams_dropped(const struct metrics *m)
{
	return m->dropped;
}

/* ---- encoding ------------------------------------------------------------ */

enum metric_id {
	M_IO,
	M_SRTT,
	M_OPENED,
	M_ACTIVE,
	M_RETRANSMITS,
	M_EXCHANGE,
	M_CONNECT_FAILED,
	M__COUNT,
};

static const struct otlp_metric_desc stream_metrics[M__COUNT] = {
	[M_IO] = { "tcp.io", "By", "Bytes sent and received over TCP", OTLP_SUM_MONOTONIC },
	[M_SRTT] = { "tcp.srtt", "s", "Smoothed round-trip time samples", OTLP_HISTOGRAM },
	[M_OPENED] = { "tcp.connection.opened", "{connection}", "Connections established",
		       OTLP_SUM_MONOTONIC },
	[M_ACTIVE] = { "tcp.connection.active", "{connection}", "Connections open now",
		       OTLP_SUM_NONMONOTONIC },
	[M_RETRANSMITS] = { "tcp.retransmits", "{segment}", "Retransmitted segments",
			    OTLP_SUM_MONOTONIC },
	[M_EXCHANGE] = { "tcp.exchange.duration", "s",
			 "Request/response exchanges: first request byte to last response byte",
			 OTLP_HISTOGRAM },
	[M_CONNECT_FAILED] = { "tcp.connection.failed", "{connection}",
			       "Connection attempts that failed", OTLP_SUM_MONOTONIC },
};

#define MAX_POINT_ATTRS 10

/* The stream's attributes; `direction` adds network.io.direction. */
static size_t stream_attrs(const struct stream *s, struct otlp_attr *a, const char *direction)
{
	bool client = s->key.role == TCPOTEL_ROLE_CLIENT;
	size_t n = 0;

	a[n++] = OTLP_ATTR_STR("tcp.role", client ? "client" : "server");
	if (direction)
		a[n++] = OTLP_ATTR_STR("network.io.direction", direction);
	a[n++] = OTLP_ATTR_STR("network.transport", "tcp");
	a[n++] = OTLP_ATTR_STR("network.type", netaddr_type(s->key.family));
	if (client) {
		a[n++] = OTLP_ATTR_STR("server.address", s->peer);
		a[n++] = OTLP_ATTR_INT("server.port", s->key.port);
		a[n++] = OTLP_ATTR_STR("network.peer.address", s->peer);
		a[n++] = OTLP_ATTR_INT("network.peer.port", s->key.port);
	} else {
		a[n++] = OTLP_ATTR_STR("client.address", s->peer);
		a[n++] = OTLP_ATTR_INT("server.port", s->key.port);
		a[n++] = OTLP_ATTR_STR("network.peer.address", s->peer);
	}
	if (s->peer_service)
		a[n++] = OTLP_ATTR_STR("peer.service", s->peer_service);
	return n;
}

static void exchange_point(struct otlp_metrics_emitter *e, const struct stream *s, uint64_t now,
			   const struct histogram *hist, const uint64_t *counts, const char *error)
{
	struct otlp_attr a[MAX_POINT_ATTRS];
	struct otlp_histogram_point h = {
		.bounds = metrics_exchange_bounds,
		.n_bounds = EXCHANGE_BUCKETS - 1,
		.counts = counts,
		.count = hist->count,
		.sum = hist->sum,
		.has_min_max = true,
		.min = hist->min,
		.max = hist->max,
	};
	size_t n = stream_attrs(s, a, NULL);

	if (error)
		a[n++] = OTLP_ATTR_STR("error.type", error);
	e->ops->point_histogram(e, a, n, s->start_unix_ns, now, &h);
}

/* tcp.exchange.duration: the successful exchanges' series (no error.type, as
 * the HTTP conventions do), then one per error.type of the failed ones. */
static size_t encode_exchange_points(struct otlp_metrics_emitter *e, const struct stream *s,
				     uint64_t now)
{
	size_t points = 0;

	if (s->exchange.count) {
		exchange_point(e, s, now, &s->exchange, s->exchange_counts, NULL);
		points++;
	}
	for (unsigned k = 1; s->failed && k < TCPOTEL_ERR__COUNT; k++) {
		if (!s->failed->hist[k].count)
			continue;
		exchange_point(e, s, now, &s->failed->hist[k], s->failed->counts[k],
			       error_type_name(k));
		points++;
	}
	return points;
}

static size_t encode_connect_failed(struct otlp_metrics_emitter *e, const struct stream *s,
				    uint64_t now)
{
	struct otlp_attr a[MAX_POINT_ATTRS];
	size_t points = 0, n;

	for (unsigned k = 1; k < TCPOTEL_ERR__COUNT; k++) {
		if (!s->connect_failed[k])
			continue;
		n = stream_attrs(s, a, NULL);
		a[n++] = OTLP_ATTR_STR("error.type", error_type_name(k));
		e->ops->point_int(e, a, n, s->start_unix_ns, now, (int64_t)s->connect_failed[k]);
		points++;
	}
	return points;
}

static size_t encode_stream_metric(struct otlp_metrics_emitter *e, enum metric_id id,
				   const struct stream *s, uint64_t now)
{
	const struct otlp_metrics_emitter_ops *ops = e->ops;
	struct otlp_attr a[MAX_POINT_ATTRS];
	struct otlp_histogram_point h = {};
	size_t n;

	switch (id) {
	case M_IO:
		n = stream_attrs(s, a, "transmit");
		ops->point_int(e, a, n, s->start_unix_ns, now, (int64_t)s->sent);
		n = stream_attrs(s, a, "receive");
		ops->point_int(e, a, n, s->start_unix_ns, now, (int64_t)s->received);
		return 2;
	case M_SRTT:
		if (!s->srtt.count)
			return 0;
		h = (struct otlp_histogram_point){
			.bounds = metrics_srtt_bounds,
			.n_bounds = TCPOTEL_SRTT_BUCKETS - 1,
			.counts = s->srtt_counts,
			.count = s->srtt.count,
			.sum = s->srtt.sum,
			.has_min_max = true,
			.min = s->srtt.min,
			.max = s->srtt.max,
		};
		break;
	case M_EXCHANGE:
		return encode_exchange_points(e, s, now);
	case M_CONNECT_FAILED:
		return encode_connect_failed(e, s, now);
	case M_OPENED:
		n = stream_attrs(s, a, NULL);
		ops->point_int(e, a, n, s->start_unix_ns, now, (int64_t)s->opened);
		return 1;
	case M_ACTIVE:
		n = stream_attrs(s, a, NULL);
		ops->point_int(e, a, n, s->start_unix_ns, now, s->active);
		return 1;
	case M_RETRANSMITS:
		n = stream_attrs(s, a, NULL);
		ops->point_int(e, a, n, s->start_unix_ns, now, (int64_t)s->retransmits);
		return 1;
	default:
		return 0;
	}
	n = stream_attrs(s, a, NULL);
	ops->point_histogram(e, a, n, s->start_unix_ns, now, &h);
	return 1;
}

static bool metric_has_points(enum metric_id id, const struct group *g)
{
	for (const struct stream *s = g->head; s; s = s->next) {
		if ((id == M_SRTT && !s->srtt.count) ||
		    (id == M_EXCHANGE && !s->exchange.count && !s->failed) ||
		    (id == M_CONNECT_FAILED && !s->any_connect_failed))
			continue;
		return true;
	}
	return false;
}

static size_t encode_group(struct otlp_metrics_emitter *e, const struct group *g, uint64_t now)
{
	struct otlp_resource res = { g->res->attrs, g->res->n_attrs };
	size_t points = 0;

	e->ops->resource_begin(e, &res);
	for (int id = 0; id < M__COUNT; id++) {
		if (!metric_has_points((enum metric_id)id, g))
			continue;
		e->ops->metric_begin(e, &stream_metrics[id]);
		for (const struct stream *s = g->head; s; s = s->next)
			points += encode_stream_metric(e, (enum metric_id)id, s, now);
		e->ops->metric_end(e);
	}
	e->ops->resource_end(e);
	return points;
}

struct self_metric {
	struct otlp_metric_desc desc;
	size_t offset; /* of the uint64_t in struct self_stats */
	/* One point per value of attribute `key` (NULL: one point, no attribute): offset is
	 * of an array of as many uint64_t. */
	const char *key;
	const char *const *values;
	size_t n_values;
	bool map; /* only with the live map (self_stats.map) */
};

#define SELF(field) offsetof(struct self_stats, field)

static const char *const signal_values[] = { "metrics", "traces" }; /* [SIGNAL_*] */
static const char *const map_drop_values[SELF_MAP_DROP__COUNT] = {
	[SELF_MAP_NODE_LIMIT] = "node_limit",
	[SELF_MAP_EDGE_LIMIT] = "edge_limit",
	[SELF_MAP_DUPLICATE] = "duplicate",
};

_Static_assert(ARRAY_SIZE(((struct self_stats *)0)->sent_items) == ARRAY_SIZE(signal_values),
	       "one value per signal");

/* The designated initializers of a metric with one point per value. */
#define BY_SIGNAL .key = "signal", .values = signal_values, .n_values = ARRAY_SIZE(signal_values)
#define BY_REASON \
	.key = "reason", .values = map_drop_values, .n_values = ARRAY_SIZE(map_drop_values)

static const struct self_metric self_metrics[] = {
	{ { "tcpotel.kernel.records.lost", "{record}",
	    "Ring-buffer records lost because the buffer was full", OTLP_SUM_MONOTONIC },
	  SELF(kernel_counters) + TCPOTEL_CNT_RINGBUF_LOST * sizeof(uint64_t) },
	{ { "tcpotel.kernel.records.invalid", "{record}",
	    "Ring-buffer records of an unknown type or size, left out", OTLP_SUM_MONOTONIC },
	  SELF(records_invalid) },
	{ { "tcpotel.sockets.untracked", "{socket}",
	    "Sockets not tracked because the socket table was full", OTLP_SUM_MONOTONIC },
	  SELF(kernel_counters) + TCPOTEL_CNT_SOCK_UNTRACKED * sizeof(uint64_t) },
	{ { "tcpotel.listeners.untracked", "{socket}",
	    "Listening sockets not tracked because the listener table was full",
	    OTLP_SUM_MONOTONIC },
	  SELF(kernel_counters) + TCPOTEL_CNT_LISTEN_UNTRACKED * sizeof(uint64_t) },
	{ { "tcpotel.sockets.ignored", "{socket}",
	    "Sockets left out by the filters (own traffic, ports, namespaces)",
	    OTLP_SUM_MONOTONIC },
	  SELF(kernel_counters) + TCPOTEL_CNT_SOCK_IGNORED * sizeof(uint64_t) },
	{ { "tcpotel.sockets.tracked", "{socket}", "Sockets tracked now", OTLP_GAUGE },
	  SELF(sockets_tracked) },
	{ { "tcpotel.sockets.retired", "{socket}",
	    "Sockets gone from the kernel's table whose close record was lost",
	    OTLP_SUM_MONOTONIC },
	  SELF(sockets_retired) },
	{ { "tcpotel.exchanges", "{exchange}", "Exchanges seen", OTLP_SUM_MONOTONIC },
	  SELF(exchanges) },
	{ { "tcpotel.exchanges.unanswered", "{exchange}",
	    "Exchanges ended by spans.response_timeout before any response byte",
	    OTLP_SUM_MONOTONIC },
	  SELF(kernel_counters) + TCPOTEL_CNT_UNANSWERED * sizeof(uint64_t) },
	{ { "tcpotel.spans.sampled_out", "{span}", "Exchanges not sampled (spans.sampling_ratio)",
	    OTLP_SUM_MONOTONIC },
	  SELF(spans_sampled_out) },
	{ { "tcpotel.spans.dropped", "{span}", "Spans dropped before export (buffer full)",
	    OTLP_SUM_MONOTONIC },
	  SELF(spans_dropped) },
	{ { "tcpotel.spans.queued", "{span}", "Spans handed to the export queue",
	    OTLP_SUM_MONOTONIC },
	  SELF(spans_queued) },
	{ { "tcpotel.streams", "{stream}", "Metric streams held", OTLP_GAUGE }, SELF(streams) },
	{ { "tcpotel.streams.dropped", "{stream}", "Metric streams not recorded (limit reached)",
	    OTLP_SUM_MONOTONIC },
	  SELF(streams_dropped) },
	{ { "tcpotel.export.failures", "{request}", "Export requests that failed (each try)",
	    OTLP_SUM_MONOTONIC },
	  SELF(export_failures) },
	{ { "tcpotel.export.retries", "{request}", "Failed export requests tried again",
	    OTLP_SUM_MONOTONIC },
	  SELF(export_retries) },
	{ { "tcpotel.export.queue.depth", "{batch}", "Batches waiting in the export queue",
	    OTLP_GAUGE },
	  SELF(queue_depth) },
	{ { "tcpotel.export.sent", "{item}", "Spans and metric points the collector accepted",
	    OTLP_SUM_MONOTONIC },
	  .offset = SELF(sent_items),
	  BY_SIGNAL },
	{ { "tcpotel.export.batches", "{batch}", "Request bodies the collector accepted",
	    OTLP_SUM_MONOTONIC },
	  .offset = SELF(sent_batches),
	  BY_SIGNAL },
	{ { "tcpotel.export.bytes", "By", "Request body bytes sent, compressed, every try",
	    OTLP_SUM_MONOTONIC },
	  .offset = SELF(sent_bytes),
	  BY_SIGNAL },
	{ { "tcpotel.export.dropped", "{item}",
	    "Spans and metric points dropped: queue full, refused, retries expired",
	    OTLP_SUM_MONOTONIC },
	  .offset = SELF(dropped_items),
	  BY_SIGNAL },
	{ { "tcpotel.export.rejected", "{item}",
	    "Spans and metric points the collector rejected (partial success)",
	    OTLP_SUM_MONOTONIC },
	  .offset = SELF(rejected_items),
	  BY_SIGNAL },
	{ { "tcpotel.map.halves", "{half}", "Exchange halves given to the live map (sampled)",
	    OTLP_SUM_MONOTONIC },
	  .offset = SELF(map_halves),
	  .map = true },
	{ { "tcpotel.map.connections.failed", "{connection}",
	    "Failed connection attempts given to the live map (sampled)", OTLP_SUM_MONOTONIC },
	  .offset = SELF(map_failed_connections),
	  .map = true },
	{ { "tcpotel.map.paired", "{exchange}",
	    "Exchanges whose two halves the live map paired (both ends on this host)",
	    OTLP_SUM_MONOTONIC },
	  .offset = SELF(map_paired),
	  .map = true },
	{ { "tcpotel.map.unpaired", "{half}",
	    "Exchange halves the live map drew alone, to or from a peer", OTLP_SUM_MONOTONIC },
	  .offset = SELF(map_unpaired),
	  .map = true },
	{ { "tcpotel.map.pending", "{half}", "Exchange halves waiting for their other half now",
	    OTLP_GAUGE },
	  .offset = SELF(map_pending),
	  .map = true },
	{ { "tcpotel.map.pending.overflow", "{half}",
	    "Exchange halves drawn alone early: the pairing table was full", OTLP_SUM_MONOTONIC },
	  .offset = SELF(map_pending_overflow),
	  .map = true },
	{ { "tcpotel.map.dropped", "{exchange}",
	    "Exchanges and failed connection attempts left out of the live map",
	    OTLP_SUM_MONOTONIC },
	  .offset = SELF(map_dropped),
	  BY_REASON,
	  .map = true },
	{ { "tcpotel.map.nodes", "{node}", "Nodes on the live map now", OTLP_GAUGE },
	  .offset = SELF(map_nodes),
	  .map = true },
	{ { "tcpotel.map.edges", "{edge}", "Edges on the live map now", OTLP_GAUGE },
	  .offset = SELF(map_edges),
	  .map = true },
};

static size_t encode_self(struct otlp_metrics_emitter *e, const struct proc_resource *self_res,
			  const struct self_stats *st, uint64_t start, uint64_t now)
{
	struct otlp_resource res = { self_res->attrs, self_res->n_attrs };
	size_t points = 0;

	e->ops->resource_begin(e, &res);
	for (size_t i = 0; i < ARRAY_SIZE(self_metrics); i++) {
		const struct self_metric *sm = &self_metrics[i];
		const uint64_t *v = (const uint64_t *)((const char *)st + sm->offset);
		uint64_t t0 = sm->desc.kind == OTLP_GAUGE ? 0 : start;

		if (sm->map && !st->map)
			continue;
		e->ops->metric_begin(e, &sm->desc);
		for (size_t k = 0; k < (sm->key ? sm->n_values : 1); k++) {
			struct otlp_attr a = OTLP_ATTR_STR(sm->key, sm->key ? sm->values[k] : NULL);

			e->ops->point_int(e, &a, sm->key ? 1 : 0, t0, now, (int64_t)v[k]);
			points++;
		}
		e->ops->metric_end(e);
	}
	e->ops->resource_end(e);
	return points;
}

size_t metrics__encode(struct metrics *m, struct otlp_metrics_emitter *e, uint64_t now_unix_ns,
		       const struct self_stats *self)
{
	struct hnode *n, *tmp;
	size_t i, points = 0;

	if (!m->start_unix_ns)
		m->start_unix_ns = now_unix_ns;
	e->ops->begin(e);
	htable_for_each_safe(&m->groups, i, n, tmp) {
		struct group *g = container_of(n, struct group, node);

		for (struct stream *s = g->head; s; s = s->next) {
			if (!s->start_unix_ns)
				s->start_unix_ns = now_unix_ns;
			s->exported_since_change = true;
		}
		/* Processes, or the service instances they add up to; never both. */
		if (g->instance != m->per_process)
			points += encode_group(e, g, now_unix_ns);
	}
	if (self)
		points +=
			encode_self(e, procinfo__self(m->pi), self, m->start_unix_ns, now_unix_ns);
	e->ops->end(e);
	return points;
}

size_t metrics__evict_idle(struct metrics *m, uint64_t now_unix_ns, uint64_t idle_ns)
{
	struct hnode *n, *tmp;
	size_t i, removed = 0;

	htable_for_each_safe(&m->streams, i, n, tmp) {
		struct stream *s = container_of(n, struct stream, node);

		if (!s->exported_since_change) {
			s->changed_unix_ns = now_unix_ns;
			continue;
		}
		/* A service instance's stream goes after the last stream that feeds it. */
		if (s->active <= 0 && s->changed_unix_ns && !s->feeders &&
		    now_unix_ns - s->changed_unix_ns >= idle_ns) {
			stream_free(m, s);
			removed++;
		}
	}
	return removed;
}
