# SPDX-License-Identifier: Apache-2.0
"""The command line and the life cycle of the agent binary: what a user runs.

--version/--help, --check-config on the shipped file, a bad configuration
stopping the start before anything touches the kernel, a missing privilege
named exactly, SIGTERM flushing and exiting 0, SIGHUP ignored, a second
SIGTERM exiting at once, and the capabilities left after attaching.
"""

import ctypes
import errno
import os
import signal
import subprocess
import time

import harness as h

SHIPPED = os.path.join(h.ROOT, "config", "tcpotel.yaml")


def _run(args, env=None, timeout=20):
    h.require_built(h.AGENT, "tcpotel")
    return subprocess.run([h.AGENT] + args, capture_output=True, text=True, timeout=timeout,
                          env=env)


def _bpf_prog_ids():
    out = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True).stdout
    return {ln.split(":")[0] for ln in out.splitlines() if ln and ln[0].isdigit()}


def test_version_and_help():
    r = _run(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("tcpotel "), r
    r = _run(["--help"])
    assert r.returncode == 0, r
    for flag in ("--config", "--check-config", "--endpoint", "--log-level", "--backend",
                 "--ui-listen", "--stdout", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        assert flag in r.stdout, flag
    r = _run(["--no-such-flag"])
    assert r.returncode == 2 and "--no-such-flag" in r.stderr, r


def test_check_config_on_the_shipped_file():
    r = _run(["--check-config", "--config", SHIPPED])
    assert r.returncode == 0, r.stderr
    for key in ("capture:", "backend: auto", "max_sockets: 65536", "sampling_ratio:",
                "endpoint: \"http://localhost:4318\"", "listen: \"127.0.0.1:9464\""):
        assert key in r.stdout, (key, r.stdout)
    # Overrides from flags and the environment show in the effective configuration.
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT="http://collector.example:4318")
    r = _run(["--check-config", "--config", SHIPPED, "--log-level", "debug"], env=env)
    assert r.returncode == 0, r.stderr
    assert "http://collector.example:4318" in r.stdout and "level: debug" in r.stdout, r.stdout


def test_bad_config_stops_before_the_kernel():
    h.require_root()
    path = os.path.join(h.workdir(), "bad.yaml")
    with open(path, "w") as f:
        f.write("capture:\n  max_sockets: 10\nexporter:\n  otlp:\n    endpont: http://x:4318\n")
    before = _bpf_prog_ids()
    r = _run(["--config", path])
    after = _bpf_prog_ids()
    assert r.returncode == 1, r
    assert "%s:2:16: capture.max_sockets:" % path in r.stderr, r.stderr
    assert "%s:5:5: exporter.otlp.endpont: unknown key" % path in r.stderr, r.stderr
    assert "did you mean 'endpoint'" in r.stderr, r.stderr
    assert after <= before, "a BPF program was loaded: %s" % (after - before)
    r = _run(["--config", "/nonexistent/tcpotel.yaml"])
    assert r.returncode == 1 and "/nonexistent/tcpotel.yaml" in r.stderr, r.stderr


def test_missing_privileges_are_named():
    h.require_root()
    h.require_built(h.AGENT, "tcpotel")
    path = os.path.join(h.workdir(), "ok.yaml")
    with open(path, "w") as f:
        f.write("ui: {listen: \"\"}\n")
    os.chmod(h.workdir(), 0o755)
    os.chmod(path, 0o644)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "--inh-caps=-all", "--bounding-set=-all", h.AGENT, "--config", path],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1, r
    assert "tcpotel needs root, or the capabilities CAP_BPF and CAP_PERFMON" \
        in r.stderr, r.stderr
    assert "missing: CAP_BPF, CAP_PERFMON " in r.stderr, r.stderr


