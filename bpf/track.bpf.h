/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The handlers every back-end calls: on_io() for each send and receive
 * (on_recv_seq() and on_send_seq() where the hook does not know the bytes
 * of one call), on_state() for TCP state changes, on_destroy(),
 * on_retransmit() and on_reset().
 *
 * on_io() is the hottest code of the project. Its common path is one
 * lookup keyed by the socket pointer (socktab.bpf.h), a read of tcp_sock
 * (srtt, send sequence and the socket's own clock: sock_snap()) and a few
 * stores; the tuple, netns, role and owner are read once, at the socket's
 * first sight, and nothing goes to user space per call: a record leaves
 * only when a sampled exchange ends, a socket closes, or a process is seen
 * for the first time. Every exchange is counted in the socket's own duration histogram.
 * A socket's first change after a sweep queues its key for the next one
 * (sock_mark(): a compare per call, a queue push once per sweep), so the
 * sweep reads only sockets that changed (docs/design.md, "The sweep").
 */
#ifndef TCPOTEL_TRACK_BPF_H
#define TCPOTEL_TRACK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "tcpotel.h"
#include "maps.bpf.h"
#include "socktab.bpf.h"
#include "sock.bpf.h"
#include "ids.bpf.h"

/* Records never wake the drain up: it collects them on a short timer, so a
 * busy host pays no wakeup per record (a wakeup costs more than the record). */
#define RINGBUF_FLAGS BPF_RB_NO_WAKEUP

/* Room for a record in this CPU's ring (maps.bpf.h); NULL: none, counted. */
static __always_inline void *record_reserve(__u64 size)
{
	__u32 cpu = bpf_get_smp_processor_id();
	void *ring = bpf_map_lookup_elem(&events, &cpu);
	void *r = ring ? bpf_ringbuf_reserve(ring, size, 0) : NULL;

	if (!r)
		counter_inc(TCPOTEL_CNT_RINGBUF_LOST);
	return r;
}

static __always_inline bool port_excluded(__u16 port)
{
	for (int i = 0; i < TCPOTEL_MAX_EXCLUDE_PORTS; i++) {
		if (i >= cfg_n_exclude_ports)
			break;
		if (cfg_exclude_ports[i] == port)
			return true;
	}
	return false;
}

/*
 * A new sock_id: never 0, never handed out twice. Kernels before 5.12 have no
 * atomic fetch-and-add (only the add), so each CPU counts its own ids with
 * the plain atomic add, and a read before and after it proves that no other
 * program took one in between on this CPU (a softirq, or a task that
 * preempted this one): then the value after is this program's alone. The id
 * is that value with the CPU number in its low 16 bits. Another try when the
 * proof fails; 0 (the socket is not tracked) after four.
 */
static __always_inline __u64 sock_id_next(void)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&sock_ids, &zero);

	if (!c)
		return 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u64 before = *(volatile __u64 *)c, after;

		__sync_fetch_and_add(c, 1); /* the value is not used: a plain atomic add */
		after = *(volatile __u64 *)c;
		if (after == before + 1)
			return after << 16 | (bpf_get_smp_processor_id() & 0xffff);
	}
	return 0;
}

/* Inserts a zeroed entry for sk (or finds the one another CPU just made). */
static __always_inline struct tcpotel_sock *sock_insert(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcpotel_sock *s;
	long err;

	s = sock_add(key, &err);
	if (err) {
		__u8 one = 1;

		if (!bpf_map_update_elem(&untracked, &key, &one, BPF_NOEXIST))
			counter_inc(TCPOTEL_CNT_SOCK_UNTRACKED);
		return NULL;
	}
	if (s && !s->sock_id) {
		s->sock_id = sock_id_next();
		if (!s->sock_id) {
			sock_remove(key);
			counter_inc(TCPOTEL_CNT_SOCK_UNTRACKED);
			return NULL;
		}
	}
	return s;
}

static __always_inline void sock_ignore(struct tcpotel_sock *s)
{
	if (!(s->flags & TCPOTEL_SOCK_IGNORED)) {
		s->flags |= TCPOTEL_SOCK_IGNORED;
		counter_inc(TCPOTEL_CNT_SOCK_IGNORED);
	}
}

/* Tuple, netns and role, read once; applies capture.netns and exclude_ports. */
static __always_inline void sock_fill_tuple(struct sock *sk, struct tcpotel_sock *s, __u8 role)
{
	sock_read_tuple(sk, &s->tuple);
	s->netns = sock_netns(sk);
	s->role = role;
	s->flags |= TCPOTEL_SOCK_HAS_TUPLE;
	if (cfg_netns_filter && !bpf_map_lookup_elem(&netns_allowed, &s->netns))
		sock_ignore(s);
	if (cfg_n_exclude_ports && (port_excluded(s->tuple.sport) || port_excluded(s->tuple.dport)))
		sock_ignore(s);
}

/* Copies the start of the current process's environment; returns the bytes read. */
static __always_inline __u32 read_environ(struct task_struct *task, char *dst)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long start, end;
	__u32 len;

	if (!mm)
		return 0;
	start = BPF_CORE_READ(mm, env_start);
	end = BPF_CORE_READ(mm, env_end);
	if (end <= start)
		return 0;
	len = end - start > TCPOTEL_ENV_MAX ? TCPOTEL_ENV_MAX : end - start;
	/* Environment pages were written at exec: they are resident. */
	if (bpf_probe_read_user(dst, len, (const void *)start))
		return 0;
	return len;
}

