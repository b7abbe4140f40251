// SPDX-License-Identifier: Apache-2.0
/*
 * The export thread. One libcurl multi handle drives up to
 * exporter.otlp.parallel_requests easy handles ("slots"), each a request in
 * flight; they share the multi's pool of kept-alive connections, so a slot
 * that starts after another finished reuses its connection.
 *
 * Order. Batches of both signals wait in one bounded queue, in the order
 * they were made; each signal is its own line in it: a signal's requests
 * start in the order its batches were made.
 *  - Metrics: at most one metrics request is in flight. Their points are
 *    cumulative, so they must reach the collector in the order they were
 *    made, retries included. When a request can start and a metrics batch
 *    waits, it goes first: one small body per interval, the host's health,
 *    kept fresh while span batches wait for a slow collector.
 *  - Spans: up to parallel_requests requests in flight (the metrics one
 *    included), over as many connections, as OTLP/HTTP allows ("Concurrent
 *    Requests"). Span batches in flight together may be answered in any
 *    order; spans carry their own times and ids, nothing downstream depends
 *    on the order of requests.
 *  - Retries. A retryable answer puts the batch back into the queue in its
 *    place by sequence number (queue__put_back): before every batch of its
 *    signal not yet started, so it is the next of them to go; while it waits
 *    it is inside the queue bound, and if the queue fills meanwhile it is the
 *    oldest and the one dropped. Until the planned retry time no request
 *    starts, of either signal: a Retry-After from the collector holds
 *    everything. Requests already in flight go on; those are the only ones
 *    that can overtake a retried batch (they started after it).
 *
 * How many in flight, as TCP does for a congestion window (Vegas's test of
 * delay against the least delay seen, and Reno's halving on loss). The
 * window of requests that may be in flight starts at one and opens by one
 * after each accepted request answered within a quarter of
 * exporter.otlp.timeout and at no more than 1.5 times the least time per KiB
 * of body seen since the last failure; it closes by one after an answer slower than half the
 * timeout or at more than 3 times that least cost (requests in flight slow
 * each other down: the collector serves them one after another), and to one
 * after a retryable failure. When the collector says it is overloaded (a
 * time-out, 429 or 503), the ceiling (parallel_requests at first) is halved
 * as well, once per episode (requests that had started before the cut do not
 * cut again), and it rises by one again after 16 x ceiling quick answers in a
 * row. A collector that serves requests side by side (the Collector does)
 * gets them side by side; one that serves them one after another gets about
 * two at a time (one served, one ready); during an outage tries go one by
 * one, the oldest first.
 *
 * Retry state travels with the batch: the time of its first try, and its body
 * as sent. A body is gzipped once, by the export thread as soon as it has a
 * moment (before its request can start, if need be), and the uncompressed one
 * freed then. A flush of spans submits several bodies of megabytes in a row:
 * when EXPORT_MAX_UNENCODED of them already wait uncompressed (the export
 * thread did not get a core in time), the submitting thread compresses its
 * own, so that they do not pile up (peak RSS at 100 % spans). Compressing in
 * the export thread leaves the submitter (the thread that drains the kernel's
 * ring buffer) free sooner; it never waits on the collector either way.
 *
 * Backoff: initial_interval doubled after every consecutive retryable
 * failure, with jitter of +-20% (enough to spread agents restarted together,
 * small enough that the growth stays visible), capped at max_interval. The
 * failure streak is the exporter's, not the batch's: a new batch during an
 * outage does not start the backoff over. A Retry-After header (seconds or
 * HTTP-date) replaces the backoff as is, not capped: the collector asked for
 * it. No try is planned past retry.max_elapsed_time after the batch's first
 * try (nor past the stop deadline); such a batch is dropped at once. At the
 * stop deadline, requests still in flight are ended and their batches
 * dropped and counted.
 */
#include "export.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <isa-l/igzip_lib.h>

#include "config.h"
#include "log.h"

#ifndef TCPOTEL_VERSION
#define TCPOTEL_VERSION "dev"
#endif

/*
 * gzip by ISA-L's igzip rather than zlib or libdeflate: whole-buffer
 * compression is all the exporter needs, and igzip level 1 does it about 4
 * times faster than libdeflate level 1 and 8 times faster than zlib on OTLP
 * span bodies (bench/micro.c: 0.22 against 0.95 and 1.9 us per span), for
 * output as small. Compression was most of the per-span budget.
 */
#define EXPORT_GZIP_LEVEL	1
#define EXPORT_GZIP_LEVEL_BUF	ISAL_DEF_LVL1_LARGE
#define EXPORT_MAX_RESPONSE	(64 * 1024)
#define EXPORT_SEEN_SLOTS	64
#define EXPORT_WARN_INTERVAL_MS 10000

#define EXPORT_MAX_PARALLEL	16
/* A request's own overhead, for its cost: small bodies count as this many KiB, quick
 * answers as this long (below it, the time is mostly the scheduler's and the network's,
 * and a collector that quick is not slowed down by a few requests at once). */
