// SPDX-License-Identifier: Apache-2.0
/*
 * The ledger (docs/design.md, "Exchanges"): the kernel ends every exchange
 * once and counts it in its socket's histogram; user space adds the
 * histogram's growth since it last looked. Per live socket it keeps what it
 * added last (struct usock: the bytes, retransmits, sums and the non-empty
 * buckets of both histograms), so that every delta is exact in whatever
 * order sweeps, closes and lost records come, and nothing else: who the
 * socket belongs to lives once per stream (struct ustream).
 */
#include "sockets.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "exchange.h"
#include "htable.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "procinfo.h"

/* An end (a connection's tuple as one of its sockets sees it) stays findable
 * this many sweeps after its socket was first seen or closed, so that the
 * other socket of a connection within this host finds it (peer.service);
 * at most ENDS_KEPT_MAX are kept (a burst of new connections). */
#define SWEEPS_ENDS_KEPT 2
#define ENDS_KEPT_MAX	 16384
/* After this many entries were freed, memory goes back to the system. */
#define FREED_BEFORE_TRIM 16384
/* Histogram buckets a usock keeps counts of: srtt's, then exchanges'. */
#define HIST_BITS   (TCPOTEL_SRTT_BUCKETS + TCPOTEL_EXCHANGE_BUCKETS)
#define HIST_INLINE 4
#define NOT_IDLE    UINT32_MAX
/* Batches one sweep reads at most, past what the kernel can have queued. */
#define SWEEP_MAX_BATCHES (1 << 17)

_Static_assert(HIST_BITS <= 64, "one 64-bit mask covers both histograms");

/* One metric stream as sockets.c sees it: who its sockets belong to. */
struct ustream {
	struct hnode node; /* by key */
	struct stream_key key; /* key.res is `res` */
	struct stream *stream; /* NULL: the stream limit was reached */
	struct proc_resource *res; /* a reference */
	struct exchange_origin origin; /* for exchange.c, resolved once */
	char peer[NETADDR_STRLEN + 8]; /* origin.peer */
	unsigned users; /* usocks and ends */
	/* On ss->unused: it had no user at some point since the last sweep, which
	 * frees it if it still has none. */
	bool unused;
	struct ustream *unused_next;
};

/* What user space added last for one live socket. */
struct usock {
	struct hnode node; /* by sock_id */
	uint64_t sock_id;
	struct ustream *us; /* NULL only when out of memory */
	uint32_t tgid;
	uint32_t retransmits;
	uint64_t sent, received;
	uint64_t srtt_sum_us, ex_sum_ns;
	/* Counts of the non-empty buckets (bit k: srtt bucket k, bit
	 * TCPOTEL_SRTT_BUCKETS + k: exchange bucket k), in bit order. */
	uint64_t hist_mask;
	uint32_t *hist; /* inline_hist, or as many as hist_mask has bits */
	uint32_t idle_pos; /* in ss->idle, or NOT_IDLE */
	uint32_t inline_hist[HIST_INLINE];
};

/* 120 bytes, 128 with malloc's header: a few bytes more and it would take 144. */
_Static_assert(sizeof(struct usock) <= 120, "struct usock fits a 128-byte malloc chunk");

/* A socket whose exchange is open: its key, and when it may have gone silent. */
struct idle {
	struct usock *u;
	uint64_t key; /* the kernel table's, to ask about it */
	uint64_t due_ns;
};

/* A connection's tuple seen from one socket, kept a few sweeps. */
struct end {
	struct hnode tnode; /* by tuple */
	struct tcpotel_tuple tuple;
	uint32_t netns;
	struct ustream *us; /* a user */
	uint64_t generation;
	struct end *next; /* oldest first */
};

struct sockets {
	struct sockets_opts opts;
	struct metrics *metrics;
	struct procinfo *pi;
	struct exchanges *exchanges;
	struct htable socks; /* usock by sock_id */
	struct htable streams; /* ustream by key */
	struct htable ends; /* end by tuple */
	struct end *ends_head, *ends_tail;
	struct idle *idle; /* sockets with an open exchange */
	size_t n_idle, cap_idle;
	struct ustream *unused;
	uint64_t *want; /* keys asked about in this sweep */
	size_t cap_want;
	uint64_t generation;
	uint64_t freed;
	uint64_t retired;
	uint64_t exchanges_counted;
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
	if (htable_init(&ss->socks, 1024) || htable_init(&ss->streams, 256) ||
	    htable_init(&ss->ends, 1024)) {
		sockets__free(ss);
		errno = ENOMEM;
		return NULL;
	}
	return ss;
}

