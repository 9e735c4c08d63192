// Trace search: service, endpoint, status, min duration, attribute filters.
'use strict';
(function () {
  const { el } = Sonde;
  const fields = ['service', 'endpoint', 'status', 'status_class', 'min_duration', 'attr', 'limit'];

  Sonde.pages.traces = async function (main, arg, params) {
    main.appendChild(el('h2', {}, 'Trace search'));
    const input = (name, label, placeholder) => el('label', {}, [label,
      el('input', { name, id: 'q-' + name, value: params.get(name) || '', placeholder })]);
    const form = el('form', { class: 'filters', id: 'trace-search' }, [
      input('service', 'service', 'nginx'),
      input('endpoint', 'endpoint or path contains', '/api'),
      input('status', 'HTTP status', '502'),
      input('min_duration', 'min duration', '100ms'),
      input('attr', 'attribute key=value', 'http.route=/users'),
      input('limit', 'limit', '50'),
      el('button', { type: 'submit', id: 'search' }, 'Search'),
    ]);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) q.append(k, v);
      q.append('t', Date.now());  // re-run even if unchanged
      location.hash = '#/traces?' + q.toString();
    });
    main.appendChild(form);
    const q = { last: Sonde.range(), include_self: Sonde.includeSelf() };
    for (const f of fields) if (params.get(f)) q[f] = params.get(f);
    const { traces } = await Sonde.api('traces', q);
    if (traces.length === 0) {
      main.appendChild(Sonde.message('No traces match.' + (Sonde.includeSelf() ? '' : ' (Sonde\'s own traffic is hidden: tick "Sonde\'s own" to show it.)')));
      return;
    }
    main.appendChild(Sonde.table(['start', 'root service', 'root endpoint', 'sources', { label: 'spans', num: 1 }, { label: 'errors', num: 1 }, { label: 'duration', num: 1 }, 'trace id'],
      traces.map((t) => el('tr', { class: 'clickable trace-row', onclick: () => { location.hash = '#/trace/' + t.trace_id; } }, [
        el('td', {}, Sonde.fmtTime(t.start_ms)), el('td', {}, t.root_service), el('td', { class: 'mono' }, t.root_endpoint),
        el('td', {}, t.sources.split('').map(Sonde.badge)), el('td', { class: 'num' }, t.span_count),
        el('td', { class: 'num' + (t.error_count ? ' err' : '') }, t.error_count),
        el('td', { class: 'num' }, Sonde.fmtMs(t.duration_ms)), el('td', { class: 'mono' }, t.trace_id),
      ]))));
  };
})();