#define EXPORT_COST_MIN_KIB 64
#define EXPORT_COST_MIN_US  100000
/* Bodies that may wait uncompressed; past that, the submitter compresses its own. */
#define EXPORT_MAX_UNENCODED 1

enum outcome {
	OUTCOME_SENT,
	OUTCOME_RETRY,
	OUTCOME_DROP,
};

/* One request in flight: its easy handle, its batch, its answer. */
struct slot {
	CURL *curl;
	bool busy;
	uint64_t started_ms;
	struct export_batch b;
	char errbuf[CURL_ERROR_SIZE];
	char *resp;
	size_t resp_len;
};

struct exporter {
	struct queue *q;
	CURLM *multi;
	struct slot *slots;
	unsigned int n_slots;
	unsigned int n_busy;
	unsigned int window; /* requests that may be in flight now, 1..ceiling */
	unsigned int ceiling; /* what the window may open to, 1..n_slots */
	unsigned int quick_run; /* quick answers in a row, to raise the ceiling again */
	uint64_t cut_ms; /* when the ceiling was last halved */
	uint64_t base_cost; /* us per KiB of the cheapest answer lately; 0: none yet */
	bool metrics_busy; /* a metrics request is in flight */
	struct curl_slist *hdrs[SIGNAL__COUNT]; /* per signal: OTEL_..._{TRACES,METRICS}_HEADERS */
	char *url[SIGNAL__COUNT];
	char *url_log[SIGNAL__COUNT]; /* without user:password@ */
	bool gzip;
	bool to_stdout;
	uint64_t timeout_ms;
	uint64_t initial_ms, max_ms, max_elapsed_ms;

	/* igzip's work areas for EXPORT_GZIP_LEVEL: the export thread's, and the submitters'
	 * (under gz_lock). */
	uint8_t *gz_thread_buf;
	uint8_t *gz_submit_buf;
	pthread_mutex_t gz_lock;

	unsigned int streak; /* consecutive retryable failures, any batch */
	uint64_t next_try_ms; /* no request starts before this (a planned retry) */
	uint64_t rng;

	uint64_t seen[EXPORT_SEEN_SLOTS]; /* hashes of messages logged once */
	size_t n_seen;
	uint64_t last_warn_ms; /* rate limit of the outage warnings, per exporter */
	uint64_t suppressed;

	pthread_t th;
	int stopping; /* read and written atomically */
	uint64_t deadline_ms;

