// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Benchmark only: programs on the agent's two per-call hooks that do (almost)
 * nothing, to measure what the hooks cost before the agent's own work. The
 * names start as the agent's (the kernel keeps 15 characters), so that
 * bench/run.py finds their statistics the same way. bench/hooks.c loads one
 * pair:
 *   empty   return at once: the price of the tracepoint and its dispatch;
 *   lookup  one hash-map lookup keyed by the socket pointer (the map stays
 *           empty): the price of reaching a per-socket entry, without work.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} bench_sockets SEC(".maps");

__u64 found;

SEC("raw_tp/sock_send_length")
int BPF_PROG(tp_sock_send_length, struct sock *sk, int ret, int flags)
{
	return 0;
}

SEC("raw_tp/sock_recv_length")
int BPF_PROG(tp_sock_recv_length, struct sock *sk, int ret, int flags)
{
	return 0;
}

static __always_inline int lookup(struct sock *sk)
{
	__u64 key = (__u64)sk;

	if (bpf_map_lookup_elem(&bench_sockets, &key))
		found++;
	return 0;
}

SEC("raw_tp/sock_send_length")
int BPF_PROG(tp_sock_send_length_lookup, struct sock *sk, int ret, int flags)
{
	return lookup(sk);
}

SEC("raw_tp/sock_recv_length")
int BPF_PROG(tp_sock_recv_length_lookup, struct sock *sk, int ret, int flags)
{
	return lookup(sk);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
