# SPDX-License-Identifier: Apache-2.0
"""The workload tool (tcpload) and the harness on their own, without the agent.

Root tests run real TCP between two network namespaces joined by veth and
check that client and server account for exactly the same bytes: the other
integration tests compare the agent's numbers against these summaries, so
these must be exact first. The rest check the harness's parsers and process
control on hand-made input.
"""

import json
import os
import stat
import urllib.error
import urllib.request

import harness as h

V4 = ("10.231.0.1/24", "10.231.0.2/24")
V6 = ("fd00:231::1/64", "fd00:231::2/64")


def two_hosts():
    """Client namespace a, server namespace b, one veth between them (v4 and v6)."""
    h.require_root()
    h.require_built(h.TCPLOAD)
    return h.two_hosts(V4, V6)


def check_agree(cli, srv, sent=None, rcvd=None):
    """Client and server summaries account for the same exchanges and bytes."""
    assert cli["errors"] == 0, cli
    assert srv["errors"] == 0, srv
    assert cli["exchanges"] == srv["exchanges"], (cli, srv)
    assert cli["conns"] == srv["conns"], (cli, srv)
    assert cli["bytes_sent"] == srv["bytes_received"], (cli, srv)
    assert cli["bytes_received"] == srv["bytes_sent"], (cli, srv)
    if sent is not None:
        assert cli["bytes_sent"] == sent, (cli["bytes_sent"], sent)
    if rcvd is not None:
        assert cli["bytes_received"] == rcvd, (cli["bytes_received"], rcvd)


# ---- no root: parsers, YAML, process control -------------------------------------


def _span(trace, span, parent, kind, svc):
    return {"trace_id": trace, "span_id": span, "parent_span_id": parent, "name": "x",
            "kind": kind, "start": 0, "end": 1, "attrs": {}, "resource": {"service.name": svc},
            "status_code": 0, "trace_state": ""}


def test_pair_like_servicegraph():
    t1, t2, t3 = "11" * 16, "22" * 16, "33" * 16
    s = [
        _span(t1, "c1" * 8, "", h.SPAN_KIND_CLIENT, "frontend"),
        # Server before its client: pairs all the same.
        _span(t2, "52" * 8, "c2" * 8, h.SPAN_KIND_SERVER, "backend"),
        _span(t1, "51" * 8, "c1" * 8, h.SPAN_KIND_SERVER, "backend"),
        _span(t2, "c2" * 8, "", h.SPAN_KIND_CLIENT, "frontend"),
        # Same span id, other trace: no pair (the key is trace + span id).
        _span(t3, "53" * 8, "c1" * 8, h.SPAN_KIND_SERVER, "backend"),
        # A client whose server never came.
        _span(t3, "c4" * 8, "", h.SPAN_KIND_CLIENT, "frontend"),
        # Internal spans and resources without service.name are not part of edges.
        _span(t1, "01" * 8, "c1" * 8, h.SPAN_KIND_INTERNAL, "backend"),
        _span(t3, "c5" * 8, "", h.SPAN_KIND_CLIENT, ""),
        # Another edge, and a duplicate of an already paired client: new, unpaired entry.
        _span(t3, "c6" * 8, "", h.SPAN_KIND_CLIENT, "backend"),
        _span(t3, "56" * 8, "c6" * 8, h.SPAN_KIND_SERVER, "db"),
        _span(t1, "c1" * 8, "", h.SPAN_KIND_CLIENT, "frontend"),
    ]
    edges, uc, us = h.pair_like_servicegraph(s)
    assert edges == {("frontend", "backend"): 2, ("backend", "db"): 1}, edges
    assert sorted(x["span_id"] for x in uc) == ["c1" * 8, "c4" * 8], uc
    assert [x["span_id"] for x in us] == ["53" * 8], us