	pthread_mutex_t stats_lock;
	struct exporter_stats st; /* queue_depth and queue drops are added in exporter__stats */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char *signal_items(enum otlp_signal s)
{
	return s == SIGNAL_TRACES ? "spans" : "metric points";
}

static uint64_t rng_next(struct exporter *e)
{
	/* xorshift64*: jitter only, no need for more. */
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return e->rng * 2685821657736338717ULL;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

/* True the first time a (kind, status, message) is seen: for log-once messages. */
static bool first_time(struct exporter *e, const char *kind, long status, const char *msg)
{
	char num[24];
	uint64_t h = 14695981039346656037ULL;

	snprintf(num, sizeof(num), "|%ld|", status);
	h = hash_str(hash_str(hash_str(h, kind), num), msg);
	for (size_t i = 0; i < e->n_seen && i < EXPORT_SEEN_SLOTS; i++)
		if (e->seen[i] == h)
			return false;
	e->seen[e->n_seen++ % EXPORT_SEEN_SLOTS] = h;
	return true;
}

/* Outage warnings: at most one per EXPORT_WARN_INTERVAL_MS, saying how many were held back. */
static __printf(2, 3) void warn_limited(struct exporter *e, const char *fmt, ...)
{
	uint64_t now = log_now_ms();
	char line[1024];
	va_list ap;

	if (e->last_warn_ms && now - e->last_warn_ms < EXPORT_WARN_INTERVAL_MS) {
		e->suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (e->suppressed)
		log_warn("%s (%" PRIu64 " similar messages suppressed)", line, e->suppressed);
	else
		log_warn("%s", line);
	e->last_warn_ms = now;
	e->suppressed = 0;
}

/* The URL as it may be logged: any user:password@ is left out. */
static char *url_for_log(const char *url)
{
	const char *scheme = strstr(url, "://");
	const char *host, *at, *end;
	char *out;

	if (!scheme)
		return strdup(url);
	host = scheme + 3;
	end = host + strcspn(host, "/?#");
	at = memchr(host, '@', (size_t)(end - host));
	if (!at)
		return strdup(url);
	if (asprintf(&out, "%.*s%s", (int)(host - url), url, at + 1) < 0)
		return NULL;
	return out;
}

static void stats_add(struct exporter *e, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&e->stats_lock);
	*field += n;
	pthread_mutex_unlock(&e->stats_lock);
}

static void drop_batch(struct exporter *e, struct export_batch *b)
{
	stats_add(e, &e->st.dropped_items[b->signal], b->n_items);
	export_batch_free(b);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct slot *s = arg;
	size_t n = size * nmemb, keep = n;

	if (s->resp_len + keep > EXPORT_MAX_RESPONSE)
		keep = EXPORT_MAX_RESPONSE - s->resp_len;
	if (keep) {
		memcpy(s->resp + s->resp_len, data, keep);
		s->resp_len += keep;
		s->resp[s->resp_len] = '\0';
	}
	return n;
}

static bool is_stopping(struct exporter *e)
{
	return __atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE);
}

static uint64_t stop_deadline(struct exporter *e)
{
	return __atomic_load_n(&e->deadline_ms, __ATOMIC_ACQUIRE);
}

static bool stop_deadline_passed(struct exporter *e, uint64_t now)
{
	return is_stopping(e) && now >= stop_deadline(e);
}

/* Room for any gzip output of len bytes: stored blocks at worst, plus header and trailer. */
static size_t gzip_bound(size_t len)
{
	return len + len / 8 + 1024;
}

/*
 * The body as sent: igzip writes into a buffer of the worst-case size, of which
 * it touches only what it writes (a tenth or so); the buffer is then cut to
 * that and the uncompressed body freed. level_buf is the caller's work area.
 */
static int gzip_body(struct export_batch *b, uint8_t *level_buf)
{
	struct isal_zstream zs;
	size_t bound;
	char *out, *fit;

	if (b->len > UINT32_MAX / 2)
		return -E2BIG; /* igzip counts in 32 bits; bodies are far smaller */
	bound = gzip_bound(b->len);
	out = malloc(bound);
	if (!out)
		return -ENOMEM;
	isal_deflate_stateless_init(&zs);
	zs.gzip_flag = IGZIP_GZIP;
	zs.level = EXPORT_GZIP_LEVEL;
	zs.level_buf = level_buf;
	zs.level_buf_size = EXPORT_GZIP_LEVEL_BUF;
	zs.end_of_stream = 1;
	zs.flush = NO_FLUSH;
	zs.next_in = (uint8_t *)b->body;
	zs.avail_in = (uint32_t)b->len;
	zs.next_out = (uint8_t *)out;
	zs.avail_out = (uint32_t)bound;
	if (isal_deflate_stateless(&zs) != COMP_OK) {
		free(out);
		return -EIO;
	}
	fit = realloc(out, MAX(zs.total_out, 1u));
	free(b->body);
	b->body = fit ? fit : out;
	b->len = zs.total_out;
	b->encoded = true;
	return 0;
}

/* In the export thread: the body as sent, or the batch is dropped (false). */
static bool encode(struct exporter *e, struct export_batch *b)
{
	int err;

	if (b->encoded)
		return true;
	err = gzip_body(b, e->gz_thread_buf);
	if (!err)
		return true;
	log_err("export: cannot compress a body of %zu bytes: %s", b->len, strerror(-err));
	drop_batch(e, b);
	return false;
}

/* A short printable excerpt of a body that is not JSON (or has no message). */
static void body_excerpt(const char *body, size_t len, char *out, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; i < len && i < 200 && n + 1 < size; i++) {
		unsigned char c = (unsigned char)body[i];

		out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
	}
	out[n] = '\0';
}

/* The collector's message from a google.rpc.Status JSON body, else an excerpt. */
static void status_message(const struct slot *s, char *out, size_t size)
{
	struct json_object *root = s->resp_len ? json_tokener_parse(s->resp) : NULL;
	struct json_object *msg;

	if (root && json_object_object_get_ex(root, "message", &msg) &&
	    json_object_is_type(msg, json_type_string)) {
		body_excerpt(json_object_get_string(msg), (size_t)json_object_get_string_len(msg),
			     out, size);
	} else {
		body_excerpt(s->resp, s->resp_len, out, size);
	}
	json_object_put(root);
}

/*
 * 2xx: counts and reports (once per message) what partialSuccess says was
 * rejected; returns how many of the batch's items that is.
 */
