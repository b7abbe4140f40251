// SPDX-License-Identifier: Apache-2.0
/*
 * Exchanges that user space ends itself (silence, close) go through the same
 * consistent sampling as those the kernel hands over: the live map, which
 * scales what it gets by 1/ratio, must see only the kept ones. Server spans
 * of external clients are roots; client spans name a server seen here.
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cidr.h"
#include "config.h"
#include "exchange.h"
#include "export.h"
#include "graph.h"
#include "http_stub.h"
#include "jbuf.h"
#include "metrics.h"
#include "procinfo.h"
#include "test.h"
#include "traceid.h"
#include "util.h"

#define N_EXCHANGES 2000

static double edge_exchanges(struct graph *g)
{
	struct json_object *root, *edges, *v;
	double n = -1;
	struct jbuf b;

	jbuf_init(&b);
	if (graph__render_json(g, &b, 3600ULL * 1000000000ULL) || !jbuf_cstr(&b))
		goto out;
	root = json_tokener_parse(b.data);
	if (root && json_object_object_get_ex(root, "edges", &edges) &&
	    json_object_array_length(edges) == 1 &&
	    json_object_object_get_ex(json_object_array_get_idx(edges, 0), "exchanges", &v))
		n = json_object_get_double(v);
	json_object_put(root);
out:
	jbuf_free(&b);
	return n;
}

TEST(exchange_map_gets_only_kept_exchanges)
{
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 16,
				       .revalidate_ms = 5000 };
	struct config *cfg = config__defaults();
	struct procinfo *pi = NULL;
	struct proc_resource *res = NULL;
	struct exchanges *x = NULL;
	struct graph *g = graph__new();
	struct tcpotel_tuple t = { .family = AF_INET, .sport = 40000, .dport = 8080 };
	uint64_t threshold, kept = 0;

	if (!ASSERT_NOT_NULL(cfg) || !ASSERT_NOT_NULL(g))
		goto out;
	cfg->spans.enabled = false; /* the map alone wants exchanges */
	cfg->spans.sampling_ratio = 0.25;
	threshold = traceid_threshold(0.25);
	pi = procinfo__new(cfg, &popts);
	res = pi ? procinfo__get(pi, (uint32_t)getpid(), "frontend", 0) : NULL;
	x = res ? exchanges__new(cfg, pi, NULL) : NULL;
	if (!ASSERT_NOT_NULL(x))
		goto out;
	graph__set_sampling(g, 0.25);
	exchanges__set_graph(x, g);
	inet_pton(AF_INET, "10.0.0.1", t.saddr);
	inet_pton(AF_INET, "10.0.0.2", t.daddr);
	for (uint32_t i = 0; i < N_EXCHANGES; i++) {
		struct tcpotel_exchange ex = {
			.start_ns = 1000000000ULL + i * 1000000ULL,
			.end_ns = 1000000000ULL + i * 1000000ULL + 400000,
			.request_bytes = 64,
			.response_bytes = 64,
			.request_seq = i * 2654435761u,
			.phase = TCPOTEL_PHASE_RESPONSE,
		};
		struct exchange_end end = {
			.tuple = &t,
			.ex = &ex,
			.role = TCPOTEL_ROLE_CLIENT,
			.res = res,
		};
		uint8_t addr[16];
		struct exchange_ids ids;

		traceid_canonical_addr(AF_INET, t.saddr, addr);
		traceid_derive(addr, t.sport, ex.request_seq, &ids);
		kept += traceid_sampled(ids.trace_id, threshold);
		exchanges__end(x, &end, 0);
	}
	/* A quarter or so are kept; the map shows them times four. */
	ASSERT_GT(kept, N_EXCHANGES / 8);
	ASSERT_LT(kept, N_EXCHANGES / 2);
	ASSERT_DOUBLE_NEAR(edge_exchanges(g), (double)kept * 4, 0.5);
