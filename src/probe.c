// SPDX-License-Identifier: Apache-2.0
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "capture.h"
#include "log.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static bool cap_has(const struct __user_cap_data_struct *data, int cap)
{
	return data[cap / 32].effective & (1U << (cap % 32));
}

int probe_privileges(char *why, size_t size)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};
	static const struct {
		int cap;
		const char *name;
	} needed[] = {
		{ CAP_BPF, "CAP_BPF" },
		{ CAP_PERFMON, "CAP_PERFMON" },
	};
	char missing[128] = "";

	if (syscall(SYS_capget, &hdr, data)) {
		snprintf(why, size, "cannot read the process capabilities: %s", strerror(errno));
		return -errno;
	}
	if (cap_has(data, CAP_SYS_ADMIN))
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(needed); i++) {
		if (cap_has(data, needed[i].cap))
			continue;
		if (missing[0])
			strncat(missing, ", ", sizeof(missing) - strlen(missing) - 1);
		strncat(missing, needed[i].name, sizeof(missing) - strlen(missing) - 1);
	}
	if (!missing[0])
		return 0;
	snprintf(why, size,
		 "tcpotel needs root, or the capabilities CAP_BPF and CAP_PERFMON; "
		 "missing: %s (run it as root, or grant them: "
		 "setcap cap_bpf,cap_perfmon+ep tcpotel)",
		 missing);
	return -EPERM;
}

int probe_kernel(char *why, size_t size)
{
	struct utsname u = {};
	int err;

	uname(&u);
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		err = -errno;
		snprintf(
			why, size,
			"this kernel (%s) has no BTF (/sys/kernel/btf/vmlinux: %s): tcpotel needs a "
			"kernel built with CONFIG_DEBUG_INFO_BTF=y",
			u.release, strerror(-err));
		return err;
	}
	/* bpf(2) itself: a seccomp filter (a container runtime's default profile)
	 * refuses it with ENOSYS or EPERM, which would read as a missing map type. */
	err = bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 4, 1, NULL);
	if (err < 0) {
		err = -errno;
		snprintf(why, size,
			 "bpf(2) is refused here (%s): a seccomp filter (a container runtime's "
			 "default profile: run unconfined), missing privileges (CAP_BPF), or a "
			 "kernel (%s) without BPF",
			 strerror(-err), u.release);
		return err;
	}
	close(err);
	/* The ring buffer (5.8) is what every back-end sends records through. */
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) != 1) {
		snprintf(
			why, size,
			"this kernel (%s) has no BPF ring buffer: tcpotel needs Linux 5.8 or later",
			u.release);
		return -ENOTSUP;
	}
	return 0;
}

/* The smallest valid program: r0 = 0; exit. */
static const struct bpf_insn return_zero[] = {
	{ .code = 0xb7, .dst_reg = 0, .imm = 0 }, /* BPF_ALU64 | BPF_MOV | BPF_K */
	{ .code = 0x95 }, /* BPF_JMP | BPF_EXIT */
};

static int prog_load(enum bpf_prog_type type, const struct bpf_prog_load_opts *opts)
{
	int fd = bpf_prog_load(type, NULL, "GPL", return_zero, ARRAY_SIZE(return_zero), opts);

	return fd < 0 ? -errno : fd;
}

static int probe_tracepoint(char *why, size_t size)
{
	static const char *const tps[] = { "sock_send_length", "sock_recv_length",
					   "inet_sock_set_state" };
	int prog, link, err = 0;

	prog = prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL);
	if (prog < 0) {
		snprintf(why, size, "raw tracepoint program refused at load (%s)", strerror(-prog));
		return prog;
	}
	for (size_t i = 0; i < ARRAY_SIZE(tps) && !err; i++) {
		link = bpf_raw_tracepoint_open(tps[i], prog);
		if (link < 0) {
			err = -errno;
			snprintf(why, size, "raw tracepoint %s cannot attach (%s)%s", tps[i],
				 strerror(errno),
				 errno == ENOENT ? ": the kernel is older than 6.3" : "");
		} else {
			close(link);
		}
	}
	close(prog);
	return err;
}

