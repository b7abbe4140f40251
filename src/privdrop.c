// SPDX-License-Identifier: Apache-2.0
#include "privdrop.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "log.h"

#ifndef CAP_BPF
#define CAP_BPF 39
#endif
#define CAP_LAST 63

/*
 * Keeps only `keep` in the permitted and effective sets (none inheritable),
 * with no_new_privs. The bounding set is narrowed too when the process may
 * (CAP_SETPCAP: root with every capability); started with a set of its own
 * and without CAP_SETPCAP, as the shipped systemd unit and DaemonSet start
 * it, it is left as it is: with no_new_privs nothing the process drops can
 * come back through it. *bset_narrowed says which.
 */
static int caps_keep(const int *keep, int n, bool *bset_narrowed)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};

	for (int i = 0; i < n; i++) {
		data[keep[i] / 32].effective |= 1U << (keep[i] % 32);
		data[keep[i] / 32].permitted |= 1U << (keep[i] % 32);
	}
	/* The bounding set first (it needs CAP_SETPCAP, which goes next). */
	*bset_narrowed = true;
	for (int cap = 0; cap <= CAP_LAST; cap++) {
		bool kept = false;

		for (int i = 0; i < n; i++)
			kept |= keep[i] == cap;
		if (kept || !prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) || errno == EINVAL)
			continue;
		if (errno != EPERM)
			return -errno;
		*bset_narrowed = false; /* no CAP_SETPCAP */
		break;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(SYS_capset, &hdr, data))
		return -errno;
	return 0;
}

static const int base_caps[] = { CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH };

/* Does reading a BPF map still work without CAP_BPF? Tried in a child. */
static bool map_reads_need_cap_bpf(int map_fd)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return true;
	if (pid == 0) {
		__u64 next;
		bool bset;

		if (caps_keep(base_caps, 2, &bset))
			_exit(2);
		/* ENOENT (empty map) is a read that worked; EPERM is not. */
		if (bpf_map_get_next_key(map_fd, NULL, &next) && errno == EPERM)
			_exit(1);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return true;
	return !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

int privdrop_after_attach(int map_fd)
{
	int keep[3] = { CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, CAP_BPF };
	int n = 2, err;
	bool bset;

	if (map_reads_need_cap_bpf(map_fd))
		n = 3;
	err = caps_keep(keep, n, &bset);
	if (err) {
		log_warn("cannot drop capabilities after attaching: %s", strerror(-err));
		return err;
	}
	log_info("capabilities dropped: kept CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH%s%s",
		 n == 3 ? ", CAP_BPF (this kernel needs it to read BPF maps)" : "",
		 bset ? "" : " (bounding set left as started: no CAP_SETPCAP)");
	return 0;
}
