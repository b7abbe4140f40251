# SPDX-License-Identifier: Apache-2.0
"""Synthetic client/server spans pair across two hosts.

Every test builds two "hosts": namespace a (the client's) and namespace b
(the server's), joined by a veth pair, and runs TWO agents, each watching
only its own namespace and naming its own host.name (host-a, host-b), both
exporting to one receiver. The workload is tcpload: the server in b runs as
service "backend", the clients in a as "frontend". The agents never talk to
each other, so a client span and a server span only meet in the receiver
if both agents derived the same ids on their own (docs/ids.md); the tests
pair them exactly as the Collector's servicegraph connector does.

The agents stop with SIGTERM (both signalled at once, so that neither
outlives the other by more than a scheduling slice) and must exit 0;
everything they flushed is then analysed.

Workload processes are kept alive for a while after their first exchange
(--rate, or a pause before the server stops): the agent reads a process's
service name from /proc when it first meets it, and a process that has
already exited is named after its comm instead.

TCPOTEL_VERBOSE=1 prints each test's measured figures (counts, sampled
fraction, latencies, durations) under its name.
"""

import os
import signal
import sys
import time

import harness as h
import servicegraph
from pace import fewer, longer

V4 = ("10.231.0.1/24", "10.231.0.2/24")
V6 = ("fd00:231::1/64", "fd00:231::2/64")
HDR = h.TCPLOAD_HEADER
IDLE_TIMEOUT_S = 1
NS_PER_S = 1_000_000_000


def report(fmt, *args):
    """The figures a test measured, for TCPOTEL_VERBOSE=1 runs."""
    if os.environ.get("TCPOTEL_VERBOSE"):
        print("    " + fmt % args, file=sys.stderr, flush=True)


# ---- set-up ------------------------------------------------------------------------


class Hosts:
    """Two namespaces, one receiver, one agent per namespace."""

    def __init__(self, spans=None, start=True, ui_port=None, failures=False):
        """ui_port: agent a serves its live map there. failures: the test makes
        connections or exchanges fail; otherwise stop_agents() checks that
        nothing carries an error."""
        h.require_root()
        h.require_built(h.TCPLOAD)
        self.a, self.b, self.link = h.two_hosts(V4, V6)
        self.rcv = h.Receiver()
        self.ui_port = ui_port
        self.failures = failures
        # Long by default: a stall of the machine (seconds, on a loaded VM)
        # must not split an exchange; the idle test sets its own.
        self.spans_cfg = {"idle_timeout": "30s"}
        self.spans_cfg.update(spans or {})
        self.agents = []
        self.t_ready = self.t_stop = None
        if start:
            self.start_agents()

    def start_agents(self):
        """Starts both agents at once; t_ready: when both run (time.time())."""
        for ns, host, name in ((self.a, "host-a", "a"), (self.b, "host-b", "b")):
            cfg = {
                "capture": {"netns": [ns.path]},
                "metrics": {"interval": "1s"},
                "spans": self.spans_cfg,
                "resource": {"attributes": {"host.name": host}},
            }
            if name == "a" and self.ui_port:
                cfg["ui"] = {"listen": "127.0.0.1:%d" % self.ui_port}
            self.agents.append(h.Agent(cfg, name=name))
        for ag in self.agents:
            ag.wait_ready()
        self.t_ready = time.time()
        return self

    def stop_agents(self):
        """SIGTERM to both agents together; both must exit 0. t_stop: when signalled."""
        self.t_stop = time.time()
        for ag in self.agents:
            ag.proc.signal(signal.SIGTERM)
        for ag in self.agents:
            rc = ag.proc.wait(20)
            assert rc == 0, "agent %s exited %s\n%s" % (ag.name, rc, ag.log()[-3000:])
        reqs = self.rcv.requests()
        if not self.failures:
            bad = h.errors(reqs)
            assert not bad, ("errors where nothing failed", bad[:5])
        return reqs

    def server(self, listen="[::]:0"):
        return h.tcpload_server(self.b, listen, service="backend")

    def client_proc(self, target, args, service="frontend"):
        """A tcpload client running in the background in a (a Proc)."""
        argv = ["env", "OTEL_SERVICE_NAME=%s" % service, h.TCPLOAD, "client", "--connect",
                target] + [str(x) for x in args]
        return self.a.popen(argv, name="tcpload-client")

    def v4(self, port):
        return h.hostport(self.link.ip_b, port)

    def v6(self, port):
        return h.hostport(self.link.ip6_b, port)


def finish_client(proc, timeout=60):
    rc = proc.wait(timeout)
    assert rc == 0, "tcpload client exited %s\n%s" % (rc, proc.stderr_text()[-2000:])
    return proc.json()


def stop_server(srv, linger=0.3):
    # The agent names the server's resource from /proc: let it read it first.
    time.sleep(linger)
    return h.tcpload_server_stop(srv)


# ---- analysis ------------------------------------------------------------------------


