# SPDX-License-Identifier: Apache-2.0
"""The agent's own live map and Prometheus endpoint (ui.listen), end to end.

A known workload runs between two namespaces (tcpload server "backend" in
one, client "frontend" in the other) while the agent serves its UI on a
loopback port:

- /api/graph holds both services and the edge frontend -> backend with rates
  close to what the workload did, and totals equal to it;
- Debian's headless Chromium, driven by playwright-core (ui_check.mjs), shows
  the nodes and the edge in the page's tables and on the map canvas, and a
  screenshot is saved to .output/test-artifacts/ui.png;
- /metrics passes `promtool check metrics`, its tcp_io_bytes_total equals the
  workload's bytes, and a real Prometheus server scraping the agent answers a
  PromQL query for them;
- garbage, a POST, a 10 KB path, unknown paths and 200 stalled clients get
  4xx answers or time out, and capture stays exact meanwhile;
- the agent's own listener on 127.0.0.1 is drawn as a peer on this host;
- a port already taken stops the start with a message naming the address.

playwright-core comes from `npm ci` of web/package.json into
.output/web-test (done here when missing; the npm registry must be
reachable). TCPOTEL_VERBOSE=1 prints the measured figures.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import harness as h

V4 = ("10.232.0.1/24", "10.232.0.2/24")
V6 = ("fd00:232::1/64", "fd00:232::2/64")
ARTIFACTS = os.path.join(h.ROOT, ".output", "test-artifacts")
WEB_TEST = os.path.join(h.ROOT, ".output", "web-test")
UI_CHECK = os.path.join(h.ROOT, "tests", "integration", "ui_check.mjs")
CHROMIUM = "/usr/bin/chromium"

# The workload: RATE exchanges a second for SECONDS, REQ bytes (+24 of header) up, RESP down.
RATE, SECONDS, REQ, RESP = 200, 8, 200, 2000


note = h.note


free_port = h.free_port


def hosts():
    h.require_root()
    h.require_built(h.TCPLOAD)
    return h.two_hosts(V4, V6)


def start_agent(a, b, port, **extra):
    cfg = {"capture": {"netns": [a.path, b.path]}, "metrics": {"interval": "1s"},
           "ui": {"listen": "127.0.0.1:%d" % port}}
    cfg.update(extra)
    rcv = h.Receiver()
    agent = h.Agent(cfg, receiver=rcv).wait_ready()
    base = "http://127.0.0.1:%d/" % port
    # The URL is printed for the person who started it (make run).
    h.wait_for(lambda: base in agent.log(), 5, 0.1, "the map's URL in the agent's log")
    return agent, base, rcv


def get(url, timeout=5):
    """(status, headers, body bytes) of a GET; HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def graph(base):
    status, headers, body = get(base + "api/graph")
    assert status == 200, (status, body[:300])
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    assert headers.get("Cache-Control") == "no-store", headers
    return json.loads(body)


def edge(g, client, server):
    for e in g["edges"]:
        if e["client"] == client and e["server"] == server:
            return e
    return None


def start_workload(a, b, link, seconds=SECONDS, rate=RATE):
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend")
    args = ["--conns", 4, "--duration-s", seconds, "--rate", rate, "--req-size", REQ,
            "--resp-size", RESP, "--idle-ms", 150]
    argv = ["env", "OTEL_SERVICE_NAME=frontend", h.TCPLOAD, "client", "--connect",
            h.hostport(link.ip_b, port)] + [str(x) for x in args]
    return srv, a.popen(argv, name="tcpload-client")


def finish_workload(srv, cli, timeout=60):
    rc = cli.wait(timeout)
    assert rc == 0, "tcpload client exited %s\n%s" % (rc, cli.stderr_text())
    c = cli.json()
    time.sleep(0.5)  # the agent drains the last records while the server still lives
    s = h.tcpload_server_stop(srv)
    assert c["errors"] == 0 and s["errors"] == 0, (c, s)
    assert c["bytes_sent"] == s["bytes_received"] and c["exchanges"] == s["exchanges"], (c, s)
    return c, s


