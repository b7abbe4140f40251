/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel <-> user-space ABI of tcpotel: map keys and values, ring-buffer
 * records, counters and limits. Types only, __u* fields, explicit padding, no
 * pointers and no includes: both the BPF programs (with vmlinux.h) and user space
 * (with <linux/types.h>) include it. User space checks the sizes with
 * _Static_assert in src/capture.c.
 */
#ifndef TCPOTEL_ABI_H
#define TCPOTEL_ABI_H

#define TCPOTEL_COMM_LEN 16
/* srtt histogram: bucket k counts samples in (2^(k-1), 2^k] microseconds
 * (bucket 0: <= 1 us); the last bucket also takes everything above. */
#define TCPOTEL_SRTT_BUCKETS	  32
#define TCPOTEL_MAX_EXCLUDE_PORTS 16
/* tcp.exchange.duration histogram: bucket k counts exchanges that lasted at
 * most TCPOTEL_EXCHANGE_BOUNDS_NS[k] and more than the bound before it; the
 * last bucket takes everything above 60 s. */
#define TCPOTEL_EXCHANGE_BUCKETS 19
#define TCPOTEL_EXCHANGE_BOUNDS_NS                                                                \
	{                                                                                         \
		100000ULL, 250000ULL, 500000ULL, 1000000ULL, 2500000ULL, 5000000ULL, 10000000ULL, \
			25000000ULL, 50000000ULL, 100000000ULL, 250000000ULL, 500000000ULL,       \
			1000000000ULL, 2500000000ULL, 5000000000ULL, 10000000000ULL,              \
			30000000000ULL, 60000000000ULL                                            \
	}

/* Roles of a connection. */
enum tcpotel_role {
	TCPOTEL_ROLE_UNKNOWN = 0,
	TCPOTEL_ROLE_CLIENT = 1, /* it called connect() */
	TCPOTEL_ROLE_SERVER = 2, /* it came from accept() */
};

/* tcpotel_sock.flags */
enum tcpotel_sock_flags {
	TCPOTEL_SOCK_HAS_TUPLE = 1 << 0, /* tuple, netns and role are filled in */
	TCPOTEL_SOCK_HAS_OWNER = 1 << 1, /* tgid/comm taken from a send or receive */
	TCPOTEL_SOCK_IGNORED = 1 << 2, /* filtered out (own traffic, port, netns) */
	TCPOTEL_SOCK_OPENED = 1 << 3, /* seen reaching ESTABLISHED (counts as opened) */
	TCPOTEL_SOCK_PREEXISTING = 1 << 4, /* first seen mid-stream, after the agent started */
	TCPOTEL_SOCK_RESET = 1 << 5, /* a RST was sent or received */
	TCPOTEL_SOCK_RCV_SEQ = 1 << 6, /* rcv_seq is set (fentry and kprobe back-ends) */
	TCPOTEL_SOCK_SND_SEQ = 1 << 7, /* snd_seq is set (kprobe back-end) */
};

/* Exchange phases (docs/design.md, "Exchanges"). The request direction is
 * send for a client and receive for a server. */
enum tcpotel_phase {
	TCPOTEL_PHASE_IDLE = 0, /* no exchange open: the next request starts one */
	TCPOTEL_PHASE_REQUEST = 1, /* request bytes flowing */
	TCPOTEL_PHASE_RESPONSE = 2, /* response bytes flowing */
	TCPOTEL_PHASE_SKIP_REQUEST = 3, /* joined mid-stream: this turn may be partial, */
	TCPOTEL_PHASE_SKIP_RESPONSE = 4, /* so it is not reported */
};

/*
 * Why a connection attempt or an exchange failed: error.type on spans,
 * tcp.connection.failed and tcp.exchange.duration (docs/design.md,
 * "Failures"). 0: it did not.
 */
enum tcpotel_error {
	TCPOTEL_ERR_NONE = 0,
	/* connect() failed: sk_err when the attempt ended (SYN_SENT -> CLOSE) */
	TCPOTEL_ERR_CONNECTION_REFUSED = 1, /* ECONNREFUSED: a RST answered the SYN */
	TCPOTEL_ERR_TIMEOUT = 2, /* ETIMEDOUT: the SYN retries ran out */
	TCPOTEL_ERR_HOST_UNREACHABLE = 3, /* EHOSTUNREACH, EHOSTDOWN (ICMP) */
	TCPOTEL_ERR_NETWORK_UNREACHABLE = 4, /* ENETUNREACH (ICMP) */
	TCPOTEL_ERR_CONNECT_OTHER = 5, /* any other error of the attempt */
	/* an exchange failed */
	TCPOTEL_ERR_RESET = 6, /* the connection was reset while the request waited */
	TCPOTEL_ERR_CLOSED_BY_PEER = 7, /* the server closed before any response byte */
	TCPOTEL_ERR_NO_RESPONSE = 8, /* spans.response_timeout passed with no response byte */
	TCPOTEL_ERR__COUNT = 9,
};

