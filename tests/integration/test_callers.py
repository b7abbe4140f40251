# SPDX-License-Identifier: Apache-2.0
"""Callers that no agent watches, and servers that one agent sees from both ends.

Three namespaces: a, the client host with its agent; b, the server host with its agent;
c, a caller without tcpotel (a load balancer, a host of another team), joined to b by its
own link. A tcpload server "backend" runs in b, with clients from a ("frontend"), from c
("lb", which no agent sees) and from b itself ("sidecar", to 127.0.0.1 and to b's own
address on c's link). The spans go to one receiver; servicegraph.py then counts the edges
a Collector's servicegraph connector would draw from them, with the virtual-node settings
of collector-config/agent.yaml.

- spans.internal_networks: frontend's exchanges still pair; lb's SERVER spans are roots
  (no parent) that keep lb's address, and the connector draws user -> backend for them;
  the sidecar's exchanges pair (loopback and the server's own address are internal) and
  its CLIENT spans name the server in peer.service.
- spans.external_clients is looked at before internal_networks.
- Without either key lb's SERVER spans keep a parent that never comes: the connector
  expires them without an edge (the reason for the keys).
- The emulation itself against hand-made spans: pairs, user, peer attributes, "unknown",
  duplicates, and spans without a service.name.
"""

import os
import signal
import time

import harness as h
import servicegraph as sg

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

V4_AB = ("10.231.0.1/24", "10.231.0.2/24")
V6_AB = ("fd00:231::1/64", "fd00:231::2/64")
V4_CB = ("10.231.5.1/24", "10.231.5.2/24")
V6_CB = ("fd00:235::1/64", "fd00:235::2/64")
AGENT_YAML = os.path.join(h.ROOT, "collector-config", "agent.yaml")


