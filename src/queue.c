// SPDX-License-Identifier: Apache-2.0
/*
 * Bounded export queue: a ring of batches under one mutex, with one condvar
 * for the consumer. The producer never waits: a full ring drops its oldest
 * batch. The consumer takes the head, and puts a batch back with put_back
 * when it has to retry it, in its place by sequence number, so that order
 * holds; a full ring drops the oldest of what it holds and what comes back.
 */
#include "queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct queue {
	pthread_mutex_t lock;
	pthread_cond_t nonempty;
	struct export_batch *ring;
	size_t capacity;
	size_t head; /* index of the oldest batch */
	size_t count;
	size_t bytes; /* body bytes held, as made (weight()) */
	size_t unencoded; /* batches held whose body is not yet encoded */
	size_t max_bytes; /* 0: no bound but the batch count */
	uint64_t next_seq;
	bool closed;
	uint64_t dropped_items[SIGNAL__COUNT];
};

void export_batch_free(struct export_batch *b)
{
	if (!b)
		return;
	free(b->body);
	b->body = NULL;
	b->len = 0;
}

struct queue *queue__new(size_t capacity)
{
	pthread_condattr_t attr;
	struct queue *q;
	int err;

	if (capacity == 0) {
		errno = EINVAL;
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->ring = calloc(capacity, sizeof(*q->ring));
	if (!q->ring) {
		err = ENOMEM;
		goto err_free;
	}
	q->capacity = capacity;
	err = pthread_mutex_init(&q->lock, NULL);
	if (err)
		goto err_free;
	err = pthread_condattr_init(&attr);
	if (err)
		goto err_mutex;
	/* Time-outs are measured on the monotonic clock: wall-clock jumps do not matter. */
	err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(&q->nonempty, &attr);
	pthread_condattr_destroy(&attr);
	if (err)
		goto err_mutex;
	return q;

err_mutex:
	pthread_mutex_destroy(&q->lock);
err_free:
	free(q->ring);
	free(q);
	errno = err;
	return NULL;
}

void queue__set_max_bytes(struct queue *q, size_t max_bytes)
{
	pthread_mutex_lock(&q->lock);
	q->max_bytes = max_bytes;
	pthread_mutex_unlock(&q->lock);
}

/* What a batch weighs against the byte bound: its body as made (compressed, it takes less
 * room, but a collector that falls behind must not make the queue deeper in batches). */
static size_t weight(const struct export_batch *b)
{
	return b->made_len ? b->made_len : b->len;
}

/* Caller holds the lock: a batch enters or leaves the ring. */
static void held_add(struct queue *q, const struct export_batch *b)
{
	q->count++;
	q->bytes += weight(b);
	q->unencoded += !b->encoded;
}

static void held_remove(struct queue *q, const struct export_batch *b)
{
	q->count--;
	q->bytes -= weight(b);
	q->unencoded -= !b->encoded;
}

/* Caller holds the lock: would `len` more bytes (or one more batch) pass a bound? */
static bool over_bound(const struct queue *q, size_t len)
{
	return q->count == q->capacity || (q->max_bytes && q->bytes + len > q->max_bytes);
}

void queue__free(struct queue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->count; i++)
		export_batch_free(&q->ring[(q->head + i) % q->capacity]);
	pthread_cond_destroy(&q->nonempty);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
}

/* Caller holds the lock. */
static void count_drop(struct queue *q, struct export_batch *b)
{
	unsigned int s = b->signal < SIGNAL__COUNT ? (unsigned int)b->signal : SIGNAL_METRICS;

	q->dropped_items[s] += b->n_items;
	export_batch_free(b);
}

/* Caller holds the lock and has checked that the ring is not empty. */
static void drop_head(struct queue *q)
{
	struct export_batch *b = &q->ring[q->head];

	held_remove(q, b);
	count_drop(q, b);
	q->head = (q->head + 1) % q->capacity;
}

