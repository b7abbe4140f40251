#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tcpotel overhead benchmark (`make bench`).

Runs loopback workloads (redis-benchmark against redis-server, wrk against
nginx with keep-alive, tcpload ping-pong, iperf3 bulk) alternately without and
with the agent, in three agent configurations (metrics only; metrics + spans
at 10 %; metrics + spans at 100 %), the agent exporting to the project's OTLP
receiver on loopback. Then the agent's peak RSS with 10k live sockets, and the
micro-benchmarks (.output/micro). Prints the table and writes it with the
date and machine to docs/PERFORMANCE.md (quick mode: .output/bench/).

Environment: BENCH_ROUNDS (3), BENCH_SECONDS (10), BENCH_QUICK=1 (a smoke run
of about two minutes), BENCH_WORKLOADS (redis,nginx,tcpload,iperf3),
BENCH_CONFIGS (metrics,spans10,spans100,metrics+nostats,spans10+nostats), BENCH_DOC (output path),
BENCH_SKIP_RSS=1, BENCH_SKIP_MICRO=1, BENCH_FROM_RAW=FILE (summarize the
workload runs of an earlier .output/bench/runs.jsonl; live sockets and
micro-benchmarks run again), BENCH_QUIET_BUDGET (seconds, in all, to
wait for other agents' programs to leave the hooks before runs: 60),
BENCH_RECEIVER (c: .output/otlp-sink, the default; python: the test
receiver with --light), BENCH_PERF=1 (a system-wide `perf record` of every
run, its report in .output/bench/perf/). A/B configurations for BENCH_CONFIGS
(see AB_MODIFIERS and HOOK_ONLY): a configuration name with +nostats and/or
+stopped, and the agent-less `empty`, `lookup`, `hashed` and `storage`.

A short end-to-end check that leaves docs/ alone: BENCH_QUICK=1
BENCH_SECONDS=2 make bench (one round, writes .output/bench/PERFORMANCE.md).

Every server binds 127.0.0.1, every run is bounded in time, and everything
started is stopped (and kernel.bpf_stats_enabled restored) on any exit,
Ctrl-C included. The processes, the receiver and the agent are the
integration tests' fixtures (tests/integration/fixtures/). Python 3 standard
library only; needs root.
"""

import datetime
import glob
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from fixtures import context, procs  # noqa: E402
from fixtures.agent import Agent  # noqa: E402
from fixtures.context import AGENT, TCPLOAD  # noqa: E402
from fixtures.procs import Proc, free_port, wait_for, wait_port  # noqa: E402
from fixtures.receiver import Receiver  # noqa: E402

OUT = os.path.join(ROOT, ".output")
MICRO = os.path.join(OUT, "micro")
SINK = os.path.join(OUT, "otlp-sink")
HOOKS_BIN = os.path.join(OUT, "bench-hooks")
PERF_DIR = os.path.join(OUT, "bench", "perf")
DOC_HEADER = os.path.join(ROOT, "bench", "doc_header.md")
BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"
# The agent's per-call hooks, as bpftool and fdinfo name them (15 characters kept).
HOOKS = ("tp_sock_send_length", "tp_sock_recv_length")
HOOK_PREFIXES = tuple(h[:15] for h in HOOKS)

CONFIGS = {
    "metrics": {"label": "metrics only", "spans": False, "ratio": 1.0},
    "spans10": {"label": "metrics + spans 10 %", "spans": True, "ratio": 0.1},
    "spans100": {"label": "metrics + spans 100 %", "spans": True, "ratio": 1.0},
}
# A/B switches, to find where a throughput cost goes: each modifier, after a "+"
# in a configuration name (metrics+nostats, spans10+stopped+nostats), switches one
# piece off; the hook-only configurations run no agent at all, only programs of
# bench/hooks.bpf.c on the two per-call hooks.
AB_MODIFIERS = {
    "nostats": "statistics off",  # kernel.bpf_stats_enabled stays 0: no BPF figures
    "stopped": "user space stopped",  # SIGSTOP after start, SIGCONT before the stop
}
HOOK_ONLY = {
    "empty": "empty programs on the hooks",  # the tracepoints and their dispatch
    "lookup": "hooks with one hash lookup",  # ... and one lookup keyed by the socket
    "hashed": "hooks with a hash entry per socket",  # an entry found, inserted once, written
    "storage": "hooks with socket storage",  # the same entry in bpf_sk_storage (tp_btf)
}
# The statistics-off runs give the throughput ratios of the targets (targets()).
DEFAULT_CONFIGS = ("metrics", "spans10", "spans100", "metrics+nostats", "spans10+nostats")
WORKLOADS = ("redis", "nginx", "tcpload", "iperf3")
UNITS = {"redis": "req/s", "nginx": "req/s", "tcpload": "exch/s", "iperf3": "Gbit/s"}
METRICS_INTERVAL = "5s"


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop(f"signal {signum}")


# ---- processes -----------------------------------------------------------------------------


def run_bounded(argv, timeout):
    """Runs a client to completion within timeout seconds; returns its stdout."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, process_group=0)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise RuntimeError(f"{argv[0]} did not finish in {timeout} s")
    except BaseException:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        raise
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {err.strip()[-500:]}")
    return out


# ---- /proc and BPF statistics --------------------------------------------------------------


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime: fields 14 and 15 (1-based) of the whole line.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_run_ns(pid):
    """CPU time of every live thread, in ns (schedstat: finer than clock ticks)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def prog_names():
    """id -> name of every loaded BPF program (bpftool)."""
    try:
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                             text=True, timeout=30).stdout
        return {p["id"]: p.get("name", "") for p in json.loads(out or "[]")}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def foreign_hooks(ours=()):
    """Programs on the per-call hooks that the benchmark did not load (others' agents)."""
    return sum(1 for i, n in prog_names().items() if n.startswith(HOOK_PREFIXES)
               and i not in ours)


def wait_quiet(ctx, per_run_s):
    """Waits a little for other agents' programs to leave the hooks, within a total budget."""
    t0 = time.monotonic()
    deadline = t0 + min(per_run_s, ctx["quiet_left"])
    n = foreign_hooks(ctx["our_progs"])
    while n and time.monotonic() < deadline:
        time.sleep(0.5)
        n = foreign_hooks(ctx["our_progs"])
    ctx["quiet_left"] -= time.monotonic() - t0
    return n


def agent_progs(pid):
    """prog id -> (run_time_ns, run_cnt) of the BPF programs the agent holds open."""
    progs = {}
    for fd in glob.glob(f"/proc/{pid}/fd/*"):
        try:
            if os.readlink(fd) != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/{pid}/fdinfo/{os.path.basename(fd)}") as f:
                info = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        pid_ = int(info.get("prog_id", "0").strip())
        if pid_:
            progs[pid_] = (int(info.get("run_time_ns", "0").strip() or 0),
                           int(info.get("run_cnt", "0").strip() or 0))
    return progs


def agent_counters(pid):
    """The agent's kernel health counters (per-CPU array `counters`), summed over CPUs."""
    ids = []
    for fd in glob.glob(f"/proc/{pid}/fd/*"):
        try:
            if os.readlink(fd) != "anon_inode:bpf-map":
                continue
            with open(f"/proc/{pid}/fdinfo/{os.path.basename(fd)}") as f:
                info = dict(line.split(":", 1) for line in f if ":" in line)
            ids.append(int(info.get("map_id", "0").strip()))
        except (OSError, ValueError):
            continue
    out = {}
    try:
        show = subprocess.run(["bpftool", "-j", "map", "show"], capture_output=True, text=True,
                              timeout=30)
        names = {m["id"]: m.get("name", "") for m in json.loads(show.stdout or "[]")}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return out
    for map_id in ids:
        if names.get(map_id) != "counters":
            continue
        try:
            r = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(map_id)],
                               capture_output=True, text=True, timeout=30)
            for e in json.loads(r.stdout or "[]"):
                key = e.get("key")
                idx = int.from_bytes(bytes(int(b, 16) for b in key), "little") \
                    if isinstance(key, list) else int(key)
                vals = e.get("values") or []
                total = 0
                for v in vals:
                    val = v.get("value")
                    total += int.from_bytes(bytes(int(b, 16) for b in val), "little") \
                        if isinstance(val, list) else int(val)
                out[idx] = total
        except (OSError, ValueError, subprocess.TimeoutExpired):
            continue
    return out