def peer_attributes():
    """virtual_node_peer_attributes of the shipped agent.yaml's servicegraph connector."""
    assert yaml is not None, "PyYAML is missing: apt-get install python3-yaml"
    with open(AGENT_YAML, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    return tuple(cfg["connectors"]["servicegraph"]["virtual_node_peer_attributes"])


class Three:
    """Namespaces a, b and c; agents on a and b with the given spans settings."""

    def __init__(self, spans_b, spans_a=None):
        h.require_root()
        h.require_built(h.TCPLOAD)
        self.a, self.b = h.Netns("cli"), h.Netns("srv")
        self.c = h.Netns("lb")
        self.ab = h.veth_pair(self.a, self.b, V4_AB[0], V4_AB[1], v6=V6_AB)
        self.cb = h.veth_pair(self.c, self.b, V4_CB[0], V4_CB[1], v6=V6_CB)
        self.rcv = h.Receiver()
        self.agents = []
        for ns, host, name, spans in ((self.a, "host-a", "a", spans_a or {}),
                                      (self.b, "host-b", "b", spans_b)):
            cfg_spans = {"idle_timeout": "30s"}
            cfg_spans.update(spans)
            self.agents.append(h.Agent({
                "capture": {"netns": [ns.path]},
                "metrics": {"interval": "1s"},
                "spans": cfg_spans,
                "resource": {"attributes": {"host.name": host}},
            }, name=name))
        for ag in self.agents:
            ag.wait_ready()

    def client(self, ns, target, args, service):
        argv = ["env", "OTEL_SERVICE_NAME=%s" % service, h.TCPLOAD, "client", "--connect",
                target] + [str(x) for x in args]
        return ns.popen(argv, name="tcpload-" + service)

    def stop_agents(self):
        for ag in self.agents:
            ag.proc.signal(signal.SIGTERM)
        for ag in self.agents:
            rc = ag.proc.wait(20)
            assert rc == 0, "agent %s exited %s\n%s" % (ag.name, rc, ag.log()[-3000:])
        return self.rcv.requests()


def finish(proc, timeout=60):
    rc = proc.wait(timeout)
    assert rc == 0, "tcpload exited %s\n%s" % (rc, proc.stderr_text()[-2000:])
    out = proc.json()
    assert out["errors"] == 0, out
    return out


def by_service(span_list, kind):
    out = {}
    for s in span_list:
        if s["kind"] == kind:
            out.setdefault(s["resource"]["service.name"], []).append(s)
    return out


# ---- the emulation on hand-made spans -------------------------------------------------


def span(kind, svc, trace, span_id, parent="", **attrs):
    return {"kind": kind, "trace_id": trace, "span_id": span_id, "parent_span_id": parent,
            "resource": {"service.name": svc} if svc else {}, "attrs": attrs}


def test_servicegraph_emulation_draws_user_and_virtual_nodes():
    """What the connector does with each kind of span, as servicegraph.py follows it: a
    pair is one edge whatever comes first; a root SERVER span is "user" -> server once it
    expires; a SERVER span with a parent but no client expires with no edge; a lone CLIENT
    span goes to the value of the first peer attribute it has (first in the configured
    order), else "unknown"; a duplicate starts a new edge; a resource without service.name
    is skipped; without peer attributes no virtual node is drawn."""
    C, S = h.SPAN_KIND_CLIENT, h.SPAN_KIND_SERVER
    t = ["%032x" % (i + 1) for i in range(10)]
    spans = [
        span(C, "frontend", t[0], "a1"), span(S, "backend", t[0], "b1", "a1"),
        span(S, "backend", t[1], "b2", "a2"), span(C, "frontend", t[1], "a2"),  # server first
        span(S, "backend", t[2], "b3"),  # root: user -> backend
        span(S, "backend", t[3], "b4", "a4"),  # its client never comes
        span(C, "frontend", t[4], "a5", **{"server.address": "10.9.9.9",
                                           "peer.service": "db"}),  # peer.service first
        span(C, "frontend", t[5], "a6", **{"server.address": "10.9.9.9"}),
        span(C, "frontend", t[6], "a7"),  # nothing to name the server: "unknown"
        span(C, "frontend", t[7], "a8"), span(S, "backend", t[7], "b8", "a8"),
        span(S, "backend", t[7], "b8", "a8"),  # duplicate: a new edge, then expires
        span(S, "", t[8], "b9"),  # no service.name: skipped
    ]
    g = sg.servicegraph(spans, peer_attributes=("peer.service", "server.address"))
    assert g.edges() == {("frontend", "backend"): 3, ("user", "backend"): 1,
                         ("frontend", "db"): 1, ("frontend", "10.9.9.9"): 1,
                         ("frontend", "unknown"): 1}, g.edges()
    assert g.counts[("user", "backend", "virtual_node", "client")] == 1, g.counts
    assert g.counts[("frontend", "db", "virtual_node", "server")] == 1, g.counts
    assert g.expired == 6, g.expired  # b3, b4, a5, a6, a7, the duplicate b8
    # The pairs alone (no expiry): what harness.pair_like_servicegraph returns.
    edges, uc, us = h.pair_like_servicegraph(spans)
    assert edges == {("frontend", "backend"): 3}, edges
    assert sorted(s["span_id"] for s in uc) == ["a5", "a6", "a7"], uc
    assert sorted(s["span_id"] for s in us) == ["b3", "b4", "b8"], us
    # No peer attributes configured: no virtual node at all, even "user".
    g = sg.servicegraph(spans, peer_attributes=())
    assert g.edges() == {("frontend", "backend"): 3}, g.edges()


# ---- with real agents -------------------------------------------------------------------


def test_internal_clients_pair_external_ones_are_roots():
    """spans.internal_networks on the server's agent: frontend (inside them) pairs as
    always; lb (outside, no agent) gives SERVER spans with no parent that keep its address,
    drawn user -> backend by the connector; the sidecar on the server's host (127.0.0.1,
    and the server's own address outside the internal networks) pairs, and its CLIENT spans
    carry peer.service = backend once the agent has seen both of its ends."""
    t = Three({"internal_networks": ["10.231.0.0/24", "fd00:231::/64"]},
              {"internal_networks": ["10.231.0.0/24", "fd00:231::/64"]})
    srv, port = h.tcpload_server(t.b, "[::]:0", "backend")
    hp = h.hostport
    load = ["--req-size", "100,2000", "--resp-size", "10,5000"]
    runs = [  # (namespace, target, service, args)
        (t.a, hp(t.ab.ip_b, port), "frontend", ["--conns", 4, "--exchanges", 30, "--rate", 400]),
        (t.a, hp(t.ab.ip6_b, port), "frontend", ["--conns", 20, "--short", "--rate", 200]),
        (t.c, hp(t.cb.ip_b, port), "lb", ["--conns", 3, "--exchanges", 25, "--rate", 300]),
        (t.c, hp(t.cb.ip6_b, port), "lb", ["--conns", 15, "--short", "--rate", 200]),
        # Long enough that the agent's sweeps (every second) see both ends of each connection.
        (t.b, hp("127.0.0.1", port), "sidecar", ["--conns", 2, "--duration-s", 6, "--rate", 40]),
        (t.b, hp(t.cb.ip_b, port), "sidecar", ["--conns", 1, "--duration-s", 6, "--rate", 20]),
    ]
    procs = [(svc, t.client(ns, target, args + load, svc)) for ns, target, svc, args in runs]
    done = {}
    for svc, p in procs:
        c = finish(p)
        done[svc] = done.get(svc, 0) + c["exchanges"]
    time.sleep(0.3)
    s = h.tcpload_server_stop(srv)
    assert s["exchanges"] == sum(done.values()) and s["errors"] == 0, (s, done)
    reqs = t.stop_agents()

    spans = h.spans(reqs)
    clients, servers = by_service(spans, h.SPAN_KIND_CLIENT), by_service(spans, h.SPAN_KIND_SERVER)
    assert sorted(clients) == ["frontend", "sidecar"], sorted(clients)  # lb has no agent
    assert sorted(servers) == ["backend"], sorted(servers)
    assert len(clients["frontend"]) == done["frontend"], (len(clients["frontend"]), done)
    assert len(clients["sidecar"]) == done["sidecar"], (len(clients["sidecar"]), done)
    assert len(servers["backend"]) == sum(done.values()), (len(servers["backend"]), done)

    lb_addrs = {t.cb.ip_a, t.cb.ip6_a}
    roots = [x for x in servers["backend"] if not x["parent_span_id"]]
    assert len(roots) == done["lb"], (len(roots), done)
    for x in roots:
        a = x["attrs"]
        assert a["client.address"] in lb_addrs and a["network.peer.address"] == a["client.address"], a
        assert a["client.port"] > 0 and a["network.peer.port"] == a["client.port"], a
    for x in servers["backend"]:
        if x["attrs"]["client.address"] not in lb_addrs:
            assert x["parent_span_id"], x  # every internal client's server span has its parent
        assert "peer.service" not in x["attrs"], x

    # peer.service: the sidecar's server runs on its host; frontend's does not (for agent a).
    for x in clients["frontend"]:
        assert "peer.service" not in x["attrs"], x
    side = sorted(clients["sidecar"], key=lambda x: x["end"])
    named = [x for x in side if x["attrs"].get("peer.service") == "backend"]
    assert all(x["attrs"].get("peer.service", "backend") == "backend" for x in side), side[:3]
    late = [x for x in side if x["end"] > side[0]["end"] + 3 * 10**9]
    assert late and all(x["attrs"].get("peer.service") == "backend" for x in late), \
        [x["attrs"] for x in late if "peer.service" not in x["attrs"]][:3]
    h.note("sidecar client spans named by peer.service: %d of %d", len(named), len(side))

    g = sg.servicegraph(spans, peer_attributes=peer_attributes())
    assert g.edges() == {("frontend", "backend"): done["frontend"],
                         ("sidecar", "backend"): done["sidecar"],
                         ("user", "backend"): done["lb"]}, (g.edges(), done)
    assert g.counts[("user", "backend", "virtual_node", "client")] == done["lb"], g.counts
    assert g.expired == done["lb"], (g.expired, done)
    h.note("edges: %r", g.edges())


test_internal_clients_pair_external_ones_are_roots.timeout = 180


def test_external_clients_are_looked_at_first():
    """An external_clients range inside the internal networks (a load balancers' subnet in
    the cluster's range) wins: lb's SERVER spans are roots, frontend's still pair."""
    t = Three({"internal_networks": ["10.231.0.0/16"], "external_clients": ["10.231.5.0/24"]})
    srv, port = h.tcpload_server(t.b, "0.0.0.0:0", "backend")
    fe = t.client(t.a, h.hostport(t.ab.ip_b, port), ["--conns", 3, "--exchanges", 20, "--rate", 300],
                  "frontend")
    lb = t.client(t.c, h.hostport(t.cb.ip_b, port), ["--conns", 3, "--exchanges", 20, "--rate", 300],
                  "lb")
    n_fe, n_lb = finish(fe)["exchanges"], finish(lb)["exchanges"]
    time.sleep(0.3)
    h.tcpload_server_stop(srv)
    spans = h.spans(t.stop_agents())
    servers = by_service(spans, h.SPAN_KIND_SERVER)["backend"]
    roots = [x for x in servers if not x["parent_span_id"]]
    assert len(servers) == n_fe + n_lb and len(roots) == n_lb, (len(servers), len(roots))
    assert {x["attrs"]["client.address"] for x in roots} == {t.cb.ip_a}, roots[:2]
    g = sg.servicegraph(spans, peer_attributes=peer_attributes())
    assert g.edges() == {("frontend", "backend"): n_fe, ("user", "backend"): n_lb}, g.edges()


test_external_clients_are_looked_at_first.timeout = 120


def test_without_the_keys_external_callers_vanish():
    """The default: every SERVER span has the client span as parent, so lb's never pair and
    the connector expires them without drawing an edge: lb does not appear on its map."""
    t = Three({})
    srv, port = h.tcpload_server(t.b, "0.0.0.0:0", "backend")
    lb = t.client(t.c, h.hostport(t.cb.ip_b, port), ["--conns", 2, "--exchanges", 15, "--rate", 300],
                  "lb")
    n = finish(lb)["exchanges"]
    time.sleep(0.3)
    h.tcpload_server_stop(srv)
    spans = h.spans(t.stop_agents())
    servers = by_service(spans, h.SPAN_KIND_SERVER)["backend"]
    assert len(servers) == n and all(x["parent_span_id"] for x in servers), len(servers)
    g = sg.servicegraph(spans, peer_attributes=peer_attributes())
    assert g.edges() == {} and g.expired == n, (g.edges(), g.expired)


test_without_the_keys_external_callers_vanish.timeout = 120
