// SPDX-License-Identifier: Apache-2.0
#include "capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "listeners.h"
#include "log.h"
/* The generated skeletons cast away const on their embedded ELF bytes. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#include "tcpotel_tp.skel.h"
#include "tcpotel_compat.skel.h"
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

/* The verifier's statistics (log level 4) take a few lines, but some kernels
 * (Debian's arm64 6.12) write more than 1 KiB there, and a log that does not
 * fit fails the load (ENOSPC). */
#define VERIFIER_LOG_SIZE 16384

/*
 * Two BPF objects, each with the shared programs (maps, state changes):
 * tcpotel_tp with the tracepoint back-end, which reads tcp_sock through the
 * bpf_rdonly_cast() kfunc (6.2+), and tcpotel_compat with the fentry and
 * kprobe back-ends, which use no kfunc. libbpf resolves every extern of an
 * object at load, programs left out included, and looks for a kfunc the
 * kernel lacks in module BTFs, which only CAP_SYS_ADMIN may list before 6.x:
 * one object for all would not load on 6.1 with the shipped capabilities.
 */
struct capture {
	void *skel; /* struct tcpotel_tp_bpf or struct tcpotel_compat_bpf */
	struct bpf_object_skeleton *skeleton;
	struct bpf_object *obj;
	struct bpf_map *sockets, *dirty, *events, *proc_events, *listeners, *netns_allowed,
		*counters;
	struct bpf_map *front; /* sock_front; NULL in the fentry/kprobe object */
	int *rings; /* the CPUs' ring buffers (events' inner maps), n_rings fds */
	uint32_t n_rings, ring_size;
	enum capture_backend backend;
	bool quiet;
	struct sweep_globals sweep;
	char (*logs)[VERIFIER_LOG_SIZE]; /* per program, with opts.verifier_stats */
};

/* Per back-end, the hook programs it attaches; every other program is shared. */
static const char *const tracepoint_progs[] = { "tp_sock_send_length", "tp_sock_recv_length",
						NULL };
static const char *const fentry_progs[] = { "fexit_tcp_sendmsg_locked", "fentry_tcp_cleanup_rbuf",
					    NULL };
static const char *const kprobe_progs[] = { "kprobe_release_sock", "kprobe_tcp_cleanup_rbuf",
					    NULL };
static const char *const no_progs[] = { NULL };
/* Loaded with every back-end and never attached: run by capture__collect(). */
#define COLLECT_PROG "collect"

const char *const *capture_backend_programs(enum capture_backend backend)
{
	switch (backend) {
	case BACKEND_TRACEPOINT:
		return tracepoint_progs;
	case BACKEND_FENTRY:
		return fentry_progs;
	case BACKEND_KPROBE:
		return kprobe_progs;
	default:
		return no_progs;
	}
}

static bool name_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

static bool other_backends_prog(const char *name, enum capture_backend backend)
{
	static const enum capture_backend all[] = { BACKEND_TRACEPOINT, BACKEND_FENTRY,
						    BACKEND_KPROBE };

	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		if (all[i] != backend && name_in(name, capture_backend_programs(all[i])))
			return true;
	return false;
}