/* ---- streams --------------------------------------------------------------------------- */

static void ustream_unuse(struct sockets *ss, struct ustream *us)
{
	if (us->users || us->unused)
		return;
	us->unused = true;
	us->unused_next = ss->unused;
	ss->unused = us;
}

static void ustream_put(struct sockets *ss, struct ustream *us)
{
	us->users--;
	ustream_unuse(ss, us);
}

static void ustream_free(struct sockets *ss, struct ustream *us)
{
	htable_remove(&ss->streams, &us->node);
	procinfo__put(ss->pi, us->res);
	free(us);
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

/*
 * The stream of a socket (process, role, peer address, service port), with
 * what its exchanges need resolved once: the service, host and pid of its
 * resource, and the peer as the live map names it. No user is added.
 */
static struct ustream *ustream_get(struct sockets *ss, uint32_t tgid, const char *comm,
				   const struct tcpotel_tuple *t, uint8_t role,
				   uint64_t now_mono_ns)
{
	struct proc_resource *res = resource_of(ss, tgid, comm, now_mono_ns);
	struct stream_key key, store_key;
	struct ustream *us;
	uint64_t h;

	if (!res)
		return NULL;
	/* Hashed as bytes: padding and the unused end of an IPv4 address are zero. */
	memset(&key, 0, sizeof(key));
	key.res = res;
	key.role = role;
	key.family = (uint8_t)t->family;
	key.port = role == TCPOTEL_ROLE_CLIENT ? t->dport : t->sport;
	memcpy(key.peer, t->daddr, t->family == AF_INET ? 4 : 16);
	h = hash_bytes(&key, sizeof(key), 0);
	for (struct hnode *n = htable_first(&ss->streams, h); n; n = htable_next_same(n, h)) {
		us = container_of(n, struct ustream, node);
		if (memcmp(&us->key, &key, sizeof(key)) == 0) {
			procinfo__put(ss->pi, res);
			return us;
		}
	}
	us = calloc(1, sizeof(*us));
	if (!us) {
		procinfo__put(ss->pi, res);
		return NULL;
	}
	us->key = key;
	us->res = res;
	/* The store takes a reference of its own. */
	store_key = key;
	store_key.res = procinfo__ref(res);
	us->stream = metrics__stream(ss->metrics, &store_key);
	netaddr_label(t->family, t->daddr, role == TCPOTEL_ROLE_CLIENT ? key.port : 0, us->peer,
		      sizeof(us->peer));
	us->origin = (struct exchange_origin){
		.res = res,
		.service = res->service_name ? res->service_name : "unknown",
		.host = res->host_name ? res->host_name : "",
		.pid = res->pid,
		.peer = us->peer,
	};
	htable_insert(&ss->streams, &us->node, h);
	/* Kept until the end of the sweep, for the records that come before it. */
	ustream_unuse(ss, us);
	return us;
}

/* Streams no socket or end uses any more (the metric store keeps its own). */
static void free_unused_streams(struct sockets *ss)
{
	while (ss->unused) {
		struct ustream *us = ss->unused;

		ss->unused = us->unused_next;
		us->unused = false;
		if (!us->users)
			ustream_free(ss, us);
	}
}

/* ---- ends: the other socket of a connection within this host ------------------------------ */

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

static void forget_oldest_end(struct sockets *ss)
{
	struct end *e = ss->ends_head;

	ss->ends_head = e->next;
	if (!ss->ends_head)
		ss->ends_tail = NULL;
	htable_remove(&ss->ends, &e->tnode);
	ustream_put(ss, e->us);
	free(e);
	ss->freed++;
}

static void end_keep(struct sockets *ss, const struct tcpotel_tuple *t, uint32_t netns,
		     struct ustream *us)
{
	struct end *e;

	if (!us || !us->stream)
		return;
	e = malloc(sizeof(*e));
	if (!e)
		return;
	if (ss->ends.count >= ENDS_KEPT_MAX)
		forget_oldest_end(ss);
	e->tuple = *t;
	e->netns = netns;
	e->us = us;
	us->users++;
	e->generation = ss->generation;
	e->next = NULL;
	if (ss->ends_tail)
		ss->ends_tail->next = e;
	else
		ss->ends_head = e;
	ss->ends_tail = e;
	htable_insert(&ss->ends, &e->tnode,
		      tuple_hash(t->saddr, t->sport, t->daddr, t->dport, t->family));
}

/* The other end's service.name, for the stream's metrics and its client spans. */
static void ustream_name_peer(struct ustream *us, const char *name)
{
	stream__set_peer_service(us->stream, name);
	us->origin.peer_service = stream__peer_service(us->stream);
}

/*
 * peer.service: a new socket looks for the other end of its connection among
 * the ends kept, and both streams name each other's service; then it is kept
 * itself, for the other end to find should that come later.
 */
static void link_peer(struct sockets *ss, const struct tcpotel_tuple *t, uint32_t netns,
		      struct ustream *us)
{
	uint64_t h = tuple_hash(t->daddr, t->dport, t->saddr, t->sport, t->family);

	if (!us || !us->stream)
		return;
	for (struct hnode *n = htable_first(&ss->ends, h); n; n = htable_next_same(n, h)) {
		struct end *e = container_of(n, struct end, tnode);

		if (is_mirror(&e->tuple, e->netns, t, netns)) {
			ustream_name_peer(us, e->us->res->service_name);
			ustream_name_peer(e->us, us->res->service_name);
			break;
		}
	}
	end_keep(ss, t, netns, us);
}

static void forget_old_ends(struct sockets *ss)
{
	while (ss->ends_head && ss->generation - ss->ends_head->generation >= SWEEPS_ENDS_KEPT)
		forget_oldest_end(ss);
}

/* ---- sockets ---------------------------------------------------------------------------- */

static struct usock *usock_find(const struct sockets *ss, uint64_t sock_id)
{
	uint64_t h = hash_u64(sock_id);

	for (struct hnode *n = htable_first(&ss->socks, h); n; n = htable_next_same(n, h)) {
		struct usock *u = container_of(n, struct usock, node);

		if (u->sock_id == sock_id)
			return u;
	}
	return NULL;
}

static void idle_clear(struct sockets *ss, struct usock *u)
{
	struct idle last;

	if (u->idle_pos == NOT_IDLE)
		return;
	last = ss->idle[--ss->n_idle];
	ss->idle[u->idle_pos] = last;
	last.u->idle_pos = u->idle_pos;
	u->idle_pos = NOT_IDLE;
}

/* The socket's exchange is open: ask the kernel about it once it may be silent. */
static void idle_set(struct sockets *ss, struct usock *u, uint64_t key, uint64_t due_ns)
{
	if (u->idle_pos != NOT_IDLE) {
		ss->idle[u->idle_pos].key = key;
		ss->idle[u->idle_pos].due_ns = due_ns;
		return;
	}
	if (ss->n_idle == ss->cap_idle) {
		size_t cap = ss->cap_idle ? ss->cap_idle * 2 : 1024;
		struct idle *idle = realloc(ss->idle, cap * sizeof(*idle));

		if (!idle)
			return; /* it is asked about when it next changes */
		ss->idle = idle;
		ss->cap_idle = cap;
	}
	u->idle_pos = (uint32_t)ss->n_idle;
	ss->idle[ss->n_idle++] = (struct idle){ u, key, due_ns };
}

static void usock_remove(struct sockets *ss, struct usock *u)
{
	idle_clear(ss, u);
	htable_remove(&ss->socks, &u->node);
	if (u->us)
		ustream_put(ss, u->us);
	if (u->hist != u->inline_hist)
		free(u->hist);
	free(u);
	ss->freed++;
}

static void usock_set_stream(struct sockets *ss, struct usock *u, struct ustream *us)
{
	if (u->us)
		ustream_put(ss, u->us);
	u->us = us;
	if (us)
		us->users++;
}

static struct stream *usock_stream(const struct usock *u)
{
	return u->us ? u->us->stream : NULL;
}

/* A socket seen for the first time: nothing of it counted yet, one connection more. */
static struct usock *usock_new(struct sockets *ss, const struct tcpotel_sock *s,
			       uint64_t now_mono_ns)
{
	struct usock *u = calloc(1, sizeof(*u));
	struct stream *st;

	if (!u)
		return NULL;
	u->sock_id = s->sock_id;
	u->tgid = s->tgid;
	u->hist = u->inline_hist;
	u->idle_pos = NOT_IDLE;
	usock_set_stream(ss, u, ustream_get(ss, s->tgid, s->comm, &s->tuple, s->role, now_mono_ns));
	st = usock_stream(u);
	if (st) {
		stream__add_active(st, 1);
		if (s->flags & TCPOTEL_SOCK_OPENED)
			stream__add_opened(st, 1);
	}
	htable_insert(&ss->socks, &u->node, hash_u64(s->sock_id));
	link_peer(ss, &s->tuple, s->netns, u->us);
	return u;
}

/* The first send or receive names the real owner (a worker of a forking server). */
static void usock_follow_owner(struct sockets *ss, struct usock *u, const struct tcpotel_sock *s,
			       uint64_t now_mono_ns)
{
	struct stream *st;

	if (u->tgid == s->tgid)
		return;
	st = usock_stream(u);
	if (st)
		stream__add_active(st, -1);
	u->tgid = s->tgid;
	usock_set_stream(ss, u, ustream_get(ss, s->tgid, s->comm, &s->tuple, s->role, now_mono_ns));
	st = usock_stream(u);
	if (st)
		stream__add_active(st, 1);
}

/*
 * Per-bucket growth of both histograms since u last looked (srtt[], ex[]),
 * and u keeps the new counts. Counts never go down, so the buckets in use
 * only ever grow; the usual few fit in the usock itself. False when out of
 * memory: nothing is taken, the growth is counted next time.
 */
static bool hist_take(struct usock *u, const struct tcpotel_sock *s,
		      uint32_t srtt[TCPOTEL_SRTT_BUCKETS], uint32_t ex[TCPOTEL_EXCHANGE_BUCKETS])
{
	uint32_t now[HIST_BITS], kept[HIST_BITS];
	uint64_t mask = u->hist_mask;
	unsigned n = 0, old = 0;

	memcpy(now, s->srtt_hist, sizeof(s->srtt_hist));
	memcpy(now + TCPOTEL_SRTT_BUCKETS, s->done.buckets, sizeof(s->done.buckets));
	for (unsigned b = 0; b < HIST_BITS; b++)
		if (now[b])
			mask |= 1ULL << b;
	for (unsigned b = 0; b < HIST_BITS; b++) {
		uint32_t before = 0, d;

		if (!(mask & (1ULL << b))) {
			d = 0;
		} else {
			if (u->hist_mask & (1ULL << b))
				before = u->hist[old++];
			d = now[b] - before;
			kept[n++] = now[b];
		}
		if (b < TCPOTEL_SRTT_BUCKETS)
			srtt[b] = d;
		else
			ex[b - TCPOTEL_SRTT_BUCKETS] = d;
	}
	if (n > (u->hist == u->inline_hist ? HIST_INLINE :
					     (unsigned)__builtin_popcountll(u->hist_mask))) {
		uint32_t *h = malloc(n * sizeof(*h));

		if (!h)
			return false;
		if (u->hist != u->inline_hist)
			free(u->hist);
		u->hist = h;
	}
	memcpy(u->hist, kept, n * sizeof(*kept));
	u->hist_mask = mask;
	return true;
}

/* Adds what changed since u last looked, and remembers the new numbers. */
static void account(struct sockets *ss, struct usock *u, const struct tcpotel_sock *s)
{
	uint32_t srtt[TCPOTEL_SRTT_BUCKETS], ex[TCPOTEL_EXCHANGE_BUCKETS];
	struct stream *st = usock_stream(u);
	uint64_t n_srtt = 0, n_ex = 0;

	if (st) {
		stream__add_io(st, s->bytes_sent - u->sent, s->bytes_received - u->received);
		stream__add_retransmits(st, s->retransmits - u->retransmits);
	}
	u->sent = s->bytes_sent;
	u->received = s->bytes_received;
	u->retransmits = s->retransmits;
	if (!hist_take(u, s, srtt, ex))
		return;
	for (int i = 0; i < TCPOTEL_SRTT_BUCKETS; i++)
		n_srtt += srtt[i];
	for (int i = 0; i < TCPOTEL_EXCHANGE_BUCKETS; i++)
		n_ex += ex[i];
	ss->exchanges_counted += n_ex;
	if (st && n_srtt)
		stream__add_srtt(st, srtt, s->srtt_sum_us - u->srtt_sum_us, s->srtt_min_us,
				 s->srtt_max_us);
	if (st && n_ex)
		stream__add_exchanges(st, ex, s->done.sum_ns - u->ex_sum_ns, s->done.min_ns,
				      s->done.max_ns);
	u->srtt_sum_us = s->srtt_sum_us;
	u->ex_sum_ns = s->done.sum_ns;
}

/* ---- the sweep --------------------------------------------------------------------------- */

static void sweep_socket(struct sockets *ss, const struct tcpotel_snapshot *snap,
			 uint64_t now_mono_ns)
{
	const struct tcpotel_sock *s = &snap->sock;
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
	} else {
		usock_follow_owner(ss, u, s, now_mono_ns);
	}
	account(ss, u, s);
	if (TCPOTEL_PHASE_ENDS_WHEN_IDLE(s->ex.phase))
		idle_set(ss, u, snap->key, s->ex.end_ns + ss->opts.idle_timeout_ns);
	else if (TCPOTEL_PHASE_AWAITS_RESPONSE(s->ex.phase))
		idle_set(ss, u, snap->key, s->ex.end_ns + ss->opts.response_timeout_ns);
	else
		idle_clear(ss, u);
}

