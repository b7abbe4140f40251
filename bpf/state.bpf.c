// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Programs every back-end shares: TCP state changes (opens with their role,
 * listeners, closes that hand a socket's final numbers to user space),
 * retransmits and resets. Raw tracepoints: the socket comes as an argument,
 * and they cost less than the classic tracepoint format.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "track.bpf.h"

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(tp_inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	if (sock_is_tcp(sk))
		on_state(sk, oldstate, newstate);
	return 0;
}

/*
 * Every TCP socket is destroyed once, and the close is handled here too: a
 * raw tracepoint program does not run nested in itself, so an
 * inet_sock_set_state in softirq that interrupts the same program in process
 * context on that CPU is skipped (bpftool's recursion_misses), and its
 * socket would stay in the table. Two different programs rarely both miss.
 */
SEC("raw_tp/tcp_destroy_sock")
int BPF_PROG(tp_tcp_destroy_sock, struct sock *sk)
{
	on_destroy(sk);
	return 0;
}

/* The event's record on kernels whose tracepoint also has the retransmit's result. */
struct trace_event_raw_tcp_retransmit_skb___err {
	int err;
} __attribute__((preserve_access_index));

/*
 * On newer kernels the tracepoint fires for retransmits that failed too (its third
 * argument, err; -EBUSY while the original is still queued on this host),
 * which the kernel counts in neither tcpi_total_retrans nor TcpRetransSegs.
 * Elsewhere the branch is dead code the verifier never visits, so the
 * program reads no third argument where there is none.
 */
SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(tp_tcp_retransmit_skb, struct sock *sk, struct sk_buff *skb)
{
	struct trace_event_raw_tcp_retransmit_skb___err *has_err = NULL;

	if (bpf_core_field_exists(has_err->err) && (int)ctx[2] != 0)
		return 0;
	on_retransmit(sk, skb);
	return 0;
}

SEC("raw_tp/tcp_receive_reset")
int BPF_PROG(tp_tcp_receive_reset, struct sock *sk)
{
	on_reset(sk);
	return 0;
}

SEC("raw_tp/tcp_send_reset")
int BPF_PROG(tp_tcp_send_reset, struct sock *sk)
{
	on_reset(sk);
	return 0;
}
