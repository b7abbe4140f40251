// SPDX-License-Identifier: Apache-2.0
/*
 * Configuration, after redis' static_configs[] and retsnoop's cfg_specs[]:
 * one table of keys drives the defaults, the YAML walk, the environment
 * overlay, the printing and every error message. Loading never stops at the
 * first problem it can report more of: every error is printed, then the load
 * fails as a whole.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "cidr.h"
#include "util.h"

#define CONFIG_MAX_BYTES (1u << 20)
/* Enough to fix a real file; a generated one with thousands of errors stops flooding here. */
#define CONFIG_MAX_SHOWN 100
#define PATH_LEN	 256
#define WHERE_LEN	 512
#define WHY_LEN		 512
/* Values are echoed in messages at most this long. */
#define ECHO "%.80s"

enum key_kind {
	K_BOOL,
	K_U32,
	K_DOUBLE,
	K_DURATION,
	K_ENUM,
	K_STRING,
	K_URL,
	K_LISTEN,
	K_NETNS,
	K_PORTS,
	K_CIDRS,
	K_MAP,
	K_RULES,
};

struct key_spec {
	const char *path;
	enum key_kind kind;
	size_t off;
	const char *def; /* default, written as in the file */
	int64_t min, max; /* K_U32: value; K_DURATION: milliseconds */
	double dmin, dmax; /* K_DOUBLE */
	const char *const *names; /* K_ENUM: the name of each value, NULL-terminated */
	const char *env; /* environment variable over the file, or NULL */
	bool secret; /* K_MAP of HTTP headers: values never printed */
	const char *help;
};

static const char *const backend_names[] = {
	[BACKEND_AUTO] = "auto",
	[BACKEND_TRACEPOINT] = "tracepoint",
	[BACKEND_FENTRY] = "fentry",
	[BACKEND_KPROBE] = "kprobe",
	NULL,
};

static const char *const compression_names[] = {
	[COMPRESSION_GZIP] = "gzip",
	[COMPRESSION_NONE] = "none",
	NULL,
};

_Static_assert(sizeof(enum capture_backend) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum compression) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enums are stored as int");

#define OFF(field) offsetof(struct config, field)
#define SEC	   1000
#define MIN_	   (60 * SEC)
#define HOUR	   (60 * MIN_)

/* Order matters: it is the order of config__print and of config/tcpotel.yaml. */
static const struct key_spec keys[] = {
	{ "capture.backend", K_ENUM, OFF(capture.backend), "auto", .names = backend_names,
	  .help = "kernel hooks; auto picks the best one that loads here" },
	{ "capture.netns", K_NETNS, OFF(capture.netns), "[]",
	  .help = "network namespaces to watch (/run/netns/NAME or inode numbers); empty = all" },
	{ "capture.exclude_ports", K_PORTS, OFF(capture.exclude_ports), "[]",
	  .help = "local or peer ports never traced" },
	{ "capture.max_sockets", K_U32, OFF(capture.max_sockets), "65536", 1024, 4194304,
	  .help = "sockets tracked at once in the kernel" },
	{ "spans.enabled", K_BOOL, OFF(spans.enabled), "true", .help = "emit client/server spans" },
	{ "spans.sampling_ratio", K_DOUBLE, OFF(spans.sampling_ratio), "1.0", .dmin = 0.0,
	  .dmax = 1.0, .help = "share of exchanges kept, decided from the trace id" },
	{ "spans.idle_timeout", K_DURATION, OFF(spans.idle_timeout_ms), "5s", 10, HOUR,
	  .help = "a response silent this long has ended" },
	{ "spans.response_timeout", K_DURATION, OFF(spans.response_timeout_ms), "5m", 100,
	  24 * HOUR, .help = "a request waits this long for its first response byte" },
	{ "spans.external_clients", K_CIDRS, OFF(spans.external_clients), "[]",
	  .help = "clients no agent watches: their server spans are roots (no parent)" },
	{ "spans.internal_networks", K_CIDRS, OFF(spans.internal_networks), "[]",
	  .help = "when set, every client outside these (and off this host) is external too" },
	{ "metrics.enabled", K_BOOL, OFF(metrics.enabled), "true", .help = "emit metrics" },
	{ "metrics.interval", K_DURATION, OFF(metrics.interval_ms), "10s", 100, HOUR,
	  .env = "OTEL_METRIC_EXPORT_INTERVAL",
	  .help = "how often metrics are collected and sent" },
	{ "metrics.per_process", K_BOOL, OFF(metrics.per_process), "true",
	  .help = "one resource per process; false: per service instance, no pid" },
	{ "service.rules", K_RULES, OFF(service.rules), "[]",
	  .help = "renames: the first rule that matches names the service" },
	{ "service.command_line", K_BOOL, OFF(service.command_line), "false",
	  .help = "add process.command_line to every resource" },
	{ "resource.attributes", K_MAP, OFF(resource.attributes), "{}",
	  .help = "attributes added to every resource" },
	{ "exporter.otlp.endpoint", K_URL, OFF(exporter.otlp.endpoint), "http://localhost:4318",
	  .env = "OTEL_EXPORTER_OTLP_ENDPOINT",
	  .help = "OTLP/HTTP base URL; /v1/traces and /v1/metrics are appended" },
	{ "exporter.otlp.headers", K_MAP, OFF(exporter.otlp.headers), "{}",
	  .env = "OTEL_EXPORTER_OTLP_HEADERS", .secret = true,
	  .help = "HTTP headers sent with every request (secrets: never printed)" },
	{ "exporter.otlp.compression", K_ENUM, OFF(exporter.otlp.compression), "gzip",
	  .names = compression_names, .env = "OTEL_EXPORTER_OTLP_COMPRESSION",
	  .help = "request body compression" },
	{ "exporter.otlp.timeout", K_DURATION, OFF(exporter.otlp.timeout_ms), "10s", 100, 5 * MIN_,
	  .env = "OTEL_EXPORTER_OTLP_TIMEOUT", .help = "time allowed for one request" },
	{ "exporter.otlp.tls.ca_file", K_STRING, OFF(exporter.otlp.tls.ca_file), "",
	  .env = "OTEL_EXPORTER_OTLP_CERTIFICATE",
	  .help = "PEM file of CAs that sign the collector's certificate; \"\" = system CAs" },
	{ "exporter.otlp.tls.cert_file", K_STRING, OFF(exporter.otlp.tls.cert_file), "",
	  .env = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
	  .help = "PEM client certificate (mutual TLS)" },
	{ "exporter.otlp.tls.key_file", K_STRING, OFF(exporter.otlp.tls.key_file), "",
	  .env = "OTEL_EXPORTER_OTLP_CLIENT_KEY", .help = "PEM client private key (mutual TLS)" },
	{ "exporter.otlp.tls.insecure_skip_verify", K_BOOL,
	  OFF(exporter.otlp.tls.insecure_skip_verify), "false",
	  .help = "do not verify the collector's certificate (testing only)" },
	{ "exporter.otlp.retry.initial_interval", K_DURATION,
	  OFF(exporter.otlp.retry.initial_interval_ms), "1s", 10, HOUR,
	  .help = "first wait before a failed request is retried" },
	{ "exporter.otlp.retry.max_interval", K_DURATION, OFF(exporter.otlp.retry.max_interval_ms),
	  "30s", 10, HOUR, .help = "longest wait between two retries" },
	{ "exporter.otlp.retry.max_elapsed_time", K_DURATION,
	  OFF(exporter.otlp.retry.max_elapsed_time_ms), "300s", SEC, 24 * HOUR,
	  .help = "a batch still failing after this long is dropped" },
	{ "exporter.otlp.queue_size", K_U32, OFF(exporter.otlp.queue_size), "1024", 1, 1048576,
	  .help = "batches held while the collector is slow or away" },
	{ "exporter.otlp.parallel_requests", K_U32, OFF(exporter.otlp.parallel_requests), "4", 1,
	  16, .help = "span requests in flight at once; metrics go one at a time, in order" },
	{ "exporter.stdout", K_BOOL, OFF(exporter.stdout), "false",
	  .help = "also print every OTLP body to stdout, one per line" },
	{ "ui.listen", K_LISTEN, OFF(ui.listen), "127.0.0.1:9464",
	  .help = "live map, /api/graph and /metrics; \"\" = off" },
	{ "ui.max_nodes", K_U32, OFF(ui.max_nodes), "2048", 2, 65536,
	  .help = "services and peers on the live map at once; more: tcpotel.map.dropped" },
	{ "ui.max_edges", K_U32, OFF(ui.max_edges), "8192", 1, 65536,
	  .help = "edges on the live map at once; more: tcpotel.map.dropped" },
	{ "log.level", K_ENUM, OFF(log.level), "info", .names = log_level_names,
	  .help = "error, warn, info or debug" },
};

