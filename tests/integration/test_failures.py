# SPDX-License-Identifier: Apache-2.0
"""Failures, for any protocol (README, "Failures"): connection attempts that
fail and exchanges that fail, in spans, metrics and the live map.

The two-host set-up of test_spans.py: namespace a runs the clients
(service "frontend"), namespace b the servers ("backend"), one agent each;
agent a also serves the live map. One test per failure:

- a refused connect (a closed port: the server's kernel answers RST);
- a timed-out connect (nftables in b drops the SYNs; net.ipv4.tcp_syn_retries
  1 in a keeps it to about 3 s);
- an unreachable host and an unreachable network (nftables in b answers the
  SYN with ICMP host-unreachable, or net-unreachable; tcp_syn_retries 1);
- a server that reads the request and closes without answering;
- a server that reads the request and resets the connection;
- a request that gets no answer within spans.response_timeout.

Each shows the span's status and error.type (and the server's span's, when
its side saw the end), the metric count equal to the attempts, the map's
failed rates, error rate and errors by type; the refused one also the
Prometheus name and the page in Chromium, with the edge drawn red.
"""

import json
import os
import re
import urllib.request

import harness as h
from test_exchanges import XHDR, xchg_client, xchg_server, xchg_stop
from test_spans import Hosts, finish_client, report, split

N = 4  # attempts of each failure


def graph(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/api/graph" % port, timeout=5) as r:
        return json.loads(r.read())


def edge_to(g, client, server):
    for e in g["edges"]:
        if e["client"] == client and e["server"] == server:
            return e
    return None


def wait_edge(port, client, server, ok, what):
    """The edge client -> server of agent a's map once ok(edge) holds."""

    def ready():
        e = edge_to(graph(port), client, server)
        return e if e and ok(e) else None

    return h.wait_for(ready, 15, 0.3, what)


def connect_attempts(hs, target, n=N):
    """n connect() calls from a that are expected to fail; their summary."""
    out = finish_client(xchg_client(hs.a, "connect", target, ["--attempts", n]), 120)
    assert out["attempts"] == n and not out["connected"], out
    return out


def failed_connection_spans(reqs, error_type):
    cl, sv = split(h.spans(reqs))
    assert not sv, sv[:2]
    for s in cl:
        assert s["name"] == "tcp.connect", s
        assert s["status_code"] == 2 and s["attrs"]["error.type"] == error_type, s
        assert s["parent_span_id"] == "" and s["resource"]["service.name"] == "frontend", s
        assert "tcp.request.size" not in s["attrs"], s
    return cl


def failed_count(reqs, error_type):
    return h.total(reqs, "tcp.connection.failed", "frontend", {"error.type": error_type})


def check_failed_connections(hs, reqs, ui_port, target_ip, port, error_type, out, min_s=0.0,
                             n=N):
    """n CLIENT spans tcp.connect, each lasting its attempt; the counter; the map's edge."""
    cl = failed_connection_spans(reqs, error_type)
    assert len(cl) == n, (len(cl), [s["attrs"] for s in cl])
    for s in cl:
        at = s["attrs"]
        assert at["server.address"] == target_ip and at["server.port"] == port, at
        assert at["network.peer.address"] == target_ip and at["network.peer.port"] == port, at
        assert at["client.address"] == hs.link.ip_a, at
        d = (s["end"] - s["start"]) / 1e9
        assert min_s <= d <= max(out["elapsed_s"]) + 0.05, (d, out["elapsed_s"], s)
    assert failed_count(reqs, error_type) == n, h.errors(reqs)
    # Only the attempts failed: no exchange, no other error.
    assert h.total(reqs, "tcp.exchange.duration", "frontend") == 0
    assert all(x[0] == "span" or x[2] == error_type for x in h.errors(reqs)), h.errors(reqs)


def check_map_failed_connections(e, error_type, n=N):
    assert e["failed_connections"] == n and e["failed_exchanges"] == 0, e
    assert e["errors"] == {error_type: n}, e
    assert e["error_rate"] == 1, e
    assert e["failed_connections_per_s"] > 0 and e["exchanges_per_s"] == 0, e
    assert e["peer"] and e["paired"] is False, e


# ---- failed connections ----------------------------------------------------------------


def test_refused_connect():
    """Connects to a port nothing listens on in b, one every 0.3 s for about
    10 s (the map's window): as many CLIENT spans tcp.connect with status
    ERROR and error.type connection_refused, with the address and port
    dialled; tcp.connection.failed{error.type=connection_refused} as many on
    frontend (tcp_connection_failed_total on /metrics); the map's edge
    frontend -> the dialled address, outside this host: as many failed
    connections, error rate 1, errors by type; in Chromium, while they go
    on, the edge shows its error rate, is drawn red, and its details list
    connection_refused."""
    ui = h.free_port()
    hs = Hosts(ui_port=ui, failures=True)
    port = h.free_port()
    n = 30
    loop = xchg_client(hs.a, "connect", hs.v4(port), ["--attempts", n, "--pause-ms", 300])
    peer = "%s:%d" % (hs.link.ip_b, port)
    e = wait_edge(ui, "frontend", peer, lambda e: e["failed_connections"] >= 3, "the red edge")
    assert e["error_rate"] == 1 and list(e["errors"]) == ["connection_refused"], e
    node = [x for x in graph(ui)["nodes"] if x["name"] == peer]
    assert node and node[0]["external"] is True and node[0]["kind"] == "peer", node
    page_check(ui, "frontend", peer, "connection_refused")
    out = finish_client(loop, 60)
    assert out["errors"] == {"ECONNREFUSED": n}, out
    e = wait_edge(ui, "frontend", peer, lambda e: e["failed_connections"] >= n, "all on the map")
    check_map_failed_connections(e, "connection_refused", n)

    def prom():
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % ui, timeout=5) as r:
            text = r.read().decode()
        lines = [ln for ln in text.splitlines() if ln.startswith("tcp_connection_failed_total{")
                 and 'error_type="connection_refused"' in ln]
        return lines if lines and lines[0].rsplit(" ", 1)[1] == str(n) else None

    lines = h.wait_for(prom, 10, 0.3, "tcp_connection_failed_total on /metrics")
    reqs = hs.stop_agents()
    check_failed_connections(hs, reqs, ui, hs.link.ip_b, port, "connection_refused", out, n=n)
    report("attempts %s s; map edge %r; %s", out["elapsed_s"],
           {k: e[k] for k in ("failed_connections_per_s", "error_rate", "errors")}, lines[0])


