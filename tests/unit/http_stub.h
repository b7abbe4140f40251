/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny HTTP/1.1 server for tests, on 127.0.0.1 only: it records every request
 * (method, path, headers, body, arrival time) and answers from a script, one
 * response per request in arrival order; past the end of the script it
 * answers 200 with "{}". Keep-alive and Content-Length bodies only.
 */
#ifndef TCPOTEL_HTTP_STUB_H
#define TCPOTEL_HTTP_STUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_stub_response {
	int status;
	const char *headers; /* extra header lines, each ending in "\r\n" (may be NULL) */
	const char *body; /* may be NULL: empty */
	int delay_ms; /* wait before answering */
	bool close; /* close the connection after answering */
};

struct http_stub_request {
	char method[16];
	char path[256];
	char *headers; /* raw header block, lines ending in "\r\n" */
	char *body;
	size_t body_len;
	uint64_t t_ms; /* CLOCK_MONOTONIC ms when the request was complete */
	size_t pending; /* requests received and not yet answered then, this one included */
};

struct http_stub;

/* Listens on 127.0.0.1:port (0: any free port). NULL with errno set on failure. */
struct http_stub *http_stub__start(uint16_t port);
uint16_t http_stub__port(const struct http_stub *s);
/* Replaces the script; the responses are copied. */
void http_stub__script(struct http_stub *s, const struct http_stub_response *r, size_t n);
size_t http_stub__n_requests(struct http_stub *s);
/* Waits until at least n requests arrived; false on time-out. */
bool http_stub__wait_requests(struct http_stub *s, size_t n, int timeout_ms);
/* The i-th request (stable until stop), or NULL. */
const struct http_stub_request *http_stub__request(struct http_stub *s, size_t i);
/* Copies the value of header `name` (case-insensitive) into buf; false when absent. */
bool http_stub_request_header(const struct http_stub_request *r, const char *name, char *buf,
			      size_t size);
/* From now on every answer first holds, for ms, a lock shared by all connections: a
 * collector that serves one request at a time (0: off). */
void http_stub__serial(struct http_stub *s, int ms);
/* Number of TCP connections accepted so far. */
size_t http_stub__n_connections(struct http_stub *s);
void http_stub__stop(struct http_stub *s);

/* A loopback port that was free a moment ago (nothing listens on it). */
uint16_t http_stub_free_port(void);
uint64_t http_stub_now_ms(void);

#endif
