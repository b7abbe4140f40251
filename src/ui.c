// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP listener for the live map and /metrics, on libmicrohttpd's internal
 * epoll thread. The listening socket is made here, so that a refusal is
 * reported with its reason; from then on libmicrohttpd owns it.
 */
#include "ui.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "prom.h"
#include "util.h"

/* Largest page file read from the web directory (echarts.min.js is about 1 MiB). */
#define UI_MAX_ASSET (16 << 20)
/* Per connection: request line and headers must fit (a longer request gets a 4xx). */
#define UI_CONNECTION_MEMORY (32 << 10)

#define CT_JSON		     "application/json"
#define CT_TEXT		     "text/plain; charset=utf-8"
#define CSP		     "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"

#ifndef UI_WEB_SRC
#define UI_WEB_SRC "web"
#endif

/*
 * The page's own files, built into the binary as the fallback (read by the
 * assembler from the source tree, so the agent works from anywhere).
 */
#define UI_INCBIN(sym, file)                            \
	__asm__(".section .rodata\n"                    \
		".global " #sym "\n"                    \
		".hidden " #sym "\n"                    \
		".balign 16\n" #sym ":\n"               \
		".incbin \"" UI_WEB_SRC "/" file "\"\n" \
		".global " #sym "_end\n"                \
		".hidden " #sym "_end\n" #sym "_end:\n" \
		".byte 0\n"                             \
		".previous\n");                         \
	extern const char sym[], sym##_end[]

UI_INCBIN(ui_embedded_index_html, "index.html");
UI_INCBIN(ui_embedded_app_js, "app.js");
UI_INCBIN(ui_embedded_style_css, "style.css");

struct asset {
	const char *path; /* URL path */
	const char *file; /* in the web directory */
	const char *type;
	const char *embedded, *embedded_end; /* NULL: only from the web directory */
	char *data;
	size_t len;
	bool from_dir;
};

struct ui {
	struct MHD_Daemon *daemon;
	char url[INET6_ADDRSTRLEN + 32];
	char listen[256];
	struct asset assets[5];

	pthread_mutex_t lock; /* the published copies below */
	char *graph;
	size_t graph_len;
	char *metrics; /* Prometheus text */
	size_t metrics_len;
};

static const char empty_graph[] = "{\"window_s\":10,\"nodes\":[],\"edges\":[],\"starting\":true}";

/* ---- assets ---------------------------------------------------------------- */

static char *read_small_file(const char *dir, const char *name, size_t *len)
{
	char path[PATH_MAX];
	struct stat st;
	char *buf = NULL;
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return NULL;
	f = fopen(path, "rbe");
	if (!f)
		return NULL;
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || st.st_size > UI_MAX_ASSET)
		goto out;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		goto out;
	if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		free(buf);
		buf = NULL;
		goto out;
	}
	*len = (size_t)st.st_size;
out:
	fclose(f);
	return buf;
}

/*
 * Where the page files are when no directory is given: beside the executable
 * (the build tree: .output/tcpotel and .output/web/), or where `make install`
 * puts them (PREFIX/bin/tcpotel and PREFIX/share/tcpotel/web/).
 */
static bool find_web_dir(char *out, size_t size)
{
	static const char *const rel[] = { "web", "../share/tcpotel/web" };
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct stat st;
	char *slash;

	if (n <= 0)
		return false;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return false;
	*slash = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
		if (snprintf(out, size, "%s/%s", exe, rel[i]) >= (int)size)
			continue;
		if (!stat(out, &st) && S_ISDIR(st.st_mode))
			return true;
	}
	return false;
}

