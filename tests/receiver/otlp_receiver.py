#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A Collector-shaped OTLP/HTTP JSON receiver for tests and benchmarks.

It accepts POST /v1/metrics and /v1/traces (application/json, optionally
gzip), checks every body strictly against the OTLP 1.x protobuf schema in its
proto3 JSON form, and keeps enough state to catch cumulative streams that go
backwards. Every request becomes one JSON line in --log. Faults (503,
slowness, permanent rejection, partial success) can be set at start and, with
--control, at run time through /control on the same port.

Python 3 standard library only. See tests/receiver/README.md.
"""

import argparse
import base64
import binascii
import gzip
import json
import math
import re
import socket
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# ---- schema ------------------------------------------------------------------
#
# Field types: "string", "bool", "int32", "uint32", "fixed32" (JSON numbers),
# "int64"/"uint64" (decimal strings), "double" (number or "NaN"/"Infinity"/
# "-Infinity"), "enum:NAME" (integer only), "hex16"/"hex8" (trace/span ids as
# lowercase hex of 16/8 bytes), "base64" (bytes), ("list", T), or a message
# name. Field names are the proto names in lowerCamelCase.

ENUMS = {
    "AggregationTemporality": range(0, 3),
    "SpanKind": range(0, 6),
    "StatusCode": range(0, 3),
}

KEYVALUES = ("list", "KeyValue")

SCHEMA = {
    "ExportMetricsServiceRequest": {"resourceMetrics": ("list", "ResourceMetrics")},
    "ExportTraceServiceRequest": {"resourceSpans": ("list", "ResourceSpans")},
    # common.proto
    "AnyValue": {
        "stringValue": "string", "boolValue": "bool", "intValue": "int64",
        "doubleValue": "double", "arrayValue": "ArrayValue", "kvlistValue": "KeyValueList",
        "bytesValue": "base64", "stringValueStrindex": "int32",
    },
    "ArrayValue": {"values": ("list", "AnyValue")},
    "KeyValueList": {"values": KEYVALUES},
    "KeyValue": {"key": "string", "value": "AnyValue", "keyStrindex": "int32"},
    "InstrumentationScope": {
        "name": "string", "version": "string", "attributes": KEYVALUES,
        "droppedAttributesCount": "uint32",
    },
    "EntityRef": {
        "schemaUrl": "string", "type": "string", "idKeys": ("list", "string"),
        "descriptionKeys": ("list", "string"),
    },
    # resource.proto
    "Resource": {
        "attributes": KEYVALUES, "droppedAttributesCount": "uint32",
        "entityRefs": ("list", "EntityRef"),
    },
    # metrics.proto
    "ResourceMetrics": {
        "resource": "Resource", "scopeMetrics": ("list", "ScopeMetrics"), "schemaUrl": "string",
    },
    "ScopeMetrics": {
        "scope": "InstrumentationScope", "metrics": ("list", "Metric"), "schemaUrl": "string",
    },
    "Metric": {
        "name": "string", "description": "string", "unit": "string", "gauge": "Gauge",
        "sum": "Sum", "histogram": "Histogram", "exponentialHistogram": "ExponentialHistogram",
        "summary": "Summary", "metadata": KEYVALUES,
    },
    "Gauge": {"dataPoints": ("list", "NumberDataPoint")},
    "Sum": {
        "dataPoints": ("list", "NumberDataPoint"),
        "aggregationTemporality": "enum:AggregationTemporality", "isMonotonic": "bool",
    },
    "Histogram": {
        "dataPoints": ("list", "HistogramDataPoint"),
        "aggregationTemporality": "enum:AggregationTemporality",
    },
    "ExponentialHistogram": {
        "dataPoints": ("list", "ExponentialHistogramDataPoint"),
        "aggregationTemporality": "enum:AggregationTemporality",
    },
    "Summary": {"dataPoints": ("list", "SummaryDataPoint")},
    "NumberDataPoint": {
        "attributes": KEYVALUES, "startTimeUnixNano": "uint64", "timeUnixNano": "uint64",
        "asDouble": "double", "asInt": "int64", "exemplars": ("list", "Exemplar"),
        "flags": "uint32",
    },
    "HistogramDataPoint": {
        "attributes": KEYVALUES, "startTimeUnixNano": "uint64", "timeUnixNano": "uint64",
        "count": "uint64", "sum": "double", "bucketCounts": ("list", "uint64"),
        "explicitBounds": ("list", "double"), "exemplars": ("list", "Exemplar"),
        "flags": "uint32", "min": "double", "max": "double",
    },
    "ExponentialHistogramDataPoint": {
        "attributes": KEYVALUES, "startTimeUnixNano": "uint64", "timeUnixNano": "uint64",
        "count": "uint64", "sum": "double", "scale": "int32", "zeroCount": "uint64",
        "positive": "Buckets", "negative": "Buckets", "flags": "uint32",
        "exemplars": ("list", "Exemplar"), "min": "double", "max": "double",
        "zeroThreshold": "double",
    },
    "Buckets": {"offset": "int32", "bucketCounts": ("list", "uint64")},
    "SummaryDataPoint": {
        "attributes": KEYVALUES, "startTimeUnixNano": "uint64", "timeUnixNano": "uint64",
        "count": "uint64", "sum": "double", "quantileValues": ("list", "ValueAtQuantile"),
        "flags": "uint32",
    },
    "ValueAtQuantile": {"quantile": "double", "value": "double"},
    "Exemplar": {
        "filteredAttributes": KEYVALUES, "timeUnixNano": "uint64", "asDouble": "double",
        "asInt": "int64", "spanId": "hex8", "traceId": "hex16",
    },
    # trace.proto
    "ResourceSpans": {
        "resource": "Resource", "scopeSpans": ("list", "ScopeSpans"), "schemaUrl": "string",
    },
    "ScopeSpans": {
        "scope": "InstrumentationScope", "spans": ("list", "Span"), "schemaUrl": "string",
    },
    "Span": {
        "traceId": "hex16", "spanId": "hex8", "traceState": "string", "parentSpanId": "hex8",
        "flags": "fixed32", "name": "string", "kind": "enum:SpanKind",
        "startTimeUnixNano": "uint64", "endTimeUnixNano": "uint64", "attributes": KEYVALUES,
        "droppedAttributesCount": "uint32", "events": ("list", "Event"),
        "droppedEventsCount": "uint32", "links": ("list", "Link"), "droppedLinksCount": "uint32",
        "status": "Status",
    },
    "Event": {
        "timeUnixNano": "uint64", "name": "string", "attributes": KEYVALUES,
        "droppedAttributesCount": "uint32",
    },
    "Link": {
        "traceId": "hex16", "spanId": "hex8", "traceState": "string", "attributes": KEYVALUES,
        "droppedAttributesCount": "uint32", "flags": "fixed32",
    },
    "Status": {"message": "string", "code": "enum:StatusCode"},
}

ONEOFS = {
    "Metric": ("gauge", "sum", "histogram", "exponentialHistogram", "summary"),
    "NumberDataPoint": ("asDouble", "asInt"),
    "Exemplar": ("asDouble", "asInt"),
    "AnyValue": tuple(SCHEMA["AnyValue"]),
}
# A metric without data and a number point without a value say nothing.
ONEOF_REQUIRED = {"Metric", "NumberDataPoint"}

INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "fixed32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)\Z")
HEX = re.compile(r"[0-9a-f]*\Z")
DOUBLE_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class Reject(Exception):
    """A body that a strict OTLP receiver refuses; the message names the rule."""


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def describe(v):
    return f"{type(v).__name__} {json.dumps(v)[:60]}"


def check_value(ftype, v, path):
    """Checks one field value; returns it converted (64-bit ints to int, doubles to float)."""
    if isinstance(ftype, tuple):
        if not isinstance(v, list):
            raise Reject(f"{path}: repeated field must be a JSON array, got {describe(v)}")
        return [check_value(ftype[1], x, f"{path}[{i}]") for i, x in enumerate(v)]
    if ftype in SCHEMA:
        return check_message(ftype, v, path)
    if ftype == "string":
        if not isinstance(v, str):
            raise Reject(f"{path}: must be a string, got {describe(v)}")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise Reject(f"{path}: string holds an unpaired surrogate (invalid UTF-8)")
        return v
    if ftype == "bool":
        if not isinstance(v, bool):
            raise Reject(f"{path}: must be true or false, got {describe(v)}")
        return v
    if ftype.startswith("enum:"):
        name = ftype[5:]
        if isinstance(v, str):
            raise Reject(f"{path}: enum {name} must be an integer, got the name {json.dumps(v)}")
        if not isinstance(v, int) or isinstance(v, bool):
            raise Reject(f"{path}: enum {name} must be an integer, got {describe(v)}")
        if v not in ENUMS[name]:
            raise Reject(f"{path}: enum {name} has no value {v}")
        return v
    if ftype in ("int64", "uint64"):
        if not isinstance(v, str):
            raise Reject(f"{path}: 64-bit integer ({ftype}) must be a decimal string, "
                         f"got {describe(v)}")
        if not DECIMAL.match(v):
            raise Reject(f"{path}: 64-bit integer ({ftype}) must be a decimal string, "
                         f"got {json.dumps(v)}")
        n = int(v)
        lo, hi = INT_RANGES[ftype]
        if not lo <= n <= hi:
            raise Reject(f"{path}: {v} is out of range for {ftype}")
        return n
    if ftype in ("int32", "uint32", "fixed32"):
        if not isinstance(v, int) or isinstance(v, bool):
            raise Reject(f"{path}: {ftype} must be a JSON integer, got {describe(v)}")
        lo, hi = INT_RANGES[ftype]
        if not lo <= v <= hi:
            raise Reject(f"{path}: {v} is out of range for {ftype}")
        return v
    if ftype == "double":
        if isinstance(v, str) and v in DOUBLE_WORDS:
            return DOUBLE_WORDS[v]
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise Reject(f"{path}: double must be a JSON number (or \"NaN\", \"Infinity\", "
                         f"\"-Infinity\"), got {describe(v)}")
        return float(v)
    if ftype in ("hex16", "hex8"):
        size = 32 if ftype == "hex16" else 16
        if not isinstance(v, str) or len(v) != size or not HEX.match(v):
            raise Reject(f"{path}: id must be {size} lowercase hex digits, got {describe(v)}")
        if v == "0" * size:
            raise Reject(f"{path}: id is all-zero (invalid)")
        return v
    if ftype == "base64":
        if not isinstance(v, str):
            raise Reject(f"{path}: bytes must be a base64 string, got {describe(v)}")
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise Reject(f"{path}: bytes must be base64, got {json.dumps(v)[:60]}")
        return v
    raise AssertionError(f"schema type {ftype}")


def check_message(name, obj, path):
    """Checks a message's fields; returns a dict of converted values (unset fields absent)."""
    if not isinstance(obj, dict):
        raise Reject(f"{path or '(body)'}: {name} must be a JSON object, got {describe(obj)}")
    fields = SCHEMA[name]
    out = {}
    for key, v in obj.items():
        where = f"{path}.{key}" if path else key
        if key not in fields:
            if "_" in key and camel(key) in fields:
                raise Reject(f"{where}: snake_case field name; this receiver wants the "
                             f"lowerCamelCase JSON name {camel(key)!r}")
            raise Reject(f"{where}: unknown field {key!r} in {name} "
                         f"(known: {', '.join(fields)})")
        if v is None:  # proto3 JSON: null means the default
            continue
        out[key] = check_value(fields[key], v, where)
    if name in ONEOFS:
        set_ = [k for k in ONEOFS[name] if k in out]
        if len(set_) > 1:
            raise Reject(f"{path}: {name} sets more than one of oneof {set_}")
        if not set_ and name in ONEOF_REQUIRED:
            raise Reject(f"{path}: {name} sets none of {list(ONEOFS[name])}")
    return out


