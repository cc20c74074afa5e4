// @ts-check
'use strict';

// node-http-proxy (http-proxy 1.18.1) with a keep-alive agent, as a typical Node proxy is
// written (the same as ../shared/bench/peers.sh's naive.js).
// Usage: node node-http-proxy.js --port N --upstream http://127.0.0.1:M

const http = require('node:http');
const httpProxy = require('http-proxy');
const { peerArgs } = require('./args');

const { port, host, upstream } = peerArgs(process.argv.slice(2));
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: upstream, agent });
proxy.on('error', (_err, _req, res) => {
  // For `web` requests `res` is a ServerResponse; close it either way.
  if ('writeHead' in res && !res.headersSent) {
    res.writeHead(502);
    res.end();
  } else res.destroy();
});
const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 60_000;
server.listen({ port, host, backlog: 4096 });
process.on('SIGTERM', () => process.exit(0));
