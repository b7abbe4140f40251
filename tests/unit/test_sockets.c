// SPDX-License-Identifier: Apache-2.0
/*
 * The sweep and the records on plain data: a fake kernel stands in for the
 * collect program (bpf/sweep.bpf.c), with its socket table, its queue of
 * changed sockets and its idle rule, so that sockets.c's ledger is checked
 * exactly: what it asks the kernel about and when, and that every byte and
 * every exchange reaches the metric store once, in whatever order sweeps,
 * silences and closes come. The kernel side of the same rules runs against
 * real sockets in tests/bpf/test_sweep.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <unistd.h>

#include "exchange.h"
#include "graph.h"
#include "jbuf.h"
#include "metrics.h"
#include "otlp.h"
#include "procinfo.h"
#include "sockets.h"
#include "test.h"

#define FK_SOCKS 16
#define FK_QUEUE 256
#define MS	 1000000ULL
#define SEC	 1000000000ULL
#define IDLE_NS	 (2 * SEC)
#define RESP_NS	 (7 * SEC)

/* ---- a fake kernel ---------------------------------------------------------------------- */

struct fake_kernel {
	struct tcpotel_sock socks[FK_SOCKS]; /* the socket table, key = index + 1 */
	bool live[FK_SOCKS];
	uint64_t queue[FK_QUEUE]; /* keys of changed sockets */
	size_t n_queue;
	uint64_t lost[FK_SOCKS]; /* sock_ids whose close record was lost */
	size_t n_lost;
	uint64_t asked[FK_QUEUE]; /* keys the sweep asked about, in order */
	size_t n_asked;
	unsigned begins, collects;
	int fail_next; /* the next collect fails with this (negative errno) */
	uint64_t now; /* the kernel's clock at the next collect */
	struct tcpotel_exchange_record recs[FK_SOCKS]; /* exchanges it ended for silence */
	size_t n_recs;
	struct tcpotel_snapshot out[TCPOTEL_COLLECT_BATCH];
};

static uint64_t fk_key(int i)
{
	return (uint64_t)i + 1;
}

/* As the kernel's exchange_count(). */
static void fk_count(struct tcpotel_sock *s, const struct tcpotel_exchange *ex)
{
	uint64_t d = ex->end_ns - ex->start_ns;

	if (!s->done.count || d < s->done.min_ns)
		s->done.min_ns = d;
	if (d > s->done.max_ns)
		s->done.max_ns = d;
	s->done.count++;
	s->done.sum_ns += d;
	s->done.buckets[metrics_exchange_bucket(d)]++;
}

/* The exchange record the kernel sends for ex on s (exchange_emit()). */
static struct tcpotel_exchange_record fk_record(const struct tcpotel_sock *s,
						const struct tcpotel_exchange *ex)
{
	struct tcpotel_exchange_record r = {
		.hdr = { TCPOTEL_RECORD_EXCHANGE, sizeof(struct tcpotel_exchange_record) },
		.sock_id = s->sock_id,
		.tuple = s->tuple,
		.tgid = s->tgid,
		.role = s->role,
		.flags = s->flags,
		.sampled = 1,
		.srtt_us = s->srtt_last_us,
		.ex = *ex,
	};

	memcpy(r.comm, s->comm, sizeof(s->comm));
	return r;
}

/* As sock_end_if_idle() in bpf/track.bpf.h: a response silent for IDLE_NS has
 * ended with its last byte, a request that waited RESP_NS when that passed
 * (failed: no_response, not in the socket's histogram but always sent). */
static void fk_end_if_idle(struct fake_kernel *k, struct tcpotel_sock *s)
{
	struct tcpotel_exchange ex = s->ex;
	uint64_t end = 0;

	if (k->now > ex.end_ns && TCPOTEL_PHASE_ENDS_WHEN_IDLE(ex.phase) &&
	    k->now - ex.end_ns > IDLE_NS)
		end = ex.end_ns;
	if (k->now > ex.end_ns && TCPOTEL_PHASE_AWAITS_RESPONSE(ex.phase) &&
	    k->now - ex.end_ns > RESP_NS)
		end = ex.end_ns + RESP_NS;
	if (!end)
		return;
	if (ex.start_ns != s->idle_ended_ns) {
		s->idle_ended_ns = ex.start_ns;
		ex.end_ns = end;
		if (TCPOTEL_PHASE_AWAITS_RESPONSE(ex.phase))
			ex.error = TCPOTEL_ERR_NO_RESPONSE;
		else
			fk_count(s, &ex);
		k->recs[k->n_recs++] = fk_record(s, &ex);
	}
	s->ex.phase = TCPOTEL_PHASE_IDLE;
}

