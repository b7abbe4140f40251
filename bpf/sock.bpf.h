/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * CO-RE readers for struct sock / struct tcp_sock: every field is found at
 * its offset on the running kernel (BTF relocations), so that one object runs
 * on every kernel with BTF. The fentry and kprobe back-ends read through
 * BPF_CORE_READ (or one bpf_probe_read_kernel() of CO-RE offsets, see
 * sock_snap()); the tracepoint back-end loads the few fields of every send and
 * receive directly, through bpf_rdonly_cast() (see below). The fields read
 * here have kept their names since well before 5.5 (the oldest kernel any
 * back-end supports), so no ___flavour fallbacks are needed yet.
 */
#ifndef TCPOTEL_SOCK_BPF_H
#define TCPOTEL_SOCK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcpotel.h"

#define AF_INET	    2
#define AF_INET6    10
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

/*
 * Plain loads for the tracepoint back-end. Its hooks exist from 6.3 on, and
 * so does bpf_rdonly_cast() (6.2), which turns the raw tracepoint's socket
 * pointer into a read-only tcp_sock the program loads from directly (a
 * faulting load reads 0): a few ns a field, where bpf_probe_read_kernel()
 * costs tens of ns a call (measured: 55 ns less per send or receive). The
 * kfunc is weak, so the older kernels of the other back-ends, which read
 * through the helper, still load the object.
 */
#ifdef TCPOTEL_DIRECT_READS
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

static __always_inline const struct tcp_sock *tcp_sk_ro(const struct sock *sk)
{
	return bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock));
}
#endif

/* Sequence number just past the last byte the application has read. */
static __always_inline __u32 sock_copied_seq(const struct sock *sk)
{
#ifdef TCPOTEL_DIRECT_READS
	return tcp_sk_ro(sk)->copied_seq;
#else
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	return BPF_CORE_READ(tp, copied_seq);
#endif
}

/* Sequence number just past the last byte the application has sent (queued). */
static __always_inline __u32 sock_write_seq(const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	return BPF_CORE_READ(tp, write_seq);
}

/*
 * Fields read only where an exchange may begin or its response may start
 * (track.bpf.h, exchange_step()), never on every call: a plain load for the
 * tracepoint back-end, one kernel read each for the others.
 */
#ifdef TCPOTEL_DIRECT_READS
#define TCP_READ(sk, field) (tcp_sk_ro(sk)->field)
#else
#define TCP_READ(sk, field) BPF_CORE_READ((const struct tcp_sock *)(sk), field)
#endif

/* Sequence number of the next byte expected from the peer (a received FIN counts one). */
static __always_inline __u32 sock_rcv_nxt(const struct sock *sk)
{
	return TCP_READ(sk, rcv_nxt);
}

/* The oldest byte this end sent that the peer has not acknowledged. */
static __always_inline __u32 sock_snd_una(const struct sock *sk)
{
	return TCP_READ(sk, snd_una);
}

/*
 * snd_wl1: the sequence number of the latest segment from the peer that
 * updated the send window or acknowledged new data (tcp_ack(), and the fast
 * path of tcp_rcv_established() for every in-order data segment): in
 * practice the latest segment received.
 */
static __always_inline __u32 sock_snd_wl1(const struct sock *sk)
{
	return TCP_READ(sk, snd_wl1);
}

/*
 * When the first segment of the latest flight left (ns, the socket clock's
 * time base): TCP notes it (first_tx_mstamp, in us, for its delivery-rate
 * samples) as it sends a segment with nothing else in flight.
 */
static __always_inline __u64 sock_first_tx_ns(const struct sock *sk)
{
	return TCP_READ(sk, first_tx_mstamp) * 1000;
}

static __always_inline int sock_state_at(const struct sock *sk)
{
#ifdef TCPOTEL_DIRECT_READS
	return tcp_sk_ro(sk)->inet_conn.icsk_inet.sk.__sk_common.skc_state;
#else
	return sock_state(sk);
#endif
}