#define N_KEYS ARRAY_SIZE(keys)

size_t config_key_count(void)
{
	return N_KEYS;
}

const char *config_key_path(size_t i)
{
	return i < N_KEYS ? keys[i].path : NULL;
}

static void *field(struct config *cfg, const struct key_spec *k)
{
	return (char *)cfg + k->off;
}

static const void *cfield(const struct config *cfg, const struct key_spec *k)
{
	return (const char *)cfg + k->off;
}

static const struct key_spec *key_find(const char *path)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].path, path) == 0)
			return &keys[i];
	return NULL;
}

static const char *enum_name_of(const char *const *names, int value)
{
	for (int i = 0; names[i]; i++)
		if (i == value)
			return names[i];
	return "?";
}

const char *config_backend_name(enum capture_backend backend)
{
	return enum_name_of(backend_names, (int)backend);
}

const char *config_compression_name(enum compression compression)
{
	return enum_name_of(compression_names, (int)compression);
}

/* ---- the loader's state and its one error printer ------------------------------------------ */

struct loader {
	struct config *cfg;
	FILE *err;
	const char *file; /* as given, for messages */
	int errors;
	int err_no; /* the first error's errno */
	char (*origin)[WHERE_LEN]; /* per key: where its value came from ("" = default) */
	struct kv_list sig_headers[2]; /* OTEL_EXPORTER_OTLP_{TRACES,METRICS}_HEADERS */
	char *sig_endpoint[2]; /* OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT */
};

/* Prints "WHERE: PATH: message" (PATH may be NULL) and counts the error. */
static void __printf(4, 5)
	fail(struct loader *ld, const char *where, const char *path, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ld->err && ld->errors < CONFIG_MAX_SHOWN) {
		if (path)
			fprintf(ld->err, "%s: %s: %s\n", where, path, msg);
		else
			fprintf(ld->err, "%s: %s\n", where, msg);
	}
	ld->errors++;
	if (!ld->err_no)
		ld->err_no = EINVAL;
}

static void fail_nomem(struct loader *ld)
{
	if (ld->err)
		fprintf(ld->err, "%s: out of memory\n", ld->file ? ld->file : "config");
	ld->errors++;
	ld->err_no = ENOMEM;
}

static const char *mark_where(const struct loader *ld, yaml_mark_t mark, char *buf, size_t size)
{
	snprintf(buf, size, "%s:%zu:%zu", ld->file, mark.line + 1, mark.column + 1);
	return buf;
}