static uint64_t partial_success(struct exporter *e, const struct slot *s)
{
	const struct export_batch *b = &s->b;
	struct json_object *root, *ps, *v;
	const char *field = b->signal == SIGNAL_TRACES ? "rejectedSpans" : "rejectedDataPoints";
	const char *emsg = "";
	int64_t rejected = 0;

	if (!s->resp_len)
		return 0;
	root = json_tokener_parse(s->resp);
	if (!root)
		return 0;
	if (!json_object_object_get_ex(root, "partialSuccess", &ps))
		goto out;
	/* int64 in OTLP JSON may come as a string or a number; json-c reads both. */
	if (json_object_object_get_ex(ps, field, &v))
		rejected = json_object_get_int64(v);
	if (json_object_object_get_ex(ps, "errorMessage", &v) &&
	    json_object_is_type(v, json_type_string))
		emsg = json_object_get_string(v);
	if (rejected > 0) {
		stats_add(e, &e->st.rejected_items[b->signal], (uint64_t)rejected);
		if (first_time(e, "partial", b->signal, emsg))
			log_warn("collector at %s rejected %" PRId64 " of %" PRIu32 " %s: %s",
				 e->url_log[b->signal], rejected, b->n_items,
				 signal_items(b->signal), *emsg ? emsg : "(no message)");
	} else if (*emsg && first_time(e, "partial-msg", b->signal, emsg)) {
		log_warn("collector at %s: %s", e->url_log[b->signal], emsg);
	}
out:
	json_object_put(root);
	return rejected > 0 ? MIN((uint64_t)rejected, b->n_items) : 0;
}

static bool curl_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
		return true;
	default:
		return false;
	}
}

/*
 * The outcome of a request that libcurl finished with rc. On OUTCOME_RETRY,
 * *retry_after_ms is the server's Retry-After (0 if none) and why says what
 * failed; on OUTCOME_SENT, *rejected is what a partial success refused.
 */
