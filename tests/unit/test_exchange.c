// SPDX-License-Identifier: Apache-2.0
/*
 * exchange.c takes exchanges the kernel ended and sampled, with who they
 * belong to (struct exchange_origin) filled in by sockets.c: the live map is
 * drawn from the origin as given, scaled by 1/ratio, and spans get their
 * Unix times when their body is written. Server spans of external clients
 * are roots; client spans name a server seen here.
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cidr.h"
#include "exchange.h"
#include "export.h"
#include "graph.h"
#include "http_stub.h"
#include "jbuf.h"
#include "procinfo.h"
#include "test.h"
#include "util.h"

#define N_EXCHANGES 200

static double edge_number(struct graph *g, const char *field, char *peer, size_t peer_size)
{
	struct json_object *root, *edges, *e, *v;
	double n = -1;
	struct jbuf b;

	jbuf_init(&b);
	if (graph__render_json(g, &b, 3600ULL * 1000000000ULL) || !jbuf_cstr(&b))
		goto out;
	root = json_tokener_parse(b.data);
	if (root && json_object_object_get_ex(root, "edges", &edges) &&
	    json_object_array_length(edges) == 1) {
		e = json_object_array_get_idx(edges, 0);
		if (json_object_object_get_ex(e, field, &v))
			n = json_object_get_double(v);
		if (json_object_object_get_ex(e, "peer", &v))
			snprintf(peer, peer_size, "%s", json_object_get_string(v));
	}
	json_object_put(root);
out:
	jbuf_free(&b);
	return n;
}

static struct tcpotel_exchange exchange_at(uint32_t i)
{
	return (struct tcpotel_exchange){
		.start_ns = 1000000000ULL + i * 1000000ULL,
		.end_ns = 1000000000ULL + i * 1000000ULL + 400000,
		.request_bytes = 64,
		.response_bytes = 64,
		.request_seq = i * 2654435761u,
		.phase = TCPOTEL_PHASE_RESPONSE,
	};
}

/* The map shows the origin's service, host and peer, scaled back up by 1/ratio. */
TEST(exchange_map_is_drawn_from_the_origin)
{
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 16,
				       .revalidate_ms = 5000 };
	struct exchanges_opts xopts = { .spans = false, .sampling_ratio = 0.25 };
	struct procinfo *pi = NULL;
	struct proc_resource *res = NULL;
	struct exchanges *x = NULL;
	struct graph *g = graph__new(NULL);
	struct tcpotel_tuple t = { .family = AF_INET, .sport = 40000, .dport = 8080 };
	char peer[64] = "";

	if (!ASSERT_NOT_NULL(g))
		goto out;
	pi = procinfo__new(&popts);
	res = pi ? procinfo__get(pi, (uint32_t)getpid(), "frontend", 0) : NULL;
	x = res ? exchanges__new(&xopts, pi, NULL) : NULL;
	if (!ASSERT_NOT_NULL(x))
		goto out;
	graph__set_sampling(g, 0.25);
	exchanges__set_graph(x, g);
	inet_pton(AF_INET, "10.0.0.1", t.saddr);
	inet_pton(AF_INET, "10.0.0.2", t.daddr);
	{
		struct exchange_origin origin = {
			.res = res,
			.service = "frontend",
			.host = "node-1",
			.pid = 4242,
			.peer = "10.0.0.2:8080",
		};

		for (uint32_t i = 0; i < N_EXCHANGES; i++) {
			struct tcpotel_exchange ex = exchange_at(i);

			exchanges__end(x, &(struct exchange_end){
						  .origin = &origin,
						  .tuple = &t,
						  .ex = &ex,
						  .role = TCPOTEL_ROLE_CLIENT,
						  .srtt_us = 30,
					  });
		}
	}
	/* Every exchange it got stands for four. */
	ASSERT_DOUBLE_NEAR(edge_number(g, "exchanges", peer, sizeof(peer)), N_EXCHANGES * 4, 0.5);
	ASSERT_EQ(strcmp(peer, "10.0.0.2:8080"), 0);
out:
	exchanges__free(x);
	if (res)
		procinfo__put(pi, res);
	procinfo__free(pi);
	graph__free(g);
}

static uint64_t clock_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int64_t span_start(struct json_object *span)
{
	struct json_object *v;

	return json_object_object_get_ex(span, "startTimeUnixNano", &v) ?
		       (int64_t)strtoull(json_object_get_string(v), NULL, 10) :
		       -1;
}

