// SPDX-License-Identifier: Apache-2.0
/*
 * Export thread against a loopback HTTP stub: gzip and headers, partial
 * success, refusals, Retry-After and backoff timing, outages (connection
 * refused, queue overflow, max elapsed time), stop() flushing, stdout mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "config.h"
#include "export.h"
#include "http_stub.h"
#include "log.h"
#include "test.h"

/* The exporter's options built by hand, with the strings they point at. */
struct et_cfg {
	struct exporter_opts o;
	char *url[SIGNAL__COUNT];
	struct kv_list headers[SIGNAL__COUNT];
};

static struct et_cfg *et_config(uint16_t port)
{
	struct et_cfg *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (port) {
		if (asprintf(&c->url[SIGNAL_TRACES], "http://127.0.0.1:%u/v1/traces",
			     (unsigned int)port) < 0 ||
		    asprintf(&c->url[SIGNAL_METRICS], "http://127.0.0.1:%u/v1/metrics",
			     (unsigned int)port) < 0) {
			free(c);
			return NULL;
		}
	}
	c->o.gzip = true;
	c->o.timeout_ms = 2000;
	c->o.retry_initial_ms = 50;
	c->o.retry_max_ms = 400;
	c->o.retry_max_elapsed_ms = 10000;
	c->o.queue_size = 16;
	return c;
}

static struct exporter *et_start(struct et_cfg *c)
{
	for (int s = 0; s < SIGNAL__COUNT; s++) {
		c->o.endpoints[s] = c->url[s];
		c->o.headers[s] = &c->headers[s];
	}
	return exporter__start(&c->o);
}

static void et_config_free(struct et_cfg *c)
{
	if (!c)
		return;
	for (int s = 0; s < SIGNAL__COUNT; s++) {
		free(c->url[s]);
		free(c->headers[s].items);
	}
	free(c);
}

static void et_submit(struct exporter *e, enum otlp_signal sig, const char *body, uint32_t n)
{
	char *copy = strdup(body);

	exporter__submit(e, sig, copy, strlen(copy), n);
}

static void et_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t et_stat(struct exporter *e, size_t off)
{
	struct exporter_stats st;

	exporter__stats(e, &st);
	return *(const uint64_t *)(const void *)((const char *)&st + off);
}

/* Waits until the stats field at `off` reaches want. */
static bool et_wait_stat(struct exporter *e, size_t off, uint64_t want, int timeout_ms)
{
	uint64_t until = http_stub_now_ms() + (uint64_t)timeout_ms;

	while (et_stat(e, off) < want) {
		if (http_stub_now_ms() >= until)
			return false;
		et_sleep_ms(5);
	}
	return true;
}

#define ET_OFF(field) offsetof(struct exporter_stats, field)

static bool et_gunzip(const char *in, size_t len, char *out, size_t size, size_t *out_len)
{
	z_stream zs = { 0 };
	int rc;

	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return false;
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = (Bytef *)out;
	zs.avail_out = (uInt)size;
	rc = inflate(&zs, Z_FINISH);
	*out_len = size - zs.avail_out;
	inflateEnd(&zs);
	return rc == Z_STREAM_END;
}

/* stderr to a temporary file while a test runs, to check what was logged. */
struct et_capture {
	FILE *f;
	int saved;
};

static void et_capture_start(struct et_capture *c)
{
	fflush(stderr);
	c->f = tmpfile();
	c->saved = dup(STDERR_FILENO);
	if (c->f)
		dup2(fileno(c->f), STDERR_FILENO);
}

/* Restores stderr, echoes what was captured to it, and returns it (to free). */
static char *et_capture_end(struct et_capture *c)
{
	char *text = NULL;
	long n;

	fflush(stderr);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	if (!c->f)
		return strdup("");
	n = ftell(c->f);
	if (n >= 0 && (text = calloc(1, (size_t)n + 1))) {
		rewind(c->f);
		if (fread(text, 1, (size_t)n, c->f) != (size_t)n)
			text[0] = '\0';
		fputs(text, stderr);
	}
	fclose(c->f);
	return text ? text : strdup("");
}