/* A process's first socket: tell user space now, while its /proc entries exist. */
static __always_inline void announce_process(const struct tcpotel_sock *s)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct tcpotel_proc_key key = { .tgid = s->tgid };
	struct tcpotel_process_record *r;
	__u8 one = 1;

	key.start_ns = BPF_CORE_READ(task, group_leader, start_time);
	if (bpf_map_update_elem(&seen_procs, &key, &one, BPF_NOEXIST))
		return; /* announced before (or the map is busy: the sweep still finds it) */
	r = bpf_ringbuf_reserve(&proc_events, sizeof(*r), 0);
	if (!r) {
		counter_inc(TCPOTEL_CNT_RINGBUF_LOST);
		return;
	}
	r->hdr.type = TCPOTEL_RECORD_PROCESS;
	r->hdr.size = sizeof(*r);
	r->hdr._pad = 0;
	r->tgid = s->tgid;
	__builtin_memcpy(r->comm, s->comm, sizeof(r->comm));
	r->env_len = read_environ(task, r->env);
	/* Rare (once per process) and urgent: wake the drain at once. */
	bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
}

/* The process doing I/O owns the socket; the agent's own sockets are never observed. */
static __always_inline void sock_set_owner(struct tcpotel_sock *s)
{
	s->tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(s->comm, sizeof(s->comm));
	s->flags |= TCPOTEL_SOCK_HAS_OWNER;
	if (s->tgid == cfg_self_tgid)
		sock_ignore(s);
	else if (!(s->flags & TCPOTEL_SOCK_IGNORED))
		announce_process(s);
}

static __always_inline __u8 role_by_listener(__u32 netns, __u16 port)
{
	struct tcpotel_listen_key key = { .netns = netns, .port = port };

	return bpf_map_lookup_elem(&listeners, &key) ? TCPOTEL_ROLE_SERVER : TCPOTEL_ROLE_CLIENT;
}

/* First sight of a connection that was established before the agent started
 * (or before its state change could be seen): class it by whether its local
 * port is a listening port, and skip the turn in progress, which may be partial. */
static __always_inline struct tcpotel_sock *sock_track_midstream(struct sock *sk)
{
	struct tcpotel_sock *s;
	int state;

	if (!sock_is_tcp(sk))
		return NULL;
	state = sock_state(sk);
	if (state == TCP_CLOSE || state == TCP_LISTEN || state == TCP_SYN_SENT)
		return NULL;
	s = sock_insert(sk);
	if (!s)
		return NULL;
	if (!(s->flags & TCPOTEL_SOCK_HAS_TUPLE)) {
		s->flags |= TCPOTEL_SOCK_PREEXISTING;
		s->ex.phase = TCPOTEL_PHASE_SKIP_REQUEST;
		sock_fill_tuple(sk, s, role_by_listener(sock_netns(sk), sock_local_port(sk)));
	}
	return s;
}

/* log2 bucket: k such that v is in (2^(k-1), 2^k], bucket 0 for v <= 1. */
static __always_inline __u32 srtt_bucket(__u32 v)
{
	__u32 k = 0;

	if (v <= 1)
		return 0;
	v -= 1;
	if (v >= 1 << 16) {
		v >>= 16;
		k += 16;
	}
	if (v >= 1 << 8) {
		v >>= 8;
		k += 8;
	}
	if (v >= 1 << 4) {
		v >>= 4;
		k += 4;
	}
	if (v >= 1 << 2) {
		v >>= 2;
		k += 2;
	}
	if (v >= 1 << 1) {
		v >>= 1;
		k += 1;
	}
	k += 1;
	return k < TCPOTEL_SRTT_BUCKETS ? k : TCPOTEL_SRTT_BUCKETS - 1;
}

static __always_inline void srtt_sample(struct tcpotel_sock *s, __u32 srtt)
{
	if (!srtt)
		return; /* no RTT measured yet */
	s->srtt_last_us = srtt;
	if (!s->srtt_min_us || srtt < s->srtt_min_us)
		s->srtt_min_us = srtt;
	if (srtt > s->srtt_max_us)
		s->srtt_max_us = srtt;
	s->srtt_count++;
	s->srtt_sum_us += srtt;
	s->srtt_hist[srtt_bucket(srtt) & (TCPOTEL_SRTT_BUCKETS - 1)]++;
}

static __always_inline void exchange_emit(const struct tcpotel_sock *s,
					  const struct tcpotel_exchange *ex, __u32 srtt, __u16 type,
					  bool sampled)
{
	struct tcpotel_exchange_record *r;

	r = record_reserve(sizeof(*r));
	if (!r)
		return;
	r->hdr.type = type;
	r->hdr.size = sizeof(*r);
	r->hdr._pad = 0;
	r->sock_id = s->sock_id;
	r->tuple = s->tuple;
	r->tgid = s->tgid;
	r->netns = s->netns;
	__builtin_memcpy(r->comm, s->comm, sizeof(r->comm));
	r->role = s->role;
	r->flags = s->flags;
	r->sampled = sampled;
	r->_pad = 0;
	r->srtt_us = srtt;
	r->ex = *ex;
	r->ex.retransmits = s->retransmits - ex->retransmits;
	bpf_ringbuf_submit(r, RINGBUF_FLAGS);
}

