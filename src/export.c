// SPDX-License-Identifier: Apache-2.0
/*
 * The export thread. One libcurl easy handle, reused so that the connection
 * to the collector stays open between requests.
 *
 * Order and retries: the thread takes the head batch from the queue and
 * POSTs it. When the answer is retryable it puts the batch back at the head
 * (queue__push_front) and sleeps until the next try, so that while it waits
 * the batch is inside the queue bound: if the queue fills meanwhile, the
 * retried batch is the oldest and is the one dropped. The retry state
 * (first try, compressed body) follows the batch by its sequence number.
 *
 * Backoff: initial_interval doubled after every consecutive retryable
 * failure, with jitter of +-20% (enough to spread agents restarted together,
 * small enough that the growth stays visible), capped at max_interval. The
 * failure streak is the exporter's, not the batch's: a new batch during an
 * outage does not start the backoff over. A Retry-After header (seconds or
 * HTTP-date) replaces the backoff as is, not capped: the collector asked for
 * it. No try is planned past retry.max_elapsed_time after the batch's first
 * try (nor past the stop deadline); such a batch is dropped at once.
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

enum outcome {
	OUTCOME_SENT,
	OUTCOME_RETRY,
	OUTCOME_DROP,
};

struct exporter {
	struct queue *q;
	CURL *curl;
	struct curl_slist *hdrs[SIGNAL__COUNT]; /* per signal: OTEL_..._{TRACES,METRICS}_HEADERS */
	char *url[SIGNAL__COUNT];
	char *url_log[SIGNAL__COUNT]; /* without user:password@ */
	bool gzip;
	bool to_stdout;
	uint64_t last_rejected; /* items the last 2xx answer rejected */
	uint64_t timeout_ms;
	uint64_t initial_ms, max_ms, max_elapsed_ms;

	uint8_t *gz_level_buf; /* igzip's work area for EXPORT_GZIP_LEVEL */
	char *zbuf; /* body as sent for the current batch */
	size_t zcap, zlen;

	/* The batch being tried, identified by its queue sequence number. */
	struct {
		bool valid;
		uint64_t seq;
		uint64_t first_try_ms;
	} cur;
	unsigned int streak; /* consecutive retryable failures, any batch */
	uint64_t next_try_ms;
	uint64_t rng;

	char errbuf[CURL_ERROR_SIZE];
	char *resp;
	size_t resp_len;
	uint64_t seen[EXPORT_SEEN_SLOTS]; /* hashes of messages logged once */
	size_t n_seen;
	uint64_t last_warn_ms; /* rate limit of the outage warnings, per exporter */
	uint64_t suppressed;

	pthread_t th;
	pthread_mutex_t lock; /* guards stopping/deadline_ms for the waits */
	pthread_cond_t wake;
	int stopping; /* also read atomically by the progress callback */
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
	e->cur.valid = false;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct exporter *e = arg;
	size_t n = size * nmemb, keep = n;

	if (e->resp_len + keep > EXPORT_MAX_RESPONSE)
		keep = EXPORT_MAX_RESPONSE - e->resp_len;
	if (keep) {
		memcpy(e->resp + e->resp_len, data, keep);
		e->resp_len += keep;
		e->resp[e->resp_len] = '\0';
	}
	return n;
}

static bool stop_deadline_passed(struct exporter *e)
{
	return __atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE) &&
	       log_now_ms() >= __atomic_load_n(&e->deadline_ms, __ATOMIC_ACQUIRE);
}

/* Ends a request in flight once the stop deadline has passed. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	return stop_deadline_passed(arg) ? 1 : 0;
}

/* Room for any gzip output of len bytes: stored blocks at worst, plus header and trailer. */
static size_t gzip_bound(size_t len)
{
	return len + len / 8 + 1024;
}

