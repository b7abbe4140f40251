// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fentry back-end (5.5+ with BPF trampolines): fexit tcp_sendmsg sees the
 * bytes actually sent (its return value); fentry tcp_cleanup_rbuf sees the
 * bytes copied to the application by every read path, splice included (the
 * choice tcptop makes). tcp_cleanup_rbuf also runs for MSG_PEEK reads, which
 * are then counted twice: a known limit of this hook.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "track.bpf.h"

SEC("fexit/tcp_sendmsg")
int BPF_PROG(fexit_tcp_sendmsg, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	if (ret > 0)
		on_io(sk, ret, true);
	return 0;
}

SEC("fentry/tcp_cleanup_rbuf")
int BPF_PROG(fentry_tcp_cleanup_rbuf, struct sock *sk, int copied)
{
	if (copied > 0)
		on_io(sk, copied, false);
	return 0;
}
