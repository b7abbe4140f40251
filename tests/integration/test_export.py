# SPDX-License-Identifier: Apache-2.0
"""The exporter against a collector that is away, unavailable, slow, refusing or
partly accepting: the agent keeps running, retries what may be retried when the
collector says (Retry-After) or on its own backoff, drops what must not be
retried and counts it, and after SIGTERM the last tcp.io values are still exact.

The batches are identified in the receiver's log: a retried batch is sent again
with the same compressed body (same `bytes`), and an accepted body carries the
time it was made (the points' timeUnixNano).

TCPOTEL_VERBOSE=1 prints the measured intervals to stderr.
"""

import os
import re
import time

import harness as h

V4 = ("10.231.0.1/24", "10.231.0.2/24")
V6 = ("fd00:231::1/64", "fd00:231::2/64")
HOLD = ["--idle-ms", 150]
RETRY_AFTER = 2
# Intervals are measured between the receiver's arrival times of two requests.
# The agent counts Retry-After from when it read the answer, which is after the
# first arrival; 20 ms below covers the agent's millisecond clock and the
# receiver's timestamps. Upper bound: the agent must retry promptly when the
# time is up (its own backoff is capped at max_interval = 1 s in these tests).
EARLY_TOLERANCE = 0.02
LATE_TOLERANCE = 1.0


note = h.note


free_port = h.free_port


def hosts():
    h.require_root()
    h.require_built(h.TCPLOAD)
    return h.two_hosts(V4, V6)


def agent_config(a, b, endpoint=None, **exporter):
    otlp = {"retry": {"initial_interval": "200ms", "max_interval": "1s"}}
    otlp.update(exporter)
    if endpoint:
        otlp["endpoint"] = endpoint
    # No spans: every batch is a metrics batch, so consecutive requests in the
    # receiver's log are consecutive tries of the export queue's head.
    return {"capture": {"netns": [a.path, b.path]}, "metrics": {"interval": "1s"},
            "spans": {"enabled": False}, "exporter": {"otlp": otlp}}


def workload(a, b, link):
    """A known workload; returns (client summary, server summary)."""
    srv, port = h.tcpload_server(b, "0.0.0.0:0", "backend")
    cli = h.tcpload_client(a, h.hostport(link.ip_b, port),
                           ["--conns", 8, "--parallel", 4, "--exchanges", 4,
                            "--req-size", "1,1000,65536,1MiB", "--resp-size", "3MiB,10,4096"]
                           + HOLD)
    time.sleep(0.5)  # the agent reads the server's OTEL_SERVICE_NAME while it lives
    return cli, h.tcpload_server_stop(srv)


def check_io_exact(reqs, cli, srv):
    got = {
        "client tx": h.total(reqs, "tcp.io", "frontend", {"tcp.role": "client",
                                                          "network.io.direction": "transmit"}),
        "client rx": h.total(reqs, "tcp.io", "frontend", {"tcp.role": "client",
                                                          "network.io.direction": "receive"}),
        "server tx": h.total(reqs, "tcp.io", "backend", {"tcp.role": "server",
                                                         "network.io.direction": "transmit"}),
        "server rx": h.total(reqs, "tcp.io", "backend", {"tcp.role": "server",
                                                         "network.io.direction": "receive"}),
    }
    want = {"client tx": cli["bytes_sent"], "client rx": cli["bytes_received"],
            "server tx": srv["bytes_sent"], "server rx": srv["bytes_received"]}
    assert got == want, "tcp.io after the outage %r, tcpload counted %r" % (got, want)
    # The workload never failed (the Collector did): nothing may say it did.
    failed = h.errors(reqs)
    assert not failed, ("errors where nothing failed", failed[:5])
    return got


def metric_requests(reqs):
    return [r for r in reqs if r.get("path") == "/v1/metrics"]


def body_time(r):
    """The latest timeUnixNano of an accepted body's points (when it was made), in s."""
    ts = [t for _res, _a, _p, t in h.metric_points([r], "tcpotel.export.failures")]
    return max(ts) / 1e9 if ts else None


def self_value(r, name, signal=None):
    """The agent's own metric `name` in one accepted body."""
    for res, attrs, p, _t in h.metric_points([r], name):
        if res.get("service.name") != "tcpotel":
            continue
        if signal is not None and attrs.get("signal") != signal:
            continue
        return h.point_value(p)
    return None


def stop_agent(agent):
    assert agent.running(), "the agent died:\n" + agent.log()[-3000:]
    rc = agent.stop()
    assert rc == 0, "agent exited %s on SIGTERM\n%s" % (rc, agent.log()[-3000:])


# ---- outage, 503 with Retry-After, slow, recovery ----------------------------------


