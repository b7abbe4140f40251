// SPDX-License-Identifier: Apache-2.0
/*
 * The encoder against golden bodies (one line each in tests/golden; the
 * scope version is written there as @VERSION@ so the files do not change
 * with every release), and against untrusted strings. Set
 * TCPOTEL_UPDATE_GOLDEN=1 to rewrite the golden files from the encoder's
 * output after a deliberate change, then review the diff.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>

#include "otlp.h"
#include "json_check.h"
#include "test.h"

#define T0 1700000000000000000ULL
#define T1 1700000010000000000ULL

/* Follows a path like "resourceSpans.0.resource.attributes.1.value.stringValue". */
static json_object *dig(json_object *o, const char *path)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = strtok_r(buf, ".", &save); p && o; p = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)strtoul(p, NULL, 10));
		else if (!json_object_object_get_ex(o, p, &o))
			o = NULL;
	}
	return o;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		goto out;
	data = malloc((size_t)n + 1);
	if (!data)
		goto out;
	if (fread(data, 1, (size_t)n, f) != (size_t)n) {
		free(data);
		data = NULL;
		goto out;
	}
	data[n] = '\0';
	*len = (size_t)n;
out:
	fclose(f);
	return data;
}

/*
 * Compares b with the golden file, where @VERSION@ stands for TCPOTEL_VERSION
 * and one trailing newline is allowed.
 */
static void check_golden(struct jbuf *b, const char *name)
{
	static const char placeholder[] = "@VERSION@";
	char path[512];
	struct jbuf want;
	char *gold, *p, *q;
	size_t len;

	snprintf(path, sizeof(path), "%s/tests/golden/%s", test_srcdir(), name);
	if (getenv("TCPOTEL_UPDATE_GOLDEN")) {
		FILE *f = fopen(path, "wb");
		struct jbuf out;

		jbuf_init(&out);
		jbuf_cstr(b);
		for (p = b->data; (q = strstr(p, "\"version\":\"" TCPOTEL_VERSION "\""));) {
			q += strlen("\"version\":\"");
			jbuf_put(&out, p, (size_t)(q - p));
			jbuf_puts(&out, placeholder);
			p = q + strlen(TCPOTEL_VERSION);
		}
		jbuf_puts(&out, p);
		jbuf_putc(&out, '\n');
		if (ASSERT_NOT_NULL(f)) {
			fwrite(out.data, 1, out.len, f);
			fclose(f);
		}
		jbuf_free(&out);
	}
	gold = read_file(path, &len);
	if (!ASSERT_NOT_NULL(gold))
		return;
	if (len && gold[len - 1] == '\n')
		gold[--len] = '\0';
	jbuf_init(&want);
	for (p = gold; (q = strstr(p, placeholder)); p = q + strlen(placeholder)) {
		jbuf_put(&want, p, (size_t)(q - p));
		jbuf_puts(&want, TCPOTEL_VERSION);
	}
	jbuf_puts(&want, p);
	if (ASSERT_FALSE(b->failed))
		ASSERT_STREQ(jbuf_cstr(b), jbuf_cstr(&want));
	jbuf_free(&want);
	free(gold);
}

