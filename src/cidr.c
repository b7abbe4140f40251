// SPDX-License-Identifier: Apache-2.0
#include "cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v4_mapped[12] = { [10] = 0xff, [11] = 0xff };

/* Whether the bits of `a` past `prefix` are all zero. */
static bool host_bits_clear(const uint8_t *a, size_t len, unsigned prefix)
{
	for (size_t i = 0; i < len; i++) {
		unsigned keep = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * i : 0;
		uint8_t mask = keep ? (uint8_t)(0xff << (8 - keep)) : 0;

		if (a[i] & (uint8_t)~mask)
			return false;
	}
	return true;
}

static void clear_host_bits(uint8_t *a, size_t len, unsigned prefix)
{
	for (size_t i = 0; i < len; i++) {
		unsigned keep = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * i : 0;

		a[i] &= keep ? (uint8_t)(0xff << (8 - keep)) : 0;
	}
}

int cidr_parse(const char *s, struct cidr *out, char *why, size_t why_size)
{
	char text[CIDR_STRLEN + 1], fixed[CIDR_STRLEN + 1];
	const char *slash = strchr(s, '/');
	unsigned long prefix;
	size_t alen, max;
	char *end;

	memset(out, 0, sizeof(*out));
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (!alen || alen >= sizeof(text))
		goto bad;
	memcpy(text, s, alen);
	text[alen] = '\0';
	if (inet_pton(AF_INET, text, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, text, out->addr) == 1)
		out->family = AF_INET6;
	else
		goto bad;
	max = out->family == AF_INET ? 32 : 128;
	prefix = max;
	if (slash) {
		if (slash[1] < '0' || slash[1] > '9')
			goto bad;
		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (errno || *end || prefix > max) {
			if (why)
				snprintf(why, why_size, "'%.60s': the prefix length is 0..%zu", s,
					 max);
			return -EINVAL;
		}
	}
	if (!host_bits_clear(out->addr, max / 8, (unsigned)prefix)) {
		clear_host_bits(out->addr, max / 8, (unsigned)prefix);
		out->prefix = (uint8_t)prefix;
		cidr_format(out, fixed, sizeof(fixed));
		if (why)
			snprintf(why, why_size,
				 "'%.60s' has address bits set past the prefix (did you mean %s?)",
				 s, fixed);
		return -EINVAL;
	}
	out->prefix = (uint8_t)prefix;
	/* ::ffff:a.b.c.d/96+n is a.b.c.d/n: the kernel's tuples hold such peers as IPv4. */
	if (out->family == AF_INET6 && prefix >= 96 && !memcmp(out->addr, v4_mapped, 12)) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		out->prefix = (uint8_t)(prefix - 96);
	}
	return 0;
bad:
	if (why)
		snprintf(why, why_size,
			 "'%.60s' is not an address or a CIDR (like 10.0.0.0/8 or fd00::/8)", s);
	return -EINVAL;
}

bool cidr_contains(const struct cidr *c, int family, const uint8_t *addr)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (c->family != family)
		return false;
	if (memcmp(c->addr, addr, full))
		return false;
	return !rest || !((c->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest)));
}

bool cidr_list_contains(const struct cidr_list *l, int family, const uint8_t *addr)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (cidr_contains(&l->items[i], family, addr))
			return true;
	return false;
}

void cidr_format(const struct cidr *c, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(c->family == AF_INET ? AF_INET : AF_INET6, c->addr, a, sizeof(a)))
		a[0] = '\0';
	snprintf(buf, size, "%s/%u", a, c->prefix);
}
