/* SPDX-License-Identifier: Apache-2.0 */
/* Leveled logging to stderr; the level is checked before anything is formatted. */
#ifndef TCPOTEL_LOG_H
#define TCPOTEL_LOG_H

#include <inttypes.h>
#include <stdbool.h>
#include "util.h"

enum log_level {
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
};

extern enum log_level log_current_level;

/* The name of each level ("error", "warn", "info", "debug"), NULL-terminated:
 * what the log prints and what log.level takes (config.c). */
extern const char *const log_level_names[];

void log_set_level(enum log_level level);
const char *log_level_name(enum log_level level);
void log_write(enum log_level level, const char *fmt, ...) __printf(2, 3);
/* Routes libbpf's own messages through this logger (debug ones only at debug). */
void log_bridge_libbpf(void);
/* Mutes libbpf while a probe that is expected to fail runs; returns the old handler. */
void *log_mute_libbpf(void);
/* libbpf's messages at debug level only (a try that may fail); returns the old handler. */
void *log_demote_libbpf(void);
void log_restore_libbpf(void *old);
/* strerror(), which also names the kernel's own ENOTSUPP (524): what BPF
 * attach calls return where the kernel cannot do it (fentry on arm64 < 6.4). */
const char *log_strerror(int err);

#define log_at(level, ...)                               \
	do {                                             \
		if ((level) <= log_current_level)        \
			log_write((level), __VA_ARGS__); \
	} while (0)
#define log_err(...)   log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

/*
 * Logs at most once per interval_ms per call site. The messages held back in
 * between are counted: the next one let through is preceded by a line that
 * says how many.
 */
#define log_ratelimited(level, interval_ms, ...)                                           \
	do {                                                                               \
		static uint64_t __last_ms;                                                 \
		static uint64_t __suppressed;                                              \
		uint64_t __now = log_now_ms();                                             \
		if (__last_ms == 0 || __now - __last_ms >= (interval_ms)) {                \
			if (__suppressed)                                                  \
				log_at(level, "(%" PRIu64 " similar messages suppressed)", \
				       __suppressed);                                      \
			__last_ms = __now;                                                 \
			__suppressed = 0;                                                  \
			log_at(level, __VA_ARGS__);                                        \
		} else {                                                                   \
			__suppressed++;                                                    \
		}                                                                          \
	} while (0)

uint64_t log_now_ms(void);

#endif