int queue__push(struct queue *q, struct export_batch *b)
{
	int ret = 0;

	pthread_mutex_lock(&q->lock);
	if (q->closed) {
		count_drop(q, b);
		pthread_mutex_unlock(&q->lock);
		return -EPIPE;
	}
	while (q->count && over_bound(q, weight(b))) {
		drop_head(q);
		ret = 1;
	}
	b->seq = q->next_seq++;
	q->ring[(q->head + q->count) % q->capacity] = *b;
	held_add(q, b);
	b->body = NULL;
	pthread_cond_signal(&q->nonempty);
	pthread_mutex_unlock(&q->lock);
	return ret;
}

void queue__put_back(struct queue *q, struct export_batch *b)
{
	size_t at = 0;

	pthread_mutex_lock(&q->lock);
	while (q->count && over_bound(q, weight(b))) {
		if (b->seq < q->ring[q->head].seq) {
			/* Everything held is newer than the batch coming back: it goes first. */
			count_drop(q, b);
			pthread_mutex_unlock(&q->lock);
			return;
		}
		drop_head(q);
	}
	/* Retries come back from the few requests in flight: their place is near the head. */
	while (at < q->count && q->ring[(q->head + at) % q->capacity].seq < b->seq)
		at++;
	q->head = (q->head + q->capacity - 1) % q->capacity;
	for (size_t i = 0; i < at; i++)
		q->ring[(q->head + i) % q->capacity] = q->ring[(q->head + i + 1) % q->capacity];
	q->ring[(q->head + at) % q->capacity] = *b;
	held_add(q, b);
	b->body = NULL;
	pthread_cond_signal(&q->nonempty);
	pthread_mutex_unlock(&q->lock);
}

/* Caller holds the lock and has checked that the ring is not empty. */
static void take_head(struct queue *q, struct export_batch *out)
{
	*out = q->ring[q->head];
	q->ring[q->head].body = NULL;
	q->head = (q->head + 1) % q->capacity;
	held_remove(q, out);
}

bool queue__pop(struct queue *q, struct export_batch *out, int timeout_ms)
{
	struct timespec until;
	bool got = false;

	if (timeout_ms > 0) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&q->lock);
	while (q->count == 0 && !q->closed && timeout_ms != 0) {
		int err;

		if (timeout_ms < 0) {
			pthread_cond_wait(&q->nonempty, &q->lock);
			continue;
		}
		err = pthread_cond_timedwait(&q->nonempty, &q->lock, &until);
		if (err == ETIMEDOUT)
			break;
	}
	if (q->count > 0) {
		take_head(q, out);
		got = true;
	}
	pthread_mutex_unlock(&q->lock);
	return got;
}

/* Caller holds the lock: takes the i-th oldest batch out, the older ones moving up. */
static void take_at(struct queue *q, size_t i, struct export_batch *out)
{
	*out = q->ring[(q->head + i) % q->capacity];
	for (size_t j = i; j > 0; j--)
		q->ring[(q->head + j) % q->capacity] = q->ring[(q->head + j - 1) % q->capacity];
	q->ring[q->head].body = NULL;
	q->head = (q->head + 1) % q->capacity;
	held_remove(q, out);
}

int queue__try_pop(struct queue *q, struct export_batch *out, unsigned int signals)
{
	int ret = -EAGAIN;

	pthread_mutex_lock(&q->lock);
	if (q->count == 0 && q->closed)
		ret = -EPIPE;
	for (size_t i = 0; i < q->count; i++) {
		if (signals & (1u << q->ring[(q->head + i) % q->capacity].signal)) {
			take_at(q, i, out);
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return ret;
}

size_t queue__unencoded(struct queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->unencoded;
	pthread_mutex_unlock(&q->lock);
	return n;
}

int queue__take_unencoded(struct queue *q, struct export_batch *out)
{
	int ret = -EAGAIN;

	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; q->unencoded && i < q->count; i++) {
		if (!q->ring[(q->head + i) % q->capacity].encoded) {
			take_at(q, i, out);
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return ret;
}

void queue__close(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_cond_broadcast(&q->nonempty);
	pthread_mutex_unlock(&q->lock);
}

void queue__stats(struct queue *q, struct queue_stats *out)
{
	pthread_mutex_lock(&q->lock);
	out->depth = q->count;
	for (int s = 0; s < SIGNAL__COUNT; s++) {
		out->dropped_items[s] = q->dropped_items[s];
	}
	pthread_mutex_unlock(&q->lock);
}
