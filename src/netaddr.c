// SPDX-License-Identifier: Apache-2.0
#include "netaddr.h"

#include <arpa/inet.h>
#include <sys/socket.h>

void netaddr_format(int family, const uint8_t *addr, char *buf)
{
	if (!inet_ntop(family == AF_INET ? AF_INET : AF_INET6, addr, buf, NETADDR_STRLEN))
		buf[0] = '\0';
}

const char *netaddr_type(int family)
{
	return family == AF_INET ? "ipv4" : "ipv6";
}