/*
 * The sockets of a batch were last touched a sweep ago: their usocks and
 * streams are out of the cache. Fetching them all at once, in steps, lets
 * the misses of the batch overlap; a stream's every line, as its histograms
 * take most of it (1 % of 100k sockets changed: 600 -> 500 ns per socket).
 */
static void prefetch_batch(const struct sockets *ss, const struct tcpotel_snapshot *out, int n)
{
	for (int i = 0; i < n; i++)
		htable_prefetch_bucket(&ss->socks, hash_u64(out[i].sock.sock_id));
	for (int i = 0; i < n; i++)
		htable_prefetch_first(&ss->socks, hash_u64(out[i].sock.sock_id));
	for (int i = 0; i < n; i++) {
		const struct usock *u = usock_find(ss, out[i].sock.sock_id);

		if (!u)
			continue;
		for (size_t off = 64; off < sizeof(*u); off += 64)
			__builtin_prefetch((const char *)u + off);
		if (u->us)
			__builtin_prefetch(u->us);
	}
	for (int i = 0; i < n; i++) {
		const struct usock *u = usock_find(ss, out[i].sock.sock_id);

		if (u && u->us && u->us->stream)
			stream__prefetch(u->us->stream);
	}
}

/* Its close record was lost: what it did since the last sweep is lost (counted
 * by the kernel as a lost record); only the connection is taken away. */