static void fk_snapshot(struct fake_kernel *k, uint32_t slot, uint64_t key)
{
	struct tcpotel_snapshot *o = &k->out[slot];
	int i = (int)key - 1;

	memset(o, 0, sizeof(*o));
	o->key = key;
	if (i < 0 || i >= FK_SOCKS || !k->live[i]) {
		o->status = TCPOTEL_SNAP_GONE;
		return;
	}
	fk_end_if_idle(k, &k->socks[i]);
	o->status = TCPOTEL_SNAP_SOCKET;
	o->sock = k->socks[i];
}

static void fk_begin(void *ctx)
{
	((struct fake_kernel *)ctx)->begins++;
}

/* As the collect program: the keys asked for, or else the queue, then lost closes. */
static int fk_collect(void *ctx, const uint64_t *keys, size_t n,
		      const struct tcpotel_snapshot **out)
{
	struct fake_kernel *k = ctx;
	uint32_t i;

	k->collects++;
	if (k->fail_next) {
		int err = k->fail_next;

		k->fail_next = 0;
		return err;
	}
	*out = k->out;
	for (i = 0; i < n; i++) {
		k->asked[k->n_asked++] = keys[i];
		fk_snapshot(k, i, keys[i]);
	}
	if (n)
		return (int)n;
	for (i = 0; i < TCPOTEL_COLLECT_BATCH; i++) {
		if (k->n_queue) {
			fk_snapshot(k, i, k->queue[0]);
			memmove(k->queue, k->queue + 1, --k->n_queue * sizeof(k->queue[0]));
		} else if (k->n_lost) {
			memset(&k->out[i], 0, sizeof(k->out[i]));
			k->out[i].status = TCPOTEL_SNAP_CLOSE_LOST;
			k->out[i].sock.sock_id = k->lost[--k->n_lost];
		} else {
			break;
		}
	}
	return (int)i;
}

static void fk_queue(struct fake_kernel *k, int i)
{
	k->queue[k->n_queue++] = fk_key(i);
}

/* A client socket of this process (so that procinfo names it), to 10.0.0.2:8080. */
static struct tcpotel_sock *fk_open(struct fake_kernel *k, int i, uint16_t port)
{
	struct tcpotel_sock *s = &k->socks[i];

	memset(s, 0, sizeof(*s));
	k->live[i] = true;
	s->sock_id = 100 + (uint64_t)i;
	s->tuple.family = AF_INET;
	inet_pton(AF_INET, "10.0.0.1", s->tuple.saddr);
	inet_pton(AF_INET, "10.0.0.2", s->tuple.daddr);
	s->tuple.sport = port;
	s->tuple.dport = 8080;
	s->tgid = (uint32_t)getpid();
	strcpy(s->comm, "frontend");
	s->role = TCPOTEL_ROLE_CLIENT;
	s->flags = TCPOTEL_SOCK_HAS_TUPLE | TCPOTEL_SOCK_HAS_OWNER | TCPOTEL_SOCK_OPENED;
	s->netns = 1;
	fk_queue(k, i);
	return s;
}

/* One request/response on s, as the hot path counts it (the exchange stays open). */
static void fk_exchange(struct tcpotel_sock *s, uint64_t start, uint64_t dur, uint64_t req,
			uint64_t resp)
{
	if (s->ex.phase == TCPOTEL_PHASE_RESPONSE && s->ex.start_ns != s->idle_ended_ns)
		fk_count(s, &s->ex);
	s->ex = (struct tcpotel_exchange){
		.start_ns = start,
		.end_ns = start + dur,
		.request_bytes = req,
		.response_bytes = resp,
		.request_seq = (uint32_t)start,
		.phase = TCPOTEL_PHASE_RESPONSE,
	};
	s->bytes_sent += req;
	s->bytes_received += resp;
	s->srtt_last_us = 40;
	s->srtt_min_us = s->srtt_min_us ?: 40;
	s->srtt_max_us = 40;
	s->srtt_count++;
	s->srtt_sum_us += 40;
	s->srtt_hist[6]++;
}

