// SPDX-License-Identifier: Apache-2.0
/*
 * Metrics -> Prometheus text through the emitter the OTLP encoder shares:
 * names and labels the Collector's way, values as Go writes them, one block
 * per family, duplicate series added up, and a golden file
 * (tests/golden/prom_basic.txt) for a body written through the emitter. The
 * scope version is written there as @VERSION@; set TCPOTEL_UPDATE_GOLDEN=1
 * to rewrite it after a deliberate change. When promtool (Debian's
 * prometheus package) is installed, it must accept the output with no lint
 * problem. Then the metric store itself, written both ways: every metric of
 * the OTLP body is on the page, with the same values.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json_check.h"
#include "metrics.h"
#include "otlp.h"
#include "procinfo.h"
#include "prom.h"
#include "test.h"
#include "util.h"

#ifndef TCPOTEL_VERSION
#define TCPOTEL_VERSION "dev"
#endif

#define T0 1700000000000000000ULL
#define T1 1700000010000000000ULL

static bool name_is(const char *name, const char *unit, enum prom_source src, const char *want)
{
	struct jbuf b;
	bool ok;

	jbuf_init(&b);
	prom_metric_name(&b, name, unit, src);
	ok = ASSERT_STREQ(jbuf_cstr(&b), want);
	jbuf_free(&b);
	return ok;
}

TEST(prom_metric_names)
{
	if (!name_is("tcp.io", "By", PROM_SRC_MONOTONIC_SUM, "tcp_io_bytes_total") ||
	    !name_is("tcp.srtt", "s", PROM_SRC_HISTOGRAM, "tcp_srtt_seconds") ||
	    !name_is("tcp.exchange.duration", "s", PROM_SRC_HISTOGRAM,
		     "tcp_exchange_duration_seconds") ||
	    !name_is("tcp.connection.active", "{connection}", PROM_SRC_SUM,
		     "tcp_connection_active") ||
	    !name_is("tcp.connection.opened", "{connection}", PROM_SRC_MONOTONIC_SUM,
		     "tcp_connection_opened_total") ||
	    !name_is("tcpotel.export.queue.depth", "{batch}", PROM_SRC_GAUGE,
		     "tcpotel_export_queue_depth"))
		return;
	/* "_ratio" for gauges of unit 1 only; counters of unit 1 get nothing. */
	if (!name_is("cpu.utilization", "1", PROM_SRC_GAUGE, "cpu_utilization_ratio") ||
	    !name_is("hit.ratio", "1", PROM_SRC_GAUGE, "hit_ratio") ||
	    !name_is("items", "1", PROM_SRC_MONOTONIC_SUM, "items_total"))
		return;
	/* A unit already in the name is not repeated; "total" moves to the end. */
	if (!name_is("latency.seconds", "s", PROM_SRC_GAUGE, "latency_seconds") ||
	    !name_is("total.sent", "By", PROM_SRC_MONOTONIC_SUM, "sent_bytes_total") ||
	    !name_is("disk.io", "By", PROM_SRC_SUM, "disk_io_bytes"))
		return;
	/* Per units, unknown units, annotations, odd characters, a leading digit. */
	if (!name_is("requests", "1/s", PROM_SRC_GAUGE, "requests_per_second") ||
	    !name_is("packets", "{packet}/s", PROM_SRC_GAUGE, "packets_per_second") ||
	    !name_is("memory", "MiBy", PROM_SRC_GAUGE, "memory_mebibytes") ||
	    !name_is("widgets", "furlong", PROM_SRC_GAUGE, "widgets_furlong") ||
	    !name_is("http-server..request duration", "ms", PROM_SRC_HISTOGRAM,
		     "http_server_request_duration_milliseconds") ||
	    !name_is("2xx.responses", "", PROM_SRC_MONOTONIC_SUM, "_2xx_responses_total") ||
	    !name_is("temp", "Cel", PROM_SRC_GAUGE, "temp_celsius"))
		return;
}

