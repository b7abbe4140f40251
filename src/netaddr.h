/* SPDX-License-Identifier: Apache-2.0 */
/* Addresses and ports of the socket tuple as the semantic conventions want them. */
#ifndef TCPOTEL_NETADDR_H
#define TCPOTEL_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Long enough for any IPv6 text form. */
#define NETADDR_STRLEN 48

/* Text form of a 4-byte (AF_INET) or 16-byte (AF_INET6) address. */
void netaddr_format(int family, const uint8_t *addr, char *buf);
/* "addr:port", "[v6addr]:port", or without ":port" when port is 0. */
void netaddr_label(int family, const uint8_t *addr, uint16_t port, char *buf, size_t size);
/* 127.0.0.0/8 or ::1 (addresses as in the kernel's tuples: v4-mapped ones are IPv4). */
bool netaddr_is_loopback(int family, const uint8_t *addr);
/* "ipv4" or "ipv6" (network.type). */
const char *netaddr_type(int family);

#endif
