// SPDX-License-Identifier: Apache-2.0
/*
 * Root tier: a back-end attached for real (TCPOTEL_TEST_BACKEND, or the one
 * auto chooses here: see kernel.h), with loopback traffic made by this
 * process. Checks what the kernel side keeps per socket (exact bytes, role,
 * tuple, v4-mapped folding, the request sequence number both ends agree on),
 * that a close hands over the final numbers, the sweep's collect program (it
 * reads the sockets that changed, and ends an exchange gone silent once,
 * however often it is asked and whatever comes after), and how each way of
 * reading is counted: a peek never, a read that waits for all its bytes once,
 * splice() by the fentry and kprobe back-ends only (the tracepoints do not
 * see it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.h"
#include "kernel.h"
#include "test.h"

/*
 * The back-end under test, attached (exchanges end after idle_ns of
 * silence); NULL when the test cannot go on: skipped without root, or
 * failed to attach.
 */
static struct capture *attach_as_root(uint64_t idle_ns)
{
	struct capture *c;

	if (geteuid() != 0) {
		test_skip("needs root (attaches BPF programs)");
		return NULL;
	}
	c = kernel_attach_test_backend(idle_ns);
	ASSERT_NOT_NULL(c);
	return c;
}

/* Records of the connection under test (other traffic on the host is ignored). */
struct closed {
	uint16_t port; /* the server's port */
	struct tcpotel_close_record recs[64];
	int n;
	int exchanges;
	/* Exchange records by end ([role == TCPOTEL_ROLE_SERVER]) and error. */
	int by_end[2];
	int closed_by_peer[2];
	int other_errors;
	/* The first exchanges' request sequence numbers, sizes and segments
	 * retransmitted, by end. */
	uint32_t request_seq[2][4];
	uint64_t request_bytes[2][4];
	uint32_t retransmits[2][4];
	uint64_t start_ns[2][4];
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
	    ours(c, &((struct tcpotel_exchange_record *)data)->tuple)) {
		const struct tcpotel_exchange_record *r = data;
		int server = r->role == TCPOTEL_ROLE_SERVER;

		c->exchanges++;
		if (c->by_end[server] < 4) {
			/* In start order: one socket's records may come from several
			 * CPUs' rings, out of order. */
			int i = c->by_end[server];

			for (; i > 0 && c->start_ns[server][i - 1] > r->ex.start_ns; i--) {
				c->start_ns[server][i] = c->start_ns[server][i - 1];
				c->request_seq[server][i] = c->request_seq[server][i - 1];
				c->request_bytes[server][i] = c->request_bytes[server][i - 1];
				c->retransmits[server][i] = c->retransmits[server][i - 1];
			}
			c->start_ns[server][i] = r->ex.start_ns;
			c->request_seq[server][i] = r->ex.request_seq;
			c->request_bytes[server][i] = r->ex.request_bytes;
			c->retransmits[server][i] = r->ex.retransmits;
		}
		c->by_end[server]++;
		if (r->ex.error == TCPOTEL_ERR_CLOSED_BY_PEER)
			c->closed_by_peer[server]++;
		else if (r->ex.error)
			c->other_errors++;
	}
	return 0;
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

/*
 * A loopback pair whose records `closed` collects from c's ring buffer: the
 * ring buffer (free it with ring_buffer__free()), or NULL, asserted, when it
 * or the pair cannot be made.
 */
static struct ring_buffer *record_pair(struct capture *c, struct closed *closed, struct pair *p,
				       int family, bool v4mapped)
{
	struct ring_buffer *rb = capture__records_new(c, on_record, closed);

	if (!ASSERT_NOT_NULL(rb))
		return NULL;
	if (!ASSERT_TRUE(make_pair(p, family, v4mapped))) {
		ring_buffer__free(rb);
		return NULL;
	}
	closed->port = p->port;
	return rb;
}

