# SPDX-License-Identifier: Apache-2.0
"""Checks that need a real container runtime: podman and crun from Debian, on a
host with a clean cgroup v2 hierarchy (a QEMU guest of the kernel matrix; see
README.md here). Run as root from the repository's top:

    python3 tests/container/podman_check.py ROOTFS_DIR [workload|image|all]

ROOTFS_DIR holds the tarballs of scripts/debian-rootfs.sh. No registry is
used: the bases are imported from them.

workload: tcpload (server and client) in one podman container, talking over
  the container's loopback, while the agent runs on the host and watches
  every namespace. Every tcp.io resource of the workload has container.id
  equal to podman's id for the container (podman inspect .Id), k8s.pod.uid is
  absent (no pod), and the bytes are exactly tcpload's.
image: `make image` from the local bases, then the image run as the
  DaemonSet runs it (host network and PID, read-only root, the DaemonSet's
  capabilities and no others, no-new-privileges, /sys/kernel/btf read-only,
  the config as a read-only mount), exporting to the test receiver on the
  host: it attaches, drops its capabilities, and counts a tcpload workload
  between two namespaces to the byte.

Each check prints "ok NAME" or "FAIL NAME: why" and the exit status is the
number of failures; a host where podman cannot run a container at all exits
2 with podman's own message, never "ok".
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness as h  # noqa: E402

RUNTIME_BASE = "localhost/tcpotel-runtime-base:12"
BUILD_BASE = "localhost/tcpotel-build-base:12"
WORKLOAD_IMAGE = "localhost/tcpotel-workload:test"


def sh(argv, timeout=600, check=True, **kw):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                       **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(map(str, argv)), r.returncode,
                                                    r.stdout[-2000:], r.stderr[-2000:]))
    return r


def import_bases(rootfs):
    for name, tag in (("runtime", RUNTIME_BASE), ("build", BUILD_BASE)):
        tar = os.path.join(rootfs, "tcpotel-%s-base.tar" % name)
        if os.path.exists(tar):
            sh(["podman", "import", tar, tag])


def podman_can_run():
    r = sh(["podman", "run", "--rm", "--network", "none", RUNTIME_BASE, "true"], check=False,
           timeout=120)
    if r.returncode != 0:
        sys.stderr.write("podman cannot run a container here:\n%s%s" % (r.stdout, r.stderr))
        sys.exit(2)


def build_workload_image():
    """The runtime base with tcpload (libc and pthreads only) in it."""
    h.require_built(h.TCPLOAD)
    ctx = tempfile.mkdtemp(prefix="tcpotel-workload-")
    shutil.copy(h.TCPLOAD, os.path.join(ctx, "tcpload"))
    with open(os.path.join(ctx, "Containerfile"), "w") as f:
        f.write("FROM %s\nCOPY tcpload /usr/local/bin/tcpload\n" % RUNTIME_BASE)
    sh(["podman", "build", "-t", WORKLOAD_IMAGE, ctx])
    shutil.rmtree(ctx)


def check_workload():
    """container.id from the cgroup podman made equals podman's id; bytes exact."""
    build_workload_image()
    rcv = h.Receiver()
    agent = h.Agent({"metrics": {"interval": "1s"}}, receiver=rcv).wait_ready()
    # The server's summary goes to a file (printed last) so that the client's is the
    # line before it; both lived a second past their traffic so the agent named them.
    script = ("OTEL_SERVICE_NAME=backend tcpload server --listen 127.0.0.1:0 "
              "--ready-file /tmp/port >/tmp/server.json & srv=$!; "
              "while [ ! -s /tmp/port ]; do sleep 0.05; done; sleep 1; "
              "OTEL_SERVICE_NAME=frontend tcpload client --connect 127.0.0.1:$(cat /tmp/port) "
              "--conns 4 --exchanges 25 --req-size 1,1000,70000 --resp-size 100,1MiB "
              "--idle-ms 200; sleep 1; kill $srv; wait $srv; cat /tmp/server.json")
    cid = sh(["podman", "run", "-d", "--network", "none", WORKLOAD_IMAGE, "sh", "-c", script]
             ).stdout.strip()
    full = sh(["podman", "inspect", "--format", "{{.Id}}", cid]).stdout.strip()
    sh(["podman", "wait", cid], timeout=120)
    out = sh(["podman", "logs", cid]).stdout.strip().splitlines()
    sh(["podman", "rm", cid])
    client, server = json.loads(out[-2]), json.loads(out[-1])
    time.sleep(2)
    rc = agent.stop()
    assert rc == 0, agent.log()[-2000:]
    reqs = rcv.requests()
    ids = {res.get("container.id") for res, _a, _p, _t in h.metric_points(reqs, "tcp.io")
           if res.get("service.name") in ("frontend", "backend")}
    assert ids == {full}, (ids, full)
    for res, _a, _p, _t in h.metric_points(reqs, "tcp.io"):
        assert "k8s.pod.uid" not in res, res
    tx = h.total(reqs, "tcp.io", "frontend", {"tcp.role": "client",
                                             "network.io.direction": "transmit"})
    rx = h.total(reqs, "tcp.io", "frontend", {"tcp.role": "client",
                                             "network.io.direction": "receive"})
    assert (tx, rx) == (client["bytes_sent"], client["bytes_received"]), (tx, rx, client)
    assert server["bytes_received"] == client["bytes_sent"], (client, server)
    print("    container %s: %d bytes sent, %d received, exact" % (full[:12], tx, rx))


