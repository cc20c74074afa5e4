// @ts-check
'use strict';

// A stand-in OTLP/HTTP collector for the benchmark: accepts POST /v1/traces (protobuf), drains
// the body and answers 200 with an empty ExportTraceServiceResponse at once, so that a traced
// sidecar pays for encoding and sending its spans but never waits on a slow collector. It
// decodes nothing; it counts export requests and bytes, which bench/run.js reads from
// GET /stats ({ "requests": N, "bytes": N }) to show that a row's tracing really exported.
// Usage: node otlp-sink.js --port N

const http = require('node:http');
const { peerArgs } = require('./args');

const TRACES_PATH = '/v1/traces';
const { port, host } = peerArgs(process.argv.slice(2));
let requests = 0;
let bytes = 0;

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === TRACES_PATH) {
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
      res.end();
    });
    return;
  }
  req.resume();
  if (req.method === 'GET' && req.url === '/stats') {
    const body = JSON.stringify({ requests, bytes });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  res.writeHead(404, { 'content-length': 0 });
  res.end();
});
server.keepAliveTimeout = 120_000;
server.listen({ port, host, backlog: 1024 });
process.on('SIGTERM', () => process.exit(0));
