// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fentry back-end (5.8+: the ring buffer; with BPF trampolines): fexit
 * tcp_sendmsg_locked sees the bytes actually sent (its return value) with
 * the socket still locked: what arrived meanwhile waits in the backlog, so a
 * response's first send sees only the request bytes that came before it
 * (server_request_splits(); fexit tcp_sendmsg runs after release_sock() has
 * taken in the client's next request, answering the response); fentry
 * tcp_cleanup_rbuf runs after every read path, splice and zero-copy receive
 * included (the choice tcptop makes), and the bytes read are how far
 * tp->copied_seq moved (on_recv_seq(): exact with MSG_PEEK and MSG_WAITALL).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "track.bpf.h"

SEC("fexit/tcp_sendmsg_locked")
int BPF_PROG(fexit_tcp_sendmsg_locked, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	if (ret > 0)
		on_io(sk, ret, true);
	return 0;
}

SEC("fentry/tcp_cleanup_rbuf")
int BPF_PROG(fentry_tcp_cleanup_rbuf, struct sock *sk, int copied)
{
	if (copied > 0)
		on_recv_seq(sk, copied);
	else if (copied == 0)
		on_read_end(sk);
	return 0;
}
