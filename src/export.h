/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The export thread: takes batches from the bounded queue and POSTs them with
 * libcurl to /v1/metrics and /v1/traces (gzip, headers, TLS, timeout). It
 * retries only what OTLP/HTTP says is retryable (429, 502, 503, 504 and
 * connection failures) with exponential backoff and jitter, honouring
 * Retry-After, up to retry.max_elapsed_time; anything else is dropped and
 * counted. Submitting never blocks the caller.
 */
#ifndef TCPOTEL_EXPORT_H
#define TCPOTEL_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue.h"

struct kv_list;

/* Bodies held while the collector is slow or away, at most (besides queue_size batches). */
#define EXPORT_QUEUE_MAX_BYTES (32u << 20)

struct exporter_stats {
	uint64_t sent_batches[SIGNAL__COUNT];
	uint64_t sent_items[SIGNAL__COUNT];
	uint64_t dropped_items
		[SIGNAL__COUNT]; /* every cause: queue full, refused, retries expired, shutdown */
	uint64_t queue_dropped_items[SIGNAL__COUNT]; /* of those: pushed out of a full queue */
	uint64_t rejected_items[SIGNAL__COUNT]; /* partialSuccess rejections reported by the collector */
	uint64_t failed_requests; /* requests that did not get a 2xx (each try) */
	uint64_t retries; /* failed tries planned again */
	uint64_t queue_depth;
	uint64_t bytes_sent[SIGNAL__COUNT]; /* request bodies as sent (compressed), every try */
};

/* exporter.* of the configuration. The pointers are borrowed until exporter__start() returns. */
struct exporter_opts {
	/* Full URLs; NULL or "": that signal is not posted (stdout only, if at all). */
	const char *endpoints[SIGNAL__COUNT];
	/* Header lines sent with each signal; the values are secrets. */
	const struct kv_list *headers[SIGNAL__COUNT];
	bool gzip;
	bool to_stdout; /* also print every body to stdout, one per line */
	uint64_t timeout_ms; /* per request; 0: 10 s */
	const char *ca_file, *cert_file, *key_file; /* NULL or "": none */
	bool insecure_skip_verify;
	uint64_t retry_initial_ms, retry_max_ms, retry_max_elapsed_ms;
	uint32_t queue_size; /* batches */
};

struct exporter;

/* Starts the export thread. NULL with errno set on failure. */
struct exporter *exporter__start(const struct exporter_opts *opts);
/* Queues one body (ownership of body passes to the exporter); never blocks.
 * With exporter.stdout the body is also printed to stdout, one per line. */
void exporter__submit(struct exporter *e, enum otlp_signal signal, char *body, size_t len,
		      uint32_t n_items);
void exporter__stats(struct exporter *e, struct exporter_stats *out);
/* Sends what is queued until deadline (CLOCK_MONOTONIC ms), then stops the thread;
 * what could not be sent by then is dropped and counted. NULL-safe. */
void exporter__stop(struct exporter *e, uint64_t deadline_ms);

#endif
