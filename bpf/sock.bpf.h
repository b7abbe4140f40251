/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * CO-RE readers for struct sock / struct tcp_sock. Every read goes through
 * BPF_CORE_READ so that one object runs on every kernel with BTF. The
 * fields read here have kept their names since well before 5.5 (the oldest
 * kernel any back-end supports), so no ___flavour fallbacks are needed yet.
 */
#ifndef TCPOTEL_SOCK_BPF_H
#define TCPOTEL_SOCK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcpotel.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1

/* TCP_ESTABLISHED, TCP_CLOSE, ... come from vmlinux.h (enum of tcp_states.h). */

static __always_inline bool sock_is_tcp(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family != AF_INET && family != AF_INET6)
		return false;
	/* sk_protocol is a 16-bit field since 5.6 (it was a bitfield before):
	 * BPF_CORE_READ_BITFIELD_PROBED reads either layout. */
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) == IPPROTO_TCP &&
	       BPF_CORE_READ(sk, sk_type) == SOCK_STREAM;
}

static __always_inline int sock_state(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_state);
}

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline __u16 sock_local_port(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_num);
}

static __always_inline bool ipv6_is_v4mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;

	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

/* Local and remote address and port; v4-mapped IPv6 (a dual-stack socket
 * talking to an IPv4 peer) is folded to IPv4 so that one peer has one form. */
static __always_inline void sock_read_tuple(const struct sock *sk, struct tcpotel_tuple *t)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		/* Not BPF_CORE_READ_INTO: it would size the read by one array element. */
		bpf_core_read(t->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(t->daddr, 4, &sk->__sk_common.skc_daddr);
		t->family = AF_INET;
		return;
	}
	bpf_core_read(t->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
	bpf_core_read(t->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	t->family = AF_INET6;
	if (ipv6_is_v4mapped(t->daddr)) {
		__builtin_memcpy(t->daddr, t->daddr + 12, 4);
		__builtin_memset(t->daddr + 4, 0, 12);
		__builtin_memcpy(t->saddr, t->saddr + 12, 4);
		__builtin_memset(t->saddr + 4, 0, 12);
		t->family = AF_INET;
	}
}

/* Smoothed RTT in microseconds (tcp_sock keeps it shifted left by 3). */
static __always_inline __u32 sock_srtt_us(const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	return BPF_CORE_READ(tp, srtt_us) >> 3;
}

/* Sequence number just past the last byte sent by the application. */
static __always_inline __u32 sock_write_seq(const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	return BPF_CORE_READ(tp, write_seq);
}

/* Sequence number just past the last byte the application has read. */
static __always_inline __u32 sock_copied_seq(const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	return BPF_CORE_READ(tp, copied_seq);
}

#endif
