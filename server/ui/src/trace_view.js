// Trace view: the assembled tree as a time-axis icicle. x = time (clock-skew
// corrected by the server), rows = depth (concurrent siblings get extra rows),
// colour = source (A application, S system, N network). Clicking a span shows
// its attributes, headers, process/thread, how its parent edge was derived,
// and a link to the CPU flame graph of its process during the span.
// Zoom: double-click a span (or "Zoom to this span" in its details) to stretch
// its time interval over the whole width; "Reset zoom" shows the whole trace.
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
    main.appendChild(el('div', { class: 'trace-layout' }, [chart, detailsBox]));
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
