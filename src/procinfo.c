// SPDX-License-Identifier: Apache-2.0
/*
 * pid -> resource, with a bounded LRU cache.
 *
 * A cache entry holds one reference to its resource; every procinfo__get
 * hands the caller another. An entry that is evicted, or whose resource is
 * replaced (pid reuse, exec), drops the cache's reference only: the resource
 * lives until its last holder calls procinfo__put. Everything here (get,
 * put, ref, self, cached, free) belongs to one thread, the drain thread,
 * where the streams and the pending spans that hold references live: the
 * counts are plain.
 *
 * Identity of a process: /proc/PID/stat's start time (field 22) and comm.
 * A cached entry is trusted for revalidate_ms, and as long as the kernel's
 * comm for the event is one we have seen for it; otherwise stat is read
 * again: same start time and comm -> still the same process; anything else
 * -> a new resource replaces the old one.
 */
#include "procinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "log.h"
#include "util.h"

#define COMM_LEN	      16 /* the kernel's TASK_COMM_LEN, NUL included */
#define NAME_BYTES	      256 /* executable and service names, NUL included */
#define STAT_MAX	      4096
#define CMDLINE_MAX	      4096
#define ENVIRON_MAX	      (64 * 1024)
#define CGROUP_MAX	      (16 * 1024)
#define N_ALIASES	      4
#define DEFAULT_MAX_ENTRIES   4096
#define DEFAULT_REVALIDATE_MS 5000
#define SELF_SERVICE_NAME     "tcpotel"
/* Where a process's service.name came from (docs/configuration.md). */
#define SOURCE_KEY "tcpotel.service.name.source"

/* A resource and the strings it owns; callers only see `pub`. */
struct res {
	struct proc_resource pub;
	char **owned;
	size_t n_owned, cap_owned;
	size_t cap_attrs;
	bool oom;
};

struct entry {
	uint32_t tgid;
	struct res *res;
	char comm[COMM_LEN]; /* /proc/PID/stat comm, or the kernel's when /proc had nothing */
	/* Other comms seen for this process (thread names), accepted without a re-read. */
	char aliases[N_ALIASES][COMM_LEN];
	unsigned alias_next;
	uint64_t checked_ms;
	struct entry *hnext;
	struct entry *prev, *next; /* LRU list, most recent first */
};

struct procinfo {
	struct procinfo_opts opts; /* proc_root and host_name: see below */
	char *proc_root;
	char *host_name; /* NULL: none known */
	size_t max_entries;
	uint64_t revalidate_ms;
	bool need_cmdline;
	struct entry **buckets;
	size_t n_buckets; /* power of two */
	size_t n_cached;
	struct entry *lru_head, *lru_tail;
	struct res *self;
};

/* What was read about one process. */
struct pinfo {
	uint64_t start_time;
	char comm[COMM_LEN];
	char exe[NAME_BYTES];
	char service[NAME_BYTES]; /* OTEL_SERVICE_NAME, "" if none */
	struct cgroup_ids cgroup; /* container.id and k8s.pod.uid, "" if none */
	char *cmdline; /* NULL when not read or empty */
};

/* ---- resources ------------------------------------------------------------ */

static struct res *res_new(size_t cap_attrs)
{
	struct res *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->pub.attrs = calloc(cap_attrs, sizeof(*r->pub.attrs));
	r->owned = calloc(2 * cap_attrs + 8, sizeof(*r->owned));
	if (!r->pub.attrs || !r->owned) {
		free(r->pub.attrs);
		free(r->owned);
		free(r);
		return NULL;
	}
	r->cap_attrs = cap_attrs;
	r->cap_owned = 2 * cap_attrs + 8;
	r->pub.refs = 1;
	return r;
}

static void res_free(struct res *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_owned; i++)
		free(r->owned[i]);
	free(r->owned);
	free(r->pub.attrs);
	free(r);
}

/* Copies `s` into storage owned by the resource. */
static char *res_own(struct res *r, const char *s)
{
	char *copy;

	if (!s)
		return NULL;
	/* Sized for a key and a value per attribute plus overrides: running out is a bug. */
	if (r->n_owned >= r->cap_owned) {
		r->oom = true;
		return NULL;
	}
	copy = strdup(s);
	if (!copy) {
		r->oom = true;
		return NULL;
	}
	r->owned[r->n_owned++] = copy;
	return copy;
}

