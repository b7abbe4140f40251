# SPDX-License-Identifier: Apache-2.0
"""Kernel capture and OTLP metrics, end to end: the real agent watches tcpload
between two network namespaces, and what it exported is compared with what the
workload (and the kernel itself) counted.

Every agent here is restricted to the test's own namespaces (capture.netns),
except the one test that is about watching every namespace; it exports every
second, is stopped with SIGTERM and must exit 0; the numbers compared are the
last cumulative values the receiver accepted, after the exit.

TCPOTEL_VERBOSE=1 prints the measured figures (bytes, RTTs, retransmits) to
stderr.
"""

import time

import harness as h
from pace import fewer, longer

V4 = ("10.231.0.1/24", "10.231.0.2/24")
V6 = ("fd00:231::1/64", "fd00:231::2/64")
INTERVAL = "1s"


note = h.note


def hosts():
    h.require_root()
    h.require_built(h.TCPLOAD)
    return h.two_hosts(V4, V6)


def agent_config(netns, **sections):
    cfg = {"capture": {"netns": list(netns)}, "metrics": {"interval": INTERVAL}}
    for k, v in sections.items():
        cfg[k] = dict(cfg.get(k, {}), **v)
    return cfg


def start_agent(netns, receiver=None, name="a", **sections):
    return h.Agent(agent_config(netns, **sections), receiver=receiver, name=name).wait_ready()


def stop_agent(agent):
    rc = agent.stop()
    assert rc == 0, "agent exited %s on SIGTERM\n%s" % (rc, agent.log()[-3000:])


def metrics_accepted(reqs):
    return [r for r in reqs if r.get("path") == "/v1/metrics" and r.get("status") == 200]


def wait_exports(rcv, n, timeout=15):
    """Waits until the receiver has accepted n more metric exports than now."""
    base = len(metrics_accepted(rcv.requests()))
    rcv.wait_for(lambda reqs: len(metrics_accepted(reqs)) >= base + n, timeout,
                 "%d more metric exports" % n)


def io_streams(reqs, service):
    """{(process.pid, frozenset(point attrs without network.io.direction))} of tcp.io."""
    out = set()
    for res, attrs, _p, _t in h.metric_points(reqs, "tcp.io"):
        if res.get("service.name") != service:
            continue
        a = {k: v for k, v in attrs.items() if k != "network.io.direction"}
        out.add((res.get("process.pid"), frozenset(a.items())))
    return out


def snapshots(reqs, name, service, where=None):
    """[(arrival t, sum of the metric's points for `service` in that export)], one per
    accepted metrics request that has points of it (every export carries every stream)."""
    out = []
    for r in metrics_accepted(reqs):
        pts = h.metric_points([r], name)
        s, seen = 0, False
        for res, attrs, p, _t in pts:
            if res.get("service.name") != service:
                continue
            if where and any(attrs.get(k) != v for k, v in where.items()):
                continue
            s += h.point_value(p)
            seen = True
        if seen:
            out.append((r["t"], s))
    return out


def settle():
    """Lets the agent drain the last records while the workload's processes still
    live: the agent reads a process's OTEL_SERVICE_NAME from /proc when it first
    meets one of its sockets (a ring-buffer record, drained every few tens of ms,
    or the 1 s sweep), so a process gone before that is named after its
    executable. Every server here outlives its clients by this much."""
    time.sleep(min(longer(0.5), 3))


# Clients hold each connection open this long after its last exchange, so the
# process outlives the first records of its sockets (see settle()).
HOLD = ["--idle-ms", int(min(longer(150), 1000))]


def sum_summaries(summaries, key):
    return sum(s[key] for s in summaries)


