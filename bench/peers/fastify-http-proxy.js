// @ts-check
'use strict';

// @fastify/http-proxy (over @fastify/reply-from and undici) on fastify 5, with the defaults
// its documentation shows: one catch-all proxy to the upstream, request logging off (the same
// as ../shared/bench/peers.sh's fastify.js). reply-from's undici pool defaults to 128
// connections, as bare-undici's does.
// Usage: node fastify-http-proxy.js --port N --upstream http://127.0.0.1:M

const fastify = require('fastify');
const proxy = require('@fastify/http-proxy');
const { peerArgs } = require('./args');

const { port, host, upstream } = peerArgs(process.argv.slice(2));
const app = fastify({ logger: false, keepAliveTimeout: 60_000 });
app.register(proxy, { upstream });
app.listen({ port, host, backlog: 4096 }).catch((err) => {
  process.stderr.write(`fastify-http-proxy: ${err.message}\n`);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
