// SPDX-License-Identifier: Apache-2.0
/*
 * Root tier: every back-end's very programs against this kernel (loaded and
 * attached, or refused with a reason), the choice capture.backend: auto
 * makes, the fall-back when the chosen back-end cannot attach, and what the
 * kernel must have. What this kernel should allow comes from kernel.h: the
 * kernel matrix's expectations, or the kernel's own answers to stand-in
 * programs, never one kernel's answers written here.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture.h"
#include "kernel.h"
#include "log.h"
#include "probe.h"
#include "test.h"

static bool need_root(void)
{
	if (geteuid() == 0)
		return true;
	test_skip("needs root (loads BPF programs into the kernel)");
	return false;
}

static struct capture_opts test_opts(enum capture_backend backend)
{
	struct capture_opts opts = {
		.backend = backend,
		.max_sockets = 4096,
		.exchange_records = true,
		.idle_timeout_ns = 5000000000ULL,
		.quiet = true,
	};

	return opts;
}

/* The back-end's programs load and attach exactly where the kernel should allow it. */
static void backend_case(enum capture_backend backend)
{
	struct capture_opts opts = test_opts(backend);
	bool expected = kernel_expects(backend);
	struct capture *c;
	char why[256] = "";
	void *old;
	int err;

	if (!need_root())
		return;
	old = log_mute_libbpf();
	c = capture__load(&opts);
	err = c ? capture__attach(c) : -errno;
	log_restore_libbpf(old);
	if (expected) {
		/* Again, for libbpf's and the verifier's reasons in the output. */
		if (!c) {
			opts.quiet = false;
			capture__destroy(capture__load(&opts));
		}
		if (ASSERT_NOT_NULL(c) && ASSERT_OK(err)) {
			ASSERT_GE(capture__sockets_fd(c), 0);
			struct ring_buffer *rb = capture__records_new(c, NULL, NULL);

			ASSERT_NOT_NULL(rb);
			ring_buffer__free(rb);
			ASSERT_EQ(capture__backend(c), backend);
		}
	} else {
		ASSERT_TRUE(c == NULL || err != 0);
		/* The stand-in programs say why, for the log. */
		ASSERT_LT(probe_backend(backend, why, sizeof(why)), 0);
		ASSERT_GT(strlen(why), 10);
	}
	capture__destroy(c);
}

TEST(bpf_tracepoint_loads_and_attaches_where_expected)
{
	backend_case(BACKEND_TRACEPOINT);
}

TEST(bpf_fentry_loads_and_attaches_where_expected)
{
	backend_case(BACKEND_FENTRY);
}

TEST(bpf_kprobe_loads_and_attaches_where_expected)
{
	backend_case(BACKEND_KPROBE);
}

TEST(bpf_auto_picks_by_proof)
{
	struct capture_opts opts = test_opts(BACKEND_AUTO);
	enum capture_backend want = kernel_expected_auto();
	struct capture *c;

	if (!need_root())
		return;
	if (!ASSERT_NE(want, BACKEND_AUTO))
		return;
	c = probe_capture(&opts, NULL, 0);
	if (ASSERT_NOT_NULL(c))
		ASSERT_STREQ(config_backend_name(capture__backend(c)), config_backend_name(want));
	capture__destroy(c);
}

/*
 * Runs probe_capture() in a child whose seccomp filter refuses
 * perf_event_open(2) with EACCES, as a container runtime's profile may: the
 * kprobe back-end then cannot attach (libbpf attaches kprobes through perf
 * events), whatever the kernel. Returns the back-end the child got
 * (BACKEND_AUTO: none) and its log in `log`.
 */
static enum capture_backend capture_without_perf_events(const struct capture_opts *opts,
							const enum capture_backend *order,
							size_t n_order, char *log, size_t size)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_perf_event_open, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = ARRAY_SIZE(filter), .filter = filter };
	int out[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	log[0] = '\0';
	if (pipe(out))
		return BACKEND_AUTO;
	pid = fork();
	if (pid == 0) {
		struct capture *c;

		dup2(out[1], STDERR_FILENO);
		close(out[0]);
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(100);
		log_bridge_libbpf();
		c = probe_capture(opts, order, n_order);
		_exit(c ? capture__backend(c) : BACKEND_AUTO);
	}
	close(out[1]);
	while (len + 1 < size && (n = read(out[0], log + len, size - len - 1)) > 0)
		len += (size_t)n;
	log[len] = '\0';
	close(out[0]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return BACKEND_AUTO;
	return (enum capture_backend)WEXITSTATUS(status);
}

/*
 * The chosen back-end cannot attach: the next one takes over, and the log
 * says why the first was passed over. Kprobe comes first here; perf events
 * are refused, so it fails on every kernel, and the capture must come from
 * the back-end this kernel should choose after it. Without the fall-back,
 * this fails. Where kprobe is the only back-end (arm64 before 6.4), none
 * may take over: the start must fail, saying that every one was tried.
 */
TEST(bpf_fallback_takes_over_when_the_chosen_backend_cannot_attach)
{
	struct capture_opts opts = test_opts(BACKEND_AUTO);
	enum capture_backend order[3] = { BACKEND_KPROBE }, want = BACKEND_AUTO, got;
	static const enum capture_backend rest[] = { BACKEND_TRACEPOINT, BACKEND_FENTRY };
	static char log[65536];
	char line[256];
	size_t n = 1;

	if (!need_root())
		return;
	for (size_t i = 0; i < ARRAY_SIZE(rest); i++) {
		if (kernel_expects(rest[i]) && want == BACKEND_AUTO)
			want = rest[i];
		order[n++] = rest[i];
	}
	got = capture_without_perf_events(&opts, order, n, log, sizeof(log));
	ASSERT_TRUE(strstr(log, "capture back-end kprobe: unavailable: ") != NULL);
	if (want == BACKEND_AUTO) {
		if (!ASSERT_EQ(got, BACKEND_AUTO) ||
		    !ASSERT_TRUE(strstr(log,
					"no capture back-end can attach on this kernel (kprobe, "
					"tracepoint and fentry were tried") != NULL))
			printf("    the child's log:\n%s", log);
		return;
	}
	if (!ASSERT_STREQ(config_backend_name(got), config_backend_name(want)))
		printf("    the child's log:\n%s", log);
	snprintf(line, sizeof(line),
		 "capture back-end: %s (auto: the first that loads and attaches, in the order "
		 "kprobe, tracepoint, fentry)",
		 config_backend_name(want));
	ASSERT_TRUE(strstr(log, line) != NULL);
}

/* A forced back-end is never replaced: it is used, or the start fails with the reason. */
TEST(bpf_forced_backend_that_cannot_attach_fails_clearly)
{
	struct capture_opts opts = test_opts(BACKEND_KPROBE);
	static char log[65536];

	if (!need_root())
		return;
	ASSERT_EQ(capture_without_perf_events(&opts, NULL, 0, log, sizeof(log)), BACKEND_AUTO);
	if (!ASSERT_TRUE(strstr(log, "capture.backend kprobe cannot be used on this kernel: ")))
		printf("    the child's log:\n%s", log);
}

TEST(bpf_kernel_has_btf_and_ring_buffer)
{
	char why[256] = "";

	if (!need_root())
		return;
	if (!ASSERT_OK(probe_kernel(why, sizeof(why))))
		printf("    %s\n", why);
}

TEST(privileges_root_is_enough)
{
	char why[256] = "";

	if (!need_root())
		return;
	ASSERT_OK(probe_privileges(why, sizeof(why)));
}