/* The kernel's ENOTSUPP, which user space's errno.h does not have. */
#define KERNEL_ENOTSUPP 524

static int probe_fentry(char *why, size_t size)
{
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FEXIT);
	struct btf *vmlinux = btf__load_vmlinux_btf();
	int id, prog, link;

	if (!vmlinux) {
		snprintf(why, size, "no kernel BTF (/sys/kernel/btf/vmlinux): %s", strerror(errno));
		return -ENOENT;
	}
	id = btf__find_by_name_kind(vmlinux, "tcp_sendmsg_locked", BTF_KIND_FUNC);
	btf__free(vmlinux);
	if (id < 0) {
		snprintf(why, size, "tcp_sendmsg_locked is not in the kernel BTF");
		return -ENOENT;
	}
	opts.attach_btf_id = id;
	prog = prog_load(BPF_PROG_TYPE_TRACING, &opts);
	if (prog < 0) {
		snprintf(why, size, "fexit program refused at load (%s)%s", log_strerror(-prog),
			 prog == -EPERM || prog == -KERNEL_ENOTSUPP || prog == -EOPNOTSUPP ?
				 ": this kernel has no BPF trampolines" :
				 "");
		return prog;
	}
	link = bpf_link_create(prog, 0, BPF_TRACE_FEXIT, NULL);
	if (link < 0) {
		int err = -errno;

		/* Loaded but not attached: arm64 before 6.4 has BPF trampolines but
		 * not the ftrace direct calls that attach them to kernel functions. */
		snprintf(why, size, "fexit tcp_sendmsg_locked cannot attach (%s)%s",
			 log_strerror(-err),
			 err == -KERNEL_ENOTSUPP || err == -EOPNOTSUPP ?
				 ": this kernel has no BPF trampolines on kernel functions "
				 "(ftrace direct calls: x86-64 from 5.5, arm64 from 6.4)" :
				 "");
		close(prog);
		return err;
	}
	close(link);
	close(prog);
	return 0;
}

