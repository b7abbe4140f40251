// SPDX-License-Identifier: Apache-2.0
/* procinfo against the fake /proc in tests/fixtures/proc (see its README.md). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "procinfo.h"
#include "test.h"
#include "util.h"

#define HOST "testhost"
/* A writable copy of a literal, for the char * fields of struct config. */
#define S(lit)	      ((char[]){ lit })

#define ID_DOCKER     "4f8c2b3a1d9e7f6051a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"
#define ID_DOCKER_V1  "a3f1c9e2b7d84605f1e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d4e5f60718"
#define ID_CONTAINERD "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ID_CGROUPFS   "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define ID_CRIO	      "5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e"
#define ID_CRIO_FS    "c4f2a9e17b3d58066e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"
#define ID_DOCKER_K8S "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9"
#define ID_V1_SYSTEMD "1122334455667788990011223344556677889900aabbccddeeff001122334455"
#define ID_V1_FS      "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899"
#define ID_GUARANTEED "0fedcba9876543210fedcba9876543210fedcba9876543210fedcba987654321"
#define ID_CGROUPNS   "3141592653589793238462643383279502884197169399375105820974944592"
#define ID_KIND	      "2718281828459045235360287471352662497757247093699959574966967627"
#define ID_MIXED      "1618033988749894848204586834365638117720309179805762862135448622"

static const char *fixture_root(void)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/tests/fixtures/proc", test_srcdir());
	return path;
}

static struct procinfo *open_pi(const struct config *cfg, const char *root, size_t max_entries)
{
	struct procinfo_opts opts = {
		.proc_root = root ? root : fixture_root(),
		.host_name = HOST,
		.max_entries = max_entries,
		.revalidate_ms = 1000,
	};

	if (cfg) {
		opts.rules = cfg->service.rules;
		opts.n_rules = cfg->service.n_rules;
		opts.command_line = cfg->service.command_line;
		opts.attributes = &cfg->resource.attributes;
		opts.self_service_name = cfg->self.service_name;
		opts.self_attributes = &cfg->self.attributes;
	}
	return procinfo__new(&opts);
}

static const struct otlp_attr *attr(const struct proc_resource *r, const char *key)
{
	for (size_t i = 0; i < r->n_attrs; i++)
		if (strcmp(r->attrs[i].key, key) == 0)
			return &r->attrs[i];
	return NULL;
}

/* An integer attribute's value, or INT64_MIN when it is missing or not an integer. */
static int64_t attr_int(const struct proc_resource *r, const char *key)
{
	const struct otlp_attr *a = attr(r, key);

	return a && a->type == OTLP_INT ? a->i : INT64_MIN;
}

static const char *attr_str(const struct proc_resource *r, const char *key)
{
	const struct otlp_attr *a = attr(r, key);

	return a && a->type == OTLP_STRING ? a->s : NULL;
}

/* The keys, in order, joined by ','; and no key twice. */
static bool keys_are(const struct proc_resource *r, const char *want)
{
	char got[1024] = "";

	for (size_t i = 0; i < r->n_attrs; i++) {
		for (size_t j = 0; j < i; j++)
			if (!ASSERT_TRUE(strcmp(r->attrs[i].key, r->attrs[j].key) != 0))
				return false;
		if (i)
			strcat(got, ",");
		strcat(got, r->attrs[i].key);
	}
	return ASSERT_STREQ(got, want);
}

TEST(plain_process)
{
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);
	struct proc_resource *r;

	if (!ASSERT_NOT_NULL(pi))
		return;
	r = procinfo__get(pi, 100, "redis-server", 1);
	if (!ASSERT_NOT_NULL(r))
		goto out;
	if (!keys_are(r, "service.name,tcpotel.service.name.source,process.pid,"
			 "process.executable.name,host.name"))
		goto put;
	ASSERT_STREQ(attr_str(r, "service.name"), "redis-server");
	ASSERT_EQ(attr_int(r, "process.pid"), 100);
	ASSERT_STREQ(attr_str(r, "process.executable.name"), "redis-server");
	ASSERT_STREQ(attr_str(r, "host.name"), HOST);
	ASSERT_STREQ(r->service_name, "redis-server");
	ASSERT_STREQ(r->exe_name, "redis-server");
	ASSERT_TRUE(r->command_line == NULL);
	ASSERT_TRUE(r->container_id == NULL);
	ASSERT_EQ(r->pid, 100);
	ASSERT_U64_EQ(r->start_time, 4242);
put:
	procinfo__put(pi, r);
out:
	procinfo__free(pi);
}