def check_io_exact(reqs, clients, server, cli_svc="frontend", srv_svc="backend"):
    """tcp.io per role and direction equals what tcpload counted, to the byte."""
    got = {
        "client tx": h.total(reqs, "tcp.io", cli_svc,
                             {"tcp.role": "client", "network.io.direction": "transmit"}),
        "client rx": h.total(reqs, "tcp.io", cli_svc,
                             {"tcp.role": "client", "network.io.direction": "receive"}),
        "server tx": h.total(reqs, "tcp.io", srv_svc,
                             {"tcp.role": "server", "network.io.direction": "transmit"}),
        "server rx": h.total(reqs, "tcp.io", srv_svc,
                             {"tcp.role": "server", "network.io.direction": "receive"}),
    }
    want = {
        "client tx": sum_summaries(clients, "bytes_sent"),
        "client rx": sum_summaries(clients, "bytes_received"),
        "server tx": server["bytes_sent"] if server else None,
        "server rx": server["bytes_received"] if server else None,
    }
    if server is None:
        got = {k: v for k, v in got.items() if k.startswith("client")}
        want = {k: v for k, v in want.items() if k.startswith("client")}
    bad = {k: (got[k], want[k], got[k] - want[k]) for k in want if got[k] != want[k]}
    assert not bad, "tcp.io differs from tcpload's counts {what: (exported, real, diff)}: %r" % bad
    # Nothing failed in these workloads: no stream and no span may say so.
    failed = h.errors(reqs)
    assert not failed, ("errors where nothing failed", failed[:5])
    return got


# ---- 1. bytes --------------------------------------------------------------------


def test_known_bytes_v4_v6_short_and_keepalive():
    """Hundreds of connections, 1 B .. 10 MiB each way, IPv4 and IPv6 (one dual-stack
    server), short and keep-alive: tcp.io per role and direction is exactly what
    tcpload's send()/recv() returned; stream attributes name the peer and the service
    port, and there is one stream per (process, peer, service port), never one per
    ephemeral port."""
    a, b, link = hosts()
    rcv = h.Receiver()
    agent = start_agent([a.path, b.path])
    srv, port = h.tcpload_server(b, "[::]:0", "backend")
    # Every size of each list occurs at least once, however few the connections.
    keep = ["--conns", fewer(20, 2), "--parallel", 4, "--exchanges", 5,
            "--req-size", "1,100,65536,1MiB,10MiB",
            "--resp-size", "10MiB,1,4096,100,65536,1MiB,7"]
    short = ["--short", "--conns", fewer(150, 7), "--parallel", 8,
             "--req-size", "1,100,4096,65536,1MiB,10MiB,3",
             "--resp-size", "1MiB,1,65536,100,10MiB,4096"]
    runs = [("ipv4", link.ip_b, keep), ("ipv4", link.ip_b, short),
            ("ipv6", link.ip6_b, keep), ("ipv6", link.ip6_b, short)]
    clients, by_family = [], {"ipv4": [], "ipv6": []}
    for fam, ip, args in runs:
        c = h.tcpload_client(a, h.hostport(ip, port), args, "frontend", timeout=longer(120))
        is_short = "--short" in args
        conns = args[args.index("--conns") + 1]
        exch = 1 if is_short else args[args.index("--exchanges") + 1]
        want = h.tcpload_expected(conns, exch, args[args.index("--req-size") + 1],
                                  args[args.index("--resp-size") + 1], short=is_short)
        assert (c["bytes_sent"], c["bytes_received"]) == want, (c, want)
        assert c["errors"] == 0 and c["conns"] == conns, c
        clients.append(c)
        by_family[fam].append(c)
    settle()
    server = h.tcpload_server_stop(srv)
    assert server["errors"] == 0 and server["conns"] == sum_summaries(clients, "conns"), server
    stop_agent(agent)
    reqs = rcv.requests()

    got = check_io_exact(reqs, clients, server)
    note("bytes over %d connections: %r", server["conns"], got)
    for fam, cs in by_family.items():
        for d, key in (("transmit", "bytes_sent"), ("receive", "bytes_received")):
            v = h.total(reqs, "tcp.io", "frontend", {"tcp.role": "client", "network.type": fam,
                                                     "network.io.direction": d})
            assert v == sum_summaries(cs, key), (fam, d, v, sum_summaries(cs, key))

    # Stream attributes.
    peers = {link.ip_b: "ipv4", link.ip6_b: "ipv6"}
    clients_at = {link.ip_a: "ipv4", link.ip6_a: "ipv6"}
    fe, be = io_streams(reqs, "frontend"), io_streams(reqs, "backend")
    for _pid, attrs in fe:
        a_ = dict(attrs)
        assert a_.get("tcp.role") == "client" and a_.get("network.transport") == "tcp", a_
        assert a_.get("server.address") in peers, a_
        assert a_.get("network.type") == peers[a_["server.address"]], a_
        assert a_.get("server.port") == port and a_.get("network.peer.port") == port, a_
        assert a_.get("network.peer.address") == a_["server.address"], a_
        assert "client.address" not in a_, a_
    for _pid, attrs in be:
        a_ = dict(attrs)
        assert a_.get("tcp.role") == "server" and a_.get("network.transport") == "tcp", a_
        assert a_.get("client.address") in clients_at, a_
        assert a_.get("network.type") == clients_at[a_["client.address"]], a_
        assert a_.get("server.port") == port, a_
        assert a_.get("network.peer.address") == a_["client.address"], a_
        assert "server.address" not in a_, a_
    # One stream per (process, peer, service port): each client process dialled one
    # address; the one server process saw two client addresses (v4 folded from
    # v4-mapped v6 on the dual-stack socket, and v6).
    assert len(fe) == len(runs), sorted(fe, key=str)
    assert len({pid for pid, _ in fe}) == len(runs), fe
    assert len(be) == 2, sorted(be, key=str)
    ports = {v for res, attrs, _p, _t in h.metric_points(reqs, "tcp.io")
             if res.get("service.name") in ("frontend", "backend")
             for k, v in attrs.items() if k.endswith(".port")}
    assert ports == {port}, "a stream per ephemeral port? ports seen: %r" % sorted(ports)
    streams = h.last_values(reqs, "tcpotel.streams")
    assert streams and max(streams.values()) <= len(fe) + len(be), streams


