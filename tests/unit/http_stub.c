// SPDX-License-Identifier: Apache-2.0
/*
 * Loopback HTTP/1.1 server for the export tests: one accept thread, one
 * thread per connection, requests recorded under one mutex.
 */
#include "http_stub.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STUB_MAX_CONNS 64
#define STUB_MAX_HEAD  (64 * 1024)

struct stub_conn {
	struct http_stub *s;
	int fd;
	pthread_t th;
};

struct http_stub {
	int listen_fd;
	int wake[2]; /* pipe: written at stop to end the accept loop */
	uint16_t port;
	pthread_t accept_th;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	bool stopping;
	struct http_stub_response *script;
	size_t n_script, next_script;
	struct http_stub_request **reqs;
	size_t n_reqs, cap_reqs;
	struct stub_conn conns[STUB_MAX_CONNS];
	size_t n_conns;
	int serial_ms; /* under lock */
	pthread_mutex_t serial_lock; /* held while an answer is "worked on" in serial mode */
	size_t pending; /* received, not yet answered */
};

uint64_t http_stub_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int stub_listen(uint16_t port, uint16_t *bound)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	socklen_t len = sizeof(sa);
	int one = 1, fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	*bound = ntohs(sa.sin_port);
	return fd;
}

uint16_t http_stub_free_port(void)
{
	uint16_t port = 0;
	int fd = stub_listen(0, &port);

	if (fd >= 0)
		close(fd);
	return port;
}

static bool stub_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static bool stub_header(const char *headers, const char *name, char *buf, size_t size)
{
	size_t nlen = strlen(name);

	for (const char *line = headers; line && *line;) {
		const char *end = strstr(line, "\r\n");
		size_t llen = end ? (size_t)(end - line) : strlen(line);

		if (llen > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			size_t vlen;

			while (*v == ' ' || *v == '\t')
				v++;
			vlen = (size_t)(line + llen - v);
			while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
				vlen--;
			if (size > 0) {
				if (vlen >= size)
					vlen = size - 1;
				memcpy(buf, v, vlen);
				buf[vlen] = '\0';
			}
			return true;
		}
		line = end ? end + 2 : NULL;
	}
	return false;
}

bool http_stub_request_header(const struct http_stub_request *r, const char *name, char *buf,
			      size_t size)
{
	return stub_header(r->headers, name, buf, size);
}

static void stub_sleep_ms(struct http_stub *s, int ms)
{
	uint64_t until = http_stub_now_ms() + (uint64_t)ms;

	for (;;) {
		struct timespec ts = { 0, 5 * 1000000L };
		bool stop;

		pthread_mutex_lock(&s->lock);
		stop = s->stopping;
		pthread_mutex_unlock(&s->lock);
		if (stop || http_stub_now_ms() >= until)
			return;
		nanosleep(&ts, NULL);
	}
}

/* Records one request and picks its response; returns false when out of memory. */
static bool stub_record(struct http_stub *s, struct http_stub_request *req,
			struct http_stub_response *resp)
{
	bool ok = true;

	pthread_mutex_lock(&s->lock);
	if (s->n_reqs == s->cap_reqs) {
		size_t cap = s->cap_reqs ? s->cap_reqs * 2 : 64;
		struct http_stub_request **r = realloc(s->reqs, cap * sizeof(*r));

		if (r) {
			s->reqs = r;
			s->cap_reqs = cap;
		} else {
			ok = false;
		}
	}
	if (ok) {
		req->t_ms = http_stub_now_ms();
		s->reqs[s->n_reqs++] = req;
		req->pending = ++s->pending;
		if (s->next_script < s->n_script)
			*resp = s->script[s->next_script++];
		else
			*resp = (struct http_stub_response){ .status = 200, .body = "{}" };
		pthread_cond_broadcast(&s->changed);
	}
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static const char *stub_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Status";
	}
}