# ---- semantic rules ------------------------------------------------------------


def check_attributes(kvs, path):
    seen = set()
    for i, kv in enumerate(kvs):
        key = kv.get("key", "")
        if key in seen:
            raise Reject(f"{path}[{i}]: duplicate attribute key {key!r} in one attribute list")
        seen.add(key)


def attrs_key(kvs):
    return json.dumps(sorted((kv.get("key", ""), kv.get("value", {})) for kv in kvs),
                      sort_keys=True)


def check_resource(res, path):
    attrs = res.get("attributes", [])
    check_attributes(attrs, f"{path}.attributes")
    for kv in attrs:
        if kv.get("key") == "service.name":
            v = kv.get("value", {}).get("stringValue")
            if not isinstance(v, str) or not v:
                raise Reject(f"{path}: resource attribute service.name must be a non-empty "
                             f"stringValue")
            return
    raise Reject(f"{path}: resource attribute service.name is missing")


def need_time(obj, key, path):
    if not obj.get(key):
        raise Reject(f"{path}: {key} is missing or zero")
    return obj[key]


def check_scope(sc, path):
    check_attributes(sc.get("scope", {}).get("attributes", []), f"{path}.scope.attributes")


def check_point_common(p, path, need_start):
    check_attributes(p.get("attributes", []), f"{path}.attributes")
    t = need_time(p, "timeUnixNano", path)
    if need_start:
        s = need_time(p, "startTimeUnixNano", path)
    else:
        s = p.get("startTimeUnixNano", 0)
    if s and t < s:
        raise Reject(f"{path}: timeUnixNano {t} < startTimeUnixNano {s}")
    for i, ex in enumerate(p.get("exemplars", [])):
        check_attributes(ex.get("filteredAttributes", []),
                         f"{path}.exemplars[{i}].filteredAttributes")
        need_time(ex, "timeUnixNano", f"{path}.exemplars[{i}]")


