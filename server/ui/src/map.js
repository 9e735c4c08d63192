// Service map: services as nodes, calls as edges (rate, error rate, p50/p99)
// over the selected range, laid out by d3-force (from the d3 bundle).
// Clicking an edge lists its traces; clicking a node lists its endpoints.
'use strict';
(function () {
  const { el } = Sonde;
  const NS = 'http://www.w3.org/2000/svg';
  const svgEl = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = String(text);  // text, never markup
    return n;
  };
  const pct = (x) => (100 * x).toFixed(x > 0 && x < 0.01 ? 2 : 1) + ' %';

  Sonde.pages.map = async function (main) {
    main.appendChild(el('h2', {}, 'Service map'));
    const data = await Sonde.api('map', { last: Sonde.range(), include_self: Sonde.includeSelf() });
    if (data.nodes.length === 0) { main.appendChild(Sonde.message('No calls in this range.')); return; }
    if (data.truncated) main.appendChild(Sonde.message('Only the newest ' + data.spans_read + ' spans are drawn.'));
    main.appendChild(el('div', { class: 'legend muted' }, [
      el('span', { class: 'map-key service' }, 'service'), el('span', { class: 'map-key gateway' }, 'gateway'),
      el('span', { class: 'map-key database' }, 'database'), el('span', { class: 'map-key external' }, 'external peer'),
      el('span', {}, 'edge label: requests · req/s · errors · p50 / p99'),
    ]));

    const width = Math.max(640, main.clientWidth - 32), height = 520;
    const nodes = data.nodes.map((n) => Object.assign({}, n));
    const links = data.edges.map((e) => Object.assign({}, e));
    // Layout: forces run to rest before drawing (no animation to wait for).
    const sim = d3.forceSimulation(nodes)
      .force('link', d3.forceLink(links).id((d) => d.id).distance(240))
      .force('charge', d3.forceManyBody().strength(-900))
      .force('center', d3.forceCenter(width / 2, height / 2))
      .force('collide', d3.forceCollide(60))
      .stop();
    for (let i = 0; i < 400; ++i) sim.tick();
    const clampX = (x) => Math.max(70, Math.min(width - 70, x));
    const clampY = (y) => Math.max(30, Math.min(height - 30, y));
    for (const n of nodes) { n.x = clampX(n.x); n.y = clampY(n.y); }

    const svg = svgEl('svg', { class: 'service-map', width, height, viewBox: '0 0 ' + width + ' ' + height });
    const defs = svgEl('defs');
    const marker = svgEl('marker', { id: 'map-arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' });
    marker.appendChild(svgEl('path', { d: 'M 0 0 L 10 5 L 0 10 z' }));
    defs.appendChild(marker);
    svg.appendChild(defs);
    const details = el('div', { class: 'panel', id: 'map-details' }, el('div', { class: 'muted' }, 'Click an edge for its requests, a node for its endpoints.'));

    const radius = 26;
    for (const e of links) {
      const s = e.source, t = e.target;
      const dx = t.x - s.x, dy = t.y - s.y, len = Math.max(1, Math.hypot(dx, dy));
      const x1 = s.x + dx / len * radius, y1 = s.y + dy / len * radius;
      const x2 = t.x - dx / len * (radius + 2), y2 = t.y - dy / len * (radius + 2);
      const g = svgEl('g', { class: 'map-edge' + (e.errors ? ' has-errors' : ''), 'data-source': s.id, 'data-target': t.id, 'data-count': e.count });
      g.appendChild(svgEl('line', { x1, y1, x2, y2, 'marker-end': 'url(#map-arrow)' }));
      g.appendChild(svgEl('line', { class: 'hit', x1, y1, x2, y2 }));
      const label = e.count + ' req · ' + (e.rate >= 10 ? e.rate.toFixed(0) : e.rate.toPrecision(2)) + '/s · ' + pct(e.error_rate) + ' err · ' +
        Sonde.fmtMs(e.p50_ms) + ' / ' + Sonde.fmtMs(e.p99_ms);
      g.appendChild(svgEl('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle', class: 'edge-label' }, label));
      g.addEventListener('click', () => showEdge(e));
      svg.appendChild(g);
    }
    for (const n of nodes) {
      const g = svgEl('g', { class: 'map-node ' + n.kind, 'data-id': n.id, transform: 'translate(' + n.x + ',' + n.y + ')' });
      g.appendChild(svgEl('circle', { r: radius }));
      g.appendChild(svgEl('text', { y: radius + 14, 'text-anchor': 'middle', class: 'node-label' }, n.id));
      g.appendChild(svgEl('text', { y: 4, 'text-anchor': 'middle', class: 'node-count' }, n.served || ''));
      g.addEventListener('click', () => showNode(n));
      svg.appendChild(g);
    }
    main.appendChild(el('div', { class: 'panel map-panel' }, svg));
    main.appendChild(details);

    function select(selector) {
      for (const s of svg.querySelectorAll('.selected')) s.classList.remove('selected');
      const n = svg.querySelector(selector);
      if (n) n.classList.add('selected');
    }
    function showEdge(e) {
      select('g.map-edge[data-source="' + CSS.escape(e.source.id) + '"][data-target="' + CSS.escape(e.target.id) + '"]');
      details.replaceChildren(
        el('h3', {}, e.source.id + ' → ' + e.target.id),
        el('dl', { class: 'kv' }, [
          el('dt', {}, 'requests'), el('dd', { id: 'edge-count' }, e.count),
          el('dt', {}, 'rate'), el('dd', {}, e.rate.toFixed(3) + ' req/s'),
          el('dt', {}, 'errors'), el('dd', {}, e.errors + ' (' + pct(e.error_rate) + ')'),
          el('dt', {}, 'latency p50 / p99'), el('dd', {}, Sonde.fmtMs(e.p50_ms) + ' / ' + Sonde.fmtMs(e.p99_ms)),
          el('dt', {}, 'protocol'), el('dd', {}, e.protocol),
        ]),
        el('h3', {}, 'Requests (latest traces)'),
        Sonde.table(['trace id'], e.trace_ids.map((id) => el('tr', { class: 'clickable edge-trace', onclick: () => { location.hash = '#/trace/' + id; } },
          el('td', { class: 'mono' }, id)))),
        el('p', {}, el('a', { href: '#/requests?service=' + encodeURIComponent(e.target.id) + '&kind=server' }, 'All requests to ' + e.target.id)));
    }
    async function showNode(n) {
      select('g.map-node[data-id="' + CSS.escape(n.id) + '"]');
      details.replaceChildren(el('h3', {}, n.id + ' (' + n.kind + ')'));
      if (n.kind === 'external' || n.kind === 'database') {
        details.appendChild(el('div', { class: 'muted' }, 'Not traced: seen only as a peer.'));
        return;
      }
      const { endpoints } = await Sonde.api('endpoints', { last: Sonde.range(), service: n.id });
      details.appendChild(Sonde.table(['endpoint', 'source', 'kind', { label: 'requests', num: 1 }, { label: 'errors', num: 1 }, { label: 'avg', num: 1 }],
        endpoints.map((p) => el('tr', { class: 'clickable node-endpoint', onclick: () => { location.hash = '#/overview?service=' + encodeURIComponent(n.id) + '&endpoint=' + encodeURIComponent(p.endpoint); } }, [
          el('td', { class: 'mono' }, p.endpoint), el('td', {}, Sonde.badge(p.source)), el('td', {}, p.kind),
          el('td', { class: 'num' }, p.count), el('td', { class: 'num' + (p.errors ? ' err' : '') }, p.errors),
          el('td', { class: 'num' }, Sonde.fmtMs(p.avg_ms)),
        ]))));
    }
  };
})();
