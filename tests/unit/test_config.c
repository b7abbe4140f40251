// SPDX-License-Identifier: Apache-2.0
/*
 * config: defaults, every key type, flow style, the environment overlay, the
 * command-line overrides, printing, and the exact text of the error messages.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "test.h"

#define MAX_ENV 16

/* A temporary config file; its path is what error messages start with. */
struct tmpfile {
	char path[64];
};

static bool tmp_write(struct tmpfile *t, const char *yaml)
{
	int fd;
	size_t len = strlen(yaml);

	snprintf(t->path, sizeof(t->path), "/tmp/tcpotel-test-XXXXXX.yaml");
	fd = mkstemps(t->path, 5);
	if (!ASSERT_GE(fd, 0))
		return false;
	if (!ASSERT_EQ(write(fd, yaml, len), (ssize_t)len)) {
		close(fd);
		return false;
	}
	close(fd);
	return true;
}

static void tmp_remove(struct tmpfile *t)
{
	unlink(t->path);
}

/* envp from string literals (config__load takes the mutable type environ has). */
struct env {
	char *v[MAX_ENV + 1];
};

static char *const *env_make(struct env *e, const char *const *vars)
{
	size_t n = 0;

	for (; vars && vars[n] && n < MAX_ENV; n++)
		e->v[n] = strdup(vars[n]);
	e->v[n] = NULL;
	return e->v;
}

static void env_free(struct env *e)
{
	for (size_t i = 0; e->v[i]; i++)
		free(e->v[i]);
}

struct loaded {
	struct config *cfg;
	int err; /* errno when cfg is NULL */
	char *msg; /* everything written to the error stream */
	size_t msg_len;
};

/* Loads yaml (NULL: no file) with the given environment and overrides, capturing errors. */
static void load(struct loaded *l, const char *yaml, const char *const *vars,
		 const struct config_overrides *ov, struct tmpfile *t)
{
	struct env e;
	FILE *err;

	memset(l, 0, sizeof(*l));
	err = open_memstream(&l->msg, &l->msg_len);
	if (yaml && !tmp_write(t, yaml)) {
		fclose(err);
		return;
	}
	l->cfg = config__load(yaml ? t->path : NULL, env_make(&e, vars), ov, err);
	l->err = l->cfg ? 0 : errno;
	fclose(err);
	env_free(&e);
}

static void loaded_free(struct loaded *l, struct tmpfile *t)
{
	config__free(l->cfg);
	free(l->msg);
	if (t)
		tmp_remove(t);
}

/* "F:" at the start of a line stands for the file's path. */
static char *expand(const char *expected, const char *path)
{
	size_t lines = 1, cap, len = 0;
	bool bol = true;
	char *out;

	for (const char *p = expected; *p; p++)
		lines += *p == '\n';
	cap = strlen(expected) + lines * strlen(path) + 1;
	out = malloc(cap);

	for (const char *p = expected; *p; p++) {
		if (bol && p[0] == 'F' && p[1] == ':') {
			len += (size_t)snprintf(out + len, cap - len, "%s", path);
		} else {
			out[len++] = *p;
		}
		bol = *p == '\n';
		out[len] = '\0';
	}
	out[len] = '\0';
	return out;
}

TEST(config_defaults)
{
	struct config *cfg = config__defaults();

	if (!ASSERT_NOT_NULL(cfg))
		return;
	ASSERT_TRUE(cfg->path == NULL);
	ASSERT_EQ(cfg->capture.backend, BACKEND_AUTO);
	ASSERT_EQ(cfg->capture.n_netns, 0);
	ASSERT_EQ(cfg->capture.n_exclude_ports, 0);
	ASSERT_EQ(cfg->capture.max_sockets, 65536);
	ASSERT_TRUE(cfg->spans.enabled);
	ASSERT_DOUBLE_NEAR(cfg->spans.sampling_ratio, 1.0, 0);
	ASSERT_U64_EQ(cfg->spans.idle_timeout_ms, 5000);
	ASSERT_U64_EQ(cfg->spans.response_timeout_ms, 300000);
	ASSERT_TRUE(cfg->metrics.enabled);
	ASSERT_U64_EQ(cfg->metrics.interval_ms, 10000);
	ASSERT_TRUE(cfg->metrics.per_process);
	ASSERT_EQ(cfg->service.n_rules, 0);
	ASSERT_FALSE(cfg->service.command_line);
	ASSERT_EQ(cfg->resource.attributes.n, 0);
	ASSERT_STREQ(cfg->exporter.otlp.endpoint, "http://localhost:4318");
	ASSERT_STREQ(cfg->exporter.otlp.traces_endpoint, "http://localhost:4318/v1/traces");
	ASSERT_STREQ(cfg->exporter.otlp.metrics_endpoint, "http://localhost:4318/v1/metrics");
	ASSERT_EQ(cfg->exporter.otlp.headers.n, 0);
	ASSERT_EQ(cfg->exporter.otlp.traces_headers.n, 0);
	ASSERT_EQ(cfg->exporter.otlp.metrics_headers.n, 0);
	ASSERT_EQ(cfg->exporter.otlp.compression, COMPRESSION_GZIP);
	ASSERT_U64_EQ(cfg->exporter.otlp.timeout_ms, 10000);
	ASSERT_STREQ(cfg->exporter.otlp.tls.ca_file, "");
	ASSERT_STREQ(cfg->exporter.otlp.tls.cert_file, "");
	ASSERT_STREQ(cfg->exporter.otlp.tls.key_file, "");
	ASSERT_FALSE(cfg->exporter.otlp.tls.insecure_skip_verify);
	ASSERT_U64_EQ(cfg->exporter.otlp.retry.initial_interval_ms, 1000);
	ASSERT_U64_EQ(cfg->exporter.otlp.retry.max_interval_ms, 30000);
	ASSERT_U64_EQ(cfg->exporter.otlp.retry.max_elapsed_time_ms, 300000);
	ASSERT_EQ(cfg->exporter.otlp.queue_size, 1024);
	ASSERT_FALSE(cfg->exporter.stdout);
	ASSERT_STREQ(cfg->ui.listen, "127.0.0.1:9464");
	ASSERT_EQ(cfg->log.level, LOG_INFO);
	ASSERT_STREQ(cfg->self.service_name, "tcpotel");
	ASSERT_EQ(cfg->self.attributes.n, 0);
	ASSERT_FALSE(config__world_readable_secrets(cfg));
	config__free(cfg);
	config__free(NULL);
}

