// SPDX-License-Identifier: Apache-2.0
#include "agent.h"

#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "capture.h"
#include "exchange.h"
#include "graph.h"
#include "export.h"
#include "jbuf.h"
#include "listeners.h"
#include "log.h"
#include "metrics.h"
#include "otlp.h"
#include "privdrop.h"
#include "probe.h"
#include "procinfo.h"
#include "prom.h"
#include "sockets.h"
#include "traceid.h"
#include "ui.h"

/* How often the sockets that changed are read, and silent exchanges ended. */
#define SWEEP_INTERVAL_NS (1000 * NSEC_PER_MSEC)
/* How long one poll of the ring buffer may wait. */
#define POLL_TIMEOUT_MS	     20
#define MAX_STREAMS	     262144
#define MAX_SEEDED_LISTENERS 65536
/* How often the live map's JSON is rebuilt. */
#define GRAPH_INTERVAL_NS (2000 * NSEC_PER_MSEC)
/* Streams with no connection and no change this long are forgotten. */
#define STREAM_IDLE_NS (600ULL * NSEC_PER_SEC)

struct agent {
	const struct config *cfg;
	struct capture *capture;
	struct ring_buffer *rb;
	struct procinfo *pi;
	struct metrics *metrics;
	struct exchanges *exchanges;
	struct sockets *sockets;
	struct exporter *exporter;
	struct graph *graph;
	struct ui *ui;
	struct prom_writer *prom; /* the /metrics page, with the UI */
	uint64_t next_graph_ns;
	uint64_t next_sweep_ns;
	uint64_t next_metrics_ns;
	uint64_t bad_records;
	uint64_t counters_seen[TCPOTEL_CNT__MAX];
	uint64_t queue_dropped_seen[SIGNAL__COUNT];
};

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Reads a new process's resource now, while /proc still has it: the cache
 * keeps it for its sockets' records, which may come after it exited. */
static void note_process(struct agent *a, const struct tcpotel_process_record *r)
{
	char comm[TCPOTEL_COMM_LEN + 1];

	struct procinfo_env env = {
		.data = r->env,
		.len = MIN(r->env_len, (uint32_t)TCPOTEL_ENV_MAX),
		.cut = r->env_len >= TCPOTEL_ENV_MAX,
	};

	memcpy(comm, r->comm, TCPOTEL_COMM_LEN);
	comm[TCPOTEL_COMM_LEN] = '\0';
	procinfo__put(a->pi, procinfo__get_env(a->pi, r->tgid, comm, &env,
					       clock_ns(CLOCK_MONOTONIC) / NSEC_PER_MSEC));
}

static int on_record(void *ctx, void *data, size_t size)
{
	const struct tcpotel_record_hdr *hdr = data;
	struct agent *a = ctx;

	if (size < sizeof(*hdr) || hdr->size > size) {
		a->bad_records++;
		return 0;
	}
	switch (hdr->type) {
	case TCPOTEL_RECORD_EXCHANGE:
		if (hdr->size == sizeof(struct tcpotel_exchange_record)) {
			sockets__on_exchange(a->sockets, data);
			return 0;
		}
		break;
	case TCPOTEL_RECORD_CONNECT_FAILED:
		if (hdr->size == sizeof(struct tcpotel_exchange_record)) {
			sockets__on_connect_failed(a->sockets, data);
			return 0;
		}
		break;
	case TCPOTEL_RECORD_CLOSE:
		if (hdr->size == sizeof(struct tcpotel_close_record)) {
			sockets__on_close(a->sockets, data);
			return 0;
		}
		break;
	case TCPOTEL_RECORD_PROCESS:
		if (hdr->size == sizeof(struct tcpotel_process_record)) {
			note_process(a, data);
			return 0;
		}
		break;
	}
	a->bad_records++;
	log_ratelimited(LOG_WARN, 60000,
			"unknown ring-buffer record (type %u, %u bytes): left out "
			"(tcpotel.kernel.records.invalid)",
			hdr->type, hdr->size);
	return 0;
}

/* capture.netns: "/run/netns/NAME" (its inode) or an inode number. */
static int resolve_netns(const struct config *cfg, uint32_t *out)
{
	for (size_t i = 0; i < cfg->capture.n_netns; i++) {
		const char *v = cfg->capture.netns[i];
		char *end;
		unsigned long ino = strtoul(v, &end, 10);
		struct stat st;

		if (*v && !*end) {
			out[i] = (uint32_t)ino;
			continue;
		}
		if (stat(v, &st)) {
			int err = -errno;

			log_err("capture.netns: %s: %s", v, strerror(errno));
			return err;
		}
		out[i] = (uint32_t)st.st_ino;
	}
	return 0;
}