static size_t et_count(const char *haystack, const char *needle)
{
	size_t n = 0;

	for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

TEST(export_gzip_body_headers_and_keepalive)
{
	struct http_stub *s = http_stub__start(0);
	char k1[] = "Authorization", v1[] = "Bearer s3cr3t-value";
	char k2[] = "X-Scope-OrgID", v2[] = "tenant-1";
	char v3[] = "tenant-metrics";
	struct kv_pair hdrs[] = { { k1, v1 }, { k2, v2 } };
	struct kv_pair metrics_hdrs[] = { { k2, v3 } };
	const char *traces = "{\"resourceSpans\":[{\"scopeSpans\":[]}]}";
	const char *metrics = "{\"resourceMetrics\":[]}";
	const struct http_stub_request *r;
	enum log_level saved_level = log_current_level;
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	struct et_capture cap;
	char buf[4096], hv[256];
	char *logged;
	size_t n;

	if (!ASSERT_NOT_NULL(s))
		return;
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	/* Each signal sends its own headers (OTEL_EXPORTER_OTLP_{TRACES,METRICS}_HEADERS). */
	cfg->headers[SIGNAL_TRACES].items = malloc(sizeof(hdrs));
	memcpy(cfg->headers[SIGNAL_TRACES].items, hdrs, sizeof(hdrs));
	cfg->headers[SIGNAL_TRACES].n = 2;
	cfg->headers[SIGNAL_METRICS].items = malloc(sizeof(metrics_hdrs));
	memcpy(cfg->headers[SIGNAL_METRICS].items, metrics_hdrs, sizeof(metrics_hdrs));
	cfg->headers[SIGNAL_METRICS].n = 1;

	/* Header values are secrets: not even debug logging may show them. */
	log_set_level(LOG_DEBUG);
	et_capture_start(&cap);
	e = et_start(cfg);
	if (e) {
		et_submit(e, SIGNAL_TRACES, traces, 1);
		et_submit(e, SIGNAL_METRICS, metrics, 2);
		http_stub__wait_requests(s, 2, 5000);
		exporter__stop(e, http_stub_now_ms() + 2000);
	}
	logged = et_capture_end(&cap);
	log_set_level(saved_level);
	ASSERT_EQ(et_count(logged, "s3cr3t"), 0);
	free(logged);
	if (!ASSERT_NOT_NULL(e) || !ASSERT_EQ(http_stub__n_requests(s), 2))
		goto out;

	r = http_stub__request(s, 0);
	ASSERT_STREQ(r->method, "POST");
	ASSERT_STREQ(r->path, "/v1/traces");
	if (ASSERT_TRUE(http_stub_request_header(r, "Content-Encoding", hv, sizeof(hv))))
		ASSERT_STREQ(hv, "gzip");
	if (ASSERT_TRUE(http_stub_request_header(r, "Content-Type", hv, sizeof(hv))))
		ASSERT_STREQ(hv, "application/json");
	if (ASSERT_TRUE(http_stub_request_header(r, "Authorization", hv, sizeof(hv))))
		ASSERT_STREQ(hv, "Bearer s3cr3t-value");
	if (ASSERT_TRUE(http_stub_request_header(r, "X-Scope-OrgID", hv, sizeof(hv))))
		ASSERT_STREQ(hv, "tenant-1");
	ASSERT_FALSE(http_stub_request_header(r, "Expect", hv, sizeof(hv)));
	if (ASSERT_TRUE(et_gunzip(r->body, r->body_len, buf, sizeof(buf) - 1, &n))) {
		buf[n] = '\0';
		ASSERT_STREQ(buf, traces);
	}

	r = http_stub__request(s, 1);
	ASSERT_STREQ(r->path, "/v1/metrics");
	if (ASSERT_TRUE(http_stub_request_header(r, "X-Scope-OrgID", hv, sizeof(hv))))
		ASSERT_STREQ(hv, "tenant-metrics");
	ASSERT_FALSE(http_stub_request_header(r, "Authorization", hv, sizeof(hv)));
	if (ASSERT_TRUE(et_gunzip(r->body, r->body_len, buf, sizeof(buf) - 1, &n))) {
		buf[n] = '\0';
		ASSERT_STREQ(buf, metrics);
	}
	/* Both requests went over one kept-alive connection. */
	ASSERT_EQ(http_stub__n_connections(s), 1);
out:
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_uncompressed_and_stats)
{
	struct http_stub *s = http_stub__start(0);
	const char *body = "{\"resourceSpans\":[]}";
	const struct http_stub_request *r;
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	struct exporter_stats st;
	char hv[64];

	if (!ASSERT_NOT_NULL(s))
		return;
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	cfg->o.gzip = false;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	et_submit(e, SIGNAL_TRACES, body, 4);
	ASSERT_TRUE(et_wait_stat(e, ET_OFF(sent_batches[SIGNAL_TRACES]), 1, 5000));
	exporter__stats(e, &st);
	ASSERT_U64_EQ(st.sent_items[SIGNAL_TRACES], 4);
	ASSERT_U64_EQ(st.bytes_sent[SIGNAL_TRACES], strlen(body));
	ASSERT_U64_EQ(st.bytes_sent[SIGNAL_METRICS], 0);
	ASSERT_U64_EQ(st.failed_requests, 0);
	ASSERT_U64_EQ(st.queue_depth, 0);
	r = http_stub__request(s, 0);
	if (ASSERT_NOT_NULL(r)) {
		ASSERT_STREQ(r->body, body);
		ASSERT_FALSE(http_stub_request_header(r, "Content-Encoding", hv, sizeof(hv)));
	}
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_partial_success_counted_not_retried)
{
	struct http_stub *s = http_stub__start(0);
	const struct http_stub_response script[] = {
		{ 200, NULL,
		  "{\"partialSuccess\":{\"rejectedSpans\":\"3\",\"errorMessage\":\"span too big\"}}",
		  0, false },
		{ 200, NULL,
		  "{\"partialSuccess\":{\"rejectedSpans\":2,\"errorMessage\":\"span too big\"}}", 0,
		  false },
	};
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	struct exporter_stats st;
	struct et_capture cap;
	char *logged;

	if (!ASSERT_NOT_NULL(s))
		return;
	http_stub__script(s, script, ARRAY_SIZE(script));
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	et_capture_start(&cap);
	e = et_start(cfg);
	if (e) {
		et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 10);
		et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 10);
		et_wait_stat(e, ET_OFF(sent_batches[SIGNAL_TRACES]), 2, 5000);
		et_sleep_ms(200); /* a retry, if there were one, would come by now */
		exporter__stats(e, &st);
	}
	logged = et_capture_end(&cap);
	if (!ASSERT_NOT_NULL(e)) {
		free(logged);
		goto out;
	}
	ASSERT_EQ(http_stub__n_requests(s), 2);
	ASSERT_U64_EQ(st.sent_batches[SIGNAL_TRACES], 2);
	ASSERT_U64_EQ(st.rejected_items[SIGNAL_TRACES], 5);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_TRACES], 0);
	ASSERT_U64_EQ(st.retries, 0);
	/* Logged once per distinct message, with the collector's words. */
	ASSERT_EQ(et_count(logged, "span too big"), 1);
	ASSERT_EQ(et_count(logged, "rejected 3 of 10 spans"), 1);
	free(logged);
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_400_dropped_at_once_not_retried)
{
	struct http_stub *s = http_stub__start(0);
	const struct http_stub_response script[] = {
		{ 400, NULL, "{\"code\":3,\"message\":\"unknown field \\\"foo\\\"\"}", 0, false },
		{ 404, NULL, "404 page not found", 0, false },
	};
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	struct exporter_stats st;
	struct et_capture cap;
	char *logged;

	if (!ASSERT_NOT_NULL(s))
		return;
	http_stub__script(s, script, ARRAY_SIZE(script));
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	et_capture_start(&cap);
	e = et_start(cfg);
	if (e) {
		et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 5);
		et_submit(e, SIGNAL_METRICS, "{\"resourceMetrics\":[]}", 7);
		et_wait_stat(e, ET_OFF(dropped_items[SIGNAL_METRICS]), 7, 5000);
		et_sleep_ms(200);
		exporter__stats(e, &st);
	}
	logged = et_capture_end(&cap);
	if (!ASSERT_NOT_NULL(e)) {
		free(logged);
		goto out;
	}
	ASSERT_EQ(http_stub__n_requests(s), 2);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_TRACES], 5);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_METRICS], 7);
	ASSERT_U64_EQ(st.sent_batches[SIGNAL_TRACES] + st.sent_batches[SIGNAL_METRICS], 0);
	ASSERT_U64_EQ(st.failed_requests, 2);
	ASSERT_U64_EQ(st.retries, 0);
	ASSERT_EQ(et_count(logged, "HTTP 400: unknown field \"foo\""), 1);
	ASSERT_EQ(et_count(logged, "HTTP 404: 404 page not found"), 1);
	free(logged);
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_503_retry_after_is_honoured)
{
	struct http_stub *s = http_stub__start(0);
	const struct http_stub_response script[] = {
		{ 503, "Retry-After: 1\r\n", "{\"code\":14,\"message\":\"busy\"}", 0, false },
	};
	const struct http_stub_request *r0, *r1;
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	struct exporter_stats st;

	if (!ASSERT_NOT_NULL(s))
		return;
	http_stub__script(s, script, ARRAY_SIZE(script));
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 3);
	if (!ASSERT_TRUE(http_stub__wait_requests(s, 2, 5000)))
		goto out;
	r0 = http_stub__request(s, 0);
	r1 = http_stub__request(s, 1);
	/* Retry-After (1 s) wins over the 50 ms backoff. */
	ASSERT_GE(r1->t_ms - r0->t_ms, 1000);
	ASSERT_LT(r1->t_ms - r0->t_ms, 6000); /* loose: a loaded machine stalls */
	ASSERT_EQ(r1->body_len, r0->body_len);
	ASSERT_TRUE(memcmp(r0->body, r1->body, r0->body_len) == 0);
	ASSERT_TRUE(et_wait_stat(e, ET_OFF(sent_batches[SIGNAL_TRACES]), 1, 2000));
	exporter__stats(e, &st);
	ASSERT_U64_EQ(st.retries, 1);
	ASSERT_U64_EQ(st.failed_requests, 1);
	ASSERT_U64_EQ(st.sent_items[SIGNAL_TRACES], 3);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_TRACES], 0);
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_retry_after_as_http_date)
{
	struct http_stub *s = http_stub__start(0);
	struct http_stub_response script[1];
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	char hdr[96];
	time_t when = time(NULL) + 2;
	struct tm tm;
	uint64_t gap;

	if (!ASSERT_NOT_NULL(s))
		return;
	gmtime_r(&when, &tm);
	strftime(hdr, sizeof(hdr), "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	script[0] = (struct http_stub_response){ .status = 429, .headers = hdr };
	http_stub__script(s, script, 1);
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 1);
	if (!ASSERT_TRUE(http_stub__wait_requests(s, 2, 5000)))
		goto out;
	gap = http_stub__request(s, 1)->t_ms - http_stub__request(s, 0)->t_ms;
	/* The date is whole seconds: one to two seconds away when it arrives. */
	ASSERT_GE(gap, 900);
	ASSERT_LT(gap, 6000);
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_timeout_is_retried)
{
	struct http_stub *s = http_stub__start(0);
	const struct http_stub_response script[] = {
		{ 200, NULL, "{}", 800, false }, /* answers after the exporter gave up */
	};
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	struct exporter_stats st;
	uint64_t gap;

	if (!ASSERT_NOT_NULL(s))
		return;
	http_stub__script(s, script, ARRAY_SIZE(script));
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	cfg->o.timeout_ms = 200;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 2);
	if (!ASSERT_TRUE(et_wait_stat(e, ET_OFF(sent_batches[SIGNAL_TRACES]), 1, 5000)))
		goto out;
	exporter__stats(e, &st);
	ASSERT_U64_EQ(st.failed_requests, 1);
	ASSERT_U64_EQ(st.retries, 1);
	ASSERT_U64_EQ(st.sent_items[SIGNAL_TRACES], 2);
	if (ASSERT_EQ(http_stub__n_requests(s), 2)) {
		gap = http_stub__request(s, 1)->t_ms - http_stub__request(s, 0)->t_ms;
		/* The time-out (counted from a little before the stub saw the request), then the
		 * backoff of 50 ms -20%. */
		ASSERT_GE(gap, 200);
	}
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_backoff_grows_without_retry_after)
{
	struct http_stub *s = http_stub__start(0);
	const struct http_stub_response script[] = {
		{ 503, NULL, NULL, 0, false },
		{ 429, NULL, NULL, 0, false },
		{ 502, NULL, NULL, 0, false },
		{ 504, NULL, NULL, 0, false },
	};
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	uint64_t gap[4];

	if (!ASSERT_NOT_NULL(s))
		return;
	http_stub__script(s, script, ARRAY_SIZE(script));
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	cfg->o.retry_max_ms = 5000;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 1);
	if (!ASSERT_TRUE(http_stub__wait_requests(s, 5, 5000)))
		goto out;
	for (size_t i = 0; i < 4; i++)
		gap[i] = http_stub__request(s, i + 1)->t_ms - http_stub__request(s, i)->t_ms;
	/*
	 * 50, 100, 200, 400 ms, each +-20%. A loaded machine can only make a gap
	 * longer, so the lower bounds are exact and the one upper bound is loose.
	 */
	ASSERT_LT(gap[0], 500);
	for (size_t i = 0; i < 4; i++)
		ASSERT_GE(gap[i], (50u << i) * 8 / 10 - 1);
	ASSERT_TRUE(et_wait_stat(e, ET_OFF(sent_batches[SIGNAL_TRACES]), 1, 2000));
	ASSERT_U64_EQ(et_stat(e, ET_OFF(retries)), 4);
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_backoff_capped_at_max_interval)
{
	struct http_stub *s = http_stub__start(0);
	const struct http_stub_response script[] = {
		{ 503, NULL, NULL, 0, false },
		{ 503, NULL, NULL, 0, false },
		{ 503, NULL, NULL, 0, false },
		{ 503, NULL, NULL, 0, false },
	};
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;

	if (!ASSERT_NOT_NULL(s))
		return;
	http_stub__script(s, script, ARRAY_SIZE(script));
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	cfg->o.retry_max_ms = 120;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 1);
	if (!ASSERT_TRUE(http_stub__wait_requests(s, 5, 5000)))
		goto out;
	/* Uncapped, the fourth gap would be 400 ms +-20%, so at least 320. */
	ASSERT_LT(http_stub__request(s, 4)->t_ms - http_stub__request(s, 3)->t_ms, 320);
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_connection_refused_then_collector_appears)
{
	uint16_t port = http_stub_free_port();
	struct http_stub *s = NULL;
	struct et_cfg *cfg = et_config(port);
	struct exporter *e = NULL;
	struct exporter_stats st;
	struct et_capture cap;
	char *logged;

	if (!ASSERT_NOT_NULL(cfg) || !ASSERT_NE(port, 0))
		goto out;
	cfg->o.retry_max_ms = 100;
	et_capture_start(&cap);
	e = et_start(cfg);
	if (e) {
		et_submit(e, SIGNAL_METRICS, "{\"resourceMetrics\":[]}", 9);
		et_wait_stat(e, ET_OFF(failed_requests), 2, 3000);
		s = http_stub__start(port);
		if (s)
			http_stub__wait_requests(s, 1, 3000);
		et_wait_stat(e, ET_OFF(sent_batches[SIGNAL_METRICS]), 1, 2000);
		exporter__stats(e, &st);
	}
	logged = et_capture_end(&cap);
	if (!ASSERT_NOT_NULL(e) || !ASSERT_NOT_NULL(s)) {
		free(logged);
		goto out;
	}
	ASSERT_EQ(http_stub__n_requests(s), 1);
	ASSERT_STREQ(http_stub__request(s, 0)->path, "/v1/metrics");
	ASSERT_U64_EQ(st.sent_items[SIGNAL_METRICS], 9);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_METRICS], 0);
	ASSERT_GE(st.failed_requests, 2);
	ASSERT_EQ(et_count(logged, "Connection refused"), 1); /* rate-limited */
	ASSERT_EQ(et_count(logged, "retrying in"), 1);
	ASSERT_EQ(et_count(logged, "reachable again after"), 1);
	free(logged);
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_max_elapsed_time_drops_and_counts)
{
	uint16_t port = http_stub_free_port();
	struct et_cfg *cfg = et_config(port);
	struct exporter *e = NULL;
	struct exporter_stats st;
	uint64_t t0, took;

	if (!ASSERT_NOT_NULL(cfg))
		return;
	cfg->o.retry_max_ms = 100;
	cfg->o.retry_max_elapsed_ms = 400;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	t0 = http_stub_now_ms();
	et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 7);
	if (!ASSERT_TRUE(et_wait_stat(e, ET_OFF(dropped_items[SIGNAL_TRACES]), 7, 3000)))
		goto out;
	took = http_stub_now_ms() - t0;
	/* Tried at 0, ~50, ~150, ~250, ~350 ms; the next try would pass 400 ms. */
	ASSERT_GE(took, 250);
	ASSERT_LE(took, 5000);
	exporter__stats(e, &st);
	ASSERT_U64_EQ(st.sent_batches[SIGNAL_TRACES], 0);
	ASSERT_GE(st.failed_requests, 3);
	ASSERT_U64_EQ(st.queue_depth, 0);
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
}