def _body_metrics(svc, pid, points, t):
    return {"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": svc}},
            {"key": "process.pid", "value": {"intValue": str(pid)}}]},
        "scopeMetrics": [{"scope": {"name": "tcpotel"}, "metrics": [
            {"name": "tcp.io", "unit": "By", "sum": {
                "aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
                    {"attributes": [
                        {"key": "tcp.role", "value": {"stringValue": "client"}},
                        {"key": "network.io.direction", "value": {"stringValue": d}},
                        {"key": "server.port", "value": {"intValue": "9000"}}],
                     "startTimeUnixNano": "1", "timeUnixNano": str(t), "asInt": str(v)}
                    for d, v in points]}},
            {"name": "tcp.srtt", "unit": "s", "histogram": {
                "aggregationTemporality": 2, "dataPoints": [
                    {"attributes": [], "startTimeUnixNano": "1", "timeUnixNano": str(t),
                     "count": "7", "sum": 0.01,
                     "bucketCounts": ["3", "4"], "explicitBounds": [0.001]}]}},
        ]}]}]}


def test_parse_otlp_bodies():
    reqs = [
        {"t": 1, "path": "/v1/metrics", "status": 200,
         "body": _body_metrics("frontend", 10, [("transmit", 100), ("receive", 5)], 2000)},
        # Rejected: never counted.
        {"t": 2, "path": "/v1/metrics", "status": 503,
         "body": _body_metrics("frontend", 10, [("transmit", 999)], 9000)},
        {"t": 3, "path": "/v1/metrics", "status": 200,
         "body": _body_metrics("frontend", 10, [("transmit", 150)], 3000)},
        # A second process with the same service name: its stream adds up.
        {"t": 4, "path": "/v1/metrics", "status": 200,
         "body": _body_metrics("frontend", 11, [("transmit", 7)], 3000)},
        {"t": 5, "path": "/v1/traces", "status": 200, "body": {"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name",
                                         "value": {"stringValue": "frontend"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": "AB" * 16, "spanId": "cd" * 8, "name": "tcp", "kind": 3,
                "startTimeUnixNano": "100", "endTimeUnixNano": "250",
                "attributes": [{"key": "server.port", "value": {"intValue": "9000"}},
                               {"key": "network.type", "value": {"stringValue": "ipv4"}}],
                "status": {}}, {
                "traceId": "ab" * 16, "spanId": "ef" * 8, "parentSpanId": "cd" * 8,
                "name": "tcp", "kind": "SPAN_KIND_SERVER", "startTimeUnixNano": "120",
                "endTimeUnixNano": "240", "traceState": "ot=th:0",
                "status": {"code": 2}}]}]}]}},
    ]
    pts = h.metric_points(reqs, "tcp.io")
    assert len(pts) == 4, pts
    res, attrs, p, t = pts[0]
    assert res == {"service.name": "frontend", "process.pid": 10}, res
    assert attrs["server.port"] == 9000 and attrs["network.io.direction"] == "transmit", attrs
    assert p["asInt"] == "100" and t == 2000
    lv = h.last_values(reqs, "tcp.io")
    tx = frozenset({"tcp.role": "client", "network.io.direction": "transmit",
                    "server.port": 9000}.items())
    rx = frozenset({"tcp.role": "client", "network.io.direction": "receive",
                    "server.port": 9000}.items())
    assert lv == {("frontend", tx): 157, ("frontend", rx): 5}, lv
    assert h.total(reqs, "tcp.io", "frontend", {"network.io.direction": "transmit"}) == 157
    assert h.total(reqs, "tcp.io", "backend") == 0
    assert h.total(reqs, "tcp.srtt") == 7 + 7  # histogram count, both processes
    sp = h.spans(reqs)
    assert len(sp) == 2, sp
    assert sp[0]["trace_id"] == "ab" * 16 and sp[0]["kind"] == h.SPAN_KIND_CLIENT
    assert sp[0]["parent_span_id"] == "" and sp[0]["end"] - sp[0]["start"] == 150
    assert sp[0]["attrs"] == {"server.port": 9000, "network.type": "ipv4"}
    assert sp[1]["kind"] == h.SPAN_KIND_SERVER and sp[1]["status_code"] == 2
    assert sp[1]["trace_state"] == "ot=th:0" and sp[1]["resource"]["service.name"] == "frontend"
    edges, uc, us = h.pair_like_servicegraph(sp)
    assert edges == {("frontend", "frontend"): 1} and not uc and not us


