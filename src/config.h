/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration: the one YAML file (libyaml) plus the standard OpenTelemetry
 * environment variables on top, validated through one table of keys
 * (config.c). Every error names the place: FILE:LINE:COLUMN: key.path: what
 * is wrong (expected ...), or the environment variable by its name.
 */
#ifndef TCPOTEL_CONFIG_H
#define TCPOTEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cidr.h"
#include "log.h"

enum capture_backend {
	BACKEND_AUTO,
	BACKEND_TRACEPOINT,
	BACKEND_FENTRY,
	BACKEND_KPROBE,
};

enum compression {
	COMPRESSION_GZIP,
	COMPRESSION_NONE,
};

struct kv_pair {
	char *key;
	char *value;
};

struct kv_list {
	struct kv_pair *items;
	size_t n;
};

/* service.rules: every match given must hold; the first rule that matches names the service. */
struct service_rule {
	char *match_exe; /* executable name, exact ("" = any) */
	char *match_cmdline; /* substring of the command line ("" = any) */
	char *match_service; /* the service name found so far, exact ("" = any) */
	char *name;
};

struct config {
	char *path; /* file it was read from (NULL: built-in defaults) */
	struct {
		enum capture_backend backend;
		char **netns; /* "/run/netns/NAME" paths or decimal inode numbers */
		size_t n_netns;
		uint16_t *exclude_ports;
		size_t n_exclude_ports;
		uint32_t max_sockets;
	} capture;
	struct {
		bool enabled;
		double sampling_ratio;
		uint64_t idle_timeout_ms;
		uint64_t response_timeout_ms;
		/* Clients no agent watches: their SERVER spans have no parent. */
		struct cidr_list external_clients;
		/* Non-empty: every client outside these and off this host is external too. */
		struct cidr_list internal_networks;
	} spans;
	struct {
		bool enabled;
		uint64_t interval_ms;
		/* false: one resource per service instance, without process.pid and
		 * process.command_line, adding up its processes' streams */
		bool per_process;
	} metrics;
	struct {
		struct service_rule *rules;
		size_t n_rules;
		bool command_line; /* add process.command_line to resources */
	} service;
	struct {
		struct kv_list attributes;
	} resource;
	struct {
		struct {
			char *endpoint; /* base URL; /v1/traces and /v1/metrics appended */
			char *traces_endpoint; /* full URL, derived or from OTEL_..._TRACES_ENDPOINT */
			char *metrics_endpoint; /* full URL, derived or from OTEL_..._METRICS_ENDPOINT */
			struct kv_list
				headers; /* file + OTEL_EXPORTER_OTLP_HEADERS; values are secrets */
			/* What to send on each signal: headers + OTEL_..._{TRACES,METRICS}_HEADERS. */
			struct kv_list traces_headers;
			struct kv_list metrics_headers;
			enum compression compression;
			uint64_t timeout_ms;
			struct {
				char *ca_file;
				char *cert_file;
				char *key_file;
				bool insecure_skip_verify;
			} tls;
			struct {
				uint64_t initial_interval_ms;
				uint64_t max_interval_ms;
				uint64_t max_elapsed_time_ms;
			} retry;
			uint32_t queue_size;
			uint32_t parallel_requests;
		} otlp;
		bool stdout;
	} exporter;
	struct {
		char *listen; /* "host:port", "" = off */
		uint32_t max_nodes, max_edges; /* the live map's bounds */
	} ui;
	struct {
		enum log_level level;
	} log;
	/* The agent's own resource: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES. */
	struct {
		char *service_name;
		struct kv_list attributes;
	} self;
	/* Set at load: the file holds header values and others may read it. */
	bool secrets_world_readable;
};

/* Command-line overrides, applied last (after file and environment). */
struct config_overrides {
	const char *endpoint; /* --endpoint URL */
	const char *log_level; /* --log-level LEVEL */
	const char *backend; /* --backend NAME */
	const char *ui_listen; /* --ui-listen ADDR */
	int stdout_export; /* --stdout: 1, otherwise -1 (unset) */
};

/*
 * Loads `path` (NULL: built-in defaults only), then the environment `envp`
 * (NULL-terminated "NAME=value" strings; NULL: none), then `ov` (may be NULL).
 * On error returns NULL, sets errno, and writes one line per problem to `err`.
 */
struct config *config__load(const char *path, char *const *envp, const struct config_overrides *ov,
			    FILE *err);
struct config *config__defaults(void);
void config__free(struct config *cfg);
/* Prints the effective configuration as YAML, every key of the table. */
void config__print(const struct config *cfg, FILE *out);
/* True when the file holds header values and is readable by others (warned about at start). */
bool config__world_readable_secrets(const struct config *cfg);
const char *config_backend_name(enum capture_backend backend);
const char *config_compression_name(enum compression compression);

/* The table's keys ("exporter.otlp.timeout", ...), in table order: for docs and their tests. */
size_t config_key_count(void);
const char *config_key_path(size_t i);

#endif