TEST(export_queue_full_during_outage_keeps_newest_in_order)
{
	uint16_t port = http_stub_free_port();
	struct et_cfg *cfg = et_config(port);
	struct http_stub *s = NULL;
	struct exporter *e = NULL;
	struct exporter_stats st;
	char body[32];

	if (!ASSERT_NOT_NULL(cfg))
		return;
	cfg->o.gzip = false;
	cfg->o.queue_size = 3;
	cfg->o.retry_max_ms = 100;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	et_submit(e, SIGNAL_TRACES, "b0", 1);
	et_wait_stat(e, ET_OFF(failed_requests), 1, 2000);
	for (int i = 1; i < 8; i++) {
		snprintf(body, sizeof(body), "b%d", i);
		et_submit(e, SIGNAL_TRACES, body, 1);
	}
	et_sleep_ms(150);
	s = http_stub__start(port);
	if (!ASSERT_NOT_NULL(s))
		goto out;
	if (!ASSERT_TRUE(et_wait_stat(e, ET_OFF(sent_batches[SIGNAL_TRACES]), 3, 10000)))
		goto out;
	et_sleep_ms(100);
	exporter__stats(e, &st);
	ASSERT_U64_EQ(st.sent_batches[SIGNAL_TRACES], 3);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_TRACES], 5);
	if (!ASSERT_EQ(http_stub__n_requests(s), 3))
		goto out;
	/* The newest three, in the order they were submitted. */
	ASSERT_STREQ(http_stub__request(s, 0)->body, "b5");
	ASSERT_STREQ(http_stub__request(s, 1)->body, "b6");
	ASSERT_STREQ(http_stub__request(s, 2)->body, "b7");
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_stop_flushes_within_deadline)
{
	struct http_stub *s = http_stub__start(0);
	struct http_stub_response script[10];
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	uint64_t t0, took;
	char body[32];

	if (!ASSERT_NOT_NULL(s))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(script); i++)
		script[i] =
			(struct http_stub_response){ .status = 200, .body = "{}", .delay_ms = 30 };
	http_stub__script(s, script, ARRAY_SIZE(script));
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	cfg->o.gzip = false;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	for (int i = 0; i < 10; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		et_submit(e, SIGNAL_METRICS, body, 1);
	}
	t0 = http_stub_now_ms();
	exporter__stop(e, t0 + 10000);
	e = NULL;
	took = http_stub_now_ms() - t0;
	ASSERT_LT(took, 10000);
	if (!ASSERT_EQ(http_stub__n_requests(s), 10))
		goto out;
	for (size_t i = 0; i < 10; i++) {
		snprintf(body, sizeof(body), "m%zu", i);
		ASSERT_STREQ(http_stub__request(s, i)->body, body);
	}
