// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpload: request/response TCP workload with exact byte accounting.
 *
 *   tcpload server --listen ADDR:PORT [--threads N] [--max-conns N] [--ready-file F]
 *   tcpload client --connect ADDR:PORT [--conns C] [--parallel P] [--exchanges E]
 *                  [--req-size SPEC] [--resp-size SPEC] [--short] [--stream-ms MS]
 *                  [--pipeline K] [--idle-ms MS] [--duration-s S] [--rate R]
 *   both roles: [--tcp-info] [--read plain|peek|waitall]
 *
 * Framing: every request is a 24-byte header followed by req_size body bytes;
 * the response is exactly resp_size raw bytes (no header: the client knows how
 * many to read). Header, all big endian:
 *
 *   u32 magic "TCPL" | u32 stream_ms | u64 req_size | u64 resp_size
 *
 * With stream_ms > 0 the server spreads the response over stream_ms
 * milliseconds in chunks (about one per 10 ms), so one exchange lasts that long.
 *
 * Both roles print one JSON summary line on stdout. Byte counts are the sum of
 * what send() and recv() returned, headers included, so that client and server
 * summaries agree exactly and can be checked against what an observer saw.
 *
 * With --tcp-info each connection reads the kernel's TCP_INFO just before it
 * closes, and the summary gains a "tcp_info" object: connections read, their
 * tcpi_rtt (smoothed RTT, microseconds) min/max/mean and the sum of
 * tcpi_total_retrans. Without the option the summary is unchanged.
 *
 * --read peek: every read is preceded by a recv(MSG_PEEK) of as much as it
 * asks for (bytes peeked are not counted: they are read again); --read
 * waitall: every read is one recv(MSG_WAITALL) that waits for all it asks
 * for. Both check how an observer counts such reads.
 *
 * Blocking sockets and one thread per connection: simple and exact. Only libc
 * and pthreads.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define HDR_SIZE	  24
#define HDR_MAGIC	  0x5443504cu /* "TCPL" */
#define BUF_SIZE	  (256 * 1024)
#define MAX_SIZES	  64
#define MAX_STREAM_CHUNKS 1000
#define MAX_PIPELINE	  65536
#define STOP_GRACE_MS	  2000
#define THREAD_STACK	  (256 * 1024)

static const char *prog = "tcpload";

/* --read: how each recv() is made. */
static enum { READ_PLAIN, READ_PEEK, READ_WAITALL } read_mode;

/* --tcp-info: what TCP_INFO said of each connection just before its close. */
static struct {
	bool enabled;
	pthread_mutex_t lock;
	uint64_t conns;
	uint64_t rtt_sum_us;
	uint32_t rtt_min_us, rtt_max_us;
	uint64_t total_retrans;
} tinfo = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = {
		.tv_sec = (time_t)(t / 1000000000ull),
		.tv_nsec = (long)(t % 1000000000ull),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* ---- parsing -------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "64", "10KiB", "10MiB", "1GiB", also "10k", "10K", "10M", "1G" (binary units). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (!strcmp(end, "") || !strcmp(end, "B"))
		mul = 1;
	else if (!strcasecmp(end, "k") || !strcmp(end, "KiB") || !strcmp(end, "KB"))
		mul = 1024;
	else if (!strcasecmp(end, "m") || !strcmp(end, "MiB") || !strcmp(end, "MB"))
		mul = 1024 * 1024;
	else if (!strcasecmp(end, "g") || !strcmp(end, "GiB") || !strcmp(end, "GB"))
		mul = 1024 * 1024 * 1024;
	else
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

struct size_list {
	uint64_t v[MAX_SIZES];
	size_t n;
};

static void parse_size_list(const char *opt, const char *spec, struct size_list *l)
{
	char buf[1024];
	char *save = NULL, *tok;

	if (strlen(spec) >= sizeof(buf))
		die("%s: too long", opt);
	strcpy(buf, spec);
	l->n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (l->n == MAX_SIZES)
			die("%s: more than %d sizes", opt, MAX_SIZES);
		if (parse_size(tok, &l->v[l->n]))
			die("%s: bad size '%s'", opt, tok);
		l->n++;
	}
	if (!l->n)
		die("%s: empty size list", opt);
}

