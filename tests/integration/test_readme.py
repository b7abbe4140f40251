# SPDX-License-Identifier: Apache-2.0
"""The README's metric table is the contract: it must match what the agent sends.

Runs the agent over a small workload between two namespaces and compares every
metric the receiver got (name, type, unit, point attribute keys) with the
README's table, both ways.
"""

import os
import re

import harness as h

README = os.path.join(h.ROOT, "README.md")
TYPES = {"monotonic sum": ("sum", True), "non-monotonic sum": ("sum", False),
         "histogram": ("histogram", None), "gauge": ("gauge", None)}


def readme_metrics():
    """{name: (kind, monotonic, unit)} from the README's metric table."""
    out = {}
    for line in open(README):
        m = re.match(r"^\| `([a-z0-9_.]+)` \| ([a-z -]+) \| `([^`]*)` \|", line)
        if m and m.group(2) in TYPES:
            kind, mono = TYPES[m.group(2)]
            out[m.group(1)] = (kind, mono, m.group(3))
    return out


def sent_metrics(requests):
    """{name: (kind, monotonic, unit)} and {name: set of point attribute keys}."""
    shapes, keys = {}, {}
    for r in requests:
        if r.get("path") != "/v1/metrics" or r.get("status") != 200:
            continue
        for rm in r["body"].get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    kind = next(k for k in ("sum", "gauge", "histogram") if k in m)
                    mono = m[kind].get("isMonotonic", False) if kind == "sum" else None
                    shapes[m["name"]] = (kind, mono, m.get("unit", ""))
                    for p in m[kind].get("dataPoints", []):
                        keys.setdefault(m["name"], set()).update(
                            a["key"] for a in p.get("attributes", []))
    return shapes, keys


def test_readme_metric_table_matches_what_is_sent():
    h.require_root()
    h.require_built(h.TCPLOAD)
    documented = readme_metrics()
    assert len(documented) >= 20, documented
    a, b, link = h.two_hosts()
    rcv = h.Receiver()
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend")
    # With the live map on: its tcpotel.map.* metrics exist only then.
    agent = h.Agent({"capture": {"netns": [a.path, b.path]},
                     "metrics": {"interval": "1s"},
                     "ui": {"listen": "127.0.0.1:%d" % h.free_port()}}).wait_ready()
    # Loss makes tcp.retransmits non-zero; exchanges fill tcp.exchange.duration.
    b.nft_drop_fraction("tcp dport %d" % port, 0.05)
    h.tcpload_client(a, h.hostport(link.ip_b, port),
                     ["--conns", 3, "--exchanges", 20, "--resp-size", "256KiB",
                      "--idle-ms", 300])
    h.tcpload_server_stop(srv)
    # A refused connection (nothing listens on the port now) fills tcp.connection.failed.
    cp = a.run(["python3", "-c", "import socket, sys\n"
                "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)\n"
                "except ConnectionRefusedError:\n sys.exit(0)\nsys.exit(1)",
                link.ip_b, port], check=False)
    assert cp.returncode == 0, cp
    assert agent.stop() == 0, agent.log()
    shapes, keys = sent_metrics(rcv.requests())

    undocumented = sorted(set(shapes) - set(documented))
    assert not undocumented, ("sent but not in the README's table", undocumented)
    never_sent = sorted(set(documented) - set(shapes))
    assert not never_sent, ("in the README's table but never sent", never_sent)
    for name, shape in shapes.items():
        assert shape == documented[name], (name, "sent", shape, "README", documented[name])
    # The stream attributes the README lists, on every tcp.* metric.
    base = {"tcp.role", "network.transport", "network.type", "server.port",
            "network.peer.address"}
    for name in ("tcp.io", "tcp.srtt", "tcp.connection.opened", "tcp.connection.active",
                 "tcp.retransmits", "tcp.exchange.duration"):
        assert base <= keys[name], (name, keys[name])
        assert {"server.address", "client.address"} <= keys[name], (name, keys[name])
    assert "network.io.direction" in keys["tcp.io"]
    assert base <= keys["tcp.connection.failed"], keys["tcp.connection.failed"]
    assert "error.type" in keys["tcp.connection.failed"], keys["tcp.connection.failed"]
    assert keys["tcpotel.export.sent"] == {"signal"}
    assert keys["tcpotel.map.dropped"] == {"reason"}


MATRIX = os.path.join(h.ROOT, "tests", "kernels", "matrix.conf")


def test_supported_kernels_table_is_the_matrix():
    """README's "Supported kernels" table lists exactly the kernels,
    architectures, back-ends, auto choices and CI additions of
    tests/kernels/matrix.conf, the matrix make test-kernels and CI run (an
    architecture not in backquotes is matrix.conf's "-", the machine's)."""
    want = []
    with open(MATRIX) as f:
        for line in f:
            words = line.split()
            if words and not words[0].startswith("#"):
                want.append((words[0], words[1], None if words[2] == "-" else words[2].split(","),
                             words[3], [] if words[4] == "-" else words[4].split(",")))
    with open(README) as f:
        text = f.read()
    section = text[text.index("## Supported kernels"):]
    section = section[:section.index("\n## ", 3)]
    got = []
    for m in re.finditer(r"^\| `([a-z0-9/._-]+)` \| ([^|]+) \| [^|]+ \| ([^|]+) \| `([a-z]+)` \| ([^|]+) \|$",
                         section, re.M):
        arch = re.fullmatch(r"`([a-z0-9]+)`", m.group(2).strip())
        backends = re.findall(r"`([a-z]+)`", m.group(3))
        got.append((m.group(1), arch.group(1) if arch else "-", backends or None, m.group(4),
                    re.findall(r"`([a-z]+)`", m.group(5))))
    assert got == want, ("README", got, "matrix.conf", want)
