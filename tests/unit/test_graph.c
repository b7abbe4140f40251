// SPDX-License-Identifier: Apache-2.0
/*
 * The service graph: pairing of the two halves of an exchange like the
 * Collector's servicegraph connector, edges to and from peers for halves
 * left alone, rates over the sliding window, latency quantiles, idle
 * removal, and the bounds (nodes, edges, pairing table) with their counts.
 * Everything is read back from the JSON the map page gets.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "graph.h"
#include "test.h"
#include "util.h"

#define SEC 1000000000ULL
#define MS  1000000ULL
#define T0  (1000 * SEC)

struct half {
	const char *service;
	uint32_t pid;
	uint8_t role;
	uint32_t id;
	const char *peer;
	uint64_t req, resp, dur;
	uint32_t srtt_us;
	uint64_t end;
};

static void add(struct graph *g, const struct half *h)
{
	uint8_t trace[16] = { 0 }, span[8] = { 0 };
	struct graph_exchange x = {
		.service = h->service,
		.host = "node-1",
		.pid = h->pid,
		.role = h->role,
		.trace_id = trace,
		.client_span_id = span,
		.peer = h->peer,
		.request_bytes = h->req,
		.response_bytes = h->resp,
		.duration_ns = h->dur,
		.srtt_us = h->srtt_us,
		.end_mono_ns = h->end,
	};

	memcpy(trace, &h->id, sizeof(h->id));
	trace[15] = 0x5a;
	memcpy(span, &h->id, sizeof(h->id));
	span[7] = 0xa5;
	graph__add(g, &x);
}

/* One exchange seen by both ends on this host: frontend -> backend. */
static void add_pair(struct graph *g, uint32_t id, uint64_t end, uint64_t dur, bool server_first)
{
	struct half c = { "frontend", 100, GRAPH_ROLE_CLIENT, id, "10.231.0.2:8080", 100, 1000, dur,
			  50,	      end };
	struct half s = { "backend", 200,  GRAPH_ROLE_SERVER, id, "10.231.0.1",
			  100,	     1000, dur / 2,	      40, end - 1000 };

	if (server_first) {
		add(g, &s);
		add(g, &c);
	} else {
		add(g, &c);
		add(g, &s);
	}
}

static struct json_object *render(struct graph *g, uint64_t now)
{
	struct json_object *root;
	struct jbuf b;

	jbuf_init(&b);
	if (!ASSERT_OK(graph__render_json(g, &b, now)) || !ASSERT_NOT_NULL(jbuf_cstr(&b))) {
		jbuf_free(&b);
		return NULL;
	}
	root = json_tokener_parse(b.data);
	if (!root)
		test_fail_at(__FILE__, __LINE__, "not JSON: %.300s", b.data);
	jbuf_free(&b);
	return root;
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

static double num(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key);

	return v && !json_object_is_type(v, json_type_null) ? json_object_get_double(v) : NAN;
}

static const char *str(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key);

	return v ? json_object_get_string(v) : NULL;
}

static struct json_object *find(struct json_object *root, const char *list, const char *key,
				const char *value)
{
	struct json_object *a = get(root, list);

	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		struct json_object *o = json_object_array_get_idx(a, i);
		const char *s = str(o, key);

		if (s && !strcmp(s, value))
			return o;
	}
	return NULL;
}

static struct json_object *find_edge(struct json_object *root, const char *client,
				     const char *server)
{
	struct json_object *a = get(root, "edges");

	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		struct json_object *e = json_object_array_get_idx(a, i);

		if (!strcmp(str(e, "client"), client) && !strcmp(str(e, "server"), server))
			return e;
	}
	return NULL;
}

static size_t count(struct json_object *root, const char *list)
{
	struct json_object *a = get(root, list);

	return a ? json_object_array_length(a) : 0;
}

