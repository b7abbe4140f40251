/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deterministic trace and span ids for exchanges (docs/ids.md), and
 * OpenTelemetry's consistent probability sampling. Pure functions.
 *
 * Both ends of a connection compute the same ids from what both see
 * identically even through DNAT: the client's address and port and the
 * request's TCP sequence number. Version 1 of the derivation is fixed:
 * changing it needs a new version.
 */
#ifndef TCPOTEL_TRACEID_H
#define TCPOTEL_TRACEID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACEID_VERSION 1

struct exchange_ids {
	uint8_t trace_id[16];
	uint8_t client_span_id[8]; /* the CLIENT span; parent of the server span */
	uint8_t server_span_id[8]; /* the SERVER span */
};

/*
 * client_addr: 16 bytes, IPv6 or IPv4-mapped IPv6 (::ffff:a.b.c.d), the one
 * canonical form both ends use. port and seq in host order.
 */
void traceid_derive(const uint8_t client_addr[16], uint16_t client_port, uint32_t request_seq,
		    struct exchange_ids *out);
/* The same without the server span id (left zero) unless server_span: a
 * client span needs only the trace and client span ids. */
void traceid_derive_some(const uint8_t client_addr[16], uint16_t client_port, uint32_t request_seq,
			 bool server_span, struct exchange_ids *out);
/* Builds the canonical 16-byte form from a 4- or 16-byte address (family AF_INET/AF_INET6). */
void traceid_canonical_addr(int family, const uint8_t *addr, uint8_t out[16]);

/* Rejection threshold for a sampling ratio in [0, 1]: T = round((1 - ratio) * 2^56). */
uint64_t traceid_threshold(double ratio);
/* Keep the trace when its 56 random bits (the last 7 bytes, big-endian) are >= T. */
bool traceid_sampled(const uint8_t trace_id[16], uint64_t threshold);
/* Writes "ot=th:<hex>" (trailing zeros removed) for thresholds > 0; "" for 0 (ratio 1). */
void traceid_tracestate(uint64_t threshold, char *buf, size_t size);

#endif
