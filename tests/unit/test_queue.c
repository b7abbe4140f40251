// SPDX-License-Identifier: Apache-2.0
/* Bounded export queue: bound, drop-oldest counting, order, time-outs, close, and a
 * producer/consumer stress run (also meant for -fsanitize=thread). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "queue.h"
#include "test.h"

static uint64_t qt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A batch whose body is the decimal text of id, so that order can be read back. */
static struct export_batch qt_batch(enum otlp_signal signal, unsigned int id, uint32_t n_items)
{
	struct export_batch b = { .signal = signal, .n_items = n_items };

	b.len = (size_t)asprintf(&b.body, "%u", id);
	return b;
}

static unsigned int qt_id(const struct export_batch *b)
{
	return (unsigned int)strtoul(b->body, NULL, 10);
}

TEST(queue_rejects_zero_capacity)
{
	errno = 0;
	if (!ASSERT_TRUE(queue__new(0) == NULL))
		return;
	ASSERT_EQ(errno, EINVAL);
}

TEST(queue_fifo_order_and_seq)
{
	struct queue *q = queue__new(8);
	struct export_batch b;

	if (!ASSERT_NOT_NULL(q))
		return;
	for (unsigned int i = 0; i < 5; i++) {
		b = qt_batch(SIGNAL_TRACES, i, 1);
		if (!ASSERT_EQ(queue__push(q, &b), 0))
			goto out;
		ASSERT_TRUE(b.body == NULL); /* ownership moved */
	}
	for (unsigned int i = 0; i < 5; i++) {
		if (!ASSERT_TRUE(queue__pop(q, &b, 0)))
			goto out;
		ASSERT_EQ(qt_id(&b), i);
		ASSERT_U64_EQ(b.seq, i);
		ASSERT_EQ(b.signal, SIGNAL_TRACES);
		export_batch_free(&b);
	}
	ASSERT_FALSE(queue__pop(q, &b, 0));
out:
	queue__free(q);
}

TEST(queue_bound_drops_oldest_counted_per_signal)
{
	struct queue *q = queue__new(3);
	struct queue_stats st;
	struct export_batch b;

	if (!ASSERT_NOT_NULL(q))
		return;
	/* 0:metrics(10) 1:traces(20) 2:metrics(30) fill it; 3..5 push out 0, 1, 2. */
	b = qt_batch(SIGNAL_METRICS, 0, 10);
	ASSERT_EQ(queue__push(q, &b), 0);
	b = qt_batch(SIGNAL_TRACES, 1, 20);
	ASSERT_EQ(queue__push(q, &b), 0);
	b = qt_batch(SIGNAL_METRICS, 2, 30);
	ASSERT_EQ(queue__push(q, &b), 0);
	queue__stats(q, &st);
	ASSERT_U64_EQ(st.depth, 3);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_METRICS] + st.dropped_items[SIGNAL_TRACES], 0);

	b = qt_batch(SIGNAL_TRACES, 3, 1);
	ASSERT_EQ(queue__push(q, &b), 1);
	queue__stats(q, &st);
	ASSERT_U64_EQ(st.depth, 3);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_METRICS], 10);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_TRACES], 0);

	b = qt_batch(SIGNAL_TRACES, 4, 1);
	ASSERT_EQ(queue__push(q, &b), 1);
	b = qt_batch(SIGNAL_TRACES, 5, 1);
	ASSERT_EQ(queue__push(q, &b), 1);
	queue__stats(q, &st);
	ASSERT_U64_EQ(st.depth, 3);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_METRICS], 40);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_TRACES], 20);

	/* The freshest three survive, in order. */
	for (unsigned int i = 3; i < 6; i++) {
		if (!ASSERT_TRUE(queue__pop(q, &b, 0)))
			break;
		ASSERT_EQ(qt_id(&b), i);
		export_batch_free(&b);
	}
	queue__free(q);
}