TEST(graph_pairs_both_halves_in_either_order)
{
	struct graph *g = graph__new(NULL);
	struct json_object *r = NULL, *e, *n;

	if (!ASSERT_NOT_NULL(g))
		return;
	for (uint32_t i = 0; i < 20; i++)
		add_pair(g, i, T0 + i * 100 * MS, 2 * MS, i % 2);
	r = render(g, T0 + 2 * SEC);
	if (!r)
		goto out;
	if (!ASSERT_EQ(count(r, "nodes"), 2) || !ASSERT_EQ(count(r, "edges"), 1))
		goto out;
	e = find_edge(r, "frontend", "backend");
	if (!ASSERT_NOT_NULL(e))
		goto out;
	ASSERT_STREQ(str(e, "source"), "svc:frontend@node-1");
	ASSERT_STREQ(str(e, "target"), "svc:backend@node-1");
	ASSERT_TRUE(json_object_get_boolean(get(e, "paired")));
	ASSERT_TRUE(get(e, "peer") == NULL);
	ASSERT_EQ(num(e, "exchanges"), 20);
	/* The client's view: 100 bytes out, 1000 back, 2 ms, srtt 50 us. */
	ASSERT_EQ(num(e, "request_bytes"), 2000);
	ASSERT_EQ(num(e, "response_bytes"), 20000);
	ASSERT_DOUBLE_NEAR(num(e, "p50_ms"), 2, 0.25);
	ASSERT_DOUBLE_NEAR(num(e, "srtt_ms"), 0.05, 1e-9);
	n = find(r, "nodes", "name", "frontend");
	if (ASSERT_NOT_NULL(n)) {
		ASSERT_STREQ(str(n, "host"), "node-1");
		ASSERT_EQ(num(n, "pids"), 1);
		ASSERT_FALSE(json_object_get_boolean(get(n, "external")));
	}
	ASSERT_EQ(num(get(r, "stats"), "paired"), 20);
	ASSERT_EQ(num(get(r, "stats"), "pending"), 0);
	ASSERT_EQ(num(get(r, "stats"), "unpaired"), 0);
out:
	json_object_put(r);
	graph__free(g);
}

TEST(graph_lone_halves_become_peer_edges_after_the_window)
{
	struct graph *g = graph__new(NULL);
	struct half c = {
		"frontend", 100, GRAPH_ROLE_CLIENT, 1, "10.0.0.9:5432", 10, 20, MS, 0, T0
	};
	struct half s = { "backend", 200, GRAPH_ROLE_SERVER, 2, "10.0.0.5", 30, 40, MS, 0, T0 };
	struct json_object *r = NULL, *e, *n;

	if (!ASSERT_NOT_NULL(g))
		return;
	add(g, &c);
	add(g, &s);
	/* Within the pairing window the halves wait: no edge yet. */
	r = render(g, T0 + GRAPH_PAIR_WINDOW_NS - 1);
	if (!r || !ASSERT_EQ(count(r, "edges"), 0) ||
	    !ASSERT_EQ(num(get(r, "stats"), "pending"), 2))
		goto out;
	json_object_put(r);
	r = render(g, T0 + GRAPH_PAIR_WINDOW_NS + 1);
	if (!r || !ASSERT_EQ(count(r, "edges"), 2) || !ASSERT_EQ(count(r, "nodes"), 4))
		goto out;
	e = find_edge(r, "frontend", "10.0.0.9:5432");
	if (ASSERT_NOT_NULL(e)) {
		ASSERT_STREQ(str(e, "target"), "peer:10.0.0.9:5432");
		ASSERT_STREQ(str(e, "peer"), "10.0.0.9:5432");
		ASSERT_FALSE(json_object_get_boolean(get(e, "paired")));
		ASSERT_EQ(num(e, "request_bytes"), 10);
		ASSERT_TRUE(isnan(num(e, "srtt_ms"))); /* no sample: null */
	}
	e = find_edge(r, "10.0.0.5", "backend");
	if (ASSERT_NOT_NULL(e))
		ASSERT_STREQ(str(e, "peer"), "10.0.0.5");
	n = find(r, "nodes", "name", "10.0.0.9:5432");
	if (ASSERT_NOT_NULL(n))
		ASSERT_TRUE(json_object_get_boolean(get(n, "external")));
	ASSERT_EQ(num(get(r, "stats"), "unpaired"), 2);
	ASSERT_EQ(num(get(r, "stats"), "pending"), 0);
out:
	json_object_put(r);
	graph__free(g);
}