/* "1.2.3.4:80", "[::1]:80", "host:80". */
static struct addrinfo *resolve(const char *addrport, bool passive)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints = { 0 }, *res = NULL;
	size_t len;
	int err;

	colon = strrchr(addrport, ':');
	if (!colon)
		die("'%s': expected ADDR:PORT", addrport);
	port = colon + 1;
	if (addrport[0] == '[') {
		if (colon == addrport || colon[-1] != ']')
			die("'%s': expected [V6ADDR]:PORT", addrport);
		len = (size_t)(colon - addrport) - 2;
		if (len >= sizeof(host))
			die("'%s': address too long", addrport);
		memcpy(host, addrport + 1, len);
	} else {
		len = (size_t)(colon - addrport);
		if (len >= sizeof(host))
			die("'%s': address too long", addrport);
		memcpy(host, addrport, len);
	}
	host[len] = '\0';
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	if (passive)
		hints.ai_flags = AI_PASSIVE;
	err = getaddrinfo(len ? host : NULL, port, &hints, &res);
	if (err)
		die("'%s': %s", addrport, gai_strerror(err));
	return res;
}

/* ---- exact I/O ------------------------------------------------------------ */

static int set_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Adds this connection's TCP_INFO to the --tcp-info summary. */
static void tcp_info_take(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (!tinfo.enabled)
		return;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return;
	pthread_mutex_lock(&tinfo.lock);
	if (!tinfo.conns || ti.tcpi_rtt < tinfo.rtt_min_us)
		tinfo.rtt_min_us = ti.tcpi_rtt;
	if (ti.tcpi_rtt > tinfo.rtt_max_us)
		tinfo.rtt_max_us = ti.tcpi_rtt;
	tinfo.rtt_sum_us += ti.tcpi_rtt;
	tinfo.total_retrans += ti.tcpi_total_retrans;
	tinfo.conns++;
	pthread_mutex_unlock(&tinfo.lock);
}

/* The ",\"tcp_info\":{...}" summary member, or "" without --tcp-info. */
static const char *tcp_info_json(char *buf, size_t size)
{
	buf[0] = '\0';
	if (!tinfo.enabled)
		return buf;
	pthread_mutex_lock(&tinfo.lock);
	snprintf(buf, size,
		 ",\"tcp_info\":{\"conns\":%" PRIu64 ",\"rtt_us_min\":%u,\"rtt_us_max\":%u"
		 ",\"rtt_us_mean\":%.1f,\"total_retrans\":%" PRIu64 "}",
		 tinfo.conns, tinfo.rtt_min_us, tinfo.rtt_max_us,
		 tinfo.conns ? (double)tinfo.rtt_sum_us / (double)tinfo.conns : 0.0,
		 tinfo.total_retrans);
	pthread_mutex_unlock(&tinfo.lock);
	return buf;
}

/* Sends all of buf; adds what each send() returned to *counted. */
static int send_all(int fd, const void *buf, size_t len, uint64_t *counted)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		*counted += (uint64_t)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One recv() of at most len bytes, made the --read way. */
static ssize_t recv_once(int fd, void *buf, size_t len)
{
	if (read_mode == READ_PEEK) {
		ssize_t n = recv(fd, buf, len, MSG_PEEK);

		if (n <= 0)
			return n;
		len = (size_t)n;
	}
	return recv(fd, buf, len, read_mode == READ_WAITALL ? MSG_WAITALL : 0);
}

static void set_read_mode(const char *v)
{
	if (!strcmp(v, "plain"))
		read_mode = READ_PLAIN;
	else if (!strcmp(v, "peek"))
		read_mode = READ_PEEK;
	else if (!strcmp(v, "waitall"))
		read_mode = READ_WAITALL;
	else
		die("--read: expected plain, peek or waitall, not '%s'", v);
}

/*
 * Receives exactly len bytes. Returns 0, -EPIPE on EOF in the middle, or
 * 1 on EOF before the first byte when eof_ok (the peer closed between
 * requests).
 */