def test_yaml_config():
    cfg = {
        "capture": {"netns": ["/run/netns/tcpo-a-1-2", 4026532000], "exclude_ports": []},
        "spans": {"sampling_ratio": 0.5, "idle_timeout": "2s", "enabled": True},
        "service": {"rules": [{"match": {"exe": "tcpload"}, "name": "load"}]},
        "resource": {"attributes": {"deployment.environment.name": "test", "x": "true"}},
        "exporter": {"otlp": {"endpoint": "http://127.0.0.1:4318", "headers": {}}},
        "ui": {"listen": ""},
        "log": {"level": "debug"},
        "odd": ["a b", "#c", "1.5", None],
    }
    want = """capture:
  netns:
    - /run/netns/tcpo-a-1-2
    - 4026532000
  exclude_ports: []
spans:
  sampling_ratio: 0.5
  idle_timeout: 2s
  enabled: true
service:
  rules:
    - match:
        exe: tcpload
      name: load
resource:
  attributes:
    deployment.environment.name: test
    x: "true"
exporter:
  otlp:
    endpoint: http://127.0.0.1:4318
    headers: {}
ui:
  listen: ""
log:
  level: debug
odd:
  - "a b"
  - "#c"
  - "1.5"
  - null"""
    got = h.to_yaml(cfg)
    assert got == want, "\n" + got


def _fake_agent(body):
    path = os.path.join(h.workdir(), "fake-agent-%d.sh" % len(os.listdir(h.workdir())))
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def test_agent_control_with_a_stand_in():
    # Logs like the agent, exits 0 on SIGTERM; its config path is checked too.
    good = _fake_agent(
        'grep -q "listen: \\"\\"" "$2" || { echo "bad config" >&2; exit 9; }\n'
        'grep -q "endpoint: http://127.0.0.1:1" "$2" || { echo "no endpoint" >&2; exit 9; }\n'
        'trap "echo bye >&2; exit 0" TERM\n'
        'echo "level=info tcpotel 0.0.0 running: fake" >&2\n'
        'while :; do sleep 0.05; done\n')
    ag = h.Agent({"exporter": {"otlp": {"endpoint": "http://127.0.0.1:1"}}}, binary=good,
                 env={"FOO": "1"})
    ag.wait_ready(10)
    assert ag.running()
    assert oct(os.stat(ag.config_path).st_mode & 0o777) == "0o600"
    assert ag.stop() == 0
    assert "bye" in ag.log(), ag.log()

    bad = _fake_agent('echo "config.yaml:3:5: capture.backend: expected auto|..." >&2\nexit 3\n')
    ag = h.Agent({}, binary=bad)
    try:
        ag.wait_ready(10)
    except AssertionError as e:
        assert "status 3" in str(e) and "capture.backend" in str(e), str(e)
    else:
        raise AssertionError("wait_ready accepted an agent that exited")

    hang = _fake_agent('trap "" TERM\necho "tcpotel running" >&2\nwhile :; do sleep 0.05; done\n')
    ag = h.Agent({}, binary=hang).wait_ready(10)
    try:
        ag.stop(timeout=1)
    except AssertionError as e:
        assert "did not exit" in str(e), str(e)
    else:
        raise AssertionError("stop() did not report an agent that ignores SIGTERM")
    assert not ag.running()