/* Loads the chosen back-end's hooks and every shared program, nothing else. */
static int select_programs(struct bpf_object *obj, enum capture_backend backend)
{
	struct bpf_program *prog;
	int err;

	bpf_object__for_each_program(prog, obj) {
		const char *name = bpf_program__name(prog);

		err = bpf_program__set_autoload(prog, !other_backends_prog(name, backend));
		if (err)
			return err;
		if (strcmp(name, COLLECT_PROG) == 0)
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

/* Where global `name` of `size` bytes sits in the object's .rodata; -ENOENT
 * when it is not there with that size. */
static long rodata_offset(const struct btf *btf, const char *name, size_t size)
{
	int id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec;

	if (id < 0)
		return -ENOENT;
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *var = btf__type_by_id(btf, vs->type);

		if (strcmp(btf__name_by_offset(btf, var->name_off), name) == 0)
			return vs->size == size ? (long)vs->offset : -ENOENT;
	}
	return -ENOENT;
}

/* The load-time knobs of bpf/maps.bpf.c, by name: the same in both objects. */
static int set_knobs(struct bpf_object *obj, const struct capture_opts *opts)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, ".rodata");
	const struct btf *btf = bpf_object__btf(obj);
	uint32_t self_tgid = opts->self_tgid;
	uint64_t idle_ns = opts->idle_timeout_ns, threshold = opts->sample_threshold;
	uint64_t response_ns = opts->response_timeout_ns;
	uint32_t tick = tick_ns();
	uint8_t records = opts->exchange_records, netns_filter = opts->n_netns > 0;
	uint32_t n_ports = (uint32_t)MIN(opts->n_exclude_ports, TCPOTEL_MAX_EXCLUDE_PORTS);
	uint16_t ports[TCPOTEL_MAX_EXCLUDE_PORTS] = {};
	const struct {
		const char *name;
		const void *value;
		size_t size;
	} knobs[] = {
		{ "cfg_self_tgid", &self_tgid, sizeof(self_tgid) },
		{ "cfg_idle_timeout_ns", &idle_ns, sizeof(idle_ns) },
		{ "cfg_response_timeout_ns", &response_ns, sizeof(response_ns) },
		{ "cfg_tick_ns", &tick, sizeof(tick) },
		{ "cfg_exchange_records", &records, sizeof(records) },
		{ "cfg_sample_threshold", &threshold, sizeof(threshold) },
		{ "cfg_netns_filter", &netns_filter, sizeof(netns_filter) },
		{ "cfg_exclude_ports", ports, sizeof(ports) },
		{ "cfg_n_exclude_ports", &n_ports, sizeof(n_ports) },
	};
	const void *initial;
	size_t size = 0;
	char *data;
	int err = 0;

	initial = map && btf ? bpf_map__initial_value(map, &size) : NULL;
	if (!initial)
		return -ENOENT;
	data = malloc(size);
	if (!data)
		return -ENOMEM;
	memcpy(data, initial, size);
	for (uint32_t i = 0; i < n_ports; i++)
		ports[i] = opts->exclude_ports[i];
	for (size_t i = 0; i < ARRAY_SIZE(knobs) && !err; i++) {
		long off = rodata_offset(btf, knobs[i].name, knobs[i].size);

		if (off < 0 || (size_t)off + knobs[i].size > size) {
			log_err("the BPF object has no %zu-byte %s", knobs[i].size, knobs[i].name);
			err = -ENOENT;
			break;
		}
		memcpy(data + off, knobs[i].value, knobs[i].size);
	}
	if (!err)
		err = bpf_map__set_initial_value(map, data, size);
	free(data);
	return err;
}

/* Asks the verifier for its statistics of every program, into c->logs. */
static int keep_verifier_stats(struct capture *c)
{
	struct bpf_program *prog;
	size_t n = 0, i = 0;
	int err = 0;

	bpf_object__for_each_program(prog, c->obj)
		n++;
	c->logs = calloc(n ? n : 1, sizeof(*c->logs));
	if (!c->logs)
		return -ENOMEM;
	bpf_object__for_each_program(prog, c->obj) {
		err = bpf_program__set_log_level(prog, 4 /* BPF_LOG_STATS */);
		if (!err)
			err = bpf_program__set_log_buf(prog, c->logs[i++], VERIFIER_LOG_SIZE);
		if (err)
			break;
	}
	return err;
}

size_t capture__prog_stats(const struct capture *c, struct capture_prog_stats *out, size_t max)
{
	struct bpf_program *prog;
	size_t n = 0, i = 0;

	bpf_object__for_each_program(prog, c->obj) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(prog);
		const char *p;

		i++;
		if (fd < 0 || n >= max || bpf_obj_get_info_by_fd(fd, &info, &len))
			continue;
		out[n] = (struct capture_prog_stats){
			.name = bpf_program__name(prog),
			.verified_insns = info.verified_insns,
			.jited_bytes = info.jited_prog_len,
			.xlated_bytes = info.xlated_prog_len,
		};
		p = c->logs ? strstr(c->logs[i - 1], "processed ") : NULL;
		if (p)
			out[n].verified_insns = (uint32_t)strtoul(p + 10, NULL, 10);
		n++;
	}
	return n;
}

/*
 * Opens the object that holds the back-end's programs. CO-RE relocates
 * against the kernel's own BTF only, named as a custom path: for a type
 * missing there (the ___err flavour of tcp_retransmit_skb's record, on
 * kernels whose event has no err) libbpf would otherwise look in the module
 * BTFs, which only CAP_SYS_ADMIN may list, and fail the load without it.
 */
