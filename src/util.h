/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers every user-space file may use; nothing else belongs here. */
#ifndef TCPOTEL_UTIL_H
#define TCPOTEL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a)  (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)      ((a) < (b) ? (a) : (b))
#define MAX(a, b)      ((a) > (b) ? (a) : (b))
#define __printf(a, b) __attribute__((format(printf, a, b)))
#define likely(x)      __builtin_expect(!!(x), 1)
#define unlikely(x)    __builtin_expect(!!(x), 0)
/* The struct that embeds *ptr as `member`. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define NSEC_PER_SEC			1000000000ULL
#define NSEC_PER_MSEC			1000000ULL

/* User space never sees kernel typedefs: the ABI header uses __u* only. */
#pragma GCC poison u8 u16 u32 u64 s8 s16 s32 s64

#endif