static bool label_is(const char *key, const char *want)
{
	struct jbuf b;
	bool ok;

	jbuf_init(&b);
	prom_label_name(&b, key);
	ok = ASSERT_STREQ(jbuf_cstr(&b), want);
	jbuf_free(&b);
	return ok;
}

TEST(prom_label_names)
{
	if (!label_is("network.io.direction", "network_io_direction") ||
	    !label_is("tcp.role", "tcp_role") || !label_is("0day", "key_0day") ||
	    !label_is("_private", "key_private") || !label_is("a-b c/d", "a_b_c_d") ||
	    !label_is("ok_name:x", "ok_name_x"))
		return;
}

static bool fmt_is(double v, const char *want)
{
	char buf[48];

	prom_format_double(buf, sizeof(buf), v);
	return ASSERT_STREQ(buf, want);
}

TEST(prom_values_as_go_writes_them)
{
	if (!fmt_is(0, "0") || !fmt_is(1, "1") || !fmt_is(-2.5, "-2.5") ||
	    !fmt_is(123456, "123456") || !fmt_is(100000, "100000") || !fmt_is(1e6, "1e+06") ||
	    !fmt_is(1234567, "1.234567e+06") || !fmt_is(123456789, "1.23456789e+08") ||
	    !fmt_is(0.0001, "0.0001") || !fmt_is(1e-05, "1e-05") || !fmt_is(5e-05, "5e-05") ||
	    !fmt_is(0.25, "0.25") || !fmt_is(0.1 + 0.2, "0.30000000000000004") ||
	    !fmt_is(1.5e300, "1.5e+300") || !fmt_is(2.5e-300, "2.5e-300") || !fmt_is(NAN, "NaN") ||
	    !fmt_is(INFINITY, "+Inf") || !fmt_is(-INFINITY, "-Inf"))
		return;
}

/* ---- bodies through the emitter ------------------------------------------------ */

static const struct otlp_metric_desc d_io = { "tcp.io", "By", "Bytes sent and received over TCP",
					      OTLP_SUM_MONOTONIC, false };
static const struct otlp_metric_desc d_active = { "tcp.connection.active", "{connection}",
						  "Connections open now", OTLP_SUM_NONMONOTONIC,
						  false };
static const struct otlp_metric_desc d_srtt = { "tcp.srtt", "s", "Smoothed round-trip time",
						OTLP_HISTOGRAM, false };
static const struct otlp_metric_desc d_depth = { "tcpotel.export.queue.depth", "{batch}",
						 "Batches waiting in the export queue", OTLP_GAUGE,
						 false };
static const struct otlp_metric_desc d_load = { "tcpotel.load", "1", "Load", OTLP_GAUGE, true };

static void io_points(struct otlp_metrics_emitter *e, const char *peer, int64_t tx, int64_t rx)
{
	struct otlp_attr a[4] = {
		OTLP_ATTR_STR("tcp.role", "client"),
		OTLP_ATTR_STR("network.io.direction", "transmit"),
		OTLP_ATTR_STR("server.address", peer),
		OTLP_ATTR_INT("server.port", 6379),
	};

	e->ops->point_int(e, a, 4, T0, T1, tx);
	a[1] = OTLP_ATTR_STR("network.io.direction", "receive");
	e->ops->point_int(e, a, 4, T0, T1, rx);
}

static void srtt_point(struct otlp_metrics_emitter *e, const uint64_t *counts, uint64_t count,
		       double sum)
{
	static const double bounds[] = { 0.0001, 0.001, 0.01, 0.1 };
	struct otlp_attr a[2] = {
		OTLP_ATTR_STR("tcp.role", "client"),
		OTLP_ATTR_STR("server.address", "10.0.0.2"),
	};
	struct otlp_histogram_point h = {
		.bounds = bounds,
		.n_bounds = 4,
		.counts = counts,
		.count = count,
		.sum = sum,
		.has_min_max = true,
		.min = 5e-05,
		.max = 0.09,
	};

	e->ops->point_histogram(e, a, 2, T0, T1, &h);
}