def stop_agent(agent):
    rc = agent.stop()
    assert rc == 0, "agent exited %s on SIGTERM\n%s" % (rc, agent.log()[-3000:])


def playwright_modules():
    """node_modules holding playwright-core: npm ci of web/package.json, once."""
    nm = os.path.join(WEB_TEST, "node_modules")
    if os.path.isdir(os.path.join(nm, "playwright-core")):
        return nm
    if not shutil.which("npm"):
        raise AssertionError("npm not installed: it installs playwright-core for this test")
    os.makedirs(WEB_TEST, exist_ok=True)
    for f in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(h.ROOT, "web", f), WEB_TEST)
    h.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", WEB_TEST], timeout=300)
    return nm


# ---- 1. the map ---------------------------------------------------------------------


def test_map_shows_the_workload():
    """/api/graph: frontend and backend as services with their host and one pid each, the
    edge frontend -> backend paired, its rates within 25% of the workload's, its latency
    and srtt set, and after the run its totals exactly the workload's; the page in
    Chromium shows the same nodes and edge in its tables and draws the map."""
    a, b, link = hosts()
    port = free_port()
    agent, base, rcv = start_agent(a, b, port)

    # Before any traffic the map answers, empty.
    g0 = graph(base)
    assert g0["edges"] == [], g0
    status, headers, body = get(base)
    assert status == 200 and headers["Content-Type"].startswith("text/html"), (status, headers)
    assert b"app.js" in body, body[:200]

    srv, cli = start_workload(a, b, link)

    # Mid-run (after 5 s of a SECONDS-long run), the rates are those of the workload.
    def mid():
        g = graph(base)
        e = edge(g, "frontend", "backend")
        return (g, e) if e and e["exchanges"] >= RATE * 5 else None

    g, e = h.wait_for(mid, 20, 0.5, "the edge frontend -> backend in /api/graph")
    note("mid-run edge: %r", e)
    names = {n["name"]: n for n in g["nodes"]}
    for svc in ("frontend", "backend"):
        assert svc in names, names
        assert names[svc]["external"] is False and names[svc]["pids"] == 1, names[svc]
        assert names[svc]["host"], names[svc]
    assert e["paired"] is True and "peer" not in e, e
    assert abs(e["exchanges_per_s"] - RATE) <= 0.25 * RATE, e
    assert abs(e["request_bytes_per_s"] - RATE * (REQ + h.TCPLOAD_HEADER)) <= \
        0.25 * RATE * (REQ + h.TCPLOAD_HEADER), e
    assert abs(e["response_bytes_per_s"] - RATE * RESP) <= 0.25 * RATE * RESP, e
    assert e["p50_ms"] is not None and 0 < e["p50_ms"] < 1000, e
    assert e["p99_ms"] is not None and e["p99_ms"] >= e["p50_ms"], e
    assert e["srtt_ms"] is not None and 0 < e["srtt_ms"] < 1000, e

    # The page, in a real browser, while the workload still runs.
    nm = playwright_modules()
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError("chromium not installed (apt-get install chromium)")
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "ui.png")
    if os.path.exists(shot):
        os.unlink(shot)
    cp = h.run(["node", UI_CHECK, base, shot, "--node", "frontend", "--node", "backend",
                "--edge", "frontend,backend"], check=False, timeout=120,
               env={"TCPOTEL_NODE_MODULES": nm, "CHROMIUM": CHROMIUM})
    assert cp.returncode == 0, "ui_check failed:\n%s%s" % (cp.stdout[-3000:], cp.stderr[-3000:])
    assert os.path.getsize(shot) > 10000, shot
    note("%s", cp.stdout.strip())

    c, _s = finish_workload(srv, cli)

    # Every exchange is on the edge, with exactly the workload's bytes, once all are paired.
    def settled():
        e2 = edge(graph(base), "frontend", "backend")
        return e2 if e2 and e2["exchanges"] >= c["exchanges"] else None

    e = h.wait_for(settled, 15, 0.5, "every exchange on the edge")
    g = graph(base)
    note("final edge: %r; stats %r", e, g["stats"])
    assert e["exchanges"] == c["exchanges"], (e, c)
    assert e["request_bytes"] == c["bytes_sent"], (e, c)
    assert e["response_bytes"] == c["bytes_received"], (e, c)
    assert g["stats"]["unpaired"] == 0 and g["stats"]["pending"] == 0, g["stats"]
    assert [x for x in g["edges"] if x.get("peer")] == [], g["edges"]
    stop_agent(agent)


