// SPDX-License-Identifier: Apache-2.0
/*
 * OTLP/HTTP JSON encoder. It keeps no state of its own: whether a comma is
 * due is read from the last byte written ('[' or '{' opens a list), and the
 * fields that close a Sum or Histogram (aggregationTemporality, isMonotonic)
 * are written before dataPoints, so that otlp_metric_end() closes every kind
 * the same way. JSON objects are unordered; OTLP receivers accept any order.
 */
#include "otlp.h"

#include <string.h>

#include "util.h"

/* AGGREGATION_TEMPORALITY_CUMULATIVE */
#define OTLP_CUMULATIVE "2"

#define PUT_LIT(b, lit) jbuf_put((b), (lit), sizeof(lit) - 1)

static inline void sep(struct jbuf *b)
{
	char last;

	if (unlikely(!b->len))
		return;
	last = b->data[b->len - 1];
	if (last != '[' && last != '{')
		jbuf_putc(b, ',');
}

static inline void put_str(struct jbuf *b, const char *s)
{
	jbuf_json_string(b, s, OTLP_MAX_VALUE_BYTES);
}

static void put_attrs(struct jbuf *b, const struct otlp_attr *attrs, size_t n)
{
	PUT_LIT(b, "\"attributes\":[");
	for (size_t i = 0; i < n; i++) {
		const struct otlp_attr *a = &attrs[i];

		if (i)
			jbuf_putc(b, ',');
		PUT_LIT(b, "{\"key\":");
		put_str(b, a->key);
		switch (a->type) {
		case OTLP_STRING:
			PUT_LIT(b, ",\"value\":{\"stringValue\":");
			put_str(b, a->s);
			break;
		case OTLP_INT:
			PUT_LIT(b, ",\"value\":{\"intValue\":");
			jbuf_i64_quoted(b, a->i);
			break;
		case OTLP_DOUBLE:
			PUT_LIT(b, ",\"value\":{\"doubleValue\":");
			jbuf_double(b, a->d);
			break;
		case OTLP_BOOL:
			if (a->b)
				PUT_LIT(b, ",\"value\":{\"boolValue\":true");
			else
				PUT_LIT(b, ",\"value\":{\"boolValue\":false");
			break;
		default:
			/* An empty AnyValue is valid OTLP; better than broken JSON. */
			PUT_LIT(b, ",\"value\":{");
			break;
		}
		PUT_LIT(b, "}}");
	}
	jbuf_putc(b, ']');
}

/* Empty attribute lists are left out everywhere (proto3 JSON default). */
static inline void put_attrs_field(struct jbuf *b, const struct otlp_attr *attrs, size_t n)
{
	if (!n)
		return;
	sep(b);
	put_attrs(b, attrs, n);
}

static void put_resource_and_scope(struct jbuf *b, const struct otlp_resource *res,
				   const char *scope_key, const char *items_key)
{
	sep(b);
	PUT_LIT(b, "{\"resource\":{");
	put_attrs_field(b, res->attrs, res->n_attrs);
	PUT_LIT(b, "},\"");
	jbuf_puts(b, scope_key);
	PUT_LIT(b, "\":[{\"scope\":{\"name\":\"" OTLP_SCOPE_NAME "\",\"version\":");
	put_str(b, OTLP_SCOPE_VERSION);
	PUT_LIT(b, "},\"");
	jbuf_puts(b, items_key);
	PUT_LIT(b, "\":[");
}

/* ---- metrics ------------------------------------------------------------- */

void otlp_metrics_begin(struct jbuf *b)
{
	PUT_LIT(b, "{\"resourceMetrics\":[");
}

void otlp_metrics_resource_begin(struct jbuf *b, const struct otlp_resource *res)
{
	put_resource_and_scope(b, res, "scopeMetrics", "metrics");
}

