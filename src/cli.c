// SPDX-License-Identifier: Apache-2.0
/* Command line: getopt_long into struct cli_opts, and where the config file is found. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

enum {
	OPT_CHECK_CONFIG = 0x100,
	OPT_ENDPOINT,
	OPT_LOG_LEVEL,
	OPT_BACKEND,
	OPT_UI_LISTEN,
	OPT_STDOUT,
};

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ "endpoint", required_argument, NULL, OPT_ENDPOINT },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "ui-listen", required_argument, NULL, OPT_UI_LISTEN },
	{ "stdout", no_argument, NULL, OPT_STDOUT },
	{ NULL, 0, NULL, 0 },
};

static const char usage[] =
	"Usage: tcpotel [OPTION]...\n"
	"Turn the kernel's TCP activity into OpenTelemetry metrics and spans (OTLP/HTTP).\n"
	"Runs in the foreground, logs to stderr; needs root or CAP_BPF and CAP_PERFMON.\n"
	"\n"
	"  -c, --config FILE      configuration file; default " CLI_ETC_CONFIG ",\n"
	"                         else config/tcpotel.yaml next to the program's\n"
	"                         directory, else the built-in defaults\n"
	"      --check-config     load and check the configuration, print it, and exit\n"
	"  -V, --version          print the version and exit\n"
	"  -h, --help             print this help and exit\n"
	"\n"
	"Overrides (above the file and the environment):\n"
	"      --endpoint URL     OTLP/HTTP base URL (exporter.otlp.endpoint)\n"
	"      --log-level LEVEL  error, warn, info or debug (log.level)\n"
	"      --backend NAME     auto, tracepoint, fentry or kprobe (capture.backend)\n"
	"      --ui-listen ADDR   host:port of the live map, \"\" = off (ui.listen)\n"
	"      --stdout           also print every OTLP body to stdout (exporter.stdout)\n"
	"\n"
	"Environment (above the file, below the flags):\n"
	"  OTEL_EXPORTER_OTLP_ENDPOINT            base URL; /v1/traces, /v1/metrics added\n"
	"  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT     full URL for traces, used as given\n"
	"  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT    full URL for metrics, used as given\n"
	"  OTEL_EXPORTER_OTLP_HEADERS             k=v,k2=v2 (values %-decoded); also\n"
	"                                         the _TRACES_HEADERS, _METRICS_HEADERS\n"
	"  OTEL_EXPORTER_OTLP_TIMEOUT             request timeout, milliseconds\n"
	"  OTEL_EXPORTER_OTLP_COMPRESSION         gzip or none\n"
	"  OTEL_EXPORTER_OTLP_CERTIFICATE         CA file for the collector's certificate\n"
	"  OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE  client certificate (mutual TLS)\n"
	"  OTEL_EXPORTER_OTLP_CLIENT_KEY          client key (mutual TLS)\n"
	"  OTEL_METRIC_EXPORT_INTERVAL            metrics interval, milliseconds\n"
	"  OTEL_SERVICE_NAME                      the agent's own service.name (tcpotel)\n"
	"  OTEL_RESOURCE_ATTRIBUTES               k=v,... on the agent's own resource\n"
	"\n"
	"Exit status: 0 on a clean stop (SIGINT, SIGTERM), 1 on an error, 2 on a bad\n"
	"command line. Reference: docs/configuration.md.\n";

const char *cli_usage(void)
{
	return usage;
}

/* "--name" of the option argv[optind - 1] holds, without any "=value". */
static void bad_option_name(const char *arg, char *buf, size_t size)
{
	size_t len = strcspn(arg, "=");

	snprintf(buf, size, "%.*s", (int)MIN(len, (size_t)64), arg);
}

int cli_parse(struct cli_opts *opts, int argc, char **argv, FILE *err)
{
	char name[80];
	int c;

	memset(opts, 0, sizeof(*opts));
	opts->ov.stdout_export = -1;
	/* 0, not 1: glibc then starts over, so a second parse (tests) sees fresh state. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:Vh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			opts->config_path = optarg;
			break;
		case OPT_CHECK_CONFIG:
			opts->check_config = true;
			break;
		case 'V':
			opts->version = true;
			break;
		case 'h':
			opts->help = true;
			break;
		case OPT_ENDPOINT:
			opts->ov.endpoint = optarg;
			break;
		case OPT_LOG_LEVEL:
			opts->ov.log_level = optarg;
			break;
		case OPT_BACKEND:
			opts->ov.backend = optarg;
			break;
		case OPT_UI_LISTEN:
			opts->ov.ui_listen = optarg;
			break;
		case OPT_STDOUT:
			opts->ov.stdout_export = 1;
			break;
		case ':':
			bad_option_name(argv[optind - 1], name, sizeof(name));
			fprintf(err, "tcpotel: option '%s' needs a value\n", name);
			goto fail;
		default:
			if (optopt && optopt < 0x100 && strncmp(argv[optind - 1], "--", 2)) {
				fprintf(err, "tcpotel: unknown option '-%c'\n", optopt);
			} else {
				bad_option_name(argv[optind - 1], name, sizeof(name));
				if (optopt && strchr(argv[optind - 1], '='))
					fprintf(err, "tcpotel: option '%s' takes no value\n", name);
				else
					fprintf(err, "tcpotel: unknown option '%s'\n", name);
			}
			goto fail;
		}
	}
	if (optind < argc) {
		fprintf(err, "tcpotel: unexpected argument '%.64s'\n", argv[optind]);
		goto fail;
	}
	return 0;
fail:
	fprintf(err, "Try 'tcpotel --help' for more information.\n");
	return -EINVAL;
}

static const char *existing(const char *path, char *buf, size_t size)
{
	char real[PATH_MAX];

	if (access(path, F_OK))
		return NULL;
	/* Logs read better without "bin/../". */
	snprintf(buf, size, "%s", realpath(path, real) ? real : path);
	return buf;
}

const char *cli_find_config(const struct cli_opts *opts, const char *etc_path, const char *exe,
			    char *buf, size_t size)
{
	static const char *const beside[] = { "../config/tcpotel.yaml", "config/tcpotel.yaml" };
	char candidate[PATH_MAX + 32];
	const char *slash;

	if (opts && opts->config_path)
		return opts->config_path;
	if (etc_path && existing(etc_path, buf, size))
		return buf;
	if (!exe || !(slash = strrchr(exe, '/')))
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(beside); i++) {
		snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)(slash - exe), exe,
			 beside[i]);
		if (existing(candidate, buf, size))
			return buf;
	}
	return NULL;
}

const char *cli_config_path(const struct cli_opts *opts, char *buf, size_t size)
{
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *path;

	if (len < 0)
		len = 0;
	exe[len] = '\0';
	path = cli_find_config(opts, CLI_ETC_CONFIG, len ? exe : NULL, buf, size);
	if (opts && opts->config_path)
		return path;
	if (path)
		log_info("configuration: %s", path);
	else
		log_info("no configuration file (" CLI_ETC_CONFIG " or config/tcpotel.yaml beside "
			 "the program): using the built-in defaults");
	return path;
}
