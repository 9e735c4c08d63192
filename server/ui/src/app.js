// Sonde UI core: a tiny hash router, the JSON API client and DOM helpers.
// Every piece of captured data is inserted with textContent (see el()), never
// as HTML, so a header value "<script>alert(1)</script>" shows as text.
'use strict';
const Sonde = { pages: {} };

// el('td', {class: 'num'}, 'text' | Node | [children]) -> element.
Sonde.el = function (tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  const add = (c) => {
    if (c === undefined || c === null) return;
    if (Array.isArray(c)) c.forEach(add);
    else if (c instanceof Node) node.appendChild(c);
    else node.appendChild(document.createTextNode(String(c)));
  };
  add(children);
  return node;
};

// Settings shared by every page live in the URL's query string
// (?range=15m&refresh=10s&self=1), so a reload or a shared link keeps them;
// each page's own filters live in the hash (#/requests?service=x). Changing
// the hash keeps the query string, so navigation keeps the settings too.
Sonde.ranges = ['5m', '15m', '1h', '6h', '24h', '72h', '7d'];
Sonde.refreshes = { off: 0, '5s': 5000, '10s': 10000, '30s': 30000, '1m': 60000 };
Sonde.setting = function (key) { return new URLSearchParams(location.search).get(key); };
Sonde.setSetting = function (key, value, fallback) {
  const q = new URLSearchParams(location.search);
  if (value === fallback || value === null || value === undefined) q.delete(key);
  else q.set(key, value);
  const qs = q.toString();
  history.replaceState(null, '', location.pathname + (qs ? '?' + qs : '') + location.hash);
};
Sonde.range = function () {
  const r = Sonde.setting('range');
  return Sonde.ranges.includes(r) ? r : '1h';
};
// Sonde's own traffic (sonde-server, sonde-agent, clients' calls to the
// server such as this browser's) is hidden unless asked: include_self=1.
Sonde.includeSelf = function () { return Sonde.setting('self') === '1' ? 1 : undefined; };
Sonde.refreshMs = function () { return Sonde.refreshes[Sonde.setting('refresh')] || 0; };

// Requests in flight: the header's "loading" indicator shows while any runs.
Sonde.pending = 0;
Sonde.setLoading = function (delta) {
  Sonde.pending += delta;
  const ind = document.getElementById('loading');
  if (ind) ind.hidden = Sonde.pending === 0;
};

Sonde.api = async function (path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, v);
  }
  const url = '/api/' + path + (q.toString() ? '?' + q.toString() : '');
  Sonde.setLoading(1);
  let res, body;
  try {
    res = await fetch(url);
    try { body = await res.json(); } catch (e) { body = { error: 'bad response from ' + url }; }
  } finally {
    Sonde.setLoading(-1);
  }
  if (!res.ok) throw new Error(body.error || ('HTTP ' + res.status));
  return body;
};

Sonde.fmtMs = function (ms) {
  if (ms === undefined || ms === null) return '';
  if (ms >= 1000) return (ms / 1000).toFixed(2) + ' s';
  if (ms >= 1) return ms.toFixed(2) + ' ms';
  return (ms * 1000).toFixed(0) + ' µs';
};
Sonde.fmtTime = function (ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
};
Sonde.fmtAddr = function (a) { return a ? a.address + ':' + a.port : ''; };
Sonde.badge = function (src) { return Sonde.el('span', { class: 'badge ' + src, title: Sonde.sourceName(src) }, src); };
Sonde.sourceName = function (src) {
  return { A: 'application span (OTLP)', S: 'system span (syscalls)', N: 'network span (packets)' }[src] || src;
};
// The protocol's own result code: HTTP status, gRPC status, SQLSTATE of a
// failed database operation, DNS response code; else the error message.
Sonde.statusCode = function (span) {
  const a = span.attributes || {};
  return span.http_status || (span.grpc_status >= 0 ? 'grpc ' + span.grpc_status : '') ||
    a['db.response.status_code'] || a['sonde.dns.response_code'] || (span.status === 'error' ? span.status_message : '');
};
Sonde.statusCell = function (span) {
  const code = Sonde.statusCode(span);
  const bad = span.http_status >= 500 || span.grpc_status > 0 || span.status === 'error';
  return Sonde.el('td', { class: bad ? 'err' : '' }, code === 0 ? '' : code);
};
// What a database / DNS exchange asked (they carry no headers).
Sonde.exchangeSummary = function (span) {
  const a = span.attributes || {};
  if (a['db.query.text'] !== undefined) {
    return [['database', (a['db.system.name'] || '') + (a['db.namespace'] ? ' · ' + a['db.namespace'] : '')],
      ['query', a['db.query.text']], ['rows', a['db.response.returned_rows']]];
  }
  if (a['dns.question.name'] !== undefined) {
    return [['question', a['dns.question.name'] + ' ' + (a['sonde.dns.question.type'] || '')],
      ['response', (a['sonde.dns.response_code'] || 'none') + (a['sonde.dns.answer_count'] !== undefined ? ', ' + a['sonde.dns.answer_count'] + ' answers' : '')],
      ['transport', a['network.transport']]];
  }
  return null;
};
Sonde.message = function (text, isError) {
  return Sonde.el('div', { class: 'message' + (isError ? ' error' : '') }, text);
};
Sonde.table = function (headers, rows) {
  return Sonde.el('table', {}, [
    Sonde.el('thead', {}, Sonde.el('tr', {}, headers.map((h) =>
      Sonde.el('th', { class: h.num ? 'num' : '' }, h.label || h)))),
    Sonde.el('tbody', {}, rows),
  ]);
};
Sonde.headersTable = function (headers) {
  if (!headers || headers.length === 0) return Sonde.el('div', { class: 'muted' }, 'none captured');
  return Sonde.table(['name', 'value'], headers.map((h) => Sonde.el('tr', {}, [
    Sonde.el('td', { class: 'mono' }, h.name),
    Sonde.el('td', { class: 'mono header-value' }, h.value + (h.unknown ? ' (unknown: lost HPACK state)' : '')),
  ])));
};