def test_collector_absent_then_unavailable_then_slow():
    """The collector is away when the agent starts (connection refused: its own
    backoff, 200 ms doubling to 1 s), then answers 503 with Retry-After: 2 three
    times, then is slow (0.5 s) three times, then fine. The agent stays up and logs
    the retries; after each 503 the same batch comes again no sooner than
    Retry-After (and not more than 1 s later); nothing is dropped: the batches made
    during the outage arrive, and after SIGTERM the last tcp.io values are exact."""
    a, b, link = hosts()
    port = free_port()
    agent = h.Agent(agent_config(a, b, "http://127.0.0.1:%d" % port)).wait_ready()
    cli, srv = workload(a, b, link)
    time.sleep(1.5)
    assert agent.running(), agent.log()
    assert re.search(r"export to \S+ failed: .*(refused|connect).*retrying in", agent.log(),
                     re.I), agent.log()[-2000:]

    t_up = time.time()
    rcv = h.Receiver(port=port, args=["--mode", "unavailable", "--retry-after", RETRY_AFTER])
    rcv.wait_for(lambda reqs: sum(1 for r in reqs if r.get("status") == 503) >= 3, 15,
                 "three 503 answers")
    rcv.set_mode("slow", delay=0.5, count=3)
    rcv.wait_for(lambda reqs: sum(1 for r in reqs if r.get("mode") == "slow") >= 3, 15,
                 "three slow answers")
    # Then fine: wait for a body made after the receiver came back to health.
    t_ok = time.time()
    rcv.wait_for(lambda reqs: any(r.get("status") == 200 and (body_time(r) or 0) > t_ok + 0.5
                                  for r in metric_requests(reqs)), 15,
                 "an export made after the recovery")
    stop_agent(agent)
    reqs = metric_requests(rcv.requests())

    # The 503s: each is followed by the same batch, after Retry-After.
    statuses = [r.get("status") for r in reqs]
    first_503 = statuses.index(503)
    assert statuses[first_503:first_503 + 3] == [503, 503, 503], statuses
    intervals = []
    for i in range(first_503, first_503 + 3):
        cur, nxt = reqs[i], reqs[i + 1]
        dt = nxt["t"] - cur["t"] - cur.get("duration", 0)
        intervals.append(round(nxt["t"] - cur["t"], 3))
        assert nxt["bytes"] == cur["bytes"], ("not the same batch after a 503", cur, nxt)
        assert dt >= RETRY_AFTER - EARLY_TOLERANCE, (
            "retried %.3fs after a 503 with Retry-After: %d" % (dt, RETRY_AFTER))
        assert dt <= RETRY_AFTER + LATE_TOLERANCE, ("retried %.3fs after the 503" % dt)
    note("intervals after 503 (Retry-After %d): %r", RETRY_AFTER, intervals)
    # The slow answers were waited for (a slow collector is not a failure).
    slow = [i for i, r in enumerate(reqs) if r.get("mode") == "slow"]
    assert len(slow) == 3 and all(reqs[i]["status"] == 200 for i in slow), \
        [reqs[i] for i in slow]
    for i in slow:
        if i + 1 < len(reqs):
            assert reqs[i + 1]["t"] - reqs[i]["t"] >= 0.5 - EARLY_TOLERANCE, (reqs[i], reqs[i + 1])
    # The first accepted body was made while nothing listened: held, not lost.
    accepted = [r for r in reqs if r.get("status") == 200]
    first_time = body_time(accepted[0])
    note("first accepted body made %.2fs before the receiver started", t_up - first_time)
    assert first_time < t_up, ("the batches made during the outage were lost", first_time, t_up)

    # Outage warnings are rate-limited (one per 10 s), so the 503s may not each have
    # a line; the recovery line counts every failed try of the streak.
    m = re.search(r"reachable again after (\d+) failed tries", agent.log())
    assert m and int(m.group(1)) >= 4, agent.log()[-3000:]
    check_io_exact(reqs, cli, srv)
    last = accepted[-1]
    assert self_value(last, "tcpotel.export.dropped", "metrics") == 0, last
    # Every failed try is counted: at least one refused connection and the three 503s.
    failures = self_value(last, "tcpotel.export.failures")
    assert failures >= 4, failures
    # Nothing was dropped: every failed try was tried again.
    retries = self_value(last, "tcpotel.export.retries")
    assert retries == failures, ("tcpotel.export.retries", retries, "failures", failures)


test_collector_absent_then_unavailable_then_slow.timeout = 90


# ---- permanent refusal, partial success ----------------------------------------------


def _steady_agent():
    """An agent that has exported the finished workload at least twice (so every
    batch from now on has the same points)."""
    a, b, link = hosts()
    rcv = h.Receiver()
    agent = h.Agent(agent_config(a, b)).wait_ready()
    cli, srv = workload(a, b, link)
    base = len(rcv.requests())
    rcv.wait_for(lambda reqs: sum(1 for r in metric_requests(reqs[base:])
                                  if r.get("status") == 200) >= 2, 10, "two exports")
    return rcv, agent, cli, srv