def check_histogram_point(p, path):
    counts = p.get("bucketCounts", [])
    bounds = p.get("explicitBounds", [])
    if counts or bounds:
        if len(counts) != len(bounds) + 1:
            raise Reject(f"{path}: bucketCounts has {len(counts)} entries, explicitBounds "
                         f"{len(bounds)}: want len(bucketCounts) == len(explicitBounds) + 1")
        if sum(counts) != p.get("count", 0):
            raise Reject(f"{path}: sum(bucketCounts) = {sum(counts)} != count "
                         f"{p.get('count', 0)}")
    for i in range(len(bounds)):
        if not math.isfinite(bounds[i]):
            raise Reject(f"{path}.explicitBounds[{i}]: bound is not finite")
        if i and not bounds[i - 1] < bounds[i]:
            raise Reject(f"{path}.explicitBounds: not strictly increasing at index {i} "
                         f"({bounds[i - 1]!r} then {bounds[i]!r})")
    if "min" in p and "max" in p and p["min"] > p["max"]:
        raise Reject(f"{path}: min {p['min']!r} > max {p['max']!r}")


def check_metrics(body, streams):
    """Semantic checks; returns (points, updates) where updates go into streams on success."""
    points = 0
    updates = {}
    for r, rm in enumerate(body.get("resourceMetrics", [])):
        rpath = f"resourceMetrics[{r}]"
        res = rm.get("resource")
        if res is None:
            raise Reject(f"{rpath}: resource is missing (it must hold service.name)")
        check_resource(res, f"{rpath}.resource")
        rkey = attrs_key(res.get("attributes", []))
        for s, sm in enumerate(rm.get("scopeMetrics", [])):
            spath = f"{rpath}.scopeMetrics[{s}]"
            check_scope(sm, spath)
            for m, metric in enumerate(sm.get("metrics", [])):
                mpath = f"{spath}.metrics[{m}]"
                name = metric.get("name", "")
                if not name:
                    raise Reject(f"{mpath}: metric name is missing")
                kind = next(k for k in ONEOFS["Metric"] if k in metric)
                data = metric[kind]
                dps = data.get("dataPoints", [])
                temporality = data.get("aggregationTemporality", 0)
                if kind in ("sum", "histogram", "exponentialHistogram") and temporality == 0:
                    raise Reject(f"{mpath}.{kind}: aggregationTemporality is missing or "
                                 f"UNSPECIFIED")
                cumulative = temporality == 2
                for i, p in enumerate(dps):
                    ppath = f"{mpath}.{kind}.dataPoints[{i}]"
                    points += 1
                    check_point_common(p, ppath, need_start=kind != "gauge")
                    if kind == "histogram":
                        check_histogram_point(p, ppath)
                    skey = (rkey, name, attrs_key(p.get("attributes", [])),
                            p.get("startTimeUnixNano", 0))
                    if kind == "sum" and cumulative and data.get("isMonotonic"):
                        value = p.get("asInt", p.get("asDouble"))
                        what = "value"
                    elif kind in ("histogram", "exponentialHistogram") and cumulative:
                        value = p.get("count", 0)
                        what = "count"
                    else:
                        continue
                    skey = (kind,) + skey
                    prev = updates.get(skey, streams.get(skey))
                    if prev is not None and value < prev:
                        raise Reject(f"{ppath}: cumulative {kind} {name!r} {what} went down "
                                     f"from {prev} to {value} for the same stream "
                                     f"(resource, name, attributes, startTimeUnixNano)")
                    updates[skey] = value
    return points, updates