TEST(queue_byte_bound_drops_oldest)
{
	struct queue *q = queue__new(100);
	struct queue_stats st;
	struct export_batch b;

	if (!ASSERT_NOT_NULL(q))
		return;
	/* Bodies "10".."19" are 2 bytes each: 6 bytes hold three of them. */
	queue__set_max_bytes(q, 6);
	for (unsigned int i = 10; i < 15; i++) {
		b = qt_batch(SIGNAL_TRACES, i, 1);
		ASSERT_EQ(queue__push(q, &b), i < 13 ? 0 : 1);
	}
	queue__stats(q, &st);
	ASSERT_U64_EQ(st.depth, 3);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_TRACES], 2);
	/* A batch put back while the bytes are used up is the one dropped. */
	if (ASSERT_TRUE(queue__pop(q, &b, 0))) {
		ASSERT_EQ(qt_id(&b), 12);
		export_batch_free(&b);
	}
	b = qt_batch(SIGNAL_TRACES, 15, 1);
	ASSERT_EQ(queue__push(q, &b), 0);
	b = qt_batch(SIGNAL_TRACES, 16, 1);
	queue__put_back(q, &b);
	queue__stats(q, &st);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_TRACES], 3);
	for (unsigned int i = 13; i < 16; i++) {
		if (!ASSERT_TRUE(queue__pop(q, &b, 0)))
			break;
		ASSERT_EQ(qt_id(&b), i);
		export_batch_free(&b);
	}
	queue__free(q);
}

TEST(queue_byte_bound_counts_bodies_as_made)
{
	struct queue *q = queue__new(8);
	struct export_batch b;
	struct queue_stats st;

	if (!ASSERT_NOT_NULL(q))
		return;
	/* Compressed to 1 byte, made as 10: 25 bytes hold two of them, not 25. */
	queue__set_max_bytes(q, 25);
	for (unsigned int i = 0; i < 4; i++) {
		b = qt_batch(SIGNAL_TRACES, i, 1);
		b.made_len = 10;
		ASSERT_EQ(queue__push(q, &b), i < 2 ? 0 : 1);
	}
	queue__stats(q, &st);
	ASSERT_U64_EQ(st.depth, 2);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_TRACES], 2);
	for (unsigned int i = 2; i < 4; i++) {
		if (!ASSERT_TRUE(queue__pop(q, &b, 0)))
			break;
		ASSERT_EQ(qt_id(&b), i);
		export_batch_free(&b);
	}
	queue__free(q);
}

TEST(queue_put_back_keeps_order)
{
	struct queue *q = queue__new(4);
	struct export_batch b, head;

	if (!ASSERT_NOT_NULL(q))
		return;
	for (unsigned int i = 0; i < 3; i++) {
		b = qt_batch(SIGNAL_TRACES, i, 1);
		queue__push(q, &b);
	}
	if (!ASSERT_TRUE(queue__pop(q, &head, 0)))
		goto out;
	ASSERT_EQ(qt_id(&head), 0);
	b = qt_batch(SIGNAL_TRACES, 3, 1);
	queue__push(q, &b);
	queue__put_back(q, &head); /* a retry: goes back before 1, 2, 3 */
	for (unsigned int i = 0; i < 4; i++) {
		if (!ASSERT_TRUE(queue__pop(q, &b, 0)))
			break;
		ASSERT_EQ(qt_id(&b), i);
		ASSERT_U64_EQ(b.seq, i);
		export_batch_free(&b);
	}
out:
	queue__free(q);
}

TEST(queue_put_back_when_full_drops_the_retried_batch)
{
	struct queue *q = queue__new(2);
	struct export_batch b, head;
	struct queue_stats st;

	if (!ASSERT_NOT_NULL(q))
		return;
	b = qt_batch(SIGNAL_METRICS, 0, 7);
	queue__push(q, &b);
	if (!ASSERT_TRUE(queue__pop(q, &head, 0)))
		goto out;
	/* While 0 is out for a retry, 1 and 2 fill the queue: 0 is the oldest of all. */
	b = qt_batch(SIGNAL_TRACES, 1, 1);
	queue__push(q, &b);
	b = qt_batch(SIGNAL_TRACES, 2, 1);
	queue__push(q, &b);
	queue__put_back(q, &head);
	queue__stats(q, &st);
	ASSERT_U64_EQ(st.depth, 2);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_METRICS], 7);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_TRACES], 0);
	for (unsigned int i = 1; i < 3; i++) {
		if (!ASSERT_TRUE(queue__pop(q, &b, 0)))
			break;
		ASSERT_EQ(qt_id(&b), i);
		export_batch_free(&b);
	}
out:
	queue__free(q);
}