static int recv_all(int fd, void *buf, size_t len, uint64_t *counted, bool eof_ok)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv_once(fd, p + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return (eof_ok && got == 0) ? 1 : -EPIPE;
		*counted += (uint64_t)n;
		got += (size_t)n;
	}
	return 0;
}

/* Reads and discards len bytes through buf. */
static int recv_discard(int fd, char *buf, uint64_t len, uint64_t *counted)
{
	while (len) {
		size_t chunk = len > BUF_SIZE ? BUF_SIZE : (size_t)len;
		ssize_t n = recv_once(fd, buf, chunk);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		*counted += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int send_zeros(int fd, const char *zeros, uint64_t len, uint64_t *counted)
{
	while (len) {
		size_t chunk = len > BUF_SIZE ? BUF_SIZE : (size_t)len;
		int err = send_all(fd, zeros, chunk, counted);

		if (err)
			return err;
		len -= chunk;
	}
	return 0;
}

static int spawn_detached(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	int err;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return -err;
}

static void json_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void json_print(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* ---- server ---------------------------------------------------------------- */

static struct {
	int listen_fd;
	unsigned int max_threads; /* 0 = one thread per connection, unbounded */
	uint64_t max_conns; /* 0 = until signalled */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int active;
	uint64_t accepted;
	uint64_t finished;
	bool stopping;
	uint64_t exchanges;
	uint64_t bytes_sent;
	uint64_t bytes_received;
	uint64_t errors;
} srv = {
	.listen_fd = -1,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void srv_add(uint64_t *ctr, uint64_t v)
{
	__atomic_fetch_add(ctr, v, __ATOMIC_RELAXED);
}

/* Sends resp bytes spread over stream_ms: first chunk at once, last at stream_ms. */
static int srv_send_response(int fd, const char *zeros, uint64_t resp, uint32_t stream_ms,
			     uint64_t *sent)
{
	uint64_t chunks, start, base, done = 0;

	if (!stream_ms || resp <= 1)
		return send_zeros(fd, zeros, resp, sent);
	chunks = stream_ms / 10 + 1;
	if (chunks < 2)
		chunks = 2;
	if (chunks > MAX_STREAM_CHUNKS)
		chunks = MAX_STREAM_CHUNKS;
	if (chunks > resp)
		chunks = resp;
	base = resp / chunks;
	start = now_ns();
	for (uint64_t i = 0; i < chunks; i++) {
		uint64_t len = i + 1 == chunks ? resp - done : base;
		int err;

		if (i)
			sleep_until_ns(start + i * (uint64_t)stream_ms * 1000000ull / (chunks - 1));
		err = send_zeros(fd, zeros, len, sent);
		if (err)
			return err;
		done += len;
	}
	return 0;
}

static void *srv_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf = calloc(1, BUF_SIZE);
	unsigned char hdr[HDR_SIZE];
	int err = 0;

	if (!buf) {
		warnx("out of memory");
		srv_add(&srv.errors, 1);
		goto out;
	}
	set_nodelay(fd);
	for (;;) {
		uint64_t sent = 0, rcvd = 0, req, resp;
		uint32_t stream_ms;

		err = recv_all(fd, hdr, HDR_SIZE, &rcvd, true);
		srv_add(&srv.bytes_received, rcvd);
		if (err == 1) {
			err = 0;
			break;
		}
		if (err)
			break;
		if (get_be32(hdr) != HDR_MAGIC) {
			err = -EPROTO;
			break;
		}
		stream_ms = get_be32(hdr + 4);
		req = get_be64(hdr + 8);
		resp = get_be64(hdr + 16);
		rcvd = 0;
		err = recv_discard(fd, buf, req, &rcvd);
		srv_add(&srv.bytes_received, rcvd);
		if (err)
			break;
		/* The body buffer holds request bytes; responses are zeros. */
		memset(buf, 0, resp < BUF_SIZE ? (size_t)resp : BUF_SIZE);
		err = srv_send_response(fd, buf, resp, stream_ms, &sent);
		srv_add(&srv.bytes_sent, sent);
		if (err)
			break;
		srv_add(&srv.exchanges, 1);
	}
	if (err) {
		warnx("server connection: %s", strerror(-err));
		srv_add(&srv.errors, 1);
	}
out:
	free(buf);
	tcp_info_take(fd);
	close(fd);
	pthread_mutex_lock(&srv.lock);
	srv.active--;
	srv.finished++;
	pthread_cond_broadcast(&srv.cond);
	pthread_mutex_unlock(&srv.lock);
	return NULL;
}

static void *srv_signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	while (sigwait(set, &sig))
		;
	pthread_mutex_lock(&srv.lock);
	srv.stopping = true;
	pthread_cond_broadcast(&srv.cond);
	pthread_mutex_unlock(&srv.lock);
	/* Wakes the accept() in the main thread. */
	shutdown(srv.listen_fd, SHUT_RDWR);
	return NULL;
}

static void write_ready_file(const char *path, unsigned int port)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		die("--ready-file: path too long");
	f = fopen(tmp, "w");
	if (!f)
		die("%s: %s", tmp, strerror(errno));
	fprintf(f, "%u\n", port);
	if (fclose(f))
		die("%s: %s", tmp, strerror(errno));
	/* rename() so a reader never sees a half-written file. */
	if (rename(tmp, path))
		die("%s: %s", path, strerror(errno));
}

static const char *opt_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		die("%s needs a value", argv[*i]);
	return argv[++*i];
}