static struct otlp_attr *res_find(struct res *r, const char *key)
{
	for (size_t i = 0; i < r->pub.n_attrs; i++)
		if (strcmp(r->pub.attrs[i].key, key) == 0)
			return &r->pub.attrs[i];
	return NULL;
}

/* The attribute of `key`: the existing one (replaced in place), else a new one; NULL if full. */
static struct otlp_attr *res_slot(struct res *r, const char *key)
{
	struct otlp_attr *a = res_find(r, key);

	if (a)
		return a;
	if (r->pub.n_attrs >= r->cap_attrs) /* sized by the caller; cannot happen */
		return NULL;
	a = &r->pub.attrs[r->pub.n_attrs];
	a->key = res_own(r, key);
	if (!a->key)
		return NULL;
	r->pub.n_attrs++;
	return a;
}

static void res_set_str(struct res *r, const char *key, const char *value)
{
	const char *v = res_own(r, value);
	struct otlp_attr *a = v ? res_slot(r, key) : NULL;

	if (!a)
		return;
	a->type = OTLP_STRING;
	a->s = v;
}

static void res_set_int(struct res *r, const char *key, int64_t value)
{
	struct otlp_attr *a = res_slot(r, key);

	if (!a)
		return;
	a->type = OTLP_INT;
	a->i = value;
}

static void res_set_kv_list(struct res *r, const struct kv_list *l)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (l->items[i].key && l->items[i].value)
			res_set_str(r, l->items[i].key, l->items[i].value);
}

/* The fields mirror the final attributes, so that an override shows in both. */
static void res_fill_fields(struct res *r)
{
	const struct otlp_attr *a;

	a = res_find(r, "service.name");
	r->pub.service_name = a && a->type == OTLP_STRING ? a->s : NULL;
	a = res_find(r, "process.executable.name");
	r->pub.exe_name = a && a->type == OTLP_STRING ? a->s : NULL;
	a = res_find(r, "process.command_line");
	r->pub.command_line = a && a->type == OTLP_STRING ? a->s : NULL;
	a = res_find(r, "container.id");
	r->pub.container_id = a && a->type == OTLP_STRING ? a->s : NULL;
	a = res_find(r, "host.name");
	r->pub.host_name = a && a->type == OTLP_STRING ? a->s : "";
}

static struct proc_resource *res_ref(struct res *r)
{
	r->pub.refs++;
	return &r->pub;
}

static void res_put(struct res *r)
{
	if (r && --r->pub.refs == 0)
		res_free(r);
}

static struct res *res_of(struct proc_resource *pub)
{
	return (struct res *)((char *)pub - offsetof(struct res, pub));
}

static bool rule_field_matches(const char *want, const char *have, bool substring)
{
	if (!want || !*want)
		return true;
	return substring ? strstr(have, want) != NULL : strcmp(have, want) == 0;
}

/* The name of the first rule whose every given match holds, else `service`. */
static const char *apply_rules(const struct procinfo *pi, const char *exe, const char *cmdline,
			       const char *service)
{
	for (size_t i = 0; i < pi->opts.n_rules; i++) {
		const struct service_rule *rule = &pi->opts.rules[i];

		if (!rule->name || !*rule->name)
			continue;
		if (rule_field_matches(rule->match_exe, exe, false) &&
		    rule_field_matches(rule->match_cmdline, cmdline, true) &&
		    rule_field_matches(rule->match_service, service, false))
			return rule->name;
	}
	return service;
}

static bool kv_has(const struct kv_list *l, const char *key)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (l->items[i].key && strcmp(l->items[i].key, key) == 0)
			return true;
	return false;
}

/*
 * Attributes, in this order: service.name, tcpotel.service.name.source,
 * process.pid, process.executable.name, process.command_line (when
 * configured), host.name, container.id and k8s.pod.uid (when found), then
 * resource.attributes, whose keys override the ones above in place (never a
 * duplicate key).
 *
 * The source says who named the service, so that a Collector can name the
 * ones that only have their executable's name after their workload, and
 * leave alone the names a process or its operator chose: otel_service_name
 * (the process's own OTEL_SERVICE_NAME), service_rules, resource_attributes
 * (service.name in resource.attributes), or executable.
 */
