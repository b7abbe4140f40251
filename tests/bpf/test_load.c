// SPDX-License-Identifier: Apache-2.0
/*
 * Root tier: every back-end's programs against this kernel's verifier, and
 * the back-end probe. On the development kernel tracepoint and kprobe
 * programs load (kprobes cannot attach: no CONFIG_KPROBES), and fentry
 * programs are refused at load (no BPF trampolines): the refusal must be
 * detected and reported, not crash anything.
 */
#include <errno.h>
#include <unistd.h>

#include "capture.h"
#include "probe.h"
#include "test.h"

static bool need_root(void)
{
	if (geteuid() == 0)
		return true;
	test_skip("needs root (loads BPF programs into the kernel)");
	return false;
}

static struct capture *load(enum capture_backend backend)
{
	struct capture_opts opts = {
		.backend = backend,
		.max_sockets = 4096,
		.exchange_records = true,
		.idle_timeout_ns = 5000000000ULL,
	};

	return capture__load(&opts);
}

TEST(bpf_tracepoint_programs_pass_verifier)
{
	struct capture *c;

	if (!need_root())
		return;
	c = load(BACKEND_TRACEPOINT);
	if (!ASSERT_NOT_NULL(c))
		return;
	ASSERT_GE(capture__sockets_fd(c), 0);
	ASSERT_GE(capture__events_fd(c), 0);
	capture__destroy(c);
}

TEST(bpf_kprobe_programs_pass_verifier)
{
	struct capture *c;

	if (!need_root())
		return;
	/* Loading runs the verifier; attaching is not possible without CONFIG_KPROBES. */
	c = load(BACKEND_KPROBE);
	if (!ASSERT_NOT_NULL(c))
		return;
	capture__destroy(c);
}

TEST(bpf_fentry_refusal_is_reported)
{
	char why[256] = "";
	struct capture *c;
	int err;

	if (!need_root())
		return;
	err = probe_backend(BACKEND_FENTRY, why, sizeof(why));
	c = load(BACKEND_FENTRY);
	if (err == 0) {
		/* A kernel with trampolines: then the programs must load too. */
		ASSERT_NOT_NULL(c);
	} else {
		ASSERT_TRUE(c == NULL);
		ASSERT_TRUE(strstr(why, "fexit program refused at load") != NULL);
		ASSERT_TRUE(strstr(why, "no BPF trampolines") != NULL);
	}
	capture__destroy(c);
}

TEST(bpf_auto_picks_tracepoint_here)
{
	enum capture_backend chosen = BACKEND_AUTO;
	char why[256] = "";

	if (!need_root())
		return;
	if (!ASSERT_OK(probe_choose_backend(BACKEND_AUTO, &chosen, why, sizeof(why))))
		return;
	ASSERT_EQ(chosen, BACKEND_TRACEPOINT);
	ASSERT_TRUE(strstr(why, "auto") != NULL);
}

TEST(bpf_forced_kprobe_fails_clearly)
{
	enum capture_backend chosen = BACKEND_AUTO;
	char why[256] = "";
	char reason[256] = "";

	if (!need_root())
		return;
	if (probe_backend(BACKEND_KPROBE, reason, sizeof(reason)) == 0) {
		test_skip("this kernel has kprobes: nothing to refuse");
		return;
	}
	ASSERT_LT(probe_choose_backend(BACKEND_KPROBE, &chosen, why, sizeof(why)), 0);
	ASSERT_TRUE(strstr(why, "capture.backend kprobe cannot be used on this kernel") != NULL);
	ASSERT_TRUE(strstr(why, "CONFIG_KPROBES") != NULL);
}

TEST(privileges_root_is_enough)
{
	char why[256] = "";

	if (!need_root())
		return;
	ASSERT_OK(probe_privileges(why, sizeof(why)));
}
