/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the BPF tier expects of the kernel it runs on. The kernel matrix
 * (tests/kernels/) says it in the environment; elsewhere the tests derive it
 * from the kernel itself (probe_backend()'s stand-in programs), so that no
 * kernel's answer is written into a test:
 *
 *   TCPOTEL_EXPECT_BACKENDS  back-ends whose programs must load and attach
 *                            here, comma-separated ("fentry,kprobe")
 *   TCPOTEL_EXPECT_AUTO      the back-end capture.backend: auto must choose
 *   TCPOTEL_TEST_BACKEND     the back-end the capture tests attach (default:
 *                            the one auto chooses)
 */
#ifndef TCPOTEL_TEST_KERNEL_H
#define TCPOTEL_TEST_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct capture;

/* Whether `backend` must load and attach here. */
bool kernel_expects(enum capture_backend backend);
/* The back-end auto must choose here: TCPOTEL_EXPECT_AUTO, or the first expected
 * one in the order tracepoint, fentry, kprobe (BACKEND_AUTO: none). */
enum capture_backend kernel_expected_auto(void);
/* The back-end under test (TCPOTEL_TEST_BACKEND, or the expected auto choice). */
enum capture_backend kernel_test_backend(void);
/* Loads and attaches the back-end under test (exchanges end after idle_timeout_ns
 * of silence); NULL on failure. */
struct capture *kernel_attach_test_backend(uint64_t idle_timeout_ns);
/* The same with capture.max_sockets `max_sockets` (4096 above). */
struct capture *kernel_attach_test_backend_sized(uint64_t idle_timeout_ns, uint32_t max_sockets);

#endif