TEST(queue_take_unencoded_keeps_order)
{
	struct queue *q = queue__new(8);
	struct export_batch b;
	struct queue_stats st;

	if (!ASSERT_NOT_NULL(q))
		return;
	queue__set_max_bytes(q, 8); /* "0".."3": 1 byte each */
	for (unsigned int i = 0; i < 4; i++) {
		b = qt_batch(SIGNAL_TRACES, i, 1);
		b.encoded = i % 2 == 0;
		queue__push(q, &b);
	}
	ASSERT_EQ(queue__unencoded(q), 2);
	/* The oldest raw one, from the middle; encoded (here: marked), it goes back in place. */
	if (!ASSERT_EQ(queue__take_unencoded(q, &b), 0))
		goto out;
	ASSERT_EQ(qt_id(&b), 1);
	b.encoded = true;
	queue__put_back(q, &b);
	if (!ASSERT_EQ(queue__take_unencoded(q, &b), 0))
		goto out;
	ASSERT_EQ(qt_id(&b), 3);
	b.encoded = true;
	queue__put_back(q, &b);
	ASSERT_EQ(queue__take_unencoded(q, &b), -EAGAIN);
	ASSERT_EQ(queue__unencoded(q), 0);
	queue__stats(q, &st);
	ASSERT_U64_EQ(st.depth, 4);
	/* The byte count followed: four more bytes fit, a fifth pushes the oldest out. */
	for (unsigned int i = 4; i < 9; i++) {
		b = qt_batch(SIGNAL_TRACES, i, 1);
		ASSERT_EQ(queue__push(q, &b), i < 8 ? 0 : 1);
	}
	ASSERT_EQ(queue__unencoded(q), 5);
	for (unsigned int i = 1; i < 9; i++) {
		if (!ASSERT_TRUE(queue__pop(q, &b, 0)))
			break;
		ASSERT_EQ(qt_id(&b), i);
		ASSERT_U64_EQ(b.seq, i);
		export_batch_free(&b);
	}
	ASSERT_EQ(queue__unencoded(q), 0);
out:
	queue__free(q);
}

TEST(queue_pop_times_out)
{
	struct queue *q = queue__new(2);
	struct export_batch b;
	uint64_t t0, waited;

	if (!ASSERT_NOT_NULL(q))
		return;
	t0 = qt_now_ms();
	ASSERT_FALSE(queue__pop(q, &b, 150));
	waited = qt_now_ms() - t0;
	ASSERT_GE(waited, 150);
	ASSERT_LT(waited, 1000);
	queue__free(q);
}

struct qt_delayed {
	struct queue *q;
	int delay_ms;
	bool close; /* close instead of pushing */
};

static void *qt_delayed_fn(void *arg)
{
	struct qt_delayed *d = arg;
	struct timespec ts = { d->delay_ms / 1000, (long)(d->delay_ms % 1000) * 1000000L };
	struct export_batch b;

	nanosleep(&ts, NULL);
	if (d->close) {
		queue__close(d->q);
	} else {
		b = qt_batch(SIGNAL_TRACES, 42, 1);
		queue__push(d->q, &b);
	}
	return NULL;
}

TEST(queue_pop_wakes_on_push)
{
	struct queue *q = queue__new(2);
	struct qt_delayed d = { .q = q, .delay_ms = 50 };
	struct export_batch b;
	pthread_t th;
	uint64_t t0;

	if (!ASSERT_NOT_NULL(q))
		return;
	t0 = qt_now_ms();
	pthread_create(&th, NULL, qt_delayed_fn, &d);
	if (ASSERT_TRUE(queue__pop(q, &b, 5000))) {
		ASSERT_EQ(qt_id(&b), 42);
		ASSERT_LT(qt_now_ms() - t0, 2000);
		export_batch_free(&b);
	}
	pthread_join(th, NULL);
	queue__free(q);
}

TEST(queue_close_wakes_consumer_and_refuses_pushes)
{
	struct queue *q = queue__new(2);
	struct qt_delayed d = { .q = q, .delay_ms = 50, .close = true };
	struct export_batch b;
	struct queue_stats st;
	pthread_t th;
	uint64_t t0;

	if (!ASSERT_NOT_NULL(q))
		return;
	t0 = qt_now_ms();
	pthread_create(&th, NULL, qt_delayed_fn, &d);
	ASSERT_FALSE(queue__pop(q, &b, -1)); /* waits without a time-out until closed */
	ASSERT_LT(qt_now_ms() - t0, 2000);
	pthread_join(th, NULL);

	b = qt_batch(SIGNAL_METRICS, 1, 5);
	ASSERT_EQ(queue__push(q, &b), -EPIPE);
	ASSERT_TRUE(b.body == NULL);
	queue__stats(q, &st);
	ASSERT_U64_EQ(st.depth, 0);
	ASSERT_U64_EQ(st.dropped_items[SIGNAL_METRICS], 5);
	queue__free(q);
}

