// gRPC server for the kernel test: node server.js PORT
// Unary/Other: echo, or NOT_FOUND with a message when text == "fail".
// ServerStream: `count` replies. Bidi: one reply per request.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const def = loader.loadSync(path.join(__dirname, 'echo.proto'));
const proto = grpc.loadPackageDefinition(def).sonde.test;

function unary(call, cb) {
  if (call.request.text === 'fail') {
    cb({ code: grpc.status.NOT_FOUND, details: 'no such thing: ' + call.request.text });
    return;
  }
  cb(null, { text: 'echo:' + call.request.text, index: 0 });
}

const server = new grpc.Server();
server.addService(proto.Echo.service, {
  Unary: unary,
  Other: unary,
  ServerStream(call) {
    for (let i = 0; i < call.request.count; i++) call.write({ text: call.request.text, index: i });
    call.end();
  },
  Bidi(call) {
    let i = 0;
    call.on('data', (m) => call.write({ text: 'echo:' + m.text, index: i++ }));
    call.on('end', () => call.end());
  },
});
server.bindAsync('127.0.0.1:' + process.argv[2], grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log('listening');
});
