// @ts-check
'use strict';

// What encoding a batch of the sidecar's spans for OTLP/protobuf costs: OpenTelemetry's own
// serializer against the sidecar's (src/telemetry/otlp-span-encoding.ts), which writes the
// same bytes. The spans carry the attributes the sidecar sets on a request's SERVER span
// and its attempt's CLIENT span. Both encoders run in turn, in one process, after a warm-up.
// Usage: npm run build && node bench/span-encoding.js [spansPerBatch] [batches]

const { SpanKind } = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } = require('@opentelemetry/sdk-trace');
const { ProtobufTraceSerializer } = require('@opentelemetry/otlp-transformer');
const { encodeTraceExportRequest } = require('../dist/telemetry/otlp-span-encoding');

const SPANS_PER_BATCH = Number(process.argv[2] ?? 512);
const BATCHES = Number(process.argv[3] ?? 200);

function sidecarSpans(count) {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'sidecar', 'service.version': '0.1.0', 'host.name': 'pod-7f9c' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  const tracer = provider.getTracer('sidecar', '0.1.0');
  for (let i = 0; exporter.getFinishedSpans().length < count; i++) {
    const server = tracer.startSpan('GET /api/items', {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': 'GET',
        'url.path': `/api/items/${i % 500}`,
        'url.scheme': 'http',
        'server.address': 'orders.default.svc',
        'server.port': 8080,
        'client.address': `10.0.${(i >> 8) & 255}.${i & 255}`,
        'user_agent.original': 'Go-http-client/1.1',
        'network.protocol.version': '1.1',
        'sidecar.listener': 'ingress',
        'sidecar.request_id': `c1a2b3d4-${String(i).padStart(4, '0')}-4e5f-8a9b-0c1d2e3f4a5b`,
      },
    });
    const client = tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'http.request.method': 'GET', 'url.full': `http://127.0.0.1:3000/api/items/${i % 500}`, 'server.address': '127.0.0.1', 'server.port': 3000, 'sidecar.attempt': 1, 'sidecar.endpoint': 'http://127.0.0.1:3000' } });
    client.setAttribute('http.response.status_code', 200);
    client.setAttribute('sidecar.attempt.outcome', 'response');
    client.end();
    server.setAttributes({ 'http.route': 'items', 'http.response.status_code': 200, 'sidecar.cluster': 'app', 'sidecar.attempts': 1 });
    server.end();
  }
  return exporter.getFinishedSpans().slice(0, count);
}

function timePerSpan(encode, spans) {
  let bytes = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < BATCHES; i++) bytes += encode(spans).length;
  const elapsedNs = Number(process.hrtime.bigint() - started);
  return { usPerSpan: elapsedNs / 1000 / (BATCHES * spans.length), bytesPerSpan: bytes / (BATCHES * spans.length) };
}

const spans = sidecarSpans(SPANS_PER_BATCH);
const reference = (batch) => ProtobufTraceSerializer.serializeRequest(batch) ?? new Uint8Array();
const same = Buffer.from(reference(spans)).equals(Buffer.from(encodeTraceExportRequest(spans)));
for (let i = 0; i < 20; i++) {
  reference(spans);
  encodeTraceExportRequest(spans);
}
console.log(`node ${process.version}; ${SPANS_PER_BATCH} spans per batch (SERVER and CLIENT in turn), ${BATCHES} batches per round; byte-identical: ${same}`);
console.log('round  otlp-transformer µs/span  sidecar µs/span  ratio  bytes/span');
for (let round = 1; round <= 3; round++) {
  const theirs = timePerSpan(reference, spans);
  const ours = timePerSpan(encodeTraceExportRequest, spans);
  console.log(`${String(round).padStart(5)}  ${theirs.usPerSpan.toFixed(2).padStart(24)}  ${ours.usPerSpan.toFixed(2).padStart(15)}  ${(theirs.usPerSpan / ours.usPerSpan).toFixed(2).padStart(4)}x  ${ours.bytesPerSpan.toFixed(0).padStart(10)}`);
}