static enum outcome answer(struct exporter *e, struct slot *s, CURLcode rc,
			   uint64_t *retry_after_ms, uint64_t *rejected, bool *overloaded,
			   char *why, size_t why_size)
{
	const struct export_batch *b = &s->b;
	curl_off_t retry_after = 0, uploaded = 0;
	long status = 0;
	char msg[256];

	*retry_after_ms = 0;
	*rejected = 0;
	*overloaded = rc == CURLE_OPERATION_TIMEDOUT;
	if (curl_easy_getinfo(s->curl, CURLINFO_SIZE_UPLOAD_T, &uploaded) == CURLE_OK &&
	    uploaded > 0)
		stats_add(e, &e->st.bytes_sent[b->signal], (uint64_t)uploaded);
	if (rc != CURLE_OK) {
		long os_errno = 0;

		stats_add(e, &e->st.failed_requests, 1);
		curl_easy_getinfo(s->curl, CURLINFO_OS_ERRNO, &os_errno);
		/* The URL is in the message already: "Connection refused" says the rest. */
		if (rc == CURLE_COULDNT_CONNECT && os_errno > 0)
			snprintf(why, why_size, "%s", strerror((int)os_errno));
		else
			snprintf(why, why_size, "%s",
				 s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
		if (curl_retryable(rc))
			return OUTCOME_RETRY;
		if (first_time(e, "curl", rc, why))
			log_warn("export to %s failed: %s; dropping %" PRIu32 " %s",
				 e->url_log[b->signal], why, b->n_items, signal_items(b->signal));
		return OUTCOME_DROP;
	}
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300) {
		*rejected = partial_success(e, s);
		return OUTCOME_SENT;
	}
	stats_add(e, &e->st.failed_requests, 1);
	if (status == 429 || status == 502 || status == 503 || status == 504) {
		*overloaded = status == 429 || status == 503;
		status_message(s, msg, sizeof(msg));
		snprintf(why, why_size, "HTTP %ld%s%s", status, *msg ? ": " : "", msg);
		if (curl_easy_getinfo(s->curl, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
		    retry_after > 0)
			*retry_after_ms = (uint64_t)retry_after * 1000;
		return OUTCOME_RETRY;
	}
	status_message(s, msg, sizeof(msg));
	if (first_time(e, "status", status, msg))
		log_warn("collector at %s refused %" PRIu32 " %s with HTTP %ld: %s",
			 e->url_log[b->signal], b->n_items, signal_items(b->signal), status,
			 *msg ? msg : "(empty body)");
	return OUTCOME_DROP;
}

static uint64_t backoff_ms(struct exporter *e)
{
	unsigned int shift = MIN(e->streak, 40u);
	double d = (double)e->initial_ms;

	for (unsigned int i = 0; i < shift && d < (double)e->max_ms; i++)
		d *= 2;
	d *= 0.8 + 0.4 * ((double)(rng_next(e) >> 11) / (double)(1ULL << 53));
	if (d > (double)e->max_ms)
		d = (double)e->max_ms;
	return (uint64_t)d;
}

/* Plans the retry of a batch that got a retryable answer, or drops it when too late. */
static void retry_or_drop(struct exporter *e, struct export_batch *b, uint64_t retry_after,
			  const char *why)
{
	uint64_t delay, now, limit;
	char when[32];

	delay = retry_after ? retry_after : backoff_ms(e);
	e->streak++;
	now = log_now_ms();
	limit = b->first_try_ms + e->max_elapsed_ms;
	if (is_stopping(e))
		limit = MIN(limit, stop_deadline(e));
	if (now + delay > limit) {
		warn_limited(e,
			     "export to %s failed: %s; dropping %" PRIu32
			     " %s after %.1fs of tries",
			     e->url_log[b->signal], why, b->n_items, signal_items(b->signal),
			     (double)(now - b->first_try_ms) / 1000.0);
		drop_batch(e, b);
		return;
	}
	if (delay >= 1000)
		snprintf(when, sizeof(when), "%.1fs", (double)delay / 1000.0);
	else
		snprintf(when, sizeof(when), "%" PRIu64 "ms", delay);
	warn_limited(e, "export to %s failed: %s; retrying in %s", e->url_log[b->signal], why,
		     when);
	stats_add(e, &e->st.retries, 1);
	e->next_try_ms = MAX(e->next_try_ms, now + delay);
	/* Wait inside the queue bound: if the queue fills meanwhile, this batch goes first. */
	queue__put_back(e->q, b);
}

static void slot_release(struct exporter *e, struct slot *s)
{
	curl_multi_remove_handle(e->multi, s->curl);
	if (s->b.signal == SIGNAL_METRICS)
		e->metrics_busy = false;
	s->busy = false;
	e->n_busy--;
}

/*
 * After an accepted request that took took_us for made_len bytes of JSON (see
 * the top of the file). Its cost is the time per KiB, small bodies counted as
 * EXPORT_COST_MIN_KIB and quick ones as EXPORT_COST_MIN_US (a request's own
 * overhead); the base is the cheapest cost seen since the last failure (it
 * drifts up by 1/64 per answer), what one request alone costs the collector.
 */
static void window_after_success(struct exporter *e, uint64_t took_us, size_t made_len)
{
	uint64_t cost = MAX(took_us, (uint64_t)EXPORT_COST_MIN_US) /
			MAX(made_len / 1024, (size_t)EXPORT_COST_MIN_KIB);
	uint64_t quarter_us = e->timeout_ms * 1000 / 4;

	e->base_cost = e->base_cost ? MIN(cost, e->base_cost + e->base_cost / 64 + 1) : cost;
	if (took_us > 2 * quarter_us || cost > 3 * e->base_cost) {
		/* Slow, or the requests in flight slow each other down: one fewer. */
		e->quick_run = 0;
		if (e->window > 1)
			e->window--;
		return;
	}
	if (took_us > quarter_us || 2 * cost > 3 * e->base_cost) {
		e->quick_run = 0;
		return;
	}
	e->window = MIN(e->window + 1, e->ceiling);
	if (e->ceiling < e->n_slots && ++e->quick_run >= 16 * e->ceiling) {
		e->ceiling++;
		e->quick_run = 0;
	}
}

/* After a retryable failure of a request started at started_ms. */
static void window_after_failure(struct exporter *e, bool overloaded, uint64_t started_ms)
{
	e->window = 1;
	e->quick_run = 0;
	e->base_cost = 0; /* what the collector costs now is learnt again */
	/* One cut per episode: what was already in flight at the last cut does not cut again. */
	if (overloaded && started_ms >= e->cut_ms) {
		e->ceiling = MAX(e->ceiling / 2, 1u);
		e->cut_ms = log_now_ms();
	}
}

/* A request finished (rc from libcurl): count it, then free, retry or drop its batch. */
static void finish(struct exporter *e, struct slot *s, CURLcode rc)
{
	struct export_batch b = s->b;
	char why[CURL_ERROR_SIZE + 300];
	uint64_t retry_after, rejected;
	curl_off_t took_us = 0;
	enum outcome out;
	bool overloaded;

	out = answer(e, s, rc, &retry_after, &rejected, &overloaded, why, sizeof(why));
	curl_easy_getinfo(s->curl, CURLINFO_TOTAL_TIME_T, &took_us);
	slot_release(e, s);
	if (out == OUTCOME_SENT) {
		window_after_success(e, (uint64_t)MAX(took_us, 0), b.made_len);
		if (e->streak)
			log_info("collector at %s reachable again after %u failed tries",
				 e->url_log[b.signal], e->streak);
		e->streak = 0;
		pthread_mutex_lock(&e->stats_lock);
		e->st.sent_batches[b.signal]++;
		/* Sent means accepted: a partial success's rejections are not. */
		e->st.sent_items[b.signal] += b.n_items - rejected;
		pthread_mutex_unlock(&e->stats_lock);
		export_batch_free(&b);
		return;
	}
	if (out == OUTCOME_DROP) {
		/* The collector answered: the failure streak ends here. */
		e->streak = 0;
		drop_batch(e, &b);
		return;
	}
	window_after_failure(e, overloaded, s->started_ms);
	retry_or_drop(e, &b, retry_after, why);
}

/* Starts the request of batch b in slot s; the batch is dropped if that cannot be. */
static void start(struct exporter *e, struct slot *s, struct export_batch *b, uint64_t now)
{
	uint64_t timeout = e->timeout_ms;

	if (!encode(e, b))
		return;
	if (!b->first_try_ms)
		b->first_try_ms = now;
	s->started_ms = now;
	if (is_stopping(e))
		timeout = stop_deadline(e) > now ? MIN(timeout, stop_deadline(e) - now) : 1;
	s->b = *b;
	s->errbuf[0] = '\0';
	s->resp_len = 0;
	s->resp[0] = '\0';
	curl_easy_setopt(s->curl, CURLOPT_URL, e->url[b->signal]);
	curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, e->hdrs[b->signal]);
	curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, s->b.body);
	curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->b.len);
	curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, (long)MIN(timeout, (uint64_t)LONG_MAX));
	if (curl_multi_add_handle(e->multi, s->curl) != CURLM_OK) {
		log_err("export: libcurl cannot start a request: %s", strerror(ENOMEM));
		drop_batch(e, &s->b);
		return;
	}
	s->busy = true;
	e->n_busy++;
	if (b->signal == SIGNAL_METRICS)
		e->metrics_busy = true;
}

