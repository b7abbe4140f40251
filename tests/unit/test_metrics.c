// SPDX-License-Identifier: Apache-2.0
/*
 * tcp.exchange.duration is counted in the kernel and exported by user space:
 * the explicit bounds user space writes must be the ones the kernel counts
 * with, and metrics_exchange_bucket(), with which the unit tests and the
 * benchmark stand in for the kernel, must pick the kernel's bucket. With
 * metrics.per_process false, the processes of one service instance add up
 * into one resource without pids.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "metrics.h"
#include "otlp.h"
#include "procinfo.h"
#include "test.h"

TEST(metrics_exchange_bounds_match_the_kernel)
{
	static const uint64_t kernel_ns[] = TCPOTEL_EXCHANGE_BOUNDS_NS;

	ASSERT_EQ(metrics_n_exchange_bounds, TCPOTEL_EXCHANGE_BUCKETS - 1);
	ASSERT_EQ(sizeof(kernel_ns) / sizeof(kernel_ns[0]), TCPOTEL_EXCHANGE_BUCKETS - 1);
	for (size_t i = 0; i < metrics_n_exchange_bounds; i++) {
		ASSERT_EQ(metrics_exchange_bounds_ns[i], kernel_ns[i]);
		ASSERT_DOUBLE_NEAR(metrics_exchange_bounds[i], kernel_ns[i] * 1e-9,
				   metrics_exchange_bounds[i] * 1e-12);
		if (i)
			ASSERT_GT(kernel_ns[i], kernel_ns[i - 1]);
	}
}

/* As the kernel's exchange_bucket(): how many bounds the duration exceeds. */
TEST(metrics_exchange_bucket_is_the_kernels)
{
	ASSERT_EQ(metrics_exchange_bucket(0), 0);
	ASSERT_EQ(metrics_exchange_bucket(100000), 0); /* at a bound: that bucket */
	ASSERT_EQ(metrics_exchange_bucket(100001), 1); /* just above: the next */
	ASSERT_EQ(metrics_exchange_bucket(1000000000), 12);
	ASSERT_EQ(metrics_exchange_bucket(60000000000ULL), TCPOTEL_EXCHANGE_BUCKETS - 2);
	ASSERT_EQ(metrics_exchange_bucket(60000000001ULL), TCPOTEL_EXCHANGE_BUCKETS - 1);
	ASSERT_EQ(metrics_exchange_bucket(UINT64_MAX), TCPOTEL_EXCHANGE_BUCKETS - 1);
}

/* ---- metrics.per_process ------------------------------------------------------- */

/* One resource of a metrics body: its attributes and its tcp.io transmit total. */
struct body_resource {
	struct json_object *attrs;
	int64_t transmit;
	int64_t active;
	int64_t exchanges;
};

static const char *res_attr(struct json_object *attrs, const char *key, int64_t *ival)
{
	for (size_t i = 0; i < json_object_array_length(attrs); i++) {
		struct json_object *a = json_object_array_get_idx(attrs, i), *k, *v, *x;

		if (!json_object_object_get_ex(a, "key", &k) ||
		    strcmp(json_object_get_string(k), key) ||
		    !json_object_object_get_ex(a, "value", &v))
			continue;
		if (json_object_object_get_ex(v, "stringValue", &x))
			return json_object_get_string(x);
		if (ival && json_object_object_get_ex(v, "intValue", &x)) {
			*ival = json_object_get_int64(x);
			return "";
		}
	}
	return NULL;
}

static int64_t point_int(struct json_object *p)
{
	struct json_object *v;

	if (json_object_object_get_ex(p, "asInt", &v) || json_object_object_get_ex(p, "count", &v))
		return json_object_get_int64(v);
	return -1;
}