def spans_with_arrival(reqs):
    """h.spans() of every accepted /v1/traces body, each with "arrival" (the receiver's t)."""
    out = []
    for r in reqs:
        for s in h.spans([r]):
            s["arrival"] = float(r["t"])
            out.append(s)
    return out


def longest_silence(reqs, t0, t1):
    """The longest time within [t0, t1] in which the receiver got no export at all.

    Each agent exports metrics every second, so more than a second or so
    means the whole machine (agents and receiver) stalled: a timing assertion
    that fails along with it says so."""
    ts = sorted([t0, t1] + [float(r["t"]) for r in reqs if t0 <= float(r["t"]) <= t1])
    return max(b - a for a, b in zip(ts, ts[1:]))


def conn_key(s):
    return (s["attrs"].get("client.address"), s["attrs"].get("client.port"))


def split(span_list):
    """(client spans, server spans); anything else is a failure."""
    cl = [s for s in span_list if s["kind"] == h.SPAN_KIND_CLIENT]
    sv = [s for s in span_list if s["kind"] == h.SPAN_KIND_SERVER]
    other = [s for s in span_list if s["kind"] not in (h.SPAN_KIND_CLIENT, h.SPAN_KIND_SERVER)]
    assert not other, other[:3]
    return cl, sv


def check_resources(cl, sv, client_service="frontend"):
    """CLIENT spans come from host-a's frontend, SERVER spans from host-b's backend."""
    for s in cl:
        r = s["resource"]
        assert r.get("service.name") == client_service and r.get("host.name") == "host-a", r
    for s in sv:
        r = s["resource"]
        assert r.get("service.name") == "backend" and r.get("host.name") == "host-b", r


def pairs(cl, sv):
    """{client span: server span} keyed as the servicegraph connector keys them, after
    checking that no key occurs twice on one side (a duplicate span)."""
    ck = {}
    for s in cl:
        k = (s["trace_id"], s["span_id"])
        assert k not in ck, ("duplicate client span", s, ck[k])
        assert s["parent_span_id"] == "", s
        ck[k] = s
    sk = {}
    for s in sv:
        k = (s["trace_id"], s["parent_span_id"])
        assert k not in sk, ("duplicate server span", s, sk[k])
        assert s["span_id"] != s["parent_span_id"], s
        sk[k] = s
    return [(ck[k], sk[k]) for k in ck if k in sk]


def check_pair(c, s):
    """The two halves of one exchange describe the same thing."""
    ca, sa = c["attrs"], s["attrs"]
    for k in ("client.address", "client.port", "network.type", "network.transport",
              "tcp.request.size", "tcp.response.size"):
        assert ca.get(k) == sa.get(k), (k, c, s)
    assert c["name"] == s["name"] == "tcp.exchange", (c, s)
    assert c["trace_state"] == s["trace_state"], (c, s)
    # Same clock (one machine): the server's turn lies within the client's.
    # The tolerance: each end is stamped when its send() or recv() returns,
    # one return may be delayed past the other's by the scheduler (20 ms), and
    # a request larger than the congestion window takes round trips (a few
    # srtt) before its send() returns while the server already reads it.
    srtt = max(ca.get("tcp.srtt", 0), sa.get("tcp.srtt", 0))
    tol_ns = int((longer(0.02) + 8 * srtt) * NS_PER_S)
    assert c["start"] <= s["start"] + tol_ns and s["end"] <= c["end"] + tol_ns, (c, s)


def check_all_pair(cl, sv, k):
    """Exactly k CLIENT and k SERVER spans, and every one has its partner."""
    assert len(cl) == k and len(sv) == k, (len(cl), len(sv), k)
    edges, uc, us = h.pair_like_servicegraph(cl + sv)
    assert edges == {("frontend", "backend"): k}, edges
    assert not uc and not us, (len(uc), len(us), uc[:2], us[:2])
    ps = pairs(cl, sv)
    assert len(ps) == k, (len(ps), k)
    for c, s in ps:
        check_pair(c, s)
    return ps


def histogram_counts(reqs):
    """tcp.exchange.duration count: {(service.name, tcp.role): count}."""
    out = {}
    for (svc, attrs), v in h.last_values(reqs, "tcp.exchange.duration").items():
        key = (svc, dict(attrs).get("tcp.role"))
        out[key] = out.get(key, 0) + v
    return out


def sizes(conns, exchanges, req_spec, resp_spec, short=False):
    """The multiset of (request, response) sizes of a count-mode run, headers included."""
    req, resp = h.parse_size(req_spec), h.parse_size(resp_spec)
    n = conns * (1 if short else exchanges)
    return sorted((HDR + req[i % len(req)], resp[i % len(resp)]) for i in range(n))


def span_sizes(span_list):
    return sorted((s["attrs"]["tcp.request.size"], s["attrs"]["tcp.response.size"])
                  for s in span_list)


# ---- tests ----------------------------------------------------------------------------


