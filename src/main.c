// SPDX-License-Identifier: Apache-2.0
/*
 * tcpotel: wiring only. Parse the command line, load the configuration,
 * check privileges, choose the capture back-end, start the agent, wait for
 * SIGINT/SIGTERM, stop in reverse order. Exit status 0 only on a clean stop:
 * a second signal during the final flush ends the process at once with
 * 128 + its number (130, 143), as a death by that signal would.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "probe.h"

extern char **environ;

static volatile sig_atomic_t stop_requested;
/* Set once the final flush is over: a second signal then ends the process with 0. */
static volatile sig_atomic_t flushed;

/* write(2) until done or refused: async-signal-safe, for the handler below. */
static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);

		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void on_stop_signal(int sig)
{
	static const char msg[] = "tcpotel: second signal: exiting now, without the final flush\n";

	if (!stop_requested) {
		stop_requested = sig;
		return;
	}
	if (flushed)
		_exit(0);
	write_all(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(128 + sig);
}

static int install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
		return -errno;
	/* The exporter may write to a closed socket: that is an error, not a death. */
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL))
		return -errno;
	/* Reloading is not supported: SIGHUP is ignored rather than fatal. */
	if (sigaction(SIGHUP, &sa, NULL))
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	struct cli_opts opts = {};
	char path_buf[PATH_MAX], why[512];
	struct config *cfg = NULL;
	struct agent *agent = NULL;
	const char *path;
	int err;

	if (cli_parse(&opts, argc, argv, stderr))
		return CLI_EXIT_USAGE;
	if (opts.help) {
		fputs(cli_usage(), stdout);
		return 0;
	}
	if (opts.version) {
		printf("tcpotel %s\n", TCPOTEL_VERSION);
		return 0;
	}
	path = cli_config_path(&opts, path_buf, sizeof(path_buf));
	cfg = config__load(path, environ, &opts.ov, stderr);
	if (!cfg)
		return 1;
	log_set_level(cfg->log.level);
	log_bridge_libbpf();
	if (opts.check_config) {
		config__print(cfg, stdout);
		config__free(cfg);
		return 0;
	}
	if (config__world_readable_secrets(cfg))
		log_warn("%s holds exporter.otlp.headers and is readable by every user: "
			 "chmod o-r it",
			 cfg->path);

	err = probe_privileges(why, sizeof(why));
	if (err) {
		log_err("%s", why);
		goto out;
	}
	err = probe_kernel(why, sizeof(why));
	if (err) {
		log_err("%s", why);
		goto out;
	}
	err = install_signals();
	if (err) {
		log_err("cannot install signal handlers: %s", strerror(-err));
		goto out;
	}
	agent = agent__start(cfg);
	if (!agent) {
		err = -errno;
		log_err("cannot start: %s", log_strerror(errno));
		goto out;
	}
	log_info("tcpotel %s running: backend %s, metrics every %" PRIu64
		 " ms to %s, spans %s to %s",
		 TCPOTEL_VERSION, config_backend_name(agent__backend(agent)),
		 cfg->metrics.interval_ms,
		 cfg->metrics.enabled ? cfg->exporter.otlp.metrics_endpoint : "(off)",
		 cfg->spans.enabled ? "on" : "off",
		 cfg->spans.enabled ? cfg->exporter.otlp.traces_endpoint : "-");
	if (agent__ui_url(agent))
		log_info("live service map: %s (JSON at %sapi/graph, Prometheus at %smetrics)",
			 agent__ui_url(agent), agent__ui_url(agent), agent__ui_url(agent));
	err = agent__run(agent, &stop_requested);
	flushed = !err;
	if (!err)
		log_info("stopped");
out:
	agent__free(agent);
	config__free(cfg);
	return err ? 1 : 0;
}
