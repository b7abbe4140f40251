// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the OTLP encoder: arbitrary bytes become service
 * names, attribute keys and values, span names, trace states and status
 * messages; every body must parse as strict JSON and be valid UTF-8.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc -Ibpf \
 *     $(pkg-config --cflags --libs json-c) tests/fuzz/fuzz_otlp.c src/otlp.c src/jbuf.c \
 *     -o /tmp/fuzz_otlp && /tmp/fuzz_otlp -max_total_time=30
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PIECES 8

static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t need;
		uint8_t lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			lo = c == 0xe0 ? 0xa0 : 0x80;
			hi = c == 0xed ? 0x9f : 0xbf;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			lo = c == 0xf0 ? 0x90 : 0x80;
			hi = c == 0xf4 ? 0x8f : 0xbf;
		} else {
			return false;
		}
		if (n - i - 1 < need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if (s[i + k] < lo || s[i + k] > hi)
				return false;
			lo = 0x80;
			hi = 0xbf;
		}
		i += need + 1;
	}
	return true;
}

static void check(struct jbuf *b, const char *what, json_type want)
{
	struct json_tokener *tok;
	json_object *obj;

	if (b->failed)
		return;
	if (!utf8_valid((const uint8_t *)b->data, b->len)) {
		fprintf(stderr, "%s: invalid UTF-8 in body\n", what);
		abort();
	}
	/* The encoder writes no whitespace, and json-c lets raw control bytes through. */
	for (size_t i = 0; i < b->len; i++) {
		if ((uint8_t)b->data[i] < 0x20) {
			fprintf(stderr, "%s: raw control byte 0x%02x at %zu\n", what,
				(unsigned int)(uint8_t)b->data[i], i);
			abort();
		}
	}
	if (!jbuf_cstr(b))
		return;
	tok = json_tokener_new();
	if (!tok)
		return;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, b->data, (int)b->len + 1);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) < b->len || !json_object_is_type(obj, want)) {
		fprintf(stderr, "%s: body does not parse: %s\n%.*s\n", what,
			json_tokener_error_desc(json_tokener_get_error(tok)), (int)b->len, b->data);
		abort();
	}
	json_object_put(obj);
	json_tokener_free(tok);
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
			.bounds = bounds, .n_bounds = 2, .counts = counts,
			.count = lens[0] + lens[1] + lens[2], .sum = (double)size / 3.0,
			.has_min_max = sel & 4, .min = 0, .max = (double)size,
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

		jbuf_init(&b);
		otlp_metrics_begin(&b);
		for (int r = 0; r < 1 + (sel >> 7); r++) {
			otlp_metrics_resource_begin(&b, &res);
			otlp_metric_begin(&b, &descs[0]);
			otlp_point_int(&b, attrs, 4, 1, 2, (int64_t)size);
			otlp_point_int(&b, NULL, 0, 0, 2, INT64_MIN);
			otlp_metric_end(&b);
			otlp_metric_begin(&b, &descs[1]);
			otlp_point_double(&b, attrs + 1, 3, 0, 2, (double)sel / 7.0);
			otlp_metric_end(&b);
			otlp_metric_begin(&b, &descs[2]);
			otlp_point_histogram(&b, attrs, 2, 1, 2, &h);
			otlp_metric_end(&b);
			otlp_metrics_resource_end(&b);
		}
		otlp_metrics_end(&b);
		check(&b, "metrics", json_type_object);

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