static int load_assets(struct ui *u, const char *web_dir)
{
	const struct asset table[] = {
		{ "/", "index.html", "text/html; charset=utf-8", ui_embedded_index_html,
		  ui_embedded_index_html_end },
		{ "/app.js", "app.js", "text/javascript; charset=utf-8", ui_embedded_app_js,
		  ui_embedded_app_js_end },
		{ "/style.css", "style.css", "text/css; charset=utf-8", ui_embedded_style_css,
		  ui_embedded_style_css_end },
		{ "/echarts.min.js", "echarts.min.js", "text/javascript; charset=utf-8" },
		{ "/index.html", "index.html", "text/html; charset=utf-8", ui_embedded_index_html,
		  ui_embedded_index_html_end },
	};
	char dir[PATH_MAX];
	bool have_dir;

	_Static_assert(ARRAY_SIZE(table) == ARRAY_SIZE(u->assets), "asset table");
	if (web_dir)
		have_dir = snprintf(dir, sizeof(dir), "%s", web_dir) < (int)sizeof(dir);
	else
		have_dir = find_web_dir(dir, sizeof(dir));
	for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
		struct asset *a = &u->assets[i];

		*a = table[i];
		if (have_dir)
			a->data = read_small_file(dir, a->file, &a->len);
		a->from_dir = a->data != NULL;
		if (!a->data && a->embedded) {
			a->len = (size_t)(a->embedded_end - a->embedded);
			a->data = malloc(a->len + 1);
			if (!a->data)
				return -ENOMEM;
			memcpy(a->data, a->embedded, a->len);
		}
	}
	if (!u->assets[3].data)
		log_warn("ui: %s/echarts.min.js not found: the map page shows the table only "
			 "(build with access to the npm registry to install Apache ECharts)",
			 have_dir ? dir : "web");
	else
		log_debug("ui: page files from %s", dir);
	return 0;
}

/* ---- requests -------------------------------------------------------------- */

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *type,
				const void *data, size_t len, bool no_store,
				enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	/* libmicrohttpd takes a non-const pointer even for buffers it only reads. */
	r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)data, mode);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (no_store)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (!strncmp(type, "text/html", 9))
		MHD_add_response_header(r, "Content-Security-Policy", CSP);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return send_buf(c, status, CT_TEXT, msg, strlen(msg), true, MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result send_graph(struct ui *u, struct MHD_Connection *c)
{
	enum MHD_Result ret;

	pthread_mutex_lock(&u->lock);
	if (u->graph)
		ret = send_buf(c, MHD_HTTP_OK, CT_JSON, u->graph, u->graph_len, true,
			       MHD_RESPMEM_MUST_COPY);
	else
		ret = send_buf(c, MHD_HTTP_OK, CT_JSON, empty_graph, sizeof(empty_graph) - 1, true,
			       MHD_RESPMEM_PERSISTENT);
	pthread_mutex_unlock(&u->lock);
	return ret;
}

/* Before the first metrics interval has passed, an empty page: no series yet. */
static enum MHD_Result send_metrics(struct ui *u, struct MHD_Connection *c)
{
	enum MHD_Result ret;

	pthread_mutex_lock(&u->lock);
	ret = send_buf(c, MHD_HTTP_OK, PROM_CONTENT_TYPE, u->metrics ? u->metrics : "",
		       u->metrics_len, true, MHD_RESPMEM_MUST_COPY);
	pthread_mutex_unlock(&u->lock);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct ui *u = cls;

	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (!strcmp(url, "/api/graph"))
		return send_graph(u, c);
	if (!strcmp(url, "/metrics"))
		return send_metrics(u, c);
	for (size_t i = 0; i < ARRAY_SIZE(u->assets); i++) {
		const struct asset *a = &u->assets[i];

		if (strcmp(url, a->path))
			continue;
		if (!a->data)
			break;
		return send_buf(c, MHD_HTTP_OK, a->type, a->data, a->len, false,
				MHD_RESPMEM_PERSISTENT);
	}
	return send_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	if (LOG_DEBUG > log_current_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_debug("ui: %s", msg);
}

/* ---- start and stop -------------------------------------------------------- */

/* "host:port", "[v6]:port" or ":port" (every IPv4 address). */
static int parse_listen(const char *spec, char *host, size_t hsize, char *port, size_t psize)
{
	const char *colon, *h = spec;
	size_t hlen;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		h = spec + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - spec);
	}
	if (hlen >= hsize || strlen(colon + 1) >= psize || !colon[1])
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	strcpy(port, colon + 1);
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	if (!*host)
		strcpy(host, "0.0.0.0");
	return 0;
}

