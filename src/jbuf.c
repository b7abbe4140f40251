// SPDX-License-Identifier: Apache-2.0
/*
 * Growing buffer and JSON writers for the OTLP encoder. This is on the span
 * export path (hundreds of thousands of spans a second), so writers reserve
 * once and then store bytes without further checks, integers and hex go
 * through digit tables, and plain ASCII strings are copied eight bytes at a
 * time. Only doubles fall back to snprintf (metric points, not spans).
 */
#include "jbuf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define JBUF_MIN_CAP 4096
/* Input bytes escaped per reservation; one input byte yields at most 6 output bytes. */
#define JBUF_STR_CHUNK 4096
#define JBUF_ESC_MAX   6

void jbuf_init(struct jbuf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->failed = false;
}

void jbuf_free(struct jbuf *b)
{
	if (!b)
		return;
	free(b->data);
	jbuf_init(b);
}

void jbuf_reset(struct jbuf *b)
{
	b->len = 0;
	b->failed = false;
}

bool jbuf_grow(struct jbuf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->failed)
		return false;
	if (extra > SIZE_MAX - b->len - 1)
		goto fail;
	need = b->len + extra + 1; /* room for jbuf_cstr()'s terminator */
	cap = b->cap ? b->cap : JBUF_MIN_CAP;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	p = realloc(b->data, cap);
	if (!p)
		goto fail;
	b->data = p;
	b->cap = cap;
	return true;
fail:
	b->failed = true;
	errno = ENOMEM;
	return false;
}

void jbuf_puts(struct jbuf *b, const char *s)
{
	jbuf_put(b, s, strlen(s));
}

const char *jbuf_cstr(struct jbuf *b)
{
	if (!b->data && !jbuf_grow(b, 0))
		return NULL;
	if (b->failed)
		return NULL;
	/* jbuf_grow() always keeps one spare byte past len. */
	b->data[b->len] = '\0';
	return b->data;
}

/* ---- strings ------------------------------------------------------------- */