static uint64_t opt_u64(int argc, char **argv, int *i)
{
	const char *name = argv[*i];
	const char *v = opt_value(argc, argv, i);
	uint64_t out;

	if (parse_u64(v, &out))
		die("%s: bad number '%s'", name, v);
	return out;
}

static int server_main(int argc, char **argv)
{
	const char *listen_addr = NULL, *ready_file = NULL;
	struct addrinfo *ai;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	unsigned int port;
	sigset_t set;
	pthread_t sigt;
	int one = 1, fd;
	char tinfo_buf[256];

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--listen"))
			listen_addr = opt_value(argc, argv, &i);
		else if (!strcmp(argv[i], "--threads"))
			srv.max_threads = (unsigned int)opt_u64(argc, argv, &i);
		else if (!strcmp(argv[i], "--max-conns"))
			srv.max_conns = opt_u64(argc, argv, &i);
		else if (!strcmp(argv[i], "--ready-file"))
			ready_file = opt_value(argc, argv, &i);
		else if (!strcmp(argv[i], "--tcp-info"))
			tinfo.enabled = true;
		else if (!strcmp(argv[i], "--read"))
			set_read_mode(opt_value(argc, argv, &i));
		else
			die("server: unknown option '%s'", argv[i]);
	}
	if (!listen_addr)
		die("server: --listen ADDR:PORT is required");

	ai = resolve(listen_addr, true);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen))
		die("bind %s: %s", listen_addr, strerror(errno));
	freeaddrinfo(ai);
	if (listen(fd, 1024))
		die("listen: %s", strerror(errno));
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen))
		die("getsockname: %s", strerror(errno));
	port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
						((struct sockaddr_in *)&ss)->sin_port);
	srv.listen_fd = fd;

	/* Signals go to one thread only; every other thread inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&sigt, NULL, srv_signal_thread, &set))
		die("pthread_create failed");
	pthread_detach(sigt);

	if (ready_file)
		write_ready_file(ready_file, port);

	for (;;) {
		int cfd, err;

		pthread_mutex_lock(&srv.lock);
		while (!srv.stopping && srv.max_threads && srv.active >= srv.max_threads)
			pthread_cond_wait(&srv.cond, &srv.lock);
		if (srv.stopping || (srv.max_conns && srv.accepted >= srv.max_conns)) {
			pthread_mutex_unlock(&srv.lock);
			break;
		}
		pthread_mutex_unlock(&srv.lock);

		cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			pthread_mutex_lock(&srv.lock);
			err = srv.stopping;
			pthread_mutex_unlock(&srv.lock);
			if (err)
				break;
			if (errno == EMFILE || errno == ENFILE) {
				usleep(10000);
				continue;
			}
			die("accept: %s", strerror(errno));
		}
		pthread_mutex_lock(&srv.lock);
		srv.active++;
		srv.accepted++;
		pthread_mutex_unlock(&srv.lock);
		err = spawn_detached(srv_conn, (void *)(intptr_t)cfd);
		if (err) {
			warnx("pthread_create: %s", strerror(-err));
			close(cfd);
			pthread_mutex_lock(&srv.lock);
			srv.active--;
			srv.errors++;
			pthread_mutex_unlock(&srv.lock);
		}
	}

	/*
	 * With --max-conns wait for every connection; on a signal give the ones
	 * in flight a short grace so a finished client's last bytes are counted.
	 */
	pthread_mutex_lock(&srv.lock);
	if (!srv.stopping) {
		while (!srv.stopping && srv.finished < srv.accepted)
			pthread_cond_wait(&srv.cond, &srv.lock);
	}
	if (srv.active) {
		uint64_t deadline = now_ns() + STOP_GRACE_MS * 1000000ull;
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += STOP_GRACE_MS / 1000;
		while (srv.active && now_ns() < deadline)
			pthread_cond_timedwait(&srv.cond, &srv.lock, &ts);
	}
	json_print("{\"role\":\"server\",\"port\":%u,\"conns\":%" PRIu64 ",\"exchanges\":%" PRIu64
		   ",\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64 ",\"errors\":%" PRIu64
		   ",\"active\":%u%s}",
		   port, srv.accepted, __atomic_load_n(&srv.exchanges, __ATOMIC_RELAXED),
		   __atomic_load_n(&srv.bytes_sent, __ATOMIC_RELAXED),
		   __atomic_load_n(&srv.bytes_received, __ATOMIC_RELAXED),
		   __atomic_load_n(&srv.errors, __ATOMIC_RELAXED), srv.active,
		   tcp_info_json(tinfo_buf, sizeof(tinfo_buf)));
	pthread_mutex_unlock(&srv.lock);
	/* Connection threads still running (grace expired) are not waited for. */
	_exit(0);
}