def test_known_counts_pair_ipv4_ipv6():
    """K exchanges (keep-alive and short connections, IPv4 and IPv6, sizes from
    1 byte to 256 KiB) give exactly K CLIENT spans on frontend/host-a and K
    SERVER spans on backend/host-b, all paired (the servicegraph edge
    frontend -> backend counts K, nothing is left over); the halves agree on
    the client endpoint, network.type and both sizes, which equal what the
    workload sent; the client span names the address it dialled; the
    tcp.exchange.duration histogram counts K on each side."""
    hs = Hosts()
    srv, port = hs.server()  # dual stack: IPv4 clients arrive v4-mapped
    req, resp = "1,100,1000,65536", "10,5000,262144,3,1"
    runs = [  # (target, family, conns, exchanges, short, args)
        (hs.v4(port), "ipv4", 8, fewer(60, 5), False, ["--parallel", 8, "--rate", 1500]),
        (hs.v4(port), "ipv4", fewer(150, 5), 1, True, ["--parallel", 5, "--rate", 500]),
        (hs.v6(port), "ipv6", 6, fewer(50, 5), False, ["--parallel", 6, "--rate", 1000]),
        (hs.v6(port), "ipv6", fewer(150, 5), 1, True, ["--parallel", 5, "--rate", 500]),
    ]
    want = {"ipv4": [], "ipv6": []}
    k = 0
    for target, fam, conns, ex, short, args in runs:
        a = ["--conns", conns, "--req-size", req, "--resp-size", resp] + args
        a += ["--short"] if short else ["--exchanges", ex]
        cli = finish_client(hs.client_proc(target, a))
        n = conns * (1 if short else ex)
        assert cli["exchanges"] == n and cli["errors"] == 0, cli
        want[fam] += sizes(conns, ex, req, resp, short)
        k += n
    s = stop_server(srv)
    assert s["exchanges"] == k and s["errors"] == 0, s
    reqs = hs.stop_agents()

    cl, sv = split(h.spans(reqs))
    check_resources(cl, sv)
    check_all_pair(cl, sv, k)
    for s_ in cl + sv:
        assert s_["status_code"] == 0 and s_["trace_state"] == "", s_
        assert s_["attrs"]["network.transport"] == "tcp", s_
    for fam, ip_a, ip_b in (("ipv4", hs.link.ip_a, hs.link.ip_b),
                            ("ipv6", hs.link.ip6_a, hs.link.ip6_b)):
        c_f = [x for x in cl if x["attrs"]["network.type"] == fam]
        s_f = [x for x in sv if x["attrs"]["network.type"] == fam]
        assert span_sizes(c_f) == sorted(want[fam]), fam
        assert span_sizes(s_f) == sorted(want[fam]), fam
        for x in c_f:
            at = x["attrs"]
            assert at["server.address"] == ip_b and at["server.port"] == port, at
            assert at["client.address"] == ip_a, at
            assert at["network.peer.address"] == ip_b and at["network.peer.port"] == port, at
        for x in s_f:
            at = x["attrs"]
            assert at["server.address"] == ip_b and at["server.port"] == port, at
            assert at["client.address"] == ip_a, at
            assert at["network.peer.address"] == ip_a, at
            assert at["network.peer.port"] == at["client.port"], at
    hc = histogram_counts(reqs)
    assert hc.get(("frontend", "client")) == k and hc.get(("backend", "server")) == k, (hc, k)
    # Each agent counted the spans it handed to its exporter: all the receiver got.
    queued = {}
    for res, _attrs, p, t in h.metric_points(reqs, "tcpotel.spans.queued"):
        host = res.get("host.name")
        if res.get("service.name") == "tcpotel" and t >= queued.get(host, (0, 0))[0]:
            queued[host] = (t, h.point_value(p))
    queued = {host: v for host, (_t, v) in queued.items()}
    assert queued == {"host-a": len(cl), "host-b": len(sv)}, queued
    report("K=%d (v4 %d, v6 %d)", k, len(want["ipv4"]), len(want["ipv6"]))


def test_dnat_virtual_address_pairs():
    """kube-proxy-style DNAT in the client's namespace (10.231.99.99:80 and
    [fd00:231:99::99]:80 rewritten to the server's real address and port):
    every exchange still pairs; the client span's server.address/server.port
    name the virtual address it dialled, the server span's the real one."""
    hs = Hosts()
    srv, port = hs.server()
    vip4, vip6, vport = "10.231.99.99", "fd00:231:99::99", 80
    hs.a.nft_dnat(vip4, vport, hs.link.ip_b, port)
    hs.a.nft_dnat(vip6, vport, hs.link.ip6_b, port)
    k = 0
    keep, exchanges, short = 4, fewer(40, 4), fewer(40, 4)
    for target in ("%s:%d" % (vip4, vport), "[%s]:%d" % (vip6, vport)):
        for a in (["--conns", keep, "--parallel", 4, "--exchanges", exchanges, "--rate", 800],
                  ["--conns", short, "--parallel", 4, "--short", "--rate", 400]):
            cli = finish_client(hs.client_proc(target, a + ["--resp-size", "2000"]))
            k += cli["exchanges"]
    s = stop_server(srv)
    assert s["exchanges"] == k == 2 * (keep * exchanges + short), (s, k)
    reqs = hs.stop_agents()
    rules = hs.a.nft_counters()
    # One DNAT per connection: 4 + 40 per family (at pace 1).
    assert "dnat to" in rules and "packets %d " % (keep + short) in rules, rules

    cl, sv = split(h.spans(reqs))
    check_resources(cl, sv)
    ps = check_all_pair(cl, sv, k)
    real = {"ipv4": hs.link.ip_b, "ipv6": hs.link.ip6_b}
    virt = {"ipv4": vip4, "ipv6": vip6}
    for c, s_ in ps:
        fam = c["attrs"]["network.type"]
        assert c["attrs"]["server.address"] == virt[fam], c["attrs"]
        assert c["attrs"]["server.port"] == vport, c["attrs"]
        assert s_["attrs"]["server.address"] == real[fam], s_["attrs"]
        assert s_["attrs"]["server.port"] == port, s_["attrs"]
        assert c["attrs"]["tcp.request.size"] == HDR + 64, c["attrs"]
        assert c["attrs"]["tcp.response.size"] == 2000, c["attrs"]
    fams = {c["attrs"]["network.type"] for c, _ in ps}
    assert fams == {"ipv4", "ipv6"}, fams


