# SPDX-License-Identifier: Apache-2.0
"""Checks that need a real container runtime: podman and crun from Debian, on a
host with a clean cgroup v2 hierarchy (the kernel matrix runs them in a QEMU
guest; see README.md here). Run as root from the repository's top:

    tests/container/images.sh STORE            # the images, built where podman can build
    python3 tests/container/podman_check.py STORE [workload|image|all]

STORE is the podman store images.sh built the two images into (default
.output/containers). This script uses it read-only, as an additional image
store beside a store of its own in a temporary directory, so that the images
built on one machine run in a guest that sees that machine's files: nothing
is imported or loaded, and no registry is used.

workload: tcpload (server and client) in one podman container, talking over
  the container's loopback, while the agent runs on the host and watches
  every namespace. Every tcp.io resource of the workload has container.id
  equal to podman's id for the container (podman inspect .Id), k8s.pod.uid is
  absent (no pod), and the bytes are exactly tcpload's.
image: the image `make image` built, run as the DaemonSet runs it (host
  network and PID, read-only root, the DaemonSet's capabilities and no
  others, no-new-privileges, /sys/kernel/btf read-only, the config as a
  read-only mount), exporting to the test receiver on the host: it attaches,
  drops its capabilities, and counts a tcpload workload between two
  namespaces to the byte.

Each check prints "ok NAME" or "FAIL NAME: why", then the summary line
"N passed, N failed, N skipped" that the kernel matrix counts; the exit
status is the number of failures. Where podman cannot run a container at all
every check fails with podman's own message: that is never a skip.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness as h  # noqa: E402
from pace import longer  # noqa: E402

IMAGE = "localhost/tcpotel:" + open(os.path.join(h.ROOT, "VERSION")).read().strip()
WORKLOAD_IMAGE = "localhost/tcpotel-workload:test"


def sh(argv, timeout=600, check=True, **kw):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                       **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(map(str, argv)), r.returncode,
                                                    r.stdout[-2000:], r.stderr[-2000:]))
    return r


def use_store(store):
    """podman's configuration for these checks: a store of its own on a tmpfs of its
    own (the containers' upper layers cannot live on an overlay, such as a guest's
    root), STORE's images read-only beside it, cgroups managed by podman itself (no
    systemd needed), events in a file (no journald needed)."""
    images = os.path.join(os.path.abspath(store), "storage")
    if not os.path.isdir(images):
        raise AssertionError("no podman store at %s: tests/container/images.sh builds it" % images)
    own = tempfile.mkdtemp(prefix="tcpotel-podman-")
    sh(["mount", "-t", "tmpfs", "-o", "mode=0700", "tcpotel-podman", own])
    storage_conf = os.path.join(own, "storage.conf")
    with open(storage_conf, "w") as f:
        f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n'
                '[storage.options]\nadditionalimagestores = ["%s"]\n' % (own, own, images))
    containers_conf = os.path.join(own, "containers.conf")
    with open(containers_conf, "w") as f:
        f.write('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    os.environ["CONTAINERS_STORAGE_CONF"] = storage_conf
    os.environ["CONTAINERS_CONF"] = containers_conf
    return own


def podman_can_run():
    """None, or why podman cannot run a container here (then every check fails)."""
    for image in (IMAGE, WORKLOAD_IMAGE):
        r = sh(["podman", "image", "exists", image], check=False)
        if r.returncode != 0:
            return "no image %s in the store (tests/container/images.sh builds it): %s" % (
                image, r.stderr[-1500:])
    r = sh(["podman", "run", "--rm", "--network", "none", "--entrypoint", "true", WORKLOAD_IMAGE],
           check=False, timeout=300)
    if r.returncode != 0:
        return "podman cannot run a container here: %s%s" % (r.stdout[-1500:], r.stderr[-1500:])
    return None


def check_workload():
    """container.id from the cgroup podman made equals podman's id; bytes exact."""
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
    ids = {(res.get("service.name"), res.get("container.id"))
           for res, _a, _p, _t in h.metric_points(reqs, "tcp.io")
           if res.get("service.name") in ("frontend", "backend")}
    assert ids == {("frontend", full), ("backend", full)}, (ids, full)
    for res, _a, _p, _t in h.metric_points(reqs, "tcp.io"):
        assert "k8s.pod.uid" not in res, res
    tx = h.total(reqs, "tcp.io", "frontend", {"tcp.role": "client",
                                             "network.io.direction": "transmit"})
    rx = h.total(reqs, "tcp.io", "frontend", {"tcp.role": "client",
                                             "network.io.direction": "receive"})
    assert (tx, rx) == (client["bytes_sent"], client["bytes_received"]), (tx, rx, client)
    assert server["bytes_received"] == client["bytes_sent"], (client, server)
    print("    container.id %s: podman inspect's .Id, on both ends" % full)
    print("    tcp.io: %d bytes sent, %d received: tcpload's counts, exact" % (tx, rx))


def container_log(name):
    r = sh(["podman", "logs", name], check=False)
    return r.stdout + r.stderr


