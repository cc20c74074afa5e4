// @ts-check
'use strict';

// The benchmark's upstream when nginx is not installed: one fixed ~80-byte JSON body for
// every request, the same body bench/run.js gives nginx. Usage: node upstream.js --port N

const http = require('node:http');
const { peerArgs } = require('./args');

const BODY = Buffer.from('{"ok":true,"service":"bench-upstream","payload":"0123456789abcdef0123456789abcdef"}');
const { port, host } = peerArgs(process.argv.slice(2));

const server = http.createServer((req, res) => {
  // Drain any request body, so the connection stays reusable.
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length });
  res.end(BODY);
});
// Longer than any proxy's idle timeout: the proxies close idle connections, never the upstream mid-run.
server.keepAliveTimeout = 120_000;
server.listen({ port, host, backlog: 4096 });
process.on('SIGTERM', () => process.exit(0));