def test_400_is_not_retried():
    """A 400 answer is permanent: that batch is tried once, dropped, and its points
    counted in tcpotel.export.dropped{signal=metrics}; the next request carries a
    batch made after the refusal."""
    rcv, agent, cli, srv = _steady_agent()
    rcv.set_mode("reject", count=1)
    rcv.wait_for(lambda reqs: any(r.get("status") == 400 for r in reqs), 10, "the 400")
    t400 = [r for r in rcv.requests() if r.get("status") == 400][0]["t"]
    rcv.wait_for(lambda reqs: sum(1 for r in metric_requests(reqs)
                                  if r.get("status") == 200 and r["t"] > t400) >= 2, 10,
                 "two exports after the 400")
    stop_agent(agent)
    reqs = metric_requests(rcv.requests())
    rejected = [i for i, r in enumerate(reqs) if r.get("status") == 400]
    assert len(rejected) == 1, [reqs[i] for i in rejected]
    i = rejected[0]
    before, after = reqs[i - 1], reqs[i + 1]
    assert after.get("status") == 200, after
    assert body_time(after) > reqs[i]["t"], (
        "the request after the 400 carries a batch made before it: the refused batch "
        "was retried", body_time(after), reqs[i]["t"])
    note("after the 400 the next request came %.3fs later, with a batch made %.3fs after "
         "the refusal", after["t"] - reqs[i]["t"], body_time(after) - reqs[i]["t"])
    dropped = self_value(reqs[-1], "tcpotel.export.dropped", "metrics")
    # Steady state: the refused batch had as many points as the ones around it.
    assert before["items"] == after["items"], (before["items"], after["items"])
    assert dropped == before["items"], ("tcpotel.export.dropped{metrics}", dropped,
                                        "points of the refused batch", before["items"])
    assert self_value(after, "tcpotel.export.failures") >= 1
    assert re.search(r"refused \d+ metric points with HTTP 400", agent.log()), agent.log()[-2000:]
    check_io_exact(reqs, cli, srv)


def test_partial_success_is_counted_not_retried():
    """A 200 with partialSuccess.rejectedDataPoints = 5 is logged, counted in
    tcpotel.export.rejected{signal=metrics}, and not sent again; the points the
    collector did accept are what tcpotel.export.sent counts, the bodies it accepted
    what tcpotel.export.batches counts, and the bytes it received what
    tcpotel.export.bytes counts."""
    rcv, agent, cli, srv = _steady_agent()
    rcv.set_mode("partial", rejected=5, count=1)
    rcv.wait_for(lambda reqs: any(r.get("mode") == "partial" for r in reqs), 10,
                 "the partial success")
    tp = [r for r in rcv.requests() if r.get("mode") == "partial"][0]["t"]
    rcv.wait_for(lambda reqs: sum(1 for r in metric_requests(reqs)
                                  if r.get("status") == 200 and r["t"] > tp) >= 2, 10,
                 "two exports after the partial success")
    stop_agent(agent)
    reqs = metric_requests(rcv.requests())
    partial = [i for i, r in enumerate(reqs) if r.get("mode") == "partial"]
    assert len(partial) == 1 and reqs[partial[0]]["rejected"] == 5, [reqs[i] for i in partial]
    p = reqs[partial[0]]
    t_made = body_time(p)
    later = [body_time(r) for r in reqs[partial[0] + 1:] if r.get("status") == 200]
    assert later and all(t > t_made for t in later), (
        "the partly rejected batch was sent again", t_made, later)
    last = reqs[-1]
    assert self_value(last, "tcpotel.export.rejected", "metrics") == 5, last
    assert self_value(last, "tcpotel.export.dropped", "metrics") == 0, last
    assert re.search(r"rejected 5 of \d+ metric points", agent.log()), agent.log()[-2000:]
    check_io_exact(reqs, cli, srv)
    # "sent": the points the collector accepted. A body made after the partial answer,
    # with no answer near its making (so which requests it counts is certain), counts
    # the items of every request answered before it, minus the 5 rejected.
    accepted = [r for r in reqs if r.get("status") == 200]
    for r in reversed(accepted):
        made = body_time(r)
        if made < p["t"] + p.get("duration", 0) + 0.1:
            raise AssertionError("no body made clearly after the partial success")
        if any(q is not r and abs(q["t"] + q.get("duration", 0) - made) < 0.1 for q in reqs):
            continue
        before = [q for q in accepted if q["t"] + q.get("duration", 0) < made]
        want = sum(q["items"] for q in before) - 5
        sent = self_value(r, "tcpotel.export.sent", "metrics")
        assert sent == want, (
            "tcpotel.export.sent{metrics} %d, points the collector accepted %d (items of "
            "the 2xx bodies answered before, minus the 5 rejected)" % (sent, want))
        batches = self_value(r, "tcpotel.export.batches", "metrics")
        assert batches == len(before), ("tcpotel.export.batches{metrics}", batches,
                                        "2xx bodies answered before", len(before))
        # Every body the receiver read, as it came (compressed); no traces in this test.
        nbytes = self_value(r, "tcpotel.export.bytes", "metrics")
        want_bytes = sum(q["bytes"] for q in reqs if q["t"] + q.get("duration", 0) < made)
        assert nbytes == want_bytes, ("tcpotel.export.bytes{metrics}", nbytes,
                                      "bytes the receiver read", want_bytes)
        assert self_value(r, "tcpotel.export.bytes", "traces") == 0, r
        note("at a body made %.2fs after the partial success: sent %d, batches %d, bytes %d",
             made - p["t"], sent, batches, nbytes)
        break
