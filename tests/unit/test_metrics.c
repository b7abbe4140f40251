// SPDX-License-Identifier: Apache-2.0
/*
 * tcp.exchange.duration is counted in the kernel and exported by user space:
 * the explicit bounds user space writes must be the ones the kernel counts
 * with, and metrics_exchange_bucket(), with which the unit tests and the
 * benchmark stand in for the kernel, must pick the kernel's bucket.
 */
#include <math.h>

#include "metrics.h"
#include "test.h"

TEST(metrics_exchange_bounds_match_the_kernel)
{
	static const uint64_t kernel_ns[] = TCPOTEL_EXCHANGE_BOUNDS_NS;

	ASSERT_EQ(metrics_n_exchange_bounds, TCPOTEL_EXCHANGE_BUCKETS - 1);
	ASSERT_EQ(sizeof(kernel_ns) / sizeof(kernel_ns[0]), TCPOTEL_EXCHANGE_BUCKETS - 1);
	for (size_t i = 0; i < metrics_n_exchange_bounds; i++) {
		ASSERT_EQ(metrics_exchange_bounds_ns[i], kernel_ns[i]);
		ASSERT_DOUBLE_NEAR(metrics_exchange_bounds[i], kernel_ns[i] * 1e-9,
				   metrics_exchange_bounds[i] * 1e-12);
		if (i)
			ASSERT_GT(kernel_ns[i], kernel_ns[i - 1]);
	}
}

/* As the kernel's exchange_bucket(): how many bounds the duration exceeds. */
TEST(metrics_exchange_bucket_is_the_kernels)
{
	ASSERT_EQ(metrics_exchange_bucket(0), 0);
	ASSERT_EQ(metrics_exchange_bucket(100000), 0); /* at a bound: that bucket */
	ASSERT_EQ(metrics_exchange_bucket(100001), 1); /* just above: the next */
	ASSERT_EQ(metrics_exchange_bucket(1000000000), 12);
	ASSERT_EQ(metrics_exchange_bucket(60000000000ULL), TCPOTEL_EXCHANGE_BUCKETS - 2);
	ASSERT_EQ(metrics_exchange_bucket(60000000001ULL), TCPOTEL_EXCHANGE_BUCKETS - 1);
	ASSERT_EQ(metrics_exchange_bucket(UINT64_MAX), TCPOTEL_EXCHANGE_BUCKETS - 1);
}
