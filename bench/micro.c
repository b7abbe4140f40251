// SPDX-License-Identifier: Apache-2.0
/*
 * Micro-benchmarks of the agent's user-space hot paths, on the project's own
 * modules: OTLP JSON encoding of spans and metric points, the same store
 * written as the /metrics page (Prometheus text), gzip of a span body, trace
 * id derivation, the exchange-end path, and the sweep against the real
 * collect program and BPF maps at 10k and 100k sockets (needs root).
 *
 *   micro [--json] [--quick] [BENCH...]     BENCH: span point ids exchange sweep
 *
 * Each figure is the best of several repetitions, in ns per item: the
 * machine is shared, and the fastest repetition is the one least disturbed. The
 * sweep is timed five ways: the first sweep (every socket new), sweeps where
 * nothing changed (per socket), where 1 % of the sockets changed (per changed
 * socket), where every socket changed, and where 1 % of the sockets' exchanges
 * went silent and the kernel ends them (per exchange): its cost follows what
 * changed, not how many sockets there are.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <isa-l/igzip_lib.h>
#include <zlib.h>
#include <bpf/bpf.h>

#include "abi.h"
#include "capture.h"
#include "config.h"
#include "exchange.h"
#include "jbuf.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "otlp.h"
#include "procinfo.h"
#include "prom.h"
#include "sockets.h"
#include "traceid.h"

#define REPS	      7
#define SPAN_BATCH    4096 /* EXCHANGE_MAX_BATCH: one traces body */
#define GZIP_LEVEL    1 /* the exporter's level (ISA-L igzip); zlib shown for comparison */
#define SWEEP_MAP_MAX 131072
#define SWEEP_IDLE_NS (5 * NSEC_PER_SEC)

static bool json_out;
/* Keeps results alive so the compiler cannot drop the timed loops. */
static volatile uint64_t sink;
static bool quick;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double best(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[0];
}

static void report(const char *name, double ns_per_item, uint64_t items, const char *unit,
		   const char *note)
{
	if (json_out)
		printf("{\"bench\":\"%s\",\"ns_per_item\":%.1f,\"items\":%" PRIu64
		       ",\"unit\":\"%s\",\"note\":\"%s\"}\n",
		       name, ns_per_item, items, unit, note ? note : "");
	else
		printf("%-28s %10.1f ns/%-8s (%" PRIu64 " %ss%s%s)\n", name, ns_per_item, unit,
		       items, unit, note ? ", " : "", note ? note : "");
	fflush(stdout);
}

/* A tuple like the kernel's: client 10.1.x.y:port -> server 10.2.0.z:service port. */
static void fake_tuple(struct tcpotel_tuple *t, uint32_t i, bool client)
{
	uint8_t c[4] = { 10, 1, (uint8_t)(i >> 8), (uint8_t)i };
	uint8_t s[4] = { 10, 2, 0, (uint8_t)(i % 8) };
	uint16_t cport = (uint16_t)(32768 + i % 28000), sport = (uint16_t)(6379 + i % 4);

	memset(t, 0, sizeof(*t));
	t->family = AF_INET;
	memcpy(t->saddr, client ? c : s, 4);
	memcpy(t->daddr, client ? s : c, 4);
	t->sport = client ? cport : sport;
	t->dport = client ? sport : cport;
}

/* ---- spans ------------------------------------------------------------------------------- */

