// SPDX-License-Identifier: Apache-2.0
/*
 * Exchanges that user space ends itself (silence, close) go through the same
 * consistent sampling as those the kernel hands over: the live map, which
 * scales what it gets by 1/ratio, must see only the kept ones.
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <unistd.h>

#include "config.h"
#include "exchange.h"
#include "graph.h"
#include "jbuf.h"
#include "procinfo.h"
#include "test.h"
#include "traceid.h"

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