/* The entry of a socket, in the socket table's front or its hash. */
static bool find_entry(struct capture *c, uint16_t sport, uint16_t dport, struct tcpotel_sock *out)
{
	int fd = capture__sockets_fd(c), front = capture__front_fd(c);
	struct bpf_map_info info = {};
	__u32 info_len = sizeof(info);
	struct tcpotel_sock_slot slot;
	__u64 key, next;
	bool first = true;

	if (front >= 0 && !bpf_obj_get_info_by_fd(front, &info, &info_len)) {
		for (__u32 i = 0; i < info.max_entries; i++) {
			if (bpf_map_lookup_elem(front, &i, &slot) || !slot.key)
				continue;
			if (slot.sock.tuple.sport == sport && slot.sock.tuple.dport == dport) {
				*out = slot.sock;
				return true;
			}
		}
	}

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

	c = attach_as_root(5000000000ULL);
	if (!c)
		return;
	rb = record_pair(c, &closed, &p, family, v4mapped);
	if (!rb)
		goto out;
	cport = local_port(p.client);
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
	/* The first exchange of each end came out as a record at the second turn,
	 * the second one at the close. */
	ASSERT_EQ(closed.exchanges, 4);
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

TEST(capture_exact_bytes_ipv4)
{
	exact_bytes_case(AF_INET, false);
}

TEST(capture_exact_bytes_ipv6)
{
	exact_bytes_case(AF_INET6, false);
}

TEST(capture_v4mapped_folded_to_ipv4)
{
	exact_bytes_case(AF_INET6, true);
}

/*
 * The socket table's two places (bpf/socktab.bpf.h): at the smallest
 * capture.max_sockets the tracepoint object's front has 256 slots, so 200
 * connections (400 sockets) fill many and find many taken. Each socket's
 * bytes are exact wherever its entry is, and on the tracepoint back-end both
 * the front and the hash hold some of them.
 */
#define FRONT_PAIRS 200

struct table_count {
	uint16_t port[FRONT_PAIRS]; /* servers' ports */
	uint16_t cport[FRONT_PAIRS];
	int exact, in_front, in_hash;
};

static void count_entry(struct table_count *t, const struct tcpotel_sock *s, bool front)
{
	for (int i = 0; i < FRONT_PAIRS; i++) {
		bool client = s->tuple.sport == t->cport[i] && s->tuple.dport == t->port[i];
		bool server = s->tuple.sport == t->port[i] && s->tuple.dport == t->cport[i];
		uint64_t n = i + 1;

		if (!client && !server)
			continue;
		if (s->bytes_sent == (client ? n : 2 * n) &&
		    s->bytes_received == (client ? 2 * n : n))
			t->exact++;
		if (front)
			t->in_front++;
		else
			t->in_hash++;
		return;
	}
}

TEST(capture_socket_table_front_and_hash_exact)
{
	static struct pair pairs[FRONT_PAIRS];
	static struct table_count t;
	int front, fd, made = 0;
	struct tcpotel_sock_slot slot;
	struct tcpotel_sock s;
	struct capture *c;
	__u64 key, next;
	bool first = true;

	if (geteuid() != 0) {
		test_skip("needs root (attaches BPF programs)");
		return;
	}
	c = kernel_attach_test_backend_sized(5000000000ULL, 1024);
	if (!ASSERT_NOT_NULL(c))
		return;
	memset(&t, 0, sizeof(t));
	memset(pairs, -1, sizeof(pairs));
	for (; made < FRONT_PAIRS; made++) {
		struct pair *p = &pairs[made];

		if (!ASSERT_TRUE(make_pair(p, AF_INET, false)))
			goto out;
		t.port[made] = p->port;
		t.cport[made] = local_port(p->client);
		if (!ASSERT_TRUE(send_all(p->client, made + 1) && recv_all(p->server, made + 1) &&
				 send_all(p->server, 2 * (made + 1)) &&
				 recv_all(p->client, 2 * (made + 1))))
			goto out;
	}
	front = capture__front_fd(c);
	for (__u32 i = 0; front >= 0 && !bpf_map_lookup_elem(front, &i, &slot); i++)
		if (slot.key)
			count_entry(&t, &slot.sock, true);
	fd = capture__sockets_fd(c);
	while (bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
		first = false;
		key = next;
		if (!bpf_map_lookup_elem(fd, &key, &s))
			count_entry(&t, &s, false);
	}
	printf("    %d sockets: %d in the front, %d in the hash, %d exact\n", 2 * FRONT_PAIRS,
	       t.in_front, t.in_hash, t.exact);
	ASSERT_EQ(t.in_front + t.in_hash, 2 * FRONT_PAIRS);
	ASSERT_EQ(t.exact, 2 * FRONT_PAIRS);
	if (front >= 0) {
		ASSERT_GT(t.in_front, 0);
		ASSERT_GT(t.in_hash, 0);
	}
out:
	for (int i = 0; i < FRONT_PAIRS; i++) {
		int fds[] = { pairs[i].client, pairs[i].server, pairs[i].listener };

		for (size_t j = 0; j < ARRAY_SIZE(fds); j++)
			if (fds[j] >= 0)
				close(fds[j]);
	}
	capture__destroy(c);
}

/* Snapshots of the sockets of `port` the collect program returns, by client/server. */
struct collected {
	uint16_t port;
	int n;
	struct tcpotel_snapshot client, server;
};

static int collect_all(struct capture *c, const uint64_t *keys, size_t n_keys,
		       struct collected *got)
{
	const struct tcpotel_snapshot *out;
	int n, total = 0;

	got->n = 0;
	do {
		n = capture__collect(c, keys, n_keys, &out);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			const struct tcpotel_sock *s = &out[i].sock;

			if (out[i].status != TCPOTEL_SNAP_SOCKET ||
			    (s->tuple.sport != got->port && s->tuple.dport != got->port))
				continue;
			got->n++;
			if (s->role == TCPOTEL_ROLE_CLIENT)
				got->client = out[i];
			else
				got->server = out[i];
		}
		total += n;
		keys = NULL;
		n_keys = 0;
	} while (n == TCPOTEL_COLLECT_BATCH);
	return total;
}