/* The span exchange.c writes: same name, kind, ids and eleven attributes. */
static void encode_span(struct jbuf *b, const struct tcpotel_tuple *t, bool client,
			const struct exchange_ids *ids, uint64_t start, const char *trace_state)
{
	char local[NETADDR_STRLEN], remote[NETADDR_STRLEN];
	struct otlp_attr a[11];
	struct otlp_span span = {
		.trace_state = trace_state,
		.name = "tcp.exchange",
		.kind = client ? OTLP_SPAN_KIND_CLIENT : OTLP_SPAN_KIND_SERVER,
		.start_unix_nano = start,
		.end_unix_nano = start + 123456,
		.attrs = a,
		.n_attrs = ARRAY_SIZE(a),
	};

	netaddr_format(t->family, t->saddr, local);
	netaddr_format(t->family, t->daddr, remote);
	a[0] = OTLP_ATTR_STR("network.transport", "tcp");
	a[1] = OTLP_ATTR_STR("network.type", netaddr_type(t->family));
	a[2] = OTLP_ATTR_STR("server.address", client ? remote : local);
	a[3] = OTLP_ATTR_INT("server.port", client ? t->dport : t->sport);
	a[4] = OTLP_ATTR_STR("client.address", client ? local : remote);
	a[5] = OTLP_ATTR_INT("client.port", client ? t->sport : t->dport);
	a[6] = OTLP_ATTR_STR("network.peer.address", remote);
	a[7] = OTLP_ATTR_INT("network.peer.port", t->dport);
	a[8] = OTLP_ATTR_INT("tcp.request.size", 64);
	a[9] = OTLP_ATTR_INT("tcp.response.size", 1024);
	a[10] = OTLP_ATTR_DOUBLE("tcp.srtt", 31 * 1e-6);
	memcpy(span.trace_id, ids->trace_id, 16);
	if (client) {
		memcpy(span.span_id, ids->client_span_id, 8);
	} else {
		memcpy(span.span_id, ids->server_span_id, 8);
		memcpy(span.parent_span_id, ids->client_span_id, 8);
	}
	otlp_span(b, &span);
}

static const struct otlp_attr res_attrs[] = {
	OTLP_ATTR_STR("service.name", "redis-server"),
	OTLP_ATTR_INT("process.pid", 4242),
	OTLP_ATTR_STR("process.executable.name", "redis-server"),
	OTLP_ATTR_STR("host.name", "bench-host"),
};

