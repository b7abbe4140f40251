// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tracepoint back-end: raw tracepoints sock_send_length / sock_recv_length
 * (stable since 6.3). They fire in sock_sendmsg()/sock_recvmsg() for every
 * socket with the bytes actually moved, after the call: the cheapest exact
 * source. They miss what bypasses those two functions: splice() reads
 * (tcp_read_sock), TCP_ZEROCOPY_RECEIVE and kernel users of tcp_sendpage on
 * old kernels.
 */
/* tcp_sock is read with plain loads (sock.bpf.h): these hooks imply 6.3+. */
#define TCPOTEL_DIRECT_READS
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "track.bpf.h"

#define MSG_PEEK 2

SEC("raw_tp/sock_send_length")
int BPF_PROG(tp_sock_send_length, struct sock *sk, int ret, int flags)
{
	if (ret > 0)
		on_io(sk, ret, true);
	return 0;
}

SEC("raw_tp/sock_recv_length")
int BPF_PROG(tp_sock_recv_length, struct sock *sk, int ret, int flags)
{
	/* MSG_PEEK leaves the data queued: it is counted when really read. */
	if (flags & MSG_PEEK)
		return 0;
	if (ret > 0)
		on_io(sk, ret, false);
	else if (ret == 0)
		on_read_end(sk);
	return 0;
}
