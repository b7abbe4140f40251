# SPDX-License-Identifier: Apache-2.0
"""Security properties of the agent, as tests: TLS verification on by default,
header values never printed or logged, a warning for a readable file of secrets,
strings from /proc treated as untrusted input, the UI on loopback by default,
and no shell-outs in the sources.

TCPOTEL_VERBOSE=1 prints what was measured.
"""

import json
import os
import re
import socket
import stat
import sys
import time
import urllib.request

import harness as h

V4 = ("10.234.0.1/24", "10.234.0.2/24")
V6 = ("fd00:234::1/64", "fd00:234::2/64")
SECRET = "SECRET123"
ENV_SECRET = "SECRET456"

# An OTLP/HTTP stand-in behind TLS: logs each POST (path, headers) as a JSON line.
TLS_SERVER = r'''
import http.server, json, ssl, sys
cert, key, log = sys.argv[1], sys.argv[2], sys.argv[3]

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in
                                                               self.headers.items()}}) + "\n")
        body = b'{"partialSuccess":{}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
srv.serve_forever()
'''


note = h.note


free_port = h.free_port


def quiet_netns():
    """A namespace with nothing in it: the agent watches it only, so it sees no traffic."""
    h.require_root()
    return h.Netns("quiet")


def stop_agent(agent):
    assert agent.running(), "the agent died:\n" + agent.log()[-3000:]
    rc = agent.stop()
    assert rc == 0, "agent exited %s on SIGTERM\n%s" % (rc, agent.log()[-3000:])


def prom_value(text, name):
    """The first sample of `name` (with or without _total and labels) in Prometheus text."""
    m = re.search(r"^%s(?:_total)?(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


# ---- TLS --------------------------------------------------------------------------------


class TlsServer:
    def __init__(self):
        d = h.workdir()
        self.cert, self.key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        h.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
               "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
               "-keyout", self.key, "-out", self.cert])
        script = os.path.join(d, "tls_server.py")
        with open(script, "w") as f:
            f.write(TLS_SERVER)
        self.log_path = os.path.join(d, "tls-requests.jsonl")
        self.proc = h.Proc(["python3", script, self.cert, self.key, self.log_path],
                           name="tls-server")

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("TLS server exited\n" + self.proc.stderr_text())
            m = re.search(r"listening on (\S+):(\d+)", self.proc.stdout_text())
            return m and int(m.group(2))

        self.port = h.wait_for(listening, 10, 0.05, "TLS server to listen")
        self.endpoint = "https://127.0.0.1:%d" % self.port

    def requests(self):
        try:
            with open(self.log_path) as f:
                return [json.loads(ln) for ln in f if ln.endswith("\n")]
        except FileNotFoundError:
            return []


def tls_agent(ns, srv, tls, ui_port=None):
    cfg = {"capture": {"netns": [ns.path]}, "metrics": {"interval": "500ms"},
           "exporter": {"otlp": {"endpoint": srv.endpoint, "tls": tls}}}
    if ui_port:
        cfg["ui"] = {"listen": "127.0.0.1:%d" % ui_port}
    return h.Agent(cfg).wait_ready()


def test_tls_verification_on_by_default():
    """An https collector with a self-signed certificate: by default the agent
    refuses it (logs the certificate failure, counts tcpotel.export.failures, sends
    nothing); with tls.ca_file naming that certificate it exports; with
    insecure_skip_verify it exports and warns that nothing is checked."""
    ns = quiet_netns()
    srv = TlsServer()
    ui_port = free_port()

    agent = tls_agent(ns, srv, {}, ui_port)
    time.sleep(2.5)
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % ui_port, timeout=5) as r:
        prom = r.read().decode()
    failures = prom_value(prom, "tcpotel_export_failures")
    stop_agent(agent)
    log = agent.log()
    note("default TLS: %d requests reached the server; tcpotel_export_failures %s; log: %s",
         len(srv.requests()), failures,
         [ln for ln in log.splitlines() if "export to" in ln][:1])
    assert not srv.requests(), "the agent exported to an unverified collector"
    assert re.search(r"export to https://127\.0\.0\.1:%d/v1/metrics failed: .*certificate"
                     % srv.port, log, re.I), log[-2000:]
    assert failures and failures >= 2, ("tcpotel_export_failures", failures, prom[:2000])

    agent = tls_agent(ns, srv, {"ca_file": srv.cert})
    h.wait_for(lambda: srv.requests(), 10, 0.1, "an export trusted through tls.ca_file")
    stop_agent(agent)
    assert "failed" not in agent.log(), agent.log()[-2000:]
    n_ca = len(srv.requests())

    agent = tls_agent(ns, srv, {"insecure_skip_verify": True})
    h.wait_for(lambda: len(srv.requests()) > n_ca, 10, 0.1, "an export with verification off")
    stop_agent(agent)
    assert re.search(r"warn .*insecure_skip_verify", agent.log()), agent.log()[-2000:]
    assert "failed" not in agent.log(), agent.log()[-2000:]


