# SPDX-License-Identifier: Apache-2.0
"""Result readers: the receiver's log (Receiver.requests()) turned into results:
metric points, last cumulative values, spans, and service-graph edges paired
the way the Collector's servicegraph connector pairs them. Only requests the
receiver answered 2xx count.

Times are integers in nanoseconds since the epoch, exactly as the OTLP body
gives them. Python standard library only; no fixture needed.
"""

SPAN_KIND_INTERNAL = 1
SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
SPAN_KIND_PRODUCER = 4
SPAN_KIND_CONSUMER = 5


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


def errors(requests):
    """Everything that says something failed: spans with status ERROR or an
    error.type, tcp.connection.failed points, and tcp.exchange.duration points
    with an error.type. A list of short descriptions (empty: none)."""
    out = []
    for s in spans(requests):
        if s["status_code"] == 2 or "error.type" in s["attrs"]:
            out.append(("span", s["name"], s["kind"], s["attrs"].get("error.type"),
                        s["attrs"].get("client.port")))
    for name in ("tcp.connection.failed", "tcp.exchange.duration"):
        for res, attrs, p, _t in metric_points(requests, name):
            if name == "tcp.connection.failed" or "error.type" in attrs:
                out.append((name, res.get("service.name"), attrs.get("error.type"),
                            point_value(p)))
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
    What the connector then does with the unpaired ones (virtual nodes,
    "user" for a root SERVER span) is servicegraph.py's.
    """
    import servicegraph

    return servicegraph.pair(span_list)
