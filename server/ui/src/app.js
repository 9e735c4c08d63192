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

Sonde.range = function () { return document.getElementById('range').value; };

Sonde.api = async function (path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, v);
  }
  const url = '/api/' + path + (q.toString() ? '?' + q.toString() : '');
  const res = await fetch(url);
  let body;
  try { body = await res.json(); } catch (e) { body = { error: 'bad response from ' + url }; }
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

Sonde.route = async function () {
  const { page, arg, params } = Sonde.parseHash();
  const main = document.getElementById('main');
  main.replaceChildren();
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.page === page || (page === 'trace' && a.dataset.page === 'traces'));
  }
  const render = Sonde.pages[page];
  if (!render) { main.appendChild(Sonde.message('No such page: ' + page, true)); return; }
  try {
    await render(main, arg, params);
  } catch (e) {
    main.appendChild(Sonde.message(String(e.message || e), true));
  }
};

window.addEventListener('hashchange', Sonde.route);
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('range').addEventListener('change', Sonde.route);
  Sonde.route();
});