/* Key paths of list items and map entries; a path too long for the buffer is cut short. */
static void __printf(3, 4) fmt_path(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* ---- small values: parsing text, with the reason it is wrong ------------------------------- */

static void fmt_duration(uint64_t ms, char *buf, size_t size)
{
	if (ms == 0)
		snprintf(buf, size, "0s");
	else if (ms % HOUR == 0)
		snprintf(buf, size, "%" PRIu64 "h", ms / HOUR);
	else if (ms % MIN_ == 0)
		snprintf(buf, size, "%" PRIu64 "m", ms / MIN_);
	else if (ms % SEC == 0)
		snprintf(buf, size, "%" PRIu64 "s", ms / SEC);
	else
		snprintf(buf, size, "%" PRIu64 "ms", ms);
}

/* What a key accepts, for the "(expected ...)" part of a message. */
static void describe(const struct key_spec *k, char *buf, size_t size)
{
	char lo[32], hi[32];
	size_t len;

	switch (k->kind) {
	case K_BOOL:
		snprintf(buf, size, "true or false");
		break;
	case K_U32:
		snprintf(buf, size, "an integer in %" PRId64 "..%" PRId64, k->min, k->max);
		break;
	case K_DOUBLE:
		snprintf(buf, size, "a number in %g..%g", k->dmin, k->dmax);
		break;
	case K_DURATION:
		fmt_duration((uint64_t)k->min, lo, sizeof(lo));
		fmt_duration((uint64_t)k->max, hi, sizeof(hi));
		snprintf(buf, size, "a duration like 500ms, 10s, 1m or 2h, in %s..%s", lo, hi);
		break;
	case K_ENUM:
		len = (size_t)snprintf(buf, size, "one of ");
		for (const char *const *n = k->names; *n && len < size; n++)
			len += (size_t)snprintf(buf + len, size - len, "%s%s", *n,
						n[1] ? ", " : "");
		break;
	case K_STRING:
		snprintf(buf, size, "a string");
		break;
	case K_URL:
		snprintf(buf, size, "an http:// or https:// URL with a host");
		break;
	case K_LISTEN:
		snprintf(buf, size, "host:port with a port in 1..65535, or \"\" to turn it off");
		break;
	case K_NETNS:
		snprintf(buf, size, "a list of /run/netns/NAME paths or namespace inode numbers");
		break;
	case K_PORTS:
		snprintf(buf, size, "a list of ports in 1..65535");
		break;
	case K_CIDRS:
		snprintf(buf, size, "a list of addresses or CIDRs like 10.0.0.0/8 or fd00::/8");
		break;
	case K_MAP:
		snprintf(buf, size, "a map of names to strings");
		break;
	case K_RULES:
		snprintf(buf, size, "a list of rules like {match: {exe: NAME}, name: SERVICE}");
		break;
	}
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const t[] = { "true", "True", "TRUE" };
	static const char *const f[] = { "false", "False", "FALSE" };

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		if (strcmp(s, t[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, f[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Decimal integer, whole string, no sign but '-'; returns -ERANGE past int64. */
static int parse_int(const char *s, int64_t *out)
{
	const char *p = s;
	char *end;
	long long v;

	if (*p == '-')
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	*out = v;
	return 0;
}

/*
 * Durations: one or more NUMBER UNIT parts ("500ms", "10s", "1m30s", "1.5s"), units ms, s, m,
 * h; a bare "0" is allowed since zero needs no unit. Whole milliseconds only.
 */
static int parse_duration(const char *s, uint64_t *out, char *why, size_t n)
{
	static const uint64_t limit = 1000ULL * 1000 * 1000 * 1000 * 1000; /* ~31 years in ms */
	const char *p = s;
	uint64_t total = 0;

	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (*s == '-') {
		snprintf(why, n, "'" ECHO "' is negative", s);
		return -EINVAL;
	}
	if (!*s)
		goto bad;
	while (*p) {
		uint64_t whole = 0, frac = 0, fdiv = 1, unit, part;

		if (!isdigit((unsigned char)*p))
			goto bad;
		for (; isdigit((unsigned char)*p); p++) {
			whole = whole * 10 + (uint64_t)(*p - '0');
			if (whole > limit)
				goto too_long;
		}
		if (*p == '.') {
			p++;
			if (!isdigit((unsigned char)*p))
				goto bad;
			for (; isdigit((unsigned char)*p); p++) {
				if (fdiv >= 1000000000ULL)
					goto bad;
				frac = frac * 10 + (uint64_t)(*p - '0');
				fdiv *= 10;
			}
		}
		if (strncmp(p, "ms", 2) == 0) {
			unit = 1;
			p += 2;
		} else if (*p == 's') {
			unit = SEC;
			p++;
		} else if (*p == 'm') {
			unit = MIN_;
			p++;
		} else if (*p == 'h') {
			unit = HOUR;
			p++;
		} else if (!*p && total == 0 && fdiv == 1) {
			snprintf(why, n, "'" ECHO "' has no unit", s);
			return -EINVAL;
		} else {
			goto bad;
		}
		if ((frac * unit) % fdiv) {
			snprintf(why, n, "'" ECHO "' is not a whole number of milliseconds", s);
			return -EINVAL;
		}
		part = whole * unit + frac * unit / fdiv;
		if (whole > limit / unit || part > limit - total)
			goto too_long;
		total += part;
	}
	*out = total;
	return 0;
too_long:
	snprintf(why, n, "'" ECHO "' is too long", s);
	return -ERANGE;
bad:
	snprintf(why, n, "'" ECHO "' is not a duration", s);
	return -EINVAL;
}

static bool port_ok(const char *s, size_t len)
{
	unsigned long v = 0;

	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

static bool has_space_or_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return true;
	return false;
}

static int check_url(const char *s, char *why, size_t n)
{
	const char *auth, *host_end;
	size_t alen;

	if (strncasecmp(s, "http://", 7) == 0)
		auth = s + 7;
	else if (strncasecmp(s, "https://", 8) == 0)
		auth = s + 8;
	else
		goto not_url;
	if (has_space_or_control(s))
		goto not_url;
	alen = strcspn(auth, "/?#");
	if (memchr(auth, '@', alen)) {
		/* They would be printed and logged with the URL: headers are the place. */
		snprintf(why, n,
			 "credentials in the URL are not allowed (use exporter.otlp.headers)");
		return -EINVAL;
	}
	if (auth[0] == '[') {
		host_end = memchr(auth, ']', alen);
		if (!host_end || host_end == auth + 1)
			goto no_host;
		host_end++;
	} else {
		host_end = memchr(auth, ':', alen);
		if (!host_end)
			host_end = auth + alen;
		if (host_end == auth)
			goto no_host;
	}
	if (host_end < auth + alen) {
		if (*host_end != ':' ||
		    !port_ok(host_end + 1, (size_t)(auth + alen - host_end - 1))) {
			snprintf(why, n, "'" ECHO "' has a bad port", s);
			return -EINVAL;
		}
	}
	return 0;
no_host:
	snprintf(why, n, "'" ECHO "' has no host", s);
	return -EINVAL;
not_url:
	snprintf(why, n, "'" ECHO "' is not an http(s) URL", s);
	return -EINVAL;
}

static int check_listen(const char *s, char *why, size_t n)
{
	const char *colon;

	if (!*s)
		return 0;
	if (has_space_or_control(s))
		goto bad;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close == s + 1)
			goto bad;
		colon = close + 1;
		if (*colon != ':') {
			snprintf(why, n, "'" ECHO "' has no port", s);
			return -EINVAL;
		}
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			snprintf(why, n, "'" ECHO "' has no port", s);
			return -EINVAL;
		}
		if (strchr(s, ':') != colon) {
			snprintf(why, n, "'" ECHO "' needs brackets around the IPv6 address", s);
			return -EINVAL;
		}
		if (colon == s) {
			snprintf(why, n,
				 "'" ECHO "' has no host (use 0.0.0.0 or [::] for every address)",
				 s);
			return -EINVAL;
		}
	}
	if (!port_ok(colon + 1, strlen(colon + 1))) {
		snprintf(why, n, "'" ECHO "' has a bad port", s);
		return -EINVAL;
	}
	return 0;
bad:
	snprintf(why, n, "'" ECHO "' is not a listen address", s);
	return -EINVAL;
}

static int check_netns(const char *s, char *why, size_t n)
{
	int64_t v;

	if (s[0] == '/' && s[1])
		return 0;
	if (parse_int(s, &v) == 0 && v > 0)
		return 0;
	snprintf(why, n, "'" ECHO "' is neither an absolute path nor an inode number", s);
	return -EINVAL;
}

static int parse_port(const char *s, uint16_t *out, char *why, size_t n)
{
	int64_t v;
	int err = parse_int(s, &v);

	if (err == -EINVAL) {
		snprintf(why, n, "'" ECHO "' is not a port number", s);
		return err;
	}
	if (err || v < 1 || v > 65535) {
		snprintf(why, n, ECHO " is out of range", s);
		return -ERANGE;
	}
	*out = (uint16_t)v;
	return 0;
}

static int set_string(char **dst, const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		return -ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

/*
 * Parses the text of a scalar key into the config; on a bad value writes why into `why` and
 * leaves the field alone. Returns 0, -EINVAL, -ERANGE or -ENOMEM.
 */
static int parse_text(const struct key_spec *k, struct config *cfg, const char *s, char *why,
		      size_t n)
{
	void *dst = field(cfg, k);
	int64_t iv;
	double dv;
	uint64_t ms;
	char *end;
	int err;

	switch (k->kind) {
	case K_BOOL:
		if (parse_bool(s, dst)) {
			snprintf(why, n, "'" ECHO "' is not a boolean", s);
			return -EINVAL;
		}
		return 0;
	case K_U32:
		err = parse_int(s, &iv);
		if (err == -EINVAL) {
			snprintf(why, n, "'" ECHO "' is not an integer", s);
			return err;
		}
		if (err || iv < k->min || iv > k->max) {
			snprintf(why, n, ECHO " is out of range", s);
			return -ERANGE;
		}
		*(uint32_t *)dst = (uint32_t)iv;
		return 0;
	case K_DOUBLE:
		errno = 0;
		dv = strtod(s, &end);
		if (!*s || *end || isspace((unsigned char)*s) || !isfinite(dv)) {
			snprintf(why, n, "'" ECHO "' is not a number", s);
			return -EINVAL;
		}
		if (dv < k->dmin || dv > k->dmax) {
			snprintf(why, n, ECHO " is out of range", s);
			return -ERANGE;
		}
		*(double *)dst = dv;
		return 0;
	case K_DURATION:
		err = parse_duration(s, &ms, why, n);
		if (err)
			return err;
		if (ms < (uint64_t)k->min || ms > (uint64_t)k->max) {
			snprintf(why, n, ECHO " is out of range", s);
			return -ERANGE;
		}
		*(uint64_t *)dst = ms;
		return 0;
	case K_ENUM:
		for (int i = 0; k->names[i]; i++) {
			if (strcmp(s, k->names[i]) == 0) {
				*(int *)dst = i;
				return 0;
			}
		}
		snprintf(why, n, "'" ECHO "' is not a valid value", s);
		return -EINVAL;
	case K_URL:
		err = check_url(s, why, n);
		if (err)
			return err;
		return set_string(dst, s);
	case K_LISTEN:
		err = check_listen(s, why, n);
		if (err)
			return err;
		return set_string(dst, s);
	case K_STRING:
		return set_string(dst, s);
	case K_NETNS:
	case K_PORTS:
	case K_CIDRS:
	case K_MAP:
	case K_RULES:
		/* Only their empty default is ever text. */
		if (strcmp(s, "[]") && strcmp(s, "{}")) {
			snprintf(why, n, "'" ECHO "' is not a list or map", s);
			return -EINVAL;
		}
		return 0;
	}
	return -EINVAL;
}

/* ---- lists and maps ------------------------------------------------------------------------ */

static void kv_clear(struct kv_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].key);
		free(l->items[i].value);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

/* Sets key to value, replacing an existing key (HTTP header names match in any case). */
static int kv_set(struct kv_list *l, const char *key, const char *value)
{
	struct kv_pair *items;
	char *k, *v = strdup(value);

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		if (strcasecmp(l->items[i].key, key) == 0) {
			free(l->items[i].value);
			l->items[i].value = v;
			return 0;
		}
	}
	k = strdup(key);
	items = realloc(l->items, (l->n + 1) * sizeof(*items));
	if (!k || !items) {
		free(k);
		free(v);
		if (items)
			l->items = items;
		return -ENOMEM;
	}
	l->items = items;
	l->items[l->n].key = k;
	l->items[l->n].value = v;
	l->n++;
	return 0;
}

static int kv_merge(struct kv_list *dst, const struct kv_list *src)
{
	for (size_t i = 0; i < src->n; i++) {
		int err = kv_set(dst, src->items[i].key, src->items[i].value);

		if (err)
			return err;
	}
	return 0;
}

static void kv_remove(struct kv_list *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->items[i].key, key))
			continue;
		free(l->items[i].key);
		free(l->items[i].value);
		memmove(&l->items[i], &l->items[i + 1], (l->n - i - 1) * sizeof(l->items[0]));
		l->n--;
		return;
	}
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void rule_clear(struct service_rule *r)
{
	free(r->match_exe);
	free(r->match_cmdline);
	free(r->match_service);
	free(r->name);
}

static void rules_free(struct service_rule *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rule_clear(&r[i]);
	free(r);
}

/* Header names are HTTP tokens; values may not break the header line. */
static bool header_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

static bool header_value_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return false;
	return true;
}

/* ---- the YAML walk ------------------------------------------------------------------------- */