static int bench_spans(void)
{
	int batches = quick ? 5 : 25;
	double enc[REPS], gz[REPS], zl[REPS];
	uint8_t *level_buf = malloc(ISAL_DEF_LVL1_LARGE);
	size_t ld_bytes = 0;
	struct otlp_resource res = { res_attrs, ARRAY_SIZE(res_attrs) };
	struct tcpotel_tuple *tuples;
	struct exchange_ids *ids;
	size_t body_bytes = 0, gz_bytes = 0;
	unsigned char *zbuf = NULL;
	struct jbuf b;
	z_stream zs;
	int err = -ENOMEM;

	memset(&zs, 0, sizeof(zs));
	jbuf_init(&b);
	tuples = calloc(SPAN_BATCH, sizeof(*tuples));
	ids = calloc(SPAN_BATCH, sizeof(*ids));
	if (!tuples || !ids || !level_buf)
		goto out;
	for (uint32_t i = 0; i < SPAN_BATCH; i++) {
		uint8_t ca[16];

		fake_tuple(&tuples[i], i, i % 2 == 0);
		traceid_canonical_addr(AF_INET, i % 2 == 0 ? tuples[i].saddr : tuples[i].daddr, ca);
		traceid_derive(ca, 40000, i * 7919u, &ids[i]);
	}
	if (deflateInit2(&zs, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		goto out;
	for (int r = 0; r < REPS; r++) {
		uint64_t t0, t_enc = 0, t_gz = 0, t_zl = 0;

		for (int k = 0; k < batches; k++) {
			uLong bound;

			t0 = now_ns();
			jbuf_reset(&b);
			otlp_traces_begin(&b);
			otlp_traces_resource_begin(&b, &res);
			for (uint32_t i = 0; i < SPAN_BATCH; i++)
				encode_span(&b, &tuples[i], i % 2 == 0, &ids[i],
					    1700000000000000000ULL + i * 1000ULL, "");
			otlp_traces_resource_end(&b);
			otlp_traces_end(&b);
			t_enc += now_ns() - t0;
			if (b.failed)
				goto out;
			body_bytes = b.len;

			bound = deflateBound(&zs, (uLong)b.len) + 32;
			if (!zbuf) {
				zbuf = malloc(bound * 2);
				if (!zbuf)
					goto out;
			}
			t0 = now_ns();
			{
				struct isal_zstream is;

				isal_deflate_stateless_init(&is);
				is.gzip_flag = IGZIP_GZIP;
				is.level = GZIP_LEVEL;
				is.level_buf = level_buf;
				is.level_buf_size = ISAL_DEF_LVL1_LARGE;
				is.end_of_stream = 1;
				is.next_in = (uint8_t *)b.data;
				is.avail_in = (uint32_t)b.len;
				is.next_out = zbuf;
				is.avail_out = (uint32_t)(bound * 2);
				if (isal_deflate_stateless(&is) != COMP_OK) {
					err = -EIO;
					goto out;
				}
				ld_bytes = is.total_out;
			}
			t_gz += now_ns() - t0;

			t0 = now_ns();
			deflateReset(&zs);
			zs.next_in = (Bytef *)b.data;
			zs.avail_in = (uInt)b.len;
			zs.next_out = zbuf;
			zs.avail_out = (uInt)(bound * 2);
			if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
				err = -EIO;
				goto out;
			}
			gz_bytes = zs.total_out;
			t_zl += now_ns() - t0;
		}
		enc[r] = (double)t_enc / ((double)batches * SPAN_BATCH);
		gz[r] = (double)t_gz / ((double)batches * SPAN_BATCH);
		zl[r] = (double)t_zl / ((double)batches * SPAN_BATCH);
	}
	{
		char note[96];

		snprintf(note, sizeof(note), "%zu B/span JSON", body_bytes / SPAN_BATCH);
		report("otlp_span_encode", best(enc, REPS), (uint64_t)batches * SPAN_BATCH, "span",
		       note);
		snprintf(note, sizeof(note), "ISA-L igzip level %d, %.0f B/span gzipped",
			 GZIP_LEVEL, (double)ld_bytes / SPAN_BATCH);
		report("span_body_gzip", best(gz, REPS), (uint64_t)batches * SPAN_BATCH, "span",
		       note);
		snprintf(note, sizeof(note), "zlib level %d, %.0f B/span gzipped", GZIP_LEVEL,
			 (double)gz_bytes / SPAN_BATCH);
		report("span_body_gzip_zlib", best(zl, REPS), (uint64_t)batches * SPAN_BATCH,
		       "span", note);
	}
	err = 0;
out:
	deflateEnd(&zs);
	free(level_buf);
	free(zbuf);
	free(tuples);
	free(ids);
	jbuf_free(&b);
	return err;
}

/* ---- ids --------------------------------------------------------------------------------- */

static int bench_ids(void)
{
	uint64_t n = quick ? 200000 : 2000000, kept = 0;
	uint64_t threshold = traceid_threshold(0.1);
	double d[REPS], s[REPS];
	uint8_t addr[16];
	struct exchange_ids ids;

	traceid_canonical_addr(AF_INET, (const uint8_t[]){ 10, 1, 2, 3 }, addr);
	for (int r = 0; r < REPS; r++) {
		uint64_t t0 = now_ns();

		for (uint64_t i = 0; i < n; i++) {
			traceid_derive(addr, (uint16_t)(32768 + (i & 0x3fff)), (uint32_t)i, &ids);
			kept += ids.trace_id[15];
		}
		d[r] = (double)(now_ns() - t0) / (double)n;
		t0 = now_ns();
		for (uint64_t i = 0; i < n; i++) {
			ids.trace_id[15] = (uint8_t)i;
			ids.trace_id[14] = (uint8_t)(i >> 8);
			kept += traceid_sampled(ids.trace_id, threshold);
		}
		s[r] = (double)(now_ns() - t0) / (double)n;
	}
	report("traceid_derive", best(d, REPS), n, "id", NULL);
	sink += kept;
	report("traceid_sampled", best(s, REPS), n, "id", NULL);
	return 0;
}

/* ---- metric points ----------------------------------------------------------------------- */

static int bench_points(void)
{
	size_t n_streams = quick ? 200 : 1000;
	int reps_inner = quick ? 20 : 100;
	double raw[REPS], store[REPS], page[REPS];
	struct otlp_resource res = { res_attrs, ARRAY_SIZE(res_attrs) };
	struct otlp_metric_desc desc = { "tcp.io", "By", "bytes", OTLP_SUM_MONOTONIC, false };
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 64,
				       .revalidate_ms = 5000 };
	struct procinfo *pi = NULL;
	struct metrics *m = NULL;
	size_t points = 0;
	struct prom_writer *prom = prom_writer__new();
	struct otlp_json_emitter json;
	struct jbuf b;
	size_t text_len = 0;
	int err = -ENOMEM;

	jbuf_init(&b);
	otlp_json_emitter_init(&json, &b);
	if (!prom)
		goto out;
	pi = procinfo__new(&popts);
	m = pi ? metrics__new(pi, 262144) : NULL;
	if (!m)
		goto out;
	/* A store like a busy host's: streams with io, connections, srtt and exchanges. */
	for (size_t i = 0; i < n_streams; i++) {
		struct stream_key key = { .role = i % 2 ? TCPOTEL_ROLE_CLIENT : TCPOTEL_ROLE_SERVER,
					  .family = AF_INET,
					  .port = (uint16_t)(8000 + i % 50) };
		uint32_t delta[TCPOTEL_SRTT_BUCKETS] = { 0 };
		uint32_t ex_delta[TCPOTEL_EXCHANGE_BUCKETS] = { 0 };
		struct stream *s;

		memcpy(key.peer, (const uint8_t[]){ 10, 3, (uint8_t)(i >> 8), (uint8_t)i }, 4);
		key.res = procinfo__get(pi, (uint32_t)getpid(), "micro", 0);
		s = key.res ? metrics__stream(m, &key) : NULL;
		if (!s)
			goto out;
		delta[5] = 3;
		delta[6] = 7;
		ex_delta[metrics_exchange_bucket(250000)]++;
		ex_delta[metrics_exchange_bucket(2500000)]++;
		stream__add_io(s, 1000 + i, 5000 + i);
		stream__add_opened(s, 1);
		stream__add_active(s, 1);
		stream__add_srtt(s, delta, 400, 20, 70);
		stream__add_exchanges(s, ex_delta, 2750000, 250000, 2500000);
	}
	for (int r = 0; r < REPS; r++) {
		struct otlp_attr pa[5] = {
			OTLP_ATTR_STR("network.transport", "tcp"),
			OTLP_ATTR_STR("network.type", "ipv4"),
			OTLP_ATTR_STR("tcp.role", "client"),
			OTLP_ATTR_STR("server.address", "10.3.0.17"),
			OTLP_ATTR_INT("server.port", 6379),
		};
		uint64_t t0 = now_ns();
		size_t n = 0;

		for (int k = 0; k < reps_inner; k++) {
			jbuf_reset(&b);
			otlp_metrics_begin(&b);
			otlp_metrics_resource_begin(&b, &res);
			otlp_metric_begin(&b, &desc);
			for (size_t i = 0; i < n_streams; i++, n++)
				otlp_point_int(&b, pa, ARRAY_SIZE(pa), 1700000000000000000ULL,
					       1700000010000000000ULL, (int64_t)(i * 1000));
			otlp_metric_end(&b);
			otlp_metrics_resource_end(&b);
			otlp_metrics_end(&b);
		}
		raw[r] = (double)(now_ns() - t0) / (double)n;
		if (b.failed)
			goto out;

		t0 = now_ns();
		n = 0;
		for (int k = 0; k < reps_inner / 4 + 1; k++) {
			jbuf_reset(&b);
			n += metrics__encode(m, &json.emitter, 1700000010000000000ULL + (uint64_t)k,
					     NULL);
		}
		store[r] = (double)(now_ns() - t0) / (double)n;
		points = n / (size_t)(reps_inner / 4 + 1);
		if (b.failed)
			goto out;

		/* The /metrics page of the same store: what the agent adds per interval with the UI. */
		t0 = now_ns();
		n = 0;
		for (int k = 0; k < reps_inner / 4 + 1; k++) {
			n += metrics__encode(m, prom_writer__emitter(prom),
					     1700000010000000000ULL + (uint64_t)k, NULL);
			if (!prom_writer__text(prom, &text_len))
				goto out;
		}
		page[r] = (double)(now_ns() - t0) / (double)n;
	}
	report("otlp_point_int", best(raw, REPS), (uint64_t)n_streams * (uint64_t)reps_inner,
	       "point", "5 attributes");
	{
		char note[96];

		snprintf(note, sizeof(note), "%zu streams -> %zu points/body, histograms included",
			 n_streams, points);
		report("metrics_encode", best(store, REPS), points, "point", note);
		snprintf(note, sizeof(note), "the same store as the /metrics page, %zu B of text",
			 text_len);
		report("metrics_prometheus", best(page, REPS), points, "point", note);
	}
	err = 0;
out:
	jbuf_free(&b);
	prom_writer__free(prom);
	metrics__free(m);
	procinfo__free(pi);
	return err;
}

