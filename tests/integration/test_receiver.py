# SPDX-License-Identifier: Apache-2.0
"""Self-test of tests/receiver/otlp_receiver.py: it must accept what a correct
exporter sends (the encoder's golden bodies) and refuse, with a 400 naming the
rule, every kind of body a Collector would choke on. No root needed."""

import copy
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RECEIVER = os.path.join(ROOT, "tests", "receiver", "otlp_receiver.py")
GOLDEN = os.path.join(ROOT, "tests", "golden")


class Receiver:
    """One receiver process on a free port, with its log in a temporary file."""

    def __init__(self, *extra):
        fd, self.log_path = tempfile.mkstemp(prefix="otlp-receiver-", suffix=".jsonl")
        os.close(fd)
        self.proc = subprocess.Popen(
            [sys.executable, RECEIVER, "--listen", "127.0.0.1:0", "--log", self.log_path,
             "--control", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise AssertionError(f"receiver did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.rsplit(":", 1)[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method, path, data=None, headers=None):
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")

    def post(self, path, body, gz=False, ctype="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        headers = {"Content-Type": ctype}
        if gz:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return self.request("POST", path, body, headers)

    def control(self, query):
        return self.request("GET", "/control?" + query)

    def log(self):
        with open(self.log_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.control("exit=1")
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        os.unlink(self.log_path)


def golden(name):
    with open(os.path.join(GOLDEN, name), encoding="utf-8") as f:
        return f.read().strip()


def metrics_body():
    return json.loads(golden("metrics_basic.json"))


def traces_body():
    return json.loads(golden("traces_basic.json"))


def first_span(body):
    return body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]


def metric(body, name):
    for m in body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]:
        if m["name"] == name:
            return m
    raise KeyError(name)


def histogram_point(body):
    return metric(body, "tcp.srtt")["histogram"]["dataPoints"][0]


def sum_point(body):
    return metric(body, "tcp.io")["sum"]["dataPoints"][0]


# ---- bodies that break one rule each: (path, mutate, words the message must hold) ----


def _set(getter, key, value):
    def mutate(body):
        getter(body)[key] = value
    return mutate


def _rename(getter, old, new):
    def mutate(body):
        obj = getter(body)
        obj[new] = obj.pop(old)
    return mutate


def _drop(getter, key):
    def mutate(body):
        del getter(body)[key]
    return mutate


def _dup_attr(body):
    attrs = first_span(body)["attributes"]
    attrs.append(copy.deepcopy(attrs[0]))


def _no_service_name(body):
    res = body["resourceSpans"][0]["resource"]
    res["attributes"] = [a for a in res["attributes"] if a["key"] != "service.name"]


def _int_service_name(body):
    res = body["resourceSpans"][0]["resource"]
    res["attributes"][0]["value"] = {"intValue": "5"}


def _bucket_len(body):
    p = histogram_point(body)
    p["bucketCounts"] = p["bucketCounts"][:-1]


def _bucket_sum(body):
    histogram_point(body)["count"] = "11"


def _bounds_order(body):
    histogram_point(body)["explicitBounds"] = [0.0001, 0.01, 0.001, 0.1]


def _bounds_equal(body):
    histogram_point(body)["explicitBounds"] = [0.0001, 0.001, 0.001, 0.1]


def _end_before_start(body):
    span = first_span(body)
    span["endTimeUnixNano"] = str(int(span["startTimeUnixNano"]) - 1)


def _string_int_values(body):
    histogram_point(body)["bucketCounts"] = [1, 5, 3, 1, 0]


M, T = "/v1/metrics", "/v1/traces"
RULE_CASES = [
    ("unknown key", T, _set(first_span, "durationNano", "5"), ["unknown field", "durationNano"]),
    ("unknown key in resource", M,
     _set(lambda b: b["resourceMetrics"][0]["resource"], "labels", []), ["unknown field"]),
    ("snake_case key", T, _rename(first_span, "startTimeUnixNano", "start_time_unix_nano"),
     ["snake_case", "startTimeUnixNano"]),
    ("snake_case top level", M, _rename(lambda b: b, "resourceMetrics", "resource_metrics"),
     ["snake_case"]),
    ("enum name for kind", T, _set(first_span, "kind", "SPAN_KIND_CLIENT"),
     ["enum", "integer", "SPAN_KIND_CLIENT"]),
    ("enum name for temporality", M,
     _set(lambda b: metric(b, "tcp.io")["sum"], "aggregationTemporality",
          "AGGREGATION_TEMPORALITY_CUMULATIVE"), ["enum", "integer"]),
    ("enum name for status.code", T,
     _set(lambda b: b["resourceSpans"][1]["scopeSpans"][0]["spans"][0]["status"], "code",
          "STATUS_CODE_ERROR"), ["enum", "integer"]),
    ("timeUnixNano as number", M, _set(sum_point, "timeUnixNano", 1700000010000000000),
     ["timeUnixNano", "decimal string"]),
    ("startTimeUnixNano as number", T, _set(first_span, "startTimeUnixNano", 1700000000),
     ["startTimeUnixNano", "decimal string"]),
    ("asInt as number", M, _set(sum_point, "asInt", 123456), ["asInt", "decimal string"]),
    ("count as number", M, _set(histogram_point, "count", 10), ["count", "decimal string"]),
    ("bucketCounts as numbers", M, _string_int_values, ["bucketCounts[0]", "decimal string"]),
    ("intValue as number", T,
     _set(lambda b: b["resourceSpans"][0]["resource"]["attributes"][1]["value"], "intValue",
          100), ["intValue", "decimal string"]),
    ("traceId upper case", T, _set(first_span, "traceId", "4BF92F3577B34DA6A3CE929D0E0E4736"),
     ["traceId", "32 lowercase hex"]),
    ("traceId as base64", T, _set(first_span, "traceId", "S/kvNXezTaajzpKdDg5HNg=="),
     ["traceId", "32 lowercase hex"]),
    ("spanId too short", T, _set(first_span, "spanId", "00f067aa0ba902"),
     ["spanId", "16 lowercase hex"]),
    ("traceId all zero", T, _set(first_span, "traceId", "0" * 32), ["traceId", "all-zero"]),
    ("parentSpanId all zero", T, _set(first_span, "parentSpanId", "0" * 16),
     ["parentSpanId", "all-zero"]),
    ("missing timeUnixNano", M, _drop(sum_point, "timeUnixNano"),
     ["timeUnixNano", "missing or zero"]),
    ("zero startTimeUnixNano on a sum", M, _set(sum_point, "startTimeUnixNano", "0"),
     ["startTimeUnixNano", "missing or zero"]),
    ("missing span endTimeUnixNano", T, _drop(first_span, "endTimeUnixNano"),
     ["endTimeUnixNano", "missing or zero"]),
    ("missing service.name", T, _no_service_name, ["service.name", "missing"]),
    ("service.name not a string", T, _int_service_name, ["service.name"]),
    ("bucketCounts length", M, _bucket_len, ["bucketCounts", "explicitBounds"]),
    ("bucketCounts sum != count", M, _bucket_sum, ["sum(bucketCounts)", "count"]),
    ("explicitBounds decreasing", M, _bounds_order, ["explicitBounds", "strictly increasing"]),
    ("explicitBounds equal", M, _bounds_equal, ["explicitBounds", "strictly increasing"]),
    ("duplicate attribute key", T, _dup_attr, ["duplicate attribute key", "network.transport"]),
    ("end before start", T, _end_before_start, ["endTimeUnixNano", "startTimeUnixNano"]),
    ("metric without data", M, _drop(lambda b: metric(b, "tcp.io"), "sum"), ["Metric"]),
    ("asInt and asDouble", M, _set(sum_point, "asDouble", 1.5), ["oneof"]),
]


def test_accepts_golden_bodies():
    with Receiver() as r:
        for name, path in (("metrics_basic.json", M), ("traces_basic.json", T)):
            for gz in (False, True):
                status, _, resp = r.post(path, golden(name), gz=gz)
                assert status == 200, (name, gz, status, resp)
                assert resp == {"partialSuccess": {}}, resp
        log = r.log()
        assert [e["status"] for e in log] == [200] * 4, log
        assert log[0]["path"] == M and log[2]["path"] == T
        assert log[0]["body"] == metrics_body()
        assert log[3]["body"] == traces_body()
        assert log[1]["headers"].get("content-encoding") == "gzip"
        assert all(isinstance(e["t"], float) for e in log)


def test_rejects_each_rule():
    failures = []
    with Receiver() as r:
        for what, path, mutate, words in RULE_CASES:
            body = metrics_body() if path == M else traces_body()
            mutate(body)
            status, headers, resp = r.post(path, body)
            msg = (resp or {}).get("message", "")
            if status != 400 or resp.get("code") != 3 or not all(w in msg for w in words):
                failures.append(f"{what}: {status} {resp}")
        log = r.log()
        assert len(log) == len(RULE_CASES), len(log)
        assert all(e["status"] == 400 and e["message"] and "body" not in e for e in log)
    assert not failures, "\n".join(failures)


def test_rejects_bad_transport():
    with Receiver() as r:
        good = golden("traces_basic.json")
        status, _, resp = r.post(T, good[:-5])
        assert status == 400 and "invalid JSON" in resp["message"], resp
        status, _, resp = r.post(T, good.replace('"kind":3', '"kind":NaN', 1))
        assert status == 400 and "invalid JSON" in resp["message"], resp
        status, _, resp = r.post(T, b'{"resourceSpans":[],"resourceSpans":[]}')
        assert status == 400 and "duplicate" in resp["message"], resp
        status, _, resp = r.post(T, b'{"resourceSpans":[]}\xff')
        assert status == 400 and "UTF-8" in resp["message"], resp
        status, _, resp = r.request("POST", T, b"\x1f\x8b\x08\x00garbage",
                                    {"Content-Type": "application/json",
                                     "Content-Encoding": "gzip"})
        assert status == 400 and "gzip" in resp["message"], resp
        status, _, resp = r.request("POST", T, good.encode(),
                                    {"Content-Type": "application/json",
                                     "Content-Encoding": "br"})
        assert status == 400 and "Content-Encoding" in resp["message"], resp
        # Per the OTLP/HTTP spec an unsupported media type is a 415.
        for ctype in ("application/x-protobuf", "text/plain"):
            status, _, resp = r.post(T, good, ctype=ctype)
            assert status == 415 and "Content-Type" in resp["message"], (ctype, resp)
        status, _, resp = r.post(T, good, ctype="application/json; charset=utf-8")
        assert status == 200, resp
        status, _, _ = r.post("/v1/logs", good)
        assert status == 404
        status, _, _ = r.request("GET", T)
        assert status == 405
        status, _, resp = r.post(M, traces_body())
        assert status == 400 and "unknown field" in resp["message"], resp


def _with_io(body, value, start=None):
    body = copy.deepcopy(body)
    p = sum_point(body)
    p["asInt"] = str(value)
    if start:
        p["startTimeUnixNano"] = start
    return body


def test_monotonic_sum_going_down():
    with Receiver() as r:
        base = metrics_body()
        assert r.post(M, _with_io(base, 1000))[0] == 200
        assert r.post(M, _with_io(base, 1000))[0] == 200  # equal is fine
        status, _, resp = r.post(M, _with_io(base, 999))
        assert status == 400, resp
        assert "went down" in resp["message"] and "tcp.io" in resp["message"], resp
        # A rejected body leaves the stream as it was.
        broken = _with_io(base, 5000)
        histogram_point(broken)["count"] = "11"
        assert r.post(M, broken)[0] == 400
        assert r.post(M, _with_io(base, 1001))[0] == 200
        # A new start time is a new stream (the counter restarted).
        assert r.post(M, _with_io(base, 1, start="1700000005000000000"))[0] == 200
        # Other attributes are another stream.
        other = _with_io(base, 1)
        sum_point(other)["attributes"][2]["value"]["stringValue"] = "10.0.0.9"
        assert r.post(M, other)[0] == 200
        # Going down inside one body is caught too.
        twice = _with_io(base, 2000)
        points = metric(twice, "tcp.io")["sum"]["dataPoints"]
        later = copy.deepcopy(points[0])
        later["asInt"] = "1500"
        points.append(later)
        status, _, resp = r.post(M, twice)
        assert status == 400 and "went down" in resp["message"], resp


def test_cumulative_histogram_count_going_down():
    with Receiver() as r:
        base = metrics_body()
        assert r.post(M, base)[0] == 200
        lower = metrics_body()
        p = histogram_point(lower)
        p["count"] = "9"
        p["bucketCounts"] = ["1", "4", "3", "1", "0"]
        status, _, resp = r.post(M, lower)
        assert status == 400 and "went down" in resp["message"], resp
        assert "tcp.srtt" in resp["message"], resp
        # A non-monotonic sum may go down.
        down = metrics_body()
        metric(down, "tcp.connection.active")["sum"]["dataPoints"][0]["asInt"] = "0"
        assert r.post(M, down)[0] == 200


def test_unavailable_mode():
    with Receiver() as r:
        status, _, state = r.control("mode=unavailable&retry_after=7&count=2")
        assert status == 200 and state["mode"] == "unavailable", state
        body = golden("traces_basic.json")
        for _ in range(2):
            status, headers, resp = r.post(T, body)
            assert status == 503, (status, resp)
            assert headers.get("Retry-After") == "7", headers
            assert resp["code"] == 14, resp
        status, _, _ = r.post(T, body)
        assert status == 200
        log = r.log()
        assert [e["status"] for e in log] == [503, 503, 200], log
        assert log[0]["t"] <= log[1]["t"] <= log[2]["t"]
        # Without count the mode stays until changed.
        r.control("mode=throttle&retry_after=1")
        for _ in range(3):
            status, headers, _ = r.post(T, body)
            assert status == 429 and headers.get("Retry-After") == "1"
        r.control("mode=ok")
        assert r.post(T, body)[0] == 200


def test_other_fault_modes():
    with Receiver("--mode", "reject", "--count", "1") as r:
        body = golden("traces_basic.json")
        status, _, resp = r.post(T, body)
        assert status == 400 and resp["code"] == 3, resp
        assert r.post(T, body)[0] == 200
        r.control("mode=partial&rejected=2")
        status, _, resp = r.post(T, body)
        assert status == 200, resp
        assert resp["partialSuccess"]["rejectedSpans"] == "2", resp
        assert resp["partialSuccess"]["errorMessage"], resp
        status, _, resp = r.post(M, golden("metrics_basic.json"))
        assert resp["partialSuccess"]["rejectedDataPoints"] == "2", resp
        r.control("mode=slow&delay=0.4&count=1")
        t0 = time.monotonic()
        assert r.post(T, body)[0] == 200
        assert time.monotonic() - t0 >= 0.4
        t0 = time.monotonic()
        assert r.post(T, body)[0] == 200
        assert time.monotonic() - t0 < 0.4
        status, _, resp = r.control("mode=bogus")
        assert status == 400, resp
        status, _, _ = r.control("exit=1")
        assert status == 200
        assert r.proc.wait(timeout=5) == 0


def test_log_options():
    with Receiver("--no-body") as r:
        assert r.post(T, golden("traces_basic.json"), gz=True)[0] == 200
        assert r.post(M, golden("metrics_basic.json"))[0] == 200
        log = r.log()
        assert [e["items"] for e in log] == [3, 7], log
        assert all("body" not in e for e in log), log
    with Receiver("--light") as r:
        # No validation at all: even a bad body is taken, and counted in bytes.
        status, _, resp = r.post(T, b'{"resource_spans":[]}', gz=True)
        assert status == 200 and resp == {"partialSuccess": {}}, resp
        log = r.log()
        assert log[0]["decoded_bytes"] == 21 and "body" not in log[0], log
        # Items counted by key, as many as validation counts in the golden bodies.
        assert r.post(T, golden("traces_basic.json"), gz=True)[0] == 200
        assert r.post(M, golden("metrics_basic.json"))[0] == 200
        assert [e["items"] for e in r.log()[1:]] == [3, 7], r.log()


# ---- the benchmark's receiver (bench/otlp_sink.c) --------------------------------


SINK = os.path.join(ROOT, ".output", "otlp-sink")


def many_spans_body(n):
    """A traces body of n spans in one resource, large enough to cross the sink's
    256 KiB inflate chunks."""
    body = traces_body()
    span = first_span(body)
    spans = []
    for i in range(n):
        s = copy.deepcopy(span)
        s["spanId"] = "%016x" % (i + 1)
        spans.append(s)
    body["resourceSpans"] = body["resourceSpans"][:1]
    body["resourceSpans"][0]["scopeSpans"] = [{"spans": spans}]
    text = json.dumps(body, separators=(",", ":"))
    # Lengthen the first span's name so that a "spanId" key straddles the first
    # chunk boundary (256 KiB of decoded bytes): it must be counted once.
    key, boundary = '"spanId":', 256 * 1024
    before = text.rindex(key, 0, boundary - 4)
    spans[0]["name"] += "x" * (boundary - 4 - before)
    text = json.dumps(body, separators=(",", ":"))
    assert text.index(key, boundary - 8) == boundary - 4
    return text.encode()


def test_bench_sink_counts_and_refuses():
    """.output/otlp-sink answers 200 {} to gzip and plain bodies over one kept-alive
    connection, logging the bytes as received and decoded and the items counted by key
    (the same as validation counts in the golden bodies, and exact across its inflate
    chunks); it refuses corrupt or truncated gzip (400), another path (404), GET (405)
    and another content type (415), and prints its totals on SIGTERM."""
    import http.client
    assert os.access(SINK, os.X_OK), "%s missing: make .output/otlp-sink" % SINK
    fd, log_path = tempfile.mkstemp(prefix="otlp-sink-", suffix=".jsonl")
    os.close(fd)
    proc = subprocess.Popen([SINK, "--listen", "127.0.0.1:0", "--log", log_path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        conn = http.client.HTTPConnection("127.0.0.1", int(line.rsplit(":", 1)[1]), timeout=10)

        def post(path, data, gz=True, ctype="application/json", method="POST"):
            headers = {"Content-Type": ctype}
            if gz:
                headers["Content-Encoding"] = "gzip"
            conn.request(method, path, data, headers)
            r = conn.getresponse()
            return r.status, json.loads(r.read() or b"null")

        big = many_spans_body(5000)
        gz_big = gzip.compress(big)
        assert len(big) > 4 * 256 * 1024, len(big)
        assert post(T, gzip.compress(golden("traces_basic.json").encode())) == (200, {})
        assert post(M, golden("metrics_basic.json").encode(), gz=False) == (200, {})
        assert post(T, gz_big) == (200, {})
        bad = bytearray(gz_big)
        bad[-6] ^= 0xFF  # the CRC in the gzip trailer
        status, resp = post(T, bytes(bad))
        assert status == 400 and "checksum" in resp["message"], resp
        status, resp = post(T, gz_big[:len(gz_big) // 2])
        assert status == 400 and "ends early" in resp["message"], resp
        assert post("/v1/logs", b"{}", gz=False)[0] == 404
        assert post(T, None, gz=False, method="GET")[0] == 405
        assert post(T, b"{}", gz=False, ctype="application/x-protobuf")[0] == 415
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        with open(log_path, encoding="utf-8") as f:
            log = [json.loads(ln) for ln in f]
        assert [(e["path"], e["status"], e["items"]) for e in log[:3]] == [
            (T, 200, 3), (M, 200, 7), (T, 200, 5000)], log
        assert log[2]["decoded_bytes"] == len(big) and log[2]["bytes"] == len(gz_big), log[2]
        assert [e["status"] for e in log[3:]] == [400, 400], log
        assert "3 requests accepted, 5 refused" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        os.unlink(log_path)
