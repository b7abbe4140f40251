// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * connhold: many TCP connections held open, and many short-lived processes.
 *
 *   connhold server --listen ADDR:PORT [--ready-file F]
 *   connhold client --connect ADDR:PORT --conns N [--inflight K] [--send BYTES]
 *                   [--ready-file F]
 *   connhold churn  --connect ADDR:PORT --procs N [--parallel P] [--hold-ms MS]
 *                   [--prefix NAME] [--req-size B] [--resp-size B]
 *   connhold one    --connect ADDR:PORT [--hold-ms MS] [--req-size B] [--resp-size B]
 *                   [--exec PROGRAM ARGS...]
 *
 * server: accepts every connection and holds it, never reading, until
 * SIGTERM/SIGINT; then prints {"role":"server","accepted":N,"errors":E}.
 *
 * client: opens N connections, K at a time (non-blocking connect and poll),
 * optionally sends BYTES on each, writes N to the ready file once all are
 * established, holds them until SIGTERM/SIGINT, closes them and prints
 * {"role":"client","conns":N,"errors":E,"connect_s":T}. Exit 1 on any error.
 *
 * one: a single tcpload exchange (the 24-byte tcpload header and req_size
 * bytes up, resp_size bytes down) against `tcpload server`, then the
 * connection stays open and silent for hold_ms; with --exec the process then
 * replaces itself with PROGRAM (the connection closed first). Prints
 * {"role":"one","pid":P,"bytes_sent":S,"bytes_received":R}.
 *
 * churn: runs N `one` processes, P at a time, each a fresh exec of this
 * program whose environment has OTEL_SERVICE_NAME=NAME<i>; one JSON line per
 * process ({"pid":P,"service":"NAME<i>","status":S}) and a last summary line
 * {"role":"churn","procs":N,"failed":F,"bytes_sent":S,"bytes_received":R}.
 *
 * Every role raises RLIMIT_NOFILE to its hard limit (root: to fs.nr_open).
 * libc only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HDR_SIZE  24
#define HDR_MAGIC 0x5443504cu /* "TCPL" */
#define BUF_SIZE  (64 * 1024)

extern char **environ;

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static __attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "connhold: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR && !stop)
		;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	unsigned long nr_open = 0;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");

	if (f) {
		if (fscanf(f, "%lu", &nr_open) != 1)
			nr_open = 0;
		fclose(f);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (nr_open > rl.rlim_max) {
		struct rlimit want = { .rlim_cur = nr_open, .rlim_max = nr_open };

		if (!setrlimit(RLIMIT_NOFILE, &want))
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Stop signals interrupt blocking calls (no SA_RESTART). */
static void install_stop(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* "1.2.3.4:80", "[::1]:80", "host:80"; host may be empty or "*" for a listener. */
static struct addrinfo *resolve(const char *spec, bool passive)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t len;
	int err;

	if (!colon)
		die("bad address %s (want ADDR:PORT)", spec);
	len = (size_t)(colon - spec);
	if (len >= 2 && spec[0] == '[' && spec[len - 1] == ']') {
		spec++;
		len -= 2;
	}
	if (len >= sizeof(host))
		die("address too long: %s", spec);
	memcpy(host, spec, len);
	host[len] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	err = getaddrinfo(len && strcmp(host, "*") ? host : NULL, colon + 1, &hints, &res);
	if (err || !res)
		die("cannot resolve %s", spec);
	return res;
}

static void write_ready(const char *path, long value)
{
	char tmp[4096];
	FILE *f;

	if (!path)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		die("cannot write %s", tmp);
	fprintf(f, "%ld\n", value);
	fclose(f);
	if (rename(tmp, path))
		die("cannot rename to %s", path);
}

static int send_all(int fd, const void *buf, size_t len, uint64_t *count)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		*count += (uint64_t)n;
	}
	return 0;
}

/* ---- server ----------------------------------------------------------------- */