/* A stop cuts the wait for a planned retry short only when it would land past the
 * deadline (then the try that follows plans a retry past it, and drops the batch). */
static bool waiting_for_retry(struct exporter *e, uint64_t now)
{
	if (now >= e->next_try_ms)
		return false;
	return !(is_stopping(e) && e->next_try_ms > stop_deadline(e));
}

/* Starts what the order rules (top of file) allow. Returns -EPIPE when the queue is closed
 * and empty. */
static int start_requests(struct exporter *e)
{
	uint64_t now = log_now_ms();
	struct export_batch b;
	int ret = 0;

	if (stop_deadline_passed(e, now)) {
		/* Too late for anything queued: dropped and counted. */
		while ((ret = queue__try_pop(e->q, &b, ~0u)) == 0)
			drop_batch(e, &b);
		return ret;
	}
	if (waiting_for_retry(e, now))
		return 0;
	while (e->n_busy < e->window) {
		struct slot *s = e->slots;

		/* The oldest metrics batch first, if none is in flight; else the oldest spans. */
		ret = e->metrics_busy ? -EAGAIN : queue__try_pop(e->q, &b, 1u << SIGNAL_METRICS);
		if (ret)
			ret = queue__try_pop(e->q, &b, 1u << SIGNAL_TRACES);
		if (ret)
			break;
		while (s->busy)
			s++;
		start(e, s, &b, now);
		now = log_now_ms();
	}
	return ret;
}

/* Ends the requests still in flight at the stop deadline; their batches are dropped. */
static void abort_in_flight(struct exporter *e)
{
	for (unsigned int i = 0; i < e->n_slots; i++) {
		struct slot *s = &e->slots[i];
		curl_off_t uploaded = 0;
		struct export_batch b;

		if (!s->busy)
			continue;
		if (curl_easy_getinfo(s->curl, CURLINFO_SIZE_UPLOAD_T, &uploaded) == CURLE_OK &&
		    uploaded > 0)
			stats_add(e, &e->st.bytes_sent[s->b.signal], (uint64_t)uploaded);
		b = s->b;
		slot_release(e, s);
		stats_add(e, &e->st.failed_requests, 1);
		drop_batch(e, &b);
	}
}

/* Compresses the oldest batch still waiting uncompressed, whether or not a request can
 * start now; true if there was one. */
static bool encode_waiting(struct exporter *e)
{
	struct export_batch b;

	if (queue__take_unencoded(e->q, &b))
		return false;
	if (encode(e, &b))
		queue__put_back(e->q, &b);
	return true;
}

/* How long the thread may sleep in curl_multi_poll; libcurl shortens it for its own timers. */
static int poll_ms(struct exporter *e)
{
	uint64_t now = log_now_ms(), ms = 1000;

	if (waiting_for_retry(e, now))
		ms = MIN(ms, e->next_try_ms - now);
	if (is_stopping(e))
		ms = MIN(ms, stop_deadline(e) > now ? stop_deadline(e) - now : 0);
	return (int)ms;
}

static void *export_thread(void *arg)
{
	struct exporter *e = arg;

	for (;;) {
		int running = 0, left = 0;
		CURLMsg *m;

		if (start_requests(e) == -EPIPE && !e->n_busy)
			break; /* stopped, and nothing left */
		if (e->n_busy && stop_deadline_passed(e, log_now_ms())) {
			abort_in_flight(e);
			continue;
		}
		/* One body compressed between two looks at the requests in flight. */
		curl_multi_poll(e->multi, NULL, 0, encode_waiting(e) ? 0 : poll_ms(e), NULL);
		curl_multi_perform(e->multi, &running);
		while ((m = curl_multi_info_read(e->multi, &left))) {
			char *priv = NULL;
			struct slot *s;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
			s = (struct slot *)(void *)priv;
			if (s && s->busy)
				finish(e, s, m->data.result);
		}
	}
	return NULL;
}