static void encode_metrics_basic(struct jbuf *b)
{
	const struct otlp_attr res1_attrs[] = {
		OTLP_ATTR_STR("service.name", "checkout"),
		OTLP_ATTR_INT("process.pid", 4242),
		OTLP_ATTR_STR("host.name", "node-1"),
	};
	const struct otlp_resource res1 = { res1_attrs, 3 };
	const struct otlp_attr res2_attrs[] = { OTLP_ATTR_STR("service.name", "redis") };
	const struct otlp_resource res2 = { res2_attrs, 1 };
	const struct otlp_attr tx[] = {
		OTLP_ATTR_STR("network.io.direction", "transmit"),
		OTLP_ATTR_STR("tcp.role", "client"),
		OTLP_ATTR_STR("server.address", "10.0.0.2"),
		OTLP_ATTR_INT("server.port", 6379),
	};
	const struct otlp_attr rx[] = {
		OTLP_ATTR_STR("network.io.direction", "receive"),
		OTLP_ATTR_STR("tcp.role", "client"),
		OTLP_ATTR_STR("server.address", "10.0.0.2"),
		OTLP_ATTR_INT("server.port", 6379),
	};
	const struct otlp_attr server[] = {
		OTLP_ATTR_STR("tcp.role", "server"),
		OTLP_ATTR_STR("client.address", "10.0.0.1"),
		OTLP_ATTR_INT("server.port", 6379),
	};
	const struct otlp_attr misc[] = {
		OTLP_ATTR_DOUBLE("ratio", 0.25),
		OTLP_ATTR_BOOL("enabled", true),
		OTLP_ATTR_BOOL("degraded", false),
	};
	const double bounds[] = { 0.0001, 0.001, 0.01, 0.1 };
	const uint64_t counts[] = { 1, 5, 3, 1, 0 };
	const struct otlp_histogram_point h = {
		.bounds = bounds,
		.n_bounds = 4,
		.counts = counts,
		.count = 10,
		.sum = 0.0234,
		.has_min_max = true,
		.min = 0.00005,
		.max = 0.09,
	};
	const uint64_t one_count[] = { 2 };
	const struct otlp_histogram_point h0 = {
		.bounds = NULL,
		.n_bounds = 0,
		.counts = one_count,
		.count = 2,
		.sum = 3.5,
	};
	const struct otlp_metric_desc io = { "tcp.io", "By", "Bytes sent and received",
					     OTLP_SUM_MONOTONIC, false };
	const struct otlp_metric_desc active = { "tcp.connection.active", "{connection}",
						 "Connections open now", OTLP_SUM_NONMONOTONIC,
						 false };
	const struct otlp_metric_desc depth = { "tcpotel.queue.depth", "{batch}", NULL, OTLP_GAUGE,
						false };
	const struct otlp_metric_desc load = { "tcpotel.load", "1", "", OTLP_GAUGE, true };
	const struct otlp_metric_desc srtt = { "tcp.srtt", "s", "Smoothed round-trip time",
					       OTLP_HISTOGRAM, false };
	const struct otlp_metric_desc dur = { "tcp.exchange.duration", "s", NULL, OTLP_HISTOGRAM,
					      false };

	otlp_metrics_begin(b);
	otlp_metrics_resource_begin(b, &res1);
	otlp_metric_begin(b, &io);
	otlp_point_int(b, tx, 4, T0, T1, 123456);
	otlp_point_int(b, rx, 4, T0, T1, 654321);
	otlp_metric_end(b);
	otlp_metric_begin(b, &active);
	otlp_point_int(b, server, 3, T0, T1, 3);
	otlp_metric_end(b);
	otlp_metric_begin(b, &depth);
	otlp_point_int(b, NULL, 0, 0, T1, 7);
	otlp_metric_end(b);
	otlp_metric_begin(b, &load);
	otlp_point_double(b, misc, 3, 0, T1, 0.75);
	otlp_metric_end(b);
	otlp_metric_begin(b, &srtt);
	otlp_point_histogram(b, tx + 1, 3, T0, T1, &h);
	otlp_metric_end(b);
	otlp_metrics_resource_end(b);
	otlp_metrics_resource_begin(b, &res2);
	otlp_metric_begin(b, &dur);
	otlp_point_histogram(b, server, 3, T0, T1, &h0);
	otlp_metric_end(b);
	otlp_metrics_resource_end(b);
	otlp_metrics_end(b);
}

static void encode_traces_basic(struct jbuf *b)
{
	const struct otlp_attr fe_attrs[] = {
		OTLP_ATTR_STR("service.name", "frontend"),
		OTLP_ATTR_INT("process.pid", 100),
	};
	const struct otlp_resource fe = { fe_attrs, 2 };
	const struct otlp_attr be_attrs[] = { OTLP_ATTR_STR("service.name", "backend") };
	const struct otlp_resource be = { be_attrs, 1 };
	const struct otlp_attr client_attrs[] = {
		OTLP_ATTR_STR("network.transport", "tcp"),
		OTLP_ATTR_STR("server.address", "10.0.0.2"),
		OTLP_ATTR_INT("server.port", 8080),
		OTLP_ATTR_STR("peer.service", "backend"),
	};
	const struct otlp_attr server_attrs[] = {
		OTLP_ATTR_STR("network.transport", "tcp"),
		OTLP_ATTR_STR("client.address", "10.0.0.1"),
		OTLP_ATTR_INT("server.port", 8080),
	};
	struct otlp_span client = {
		.trace_id = { 0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92,
			      0x9d, 0x0e, 0x0e, 0x47, 0x36 },
		.span_id = { 0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7 },
		.name = "tcp 10.0.0.2:8080",
		.kind = OTLP_SPAN_KIND_CLIENT,
		.start_unix_nano = T0,
		.end_unix_nano = T0 + 1500000,
		.attrs = client_attrs,
		.n_attrs = 4,
	};
	struct otlp_span server = client;
	struct otlp_span bare = client;

	memcpy(server.parent_span_id, client.span_id, 8);
	memcpy(server.span_id, "\x53\x99\x5c\x3f\x42\xcd\x8a\xd8", 8);
	server.trace_state = "tcpotel=v1";
	server.name = "tcp :8080";
	server.kind = OTLP_SPAN_KIND_SERVER;
	server.start_unix_nano = T0 + 200000;
	server.end_unix_nano = T0 + 1300000;
	server.attrs = server_attrs;
	server.n_attrs = 3;
	server.status = OTLP_STATUS_ERROR;
	server.status_message = "connection reset";

	memcpy(bare.span_id, "\xff\xff\xff\xff\xff\xff\xff\xfe", 8);
	bare.trace_state = "";
	bare.attrs = NULL;
	bare.n_attrs = 0;
	bare.status = OTLP_STATUS_OK;
	bare.start_unix_nano = T1;
	bare.end_unix_nano = T1;

	otlp_traces_begin(b);
	otlp_traces_resource_begin(b, &fe);
	otlp_span(b, &client);
	otlp_span(b, &bare);
	otlp_traces_resource_end(b);
	otlp_traces_resource_begin(b, &be);
	otlp_span(b, &server);
	otlp_traces_resource_end(b);
	otlp_traces_end(b);
}