static int run_server(const char *listen_spec, const char *ready)
{
	struct addrinfo *ai = resolve(listen_spec, true);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	long accepted = 0, errors = 0;
	int one = 1, zero = 0, lfd;

	lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(lfd, ai->ai_addr, ai->ai_addrlen) || listen(lfd, 65535))
		die("cannot listen: %s", strerror(errno));
	freeaddrinfo(ai);
	if (getsockname(lfd, (struct sockaddr *)&ss, &sl))
		die("getsockname: %s", strerror(errno));
	write_ready(ready,
		    ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
						     ((struct sockaddr_in *)&ss)->sin_port));
	while (!stop) {
		/* A bounded wait: a stop signal between the check and a blocking call is
		 * seen within 100 ms. */
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		int fd;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			accepted++; /* held: closed by exit */
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
			continue;
		errors++;
		fprintf(stderr, "connhold: accept: %s\n", strerror(errno));
		sleep_ms(10);
	}
	printf("{\"role\":\"server\",\"accepted\":%ld,\"errors\":%ld}\n", accepted, errors);
	fflush(stdout);
	return 0;
}

/* ---- client ----------------------------------------------------------------- */

static int start_connect(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static int run_client(const char *connect_spec, long conns, long inflight, long send_bytes,
		      const char *ready)
{
	struct addrinfo *ai = resolve(connect_spec, false);
	struct pollfd *pend = calloc((size_t)inflight, sizeof(*pend));
	int *fds = calloc((size_t)conns, sizeof(*fds));
	char *buf = calloc(1, send_bytes > 0 ? (size_t)send_bytes : 1);
	long started = 0, done = 0, held = 0, errors = 0, npend = 0;
	double t0 = now_s(), connect_s;
	uint64_t sent = 0;

	if (!pend || !fds || !buf)
		die("out of memory");
	memset(buf, 'c', send_bytes > 0 ? (size_t)send_bytes : 1);
	while (done < conns && !stop) {
		while (npend < inflight && started < conns) {
			int fd = start_connect(ai);

			started++;
			if (fd < 0) {
				errors++;
				if (errors <= 5)
					fprintf(stderr, "connhold: connect: %s\n", strerror(errno));
				done++;
				continue;
			}
			pend[npend].fd = fd;
			pend[npend].events = POLLOUT;
			pend[npend].revents = 0;
			npend++;
		}
		if (!npend)
			continue;
		if (poll(pend, (nfds_t)npend, 1000) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (long i = 0; i < npend;) {
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (!pend[i].revents) {
				i++;
				continue;
			}
			getsockopt(pend[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			if (soerr) {
				errors++;
				if (errors <= 5)
					fprintf(stderr, "connhold: connect: %s\n", strerror(soerr));
				close(pend[i].fd);
			} else {
				int fl = fcntl(pend[i].fd, F_GETFL);

				fcntl(pend[i].fd, F_SETFL, fl & ~O_NONBLOCK);
				fds[held++] = pend[i].fd;
			}
			done++;
			pend[i] = pend[--npend];
		}
	}
	freeaddrinfo(ai);
	connect_s = now_s() - t0;
	for (long i = 0; i < held && send_bytes > 0; i++)
		if (send_all(fds[i], buf, (size_t)send_bytes, &sent))
			errors++;
	write_ready(ready, held);
	while (!stop)
		sleep_ms(100);
	for (long i = 0; i < held; i++)
		close(fds[i]);
	printf("{\"role\":\"client\",\"conns\":%ld,\"errors\":%ld,\"bytes_sent\":%" PRIu64
	       ",\"connect_s\":%.3f}\n",
	       held, errors, sent, connect_s);
	fflush(stdout);
	free(pend);
	free(fds);
	free(buf);
	return errors ? 1 : 0;
}

/* ---- one exchange, and many processes doing one each ------------------------ */

static void put_be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static int run_one(const char *connect_spec, long hold_ms, long req_size, long resp_size,
		   char **exec_argv)
{
	struct addrinfo *ai = resolve(connect_spec, false);
	unsigned char hdr[HDR_SIZE];
	static char buf[BUF_SIZE];
	uint64_t sent = 0, rcvd = 0;
	int one = 1, fd;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		fprintf(stderr, "connhold: connect %s: %s\n", connect_spec, strerror(errno));
		return 1;
	}
	freeaddrinfo(ai);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	put_be32(hdr, HDR_MAGIC);
	put_be32(hdr + 4, 0);
	put_be64(hdr + 8, (uint64_t)req_size);
	put_be64(hdr + 16, (uint64_t)resp_size);
	memset(buf, 'q', sizeof(buf));
	if (send_all(fd, hdr, sizeof(hdr), &sent))
		goto fail;
	for (long left = req_size; left > 0;) {
		size_t n = left > BUF_SIZE ? BUF_SIZE : (size_t)left;

		if (send_all(fd, buf, n, &sent))
			goto fail;
		left -= (long)n;
	}
	while (rcvd < (uint64_t)resp_size) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		rcvd += (uint64_t)n;
	}
	sleep_ms(hold_ms);
	close(fd);
	printf("{\"role\":\"one\",\"pid\":%d,\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64
	       "}\n",
	       (int)getpid(), sent, rcvd);
	fflush(stdout);
	if (exec_argv && exec_argv[0]) {
		execvp(exec_argv[0], exec_argv);
		fprintf(stderr, "connhold: exec %s: %s\n", exec_argv[0], strerror(errno));
		return 1;
	}
	return 0;
fail:
	fprintf(stderr, "connhold: exchange failed: %s\n", strerror(errno));
	close(fd);
	return 1;
}

struct child {
	pid_t pid;
	long idx;
};

static char **child_env(const char *prefix, long idx, char *name_buf, size_t name_size)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		die("out of memory");
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "OTEL_SERVICE_NAME=", 18))
			env[k++] = environ[i];
	snprintf(name_buf, name_size, "OTEL_SERVICE_NAME=%s%ld", prefix, idx);
	env[k++] = name_buf;
	env[k] = NULL;
	return env;
}