TEST(config_key_table)
{
	size_t n = config_key_count();

	ASSERT_GE(n, 27);
	ASSERT_STREQ(config_key_path(0), "capture.backend");
	ASSERT_TRUE(config_key_path(n) == NULL);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (!ASSERT_TRUE(strcmp(config_key_path(i), config_key_path(j)) != 0))
				return;
}

static const char every_key_yaml[] =
	"capture:\n"
	"  backend: kprobe\n"
	"  netns: [/run/netns/blue, 4026531840]\n"
	"  exclude_ports:\n"
	"    - 22\n"
	"    - 65535\n"
	"  max_sockets: 1024\n"
	"spans:\n"
	"  enabled: false\n"
	"  sampling_ratio: 0.25\n"
	"  idle_timeout: 1m30s\n"
	"  response_timeout: 2h\n"
	"  external_clients: [203.0.113.0/24, \"2001:db8::/32\", 198.51.100.7]\n"
	"  internal_networks:\n"
	"    - 10.0.0.0/8\n"
	"    - \"::ffff:192.168.0.0/112\"\n"
	"metrics:\n"
	"  enabled: False\n"
	"  interval: 1.5s\n"
	"  per_process: false\n"
	"service:\n"
	"  rules:\n"
	"    - {match: {exe: redis-server}, name: cache}\n"
	"    - match:\n"
	"        cmdline: \"-jar orders.jar\"\n"
	"        service: java\n"
	"      name: orders\n"
	"  command_line: true\n"
	"resource:\n"
	"  attributes:\n"
	"    deployment.environment.name: prod\n"
	"    team: 42\n"
	"exporter:\n"
	"  otlp:\n"
	"    endpoint: https://collector.example:4318/otlp/\n"
	"    headers: {Authorization: \"Bearer s3cret\", X-Tenant: a}\n"
	"    compression: none\n"
	"    timeout: 500ms\n"
	"    tls: {ca_file: /etc/ca.pem, cert_file: c.pem, key_file: k.pem, "
	"insecure_skip_verify: true}\n"
	"    retry: {initial_interval: 250ms, max_interval: 1h, max_elapsed_time: 24h}\n"
	"    queue_size: 1048576\n"
	"  stdout: TRUE\n"
	"ui:\n"
	"  listen: \"[::1]:9000\"\n"
	"log:\n"
	"  level: debug\n";

/* auth: the Authorization value expected (printing redacts it). */
static void check_every_key(const struct config *cfg, const char *auth)
{
	ASSERT_EQ(cfg->capture.backend, BACKEND_KPROBE);
	if (ASSERT_EQ(cfg->capture.n_netns, 2)) {
		ASSERT_STREQ(cfg->capture.netns[0], "/run/netns/blue");
		ASSERT_STREQ(cfg->capture.netns[1], "4026531840");
	}
	if (ASSERT_EQ(cfg->capture.n_exclude_ports, 2)) {
		ASSERT_EQ(cfg->capture.exclude_ports[0], 22);
		ASSERT_EQ(cfg->capture.exclude_ports[1], 65535);
	}
	ASSERT_EQ(cfg->capture.max_sockets, 1024);
	ASSERT_FALSE(cfg->spans.enabled);
	ASSERT_DOUBLE_NEAR(cfg->spans.sampling_ratio, 0.25, 0);
	ASSERT_U64_EQ(cfg->spans.idle_timeout_ms, 90000);
	ASSERT_U64_EQ(cfg->spans.response_timeout_ms, 7200000);
	if (ASSERT_EQ(cfg->spans.external_clients.n, 3)) {
		static const uint8_t in[4] = { 203, 0, 113, 200 }, out[4] = { 203, 0, 114, 1 };
		static const uint8_t one[4] = { 198, 51, 100, 7 }, next[4] = { 198, 51, 100, 8 };
		static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xff, [15] = 1 };

		ASSERT_EQ(cfg->spans.external_clients.items[0].prefix, 24);
		ASSERT_TRUE(cidr_list_contains(&cfg->spans.external_clients, AF_INET, in));
		ASSERT_FALSE(cidr_list_contains(&cfg->spans.external_clients, AF_INET, out));
		ASSERT_TRUE(cidr_list_contains(&cfg->spans.external_clients, AF_INET6, v6));
		/* one address: a /32 */
		ASSERT_EQ(cfg->spans.external_clients.items[2].prefix, 32);
		ASSERT_TRUE(cidr_list_contains(&cfg->spans.external_clients, AF_INET, one));
		ASSERT_FALSE(cidr_list_contains(&cfg->spans.external_clients, AF_INET, next));
	}
	if (ASSERT_EQ(cfg->spans.internal_networks.n, 2)) {
		static const uint8_t lan[4] = { 192, 168, 7, 1 };

		/* the v4-mapped range is kept as the IPv4 range it stands for */
		ASSERT_EQ(cfg->spans.internal_networks.items[1].family, AF_INET);
		ASSERT_EQ(cfg->spans.internal_networks.items[1].prefix, 16);
		ASSERT_TRUE(cidr_list_contains(&cfg->spans.internal_networks, AF_INET, lan));
	}
	ASSERT_FALSE(cfg->metrics.enabled);
	ASSERT_U64_EQ(cfg->metrics.interval_ms, 1500);
	ASSERT_FALSE(cfg->metrics.per_process);
	if (ASSERT_EQ(cfg->service.n_rules, 2)) {
		ASSERT_STREQ(cfg->service.rules[0].match_exe, "redis-server");
		ASSERT_TRUE(cfg->service.rules[0].match_cmdline == NULL);
		ASSERT_TRUE(cfg->service.rules[0].match_service == NULL);
		ASSERT_STREQ(cfg->service.rules[0].name, "cache");
		ASSERT_TRUE(cfg->service.rules[1].match_exe == NULL);
		ASSERT_STREQ(cfg->service.rules[1].match_cmdline, "-jar orders.jar");
		ASSERT_STREQ(cfg->service.rules[1].match_service, "java");
		ASSERT_STREQ(cfg->service.rules[1].name, "orders");
	}
	ASSERT_TRUE(cfg->service.command_line);
	if (ASSERT_EQ(cfg->resource.attributes.n, 2)) {
		ASSERT_STREQ(cfg->resource.attributes.items[0].key, "deployment.environment.name");
		ASSERT_STREQ(cfg->resource.attributes.items[0].value, "prod");
		ASSERT_STREQ(cfg->resource.attributes.items[1].key, "team");
		ASSERT_STREQ(cfg->resource.attributes.items[1].value, "42");
	}
	ASSERT_STREQ(cfg->exporter.otlp.endpoint, "https://collector.example:4318/otlp/");
	ASSERT_STREQ(cfg->exporter.otlp.traces_endpoint,
		     "https://collector.example:4318/otlp/v1/traces");
	ASSERT_STREQ(cfg->exporter.otlp.metrics_endpoint,
		     "https://collector.example:4318/otlp/v1/metrics");
	if (ASSERT_EQ(cfg->exporter.otlp.headers.n, 2)) {
		ASSERT_STREQ(cfg->exporter.otlp.headers.items[0].key, "Authorization");
		ASSERT_STREQ(cfg->exporter.otlp.headers.items[0].value, auth);
		ASSERT_STREQ(cfg->exporter.otlp.headers.items[1].key, "X-Tenant");
	}
	ASSERT_EQ(cfg->exporter.otlp.traces_headers.n, 2);
	ASSERT_EQ(cfg->exporter.otlp.metrics_headers.n, 2);
	ASSERT_EQ(cfg->exporter.otlp.compression, COMPRESSION_NONE);
	ASSERT_U64_EQ(cfg->exporter.otlp.timeout_ms, 500);
	ASSERT_STREQ(cfg->exporter.otlp.tls.ca_file, "/etc/ca.pem");
	ASSERT_STREQ(cfg->exporter.otlp.tls.cert_file, "c.pem");
	ASSERT_STREQ(cfg->exporter.otlp.tls.key_file, "k.pem");
	ASSERT_TRUE(cfg->exporter.otlp.tls.insecure_skip_verify);
	ASSERT_U64_EQ(cfg->exporter.otlp.retry.initial_interval_ms, 250);
	ASSERT_U64_EQ(cfg->exporter.otlp.retry.max_interval_ms, 3600000);
	ASSERT_U64_EQ(cfg->exporter.otlp.retry.max_elapsed_time_ms, 86400000);
	ASSERT_EQ(cfg->exporter.otlp.queue_size, 1048576);
	ASSERT_TRUE(cfg->exporter.stdout);
	ASSERT_STREQ(cfg->ui.listen, "[::1]:9000");
	ASSERT_EQ(cfg->log.level, LOG_DEBUG);
}

