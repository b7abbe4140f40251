// SPDX-License-Identifier: Apache-2.0
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/libbpf.h>

enum log_level log_current_level = LOG_INFO;

const char *const log_level_names[] = {
	[LOG_ERROR] = "error",
	[LOG_WARN] = "warn",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
	NULL,
};

void log_set_level(enum log_level level)
{
	log_current_level = level;
}

const char *log_level_name(enum log_level level)
{
	if ((size_t)level >= ARRAY_SIZE(log_level_names) - 1)
		return "?";
	return log_level_names[level];
}

uint64_t log_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void log_write(enum log_level level, const char *fmt, ...)
{
	char stamp[32], line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line so that lines from two threads never interleave. */
	fprintf(stderr, "%s.%03ldZ %-5s %s\n", stamp, ts.tv_nsec / 1000000, log_level_name(level),
		line);
}

/* A verifier log runs to thousands of lines; its reason is at the end. */
#define LIBBPF_HEAD_LINES 8
#define LIBBPF_TAIL_LINES 40

/* One libbpf message, line by line: a long one (a verifier log) keeps its
 * first and last lines below debug level, all of them at debug. */
static void libbpf_write(enum log_level ours, const char *fmt, va_list ap)
{
	char *text = NULL, *line, *save = NULL;
	size_t n = 0, i = 0;

	if (ours > log_current_level || vasprintf(&text, fmt, ap) < 0)
		return;
	for (const char *p = text; *p; p++)
		n += *p == '\n' || !p[1];
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
		bool keep = log_current_level >= LOG_DEBUG || i < LIBBPF_HEAD_LINES ||
			    i + LIBBPF_TAIL_LINES >= n;

		if (!keep) {
			if (i == LIBBPF_HEAD_LINES)
				log_write(
					ours,
					"libbpf: (%zu lines left out; all of them at --log-level debug)",
					n - LIBBPF_HEAD_LINES - LIBBPF_TAIL_LINES);
			continue;
		}
		/* libbpf starts its own lines with "libbpf: ". */
		log_write(ours, "%s%s", strncmp(line, "libbpf: ", 8) ? "libbpf: " : "", line);
	}
	free(text);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	libbpf_write(level == LIBBPF_WARN ? LOG_WARN : LOG_DEBUG, fmt, ap);
	return 0;
}

/* While a back-end that may well fail is tried: its complaints are not warnings. */
static int libbpf_print_debug(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	libbpf_write(LOG_DEBUG, fmt, ap);
	return 0;
}

static int libbpf_silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

void log_bridge_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}

const char *log_strerror(int err)
{
	return err == 524 /* ENOTSUPP, kernel-internal */ ? "Not supported by this kernel" :
							    strerror(err);
}

void *log_mute_libbpf(void)
{
	return (void *)libbpf_set_print(libbpf_silent);
}

void *log_demote_libbpf(void)
{
	return (void *)libbpf_set_print(libbpf_print_debug);
}

void log_restore_libbpf(void *old)
{
	libbpf_set_print((libbpf_print_fn_t)old);
}