/* Listening ports of running processes, for the table at load (NULL: none). */
static struct listener *scan_listeners(size_t *n_out)
{
	struct listener *found = calloc(MAX_SEEDED_LISTENERS, sizeof(*found));
	int n;

	*n_out = 0;
	if (!found)
		return NULL;
	n = listeners_scan("/proc", found, MAX_SEEDED_LISTENERS);
	if (n < 0)
		log_warn("cannot list the listening ports of running processes: %s", strerror(-n));
	log_debug("%d listening ports found before start", n > 0 ? n : 0);
	*n_out = n > 0 ? (size_t)n : 0;
	return found;
}

/* exporter.* as the export thread takes it. */
static void exporter_opts_of(const struct config *cfg, struct exporter_opts *o)
{
	const typeof(cfg->exporter.otlp) *otlp = &cfg->exporter.otlp;

	*o = (struct exporter_opts){
		.endpoints = { [SIGNAL_METRICS] = otlp->metrics_endpoint,
			       [SIGNAL_TRACES] = otlp->traces_endpoint },
		.headers = { [SIGNAL_METRICS] = &otlp->metrics_headers,
			     [SIGNAL_TRACES] = &otlp->traces_headers },
		.gzip = otlp->compression == COMPRESSION_GZIP,
		.to_stdout = cfg->exporter.stdout,
		.timeout_ms = otlp->timeout_ms,
		.ca_file = otlp->tls.ca_file,
		.cert_file = otlp->tls.cert_file,
		.key_file = otlp->tls.key_file,
		.insecure_skip_verify = otlp->tls.insecure_skip_verify,
		.retry_initial_ms = otlp->retry.initial_interval_ms,
		.retry_max_ms = otlp->retry.max_interval_ms,
		.retry_max_elapsed_ms = otlp->retry.max_elapsed_time_ms,
		.queue_size = otlp->queue_size,
		.parallel_requests = otlp->parallel_requests,
	};
}

static bool ui_enabled(const struct config *cfg)
{
	return cfg->ui.listen && *cfg->ui.listen;
}

/* Exchanges go to user space one by one (the sampled ones) for spans and the live map. */
static bool exchange_records(const struct config *cfg)
{
	return cfg->spans.enabled || ui_enabled(cfg);
}

static int start_ui(struct agent *a)
{
	struct graph_opts gopts = {
		.max_nodes = a->cfg->ui.max_nodes,
		.max_edges = a->cfg->ui.max_edges,
	};

	if (!ui_enabled(a->cfg))
		return 0;
	a->graph = graph__new(&gopts);
	if (!a->graph)
		return -errno;
	/* Drawn from the sampled exchanges, scaled back up to every exchange. */
	graph__set_sampling(a->graph, a->cfg->spans.sampling_ratio);
	exchanges__set_graph(a->exchanges, a->graph);
	if (a->cfg->metrics.enabled) {
		a->prom = prom_writer__new();
		if (!a->prom)
			return -errno ?: -ENOMEM;
	}
	/* NULL: the page from beside the program, PREFIX/share/tcpotel/web, or built in. */
	a->ui = ui__start(a->cfg->ui.listen, NULL);
	return a->ui ? 0 : -errno;
}

/* The sweep reads the kernel's socket table through the collect program. */
static void sweep_begin(void *ctx)
{
	capture__sweep_begin(ctx);
}

static int sweep_collect(void *ctx, const uint64_t *keys, size_t n,
			 const struct tcpotel_snapshot **out)
{
	return capture__collect(ctx, keys, n, out);
}

enum capture_backend agent__backend(const struct agent *a)
{
	return capture__backend(a->capture);
}

const char *agent__ui_url(const struct agent *a)
{
	return a->ui ? ui__url(a->ui) : NULL;
}

