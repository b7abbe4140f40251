# SPDX-License-Identifier: Apache-2.0
"""The Collector configurations in collector-config/: every YAML file parses, every
Collector pipeline is wired to components that exist (connectors on both sides),
every option is one that the pinned otelcol-contrib (0.120.0) reads
(tests/fixtures/collector/otelcol-contrib-0.120.0.yaml), every Prometheus
name the docs quote is one that version writes, the Kubernetes agent names
pods from resource attributes and services after workloads only where the
process named none, and the names, ports, routing key and TTL that the docs
rely on are the ones in the files. No root needed; PyYAML (Debian's
python3-yaml) parses the files."""

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
COLLECTORS = ("agent.yaml", "gateway.yaml", "agent-to-gateway.yaml", "k8s-agent.yaml")
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
    for name in COLLECTORS:
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
        traces = set()
        for pid, p in cfg["service"]["pipelines"].items():
            if kind(pid) == "traces":
                assert p["receivers"] == ["otlp"], (name, pid, p)
                traces |= set(p["exporters"])
        assert traces == {"otlp/jaeger", "otlp/tempo", "servicegraph", "spanmetrics"}, traces
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
                   "traces_span_metrics_duration_seconds",
                   "otelcol_connector_servicegraph_expired_edges",
                   "otelcol_connector_servicegraph_dropped_spans",
                   "tcp_exchange_duration_seconds_count"):
        assert metric in backends, metric
    for f in os.listdir(CC):
        if f.endswith((".yaml", ".yml")):
            assert "(%s)" % f in readme or "`%s`" % f in readme, "README.md does not list " + f


# ---- the pinned version's options and names ------------------------------------------

PINNED = os.path.join(h.ROOT, "tests", "fixtures", "collector", "otelcol-contrib-0.120.0.yaml")
K8S_DIR = os.path.join(h.ROOT, "deploy", "kubernetes")


def pinned():
    need_yaml()
    with open(PINNED, encoding="utf-8") as f:
        return yaml.safe_load(f)


def option_paths(node, path=""):
    """The options a component's configuration sets: "a.b" for values, "a[]" for list
    items that are values, "a[].b" below list items that are maps."""
    if isinstance(node, dict):
        if not node and path:
            yield path
        for k, v in node.items():
            yield from option_paths(v, "%s.%s" % (path, k) if path else str(k))
    elif isinstance(node, list):
        if not node:
            yield path + "[]"
        for v in node:
            yield from option_paths(v, path + "[]")
    else:
        yield path


def allowed(path, options):
    for o in options:
        if o == path or (o.endswith(".*") and (path + ".").startswith(o[:-1])):
            return True
    return False


def test_every_option_is_one_the_pinned_version_reads():
    """Every key of every component in every Collector configuration, and of its service
    section, is an option of that component in otelcol-contrib 0.120.0 (the Collector
    refuses unknown keys at start)."""
    ref = pinned()["components"]
    checked = 0
    for name in COLLECTORS:
        cfg = load(name)
        for section in ("receivers", "processors", "exporters", "connectors", "extensions"):
            for cid, body in (cfg.get(section) or {}).items():
                key = "%s/%s" % (section, kind(cid))
                assert key in ref, "%s: %s is not a component of the pinned set" % (name, key)
                for p in option_paths(body or {}):
                    assert allowed(p, ref[key]), \
                        "%s: %s %s: %s is not an option in 0.120.0" % (name, section, cid, p)
                    checked += 1
        for p in option_paths(cfg["service"]):
            assert allowed(p, ref["service"]), "%s: service: %s is not an option" % (name, p)
            checked += 1
    assert checked > 100, checked


def test_pinned_options_catch_a_misspelling():
    """The check above is not vacuous: a misspelt key of each kind is refused."""
    ref = pinned()["components"]
    for key, body in (("connectors/spanmetrics", {"histogram": {"units": "s"}}),
                      ("processors/k8sattributes", {"filter": {"node_from_env": "X"}}),
                      ("processors/k8sattributes", {"pod_association": [{"source": []}]}),
                      ("service", {"telemetry": {"metrics": {"readers": [
                          {"pull": {"exporter": {"prometheus": {"without_type_suffixes": True}}}}]}}}),
                      ("exporters/prometheus", {"translation_strategy": "x"})):
        assert not all(allowed(p, ref[key]) for p in option_paths(body)), (key, body)


