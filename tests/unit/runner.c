// SPDX-License-Identifier: Apache-2.0
/*
 * Test runner: runs every registered test (or those whose name contains one
 * of the arguments), prints one line per test and ends with the summary line
 * "N passed, N failed, N skipped". Exit status is 1 when any test failed.
 */
#include <stdarg.h>
#include <stdlib.h>

#include "test.h"

static struct test_case *tests_head, **tests_tail = &tests_head;
static int current_failed, current_skipped;

void test_register(struct test_case *tc)
{
	*tests_tail = tc;
	tests_tail = &tc->next;
}

void test_fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stdout, "    %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	current_failed = 1;
}

void test_skip(const char *fmt, ...)
{
	va_list ap;

	fprintf(stdout, "    skipped: ");
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	current_skipped = 1;
}

const char *test_srcdir(void)
{
	const char *dir = getenv("TCPOTEL_SRCDIR");

	return dir && *dir ? dir : ".";
}

static int selected(const struct test_case *tc, int argc, char **argv)
{
	if (argc <= 1)
		return 1;
	for (int i = 1; i < argc; i++)
		if (strstr(tc->name, argv[i]))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (struct test_case *tc = tests_head; tc; tc = tc->next) {
		if (!selected(tc, argc, argv))
			continue;
		current_failed = current_skipped = 0;
		tc->fn();
		if (current_failed) {
			failed++;
			printf("FAIL %s\n", tc->name);
		} else if (current_skipped) {
			skipped++;
			printf("SKIP %s\n", tc->name);
		} else {
			passed++;
			printf("ok   %s\n", tc->name);
		}
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
