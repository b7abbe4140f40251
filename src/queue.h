/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded export queue between the drain loop (producer) and the export
 * thread (consumer). Pushing never blocks: when the queue is full the oldest
 * batch is dropped and counted, so that what is freshest survives an outage.
 * It is bounded in batches (exporter.otlp.queue_size) and in bytes, so that
 * memory stays flat however large the batches are.
 */
#ifndef TCPOTEL_QUEUE_H
#define TCPOTEL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum otlp_signal {
	SIGNAL_METRICS = 0,
	SIGNAL_TRACES = 1,
	SIGNAL__COUNT,
};

struct export_batch {
	enum otlp_signal signal;
	char *body; /* OTLP JSON (gzipped by the exporter), owned by the batch */
	size_t len;
	/* The body's size as made, before compression: what the byte bound counts; 0: len. */
	size_t made_len;
	uint32_t n_items; /* spans or metric points in the body (for drop counts) */
	uint64_t seq; /* assigned by the queue: order of arrival */
	uint64_t first_try_ms; /* set by the exporter at the first try; 0: never tried */
	bool encoded; /* the body is as sent (gzipped if so) */
};

struct queue_stats {
	uint64_t depth; /* batches held now */
	/* in the batches dropped to make room, or pushed after close */
	uint64_t dropped_items[SIGNAL__COUNT];
};

struct queue;

struct queue *queue__new(size_t capacity);
/* Also bounds the body bytes held, as made (0: no byte bound); the oldest batches make
 * room. */
void queue__set_max_bytes(struct queue *q, size_t max_bytes);
void queue__free(struct queue *q); /* frees the batches still held */
/* Takes ownership of b->body. Returns 0, or 1 when the oldest batch was dropped to make room. */
int queue__push(struct queue *q, struct export_batch *b);
/* Waits up to timeout_ms for a batch; false on time-out or when closed and empty. */
bool queue__pop(struct queue *q, struct export_batch *out, int timeout_ms);
/*
 * Takes, without waiting, the oldest batch whose signal is in `signals` (a mask
 * of 1 << signal), wherever it is. Returns 0, -EAGAIN (none) or -EPIPE (closed
 * and empty).
 */
int queue__try_pop(struct queue *q, struct export_batch *out, unsigned int signals);
/* Batches held whose body is not yet encoded. */
size_t queue__unencoded(struct queue *q);
/* Takes the oldest batch not yet encoded, wherever it is; -EAGAIN if there is none. */
int queue__take_unencoded(struct queue *q, struct export_batch *out);
/* Puts a batch back in its place by sequence number, before every newer one (a retry,
 * or a batch encoded meanwhile).
 * When the queue is full, the oldest of the held batches and this one is dropped. */
void queue__put_back(struct queue *q, struct export_batch *b);
void queue__close(struct queue *q); /* wakes the consumer; pushes after this are dropped */
void queue__stats(struct queue *q, struct queue_stats *out);
void export_batch_free(struct export_batch *b);

#endif