static struct res *res_build(const struct procinfo *pi, uint32_t pid, const struct pinfo *p)
{
	const char *service = p->service[0] ? p->service : p->exe;
	const char *source = p->service[0] ? "otel_service_name" : "executable";
	const char *cmdline = p->cmdline ? p->cmdline : "";
	const char *named = apply_rules(pi, p->exe, cmdline, service);
	size_t n_extra = pi->opts.attributes ? pi->opts.attributes->n : 0;
	struct res *r = res_new(8 + n_extra);

	if (!r)
		return NULL;
	if (named != service)
		source = "service_rules";
	r->pub.pid = pid;
	r->pub.start_time = p->start_time;
	res_set_str(r, "service.name", named);
	res_set_str(r, SOURCE_KEY, source);
	res_set_int(r, "process.pid", pid);
	res_set_str(r, "process.executable.name", p->exe);
	if (pi->opts.command_line && p->cmdline)
		res_set_str(r, "process.command_line", p->cmdline);
	if (pi->host_name)
		res_set_str(r, "host.name", pi->host_name);
	if (p->cgroup.container_id[0])
		res_set_str(r, "container.id", p->cgroup.container_id);
	if (p->cgroup.pod_uid[0])
		res_set_str(r, "k8s.pod.uid", p->cgroup.pod_uid);
	res_set_kv_list(r, pi->opts.attributes);
	if (kv_has(pi->opts.attributes, "service.name"))
		res_set_str(r, SOURCE_KEY, "resource_attributes");
	if (r->oom) {
		res_free(r);
		return NULL;
	}
	res_fill_fields(r);
	return r;
}

/* ---- reading /proc -------------------------------------------------------- */

/* Reads at most `cap` bytes; returns the length or a negative errno. */
static ssize_t read_bounded(const char *path, char *buf, size_t cap)
{
	size_t len = 0;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			close(fd);
			return err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	return (ssize_t)len;
}

