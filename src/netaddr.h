/* SPDX-License-Identifier: Apache-2.0 */
/* Addresses and ports of the socket tuple as the semantic conventions want them. */
#ifndef TCPOTEL_NETADDR_H
#define TCPOTEL_NETADDR_H

#include <stdint.h>

/* Long enough for any IPv6 text form. */
#define NETADDR_STRLEN 48

/* Text form of a 4-byte (AF_INET) or 16-byte (AF_INET6) address. */
void netaddr_format(int family, const uint8_t *addr, char *buf);
/* "ipv4" or "ipv6" (network.type). */
const char *netaddr_type(int family);

#endif
