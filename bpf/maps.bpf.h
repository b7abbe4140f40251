/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every map and global of tcpotel, declared once here and defined once in
 * maps.bpf.c; the other .bpf.c files see them as externs that `bpftool gen
 * object` resolves when it links them into one object. Also the tiny map
 * helpers every handler uses.
 */
#ifndef TCPOTEL_MAPS_BPF_H
#define TCPOTEL_MAPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "tcpotel.h"

/* Socket table: kernel struct sock pointer -> per-socket state. max_entries
 * is set from capture.max_sockets before load. A plain (preallocated) hash:
 * sk_storage would be cheaper but raw tracepoints may not use it, and an LRU
 * map would evict live sockets without telling anyone. */
typedef struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tcpotel_sock);
} sockets_map_t;
extern sockets_map_t sockets SEC(".maps");

#ifdef TCPOTEL_KERNEL_6_3
/* The socket table's direct-mapped front (bpf/socktab.bpf.h): slot i holds
 * a socket whose pointer hashes to i. max_entries (a power of two) is set
 * from capture.max_sockets before load, with cfg_front_shift to match. */
typedef struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct tcpotel_sock_slot);
} front_map_t;
extern front_map_t sock_front SEC(".maps");

/* 64 - log2(sock_front's max_entries): the top bits of a 64-bit product pick a slot. */
extern const volatile __u32 cfg_front_shift;
/* capture.max_sockets, for the front and the hash together. */
extern const volatile __s64 cfg_max_sockets;
/* Entries in the front and the hash. */
extern __s64 sock_entries;
#endif

/* Sockets that found the table full, so that each is counted once however
 * often it sends or receives (LRU: forgetting one only recounts it). */
typedef struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} untracked_map_t;
extern untracked_map_t untracked SEC(".maps");

/* Processes already announced to user space, by (tgid, start time). */
struct tcpotel_proc_key {
	__u32 tgid;
	__u32 _pad;
	__u64 start_ns;
};

typedef struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tcpotel_proc_key);
	__type(value, __u8);
} procs_map_t;
extern procs_map_t seen_procs SEC(".maps");

/* Listening sockets by (netns, port): owner of accepted connections, and the
 * role of connections that existed before the agent started. */
typedef struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tcpotel_listen_key);
	__type(value, struct tcpotel_listen);
} listeners_map_t;
extern listeners_map_t listeners SEC(".maps");

/* capture.netns: the namespaces to watch (inode -> 1), used when netns_filter is set. */
typedef struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} netns_map_t;
extern netns_map_t netns_allowed SEC(".maps");

/* Sampled exchanges and closed sockets, never one record per packet: one
 * ring per CPU, so that CPUs never wait for each other's records (a shared
 * ring's lock cost about 120 ns per record). User space creates the rings
 * (capture.c: 4 MiB split among the CPUs, 256 KiB each at least) and puts
 * them here before attaching; the drain comes every 20 ms. Records of one
 * socket may sit in several rings, so the drain may read them out of order:
 * each record is whole by itself (docs/design.md, "Records"). */
struct record_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* replaced before load by CPU 0's ring */
};

typedef struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* set before load: the possible CPUs */
	__type(key, __u32);
	__array(values, struct record_ring);
} events_map_t;
extern events_map_t events SEC(".maps");

/* New processes, once each: a ring of their own, which the drain reads
 * before the CPUs' rings, so that a process is known (its environment read
 * while it lives) before the records of its sockets. */
typedef struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024); /* 4 KiB records: 250 in a drain's 20 ms */
} procs_ring_map_t;
extern procs_ring_map_t proc_events SEC(".maps");

/* Keys of sockets that changed since they were last collected, each queued
 * once per sweep (sock_mark()); the collect program takes them out. Sized
 * from capture.max_sockets: twice as many, for a sweep's and the next. */
typedef struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 131072);
	__type(value, __u64);
} dirty_map_t;
extern dirty_map_t dirty SEC(".maps");

/* sock_id of sockets that closed when the ring buffer had no room for their
 * close record, so that user space still forgets them. */
typedef struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 16384);
	__type(value, __u64);
} closes_lost_map_t;
extern closes_lost_map_t closes_lost SEC(".maps");

/* Health counters (enum tcpotel_counter), per CPU so that bumping is cheap. */
typedef struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TCPOTEL_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters_map_t;
extern counters_map_t counters SEC(".maps");

/* Load-time knobs, written by user space into .rodata before load. */
extern const volatile __u32 cfg_self_tgid;
extern const volatile __u64 cfg_idle_timeout_ns;
/* spans.response_timeout: how long a request may wait for its first response byte. */
extern const volatile __u64 cfg_response_timeout_ns;
/* The length of a jiffy in ns (user space reads it as the resolution of
 * CLOCK_MONOTONIC_COARSE); 0 when unknown. For exchange_start_ns(). */
extern const volatile __u32 cfg_tick_ns;
/* Exchanges go to user space one record each (spans, live map); off: they
 * are only counted in the socket's histogram. */
extern const volatile __u8 cfg_exchange_records;
/* Consistent sampling threshold (traceid_threshold()): only exchanges whose
 * trace id passes it get a record; 0 keeps every one. */
extern const volatile __u64 cfg_sample_threshold;
extern const volatile __u8 cfg_netns_filter;
extern const volatile __u16 cfg_exclude_ports[TCPOTEL_MAX_EXCLUDE_PORTS];
extern const volatile __u32 cfg_n_exclude_ports;

/* Source of sock_id values (never reused, unlike kernel pointers): one
 * counter per CPU, see sock_id_next() in track.bpf.h. */
typedef struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sock_ids_map_t;
extern sock_ids_map_t sock_ids SEC(".maps");

/* The sweep generation: user space moves it on at each sweep (it writes the
 * .data section directly), and a socket's first change after that queues
 * it in `dirty` again. Sockets keep its low 16 bits (mark), which are never
 * 0, a new entry's mark: it starts at 1 and user space skips the multiples
 * of 65536. */
extern __u32 sweep_gen;

/* The collect program's input and output (bpf/tcpotel.h), in .bss. */
extern __u64 collect_keys[TCPOTEL_COLLECT_BATCH];
extern __u32 collect_n_keys;
extern struct tcpotel_snapshot collect_out[TCPOTEL_COLLECT_BATCH];
extern __u32 collect_n_out;

/* An all-zero socket entry to insert before filling it in place: a
 * tcpotel_sock is too big for the BPF stack next to everything else. */
extern const struct tcpotel_sock zero_sock;

static __always_inline void counter_inc(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += 1;
}

#endif