/* ---- exchange end: ids, the live map's feed, pending span ------------------------------------ */

/* exchanges__end() as sockets.c calls it: the kernel sampled, the origin resolved. */
static int bench_exchange(void)
{
	uint32_t n = 60000; /* below EXCHANGE_MAX_PENDING: nothing dropped */
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 64,
				       .revalidate_ms = 5000 };
	struct exchanges_opts xopts = { .spans = true, .sampling_ratio = 1.0 };
	struct procinfo *pi = NULL;
	struct proc_resource *res = NULL;
	struct tcpotel_tuple *tuples = NULL;
	struct exchange_origin origin;
	double v[REPS];
	int err = -ENOMEM;

	pi = procinfo__new(&popts);
	res = pi ? procinfo__get(pi, (uint32_t)getpid(), "micro", 0) : NULL;
	tuples = calloc(n, sizeof(*tuples));
	if (!res || !tuples)
		goto out;
	origin = (struct exchange_origin){
		.res = res,
		.service = res->service_name,
		.host = res->host_name,
		.pid = res->pid,
		.peer = "10.2.0.1:6379",
	};
	for (uint32_t i = 0; i < n; i++)
		fake_tuple(&tuples[i], i, true);
	for (int r = 0; r < REPS; r++) {
		struct exchanges *x = exchanges__new(&xopts, pi, NULL);
		uint64_t t0;

		if (!x)
			goto out;
		t0 = now_ns();
		for (uint32_t i = 0; i < n; i++) {
			struct tcpotel_exchange ex = {
				.start_ns = 1000000 + i * 1000ULL,
				.end_ns = 1000000 + i * 1000ULL + 400,
				.request_bytes = 64,
				.response_bytes = 64,
				.request_seq = i * 2654435761u,
				.phase = TCPOTEL_PHASE_RESPONSE,
			};

			exchanges__end(x, &(struct exchange_end){
						  .origin = &origin,
						  .tuple = &tuples[i],
						  .ex = &ex,
						  .role = TCPOTEL_ROLE_CLIENT,
						  .srtt_us = 30,
					  });
		}
		v[r] = (double)(now_ns() - t0) / n;
		exchanges__free(x);
	}
	report("exchange_end", best(v, REPS), n, "exchange", "a kept exchange to a pending span");
	err = 0;
