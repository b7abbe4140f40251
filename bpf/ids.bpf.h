/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The sampling decision of docs/ids.md, taken in the kernel: exactly what
 * user space's traceid_sampled(traceid_derive(...), threshold) says for the
 * same exchange (src/traceid.c; tests/bpf/test_ids.c checks that they agree).
 * It depends on the exchange alone, so both ends still keep or drop their
 * halves together, and an unsampled exchange costs no ring-buffer record.
 *
 * Only the trace id's last 7 bytes decide, and they all come from the second
 * output word b1 of SipHash-2-4-128: this computes the hash on 64-bit words
 * (three message words and the length word), skips the byte buffers and the
 * span ids, and needs no helpers and no loops.
 */
#ifndef TCPOTEL_IDS_BPF_H
#define TCPOTEL_IDS_BPF_H

#include "vmlinux.h"
#include "tcpotel.h"
#include "siphash.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* The key "tcpotel-ids-v1\0\0" as two little-endian words (k0, k1). */
#define IDS_K0 0x2d6c65746f706374ULL
#define IDS_K1 0x000031762d736469ULL
/* Largest randomness value: 56 bits. */
#define IDS_R_MAX ((1ULL << 56) - 1)

/* Bytes p[0..n) as a little-endian number. The tuple is only 2-byte aligned:
 * memcpy lets clang pick loads the verifier accepts (stack reads must be aligned). */
static __always_inline __u64 ids_le64(const __u8 *p)
{
	__u64 v;

	__builtin_memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static __always_inline __u32 ids_le32(const __u8 *p)
{
	__u32 v;

	__builtin_memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	return v;
}

/*
 * Whether the exchange's spans are kept at `threshold` (traceid_threshold()
 * of the sampling ratio). The client endpoint is the local side for a client
 * and the remote side otherwise, as client_endpoint() in src/exchange.c.
 */
static __always_inline bool exchange_sampled(const struct tcpotel_tuple *t, __u8 role,
					     __u32 request_seq, __u64 threshold)
{
	const __u8 *addr;
	__u16 port;
	__u64 a0 = 0, a1 = 0, m0, m1, m2, b0, b1, r;
	__u64 v0 = 0x736f6d6570736575ULL ^ IDS_K0;
	__u64 v1 = 0x646f72616e646f6dULL ^ IDS_K1 ^ 0xee; /* 128-bit output */
	__u64 v2 = 0x6c7967656e657261ULL ^ IDS_K0;
	__u64 v3 = 0x7465646279746573ULL ^ IDS_K1;

	/* Ratio 1 keeps everything and ratio 0 nothing: no hash needed. */
	if (threshold == 0)
		return true;
	if (threshold > IDS_R_MAX)
		return false;

	if (role == TCPOTEL_ROLE_CLIENT) {
		addr = t->saddr;
		port = t->sport;
	} else {
		addr = t->daddr;
		port = t->dport;
	}
	/* The canonical address (traceid_canonical_addr()) as words a0, a1:
	 * IPv4 a.b.c.d is ::ffff:a.b.c.d, bytes 8..15 = 00 00 ff ff a b c d. */
	if (t->family == AF_INET) {
		a1 = 0xffff0000ULL | (__u64)ids_le32(addr) << 32;
	} else if (t->family == AF_INET6) {
		a0 = ids_le64(addr);
		a1 = ids_le64(addr + 8);
	}

	/* msg = 01 'T' addr[16] port(be16) seq(be32), 24 bytes, as three
	 * little-endian words: the address straddles them at a 2-byte offset. */
	m0 = 0x5401ULL | a0 << 16;
	m1 = a0 >> 48 | a1 << 16;
	m2 = a1 >> 48 | (__u64)__builtin_bswap16(port) << 16 |
	     (__u64)__builtin_bswap32(request_seq) << 32;

	SIPHASH_COMPRESS(m0);
	SIPHASH_COMPRESS(m1);
	SIPHASH_COMPRESS(m2);
	SIPHASH_COMPRESS(24ULL << 56); /* no tail bytes; the length in the top byte */

	v2 ^= 0xee;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	b0 = v0 ^ v1 ^ v2 ^ v3;
	v1 ^= 0xdd;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	SIPHASH_ROUND;
	b1 = v0 ^ v1 ^ v2 ^ v3;

	/* Trace id bytes 8..15 are b1 little-endian; R is bytes 9..15 big-endian. */
	r = __builtin_bswap64(b1) & IDS_R_MAX;
	/* never_zero(): an all-zero trace id gets last byte 1, so R = 1. That
	 * changes the answer only at threshold 1 (chance 2^-128), but b0 is
	 * already there and the check costs a few instructions: stay exact. */
	if (!(b0 | b1))
		r = 1;
	return r >= threshold;
}

#endif
