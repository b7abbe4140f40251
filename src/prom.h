/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics -> Prometheus text exposition format 0.0.4, written from the metric
 * store through the same emitter as the OTLP body (otlp.h), with the
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
 * rather than written twice, which the format forbids. Label values are
 * UTF-8, repaired and cut as the JSON writer does (jbuf.h).
 */
#ifndef TCPOTEL_PROM_H
#define TCPOTEL_PROM_H

#include <stdbool.h>
#include <stddef.h>

#include "jbuf.h"

struct otlp_metrics_emitter;

/* The Content-Type of what a prom_writer writes. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What an OTLP metric is, as far as its Prometheus name and type go. */
enum prom_source {
	PROM_SRC_GAUGE,
	PROM_SRC_SUM, /* non-monotonic: a Prometheus gauge */
	PROM_SRC_MONOTONIC_SUM, /* a counter: "_total" */
	PROM_SRC_HISTOGRAM,
};

/*
 * Holds one body's families and series between the emitter's begin and end,
 * then its text; the memory is kept for the next body. One thread at a time.
 */
struct prom_writer;

struct prom_writer *prom_writer__new(void);
void prom_writer__free(struct prom_writer *w);
/* The emitter: each body written through it (begin ... end) replaces the text. */
struct otlp_metrics_emitter *prom_writer__emitter(struct prom_writer *w);
/*
 * The text of the last body, NUL-terminated, *len its length; NULL when
 * writing it ran out of memory. Valid until the next begin.
 */
const char *prom_writer__text(struct prom_writer *w, size_t *len);

/* The Prometheus name of an OTLP metric (appended to out, no NUL written). */
void prom_metric_name(struct jbuf *out, const char *name, const char *unit, enum prom_source src);
/* A label name made valid, the Collector's way. */
void prom_label_name(struct jbuf *out, const char *key);
/* A sample value as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it ("+Inf", "NaN"). */
void prom_format_double(char *buf, size_t size, double v);

#endif