void otlp_metric_begin(struct jbuf *b, const struct otlp_metric_desc *desc)
{
	sep(b);
	PUT_LIT(b, "{\"name\":");
	put_str(b, desc->name);
	if (desc->unit && *desc->unit) {
		PUT_LIT(b, ",\"unit\":");
		put_str(b, desc->unit);
	}
	if (desc->description && *desc->description) {
		PUT_LIT(b, ",\"description\":");
		put_str(b, desc->description);
	}
	switch (desc->kind) {
	case OTLP_SUM_MONOTONIC:
		PUT_LIT(b, ",\"sum\":{\"aggregationTemporality\":" OTLP_CUMULATIVE
			   ",\"isMonotonic\":true,\"dataPoints\":[");
		break;
	case OTLP_SUM_NONMONOTONIC:
		PUT_LIT(b, ",\"sum\":{\"aggregationTemporality\":" OTLP_CUMULATIVE
			   ",\"isMonotonic\":false,\"dataPoints\":[");
		break;
	case OTLP_HISTOGRAM:
		PUT_LIT(b, ",\"histogram\":{\"aggregationTemporality\":" OTLP_CUMULATIVE
			   ",\"dataPoints\":[");
		break;
	case OTLP_GAUGE:
	default:
		PUT_LIT(b, ",\"gauge\":{\"dataPoints\":[");
		break;
	}
}

/* Opens a data point: attributes and times. A zero start time is left out (gauges). */
static void point_begin(struct jbuf *b, const struct otlp_attr *attrs, size_t n_attrs,
			uint64_t start_unix_nano, uint64_t time_unix_nano)
{
	sep(b);
	jbuf_putc(b, '{');
	put_attrs_field(b, attrs, n_attrs);
	if (start_unix_nano) {
		sep(b);
		PUT_LIT(b, "\"startTimeUnixNano\":");
		jbuf_u64_quoted(b, start_unix_nano);
	}
	sep(b);
	PUT_LIT(b, "\"timeUnixNano\":");
	jbuf_u64_quoted(b, time_unix_nano);
}

void otlp_point_int(struct jbuf *b, const struct otlp_attr *attrs, size_t n_attrs,
		    uint64_t start_unix_nano, uint64_t time_unix_nano, int64_t value)
{
	point_begin(b, attrs, n_attrs, start_unix_nano, time_unix_nano);
	PUT_LIT(b, ",\"asInt\":");
	jbuf_i64_quoted(b, value);
	jbuf_putc(b, '}');
}

void otlp_point_double(struct jbuf *b, const struct otlp_attr *attrs, size_t n_attrs,
		       uint64_t start_unix_nano, uint64_t time_unix_nano, double value)
{
	point_begin(b, attrs, n_attrs, start_unix_nano, time_unix_nano);
	PUT_LIT(b, ",\"asDouble\":");
	jbuf_double(b, value);
	jbuf_putc(b, '}');
}

void otlp_point_histogram(struct jbuf *b, const struct otlp_attr *attrs, size_t n_attrs,
			  uint64_t start_unix_nano, uint64_t time_unix_nano,
			  const struct otlp_histogram_point *h)
{
	point_begin(b, attrs, n_attrs, start_unix_nano, time_unix_nano);
	PUT_LIT(b, ",\"count\":");
	jbuf_u64_quoted(b, h->count);
	PUT_LIT(b, ",\"sum\":");
	jbuf_double(b, h->sum);
	if (h->counts) {
		PUT_LIT(b, ",\"bucketCounts\":[");
		for (size_t i = 0; i <= h->n_bounds; i++) {
			if (i)
				jbuf_putc(b, ',');
			jbuf_u64_quoted(b, h->counts[i]);
		}
		PUT_LIT(b, "],\"explicitBounds\":[");
		for (size_t i = 0; i < h->n_bounds; i++) {
			if (i)
				jbuf_putc(b, ',');
			jbuf_double(b, h->bounds[i]);
		}
		jbuf_putc(b, ']');
	}
	if (h->has_min_max) {
		PUT_LIT(b, ",\"min\":");
		jbuf_double(b, h->min);
		PUT_LIT(b, ",\"max\":");
		jbuf_double(b, h->max);
	}
	jbuf_putc(b, '}');
}

void otlp_metric_end(struct jbuf *b)
{
	PUT_LIT(b, "]}}");
}

void otlp_metrics_resource_end(struct jbuf *b)
{
	PUT_LIT(b, "]}]}");
}

void otlp_metrics_end(struct jbuf *b)
{
	PUT_LIT(b, "]}");
}

/* ---- metrics through the emitter ---------------------------------------- */

static struct jbuf *je_buf(struct otlp_metrics_emitter *e)
{
	return container_of(e, struct otlp_json_emitter, emitter)->b;
}

static void je_begin(struct otlp_metrics_emitter *e)
{
	otlp_metrics_begin(je_buf(e));
}

static void je_resource_begin(struct otlp_metrics_emitter *e, const struct otlp_resource *res)
{
	otlp_metrics_resource_begin(je_buf(e), res);
}

