// @ts-check
'use strict';

// The sidecar rows of bench/run.js: which features each turns on, and the YAML each runs.
// Every variant is one listener with one catch-all route to one cluster holding the bench's
// upstream; they differ only in the features below, so that two rows differing in one
// feature show what that feature costs. The field names are those of src/config/schema.ts
// (test/delivery/bench-configs.test.ts checks that every variant validates).

/**
 * @typedef {object} SidecarVariant
 * @property {string} summary       what the row is, for the header and docs
 * @property {boolean} accessLog    JSON lines to a file in the bench's work folder (or BENCH_ACCESS_LOG)
 * @property {number | undefined} sampleRatio  tracing over OTLP/HTTP to the bench's sink; undefined: exporter none
 * @property {boolean} retries      a retry policy on the route (5xx, reset, connect-failure; 2 retries)
 * @property {boolean} breaker      an explicit circuitBreaker section on the cluster
 * @property {boolean} tls          the listener terminates TLS
 * @property {number} workers       worker processes (`workers:`); above 1 the row is not pinned
 * @property {boolean} [rateLimit]  a route rateLimit with one bucket (key: route), set high enough never to refuse
 * @property {boolean} recorder     the flight recorder (`admin.recorder`, on by default); false: `admin.recorder: false`
 */

/** @type {Readonly<Record<string, SidecarVariant>>} */
const SIDECAR_VARIANTS = {
  // The product as it would run: the row the headline targets are about.
  sidecar: {
    summary: 'metrics, access log to a file, tracing 1% to the OTLP sink, retries and circuit breaker configured',
    accessLog: true,
    sampleRatio: 0.01,
    retries: true,
    breaker: true,
    tls: false,
    workers: 1,
    recorder: true,
  },
  'sidecar-bare': {
    summary: 'the proxying alone: metrics (always on), access log off, tracing none, no retry policy, default breaker, recorder off',
    accessLog: false,
    sampleRatio: undefined,
    retries: false,
    breaker: false,
    tls: false,
    workers: 1,
    recorder: false,
  },
  'sidecar-retries': {
    summary: 'sidecar-bare + retry policy and circuitBreaker section (never firing: the upstream answers 200)',
    accessLog: false,
    sampleRatio: undefined,
    retries: true,
    breaker: true,
    tls: false,
    workers: 1,
    recorder: false,
  },
  'sidecar-recorder': {
    summary: 'sidecar-bare + the flight recorder (its defaults: 1 000 requests, 200 failures, 16 MiB)',
    accessLog: false,
    sampleRatio: undefined,
    retries: false,
    breaker: false,
    tls: false,
    workers: 1,
    recorder: true,
  },
  'sidecar-trace-1': {
    summary: 'sidecar-bare + tracing at 1% to the OTLP sink',
    accessLog: false,
    sampleRatio: 0.01,
    retries: false,
    breaker: false,
    tls: false,
    workers: 1,
    recorder: false,
  },
  'sidecar-trace-100': {
    summary: 'sidecar-bare + tracing at 100% to the OTLP sink',
    accessLog: false,
    sampleRatio: 1,
    retries: false,
    breaker: false,
    tls: false,
    workers: 1,
    recorder: false,
  },
  'sidecar-tls': {
    summary: 'sidecar over TLS (HTTP/1.1, keep-alive: handshakes only when connections open)',
    accessLog: true,
    sampleRatio: 0.01,
    retries: true,
    breaker: true,
    tls: true,
    workers: 1,
    recorder: true,
  },
  'sidecar-ratelimit': {
    summary: 'sidecar + a route rateLimit with one bucket (key: route), never refusing at bench rates',
    accessLog: true,
    sampleRatio: 0.01,
    retries: true,
    breaker: true,
    tls: false,
    workers: 1,
    rateLimit: true,
    recorder: true,
  },
  'sidecar-workers-2': {
    summary: 'sidecar with workers: 2, not pinned (both cores, shared with the upstream and load generator)',
    accessLog: true,
    sampleRatio: 0.01,
    retries: true,
    breaker: true,
    tls: false,
    workers: 2,
    recorder: true,
  },
};

/**
 * @typedef {object} SidecarConfigInputs
 * @property {number} port          the listener's port
 * @property {number} adminPort
 * @property {string} upstream      http://127.0.0.1:PORT
 * @property {string} otlpEndpoint  the sink's base URL (the exporter appends /v1/traces)
 * @property {string} accessLogPath the access log's `path` for variants that log: a file, stdout or off
 * @property {string} certDir       folder of server.crt/server.key, relative to the YAML file
 */

/**
 * The YAML of one variant.
 * @param {SidecarVariant} variant
 * @param {SidecarConfigInputs} inputs
 */
function sidecarConfigYaml(variant, inputs) {
  const tls = variant.tls ? `\n    tls: { cert: ${inputs.certDir}/server.crt, key: ${inputs.certDir}/server.key }` : '';
  const retry = variant.retries
    ? `
        timeout: 15s
        retry:
          attempts: 2
          on: [5xx, reset, connect-failure]
          perTryTimeout: 5s
          backoff: { base: 25ms, max: 250ms }`
    : '';
  const rateLimit = variant.rateLimit === true ? '\n        rateLimit: { requests: 100000000, per: 1s, key: route }' : '';
  const breaker = variant.breaker
    ? `
    circuitBreaker:
      errorThresholdPercentage: 50
      volumeThreshold: 20
      window: 10s
      resetTimeout: 5s
      maxConcurrentRequests: 1024
      maxPendingRequests: 1024`
    : '';
  const tracing =
    variant.sampleRatio === undefined
      ? 'tracing:\n  exporter: none'
      : `tracing:
  serviceName: sidecar-bench
  exporter: otlp-http
  endpoint: ${inputs.otlpEndpoint}
  sampleRatio: ${variant.sampleRatio}`;
  const accessLog = variant.accessLog ? inputs.accessLogPath : 'off';
  return `# Generated by bench/run.js
admin:
  address: 127.0.0.1:${inputs.adminPort}${variant.recorder ? '' : '\n  recorder: false'}
listeners:
  - name: bench
    address: 127.0.0.1:${inputs.port}${tls}
    routes:
      - name: all
        match: { prefix: / }
        cluster: upstream${retry}${rateLimit}
clusters:
  - name: upstream
    endpoints:
      - url: ${inputs.upstream}${breaker}
${tracing}
accessLog: { path: ${JSON.stringify(accessLog)} }
drain: { delay: 0ms, timeout: 1s }
workers: ${variant.workers}
`;
}

module.exports = { SIDECAR_VARIANTS, sidecarConfigYaml };
