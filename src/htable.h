/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An intrusive chained hash table: callers embed a struct hnode, compute the
 * 64-bit hash of their key, and compare keys themselves while walking the
 * chain of that hash. It grows by doubling; it never allocates per entry.
 */
#ifndef TCPOTEL_HTABLE_H
#define TCPOTEL_HTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct hnode {
	struct hnode *next;
	uint64_t hash;
};

struct htable {
	struct hnode **buckets;
	size_t n_buckets; /* a power of two */
	size_t count;
};

int htable_init(struct htable *t, size_t min_buckets);
void htable_free(struct htable *t); /* frees the buckets, not the entries */
/* Returns 0 or -ENOMEM (the entry is inserted even when growing failed). */
int htable_insert(struct htable *t, struct hnode *n, uint64_t hash);
void htable_remove(struct htable *t, struct hnode *n);
/* First node of the chain holding `hash` (walk on with htable_next_same). */
struct hnode *htable_first(const struct htable *t, uint64_t hash);
struct hnode *htable_next_same(const struct hnode *n, uint64_t hash);

/*
 * For a batch of lookups of cold entries: prefetch every key's bucket, then
 * every bucket's first node, then look them up, so that the cache misses of
 * the batch overlap instead of following one another.
 */
static inline void htable_prefetch_bucket(const struct htable *t, uint64_t hash)
{
	__builtin_prefetch(&t->buckets[hash & (t->n_buckets - 1)]);
}

static inline void htable_prefetch_first(const struct htable *t, uint64_t hash)
{
	const struct hnode *n = t->buckets[hash & (t->n_buckets - 1)];

	if (n)
		__builtin_prefetch(n);
}

/* Iterates every node; `tmp` allows removing `n` while iterating. */
#define htable_for_each_safe(t, i, n, tmp)                                         \
	for ((i) = 0; (i) < (t)->n_buckets; (i)++)                                 \
		for ((n) = (t)->buckets[(i)], (tmp) = (n) ? (n)->next : NULL; (n); \
		     (n) = (tmp), (tmp) = (n) ? (n)->next : NULL)

/* 64-bit hashes: a mixer for integers and FNV-1a + mixer for byte strings. */
static inline uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static inline uint64_t hash_bytes(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return hash_u64(h);
}

#endif