def test_peeking_and_waiting_reads_count_once():
    """Readers that peek (MSG_PEEK) at what they then read, and readers whose every
    read waits for all it asks for (MSG_WAITALL, which wakes up several times while
    megabytes arrive): tcp.io per role and direction is still exactly what was read,
    whatever the back-end (a peek moves no data; a waiting read is one read)."""
    a, b, link = hosts()
    rcv = h.Receiver()
    agent = start_agent([a.path, b.path])
    clients, servers = [], []
    for srv_read, cli_read in (("peek", "waitall"), ("waitall", "peek")):
        srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend", ["--read", srv_read])
        clients.append(h.tcpload_client(
            a, h.hostport(link.ip_b, port),
            ["--conns", fewer(4, 2), "--parallel", 2, "--exchanges", fewer(5, 3),
             "--req-size", "1,4096,1MiB", "--resp-size", "1MiB,100,65536",
             "--read", cli_read] + HOLD,
            timeout=longer(60)))
        settle()
        servers.append(h.tcpload_server_stop(srv))
    stop_agent(agent)
    server = {k: sum_summaries(servers, k) for k in ("bytes_sent", "bytes_received")}
    got = check_io_exact(rcv.requests(), clients, server)
    note("peek and MSG_WAITALL readers: %r", got)


# ---- 2. srtt ---------------------------------------------------------------------


