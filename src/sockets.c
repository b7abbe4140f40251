// SPDX-License-Identifier: Apache-2.0
#include "sockets.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "exchange.h"
#include "htable.h"
#include "log.h"
#include "metrics.h"
#include "procinfo.h"

#define SWEEP_BATCH 1024
/* A socket missing from this many sweeps without a close record is retired. */
#define SWEEPS_BEFORE_RETIRE 2
/* A closed socket stays known by its tuple for this many sweeps, so that the
 * other end's close record, which comes right after, still finds its peer;
 * at most this many are kept (a burst of short connections). */
#define SWEEPS_CLOSED_KEPT 2
#define CLOSED_KEPT_MAX	   16384
/* After a sweep that freed this many entries, memory goes back to the system. */
#define FREED_BEFORE_TRIM 16384

/* What user space knows of one tracked socket: the last numbers it counted. */
struct usock {
	struct hnode node; /* by sock_id */
	struct hnode tnode; /* by tuple, to find the other end on this host */
	struct tcpotel_tuple tuple;
	uint32_t netns;
	uint64_t sock_id;
	struct stream *stream;
	uint32_t tgid;
	uint64_t generation;
	uint64_t sent, received;
	uint32_t retransmits;
	uint32_t srtt_hist[TCPOTEL_SRTT_BUCKETS];
	uint64_t srtt_sum_us;
	uint32_t srtt_count;
	uint64_t ex_count, ex_sum_ns;
	uint32_t ex_buckets[TCPOTEL_EXCHANGE_BUCKETS];
	/* The exchange the sweep ended for silence, so that the kernel's later
	 * record of the same exchange is not reported twice... */
	bool idle_reported;
	uint32_t idle_seq;
	uint64_t idle_start_ns;
	/* ...and, until the kernel's histogram counts it too, its duration
	 * (counted ahead: taken back out of the kernel's next delta). */
	bool ahead;
	uint64_t ahead_ns;
};

/* What is kept of a closed socket: enough to name it to the other end. */
struct closed_end {
	struct hnode tnode;
	struct tcpotel_tuple tuple;
	uint32_t netns;
	struct stream *stream;
	uint64_t generation;
	struct closed_end *next;
};

struct sockets {
	struct sockets_opts opts;
	struct metrics *metrics;
	struct procinfo *pi;
	struct exchanges *exchanges;
	struct htable table;
	struct htable by_tuple;
	struct htable closed_by_tuple;
	struct closed_end *closed_head, *closed_tail; /* oldest first */
	uint64_t freed;
	uint64_t generation;
	uint64_t retired;
	uint64_t exchanges_counted;
	__u64 *keys;
	struct tcpotel_sock *values;
};

struct sockets *sockets__new(const struct sockets_opts *opts, struct metrics *m,
			     struct procinfo *pi, struct exchanges *x)
{
	struct sockets *ss = calloc(1, sizeof(*ss));

	if (!ss)
		return NULL;
	ss->opts = *opts;
	ss->metrics = m;
	ss->pi = pi;
	ss->exchanges = x;
	ss->keys = calloc(SWEEP_BATCH, sizeof(*ss->keys));
	ss->values = calloc(SWEEP_BATCH, sizeof(*ss->values));
	if (!ss->keys || !ss->values || htable_init(&ss->table, 1024) ||
	    htable_init(&ss->by_tuple, 1024) || htable_init(&ss->closed_by_tuple, 1024)) {
		sockets__free(ss);
		errno = ENOMEM;
		return NULL;
	}
	return ss;
}

void sockets__free(struct sockets *ss)
{
	struct hnode *n, *tmp;
	size_t i;

	if (!ss)
		return;
	if (ss->table.buckets) {
		htable_for_each_safe(&ss->table, i, n, tmp)
			free(container_of(n, struct usock, node));
	}
	while (ss->closed_head) {
		struct closed_end *c = ss->closed_head;

		ss->closed_head = c->next;
		free(c);
	}
	htable_free(&ss->table);
	htable_free(&ss->by_tuple);
	htable_free(&ss->closed_by_tuple);
	free(ss->keys);
	free(ss->values);
	free(ss);
}

static struct usock *usock_find(const struct sockets *ss, uint64_t sock_id)
{
	uint64_t h = hash_u64(sock_id);