static int compress_body(struct exporter *e, const struct export_batch *b)
{
	struct isal_zstream zs;
	size_t bound;

	if (!e->gzip)
		return 0;
	bound = gzip_bound(b->len);
	if (b->len > UINT32_MAX / 2)
		return -E2BIG; /* igzip counts in 32 bits; bodies are far smaller */
	if (bound > e->zcap) {
		char *p = realloc(e->zbuf, bound);

		if (!p)
			return -ENOMEM;
		e->zbuf = p;
		e->zcap = bound;
	}
	isal_deflate_stateless_init(&zs);
	zs.gzip_flag = IGZIP_GZIP;
	zs.level = EXPORT_GZIP_LEVEL;
	zs.level_buf = e->gz_level_buf;
	zs.level_buf_size = EXPORT_GZIP_LEVEL_BUF;
	zs.end_of_stream = 1;
	zs.flush = NO_FLUSH;
	zs.next_in = (uint8_t *)b->body;
	zs.avail_in = (uint32_t)b->len;
	zs.next_out = (uint8_t *)e->zbuf;
	zs.avail_out = (uint32_t)MIN(bound, (size_t)UINT32_MAX);
	if (isal_deflate_stateless(&zs) != COMP_OK)
		return -EIO;
	e->zlen = zs.total_out;
	return 0;
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
static void status_message(struct exporter *e, char *out, size_t size)
{
	struct json_object *root = e->resp_len ? json_tokener_parse(e->resp) : NULL;
	struct json_object *msg;

	if (root && json_object_object_get_ex(root, "message", &msg) &&
	    json_object_is_type(msg, json_type_string)) {
		body_excerpt(json_object_get_string(msg), (size_t)json_object_get_string_len(msg),
			     out, size);
	} else {
		body_excerpt(e->resp, e->resp_len, out, size);
	}
	json_object_put(root);
}

/*
 * 2xx: counts and reports (once per message) what partialSuccess says was
 * rejected; returns how many of the batch's items that is.
 */
static uint64_t partial_success(struct exporter *e, const struct export_batch *b)
{
	struct json_object *root, *ps, *v;
	const char *field = b->signal == SIGNAL_TRACES ? "rejectedSpans" : "rejectedDataPoints";
	const char *emsg = "";
	int64_t rejected = 0;

	if (!e->resp_len)
		return 0;
	root = json_tokener_parse(e->resp);
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
 * One POST of the current batch. On OUTCOME_RETRY, *retry_after_ms is the
 * server's Retry-After (0 if none) and why says what failed.
 */
static enum outcome post(struct exporter *e, const struct export_batch *b, uint64_t *retry_after_ms,
			 char *why, size_t why_size)
{
	const char *body = e->gzip ? e->zbuf : b->body;
	size_t len = e->gzip ? e->zlen : b->len;
	uint64_t timeout = e->timeout_ms;
	curl_off_t retry_after = 0, uploaded = 0;
	long status = 0;
	char msg[256];
	CURLcode rc;

	*retry_after_ms = 0;
	if (__atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE)) {
		uint64_t now = log_now_ms(),
			 dl = __atomic_load_n(&e->deadline_ms, __ATOMIC_ACQUIRE);

		if (now >= dl)
			return OUTCOME_DROP;
		timeout = MIN(timeout, dl - now);
	}
	e->errbuf[0] = '\0';
	e->resp_len = 0;
	e->resp[0] = '\0';
	curl_easy_setopt(e->curl, CURLOPT_URL, e->url[b->signal]);
	curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, e->hdrs[b->signal]);
	curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, (long)MIN(timeout, (uint64_t)LONG_MAX));
	rc = curl_easy_perform(e->curl);
	if (curl_easy_getinfo(e->curl, CURLINFO_SIZE_UPLOAD_T, &uploaded) == CURLE_OK &&
	    uploaded > 0)
		stats_add(e, &e->st.bytes_sent[b->signal], (uint64_t)uploaded);
	if (rc != CURLE_OK) {
		long os_errno = 0;

		stats_add(e, &e->st.failed_requests, 1);
		curl_easy_getinfo(e->curl, CURLINFO_OS_ERRNO, &os_errno);
		/* The URL is in the message already: "Connection refused" says the rest. */
		if (rc == CURLE_COULDNT_CONNECT && os_errno > 0)
			snprintf(why, why_size, "%s", strerror((int)os_errno));
		else
			snprintf(why, why_size, "%s",
				 e->errbuf[0] ? e->errbuf : curl_easy_strerror(rc));
		if (rc == CURLE_ABORTED_BY_CALLBACK)
			return OUTCOME_DROP; /* the stop deadline passed */
		if (curl_retryable(rc))
			return OUTCOME_RETRY;
		if (first_time(e, "curl", rc, why))
			log_warn("export to %s failed: %s; dropping %" PRIu32 " %s",
				 e->url_log[b->signal], why, b->n_items, signal_items(b->signal));
		return OUTCOME_DROP;
	}
	curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300) {
		e->last_rejected = partial_success(e, b);
		return OUTCOME_SENT;
	}
	stats_add(e, &e->st.failed_requests, 1);
	if (status == 429 || status == 502 || status == 503 || status == 504) {
		status_message(e, msg, sizeof(msg));
		snprintf(why, why_size, "HTTP %ld%s%s", status, *msg ? ": " : "", msg);
		if (curl_easy_getinfo(e->curl, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
		    retry_after > 0)
			*retry_after_ms = (uint64_t)retry_after * 1000;
		return OUTCOME_RETRY;
	}
	status_message(e, msg, sizeof(msg));
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

static void handle(struct exporter *e, struct export_batch *b)
{
	enum outcome out;
	uint64_t retry_after, delay, now, limit;
	char why[CURL_ERROR_SIZE + 300], when[32];

	if (stop_deadline_passed(e)) {
		drop_batch(e, b);
		return;
	}
	if (!e->cur.valid || e->cur.seq != b->seq) {
		/* A new batch (the one retried before may have been pushed out of the queue). */
		int err = compress_body(e, b);

		if (err) {
			log_err("export: cannot compress a body of %zu bytes: %s", b->len,
				strerror(-err));
			drop_batch(e, b);
			return;
		}
		e->cur.valid = true;
		e->cur.seq = b->seq;
		e->cur.first_try_ms = log_now_ms();
	}

	out = post(e, b, &retry_after, why, sizeof(why));
	if (out == OUTCOME_SENT) {
		if (e->streak)
			log_info("collector at %s reachable again after %u failed tries",
				 e->url_log[b->signal], e->streak);
		e->streak = 0;
		pthread_mutex_lock(&e->stats_lock);
		e->st.sent_batches[b->signal]++;
		/* Sent means accepted: a partial success's rejections are not. */
		e->st.sent_items[b->signal] += b->n_items - e->last_rejected;
		pthread_mutex_unlock(&e->stats_lock);
		export_batch_free(b);
		e->cur.valid = false;
		return;
	}
	if (out == OUTCOME_DROP) {
		/* The collector answered (or the deadline passed): the failure streak ends here. */
		e->streak = 0;
		drop_batch(e, b);
		return;
	}

	delay = retry_after ? retry_after : backoff_ms(e);
	e->streak++;
	now = log_now_ms();
	limit = e->cur.first_try_ms + e->max_elapsed_ms;
	if (__atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE))
		limit = MIN(limit, __atomic_load_n(&e->deadline_ms, __ATOMIC_ACQUIRE));
	if (now + delay > limit) {
		warn_limited(e,
			     "export to %s failed: %s; dropping %" PRIu32
			     " %s after %.1fs of tries",
			     e->url_log[b->signal], why, b->n_items, signal_items(b->signal),
			     (double)(now - e->cur.first_try_ms) / 1000.0);
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
	e->next_try_ms = now + delay;
	/* Wait inside the queue bound: if the queue fills meanwhile, this batch goes first. */
	queue__push_front(e->q, b);
}

/* Sleeps until the planned retry; a stop cuts the wait short only when the retry would
 * land past the deadline (then the retried batch is dropped by handle()). */
static void wait_retry(struct exporter *e)
{
	struct timespec until = {
		.tv_sec = (time_t)(e->next_try_ms / 1000),
		.tv_nsec = (long)(e->next_try_ms % 1000) * 1000000L,
	};

	pthread_mutex_lock(&e->lock);
	while (log_now_ms() < e->next_try_ms) {
		if (e->stopping && e->next_try_ms > e->deadline_ms)
			break;
		pthread_cond_timedwait(&e->wake, &e->lock, &until);
	}
	pthread_mutex_unlock(&e->lock);
	e->next_try_ms = 0;
}

static void *export_thread(void *arg)
{
	struct exporter *e = arg;
	struct export_batch b;

	for (;;) {
		if (e->next_try_ms)
			wait_retry(e);
		if (!queue__pop(e->q, &b, -1))
			break; /* closed and empty */
		handle(e, &b);
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

static int setup_curl(struct exporter *e, const struct exporter_opts *opts)
{
	int err = 0;

	e->curl = curl_easy_init();
	if (!e->curl)
		return -ENOMEM;
	for (int s = 0; s < SIGNAL__COUNT && !err; s++)
		err = build_headers(e, opts->headers[s], &e->hdrs[s]);
	if (err)
		return err;
	curl_easy_setopt(e->curl, CURLOPT_USERAGENT, "tcpotel/" TCPOTEL_VERSION);
	curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->curl, CURLOPT_ERRORBUFFER, e->errbuf);
	curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, e);
	curl_easy_setopt(e->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e->curl, CURLOPT_XFERINFODATA, e);
	curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)MIN(e->timeout_ms, (uint64_t)LONG_MAX));
	curl_easy_setopt(e->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (is_set(opts->ca_file))
		curl_easy_setopt(e->curl, CURLOPT_CAINFO, opts->ca_file);
	if (is_set(opts->cert_file))
		curl_easy_setopt(e->curl, CURLOPT_SSLCERT, opts->cert_file);
	if (is_set(opts->key_file))
		curl_easy_setopt(e->curl, CURLOPT_SSLKEY, opts->key_file);
	if (opts->insecure_skip_verify) {
		curl_easy_setopt(e->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e->curl, CURLOPT_SSL_VERIFYHOST, 0L);
		log_warn("exporter.otlp.tls.insecure_skip_verify: the collector's certificate is "
			 "not checked");
	}
	return 0;
}