def test_receiver_roundtrip():
    rcv = h.Receiver()
    body = _body_metrics("frontend", 10, [("transmit", 42)], 1234)

    def post(path, doc):
        req = urllib.request.Request(rcv.endpoint + path, data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert post("/v1/metrics", body) == 200
    rcv.set_mode("unavailable", retry_after=1, count=1)
    assert post("/v1/metrics", _body_metrics("frontend", 10, [("transmit", 99)], 2000)) >= 400
    rcv.set_mode("ok")
    assert post("/v1/traces", {"resourceSpans": []}) == 200
    reqs = rcv.wait_for(lambda r: len(r) >= 3 and r, 10, "three logged requests")
    assert [r["path"] for r in reqs] == ["/v1/metrics", "/v1/metrics", "/v1/traces"], reqs
    assert reqs[0]["status"] == 200 and reqs[1]["status"] >= 400
    assert h.total(reqs, "tcp.io") == 42
    rcv.stop()


# ---- root: real TCP between namespaces ---------------------------------------------


def test_ipv4_keepalive_sizes_both_directions():
    a, b, link = two_hosts()
    srv, port = h.tcpload_server(b, "0.0.0.0:0")
    req, resp = "1,100,65536,10MiB", "10MiB,65536,100,1,3"
    cli = h.tcpload_client(a, h.hostport(link.ip_b, port),
                           ["--conns", 4, "--parallel", 2, "--exchanges", 6,
                            "--req-size", req, "--resp-size", resp])
    s = h.tcpload_server_stop(srv)
    sent, rcvd = h.tcpload_expected(4, 6, req, resp)
    assert cli["conns"] == 4 and cli["exchanges"] == 24, cli
    check_agree(cli, s, sent, rcvd)
    assert cli["latency_us"]["p50"] > 0 and cli["latency_us"]["p99"] >= cli["latency_us"]["p50"]


def test_ipv6_short_connections():
    a, b, link = two_hosts()
    srv, port = h.tcpload_server(b, "[::]:0")
    req, resp = "1,10MiB,300", "64,1,10MiB"
    cli = h.tcpload_client(a, h.hostport(link.ip6_b, port),
                           ["--conns", 30, "--parallel", 5, "--short",
                            "--req-size", req, "--resp-size", resp])
    s = h.tcpload_server_stop(srv)
    sent, rcvd = h.tcpload_expected(30, 1, req, resp, short=True)
    assert cli["conns"] == 30 and cli["exchanges"] == 30, cli
    check_agree(cli, s, sent, rcvd)


def test_run_workload_helper():
    a, b, link = two_hosts()
    cli, srv, port = h.run_workload(a, b, link, ["--conns", 2, "--exchanges", 3], v6=True)
    assert port > 0 and srv["port"] == port, (port, srv)
    check_agree(cli, srv, *h.tcpload_expected(2, 3, "64", "64"))


def test_server_max_conns_exits_by_itself():
    a, b, link = two_hosts()
    srv, port = h.tcpload_server(b, "[::]:0", args=["--max-conns", 3])
    cli = h.tcpload_client(a, h.hostport(link.ip_b, port), ["--conns", 3, "--exchanges", 2])
    assert srv.wait(10) == 0
    check_agree(cli, srv.json(), *h.tcpload_expected(3, 2, "64", "64"))


def test_pipelined_exchanges():
    a, b, link = two_hosts()
    srv, port = h.tcpload_server(b, "0.0.0.0:0")
    # Big enough that both directions fill the socket buffers at once.
    req, resp = "4MiB,1", "1,4MiB,100"
    cli = h.tcpload_client(a, h.hostport(link.ip_b, port),
                           ["--conns", 2, "--parallel", 2, "--exchanges", 10, "--pipeline", 4,
                            "--req-size", req, "--resp-size", resp])
    s = h.tcpload_server_stop(srv)
    assert cli["exchanges"] == 20, cli
    check_agree(cli, s, *h.tcpload_expected(2, 10, req, resp))


def test_streaming_response_takes_its_time():
    a, b, link = two_hosts()
    srv, port = h.tcpload_server(b, "0.0.0.0:0")
    cli = h.tcpload_client(a, h.hostport(link.ip_b, port),
                           ["--exchanges", 3, "--stream-ms", 300, "--resp-size", "100KiB"])
    s = h.tcpload_server_stop(srv)
    check_agree(cli, s, *h.tcpload_expected(1, 3, "64", "100KiB"))
    lat = cli["latency_us"]
    assert 290_000 <= lat["p50"] < 1_000_000, lat
    assert cli["elapsed_s"] >= 0.9, cli


def test_idle_hold_and_rate_limit():
    a, b, link = two_hosts()
    srv, port = h.tcpload_server(b, "0.0.0.0:0")
    cli = h.tcpload_client(a, h.hostport(link.ip_b, port),
                           ["--conns", 2, "--parallel", 2, "--exchanges", 1, "--idle-ms", 700])
    assert cli["elapsed_s"] >= 0.7, cli
    # Duration mode, keep-alive, paced: at most rate * duration exchanges (no
    # slot after the deadline is used). The lower bounds are loose: a loaded
    # machine (a benchmark next door) can stall the client for a while.
    cli2 = h.tcpload_client(a, h.hostport(link.ip_b, port),
                            ["--conns", 4, "--parallel", 4, "--duration-s", 2, "--rate", 300])
    assert 150 <= cli2["exchanges"] <= 600, cli2
    assert cli2["elapsed_s"] >= 1.99, cli2
    # Short connections, paced: one connection per exchange.
    cli3 = h.tcpload_client(a, h.hostport(link.ip_b, port),
                            ["--parallel", 3, "--duration-s", 1, "--rate", 100, "--short"])
    assert cli3["conns"] == cli3["exchanges"] and 25 <= cli3["exchanges"] <= 100, cli3
    s = h.tcpload_server_stop(srv)
    tot = {k: cli[k] + cli2[k] + cli3[k]
           for k in ("conns", "exchanges", "bytes_sent", "bytes_received")}
    tot["errors"] = 0
    check_agree(tot, s)


def test_dnat_virtual_address_reaches_the_server():
    a, b, link = two_hosts()
    srv, port = h.tcpload_server(b, "[::]:0")
    # Like a Service address: the client dials the virtual one, the kernel rewrites it.
    a.nft_dnat("10.231.99.1", 80, link.ip_b, port)
    a.nft_dnat("fd00:231:99::1", 80, link.ip6_b, port)
    c4 = h.tcpload_client(a, "10.231.99.1:80", ["--conns", 3, "--exchanges", 2,
                                                "--resp-size", "1MiB"])
    c6 = h.tcpload_client(a, "[fd00:231:99::1]:80", ["--conns", 2, "--exchanges", 2,
                                                     "--req-size", "1MiB"])
    s = h.tcpload_server_stop(srv)
    tot = {k: c4[k] + c6[k] for k in ("conns", "exchanges", "bytes_sent", "bytes_received")}
    tot["errors"] = 0
    check_agree(tot, s)
    rules = a.nft_counters()
    assert "dnat to 10.231.0.2:%d" % port in rules, rules
    # Each rule matched its connections' first packet (nat sees one per connection).
    assert "packets 3 " in rules and "packets 2 " in rules, rules


def test_drop_fraction_causes_retransmits():
    a, b, link = two_hosts()
    srv, port = h.tcpload_server(b, "0.0.0.0:0")
    # 5% of what reaches the server port is lost: the client retransmits.
    b.nft_drop_fraction("tcp dport %d" % port, 0.05)
    before = a.retrans_segs()
    assert a.nstat("TcpRetransSegs")["TcpRetransSegs"] == before
    cli = h.tcpload_client(a, h.hostport(link.ip_b, port),
                           ["--conns", 2, "--parallel", 2, "--exchanges", 4,
                            "--req-size", "1MiB", "--resp-size", "100"], timeout=60)
    after = a.retrans_segs()
    s = h.tcpload_server_stop(srv)
    check_agree(cli, s, *h.tcpload_expected(2, 4, "1MiB", "100"))
    assert after > before, (before, after)
    assert "drop" in b.nft_counters()


def test_client_reports_connection_errors():
    a, b, link = two_hosts()
    cli = h.tcpload_client(a, h.hostport(link.ip_b, 9), ["--conns", 2], check=False)
    assert cli["exit"] != 0, cli
    assert cli["errors"] == 2 and cli["exchanges"] == 0, cli
    assert "refused" in cli["stderr"].lower(), cli["stderr"]


def test_cleanup_removes_namespaces_and_processes():
    a, b, link = two_hosts()
    srv, _port = h.tcpload_server(b, "0.0.0.0:0")
    sleeper = a.popen(["sleep", "300"])
    names = {a.name, b.name}
    assert names <= set(h.list_netns())
    h.cleanup()
    assert not names & set(h.list_netns()), h.list_netns()
    assert srv.poll() is not None and sleeper.poll() is not None