static int run_churn(const char *connect_spec, long procs, long parallel, long hold_ms,
		     const char *prefix, long req_size, long resp_size)
{
	struct child *kids = calloc((size_t)parallel, sizeof(*kids));
	long next = 0, running = 0, failed = 0;
	char hold[32], req[32], resp[32], conn[256];
	char a_prog[] = "connhold", a_one[] = "one", a_conn[] = "--connect", a_hold[] = "--hold-ms";
	char a_req[] = "--req-size", a_resp[] = "--resp-size";
	char *argv[] = { a_prog, a_one, a_conn, conn, a_hold, hold, a_req, req, a_resp, resp, NULL };
	uint64_t sent = 0, rcvd = 0;
	char self[4096];
	ssize_t sl;

	if (!kids)
		die("out of memory");
	sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0)
		die("cannot read /proc/self/exe");
	self[sl] = '\0';
	snprintf(conn, sizeof(conn), "%s", connect_spec);
	snprintf(hold, sizeof(hold), "%ld", hold_ms);
	snprintf(req, sizeof(req), "%ld", req_size);
	snprintf(resp, sizeof(resp), "%ld", resp_size);
	while ((next < procs || running) && !stop) {
		while (running < parallel && next < procs) {
			char name[512];
			char **env = child_env(prefix, next, name, sizeof(name));
			pid_t pid = fork();

			if (pid < 0)
				die("fork: %s", strerror(errno));
			if (pid == 0) {
				int devnull = open("/dev/null", O_WRONLY);

				if (devnull >= 0)
					dup2(devnull, STDOUT_FILENO);
				execve(self, argv, env);
				_exit(127);
			}
			free(env);
			for (long i = 0; i < parallel; i++) {
				if (!kids[i].pid) {
					kids[i].pid = pid;
					kids[i].idx = next;
					break;
				}
			}
			running++;
			next++;
		}
		{
			int status;
			pid_t pid = waitpid(-1, &status, 0);

			if (pid < 0) {
				if (errno == EINTR)
					continue;
				die("waitpid: %s", strerror(errno));
			}
			for (long i = 0; i < parallel; i++) {
				if (kids[i].pid != pid)
					continue;
				bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

				if (ok) {
					sent += HDR_SIZE + (uint64_t)req_size;
					rcvd += (uint64_t)resp_size;
				} else {
					failed++;
				}
				printf("{\"pid\":%d,\"service\":\"%s%ld\",\"status\":%d}\n",
				       (int)pid, prefix, kids[i].idx, ok ? 0 : 1);
				kids[i].pid = 0;
				running--;
				break;
			}
		}
	}
	printf("{\"role\":\"churn\",\"procs\":%ld,\"failed\":%ld,\"bytes_sent\":%" PRIu64
	       ",\"bytes_received\":%" PRIu64 "}\n",
	       next, failed, sent, rcvd);
	fflush(stdout);
	free(kids);
	return failed ? 1 : 0;
}

