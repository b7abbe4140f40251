// SPDX-License-Identifier: Apache-2.0
/* Trace/span ids (docs/ids.md vectors, SipHash reference vectors) and consistent sampling. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "test.h"
#include "traceid.h"
#include "util.h"

/* Defined in traceid.c for these tests (the raw SipHash-2-4 primitive). */
uint64_t traceid_siphash64(const uint8_t key[16], const uint8_t *in, size_t len);
void traceid_siphash128(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t out[16]);

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Parses a textual IPv4 or IPv6 address into the canonical 16-byte form. */
static bool canon(const char *text, uint8_t out[16])
{
	uint8_t raw[16];

	if (inet_pton(AF_INET, text, raw) == 1) {
		traceid_canonical_addr(AF_INET, raw, out);
		return true;
	}
	if (inet_pton(AF_INET6, text, raw) == 1) {
		traceid_canonical_addr(AF_INET6, raw, out);
		return true;
	}
	return false;
}

/* SipHash paper, appendix A, and the reference vectors.h: key 00..0f, message 00..(n-1). */
TEST(siphash_reference_vectors)
{
	static const struct {
		size_t len;
		uint8_t sip64[8]; /* output bytes as vectors.h lists them (little-endian) */
		uint8_t sip128[16];
	} v[] = {
		{ 0,
		  { 0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72 },
		  { 0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7,
		    0x55, 0x02, 0x93 } },
		{ 7,
		  { 0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab },
		  { 0xa1, 0xf1, 0xeb, 0xbe, 0xd8, 0xdb, 0xc1, 0x53, 0xc0, 0xb8, 0x4a, 0xa6, 0x1f,
		    0xf0, 0x82, 0x39 } },
		{ 8,
		  { 0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93 },
		  { 0x3b, 0x62, 0xa9, 0xba, 0x62, 0x58, 0xf5, 0x61, 0x0f, 0x83, 0xe2, 0x64, 0xf3,
		    0x14, 0x97, 0xb4 } },
		{ 15,
		  { 0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1 },
		  { 0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11, 0x7e, 0x08, 0xec, 0x0f, 0x97,
		    0xcf, 0xc3, 0xd9 } },
	};
	uint8_t key[16], msg[16], out[16];

	for (int i = 0; i < 16; i++)
		key[i] = msg[i] = (uint8_t)i;
	/* The paper's own example: 15-byte message. */
	if (!ASSERT_U64_EQ(traceid_siphash64(key, msg, 15), 0xa129ca6149be45e5ULL))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		uint64_t want = 0;

		for (int b = 7; b >= 0; b--)
			want = (want << 8) | v[i].sip64[b];
		if (!ASSERT_U64_EQ(traceid_siphash64(key, msg, v[i].len), want))
			return;
		traceid_siphash128(key, msg, v[i].len, out);
		if (!ASSERT_OK(memcmp(out, v[i].sip128, 16)))
			return;
	}
}

/* The vectors published in docs/ids.md. */
static const struct {
	const char *addr;
	uint16_t port;
	uint32_t seq;
	const char *trace_id, *client_span_id, *server_span_id;
} doc_vectors[] = {
	{ "10.0.0.1", 40000, 1000, "a6ce1571db532975f46dd0c1ed180d5f", "5ae3f57a720a1f71",
	  "cb76ebb27aa16c7a" },
	{ "192.168.1.20", 0, 0, "22152650d97c356eba8cefc97398f5ff", "4b04af489adca2d6",
	  "5cc4b2697600d71d" },
	{ "127.0.0.1", 65535, 0xffffffff, "0c0f4f124c3aab0e587d6bb5cba9cae3", "493a1314e3cdd54f",
	  "5b7ab6c3bcc69cea" },
	{ "2001:db8::1", 443, 123456789, "23262ae11e872bc43d58882fec66be92", "eb2bcd201d53bc02",
	  "a5a18f39e5f347f7" },
	{ "fe80::1234:5678:9abc:def0", 65535, 0, "e681ad59fad8e2e8685e8486a1f6894b",
	  "e793f73bd6b0055d", "321c6158f2654425" },
	{ "::", 0, 0, "6b1ec030c88d609c43a646c573a10f7b", "ebb4a106484de67d", "02eff71fd0d651db" },
	{ "203.0.113.7", 54321, 0x80000000, "af6783ff7c0150a9cdba03dbf4fe74a8", "239de4a637f23132",
	  "dd7844061389bdd3" },
	{ "::ffff:10.0.0.1", 40000, 1000, "a6ce1571db532975f46dd0c1ed180d5f", "5ae3f57a720a1f71",
	  "cb76ebb27aa16c7a" },
	/* A failed connection attempt: the SYN's sequence number, 999. */
	{ "10.0.0.1", 40000, 999, "e7320d8f1dd616ff91ca8ccfa3679ac9", "f41572674eac7fee",
	  "e90c18d52a7d88d9" },
	/* A goodbye read with the FIN (copied_seq 5006, 5 bytes): request seq 5000. */
	{ "10.0.0.1", 40000, 5006 - 1 - 5, "ea9f92c428a8deda64e65515d022f4a0", "e06c7df9e2fe922f",
	  "8493755d9c8bd6a3" },
};