TEST(command_line)
{
	struct config cfg = { .service.command_line = true };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);
	struct proc_resource *r, *r2;

	if (!ASSERT_NOT_NULL(pi))
		return;
	r = procinfo__get(pi, 100, "redis-server", 1);
	r2 = procinfo__get(pi, 300, "nginx", 1);
	if (!ASSERT_NOT_NULL(r) || !ASSERT_NOT_NULL(r2))
		goto out;
	if (!keys_are(r, "service.name,tcpotel.service.name.source,process.pid,"
			 "process.executable.name,process.command_line,host.name"))
		goto out;
	ASSERT_STREQ(attr_str(r, "process.command_line"), "redis-server *:6379");
	ASSERT_STREQ(r->command_line, "redis-server *:6379");
	/* A process that rewrote its argv into one string with spaces. */
	ASSERT_STREQ(attr_str(r2, "process.command_line"),
		     "nginx: master process nginx -g daemon off;");
out:
	procinfo__put(pi, r);
	procinfo__put(pi, r2);
	procinfo__free(pi);
}

TEST(otel_service_name_from_environ)
{
	static const struct {
		uint32_t pid;
		const char *comm, *service, *exe;
	} v[] = {
		{ 200, "gunicorn", "checkout", "python3.11" }, /* the first, exact variable */
		{ 400, "server", "server", "server" }, /* empty value: ignored */
		{ 401, "envoy", "edge-proxy", "envoy" },
		{ 100, "redis-server", "redis-server", "redis-server" },
	};
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);

	if (!ASSERT_NOT_NULL(pi))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct proc_resource *r = procinfo__get(pi, v[i].pid, v[i].comm, 1);
		bool ok;

		if (!ASSERT_NOT_NULL(r))
			break;
		ok = ASSERT_STREQ(attr_str(r, "service.name"), v[i].service) &&
		     ASSERT_STREQ(attr_str(r, "process.executable.name"), v[i].exe);
		procinfo__put(pi, r);
		if (!ok)
			break;
	}
	procinfo__free(pi);
}

TEST(container_id_from_cgroup)
{
	static const struct {
		uint32_t pid;
		const char *id; /* NULL: none */
	} v[] = {
		{ 100, NULL },	       { 200, NULL },	       { 300, ID_DOCKER },
		{ 301, ID_DOCKER_V1 }, { 400, ID_CONTAINERD }, { 401, ID_CGROUPFS },
		{ 402, ID_CRIO },      { 403, ID_CONTAINERD }, { 404, NULL },
		{ 405, ID_CRIO_FS },   { 406, ID_DOCKER_K8S }, { 407, ID_V1_SYSTEMD },
		{ 408, ID_V1_FS },     { 409, ID_GUARANTEED }, { 410, ID_CGROUPNS },
		{ 411, ID_KIND },      { 412, ID_MIXED },      { 500, NULL },
	};
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);

	if (!ASSERT_NOT_NULL(pi))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct proc_resource *r = procinfo__get(pi, v[i].pid, NULL, 1);
		bool ok;

		if (!ASSERT_NOT_NULL(r))
			break;
		if (v[i].id)
			ok = ASSERT_STREQ(attr_str(r, "container.id"), v[i].id) &&
			     ASSERT_STREQ(r->container_id, v[i].id);
		else
			ok = ASSERT_TRUE(attr(r, "container.id") == NULL) &&
			     ASSERT_TRUE(r->container_id == NULL);
		if (!ok)
			test_fail_at(__FILE__, __LINE__, "pid %u", v[i].pid);
		procinfo__put(pi, r);
		if (!ok)
			break;
	}
	procinfo__free(pi);
}

/* k8s.pod.uid: the UID with dashes whatever the cgroup driver wrote; after container.id. */
TEST(pod_uid_from_cgroup)
{
	static const struct {
		uint32_t pid;
		const char *uid; /* NULL: none */
	} v[] = {
		{ 100, NULL }, /* no container */
		{ 300, NULL }, /* Docker outside Kubernetes */
		{ 301, NULL },
		{ 403, NULL }, /* podman */
		{ 404, NULL }, /* CRI-O's monitor */
		{ 400, "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809" }, /* containerd, systemd, v2 */
		{ 401, "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809" }, /* containerd, cgroupfs, v2 */
		{ 402, "7c1e5a2b-9d3f-4e8a-b6c0-2f4d8e1a9b37" }, /* CRI-O, systemd, v2 */
		{ 405, "3e9f1c2a-7b4d-4c8e-a1f6-5d2b9e0c7a48" }, /* CRI-O, cgroupfs, v2 */
		{ 406, "0f6e2d1c-8b7a-4960-9e5d-4c3b2a190807" }, /* Docker, systemd, v2 */
		{ 407, "b2c3d4e5-f607-4819-8a2b-3c4d5e6f7081" }, /* containerd, systemd, v1 */
		{ 408, "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d" }, /* Docker, cgroupfs, v1 */
		{ 409, "6f5e4d3c-2b1a-4098-8765-43210fedcba9" }, /* Guaranteed */
		{ 410, "d4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70" }, /* seen from a cgroup namespace */
		{ 411, "8e7d6c5b-4a39-4281-b0c9-d8e7f6a5b4c3" }, /* kind */
		{ 412, NULL }, /* mixed separators: not a UID */
	};
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 32);

	if (!ASSERT_NOT_NULL(pi))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct proc_resource *r = procinfo__get(pi, v[i].pid, NULL, 1);
		bool ok;

		if (!ASSERT_NOT_NULL(r))
			break;
		if (v[i].uid)
			ok = ASSERT_STREQ(attr_str(r, "k8s.pod.uid"), v[i].uid) &&
			     /* the last of the built-in attributes, right after container.id */
			     ASSERT_STREQ(r->attrs[r->n_attrs - 1].key, "k8s.pod.uid") &&
			     ASSERT_STREQ(r->attrs[r->n_attrs - 2].key, "container.id");
		else
			ok = ASSERT_TRUE(attr(r, "k8s.pod.uid") == NULL);
		if (!ok)
			test_fail_at(__FILE__, __LINE__, "pid %u", v[i].pid);
		procinfo__put(pi, r);
		if (!ok)
			break;
	}
	procinfo__free(pi);
}