out:
	free(tuples);
	if (res)
		procinfo__put(pi, res);
	procinfo__free(pi);
	return err;
}

/* ---- the sweep ---------------------------------------------------------------------------- */

/*
 * The sweep against the real collect program and maps (the capture skeleton,
 * loaded, nothing attached), with the socket table filled by hand and
 * sockets queued as changed by hand, as the hot path would. What it costs per
 * socket that did not change, per socket that did, and per exchange that went
 * silent.
 */

struct sweep_bench {
	struct capture *capture;
	struct procinfo *pi;
	struct metrics *m;
	struct sockets *ss;
	int map_fd, queue_fd;
	/* The socket table's front (tracepoint object), and where each socket
	 * lives: placed as the kernel places them (bpf/socktab.bpf.h). */
	int front_fd;
	uint32_t front_slots, front_shift;
	uint8_t *slot_taken, *in_front;
	uint32_t n;
	struct tcpotel_sock *v;
	__u64 *k;
};

static __u64 sb_key(uint32_t i)
{
	/* Kernel pointers as keys: spread like slab addresses. */
	return 0xffff888000000000ULL + (uint64_t)i * 2048;
}

static void sb_fill(struct tcpotel_sock *s, uint32_t i, uint64_t add, uint64_t silent_since)
{
	bool client = i % 2 == 0;

	memset(s, 0, sizeof(*s));
	s->sock_id = i + 1;
	fake_tuple(&s->tuple, i / 64, client); /* a few peers, 64 sockets each */
	s->tgid = (uint32_t)getpid();
	s->netns = 4026531840u;
	strcpy(s->comm, "micro");
	s->role = client ? TCPOTEL_ROLE_CLIENT : TCPOTEL_ROLE_SERVER;
	s->flags = TCPOTEL_SOCK_HAS_TUPLE | TCPOTEL_SOCK_HAS_OWNER | TCPOTEL_SOCK_OPENED;
	s->bytes_sent = 1000 + add;
	s->bytes_received = 2000 + 2 * add;
	s->srtt_last_us = 40;
	s->srtt_min_us = 20;
	s->srtt_max_us = 90;
	s->srtt_count = 5 + (uint32_t)(add / 64);
	s->srtt_sum_us = 200 + add;
	s->srtt_hist[6] = s->srtt_count;
	s->done.count = add / 64;
	s->done.sum_ns = s->done.count * 300000;
	s->done.min_ns = s->done.max_ns = 300000;
	s->done.buckets[1] = (uint32_t)s->done.count;
	if (silent_since) {
		/* An exchange answered, then nothing: due to be ended for silence. */
		s->ex.start_ns = silent_since - 500000;
		s->ex.end_ns = silent_since;
		s->ex.request_bytes = 64;
		s->ex.response_bytes = 128;
		s->ex.phase = TCPOTEL_PHASE_RESPONSE;
	}
}

