// SPDX-License-Identifier: Apache-2.0
/*
 * Root tier: the tracepoint back-end attached for real, with loopback
 * traffic made by this process. Checks what the kernel side keeps per socket
 * (exact bytes, role, tuple, v4-mapped folding, the request sequence number
 * both ends agree on) and that a close hands over the final numbers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.h"
#include "test.h"

/* Records of the connection under test (other traffic on the host is ignored). */
struct closed {
	uint16_t port; /* the server's port */
	struct tcpotel_close_record recs[64];
	int n;
	int exchanges;
};

static bool ours(const struct closed *c, const struct tcpotel_tuple *t)
{
	return t->sport == c->port || t->dport == c->port;
}

static int on_record(void *ctx, void *data, size_t size)
{
	const struct tcpotel_record_hdr *hdr = data;
	struct closed *c = ctx;

	if (hdr->type == TCPOTEL_RECORD_CLOSE && c->n < 64 &&
	    ours(c, &((struct tcpotel_close_record *)data)->sock.tuple))
		memcpy(&c->recs[c->n++], data, sizeof(c->recs[0]));
	if (hdr->type == TCPOTEL_RECORD_EXCHANGE &&
	    ours(c, &((struct tcpotel_exchange_record *)data)->tuple))
		c->exchanges++;
	return 0;
}

static struct capture *attach_tracepoint(void)
{
	struct capture_opts opts = {
		.backend = BACKEND_TRACEPOINT,
		.max_sockets = 4096,
		.exchange_records = true,
		.idle_timeout_ns = 5000000000ULL,
	};
	struct capture *c = capture__load(&opts);

	if (c && capture__attach(c)) {
		capture__destroy(c);
		return NULL;
	}
	return c;
}

static bool send_all(int fd, size_t n)
{
	static char buf[65536];

	while (n) {
		ssize_t w = send(fd, buf, MIN(n, sizeof(buf)), 0);

		if (w <= 0)
			return false;
		n -= (size_t)w;
	}
	return true;
}

static bool recv_all(int fd, size_t n)
{
	static char buf[65536];

	while (n) {
		ssize_t r = recv(fd, buf, MIN(n, sizeof(buf)), 0);

		if (r <= 0)
			return false;
		n -= (size_t)r;
	}
	return true;
}

struct pair {
	int listener, client, server;
	uint16_t port;
};

/* A connected pair on loopback: family AF_INET, AF_INET6, or AF_INET6 with a v4-mapped peer. */
static bool make_pair(struct pair *p, int family, bool v4mapped)
{
	struct sockaddr_storage ss = {};
	socklen_t len;

	p->listener = socket(v4mapped ? AF_INET : family, SOCK_STREAM, 0);
	if (family == AF_INET || v4mapped) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	if (bind(p->listener, (struct sockaddr *)&ss, len) || listen(p->listener, 16) ||
	    getsockname(p->listener, (struct sockaddr *)&ss, &len))
		return false;
	p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (v4mapped) {
		struct sockaddr_in6 m = { .sin6_family = AF_INET6, .sin6_port = htons(p->port) };

		inet_pton(AF_INET6, "::ffff:127.0.0.1", &m.sin6_addr);
		p->client = socket(AF_INET6, SOCK_STREAM, 0);
		if (connect(p->client, (struct sockaddr *)&m, sizeof(m)))
			return false;
	} else {
		p->client = socket(family, SOCK_STREAM, 0);
		if (connect(p->client, (struct sockaddr *)&ss, len))
			return false;
	}
	p->server = accept(p->listener, NULL, NULL);
	return p->server >= 0;
}

