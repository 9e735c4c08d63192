// gRPC over TLS for the TLS kernel test, with @grpc/grpc-js (Node's TLS:
// OpenSSL linked into node, memory BIOs) and the Echo service of
// tests/kernel/http2/node/echo.proto.
//   node grpc_tls.js server PORT CERT KEY
//   node grpc_tls.js client PORT CA N   -> prints {"<code>": count, ...}
// Client call i asks for "fail" (NOT_FOUND) when i % 5 == 0, else echoes.
'use strict';
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [mode, port, a, b] = process.argv.slice(2);
const def = loader.loadSync(process.env.ECHO_PROTO);
const proto = grpc.loadPackageDefinition(def).sonde.test;

if (mode === 'server') {
  const server = new grpc.Server();
  const unary = (call, cb) => {
    if (call.request.text === 'fail') cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
    else cb(null, { text: 'echo:' + call.request.text, index: 0 });
  };
  server.addService(proto.Echo.service, { Unary: unary, Other: unary, ServerStream() {}, Bidi() {} });
  const creds = grpc.ServerCredentials.createSsl(null, [{ cert_chain: fs.readFileSync(a), private_key: fs.readFileSync(b) }]);
  server.bindAsync('127.0.0.1:' + port, creds, (err) => {
    if (err) { console.error(err); process.exit(1); }
    console.log('listening');
  });
} else {
  const n = +b;
  const client = new proto.Echo('localhost:' + port, grpc.credentials.createSsl(fs.readFileSync(a)));
  const counts = {};
  let i = 0;
  const next = () => {
    if (i === n) { console.log(JSON.stringify(counts)); client.close(); return; }
    const text = i % 5 === 0 ? 'fail' : 'hello' + i;
    i++;
    client.Unary({ text, count: 0 }, (err) => {
      const code = err ? err.code : 0;
      counts[code] = (counts[code] || 0) + 1;
      next();
    });
  };
  next();
}