TEST(config_every_key_parsed)
{
	struct tmpfile t;
	struct loaded l;

	load(&l, every_key_yaml, NULL, NULL, &t);
	if (ASSERT_NOT_NULL(l.cfg)) {
		ASSERT_STREQ(l.cfg->path, t.path);
		check_every_key(l.cfg, "Bearer s3cret");
	} else {
		printf("%s", l.msg);
	}
	loaded_free(&l, &t);
}

/* The whole document in flow style reads the same as block style. */
TEST(config_flow_style)
{
	static const char yaml[] =
		"{capture: {backend: tracepoint, exclude_ports: [80, 443]},"
		" exporter: {otlp: {tls: {ca_file: \"\", insecure_skip_verify: true},"
		" retry: {max_interval: 1m}, headers: {a: b}}},"
		" service: {rules: [{match: {exe: nginx}, name: web}]}, ui: {listen: \"\"}}\n";
	struct tmpfile t;
	struct loaded l;

	load(&l, yaml, NULL, NULL, &t);
	if (ASSERT_NOT_NULL(l.cfg)) {
		ASSERT_EQ(l.cfg->capture.backend, BACKEND_TRACEPOINT);
		ASSERT_EQ(l.cfg->capture.n_exclude_ports, 2);
		ASSERT_TRUE(l.cfg->exporter.otlp.tls.insecure_skip_verify);
		ASSERT_U64_EQ(l.cfg->exporter.otlp.retry.max_interval_ms, 60000);
		ASSERT_U64_EQ(l.cfg->exporter.otlp.retry.initial_interval_ms, 1000);
		ASSERT_EQ(l.cfg->exporter.otlp.headers.n, 1);
		ASSERT_EQ(l.cfg->service.n_rules, 1);
		ASSERT_STREQ(l.cfg->ui.listen, "");
	} else {
		printf("%s", l.msg);
	}
	loaded_free(&l, &t);
}

/* Empty values: an empty section or list is its default, an empty string is "". */
TEST(config_empty_values)
{
	static const char yaml[] = "# only comments\ncapture:\nspans: {}\nexporter:\n  otlp:\n"
				   "    headers:\n    tls:\n      ca_file:\nui:\n  listen: ~\n"
				   "service:\n  rules: []\n";
	struct tmpfile t;
	struct loaded l;

	load(&l, yaml, NULL, NULL, &t);
	if (ASSERT_NOT_NULL(l.cfg)) {
		ASSERT_EQ(l.cfg->capture.max_sockets, 65536);
		ASSERT_STREQ(l.cfg->exporter.otlp.tls.ca_file, "");
		ASSERT_STREQ(l.cfg->ui.listen, "");
		ASSERT_EQ(l.cfg->service.n_rules, 0);
	}
	loaded_free(&l, &t);

	load(&l, "", NULL, NULL, &t);
	if (ASSERT_NOT_NULL(l.cfg))
		ASSERT_EQ(l.cfg->capture.max_sockets, 65536);
	loaded_free(&l, &t);
}

TEST(config_durations)
{
	static const struct {
		const char *text;
		uint64_t ms;
	} ok[] = {
		{ "10ms", 10 },	    { "10s", 10000 }, { "1m", 60000 },	  { "1h", 3600000 },
		{ "1m30s", 90000 }, { "0.5s", 500 },  { "\"2s\"", 2000 }, { "1h0m0s", 3600000 },
	};
	char yaml[128];

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		struct tmpfile t;
		struct loaded l;

		snprintf(yaml, sizeof(yaml), "spans:\n  idle_timeout: %s\n", ok[i].text);
		load(&l, yaml, NULL, NULL, &t);
		if (ASSERT_NOT_NULL(l.cfg))
			ASSERT_U64_EQ(l.cfg->spans.idle_timeout_ms, ok[i].ms);
		else
			printf("    %s: %s", ok[i].text, l.msg);
		loaded_free(&l, &t);
	}
}

