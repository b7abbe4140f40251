// SPDX-License-Identifier: Apache-2.0
#include <float.h>
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "jbuf.h"
#include "json_check.h"
#include "test.h"

static const char *str_of(struct jbuf *b, const char *s, size_t max)
{
	jbuf_reset(b);
	jbuf_json_string(b, s, max);
	return jbuf_cstr(b);
}

static const char *strn_of(struct jbuf *b, const char *s, size_t n)
{
	jbuf_reset(b);
	jbuf_json_stringn(b, s, n);
	return jbuf_cstr(b);
}

TEST(jbuf_put_and_grow)
{
	struct jbuf b;
	char *first;

	jbuf_init(&b);
	if (!ASSERT_STREQ(jbuf_cstr(&b), ""))
		goto out;
	for (int i = 0; i < 10000; i++)
		jbuf_puts(&b, "abc");
	jbuf_putc(&b, '!');
	jbuf_put(&b, "xyz", 2);
	if (!ASSERT_EQ(b.len, 30003) || !ASSERT_FALSE(b.failed))
		goto out;
	if (!ASSERT_TRUE(memcmp(b.data + 29997, "abc!xy", 6) == 0))
		goto out;
	jbuf_cstr(&b); /* after a reallocation: the byte past len was never written */
	ASSERT_EQ(b.data[b.len], 0);
	first = b.data;
	jbuf_reset(&b);
	ASSERT_EQ(b.len, 0);
	ASSERT_TRUE(b.data == first);
	ASSERT_GE(b.cap, 30004);
out:
	jbuf_free(&b);
	ASSERT_TRUE(b.data == NULL);
	jbuf_free(NULL);
}

TEST(jbuf_failure_is_sticky)
{
	struct jbuf b;

	jbuf_init(&b);
	jbuf_puts(&b, "ok");
	b.failed = true;
	jbuf_puts(&b, "more");
	jbuf_json_string(&b, "x", 10);
	jbuf_u64(&b, 5);
	jbuf_double(&b, 1.5);
	jbuf_hex(&b, (const uint8_t *)"ab", 2);
	ASSERT_EQ(b.len, 2);
	ASSERT_FALSE(jbuf_reserve(&b, 1));
	ASSERT_TRUE(jbuf_cstr(&b) == NULL);
	/* An impossible reservation fails without touching memory. */
	jbuf_reset(&b);
	ASSERT_FALSE(jbuf_reserve(&b, SIZE_MAX));
	ASSERT_TRUE(b.failed);
	jbuf_free(&b);
}

TEST(jbuf_integers)
{
	struct jbuf b;
	static const struct {
		uint64_t v;
		const char *s;
	} u[] = {
		{ 0, "0" },
		{ 7, "7" },
		{ 10, "10" },
		{ 99, "99" },
		{ 100, "100" },
		{ 1234567890, "1234567890" },
		{ 1000000000000000000ULL, "1000000000000000000" },
		{ UINT64_MAX, "18446744073709551615" },
	};

	jbuf_init(&b);
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		char q[32];

		jbuf_reset(&b);
		jbuf_u64(&b, u[i].v);
		ASSERT_STREQ(jbuf_cstr(&b), u[i].s);
		jbuf_reset(&b);
		jbuf_u64_quoted(&b, u[i].v);
		snprintf(q, sizeof(q), "\"%s\"", u[i].s);
		ASSERT_STREQ(jbuf_cstr(&b), q);
	}
	jbuf_reset(&b);
	jbuf_i64_quoted(&b, INT64_MIN);
	jbuf_putc(&b, ' ');
	jbuf_i64_quoted(&b, INT64_MAX);
	jbuf_putc(&b, ' ');
	jbuf_i64_quoted(&b, -1);
	jbuf_putc(&b, ' ');
	jbuf_i64_quoted(&b, 0);
	ASSERT_STREQ(jbuf_cstr(&b),
		     "\"-9223372036854775808\" \"9223372036854775807\" \"-1\" \"0\"");
	/* Every power of ten and its neighbours, against printf. */
	for (uint64_t p = 1; p <= 1000000000000000000ULL; p *= 10) {
		uint64_t vs[] = { p - 1, p, p + 1 };

		for (int k = 0; k < 3; k++) {
			char want[32];

			snprintf(want, sizeof(want), "%" PRIu64, vs[k]);
			jbuf_reset(&b);
			jbuf_u64(&b, vs[k]);
			if (!ASSERT_STREQ(jbuf_cstr(&b), want))
				goto out;
		}
	}
out:
	jbuf_free(&b);
}

TEST(jbuf_hex)
{
	struct jbuf b;
	const uint8_t id[8] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff };

	jbuf_init(&b);
	jbuf_hex(&b, id, sizeof(id));
	ASSERT_STREQ(jbuf_cstr(&b), "\"00017f80abcdefff\"");
	jbuf_reset(&b);
	jbuf_hex(&b, id, 0);
	ASSERT_STREQ(jbuf_cstr(&b), "\"\"");
	jbuf_free(&b);
}

