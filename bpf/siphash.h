/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The SipHash round (Aumasson and Bernstein, 2012), shared by user space
 * (src/traceid.c, the ids) and the kernel (bpf/ids.bpf.h, the sampling
 * decision): both ends of sampling must compute the same hash. Macros on the
 * caller's 64-bit state words v0..v3; no includes, like tcpotel.h.
 */
#ifndef TCPOTEL_SIPHASH_H
#define TCPOTEL_SIPHASH_H

#define SIPHASH_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

#define SIPHASH_ROUND                      \
	do {                               \
		v0 += v1;                  \
		v1 = SIPHASH_ROTL(v1, 13); \
		v1 ^= v0;                  \
		v0 = SIPHASH_ROTL(v0, 32); \
		v2 += v3;                  \
		v3 = SIPHASH_ROTL(v3, 16); \
		v3 ^= v2;                  \
		v0 += v3;                  \
		v3 = SIPHASH_ROTL(v3, 21); \
		v3 ^= v0;                  \
		v2 += v1;                  \
		v1 = SIPHASH_ROTL(v1, 17); \
		v1 ^= v2;                  \
		v2 = SIPHASH_ROTL(v2, 32); \
	} while (0)

/* One message word through the two compression rounds of SipHash-2-4. */
#define SIPHASH_COMPRESS(m)    \
	do {                   \
		v3 ^= (m);     \
		SIPHASH_ROUND; \
		SIPHASH_ROUND; \
		v0 ^= (m);     \
	} while (0)

#endif
