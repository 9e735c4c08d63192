// CPU flame graph (d3-flame-graph): merged folded stacks for one process or
// all, on- or off-CPU, over the selected range or an explicit from/to (the
// trace view links here with the span's process and time); click to zoom,
// search to highlight; "diff" compares the range against the one before it.
'use strict';
(function () {
  const { el } = Sonde;

  Sonde.pages.cpu = async function (main, arg, params) {
    main.appendChild(el('h2', {}, 'CPU flame graph'));
    const form = el('form', { class: 'filters' }, [
      el('label', {}, ['pid (empty: all)', el('input', { name: 'pid', value: params.get('pid') || '', size: 8 })]),
      el('label', {}, ['host', el('input', { name: 'host', value: params.get('host') || '', size: 12 })]),
      el('label', {}, ['kind', el('select', { name: 'cpu' }, [['on', 'on-CPU'], ['off', 'off-CPU']].map(([v, l]) =>
        el('option', { value: v, selected: (params.get('cpu') || 'on') === v }, l)))]),
      el('label', {}, ['mode', el('select', { name: 'mode' }, [['flame', 'flame graph'], ['diff', 'diff vs previous range']].map(([v, l]) =>
        el('option', { value: v, selected: (params.get('mode') || 'flame') === v }, l)))]),
      params.get('from') ? el('input', { type: 'hidden', name: 'from', value: params.get('from') }) : null,
      params.get('to') ? el('input', { type: 'hidden', name: 'to', value: params.get('to') }) : null,
      el('button', { type: 'submit' }, 'Show'),
    ]);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) q.append(k, v);
      location.hash = '#/cpu?' + q.toString();
    });
    let chart = null;
    const search = el('input', { placeholder: 'search frames', id: 'flame-search' });
    const status = el('div', { class: 'flame-status muted' });
    main.append(form, el('div', {}, [search, ' ', el('button', { onclick: () => chart && chart.resetZoom() }, 'Reset zoom')]), status);
    const box = el('div', { id: 'flame', class: 'panel' });
    main.appendChild(box);

    const from = params.get('from'), to = params.get('to');
    const common = { pid: params.get('pid'), host: params.get('host'), cpu: params.get('cpu') || 'on' };
    let data;
    if (params.get('mode') === 'diff') {
      const now = Date.now();
      const len = from && to ? (to - from) : ({ '5m': 3e5, '15m': 9e5, '1h': 36e5, '6h': 216e5, '24h': 864e5, '72h': 2592e5, '7d': 6048e5 }[Sonde.range()]);
      const bTo = to ? Number(to) : now, bFrom = bTo - len;
      data = await Sonde.api('profile/diff', Object.assign({ a_from: bFrom - len, a_to: bFrom, b_from: bFrom, b_to: bTo }, common));
      status.textContent = 'Red: more samples than the previous range; blue: fewer.';
    } else {
      data = await Sonde.api('profile/flame', Object.assign(from && to ? { from, to } : { last: Sonde.range() }, common));
      status.textContent = data.stacks + ' distinct stacks' + (from ? ' between ' + new Date(Number(from)).toISOString() + ' and ' + new Date(Number(to)).toISOString() : '');
    }
    if (!data.tree.value) { box.appendChild(Sonde.message('No CPU samples for this selection.')); return; }
    chart = flamegraph().width(Math.max(600, box.clientWidth - 24)).cellHeight(18)
      .transitionDuration(250).minFrameSize(2).sort(true).title('')
      .label((d) => d.data.name + ' — ' + d.value + (d.data.delta !== undefined ? ' (Δ ' + Math.round(d.data.delta) + ')' : ''));
    if (params.get('mode') === 'diff') {
      chart.setColorMapper((d) => {
        const delta = d.data.delta || 0, v = Math.max(d.value, 1);
        const k = Math.min(1, Math.abs(delta) / v);
        const c = Math.round(255 * (1 - k));
        return delta > 0 ? 'rgb(255,' + c + ',' + c + ')' : delta < 0 ? 'rgb(' + c + ',' + c + ',255)' : 'rgb(235,235,235)';
      });
    }
    d3.select(box).datum(data.tree).call(chart);
    search.addEventListener('input', () => { if (search.value) chart.search(search.value); else chart.clear(); });
  };
})();