/* ---- client ---------------------------------------------------------------- */

static struct {
	struct addrinfo *ai;
	const char *target;
	uint64_t conns;
	uint64_t parallel;
	uint64_t exchanges;
	struct size_list req, resp;
	bool short_conns;
	uint32_t stream_ms;
	uint64_t pipeline;
	uint64_t idle_ms;
	double duration_s;
	double rate;

	uint64_t start_ns;
	uint64_t deadline_ns; /* 0 = count mode */
	uint64_t next_conn; /* atomic */
	uint64_t next_slot; /* atomic, for --rate */
} cli = {
	.conns = 1,
	.parallel = 1,
	.exchanges = 1,
	.pipeline = 1,
};

struct lat_vec {
	uint32_t *v;
	size_t n, cap;
};

struct worker {
	pthread_t thread;
	char *buf; /* zeros; request bodies are sent from it, responses read into it */
	uint64_t conns;
	uint64_t exchanges;
	uint64_t bytes_sent;
	uint64_t bytes_received;
	uint64_t errors;
	uint64_t seq; /* exchange ordinal, cycles the size lists */
	struct lat_vec lat;
};

static int lat_push(struct lat_vec *l, uint64_t us)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		uint32_t *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	return 0;
}

static bool time_up(void)
{
	return cli.deadline_ns && now_ns() >= cli.deadline_ns;
}

/*
 * With --rate, waits for the slot of the next k exchanges (a pipelined batch
 * starts when its first exchange is due); false when the deadline comes first.
 */
static bool rate_wait(uint64_t k)
{
	uint64_t slot, at;

	if (cli.rate <= 0)
		return true;
	slot = __atomic_fetch_add(&cli.next_slot, k, __ATOMIC_RELAXED);
	at = cli.start_ns + (uint64_t)((double)slot * 1e9 / cli.rate);
	if (cli.deadline_ns && at >= cli.deadline_ns)
		return false;
	sleep_until_ns(at);
	return true;
}

