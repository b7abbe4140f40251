// SPDX-License-Identifier: Apache-2.0
// Drives Debian's headless Chromium (through playwright-core) against the
// agent's map page and checks what a person would see:
//
//   node tests/integration/ui_check.mjs URL SCREENSHOT [--node NAME]... [--edge CLIENT,SERVER]...
//                                       [--no-echarts]
//
// Defaults: nodes frontend and backend, edge frontend,backend. It checks that
// the tables list every expected node and edge as text, that the map canvas
// has been drawn on, that hovering a node shows its tooltip and clicking it
// opens the details panel, and saves a screenshot. With --no-echarts it checks
// instead that the page says the map library is missing and the table works.
// --error-edge C,S,TYPE: that edge's row shows its error rate (marked as an
// error), the map draws it red (an error rate of 20 % or more), and its details
// list TYPE among the errors.
// Exit status 0 when all holds; the reason on stderr otherwise.
//
// playwright-core is found in $TCPOTEL_NODE_MODULES, .output/web-test/node_modules
// or .output/web/node_modules (npm ci of web/package.json; it downloads no browser).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const MISSING_TEXT = 'the map library (Apache ECharts) was not installed at build time';

function loadPlaywright() {
  const dirs = [process.env.TCPOTEL_NODE_MODULES,
    path.join(root, '.output', 'web-test', 'node_modules'),
    path.join(root, '.output', 'web', 'node_modules')].filter(Boolean);
  for (const d of dirs) {
    if (fs.existsSync(path.join(d, 'playwright-core'))) {
      return createRequire(path.join(d, 'noop.js'))('playwright-core');
    }
  }
  throw new Error('playwright-core not found in ' + dirs.join(', ') +
    ': run `npm ci` with web/package.json into one of them');
}

