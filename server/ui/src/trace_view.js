// Trace view: the assembled tree as a time-axis icicle. x = time (clock-skew
// corrected by the server), rows = depth (concurrent siblings get extra rows),
// colour = source (A application, S system, N network). Clicking a span shows
// its attributes, headers, process/thread, how its parent edge was derived,
// and a link to the CPU flame graph of its process during the span.
// Zoom: double-click a span (or "Zoom to this span" in its details) to stretch
// its time interval over the whole width; "Reset zoom" shows the whole trace.
// Beside it, a waterfall (one row per span, collapsible, with the evidence
// that linked each span to its parent).
'use strict';
(function () {
  const { el } = Sonde;
  const COLORS = { A: '#4e79a7', S: '#f28e2b', N: '#59a14f' };
  const ROW = 22;

  // Greedy lanes: a span goes at least one row below its parent, on the first
  // row where it overlaps nothing already placed.
  function layout(spans) {
    const byIndex = new Map(spans.map((s) => [s.index, s]));
    const rows = [];
    for (const s of spans) {  // depth-first order: parents first
      const parent = byIndex.get(s.parent_index);
      let r = parent ? parent.row + 1 : 0;
      const start = s.offset_ms, end = s.offset_ms + s.adjusted_duration_ms;
      for (;; r++) {
        rows[r] = rows[r] || [];
        if (!rows[r].some(([a, b]) => start < b && a < end)) break;
      }
      rows[r].push([start, end]);
      s.row = r;
    }
    return rows.length;
  }

  function kv(pairs) {
    return el('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
      .flatMap(([k, v]) => [el('dt', {}, k), el('dd', { class: 'mono' }, v instanceof Node ? v : String(v))]));
  }

  function details(box, s, trace, zoomTo) {
    const cpuFrom = Math.floor(s.start_ms - 1000), cpuTo = Math.ceil(s.start_ms + s.duration_ms + 1000);
    const cpuLink = s.pid ? el('a', { href: '#/cpu?pid=' + s.pid + '&host=' + encodeURIComponent(s.host) + '&from=' + cpuFrom + '&to=' + cpuTo, id: 'cpu-link' }, 'CPU during this span (pid ' + s.pid + ')') : null;
    const parent = trace.spans.find((x) => x.index === s.parent_index);
    const zoomButton = el('button', { id: 'zoom-span', type: 'button' }, 'Zoom to this span');
    zoomButton.addEventListener('click', () => zoomTo(s));
    box.replaceChildren(
      el('h3', {}, [Sonde.badge(s.source), ' ', s.name || s.endpoint]),
      zoomButton,
      kv([
        ['service', s.service], ['kind', s.kind], ['endpoint', s.endpoint], ['protocol', s.protocol],
        ['status', (Sonde.statusCode(s) || '') + ' ' + s.status],
        ['status message', s.status_message],
        ['start', new Date(s.start_ms).toISOString()], ['duration', Sonde.fmtMs(s.duration_ms)],
        ['clock skew corrected', s.skew_ns ? Sonde.fmtMs(s.skew_ns / 1e6) : ''],
        ['span id', s.span_id], ['parent', parent ? parent.span_id + ' (' + parent.source + ' ' + parent.kind + ')' : (s.missing_parent ? 'missing: ' + s.parent_span_id : 'root')],
        ['parent edge', s.edge ? s.edge + ' (derived by ' + s.edge_origin + ')' : ''],
      ]),
      el('h3', {}, 'Process and thread'),
      kv([['host', s.host], ['pid', s.pid], ['comm', s.comm], ['tid', s.tid], ['container', s.container_id]]),
      cpuLink ? el('div', {}, cpuLink) : null,
      el('h3', {}, 'Connection'),
      kv([['client', Sonde.fmtAddr(s.client)], ['server', Sonde.fmtAddr(s.server)], ['request bytes', s.request_bytes],
          ['response bytes', s.response_bytes], ['request TCP seq', s.request_tcp_seq], ['response TCP seq', s.response_tcp_seq]]),
      el('h3', {}, 'Attributes'),
      Object.keys(s.attributes).length ? kv(Object.entries(s.attributes)) : el('div', { class: 'muted' }, 'none'),
      el('h3', {}, 'Request headers'), Sonde.headersTable(s.request_headers),
      el('h3', {}, 'Response headers'), Sonde.headersTable(s.response_headers),
    );
  }

  // view: { from, to } in ms from the trace start; null = the whole trace.
  function draw(container, trace, detailsBox, view, onZoom, selectedId) {
    const spans = trace.spans;
    const rows = layout(spans);
    const width = Math.max(600, container.clientWidth - 8);
    const height = rows * ROW + 30;
    const full = [0, Math.max(trace.duration_ms, 0.001)];
    const domain = view ? [view.from, Math.max(view.to, view.from + 0.000001)] : full;
    const x = d3.scaleLinear().domain(domain).range([0, width - 2]).clamp(true);
    container.querySelectorAll('svg.icicle').forEach((n) => n.remove());
    const svg = d3.select(container).append('svg').attr('class', 'icicle').attr('width', width).attr('height', height)
      .attr('data-zoom', view ? view.from.toFixed(6) + '-' + view.to.toFixed(6) : 'full');
    svg.append('g').attr('class', 'axis').attr('transform', 'translate(1,' + (rows * ROW + 4) + ')')
      .call(d3.axisBottom(x).ticks(8).tickFormat((v) => Sonde.fmtMs(v)));
    const visible = (s) => s.offset_ms <= domain[1] && s.offset_ms + s.adjusted_duration_ms >= domain[0];
    const spanWidth = (s) => Math.max(2, x(s.offset_ms + s.adjusted_duration_ms) - x(s.offset_ms));
    const g = svg.selectAll('g.span').data(spans).enter().append('g').attr('class', 'span')
      .attr('display', (s) => visible(s) ? null : 'none')
      .attr('transform', (s) => 'translate(' + (1 + x(s.offset_ms)) + ',' + (s.row * ROW) + ')');
    g.append('rect').attr('class', (s) => 'span span-' + s.source + (s.span_id === selectedId ? ' selected' : ''))
      .attr('data-span-id', (s) => s.span_id)
      .attr('width', spanWidth)
      .attr('height', ROW - 2).attr('fill', (s) => COLORS[s.source] || '#999')
      .attr('opacity', (s) => (s.http_status >= 500 || s.status === 'error') ? 1 : 0.85)
      .on('click', function (ev, s) {
        svg.selectAll('rect.span').classed('selected', false);
        d3.select(this).classed('selected', true);
        details(detailsBox, s, trace, onZoom);
      })
      .on('dblclick', (ev, s) => { ev.preventDefault(); onZoom(s); })
      .append('title').text((s) => s.source + ' ' + s.kind + ' ' + s.endpoint + ' ' + Sonde.fmtMs(s.duration_ms));
    g.append('text').attr('x', 4).attr('y', ROW - 8)
      .text((s) => {
        const w = spanWidth(s);
        const label = s.service + ' ' + s.endpoint;
        const fit = Math.floor((w - 8) / 6.5);
        return fit < 3 ? '' : (label.length > fit ? label.slice(0, fit - 1) + '…' : label);
      });
  }

  // Waterfall: one row per span in tree order (indented by depth, collapsible
  // children), with service, kind, source badge, a duration bar on the trace's
  // time axis and the evidence that linked the span to its parent.
  function waterfall(box, trace, detailsBox, onZoom) {
    const spans = trace.spans;
    const children = new Map();
    for (const s of spans) {
      if (!children.has(s.parent_index)) children.set(s.parent_index, []);
      children.get(s.parent_index).push(s);
    }
    const collapsed = new Set();
    const total = Math.max(trace.duration_ms, 0.001);
    const rows = new Map();
    const hiddenBy = (s) => {  // an ancestor is collapsed
      for (let p = spans.find((x) => x.index === s.parent_index); p; p = spans.find((x) => x.index === p.parent_index)) {
        if (collapsed.has(p.index)) return true;
      }
      return false;
    };
    const refresh = () => {
      for (const s of spans) {
        const tr = rows.get(s.index);
        tr.style.display = hiddenBy(s) ? 'none' : '';
        const t = tr.querySelector('.wf-toggle');
        if (t) t.textContent = collapsed.has(s.index) ? '▸' : '▾';
      }
    };
    const body = el('tbody');
    for (const s of spans) {  // depth-first order: parents first
      const kids = children.get(s.index) || [];
      const toggle = kids.length
        ? el('button', { type: 'button', class: 'wf-toggle', title: 'collapse / expand children', onclick: (ev) => {
          ev.stopPropagation();
          if (collapsed.has(s.index)) collapsed.delete(s.index); else collapsed.add(s.index);
          refresh();
        } }, '▾')
        : el('span', { class: 'wf-leaf' });
      const left = 100 * s.offset_ms / total;
      const width = Math.max(0.3, 100 * s.adjusted_duration_ms / total);
      const bar = el('div', { class: 'wf-track' }, el('div', {
        class: 'wf-bar', style: 'left:' + left.toFixed(3) + '%;width:' + Math.min(width, 100 - left).toFixed(3) + '%;background:' + (COLORS[s.source] || '#999'),
        title: Sonde.fmtMs(s.offset_ms) + ' + ' + Sonde.fmtMs(s.duration_ms),
      }));
      const evidence = s.edge ? s.edge + ' · ' + s.edge_origin : (s.missing_parent ? 'parent missing' : 'root');
      const tr = el('tr', { class: 'clickable wf-row', 'data-span-id': s.span_id, 'data-depth': s.depth, onclick: () => {
        for (const r of body.querySelectorAll('tr.selected')) r.classList.remove('selected');
        tr.classList.add('selected');
        details(detailsBox, s, trace, onZoom);
      } }, [
        el('td', { class: 'wf-name' }, el('div', { style: 'padding-left:' + (s.depth * 16) + 'px' }, [toggle, ' ', s.name || s.endpoint])),
        el('td', {}, s.service), el('td', {}, s.kind), el('td', {}, Sonde.badge(s.source)),
        el('td', { class: 'num' + ((s.http_status >= 500 || s.status === 'error') ? ' err' : '') }, Sonde.fmtMs(s.duration_ms)),
        el('td', { class: 'wf-bar-cell' }, bar),
        el('td', { class: 'wf-evidence mono' }, evidence),
      ]);
      rows.set(s.index, tr);
      body.appendChild(tr);
    }
    box.replaceChildren(el('table', { class: 'waterfall' }, [
      el('thead', {}, el('tr', {}, ['span', 'service', 'kind', 'source', 'duration', 'timeline', 'linked by'].map((h) =>
        el('th', { class: h === 'duration' ? 'num' : '' }, h)))),
      body]));
  }

  Sonde.pages.trace = async function (main, id) {
    const trace = await Sonde.api('traces/' + encodeURIComponent(id));
    const kinds = {};
    trace.spans.forEach((s) => { kinds[s.source] = (kinds[s.source] || 0) + 1; });
    main.appendChild(el('h2', {}, ['Trace ', el('span', { class: 'mono' }, trace.trace_id)]));
    main.appendChild(el('div', { class: 'muted' }, new Date(trace.start_ms).toISOString() + ' · ' +
      Sonde.fmtMs(trace.duration_ms) + ' · ' + trace.span_count + ' spans · ' + trace.roots.length + ' root(s)'));
    main.appendChild(el('div', { class: 'legend' }, ['A', 'S', 'N'].map((k) =>
      el('span', {}, [Sonde.badge(k), ' ', Sonde.sourceName(k) + ' × ' + (kinds[k] || 0)]))));
    const chart = el('div', { class: 'trace-chart panel', id: 'trace-chart' });
    const detailsBox = el('div', { class: 'span-details panel', id: 'span-details' }, el('div', { class: 'muted' }, 'Click a span for its details.'));
    const reset = el('button', { id: 'zoom-reset', type: 'button', disabled: '' }, 'Reset zoom');
    const zoomLabel = el('span', { class: 'muted', id: 'zoom-label' });
    chart.appendChild(el('div', { class: 'zoom-bar' }, [reset, ' ', zoomLabel]));
    const wf = el('div', { class: 'trace-chart panel', id: 'waterfall', style: 'display:none' });
    const flameButton = el('button', { type: 'button', id: 'view-flame', class: 'view-toggle active' }, 'Flame');
    const wfButton = el('button', { type: 'button', id: 'view-waterfall', class: 'view-toggle' }, 'Waterfall');
    const show = (waterfallView) => {
      chart.style.display = waterfallView ? 'none' : '';
      wf.style.display = waterfallView ? '' : 'none';
      flameButton.classList.toggle('active', !waterfallView);
      wfButton.classList.toggle('active', waterfallView);
      if (waterfallView && !wf.firstChild) waterfall(wf, trace, detailsBox, (s) => { show(false); zoomTo(s); });
    };
    flameButton.addEventListener('click', () => show(false));
    wfButton.addEventListener('click', () => show(true));
    main.appendChild(el('div', { class: 'view-bar' }, [flameButton, wfButton]));
    main.appendChild(el('div', { class: 'trace-layout' }, [chart, wf, detailsBox]));
    let selectedId = null;
    const render = (view) => {
      reset.disabled = !view;
      zoomLabel.textContent = view
        ? 'Showing ' + Sonde.fmtMs(view.from) + ' – ' + Sonde.fmtMs(view.to) + ' of ' + Sonde.fmtMs(trace.duration_ms)
        : 'Whole trace · double-click a span to zoom';
      const sel = chart.querySelector('rect.span.selected');
      if (sel) selectedId = sel.getAttribute('data-span-id');
      draw(chart, trace, detailsBox, view, zoomTo, selectedId);
    };
    function zoomTo(s) {
      const dur = Math.max(s.adjusted_duration_ms, 0.001);
      render({ from: s.offset_ms, to: s.offset_ms + dur });
    }
    reset.addEventListener('click', () => render(null));
    render(null);
  };
})();