struct bad_case {
	const char *yaml;
	const char *expected; /* every line, "F" = the file */
};

static const struct bad_case bad_cases[] = {
	/* unknown keys, with and without a suggestion */
	{ "exporter:\n  otlp:\n    endpont: http://x:4318\n",
	  "F:3:5: exporter.otlp.endpont: unknown key (did you mean 'endpoint'?)\n" },
	{ "spans:\n  enable: true\n",
	  "F:2:3: spans.enable: unknown key (did you mean 'enabled'?)\n" },
	{ "foo: 1\n", "F:1:1: foo: unknown key (expected one of capture, spans, metrics, service, "
		      "resource, exporter, ui, log)\n" },
	{ "exporter:\n  timeout: 5s\n",
	  "F:2:3: exporter.timeout: unknown key (did you mean 'exporter.otlp.timeout'?)\n" },
	{ "capture:\n  bogus_setting: 1\n",
	  "F:2:3: capture.bogus_setting: unknown key (expected one of backend, netns, "
	  "exclude_ports, max_sockets)\n" },
	{ "exporter.otlp.endpoint: http://a\n",
	  "F:1:1: exporter.otlp.endpoint: unknown key (write nested maps, not dotted keys)\n" },
	/* wrong types */
	{ "capture: 5\n", "F:1:10: capture: got '5' (expected a map with keys backend, netns, "
			  "exclude_ports, max_sockets)\n" },
	{ "spans: [1, 2]\n", "F:1:8: spans: got a list (expected a map with keys enabled, "
			     "sampling_ratio, idle_timeout, response_timeout, external_clients, "
			     "internal_networks)\n" },
	/* address ranges */
	{ "spans:\n  external_clients: [10.1.2.3/8]\n",
	  "F:2:22: spans.external_clients[0]: '10.1.2.3/8' has address bits set past the prefix "
	  "(did you mean 10.0.0.0/8?) (expected an address or a CIDR like 10.0.0.0/8 or "
	  "fd00::/8)\n" },
	{ "spans:\n  external_clients: [10.0.0.0/33]\n",
	  "F:2:22: spans.external_clients[0]: '10.0.0.0/33': the prefix length is 0..32 (expected "
	  "an address or a CIDR like 10.0.0.0/8 or fd00::/8)\n" },
	{ "spans:\n  internal_networks:\n    - 10.0.0.0/8\n    - lan\n",
	  "F:4:7: spans.internal_networks[1]: 'lan' is not an address or a CIDR (like 10.0.0.0/8 "
	  "or fd00::/8) (expected an address or a CIDR like 10.0.0.0/8 or fd00::/8)\n" },
	{ "spans:\n  internal_networks: 10.0.0.0/8\n",
	  "F:2:22: spans.internal_networks: got '10.0.0.0/8' (expected a list of addresses or "
	  "CIDRs like 10.0.0.0/8 or fd00::/8)\n" },
	{ "metrics:\n  enabled: {a: b}\n",
	  "F:2:12: metrics.enabled: got a map (expected true or false)\n" },
	{ "exporter:\n  otlp:\n    headers: [a, b]\n",
	  "F:3:14: exporter.otlp.headers: got a list (expected a map of names to strings)\n" },
	{ "capture:\n  exclude_ports: 80\n",
	  "F:2:18: capture.exclude_ports: got '80' (expected a list of ports in 1..65535)\n" },
	{ "- a\n- b\n", "F:1:1: (top level): got a list (expected a map of sections)\n" },
	/* out of range, bad scalars */
	{ "capture:\n  max_sockets: 100\n",
	  "F:2:16: capture.max_sockets: 100 is out of range (expected an integer in "
	  "1024..4194304)\n" },
	{ "capture:\n  max_sockets: lots\n",
	  "F:2:16: capture.max_sockets: 'lots' is not an integer (expected an integer in "
	  "1024..4194304)\n" },
	{ "spans:\n  sampling_ratio: 1.5\n",
	  "F:2:19: spans.sampling_ratio: 1.5 is out of range (expected a number in 0..1)\n" },
	{ "spans:\n  enabled: yes\n",
	  "F:2:12: spans.enabled: 'yes' is not a boolean (expected true or false)\n" },
	{ "exporter:\n  otlp:\n    queue_size: 0\n",
	  "F:3:17: exporter.otlp.queue_size: 0 is out of range (expected an integer in "
	  "1..1048576)\n" },
	/* durations */
	{ "spans:\n  idle_timeout: 10\n",
	  "F:2:17: spans.idle_timeout: '10' has no unit (expected a duration like 500ms, 10s, 1m "
	  "or 2h, in 10ms..1h)\n" },
	{ "exporter:\n  otlp:\n    timeout: -1s\n",
	  "F:3:14: exporter.otlp.timeout: '-1s' is negative (expected a duration like 500ms, 10s, "
	  "1m or 2h, in 100ms..5m)\n" },
	{ "metrics:\n  interval: 1.5.s\n",
	  "F:2:13: metrics.interval: '1.5.s' is not a duration (expected a duration like 500ms, "
	  "10s, 1m or 2h, in 100ms..1h)\n" },
	{ "metrics:\n  interval: 2h\n",
	  "F:2:13: metrics.interval: 2h is out of range (expected a duration like 500ms, 10s, 1m "
	  "or 2h, in 100ms..1h)\n" },
	{ "metrics:\n  interval: 0\n",
	  "F:2:13: metrics.interval: 0 is out of range (expected a duration like 500ms, 10s, 1m "
	  "or 2h, in 100ms..1h)\n" },
	{ "spans:\n  idle_timeout: 0.5ms\n",
	  "F:2:17: spans.idle_timeout: '0.5ms' is not a whole number of milliseconds (expected a "
	  "duration like 500ms, 10s, 1m or 2h, in 10ms..1h)\n" },
	{ "exporter:\n  otlp:\n    retry:\n      initial_interval: 40s\n",
	  "F:4:25: exporter.otlp.retry.initial_interval: 40s is longer than max_interval 30s "
	  "(expected at most max_interval)\n" },
	/* enums */
	{ "capture:\n  backend: ebpf\n",
	  "F:2:12: capture.backend: 'ebpf' is not a valid value (expected one of auto, "
	  "tracepoint, fentry, kprobe)\n" },
	{ "exporter:\n  otlp:\n    compression: zstd\n",
	  "F:3:18: exporter.otlp.compression: 'zstd' is not a valid value (expected one of gzip, "
	  "none)\n" },
	{ "log:\n  level: verbose\n",
	  "F:2:10: log.level: 'verbose' is not a valid value (expected one of error, warn, info, "
	  "debug)\n" },
	/* URLs and listen addresses */
	{ "exporter:\n  otlp:\n    endpoint: ftp://x\n",
	  "F:3:15: exporter.otlp.endpoint: 'ftp://x' is not an http(s) URL (expected an http:// "
	  "or https:// URL with a host)\n" },
	{ "exporter:\n  otlp:\n    endpoint: http:///v1\n",
	  "F:3:15: exporter.otlp.endpoint: 'http:///v1' has no host (expected an http:// or "
	  "https:// URL with a host)\n" },
	{ "exporter:\n  otlp:\n    endpoint: http://h:99999\n",
	  "F:3:15: exporter.otlp.endpoint: 'http://h:99999' has a bad port (expected an http:// "
	  "or https:// URL with a host)\n" },
	{ "exporter:\n  otlp:\n    endpoint: http://u:p@h\n",
	  "F:3:15: exporter.otlp.endpoint: credentials in the URL are not allowed (use "
	  "exporter.otlp.headers) (expected an http:// or https:// URL with a host)\n" },
	{ "ui:\n  listen: localhost:0\n",
	  "F:2:11: ui.listen: 'localhost:0' has a bad port (expected host:port with a port in "
	  "1..65535, or \"\" to turn it off)\n" },
	{ "ui:\n  listen: localhost\n",
	  "F:2:11: ui.listen: 'localhost' has no port (expected host:port with a port in "
	  "1..65535, or \"\" to turn it off)\n" },
	{ "ui:\n  listen: \"::1:9464\"\n",
	  "F:2:11: ui.listen: '::1:9464' needs brackets around the IPv6 address (expected "
	  "host:port with a port in 1..65535, or \"\" to turn it off)\n" },
	/* lists */
	{ "capture:\n  netns: [foo]\n",
	  "F:2:11: capture.netns[0]: 'foo' is neither an absolute path nor an inode number "
	  "(expected a /run/netns/NAME path or a namespace inode number)\n" },
	{ "capture:\n  exclude_ports: [80, 0, x]\n",
	  "F:2:23: capture.exclude_ports[1]: 0 is out of range (expected a port in 1..65535)\n"
	  "F:2:26: capture.exclude_ports[2]: 'x' is not a port number (expected a port in "
	  "1..65535)\n" },
	/* maps */
	{ "exporter:\n  otlp:\n    headers:\n      \"bad name\": x\n",
	  "F:4:7: exporter.otlp.headers.bad name: not a valid name (expected an HTTP header "
	  "name)\n" },
	{ "exporter:\n  otlp:\n    headers:\n      Authorization: \"a\\nb\"\n",
	  "F:4:22: exporter.otlp.headers.Authorization: value contains a line break or NUL "
	  "(expected a single-line string)\n" },
	{ "resource:\n  attributes:\n    a: [1]\n",
	  "F:3:8: resource.attributes.a: got a list (expected a string)\n" },
	/* rules */
	{ "service:\n  rules:\n    - {match: {}, name: c}\n",
	  "F:3:15: service.rules[0].match: matches nothing (expected at least one of exe, "
	  "cmdline, service)\n" },
	{ "service:\n  rules:\n    - {match: {exe: x}}\n",
	  "F:3:7: service.rules[0]: missing 'name' (expected {match: {exe: NAME}, name: "
	  "SERVICE})\n" },
	{ "service:\n  rules:\n    - {match: {exee: x}, name: y}\n",
	  "F:3:16: service.rules[0].match.exee: unknown key (did you mean 'exe'?)\n" },
	{ "service:\n  rules:\n    - cache\n",
	  "F:3:7: service.rules[0]: got 'cache' (expected {match: {exe: NAME}, name: SERVICE})\n" },
	{ "service:\n  rules:\n    - {match: {exe: x}, name: \"\"}\n",
	  "F:3:31: service.rules[0].name: empty value (expected a non-empty string)\n" },
	/* duplicates, several errors at once */
	{ "spans:\n  enabled: true\n  enabled: false\n",
	  "F:3:3: spans.enabled: duplicate key (first set at line 2)\n" },
	{ "log:\n  level: info\nlog:\n  level: debug\n",
	  "F:3:1: log: duplicate key (first set at line 1)\n" },
	{ "capture:\n  max_sockets: 1\n  backend: x\nui:\n  listen: nope\n",
	  "F:2:16: capture.max_sockets: 1 is out of range (expected an integer in "
	  "1024..4194304)\n"
	  "F:3:12: capture.backend: 'x' is not a valid value (expected one of auto, tracepoint, "
	  "fentry, kprobe)\n"
	  "F:5:11: ui.listen: 'nope' has no port (expected host:port with a port in 1..65535, or "
	  "\"\" to turn it off)\n" },
	/* malformed YAML */
	{ "capture:\n\tbackend: auto\n",
	  "F:2:1: invalid YAML: found character that cannot start any token (tabs cannot indent "
	  "YAML: use spaces)\n" },
	{ "capture: {backend: auto\n",
	  "F:2:1: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping "
	  "started at line 1 column 10)\n" },
	{ "capture:\n  netns: [a, b\n",
	  "F:3:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence "
	  "started at line 2 column 10)\n" },
	{ "log:\n  level: \"info\n",
	  "F:3:1: invalid YAML: found unexpected end of stream (while scanning a quoted scalar "
	  "started at line 2 column 10)\n" },
	{ "log: {level: info}\n---\nspans: {}\n",
	  "F:2:1: a second YAML document (expected one document per file)\n" },
};

