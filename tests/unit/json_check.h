/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checks of what the encoder writes, shared by the unit tests and the
 * OTLP fuzz target: strict UTF-8, no raw control bytes, strict JSON.
 */
#ifndef TCPOTEL_JSON_CHECK_H
#define TCPOTEL_JSON_CHECK_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jbuf.h"

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
static inline bool utf8_valid(const uint8_t *s, size_t n)
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

/* json-c takes raw control characters inside strings; JSON does not. */
static inline bool has_raw_control(const struct jbuf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if ((uint8_t)b->data[i] < 0x20)
			return true;
	return false;
}

/* Parses b strictly with json-c; returns the object (caller puts) or NULL. */
static inline json_object *parse_strict(struct jbuf *b)
{
	struct json_tokener *tok;
	json_object *obj;

	/* The terminating NUL ends a top-level number; a NUL inside is an error. */
	if (!jbuf_cstr(b) || has_raw_control(b))
		return NULL;
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, b->data, (int)b->len + 1);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) < b->len) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

#endif
