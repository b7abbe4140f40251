# SPDX-License-Identifier: Apache-2.0
"""The Collector configurations in collector-config/: every YAML file parses, every
Collector pipeline is wired to components that exist (connectors on both sides),
and the names, ports, routing key and TTL that the docs rely on are the ones in
the files. No root needed; PyYAML (Debian's python3-yaml) parses the files."""

import os
import re
import shutil
import subprocess

import harness as h

try:
    import yaml
except ImportError:  # pragma: no cover - reported by every test below
    yaml = None

CC = os.path.join(h.ROOT, "collector-config")
DOCS = os.path.join(h.ROOT, "docs")
COLLECTORS = ("agent.yaml", "gateway.yaml", "agent-to-gateway.yaml")
PAIRING = ("agent.yaml", "gateway.yaml")   # the ones that run the servicegraph connector
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def need_yaml():
    assert yaml is not None, "PyYAML is missing: apt-get install python3-yaml " \
                             "(scripts/install-deps.sh installs it)"


def load(name):
    need_yaml()
    with open(os.path.join(CC, name), encoding="utf-8") as f:
        return yaml.safe_load(f)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def seconds(text):
    """A Go duration ("10s", "1m30s", "2500ms") in seconds."""
    text = str(text)
    parts = DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, "not a Go duration: %r" % text
    return sum(float(n) * DUR_UNITS[u] for n, u in parts)


def resolve_env(value):
    """${env:NAME:-default} replaced by its default; a reference without one is an error."""
    def sub(m):
        assert m.group(2) is not None, "%s has no default: %s" % (m.group(1), value)
        return m.group(2)
    return ENV_REF.sub(sub, str(value))


def host_port(value):
    host, _, port = resolve_env(value).rpartition(":")
    assert host and port.isdigit(), "not host:port: %r" % value
    return host, int(port)


def kind(component_id):
    """The component type of an id: "otlp/jaeger" -> "otlp"."""
    return component_id.split("/", 1)[0]


def walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, "%s.%s" % (path, k) if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, "%s[%d]" % (path, i))
    else:
        yield path, node


# Signals each connector takes in (as an exporter) and gives out (as a receiver).
CONNECTOR_SIGNALS = {"servicegraph": ({"traces"}, {"metrics"}),
                     "spanmetrics": ({"traces"}, {"metrics"})}


def check_wiring(name, cfg):
    """What the Collector checks at start: every id in a pipeline is defined, in the
    right section; connectors are exporters of one pipeline and receivers of another
    of the right signals; nothing is defined and left unused."""
    svc = cfg["service"]
    pipelines = svc["pipelines"]
    assert pipelines, name
    connectors = cfg.get("connectors") or {}
    used = {"receivers": set(), "processors": set(), "exporters": set(), "connectors": set()}
    conn_in, conn_out = {}, {}
    for pid, p in pipelines.items():
        signal = kind(pid)
        assert signal in ("traces", "metrics", "logs"), "%s: pipeline %s" % (name, pid)
        assert p.get("receivers") and p.get("exporters"), \
            "%s: %s needs receivers and exporters" % (name, pid)
        for r in p["receivers"]:
            if r in connectors:
                used["connectors"].add(r)
                conn_out.setdefault(r, set()).add(signal)
            else:
                assert r in (cfg.get("receivers") or {}), \
                    "%s: %s: receiver %s undefined" % (name, pid, r)
                used["receivers"].add(r)
        for e in p["exporters"]:
            if e in connectors:
                used["connectors"].add(e)
                conn_in.setdefault(e, set()).add(signal)
            else:
                assert e in (cfg.get("exporters") or {}), \
                    "%s: %s: exporter %s undefined" % (name, pid, e)
                used["exporters"].add(e)
        procs = p.get("processors") or []
        for q in procs:
            assert q in (cfg.get("processors") or {}), \
                "%s: %s: processor %s undefined" % (name, pid, q)
            used["processors"].add(q)
        # memory_limiter must see data first; batch last, just before the exporters.
        assert procs and procs[0] == "memory_limiter", "%s: %s: %s" % (name, pid, procs)
        assert procs[-1] == "batch", "%s: %s: %s" % (name, pid, procs)
    for c in connectors:
        assert c in conn_in and c in conn_out, \
            "%s: connector %s must export from one pipeline and receive in another" % (name, c)
        want_in, want_out = CONNECTOR_SIGNALS[kind(c)]
        assert conn_in[c] <= want_in and conn_out[c] <= want_out, (name, c, conn_in[c], conn_out[c])
    for section in ("receivers", "processors", "exporters"):
        unused = set(cfg.get(section) or {}) - used[section]
        assert not unused, "%s: %s defined but in no pipeline: %s" % (name, section, sorted(unused))
    for ext in svc.get("extensions") or []:
        assert ext in (cfg.get("extensions") or {}), "%s: extension %s undefined" % (name, ext)