def hook_stats(before, after, names):
    """BPF ns and calls on the send/recv hooks between two agent_progs() readings."""
    ns = calls = 0
    per_hook = {}
    for pid_, (t1, c1) in after.items():
        name = names.get(pid_, "")
        if not name.startswith(HOOK_PREFIXES):
            continue
        t0, c0 = before.get(pid_, (0, 0))
        ns += t1 - t0
        calls += c1 - c0
        per_hook[name] = {"ns": t1 - t0, "calls": c1 - c0}
    return ns, calls, per_hook


def read_sysctl(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def write_sysctl(path, value):
    with open(path, "w") as f:
        f.write(str(value))


# ---- the machine ---------------------------------------------------------------------------


def machine():
    info = {"kernel": platform.release(), "cpu": "unknown", "cores": os.cpu_count(),
            "host": platform.node()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "Model name":
                info["cpu"] = v.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / 1048576, 1)
    except (OSError, ValueError, IndexError):
        pass
    for tool, argv in (("redis", ["redis-server", "--version"]), ("nginx", ["nginx", "-v"]),
                       ("wrk", ["wrk", "--version"]), ("iperf3", ["iperf3", "--version"])):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            info[tool] = (r.stdout + r.stderr).strip().splitlines()[0][:60]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            info[tool] = "?"
    return info


# ---- workloads -----------------------------------------------------------------------------


class Workload:
    name = ""

    def __init__(self, tmp, seconds):
        self.tmp, self.seconds = tmp, seconds
        self.server = None

    def stop(self):
        if self.server:
            self.server.kill_group(grace=15)
            self.server = None


class Redis(Workload):
    name = "redis"

    def start(self):
        self.port = free_port()
        d = os.path.join(self.tmp, "redis")
        os.makedirs(d, exist_ok=True)
        self.server = Proc(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--protected-mode", "yes", "--save", "", "--appendonly", "no", "--dir", d,
             "--daemonize", "no", "--logfile", os.path.join(d, "redis.log")])
        wait_port(self.port, self.server)
        # No duration option: size -n from a short calibration run.
        rps = self.bench(20000, 60)
        self.n = max(20000, int(rps * self.seconds / 2))
        log(f"redis: {rps:.0f} req/s in calibration, -n {self.n} per test")

    def bench(self, n, timeout):
        out = run_bounded(["redis-benchmark", "-h", "127.0.0.1", "-p", str(self.port),
                           "-c", "50", "-n", str(n), "-t", "get,set", "-q", "--csv"],
                          timeout)
        rates = []
        for line in out.splitlines():
            cells = [c.strip('"') for c in line.split(",")]
            if len(cells) > 1 and cells[0] in ("GET", "SET"):
                rates.append(float(cells[1]))
        if len(rates) != 2:
            raise RuntimeError(f"redis-benchmark: unexpected output {out[:200]!r}")
        # Both tests run n requests: the combined rate is 2n over the summed times.
        return 2 / sum(1 / r for r in rates)

    def run(self):
        return self.bench(self.n, self.seconds * 4 + 30)