/* The collect program reads what changed since the last sweep, and only that. */
TEST(sweep_collects_changed_sockets)
{
	struct collected got = {};
	struct capture *c;
	struct pair p;

	c = attach_as_root(5000000000ULL);
	if (!c)
		return;
	if (!ASSERT_TRUE(make_pair(&p, AF_INET, false)))
		goto out;
	got.port = p.port;
	ASSERT_TRUE(send_all(p.client, 1000) && recv_all(p.server, 1000));
	ASSERT_TRUE(send_all(p.server, 300) && recv_all(p.client, 300));
	capture__sweep_begin(c);
	ASSERT_GE(collect_all(c, NULL, 0, &got), 2);
	ASSERT_EQ(got.n, 2);
	ASSERT_U64_EQ(got.client.sock.bytes_sent, 1000);
	ASSERT_U64_EQ(got.server.sock.bytes_sent, 300);
	ASSERT_TRUE(got.client.sock.flags & TCPOTEL_SOCK_OPENED);

	/* Nothing moved: neither socket is read again. */
	capture__sweep_begin(c);
	collect_all(c, NULL, 0, &got);
	ASSERT_EQ(got.n, 0);

	/* One end sends: the receiver and the sender both changed. */
	ASSERT_TRUE(send_all(p.client, 7) && recv_all(p.server, 7));
	capture__sweep_begin(c);
	collect_all(c, NULL, 0, &got);
	ASSERT_EQ(got.n, 2);
	ASSERT_U64_EQ(got.client.sock.bytes_sent, 1007);
	ASSERT_U64_EQ(got.server.sock.bytes_received, 1007);
	close(p.client);
	close(p.server);
	close(p.listener);
out:
	capture__destroy(c);
}

/*
 * An exchange that went silent is ended by the collect program when asked:
 * counted once in its socket's histogram and reported once, however often it
 * is asked; the close that follows neither counts nor reports it again.
 */
