// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kprobe back-end, for kernels without trampolines (5.8+: the ring buffer).
 * Sends: kprobe on release_sock(), which the socket's owner calls when it
 * lets go of the socket lock: at the end of every tcp_sendmsg(), and within
 * one that waits for buffer space. The bytes sent are how far tp->write_seq
 * moved since the last count (on_send_seq()). A kretprobe on tcp_sendmsg
 * would be simpler, but the kernel keeps a fixed number of kretprobe
 * instances (the number of CPUs on kernels built without preemption, such
 * as Debian 11's): with more sends blocked at once, returns are missed and
 * their bytes lost. Receives: kprobe on tcp_cleanup_rbuf, counted as the
 * fentry back-end counts them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "track.bpf.h"

SEC("kprobe/release_sock")
int BPF_KPROBE(kprobe_release_sock, struct sock *sk)
{
	on_send_seq(sk);
	return 0;
}

SEC("kprobe/tcp_cleanup_rbuf")
int BPF_KPROBE(kprobe_tcp_cleanup_rbuf, struct sock *sk, int copied)
{
	if (copied > 0)
		on_recv_seq(sk, copied);
	else if (copied == 0)
		on_read_end(sk);
	return 0;
}