static bool node_is_null(const yaml_node_t *node)
{
	const char *v;

	if (!node)
		return true;
	if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)node->data.scalar.value;
	return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	       !strcmp(v, "NULL");
}

static const char *node_text(const yaml_node_t *node)
{
	return (const char *)node->data.scalar.value;
}

/* "a map", "a list" or 'the scalar', for "got ..." messages. */
static const char *node_what(const yaml_node_t *node, char *buf, size_t size)
{
	if (node->type == YAML_MAPPING_NODE)
		return "a map";
	if (node->type == YAML_SEQUENCE_NODE)
		return "a list";
	snprintf(buf, size, "'" ECHO "'", node_text(node));
	return buf;
}

static void fail_node(struct loader *ld, const yaml_node_t *node, const char *path, const char *why,
		      const char *expect)
{
	char where[WHERE_LEN];

	fail(ld, mark_where(ld, node->start_mark, where, sizeof(where)), path, "%s (expected %s)",
	     why, expect);
}

static void fail_type(struct loader *ld, const yaml_node_t *node, const char *path,
		      const char *expect)
{
	char what[128], why[160];

	snprintf(why, sizeof(why), "got %s", node_what(node, what, sizeof(what)));
	fail_node(ld, node, path, why, expect);
}

/* A scalar without NUL bytes inside; otherwise reports and returns NULL. */
static const char *scalar_or_fail(struct loader *ld, const yaml_node_t *node, const char *path,
				  const char *expect)
{
	if (node->type != YAML_SCALAR_NODE) {
		fail_type(ld, node, path, expect);
		return NULL;
	}
	if (strlen(node_text(node)) != node->data.scalar.length) {
		fail_node(ld, node, path, "contains a NUL character", expect);
		return NULL;
	}
	return node_text(node);
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65], prev;

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = tolower((unsigned char)a[i - 1]) !=
				      tolower((unsigned char)b[j - 1]);
			size_t best = MIN(row[j] + 1, row[j - 1] + 1);

			best = MIN(best, prev + cost);
			prev = row[j];
			row[j] = best;
		}
	}
	return row[lb];
}

/* Known names one level below `prefix` ("" = top level), each once, in table order. */
static size_t child_names(const char *prefix, const char **names, size_t *lens, size_t max)
{
	size_t plen = strlen(prefix), n = 0;

	for (size_t i = 0; i < N_KEYS && n < max; i++) {
		const char *p = keys[i].path, *name;
		size_t len;
		bool seen = false;

		if (plen && (strncmp(p, prefix, plen) || p[plen] != '.'))
			continue;
		name = plen ? p + plen + 1 : p;
		len = strcspn(name, ".");
		for (size_t j = 0; j < n; j++)
			seen |= lens[j] == len && !strncmp(names[j], name, len);
		if (!seen) {
			names[n] = name;
			lens[n++] = len;
		}
	}
	return n;
}

static bool is_section(const char *path)
{
	size_t len = strlen(path);

	for (size_t i = 0; i < N_KEYS; i++)
		if (!strncmp(keys[i].path, path, len) && keys[i].path[len] == '.')
			return true;
	return false;
}

static void list_names(char *buf, size_t size, const char **names, const size_t *lens, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%.*s", i ? ", " : "",
					(int)lens[i], names[i]);
}

static void fail_unknown(struct loader *ld, const yaml_node_t *key, const char *prefix,
			 const char *path)
{
	const char *name = node_text(key), *names[32];
	size_t lens[32], n = child_names(prefix, names, lens, ARRAY_SIZE(names));
	size_t best = SIZE_MAX, best_i = 0, limit = MAX(strlen(name) / 3, (size_t)1);
	char where[WHERE_LEN], list[512], one[64];

	mark_where(ld, key->start_mark, where, sizeof(where));
	if (strchr(name, '.') && (key_find(path) || is_section(path))) {
		fail(ld, where, path, "unknown key (write nested maps, not dotted keys)");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(one, sizeof(one), "%.*s", (int)lens[i], names[i]);
		size_t d = edit_distance(name, one);

		if (d < best) {
			best = d;
			best_i = i;
		}
	}
	if (best <= limit) {
		fail(ld, where, path, "unknown key (did you mean '%.*s'?)", (int)lens[best_i],
		     names[best_i]);
		return;
	}
	/* The right key in the wrong section, e.g. "timeout" directly under "exporter". */
	for (size_t i = 0; i < N_KEYS; i++) {
		const char *leaf = strrchr(keys[i].path, '.');

		if (leaf && !strcmp(leaf + 1, name)) {
			fail(ld, where, path, "unknown key (did you mean '%s'?)", keys[i].path);
			return;
		}
	}
	list_names(list, sizeof(list), names, lens, n);
	fail(ld, where, path, "unknown key (expected one of %s)", list);
}

/* Reports a key repeated in one map; returns true when `i` repeats an earlier key. */
static bool duplicate_key(struct loader *ld, yaml_document_t *doc, const yaml_node_t *map, size_t i,
			  const char *path)
{
	const yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
	const yaml_node_t *key = yaml_document_get_node(doc, pairs[i].key);
	char where[WHERE_LEN];

	for (size_t j = 0; j < i; j++) {
		const yaml_node_t *other = yaml_document_get_node(doc, pairs[j].key);

		if (other->type != YAML_SCALAR_NODE || strcmp(node_text(other), node_text(key)))
			continue;
		fail(ld, mark_where(ld, key->start_mark, where, sizeof(where)), path,
		     "duplicate key (first set at line %zu)", other->start_mark.line + 1);
		return true;
	}
	return false;
}

static void key_origin(struct loader *ld, const struct key_spec *k, const char *where)
{
	snprintf(ld->origin[k - keys], WHERE_LEN, "%s", where);
}

static void load_netns(struct loader *ld, yaml_document_t *doc, const yaml_node_t *seq,
		       const char *path)
{
	struct config *cfg = ld->cfg;
	size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
	char **v = calloc(n ? n : 1, sizeof(*v)), why[WHY_LEN], ipath[PATH_LEN];
	static const char *const expect = "a /run/netns/NAME path or a namespace inode number";
	size_t got = 0;

	if (!v) {
		fail_nomem(ld);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *item =
			yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
		const char *s;

		fmt_path(ipath, sizeof(ipath), "%s[%zu]", path, i);
		s = scalar_or_fail(ld, item, ipath, expect);
		if (!s)
			continue;
		if (check_netns(s, why, sizeof(why))) {
			fail_node(ld, item, ipath, why, expect);
			continue;
		}
		v[got] = strdup(s);
		if (!v[got]) {
			fail_nomem(ld);
			break;
		}
		got++;
	}
	strv_free(cfg->capture.netns, cfg->capture.n_netns);
	cfg->capture.netns = v;
	cfg->capture.n_netns = got;
}

static void load_ports(struct loader *ld, yaml_document_t *doc, const yaml_node_t *seq,
		       const char *path)
{
	struct config *cfg = ld->cfg;
	size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
	uint16_t *v = calloc(n ? n : 1, sizeof(*v));
	char why[WHY_LEN], ipath[PATH_LEN];
	size_t got = 0;

	if (!v) {
		fail_nomem(ld);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *item =
			yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
		const char *s;

		fmt_path(ipath, sizeof(ipath), "%s[%zu]", path, i);
		s = scalar_or_fail(ld, item, ipath, "a port in 1..65535");
		if (!s)
			continue;
		if (parse_port(s, &v[got], why, sizeof(why))) {
			fail_node(ld, item, ipath, why, "a port in 1..65535");
			continue;
		}
		got++;
	}
	free(cfg->capture.exclude_ports);
	cfg->capture.exclude_ports = v;
	cfg->capture.n_exclude_ports = got;
}

static void load_cidrs(struct loader *ld, yaml_document_t *doc, const struct key_spec *k,
		       const yaml_node_t *seq, const char *path)
{
	static const char *const expect = "an address or a CIDR like 10.0.0.0/8 or fd00::/8";
	struct cidr_list *dst = field(ld->cfg, k);
	size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
	struct cidr *v = calloc(n ? n : 1, sizeof(*v));
	char why[WHY_LEN], ipath[PATH_LEN];
	size_t got = 0;

	if (!v) {
		fail_nomem(ld);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *item =
			yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
		const char *s;

		fmt_path(ipath, sizeof(ipath), "%s[%zu]", path, i);
		s = scalar_or_fail(ld, item, ipath, expect);
		if (!s)
			continue;
		if (cidr_parse(s, &v[got], why, sizeof(why))) {
			fail_node(ld, item, ipath, why, expect);
			continue;
		}
		got++;
	}
	free(dst->items);
	dst->items = v;
	dst->n = got;
}

