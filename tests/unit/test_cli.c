// SPDX-License-Identifier: Apache-2.0
/* cli: flags into struct cli_opts, error texts, usage, and where the config file is found. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "test.h"

#define MAX_ARGS 16

struct args {
	int argc;
	char *argv[MAX_ARGS + 1];
	char *msg;
	size_t msg_len;
};

/* Parses a NULL-terminated list of arguments (argv[0] is added); errors land in a->msg. */
static int parse(struct args *a, struct cli_opts *opts, const char *const *list)
{
	FILE *err;
	int ret;

	memset(a, 0, sizeof(*a));
	a->argv[a->argc++] = strdup("tcpotel");
	for (; *list && a->argc < MAX_ARGS; list++)
		a->argv[a->argc++] = strdup(*list);
	err = open_memstream(&a->msg, &a->msg_len);
	ret = cli_parse(opts, a->argc, a->argv, err);
	fclose(err);
	return ret;
}

static void args_free(struct args *a)
{
	for (int i = 0; i < a->argc; i++)
		free(a->argv[i]);
	free(a->msg);
}

TEST(cli_no_arguments)
{
	static const char *const list[] = { NULL };
	struct cli_opts o;
	struct args a;

	if (ASSERT_OK(parse(&a, &o, list))) {
		ASSERT_TRUE(o.config_path == NULL);
		ASSERT_FALSE(o.check_config);
		ASSERT_FALSE(o.version);
		ASSERT_FALSE(o.help);
		ASSERT_TRUE(o.ov.endpoint == NULL);
		ASSERT_TRUE(o.ov.log_level == NULL);
		ASSERT_TRUE(o.ov.backend == NULL);
		ASSERT_TRUE(o.ov.ui_listen == NULL);
		ASSERT_EQ(o.ov.stdout_export, -1);
		ASSERT_STREQ(a.msg, "");
	}
	args_free(&a);
}

TEST(cli_every_flag)
{
	static const char *const list[] = {
		"--config",
		"/etc/x.yaml",
		"--check-config",
		"--endpoint=https://c:4318",
		"--log-level",
		"debug",
		"--backend=kprobe",
		"--ui-listen",
		"",
		"--stdout",
		"-V",
		"-h",
		NULL,
	};
	struct cli_opts o;
	struct args a;

	if (ASSERT_OK(parse(&a, &o, list))) {
		ASSERT_STREQ(o.config_path, "/etc/x.yaml");
		ASSERT_TRUE(o.check_config);
		ASSERT_TRUE(o.version);
		ASSERT_TRUE(o.help);
		ASSERT_STREQ(o.ov.endpoint, "https://c:4318");
		ASSERT_STREQ(o.ov.log_level, "debug");
		ASSERT_STREQ(o.ov.backend, "kprobe");
		ASSERT_STREQ(o.ov.ui_listen, "");
		ASSERT_EQ(o.ov.stdout_export, 1);
	}
	args_free(&a);
}

TEST(cli_short_flags)
{
	static const char *const list[] = { "-c", "a.yaml", "--version", "--help", NULL };
	static const char *const joined[] = { "-cb.yaml", NULL };
	struct cli_opts o;
	struct args a;

	if (ASSERT_OK(parse(&a, &o, list))) {
		ASSERT_STREQ(o.config_path, "a.yaml");
		ASSERT_TRUE(o.version);
		ASSERT_TRUE(o.help);
	}
	args_free(&a);
	/* A second parse starts from scratch. */
	if (ASSERT_OK(parse(&a, &o, joined))) {
		ASSERT_STREQ(o.config_path, "b.yaml");
		ASSERT_FALSE(o.version);
	}
	args_free(&a);
}