static int open_object(struct capture *c)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = "/sys/kernel/btf/vmlinux");

	if (c->backend == BACKEND_TRACEPOINT) {
		struct tcpotel_tp_bpf *skel = tcpotel_tp_bpf__open_opts(&opts);

		if (!skel)
			return -errno;
		c->skel = skel;
		c->skeleton = skel->skeleton;
		c->obj = skel->obj;
	} else {
		struct tcpotel_compat_bpf *skel = tcpotel_compat_bpf__open_opts(&opts);

		if (!skel)
			return -errno;
		c->skel = skel;
		c->skeleton = skel->skeleton;
		c->obj = skel->obj;
	}
	c->sockets = bpf_object__find_map_by_name(c->obj, "sockets");
	c->dirty = bpf_object__find_map_by_name(c->obj, "dirty");
	c->events = bpf_object__find_map_by_name(c->obj, "events");
	c->proc_events = bpf_object__find_map_by_name(c->obj, "proc_events");
	c->front = bpf_object__find_map_by_name(c->obj, "sock_front");
	c->listeners = bpf_object__find_map_by_name(c->obj, "listeners");
	c->netns_allowed = bpf_object__find_map_by_name(c->obj, "netns_allowed");
	c->counters = bpf_object__find_map_by_name(c->obj, "counters");
	if (!c->sockets || !c->dirty || !c->events || !c->proc_events || !c->listeners ||
	    !c->netns_allowed || !c->counters)
		return -ENOENT;
	return 0;
}

/*
 * The socket table's direct-mapped front (bpf/socktab.bpf.h; the tracepoint
 * object only): a quarter of capture.max_sockets, as a power of two, 256
 * slots at least. Sockets whose slot is taken fall back to the hash, which
 * holds capture.max_sockets on its own; the two hold that many together.
 */
static int size_front(struct capture *c, uint32_t max_sockets)
{
	struct tcpotel_tp_bpf *skel = c->skel;
	uint32_t slots = 256, shift = 64 - 8;

	if (c->backend != BACKEND_TRACEPOINT)
		return 0;
	while (slots < max_sockets / 4) {
		slots *= 2;
		shift--;
	}
	skel->rodata->cfg_front_shift = shift;
	skel->rodata->cfg_max_sockets = max_sockets;
	return bpf_map__set_max_entries(c->front, slots);
}

/*
 * One ring buffer per possible CPU (bpf/maps.bpf.h, events): RINGS_TOTAL
 * split among them, a power of two of RING_MIN at least. RING_MIN holds
 * about 1,700 exchange records: 170 ms of 10k a second on one CPU, where
 * the drain comes every 20 ms.
 */
#define RINGS_TOTAL (4u << 20)
#define RING_MIN    (256u << 10)

/* Creates the CPUs' rings; the first stands for all as events' inner map. */
static int create_rings(struct capture *c)
{
	int cpus = libbpf_num_possible_cpus();

	if (cpus <= 0)
		return cpus ? cpus : -EINVAL;
	c->n_rings = (uint32_t)cpus;
	c->ring_size = RING_MIN;
	while (c->ring_size < RINGS_TOTAL / c->n_rings)
		c->ring_size *= 2;
	c->rings = malloc(c->n_rings * sizeof(*c->rings));
	if (!c->rings)
		return -ENOMEM;
	for (uint32_t cpu = 0; cpu < c->n_rings; cpu++)
		c->rings[cpu] = -1;
	for (uint32_t cpu = 0; cpu < c->n_rings; cpu++) {
		c->rings[cpu] = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "tcpotel_records", 0, 0,
					       c->ring_size, NULL);
		if (c->rings[cpu] < 0)
			return -errno;
	}
	return bpf_map__set_max_entries(c->events, c->n_rings) ?:
		       bpf_map__set_inner_map_fd(c->events, c->rings[0]);
}

/* After load: each CPU's ring in its slot of events. */
static int place_rings(struct capture *c)
{
	for (uint32_t cpu = 0; cpu < c->n_rings; cpu++)
		if (bpf_map_update_elem(bpf_map__fd(c->events), &cpu, &c->rings[cpu], BPF_ANY))
			return -errno;
	return 0;
}

#define SWEEP_OF(s)                                                \
	((struct sweep_globals){                                   \
		.gen = &(s)->data->sweep_gen,                      \
		.keys = (s)->bss->collect_keys,                    \
		.n_keys = &(s)->bss->collect_n_keys,               \
		.out = (s)->bss->collect_out,                      \
		.n_out = &(s)->bss->collect_n_out,                 \
		.collect_fd = bpf_program__fd((s)->progs.collect), \
	})