static int send_request(int fd, struct worker *w, uint64_t req, uint64_t resp)
{
	unsigned char hdr[HDR_SIZE];
	uint64_t first;
	int err;

	put_be32(hdr, HDR_MAGIC);
	put_be32(hdr + 4, cli.stream_ms);
	put_be64(hdr + 8, req);
	put_be64(hdr + 16, resp);
	/* Header and the start of the body go out in one send(). */
	first = req > BUF_SIZE - HDR_SIZE ? BUF_SIZE - HDR_SIZE : req;
	memcpy(w->buf, hdr, HDR_SIZE);
	err = send_all(fd, w->buf, HDR_SIZE + (size_t)first, &w->bytes_sent);
	memset(w->buf, 0, HDR_SIZE);
	if (err)
		return err;
	return send_zeros(fd, w->buf, req - first, &w->bytes_sent);
}

struct pipe_batch {
	int fd;
	struct worker *w;
	char *buf;
	uint64_t seq0, k;
	uint64_t bytes_sent;
	int err;
};

/* Writer half of a pipelined batch: runs while the worker reads responses. */
static void *pipe_writer(void *arg)
{
	struct pipe_batch *b = arg;
	struct worker shadow = { .buf = b->buf };

	for (uint64_t i = 0; i < b->k && !b->err; i++) {
		uint64_t s = b->seq0 + i;

		b->err = send_request(b->fd, &shadow, cli.req.v[s % cli.req.n],
				      cli.resp.v[s % cli.resp.n]);
	}
	b->bytes_sent = shadow.bytes_sent;
	return NULL;
}

/* k exchanges; k > 1 pipelines them. Returns the number completed, or negative errno. */
static int do_batch(int fd, struct worker *w, uint64_t k)
{
	uint64_t seq0 = w->seq, t0;
	struct pipe_batch b = { 0 };
	pthread_t writer;
	int err = 0;

	w->seq += k;
	t0 = now_ns();
	if (k == 1) {
		uint64_t resp = cli.resp.v[seq0 % cli.resp.n];

		err = send_request(fd, w, cli.req.v[seq0 % cli.req.n], resp);
		if (!err)
			err = recv_discard(fd, w->buf, resp, &w->bytes_received);
		if (err)
			return err;
		w->exchanges++;
		err = lat_push(&w->lat, (now_ns() - t0) / 1000);
		return err ? err : 1;
	}

	b.fd = fd;
	b.w = w;
	b.seq0 = seq0;
	b.k = k;
	b.buf = calloc(1, BUF_SIZE);
	if (!b.buf)
		return -ENOMEM;
	err = -pthread_create(&writer, NULL, pipe_writer, &b);
	if (err) {
		free(b.buf);
		return err;
	}
	for (uint64_t i = 0; i < k && !err; i++) {
		uint64_t resp = cli.resp.v[(seq0 + i) % cli.resp.n];

		err = recv_discard(fd, w->buf, resp, &w->bytes_received);
		if (!err) {
			w->exchanges++;
			err = lat_push(&w->lat, (now_ns() - t0) / 1000);
		}
	}
	if (err)
		shutdown(fd, SHUT_RDWR); /* unblocks the writer */
	pthread_join(writer, NULL);
	w->bytes_sent += b.bytes_sent;
	free(b.buf);
	if (!err)
		err = b.err;
	return err ? err : (int)k;
}

/*
 * One connection: connect, exchanges, optional idle hold, close. Returns 0,
 * negative errno, or 1 when the rate limit's next slot falls after the
 * deadline (nothing was done). The first exchange's slot is taken before
 * connecting, so --rate with --short paces connections too and no connection
 * is opened only to be closed unused.
 */
