// Headless Chromium (system /usr/bin/chromium via playwright-core) against a
// seeded sonde-server: search a trace, open its flame graph, open a span's
// details, zoom the trace view to a span and back, check that a captured
// "<script>" header renders as text, follow
// "CPU during this span", and save screenshots under the test output dir.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const assert = require('assert');
const { chromium } = require('playwright-core');

const base = process.env.SONDE_UI;
const out = process.env.SONDE_TEST_OUTPUT;

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] || await context.newPage();
  let dialogs = 0;
  page.on('dialog', async (d) => { dialogs++; await d.dismiss(); });  // alert(1) must never fire
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  try {
    // Overview with RED charts.
    await page.goto(base + '/#/overview?service=nginx');
    await page.waitForSelector('.uplot', { timeout: 15000 });
    await page.screenshot({ path: path.join(out, 'overview.png'), fullPage: true });

    // The first five minutes. Default service: the busiest (nginx, with its
    // health checks), not the alphabetically first (backend); Sonde's own
    // server, busier still, is hidden and named as hidden.
    await page.goto(base + '/#/overview');
    await page.waitForSelector('tr.service-row.selected', { timeout: 15000 });
    const serviceRows = () => page.$$eval('tr.service-row', (rs) => rs.map((r) => r.getAttribute('data-service')));
    assert.strictEqual(await page.getAttribute('tr.service-row.selected', 'data-service'), 'nginx', 'busiest service selected');
    assert.deepStrictEqual(await serviceRows(), ['nginx', 'backend', 'lo'], 'busiest first, sonde-server hidden');
    assert.ok((await page.textContent('#hidden-self')).includes('sonde-server'), 'says what it hides');
    // The toggle shows it (and, being the busiest, it becomes the default).
    await page.check('#show-self');
    await page.waitForSelector('tr.service-row[data-service="sonde-server"]', { timeout: 15000 });
    assert.ok(new URL(page.url()).searchParams.get('self') === '1', 'toggle in the URL: ' + page.url());
    assert.strictEqual(await page.getAttribute('tr.service-row.selected', 'data-service'), 'sonde-server');
    await page.uncheck('#show-self');
    await page.waitForSelector('tr.service-row[data-service="sonde-server"]', { state: 'detached', timeout: 15000 });

    // The range lives in the URL: it survives a reload and navigation, and
    // the pages query with it.
    await page.selectOption('#range', '6h');
    await page.waitForFunction(() => new URLSearchParams(location.search).get('range') === '6h');
    await page.reload();
    await page.waitForSelector('tr.service-row.selected', { timeout: 15000 });
    assert.strictEqual(await page.inputValue('#range'), '6h', 'range restored after reload');
    const [requestsCall] = await Promise.all([
      page.waitForRequest((r) => r.url().includes('/api/requests?'), { timeout: 15000 }),
      page.click('#nav a[data-page="requests"]'),
    ]);
    assert.strictEqual(new URL(requestsCall.url()).searchParams.get('last'), '6h', 'requests queried over the URL\'s range');
    await page.waitForSelector('tr.request-row', { timeout: 15000 });
    assert.strictEqual(new URL(page.url()).searchParams.get('range'), '6h', 'range kept across navigation');
    // Filters live in the hash: a reload keeps them.
    await page.goto(base + '/?range=6h#/requests?service=backend');
    await page.reload();
    await page.waitForSelector('tr.request-row', { timeout: 15000 });
    assert.strictEqual(await page.inputValue('input[name="service"]'), 'backend');
    const shownServices = await page.$$eval('tr.request-row td:nth-child(2)', (tds) => [...new Set(tds.map((t) => t.textContent))]);
    assert.deepStrictEqual(shownServices, ['backend'], 'filter applied after reload');
    // Sonde's own traffic (the seeded sonde-server spans answering a UI) is
    // left out of the request log and the trace search unless asked.
    const requestServices = () => page.$$eval('tr.request-row td:nth-child(2)', (tds) => [...new Set(tds.map((t) => t.textContent))]);
    await page.goto(base + '/?range=6h#/requests');
    await page.waitForSelector('tr.request-row', { timeout: 15000 });
    assert.ok(!(await requestServices()).includes('sonde-server'), 'sonde-server hidden from the request log');
    const [selfCall] = await Promise.all([
      page.waitForRequest((r) => r.url().includes('/api/requests?') && r.url().includes('include_self=1'), { timeout: 15000 }),
      page.check('#show-self'),
    ]);
    assert.ok(selfCall, 'the toggle asks for Sonde\'s own');
    await page.waitForSelector('tr.request-row', { timeout: 15000 });
    for (let i = 0; i < 150 && !(await requestServices()).includes('sonde-server'); i++) await page.waitForTimeout(100);
    assert.ok((await requestServices()).includes('sonde-server'), 'sonde-server shown with the toggle');
    await page.goto(base + '/?range=6h&self=1#/traces?service=sonde-server');
    await page.waitForSelector('tr.trace-row', { timeout: 15000 });
    await page.uncheck('#show-self');
    await page.waitForSelector('tr.trace-row', { state: 'detached', timeout: 15000 });
    // The rows leave with the loading state; the empty page's text comes with the render after it.
    for (let i = 0; i < 50 && !(await page.textContent('main')).includes('Sonde\'s own traffic is hidden'); i++) {
      await page.waitForTimeout(100);
    }
    assert.ok((await page.textContent('main')).includes('Sonde\'s own traffic is hidden'), 'says why the search is empty');

    // Auto-refresh: re-queries on its own, with a visible loading state while
    // the (deliberately slowed) query runs; the old figures stay meanwhile.
    await page.goto(base + '/#/overview');
    await page.waitForSelector('tr.service-row.selected', { timeout: 15000 });
    await page.waitForSelector('#loading', { state: 'hidden', timeout: 15000 });  // at rest once the page's queries finish
    await page.route('**/api/services**', async (route) => {
      await new Promise((r) => setTimeout(r, 1500));
      await route.continue();
    });
    const servicesCalls = [];
    page.on('request', (r) => { if (r.url().includes('/api/services')) servicesCalls.push(Date.now()); });
    await page.selectOption('#refresh', '5s');
    assert.strictEqual(new URL(page.url()).searchParams.get('refresh'), '5s', 'auto-refresh in the URL');
    await page.waitForSelector('main.refreshing', { timeout: 15000 });
    assert.ok(await page.isVisible('#loading'), 'loading indicator shown during the refresh');
    assert.ok(await page.locator('tr.service-row').count() > 0, 'old content kept while refreshing');
    await page.waitForSelector('main:not(.refreshing)', { timeout: 15000 });
    await page.waitForSelector('#loading', { state: 'hidden', timeout: 15000 });
    assert.strictEqual(await page.getAttribute('tr.service-row.selected', 'data-service'), 'nginx', 'refreshed page rendered');
    assert.ok(servicesCalls.length >= 1, 'auto-refresh queried again');
    await page.unroute('**/api/services**');
    await page.reload();
    assert.strictEqual(await page.inputValue('#refresh'), '5s', 'auto-refresh setting restored after reload');
    await page.selectOption('#refresh', 'off');

    // Trace search.
    await page.goto(base + '/#/traces');
    await page.fill('#q-service', 'nginx');
    await page.fill('#q-attr', 'tenant=acme');
    await page.click('#search');
    const seeded = fs.readFileSync(path.join(out, 'trace_ids.txt'), 'utf8').split('\n').filter((l) => /^[0-9a-f]{32}$/.test(l));
    await page.waitForSelector('tr.trace-row', { timeout: 15000 });
    // A render swaps the page in when it is complete (a refresh started by the
    // navigation may replace the rows once more): wait until the rows settle.
    // (Polled through the locator: waitForFunction with an argument is refused
    // by the UI's Content-Security-Policy, so it never waited.)
    let rows = 0;
    for (const deadline = Date.now() + 15000; Date.now() < deadline; await page.waitForTimeout(100)) {
      rows = await page.locator('tr.trace-row').count();
      if (rows === seeded.length) break;
    }
    assert.strictEqual(rows, seeded.length, 'one row per seeded trace');
    const firstId = (await page.locator('tr.trace-row td.mono').last().textContent()).trim();
    assert.ok(seeded.includes(firstId), 'listed trace id is one we seeded: ' + firstId);

    // Its flame graph (time-axis icicle).
    await page.locator('tr.trace-row').first().click();
    await page.waitForSelector('svg.icicle rect.span', { timeout: 15000 });
    const title = await page.textContent('h2');
    assert.ok(title.includes(seeded[seeded.length - 1]) || seeded.some((id) => title.includes(id)), 'trace id in heading');
    const counts = {};
    for (const src of ['A', 'S', 'N']) counts[src] = await page.locator('rect.span-' + src).count();
    assert.deepStrictEqual(counts, { A: 2, S: 3, N: 1 }, 'spans coloured by source');

    // A span's details: the ingress S server span is the root (row 0, first in DFS order).
    await page.locator('rect.span-S').first().click();
    await page.waitForSelector('#span-details h3', { timeout: 5000 });
    const details = await page.textContent('#span-details');
    for (const want of ['Process and thread', 'nginx', '1000', '1001', 'tenant', 'acme', 'Request headers', 'traceparent']) {
      assert.ok(details.includes(want), 'details mention ' + want);
    }
    // Escaping: the header value is text, not markup.
    const evil = page.locator('#span-details .header-value', { hasText: '<script>alert(1)</script>' });
    assert.strictEqual(await evil.count(), 1, '<script> header shown verbatim as text');
    assert.strictEqual(await page.locator('#span-details script').count(), 0, 'no script element injected');
    await page.screenshot({ path: path.join(out, 'trace.png'), fullPage: true });

    // Zoom: the narrowest span, zoomed to, spans (nearly) the whole chart;
    // spans outside its interval are hidden; reset restores the whole trace.
    const chartWidth = Number(await page.locator('svg.icicle').getAttribute('width'));
    const spanWidths = () => page.$$eval('svg.icicle rect.span', (rs) =>
      Object.fromEntries(rs.map((r) => [r.getAttribute('data-span-id'), Number(r.getAttribute('width'))])));
    const visibleSpans = () => page.$$eval('svg.icicle g.span', (gs) => gs.filter((g) => g.getAttribute('display') !== 'none').length);
    const full = await spanWidths();
    const fullVisible = await visibleSpans();
    const [narrowId, narrowWidth] = Object.entries(full).sort((a, b) => a[1] - b[1])[0];
    assert.ok(narrowWidth < chartWidth * 0.8, 'narrowest span is narrower than the chart: ' + narrowWidth + ' of ' + chartWidth);
    assert.strictEqual(await page.getAttribute('svg.icicle', 'data-zoom'), 'full');
    assert.ok(await page.isDisabled('#zoom-reset'), 'nothing to reset before zooming');
    const fullAxis = await page.textContent('svg.icicle .axis');
    await page.locator('rect.span[data-span-id="' + narrowId + '"]').click();
    await page.click('#zoom-span');
    await page.waitForSelector('svg.icicle:not([data-zoom="full"])', { timeout: 5000 });
    const zoomed = await spanWidths();
    assert.ok(zoomed[narrowId] >= chartWidth * 0.95, 'zoomed span fills the chart: ' + zoomed[narrowId] + ' of ' + chartWidth);
    assert.ok(zoomed[narrowId] > narrowWidth * 1.5, 'zoom widened the span');
    assert.notStrictEqual(await page.textContent('svg.icicle .axis'), fullAxis, 'time axis changed');
    assert.ok((await page.textContent('#zoom-label')).startsWith('Showing'), 'zoom label');
    assert.ok(await visibleSpans() <= fullVisible, 'no more spans visible than before');
    await page.screenshot({ path: path.join(out, 'trace-zoomed.png'), fullPage: true });
    await page.click('#zoom-reset');
    await page.waitForSelector('svg.icicle[data-zoom="full"]', { timeout: 5000 });
    assert.deepStrictEqual(await spanWidths(), full, 'reset restores every span width');
    assert.strictEqual(await visibleSpans(), fullVisible);
    // Double-click zooms too.
    await page.locator('rect.span[data-span-id="' + narrowId + '"]').dblclick();
    await page.waitForSelector('svg.icicle:not([data-zoom="full"])', { timeout: 5000 });
    await page.click('#zoom-reset');
    await page.waitForSelector('svg.icicle[data-zoom="full"]', { timeout: 5000 });

    // The child edge derivations are shown.
    await page.locator('rect.span-A').first().click();
    const appDetails = await page.textContent('#span-details');
    assert.ok(appDetails.includes('time_nesting (derived by server)'), 'A span re-parented by time nesting');

    // Waterfall beside the flame view: every span, collapsible, with the
    // evidence that linked each span to its parent.
    await page.click('#view-waterfall');
    await page.waitForSelector('#waterfall tr.wf-row', { timeout: 5000 });
    const wfRows = await page.locator('#waterfall tr.wf-row').count();
    assert.strictEqual(wfRows, counts.A + counts.S + counts.N, 'the waterfall lists every span');
    const evidence = await page.$$eval('#waterfall td.wf-evidence', (tds) => tds.map((t) => t.textContent));
    assert.ok(evidence.some((e) => e.startsWith('tcp_sequence')), 'edge evidence shown: ' + evidence.join(', '));
    const depths = await page.$$eval('#waterfall tr.wf-row', (rs) => rs.map((r) => Number(r.getAttribute('data-depth'))));
    let subtree = 0;
    while (1 + subtree < depths.length && depths[1 + subtree] > depths[0]) subtree++;
    assert.ok(subtree > 0, 'the first row has children');
    const firstToggle = page.locator('#waterfall tr.wf-row').first().locator('.wf-toggle');
    await firstToggle.click();
    assert.strictEqual(await page.locator('#waterfall tr.wf-row:visible').count(), wfRows - subtree, 'collapsing hides the subtree');
    await firstToggle.click();
    assert.strictEqual(await page.locator('#waterfall tr.wf-row:visible').count(), wfRows, 'expanding shows it again');
    await page.locator('#waterfall tr.wf-row').nth(1).click();
    await page.waitForSelector('#span-details h3', { timeout: 5000 });
    await page.screenshot({ path: path.join(out, 'waterfall.png'), fullPage: true });
    await page.click('#view-flame');

    // "CPU during this span" -> CPU flame graph of that process.
    await page.locator('rect.span-S').first().click();
    await page.click('#cpu-link');
    await page.waitForSelector('#flame svg g.frame', { timeout: 15000 });
    const flameText = await page.textContent('#flame');
    assert.ok(flameText.includes('ngx_worker_process_cycle'), 'nginx frames in the flame graph');
    assert.ok(!flameText.includes('json_encode'), 'only the span\'s process (pid filter)');
    await page.waitForTimeout(1200);  // let d3-flame-graph's transitions finish
    await page.screenshot({ path: path.join(out, 'cpu.png'), fullPage: true });

    // Request log shows the header as text too.
    await page.goto(base + '/#/requests?service=nginx&kind=server');
    await page.waitForSelector('tr.request-row', { timeout: 15000 });
    await page.locator('tr.request-row').first().click();
    assert.strictEqual(await page.locator('.header-value', { hasText: '<script>alert(1)</script>' }).count() >= 1, true);

    // TCP page renders the seeded pair.
    await page.goto(base + '/#/tcp');
    await page.waitForSelector('table', { timeout: 15000 });
    assert.ok((await page.textContent('main')).includes('127.0.0.1:9000'));

    // Service map: the seeded services and calls, edge counts = requests seeded.
    await page.goto(base + '/#/map');
    await page.waitForSelector('svg.service-map g.map-node', { timeout: 15000 });
    const nodeIds = await page.$$eval('g.map-node', (gs) => gs.map((g) => g.getAttribute('data-id')).sort());
    assert.deepStrictEqual(nodeIds, ['127.0.0.1', 'backend', 'nginx'], 'map nodes');
    assert.strictEqual(await page.getAttribute('g.map-node[data-id="nginx"]', 'class'), 'map-node gateway');
    const edgeCounts = await page.$$eval('g.map-edge', (gs) =>
      Object.fromEntries(gs.map((g) => [g.getAttribute('data-source') + '>' + g.getAttribute('data-target'), Number(g.getAttribute('data-count'))])));
    assert.deepStrictEqual(edgeCounts, { '127.0.0.1>nginx': seeded.length, 'nginx>backend': seeded.length }, 'map edges');
    await page.locator('g.map-edge[data-source="nginx"][data-target="backend"] line.hit').click({ force: true });
    await page.waitForSelector('#map-details tr.edge-trace', { timeout: 5000 });
    assert.strictEqual((await page.textContent('#edge-count')).trim(), String(seeded.length));
    const edgeTraces = await page.$$eval('#map-details tr.edge-trace td', (tds) => tds.map((t) => t.textContent.trim()).sort());
    assert.deepStrictEqual(edgeTraces, seeded.slice().sort(), 'the edge lists its requests\' traces');
    await page.screenshot({ path: path.join(out, 'map.png'), fullPage: true });
    await page.locator('g.map-node[data-id="backend"] circle').click();
    await page.waitForSelector('#map-details tr.node-endpoint', { timeout: 5000 });
    assert.ok((await page.textContent('#map-details')).includes('GET /api/items/{id}'), 'node click lists its endpoints');

    assert.strictEqual(dialogs, 0, 'no alert() ran');
    assert.deepStrictEqual(errors, [], 'no page errors');
    console.log('browser test passed; screenshots in ' + out);
  } catch (e) {
    await page.screenshot({ path: path.join(out, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(e);
    process.exitCode = 1;
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})();
