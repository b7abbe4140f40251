// SPDX-License-Identifier: Apache-2.0
/*
 * otlp-sink: the benchmark's OTLP/HTTP receiver, as cheap as a receiver can
 * be, because its CPU is taken from the same cores as the workload it
 * measures. One thread, epoll, HTTP/1.1 keep-alive, Content-Length bodies.
 * For each POST to /v1/traces or /v1/metrics it gunzips the body (ISA-L,
 * the gzip trailer's CRC and length checked), counts the spans or the metric
 * points in the JSON without parsing it, answers 200 `{}`, and appends one
 * JSON line to --log: t (Unix s at arrival), path, status, bytes (as
 * received), decoded_bytes, items, duration (s).
 *
 * Counting: a span is a `"spanId":` key, a metric point a `"timeUnixNano":`
 * key (the lowerCamelCase JSON names; `"startTimeUnixNano"` and
 * `"parentSpanId"` do not match). That holds for tcpotel's encoder, which
 * writes no exemplars, events or links and no space before a colon; the
 * benchmark compares the count with the agent's own. Validating OTLP is the
 * test receiver's job (tests/receiver/otlp_receiver.py).
 *
 * Refused: a body that is not valid gzip (400), an unknown path (404), a GET
 * on a route (405), chunked bodies (411), a Content-Type other than
 * application/json (415), bodies over 64 MiB (413).
 *
 *   otlp-sink [--listen HOST:PORT] [--log FILE]
 *
 * Prints "listening on HOST:PORT" once it listens; on SIGTERM or SIGINT it
 * prints its totals to stderr and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <isa-l/igzip_lib.h>

#define SINK_MAX_HEADER (64 * 1024)
#define SINK_MAX_BODY	(64u << 20)
#define SINK_CHUNK	(256 * 1024) /* inflated a chunk at a time, scanned while warm */
#define SINK_MAX_EVENTS 64

#define MIN(a, b)	((a) < (b) ? (a) : (b))

struct conn {
	int fd;
	char *buf; /* what was read and not yet answered */
	size_t len, cap;
	double t_first; /* arrival of the request being read */
};

struct request {
	char method[8];
	char path[64];
	size_t header_len, body_len;
	bool gzip, json, chunked, close, bad_encoding;
};

struct totals {
	uint64_t requests, refused, bytes, decoded, spans, points;
};