def test_srtt_agrees_with_tcp_info():
    """tcp.srtt of the workload's streams exists, is a sane histogram, and agrees with
    the kernel's TCP_INFO tcpi_rtt read by tcpload just before each close.

    The agent samples tp->srtt_us >> 3 (µs) at every send and receive; tcpi_rtt is
    the same quantity at close. Veth RTTs are tens of µs and jitter by as much, so
    the tolerance is: the histogram's mean within a factor of 2 of the mean tcpi_rtt,
    or within ±200 µs of it; its min no more than max(2 x tcpi min, tcpi min + 200 µs);
    its max no less than min(tcpi max / 2, tcpi max - 200 µs) (200 µs stretched by
    the slowdown in emulated guests: pace.py). Light ping-pong on
    veth (no netem here for a fixed delay), so that srtt stays steady; no idle hold
    before close, as a delayed ACK after the last response (40 ms) would move the
    server's srtt after the agent's last sample. 8000 exchanges keep the client
    alive long enough for the agent to read its OTEL_SERVICE_NAME."""
    a, b, link = hosts()
    rcv = h.Receiver()
    agent = start_agent([a.path, b.path])
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend", ["--tcp-info"])
    conns, exchanges = fewer(20, 4), fewer(400, 40)
    cli = h.tcpload_client(a, h.hostport(link.ip_b, port),
                           ["--conns", conns, "--parallel", 4, "--exchanges", exchanges,
                            "--req-size", "100,2000", "--resp-size", "1000,100", "--tcp-info"],
                           timeout=longer(60))
    settle()
    server = h.tcpload_server_stop(srv)
    stop_agent(agent)
    reqs = rcv.requests()
    check_io_exact(reqs, [cli], server)

    for svc, summary in (("frontend", cli), ("backend", server)):
        ti = summary["tcp_info"]
        assert ti["conns"] == conns, ti
        pts = [(res, attrs, p) for res, attrs, p, _t in h.metric_points(reqs, "tcp.srtt")
               if res.get("service.name") == svc]
        assert pts, "no tcp.srtt for %s" % svc
        # The last point of the (single) stream: cumulative over every connection.
        res, attrs, p = pts[-1]
        assert attrs.get("server.port") == port, attrs
        count = int(p["count"])
        assert count > 0, p
        buckets = [int(c) for c in p["bucketCounts"]]
        bounds = p["explicitBounds"]
        assert sum(buckets) == count and len(buckets) == len(bounds) + 1, p
        assert abs(bounds[0] - 1e-6) < 1e-12 and all(
            abs(bounds[i + 1] / bounds[i] - 2) < 1e-9 for i in range(len(bounds) - 1)), bounds
        mean_us = p["sum"] / count * 1e6
        lo_us, hi_us = p["min"] * 1e6, p["max"] * 1e6
        note("%s srtt: %d samples, mean %.1f µs, min %.1f, max %.1f; TCP_INFO at close: "
             "mean %.1f µs, min %d, max %d", svc, count, mean_us, lo_us, hi_us,
             ti["rtt_us_mean"], ti["rtt_us_min"], ti["rtt_us_max"])
        assert 0 < lo_us <= mean_us <= hi_us, (lo_us, mean_us, hi_us)
        m = ti["rtt_us_mean"]
        assert (m / 2 <= mean_us <= m * 2) or abs(mean_us - m) <= longer(200), \
            "%s: srtt mean %.1f µs vs tcpi_rtt mean %.1f µs" % (svc, mean_us, m)
        assert lo_us <= max(2 * ti["rtt_us_min"], ti["rtt_us_min"] + longer(200)), (lo_us, ti)
        assert hi_us >= min(ti["rtt_us_max"] / 2, ti["rtt_us_max"] - longer(200)), (hi_us, ti)
        # Samples were taken while connections lived: many per connection.
        assert count >= conns * exchanges, (count, "fewer samples than exchanges")
        # The bucket holding the mean is populated (samples are where the mean says).
        k = next(i for i, bd in enumerate(bounds + [float("inf")]) if mean_us * 1e-6 <= bd)
        assert sum(buckets[max(0, k - 2):k + 3]) > 0, (k, buckets)


# ---- 3. retransmits --------------------------------------------------------------