/* The close record: the kernel ends the open exchange first (exchange_finish()). */
static struct tcpotel_close_record fk_close(struct fake_kernel *k, int i, uint64_t when)
{
	struct tcpotel_sock *s = &k->socks[i];
	struct tcpotel_close_record r = {
		.hdr = { TCPOTEL_RECORD_CLOSE, sizeof(struct tcpotel_close_record) },
		.closed_ns = when,
	};

	if ((s->ex.phase == TCPOTEL_PHASE_REQUEST || s->ex.phase == TCPOTEL_PHASE_RESPONSE) &&
	    s->ex.start_ns != s->idle_ended_ns)
		fk_count(s, &s->ex);
	r.sock = *s;
	k->live[i] = false;
	return r;
}

/* ---- what reached the metric store ------------------------------------------------------ */

struct totals {
	int64_t sent, received, opened, active;
	uint64_t exchanges, srtt_samples;
	double exchange_sum, srtt_sum;
	bool ok;
};

static int64_t point_int(struct json_object *p)
{
	struct json_object *v;

	return json_object_object_get_ex(p, "asInt", &v) ? json_object_get_int64(v) : 0;
}

static const char *point_attr(struct json_object *p, const char *key)
{
	struct json_object *attrs, *v;

	if (!json_object_object_get_ex(p, "attributes", &attrs))
		return "";
	for (size_t i = 0; i < json_object_array_length(attrs); i++) {
		struct json_object *a = json_object_array_get_idx(attrs, i), *k, *val;

		if (json_object_object_get_ex(a, "key", &k) &&
		    strcmp(json_object_get_string(k), key) == 0 &&
		    json_object_object_get_ex(a, "value", &val) &&
		    json_object_object_get_ex(val, "stringValue", &v))
			return json_object_get_string(v);
	}
	return "";
}

static void add_histogram(uint64_t *count, double *sum, struct json_object *p)
{
	struct json_object *v;

	if (json_object_object_get_ex(p, "count", &v))
		*count += (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(p, "sum", &v))
		*sum += json_object_get_double(v);
}

static void add_metric(struct totals *t, struct json_object *m)
{
	struct json_object *name, *data, *points;
	const char *n;

	if (!json_object_object_get_ex(m, "name", &name))
		return;
	n = json_object_get_string(name);
	if (!json_object_object_get_ex(m, "sum", &data) &&
	    !json_object_object_get_ex(m, "histogram", &data))
		return;
	if (!json_object_object_get_ex(data, "dataPoints", &points))
		return;
	for (size_t i = 0; i < json_object_array_length(points); i++) {
		struct json_object *p = json_object_array_get_idx(points, i);

		if (!strcmp(n, "tcp.io") &&
		    !strcmp(point_attr(p, "network.io.direction"), "transmit"))
			t->sent += point_int(p);
		else if (!strcmp(n, "tcp.io"))
			t->received += point_int(p);
		else if (!strcmp(n, "tcp.connection.opened"))
			t->opened += point_int(p);
		else if (!strcmp(n, "tcp.connection.active"))
			t->active += point_int(p);
		else if (!strcmp(n, "tcp.exchange.duration"))
			add_histogram(&t->exchanges, &t->exchange_sum, p);
		else if (!strcmp(n, "tcp.srtt"))
			add_histogram(&t->srtt_samples, &t->srtt_sum, p);
	}
}

/* Sums the streams' points of the whole store (the agent's own metrics left out). */
static struct totals totals(struct metrics *m)
{
	struct totals t = { 0 };
	struct json_object *root, *rms;
	struct otlp_json_emitter je;
	struct jbuf b;

