/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small test framework after the kernel's selftests/bpf/test_progs.h:
 * TEST(name) registers a test; ASSERT_* macros report the expression, the
 * values and the line, mark the test failed and return false so that a test
 * can stop with `if (!ASSERT_...) return;`. test_skip() must give a reason.
 */
#ifndef TCPOTEL_TEST_H
#define TCPOTEL_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct test_case {
	const char *name;
	const char *file;
	void (*fn)(void);
	struct test_case *next;
};

void test_register(struct test_case *tc);
void test_fail_at(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Directory of the source tree (for fixtures), from TCPOTEL_SRCDIR or ".". */
const char *test_srcdir(void);

#define TEST(name)                                                                         \
	static void test_##name(void);                                                     \
	static struct test_case test_case_##name = { #name, __FILE__, test_##name, NULL }; \
	__attribute__((constructor)) static void test_register_##name(void)                \
	{                                                                                  \
		test_register(&test_case_##name);                                          \
	}                                                                                  \
	static void test_##name(void)

#define ASSERT_TRUE(expr)                                                             \
	({                                                                            \
		bool __ok = !!(expr);                                                 \
		if (!__ok)                                                            \
			test_fail_at(__FILE__, __LINE__, "expected true: %s", #expr); \
		__ok;                                                                 \
	})
#define ASSERT_FALSE(expr) ASSERT_TRUE(!(expr))

#define ASSERT_INT_OP(a, op, b)                                                                 \
	({                                                                                      \
		long long __a = (long long)(a), __b = (long long)(b);                           \
		bool __ok = __a op __b;                                                         \
		if (!__ok)                                                                      \
			test_fail_at(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b, \
				     __a, __b);                                                 \
		__ok;                                                                           \
	})
#define ASSERT_EQ(a, b) ASSERT_INT_OP(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_OP(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_OP(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_OP(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_OP(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_OP(a, >=, b)
#define ASSERT_OK(err)	ASSERT_INT_OP(err, ==, 0)

#define ASSERT_U64_EQ(a, b)                                                                       \
	({                                                                                        \
		uint64_t __a = (a), __b = (b);                                                    \
		bool __ok = __a == __b;                                                           \
		if (!__ok)                                                                        \
			test_fail_at(__FILE__, __LINE__, "%s == %s: %" PRIu64 " vs %" PRIu64, #a, \
				     #b, __a, __b);                                               \
		__ok;                                                                             \
	})

#define ASSERT_DOUBLE_NEAR(a, b, eps)                                                             \
	({                                                                                        \
		double __a = (a), __b = (b);                                                      \
		bool __ok = __a - __b <= (eps) && __b - __a <= (eps);                             \
		if (!__ok)                                                                        \
			test_fail_at(__FILE__, __LINE__, "%s ~= %s: %g vs %g", #a, #b, __a, __b); \
		__ok;                                                                             \
	})

#define ASSERT_STREQ(a, b)                                                                      \
	({                                                                                      \
		const char *__a = (a), *__b = (b);                                              \
		bool __ok = __a && __b && strcmp(__a, __b) == 0;                                \
		if (!__ok)                                                                      \
			test_fail_at(__FILE__, __LINE__,                                        \
				     "%s == %s:\n      got: \"%s\"\n expected: \"%s\"", #a, #b, \
				     __a ? __a : "(null)", __b ? __b : "(null)");               \
		__ok;                                                                           \
	})

#define ASSERT_NOT_NULL(p)                                                             \
	({                                                                             \
		bool __ok = (p) != NULL;                                               \
		if (!__ok)                                                             \
			test_fail_at(__FILE__, __LINE__, "expected non-NULL: %s", #p); \
		__ok;                                                                  \
	})

#endif