def test_spanmetrics_in_seconds_and_internal_names_without_suffixes():
    """spanmetrics histogram.unit is s (0.120 defaults to ms, which names the metric
    ..._milliseconds); the Collector's own Prometheus reader writes the instruments'
    names without _total or unit suffixes, like its default reader."""
    for name in COLLECTORS:
        cfg = load(name)
        sm = (cfg.get("connectors") or {}).get("spanmetrics")
        if sm:
            assert sm["histogram"]["unit"] == "s", (name, sm["histogram"])
        readers = cfg["service"].get("telemetry", {}).get("metrics", {}).get("readers", [])
        for r in readers:
            prom = r["pull"]["exporter"]["prometheus"]
            assert prom["without_type_suffix"] is True and prom["without_units"] is True, \
                (name, prom)
            assert prom["with_resource_constant_labels"] == {"included": []}, (name, prom)
    assert any(load(n)["service"].get("telemetry") for n in COLLECTORS)


NAME_RE = re.compile(r"\b((?:traces_service_graph|traces_span_metrics|otelcol)_[a-z_]+)")


def quoted_names(text):
    """Prometheus names of the connectors and of the Collector quoted in text; a trailing
    `_*` (a family of series) leaves its base name."""
    out = set()
    for m in NAME_RE.finditer(text):
        n = m.group(1).rstrip("_")
        out.add(n)
    return out


def test_metric_names_quoted_are_the_ones_0_120_writes():
    """Every connector or Collector metric name that README, docs, collector-config and the
    tests quote is one that 0.120.0 writes with these configurations."""
    names = set(pinned()["prometheus_names"])
    files = [os.path.join(h.ROOT, "README.md")]
    files += [os.path.join(DOCS, f) for f in os.listdir(DOCS) if f.endswith(".md")]
    files += [os.path.join(CC, f) for f in os.listdir(CC) if f.endswith((".md", ".yaml", ".yml"))]
    tests = os.path.join(h.ROOT, "tests", "integration")
    files += [os.path.join(tests, f) for f in os.listdir(tests)
              if f.endswith(".py") and f != os.path.basename(__file__)]
    seen = set()
    for path in files:
        for n in quoted_names(read(path)):
            assert n in names, "%s quotes %s, which 0.120.0 does not write" % (
                os.path.relpath(path, h.ROOT), n)
            seen.add(n)
    for n in ("traces_span_metrics_duration_seconds", "otelcol_connector_servicegraph_expired_edges",
              "traces_service_graph_request_total"):
        assert n in seen, n
    assert "traces_span_metrics_duration_milliseconds" not in quoted_names(read(
        os.path.join(DOCS, "backends.md")))


def pipelines_into(cfg, exporter):
    return [(pid, p) for pid, p in cfg["service"]["pipelines"].items()
            if exporter in p["exporters"]]


def transform_deletes(cfg, proc_id, signal):
    """Resource attributes a transform processor deletes for a signal (metric/trace)."""
    out = set()
    for block in cfg["processors"][proc_id].get(signal + "_statements", []):
        assert block["context"] == "resource", block
        for st in block["statements"]:
            m = re.fullmatch(r'delete_key\(attributes, "([^"]+)"\)', st.strip())
            if m:
                out.add(m.group(1))
    return out