TEST(sweep_ends_silent_exchange_once)
{
	struct collected got = {};
	struct closed closed = {};
	struct ring_buffer *rb = NULL;
	uint64_t keys[2];
	struct capture *c;
	struct pair p;

	c = attach_as_root(100 * 1000 * 1000ULL);
	if (!c)
		return;
	rb = record_pair(c, &closed, &p, AF_INET, false);
	if (!rb)
		goto out;
	got.port = p.port;
	ASSERT_TRUE(send_all(p.client, 100) && recv_all(p.server, 100));
	ASSERT_TRUE(send_all(p.server, 2000) && recv_all(p.client, 2000));
	capture__sweep_begin(c);
	collect_all(c, NULL, 0, &got);
	if (!ASSERT_EQ(got.n, 2))
		goto out;
	/* Open, not silent yet. */
	ASSERT_EQ(got.client.sock.ex.phase, TCPOTEL_PHASE_RESPONSE);
	ASSERT_U64_EQ(got.client.sock.done.count, 0);
	keys[0] = got.client.key;
	keys[1] = got.server.key;

	/* The ring takes every exchange of the host meanwhile: keep it drained, so
	 * that there is room for ours. */
	for (int i = 0; i < 30; i++) {
		ring_buffer__consume(rb);
		usleep(10 * 1000);
	}
	for (int round = 0; round < 3; round++) {
		ring_buffer__consume(rb);
		capture__sweep_begin(c);
		collect_all(c, keys, 2, &got);
		ASSERT_EQ(got.n, 2);
		ASSERT_EQ(got.client.sock.ex.phase, TCPOTEL_PHASE_IDLE);
		ASSERT_U64_EQ(got.client.sock.done.count, 1);
		ASSERT_U64_EQ(got.server.sock.done.count, 1);
		ASSERT_U64_EQ(got.client.sock.ex.response_bytes, 2000);
	}
	ring_buffer__consume(rb);
	ASSERT_EQ(closed.exchanges, 2); /* one record per end */

	close(p.client);
	close(p.server);
	close(p.listener);
	usleep(100 * 1000);
	ring_buffer__consume(rb);
	ASSERT_EQ(closed.exchanges, 2);
	ASSERT_EQ(closed.n, 2);
	for (int i = 0; i < closed.n; i++)
		ASSERT_U64_EQ(closed.recs[i].sock.done.count, 1);
out:
	ring_buffer__free(rb);
	capture__destroy(c);
}

/* Ways of reading `n` bytes that are all queued (or arrive while it waits). */
enum read_way {
	READ_PEEK_THEN_READ, /* recv(MSG_PEEK) of everything, then recv() of it */
	READ_WAITALL, /* one recv(MSG_WAITALL) that waits for bytes sent later */
	READ_SPLICE, /* splice() to a pipe, then read() from the pipe */
	READ_WITH_FIN, /* one recv() of everything and the peer's FIN queued after it */
};

struct sender {
	int fd;
	size_t n;
	pthread_t thread;
};

/* Sends in pieces, with pauses, so that a waiting read wakes up several times. */
static void *send_slowly(void *arg)
{
	struct sender *s = arg;
	size_t left = s->n;

	while (left) {
		size_t k = MIN(left, (size_t)100000);

		if (!send_all(s->fd, k))
			break;
		left -= k;
		usleep(20 * 1000);
	}
	return NULL;
}

/* Reads n bytes from fd in the given way; returns how many the application got. */
static size_t read_way(int fd, size_t n, enum read_way way)
{
	static char buf[1 << 20];
	size_t got = 0;
	int pipefd[2];

	switch (way) {
	case READ_PEEK_THEN_READ:
		while (got < n) {
			ssize_t p = recv(fd, buf, MIN(n - got, sizeof(buf)), MSG_PEEK);
			ssize_t r = p > 0 ? recv(fd, buf, (size_t)p, 0) : -1;

			if (r <= 0)
				break;
			got += (size_t)r;
		}
		break;
	case READ_WAITALL: {
		ssize_t r = recv(fd, buf, n, MSG_WAITALL);

		got = r > 0 ? (size_t)r : 0;
		break;
	}
	case READ_WITH_FIN: {
		/* More room than bytes: the same call goes on to the FIN (copied_seq + 1). */
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		got = r > 0 ? (size_t)r : 0;
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) != 0)
			got = 0; /* not at the end: the FIN was not there */
		break;
	}
	case READ_SPLICE:
		if (pipe(pipefd))
			return 0;
		fcntl(pipefd[1], F_SETPIPE_SZ, 1 << 20);
		while (got < n) {
			ssize_t r = splice(fd, NULL, pipefd[1], NULL, n - got, 0);

			if (r <= 0 || read(pipefd[0], buf, (size_t)r) != r)
				break;
			got += (size_t)r;
		}
		close(pipefd[0]);
		close(pipefd[1]);
		break;
	}
	return got;
}