// "#/trace/abc?x=1" -> {page: 'trace', arg: 'abc', params: URLSearchParams}
Sonde.parseHash = function () {
  const h = location.hash.replace(/^#\/?/, '');
  const [path, query] = h.split('?');
  const parts = path.split('/');
  return { page: parts[0] || 'overview', arg: parts.slice(1).join('/'), params: new URLSearchParams(query || '') };
};

// Pages that show a time range and so gain from auto-refresh (a single
// trace does not change; re-rendering it would lose the selection).
Sonde.refreshable = ['overview', 'requests', 'traces', 'map', 'tcp', 'cpu'];
Sonde.generation = 0;

// Renders the page named by the hash. A navigation clears the page at once;
// a refresh renders off-screen and swaps when done, so the old figures stay
// readable (dimmed) meanwhile. A render overtaken by a newer one is dropped.
Sonde.route = async function (refresh) {
  const { page, arg, params } = Sonde.parseHash();
  const main = document.getElementById('main');
  const generation = ++Sonde.generation;
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.page === page || (page === 'trace' && a.dataset.page === 'traces'));
  }
  const next = Sonde.el('div', { class: 'page' + (refresh === true ? ' page-next' : '') });
  if (refresh === true) {
    main.classList.add('refreshing');
    main.appendChild(next);
  } else {
    main.replaceChildren(next);
  }
  const render = Sonde.pages[page];
  try {
    if (!render) next.appendChild(Sonde.message('No such page: ' + page, true));
    else await render(next, arg, params);
  } catch (e) {
    next.appendChild(Sonde.message(String(e.message || e), true));
  }
  if (generation !== Sonde.generation) { next.remove(); return; }
  main.classList.remove('refreshing');
  if (refresh === true) {
    next.classList.remove('page-next');
    main.replaceChildren(next);
  }
};

// Header controls: range, auto-refresh, Sonde's own components. Each writes
// its setting into the URL and re-renders.
Sonde.refreshTimer = null;
Sonde.scheduleRefresh = function () {
  clearInterval(Sonde.refreshTimer);
  const ms = Sonde.refreshMs();
  if (!ms) return;
  Sonde.refreshTimer = setInterval(() => {
    if (document.hidden || Sonde.pending > 0) return;  // no pile-up behind a slow query
    if (Sonde.refreshable.includes(Sonde.parseHash().page)) Sonde.route(true);
  }, ms);
};
Sonde.initControls = function () {
  const range = document.getElementById('range');
  range.value = Sonde.range();
  range.addEventListener('change', () => { Sonde.setSetting('range', range.value, '1h'); Sonde.route(); });
  const refresh = document.getElementById('refresh');
  refresh.value = Sonde.refreshMs() ? Sonde.setting('refresh') : 'off';
  refresh.addEventListener('change', () => { Sonde.setSetting('refresh', refresh.value, 'off'); Sonde.scheduleRefresh(); });
  const self = document.getElementById('show-self');
  self.checked = Sonde.includeSelf() === 1;
  self.addEventListener('change', () => { Sonde.setSetting('self', self.checked ? '1' : null); Sonde.route(); });
  Sonde.scheduleRefresh();
};

window.addEventListener('hashchange', () => Sonde.route());
document.addEventListener('DOMContentLoaded', () => {
  Sonde.initControls();
  Sonde.route();
});