static bool find_entry(struct capture *c, uint16_t sport, uint16_t dport, struct tcpotel_sock *out)
{
	int fd = capture__sockets_fd(c);
	__u64 key, next;
	bool first = true;

	while (bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
		first = false;
		key = next;
		if (bpf_map_lookup_elem(fd, &key, out))
			continue;
		if (out->tuple.sport == sport && out->tuple.dport == dport)
			return true;
	}
	return false;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	getsockname(fd, (struct sockaddr *)&ss, &len);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void exact_bytes_case(int family, bool v4mapped)
{
	const size_t req = 1000003, resp = 77777;
	struct tcpotel_sock cl, sv;
	struct closed closed = {};
	struct ring_buffer *rb;
	struct capture *c;
	struct pair p;
	uint16_t cport;

	if (geteuid() != 0) {
		test_skip("needs root (attaches BPF programs)");
		return;
	}
	c = attach_tracepoint();
	if (!ASSERT_NOT_NULL(c))
		return;
	rb = ring_buffer__new(capture__events_fd(c), on_record, &closed, NULL);
	if (!ASSERT_NOT_NULL(rb) || !ASSERT_TRUE(make_pair(&p, family, v4mapped)))
		goto out;
	cport = local_port(p.client);
	closed.port = p.port;
	/* Two exchanges: the first ends when the second request starts. */
	ASSERT_TRUE(send_all(p.client, req) && recv_all(p.server, req));
	ASSERT_TRUE(send_all(p.server, resp) && recv_all(p.client, resp));
	ASSERT_TRUE(send_all(p.client, 10) && recv_all(p.server, 10));
	ASSERT_TRUE(send_all(p.server, 20) && recv_all(p.client, 20));

	if (!ASSERT_TRUE(find_entry(c, cport, p.port, &cl)) ||
	    !ASSERT_TRUE(find_entry(c, p.port, cport, &sv)))
		goto out;
	ASSERT_EQ(cl.role, TCPOTEL_ROLE_CLIENT);
	ASSERT_EQ(sv.role, TCPOTEL_ROLE_SERVER);
	ASSERT_EQ(cl.tuple.family, v4mapped ? AF_INET : family);
	ASSERT_EQ(sv.tuple.family, v4mapped ? AF_INET : family);
	ASSERT_U64_EQ(cl.bytes_sent, req + 10);
	ASSERT_U64_EQ(cl.bytes_received, resp + 20);
	ASSERT_U64_EQ(sv.bytes_sent, resp + 20);
	ASSERT_U64_EQ(sv.bytes_received, req + 10);
	ASSERT_EQ(cl.tgid, getpid());
	ASSERT_TRUE(cl.flags & TCPOTEL_SOCK_OPENED);
	ASSERT_TRUE(sv.flags & TCPOTEL_SOCK_OPENED);
	/* The open (second) exchange: both ends computed the same request sequence. */
	ASSERT_EQ(cl.ex.phase, TCPOTEL_PHASE_RESPONSE);
	ASSERT_EQ(sv.ex.phase, TCPOTEL_PHASE_RESPONSE);
	ASSERT_EQ(cl.ex.request_seq, sv.ex.request_seq);
	ASSERT_U64_EQ(cl.ex.request_bytes, 10);
	ASSERT_U64_EQ(sv.ex.response_bytes, 20);
	ASSERT_GT(cl.srtt_count, 0);

	close(p.client);
	close(p.server);
	close(p.listener);
	usleep(100 * 1000);
	ring_buffer__consume(rb);
	/* The first exchange of each end came out as a record at the second turn. */
	ASSERT_EQ(closed.exchanges, 2);
	ASSERT_EQ(closed.n, 2);
	for (int i = 0; i < closed.n; i++) {
		const struct tcpotel_sock *s = &closed.recs[i].sock;
		bool is_client = s->role == TCPOTEL_ROLE_CLIENT;

		ASSERT_U64_EQ(s->bytes_sent, is_client ? req + 10 : resp + 20);
		ASSERT_U64_EQ(s->bytes_received, is_client ? resp + 20 : req + 10);
	}
	ASSERT_FALSE(find_entry(c, cport, p.port, &cl));
out:
	ring_buffer__free(rb);
	capture__destroy(c);
}

TEST(tracepoint_exact_bytes_ipv4)
{
	exact_bytes_case(AF_INET, false);
}

TEST(tracepoint_exact_bytes_ipv6)
{
	exact_bytes_case(AF_INET6, false);
}

TEST(tracepoint_v4mapped_folded_to_ipv4)
{
	exact_bytes_case(AF_INET6, true);
}
