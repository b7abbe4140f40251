// SPDX-License-Identifier: Apache-2.0
#include "capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
/* The generated skeleton casts away const on its embedded ELF bytes. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#include "tcpotel.skel.h"
#pragma GCC diagnostic pop

_Static_assert(sizeof(struct tcpotel_tuple) == 40, "ABI: tcpotel_tuple");
_Static_assert(sizeof(struct tcpotel_exchange) == 56, "ABI: tcpotel_exchange");
_Static_assert(sizeof(struct tcpotel_sock) % 8 == 0, "ABI: tcpotel_sock alignment");
_Static_assert(sizeof(struct tcpotel_exchange_record) % 8 == 0, "ABI: exchange record");
_Static_assert(sizeof(struct tcpotel_close_record) % 8 == 0, "ABI: close record");
_Static_assert(sizeof(struct tcpotel_snapshot) % 8 == 0, "ABI: snapshot");

/* The sweep's view of the loaded object: found once, after load. */
struct sweep_globals {
	uint32_t *gen; /* .data: sweep_gen */
	__u64 *keys; /* .bss: collect_keys[TCPOTEL_COLLECT_BATCH] */
	uint32_t *n_keys; /* .bss: collect_n_keys */
	const struct tcpotel_snapshot *out; /* .bss: collect_out[TCPOTEL_COLLECT_BATCH] */
	const uint32_t *n_out; /* .bss: collect_n_out */
	int collect_fd; /* the collect program */
};

struct capture {
	struct tcpotel_bpf *skel;
	enum capture_backend backend;
	struct sweep_globals sweep;
};

/* Per back-end, the hook programs it attaches; the state programs are shared. */
static const char *const tracepoint_progs[] = { "tp_sock_send_length", "tp_sock_recv_length",
						NULL };
static const char *const fentry_progs[] = { "fexit_tcp_sendmsg", "fentry_tcp_cleanup_rbuf", NULL };
static const char *const kprobe_progs[] = { "kprobe_tcp_sendmsg", "kretprobe_tcp_sendmsg",
					    "kprobe_tcp_cleanup_rbuf", NULL };
static const char *const state_progs[] = { "tp_inet_sock_set_state", "tp_tcp_destroy_sock",
					   "tp_tcp_retransmit_skb",  "tp_tcp_receive_reset",
					   "tp_tcp_send_reset",	     NULL };
/* Loaded with every back-end and never attached: run by capture__collect(). */
#define COLLECT_PROG "collect"

/* The hook programs of a back-end (NULL-terminated); the state programs otherwise. */
static const char *const *backend_programs(enum capture_backend backend)
{
	switch (backend) {
	case BACKEND_TRACEPOINT:
		return tracepoint_progs;
	case BACKEND_FENTRY:
		return fentry_progs;
	case BACKEND_KPROBE:
		return kprobe_progs;
	default:
		return state_progs;
	}
}

static bool name_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

/* Loads only the chosen back-end's hooks plus the shared state programs. */
static int select_programs(struct tcpotel_bpf *skel, enum capture_backend backend)
{
	const char *const *wanted = backend_programs(backend);
	struct bpf_program *prog;
	int err;

	bpf_object__for_each_program(prog, skel->obj) {
		const char *name = bpf_program__name(prog);
		bool collect = strcmp(name, COLLECT_PROG) == 0;
		bool on = collect || name_in(name, wanted) || name_in(name, state_progs);

		err = bpf_program__set_autoload(prog, on);
		if (err)
			return err;
		if (collect)
			bpf_program__set_autoattach(prog, false);
	}
	return 0;
}

/*
 * The length of the kernel's tick (a jiffy), which the coarse clocks advance
 * by: it turns TCP's busy time (jiffies) into nanoseconds. 0 when unknown.
 */
static uint32_t tick_ns(void)
{
	struct timespec res;

	if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) || res.tv_sec || res.tv_nsec <= 0)
		return 0;
	return (uint32_t)res.tv_nsec;
}

static void set_knobs(struct tcpotel_bpf *skel, const struct capture_opts *opts)
{
	struct tcpotel_bpf__rodata *ro = skel->rodata;

	ro->cfg_self_tgid = opts->self_tgid;
	ro->cfg_idle_timeout_ns = opts->idle_timeout_ns;
	ro->cfg_response_timeout_ns = opts->response_timeout_ns;
	ro->cfg_tick_ns = tick_ns();
	ro->cfg_exchange_records = opts->exchange_records;
	ro->cfg_sample_threshold = opts->sample_threshold;
	ro->cfg_netns_filter = opts->n_netns > 0;
	ro->cfg_n_exclude_ports = MIN(opts->n_exclude_ports, TCPOTEL_MAX_EXCLUDE_PORTS);
	for (size_t i = 0; i < ro->cfg_n_exclude_ports; i++)
		ro->cfg_exclude_ports[i] = opts->exclude_ports[i];
}

struct capture *capture__load(const struct capture_opts *opts)
{
	struct capture *c;
	int err;