/* The pure parser on what a file can hold beyond the fixtures. */
TEST(cgroup_parse_edges)
{
	static const char uid[] = "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809";
	static const struct {
		const char *text;
		const char *id, *uid; /* "" : none */
	} v[] = {
		/* a pod UID on an earlier line belongs to another cgroup than the container */
		{ "2:cpu:/kubepods/pod"
		  "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809\n"
		  "1:name=systemd:/docker/" ID_DOCKER "\n",
		  ID_DOCKER, "" },
		/* no container: the pod's UID alone */
		{ "0::/kubepods/burstable/pod1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809\n", "", uid },
		/* not under kubepods */
		{ "0::/system.slice/pod1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809.slice\n", "", "" },
		/* upper case, one digit short, one too many */
		{ "0::/kubepods/pod1A2B3C4D-5E6F-7081-92A3-B4C5D6E7F809/" ID_CGROUPFS, ID_CGROUPFS,
		  "" },
		{ "0::/kubepods/pod1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f80/" ID_CGROUPFS, ID_CGROUPFS,
		  "" },
		{ "0::/kubepods/pod1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f8090/" ID_CGROUPFS, ID_CGROUPFS,
		  "" },
		/* a 65-digit run is no id; no newline at the end; no path at all */
		{ "0::/kubepods/pod1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809/0" ID_CGROUPFS, "", uid },
		{ "garbage without colons\n0:", "", "" },
		{ "", "", "" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct cgroup_ids ids;

		cgroup_parse(v[i].text, strlen(v[i].text), &ids);
		if (!ASSERT_STREQ(ids.container_id, v[i].id) ||
		    !ASSERT_STREQ(ids.pod_uid, v[i].uid)) {
			test_fail_at(__FILE__, __LINE__, "case %zu", i);
			break;
		}
	}
}

/* tcpotel.service.name.source: who named the service, so that a Collector can tell. */
TEST(service_name_source)
{
	struct service_rule rules[] = {
		{ .match_exe = S("redis-server"), .name = S("cache") },
	};
	struct kv_pair kv[] = { { S("service.name"), S("pinned") } };
	static const struct {
		uint32_t pid;
		bool with_rules, with_attr;
		const char *service, *source;
	} v[] = {
		{ 406, false, false, "node", "executable" },
		{ 400, false, false, "server", "executable" }, /* empty OTEL_SERVICE_NAME */
		{ 401, false, false, "edge-proxy", "otel_service_name" },
		{ 100, true, false, "cache", "service_rules" },
		{ 401, true, false, "edge-proxy", "otel_service_name" },
		{ 406, true, true, "pinned", "resource_attributes" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct config cfg = { 0 };
		struct procinfo *pi;
		struct proc_resource *r;
		bool ok;

		if (v[i].with_rules) {
			cfg.service.rules = rules;
			cfg.service.n_rules = ARRAY_SIZE(rules);
		}
		if (v[i].with_attr)
			cfg.resource.attributes = (struct kv_list){ kv, ARRAY_SIZE(kv) };
		pi = open_pi(&cfg, NULL, 16);
		if (!ASSERT_NOT_NULL(pi))
			return;
		r = procinfo__get(pi, v[i].pid, NULL, 1);
		ok = ASSERT_NOT_NULL(r) &&
		     ASSERT_STREQ(attr_str(r, "service.name"), v[i].service) &&
		     ASSERT_STREQ(attr_str(r, "tcpotel.service.name.source"), v[i].source) &&
		     ASSERT_STREQ(r->attrs[1].key, "tcpotel.service.name.source");
		if (!ok)
			test_fail_at(__FILE__, __LINE__, "case %zu", i);
		procinfo__put(pi, r);
		procinfo__free(pi);
		if (!ok)
			break;
	}
}

TEST(comm_with_spaces_and_parens)
{
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);
	struct proc_resource *r;

	if (!ASSERT_NOT_NULL(pi))
		return;
	r = procinfo__get(pi, 500, "a) b (c) d", 1);
	if (ASSERT_NOT_NULL(r)) {
		/* stat parsed from the last ')': the start time is right. */
		ASSERT_U64_EQ(r->start_time, 8000);
		/* No exe link: the name comes from /proc/PID/comm. */
		ASSERT_STREQ(attr_str(r, "process.executable.name"), "a) b (c) d");
		ASSERT_STREQ(attr_str(r, "service.name"), "a) b (c) d");
		/* The same comm again is recognised: no replacement. */
		struct proc_resource *again = procinfo__get(pi, 500, "a) b (c) d", 2000);

		ASSERT_TRUE(again == r);
		procinfo__put(pi, again);
	}
	procinfo__put(pi, r);
	procinfo__free(pi);
}

TEST(deleted_executable)
{
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);
	struct proc_resource *r;

	if (!ASSERT_NOT_NULL(pi))
		return;
	r = procinfo__get(pi, 700, "api-server", 1);
	if (ASSERT_NOT_NULL(r))
		ASSERT_STREQ(attr_str(r, "process.executable.name"), "api-server");
	procinfo__put(pi, r);
	procinfo__free(pi);
}

