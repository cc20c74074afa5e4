// @ts-check
'use strict';

// The floor for a Node proxy: a node:http server handing each request to an undici Pool's
// `dispatch`, with a handler that streams the response back. No routing, no policies, no
// header rewriting beyond dropping hop-by-hop headers (undici rejects them on requests and
// node:http frames the response itself).
// Usage: node bare-undici.js --port N --upstream http://127.0.0.1:M

const http = require('node:http');
const { Pool } = require('undici');
const { peerArgs } = require('./args');

const { port, host, upstream } = peerArgs(process.argv.slice(2));
const pool = new Pool(upstream, { connections: 128 });
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];

const server = http.createServer((req, res) => {
  const headers = { ...req.headers };
  for (const name of HOP_BY_HOP) delete headers[name];
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  /** @type {import('undici').Dispatcher.DispatchController | undefined} */
  let upstreamRequest;
  res.on('close', () => {
    if (!res.writableFinished) upstreamRequest?.abort(new Error('client went away'));
  });
  res.on('drain', () => upstreamRequest?.resume());

  pool.dispatch(
    { path: req.url ?? '/', method: req.method ?? 'GET', headers, body: hasBody ? req : null },
    {
      onRequestStart(controller) {
        upstreamRequest = controller;
      },
      onResponseStart(controller, statusCode, responseHeaders) {
        for (const name of HOP_BY_HOP) delete responseHeaders[name];
        res.writeHead(statusCode, responseHeaders);
      },
      onResponseData(controller, chunk) {
        if (!res.write(chunk)) controller.pause();
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError(_controller, err) {
        if (res.headersSent) res.destroy(err);
        else {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end('bad gateway\n');
        }
      },
    },
  );
});
server.keepAliveTimeout = 60_000;
server.listen({ port, host, backlog: 4096 });
process.on('SIGTERM', () => pool.close().finally(() => process.exit(0)));