/* The rules of silence, which both the kernel's sweep (exchange_silent_end())
 * and user space (which sockets to ask about, and when) follow: a response
 * that went quiet for spans.idle_timeout has ended; a request still waiting
 * for its first response byte waits up to spans.response_timeout. */
#define TCPOTEL_PHASE_ENDS_WHEN_IDLE(phase)  ((phase) == TCPOTEL_PHASE_RESPONSE)
#define TCPOTEL_PHASE_AWAITS_RESPONSE(phase) ((phase) == TCPOTEL_PHASE_REQUEST)

struct tcpotel_tuple {
	__u8 saddr[16]; /* local address; IPv4 in the first 4 bytes */
	__u8 daddr[16]; /* remote address */
	__u16 sport; /* local port, host order */
	__u16 dport; /* remote port, host order */
	__u16 family; /* AF_INET or AF_INET6 (v4-mapped IPv6 is folded to AF_INET) */
	__u16 _pad;
};

struct tcpotel_exchange {
	__u64 start_ns; /* first byte of the request (CLOCK_MONOTONIC) */
	__u64 end_ns; /* last byte seen in either direction */
	__u64 request_bytes;
	__u64 response_bytes;
	__u32 request_seq; /* TCP sequence number of the request's first byte */
	__u8 phase; /* enum tcpotel_phase */
	__u8 error; /* enum tcpotel_error: why it failed, 0 if it did not */
	/* A server: request bytes from req_rcvd_seq on came in a segment that
	 * acknowledged response bytes (sent after the client saw them). */
	__u8 req_after_resp;
	__u8 _pad;
	/* The socket's retransmit count when the exchange began; in a record,
	 * the segments it retransmitted during the exchange. */
	__u32 retransmits;
	/*
	 * Where the response stands, for the rule that splits exchanges the same
	 * way at both ends (docs/design.md, "Exchanges"). A client: rcv_nxt when
	 * the exchange began (every later byte from the server is response). A
	 * server: the sequence number of its first response byte.
	 */
	__u32 resp_seq;
	/* A server: request bytes before it join the exchange it answers
	 * (track.bpf.h, server_sees_requests()). */
	__u32 req_rcvd_seq;
	/* A client: TCP's busy time in jiffies (tcp_info's busy, rwnd- and
	 * sndbuf-limited times) when its response began, to time the next
	 * request whose first send waited (exchange_start_ns()). */
	__u32 busy_jiffies;
};

/* Every exchange a socket finished: ended by the next request or the close
 * (the hot path), or by idle_timeout of silence (the sweep's collect program). */
struct tcpotel_exchange_hist {
	__u64 count;
	__u64 sum_ns;
	__u64 min_ns;
	__u64 max_ns;
	__u32 buckets[TCPOTEL_EXCHANGE_BUCKETS];
	__u32 _pad;
};

/* Value of the socket table, keyed by the kernel's struct sock pointer. */
struct tcpotel_sock {
	__u64 sock_id; /* unique per tracked socket, never reused (pointers are) */
	struct tcpotel_tuple tuple;
	__u32 tgid;
	__u32 netns; /* network namespace inode */
	char comm[TCPOTEL_COMM_LEN];
	__u8 role; /* enum tcpotel_role */
	__u8 flags; /* enum tcpotel_sock_flags */
	/* The sweep generation (its low 16 bits) in which it was last queued as
	 * changed: beside flags, in the line every call reads anyway. */
	__u16 mark;
	__u32 retransmits;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u32 srtt_last_us;
	__u32 srtt_min_us;
	__u32 srtt_max_us;
	__u32 srtt_count;
	__u64 srtt_sum_us;
	__u32 srtt_hist[TCPOTEL_SRTT_BUCKETS];
	struct tcpotel_exchange ex;
	/* start_ns of the exchange the sweep ended for silence: a call that raced
	 * the sweep does not end (count, report) it a second time. */
	__u64 idle_ended_ns;
	struct tcpotel_exchange_hist done;
	__u32 rcv_seq; /* copied_seq when received bytes were last counted */
	__u32 snd_seq; /* write_seq when sent bytes were last counted */
};

/* The socket table's direct-mapped front (bpf/socktab.bpf.h): a socket's slot
 * is the top bits of its pointer times this (2^64/φ, Fibonacci hashing); user
 * space places sockets by hand with it too (bench/micro.c). */