def check_traces(body):
    spans = 0
    for r, rs in enumerate(body.get("resourceSpans", [])):
        rpath = f"resourceSpans[{r}]"
        res = rs.get("resource")
        if res is None:
            raise Reject(f"{rpath}: resource is missing (it must hold service.name)")
        check_resource(res, f"{rpath}.resource")
        for s, ss in enumerate(rs.get("scopeSpans", [])):
            spath = f"{rpath}.scopeSpans[{s}]"
            check_scope(ss, spath)
            for i, span in enumerate(ss.get("spans", [])):
                path = f"{spath}.spans[{i}]"
                spans += 1
                for key in ("traceId", "spanId"):
                    if key not in span:
                        raise Reject(f"{path}: {key} is missing")
                if not span.get("name"):
                    raise Reject(f"{path}: span name is missing")
                start = need_time(span, "startTimeUnixNano", path)
                end = need_time(span, "endTimeUnixNano", path)
                if end < start:
                    raise Reject(f"{path}: endTimeUnixNano {end} < startTimeUnixNano {start}")
                check_attributes(span.get("attributes", []), f"{path}.attributes")
                for e, ev in enumerate(span.get("events", [])):
                    need_time(ev, "timeUnixNano", f"{path}.events[{e}]")
                    check_attributes(ev.get("attributes", []), f"{path}.events[{e}].attributes")
                for k, link in enumerate(span.get("links", [])):
                    for key in ("traceId", "spanId"):
                        if key not in link:
                            raise Reject(f"{path}.links[{k}]: {key} is missing")
                    check_attributes(link.get("attributes", []),
                                     f"{path}.links[{k}].attributes")
    return spans


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _no_dup_keys(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate object key {k!r}")
        obj[k] = v
    return obj


def parse_json(raw):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Reject(f"invalid JSON: body is not valid UTF-8 ({e})")
    try:
        return json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_dup_keys)
    except ValueError as e:
        raise Reject(f"invalid JSON: {e}")


