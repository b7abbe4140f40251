# SPDX-License-Identifier: Apache-2.0
"""Integration-test harness for tcpotel (Python standard library only).

What a test gets from here:

- network namespaces joined by veth pairs, with nftables rules inside them
  (random drops, DNAT of a virtual address), so real kernel TCP runs between
  "hosts" without touching the machine's own interfaces;
- processes started in those namespaces (the tcpload workload above all),
  each with its output in files and stopped at the end whatever happens;
- the OTLP receiver (tests/receiver/otlp_receiver.py) and the agent
  (.output/tcpotel) as objects;
- parsers that turn the receiver's log into results: metric points, last
  cumulative values, spans, and service-graph edges paired the way the
  Collector's servicegraph connector pairs them.

Everything a test creates is put in a registry; the runner calls cleanup()
after each test (pass or fail) and atexit does too, so namespaces and
processes never outlive the run. Names carry the runner's pid so that runs in
parallel never collide. Only addresses inside these namespaces and loopback
are ever used.

Times from the parsers are integers in nanoseconds since the epoch, exactly
as the OTLP body gives them.
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.path.join(ROOT, ".output", "tcpotel")
TCPLOAD = os.path.join(ROOT, ".output", "tcpload")
RECEIVER = os.environ.get("TCPOTEL_RECEIVER") or os.path.join(ROOT, "tests", "receiver",
                                                              "otlp_receiver.py")

NS_PREFIX = "tcpo"
SPAN_KIND_INTERNAL = 1
SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
SPAN_KIND_PRODUCER = 4
SPAN_KIND_CONSUMER = 5


def note(fmt, *args):
    """A measured figure, printed when TCPOTEL_VERBOSE is set."""
    if os.environ.get("TCPOTEL_VERBOSE"):
        sys.stderr.write("    # " + (fmt % args if args else fmt) + "\n")
        sys.stderr.flush()


def free_port():
    """A loopback TCP port nothing listens on now (for a collector started later)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Skip(Exception):
    """Raised by a test that cannot run here; the runner reports SKIP with the reason."""


def require_root():
    if os.geteuid() != 0:
        raise Skip("needs root (real kernel, BPF, network namespaces)")


def require_built(path, what=None):
    """A missing build product is a failure, not a skip: `make` builds it."""
    if not os.access(path, os.X_OK):
        raise AssertionError("%s not built (%s): run `make`"
                             % (what or os.path.basename(path), path))


# ---- registry of what a test created -----------------------------------------

_seq = 0
_state = None


def _new_state():
    return {"procs": [], "netns": [], "dirs": [], "receivers": [], "workdir": None, "keep": False}


def reset():
    """Fresh state for the next test (the runner calls this before each one)."""
    global _state
    _state = _new_state()


def _st():
    global _state
    if _state is None:
        reset()
    return _state


def _next_id():
    global _seq
    _seq += 1
    return _seq


def workdir():
    """This test's scratch directory (removed at cleanup unless keep_workdir())."""
    st = _st()
    if st["workdir"] is None:
        st["workdir"] = tempfile.mkdtemp(prefix="tcpotel-it-")
        st["dirs"].append(st["workdir"])
    return st["workdir"]


def keep_workdir():
    """Keep the scratch directory after cleanup (the runner asks for it when a test fails)."""
    st = _st()
    st["keep"] = True
    return st["workdir"]


def failure_context(tail_lines=25):
    """The stderr tails of the processes this test started, for a failure report."""
    out = []
    for p in _st()["procs"]:
        text = p.stderr_text().rstrip()
        if not text:
            continue
        lines = text.splitlines()[-tail_lines:]
        out.append("--- %s (pid %s) stderr, last %d lines:" % (p.name, p.pid, len(lines)))
        out.extend("    " + ln for ln in lines)
    return "\n".join(out)


def cleanup():
    """Stops every process and deletes every namespace this test created. Never raises."""
    st = _st()
    for p in reversed(st["procs"]):
        try:
            p.kill_group()
        except Exception:
            pass
    for ns in reversed(st["netns"]):
        try:
            ns.delete()
        except Exception:
            pass
    if not st["keep"]:
        for d in st["dirs"]:
            shutil.rmtree(d, ignore_errors=True)
    reset()