static const __u64 exchange_bounds_ns[TCPOTEL_EXCHANGE_BUCKETS - 1] = TCPOTEL_EXCHANGE_BOUNDS_NS;

/* Bucket of a duration: how many bounds it exceeds (unrolled, no branches). */
static __always_inline __u32 exchange_bucket(__u64 ns)
{
	__u32 k = 0;

#pragma unroll
	for (int i = 0; i < TCPOTEL_EXCHANGE_BUCKETS - 1; i++)
		k += ns > exchange_bounds_ns[i];
	return k;
}

/* Adds a finished exchange of the socket to its histogram. */
static __always_inline void exchange_count(struct tcpotel_sock *s,
					   const struct tcpotel_exchange *ex)
{
	struct tcpotel_exchange_hist *h = &s->done;
	__u64 d = ex->end_ns - ex->start_ns;
	__u32 k = exchange_bucket(d);

	if (!h->count || d < h->min_ns)
		h->min_ns = d;
	if (d > h->max_ns)
		h->max_ns = d;
	h->count++;
	h->sum_ns += d;
	if (k < TCPOTEL_EXCHANGE_BUCKETS)
		h->buckets[k]++;
}

/*
 * An exchange ended: it is counted in the socket's histogram (which the
 * sweep turns into tcp.exchange.duration), and only an exchange that is
 * kept by sampling goes to user space as a record. The sampling decision is
 * the one user space and the other end make (ids.bpf.h), so that unsampled
 * exchanges cost neither a ring-buffer record nor user-space time. A failed
 * exchange (rare) is not counted here but always sent, kept or not: user
 * space counts it in tcp.exchange.duration under its error.type. This is
 * the only place an exchange is counted or reported, whoever ends it.
 */
static __always_inline void exchange_end(struct tcpotel_sock *s, const struct tcpotel_exchange *ex,
					 __u32 srtt)
{
	bool sampled;

	if (!ex->error) {
		exchange_count(s, ex);
		if (!cfg_exchange_records)
			return;
	}
	sampled = cfg_exchange_records &&
		  exchange_sampled(&s->tuple, s->role, ex->request_seq, cfg_sample_threshold);
	if (!sampled && cfg_exchange_records)
		counter_inc(TCPOTEL_CNT_SAMPLED_OUT);
	if (sampled || ex->error)
		exchange_emit(s, ex, srtt, TCPOTEL_RECORD_EXCHANGE, sampled);
}

/* The exchange in progress failed now, with `error` (it ends with it). */
static __always_inline void exchange_fail(struct tcpotel_sock *s, __u8 error)
{
	__u64 now = bpf_ktime_get_ns();

	s->ex.error = error;
	if (now > s->ex.end_ns)
		s->ex.end_ns = now;
}

/* The hot path ends the socket's current exchange (next request, close),
 * unless the sweep ended it for silence while this call was under way. */
static __always_inline void exchange_finish(struct tcpotel_sock *s, __u32 srtt)
{
	if (s->ex.start_ns != s->idle_ended_ns)
		exchange_end(s, &s->ex, srtt);
}

/*
 * Has the exchange ended in silence at `now`? A response that went quiet for
 * spans.idle_timeout has ended then, with its last byte; a request that
 * waited spans.response_timeout for its first response byte has ended when
 * that bound passed. Only the sweep asks (sock_end_if_idle()); the hot path
 * never ends an exchange for silence. Returns the end, or 0 while it goes on.
 */
static __always_inline __u64 exchange_silent_end(const struct tcpotel_exchange *ex, __u64 now)
{
	if (now <= ex->end_ns)
		return 0;
	if (TCPOTEL_PHASE_ENDS_WHEN_IDLE(ex->phase))
		return now - ex->end_ns > cfg_idle_timeout_ns ? ex->end_ns : 0;
	if (TCPOTEL_PHASE_AWAITS_RESPONSE(ex->phase))
		return now - ex->end_ns > cfg_response_timeout_ns ?
			       ex->end_ns + cfg_response_timeout_ns :
			       0;
	return 0;
}

/*
 * The sweep's collect program ends an exchange that went silent: it marks it
 * first (idle_ended_ns), so that a call racing with it on another CPU does
 * not end it again (exchange_finish()), then counts and reports it from its
 * own copy, and only then makes the socket idle. A call that read the phase
 * before that store may write it back (the exchange goes on, its later bytes
 * uncounted): the mark still keeps it from being counted twice. A request
 * that got no response byte in time is counted (tcpotel.exchanges.unanswered).
 */
static __always_inline void sock_end_if_idle(struct tcpotel_sock *s, __u64 now)
{
	struct tcpotel_exchange ex = s->ex;
	__u64 end = exchange_silent_end(&ex, now);

	if (!end)
		return;
	if (ex.start_ns != s->idle_ended_ns) {
		s->idle_ended_ns = ex.start_ns;
		if (TCPOTEL_PHASE_AWAITS_RESPONSE(ex.phase)) {
			counter_inc(TCPOTEL_CNT_UNANSWERED);
			ex.error = TCPOTEL_ERR_NO_RESPONSE;
		}
		ex.end_ns = end;
		exchange_end(s, &ex, s->srtt_last_us);
	}
	s->ex.phase = TCPOTEL_PHASE_IDLE;
}

/*
 * Queues the socket for the next sweep at its first change since the last
 * one. A full queue leaves the mark unset, so the next change tries again.
 */