/*
 * Three resources: checkout twice (two pids, same series: added up), and
 * redis; then the agent's own resource with gauges. Each carries tcp.io, so
 * the family must still come out as one block.
 */
static void build_body(struct otlp_metrics_emitter *e)
{
	const struct otlp_metrics_emitter_ops *o = e->ops;
	struct otlp_attr r1[] = {
		OTLP_ATTR_STR("service.name", "checkout"),
		OTLP_ATTR_INT("process.pid", 4242),
		OTLP_ATTR_STR("host.name", "node-1"),
	};
	struct otlp_attr r2[] = {
		OTLP_ATTR_STR("service.name", "checkout"),
		OTLP_ATTR_INT("process.pid", 4243),
		OTLP_ATTR_STR("host.name", "node-1"),
	};
	struct otlp_attr r3[] = {
		OTLP_ATTR_STR("service.name", "redis"),
		OTLP_ATTR_STR("service.namespace", "shop"),
		OTLP_ATTR_STR("service.instance.id", "redis-0"),
		OTLP_ATTR_STR("container.id", "abc\"def\\gh"),
	};
	struct otlp_attr r4[] = { OTLP_ATTR_STR("service.name", "tcpotel") };
	struct otlp_resource res1 = { r1, 3 }, res2 = { r2, 3 }, res3 = { r3, 4 }, res4 = { r4, 1 };
	static const uint64_t c1[] = { 1, 5, 3, 1, 0 }, c2[] = { 0, 1, 0, 0, 1 };
	struct otlp_attr srv[3] = {
		OTLP_ATTR_STR("tcp.role", "server"),
		OTLP_ATTR_STR("client.address", "10.0.0.1"),
		OTLP_ATTR_INT("server.port", 6379),
	};
	struct otlp_attr lab = OTLP_ATTR_STR("note", "line1\nline2");

	o->begin(e);
	o->resource_begin(e, &res1);
	o->metric_begin(e, &d_io);
	io_points(e, "10.0.0.2", 1000, 2000000);
	o->metric_end(e);
	o->metric_begin(e, &d_srtt);
	srtt_point(e, c1, 10, 0.0234);
	o->metric_end(e);
	o->resource_end(e);

	o->resource_begin(e, &res2);
	o->metric_begin(e, &d_io);
	io_points(e, "10.0.0.2", 24, 48);
	o->metric_end(e);
	o->metric_begin(e, &d_srtt);
	srtt_point(e, c2, 2, 0.5);
	o->metric_end(e);
	o->resource_end(e);

	o->resource_begin(e, &res3);
	o->metric_begin(e, &d_active);
	o->point_int(e, srv, 3, T0, T1, 3);
	o->metric_end(e);
	o->metric_begin(e, &d_io);
	o->point_int(e, srv, 3, T0, T1, 123456789);
	o->metric_end(e);
	o->resource_end(e);

	o->resource_begin(e, &res4);
	o->metric_begin(e, &d_depth);
	o->point_int(e, NULL, 0, 0, T1, 7);
	o->metric_end(e);
	o->metric_begin(e, &d_load);
	o->point_double(e, &lab, 1, 0, T1, 0.75);
	o->metric_end(e);
	o->resource_end(e);
	o->end(e);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[n] = '\0';
		*len = (size_t)n;
	}
	return buf;
}

/* The body written as Prometheus text, the scope version replaced by @VERSION@. */
static bool convert_fixed(struct jbuf *text)
{
	const char *ver = "otel_scope_version=\"" TCPOTEL_VERSION "\"";
	struct prom_writer *w = prom_writer__new();
	const char *raw = NULL, *p, *q;
	size_t len;
	bool ok;

	if (!ASSERT_NOT_NULL(w))
		return false;
	build_body(prom_writer__emitter(w));
	raw = prom_writer__text(w, &len);
	ok = ASSERT_NOT_NULL(raw) && ASSERT_EQ(strlen(raw), len);
	if (ok) {
		for (p = raw; (q = strstr(p, ver));) {
			jbuf_put(text, p, (size_t)(q - p));
			jbuf_puts(text, "otel_scope_version=\"@VERSION@\"");
			p = q + strlen(ver);
		}
		jbuf_puts(text, p);
	}
	prom_writer__free(w);
	return ok && ASSERT_NOT_NULL(jbuf_cstr(text));
}