	jbuf_init(&b);
	otlp_json_emitter_init(&je, &b);
	metrics__encode(m, &je.emitter, 1700000000000000000ULL, NULL);
	root = jbuf_cstr(&b) ? json_tokener_parse(b.data) : NULL;
	if (root && json_object_object_get_ex(root, "resourceMetrics", &rms)) {
		t.ok = true;
		for (size_t i = 0; i < json_object_array_length(rms); i++) {
			struct json_object *sms, *ms;

			if (!json_object_object_get_ex(json_object_array_get_idx(rms, i),
						       "scopeMetrics", &sms))
				continue;
			for (size_t j = 0; j < json_object_array_length(sms); j++) {
				if (!json_object_object_get_ex(json_object_array_get_idx(sms, j),
							       "metrics", &ms))
					continue;
				for (size_t k = 0; k < json_object_array_length(ms); k++)
					add_metric(&t, json_object_array_get_idx(ms, k));
			}
		}
	}
	json_object_put(root);
	jbuf_free(&b);
	return t;
}

/* ---- the fixture ------------------------------------------------------------------------ */

struct fixture {
	struct fake_kernel k;
	struct procinfo *pi;
	struct metrics *m;
	struct exchanges *x;
	struct graph *g;
	struct sockets *ss;
};

static bool setup(struct fixture *f, bool with_map)
{
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 16,
				       .revalidate_ms = 5000,
				       .host_name = "test-host" };
	struct exchanges_opts xopts = { .spans = false, .sampling_ratio = 1.0 };
	struct sockets_opts sopts = {
		.source = { .ctx = &f->k, .begin = fk_begin, .collect = fk_collect },
		.idle_timeout_ns = IDLE_NS,
		.response_timeout_ns = RESP_NS,
	};

	memset(f, 0, sizeof(*f));
	f->pi = procinfo__new(&popts);
	f->m = f->pi ? metrics__new(f->pi, 1024) : NULL;
	if (with_map) {
		f->g = graph__new(NULL);
		f->x = f->m ? exchanges__new(&xopts, f->pi, NULL) : NULL;
		if (f->x && f->g)
			exchanges__set_graph(f->x, f->g);
	}
	f->ss = f->m && (!with_map || f->x) ? sockets__new(&sopts, f->m, f->pi, f->x) : NULL;
	return ASSERT_TRUE(f->ss != NULL);
}

static void teardown(struct fixture *f)
{
	sockets__free(f->ss);
	exchanges__free(f->x);
	graph__free(f->g);
	metrics__free(f->m);
	procinfo__free(f->pi);
}

static void sweep(struct fixture *f, uint64_t now)
{
	f->k.now = now;
	ASSERT_OK(sockets__sweep(f->ss, now));
}

/* ---- tests ------------------------------------------------------------------------------- */

/* A sweep reads the sockets queued as changed, and only them; deltas are exact. */
TEST(sockets_sweep_reads_only_changed_sockets)
{
	struct fixture f;
	struct totals t;

	if (!setup(&f, false))
		goto out;
	for (int i = 0; i < 3; i++)
		fk_exchange(fk_open(&f.k, i, (uint16_t)(40000 + i)), 1 * SEC, MS, 100, 1000);
	sweep(&f, 1 * SEC + 10 * MS);
	ASSERT_EQ(sockets__tracked(f.ss), 3);
	t = totals(f.m);
	ASSERT_TRUE(t.ok);
	ASSERT_EQ(t.sent, 300);
	ASSERT_EQ(t.received, 3000);
	ASSERT_EQ(t.opened, 3);
	ASSERT_EQ(t.active, 3);
	ASSERT_EQ(t.srtt_samples, 3);

	/* Nothing changed: one collect, nothing asked, nothing read. */
	f.k.collects = 0;
	sweep(&f, 2 * SEC);
	ASSERT_EQ(f.k.collects, 1);
	ASSERT_EQ(f.k.n_asked, 0);
	t = totals(f.m);
	ASSERT_EQ(t.sent, 300);

	/* One socket moves on: only its growth is added, the finished exchange counted. */
	fk_exchange(&f.k.socks[1], 2 * SEC + 100 * MS, MS, 7, 70000);
	fk_queue(&f.k, 1);
	sweep(&f, 2 * SEC + 500 * MS);
	t = totals(f.m);
	ASSERT_EQ(t.sent, 307);
	ASSERT_EQ(t.received, 73000);
	ASSERT_EQ(t.active, 3);
	ASSERT_EQ(t.srtt_samples, 4);
	ASSERT_U64_EQ(t.exchanges, 1);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 1);
	ASSERT_EQ(f.k.begins, 3);
