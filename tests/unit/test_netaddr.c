// SPDX-License-Identifier: Apache-2.0
/* Addresses as spans and labels print them: IPv4 by hand, checked against inet_ntop. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"
#include "test.h"

TEST(netaddr_ipv4_is_inet_ntop)
{
	static const uint8_t fixed[][4] = {
		{ 0, 0, 0, 0 },
		{ 255, 255, 255, 255 },
		{ 10, 0, 9, 100 },
		{ 1, 22, 199, 200 },
	};
	char got[NETADDR_STRLEN], want[INET_ADDRSTRLEN];
	unsigned seed = 7;
	uint8_t a[4];

	for (int i = 0; i < 100000; i++) {
		if (i < 4) {
			memcpy(a, fixed[i], 4);
		} else {
			uint32_t r = (uint32_t)rand_r(&seed) ^ ((uint32_t)rand_r(&seed) << 16);

			memcpy(a, &r, 4);
		}
		netaddr_format(AF_INET, a, got);
		inet_ntop(AF_INET, a, want, sizeof(want));
		if (!ASSERT_STREQ(got, want))
			return;
	}
}

TEST(netaddr_labels)
{
	uint8_t v4[4] = { 10, 231, 0, 2 }, v6[16] = { 0xfd, 0, [15] = 1 };
	char buf[NETADDR_STRLEN + 8];

	netaddr_label(AF_INET, v4, 8080, buf, sizeof(buf));
	ASSERT_STREQ(buf, "10.231.0.2:8080");
	netaddr_label(AF_INET, v4, 0, buf, sizeof(buf));
	ASSERT_STREQ(buf, "10.231.0.2");
	netaddr_label(AF_INET6, v6, 443, buf, sizeof(buf));
	ASSERT_STREQ(buf, "[fd00::1]:443");
	ASSERT_STREQ(netaddr_type(AF_INET6), "ipv6");
}