static __always_inline void sock_mark(struct tcpotel_sock *s, __u64 key)
{
	__u16 gen = sweep_gen;

	if (s->mark == gen)
		return;
	if (!bpf_map_push_elem(&dirty, &key, 0))
		s->mark = gen;
}

/* Sequence-number order, modulo 2^32 (the kernel's before()/after()). */
static __always_inline bool seq_before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

static __always_inline bool seq_after(__u32 a, __u32 b)
{
	return seq_before(b, a);
}

/*
 * When a client's request began; its first send returned at snap. The
 * socket's clock then is when the call's last segment left (or the latest
 * one received, if it sent none), and a large first send may take long
 * enough that the server reads the first segments before it returns:
 *   - when none of the request is acknowledged yet, nothing was in flight
 *     as its first segment left (the previous response acknowledged what
 *     came before), so TCP noted that moment (sock_first_tx_ns()); a note
 *     from before the previous exchange ended is an older flight's: this
 *     send has sent nothing yet, and the clock is then early enough;
 *   - a first send that had to wait for buffer space returns only once the
 *     server has acknowledged part of the request (snd_una past its first
 *     byte), and flights may have begun since. Then the start is taken from
 *     TCP's busy time, which has run since the request's first byte was
 *     queued (the socket had nothing queued since its response began:
 *     prev->busy_jiffies), in whole jiffies: two ticks earlier than that,
 *     so that it is never late, and never before the previous exchange's
 *     last byte.
 */
static __always_inline __u64 exchange_start_ns(struct sock *sk, const struct tcpotel_exchange *prev,
					       const struct tcp_snap *snap, __u32 first_seq)
{
	__u32 una = sock_snd_una(sk), chrono_start, busy;
	__u64 start, back;

	if (!seq_after(una, first_seq)) {
		start = sock_first_tx_ns(sk);
		return start > prev->end_ns && start < snap->clock_ns ? start : snap->clock_ns;
	}
	start = prev->end_ns < snap->clock_ns ? prev->end_ns : snap->clock_ns;
	if (!cfg_tick_ns)
		return start;
	busy = sock_busy_jiffies(sk, &chrono_start);
	if (una != snap->write_seq) /* data still queued: a busy period in progress */
		busy += (__u32)bpf_jiffies64() - chrono_start;
	busy -= prev->busy_jiffies;
	back = ((__u64)busy + 2) * cfg_tick_ns;
	if (back < snap->clock_ns && snap->clock_ns - back > start)
		start = snap->clock_ns - back;
	return start;
}

/*
 * Does a client's send in phase REQUEST (it has read no response yet) begin a
 * new exchange? Only if TCP has received bytes from the server since the
 * exchange began, which this send's first segment acknowledges: what the
 * server goes by (server_request_splits()). And only if the server had
 * acknowledged everything sent before this send: bytes that arrive while
 * earlier request bytes are still in flight were sent before the server read
 * those (the tail of an earlier response), and the server, reading this
 * send's bytes in the middle of a request, does not split there.
 * `first` is the sequence number of this send's first byte.
 */
static __always_inline bool client_request_splits(struct sock *sk,
						  const struct tcpotel_exchange *ex, __u32 first)
{
	return seq_after(sock_rcv_nxt(sk), ex->resp_seq) && !seq_before(sock_snd_una(sk), first);
}

/*
 * Where the request bytes that a server receives stop joining the exchange
 * it answers (server_request_splits()), looked at as its first response
 * send is seen. That is at the end of the call, by when a quick client may
 * have read the response and sent its next request (on a loopback or veth
 * link, within the call). What the server has received joins, unless the
 * client has acknowledged some of the response and a queued segment says it
 * was sent after that: TCP keeps each queued segment's acknowledgment
 * number. From the first byte of such a segment on, bytes begin a new
 * exchange (req_after_resp).
 */
static __always_inline void server_sees_requests(struct sock *sk, struct tcpotel_exchange *ex)
{
	__u32 rcv_nxt = sock_rcv_nxt(sk), seq;

	ex->req_rcvd_seq = rcv_nxt;
	ex->req_after_resp = 0;
	if (rcv_nxt != sock_copied_seq(sk) && seq_after(sock_snd_una(sk), ex->resp_seq) &&
	    sock_rcvq_first_acking(sk, ex->resp_seq, &seq)) {
		ex->req_rcvd_seq = seq;
		ex->req_after_resp = 1;
	}
}

/*
 * Does a server's read of request bytes in phase RESPONSE begin a new
 * exchange? Only if the client sent them after it had received some of the
 * response, which its segment says by acknowledging it. The server cannot
 * see that segment's acknowledgment, only snd_una, the highest one so far:
 *   - bytes received before the first response byte was sent join the
 *     exchange (the client cannot have seen the response);
 *   - so do bytes when no response byte has been acknowledged at all;
 *   - when the latest segment from the client is a bare acknowledgment sent
 *     after these bytes (snd_wl1 at rcv_nxt, past them), it may be what moved
 *     snd_una: the bytes join too (a TLS 1.3 client's first request, sent
 *     before the server's session tickets arrived, which it then acknowledged);
 *     unless this end sent a segment again since the exchange began: the
 *     client answers a duplicate with an acknowledgment of its own, after
 *     whatever it sent last;
 *   - otherwise they begin a new exchange.
 * `first` is the sequence number of the first byte read.
 */
