/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Where a socket's entry lives: sock_find(), sock_add(), sock_remove(),
 * keyed by the kernel's socket pointer.
 *
 * Every object keeps entries in `sockets`, a hash. Finding one there is the
 * largest single cost of a send or receive (`make bench`, `lookup`: about
 * 40 ns, a helper call with jhash, a bucket walk and a memcmp). The
 * tracepoint object (6.3+, which has compare-and-exchange) puts a
 * direct-mapped table in front of it, `sock_front`: an array whose slot is
 * picked by a multiplicative hash of the pointer and holds the key of the
 * socket in it. A lookup there is inline: a multiply, a shift, one load and
 * one compare. A socket whose slot is taken goes to the hash, as every
 * socket does in the fentry and kprobe object; with a few thousand sockets
 * most find their slot free (docs/design.md, "The socket table"). The two
 * tables together hold capture.max_sockets entries (sock_entries counts
 * them), as the hash alone does in the other object.
 *
 * Two first sights of one socket on two CPUs at once (rare: its owner and
 * softirq) may give it an entry in each table; its bytes are then split
 * between the two, each counted once, and sock_remove() clears both.
 */
#ifndef TCPOTEL_SOCKTAB_BPF_H
#define TCPOTEL_SOCKTAB_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "tcpotel.h"
#include "maps.bpf.h"

#ifndef EEXIST
#define EEXIST 17
#endif
#ifndef E2BIG
#define E2BIG 7
#endif

#ifdef TCPOTEL_KERNEL_6_3
/* A slot's key while its claimer zeroes it: never a socket's address. */
#define FRONT_CLAIMED 1ULL

static __always_inline struct tcpotel_sock_slot *front_slot(__u64 key)
{
	/* Fibonacci hashing: the product's top bits mix every bit of the
	 * pointer, whose low bits are the same for every socket of a slab. */
	__u32 i = (key * TCPOTEL_FRONT_HASH_MUL) >> cfg_front_shift;

	return bpf_map_lookup_elem(&sock_front, &i);
}
#endif

/* The entry of the socket at `key`, or NULL. */
static __always_inline struct tcpotel_sock *sock_find(__u64 key)
{
#ifdef TCPOTEL_KERNEL_6_3
	struct tcpotel_sock_slot *f = front_slot(key);

	if (f && f->key == key)
		return &f->sock;
#endif
	return bpf_map_lookup_elem(&sockets, &key);
}

#ifdef TCPOTEL_KERNEL_6_3
/* Takes one of capture.max_sockets entries, which both tables share. */
static __always_inline bool entry_take(void)
{
	if (__sync_fetch_and_add(&sock_entries, 1) < cfg_max_sockets)
		return true;
	__sync_fetch_and_sub(&sock_entries, 1);
	return false;
}
#endif

/*
 * A zeroed entry for `key`, or the one it has (another CPU may just have
 * made it); NULL when the table is full, with the error in *err.
 */
static __always_inline struct tcpotel_sock *sock_add(__u64 key, long *err)
{
#ifdef TCPOTEL_KERNEL_6_3
	struct tcpotel_sock_slot *f = front_slot(key);
	struct tcpotel_sock *s;

	*err = 0;
	if (f && f->key == key)
		return &f->sock;
	/* It may have come when its slot was taken. */
	s = bpf_map_lookup_elem(&sockets, &key);
	if (s)
		return s;
	if (!entry_take()) {
		*err = -E2BIG;
		return NULL;
	}
	if (f && __sync_val_compare_and_swap(&f->key, 0, FRONT_CLAIMED) == 0) {
		/* Zeroed before the key is published: a late write of the slot's
		 * previous socket is wiped too. */
		__builtin_memset(&f->sock, 0, sizeof(f->sock));
		__sync_val_compare_and_swap(&f->key, FRONT_CLAIMED, key);
		return &f->sock;
	}
	*err = bpf_map_update_elem(&sockets, &key, &zero_sock, BPF_NOEXIST);
	if (*err)
		__sync_fetch_and_sub(&sock_entries, 1);
#else
	*err = bpf_map_update_elem(&sockets, &key, &zero_sock, BPF_NOEXIST);
#endif
	if (*err && *err != -EEXIST)
		return NULL;
	*err = 0;
	return bpf_map_lookup_elem(&sockets, &key);
}

/* Forgets the socket at `key`, wherever its entry is. */
static __always_inline void sock_remove(__u64 key)
{
#ifdef TCPOTEL_KERNEL_6_3
	struct tcpotel_sock_slot *f = front_slot(key);

	if (f && f->key == key && __sync_val_compare_and_swap(&f->key, key, 0) == key)
		__sync_fetch_and_sub(&sock_entries, 1);
	if (!bpf_map_delete_elem(&sockets, &key))
		__sync_fetch_and_sub(&sock_entries, 1);
#else
	bpf_map_delete_elem(&sockets, &key);
#endif
}

#endif