static void load_map(struct loader *ld, yaml_document_t *doc, const struct key_spec *k,
		     const yaml_node_t *map, const char *path)
{
	struct kv_list *dst = field(ld->cfg, k), list = { 0 };
	size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
	char ipath[PATH_LEN];

	for (size_t i = 0; i < n; i++) {
		const yaml_node_pair_t *pair = &map->data.mapping.pairs.start[i];
		const yaml_node_t *key = yaml_document_get_node(doc, pair->key);
		const yaml_node_t *val = yaml_document_get_node(doc, pair->value);
		const char *name, *value;

		name = scalar_or_fail(ld, key, path, "a name");
		if (!name)
			continue;
		fmt_path(ipath, sizeof(ipath), "%s.%s", path, name);
		if (duplicate_key(ld, doc, map, i, ipath))
			continue;
		if (!*name || (k->secret && !header_name_ok(name))) {
			fail_node(ld, key, ipath, "not a valid name",
				  k->secret ? "an HTTP header name" : "a non-empty name");
			continue;
		}
		if (val->type != YAML_SCALAR_NODE) {
			fail_type(ld, val, ipath, "a string");
			continue;
		}
		value = node_is_null(val) ? "" : node_text(val);
		if (k->secret &&
		    (!header_value_ok(value) || strlen(value) != val->data.scalar.length)) {
			/* Never echo a header value: it is a secret. */
			fail_node(ld, val, ipath, "value contains a line break or NUL",
				  "a single-line string");
			continue;
		}
		if (kv_set(&list, name, value)) {
			fail_nomem(ld);
			break;
		}
	}
	kv_clear(dst);
	*dst = list;
}

/* Reads one of a rule's string fields; returns false when it was reported as wrong. */
static bool rule_string(struct loader *ld, const yaml_node_t *val, const char *path, char **dst)
{
	const char *s = scalar_or_fail(ld, val, path, "a string");

	if (!s)
		return false;
	if (node_is_null(val) || !*s) {
		fail_node(ld, val, path, "empty value", "a non-empty string");
		return false;
	}
	if (set_string(dst, s)) {
		fail_nomem(ld);
		return false;
	}
	return true;
}

static const char *const match_keys[] = { "exe", "cmdline", "service" };

static bool load_match(struct loader *ld, yaml_document_t *doc, const yaml_node_t *map,
		       const char *path, struct service_rule *r)
{
	size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
	char ipath[PATH_LEN], where[WHERE_LEN];
	bool ok = true;

	if (n == 0) {
		fail_node(ld, map, path, "matches nothing",
			  "at least one of exe, cmdline, service");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const yaml_node_pair_t *pair = &map->data.mapping.pairs.start[i];
		const yaml_node_t *key = yaml_document_get_node(doc, pair->key);
		const yaml_node_t *val = yaml_document_get_node(doc, pair->value);
		const char *name = scalar_or_fail(ld, key, path, "exe, cmdline or service");
		char **dst = NULL;

		if (!name) {
			ok = false;
			continue;
		}
		fmt_path(ipath, sizeof(ipath), "%s.%s", path, name);
		if (duplicate_key(ld, doc, map, i, ipath)) {
			ok = false;
			continue;
		}
		if (!strcmp(name, "exe"))
			dst = &r->match_exe;
		else if (!strcmp(name, "cmdline"))
			dst = &r->match_cmdline;
		else if (!strcmp(name, "service"))
			dst = &r->match_service;
		if (!dst) {
			size_t best = SIZE_MAX, bi = 0;

			for (size_t j = 0; j < ARRAY_SIZE(match_keys); j++) {
				size_t d = edit_distance(name, match_keys[j]);

				if (d < best) {
					best = d;
					bi = j;
				}
			}
			mark_where(ld, key->start_mark, where, sizeof(where));
			if (best <= MAX(strlen(name) / 3, (size_t)1))
				fail(ld, where, ipath, "unknown key (did you mean '%s'?)",
				     match_keys[bi]);
			else
				fail(ld, where, ipath,
				     "unknown key (expected one of exe, cmdline, service)");
			ok = false;
			continue;
		}
		ok &= rule_string(ld, val, ipath, dst);
	}
	return ok;
}

static bool load_rule(struct loader *ld, yaml_document_t *doc, const yaml_node_t *map,
		      const char *path, struct service_rule *r)
{
	static const char *const rule_expect = "{match: {exe: NAME}, name: SERVICE}";
	char ipath[PATH_LEN], where[WHERE_LEN];
	bool ok = true, has_match = false, has_name = false;
	size_t n;

	if (map->type != YAML_MAPPING_NODE) {
		fail_type(ld, map, path, rule_expect);
		return false;
	}
	n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
	for (size_t i = 0; i < n; i++) {
		const yaml_node_pair_t *pair = &map->data.mapping.pairs.start[i];
		const yaml_node_t *key = yaml_document_get_node(doc, pair->key);
		const yaml_node_t *val = yaml_document_get_node(doc, pair->value);
		const char *name = scalar_or_fail(ld, key, path, "match or name");

		if (!name) {
			ok = false;
			continue;
		}
		fmt_path(ipath, sizeof(ipath), "%s.%s", path, name);
		if (duplicate_key(ld, doc, map, i, ipath)) {
			ok = false;
			continue;
		}
		if (!strcmp(name, "match")) {
			has_match = true;
			if (val->type != YAML_MAPPING_NODE) {
				fail_type(ld, val, ipath, "a map with exe, cmdline or service");
				ok = false;
			} else {
				ok &= load_match(ld, doc, val, ipath, r);
			}
		} else if (!strcmp(name, "name")) {
			has_name = true;
			ok &= rule_string(ld, val, ipath, &r->name);
		} else {
			mark_where(ld, key->start_mark, where, sizeof(where));
			if (edit_distance(name, "match") <= 2)
				fail(ld, where, ipath, "unknown key (did you mean 'match'?)");
			else if (edit_distance(name, "name") <= 1)
				fail(ld, where, ipath, "unknown key (did you mean 'name'?)");
			else
				fail(ld, where, ipath, "unknown key (expected match or name)");
			ok = false;
		}
	}
	if (!has_match) {
		fail(ld, mark_where(ld, map->start_mark, where, sizeof(where)), path,
		     "missing 'match' (expected %s)", rule_expect);
		ok = false;
	}
	if (!has_name) {
		fail(ld, mark_where(ld, map->start_mark, where, sizeof(where)), path,
		     "missing 'name' (expected %s)", rule_expect);
		ok = false;
	}
	return ok;
}

static void load_rules(struct loader *ld, yaml_document_t *doc, const yaml_node_t *seq,
		       const char *path)
{
	struct config *cfg = ld->cfg;
	size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
	struct service_rule *v = calloc(n ? n : 1, sizeof(*v));
	char ipath[PATH_LEN];
	size_t got = 0;

	if (!v) {
		fail_nomem(ld);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *item =
			yaml_document_get_node(doc, seq->data.sequence.items.start[i]);

		fmt_path(ipath, sizeof(ipath), "%s[%zu]", path, i);
		if (load_rule(ld, doc, item, ipath, &v[got])) {
			got++;
		} else {
			rule_clear(&v[got]);
			memset(&v[got], 0, sizeof(v[got]));
		}
	}
	rules_free(cfg->service.rules, cfg->service.n_rules);
	cfg->service.rules = v;
	cfg->service.n_rules = got;
}