TEST(doc_vectors)
{
	for (size_t i = 0; i < ARRAY_SIZE(doc_vectors); i++) {
		struct exchange_ids ids;
		uint8_t addr[16];
		char buf[33];

		if (!ASSERT_TRUE(canon(doc_vectors[i].addr, addr)))
			return;
		traceid_derive(addr, doc_vectors[i].port, doc_vectors[i].seq, &ids);
		hex(ids.trace_id, 16, buf);
		if (!ASSERT_STREQ(buf, doc_vectors[i].trace_id))
			return;
		hex(ids.client_span_id, 8, buf);
		if (!ASSERT_STREQ(buf, doc_vectors[i].client_span_id))
			return;
		hex(ids.server_span_id, 8, buf);
		if (!ASSERT_STREQ(buf, doc_vectors[i].server_span_id))
			return;
	}
}

/* docs/ids.md is the specification: every row of its vector table must hold. */
TEST(doc_table_in_sync)
{
	char path[4096], line[512];
	int rows = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/docs/ids.md", test_srcdir());
	f = fopen(path, "r");
	if (!ASSERT_NOT_NULL(f))
		return;
	while (fgets(line, sizeof(line), f)) {
		char addr_text[64], want_t[33], want_c[17], want_s[17], got[33];
		struct exchange_ids ids;
		unsigned port, seq;
		uint8_t addr[16];

		if (sscanf(line,
			   "| %63[0-9a-f:.] | %u | %u | %32[0-9a-f] | %16[0-9a-f] | %16[0-9a-f] |",
			   addr_text, &port, &seq, want_t, want_c, want_s) != 6)
			continue;
		rows++;
		if (!ASSERT_TRUE(canon(addr_text, addr)) || !ASSERT_LE(port, 65535))
			break;
		traceid_derive(addr, (uint16_t)port, seq, &ids);
		hex(ids.trace_id, 16, got);
		if (!ASSERT_STREQ(got, want_t))
			break;
		hex(ids.client_span_id, 8, got);
		if (!ASSERT_STREQ(got, want_c))
			break;
		hex(ids.server_span_id, 8, got);
		if (!ASSERT_STREQ(got, want_s))
			break;
	}
	fclose(f);
	ASSERT_GE(rows, 6);
}

TEST(canonical_addr)
{
	const uint8_t v4[4] = { 10, 1, 2, 3 };
	const uint8_t want[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3 };
	uint8_t out[16], again[16];

	traceid_canonical_addr(AF_INET, v4, out);
	if (!ASSERT_OK(memcmp(out, want, 16)))
		return;
	/* A v4-mapped IPv6 address is already canonical. */
	traceid_canonical_addr(AF_INET6, want, again);
	if (!ASSERT_OK(memcmp(again, want, 16)))
		return;
	/* An unknown family gives the unspecified address, never stack garbage. */
	memset(out, 0xaa, sizeof(out));
	traceid_canonical_addr(AF_UNIX, v4, out);
	for (int i = 0; i < 16; i++)
		if (!ASSERT_EQ(out[i], 0))
			return;
}