NGINX_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/html;
        location / {{ }}
    }}
}}
"""


class Nginx(Workload):
    name = "nginx"

    def start(self):
        self.port = free_port()
        d = os.path.join(self.tmp, "nginx")
        os.makedirs(os.path.join(d, "html"), exist_ok=True)
        # Workers drop to an unprivileged user: they must reach the file.
        for p in (self.tmp, d, os.path.join(d, "html")):
            os.chmod(p, 0o755)
        with open(os.path.join(d, "html", "index.html"), "w") as f:
            f.write("<html><body>" + "tcpotel " * 120 + "</body></html>\n")  # ~1 KiB
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=d, port=self.port))
        self.server = Proc(["nginx", "-p", d, "-c", conf, "-g", "daemon off;"])
        wait_port(self.port, self.server)

    def run(self):
        out = run_bounded(["wrk", "-t2", "-c50", f"-d{self.seconds}s",
                           f"http://127.0.0.1:{self.port}/index.html"], self.seconds + 30)
        m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
        if not m or re.search(r"Non-2xx", out):
            raise RuntimeError(f"wrk: unexpected output {out[-300:]!r}")
        return float(m.group(1))


class Tcpload(Workload):
    name = "tcpload"

    def start(self):
        self.port = free_port()
        self.server = Proc([TCPLOAD, "server", "--listen", f"127.0.0.1:{self.port}"])
        wait_port(self.port, self.server)

    def run(self):
        out = run_bounded([TCPLOAD, "client", "--connect", f"127.0.0.1:{self.port}",
                           "--conns", "8", "--parallel", "8", "--req-size", "64",
                           "--resp-size", "64", "--duration-s", str(self.seconds)],
                          self.seconds + 30)
        r = json.loads(out.strip().splitlines()[-1])
        if r.get("errors"):
            raise RuntimeError(f"tcpload: {r['errors']} errors")
        return float(r["exchanges_per_s"])


class Iperf3(Workload):
    name = "iperf3"

    def start(self):
        self.port = free_port()
        self.server = Proc(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(self.port)])
        wait_port(self.port, self.server)
        time.sleep(0.2)  # the probe connection above must be gone before a test starts

    def run(self):
        out = run_bounded(["iperf3", "-c", "127.0.0.1", "-p", str(self.port),
                           "-t", str(self.seconds), "-J"], self.seconds + 30)
        r = json.loads(out)
        return r["end"]["sum_received"]["bits_per_second"] / 1e9


WORKLOAD_CLASSES = {c.name: c for c in (Redis, Nginx, Tcpload, Iperf3)}


# ---- the agent -----------------------------------------------------------------------------


def agent_config(cfg_name, max_sockets=65536):
    cfg = CONFIGS[cfg_name]
    return {
        "capture": {"backend": "auto", "max_sockets": max_sockets},
        "spans": {"enabled": cfg["spans"], "sampling_ratio": cfg["ratio"], "idle_timeout": "5s"},
        "metrics": {"enabled": True, "interval": METRICS_INTERVAL},
        "exporter": {"otlp": {"compression": "gzip"}},
        "log": {"level": "info"},
    }


class BenchAgent:
    """The agent fixture (exporting to the receiver), with the figures a run reads."""

    def __init__(self, receiver, cfg_name, max_sockets=65536):
        self.agent = Agent(agent_config(cfg_name, max_sockets), name=cfg_name,
                           receiver=receiver, start=False)
        self.proc = None

    def start(self, timeout=30):
        self.t_start = time.monotonic()
        self.proc = self.agent.start().proc
        self.agent.wait_ready(timeout)
        self.startup_cpu = proc_cpu_s(self.proc.pid)
        self.names = prog_names()

    def snapshot(self):
        pid = self.proc.pid
        return {"t": time.monotonic(), "cpu": proc_run_ns(pid) / 1e9, "progs": agent_progs(pid)}

    def stop(self):
        """SIGTERM, wait; returns lifetime CPU (from rusage) and the final export line."""
        self.proc.signal(signal.SIGTERM)
        try:
            status, ru = self.proc.wait4(30)
        except AssertionError:
            self.proc.kill_group(grace=0)
            raise RuntimeError("the agent did not stop within 30 s") from None
        text = self.agent.log()
        m = re.search(r"sent (\d+) spans and (\d+) metric points; dropped (\d+) spans and "
                      r"(\d+) metric points", text)
        res = {"cpu_total": ru.ru_utime + ru.ru_stime, "maxrss_kib": ru.ru_maxrss,
               "lifetime": time.monotonic() - self.t_start,
               "exit": status, "log_tail": text[-1500:]}
        if m:
            res.update(spans_sent=int(m.group(1)), points_sent=int(m.group(2)),
                       spans_dropped=int(m.group(3)), points_dropped=int(m.group(4)))
        res["span_buffer_full"] = "span buffer full" in text
        return res


def receiver_bytes(path, t0, t1):
    """Compressed and decoded bytes and spans of traces the receiver took between two Unix
    times."""
    comp = dec = reqs = items = 0
    try:
        with open(path) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("path") == "/v1/traces" and t0 <= e.get("t", 0) <= t1:
                    comp += e.get("bytes", 0)
                    dec += e.get("decoded_bytes", 0)
                    items += e.get("items", 0)
                    reqs += 1
    except OSError:
        pass
    return {"traces_requests": reqs, "traces_bytes": comp, "traces_decoded_bytes": dec,
            "receiver_spans": items}


# ---- A/B configurations, the receiver, perf ------------------------------------------------


def register_config(name):
    """Adds an A/B configuration name (base+modifier...) to CONFIGS; False if unknown."""
    if name in CONFIGS:
        return True
    base, *mods = name.split("+")
    if base in HOOK_ONLY:
        spec = {"label": HOOK_ONLY[base], "spans": False, "ratio": 1.0, "hooks": base}
    elif base in CONFIGS and not CONFIGS[base].get("hooks"):
        spec = dict(CONFIGS[base])
    else:
        return False
    for m in mods:
        if m not in AB_MODIFIERS or (m == "stopped" and spec.get("hooks")):
            return False
        spec[m] = True
        spec["label"] += ", " + AB_MODIFIERS[m]
    CONFIGS[name] = spec
    return True


class Hooks:
    """bench-hooks holding a pair of hook-only programs: measured like an agent."""

    def __init__(self, kind):
        self.kind, self.proc = kind, None

    def start(self):
        self.proc = Proc([HOOKS_BIN, self.kind], name="bench-hooks-" + self.kind)
        wait_for(lambda: self.proc.poll() is not None or "attached" in self.proc.stdout_text(),
                 30, 0.05, "bench-hooks to attach")
        if self.proc.poll() is not None:
            raise RuntimeError(f"bench-hooks {self.kind}: {self.proc.stderr_text()[-500:]}")
        self.names = prog_names()
        self.startup_cpu = 0.0

    def snapshot(self):
        return {"t": time.monotonic(), "cpu": 0.0, "progs": agent_progs(self.proc.pid)}

    def stop(self):
        self.proc.kill_group(grace=15)
        return {"cpu_total": 0.0, "lifetime": 0.0}


class Sink:
    """.output/otlp-sink (bench/otlp_sink.c) where the agent exports: the fixture
    Agent needs its endpoint, the runs its log and its process."""

    def __init__(self):
        self.log_path = os.path.join(context.workdir(), "sink.jsonl")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = Proc([SINK, "--listen", f"127.0.0.1:{self.port}", "--log", self.log_path],
                         name="otlp-sink")
        wait_port(self.port, self.proc)


def start_receiver():
    """The OTLP receiver the agent exports to, and what it is (BENCH_RECEIVER)."""
    kind = os.environ.get("BENCH_RECEIVER", "c") or "c"
    if kind == "c":
        return Sink(), "bench/otlp_sink.c (one C thread: gunzip with ISA-L, count spans by key)"
    if kind == "python":
        return Receiver(args=["--light"]), "tests/receiver/otlp_receiver.py --light"
    raise RuntimeError(f"BENCH_RECEIVER={kind!r}: c or python")


class Perf:
    """perf record of the whole machine (software clock) while one run's workload runs."""

    def __init__(self, name):
        os.makedirs(PERF_DIR, exist_ok=True)
        self.data = os.path.join(PERF_DIR, name + ".data")
        self.report = os.path.join(PERF_DIR, name + ".txt")
        self.proc = Proc(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-a", "-g",
                          "-o", self.data], name="perf")
        time.sleep(0.5)  # perf has opened its events

    def stop_recording(self):
        if self.proc:
            self.proc.signal(signal.SIGINT)
            self.proc.wait(60)
            self.proc = None

    def stop(self):
        """Ends the recording if still on, writes the report; returns its path."""
        self.stop_recording()
        with open(self.report, "w") as f:
            for sort in ("comm,dso", "comm,dso,sym"):
                f.write(f"# perf report --no-children --sort {sort}\n")
                f.flush()
                subprocess.run(["perf", "report", "-i", self.data, "--stdio", "--no-children",
                                "-g", "none", "--percent-limit", "0.5", "--sort", sort],
                               stdout=f, stderr=subprocess.DEVNULL, timeout=300)
        return os.path.relpath(self.report, ROOT)


