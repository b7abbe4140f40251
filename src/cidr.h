/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Address ranges written as CIDRs ("10.0.0.0/8", "fd00::/8", or one address):
 * parsing with a clear reason on error, matching an address, printing.
 * An IPv4-mapped IPv6 range (::ffff:10.0.0.0/104) is kept as the IPv4 range
 * it stands for, as the kernel's tuples fold v4-mapped addresses to IPv4.
 */
#ifndef TCPOTEL_CIDR_H
#define TCPOTEL_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest text form: an IPv6 address, '/', three digits. */
#define CIDR_STRLEN 52

struct cidr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t prefix; /* leading bits that must match: 0..32 or 0..128 */
	uint8_t addr[16]; /* 4 bytes used for AF_INET; the bits past the prefix are zero */
};

struct cidr_list {
	struct cidr *items;
	size_t n;
};

/* Parses `s`; on error returns -EINVAL and writes why to `why` (may be NULL). */
int cidr_parse(const char *s, struct cidr *out, char *why, size_t why_size);
/* `addr` (4 bytes for AF_INET, 16 for AF_INET6) is in `c`. */
bool cidr_contains(const struct cidr *c, int family, const uint8_t *addr);
bool cidr_list_contains(const struct cidr_list *l, int family, const uint8_t *addr);
/* "10.0.0.0/8", "fd00::/8". */
void cidr_format(const struct cidr *c, char *buf, size_t size);

#endif