/*
 * The server reads a request in one way, answers 100 bytes: the client's
 * bytes sent and the server's bytes received must agree with what the
 * application read, except for splice() under the tracepoint back-end,
 * which sees none of it (README, "Requirements").
 */
static void read_way_case(enum read_way way, size_t n)
{
	bool tracepoint = kernel_test_backend() == BACKEND_TRACEPOINT;
	struct tcpotel_sock cl, sv;
	struct sender snd;
	struct capture *c;
	struct pair p;
	uint16_t cport;
	size_t got;

	c = attach_as_root(5000000000ULL);
	if (!c)
		return;
	if (!ASSERT_TRUE(make_pair(&p, AF_INET, false)))
		goto out;
	cport = local_port(p.client);
	snd = (struct sender){ .fd = p.client, .n = n };
	if (way == READ_WAITALL) {
		ASSERT_OK(pthread_create(&snd.thread, NULL, send_slowly, &snd));
	} else {
		ASSERT_TRUE(send_all(p.client, n));
		if (way == READ_WITH_FIN)
			ASSERT_OK(shutdown(p.client, SHUT_WR));
		/* Everything is queued at the server before it reads. */
		usleep(50 * 1000);
	}
	got = read_way(p.server, n, way);
	if (way == READ_WAITALL)
		pthread_join(snd.thread, NULL);
	ASSERT_U64_EQ(got, n);
	ASSERT_TRUE(send_all(p.server, 100) && recv_all(p.client, 100));
	if (ASSERT_TRUE(find_entry(c, cport, p.port, &cl)) &&
	    ASSERT_TRUE(find_entry(c, p.port, cport, &sv))) {
		ASSERT_U64_EQ(cl.bytes_sent, n);
		ASSERT_U64_EQ(cl.bytes_received, 100);
		ASSERT_U64_EQ(sv.bytes_sent, 100);
		ASSERT_U64_EQ(sv.bytes_received, way == READ_SPLICE && tracepoint ? 0 : n);
	}
	close(p.client);
	close(p.server);
	close(p.listener);
out:
	capture__destroy(c);
}

TEST(capture_peek_then_read_counts_once)
{
	read_way_case(READ_PEEK_THEN_READ, 300000);
}

TEST(capture_waitall_read_counts_once)
{
	read_way_case(READ_WAITALL, 1000000);
}

TEST(capture_last_bytes_read_with_fin_count_once)
{
	read_way_case(READ_WITH_FIN, 20000);
}

TEST(capture_splice_counted_except_by_tracepoints)
{
	read_way_case(READ_SPLICE, 300000);
}

/*
 * The server reads a request and closes without answering. A client that
 * reads the end of the stream (`read_end`) has an exchange closed_by_peer;
 * one that closes without reading (a goodbye, such as PostgreSQL's
 * Terminate, whose FIN came after the server's) has none. The server's half
 * never has an error: on the wire, both are the same close.
 */
static void server_closes_case(bool read_end)
{
	struct ring_buffer *rb = NULL;
	struct closed closed = {};
	struct capture *c;
	struct pair p;
	char b;

	c = attach_as_root(5000000000ULL);
	if (!c)
		return;
	rb = record_pair(c, &closed, &p, AF_INET, false);
	if (!rb)
		goto out;
	ASSERT_TRUE(send_all(p.client, 100) && recv_all(p.server, 100));
	close(p.server);
	/* The server's FIN is in before the client does anything more. */
	usleep(50 * 1000);
	if (read_end)
		ASSERT_EQ(recv(p.client, &b, 1, 0), 0);
	close(p.client);
	close(p.listener);
	usleep(100 * 1000);
	ring_buffer__consume(rb);
	ASSERT_EQ(closed.by_end[0], 1);
	ASSERT_EQ(closed.by_end[1], 1);
	ASSERT_EQ(closed.closed_by_peer[0], read_end ? 1 : 0);
	ASSERT_EQ(closed.closed_by_peer[1], 0);
	ASSERT_EQ(closed.other_errors, 0);
out:
	ring_buffer__free(rb);
	capture__destroy(c);
}