def cleanup_stale():
    """Deletes namespaces left by earlier runs whose runner process is gone."""
    for name in list_netns():
        m = re.match(r"^%s-.*-(\d+)-\d+$" % NS_PREFIX, name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists("/proc/%d" % pid):
            continue
        _delete_netns(name)


atexit.register(cleanup)


# ---- processes -----------------------------------------------------------------


def _tail(text, n=30):
    return "\n".join(text.rstrip().splitlines()[-n:])


class Proc:
    """A child process with stdout and stderr in files (no pipes to fill up).

    Started in its own session, so cleanup can end it and anything it forked.
    """

    def __init__(self, argv, env=None, name=None, cwd=None, stdin=None):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        d = workdir()
        n = _next_id()
        self.stdout_path = os.path.join(d, "%s-%d.out" % (self.name, n))
        self.stderr_path = os.path.join(d, "%s-%d.err" % (self.name, n))
        full_env = dict(os.environ)
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        with open(self.stdout_path, "wb") as so, open(self.stderr_path, "wb") as se:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=so,
                stderr=se,
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                env=full_env,
                cwd=cwd or ROOT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        _st()["procs"].append(self)

    def poll(self):
        return self.popen.poll()

    def running(self):
        return self.popen.poll() is None

    def wait(self, timeout=30):
        """Waits for exit; AssertionError (with its stderr) if it does not end in time."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "%s did not exit within %ss\n%s" % (self.name, timeout, _tail(self.stderr_text()))
            ) from None

    def signal(self, sig):
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self, timeout=20):
        """SIGTERM, then wait; returns the exit status (SIGKILL and AssertionError on a hang)."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group(grace=0)
            raise AssertionError(
                "%s did not exit within %ss of SIGTERM\n%s"
                % (self.name, timeout, _tail(self.stderr_text()))
            ) from None

    def kill_group(self, grace=3):
        """Ends the process and its session (cleanup path): TERM, grace seconds, KILL."""
        if self.popen.poll() is None and grace > 0:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def stdout_text(self):
        try:
            with open(self.stdout_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stderr_text(self):
        try:
            with open(self.stderr_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def json(self):
        """The last line of stdout that parses as a JSON object."""
        for line in reversed(self.stdout_text().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
        raise AssertionError(
            "%s printed no JSON line; stdout: %r\nstderr: %s"
            % (self.name, _tail(self.stdout_text(), 5), _tail(self.stderr_text()))
        )


def run(argv, check=True, timeout=60, env=None, input=None):
    """Runs a command to completion in the root namespace; returns CompletedProcess (text)."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update({k: str(v) for k, v in env.items()})
    try:
        cp = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            input=input,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("command timed out after %ss: %s"
                             % (timeout, " ".join(map(str, argv)))) from None
    if check and cp.returncode != 0:
        raise AssertionError(
            "command failed (exit %d): %s\n%s%s"
            % (cp.returncode, " ".join(map(str, argv)), cp.stdout[-2000:], cp.stderr[-2000:])
        )
    return cp


def wait_for(fn, timeout=10.0, interval=0.1, what="condition"):
    """Polls fn() until it returns something truthy, and returns it; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---- network namespaces ------------------------------------------------------


def list_netns():
    cp = run(["ip", "netns", "list"], check=False)
    return [ln.split()[0] for ln in cp.stdout.splitlines() if ln.strip()]


def _delete_netns(name):
    # Anything still running inside would keep the namespace alive.
    cp = run(["ip", "netns", "pids", name], check=False)
    for tok in cp.stdout.split():
        try:
            os.kill(int(tok), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    run(["ip", "netns", "delete", name], check=False)


class Netns:
    """A named network namespace with loopback up; deleted at cleanup."""

    def __init__(self, base="ns"):
        self.name = "%s-%s-%d-%d" % (NS_PREFIX, base, os.getpid(), _next_id())
        run(["ip", "netns", "add", self.name])
        _st()["netns"].append(self)
        self.deleted = False
        self.run(["ip", "link", "set", "lo", "up"])
        # No duplicate-address detection on interfaces made later: with a
        # tentative link-local address the first IPv6 SYN waits out a 1 s RTO.
        self.run(["sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
                  "net.ipv6.conf.default.accept_dad=0"], check=False)
        self.ifaces = []
        self._nft_tables = set()

    def __repr__(self):
        return "Netns(%s)" % self.name

    @property
    def path(self):
        return "/run/netns/" + self.name

    @property
    def inode(self):
        return os.stat(self.path).st_ino

    def delete(self):
        if not self.deleted:
            _delete_netns(self.name)
            self.deleted = True

    def argv(self, argv):
        return ["ip", "netns", "exec", self.name] + [str(a) for a in argv]

    def run(self, argv, check=True, timeout=60, env=None, input=None):
        return run(self.argv(argv), check=check, timeout=timeout, env=env, input=input)

    def sh(self, script, check=True, timeout=60):
        return self.run(["sh", "-c", script], check=check, timeout=timeout)

    def popen(self, argv, env=None, name=None):
        return Proc(self.argv(argv), env=env, name=name or os.path.basename(str(argv[0])))

    # -- counters --

    def nstat(self, *names):
        """Absolute SNMP counters of this namespace: nstat('TcpRetransSegs') -> {name: int}."""
        cp = self.run(["nstat", "-azs", "--json"] + list(names))
        data = json.loads(cp.stdout)
        # nstat --json: {"kernel": {"Name": value, ...}}
        counters = data.get("kernel", data)
        return {k: int(v) for k, v in counters.items()}

    def retrans_segs(self):
        """TcpRetransSegs of this namespace, read from /proc/net/snmp."""
        text = self.run(["cat", "/proc/net/snmp"]).stdout
        lines = [ln.split() for ln in text.splitlines() if ln.startswith("Tcp:")]
        if len(lines) < 2:
            raise AssertionError("no Tcp lines in /proc/net/snmp")
        return int(dict(zip(lines[0][1:], lines[1][1:]))["RetransSegs"])

    # -- nftables --

    def nft(self, script):
        """Loads an nft script (`nft -f -`) in this namespace."""
        self.run(["nft", "-f", "-"], input=script)

    def nft_drop_fraction(self, proto_port, fraction, hook="input", table="tcpo_drop"):
        """Drops a random fraction of matching packets on `hook` (input or output).

        proto_port: an nft match such as "tcp dport 9000", or a port number
        (then "tcp dport PORT"). fraction in [0, 1], with 1/10000 resolution.
        """
        if isinstance(proto_port, int):
            proto_port = "tcp dport %d" % proto_port
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be within [0, 1]")
        threshold = int(round(fraction * 10000))
        chain = hook
        if (table, chain) not in self._nft_tables:
            self.nft(
                "add table inet %s\n"
                "add chain inet %s %s { type filter hook %s priority 0; policy accept; }\n"
                % (table, table, chain, hook)
            )
            self._nft_tables.add((table, chain))
        self.nft(
            "add rule inet %s %s %s numgen random mod 10000 < %d counter drop\n"
            % (table, chain, proto_port, threshold)
        )

    def nft_dnat(self, virtual_ip, virtual_port, real_ip, real_port, add_route=True):
        """Rewrites locally generated connections to virtual_ip:virtual_port to real_ip:real_port.

        Like kube-proxy for a Service address: a nat chain on the output hook.
        The virtual address needs a route for the first lookup; with
        add_route it gets a host route through the device that reaches
        real_ip, when it has none.
        """
        v6 = ":" in virtual_ip
        fam = "ip6" if v6 else "ip"
        table = "tcpo_nat6" if v6 else "tcpo_nat"
        if (table, "output") not in self._nft_tables:
            self.nft(
                "add table %s %s\n"
                "add chain %s %s output { type nat hook output priority -100; policy accept; }\n"
                % (fam, table, fam, table)
            )
            self._nft_tables.add((table, "output"))
        to = ("[%s]:%d" % (real_ip, real_port)) if v6 else ("%s:%d" % (real_ip, real_port))
        self.nft(
            "add rule %s %s output %s daddr %s tcp dport %d counter dnat to %s\n"
            % (fam, table, fam, virtual_ip, virtual_port, to)
        )
        if add_route:
            fflag = "-6" if v6 else "-4"
            if self.run(["ip", fflag, "route", "get", virtual_ip], check=False).returncode != 0:
                out = self.run(["ip", fflag, "route", "get", real_ip]).stdout
                m = re.search(r"\bdev (\S+)", out)
                if not m:
                    raise AssertionError("no route to %s in %s" % (real_ip, self.name))
                plen = "/128" if v6 else "/32"
                self.run(["ip", fflag, "route", "add", virtual_ip + plen, "dev", m.group(1)])

    def nft_counters(self):
        """The ruleset as text (counters included), for assertions and failure reports."""
        return self.run(["nft", "list", "ruleset"]).stdout


class VethPair:
    def __init__(self, ns_a, ns_b, if_a, if_b, addrs_a, addrs_b):
        self.ns_a, self.ns_b = ns_a, ns_b
        self.if_a, self.if_b = if_a, if_b
        self.addrs_a, self.addrs_b = addrs_a, addrs_b

    def __repr__(self):
        return "VethPair(%s:%s %s <-> %s:%s %s)" % (
            self.ns_a.name, self.if_a, self.addrs_a, self.ns_b.name, self.if_b, self.addrs_b)

    @property
    def ip_a(self):
        return self.addrs_a[0].split("/")[0]

    @property
    def ip_b(self):
        return self.addrs_b[0].split("/")[0]

    @property
    def ip6_a(self):
        return self.addrs_a[1].split("/")[0] if len(self.addrs_a) > 1 else None

    @property
    def ip6_b(self):
        return self.addrs_b[1].split("/")[0] if len(self.addrs_b) > 1 else None


def veth_pair(ns_a, ns_b, addr_a="10.231.0.1/24", addr_b="10.231.0.2/24", v6=None, mtu=None,
              static_neigh=True):
    """Joins two namespaces with a veth pair, addresses up and usable at once.

    v6: optional (addr_a6, addr_b6), e.g. ("fd00:231::1/64", "fd00:231::2/64");
    added with nodad so they need no duplicate-address wait. Both ends are
    created directly inside their namespaces: nothing appears in the root one.
    static_neigh: permanent ARP/NDP entries for the peer addresses, so the
    first packets never wait on neighbor discovery.
    """
    n = _next_id()
    if_a, if_b = "tv%da" % n, "tv%db" % n
    run(["ip", "link", "add", if_a, "netns", ns_a.name, "type", "veth",
         "peer", "name", if_b, "netns", ns_b.name])
    addrs_a, addrs_b = [addr_a], [addr_b]
    if v6:
        addrs_a.append(v6[0])
        addrs_b.append(v6[1])
    for ns, ifname, addrs in ((ns_a, if_a, addrs_a), (ns_b, if_b, addrs_b)):
        for a in addrs:
            argv = ["ip", "addr", "add", a, "dev", ifname]
            if ":" in a:
                argv.append("nodad")
            ns.run(argv)
        if mtu:
            ns.run(["ip", "link", "set", ifname, "mtu", str(mtu)])
        ns.run(["ip", "link", "set", ifname, "up"])
        ns.ifaces.append(ifname)
    if static_neigh:
        # Right after the link comes up the first IPv6 neighbor solicitation
        # is lost, and the first connection waits 1 s for the retry: tell
        # each side its peer's MAC instead.
        mac_a = json.loads(ns_a.run(["ip", "-j", "link", "show", if_a]).stdout)[0]["address"]
        mac_b = json.loads(ns_b.run(["ip", "-j", "link", "show", if_b]).stdout)[0]["address"]
        for ns, ifname, mac, addrs in ((ns_a, if_a, mac_b, addrs_b), (ns_b, if_b, mac_a, addrs_a)):
            for a in addrs:
                ns.run(["ip", "neigh", "replace", a.split("/")[0], "lladdr", mac, "dev", ifname,
                        "nud", "permanent"])
    return VethPair(ns_a, ns_b, if_a, if_b, addrs_a, addrs_b)


def two_hosts(v4=("10.231.0.1/24", "10.231.0.2/24"), v6=("fd00:231::1/64", "fd00:231::2/64")):
    """The usual topology: a client "host" a and a server "host" b joined by one veth
    pair, with IPv4 and IPv6 addresses. Returns (a, b, link); needs root."""
    require_root()
    a, b = Netns("cli"), Netns("srv")
    return a, b, veth_pair(a, b, v4[0], v4[1], v6=v6)


# ---- tcpload -------------------------------------------------------------------


def hostport(ip, port):
    return ("[%s]:%d" % (ip, port)) if ":" in ip else ("%s:%d" % (ip, port))


def wait_ready_port(proc, ready, what, timeout=10):
    """The port a server wrote to its --ready-file; AssertionError if it exits first."""

    def port():
        if proc.poll() is not None:
            raise AssertionError("%s exited (%s)\n%s" % (what, proc.poll(), proc.stderr_text()))
        try:
            with open(ready) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    return wait_for(port, timeout, 0.02, what + " to listen")


def tcpload_server(ns, listen="0.0.0.0:0", service="backend", args=(), timeout=10):
    """Starts `tcpload server` (in ns, or the root namespace when ns is None) and waits
    until it listens. Returns (proc, port). Stop it with tcpload_server_stop(proc)."""
    require_built(TCPLOAD)
    ready = os.path.join(workdir(), "tcpload-ready-%d" % _next_id())
    argv = ["env", "OTEL_SERVICE_NAME=%s" % service, TCPLOAD, "server", "--listen", listen,
            "--ready-file", ready] + list(args)
    proc = ns.popen(argv, name="tcpload-server") if ns else Proc(argv, name="tcpload-server")

    return proc, wait_ready_port(proc, ready, "tcpload server", timeout)


def tcpload_server_stop(proc, timeout=20):
    """SIGTERM the server; returns its JSON summary (and checks it exited 0)."""
    rc = proc.terminate(timeout)
    if rc != 0:
        raise AssertionError("tcpload server exited %s\n%s" % (rc, proc.stderr_text()))
    return proc.json()


def tcpload_client(ns, connect, args=(), service="frontend", timeout=60, check=True):
    """Runs `tcpload client` to completion; returns its JSON summary.

    With check, a non-zero exit is an AssertionError; without, the summary
    gets "exit" and "stderr" keys.
    """
    require_built(TCPLOAD)
    argv = ["env", "OTEL_SERVICE_NAME=%s" % service, TCPLOAD, "client", "--connect", connect]
    argv += [str(a) for a in args]
    proc = ns.popen(argv, name="tcpload-client") if ns else Proc(argv, name="tcpload-client")
    rc = proc.wait(timeout)
    if check and rc != 0:
        raise AssertionError("tcpload client exited %s\n%s" % (rc, _tail(proc.stderr_text())))
    summary = proc.json()
    if not check:
        summary["exit"] = rc
        summary["stderr"] = proc.stderr_text()
    return summary


def run_workload(a, b, link, client_args=(), v6=False, server_args=(), client_service="frontend",
                 server_service="backend", timeout=60):
    """One tcpload run from a to b over link: starts the server in b, runs the client in a
    to completion, stops the server. Returns (client summary, server summary, port)."""
    srv, port = tcpload_server(b, "[::]:0" if v6 else "0.0.0.0:0", server_service, server_args)
    ip = link.ip6_b if v6 else link.ip_b
    cli = tcpload_client(a, hostport(ip, port), client_args, client_service, timeout)
    return cli, tcpload_server_stop(srv), port


def parse_size(spec):
    """The sizes of a tcpload SPEC ("64", "10KiB", "1,100,10MiB"), as a list of ints."""
    units = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1024, "m": 1 << 20, "mib": 1 << 20,
             "mb": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "gb": 1 << 30}
    out = []
    for tok in str(spec).split(","):
        m = re.match(r"^(\d+)([A-Za-z]*)$", tok.strip())
        if not m or m.group(2).lower() not in units:
            raise ValueError("bad size %r" % tok)
        out.append(int(m.group(1)) * units[m.group(2).lower()])
    return out


TCPLOAD_HEADER = 24


def tcpload_expected(conns, exchanges, req_spec, resp_spec, short=False):
    """Exact byte totals of a count-mode tcpload run: (client bytes_sent, client bytes_received).

    Connection i's exchange j uses size index (i * E + j) of each cycled list
    (E = 1 with short); every request carries a 24-byte header."""
    req, resp = parse_size(req_spec), parse_size(resp_spec)
    e = 1 if short else exchanges
    sent = rcvd = 0
    for s in range(conns * e):
        sent += TCPLOAD_HEADER + req[s % len(req)]
        rcvd += resp[s % len(resp)]
    return sent, rcvd


# ---- receiver ----------------------------------------------------------------


class Receiver:
    """The Collector-shaped OTLP/HTTP JSON receiver on 127.0.0.1: on an OS-chosen port,
    or on `port` chosen beforehand (an agent may point at it before it listens),
    with extra command-line options `args`."""

    def __init__(self, timeout=10, port=0, args=()):
        if not os.path.exists(RECEIVER):
            raise AssertionError("receiver missing: " + RECEIVER)
        self.log_path = os.path.join(workdir(), "receiver-%d.jsonl" % _next_id())
        self.proc = Proc(["python3", RECEIVER, "--listen", "127.0.0.1:%d" % port, "--log",
                          self.log_path, "--control"] + [str(a) for a in args], name="receiver")

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("receiver exited (%s)\n%s"
                                     % (self.proc.poll(), self.proc.stderr_text()))
            m = re.search(r"listening on (\S+):(\d+)", self.proc.stdout_text())
            return m and (m.group(1), int(m.group(2)))

        self.host, self.port = wait_for(listening, timeout, 0.05, "receiver to listen")
        assert not port or self.port == port, (self.port, port)
        self.endpoint = "http://%s:%d" % (self.host, self.port)
        _st()["receivers"].append(self)

    def set_mode(self, mode="ok", retry_after=None, delay=None, count=None, **params):
        """mode: ok | unavailable | slow (| throttle | reject | partial); count: how many
        export requests it applies to (then back to ok). Other receiver controls
        (rejected=N, reset_streams=1) pass through. Returns the receiver's answer,
        parsed when it is JSON."""
        q = {"mode": mode}
        for k, v in (("retry_after", retry_after), ("delay", delay), ("count", count)):
            if v is not None:
                q[k] = v
        q.update(params)
        url = "%s/control?%s" % (self.endpoint, urllib.parse.urlencode(q))
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode(errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            return text

    def requests(self):
        """Every logged request, in arrival order (a half-written last line is left out)."""
        out = []
        try:
            with open(self.log_path, "r", errors="replace") as f:
                for line in f:
                    if not line.endswith("\n"):
                        break
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        except FileNotFoundError:
            pass
        return out

    def wait_for(self, fn, timeout=30, what="receiver data"):
        """Polls fn(requests) until truthy; returns its value."""
        return wait_for(lambda: fn(self.requests()), timeout, 0.2, what)

    def stop(self):
        if self.proc.running():
            self.proc.terminate(10)


# ---- agent -------------------------------------------------------------------


_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./@+-]*$|^[A-Za-z][A-Za-z0-9+.-]*://[^\s#,\[\]{}]*$"
                    r"|^\d+(ms|s|m|h|us|ns)$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _yaml_scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _YAML_WORDS:
        return s
    # A YAML double-quoted scalar accepts JSON's escapes.
    return json.dumps(s)


def to_yaml(obj, indent=0):
    """Block-style YAML for nested dicts/lists of strings, numbers, bools and None."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = _yaml_scalar(str(k))
            if isinstance(v, dict) and v:
                lines.append("%s%s:" % (pad, key))
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, list) and v:
                lines.append("%s%s:" % (pad, key))
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                lines.append("%s%s: {}" % (pad, key))
            elif isinstance(v, list):
                lines.append("%s%s: []" % (pad, key))
            else:
                lines.append("%s%s: %s" % (pad, key, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                inner = to_yaml(v, indent + 2).splitlines()
                lines.append("%s- %s" % (pad, inner[0].lstrip()))
                lines.extend(inner[1:])
            elif isinstance(v, list) and v:
                lines.append("%s-" % pad)
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                lines.append("%s- {}" % pad)
            elif isinstance(v, list):
                lines.append("%s- []" % pad)
            else:
                lines.append("%s- %s" % (pad, _yaml_scalar(v)))
    else:
        lines.append(pad + _yaml_scalar(obj))
    return "\n".join(lines)


def _merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


class Agent:
    """The agent (.output/tcpotel) in the root namespace, with a config written for the test.

    config: nested dict merged over {exporter.otlp.endpoint: the receiver's,
    ui.listen: ""}. receiver: a Receiver (default: the last one this test
    started). binary: another executable to run instead (tests of the harness).
    """

    def __init__(self, config=None, env=None, name="a", receiver=None, binary=None, args=(),
                 start=True):
        self.name = name
        self.binary = binary or AGENT
        require_built(self.binary, "tcpotel")
        base = {"ui": {"listen": ""}}
        if receiver is None:
            rs = _st()["receivers"]
            receiver = rs[-1] if rs else None
        if receiver is not None:
            base["exporter"] = {"otlp": {"endpoint": receiver.endpoint}}
        self.config = _merge(base, config or {})
        self.config_path = os.path.join(workdir(), "agent-%s-%d.yaml" % (name, _next_id()))
        # 0600: the file may hold header values, and the agent warns about readable secrets.
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(to_yaml(self.config) + "\n")
        self.env = env
        self.args = list(args)
        self.proc = None
        if start:
            self.start()

    def start(self):
        self.proc = Proc([self.binary, "--config", self.config_path] + self.args, env=self.env,
                         name="tcpotel-" + self.name)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return self.proc.stderr_text() if self.proc else ""

    def stdout(self):
        return self.proc.stdout_text() if self.proc else ""

    def wait_ready(self, timeout=30):
        """Waits for the " running" log line; AssertionError with the log tail if it exits first."""

        def ready():
            if any(" running" in ln for ln in self.log().splitlines()):
                return True
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("agent %s exited (status %s) before running:\n%s"
                                     % (self.name, rc, _tail(self.log())))
            return False

        try:
            wait_for(ready, timeout, 0.05, "agent %s to run" % self.name)
        except AssertionError as e:
            if "timed out" in str(e):
                raise AssertionError("%s\n%s" % (e, _tail(self.log()))) from None
            raise
        return self

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit status (AssertionError if it hangs)."""
        return self.proc.terminate(timeout)

    def running(self):
        return self.proc is not None and self.proc.running()


# ---- parsing the receiver's log ------------------------------------------------


def _any_value(v):
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return tuple(_any_value(x) for x in v["arrayValue"].get("values", []))
    if "kvlistValue" in v:
        return attrs_dict(v["kvlistValue"].get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attrs_dict(attrs):
    """OTLP [{key, value: {stringValue|intValue|...}}] -> {key: python value}."""
    return {a["key"]: _any_value(a.get("value", {})) for a in (attrs or [])}


def _accepted(requests, path):
    for r in requests:
        if r.get("path") == path and 200 <= int(r.get("status", 0)) < 300 and r.get("body"):
            yield r["body"]


def _ns(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def metric_points(requests, name):
    """Every data point of metric `name` in accepted /v1/metrics bodies, in arrival order:
    a list of (resource attrs, point attrs, point dict, timeUnixNano as int)."""
    out = []
    for body in _accepted(requests, "/v1/metrics"):
        for rm in body.get("resourceMetrics", []):
            res = attrs_dict(rm.get("resource", {}).get("attributes"))
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    if m.get("name") != name:
                        continue
                    for kind in ("sum", "gauge", "histogram", "exponentialHistogram", "summary"):
                        if kind in m:
                            for p in m[kind].get("dataPoints", []):
                                out.append((res, attrs_dict(p.get("attributes")), p,
                                            _ns(p.get("timeUnixNano"))))
    return out


def point_value(p):
    """asInt -> int, asDouble -> float, histogram -> count (int)."""
    if "asInt" in p:
        return int(p["asInt"])
    if "asDouble" in p:
        return float(p["asDouble"])
    if "count" in p:
        return int(p["count"])
    if "bucketCounts" in p:
        return sum(int(c) for c in p["bucketCounts"])
    return 0


def _freeze(d):
    return frozenset((k, v if not isinstance(v, dict) else _freeze(v)) for k, v in d.items())


def last_values(requests, name):
    """{(service.name, frozenset(point attrs)): last cumulative value} for metric `name`.

    The last value is taken per stream (whole resource + point attributes;
    latest timeUnixNano, then latest arrival), and streams of processes that
    share a service name are added up."""
    last = {}
    for order, (res, attrs, p, t) in enumerate(metric_points(requests, name)):
        key = (_freeze(res), _freeze(attrs))
        prev = last.get(key)
        if prev is None or (t, order) >= (prev[0], prev[1]):
            last[key] = (t, order, res.get("service.name"), attrs, point_value(p))
    out = {}
    for _t, _o, svc, attrs, v in last.values():
        k = (svc, _freeze(attrs))
        out[k] = out.get(k, 0) + v
    return out


def total(requests, name, service=None, where=None):
    """Sum of last values of `name` over streams of `service` (None: all) whose
    point attributes include every item of `where`."""
    s = 0
    for (svc, attrs), v in last_values(requests, name).items():
        if service is not None and svc != service:
            continue
        a = dict(attrs)
        if where and any(a.get(k) != v2 for k, v2 in where.items()):
            continue
        s += v
    return s


_KINDS = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
          "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _enum(v, table):
    if isinstance(v, str) and not v.isdigit():
        return table.get(v, -1)
    return int(v or 0)


def spans(requests):
    """Every span of accepted /v1/traces bodies, in arrival order, as flat dicts."""
    out = []
    for body in _accepted(requests, "/v1/traces"):
        for rs in body.get("resourceSpans", []):
            res = attrs_dict(rs.get("resource", {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    out.append({
                        "trace_id": (s.get("traceId") or "").lower(),
                        "span_id": (s.get("spanId") or "").lower(),
                        "parent_span_id": (s.get("parentSpanId") or "").lower(),
                        "name": s.get("name", ""),
                        "kind": _enum(s.get("kind", 0), _KINDS),
                        "start": _ns(s.get("startTimeUnixNano")),
                        "end": _ns(s.get("endTimeUnixNano")),
                        "attrs": attrs_dict(s.get("attributes")),
                        "resource": res,
                        "status_code": _enum((s.get("status") or {}).get("code", 0), _CODES),
                        "trace_state": s.get("traceState", ""),
                    })
    return out


def pair_like_servicegraph(span_list):
    """Pairs spans as the Collector's servicegraph connector does (store.UpsertEdge).

    A CLIENT (or PRODUCER) span is stored under (trace_id, span_id), a SERVER
    (or CONSUMER) span under (trace_id, parent_span_id); a second span of the
    same side and key overwrites the first. When both sides of a key have a
    service name the edge (client service.name, server service.name) is
    counted and the key leaves the store, so a later duplicate starts a new,
    unpaired entry. Spans whose resource has no service.name are ignored, as
    the connector skips such resources. Returns (edges {(client, server):
    count}, unpaired client spans, unpaired server spans), in arrival order.
    """
    store = {}
    edges = {}
    for s in span_list:
        svc = s["resource"].get("service.name")
        if not svc:
            continue
        if s["kind"] in (SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER):
            key, side = (s["trace_id"], s["span_id"]), "client"
        elif s["kind"] in (SPAN_KIND_SERVER, SPAN_KIND_CONSUMER):
            key, side = (s["trace_id"], s["parent_span_id"]), "server"
        else:
            continue
        entry = store.setdefault(key, {})
        entry[side] = s
        if "client" in entry and "server" in entry:
            e = (entry["client"]["resource"]["service.name"],
                 entry["server"]["resource"]["service.name"])
            edges[e] = edges.get(e, 0) + 1
            del store[key]
    unpaired_client = [e["client"] for e in store.values() if "client" in e]
    unpaired_server = [e["server"] for e in store.values() if "server" in e]
    return edges, unpaired_client, unpaired_server