out:
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_stop_with_collector_down_drops_and_counts)
{
	uint16_t port = http_stub_free_port();
	struct et_cfg *cfg = et_config(port);
	struct exporter *e = NULL;
	struct et_capture cap;
	uint64_t t0, took;
	char *logged;

	if (!ASSERT_NOT_NULL(cfg))
		return;
	cfg->o.retry_initial_ms = 6000; /* the first retry lands past the deadline */
	cfg->o.retry_max_ms = 6000;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 4);
	et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 5);
	et_submit(e, SIGNAL_METRICS, "{\"resourceMetrics\":[]}", 6);
	et_wait_stat(e, ET_OFF(failed_requests), 1, 2000);
	et_capture_start(&cap);
	t0 = http_stub_now_ms();
	exporter__stop(e, t0 + 500);
	took = http_stub_now_ms() - t0;
	logged = et_capture_end(&cap);
	ASSERT_LT(took, 3000); /* not the 4.8 s or more of the backoff */
	ASSERT_EQ(et_count(logged, "dropped 9 spans and 6 metric points"), 1);
	free(logged);
out:
	et_config_free(cfg);
}

TEST(export_stop_cuts_a_slow_request_at_the_deadline)
{
	struct http_stub *s = http_stub__start(0);
	const struct http_stub_response script[] = {
		{ 200, NULL, "{}", 8000, false },
	};
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	uint64_t t0, took;

	if (!ASSERT_NOT_NULL(s))
		return;
	http_stub__script(s, script, ARRAY_SIZE(script));
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	cfg->o.timeout_ms = 10000;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	et_submit(e, SIGNAL_TRACES, "{\"resourceSpans\":[]}", 1);
	http_stub__wait_requests(s, 1, 2000);
	t0 = http_stub_now_ms();
	exporter__stop(e, t0 + 300);
	took = http_stub_now_ms() - t0;
	/* libcurl checks its progress callback at least once a second; the answer takes 8 s. */
	ASSERT_LT(took, 4000);
out:
	et_config_free(cfg);
	http_stub__stop(s);
}