static __always_inline bool server_request_splits(struct sock *sk, const struct tcpotel_sock *s,
						  __u32 first)
{
	const struct tcpotel_exchange *ex = &s->ex;
	__u32 wl1;

	if (seq_before(first, ex->req_rcvd_seq))
		return false;
	if (ex->req_after_resp)
		return true;
	if (!seq_after(sock_snd_una(sk), ex->resp_seq))
		return false;
	wl1 = sock_snd_wl1(sk);
	if (!seq_after(wl1, first) || s->retransmits != ex->retransmits)
		return true;
	/* A FIN's tcp_ack() moves snd_wl1 to rcv_nxt too, just before the FIN
	 * moves rcv_nxt on: rcv_nxt is read after snd_wl1, once no segment is
	 * half processed. */
	sock_wait_rx(sk);
	return wl1 != sock_rcv_nxt(sk);
}

/*
 * One step of the exchange state machine (docs/design.md, "Exchanges"). The
 * request direction is send for a client and receive for a server. An
 * exchange ends at the next request after its response (both ends decide
 * where a request is "next" from what TCP acknowledged: client_ and
 * server_request_splits()), at close, or in silence (the sweep:
 * sock_end_if_idle()). Extra reads of tcp_sock happen only where a phase may
 * change: the first byte of a request or of a response.
 */
static __always_inline void exchange_step(struct sock *sk, struct tcpotel_sock *s, bool is_send,
					  __u32 bytes, const struct tcp_snap *snap)
{
	struct tcpotel_exchange *ex = &s->ex;
	bool client = s->role == TCPOTEL_ROLE_CLIENT;
	bool is_request = is_send == client;
	__u64 now = snap->clock_ns;
	__u8 phase = ex->phase;
	__u32 first = 0;

	if (is_request) {
		if (client) {
			first = snap->write_seq - bytes;
		} else if (phase == TCPOTEL_PHASE_RESPONSE || phase == TCPOTEL_PHASE_IDLE ||
			   phase == TCPOTEL_PHASE_SKIP_RESPONSE) {
			__u32 copied = sock_copied_seq(sk);

			first = copied - sock_fin_read(sk, copied) - bytes;
		}
		if ((phase == TCPOTEL_PHASE_RESPONSE &&
		     (client || server_request_splits(sk, s, first))) ||
		    (phase == TCPOTEL_PHASE_REQUEST && client &&
		     client_request_splits(sk, ex, first))) {
			exchange_finish(s, snap->srtt_us);
			phase = TCPOTEL_PHASE_IDLE;
		}
		if (phase == TCPOTEL_PHASE_IDLE || phase == TCPOTEL_PHASE_SKIP_RESPONSE) {
			if (client) {
				ex->start_ns = exchange_start_ns(sk, ex, snap, first);
				ex->resp_seq = sock_rcv_nxt(sk);
			} else {
				ex->start_ns = now;
			}
			ex->request_seq = first;
			ex->request_bytes = 0;
			ex->response_bytes = 0;
			ex->error = TCPOTEL_ERR_NONE;
			ex->retransmits = s->retransmits;
			phase = TCPOTEL_PHASE_REQUEST;
		}
		/* RESPONSE here: bytes the client sent before it saw the response. */
		if (phase == TCPOTEL_PHASE_REQUEST || phase == TCPOTEL_PHASE_RESPONSE)
			ex->request_bytes += bytes;
	} else {
		if (phase == TCPOTEL_PHASE_REQUEST) {
			__u32 chrono_start;

			if (client) {
				ex->busy_jiffies = sock_busy_jiffies(sk, &chrono_start);
			} else {
				ex->resp_seq = snap->write_seq - bytes;
				server_sees_requests(sk, ex);
			}
			phase = TCPOTEL_PHASE_RESPONSE;
		}
		if (phase == TCPOTEL_PHASE_RESPONSE)
			ex->response_bytes += bytes;
		else if (phase == TCPOTEL_PHASE_SKIP_REQUEST)
			phase = TCPOTEL_PHASE_SKIP_RESPONSE;
		/* IDLE: a response with no request seen (the server spoke first,
		 * or the sweep ended the exchange for silence): not an exchange. */
	}
	/* The socket clock never runs backwards, but a stale one may equal it. */
	if (now > ex->end_ns)
		ex->end_ns = now;
	ex->phase = phase;
}

/* The entry of a socket that sends or receives; NULL when it is not observed. */
static __always_inline struct tcpotel_sock *io_sock(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcpotel_sock *s;

	s = sock_find(key);
	if (!s) {
		s = sock_track_midstream(sk);
		if (!s)
			return NULL;
	}
	if (!(s->flags & TCPOTEL_SOCK_HAS_OWNER))
		sock_set_owner(s);
	if (s->flags & TCPOTEL_SOCK_IGNORED)
		return NULL;
	return s;
}

static __always_inline void io_count(struct sock *sk, struct tcpotel_sock *s, __u32 bytes,
				     bool is_send)
{
	struct tcp_snap snap;

	/* Atomic: two threads may write one socket; bytes must stay exact. */
	if (is_send)
		__sync_fetch_and_add(&s->bytes_sent, bytes);
	else
		__sync_fetch_and_add(&s->bytes_received, bytes);
	sock_snap(sk, &snap);
	srtt_sample(s, snap.srtt_us);
	exchange_step(sk, s, is_send, bytes, &snap);
	sock_mark(s, (__u64)sk);
}