TEST(prom_golden)
{
	char path[4096], *gold;
	struct jbuf text;
	size_t len;

	snprintf(path, sizeof(path), "%s/tests/golden/prom_basic.txt", test_srcdir());
	jbuf_init(&text);
	if (!convert_fixed(&text))
		goto out;
	if (getenv("TCPOTEL_UPDATE_GOLDEN")) {
		FILE *f = fopen(path, "wb");

		if (ASSERT_NOT_NULL(f)) {
			fwrite(text.data, 1, text.len, f);
			fclose(f);
		}
	}
	gold = read_file(path, &len);
	if (ASSERT_NOT_NULL(gold))
		ASSERT_STREQ(text.data, gold);
	free(gold);
out:
	jbuf_free(&text);
}

/* Lines of text starting with prefix. */
static int count_lines(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, prefix, strlen(prefix)))
			n++;
	return n;
}

TEST(prom_structure)
{
	struct jbuf text;
	const char *t;

	jbuf_init(&text);
	if (!convert_fixed(&text))
		goto out;
	t = text.data;
	/* One block per family, however many resources carry it. */
	if (!ASSERT_EQ(count_lines(t, "# TYPE tcp_io_bytes_total counter\n"), 1) ||
	    !ASSERT_EQ(count_lines(t, "# TYPE tcp_srtt_seconds histogram\n"), 1) ||
	    !ASSERT_EQ(count_lines(t, "# TYPE tcp_connection_active gauge\n"), 1) ||
	    !ASSERT_EQ(count_lines(t, "# TYPE tcpotel_export_queue_depth gauge\n"), 1) ||
	    !ASSERT_EQ(count_lines(t, "# TYPE tcpotel_load_ratio gauge\n"), 1) ||
	    !ASSERT_EQ(count_lines(t, "# TYPE target_info gauge\n"), 1))
		goto out;
	/* checkout's two pids: their series added up (1000 + 24, 2000000 + 48). */
	if (!ASSERT_NOT_NULL(strstr(t,
				    "tcp_io_bytes_total{job=\"checkout\",network_io_direction="
				    "\"transmit\",otel_scope_name=\"tcpotel\",otel_scope_version="
				    "\"@VERSION@\",server_address=\"10.0.0.2\",server_port="
				    "\"6379\",tcp_role=\"client\"} 1024\n")) ||
	    !ASSERT_NOT_NULL(strstr(t, "tcp_role=\"client\"} 2.000048e+06\n")))
		goto out;
	/* Histograms: cumulative, +Inf = count, merged the same way. */
	if (!ASSERT_NOT_NULL(strstr(t, ",le=\"0.0001\"} 1\n")) ||
	    !ASSERT_NOT_NULL(strstr(t, ",le=\"0.001\"} 7\n")) ||
	    !ASSERT_NOT_NULL(strstr(t, ",le=\"0.1\"} 11\n")) ||
	    !ASSERT_NOT_NULL(strstr(t, ",le=\"+Inf\"} 12\n")) ||
	    !ASSERT_NOT_NULL(strstr(t, "tcp_srtt_seconds_sum{")) ||
	    !ASSERT_NOT_NULL(strstr(t, "} 0.5234\n")))
		goto out;
	/* job from namespace/name, instance, target_info with the rest, escaped. */
	if (!ASSERT_NOT_NULL(strstr(t, "target_info{container_id=\"abc\\\"def\\\\gh\",instance="
				       "\"redis-0\",job=\"shop/redis\"} 1\n")) ||
	    !ASSERT_NOT_NULL(strstr(t, "target_info{host_name=\"node-1\",job=\"checkout\","
				       "process_pid=\"4242\"} 1\n")) ||
	    !ASSERT_NOT_NULL(strstr(t, "note=\"line1\\nline2\"")) ||
	    !ASSERT_NOT_NULL(strstr(t, "} 1.23456789e+08\n")))
		goto out;
	/* A resource of service.name alone has no target_info. */
	ASSERT_EQ(count_lines(t, "target_info{job=\"tcpotel\""), 0);
out:
	jbuf_free(&text);
}