out:
	teardown(&f);
}

/*
 * An exchange that goes silent: the sweep asks the kernel about its socket
 * once it is due (not before), the kernel ends it, and it is counted once;
 * the close that follows counts it no more.
 */
TEST(sockets_idle_exchange_ends_by_silence_then_close_counted_once)
{
	struct fixture f;
	struct tcpotel_close_record r;
	struct totals t;

	if (!setup(&f, false))
		goto out;
	fk_exchange(fk_open(&f.k, 0, 40000), 1 * SEC, 3 * MS, 100, 1000);
	sweep(&f, 1 * SEC + 100 * MS);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 0); /* still open */

	sweep(&f, 2 * SEC);
	sweep(&f, 3 * SEC); /* 1.997 s of silence: not due yet */
	ASSERT_EQ(f.k.n_asked, 0);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 0);

	sweep(&f, 3 * SEC + 500 * MS); /* past 2 s of silence: asked, ended by the kernel */
	ASSERT_EQ(f.k.n_asked, 1);
	ASSERT_U64_EQ(f.k.asked[0], fk_key(0));
	ASSERT_EQ(f.k.n_recs, 1);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 1);
	t = totals(f.m);
	ASSERT_U64_EQ(t.exchanges, 1);
	ASSERT_DOUBLE_NEAR(t.exchange_sum, 0.003, 1e-9);

	sweep(&f, 10 * SEC); /* ended: never asked about again */
	ASSERT_EQ(f.k.n_asked, 1);

	r = fk_close(&f.k, 0, 11 * SEC);
	sockets__on_close(f.ss, &r);
	t = totals(f.m);
	ASSERT_U64_EQ(t.exchanges, 1);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 1);
	ASSERT_EQ(t.active, 0);
	ASSERT_EQ(t.sent, 100);
	ASSERT_EQ(t.received, 1000);
	ASSERT_EQ(sockets__tracked(f.ss), 0);
out:
	teardown(&f);
}

/*
 * A request still waiting for its first response byte is not silent after
 * idle_timeout: the sweep asks about it only once response_timeout has passed
 * since its last byte, and the kernel ends it then, lasting its request plus
 * that bound, counted once. A response that comes before the bound keeps it.
 */
