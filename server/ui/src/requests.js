// Request log: captured exchanges (S/N spans) newest first, with headers.
'use strict';
(function () {
  const { el } = Sonde;

  // Headers for HTTP/gRPC; the query or question for database and DNS spans.
  function exchange(s) {
    const summary = Sonde.exchangeSummary(s);
    if (summary) {
      return [el('dl', { class: 'kv' }, summary.filter(([, v]) => v !== undefined && v !== '')
        .flatMap(([k, v]) => [el('dt', {}, k), el('dd', { class: 'mono' }, String(v))]))];
    }
    return [el('h3', {}, 'Request headers'), Sonde.headersTable(s.request_headers),
      el('h3', {}, 'Response headers'), Sonde.headersTable(s.response_headers)];
  }

  function details(s) {
    return el('div', { class: 'panel' }, [
      el('div', {}, [el('b', {}, 'Trace '), el('a', { href: '#/trace/' + s.trace_id, class: 'mono' }, s.trace_id)]),
      el('div', { class: 'muted' }, s.host + ' · pid ' + s.pid + ' (' + s.comm + ') · tid ' + s.tid + ' · ' + Sonde.fmtAddr(s.client) + ' → ' + Sonde.fmtAddr(s.server)),
      ...exchange(s),
    ]);
  }

  Sonde.pages.requests = async function (main, arg, params) {
    main.appendChild(el('h2', {}, 'Request log'));
    const form = el('form', { class: 'filters' }, [
      el('label', {}, ['service', el('input', { name: 'service', value: params.get('service') || '' })]),
      el('label', {}, ['endpoint contains', el('input', { name: 'endpoint', value: params.get('endpoint') || '' })]),
      el('label', {}, ['status class', el('select', { name: 'status_class' }, ['', '2', '3', '4', '5'].map((v) =>
        el('option', { value: v, selected: params.get('status_class') === v }, v ? v + 'xx' : 'any')))]),
      el('label', {}, ['kind', el('select', { name: 'kind' }, ['', 'server', 'client'].map((v) =>
        el('option', { value: v, selected: params.get('kind') === v }, v || 'any')))]),
      el('button', { type: 'submit' }, 'Filter'),
    ]);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      location.hash = '#/requests?' + new URLSearchParams(new FormData(form)).toString();
    });
    main.appendChild(form);
    const q = Object.fromEntries(['service', 'endpoint', 'status_class', 'kind'].map((k) => [k, params.get(k)]));
    const { requests } = await Sonde.api('requests', Object.assign(q, { last: Sonde.range(), limit: 300, include_self: Sonde.includeSelf() }));
    if (requests.length === 0) {
      main.appendChild(Sonde.message('No captured requests in this range.' + (Sonde.includeSelf() ? '' : ' (Sonde\'s own traffic is hidden: tick "Sonde\'s own" to show it.)')));
      return;
    }
    const rows = [];
    for (const s of requests) {
      const detailRow = el('tr', { style: 'display:none' }, el('td', { colspan: 8 }, details(s)));
      rows.push(el('tr', {
        class: 'clickable request-row',
        onclick: () => { detailRow.style.display = detailRow.style.display === 'none' ? '' : 'none'; },
      }, [el('td', {}, Sonde.fmtTime(s.start_ms)), el('td', {}, s.service), el('td', {}, Sonde.badge(s.source)),
          el('td', {}, s.kind), el('td', { class: 'mono' }, s.endpoint), Sonde.statusCell(s),
          el('td', { class: 'num' }, Sonde.fmtMs(s.duration_ms)), el('td', { class: 'mono' }, Sonde.fmtAddr(s.client) + ' → ' + Sonde.fmtAddr(s.server))]));
      rows.push(detailRow);
    }
    main.appendChild(Sonde.table(['time', 'service', 'src', 'kind', 'endpoint', 'status', { label: 'duration', num: 1 }, 'connection'], rows));
  };
})();
