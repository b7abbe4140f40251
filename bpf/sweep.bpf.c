// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The sweep's collect program. It is never attached: user space runs it
 * (BPF_PROG_TEST_RUN, raw tracepoint programs since 5.10) once per
 * TCPOTEL_COLLECT_BATCH sockets, and it copies into collect_out[] either
 *
 *   - the sockets user space asks for in collect_keys[] (exchanges that
 *     may have gone silent), or
 *   - sockets queued in `dirty` at their first change since the last sweep
 *     (sock_mark()), then sockets whose close record the ring buffer had no
 *     room for (their sock_id only).
 *
 * Before copying a socket it ends its exchange if that went silent for
 * spans.idle_timeout (sock_end_if_idle()), so that every exchange is ended,
 * counted and reported by the kernel, in one place (track.bpf.h).
 *
 * Why not a map-element iterator (iter/bpf_map_elem, 5.9+), which would walk
 * the table in the kernel with no user-space request at all: the development
 * machines' kernel refuses to load one (EPERM), while a raw tracepoint
 * program runs everywhere the other programs do; and a walk of the whole
 * table costs per socket, where this costs per changed socket.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "track.bpf.h"

/*
 * One slot: collect_keys[slot] -> collect_out[slot]. A global function, so
 * that the verifier checks it once rather than once per turn of the loop.
 */
__noinline int collect_slot(__u32 slot, __u64 now)
{
	struct tcpotel_snapshot *out;
	struct tcpotel_sock *s;
	__u64 key;

	if (slot >= TCPOTEL_COLLECT_BATCH)
		return 0;
	out = &collect_out[slot];
	key = collect_keys[slot];
	out->key = key;
	s = sock_find(key);
	if (!s) {
		out->status = TCPOTEL_SNAP_GONE;
		return 0;
	}
	if ((s->flags & (TCPOTEL_SOCK_IGNORED | TCPOTEL_SOCK_HAS_TUPLE)) == TCPOTEL_SOCK_HAS_TUPLE)
		sock_end_if_idle(s, now);
	__builtin_memcpy(&out->sock, s, sizeof(out->sock));
	out->status = TCPOTEL_SNAP_SOCKET;
	return 1;
}

/* A socket whose close record was lost, into slot `slot`. */
static __always_inline void collect_close_lost(__u32 slot, __u64 sock_id)
{
	struct tcpotel_snapshot *out = &collect_out[slot & (TCPOTEL_COLLECT_BATCH - 1)];

	out->key = 0;
	out->status = TCPOTEL_SNAP_CLOSE_LOST;
	out->sock.sock_id = sock_id;
}

/*
 * Asked for keys, it snapshots those; asked for none, it empties the queues:
 * changed sockets, then lost closes. Two loops rather than one with a branch
 * for each source, which the verifier would follow in every combination.
 */
SEC("raw_tp")
int collect(void *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 n = collect_n_keys, i;
	bool lost = false;

	if (n) {
		for (i = 0; i < TCPOTEL_COLLECT_BATCH; i++) {
			if (i >= n)
				break;
			collect_slot(i, now);
		}
		collect_n_out = i;
		return 0;
	}
	for (i = 0; i < TCPOTEL_COLLECT_BATCH; i++) {
		__u64 v;

		if (!lost && !bpf_map_pop_elem(&dirty, &v)) {
			collect_keys[i] = v;
			collect_slot(i, now);
			continue;
		}
		lost = true;
		if (bpf_map_pop_elem(&closes_lost, &v))
			break;
		collect_close_lost(i, v);
	}
	collect_n_out = i;
	return 0;
}