/* The header lines of one signal: the fixed ones, then the configured ones. */
static int build_headers(struct exporter *e, const struct kv_list *h, struct curl_slist **out)
{
	const char *fixed[] = {
		"Content-Type: application/json", e->gzip ? "Content-Encoding: gzip" : NULL,
		"Expect:", /* no 100-continue round trip */
	};

	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) {
		struct curl_slist *l;

		if (!fixed[i])
			continue;
		l = curl_slist_append(*out, fixed[i]);
		if (!l)
			return -ENOMEM;
		*out = l;
	}
	for (size_t i = 0; h && i < h->n; i++) {
		struct curl_slist *l;
		char *line;

		/* Values are secrets: only the key is ever named in a message. */
		if (strpbrk(h->items[i].key, "\r\n:") || strpbrk(h->items[i].value, "\r\n")) {
			log_err("exporter.otlp.headers: header %s: line breaks are not allowed",
				h->items[i].key);
			return -EINVAL;
		}
		if (asprintf(&line, "%s: %s", h->items[i].key, h->items[i].value) < 0)
			return -ENOMEM;
		l = curl_slist_append(*out, line);
		explicit_bzero(line, strlen(line));
		free(line);
		if (!l)
			return -ENOMEM;
		*out = l;
	}
	return 0;
}

static bool is_set(const char *s)
{
	return s && *s;
}

/* The options every request of a slot shares; the per-request ones are set in start(). */
static int setup_slot(struct exporter *e, struct slot *s, const struct exporter_opts *opts)
{
	CURL *c;

	s->resp = malloc(EXPORT_MAX_RESPONSE + 1);
	s->curl = c = curl_easy_init();
	if (!s->resp || !c)
		return -ENOMEM;
	curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)s);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tcpotel/" TCPOTEL_VERSION);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)MIN(e->timeout_ms, (uint64_t)LONG_MAX));
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (is_set(opts->ca_file))
		curl_easy_setopt(c, CURLOPT_CAINFO, opts->ca_file);
	if (is_set(opts->cert_file))
		curl_easy_setopt(c, CURLOPT_SSLCERT, opts->cert_file);
	if (is_set(opts->key_file))
		curl_easy_setopt(c, CURLOPT_SSLKEY, opts->key_file);
	if (opts->insecure_skip_verify) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return 0;
}

static int setup_curl(struct exporter *e, const struct exporter_opts *opts)
{
	int err = 0;

	for (int s = 0; s < SIGNAL__COUNT && !err; s++)
		err = build_headers(e, opts->headers[s], &e->hdrs[s]);
	if (err)
		return err;
	e->multi = curl_multi_init();
	e->slots = calloc(e->n_slots, sizeof(*e->slots));
	if (!e->multi || !e->slots)
		return -ENOMEM;
	/* Idle connections kept: one per slot, no more. */
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)e->n_slots);
	for (unsigned int i = 0; i < e->n_slots; i++) {
		err = setup_slot(e, &e->slots[i], opts);
		if (err)
			return err;
	}
	if (opts->insecure_skip_verify)
		log_warn("exporter.otlp.tls.insecure_skip_verify: the collector's certificate is "
			 "not checked");
	return 0;
}

static void exporter_free(struct exporter *e)
{
	for (int s = 0; s < SIGNAL__COUNT; s++) {
		free(e->url[s]);
		free(e->url_log[s]);
	}
	for (unsigned int i = 0; e->slots && i < e->n_slots; i++) {
		struct slot *s = &e->slots[i];

		if (s->busy) {
			curl_multi_remove_handle(e->multi, s->curl);
			export_batch_free(&s->b);
		}
		if (s->curl)
			curl_easy_cleanup(s->curl);
		free(s->resp);
	}
	free(e->slots);
	if (e->multi)
		curl_multi_cleanup(e->multi);
	for (int s = 0; s < SIGNAL__COUNT; s++) {
		/* The lists hold header values: wipe them before they go back to the heap. */
		for (struct curl_slist *l = e->hdrs[s]; l; l = l->next)
			explicit_bzero(l->data, strlen(l->data));
		curl_slist_free_all(e->hdrs[s]);
	}
	free(e->gz_thread_buf);
	free(e->gz_submit_buf);
	queue__free(e->q);
	free(e);
}

struct exporter *exporter__start(const struct exporter_opts *opts)
{
	const char *const *urls = opts->endpoints;
	struct exporter *e;
	int err;

	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		log_err("export: libcurl: %s", curl_easy_strerror(curl_init_rc));
		errno = EIO;
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->gzip = opts->gzip;
	e->to_stdout = opts->to_stdout;
	e->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 10000;
	e->initial_ms = MAX(opts->retry_initial_ms, 1);
	e->max_ms = MAX(opts->retry_max_ms, e->initial_ms);
	e->max_elapsed_ms = opts->retry_max_elapsed_ms;
	e->n_slots = MIN(MAX(opts->parallel_requests, 1u), EXPORT_MAX_PARALLEL);
	e->window = 1;
	e->ceiling = e->n_slots;
	e->rng = (uint64_t)log_now_ms() ^ ((uint64_t)(uintptr_t)e << 16) ^ 0x9e3779b97f4a7c15ULL;
	if (!e->rng)
		e->rng = 1;