/* CLOCK_MONOTONIC stamps in, Unix time out, computed when the body is written. */
TEST(exchange_spans_get_unix_time_when_written)
{
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 16,
				       .revalidate_ms = 5000 };
	struct exchanges_opts xopts = { .spans = true, .sampling_ratio = 1.0 };
	struct exporter_opts eopts = { .timeout_ms = 2000, .queue_size = 16 };
	struct http_stub *stub = http_stub__start(0);
	char *url = NULL;
	struct procinfo *pi = NULL;
	struct proc_resource *res = NULL;
	struct exporter *exp = NULL;
	struct exchanges *x = NULL;
	struct tcpotel_tuple t = { .family = AF_INET, .sport = 40000, .dport = 8080 };
	struct tcpotel_exchange ex;
	struct json_object *root = NULL, *rs, *ss, *spans;
	const struct http_stub_request *req;
	uint64_t mono, unix_now;

	if (!ASSERT_NOT_NULL(stub))
		goto out;
	if (asprintf(&url, "http://127.0.0.1:%u/v1/traces", (unsigned int)http_stub__port(stub)) <
	    0) {
		url = NULL;
		goto out;
	}
	eopts.endpoints[SIGNAL_TRACES] = url;
	exp = exporter__start(&eopts);
	pi = procinfo__new(&popts);
	res = pi ? procinfo__get(pi, (uint32_t)getpid(), "frontend", 0) : NULL;
	x = res && exp ? exchanges__new(&xopts, pi, exp) : NULL;
	if (!ASSERT_NOT_NULL(x))
		goto out;
	inet_pton(AF_INET, "10.0.0.1", t.saddr);
	inet_pton(AF_INET, "10.0.0.2", t.daddr);
	mono = clock_of(CLOCK_MONOTONIC);
	unix_now = clock_of(CLOCK_REALTIME);
	ex = exchange_at(0);
	ex.start_ns = mono - 5000000;
	ex.end_ns = mono - 1000000;
	exchanges__end(x, &(struct exchange_end){
				  .origin = &(struct exchange_origin){ .res = res,
								       .service = "frontend",
								       .host = "",
								       .peer = "10.0.0.2:8080" },
				  .tuple = &t,
				  .ex = &ex,
				  .role = TCPOTEL_ROLE_CLIENT,
			  });
	exchanges__flush(x, mono, true);
	if (!ASSERT_TRUE(http_stub__wait_requests(stub, 1, 5000)))
		goto out;
	req = http_stub__request(stub, 0);
	root = json_tokener_parse(req->body);
	if (!ASSERT_NOT_NULL(root) ||
	    !ASSERT_TRUE(json_object_object_get_ex(root, "resourceSpans", &rs)) ||
	    !ASSERT_TRUE(json_object_object_get_ex(json_object_array_get_idx(rs, 0), "scopeSpans",
						   &ss)) ||
	    !ASSERT_TRUE(
		    json_object_object_get_ex(json_object_array_get_idx(ss, 0), "spans", &spans)))
		goto out;
	ASSERT_EQ(json_object_array_length(spans), 1);
	/* 5 ms before now, on the Unix clock; the two clocks were read apart, so within 50 ms. */
	ASSERT_LT(llabs(span_start(json_object_array_get_idx(spans, 0)) -
			(int64_t)(unix_now - 5000000)),
		  50000000);
out:
	json_object_put(root);
	exchanges__free(x);
	exporter__stop(exp, clock_of(CLOCK_MONOTONIC) / 1000000 + 2000);
	if (res)
		procinfo__put(pi, res);
	procinfo__free(pi);
	http_stub__stop(stub);
	free(url);
}

/* The spans of one traces body: {client.address: span} for SERVER spans, and the CLIENT spans. */
struct seen_spans {
	struct json_object *root;
	struct json_object *server[8];
	const char *server_client[8];
	size_t n_server;
	struct json_object *client[8];
	size_t n_client;
};

static const char *span_attr(struct json_object *span, const char *key)
{
	struct json_object *attrs, *a, *k, *v, *sv;

	if (!json_object_object_get_ex(span, "attributes", &attrs))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(attrs); i++) {
		a = json_object_array_get_idx(attrs, i);
		if (json_object_object_get_ex(a, "key", &k) &&
		    !strcmp(json_object_get_string(k), key) &&
		    json_object_object_get_ex(a, "value", &v) &&
		    json_object_object_get_ex(v, "stringValue", &sv))
			return json_object_get_string(sv);
	}
	return NULL;
}