static void sweep_close_lost(struct sockets *ss, uint64_t sock_id)
{
	struct usock *u = usock_find(ss, sock_id);
	struct stream *st;

	if (!u)
		return;
	st = usock_stream(u);
	if (st)
		stream__add_active(st, -1);
	ss->retired++;
	usock_remove(ss, u);
}

/*
 * Keys of the sockets whose exchange may have gone silent by now. They stay
 * on the list until a snapshot shows their exchange over (or a close takes
 * them away), so a failed collect only delays them.
 */
static size_t want_silent(struct sockets *ss, uint64_t now_mono_ns)
{
	size_t n = 0;

	if (ss->cap_want < ss->n_idle) {
		uint64_t *want = realloc(ss->want, ss->n_idle * sizeof(*want));

		if (!want)
			return 0;
		ss->want = want;
		ss->cap_want = ss->n_idle;
	}
	for (size_t i = 0; i < ss->n_idle; i++)
		if (ss->idle[i].due_ns <= now_mono_ns)
			ss->want[n++] = ss->idle[i].key;
	return n;
}

int sockets__sweep(struct sockets *ss, uint64_t now_mono_ns)
{
	const struct sockets_source *src = &ss->opts.source;
	unsigned batches = 0;
	size_t n_want;
	int err = 0;

	ss->generation++;
	src->begin(src->ctx);
	n_want = want_silent(ss, now_mono_ns);
	/* The sockets whose exchange may be silent, then those queued as changed. */
	for (size_t asked = 0; !err;) {
		size_t batch = MIN(n_want - asked, (size_t)TCPOTEL_COLLECT_BATCH);
		const struct tcpotel_snapshot *out;
		int n;

		if (asked < n_want)
			n = src->collect(src->ctx, ss->want + asked, batch, &out);
		else if (batches++ < SWEEP_MAX_BATCHES)
			n = src->collect(src->ctx, NULL, 0, &out);
		else
			break;
		if (n < 0) {
			err = n;
			log_ratelimited(LOG_WARN, 60000, "cannot read the socket table: %s",
					strerror(-err));
			break;
		}
		prefetch_batch(ss, out, n);
		for (int i = 0; i < n; i++) {
			if (out[i].status == TCPOTEL_SNAP_SOCKET)
				sweep_socket(ss, &out[i], now_mono_ns);
			else if (out[i].status == TCPOTEL_SNAP_CLOSE_LOST)
				sweep_close_lost(ss, out[i].sock.sock_id);
		}
		if (asked < n_want)
			asked += batch;
		else if (n < TCPOTEL_COLLECT_BATCH)
			break;
	}
	forget_old_ends(ss);
	free_unused_streams(ss);
	/* A burst of short connections leaves the heap full of holes. */
	if (ss->freed >= FREED_BEFORE_TRIM) {
		malloc_trim(0);
		ss->freed = 0;
	}
	return err;
}