/* The same name as a gauge, a histogram and a sum: the first type stays, gauges and sums add up. */
TEST(prom_type_conflict_keeps_first)
{
	static const struct otlp_metric_desc gauge = { "x", NULL, NULL, OTLP_GAUGE, false };
	static const struct otlp_metric_desc hist = { "x", "", "", OTLP_HISTOGRAM, false };
	static const struct otlp_metric_desc sum = { "x", "", "", OTLP_SUM_NONMONOTONIC, true };
	static const struct otlp_histogram_point h = { .count = 1, .sum = 2 };
	struct prom_writer *w = prom_writer__new();
	struct otlp_metrics_emitter *e;
	struct otlp_resource res = { NULL, 0 };
	const char *text;
	size_t len;

	if (!ASSERT_NOT_NULL(w))
		return;
	e = prom_writer__emitter(w);
	e->ops->begin(e);
	e->ops->resource_begin(e, &res);
	e->ops->metric_begin(e, &gauge);
	e->ops->point_int(e, NULL, 0, 0, T1, 1);
	e->ops->metric_end(e);
	e->ops->metric_begin(e, &hist);
	e->ops->point_histogram(e, NULL, 0, T0, T1, &h);
	e->ops->metric_end(e);
	e->ops->metric_begin(e, &sum);
	e->ops->point_double(e, NULL, 0, T0, T1, 2.5);
	e->ops->metric_end(e);
	e->ops->resource_end(e);
	e->ops->end(e);
	text = prom_writer__text(w, &len);
	ASSERT_STREQ(
		text,
		"# TYPE x gauge\nx{otel_scope_name=\"tcpotel\",otel_scope_version=\"" TCPOTEL_VERSION
		"\"} 3.5\n");
	prom_writer__free(w);
}

/* An empty body is an empty page; the writer forgets a body when it writes the next one. */
TEST(prom_writer_reuse)
{
	struct prom_writer *w = prom_writer__new();
	struct otlp_metrics_emitter *e;
	struct jbuf first;
	const char *text;
	size_t len = 1;

	if (!ASSERT_NOT_NULL(w))
		return;
	e = prom_writer__emitter(w);
	e->ops->begin(e);
	e->ops->end(e);
	text = prom_writer__text(w, &len);
	if (!ASSERT_NOT_NULL(text) || !ASSERT_EQ(len, 0) || !ASSERT_STREQ(text, ""))
		goto out;
	jbuf_init(&first);
	build_body(e);
	text = prom_writer__text(w, &len);
	if (ASSERT_NOT_NULL(text))
		jbuf_put(&first, text, len);
	build_body(e);
	text = prom_writer__text(w, &len);
	/* Not added to the first: the same text again. */
	if (ASSERT_NOT_NULL(text) && ASSERT_NOT_NULL(jbuf_cstr(&first)))
		ASSERT_STREQ(text, first.data);
	jbuf_free(&first);
out:
	prom_writer__free(w);
}

/*
 * What comes from /proc is untrusted: label values stay valid UTF-8 with no
 * raw newline, are cut where the OTLP encoder cuts them, and quotes and
 * backslashes are escaped.
 */