def wait_running(name):
    """Waits for the agent's " running" line; fails with the container's log if the
    container ends first or the line never comes."""

    def ready():
        if " running" in container_log(name):
            return True
        state = sh(["podman", "inspect", "--format", "{{.State.Running}}", name]).stdout.strip()
        if state != "true":
            raise AssertionError("the agent's container ended before running:\n"
                                 + container_log(name)[-2000:])
        return False

    try:
        h.wait_for(ready, longer(15), 0.5, "the agent in the image to run")
    except AssertionError as e:
        if "timed out" not in str(e):
            raise
        raise AssertionError("%s\n%s" % (e, container_log(name)[-2000:])) from None


SECCOMP_DEFAULT = "/usr/share/containers/seccomp.json"


def seccomp_options():
    """The DaemonSet keeps the runtime's default seccomp profile (RuntimeDefault), which
    must let CAP_BPF and CAP_PERFMON make bpf(2) and perf_event_open(2). Where that
    profile lets only CAP_SYS_ADMIN make them (Debian 12's containers-common, whose
    refusal is ENOSYS), docs/deploy.md says to run the container Unconfined: so does
    this check, and it says so."""
    try:
        with open(SECCOMP_DEFAULT) as f:
            rules = json.load(f).get("syscalls", [])
    except (OSError, ValueError):
        return []
    allowed_with = [set(r.get("includes", {}).get("caps") or ["any"]) for r in rules
                    if "bpf" in r.get("names", []) and r.get("action") == "SCMP_ACT_ALLOW"]
    if allowed_with and all(caps == {"CAP_SYS_ADMIN"} for caps in allowed_with):
        print("    seccomp: unconfined: this runtime's default profile (%s) allows bpf(2) "
              "only with CAP_SYS_ADMIN (docs/deploy.md)" % SECCOMP_DEFAULT)
        return ["--security-opt", "seccomp=unconfined"]
    return []


def check_image():
    """The image make image built, run as the DaemonSet runs it; exact bytes."""
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
        "--security-opt", "no-new-privileges"] + seccomp_options() + [
        "-v", "/sys/kernel/btf:/sys/kernel/btf:ro", "-v", conf + ":/etc/tcpotel:ro",
        "-e", "OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.endpoint, IMAGE])
    try:
        wait_running(name)
        log = container_log(name)
        assert "capabilities dropped" in log and "cannot drop" not in log, log[-2000:]
        c, s, _port = h.run_workload(a, b, link, ["--conns", 5, "--exchanges", 10,
                                                  "--req-size", "1000,65536",
                                                  "--resp-size", "100,1MiB"])
        time.sleep(2)
    finally:
        sh(["podman", "kill", "--signal", "TERM", name], check=False)
        rc = sh(["podman", "wait", name], check=False, timeout=60).stdout.strip()
        log = container_log(name)
        sh(["podman", "rm", "-f", name], check=False)
    assert rc == "0", (rc, log[-2000:])
    reqs = rcv.requests()
    tx = h.total(reqs, "tcp.io", "frontend", {"tcp.role": "client",
                                             "network.io.direction": "transmit"})
    stx = h.total(reqs, "tcp.io", "backend", {"tcp.role": "server",
                                             "network.io.direction": "transmit"})
    assert (tx, stx) == (c["bytes_sent"], s["bytes_sent"]), (tx, c, stx, s)
    print("    image %s: %d bytes sent, %d served, exact" % (IMAGE, tx, stx))


CHECKS = (("workload", check_workload), ("image", check_image))


def main():
    if len(sys.argv) > 3 or (len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help")):
        sys.exit(__doc__)
    h.require_root()
    store = sys.argv[1] if len(sys.argv) > 1 else os.path.join(h.ROOT, ".output", "containers")
    which = sys.argv[2] if len(sys.argv) > 2 else "all"
    checks = [(name, fn) for name, fn in CHECKS if which in (name, "all")]
    if not checks:
        sys.exit("podman_check: %s: expected workload, image or all" % which)
    t_start = time.time()
    own = None
    try:
        own = use_store(store)
        cannot = podman_can_run()
    except Exception as e:  # noqa: BLE001 - no store is every check's failure
        cannot = str(e)
    passed = failed = 0
    for name, fn in checks:
        t0 = time.time()
        try:
            if cannot:
                raise AssertionError(cannot)
            fn()
            passed += 1
            print("ok   %s (%.0f s)" % (name, time.time() - t0))
        except Exception as e:  # noqa: BLE001 - each failure is reported, the next check runs
            failed += 1
            print("FAIL %s: %s" % (name, e))
        finally:
            h.cleanup()
    if own:
        sh(["podman", "rm", "-a", "-f"], check=False)
        # The tmpfs, and the overlay driver's own mount of its directory in it.
        sh(["umount", "-R", own], check=False)
        os.rmdir(own)
    print("podman_check: %.0f s in all, podman's start-up included" % (time.time() - t_start))
    print("%d passed, %d failed, 0 skipped" % (passed, failed))
    sys.exit(failed)


if __name__ == "__main__":
    main()