static volatile sig_atomic_t stop_flag;
static struct inflate_state inflater;
static uint8_t chunk[SINK_CHUNK + 32];
static struct totals totals;
static FILE *log_file;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static double now_unix(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Matches of needle in p[0, n). The search runs on the needle's first capital
 * letter, rare in JSON, so memchr does most of the work.
 */
static size_t count_in(const uint8_t *p, size_t n, const char *needle, size_t nlen)
{
	const uint8_t *end = p + n, *q;
	size_t pivot = 0, count = 0;

	while (pivot < nlen - 1 && !(needle[pivot] >= 'A' && needle[pivot] <= 'Z'))
		pivot++;
	for (q = p + pivot; q < end && (q = memchr(q, needle[pivot], (size_t)(end - q))); q++) {
		const uint8_t *at = q - pivot;

		if ((size_t)(end - at) >= nlen && memcmp(at, needle, nlen) == 0)
			count++;
	}
	return count;
}

/*
 * Inflates body (gzip) chunk by chunk and counts needle across chunk
 * boundaries. Returns 0, or -1 with *why set when it is not valid gzip.
 */
static int inflate_count(const uint8_t *body, size_t len, const char *needle, uint64_t *decoded,
			 uint64_t *items, const char **why)
{
	size_t nlen = strlen(needle), keep = 0;
	int rc;

	isal_inflate_init(&inflater);
	inflater.crc_flag = ISAL_GZIP;
	inflater.next_in = (uint8_t *)(uintptr_t)body;
	inflater.avail_in = (uint32_t)len;
	*decoded = *items = 0;
	for (;;) {
		size_t got, window;

		inflater.next_out = chunk + keep;
		inflater.avail_out = SINK_CHUNK;
		rc = isal_inflate(&inflater);
		if (rc != ISAL_DECOMP_OK) {
			*why = rc == ISAL_INCORRECT_CHECKSUM ? "gzip checksum mismatch" :
							       "invalid gzip data";
			return -1;
		}
		got = SINK_CHUNK - inflater.avail_out;
		window = keep + got;
		*decoded += got;
		/* The carried tail is shorter than the needle: no match is counted twice. */
		*items += count_in(chunk, window, needle, nlen);
		if (inflater.block_state == ISAL_BLOCK_FINISH)
			break;
		if (got == 0 && inflater.avail_in == 0) {
			*why = "gzip stream ends early";
			return -1;
		}
		/* The tail that could start a match goes in front of the next chunk. */
		keep = window < nlen - 1 ? window : nlen - 1;
		memmove(chunk, chunk + window - keep, keep);
	}
	if (inflater.avail_in != 0) {
		*why = "data after the end of the gzip stream";
		return -1;
	}
	return 0;
}

static bool header_is(const char *line, size_t n, const char *name, const char **value)
{
	size_t k = strlen(name);

	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return false;
	*value = line + k + 1;
	while (*value < line + n && (**value == ' ' || **value == '\t'))
		(*value)++;
	return true;
}

/* Parses the request line and the headers we act on. 0, or -1 when the head is malformed. */
static int parse_head(const char *buf, size_t head_len, struct request *r)
{
	const char *p = buf, *end = buf + head_len, *eol, *v;
	int n;

	memset(r, 0, sizeof(*r));
	r->header_len = head_len;
	eol = memchr(p, '\n', (size_t)(end - p));
	if (!eol || sscanf(p, "%7s %63s HTTP/1.%d", r->method, r->path, &n) != 3)
		return -1;
	for (p = eol + 1; p < end && (eol = memchr(p, '\n', (size_t)(end - p))); p = eol + 1) {
		size_t len = (size_t)(eol - p);

		if (len && p[len - 1] == '\r')
			len--;
		if (header_is(p, len, "content-length", &v))
			r->body_len = strtoul(v, NULL, 10);
		else if (header_is(p, len, "content-encoding", &v) && !strncasecmp(v, "gzip", 4))
			r->gzip = true;
		else if (header_is(p, len, "content-encoding", &v))
			r->bad_encoding = strncasecmp(v, "identity", 8) != 0;
		else if (header_is(p, len, "content-type", &v))
			r->json = !strncasecmp(v, "application/json", 16);
		else if (header_is(p, len, "transfer-encoding", &v))
			r->chunked = !strncasecmp(v, "chunked", 7);
		else if (header_is(p, len, "connection", &v))
			r->close = !strncasecmp(v, "close", 5);
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			if (poll(&pfd, 1, 1000) <= 0)
				return -1;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int reply(int fd, int status, const char *reason, const char *body)
{
	char out[512];
	int n = snprintf(out, sizeof(out),
			 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n%s",
			 status, reason, strlen(body), body);

	return write_all(fd, out, (size_t)MIN((size_t)n, sizeof(out) - 1));
}

static int refuse(int fd, int status, const char *reason, const char *message)
{
	char body[256];

	totals.refused++;
	snprintf(body, sizeof(body), "{\"code\":3,\"message\":\"%s\"}", message);
	return reply(fd, status, reason, body);
}

/* One complete request (head and body in c->buf). 0, or -1 to close the connection. */
static int serve(struct conn *c, const struct request *r)
{
	const uint8_t *body = (const uint8_t *)c->buf + r->header_len;
	bool traces = !strcmp(r->path, "/v1/traces"), metrics = !strcmp(r->path, "/v1/metrics");
	const char *needle = traces ? "\"spanId\":" : "\"timeUnixNano\":";
	uint64_t decoded = r->body_len, items = 0;
	const char *why = NULL;
	int status = 200;

	if (!traces && !metrics)
		return refuse(c->fd, 404, "Not Found", "no such path");
	if (strcmp(r->method, "POST"))
		return refuse(c->fd, 405, "Method Not Allowed", "use POST");
	if (!r->json)
		return refuse(c->fd, 415, "Unsupported Media Type", "application/json only");
	if (r->bad_encoding)
		return refuse(c->fd, 400, "Bad Request", "unsupported Content-Encoding");
	if (!r->gzip)
		items = count_in(body, r->body_len, needle, strlen(needle));
	else if (inflate_count(body, r->body_len, needle, &decoded, &items, &why))
		status = 400;
	if (log_file) {
		fprintf(log_file,
			"{\"t\":%.6f,\"path\":\"%s\",\"status\":%d,\"bytes\":%zu,"
			"\"decoded_bytes\":%" PRIu64 ",\"items\":%" PRIu64 ",\"duration\":%.6f}\n",
			c->t_first, r->path, status, r->body_len, decoded, items,
			now_unix() - c->t_first);
		fflush(log_file);
	}
	if (status != 200)
		return refuse(c->fd, 400, "Bad Request", why);
	totals.requests++;
	totals.bytes += r->body_len;
	totals.decoded += decoded;
	if (traces)
		totals.spans += items;
	else
		totals.points += items;
	return reply(c->fd, 200, "OK", "{}");
}

/* Serves every complete request in c->buf. 0, or -1 to close. */
static int drain(struct conn *c)
{
	for (;;) {
		char *end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
		struct request r;
		size_t used;

		if (!end)
			return c->len > SINK_MAX_HEADER ? -1 : 0;
		if (parse_head(c->buf, (size_t)(end - c->buf) + 4, &r))
			return -1;
		if (r.chunked) {
			refuse(c->fd, 411, "Length Required", "chunked bodies are not taken");
			return -1;
		}
		if (r.body_len > SINK_MAX_BODY) {
			refuse(c->fd, 413, "Payload Too Large", "body over 64 MiB");
			return -1;
		}
		used = r.header_len + r.body_len;
		if (c->len < used) {
			if (used > c->cap) {
				char *p = realloc(c->buf, used);

				if (!p)
					return -1;
				c->buf = p;
				c->cap = used;
			}
			return 0;
		}
		if (serve(c, &r) || r.close)
			return -1;
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
		c->t_first = c->len ? now_unix() : 0;
	}
}

/* Reads what is there. 0, or -1 when the peer is gone or the connection must close. */
static int on_readable(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->cap - c->len < 16384) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			char *p = realloc(c->buf, cap);

			if (!p)
				return -1;
			c->buf = p;
			c->cap = cap;
		}
		n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return drain(c);
		if (n <= 0)
			return -1;
		if (!c->len)
			c->t_first = now_unix();
		c->len += (size_t)n;
	}
}