/* ---- records ----------------------------------------------------------------------------- */

void sockets__on_close(struct sockets *ss, const struct tcpotel_close_record *r)
{
	const struct tcpotel_sock *s = &r->sock;
	struct usock *u = usock_find(ss, s->sock_id);
	struct stream *st;

	if (!u) {
		/* Opened and closed between two sweeps: all of it is new. */
		u = usock_new(ss, s, r->closed_ns);
		if (!u)
			return;
	} else {
		usock_follow_owner(ss, u, s, r->closed_ns);
	}
	st = usock_stream(u);
	if (st)
		stream__add_active(st, -1);
	account(ss, u, s);
	/* The other end's close may come next: this end stays findable. */
	end_keep(ss, &s->tuple, s->netns, u->us);
	usock_remove(ss, u);
}

void sockets__on_exchange(struct sockets *ss, const struct tcpotel_exchange_record *r)
{
	struct usock *u = usock_find(ss, r->sock_id);
	struct ustream *us = u ? u->us : NULL;

	if (!ss->exchanges && !r->ex.error)
		return;
	/* A socket not swept yet: its stream, kept until the end of the sweep. */
	if (!us)
		us = ustream_get(ss, r->tgid, r->comm, &r->tuple, r->role, r->ex.end_ns);
	if (r->ex.error) {
		/* The kernel does not count a failed exchange: it is counted here,
		 * from its record, under its error.type. */
		ss->exchanges_counted++;
		if (us && us->stream)
			stream__add_failed_exchange(us->stream, r->ex.error,
						    r->ex.end_ns - r->ex.start_ns);
	}
	if (!us || !ss->exchanges || !r->sampled)
		return;
	exchanges__end(ss->exchanges, &(struct exchange_end){
					      .origin = &us->origin,
					      .tuple = &r->tuple,
					      .ex = &r->ex,
					      .role = r->role,
					      .srtt_us = r->srtt_us,
				      });
}