/* The tcpotel.* resource is left out; returns how many resources were read. */
static size_t read_body(struct metrics *m, struct json_object **root, struct body_resource *out,
			size_t max, uint64_t now)
{
	struct json_object *rms, *sms, *ms, *arr;
	struct otlp_json_emitter je;
	struct jbuf b;
	size_t n = 0;

	jbuf_init(&b);
	otlp_json_emitter_init(&je, &b);
	metrics__encode(m, &je.emitter, now, NULL);
	*root = json_tokener_parse(jbuf_cstr(&b));
	jbuf_free(&b);
	if (!*root || !json_object_object_get_ex(*root, "resourceMetrics", &rms))
		return 0;
	for (size_t i = 0; i < json_object_array_length(rms) && n < max; i++) {
		struct json_object *rm = json_object_array_get_idx(rms, i), *res;
		struct body_resource *r = &out[n++];

		memset(r, 0, sizeof(*r));
		json_object_object_get_ex(rm, "resource", &res);
		json_object_object_get_ex(res, "attributes", &r->attrs);
		json_object_object_get_ex(rm, "scopeMetrics", &sms);
		json_object_object_get_ex(json_object_array_get_idx(sms, 0), "metrics", &ms);
		for (size_t j = 0; j < json_object_array_length(ms); j++) {
			struct json_object *mt = json_object_array_get_idx(ms, j), *name, *kind;
			const char *nm;

			json_object_object_get_ex(mt, "name", &name);
			nm = json_object_get_string(name);
			if (!json_object_object_get_ex(mt, "sum", &kind) &&
			    !json_object_object_get_ex(mt, "histogram", &kind))
				continue;
			json_object_object_get_ex(kind, "dataPoints", &arr);
			for (size_t k = 0; k < json_object_array_length(arr); k++) {
				struct json_object *p = json_object_array_get_idx(arr, k), *pa;
				const char *dir;

				json_object_object_get_ex(p, "attributes", &pa);
				dir = res_attr(pa, "network.io.direction", NULL);
				if (!strcmp(nm, "tcp.io") && dir && !strcmp(dir, "transmit"))
					r->transmit += point_int(p);
				else if (!strcmp(nm, "tcp.connection.active"))
					r->active += point_int(p);
				else if (!strcmp(nm, "tcp.exchange.duration"))
					r->exchanges += point_int(p);
			}
		}
	}
	return n;
}

/* One exchange of `ns`, as a socket's histogram delta. */
static void add_one_exchange(struct stream *s, uint64_t ns)
{
	uint32_t delta[TCPOTEL_EXCHANGE_BUCKETS] = { 0 };

	delta[metrics_exchange_bucket(ns)] = 1;
	stream__add_exchanges(s, delta, ns, ns, ns);
}

static struct stream *worker_stream(struct metrics *m, struct procinfo *pi, uint32_t pid)
{
	struct stream_key key = {
		.role = TCPOTEL_ROLE_SERVER,
		.family = AF_INET,
		.port = 8000,
		.peer = { 10, 0, 0, 1 },
	};

	key.res = procinfo__get(pi, pid, "gunicorn", 1);
	return key.res ? metrics__stream(m, &key) : NULL;
}

/*
 * Two workers of one service (fixtures 420 and 421: same service, container
 * and pod, different pids and command lines). Per process: two resources
 * with their pids. Per service instance: one resource, without process.pid
 * and process.command_line, whose counters add up both workers' and keep
 * growing after one worker's streams are gone.
 */