def test_no_pid_or_command_line_reaches_prometheus_labels():
    """The connectors count per service instance: the spans they get have no process.pid
    nor process.command_line (so spanmetrics' resources, which the Prometheus exporter
    turns into labels, have neither); no command line reaches the exporter; the shipped
    agent configurations for a Collector set metrics.per_process: false, so their tcp.*
    metrics carry no pid either."""
    for name in PAIRING:
        cfg = load(name)
        for conn in ("servicegraph", "spanmetrics"):
            for pid, p in pipelines_into(cfg, conn):
                gone = set()
                for q in p["processors"]:
                    if kind(q) == "transform":
                        gone |= transform_deletes(cfg, q, "trace")
                assert {"process.pid", "process.command_line"} <= gone, (name, pid, p)
        for pid, p in pipelines_into(cfg, "prometheus"):
            gone = set()
            for q in p["processors"]:
                if kind(q) == "transform":
                    gone |= transform_deletes(cfg, q, "metric")
            assert "process.command_line" in gone, (name, pid, p)
            assert set(p["receivers"]) == {"otlp", "servicegraph", "spanmetrics"}, p
    tryout = load("tcpotel-tryout.yaml")
    assert tryout["metrics"]["per_process"] is False, tryout
    with open(os.path.join(K8S_DIR, "daemonset.yaml"), encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    cm = [d for d in docs if d["kind"] == "ConfigMap"][0]
    assert yaml.safe_load(cm["data"]["tcpotel.yaml"])["metrics"]["per_process"] is False


# ---- Kubernetes names ---------------------------------------------------------------

def agent_source_key():
    """The resource attribute, and the value, by which tcpotel says that only the
    executable named a service (src/procinfo.c)."""
    src = read(os.path.join(h.ROOT, "src", "procinfo.c"))
    key = re.search(r'#define SOURCE_KEY\s+"([^"]+)"', src).group(1)
    assert '"executable"' in src and '"otel_service_name"' in src
    return key, "executable"


def test_k8s_agent_finds_pods_by_resource_attributes():
    """k8sattributes associates by k8s.pod.uid (first) and container.id, never by the
    connection; it watches this node's pods only (node_from_env_var, which the manifest
    sets from spec.nodeName); it extracts namespace, pod, node, workload and container
    names (k8s.container.name makes it index the containers that container.id names)."""
    cfg = load("k8s-agent.yaml")
    ka = cfg["processors"]["k8sattributes"]
    rules = [[(s["from"], s["name"]) for s in r["sources"]] for r in ka["pod_association"]]
    assert rules[0] == [("resource_attribute", "k8s.pod.uid")], rules
    assert [("resource_attribute", "container.id")] in rules, rules
    assert all(f == "resource_attribute" for r in rules for f, _n in r), rules
    meta = set(ka["extract"]["metadata"])
    assert meta <= set(pinned()["k8sattributes_metadata"]), meta - set(pinned()["k8sattributes_metadata"])
    assert {"k8s.namespace.name", "k8s.pod.name", "k8s.node.name", "k8s.deployment.name",
            "k8s.statefulset.name", "k8s.daemonset.name", "k8s.container.name"} <= meta, meta
    env = ka["filter"]["node_from_env_var"]
    with open(os.path.join(K8S_DIR, "collector.yaml"), encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    ds = [d for d in docs if d["kind"] == "DaemonSet"][0]
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    envs = {e["name"]: e for e in c["env"]}
    assert envs[env]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName", envs[env]


def test_k8s_agent_renames_before_the_connectors():
    """In both pipelines: memory_limiter, k8sattributes, the renaming transform, batch; the
    traces then go, routed by trace id, to the gateways whose connectors count them, so
    servicegraph and spanmetrics see the workload names. The gateway itself renames
    nothing (it does not know the pods)."""
    cfg = load("k8s-agent.yaml")
    for pid in ("traces", "metrics"):
        procs = cfg["service"]["pipelines"][pid]["processors"]
        assert procs == ["memory_limiter", "k8sattributes", "transform/service_name", "batch"], \
            (pid, procs)
    assert cfg["service"]["pipelines"]["traces"]["exporters"] == ["loadbalancing"]
    assert cfg["exporters"]["loadbalancing"]["routing_key"] == "traceID"
    assert "connectors" not in cfg
    gw = load("gateway.yaml")
    for p in gw["service"]["pipelines"].values():
        assert "k8sattributes" not in p["processors"] and "transform/service_name" not in p["processors"]


def ottl_apply(statements, attrs):
    """The renaming statements on one resource's attributes, for the forms they use:
    set(attributes["A"], attributes["B"] | "lit") where C and C..., with C one of
    attributes["K"] == "v" and attributes["K"] != nil."""
    attrs = dict(attrs)
    st_re = re.compile(r'set\(attributes\["([^"]+)"\], (?:attributes\["([^"]+)"\]|"([^"]*)")\)'
                       r'(?: where (.*))?$')
    cond_re = re.compile(r'attributes\["([^"]+)"\] (==|!=) (nil|"[^"]*")$')
    for st in statements:
        m = st_re.match(st.strip())
        assert m, "not a form this check knows: %r" % st
        target, src_attr, lit, where = m.groups()
        ok = True
        for cond in (where.split(" and ") if where else []):
            c = cond_re.match(cond.strip())
            assert c, "not a condition this check knows: %r" % cond
            k, op, v = c.groups()
            if v == "nil":
                ok &= (k in attrs) == (op == "!=")
            else:
                ok &= (attrs.get(k) == v[1:-1]) == (op == "==")
        if not ok:
            continue
        if src_attr is not None:
            if src_attr in attrs:
                attrs[target] = attrs[src_attr]
        else:
            attrs[target] = lit
    return attrs


def test_k8s_agent_names_services_after_workloads_only_when_the_process_did_not():
    """The renaming, run on resources as tcpotel and k8sattributes give them: a process
    named only by its executable takes its Deployment's name (else StatefulSet, DaemonSet,
    CronJob, Job, pod); one that set OTEL_SERVICE_NAME, or that a rule or
    resource.attributes named, keeps its name; the source then says where the name came
    from. Traces and metrics get the same statements."""
    key, executable = agent_source_key()
    cfg = load("k8s-agent.yaml")
    tr = cfg["processors"]["transform/service_name"]
    assert tr["trace_statements"] == tr["metric_statements"]
    (block,) = tr["trace_statements"]
    assert block["context"] == "resource"
    stmts = block["statements"]
    for st in stmts:
        assert '%s"] == "%s"' % (key, executable) in st, "renames a chosen name: %s" % st
    pod = {"k8s.namespace.name": "shop", "k8s.pod.name": "cart-7d9f8-x2x", "k8s.node.name": "n1"}
    cases = [
        ({"service.name": "java", key: executable, "k8s.deployment.name": "cart",
          "k8s.statefulset.name": "nope"}, "cart", "k8s.deployment.name"),
        ({"service.name": "postgres", key: executable, "k8s.statefulset.name": "db"},
         "db", "k8s.statefulset.name"),
        ({"service.name": "node", key: executable, "k8s.daemonset.name": "agent"},
         "agent", "k8s.daemonset.name"),
        ({"service.name": "python3", key: executable, "k8s.cronjob.name": "report",
          "k8s.job.name": "report-2900"}, "report", "k8s.cronjob.name"),
        ({"service.name": "python3", key: executable}, "cart-7d9f8-x2x", "k8s.pod.name"),
        ({"service.name": "checkout", key: "otel_service_name", "k8s.deployment.name": "cart"},
         "checkout", "otel_service_name"),
        ({"service.name": "cache", key: "service_rules", "k8s.deployment.name": "redis"},
         "cache", "service_rules"),
        ({"service.name": "pinned", key: "resource_attributes", "k8s.deployment.name": "x"},
         "pinned", "resource_attributes"),
        ({"service.name": "tcpotel"}, "tcpotel", None),  # the agent's own resource
    ]
    for res, want, source in cases:
        out = ottl_apply(stmts, dict(pod, **res) if key in res else res)
        assert out["service.name"] == want and out.get(key) == source, (res, out)


# ---- Kubernetes manifests --------------------------------------------------------------

def k8s_docs(name):
    need_yaml()
    with open(os.path.join(K8S_DIR, name), encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def test_collector_manifest_runs_the_shipped_configs_with_the_rbac_they_need():
    """deploy/kubernetes/collector.yaml: the ConfigMaps hold collector-config/k8s-agent.yaml
    and gateway.yaml byte for byte; the node Collector (DaemonSet) runs as a ServiceAccount
    bound to a ClusterRole that can get, list and watch pods and namespaces and the
    replicasets of apps, and nothing else; it listens on 4318 of the node (where tcpotel
    posts) and gets the environment its config names; the gateways' headless Service is
    the name the load-balancing exporter resolves."""
    docs = k8s_docs("collector.yaml")
    by = {}
    for d in docs:
        by.setdefault(d["kind"], []).append(d)
    cms = {d["metadata"]["name"]: d for d in by["ConfigMap"]}
    files = {}
    for cm in cms.values():
        for k, v in cm["data"].items():
            files[k] = v
    for f in ("k8s-agent.yaml", "gateway.yaml"):
        assert files.get(f) == read(os.path.join(CC, f)), "%s differs from collector-config/%s" % (f, f)
    (sa,) = by["ServiceAccount"]
    (role,) = by["ClusterRole"]
    (binding,) = by["ClusterRoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}, binding
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}], binding
    grants = {(g, r): set(rule["verbs"]) for rule in role["rules"]
              for g in rule["apiGroups"] for r in rule["resources"]}
    assert grants == {("", "pods"): {"get", "list", "watch"},
                      ("", "namespaces"): {"get", "list", "watch"},
                      ("apps", "replicasets"): {"get", "list", "watch"}}, grants
    ds = [d for d in by["DaemonSet"] if d["metadata"]["name"] == "otel-agent"][0]
    spec = ds["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == sa["metadata"]["name"]
    (c,) = spec["containers"]
    assert "contrib" in c["image"] and c["image"].endswith(":0.120.0"), c["image"]
    ports = {p["containerPort"]: p for p in c["ports"]}
    assert ports[4318].get("hostPort") == 4318, ports
    args = " ".join(c["args"])
    mounted = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    conf = re.search(r"--config=(\S+)", args).group(1)
    assert os.path.basename(conf) == "k8s-agent.yaml" and os.path.dirname(conf) in mounted, args
    env = {e["name"] for e in c["env"]}
    cfg_text = files["k8s-agent.yaml"]
    assert {v for v, _d in ENV_REF.findall(cfg_text)} <= env | {"GATEWAY_HOSTNAME",
                                                            "GATEWAY_OTLP_ENDPOINT"}, env
    gw = [d for d in by["Deployment"] if d["metadata"]["name"] == "otel-gateway"][0]
    (gc,) = gw["spec"]["template"]["spec"]["containers"]
    assert "contrib" in gc["image"] and gc["image"].endswith(":0.120.0"), gc["image"]
    svcs = {d["metadata"]["name"]: d for d in by["Service"]}
    headless = svcs["otel-gateway-headless"]
    assert headless["spec"]["clusterIP"] == "None", headless
    dns = yaml.safe_load(cfg_text)["exporters"]["loadbalancing"]["resolver"]["dns"]
    host = resolve_env(dns["hostname"])
    assert host.startswith("otel-gateway-headless.%s." % headless["metadata"]["namespace"]), host
    assert headless["spec"]["selector"] == gw["spec"]["template"]["metadata"]["labels"], headless


def test_tcpotel_daemonset_posts_to_the_node_collector():
    """tcpotel's DaemonSet posts to the node's 4318, where the otel-agent DaemonSet listens,
    and leaves the Collectors' own OTLP traffic out of capture."""
    docs = k8s_docs("daemonset.yaml")
    ds = [d for d in docs if d["kind"] == "DaemonSet"][0]
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://$(NODE_IP):4318"
    cm = [d for d in docs if d["kind"] == "ConfigMap"][0]
    cfg = yaml.safe_load(cm["data"]["tcpotel.yaml"])
    assert {4317, 4318} <= set(cfg["capture"]["exclude_ports"]), cfg
