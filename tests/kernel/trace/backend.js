// Backend for the trace-join kernel tests: answers every request with its
// path, keep-alive on. Usage: node backend.js <port> [host]
const http = require('http');
const port = Number(process.argv[2]);
const host = process.argv[3] || '127.0.0.1';
const server = http.createServer((req, res) => {
  const body = 'ok:' + req.url;
  res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body)});
  res.end(body);
});
server.keepAliveTimeout = 60000;
server.listen(port, host);