static bool collect_spans(const char *body, size_t len, struct seen_spans *out)
{
	struct json_object *rss, *sss, *spans, *kind;

	memset(out, 0, sizeof(*out));
	out->root = json_tokener_parse(body);
	if (!out->root || !json_object_object_get_ex(out->root, "resourceSpans", &rss))
		return false;
	(void)len;
	for (size_t i = 0; i < json_object_array_length(rss); i++) {
		if (!json_object_object_get_ex(json_object_array_get_idx(rss, i), "scopeSpans",
					       &sss))
			return false;
		for (size_t j = 0; j < json_object_array_length(sss); j++) {
			if (!json_object_object_get_ex(json_object_array_get_idx(sss, j), "spans",
						       &spans))
				return false;
			for (size_t k = 0; k < json_object_array_length(spans); k++) {
				struct json_object *s = json_object_array_get_idx(spans, k);

				if (!json_object_object_get_ex(s, "kind", &kind))
					return false;
				if (json_object_get_int(kind) == 2 && out->n_server < 8) {
					out->server_client[out->n_server] =
						span_attr(s, "client.address");
					out->server[out->n_server++] = s;
				} else if (json_object_get_int(kind) == 3 && out->n_client < 8) {
					out->client[out->n_client++] = s;
				}
			}
		}
	}
	return true;
}

static struct json_object *server_span_of(struct seen_spans *s, const char *client)
{
	for (size_t i = 0; i < s->n_server; i++)
		if (s->server_client[i] && !strcmp(s->server_client[i], client))
			return s->server[i];
	return NULL;
}

static bool has_parent(struct json_object *span)
{
	struct json_object *p;

	return json_object_object_get_ex(span, "parentSpanId", &p);
}

/*
 * spans.external_clients and spans.internal_networks: the SERVER span of an
 * external client has no parent, every other one has the client span as its
 * parent; a CLIENT span whose origin knows the server's service names it
 * in peer.service.
 */