static bool stub_respond(struct http_stub *s, int fd, const struct http_stub_response *r)
{
	const char *body = r->body ? r->body : "";
	char *msg;
	bool ok;
	int n, serial_ms;

	pthread_mutex_lock(&s->lock);
	serial_ms = s->serial_ms;
	pthread_mutex_unlock(&s->lock);
	if (serial_ms > 0) {
		pthread_mutex_lock(&s->serial_lock);
		stub_sleep_ms(s, serial_ms);
		pthread_mutex_unlock(&s->serial_lock);
	}
	if (r->delay_ms > 0)
		stub_sleep_ms(s, r->delay_ms);
	/* Answered from here on: the next request may come as soon as this is written. */
	pthread_mutex_lock(&s->lock);
	s->pending--;
	pthread_mutex_unlock(&s->lock);
	/* One write for head and body: two small writes would meet Nagle and delayed ACKs. */
	n = asprintf(
		&msg,
		"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s%s\r\n%s",
		r->status, stub_reason(r->status), strlen(body), r->headers ? r->headers : "",
		r->close ? "Connection: close\r\n" : "", body);
	if (n < 0)
		return false;
	ok = stub_write_all(fd, msg, (size_t)n);
	free(msg);
	return ok;
}

static void *stub_conn_fn(void *arg)
{
	struct stub_conn *c = arg;
	struct http_stub *s = c->s;
	size_t cap = 16384, have = 0;
	char *buf = malloc(cap);

	while (buf) {
		struct http_stub_request *req;
		struct http_stub_response resp;
		char *eoh, *line_end, clen[32], expect[64];
		size_t head_len, body_len = 0;
		ssize_t r;

		/* Read until the end of the header block. */
		while (!(eoh = memmem(buf, have, "\r\n\r\n", 4))) {
			if (have == cap) {
				if (cap >= STUB_MAX_HEAD)
					goto out;
				cap *= 2;
				char *nb = realloc(buf, cap);
				if (!nb)
					goto out;
				buf = nb;
			}
			r = recv(c->fd, buf + have, cap - have, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				goto out;
			have += (size_t)r;
		}
		head_len = (size_t)(eoh - buf) + 4;
		req = calloc(1, sizeof(*req));
		if (!req)
			goto out;
		line_end = memmem(buf, head_len, "\r\n", 2);
		*line_end = '\0';
		if (sscanf(buf, "%15s %255s", req->method, req->path) != 2) {
			free(req);
			goto out;
		}
		req->headers = strndup(line_end + 2, head_len - (size_t)(line_end + 2 - buf));
		if (!req->headers) {
			free(req);
			goto out;
		}
		if (stub_header(req->headers, "Content-Length", clen, sizeof(clen)))
			body_len = strtoul(clen, NULL, 10);
		if (stub_header(req->headers, "Expect", expect, sizeof(expect)) &&
		    strcasecmp(expect, "100-continue") == 0)
			stub_write_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		/* Consume the header block, then read the body. */
		memmove(buf, buf + head_len, have - head_len);
		have -= head_len;
		if (body_len + 1 > cap) {
			char *nb = realloc(buf, body_len + 1);
			if (!nb) {
				free(req->headers);
				free(req);
				goto out;
			}
			buf = nb;
			cap = body_len + 1;
		}
		while (have < body_len) {
			r = recv(c->fd, buf + have, cap - have, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				free(req->headers);
				free(req);
				goto out;
			}
			have += (size_t)r;
		}
		req->body = malloc(body_len + 1);
		if (!req->body) {
			free(req->headers);
			free(req);
			goto out;
		}
		memcpy(req->body, buf, body_len);
		req->body[body_len] = '\0';
		req->body_len = body_len;
		memmove(buf, buf + body_len, have - body_len);
		have -= body_len;
		if (!stub_record(s, req, &resp)) {
			free(req->body);
			free(req->headers);
			free(req);
			goto out;
		}
		if (!stub_respond(s, c->fd, &resp) || resp.close)
			goto out;
	}
out:
	free(buf);
	shutdown(c->fd, SHUT_RDWR);
	return NULL;
}

static void *stub_accept_fn(void *arg)
{
	struct http_stub *s = arg;
	int one = 1;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = s->listen_fd, .events = POLLIN },
			{ .fd = s->wake[0], .events = POLLIN },
		};
		struct stub_conn *c;
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_mutex_lock(&s->lock);
		if (s->n_conns == STUB_MAX_CONNS || s->stopping) {
			pthread_mutex_unlock(&s->lock);
			close(fd);
			continue;
		}
		c = &s->conns[s->n_conns];
		c->s = s;
		c->fd = fd;
		if (pthread_create(&c->th, NULL, stub_conn_fn, c) == 0)
			s->n_conns++;
		else
			close(fd);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