# T for sampling_ratio 0.25 (docs/ids.md): keep when the trace id's last 7 bytes >= T.
THRESHOLD_025 = 0xC0000000000000


def test_sampling_quarter_keeps_the_same_exchanges_on_both_hosts():
    """spans.sampling_ratio 0.25 on both agents: the set of trace ids of the
    CLIENT spans equals that of the SERVER spans (every kept span pairs);
    between 20% and 30% of K = 2000 exchanges are kept (binomial sd at
    K=2000 is 1%: the bounds are 5 sd away; in slow guests K is smaller and
    the bounds are 5 sd of that K); every kept span carries
    traceState "ot=th:c" and a trace id whose randomness (last 56 bits) is
    >= the threshold 0xc0000000000000; the tcp.exchange.duration histogram
    still counts all K exchanges (metrics are not sampled), while the
    servicegraph connector would count only the kept pairs."""
    hs = Hosts({"sampling_ratio": 0.25})
    srv, port = hs.server()
    # K = 2000 (fewer in slow guests: pace.py).
    exchanges, short = fewer(150, 40), fewer(500, 100)
    c1 = hs.client_proc(hs.v4(port), ["--conns", 10, "--parallel", 10, "--exchanges",
                                      exchanges, "--rate", 5000, "--resp-size", "300"])
    c2 = hs.client_proc(hs.v6(port), ["--conns", short, "--parallel", 8, "--short",
                                      "--rate", 1500, "--resp-size", "300"])
    k = finish_client(c1)["exchanges"] + finish_client(c2)["exchanges"]
    assert k == 10 * exchanges + short, k
    s = stop_server(srv)
    assert s["exchanges"] == k, s
    reqs = hs.stop_agents()

    cl, sv = split(h.spans(reqs))
    check_resources(cl, sv)
    tc = {x["trace_id"] for x in cl}
    ts = {x["trace_id"] for x in sv}
    assert len(tc) == len(cl) and len(ts) == len(sv), "duplicate trace ids"
    assert tc == ts, (len(tc - ts), len(ts - tc))
    check_all_pair(cl, sv, len(cl))
    frac = len(cl) / k
    # 5 binomial standard deviations, at least 0.05: [0.20, 0.30] for K = 2000.
    bound = max(0.05, 5 * (0.25 * 0.75 / k) ** 0.5)
    assert 0.25 - bound <= frac <= 0.25 + bound, (len(cl), k, frac, bound)
    for x in cl + sv:
        assert x["trace_state"] == "ot=th:c", x
        assert int(x["trace_id"][18:], 16) >= THRESHOLD_025, x["trace_id"]
    hc = histogram_counts(reqs)
    assert hc.get(("frontend", "client")) == k and hc.get(("backend", "server")) == k, (hc, k)
    # What docs/backends.md says: the servicegraph connector counts the sampled pairs as
    # they are (a quarter of the requests), the histogram's count is every one of them.
    g = servicegraph.servicegraph(cl + sv)
    assert g.edges() == {("frontend", "backend"): len(cl)} and len(cl) < k, g.edges()
    report("K=%d kept=%d fraction=%.3f", k, len(cl), frac)