TEST(metrics_per_service_instance_adds_up_its_processes)
{
	char root_path[4096];
	struct procinfo_opts popts = { .proc_root = root_path,
				       .host_name = "node-1",
				       .max_entries = 16,
				       .revalidate_ms = 1000,
				       .command_line = true };
	struct body_resource r[4];
	struct json_object *body = NULL;
	struct procinfo *pi;
	struct metrics *m = NULL, *mp = NULL;
	struct stream *a, *b;
	int64_t pid = 0;
	size_t n;

	snprintf(root_path, sizeof(root_path), "%s/tests/fixtures/proc", test_srcdir());
	pi = procinfo__new(&popts);
	m = pi ? metrics__new(pi, 64) : NULL;
	mp = pi ? metrics__new(pi, 64) : NULL;
	if (!ASSERT_NOT_NULL(m) || !ASSERT_NOT_NULL(mp))
		goto out;
	metrics__set_per_process(m, false);

	/* Per process (the default): two resources, each with its pid. */
	a = worker_stream(mp, pi, 420);
	b = worker_stream(mp, pi, 421);
	if (!ASSERT_NOT_NULL(a) || !ASSERT_NOT_NULL(b) || !ASSERT_TRUE(a != b))
		goto out;
	stream__add_io(a, 100, 0);
	stream__add_io(b, 20, 0);
	n = read_body(mp, &body, r, 4, 1000);
	if (!ASSERT_EQ(n, 2))
		goto out;
	ASSERT_NOT_NULL(res_attr(r[0].attrs, "process.pid", &pid));
	ASSERT_NOT_NULL(res_attr(r[1].attrs, "process.command_line", NULL));
	ASSERT_EQ(r[0].transmit + r[1].transmit, 120);
	json_object_put(body);
	body = NULL;

	/* Per service instance. */
	a = worker_stream(m, pi, 420);
	b = worker_stream(m, pi, 421);
	if (!ASSERT_NOT_NULL(a) || !ASSERT_NOT_NULL(b) || !ASSERT_TRUE(a != b))
		goto out;
	stream__add_io(a, 100, 7);
	stream__add_io(b, 20, 3);
	stream__add_active(a, 1);
	stream__add_active(b, 2);
	add_one_exchange(a, 1000000);
	add_one_exchange(b, 2000000);
	n = read_body(m, &body, r, 4, 1000);
	if (!ASSERT_EQ(n, 1))
		goto out;
	ASSERT_TRUE(res_attr(r[0].attrs, "process.pid", &pid) == NULL);
	ASSERT_TRUE(res_attr(r[0].attrs, "process.command_line", NULL) == NULL);
	ASSERT_STREQ(res_attr(r[0].attrs, "service.name", NULL), "checkout");
	ASSERT_STREQ(res_attr(r[0].attrs, "k8s.pod.uid", NULL),
		     "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901");
	ASSERT_STREQ(res_attr(r[0].attrs, "process.executable.name", NULL), "python3.11");
	ASSERT_EQ(r[0].transmit, 120);
	ASSERT_EQ(r[0].active, 3);
	ASSERT_EQ(r[0].exchanges, 2);
	json_object_put(body);
	body = NULL;

	/* Worker a exits: its connection closes, its stream goes once idle and exported. */
	stream__add_active(a, -1);
	metrics__evict_idle(m, 2000, 1);
	n = read_body(m, &body, r, 4, 2500);
	json_object_put(body);
	body = NULL;
	ASSERT_EQ(metrics__evict_idle(m, 3000, 1), 1); /* a alone: b and the instance stay */
	stream__add_io(b, 5, 0);
	n = read_body(m, &body, r, 4, 4000);
	if (ASSERT_EQ(n, 1)) {
		ASSERT_EQ(r[0].transmit, 125); /* never goes back: a's 100 stay counted */
		ASSERT_EQ(r[0].active, 2);
	}
	ASSERT_EQ(metrics__streams(m), 2);
out:
	json_object_put(body);
	metrics__free(m);
	metrics__free(mp);
	procinfo__free(pi);
}

/* The points of `name` in a body: {error.type or "", value (count for histograms), sum}. */
struct error_point {
	char type[32];
	int64_t value;
	double sum;
};

static size_t error_points(struct json_object *root, const char *name, struct error_point *out,
			   size_t max)
{
	struct json_object *rms, *sms, *ms, *arr, *v;
	size_t n = 0;

	if (!json_object_object_get_ex(root, "resourceMetrics", &rms))
		return 0;
	for (size_t i = 0; i < json_object_array_length(rms); i++) {
		json_object_object_get_ex(json_object_array_get_idx(rms, i), "scopeMetrics", &sms);
		json_object_object_get_ex(json_object_array_get_idx(sms, 0), "metrics", &ms);
		for (size_t j = 0; j < json_object_array_length(ms); j++) {
			struct json_object *mt = json_object_array_get_idx(ms, j), *nm, *kind;

			json_object_object_get_ex(mt, "name", &nm);
			if (strcmp(json_object_get_string(nm), name) ||
			    (!json_object_object_get_ex(mt, "sum", &kind) &&
			     !json_object_object_get_ex(mt, "histogram", &kind)))
				continue;
			json_object_object_get_ex(kind, "dataPoints", &arr);
			for (size_t k = 0; k < json_object_array_length(arr) && n < max; k++) {
				struct json_object *p = json_object_array_get_idx(arr, k), *pa;
				const char *type;

				json_object_object_get_ex(p, "attributes", &pa);
				type = res_attr(pa, "error.type", NULL);
				snprintf(out[n].type, sizeof(out[n].type), "%s", type ? type : "");
				out[n].value = point_int(p);
				out[n].sum = json_object_object_get_ex(p, "sum", &v) ?
						     json_object_get_double(v) :
						     0;
				n++;
			}
		}
	}
	return n;
}