	for (int s = 0; s < SIGNAL__COUNT; s++) {
		if (!urls[s] || !*urls[s])
			continue; /* that signal goes nowhere but stdout, if at all */
		e->url[s] = strdup(urls[s]);
		e->url_log[s] = url_for_log(urls[s]);
		if (!e->url[s] || !e->url_log[s]) {
			err = ENOMEM;
			goto err_free;
		}
	}
	e->q = queue__new(opts->queue_size);
	if (e->q)
		queue__set_max_bytes(e->q, EXPORT_QUEUE_MAX_BYTES);
	if (!e->q) {
		err = errno;
		goto err_free;
	}
	if (e->gzip) {
		e->gz_thread_buf = malloc(EXPORT_GZIP_LEVEL_BUF);
		e->gz_submit_buf = malloc(EXPORT_GZIP_LEVEL_BUF);
		if (!e->gz_thread_buf || !e->gz_submit_buf) {
			err = ENOMEM;
			goto err_free;
		}
	}
	err = -setup_curl(e, opts);
	if (err)
		goto err_free;

	err = pthread_mutex_init(&e->stats_lock, NULL);
	if (err)
		goto err_free;
	err = pthread_mutex_init(&e->gz_lock, NULL);
	if (err)
		goto err_stats_lock;
	err = pthread_create(&e->th, NULL, export_thread, e);
	if (err)
		goto err_gz_lock;
	return e;

err_gz_lock:
	pthread_mutex_destroy(&e->gz_lock);
err_stats_lock:
	pthread_mutex_destroy(&e->stats_lock);
err_free:
	exporter_free(e);
	errno = err;
	return NULL;
}

void exporter__submit(struct exporter *e, enum otlp_signal signal, char *body, size_t len,
		      uint32_t n_items)
{
	struct export_batch b = { .signal = signal,
				  .body = body,
				  .len = len,
				  .made_len = len,
				  .n_items = n_items,
				  .encoded = !e->gzip };

	if ((unsigned int)signal >= SIGNAL__COUNT) {
		free(body);
		return;
	}
	if (e->to_stdout) {
		/* One body per line; the stdio lock keeps lines from two threads apart. */
		flockfile(stdout);
		fwrite_unlocked(body, 1, len, stdout);
		putc_unlocked('\n', stdout);
		fflush_unlocked(stdout);
		funlockfile(stdout);
	}
	if (!e->url[signal]) {
		free(body);
		return;
	}
	/* The export thread compresses; when it falls behind, so that uncompressed bodies of
	 * megabytes do not pile up, the submitter compresses its own. */
	if (!b.encoded && queue__unencoded(e->q) >= EXPORT_MAX_UNENCODED) {
		int err;

		pthread_mutex_lock(&e->gz_lock);
		err = gzip_body(&b, e->gz_submit_buf);
		pthread_mutex_unlock(&e->gz_lock);
		if (err) {
			log_err("export: cannot compress a body of %zu bytes: %s", len,
				strerror(-err));
			drop_batch(e, &b);
			return;
		}
	}
	queue__push(e->q, &b);
	curl_multi_wakeup(e->multi);
}

void exporter__stats(struct exporter *e, struct exporter_stats *out)
{
	struct queue_stats qs;

	queue__stats(e->q, &qs);
	pthread_mutex_lock(&e->stats_lock);
	*out = e->st;
	pthread_mutex_unlock(&e->stats_lock);
	out->queue_depth = qs.depth;
	for (int s = 0; s < SIGNAL__COUNT; s++) {
		out->dropped_items[s] += qs.dropped_items[s];
		out->queue_dropped_items[s] = qs.dropped_items[s];
	}
}

void exporter__stop(struct exporter *e, uint64_t deadline_ms)
{
	struct exporter_stats st;

	if (!e)
		return;
	__atomic_store_n(&e->deadline_ms, deadline_ms, __ATOMIC_RELEASE);
	__atomic_store_n(&e->stopping, 1, __ATOMIC_RELEASE);
	queue__close(e->q);
	curl_multi_wakeup(e->multi);
	pthread_join(e->th, NULL);

	exporter__stats(e, &st);
	log_info("export stopped: sent %" PRIu64 " spans and %" PRIu64 " metric points; "
		 "dropped %" PRIu64 " spans and %" PRIu64 " metric points",
		 st.sent_items[SIGNAL_TRACES], st.sent_items[SIGNAL_METRICS],
		 st.dropped_items[SIGNAL_TRACES], st.dropped_items[SIGNAL_METRICS]);
	pthread_mutex_destroy(&e->gz_lock);
	pthread_mutex_destroy(&e->stats_lock);
	exporter_free(e);
}
