/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's own HTTP listener (libmicrohttpd, one internal epoll thread):
 *
 *   /            the live map page (web/index.html, app.js, style.css)
 *   /echarts.min.js  Apache ECharts, when it was installed at build time
 *   /api/graph   the service graph as JSON (what graph__render_json wrote)
 *   /metrics     the agent's metrics in Prometheus text format 0.0.4
 *
 * Read-only: GET and HEAD only (405 otherwise), 404 for anything else.
 * Connections are bounded in number (UI_MAX_CONNECTIONS) and in time
 * (UI_CONNECTION_TIMEOUT_S), so slow clients cannot pile up. The drain
 * thread only ever hands over copies (ui__publish_*), under a mutex held for
 * a memcpy: the graph's JSON, and the Prometheus text it writes from the
 * metric store once per metrics interval (prom.h). A scrape only copies it.
 *
 * Page files come from `web_dir` (or, when NULL, web/ beside the executable,
 * else ../share/tcpotel/web/ from it) and fall back to copies built into the
 * binary;
 * echarts.min.js comes only from there, and the page says so when it is
 * missing.
 */
#ifndef TCPOTEL_UI_H
#define TCPOTEL_UI_H

#include <stddef.h>

#define UI_MAX_CONNECTIONS	256
#define UI_CONNECTION_TIMEOUT_S 10

struct ui;

/*
 * Listens on `listen` ("host:port", "[v6]:port"; port 0 picks a free one).
 * NULL + errno on failure, logged with the address ("ui.listen
 * 127.0.0.1:9464: cannot listen: Address already in use").
 */
struct ui *ui__start(const char *listen, const char *web_dir);
/* Both copy the bytes and return; safe from any thread. */
void ui__publish_graph(struct ui *u, const char *json, size_t len);
void ui__publish_metrics(struct ui *u, const char *prom_text, size_t len);
void ui__stop(struct ui *u);
/* "http://127.0.0.1:9464/": where a browser on this host finds the map. */
const char *ui__url(const struct ui *u);

#endif