/* 0: copied as is; 1: escaped; 2: first byte of a multibyte sequence (or invalid). */
static const uint8_t char_class[256] = {
	[0x00 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 1, [0x80 ... 0xff] = 2,
};

static const char hex_digits[] = "0123456789abcdef";

#define ONES	       0x0101010101010101ULL
#define HIGHS	       0x8080808080808080ULL
#define HAS_ZERO(v)    (((v)-ONES) & ~(v)&HIGHS)
#define HAS_LESS(v, n) (((v)-ONES * (n)) & ~(v)&HIGHS)

/* True when all 8 bytes are printable ASCII other than '"' and '\\'. */
static inline bool plain8(uint64_t x)
{
	return !((x & HIGHS) | HAS_LESS(x, 0x20) | HAS_ZERO(x ^ (ONES * '"')) |
		 HAS_ZERO(x ^ (ONES * '\\')) | HAS_ZERO(x ^ (ONES * 0x7f)));
}

static inline char *put_escape(char *o, uint8_t c)
{
	*o++ = '\\';
	switch (c) {
	case '"':
		*o++ = '"';
		break;
	case '\\':
		*o++ = '\\';
		break;
	case '\n':
		*o++ = 'n';
		break;
	case '\r':
		*o++ = 'r';
		break;
	case '\t':
		*o++ = 't';
		break;
	case '\b':
		*o++ = 'b';
		break;
	case '\f':
		*o++ = 'f';
		break;
	default:
		*o++ = 'u';
		*o++ = '0';
		*o++ = '0';
		*o++ = hex_digits[c >> 4];
		*o++ = hex_digits[c & 0xf];
		break;
	}
	return o;
}

static inline char *put_replacement(char *o)
{
	*o++ = (char)0xef;
	*o++ = (char)0xbf;
	*o++ = (char)0xbd;
	return o;
}

/*
 * Length of the well-formed UTF-8 sequence at p (at most n bytes available),
 * or 0 when ill-formed; *sub gets the length of the maximal ill-formed subpart
 * (Unicode's "U+FFFD substitution of maximal subparts"), and *truncated is set
 * when the sequence was only cut short by the end of the input.
 */
static inline size_t utf8_seq(const uint8_t *p, size_t n, size_t *sub, bool *truncated)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	*truncated = false;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		*sub = 1;
		return 0;
	}
	for (i = 1; i < need; i++) {
		if (i >= n) {
			*truncated = true;
			*sub = i;
			return 0;
		}
		if (p[i] < lo || p[i] > hi) {
			*sub = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

size_t jbuf_utf8_seq(const char *s, size_t n, size_t *sub, bool *truncated)
{
	return utf8_seq((const uint8_t *)s, n, sub, truncated);
}

/*
 * Escapes n bytes. When cut is set the input was shortened by the caller's
 * limit, so a sequence left incomplete at the end is dropped rather than
 * replaced: the output never ends in half a character either way.
 */
static void json_escape(struct jbuf *b, const uint8_t *s, size_t n, bool cut)
{
	size_t i = 0;

	if (unlikely(!jbuf_reserve(b, 2)))
		return;
	b->data[b->len++] = '"';
	while (i < n) {
		size_t end = n - i > JBUF_STR_CHUNK ? i + JBUF_STR_CHUNK : n;
		char *o;

		/* A sequence that starts before end may read 3 bytes past it. */
		if (unlikely(!jbuf_reserve(b, (end - i) * JBUF_ESC_MAX + 8)))
			return;
		o = b->data + b->len;
		while (i < end) {
			uint8_t c;

			while (end - i >= 8) {
				uint64_t x;

				memcpy(&x, s + i, 8);
				if (!plain8(x))
					break;
				memcpy(o, &x, 8);
				o += 8;
				i += 8;
			}
			if (i >= end)
				break;
			c = s[i];
			switch (char_class[c]) {
			case 0:
				*o++ = (char)c;
				i++;
				break;
			case 1:
				o = put_escape(o, c);
				i++;
				break;
			default: {
				size_t len, sub;
				bool truncated;

				len = utf8_seq(s + i, n - i, &sub, &truncated);
				if (len) {
					memcpy(o, s + i, len);
					o += len;
					i += len;
				} else if (truncated && cut) {
					i = n;
				} else {
					o = put_replacement(o);
					i += sub;
				}
				break;
			}
			}
		}
		b->len = (size_t)(o - b->data);
	}
	b->data[b->len++] = '"';
}

/* Attribute keys and most values are short printable ASCII: copied as they are. */
#define JBUF_SHORT 64

static bool plain_short(const uint8_t *s, size_t n)
{
	size_t i = 0;

	for (; n - i >= 8; i += 8) {
		uint64_t x;

		memcpy(&x, s + i, 8);
		if (!plain8(x))
			return false;
	}
	for (; i < n; i++)
		if (char_class[s[i]])
			return false;
	return true;
}

void jbuf_json_string(struct jbuf *b, const char *s, size_t max_bytes)
{
	size_t n;

	if (!s) {
		jbuf_put(b, "\"\"", 2);
		return;
	}
	/* s[max_bytes] may not be ours to read: a string of exactly max_bytes counts as cut. */
	n = strnlen(s, max_bytes);
	if (n < JBUF_SHORT && n < max_bytes && plain_short((const uint8_t *)s, n)) {
		if (unlikely(!jbuf_reserve(b, n + 2)))
			return;
		b->data[b->len] = '"';
		memcpy(b->data + b->len + 1, s, n);
		b->data[b->len + n + 1] = '"';
		b->len += n + 2;
		return;
	}
	json_escape(b, (const uint8_t *)s, n, n == max_bytes);
}

void jbuf_json_stringn(struct jbuf *b, const char *s, size_t len)
{
	if (!s)
		len = 0;
	json_escape(b, (const uint8_t *)s, len, false);
}

/* ---- numbers ------------------------------------------------------------- */

static const char digit_pairs[201] = "00010203040506070809"
				     "10111213141516171819"
				     "20212223242526272829"
				     "30313233343536373839"
				     "40414243444546474849"
				     "50515253545556575859"
				     "60616263646566676869"
				     "70717273747576777879"
				     "80818283848586878889"
				     "90919293949596979899";

/* Writes v in decimal ending just before end; returns the first digit. */
static inline char *u64_digits(char *end, uint64_t v)
{
	char *p = end;

	while (v >= 100) {
		unsigned int r = (unsigned int)(v % 100);

		v /= 100;
		p -= 2;
		memcpy(p, digit_pairs + 2 * r, 2);
	}
	if (v >= 10) {
		p -= 2;
		memcpy(p, digit_pairs + 2 * v, 2);
	} else {
		*--p = (char)('0' + v);
	}
	return p;
}

/* Longest output: '"' '-' 20 digits '"'. */
#define NUM_MAX 24

static inline void put_int(struct jbuf *b, uint64_t mag, bool neg, bool quoted)
{
	char tmp[NUM_MAX], *end = tmp + sizeof(tmp), *p = end;

	if (quoted)
		*--p = '"';
	p = u64_digits(p, mag);
	if (neg)
		*--p = '-';
	if (quoted)
		*--p = '"';
	jbuf_put(b, p, (size_t)(end - p));
}

void jbuf_u64(struct jbuf *b, uint64_t v)
{
	put_int(b, v, false, false);
}

void jbuf_u64_quoted(struct jbuf *b, uint64_t v)
{
	put_int(b, v, false, true);
}

void jbuf_i64_quoted(struct jbuf *b, int64_t v)
{
	/* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
	uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	put_int(b, mag, v < 0, true);
}

/* n * 10^-9 as a decimal, trailing zeros cut; n is not a multiple of 10^9. */
static void put_nanos(struct jbuf *b, uint64_t n, bool neg)
{
	char tmp[NUM_MAX + 12], *end = tmp + sizeof(tmp), *p;
	uint32_t frac = (uint32_t)(n % 1000000000);

	while (frac % 10 == 0)
		frac /= 10, end--;
	p = end;
	for (char *stop = tmp + sizeof(tmp) - 9; p > stop; frac /= 10)
		*--p = (char)('0' + frac % 10);
	*--p = '.';
	p = u64_digits(p, n / 1000000000);
	if (neg)
		*--p = '-';
	jbuf_put(b, p, (size_t)(end - p));
}

void jbuf_double(struct jbuf *b, double v)
{
	char tmp[40];
	int n = 0;

	if (isnan(v)) {
		jbuf_puts(b, "\"NaN\"");
		return;
	}
	if (isinf(v)) {
		jbuf_puts(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
		return;
	}
	/* Whole numbers (counts, byte totals, bounds) skip printf entirely. */
	if (v == floor(v) && fabs(v) < 9007199254740992.0 && !(v == 0 && signbit(v))) {
		put_int(b, (uint64_t)fabs(v), v < 0, false);
		return;
	}
	/* Decimals of at most 9 places (seconds from ns or us counts) skip printf
	 * too: n / 1e9 is correctly rounded, so when it gives v back, so does
	 * reading the decimal n * 10^-9. */
	if (v != 0 && fabs(v) < 9e6) {
		uint64_t nanos = (uint64_t)llround(fabs(v) * 1e9);

		if ((double)nanos / 1e9 == fabs(v)) {
			put_nanos(b, nanos, v < 0);
			return;
		}
	}
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (prec == 17 || strtod(tmp, NULL) == v)
			break;
	}
	if (n <= 0 || (size_t)n >= sizeof(tmp))
		return;
	/* A locale with a decimal comma must not leak into JSON. */
	for (int i = 0; i < n; i++)
		if (tmp[i] == ',')
			tmp[i] = '.';
	jbuf_put(b, tmp, (size_t)n);
}

static const char hex_pairs[513] =
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
	"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
	"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

void jbuf_hex(struct jbuf *b, const uint8_t *bytes, size_t n)
{
	char *o;

	if (unlikely(n > (SIZE_MAX - 2) / 2 || !jbuf_reserve(b, 2 * n + 2)))
		return;
	o = b->data + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		memcpy(o, hex_pairs + 2 * bytes[i], 2);
		o += 2;
	}
	*o++ = '"';
	b->len = (size_t)(o - b->data);
}