def perf_start(ctx, wl, cfg_name):
    if os.environ.get("BENCH_PERF", "") in ("", "0"):
        return None
    ctx["perf_n"] = ctx.get("perf_n", 0) + 1
    return Perf(f"{ctx['perf_n']:03d}-{wl.name}-{cfg_name or 'baseline'}")


# ---- one measured run ----------------------------------------------------------------------


def measure(ctx, wl, cfg_name):
    foreign = wait_quiet(ctx, ctx["quiet_wait"])
    rec = {"workload": wl.name, "config": cfg_name or "baseline",
           "load1": round(os.getloadavg()[0], 2), "foreign_hooks": foreign}
    if not cfg_name:
        perf = perf_start(ctx, wl, cfg_name)
        t0 = time.monotonic()
        rec["throughput"] = wl.run()
        rec["elapsed"] = time.monotonic() - t0
        if perf:
            rec["perf"] = perf.stop()
        return rec
    spec = CONFIGS[cfg_name]
    if spec.get("hooks"):
        agent = Hooks(spec["hooks"])
    else:
        agent = BenchAgent(ctx["receiver"], cfg_name)
    perf = None
    if not spec.get("nostats"):
        write_sysctl(BPF_STATS, 1)
    try:
        agent.start()
        ctx["our_progs"].update(agent_progs(agent.proc.pid))
        if spec.get("stopped"):
            agent.proc.signal(signal.SIGSTOP)
        time.sleep(0.3)
        unix0 = time.time()
        s0 = agent.snapshot()
        r0 = proc_run_ns(ctx["receiver"].proc.pid)
        perf = perf_start(ctx, wl, cfg_name)
        rec["throughput"] = wl.run()
        rec["run_s"] = time.monotonic() - s0["t"]
        if perf:
            perf.stop_recording()
        time.sleep(0.3)  # the last spans leave within 200 ms
        s1 = agent.snapshot()
        rec["receiver_cpu"] = (proc_run_ns(ctx["receiver"].proc.pid) - r0) / 1e9
        unix1 = time.time()
        rec["vmhwm_kib"] = proc_status_kib(agent.proc.pid, "VmHWM")
        rec["vmrss_kib"] = proc_status_kib(agent.proc.pid, "VmRSS")
        if not spec.get("hooks"):
            cnt = agent_counters(agent.proc.pid)
            rec["ringbuf_lost"] = cnt.get(1)
            rec["sock_untracked"] = cnt.get(0)
        if spec.get("stopped"):
            agent.proc.signal(signal.SIGCONT)
        fin = agent.stop()
    finally:
        if agent.proc and agent.proc.poll() is None:
            if spec.get("stopped"):
                agent.proc.signal(signal.SIGCONT)
            agent.proc.kill_group(grace=15)
        write_sysctl(BPF_STATS, ctx["stats_off"])
        if perf:
            rec["perf"] = perf.stop()
    ns, calls, per_hook = hook_stats(s0["progs"], s1["progs"], agent.names)
    window = s1["t"] - s0["t"]
    rec.update(window=window, bpf_ns=ns, calls=calls, per_hook=per_hook,
               cpu_window=s1["cpu"] - s0["cpu"], startup_cpu=agent.startup_cpu)
    rec["cpu_after_start"] = fin["cpu_total"] - agent.startup_cpu
    lifetime = fin["cpu_total"]
    for k in ("spans_sent", "points_sent", "spans_dropped", "points_dropped", "exit",
              "span_buffer_full"):
        rec[k] = fin.get(k)
    rec["foreign_hooks_end"] = foreign_hooks(ctx["our_progs"])
    rec["lifetime_cpu"] = lifetime
    rec["lifetime"] = fin["lifetime"]
    rec.update(receiver_bytes(ctx["receiver"].log_path, unix0, unix1 + 5))
    if fin.get("spans_sent") is None and "log_tail" in fin:
        rec["agent_log_tail"] = fin["log_tail"]
    if spec.get("nostats") and calls:
        # The switch is global: another benchmark or tool turned it on meanwhile.
        rec["stats_were_on"] = True
        log(f"warning: {cfg_name}: kernel.bpf_stats_enabled was on during the run "
            f"(switched on by another process): the statistics-off A/B does not hold")
    if ctx["bpf_probe_warned"] is False and not calls and not spec.get("nostats"):
        log("warning: no BPF statistics from the agent's send/recv hooks")
        ctx["bpf_probe_warned"] = True
    return rec


def describe(rec):
    if rec["config"] == "baseline":
        return f"{rec['throughput']:.1f}"
    per_call = rec["bpf_ns"] / rec["calls"] if rec["calls"] else float("nan")
    return (f"{rec['throughput']:.1f}, bpf {per_call:.0f} ns/call, {rec['calls']} calls, "
            f"cpu {rec['cpu_window']:.2f} s, spans {rec.get('spans_sent')} "
            f"(receiver counted {rec.get('receiver_spans')}, its cpu "
            f"{rec.get('receiver_cpu', 0):.2f} s), hwm {rec['vmhwm_kib'] / 1024:.1f} MiB")


# ---- 10k live sockets ----------------------------------------------------------------------