#define TCPOTEL_FRONT_HASH_MUL 0x9e3779b97f4a7c15ULL

/* A slot of the front: the key of the socket in it (0: free) and its entry. */
struct tcpotel_sock_slot {
	__u64 key;
	struct tcpotel_sock sock;
};

/* Listening sockets, to give accepted connections their owner and to class
 * sockets that existed before the agent started. */
struct tcpotel_listen_key {
	__u32 netns;
	__u16 port;
	__u16 _pad;
};

struct tcpotel_listen {
	__u32 tgid; /* 0 when unknown (listening before the agent started) */
	char comm[TCPOTEL_COMM_LEN];
};

/* Ring-buffer records: each starts with this header. */
enum tcpotel_record_type {
	TCPOTEL_RECORD_CLOSE = 1, /* a socket's final numbers (and any open exchange) */
	TCPOTEL_RECORD_EXCHANGE = 2, /* one finished exchange */
	TCPOTEL_RECORD_PROCESS = 3, /* a process seen doing TCP for the first time */
	/* A connect() that failed: a tcpotel_exchange_record whose ex holds the
	 * attempt (start: SYN_SENT, end: the failure, request_seq: the initial
	 * sequence number, error). */
	TCPOTEL_RECORD_CONNECT_FAILED = 4,
};

struct tcpotel_record_hdr {
	__u16 type;
	__u16 size;
	__u32 _pad;
};

struct tcpotel_close_record {
	struct tcpotel_record_hdr hdr;
	__u64 closed_ns;
	struct tcpotel_sock sock;
};

struct tcpotel_exchange_record {
	struct tcpotel_record_hdr hdr;
	__u64 sock_id;
	struct tcpotel_tuple tuple;
	__u32 tgid;
	__u32 netns;
	char comm[TCPOTEL_COMM_LEN];
	__u8 role;
	__u8 flags;
	/* Kept by spans.sampling_ratio. Failed exchanges and attempts always
	 * come, for their metrics; only the kept ones become spans. */
	__u8 sampled;
	__u8 _pad;
	__u32 srtt_us; /* srtt when the exchange ended */
	struct tcpotel_exchange ex;
};

/* Sent once per process (tgid + start time), at its first send or receive, so
 * that user space reads its /proc entries while it lives: a short-lived
 * process is gone by the time its sockets close. */
#define TCPOTEL_ENV_MAX 4096

struct tcpotel_process_record {
	struct tcpotel_record_hdr hdr;
	__u32 tgid;
	__u32 env_len; /* bytes of env[] filled */
	char comm[TCPOTEL_COMM_LEN];
	/* The start of its environment (NUL-separated NAME=value strings), for
	 * OTEL_SERVICE_NAME when the process has exited before /proc is read. */
	char env[TCPOTEL_ENV_MAX];
};

/*
 * The sweep's collect program (bpf/sweep.bpf.c) is never attached: user space
 * runs it (BPF_PROG_TEST_RUN) with up to TCPOTEL_COLLECT_BATCH socket keys in
 * collect_keys[], and it fills collect_out[] with those sockets, then with
 * sockets queued as changed since they were last collected, then with closes
 * whose ring-buffer record was lost.
 */
#define TCPOTEL_COLLECT_BATCH 64

enum tcpotel_snapshot_status {
	TCPOTEL_SNAP_GONE = 0, /* no socket at that key (closed, or another one now) */
	TCPOTEL_SNAP_SOCKET = 1, /* sock holds the socket's entry */
	/* sock.sock_id closed, but the ring buffer had no room for its close record:
	 * what it did since it was last collected is lost (and counted). */
	TCPOTEL_SNAP_CLOSE_LOST = 2,
};

struct tcpotel_snapshot {
	__u64 key; /* the socket table's key */
	__u32 status; /* enum tcpotel_snapshot_status */
	__u32 _pad;
	struct tcpotel_sock sock;
};

/* Per-CPU health counters (index into the `counters` array map). */
enum tcpotel_counter {
	TCPOTEL_CNT_SOCK_UNTRACKED = 0, /* socket table full: socket not tracked */
	TCPOTEL_CNT_RINGBUF_LOST = 1, /* ring buffer full: record lost */
	TCPOTEL_CNT_LISTEN_UNTRACKED = 2, /* listener table full */
	TCPOTEL_CNT_SOCK_IGNORED = 3, /* sockets filtered out (own, port, netns) */
	TCPOTEL_CNT_SAMPLED_OUT = 4, /* exchanges ended with no record (sampling) */
	TCPOTEL_CNT_UNANSWERED = 5, /* exchanges ended by spans.response_timeout */
	TCPOTEL_CNT__MAX = 8,
};

#endif