/* The sweep's globals, where the loaded object (either) mapped them. */
static void find_sweep(struct capture *c)
{
	if (c->backend == BACKEND_TRACEPOINT)
		c->sweep = SWEEP_OF((struct tcpotel_tp_bpf *)c->skel);
	else
		c->sweep = SWEEP_OF((struct tcpotel_compat_bpf *)c->skel);
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
	if (opts->backend == BACKEND_AUTO) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->backend = opts->backend;
	c->quiet = opts->quiet;
	err = open_object(c);
	if (err) {
		log_err("cannot open the BPF object: %s", strerror(-err));
		goto err_destroy;
	}
	err = set_knobs(c->obj, opts);
	if (!err)
		err = bpf_map__set_max_entries(c->sockets, opts->max_sockets);
	if (!err)
		err = size_front(c, opts->max_sockets);
	if (!err) {
		err = create_rings(c);
		if (err)
			log_err("cannot create the record ring buffers (%u of %u KiB): %s",
				c->n_rings, c->ring_size >> 10, strerror(-err));
	}
	/* Each socket is queued once per sweep: room for a sweep's and the next's. */
	if (!err)
		err = bpf_map__set_max_entries(c->dirty, 2 * opts->max_sockets);
	if (!err)
		err = select_programs(c->obj, opts->backend);
	if (err)
		goto err_destroy;
	if (!err && opts->verifier_stats)
		err = keep_verifier_stats(c);
	if (err)
		goto err_destroy;
	err = bpf_object__load_skeleton(c->skeleton);
	if (err) {
		log_at(opts->quiet ? LOG_DEBUG : LOG_ERROR,
		       "cannot load the %s back-end's BPF programs: %s",
		       config_backend_name(opts->backend), strerror(-err));
		goto err_destroy;
	}
	find_sweep(c);
	err = place_rings(c);
	if (err)
		goto err_destroy;
	for (size_t i = 0; i < opts->n_netns; i++) {
		__u8 one = 1;

		err = bpf_map__update_elem(c->netns_allowed, &opts->netns[i],
					   sizeof(opts->netns[i]), &one, sizeof(one), BPF_ANY);
		if (err)
			goto err_destroy;
	}
	/* Best effort: a full listener table only loses the role of old connections. */
	for (size_t i = 0; i < opts->n_listeners; i++)
		capture__add_listener(c, opts->listeners[i].netns, opts->listeners[i].port);
	return c;

err_destroy:
	capture__destroy(c);
	errno = -err;
	return NULL;
}

int capture__attach(struct capture *c)
{
	int err = bpf_object__attach_skeleton(c->skeleton);

	if (err)
		log_at(c->quiet ? LOG_DEBUG : LOG_ERROR, "cannot attach the %s back-end: %s",
		       config_backend_name(c->backend), log_strerror(-err));
	return err;
}

enum capture_backend capture__backend(const struct capture *c)
{
	return c->backend;
}

void capture__destroy(struct capture *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; c->rings && i < c->n_rings; i++)
		if (c->rings[i] >= 0)
			close(c->rings[i]);
	free(c->rings);
	if (c->skeleton)
		bpf_object__destroy_skeleton(c->skeleton);
	free(c->skel);
	free(c->logs);
	free(c);
}

int capture__front_fd(const struct capture *c)
{
	return c->front ? bpf_map__fd(c->front) : -1;
}

int capture__sockets_fd(const struct capture *c)
{
	return bpf_map__fd(c->sockets);
}

int capture__dirty_fd(const struct capture *c)
{
	return bpf_map__fd(c->dirty);
}

struct ring_buffer *capture__records_new(const struct capture *c, ring_buffer_sample_fn fn,
					 void *ctx)
{
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(c->proc_events), fn, ctx, NULL);
	int err = 0;

	for (uint32_t i = 0; rb && i < c->n_rings && !err; i++)
		err = ring_buffer__add(rb, c->rings[i], fn, ctx);
	if (rb && err) {
		ring_buffer__free(rb);
		errno = -err;
		return NULL;
	}
	return rb;
}

int capture__add_listener(struct capture *c, uint32_t netns, uint16_t port)
{
	struct tcpotel_listen_key key = { .netns = netns, .port = port };
	struct tcpotel_listen val = {};

	return bpf_map__update_elem(c->listeners, &key, sizeof(key), &val, sizeof(val),
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
		err = bpf_map__lookup_elem(c->counters, &i, sizeof(i), vals,
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
	const char *const *io = capture_backend_programs(c->backend);
	struct bpf_program *prog;
	size_t n = 0;

	bpf_object__for_each_program(prog, c->obj) {
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