TEST(export_stdout_prints_one_line_per_body)
{
	const char *bodies[] = { "{\"resourceSpans\":[1]}", "{\"resourceMetrics\":[2]}",
				 "{\"resourceSpans\":[3]}" };
	struct et_cfg *cfg = et_config(0); /* no endpoint: stdout only */
	struct exporter *e;
	char line[256], *text = NULL;
	FILE *tmp = tmpfile();
	int saved;
	size_t n = 0;

	if (!ASSERT_NOT_NULL(cfg) || !ASSERT_NOT_NULL(tmp))
		goto out;
	cfg->o.to_stdout = true;
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	dup2(fileno(tmp), STDOUT_FILENO);
	e = et_start(cfg);
	if (e) {
		for (size_t i = 0; i < ARRAY_SIZE(bodies); i++)
			et_submit(e, i == 1 ? SIGNAL_METRICS : SIGNAL_TRACES, bodies[i], 1);
		exporter__stop(e, http_stub_now_ms() + 1000);
	}
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	rewind(tmp);
	while (fgets(line, sizeof(line), tmp)) {
		if (!ASSERT_LT(n, ARRAY_SIZE(bodies)))
			break;
		line[strcspn(line, "\n")] = '\0';
		ASSERT_STREQ(line, bodies[n]);
		n++;
	}
	ASSERT_EQ(n, ARRAY_SIZE(bodies));
out:
	free(text);
	if (tmp)
		fclose(tmp);
	et_config_free(cfg);
}