static void load_key(struct loader *ld, yaml_document_t *doc, const struct key_spec *k,
		     const yaml_node_t *val, const char *path)
{
	char expect[WHY_LEN], why[WHY_LEN], where[WHERE_LEN];
	const char *s;
	int err;

	describe(k, expect, sizeof(expect));
	mark_where(ld, val->start_mark, where, sizeof(where));
	switch (k->kind) {
	case K_NETNS:
	case K_PORTS:
	case K_CIDRS:
	case K_RULES:
		if (node_is_null(val))
			val = NULL;
		else if (val->type != YAML_SEQUENCE_NODE) {
			fail_type(ld, val, path, expect);
			return;
		}
		if (!val)
			return;
		if (k->kind == K_NETNS)
			load_netns(ld, doc, val, path);
		else if (k->kind == K_PORTS)
			load_ports(ld, doc, val, path);
		else if (k->kind == K_CIDRS)
			load_cidrs(ld, doc, k, val, path);
		else
			load_rules(ld, doc, val, path);
		break;
	case K_MAP:
		if (node_is_null(val))
			return;
		if (val->type != YAML_MAPPING_NODE) {
			fail_type(ld, val, path, expect);
			return;
		}
		load_map(ld, doc, k, val, path);
		break;
	default:
		s = scalar_or_fail(ld, val, path, expect);
		if (!s)
			return;
		if (node_is_null(val)) {
			if (k->kind != K_STRING && k->kind != K_LISTEN) {
				fail_node(ld, val, path, "has no value", expect);
				return;
			}
			s = "";
		}
		err = parse_text(k, ld->cfg, s, why, sizeof(why));
		if (err == -ENOMEM) {
			fail_nomem(ld);
			return;
		}
		if (err) {
			fail_node(ld, val, path, why, expect);
			return;
		}
		break;
	}
	key_origin(ld, k, where);
}

static void load_section(struct loader *ld, yaml_document_t *doc, const yaml_node_t *map,
			 const char *prefix)
{
	size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
	char path[PATH_LEN];

	for (size_t i = 0; i < n; i++) {
		const yaml_node_pair_t *pair = &map->data.mapping.pairs.start[i];
		const yaml_node_t *key = yaml_document_get_node(doc, pair->key);
		const yaml_node_t *val = yaml_document_get_node(doc, pair->value);
		const struct key_spec *k;
		const char *name;

		name = scalar_or_fail(ld, key, *prefix ? prefix : "(top level)", "a key name");
		if (!name)
			continue;
		fmt_path(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name);
		if (duplicate_key(ld, doc, map, i, path))
			continue;
		k = strchr(name, '.') ? NULL : key_find(path);
		if (k) {
			load_key(ld, doc, k, val, path);
		} else if (!strchr(name, '.') && is_section(path)) {
			if (node_is_null(val))
				continue;
			if (val->type != YAML_MAPPING_NODE) {
				const char *names[32];
				size_t lens[32], cn = child_names(path, names, lens, 32);
				char list[512], expect[600];

				list_names(list, sizeof(list), names, lens, cn);
				snprintf(expect, sizeof(expect), "a map with keys %s", list);
				fail_type(ld, val, path, expect);
				continue;
			}
			load_section(ld, doc, val, path);
		} else {
			fail_unknown(ld, key, prefix, path);
		}
	}
}

/* Reads the whole file: config files are small, and marks index into this buffer. */
static char *read_file(struct loader *ld, const char *path, size_t *len, struct stat *st)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	int err;

	if (!f)
		goto fail_errno;
	if (fstat(fileno(f), st))
		goto fail_errno;
	if (S_ISDIR(st->st_mode)) {
		errno = EISDIR;
		goto fail_errno;
	}
	buf = malloc(CONFIG_MAX_BYTES + 1);
	if (!buf)
		goto fail_errno;
	*len = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
	if (ferror(f)) {
		errno = EIO;
		goto fail_errno;
	}
	if (*len > CONFIG_MAX_BYTES) {
		if (ld->err)
			fprintf(ld->err, "%s: larger than %u bytes: not a configuration file\n",
				path, CONFIG_MAX_BYTES);
		ld->errors++;
		ld->err_no = EFBIG;
		goto out_free;
	}
	buf[*len] = '\0';
	fclose(f);
	return buf;
fail_errno:
	err = errno;
	if (ld->err)
		fprintf(ld->err, "cannot read %s: %s\n", path, strerror(err));
	ld->errors++;
	ld->err_no = err;
out_free:
	free(buf);
	if (f)
		fclose(f);
	return NULL;
}

static void fail_syntax(struct loader *ld, const yaml_parser_t *parser, const char *buf, size_t len)
{
	const char *problem = parser->problem ? parser->problem : "cannot be parsed";
	yaml_mark_t mark = parser->problem_mark;
	char where[WHERE_LEN];

	mark_where(ld, mark, where, sizeof(where));
	if (mark.index < len && buf[mark.index] == '\t') {
		fail(ld, where, NULL, "invalid YAML: %s (tabs cannot indent YAML: use spaces)",
		     problem);
	} else if (parser->context) {
		fail(ld, where, NULL, "invalid YAML: %s (%s started at line %zu column %zu)",
		     problem, parser->context, parser->context_mark.line + 1,
		     parser->context_mark.column + 1);
	} else {
		fail(ld, where, NULL, "invalid YAML: %s", problem);
	}
}

static void load_file(struct loader *ld, const char *path)
{
	yaml_document_t doc, extra;
	yaml_parser_t parser;
	const yaml_node_t *root;
	const struct kv_list *headers = &ld->cfg->exporter.otlp.headers;
	char where[WHERE_LEN];
	struct stat st;
	size_t len = 0;
	char *buf;

	buf = read_file(ld, path, &len, &st);
	if (!buf)
		return;
	if (!yaml_parser_initialize(&parser)) {
		fail_nomem(ld);
		goto out_buf;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		fail_syntax(ld, &parser, buf, len);
		goto out_parser;
	}
	root = yaml_document_get_root_node(&doc);
	if (root && !node_is_null(root)) {
		if (root->type != YAML_MAPPING_NODE)
			fail_type(ld, root, "(top level)", "a map of sections");
		else
			load_section(ld, &doc, root, "");
	}
	/* A second document is a mistake (a stray "---"), not something to ignore. */
	if (!yaml_parser_load(&parser, &extra)) {
		fail_syntax(ld, &parser, buf, len);
	} else {
		root = yaml_document_get_root_node(&extra);
		if (root)
			fail(ld, mark_where(ld, extra.start_mark, where, sizeof(where)), NULL,
			     "a second YAML document (expected one document per file)");
		yaml_document_delete(&extra);
	}
	yaml_document_delete(&doc);
	ld->cfg->secrets_world_readable = headers->n && (st.st_mode & S_IROTH);
out_parser:
	yaml_parser_delete(&parser);
out_buf:
	free(buf);
}

/* ---- the environment ----------------------------------------------------------------------- */

/* The value of NAME in envp; an empty value counts as unset, as the OpenTelemetry spec says. */
static const char *env_get(char *const *envp, const char *name)
{
	size_t len = strlen(name);

	for (; envp && *envp; envp++)
		if (!strncmp(*envp, name, len) && (*envp)[len] == '=')
			return (*envp)[len + 1] ? *envp + len + 1 : NULL;
	return NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes %XX in place; returns -EINVAL on a broken escape. */
static int url_decode(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (*s != '%') {
			*out++ = *s;
			continue;
		}
		if (hexval(s[1]) < 0 || hexval(s[2]) < 0)
			return -EINVAL;
		*out++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
		s += 2;
	}
	*out = '\0';
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/*
 * "k=v,k2=v2" with values %-decoded and spaces trimmed (the W3C baggage form the spec uses).
 * `secret`: the values are headers, so no message ever shows one.
 */
static void env_kv(struct loader *ld, const char *var, const char *text, bool secret,
		   struct kv_list *out)
{
	char *copy = strdup(text), *save = NULL, *item;
	int index = 0;

	if (!copy) {
		fail_nomem(ld);
		return;
	}
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq, *key, *value;

		index++;
		item = trim(item);
		if (!*item)
			continue;
		eq = strchr(item, '=');
		if (!eq) {
			if (secret)
				fail(ld, var, NULL,
				     "item %d is not key=value (expected k1=v1,k2=v2)", index);
			else
				fail(ld, var, NULL,
				     "'" ECHO "' is not key=value (expected k1=v1,k2=v2)", item);
			continue;
		}
		*eq = '\0';
		key = trim(item);
		value = trim(eq + 1);
		if (!*key || (secret && !header_name_ok(key))) {
			fail(ld, var, NULL, "item %d has a bad name '" ECHO "' (expected %s)",
			     index, key, secret ? "an HTTP header name" : "a non-empty name");
			continue;
		}
		if (url_decode(value)) {
			fail(ld, var, NULL,
			     "%s has a bad %%-escape (expected %%XX with hex digits)", key);
			continue;
		}
		if (secret && !header_value_ok(value)) {
			fail(ld, var, NULL, "%s: value contains a line break", key);
			continue;
		}
		if (kv_set(out, key, value)) {
			fail_nomem(ld);
			break;
		}
	}
	free(copy);
}