/*
 * Waits while softirq on another CPU processes a segment of this socket
 * (under its spinlock), for at most RX_WAIT looks (a few microseconds). Only
 * the tracepoint back-end reads a socket after its owner has let go of it,
 * and so may see tcp_ack() done for a segment whose data or FIN is not
 * queued yet; the others read it as its owner, while segments wait in the
 * backlog.
 */
#define RX_WAIT 4096

#ifdef TCPOTEL_DIRECT_READS
static long rx_lock_held(__u64 i, void *lock)
{
	return *(const volatile __u8 *)*(const void **)lock ? 0 : 1; /* 1: stop */
}
#endif

static __always_inline void sock_wait_rx(const struct sock *sk)
{
#ifdef TCPOTEL_DIRECT_READS
	const void *lock;

	if (!bpf_core_field_exists(sk->sk_lock.slock.rlock.raw_lock.locked))
		return;
	lock = &tcp_sk_ro(sk)->inet_conn.icsk_inet.sk.sk_lock.slock.rlock.raw_lock.locked;
	barrier();
	bpf_loop(RX_WAIT, rx_lock_held, &lock, 0);
	barrier();
#endif
}

/* The states a socket is in once the peer's FIN has come. */
static __always_inline bool sock_peer_fin_in(int state)
{
	return state == TCP_CLOSE_WAIT || state == TCP_LAST_ACK || state == TCP_CLOSING ||
	       state == TCP_TIME_WAIT || state == TCP_CLOSE;
}

/*
 * Did the read that just returned also take the peer's FIN? tcp_recvmsg()
 * moves copied_seq one past the data when it reads up to a FIN (the FIN
 * takes a sequence number), so a request that arrives with the FIN (a
 * goodbye, then close) would be numbered one too high. That can only be
 * when all that was received is read and the peer's FIN is in.
 */
static __always_inline __u32 sock_fin_read(const struct sock *sk, __u32 copied_seq)
{
	if (copied_seq != sock_rcv_nxt(sk))
		return 0;
	return sock_peer_fin_in(sock_state_at(sk));
}

/*
 * TCP's busy time in jiffies (tcp_info's tcpi_busy_time, rwnd_limited and
 * sndbuf_limited added up: the time the socket had data queued), closed
 * periods only: the one in progress, if any, began at *chrono_start.
 */
static __always_inline __u32 sock_busy_jiffies(const struct sock *sk, __u32 *chrono_start)
{
#ifdef TCPOTEL_DIRECT_READS
	const struct tcp_sock *t = tcp_sk_ro(sk);

	*chrono_start = t->chrono_start;
	return t->chrono_stat[0] + t->chrono_stat[1] + t->chrono_stat[2];
#else
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u32 stat[3] = {};

	*chrono_start = BPF_CORE_READ(tp, chrono_start);
	bpf_core_read(stat, sizeof(stat), &tp->chrono_stat);
	return stat[0] + stat[1] + stat[2];
#endif
}

/*
 * What every send and receive needs from tcp_sock: the smoothed RTT, the
 * send sequence, and the socket's own clock; three plain loads for the
 * tracepoint back-end, ONE kernel read for the others. The clock is
 * tcp_clock_cache, the CLOCK_MONOTONIC time (ns) at which TCP last sent or
 * received a segment on this socket (tcp_mstamp_refresh()): the same clock
 * as bpf_ktime_get_ns(), already read by the kernel, so exchanges are timed
 * by their packets with no clock read per call. For the one read: the fields
 * sit within 200 bytes of each other (tcp_clock_cache .. write_seq up to
 * 6.7, write_seq .. srtt_us in 100 bytes since 6.8 reordered tcp_sock); CO-RE
 * gives their offsets on the running kernel, and where they are farther
 * apart each is read on its own instead (before 4.19, with no
 * tcp_clock_cache, the clock is read).
 */
struct tcp_snap {
	__u64 clock_ns;
	__u32 write_seq;
	__u32 srtt_us; /* microseconds (tcp_sock keeps it shifted left by 3) */
};

#define TCP_SNAP_MAX 208