/* ---- command line ------------------------------------------------------------ */

static long num(const char *opt, const char *v)
{
	char *end;
	long n;

	if (!v)
		die("%s needs a value", opt);
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n < 0)
		die("bad number for %s", opt);
	return n;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: connhold server --listen ADDR:PORT [--ready-file F]\n"
		"       connhold client --connect ADDR:PORT --conns N [--inflight K] [--send B]"
		" [--ready-file F]\n"
		"       connhold churn --connect ADDR:PORT --procs N [--parallel P] [--hold-ms MS]\n"
		"                      [--prefix NAME] [--req-size B] [--resp-size B]\n"
		"       connhold one --connect ADDR:PORT [--hold-ms MS] [--req-size B]"
		" [--resp-size B] [--exec PROGRAM ARGS...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *addr = NULL, *ready = NULL, *prefix = "churn-";
	long conns = 0, inflight = 256, send_bytes = 0, procs = 0, parallel = 16;
	long hold_ms = 0, req_size = 100, resp_size = 100;
	char **exec_argv = NULL;
	const char *role;

	if (argc < 2)
		usage();
	role = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(o, "--exec")) {
			exec_argv = argv + i + 1;
			break;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(o, "--listen") || !strcmp(o, "--connect"))
			addr = v;
		else if (!strcmp(o, "--ready-file"))
			ready = v;
		else if (!strcmp(o, "--prefix"))
			prefix = v;
		else if (!strcmp(o, "--conns"))
			conns = num(o, v);
		else if (!strcmp(o, "--inflight"))
			inflight = num(o, v);
		else if (!strcmp(o, "--send"))
			send_bytes = num(o, v);
		else if (!strcmp(o, "--procs"))
			procs = num(o, v);
		else if (!strcmp(o, "--parallel"))
			parallel = num(o, v);
		else if (!strcmp(o, "--hold-ms"))
			hold_ms = num(o, v);
		else if (!strcmp(o, "--req-size"))
			req_size = num(o, v);
		else if (!strcmp(o, "--resp-size"))
			resp_size = num(o, v);
		else
			usage();
	}
	if (!addr || inflight < 1 || parallel < 1)
		usage();
	raise_nofile();
	install_stop();
	if (!strcmp(role, "server"))
		return run_server(addr, ready);
	if (!strcmp(role, "client") && conns > 0)
		return run_client(addr, conns, inflight, send_bytes, ready);
	if (!strcmp(role, "churn") && procs > 0)
		return run_churn(addr, procs, parallel, hold_ms, prefix, req_size, resp_size);
	if (!strcmp(role, "one"))
		return run_one(addr, hold_ms, req_size, resp_size, exec_argv);
	usage();
	return 2;
}