/* The front slot of a key, as front_slot() in bpf/socktab.bpf.h. */
static uint32_t sb_front_slot(const struct sweep_bench *b, __u64 key)
{
	return (uint32_t)((key * TCPOTEL_FRONT_HASH_MUL) >> b->front_shift);
}

/* Socket i's entry, where the kernel would keep it: in its front slot if that
 * was free when it was first seen, else in the hash. */
static int sb_write(struct sweep_bench *b, uint32_t i, const struct tcpotel_sock *s)
{
	struct tcpotel_sock_slot slot = { .key = sb_key(i), .sock = *s };
	uint32_t f;

	if (b->front_fd < 0)
		return 1;
	f = sb_front_slot(b, slot.key);
	if (b->in_front[i] == 0) {
		b->in_front[i] = b->slot_taken[f] ? 2 : 1;
		b->slot_taken[f] = 1;
	}
	if (b->in_front[i] == 2)
		return 1;
	return bpf_map_update_elem(b->front_fd, &f, &slot, BPF_ANY) ? -errno : 0;
}

/* Writes sockets idx[0..n) (every one: idx NULL) and queues them as changed. */
static int sb_touch(struct sweep_bench *b, const uint32_t *idx, uint32_t n, uint64_t add,
		    uint64_t silent_since)
{
	for (uint32_t base = 0; base < n; base += 1024) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		__u32 count = MIN(1024u, n - base), in_hash = 0;

		for (uint32_t j = 0; j < count; j++) {
			uint32_t i = idx ? idx[base + j] : base + j;
			int where;

			b->k[in_hash] = sb_key(i);
			sb_fill(&b->v[in_hash], i, add, silent_since);
			where = sb_write(b, i, &b->v[in_hash]);
			if (where < 0)
				return where;
			in_hash += where;
		}
		if (in_hash && bpf_map_update_batch(b->map_fd, b->k, b->v, &in_hash, &opts))
			return -errno;
		for (uint32_t j = 0; j < count; j++) {
			__u64 key = sb_key(idx ? idx[base + j] : base + j);

			if (bpf_map_update_elem(b->queue_fd, NULL, &key, BPF_ANY))
				return -errno;
		}
	}
	return 0;
}

static void sb_begin(void *ctx)
{
	capture__sweep_begin(ctx);
}

static int sb_collect(void *ctx, const uint64_t *keys, size_t n,
		      const struct tcpotel_snapshot **out)
{
	return capture__collect(ctx, keys, n, out);
}