TEST(exchange_external_clients_are_roots_and_local_servers_named)
{
	static const struct {
		const char *client;
		bool root;
	} v[] = {
		{ "10.0.0.7", false }, /* in internal_networks */
		{ "10.0.9.9", true }, /* in external_clients, which is looked at first */
		{ "192.0.2.1", true }, /* outside internal_networks */
		{ "127.0.0.1", false }, /* loopback: on this host */
		{ "198.51.100.2", false }, /* the server's own address */
	};
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 16,
				       .revalidate_ms = 5000 };
	struct exporter_opts eopts = { .timeout_ms = 2000, .queue_size = 16 };
	struct http_stub *stub = http_stub__start(0);
	struct cidr internal, external;
	struct cidr_list internal_list = { &internal, 1 }, external_list = { &external, 1 };
	struct exchanges_opts xopts = { .spans = true,
					.sampling_ratio = 1.0,
					.external_clients = &external_list,
					.internal_networks = &internal_list };
	char *url = NULL;
	struct procinfo *pi = NULL;
	struct proc_resource *res = NULL, *sres = NULL;
	struct exporter *e = NULL;
	struct exchanges *x = NULL;
	struct seen_spans seen = { 0 };
	const struct http_stub_request *r;

	if (!ASSERT_NOT_NULL(stub))
		goto out;
	if (asprintf(&url, "http://127.0.0.1:%u/v1/traces", (unsigned int)http_stub__port(stub)) <
	    0) {
		url = NULL;
		goto out;
	}
	eopts.endpoints[SIGNAL_TRACES] = url;
	if (!ASSERT_OK(cidr_parse("10.0.0.0/16", &internal, NULL, 0)) ||
	    !ASSERT_OK(cidr_parse("10.0.9.0/24", &external, NULL, 0)))
		goto out;
	pi = procinfo__new(&popts);
	res = pi ? procinfo__get(pi, (uint32_t)getpid(), "backend", 0) : NULL;
	sres = pi ? procinfo__get(pi, (uint32_t)getppid(), "frontend", 0) : NULL;
	e = exporter__start(&eopts);
	x = res && sres && e ? exchanges__new(&xopts, pi, e) : NULL;
	if (!ASSERT_NOT_NULL(x))
		goto out;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct tcpotel_tuple t = { .family = AF_INET, .sport = 8080, .dport = 40000 };
		struct tcpotel_exchange ex = exchange_at((uint32_t)i);
		struct exchange_origin origin = {
			.res = res, .service = "backend", .host = "", .peer = v[i].client
		};

		inet_pton(AF_INET, "198.51.100.2", t.saddr);
		inet_pton(AF_INET, v[i].client, t.daddr);
		exchanges__end(x, &(struct exchange_end){ .origin = &origin,
							  .tuple = &t,
							  .ex = &ex,
							  .role = TCPOTEL_ROLE_SERVER });
	}
	/* A client whose origin knows its server (both ends on this host). */
	{
		struct tcpotel_tuple t = { .family = AF_INET, .sport = 40001, .dport = 8080 };
		struct tcpotel_exchange ex = exchange_at(77);
		struct exchange_origin origin = { .res = sres,
						  .service = "frontend",
						  .host = "",
						  .peer = "10.0.0.9:8080",
						  .peer_service = "backend" };

		inet_pton(AF_INET, "10.0.0.8", t.saddr);
		inet_pton(AF_INET, "10.0.0.9", t.daddr);
		exchanges__end(x, &(struct exchange_end){ .origin = &origin,
							  .tuple = &t,
							  .ex = &ex,
							  .role = TCPOTEL_ROLE_CLIENT });
	}
	exchanges__flush(x, 0, true);
	if (!ASSERT_TRUE(http_stub__wait_requests(stub, 1, 5000)))
		goto out;
	r = http_stub__request(stub, 0);
	if (!ASSERT_NOT_NULL(r) || !ASSERT_TRUE(collect_spans(r->body, r->body_len, &seen)) ||
	    !ASSERT_EQ(seen.n_server, ARRAY_SIZE(v)) || !ASSERT_EQ(seen.n_client, 1))
		goto out;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct json_object *s = server_span_of(&seen, v[i].client);

		if (!ASSERT_NOT_NULL(s) || !ASSERT_TRUE(has_parent(s) == !v[i].root)) {
			test_fail_at(__FILE__, __LINE__, "client %s", v[i].client);
			break;
		}
		/* the caller stays named by its address */
		ASSERT_STREQ(span_attr(s, "network.peer.address"), v[i].client);
		ASSERT_TRUE(span_attr(s, "peer.service") == NULL);
	}
	ASSERT_STREQ(span_attr(seen.client[0], "peer.service"), "backend");
	ASSERT_FALSE(has_parent(seen.client[0]));
out:
	json_object_put(seen.root);
	exchanges__free(x);
	exporter__stop(e, http_stub_now_ms() + 2000);
	if (res)
		procinfo__put(pi, res);
	if (sres)
		procinfo__put(pi, sres);
	procinfo__free(pi);
	free(url);
	http_stub__stop(stub);
}

static int span_status_code(struct json_object *span)
{
	struct json_object *st, *code;

	if (!json_object_object_get_ex(span, "status", &st) ||
	    !json_object_object_get_ex(st, "code", &code))
		return 0;
	return json_object_get_int(code);
}

static const char *span_name(struct json_object *span)
{
	struct json_object *v;

	return json_object_object_get_ex(span, "name", &v) ? json_object_get_string(v) : "";
}

/*
 * Failures: a failed exchange is an error span of its kind with error.type
 * (and the answered one before it is not); a failed connection attempt is a
 * CLIENT span tcp.connect, status ERROR, error.type, with the address it
 * dialled and no sizes. On the map, both count on the edge to the dialled
 * server: 1 failed connection and 1 failed exchange of 2, an error rate of
 * 2/3, errors by type.
 */