static int proc_path(const struct procinfo *pi, uint32_t pid, const char *name, char *path,
		     size_t size)
{
	int n = snprintf(path, size, "%s/%" PRIu32 "/%s", pi->proc_root, pid, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Copies at most size - 1 bytes of s (up to a NUL or n bytes). */
static void copy_bounded(char *dst, size_t size, const char *s, size_t n)
{
	n = strnlen(s, MIN(n, size - 1));
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/*
 * /proc/PID/stat: "pid (comm) state ppid ... starttime ...". comm may hold
 * spaces and ')' itself, so the fields after it are found from the last ')'.
 */
static int read_stat(const struct procinfo *pi, uint32_t pid, uint64_t *start_time,
		     char comm[COMM_LEN])
{
	char path[PATH_MAX], buf[STAT_MAX + 1];
	const char *open_paren, *close_paren, *p;
	ssize_t len;
	int err;

	err = proc_path(pi, pid, "stat", path, sizeof(path));
	if (err)
		return err;
	len = read_bounded(path, buf, STAT_MAX);
	if (len < 0)
		return (int)len;
	buf[len] = '\0';
	/* A NUL inside would hide the rest from the string functions below. */
	for (ssize_t i = 0; i < len; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -EINVAL;
	copy_bounded(comm, COMM_LEN, open_paren + 1, (size_t)(close_paren - open_paren - 1));
	/* Field 3 (state) follows ") "; field 22 is 19 fields further on. */
	p = close_paren + 1;
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EINVAL;
	}
	errno = 0;
	*start_time = strtoull(p + 1, NULL, 10);
	if (errno || p[1] < '0' || p[1] > '9')
		return -EINVAL;
	return 0;
}

/* The executable's base name: /proc/PID/exe, else /proc/PID/comm, else the kernel's comm. */
static void read_exe(const struct procinfo *pi, uint32_t pid, const char *kcomm,
		     char exe[NAME_BYTES])
{
	static const char deleted[] = " (deleted)";
	char path[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t len;

	exe[0] = '\0';
	if (!proc_path(pi, pid, "exe", path, sizeof(path))) {
		len = readlink(path, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = '\0';
			if ((size_t)len > sizeof(deleted) - 1 &&
			    strcmp(target + len - (sizeof(deleted) - 1), deleted) == 0)
				target[len - (sizeof(deleted) - 1)] = '\0';
			base = strrchr(target, '/');
			base = base ? base + 1 : target;
			copy_bounded(exe, NAME_BYTES, base, NAME_BYTES);
		}
	}
	if (!exe[0] && !proc_path(pi, pid, "comm", path, sizeof(path))) {
		len = read_bounded(path, target, COMM_LEN * 4);
		if (len > 0) {
			target[len] = '\0';
			target[strcspn(target, "\n")] = '\0';
			copy_bounded(exe, NAME_BYTES, target, (size_t)len);
		}
	}
	if (!exe[0])
		copy_bounded(exe, NAME_BYTES, kcomm[0] ? kcomm : "unknown", NAME_BYTES);
}

/* NUL-separated arguments joined by spaces, at most CMDLINE_MAX bytes; NULL when empty. */
static char *read_cmdline(const struct procinfo *pi, uint32_t pid)
{
	char path[PATH_MAX];
	ssize_t len;
	char *buf;

	if (proc_path(pi, pid, "cmdline", path, sizeof(path)))
		return NULL;
	buf = malloc(CMDLINE_MAX + 1);
	if (!buf)
		return NULL;
	len = read_bounded(path, buf, CMDLINE_MAX);
	if (len < 0)
		len = 0;
	for (ssize_t i = 0; i < len; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	while (len > 0 && buf[len - 1] == ' ')
		len--;
	buf[len] = '\0';
	if (!len) {
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * OTEL_SERVICE_NAME in an environment block (NUL-separated NAME=value, the
 * first one as getenv would). `cut`: the block was truncated at its end, so
 * a last entry without its NUL is not trusted.
 */
static void env_service(const char *buf, size_t len, bool cut, char service[NAME_BYTES])
{
	static const char var[] = "OTEL_SERVICE_NAME=";
	const char *p, *end;

	service[0] = '\0';
	for (p = buf, end = buf + len; p < end;) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));

		if (!nul && cut)
			break;
		if (!nul)
			nul = end;
		if ((size_t)(nul - p) >= sizeof(var) - 1 && memcmp(p, var, sizeof(var) - 1) == 0) {
			p += sizeof(var) - 1;
			copy_bounded(service, NAME_BYTES, p, (size_t)(nul - p));
			break;
		}
		p = nul + 1;
	}
}

/* OTEL_SERVICE_NAME from the process's environment. */
static void read_service_env(const struct procinfo *pi, uint32_t pid, char service[NAME_BYTES])
{
	char path[PATH_MAX];
	ssize_t len;
	char *buf;

	service[0] = '\0';
	if (proc_path(pi, pid, "environ", path, sizeof(path)))
		return;
	buf = malloc(ENVIRON_MAX);
	if (!buf)
		return;
	len = read_bounded(path, buf, ENVIRON_MAX);
	env_service(buf, (size_t)MAX(len, 0), len == ENVIRON_MAX, service);
	free(buf);
}

/* container.id and k8s.pod.uid from /proc/PID/cgroup. */
static void read_cgroup(const struct procinfo *pi, uint32_t pid, struct cgroup_ids *out)
{
	char path[PATH_MAX];
	ssize_t len;
	char *buf;

	memset(out, 0, sizeof(*out));
	if (proc_path(pi, pid, "cgroup", path, sizeof(path)))
		return;
	buf = malloc(CGROUP_MAX);
	if (!buf)
		return;
	len = read_bounded(path, buf, CGROUP_MAX);
	cgroup_parse(buf, (size_t)MAX(len, 0), out);
	free(buf);
}

/* Everything about a live process; -ENOENT (or another error) when stat cannot be read. */
static int read_process(const struct procinfo *pi, uint32_t pid, const char *kcomm, struct pinfo *p)
{
	int err;

	memset(p, 0, sizeof(*p));
	err = read_stat(pi, pid, &p->start_time, p->comm);
	if (err)
		return err;
	read_exe(pi, pid, p->comm[0] ? p->comm : kcomm, p->exe);
	if (pi->need_cmdline)
		p->cmdline = read_cmdline(pi, pid);
	read_service_env(pi, pid, p->service);
	read_cgroup(pi, pid, &p->cgroup);
	return 0;
}

/*
 * The resource of `pid`: read from /proc, or named after the kernel's comm
 * when the process has already gone (start time 0). `comm_out` gets the comm
 * that identifies it from now on.
 */
static struct res *load(const struct procinfo *pi, uint32_t pid, const char *kcomm,
			const struct procinfo_env *env, char comm_out[COMM_LEN])
{
	struct pinfo p;
	struct res *r;
	int err;

	err = read_process(pi, pid, kcomm, &p);
	if (err) {
		log_debug("procinfo: pid %" PRIu32 " (%s): %s; naming it after its comm", pid,
			  kcomm, strerror(-err));
		memset(&p, 0, sizeof(p));
		copy_bounded(p.comm, COMM_LEN, kcomm, COMM_LEN);
		copy_bounded(p.exe, NAME_BYTES, kcomm[0] ? kcomm : "unknown", NAME_BYTES);
	}
	/* Gone, or a zombie whose environ reads empty: the kernel's copy still names it. */
	if (!p.service[0] && env && env->len)
		env_service(env->data, env->len, env->cut, p.service);
	r = res_build(pi, pid, &p);
	free(p.cmdline);
	memcpy(comm_out, p.comm, COMM_LEN);
	return r;
}

/* ---- cache ---------------------------------------------------------------- */

static size_t bucket_of(const struct procinfo *pi, uint32_t tgid)
{
	return (size_t)((tgid * 2654435761u) & (pi->n_buckets - 1));
}

static struct entry *lookup(const struct procinfo *pi, uint32_t tgid)
{
	struct entry *e;

	for (e = pi->buckets[bucket_of(pi, tgid)]; e; e = e->hnext)
		if (e->tgid == tgid)
			return e;
	return NULL;
}

static void lru_unlink(struct procinfo *pi, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		pi->lru_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		pi->lru_tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(struct procinfo *pi, struct entry *e)
{
	e->prev = NULL;
	e->next = pi->lru_head;
	if (pi->lru_head)
		pi->lru_head->prev = e;
	pi->lru_head = e;
	if (!pi->lru_tail)
		pi->lru_tail = e;
}

static void entry_remove(struct procinfo *pi, struct entry *e)
{
	struct entry **pp = &pi->buckets[bucket_of(pi, e->tgid)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	lru_unlink(pi, e);
	pi->n_cached--;
	res_put(e->res);
	free(e);
}

/* Strings compared the way the kernel keeps comm: the first 15 bytes. */
static bool comm_eq(const char *a, const char *b)
{
	return strncmp(a, b, COMM_LEN - 1) == 0;
}

static bool comm_known(const struct entry *e, const char *kcomm)
{
	if (!kcomm[0] || comm_eq(e->comm, kcomm))
		return true;
	for (int i = 0; i < N_ALIASES; i++)
		if (e->aliases[i][0] && comm_eq(e->aliases[i], kcomm))
			return true;
	return false;
}

/* Remembers a comm seen for this process (a thread's name), so it stops forcing re-reads. */
static void comm_remember(struct entry *e, const char *kcomm)
{
	if (comm_known(e, kcomm))
		return;
	copy_bounded(e->aliases[e->alias_next], COMM_LEN, kcomm, COMM_LEN);
	e->alias_next = (e->alias_next + 1) % N_ALIASES;
}

static void entry_set(struct entry *e, struct res *r, const char comm[COMM_LEN], const char *kcomm,
		      uint64_t now_ms)
{
	res_put(e->res);
	e->res = r;
	memcpy(e->comm, comm, COMM_LEN);
	memset(e->aliases, 0, sizeof(e->aliases));
	e->alias_next = 0;
	comm_remember(e, kcomm);
	e->checked_ms = now_ms;
}

/* A cached entry whose trust ran out or whose comm is new: still the same process? */
/*
 * Re-reads a cached process. `env` is set when the kernel announced a new
 * process with this pid: then a cached entry is a previous process's (pid
 * reuse) unless /proc proves it is the same one.
 */
static struct proc_resource *revalidate(struct procinfo *pi, struct entry *e, const char *kcomm,
					const struct procinfo_env *env, uint64_t now_ms)
{
	char comm[COMM_LEN];
	uint64_t start_time;
	struct res *r;
	int err;

	err = read_stat(pi, e->tgid, &start_time, comm);
	if (err) {
		/*
		 * Gone: what we knew is still the best name for it, unless we only
		 * ever had a comm and this event carries another one.
		 */
		if (!env && (e->res->pub.start_time != 0 || comm_known(e, kcomm))) {
			comm_remember(e, kcomm);
			e->checked_ms = now_ms;
			return res_ref(e->res);
		}
	} else if (start_time == e->res->pub.start_time && comm_eq(comm, e->comm)) {
		comm_remember(e, kcomm);
		e->checked_ms = now_ms;
		return res_ref(e->res);
	}
	r = load(pi, e->tgid, kcomm, env, comm);
	if (!r) {
		errno = ENOMEM;
		return NULL;
	}
	log_debug("procinfo: pid %" PRIu32 " is now %s (was %s): pid reuse or exec", e->tgid,
		  r->pub.service_name ? r->pub.service_name : "?",
		  e->res->pub.service_name ? e->res->pub.service_name : "?");
	entry_set(e, r, comm, kcomm, now_ms);
	return res_ref(r);
}

struct proc_resource *procinfo__get(struct procinfo *pi, uint32_t tgid, const char *comm,
				    uint64_t now_ms)
{
	return procinfo__get_env(pi, tgid, comm, NULL, now_ms);
}

struct proc_resource *procinfo__get_env(struct procinfo *pi, uint32_t tgid, const char *comm,
					const struct procinfo_env *env, uint64_t now_ms)
{
	char kcomm[COMM_LEN], id_comm[COMM_LEN];
	struct entry *e;
	struct res *r;

	copy_bounded(kcomm, COMM_LEN, comm ? comm : "", COMM_LEN);
	e = lookup(pi, tgid);
	if (e) {
		lru_unlink(pi, e);
		lru_push_front(pi, e);
		if (!env && now_ms >= e->checked_ms && now_ms - e->checked_ms < pi->revalidate_ms &&
		    comm_known(e, kcomm))
			return res_ref(e->res);
		return revalidate(pi, e, kcomm, env, now_ms);
	}

	e = calloc(1, sizeof(*e));
	r = e ? load(pi, tgid, kcomm, env, id_comm) : NULL;
	if (!r) {
		free(e);
		errno = ENOMEM;
		return NULL;
	}
	e->tgid = tgid;
	entry_set(e, r, id_comm, kcomm, now_ms);
	e->hnext = pi->buckets[bucket_of(pi, tgid)];
	pi->buckets[bucket_of(pi, tgid)] = e;
	lru_push_front(pi, e);
	pi->n_cached++;
	while (pi->n_cached > pi->max_entries && pi->lru_tail != e)
		entry_remove(pi, pi->lru_tail);
	return res_ref(r);
}

/*
 * Another reference to a resource the caller already holds (a span that
 * outlives the socket's stream). Its prototype belongs in procinfo.h.
 */
struct proc_resource *procinfo__ref(struct proc_resource *res);

struct proc_resource *procinfo__ref(struct proc_resource *res)
{
	return res ? res_ref(res_of(res)) : NULL;
}

/* Touches nothing in `pi`: a holder may put its last references after procinfo__free. */
void procinfo__put(struct procinfo *pi, struct proc_resource *res)
{
	if (res)
		res_put(res_of(res));
}

/* Attributes that name a process, not the service instance it belongs to. */
static bool process_only(const char *key)
{
	return !strcmp(key, "process.pid") || !strcmp(key, "process.command_line");
}

struct proc_resource *procinfo__without_process(struct procinfo *pi,
						const struct proc_resource *res)
{
	struct res *r = res_new(res->n_attrs ? res->n_attrs : 1);

	if (!r)
		return NULL;
	for (size_t i = 0; i < res->n_attrs; i++) {
		const struct otlp_attr *a = &res->attrs[i];

		if (process_only(a->key))
			continue;
		if (a->type == OTLP_STRING)
			res_set_str(r, a->key, a->s);
		else if (a->type == OTLP_INT)
			res_set_int(r, a->key, a->i);
	}
	if (r->oom) {
		res_free(r);
		return NULL;
	}
	res_fill_fields(r);
	return &r->pub;
}

bool procinfo_same_attrs(const struct proc_resource *a, const struct proc_resource *b)
{
	if (a->n_attrs != b->n_attrs)
		return false;
	for (size_t i = 0; i < a->n_attrs; i++) {
		const struct otlp_attr *x = &a->attrs[i], *y = &b->attrs[i];

		if (x->type != y->type || strcmp(x->key, y->key))
			return false;
		if (x->type == OTLP_STRING ? strcmp(x->s, y->s) : x->i != y->i)
			return false;
	}
	return true;
}

const struct proc_resource *procinfo__self(struct procinfo *pi)
{
	return &pi->self->pub;
}

size_t procinfo__cached(const struct procinfo *pi)
{
	return pi->n_cached;
}

/*
 * The agent's own resource: service.name, process.pid, host.name, then
 * resource.attributes (they are "added to every resource", the agent's
 * included, e.g. deployment.environment.name), then self.attributes
 * (OTEL_RESOURCE_ATTRIBUTES) on top, and last self.service_name
 * (OTEL_SERVICE_NAME), which the OpenTelemetry spec ranks above a
 * service.name in OTEL_RESOURCE_ATTRIBUTES.
 */
static struct res *self_build(const struct procinfo *pi)
{
	const struct procinfo_opts *o = &pi->opts;
	size_t n = 4 + (o->attributes ? o->attributes->n : 0) +
		   (o->self_attributes ? o->self_attributes->n : 0);
	struct res *r = res_new(n);

	if (!r)
		return NULL;
	r->pub.pid = (uint32_t)getpid();
	res_set_str(r, "service.name", SELF_SERVICE_NAME);
	res_set_int(r, "process.pid", (int64_t)r->pub.pid);
	if (pi->host_name)
		res_set_str(r, "host.name", pi->host_name);
	res_set_kv_list(r, o->attributes);
	res_set_kv_list(r, o->self_attributes);
	if (o->self_service_name && o->self_service_name[0])
		res_set_str(r, "service.name", o->self_service_name);
	if (r->oom) {
		res_free(r);
		return NULL;
	}
	res_fill_fields(r);
	return r;
}

struct procinfo *procinfo__new(const struct procinfo_opts *opts)
{
	const char *root = opts && opts->proc_root ? opts->proc_root : "/proc";
	struct procinfo *pi;
	char host[256];
	int err;

	pi = calloc(1, sizeof(*pi));
	if (!pi)
		return NULL;
	if (opts)
		pi->opts = *opts;
	/* Zero in the options means the default, as with libbpf's opts. */
	pi->max_entries = opts && opts->max_entries ? opts->max_entries : DEFAULT_MAX_ENTRIES;
	pi->revalidate_ms = opts && opts->revalidate_ms ? opts->revalidate_ms :
							  DEFAULT_REVALIDATE_MS;
	for (pi->n_buckets = 16; pi->n_buckets < 2 * pi->max_entries; pi->n_buckets *= 2)
		;
	pi->buckets = calloc(pi->n_buckets, sizeof(*pi->buckets));
	pi->proc_root = strdup(root);
	if (!pi->buckets || !pi->proc_root) {
		err = -ENOMEM;
		goto err_free;
	}
	pi->need_cmdline = pi->opts.command_line;
	for (size_t i = 0; i < pi->opts.n_rules; i++)
		if (pi->opts.rules[i].match_cmdline && pi->opts.rules[i].match_cmdline[0])
			pi->need_cmdline = true;

	if (opts && opts->host_name) {
		pi->host_name = strdup(opts->host_name);
		if (!pi->host_name) {
			err = -ENOMEM;
			goto err_free;
		}
	} else if (!kv_has(pi->opts.attributes, "host.name")) {
		/* gethostname may leave the name unterminated when it is truncated. */
		if (gethostname(host, sizeof(host) - 1) == 0) {
			host[sizeof(host) - 1] = '\0';
			pi->host_name = strdup(host);
		} else {
			log_warn("procinfo: gethostname: %s; resources go without host.name",
				 strerror(errno));
		}
	}

	pi->self = self_build(pi);
	if (!pi->self) {
		err = -ENOMEM;
		goto err_free;
	}
	return pi;

err_free:
	procinfo__free(pi);
	errno = -err;
	return NULL;
}

void procinfo__free(struct procinfo *pi)
{
	if (!pi)
		return;
	while (pi->lru_head)
		entry_remove(pi, pi->lru_head);
	res_put(pi->self);
	free(pi->buckets);
	free(pi->host_name);
	free(pi->proc_root);
	free(pi);
}
