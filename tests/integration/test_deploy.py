# SPDX-License-Identifier: Apache-2.0
"""Deployment files: the systemd unit's key options, the Kubernetes DaemonSet's
security context and mounts, `make install` (DESTDIR, PREFIX), the capabilities
against what the agent checks for (src/probe.c), and the messages that
docs/troubleshooting.md quotes against the source and, where this machine
allows, against the agent itself. No root needed (with root, the no-privileges
run drops to nobody)."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import harness as h

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

UNIT = os.path.join(h.ROOT, "deploy", "tcpotel.service")
DAEMONSET = os.path.join(h.ROOT, "deploy", "kubernetes", "daemonset.yaml")
DEPLOY_MD = os.path.join(h.ROOT, "docs", "deploy.md")
TROUBLE_MD = os.path.join(h.ROOT, "docs", "troubleshooting.md")
EXEC_START = "/usr/local/bin/tcpotel --config /etc/tcpotel/tcpotel.yaml"
# What tcpotel may be given; it must never need more.
ALLOWED_CAPS = {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE",
                "CAP_DAC_READ_SEARCH", "CAP_SYS_RESOURCE"}
# Needed to name services from /proc/PID/environ and /proc/PID/exe (docs/deploy.md).
NAMING_CAPS = {"CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def need_yaml():
    assert yaml is not None, "PyYAML is missing: apt-get install python3-yaml"


def unit_options(text):
    """{(section, key): [values]} of a systemd unit file (keys may repeat)."""
    out, section = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        assert "=" in line and section, "not key=value in a section: %r" % raw
        key, value = line.split("=", 1)
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def one(opts, section, key):
    values = opts.get((section, key))
    assert values, "%s= missing in [%s]" % (key, section)
    return values[-1]


def probe_required_caps():
    """The capabilities src/probe.c checks for (its needed[] table)."""
    src = read(os.path.join(h.ROOT, "src", "probe.c"))
    body = src[src.index("needed[] = {"):]
    body = body[:body.index("};")]
    caps = set(re.findall(r'"(CAP_[A-Z_]+)"', body))
    assert {"CAP_BPF", "CAP_PERFMON"} <= caps, caps
    return caps


def daemonset_docs():
    need_yaml()
    with open(DAEMONSET, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    return {d["kind"]: d for d in docs}


def test_unit_runs_the_installed_agent():
    opts = unit_options(read(UNIT))
    assert one(opts, "Service", "ExecStart") == EXEC_START
    assert one(opts, "Service", "Type") in ("exec", "simple")
    assert one(opts, "Service", "KillSignal") == "SIGTERM"
    assert one(opts, "Service", "Restart") == "on-failure"
    assert one(opts, "Install", "WantedBy") == "multi-user.target"
    assert "network-online.target" in one(opts, "Unit", "After")


def test_unit_keeps_only_the_needed_capabilities():
    opts = unit_options(read(UNIT))
    caps = set(one(opts, "Service", "CapabilityBoundingSet").split())
    assert caps <= ALLOWED_CAPS, caps - ALLOWED_CAPS
    assert probe_required_caps() <= caps, "the agent refuses to start without %s" % (
        probe_required_caps() - caps)
    assert NAMING_CAPS <= caps
    assert "CAP_SYS_ADMIN" not in caps
    assert opts.get(("Service", "AmbientCapabilities"), [""])[-1] == ""
    assert one(opts, "Service", "NoNewPrivileges") == "yes"
    # Old kernels charge maps to RLIMIT_MEMLOCK: lifted here instead of CAP_SYS_RESOURCE.
    assert one(opts, "Service", "LimitMEMLOCK") == "infinity"
    assert ("Service", "SecureBits") not in opts, "noroot would leave uid 0 without capabilities"


def test_unit_hardening_still_allows_bpf():
    opts = unit_options(read(UNIT))
    want = {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
            "PrivateDevices": "yes", "ProtectKernelModules": "yes",
            "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes",
            "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
            "RestrictNamespaces": "yes", "SystemCallArchitectures": "native"}
    for key, value in want.items():
        assert one(opts, "Service", key) == value, (key, opts.get(("Service", key)))
    # The agent must see every process and reach the Collector.
    assert opts.get(("Service", "ProtectProc"), ["default"])[-1] == "default"
    assert opts.get(("Service", "ProcSubset"), ["all"])[-1] == "all"
    for key in ("PrivateNetwork", "PrivateUsers", "DynamicUser"):
        assert opts.get(("Service", key), ["no"])[-1] in ("no", "false"), key
    assert one(opts, "Service", "User") == "root"
    calls = one(opts, "Service", "SystemCallFilter").split()
    assert "bpf" in calls and "perf_event_open" in calls, calls
    assert not any(c.startswith("~") for c in calls), "an allow list, not a deny list"
    families = one(opts, "Service", "RestrictAddressFamilies").split()
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(families), families
    assert re.fullmatch(r"\d+[KMG]", one(opts, "Service", "MemoryMax"))


def test_unit_file_passes_systemd_analyze():
    tool = shutil.which("systemd-analyze")
    if not tool:
        raise h.Skip("systemd-analyze is not installed")
    r = subprocess.run([tool, "verify", UNIT], capture_output=True, text=True, timeout=60)
    # The binary is not installed here; every other complaint (unknown keys, bad
    # values, keys in the wrong section) is a failure.
    lines = [ln for ln in (r.stdout + r.stderr).splitlines()
             if ln.strip() and "is not executable" not in ln]
    assert not lines, "\n".join(lines)
    r = subprocess.run([tool, "security", "--offline=yes", UNIT], capture_output=True,
                       text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
    if m:
        assert float(m.group(1)) <= 4.0, r.stdout[-400:]


def make_install(destdir, prefix=None):
    h.require_built(h.AGENT)
    argv = ["make", "--no-print-directory", "-o", os.path.relpath(h.AGENT, h.ROOT),
            "install", "DESTDIR=" + destdir]
    if prefix:
        argv.append("PREFIX=" + prefix)
    r = subprocess.run(argv, cwd=h.ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def check_installed(destdir, bindir):
    binary = os.path.join(destdir, bindir.lstrip("/"), "tcpotel")
    conf = os.path.join(destdir, "etc", "tcpotel", "tcpotel.yaml")
    unit = os.path.join(destdir, "etc", "systemd", "system", "tcpotel.service")
    for path, mode in ((binary, 0o755), (conf, 0o644), (unit, 0o644)):
        assert os.path.isfile(path), "not installed: " + path
        assert os.stat(path).st_mode & 0o777 == mode, (path, oct(os.stat(path).st_mode))
    with open(binary, "rb") as a, open(h.AGENT, "rb") as b:
        assert a.read() == b.read(), "the installed binary is not the build's"
    assert read(conf) == read(os.path.join(h.ROOT, "config", "tcpotel.yaml"))
    r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("tcpotel "), r
    return unit


def test_make_install_default_prefix():
    with tempfile.TemporaryDirectory(prefix="tcpotel-install-") as d:
        make_install(d)
        unit = check_installed(d, "/usr/local/bin")
        assert read(unit) == read(UNIT)
        exec_start = one(unit_options(read(unit)), "Service", "ExecStart").split()
        # The unit starts the binary and the configuration that were just installed.
        assert os.path.isfile(os.path.join(d, exec_start[0].lstrip("/"))), exec_start
        assert os.path.isfile(os.path.join(d, exec_start[exec_start.index("--config") + 1]
                                           .lstrip("/")))


def test_make_install_prefix_usr():
    with tempfile.TemporaryDirectory(prefix="tcpotel-install-") as d:
        make_install(d, "/usr")
        unit = check_installed(d, "/usr/bin")
        assert not os.path.exists(os.path.join(d, "usr", "local")), "PREFIX ignored"
        exec_start = one(unit_options(read(unit)), "Service", "ExecStart")
        if read(unit) != read(UNIT):
            # The install rewrote the unit for the prefix: it must point at the binary.
            assert exec_start.split()[0] == "/usr/bin/tcpotel", exec_start


def test_daemonset_security_context():
    docs = daemonset_docs()
    assert {"Namespace", "ConfigMap", "DaemonSet"} <= set(docs), set(docs)
    ds = docs["DaemonSet"]
    assert ds["apiVersion"] == "apps/v1"
    spec = ds["spec"]["template"]["spec"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= \
        ds["spec"]["template"]["metadata"]["labels"].items()
    assert spec["hostNetwork"] is True and spec["hostPID"] is True
    assert spec.get("hostIPC") is not True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["automountServiceAccountToken"] is False
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc.get("privileged") is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsUser"] == 0
    assert sc["capabilities"]["drop"] == ["ALL"]
    added = {"CAP_" + cap for cap in sc["capabilities"]["add"]}
    assert added <= ALLOWED_CAPS and "CAP_SYS_ADMIN" not in added, added
    assert probe_required_caps() <= added, probe_required_caps() - added
    assert NAMING_CAPS <= added
    assert sc["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost", "Unconfined")
    ns = docs["Namespace"]["metadata"]
    assert ns["name"] == ds["metadata"]["namespace"] == docs["ConfigMap"]["metadata"]["namespace"]
    assert ns["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_daemonset_mounts_resources_and_endpoint():
    docs = daemonset_docs()
    spec = docs["DaemonSet"]["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for m in mounts.values():
        assert m["name"] in volumes, m
    btf = mounts["/sys/kernel/btf"]
    assert btf["readOnly"] is True
    assert volumes[btf["name"]]["hostPath"]["path"] == "/sys/kernel/btf"
    for v in volumes.values():
        if "hostPath" in v:
            # Only what the agent reads: BTF. Nothing pinned (no bpffs), no host root.
            assert v["hostPath"]["path"] == "/sys/kernel/btf", v
    cfg_mount = mounts["/etc/tcpotel"]
    assert volumes[cfg_mount["name"]]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert c["args"] == ["--config", "/etc/tcpotel/tcpotel.yaml"]
    assert "tcpotel.yaml" in docs["ConfigMap"]["data"]
    res = c["resources"]
    for k in ("cpu", "memory"):
        assert k in res["limits"] and k in res["requests"], res
    env = c["env"]
    names = [e["name"] for e in env]
    node_ip = env[names.index("NODE_IP")]
    assert node_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    endpoint = env[names.index("OTEL_EXPORTER_OTLP_ENDPOINT")]["value"]
    assert endpoint == "http://$(NODE_IP):4318", endpoint
    # $(VAR) expands only variables defined earlier in the list.
    for i, e in enumerate(env):
        for ref in re.findall(r"\$\(([A-Z0-9_]+)\)", e.get("value", "")):
            assert ref in names[:i], "%s uses $(%s) before it is defined" % (e["name"], ref)


def test_daemonset_config_loads_in_the_agent():
    h.require_built(h.AGENT)
    text = daemonset_docs()["ConfigMap"]["data"]["tcpotel.yaml"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT="http://10.0.0.1:4318")
        r = subprocess.run([h.AGENT, "--check-config", "--config", f.name], env=env,
                           capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(f.name)
    assert r.returncode == 0, r.stderr
    assert "http://10.0.0.1:4318" in r.stdout


def test_deploy_doc_names_every_capability():
    text = read(DEPLOY_MD)
    opts = unit_options(read(UNIT))
    for cap in set(one(opts, "Service", "CapabilityBoundingSet").split()) | {"CAP_SYS_RESOURCE"}:
        assert "| `%s` |" % cap in text, "docs/deploy.md has no row for " + cap
    assert "`CAP_SYS_ADMIN` is never needed" in text
    ds = read(DAEMONSET)
    assert "add: [BPF, PERFMON, SYS_PTRACE, DAC_READ_SEARCH, SYS_RESOURCE]" in text
    for cap in ("BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_RESOURCE"):
        assert "- %s " % cap in ds


# ---- the messages docs/troubleshooting.md quotes ------------------------------

# Fixed parts of messages, as the source writes them and the page quotes them.
QUOTED = [
    "tcpotel needs root, or the capabilities CAP_BPF and CAP_PERFMON; ",
    "(run it as root, or grant them: setcap cap_bpf,cap_perfmon+ep tcpotel)",
    "cannot read the process capabilities: ",
    ": the kernel is older than 6.3",
    "fexit program refused at load (",
    ": this kernel has no BPF trampolines",
    "no kprobe event source (/sys/bus/event_source/devices/kprobe: ",
    "): the kernel is built without CONFIG_KPROBES",
    ": kernel.perf_event_paranoid is above 2, where a perf event ",
    "no capture back-end can attach on this kernel (",
    " were tried; see the lines above)",
    "cannot be used on this kernel: ",
    "tcp_sendmsg_locked is not in the kernel BTF",
    "raw tracepoint program refused at load (",
    "auto: the first that loads and attaches, in the order ",
    "its BPF programs cannot be ",
    "this kernel (",
    ") has no BTF (/sys/kernel/btf/vmlinux: ",
    "): tcpotel needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
    ") has no BPF ring buffer: tcpotel needs Linux 5.8 or later",
    "back-end's BPF programs: ",
    " reachable again after ",
    "; retrying in ",
    " similar messages suppressed)",
    " of tries",
    " with HTTP ",
    "span buffer full (",
    "stopping: flushing within ",
    "export stopped: sent ",
]


def source_text():
    """Every C string literal of src/*.c, adjacent literals joined (so a message
    split over lines reads whole); PRI macros between literals become %d."""
    out = []
    for f in sorted(os.listdir(os.path.join(h.ROOT, "src"))):
        if f.endswith(".c"):
            text = read(os.path.join(h.ROOT, "src", f))
            text = re.sub(r'"\s*PRI[diuxX](?:8|16|32|64|PTR)\s*"', "d", text)
            text = re.sub(r'"\s*\n\s*"', "", text)
            out.extend(re.findall(r'"((?:[^"\\\n]|\\.)*)"', text))
    return "\n".join(out)


def test_quoted_messages_exist_in_the_source():
    src = source_text()
    doc = read(TROUBLE_MD)
    for q in QUOTED:
        assert q in src, "no longer in src/*.c: %r" % q
        assert q.strip() in doc, "docs/troubleshooting.md does not quote %r" % q


def doc_lines():
    """The log lines quoted in code blocks, without their level."""
    lines, inside = [], False
    for ln in read(TROUBLE_MD).splitlines():
        if ln.startswith("```"):
            inside = not inside
            continue
        if inside:
            m = re.match(r"(?:error|warn|info)\s+(.*)$", ln)
            lines.append(m.group(1) if m else ln)
    return lines


def agent_stderr_lines(argv, timeout=20):
    """Runs the agent; one still running after timeout seconds is stopped (SIGTERM)
    and reported with status None. Returns (status, log lines without time and level)."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.terminate()
        try:
            _, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        rc = None
    out = []
    for ln in err.splitlines():
        m = re.match(r"\S+Z (?:error|warn |info |debug)\s*(.*)$", ln)
        out.append(m.group(1) if m else ln)
    return rc, out


def test_no_privileges_message_is_the_documented_one():
    h.require_built(h.AGENT)
    argv = [h.AGENT, "--config", os.path.join(h.ROOT, "config", "tcpotel.yaml"),
            "--ui-listen", ""]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            raise h.Skip("root, and no setpriv to drop privileges")
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=-all"] + argv
    rc, lines = agent_stderr_lines(argv)
    assert rc == 1, (rc, lines)
    msg = [ln for ln in lines if ln.startswith("tcpotel needs root")]
    assert msg, lines
    assert msg[0] in doc_lines(), "docs/troubleshooting.md does not quote:\n" + msg[0]


def test_forced_backend_failures_are_documented():
    """Where this kernel lacks a back-end, the line the agent prints is the page's."""
    h.require_built(h.AGENT)
    if os.geteuid() != 0:
        raise h.Skip("needs root (probing back-ends loads BPF programs)")
    documented = doc_lines()
    seen = 0
    for backend in ("kprobe", "fentry"):
        rc, lines = agent_stderr_lines([h.AGENT, "--config",
                                        os.path.join(h.ROOT, "config", "tcpotel.yaml"),
                                        "--backend", backend, "--ui-listen", "",
                                        "--endpoint", "http://127.0.0.1:9"], timeout=10)
        if rc is None or rc == 0:
            continue  # this kernel has it: the agent ran
        msg = [ln for ln in lines if ln.startswith("capture.backend %s cannot" % backend)]
        assert msg, lines
        # The errno text varies by kernel; the documented line is this kernel's or another's.
        if "No such file or directory" in msg[0] or "Operation not permitted" in msg[0]:
            assert msg[0] in documented, "docs/troubleshooting.md does not quote:\n" + msg[0]
            seen += 1
    if not seen:
        raise h.Skip("this kernel has every back-end: nothing to compare")


test_forced_backend_failures_are_documented.timeout = 150


CONTAINERFILE = os.path.join(h.ROOT, "Containerfile")


def containerfile_packages():
    """The package lists of the Containerfile's two stages: (build, runtime)."""
    text = read(CONTAINERFILE)
    lists = dict(re.findall(r'^ARG (BUILD_PACKAGES|RUNTIME_PACKAGES)="([^"]*)"$', text, re.M))
    assert set(lists) == {"BUILD_PACKAGES", "RUNTIME_PACKAGES"}, lists
    return set(lists["BUILD_PACKAGES"].split()), set(lists["RUNTIME_PACKAGES"].split())


def test_containerfile_installs_what_the_agent_needs():
    """The image builds with every package scripts/install-deps.sh installs for the build,
    and its runtime stage holds the package of every library the built agent links
    (readelf NEEDED, owner from dpkg -S; libc6 is in the base)."""
    build_pkgs, runtime_pkgs = containerfile_packages()
    with open(os.path.join(h.ROOT, "scripts", "install-deps.sh")) as f:
        deps = re.search(r"^build=\(([^)]*)\)", f.read(), re.M).group(1).split()
    assert set(deps) <= build_pkgs, "build stage lacks %s" % sorted(set(deps) - build_pkgs)
    h.require_built(h.AGENT)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        subprocess.run(["readelf", "-d", h.AGENT], check=True,
                                       capture_output=True, text=True).stdout)
    assert needed, "readelf found no NEEDED entries"
    owners = {}
    for lib in needed:
        out = subprocess.run(["dpkg", "-S", "*/" + lib], capture_output=True, text=True).stdout
        pkgs = {ln.split(":")[0] for ln in out.splitlines() if ln.strip()}
        assert pkgs, "no package owns " + lib
        owners[lib] = pkgs
    missing = {lib: sorted(p) for lib, p in owners.items()
               if "libc6" not in p and not p & runtime_pkgs}
    assert not missing, "runtime stage lacks the packages of %s" % missing