function parseArgs(argv) {
  const opts = { nodes: [], edges: [], echarts: true, errorEdges: [] };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--node') opts.nodes.push(argv[++i]);
    else if (argv[i] === '--edge') opts.edges.push(argv[++i].split(','));
    else if (argv[i] === '--no-echarts') opts.echarts = false;
    else if (argv[i] === '--error-edge') opts.errorEdges.push(argv[++i].split(','));
    else pos.push(argv[i]);
  }
  if (pos.length !== 2) {
    throw new Error('usage: ui_check.mjs URL SCREENSHOT [--node NAME]... [--edge C,S]... ' +
      '[--error-edge C,S,TYPE]... [--no-echarts]');
  }
  [opts.url, opts.screenshot] = pos;
  if (!opts.nodes.length) opts.nodes = ['frontend', 'backend'];
  if (!opts.edges.length) opts.edges = [['frontend', 'backend']];
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { chromium } = loadPlaywright();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpotel-chromium-'));
  const errors = [];
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--disable-dev-shm-usage'],
      viewport: { width: 1400, height: 860 },
    });
    const page = context.pages()[0] || await context.newPage();
    page.on('pageerror', (e) => errors.push('page error: ' + e.message));
    // Anything requested from elsewhere than the agent is a failure: the page must work offline.
    const origin = new URL(opts.url).origin;
    await page.route('**/*', (route) => {
      if (new URL(route.request().url()).origin !== origin) {
        errors.push('request outside the agent: ' + route.request().url());
        return route.abort();
      }
      return route.continue();
    });
    await page.goto(opts.url, { waitUntil: 'load', timeout: 20000 });

    // The tables fill from /api/graph: wait until every expected node and edge is there.
    const want = { nodes: opts.nodes, edges: opts.edges };
    await page.waitForFunction((w) => {
      const nodes = [...document.querySelectorAll('#nodes tbody tr')]
        .map((tr) => tr.cells[0].textContent);
      const edges = [...document.querySelectorAll('#edges tbody tr')]
        .map((tr) => tr.cells[0].textContent + '\u2192' + tr.cells[1].textContent);
      return w.nodes.every((n) => nodes.includes(n)) &&
        w.edges.every((e) => edges.includes(e[0] + '\u2192' + e[1]));
    }, want, { timeout: 30000, polling: 250 }).catch(async () => {
      const text = await page.locator('#tables').innerText().catch(() => '');
      throw new Error('the tables do not show ' + JSON.stringify(want) + '; they show:\n' + text);
    });

    // Service names are text of the page, not only pixels on the canvas.
    const bodyText = await page.locator('body').innerText();
    for (const n of opts.nodes) {
      if (!bodyText.includes(n)) throw new Error('page text lacks ' + n);
    }
    // The window line; at sampling_ratio 1 (the test's) nothing is called an estimate.
    const windowText = await page.locator('#window').innerText();
    if (!/^Rates and latency over the last \d+ s\.$/.test(windowText)) {
      throw new Error('unexpected window line: ' + windowText);
    }
    // An edge row carries rates.
    const rate = await page.locator('#edges tbody tr').first().locator('td').nth(2).innerText();
    if (!(parseFloat(rate.replace(/,/g, '')) >= 0)) throw new Error('no rate in edge row: ' + rate);

    const missingVisible = await page.locator('#missing').isVisible();
    if (!opts.echarts) {
      if (!missingVisible) throw new Error('the page does not say that ECharts is missing');
      const t = await page.locator('#missing').innerText();
      if (!t.includes(MISSING_TEXT)) throw new Error('unexpected notice: ' + t);
    } else {
      if (missingVisible) throw new Error('the page says ECharts is missing, but it was expected');
      // Let the force layout settle a little, then look at the canvas.
      await page.waitForTimeout(2500);
      const drawn = await page.evaluate(() => {
        const c = document.querySelector('#map canvas');
        if (!c) return -1;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
      });
      if (drawn < 500) throw new Error('the map canvas is empty (' + drawn + ' pixels drawn)');

      // Hover a node: the tooltip names it; click it: the details panel opens.
      const target = opts.nodes[0];
      const at = await page.evaluate((name) => {
        const chart = window.echarts.getInstanceByDom(document.getElementById('map'));
        const data = chart.getModel().getSeriesByIndex(0).getData();
        for (let i = 0; i < data.count(); i++) {
          if (data.getName(i) !== name) continue;
          const p = chart.convertToPixel({ seriesIndex: 0 }, data.getItemLayout(i));
          const r = document.getElementById('map').getBoundingClientRect();
          return [r.left + p[0], r.top + p[1]];
        }
        return null;
      }, target);
      if (!at) throw new Error('node ' + target + ' is not on the map');
      await page.mouse.move(at[0], at[1]);
      await page.waitForFunction((name) => [...document.querySelectorAll('#map div')]
        .some((d) => d.style.display !== 'none' && d.innerText.includes(name) &&
          d.innerText.includes('kind')), target, { timeout: 5000 })
        .catch(() => { throw new Error('no tooltip when hovering ' + target); });
      await page.mouse.click(at[0], at[1]);
      await page.waitForFunction((name) => {
        const d = document.getElementById('details');
        return !d.hidden && document.getElementById('details-title').textContent === name;
      }, target, { timeout: 5000 })
        .catch(() => { throw new Error('clicking ' + target + ' opened no details'); });
    }

    // A table row opens the details of its edge, with or without the map.
    const [c, s] = opts.edges[0];
    const row = page.locator('#edges tbody tr', { hasText: c }).filter({ hasText: s }).first();
    await row.click();
    await page.waitForFunction((t) => {
      const d = document.getElementById('details');
      return document.getElementById('details-title').textContent === t &&
        (!d.hidden || document.body.classList.contains('no-map'));
    }, c + ' \u2192 ' + s, { timeout: 5000 })
      .catch(() => { throw new Error('clicking the edge row opened no details'); });

    // Failing edges: the error rate in the table, red on the map, the errors listed by type.
    for (const [ec, es, type] of opts.errorEdges) {
      const erow = page.locator('#edges tbody tr', { hasText: ec }).filter({ hasText: es }).first();
      const errCell = erow.locator('td').nth(3);
      const errText = await errCell.innerText();
      if (!/%$/.test(errText) || !(await errCell.getAttribute('class') || '').includes('error')) {
        throw new Error('edge ' + ec + ' -> ' + es + ' shows no error rate: ' + errText);
      }
      if (opts.echarts) {
        const color = await page.evaluate(([c, s]) => {
          const chart = window.echarts.getInstanceByDom(document.getElementById('map'));
          const links = chart.getOption().series[0].links;
          const l = links.find((x) => x.raw.client === c && x.raw.server === s);
          return l && l.lineStyle && l.lineStyle.color;
        }, [ec, es]);
        if (!color || !/^hsl\(0,/.test(color)) {
          throw new Error('edge ' + ec + ' -> ' + es + ' is not red on the map: ' + color);
        }
      }
      await erow.click();
      await page.waitForFunction(([t, ty]) =>
        document.getElementById('details-title').textContent === t &&
        document.getElementById('details-body').innerText.includes(ty),
      [ec + ' \u2192 ' + es, type], { timeout: 5000 })
        .catch(() => { throw new Error('the details of ' + ec + ' -> ' + es + ' do not list ' + type); });
    }

    fs.mkdirSync(path.dirname(path.resolve(opts.screenshot)), { recursive: true });
    await page.screenshot({ path: opts.screenshot, fullPage: false });
    if (errors.length) throw new Error(errors.join('\n'));
    console.log('ui_check: ok: nodes ' + opts.nodes.join(', ') + '; edges ' +
      opts.edges.map((e) => e.join('->')).join(', ') + '; screenshot ' + opts.screenshot);
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error('ui_check: FAIL: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