test_map_shows_the_workload.timeout = 240


# ---- 2. Prometheus -------------------------------------------------------------------


def prom_samples(text, name):
    """[(labels dict, value)] of every sample of `name` in Prometheus text."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        labels = {}
        if "{" in head:
            inner = head[head.index("{") + 1:head.rindex("}")]
            for part in _split_labels(inner):
                k, _, v = part.partition("=")
                labels[k] = json.loads(v)
        out.append((labels, float(value)))
    return out


def _split_labels(s):
    parts, cur, quoted, esc = [], "", False, False
    for ch in s:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            cur += ch
            esc = True
        elif ch == '"':
            cur += ch
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def io_sum(samples, job, role, direction):
    return sum(v for lab, v in samples if lab.get("job") == job and lab.get("tcp_role") == role
               and lab.get("network_io_direction") == direction)


def test_metrics_scraped_by_prometheus():
    """/metrics: Prometheus text that promtool accepts, tcp_io_bytes_total per service,
    role and direction equal to tcpload's counts; a Prometheus server scraping the agent
    every second answers the PromQL sum for the frontend's bytes with the same number."""
    a, b, link = hosts()
    if not os.access("/usr/bin/prometheus", os.X_OK) or not os.access("/usr/bin/promtool",
                                                                       os.X_OK):
        raise AssertionError("prometheus not installed (apt-get install prometheus)")
    port = free_port()
    agent, base, rcv = start_agent(a, b, port)
    srv, cli = start_workload(a, b, link, seconds=3)
    c, s = finish_workload(srv, cli)
    want = {("frontend", "client", "transmit"): c["bytes_sent"],
            ("frontend", "client", "receive"): c["bytes_received"],
            ("backend", "server", "transmit"): s["bytes_sent"],
            ("backend", "server", "receive"): s["bytes_received"]}

    def exact():
        status, headers, body = get(base + "metrics")
        assert status == 200, (status, body[:300])
        text = body.decode()
        samples = prom_samples(text, "tcp_io_bytes_total")
        got = {k: io_sum(samples, *k) for k in want}
        return (text, headers, got) if got == want else None

    try:
        text, headers, got = h.wait_for(exact, 20, 0.5, "tcp_io_bytes_total = tcpload's bytes")
    except AssertionError:
        raise AssertionError("tcp_io_bytes_total never matched %r; last /metrics:\n%s"
                             % (want, get(base + "metrics")[2].decode()[-4000:])) from None
    note("tcp_io_bytes_total: %r", got)
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8", headers
    assert "# TYPE tcp_io_bytes_total counter" in text, text[:2000]
    assert text.count("# TYPE tcp_io_bytes_total ") == 1, text

    cp = h.run(["promtool", "check", "metrics"], input=text, check=False)
    assert cp.returncode == 0 and not cp.stdout.strip() and not cp.stderr.strip(), \
        "promtool check metrics:\n%s%s" % (cp.stdout, cp.stderr)

    # A real Prometheus, on loopback, scraping the agent.
    d = h.workdir()
    prom_port = free_port()
    cfg = os.path.join(d, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: tcpotel\n    honor_labels: true\n"
                "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % port)
    h.Proc(["/usr/bin/prometheus", "--config.file=" + cfg,
            "--storage.tsdb.path=" + os.path.join(d, "tsdb"),
            "--web.listen-address=127.0.0.1:%d" % prom_port, "--log.level=warn"],
           name="prometheus")
    q = 'sum(tcp_io_bytes_total{job="frontend",tcp_role="client",' \
        'network_io_direction="transmit"})'
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (prom_port, urllib.parse.urlencode({"query": q}))

    def answered():
        try:
            status, _hd, body = get(url, timeout=2)
        except OSError:
            return None
        if status != 200:
            return None
        res = json.loads(body)["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    v = h.wait_for(answered, 30, 0.5, "Prometheus to answer " + q)
    note("PromQL %s = %s", q, v)
    assert v == c["bytes_sent"], (v, c["bytes_sent"])
    status, _hd, body = get("http://127.0.0.1:%d/api/v1/targets" % prom_port)
    health = [t["health"] for t in json.loads(body)["data"]["activeTargets"]]
    assert health == ["up"], body[:1000]
    stop_agent(agent)


test_metrics_scraped_by_prometheus.timeout = 180


# ---- 2b. the map's own counters as metrics -------------------------------------------

# /api/graph "stats" key -> (OTLP metric, point attributes, Prometheus sample name).
MAP_STATS = {
    "exchanges": ("tcpotel.map.halves", {}, "tcpotel_map_halves_total"),
    "failed_connections": ("tcpotel.map.connections.failed", {},
                           "tcpotel_map_connections_failed_total"),
    "paired": ("tcpotel.map.paired", {}, "tcpotel_map_paired_total"),
    "unpaired": ("tcpotel.map.unpaired", {}, "tcpotel_map_unpaired_total"),
    "pending": ("tcpotel.map.pending", {}, "tcpotel_map_pending"),
    "pending_overflow": ("tcpotel.map.pending.overflow", {},
                         "tcpotel_map_pending_overflow_total"),
    "nodes_dropped": ("tcpotel.map.dropped", {"reason": "node_limit"},
                      "tcpotel_map_dropped_total"),
    "edges_dropped": ("tcpotel.map.dropped", {"reason": "edge_limit"},
                      "tcpotel_map_dropped_total"),
    "duplicates": ("tcpotel.map.dropped", {"reason": "duplicate"}, "tcpotel_map_dropped_total"),
    "nodes": ("tcpotel.map.nodes", {}, "tcpotel_map_nodes"),
    "edges": ("tcpotel.map.edges", {}, "tcpotel_map_edges"),
}


def map_stats(base):
    """/api/graph's stats, with the nodes and edges it lists."""
    g = graph(base)
    return dict(g["stats"], nodes=len(g["nodes"]), edges=len(g["edges"]))


def refused(a, ip, port, service):
    """One connection attempt from namespace `a` by a process of `service`, refused."""
    cp = a.run(["env", "OTEL_SERVICE_NAME=" + service, "python3", "-c",
                "import socket, sys\n"
                "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)\n"
                "except ConnectionRefusedError:\n sys.exit(0)\nsys.exit(1)", ip, port],
               check=False)
    assert cp.returncode == 0, cp


def test_map_counters_are_metrics_and_its_bounds_count_drops():
    """ui.max_nodes 4 and ui.max_edges 2: a paired workload frontend -> backend (2 nodes, 1
    edge), then refused connections of the frontend to three ports outside this host: the
    first gets the third node and the second edge, the second the fourth node but no edge
    (edge_limit), the third no node (node_limit), and a refused attempt of a third service
    no node either. The map's /api/graph stats are then exactly its tcpotel.map.* metrics,
    in the OTLP body and on /metrics; with the UI off (every other test) they are absent."""
    a, b, link = hosts()
    port = free_port()
    agent, base, rcv = start_agent(a, b, port, ui={"listen": "127.0.0.1:%d" % port,
                                                   "max_nodes": 4, "max_edges": 2})
    srv, cli = start_workload(a, b, link, seconds=2, rate=50)
    c, _s = finish_workload(srv, cli)

    def settled():
        e = edge(graph(base), "frontend", "backend")
        return e if e and e["exchanges"] >= c["exchanges"] else None

    h.wait_for(settled, 15, 0.5, "every exchange on the edge frontend -> backend")
    # The tcpload server is gone: nothing listens in b any more.
    for p in (41001, 41002, 41003):
        refused(a, link.ip_b, p, "frontend")
    refused(a, link.ip_b, 41001, "stranger")

    def final():
        st = map_stats(base)
        return st if st["failed_connections"] == 4 and st["pending"] == 0 else None

    st = h.wait_for(final, 15, 0.5, "four failed connections on the map")
    note("map stats: %r", st)
    assert st["paired"] == c["exchanges"] and st["exchanges"] == 2 * c["exchanges"], (st, c)
    assert st["unpaired"] == 0 and st["pending_overflow"] == 0 and st["duplicates"] == 0, st
    assert st["nodes"] == 4 and st["edges"] == 2, st
    assert st["edges_dropped"] == 1 and st["nodes_dropped"] == 2, st

    def prom_equal():
        status, _hd, body = get(base + "metrics")
        assert status == 200, status
        text = body.decode()
        got = {}
        for key, (_name, attrs, sample) in MAP_STATS.items():
            vals = [v for lab, v in prom_samples(text, sample)
                    if all(lab.get(k) == x for k, x in attrs.items())]
            got[key] = vals[0] if len(vals) == 1 else vals
        return got if got == st else None

    got = h.wait_for(prom_equal, 15, 0.5, "the tcpotel_map_* samples of /metrics = the stats")
    note("/metrics: %r", got)
    assert map_stats(base) == st
    stop_agent(agent)
    # The last body the agent sent (at its stop) says the same.
    reqs = rcv.requests()
    sent = {}
    for key, (name, attrs, _sample) in MAP_STATS.items():
        vals = [v for (svc, pa), v in h.last_values(reqs, name).items()
                if svc == "tcpotel" and dict(pa) == attrs]
        sent[key] = vals[0] if len(vals) == 1 else vals
    assert sent == st, ("OTLP", sent, "/api/graph", st)


test_map_counters_are_metrics_and_its_bounds_count_drops.timeout = 120


# ---- 3. bad and slow clients ---------------------------------------------------------


def raw(port, data, timeout=5):
    """Sends bytes, returns what comes back until the server closes (or the timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and not data.startswith(b"GET /api"):
                break
    except socket.timeout:
        pass
    finally:
        s.close()
    return out


def status_of(resp):
    line = resp.split(b"\r\n", 1)[0]
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[0].startswith(b"HTTP/") else None


def test_bad_and_slow_clients_do_not_disturb_capture():
    """While a workload runs: raw garbage, a POST, a 10 KB path and unknown paths get 4xx;
    200 clients that send half a request and stall neither block other clients of the UI
    nor outlive the connection timeout; the workload's bytes in the agent's metrics are
    still exact."""
    a, b, link = hosts()
    port = free_port()
    agent, base, rcv = start_agent(a, b, port)
    srv, cli = start_workload(a, b, link, seconds=15, rate=300)

    # Requests that are HTTP but wrong: a 4xx each.
    answers = {
        "bad version": raw(port, b"GET / FOO/1.1\r\nHost: x\r\n\r\n"),
        "bad method": raw(port, b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "post": raw(port, b"POST /api/graph HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
                    b"hello"),
        "put": raw(port, b"PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        "long path": raw(port, b"GET /" + b"a" * 10240 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        "unknown": raw(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
        "traversal": raw(port, b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"),
        "huge header": raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 65536 +
                           b"\r\n\r\n"),
    }
    for what, resp in answers.items():
        st = status_of(resp)
        assert st is not None and 400 <= st < 500, (what, resp[:200])
        assert b"root:" not in resp, what
    # Bytes that are not HTTP at all: nothing to answer; the connection is closed, at the
    # latest after the connection timeout, and never with a success.
    for junk in (b"\x00\xff\xfe garbage \x01\r\n\r\n", b"garbage\r\n\r\n", b"GET\r\n\r\n",
                 b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64):
        resp = raw(port, junk, timeout=1)
        st = status_of(resp)
        assert st is None or 400 <= st < 500, (junk, resp[:200])
    assert b"Allow: GET, HEAD" in answers["post"], answers["post"][:300]
    head = raw(port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(head) == 200 and head.endswith(b"\r\n\r\n"), head[:300]

    # 200 clients stall half-way through their request.
    slow = []
    t0 = time.monotonic()
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /api/graph HTTP/1.1\r\nHost: slow-%d\r\nX-Slow: " % i)
        slow.append(s)
    try:
        # Another client is still served at once.
        t = time.monotonic()
        g = graph(base)
        assert time.monotonic() - t < 2, "the UI took %.1fs with 200 stalled clients" % (
            time.monotonic() - t)
        assert "nodes" in g, g
        # The stalled ones are cut off after the connection timeout (10 s).
        deadline = t0 + 20
        open_ = list(slow)
        while open_ and time.monotonic() < deadline:
            still = []
            for s in open_:
                s.settimeout(max(0.05, min(1, deadline - time.monotonic())))
                try:
                    if s.recv(1024) == b"":
                        continue
                except socket.timeout:
                    pass
                except OSError:
                    continue
                still.append(s)
            open_ = still
        assert not open_, "%d stalled clients still connected after %.0fs" % (
            len(open_), time.monotonic() - t0)
        note("200 stalled clients closed by the agent within %.1fs", time.monotonic() - t0)
    finally:
        for s in slow:
            s.close()

    c, s = finish_workload(srv, cli)
    time.sleep(1.5)  # one more export after the last bytes
    stop_agent(agent)
    reqs = rcv.requests()
    got = {
        "client tx": h.total(reqs, "tcp.io", "frontend",
                             {"tcp.role": "client", "network.io.direction": "transmit"}),
        "client rx": h.total(reqs, "tcp.io", "frontend",
                             {"tcp.role": "client", "network.io.direction": "receive"}),
        "server tx": h.total(reqs, "tcp.io", "backend",
                             {"tcp.role": "server", "network.io.direction": "transmit"}),
        "server rx": h.total(reqs, "tcp.io", "backend",
                             {"tcp.role": "server", "network.io.direction": "receive"}),
    }
    want = {"client tx": c["bytes_sent"], "client rx": c["bytes_received"],
            "server tx": s["bytes_sent"], "server rx": s["bytes_received"]}
    note("bytes with bad clients around: %r", got)
    assert got == want, (got, want)


test_bad_and_slow_clients_do_not_disturb_capture.timeout = 180


def test_own_listener_is_on_this_host():
    """The agent's own listener, on 127.0.0.1, is a peer on this host, never one "outside this
    host". The agent watches this test's own namespace, so the requests this test makes to the
    listener are captured: client halves whose server half never comes (the agent's sockets
    are never captured), settled as edges to a peer node at a loopback address."""
    h.require_root()
    port = free_port()
    root_ns = os.stat("/proc/self/ns/net").st_ino
    rcv = h.Receiver()
    agent = h.Agent({"capture": {"netns": [root_ns]}, "ui": {"listen": "127.0.0.1:%d" % port}},
                    receiver=rcv).wait_ready()
    base = "http://127.0.0.1:%d/" % port
    label = "127.0.0.1:%d" % port

    def seen():
        g = graph(base)  # every call is one more request to the listener
        nodes = [n for n in g["nodes"] if n["name"] == label]
        return (g, nodes[0]) if nodes else None

    g, n = h.wait_for(seen, 30, 0.5, "the listener's address as a node of the map")
    note("listener node: %r", n)
    assert n["kind"] == "local_peer" and n["external"] is False, n
    assert n["id"] == "local:%s@%s" % (label, n["host"]) and n["host"], n
    edges = [e for e in g["edges"] if e["target"] == n["id"]]
    assert edges and all(e["peer"] == label and not e["paired"] for e in edges), edges
    # No loopback address anywhere on the map is outside this host.
    for x in g["nodes"]:
        if x["name"].startswith(("127.", "[::1]")):
            assert x["kind"] == "local_peer" and x["external"] is False, x
    stop_agent(agent)


test_own_listener_is_on_this_host.timeout = 90


# ---- 4. a taken port -------------------------------------------------------------------


def test_taken_port_stops_the_start_with_the_address():
    """ui.listen on a port another socket holds: the agent does not start, exits non-zero,
    and says which address it could not listen on and why."""
    h.require_root()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        h.Receiver()
        agent = h.Agent({"ui": {"listen": "127.0.0.1:%d" % port}})
        rc = agent.proc.wait(30)
        assert rc != 0, agent.log()
        msg = "ui.listen 127.0.0.1:%d: cannot listen: Address already in use" % port
        assert msg in agent.log(), agent.log()[-2000:]
    finally:
        blocker.close()
