// gRPC client for the kernel test:
//   node client.js TARGET PLAN [GO_FILE READY_FILE]
// PLAN is a comma list: unary, fail, stream:N, bidi:N, other.
// With GO_FILE: run PLAN, create READY_FILE, wait for GO_FILE, run PLAN
// again on the same channel (same HTTP/2 connection).
// Prints one JSON line per call: {method, code, sent, received}.
'use strict';
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const def = loader.loadSync(path.join(__dirname, 'echo.proto'));
const proto = grpc.loadPackageDefinition(def).sonde.test;
const [target, plan, goFile, readyFile] = process.argv.slice(2);
const client = new proto.Echo(target, grpc.credentials.createInsecure());

function report(method, code, sent, received) {
  console.log(JSON.stringify({ method, code, sent, received }));
}

function unaryCall(name, text) {
  return new Promise((resolve) => {
    client[name]({ text, count: 0 }, (err) => {
      report(name, err ? err.code : 0, 1, err ? 0 : 1);
      resolve();
    });
  });
}

function streamCall(n) {
  return new Promise((resolve) => {
    let received = 0;
    const call = client.ServerStream({ text: 'stream', count: n });
    call.on('data', () => received++);
    call.on('status', (s) => {
      report('ServerStream', s.code, 1, received);
      resolve();
    });
    call.on('error', () => {});
  });
}

function bidiCall(n) {
  return new Promise((resolve) => {
    let received = 0;
    const call = client.Bidi();
    call.on('data', () => {
      received++;
      if (received < n) call.write({ text: 'm' + received });
      else call.end();
    });
    call.on('status', (s) => {
      report('Bidi', s.code, n, received);
      resolve();
    });
    call.on('error', () => {});
    call.write({ text: 'm0' });
  });
}

async function runPlan() {
  for (const step of plan.split(',')) {
    const [kind, arg] = step.split(':');
    if (kind === 'unary') await unaryCall('Unary', 'hello');
    else if (kind === 'other') await unaryCall('Other', 'hello');
    else if (kind === 'fail') await unaryCall('Unary', 'fail');
    else if (kind === 'stream') await streamCall(Number(arg));
    else if (kind === 'bidi') await bidiCall(Number(arg));
  }
}

async function main() {
  await runPlan();
  if (goFile) {
    fs.writeFileSync(readyFile, 'ready');
    while (!fs.existsSync(goFile)) await new Promise((r) => setTimeout(r, 50));
    await runPlan();
  }
  client.close();
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