TEST(service_rules)
{
	struct service_rule rules[] = {
		{ .match_exe = S(""),
		  .match_cmdline = S("orders-service.jar"),
		  .match_service = S(""),
		  .name = S("orders") },
		/* exe matches, cmdline does not: every given match must hold */
		{ .match_exe = S("redis-server"), .match_cmdline = S(":6380"), .name = S("never") },
		{ .match_exe = S("java"), .name = S("jvm-app") },
		/* match on the service found so far (OTEL_SERVICE_NAME here) */
		{ .match_exe = S("python3.11"),
		  .match_service = S("checkout"),
		  .name = S("checkout-v2") },
		{ .match_service = S("nginx"), .name = S("web") },
	};
	static const struct {
		uint32_t pid;
		const char *service;
	} v[] = {
		{ 600, "orders" },	 { 601, "jvm-app" },	 { 402, "jvm-app" },
		{ 100, "redis-server" }, { 200, "checkout-v2" }, { 300, "web" },
		{ 401, "edge-proxy" },
	};
	struct config cfg = { .service.rules = rules, .service.n_rules = ARRAY_SIZE(rules) };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);

	if (!ASSERT_NOT_NULL(pi))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct proc_resource *r = procinfo__get(pi, v[i].pid, NULL, 1);
		bool ok;

		if (!ASSERT_NOT_NULL(r))
			break;
		ok = ASSERT_STREQ(attr_str(r, "service.name"), v[i].service) &&
		     ASSERT_STREQ(r->service_name, v[i].service) &&
		     /* cmdline was read for the rules, but is not an attribute unless asked for */
		     ASSERT_TRUE(attr(r, "process.command_line") == NULL);
		if (!ok)
			test_fail_at(__FILE__, __LINE__, "pid %u", v[i].pid);
		procinfo__put(pi, r);
		if (!ok)
			break;
	}
	procinfo__free(pi);
}

TEST(resource_attributes_override_in_place)
{
	struct kv_pair kv[] = {
		{ S("deployment.environment.name"), S("prod") },
		{ S("host.name"), S("node-7") },
		{ S("team"), S("core") },
	};
	struct config cfg = { .resource.attributes = { kv, ARRAY_SIZE(kv) } };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);
	struct proc_resource *r;

	if (!ASSERT_NOT_NULL(pi))
		return;
	r = procinfo__get(pi, 300, "nginx", 1);
	if (ASSERT_NOT_NULL(r) &&
	    keys_are(r, "service.name,tcpotel.service.name.source,process.pid,"
			"process.executable.name,host.name,container.id,"
			"deployment.environment.name,team")) {
		ASSERT_STREQ(attr_str(r, "host.name"), "node-7");
		ASSERT_STREQ(attr_str(r, "deployment.environment.name"), "prod");
		ASSERT_STREQ(attr_str(r, "team"), "core");
	}
	procinfo__put(pi, r);
	procinfo__free(pi);
}