TEST(sockets_request_waits_for_response_timeout)
{
	struct fixture f;
	struct tcpotel_close_record r;
	struct tcpotel_sock *s;
	struct totals t;

	if (!setup(&f, false))
		goto out;
	s = fk_open(&f.k, 0, 40000);
	fk_exchange(s, 1 * SEC, 2 * MS, 100, 0);
	s->ex.phase = TCPOTEL_PHASE_REQUEST;
	sweep(&f, 1 * SEC + 100 * MS);
	sweep(&f, 4 * SEC); /* idle_timeout (2 s) is past: a request is not asked about */
	sweep(&f, 8 * SEC);
	ASSERT_EQ(f.k.n_asked, 0);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 0);

	/* The response comes 7.5 s later (the sweep asks when the bound was due, and
	 * finds it answered): the same exchange goes on. */
	s->ex.phase = TCPOTEL_PHASE_RESPONSE;
	s->ex.response_bytes = 200;
	s->ex.end_ns = 8 * SEC + 500 * MS;
	fk_queue(&f.k, 0);
	sweep(&f, 9 * SEC);
	ASSERT_EQ(f.k.n_asked, 1);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 0);
	sweep(&f, 11 * SEC); /* its response silent 2.5 s: ended with its last byte */
	ASSERT_EQ(f.k.n_asked, 2);
	t = totals(f.m);
	ASSERT_U64_EQ(t.exchanges, 1);
	ASSERT_DOUBLE_NEAR(t.exchange_sum, 7.5, 1e-9);

	/* The next request is never answered: ended when the bound passes, failed
	 * (no_response): the kernel sends it, and it is counted from its record. */
	fk_exchange(s, 20 * SEC, 1 * MS, 50, 0);
	s->ex.phase = TCPOTEL_PHASE_REQUEST;
	fk_queue(&f.k, 0);
	sweep(&f, 20 * SEC + 100 * MS);
	sweep(&f, 27 * SEC); /* 6.999 s: not due */
	ASSERT_EQ(f.k.n_asked, 2);
	sweep(&f, 28 * SEC);
	ASSERT_EQ(f.k.n_asked, 3);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 1); /* not in the kernel's histogram */
	if (ASSERT_EQ(f.k.n_recs, 2))
		ASSERT_EQ(f.k.recs[1].ex.error, TCPOTEL_ERR_NO_RESPONSE);
	sockets__on_exchange(f.ss, &f.k.recs[f.k.n_recs - 1]);
	t = totals(f.m);
	ASSERT_U64_EQ(t.exchanges, 2);
	ASSERT_DOUBLE_NEAR(t.exchange_sum, 7.5 + 7.001, 1e-9);
	r = fk_close(&f.k, 0, 30 * SEC);
	sockets__on_close(f.ss, &r);
	ASSERT_U64_EQ(totals(f.m).exchanges, 2);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 2);
out:
	teardown(&f);
}

/* A sweep that cannot read the table only delays a silent exchange. */
TEST(sockets_failed_collect_delays_a_silent_exchange)
{
	struct fixture f;

	if (!setup(&f, false))
		goto out;
	fk_exchange(fk_open(&f.k, 0, 40000), 1 * SEC, 3 * MS, 100, 1000);
	sweep(&f, 1 * SEC + 100 * MS);
	f.k.fail_next = -EIO;
	f.k.now = 4 * SEC;
	ASSERT_EQ(sockets__sweep(f.ss, 4 * SEC), -EIO);
	ASSERT_EQ(f.k.n_asked, 0);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 0);
	sweep(&f, 5 * SEC);
	ASSERT_EQ(f.k.n_asked, 1);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 1);
	sweep(&f, 6 * SEC);
	ASSERT_EQ(f.k.n_asked, 1);
out:
	teardown(&f);
}

/* The close comes while the exchange is still open: the kernel ends it there, once. */
TEST(sockets_exchange_open_at_close_counted_once)
{
	struct fixture f;
	struct tcpotel_close_record r;
	struct totals t;

	if (!setup(&f, false))
		goto out;
	fk_exchange(fk_open(&f.k, 0, 40000), 1 * SEC, 3 * MS, 100, 1000);
	sweep(&f, 1 * SEC + 100 * MS);
	fk_exchange(&f.k.socks[0], 1 * SEC + 200 * MS, 3 * MS, 10, 20);
	r = fk_close(&f.k, 0, 1 * SEC + 300 * MS);
	sockets__on_close(f.ss, &r);
	t = totals(f.m);
	ASSERT_U64_EQ(t.exchanges, 2);
	ASSERT_EQ(t.sent, 110);
	ASSERT_EQ(t.received, 1020);
	ASSERT_EQ(t.active, 0);
	ASSERT_EQ(t.opened, 1);
	/* Its silence is no longer waited for. */
	sweep(&f, 10 * SEC);
	ASSERT_EQ(f.k.n_asked, 0);
	ASSERT_U64_EQ(sockets__exchanges(f.ss), 2);
out:
	teardown(&f);
}

/* A connection opened and closed between two sweeps: the close brings all of it. */
TEST(sockets_close_before_any_sweep)
{
	struct fixture f;
	struct tcpotel_close_record r;
	struct totals t;

	if (!setup(&f, false))
		goto out;
	fk_exchange(fk_open(&f.k, 0, 40000), 1 * SEC, 3 * MS, 64, 128);
	r = fk_close(&f.k, 0, 1 * SEC + 10 * MS);
	sockets__on_close(f.ss, &r);
	sweep(&f, 2 * SEC); /* its queued key finds nothing */
	t = totals(f.m);
	ASSERT_EQ(t.sent, 64);
	ASSERT_EQ(t.received, 128);
	ASSERT_EQ(t.opened, 1);
	ASSERT_EQ(t.active, 0);
	ASSERT_U64_EQ(t.exchanges, 1);
	ASSERT_EQ(sockets__tracked(f.ss), 0);
out:
	teardown(&f);
}