	for (struct hnode *n = htable_first(&ss->table, h); n; n = htable_next_same(n, h)) {
		struct usock *u = container_of(n, struct usock, node);

		if (u->sock_id == sock_id)
			return u;
	}
	return NULL;
}

static void usock_remove(struct sockets *ss, struct usock *u)
{
	htable_remove(&ss->table, &u->node);
	htable_remove(&ss->by_tuple, &u->tnode);
	free(u);
	ss->freed++;
}

/* Hash of the connection as seen from `local` to `remote` (either end). */
static uint64_t tuple_hash(const uint8_t *local, uint16_t lport, const uint8_t *remote,
			   uint16_t rport, uint16_t family)
{
	uint8_t key[38];

	memcpy(key, local, 16);
	memcpy(key + 16, remote, 16);
	memcpy(key + 32, &lport, 2);
	memcpy(key + 34, &rport, 2);
	memcpy(key + 36, &family, 2);
	return hash_bytes(key, sizeof(key), 0);
}

static bool is_mirror(const struct tcpotel_tuple *a, uint32_t a_netns,
		      const struct tcpotel_tuple *b, uint32_t b_netns)
{
	if (a->sport != b->dport || a->dport != b->sport || memcmp(a->saddr, b->daddr, 16) ||
	    memcmp(a->daddr, b->saddr, 16))
		return false;
	/* The same address at both ends (loopback) only pairs within one namespace. */
	return memcmp(b->saddr, b->daddr, 16) || a_netns == b_netns;
}

static uint64_t mirror_hash(const struct tcpotel_tuple *t)
{
	return tuple_hash(t->daddr, t->dport, t->saddr, t->sport, t->family);
}

/* The stream of the other end of u's connection, when that end is on this host too
 * (open, or closed within the last sweeps). */
static struct stream *peer_stream(const struct sockets *ss, const struct usock *u)
{
	uint64_t h = mirror_hash(&u->tuple);
	struct hnode *n;

	for (n = htable_first(&ss->by_tuple, h); n; n = htable_next_same(n, h)) {
		struct usock *p = container_of(n, struct usock, tnode);

		if (p != u && is_mirror(&p->tuple, p->netns, &u->tuple, u->netns))
			return p->stream;
	}
	for (n = htable_first(&ss->closed_by_tuple, h); n; n = htable_next_same(n, h)) {
		struct closed_end *c = container_of(n, struct closed_end, tnode);

		if (is_mirror(&c->tuple, c->netns, &u->tuple, u->netns))
			return c->stream;
	}
	return NULL;
}

/* peer.service: both ends name each other's service when both are on this host. */
static void link_peer(struct sockets *ss, struct usock *u)
{
	struct stream *p = u->stream ? peer_stream(ss, u) : NULL;

	if (!p)
		return;
	stream_set_peer_service(u->stream, stream_key(p)->res->service_name);
	stream_set_peer_service(p, stream_key(u->stream)->res->service_name);
}

static void forget_oldest_closed(struct sockets *ss)
{
	struct closed_end *c = ss->closed_head;

	ss->closed_head = c->next;
	if (!ss->closed_head)
		ss->closed_tail = NULL;
	htable_remove(&ss->closed_by_tuple, &c->tnode);
	free(c);
	ss->freed++;
}

/* A closed socket leaves the table; a small record of it stays findable by tuple. */
static void usock_closed(struct sockets *ss, struct usock *u)
{
	struct closed_end *c = malloc(sizeof(*c));

	if (c) {
		if (ss->closed_by_tuple.count >= CLOSED_KEPT_MAX)
			forget_oldest_closed(ss);
		c->tuple = u->tuple;
		c->netns = u->netns;
		c->stream = u->stream;
		/* The record points at the stream: it must outlive the record. */
		if (c->stream)
			stream_touch(c->stream);
		c->generation = ss->generation;
		c->next = NULL;
		if (ss->closed_tail)
			ss->closed_tail->next = c;
		else
			ss->closed_head = c;
		ss->closed_tail = c;
		htable_insert(&ss->closed_by_tuple, &c->tnode,
			      tuple_hash(u->tuple.saddr, u->tuple.sport, u->tuple.daddr,
					 u->tuple.dport, u->tuple.family));
	}
	usock_remove(ss, u);
}