def page_check(ui, client, server, error_type):
    """The page in Chromium (tests/integration/ui_check.mjs): the failing edge."""
    import test_ui

    nm = test_ui.playwright_modules()
    if not os.access(test_ui.CHROMIUM, os.X_OK):
        raise AssertionError("chromium not installed (apt-get install chromium)")
    shot = os.path.join(test_ui.ARTIFACTS, "ui-failures.png")
    os.makedirs(test_ui.ARTIFACTS, exist_ok=True)
    cp = h.run(["node", test_ui.UI_CHECK, "http://127.0.0.1:%d/" % ui, shot, "--node", client,
                "--edge", "%s,%s" % (client, server),
                "--error-edge", "%s,%s,%s" % (client, server, error_type)],
               check=False, timeout=120,
               env={"TCPOTEL_NODE_MODULES": nm, "CHROMIUM": test_ui.CHROMIUM})
    assert cp.returncode == 0, "ui_check failed:\n%s%s" % (cp.stdout[-3000:], cp.stderr[-3000:])


test_refused_connect.timeout = 240


def test_timed_out_connect():
    """nftables in b drops every SYN to a port; tcp_syn_retries 1 in a: 4
    connects time out after about 3 s each (in parallel): 4 CLIENT spans
    tcp.connect, error.type timeout, each lasting its attempt (at least
    2.9 s); tcp.connection.failed{error.type=timeout} = 4; the map's edge
    with 4 failed connections and error rate 1."""
    ui = h.free_port()
    hs = Hosts(ui_port=ui, failures=True)
    hs.a.run(["sysctl", "-q", "-w", "net.ipv4.tcp_syn_retries=1"])
    port = h.free_port()
    hs.b.nft("add table inet tcpo_syn\n"
             "add chain inet tcpo_syn input { type filter hook input priority 0; }\n"
             "add rule inet tcpo_syn input tcp dport %d tcp flags syn counter drop\n" % port)
    procs = [xchg_client(hs.a, "connect", hs.v4(port), ["--attempts", 1]) for _ in range(N)]
    outs = [finish_client(p, 60) for p in procs]
    out = {"attempts": N, "connected": 0, "errors": {},
           "elapsed_s": [t for o in outs for t in o["elapsed_s"]]}
    for o in outs:
        for k, v in o["errors"].items():
            out["errors"][k] = out["errors"].get(k, 0) + v
    assert out["errors"] == {"ETIMEDOUT": N}, out
    peer = "%s:%d" % (hs.link.ip_b, port)
    e = wait_edge(ui, "frontend", peer, lambda e: e["failed_connections"] >= N, "the edge")
    check_map_failed_connections(e, "timeout")
    reqs = hs.stop_agents()
    dropped = re.search(r"tcp dport %d .*counter packets (\d+) " % port, hs.b.nft_counters())
    assert dropped and int(dropped.group(1)) >= 2 * N, hs.b.nft_counters()
    check_failed_connections(hs, reqs, ui, hs.link.ip_b, port, "timeout", out, min_s=2.9)
    report("attempts %s s; map %r", out["elapsed_s"], e["errors"])