struct agent *agent__start(const struct config *cfg)
{
	struct capture_opts copts = {
		.backend = cfg->capture.backend,
		.max_sockets = cfg->capture.max_sockets,
		.self_tgid = (uint32_t)getpid(),
		.exchange_records = exchange_records(cfg),
		.sample_threshold = traceid_threshold(cfg->spans.sampling_ratio),
		.idle_timeout_ns = cfg->spans.idle_timeout_ms * NSEC_PER_MSEC,
		.response_timeout_ns = cfg->spans.response_timeout_ms * NSEC_PER_MSEC,
		.exclude_ports = cfg->capture.exclude_ports,
		.n_exclude_ports = cfg->capture.n_exclude_ports,
		.n_netns = cfg->capture.n_netns,
	};
	struct procinfo_opts popts = {
		.proc_root = "/proc",
		.max_entries = 8192,
		.revalidate_ms = 5000,
		.rules = cfg->service.rules,
		.n_rules = cfg->service.n_rules,
		.command_line = cfg->service.command_line,
		.attributes = &cfg->resource.attributes,
		.self_service_name = cfg->self.service_name,
		.self_attributes = &cfg->self.attributes,
	};
	struct sockets_opts sopts = {
		.source = { .begin = sweep_begin, .collect = sweep_collect },
		.idle_timeout_ns = cfg->spans.idle_timeout_ms * NSEC_PER_MSEC,
		.response_timeout_ns = cfg->spans.response_timeout_ms * NSEC_PER_MSEC,
	};
	struct exchanges_opts xopts = {
		.spans = cfg->spans.enabled,
		.sampling_ratio = cfg->spans.sampling_ratio,
		.external_clients = &cfg->spans.external_clients,
		.internal_networks = &cfg->spans.internal_networks,
	};
	struct exporter_opts eopts;
	struct listener *listeners = NULL;
	uint32_t *netns = NULL;
	struct agent *a;
	int err = -ENOMEM;

	a = calloc(1, sizeof(*a));
	if (!a)
		goto fail;
	a->cfg = cfg;
	if (cfg->capture.n_netns) {
		netns = calloc(cfg->capture.n_netns, sizeof(*netns));
		if (!netns)
			goto fail;
		err = resolve_netns(cfg, netns);
		if (err)
			goto fail;
		copts.netns = netns;
	}
	a->pi = procinfo__new(&popts);
	a->metrics = a->pi ? metrics__new(a->pi, MAX_STREAMS) : NULL;
	if (!a->metrics)
		goto fail_errno;
	metrics__set_per_process(a->metrics, cfg->metrics.per_process);
	listeners = scan_listeners(&copts.n_listeners);
	copts.listeners = listeners;
	/* Loaded and attached: the back-end is chosen by proof. */
	a->capture = probe_capture(&copts, NULL, 0);
	if (!a->capture)
		goto fail_errno;
	a->rb = capture__records_new(a->capture, on_record, a);
	if (!a->rb)
		goto fail_errno;
	/* Before any thread starts: capabilities are per thread, inherited. */
	privdrop_after_attach(capture__sockets_fd(a->capture));
	exporter_opts_of(cfg, &eopts);
	a->exporter = exporter__start(&eopts);
	if (!a->exporter)
		goto fail_errno;
	a->exchanges = exchanges__new(&xopts, a->pi, a->exporter);
	if (!a->exchanges)
		goto fail_errno;
	sopts.source.ctx = a->capture;
	a->sockets = sockets__new(&sopts, a->metrics, a->pi, a->exchanges);
	if (!a->sockets)
		goto fail_errno;
	err = start_ui(a);
	if (err)
		goto fail;
	free(listeners);
	free(netns);
	return a;

fail_errno:
	err = -errno ?: -ENOMEM;
fail:
	free(listeners);
	free(netns);
	agent__free(a);
	errno = -err;
	return NULL;
}

/* The live map's counters, read on the thread that owns it (this one: see graph.h). */
static void collect_map(const struct graph *g, struct self_stats *st)
{
	struct graph_stats gs;

	graph__stats(g, &gs);
	st->map = true;
	st->map_halves = gs.exchanges;
	st->map_failed_connections = gs.failed_connections;
	st->map_paired = gs.paired;
	st->map_unpaired = gs.unpaired;
	st->map_pending = gs.pending;
	st->map_pending_overflow = gs.pending_overflow;
	st->map_dropped[SELF_MAP_NODE_LIMIT] = gs.nodes_dropped;
	st->map_dropped[SELF_MAP_EDGE_LIMIT] = gs.edges_dropped;
	st->map_dropped[SELF_MAP_DUPLICATE] = gs.duplicates;
	st->map_nodes = gs.nodes;
	st->map_edges = gs.edges;
}