/*
 * Failures in a stream: tcp.exchange.duration keeps its series of successful
 * exchanges without error.type and gets one series per error.type of the
 * failed ones; tcp.connection.failed has one point per error.type; a stream
 * with no failure has neither.
 */
TEST(metrics_failures_by_error_type)
{
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 16,
				       .revalidate_ms = 1000 };
	struct stream_key key = { .role = TCPOTEL_ROLE_CLIENT,
				  .family = AF_INET,
				  .port = 5432,
				  .peer = { 10, 0, 0, 2 } };
	struct error_point p[8];
	struct json_object *body = NULL;
	struct procinfo *pi = procinfo__new(&popts);
	struct metrics *m = pi ? metrics__new(pi, 16) : NULL;
	struct otlp_json_emitter je;
	struct stream *s;
	struct jbuf b;
	size_t n;

	if (!ASSERT_NOT_NULL(m))
		goto out;
	key.res = procinfo__get(pi, (uint32_t)getpid(), "frontend", 1);
	s = key.res ? metrics__stream(m, &key) : NULL;
	if (!ASSERT_NOT_NULL(s))
		goto out;
	add_one_exchange(s, 1000000);
	add_one_exchange(s, 3000000);
	jbuf_init(&b);
	otlp_json_emitter_init(&je, &b);
	metrics__encode(m, &je.emitter, 1000, NULL);
	body = json_tokener_parse(jbuf_cstr(&b));
	jbuf_free(&b);
	ASSERT_EQ(error_points(body, "tcp.connection.failed", p, 8), 0);
	n = error_points(body, "tcp.exchange.duration", p, 8);
	if (ASSERT_EQ(n, 1))
		ASSERT_STREQ(p[0].type, "");
	json_object_put(body);

	stream__add_failed_exchange(s, TCPOTEL_ERR_RESET, 3000000000ULL);
	stream__add_failed_exchange(s, TCPOTEL_ERR_NO_RESPONSE, 300000000000ULL);
	stream__add_failed_exchange(s, TCPOTEL_ERR_NO_RESPONSE, 300000000000ULL);
	stream__add_connect_failed(s, TCPOTEL_ERR_CONNECTION_REFUSED);
	stream__add_connect_failed(s, TCPOTEL_ERR_CONNECTION_REFUSED);
	stream__add_connect_failed(s, TCPOTEL_ERR_TIMEOUT);
	jbuf_init(&b);
	otlp_json_emitter_init(&je, &b);
	metrics__encode(m, &je.emitter, 2000, NULL);
	body = json_tokener_parse(jbuf_cstr(&b));
	jbuf_free(&b);
	n = error_points(body, "tcp.exchange.duration", p, 8);
	if (ASSERT_EQ(n, 3)) {
		ASSERT_STREQ(p[0].type, "");
		ASSERT_EQ(p[0].value, 2);
		ASSERT_DOUBLE_NEAR(p[0].sum, 0.004, 1e-12);
		ASSERT_STREQ(p[1].type, "reset");
		ASSERT_EQ(p[1].value, 1);
		ASSERT_DOUBLE_NEAR(p[1].sum, 3, 1e-12);
		ASSERT_STREQ(p[2].type, "no_response");
		ASSERT_EQ(p[2].value, 2);
		ASSERT_DOUBLE_NEAR(p[2].sum, 600, 1e-9);
	}
	n = error_points(body, "tcp.connection.failed", p, 8);
	if (ASSERT_EQ(n, 2)) {
		ASSERT_STREQ(p[0].type, "connection_refused");
		ASSERT_EQ(p[0].value, 2);
		ASSERT_STREQ(p[1].type, "timeout");
		ASSERT_EQ(p[1].value, 1);
	}