# ---- server ----------------------------------------------------------------------

ROUTES = {
    "/v1/metrics": ("ExportMetricsServiceRequest", "rejectedDataPoints"),
    "/v1/traces": ("ExportTraceServiceRequest", "rejectedSpans"),
}
# --light counts items by their JSON key, without parsing: one "spanId" per span,
# one "timeUnixNano" per metric point (as the agent writes them: no exemplars,
# events or links, no space before the colon).
LIGHT_ITEM_KEY = {"/v1/metrics": b'"timeUnixNano":', "/v1/traces": b'"spanId":'}
MODES = ("ok", "unavailable", "throttle", "slow", "reject", "partial")


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.mode = args.mode
        self.retry_after = args.retry_after
        self.delay = args.delay
        self.remaining = args.count  # None: until changed
        self.rejected = args.rejected
        self.streams = {}
        self.counts = {}
        self.log_lock = threading.Lock()
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None

    def take_mode(self):
        """The fault for this request; a counted mode falls back to ok when used up."""
        with self.lock:
            mode = self.mode
            if mode != "ok" and self.remaining is not None:
                self.remaining -= 1
                if self.remaining <= 0:
                    self.mode, self.remaining = "ok", None
            return mode, self.retry_after, self.delay, self.rejected

    def record(self, entry):
        with self.lock:
            key = f"{entry['path']} {entry['status']}"
            self.counts[key] = self.counts.get(key, 0) + 1
        if not self.log:
            return
        line = json.dumps(entry, separators=(",", ":"), allow_nan=True)
        with self.log_lock:
            self.log.write(line + "\n")
            self.log.flush()

    def describe(self):
        with self.lock:
            return {"mode": self.mode, "retry_after": self.retry_after, "delay": self.delay,
                    "count": self.remaining, "rejected": self.rejected,
                    "streams": len(self.streams), "requests": dict(self.counts)}