TEST(self_resource)
{
	struct kv_pair res_kv[] = {
		{ S("deployment.environment.name"), S("prod") },
		{ S("team"), S("core") },
	};
	struct kv_pair self_kv[] = {
		{ S("team"), S("observability") },
		{ S("service.name"), S("from-attrs") },
	};
	struct config cfg = { .resource.attributes = { res_kv, ARRAY_SIZE(res_kv) } };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);
	const struct proc_resource *s;

	if (!ASSERT_NOT_NULL(pi))
		return;
	s = procinfo__self(pi);
	if (!keys_are(s, "service.name,process.pid,host.name,deployment.environment.name,team"))
		goto out;
	ASSERT_STREQ(s->service_name, "tcpotel");
	ASSERT_EQ(attr_int(s, "process.pid"), getpid());
	ASSERT_STREQ(attr_str(s, "host.name"), HOST);
	procinfo__free(pi);

	/* OTEL_RESOURCE_ATTRIBUTES over resource.attributes... */
	cfg.self.attributes = (struct kv_list){ self_kv, ARRAY_SIZE(self_kv) };
	pi = open_pi(&cfg, NULL, 16);
	if (!ASSERT_NOT_NULL(pi))
		return;
	s = procinfo__self(pi);
	ASSERT_STREQ(attr_str(s, "team"), "observability");
	ASSERT_STREQ(s->service_name, "from-attrs");
	procinfo__free(pi);

	/* ...and OTEL_SERVICE_NAME over both. */
	cfg.self.service_name = S("agent-x");
	pi = open_pi(&cfg, NULL, 16);
	if (!ASSERT_NOT_NULL(pi))
		return;
	s = procinfo__self(pi);
	ASSERT_STREQ(attr_str(s, "service.name"), "agent-x");
	ASSERT_STREQ(s->attrs[0].key, "service.name");
	keys_are(s, "service.name,process.pid,host.name,deployment.environment.name,team");
out:
	procinfo__free(pi);
}

TEST(process_gone_named_by_comm)
{
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);
	struct proc_resource *r;

	if (!ASSERT_NOT_NULL(pi))
		return;
	r = procinfo__get(pi, 99999, "short-lived-job", 1);
	if (ASSERT_NOT_NULL(r) &&
	    keys_are(r, "service.name,tcpotel.service.name.source,process.pid,"
			"process.executable.name,host.name")) {
		/* The kernel keeps 15 bytes of comm. */
		ASSERT_STREQ(r->service_name, "short-lived-job");
		ASSERT_STREQ(attr_str(r, "process.executable.name"), "short-lived-job");
		ASSERT_EQ(attr_int(r, "process.pid"), 99999);
		ASSERT_U64_EQ(r->start_time, 0);
	}
	procinfo__put(pi, r);
	r = procinfo__get(pi, 99998, "a-very-long-process-name", 1);
	if (ASSERT_NOT_NULL(r))
		ASSERT_STREQ(r->service_name, "a-very-long-pro");
	procinfo__put(pi, r);
	procinfo__free(pi);
}

/* ---- tests that change a process: on a copy in a temporary directory ---- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool write_file(const char *root, uint32_t pid, const char *name, const void *data,
		       size_t len)
{
	char path[PATH_MAX + 64];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/%u/%s", root, pid, name);
	f = fopen(path, "w");
	if (!ASSERT_NOT_NULL(f))
		return false;
	ok = fwrite(data, 1, len, f) == len;
	return ASSERT_TRUE(fclose(f) == 0 && ok);
}

static bool write_stat(const char *root, uint32_t pid, const char *comm, uint64_t start)
{
	char line[512];
	int n = snprintf(line, sizeof(line),
			 "%u (%s) S 1 %u %u 0 -1 4194560 1234 0 0 0 10 5 0 0 20 0 4 0 %llu "
			 "123456789 2000 18446744073709551615 1 1 0 0 0 0 0 4096 17664 0 0 0 "
			 "17 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			 pid, comm, pid, pid, (unsigned long long)start);

	return write_file(root, pid, "stat", line, (size_t)n) &&
	       write_file(root, pid, "comm", comm, strlen(comm));
}

static bool set_exe(const char *root, uint32_t pid, const char *target)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%u/exe", root, pid);
	unlink(path);
	return ASSERT_OK(symlink(target, path));
}

/* Copies fixture `pid` into a new temporary proc root; returns false on failure. */
static bool copy_fixture(uint32_t pid, char root[PATH_MAX])
{
	static const char *const files[] = { "stat", "comm", "cmdline", "environ", "cgroup" };
	char src[PATH_MAX + 64], dst[PATH_MAX + 64], buf[8192];

	snprintf(root, PATH_MAX, "/tmp/tcpotel-procinfo-XXXXXX");
	if (!ASSERT_NOT_NULL(mkdtemp(root)))
		return false;
	snprintf(dst, sizeof(dst), "%s/%u", root, pid);
	if (!ASSERT_OK(mkdir(dst, 0755)))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		FILE *f;
		size_t n;

		snprintf(src, sizeof(src), "%s/%u/%s", fixture_root(), pid, files[i]);
		f = fopen(src, "r");
		if (!ASSERT_NOT_NULL(f))
			return false;
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		if (!write_file(root, pid, files[i], buf, n))
			return false;
	}
	snprintf(src, sizeof(src), "%s/%u/exe", fixture_root(), pid);
	ssize_t n = readlink(src, buf, sizeof(buf) - 1);

	if (n > 0) {
		buf[n] = '\0';
		return set_exe(root, pid, buf);
	}
	return true;
}

