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

/* storage: the socket's own bpf_sk_storage (tp_btf: BTF-typed arguments,
 * which may use it), an entry created at the socket's first call and
 * updated on every one. */
struct bench_entry {
	__u64 calls;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct bench_entry);
} bench_storage SEC(".maps");

static __always_inline int storage(struct sock *sk, int ret)
{
	struct bench_entry *e;

	e = bpf_sk_storage_get(&bench_storage, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (e && ret > 0) {
		e->calls++;
		e->bytes += ret;
	}
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_sock_send_length_storage, struct sock *sk, int ret, int flags)
{
	return storage(sk, ret);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_sock_recv_length_storage, struct sock *sk, int ret, int flags)
{
	return storage(sk, ret);
}

/* The same entry in a preallocated hash keyed by the socket (inserted at
 * its first call), for comparison with storage. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct bench_entry);
} bench_entries SEC(".maps");

static __always_inline int hashed(struct sock *sk, int ret)
{
	static const struct bench_entry zero;
	__u64 key = (__u64)sk;
	struct bench_entry *e;

	e = bpf_map_lookup_elem(&bench_entries, &key);
	if (!e) {
		bpf_map_update_elem(&bench_entries, &key, &zero, BPF_NOEXIST);
		e = bpf_map_lookup_elem(&bench_entries, &key);
	}
	if (e && ret > 0) {
		e->calls++;
		e->bytes += ret;
	}
	return 0;
}

SEC("raw_tp/sock_send_length")
int BPF_PROG(tp_sock_send_length_hashed, struct sock *sk, int ret, int flags)
{
	return hashed(sk, ret);
}

SEC("raw_tp/sock_recv_length")
int BPF_PROG(tp_sock_recv_length_hashed, struct sock *sk, int ret, int flags)
{
	return hashed(sk, ret);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