static __always_inline __u32 u32_min(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

static __always_inline __u32 u32_max(__u32 a, __u32 b)
{
	return a > b ? a : b;
}

static __always_inline void sock_snap(const struct sock *sk, struct tcp_snap *snap)
{
#ifdef TCPOTEL_DIRECT_READS
	const struct tcp_sock *t = tcp_sk_ro(sk);

	snap->write_seq = t->write_seq;
	snap->srtt_us = t->srtt_us >> 3;
	snap->clock_ns = t->tcp_clock_cache;
}
#else
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u32 o_seq = bpf_core_field_offset(struct tcp_sock, write_seq);
	__u32 o_srtt = bpf_core_field_offset(struct tcp_sock, srtt_us);
	__u32 o_clock, lo, hi;
	__u8 buf[TCP_SNAP_MAX] __attribute__((aligned(8)));

	if (!bpf_core_field_exists(struct tcp_sock, tcp_clock_cache))
		goto one_by_one;
	o_clock = bpf_core_field_offset(struct tcp_sock, tcp_clock_cache);
	/* From an 8-byte boundary, so that each field sits at its own alignment in
	 * buf: the verifier refuses misaligned stack loads (6.8 reordered tcp_sock). */
	lo = u32_min(o_seq, u32_min(o_srtt, o_clock)) & ~7U;
	hi = u32_max(o_seq + 4, u32_max(o_srtt + 4, o_clock + 8));
	if (hi - lo > TCP_SNAP_MAX)
		goto one_by_one;
	/* The offsets are load-time constants: the verifier sees fixed bounds. */
	if (bpf_probe_read_kernel(buf, hi - lo, (const void *)tp + lo))
		goto one_by_one;
	snap->write_seq = *(__u32 *)(buf + (o_seq - lo));
	snap->srtt_us = *(__u32 *)(buf + (o_srtt - lo)) >> 3;
	snap->clock_ns = *(__u64 *)(buf + (o_clock - lo));
	return;
one_by_one:
	snap->write_seq = BPF_CORE_READ(tp, write_seq);
	snap->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	if (bpf_core_field_exists(struct tcp_sock, tcp_clock_cache))
		snap->clock_ns = BPF_CORE_READ(tp, tcp_clock_cache);
	else
		snap->clock_ns = bpf_ktime_get_ns();
}
#endif

/* Segments in a TCP skb (tcp_skb_pcount(): GSO packs many into one). */
static __always_inline __u32 skb_tcp_segs(const struct sk_buff *skb)
{
	const struct tcp_skb_cb *cb;
	__u16 segs;

	if (!skb)
		return 1;
	cb = (const void *)skb + bpf_core_field_offset(struct sk_buff, cb);
	segs = BPF_CORE_READ(cb, tcp_gso_segs);
	return segs ? segs : 1;
}

/*
 * Finds the first byte in the receive queue that the peer sent after it had
 * received `seq` (its segment acknowledged past it): true, with its sequence
 * number in *first. TCP keeps each queued segment's acknowledgment number
 * (tcp_skb_cb's ack_seq; GRO joins only segments that carry the same one, and
 * an skb that took in later ones keeps theirs). Looks at RCVQ_SCAN skbs at most.
 */
#define RCVQ_SCAN 8

static __always_inline bool sock_rcvq_first_acking(const struct sock *sk, __u32 seq, __u32 *first)
{
	const void *head = (const void *)sk + bpf_core_field_offset(struct sock, sk_receive_queue);
	const struct sk_buff *skb = BPF_CORE_READ(sk, sk_receive_queue.next);
	const struct tcp_skb_cb *cb;

	for (int i = 0; i < RCVQ_SCAN && skb && (const void *)skb != head; i++) {
		cb = (const void *)skb + bpf_core_field_offset(struct sk_buff, cb);
		if ((__s32)(BPF_CORE_READ(cb, ack_seq) - seq) > 0) {
			*first = BPF_CORE_READ(cb, seq);
			return true;
		}
		skb = BPF_CORE_READ(skb, next);
	}
	return false;
}

/* Smoothed RTT in microseconds, on its own (at close). */
static __always_inline __u32 sock_srtt_us(const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	return BPF_CORE_READ(tp, srtt_us) >> 3;
}

#endif