/*
 * The client sees its own address as IPv4; a dual-stack server sees the same
 * peer as ::ffff:a.b.c.d. Both must derive the same ids.
 */
TEST(client_and_server_agree_v4_and_mapped)
{
	struct in_addr a4;
	struct in6_addr a6;
	uint8_t c[16], s[16];
	struct exchange_ids ci, si;

	inet_pton(AF_INET, "172.17.0.5", &a4);
	inet_pton(AF_INET6, "::ffff:172.17.0.5", &a6);
	traceid_canonical_addr(AF_INET, (const uint8_t *)&a4, c);
	traceid_canonical_addr(AF_INET6, a6.s6_addr, s);
	traceid_derive(c, 51234, 0xdeadbeef, &ci);
	traceid_derive(s, 51234, 0xdeadbeef, &si);
	if (!ASSERT_OK(memcmp(&ci, &si, sizeof(ci))))
		return;
	/* And anything else differs: port, sequence number, address. */
	traceid_derive(c, 51235, 0xdeadbeef, &si);
	if (!ASSERT_NE(memcmp(ci.trace_id, si.trace_id, 16), 0))
		return;
	traceid_derive(c, 51234, 0xdeadbef0, &si);
	if (!ASSERT_NE(memcmp(ci.trace_id, si.trace_id, 16), 0))
		return;
	c[15] ^= 1;
	traceid_derive(c, 51234, 0xdeadbeef, &si);
	if (!ASSERT_NE(memcmp(ci.trace_id, si.trace_id, 16), 0))
		return;
	/* The two span ids of one exchange differ from each other. */
	ASSERT_NE(memcmp(ci.client_span_id, ci.server_span_id, 8), 0);
	/* A client's half needs no server span id: the rest is the same. */
	c[15] ^= 1;
	traceid_derive_some(c, 51234, 0xdeadbeef, false, &si);
	ASSERT_OK(memcmp(ci.trace_id, si.trace_id, 16));
	ASSERT_OK(memcmp(ci.client_span_id, si.client_span_id, 8));
	ASSERT_OK(memcmp(si.server_span_id, (uint8_t[8]){ 0 }, 8));
}

TEST(threshold_values)
{
	static const struct {
		double ratio;
		uint64_t t;
		const char *ts;
	} v[] = {
		{ 1.0, 0, "" },
		{ 2.0, 0, "" },
		{ 0.5, 0x80000000000000ULL, "ot=th:8" },
		{ 0.25, 0xc0000000000000ULL, "ot=th:c" },
		{ 0.75, 0x40000000000000ULL, "ot=th:4" },
		{ 0.125, 0xe0000000000000ULL, "ot=th:e" },
		{ 0.0625, 0xf0000000000000ULL, "ot=th:f" },
		{ 1.0 / 3, 0xaaaaaaaaaaaaacULL, "ot=th:aaaaaaaaaaaaac" },
		{ 0.1, 0xe6666666666666ULL, "ot=th:e6666666666666" },
		{ 0.01, 0xfd70a3d70a3d71ULL, "ot=th:fd70a3d70a3d71" },
		/* Leading zeros stay: th is 14 digits with only the trailing zeros dropped. */
		{ 0.999999, 0x000010c6f7a0b8ULL, "ot=th:000010c6f7a0b8" },
		{ 0x1p-56, 0xffffffffffffffULL, "ot=th:ffffffffffffff" },
		{ 0.0, 1ULL << 56, "" },
		{ -1.0, 1ULL << 56, "" },
	};
	char buf[32];

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		uint64_t t = traceid_threshold(v[i].ratio);

		if (!ASSERT_U64_EQ(t, v[i].t))
			return;
		traceid_tracestate(t, buf, sizeof(buf));
		if (!ASSERT_STREQ(buf, v[i].ts))
			return;
	}
	if (!ASSERT_U64_EQ(traceid_threshold(0.0 / 0.0), 1ULL << 56))
		return;
	/* A short buffer is truncated, never overrun. */
	memset(buf, 'x', sizeof(buf));
	traceid_tracestate(0x80000000000000ULL, buf, 4);
	if (!ASSERT_STREQ(buf, "ot="))
		return;
	ASSERT_EQ(buf[4], 'x');
}