TEST(jbuf_double_forms)
{
	struct jbuf b;
	static const struct {
		double v;
		const char *s;
	} d[] = {
		{ 0.0, "0" },
		{ 1.0, "1" },
		{ -3.0, "-3" },
		{ 1.5, "1.5" },
		{ 0.1, "0.1" },
		{ -0.25, "-0.25" },
		{ 0.005, "0.005" },
		{ 1e-7, "0.0000001" },
		{ 42 / 1e6, "0.000042" },
		{ -1234.000000001, "-1234.000000001" },
		{ 1e-9, "0.000000001" },
		{ 1.5e-10, "1.5e-10" },
		{ 1e300, "1e+300" },
		{ 1.7976931348623157e308, "1.7976931348623157e+308" },
		{ 9007199254740992.0, "9007199254740992" },
		{ 0.30000000000000004, "0.30000000000000004" },
		{ 2251799813685248.5, "2251799813685248.5" },
	};

	jbuf_init(&b);
	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		jbuf_reset(&b);
		jbuf_double(&b, d[i].v);
		ASSERT_STREQ(jbuf_cstr(&b), d[i].s);
	}
	jbuf_reset(&b);
	jbuf_double(&b, NAN);
	jbuf_putc(&b, ' ');
	jbuf_double(&b, INFINITY);
	jbuf_putc(&b, ' ');
	jbuf_double(&b, -INFINITY);
	ASSERT_STREQ(jbuf_cstr(&b), "\"NaN\" \"Infinity\" \"-Infinity\"");
	jbuf_free(&b);
}

TEST(jbuf_double_round_trips)
{
	struct jbuf b;
	unsigned int seed = 12345;

	jbuf_init(&b);
	for (int i = 0; i < 20000; i++) {
		uint64_t bits = ((uint64_t)rand_r(&seed) << 42) ^ ((uint64_t)rand_r(&seed) << 21) ^
				(uint64_t)rand_r(&seed);
		double v, back;
		json_object *obj;

		memcpy(&v, &bits, sizeof(v));
		if (!isfinite(v))
			continue;
		jbuf_reset(&b);
		jbuf_double(&b, v);
		back = strtod(jbuf_cstr(&b), NULL);
		if (!ASSERT_TRUE(back == v || (v == 0 && back == 0)))
			break;
		if (!ASSERT_LE(b.len, 24))
			break;
		obj = parse_strict(&b);
		if (!ASSERT_NOT_NULL(obj)) {
			printf("    %s\n", jbuf_cstr(&b));
			break;
		}
		json_object_put(obj);
	}
	jbuf_reset(&b);
	jbuf_double(&b, DBL_MIN);
	ASSERT_TRUE(strtod(jbuf_cstr(&b), NULL) == DBL_MIN);
	jbuf_reset(&b);
	jbuf_double(&b, DBL_MAX);
	ASSERT_TRUE(strtod(jbuf_cstr(&b), NULL) == DBL_MAX);
	jbuf_free(&b);
}

TEST(jbuf_string_escapes)
{
	struct jbuf b;

	jbuf_init(&b);
	ASSERT_STREQ(str_of(&b, "plain text, long enough for words", 100),
		     "\"plain text, long enough for words\"");
	ASSERT_STREQ(str_of(&b, "", 10), "\"\"");
	ASSERT_STREQ(str_of(&b, NULL, 10), "\"\"");
	ASSERT_STREQ(str_of(&b, "a\"b\\c/d", 100), "\"a\\\"b\\\\c/d\"");
	ASSERT_STREQ(str_of(&b, "\n\r\t\b\f\x01\x1f\x7f", 100),
		     "\"\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f\"");
	/* The 8-byte fast path must notice specials in any position. */
	ASSERT_STREQ(str_of(&b, "abcdefg\"hijklmn\\opqrstu\x01vwxyzab\x7f", 100),
		     "\"abcdefg\\\"hijklmn\\\\opqrstu\\u0001vwxyzab\\u007f\"");
	ASSERT_STREQ(strn_of(&b, "a\0b", 3), "\"a\\u0000b\"");
	jbuf_free(&b);
}