out:
	exchanges__free(x);
	if (res)
		procinfo__put(pi, res);
	procinfo__free(pi);
	graph__free(g);
	config__free(cfg);
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
 * parent; a CLIENT span whose stream knows the server's service names it
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
	struct http_stub *stub = http_stub__start(0);
	struct config *cfg = config__defaults();
	struct cidr internal, external;
	struct procinfo *pi = NULL;
	struct proc_resource *res = NULL, *sres = NULL;
	struct metrics *m = NULL;
	struct stream *st = NULL;
	struct exporter *e = NULL;
	struct exchanges *x = NULL;
	struct seen_spans seen = { 0 };
	const struct http_stub_request *r;
	const char *ps;

	if (!ASSERT_NOT_NULL(stub) || !ASSERT_NOT_NULL(cfg))
		goto out;
	free(cfg->exporter.otlp.traces_endpoint);
	if (!ASSERT_TRUE(asprintf(&cfg->exporter.otlp.traces_endpoint,
				  "http://127.0.0.1:%u/v1/traces",
				  (unsigned int)http_stub__port(stub)) > 0))
		goto out;
	cfg->exporter.otlp.compression = COMPRESSION_NONE;
	if (!ASSERT_OK(cidr_parse("10.0.0.0/16", &internal, NULL, 0)) ||
	    !ASSERT_OK(cidr_parse("10.0.9.0/24", &external, NULL, 0)))
		goto out;
	cfg->spans.internal_networks = (struct cidr_list){ &internal, 1 };
	cfg->spans.external_clients = (struct cidr_list){ &external, 1 };
	pi = procinfo__new(cfg, &popts);
	res = pi ? procinfo__get(pi, (uint32_t)getpid(), "backend", 0) : NULL;
	sres = pi ? procinfo__get(pi, (uint32_t)getppid(), "frontend", 0) : NULL;
	m = metrics__new(pi, 16);
	e = exporter__start(cfg);
	x = res && sres && m && e ? exchanges__new(cfg, pi, e) : NULL;
	if (!ASSERT_NOT_NULL(x))
		goto out;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct tcpotel_tuple t = { .family = AF_INET, .sport = 8080, .dport = 40000 };
		struct tcpotel_exchange ex = {
			.start_ns = 1000000000ULL,
			.end_ns = 1000400000ULL,
			.request_bytes = 64,
			.response_bytes = 64,
			.request_seq = (uint32_t)i * 2654435761u,
		};
		struct exchange_end end = {
			.tuple = &t, .ex = &ex, .role = TCPOTEL_ROLE_SERVER, .res = res
		};

		inet_pton(AF_INET, "198.51.100.2", t.saddr);
		inet_pton(AF_INET, v[i].client, t.daddr);
		exchanges__end(x, &end, 0);
	}
	/* A client whose stream knows its server (both ends on this host). */
	{
		struct tcpotel_tuple t = { .family = AF_INET, .sport = 40001, .dport = 8080 };
		struct tcpotel_exchange ex = { .start_ns = 1000000000ULL,
					       .end_ns = 1000400000ULL,
					       .request_bytes = 64,
					       .response_bytes = 64,
					       .request_seq = 77 };
		struct stream_key key = { .res = procinfo__ref(sres),
					  .role = TCPOTEL_ROLE_CLIENT,
					  .family = AF_INET,
					  .port = 8080 };
		struct exchange_end end = {
			.tuple = &t, .ex = &ex, .role = TCPOTEL_ROLE_CLIENT, .res = sres
		};

		inet_pton(AF_INET, "10.0.0.8", t.saddr);
		inet_pton(AF_INET, "10.0.0.9", t.daddr);
		memcpy(key.peer, t.daddr, 4);
		st = metrics__stream(m, &key);
		if (!ASSERT_NOT_NULL(st))
			goto out;
		stream_set_peer_service(st, "backend");
		end.stream = st;
		exchanges__end(x, &end, 0);
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
	ps = span_attr(seen.client[0], "peer.service");
	ASSERT_STREQ(ps, "backend");
	ASSERT_FALSE(has_parent(seen.client[0]));
out:
	json_object_put(seen.root);
	exchanges__free(x);
	exporter__stop(e, http_stub_now_ms() + 2000);
	metrics__free(m);
	if (res)
		procinfo__put(pi, res);
	if (sres)
		procinfo__put(pi, sres);
	procinfo__free(pi);
	if (cfg) {
		cfg->spans.internal_networks = (struct cidr_list){ 0 };
		cfg->spans.external_clients = (struct cidr_list){ 0 };
	}
	config__free(cfg);
	http_stub__stop(stub);
}
