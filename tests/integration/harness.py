# SPDX-License-Identifier: Apache-2.0
"""Integration-test harness for tcpotel (Python standard library only).

Tests write `import harness as h` and use `h.*`; this module only re-exports
the two halves, each module with one responsibility:

- fixtures/: what a test sets up, each registered and removed after the test
  (pass or fail) and at exit:
  - context.py: paths, Skip and require_*(), the registry, workdir(), cleanup();
  - procs.py: Proc (a child with its output in files), run(), wait_for(),
    free_port(), wait_port();
  - hosts.py: network namespaces joined by veth pairs, nftables rules inside
    them, two_hosts();
  - tcpload.py: the tcpload workload and its exact byte counts;
  - receiver.py: the OTLP receiver (tests/receiver/otlp_receiver.py);
  - agent.py: the agent (.output/tcpotel) and the YAML writer of its config.
- results.py: readers of the receiver's log: metric points, last cumulative
  values, spans, and service-graph edges paired the way the Collector's
  servicegraph connector pairs them.
- servicegraph.py (imported by the tests that need it): the rest of what the
  servicegraph connector does, its store's expiry and virtual nodes ("user"
  for a root SERVER span).

bench/run.py imports the fixtures it needs directly. A new helper goes in the
module it belongs to and is added to the list below.
"""

from fixtures.context import (  # noqa: F401
    AGENT, RECEIVER, ROOT, TCPLOAD, Skip, _new_state, _next_id, _st, cleanup, failure_context,
    keep_workdir, note, require_built, require_root, reset, workdir)
from fixtures.procs import Proc, _tail, free_port, run, wait_for, wait_port  # noqa: F401
from fixtures.hosts import (  # noqa: F401
    NS_PREFIX, Netns, VethPair, _delete_netns, cleanup_stale, list_netns, two_hosts, veth_pair)
from fixtures.tcpload import (  # noqa: F401
    TCPLOAD_HEADER, hostport, parse_size, run_workload, tcpload_client, tcpload_expected,
    tcpload_server, tcpload_server_stop, wait_ready_port)
from fixtures.receiver import Receiver  # noqa: F401
from fixtures.agent import _PLAIN, _YAML_WORDS, Agent, _merge, _yaml_scalar, to_yaml  # noqa: F401
from results import (  # noqa: F401
    SPAN_KIND_CLIENT, SPAN_KIND_CONSUMER, SPAN_KIND_INTERNAL, SPAN_KIND_PRODUCER,
    SPAN_KIND_SERVER, _CODES, _KINDS, _accepted, _any_value, _enum, _freeze, _ns, attrs_dict,
    errors, last_values, metric_points, pair_like_servicegraph, point_value, spans, total)