TEST(jbuf_string_utf8)
{
	struct jbuf b;
	static const struct {
		const char *in;
		const char *out;
	} c[] = {
		/* valid: 2, 3 and 4 bytes, boundaries */
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
		{ "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf",
		  "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf" },
		{ "\xed\x9f\xbf\xee\x80\x80", "\xed\x9f\xbf\xee\x80\x80" }, /* around surrogates */
		/* overlongs */
		{ "a\xc0\x80z", "a\xef\xbf\xbd\xef\xbf\xbdz" },
		{ "a\xc1\xbfz", "a\xef\xbf\xbd\xef\xbf\xbdz" },
		{ "a\xe0\x80\x80z", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz" },
		{ "a\xf0\x8f\xbf\xbfz", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz" },
		/* surrogates */
		{ "a\xed\xa0\x80z", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz" },
		{ "\xed\xbf\xbf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		/* above U+10FFFF, bytes never valid */
		{ "a\xf4\x90\x80\x80z", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz" },
		{ "\xf5\xf8\xfe\xff", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		/* lone continuation bytes */
		{ "\x80x\xbf", "\xef\xbf\xbdx\xef\xbf\xbd" },
		/* truncated sequences inside the string: one U+FFFD per maximal subpart */
		{ "\xe2\x82z", "\xef\xbf\xbdz" },
		{ "\xf0\x9f\x98z", "\xef\xbf\xbdz" },
		{ "\xf0\x9f\xe2\x82\xac", "\xef\xbf\xbd\xe2\x82\xac" },
		/* truncated by the real end of the input: replaced */
		{ "ab\xe2\x82", "ab\xef\xbf\xbd" },
		{ "ab\xc3", "ab\xef\xbf\xbd" },
	};
	char want[128];

	jbuf_init(&b);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		snprintf(want, sizeof(want), "\"%s\"", c[i].out);
		if (!ASSERT_STREQ(str_of(&b, c[i].in, 100), want))
			printf("    case %zu\n", i);
		ASSERT_TRUE(utf8_valid((const uint8_t *)b.data, b.len));
	}
	jbuf_free(&b);
}

TEST(jbuf_string_cut)
{
	struct jbuf b;
	const char *euro = "ab\xe2\x82\xac"; /* 5 bytes */

	jbuf_init(&b);
	/* A cut inside a character drops the character, never half of it. */
	ASSERT_STREQ(str_of(&b, euro, 5), "\"ab\xe2\x82\xac\"");
	ASSERT_STREQ(str_of(&b, euro, 4), "\"ab\"");
	ASSERT_STREQ(str_of(&b, euro, 3), "\"ab\"");
	ASSERT_STREQ(str_of(&b, euro, 2), "\"ab\"");
	ASSERT_STREQ(str_of(&b, euro, 0), "\"\"");
	/* Not NUL-terminated input of exactly max_bytes is not read past. */
	{
		char *exact = malloc(3);

		if (ASSERT_NOT_NULL(exact)) {
			memcpy(exact, "xyz", 3);
			ASSERT_STREQ(str_of(&b, exact, 3), "\"xyz\"");
		}
		free(exact);
	}
	jbuf_free(&b);
}

TEST(jbuf_string_long)
{
	struct jbuf b;
	size_t n = 20000;
	char *s = malloc(n + 1);
	json_object *obj;

	if (!ASSERT_NOT_NULL(s))
		return;
	jbuf_init(&b);
	/* Multibyte characters straddling every chunk boundary. */
	for (size_t i = 0; i < n; i += 3)
		memcpy(s + i, "\xe2\x82\xac", n - i >= 3 ? 3 : n - i);
	s[n] = '\0';
	jbuf_json_string(&b, s, n);
	ASSERT_EQ(b.len, 2 + 3 * (n / 3)); /* the trailing half character is dropped */
	ASSERT_TRUE(utf8_valid((const uint8_t *)b.data, b.len));
	/* Worst case expansion: every byte a \u00XX escape. */
	memset(s, 0x01, n);
	jbuf_reset(&b);
	jbuf_json_string(&b, s, n);
	ASSERT_EQ(b.len, 2 + 6 * n);
	obj = parse_strict(&b);
	if (ASSERT_NOT_NULL(obj))
		ASSERT_EQ(json_object_get_string_len(obj), (int)n);
	json_object_put(obj);
	free(s);
	jbuf_free(&b);
}

TEST(jbuf_string_random_bytes)
{
	struct jbuf b;
	unsigned int seed = 42;
	uint8_t in[64];

	jbuf_init(&b);
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = (size_t)rand_r(&seed) % sizeof(in);
		json_object *obj;

		for (size_t i = 0; i < n; i++) {
			/* Bias towards the interesting bytes. */
			int r = rand_r(&seed);

			in[i] = (r & 3) ? (uint8_t)(0x80 | (r >> 3)) : (uint8_t)(r >> 3);
		}
		jbuf_reset(&b);
		jbuf_json_stringn(&b, (const char *)in, n);
		if (!ASSERT_TRUE(utf8_valid((const uint8_t *)b.data, b.len)))
			break;
		obj = parse_strict(&b);
		if (!ASSERT_NOT_NULL(obj))
			break;
		json_object_put(obj);
	}
	jbuf_free(&b);
}