static void forget_closed(struct sockets *ss)
{
	while (ss->closed_head &&
	       ss->generation - ss->closed_head->generation >= SWEEPS_CLOSED_KEPT)
		forget_oldest_closed(ss);
	/* A burst of short connections leaves the heap full of holes. */
	if (ss->freed >= FREED_BEFORE_TRIM) {
		malloc_trim(0);
		ss->freed = 0;
	}
}

/* A socket without an owner yet (accepted, never read or written) is "unknown". */
static struct proc_resource *resource_of(struct sockets *ss, uint32_t tgid, const char *comm,
					 uint64_t now_mono_ns)
{
	char name[TCPOTEL_COMM_LEN + 1];

	memcpy(name, comm, TCPOTEL_COMM_LEN);
	name[TCPOTEL_COMM_LEN] = '\0';
	if (!tgid || !name[0])
		strcpy(name, "unknown");
	return procinfo__get(ss->pi, tgid, name, now_mono_ns / NSEC_PER_MSEC);
}

static struct stream *stream_of(struct sockets *ss, uint32_t tgid, const char *comm,
				const struct tcpotel_tuple *t, uint8_t role, uint64_t now_mono_ns)
{
	struct stream_key key = {
		.role = role,
		.family = (uint8_t)t->family,
		.port = role == TCPOTEL_ROLE_CLIENT ? t->dport : t->sport,
	};

	key.res = resource_of(ss, tgid, comm, now_mono_ns);
	if (!key.res)
		return NULL;
	memcpy(key.peer, t->daddr, sizeof(key.peer));
	return metrics__stream(ss->metrics, &key);
}

static bool exchange_open(const struct tcpotel_exchange *ex)
{
	return ex->phase == TCPOTEL_PHASE_REQUEST || ex->phase == TCPOTEL_PHASE_RESPONSE;
}

static bool already_reported(const struct usock *u, const struct tcpotel_exchange *ex)
{
	return u && u->idle_reported && u->idle_seq == ex->request_seq &&
	       u->idle_start_ns == ex->start_ns;
}

/* Takes one exchange of `ns` out of a histogram delta (it was counted ahead). */
static void take_back(uint32_t delta[TCPOTEL_EXCHANGE_BUCKETS], uint64_t *sum_ns, uint64_t ns)
{
	unsigned k = metrics_exchange_bucket(ns);

	/* The kernel saw the same start and end, so the same bucket; should a
	 * late packet have stretched its copy, any counted bucket will do. */
	for (unsigned i = 0; !delta[k] && i < TCPOTEL_EXCHANGE_BUCKETS; i++)
		k = i;
	if (delta[k])
		delta[k]--;
	*sum_ns -= MIN(*sum_ns, ns);
}

/* Finished exchanges since the last look; `closed`: the kernel counted the open one too. */
static void account_exchanges(struct sockets *ss, struct usock *u, const struct tcpotel_sock *s,
			      bool closed)
{
	const struct tcpotel_exchange_hist *h = &s->done;
	uint32_t delta[TCPOTEL_EXCHANGE_BUCKETS];
	uint64_t sum_ns, n = h->count - u->ex_count;

	if (!n)
		return;
	for (int i = 0; i < TCPOTEL_EXCHANGE_BUCKETS; i++)
		delta[i] = h->buckets[i] - u->ex_buckets[i];
	sum_ns = h->sum_ns - u->ex_sum_ns;
	if (u->ahead && (closed || !exchange_open(&s->ex) || !already_reported(u, &s->ex))) {
		take_back(delta, &sum_ns, u->ahead_ns);
		u->ahead = false;
		n--;
	}
	ss->exchanges_counted += n;
	if (u->stream && n)
		stream_add_exchanges(u->stream, delta, sum_ns, h->min_ns, h->max_ns);
	u->ex_count = h->count;
	u->ex_sum_ns = h->sum_ns;
	memcpy(u->ex_buckets, h->buckets, sizeof(u->ex_buckets));
}