static void collect_self(struct agent *a, struct self_stats *st)
{
	struct exporter_stats es;
	struct exchange_stats xs;

	memset(st, 0, sizeof(*st));
	capture__read_counters(a->capture, st->kernel_counters);
	st->records_invalid = a->bad_records;
	exporter__stats(a->exporter, &es);
	exchanges__stats(a->exchanges, &xs);
	st->sockets_tracked = sockets__tracked(a->sockets);
	st->sockets_retired = sockets__retired(a->sockets);
	st->exchanges = sockets__exchanges(a->sockets);
	st->spans_sampled_out = st->kernel_counters[TCPOTEL_CNT_SAMPLED_OUT];
	st->spans_dropped = xs.dropped;
	st->spans_queued = xs.spans;
	for (int i = 0; i < SIGNAL__COUNT; i++) {
		st->sent_items[i] = es.sent_items[i];
		st->dropped_items[i] = es.dropped_items[i];
		st->rejected_items[i] = es.rejected_items[i];
		st->sent_batches[i] = es.sent_batches[i];
		st->sent_bytes[i] = es.bytes_sent[i];
	}
	st->export_failures = es.failed_requests;
	st->export_retries = es.retries;
	st->queue_depth = es.queue_depth;
	st->streams = metrics__streams(a->metrics);
	st->streams_dropped = metrics__streams_dropped(a->metrics);
	if (a->graph)
		collect_map(a->graph, st);
}

/* The same store, time and health as the body just exported, as the /metrics page. */
static void publish_prometheus(struct agent *a, uint64_t now_unix_ns, const struct self_stats *st)
{
	const char *text;
	size_t len;

	metrics__encode(a->metrics, prom_writer__emitter(a->prom), now_unix_ns, st);
	text = prom_writer__text(a->prom, &len);
	if (text)
		ui__publish_metrics(a->ui, text, len);
}

static void export_metrics(struct agent *a)
{
	uint64_t now = clock_ns(CLOCK_REALTIME);
	struct otlp_json_emitter json;
	struct self_stats st;
	struct jbuf body;
	size_t points;

	collect_self(a, &st);
	jbuf_init(&body);
	otlp_json_emitter_init(&json, &body);
	points = metrics__encode(a->metrics, &json.emitter, now, &st);
	if (a->ui && a->prom)
		publish_prometheus(a, now, &st);
	if (body.failed) {
		log_err("out of memory encoding %zu metric points: dropped", points);
		jbuf_free(&body);
		return;
	}
	exporter__submit(a->exporter, SIGNAL_METRICS, body.data, body.len, (uint32_t)points);
}

/* The export queue is full when the collector is away or slower than the
 * agent makes data: the oldest bodies go first (refusals are logged by the exporter). */
static void warn_queue_drops(struct agent *a)
{
	struct exporter_stats es;
	uint64_t spans, points;

	exporter__stats(a->exporter, &es);
	spans = es.queue_dropped_items[SIGNAL_TRACES] - a->queue_dropped_seen[SIGNAL_TRACES];
	points = es.queue_dropped_items[SIGNAL_METRICS] - a->queue_dropped_seen[SIGNAL_METRICS];
	if (spans || points)
		log_ratelimited(
			LOG_WARN, 60000,
			"export queue full (exporter.otlp.queue_size %u bodies, at most %u MiB): "
			"oldest %" PRIu64 " spans and %" PRIu64
			" metric points dropped (tcpotel.export.dropped)",
			a->cfg->exporter.otlp.queue_size, EXPORT_QUEUE_MAX_BYTES >> 20, spans,
			points);
	memcpy(a->queue_dropped_seen, es.queue_dropped_items, sizeof(a->queue_dropped_seen));
}

/* Says, at most once a minute each, when data had to be left out. */
static void warn_losses(struct agent *a)
{
	uint64_t c[TCPOTEL_CNT__MAX];
	uint64_t untracked, lost;

	warn_queue_drops(a);
	if (capture__read_counters(a->capture, c))
		return;
	untracked = c[TCPOTEL_CNT_SOCK_UNTRACKED] - a->counters_seen[TCPOTEL_CNT_SOCK_UNTRACKED];
	lost = c[TCPOTEL_CNT_RINGBUF_LOST] - a->counters_seen[TCPOTEL_CNT_RINGBUF_LOST];
	if (untracked)
		log_ratelimited(LOG_WARN, 60000,
				"socket table full (capture.max_sockets: %u): %" PRIu64
				" sockets not tracked (%" PRIu64
				" in all, tcpotel.sockets.untracked)",
				a->cfg->capture.max_sockets, untracked,
				c[TCPOTEL_CNT_SOCK_UNTRACKED]);
	if (lost)
		log_ratelimited(LOG_WARN, 60000,
				"ring buffer full: %" PRIu64 " records lost (%" PRIu64
				" in all, tcpotel.kernel.records.lost)",
				lost, c[TCPOTEL_CNT_RINGBUF_LOST]);
	memcpy(a->counters_seen, c, sizeof(c));
}