/* One lone client half to `peer_label`, with the connection's addresses. */
static void add_lone_client(struct graph *g, uint32_t id, int family, const uint8_t *local,
			    const uint8_t *peer, const char *peer_label)
{
	uint8_t trace[16] = { 0 }, span[8] = { 0 };
	struct graph_exchange x = {
		.service = "python3",
		.host = "node-1",
		.pid = 300,
		.role = GRAPH_ROLE_CLIENT,
		.trace_id = trace,
		.client_span_id = span,
		.peer = peer_label,
		.family = family,
		.local_addr = local,
		.peer_addr = peer,
		.request_bytes = 10,
		.response_bytes = 20,
		.duration_ns = MS,
		.end_mono_ns = T0,
	};

	memcpy(trace, &id, sizeof(id));
	trace[15] = 0x77;
	memcpy(span, &id, sizeof(id));
	graph__add(g, &x);
}

/*
 * A peer at a loopback address, at the connection's own address or at one of
 * the host's addresses is on this host (the agent's own UI listener on
 * 127.0.0.1 is one: the agent's sockets are never captured, so its half never
 * comes): never "external". Other addresses are outside it.
 */
TEST(graph_loopback_and_local_peers_are_on_this_host)
{
	static const uint8_t lo4[4] = { 127, 0, 0, 1 }, lo4b[4] = { 127, 3, 2, 1 };
	static const uint8_t lo6[16] = { [15] = 1 };
	static const uint8_t mine[4] = { 10, 1, 2, 3 }, other_ns[4] = { 10, 231, 0, 1 };
	static const uint8_t far[4] = { 192, 0, 2, 7 },
			     far6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 9 };
	static const uint8_t host6[16] = { 0xfd, 0x00, [15] = 0x42 };
	static const struct {
		const char *label;
		int family;
		const uint8_t *local, *peer;
		const char *kind;
	} v[] = {
		{ "127.0.0.1:9464", AF_INET, lo4, lo4, "local_peer" }, /* the agent's own UI */
		{ "127.3.2.1:80", AF_INET, mine, lo4b, "local_peer" }, /* anywhere in 127/8 */
		{ "[::1]:9464", AF_INET6, lo6, lo6, "local_peer" },
		{ "10.1.2.3:8080", AF_INET, mine, mine, "local_peer" }, /* its own address */
		{ "10.231.0.1:5432", AF_INET, mine, other_ns, "local_peer" }, /* a host address */
		{ "[fd00::42]:443", AF_INET6, lo6, host6, "local_peer" },
		{ "192.0.2.7:443", AF_INET, mine, far, "peer" },
		{ "[2001:db8::9]:443", AF_INET6, host6, far6, "peer" },
		{ "198.51.100.1:80", AF_INET, mine, NULL, "peer" }, /* no address given */
	};
	struct graph_addr host[2] = {
		{ .family = AF_INET, .addr = { 10, 231, 0, 1 } },
		{ .family = AF_INET6, .addr = { 0xfd, 0x00, [15] = 0x42 } },
	};
	struct graph *g = graph__new(NULL);
	struct json_object *r = NULL;

	if (!ASSERT_NOT_NULL(g))
		return;
	graph__set_local_addrs(g, host, ARRAY_SIZE(host));
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		add_lone_client(g, (uint32_t)i + 1, v[i].family, v[i].local, v[i].peer, v[i].label);
	r = render(g, T0 + GRAPH_PAIR_WINDOW_NS + 1);
	if (!r || !ASSERT_EQ(count(r, "nodes"), 1 + (int)ARRAY_SIZE(v)))
		goto out;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct json_object *n = find(r, "nodes", "name", v[i].label), *e;
		bool local = !strcmp(v[i].kind, "local_peer");
		char id[128];

		snprintf(id, sizeof(id), local ? "local:%s@node-1" : "peer:%s", v[i].label);
		e = find_edge(r, "python3", v[i].label);
		if (!ASSERT_NOT_NULL(n) || !ASSERT_STREQ(str(n, "kind"), v[i].kind) ||
		    !ASSERT_TRUE(json_object_get_boolean(get(n, "external")) == !local) ||
		    !ASSERT_STREQ(str(n, "host"), local ? "node-1" : "") ||
		    !ASSERT_STREQ(str(n, "id"), id) || !ASSERT_NOT_NULL(e) ||
		    !ASSERT_STREQ(str(e, "target"), id) ||
		    !ASSERT_STREQ(str(e, "peer"), v[i].label)) {
			test_fail_at(__FILE__, __LINE__, "peer %s", v[i].label);
			break;
		}
	}
	ASSERT_STREQ(str(find(r, "nodes", "name", "python3"), "kind"), "service");