def check_image():
    """make image from the local bases; run as the DaemonSet; exact bytes."""
    sh(["make", "image", "BUILD_BASE=" + BUILD_BASE, "RUNTIME_BASE=" + RUNTIME_BASE],
       cwd=h.ROOT, timeout=3600)
    version = open(os.path.join(h.ROOT, "VERSION")).read().strip()
    a, b, link = h.two_hosts()
    rcv = h.Receiver()
    conf = tempfile.mkdtemp(prefix="tcpotel-conf-")
    with open(os.path.join(conf, "tcpotel.yaml"), "w") as f:
        f.write(h.to_yaml({"capture": {"netns": [a.inode, b.inode]},
                           "metrics": {"interval": "1s"}, "ui": {"listen": ""}}))
    caps = "bpf,perfmon,sys_ptrace,dac_read_search,sys_resource"
    name = "tcpotel-image-check"
    sh(["podman", "run", "-d", "--name", name, "--network", "host", "--pid", "host",
        "--read-only", "--user", "0", "--cap-drop", "all", "--cap-add", caps,
        "--security-opt", "no-new-privileges",
        "-v", "/sys/kernel/btf:/sys/kernel/btf:ro", "-v", conf + ":/etc/tcpotel:ro",
        "-e", "OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.endpoint, "tcpotel:" + version])
    try:
        h.wait_for(lambda: " running" in sh(["podman", "logs", name]).stderr, 60, 0.5,
                   "the agent in the image to run")
        log = sh(["podman", "logs", name]).stderr
        assert "capabilities dropped" in log and "cannot drop" not in log, log[-2000:]
        c, s, _port = h.run_workload(a, b, link, ["--conns", 5, "--exchanges", 10,
                                                  "--req-size", "1000,65536",
                                                  "--resp-size", "100,1MiB"])
        time.sleep(2)
    finally:
        sh(["podman", "kill", "--signal", "TERM", name], check=False)
        rc = sh(["podman", "wait", name], check=False, timeout=60).stdout.strip()
        log = sh(["podman", "logs", name], check=False).stderr
        sh(["podman", "rm", "-f", name], check=False)
    assert rc == "0", (rc, log[-2000:])
    reqs = rcv.requests()
    tx = h.total(reqs, "tcp.io", "frontend", {"tcp.role": "client",
                                             "network.io.direction": "transmit"})
    stx = h.total(reqs, "tcp.io", "backend", {"tcp.role": "server",
                                             "network.io.direction": "transmit"})
    assert (tx, stx) == (c["bytes_sent"], s["bytes_sent"]), (tx, c, stx, s)
    print("    image tcpotel:%s: %d bytes sent, %d served, exact" % (version, tx, stx))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    h.require_root()
    which = sys.argv[2] if len(sys.argv) > 2 else "all"
    import_bases(sys.argv[1])
    podman_can_run()
    failed = 0
    for name, fn in (("workload", check_workload), ("image", check_image)):
        if which not in (name, "all"):
            continue
        try:
            fn()
            print("ok   " + name)
        except Exception as e:  # noqa: BLE001 - each failure is reported, the next check runs
            failed += 1
            print("FAIL %s: %s" % (name, e))
        finally:
            h.cleanup()
    sys.exit(failed)


if __name__ == "__main__":
    main()