def test_retransmits_under_loss():
    """10% of the server port's packets dropped on arrival in the server's namespace
    (client data lost: the client retransmits) and 10% of them on arrival in the
    client's (server data lost: the server retransmits), while 4 MiB go each way.

    tcp.retransmits counts segments ({segment}). Per role it must lie between:
    - at least the sum of tcpi_total_retrans that TCP_INFO gave for the same
      connections just before close (segments retransmitted on each socket; for the
      server minus the namespace's TcpExtTCPSynRetrans, SYN-ACK retransmits that
      tcp_retransmit_skb never sees but the child socket inherits), and
    - at most TcpRetransSegs of that side's namespace (every retransmitted segment
      there, including after close() during FIN_WAIT/LAST_ACK).
    The bytes are still exact."""
    a, b, link = hosts()
    rcv = h.Receiver()
    agent = start_agent([a.path, b.path])
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend", ["--tcp-info"])
    b.nft_drop_fraction("tcp dport %d" % port, 0.10, hook="input")
    a.nft_drop_fraction("tcp sport %d" % port, 0.10, hook="input")
    ra0, rb0 = a.retrans_segs(), b.retrans_segs()
    syn_b0 = b.nstat("TcpExtTCPSynRetrans").get("TcpExtTCPSynRetrans", 0)
    cli = h.tcpload_client(a, h.hostport(link.ip_b, port),
                           ["--conns", fewer(4, 2), "--parallel", 4, "--exchanges", 2,
                            "--req-size", "512KiB", "--resp-size", "512KiB", "--tcp-info"]
                           + HOLD, timeout=longer(120))
    settle()
    server = h.tcpload_server_stop(srv)
    ra, rb = a.retrans_segs() - ra0, b.retrans_segs() - rb0
    syn_b = b.nstat("TcpExtTCPSynRetrans").get("TcpExtTCPSynRetrans", 0) - syn_b0
    stop_agent(agent)
    reqs = rcv.requests()
    check_io_exact(reqs, [cli], server)
    assert "drop" in b.nft_counters() and "drop" in a.nft_counters()

    rc = h.total(reqs, "tcp.retransmits", "frontend", {"tcp.role": "client"})
    rs = h.total(reqs, "tcp.retransmits", "backend", {"tcp.role": "server"})
    tc, ts = cli["tcp_info"]["total_retrans"], server["tcp_info"]["total_retrans"]
    note("retransmits: agent client %d server %d; TcpRetransSegs ns a %d ns b %d; "
         "tcpi_total_retrans client %d server %d; SYN-ACK retransmits %d", rc, rs, ra, rb,
         tc, ts, syn_b)
    assert tc > 0 and ts > 0, ("the drop rules caused too few retransmits", tc, ts)
    assert rc > 0 and rs > 0, ("tcp.retransmits is 0", rc, rs)
    assert tc <= rc <= ra, ("client: tcp.retransmits outside [tcpi_total_retrans, "
                            "TcpRetransSegs(a)]", rc, tc, ra)
    assert ts - syn_b <= rs <= rb, ("server: tcp.retransmits outside [tcpi_total_retrans - "
                                    "SYN-ACK retransmits, TcpRetransSegs(b)]", rs, ts - syn_b, rb)


# ---- 4. opened / active ----------------------------------------------------------


def test_connections_opened_and_active():
    """N short connections and M keep-alive ones held open: while they are held an
    export shows tcp.connection.active == M with opened == N + M, per role; at the
    end opened == N + M and active == 0."""
    n_short, m_keep = fewer(30, 8), 5
    a, b, link = hosts()
    rcv = h.Receiver()
    agent = start_agent([a.path, b.path])
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend")
    target = h.hostport(link.ip_b, port)
    holder = a.popen(["env", "OTEL_SERVICE_NAME=frontend", h.TCPLOAD, "client",
                      "--connect", target, "--conns", m_keep, "--parallel", m_keep,
                      "--exchanges", 3, "--idle-ms", int(7000 + longer(700))],
                     name="tcpload-holder")
    cli = h.tcpload_client(a, target, ["--short", "--conns", n_short, "--parallel", 4] + HOLD)
    t_short_done = time.time()
    want = n_short + m_keep

    def held(reqs):
        # One export, after the short ones ended, showing all of them opened and
        # exactly the held ones active, on both sides.
        out = {}
        for svc in ("frontend", "backend"):
            op = dict(snapshots(reqs, "tcp.connection.opened", svc))
            ac = snapshots(reqs, "tcp.connection.active", svc)
            hit = [(t, v) for t, v in ac if t > t_short_done and op.get(t) == want and v == m_keep]
            if not hit:
                return None
            out[svc] = hit[0]
        return out

    mid = rcv.wait_for(held, longer(6), "an export during the hold with active == %d" % m_keep)
    assert holder.running(), "the keep-alive connections were no longer held"
    note("during the hold: %r", mid)
    assert holder.wait(longer(30)) == 0, holder.stderr_text()
    held_summary = holder.json()
    settle()
    server = h.tcpload_server_stop(srv)
    stop_agent(agent)
    reqs = rcv.requests()
    check_io_exact(reqs, [cli, held_summary], server)
    for svc, role in (("frontend", "client"), ("backend", "server")):
        opened = h.total(reqs, "tcp.connection.opened", svc, {"tcp.role": role})
        active = h.total(reqs, "tcp.connection.active", svc, {"tcp.role": role})
        assert opened == want, (svc, "opened", opened, want)
        assert active == 0, (svc, "active at the end", active)
    # No export ever showed more active than could be open: M held + 4 short at a time
    # (in slow guests closes reach the agent later: a few more).
    for svc in ("frontend", "backend"):
        for t, v in snapshots(reqs, "tcp.connection.active", svc):
            assert 0 <= v <= m_keep + 4 * longer(1), (svc, t, v)