def test_every_yaml_file_parses():
    need_yaml()
    found = []
    for dirpath, _, files in os.walk(CC):
        for f in files:
            if f.endswith((".yaml", ".yml")):
                path = os.path.join(dirpath, f)
                with open(path, encoding="utf-8") as fh:
                    docs = list(yaml.safe_load_all(fh))
                assert docs and all(d is not None for d in docs), path
                found.append(os.path.relpath(path, CC))
    for want in COLLECTORS + ("compose.yaml", "prometheus.yml", "tempo.yaml",
                              "tcpotel-tryout.yaml",
                              os.path.join("grafana", "provisioning", "datasources",
                                           "datasources.yaml")):
        assert want in found, (want, found)


def test_collector_pipelines_are_wired():
    for name in COLLECTORS:
        check_wiring(name, load(name))


def test_env_references_have_defaults():
    for name in COLLECTORS:
        text = read(os.path.join(CC, name))
        refs = ENV_REF.findall(text)
        # Any ${...} that is not a well-formed ${env:NAME:-default} would reach the Collector as is.
        assert len(re.findall(r"\$\{", text)) == len(refs), name
        for var, default in refs:
            assert default, "%s: ${env:%s} has no default" % (name, var)


def test_otlp_http_receiver_on_4318():
    for name in ("agent.yaml", "agent-to-gateway.yaml", "gateway.yaml"):
        http = load(name)["receivers"]["otlp"]["protocols"]["http"]
        host, port = host_port(http["endpoint"])
        assert (host, port) == ("0.0.0.0", 4318), (name, http)


def test_gateway_takes_otlp_grpc_on_4317():
    grpc = load("gateway.yaml")["receivers"]["otlp"]["protocols"]["grpc"]
    assert host_port(grpc["endpoint"]) == ("0.0.0.0", 4317)


def test_memory_limiter_and_batch():
    for name in COLLECTORS:
        procs = load(name)["processors"]
        ml = procs["memory_limiter"]
        assert seconds(ml["check_interval"]) <= 5, (name, ml)
        assert "limit_mib" in ml or "limit_percentage" in ml, (name, ml)
        if "limit_percentage" in ml:
            spike = ml.get("spike_limit_percentage", 0)
            assert 0 < spike < ml["limit_percentage"] <= 90, (name, ml)
        assert 0 < seconds(procs["batch"]["timeout"]) <= 5, (name, procs["batch"])


def test_servicegraph_waits_long_enough_for_both_halves():
    for name in PAIRING:
        sg = load(name)["connectors"]["servicegraph"]
        # Default TTL 2s and 1000 items lose pairs exported by two agents.
        assert seconds(sg["store"]["ttl"]) >= 5, (name, sg["store"])
        assert int(sg["store"]["max_items"]) >= 10000, (name, sg["store"])
        assert "server.port" in sg["dimensions"], (name, sg)
        assert "client.port" not in sg["dimensions"], "ephemeral: one series per connection"
        assert "server.address" in sg["virtual_node_peer_attributes"], (name, sg)
        buckets = [seconds(b) for b in sg["latency_histogram_buckets"]]
        assert buckets == sorted(buckets) and len(set(buckets)) == len(buckets), buckets
        assert buckets[0] <= 0.001 and buckets[-1] >= 10, buckets
        assert seconds(sg["metrics_flush_interval"]) <= 60


