// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kprobe back-end, for kernels without trampolines (5.8+: the ring buffer):
 * kprobe + kretprobe on tcp_sendmsg (the socket is stashed per thread from
 * entry to return, where the bytes sent are known) and kprobe on
 * tcp_cleanup_rbuf, counted as the fentry back-end counts it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "track.bpf.h"

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(kprobe_tcp_sendmsg, struct sock *sk)
{
	__u64 tid = bpf_get_current_pid_tgid();
	__u64 skp = (__u64)sk;

	bpf_map_update_elem(&sendmsg_args, &tid, &skp, BPF_ANY);
	return 0;
}

SEC("kretprobe/tcp_sendmsg")
int BPF_KRETPROBE(kretprobe_tcp_sendmsg, int ret)
{
	__u64 tid = bpf_get_current_pid_tgid();
	__u64 *skp = bpf_map_lookup_elem(&sendmsg_args, &tid);

	if (!skp)
		return 0;
	if (ret > 0)
		on_io((struct sock *)*skp, ret, true);
	bpf_map_delete_elem(&sendmsg_args, &tid);
	return 0;
}

SEC("kprobe/tcp_cleanup_rbuf")
int BPF_KPROBE(kprobe_tcp_cleanup_rbuf, struct sock *sk, int copied)
{
	if (copied > 0)
		on_recv_seq(sk, copied);
	return 0;
}