out:
	json_object_put(r);
	graph__free(g);
}

TEST(graph_rates_over_the_sliding_window)
{
	struct graph *g = graph__new(NULL);
	struct json_object *r = NULL, *e;
	uint32_t id = 0;

	if (!ASSERT_NOT_NULL(g))
		return;
	/* 50 exchanges a second for 20 s: the window sees the last 10 s only. */
	for (uint64_t t = 0; t < 20 * SEC; t += 20 * MS)
		add_pair(g, id++, T0 + t, MS, false);
	r = render(g, T0 + 20 * SEC);
	e = r ? find_edge(r, "frontend", "backend") : NULL;
	if (!ASSERT_NOT_NULL(e))
		goto out;
	ASSERT_DOUBLE_NEAR(num(e, "exchanges_per_s"), 50, 5);
	ASSERT_DOUBLE_NEAR(num(e, "request_bytes_per_s"), 5000, 500);
	ASSERT_DOUBLE_NEAR(num(e, "response_bytes_per_s"), 50000, 5000);
	ASSERT_EQ(num(e, "exchanges"), 1000);
	json_object_put(r);

	/* A young edge is measured over its own life, not the whole window. */
	graph__free(g);
	g = graph__new(NULL);
	if (!ASSERT_NOT_NULL(g))
		goto out_nor;
	for (uint64_t t = 0; t < 3 * SEC; t += 10 * MS)
		add_pair(g, id++, T0 + t, MS, false);
	r = render(g, T0 + 3 * SEC);
	e = r ? find_edge(r, "frontend", "backend") : NULL;
	if (!ASSERT_NOT_NULL(e))
		goto out;
	ASSERT_DOUBLE_NEAR(num(e, "exchanges_per_s"), 100, 10);
	json_object_put(r);

	/* Traffic stops: the rates fall to zero, the edge stays until idle long enough. */
	r = render(g, T0 + 30 * SEC);
	e = r ? find_edge(r, "frontend", "backend") : NULL;
	if (!ASSERT_NOT_NULL(e))
		goto out;
	ASSERT_EQ(num(e, "exchanges_per_s"), 0);
	ASSERT_TRUE(isnan(num(e, "p50_ms")));
	ASSERT_GE(num(e, "idle_s"), 26);
	json_object_put(r);
	r = render(g, T0 + 3 * SEC + GRAPH_IDLE_NS + SEC);
	if (r) {
		ASSERT_EQ(count(r, "edges"), 0);
		ASSERT_EQ(count(r, "nodes"), 0);
	}
	/* And the map fills again from scratch afterwards. */
	json_object_put(r);
	add_pair(g, id++, T0 + GRAPH_IDLE_NS + 5 * SEC, MS, false);
	r = render(g, T0 + GRAPH_IDLE_NS + 5 * SEC);
	if (r)
		ASSERT_EQ(count(r, "edges"), 1);
out:
	json_object_put(r);
out_nor:
	graph__free(g);
}

/* At spans.sampling_ratio 0.25 each exchange that reaches the map stands for four. */
TEST(graph_scales_sampled_exchanges_back_up)
{
	struct graph *g = graph__new(NULL);
	struct json_object *r, *e;

	if (!ASSERT_NOT_NULL(g))
		return;
	graph__set_sampling(g, 0.25);
	/* 10 sampled exchanges a second for 10 s. */
	for (uint32_t i = 0; i < 100; i++)
		add_pair(g, i, T0 + i * 100 * MS, MS, false);
	r = render(g, T0 + 10 * SEC);
	e = r ? find_edge(r, "frontend", "backend") : NULL;
	if (ASSERT_NOT_NULL(e)) {
		ASSERT_DOUBLE_NEAR(num(r, "sampling_ratio"), 0.25, 1e-9);
		ASSERT_EQ(num(e, "exchanges"), 400);
		ASSERT_EQ(num(e, "request_bytes"), 40000);
		ASSERT_EQ(num(e, "response_bytes"), 400000);
		ASSERT_DOUBLE_NEAR(num(e, "exchanges_per_s"), 40, 4);
		ASSERT_DOUBLE_NEAR(num(e, "request_bytes_per_s"), 4000, 400);
	}
	json_object_put(r);
	graph__free(g);
}