/* Every send (is_send) or receive of `bytes` > 0 bytes on a TCP socket. */
static __always_inline void on_io(struct sock *sk, __u32 bytes, bool is_send)
{
	struct tcpotel_sock *s = io_sock(sk);

	if (s)
		io_count(sk, s, bytes, is_send);
}

/*
 * closed_by_peer: the client read the end of the stream (the server's FIN)
 * while its request waited with nothing received since it began. Only the
 * client can tell this from a goodbye: on the wire, a server that closes
 * after reading a request looks the same whether the request was
 * PostgreSQL's Terminate or one it would not answer, and the FIN may even
 * come before the client that said goodbye closes too; but a client that
 * said goodbye closes without reading, one that waits for an answer reads
 * the end. The exchange ends there and then (on_read_end()).
 */
static __always_inline void client_read_end(struct sock *sk, struct tcpotel_sock *s)
{
	if (s->role != TCPOTEL_ROLE_CLIENT || s->ex.phase != TCPOTEL_PHASE_REQUEST ||
	    (s->flags & (TCPOTEL_SOCK_IGNORED | TCPOTEL_SOCK_HAS_TUPLE)) != TCPOTEL_SOCK_HAS_TUPLE)
		return;
	/* The FIN took one sequence number: nothing else came. */
	if (sock_rcv_nxt(sk) != s->ex.resp_seq + 1)
		return;
	exchange_fail(s, TCPOTEL_ERR_CLOSED_BY_PEER);
	exchange_finish(s, s->srtt_last_us);
	s->ex.phase = TCPOTEL_PHASE_IDLE;
	sock_mark(s, (__u64)sk);
}

/*
 * A read that returned no bytes: the end of the stream when the peer's FIN
 * is in and was read. Most such reads found nothing yet (EAGAIN, at
 * tcp_cleanup_rbuf()): the socket's state, one load, tells them apart first.
 */
static __always_inline void on_read_end(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcpotel_sock *s;

	if (!sock_peer_fin_in(sock_state_at(sk)))
		return;
	s = sock_find(key);
	if (s && sock_fin_read(sk, sock_copied_seq(sk)))
		client_read_end(sk, s);
}

/*
 * Receives seen at tcp_cleanup_rbuf(sk, copied) (fentry and kprobe
 * back-ends). It runs at the end of every read, MSG_PEEK included, and also
 * while a read waits for more (MSG_WAITALL, SO_RCVLOWAT), each time with all
 * the bytes copied so far: `copied` would count peeks, and such reads more
 * than once. The bytes read are the advance of tp->copied_seq since the last
 * count instead (a peek does not move it; splice and zero-copy receive do).
 * The socket's lock serializes these calls for one socket.
 */
static __always_inline void on_recv_seq(struct sock *sk, __u32 copied)
{
	struct tcpotel_sock *s = io_sock(sk);
	__u32 seq, bytes;

	if (!s)
		return;
	/* A peer's FIN read with its last bytes takes a sequence number, not a byte. */
	seq = sock_copied_seq(sk);
	seq -= sock_fin_read(sk, seq);
	if (!(s->flags & TCPOTEL_SOCK_RCV_SEQ)) {
		/* Its opening was not seen: this read's bytes are all there is to go by. */
		s->rcv_seq = seq - copied;
		s->flags |= TCPOTEL_SOCK_RCV_SEQ;
	}
	bytes = seq - s->rcv_seq;
	if ((__s32)bytes <= 0)
		return;
	s->rcv_seq = seq;
	io_count(sk, s, bytes, false);
}

/*
 * Sends seen at release_sock(sk) (kprobe back-end), for every socket: the
 * bytes sent are how far tp->write_seq moved since the last count. Only the
 * socket's owner releases it, so these calls are serialized for one socket.
 * Counted in ESTABLISHED and CLOSE_WAIT only: once this end has sent its FIN
 * (which takes a sequence number) the application sends nothing more.
 */
static __always_inline void on_send_seq(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcpotel_sock *s = sock_find(key);
	__u32 seq, bytes;
	int state;

	/* Most releases are of sockets already in the table, or not TCP. */
	if (!s && !sock_is_tcp(sk))
		return;
	state = sock_state(sk);
	if (state != TCP_ESTABLISHED && state != TCP_CLOSE_WAIT)
		return;
	s = io_sock(sk);
	if (!s)
		return;
	seq = sock_write_seq(sk);
	if (!(s->flags & TCPOTEL_SOCK_SND_SEQ)) {
		/* Its opening was not seen: count from here. */
		s->snd_seq = seq;
		s->flags |= TCPOTEL_SOCK_SND_SEQ;
		return;
	}
	bytes = seq - s->snd_seq;
	if ((__s32)bytes <= 0)
		return;
	s->snd_seq = seq;
	io_count(sk, s, bytes, true);
}

static __always_inline void listener_add(const struct sock *sk)
{
	struct tcpotel_listen_key key = { .netns = sock_netns(sk), .port = sock_local_port(sk) };
	struct tcpotel_listen val = {};

	/* listen() runs in the process that owns the socket. */
	val.tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(val.comm, sizeof(val.comm));
	if (bpf_map_update_elem(&listeners, &key, &val, BPF_ANY))
		counter_inc(TCPOTEL_CNT_LISTEN_UNTRACKED);
}