static int run_conn(struct worker *w)
{
	/* Duration mode has no count: keep-alive runs until time is up. */
	uint64_t total = cli.short_conns ? 1 : cli.deadline_ns ? UINT64_MAX : cli.exchanges;
	uint64_t k = cli.pipeline < total ? cli.pipeline : total, done = 0;
	int fd, err = 0;

	if (!rate_wait(k))
		return 1;
	fd = socket(cli.ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	set_nodelay(fd);
	while (connect(fd, cli.ai->ai_addr, cli.ai->ai_addrlen)) {
		if (errno == EINTR)
			continue;
		err = -errno;
		close(fd);
		return err;
	}
	w->conns++;
	for (;;) {
		err = do_batch(fd, w, k);
		if (err < 0)
			break;
		done += (uint64_t)err;
		err = 0;
		if (done >= total || time_up())
			break;
		if (k > total - done)
			k = total - done;
		if (!rate_wait(k))
			break;
	}
	if (!err && cli.idle_ms)
		sleep_until_ns(now_ns() + cli.idle_ms * 1000000ull);
	tcp_info_take(fd);
	close(fd);
	return err;
}

static void *client_worker(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		uint64_t idx;
		int err;

		if (cli.deadline_ns) {
			if (time_up())
				break;
			/* Keep-alive: one connection per worker; short: new ones until time is up. */
			if (!cli.short_conns && w->conns)
				break;
		} else {
			idx = __atomic_fetch_add(&cli.next_conn, 1, __ATOMIC_RELAXED);
			if (idx >= cli.conns)
				break;
			/* Each connection starts where its sizes start in the cycle. */
			w->seq = idx * (cli.short_conns ? 1 : cli.exchanges);
		}
		err = run_conn(w);
		if (err == 1)
			break;
		if (err) {
			warnx("connection to %s: %s", cli.target, strerror(-err));
			w->errors++;
		}
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static uint32_t pct(const uint32_t *v, size_t n, unsigned int p)
{
	size_t r = (n * p + 99) / 100;

	if (!n)
		return 0;
	return v[r ? r - 1 : 0];
}

static int client_main(int argc, char **argv)
{
	const char *req_spec = "64", *resp_spec = "64";
	struct worker *ws;
	struct lat_vec all = { 0 };
	uint64_t conns = 0, exch = 0, sent = 0, rcvd = 0, errors = 0, nthreads, end;
	double elapsed, sum_us = 0;
	bool parallel_set = false;
	char tinfo_buf[256];

	for (int i = 0; i < argc; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "--connect"))
			cli.target = opt_value(argc, argv, &i);
		else if (!strcmp(o, "--conns"))
			cli.conns = opt_u64(argc, argv, &i);
		else if (!strcmp(o, "--parallel")) {
			cli.parallel = opt_u64(argc, argv, &i);
			parallel_set = true;
		} else if (!strcmp(o, "--exchanges"))
			cli.exchanges = opt_u64(argc, argv, &i);
		else if (!strcmp(o, "--req-size"))
			req_spec = opt_value(argc, argv, &i);
		else if (!strcmp(o, "--resp-size"))
			resp_spec = opt_value(argc, argv, &i);
		else if (!strcmp(o, "--short"))
			cli.short_conns = true;
		else if (!strcmp(o, "--stream-ms")) {
			uint64_t v = opt_u64(argc, argv, &i);

			if (v > UINT32_MAX)
				die("--stream-ms: too large");
			cli.stream_ms = (uint32_t)v;
		} else if (!strcmp(o, "--pipeline"))
			cli.pipeline = opt_u64(argc, argv, &i);
		else if (!strcmp(o, "--idle-ms"))
			cli.idle_ms = opt_u64(argc, argv, &i);
		else if (!strcmp(o, "--tcp-info"))
			tinfo.enabled = true;
		else if (!strcmp(o, "--read"))
			set_read_mode(opt_value(argc, argv, &i));
		else if (!strcmp(o, "--duration-s") || !strcmp(o, "--rate")) {
			const char *v = opt_value(argc, argv, &i);
			char *e;
			double d = strtod(v, &e);

			if (*e || !(d > 0))
				die("%s: bad value '%s'", o, v);
			if (!strcmp(o, "--rate"))
				cli.rate = d;
			else
				cli.duration_s = d;
		} else
			die("client: unknown option '%s'", o);
	}
	if (!cli.target)
		die("client: --connect ADDR:PORT is required");
	if (!cli.conns || !cli.parallel || !cli.pipeline || (!cli.exchanges && !cli.short_conns))
		die("client: --conns, --parallel, --exchanges and --pipeline must be > 0");
	if (cli.pipeline > MAX_PIPELINE)
		die("client: --pipeline at most %d", MAX_PIPELINE);
	parse_size_list("--req-size", req_spec, &cli.req);
	parse_size_list("--resp-size", resp_spec, &cli.resp);
	cli.ai = resolve(cli.target, false);
	signal(SIGPIPE, SIG_IGN);

	nthreads = cli.parallel;
	if (!cli.duration_s && nthreads > cli.conns)
		nthreads = cli.conns;
	if (cli.duration_s && !cli.short_conns && !parallel_set)
		nthreads = cli.conns; /* every keep-alive connection runs the whole time */
	ws = calloc(nthreads, sizeof(*ws));
	if (!ws)
		die("out of memory");

	cli.start_ns = now_ns();
	if (cli.duration_s)
		cli.deadline_ns = cli.start_ns + (uint64_t)(cli.duration_s * 1e9);
	for (uint64_t i = 0; i < nthreads; i++) {
		pthread_attr_t attr;

		ws[i].buf = calloc(1, BUF_SIZE);
		if (!ws[i].buf)
			die("out of memory");
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, THREAD_STACK);
		if (pthread_create(&ws[i].thread, &attr, client_worker, &ws[i]))
			die("pthread_create failed");
		pthread_attr_destroy(&attr);
	}
	for (uint64_t i = 0; i < nthreads; i++) {
		struct worker *w = &ws[i];

		pthread_join(w->thread, NULL);
		conns += w->conns;
		exch += w->exchanges;
		sent += w->bytes_sent;
		rcvd += w->bytes_received;
		errors += w->errors;
		for (size_t j = 0; j < w->lat.n; j++) {
			if (lat_push(&all, w->lat.v[j]))
				die("out of memory");
			sum_us += w->lat.v[j];
		}
		free(w->lat.v);
		free(w->buf);
	}
	end = now_ns();
	elapsed = (double)(end - cli.start_ns) / 1e9;
	qsort(all.v, all.n, sizeof(*all.v), cmp_u32);
	json_print("{\"role\":\"client\",\"conns\":%" PRIu64 ",\"exchanges\":%" PRIu64
		   ",\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64 ",\"errors\":%" PRIu64
		   ",\"elapsed_s\":%.6f,\"exchanges_per_s\":%.1f"
		   ",\"latency_us\":{\"p50\":%u,\"p90\":%u,\"p99\":%u,\"max\":%u,\"mean\":%.1f}%s}",
		   conns, exch, sent, rcvd, errors, elapsed,
		   elapsed > 0 ? (double)exch / elapsed : 0.0, pct(all.v, all.n, 50),
		   pct(all.v, all.n, 90), pct(all.v, all.n, 99), all.n ? all.v[all.n - 1] : 0,
		   all.n ? sum_us / (double)all.n : 0.0,
		   tcp_info_json(tinfo_buf, sizeof(tinfo_buf)));
	free(all.v);
	free(ws);
	freeaddrinfo(cli.ai);
	return errors ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tcpload server --listen ADDR:PORT [--threads N] [--max-conns N]\n"
		"                      [--ready-file FILE] [--tcp-info] [--read MODE]\n"
		"       tcpload client --connect ADDR:PORT [--conns C] [--parallel P]\n"
		"                      [--exchanges E] [--req-size SPEC] [--resp-size SPEC]\n"
		"                      [--short] [--stream-ms MS] [--pipeline K] [--idle-ms MS]\n"
		"                      [--duration-s S] [--rate R] [--tcp-info] [--read MODE]\n"
		"MODE: plain, peek (a MSG_PEEK before each read) or waitall (MSG_WAITALL).\n"
		"SPEC: a size (64, 10KiB, 10MiB) or a comma list cycled through (1,100,64KiB).\n"
		"ADDR: IPv4, [IPv6] or a host name. Each role prints one JSON line.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "server"))
		return server_main(argc - 2, argv + 2);
	if (!strcmp(argv[1], "client"))
		return client_main(argc - 2, argv + 2);
	usage(stderr);
	return 2;
}
