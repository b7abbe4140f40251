/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pure OTLP/HTTP JSON encoder (no I/O): ExportMetricsServiceRequest and
 * ExportTraceServiceRequest bodies, written in one pass into a jbuf.
 *
 * The OTLP JSON rules it follows (opentelemetry-proto, docs/specification.md,
 * "JSON Protobuf Encoding"): lowerCamelCase field names, enums as integers,
 * 64-bit integers (fixed64/int64/uint64) as decimal strings, trace and span
 * ids as lowercase hex (not base64), every *UnixNano set, histogram
 * bucketCounts has bounds+1 entries summing to count.
 *
 * Callers stream: begin, then per resource resource_begin, then metrics (each
 * with its points) or spans, then resource_end, then end. The encoder keeps
 * the commas and brackets right; it never reorders.
 *
 * The metric store does not call the JSON writers itself: it writes through
 * struct otlp_metrics_emitter, the same sequence of calls as an interface,
 * which the JSON writer below implements (otlp_json_emitter) and so does the
 * Prometheus text writer (prom.h).
 */
#ifndef TCPOTEL_OTLP_H
#define TCPOTEL_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jbuf.h"

#ifndef TCPOTEL_VERSION
#define TCPOTEL_VERSION "dev"
#endif

/* The instrumentation scope of everything tcpotel writes. */
#define OTLP_SCOPE_NAME	   "tcpotel"
#define OTLP_SCOPE_VERSION TCPOTEL_VERSION
/* Longest string value written for any attribute (bytes of input). */
#define OTLP_MAX_VALUE_BYTES 4096

enum otlp_value_type {
	OTLP_STRING,
	OTLP_INT,
	OTLP_DOUBLE,
	OTLP_BOOL,
};

struct otlp_attr {
	const char *key;
	enum otlp_value_type type;
	union {
		const char *s;
		int64_t i;
		double d;
		bool b;
	};
};

#define OTLP_ATTR_STR(k, v)    ((struct otlp_attr){ .key = (k), .type = OTLP_STRING, .s = (v) })
#define OTLP_ATTR_INT(k, v)    ((struct otlp_attr){ .key = (k), .type = OTLP_INT, .i = (v) })
#define OTLP_ATTR_DOUBLE(k, v) ((struct otlp_attr){ .key = (k), .type = OTLP_DOUBLE, .d = (v) })
#define OTLP_ATTR_BOOL(k, v)   ((struct otlp_attr){ .key = (k), .type = OTLP_BOOL, .b = (v) })

struct otlp_resource {
	const struct otlp_attr *attrs; /* must hold service.name */
	size_t n_attrs;
};

enum otlp_metric_kind {
	OTLP_SUM_MONOTONIC, /* cumulative, isMonotonic: true */
	OTLP_SUM_NONMONOTONIC, /* cumulative, isMonotonic: false */
	OTLP_GAUGE,
	OTLP_HISTOGRAM, /* cumulative, explicit bounds */
};

struct otlp_metric_desc {
	const char *name;
	const char *unit;
	const char *description;
	enum otlp_metric_kind kind;
	bool is_double; /* sums and gauges: asDouble rather than asInt */
};

struct otlp_histogram_point {
	const double *bounds; /* explicitBounds, n_bounds entries, strictly increasing */
	size_t n_bounds;
	const uint64_t *counts; /* n_bounds + 1 entries */
	uint64_t count; /* sum of counts */
	double sum;
	bool has_min_max;
	double min, max;
};

enum otlp_span_kind {
	OTLP_SPAN_KIND_SERVER = 2,
	OTLP_SPAN_KIND_CLIENT = 3,
};

enum otlp_status_code {
	OTLP_STATUS_UNSET = 0,
	OTLP_STATUS_OK = 1,
	OTLP_STATUS_ERROR = 2,
};

struct otlp_span {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t parent_span_id[8]; /* all zero: no parent (field left out) */
	const char *trace_state; /* NULL or "": left out */
	const char *name;
	enum otlp_span_kind kind;
	uint64_t start_unix_nano;
	uint64_t end_unix_nano;
	const struct otlp_attr *attrs;
	size_t n_attrs;
	enum otlp_status_code status;
	const char *status_message; /* NULL: left out */
};

/* Metrics body. */
void otlp_metrics_begin(struct jbuf *b);
void otlp_metrics_resource_begin(struct jbuf *b, const struct otlp_resource *res);
void otlp_metric_begin(struct jbuf *b, const struct otlp_metric_desc *desc);
void otlp_point_int(struct jbuf *b, const struct otlp_attr *attrs, size_t n_attrs,
		    uint64_t start_unix_nano, uint64_t time_unix_nano, int64_t value);
void otlp_point_double(struct jbuf *b, const struct otlp_attr *attrs, size_t n_attrs,
		       uint64_t start_unix_nano, uint64_t time_unix_nano, double value);
void otlp_point_histogram(struct jbuf *b, const struct otlp_attr *attrs, size_t n_attrs,
			  uint64_t start_unix_nano, uint64_t time_unix_nano,
			  const struct otlp_histogram_point *h);
void otlp_metric_end(struct jbuf *b);
void otlp_metrics_resource_end(struct jbuf *b);
void otlp_metrics_end(struct jbuf *b);

/*
 * A metrics body as calls: begin; per resource, resource_begin, then per
 * metric metric_begin, its points and metric_end, then resource_end; end.
 * Every pointer passed is borrowed for the call only. Implementations embed
 * the struct and find themselves with container_of.
 */
struct otlp_metrics_emitter;

struct otlp_metrics_emitter_ops {
	void (*begin)(struct otlp_metrics_emitter *e);
	void (*resource_begin)(struct otlp_metrics_emitter *e, const struct otlp_resource *res);
	void (*metric_begin)(struct otlp_metrics_emitter *e, const struct otlp_metric_desc *desc);
	void (*point_int)(struct otlp_metrics_emitter *e, const struct otlp_attr *attrs,
			  size_t n_attrs, uint64_t start_unix_nano, uint64_t time_unix_nano,
			  int64_t value);
	void (*point_double)(struct otlp_metrics_emitter *e, const struct otlp_attr *attrs,
			     size_t n_attrs, uint64_t start_unix_nano, uint64_t time_unix_nano,
			     double value);
	void (*point_histogram)(struct otlp_metrics_emitter *e, const struct otlp_attr *attrs,
				size_t n_attrs, uint64_t start_unix_nano, uint64_t time_unix_nano,
				const struct otlp_histogram_point *h);
	void (*metric_end)(struct otlp_metrics_emitter *e);
	void (*resource_end)(struct otlp_metrics_emitter *e);
	void (*end)(struct otlp_metrics_emitter *e);
};

struct otlp_metrics_emitter {
	const struct otlp_metrics_emitter_ops *ops;
};

/* The emitter that writes the body above, as OTLP/HTTP JSON, into b. */
struct otlp_json_emitter {
	struct otlp_metrics_emitter emitter;
	struct jbuf *b;
};

void otlp_json_emitter_init(struct otlp_json_emitter *je, struct jbuf *b);

/* Traces body. */
void otlp_traces_begin(struct jbuf *b);
void otlp_traces_resource_begin(struct jbuf *b, const struct otlp_resource *res);
void otlp_span(struct jbuf *b, const struct otlp_span *span);
void otlp_traces_resource_end(struct jbuf *b);
void otlp_traces_end(struct jbuf *b);

#endif