# ---- header values ------------------------------------------------------------------------


def test_header_values_are_never_logged():
    """exporter.otlp.headers {authorization: Bearer SECRET123} at log.level debug, and
    OTEL_EXPORTER_OTLP_HEADERS x-api-key=SECRET456 in a second run: the collector gets
    the headers, and neither value appears anywhere in the agent's stderr or stdout,
    nor in --check-config's output; a header value with a line break is refused
    without being printed. A 0600 file of headers gets no warning."""
    ns = quiet_netns()
    rcv = h.Receiver()
    agent = h.Agent({"capture": {"netns": [ns.path]}, "metrics": {"interval": "500ms"},
                     "log": {"level": "debug"},
                     "exporter": {"otlp": {"headers": {"authorization": "Bearer " + SECRET}}}})
    agent.wait_ready()
    rcv.wait_for(lambda reqs: any(r.get("status") == 200 for r in reqs), 10, "an export")
    check = h.run([h.AGENT, "--check-config", "--config", agent.config_path])
    stop_agent(agent)
    got = [r["headers"].get("authorization") for r in rcv.requests()]
    assert got and all(v == "Bearer " + SECRET for v in got), got
    for what, text in (("stderr", agent.log()), ("stdout", agent.stdout()),
                       ("--check-config", check.stdout + check.stderr)):
        assert SECRET not in text, "the header value is in the agent's %s:\n%s" % (
            what, "\n".join(ln for ln in text.splitlines() if SECRET in ln))
    assert "readable by every user" not in agent.log(), agent.log()[-2000:]

    base = len(rcv.requests())
    agent = h.Agent({"capture": {"netns": [ns.path]}, "metrics": {"interval": "500ms"},
                     "log": {"level": "debug"}},
                    env={"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=" + ENV_SECRET})
    agent.wait_ready()
    rcv.wait_for(lambda reqs: any(r.get("status") == 200 for r in reqs[base:]), 10,
                 "an export")
    stop_agent(agent)
    got = [r["headers"].get("x-api-key") for r in rcv.requests()[base:]]
    assert got and all(v == ENV_SECRET for v in got), got
    assert ENV_SECRET not in agent.log() + agent.stdout(), "\n".join(
        ln for ln in agent.log().splitlines() if ENV_SECRET in ln)

    # A value that would inject a header line: refused, and the value not echoed.
    bad = h.Agent({"exporter": {"otlp": {"headers": {"x-bad": "SECRET789\r\nx-injected: 1"}}}},
                  start=False)
    cp = h.run([h.AGENT, "--check-config", "--config", bad.config_path], check=False)
    r = h.run([h.AGENT, "--config", bad.config_path], check=False, timeout=20)
    note("header with a line break: --check-config exit %d, run exit %d: %s", cp.returncode,
         r.returncode, (cp.stderr + r.stderr).strip().splitlines()[-1:])
    assert r.returncode != 0, "an agent started with a header value holding CR LF"
    for text in (cp.stdout, cp.stderr, r.stdout, r.stderr):
        assert "SECRET789" not in text, text


def test_world_readable_config_with_headers_warns():
    """A configuration file holding exporter.otlp.headers and readable by others
    (0644): the agent warns, naming the file and what to do, and still runs."""
    ns = quiet_netns()
    h.Receiver()
    agent = h.Agent({"capture": {"netns": [ns.path]},
                     "exporter": {"otlp": {"headers": {"authorization": "Bearer " + SECRET}}}},
                    start=False)
    os.chmod(agent.config_path, 0o644)
    assert os.stat(agent.config_path).st_mode & stat.S_IROTH
    agent.start().wait_ready()
    stop_agent(agent)
    line = [ln for ln in agent.log().splitlines() if "readable by every user" in ln]
    assert line and agent.config_path in line[0] and "warn" in line[0], agent.log()[-2000:]
    assert SECRET not in agent.log()


# ---- untrusted strings from /proc ---------------------------------------------------------


HOSTILE_CLIENT = r'''
import socket, struct, sys, time
# comm: invalid UTF-8, a quote, a closing parenthesis and a space (as /proc/PID/stat
# shows it between parentheses), and a line break.
with open("/proc/self/comm", "wb") as f:
    f.write(b'a) b\xff"\n')
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(struct.pack(">IIQQ", 0x5443504C, 0, 100, 100) + b"q" * 100)
got = 0
while got < 100:
    d = s.recv(100 - got)
    if not d:
        raise SystemExit("short response")
    got += len(d)
time.sleep(1.0)
s.close()
'''