void sockets__on_connect_failed(struct sockets *ss, const struct tcpotel_exchange_record *r)
{
	struct ustream *us;

	us = ustream_get(ss, r->tgid, r->comm, &r->tuple, TCPOTEL_ROLE_CLIENT, r->ex.end_ns);
	if (!us)
		return;
	if (us->stream)
		stream__add_connect_failed(us->stream, r->ex.error);
	if (!ss->exchanges || !r->sampled)
		return;
	exchanges__end(ss->exchanges, &(struct exchange_end){
					      .origin = &us->origin,
					      .tuple = &r->tuple,
					      .ex = &r->ex,
					      .role = TCPOTEL_ROLE_CLIENT,
					      .connect = true,
				      });
}

size_t sockets__tracked(const struct sockets *ss)
{
	return ss->socks.count;
}

uint64_t sockets__retired(const struct sockets *ss)
{
	return ss->retired;
}

uint64_t sockets__exchanges(const struct sockets *ss)
{
	return ss->exchanges_counted;
}

void sockets__free(struct sockets *ss)
{
	struct hnode *n, *tmp;
	size_t i;

	if (!ss)
		return;
	if (ss->socks.buckets) {
		htable_for_each_safe(&ss->socks, i, n, tmp)
			usock_remove(ss, container_of(n, struct usock, node));
	}
	while (ss->ends_head)
		forget_oldest_end(ss);
	/* Every stream has lost its last user by now. */
	free_unused_streams(ss);
	htable_free(&ss->socks);
	htable_free(&ss->streams);
	htable_free(&ss->ends);
	free(ss->idle);
	free(ss->want);
	free(ss);
}