struct http_stub *http_stub__start(uint16_t port)
{
	struct http_stub *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return NULL;
	s->listen_fd = stub_listen(port, &s->port);
	if (s->listen_fd < 0) {
		err = -s->listen_fd;
		goto err_free;
	}
	if (pipe2(s->wake, O_CLOEXEC) < 0) {
		err = errno;
		goto err_listen;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->serial_lock, NULL);
	pthread_cond_init(&s->changed, NULL);
	err = pthread_create(&s->accept_th, NULL, stub_accept_fn, s);
	if (err)
		goto err_pipe;
	return s;

err_pipe:
	pthread_cond_destroy(&s->changed);
	pthread_mutex_destroy(&s->serial_lock);
	pthread_mutex_destroy(&s->lock);
	close(s->wake[0]);
	close(s->wake[1]);
err_listen:
	close(s->listen_fd);
err_free:
	free(s);
	errno = err;
	return NULL;
}

uint16_t http_stub__port(const struct http_stub *s)
{
	return s->port;
}

void http_stub__script(struct http_stub *s, const struct http_stub_response *r, size_t n)
{
	struct http_stub_response *copy = n ? calloc(n, sizeof(*copy)) : NULL;

	if (n && !copy)
		return;
	if (n)
		memcpy(copy, r, n * sizeof(*copy));
	pthread_mutex_lock(&s->lock);
	free(s->script);
	s->script = copy;
	s->n_script = n;
	s->next_script = 0;
	pthread_mutex_unlock(&s->lock);
}

size_t http_stub__n_requests(struct http_stub *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->n_reqs;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void http_stub__serial(struct http_stub *s, int ms)
{
	pthread_mutex_lock(&s->lock);
	s->serial_ms = ms;
	pthread_mutex_unlock(&s->lock);
}

size_t http_stub__n_connections(struct http_stub *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->n_conns;
	pthread_mutex_unlock(&s->lock);
	return n;
}

bool http_stub__wait_requests(struct http_stub *s, size_t n, int timeout_ms)
{
	struct timespec until;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	while (s->n_reqs < n) {
		if (pthread_cond_timedwait(&s->changed, &s->lock, &until) == ETIMEDOUT)
			break;
	}
	ok = s->n_reqs >= n;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

const struct http_stub_request *http_stub__request(struct http_stub *s, size_t i)
{
	const struct http_stub_request *r = NULL;

	pthread_mutex_lock(&s->lock);
	if (i < s->n_reqs)
		r = s->reqs[i];
	pthread_mutex_unlock(&s->lock);
	return r;
}

void http_stub__stop(struct http_stub *s)
{
	size_t n;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_mutex_unlock(&s->lock);
	if (write(s->wake[1], "x", 1) < 0)
		perror("http_stub: wake");
	pthread_join(s->accept_th, NULL);
	/* The accept thread is gone: n_conns no longer changes. */
	n = s->n_conns;
	for (size_t i = 0; i < n; i++)
		shutdown(s->conns[i].fd, SHUT_RDWR);
	for (size_t i = 0; i < n; i++) {
		pthread_join(s->conns[i].th, NULL);
		close(s->conns[i].fd);
	}
	for (size_t i = 0; i < s->n_reqs; i++) {
		free(s->reqs[i]->headers);
		free(s->reqs[i]->body);
		free(s->reqs[i]);
	}
	free(s->reqs);
	free(s->script);
	close(s->listen_fd);
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_cond_destroy(&s->changed);
	pthread_mutex_destroy(&s->serial_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
