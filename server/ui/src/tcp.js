// TCP health per connection pair: RTT, retransmissions, resets, failures.
'use strict';
(function () {
  const { el } = Sonde;
  Sonde.pages.tcp = async function (main) {
    main.appendChild(el('h2', {}, 'TCP health by connection pair'));
    const { pairs } = await Sonde.api('tcp', { last: Sonde.range() });
    if (pairs.length === 0) { main.appendChild(Sonde.message('No TCP metrics in this range.')); return; }
    const chartBox = el('div', { class: 'panel', id: 'tcp-chart' }, el('div', { class: 'muted' }, 'Click a pair for its RTT and retransmissions over time.'));
    const num = (v) => el('td', { class: 'num' }, v);
    const bad = (v) => el('td', { class: 'num' + (v ? ' err' : '') }, v);
    main.appendChild(Sonde.table(['host', 'client', 'server', 'process', { label: 'handshake RTT', num: 1 }, { label: 'SRTT', num: 1 },
      { label: 'retrans', num: 1 }, { label: 'zero win', num: 1 }, { label: 'RST sent', num: 1 }, { label: 'RST recv', num: 1 },
      { label: 'conn fail', num: 1 }, { label: 'timeouts', num: 1 }, { label: 'active', num: 1 }, { label: 'bytes out/in', num: 1 }],
      pairs.map((p) => el('tr', {
        class: 'clickable',
        onclick: () => {
          chartBox.replaceChildren(el('h3', {}, p.client + ' → ' + p.server));
          const t = p.series.map((s) => s.t_ms / 1000);
          new uPlot({ width: Math.max(400, chartBox.clientWidth - 24), height: 200,
            series: [{}, { label: 'SRTT µs', stroke: '#4e79a7' }, { label: 'retransmits', stroke: '#e15759', scale: 'n' }, { label: 'resets', stroke: '#f28e2b', scale: 'n' }],
            axes: [{}, {}, { scale: 'n', side: 1 }] },
          [t, p.series.map((s) => s.srtt_us), p.series.map((s) => s.retransmits), p.series.map((s) => s.resets)], chartBox);
        },
      }, [el('td', {}, p.host), el('td', { class: 'mono' }, p.client), el('td', { class: 'mono' }, p.server), el('td', {}, p.comm),
          num((p.handshake_rtt_us / 1000).toFixed(2) + ' ms'), num((p.srtt_us / 1000).toFixed(2) + ' ms'),
          bad(p.retransmits), bad(p.zero_window_events), bad(p.resets_sent), bad(p.resets_received),
          bad(p.connect_failures), bad(p.connect_timeouts), num(p.active_connections), num(p.bytes_sent + ' / ' + p.bytes_received)]))));
    main.appendChild(chartBox);
  };
})();