static void set_randomness(uint8_t id[16], uint64_t r)
{
	for (int i = 15; i >= 9; i--, r >>= 8)
		id[i] = (uint8_t)r;
}

TEST(sampled_depends_on_last_7_bytes_only)
{
	uint64_t t = traceid_threshold(0.25);
	uint8_t a[16], b[16];

	memset(a, 0x00, sizeof(a));
	memset(b, 0xff, sizeof(b));
	/* Same randomness, every other byte different: same decision. */
	set_randomness(a, t);
	set_randomness(b, t);
	if (!ASSERT_TRUE(traceid_sampled(a, t)) || !ASSERT_TRUE(traceid_sampled(b, t)))
		return;
	set_randomness(a, t - 1);
	set_randomness(b, t - 1);
	if (!ASSERT_FALSE(traceid_sampled(a, t)) || !ASSERT_FALSE(traceid_sampled(b, t)))
		return;
	/* Ratio 1 keeps the smallest randomness; ratio 0 drops the largest. */
	set_randomness(a, 0);
	if (!ASSERT_TRUE(traceid_sampled(a, traceid_threshold(1.0))))
		return;
	set_randomness(a, (1ULL << 56) - 1);
	if (!ASSERT_FALSE(traceid_sampled(a, traceid_threshold(0.0))))
		return;
	/* Consistency: kept at ratio p implies kept at every ratio >= p. */
	set_randomness(a, traceid_threshold(0.3));
	ASSERT_TRUE(traceid_sampled(a, traceid_threshold(0.3)) &&
		    traceid_sampled(a, traceid_threshold(0.5)) &&
		    traceid_sampled(a, traceid_threshold(0.9)));
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * 1M exchanges with realistic inputs (random client, sequence numbers
 * counting up as on a long connection): the kept fraction is the ratio
 * within 1% of it. This tests the hash's spread as much as the threshold.
 */
TEST(sampled_fraction_matches_ratio)
{
	static const double ratios[] = { 0.1, 0.25, 0.5 };
	const int n = 1000000;
	uint64_t t[ARRAY_SIZE(ratios)], seed = 42;
	int kept[ARRAY_SIZE(ratios)] = { 0 };
	uint8_t addr[16] = { 0 };
	uint32_t seq = (uint32_t)splitmix64(&seed);
	uint16_t port = 0;

	for (size_t r = 0; r < ARRAY_SIZE(ratios); r++)
		t[r] = traceid_threshold(ratios[r]);
	for (int i = 0; i < n; i++) {
		struct exchange_ids ids;

		if (i % 1000 == 0) { /* a new connection */
			uint64_t x = splitmix64(&seed);

			addr[10] = addr[11] = 0xff;
			memcpy(addr + 12, &x, 4);
			port = (uint16_t)(32768 + (x >> 32) % 28232);
			seq = (uint32_t)(x >> 16);
		}
		traceid_derive(addr, port, seq, &ids);
		seq += 100 + (uint32_t)(i % 7);
		for (size_t r = 0; r < ARRAY_SIZE(ratios); r++)
			kept[r] += traceid_sampled(ids.trace_id, t[r]);
	}
	for (size_t r = 0; r < ARRAY_SIZE(ratios); r++)
		if (!ASSERT_DOUBLE_NEAR((double)kept[r] / n, ratios[r], ratios[r] * 0.01))
			return;
}

TEST(sampled_fraction_random_ids)
{
	static const double ratios[] = { 0.1, 0.25, 0.5 };
	const int n = 1000000;
	uint64_t seed = 7;

	for (size_t r = 0; r < ARRAY_SIZE(ratios); r++) {
		uint64_t t = traceid_threshold(ratios[r]);
		int kept = 0;

		for (int i = 0; i < n; i++) {
			uint8_t id[16];
			uint64_t a = splitmix64(&seed), b = splitmix64(&seed);

			memcpy(id, &a, 8);
			memcpy(id + 8, &b, 8);
			kept += traceid_sampled(id, t);
		}
		if (!ASSERT_DOUBLE_NEAR((double)kept / n, ratios[r], ratios[r] * 0.01))
			return;
	}
}
