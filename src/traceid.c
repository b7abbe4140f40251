// SPDX-License-Identifier: Apache-2.0
/*
 * Trace and span ids, version 1 (docs/ids.md is the specification; keep the
 * two in step and never change the output of version 1):
 *
 *   msg  = version(1) || domain('T'|'C'|'S') || client_addr[16] ||
 *          client_port (2 bytes, big-endian) || request_seq (4 bytes, big-endian)
 *   trace id       = SipHash-2-4-128(key, msg 'T'), the reference byte output
 *   client span id = SipHash-2-4-64(key, msg 'C'), the 64-bit value big-endian
 *   server span id = SipHash-2-4-64(key, msg 'S'), the 64-bit value big-endian
 *   key  = the 16 ASCII bytes "tcpotel-ids-v1" followed by two zero bytes
 *
 * SipHash is written here from the reference algorithm (Aumasson and
 * Bernstein, "SipHash: a fast short-input PRF", 2012) so that there is no
 * dependency to pin and any language can re-implement the ids in a few lines.
 */
#include "traceid.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "siphash.h"
#include "util.h"

#define MSG_LEN 24

static const uint8_t ids_key_v1[16] = "tcpotel-ids-v1\0";

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void store_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static void store_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/*
 * SipHash-2-4 of `in` under `key`; out_len 8 or 16. The output bytes are the
 * reference implementation's: each 64-bit word little-endian (b0, then b1
 * for the 128-bit variant).
 */
static void siphash24(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t *out,
		      size_t out_len)
{
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = (uint64_t)len << 56, m;
	size_t left = len & 7, i;
	const uint8_t *end = in + (len - left);

	if (out_len == 16)
		v1 ^= 0xee;
	for (; in != end; in += 8) {
		m = load_le64(in);
		SIPHASH_COMPRESS(m);
	}
	for (i = 0; i < left; i++)
		b |= (uint64_t)in[i] << (8 * i);
	SIPHASH_COMPRESS(b);

	v2 ^= out_len == 16 ? 0xee : 0xff;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	store_le64(out, v0 ^ v1 ^ v2 ^ v3);
	if (out_len != 16)
		return;
	v1 ^= 0xdd;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	store_le64(out + 8, v0 ^ v1 ^ v2 ^ v3);
}

/* Exported for the unit tests' reference vectors only (not in traceid.h). */
uint64_t traceid_siphash64(const uint8_t key[16], const uint8_t *in, size_t len);
void traceid_siphash128(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t out[16]);

uint64_t traceid_siphash64(const uint8_t key[16], const uint8_t *in, size_t len)
{
	uint8_t out[8];

	siphash24(key, in, len, out, sizeof(out));
	return load_le64(out);
}

void traceid_siphash128(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t out[16])
{
	siphash24(key, in, len, out, 16);
}

/* An all-zero id is invalid in OpenTelemetry: such an output gets its last byte set to 1. */
static void never_zero(uint8_t *id, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (id[i])
			return;
	id[len - 1] = 1;
}

void traceid_derive_some(const uint8_t client_addr[16], uint16_t client_port, uint32_t request_seq,
			 bool server_span, struct exchange_ids *out)
{
	uint8_t msg[MSG_LEN], span[8];

	msg[0] = TRACEID_VERSION;
	memcpy(msg + 2, client_addr, 16);
	msg[18] = (uint8_t)(client_port >> 8);
	msg[19] = (uint8_t)client_port;
	msg[20] = (uint8_t)(request_seq >> 24);
	msg[21] = (uint8_t)(request_seq >> 16);
	msg[22] = (uint8_t)(request_seq >> 8);
	msg[23] = (uint8_t)request_seq;

	msg[1] = 'T';
	siphash24(ids_key_v1, msg, sizeof(msg), out->trace_id, 16);
	never_zero(out->trace_id, 16);

	msg[1] = 'C';
	siphash24(ids_key_v1, msg, sizeof(msg), span, 8);
	store_be64(out->client_span_id, load_le64(span));
	never_zero(out->client_span_id, 8);

	if (!server_span) {
		memset(out->server_span_id, 0, 8);
		return;
	}
	msg[1] = 'S';
	siphash24(ids_key_v1, msg, sizeof(msg), span, 8);
	store_be64(out->server_span_id, load_le64(span));
	never_zero(out->server_span_id, 8);
}

void traceid_derive(const uint8_t client_addr[16], uint16_t client_port, uint32_t request_seq,
		    struct exchange_ids *out)
{
	traceid_derive_some(client_addr, client_port, request_seq, true, out);
}

void traceid_canonical_addr(int family, const uint8_t *addr, uint8_t out[16])
{
	memset(out, 0, 16);
	if (family == AF_INET) {
		out[10] = 0xff;
		out[11] = 0xff;
		memcpy(out + 12, addr, 4);
	} else if (family == AF_INET6) {
		memcpy(out, addr, 16);
	}
}

#define TH_MAX (1ULL << 56)

/*
 * T = 2^56 - round(ratio * 2^56). Mathematically the same as
 * round((1 - ratio) * 2^56), but exact for the double `ratio` (scaling by a
 * power of two loses nothing, where 1 - ratio would round away low bits).
 * This is how the Collector's pkg/sampling ProbabilityToThreshold computes it.
 */
uint64_t traceid_threshold(double ratio)
{
	double kept;

	if (!(ratio > 0)) /* also NaN */
		return TH_MAX;
	if (ratio >= 1)
		return 0;
	kept = round(ratio * (double)TH_MAX);
	if (kept >= (double)TH_MAX)
		return 0;
	return TH_MAX - (uint64_t)kept;
}

bool traceid_sampled(const uint8_t trace_id[16], uint64_t threshold)
{
	uint64_t r = 0;

	for (int i = 9; i < 16; i++)
		r = (r << 8) | trace_id[i];
	return r >= threshold;
}

void traceid_tracestate(uint64_t threshold, char *buf, size_t size)
{
	char hex[15];
	int n;

	if (!size)
		return;
	buf[0] = '\0';
	/* 0: everything kept, nothing to say; 2^56 and above: nothing is ever kept. */
	if (threshold == 0 || threshold >= TH_MAX)
		return;
	snprintf(hex, sizeof(hex), "%014" PRIx64, threshold);
	for (n = 14; n > 1 && hex[n - 1] == '0'; n--)
		;
	hex[n] = '\0';
	snprintf(buf, size, "ot=th:%s", hex);
}