test_timed_out_connect.timeout = 120


def unreachable_case(icmp_v4, errno_name, error_type):
    ui = h.free_port()
    hs = Hosts(ui_port=ui, failures=True)
    # Between namespaces the ICMP error comes back within the connect() call,
    # which holds the socket: the kernel takes it as a soft error and sends
    # the SYN again after 1 s, whose ICMP error ends the attempt.
    hs.a.run(["sysctl", "-q", "-w", "net.ipv4.tcp_syn_retries=1"])
    port = h.free_port()
    hs.b.nft("add table ip tcpo_unreach\n"
             "add chain ip tcpo_unreach input { type filter hook input priority 0; }\n"
             "add rule ip tcpo_unreach input tcp dport %d counter reject with icmp type %s\n"
             % (port, icmp_v4))
    out = connect_attempts(hs, hs.v4(port))
    assert out["errors"] == {errno_name: N}, out
    peer = "%s:%d" % (hs.link.ip_b, port)
    e = wait_edge(ui, "frontend", peer, lambda e: e["failed_connections"] >= N, "the edge")
    check_map_failed_connections(e, error_type)
    reqs = hs.stop_agents()
    check_failed_connections(hs, reqs, ui, hs.link.ip_b, port, error_type, out)
    report("attempts %s s; map %r", out["elapsed_s"], e["errors"])


unreachable_case.timeout = 60


def test_unreachable_host():
    """nftables in b answers each SYN to a port with ICMP host-unreachable: 4
    connects fail with EHOSTUNREACH: 4 CLIENT spans tcp.connect, error.type
    host_unreachable; tcp.connection.failed{error.type=host_unreachable} = 4;
    the map's edge with 4 failed connections and error rate 1."""
    unreachable_case("host-unreachable", "EHOSTUNREACH", "host_unreachable")


def test_unreachable_network():
    """The same with ICMP net-unreachable: ENETUNREACH, error.type
    network_unreachable, counted 4 times, on the map."""
    unreachable_case("net-unreachable", "ENETUNREACH", "network_unreachable")


# ---- failed exchanges -------------------------------------------------------------------