/* The host's addresses (in the agent's network namespace), so that the map
 * never calls a peer at one of them "outside this host". */
static void graph_local_addrs(struct agent *a)
{
	struct graph_addr addrs[GRAPH_MAX_LOCAL_ADDRS];
	struct ifaddrs *list, *i;
	size_t n = 0;

	if (getifaddrs(&list)) {
		log_ratelimited(LOG_WARN, 600000, "cannot list this host's addresses: %s",
				strerror(errno));
		return;
	}
	for (i = list; i && n < ARRAY_SIZE(addrs); i = i->ifa_next) {
		const struct sockaddr *sa = i->ifa_addr;

		if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
			continue;
		memset(&addrs[n], 0, sizeof(addrs[n]));
		addrs[n].family = sa->sa_family;
		if (sa->sa_family == AF_INET)
			memcpy(addrs[n].addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		else
			memcpy(addrs[n].addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		n++;
	}
	freeifaddrs(list);
	graph__set_local_addrs(a->graph, addrs, n);
}

/* One pass: records, then the periodic sweep, spans and metrics when due. */
static void tick(struct agent *a, bool final)
{
	uint64_t now;

	ring_buffer__consume(a->rb);
	now = clock_ns(CLOCK_MONOTONIC);
	if (final || now >= a->next_sweep_ns) {
		sockets__sweep(a->sockets, now);
		/* The exchanges the sweep ended for silence go out with this flush. */
		ring_buffer__consume(a->rb);
		warn_losses(a);
		a->next_sweep_ns = now + SWEEP_INTERVAL_NS;
	}
	exchanges__flush(a->exchanges, now, final);
	if (a->ui && now >= a->next_graph_ns) {
		struct jbuf json;

		jbuf_init(&json);
		graph_local_addrs(a);
		if (graph__render_json(a->graph, &json, now) == 0 && !json.failed)
			ui__publish_graph(a->ui, json.data, json.len);
		jbuf_free(&json);
		a->next_graph_ns = now + GRAPH_INTERVAL_NS;
	}
	if (a->cfg->metrics.enabled && (final || now >= a->next_metrics_ns)) {
		export_metrics(a);
		metrics__evict_idle(a->metrics, clock_ns(CLOCK_REALTIME), STREAM_IDLE_NS);
		a->next_metrics_ns = now + a->cfg->metrics.interval_ms * NSEC_PER_MSEC;
	}
}

int agent__run(struct agent *a, volatile sig_atomic_t *stop)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);

	a->next_sweep_ns = now + SWEEP_INTERVAL_NS;
	a->next_metrics_ns = now + a->cfg->metrics.interval_ms * NSEC_PER_MSEC;
	while (!*stop) {
		/* Only waits (an epoll fd polls as readable when a ring is): tick()
		 * reads the rings in their order, new processes first. */
		struct pollfd ready = { .fd = ring_buffer__epoll_fd(a->rb), .events = POLLIN };

		if (poll(&ready, 1, POLL_TIMEOUT_MS) < 0 && errno != EINTR) {
			int err = -errno;

			log_err("cannot wait for the ring buffers: %s", strerror(errno));
			return err;
		}
		tick(a, false);
	}
	log_info("stopping: flushing within %" PRIu64 " ms", a->cfg->exporter.otlp.timeout_ms);
	tick(a, true);
	exporter__stop(a->exporter, clock_ns(CLOCK_MONOTONIC) / NSEC_PER_MSEC +
					    a->cfg->exporter.otlp.timeout_ms);
	a->exporter = NULL;
	return 0;
}

void agent__free(struct agent *a)
{
	if (!a)
		return;
	ui__stop(a->ui);
	prom_writer__free(a->prom);
	ring_buffer__free(a->rb);
	capture__destroy(a->capture);
	sockets__free(a->sockets);
	exchanges__free(a->exchanges);
	exporter__stop(a->exporter, 0);
	graph__free(a->graph);
	metrics__free(a->metrics);
	procinfo__free(a->pi);
	free(a);
}