static __always_inline void listener_del(const struct sock *sk)
{
	struct tcpotel_listen_key key = { .netns = sock_netns(sk), .port = sock_local_port(sk) };

	bpf_map_delete_elem(&listeners, &key);
}

/* Hands a socket's final numbers (and any exchange still open) to user space,
 * then forgets it. The entry is deleted before the record is submitted so
 * that a sweep never sees a socket whose close it has already processed.
 * `aborted`: the connection went to CLOSE with no FIN exchanged (a reset sent
 * or received, or TCP gave up retransmitting: sk_err ETIMEDOUT); a request
 * still waiting for its response then failed. */
static __always_inline void sock_close(struct sock *sk, bool aborted)
{
	__u64 key = (__u64)sk;
	struct tcpotel_close_record *r;
	struct tcpotel_sock *s;

	s = sock_find(key);
	if (!s)
		return;
	if ((s->flags & (TCPOTEL_SOCK_IGNORED | TCPOTEL_SOCK_HAS_TUPLE)) !=
	    TCPOTEL_SOCK_HAS_TUPLE) {
		sock_remove(key);
		return;
	}
	/* The exchange in progress ends with the connection. */
	if (s->ex.phase == TCPOTEL_PHASE_REQUEST && !s->ex.error &&
	    (aborted || (s->flags & TCPOTEL_SOCK_RESET)))
		exchange_fail(s, BPF_CORE_READ(sk, sk_err) == 110 /* ETIMEDOUT */ ?
					 TCPOTEL_ERR_TIMEOUT :
					 TCPOTEL_ERR_RESET);
	if (s->ex.phase == TCPOTEL_PHASE_REQUEST || s->ex.phase == TCPOTEL_PHASE_RESPONSE)
		exchange_finish(s, s->srtt_last_us ?: sock_srtt_us(sk));
	r = record_reserve(sizeof(*r));
	if (!r) {
		__u64 id = s->sock_id;

		/* Its numbers are lost; user space still learns it is gone. */
		bpf_map_push_elem(&closes_lost, &id, 0);
		sock_remove(key);
		return;
	}
	r->hdr.type = TCPOTEL_RECORD_CLOSE;
	r->hdr.size = sizeof(*r);
	r->hdr._pad = 0;
	r->closed_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&r->sock, s, sizeof(r->sock));
	r->sock.srtt_last_us = s->srtt_last_us ?: sock_srtt_us(sk);
	sock_remove(key);
	bpf_ringbuf_submit(r, RINGBUF_FLAGS);
}

/* tcp_destroy_sock: the socket is gone; if its close was missed, it closes now. */
static __always_inline void on_destroy(struct sock *sk)
{
	__u64 key = (__u64)sk;

	sock_close(sk, false);
	bpf_map_delete_elem(&untracked, &key);
}

/*
 * A new socket at the address of one whose close and destruction were both
 * missed: hand the old one's numbers over as closed, then start afresh.
 */
static __always_inline void sock_forget_stale(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcpotel_sock *s = sock_find(key);

	if (s && (s->flags & TCPOTEL_SOCK_HAS_TUPLE))
		sock_close(sk, false);
}

/* error.type of a connect() that failed with errno `err` (0: it did not fail). */
static __always_inline __u8 connect_error(int err)
{
	switch (err) {
	case 0:
		return TCPOTEL_ERR_NONE;
	case 111: /* ECONNREFUSED */
		return TCPOTEL_ERR_CONNECTION_REFUSED;
	case 110: /* ETIMEDOUT */
		return TCPOTEL_ERR_TIMEOUT;
	case 112: /* EHOSTDOWN */
	case 113: /* EHOSTUNREACH */
		return TCPOTEL_ERR_HOST_UNREACHABLE;
	case 101: /* ENETUNREACH */
		return TCPOTEL_ERR_NETWORK_UNREACHABLE;
	default:
		return TCPOTEL_ERR_CONNECT_OTHER;
	}
}

/*
 * A connection attempt ended (SYN_SENT -> CLOSE). With an error (the kernel
 * set sk_err before it moved the socket to CLOSE: tcp_reset(), tcp_write_err(),
 * tcp_v4_err()) it failed: one record, always (user space counts it in
 * tcp.connection.failed; a span when sampling keeps it), with the attempt's
 * times, the tuple the process dialled and the initial sequence number (the
 * SYN's, never acknowledged: snd_una), the ids' input. Without one the
 * process gave up itself (closed the socket): not a failure. Either way the
 * entry goes.
 */
static __always_inline void connect_failed(struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 key = (__u64)sk;
	struct tcpotel_sock *s;
	__u8 err;

	s = sock_find(key);
	if (!s)
		return;
	/* An ICMP error that came while connect() held the socket is only a soft
	 * one (sk_err_soft): it counts when the process then closes the socket
	 * without having read it (SO_ERROR clears it). */
	err = connect_error(BPF_CORE_READ(sk, sk_err) ?: BPF_CORE_READ(sk, sk_err_soft));
	if (err && !(s->flags & TCPOTEL_SOCK_IGNORED)) {
		sock_fill_tuple(sk, s, TCPOTEL_ROLE_CLIENT);
		if (!(s->flags & TCPOTEL_SOCK_IGNORED)) {
			s->ex.request_seq = BPF_CORE_READ(tp, snd_una);
			s->ex.end_ns = bpf_ktime_get_ns();
			s->ex.error = err;
			exchange_emit(s, &s->ex, 0, TCPOTEL_RECORD_CONNECT_FAILED,
				      cfg_exchange_records &&
					      exchange_sampled(&s->tuple, TCPOTEL_ROLE_CLIENT,
							       s->ex.request_seq,
							       cfg_sample_threshold));
		}
	}
	sock_remove(key);
}