static void exporter_free(struct exporter *e)
{
	for (int s = 0; s < SIGNAL__COUNT; s++) {
		free(e->url[s]);
		free(e->url_log[s]);
	}
	for (int s = 0; s < SIGNAL__COUNT; s++) {
		/* The lists hold header values: wipe them before they go back to the heap. */
		for (struct curl_slist *l = e->hdrs[s]; l; l = l->next)
			explicit_bzero(l->data, strlen(l->data));
		curl_slist_free_all(e->hdrs[s]);
	}
	if (e->curl)
		curl_easy_cleanup(e->curl);
	free(e->gz_level_buf);
	free(e->zbuf);
	free(e->resp);
	queue__free(e->q);
	free(e);
}

struct exporter *exporter__start(const struct exporter_opts *opts)
{
	const char *const *urls = opts->endpoints;
	pthread_condattr_t attr;
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
	e->resp = malloc(EXPORT_MAX_RESPONSE + 1);
	if (!e->resp) {
		err = ENOMEM;
		goto err_free;
	}
	if (e->gzip) {
		e->gz_level_buf = malloc(EXPORT_GZIP_LEVEL_BUF);
		if (!e->gz_level_buf) {
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
	err = pthread_mutex_init(&e->lock, NULL);
	if (err)
		goto err_stats_lock;
	err = pthread_condattr_init(&attr);
	if (err)
		goto err_lock;
	err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(&e->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (err)
		goto err_lock;
	err = pthread_create(&e->th, NULL, export_thread, e);
	if (err)
		goto err_cond;
	return e;

err_cond:
	pthread_cond_destroy(&e->wake);
err_lock:
	pthread_mutex_destroy(&e->lock);
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
	struct export_batch b = { .signal = signal, .body = body, .len = len, .n_items = n_items };

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
	queue__push(e->q, &b);
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
	pthread_mutex_lock(&e->lock);
	__atomic_store_n(&e->deadline_ms, deadline_ms, __ATOMIC_RELEASE);
	__atomic_store_n(&e->stopping, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&e->wake);
	pthread_mutex_unlock(&e->lock);
	queue__close(e->q);
	pthread_join(e->th, NULL);

	exporter__stats(e, &st);
	log_info("export stopped: sent %" PRIu64 " spans and %" PRIu64 " metric points; "
		 "dropped %" PRIu64 " spans and %" PRIu64 " metric points",
		 st.sent_items[SIGNAL_TRACES], st.sent_items[SIGNAL_METRICS],
		 st.dropped_items[SIGNAL_TRACES], st.dropped_items[SIGNAL_METRICS]);
	pthread_cond_destroy(&e->wake);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->stats_lock);
	exporter_free(e);
}