def test_agents_started_mid_stream_pair_from_the_next_exchange():
    """Agents that start while keep-alive connections are busy, and stop while
    they still are.

    Busy workload: 4 keep-alive connections at 80 exchanges/s in all (one
    exchange per connection every 50 ms), running before the agents start
    and after they stop. With T_in = when both agents run and T_out = when
    both were sent SIGTERM, per connection:
      - the paired spans are consecutive: no unpaired span among them;
      - before the first paired span: unpaired spans of one side only (the
        agent that attached first), of which at most one ends after T_in.
        That one is the turn the later agent met first: an agent skips the
        first turn it sees on a connection that predates it, since it may
        have joined that turn in the middle;
      - after the last paired span: at most one unpaired span, ending within
        0.2 s of T_out (its record reached one agent before the stop, not
        the other; an exchange is recorded when the next request starts);
      - pairing starts within 0.3 s of T_in;
      - no span starts after T_out.
    Meanwhile, with both agents running:
      - idle: 2 connections do 3 exchanges then stay open and silent for 3 s
        (idle_timeout 1 s): their last exchange's two spans arrive at least
        1 s after its end, and before the connection closes; no span is
        emitted twice when the connection then closes;
      - close: 2 connections do 5 exchanges and close at once: their last
        exchange's spans arrive less than idle_timeout after its end, so
        they were flushed by the close, not by the idle timer.
    """
    hs = Hosts({"idle_timeout": "%ds" % IDLE_TIMEOUT_S}, start=False)
    # Three servers, so that server.port tells the three workloads apart.
    _, busy_port = hs.server()
    _, idle_port = hs.server()
    _, close_port = hs.server()
    busy = hs.client_proc(hs.v4(busy_port), ["--conns", 4, "--parallel", 4, "--duration-s", 9,
                                             "--rate", 80])
    time.sleep(1.0)
    assert busy.running(), busy.stderr_text()
    hs.start_agents()
    t_in = hs.t_ready
    time.sleep(0.5)
    idle = hs.client_proc(hs.v6(idle_port), ["--conns", 2, "--parallel", 2, "--exchanges", 3,
                                             "--rate", 20, "--idle-ms", 3000])
    close = hs.client_proc(hs.v4(close_port), ["--conns", 2, "--parallel", 2, "--exchanges", 5,
                                               "--rate", 10])
    finish_client(close)
    finish_client(idle)
    t_idle_closed = time.time()
    time.sleep(0.3)
    assert busy.running(), "the busy workload ended too early: " + busy.stderr_text()
    reqs = hs.stop_agents()
    t_out = hs.t_stop
    all_spans = spans_with_arrival(reqs)
    stall = "receiver silent for up to %.2f s" % longest_silence(reqs, t_in, t_out)
    cl, sv = split(all_spans)
    check_resources(cl, sv)
    paired_ids = set()
    for c, s in pairs(cl, sv):
        check_pair(c, s)
        paired_ids.add(id(c))
        paired_ids.add(id(s))

    by_port = {}
    for x in all_spans:
        sp = x["attrs"]["server.port"]
        by_port.setdefault(sp, {}).setdefault(conn_key(x), []).append(x)
    assert set(by_port) == {busy_port, idle_port, close_port}, set(by_port)

    # -- the busy connections, across the window's edges
    t_in_ns, t_out_ns = int(t_in * NS_PER_S), int(t_out * NS_PER_S)
    margin_ns = int(0.2 * NS_PER_S)
    busy_conns = by_port[busy_port]
    assert len(busy_conns) == 4, list(busy_conns)
    stats = []
    for key, xs in busy_conns.items():
        xs.sort(key=lambda x: x["start"])
        paired = [i for i, x in enumerate(xs) if id(x) in paired_ids]
        assert paired, (key, "nothing paired")
        unp = [x for x in xs if id(x) not in paired_ids]
        inner = xs[paired[0]:paired[-1] + 1]
        assert all(id(x) in paired_ids for x in inner), (key, "a hole among the paired")
        assert all(x["start"] <= t_out_ns for x in xs), key
        before, after = xs[:paired[0]], xs[paired[-1] + 1:]
        # Only the agent that attached first saw these: one side only.
        assert len({x["kind"] for x in before}) <= 1, (key, before)
        edge_in = [x for x in before if x["end"] >= t_in_ns]
        assert len(edge_in) <= 1, (key, "unpaired after T_in", edge_in)
        assert len(after) <= 1, (key, "unpaired at the stop", after)
        assert all(x["end"] >= t_out_ns - margin_ns for x in after), (key, t_out, after)
        first_paired = xs[paired[0]]
        assert first_paired["start"] <= t_in_ns + 0.3 * NS_PER_S, (
            key, (first_paired["start"] - t_in_ns) / 1e9, stall)
        stats.append((len(paired) // 2, len(unp)))
    n_paired = sum(p for p, _ in stats)
    # 20 exchanges/s per connection over the window (~4 s here).
    assert n_paired >= 4 * 20 * (t_out - t_in - 1.0), (stats, t_out - t_in)

    # -- idle: flushed by the idle timer, before the close
    idle_conns = by_port[idle_port]
    assert len(idle_conns) == 2, list(idle_conns)
    idle_lat = []
    for key, xs in idle_conns.items():
        cs = sorted((x for x in xs if x["kind"] == h.SPAN_KIND_CLIENT), key=lambda x: x["start"])
        ss = sorted((x for x in xs if x["kind"] == h.SPAN_KIND_SERVER), key=lambda x: x["start"])
        assert len(cs) == 3 and len(ss) == 3, (key, len(cs), len(ss))
        assert all(id(x) in paired_ids for x in xs), key
        for last in (cs[-1], ss[-1]):
            lat = last["arrival"] - last["end"] / 1e9
            idle_lat.append(lat)
            assert lat >= IDLE_TIMEOUT_S - 0.05, (key, lat, last)
            # The client held the connection 3 s after that exchange, then closed and exited.
            assert last["arrival"] < last["end"] / 1e9 + 2.9, (key, lat, stall)
            assert last["arrival"] < t_idle_closed, (key, last["arrival"], t_idle_closed, stall)

    # -- close: flushed at close
    close_conns = by_port[close_port]
    assert len(close_conns) == 2, list(close_conns)
    close_lat = []
    for key, xs in close_conns.items():
        cs = sorted((x for x in xs if x["kind"] == h.SPAN_KIND_CLIENT), key=lambda x: x["start"])
        ss = sorted((x for x in xs if x["kind"] == h.SPAN_KIND_SERVER), key=lambda x: x["start"])
        assert len(cs) == 5 and len(ss) == 5, (key, len(cs), len(ss))
        assert all(id(x) in paired_ids for x in xs), key
        for last in (cs[-1], ss[-1]):
            lat = last["arrival"] - last["end"] / 1e9
            close_lat.append(lat)
            assert 0 <= lat < IDLE_TIMEOUT_S - 0.1, (key, lat, stall)
    report("window %.2fs, busy (paired, unpaired) per conn %s, idle flush %s s, "
           "close flush %s s", t_out - t_in, stats, ["%.2f" % x for x in idle_lat],
           ["%.2f" % x for x in close_lat])


test_agents_started_mid_stream_pair_from_the_next_exchange.timeout = 60


def test_streaming_response_is_one_exchange():
    """A response streamed over 3 s (a chunk every 10 ms, tcpload --stream-ms
    3000) is ONE exchange per request: one CLIENT and one SERVER span per
    request, paired, each lasting 3 s (2.9 to 3.6 s), with the whole
    response in tcp.response.size."""
    hs = Hosts()
    srv, port = hs.server()
    cli = finish_client(hs.client_proc(hs.v4(port), [
        "--conns", 2, "--parallel", 2, "--exchanges", 1, "--stream-ms", 3000,
        "--resp-size", "300KiB"]))
    assert cli["exchanges"] == 2, cli
    stop_server(srv, 0.1)
    reqs = hs.stop_agents()
    cl, sv = split(h.spans(reqs))
    check_resources(cl, sv)
    ps = check_all_pair(cl, sv, 2)
    durs = []
    for c, s in ps:
        for x in (c, s):
            d = (x["end"] - x["start"]) / 1e9
            durs.append(d)
            assert 2.9 <= d <= 3.6, (d, x)
            assert x["attrs"]["tcp.response.size"] == 300 * 1024, x["attrs"]
            assert x["attrs"]["tcp.request.size"] == HDR + 64, x["attrs"]
    report("durations %s s", ["%.3f" % d for d in durs])


def test_pipelined_requests():
    """Pipelined requests (tcpload --pipeline 4: a writer thread sends 4
    requests while the worker reads the 4 responses), in two shapes.

    Small: 2 connections x 40 requests of 88 bytes (one send() each),
    1000-byte responses. Both ends split the pipeline alike
    (docs/design.md, "Exchanges"): requests the client sent before it
    received any of the previous response join one exchange at both ends,
    though the server reads and answers them one at a time. Measured and
    asserted: every CLIENT span pairs with a SERVER span and every SERVER
    span with a CLIENT span, but for at most 2 on each side, on connections
    where the tracepoint back-end's race that docs/design.md names cut a
    pipeline at different requests (about one run in ten has one); a span
    covers 1 to 4 whole requests (its request size a multiple of 88) and the
    paired halves cover the same ones; all 80 requests are covered exactly
    once on each side, and all response bytes; most batches join (fewer
    than 60 spans; typically 20, one per batch).

    Large: 2 connections x 40 requests, bodies of 4 MiB and 1 byte, and
    responses of 1 byte, 4 MiB and 100 bytes, so both directions flow at
    once and sends and receives interleave inside a batch, and TCP's
    acknowledgments no longer tell which request a response byte answered.
    Measured and asserted: the CLIENT spans together account for every byte
    sent and received, exactly, and so do the SERVER spans; the first
    exchange of each connection pairs; the rest pair only in part (typically
    25 to 30 pairs, of 50 to 75 client and 35 to 40 server spans), as
    docs/ids.md says."""
    hs = Hosts()
    srv, port = hs.server()
    big_srv, big_port = hs.server()
    n = 80
    cli = finish_client(hs.client_proc(hs.v4(port), [
        "--conns", 2, "--parallel", 2, "--exchanges", 40, "--pipeline", 4, "--rate", 200,
        "--resp-size", "1000"]))
    assert cli["exchanges"] == n, cli
    big = finish_client(hs.client_proc(hs.v6(big_port), [
        "--conns", 2, "--parallel", 2, "--exchanges", 40, "--pipeline", 4,
        "--req-size", "4MiB,1", "--resp-size", "1,4MiB,100"]))
    assert big["exchanges"] == n, big
    stop_server(srv, 0)
    stop_server(big_srv)
    reqs = hs.stop_agents()
    all_cl, all_sv = split(h.spans(reqs))
    check_resources(all_cl, all_sv)

    cl = [x for x in all_cl if x["attrs"]["server.port"] == port]
    sv = [x for x in all_sv if x["attrs"]["server.port"] == port]
    for side, xs in (("client", cl), ("server", sv)):
        merged = []
        for x in xs:
            rq = x["attrs"]["tcp.request.size"]
            assert rq % (HDR + 64) == 0, (side, x["attrs"])
            merged.append(rq // (HDR + 64))
        assert sum(merged) == n and all(1 <= m <= 4 for m in merged), (side, merged)
        assert sum(x["attrs"]["tcp.response.size"] for x in xs) == cli["bytes_received"], side
        assert n // 4 <= len(xs) < 60, (side, len(xs), merged)
    ps = pairs(cl, sv)
    paired = {id(x) for p in ps for x in p}
    # The one way spans stay alone (docs/design.md, "What stays apart"):
    # under the tracepoint back-end a response that came during a send
    # call, after the request left, counts as received before it, and the
    # client begins a new exchange where the server does not.
    lone = [x for x in cl + sv if id(x) not in paired]
    assert len(lone) <= 4 and len(cl) - len(ps) <= 2 and len(sv) - len(ps) <= 2, \
        (len(ps), len(cl), len(sv))
    lone_conns = {conn_key(x) for x in lone}
    for c, s in ps:
        creq, sreq = c["attrs"]["tcp.request.size"], s["attrs"]["tcp.request.size"]
        assert creq == sreq or conn_key(c) in lone_conns, (c, s)
        assert s["start"] >= c["start"] - 20_000_000, (c, s)
    edges, uc, us = h.pair_like_servicegraph(cl + sv)
    assert edges == {("frontend", "backend"): len(ps)} and len(uc) + len(us) == len(lone), \
        (edges, len(uc), len(us))

    bcl = [x for x in all_cl if x["attrs"]["server.port"] == big_port]
    bsv = [x for x in all_sv if x["attrs"]["server.port"] == big_port]
    for side, xs in (("client", bcl), ("server", bsv)):
        rq = sum(x["attrs"]["tcp.request.size"] for x in xs)
        rs = sum(x["attrs"]["tcp.response.size"] for x in xs)
        assert (rq, rs) == (big["bytes_sent"], big["bytes_received"]), (side, rq, rs, big)
    bps = pairs(bcl, bsv)
    paired = {id(c) for c, _ in bps}
    for key in {conn_key(x) for x in bcl}:
        first = min((x for x in bcl if conn_key(x) == key), key=lambda x: x["start"])
        assert id(first) in paired, (key, first)
    edges, uc, us = h.pair_like_servicegraph(bcl + bsv)
    assert edges == {("frontend", "backend"): len(bps)}, (edges, len(bps))
    assert len(uc) == len(bcl) - len(bps) and len(us) == len(bsv) - len(bps), (len(uc), len(us))
    report("small: %d requests -> %d client spans, %d server spans, %d paired; "
           "large: %d client spans, %d server spans, %d paired",
           n, len(cl), len(sv), len(ps), len(bcl), len(bsv), len(bps))


def test_spans_arrive_within_a_second():
    """The spans of an exchange reach the receiver soon after it ends:
    receiver arrival time minus the span's endTimeUnixNano is at most 1.5 s
    for every span of a short, paced workload (keep-alive connections, whose
    exchanges end when the next request starts, and short ones, which end
    at close)."""
    hs = Hosts()
    srv, port = hs.server()
    t_start = time.time()
    c1 = hs.client_proc(hs.v4(port), ["--conns", 4, "--parallel", 4, "--exchanges", 8,
                                      "--rate", 40])
    c2 = hs.client_proc(hs.v6(port), ["--conns", 20, "--parallel", 2, "--short", "--rate", 25])
    k = finish_client(c1)["exchanges"] + finish_client(c2)["exchanges"]
    t_done = time.time()
    stop_server(srv, 0.1)
    # Everything due must have arrived before the agents are stopped (a stop flushes).
    hs.rcv.wait_for(lambda r: len(h.spans(r)) >= 2 * k, 5, "all spans before the stop")
    t_all = time.time()
    reqs = hs.stop_agents()
    xs = spans_with_arrival(reqs)
    cl, sv = split(xs)
    check_resources(cl, sv)
    check_all_pair(cl, sv, k)
    lats = sorted(x["arrival"] - x["end"] / 1e9 for x in xs)
    assert lats[0] >= -0.01, lats[:3]
    assert lats[-1] <= 1.5, (lats[-5:], "receiver silent for up to %.2f s"
                             % longest_silence(reqs, t_start, t_all))
    p50 = lats[len(lats) // 2]
    report("K=%d latency p50 %.3f s, max %.3f s (all in %.2f s after the workload)",
           k, p50, lats[-1], t_all - t_done)


def test_exchange_duration_histogram_counts_every_exchange():
    """tcp.exchange.duration: the client's stream (frontend, tcp.role client)
    and the server's (backend, tcp.role server) each count exactly K, and
    their sums are the sums of the span durations of each side (within 1%:
    the same exchanges measured by the same clocks)."""
    hs = Hosts()
    srv, port = hs.server()
    c1 = hs.client_proc(hs.v6(port), ["--conns", 5, "--parallel", 5, "--exchanges", 30,
                                      "--rate", 1000, "--resp-size", "100KiB"])
    c2 = hs.client_proc(hs.v4(port), ["--conns", 60, "--parallel", 3, "--short", "--rate", 300])
    k = finish_client(c1)["exchanges"] + finish_client(c2)["exchanges"]
    assert k == 210, k
    stop_server(srv)
    reqs = hs.stop_agents()
    hc = histogram_counts(reqs)
    assert hc.get(("frontend", "client")) == k, (hc, k)
    assert hc.get(("backend", "server")) == k, (hc, k)
    cl, sv = split(h.spans(reqs))
    check_all_pair(cl, sv, k)
    sums = {}
    for res, attrs, p, _t in h.metric_points(reqs, "tcp.exchange.duration"):
        # Cumulative: the last point of each stream (resource + attributes) counts.
        sums[(h._freeze(res), h._freeze(attrs))] = (res.get("service.name"),
                                                    attrs.get("tcp.role"), float(p.get("sum", 0)))
    for svc, role, xs in (("frontend", "client", cl), ("backend", "server", sv)):
        got = sum(v for s, r, v in sums.values() if s == svc and r == role)
        want = sum(x["end"] - x["start"] for x in xs) / 1e9
        assert abs(got - want) <= 0.01 * want + 1e-4, (svc, got, want)
    report("K=%d counts %s", k, hc)


def test_idle_exchanges_are_counted_once():
    """An exchange that ends in silence is counted by the agent's sweep (the
    kernel only learns of its end at the connection's next call or close),
    and taken back out of the kernel's count when that catches up. 2
    keep-alive connections do 4 exchanges each, 1.6 s apart (idle_timeout
    1 s: every exchange first ends by silence, then the kernel ends it again
    at the next request), then stay open and silent: while they are silent
    the tcp.exchange.duration counts are already K on both sides, and after
    the close they are still K, with K paired spans and no duplicate."""
    hs = Hosts({"idle_timeout": "1s"})
    srv, port = hs.server()
    cli = hs.client_proc(hs.v4(port), ["--conns", 2, "--parallel", 2, "--exchanges", 4,
                                       "--rate", 1.25, "--idle-ms", 5000])
    k = 8
    # The last exchange starts at ~5.6 s and is counted by silence 1-2 s after
    # its end; the next metrics export (1 s) carries it.
    time.sleep(9.5)
    assert cli.running(), "the client closed too early: " + cli.stderr_text()
    silent = histogram_counts(hs.rcv.requests())
    finish_client(cli)
    stop_server(srv)
    reqs = hs.stop_agents()
    closed = histogram_counts(reqs)
    for hc in (silent, closed):
        assert hc.get(("frontend", "client")) == k, (silent, closed, k)
        assert hc.get(("backend", "server")) == k, (silent, closed, k)
    cl, sv = split(h.spans(reqs))
    check_all_pair(cl, sv, k)
    report("K=%d counted while silent %s, after the close %s", k, silent, closed)


def test_busy_connections_keep_whole_exchanges():
    """Exchanges that are busy when the agents sweep their socket tables (once
    a second) are not cut: 4 keep-alive connections fetch responses of
    512 MiB one after the other for 10 s (each socket is updated every few
    microseconds, and 10 sweeps per agent meet the transfers), and every
    span has the whole response, with both halves paired. The sweep may
    report an exchange only after idle_timeout (30 s here) of silence; one
    reported while bytes flow loses the rest of the exchange (the kernel's
    final record of it is then taken for a duplicate)."""
    hs = Hosts()
    srv, port = hs.server()
    resp = 512 << 20
    cli = finish_client(hs.client_proc(hs.v4(port), ["--conns", 4, "--parallel", 4,
                                                     "--duration-s", 10, "--resp-size", resp]))
    k = cli["exchanges"]
    s = stop_server(srv)
    assert s["exchanges"] == k >= 8, (s, k)
    reqs = hs.stop_agents()
    cl, sv = split(h.spans(reqs))
    bad = [x for x in cl + sv
           if (x["attrs"]["tcp.request.size"], x["attrs"]["tcp.response.size"]) != (HDR + 64, resp)]
    assert not bad, ("%d of %d spans cut short" % (len(bad), len(cl) + len(sv)),
                     sorted((x["kind"], x["attrs"]["tcp.response.size"]) for x in bad), bad[:1])
    check_all_pair(cl, sv, k)
    report("K=%d exchanges of %d bytes in %.2f s, all whole", k, resp, cli["elapsed_s"])
