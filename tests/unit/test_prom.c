// SPDX-License-Identifier: Apache-2.0
/*
 * OTLP JSON -> Prometheus text: names and labels the Collector's way, values
 * as Go writes them, one block per family, duplicate series added up, and a
 * golden file (tests/golden/prom_basic.txt) for a body written by the real
 * OTLP encoder. The scope version is written there as @VERSION@; set
 * TCPOTEL_UPDATE_GOLDEN=1 to rewrite it after a deliberate change. When
 * promtool (Debian's prometheus package) is installed, it must accept the
 * output with no lint problem.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "otlp.h"
#include "prom.h"
#include "test.h"

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

/* ---- bodies from the real encoder ---------------------------------------------- */

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

static void io_points(struct jbuf *b, const char *peer, int64_t tx, int64_t rx)
{
	struct otlp_attr a[4] = {
		OTLP_ATTR_STR("tcp.role", "client"),
		OTLP_ATTR_STR("network.io.direction", "transmit"),
		OTLP_ATTR_STR("server.address", peer),
		OTLP_ATTR_INT("server.port", 6379),
	};

	otlp_point_int(b, a, 4, T0, T1, tx);
	a[1] = OTLP_ATTR_STR("network.io.direction", "receive");
	otlp_point_int(b, a, 4, T0, T1, rx);
}

static void srtt_point(struct jbuf *b, const uint64_t *counts, uint64_t count, double sum)
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

	otlp_point_histogram(b, a, 2, T0, T1, &h);
}

/*
 * Three resources: checkout twice (two pids, same series: added up), and
 * redis; then the agent's own resource with gauges. Each carries tcp.io, so
 * the family must still come out as one block.
 */
static void build_body(struct jbuf *b)
{
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

	otlp_metrics_begin(b);
	otlp_metrics_resource_begin(b, &res1);
	otlp_metric_begin(b, &d_io);
	io_points(b, "10.0.0.2", 1000, 2000000);
	otlp_metric_end(b);
	otlp_metric_begin(b, &d_srtt);
	srtt_point(b, c1, 10, 0.0234);
	otlp_metric_end(b);
	otlp_metrics_resource_end(b);

	otlp_metrics_resource_begin(b, &res2);
	otlp_metric_begin(b, &d_io);
	io_points(b, "10.0.0.2", 24, 48);
	otlp_metric_end(b);
	otlp_metric_begin(b, &d_srtt);
	srtt_point(b, c2, 2, 0.5);
	otlp_metric_end(b);
	otlp_metrics_resource_end(b);

	otlp_metrics_resource_begin(b, &res3);
	otlp_metric_begin(b, &d_active);
	otlp_point_int(b, srv, 3, T0, T1, 3);
	otlp_metric_end(b);
	otlp_metric_begin(b, &d_io);
	otlp_point_int(b, srv, 3, T0, T1, 123456789);
	otlp_metric_end(b);
	otlp_metrics_resource_end(b);

	otlp_metrics_resource_begin(b, &res4);
	otlp_metric_begin(b, &d_depth);
	otlp_point_int(b, NULL, 0, 0, T1, 7);
	otlp_metric_end(b);
	otlp_metric_begin(b, &d_load);
	otlp_point_double(b, &lab, 1, 0, T1, 0.75);
	otlp_metric_end(b);
	otlp_metrics_resource_end(b);
	otlp_metrics_end(b);
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

/* The converted body with the scope version replaced by @VERSION@. */
static bool convert_fixed(struct jbuf *text)
{
	const char *ver = "otel_scope_version=\"" TCPOTEL_VERSION "\"";
	struct jbuf body, raw;
	const char *p, *q;
	bool ok;

	jbuf_init(&body);
	jbuf_init(&raw);
	build_body(&body);
	ok = ASSERT_FALSE(body.failed) &&
	     ASSERT_OK(prom_from_otlp_metrics(body.data, body.len, &raw));
	if (ok && jbuf_cstr(&raw)) {
		for (p = raw.data; (q = strstr(p, ver));) {
			jbuf_put(text, p, (size_t)(q - p));
			jbuf_puts(text, "otel_scope_version=\"@VERSION@\"");
			p = q + strlen(ver);
		}
		jbuf_puts(text, p);
	}
	jbuf_free(&body);
	jbuf_free(&raw);
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

TEST(prom_type_conflict_keeps_first)
{
	static const char body[] =
		"{\"resourceMetrics\":[{\"resource\":{},\"scopeMetrics\":[{\"scope\":{\"name\":\"s\"},"
		"\"metrics\":[{\"name\":\"x\",\"gauge\":{\"dataPoints\":[{\"asInt\":\"1\"}]}},"
		"{\"name\":\"x\",\"histogram\":{\"dataPoints\":[{\"count\":\"1\",\"sum\":2}]}},"
		"{\"name\":\"x\",\"sum\":{\"isMonotonic\":false,\"dataPoints\":[{\"asDouble\":2.5}]}}"
		"]}]}]}";
	struct jbuf out;

	jbuf_init(&out);
	if (ASSERT_OK(prom_from_otlp_metrics(body, sizeof(body) - 1, &out)))
		ASSERT_STREQ(jbuf_cstr(&out), "# TYPE x gauge\nx{otel_scope_name=\"s\"} 3.5\n");
	jbuf_free(&out);
}

TEST(prom_rejects_what_is_not_otlp)
{
	static const char *const bad[] = {
		"",
		"not json",
		"[1,2]",
		"{\"resourceMetrics\":3}",
		"{\"resourceMetrics\":[{",
		"\"text\"",
	};
	struct jbuf out;

	jbuf_init(&out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		jbuf_reset(&out);
		if (!ASSERT_EQ(prom_from_otlp_metrics(bad[i], strlen(bad[i]), &out), -EINVAL) ||
		    !ASSERT_EQ(out.len, 0))
			break;
	}
	jbuf_reset(&out);
	if (ASSERT_OK(prom_from_otlp_metrics("{\"resourceMetrics\":[]}", 22, &out)))
		ASSERT_EQ(out.len, 0);
	jbuf_free(&out);
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
