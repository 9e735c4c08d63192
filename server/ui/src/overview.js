// Overview: services, their endpoints, and RED charts (rate, errors, latency).
'use strict';
(function () {
  const { el } = Sonde;

  function chart(container, title, series, data, fmt) {
    const width = Math.max(320, container.clientWidth - 24);
    const opts = {
      title, width, height: 180,
      series: [{}].concat(series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, value: (u, v) => v == null ? '' : fmt(v) }))),
      axes: [{}, { values: (u, vals) => vals.map(fmt), size: 70 }],
    };
    return new uPlot(opts, data, container);
  }

  async function renderRed(box, service, endpoint) {
    box.replaceChildren(el('h3', {}, 'RED: ' + service + (endpoint ? ' — ' + endpoint : '')));
    const red = await Sonde.api('red', { service, endpoint, last: Sonde.range() });
    if (red.points.length === 0) { box.appendChild(Sonde.message('No requests in this range.')); return; }
    const t = red.points.map((p) => p.t_ms / 1000);
    box.appendChild(el('div', { class: 'muted' }, 'from ' + (red.source === 'red' ? 'agent RED windows' : 'stored spans') + ', step ' + Sonde.fmtMs(red.step_ms)));
    const row = el('div', { class: 'row' });
    box.appendChild(row);
    const mk = () => { const p = el('div', { class: 'panel' }); row.appendChild(p); return p; };
    chart(mk(), 'Requests / s', [{ label: 'rate', color: '#4e79a7' }], [t, red.points.map((p) => p.rate)], (v) => v.toFixed(2));
    chart(mk(), 'Error rate', [{ label: 'errors', color: '#c0392b' }], [t, red.points.map((p) => p.error_rate * 100)], (v) => v.toFixed(1) + '%');
    chart(mk(), 'Latency', [
      { label: 'p50', color: '#59a14f' }, { label: 'p90', color: '#f28e2b' }, { label: 'p99', color: '#e15759' },
    ], [t, red.points.map((p) => p.p50_ms), red.points.map((p) => p.p90_ms), red.points.map((p) => p.p99_ms)], Sonde.fmtMs);
  }

  Sonde.pages.overview = async function (main, arg, params) {
    main.appendChild(el('h2', {}, 'Services'));
    const { services, hidden_self: hiddenSelf } = await Sonde.api('services', { last: Sonde.range(), include_self: Sonde.includeSelf() });
    if (hiddenSelf && hiddenSelf.length) {
      main.appendChild(el('div', { class: 'muted', id: 'hidden-self' },
        'Not shown: ' + hiddenSelf.join(', ') + ' (Sonde\'s own; tick "Sonde\'s own" above to show).'));
    }
    if (services.length === 0) {
      main.appendChild(Sonde.message('No data yet in this range. Start sonde-agent pointed at this server (scripts/run.sh --demo).'));
      return;
    }
    // Busiest first; the busiest is shown unless the URL names a service.
    services.sort((a, b) => b.count - a.count || a.service.localeCompare(b.service));
    const selected = params.get('service') || services[0].service;
    main.appendChild(Sonde.table(['service', { label: 'spans', num: 1 }, { label: 'errors', num: 1 }, { label: 'endpoints', num: 1 }],
      services.map((s) => el('tr', {
        class: 'clickable service-row' + (s.service === selected ? ' selected' : ''),
        'data-service': s.service,
        onclick: () => { location.hash = '#/overview?service=' + encodeURIComponent(s.service); },
      }, [el('td', {}, s.service), el('td', { class: 'num' }, s.count), el('td', { class: 'num' + (s.errors ? ' err' : '') }, s.errors), el('td', { class: 'num' }, s.endpoints)]))));

    const endpoint = params.get('endpoint') || '';
    main.appendChild(el('h3', {}, 'Endpoints of ' + selected));
    const { endpoints } = await Sonde.api('endpoints', { service: selected, last: Sonde.range() });
    main.appendChild(Sonde.table(['endpoint', 'kind', 'src', { label: 'count', num: 1 }, { label: 'errors', num: 1 }, { label: 'avg', num: 1 }, { label: 'max', num: 1 }],
      endpoints.map((e) => el('tr', {
        class: 'clickable' + (e.endpoint === endpoint ? ' selected' : ''),
        onclick: () => { location.hash = '#/overview?service=' + encodeURIComponent(selected) + '&endpoint=' + encodeURIComponent(e.endpoint); },
      }, [el('td', { class: 'mono' }, e.endpoint), el('td', {}, e.kind), el('td', {}, Sonde.badge(e.source)),
          el('td', { class: 'num' }, e.count), el('td', { class: 'num' + (e.errors ? ' err' : '') }, e.errors),
          el('td', { class: 'num' }, Sonde.fmtMs(e.avg_ms)), el('td', { class: 'num' }, Sonde.fmtMs(e.max_ms))]))));
    const box = el('div', { id: 'red' });
    main.appendChild(box);
    await renderRed(box, selected, endpoint);
  };
})();
