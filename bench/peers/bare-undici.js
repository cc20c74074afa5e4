// @ts-check
'use strict';

// The floor for a Node proxy: a node:http server handing each request to an undici Pool's
// `dispatch`, with a handler that streams the response back. No routing, no policies, no
// header rewriting beyond dropping hop-by-hop headers (undici rejects them on requests and
// node:http frames the response itself).
// Usage: node bare-undici.js --port N --upstream http://127.0.0.1:M

const { createBareUndiciProxy } = require('./bare-undici-proxy');
const { peerArgs } = require('./args');

const { port, host, upstream } = peerArgs(process.argv.slice(2));
const { server, pool } = createBareUndiciProxy(upstream);
server.listen({ port, host, backlog: 4096 });
process.on('SIGTERM', () => pool.close().finally(() => process.exit(0)));