TEST(cache_bound_and_refs)
{
	static const uint32_t pids[] = { 100, 200, 300, 301, 400, 401, 402, 403, 600, 601 };
	struct proc_resource *held[ARRAY_SIZE(pids)];
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 4);
	size_t i;

	if (!ASSERT_NOT_NULL(pi))
		return;
	for (i = 0; i < ARRAY_SIZE(pids); i++) {
		held[i] = procinfo__get(pi, pids[i], NULL, 1);
		if (!ASSERT_NOT_NULL(held[i]) || !ASSERT_LE(procinfo__cached(pi), 4))
			break;
	}
	if (i == ARRAY_SIZE(pids)) {
		ASSERT_EQ(procinfo__cached(pi), 4);
		/* Evicted ones live on while held (ASan would flag a use after free). */
		for (size_t j = 0; j < ARRAY_SIZE(pids); j++)
			if (!ASSERT_EQ(attr_int(held[j], "process.pid"), pids[j]))
				break;
		ASSERT_EQ(held[0]->refs, 1); /* evicted: only our reference is left */
		ASSERT_EQ(held[9]->refs, 2); /* cached: ours and the cache's */
		/* The most recent four are cached: getting one again is the same object. */
		struct proc_resource *again = procinfo__get(pi, 601, NULL, 2);

		ASSERT_TRUE(again == held[9]);
		procinfo__put(pi, again);
		/* An evicted one comes back as a new object. */
		again = procinfo__get(pi, 100, NULL, 2);
		ASSERT_TRUE(again != NULL && again != held[0]);
		procinfo__put(pi, again);
		ASSERT_EQ(procinfo__cached(pi), 4);
	}
	/* Evicted ones are put before free, cached ones after: both end freed (LeakSanitizer). */
	for (size_t j = 0; j < i && j < 5; j++)
		procinfo__put(pi, held[j]);
	procinfo__free(pi);
	for (size_t j = 5; j < i; j++)
		procinfo__put(NULL, held[j]);
}

struct proc_resource *procinfo__ref(struct proc_resource *res);

TEST(ref_and_put_balance)
{
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 4);
	struct proc_resource *r, *extra;

	if (!ASSERT_NOT_NULL(pi))
		return;
	r = procinfo__get(pi, 100, NULL, 1);
	if (!ASSERT_NOT_NULL(r))
		goto out;
	extra = procinfo__ref(r);
	ASSERT_TRUE(extra == r);
	ASSERT_EQ(r->refs, 3); /* cache, get, ref */
	ASSERT_TRUE(procinfo__ref(NULL) == NULL);
	procinfo__put(pi, extra);
	procinfo__put(pi, NULL);
	ASSERT_EQ(r->refs, 2);
	procinfo__put(pi, r);
out:
	procinfo__free(pi);
}

TEST(lru_keeps_recently_used)
{
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 2);
	struct proc_resource *a, *b;

	if (!ASSERT_NOT_NULL(pi))
		return;
	a = procinfo__get(pi, 100, NULL, 1);
	procinfo__put(pi, procinfo__get(pi, 200, NULL, 1));
	procinfo__put(pi, procinfo__get(pi, 100, NULL, 2)); /* 100 is now the most recent */
	procinfo__put(pi, procinfo__get(pi, 300, NULL, 3)); /* evicts 200 */
	b = procinfo__get(pi, 100, NULL, 4);
	ASSERT_TRUE(a == b);
	ASSERT_EQ(procinfo__cached(pi), 2);
	procinfo__put(pi, a);
	procinfo__put(pi, b);
	procinfo__free(pi);
}

TEST(pid_reuse_gives_new_resource)
{
	struct config cfg = { 0 };
	struct proc_resource *r1 = NULL, *r2 = NULL, *r3 = NULL;
	struct procinfo *pi = NULL;
	char root[PATH_MAX];

	if (!copy_fixture(100, root))
		goto out;
	pi = open_pi(&cfg, root, 16);
	if (!ASSERT_NOT_NULL(pi))
		goto out;
	r1 = procinfo__get(pi, 100, "redis-server", 1000);
	if (!ASSERT_NOT_NULL(r1) || !ASSERT_U64_EQ(r1->start_time, 4242))
		goto out;
	/* The pid is reused by another start of the same program. */
	if (!write_stat(root, 100, "redis-server", 99999))
		goto out;
	/* Within revalidate_ms and with the same comm, the cache is trusted. */
	r2 = procinfo__get(pi, 100, "redis-server", 1999);
	if (!ASSERT_TRUE(r2 == r1))
		goto out;
	procinfo__put(pi, r2);
	/* After it, stat is read again: another start time is another process. */
	r2 = procinfo__get(pi, 100, "redis-server", 2000);
	if (!ASSERT_NOT_NULL(r2) || !ASSERT_TRUE(r2 != r1))
		goto out;
	ASSERT_U64_EQ(r2->start_time, 99999);
	ASSERT_U64_EQ(r1->start_time, 4242); /* the old one is still whole for its holders */
	ASSERT_STREQ(r1->service_name, "redis-server");
	ASSERT_EQ(procinfo__cached(pi), 1);
	/* Same start time and comm later on: still the same, not replaced again. */
	r3 = procinfo__get(pi, 100, "redis-server", 5000);
	ASSERT_TRUE(r3 == r2);
out:
	procinfo__put(pi, r1);
	procinfo__put(pi, r2);
	procinfo__put(pi, r3);
	procinfo__free(pi);
	rm_tree(root);
}