TEST(prom_untrusted_values)
{
	static const struct otlp_metric_desc g = { "g", NULL, "help \\ with\nnewline", OTLP_GAUGE,
						   false };
	char *long_value = malloc(OTLP_MAX_VALUE_BYTES + 100);
	struct otlp_attr ra[] = { OTLP_ATTR_STR("service.name", "svc\xff\"\n") };
	struct otlp_attr pa[] = {
		OTLP_ATTR_STR("bad", "x\xc3(\xed\xa0\x80y"),
		OTLP_ATTR_STR("long", long_value),
		OTLP_ATTR_STR("quote", "a\"b\\c"),
	};
	struct otlp_resource res = { ra, ARRAY_SIZE(ra) };
	struct prom_writer *w = prom_writer__new();
	struct otlp_metrics_emitter *e;
	const char *text, *v;
	size_t len, n = 0;

	if (!ASSERT_NOT_NULL(long_value) || !ASSERT_NOT_NULL(w))
		goto out;
	/* "ab" then 3-byte characters: the cut at 4096 bytes falls inside one. */
	long_value[n++] = 'a';
	long_value[n++] = 'b';
	while (n + 3 < OTLP_MAX_VALUE_BYTES + 90) {
		memcpy(long_value + n, "\xe2\x82\xac", 3);
		n += 3;
	}
	long_value[n] = '\0';
	e = prom_writer__emitter(w);
	e->ops->begin(e);
	e->ops->resource_begin(e, &res);
	e->ops->metric_begin(e, &g);
	e->ops->point_int(e, pa, ARRAY_SIZE(pa), 0, T1, 1);
	e->ops->metric_end(e);
	e->ops->resource_end(e);
	e->ops->end(e);
	text = prom_writer__text(w, &len);
	if (!ASSERT_NOT_NULL(text) || !ASSERT_TRUE(utf8_valid((const uint8_t *)text, len)))
		goto out;
	if (!ASSERT_NOT_NULL(strstr(text, "# HELP g help \\\\ with\\nnewline\n")) ||
	    !ASSERT_NOT_NULL(
		    strstr(text, "bad=\"x\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy\"")) ||
	    !ASSERT_NOT_NULL(strstr(text, "job=\"svc\xef\xbf\xbd\\\"\\n\"")) ||
	    !ASSERT_NOT_NULL(strstr(text, "quote=\"a\\\"b\\\\c\"")))
		goto out;
	/* Of the first 4096 bytes: "ab" and 1364 whole characters; the one cut in two left out. */
	v = strstr(text, "long=\"");
	if (ASSERT_NOT_NULL(v)) {
		v += strlen("long=\"");
		ASSERT_EQ(strchr(v, '"') - v, 2 + 1364 * 3);
	}
out:
	prom_writer__free(w);
	free(long_value);
}

TEST(prom_promtool_accepts_output)
{
	char path[] = "/tmp/tcpotel-prom-XXXXXX", cmd[256], msg[4096];
	struct jbuf text;
	size_t n;
	FILE *f;
	int fd, rc;

	if (access("/usr/bin/promtool", X_OK)) {
		test_skip("promtool not installed (apt-get install prometheus)");
		return;
	}
	jbuf_init(&text);
	if (!convert_fixed(&text))
		goto out;
	fd = mkstemp(path);
	if (!ASSERT_GE(fd, 0))
		goto out;
	if (!ASSERT_EQ(write(fd, text.data, text.len), (ssize_t)text.len)) {
		close(fd);
		goto rm;
	}
	close(fd);
	snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < %s 2>&1", path);
	f = popen(cmd, "r");
	if (!ASSERT_NOT_NULL(f))
		goto rm;
	n = fread(msg, 1, sizeof(msg) - 1, f);
	msg[n] = '\0';
	rc = pclose(f);
	if (!ASSERT_EQ(rc, 0) || !ASSERT_STREQ(msg, ""))
		fprintf(stdout, "    promtool said: %s\n", msg);
rm:
	unlink(path);
out:
	jbuf_free(&text);
}

/* ---- the metric store, written both ways ------------------------------------------ */

/* The value of the one sample of `name` whose line holds every string of `has`. */
static bool sample(const char *text, const char *name, const char *const *has, double *out)
{
	size_t nlen = strlen(name);
	int found = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		const char *end = strchr(p, '\n'), *sp;
		bool all = true;

		if (strncmp(p, name, nlen) || (p[nlen] != '{' && p[nlen] != ' '))
			continue;
		for (const char *const *h = has; *h && all; h++) {
			const char *q = strstr(p, *h);

			all = q && (!end || q < end);
		}
		if (!all)
			continue;
		sp = p + nlen;
		while (*sp != ' ')
			sp++;
		*out = strtod(sp + 1, NULL);
		found++;
	}
	return ASSERT_EQ(found, 1);
}