TEST(cli_errors)
{
	static const struct {
		const char *args[4];
		const char *msg;
	} cases[] = {
		{ { "--frobnicate", NULL }, "tcpotel: unknown option '--frobnicate'\n" },
		{ { "--frob=1", NULL }, "tcpotel: unknown option '--frob'\n" },
		{ { "-x", NULL }, "tcpotel: unknown option '-x'\n" },
		{ { "--config", NULL }, "tcpotel: option '--config' needs a value\n" },
		{ { "-c", NULL }, "tcpotel: option '-c' needs a value\n" },
		{ { "--stdout", "--endpoint", NULL },
		  "tcpotel: option '--endpoint' needs a value\n" },
		{ { "--help=yes", NULL }, "tcpotel: option '--help' takes no value\n" },
		{ { "run", NULL }, "tcpotel: unexpected argument 'run'\n" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char expected[256];
		struct cli_opts o;
		struct args a;

		snprintf(expected, sizeof(expected),
			 "%sTry 'tcpotel --help' for more information.\n", cases[i].msg);
		if (!ASSERT_EQ(parse(&a, &o, cases[i].args), -EINVAL))
			printf("    case %zu\n", i);
		ASSERT_STREQ(a.msg, expected);
		args_free(&a);
	}
}

TEST(cli_usage_lists_everything)
{
	static const char *const words[] = {
		"--config FILE",
		"-c,",
		"--check-config",
		"--version",
		"-V,",
		"--help",
		"-h,",
		"--endpoint URL",
		"--log-level LEVEL",
		"--backend NAME",
		"--ui-listen ADDR",
		"--stdout",
		"OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_HEADERS",
		"_TRACES_HEADERS",
		"_METRICS_HEADERS",
		"OTEL_EXPORTER_OTLP_TIMEOUT",
		"OTEL_EXPORTER_OTLP_COMPRESSION",
		"OTEL_EXPORTER_OTLP_CERTIFICATE",
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
		"OTEL_EXPORTER_OTLP_CLIENT_KEY",
		"OTEL_METRIC_EXPORT_INTERVAL",
		"OTEL_SERVICE_NAME",
		"OTEL_RESOURCE_ATTRIBUTES",
	};
	const char *u = cli_usage();

	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (!ASSERT_TRUE(strstr(u, words[i]) != NULL))
			printf("    usage lacks %s\n", words[i]);
	/* Fits a terminal. */
	for (const char *line = u; *line;) {
		size_t len = strcspn(line, "\n");

		if (!ASSERT_LE(len, 80))
			printf("    %.*s\n", (int)len, line);
		line += len + (line[len] == '\n');
	}
}

static bool touch(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!ASSERT_NOT_NULL(f))
		return false;
	fclose(f);
	return true;
}

TEST(cli_find_config)
{
	char dir[] = "/tmp/tcpotel-cli-XXXXXX", etc[128], exe[128], path[128], want[128];
	char buf[4096];
	static const char *const none[] = { NULL };
	static const char *const given[] = { "--config", "mine.yaml", NULL };
	struct cli_opts o;
	struct args a;

	if (!ASSERT_NOT_NULL(mkdtemp(dir)))
		return;
	snprintf(etc, sizeof(etc), "%s/etc.yaml", dir);
	snprintf(exe, sizeof(exe), "%s/.output/tcpotel", dir);
	parse(&a, &o, none);

	/* Nothing exists: built-in defaults. */
	ASSERT_TRUE(cli_find_config(&o, etc, exe, buf, sizeof(buf)) == NULL);
	ASSERT_TRUE(cli_find_config(&o, NULL, NULL, buf, sizeof(buf)) == NULL);

	/* <exe dir>/config/tcpotel.yaml */
	snprintf(path, sizeof(path), "%s/.output", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/.output/config", dir);
	mkdir(path, 0755);
	snprintf(want, sizeof(want), "%s/.output/config/tcpotel.yaml", dir);
	if (touch(want))
		ASSERT_STREQ(cli_find_config(&o, etc, exe, buf, sizeof(buf)), want);

	/* <exe dir>/../config/tcpotel.yaml comes first (the source tree's file). */
	snprintf(path, sizeof(path), "%s/config", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/config/tcpotel.yaml", dir);
	if (touch(path))
		ASSERT_STREQ(cli_find_config(&o, etc, exe, buf, sizeof(buf)), path);

	/* The system's file comes before both. */
	if (touch(etc))
		ASSERT_STREQ(cli_find_config(&o, etc, exe, buf, sizeof(buf)), etc);
	args_free(&a);

	/* --config wins, existing or not. */
	parse(&a, &o, given);
	ASSERT_STREQ(cli_find_config(&o, etc, exe, buf, sizeof(buf)), "mine.yaml");
	args_free(&a);

	unlink(etc);
	unlink(path);
	unlink(want);
	snprintf(path, sizeof(path), "%s/config", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/.output/config", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/.output", dir);
	rmdir(path);
	rmdir(dir);
}

/* The flags reach the configuration, above the environment. */
TEST(cli_overrides_config)
{
	static const char *const list[] = { "--endpoint",	 "http://flag:4318",
					    "--log-level=error", "--backend",
					    "tracepoint",	 "--ui-listen=[::1]:1",
					    "--stdout",		 NULL };
	char env0[] = "OTEL_EXPORTER_OTLP_ENDPOINT=http://env:4318";
	char *envp[] = { env0, NULL };
	struct config *cfg;
	struct cli_opts o;
	struct args a;

	if (!ASSERT_OK(parse(&a, &o, list)))
		goto out;
	cfg = config__load(NULL, envp, &o.ov, stdout);
	if (ASSERT_NOT_NULL(cfg)) {
		ASSERT_STREQ(cfg->exporter.otlp.endpoint, "http://flag:4318");
		ASSERT_STREQ(cfg->exporter.otlp.traces_endpoint, "http://flag:4318/v1/traces");
		ASSERT_EQ(cfg->log.level, LOG_ERROR);
		ASSERT_EQ(cfg->capture.backend, BACKEND_TRACEPOINT);
		ASSERT_STREQ(cfg->ui.listen, "[::1]:1");
		ASSERT_TRUE(cfg->exporter.stdout);
	}
	config__free(cfg);
out:
	args_free(&a);
}