TEST(exec_rereads_on_comm_change)
{
	struct config cfg = { 0 };
	struct proc_resource *r1 = NULL, *r2 = NULL;
	struct procinfo *pi = NULL;
	char root[PATH_MAX];

	if (!copy_fixture(100, root))
		goto out;
	pi = open_pi(&cfg, root, 16);
	if (!ASSERT_NOT_NULL(pi))
		goto out;
	r1 = procinfo__get(pi, 100, "redis-server", 1000);
	if (!ASSERT_NOT_NULL(r1))
		goto out;
	/* exec keeps the pid and the start time; comm and exe change. */
	if (!write_stat(root, 100, "valkey-server", 4242) ||
	    !set_exe(root, 100, "/usr/bin/valkey-server"))
		goto out;
	/* Well within revalidate_ms: the new comm alone forces the re-read. */
	r2 = procinfo__get(pi, 100, "valkey-server", 1001);
	if (!ASSERT_NOT_NULL(r2) || !ASSERT_TRUE(r2 != r1))
		goto out;
	ASSERT_STREQ(r2->service_name, "valkey-server");
	ASSERT_STREQ(r2->exe_name, "valkey-server");
	ASSERT_U64_EQ(r2->start_time, 4242);
	ASSERT_EQ(procinfo__cached(pi), 1);
out:
	procinfo__put(pi, r1);
	procinfo__put(pi, r2);
	procinfo__free(pi);
	rm_tree(root);
}

/* Events carry the comm of the thread that made them; a thread's own name is not an exec. */
TEST(thread_comm_is_remembered)
{
	struct config cfg = { 0 };
	struct proc_resource *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL;
	struct procinfo *pi = NULL;
	char root[PATH_MAX];

	if (!copy_fixture(100, root))
		goto out;
	pi = open_pi(&cfg, root, 16);
	if (!ASSERT_NOT_NULL(pi))
		goto out;
	r1 = procinfo__get(pi, 100, "redis-server", 1000);
	r2 = procinfo__get(pi, 100, "bio_close_file", 1001); /* re-read: same process */
	if (!ASSERT_TRUE(r1 && r2 == r1))
		goto out;
	/* Now the thread name is known: no re-read within the window, even if stat changed. */
	if (!write_stat(root, 100, "redis-server", 77777))
		goto out;
	r3 = procinfo__get(pi, 100, "bio_close_file", 1500);
	if (!ASSERT_TRUE(r3 == r1))
		goto out;
	r4 = procinfo__get(pi, 100, "bio_close_file", 2500);
	if (ASSERT_NOT_NULL(r4) && ASSERT_TRUE(r4 != r1))
		ASSERT_U64_EQ(r4->start_time, 77777);
out:
	procinfo__put(pi, r1);
	procinfo__put(pi, r2);
	procinfo__put(pi, r3);
	procinfo__put(pi, r4);
	procinfo__free(pi);
	rm_tree(root);
}

TEST(cached_process_that_exits_keeps_its_name)
{
	struct config cfg = { 0 };
	struct proc_resource *r1 = NULL, *r2 = NULL;
	struct procinfo *pi = NULL;
	char root[PATH_MAX];

	if (!copy_fixture(100, root))
		goto out;
	pi = open_pi(&cfg, root, 16);
	if (!ASSERT_NOT_NULL(pi))
		goto out;
	r1 = procinfo__get(pi, 100, "redis-server", 1000);
	rm_tree(root); /* it exits */
	r2 = procinfo__get(pi, 100, "redis-server", 9000);
	if (ASSERT_TRUE(r1 && r2 == r1))
		ASSERT_STREQ(r2->exe_name, "redis-server");
out:
	procinfo__put(pi, r1);
	procinfo__put(pi, r2);
	procinfo__free(pi);
	rm_tree(root);
}