TEST(graph_latency_quantiles)
{
	struct graph *g = graph__new(NULL);
	struct json_object *r = NULL, *e;

	if (!ASSERT_NOT_NULL(g))
		return;
	for (uint32_t i = 0; i < 100; i++)
		add_pair(g, i, T0 + i * 10 * MS, i < 98 ? 1 * MS : 100 * MS, false);
	r = render(g, T0 + SEC + 1);
	e = r ? find_edge(r, "frontend", "backend") : NULL;
	if (ASSERT_NOT_NULL(e)) {
		/* Log buckets are 25% wide: the middle is within 12.5% of any value in it. */
		ASSERT_DOUBLE_NEAR(num(e, "p50_ms"), 1, 0.125);
		ASSERT_DOUBLE_NEAR(num(e, "p99_ms"), 100, 12.5);
	}
	json_object_put(r);
	graph__free(g);
}

TEST(graph_counts_pids_and_duplicates)
{
	struct graph *g = graph__new(NULL);
	struct json_object *r = NULL, *n;

	if (!ASSERT_NOT_NULL(g))
		return;
	for (uint32_t pid = 1; pid <= 3; pid++) {
		struct half c = { "worker", pid, GRAPH_ROLE_CLIENT, 7, "10.0.0.1:80", 1, 1, MS,
				  0,	    T0 };

		add(g, &c); /* the same key three times: two replaced */
	}
	r = render(g, T0 + 5 * SEC);
	if (!r)
		goto out;
	n = find(r, "nodes", "name", "worker");
	if (ASSERT_NOT_NULL(n))
		ASSERT_EQ(num(n, "pids"), 3);
	ASSERT_EQ(num(get(r, "stats"), "duplicates"), 2);
	ASSERT_EQ(num(get(r, "stats"), "unpaired"), 1);
out:
	json_object_put(r);
	graph__free(g);
}

TEST(graph_bounds_are_counted)
{
	struct graph *g = graph__new(NULL);
	struct graph_stats st;
	struct json_object *r = NULL;
	char name[32];
	uint32_t id = 0;

	if (!ASSERT_NOT_NULL(g))
		return;
	/* A pairing table overrun: the oldest halves are settled early, and counted. */
	for (uint32_t i = 0; i < GRAPH_MAX_PENDING + 100; i++) {
		struct half c = { "scanner", 1, GRAPH_ROLE_CLIENT, id++, "10.9.9.9:1", 1, 1, MS,
				  0,	     T0 };

		add(g, &c);
	}
	graph__stats(g, &st);
	ASSERT_EQ(st.pending_overflow, 100);
	ASSERT_EQ(st.pending, GRAPH_MAX_PENDING);
	ASSERT_EQ(st.unpaired, 100);
	/* More services than nodes allowed: the rest are dropped and counted. */
	for (uint32_t i = 0; i < GRAPH_MAX_NODES + 10; i++) {
		snprintf(name, sizeof(name), "svc-%u", i);
		struct half c = { name, i, GRAPH_ROLE_SERVER, id++, "10.1.1.1", 1, 1,
				  MS,	0, T0 + SEC };

		add(g, &c);
	}
	graph__stats(g, &st);
	ASSERT_EQ(st.nodes, GRAPH_MAX_NODES);
	ASSERT_GE(st.nodes_dropped, 10);
	r = render(g, T0 + 10 * SEC);
	if (r)
		ASSERT_EQ(count(r, "nodes"), GRAPH_MAX_NODES);
	graph__stats(g, &st);
	ASSERT_EQ(st.pending, 0);
	json_object_put(r);
	graph__free(g);
}

/*
 * ui.max_nodes 3, ui.max_edges 2: a pair and a lone half take them; then a
 * half whose peer needs a fourth node, a half of a fourth service and a half
 * that needs a third edge are each left out and counted by why.
 */
