// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the OTLP encoder: arbitrary bytes become service
 * names, attribute keys and values, span names, trace states and status
 * messages; every body must parse as strict JSON and be valid UTF-8. The
 * metrics body goes through the Prometheus writer too (the same emitter):
 * its text must be valid UTF-8, with every line a sample, HELP or TYPE.
 *
 *   make fuzz   (builds this target and fuzz_config, runs each for FUZZ_TIME seconds)
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_check.h"
#include "otlp.h"
#include "prom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PIECES 8

static void check(struct jbuf *b, const char *what, json_type want)
{
	json_object *obj;

	if (b->failed)
		return;
	if (!utf8_valid((const uint8_t *)b->data, b->len)) {
		fprintf(stderr, "%s: invalid UTF-8 in body\n", what);
		abort();
	}
	/* The encoder writes no whitespace, and json-c lets raw control bytes through. */
	if (has_raw_control(b)) {
		fprintf(stderr, "%s: raw control byte in body\n", what);
		abort();
	}
	obj = parse_strict(b);
	if (!obj || !json_object_is_type(obj, want)) {
		fprintf(stderr, "%s: body does not parse\n%.*s\n", what, (int)b->len, b->data);
		abort();
	}
	json_object_put(obj);
}

/* Prometheus text: strict UTF-8, and no raw newline inside a label value or HELP. */
static void check_prom(struct prom_writer *w)
{
	const char *text, *p;
	size_t len;

	text = prom_writer__text(w, &len);
	if (!text)
		return; /* out of memory */
	if (!utf8_valid((const uint8_t *)text, len)) {
		fprintf(stderr, "prometheus: invalid UTF-8 in text\n");
		abort();
	}
	for (p = text; p < text + len; p = strchr(p, '\n') + 1) {
		if (!strncmp(p, "# HELP ", 7) || !strncmp(p, "# TYPE ", 7) || *p == '_' ||
		    (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
			continue;
		fprintf(stderr, "prometheus: a line that is not a sample, HELP or TYPE\n%s\n", p);
		abort();
	}
}

/* The same metrics body, through either writer. */
static void emit_metrics(struct otlp_metrics_emitter *e, int n_res, const struct otlp_resource *res,
			 const struct otlp_metric_desc *descs, const struct otlp_attr *attrs,
			 const struct otlp_histogram_point *h, size_t size, uint8_t sel)
{
	const struct otlp_metrics_emitter_ops *o = e->ops;

	o->begin(e);
	for (int r = 0; r < n_res; r++) {
		o->resource_begin(e, res);
		o->metric_begin(e, &descs[0]);
		o->point_int(e, attrs, 4, 1, 2, (int64_t)size);
		o->point_int(e, NULL, 0, 0, 2, INT64_MIN);
		o->metric_end(e);
		o->metric_begin(e, &descs[1]);
		o->point_double(e, attrs + 1, 3, 0, 2, (double)sel / 7.0);
		o->metric_end(e);
		o->metric_begin(e, &descs[2]);
		o->point_histogram(e, attrs, 2, 1, 2, h);
		o->metric_end(e);
		o->resource_end(e);
	}
	o->end(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Pieces are split at 0xff 0x00 so that they may hold any other byte, NUL included. */
	char *pieces[MAX_PIECES];
	size_t lens[MAX_PIECES];
	size_t n = 0, start = 0;
	struct jbuf b;
	uint8_t sel = size ? data[0] : 0;

	for (size_t i = 1; i <= size && n < MAX_PIECES; i++) {
		if (i == size || (i + 1 < size && data[i] == 0xff && data[i + 1] == 0x00)) {
			size_t from = start ? start : 1;
			size_t len = i > from ? i - from : 0;

			pieces[n] = malloc(len + 1);
			if (!pieces[n])
				goto out;
			memcpy(pieces[n], data + from, len);
			pieces[n][len] = '\0';
			lens[n] = len;
			n++;
			start = i + 2;
			i++;
		}
	}
	for (size_t i = n; i < MAX_PIECES; i++) {
		pieces[i] = NULL;
		lens[i] = 0;
	}

	{
		const struct otlp_attr rattrs[] = {
			OTLP_ATTR_STR("service.name", pieces[0] ? pieces[0] : ""),
			OTLP_ATTR_STR(pieces[1] ? pieces[1] : "k", pieces[2]),
			OTLP_ATTR_INT("process.pid", (int64_t)size * (sel & 1 ? -1 : 1)),
		};
		const struct otlp_resource res = { rattrs, 3 };
		const struct otlp_attr attrs[] = {
			OTLP_ATTR_STR("peer.service", pieces[3]),
			OTLP_ATTR_STR(pieces[4], pieces[5]),
			OTLP_ATTR_DOUBLE("d", (double)lens[0] / ((double)lens[1] - 0.5)),
			OTLP_ATTR_BOOL("b", sel & 2),
		};
		const double bounds[] = { 0.001, 1.0 / (double)(sel | 1) };
		const uint64_t counts[] = { lens[0], lens[1], lens[2] };
		const struct otlp_histogram_point h = {
			.bounds = bounds,
			.n_bounds = 2,
			.counts = counts,
			.count = lens[0] + lens[1] + lens[2],
			.sum = (double)size / 3.0,
			.has_min_max = sel & 4,
			.min = 0,
			.max = (double)size,
		};
		const struct otlp_metric_desc descs[] = {
			{ pieces[6], pieces[7], pieces[0], OTLP_SUM_MONOTONIC, false },
			{ pieces[1], NULL, NULL, OTLP_GAUGE, true },
			{ "h", "s", pieces[2], OTLP_HISTOGRAM, false },
		};
		struct otlp_span span = {
			.trace_id = { sel, 1 },
			.span_id = { 2, sel },
			.parent_span_id = { (uint8_t)(sel & 8) },
			.trace_state = pieces[6],
			.name = pieces[7],
			.kind = sel & 16 ? OTLP_SPAN_KIND_SERVER : OTLP_SPAN_KIND_CLIENT,
			.start_unix_nano = 1,
			.end_unix_nano = UINT64_MAX,
			.attrs = attrs,
			.n_attrs = 4,
			.status = (enum otlp_status_code)(sel % 3),
			.status_message = pieces[3],
		};

		struct prom_writer *w = prom_writer__new();
		struct otlp_json_emitter je;

		jbuf_init(&b);
		otlp_json_emitter_init(&je, &b);
		emit_metrics(&je.emitter, 1 + (sel >> 7), &res, descs, attrs, &h, size, sel);
		check(&b, "metrics", json_type_object);
		if (w) {
			emit_metrics(prom_writer__emitter(w), 1 + (sel >> 7), &res, descs, attrs,
				     &h, size, sel);
			check_prom(w);
			prom_writer__free(w);
		}

		jbuf_reset(&b);
		otlp_traces_begin(&b);
		for (int r = 0; r < 1 + (sel >> 7); r++) {
			otlp_traces_resource_begin(&b, &res);
			otlp_span(&b, &span);
			otlp_span(&b, &span);
			otlp_traces_resource_end(&b);
		}
		otlp_traces_end(&b);
		check(&b, "traces", json_type_object);

		/* The explicit-length writer sees the raw input, NULs and all. */
		jbuf_reset(&b);
		jbuf_json_stringn(&b, (const char *)data, size);
		check(&b, "stringn", json_type_string);
		jbuf_free(&b);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(pieces[i]);
	return 0;
}