def test_hostile_process_strings_are_bounded_and_valid():
    """A process whose OTEL_SERVICE_NAME is invalid UTF-8, a quote, a line break and
    10000 more bytes, whose comm and command line hold invalid UTF-8, control
    characters and quotes (service.command_line on): the receiver, which refuses
    invalid JSON and UTF-8, accepts every body; the process's resource has a
    service.name of at most 256 characters and a bounded command line."""
    h.require_root()
    h.require_built(h.TCPLOAD)
    a, b, link = h.two_hosts(V4, V6)
    rcv = h.Receiver()
    agent = h.Agent({"capture": {"netns": [a.path, b.path]}, "metrics": {"interval": "1s"},
                     "service": {"command_line": True}, "log": {"level": "debug"}})
    agent.wait_ready()
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend")
    script = os.path.join(h.workdir(), "hostile.py")
    with open(script, "w") as f:
        f.write(HOSTILE_CLIENT)
    # Bytes that are not UTF-8 travel through str with surrogateescape (os.fsencode).
    weird = os.fsdecode(b'\xff\xfe"\n')
    env = {"OTEL_SERVICE_NAME": weird + "x" * 10000}
    argv = ["python3", script, link.ip_b, port, os.fsdecode(b'\xc3\x28 "q\\\x01\x7f\t'),
            "y" * 6000]
    p = a.popen(argv, env=env, name="hostile")
    # The same without OTEL_SERVICE_NAME: named after its executable, not its comm.
    plain_env = {k: v for k, v in os.environ.items() if k != "OTEL_SERVICE_NAME"}
    q = h.Proc(a.argv(["env", "-u", "OTEL_SERVICE_NAME"] + argv), env=plain_env, name="hostile2")
    assert p.wait(20) == 0, p.stderr_text()
    assert q.wait(20) == 0, q.stderr_text()
    time.sleep(0.3)
    h.tcpload_server_stop(srv)
    base = len(rcv.requests())
    rcv.wait_for(lambda reqs: sum(1 for r in reqs[base:] if r.get("status") == 200) >= 2, 10,
                 "two more exports")
    stop_agent(agent)
    reqs = rcv.requests()
    refused = [(r["path"], r.get("status"), r.get("message")) for r in reqs
               if r.get("status") != 200]
    assert not refused, "the receiver refused bodies: %r" % refused[:3]
    mine = [res for res, _a, _p, _t in h.metric_points(reqs, "tcp.io")
            if res.get("process.pid") == p.pid]
    assert mine, "no tcp.io stream of the hostile process (pid %d)" % p.pid
    res = mine[-1]
    name, cmd = res.get("service.name", ""), res.get("process.command_line", "")
    note("hostile process: service.name %d chars (%r...), process.command_line %d chars, "
         "process.executable.name %r", len(name), name[:12], len(cmd),
         res.get("process.executable.name"))
    assert 0 < len(name) <= 256, (len(name), name[:40])
    assert "x" * 100 in name, ("not named after its OTEL_SERVICE_NAME", name[:40])
    assert "yyyy" in cmd and len(cmd) <= 4096 + 16, (len(cmd), cmd[:60])
    plain = [res for res, _a, _p, _t in h.metric_points(reqs, "tcp.io")
             if res.get("process.pid") == q.pid]
    assert plain, "no tcp.io stream of the second process (pid %d)" % q.pid
    exe = plain[-1].get("process.executable.name", "")
    assert exe.startswith("python3") and plain[-1].get("service.name") == exe, plain[-1]
    # Spans of that exchange: one resource per side, both valid.
    sp = [s for s in h.spans(reqs) if s["resource"].get("process.pid") == p.pid]
    assert sp and all(len(s["resource"].get("service.name", "")) <= 256 for s in sp), sp[:1]


# ---- defaults and sources -------------------------------------------------------------------


def test_ui_listens_on_loopback_by_default():
    """With no ui section, the effective configuration binds the UI to 127.0.0.1:9464."""
    h.require_built(h.AGENT, "tcpotel")
    path = os.path.join(h.workdir(), "empty.yaml")
    with open(path, "w") as f:
        f.write("{}\n")
    out = h.run([h.AGENT, "--check-config", "--config", path]).stdout
    m = re.search(r"^ui:\n(?:[ \t].*\n)*?[ \t]+listen: \"?([^\"\s#]*)\"?", out, re.M)
    assert m, out
    assert m.group(1) == "127.0.0.1:9464", m.group(1)


def test_no_shell_outs_in_the_sources():
    """No system(), popen(), exec*() in src/*.c: the agent never runs another program."""
    src = os.path.join(h.ROOT, "src")
    hits = []
    for fname in sorted(os.listdir(src)):
        if not fname.endswith(".c"):
            continue
        with open(os.path.join(src, fname), errors="replace") as f:
            for i, line in enumerate(f, 1):
                if re.search(r"system\(|popen\(|execv|execl", line):
                    hits.append("src/%s:%d: %s" % (fname, i, line.strip()))
    assert not hits, "\n".join(hits)