static int kprobe_pmu_type(void)
{
	char buf[32] = "";
	int fd, n;

	fd = open("/sys/bus/event_source/devices/kprobe/type", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : -EINVAL;
}

/*
 * Whether a perf event is refused for want of CAP_SYS_ADMIN: above 2
 * (Debian's kernels: 3), kernel.perf_event_paranoid asks for it instead of
 * CAP_PERFMON.
 */
static bool perf_events_need_sys_admin(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};
	char buf[16] = "";
	int fd, n;

	if (syscall(SYS_capget, &hdr, data) || cap_has(data, CAP_SYS_ADMIN))
		return false;
	fd = open("/proc/sys/kernel/perf_event_paranoid", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && atoi(buf) > 2;
}

static int probe_kprobe(char *why, size_t size)
{
	struct perf_event_attr attr = {};
	int type, prog, pfd, err = 0;

	type = kprobe_pmu_type();
	if (type < 0) {
		snprintf(why, size,
			 "no kprobe event source (/sys/bus/event_source/devices/kprobe: %s): "
			 "the kernel is built without CONFIG_KPROBES",
			 strerror(-type));
		return type;
	}
	prog = prog_load(BPF_PROG_TYPE_KPROBE, NULL);
	if (prog < 0) {
		snprintf(why, size, "kprobe program refused at load (%s)", strerror(-prog));
		return prog;
	}
	attr.size = sizeof(attr);
	attr.type = type;
	attr.config1 = (__u64)(unsigned long)"tcp_sendmsg";
	pfd = syscall(SYS_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
	if (pfd < 0 || ioctl(pfd, PERF_EVENT_IOC_SET_BPF, prog) < 0) {
		err = -errno;
		snprintf(why, size, "kprobe on tcp_sendmsg cannot attach (%s)%s", strerror(-err),
			 err == -EACCES && perf_events_need_sys_admin() ?
				 ": kernel.perf_event_paranoid is above 2, where a perf event "
				 "takes CAP_SYS_ADMIN (sysctl kernel.perf_event_paranoid=2 lets "
				 "CAP_PERFMON do)" :
				 "");
	}
	if (pfd >= 0)
		close(pfd);
	close(prog);
	return err;
}

int probe_backend(enum capture_backend backend, char *why, size_t size)
{
	void *old = log_mute_libbpf();
	int err;

	switch (backend) {
	case BACKEND_TRACEPOINT:
		err = probe_tracepoint(why, size);
		break;
	case BACKEND_FENTRY:
		err = probe_fentry(why, size);
		break;
	case BACKEND_KPROBE:
		err = probe_kprobe(why, size);
		break;
	default:
		snprintf(why, size, "not a back-end");
		err = -EINVAL;
	}
	log_restore_libbpf(old);
	return err;
}

/* The order in which auto tries the back-ends: the cheapest and most exact first. */
static const enum capture_backend auto_order[] = { BACKEND_TRACEPOINT, BACKEND_FENTRY,
						   BACKEND_KPROBE };

/* Why a back-end whose real programs failed cannot be used: the first check
 * of probe_backend() that fails names the cause; otherwise the loader's error. */
static void explain(enum capture_backend backend, bool loaded, int err, bool forced, char *why,
		    size_t size)
{
	if (probe_backend(backend, why, size))
		return;
	snprintf(why, size, "its BPF programs cannot be %s here (%s): %s",
		 loaded ? "attached" : "loaded", strerror(-err),
		 forced ? "libbpf's lines above say why" :
			  "--log-level debug shows libbpf's reasons");
}

struct capture *probe_capture(const struct capture_opts *opts, const enum capture_backend *order,
			      size_t n_order)
{
	bool forced = opts->backend != BACKEND_AUTO;
	char why[512], list[128] = "", tried[128] = "";
	int err = -ENOTSUP;

	if (forced) {
		order = &opts->backend;
		n_order = 1;
	} else if (!order) {
		order = auto_order;
		n_order = ARRAY_SIZE(auto_order);
	}
	/* "tracepoint, fentry, kprobe" and "tracepoint, fentry and kprobe" */
	for (size_t i = 0; i < n_order; i++) {
		const char *name = config_backend_name(order[i]);

		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
			 name);
		snprintf(tried + strlen(tried), sizeof(tried) - strlen(tried), "%s%s",
			 i == 0 ? "" : (i + 1 == n_order ? " and " : ", "), name);
	}
	for (size_t i = 0; i < n_order; i++) {
		const char *name = config_backend_name(order[i]);
		struct capture_opts o = *opts;
		void *old = forced ? NULL : log_demote_libbpf();
		struct capture *c;
		bool loaded;

		o.backend = order[i];
		o.quiet = !forced;
		c = capture__load(&o);
		loaded = c != NULL;
		err = c ? capture__attach(c) : -errno;
		if (!forced)
			log_restore_libbpf(old);
		if (!err) {
			if (forced)
				log_info("capture back-end: %s (forced by capture.backend)", name);
			else
				log_info(
					"capture back-end: %s (auto: the first that loads and attaches, "
					"in the order %s)",
					name, list);
			return c;
		}
		capture__destroy(c);
		explain(order[i], loaded, err, forced, why, sizeof(why));
		if (forced) {
			log_err("capture.backend %s cannot be used on this kernel: %s", name, why);
			errno = -err;
			return NULL;
		}
		log_info("capture back-end %s: unavailable: %s", name, why);
	}
	log_err("no capture back-end can attach on this kernel (%s were tried; see the lines above)",
		tried);
	errno = ENOTSUP;
	return NULL;
}