TEST(capture_server_close_read_by_the_client_is_closed_by_peer)
{
	server_closes_case(true);
}

TEST(capture_server_close_after_a_goodbye_is_no_error)
{
	server_closes_case(false);
}

struct big_send {
	int fd;
	size_t n;
	bool ok;
	pthread_t thread;
};

/* One send() call for the whole response, which waits for room as it goes. */
static void *send_big(void *arg)
{
	static char buf[4 << 20];
	struct big_send *b = arg;

	b->ok = b->n <= sizeof(buf) && send(b->fd, buf, b->n, 0) == (ssize_t)b->n;
	return NULL;
}

/*
 * A client reads part of a large response and sends its next request while
 * the server's one send call for it still waits for room. The tracepoint
 * and fentry back-ends see that call at its end, with the request queued:
 * the acknowledgment its segment carried says the client sent it after it
 * saw the response, and both ends begin a new exchange there, numbered
 * alike (server_sees_requests()). The kprobe back-end sees the send in
 * pieces, at each wait, the first before the request came; the server then
 * goes by its latest acknowledgments, which follow the request, and keeps it
 * in the exchange (docs/design.md, "What stays apart"), unless it had sent a
 * segment again by then: acknowledgments of duplicates say nothing of when
 * the response was acknowledged, and the request begins a new exchange, as
 * at the client.
 */
TEST(capture_request_during_the_servers_send_begins_an_exchange)
{
	const size_t big = 4 << 20;
	const int small_buf = 65536;
	bool kprobe = kernel_test_backend() == BACKEND_KPROBE;
	struct ring_buffer *rb = NULL;
	struct closed closed = {};
	struct big_send b;
	struct capture *c;
	struct pair p;

	c = attach_as_root(5000000000ULL);
	if (!c)
		return;
	rb = record_pair(c, &closed, &p, AF_INET, false);
	if (!rb)
		goto out;
	/* Small buffers: the response's send call waits for the client to read. */
	ASSERT_OK(setsockopt(p.server, SOL_SOCKET, SO_SNDBUF, &small_buf, sizeof(small_buf)));
	ASSERT_OK(setsockopt(p.client, SOL_SOCKET, SO_RCVBUF, &small_buf, sizeof(small_buf)));
	ASSERT_TRUE(send_all(p.client, 100) && recv_all(p.server, 100));
	b = (struct big_send){ .fd = p.server, .n = big };
	ASSERT_OK(pthread_create(&b.thread, NULL, send_big, &b));
	ASSERT_TRUE(recv_all(p.client, 1000));
	ASSERT_TRUE(send_all(p.client, 50));
	usleep(50 * 1000); /* the request is in; the send call still waits */
	ASSERT_TRUE(recv_all(p.client, big - 1000));
	pthread_join(b.thread, NULL);
	ASSERT_TRUE(b.ok);
	ASSERT_TRUE(recv_all(p.server, 50));
	ASSERT_TRUE(send_all(p.server, 100) && recv_all(p.client, 100));
	close(p.client);
	close(p.server);
	close(p.listener);
	usleep(100 * 1000);
	ring_buffer__consume(rb);
	ASSERT_EQ(closed.by_end[0], 2);
	ASSERT_EQ(closed.other_errors, 0);
	if (kprobe && closed.by_end[1] == 1) {
		ASSERT_U64_EQ(closed.request_bytes[1][0], 150);
	} else if (ASSERT_EQ(closed.by_end[1], 2)) {
		if (kprobe)
			ASSERT_TRUE(closed.retransmits[1][0] > 0);
		for (int i = 0; i < 2; i++) {
			ASSERT_EQ(closed.request_seq[0][i], closed.request_seq[1][i]);
			ASSERT_U64_EQ(closed.request_bytes[1][i], i ? 50 : 100);
		}
	}
	ASSERT_U64_EQ(closed.request_bytes[0][0], 100);
	ASSERT_U64_EQ(closed.request_bytes[0][1], 50);
out:
	ring_buffer__free(rb);
	capture__destroy(c);
}