# ---- 5. server started before the agent ------------------------------------------


def test_server_started_before_agent_keeps_roles():
    """A server listening, and a keep-alive connection exchanging, before the agent
    starts: that connection's server end is tcp.role=server (its local port is a
    listening port) and its client end tcp.role=client; connections made after the
    start too; opened counts only the connections seen being established."""
    a, b, link = hosts()
    rcv = h.Receiver()
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend")
    target = h.hostport(link.ip_b, port)
    early = a.popen(["env", "OTEL_SERVICE_NAME=frontend", h.TCPLOAD, "client",
                     "--connect", target, "--conns", 1, "--duration-s", 10, "--rate", 40,
                     "--req-size", 200, "--resp-size", 3000], name="tcpload-early")
    time.sleep(0.7)
    assert early.running(), early.stderr_text()
    agent = start_agent([a.path, b.path])
    late = h.tcpload_client(a, target, ["--conns", 5, "--exchanges", 3] + HOLD)
    assert early.wait(30) == 0, early.stderr_text()
    early_summary = early.json()
    settle()
    server = h.tcpload_server_stop(srv)
    stop_agent(agent)
    reqs = rcv.requests()

    fe, be = io_streams(reqs, "frontend"), io_streams(reqs, "backend")
    assert len({pid for pid, _ in fe}) == 2, ("both client processes", fe)
    for pid, attrs in fe:
        a_ = dict(attrs)
        assert a_.get("tcp.role") == "client" and a_.get("server.port") == port, (pid, a_)
        assert a_.get("server.address") == link.ip_b, a_
    assert be, "no server stream"
    for pid, attrs in be:
        a_ = dict(attrs)
        assert a_.get("tcp.role") == "server" and a_.get("server.port") == port, (pid, a_)
        assert a_.get("client.address") == link.ip_a, a_
    assert not [k for k in h.last_values(reqs, "tcp.io")
                if k[0] in ("frontend", "backend")
                and dict(k[1]).get("tcp.role") not in ("client", "server")]
    # The early connection was seen moving data (a part of its bytes: it began before).
    fe_tx = h.total(reqs, "tcp.io", "frontend", {"network.io.direction": "transmit"})
    assert fe_tx > late["bytes_sent"], ("the early connection's bytes are missing",
                                        fe_tx, late["bytes_sent"], early_summary)
    assert fe_tx <= late["bytes_sent"] + early_summary["bytes_sent"], (fe_tx, early_summary)
    be_rx = h.total(reqs, "tcp.io", "backend", {"network.io.direction": "receive"})
    assert late["bytes_sent"] < be_rx <= server["bytes_received"], (be_rx, server)
    for svc, role in (("frontend", "client"), ("backend", "server")):
        opened = h.total(reqs, "tcp.connection.opened", svc, {"tcp.role": role})
        assert opened == late["conns"], (svc, "opened", opened, "want", late["conns"])
        assert h.total(reqs, "tcp.connection.active", svc) == 0, svc


# ---- 6. netns filter -------------------------------------------------------------


