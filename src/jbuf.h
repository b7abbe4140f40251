/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growing byte buffer with the few JSON writers the OTLP encoder needs.
 * Strings from the kernel and /proc are untrusted bytes: jbuf_json_string()
 * always writes valid UTF-8 JSON (invalid sequences become U+FFFD, control
 * characters are escaped) and cuts the input at max_bytes.
 * Allocation failure is sticky: jbuf.failed is set and later writes are no-ops.
 */
#ifndef TCPOTEL_JBUF_H
#define TCPOTEL_JBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jbuf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
};

void jbuf_init(struct jbuf *b);
void jbuf_free(struct jbuf *b);
void jbuf_reset(struct jbuf *b); /* len = 0, clears failed, keeps the memory */
/* The slow path of jbuf_reserve(): room for `extra` more bytes, or failed. */
bool jbuf_grow(struct jbuf *b, size_t extra);
void jbuf_puts(struct jbuf *b, const char *s); /* raw, no escaping */

/*
 * Inline, so that the encoder's many short writes of known length (JSON
 * keys and punctuation) compile to a compare and a few stores, with no call.
 */
static inline bool jbuf_reserve(struct jbuf *b, size_t extra)
{
	if (__builtin_expect(!b->failed && b->cap - b->len > extra, 1))
		return true;
	return jbuf_grow(b, extra);
}

static inline void jbuf_put(struct jbuf *b, const void *data, size_t len)
{
	if (__builtin_expect(!jbuf_reserve(b, len), 0))
		return;
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

static inline void jbuf_putc(struct jbuf *b, char c)
{
	if (__builtin_expect(!jbuf_reserve(b, 1), 0))
		return;
	b->data[b->len++] = c;
}
/* data NUL-terminated (the NUL not counted in len); NULL after an allocation failure. */
const char *jbuf_cstr(struct jbuf *b);
/* "..." with escaping and UTF-8 repair, at most max_bytes of input read. */
void jbuf_json_string(struct jbuf *b, const char *s, size_t max_bytes);
void jbuf_json_stringn(struct jbuf *b, const char *s, size_t len);
void jbuf_u64(struct jbuf *b, uint64_t v); /* bare decimal */
void jbuf_u64_quoted(struct jbuf *b, uint64_t v); /* "decimal" (OTLP 64-bit ints) */
void jbuf_i64_quoted(struct jbuf *b, int64_t v);
void jbuf_double(struct jbuf *b, double v); /* shortest round-trip form; NaN/Inf as strings */
void jbuf_hex(struct jbuf *b, const uint8_t *bytes, size_t n); /* "lowercase hex" */
/*
 * The UTF-8 rule of jbuf_json_string, for other writers of untrusted text:
 * the length of the well-formed sequence at s (n bytes available), or 0 when
 * it is ill-formed; then *sub is how many bytes one U+FFFD replaces, and
 * *truncated tells whether the sequence was only cut short by the end of s.
 */
size_t jbuf_utf8_seq(const char *s, size_t n, size_t *sub, bool *truncated);

#endif