TEST(export_insecure_tls_warns_once_at_start)
{
	struct et_cfg *cfg = et_config(http_stub_free_port());
	struct exporter *e = NULL;
	struct et_capture cap;
	char *logged;

	if (!ASSERT_NOT_NULL(cfg))
		return;
	cfg->o.insecure_skip_verify = true;
	et_capture_start(&cap);
	e = et_start(cfg);
	exporter__stop(e, http_stub_now_ms());
	logged = et_capture_end(&cap);
	ASSERT_NOT_NULL(e);
	ASSERT_EQ(et_count(logged, "insecure_skip_verify"), 1);
	free(logged);
	et_config_free(cfg);
}

TEST(export_credentials_in_url_are_not_logged)
{
	uint16_t port = http_stub_free_port();
	struct et_cfg *cfg = et_config(0);
	struct exporter *e = NULL;
	struct et_capture cap;
	char *logged;

	if (!ASSERT_NOT_NULL(cfg))
		return;
	if (asprintf(&cfg->url[SIGNAL_TRACES], "http://user:pa55w0rd@127.0.0.1:%u/v1/traces",
		     (unsigned int)port) < 0)
		goto out;
	cfg->o.retry_max_elapsed_ms = 0;
	et_capture_start(&cap);
	e = et_start(cfg);
	if (e) {
		et_submit(e, SIGNAL_TRACES, "{}", 1);
		et_wait_stat(e, ET_OFF(dropped_items[SIGNAL_TRACES]), 1, 2000);
		exporter__stop(e, http_stub_now_ms() + 100);
	}
	logged = et_capture_end(&cap);
	ASSERT_NOT_NULL(e);
	ASSERT_EQ(et_count(logged, "pa55w0rd"), 0);
	ASSERT_GE(et_count(logged, "http://127.0.0.1:"), 1);
	free(logged);
out:
	et_config_free(cfg);
}