def failed_exchange_case(last, error_type, spans_cfg=None, args=(), client_errors=None,
                         server_sees=True):
    """N connections at once, each one answered exchange and then one that
    fails as `last` makes it (xchg's action). Checks spans, metrics and the map."""
    ui = h.free_port()
    hs = Hosts(spans_cfg, ui_port=ui, failures=True)
    srv, port = xchg_server(hs.b)
    procs = [xchg_client(hs.a, "client", hs.v4(port), ["--exchanges", 2, "--last", last] +
                         list(args)) for _ in range(N)]
    outs = [finish_client(p, 120) for p in procs]
    out = {"exchanges": sum(o["exchanges"] for o in outs),
           "errors": [x for o in outs for x in o["errors"]]}
    assert out["exchanges"] == 2 * N, outs
    if client_errors is not None:
        assert sorted(out["errors"]) == sorted(client_errors), out
    s = xchg_stop(srv)
    assert s["actions"][last] == N, s
    peer = "%s:%d" % (hs.link.ip_b, port)
    e = wait_edge(ui, "frontend", peer, lambda e: e["failed_exchanges"] >= N, "the edge")
    assert e["exchanges"] == 2 * N and e["failed_exchanges"] == N, e
    assert e["errors"] == {error_type: N} and e["failed_connections"] == 0, e
    assert e["error_rate"] == 0.5 and e["failed_exchanges_per_s"] > 0, e
    reqs = hs.stop_agents()
    cl, sv = split(h.spans(reqs))
    ok_c = [x for x in cl if x["status_code"] != 2]
    bad_c = [x for x in cl if x["status_code"] == 2]
    assert len(ok_c) == N and len(bad_c) == N, (len(ok_c), len(bad_c))
    for x in ok_c:
        assert "error.type" not in x["attrs"] and x["attrs"]["tcp.response.size"] == 200, x
    for x in bad_c:
        assert x["attrs"]["error.type"] == error_type, x
        assert x["attrs"]["tcp.request.size"] == XHDR + 100, x
        assert x["attrs"]["tcp.response.size"] == 0, x
    bad_s = [x for x in sv if x["status_code"] == 2]
    ids = {x["span_id"] for x in bad_c}
    if server_sees:
        assert len(bad_s) == N, (len(bad_s), [x["attrs"] for x in sv])
        for x in bad_s:
            assert x["attrs"]["error.type"] == error_type, x
        assert {x["parent_span_id"] for x in bad_s} == ids, "the failed halves pair"
    else:
        # The server's half of each failed exchange pairs, with no error.
        assert not bad_s, [x["attrs"] for x in bad_s]
        halves = [x for x in sv if x["parent_span_id"] in ids]
        assert len(halves) == N, (len(halves), [x["attrs"] for x in sv])
        for x in halves:
            assert x["attrs"]["tcp.request.size"] == XHDR + 100, x
            assert x["attrs"]["tcp.response.size"] == 0, x
    for svc, role in (("frontend", "client"), ("backend", "server")):
        n_bad = h.total(reqs, "tcp.exchange.duration", svc, {"error.type": error_type})
        n_all = h.total(reqs, "tcp.exchange.duration", svc)
        want_bad = N if role == "client" or server_sees else 0
        assert n_bad == want_bad and n_all == 2 * N, (svc, n_bad, n_all)
    assert not h.total(reqs, "tcp.connection.failed"), h.errors(reqs)
    report("client %s; map %r; failed spans client %d server %d", out["errors"],
           {k: e[k] for k in ("error_rate", "errors")}, len(bad_c), len(bad_s))
    return bad_c, bad_s


def test_server_closes_without_answering():
    """The server reads the request and closes the connection (a FIN) without
    answering; the client reads the end of the stream: the client's span of
    that exchange has status ERROR and error.type closed_by_peer, the
    server's span pairs with it without one (on the wire the server's close
    is a goodbye's too: test_exchanges.test_goodbye_then_close_pairs); the
    answered exchange before it has no error; tcp.exchange.duration counts 4
    with error.type closed_by_peer and 4 without at the client, 8 without at
    the server; the map's edge: 4 failed exchanges of 8, error rate 0.5,
    errors closed_by_peer."""
    failed_exchange_case("close", "closed_by_peer", client_errors=[], server_sees=False)


def test_server_resets_mid_exchange():
    """The server reads the request and closes with SO_LINGER 0 (a RST):
    error.type reset on both halves (the client's read fails with
    ECONNRESET), counted 4 times each side, on the map."""
    failed_exchange_case("reset", "reset", client_errors=["ConnectionResetError"] * N)


def test_no_answer_within_the_bound():
    """The server reads the request and never answers; spans.response_timeout
    2 s; the client gives up after 4 s and closes: error.type no_response on
    both halves, each lasting the request plus 2 s (within 0.1 s), counted
    4 times each side, on the map."""
    bad_c, bad_s = failed_exchange_case(
        "silent", "no_response", {"idle_timeout": "1s", "response_timeout": "2s"},
        ["--wait-s", 4], client_errors=["TimeoutError"] * N)
    for x in bad_c + bad_s:
        d = (x["end"] - x["start"]) / 1e9
        assert abs(d - 2.0) <= 0.1, (d, x)


test_no_answer_within_the_bound.timeout = 120
