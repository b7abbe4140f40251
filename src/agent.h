/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent: capture loaded and attached, and the drain loop that turns the
 * kernel's ring buffer and socket table into metrics and spans. The loop runs
 * on the caller's thread; export runs on its own thread behind a bounded
 * queue, so a slow collector never stalls the drain.
 */
#ifndef TCPOTEL_AGENT_H
#define TCPOTEL_AGENT_H

#include <signal.h>

#include "config.h"

struct agent;

/* Starts everything (capture attached, its back-end chosen by capture.backend).
 * NULL + errno on failure, already logged. */
struct agent *agent__start(const struct config *cfg);
/* The capture back-end in use. */
enum capture_backend agent__backend(const struct agent *a);
/* Runs until *stop becomes non-zero, then flushes within the export timeout. */
int agent__run(struct agent *a, volatile sig_atomic_t *stop);
void agent__free(struct agent *a);
/* The live map's URL, or NULL when ui.listen is off. */
const char *agent__ui_url(const struct agent *a);

#endif