TEST(exchange_failures_are_error_spans_and_red_edges)
{
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 16,
				       .revalidate_ms = 5000 };
	struct exchanges_opts xopts = { .spans = true, .sampling_ratio = 1.0 };
	struct exporter_opts eopts = { .timeout_ms = 2000, .queue_size = 16 };
	struct http_stub *stub = http_stub__start(0);
	struct graph *g = graph__new(NULL);
	char *url = NULL, peer[64] = "";
	struct procinfo *pi = NULL;
	struct proc_resource *res = NULL;
	struct exporter *e = NULL;
	struct exchanges *x = NULL;
	struct seen_spans seen = { 0 };
	const struct http_stub_request *r;
	struct tcpotel_tuple t = { .family = AF_INET, .sport = 40000, .dport = 8080 };
	struct exchange_origin origin = { .service = "frontend",
					  .host = "",
					  .peer = "10.0.0.2:8080" };
	int errors = 0, connects = 0;

	if (!ASSERT_NOT_NULL(stub) || !ASSERT_NOT_NULL(g))
		goto out;
	if (asprintf(&url, "http://127.0.0.1:%u/v1/traces", (unsigned int)http_stub__port(stub)) <
	    0) {
		url = NULL;
		goto out;
	}
	eopts.endpoints[SIGNAL_TRACES] = url;
	pi = procinfo__new(&popts);
	res = pi ? procinfo__get(pi, (uint32_t)getpid(), "frontend", 0) : NULL;
	e = exporter__start(&eopts);
	x = res && e ? exchanges__new(&xopts, pi, e) : NULL;
	if (!ASSERT_NOT_NULL(x))
		goto out;
	exchanges__set_graph(x, g);
	origin.res = res;
	inet_pton(AF_INET, "10.0.0.1", t.saddr);
	inet_pton(AF_INET, "10.0.0.2", t.daddr);
	for (uint32_t i = 0; i < 3; i++) {
		struct tcpotel_exchange ex = exchange_at(i);

		/* Within the map's window before the render (edge_number(): at 3600 s). */
		ex.start_ns += 3595000000000ULL;
		ex.end_ns += 3595000000000ULL;
		if (i == 1) {
			ex.error = TCPOTEL_ERR_RESET;
			ex.response_bytes = 0;
		}
		if (i == 2)
			ex.error = TCPOTEL_ERR_CONNECTION_REFUSED;
		exchanges__end(x, &(struct exchange_end){ .origin = &origin,
							  .tuple = &t,
							  .ex = &ex,
							  .role = TCPOTEL_ROLE_CLIENT,
							  .connect = i == 2 });
	}
	ASSERT_DOUBLE_NEAR(edge_number(g, "exchanges", peer, sizeof(peer)), 2, 0);
	ASSERT_DOUBLE_NEAR(edge_number(g, "failed_exchanges", peer, sizeof(peer)), 1, 0);
	ASSERT_DOUBLE_NEAR(edge_number(g, "failed_connections", peer, sizeof(peer)), 1, 0);
	ASSERT_DOUBLE_NEAR(edge_number(g, "error_rate", peer, sizeof(peer)), 2.0 / 3, 1e-9);
	ASSERT_STREQ(peer, "10.0.0.2:8080");
	exchanges__flush(x, 0, true);
	if (!ASSERT_TRUE(http_stub__wait_requests(stub, 1, 5000)))
		goto out;
	r = http_stub__request(stub, 0);
	if (!ASSERT_NOT_NULL(r) || !ASSERT_TRUE(collect_spans(r->body, r->body_len, &seen)) ||
	    !ASSERT_EQ(seen.n_client, 3))
		goto out;
	for (size_t i = 0; i < seen.n_client; i++) {
		struct json_object *s = seen.client[i];
		const char *type = span_attr(s, "error.type");

		if (!strcmp(span_name(s), "tcp.connect")) {
			connects++;
			ASSERT_STREQ(type, "connection_refused");
			ASSERT_EQ(span_status_code(s), 2);
			ASSERT_STREQ(span_attr(s, "server.address"), "10.0.0.2");
			ASSERT_FALSE(json_object_object_get_ex(s, "attributes", NULL) &&
				     strstr(json_object_to_json_string(s), "tcp.request.size"));
		} else if (type) {
			errors++;
			ASSERT_STREQ(type, "reset");
			ASSERT_EQ(span_status_code(s), 2);
			ASSERT_STREQ(span_name(s), "tcp.exchange");
		} else {
			ASSERT_EQ(span_status_code(s), 0);
		}
	}
	ASSERT_EQ(connects, 1);
	ASSERT_EQ(errors, 1);
out:
	json_object_put(seen.root);
	exchanges__free(x);
	exporter__stop(e, http_stub_now_ms() + 2000);
	if (res)
		procinfo__put(pi, res);
	procinfo__free(pi);
	graph__free(g);
	free(url);
	http_stub__stop(stub);
}