TEST(otlp_metrics_golden)
{
	struct jbuf b;
	json_object *obj;

	jbuf_init(&b);
	encode_metrics_basic(&b);
	obj = parse_strict(&b);
	ASSERT_NOT_NULL(obj);
	json_object_put(obj);
	check_golden(&b, "metrics_basic.json");
	jbuf_free(&b);
}

TEST(otlp_traces_golden)
{
	struct jbuf b;
	json_object *obj;

	jbuf_init(&b);
	encode_traces_basic(&b);
	obj = parse_strict(&b);
	ASSERT_NOT_NULL(obj);
	json_object_put(obj);
	check_golden(&b, "traces_basic.json");
	jbuf_free(&b);
}

/* The encoder appends: a second body after a reset is the same bytes. */
TEST(otlp_reuse_buffer)
{
	struct jbuf b;
	char *first;

	jbuf_init(&b);
	encode_traces_basic(&b);
	first = strdup(jbuf_cstr(&b));
	if (!ASSERT_NOT_NULL(first))
		goto out;
	jbuf_reset(&b);
	encode_traces_basic(&b);
	ASSERT_STREQ(jbuf_cstr(&b), first);
	free(first);
out:
	jbuf_free(&b);
}

TEST(otlp_empty_bodies)
{
	const struct otlp_attr attrs[] = { OTLP_ATTR_STR("service.name", "x") };
	const struct otlp_resource res = { attrs, 1 };
	const struct otlp_metric_desc gauge = { "g", NULL, NULL, OTLP_GAUGE, false };
	struct jbuf b;

	jbuf_init(&b);
	otlp_metrics_begin(&b);
	otlp_metrics_end(&b);
	ASSERT_STREQ(jbuf_cstr(&b), "{\"resourceMetrics\":[]}");
	jbuf_reset(&b);
	otlp_traces_begin(&b);
	otlp_traces_resource_begin(&b, &res);
	otlp_traces_resource_end(&b);
	otlp_traces_end(&b);
	ASSERT_STREQ(jbuf_cstr(&b),
		     "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
		     "\"value\":{\"stringValue\":\"x\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":"
		     "\"tcpotel\",\"version\":\"" TCPOTEL_VERSION "\"},\"spans\":[]}]}]}");
	jbuf_reset(&b);
	otlp_metrics_begin(&b);
	otlp_metrics_resource_begin(&b, &res);
	otlp_metric_begin(&b, &gauge);
	otlp_metric_end(&b);
	otlp_metric_begin(&b, &gauge);
	otlp_point_double(&b, NULL, 0, 0, T1, NAN);
	otlp_metric_end(&b);
	otlp_metrics_resource_end(&b);
	otlp_metrics_end(&b);
	ASSERT_TRUE(strstr(jbuf_cstr(&b),
			   "\"metrics\":[{\"name\":\"g\",\"gauge\":{\"dataPoints\":[]}},"
			   "{\"name\":\"g\",\"gauge\":{\"dataPoints\":[{\"timeUnixNano\":"
			   "\"1700000010000000000\",\"asDouble\":\"NaN\"}]}}]") != NULL);
	jbuf_free(&b);
}