/* Adds what changed since `u` last saw the socket, and remembers the new numbers. */
static void account(struct sockets *ss, struct usock *u, const struct tcpotel_sock *s, bool closed)
{
	uint32_t delta[TCPOTEL_SRTT_BUCKETS];

	if (u->stream) {
		stream_add_io(u->stream, s->bytes_sent - u->sent, s->bytes_received - u->received);
		stream_add_retransmits(u->stream, s->retransmits - u->retransmits);
		if (s->srtt_count != u->srtt_count) {
			for (int i = 0; i < TCPOTEL_SRTT_BUCKETS; i++)
				delta[i] = s->srtt_hist[i] - u->srtt_hist[i];
			stream_add_srtt(u->stream, delta, s->srtt_sum_us - u->srtt_sum_us,
					s->srtt_min_us, s->srtt_max_us);
		}
	}
	account_exchanges(ss, u, s, closed);
	u->sent = s->bytes_sent;
	u->received = s->bytes_received;
	u->retransmits = s->retransmits;
	u->srtt_count = s->srtt_count;
	u->srtt_sum_us = s->srtt_sum_us;
	memcpy(u->srtt_hist, s->srtt_hist, sizeof(u->srtt_hist));
}

static struct usock *usock_new(struct sockets *ss, const struct tcpotel_sock *s,
			       uint64_t now_mono_ns)
{
	struct usock *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	u->sock_id = s->sock_id;
	u->tgid = s->tgid;
	u->tuple = s->tuple;
	u->netns = s->netns;
	u->stream = stream_of(ss, s->tgid, s->comm, &s->tuple, s->role, now_mono_ns);
	if (u->stream && (s->flags & TCPOTEL_SOCK_OPENED))
		stream_add_opened(u->stream, 1);
	htable_insert(&ss->table, &u->node, hash_u64(s->sock_id));
	htable_insert(&ss->by_tuple, &u->tnode,
		      tuple_hash(s->tuple.saddr, s->tuple.sport, s->tuple.daddr, s->tuple.dport,
				 s->tuple.family));
	link_peer(ss, u);
	return u;
}

/* The first send or receive names the real owner (a worker of a forking server). */
static void usock_follow_owner(struct sockets *ss, struct usock *u, const struct tcpotel_sock *s,
			       uint64_t now_mono_ns)
{
	if (u->tgid == s->tgid)
		return;
	if (u->stream)
		stream_add_active(u->stream, -1);
	u->tgid = s->tgid;
	u->stream = stream_of(ss, s->tgid, s->comm, &s->tuple, s->role, now_mono_ns);
	if (u->stream)
		stream_add_active(u->stream, 1);
}

static void report_exchange(struct sockets *ss, struct usock *u, const struct tcpotel_tuple *t,
			    const struct tcpotel_exchange *ex, uint8_t role, uint8_t flags,
			    uint32_t tgid, const char *comm, uint32_t srtt_us,
			    uint64_t mono_to_unix_ns, uint64_t now_mono_ns)
{
	struct exchange_end end = {
		.tuple = t,
		.ex = ex,
		.role = role,
		.flags = flags,
		.srtt_us = srtt_us,
	};
	struct proc_resource *res;

	if (u && u->stream) {
		end.stream = u->stream;
		end.res = stream_key(u->stream)->res;
		exchanges__end(ss->exchanges, &end, mono_to_unix_ns);
		return;
	}
	/* A socket not swept yet: find its stream from the record. */
	end.stream = stream_of(ss, tgid, comm, t, role, now_mono_ns);
	if (end.stream) {
		end.res = stream_key(end.stream)->res;
		exchanges__end(ss->exchanges, &end, mono_to_unix_ns);
		return;
	}
	res = resource_of(ss, tgid, comm, now_mono_ns);
	if (!res)
		return;
	end.res = res;
	exchanges__end(ss->exchanges, &end, mono_to_unix_ns);
	procinfo__put(ss->pi, res);
}

