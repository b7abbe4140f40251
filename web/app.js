// SPDX-License-Identifier: Apache-2.0
// The live map: polls /api/graph, draws it with Apache ECharts (force layout,
// canvas) when the library is there, and always fills the plain tables.
// Nothing is fetched from anywhere but the agent.
'use strict';

(function () {
  const REFRESH_MS = 2500;
  const statusEl = document.getElementById('status');
  const nodesBody = document.querySelector('#nodes tbody');
  const edgesBody = document.querySelector('#edges tbody');
  const details = document.getElementById('details');
  const haveECharts = typeof window.echarts !== 'undefined';
  let chart = null;
  let last = null;       // the last graph received
  let selected = null;   // {kind: 'node'|'edge', id}

  // ---- formatting ---------------------------------------------------------

  function fmtRate(v) {
    if (v === null || v === undefined) return '';
    if (v >= 100) return Math.round(v).toLocaleString('en-US');
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  function fmtBytes(v) {
    if (v === null || v === undefined) return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? Math.round(v) : v.toFixed(v >= 100 ? 0 : 1)) + ' ' + units[i];
  }

  function fmtMs(v) {
    if (v === null || v === undefined) return '';
    if (v >= 1000) return (v / 1000).toFixed(2) + ' s';
    if (v >= 10) return v.toFixed(0) + ' ms';
    if (v >= 1) return v.toFixed(1) + ' ms';
    return (v * 1000).toFixed(0) + ' \u00b5s';
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({
      '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
    })[c]);
  }

  function edgeId(e) {
    return e.source + '\u2192' + e.target;
  }

  function fmtPct(v) {
    if (!v) return '';
    const p = v * 100;
    return (p >= 10 ? p.toFixed(0) : p >= 1 ? p.toFixed(1) : p.toFixed(2)) + ' %';
  }

  // The errors of an edge by error.type, most frequent first: "reset 3, timeout 1".
  function fmtErrors(e) {
    const list = Object.entries(e.errors || {}).filter((kv) => kv[1] > 0)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    return list.map((kv) => kv[0] + ' ' + kv[1]).join(', ');
  }

  // An edge's color by its error rate: none (the client's color) with no
  // errors, then from orange at the first error to red at 20 % and above.
  function errorColor(rate) {
    if (!rate) return null;
    const t = Math.min(1, rate / 0.2);
    return 'hsl(' + Math.round(35 * (1 - t)) + ', 85%, ' + Math.round(50 - 6 * t) + '%)';
  }

  function nodeById(g, id) {
    return g.nodes.find((n) => n.id === id);
  }

  function edgeFacts(e) {
    return [
      ['client', e.client],
      ['server', e.server],
      ['exchanges/s', fmtRate(e.exchanges_per_s)],
      ['error rate', fmtPct(e.error_rate)],
      ['failed connections/s', e.failed_connections_per_s ? fmtRate(e.failed_connections_per_s) : ''],
      ['failed exchanges/s', e.failed_exchanges_per_s ? fmtRate(e.failed_exchanges_per_s) : ''],
      ['errors', fmtErrors(e)],
      ['request', fmtBytes(e.request_bytes_per_s) + '/s'],
      ['response', fmtBytes(e.response_bytes_per_s) + '/s'],
      ['p50 latency', fmtMs(e.p50_ms)],
      ['p99 latency', fmtMs(e.p99_ms)],
      ['srtt', fmtMs(e.srtt_ms)],
      ['peer', e.peer || ''],
      ['paired', e.paired ? 'both ends seen here' : 'one end seen here'],
      ['exchanges', String(e.exchanges)],
      ['bytes', fmtBytes(e.request_bytes) + ' / ' + fmtBytes(e.response_bytes)],
    ].filter((f) => f[1] !== '');
  }

  // A node's kind: a service seen here, a peer on this host whose process is not
  // seen (a loopback or local address), or a peer outside this host.
  const KINDS = {
    service: { label: 'service', category: 0 },
    local_peer: { label: 'peer on this host (process not seen)', category: 1 },
    peer: { label: 'peer outside this host', category: 2 },
  };
  function kindOf(n) {
    return KINDS[n.kind] || (n.external ? KINDS.peer : KINDS.service);
  }
  function isService(n) {
    return kindOf(n) === KINDS.service;
  }

  function nodeFacts(g, n) {
    const out = g.edges.filter((e) => e.source === n.id);
    const inc = g.edges.filter((e) => e.target === n.id);
    const sum = (list, k) => list.reduce((a, e) => a + (e[k] || 0), 0);
    return [
      ['kind', kindOf(n).label],
      ['host', n.host || ''],
      ['pids', isService(n) ? String(n.pids) + (n.pids_truncated ? '+' : '') : ''],
      ['calls out', out.length ? out.map((e) => e.server).join(', ') : ''],
      ['called by', inc.length ? inc.map((e) => e.client).join(', ') : ''],
      ['served exch/s', inc.length ? fmtRate(sum(inc, 'exchanges_per_s')) : ''],
      ['made exch/s', out.length ? fmtRate(sum(out, 'exchanges_per_s')) : ''],
    ].filter((f) => f[1] !== '');
  }

  // ---- details panel ------------------------------------------------------

  function showDetails(sel) {
    selected = sel;
    renderDetails();
  }

  function renderDetails() {
    if (!selected || !last) {
      details.hidden = true;
      return;
    }
    let title;
    let facts;
    if (selected.kind === 'edge') {
      const e = last.edges.find((x) => edgeId(x) === selected.id);
      if (!e) { details.hidden = true; return; }
      title = e.client + ' \u2192 ' + e.server;
      facts = edgeFacts(e);
    } else {
      const n = nodeById(last, selected.id);
      if (!n) { details.hidden = true; return; }
      title = n.name;
      facts = nodeFacts(last, n);
    }
    document.getElementById('details-title').textContent = title;
    const dl = document.getElementById('details-body');
    dl.textContent = '';
    for (const [k, v] of facts) {
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = k;
      dd.textContent = v;
      dl.append(dt, dd);
    }
    details.hidden = false;
  }

  document.getElementById('details-close').addEventListener('click', () => showDetails(null));

  // ---- tables -------------------------------------------------------------

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function renderTables(g) {
    const nodes = g.nodes.slice().sort((a, b) =>
      (kindOf(a).category - kindOf(b).category) || a.name.localeCompare(b.name));
    nodesBody.textContent = '';
    for (const n of nodes) {
      const tr = document.createElement('tr');
      tr.dataset.id = n.id;
      if (!isService(n)) tr.className = 'external';
      cell(tr, n.name);
      cell(tr, n.host || '');
      cell(tr, isService(n) ? String(n.pids) : '', 'num');
      cell(tr, isService(n) ? 'service' : n.external ? 'peer' : 'peer on this host');
      tr.addEventListener('click', () => showDetails({ kind: 'node', id: n.id }));
      nodesBody.appendChild(tr);
    }
    const edges = g.edges.slice().sort((a, b) =>
      (b.request_bytes_per_s + b.response_bytes_per_s) -
      (a.request_bytes_per_s + a.response_bytes_per_s) ||
      a.client.localeCompare(b.client) || a.server.localeCompare(b.server));
    edgesBody.textContent = '';
    for (const e of edges) {
      const tr = document.createElement('tr');
      tr.dataset.source = e.source;
      tr.dataset.target = e.target;
      cell(tr, e.client);
      cell(tr, e.server);
      cell(tr, fmtRate(e.exchanges_per_s), 'num');
      cell(tr, fmtPct(e.error_rate), 'num' + (e.error_rate ? ' error' : ''));
      cell(tr, fmtBytes(e.request_bytes_per_s), 'num');
      cell(tr, fmtBytes(e.response_bytes_per_s), 'num');
      cell(tr, fmtMs(e.p50_ms), 'num');
      cell(tr, fmtMs(e.p99_ms), 'num');
      cell(tr, fmtMs(e.srtt_ms), 'num');
      cell(tr, e.peer || '');
      tr.addEventListener('click', () => showDetails({ kind: 'edge', id: edgeId(e) }));
      edgesBody.appendChild(tr);
    }
    document.getElementById('nodes-count').textContent = '(' + g.nodes.length + ')';
    document.getElementById('edges-count').textContent = '(' + g.edges.length + ')';
    // Below 1, the agent sees only the sampled exchanges and scales them back up.
    const sampled = typeof g.sampling_ratio === 'number' && g.sampling_ratio < 1;
    document.getElementById('window').textContent =
      'Rates and latency over the last ' + g.window_s + ' s.' +
      (sampled ? ' Estimated from the ' + (g.sampling_ratio * 100).toPrecision(3) +
        ' % of exchanges kept by spans.sampling_ratio.' : '');
  }

  // ---- map ----------------------------------------------------------------

  // Where each node is now, so that an update continues the layout instead of restarting it.
  function currentPositions() {
    const pos = {};
    try {
      const series = chart.getModel().getSeriesByIndex(0);
      const data = series && series.getData();
      if (data) {
        data.each((i) => {
          const l = data.getItemLayout(i);
          if (l && isFinite(l[0]) && isFinite(l[1])) pos[data.getId(i)] = l;
        });
      }
    } catch (err) {
      // An ECharts without these internals: the layout restarts, nothing worse.
    }
    return pos;
  }

  function renderMap(g) {
    const pos = currentPositions();
    const traffic = (e) => (e.request_bytes_per_s || 0) + (e.response_bytes_per_s || 0);
    const maxTraffic = Math.max(1, ...g.edges.map(traffic));
    const degree = {};
    for (const e of g.edges) {
      degree[e.source] = (degree[e.source] || 0) + 1;
      degree[e.target] = (degree[e.target] || 0) + 1;
    }
    const nodes = g.nodes.map((n) => {
      const d = {
        id: n.id,
        name: n.name,
        value: n.pids,
        category: kindOf(n).category,
        symbol: isService(n) ? 'circle' : 'roundRect',
        symbolSize: isService(n) ? Math.min(48, 24 + 4 * (degree[n.id] || 0)) : 18,
        raw: n,
      };
      if (pos[n.id]) {
        d.x = pos[n.id][0];
        d.y = pos[n.id][1];
      }
      return d;
    });
    const edges = g.edges.map((e) => {
      const t = traffic(e);
      const width = 1 + 9 * Math.log1p(t) / Math.log1p(maxTraffic);
      const color = errorColor(e.error_rate);
      const live = e.exchanges_per_s > 0 || e.failed_connections_per_s > 0;
      const style = { width: color ? Math.max(width, 2.5) : width, opacity: live ? 0.85 : 0.3 };
      if (color) style.color = color;
      return {
        id: edgeId(e),
        source: e.source,
        target: e.target,
        value: t,
        lineStyle: style,
        raw: e,
      };
    });
    chart.setOption({
      animationDurationUpdate: 400,
      tooltip: {
        confine: true,
        formatter: (p) => {
          const raw = p.data && p.data.raw;
          if (!raw) return '';
          const facts = p.dataType === 'edge' ? edgeFacts(raw) : nodeFacts(last, raw);
          const title = p.dataType === 'edge' ? raw.client + ' \u2192 ' + raw.server : raw.name;
          return '<b>' + esc(title) + '</b><br>' +
            facts.map((f) => esc(f[0]) + ': ' + esc(f[1])).join('<br>');
        },
      },
      legend: [{ data: Object.values(KINDS).map((k) => k.label), bottom: 4 }],
      series: [{
        id: 'map',
        type: 'graph',
        layout: 'force',
        roam: true,
        draggable: true,
        data: nodes,
        links: edges,
        categories: Object.values(KINDS).map((k) => ({ name: k.label })),
        edgeSymbol: ['none', 'arrow'],
        edgeSymbolSize: [0, 9],
        label: { show: true, position: 'right', formatter: '{b}' },
        emphasis: { focus: 'adjacency', lineStyle: { width: 6 } },
        lineStyle: { color: 'source', curveness: 0.15 },
        force: { repulsion: 420, edgeLength: [90, 220], gravity: 0.08, friction: 0.2 },
      }],
    });
  }

  if (haveECharts) {
    chart = window.echarts.init(document.getElementById('map'), null, { renderer: 'canvas' });
    chart.on('click', (p) => {
      if (p.dataType === 'edge') showDetails({ kind: 'edge', id: p.data.id });
      else if (p.dataType === 'node') showDetails({ kind: 'node', id: p.data.id });
    });
    window.addEventListener('resize', () => chart.resize());
  } else {
    document.getElementById('missing').hidden = false;
    document.body.classList.add('no-map');
  }

  // ---- polling ------------------------------------------------------------

  async function refresh() {
    try {
      const r = await fetch('api/graph', { cache: 'no-store' });
      if (!r.ok) throw new Error('HTTP ' + r.status);
      const g = await r.json();
      last = g;
      renderTables(g);
      if (chart) renderMap(g);
      renderDetails();
      const services = g.nodes.filter(isService).length;
      statusEl.className = '';
      statusEl.textContent = 'updated ' + new Date().toLocaleTimeString() + ' \u00b7 ' +
        services + ' services, ' + (g.nodes.length - services) + ' peers, ' +
        g.edges.length + ' edges' + (g.starting ? ' \u00b7 waiting for the first data' : '');
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    } catch (err) {
      statusEl.className = 'error';
      statusEl.textContent = 'cannot reach the agent: ' + err.message;
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  refresh();
})();