	if (opts->n_exclude_ports > TCPOTEL_MAX_EXCLUDE_PORTS) {
		log_err("capture.exclude_ports: at most %d ports are supported",
			TCPOTEL_MAX_EXCLUDE_PORTS);
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->backend = opts->backend;
	c->skel = tcpotel_bpf__open();
	if (!c->skel) {
		err = -errno;
		log_err("cannot open the BPF object: %s", strerror(-err));
		goto err_free;
	}
	set_knobs(c->skel, opts);
	err = bpf_map__set_max_entries(c->skel->maps.sockets, opts->max_sockets);
	/* Each socket is queued once per sweep: room for a sweep's and the next's. */
	if (!err)
		err = bpf_map__set_max_entries(c->skel->maps.dirty, 2 * opts->max_sockets);
	if (!err)
		err = select_programs(c->skel, opts->backend);
	if (err)
		goto err_destroy;
	err = tcpotel_bpf__load(c->skel);
	if (err) {
		log_err("cannot load the %s back-end's BPF programs: %s",
			config_backend_name(opts->backend), strerror(-err));
		goto err_destroy;
	}
	c->sweep = (struct sweep_globals){
		.gen = &c->skel->data->sweep_gen,
		.keys = c->skel->bss->collect_keys,
		.n_keys = &c->skel->bss->collect_n_keys,
		.out = c->skel->bss->collect_out,
		.n_out = &c->skel->bss->collect_n_out,
		.collect_fd = bpf_program__fd(c->skel->progs.collect),
	};
	for (size_t i = 0; i < opts->n_netns; i++) {
		__u8 one = 1;

		err = bpf_map__update_elem(c->skel->maps.netns_allowed, &opts->netns[i],
					   sizeof(opts->netns[i]), &one, sizeof(one), BPF_ANY);
		if (err)
			goto err_destroy;
	}
	return c;

err_destroy:
	tcpotel_bpf__destroy(c->skel);
err_free:
	free(c);
	errno = -err;
	return NULL;
}

int capture__attach(struct capture *c)
{
	int err = tcpotel_bpf__attach(c->skel);

	if (err)
		log_err("cannot attach the %s back-end: %s", config_backend_name(c->backend),
			strerror(-err));
	return err;
}

void capture__destroy(struct capture *c)
{
	if (!c)
		return;
	tcpotel_bpf__destroy(c->skel);
	free(c);
}

int capture__sockets_fd(const struct capture *c)
{
	return bpf_map__fd(c->skel->maps.sockets);
}

int capture__dirty_fd(const struct capture *c)
{
	return bpf_map__fd(c->skel->maps.dirty);
}

int capture__events_fd(const struct capture *c)
{
	return bpf_map__fd(c->skel->maps.events);
}

int capture__add_listener(struct capture *c, uint32_t netns, uint16_t port)
{
	struct tcpotel_listen_key key = { .netns = netns, .port = port };
	struct tcpotel_listen val = {};

	return bpf_map__update_elem(c->skel->maps.listeners, &key, sizeof(key), &val, sizeof(val),
				    BPF_NOEXIST);
}

void capture__sweep_begin(struct capture *c)
{
	uint32_t gen = *c->sweep.gen + 1;

	/* Sockets keep the low 16 bits, and a new entry's are 0: never that. */
	if (!(uint16_t)gen)
		gen++;
	/* .data is mapped into the agent: the programs read it at their next call. */
	__atomic_store_n(c->sweep.gen, gen, __ATOMIC_RELEASE);
}

int capture__collect(struct capture *c, const uint64_t *keys, size_t n,
		     const struct tcpotel_snapshot **out)
{
	LIBBPF_OPTS(bpf_test_run_opts, run);
	const struct sweep_globals *g = &c->sweep;
	int err;

	if (n > TCPOTEL_COLLECT_BATCH)
		return -EINVAL;
	if (n)
		memcpy(g->keys, keys, n * sizeof(*keys));
	*g->n_keys = (uint32_t)n;
	err = bpf_prog_test_run_opts(g->collect_fd, &run);
	if (err)
		return -errno;
	*out = g->out;
	return (int)MIN(*g->n_out, (uint32_t)TCPOTEL_COLLECT_BATCH);
}

int capture__read_counters(const struct capture *c, uint64_t out[TCPOTEL_CNT__MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;
	int err = 0;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (uint32_t i = 0; i < TCPOTEL_CNT__MAX; i++) {
		out[i] = 0;
		err = bpf_map__lookup_elem(c->skel->maps.counters, &i, sizeof(i), vals,
					   sizeof(*vals) * (size_t)ncpu, 0);
		if (err)
			break;
		for (int cpu = 0; cpu < ncpu; cpu++)
			out[i] += vals[cpu];
	}
	free(vals);
	return err;
}

size_t capture__prog_ids(const struct capture *c, uint32_t *ids, size_t max, bool io_only)
{
	const char *const *io = backend_programs(c->backend);
	struct bpf_program *prog;
	size_t n = 0;

	bpf_object__for_each_program(prog, c->skel->obj) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(prog);

		if (fd < 0 || n >= max)
			continue;
		if (io_only && !name_in(bpf_program__name(prog), io))
			continue;
		if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
			ids[n++] = info.id;
	}
	return n;
}