static void sweep_one(struct sockets *ss, const struct tcpotel_sock *s, uint64_t now_mono_ns,
		      uint64_t mono_to_unix_ns)
{
	struct usock *u;

	if ((s->flags & (TCPOTEL_SOCK_IGNORED | TCPOTEL_SOCK_HAS_TUPLE)) !=
		    TCPOTEL_SOCK_HAS_TUPLE ||
	    !s->tgid)
		return;
	u = usock_find(ss, s->sock_id);
	if (!u) {
		u = usock_new(ss, s, now_mono_ns);
		if (!u)
			return;
		if (u->stream)
			stream_add_active(u->stream, 1);
	} else {
		usock_follow_owner(ss, u, s, now_mono_ns);
	}
	u->generation = ss->generation;
	account(ss, u, s, false);
	/* end_ns may be later than now: the kernel stamped it after the clock was read. */
	if (exchange_open(&s->ex) && now_mono_ns > s->ex.end_ns &&
	    now_mono_ns - s->ex.end_ns > ss->opts.idle_timeout_ns && !already_reported(u, &s->ex)) {
		uint64_t ns = s->ex.end_ns - s->ex.start_ns;

		u->idle_reported = true;
		u->idle_seq = s->ex.request_seq;
		u->idle_start_ns = s->ex.start_ns;
		u->ahead = true;
		u->ahead_ns = ns;
		ss->exchanges_counted++;
		if (u->stream)
			stream_add_exchange(u->stream, ns);
		if (ss->opts.records)
			report_exchange(ss, u, &s->tuple, &s->ex, s->role, s->flags, s->tgid,
					s->comm, s->srtt_last_us, mono_to_unix_ns, now_mono_ns);
	}
}

/* Sockets gone from the kernel table whose close record never came (lost). */
static void retire_missing(struct sockets *ss)
{
	struct hnode *n, *tmp;
	size_t i;

	htable_for_each_safe(&ss->table, i, n, tmp) {
		struct usock *u = container_of(n, struct usock, node);

		if (ss->generation - u->generation < SWEEPS_BEFORE_RETIRE)
			continue;
		if (u->stream)
			stream_add_active(u->stream, -1);
		ss->retired++;
		usock_remove(ss, u);
	}
}

int sockets__sweep(struct sockets *ss, uint64_t now_mono_ns, uint64_t mono_to_unix_ns)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u64 in_batch = 0, out_batch = 0;
	bool first = true;
	int err = 0;

	ss->generation++;
	for (;;) {
		__u32 count = SWEEP_BATCH;

		err = bpf_map_lookup_batch(ss->opts.map_fd, first ? NULL : &in_batch, &out_batch,
					   ss->keys, ss->values, &count, &opts);
		if (err && errno != ENOENT) {
			err = -errno;
			log_ratelimited(LOG_WARN, 60000, "cannot read the socket table: %s",
					strerror(-err));
			return err;
		}
		for (__u32 i = 0; i < count; i++)
			sweep_one(ss, &ss->values[i], now_mono_ns, mono_to_unix_ns);
		if (err) /* ENOENT: that was the last batch */
			break;
		in_batch = out_batch;
		first = false;
	}
	retire_missing(ss);
	forget_closed(ss);
	return 0;
}

void sockets__on_close(struct sockets *ss, const struct tcpotel_close_record *r,
		       uint64_t mono_to_unix_ns)
{
	const struct tcpotel_sock *s = &r->sock;
	struct usock *u = usock_find(ss, s->sock_id);
	uint64_t now = r->closed_ns;

	if (!u) {
		/* Opened and closed between two sweeps: all of it is new. */
		u = usock_new(ss, s, now);
		if (!u)
			return;
	} else {
		usock_follow_owner(ss, u, s, now);
		if (u->stream)
			stream_add_active(u->stream, -1);
	}
	account(ss, u, s, true);
	if (ss->opts.records && exchange_open(&s->ex) && !already_reported(u, &s->ex))
		report_exchange(ss, u, &s->tuple, &s->ex, s->role, s->flags, s->tgid, s->comm,
				s->srtt_last_us, mono_to_unix_ns, now);
	usock_closed(ss, u);
}

void sockets__on_exchange(struct sockets *ss, const struct tcpotel_exchange_record *r,
			  uint64_t mono_to_unix_ns)
{
	struct usock *u = usock_find(ss, r->sock_id);

	if (already_reported(u, &r->ex))
		return;
	report_exchange(ss, u, &r->tuple, &r->ex, r->role, r->flags, r->tgid, r->comm, r->srtt_us,
			mono_to_unix_ns, r->ex.end_ns);
}

size_t sockets__tracked(const struct sockets *ss)
{
	return ss->table.count;
}

uint64_t sockets__retired(const struct sockets *ss)
{
	return ss->retired;
}

uint64_t sockets__exchanges(const struct sockets *ss)
{
	return ss->exchanges_counted;
}