TEST(config_bad_files)
{
	ASSERT_GE(ARRAY_SIZE(bad_cases), 25);
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		struct tmpfile t;
		struct loaded l;
		char *expected;

		load(&l, bad_cases[i].yaml, NULL, NULL, &t);
		expected = expand(bad_cases[i].expected, t.path);
		if (!ASSERT_TRUE(l.cfg == NULL) || !ASSERT_EQ(l.err, EINVAL) ||
		    !ASSERT_STREQ(l.msg, expected))
			printf("    case %zu:\n%s", i, bad_cases[i].yaml);
		free(expected);
		loaded_free(&l, &t);
	}
}

TEST(config_unreadable_file)
{
	struct loaded l;
	FILE *err;

	memset(&l, 0, sizeof(l));
	err = open_memstream(&l.msg, &l.msg_len);
	l.cfg = config__load("/nonexistent/tcpotel.yaml", NULL, NULL, err);
	l.err = errno;
	fclose(err);
	ASSERT_TRUE(l.cfg == NULL);
	ASSERT_EQ(l.err, ENOENT);
	ASSERT_STREQ(l.msg, "cannot read /nonexistent/tcpotel.yaml: No such file or directory\n");
	loaded_free(&l, NULL);

	err = open_memstream(&l.msg, &l.msg_len);
	l.cfg = config__load("/", NULL, NULL, err);
	l.err = errno;
	fclose(err);
	ASSERT_TRUE(l.cfg == NULL);
	ASSERT_EQ(l.err, EISDIR);
	ASSERT_STREQ(l.msg, "cannot read /: Is a directory\n");
	loaded_free(&l, NULL);
}