static void env_key(struct loader *ld, const struct key_spec *k, const char *val)
{
	char expect[WHY_LEN], why[WHY_LEN];
	int64_t ms;
	int err;

	switch (k->kind) {
	case K_DURATION:
		/* The spec's durations are whole milliseconds, with no unit. */
		if (parse_int(val, &ms) == -EINVAL || *val == '-') {
			fail(ld, k->env, NULL, "'" ECHO "' is not a number of milliseconds", val);
			return;
		}
		if (parse_int(val, &ms) || ms < k->min || ms > k->max) {
			fail(ld, k->env, NULL,
			     ECHO " is out of range (expected milliseconds in %" PRId64 "..%" PRId64
				  ")",
			     val, k->min, k->max);
			return;
		}
		*(uint64_t *)field(ld->cfg, k) = (uint64_t)ms;
		break;
	case K_MAP: {
		struct kv_list add = { 0 };
		int before = ld->errors;

		env_kv(ld, k->env, val, k->secret, &add);
		if (ld->errors == before && kv_merge(field(ld->cfg, k), &add))
			fail_nomem(ld);
		kv_clear(&add);
		break;
	}
	default:
		err = parse_text(k, ld->cfg, val, why, sizeof(why));
		if (err == -ENOMEM) {
			fail_nomem(ld);
			return;
		}
		if (err) {
			describe(k, expect, sizeof(expect));
			fail(ld, k->env, NULL, "%s (expected %s)", why, expect);
			return;
		}
	}
	key_origin(ld, k, k->env);
}

static const char *const signal_endpoint_env[2] = {
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
};
static const char *const signal_headers_env[2] = {
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_METRICS_HEADERS",
};

static void load_env(struct loader *ld, char *const *envp)
{
	struct config *cfg = ld->cfg;
	char why[WHY_LEN];
	const char *val;

	for (size_t i = 0; i < N_KEYS; i++) {
		if (!keys[i].env)
			continue;
		val = env_get(envp, keys[i].env);
		if (val)
			env_key(ld, &keys[i], val);
	}
	for (int s = 0; s < 2; s++) {
		val = env_get(envp, signal_endpoint_env[s]);
		if (val && check_url(val, why, sizeof(why))) {
			fail(ld, signal_endpoint_env[s], NULL,
			     "%s (expected an http:// or https:// URL with a host)", why);
		} else if (val) {
			ld->sig_endpoint[s] = strdup(val);
			if (!ld->sig_endpoint[s])
				fail_nomem(ld);
		}
		val = env_get(envp, signal_headers_env[s]);
		if (val)
			env_kv(ld, signal_headers_env[s], val, true, &ld->sig_headers[s]);
	}
	val = env_get(envp, "OTEL_RESOURCE_ATTRIBUTES");
	if (val) {
		env_kv(ld, "OTEL_RESOURCE_ATTRIBUTES", val, false, &cfg->self.attributes);
		/* service.name there names the agent unless OTEL_SERVICE_NAME does. */
		for (size_t i = 0; i < cfg->self.attributes.n; i++) {
			if (strcmp(cfg->self.attributes.items[i].key, "service.name"))
				continue;
			if (set_string(&cfg->self.service_name,
				       cfg->self.attributes.items[i].value))
				fail_nomem(ld);
			break;
		}
		kv_remove(&cfg->self.attributes, "service.name");
	}
	val = env_get(envp, "OTEL_SERVICE_NAME");
	if (val && set_string(&cfg->self.service_name, val))
		fail_nomem(ld);
}

/* ---- command-line overrides, checks, derived values ---------------------------------------- */

static void override_key(struct loader *ld, const char *flag, const char *path, const char *val)
{
	const struct key_spec *k = key_find(path);
	char expect[WHY_LEN], why[WHY_LEN];
	int err;

	if (!val || !k)
		return;
	err = parse_text(k, ld->cfg, val, why, sizeof(why));
	if (err == -ENOMEM) {
		fail_nomem(ld);
	} else if (err) {
		describe(k, expect, sizeof(expect));
		fail(ld, flag, NULL, "%s (expected %s)", why, expect);
	} else {
		key_origin(ld, k, flag);
	}
}

static void load_overrides(struct loader *ld, const struct config_overrides *ov)
{
	override_key(ld, "--endpoint", "exporter.otlp.endpoint", ov->endpoint);
	override_key(ld, "--log-level", "log.level", ov->log_level);
	override_key(ld, "--backend", "capture.backend", ov->backend);
	override_key(ld, "--ui-listen", "ui.listen", ov->ui_listen);
	if (ov->stdout_export >= 0)
		ld->cfg->exporter.stdout = ov->stdout_export > 0;
	/* A flag beats the environment, the per-signal endpoints included. */
	if (ov->endpoint) {
		for (int s = 0; s < 2; s++) {
			free(ld->sig_endpoint[s]);
			ld->sig_endpoint[s] = NULL;
		}
	}
}

/* base + "/v1/..." with exactly one slash between them, as the spec asks. */
static char *signal_url(const char *base, const char *suffix)
{
	size_t len = strlen(base);
	char *url;

	while (len && base[len - 1] == '/')
		len--;
	if (asprintf(&url, "%.*s/%s", (int)len, base, suffix) < 0)
		return NULL;
	return url;
}

static void derive(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	char **dst[2] = { &cfg->exporter.otlp.traces_endpoint,
			  &cfg->exporter.otlp.metrics_endpoint };
	struct kv_list *hdst[2] = { &cfg->exporter.otlp.traces_headers,
				    &cfg->exporter.otlp.metrics_headers };
	static const char *const suffix[2] = { "v1/traces", "v1/metrics" };

	for (int s = 0; s < 2; s++) {
		free(*dst[s]);
		if (ld->sig_endpoint[s]) {
			*dst[s] = ld->sig_endpoint[s];
			ld->sig_endpoint[s] = NULL;
		} else {
			*dst[s] = signal_url(cfg->exporter.otlp.endpoint, suffix[s]);
		}
		kv_clear(hdst[s]);
		if (!*dst[s] || kv_merge(hdst[s], &cfg->exporter.otlp.headers) ||
		    kv_merge(hdst[s], &ld->sig_headers[s]))
			fail_nomem(ld);
	}
	if (!cfg->self.service_name && set_string(&cfg->self.service_name, "tcpotel"))
		fail_nomem(ld);
}

static void check_retry(struct loader *ld)
{
	const struct key_spec *ki = key_find("exporter.otlp.retry.initial_interval");
	const struct key_spec *km = key_find("exporter.otlp.retry.max_interval");
	uint64_t init = ld->cfg->exporter.otlp.retry.initial_interval_ms;
	uint64_t max = ld->cfg->exporter.otlp.retry.max_interval_ms;
	const char *where;
	char a[32], b[32];

	if (!ki || !km || init <= max)
		return;
	where = ld->origin[ki - keys][0] ? ld->origin[ki - keys] : ld->origin[km - keys];
	fmt_duration(init, a, sizeof(a));
	fmt_duration(max, b, sizeof(b));
	fail(ld, where[0] ? where : "config", ki->path,
	     "%s is longer than max_interval %s (expected at most max_interval)", a, b);
}

/* ---- life cycle ---------------------------------------------------------------------------- */

void config__free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_spec *k = &keys[i];
		void *f = field(cfg, k);

		switch (k->kind) {
		case K_STRING:
		case K_URL:
		case K_LISTEN:
			free(*(char **)f);
			break;
		case K_MAP:
			kv_clear(f);
			break;
		case K_CIDRS:
			free(((struct cidr_list *)f)->items);
			break;
		default:
			break;
		}
	}
	strv_free(cfg->capture.netns, cfg->capture.n_netns);
	free(cfg->capture.exclude_ports);
	rules_free(cfg->service.rules, cfg->service.n_rules);
	free(cfg->exporter.otlp.traces_endpoint);
	free(cfg->exporter.otlp.metrics_endpoint);
	kv_clear(&cfg->exporter.otlp.traces_headers);
	kv_clear(&cfg->exporter.otlp.metrics_headers);
	free(cfg->self.service_name);
	kv_clear(&cfg->self.attributes);
	free(cfg->path);
	free(cfg);
}