def test_spanmetrics_dimensions():
    for name in PAIRING:
        sm = load(name)["connectors"]["spanmetrics"]
        dims = [d["name"] for d in sm["dimensions"]]
        assert dims == ["server.port"], (name, dims)
        assert sm["namespace"] == "traces.span.metrics", sm
        buckets = [seconds(b) for b in sm["histogram"]["explicit"]["buckets"]]
        assert buckets == sorted(buckets), buckets


def test_exporters_to_jaeger_tempo_and_prometheus():
    for name in PAIRING:
        cfg = load(name)
        exp = cfg["exporters"]
        for backend in ("otlp/jaeger", "otlp/tempo"):
            host, port = host_port(exp[backend]["endpoint"])
            assert port == 4317, (name, backend, exp[backend])
            assert not resolve_env(exp[backend]["endpoint"]).startswith("http"), \
                "OTLP/gRPC endpoints are host:port"
            assert exp[backend]["tls"]["insecure"] is True
        prom = exp["prometheus"]
        assert host_port(prom["endpoint"]) == ("0.0.0.0", 8889), prom
        assert prom["resource_to_telemetry_conversion"]["enabled"] is True
        traces = cfg["service"]["pipelines"]["traces"]["exporters"]
        assert {"otlp/jaeger", "otlp/tempo", "servicegraph", "spanmetrics"} <= set(traces)
        metrics = cfg["service"]["pipelines"]["metrics"]
        assert {"otlp", "servicegraph", "spanmetrics"} <= set(metrics["receivers"])
        assert metrics["exporters"] == ["prometheus"]


def test_agent_to_gateway_routes_traces_by_trace_id():
    cfg = load("agent-to-gateway.yaml")
    lb = cfg["exporters"]["loadbalancing"]
    assert lb["routing_key"] == "traceID", lb
    resolvers = [r for r in ("static", "dns", "k8s", "aws_cloud_map") if r in lb["resolver"]]
    assert resolvers == ["dns"], "exactly one resolver: %s" % resolvers
    dns = lb["resolver"]["dns"]
    assert resolve_env(dns["hostname"]) and str(dns["port"]) == "4317", dns
    assert "otlp" in lb["protocol"], lb
    assert "endpoint" not in (lb["protocol"]["otlp"] or {}), "the resolver gives the endpoints"
    pipes = cfg["service"]["pipelines"]
    assert pipes["traces"]["exporters"] == ["loadbalancing"], pipes["traces"]
    # Pairing happens behind the routing, never on the hosts.
    assert "connectors" not in cfg
    assert "loadbalancing" not in pipes["metrics"]["exporters"]
    assert host_port(cfg["exporters"]["otlp/gateway"]["endpoint"])[1] == 4317
    # What the hosts send is what the gateway listens for.
    gw = load("gateway.yaml")["receivers"]["otlp"]["protocols"]["grpc"]
    assert host_port(gw["endpoint"])[1] == int(dns["port"])


def test_compose_runs_the_stack():
    compose = load("compose.yaml")
    services = compose["services"]
    assert {"otelcol", "jaeger", "tempo", "prometheus", "grafana"} <= set(services), services
    for sname, s in services.items():
        image = s["image"]
        assert ":" in image and not image.endswith(":latest"), "pin %s: %s" % (sname, image)
        for port in s.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), \
                "%s publishes %s beyond loopback" % (sname, port)
        for vol in s.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert os.path.exists(os.path.join(CC, src)), "%s mounts missing %s" % (sname, src)
        for dep in s.get("depends_on", []):
            assert dep in services, (sname, dep)
    col = services["otelcol"]
    assert "contrib" in col["image"], "servicegraph and spanmetrics are in the contrib distribution"
    assert any(v.startswith("./agent.yaml:") for v in col["volumes"]), col["volumes"]
    conf = [c for c in col["command"] if "--config" in c]
    assert conf and conf[0].split("=", 1)[1] == \
        [v.split(":")[1] for v in col["volumes"] if v.startswith("./agent.yaml:")][0]
    assert "127.0.0.1:4318:4318" in col["ports"], "tcpotel on the host posts to 127.0.0.1:4318"
    # The Collector's exporters name these services; the environment says so too.
    cfg = load("agent.yaml")
    for backend, service in (("otlp/jaeger", "jaeger"), ("otlp/tempo", "tempo")):
        host, _ = host_port(cfg["exporters"][backend]["endpoint"])
        assert host == service, (backend, host)
    assert col["environment"]["JAEGER_OTLP_ENDPOINT"] == "jaeger:4317"
    assert col["environment"]["TEMPO_OTLP_ENDPOINT"] == "tempo:4317"
    grafana = services["grafana"]
    assert any(v.startswith("./grafana/provisioning:/etc/grafana/provisioning")
               for v in grafana["volumes"]), grafana["volumes"]