def test_netns_filter_by_path_and_by_inode():
    """capture.netns [path of the client's namespace] sees the client's streams and
    none of the server's; capture.netns [inode number of the server's namespace]
    the other way round. Both agents run at once over one workload."""
    a, b, link = hosts()
    rcv_a, rcv_b = h.Receiver(), h.Receiver()
    ag_a = start_agent([a.path], receiver=rcv_a, name="by-path")
    ag_b = start_agent([str(b.inode)], receiver=rcv_b, name="by-inode")
    cli, server, port = h.run_workload(a, b, link, ["--conns", 6, "--exchanges", 4,
                                                    "--req-size", "1,5000",
                                                    "--resp-size", "70000,3"] + HOLD)
    stop_agent(ag_a)
    stop_agent(ag_b)
    ra, rb = rcv_a.requests(), rcv_b.requests()

    def services(reqs):
        return {res.get("service.name") for res, _a, _p, _t in h.metric_points(reqs, "tcp.io")}

    assert "frontend" in services(ra) and "backend" not in services(ra), services(ra)
    assert "backend" in services(rb) and "frontend" not in services(rb), services(rb)
    check_io_exact(ra, [cli], None)
    for d, key in (("transmit", "bytes_sent"), ("receive", "bytes_received")):
        v = h.total(rb, "tcp.io", "backend", {"tcp.role": "server", "network.io.direction": d})
        assert v == server[key], (d, v, server)
    # Nothing else: every stream of either agent lives in its namespace.
    for reqs, ip_key, ip in ((ra, "server.address", link.ip_b), (rb, "client.address", link.ip_a)):
        for res, attrs, _p, _t in h.metric_points(reqs, "tcp.io"):
            assert attrs.get(ip_key) == ip and attrs.get("server.port") == port, (res, attrs)
    for reqs in (ra, rb):
        ign = h.total(reqs, "tcpotel.sockets.ignored")
        assert ign > 0, "the other namespace's sockets were not counted as ignored"


# ---- 7. the agent's own export traffic ---------------------------------------------


def test_own_export_traffic_never_appears():
    """An agent watching every namespace, exporting to 127.0.0.1:PORT: no tcp.* stream
    is on the agent's own resource (its pid) and no client stream dials the
    receiver's port, over several exports (each of which is traffic on that port).
    Other tcpotel processes on the machine (other test runs) are other processes:
    their traffic may be seen, so service.name tcpotel alone proves nothing."""
    a, b, link = hosts()
    rcv = h.Receiver()
    # Every namespace: whatever else runs on the machine is seen too. No spans, so the
    # receiver (which validates every span in Python) keeps up with a busy host.
    agent = start_agent([], spans={"enabled": False})
    h.run_workload(a, b, link, ["--conns", 2, "--exchanges", 2] + HOLD)
    wait_exports(rcv, 4, timeout=30)
    stop_agent(agent)
    reqs = rcv.requests()
    assert len(metrics_accepted(reqs)) >= 4
    names = ("tcp.io", "tcp.srtt", "tcp.connection.opened", "tcp.connection.active",
             "tcp.retransmits", "tcp.exchange.duration")
    seen_workload = False
    receiver_side = []
    for name in names:
        for res, attrs, _p, _t in h.metric_points(reqs, name):
            assert res.get("process.pid") != agent.pid, ("agent's own socket", name, res, attrs)
            assert attrs.get("network.peer.port") != rcv.port, ("export traffic", name, res,
                                                                 attrs)
            if attrs.get("tcp.role") == "client":
                assert attrs.get("server.port") != rcv.port, ("export traffic", name, attrs)
            if res.get("service.name") == "frontend":
                seen_workload = True
            if attrs.get("tcp.role") == "server" and attrs.get("server.port") == rcv.port:
                receiver_side.append((res.get("service.name"), res.get("process.pid")))
    assert seen_workload, "the workload was not seen: the agent watched nothing?"
    note("receiver side of the export connection observed as: %r", sorted(set(receiver_side)))


# ---- 8. short-lived processes ------------------------------------------------------