TEST(queue_close_still_drains_what_is_held)
{
	struct queue *q = queue__new(4);
	struct export_batch b;

	if (!ASSERT_NOT_NULL(q))
		return;
	b = qt_batch(SIGNAL_TRACES, 1, 1);
	queue__push(q, &b);
	b = qt_batch(SIGNAL_TRACES, 2, 1);
	queue__push(q, &b);
	queue__close(q);
	if (ASSERT_TRUE(queue__pop(q, &b, -1))) {
		ASSERT_EQ(qt_id(&b), 1);
		/* A retry after close keeps its place. */
		queue__put_back(q, &b);
	}
	for (unsigned int i = 1; i < 3; i++) {
		if (!ASSERT_TRUE(queue__pop(q, &b, -1)))
			break;
		ASSERT_EQ(qt_id(&b), i);
		export_batch_free(&b);
	}
	ASSERT_FALSE(queue__pop(q, &b, -1));
	queue__free(q); /* frees nothing left; a leak would show under ASan */
}

TEST(queue_free_releases_held_batches)
{
	struct queue *q = queue__new(4);
	struct export_batch b;

	if (!ASSERT_NOT_NULL(q))
		return;
	for (unsigned int i = 0; i < 6; i++) {
		b = qt_batch(SIGNAL_TRACES, i, 1);
		queue__push(q, &b);
	}
	queue__free(q);
	queue__free(NULL);
}

#define QT_STRESS_N 1000000u

struct qt_stress {
	struct queue *q;
	uint64_t items_pushed;
	uint64_t consumed_batches;
	uint64_t consumed_items;
	uint64_t order_errors;
	uint64_t seq_errors;
	uint64_t requeued;
};

/* The body stays NULL: the producer's index travels in len, to keep 1M pushes cheap. */
static void *qt_producer(void *arg)
{
	struct qt_stress *s = arg;

	for (unsigned int i = 0; i < QT_STRESS_N; i++) {
		struct export_batch b = {
			.signal = (i & 1) ? SIGNAL_TRACES : SIGNAL_METRICS,
			.len = i,
			.n_items = 1 + i % 3,
		};

		s->items_pushed += b.n_items;
		queue__push(s->q, &b);
		/* Let the consumer in now and then, so that both drops and deliveries are many. */
		if (i % 2048 == 0)
			sched_yield();
	}
	queue__close(s->q);
	return NULL;
}

static void *qt_consumer(void *arg)
{
	struct qt_stress *s = arg;
	struct export_batch b;
	size_t last = 0;
	bool first = true;

	while (queue__pop(s->q, &b, -1)) {
		/* Now and then put the head back, as a retry does; it must come out again next. */
		if (b.len % 1000 == 7 && s->requeued < 500) {
			struct export_batch again;

			s->requeued++;
			queue__put_back(s->q, &b);
			if (!queue__pop(s->q, &again, -1))
				break;
			/* The producer may have pushed it out meanwhile: then it is counted as dropped. */
			if (again.len < b.len)
				s->order_errors++;
			b = again;
		}
		if (!first && b.len <= last)
			s->order_errors++;
		if (b.seq != b.len)
			s->seq_errors++;
		first = false;
		last = b.len;
		s->consumed_batches++;
		s->consumed_items += b.n_items;
		export_batch_free(&b);
	}
	return NULL;
}

TEST(queue_stress_producer_consumer)
{
	struct qt_stress s = { 0 };
	struct queue_stats st;
	pthread_t prod, cons;
	uint64_t dropped_items;

	s.q = queue__new(64);
	if (!ASSERT_NOT_NULL(s.q))
		return;
	pthread_create(&cons, NULL, qt_consumer, &s);
	pthread_create(&prod, NULL, qt_producer, &s);
	pthread_join(prod, NULL);
	pthread_join(cons, NULL);
	queue__stats(s.q, &st);
	dropped_items = st.dropped_items[SIGNAL_METRICS] + st.dropped_items[SIGNAL_TRACES];
	ASSERT_U64_EQ(s.order_errors, 0);
	ASSERT_U64_EQ(s.seq_errors, 0);
	ASSERT_U64_EQ(st.depth, 0);
	/* Nothing lost or duplicated: batches come out once each, in order (order_errors), and
	 * every item was either consumed or counted as dropped. */
	ASSERT_U64_EQ(s.consumed_items + dropped_items, s.items_pushed);
	ASSERT_GT(s.consumed_batches, 0);
	printf("    %" PRIu64 " batches consumed, %" PRIu64 " items dropped, %" PRIu64
	       " put back\n",
	       s.consumed_batches, dropped_items, s.requeued);
	queue__free(s.q);
}