/* A close whose record the ring buffer had no room for: the connection is still taken away. */
TEST(sockets_lost_close_is_retired)
{
	struct fixture f;
	struct totals t;

	if (!setup(&f, false))
		goto out;
	fk_exchange(fk_open(&f.k, 0, 40000), 1 * SEC, 3 * MS, 64, 128);
	fk_exchange(fk_open(&f.k, 1, 40001), 1 * SEC, 3 * MS, 64, 128);
	sweep(&f, 1 * SEC + 100 * MS);
	f.k.live[0] = false;
	f.k.lost[f.k.n_lost++] = f.k.socks[0].sock_id;
	sweep(&f, 1 * SEC + 200 * MS);
	t = totals(f.m);
	ASSERT_EQ(sockets__tracked(f.ss), 1);
	ASSERT_U64_EQ(sockets__retired(f.ss), 1);
	ASSERT_EQ(t.active, 1);
	/* Nor is its silence waited for. */
	sweep(&f, 10 * SEC);
	ASSERT_EQ(f.k.n_asked, 1);
	ASSERT_U64_EQ(f.k.asked[0], fk_key(1));
out:
	teardown(&f);
}

/* Many buckets in use (more than a usock holds inline): counts stay exact. */
TEST(sockets_histogram_buckets_grow)
{
	struct fixture f;
	struct totals t;
	struct tcpotel_sock *s;
	uint64_t start = 1 * SEC;

	if (!setup(&f, false))
		goto out;
	s = fk_open(&f.k, 0, 40000);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 12; i++) {
			uint64_t dur = 50000ULL << i; /* 50 us .. 102 ms: 12 buckets */

			fk_exchange(s, start, dur, 1, 1);
			s->srtt_hist[(round * 12 + i) % TCPOTEL_SRTT_BUCKETS]++;
			start += dur + MS;
		}
		fk_queue(&f.k, 0);
		sweep(&f, start);
	}
	t = totals(f.m);
	ASSERT_U64_EQ(t.exchanges, 35); /* the 36th is still open */
	ASSERT_U64_EQ(t.exchanges, s->done.count);
	ASSERT_U64_EQ(t.srtt_samples, s->srtt_count + 36);
out:
	teardown(&f);
}

/* The first send names the real owner: the connection moves to its stream. */
TEST(sockets_owner_change_moves_the_connection)
{
	struct fixture f;
	struct totals t;

	if (!setup(&f, false))
		goto out;
	fk_exchange(fk_open(&f.k, 0, 40000), 1 * SEC, 3 * MS, 64, 128);
	f.k.socks[0].tgid = 1; /* another process */
	strcpy(f.k.socks[0].comm, "init");
	sweep(&f, 1 * SEC + 100 * MS);
	f.k.socks[0].tgid = (uint32_t)getpid();
	strcpy(f.k.socks[0].comm, "frontend");
	f.k.socks[0].bytes_sent += 5;
	fk_queue(&f.k, 0);
	sweep(&f, 1 * SEC + 200 * MS);
	t = totals(f.m);
	ASSERT_EQ(t.active, 1);
	ASSERT_EQ(t.sent, 69);
out:
	teardown(&f);
}

static const char *first_node_field(struct graph *g, const char *field, char *buf, size_t size)
{
	struct json_object *root, *nodes, *v;
	struct jbuf b;

	buf[0] = '\0';
	jbuf_init(&b);
	if (graph__render_json(g, &b, 3600ULL * SEC) == 0 && jbuf_cstr(&b)) {
		root = json_tokener_parse(b.data);
		if (root && json_object_object_get_ex(root, "nodes", &nodes)) {
			for (size_t i = 0; i < json_object_array_length(nodes); i++) {
				struct json_object *n = json_object_array_get_idx(nodes, i);

				if (json_object_object_get_ex(n, field, &v) &&
				    json_object_get_string(v)[0]) {
					snprintf(buf, size, "%s", json_object_get_string(v));
					break;
				}
			}
		}
		json_object_put(root);
	}
	jbuf_free(&b);
	return buf;
}