TEST(config_env_overlay)
{
	static const char yaml[] = "exporter:\n  otlp:\n    endpoint: http://file:4318\n"
				   "    headers: {Authorization: file, X-Keep: k}\n"
				   "    timeout: 1s\n";
	static const char *const vars[] = {
		"OTEL_EXPORTER_OTLP_ENDPOINT=https://env.example:4318/",
		"OTEL_EXPORTER_OTLP_HEADERS= authorization = Bearer%20x%3D%3D , api-key=k2,",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS=x-trace=1,api-key=t",
		"OTEL_EXPORTER_OTLP_METRICS_HEADERS=x-metric=2",
		"OTEL_EXPORTER_OTLP_TIMEOUT=2500",
		"OTEL_EXPORTER_OTLP_COMPRESSION=none",
		"OTEL_EXPORTER_OTLP_CERTIFICATE=/ca.pem",
		"OTEL_EXPORTER_OTLP_CLIENT_KEY=/key.pem",
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=/cert.pem",
		"OTEL_METRIC_EXPORT_INTERVAL=15000",
		"OTEL_RESOURCE_ATTRIBUTES=service.name=ignored,k8s.cluster.name=c%2C1, team = a b ",
		"OTEL_SERVICE_NAME=agent-7",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=",
		"UNRELATED=1",
		NULL,
	};
	const struct kv_list *h;
	struct tmpfile t;
	struct loaded l;

	load(&l, yaml, vars, NULL, &t);
	if (!ASSERT_NOT_NULL(l.cfg)) {
		printf("%s", l.msg);
		loaded_free(&l, &t);
		return;
	}
	ASSERT_STREQ(l.cfg->exporter.otlp.endpoint, "https://env.example:4318/");
	/* An empty variable counts as unset: the traces endpoint is still derived. */
	ASSERT_STREQ(l.cfg->exporter.otlp.traces_endpoint, "https://env.example:4318/v1/traces");
	ASSERT_STREQ(l.cfg->exporter.otlp.metrics_endpoint, "https://env.example:4318/v1/metrics");
	h = &l.cfg->exporter.otlp.headers;
	if (ASSERT_EQ(h->n, 3)) {
		/* Same header in another case replaces the file's, keeping the file's name. */
		ASSERT_STREQ(h->items[0].key, "Authorization");
		ASSERT_STREQ(h->items[0].value, "Bearer x==");
		ASSERT_STREQ(h->items[1].value, "k");
		ASSERT_STREQ(h->items[2].key, "api-key");
		ASSERT_STREQ(h->items[2].value, "k2");
	}
	h = &l.cfg->exporter.otlp.traces_headers;
	if (ASSERT_EQ(h->n, 4)) {
		ASSERT_STREQ(h->items[2].value, "t");
		ASSERT_STREQ(h->items[3].key, "x-trace");
	}
	h = &l.cfg->exporter.otlp.metrics_headers;
	if (ASSERT_EQ(h->n, 4)) {
		ASSERT_STREQ(h->items[2].value, "k2");
		ASSERT_STREQ(h->items[3].key, "x-metric");
	}
	ASSERT_U64_EQ(l.cfg->exporter.otlp.timeout_ms, 2500);
	ASSERT_EQ(l.cfg->exporter.otlp.compression, COMPRESSION_NONE);
	ASSERT_STREQ(l.cfg->exporter.otlp.tls.ca_file, "/ca.pem");
	ASSERT_STREQ(l.cfg->exporter.otlp.tls.key_file, "/key.pem");
	ASSERT_STREQ(l.cfg->exporter.otlp.tls.cert_file, "/cert.pem");
	ASSERT_U64_EQ(l.cfg->metrics.interval_ms, 15000);
	ASSERT_STREQ(l.cfg->self.service_name, "agent-7");
	if (ASSERT_EQ(l.cfg->self.attributes.n, 2)) {
		ASSERT_STREQ(l.cfg->self.attributes.items[0].key, "k8s.cluster.name");
		ASSERT_STREQ(l.cfg->self.attributes.items[0].value, "c,1");
		ASSERT_STREQ(l.cfg->self.attributes.items[1].key, "team");
		ASSERT_STREQ(l.cfg->self.attributes.items[1].value, "a b");
	}
	loaded_free(&l, &t);
}