static int sb_sweep(struct sweep_bench *b, double *ns)
{
	uint64_t t0 = now_ns();
	int err = sockets__sweep(b->ss, t0);

	*ns = (double)(now_ns() - t0);
	return err;
}

static void sb_free(struct sweep_bench *b)
{
	sockets__free(b->ss);
	metrics__free(b->m);
	procinfo__free(b->pi);
	capture__destroy(b->capture);
	free(b->v);
	free(b->k);
	free(b->slot_taken);
	free(b->in_front);
}

static int sb_init(struct sweep_bench *b, uint32_t n)
{
	struct capture_opts copts = {
		.backend = BACKEND_TRACEPOINT,
		.max_sockets = SWEEP_MAP_MAX,
		.self_tgid = (uint32_t)getpid(),
		.idle_timeout_ns = SWEEP_IDLE_NS,
	};
	struct procinfo_opts popts = { .proc_root = "/proc",
				       .max_entries = 64,
				       .revalidate_ms = 5000 };
	struct sockets_opts sopts = {
		.source = { .begin = sb_begin, .collect = sb_collect },
		.idle_timeout_ns = SWEEP_IDLE_NS,
	};

	memset(b, 0, sizeof(*b));
	b->n = n;
	b->capture = capture__load(&copts);
	if (!b->capture) {
		fprintf(stderr, "micro: cannot load the BPF programs (root needed): %s\n",
			strerror(errno));
		return -errno;
	}
	b->map_fd = capture__sockets_fd(b->capture);
	b->front_fd = capture__front_fd(b->capture);
	if (b->front_fd >= 0) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		if (bpf_obj_get_info_by_fd(b->front_fd, &info, &len))
			return -errno;
		b->front_slots = info.max_entries;
		b->front_shift = 64;
		for (uint32_t v = info.max_entries; v > 1; v /= 2)
			b->front_shift--;
		b->slot_taken = calloc(b->front_slots, 1);
		b->in_front = calloc(n, 1);
		if (!b->slot_taken || !b->in_front)
			return -ENOMEM;
	}
	b->queue_fd = capture__dirty_fd(b->capture);
	b->pi = procinfo__new(&popts);
	b->m = b->pi ? metrics__new(b->pi, 262144) : NULL;
	sopts.source.ctx = b->capture;
	b->ss = b->m ? sockets__new(&sopts, b->m, b->pi, NULL) : NULL;
	b->v = calloc(1024, sizeof(*b->v));
	b->k = calloc(1024, sizeof(*b->k));
	return b->ss && b->v && b->k ? 0 : -ENOMEM;
}