/*
 * Exchange records reach exchange.c with who they belong to, resolved once
 * per stream, whether their socket was swept already or not.
 */
TEST(sockets_on_exchange_hands_over_the_stream_origin)
{
	struct fixture f;
	struct graph_stats gs;
	char host[64];

	if (!setup(&f, true))
		goto out;
	fk_exchange(fk_open(&f.k, 0, 40000), 1 * SEC, 3 * MS, 64, 128);
	f.k.n_queue = 0; /* not swept yet */
	f.k.now = 1 * SEC + 3 * MS + IDLE_NS + 1;
	fk_end_if_idle(&f.k, &f.k.socks[0]);
	ASSERT_EQ(f.k.n_recs, 1);
	sockets__on_exchange(f.ss, &f.k.recs[0]);
	fk_queue(&f.k, 0);
	sweep(&f, 4 * SEC);
	fk_exchange(&f.k.socks[0], 5 * SEC, 3 * MS, 64, 128);
	f.k.now = 5 * SEC + 3 * MS + IDLE_NS + 1;
	fk_end_if_idle(&f.k, &f.k.socks[0]);
	ASSERT_EQ(f.k.n_recs, 2);
	sockets__on_exchange(f.ss, &f.k.recs[1]);
	graph__stats(f.g, &gs);
	ASSERT_U64_EQ(gs.exchanges, 2);
	ASSERT_EQ(strcmp(first_node_field(f.g, "host", host, sizeof(host)), "test-host"), 0);
out:
	teardown(&f);
}

/*
 * One socket's records in two CPUs' rings: the drain may read its close
 * before an exchange that ended earlier (an exchange that failed, and one
 * that did not). Both orders count alike, and the late records still reach
 * the live map under the socket's process.
 */
TEST(sockets_exchange_records_after_their_close_count_the_same)
{
	for (int close_first = 0; close_first < 2; close_first++) {
		struct tcpotel_exchange_record done, failed;
		struct tcpotel_close_record r;
		struct tcpotel_sock *s;
		struct graph_stats gs;
		struct fixture f;
		struct totals t;
		char host[64];

		if (!setup(&f, true))
			goto out;
		s = fk_open(&f.k, 0, 40000);
		fk_exchange(s, 1 * SEC, 3 * MS, 64, 128);
		done = fk_record(s, &s->ex);
		fk_exchange(s, 2 * SEC, 3 * MS, 10, 0); /* counts the first */
		failed = fk_record(s, &s->ex);
		failed.ex.error = TCPOTEL_ERR_RESET;
		/* A failed exchange is not the kernel's to count. */
		s->ex.phase = TCPOTEL_PHASE_IDLE;
		r = fk_close(&f.k, 0, 3 * SEC);
		if (close_first)
			sockets__on_close(f.ss, &r);
		sockets__on_exchange(f.ss, &done);
		sockets__on_exchange(f.ss, &failed);
		if (!close_first)
			sockets__on_close(f.ss, &r);
		sweep(&f, 4 * SEC);
		t = totals(f.m);
		ASSERT_EQ(t.sent, 74);
		ASSERT_EQ(t.received, 128);
		ASSERT_EQ(t.opened, 1);
		ASSERT_EQ(t.active, 0);
		ASSERT_U64_EQ(t.exchanges, 2); /* one of them under error.type */
		ASSERT_U64_EQ(sockets__exchanges(f.ss), 2);
		ASSERT_EQ(sockets__tracked(f.ss), 0);
		graph__stats(f.g, &gs);
		ASSERT_U64_EQ(gs.exchanges, 2);
		ASSERT_EQ(strcmp(first_node_field(f.g, "host", host, sizeof(host)), "test-host"),
			  0);
out:
		teardown(&f);
	}
}