TEST(config_env_signal_endpoints)
{
	static const char *const vars[] = {
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://base:4318",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://traces:4318/custom",
		NULL,
	};
	static const char *const vars2[] = {
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=https://m.example/x/",
		"OTEL_RESOURCE_ATTRIBUTES=service.name=from-attrs",
		NULL,
	};
	struct loaded l;

	load(&l, NULL, vars, NULL, NULL);
	if (ASSERT_NOT_NULL(l.cfg)) {
		ASSERT_STREQ(l.cfg->exporter.otlp.traces_endpoint, "http://traces:4318/custom");
		ASSERT_STREQ(l.cfg->exporter.otlp.metrics_endpoint, "http://base:4318/v1/metrics");
	}
	loaded_free(&l, NULL);

	load(&l, NULL, vars2, NULL, NULL);
	if (ASSERT_NOT_NULL(l.cfg)) {
		ASSERT_STREQ(l.cfg->exporter.otlp.traces_endpoint,
			     "http://localhost:4318/v1/traces");
		ASSERT_STREQ(l.cfg->exporter.otlp.metrics_endpoint, "https://m.example/x/");
		ASSERT_STREQ(l.cfg->self.service_name, "from-attrs");
		ASSERT_EQ(l.cfg->self.attributes.n, 0);
	}
	loaded_free(&l, NULL);
}