static void conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->buf);
	free(c);
}

static int listen_on(const char *spec, char *shown, size_t size)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd, one = 1;

	if (!colon || (size_t)(colon - spec) >= sizeof(host)) {
		fprintf(stderr, "otlp-sink: --listen %s: want HOST:PORT (IPv4)\n", spec);
		return -1;
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host[0] ? host : "127.0.0.1", &sa.sin_addr) != 1) {
		fprintf(stderr, "otlp-sink: --listen %s: not an IPv4 address\n", spec);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 128) ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl)) {
		fprintf(stderr, "otlp-sink: --listen %s: %s\n", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
	snprintf(shown, size, "%s:%u", host, (unsigned int)ntohs(sa.sin_port));
	return fd;
}

int main(int argc, char **argv)
{
	const char *listen_spec = "127.0.0.1:4318", *log_path = NULL;
	struct epoll_event ev, evs[SINK_MAX_EVENTS];
	struct sigaction sa = { .sa_handler = on_signal };
	char shown[96];
	int lfd, ep;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
			listen_spec = argv[++i];
		} else if (!strcmp(argv[i], "--log") && i + 1 < argc) {
			log_path = argv[++i];
		} else {
			fprintf(stderr, "usage: otlp-sink [--listen HOST:PORT] [--log FILE]\n");
			return 2;
		}
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (log_path && !(log_file = fopen(log_path, "a"))) {
		fprintf(stderr, "otlp-sink: --log %s: %s\n", log_path, strerror(errno));
		return 1;
	}
	lfd = listen_on(listen_spec, shown, sizeof(shown));
	if (lfd < 0)
		return 1;
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev)) {
		fprintf(stderr, "otlp-sink: epoll: %s\n", strerror(errno));
		return 1;
	}
	printf("listening on %s\n", shown);
	fflush(stdout);
	while (!stop_flag) {
		int n = epoll_wait(ep, evs, SINK_MAX_EVENTS, 500);

		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (!c) {
				int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				int one = 1;

				if (fd < 0)
					continue;
				c = calloc(1, sizeof(*c));
				if (!c) {
					close(fd);
					continue;
				}
				c->fd = fd;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = c };
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
					close(fd);
					free(c);
				}
				continue;
			}
			if (on_readable(c))
				conn_close(ep, c);
		}
	}
	fprintf(stderr,
		"otlp-sink: %" PRIu64 " requests accepted, %" PRIu64 " refused; %" PRIu64
		" bytes received, %" PRIu64 " decoded; %" PRIu64 " spans, %" PRIu64
		" metric points\n",
		totals.requests, totals.refused, totals.bytes, totals.decoded, totals.spans,
		totals.points);
	if (log_file)
		fclose(log_file);
	return 0;
}
