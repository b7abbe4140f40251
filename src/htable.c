// SPDX-License-Identifier: Apache-2.0
#include "htable.h"

#include <errno.h>
#include <stdlib.h>

int htable_init(struct htable *t, size_t min_buckets)
{
	size_t n = 16;

	while (n < min_buckets)
		n <<= 1;
	t->buckets = calloc(n, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	t->n_buckets = n;
	t->count = 0;
	return 0;
}

void htable_free(struct htable *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->n_buckets = t->count = 0;
}

static int grow(struct htable *t)
{
	size_t n = t->n_buckets * 2;
	struct hnode **b = calloc(n, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct hnode *node = t->buckets[i], *next;

		for (; node; node = next) {
			next = node->next;
			node->next = b[node->hash & (n - 1)];
			b[node->hash & (n - 1)] = node;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->n_buckets = n;
	return 0;
}

int htable_insert(struct htable *t, struct hnode *n, uint64_t hash)
{
	struct hnode **head;
	int err = 0;

	if (t->count >= t->n_buckets)
		err = grow(t);
	n->hash = hash;
	head = &t->buckets[hash & (t->n_buckets - 1)];
	n->next = *head;
	*head = n;
	t->count++;
	return err;
}

void htable_remove(struct htable *t, struct hnode *n)
{
	struct hnode **p = &t->buckets[n->hash & (t->n_buckets - 1)];

	for (; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			n->next = NULL;
			t->count--;
			return;
		}
	}
}

struct hnode *htable_first(const struct htable *t, uint64_t hash)
{
	struct hnode *n = t->buckets[hash & (t->n_buckets - 1)];

	while (n && n->hash != hash)
		n = n->next;
	return n;
}

struct hnode *htable_next_same(const struct hnode *n, uint64_t hash)
{
	struct hnode *next = n->next;

	while (next && next->hash != hash)
		next = next->next;
	return next;
}