TEST(graph_bounds_are_the_options)
{
	struct graph_opts opts = { .max_nodes = 3, .max_edges = 2 };
	struct graph *g = graph__new(&opts);
	struct half lone = { "frontend", 100, GRAPH_ROLE_CLIENT, 2, "10.0.0.9:1", 1, 1, MS, 0, T0 };
	struct half no_node = {
		"frontend", 100, GRAPH_ROLE_CLIENT, 3, "10.0.0.9:2", 1, 1, MS, 0, T0
	};
	struct half no_service = {
		"other", 300, GRAPH_ROLE_CLIENT, 4, "10.0.0.9:1", 1, 1, MS, 0, T0
	};
	struct half no_edge = {
		"backend", 200, GRAPH_ROLE_CLIENT, 5, "10.0.0.9:1", 1, 1, MS, 0, T0
	};
	struct json_object *r = NULL;
	struct graph_stats st;

	if (!ASSERT_NOT_NULL(g))
		return;
	add_pair(g, 1, T0, MS, false);
	add(g, &lone);
	r = render(g, T0 + 3 * SEC); /* the lone half settles: its peer is the third node */
	json_object_put(r);
	add(g, &no_node);
	add(g, &no_service);
	add(g, &no_edge);
	r = render(g, T0 + 6 * SEC);
	graph__stats(g, &st);
	ASSERT_EQ(st.exchanges, 6);
	ASSERT_EQ(st.paired, 1);
	ASSERT_EQ(st.unpaired, 3);
	ASSERT_EQ(st.nodes, 3);
	ASSERT_EQ(st.edges, 2);
	ASSERT_EQ(st.nodes_dropped, 2);
	ASSERT_EQ(st.edges_dropped, 1);
	if (ASSERT_NOT_NULL(r)) {
		ASSERT_EQ(count(r, "nodes"), 3);
		ASSERT_EQ(count(r, "edges"), 2);
		ASSERT_EQ(num(get(r, "stats"), "nodes_dropped"), 2);
		ASSERT_EQ(num(get(r, "stats"), "edges_dropped"), 1);
	}
	json_object_put(r);
	graph__free(g);

	opts.max_edges = GRAPH_MAX_EDGES_LIMIT + 1;
	errno = 0;
	ASSERT_TRUE(graph__new(&opts) == NULL);
	ASSERT_EQ(errno, EINVAL);
}

TEST(graph_names_are_cut_and_escaped)
{
	struct graph *g = graph__new(NULL);
	char long_name[400];
	struct json_object *r;

	if (!ASSERT_NOT_NULL(g))
		return;
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	struct half a = { long_name, 1, GRAPH_ROLE_CLIENT, 1, "\"quoted\"\n:1", 1, 1, MS, 0, T0 };
	struct half b = { long_name, 2, GRAPH_ROLE_CLIENT, 2, "\"quoted\"\n:1", 1, 1, MS, 0, T0 };

	add(g, &a);
	add(g, &b); /* the same cut name: the same node */
	r = render(g, T0 + 3 * SEC);
	if (r) {
		ASSERT_EQ(count(r, "nodes"), 2);
		ASSERT_EQ(count(r, "edges"), 1);
		ASSERT_NOT_NULL(find(r, "nodes", "name", "\"quoted\"\n:1"));
		ASSERT_EQ(
			strlen(str(json_object_array_get_idx(get(r, "nodes"), 0), "name")) +
				strlen(str(json_object_array_get_idx(get(r, "nodes"), 1), "name")),
			GRAPH_NAME_MAX - 1 + strlen("\"quoted\"\n:1"));
	}
	json_object_put(r);
	graph__free(g);
}

TEST(graph_add_is_cheap)
{
	struct graph *g = graph__new(NULL);
	struct timespec a, b;
	const uint32_t n = 400000;
	double ns;

	if (!ASSERT_NOT_NULL(g))
		return;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (uint32_t i = 0; i < n / 2; i++)
		add_pair(g, i, T0 + (uint64_t)i * 5000, MS, false);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
	fprintf(stdout, "    graph__add: %.0f ns per half\n", ns);
	/* Generous: a sanitizer build is several times slower than the real one. */
	ASSERT_LT(ns, 4000);
	graph__free(g);
}
