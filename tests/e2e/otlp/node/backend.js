'use strict';
// Backend for tests/e2e/otlp: an HTTP service instrumented with the
// OpenTelemetry Node SDK (http instrumentation), exporting spans to the Sonde
// agent with the exporter named by EXPORTER (grpc | proto | proto-gzip | http).
// Every export result is logged as a JSON line so the test can compare what
// the SDK reports exported with what the agent received.
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const mode = process.env.EXPORTER || 'proto';
const endpoint = process.env.OTLP_ENDPOINT;  // http://127.0.0.1:PORT
const port = Number(process.env.PORT);

function makeExporter() {
  if (mode === 'grpc') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');
    return new OTLPTraceExporter({ url: endpoint });
  }
  if (mode === 'proto' || mode === 'proto-gzip') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
    return new OTLPTraceExporter({ url: `${endpoint}/v1/traces`,
                                   compression: mode === 'proto-gzip' ? 'gzip' : 'none' });
  }
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');  // JSON
  return new OTLPTraceExporter({ url: `${endpoint}/v1/traces` });
}

// Wraps the real exporter and reports each batch's outcome (code 0 = SUCCESS).
class ReportingExporter {
  constructor(inner) { this.inner = inner; }
  export(spans, done) {
    this.inner.export(spans, (result) => {
      console.log(JSON.stringify({ event: 'export', mode, spans: spans.length, code: result.code,
                                   error: result.error ? String(result.error) : undefined,
                                   traces: spans.map((s) => s.spanContext().traceId) }));
      done(result);
    });
  }
  shutdown() { return this.inner.shutdown(); }
  forceFlush() { return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve(); }
}

const sdk = new NodeSDK({
  resource: resourceFromAttributes({ 'service.name': 'e2e-backend' }),
  spanProcessors: [new BatchSpanProcessor(new ReportingExporter(makeExporter()),
                                          { scheduledDelayMillis: 100 })],
  instrumentations: [new HttpInstrumentation()],
});
sdk.start();

const http = require('http');  // after sdk.start(): patched by the instrumentation
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`ok ${req.url}\n`);
});
server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ event: 'listening', port })));

async function stop() {
  server.close();
  await sdk.shutdown();  // flushes the batch processor
  console.log(JSON.stringify({ event: 'shutdown' }));
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
