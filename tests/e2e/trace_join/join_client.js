// Client of the cross-node trace-join test, run in the client network
// namespace: waits for <go-file>, sends <n> GET requests with unique paths
// <prefix>/<letters> over one keep-alive connection, one after another, then
// writes the number answered 200 to <done-file> and waits for the next round.
// Usage: node join_client.js <base-url> <go-file> <done-file>
// <go-file> holds "<prefix> <n>"; it is removed when read.
const fs = require('fs');
const http = require('http');
const [base, goFile, doneFile] = process.argv.slice(2);
const agent = new http.Agent({keepAlive: true, maxSockets: 1});

function letters(i) {  // route normalisation keeps letter-only segments as they are
  let s = '';
  do { s += String.fromCharCode(97 + (i % 26)); i = Math.floor(i / 26); } while (i > 0);
  return s;
}

function get(url) {
  return new Promise((resolve) => {
    http.get(url, {agent}, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); })
        .on('error', () => resolve(0));
  });
}

async function round(prefix, n) {
  let ok = 0;
  for (let i = 0; i < n; ++i) ok += (await get(base + prefix + '/' + letters(i))) === 200 ? 1 : 0;
  fs.writeFileSync(doneFile + '.tmp', String(ok));
  fs.renameSync(doneFile + '.tmp', doneFile);
}

setInterval(async function poll() {
  if (!fs.existsSync(goFile)) return;
  const [prefix, n] = fs.readFileSync(goFile, 'utf8').trim().split(' ');
  fs.unlinkSync(goFile);
  await round(prefix, Number(n));
}, 50);
