/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Owns the BPF objects: open the one that holds the chosen back-end -> set
 * load-time knobs -> enable that back-end's programs and the shared ones ->
 * load -> attach -> destroy. Which back-end: probe_capture() (probe.h).
 */
#ifndef TCPOTEL_CAPTURE_H
#define TCPOTEL_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bpf/libbpf.h>

#include "config.h"
#include "abi.h"

struct listener;

struct capture_opts {
	enum capture_backend backend; /* capture__load: never BACKEND_AUTO (see probe_capture()) */
	uint32_t max_sockets;
	uint32_t self_tgid; /* sockets of this process are never observed */
	bool exchange_records; /* sampled exchanges go to user space (spans, live map) */
	uint64_t sample_threshold; /* traceid_threshold(spans.sampling_ratio) */
	uint64_t idle_timeout_ns;
	uint64_t response_timeout_ns; /* spans.response_timeout */
	const uint32_t *netns; /* inodes to watch; none: every namespace */
	size_t n_netns;
	const uint16_t *exclude_ports;
	size_t n_exclude_ports;
	const struct listener *listeners; /* listening before start: put in the table at load */
	size_t n_listeners;
	bool quiet; /* a back-end being tried: its failures are logged at debug level */
	bool verifier_stats; /* keep the verifier's statistics of each program (capture__prog_stats) */
};

/* What loading one program cost, as the kernel reports it. */
struct capture_prog_stats {
	const char *name;
	uint32_t verified_insns; /* instructions the verifier processed; 0: not known */
	uint32_t jited_bytes; /* JIT-compiled size */
	uint32_t xlated_bytes; /* size after the verifier's rewrites */
};

struct capture;

/* Opens and loads (the verifier runs here); nothing is attached yet. NULL + errno on failure. */
struct capture *capture__load(const struct capture_opts *opts);
int capture__attach(struct capture *c);
void capture__destroy(struct capture *c);
enum capture_backend capture__backend(const struct capture *c);

int capture__sockets_fd(const struct capture *c);
/* The socket table's direct-mapped front: an array of struct tcpotel_sock_slot
 * (bpf/socktab.bpf.h); -1 where the object has none (fentry, kprobe). */
int capture__front_fd(const struct capture *c);
/* The queue of changed sockets (the benchmark queues sockets by hand). */
int capture__dirty_fd(const struct capture *c);
/*
 * The records' ring buffers, read in this order by ring_buffer__consume():
 * new processes first, then each CPU's (bpf/maps.bpf.h). Records of one
 * socket may come out of order across CPUs. NULL + errno on failure.
 */
struct ring_buffer *capture__records_new(const struct capture *c, ring_buffer_sample_fn fn,
					 void *ctx);
/* Adds a listening port found before start (tgid 0: owner unknown). */
int capture__add_listener(struct capture *c, uint32_t netns, uint16_t port);
/*
 * The sweep (docs/design.md, "The sweep"). capture__sweep_begin() starts a
 * new generation: a socket's first change from now on queues it again.
 * capture__collect() runs the collect program once: snapshots of the sockets
 * at `keys` (0 < n <= TCPOTEL_COLLECT_BATCH), or with n == 0 of sockets
 * queued as changed and then closes whose record was lost, at most
 * TCPOTEL_COLLECT_BATCH; it ends exchanges gone silent first. *out points at
 * them until the next call. Returns how many, or -errno.
 */
void capture__sweep_begin(struct capture *c);
int capture__collect(struct capture *c, const uint64_t *keys, size_t n,
		     const struct tcpotel_snapshot **out);
/* Sums the per-CPU health counters. */
int capture__read_counters(const struct capture *c, uint64_t out[TCPOTEL_CNT__MAX]);
/* Programs of the loaded back-end, for BPF statistics: fills ids, returns how many. */
size_t capture__prog_ids(const struct capture *c, uint32_t *ids, size_t max, bool io_only);

/* Fills `out` with the loaded programs' statistics; returns how many. The
 * verifier's count comes from its own log with opts.verifier_stats (every
 * kernel), else from bpf_prog_info (5.16 and later). */
size_t capture__prog_stats(const struct capture *c, struct capture_prog_stats *out, size_t max);

/* Names of the programs each back-end uses (NULL-terminated), for tests. */
const char *const *capture_backend_programs(enum capture_backend backend);

#endif
