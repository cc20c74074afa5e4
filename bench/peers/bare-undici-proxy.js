// @ts-check
'use strict';

// The floor for a Node proxy (see bare-undici.js): a node:http server handing each request to
// an undici Pool's `dispatch`. Also run in process by bench/policy-cost.js, as its floor row.

const http = require('node:http');
const { Pool } = require('undici');

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];

/**
 * @param {string} upstream the app's origin
 * @returns {{ server: http.Server, pool: Pool }}
 */
function createBareUndiciProxy(upstream) {
  const pool = new Pool(upstream, { connections: 128 });

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
  return { server, pool };
}

module.exports = { createBareUndiciProxy };
