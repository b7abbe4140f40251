/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OTLP/HTTP JSON metrics -> Prometheus text exposition format 0.0.4, with the
 * OpenTelemetry Collector's prometheus exporter translation (the default
 * "underscore escaping with suffixes" strategy):
 *
 *   - names: split on every character that is not a letter or digit, joined
 *     with '_'; the unit appended when it is not already a token ("By" ->
 *     bytes, "s" -> seconds, ...; "X/Y" -> X_per_Y; units in braces such as
 *     "{connection}" are annotations and add nothing); "_total" for
 *     monotonic sums, "_ratio" for gauges of unit "1"; a leading digit gets
 *     a leading '_';
 *   - types: monotonic sum -> counter, other sums and gauges -> gauge,
 *     histogram -> _bucket{le} (cumulative, "+Inf" = count), _sum, _count;
 *   - labels: point attributes with every character outside [A-Za-z0-9_]
 *     made '_' ("key_" before a leading digit, "key" before a leading '_'),
 *     otel_scope_name and otel_scope_version, job = [service.namespace/]
 *     service.name, instance = service.instance.id; the other resource
 *     attributes go to one target_info series per resource.
 *
 * Each family is written once (HELP, TYPE, then all its series), families
 * sorted by name. Where two resources give the very same series (several
 * processes of one service, no service.instance.id) the series are added up
 * rather than written twice, which the format forbids.
 */
#ifndef TCPOTEL_PROM_H
#define TCPOTEL_PROM_H

#include <stdbool.h>
#include <stddef.h>

#include "jbuf.h"

/* The Content-Type of what prom_from_otlp_metrics() writes. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What an OTLP metric is, as far as its Prometheus name and type go. */
enum prom_source {
	PROM_SRC_GAUGE,
	PROM_SRC_SUM, /* non-monotonic: a Prometheus gauge */
	PROM_SRC_MONOTONIC_SUM, /* a counter: "_total" */
	PROM_SRC_HISTOGRAM,
};

/*
 * Converts one ExportMetricsServiceRequest (OTLP JSON) and appends the text
 * to `out`. Returns 0, -EINVAL when the body is not OTLP JSON (nothing
 * appended), or -ENOMEM.
 */
int prom_from_otlp_metrics(const char *otlp_json, size_t len, struct jbuf *out);

/* The Prometheus name of an OTLP metric (appended to out, no NUL written). */
void prom_metric_name(struct jbuf *out, const char *name, const char *unit, enum prom_source src);
/* A label name made valid, the Collector's way. */
void prom_label_name(struct jbuf *out, const char *key);
/* A sample value as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it ("+Inf", "NaN"). */
void prom_format_double(char *buf, size_t size, double v);

#endif