def test_containerfile_image_is_the_daemonsets():
    """Two Debian 12 stages named by BUILD_BASE and RUNTIME_BASE (make image passes both,
    so local roots can stand in for a registry); the runtime stage gets what make install
    lays out and starts the agent on the configuration the DaemonSet mounts over it; the
    DaemonSet names the image make image tags; the build context leaves .output out;
    scripts/debian-rootfs.sh takes its package lists from the Containerfile."""
    text = read(CONTAINERFILE)
    froms = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M)
    assert froms == [("${BUILD_BASE}", "build"), ("${RUNTIME_BASE}", "")], froms
    assert re.search(r"^ARG BUILD_BASE=docker\.io/library/debian:12$", text, re.M), text
    assert re.search(r"^ARG RUNTIME_BASE=docker\.io/library/debian:12-slim$", text, re.M), text
    assert "install DESTDIR=/stage PREFIX=/usr/local" in text and "COPY --from=build /stage/ /" in text
    assert 'ENTRYPOINT ["/usr/local/bin/tcpotel"]' in text
    assert ".output" in read(os.path.join(h.ROOT, ".containerignore")).split()
    version = read(os.path.join(h.ROOT, "VERSION")).strip()
    r = subprocess.run(["make", "--no-print-directory", "-n", "image"], cwd=h.ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cmd = " ".join(r.stdout.replace("\\\n", " ").split())
    assert cmd.startswith("podman build -f Containerfile -t tcpotel:%s " % version), cmd
    assert "--build-arg BUILD_BASE=" in cmd and "--build-arg RUNTIME_BASE=" in cmd, cmd
    ds = daemonset_docs()["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
    assert ds["image"] == "tcpotel:%s" % version, ds["image"]
    assert ds["args"] == ["--config", "/etc/tcpotel/tcpotel.yaml"]
    rootfs = read(os.path.join(h.ROOT, "scripts", "debian-rootfs.sh"))
    assert "BUILD_PACKAGES" in rootfs and "RUNTIME_PACKAGES" in rootfs and "Containerfile" in rootfs
    assert "--format=tar" in rootfs


# ---- the DaemonSet's privileges, without a container runtime -------------------------

CAP_BITS = {"CAP_DAC_READ_SEARCH": 2, "CAP_SYS_PTRACE": 19, "CAP_SYS_RESOURCE": 24,
            "CAP_SETPCAP": 8, "CAP_PERFMON": 38, "CAP_BPF": 39}


def proc_caps(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith(field + ":"):
                v = int(ln.split()[1], 16)
                return {n for n, b in CAP_BITS.items() if v >> b & 1}, v
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def test_daemonset_capabilities_are_enough_and_dropped_after_attach():
    """The agent started with exactly the DaemonSet's capabilities (its bounding, permitted
    and effective sets; no CAP_SETPCAP, as a container given `drop: [ALL]` then `add:`
    has none) attaches, drops to CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (and CAP_BPF where
    the kernel wants it to read maps) once attached, and still counts bytes exactly."""
    h.require_root()
    h.require_built(h.AGENT)
    h.require_built(h.TCPLOAD)
    if not shutil.which("setpriv"):
        raise AssertionError("setpriv (util-linux) is missing")
    sc = daemonset_docs()["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
    # One this process cannot have (outside its own bounding set) cannot be given.
    own, _ = proc_caps(os.getpid(), "CapBnd")
    added = [c.lower() for c in sc["securityContext"]["capabilities"]["add"]
             if "CAP_" + c in own]
    caps = ",".join("+" + c for c in added)
    a, b, link = h.two_hosts()
    rcv = h.Receiver()
    cfg = {"capture": {"netns": [a.path, b.path]}, "metrics": {"interval": "1s"},
           "exporter": {"otlp": {"endpoint": rcv.endpoint}}, "ui": {"listen": ""}}
    path = os.path.join(h.workdir(), "caps.yaml")
    with open(path, "w") as f:
        f.write(h.to_yaml(cfg))
    agent = h.Proc(["setpriv", "--bounding-set=-all," + caps, "--inh-caps=-all," + caps,
                    "--ambient-caps=-all," + caps, "--no-new-privs",
                    h.AGENT, "--config", path], name="tcpotel-caps")
    h.wait_for(lambda: " running" in agent.stderr_text() or agent.poll() is not None, 30, 0.1,
               "the agent to run")
    log = agent.stderr_text()
    assert agent.poll() is None and "capabilities dropped" in log, log[-2000:]
    assert "cannot drop capabilities" not in log, log[-2000:]
    eff, _ = proc_caps(agent.pid, "CapEff")
    prm, _ = proc_caps(agent.pid, "CapPrm")
    kept = {"CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}
    assert kept <= eff == prm <= kept | {"CAP_BPF"}, (eff, prm)
    assert "CAP_BPF" not in eff or "CAP_BPF (this kernel needs it" in log, (eff, log[-1000:])
    c, s, _port = h.run_workload(a, b, link, ["--conns", 5, "--exchanges", 4,
                                              "--req-size", "1000", "--resp-size", "70000"])
    time.sleep(0.3)
    agent.signal(signal.SIGTERM)
    assert agent.wait(20) == 0, agent.stderr_text()[-2000:]
    reqs = rcv.requests()
    tx = h.total(reqs, "tcp.io", "frontend", {"tcp.role": "client",
                                             "network.io.direction": "transmit"})
    rx = h.total(reqs, "tcp.io", "backend", {"tcp.role": "server",
                                            "network.io.direction": "transmit"})
    assert tx == c["bytes_sent"] and rx == s["bytes_sent"], (tx, c, rx, s)
    h.note("kept %s; bytes %d / %d exact", sorted(eff), tx, rx)