TEST(config_env_errors)
{
	static const struct {
		const char *var;
		const char *expected;
	} cases[] = {
		{ "OTEL_EXPORTER_OTLP_TIMEOUT=abc",
		  "OTEL_EXPORTER_OTLP_TIMEOUT: 'abc' is not a number of milliseconds\n" },
		{ "OTEL_EXPORTER_OTLP_TIMEOUT=10s",
		  "OTEL_EXPORTER_OTLP_TIMEOUT: '10s' is not a number of milliseconds\n" },
		{ "OTEL_EXPORTER_OTLP_TIMEOUT=10",
		  "OTEL_EXPORTER_OTLP_TIMEOUT: 10 is out of range (expected milliseconds in "
		  "100..300000)\n" },
		{ "OTEL_METRIC_EXPORT_INTERVAL=-5",
		  "OTEL_METRIC_EXPORT_INTERVAL: '-5' is not a number of milliseconds\n" },
		{ "OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318",
		  "OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' is not an http(s) URL (expected an "
		  "http:// or https:// URL with a host)\n" },
		{ "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=grpc://x",
		  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'grpc://x' is not an http(s) URL (expected "
		  "an http:// or https:// URL with a host)\n" },
		{ "OTEL_EXPORTER_OTLP_COMPRESSION=deflate",
		  "OTEL_EXPORTER_OTLP_COMPRESSION: 'deflate' is not a valid value (expected one of "
		  "gzip, none)\n" },
		/* A header value is a secret: the message never shows it. */
		{ "OTEL_EXPORTER_OTLP_HEADERS=a=1,secretvalue",
		  "OTEL_EXPORTER_OTLP_HEADERS: item 2 is not key=value (expected k1=v1,k2=v2)\n" },
		{ "OTEL_EXPORTER_OTLP_HEADERS=auth=%zzsecret",
		  "OTEL_EXPORTER_OTLP_HEADERS: auth has a bad %-escape (expected %XX with hex "
		  "digits)\n" },
		{ "OTEL_EXPORTER_OTLP_METRICS_HEADERS=auth=a%0D%0AX-Injected: 1",
		  "OTEL_EXPORTER_OTLP_METRICS_HEADERS: auth: value contains a line break\n" },
		{ "OTEL_RESOURCE_ATTRIBUTES=a=1,oops",
		  "OTEL_RESOURCE_ATTRIBUTES: 'oops' is not key=value (expected k1=v1,k2=v2)\n" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *vars[] = { cases[i].var, NULL };
		struct loaded l;

		load(&l, NULL, vars, NULL, NULL);
		if (!ASSERT_TRUE(l.cfg == NULL) || !ASSERT_EQ(l.err, EINVAL))
			printf("    case %zu\n", i);
		ASSERT_STREQ(l.msg, cases[i].expected);
		loaded_free(&l, NULL);
	}
}

TEST(config_overrides)
{
	static const char yaml[] = "log:\n  level: warn\ncapture:\n  backend: kprobe\n";
	static const char *const vars[] = {
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://env:4318",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=http://env-metrics:4318/v1/metrics",
		NULL,
	};
	struct config_overrides ov = {
		.endpoint = "https://flag:443",
		.log_level = "debug",
		.backend = "tracepoint",
		.ui_listen = "",
		.stdout_export = 1,
	};
	struct config_overrides unset = { .stdout_export = -1 };
	struct config_overrides bad = {
		.endpoint = "flag:443",
		.log_level = "loud",
		.backend = "ebpf",
		.ui_listen = "x",
		.stdout_export = -1,
	};
	struct tmpfile t;
	struct loaded l;

	load(&l, yaml, vars, &ov, &t);
	if (ASSERT_NOT_NULL(l.cfg)) {
		ASSERT_STREQ(l.cfg->exporter.otlp.endpoint, "https://flag:443");
		/* The flag beats the per-signal variable too. */
		ASSERT_STREQ(l.cfg->exporter.otlp.traces_endpoint, "https://flag:443/v1/traces");
		ASSERT_STREQ(l.cfg->exporter.otlp.metrics_endpoint, "https://flag:443/v1/metrics");
		ASSERT_EQ(l.cfg->log.level, LOG_DEBUG);
		ASSERT_EQ(l.cfg->capture.backend, BACKEND_TRACEPOINT);
		ASSERT_STREQ(l.cfg->ui.listen, "");
		ASSERT_TRUE(l.cfg->exporter.stdout);
	}
	loaded_free(&l, &t);

	load(&l, yaml, vars, &unset, &t);
	if (ASSERT_NOT_NULL(l.cfg)) {
		ASSERT_EQ(l.cfg->log.level, LOG_WARN);
		ASSERT_EQ(l.cfg->capture.backend, BACKEND_KPROBE);
		ASSERT_STREQ(l.cfg->exporter.otlp.metrics_endpoint,
			     "http://env-metrics:4318/v1/metrics");
		ASSERT_FALSE(l.cfg->exporter.stdout);
	}
	loaded_free(&l, &t);

	load(&l, NULL, NULL, &bad, NULL);
	ASSERT_TRUE(l.cfg == NULL);
	ASSERT_STREQ(
		l.msg,
		"--endpoint: 'flag:443' is not an http(s) URL (expected an http:// or https:// "
		"URL with a host)\n"
		"--log-level: 'loud' is not a valid value (expected one of error, warn, info, "
		"debug)\n"
		"--backend: 'ebpf' is not a valid value (expected one of auto, tracepoint, "
		"fentry, kprobe)\n"
		"--ui-listen: 'x' has no port (expected host:port with a port in 1..65535, or "
		"\"\" to turn it off)\n");
	loaded_free(&l, NULL);
}

struct printed {
	char *text;
	size_t len;
};

static char *print_to_string(const struct config *cfg, struct printed *p)
{
	FILE *f = open_memstream(&p->text, &p->len);

	config__print(cfg, f);
	fclose(f);
	return p->text;
}

/* What --check-config prints reads back as the same configuration. */
TEST(config_print_round_trip)
{
	struct tmpfile t, t2;
	struct loaded l, l2;
	struct printed p1, p2;
	char *first, *second, *a, *b;

	load(&l, every_key_yaml, NULL, NULL, &t);
	if (!ASSERT_NOT_NULL(l.cfg)) {
		loaded_free(&l, &t);
		return;
	}
	first = print_to_string(l.cfg, &p1);
	/* Secrets never appear; the header names do. */
	ASSERT_TRUE(strstr(first, "s3cret") == NULL);
	ASSERT_TRUE(strstr(first, "Authorization: \"<redacted>\"") != NULL);
	ASSERT_TRUE(strstr(first, "  max_sockets: 1024  # ") != NULL);
	ASSERT_TRUE(strstr(first, "    retry:\n      initial_interval: 250ms  # ") != NULL);
	ASSERT_TRUE(strstr(first, "  idle_timeout: 1m30s  # ") == NULL);
	ASSERT_TRUE(strstr(first, "  idle_timeout: 90s  # ") != NULL);
	ASSERT_TRUE(strstr(first, "  sampling_ratio: 0.25  # ") != NULL);
	load(&l2, first, NULL, NULL, &t2);
	if (ASSERT_NOT_NULL(l2.cfg)) {
		check_every_key(l2.cfg, "<redacted>");
		second = print_to_string(l2.cfg, &p2);
		/* Only the first line (the file name) differs. */
		a = strchr(first, '\n');
		b = strchr(second, '\n');
		ASSERT_STREQ(a, b);
		free(second);
	} else {
		printf("%s---\n%s", first, l2.msg);
	}
	loaded_free(&l2, &t2);
	free(first);
	loaded_free(&l, &t);
}

TEST(config_world_readable_secrets)
{
	struct tmpfile t;
	struct loaded l;

	load(&l, "exporter:\n  otlp:\n    headers: {Authorization: x}\n", NULL, NULL, &t);
	config__free(l.cfg);
	free(l.msg);
	if (!ASSERT_OK(chmod(t.path, 0644)))
		goto out;
	l.cfg = config__load(t.path, NULL, NULL, stderr);
	if (ASSERT_NOT_NULL(l.cfg))
		ASSERT_TRUE(config__world_readable_secrets(l.cfg));
	config__free(l.cfg);
	if (!ASSERT_OK(chmod(t.path, 0600)))
		goto out;
	l.cfg = config__load(t.path, NULL, NULL, stderr);
	if (ASSERT_NOT_NULL(l.cfg))
		ASSERT_FALSE(config__world_readable_secrets(l.cfg));
	config__free(l.cfg);
out:
	tmp_remove(&t);

	/* A readable file without headers holds no secret. */
	load(&l, "log: {level: info}\n", NULL, NULL, &t);
	chmod(t.path, 0644);
	config__free(l.cfg);
	l.cfg = config__load(t.path, NULL, NULL, stderr);
	if (ASSERT_NOT_NULL(l.cfg))
		ASSERT_FALSE(config__world_readable_secrets(l.cfg));
	loaded_free(&l, &t);
}

TEST(config_names)
{
	ASSERT_STREQ(config_backend_name(BACKEND_AUTO), "auto");
	ASSERT_STREQ(config_backend_name(BACKEND_FENTRY), "fentry");
	ASSERT_STREQ(config_compression_name(COMPRESSION_NONE), "none");
}

/* A file with many mistakes: every one is reported, in file order, then the cross-key checks. */
TEST(config_fixture_invalid)
{
	char path[4096], exp_path[4096], *want, *text, *expected;
	struct loaded l;
	size_t len;
	FILE *f, *err;

	snprintf(path, sizeof(path), "%s/tests/fixtures/config/invalid.yaml", test_srcdir());
	snprintf(exp_path, sizeof(exp_path), "%s/tests/fixtures/config/invalid.expected",
		 test_srcdir());
	f = fopen(exp_path, "rb");
	if (!ASSERT_NOT_NULL(f))
		return;
	text = calloc(1, 1 << 16);
	len = fread(text, 1, (1 << 16) - 1, f);
	fclose(f);
	ASSERT_GT(len, 0);
	expected = expand(text, path);

	memset(&l, 0, sizeof(l));
	err = open_memstream(&l.msg, &l.msg_len);
	l.cfg = config__load(path, NULL, NULL, err);
	l.err = errno;
	fclose(err);
	ASSERT_TRUE(l.cfg == NULL);
	ASSERT_EQ(l.err, EINVAL);
	ASSERT_STREQ(l.msg, expected);
	want = strstr(l.msg, "do-not-print");
	ASSERT_TRUE(want == NULL);
	free(expected);
	free(text);
	loaded_free(&l, NULL);
}

/* Thousands of mistakes print a bounded report. */
TEST(config_error_flood)
{
	size_t n = 3000, len = 0, lines = 0;
	char *yaml = malloc(n * 4 + 64);
	struct tmpfile t;
	struct loaded l;

	len += (size_t)sprintf(yaml, "capture:\n  exclude_ports: [");
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(yaml + len, "%s0", i ? "," : "");
	sprintf(yaml + len, "]\n");
	load(&l, yaml, NULL, NULL, &t);
	ASSERT_TRUE(l.cfg == NULL);
	for (const char *p = l.msg; p && *p; p++)
		lines += *p == '\n';
	ASSERT_EQ(lines, 101);
	ASSERT_TRUE(l.msg && strstr(l.msg, ": 2900 more problems not shown\n") != NULL);
	loaded_free(&l, &t);
	free(yaml);
}