def hold_connections(n_conns):
    """In a forked child: n_conns loopback connections, both ends held, each having
    exchanged a few bytes once. Returns (pid, pipe): the child writes one byte when
    they are up and closes them when the pipe's write end closes."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.close(ready_r)
            os.close(hold_w)
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            ls = socket.socket()
            ls.bind(("127.0.0.1", 0))
            ls.listen(4096)
            conns = []
            for _ in range(n_conns):
                c = socket.create_connection(ls.getsockname(), timeout=5)
                a, _ = ls.accept()
                c.sendall(b"ping0000")
                a.recv(8)
                a.sendall(b"pong0000")
                c.recv(8)
                conns += (c, a)
            os.write(ready_w, b"r")
            os.read(hold_r, 1)  # EOF when the parent is done (or gone)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(hold_r)
    return pid, ready_r, hold_w


def rss_with_sockets(ctx, n_sockets, hold_s):
    """Peak RSS of a metrics-only agent while n_sockets loopback sockets live."""
    agent = BenchAgent(ctx["receiver"], "metrics", max_sockets=max(65536, n_sockets + 16384))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Several holders, each within the descriptor limit (it cannot be raised here).
    per_child = max(1000, min(8000, (hard - 256) // 2))
    n_conns = n_sockets // 2
    children = []
    try:
        agent.start()
        base = proc_status_kib(agent.proc.pid, "VmHWM")
        left = n_conns
        while left > 0:
            k = min(per_child, left)
            children.append(hold_connections(k))
            left -= k
        for pid, ready_r, _ in children:
            if os.read(ready_r, 1) != b"r":
                raise RuntimeError("a connection holder failed (descriptor limit?)")
        time.sleep(hold_s)  # sweeps (1 s) and one metrics export
        res = {"sockets": n_conns * 2, "vmhwm_kib": proc_status_kib(agent.proc.pid, "VmHWM"),
               "vmrss_kib": proc_status_kib(agent.proc.pid, "VmRSS"), "idle_vmhwm_kib": base,
               "holders": len(children)}
        agent.stop()
        return res
    finally:
        for pid, ready_r, hold_w in children:
            os.close(hold_w)
            os.close(ready_r)
        for pid, _, _ in children:
            try:
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    time.sleep(0.5)
                    if os.waitpid(pid, os.WNOHANG) == (0, 0):
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        if agent.proc and agent.proc.poll() is None:
            agent.proc.kill_group(grace=15)


# ---- micro-benchmarks ----------------------------------------------------------------------


def run_micro(quick):
    if not os.access(MICRO, os.X_OK):
        log(f"{MICRO} missing: micro-benchmarks skipped")
        return []
    argv = [MICRO, "--json"] + (["--quick"] if quick else [])
    out = run_bounded(argv, 300)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# ---- summary -------------------------------------------------------------------------------


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt(v, spec, none="n/a"):
    return none if v is None else format(v, spec)


def summarize(runs, configs, workloads):
    """Per workload and configuration: ratios against the flanking baselines, medians."""
    rows = []
    for wl in workloads:
        seq = [r for r in runs if r["workload"] == wl]
        base_all = [r["throughput"] for r in seq if r["config"] == "baseline"]
        for cfg in configs:
            ratios, per_call, cpu_m, spans_s, points_s, cpu_span, cpu_span_net = \
                [], [], [], [], [], [], []
            hwm, calls_s, drops, foreign, loads, cover, lost = [], [], [], [], [], [], []
            recv_share, recv_span = [], []
            spans_on = CONFIGS[cfg]["spans"]
            for i, r in enumerate(seq):
                if r["config"] != cfg:
                    continue
                # The nearest baseline before and after it, in the same round.
                before = next((x for x in reversed(seq[:i]) if x["config"] == "baseline"
                               and x["round"] == r["round"]), None)
                after = next((x for x in seq[i + 1:] if x["config"] == "baseline"
                              and x["round"] == r["round"]), None)
                flank = [x["throughput"] for x in (before, after) if x]
                if flank:
                    ratios.append(r["throughput"] / statistics.mean(flank))
                if r["calls"]:
                    per_call.append(r["bpf_ns"] / r["calls"])
                    cpu_m.append(r["cpu_window"] / r["calls"] * 1e6)
                    calls_s.append(r["calls"] / r["window"])
                if r.get("spans_sent") is not None:
                    spans_s.append(r["spans_sent"] / r["window"])
                    points_s.append(r["points_sent"] / r["lifetime"])
                    drops.append(r["spans_dropped"])
                    if spans_on and wl in ("redis", "nginx", "tcpload"):
                        # One request/response = one exchange = a CLIENT and a SERVER span.
                        want = 2 * r["throughput"] * r["run_s"] * CONFIGS[cfg]["ratio"]
                        cover.append(r["spans_sent"] / want if want else None)
                    # A handful of spans (bulk transfer) makes no per-span figure.
                    if r["spans_sent"] >= 1000:
                        cpu_span.append(r["cpu_after_start"] / r["spans_sent"] * 1e6)
                        # Net of what metrics only costs per TCP call in the same round.
                        m = next((x for x in seq if x["config"] == "metrics"
                                  and x["round"] == r["round"] and x["calls"]), None)
                        if m and spans_on:
                            net = r["cpu_after_start"] - m["cpu_window"] / m["calls"] * r["calls"]
                            cpu_span_net.append(net / r["spans_sent"] * 1e6)
                hwm.append(r["vmhwm_kib"] / 1024)
                # The receiver shares the machine: its CPU is taken from the workload's.
                if r.get("receiver_cpu") is not None and r["window"]:
                    recv_share.append(r["receiver_cpu"] / ((os.cpu_count() or 1) * r["window"]))
                    if r.get("receiver_spans", 0) >= 1000:
                        recv_span.append(r["receiver_cpu"] / r["receiver_spans"] * 1e6)
                if r.get("ringbuf_lost") is not None:
                    lost.append(r["ringbuf_lost"])
                foreign.append(max(r["foreign_hooks"], r.get("foreign_hooks_end", 0)))
                loads.append(r["load1"])
            rows.append({
                "workload": wl, "config": cfg, "n": len(ratios),
                "baseline": med(base_all),
                "ratio": med(ratios), "ratio_min": min(ratios) if ratios else None,
                "ratio_max": max(ratios) if ratios else None,
                "bpf_ns_call": med(per_call), "calls_s": med(calls_s),
                "cpu_per_mcall": med(cpu_m), "spans_s": med(spans_s),
                "points_s": med(points_s), "us_per_span": med(cpu_span) if spans_on else None,
                "us_per_span_net": med(cpu_span_net), "rss_mib": max(hwm) if hwm else None,
                "spans_dropped": sum(drops) if drops else None, "span_cover": med(cover),
                "ringbuf_lost": sum(lost) if lost else None,
                "foreign_hooks": max(foreign) if foreign else 0,
                "load1": max(loads) if loads else None,
                "receiver_share": med(recv_share), "receiver_us_span": med(recv_span),
            })
    return rows


def weighted_bpf(runs, cfgs, workloads=None):
    ns = calls = 0
    for r in runs:
        if r["config"] in cfgs and (workloads is None or r["workload"] in workloads):
            ns += r.get("bpf_ns", 0)
            calls += r.get("calls", 0)
    return ns / calls if calls else None


# The targets, in one place. BPF time is the kernel's statistics, weighted by
# calls over every run of a configuration; throughput ratios come from the
# statistics-off runs of a configuration when there are any (the statistics
# cost about 50 ns a call themselves, which the product does not), else from
# its own runs.
BPF_NS_TARGET = {"metrics": 115, "spans10": 140, "spans100": 160}
BPF_NS_SPREAD = 15  # the worst workload's median, at most this far above the weighted figure
RATIO_TARGET = {"metrics": 0.96, "spans10": 0.93}
SPAN_COVER_TARGET = 0.95  # spans / expected at 100 %, on every request/response workload
SPAN_US_TARGET = {"spans10": 2.0, "spans100": 1.2}  # user CPU per exported span, raw
SPANS100_RSS_MIB = 48
METRICS_CPU_TARGET = 0.05  # s per million TCP calls, metrics only
SOCKET_BYTES_TARGET = 200  # user-space bytes per live socket, at 100k
SWEEP_IDLE_NS, SWEEP_CHANGED_NS = 30, 300


def targets(rows, runs, rss, micro, configs):
    """[(target, measured, met)]: met is True, False or None (not measured)."""
    out = []
    by = {(r["workload"], r["config"]): r for r in rows}
    rr = ("redis", "nginx", "tcpload")

    # Every configuration tracks exchanges in the kernel (each one is counted
    # in its socket's histogram); the spans configurations add the sampling
    # decision and a record per kept exchange.
    for cfg in (c for c in BPF_NS_TARGET if c in configs):
        avg = weighted_bpf(runs, [cfg])
        meds = [r["bpf_ns_call"] for r in rows if r["config"] == cfg
                and r["bpf_ns_call"] is not None]
        worst = max(meds, default=None)
        bound = BPF_NS_TARGET[cfg]
        out.append((f"{CONFIGS[cfg]['label']}: BPF time <= {bound} ns per hooked call "
                    f"(weighted), the worst workload's median within {BPF_NS_SPREAD} ns of it",
                    f"{fmt(avg, '.0f')} ns weighted; worst workload median {fmt(worst, '.0f')} ns",
                    None if avg is None else
                    avg <= bound and worst is not None and worst - avg <= BPF_NS_SPREAD))
    for cfg, bound in RATIO_TARGET.items():
        src = cfg + "+nostats" if cfg + "+nostats" in configs else cfg
        if src not in configs:
            continue
        for wl in rr:
            r = by.get((wl, src))
            if r and r["ratio"] is not None:
                out.append((f"{CONFIGS[cfg]['label']}: throughput ratio >= {bound} ({wl}"
                            f"{', statistics off' if src != cfg else ''})",
                            f"{r['ratio']:.3f} ({r['ratio_min']:.3f}..{r['ratio_max']:.3f})",
                            r["ratio"] >= bound))
    if "metrics" in configs:
        cpu = [r["cpu_per_mcall"] for r in rows if r["config"] == "metrics"
               and r["cpu_per_mcall"] is not None and r["workload"] in rr]
        if cpu:
            out.append((f"metrics only: user-space CPU <= {METRICS_CPU_TARGET} s per million "
                        f"TCP calls", f"worst {max(cpu):.3f} s (redis, nginx, tcpload)",
                        max(cpu) <= METRICS_CPU_TARGET))
    for cfg in (c for c in SPAN_US_TARGET if c in configs):
        v = [r["us_per_span"] for r in rows if r["config"] == cfg and r["workload"] in rr
             and r["us_per_span"] is not None]
        if v:
            bound = SPAN_US_TARGET[cfg]
            out.append((f"{CONFIGS[cfg]['label']}: user-space CPU <= {bound} us per exported "
                        f"span, raw", f"worst {max(v):.2f} us", max(v) <= bound))
    if "spans100" in configs:
        for wl in rr:
            r = by.get((wl, "spans100"))
            if r and r["span_cover"] is not None:
                out.append((f"metrics + spans 100 %: spans / expected >= {SPAN_COVER_TARGET} "
                            f"({wl})", f"{r['span_cover']:.2f}",
                            r["span_cover"] >= SPAN_COVER_TARGET))
        hwm = [r["rss_mib"] for r in rows if r["config"] == "spans100" and r["rss_mib"]]
        if hwm:
            out.append((f"metrics + spans 100 %: peak RSS <= {SPANS100_RSS_MIB} MiB",
                        f"{max(hwm):.1f} MiB", max(hwm) <= SPANS100_RSS_MIB))
    for r in rss:
        if r["target"]:
            out.append((f"peak RSS <= {r['target']} MiB with {r['sockets'] // 1000}k live "
                        f"sockets", f"{r['vmhwm_kib'] / 1024:.1f} MiB",
                        r["vmhwm_kib"] <= r["target"] * 1024))
        if r["sockets"] >= 100000 and r.get("idle_vmhwm_kib"):
            per = (r["vmhwm_kib"] - r["idle_vmhwm_kib"]) * 1024 / r["sockets"]
            out.append((f"user-space memory <= {SOCKET_BYTES_TARGET} B per live socket "
                        f"({r['sockets'] // 1000}k; peak RSS over an idle agent's)",
                        f"{per:.0f} B", per <= SOCKET_BYTES_TARGET))
    # The sweep costs what changed: nothing per socket that did not, a bounded
    # amount per socket that did (the micro-benchmark's 1 % active case).
    mm = {m["bench"]: m["ns_per_item"] for m in micro}
    for size in sorted({k.rsplit("_", 1)[1] for k in mm if k.startswith("sweep_idle_")},
                       key=lambda x: int(x.rstrip("k"))):
        idle, changed = mm.get(f"sweep_idle_{size}"), mm.get(f"sweep_changed_1pct_{size}")
        if idle is not None:
            out.append((f"sweep <= {SWEEP_IDLE_NS} ns per idle socket ({size})",
                        f"{idle:.1f} ns", idle <= SWEEP_IDLE_NS))
        if changed is not None:
            out.append((f"sweep <= {SWEEP_CHANGED_NS} ns per changed socket, 1 % active "
                        f"({size})", f"{changed:.0f} ns", changed <= SWEEP_CHANGED_NS))
    return out


def render(info, rows, runs, rss, micro, tgt, params, notes):
    L = []
    L.append(f"## Results: {info['date']}")
    L.append("")
    L.append(f"- machine: {info['cpu']}, {info['cores']} cores, "
             f"{info.get('mem_gib', '?')} GiB; kernel {info['kernel']}")
    L.append(f"- tools: {info['redis']}; {info['nginx']}; {info['wrk']}; {info['iperf3']}")
    L.append(f"- run: {params}")
    for n in notes:
        L.append(f"- {n}")
    L.append("")
    L.append("### Workloads")
    L.append("")
    L.append("| workload | config | baseline | ratio median (min..max) | BPF ns/call | "
             "TCP calls/s | CPU s / 1M calls | spans/s | points/s | CPU µs/span raw | "
             "CPU µs/span net | peak RSS MiB | spans / expected | spans dropped | records lost | "
             "receiver CPU % of cores | receiver µs/span |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = r["baseline"]
        base_s = "n/a" if base is None else (f"{base:.2f} {UNITS[r['workload']]}"
                                            if r["workload"] == "iperf3"
                                            else f"{base:,.0f} {UNITS[r['workload']]}")
        ratio = "n/a" if r["ratio"] is None else \
            f"{r['ratio']:.3f} ({r['ratio_min']:.3f}..{r['ratio_max']:.3f})"
        L.append(f"| {r['workload']} | {CONFIGS[r['config']]['label']} | {base_s} | {ratio} | "
                 f"{fmt(r['bpf_ns_call'], '.0f')} | {fmt(r['calls_s'], ',.0f')} | "
                 f"{fmt(r['cpu_per_mcall'], '.3f')} | {fmt(r['spans_s'], ',.0f', '-')} | "
                 f"{fmt(r['points_s'], ',.1f')} | {fmt(r['us_per_span'], '.2f', '-')} | "
                 f"{fmt(r['us_per_span_net'], '.2f', '-')} | {fmt(r['rss_mib'], '.1f')} | "
                 f"{fmt(r['span_cover'], '.2f', '-')} | "
                 f"{fmt(r['spans_dropped'], 'd', '-')} | {fmt(r['ringbuf_lost'], 'd', '-')} | "
                 f"{fmt(r['receiver_share'] and 100 * r['receiver_share'], '.1f')} | "
                 f"{fmt(r['receiver_us_span'], '.2f', '-')} |")
    L.append("")
    if rss:
        L.append("### Live sockets (metrics only)")
        L.append("")
        L.append("| live sockets | peak RSS (VmHWM) MiB | RSS now MiB | idle agent VmHWM MiB |")
        L.append("|---|---|---|---|")
        for r in rss:
            L.append(f"| {r['sockets']:,} | {r['vmhwm_kib'] / 1024:.1f} | "
                     f"{r['vmrss_kib'] / 1024:.1f} | {r['idle_vmhwm_kib'] / 1024:.1f} |")
        L.append("")
    if micro:
        L.append("### Micro-benchmarks (`.output/micro`)")
        L.append("")
        L.append("| benchmark | ns per item | item | items | note |")
        L.append("|---|---|---|---|---|")
        for m in micro:
            L.append(f"| {m['bench']} | {m['ns_per_item']:.1f} | {m['unit']} | "
                     f"{m['items']:,} | {m['note']} |")
        L.append("")
    L.append("### Targets")
    L.append("")
    L.append("| target | measured | |")
    L.append("|---|---|---|")
    for name, value, met in tgt:
        L.append(f"| {name} | {value} | {'met' if met else 'MISSED' if met is False else ''} |")
    L.append("")
    return "\n".join(L)


# ---- main ----------------------------------------------------------------------------------


def main():
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    rounds = env_int("BENCH_ROUNDS", 1 if quick else 3)
    seconds = env_int("BENCH_SECONDS", 3 if quick else 10)
    workloads = [w for w in os.environ.get("BENCH_WORKLOADS", ",".join(WORKLOADS)).split(",")
                 if w]
    configs = [c for c in os.environ.get("BENCH_CONFIGS", ",".join(DEFAULT_CONFIGS)).split(",")
               if c]
    doc = os.environ.get("BENCH_DOC") or (os.path.join(OUT, "bench", "PERFORMANCE.md") if quick
                                         else os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    for w in workloads:
        if w not in WORKLOAD_CLASSES:
            sys.exit(f"bench: unknown workload {w!r} (known: {', '.join(WORKLOADS)})")
    for c in configs:
        if not register_config(c):
            sys.exit(f"bench: unknown config {c!r} (known: {', '.join(CONFIGS)}, "
                     f"{', '.join(HOOK_ONLY)}, each with +{', +'.join(AB_MODIFIERS)})")
    if os.geteuid() != 0:
        sys.exit("bench: needs root (BPF programs, kernel.bpf_stats_enabled)")
    tools = [AGENT, TCPLOAD]
    if os.environ.get("BENCH_RECEIVER", "c") in ("", "c"):
        tools.append(SINK)
    if any(CONFIGS[c].get("hooks") for c in configs):
        tools.append(HOOKS_BIN)
    for tool in tools:
        if not os.access(tool, os.X_OK):
            sys.exit(f"bench: {tool} missing: run make first")
    if os.environ.get("BENCH_PERF", "") not in ("", "0") and not shutil.which("perf"):
        sys.exit("bench: BENCH_PERF=1 needs perf (Debian: linux-perf)")
    need = {"redis": ["redis-server", "redis-benchmark"], "nginx": ["nginx", "wrk"],
            "iperf3": ["iperf3"], "tcpload": []}
    for w in workloads:
        for t in need[w]:
            if not shutil.which(t):
                sys.exit(f"bench: {t} missing: run scripts/install-bench-deps.sh")
    if not shutil.which("bpftool"):
        sys.exit("bench: bpftool missing")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    # Process groups, not sessions, for everything the benchmark starts (see procs.py).
    procs.NEW_SESSION = False
    tmp = context.workdir()
    stats_before = read_sysctl(BPF_STATS)
    os.makedirs(os.path.join(OUT, "bench"), exist_ok=True)
    raw_path = os.path.join(OUT, "bench", "runs.jsonl")
    info = machine()
    info["date"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    params = (f"{rounds} round(s) of {seconds} s per run, workloads {', '.join(workloads)}, "
              f"configs {', '.join(configs)}, metrics interval {METRICS_INTERVAL}"
              + (" (quick mode)" if quick else ""))
    runs, rss, micro, wls, notes = [], [], [], [], []
    status = 0
    t_start = time.monotonic()
    from_raw = ""
    ctx = {}
    try:
        stats_off = stats_before if stats_before in ("0", "1") else "0"
        write_sysctl(BPF_STATS, stats_off)
        receiver, receiver_what = start_receiver()
        notes.append(f"receiver: {receiver_what}")
        ctx = {"receiver": receiver, "bpf_probe_warned": False,
               "stats_off": stats_off, "our_progs": set(),
               "quiet_wait": 2 if quick else 5,
               "quiet_left": env_int("BENCH_QUIET_BUDGET", 10 if quick else 60)}
        ctx["load_start"] = os.getloadavg()[0]
        log(f"{params}; load average {ctx['load_start']:.2f}")
        from_raw = os.environ.get("BENCH_FROM_RAW", "")
        if from_raw:
            # Re-render the workload part of an earlier run; the rest runs again.
            with open(from_raw) as f:
                recs = list(map(json.loads, f))
            runs = [r for r in recs if "workload" in r]
            workloads = list(dict.fromkeys(r["workload"] for r in runs))
            # The earlier run's own reading before its first run (older raw
            # files: that of its first run), not this machine's now.
            starts = [r["load_start"] for r in recs if "load_start" in r]
            ctx["load_start"] = starts[0] if starts else runs[0]["load1"] if runs else None
            for r in runs:
                if r["config"] != "baseline":
                    register_config(r["config"])
            configs = [c for c in CONFIGS if any(r["config"] == c for r in runs)]
            rounds = 1 + max(r["round"] for r in runs)
            params = (f"{rounds} round(s), workloads {', '.join(workloads)}, configs "
                      f"{', '.join(configs)}, metrics interval {METRICS_INTERVAL} "
                      f"(re-rendered from {os.path.basename(from_raw)})")
            raw_path = os.path.join(OUT, "bench", "runs-rerender.jsonl")
            info["date"] = os.environ.get("BENCH_DATE", info["date"])
        with open(raw_path, "w") as raw:
            raw.write(json.dumps({"load_start": ctx["load_start"]}) + "\n")
            for r in runs:
                raw.write(json.dumps(r) + "\n")
            for w in ([] if from_raw else workloads):
                wl = WORKLOAD_CLASSES[w](tmp, seconds)
                wl.start()
                wls.append(wl)
                wl.run()  # warm-up, not counted
            for rnd in range(0 if from_raw else rounds):
                for wl in wls:
                    # Each agent run between two baselines; the order turns each round.
                    order = configs[rnd % len(configs):] + configs[:rnd % len(configs)]
                    seq = [None]
                    for c in order:
                        seq += [c, None]
                    for c in seq:
                        rec = measure(ctx, wl, c)
                        rec["round"] = rnd
                        runs.append(rec)
                        raw.write(json.dumps(rec) + "\n")
                        raw.flush()
                        log(f"round {rnd + 1}/{rounds} {wl.name} {rec['config']}: "
                            f"{describe(rec)} (load {rec['load1']}, "
                            f"foreign hooks {rec['foreign_hooks']})")
            for wl in wls:
                wl.stop()
            wls = []
            # Before the live sockets: closing 100k of them keeps the kernel
            # busy for a while after, which the micro-benchmarks would time.
            if os.environ.get("BENCH_SKIP_MICRO", "") in ("", "0"):
                try:
                    micro = run_micro(quick)
                except (OSError, RuntimeError, ValueError) as e:
                    log(f"micro-benchmarks failed: {e}")
                    notes.append(f"micro-benchmarks failed: {e}")
            if os.environ.get("BENCH_SKIP_RSS", "") in ("", "0"):
                sizes = [10000] if quick else [10000, 50000, 100000]
                for n in sizes:
                    try:
                        r = rss_with_sockets(ctx, n, 7)
                    except (OSError, RuntimeError, AssertionError) as e:
                        log(f"{n} live sockets: failed: {e}")
                        notes.append(f"live-sockets step at {n}: failed: {e}")
                        continue
                    r["target"] = {10000: 32, 100000: 42}.get(n)
                    rss.append(r)
                    raw.write(json.dumps({"rss": r}) + "\n")
                    log(f"{r['sockets']} live sockets: peak RSS {r['vmhwm_kib'] / 1024:.1f} MiB")
    except Stop as e:
        log(f"interrupted ({e}): cleaning up")
        status = 130
    except Exception as e:  # noqa: BLE001 -- reported, then cleaned up
        log(f"failed: {e}")
        status = 1
    finally:
        for wl in wls:
            wl.stop()
        context.cleanup()  # every process started, and the scratch directory
        if stats_before is not None:
            try:
                write_sysctl(BPF_STATS, stats_before)
            except OSError as e:
                log(f"cannot restore kernel.bpf_stats_enabled={stats_before}: {e}")
    if status:
        return status

    loads = [r["load1"] for r in runs]
    if loads and ctx.get("load_start") is not None:
        # Once runs have begun, the 1-minute average counts the benchmark's own
        # threads (tcpload runs 16, wrk and redis-benchmark dozens): only the
        # value before the first run tells of other work.
        notes.append(f"load average (1 min) before the first run: {ctx['load_start']:.2f} on "
                     f"{info['cores']} cores"
                     + ("; other work was running: ratios are noisy"
                        if ctx["load_start"] > 1.0 else "; the machine was quiet")
                     + f" (before later runs, with the benchmark's own threads: median "
                     f"{statistics.median(loads):.2f}, max {max(loads):.2f})")
    leaked = sum(1 for r in runs if r.get("stats_were_on"))
    if leaked:
        notes.append(f"{leaked} statistics-off run(s) saw kernel.bpf_stats_enabled switched on "
                     f"by another process (it is global): their A/B does not hold")
    foreign = sum(1 for r in runs if r["foreign_hooks"] or r.get("foreign_hooks_end"))
    if foreign:
        notes.append(f"{foreign} of {len(runs)} runs had another agent's programs attached to "
                     f"the same hooks (tests running in parallel): those runs are slower on "
                     f"both sides")
    rows = summarize(runs, configs, [w.name for w in map(WORKLOAD_CLASSES.get, workloads)])
    tgt = targets(rows, runs, rss, micro, configs)
    if from_raw:
        notes.append("workload table re-rendered from the raw records of the run dated above; "
                     "live sockets and micro-benchmarks measured again at "
                     + datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    else:
        notes.append(f"wall time {(time.monotonic() - t_start) / 60:.1f} min; "
                     f"raw per-run records in .output/bench/runs.jsonl")
    table = render(info, rows, runs, rss, micro, tgt, params, notes)
    print(table)
    header = ""
    try:
        with open(DOC_HEADER) as f:
            header = f.read().rstrip() + "\n\n"
    except OSError:
        pass
    os.makedirs(os.path.dirname(doc), exist_ok=True)
    with open(doc, "w") as f:
        f.write(header + table)
    log(f"wrote {os.path.relpath(doc, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
