/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process information: pid -> OTLP resource (service.name and where it came
 * from, process.pid, process.executable.name, process.command_line,
 * host.name, container.id, k8s.pod.uid, plus the configured resource
 * attributes), with a bounded cache that notices
 * pid reuse and exec. Everything read from /proc is untrusted bytes:
 * lengths are bounded; the encoder repairs UTF-8 when it writes them.
 */
#ifndef TCPOTEL_PROCINFO_H
#define TCPOTEL_PROCINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otlp.h"

struct kv_list;
struct service_rule;

/* A resource, shared by reference: streams and pending spans hold refs. */
struct proc_resource {
	uint32_t pid;
	uint64_t start_time; /* /proc/PID/stat field 22; 0 when the process was gone */
	/* The values of these attributes, borrowed from attrs. */
	const char *service_name;
	const char *exe_name;
	const char *command_line; /* NULL unless service.command_line is on */
	const char *container_id; /* NULL outside containers */
	const char *host_name; /* host.name, "" when there is none */
	struct otlp_attr *attrs; /* ready to encode, service.name first */
	size_t n_attrs;
	unsigned refs; /* owned by procinfo; use procinfo__get/procinfo__put */
};

/* The pointers are borrowed: what they point at must outlive the procinfo. */
struct procinfo_opts {
	const char *proc_root; /* "/proc" (tests use a fake tree) */
	const char *host_name; /* NULL: gethostname(), unless resource.attributes has host.name */
	size_t max_entries; /* cache bound */
	uint64_t revalidate_ms; /* how long a cached entry is trusted without re-reading /proc */
	const struct service_rule *rules; /* service.rules */
	size_t n_rules;
	bool command_line; /* service.command_line */
	const struct kv_list *attributes; /* resource.attributes: added to every resource */
	/* The agent's own resource: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES. */
	const char *self_service_name;
	const struct kv_list *self_attributes;
};

struct procinfo;

struct procinfo *procinfo__new(const struct procinfo_opts *opts);
void procinfo__free(struct procinfo *pi);
/*
 * The resource of process `tgid`, taking a reference. `comm` (from the
 * kernel) names the process when /proc no longer has it, and a comm that
 * differs from the cached one (exec, pid reuse) forces a re-read.
 * Never NULL except when out of memory.
 */
struct proc_resource *procinfo__get(struct procinfo *pi, uint32_t tgid, const char *comm,
				    uint64_t now_ms);
/* The start of a process's environment as the kernel saw it (NUL-separated). */
struct procinfo_env {
	const char *data;
	size_t len;
	bool cut; /* the block goes on past len */
};

/*
 * procinfo__get for a process the kernel has just announced as new: a cached
 * entry for its pid is checked against /proc (it may be a previous process's,
 * the pid reused), and when /proc no longer has the process its
 * OTEL_SERVICE_NAME is taken from `env`. env NULL: plain procinfo__get.
 */
struct proc_resource *procinfo__get_env(struct procinfo *pi, uint32_t tgid, const char *comm,
					const struct procinfo_env *env, uint64_t now_ms);
void procinfo__put(struct procinfo *pi, struct proc_resource *res);
/* Another reference to a resource the caller already holds. */
struct proc_resource *procinfo__ref(struct proc_resource *res);
/*
 * A new resource with `res`'s attributes but process.pid and
 * process.command_line: what identifies the service instance rather than
 * the process (metrics.per_process: false). pid 0. NULL when out of memory.
 */
struct proc_resource *procinfo__without_process(struct procinfo *pi,
						const struct proc_resource *res);
/* Whether two resources have the same attributes, in the same order. */
bool procinfo_same_attrs(const struct proc_resource *a, const struct proc_resource *b);
/* The agent's own resource (OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES), borrowed. */
const struct proc_resource *procinfo__self(struct procinfo *pi);
size_t procinfo__cached(const struct procinfo *pi);

#endif