def test_tempo_listens_where_the_collector_sends():
    tempo = load("tempo.yaml")
    grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]
    assert host_port(grpc["endpoint"]) == ("0.0.0.0", 4317), "Tempo defaults to localhost"
    assert tempo["server"]["http_listen_port"] == 3200


def test_prometheus_scrapes_the_collector():
    prom = load("prometheus.yml")
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    agent = load("agent.yaml")
    port = host_port(agent["exporters"]["prometheus"]["endpoint"])[1]
    assert "otelcol:%d" % port in targets, targets
    reader = agent["service"]["telemetry"]["metrics"]["readers"][0]
    internal = reader["pull"]["exporter"]["prometheus"]
    assert "otelcol:%d" % internal["port"] in targets, targets
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "config", os.path.join(CC, "prometheus.yml")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr


def test_grafana_tempo_service_map_points_at_prometheus():
    ds = load(os.path.join("grafana", "provisioning", "datasources", "datasources.yaml"))
    assert ds["apiVersion"] == 1
    by_type = {d["type"]: d for d in ds["datasources"]}
    assert {"prometheus", "tempo", "jaeger"} <= set(by_type), by_type
    uids = [d["uid"] for d in ds["datasources"]]
    assert len(uids) == len(set(uids)), uids
    tempo = by_type["tempo"]
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] == by_type["prometheus"]["uid"]
    assert tempo["jsonData"]["nodeGraph"]["enabled"] is True
    services = load("compose.yaml")["services"]
    want = {"prometheus": ("prometheus", 9090), "tempo": ("tempo", 3200),
            "jaeger": ("jaeger", 16686)}
    for t, (svc, port) in want.items():
        url = by_type[t]["url"]
        m = re.fullmatch(r"http://([^:/]+):(\d+)", url)
        assert m and m.group(1) == svc and int(m.group(2)) == port, url
        assert svc in services


def test_tryout_config_is_valid_for_the_agent():
    """The try-out configuration loads in the agent and leaves out the pipeline's ports."""
    h.require_built(h.AGENT)
    path = os.path.join(CC, "tcpotel-tryout.yaml")
    r = subprocess.run([h.AGENT, "--check-config", "--config", path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    cfg = load("tcpotel-tryout.yaml")
    assert {4317, 4318, 8888, 8889} <= set(cfg["capture"]["exclude_ports"])
    assert cfg["exporter"]["otlp"]["endpoint"] == "http://127.0.0.1:4318"


def test_docs_quote_what_the_files_say():
    """Values the docs state are the values in the files."""
    agent = load("agent.yaml")
    sg = agent["connectors"]["servicegraph"]
    ttl = str(sg["store"]["ttl"])
    readme = read(os.path.join(CC, "README.md"))
    backends = read(os.path.join(DOCS, "backends.md"))
    troubleshooting = read(os.path.join(DOCS, "troubleshooting.md"))
    assert "store.ttl: %s" % ttl in readme, "collector-config/README.md names another TTL"
    assert "(%s in the shipped configurations)" % ttl in backends
    assert "the shipped configurations use %s" % ttl in troubleshooting
    assert "max_items: %d" % sg["store"]["max_items"] in readme
    assert "routing_key: traceID" in readme
    for metric in ("traces_service_graph_request_total",
                   "traces_service_graph_request_failed_total",
                   "traces_service_graph_request_server_seconds",
                   "otelcol_connector_servicegraph_expired_edges",
                   "otelcol_connector_servicegraph_dropped_spans"):
        assert metric in backends, metric
    for f in os.listdir(CC):
        if f.endswith((".yaml", ".yml")):
            assert "(%s)" % f in readme or "`%s`" % f in readme, "README.md does not list " + f