out:
	json_object_put(body);
	metrics__free(m);
	procinfo__free(pi);
}

/* ---- the agent's own metrics: the live map's ----------------------------------- */

/* The metric `name` of a metrics body (any resource), or NULL. */
static struct json_object *body_metric(struct json_object *body, const char *name)
{
	struct json_object *rms, *sms, *ms, *nm;

	if (!json_object_object_get_ex(body, "resourceMetrics", &rms))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(rms); i++) {
		if (!json_object_object_get_ex(json_object_array_get_idx(rms, i), "scopeMetrics",
					       &sms) ||
		    !json_object_object_get_ex(json_object_array_get_idx(sms, 0), "metrics", &ms))
			continue;
		for (size_t j = 0; j < json_object_array_length(ms); j++) {
			struct json_object *mt = json_object_array_get_idx(ms, j);

			if (json_object_object_get_ex(mt, "name", &nm) &&
			    !strcmp(json_object_get_string(nm), name))
				return mt;
		}
	}
	return NULL;
}

/* How many metrics of the body have a name that starts with `prefix`. */
static size_t body_metrics_named(struct json_object *body, const char *prefix)
{
	struct json_object *rms, *sms, *ms, *nm;
	size_t n = 0;

	if (!json_object_object_get_ex(body, "resourceMetrics", &rms))
		return 0;
	for (size_t i = 0; i < json_object_array_length(rms); i++) {
		if (!json_object_object_get_ex(json_object_array_get_idx(rms, i), "scopeMetrics",
					       &sms) ||
		    !json_object_object_get_ex(json_object_array_get_idx(sms, 0), "metrics", &ms))
			continue;
		for (size_t j = 0; j < json_object_array_length(ms); j++)
			if (json_object_object_get_ex(json_object_array_get_idx(ms, j), "name",
						      &nm) &&
			    !strncmp(json_object_get_string(nm), prefix, strlen(prefix)))
				n++;
	}
	return n;
}

/*
 * One metric of the agent's own: its unit and kind ("gauge" or a monotonic
 * "sum") as given, and the value of its point whose attribute `key` is
 * `value` (key NULL: its only point, without attributes). false, with an
 * assertion failed, if not so.
 */
static bool self_point(struct json_object *body, const char *name, const char *unit,
		       const char *kind, const char *key, const char *value, int64_t want)
{
	struct json_object *mt = body_metric(body, name), *x, *data, *pts;
	size_t found = 0;

	if (!ASSERT_NOT_NULL(mt) || !json_object_object_get_ex(mt, "unit", &x) ||
	    !ASSERT_STREQ(json_object_get_string(x), unit) ||
	    !ASSERT_TRUE(json_object_object_get_ex(mt, kind, &data)) ||
	    !json_object_object_get_ex(data, "dataPoints", &pts))
		return false;
	if (!strcmp(kind, "sum") && (!json_object_object_get_ex(data, "isMonotonic", &x) ||
				     !ASSERT_TRUE(json_object_get_boolean(x))))
		return false;
	if (!ASSERT_EQ(json_object_array_length(pts), key ? SELF_MAP_DROP__COUNT : 1))
		return false;
	for (size_t i = 0; i < json_object_array_length(pts); i++) {
		struct json_object *p = json_object_array_get_idx(pts, i), *pa = NULL;
		const char *v;

		json_object_object_get_ex(p, "attributes", &pa);
		v = key ? res_attr(pa, key, NULL) : NULL;
		if (key && (!v || strcmp(v, value)))
			continue;
		if (!key && !ASSERT_EQ(pa ? json_object_array_length(pa) : 0, 0))
			return false;
		found++;
		if (!ASSERT_EQ(point_int(p), want))
			return false;
	}
	return ASSERT_EQ(found, 1);
}

