// Upstream for the HTTP/1 kernel test: status from the path, keep-alive on.
const http = require('http');
const port = Number(process.argv[2]);
const server = http.createServer((req, res) => {
  let status = 200;
  if (req.url.includes('/s500/')) status = 500;
  else if (req.url.includes('/s404/')) status = 404;
  const body = 'ok:' + req.url;
  res.writeHead(status, {'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body)});
  res.end(body);
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1');