/* /proc content is untrusted: bounded reads, broken files do not break the agent. */
TEST(untrusted_proc_content)
{
	struct config cfg = { .service.command_line = true };
	struct proc_resource *r = NULL;
	struct procinfo *pi = NULL;
	char root[PATH_MAX];
	char *big = malloc(70 * 1024);
	size_t n;

	if (!ASSERT_NOT_NULL(big) || !copy_fixture(100, root))
		goto out;
	/* 10 KB of arguments: cut at 4096 bytes. */
	memset(big, 'x', 10000);
	for (size_t i = 100; i < 10000; i += 100)
		big[i] = '\0';
	if (!write_file(root, 100, "cmdline", big, 10000))
		goto out;
	/* OTEL_SERVICE_NAME past the 64 KiB bound is not seen; a NUL-free blob first. */
	memset(big, 'A', 66 * 1024);
	n = 66 * 1024;
	memcpy(big + n, "\0OTEL_SERVICE_NAME=late", 24);
	if (!write_file(root, 100, "environ", big, n + 24))
		goto out;
	pi = open_pi(&cfg, root, 16);
	if (!ASSERT_NOT_NULL(pi))
		goto out;
	r = procinfo__get(pi, 100, "redis-server", 1);
	if (!ASSERT_NOT_NULL(r))
		goto out;
	ASSERT_EQ(strlen(r->command_line), 4096);
	ASSERT_EQ(r->command_line[100], ' ');
	ASSERT_STREQ(r->service_name, "redis-server");
	procinfo__put(pi, r);
	r = NULL;

	/* A stat with no ')' is treated as unreadable: the kernel's comm names it. */
	procinfo__free(pi);
	pi = NULL;
	if (!write_file(root, 100, "stat", "100 (broken", 11))
		goto out;
	pi = open_pi(&cfg, root, 16);
	if (!ASSERT_NOT_NULL(pi))
		goto out;
	r = procinfo__get(pi, 100, "redis-srv", 1);
	if (ASSERT_NOT_NULL(r)) {
		ASSERT_U64_EQ(r->start_time, 0);
		ASSERT_STREQ(r->service_name, "redis-srv");
	}
out:
	procinfo__put(pi, r);
	procinfo__free(pi);
	rm_tree(root);
	free(big);
}

/* The real /proc, for this very process. */
TEST(real_proc_self)
{
	char target[PATH_MAX], *base;
	struct config cfg = { 0 };
	struct procinfo *pi;
	struct proc_resource *r;
	ssize_t n = readlink("/proc/self/exe", target, sizeof(target) - 1);

	if (n <= 0) {
		test_skip("no /proc/self/exe");
		return;
	}
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	pi = open_pi(&cfg, "/proc", 16);
	if (!ASSERT_NOT_NULL(pi))
		return;
	r = procinfo__get(pi, (uint32_t)getpid(), "test_procinfo", 1);
	if (ASSERT_NOT_NULL(r)) {
		ASSERT_STREQ(r->exe_name, base);
		ASSERT_GT(r->start_time, 0);
	}
	procinfo__put(pi, r);
	procinfo__free(pi);
}

TEST(gone_process_named_from_kernel_environ)
{
	static const char env[] = "PATH=/bin\0OTEL_SERVICE_NAME=checkout\0HOME=/";
	static const char cut[] = "PATH=/bin\0OTEL_SERVICE_NAME=check";
	struct procinfo_env whole = { env, sizeof(env), false };
	struct procinfo_env partial = { cut, sizeof(cut) - 1, true };
	struct config cfg = { 0 };
	struct procinfo *pi = open_pi(&cfg, NULL, 16);
	struct proc_resource *r;

	if (!ASSERT_NOT_NULL(pi))
		return;
	/* Pid 9999 is not in the fake /proc: the process has exited. */
	r = procinfo__get_env(pi, 9999, "curl", &whole, 1);
	if (ASSERT_NOT_NULL(r)) {
		ASSERT_STREQ(r->service_name, "checkout");
		ASSERT_STREQ(attr_str(r, "process.executable.name"), "curl");
		procinfo__put(pi, r);
	}
	/* The cache keeps the name for the socket records that come after. */
	r = procinfo__get(pi, 9999, "curl", 2);
	if (ASSERT_NOT_NULL(r)) {
		ASSERT_STREQ(r->service_name, "checkout");
		procinfo__put(pi, r);
	}
	/* A value cut by the kernel's bound is not trusted. */
	r = procinfo__get_env(pi, 9998, "curl", &partial, 1);
	if (ASSERT_NOT_NULL(r)) {
		ASSERT_STREQ(r->service_name, "curl");
		procinfo__put(pi, r);
	}
	/* A live process's /proc environ comes first. */
	r = procinfo__get_env(pi, 401, "envoy", &whole, 1);
	if (ASSERT_NOT_NULL(r)) {
		ASSERT_STREQ(r->service_name, "edge-proxy");
		procinfo__put(pi, r);
	}
	procinfo__free(pi);
}