static struct json_object *encode_self_only(struct metrics *m, const struct self_stats *st)
{
	struct otlp_json_emitter je;
	struct json_object *body;
	struct jbuf b;

	jbuf_init(&b);
	otlp_json_emitter_init(&je, &b);
	metrics__encode(m, &je.emitter, 1000, st);
	body = json_tokener_parse(jbuf_cstr(&b));
	jbuf_free(&b);
	return body;
}

/*
 * The live map's counters are tcpotel.map.* metrics on the agent's resource,
 * each from its own field (all values differ), tcpotel.map.dropped with one
 * point per reason; with the map off there is no tcpotel.map.* at all, the
 * other tcpotel.* metrics being there either way.
 */
TEST(metrics_self_map_counters_only_with_the_map)
{
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 16,
				       .revalidate_ms = 1000 };
	struct procinfo *pi = procinfo__new(&popts);
	struct metrics *m = pi ? metrics__new(pi, 16) : NULL;
	struct self_stats st = { .streams_dropped = 3 };
	struct json_object *body = NULL;

	if (!ASSERT_NOT_NULL(m))
		goto out;
	body = encode_self_only(m, &st);
	if (!ASSERT_NOT_NULL(body))
		goto out;
	ASSERT_EQ(body_metrics_named(body, "tcpotel.map."), 0);
	ASSERT_TRUE(self_point(body, "tcpotel.streams.dropped", "{stream}", "sum", NULL, NULL, 3));
	json_object_put(body);

	st.map = true;
	st.map_halves = 101;
	st.map_failed_connections = 102;
	st.map_paired = 103;
	st.map_unpaired = 104;
	st.map_pending = 105;
	st.map_pending_overflow = 106;
	st.map_dropped[SELF_MAP_NODE_LIMIT] = 107;
	st.map_dropped[SELF_MAP_EDGE_LIMIT] = 108;
	st.map_dropped[SELF_MAP_DUPLICATE] = 109;
	st.map_nodes = 110;
	st.map_edges = 111;
	body = encode_self_only(m, &st);
	if (!ASSERT_NOT_NULL(body))
		goto out;
	ASSERT_EQ(body_metrics_named(body, "tcpotel.map."), 9);
	ASSERT_TRUE(self_point(body, "tcpotel.map.halves", "{half}", "sum", NULL, NULL, 101));
	ASSERT_TRUE(self_point(body, "tcpotel.map.connections.failed", "{connection}", "sum", NULL,
			       NULL, 102));
	ASSERT_TRUE(self_point(body, "tcpotel.map.paired", "{exchange}", "sum", NULL, NULL, 103));
	ASSERT_TRUE(self_point(body, "tcpotel.map.unpaired", "{half}", "sum", NULL, NULL, 104));
	ASSERT_TRUE(self_point(body, "tcpotel.map.pending", "{half}", "gauge", NULL, NULL, 105));
	ASSERT_TRUE(
		self_point(body, "tcpotel.map.pending.overflow", "{half}", "sum", NULL, NULL, 106));
	ASSERT_TRUE(self_point(body, "tcpotel.map.dropped", "{exchange}", "sum", "reason",
			       "node_limit", 107));
	ASSERT_TRUE(self_point(body, "tcpotel.map.dropped", "{exchange}", "sum", "reason",
			       "edge_limit", 108));
	ASSERT_TRUE(self_point(body, "tcpotel.map.dropped", "{exchange}", "sum", "reason",
			       "duplicate", 109));
	ASSERT_TRUE(self_point(body, "tcpotel.map.nodes", "{node}", "gauge", NULL, NULL, 110));
	ASSERT_TRUE(self_point(body, "tcpotel.map.edges", "{edge}", "gauge", NULL, NULL, 111));
	ASSERT_TRUE(self_point(body, "tcpotel.streams.dropped", "{stream}", "sum", NULL, NULL, 3));
out:
	json_object_put(body);
	metrics__free(m);
	procinfo__free(pi);
}