def test_short_lived_processes_keep_their_names():
    """Processes that live for one exchange (no --idle-ms hold) are still named by
    their own OTEL_SERVICE_NAME: the kernel announces a process at its first send
    or receive and wakes the drain, which reads /proc before the process exits."""
    a, b, link = hosts()
    rcv = h.Receiver()
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend")
    target = h.hostport(link.ip_b, port)
    agent = start_agent([a.path, b.path])
    names = ["short-%02d" % i for i in range(20)]
    for name in names:
        h.tcpload_client(a, target, ["--conns", 1, "--exchanges", 1], service=name)
    settle()
    h.tcpload_server_stop(srv)
    stop_agent(agent)
    seen = {k[0] for k in h.last_values(rcv.requests(), "tcp.io")}
    missing = [n for n in names if n not in seen]
    assert not missing, ("named after their executable instead", missing, sorted(seen))


# ---- 9. peer.service ----------------------------------------------------------------


def test_peer_service_names_local_peers():
    """When both ends of a connection are processes this agent sees, each end's
    streams carry peer.service = the other end's service.name; a peer the agent
    does not see (here: a namespace outside capture.netns) gets none."""
    a, b, link = hosts()
    rcv = h.Receiver()
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend")
    target = h.hostport(link.ip_b, port)
    agent = start_agent([a.path, b.path])
    h.tcpload_client(a, target, ["--conns", 3, "--exchanges", 5] + HOLD)
    settle()
    h.tcpload_server_stop(srv)
    stop_agent(agent)
    fe, be = io_streams(rcv.requests(), "frontend"), io_streams(rcv.requests(), "backend")
    assert fe and be, (fe, be)
    assert all(dict(attrs).get("peer.service") == "backend" for _pid, attrs in fe), fe
    assert all(dict(attrs).get("peer.service") == "frontend" for _pid, attrs in be), be

    # Only the client's namespace watched: its peer is not a process the agent sees.
    rcv2 = h.Receiver()
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend")
    agent = start_agent([a.path], receiver=rcv2, name="client-only")
    h.tcpload_client(a, h.hostport(link.ip_b, port), ["--conns", 2, "--exchanges", 2] + HOLD)
    settle()
    h.tcpload_server_stop(srv)
    stop_agent(agent)
    fe = io_streams(rcv2.requests(), "frontend")
    assert fe and all("peer.service" not in dict(attrs) for _pid, attrs in fe), fe


def test_per_service_instance_adds_up_processes():
    """metrics.per_process: false. Three frontend processes in one namespace, one after the
    other (each ends before the next starts): the agent exports one frontend resource, without
    process.pid, whose tcp.io is exactly the sum of all three, and which never goes down
    between exports although the processes come and go; spans keep their process's pid."""
    a, b, link = hosts()
    rcv = h.Receiver()
    agent = start_agent([a.path, b.path], metrics={"per_process": False})
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend")
    clients = []
    for size in ("1000", "20000", "300"):
        clients.append(h.tcpload_client(a, h.hostport(link.ip_b, port),
                                        ["--conns", 3, "--exchanges", 4, "--req-size", size,
                                         "--resp-size", 50] + HOLD, "frontend"))
        wait_exports(rcv, 1)
    settle()
    server = h.tcpload_server_stop(srv)
    stop_agent(agent)
    reqs = rcv.requests()

    check_io_exact(reqs, clients, server)
    pids = {res.get("process.pid") for res, _a, _p, _t in h.metric_points(reqs, "tcp.io")
            if res.get("service.name") in ("frontend", "backend")}
    assert pids == {None}, pids
    for res, _a, _p, _t in h.metric_points(reqs, "tcp.io"):
        assert "process.command_line" not in res, res
    series = snapshots(reqs, "tcp.io", "frontend",
                       {"tcp.role": "client", "network.io.direction": "transmit"})
    values = [v for _t, v in series]
    assert values == sorted(values) and values[-1] == sum_summaries(clients, "bytes_sent"), series
    span_pids = {s["resource"].get("process.pid") for s in h.spans(reqs)
                 if s["resource"].get("service.name") == "frontend"}
    assert len(span_pids) == 3 and None not in span_pids, span_pids
    note("frontend tx over three processes: %r", values)
