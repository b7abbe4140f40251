# SPDX-License-Identifier: Apache-2.0
"""The OpenTelemetry Collector's servicegraph connector (contrib 0.120), emulated on the
spans the test receiver logged, so that tests can say which edges a real Collector would
count from what the agents sent.

What it follows (connector/servicegraphconnector: connector.go aggregateMetrics and
onExpire, internal/store/store.go UpsertEdge and tryEvictHead):

- a resource without a service.name is skipped;
- a CLIENT (or PRODUCER) span upserts the edge keyed (trace id, its span id): the client
  service, and the first of virtual_node_peer_attributes the span has (only the first one
  found is kept); a client span with one of database_name_attributes completes at once
  against that database;
- a SERVER (or CONSUMER) span upserts the edge keyed (trace id, its parent span id): the
  server service. A root span (no parent) is keyed with an empty span id;
- an edge with both services is counted and leaves the store, so that a later span with
  the same key starts a new edge;
- an edge still waiting when the store's TTL runs out expires (counted in
  otelcol_connector_servicegraph_expired_edges). With virtual nodes on (the
  connector.servicegraph.virtualNode gate is beta, so on, in 0.120, and
  virtual_node_peer_attributes not empty), an expired edge with no client service whose
  key has an empty span id (a root SERVER span) is counted as "user" -> server, and one
  with no server service as client -> the first peer attribute's value ("unknown" when
  none), both with connection_type "virtual_node". A SERVER span that has a parent but
  whose client never came expires without an edge.

Spans are taken in arrival order and every edge still waiting at the end expires, as if
the TTL had passed after the last span.
"""

from results import (SPAN_KIND_CLIENT, SPAN_KIND_CONSUMER, SPAN_KIND_PRODUCER,
                     SPAN_KIND_SERVER)

# The connector's defaults (factory.go createDefaultConfig).
DEFAULT_PEER_ATTRIBUTES = ("peer.service", "db.name", "db.system")
DEFAULT_DATABASE_NAME_ATTRIBUTES = ("db.name",)


class ServiceGraph:
    """One connector's store and counters."""

    def __init__(self, peer_attributes=DEFAULT_PEER_ATTRIBUTES,
                 database_name_attributes=DEFAULT_DATABASE_NAME_ATTRIBUTES, virtual_nodes=True):
        self.peer_attributes = tuple(peer_attributes)
        self.database_name_attributes = tuple(database_name_attributes)
        self.virtual_nodes = virtual_nodes and bool(self.peer_attributes)
        self.store = {}  # key -> edge dict, in insertion order (the store's list)
        # {(client, server, connection_type, virtual_node label): count}
        self.counts = {}
        self.expired = 0
        self.total_edges = 0

    def _complete(self, e, label=""):
        k = (e["client"], e["server"], e["connection_type"], label)
        self.counts[k] = self.counts.get(k, 0) + 1

    def _upsert(self, key, update):
        e = self.store.get(key)
        if e is None:
            e = {"key": key, "client": "", "server": "", "connection_type": "", "peer": {},
                 "spans": []}
            update(e)
            self.store[key] = e
            self.total_edges += 1
        else:
            update(e)
        if e["client"] and e["server"]:
            self._complete(e)
            del self.store[key]

    def add(self, span):
        svc = span["resource"].get("service.name")
        if not svc:
            return
        attrs, res = span["attrs"], span["resource"]
        if span["kind"] in (SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER):
            ctype = "messaging_system" if span["kind"] == SPAN_KIND_PRODUCER else ""

            def update(e):
                e["connection_type"] = ctype
                e["client"] = svc
                e["spans"].append(span)
                if self.virtual_nodes:
                    for a in self.peer_attributes:
                        if a in attrs:
                            e["peer"][a] = str(attrs[a])
                            break
                for a in self.database_name_attributes:
                    v = attrs.get(a, res.get(a))
                    if v is not None:
                        e["connection_type"] = "database"
                        e["server"] = str(v)
                        break

            self._upsert((span["trace_id"], span["span_id"]), update)
        elif span["kind"] in (SPAN_KIND_SERVER, SPAN_KIND_CONSUMER):
            ctype = "messaging_system" if span["kind"] == SPAN_KIND_CONSUMER else ""

            def update(e):
                e["connection_type"] = ctype
                e["server"] = svc
                e["spans"].append(span)

            self._upsert((span["trace_id"], span["parent_span_id"]), update)

    def expire_all(self):
        """Every waiting edge runs out of time (onExpire), oldest first."""
        for key in list(self.store):
            e = self.store.pop(key)
            self.expired += 1
            if not self.virtual_nodes:
                continue
            e["connection_type"] = "virtual_node"
            if not e["client"] and not key[1]:
                e["client"] = "user"
                self._complete(e, "client")
            if not e["server"]:
                e["server"] = next((e["peer"][a] for a in self.peer_attributes
                                    if a in e["peer"]), "unknown")
                self._complete(e, "server")

    def edges(self):
        """{(client, server): count}, connection types and labels added up."""
        out = {}
        for (c, s, _t, _l), n in self.counts.items():
            out[(c, s)] = out.get((c, s), 0) + n
        return out


def servicegraph(span_list, expire=True, **kw):
    """A ServiceGraph fed with span_list in order, then (expire) every waiting edge expired."""
    g = ServiceGraph(**kw)
    for s in span_list:
        g.add(s)
    if expire:
        g.expire_all()
    return g


def pair(span_list):
    """The pairs alone, before any edge expires: (edges {(client, server): count},
    unpaired client spans, unpaired server spans)."""
    g = servicegraph(span_list, expire=False, virtual_nodes=False)
    unpaired_client = [e["spans"][-1] for e in g.store.values() if e["client"]]
    unpaired_server = [e["spans"][-1] for e in g.store.values() if e["server"]]
    return g.edges(), unpaired_client, unpaired_server