class Server(ThreadingHTTPServer):
    daemon_threads = True


class Server6(Server):
    address_family = socket.AF_INET6


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "otlp-receiver/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def reply(self, status, obj, headers=()):
        data = json.dumps(obj, separators=(",", ":")).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/control" and self.server.control:
            return self.control(url)
        if url.path in ROUTES:
            return self.reply(405, {"code": 12, "message": "use POST"}, [("Allow", "POST")])
        self.reply(404, {"code": 5, "message": f"no such path {url.path}"})

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path == "/control" and self.server.control:
            self.read_body()
            return self.control(url)
        if url.path not in ROUTES:
            self.read_body()
            return self.reply(404, {"code": 5, "message": f"no such path {url.path}"})
        self.export(url.path)

    def control(self, url):
        state = self.server.state
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            with state.lock:
                if "mode" in q:
                    if q["mode"] not in MODES:
                        raise ValueError(f"mode must be one of {', '.join(MODES)}")
                    state.mode = q["mode"]
                    state.remaining = int(q["count"]) if "count" in q else None
                elif "count" in q:
                    state.remaining = int(q["count"])
                if "retry_after" in q:
                    state.retry_after = q["retry_after"]
                if "delay" in q:
                    state.delay = float(q["delay"])
                if "rejected" in q:
                    state.rejected = int(q["rejected"])
                if q.get("reset_streams") == "1":
                    state.streams.clear()
        except ValueError as e:
            return self.reply(400, {"code": 3, "message": str(e)})
        self.reply(200, state.describe())
        if q.get("exit") == "1":
            self.close_connection = True
            threading.Thread(target=self.server.shutdown, daemon=True).start()

    def export(self, path):
        state = self.server.state
        started = time.time()
        entry = {"t": started, "path": path}
        raw = self.read_body()
        entry["bytes"] = len(raw)
        entry["headers"] = {k.lower(): v for k, v in self.headers.items()}
        mode, retry_after, delay, rejected = state.take_mode()
        if mode != "ok":
            entry["mode"] = mode
        if mode == "unavailable":
            return self.fail(entry, 503, 14, "unavailable (fault injected)",
                             [("Retry-After", str(retry_after))])
        if mode == "throttle":
            return self.fail(entry, 429, 8, "throttled (fault injected)",
                             [("Retry-After", str(retry_after))])
        if mode == "reject":
            return self.fail(entry, 400, 3, "rejected (fault injected)")
        if mode == "slow":
            entry["delay"] = delay
            time.sleep(delay)

        schema, rejected_field = ROUTES[path]
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # The OTLP/HTTP spec's answer to an unsupported Content-Type.
            return self.fail(entry, 415, 3, f"unsupported Content-Type {ctype!r}: this "
                             f"receiver takes application/json only")
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        try:
            if encoding == "gzip":
                try:
                    raw = gzip.decompress(raw)
                except (OSError, EOFError, zlib.error) as e:
                    raise Reject(f"invalid gzip body: {e}")
            elif encoding not in ("identity", ""):
                raise Reject(f"unsupported Content-Encoding {encoding!r}")
            if self.server.light:
                entry["status"] = 200
                entry["decoded_bytes"] = len(raw)
                entry["items"] = raw.count(LIGHT_ITEM_KEY[path])
                entry["duration"] = time.time() - started
                state.record(entry)
                return self.reply(200, {"partialSuccess": {}})
            entry["raw"] = raw[:4096].decode("utf-8", "replace")
            body = parse_json(raw)
            del entry["raw"]
            converted = check_message(schema, body, "")
            with state.lock:
                if path == "/v1/metrics":
                    items, updates = check_metrics(converted, state.streams)
                    state.streams.update(updates)
                else:
                    items = check_traces(converted)
        except Reject as e:
            return self.fail(entry, 400, 3, str(e))
        except RecursionError:
            return self.fail(entry, 400, 3, "invalid JSON: nested too deeply")

        entry.pop("raw", None)
        entry["status"] = 200
        entry["items"] = items
        if not self.server.no_body:
            entry["body"] = body
        response = {"partialSuccess": {}}
        if mode == "partial":
            n = min(rejected, items)
            response["partialSuccess"] = {rejected_field: str(n),
                                          "errorMessage": "partial success (fault injected)"}
            entry["rejected"] = n
        entry["duration"] = time.time() - started
        state.record(entry)
        self.reply(200, response)

    def fail(self, entry, status, code, message, headers=()):
        entry["status"] = status
        entry["message"] = message
        entry["duration"] = time.time() - entry["t"]
        self.server.state.record(entry)
        self.reply(status, {"code": code, "message": message}, headers)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:4318", help="HOST:PORT (port 0: any free)")
    ap.add_argument("--log", help="append one JSON line per request to this file")
    ap.add_argument("--control", action="store_true", help="serve /control on the same port")
    ap.add_argument("--mode", choices=MODES, default="ok")
    ap.add_argument("--retry-after", default="1", help="Retry-After value for 503/429")
    ap.add_argument("--delay", type=float, default=5.0, help="seconds to stall in mode slow")
    ap.add_argument("--count", type=int, default=None,
                    help="apply --mode to this many requests, then ok")
    ap.add_argument("--rejected", type=int, default=1, help="items rejected in mode partial")
    ap.add_argument("--no-body", action="store_true",
                    help="validate but leave bodies out of the log (item counts stay)")
    ap.add_argument("--light", action="store_true",
                    help="benchmarks: decompress and count items by their JSON key; no "
                         "parsing, no validation")
    ap.add_argument("--verbose", action="store_true", help="access log on stderr")
    args = ap.parse_args(argv)

    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    server = (Server6 if ":" in host else Server)((host, int(port)), Handler)
    server.state = State(args)
    server.control = args.control
    server.verbose = args.verbose
    server.light = args.light
    server.no_body = args.no_body
    real_host, real_port = server.server_address[:2]
    print(f"listening on {real_host}:{real_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if server.state.log:
            server.state.log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