/* A span of about 1 KiB as the OTLP encoder writes it. */
static int et_span(char *out, size_t size, unsigned int i)
{
	return snprintf(
		out, size,
		"{\"traceId\":\"%08x5b8efff798038103d269b633813fc6%02x\",\"spanId\":\"eee19b7ec3c1b1%02x\","
		"\"parentSpanId\":\"a2a7c8f51b4e43%02x\",\"name\":\"tcp exchange\",\"kind\":%u,"
		"\"startTimeUnixNano\":\"17000000%010u\",\"endTimeUnixNano\":\"17000000%010u\","
		"\"attributes\":[{\"key\":\"network.transport\",\"value\":{\"stringValue\":\"tcp\"}},"
		"{\"key\":\"network.type\",\"value\":{\"stringValue\":\"ipv4\"}},"
		"{\"key\":\"tcp.role\",\"value\":{\"stringValue\":\"client\"}},"
		"{\"key\":\"server.address\",\"value\":{\"stringValue\":\"10.0.%u.%u\"}},"
		"{\"key\":\"server.port\",\"value\":{\"intValue\":\"%u\"}},"
		"{\"key\":\"client.address\",\"value\":{\"stringValue\":\"10.1.%u.%u\"}},"
		"{\"key\":\"client.port\",\"value\":{\"intValue\":\"%u\"}},"
		"{\"key\":\"peer.service\",\"value\":{\"stringValue\":\"checkout-%u\"}},"
		"{\"key\":\"tcp.request.seq\",\"value\":{\"intValue\":\"%u\"}},"
		"{\"key\":\"tcp.bytes.sent\",\"value\":{\"intValue\":\"%u\"}},"
		"{\"key\":\"tcp.bytes.received\",\"value\":{\"intValue\":\"%u\"}},"
		"{\"key\":\"tcp.srtt\",\"value\":{\"doubleValue\":0.000%u}}],"
		"\"status\":{}}",
		i * 2654435761u, i & 0xff, (i * 7) & 0xff, (i * 13) & 0xff, 2 + (i & 1), i * 1000u,
		i * 1000u + 731u, (i >> 8) & 0xff, i & 0xff, 8080 + (i % 4), (i >> 4) & 0xff,
		(i * 3) & 0xff, 32768 + (i * 7919) % 28000, i % 7, i * 2246822519u, 100 + i % 900,
		200 + (i * 31) % 4000, 100 + i % 900);
}