def test_kernel_without_btf_is_named():
    """Where the kernel's BTF cannot be seen (a kernel built without it, or a
    container without /sys/kernel/btf mounted: here a mount namespace with an
    empty tmpfs over it), the start stops with exit status 1 before any BPF
    program is loaded, with a line that names the file and the kernel option."""
    h.require_root()
    h.require_built(h.AGENT, "tcpotel")
    before = _bpf_prog_ids()
    r = subprocess.run(["unshare", "--mount", "sh", "-c",
                        'mount -t tmpfs none /sys/kernel/btf && exec "$0" "$@"', h.AGENT,
                        "--config", os.path.join(h.ROOT, "config", "tcpotel.yaml"),
                        "--ui-listen", ""], capture_output=True, text=True, timeout=30)
    after = _bpf_prog_ids()
    assert r.returncode == 1, r
    release = os.uname().release
    assert ("this kernel (%s) has no BTF (/sys/kernel/btf/vmlinux: No such file or directory):"
            " tcpotel needs a kernel built with CONFIG_DEBUG_INFO_BTF=y" % release) in r.stderr, \
        r.stderr
    assert after <= before, "a BPF program was loaded: %s" % (after - before)


def _refuse_bpf_syscall():
    """preexec_fn: a seccomp filter that answers bpf(2) with ENOSYS, as the
    default profile of some container runtimes does (libseccomp, the
    library those runtimes use, through ctypes)."""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                     ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    scmp_act_allow, scmp_act_errno = 0x7fff0000, 0x00050000
    ctx = lib.seccomp_init(scmp_act_allow)
    nr = lib.seccomp_syscall_resolve_name(b"bpf")
    if not ctx or lib.seccomp_rule_add(ctx, scmp_act_errno | errno.ENOSYS, nr, 0) or \
            lib.seccomp_load(ctx):
        os._exit(99)


def test_seccomp_refusing_bpf_is_named():
    """Under a seccomp filter that refuses bpf(2) (Debian 12 podman's default
    profile answers ENOSYS without CAP_SYS_ADMIN) the start stops with exit
    status 1 and a line that says bpf(2) is refused and how to run, not that
    the kernel is too old."""
    h.require_root()
    h.require_built(h.AGENT, "tcpotel")
    r = subprocess.run([h.AGENT, "--config", SHIPPED, "--ui-listen", ""],
                       capture_output=True, text=True, timeout=30,
                       preexec_fn=_refuse_bpf_syscall)
    assert r.returncode == 1, r
    assert ("bpf(2) is refused here (Function not implemented): a seccomp filter (a container "
            "runtime's default profile: run unconfined)") in r.stderr, r.stderr
    assert "Linux 5.8" not in r.stderr, r.stderr


def test_signals_and_capabilities():
    """SIGHUP is ignored, SIGTERM flushes and exits 0; only two capabilities stay."""
    h.require_root()
    rcv = h.Receiver()
    a = h.Agent({"metrics": {"interval": "60s"}}).wait_ready()
    for task in os.listdir("/proc/%d/task" % a.pid):
        with open("/proc/%d/task/%s/status" % (a.pid, task)) as f:
            eff = [ln.split()[1] for ln in f if ln.startswith("CapEff:")][0]
        # CAP_DAC_READ_SEARCH (2) and CAP_SYS_PTRACE (19), and CAP_BPF (39) on old kernels.
        assert int(eff, 16) & ~((1 << 2) | (1 << 19) | (1 << 39)) == 0, (task, eff)
    a.proc.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert a.running(), "SIGHUP stopped the agent:\n" + a.log()
    assert a.stop() == 0, a.log()
    # The final flush reached the collector even though the interval is a minute.
    assert any(r["path"] == "/v1/metrics" and r["status"] == 200 for r in rcv.requests()), \
        a.log()


def test_second_sigterm_exits_at_once():
    """With the collector hanging, the first SIGTERM waits for the flush; a second ends it
    at once, with 128 + SIGTERM as its status (not 0: the flush did not finish) and a
    line that says so."""
    h.require_root()
    rcv = h.Receiver()
    a = h.Agent({"metrics": {"interval": "200ms"},
                 "exporter": {"otlp": {"timeout": "30s"}}}).wait_ready()
    rcv.set_mode("slow", delay=60)
    time.sleep(1.0)
    a.proc.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert a.running(), "the first SIGTERM should wait for the flush"
    t0 = time.monotonic()
    a.proc.signal(signal.SIGTERM)
    assert a.proc.wait(5) == 128 + signal.SIGTERM
    assert time.monotonic() - t0 < 2.0
    assert "second signal: exiting now, without the final flush" in a.log(), a.log()[-2000:]