static enum prom_source source_of_json(struct json_object *m)
{
	struct json_object *d, *mono;

	if (json_object_object_get_ex(m, "histogram", &d))
		return PROM_SRC_HISTOGRAM;
	if (json_object_object_get_ex(m, "gauge", &d))
		return PROM_SRC_GAUGE;
	json_object_object_get_ex(m, "sum", &d);
	return json_object_object_get_ex(d, "isMonotonic", &mono) && json_object_get_boolean(mono) ?
		       PROM_SRC_MONOTONIC_SUM :
		       PROM_SRC_SUM;
}

/* Every metric of the OTLP body has its one family on the page, of the same type. */
static bool every_metric_on_the_page(const char *json, const char *text, int *n_metrics)
{
	static const char *const types[] = { "gauge", "gauge", "counter", "histogram" };
	struct json_object *root = json_tokener_parse(json), *rms, *rm, *sms, *ms;
	bool ok = ASSERT_NOT_NULL(root) && json_object_object_get_ex(root, "resourceMetrics", &rms);

	*n_metrics = 0;
	for (size_t i = 0; ok && i < json_object_array_length(rms); i++) {
		rm = json_object_array_get_idx(rms, i);
		json_object_object_get_ex(rm, "scopeMetrics", &sms);
		json_object_object_get_ex(json_object_array_get_idx(sms, 0), "metrics", &ms);
		for (size_t k = 0; ok && k < json_object_array_length(ms); k++) {
			struct json_object *m = json_object_array_get_idx(ms, k), *v;
			const char *unit = "";
			enum prom_source src = source_of_json(m);
			struct jbuf line;

			if (json_object_object_get_ex(m, "unit", &v))
				unit = json_object_get_string(v);
			json_object_object_get_ex(m, "name", &v);
			jbuf_init(&line);
			jbuf_puts(&line, "# TYPE ");
			prom_metric_name(&line, json_object_get_string(v), unit, src);
			jbuf_putc(&line, ' ');
			jbuf_puts(&line, types[src]);
			jbuf_putc(&line, '\n');
			ok = ASSERT_NOT_NULL(jbuf_cstr(&line)) &&
			     ASSERT_EQ(count_lines(text, line.data), 1);
			jbuf_free(&line);
			(*n_metrics)++;
		}
	}
	json_object_put(root);
	return ok;
}

/*
 * Two processes of one service (pids 600 and 601 of the fake /proc are both
 * "java") and a server: the OTLP body and the page come from one store at
 * one time. The page has every metric of the body and every self metric (the
 * live map's too); the two pids' series are added up.
 */