/* End to end through gzip, libcurl and the loopback stub; the target is <= 2 us a span. */
TEST(export_throughput_per_span)
{
	enum { SPANS = 200, BATCHES = 100 };
	struct http_stub *s = http_stub__start(0);
	struct et_cfg *cfg = NULL;
	struct exporter *e = NULL;
	char span[2048];
	uint64_t t0, took_us;
	struct timespec a, b;
	size_t cap = SPANS * 1400 + 64, total = 0;
	char *bodies[BATCHES] = { 0 };
	size_t lens[BATCHES];

	if (!ASSERT_NOT_NULL(s))
		return;
	cfg = et_config(http_stub__port(s));
	if (!ASSERT_NOT_NULL(cfg))
		goto out;
	cfg->o.queue_size = BATCHES;
	e = et_start(cfg);
	if (!ASSERT_NOT_NULL(e))
		goto out;
	/* Bodies are built first: the encoder's time is not the exporter's. */
	for (unsigned int bi = 0; bi < BATCHES; bi++) {
		char *body = malloc(cap);
		size_t len;

		if (!ASSERT_NOT_NULL(body))
			goto out;
		len = (size_t)sprintf(body, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[");
		for (unsigned int si = 0; si < SPANS; si++) {
			int n = et_span(span, sizeof(span), bi * SPANS + si);

			if (si)
				body[len++] = ',';
			memcpy(body + len, span, (size_t)n);
			len += (size_t)n;
		}
		len += (size_t)sprintf(body + len, "]}]}]}");
		total += len;
		bodies[bi] = body;
		lens[bi] = len;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	t0 = http_stub_now_ms();
	for (unsigned int bi = 0; bi < BATCHES; bi++) {
		exporter__submit(e, SIGNAL_TRACES, bodies[bi], lens[bi], SPANS);
		bodies[bi] = NULL;
	}
	ASSERT_TRUE(et_wait_stat(e, ET_OFF(sent_batches[SIGNAL_TRACES]), BATCHES, 30000));
	clock_gettime(CLOCK_MONOTONIC, &b);
	took_us = (uint64_t)(((int64_t)b.tv_sec - (int64_t)a.tv_sec) * 1000000 +
			     ((int64_t)b.tv_nsec - (int64_t)a.tv_nsec) / 1000);
	printf("    %d spans of %zu bytes: %.2f us a span end to end, gzip to %.1f%% (%" PRIu64
	       " ms)\n",
	       BATCHES * SPANS, total / (BATCHES * SPANS), (double)took_us / (BATCHES * SPANS),
	       100.0 * (double)et_stat(e, ET_OFF(bytes_sent)) / (double)total,
	       http_stub_now_ms() - t0);
	/* Loose bound (sanitizer builds run here too); the printed figure is the measure. */
	ASSERT_LT(took_us / (BATCHES * SPANS), 100); /* 40 ms stalls a request would show */
out:
	for (unsigned int bi = 0; bi < BATCHES; bi++)
		free(bodies[bi]);
	exporter__stop(e, http_stub_now_ms() + 1000);
	et_config_free(cfg);
	http_stub__stop(s);
}
