// SPDX-License-Identifier: Apache-2.0
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Dotted quad without printf (glibc's inet_ntop formats IPv4 with sprintf):
 * two addresses go into every span. */
static void format_ipv4(const uint8_t *a, char *buf)
{
	char *p = buf;

	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];

		if (i)
			*p++ = '.';
		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
	}
	*p = '\0';
}

void netaddr_format(int family, const uint8_t *addr, char *buf)
{
	if (family == AF_INET) {
		format_ipv4(addr, buf);
		return;
	}
	if (!inet_ntop(AF_INET6, addr, buf, NETADDR_STRLEN))
		buf[0] = '\0';
}

void netaddr_label(int family, const uint8_t *addr, uint16_t port, char *buf, size_t size)
{
	char a[NETADDR_STRLEN];
	bool v6 = family != AF_INET;

	netaddr_format(family, addr, a);
	if (port)
		snprintf(buf, size, "%s%s%s:%u", v6 ? "[" : "", a, v6 ? "]" : "", port);
	else
		snprintf(buf, size, "%s%s%s", v6 ? "[" : "", a, v6 ? "]" : "");
}

bool netaddr_is_loopback(int family, const uint8_t *addr)
{
	static const uint8_t v6_loopback[16] = { [15] = 1 };

	return family == AF_INET ? addr[0] == 127 : !memcmp(addr, v6_loopback, 16);
}

const char *netaddr_type(int family)
{
	return family == AF_INET ? "ipv4" : "ipv6";
}