static void je_metric_begin(struct otlp_metrics_emitter *e, const struct otlp_metric_desc *desc)
{
	otlp_metric_begin(je_buf(e), desc);
}

static void je_point_int(struct otlp_metrics_emitter *e, const struct otlp_attr *attrs,
			 size_t n_attrs, uint64_t start_unix_nano, uint64_t time_unix_nano,
			 int64_t value)
{
	otlp_point_int(je_buf(e), attrs, n_attrs, start_unix_nano, time_unix_nano, value);
}

static void je_point_double(struct otlp_metrics_emitter *e, const struct otlp_attr *attrs,
			    size_t n_attrs, uint64_t start_unix_nano, uint64_t time_unix_nano,
			    double value)
{
	otlp_point_double(je_buf(e), attrs, n_attrs, start_unix_nano, time_unix_nano, value);
}

static void je_point_histogram(struct otlp_metrics_emitter *e, const struct otlp_attr *attrs,
			       size_t n_attrs, uint64_t start_unix_nano, uint64_t time_unix_nano,
			       const struct otlp_histogram_point *h)
{
	otlp_point_histogram(je_buf(e), attrs, n_attrs, start_unix_nano, time_unix_nano, h);
}

static void je_metric_end(struct otlp_metrics_emitter *e)
{
	otlp_metric_end(je_buf(e));
}

static void je_resource_end(struct otlp_metrics_emitter *e)
{
	otlp_metrics_resource_end(je_buf(e));
}

static void je_end(struct otlp_metrics_emitter *e)
{
	otlp_metrics_end(je_buf(e));
}

static const struct otlp_metrics_emitter_ops json_ops = {
	.begin = je_begin,
	.resource_begin = je_resource_begin,
	.metric_begin = je_metric_begin,
	.point_int = je_point_int,
	.point_double = je_point_double,
	.point_histogram = je_point_histogram,
	.metric_end = je_metric_end,
	.resource_end = je_resource_end,
	.end = je_end,
};

void otlp_json_emitter_init(struct otlp_json_emitter *je, struct jbuf *b)
{
	je->emitter.ops = &json_ops;
	je->b = b;
}

/* ---- traces -------------------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return !acc;
}

void otlp_traces_begin(struct jbuf *b)
{
	PUT_LIT(b, "{\"resourceSpans\":[");
}

void otlp_traces_resource_begin(struct jbuf *b, const struct otlp_resource *res)
{
	put_resource_and_scope(b, res, "scopeSpans", "spans");
}

void otlp_span(struct jbuf *b, const struct otlp_span *span)
{
	sep(b);
	PUT_LIT(b, "{\"traceId\":");
	jbuf_hex(b, span->trace_id, sizeof(span->trace_id));
	PUT_LIT(b, ",\"spanId\":");
	jbuf_hex(b, span->span_id, sizeof(span->span_id));
	if (span->trace_state && *span->trace_state) {
		PUT_LIT(b, ",\"traceState\":");
		put_str(b, span->trace_state);
	}
	if (!all_zero(span->parent_span_id, sizeof(span->parent_span_id))) {
		PUT_LIT(b, ",\"parentSpanId\":");
		jbuf_hex(b, span->parent_span_id, sizeof(span->parent_span_id));
	}
	PUT_LIT(b, ",\"name\":");
	put_str(b, span->name);
	PUT_LIT(b, ",\"kind\":");
	jbuf_u64(b, (uint64_t)span->kind);
	PUT_LIT(b, ",\"startTimeUnixNano\":");
	jbuf_u64_quoted(b, span->start_unix_nano);
	PUT_LIT(b, ",\"endTimeUnixNano\":");
	jbuf_u64_quoted(b, span->end_unix_nano);
	put_attrs_field(b, span->attrs, span->n_attrs);
	if (span->status != OTLP_STATUS_UNSET) {
		PUT_LIT(b, ",\"status\":{\"code\":");
		jbuf_u64(b, (uint64_t)span->status);
		if (span->status_message) {
			PUT_LIT(b, ",\"message\":");
			put_str(b, span->status_message);
		}
		jbuf_putc(b, '}');
	}
	jbuf_putc(b, '}');
}

void otlp_traces_resource_end(struct jbuf *b)
{
	PUT_LIT(b, "]}]}");
}

void otlp_traces_end(struct jbuf *b)
{
	PUT_LIT(b, "]}");
}
