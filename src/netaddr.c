// SPDX-License-Identifier: Apache-2.0
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>

void netaddr_format(int family, const uint8_t *addr, char *buf)
{
	if (!inet_ntop(family == AF_INET ? AF_INET : AF_INET6, addr, buf, NETADDR_STRLEN))
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

const char *netaddr_type(int family)
{
	return family == AF_INET ? "ipv4" : "ipv6";
}