/* Encodes one span whose every string is s; returns the parsed body or NULL. */
static json_object *encode_hostile(struct jbuf *b, const char *s)
{
	const struct otlp_attr rattrs[] = {
		OTLP_ATTR_STR("service.name", s),
		OTLP_ATTR_STR(s, "value"),
		OTLP_ATTR_STR("process.command_line", s),
	};
	const struct otlp_resource res = { rattrs, 3 };
	const struct otlp_attr attrs[] = { OTLP_ATTR_STR("k", s) };
	struct otlp_span span = {
		.trace_id = { 1 },
		.span_id = { 2 },
		.trace_state = s,
		.name = s,
		.kind = OTLP_SPAN_KIND_SERVER,
		.start_unix_nano = T0,
		.end_unix_nano = T1,
		.attrs = attrs,
		.n_attrs = 1,
		.status = OTLP_STATUS_ERROR,
		.status_message = s,
	};

	jbuf_reset(b);
	otlp_traces_begin(b);
	otlp_traces_resource_begin(b, &res);
	otlp_span(b, &span);
	otlp_traces_resource_end(b);
	otlp_traces_end(b);
	if (!ASSERT_TRUE(utf8_valid((const uint8_t *)b->data, b->len)))
		return NULL;
	return parse_strict(b);
}

TEST(otlp_untrusted_strings)
{
	static const char *const inputs[] = {
		"quote\" backslash\\ slash/",
		"ctl\x01\x02\x1f\x7f\n\r\t end",
		"bad \xc0\x80 \xed\xa0\x80 \xf4\x90\x80\x80 \xff\xfe \x80 trunc \xe2\x82",
		"\"}]},{\"injected\":true,",
		"",
	};
	struct jbuf b;

	jbuf_init(&b);
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		json_object *obj = encode_hostile(&b, inputs[i]);
		json_object *name;

		if (!ASSERT_NOT_NULL(obj)) {
			printf("    case %zu: %s\n", i, jbuf_cstr(&b));
			continue;
		}
		name = dig(obj, "resourceSpans.0.resource.attributes.0.value.stringValue");
		if (ASSERT_NOT_NULL(name) && i == 0)
			ASSERT_STREQ(json_object_get_string(name), inputs[0]);
		ASSERT_EQ(json_object_array_length(dig(obj, "resourceSpans.0.scopeSpans.0.spans")),
			  1);
		ASSERT_EQ(json_object_array_length(dig(obj, "resourceSpans")), 1);
		json_object_put(obj);
	}
	jbuf_free(&b);
}

TEST(otlp_long_strings_cut)
{
	const size_t n = 5000;
	char *s = malloc(n + 1);
	struct jbuf b;
	json_object *obj, *v;

	if (!ASSERT_NOT_NULL(s))
		return;
	jbuf_init(&b);
	memset(s, 'a', n);
	s[n] = '\0';
	obj = encode_hostile(&b, s);
	if (ASSERT_NOT_NULL(obj)) {
		v = dig(obj, "resourceSpans.0.scopeSpans.0.spans.0.name");
		if (ASSERT_NOT_NULL(v))
			ASSERT_EQ(json_object_get_string_len(v), OTLP_MAX_VALUE_BYTES);
		v = dig(obj, "resourceSpans.0.resource.attributes.2.value.stringValue");
		if (ASSERT_NOT_NULL(v))
			ASSERT_EQ(json_object_get_string_len(v), OTLP_MAX_VALUE_BYTES);
	}
	json_object_put(obj);
	/* Three-byte characters: the cut falls inside one, which is dropped. */
	for (size_t i = 0; i + 3 <= n; i += 3)
		memcpy(s + i, "\xe2\x82\xac", 3);
	s[n - 2] = 'x';
	s[n - 1] = 'y';
	obj = encode_hostile(&b, s);
	if (ASSERT_NOT_NULL(obj)) {
		v = dig(obj, "resourceSpans.0.scopeSpans.0.spans.0.status.message");
		if (ASSERT_NOT_NULL(v))
			ASSERT_EQ(json_object_get_string_len(v), OTLP_MAX_VALUE_BYTES / 3 * 3);
	}
	json_object_put(obj);
	free(s);
	jbuf_free(&b);
}

TEST(otlp_random_strings)
{
	unsigned int seed = 7;
	char s[48];
	struct jbuf b;

	jbuf_init(&b);
	for (int iter = 0; iter < 3000; iter++) {
		size_t n = (size_t)rand_r(&seed) % (sizeof(s) - 1);
		json_object *obj;

		for (size_t i = 0; i < n; i++)
			s[i] = (char)(1 + rand_r(&seed) % 255);
		s[n] = '\0';
		obj = encode_hostile(&b, s);
		if (!ASSERT_NOT_NULL(obj))
			break;
		json_object_put(obj);
	}
	jbuf_free(&b);
}
