#!/usr/bin/env node
'use strict';

// Nanoseconds of CPU per request of the per-request parts of the product row, each alone, in
// one process, without sockets: the route's metrics, the circuit breaker's admit and settle
// (opossum), the access-log entry and line (and its share of a batch's encoding), the
// tracing hooks of a request whose new trace the sampler declined. Each figure is the best of
// five rounds (the least disturbed by other load).
//
// Usage: npm run build && node bench/hot-path-parts.js
//   SIDECAR_DIST=other/dist measures another build (its dist folder).

const path = require('node:path');

const DIST = path.resolve(process.env.SIDECAR_DIST ?? path.join(__dirname, '..', 'dist'));
const { Metrics } = require(path.join(DIST, 'telemetry', 'metrics', 'metrics'));
const { ClusterBreaker } = require(path.join(DIST, 'policy', 'circuit-breaker'));
const accessLog = require(path.join(DIST, 'telemetry', 'access-log'));
const { parseConfigText } = require(path.join(DIST, 'config', 'load'));
const { upstreamRequestHeaders } = require(path.join(DIST, 'proxy', 'headers'));
const { startTracing } = require(path.join(DIST, 'telemetry', 'otel'));

const ROUNDS = 5;

/** Best of ROUNDS rounds of `n` calls, ns per call; yields to the event loop every 1 000 calls. */
async function measure(name, fn, n = 500_000) {
  for (let i = 0; i < 100_000; i++) fn();
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const before = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      fn();
      if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setImmediate(resolve));
    const used = process.cpuUsage(before);
    best = Math.min(best, ((used.user + used.system) * 1000) / n);
  }
  console.log(`${name.padEnd(52)} ${best.toFixed(0).padStart(6)} ns`);
}

async function main() {
  console.log(`node bench/hot-path-parts.js  (${DIST}; load average ${require('node:os').loadavg()[0].toFixed(1)})`);

  const metrics = new Metrics({ processMetrics: false });
  const instruments = metrics.forRoute('bench', 'all', 'upstream');
  await measure('metrics: attempt, answer and upstream time counted', () => {
    instruments.attempted('2xx');
    instruments.answered(200, 0.0012);
    instruments.upstreamResponded(0.0009);
  });

  const breaker = new ClusterBreaker({ errorThresholdPercentage: 50, volumeThreshold: 20, windowMs: 10_000, resetTimeoutMs: 5_000, maxConcurrentRequests: 1024, maxPendingRequests: 1024 });
  await measure('circuit breaker: admit and settle (opossum)', () => breaker.admit()?.settle('success'));
  breaker.shutdown();

  const request = {
    method: 'GET',
    path: '/orders/42?x=1',
    listenerName: 'bench',
    routeName: 'all',
    clusterName: 'upstream',
    requestId: '3f1c2d4e-5b6a-4c7d-8e9f-0a1b2c3d4e5f',
    status: 200,
    upstreamMs: 0.83412,
    bytesIn: 0,
    bytesOut: 83,
    attempts: 1,
    errorCode: undefined,
    upstreamUrl: 'http://127.0.0.1:18080',
  };
  const ids = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' };
  let sink;
  await measure('access log: the entry object alone', () => (sink = accessLog.accessLogEntry(request, 1.23456, undefined, ids, 200)));
  await measure('access log: entry and line', () => (sink = accessLog.formatAccessLine(accessLog.accessLogEntry(request, 1.23456, undefined, ids, 200))));
  let lines = [];
  await measure('access log: entry, line, share of a 200-line batch', () => {
    lines.push(accessLog.formatAccessLine(accessLog.accessLogEntry(request, 1.23456, undefined, ids, 200)));
    if (lines.length === 200) {
      sink = Buffer.from(lines.join(''));
      lines = [];
    }
  });

  const yaml = 'listeners: [{ name: m, address: 127.0.0.1:0, routes: [{ name: p, match: { path: /p }, directResponse: { status: 200 } }] }]\ntracing: { endpoint: "http://127.0.0.1:9", sampleRatio: 0 }\n';
  const loaded = parseConfigText(yaml, path.join(__dirname, 'hot-path-parts.yaml'));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const tracing = startTracing(loaded.config, { env: {} });
  const req = {
    method: 'GET',
    url: '/orders/42?x=1',
    httpVersion: '1.1',
    socket: { remoteAddress: '127.0.0.1', localPort: 8080 },
    headers: { host: 'localhost:8080', 'user-agent': 'bench', accept: '*/*' },
    rawHeaders: ['Host', 'localhost:8080', 'User-Agent', 'bench', 'Accept', '*/*'],
  };
  const res = { setHeader() {} };
  const headerContext = { peerAddress: '127.0.0.1', peerTrusted: false, proto: 'http', requestId: 'req-1', clientCert: undefined, traceHeaders: tracing.ownedRequestHeaders };
  const noMutation = { add: [], remove: [] };
  await measure('upstream request headers (for reference)', () => (sink = upstreamRequestHeaders(req.rawHeaders, headerContext, noMutation)));
  await measure('tracing, new trace declined: ids, headers, end (with the above)', () => {
    const trace = tracing.startRequest(req, res, 'main', 'http', 'req-1');
    const headers = upstreamRequestHeaders(req.rawHeaders, headerContext, noMutation);
    trace.attemptStarted(1, 'http://127.0.0.1:3000', '/orders/42?x=1', headers);
    trace.attemptResponded(200);
    trace.attemptEnded();
    trace.end({ status: 200, route: 'api', cluster: 'app', errorCode: undefined, flags: undefined });
  });
  await tracing.shutdown(1_000);
  if (sink === undefined) throw new Error('nothing measured');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