static int bench_sweep_size(uint32_t n)
{
	uint32_t n_some = n / 100, *some = calloc(n_some, sizeof(*some));
	double first, idle[REPS], changed[REPS], all[REPS], silent[REPS], ns;
	size_t heap_before, heap_after;
	struct sweep_bench b;
	uint64_t add = 0, exchanges;
	char name[64], note[128];
	int err;

	if (!some)
		return -ENOMEM;
	for (uint32_t i = 0; i < n_some; i++)
		some[i] = i * 100 + 7;
	err = sb_init(&b, n);
	if (err)
		goto out;
	/* Every socket new. */
	err = sb_touch(&b, NULL, n, 0, 0);
	heap_before = mallinfo2().uordblks;
	err = err ?: sb_sweep(&b, &first);
	heap_after = mallinfo2().uordblks;
	if (err)
		goto out;
	if (sockets__tracked(b.ss) != n) {
		fprintf(stderr, "micro: the sweep tracks %zu sockets, %u expected\n",
			sockets__tracked(b.ss), n);
		err = -EINVAL;
		goto out;
	}
	/* Nothing changed. */
	for (int r = 0; r < REPS && !err; r++)
		err = sb_sweep(&b, &idle[r]);
	/* 1 % of the sockets moved on; then every one. Interleaved. */
	for (int r = 0; r < REPS && !err; r++) {
		add += 128;
		err = sb_touch(&b, some, n_some, add, 0);
		err = err ?: sb_sweep(&b, &changed[r]);
		add += 128;
		err = err ?: sb_touch(&b, NULL, n, add, 0);
		err = err ?: sb_sweep(&b, &all[r]);
	}
	/* 1 % answered, and their silence is about to reach the idle timeout: one
	 * sweep learns of it, the one after it is due asks the kernel, which ends
	 * the exchanges. */
	for (int r = 0; r < REPS && !err; r++) {
		add += 128;
		err = sb_touch(&b, some, n_some, add,
			       now_ns() - SWEEP_IDLE_NS + 50 * NSEC_PER_MSEC);
		err = err ?: sb_sweep(&b, &ns);
		usleep(100 * 1000);
		exchanges = sockets__exchanges(b.ss);
		err = err ?: sb_sweep(&b, &silent[r]);
		if (!err && sockets__exchanges(b.ss) != exchanges + n_some) {
			fprintf(stderr,
				"micro: %" PRIu64 " exchanges ended for silence, %u expected\n",
				sockets__exchanges(b.ss) - exchanges, n_some);
			err = -EINVAL;
		}
	}
	if (err)
		goto out;
	snprintf(name, sizeof(name), "sweep_first_%uk", n / 1000);
	snprintf(note, sizeof(note), "every socket new: streams created; %.0f B of heap per socket",
		 (double)(heap_after - heap_before) / n);
	report(name, first / n, n, "socket", note);
	snprintf(name, sizeof(name), "sweep_idle_%uk", n / 1000);
	snprintf(note, sizeof(note), "nothing changed: %.1f us per sweep", best(idle, REPS) / 1e3);
	report(name, best(idle, REPS) / n, n, "socket", note);
	snprintf(name, sizeof(name), "sweep_changed_1pct_%uk", n / 1000);
	snprintf(note, sizeof(note), "1 %% of %uk changed (+128 B): %.2f ms per sweep", n / 1000,
		 best(changed, REPS) / 1e6);
	report(name, best(changed, REPS) / n_some, n_some, "socket", note);
	snprintf(name, sizeof(name), "sweep_changed_all_%uk", n / 1000);
	snprintf(note, sizeof(note), "every socket changed: %.2f ms per sweep",
		 best(all, REPS) / 1e6);
	report(name, best(all, REPS) / n, n, "socket", note);
	snprintf(name, sizeof(name), "sweep_silent_1pct_%uk", n / 1000);
	snprintf(note, sizeof(note), "1 %% of %uk silent, ended by the kernel: %.2f ms per sweep",
		 n / 1000, best(silent, REPS) / 1e6);
	report(name, best(silent, REPS) / n_some, n_some, "exchange", note);
out:
	sb_free(&b);
	free(some);
	return err;
}

static int bench_sweep(void)
{
	int err = bench_sweep_size(10000);

	return err ?: bench_sweep_size(quick ? 50000 : 100000);
}

/* ---- main -------------------------------------------------------------------------------- */

static const struct {
	const char *name;
	int (*fn)(void);
} benches[] = {
	{ "span", bench_spans },	{ "point", bench_points }, { "ids", bench_ids },
	{ "exchange", bench_exchange }, { "sweep", bench_sweep },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: micro [--json] [--quick] [span|point|ids|exchange|sweep]...\n"
		     "ns per item of the agent's user-space hot paths (sweep needs root)\n");
}

int main(int argc, char **argv)
{
	bool selected[ARRAY_SIZE(benches)] = { false };
	bool any = false;
	int failed = 0;

	log_set_level(LOG_ERROR);
	for (int i = 1; i < argc; i++) {
		bool known = false;

		if (!strcmp(argv[i], "--json")) {
			json_out = true;
			continue;
		}
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
			continue;
		}
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
		for (size_t j = 0; j < ARRAY_SIZE(benches); j++) {
			if (!strcmp(argv[i], benches[j].name)) {
				selected[j] = known = any = true;
			}
		}
		if (!known) {
			usage(stderr);
			return 2;
		}
	}
	for (size_t j = 0; j < ARRAY_SIZE(benches); j++) {
		int err;

		if (any && !selected[j])
			continue;
		err = benches[j].fn();
		if (err) {
			fprintf(stderr, "micro: %s: %s\n", benches[j].name, strerror(-err));
			failed++;
		}
	}
	return failed ? 1 : 0;
}
