#!/usr/bin/env node
// @ts-check
'use strict';

// CPU cost of tracing per request: the request-trace hooks the proxy calls (SERVER span,
// one attempt span, trace headers for the app, end) and the upstream header list, without
// sockets, for tracing off and at several sample ratios. Spans go to an in-process OTLP sink
// that answers 200, so the batch export (protobuf encoding, the HTTP request) is counted too;
// the CPU of the sink itself is counted as well, which makes the sampled figures an upper bound.
// Usage: npm run build && node bench/tracing-cost.js   (TRACING_BENCH_REQUESTS=N to change N)

const http = require('node:http');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const { parseConfigText } = require(path.join(ROOT, 'dist', 'config', 'load.js'));
const { upstreamRequestHeaders } = require(path.join(ROOT, 'dist', 'proxy', 'headers.js'));
const { startTracing } = require(path.join(ROOT, 'dist', 'telemetry', 'otel.js'));

const REQUESTS = Number(process.env.TRACING_BENCH_REQUESTS ?? 100_000);
const WARM_UP_REQUESTS = 20_000;
const ROUNDS = 3;
/**
 * Spans between two flushes: they fit the export queue (2048), so none is dropped, and the
 * batches stay large, as they are in a sidecar under load.
 */
const SPANS_PER_FLUSH = 1_000;

/** What the hooks read of a request; a real IncomingMessage has these fields. */
const req = {
  method: 'GET',
  url: '/orders/42?x=1',
  httpVersion: '1.1',
  socket: { remoteAddress: '127.0.0.1', localPort: 8080 },
  headers: { host: 'localhost:8080', 'user-agent': 'bench', accept: '*/*' },
  rawHeaders: ['Host', 'localhost:8080', 'User-Agent', 'bench', 'Accept', '*/*'],
};
const res = { setHeader() {} };
const NO_MUTATION = { add: [], remove: [] };

/** @param {string} tracing the YAML tracing section */
function tracingFrom(tracing) {
  const yaml = `listeners: [{ name: m, address: 127.0.0.1:0, routes: [{ name: p, match: { path: /p }, directResponse: { status: 200 } }] }]\n${tracing}\n`;
  const loaded = parseConfigText(yaml, path.join(ROOT, 'bench.yaml'));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return startTracing(loaded.config, { env: {} });
}

/** @param {ReturnType<typeof startTracing>} tracing */
function oneRequest(tracing) {
  const trace = tracing.startRequest(/** @type {never} */ (req), /** @type {never} */ (res), 'main', 'http', 'req-1');
  const headers = upstreamRequestHeaders(
    req.rawHeaders,
    { peerAddress: '127.0.0.1', peerTrusted: false, proto: 'http', requestId: 'req-1', clientCert: undefined, traceHeaders: tracing.ownedRequestHeaders },
    NO_MUTATION,
  );
  trace.attemptStarted(1, 'http://127.0.0.1:3000', '/orders/42?x=1', headers);
  trace.attemptResponded(200);
  trace.attemptEnded();
  trace.end({ status: 200, route: 'api', cluster: 'app', errorCode: undefined, flags: undefined });
}

/**
 * CPU microseconds per request, the lowest of ROUNDS rounds (the least disturbed by other load).
 * @param {ReturnType<typeof startTracing>} tracing
 * @param {number} sampleRatio
 */
async function measure(tracing, sampleRatio) {
  // Two spans per sampled request.
  const flushEvery = Math.max(Math.floor(SPANS_PER_FLUSH / (2 * Math.max(sampleRatio, 1e-9))), 1);
  for (let i = 0; i < WARM_UP_REQUESTS; i++) {
    oneRequest(tracing);
    if (i % flushEvery === flushEvery - 1) await tracing.forceFlush();
  }
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const before = process.cpuUsage();
    for (let i = 0; i < REQUESTS; i++) {
      oneRequest(tracing);
      if (i % flushEvery === flushEvery - 1) await tracing.forceFlush();
    }
    await tracing.forceFlush();
    const used = process.cpuUsage(before);
    best = Math.min(best, (used.user + used.system) / REQUESTS);
  }
  return best;
}

async function main() {
  const sink = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise((resolve) => sink.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = sink.address();
  const endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  /** @type {Array<[string, number | undefined]>} */
  const variants = [
    ['tracing off', undefined],
    ['sampled 0%', 0],
    ['sampled 1%', 0.01],
    ['sampled 100%', 1],
  ];
  process.stdout.write(`node bench/tracing-cost.js  (${REQUESTS} requests x ${ROUNDS} rounds, best round; load average ${require('node:os').loadavg()[0].toFixed(1)})\n`);
  for (const [name, ratio] of variants) {
    const tracing = tracingFrom(ratio === undefined ? '' : `tracing: { endpoint: "${endpoint}", sampleRatio: ${ratio} }`);
    const micros = await measure(tracing, ratio ?? 0);
    const spans = tracing.describe().spans;
    await tracing.shutdown(5_000);
    process.stdout.write(`${name.padEnd(14)} ${micros.toFixed(2).padStart(7)} µs CPU per request   spans exported ${spans.exported}, dropped ${spans.droppedQueueFull + spans.droppedExportFailed}\n`);
  }
  sink.close();
}

main().catch((error) => {
  process.stderr.write(`tracing-cost: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