/*
 * A server that sends its FIN while a request waits (ESTABLISHED ->
 * FIN_WAIT1) gave it no answer but its close: the exchange ends there,
 * without an error of its own (the client's half says whether it was one:
 * client_read_end()), so that a client slow to close cannot keep it open.
 */
static __always_inline void server_closed_on_request(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcpotel_sock *s = sock_find(key);

	if (!s || s->role != TCPOTEL_ROLE_SERVER || s->ex.phase != TCPOTEL_PHASE_REQUEST ||
	    (s->flags & (TCPOTEL_SOCK_IGNORED | TCPOTEL_SOCK_HAS_TUPLE)) != TCPOTEL_SOCK_HAS_TUPLE)
		return;
	exchange_finish(s, s->srtt_last_us);
	s->ex.phase = TCPOTEL_PHASE_IDLE;
	sock_mark(s, key);
}

/* inet_sock_set_state: opens (with the role), listeners, and closes. */
static __always_inline void on_state(struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct tcpotel_sock *s;

	if (newstate == TCP_LISTEN) {
		listener_add(sk);
		return;
	}
	if (newstate == TCP_SYN_SENT && oldstate == TCP_CLOSE) {
		/* connect() runs in the process that owns the socket; the ports
		 * are not chosen yet, so the tuple waits for ESTABLISHED. */
		sock_forget_stale(sk);
		s = sock_insert(sk);
		if (s && !(s->flags & TCPOTEL_SOCK_HAS_OWNER))
			sock_set_owner(s);
		/* The attempt's start, should it fail (connect_failed()). */
		if (s)
			s->ex.start_ns = bpf_ktime_get_ns();
		return;
	}
	if (newstate == TCP_ESTABLISHED && (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV)) {
		__u8 role = oldstate == TCP_SYN_SENT ? TCPOTEL_ROLE_CLIENT : TCPOTEL_ROLE_SERVER;

		/* An accepted socket is new: whatever sits at its address is stale. */
		if (role == TCPOTEL_ROLE_SERVER)
			sock_forget_stale(sk);
		s = sock_find(key);
		if (!s)
			s = sock_insert(sk);
		if (!s)
			return;
		sock_fill_tuple(sk, s, role);
		/* Nothing is read or sent yet: bytes count from here (on_recv_seq(),
		 * on_send_seq()). */
		s->rcv_seq = sock_copied_seq(sk);
		s->snd_seq = sock_write_seq(sk);
		s->flags |= TCPOTEL_SOCK_OPENED | TCPOTEL_SOCK_RCV_SEQ | TCPOTEL_SOCK_SND_SEQ;
		/* No request can have begun before now (exchange_start_ns()). */
		s->ex.end_ns = bpf_ktime_get_ns();
		if (role == TCPOTEL_ROLE_SERVER && !(s->flags & TCPOTEL_SOCK_HAS_OWNER)) {
			/* Accepted connections become established in softirq: the
			 * listener's owner stands in until the first send or receive. */
			struct tcpotel_listen_key lk = { .netns = s->netns,
							 .port = s->tuple.sport };
			struct tcpotel_listen *l = bpf_map_lookup_elem(&listeners, &lk);

			if (l && l->tgid) {
				s->tgid = l->tgid;
				__builtin_memcpy(s->comm, l->comm, sizeof(s->comm));
				if (s->tgid == cfg_self_tgid)
					sock_ignore(s);
			}
		}
		/* A new connection is counted at the next sweep, data or not. */
		if (!(s->flags & TCPOTEL_SOCK_IGNORED))
			sock_mark(s, key);
		return;
	}
	if (oldstate == TCP_ESTABLISHED && newstate == TCP_FIN_WAIT1) {
		server_closed_on_request(sk);
		return;
	}
	if (newstate == TCP_CLOSE) {
		if (oldstate == TCP_LISTEN) {
			listener_del(sk);
		} else {
			if (oldstate == TCP_SYN_SENT)
				connect_failed(sk);
			/* Straight from a synchronized state to CLOSE, with no FIN
			 * exchanged: a reset, sent (tcp_send_active_reset() comes
			 * after this change) or received. */
			sock_close(sk, oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT ||
					       oldstate == TCP_SYN_RECV);
			bpf_map_delete_elem(&untracked, &key);
		}
	}
}

/* One call per retransmitted skb, which may carry many segments (GSO). */
static __always_inline void on_retransmit(const struct sock *sk, const struct sk_buff *skb)
{
	__u64 key = (__u64)sk;
	struct tcpotel_sock *s = sock_find(key);

	if (s) {
		__sync_fetch_and_add(&s->retransmits, skb_tcp_segs(skb));
		if (!(s->flags & TCPOTEL_SOCK_IGNORED))
			sock_mark(s, key);
	}
}

static __always_inline void on_reset(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcpotel_sock *s;

	if (!sk)
		return;
	s = sock_find(key);
	if (s)
		s->flags |= TCPOTEL_SOCK_RESET;
}

#endif