static struct config *new_defaults(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	char why[WHY_LEN];

	if (!cfg)
		return NULL;
	for (size_t i = 0; i < N_KEYS; i++) {
		int err = parse_text(&keys[i], cfg, keys[i].def, why, sizeof(why));

		if (err) {
			/* Only ENOMEM: every default is checked by the unit tests. */
			config__free(cfg);
			errno = err == -ENOMEM ? ENOMEM : EINVAL;
			return NULL;
		}
	}
	return cfg;
}

struct config *config__load(const char *path, char *const *envp, const struct config_overrides *ov,
			    FILE *err)
{
	struct loader ld = { .err = err, .file = path };
	struct config *cfg;
	int e;

	ld.origin = calloc(N_KEYS, sizeof(*ld.origin));
	cfg = new_defaults();
	if (!cfg || !ld.origin) {
		e = ENOMEM;
		goto out_fail;
	}
	ld.cfg = cfg;
	if (path) {
		cfg->path = strdup(path);
		if (!cfg->path)
			fail_nomem(&ld);
		else
			load_file(&ld, path);
	}
	/* A file that cannot be read says nothing more worth reporting. */
	if (ld.errors && ld.err_no != EINVAL) {
		e = ld.err_no;
		goto out_fail;
	}
	load_env(&ld, envp);
	if (ov)
		load_overrides(&ld, ov);
	derive(&ld);
	check_retry(&ld);
	if (ld.errors > CONFIG_MAX_SHOWN && err)
		fprintf(err, "%s: %d more problems not shown\n", path ? path : "config",
			ld.errors - CONFIG_MAX_SHOWN);
	if (ld.errors) {
		e = ld.err_no ? ld.err_no : EINVAL;
		goto out_fail;
	}
	e = 0;
	goto out;
out_fail:
	config__free(cfg);
	cfg = NULL;
out:
	for (int s = 0; s < 2; s++) {
		kv_clear(&ld.sig_headers[s]);
		free(ld.sig_endpoint[s]);
	}
	free(ld.origin);
	if (!cfg)
		errno = e;
	return cfg;
}

struct config *config__defaults(void)
{
	return config__load(NULL, NULL, NULL, NULL);
}

bool config__world_readable_secrets(const struct config *cfg)
{
	return cfg && cfg->secrets_world_readable;
}

/* ---- printing ------------------------------------------------------------------------------ */

static void print_quoted(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c == '\t')
			fputs("\\t", out);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\x%02x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

/* Map keys print bare when YAML reads them back as the same plain string. */
static void print_key(FILE *out, const char *s)
{
	bool plain = *s && (isalpha((unsigned char)*s) || *s == '_');

	for (const char *p = s; *p && plain; p++)
		plain = isalnum((unsigned char)*p) || strchr("._-/", *p);
	if (plain && !(strcmp(s, "null") && strcmp(s, "true") && strcmp(s, "false")))
		plain = false;
	if (plain)
		fputs(s, out);
	else
		print_quoted(out, s);
}

static void print_value(const struct config *cfg, const struct key_spec *k, FILE *out, int indent)
{
	const void *f = cfield(cfg, k);
	char buf[64];

	switch (k->kind) {
	case K_BOOL:
		fputs(*(const bool *)f ? "true" : "false", out);
		break;
	case K_U32:
		fprintf(out, "%" PRIu32, *(const uint32_t *)f);
		break;
	case K_DOUBLE: {
		double v = *(const double *)f;

		/* Shortest text that reads back as the same double. */
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(buf, sizeof(buf), "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
		fprintf(out, "%s%s", buf, strpbrk(buf, ".en") ? "" : ".0");
		break;
	}
	case K_DURATION:
		fmt_duration(*(const uint64_t *)f, buf, sizeof(buf));
		fputs(buf, out);
		break;
	case K_ENUM:
		fputs(enum_name_of(k->names, *(const int *)f), out);
		break;
	case K_STRING:
	case K_URL:
	case K_LISTEN:
		print_quoted(out, *(char *const *)f ? *(char *const *)f : "");
		break;
	case K_NETNS:
		fputc('[', out);
		for (size_t i = 0; i < cfg->capture.n_netns; i++) {
			fputs(i ? ", " : "", out);
			print_quoted(out, cfg->capture.netns[i]);
		}
		fputc(']', out);
		break;
	case K_PORTS:
		fputc('[', out);
		for (size_t i = 0; i < cfg->capture.n_exclude_ports; i++)
			fprintf(out, "%s%u", i ? ", " : "", cfg->capture.exclude_ports[i]);
		fputc(']', out);
		break;
	case K_CIDRS: {
		const struct cidr_list *l = f;
		char text[CIDR_STRLEN];

		fputc('[', out);
		for (size_t i = 0; i < l->n; i++) {
			cidr_format(&l->items[i], text, sizeof(text));
			fprintf(out, "%s%s", i ? ", " : "", text);
		}
		fputc(']', out);
		break;
	}
	case K_MAP: {
		const struct kv_list *l = f;

		if (!l->n) {
			fputs("{}", out);
			break;
		}
		for (size_t i = 0; i < l->n; i++) {
			fprintf(out, "\n%*s", indent + 2, "");
			print_key(out, l->items[i].key);
			fputs(": ", out);
			print_quoted(out, k->secret ? "<redacted>" : l->items[i].value);
		}
		break;
	}
	case K_RULES:
		if (!cfg->service.n_rules) {
			fputs("[]", out);
			break;
		}
		for (size_t i = 0; i < cfg->service.n_rules; i++) {
			const struct service_rule *r = &cfg->service.rules[i];
			const char *sep = "";

			fprintf(out, "\n%*s- {match: {", indent + 2, "");
			if (r->match_exe) {
				fputs("exe: ", out);
				print_quoted(out, r->match_exe);
				sep = ", ";
			}
			if (r->match_cmdline) {
				fprintf(out, "%scmdline: ", sep);
				print_quoted(out, r->match_cmdline);
				sep = ", ";
			}
			if (r->match_service) {
				fprintf(out, "%sservice: ", sep);
				print_quoted(out, r->match_service);
			}
			fputs("}, name: ", out);
			print_quoted(out, r->name);
			fputc('}', out);
		}
		break;
	}
}

void config__print(const struct config *cfg, FILE *out)
{
	const char *prev = "";

	fprintf(out, "# tcpotel effective configuration (%s)\n",
		cfg->path ? cfg->path : "built-in defaults");
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_spec *k = &keys[i];
		const char *p = k->path, *q = prev;
		int depth = 0;
		bool block;

		/* Skip the sections this key shares with the previous one. */
		while (*p && *p == *q && strchr(p, '.')) {
			size_t lp = strcspn(p, "."), lq = strcspn(q, ".");

			if (lp != lq || strncmp(p, q, lp) || !q[lq])
				break;
			p += lp + 1;
			q += lq + 1;
			depth++;
		}
		/* Open the sections it does not share. */
		for (const char *dot; (dot = strchr(p, '.')); p = dot + 1, depth++)
			fprintf(out, "%*s%.*s:\n", depth * 2, "", (int)(dot - p), p);
		fprintf(out, "%*s%s:", depth * 2, "", p);
		block = (k->kind == K_MAP && ((const struct kv_list *)cfield(cfg, k))->n) ||
			(k->kind == K_RULES && cfg->service.n_rules);
		if (!block)
			fputc(' ', out);
		print_value(cfg, k, out, depth * 2);
		if (block)
			fprintf(out, "\n%*s# %s\n", depth * 2, "", k->help);
		else
			fprintf(out, "  # %s\n", k->help);
		prev = k->path;
	}
	fprintf(out, "# derived: traces to ");
	print_quoted(out,
		     cfg->exporter.otlp.traces_endpoint ? cfg->exporter.otlp.traces_endpoint : "");
	fprintf(out, ", metrics to ");
	print_quoted(out, cfg->exporter.otlp.metrics_endpoint ?
				  cfg->exporter.otlp.metrics_endpoint :
				  "");
	fprintf(out, "\n# agent's own resource: service.name ");
	print_quoted(out, cfg->self.service_name ? cfg->self.service_name : "");
	for (size_t i = 0; i < cfg->self.attributes.n; i++) {
		fprintf(out, ", %s ", cfg->self.attributes.items[i].key);
		print_quoted(out, cfg->self.attributes.items[i].value);
	}
	fputc('\n', out);
}