static int open_listener(struct ui *u, const char *spec, bool *v6)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[16], addr[INET6_ADDRSTRLEN];
	int fd = -1, one = 1, err, rc;

	err = parse_listen(spec, host, sizeof(host), port, sizeof(port));
	if (err) {
		log_err("ui.listen %s: not host:port", spec);
		return err;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		log_err("ui.listen %s: cannot resolve: %s", spec, gai_strerror(rc));
		return rc == EAI_MEMORY ? -ENOMEM : -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl))
		goto fail;
	*v6 = ss.ss_family == AF_INET6;
	if (*v6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			snprintf(addr, sizeof(addr), "::1");
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
		snprintf(u->url, sizeof(u->url), "http://[%s]:%u/", addr, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;

		if (s4->sin_addr.s_addr == htonl(INADDR_ANY))
			snprintf(addr, sizeof(addr), "127.0.0.1");
		else
			inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
		snprintf(u->url, sizeof(u->url), "http://%s:%u/", addr, ntohs(s4->sin_port));
	}
	freeaddrinfo(res);
	return fd;
fail:
	err = -errno;
	log_err("ui.listen %s: cannot listen: %s", spec, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return err;
}

struct ui *ui__start(const char *spec, const char *web_dir)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	struct ui *u;
	bool v6 = false;
	int err, fd;

	if (!spec || !*spec) {
		errno = EINVAL;
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&u->lock, NULL);
	snprintf(u->listen, sizeof(u->listen), "%s", spec);
	err = load_assets(u, web_dir);
	if (err)
		goto fail;
	fd = open_listener(u, spec, &v6);
	if (fd < 0) {
		err = fd;
		goto fail;
	}
	if (v6)
		flags |= MHD_USE_IPv6;
	u->daemon =
		MHD_start_daemon(flags, 0, NULL, NULL, handle, u, MHD_OPTION_LISTEN_SOCKET, fd,
				 MHD_OPTION_CONNECTION_LIMIT, (unsigned)UI_MAX_CONNECTIONS,
				 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)UI_CONNECTION_TIMEOUT_S,
				 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)UI_CONNECTION_MEMORY,
				 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, u, MHD_OPTION_END);
	if (!u->daemon) {
		err = errno ? -errno : -EIO;
		close(fd);
		log_err("ui.listen %s: cannot start the HTTP server", spec);
		goto fail;
	}
	log_debug("ui: listening on %s (%s)", spec, u->url);
	return u;
fail:
	ui__stop(u);
	errno = -err;
	return NULL;
}

static void publish(struct ui *u, char **dst, size_t *dst_len, const char *data, size_t len,
		    const char *what)
{
	char *copy = malloc(len ? len : 1), *old;

	if (!copy) {
		log_ratelimited(LOG_WARN, 60000, "ui: out of memory: %s is not updated", what);
		return;
	}
	memcpy(copy, data, len);
	pthread_mutex_lock(&u->lock);
	old = *dst;
	*dst = copy;
	*dst_len = len;
	pthread_mutex_unlock(&u->lock);
	free(old);
}

void ui__publish_graph(struct ui *u, const char *json, size_t len)
{
	if (u)
		publish(u, &u->graph, &u->graph_len, json, len, "the map");
}

void ui__publish_metrics(struct ui *u, const char *prom_text, size_t len)
{
	if (u)
		publish(u, &u->metrics, &u->metrics_len, prom_text, len, "/metrics");
}

void ui__stop(struct ui *u)
{
	if (!u)
		return;
	if (u->daemon)
		MHD_stop_daemon(u->daemon);
	for (size_t i = 0; i < ARRAY_SIZE(u->assets); i++)
		free(u->assets[i].data);
	free(u->graph);
	free(u->metrics);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

const char *ui__url(const struct ui *u)
{
	return u ? u->url : "";
}