TEST(prom_renders_the_store_as_otlp_sends_it)
{
	static const uint8_t server[4] = { 10, 0, 0, 2 }, client[4] = { 10, 0, 0, 1 };
	struct procinfo_opts popts = { .host_name = "node-1",
				       .max_entries = 16,
				       .revalidate_ms = 1000 };
	struct self_stats self = { .sockets_tracked = 5,
				   .sent_items = { 7, 9 },
				   .queue_depth = 2,
				   .map = true,
				   .map_dropped = { 0, 11, 0 },
				   .map_nodes = 4 };
	uint32_t srtt[TCPOTEL_SRTT_BUCKETS] = { 0 }, ex[TCPOTEL_EXCHANGE_BUCKETS] = { 0 };
	char root[4096];
	struct procinfo *pi = NULL;
	struct metrics *m = NULL;
	struct prom_writer *w = prom_writer__new();
	struct otlp_json_emitter je;
	struct jbuf body;
	const char *text;
	size_t len, points_json, points_prom;
	int n_metrics;
	double v;

	jbuf_init(&body);
	snprintf(root, sizeof(root), "%s/tests/fixtures/proc", test_srcdir());
	popts.proc_root = root;
	if (!ASSERT_NOT_NULL(w))
		goto out;
	pi = procinfo__new(&popts);
	m = pi ? metrics__new(pi, 16) : NULL;
	if (!ASSERT_NOT_NULL(m))
		goto out;
	srtt[7] = 3;
	ex[metrics_exchange_bucket(2000000)] = 1;
	for (uint32_t pid = 600; pid <= 601; pid++) {
		struct stream_key k = { .role = TCPOTEL_ROLE_CLIENT,
					.family = AF_INET,
					.port = 6379 };
		struct stream *s;

		memcpy(k.peer, server, 4);
		k.res = procinfo__get(pi, pid, "java", 1);
		s = metrics__stream(m, &k);
		if (!ASSERT_NOT_NULL(s))
			goto out;
		stream__add_io(s, pid == 600 ? 1000 : 24, pid == 600 ? 2000000 : 48);
		stream__add_srtt(s, srtt, 3 * 150, 130, 170);
		stream__add_exchanges(s, ex, 2000000, 2000000, 2000000);
	}
	{
		struct stream_key k = { .role = TCPOTEL_ROLE_SERVER,
					.family = AF_INET,
					.port = 6379 };
		struct stream *s;

		memcpy(k.peer, client, 4);
		k.res = procinfo__get(pi, 100, "redis-server", 1);
		s = metrics__stream(m, &k);
		if (!ASSERT_NOT_NULL(s))
			goto out;
		stream__add_io(s, 2000048, 1024);
		stream__add_opened(s, 2);
		stream__add_active(s, 2);
	}
	otlp_json_emitter_init(&je, &body);
	points_json = metrics__encode(m, &je.emitter, T1, &self);
	points_prom = metrics__encode(m, prom_writer__emitter(w), T1, &self);
	text = prom_writer__text(w, &len);
	if (!ASSERT_EQ(points_json, points_prom) || !ASSERT_NOT_NULL(jbuf_cstr(&body)) ||
	    !ASSERT_NOT_NULL(text))
		goto out;
	if (!every_metric_on_the_page(body.data, text, &n_metrics) || !ASSERT_GE(n_metrics, 20))
		goto out;
	if (!sample(text, "tcp_io_bytes_total",
		    (const char *const[]){ "job=\"java\"", "network_io_direction=\"transmit\"",
					   "tcp_role=\"client\"", NULL },
		    &v) ||
	    !ASSERT_EQ(v, 1024))
		goto out;
	if (!sample(text, "tcp_io_bytes_total",
		    (const char *const[]){ "job=\"redis-server\"",
					   "network_io_direction=\"receive\"",
					   "client_address=\"10.0.0.1\"", NULL },
		    &v) ||
	    !ASSERT_EQ(v, 1024))
		goto out;
	if (!sample(text, "tcp_srtt_seconds_count", (const char *const[]){ "job=\"java\"", NULL },
		    &v) ||
	    !ASSERT_EQ(v, 6))
		goto out;
	if (!sample(text, "tcp_exchange_duration_seconds_bucket",
		    (const char *const[]){ "job=\"java\"", "le=\"0.0025\"", NULL }, &v) ||
	    !ASSERT_EQ(v, 2))
		goto out;
	if (!sample(text, "tcpotel_export_sent_total",
		    (const char *const[]){ "signal=\"traces\"", NULL }, &v) ||
	    !ASSERT_EQ(v, 9))
		goto out;
	if (!sample(text, "tcpotel_map_dropped_total",
		    (const char *const[]){ "reason=\"edge_limit\"", NULL }, &v) ||
	    !ASSERT_EQ(v, 11))
		goto out;
	if (!sample(text, "tcpotel_map_nodes", (const char *const[]){ NULL }, &v) ||
	    !ASSERT_EQ(v, 4))
		goto out;
	/* The two pids of java, redis-server, and the agent's own resource. */
	ASSERT_EQ(count_lines(text, "target_info{"), 4);
out:
	jbuf_free(&body);
	prom_writer__free(w);
	metrics__free(m);
	procinfo__free(pi);
}
